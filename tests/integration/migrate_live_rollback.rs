//! The live rollback (`fleetboot migrate --to OpenShiftSDN --mode live`): openshift-docs
//! enterprise-4.16 `modules/nw-ovn-kubernetes-live-migration-about.adoc` ("for users that want
//! to rollback to OpenShift-SDN, migration from OpenShift-SDN to OVN-Kubernetes must have
//! succeeded. Users can follow the same procedure ... to migrate to the OpenShift SDN network
//! plugin from the OVN-Kubernetes network plugin"); the network operator's clusterconfig
//! controller drives both directions (CNO release-4.16 `pkg/controller/clusterconfig/migration.go`).
//! After a successful live migration, the live rollback: the same one patch, the same watch, the
//! MCO's two rounds of reboots proven, verify for OpenShift SDN, the clean-up.

use crate::common::Run;
use crate::common::sim::Sim;

const ANNOTATION: &str = "network.openshift.io/network-type-migration";

fn migrate(sim: &Sim, extra: &[&str]) -> Run {
    let mut args = vec!["migrate", "--poll-interval", "300ms", "--output", "plain"];
    args.extend(extra);
    Run::from(sim.fleetboot(&args).output().unwrap())
}

fn boots(sim: &Sim) -> Vec<(String, usize)> {
    let nodes: serde_json::Value = serde_json::from_str(&sim.control("GET", "nodes", "")).unwrap();
    nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["name"].as_str().unwrap().to_owned(), n["history"].as_array().unwrap().iter().filter(|e| e[1] == "up").count()))
        .collect()
}

#[test]
fn after_a_live_migration_the_live_rollback_reboots_each_node_twice_more_and_runs_openshift_sdn() {
    let sim = Sim::start_with(1, 1, &["--openshift-version", "4.16.21", "--workloads", "0"]);
    let forward = migrate(&sim, &["--mode", "live", "--etcd-backup-confirmed"]);
    assert_eq!(forward.code, 0, "{}", forward.debug());
    assert_eq!(migrate(&sim, &["--cleanup"]).code, 0);

    let plan = migrate(&sim, &["--to", "OpenShiftSDN", "--mode", "live", "--plan", "--etcd-backup-confirmed"]);
    assert!(
        plan.stdout.contains("a live rollback: the documents allow it only after a successful migration to OVN-Kubernetes"),
        "{}",
        plan.debug()
    );
    let back = migrate(&sim, &["--to", "OpenShiftSDN", "--mode", "live", "--etcd-backup-confirmed"]);
    assert_eq!(back.code, 0, "{}", back.debug());
    for expected in [
        "· live flow (--mode live",
        "NetworkTypeMigrationCompleted",
        "each of the 2 nodes rebooted 2 times by the MCO (new boot IDs), Ready after each",
    ] {
        assert!(back.stdout.contains(expected), "{expected}: {}", back.stdout);
    }
    let cleanup = migrate(&sim, &["--cleanup"]);
    assert_eq!(cleanup.code, 0, "{}", cleanup.debug());

    let get = |kind: &str, path: &str| sim.kubectl_ok(&["get", kind, "cluster", "-o", &format!("jsonpath={{{path}}}")]);
    assert_eq!(get("network.config.openshift.io", ".status.networkType"), "OpenShiftSDN");
    assert_eq!(get("network.operator.openshift.io", ".spec.defaultNetwork.type"), "OpenShiftSDN");
    assert_eq!(get("network.operator.openshift.io", ".spec.migration"), "");
    assert!(!get("network.config.openshift.io", ".metadata.annotations").contains(ANNOTATION), "annotation removed");
    // Two rounds forward, two back: each machine booted four times (the simulation's history).
    for (node, count) in boots(&sim) {
        assert_eq!(count, 4, "{node}");
    }
    assert_eq!(
        sim.kubectl_ok(&["get", "daemonset", "sdn", "-n", "openshift-sdn", "-o", "jsonpath={.status.numberReady}"]),
        "2",
        "OpenShift SDN runs on every node"
    );
    let journals = sim.migration_dirs();
    assert_eq!(journals.len(), 2, "{journals:?}");
    let journal = std::fs::read_to_string(journals[1].join("migration.jsonl")).unwrap();
    assert!(
        journal.contains(r#""target":"OpenShiftSDN","flow":"live""#) && journal.contains(r#""step_done","step":"cleanup""#),
        "{journal}"
    );
    assert_eq!(sim.control("GET", "operators/refusals", ""), "[]", "the operator refused nothing");
}
