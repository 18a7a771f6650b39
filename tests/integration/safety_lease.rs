//! The lease fences runs, a reboot run and a migration exclude each other, and fleetboot's
//! cordons are never stranded nor an admin's stolen; `fleetboot repair` puts back what a killed
//! run left. Real processes on the simulated cluster, judged by the simulated nodes' history,
//! kubectl and the journals.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::Run;
use crate::common::inproc::EngineRun;
use crate::common::sim::Sim;
use fleetboot::ExitCode;
use fleetboot::adapters::journal;
use fleetboot_core::journal::Entry;

fn out(sim: &Sim, args: &[&str]) -> Run {
    sim.fleetboot(args).output().unwrap().into()
}

/// Each node's "reboot-requested" times, from the simulation's own node history.
fn reboot_requests(sim: &Sim) -> Vec<(String, u64)> {
    let nodes: serde_json::Value = serde_json::from_str(&sim.control("GET", "nodes", "")).unwrap();
    let mut requests = Vec::new();
    for node in nodes.as_array().unwrap() {
        for entry in node["history"].as_array().unwrap().iter().filter(|e| e[1] == "reboot-requested") {
            requests.push((node["name"].as_str().unwrap().to_owned(), entry[0].as_u64().unwrap()));
        }
    }
    requests
}

fn unschedulable(sim: &Sim, node: &str) -> bool {
    sim.kubectl_ok(&["get", "node", node, "-o", "jsonpath={.spec.unschedulable}"]).trim() == "true"
}

/// A Lease held live by someone else, renewed now, lasting `seconds`.
fn held_lease(sim: &Sim, name: &str, holder: &str, seconds: u64) {
    let now = std::process::Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%S.000000Z"]).output().unwrap();
    let file = sim.path(&format!("{name}-lease.json"));
    std::fs::write(
        &file,
        format!(
            r#"{{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{{"name":"{name}","namespace":"kube-system"}},
            "spec":{{"holderIdentity":"{holder}","leaseDurationSeconds":{seconds},"renewTime":"{}"}}}}"#,
            String::from_utf8(now.stdout).unwrap().trim()
        ),
    )
    .unwrap();
    sim.kubectl_ok(&["create", "--validate=false", "-f", file.to_str().unwrap()]);
}

fn wait_for_journal(path: &Path, what: impl Fn(&Entry) -> bool, child: &mut std::process::Child) {
    wait_for_journal_of(path, what, || child.try_wait().unwrap().is_some());
}

/// Waits (a minute at most) until the journal holds a record `what` accepts; the run must not
/// have `ended` before.
fn wait_for_journal_of(path: &Path, what: impl Fn(&Entry) -> bool, mut ended: impl FnMut() -> bool) {
    let start = Instant::now();
    loop {
        if journal::load(path).is_ok_and(|(records, _)| records.iter().any(|r| what(&r.entry))) {
            return;
        }
        assert!(!ended(), "the run ended first");
        assert!(start.elapsed() < Duration::from_secs(60), "never journaled");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Breaking a live lease: the old holder starts hosts quickly (one a second, six at once); the
/// new run waits the old one's whole lease. By the nodes' own history, no reboot of the old
/// run reached a node after the new run's first. Two processes, as two admins' runs are: in one
/// process, two runs started in the same second share a run ID (start second and PID) and so a
/// lease identity, and the old run would not see the takeover (common/inproc.rs).
#[test]
fn after_break_lock_no_reboot_of_the_old_run_reaches_a_node_after_the_new_runs_first() {
    let sim = Sim::start(0, 8);
    let first_journal = sim.path("first.jsonl");
    let mut first = sim
        .fleetboot(&[
            "reboot",
            "--nodes",
            "worker-0,worker-1,worker-2,worker-3,worker-4,worker-5",
            "--concurrency",
            "6",
            "--rate",
            "1/s",
            "--lease-duration",
            "6s",
            "--poll-interval",
            "200ms",
            "--output",
            "json",
            "--journal",
            first_journal.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_journal(&first_journal, |e| matches!(e, Entry::Dispatching { .. }), &mut first);
    let second =
        out(&sim, &["reboot", "--nodes", "worker-6,worker-7", "--break-lock", "--lease-duration", "3s", "--poll-interval", "200ms"]);
    let first: Run = first.wait_with_output().unwrap().into();
    assert_eq!(second.code, 0, "{}", second.debug());
    assert!(second.stdout.contains("waiting 6s before the first reboot"), "the old run's whole lease: {}", second.debug());
    assert_eq!(first.code, 4, "the old run stopped early: {}", first.debug());
    let requests = reboot_requests(&sim);
    let new_first = requests.iter().filter(|(n, _)| n == "worker-6" || n == "worker-7").map(|(_, at)| *at).min().unwrap();
    let late: Vec<_> = requests.iter().filter(|(n, at)| n != "worker-6" && n != "worker-7" && *at >= new_first).collect();
    assert!(late.is_empty(), "the old run's reboots {late:?} reached nodes after the new run's first at {new_first}");
}

/// A node the admin cordoned before the run is drained, rebooted and left cordoned; the other
/// one is uncordoned.
#[test]
fn a_node_cordoned_before_the_run_stays_cordoned_after_drain() {
    // No default workloads: with both workers drained at once, the router's second pod could
    // go nowhere and its budget would hold the drain, as it would on a real two-worker cluster.
    let sim = Sim::in_process_with(0, 2, &["--workloads", "0"]);
    sim.kubectl_ok(&["cordon", "worker-0"]);
    let journal_path = sim.path("run.jsonl");
    // Two at a time, in the run and in the worker pool: the admin's cordoned node counts as
    // unavailable against both limits as long as it stays cordoned, which is to the end.
    let run = sim.reboot_in_process(&[
        "--all",
        "--drain",
        "--concurrency",
        "2",
        "--group-concurrency",
        "2",
        "--poll-interval",
        "200ms",
        "--journal",
        journal_path.to_str().unwrap(),
    ]);
    assert_eq!(run.exit(), ExitCode::Ok, "{}", run.debug());
    assert!(unschedulable(&sim, "worker-0"), "the admin's cordon was lifted");
    assert!(!unschedulable(&sim, "worker-1"), "fleetboot's own cordon stayed");
    let (records, _) = journal::load(&journal_path).unwrap();
    let found = |node: &str| {
        records.iter().find_map(|r| match &r.entry {
            Entry::Cordoning { host, already_cordoned } if host == node => Some(*already_cordoned),
            _ => None,
        })
    };
    assert_eq!((found("worker-0"), found("worker-1")), (Some(true), Some(false)));
    assert!(!records.iter().any(|r| matches!(&r.entry, Entry::Uncordoned { host } if host == "worker-0")));
    let rebooted: Vec<String> = reboot_requests(&sim).into_iter().map(|(n, _)| n).collect();
    assert_eq!(rebooted.len(), 2, "{rebooted:?}");
}

/// Runs one drained node with the API failing the next `failures` node patches once the node
/// is drained (the uncordon's), and returns the run.
fn uncordon_through_failures(failures: u32) -> (Sim, EngineRun, std::path::PathBuf) {
    let sim = Sim::in_process(0, 1);
    let journal_path = sim.path("run.jsonl");
    let args = ["--all", "--drain", "--poll-interval", "200ms", "--journal", journal_path.to_str().unwrap()];
    let run = std::thread::scope(|scope| {
        let run = scope.spawn(|| sim.reboot_in_process(&args));
        wait_for_journal_of(&journal_path, |e| matches!(e, Entry::Drained { .. }), || run.is_finished());
        sim.control("POST", "fail-requests", &format!(r#"{{"method": "PATCH", "resource": "nodes", "count": {failures}}}"#));
        run.join().unwrap()
    });
    (sim, run, journal_path)
}

#[test]
fn an_uncordon_the_api_fails_is_tried_again_before_the_run_ends() {
    let (sim, run, journal_path) = uncordon_through_failures(2);
    assert_eq!(run.exit(), ExitCode::Ok, "{}", run.debug());
    assert!(!unschedulable(&sim, "worker-0"), "left cordoned");
    assert!(run.warnings().iter().any(|w| w.contains("tried again at the end of the run")), "{}", run.debug());
    assert!(run.summary().still_cordoned.is_empty(), "{}", run.debug());
    let (_, state) = journal::load(&journal_path).unwrap();
    assert!(!state.records["worker-0"].cordoned);
}

#[test]
fn an_uncordon_that_keeps_failing_is_listed_and_the_exit_code_says_so() {
    let (sim, run, journal_path) = uncordon_through_failures(1000);
    assert_eq!(run.exit(), ExitCode::HostsFailed, "{}", run.debug());
    assert_eq!(run.summary().still_cordoned, ["worker-0"], "{}", run.debug());
    assert!(unschedulable(&sim, "worker-0"));
    let (_, state) = journal::load(&journal_path).unwrap();
    assert!(state.records["worker-0"].cordoned, "the journal still says fleetboot cordoned it");
    // `repair` puts it back once the API answers again.
    sim.control("POST", "fail-requests", r#"{"method": "PATCH", "resource": "nodes", "count": 0}"#);
    let repaired = out(&sim, &["repair", "--journal", journal_path.to_str().unwrap()]);
    assert_eq!(repaired.code, 0, "{}", repaired.debug());
    assert!(!unschedulable(&sim, "worker-0"));
}

/// kill -9 while a drain waits on a PodDisruptionBudget: the node stays cordoned and the lease
/// held. `repair` refuses while the run lives (its journal locked) and while the lease names a
/// holder on another machine (not known dead), says what it would do with `--dry-run`, then
/// uncordons, releases the lease, journals it, and reboots nothing.
#[test]
fn repair_after_kill_9_mid_drain_uncordons_and_releases_the_lease_rebooting_nothing() {
    let sim = Sim::start(0, 2);
    sim.pin_app_a_under_a_zero_disruption_budget();
    sim.kubectl_ok(&["cordon", "worker-1"]);
    let journal_path = sim.path("run.jsonl");
    let j = journal_path.to_str().unwrap();
    let mut child = sim
        // Two at a time, in the run and in the worker pool: the admin's cordoned worker-1 counts
        // as unavailable against both limits.
        .fleetboot(&[
            "reboot",
            "--nodes",
            "worker-0",
            "--drain",
            "--drain-timeout",
            "5m",
            "--concurrency",
            "2",
            "--group-concurrency",
            "2",
            "--in-progress-annotation",
            "--output",
            "json",
            "--journal",
            j,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_journal(&journal_path, |e| matches!(e, Entry::Cordoning { .. }), &mut child);
    let start = Instant::now();
    while !unschedulable(&sim, "worker-0") {
        assert!(start.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(50));
    }
    let refused = out(&sim, &["repair", "--journal", j]);
    assert_eq!(refused.code, 2, "a live run is not repaired under it: {}", refused.debug());
    assert!(refused.stderr.contains("it is in use by process"), "names the live run: {}", refused.debug());
    child.kill().unwrap(); // SIGKILL: the cordon, the lease and the in-progress annotation stay behind.
    child.wait().unwrap();
    assert!(sim.kubectl(&["-n", "kube-system", "get", "lease", "fleetboot"]).0, "the killed run's lease is still there");
    let in_progress = |node: &str| {
        sim.kubectl_ok(&["get", "node", node, "-o", r"jsonpath={.metadata.annotations.fleetboot\.io/reboot-in-progress}"]).trim().to_owned()
    };
    let run_id = journal::load(&journal_path).unwrap().1.run_id;
    assert_eq!(in_progress("worker-0"), run_id, "the killed run's node still says it is in flight");

    // The same lease held by the run's process on another machine: it may still act, and
    // repair refuses naming the lease and its holder, touching nothing.
    let holder = sim.kubectl_ok(&["-n", "kube-system", "get", "lease", "fleetboot", "-o", "jsonpath={.spec.holderIdentity}"]);
    // Live for an hour from now: refused for the holder alone, never for an expiry the
    // suite's load could bring (restored below, the holder is the killed process again, and
    // that process known dead is what lets repair release it).
    let set_holder = |holder: &str| {
        let patch = serde_json::json!({"spec": {"holderIdentity": holder, "leaseDurationSeconds": 3600}}).to_string();
        sim.kubectl_ok(&["-n", "kube-system", "patch", "lease", "fleetboot", "--type", "merge", "-p", &patch]);
    };
    set_holder(&format!("ann@elsewhere pid 1 run {run_id}"));
    let elsewhere = out(&sim, &["repair", "--journal", j]);
    assert_eq!(elsewhere.code, 2, "{}", elsewhere.debug());
    let said = format!("still holds the lease kube-system/fleetboot: ann@elsewhere pid 1 run {run_id}; it may still be running");
    assert!(elsewhere.stderr.contains(&said), "{}", elsewhere.debug());
    assert!(unschedulable(&sim, "worker-0"), "nothing touched under a live holder");
    set_holder(holder.trim());

    let dry = out(&sim, &["repair", "--journal", j, "--dry-run", "-o", "json"]);
    assert_eq!(dry.code, 0, "{}", dry.debug());
    let plan: serde_json::Value = serde_json::from_str(&dry.stdout).unwrap();
    assert_eq!(plan["plan"]["uncordon"], serde_json::json!(["worker-0"]), "{}", dry.debug());
    assert!(unschedulable(&sim, "worker-0"), "--dry-run changed nothing");

    let repaired = out(&sim, &["repair", "--journal", j]);
    assert_eq!(repaired.code, 0, "{}", repaired.debug());
    assert!(repaired.stdout.contains("uncordon node worker-0: done"), "{}", repaired.debug());
    assert!(repaired.stdout.contains("release lease kube-system/fleetboot: done"), "{}", repaired.debug());
    assert!(repaired.stdout.contains("remove fleetboot.io/reboot-in-progress from node worker-0: done"), "{}", repaired.debug());
    assert_eq!(in_progress("worker-0"), "", "the dead run's annotation is gone");
    assert!(!unschedulable(&sim, "worker-0"), "fleetboot's cordon was lifted");
    assert!(unschedulable(&sim, "worker-1"), "the admin's cordon of a node outside the run is not touched");
    assert!(!sim.kubectl(&["-n", "kube-system", "get", "lease", "fleetboot"]).0, "the lease was released");
    assert!(reboot_requests(&sim).is_empty(), "repair rebooted something");
    let (_, state) = journal::load(&journal_path).unwrap();
    assert!(!state.records["worker-0"].cordoned, "journaled as uncordoned");
    let again = out(&sim, &["repair", "--journal", j]);
    assert_eq!(again.code, 0, "{}", again.debug());
    assert!(again.stdout.contains("nothing to put back"), "{}", again.debug());
}

/// A run that took its lease in another namespace (`--lease-namespace ops`), killed -9 mid
/// drain: `repair --lease-namespace ops` finds the lease where the run took it and releases it
/// (a repair that looked in kube-system only left it to expire, reporting nothing to release).
#[test]
fn repair_releases_a_killed_runs_lease_in_the_namespace_it_took_it_in() {
    let sim = Sim::start(0, 2);
    sim.pin_app_a_under_a_zero_disruption_budget();
    let namespace = sim.path("namespace.json");
    std::fs::write(&namespace, r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"ops"}}"#).unwrap();
    sim.kubectl_ok(&["create", "--validate=false", "-f", namespace.to_str().unwrap()]);
    let journal_path = sim.path("run.jsonl");
    let j = journal_path.to_str().unwrap();
    let args = ["reboot", "--nodes", "worker-0", "--drain", "--drain-timeout", "5m", "--lease-namespace", "ops", "--journal", j];
    let mut child = sim.fleetboot(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for_journal(&journal_path, |e| matches!(e, Entry::Cordoning { .. }), &mut child);
    child.kill().unwrap(); // SIGKILL: the lease stays behind, in ops.
    child.wait().unwrap();
    assert!(sim.kubectl(&["-n", "ops", "get", "lease", "fleetboot"]).0, "the killed run's lease is in ops");

    let repaired = out(&sim, &["repair", "--journal", j, "--lease-namespace", "ops"]);
    assert_eq!(repaired.code, 0, "{}", repaired.debug());
    assert!(repaired.stdout.contains("release lease ops/fleetboot: done"), "{}", repaired.debug());
    assert!(!sim.kubectl(&["-n", "ops", "get", "lease", "fleetboot"]).0, "the lease was released");
    assert!(reboot_requests(&sim).is_empty(), "repair rebooted something");
}

/// A reboot run refuses to start while a migration holds its lease, and a migration refuses
/// while a reboot run holds its own; neither touches anything.
#[test]
fn a_reboot_run_and_a_migration_refuse_each_others_lease() {
    let sim = Sim::in_process(1, 2);
    held_lease(&sim, "fleetboot-migration", "ann@elsewhere pid 1 run m-1", 600);
    let refused = sim.reboot_in_process(&["--nodes", "worker-0", "--journal", sim.path("r.jsonl").to_str().unwrap()]);
    assert_eq!(refused.exit(), ExitCode::BadInput, "{}", refused.debug());
    assert!(
        refused.error().contains("a fleetboot migration holds the lease kube-system/fleetboot-migration: ann@elsewhere"),
        "{}",
        refused.debug()
    );
    assert!(reboot_requests(&sim).is_empty());
    assert!(!sim.kubectl(&["-n", "kube-system", "get", "lease", "fleetboot"]).0, "the refused run gave its own lease back");
    sim.kubectl_ok(&["-n", "kube-system", "delete", "lease", "fleetboot-migration"]);

    held_lease(&sim, "fleetboot", "bob@elsewhere pid 2 run r-1", 600);
    let refused = sim.migrate_in_process(&["--etcd-backup-confirmed", "--poll-interval", "300ms"]);
    assert_eq!(refused.exit(), ExitCode::BadInput, "{}", refused.debug());
    assert!(refused.error().contains("a fleetboot reboot run holds the lease kube-system/fleetboot: bob@elsewhere"), "{}", refused.debug());
    assert!(!sim.kubectl(&["-n", "kube-system", "get", "lease", "fleetboot-migration"]).0, "the refused migration gave its lease back");
    let network = sim.kubectl_ok(&["get", "network.config.openshift.io", "cluster", "-o", "jsonpath={.spec.networkType}"]);
    assert_eq!(network, "OpenShiftSDN", "nothing changed");
    assert!(reboot_requests(&sim).is_empty());
}

/// A migration whose lease is taken over while it waits for the MCO's rollout (phase 1, minutes
/// on a real cluster) stops inside that wait, not after it: "stopped in step N", the step not
/// done, exit 4.
#[test]
fn a_migration_stops_inside_a_wait_when_its_lease_is_taken_over() {
    let sim = Sim::in_process(1, 3);
    let (journal, run) = std::thread::scope(|scope| {
        let run =
            scope.spawn(|| sim.migrate_in_process(&["--etcd-backup-confirmed", "--poll-interval", "300ms", "--lease-duration", "3s"]));
        let journal = sim.wait_for_migration_journal(r#""event":"step_started","step":"rollout_config""#, None);
        assert!(!run.is_finished(), "migrate ended before the rollout");
        take_the_migration_lease(&sim);
        (journal, run.join().unwrap().to_run())
    });
    assert_eq!(run.code, 4, "{}", run.debug());
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(text.lines().last().unwrap().contains("stopped in step"), "{text}");
    assert!(!text.contains(r#""event":"step_done","step":"rollout_config""#), "it waited the rollout out: {text}");
    assert!(run.stderr.contains("another run took the cluster's lease over (admin@elsewhere"), "{}", run.debug());
}

/// An admin's run takes the migration's lease over (its holder changed under it).
fn take_the_migration_lease(sim: &Sim) {
    sim.kubectl_ok(&[
        "-n",
        "kube-system",
        "patch",
        "lease",
        "fleetboot-migration",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"holderIdentity":"admin@elsewhere pid 1 run other"}}"#,
    ]);
}

/// A migration whose lease is taken over during its reboot step hands the loss to the reboot
/// run as the first Ctrl-C: no further node starts (the one in flight finishes), and the
/// migration stops in that step with exit 4.
#[test]
fn a_migration_losing_its_lease_in_the_reboot_step_starts_no_further_node() {
    let sim = Sim::in_process(1, 4);
    let args = ["--etcd-backup-confirmed", "--poll-interval", "300ms", "--lease-duration", "3s", "--reboot-concurrency", "1"];
    let (migration, reboot_journal, run) = std::thread::scope(|scope| {
        let run = scope.spawn(|| sim.migrate_in_process(&args));
        let migration = sim.wait_for_migration_journal(r#""event":"step_started","step":"reboot_nodes""#, None);
        let reboot_journal = migration.with_file_name("reboot.jsonl");
        let start = Instant::now();
        let dispatched = |path: &Path| {
            journal::load(path).map_or(0, |(records, _)| records.iter().filter(|r| matches!(r.entry, Entry::Dispatching { .. })).count())
        };
        while dispatched(&reboot_journal) == 0 {
            assert!(!run.is_finished(), "migrate ended first");
            assert!(start.elapsed() < Duration::from_secs(60), "no reboot started");
            std::thread::sleep(Duration::from_millis(20));
        }
        take_the_migration_lease(&sim);
        (migration, reboot_journal, run.join().unwrap().to_run())
    });
    assert_eq!(run.code, 4, "{}", run.debug());
    let sent = crate::common::dispatches(&reboot_journal);
    assert!(sent.len() < 5, "the reboot run went on starting nodes after the loss: {sent:?}");
    assert!(run.stdout.contains("starting nothing new") || run.stderr.contains("starting nothing new"), "{}", run.debug());
    let text = std::fs::read_to_string(&migration).unwrap();
    assert!(text.lines().last().unwrap().contains("stopped in step"), "{text}");
}

/// A migration (the seed's flow, 4.7) killed after it paused the pools: `repair` of its
/// `migration.jsonl` unpauses the pools it paused (an admin's paused pool is kept: the core's
/// unit test), releases the migration's lease, notes it in the journal and reboots nothing.
#[test]
fn repair_of_a_killed_migration_unpauses_its_pools_and_releases_its_lease() {
    let sim = Sim::start_with(1, 2, &["--openshift-version", "4.7.60"]);
    let mut child = sim
        .fleetboot(&["migrate", "--etcd-backup-confirmed", "--poll-interval", "300ms"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let journal_path = sim.wait_for_migration_journal(r#""event":"step_done","step":"pause_pools""#, Some(&mut child));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(sim.paused("master") && sim.paused("worker"));
    assert!(sim.kubectl(&["-n", "kube-system", "get", "lease", "fleetboot-migration"]).0);
    // Under load the migration may get further than the pause before the kill lands: what
    // repair must not do is add a reboot of its own.
    let before_repair = reboot_requests(&sim);
    let j = journal_path.to_str().unwrap();
    let repaired = out(&sim, &["repair", "--journal", j, "-o", "json"]);
    assert_eq!(repaired.code, 0, "{}", repaired.debug());
    let report: serde_json::Value = serde_json::from_str(&repaired.stdout).unwrap();
    assert_eq!(report["plan"]["unpause"], serde_json::json!(["master", "worker"]), "{}", repaired.debug());
    assert!(!sim.paused("master") && !sim.paused("worker"), "{}", repaired.debug());
    assert!(!sim.kubectl(&["-n", "kube-system", "get", "lease", "fleetboot-migration"]).0, "the lease was released");
    assert!(std::fs::read_to_string(&journal_path).unwrap().lines().last().unwrap().contains("fleetboot repair: "), "journaled");
    assert_eq!(reboot_requests(&sim), before_repair, "repair rebooted something");
}
