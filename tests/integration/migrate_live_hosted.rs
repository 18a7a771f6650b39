//! The network operator's HyperShift blocker of the live migration (cluster-network-operator
//! release-4.16 `pkg/network/cluster_config.go`, `ValidateLiveMigration`: "network type live
//! migration is not supported on HyperShift clusters"). A hosted cluster's Infrastructure says
//! `status.controlPlaneTopology: External` (openshift/api `config/v1/types_infrastructure.go`).
//! The simulated operator refuses the documented patch made by hand there, and fleetboot's live
//! preflight refuses before any patch, naming the reason.

use crate::common::Run;
use crate::common::sim::Sim;

const ANNOTATION: &str = "network.openshift.io/network-type-migration";

fn hosted_sim() -> Sim {
    let sim = Sim::start_with(1, 1, &["--openshift-version", "4.16.21", "--workloads", "0"]);
    let topology = || sim.kubectl_ok(&["get", "infrastructure", "cluster", "-o", "jsonpath={.status.controlPlaneTopology}"]);
    assert_eq!(topology(), "SingleReplica", "one master: the installer's SingleReplica");
    sim.kubectl_ok(&[
        "patch",
        "infrastructure",
        "cluster",
        "--subresource=status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"controlPlaneTopology":"External"}}"#,
    ]);
    assert_eq!(topology(), "External");
    sim
}

fn state(sim: &Sim) -> [String; 3] {
    [
        sim.kubectl_ok(&["get", "network.operator.openshift.io", "cluster", "-o", "jsonpath={.spec}{.metadata.annotations}"]),
        sim.kubectl_ok(&["get", "network.config.openshift.io", "cluster", "-o", "jsonpath={.spec}{.metadata.annotations}{.status}"]),
        sim.kubectl_ok(&["get", "mcp", "-o", "jsonpath={.items[*].spec}"]),
    ]
}

#[test]
fn fleetboot_refuses_the_live_migration_of_a_hosted_control_plane_before_any_patch() {
    let sim = hosted_sim();
    let before = state(&sim);
    let run = Run::from(
        sim.fleetboot(&["migrate", "--mode", "live", "--etcd-backup-confirmed", "--poll-interval", "300ms", "--output", "plain"])
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 2, "{}", run.debug());
    assert!(
        run.stderr.contains("hosted-control-plane: Infrastructure.config.openshift.io/cluster has status.controlPlaneTopology External")
            && run.stderr.contains("network type live migration is not supported on HyperShift clusters"),
        "{}",
        run.debug()
    );
    assert_eq!(state(&sim), before, "nothing changed");
    assert!(sim.migration_dirs().is_empty(), "no journal for a refused migration");
    assert_eq!(sim.control("GET", "operators/refusals", ""), "[]", "nothing reached the operator");
    // Nor does the plan recommend the live migration there (it does on the same release when
    // the control plane is the cluster's own: migrate_live.rs).
    let plan = Run::from(sim.fleetboot(&["migrate", "--plan", "--output", "plain"]).output().unwrap());
    assert!(!plan.stdout.contains("RECOMMENDED"), "{}", plan.debug());
}

/// The simulation as an independent judge: the documented patch by hand on a hosted cluster
/// is refused by the simulated network operator with the CNO's words, and nothing moves.
#[test]
fn the_operator_refuses_the_live_patch_by_hand_on_a_hosted_control_plane() {
    let sim = hosted_sim();
    sim.merge(
        "network.config.openshift.io",
        "cluster",
        &format!(r#"{{"metadata":{{"annotations":{{"{ANNOTATION}":""}}}},"spec":{{"networkType":"OVNKubernetes"}}}}"#),
    );
    sim.kubectl_ok(&["wait", "clusteroperator/network", "--for=condition=Degraded=True", "--timeout=60s"]);
    let degraded =
        sim.kubectl_ok(&["get", "clusteroperator", "network", "-o", r#"jsonpath={.status.conditions[?(@.type=="Degraded")].message}"#]);
    assert_eq!(
        degraded,
        "Could not update cluster configuration status: network type live migration is not supported on HyperShift clusters"
    );
    assert_eq!(sim.kubectl_ok(&["get", "network.operator.openshift.io", "cluster", "-o", "jsonpath={.spec.migration}"]), "");
    assert_eq!(sim.kubectl_ok(&["get", "network.config.openshift.io", "cluster", "-o", "jsonpath={.status.networkType}"]), "OpenShiftSDN");
    let conditions = sim.kubectl_ok(&["get", "network.config.openshift.io", "cluster", "-o", "jsonpath={.status.conditions}"]);
    assert!(!conditions.contains("NetworkTypeMigrationInProgress"), "{conditions}");
}
