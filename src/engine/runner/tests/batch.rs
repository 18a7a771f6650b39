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
