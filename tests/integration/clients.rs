//! Every kind the simulated cluster serves, listed by two independent clients: kubectl
//! (discovery, tables, JSON) and the official Python `kubernetes` client, whose typed models
//! reject objects that lack required fields. Listed on a fresh cluster and again after a
//! migration wrote its own objects (rendered configs, ovnkube-node, the lease, ...).

use std::process::Command;

use crate::common::sim::Sim;

fn python() -> String {
    std::env::var("KUBE_PYTHON").unwrap_or_else(|_| {
        panic!("$KUBE_PYTHON is not set: run the tests through scripts/test.sh, which installs the Python kubernetes client in a venv")
    })
}

fn list_with_python(sim: &Sim) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/integration/clients/list_all.py");
    let out = Command::new(python()).arg(script).arg(sim.path("kubeconfig")).env("HOME", sim.dir.path()).output().unwrap();
    assert!(out.status.success(), "the Python client refused the simulation's objects:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn list_with_kubectl(sim: &Sim) -> Vec<String> {
    let kinds = sim.kubectl_ok(&["api-resources", "--verbs=list", "-o", "name"]);
    let kinds: Vec<String> = kinds.lines().map(str::to_owned).collect();
    for kind in &kinds {
        sim.kubectl_ok(&["get", kind, "-A", "-o", "json"]);
        sim.kubectl_ok(&["get", kind, "-A", "-o", "wide"]);
    }
    kinds
}

#[test]
fn kubectl_and_the_python_client_list_every_kind_before_and_after_a_migration() {
    let sim = Sim::start_with(1, 2, &["--openshift-version", "4.14.38"]);
    // A PodDisruptionBudget with the status the disruption controller writes.
    let pdb = sim.path("pdb.json");
    std::fs::write(
        &pdb,
        r#"{"apiVersion":"policy/v1","kind":"PodDisruptionBudget","metadata":{"name":"app","namespace":"default"},
        "spec":{"minAvailable":1,"selector":{"matchLabels":{"app":"none"}}}}"#,
    )
    .unwrap();
    sim.kubectl_ok(&["create", "--validate=false", "-f", pdb.to_str().unwrap()]);
    sim.kubectl_ok(&[
        "-n",
        "default",
        "patch",
        "pdb",
        "app",
        "--subresource=status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"currentHealthy":0,"desiredHealthy":1,"disruptionsAllowed":0,"expectedPods":0,"observedGeneration":1}}"#,
    ]);
    let kinds = list_with_kubectl(&sim);
    for kind in ["nodes", "pods", "daemonsets.apps", "leases.coordination.k8s.io", "machineconfigpools.machineconfiguration.openshift.io"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} not discovered: {kinds:?}");
    }
    let before = list_with_python(&sim);
    assert_eq!(before["nodes"], 3);
    assert_eq!(before["version"], "4.14.38");
    // The test's budget and the default workloads' (as kubectl counts them).
    let pdbs = sim.kubectl_ok(&["get", "pdb", "-A", "-o", "name"]).lines().count();
    assert!(pdbs > 1, "the default workloads come with budgets");
    assert_eq!(before["poddisruptionbudgets"], pdbs);
    assert!(before["daemonsets"].as_array().unwrap().iter().any(|d| d == "openshift-sdn/sdn"), "{before}");
    assert!(before["pod_phases"].as_array().unwrap().iter().any(|p| p == "Failed"), "the leftovers: {before}");
    assert!(before["daemon_log_lines"].as_u64().unwrap() >= 3, "{before}");

    let run = sim.fleetboot(&["migrate", "--etcd-backup-confirmed", "--poll-interval", "300ms", "--output", "plain"]).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stdout));
    list_with_kubectl(&sim);
    let after = list_with_python(&sim);
    assert!(after["daemonsets"].as_array().unwrap().iter().any(|d| d == "openshift-ovn-kubernetes/ovnkube-node"), "{after}");
    assert!(
        after["machineconfigs.machineconfiguration.openshift.io"].as_u64()
            > before["machineconfigs.machineconfiguration.openshift.io"].as_u64(),
        "{after}"
    );
}
