//! `fleetboot migrate --journal-in-cluster` killed with SIGKILL (by PID) at every step of its
//! flow, each time right after the step's start record reached the journal in the cluster (the
//! migration's own `--output json` event `step_started`, emitted after the record's write), and
//! resumed each time with the same command line from another, empty working directory with its
//! own state directory (a Job's next pod): the migration finishes. The judges: the simulation's
//! history (each node's reboots), kubectl (the network type, the pools unpaused and Updated),
//! and the journal in the cluster (each step done once: no disruptive action twice).
//! The two-phase (offline, 4.8-4.16) flow, the seed flow (4.5-4.7, which pauses the pools) and
//! the live flow (4.16+, also killed at the network operator's stages inside its watch).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::elsewhere::{Killed, cluster_journal_lines, migrate_command_elsewhere, migrate_elsewhere};
use crate::common::sim::{Sim, boot_counts};
use fleetboot::adapters::kube::journal_store::JournalPlace;
use fleetboot_core::migrate::{Flow, Step};

/// When to kill.
#[derive(Clone, Copy, Debug)]
enum At {
    /// The migration's event `migration_started` (its first record is in the cluster).
    MigrationStarted,
    /// The migration's event `step_started` for this step (its record is in the cluster).
    Step(Step),
    /// `Network.config/cluster` has this condition True (the live flow's watch).
    Condition(&'static str),
    /// The step's disruptive action is seen in the cluster (the API, read directly: a
    /// kubectl process per poll would see it too late).
    Applied(Step, fn(&Sim) -> bool),
}

fn get(sim: &Sim, path: &str) -> Value {
    let (code, body) = sim.raw("GET", path, "application/json", b"");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn pools_paused(sim: &Sim) -> [bool; 2] {
    ["master", "worker"]
        .map(|pool| get(sim, &format!("/apis/machineconfiguration.openshift.io/v1/machineconfigpools/{pool}"))["spec"]["paused"] == true)
}

fn switched(sim: &Sim) -> bool {
    get(sim, "/apis/config.openshift.io/v1/networks/cluster")["spec"]["networkType"] == "OVNKubernetes"
}

fn migration_enabled(sim: &Sim) -> bool {
    get(sim, "/apis/operator.openshift.io/v1/networks/cluster")["spec"]["migration"]["networkType"] == "OVNKubernetes"
}

fn step_name(step: Step) -> String {
    serde_json::to_value(step).unwrap().as_str().unwrap().to_owned()
}

fn condition_true(sim: &Sim, kind: &str) -> bool {
    let (code, body) = sim.raw("GET", "/apis/config.openshift.io/v1/networks/cluster", "application/json", b"");
    assert_eq!(code, 200, "{body}");
    let config: Value = serde_json::from_str(&body).unwrap();
    config
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| c.iter().any(|c| c["type"] == kind && c["status"] == "True"))
}

/// Runs `command` (`migrate … --output json`) and kills it (SIGKILL, by PID) at `at` (a step's
/// start, or a later step's of `order` when a slow kill let the step run past it); panics,
/// with its output, when it ends before.
fn kill_at(sim: &Sim, mut command: std::process::Command, at: At, order: &[Step]) {
    let position = |name: &Value| order.iter().position(|&s| *name == step_name(s));
    let mut child = Killed(command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap());
    let stdout = child.0.stdout.take().unwrap();
    let (lines, seen) = mpsc::channel();
    // The events are read as they come: the kill follows the step's start at once.
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut output = Vec::new();
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < Duration::from_secs(120), "{at:?} never reached:\n{}", output.join("\n"));
        match seen.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => {
                let event: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                output.push(line);
                let wanted = match at {
                    At::MigrationStarted => event["type"] == "migration_started",
                    At::Step(step) => {
                        event["type"] == "step_started" && position(&event["step"]) >= position(&Value::from(step_name(step)))
                    }
                    _ => false,
                };
                if wanted {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.0.wait().unwrap();
                panic!("migrate ended ({status}) before {at:?}:\n{}", output.join("\n"));
            }
        }
        match at {
            At::Condition(kind) if condition_true(sim, kind) => break,
            At::Applied(_, applied) if applied(sim) => break,
            _ => {}
        }
    }
    child.0.kill().unwrap();
    child.0.wait().unwrap();
}

/// Kills the migration `id` (`args`, its journal in the cluster) at each of `points` in turn:
/// first started in the simulation's directory, then each time resumed with the same command
/// line from a new empty directory; then finishes it from yet another. Returns the journal,
/// and the step each kill aimed at.
fn killed_at_each_then_finished(sim: &Sim, id: &str, args: &[&str], flow: Flow, points: &[At]) -> (Vec<Value>, Vec<Step>) {
    let place = JournalPlace::new("kube-system", &format!("{id}-migration")).unwrap();
    let mut kills = Vec::new();
    let json = [args, &["--output", "json"]].concat();
    // Every other resume names the migration by `--resume ID` instead (an admin's resume).
    let by_id = ["--resume", id, "--journal-in-cluster", "--poll-interval", "300ms", "--output", "json"];
    let mut dirs = Vec::new();
    for (n, &at) in points.iter().enumerate() {
        let command = if n == 0 {
            sim.fleetboot(&[&["migrate"], &json[..]].concat())
        } else {
            dirs.push(tempfile::tempdir().unwrap());
            migrate_command_elsewhere(sim, dirs.last().unwrap().path(), if n % 2 == 0 { &by_id[..] } else { &json })
        };
        kill_at(sim, command, at, flow.steps());
        let step = match at {
            At::MigrationStarted => Step::Preflight,
            At::Step(step) | At::Applied(step, _) => step,
            At::Condition(_) => Step::WaitRollout,
        };
        kills.push(step);
    }
    let local: Vec<_> =
        std::fs::read_dir(sim.path("state/migrations").join(id)).into_iter().flatten().map(|e| e.unwrap().file_name()).collect();
    assert!(local.iter().all(|f| f.to_string_lossy().starts_with("report")), "nothing a resume needs on the first machine: {local:?}");
    let (finished, _elsewhere) = migrate_elsewhere(sim, args);
    assert_eq!(finished.code, 0, "{}", finished.debug());
    assert!(finished.stdout.contains("resuming the migration"), "{}", finished.debug());
    // The clean-up (step 11, `--cleanup`) killed too, then run again.
    let cleanup = [&json[..], &["--cleanup"]].concat();
    dirs.push(tempfile::tempdir().unwrap());
    kill_at(sim, migrate_command_elsewhere(sim, dirs.last().unwrap().path(), &cleanup), At::Step(Step::Cleanup), flow.steps());
    kills.push(Step::Cleanup);
    let (cleaned, _elsewhere) = migrate_elsewhere(sim, &[args, &["--cleanup"]].concat());
    assert_eq!(cleaned.code, 0, "{}", cleaned.debug());
    let journal = cluster_journal_lines(sim, &place);
    // Each process after the first journals its resume first; one killed after the clean-up's
    // end leaves the finishing run nothing to do (nothing written).
    let processes = processes(&journal);
    let resumed = journal.iter().filter(|l| l["record"]["event"] == "migration_resumed").count();
    assert_eq!(resumed, processes.len() - 1, "{:?}", compact(&journal));
    assert!(processes.len() >= kills.len(), "every killed process wrote to the journal: {kills:?}; {:?}", compact(&journal));
    // Its command lines run again once it finished (a Job's pod restarted after the last
    // record): nothing to do, exit 0, nothing written.
    for again in [&[args, &["--cleanup"]].concat(), args] {
        let (run, _elsewhere) = migrate_elsewhere(sim, again);
        assert_eq!(run.code, 0, "{}", run.debug());
        assert!(run.stderr.contains("is already finished (step 11 done): nothing to do"), "{}", run.debug());
        assert!(run.stdout.contains("migration to OVNKubernetes complete"), "{}", run.debug());
        assert_eq!(cluster_journal_lines(sim, &place), journal, "nothing written to the finished migration's journal");
    }
    (journal, kills)
}

/// The journal's records in short: each one's event and step.
fn compact(journal: &[Value]) -> Vec<String> {
    journal
        .iter()
        .map(|l| format!("{} {}", l["record"]["event"].as_str().unwrap_or(""), l["record"]["step"].as_str().unwrap_or("")))
        .collect()
}

/// Each process's step in progress when it ended, in the order they wrote to `journal` (each
/// record names its writer, pid included): none when it ended between two steps (a step with
/// nothing to wait for, as a pool's pause, can end before the kill). Read from the journal
/// once all is over: a write in flight at a kill may land after it.
fn processes(journal: &[Value]) -> Vec<Option<String>> {
    let mut ended: Vec<(&Value, Option<String>)> = Vec::new();
    for line in journal {
        if ended.last().is_none_or(|(holder, _)| *holder != &line["holder"]) {
            ended.push((&line["holder"], None));
        }
        let current = &mut ended.last_mut().unwrap().1;
        match line["record"]["event"].as_str() {
            Some("step_started") => *current = line["record"]["step"].as_str().map(str::to_owned),
            Some("step_done") => *current = None,
            _ => {}
        }
    }
    ended.into_iter().map(|(_, step)| step).collect()
}

/// A step a process was killed in is started again by the next one, and only then: each
/// step's starts are one and one for each process that ended in it; none is started again
/// once done. Some kill lands inside the step it aimed at.
fn each_kill_resumed_inside_its_step(journal: &[Value], kills: &[Step], flow: Flow) {
    let ended = processes(journal);
    for &step in flow.steps() {
        let name = step_name(step);
        let started = journal.iter().filter(|l| l["record"]["event"] == "step_started" && l["record"]["step"] == name).count();
        let inside = ended.iter().filter(|at| at.as_deref() == Some(&name)).count();
        assert_eq!(started, 1 + inside, "step {name}: started once, and again after each kill inside it: {:?}", compact(journal));
        let done = journal.iter().position(|l| l["record"]["event"] == "step_done" && l["record"]["step"] == name).unwrap();
        assert!(
            !journal[done..].iter().any(|l| l["record"]["event"] == "step_started" && l["record"]["step"] == name),
            "step {name} started again once done: {:?}",
            compact(journal)
        );
    }
    let aimed = kills.iter().filter(|step| ended.iter().any(|at| at.as_deref() == Some(&step_name(**step)))).count();
    assert!(aimed >= 1, "some kill lands inside the step it aimed at: {kills:?}; {:?}", compact(journal));
}

/// What the migration changed, to compare with an unkilled one: the generations of
/// `Network.config` and `Network.operator` (each spec change once: a patch resent after a kill
/// is the same merge and changes nothing) and each node's reboots (the simulation's history).
fn changes(sim: &Sim) -> (Value, Value, BTreeMap<String, usize>) {
    let generation = |path: &str| {
        let (code, body) = sim.raw("GET", path, "application/json", b"");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["metadata"]["generation"].clone()
    };
    (
        generation("/apis/config.openshift.io/v1/networks/cluster"),
        generation("/apis/operator.openshift.io/v1/networks/cluster"),
        sim.history_counts("reboot-requested"),
    )
}

/// The same migration unkilled on a simulation of its own (`sim_args`): its changes.
fn unkilled(sim_args: &[&str], args: &[&str]) -> (Value, Value, BTreeMap<String, usize>) {
    let sim = Sim::in_process_with(1, 2, sim_args);
    for extra in [&[][..], &["--cleanup"]] {
        let (run, _elsewhere) = migrate_elsewhere(&sim, &[args, extra].concat());
        assert_eq!(run.code, 0, "{}", run.debug());
    }
    changes(&sim)
}

/// Each step of `flow` done exactly once in the journal.
fn each_step_done_once(journal: &[Value], flow: Flow) {
    for &step in flow.steps() {
        let name = step_name(step);
        let done = journal.iter().filter(|l| l["record"]["event"] == "step_done" && l["record"]["step"] == name).count();
        assert_eq!(done, 1, "step {name} done once: {journal:#?}");
    }
    assert!(journal.iter().any(|l| l["record"]["event"] == "migration_resumed"), "resumed: {journal:#?}");
}

/// The pools unpaused and Updated (kubectl wait), the network type OVNKubernetes.
fn migrated_and_settled(sim: &Sim) {
    assert_eq!(sim.network_type().1, "OVNKubernetes");
    for pool in ["master", "worker"] {
        assert!(!sim.paused(pool), "pool {pool} unpaused");
    }
    sim.kubectl_ok(&["wait", "machineconfigpool", "--all", "--for=condition=Updated", "--timeout=60s"]);
}

/// The offline flows: every step of the flow but the clean-up is a kill point (the clean-up
/// runs after, with `--cleanup`, and is killed too), and after a step that changes the
/// cluster, the moment its change is seen (`changed`: before its end is journaled when the kill
/// is fast enough; at once when the killed process made it already). Step 7 reboots each node
/// once (its run in the cluster); the spec changes and each node's reboots are an unkilled
/// migration's (the MCO's rollout, the two-phase flow's phase 1 or the seed flow's after the
/// pools resume, once).
fn offline_killed_at_every_step(version: &str, flow: Flow, id: &str, changed: &[At]) {
    let mut points = vec![At::MigrationStarted];
    for &step in flow.steps().iter().filter(|&&s| s != Step::Cleanup) {
        points.push(At::Step(step));
        points.extend(changed.iter().filter(|at| matches!(at, At::Applied(s, _) if *s == step)));
    }
    offline_killed_at(version, flow, id, &points);
}

/// The offline flow of `version` killed at `points` in turn, each time resumed elsewhere.
fn offline_killed_at(version: &str, flow: Flow, id: &str, points: &[At]) {
    let sim_args = ["--openshift-version", version];
    let args = ["--journal-in-cluster", "--run-id", id, "--etcd-backup-confirmed", "--poll-interval", "300ms"];
    let expected = unkilled(&sim_args, &args);
    let sim = Sim::in_process_with(1, 2, &sim_args);
    let (journal, kills) = killed_at_each_then_finished(&sim, id, &args, flow, points);
    migrated_and_settled(&sim);
    each_kill_resumed_inside_its_step(&journal, &kills, flow);
    each_step_done_once(&journal, flow);
    let reboot = JournalPlace::new("kube-system", &format!("{id}-reboot")).unwrap();
    let mut dispatches: BTreeMap<String, usize> = BTreeMap::new();
    for line in cluster_journal_lines(&sim, &reboot) {
        if line["record"]["event"] == "dispatching" {
            *dispatches.entry(line["record"]["host"].as_str().unwrap().to_owned()).or_default() += 1;
        }
    }
    assert_eq!(dispatches.len(), 3, "{dispatches:?}");
    assert!(dispatches.values().all(|&n| n == 1), "step 7 rebooted each node once: {dispatches:?}");
    assert!(expected.2.values().all(|&n| n == 2), "unkilled: step 7 and the MCO's rollout: {expected:?}");
    assert_eq!(changes(&sim), expected, "the generations of Network.config and Network.operator, each node's reboots");
}

/// Killed also the moment `spec.migration.networkType` (step 2) and `spec.networkType` (4)
/// are seen set.
#[test]
fn two_phase_killed_at_every_step_and_resumed_elsewhere_finishes() {
    let changed = [At::Applied(Step::EnableMigration, migration_enabled), At::Applied(Step::SetNetworkType, switched)];
    offline_killed_at_every_step("4.14.38", Flow::TwoPhase, "killsteps-two-phase", &changed);
}

/// Killed also the moment the pools are seen paused (step 3), the network type switched (4)
/// and the pools resumed (8).
#[test]
fn seed_flow_killed_at_every_step_and_resumed_elsewhere_finishes() {
    let changed = [
        At::Applied(Step::PausePools, |sim| pools_paused(sim) == [true, true]),
        At::Applied(Step::SetNetworkType, switched),
        At::Applied(Step::ResumePools, |sim| pools_paused(sim) == [false, false]),
    ];
    offline_killed_at_every_step("4.7.60", Flow::Seed, "killsteps-seed", &changed);
}

/// The live flow killed at each of its steps' starts and at the network operator's stages
/// inside its watch: every machine booted exactly twice (the MCO's two rounds).
#[test]
fn live_killed_at_its_stages_and_resumed_elsewhere_finishes() {
    let sim_args = ["--openshift-version", "4.16.21", "--workloads", "0"];
    let id = "killsteps-live";
    let args = ["--mode", "live", "--journal-in-cluster", "--run-id", id, "--etcd-backup-confirmed", "--poll-interval", "300ms"];
    let expected = unkilled(&sim_args, &args);
    let sim = Sim::in_process_with(1, 2, &sim_args);
    let points = [
        At::MigrationStarted,
        At::Step(Step::Preflight),
        At::Step(Step::Backup),
        At::Step(Step::SetNetworkType),
        At::Step(Step::WaitRollout),
        At::Condition("NetworkTypeMigrationTargetCNIAvailable"),
        At::Condition("NetworkTypeMigrationMTUReady"),
        At::Condition("NetworkTypeMigrationTargetCNIInUse"),
        At::Step(Step::Verify),
    ];
    let (journal, kills) = killed_at_each_then_finished(&sim, id, &args, Flow::Live, &points);
    migrated_and_settled(&sim);
    each_kill_resumed_inside_its_step(&journal, &kills, Flow::Live);
    each_step_done_once(&journal, Flow::Live);
    for (node, count) in boot_counts(&sim) {
        assert_eq!(count, 2, "{node} booted {count} times: the MCO's two rounds");
    }
    assert_eq!(changes(&sim), expected, "the generations of Network.config and Network.operator, each node's reboots");
    assert_eq!(sim.control("GET", "operators/refusals", ""), "[]", "the operator refused nothing");
}
