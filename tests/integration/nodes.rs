//! Node discovery and cluster-sourced reboots against the simulated cluster, checked with
//! kubectl as the independent client. The reboots run the engine in process against the
//! simulation started in the test (common/inproc.rs); `fleetboot nodes`, the plans a person
//! reads, and the runs that must be killed or name their process keep the binary.

use crate::common::sim::Sim;
use crate::common::{Run, max_overlap, wait_for_dispatches};
use fleetboot::ExitCode;
use fleetboot_core::events::{Event, Outcome};

const IPS: &str = r#"jsonpath={.items[*].status.addresses[?(@.type=="InternalIP")].address}"#;

fn out(sim: &Sim, args: &[&str]) -> (i32, String, String) {
    let o = sim.fleetboot(args).output().unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn nodes_ips_equals_the_documents_jsonpath_and_selectors_work() {
    let sim = Sim::start(3, 3);
    let kubectl = sim.kubectl_ok(&["get", "nodes", "-o", IPS]);
    let (code, ours, err) = out(&sim, &["nodes", "-o", "ips"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(ours, kubectl, "byte for byte what the document's jsonpath prints");

    let kubectl_workers = sim.kubectl_ok(&["get", "nodes", "-l", "node-role.kubernetes.io/worker", "-o", IPS]);
    let (_, workers, _) = out(&sim, &["nodes", "--role", "worker", "-o", "ips"]);
    assert_eq!(workers, kubectl_workers);

    let (_, table, _) = out(&sim, &["nodes"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table.contains("master-0") && table.contains("control-plane,master") && table.contains("Ready") && table.contains(" master\n"),
        "{table}"
    );
    let (_, json, _) = out(&sim, &["nodes", "-o", "json", "-l", "topology.kubernetes.io/zone=zone-a"]);
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    let names: Vec<&str> = parsed.as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["master-0", "worker-0"]);
    let boot_id = sim.kubectl_ok(&["get", "node", "worker-0", "-o", "jsonpath={.status.nodeInfo.bootID}"]);
    assert_eq!(parsed[1]["bootID"], boot_id.as_str());
    assert_eq!(parsed[1]["pool"], "worker");

    let (code, _, err) = out(&sim, &["nodes", "-l", "a b"]);
    assert_ne!(code, 0);
    assert!(err.contains("bad selector \"a b\""), "{err}");
}

#[test]
fn reboot_from_the_cluster_by_role_with_exclusions() {
    // In process (the engine), but for the plan a person reads (the binary's --dry-run).
    let sim = Sim::in_process(1, 3);
    let run = sim.reboot_in_process(&["--role", "worker", "--exclude", "worker-2", "--concurrency", "2", "--poll-interval", "200ms"]);
    assert_eq!(run.exit(), ExitCode::Ok, "{}", run.debug());
    let outcomes = run.outcomes();
    assert_eq!(outcomes.keys().collect::<Vec<_>>(), ["worker-0", "worker-1"]);
    let unknown = sim.reboot_in_process(&["--nodes", "worker-9"]);
    assert_eq!(unknown.exit(), ExitCode::BadInput, "{}", unknown.debug());
    let err = unknown.error();
    assert!(err.contains("no such node in the cluster") && err.contains("worker-9"), "{err}");
    assert!(unknown.events.is_empty(), "refused before the run started: {}", unknown.debug());
    let (code, plan, _) = out(&sim, &["reboot", "--all", "--dry-run"]);
    assert_eq!(code, 0);
    for name in ["master-0", "worker-0", "worker-1", "worker-2"] {
        assert!(plan.contains(name), "{plan}");
    }
}

#[test]
fn cluster_reboots_are_proven_through_the_api_even_across_an_api_outage() {
    use fleetboot::adapters::journal;
    use fleetboot_core::journal::Entry;
    use std::time::Duration;
    let sim = Sim::in_process(1, 3);
    let journal_arg = sim.path("run.jsonl");
    let args = ["--all", "--concurrency", "4", "--poll-interval", "200ms", "--journal", journal_arg.to_str().unwrap()];
    let (run, outage_start) = std::thread::scope(|scope| {
        let run = scope.spawn(|| sim.reboot_in_process(&args));
        // Once reboots are under way, the API goes away for 3 s: the nodes come back Ready meanwhile.
        wait_for_dispatches(&sim.path("run.jsonl"), 1, Duration::from_secs(20));
        let outage_start = fleetboot::adapters::system::now_ms();
        sim.control("POST", "outage", r#"{"seconds": 3}"#);
        (run.join().unwrap(), outage_start)
    });
    assert_eq!(run.exit(), ExitCode::Ok, "{}", run.debug());
    let (records, state) = journal::load(&sim.path("run.jsonl")).unwrap();
    assert!(state.api_proof);
    for host in &state.hosts {
        let ssh_new = records.iter().find_map(|r| match &r.entry {
            Entry::Back { host: h, new_boot_id, api_only: false } if *h == host.name => Some(new_boot_id.clone()),
            _ => None,
        });
        let api_new = records.iter().find_map(|r| match &r.entry {
            Entry::ApiConfirmed { host: h, boot_id } if *h == host.name => Some(boot_id.clone()),
            _ => None,
        });
        assert!(ssh_new.is_some(), "{}: no SSH evidence", host.name);
        let api_at = records.iter().find(|r| matches!(&r.entry, Entry::ApiConfirmed { host: h, .. } if *h == host.name)).unwrap().at_ms;
        assert!(api_at >= outage_start + 2900, "{}: API evidence while the API was down?", host.name);
        assert_eq!(api_new, ssh_new, "{}: the API and SSH saw the same new boot ID", host.name);
    }
}

#[test]
fn groups_limit_each_pool_and_the_control_plane_goes_last_one_at_a_time() {
    // In process (the engine), but for the plan a person reads (the binary's --dry-run).
    let sim = Sim::in_process(3, 4);
    let (code, plan, err) = out(&sim, &["reboot", "--all", "--concurrency", "4", "--group-concurrency", "2", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(plan.contains("worker (≤2 at once)") && plan.contains("master (≤1 at once, after all others)"), "{plan}");
    let run = sim.reboot_in_process(&["--all", "--concurrency", "4", "--group-concurrency", "2", "--poll-interval", "200ms"]);
    assert_eq!(run.exit(), ExitCode::Ok, "{}", run.debug());
    let intervals = sim.reboot_intervals();
    assert_eq!(intervals.len(), 7, "every node rebooted once: {intervals:?}");
    let of = |prefix: &str| intervals.iter().filter(|(n, ..)| n.starts_with(prefix)).map(|(_, a, b)| (*a, *b)).collect::<Vec<_>>();
    let (masters, workers) = (of("master"), of("worker"));
    assert!(max_overlap(&workers) <= 2, "workers at once: {}", max_overlap(&workers));
    assert!(max_overlap(&masters) <= 1, "masters at once: {}", max_overlap(&masters));
    let first_master = masters.iter().map(|(a, _)| *a).min().unwrap();
    let last_worker_up = workers.iter().map(|(_, b)| *b).max().unwrap();
    assert!(first_master > last_worker_up, "masters start only after every worker is back");
}

#[test]
fn all_at_once_is_the_documents_behaviour() {
    let sim = Sim::in_process(2, 3);
    let run = sim.reboot_in_process(&["--all", "--all-at-once", "--poll-interval", "200ms"]);
    assert_eq!(run.exit(), ExitCode::Ok, "{}", run.debug());
    // All at once: no limit held any host (no `waiting` event, masters included), and every
    // node went down exactly once. What the run decided, not how fast a loaded machine carried
    // it out: under a full parallel test run, sending five reboots can take longer than a
    // simulated node's two-second cycle.
    let waited: Vec<&Event> = run.events.iter().filter(|e| matches!(e, Event::Waiting { .. })).collect();
    assert!(waited.is_empty(), "no host waits on a limit: {waited:?}");
    let intervals = sim.reboot_intervals();
    assert_eq!(intervals.len(), 5, "every node rebooted once: {intervals:?}");
}

#[test]
fn a_second_run_is_refused_while_the_lease_is_held_and_break_lock_takes_it_over() {
    use std::process::Stdio;
    use std::time::Duration;
    let sim = Sim::start(0, 3);
    let first = sim
        .fleetboot(&[
            "reboot",
            "--all",
            "--poll-interval",
            "200ms",
            "--output",
            "json",
            // Short: the run that breaks it waits half of it before its first reboot.
            "--lease-duration",
            "4s",
            "--journal",
            sim.path("first.jsonl").to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_dispatches(&sim.path("first.jsonl"), 1, Duration::from_secs(20));
    let holder = sim.kubectl_ok(&["-n", "kube-system", "get", "lease", "fleetboot", "-o", "jsonpath={.spec.holderIdentity}"]);
    assert!(holder.contains(&format!("pid {}", first.id())), "{holder}");

    let (code, _, err) = out(&sim, &["reboot", "--nodes", "worker-0", "--journal", sim.path("second.jsonl").to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("another fleetboot run holds the lease kube-system/fleetboot") && err.contains(&holder), "{err}");
    assert!(!sim.path("second.jsonl").exists(), "a refused run leaves no journal");

    // The takeover is a warning of the run, rendered by its reporter (stdout).
    let (code, shown, err) = out(&sim, &["reboot", "--nodes", "worker-2", "--break-lock", "--poll-interval", "200ms"]);
    assert_eq!(code, 0, "{err}");
    assert!(shown.contains(&format!("took the fleetboot lease over from {holder}")), "{shown}");
    assert!(shown.contains("waiting 4s before the first reboot"), "the holder's whole lease: {shown}");
    let mut first = first;
    first.kill().unwrap();
    first.wait().unwrap();
}

#[test]
fn a_stale_lease_is_taken_over() {
    let sim = Sim::in_process(0, 1);
    let stale = sim.path("stale.json");
    std::fs::write(
        &stale,
        r#"{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"fleetboot","namespace":"kube-system"},
        "spec":{"holderIdentity":"gone@elsewhere pid 1","leaseDurationSeconds":2,"renewTime":"2020-01-01T00:00:00.000000Z"}}"#,
    )
    .unwrap();
    sim.kubectl_ok(&["create", "--validate=false", "-f", stale.to_str().unwrap()]);
    let journal = sim.path("run.jsonl");
    // Expired by its holder's clock, then watched unchanged for its 2 s on this machine's clock.
    let run = sim.reboot_in_process(&["--all", "--poll-interval", "200ms", "--journal", journal.to_str().unwrap()]);
    assert_eq!(run.exit(), ExitCode::Ok, "{}", run.debug());
    let warnings = run.warnings();
    assert!(warnings.iter().any(|w| w == "took the fleetboot lease over from gone@elsewhere pid 1"), "{warnings:?}");
    let (records, _) = fleetboot::adapters::journal::load(&journal).unwrap();
    assert!(
        matches!(&records[1].entry, fleetboot_core::journal::Entry::LeaseTakenOver { previous_holder, holder }
            if previous_holder == "gone@elsewhere pid 1" && holder.contains(" run ")),
        "the takeover is journaled right after run_started: {:?}",
        records[1]
    );
    let (ok, _, _) = sim.kubectl(&["-n", "kube-system", "get", "lease", "fleetboot"]);
    assert!(!ok, "the lease is released at the end of the run");
}

/// `reboot --nodes worker-0 --drain --drain-timeout TIMEOUT`, in process, journaled in the
/// simulation's directory.
fn drain_worker_0(sim: &Sim, timeout: &str) -> crate::common::inproc::EngineRun {
    let journal = sim.path(&format!("drain-{timeout}.jsonl"));
    let args = ["--nodes", "worker-0", "--drain", "--drain-timeout", timeout, "--poll-interval", "200ms", "--journal"];
    sim.reboot_in_process(&[&args[..], &[journal.to_str().unwrap()]].concat())
}

/// Every eviction fails (the API answers 500) until the drain timeout: the host's failure names
/// the pod left and the API's last answer to its eviction, not the pod alone.
#[test]
fn a_drain_timed_out_on_failing_evictions_names_each_pods_last_answer() {
    let sim = Sim::in_process(0, 2);
    sim.pin_app_a_under_a_zero_disruption_budget();
    sim.set_app_a_disruptions_allowed(1);
    sim.control("POST", "fail-requests", r#"{"method": "POST", "resource": "pods", "count": 1000}"#);
    let run = drain_worker_0(&sim, "2s");
    assert_eq!(run.exit(), ExitCode::HostsFailed, "{}", run.debug());
    let why = &run.outcomes()["worker-0"].1;
    assert!(
        why.starts_with(
            "drain: pods still on the node after 2s: default/app-a (the last eviction's answer: etcdserver: request timed out (500 InternalError))"
        ),
        "{why}"
    );
    assert!(sim.kubectl_ok(&["-n", "default", "get", "pods", "-o", "name"]).contains("pod/app-a"));
}

/// A pod its budget protects does not hold the node's other pods back: they are evicted, and the
/// timed-out drain names the protected pod alone. (The evictions now run at once, as `kubectl
/// drain` runs one per pod; one after the other, app-b was evicted too, but only at the drain's
/// deadline, behind app-a's eviction which the client retried until then: a difference in time
/// this test does not assert.)
#[test]
fn a_pod_its_budget_protects_does_not_hold_back_the_eviction_of_the_others() {
    let sim = Sim::in_process(0, 2);
    sim.pin_app_a_under_a_zero_disruption_budget();
    let manifest = sim.path("app-b.json");
    std::fs::write(
        &manifest,
        r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"app-b","namespace":"default","labels":{"app":"b"}},
        "spec":{"nodeName":"worker-0","containers":[{"name":"b","image":"example/b"}]},"status":{"phase":"Running"}}"#,
    )
    .unwrap();
    sim.kubectl_ok(&["create", "--validate=false", "-f", manifest.to_str().unwrap()]);
    let run = drain_worker_0(&sim, "3s");
    assert_eq!(run.exit(), ExitCode::HostsFailed, "{}", run.debug());
    let why = &run.outcomes()["worker-0"].1;
    assert!(why.starts_with("drain: pods still on the node after 3s: default/app-a ("), "{why}");
    assert!(!why.contains("app-b"), "{why}");
    let pods = sim.kubectl_ok(&["-n", "default", "get", "pods", "-o", "name"]);
    assert!(pods.contains("pod/app-a") && !pods.contains("pod/app-b"), "app-b evicted while app-a's eviction waited: {pods}");
}

/// A pod its budget protects is asked for again every 5 s, as `kubectl drain` asks
/// (k8s.io/kubectl release-1.33 pkg/drain/drain.go `evictPods`: `EvictErrorRetryDelay` after a
/// 429), counted by the simulation: kube's client had retried each 429 itself, from 5 ms
/// apart, so a 6 s drain sent a dozen evictions of the one pod (10 per node at 200 nodes).
#[test]
fn a_protected_pods_eviction_is_asked_again_every_5s_not_retried_by_the_client() {
    let sim = Sim::in_process(0, 2);
    sim.pin_app_a_under_a_zero_disruption_budget();
    // The node's other pods (the platform's and a sample app's), each evicted once (201).
    let owners = "{range .items[*]}{.metadata.namespace}/{.metadata.name} {.metadata.ownerReferences[0].kind}{\"\\n\"}{end}";
    let on_node = sim.kubectl_ok(&["get", "pods", "-A", "--field-selector", "spec.nodeName=worker-0", "-o", &format!("jsonpath={owners}")]);
    let others = on_node.lines().filter(|l| !l.ends_with(" DaemonSet") && !l.starts_with("default/app-a ")).count() as u64;
    sim.control("POST", "traffic/reset", "{}");
    let run = drain_worker_0(&sim, "6s");
    assert_eq!(run.exit(), ExitCode::HostsFailed, "{}", run.debug());
    let why = &run.outcomes()["worker-0"].1;
    assert!(
        why.contains("default/app-a (the last eviction's answer: Cannot evict pod as it would violate the pod's disruption budget."),
        "{why}"
    );
    let traffic: serde_json::Value = serde_json::from_str(&sim.control("GET", "traffic", "")).unwrap();
    let evictions = traffic["POST pods/eviction"]["requests"].as_u64().unwrap_or(0);
    // app-a's at the drain's start and 5 s later: two within 6 s, whatever the machine's load.
    let protected = evictions.saturating_sub(others);
    assert!(
        others >= 1 && (1..=2).contains(&protected),
        "{protected} evictions of app-a in a 6 s drain ({others} other pods): {on_node}\n{traffic}"
    );
}

#[test]
fn drain_waits_on_a_pdb_fails_cleanly_then_drains_reboots_and_uncordons() {
    use fleetboot::adapters::journal;
    use fleetboot_core::journal::Entry;
    let sim = Sim::in_process(0, 2);
    sim.pin_app_a_under_a_zero_disruption_budget();

    // The PDB allows no disruption: the drain times out, the host fails, nothing reboots,
    // and the node is schedulable again.
    let journal1 = sim.path("one.jsonl");
    let drain = ["--nodes", "worker-0", "--drain", "--drain-timeout", "2s", "--poll-interval", "200ms"];
    let run = sim.reboot_in_process(&[&drain[..], &["--journal", journal1.to_str().unwrap()]].concat());
    assert_eq!(run.exit(), ExitCode::HostsFailed, "{}", run.debug());
    assert!(run.outcomes()["worker-0"].1.starts_with("drain: pods still on the node after 2s: default/app-a"), "{:?}", run.outcomes());
    // What became of its last eviction: the budget's 429, as the API said it.
    let last = "default/app-a (the last eviction's answer: Cannot evict pod as it would violate the pod's disruption budget. (429 TooManyRequests))";
    assert!(run.outcomes()["worker-0"].1.contains(last), "{:?}", run.outcomes());
    assert_eq!(sim.kubectl_ok(&["get", "node", "worker-0", "-o", "jsonpath={.spec.unschedulable}"]), "");
    assert!(sim.kubectl_ok(&["-n", "default", "get", "pods", "-o", "name"]).contains("pod/app-a"));
    let history = sim.control("GET", "nodes", "");
    assert!(!history.contains("reboot-requested"), "{history}");

    // The PDB allows one disruption: drained (the DaemonSet pod stays), rebooted, uncordoned.
    sim.set_app_a_disruptions_allowed(1);
    let journal2 = sim.path("two.jsonl");
    let run =
        sim.reboot_in_process(&["--nodes", "worker-0", "--drain", "--poll-interval", "200ms", "--journal", journal2.to_str().unwrap()]);
    assert_eq!(run.exit(), ExitCode::Ok, "{}", run.debug());
    assert!(!sim.kubectl_ok(&["-n", "default", "get", "pods", "-o", "name"]).contains("app-a"));
    let daemons = sim.kubectl_ok(&[
        "-n",
        "openshift-machine-config-operator",
        "get",
        "pods",
        "--field-selector",
        "spec.nodeName=worker-0",
        "-o",
        "name",
    ]);
    assert_eq!(daemons.lines().count(), 1, "the DaemonSet pod was not evicted: {daemons}");
    assert_eq!(sim.kubectl_ok(&["get", "node", "worker-0", "-o", "jsonpath={.spec.unschedulable}"]), "");
    let (records, state) = journal::load(&journal2).unwrap();
    let order: Vec<&str> = records
        .iter()
        .filter_map(|r| match &r.entry {
            Entry::Cordoning { .. } => Some("cordoning"),
            // app-a and the default workloads' pods of worker-0.
            Entry::Drained { evicted, .. } if *evicted >= 1 => Some("drained"),
            Entry::Dispatching { .. } => Some("dispatching"),
            Entry::Confirmed { .. } => Some("confirmed"),
            Entry::Uncordoned { .. } => Some("uncordoned"),
            _ => None,
        })
        .collect();
    assert_eq!(order, ["cordoning", "drained", "dispatching", "confirmed", "uncordoned"]);
    assert!(!state.records["worker-0"].cordoned);

    let refused = sim.reboot_in_process(&["--host", "127.0.0.1", "--drain"]);
    assert_eq!(refused.exit(), ExitCode::BadInput, "{}", refused.debug());
    assert!(refused.error().contains("--drain works on cluster nodes"), "{}", refused.debug());
    assert!(refused.events.is_empty(), "refused before the run started: {}", refused.debug());
}

/// How many times each node was asked to reboot, from the simulation's own history.
fn reboot_requests(sim: &Sim) -> std::collections::BTreeMap<String, usize> {
    sim.history_counts("reboot-requested")
}

fn schedulable(sim: &Sim, node: &str) -> bool {
    sim.kubectl_ok(&["get", "node", node, "-o", "jsonpath={.spec.unschedulable}"]).is_empty()
}

#[test]
fn a_killed_cluster_run_with_drain_resumes_reclaims_its_lease_and_reboots_each_node_once() {
    use fleetboot::adapters::journal;
    use fleetboot_core::journal::Entry;
    use std::process::Stdio;
    use std::time::Duration;
    let sim = Sim::start(0, 4);
    let journal_path = sim.path("run.jsonl");
    let mut child = sim
        .fleetboot(&[
            "reboot",
            "--all",
            "--drain",
            "--concurrency",
            "2",
            "--poll-interval",
            "200ms",
            "--output",
            "json",
            "--journal",
            journal_path.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_dispatches(&journal_path, 2, Duration::from_secs(20));
    child.kill().unwrap(); // SIGKILL: no cleanup, the lease and the cordons stay behind.
    child.wait().unwrap();
    let holder = sim.kubectl_ok(&["-n", "kube-system", "get", "lease", "fleetboot", "-o", "jsonpath={.spec.holderIdentity}"]);
    assert!(holder.contains(&format!("pid {}", child.id())), "{holder}");

    // Another run is still refused: the lease is fresh and is not its own.
    let (code, _, err) = out(&sim, &["reboot", "--nodes", "worker-3", "--journal", sim.path("other.jsonl").to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");

    let run = Run::from(
        sim.fleetboot(&["reboot", "--resume", journal_path.to_str().unwrap(), "--poll-interval", "200ms", "--output", "json"])
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "{}", run.debug());
    assert!(run.stdout.contains("took the fleetboot lease over from"), "{}", run.debug());
    let requests = reboot_requests(&sim);
    assert_eq!(requests.len(), 4);
    assert!(requests.values().all(|&n| n == 1), "each node rebooted exactly once: {requests:?}");
    for node in requests.keys() {
        assert!(schedulable(&sim, node), "{node} was left cordoned");
    }
    let (records, state) = journal::load(&journal_path).unwrap();
    assert!(records.iter().any(|r| matches!(&r.entry, Entry::LeaseTakenOver { previous_holder, .. } if *previous_holder == holder)));
    assert!(state.records.values().all(|r| !r.cordoned && r.phase == fleetboot_core::journal::Phase::Confirmed), "{:?}", state.records);
    let (ok, _, _) = sim.kubectl(&["-n", "kube-system", "get", "lease", "fleetboot"]);
    assert!(!ok, "the resumed run released the lease");
}

#[test]
fn resume_uncordons_a_node_an_interrupted_run_left_cordoned_without_rebooting_it() {
    use fleetboot::adapters::journal::JournalWriter;
    use fleetboot_core::journal::{Entry, JOURNAL_VERSION, Record};
    let sim = Sim::in_process(0, 1);
    let address = sim.kubectl_ok(&["get", "node", "worker-0", "-o", r#"jsonpath={.status.addresses[?(@.type=="InternalIP")].address}"#]);
    let boot_id = sim.kubectl_ok(&["get", "node", "worker-0", "-o", "jsonpath={.status.nodeInfo.bootID}"]);
    sim.kubectl_ok(&["cordon", "worker-0"]);
    // The journal of a run killed between "confirmed" and "uncordoned".
    let host = fleetboot_core::hosts::Host { name: "worker-0".into(), address, port: None };
    let path = sim.path("interrupted.jsonl");
    let mut writer = JournalWriter::create(&path).unwrap();
    let h = || "worker-0".to_owned();
    for entry in [
        Entry::RunStarted {
            run_id: "r-test".into(),
            command: "sudo shutdown -r -t 3".into(),
            hosts: vec![host],
            api_proof: true,
            grouping: None,
            drain: Some(fleetboot_core::nodes::DrainPolicy { timeout_ms: 1000, on_failure: fleetboot_core::nodes::DrainFailure::Fail }),
            cluster: None,
            settings: None,
        },
        Entry::BootIdRead { host: h(), boot_id: "old".into() },
        Entry::Cordoning { host: h(), already_cordoned: false },
        Entry::Drained { host: h(), evicted: 0 },
        Entry::Dispatching { host: h(), old_boot_id: "old".into(), bmc: None },
        Entry::Back { host: h(), new_boot_id: boot_id.clone(), api_only: false },
        Entry::ApiConfirmed { host: h(), boot_id },
        Entry::Confirmed { host: h() },
    ] {
        writer.append(&Record { v: JOURNAL_VERSION, at_ms: 1, entry }).unwrap();
    }
    drop(writer);
    let run = sim.reboot_in_process(&["--resume", path.to_str().unwrap()]);
    assert_eq!(run.exit(), ExitCode::Ok, "{}", run.debug());
    assert!(schedulable(&sim, "worker-0"));
    assert_eq!(reboot_requests(&sim)["worker-0"], 0, "a confirmed node is not rebooted again");
    let (_, state) = fleetboot::adapters::journal::load(&path).unwrap();
    assert!(!state.records["worker-0"].cordoned);
}

#[test]
fn drain_failure_skip_leaves_the_node_alone_and_force_deletes_what_blocks() {
    // No default workloads: with a 1s drain timeout, worker-1's drain would race the router's
    // replacement coming Ready after worker-0's attempt (its budget holding it meanwhile).
    let sim = Sim::in_process_with(0, 2, &["--workloads", "0"]);
    sim.pin_app_a_under_a_zero_disruption_budget();
    let pods = || sim.kubectl_ok(&["-n", "default", "get", "pods", "-o", "name"]);

    // skip: worker-0 is skipped (not failed), uncordoned, its pod kept; worker-1 goes on.
    let run = sim.reboot_in_process(&["--all", "--drain", "--drain-timeout", "1s", "--drain-failure", "skip", "--poll-interval", "200ms"]);
    assert_eq!(run.exit(), ExitCode::Incomplete, "skipped hosts make the run incomplete, not failed: {}", run.debug());
    let outcomes = run.outcomes();
    assert_eq!(outcomes["worker-0"].0, Outcome::Skipped, "{outcomes:?}");
    assert!(outcomes["worker-0"].1.contains("default/app-a"), "{outcomes:?}");
    assert_eq!(outcomes["worker-1"].0, Outcome::Rebooted, "{outcomes:?}");
    assert!(schedulable(&sim, "worker-0") && pods().contains("pod/app-a"));
    assert_eq!(reboot_requests(&sim), [("worker-0".to_owned(), 0), ("worker-1".to_owned(), 1)].into());

    // force: the pod the PDB protects is deleted after the timeout, then the node reboots.
    let force = ["--nodes", "worker-0", "--drain", "--drain-timeout", "1s", "--drain-failure", "force", "--poll-interval", "200ms"];
    let run = sim.reboot_in_process(&force);
    assert_eq!(run.exit(), ExitCode::Ok, "{}", run.debug());
    assert!(!pods().contains("app-a"));
    assert!(schedulable(&sim, "worker-0"));
    assert_eq!(reboot_requests(&sim)["worker-0"], 1);
}

#[test]
fn a_forced_deletion_the_api_fails_once_is_tried_again_and_the_node_reboots() {
    let sim = Sim::in_process_with(0, 1, &["--workloads", "0"]);
    sim.pin_app_a_under_a_zero_disruption_budget();
    // The API server answers the forced deletion's first DELETE 500 (etcd did not answer in
    // time): not its final word, so it is asked again.
    sim.control("POST", "fail-requests", r#"{"method": "DELETE", "resource": "pods", "count": 1}"#);
    let force = ["--nodes", "worker-0", "--drain", "--drain-timeout", "1s", "--drain-failure", "force", "--poll-interval", "200ms"];
    let run = sim.reboot_in_process(&force);
    assert_eq!(run.exit(), ExitCode::Ok, "{}", run.debug());
    assert_eq!(run.outcomes()["worker-0"].0, Outcome::Rebooted, "{}", run.debug());
    assert!(!sim.kubectl_ok(&["-n", "default", "get", "pods", "-o", "name"]).contains("app-a"));
    assert_eq!(reboot_requests(&sim)["worker-0"], 1);
}

#[test]
fn a_reboot_lost_between_journal_and_hand_over_is_sent_again_once_provably_lost() {
    use fleetboot::adapters::journal::JournalWriter;
    use fleetboot_core::journal::{Entry, JOURNAL_VERSION, Record};
    let sim = Sim::in_process(0, 1);
    let address = sim.kubectl_ok(&["get", "node", "worker-0", "-o", r#"jsonpath={.status.addresses[?(@.type=="InternalIP")].address}"#]);
    let boot_id = sim.kubectl_ok(&["get", "node", "worker-0", "-o", "jsonpath={.status.nodeInfo.bootID}"]);
    // A run killed right after journaling `dispatching`, before the command went out.
    let host = fleetboot_core::hosts::Host { name: "worker-0".into(), address, port: None };
    let path = sim.path("lost.jsonl");
    let mut writer = JournalWriter::create(&path).unwrap();
    let then = fleetboot::adapters::system::now_ms() - 3_000;
    for entry in [
        Entry::RunStarted {
            run_id: "r-lost".into(),
            command: "sudo shutdown -r -t 3".into(),
            hosts: vec![host],
            api_proof: false,
            grouping: None,
            drain: None,
            cluster: None,
            settings: None,
        },
        Entry::BootIdRead { host: "worker-0".into(), boot_id: boot_id.clone() },
        Entry::Dispatching { host: "worker-0".into(), old_boot_id: boot_id, bmc: None },
    ] {
        writer.append(&Record { v: JOURNAL_VERSION, at_ms: then, entry }).unwrap();
    }
    drop(writer);
    let config = std::fs::read_to_string(sim.config()).unwrap().replace("[reboot]\n", "[reboot]\nscheduled_delay = \"1s\"\n");
    std::fs::write(sim.path("quick.toml"), config).unwrap();
    let run =
        sim.reboot_in_process_with(&sim.path("quick.toml"), &["--resume", path.to_str().unwrap(), "--poll-interval", "200ms"], |_| None);
    assert_eq!(run.exit(), ExitCode::Ok, "{}", run.debug());
    assert!(run.warnings().iter().any(|w| w.contains("never arrived")), "{}", run.debug());
    assert_eq!(reboot_requests(&sim)["worker-0"], 1, "one reboot reached the node");
    let (records, state) = fleetboot::adapters::journal::load(&path).unwrap();
    assert_eq!(records.iter().filter(|r| matches!(r.entry, Entry::Dispatching { .. })).count(), 2);
    assert_eq!(state.records["worker-0"].phase, fleetboot_core::journal::Phase::Confirmed);
}

/// A read whose connection the API drops (accepted, then closed unanswered: an outage here, a
/// listen queue overflowing under a thousand drains at 10,000 nodes) is sent again, as client-go
/// sends a `GET` again after a reset (k8s.io/client-go release-1.33 `rest/request.go`), and so
/// is a cordon's merge patch (it sets one value); a create is not (it may have landed). Before,
/// each failed at once with "client error (SendRequest)" and failed its node.
#[test]
fn a_read_and_a_cordon_whose_connection_the_api_drops_are_sent_again_a_create_is_not() {
    use k8s_openapi::api::core::v1::{ConfigMap, Node};
    use kube::api::{Api, PostParams};
    let sim = Sim::in_process(0, 1);
    let connection = sim.connection();
    let outage = || sim.control("POST", "outage", r#"{"seconds": 2}"#);
    outage();
    let read = sim.block_on(Api::<Node>::all(connection.client.clone()).get("worker-0"));
    assert!(read.is_ok(), "the read through the outage: {read:?}");
    let policy = fleetboot_core::nodes::DrainPolicy { timeout_ms: 60_000, on_failure: fleetboot_core::nodes::DrainFailure::Fail };
    let drainer = fleetboot::adapters::kube::Drainer::new(&connection, policy);
    outage();
    let cordon = sim.block_on(drainer.set_unschedulable("worker-0", true));
    assert!(cordon.is_ok(), "the cordon through the outage: {cordon:?}");
    assert_eq!(sim.kubectl_ok(&["get", "node", "worker-0", "-o", "jsonpath={.spec.unschedulable}"]), "true");
    outage();
    let map: ConfigMap = serde_json::from_value(serde_json::json!({"metadata": {"name": "written-once", "namespace": "default"}})).unwrap();
    let created = sim.block_on(Api::<ConfigMap>::namespaced(connection.client.clone(), "default").create(&PostParams::default(), &map));
    assert!(matches!(&created, Err(kube::Error::Service(_) | kube::Error::HyperError(_))), "a create is not sent again: {created:?}");
}
