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

/// `kubectl drain` as the documents and every admin use it: the DaemonSets that own the node's
/// pods (machine-config-daemon, multus, the network plugin) exist, so `--ignore-daemonsets`
/// passes them over; the node ends cordoned; `kubectl uncordon` undoes it.
#[test]
fn kubectl_drain_of_a_worker_passes_over_its_daemonset_pods() {
    let sim = Sim::start(1, 2);
    let (ok, out, err) = sim.kubectl(&["drain", "worker-0", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=60s"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("node/worker-0 drained"), "{out}{err}");
    for daemonset in ["machine-config-daemon", "multus"] {
        assert!(err.contains(daemonset) || out.contains(daemonset), "{daemonset} named among the ignored: {out}{err}");
    }
    assert_eq!(sim.kubectl_ok(&["get", "node", "worker-0", "-o", "jsonpath={.spec.unschedulable}"]), "true");
    sim.kubectl_ok(&["uncordon", "worker-0"]);
    assert_eq!(sim.kubectl_ok(&["get", "node", "worker-0", "-o", "jsonpath={.spec.unschedulable}"]), "");
}

/// Every owner a pod names exists, with the uid the pod names.
#[test]
fn every_pods_owner_exists_with_its_uid() {
    let sim = Sim::start(1, 2);
    let owners = sim.kubectl_ok(&[
        "get",
        "pods",
        "-A",
        "-o",
        r#"jsonpath={range .items[*]}{.metadata.namespace} {.metadata.ownerReferences[0].kind} {.metadata.ownerReferences[0].name} {.metadata.ownerReferences[0].uid}{"\n"}{end}"#,
    ]);
    let mut checked = 0;
    for line in owners.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [namespace, "DaemonSet", name, uid] = fields[..] else { continue };
        let found = sim.kubectl_ok(&["get", "daemonset", name, "-n", namespace, "-o", "jsonpath={.metadata.uid}"]);
        assert_eq!(found, uid, "{namespace}/{name}");
        checked += 1;
    }
    assert!(checked >= 9, "machine-config-daemon, multus and the plugin on 3 nodes: {owners}");
}

/// The seed's and the documents' multus wait, literally.
#[test]
fn kubectl_rollout_status_of_multus_ends_on_a_settled_cluster() {
    let sim = Sim::start(1, 2);
    let (ok, out, err) = sim.kubectl(&["-n", "openshift-multus", "rollout", "status", "daemonset/multus", "--timeout=60s"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("daemon set \"multus\" successfully rolled out"), "{out}");
}
