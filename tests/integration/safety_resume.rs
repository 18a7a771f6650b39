//! Issue 19, on the simulated cluster: a resume keeps everything its run journaled (the check
//! command, the boot-ID command, the cancel policy, the failure budget, the BMC fallback) and
//! refuses a flag that contradicts it unless told `--override-journal`; a `systemctl
//! soft-reboot` is reported as such, never taken for (or waited on as) a kernel reboot; the
//! simulation's control endpoint takes only JSON from a loopback Host, and no malformed request
//! stops it serving.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Stdio;

use fleetboot::adapters::journal::load;
use fleetboot_core::journal::{Entry, FailureBudget};
use proptest::prelude::*;

use crate::common::inproc::EngineRun;
use crate::common::sim::Sim;
use crate::common::wait_for_dispatches;
use fleetboot::ExitCode;
use fleetboot_core::events::Outcome;

/// Starts a host-list run over the simulation's workers, one at a time, and kills it once the
/// first reboot is handed over: the others are still to do.
fn start_and_kill(sim: &Sim, journal: &Path, extra: &[&str]) {
    let hosts = sim.path("hosts.txt");
    let mut args = vec!["reboot", "--no-cluster", "--hosts-file", hosts.to_str().unwrap(), "--journal", journal.to_str().unwrap()];
    args.extend(["--poll-interval", "200ms", "--concurrency", "1"]);
    args.extend(extra);
    let mut child = sim.fleetboot(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for_dispatches(journal, 1, std::time::Duration::from_secs(30));
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `fleetboot reboot --resume JOURNAL EXTRA`, the engine in process (common/inproc.rs).
fn resume(sim: &Sim, journal: &Path, extra: &[&str]) -> EngineRun {
    let mut args = vec!["--resume", journal.to_str().unwrap()];
    args.extend(extra);
    sim.reboot_in_process(&args)
}

/// The `run_resumed` records' `overridden` lists.
fn overridden(journal: &Path) -> Vec<Vec<String>> {
    let (records, _) = load(journal).unwrap();
    records
        .into_iter()
        .filter_map(|r| match r.entry {
            Entry::RunResumed { overridden, .. } => Some(overridden),
            _ => None,
        })
        .collect()
}

#[test]
fn a_resume_keeps_the_journaled_check_command_and_failure_budget() {
    let sim = Sim::in_process(0, 3);
    let journal = sim.path("run.jsonl");
    // A check that fails everywhere, and a budget that lets every host try.
    start_and_kill(&sim, &journal, &["--check-command", "false", "--max-failures", "5", "--cancel-pending-on-abort"]);
    let (_, state) = load(&journal).unwrap();
    let policy = state.settings.unwrap().policy.expect("run_started records the policy");
    assert_eq!(policy.check_command.as_deref(), Some("false"));
    assert_eq!(policy.max_failures, FailureBudget::Count(5));
    assert!(policy.cancel_pending_on_abort);
    assert_eq!(policy.boot_id_command, "cat /proc/sys/kernel/random/boot_id");
    assert!(policy.fallback.on_unreachable && !policy.fallback.on_host_key, "{:?}", policy.fallback);
    // No flags: the journaled check runs on every host (today's configuration has none), and
    // the journaled budget lets all three fail instead of skipping after the first.
    let run = resume(&sim, &journal, &[]);
    assert_eq!(run.exit(), ExitCode::HostsFailed, "{}", run.debug());
    for (host, (outcome, error)) in run.outcomes() {
        assert_eq!(outcome, Outcome::Failed, "{host}: {}", run.debug());
        assert!(error.contains("check command") && error.contains("`false`"), "{host}: {error}");
    }
    assert_eq!(overridden(&journal), [Vec::<String>::new()], "nothing overridden");
}

#[test]
fn a_resume_refuses_a_flag_that_contradicts_the_journal_unless_told_to_override() {
    let sim = Sim::in_process(0, 3);
    let journal = sim.path("run.jsonl");
    start_and_kill(&sim, &journal, &["--check-command", "false"]);
    let before = std::fs::read_to_string(&journal).unwrap();
    // Each contradicting flag named with both values and the way out; nothing written.
    let run = resume(&sim, &journal, &["--check-command", "true", "--max-failures", "1"]);
    assert_eq!(run.exit(), ExitCode::BadInput, "{}", run.debug());
    for says in [
        r#"--check-command "true" (the journal says "false")"#,
        "--max-failures 1 (the journal says 0)",
        "resume without those flags to keep the journaled values, or add --override-journal",
    ] {
        assert!(run.error().contains(says), "{says}: {}", run.debug());
    }
    assert_eq!(std::fs::read_to_string(&journal).unwrap(), before, "a refused resume writes nothing");
    // With --override-journal the given values win, and the journal says which.
    let run = resume(&sim, &journal, &["--check-command", "true", "--override-journal"]);
    assert_eq!(run.exit(), ExitCode::Ok, "{}", run.debug());
    assert!(run.outcomes().values().all(|(outcome, _)| *outcome == Outcome::Rebooted), "{}", run.debug());
    assert_eq!(overridden(&journal), [vec!["check_command".to_owned()]]);
}

#[test]
fn a_journal_from_before_the_policy_was_recorded_resumes_with_todays_and_says_so() {
    let sim = Sim::in_process(0, 2);
    let journal = sim.path("run.jsonl");
    start_and_kill(&sim, &journal, &[]);
    // The run_started record as an older fleetboot wrote it: settings without the policy.
    let text = std::fs::read_to_string(&journal).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert!(first["settings"].as_object_mut().unwrap().remove("policy").is_some(), "{first}");
    lines[0] = first.to_string();
    std::fs::write(&journal, lines.join("\n") + "\n").unwrap();
    let run = resume(&sim, &journal, &["--check-command", "true"]);
    assert_eq!(run.exit(), ExitCode::Ok, "{}", run.debug());
    let warning = run.warnings().into_iter().next().unwrap_or_default();
    assert!(warning.contains("was written before fleetboot recorded its") && warning.contains("check command"), "{}", run.debug());
    assert!(warning.contains("today's configuration"), "{warning}");
}

#[test]
fn a_soft_reboot_is_reported_as_such_at_once_and_not_escalated() {
    let sim = Sim::in_process(0, 2);
    // `systemctl soft-reboot` restarts userspace only: the node's SSH goes away and comes back
    // with the same boot ID. A 10-minute deadline: waiting for it would hang the test.
    let soft = ["--nodes", "worker-0", "--command", "sudo systemctl soft-reboot", "--reboot-timeout", "10m", "--poll-interval", "200ms"];
    let run = sim.reboot_in_process(&soft);
    assert_eq!(run.exit(), ExitCode::HostsFailed, "not a proven reboot: {}", run.debug());
    let (outcome, error) = run.outcomes()["worker-0"].clone();
    assert_eq!(outcome, Outcome::SoftRebooted, "{}", run.debug());
    assert!(error.contains("soft-rebooted, not a kernel reboot") && error.contains("SoftRebootsCount 0 → 1"), "{error}");
    // The node's own history: one soft reboot, no kernel reboot, no BMC reset.
    let nodes: serde_json::Value = serde_json::from_str(&sim.control("GET", "nodes", "")).unwrap();
    let worker = nodes.as_array().unwrap().iter().find(|n| n["name"] == "worker-0").unwrap();
    let history: Vec<&str> = worker["history"].as_array().unwrap().iter().map(|e| e[1].as_str().unwrap()).collect();
    assert_eq!(history.iter().filter(|w| **w == "soft-reboot").count(), 1, "{history:?}");
    assert!(!history.iter().any(|w| ["down", "power-cycle", "reboot-requested"].contains(w)), "{history:?}");
    // The journal says so, and a resume leaves the host alone.
    let journal = run.journal();
    let (records, _) = load(&journal).unwrap();
    assert!(records.iter().any(|r| matches!(&r.entry, Entry::SoftRebooted { count_before: 0, count_after: 1, .. })));
    assert!(!records.iter().any(|r| matches!(&r.entry, Entry::FallingBack { .. })));
}

#[test]
fn a_soft_reboot_of_an_openssh_node_is_reported_as_such() {
    // Real sshd nodes (scripts/fake-node.sh): the soft reboot kills sshd, brings it back, keeps
    // the boot ID and counts SoftRebootsCount up.
    let fleet = crate::common::Fleet::up(2);
    let run = fleet.reboot(&["--command", "sudo systemctl soft-reboot", "--reboot-timeout", "10m", "--max-failures", "2"]);
    assert_eq!(run.code, 3, "{}", run.debug());
    for (host, (outcome, error)) in run.outcomes() {
        assert_eq!(outcome, "soft_rebooted", "{host}: {}", run.debug());
        assert!(error.contains("SoftRebootsCount 0 → 1"), "{host}: {error}");
    }
    for name in &fleet.names {
        let events: Vec<String> = fleet.events(name).into_iter().map(|(_, what)| what).collect();
        assert_eq!(events, ["reboot-requested soft", "down", "up"], "{name}: one soft reboot, nothing more");
    }
}

/// A request with its own Host header; (status, body). 0: no answer at all.
fn request(sim: &Sim, host: &str, head: &str, body: &[u8]) -> (u16, String) {
    let address = sim.api.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let _ = write!(stream, "{head}\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let code = response.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, response.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned())
}

#[test]
fn the_control_endpoint_takes_only_json_from_a_loopback_host() {
    let sim = Sim::start(0, 1);
    let local = sim.api.trim_start_matches("http://").to_owned();
    let outage = br#"{"seconds": 600}"#;
    // A page in a browser can POST text/plain (no preflight), or reach 127.0.0.1 through a
    // rebound DNS name: neither may switch a fault on.
    let cases = [
        (local.as_str(), "POST /sim/v1/outage HTTP/1.1\r\nContent-Type: text/plain", 415),
        (local.as_str(), "POST /sim/v1/outage HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded", 415),
        (local.as_str(), "POST /sim/v1/outage HTTP/1.1", 415),
        ("attacker.example", "POST /sim/v1/outage HTTP/1.1\r\nContent-Type: application/json", 403),
        ("attacker.example:80", "GET /sim/v1/nodes HTTP/1.1\r\nContent-Type: application/json", 403),
    ];
    for (host, head, code) in cases {
        let (got, body) = request(&sim, host, head, outage);
        assert_eq!(got, code, "{host} {head}: {body}");
        let status: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(status["code"], code, "{status}");
    }
    // No outage happened: the API answers.
    assert!(sim.kubectl_ok(&["get", "nodes"]).contains("worker-0"));
    // The same request as JSON from localhost is served.
    let port = local.rsplit(':').next().unwrap();
    let (got, body) = request(&sim, &format!("localhost:{port}"), "GET /sim/v1/nodes HTTP/1.1\r\nContent-Type: application/json", b"");
    assert_eq!(got, 200, "{body}");
}

/// Pieces of requests: what the API and the control endpoint parse.
fn path_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("api".to_owned()),
        Just("apis".to_owned()),
        Just("v1".to_owned()),
        Just("nodes".to_owned()),
        Just("worker-0".to_owned()),
        Just("namespaces".to_owned()),
        Just("default".to_owned()),
        Just("pods".to_owned()),
        Just("status".to_owned()),
        Just("sim".to_owned()),
        Just("faults".to_owned()),
        Just("bmc".to_owned()),
        Just("machineconfiguration.openshift.io".to_owned()),
        Just("machineconfigpools".to_owned()),
        Just("%".to_owned()),
        Just("%é".to_owned()),
        Just("%€".to_owned()),
        Just("%%zz".to_owned()),
        Just("..".to_owned()),
        "[a-z%é€0-9._~+-]{0,12}",
    ]
}

fn query_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("watch=true&timeoutSeconds=0".to_owned()),
        Just("labelSelector=a%€b".to_owned()),
        Just("labelSelector=a%20in%20(".to_owned()),
        Just("fieldSelector=spec.nodeName%3D%E2".to_owned()),
        Just("resourceVersion=-1".to_owned()),
        Just("limit=99999999999999999999&continue=%".to_owned()),
        "[a-zA-Z=&%é€0-9()!,.+-]{0,24}",
    ]
}

fn body_piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"{}".to_vec()),
        Just(br#"{"metadata": {"labels": {"a": null}}, "spec": {"unschedulable": "yes"}}"#.to_vec()),
        Just(br#"[{"op": "remove", "path": "/metadata/~2"}, {"op": "move", "from": "/spec", "path": "/spec/x"}]"#.to_vec()),
        Just(br#"[{"op": "add", "path": "/status/conditions/-1", "value": 1}]"#.to_vec()),
        Just(br#"{"spec": {"$patch": "replace"}, "status": {"conditions": [{"$patch": "delete"}]}}"#.to_vec()),
        Just(br#"{"metadata": {"resourceVersion": "abc", "name": 7}}"#.to_vec()),
        Just(br#"{"seconds": "many", "stall": 3, "never_returns": "yes"}"#.to_vec()),
        Just(b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[".to_vec()),
        Just("{\"é\": \"\u{0}\"}".as_bytes().to_vec()),
        proptest::collection::vec(any::<u8>(), 0..64),
    ]
}

/// Malformed paths, queries, bodies and patches: every request gets an answer (a panic in the
/// server ends the connection unanswered), and a well-formed request works after each.
#[test]
fn no_malformed_request_stops_the_simulation_serving() {
    let sim = Sim::start(0, 1);
    let local = sim.api.trim_start_matches("http://").to_owned();
    let method = prop_oneof![Just("GET"), Just("POST"), Just("PUT"), Just("PATCH"), Just("DELETE")];
    let content_type = prop_oneof![
        Just("application/json"),
        Just("application/json"),
        Just("application/merge-patch+json"),
        Just("application/strategic-merge-patch+json"),
        Just("application/json-patch+json"),
        Just("application/apply-patch+yaml"),
        Just("text/plain"),
    ];
    // Real resources (so the handlers and the patch code run) or random segments, and maybe a
    // random tail.
    let path = prop_oneof![
        3 => prop_oneof![
            Just("api/v1/nodes/worker-0"),
            Just("api/v1/nodes/worker-0/status"),
            Just("api/v1/namespaces/default/pods"),
            Just("api/v1/namespaces/openshift-machine-api/secrets"),
            Just("apis/machineconfiguration.openshift.io/v1/machineconfigpools/worker"),
            Just("apis/operator.openshift.io/v1/networks/cluster"),
            Just("apis/coordination.k8s.io/v1/namespaces/kube-system/leases"),
            Just("sim/v1/nodes/worker-0/faults"),
            Just("sim/v1/nodes/worker-0/bmc"),
            Just("sim/v1/nodes"),
        ]
        .prop_map(|p| vec![p.to_owned()]),
        1 => proptest::collection::vec(path_piece(), 0..7),
    ];
    let tail = proptest::option::of(path_piece());
    let cases = (
        method,
        (path, tail).prop_map(|(mut path, tail)| {
            path.extend(tail);
            path
        }),
        any::<bool>(),
        proptest::option::of(query_piece()),
        content_type,
        body_piece(),
    );
    let config = ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let result = runner.run(&cases, |(method, pieces, sim_prefix, query, content_type, body)| {
        let mut path = if sim_prefix && !pieces.first().is_some_and(|p| p.contains('/')) { "/sim/v1/".to_owned() } else { "/".to_owned() };
        path.push_str(&pieces.join("/"));
        if let Some(query) = query {
            path.push('?');
            path.push_str(&query);
        }
        let head = format!("{method} {path} HTTP/1.1\r\nContent-Type: {content_type}");
        let (code, answer) = request(&sim, &local, &head, &body);
        prop_assert!(code != 0, "no answer to {head:?}: {answer}");
        let (code, answer) = request(&sim, &local, "GET /api/v1/nodes HTTP/1.1\r\nAccept: application/json", b"");
        prop_assert_eq!(code, 200, "after {:?}: {}", head, answer);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
