//! A request the API refuses for good during a drain (review finding 7: an eviction, the pod
//! list; then the world read after the drain), end to end on the simulated cluster (`fleetboot
//! sim --rbac`, its authorizer the judge of every request): the host fails at once with the API's
//! own message, instead of retrying to `--drain-timeout` (or its reboot timeout) as if the answer
//! were only late.

use std::io::Read;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use fleetboot_core::journal::{Entry, Stage};

use crate::common::sim::{Sim, boot_counts};
use crate::rbac::{apply, apply_printed};

/// A `fleetboot` child, killed by PID if the test ends before it does.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// What one refused run left: its exit code, its output, its journal, worker-0's failure
/// (stage, text).
struct Refused {
    code: Option<i32>,
    text: String,
    records: Vec<fleetboot_core::journal::Record>,
    failed: Vec<(Stage, String)>,
}

/// `fleetboot reboot --drain` as the user `fleetboot`, with exactly the role `fleetboot rbac
/// drain` prints, so its RBAC preflight passes. Then, while its first node write is held (the
/// simulation's hold-requests on `PATCH nodes`: after the preflight and the first world read,
/// before any eviction), `take_away` edits the role's rules (with kubectl replace). Asserts what
/// holds for every refusal during a drain: the host failed once, fleetboot's cordon lifted,
/// nothing sent, nothing rebooted.
fn reboot_with_a_rule_taken_away(take_away: &dyn Fn(&mut Vec<serde_json::Value>)) -> Refused {
    let sim = Sim::start_with(1, 2, &["--rbac"]);
    let objects = apply_printed(&sim, "drain");
    let on_worker_0 = sim.kubectl_ok(&["get", "pods", "-A", "--field-selector", "spec.nodeName=worker-0", "-o", "name"]);
    assert!(!on_worker_0.is_empty(), "worker-0 runs pods to evict");
    let boots = boot_counts(&sim);

    let hold = |held: bool| {
        sim.control("POST", "hold-requests", &format!(r#"{{"method": "PATCH", "resource": "nodes", "held": {held}}}"#));
    };
    hold(true);
    let journal = sim.path("refused.jsonl");
    // Without the fix the refusals are retried to this timeout, and the host reads "pods still
    // on the node after 30s" (or "... within the drain timeout"): the assertions tell by the
    // failure's text, not by the time.
    let args = [
        "reboot",
        "--context",
        "fleetboot",
        "--nodes",
        "worker-0",
        "--drain",
        "--drain-timeout",
        "30s",
        "--poll-interval",
        "200ms",
        "--journal",
        journal.to_str().unwrap(),
    ];
    let mut run = Running(sim.fleetboot(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap());

    // The run started (its RBAC preflight passed before its journal was created); its first
    // node write waits on the hold.
    let started = Instant::now();
    while !std::fs::read_to_string(&journal).unwrap_or_default().contains("\"run_started\"") {
        assert!(run.0.try_wait().unwrap().is_none(), "fleetboot ended before its run started");
        assert!(started.elapsed() < Duration::from_secs(60), "no run_started in {}", journal.display());
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut role = objects.iter().find(|o| o["kind"] == "ClusterRole").expect("the drain role").clone();
    take_away(role["rules"].as_array_mut().unwrap());
    apply(&sim, std::slice::from_ref(&role), "replace");
    hold(false);

    let status = run.0.wait().unwrap();
    let mut text = String::new();
    run.0.stdout.take().unwrap().read_to_string(&mut text).unwrap();
    run.0.stderr.take().unwrap().read_to_string(&mut text).unwrap();
    let (records, _) = fleetboot::adapters::journal::load(&journal).unwrap();
    let failed: Vec<(Stage, String)> = records
        .iter()
        .filter_map(|r| match &r.entry {
            Entry::Failed { host, stage, error, .. } if host == "worker-0" => Some((*stage, error.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(status.code(), Some(3), "a host failed: {text}");
    assert_eq!(failed.len(), 1, "{records:?}");
    // Fleetboot's cordon lifted, nothing sent.
    assert!(records.iter().any(|r| matches!(&r.entry, Entry::Uncordoned { host } if host == "worker-0")), "{records:?}");
    assert_eq!(sim.kubectl_ok(&["get", "node", "worker-0", "-o", "jsonpath={.spec.unschedulable}"]), "", "uncordoned");
    assert!(!records.iter().any(|r| matches!(r.entry, Entry::Dispatching { .. })), "{records:?}");
    assert_eq!(boot_counts(&sim), boots, "nothing rebooted");
    Refused { code: status.code(), text, records, failed }
}

/// [`reboot_with_a_rule_taken_away`], the refusal met by the drain itself: handled as every
/// failed drain (no drain timeout, never drained).
fn drain_with_a_rule_taken_away(take_away: &dyn Fn(&mut Vec<serde_json::Value>)) -> Refused {
    let refused = reboot_with_a_rule_taken_away(take_away);
    assert_eq!(refused.failed[0].0, Stage::Drain);
    let records = &refused.records;
    assert!(!records.iter().any(|r| matches!(r.entry, Entry::DrainTimedOut { .. } | Entry::Drained { .. })), "{records:?}");
    refused
}

/// Every eviction gets the real API's 403 once the role lost its `pods/eviction` rule: the
/// host fails at once with that message, not "pods still on the node" at the drain timeout.
#[test]
fn an_eviction_the_api_forbids_fails_the_host_at_once_with_the_apis_message() {
    let refused = drain_with_a_rule_taken_away(&|rules| {
        let before = rules.len();
        rules.retain(|r| !r["resources"].as_array().unwrap().iter().any(|x| x == "pods/eviction"));
        assert_eq!(rules.len(), before - 1, "one pods/eviction rule: {rules:?}");
    });
    let error = &refused.failed[0].1;
    // The API's own words (the simulation answers as the real authorizer does).
    assert!(error.contains("is forbidden: User \"fleetboot\" cannot create resource \"pods/eviction\""), "{error}");
    assert!(error.starts_with("the API refused to evict pod ") && error.contains("(403 Forbidden)"), "{error}");
    assert!(!error.contains("still on the node") && !error.contains("timeout"), "{error}");
    assert!(refused.text.contains("pods/eviction"), "the report names the refusal: {}", refused.text);
    assert_eq!(refused.code, Some(3));
    assert!(!refused.records.is_empty());
}

/// The node's pods cannot be listed any more (the role lost `list` on pods): the host fails at
/// once with the API's 403, not "could not list the pods ... within the drain timeout".
#[test]
fn a_pod_list_the_api_forbids_fails_the_drain_at_once_with_the_apis_message() {
    let refused = drain_with_a_rule_taken_away(&|rules| {
        let pods = rules.iter_mut().find(|r| r["resources"][0] == "pods").expect("a rule on pods");
        pods["verbs"].as_array_mut().unwrap().retain(|v| v != "list");
    });
    let error = &refused.failed[0].1;
    assert!(error.contains("is forbidden: User \"fleetboot\" cannot list resource \"pods\""), "{error}");
    assert!(error.starts_with("the API refused to list the pods of node worker-0: ") && error.contains("(403 Forbidden)"), "{error}");
    assert!(!error.contains("within the drain timeout"), "{error}");
}

/// The world read after the drain is refused (the role lost `get` on ClusterOperators: etcd's
/// health cannot be read): the host fails at once naming the refused read, uncordoned, nothing
/// sent, instead of waiting its reboot timeout out as if etcd's health were only late.
#[test]
fn a_world_read_the_api_forbids_after_the_drain_fails_the_host_at_once_naming_it() {
    let refused = reboot_with_a_rule_taken_away(&|rules| {
        let before = rules.len();
        rules.retain(|r| r["resources"][0] != "clusteroperators");
        assert_eq!(rules.len(), before - 1, "one clusteroperators rule: {rules:?}");
    });
    let (stage, error) = &refused.failed[0];
    assert_eq!(*stage, Stage::Limits, "{error}");
    assert!(
        error.starts_with(
            "after the drain, nothing sent: the cluster API refuses to let fleetboot read the etcd ClusterOperator (403 Forbidden: "
        ),
        "{error}"
    );
    assert!(error.contains("cannot get resource \"clusteroperators\""), "the API's own words: {error}");
    assert!(error.contains("re-apply what `fleetboot rbac` prints"), "{error}");
    // Drained first: the refusal came after it.
    assert!(refused.records.iter().any(|r| matches!(r.entry, Entry::Drained { .. })), "{:?}", refused.records);
}
