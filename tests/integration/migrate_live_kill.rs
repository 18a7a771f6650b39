//! The live migration killed with SIGKILL (by PID) in each state it goes through, then
//! `fleetboot migrate --resume` (and `--cleanup`): the migration finishes, every machine booted
//! exactly twice (the simulation's own history: the MCO's two rounds, nothing of fleetboot's),
//! the one patch changed `Network.config`'s spec once (its generation; a patch resent after a
//! kill mid-step is the same merge and changes nothing), the journal's proof names every node's
//! two reboots, and the simulated network operator refused nothing.
//!
//! The states: the journal's steps (backup, the patch, verify, cleanup) and, inside the watch,
//! what the network operator and the MCO report (CNO release-4.16
//! `pkg/controller/clusterconfig/migration.go`: TargetCNIAvailable, the routable-MTU round of
//! reboots, MTUReady, the `configure-ovs.sh` round, TargetCNIInUse, OriginalCNIPurged).

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::Run;
use crate::common::sim::{Sim, boot_counts};

const ANNOTATION: &str = "network.openshift.io/network-type-migration";

/// When to kill.
#[derive(Clone, Copy, Debug)]
enum At {
    /// The migration journal holds this text.
    Journal(&'static str),
    /// `Network.config/cluster` has this condition True (or, for the last one, the operator
    /// already reports the migration completed).
    Condition(&'static str),
    /// Some machine booted this many times (the simulation's history).
    Boots(usize),
}

struct Case {
    state: &'static str,
    at: At,
    /// From when one kind of request (method, resource) the step sends is held unanswered
    /// (the simulation's `hold-requests`): the short steps (verify, cleanup) are then killed
    /// inside, whatever the machine's speed; released after the kill.
    hold: Option<(At, &'static str, &'static str)>,
    /// Killed in `migrate --cleanup` after a finished migration.
    in_cleanup: bool,
}

fn network_config(sim: &Sim) -> Value {
    let (code, body) = sim.raw("GET", "/apis/config.openshift.io/v1/networks/cluster", "application/json", b"");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn condition(config: &Value, kind: &str) -> (String, String) {
    let conditions = config.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
    conditions
        .iter()
        .find(|c| c["type"] == kind)
        .map(|c| (c["status"].as_str().unwrap_or_default().to_owned(), c["reason"].as_str().unwrap_or_default().to_owned()))
        .unwrap_or_default()
}

fn journal(sim: &Sim) -> String {
    let dirs = sim.migration_dirs();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    std::fs::read_to_string(dirs[0].join("migration.jsonl")).unwrap_or_default()
}

fn reached(sim: &Sim, at: At) -> bool {
    match at {
        At::Journal(text) => sim.migration_dirs().first().is_some_and(|_| journal(sim).contains(text)),
        At::Condition(kind) => {
            let config = network_config(sim);
            condition(&config, kind).0 == "True"
                || (kind.ends_with("OriginalCNIPurged")
                    && condition(&config, "NetworkTypeMigrationInProgress").1 == "NetworkTypeMigrationCompleted")
        }
        At::Boots(n) => boot_counts(sim).iter().any(|(_, count)| *count >= n),
    }
}

fn run(sim: &Sim, args: &[&str]) -> Run {
    let mut all = vec!["migrate", "--poll-interval", "300ms", "--output", "plain"];
    all.extend(args);
    Run::from(sim.fleetboot(&all).output().unwrap())
}

/// Spawns `fleetboot migrate ARGS`, kills it (SIGKILL, by PID) once the case's state is
/// reached, the case's request held from its state on; returns the journal at the kill.
fn kill_in(sim: &Sim, args: &[&str], case: &Case) -> String {
    let mut all = vec!["migrate", "--poll-interval", "300ms", "--output", "plain"];
    all.extend(args);
    let mut child: Child = sim.fleetboot(&all).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let hold = |held: bool| {
        if let Some((_, method, resource)) = case.hold {
            sim.control("POST", "hold-requests", &format!(r#"{{"method": "{method}", "resource": "{resource}", "held": {held}}}"#));
        }
    };
    let mut holding = false;
    let start = Instant::now();
    let outcome = loop {
        if let Some((from, _, _)) = case.hold
            && !holding
            && reached(sim, from)
        {
            hold(true);
            holding = true;
        }
        if reached(sim, case.at) {
            break Ok(());
        }
        if let Some(status) = child.try_wait().unwrap() {
            break Err(format!("migrate ended ({status}) before the state was reached"));
        }
        if start.elapsed() > Duration::from_secs(120) {
            break Err("never reached".to_owned());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let outcome = outcome.and_then(|()| match child.try_wait().unwrap() {
        Some(status) => Err(format!("migrate ended ({status}) before the kill")),
        None => Ok(()),
    });
    // SIGKILL, by PID.
    let _ = child.kill();
    child.wait().unwrap();
    hold(false);
    if let Err(e) = outcome {
        panic!("{}: {e}; journal: {}", case.state, journal(sim));
    }
    journal(sim)
}

fn killed_and_resumed(case: Case) {
    let sim = Sim::start_with(1, 1, &["--openshift-version", "4.16.21", "--workloads", "0"]);
    let generation = network_config(&sim)["metadata"]["generation"].as_i64();
    let start = ["--mode", "live", "--etcd-backup-confirmed"];
    let at_kill = if case.in_cleanup {
        let first = run(&sim, &start);
        assert_eq!(first.code, 0, "{}", first.debug());
        kill_in(&sim, &["--cleanup"], &case)
    } else {
        kill_in(&sim, &start, &case)
    };
    if case.in_cleanup {
        // Killed mid-way: the annotation's patch went, the namespace's deletion did not.
        let (_, phase, _) = sim.kubectl(&["get", "namespace", "openshift-sdn", "-o", "jsonpath={.status.phase}"]);
        assert_eq!(phase, "Active", "killed before the namespace's deletion");
    }
    let last_step = if case.in_cleanup { "cleanup" } else { "verify" };
    assert!(!at_kill.contains(&format!(r#""step_done","step":"{last_step}""#)), "{}: killed after its end: {at_kill}", case.state);

    if !case.in_cleanup {
        let resumed = run(&sim, &["--resume"]);
        assert_eq!(resumed.code, 0, "{}: {}", case.state, resumed.debug());
        assert!(resumed.stdout.contains("resuming the migration to OVNKubernetes (live flow)"), "{}: {}", case.state, resumed.stdout);
    }
    let cleanup = run(&sim, &["--cleanup"]);
    assert_eq!(cleanup.code, 0, "{}: {}", case.state, cleanup.debug());

    // The migration finished: the network operator's outcome and fleetboot's clean-up.
    let config = network_config(&sim);
    assert_eq!(config["status"]["networkType"], "OVNKubernetes", "{}", case.state);
    assert_eq!(condition(&config, "NetworkTypeMigrationInProgress").1, "NetworkTypeMigrationCompleted", "{}", case.state);
    assert!(
        config.pointer(&format!("/metadata/annotations/{}", ANNOTATION.replace('/', "~1"))).is_none(),
        "{}: annotation removed",
        case.state
    );
    assert_eq!(
        sim.kubectl_ok(&["get", "network.operator.openshift.io", "cluster", "-o", "jsonpath={.spec.defaultNetwork.type}{.spec.migration}"]),
        "OVNKubernetes",
        "{}",
        case.state
    );
    let (_, phase, _) = sim.kubectl(&["get", "namespace", "openshift-sdn", "-o", "jsonpath={.status.phase}"]);
    assert_ne!(phase, "Active", "{}: namespace openshift-sdn deleted", case.state);

    // Every machine booted exactly twice: the MCO's two rounds, none of them repeated or added.
    for (node, count) in boot_counts(&sim) {
        assert_eq!(count, 2, "{}: {node} booted {count} times", case.state);
    }
    // The one patch: spec changed once (the generation), sent once, nothing refused.
    let journal = journal(&sim);
    if let Some(generation) = generation {
        assert_eq!(config["metadata"]["generation"].as_i64(), Some(generation + 1), "{}: one spec change", case.state);
    }
    // A kill between the step's start and its end (the poll sees "backed up" a moment late)
    // sends the same patch again on resume: the generation above shows it changed nothing.
    assert_eq!(journal.matches(r#""step_done","step":"set_network_type""#).count(), 1, "{}: the patch once: {journal}", case.state);
    assert_eq!(sim.control("GET", "operators/refusals", ""), "[]", "{}: the operator refused nothing", case.state);
    // The report proves every reboot: the watch's verdict in the journal, and verify passed.
    let proof = journal
        .lines()
        .find(|l| l.contains(r#""step_done","step":"wait_rollout""#))
        .unwrap_or_else(|| panic!("{}: no watch verdict: {journal}", case.state));
    assert!(proof.contains("each of the 2 nodes rebooted 2 times by the MCO (new boot IDs), Ready after each"), "{}: {proof}", case.state);
    assert!(
        journal.contains(r#""step_done","step":"verify""#) && journal.contains(r#""step_done","step":"cleanup""#),
        "{}: {journal}",
        case.state
    );
}

macro_rules! cases {
    ($($name:ident: $state:literal, $at:expr, $hold:expr, $cleanup:expr;)*) => {$(
        #[test]
        fn $name() {
            killed_and_resumed(Case { state: $state, at: $at, hold: $hold, in_cleanup: $cleanup });
        }
    )*};
}

cases! {
    killed_before_the_patch_resumes: "backed up, not patched", At::Journal(r#""step_done","step":"backup""#), None, false;
    killed_once_patched_resumes: "patched", At::Journal(r#""step_done","step":"set_network_type""#), None, false;
    killed_when_the_target_cni_is_available_resumes: "target CNI available", At::Condition("NetworkTypeMigrationTargetCNIAvailable"), None, false;
    killed_in_the_mtu_round_of_reboots_resumes: "first round of reboots", At::Boots(1), None, false;
    killed_when_the_mtu_is_ready_resumes: "MTU ready", At::Condition("NetworkTypeMigrationMTUReady"), None, false;
    killed_in_the_configure_ovs_round_of_reboots_resumes: "second round of reboots", At::Boots(2), None, false;
    killed_when_the_target_cni_is_in_use_resumes: "target CNI in use", At::Condition("NetworkTypeMigrationTargetCNIInUse"), None, false;
    // The purge is the operator's last condition: verify follows within milliseconds, so its
    // pod reads are held from the step before, as in the verify case, or the run may end first.
    killed_when_the_original_cni_is_purged_resumes: "original CNI purged", At::Condition("NetworkTypeMigrationOriginalCNIPurged"), Some((At::Condition("NetworkTypeMigrationTargetCNIInUse"), "GET", "pods")), false;
    killed_in_verify_resumes: "verify", At::Journal(r#""step_started","step":"verify""#), Some((At::Condition("NetworkTypeMigrationTargetCNIInUse"), "GET", "pods")), false;
    killed_in_cleanup_resumes: "cleanup", At::Journal(r#""step_started","step":"cleanup""#), Some((At::Journal(r#""event":"#), "DELETE", "namespaces")), true;
}
