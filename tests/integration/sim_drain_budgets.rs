//! The simulated machine-config daemon drains through the eviction subresource's own path, so a
//! pool rollout takes its budgets' disruptions as an admin's `kubectl drain` does.

use std::time::{Duration, Instant};

use crate::common::sim::Sim;

const MCO: &str = "openshift-machine-config-operator";

fn daemon_log(sim: &Sim, node: &str) -> String {
    let selector = format!("spec.nodeName={node}");
    let pod =
        sim.kubectl_ok(&["-n", MCO, "get", "pods", "-l", "k8s-app=machine-config-daemon", "--field-selector", &selector, "-o", "name"]);
    sim.kubectl_ok(&["-n", MCO, "logs", pod.trim()])
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "never: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Two pods of one budget on the node a pool rollout drains, the budget allowing one
/// disruption: the daemon's first eviction takes it and the second is refused with the API's
/// 429 until the first one's replacement is Ready elsewhere (a drain that read the budget once
/// and deleted both would leave the budget short). The rollout still completes.
#[test]
fn a_pool_rollout_drains_through_evictions_that_take_the_budget() {
    let sim = Sim::start(1, 2);
    let ns = ["-n", "sample-app"];
    // frontend-0: 4 replicas, two per worker (the scheduler spreads them), minAvailable 3.
    sim.kubectl_ok(&[&ns[..], &["patch", "deployment", "frontend-0", "--type", "merge", "-p", r#"{"spec":{"replicas":4}}"#]].concat());
    sim.kubectl_ok(&[&ns[..], &["patch", "pdb", "frontend-0", "--type", "merge", "-p", r#"{"spec":{"minAvailable":3}}"#]].concat());
    wait_for("the budget allows one disruption of four pods", Duration::from_secs(60), || {
        let status = sim.kubectl_ok(
            &[&ns[..], &["get", "pdb", "frontend-0", "-o", "jsonpath={.status.currentHealthy}/{.status.disruptionsAllowed}"]].concat(),
        );
        status == "4/1"
    });
    let on = |node: &str| {
        let selector = format!("spec.nodeName={node}");
        sim.kubectl_ok(&[&ns[..], &["get", "pods", "-l", "app=frontend-0", "--field-selector", &selector, "-o", "name"]].concat())
    };
    let before: Vec<String> = on("worker-0").lines().map(|l| l.trim_start_matches("pod/").to_owned()).collect();
    assert_eq!(before.len(), 2, "{before:?}");
    // A rollout of the worker pool (a new rendered config standing for any change).
    sim.merge("mcp", "worker", r#"{"spec":{"configuration":{"name":"rendered-worker-new"}}}"#);
    wait_for("worker-0 drained and rebooted into the new config", Duration::from_secs(180), || {
        daemon_log(&sim, "worker-0").contains("drain complete")
    });
    let log = daemon_log(&sim, "worker-0");
    let refused = log.find("Cannot evict pod as it would violate the pod's disruption budget.").unwrap_or_else(|| panic!("{log}"));
    let refusal_line = log[..refused].lines().last().unwrap_or_default();
    assert!(before.iter().any(|p| refusal_line.contains(p.as_str())), "the second frontend pod refused: {log}");
    assert!(refused < log.find("drain complete").unwrap(), "{log}");
    let (ok, out, err) = sim.kubectl(&["wait", "mcp", "worker", "--for=condition=Updated=True", "--timeout=300s"]);
    assert!(ok, "{out}{err}");
    // Every frontend pod runs again, none of the ones worker-0 had.
    let (ok, out, err) = sim.kubectl(&[&ns[..], &["rollout", "status", "deployment/frontend-0", "--timeout=120s"]].concat());
    assert!(ok, "{out}{err}");
    let now = sim.kubectl_ok(&[&ns[..], &["get", "pods", "-l", "app=frontend-0", "-o", "name"]].concat());
    assert!(before.iter().all(|p| !now.contains(p.as_str())), "{now}");
}
