//! The documents' manual procedures, run literally with kubectl against `fleetboot sim`, as an
//! admin rehearses them: the simulation must answer kubectl as a real cluster does.

use crate::common::sim::Sim;

/// The 4.14 offline procedure waits on the pools with `kubectl wait mcp --all
/// --for=condition=Updated=True` (`oc wait` in the documents). kubectl treats a condition whose
/// status.observedGeneration is older than metadata.generation as not yet observed
/// (kubernetes/kubectl `pkg/cmd/wait/condition.go`, `checkCondition`), so the simulated MCO must
/// report the generation it acted on, as the real one does after every patch.
#[test]
fn kubectl_wait_for_updated_pools_ends_after_a_pause_and_unpause() {
    let sim = Sim::start(1, 1);
    for paused in ["true", "false", "true", "false"] {
        sim.kubectl_ok(&["patch", "mcp", "worker", "--type", "merge", "-p", &format!(r#"{{"spec":{{"paused":{paused}}}}}"#)]);
    }
    let generation = sim.kubectl_ok(&["get", "mcp", "worker", "-o", "jsonpath={.metadata.generation}"]);
    assert_ne!(generation, "1", "each patch of the spec is a new generation");
    let (ok, out, err) = sim.kubectl(&["wait", "mcp", "--all", "--for=condition=Updated=True", "--timeout=60s"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("machineconfigpool.machineconfiguration.openshift.io/worker condition met"), "{out}");
    assert_eq!(sim.kubectl_ok(&["get", "mcp", "worker", "-o", "jsonpath={.status.observedGeneration}"]), generation);
}
