//! Windows, `--window-exit`, the plan's boot IDs and `--only-if`, in process on tokio's paused
//! clock. The fake world starts at BASE_MS: 2027-01-15 08:00 UTC, a Friday.

use super::*;
use fleetboot_core::batch::BatchSettings;

const MINUTE: Duration = Duration::from_secs(60);

fn batch(windows: &[&str], exit: bool, only_if: Option<&str>) -> BatchSettings {
    BatchSettings {
        windows: windows.iter().map(|w| w.parse().unwrap()).collect(),
        window_tz: Some("UTC".into()),
        window_exit: exit,
        only_if: only_if.map(str::to_owned),
        ..BatchSettings::default()
    }
}

fn held_records(job: &Job) -> Vec<(String, Option<u64>)> {
    job.records()
        .into_iter()
        .filter_map(|r| match r.entry {
            Entry::Held { reason, until_ms } => Some((reason, until_ms)),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn no_reboot_starts_before_the_window_opens() {
    let dir = tempfile::tempdir().unwrap();
    let all = names(4);
    let world = World::new(&strs(&all));
    let mut job = Job::new(&world, dir.path(), &strs(&all));
    job.settings.concurrency = 2;
    job.settings.batch = batch(&["08:30-09:30"], false, None);
    let start = Instant::now();
    let mut countdown = Vec::new();
    let (trigger, abort) = watch::channel(Abort::No);
    let summary = job
        .run_with_abort((trigger, abort), |event, _| {
            if let Event::Held { remaining_ms: Some(ms), .. } = event {
                countdown.push(*ms);
            }
        })
        .await;
    for name in &all {
        assert_eq!(outcome(&summary, name), Outcome::Rebooted, "{name}");
        assert_eq!(world.reboots_received(name), 1, "{name}");
    }
    let opens = start + 30 * MINUTE;
    let sends = world.sends();
    assert!(sends.iter().all(|(at, _)| *at >= opens), "every reboot inside the window: {sends:?}");
    assert_eq!(summary.exit_code(), fleetboot_core::ExitCode::Ok);
    // The hold is journaled once, with when the window opens; the countdown goes down to it.
    let held = held_records(&job);
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].1, Some(BASE_MS + 30 * 60_000));
    assert!(held[0].0.contains("08:30-09:30 (UTC)") && held[0].0.contains("2027-01-15 08:30 UTC"), "{}", held[0].0);
    assert!(countdown.len() >= 3 && countdown.windows(2).all(|w| w[1] < w[0]), "{countdown:?}");
    assert!(countdown[0] <= 30 * 60_000 && countdown[0] > 29 * 60_000, "{countdown:?}");
}

#[tokio::test(start_paused = true)]
async fn window_exit_stops_new_reboots_lets_in_flight_finish_and_a_resume_finishes_in_the_next_window() {
    let dir = tempfile::tempdir().unwrap();
    let all = names(6);
    let world = World::new(&strs(&all));
    let mut job = Job::new(&world, dir.path(), &strs(&all));
    job.settings.concurrency = 1;
    // Open now (since 07:00), closes at 08:05: room for a few of the 6 (about 90 s each).
    job.settings.batch = batch(&["07:00-08:05"], true, None);
    let start = Instant::now();
    let summary = job.run().await;
    let closes = start + 5 * MINUTE;
    let rebooted: Vec<&str> = all.iter().filter(|n| outcome(&summary, n) == Outcome::Rebooted).map(String::as_str).collect();
    let skipped: Vec<&str> = all.iter().filter(|n| outcome(&summary, n) == Outcome::Skipped).map(String::as_str).collect();
    assert!(!rebooted.is_empty() && !skipped.is_empty(), "rebooted {rebooted:?}, skipped {skipped:?}");
    assert_eq!(rebooted.len() + skipped.len(), 6, "nothing left mid-reboot: in-flight hosts finish");
    // No reboot command after the window closed (the last one started inside it).
    let sends = world.sends();
    assert!(sends.iter().all(|(at, _)| *at < closes), "{sends:?}");
    assert!(skipped.iter().all(|n| world.reboots_received(n) == 0));
    assert!(summary.window_closed);
    assert_eq!(summary.exit_code(), fleetboot_core::ExitCode::OutsideWindow);
    assert_eq!(summary.exit_code() as i32, 5);
    let state = job.state();
    for name in &skipped {
        assert_eq!(state.records[*name].resume_action(), ResumeAction::Reboot, "{name}: a resume reboots it");
    }
    assert_eq!(held_records(&job).len(), 1);

    // A resume still outside the windows stops again at once, touching nothing.
    let again = job.run().await;
    assert_eq!(again.exit_code(), fleetboot_core::ExitCode::OutsideWindow);
    assert!(skipped.iter().all(|n| world.reboots_received(n) == 0));
    // The next morning, inside the window, a resume finishes the run.
    tokio::time::advance(23 * 60 * MINUTE).await;
    let tomorrow = start + 23 * 60 * MINUTE;
    let resumed = job.run().await;
    for name in &all {
        assert_eq!(outcome(&resumed, name), Outcome::Rebooted, "{name}");
        assert_eq!(world.reboots_received(name), 1, "{name}: rebooted once, across the runs");
    }
    for name in &skipped {
        let at = world.times_of(name, |e| matches!(e, Happened::SshReboot));
        assert!(at[0] >= tomorrow, "{name} rebooted in the next window");
    }
    assert_eq!(resumed.exit_code(), fleetboot_core::ExitCode::Ok);
}

#[tokio::test(start_paused = true)]
async fn only_if_selects_three_of_nine_and_a_host_rebooted_since_the_plan_is_done() {
    let dir = tempfile::tempdir().unwrap();
    let all = names(9);
    let world = World::new(&strs(&all));
    let mut job = Job::new(&world, dir.path(), &strs(&all));
    job.settings.concurrency = 3;
    // h2 would need it, but someone reboots it while the run waits for its window.
    job.settings.batch = batch(&["08:10-12:00"], false, Some("needs h2 h4 h7 h9"));
    let (trigger, abort) = watch::channel(Abort::No);
    let mut rebooted_by_someone = false;
    let summary = job
        .run_with_abort((trigger, abort), |event, _| {
            if matches!(event, Event::Held { .. }) && !rebooted_by_someone {
                rebooted_by_someone = true;
                world.set("h2", |h| h.boot += 1);
            }
        })
        .await;
    let needed = ["h4", "h7", "h9"];
    for name in &all {
        let want = if needed.contains(&name.as_str()) { Outcome::Rebooted } else { Outcome::NotNeeded };
        assert_eq!(outcome(&summary, name), want, "{name}");
        assert_eq!(world.reboots_received(name), usize::from(want == Outcome::Rebooted), "{name}");
    }
    assert_eq!(summary.exit_code(), fleetboot_core::ExitCode::Ok, "hosts that need no reboot are no failure");
    let state = job.state();
    let reason = |n: &str| state.records[n].skipped_because.clone().unwrap();
    assert_eq!(reason("h1"), "not needed: `needs h2 h4 h7 h9` exited 1");
    assert!(reason("h2").starts_with("already rebooted since the plan (boot ID h2-boot0 → h2-boot1"), "{}", reason("h2"));
    assert_eq!(state.records["h2"].phase, Phase::NotNeeded);
    assert_eq!(state.records["h1"].resume_action(), ResumeAction::Done, "a resume leaves it alone");
    // Every host's boot ID was noted when the run started.
    let planned = job.records().iter().filter(|r| matches!(r.entry, Entry::Planned { .. })).count();
    assert_eq!(planned, 9);
}

fn journal_order(job: &Job) -> Vec<String> {
    job.records()
        .into_iter()
        .filter_map(|r| match r.entry {
            Entry::Deferred { host, .. } => Some(format!("deferred {host}")),
            Entry::Dispatching { host, .. } => Some(format!("dispatching {host}")),
            Entry::Skipped { host, .. } => Some(format!("skipped {host}")),
            Entry::Failed { host, .. } => Some(format!("failed {host}")),
            Entry::Drained { host, evicted } => Some(format!("drained {host} {evicted}")),
            _ => None,
        })
        .collect()
}

fn drain_job(world: &Arc<World>, dir: &Path, names: &[&str], ladder: Vec<DrainStep>) -> Job {
    let mut job = Job::new(world, dir, names);
    job.settings.concurrency = 1;
    job.drain = true;
    job.drain_faults.stuck = Some("h1");
    job.settings.batch.drain_escalation = ladder;
    job
}

use fleetboot_core::batch::DrainStep;

#[tokio::test(start_paused = true)]
async fn a_stuck_drain_waits_once_more_then_is_forced_when_force_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1", "h2"]);
    let job = drain_job(&world, dir.path(), &["h1", "h2"], vec![DrainStep::Wait, DrainStep::Force]);
    let (trigger, abort) = watch::channel(Abort::No);
    let mut waits = Vec::new();
    let summary = job
        .run_with_abort((trigger, abort), |event, _| {
            collect_waiting(event, &mut waits);
        })
        .await;
    assert_eq!(outcome(&summary, "h1"), Outcome::Rebooted);
    assert_eq!(world.reboots_received("h1"), 1);
    assert_eq!(journal_order(&job), ["drained h1 1", "dispatching h1", "drained h2 2", "dispatching h2"]);
    assert_eq!(waits.len(), 1, "{waits:?}");
    assert!(waits[0].contains("app/db-0") && waits[0].contains("--drain-escalation wait"), "{waits:?}");
    // Two full drain timeouts before the force.
    let cordoned = world.times_of("h1", |e| matches!(e, Happened::Cordoned))[0];
    let sent = world.times_of("h1", |e| matches!(e, Happened::SshReboot))[0];
    assert!(sent - cordoned >= 2 * MINUTE, "{:?}", sent - cordoned);
}

#[tokio::test(start_paused = true)]
async fn a_deferred_drain_goes_to_the_end_of_the_queue_then_is_skipped_uncordoned() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1", "h2", "h3"]);
    let job = drain_job(&world, dir.path(), &["h1", "h2", "h3"], vec![DrainStep::Defer, DrainStep::Skip]);
    let summary = job.run().await;
    assert_eq!(
        journal_order(&job),
        ["deferred h1", "drained h2 2", "dispatching h2", "drained h3 2", "dispatching h3", "skipped h1"],
        "h1 deferred behind the others, then skipped"
    );
    assert_eq!((outcome(&summary, "h1"), world.reboots_received("h1")), (Outcome::Skipped, 0));
    let cordons = world.times_of("h1", |e| matches!(e, Happened::Cordoned)).len();
    let uncordons = world.times_of("h1", |e| matches!(e, Happened::Uncordoned)).len();
    assert_eq!((cordons, uncordons), (2, 2), "uncordoned after each attempt");
    assert!(summary.still_cordoned.is_empty());
    assert_eq!(summary.exit_code(), fleetboot_core::ExitCode::Incomplete);
}

#[tokio::test(start_paused = true)]
async fn a_ladder_of_defers_only_ends_in_the_drain_failure_policy_never_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1", "h2"]);
    let job = drain_job(&world, dir.path(), &["h1", "h2"], vec![DrainStep::Defer, DrainStep::Defer]);
    let summary = job.run().await;
    assert_eq!(journal_order(&job), ["deferred h1", "drained h2 2", "dispatching h2", "deferred h1", "failed h1"]);
    assert_eq!((outcome(&summary, "h1"), outcome(&summary, "h2")), (Outcome::Failed, Outcome::Rebooted));
}

#[tokio::test(start_paused = true)]
async fn the_next_reboot_waits_for_the_soak_after_each_proven_node() {
    let dir = tempfile::tempdir().unwrap();
    let all = names(3);
    let world = World::new(&strs(&all));
    let mut job = Job::new(&world, dir.path(), &strs(&all));
    job.settings.concurrency = 1;
    job.settings.batch.soak_ms = 5 * 60_000;
    let summary = job.run().await;
    assert!(all.iter().all(|n| outcome(&summary, n) == Outcome::Rebooted));
    let records = job.records();
    let at = |what: &str, host: &str| {
        records
            .iter()
            .find(|r| match &r.entry {
                Entry::Confirmed { host: h } => what == "confirmed" && h == host,
                Entry::Dispatching { host: h, .. } => what == "dispatching" && h == host,
                _ => false,
            })
            .unwrap()
            .at_ms
    };
    assert!(at("dispatching", "h2") >= at("confirmed", "h1") + 300_000);
    assert!(at("dispatching", "h3") >= at("confirmed", "h2") + 300_000);
    let soaks = held_records(&job).into_iter().filter(|(r, until)| r.contains("soaking") && until.is_some()).count();
    assert_eq!(soaks, 2, "one hold per soak, with its end");
}

/// Review B1, after the drain: a blocker pod that appears while a node drains (slowly) stops
/// its reboot right before it would be sent: the node is uncordoned and requeued, and rebooted
/// only once the blocker is gone, once.
#[tokio::test(start_paused = true)]
async fn a_blocker_that_appears_during_a_slow_drain_holds_the_reboot_until_it_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1", "h2"]);
    let mut job = Job::new(&world, dir.path(), &["h1", "h2"]);
    job.settings.concurrency = 1;
    job.drain = true;
    job.api = true;
    job.settings.batch.block_on_pods = Some("app=backup".into());
    let backup = fleetboot_core::batch::PodNow {
        namespace: "sample-app".into(),
        name: "backup".into(),
        node: Some("h2".into()),
        phase: Some("Running".into()),
    };
    let gone_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let (trigger, abort) = watch::channel(Abort::No);
    let summary = job
        .run_with_abort((trigger, abort), |event, _| {
            // h1 is cordoned, its drain (20 s) under way: the backup starts, and ends 10 min later.
            if cordoning(event, "h1") && world.blockers.lock().unwrap().is_empty() && gone_at.lock().unwrap().is_none() {
                world.blockers.lock().unwrap().push(backup.clone());
                let (w, gone) = (world.clone(), gone_at.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(10 * MINUTE).await;
                    w.blockers.lock().unwrap().clear();
                    *gone.lock().unwrap() = Some(Instant::now());
                });
            }
        })
        .await;
    let gone = gone_at.lock().unwrap().expect("the backup ran and ended");
    for name in ["h1", "h2"] {
        assert_eq!(outcome(&summary, name), Outcome::Rebooted, "{name}");
        assert_eq!(world.reboots_received(name), 1, "{name}: rebooted once");
    }
    let sends = world.sends();
    assert!(sends.iter().all(|(at, _)| *at >= gone), "no reboot sent while the backup ran: {sends:?}");
    let order = journal_order(&job);
    assert_eq!(order[..2], ["drained h1 2".to_owned(), "deferred h1".to_owned()], "{order:?}");
    let reason = job
        .records()
        .into_iter()
        .find_map(|r| match r.entry {
            Entry::Deferred { host, reason, .. } if host == "h1" => Some(reason),
            _ => None,
        })
        .unwrap();
    assert!(reason.contains("after the drain") && reason.contains("sample-app/backup") && reason.contains("requeued"), "{reason}");
    // Uncordoned when requeued, cordoned again for its reboot, uncordoned once back.
    let cordons = world.times_of("h1", |e| matches!(e, Happened::Cordoned)).len();
    let uncordons = world.times_of("h1", |e| matches!(e, Happened::Uncordoned)).len();
    assert_eq!((cordons, uncordons), (2, 2));
    assert!(summary.still_cordoned.is_empty());
}

/// Review B4: a run stopped during a soak, resumed a few minutes later: the next node still
/// waits the rest of the soak, counted from the journal's `confirmed` time.
#[tokio::test(start_paused = true)]
async fn a_resume_during_a_soak_waits_the_rest_of_it_before_the_next_node() {
    let dir = tempfile::tempdir().unwrap();
    let all = names(3);
    let world = World::new(&strs(&all));
    let mut job = Job::new(&world, dir.path(), &strs(&all));
    job.settings.concurrency = 1;
    job.settings.batch.soak_ms = 10 * 60_000;
    let (trigger, abort) = watch::channel(Abort::No);
    let first = job
        .run_with_abort((trigger, abort), |event, trigger| {
            if let Event::Held { reason, .. } = event
                && reason.contains("soaking")
            {
                let _ = trigger.send(Abort::Hard);
            }
        })
        .await;
    assert_eq!(outcome(&first, "h1"), Outcome::Rebooted);
    assert_eq!(world.reboots_received("h2"), 0, "stopped during the soak");
    tokio::time::advance(3 * MINUTE).await;
    let resumed = job.run().await;
    for name in &all {
        assert_eq!(outcome(&resumed, name), Outcome::Rebooted, "{name}");
        assert_eq!(world.reboots_received(name), 1, "{name}");
    }
    let records = job.records();
    let at = |host: &str, confirmed: bool| {
        records
            .iter()
            .find(|r| match &r.entry {
                Entry::Confirmed { host: h } => confirmed && h == host,
                Entry::Dispatching { host: h, .. } => !confirmed && h == host,
                _ => false,
            })
            .unwrap()
            .at_ms
    };
    let resumed_at = records.iter().find(|r| matches!(r.entry, Entry::RunResumed { .. })).unwrap().at_ms;
    assert!(resumed_at < at("h1", true) + 600_000, "the resume came during the soak");
    assert!(at("h2", false) >= at("h1", true) + 600_000, "h2 went before the soak after h1 ended");
    assert!(at("h3", false) >= at("h2", true) + 600_000);
}

/// Review B4: the drain ladder's position survives a resume: a node deferred once
/// (`defer,skip`) is skipped at its next timeout after the resume, not deferred again.
#[tokio::test(start_paused = true)]
async fn a_resume_goes_on_from_the_drain_ladders_step() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1", "h2"]);
    let job = drain_job(&world, dir.path(), &["h1", "h2"], vec![DrainStep::Defer, DrainStep::Skip]);
    let (trigger, abort) = watch::channel(Abort::No);
    job.run_with_abort((trigger, abort), |event, trigger| {
        if let Event::Transition { record } = event
            && matches!(&record.entry, Entry::Deferred { host, .. } if host == "h1")
        {
            let _ = trigger.send(Abort::Hard);
        }
    })
    .await;
    assert_eq!(world.reboots_received("h1"), 0);
    let resumed = job.run().await;
    let order = journal_order(&job);
    assert_eq!(order.iter().filter(|e| *e == "deferred h1").count(), 1, "deferred once across the runs: {order:?}");
    let reason = job.state().records["h1"].skipped_because.clone().unwrap_or_default();
    assert!(reason.contains("--drain-escalation skip"), "the ladder's second step after the resume: {reason}");
    assert_eq!((outcome(&resumed, "h1"), world.reboots_received("h1")), (Outcome::Skipped, 0));
    assert_eq!((outcome(&resumed, "h2"), world.reboots_received("h2")), (Outcome::Rebooted, 1));
    let timeouts = job.records().iter().filter(|r| matches!(&r.entry, Entry::DrainTimedOut { host, .. } if host == "h1")).count();
    assert_eq!(timeouts, 2, "each timeout journaled");
}

/// Review B3: the windows are judged on the wall clock. The bastion sleeps 40 minutes a minute
/// into the run (its wall clock jumps, its monotonic clock does not move): the 08:30 window is
/// open when it wakes, and the reboots start then, not 30 monotonic minutes after the start.
#[tokio::test(start_paused = true)]
async fn a_window_opens_on_the_wall_clock_after_the_machine_slept() {
    use std::sync::OnceLock;
    static START: OnceLock<Instant> = OnceLock::new();
    const SLEPT_MS: u64 = 40 * 60_000;
    // The wall clock: BASE_MS plus the monotonic time, plus the 40 minutes slept after minute 1.
    fn wall() -> u64 {
        let elapsed = START.get().expect("set").elapsed().as_millis() as u64;
        BASE_MS + elapsed + if elapsed >= 60_000 { SLEPT_MS } else { 0 }
    }
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1", "h2"]);
    START.set(Instant::now()).unwrap();
    let mut job = Job::new(&world, dir.path(), &["h1", "h2"]);
    job.settings.concurrency = 1;
    job.settings.batch = batch(&["08:30-09:30"], false, None);
    job.wall = Some(wall);
    let start = Instant::now();
    let summary = job.run().await;
    for name in ["h1", "h2"] {
        assert_eq!((outcome(&summary, name), world.reboots_received(name)), (Outcome::Rebooted, 1), "{name}");
    }
    let first = world.sends()[0].0;
    assert!(first >= start + MINUTE, "nothing before the window (the wake): {:?}", first - start);
    assert!(first <= start + 3 * MINUTE, "the window opened at the wake, not 30 monotonic minutes in: {:?}", first - start);
}

/// Review B6: two hosts held at once for different reasons (a blocker pod on each node) journal
/// one `held` each, not one on every poll as they take turns.
#[tokio::test(start_paused = true)]
async fn two_hosts_held_at_once_for_different_reasons_journal_each_hold_once() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1", "h2"]);
    let mut job = Job::new(&world, dir.path(), &["h1", "h2"]);
    job.settings.concurrency = 2;
    job.api = true;
    job.settings.batch.block_on_pods = Some("app=backup".into());
    job.settings.batch.block_on_pods_on_node = true;
    let pod = |node: &str| fleetboot_core::batch::PodNow {
        namespace: "sample-app".into(),
        name: format!("backup-{node}"),
        node: Some(node.into()),
        phase: Some("Running".into()),
    };
    *world.blockers.lock().unwrap() = vec![pod("h1"), pod("h2")];
    let w = world.clone();
    tokio::spawn(async move {
        tokio::time::sleep(10 * MINUTE).await;
        w.blockers.lock().unwrap().clear();
    });
    let start = Instant::now();
    let summary = job.run().await;
    for name in ["h1", "h2"] {
        assert_eq!((outcome(&summary, name), world.reboots_received(name)), (Outcome::Rebooted, 1), "{name}");
    }
    assert!(world.sends().iter().all(|(at, _)| *at >= start + 10 * MINUTE));
    let mut held: Vec<String> = held_records(&job).into_iter().map(|(reason, _)| reason).collect();
    held.sort();
    assert_eq!(held.len(), 2, "once per host and reason over 10 minutes of polls: {held:?}");
    assert!(held[0].contains("on h1: sample-app/backup-h1") && held[1].contains("on h2: sample-app/backup-h2"), "{held:?}");
}

/// A world read is shared by everyone who asked meanwhile and its nodes are taken as it ends: a
/// node it shows down that the watch shows back since (a host of the run proven back, its place
/// given up) holds no one back. At 10,000 nodes, 1,000 at a time, one host in a hundred waited a
/// poll interval on such a node.
#[tokio::test(start_paused = true)]
async fn a_node_the_shared_read_shows_down_but_the_watch_shows_back_since_holds_no_one() {
    use fleetboot_core::limits::{NodeNow, World as Cluster};
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1", "h2"]);
    let mut job = Job::new(&world, dir.path(), &["h1", "h2"]);
    job.api = true;
    job.settings.concurrency = 1;
    let node = |name: &str, ready: bool| NodeNow { name: name.into(), ready, ..NodeNow::default() };
    let read = Cluster { nodes: vec![node("h1", true), node("h2", false)], leases: Vec::new(), etcd: None };
    *world.cluster.lock().unwrap() = Some(read);
    // The watch shows h2 back now.
    world.seen_back.lock().unwrap().insert("h2".into());
    let (trigger, abort) = watch::channel(Abort::No);
    let mut waits = Vec::new();
    let summary = job.run_with_abort((trigger, abort), |event, _| collect_waiting(event, &mut waits)).await;
    assert_eq!((outcome(&summary, "h1"), outcome(&summary, "h2")), (Outcome::Rebooted, Outcome::Rebooted));
    assert!(waits.is_empty(), "a host waited on a node the watch shows back: {waits:?}");
}

/// A host the limits hold for many polls says so once, however the nodes in the way and their
/// count change from poll to poll, and again when another rule holds it (here its own node
/// taken by the MCO). At 10,000 nodes a thousand waiting hosts each said so at every poll.
#[tokio::test(start_paused = true)]
async fn a_host_held_by_the_same_limit_for_many_polls_says_it_waits_once_and_again_when_the_rule_changes() {
    use fleetboot_core::limits::{NodeNow, World as Cluster};
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1", "h2"]);
    let mut job = Job::new(&world, dir.path(), &["h1", "h2"]);
    job.api = true;
    job.settings.concurrency = 1;
    let node = |name: &str, ready: bool, unschedulable: bool, mco_state: &str| NodeNow {
        name: name.into(),
        ready,
        unschedulable,
        mco_state: mco_state.into(),
        current_config: "rendered-worker-a".into(),
        desired_config: "rendered-worker-a".into(),
        control_plane: false,
        group: None,
        version: None,
    };
    let cluster = |nodes: Vec<NodeNow>| Some(Cluster { nodes, leases: Vec::new(), etcd: None });
    *world.cluster.lock().unwrap() = cluster(vec![node("h1", true, false, "Done"), node("h2", false, false, "Done")]);
    // For a minute h2 stands in the way of the concurrency, not Ready, cordoned by someone else
    // or both in turn, each for a second (each poll, every 2 s, reads other words); then h1 itself is taken by the MCO for 30 s;
    // then nothing is in the way.
    let changes = {
        let world = world.clone();
        tokio::spawn(async move {
            for second in 1..=60 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let h2 = match second % 3 {
                    0 => node("h2", false, false, "Done"),
                    1 => node("h2", true, true, "Done"),
                    _ => node("h2", false, true, "Done"),
                };
                *world.cluster.lock().unwrap() = cluster(vec![node("h1", true, false, "Done"), h2]);
            }
            *world.cluster.lock().unwrap() = cluster(vec![node("h1", true, false, "Working"), node("h2", true, false, "Done")]);
            tokio::time::sleep(Duration::from_secs(30)).await;
            *world.cluster.lock().unwrap() = None;
        })
    };
    let (trigger, abort) = watch::channel(Abort::No);
    let mut waits = Vec::new();
    let summary = job
        .run_with_abort((trigger, abort), |event, _| {
            collect_waiting(event, &mut waits);
        })
        .await;
    changes.await.unwrap();
    assert_eq!((outcome(&summary, "h1"), outcome(&summary, "h2")), (Outcome::Rebooted, Outcome::Rebooted));
    assert_eq!(waits.len(), 2, "{waits:#?}");
    assert!(waits[0].starts_with("h1: 1 unavailable and 0 of this run in flight against a concurrency of 1: h2 ("), "{waits:?}");
    assert_eq!(waits[1], "h1: h1 itself is being updated by the MCO");
    let sent = world.times_of("h1", |e| matches!(e, Happened::SshReboot | Happened::BmcReset(_)));
    assert!(sent[0] >= world.start + Duration::from_secs(90), "h1 went before the cluster let it: {sent:?}");
}
