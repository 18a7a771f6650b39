//! The limits read the cluster's real state, not the run's own bookkeeping (issue 19): nodes
//! down for any reason, whoever took them down, count; a master goes down only when every other
//! one is Ready. The simulation's node history and kubectl are the witnesses.

use std::time::{Duration, Instant};

use crate::common::sim::Sim;
use crate::common::{Run, dispatch_counts};
use fleetboot::ExitCode;
use fleetboot_core::events::Outcome;

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

#[test]
fn a_master_waits_while_another_is_powered_off_fails_untouched_at_its_deadline_and_goes_once_it_is_back() {
    // In process: the simulation and the engine; the technician is the fleetboot binary.
    let sim = Sim::in_process(3, 1);
    // A technician powers master-0 off through its BMC: NotReady, for a reason no run of
    // fleetboot knows about.
    let off = run(&sim, &["power", "off", "--yes-power-off", "master-0"]);
    assert_eq!(off.code, 0, "{}", off.debug());
    wait_ready(&sim, "master-0", "Unknown");

    let journal = sim.path("master-1.jsonl");
    let journal_arg = journal.to_str().unwrap();
    let args = ["--nodes", "master-1", "--reboot-timeout", "3s", "--poll-interval", "200ms", "--journal", journal_arg];
    let held = sim.reboot_in_process(&args);
    assert_eq!(held.exit(), ExitCode::HostsFailed, "{}", held.debug());
    let (outcome, error) = held.outcomes()["master-1"].clone();
    assert_eq!(outcome, Outcome::Failed);
    assert!(error.contains("not started, nothing touched") && error.contains("master-0 (not Ready)"), "{error}");
    let waits = held.waiting("master-1");
    assert!(waits.iter().any(|w| w.contains("master-0")), "the wait names master-0: {waits:?}");
    assert_eq!(reboots_asked(&sim, "master-1"), 0, "master-1 was not touched");
    assert!(dispatch_counts(&journal).is_empty(), "no reboot journaled");
    assert_eq!(ready(&sim, "master-1"), "True");

    // master-0 is powered on again: once it is Ready, master-1 goes.
    let on = run(&sim, &["power", "on", "--yes-power-on", "master-0"]);
    assert_eq!(on.code, 0, "{}", on.debug());
    wait_ready(&sim, "master-0", "True");
    let went = sim.reboot_in_process(&["--nodes", "master-1", "--poll-interval", "200ms"]);
    assert_eq!(went.exit(), ExitCode::Ok, "{}", went.debug());
    assert_eq!(reboots_asked(&sim, "master-1"), 1);
}

#[test]
fn an_mco_working_node_and_a_medik8s_lease_each_count_as_unavailable() {
    let sim = Sim::in_process(1, 3);
    // A short deadline for the runs that must wait and fail; the default for the one that goes.
    let attempt = |name: &str| {
        let journal = sim.path(&format!("{name}.jsonl"));
        let timeout = if name == "free" { "5m" } else { "2s" };
        let args = ["--nodes", "worker-0", "--reboot-timeout", timeout, "--poll-interval", "200ms"];
        sim.reboot_in_process(&[&args[..], &["--journal", journal.to_str().unwrap()]].concat())
    };
    // The MCO is updating worker-1 (its daemon's state annotation, as kubectl shows it).
    sim.kubectl_ok(&["annotate", "node", "worker-1", "--overwrite", "machineconfiguration.openshift.io/state=Working"]);
    let held = attempt("mco");
    assert_eq!(held.exit(), ExitCode::HostsFailed, "{}", held.debug());
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
    assert_eq!(held.exit(), ExitCode::HostsFailed, "{}", held.debug());
    let (_, error) = held.outcomes()["worker-0"].clone();
    assert!(error.contains("worker-2 (held by node-maintenance's maintenance lease)"), "{error}");
    assert_eq!(reboots_asked(&sim, "worker-0"), 0, "worker-0 was not touched");

    // The maintenance ends: worker-0 goes.
    sim.kubectl_ok(&["delete", "lease", "-n", "medik8s-leases", "node-worker-2"]);
    let went = attempt("free");
    assert_eq!(went.exit(), ExitCode::Ok, "{}", went.debug());
    assert_eq!(reboots_asked(&sim, "worker-0"), 1);
}

const MASTERS: [&str; 3] = ["master-0", "master-1", "master-2"];

/// Starts a migration with `--reboot-error-nodes --reboot-concurrency 1` and makes a pod fail on
/// every master once it has started (pods failing before are not the migration's).
fn migrate_with_failing_masters(sim: &Sim) -> std::process::Child {
    let args = ["migrate", "--etcd-backup-confirmed", "--reboot-error-nodes", "--reboot-concurrency", "1", "--poll-interval", "300ms"];
    let mut child = sim
        .fleetboot(&[&args[..], &["--output", "plain"]].concat())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    sim.wait_for_migration_journal(r#""step":"backup""#, Some(&mut child));
    for (i, master) in MASTERS.iter().enumerate() {
        sim.fail_daemonset_pod(&format!("broken-{i}"), master);
    }
    child
}

/// The error-node reboot's journal, as the migration journal recorded it, and when.
fn error_nodes_journal(sim: &Sim) -> (std::path::PathBuf, u64) {
    let journal = sim.wait_for_migration_journal("error_nodes_reboot_journal", None);
    let (records, _) = fleetboot::adapters::migration_journal::load(&journal).unwrap();
    records
        .iter()
        .find_map(|r| match &r.entry {
            fleetboot_core::migrate::record::MigrationEntry::ErrorNodesRebootJournal { path, .. } => Some((path.clone(), r.at_ms)),
            _ => None,
        })
        .unwrap()
}

/// Per master, from the simulation's own history after `since`: every reboot asked (or reset)
/// with the moment it came back Ready.
fn reboots_since(sim: &Sim, since: u64) -> Vec<(String, u64, u64)> {
    let nodes: serde_json::Value = serde_json::from_str(&sim.control("GET", "nodes", "")).unwrap();
    let mut reboots = Vec::new();
    for node in nodes.as_array().unwrap().iter().filter(|n| MASTERS.contains(&n["name"].as_str().unwrap())) {
        let history: Vec<(u64, String)> =
            node["history"].as_array().unwrap().iter().map(|e| (e[0].as_u64().unwrap(), e[1].as_str().unwrap().to_owned())).collect();
        for (at, what) in history.iter().filter(|(at, w)| *at >= since && (w == "reboot-requested" || w == "power-cycle")) {
            let ready = history.iter().find(|(t, w)| t >= at && w == "ready").map_or(u64::MAX, |(t, _)| *t);
            reboots.push((node["name"].as_str().unwrap().to_owned(), *at, ready));
            let _ = what;
        }
    }
    reboots.sort_by_key(|r| r.1);
    reboots
}

/// Each master rebooted exactly once by the error-node reboot, one at a time: each back and
/// Ready before the next was asked.
fn assert_one_each_never_overlapping(sim: &Sim, since: u64) {
    let reboots = reboots_since(sim, since);
    let mut names: Vec<&str> = reboots.iter().map(|r| r.0.as_str()).collect();
    names.sort();
    assert_eq!(names, MASTERS, "each master rebooted once after the error-node reboot began: {reboots:?}");
    for pair in reboots.windows(2) {
        assert!(pair[1].1 >= pair[0].2, "{} was asked to reboot before {} was Ready again: {reboots:?}", pair[1].0, pair[0].0);
    }
}

#[test]
fn the_error_node_reboot_of_three_masters_with_concurrency_1_never_overlaps() {
    let sim = Sim::start(3, 1);
    let child = migrate_with_failing_masters(&sim);
    let failed = Run::from(child.wait_with_output().unwrap());
    assert_eq!(failed.code, 3, "verification still fails (no reboot mends those pods)");
    let (journal, since) = error_nodes_journal(&sim);
    assert_eq!(dispatch_counts(&journal).into_values().collect::<Vec<_>>(), [1, 1, 1]);
    assert_one_each_never_overlapping(&sim, since);
}

#[test]
fn killed_during_the_error_node_reboot_a_resume_continues_its_journal_and_reboots_no_master_twice() {
    let sim = Sim::start(3, 1);
    let mut child = migrate_with_failing_masters(&sim);
    let (journal, since) = error_nodes_journal(&sim);
    // Killed once the first master's reboot was handed over: it is mid-boot.
    crate::common::wait_for_dispatches(&journal, 1, Duration::from_secs(120));
    child.kill().unwrap();
    child.wait().unwrap();

    let resumed = run(&sim, &["migrate", "--resume", "--reboot-error-nodes", "--poll-interval", "300ms", "--output", "plain"]);
    assert_eq!(resumed.code, 3, "{}", resumed.debug());
    assert!(resumed.stdout.contains("continuing the reboot of the nodes that hold pods in error"), "{}", resumed.stdout);
    assert_eq!(sim.reboot_error_nodes_journals(), std::slice::from_ref(&journal), "no second error-node run was planned");
    let counts = dispatch_counts(&journal);
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|&n| n == 1), "no master got a second reboot: {counts:?}");
    assert_one_each_never_overlapping(&sim, since);
}

#[test]
fn dry_run_and_plan_say_which_rule_applies_and_why() {
    let sim = Sim::start(1, 2);
    let stdout = |args: &[&str]| {
        let out = run(&sim, args);
        assert_eq!(out.code, 0, "{}", out.debug());
        out.stdout
    };
    let rolling = stdout(&["reboot", "--all", "--dry-run"]);
    assert!(rolling.contains("a control-plane node goes only when every other one is Ready and the etcd ClusterOperator"), "{rolling}");
    assert!(!rolling.contains("documented exception"), "{rolling}");
    let at_once = stdout(&["reboot", "--all", "--all-at-once", "--dry-run"]);
    assert!(at_once.contains("no control-plane rule"), "{at_once}");
    let plan = stdout(&["migrate", "--plan", "--output", "plain"]);
    let step7 = plan.lines().find(|l| l.contains("reboot all 3 nodes at once")).unwrap_or_else(|| panic!("{plan}"));
    assert!(step7.contains("the one documented exception") && step7.contains("no control-plane rule"), "{step7}");
    let plan = stdout(&["migrate", "--plan", "--reboot-concurrency", "1", "--reboot-error-nodes", "--output", "plain"]);
    let step7 = plan.lines().find(|l| l.contains("1 at a time")).unwrap_or_else(|| panic!("{plan}"));
    assert!(step7.contains("the one documented exception") && step7.contains("each back and Ready before the next"), "{step7}");
    assert!(plan.contains("--reboot-error-nodes: their nodes rebooted at the migration's concurrency under the full rule"), "{plan}");
}
