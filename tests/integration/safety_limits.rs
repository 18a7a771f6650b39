//! The limits read the cluster's real state, not the run's own bookkeeping (issue 19): nodes
//! down for any reason, whoever took them down, count; a master goes down only when every other
//! one is Ready. The simulation's node history and kubectl are the witnesses.

use std::time::{Duration, Instant};

use crate::common::sim::Sim;
use crate::common::{Run, dispatch_counts};

fn run(sim: &Sim, args: &[&str]) -> Run {
    Run::from(sim.fleetboot(args).output().unwrap())
}

/// The node's Ready condition as kubectl shows it.
fn ready(sim: &Sim, node: &str) -> String {
    sim.kubectl_ok(&["get", "node", node, "-o", r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#])
}

/// Waits (a minute at most) until kubectl shows the node's Ready condition as `status`.
fn wait_ready(sim: &Sim, node: &str, status: &str) {
    let start = Instant::now();
    while ready(sim, node) != status {
        assert!(start.elapsed() < Duration::from_secs(60), "{node} never became Ready={status}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How often the simulation saw a reboot asked of the node (its own history).
fn reboots_asked(sim: &Sim, node: &str) -> usize {
    let nodes: serde_json::Value = serde_json::from_str(&sim.control("GET", "nodes", "")).unwrap();
    let node = nodes.as_array().unwrap().iter().find(|n| n["name"] == node).unwrap();
    node["history"].as_array().unwrap().iter().filter(|e| e[1] == "reboot-requested" || e[1] == "power-cycle").count()
}

fn waiting_events(run: &Run, host: &str) -> Vec<String> {
    run.events().iter().filter(|e| e["type"] == "waiting" && e["host"] == host).map(|e| e["reason"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn a_master_waits_while_another_is_powered_off_fails_untouched_at_its_deadline_and_goes_once_it_is_back() {
    let sim = Sim::start(3, 1);
    // A technician powers master-0 off through its BMC: NotReady, for a reason no run of
    // fleetboot knows about.
    let off = run(&sim, &["power", "off", "--yes-power-off", "master-0"]);
    assert_eq!(off.code, 0, "{}", off.debug());
    wait_ready(&sim, "master-0", "Unknown");

    let journal = sim.path("master-1.jsonl");
    let journal_arg = journal.to_str().unwrap();
    let args = ["reboot", "--nodes", "master-1", "--reboot-timeout", "3s", "--poll-interval", "200ms", "--journal", journal_arg];
    let held = run(&sim, &[&args[..], &["--output", "json"]].concat());
    assert_eq!(held.code, 3, "{}", held.debug());
    let (outcome, error) = held.outcomes()["master-1"].clone();
    assert_eq!(outcome, "failed");
    assert!(error.contains("not started, nothing touched") && error.contains("master-0 (not Ready)"), "{error}");
    let waits = waiting_events(&held, "master-1");
    assert!(waits.iter().any(|w| w.contains("master-0")), "the wait names master-0: {waits:?}");
    assert_eq!(reboots_asked(&sim, "master-1"), 0, "master-1 was not touched");
    assert!(dispatch_counts(&journal).is_empty(), "no reboot journaled");
    assert_eq!(ready(&sim, "master-1"), "True");

    // master-0 is powered on again: once it is Ready, master-1 goes.
    let on = run(&sim, &["power", "on", "--yes-power-on", "master-0"]);
    assert_eq!(on.code, 0, "{}", on.debug());
    wait_ready(&sim, "master-0", "True");
    let went = run(&sim, &["reboot", "--nodes", "master-1", "--poll-interval", "200ms", "--output", "json"]);
    assert_eq!(went.code, 0, "{}", went.debug());
    assert_eq!(reboots_asked(&sim, "master-1"), 1);
}

#[test]
fn an_mco_working_node_and_a_medik8s_lease_each_count_as_unavailable() {
    let sim = Sim::start(1, 3);
    // A short deadline for the runs that must wait and fail; the default for the one that goes.
    let attempt = |name: &str| {
        let journal = sim.path(&format!("{name}.jsonl"));
        let timeout = if name == "free" { "5m" } else { "2s" };
        let args = ["reboot", "--nodes", "worker-0", "--reboot-timeout", timeout, "--poll-interval", "200ms", "--output", "json"];
        run(&sim, &[&args[..], &["--journal", journal.to_str().unwrap()]].concat())
    };
    // The MCO is updating worker-1 (its daemon's state annotation, as kubectl shows it).
    sim.kubectl_ok(&["annotate", "node", "worker-1", "--overwrite", "machineconfiguration.openshift.io/state=Working"]);
    let held = attempt("mco");
    assert_eq!(held.code, 3, "{}", held.debug());
    let (_, error) = held.outcomes()["worker-0"].clone();
    assert!(error.contains("worker-1 (being updated by the MCO)"), "{error}");
    sim.kubectl_ok(&["annotate", "node", "worker-1", "--overwrite", "machineconfiguration.openshift.io/state=Done"]);

    // Node maintenance holds worker-2 through its medik8s Lease (medik8s/common pkg/lease:
    // namespace medik8s-leases, named node-<node>).
    let namespace = sim.path("namespace.json");
    std::fs::write(&namespace, r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"medik8s-leases"}}"#).unwrap();
    sim.kubectl_ok(&["create", "--validate=false", "-f", namespace.to_str().unwrap()]);
    let renewed = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
    let lease = sim.path("lease.json");
    std::fs::write(
        &lease,
        format!(
            r#"{{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{{"name":"node-worker-2","namespace":"medik8s-leases"}},
            "spec":{{"holderIdentity":"node-maintenance","leaseDurationSeconds":3600,"acquireTime":"{renewed}","renewTime":"{renewed}"}}}}"#
        ),
    )
    .unwrap();
    sim.kubectl_ok(&["create", "--validate=false", "-f", lease.to_str().unwrap()]);
    let held = attempt("lease");
    assert_eq!(held.code, 3, "{}", held.debug());
    let (_, error) = held.outcomes()["worker-0"].clone();
    assert!(error.contains("worker-2 (held by node-maintenance's maintenance lease)"), "{error}");
    assert_eq!(reboots_asked(&sim, "worker-0"), 0, "worker-0 was not touched");

    // The maintenance ends: worker-0 goes.
    sim.kubectl_ok(&["delete", "lease", "-n", "medik8s-leases", "node-worker-2"]);
    let went = attempt("free");
    assert_eq!(went.code, 0, "{}", went.debug());
    assert_eq!(reboots_asked(&sim, "worker-0"), 1);
}
