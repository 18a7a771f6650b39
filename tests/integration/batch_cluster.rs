//! Batch gates on the simulated cluster, real processes: blocker pods that appear mid-run, the
//! health gate holding while a ClusterOperator is Degraded, and a PodDisruptionBudget allowing
//! no disruption that the drain ladder defers, then skips, with no deadlock. Judged by the
//! simulation's node history, kubectl, and the journal's records and times.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::Run;
use crate::common::sim::Sim;
use fleetboot::adapters::journal;
use fleetboot_core::journal::{Entry, Record};

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn records(path: &Path) -> Vec<Record> {
    journal::load(path).map(|(r, _)| r).unwrap_or_default()
}

/// Waits (at most `limit`) until the journal holds a record `matches` accepts; returns it.
fn wait_for_record(path: &Path, limit: Duration, what: &str, matches: impl Fn(&Entry) -> bool) -> Record {
    let start = Instant::now();
    loop {
        if let Some(r) = records(path).into_iter().find(|r| matches(&r.entry)) {
            return r;
        }
        assert!(start.elapsed() < limit, "no {what} in {} within {limit:?}", path.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn dispatching(path: &Path) -> Vec<(String, u64)> {
    records(path)
        .into_iter()
        .filter_map(|r| match r.entry {
            Entry::Dispatching { host, .. } => Some((host, r.at_ms)),
            _ => None,
        })
        .collect()
}

fn reboot_requests(sim: &Sim, node: &str) -> usize {
    let nodes: serde_json::Value = serde_json::from_str(&sim.control("GET", "nodes", "")).unwrap();
    let node = nodes.as_array().unwrap().iter().find(|n| n["name"] == node).unwrap().clone();
    node["history"].as_array().unwrap().iter().filter(|e| e[1] == "reboot-requested").count()
}

fn start_reboot(sim: &Sim, journal: &Path, extra: &[&str]) -> Child {
    let mut args = vec!["reboot", "--poll-interval", "200ms", "--output", "json", "--journal", journal.to_str().unwrap()];
    args.extend_from_slice(extra);
    sim.fleetboot(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

fn apply(sim: &Sim, name: &str, json: &str) {
    let file: PathBuf = sim.path(name);
    std::fs::write(&file, json).unwrap();
    sim.kubectl_ok(&["create", "--validate=false", "-f", file.to_str().unwrap()]);
}

fn pod_json(name: &str, labels: &str, node: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","namespace":"sample-app","labels":{labels}}},
            "spec":{{"nodeName":"{node}","containers":[{{"name":"main","image":"registry.example/tool:1"}}]}}}}"#
    )
}

#[test]
fn blocker_pods_that_appear_mid_run_hold_every_new_reboot_until_they_are_gone() {
    let sim = Sim::start(1, 3);
    let journal = sim.path("blockers.jsonl");
    let child = start_reboot(&sim, &journal, &["--nodes", "worker-0,worker-1,worker-2", "--block-on-pods", "app=backup"]);
    // The first reboot is under way: then a backup starts (on another node).
    wait_for_record(&journal, Duration::from_secs(60), "dispatching", |e| matches!(e, Entry::Dispatching { .. }));
    apply(&sim, "backup.json", &pod_json("backup", r#"{"app":"backup"}"#, "worker-2"));
    let held = wait_for_record(
        &journal,
        Duration::from_secs(60),
        "held",
        |e| matches!(e, Entry::Held { reason, .. } if reason.contains("backup")),
    );
    let Entry::Held { reason, .. } = &held.entry else { unreachable!() };
    assert!(reason.contains(r#"pods matching "app=backup" run: sample-app/backup"#), "{reason}");
    let deleting_at = now_ms();
    sim.kubectl_ok(&["-n", "sample-app", "delete", "pod", "backup"]);
    let run = Run::from(child.wait_with_output().unwrap());
    assert_eq!(run.code, 0, "{}", run.debug());
    for node in ["worker-0", "worker-1", "worker-2"] {
        assert_eq!(reboot_requests(&sim, node), 1, "{node}");
    }
    // The reboot in flight finished; no new one went out while the backup ran.
    let sends = dispatching(&journal);
    let before: Vec<_> = sends.iter().filter(|(_, at)| *at <= held.at_ms).collect();
    let during: Vec<_> = sends.iter().filter(|(_, at)| *at > held.at_ms && *at < deleting_at).collect();
    assert_eq!(before.len(), 1, "{sends:?}");
    assert!(during.is_empty(), "reboots sent while the blocker ran: {during:?}");
    assert_eq!(run.outcomes()[&before[0].0].0, "rebooted");
    // Shown live too.
    assert!(run.events().iter().any(|e| e["type"] == "held" && e["reason"].as_str().unwrap_or("").contains("sample-app/backup")));
}

#[test]
fn the_health_gate_holds_while_a_cluster_operator_is_degraded() {
    let sim = Sim::start(1, 2);
    let degraded = |status: &str| {
        let patch = format!(
            r#"{{"status":{{"conditions":[{{"type":"Available","status":"True"}},{{"type":"Degraded","status":"{status}","message":"dns pods crashlooping"}}]}}}}"#
        );
        sim.kubectl_ok(&["patch", "clusteroperator", "dns", "--subresource=status", "--type", "merge", "-p", &patch]);
    };
    degraded("True");
    let journal = sim.path("health.jsonl");
    let child = start_reboot(&sim, &journal, &["--nodes", "worker-0,worker-1", "--healthy-checks", "2", "--healthy-interval", "300ms"]);
    let held = wait_for_record(&journal, Duration::from_secs(60), "held", |e| matches!(e, Entry::Held { .. }));
    let Entry::Held { reason, .. } = &held.entry else { unreachable!() };
    assert!(reason.contains("ClusterOperators dns: Degraded"), "{reason}");
    assert!(dispatching(&journal).is_empty(), "nothing sent while dns is Degraded");
    let healed_at = now_ms();
    degraded("False");
    let run = Run::from(child.wait_with_output().unwrap());
    assert_eq!(run.code, 0, "{}", run.debug());
    let sends = dispatching(&journal);
    assert_eq!(sends.len(), 2, "{sends:?}");
    assert!(sends.iter().all(|(_, at)| *at >= healed_at), "every reboot after dns healed: {sends:?} vs {healed_at}");
    for node in ["worker-0", "worker-1"] {
        assert_eq!(reboot_requests(&sim, node), 1, "{node}");
    }
}

#[test]
fn a_budget_allowing_no_disruption_is_deferred_then_skipped_and_nothing_deadlocks() {
    let sim = Sim::start(1, 3);
    // A tool pod pinned to worker-0 under a budget that allows no disruption.
    apply(&sim, "pinned.json", &pod_json("pinned-tool", r#"{"fleetboot-test":"pinned"}"#, "worker-0"));
    apply(
        &sim,
        "pinned-pdb.json",
        r#"{"apiVersion":"policy/v1","kind":"PodDisruptionBudget","metadata":{"name":"pinned","namespace":"sample-app"},
            "spec":{"minAvailable":1,"selector":{"matchLabels":{"fleetboot-test":"pinned"}}}}"#,
    );
    // Running and Ready (a kubelet would say so): the budget protects it.
    let ready = r#"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}"#;
    sim.kubectl_ok(&["-n", "sample-app", "patch", "pod", "pinned-tool", "--subresource=status", "--type", "merge", "-p", ready]);
    // A bare pod has no controller here: its budget keeps the status written for it, as the
    // disruption controller would compute it (one pod, minAvailable 1: none may go).
    let status = r#"{"status":{"observedGeneration":1,"disruptionsAllowed":0,"currentHealthy":1,"desiredHealthy":1,"expectedPods":1}}"#;
    sim.kubectl_ok(&["-n", "sample-app", "patch", "pdb", "pinned", "--subresource=status", "--type", "merge", "-p", status]);
    let journal = sim.path("ladder.jsonl");
    let child = start_reboot(
        &sim,
        &journal,
        &["--nodes", "worker-0,worker-1,worker-2", "--drain", "--drain-timeout", "20s", "--drain-escalation", "defer,skip"],
    );
    let run = Run::from(child.wait_with_output().unwrap());
    assert_eq!(run.code, 4, "a skipped node leaves the run incomplete: {}", run.debug());
    // The preflight named the budget and the node it blocks.
    let warnings: Vec<String> =
        run.events().iter().filter(|e| e["type"] == "warning").map(|e| e["message"].as_str().unwrap().to_owned()).collect();
    assert!(
        warnings.iter().any(|w| w.contains("PodDisruptionBudget sample-app/pinned allows 0 disruptions") && w.contains("worker-0")),
        "{warnings:?}"
    );
    assert_eq!(reboot_requests(&sim, "worker-0"), 0);
    assert_eq!(reboot_requests(&sim, "worker-1"), 1);
    assert_eq!(reboot_requests(&sim, "worker-2"), 1);
    let (outcome, reason) = run.outcomes()["worker-0"].clone();
    assert_eq!(outcome, "skipped");
    assert!(reason.contains("sample-app/pinned-tool") && reason.contains("--drain-escalation skip"), "{reason}");
    for node in ["worker-0", "worker-1", "worker-2"] {
        assert_eq!(sim.kubectl_ok(&["get", "node", node, "-o", "jsonpath={.spec.unschedulable}"]), "", "{node} uncordoned");
    }
    // Deferred first, to the end of the queue: the others went before its second try.
    let order: Vec<String> = records(&journal)
        .into_iter()
        .filter_map(|r| match r.entry {
            Entry::Deferred { host, .. } => Some(format!("deferred {host}")),
            Entry::Dispatching { host, .. } => Some(format!("dispatching {host}")),
            Entry::Skipped { host, .. } => Some(format!("skipped {host}")),
            _ => None,
        })
        .collect();
    assert_eq!(order, ["deferred worker-0", "dispatching worker-1", "dispatching worker-2", "skipped worker-0"], "{order:?}");
}

#[test]
fn labels_before_and_after_and_the_in_progress_annotation_while_in_flight() {
    let sim = Sim::start(1, 2);
    let watch = crate::common::sim::KubectlWatch::start(
        &sim,
        "nodes",
        r"{.metadata.name} [{.metadata.annotations.fleetboot\.io/reboot-in-progress}] [{.metadata.labels.example\.com/kernel}]",
    );
    let journal = sim.path("labels.jsonl");
    let child = start_reboot(
        &sim,
        &journal,
        &[
            "--nodes",
            "worker-0,worker-1",
            "--pre-reboot-label",
            "example.com/kernel=updating",
            "--post-reboot-label",
            "example.com/kernel=updated",
            "--in-progress-annotation",
        ],
    );
    let run = Run::from(child.wait_with_output().unwrap());
    assert_eq!(run.code, 0, "{}", run.debug());
    let run_id = run.summary()["run_id"].as_str().unwrap().to_owned();
    for node in ["worker-0", "worker-1"] {
        let seen: Vec<String> = watch.lines().into_iter().filter(|l| l.starts_with(&format!("{node} "))).collect();
        // In flight: annotated with the run and labelled `updating`; then `updated`, no annotation.
        let in_flight = seen.iter().position(|l| *l == format!("{node} [{run_id}] [updating]"));
        let done = seen.iter().position(|l| *l == format!("{node} [] [updated]"));
        assert!(in_flight.is_some() && done.is_some() && in_flight < done, "{node}: {seen:?}");
        assert!(!seen.iter().any(|l| l.contains("[updated]") && l.contains(&run_id)), "{seen:?}");
        let now = sim.kubectl_ok(&[
            "get",
            "node",
            node,
            "-o",
            r"jsonpath=[{.metadata.annotations.fleetboot\.io/reboot-in-progress}] [{.metadata.labels.example\.com/kernel}]",
        ]);
        assert_eq!(now, "[] [updated]", "{node}: the annotation is gone once proven");
    }
}

/// The cluster's state is read after the soak, not before it: a master cordoned by an admin
/// while the next master soaks holds that master until the cordon is lifted (one control-plane
/// node unavailable at a time), instead of a verdict read before the soak letting it go.
#[test]
fn a_master_that_becomes_unavailable_during_the_soak_holds_the_next_master() {
    let sim = Sim::start(3, 0);
    let journal_path = sim.path("run.jsonl");
    let child = start_reboot(&sim, &journal_path, &["--nodes", "master-0,master-1", "--soak", "8s"]);
    wait_for_record(
        &journal_path,
        Duration::from_secs(60),
        "master-0 confirmed",
        |e| matches!(e, Entry::Confirmed { host } if host == "master-0"),
    );
    // master-1 soaks now; master-2 (outside the run) becomes unavailable meanwhile.
    sim.kubectl_ok(&["cordon", "master-2"]);
    std::thread::sleep(Duration::from_secs(14));
    assert!(
        !dispatching(&journal_path).iter().any(|(host, _)| host == "master-1"),
        "master-1 must wait while master-2 is unavailable, soak over or not: {:?}",
        dispatching(&journal_path)
    );
    let lifted = now_ms();
    sim.kubectl_ok(&["uncordon", "master-2"]);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let started = dispatching(&journal_path).into_iter().find(|(host, _)| host == "master-1").expect("master-1 rebooted").1;
    assert!(started >= lifted, "master-1 started at {started}, before master-2 came back at {lifted}");
    assert_eq!((reboot_requests(&sim, "master-0"), reboot_requests(&sim, "master-1"), reboot_requests(&sim, "master-2")), (1, 1, 0));
}
