//! The live rollback (`fleetboot migrate --to OpenShiftSDN --mode live`): openshift-docs
//! enterprise-4.16 `modules/nw-ovn-kubernetes-live-migration-about.adoc` ("for users that want
//! to rollback to OpenShift-SDN, migration from OpenShift-SDN to OVN-Kubernetes must have
//! succeeded. Users can follow the same procedure ... to migrate to the OpenShift SDN network
//! plugin from the OVN-Kubernetes network plugin"); the network operator's clusterconfig
//! controller drives both directions (CNO release-4.16 `pkg/controller/clusterconfig/migration.go`).
//! After a successful live migration, the live rollback: the same one patch, the same watch, the
//! MCO's two rounds of reboots proven, verify for OpenShift SDN, the clean-up.

use crate::common::Run;
use crate::common::sim::{Sim, boot_counts};

const ANNOTATION: &str = "network.openshift.io/network-type-migration";

/// `fleetboot migrate --poll-interval 300ms EXTRA --output plain`, run by the engine
/// in this process against the simulation started in the test (common/inproc.rs): stdout and
/// stderr are what its reporter rendered, and the error as the binary prints it.
fn migrate(sim: &Sim, extra: &[&str]) -> Run {
    let mut args = vec!["--poll-interval", "300ms"];
    args.extend(extra);
    sim.migrate_in_process(&args).to_run()
}

#[test]
fn after_a_live_migration_the_live_rollback_reboots_each_node_twice_more_and_runs_openshift_sdn() {
    let sim = Sim::in_process_with(1, 1, &["--openshift-version", "4.16.21", "--workloads", "0"]);
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
    for (node, count) in boot_counts(&sim) {
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

/// The live rollback killed with SIGKILL (by PID) in its first round of reboots resumes to the
/// end like the forward live flow: OpenShift SDN running, each machine booted exactly twice
/// more, the patch's step done once.
#[test]
fn a_live_rollback_killed_in_its_reboots_resumes_to_the_end() {
    let sim = Sim::in_process_with(1, 1, &["--openshift-version", "4.16.21", "--workloads", "0"]);
    assert_eq!(migrate(&sim, &["--mode", "live", "--etcd-backup-confirmed"]).code, 0);
    assert_eq!(migrate(&sim, &["--cleanup"]).code, 0);
    let mut child = sim
        .fleetboot(&[
            "migrate",
            "--to",
            "OpenShiftSDN",
            "--mode",
            "live",
            "--etcd-backup-confirmed",
            "--poll-interval",
            "300ms",
            "--output",
            "plain",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    // A machine's third boot: the rollback's first round has begun.
    while !boot_counts(&sim).iter().any(|(_, count)| *count >= 3) {
        assert!(child.try_wait().unwrap().is_none(), "the rollback ended before its reboots");
        assert!(start.elapsed() < std::time::Duration::from_secs(120), "no reboot");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(child.try_wait().unwrap().is_none(), "the rollback ended before the kill");
    child.kill().unwrap();
    child.wait().unwrap();
    let resumed = migrate(&sim, &["--resume"]);
    assert_eq!(resumed.code, 0, "{}", resumed.debug());
    assert!(resumed.stdout.contains("resuming the migration to OpenShiftSDN (live flow)"), "{}", resumed.stdout);
    assert_eq!(migrate(&sim, &["--cleanup"]).code, 0);
    assert_eq!(sim.kubectl_ok(&["get", "network.config.openshift.io", "cluster", "-o", "jsonpath={.status.networkType}"]), "OpenShiftSDN");
    for (node, count) in boot_counts(&sim) {
        assert_eq!(count, 4, "{node}: two boots forward, two back");
    }
    let dirs = sim.migration_dirs();
    let journal = std::fs::read_to_string(dirs.last().unwrap().join("migration.jsonl")).unwrap();
    assert_eq!(journal.matches(r#""step_done","step":"set_network_type""#).count(), 1, "{journal}");
    let proof = journal.lines().find(|l| l.contains(r#""step_done","step":"wait_rollout""#)).unwrap_or_else(|| panic!("{journal}"));
    assert!(proof.contains("each of the 2 nodes rebooted"), "{proof}");
    assert_eq!(sim.control("GET", "operators/refusals", ""), "[]");
}
