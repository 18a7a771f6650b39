//! The live migration of 4.15.31+/4.16 (CNO release-4.16 `pkg/controller/clusterconfig/`,
//! openshift-docs `modules/nw-ovn-kubernetes-live-migration.adoc`). While one is under way, or
//! its traces remain, every offline flow (forward and rollback, on every release) refuses before
//! anything changes: the network operator would route their patches down the live path.

use std::path::PathBuf;

use crate::common::Run;
use crate::common::sim::Sim;

fn migrate(sim: &Sim, extra: &[&str]) -> Run {
    let mut args = vec!["migrate", "--poll-interval", "300ms", "--output", "plain"];
    args.extend(extra);
    Run::from(sim.fleetboot(&args).output().unwrap())
}

fn merge(sim: &Sim, kind: &str, name: &str, patch: &str) {
    sim.kubectl_ok(&["patch", kind, name, "--type", "merge", "-p", patch]);
}

fn migration_dirs(sim: &Sim) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir(sim.path("state/migrations")).map(|d| d.map(|e| e.unwrap().path()).collect()).unwrap_or_default();
    dirs.sort();
    dirs
}

/// What a refusal must leave as it was: both network objects (spec, annotations, status) and
/// every pool's spec (unpaused).
fn state(sim: &Sim) -> [String; 3] {
    [
        sim.kubectl_ok(&["get", "network.operator.openshift.io", "cluster", "-o", "jsonpath={.spec}{.metadata.annotations}"]),
        sim.kubectl_ok(&["get", "network.config.openshift.io", "cluster", "-o", "jsonpath={.spec}{.metadata.annotations}{.status}"]),
        sim.kubectl_ok(&["get", "mcp", "-o", "jsonpath={.items[*].spec}"]),
    ]
}

/// `fleetboot migrate <extra>` refuses with exit code 2, naming `expected`, and changes nothing.
fn refused(sim: &Sim, extra: &[&str], expected: &[&str]) {
    let before = state(sim);
    let journals = migration_dirs(sim).len();
    let mut args = vec!["--etcd-backup-confirmed"];
    args.extend(extra);
    let run = migrate(sim, &args);
    assert_eq!(run.code, 2, "{}", run.debug());
    for expected in expected {
        assert!(run.stderr.contains(expected), "{expected}: {}", run.debug());
    }
    assert!(run.stderr.contains("live-migration: a live network-type migration is in progress or was started"), "{}", run.debug());
    assert_eq!(state(sim), before, "a refusal changes nothing");
    assert_eq!(migration_dirs(sim).len(), journals, "no journal for a refused migration");
    for pool in ["master", "worker"] {
        assert_ne!(sim.kubectl_ok(&["get", "mcp", pool, "-o", "jsonpath={.spec.paused}"]), "true", "{pool} stays unpaused");
    }
}

const ANNOTATION: &str = "network.openshift.io/network-type-migration";

#[test]
fn the_live_annotation_refuses_the_offline_two_phase_flow() {
    let sim = Sim::start_with(1, 2, &["--openshift-version", "4.14.38"]);
    sim.kubectl_ok(&["annotate", "network.config.openshift.io", "cluster", &format!("{ANNOTATION}=")]);
    refused(&sim, &[], &[&format!("annotation {ANNOTATION}=\"\" on Network.config.openshift.io/cluster")]);
    assert_eq!(sim.kubectl_ok(&["get", "network.config.openshift.io", "cluster", "-o", "jsonpath={.spec.networkType}"]), "OpenShiftSDN");
    // The plan says so too, before anything is asked.
    let plan = migrate(&sim, &["--plan", "--etcd-backup-confirmed"]);
    assert!(plan.stdout.contains("REFUSES") && plan.stdout.contains("live-migration:"), "{}", plan.debug());
    // Without the annotation the same run is not refused for it.
    sim.kubectl_ok(&["annotate", "network.config.openshift.io", "cluster", &format!("{ANNOTATION}-")]);
    let plan = migrate(&sim, &["--plan", "--etcd-backup-confirmed"]);
    assert!(!plan.stdout.contains("live-migration:"), "{}", plan.debug());
}

#[test]
fn a_live_mode_on_the_operator_config_refuses_the_seed_flow() {
    let sim = Sim::start_with(1, 2, &["--openshift-version", "4.7.60"]);
    merge(&sim, "network.operator.openshift.io", "cluster", r#"{"spec":{"migration":{"networkType":"OVNKubernetes","mode":"Live"}}}"#);
    refused(&sim, &[], &["spec.migration.mode Live on Network.operator.openshift.io/cluster"]);
}

#[test]
fn a_live_migration_condition_refuses_the_rollback() {
    let sim = Sim::start_with(1, 2, &["--openshift-version", "4.16.21"]);
    sim.kubectl_ok(&[
        "patch",
        "network.config.openshift.io",
        "cluster",
        "--subresource=status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"NetworkTypeMigrationInProgress","status":"True","reason":"NetworkTypeMigrationStarted","message":"Network type migration is started","lastTransitionTime":"2026-12-04T03:00:00Z"}]}}"#,
    ]);
    refused(
        &sim,
        &["--to", "OpenShiftSDN"],
        &["condition NetworkTypeMigrationInProgress=True on Network.config.openshift.io/cluster (reason NetworkTypeMigrationStarted)"],
    );
    // The forward flow too.
    refused(&sim, &[], &["condition NetworkTypeMigrationInProgress=True"]);
}
