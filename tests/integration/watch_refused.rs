//! A Node watch the API refuses (`fleetboot sim --rbac`, its authorizer the judge of every
//! request: the role fleetboot runs under lacks `watch` on nodes, 403), end to end with a real
//! fleetboot process: it stops naming the refused verb and resource and `fleetboot rbac`, before
//! any node is touched (no lease, no cordon, no reboot in the simulation's history), and does
//! not wait as if the answer were only late. Lacking from the start, the permission check at
//! start names it; taken away once the run started (a role re-applied narrower while a run
//! waits), the watch's next request is refused and the host fails with the API's answer.

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::elsewhere::Killed;
use crate::common::sim::{Sim, boot_counts};
use crate::rbac::{apply, apply_printed, run};

/// `objects`' ClusterRole rule on nodes without the verb `watch` (its other verbs kept).
fn without_watch_on_nodes(objects: &[Value]) -> Value {
    let mut role = objects.iter().find(|o| o["kind"] == "ClusterRole").expect("a ClusterRole").clone();
    let mut found = false;
    for rule in role["rules"].as_array_mut().unwrap() {
        if rule["apiGroups"] == serde_json::json!([""]) && rule["resources"].as_array().unwrap().iter().any(|r| r == "nodes") {
            let verbs = rule["verbs"].as_array_mut().unwrap();
            found |= verbs.iter().any(|v| v == "watch");
            verbs.retain(|v| v != "watch");
        }
    }
    assert!(found, "the printed role watches nodes: {role}");
    role
}

/// Nothing touched: no Lease, no node cordoned, no reboot since `boots`.
fn untouched(sim: &Sim, boots: &[(String, usize)]) {
    assert!(sim.kubectl_ok(&["get", "leases", "-A", "-o", "name"]).is_empty(), "no lease taken");
    assert!(!sim.kubectl_ok(&["get", "nodes", "-o", "jsonpath={.items[*].spec.unschedulable}"]).contains("true"), "no cordon");
    assert_eq!(boot_counts(sim), boots, "no reboot");
}

#[test]
fn a_role_without_watch_on_nodes_stops_reboot_and_migrate_at_start_naming_it() {
    let sim = Sim::start_with(1, 2, &["--rbac"]);
    let boots = boot_counts(&sim);
    for (mode, args) in [
        ("reboot", &["reboot", "--context", "fleetboot", "--nodes", "worker-0", "--poll-interval", "200ms"][..]),
        ("migrate", &["migrate", "--context", "fleetboot", "--etcd-backup-confirmed", "--poll-interval", "200ms"][..]),
    ] {
        let objects = apply_printed(&sim, mode);
        apply(&sim, &[without_watch_on_nodes(&objects)], "replace");
        let (code, out, err) = run(&sim, args);
        assert_eq!(code, 2, "{mode}: {out}{err}");
        assert!(err.contains("cannot watch nodes cluster-wide"), "{mode}: names the verb and resource: {err}");
        assert!(!err.contains("cannot list nodes") && !err.contains("cannot get nodes"), "{mode}: only what is missing: {err}");
        assert!(err.contains(&format!("`fleetboot rbac {mode}`")), "{mode}: names the command that prints the role: {err}");
        untouched(&sim, &boots);
        assert!(sim.migration_dirs().is_empty(), "no migration journal");
        assert!(!sim.paused("master") && !sim.paused("worker"), "no pool paused");
    }
}

/// The run starts with exactly the role `fleetboot rbac reboot` prints (its check at start
/// passes, its Node watch lists and watches); its first world read before a dispatch is held
/// (the simulation's hold-requests on the etcd ClusterOperator's read), the read's Lease list
/// already answered. Meanwhile the role loses `watch` on nodes and the open watch ends (`how`:
/// `end-watches`, as an API server ends a watch at its timeout, the connection kept; or
/// `cut-watches`, the connections dropped, the held read with them): the watch's next request
/// is refused (403, seen in the simulation's traffic). Then the read is released: the host fails
/// naming the refusal (the verb, the resource, the role, `fleetboot rbac`), no reboot sent,
/// instead of judging the limits on the nodes as last seen and rebooting a node it can no
/// longer watch come back.
fn a_node_watch_refused_mid_read(how: &str) {
    let sim = Sim::start_with(1, 2, &["--rbac"]);
    let objects = apply_printed(&sim, "reboot");
    let boots = boot_counts(&sim);
    let hold = |held: bool| {
        sim.control("POST", "hold-requests", &format!(r#"{{"method": "GET", "resource": "clusteroperators", "held": {held}}}"#));
    };
    hold(true);
    let journal = sim.path("refused.jsonl");
    let args =
        ["reboot", "--context", "fleetboot", "--nodes", "worker-0", "--poll-interval", "200ms", "--journal", journal.to_str().unwrap()];
    let mut child = Killed(sim.fleetboot(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap());
    let traffic = |key: &str| -> u64 {
        let all: Value = serde_json::from_str(&sim.control("GET", "traffic", "")).unwrap();
        all[key]["requests"].as_u64().unwrap_or(0)
    };
    let wait = |what: &str, probe: &dyn Fn() -> bool, child: &mut Killed| {
        let start = Instant::now();
        while !probe() {
            assert!(child.0.try_wait().unwrap().is_none(), "fleetboot ended before {what}");
            assert!(start.elapsed() < Duration::from_secs(60), "never: {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // The run started, its Node watch is open, and its world read is in flight (the Lease list
    // answered, the etcd ClusterOperator's read held).
    wait("the run started", &|| std::fs::read_to_string(&journal).unwrap_or_default().contains("\"run_started\""), &mut child);
    wait("the Node watch open", &|| traffic("WATCH nodes") >= 1, &mut child);
    wait("the world read in flight", &|| traffic("LIST leases") >= 1, &mut child);
    apply(&sim, &[without_watch_on_nodes(&objects)], "replace");
    sim.control("POST", how, "");
    wait("the Node watch refused", &|| traffic("DENIED watch nodes") >= 1, &mut child);
    hold(false);

    let status = child.0.wait().unwrap();
    let mut text = String::new();
    child.0.stdout.take().unwrap().read_to_string(&mut text).unwrap();
    child.0.stderr.take().unwrap().read_to_string(&mut text).unwrap();
    let records = std::fs::read_to_string(&journal).unwrap();
    assert!(!records.contains("\"dispatching\""), "no reboot sent: {text}");
    assert_eq!(status.code(), Some(3), "the host failed: {text}");
    assert!(text.contains("refuses to let fleetboot watch the Nodes (403 Forbidden"), "names the refused watch: {text}");
    assert!(text.contains(r#"cannot watch resource "nodes""#), "the API's answer: {text}");
    assert!(text.contains("`fleetboot rbac`"), "the hint: {text}");
    assert_eq!(boot_counts(&sim), boots, "nothing rebooted");
    assert!(!sim.kubectl_ok(&["get", "nodes", "-o", "jsonpath={.items[*].spec.unschedulable}"]).contains("true"), "no cordon");
}

/// The watch ends as at its timeout, the connection kept: the held world read goes on and is
/// answered after the refusal.
#[test]
fn a_node_watch_refused_while_a_world_read_is_in_flight_fails_the_host_naming_it_before_any_reboot() {
    a_node_watch_refused_mid_read("end-watches");
}

/// The connections dropped with the watch: the held read fails, and the host's next read finds
/// the refusal.
#[test]
fn a_node_watch_refused_after_a_dropped_connection_fails_the_host_naming_it_before_any_reboot() {
    a_node_watch_refused_mid_read("cut-watches");
}
