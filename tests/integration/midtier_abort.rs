//! Ctrl-C on the simulated cluster, at an exact moment: the middle tier raises the abort the
//! command line's signal handler would raise (`Abort::Soft`, then `Abort::Hard`) when the run
//! emits a chosen event, instead of sending a signal and hoping it lands mid-run. Judged by the
//! simulation's node history, the journal and the lease.

use std::collections::BTreeMap;

use crate::common::dispatch_counts;
use crate::common::sim::{Sim, boot_counts};
use fleetboot::ExitCode;
use fleetboot::engine::runner::Abort;
use fleetboot_core::events::{Event, Outcome};
use fleetboot_core::journal::Entry;

/// Whether the event is the journaled hand-over of a reboot (to any host).
fn handed_over(event: &Event) -> bool {
    matches!(event, Event::Transition { record } if matches!(record.entry, Entry::Dispatched { .. }))
}

/// Boots per node since the simulation started, from its own history.
fn boots(sim: &Sim) -> BTreeMap<String, usize> {
    boot_counts(sim).into_iter().collect()
}

#[test]
fn a_first_ctrl_c_after_the_first_reboot_starts_nothing_new_and_a_resume_reboots_each_node_once() {
    let sim = Sim::in_process(0, 3);
    let before = boots(&sim);
    let journal = sim.path("run.jsonl");
    let args = ["--all", "--concurrency", "1", "--poll-interval", "200ms", "--journal", journal.to_str().unwrap()];
    let mut asked = false;
    let run = sim.reboot_in_process_aborting(&args, |event| {
        (!asked && handed_over(event)).then(|| {
            asked = true;
            Abort::Soft
        })
    });
    assert_eq!(run.exit(), ExitCode::Incomplete, "stopped early, resumable: {}", run.debug());
    assert!(run.events.iter().any(|e| matches!(e, Event::AbortRequested { hard: false })), "{}", run.debug());
    // The reboot in flight was seen through; nothing else was started.
    let outcomes = run.outcomes();
    let rebooted: Vec<&String> = outcomes.iter().filter(|(_, (o, _))| *o == Outcome::Rebooted).map(|(h, _)| h).collect();
    assert_eq!(rebooted.len(), 1, "{outcomes:?}");
    assert!(outcomes.values().all(|(o, _)| *o != Outcome::Failed), "{outcomes:?}");
    assert_eq!(dispatch_counts(&journal).len(), 1, "one reboot handed over");
    let after_abort = boots(&sim);
    let went: Vec<&String> = after_abort.iter().filter(|(n, c)| **c > before[*n]).map(|(n, _)| n).collect();
    assert_eq!(went, rebooted, "the node the run says it rebooted is the one that booted");
    let (lease, _, _) = sim.kubectl(&["-n", "kube-system", "get", "lease", "fleetboot"]);
    assert!(!lease, "the aborted run released the cluster's lease");

    let resumed = sim.reboot_in_process(&["--resume", journal.to_str().unwrap(), "--poll-interval", "200ms"]);
    assert_eq!(resumed.exit(), ExitCode::Ok, "{}", resumed.debug());
    assert!(dispatch_counts(&journal).values().all(|&n| n == 1), "{:?}", dispatch_counts(&journal));
    let after = boots(&sim);
    assert!(after.iter().all(|(n, c)| *c == before[n] + 1), "each node booted once across both runs: {before:?} → {after:?}");
}

#[test]
fn a_second_ctrl_c_stops_at_once_and_a_resume_reboots_no_node_twice() {
    let sim = Sim::in_process(0, 2);
    let before = boots(&sim);
    let journal = sim.path("run.jsonl");
    let args = ["--all", "--concurrency", "2", "--poll-interval", "200ms", "--journal", journal.to_str().unwrap()];
    // The first press once the first reboot is handed over, the second once the run said it
    // heard the first: the reboots in flight are left mid-way.
    let mut presses = 0;
    let run = sim.reboot_in_process_aborting(&args, |event| match (presses, event) {
        (0, e) if handed_over(e) => {
            presses = 1;
            Some(Abort::Soft)
        }
        (1, Event::AbortRequested { hard: false }) => {
            presses = 2;
            Some(Abort::Hard)
        }
        _ => None,
    });
    assert_eq!(run.exit(), ExitCode::Incomplete, "{}", run.debug());
    assert!(run.events.iter().any(|e| matches!(e, Event::AbortRequested { hard: true })), "{}", run.debug());
    assert!(run.outcomes().values().any(|(o, _)| *o == Outcome::Interrupted), "left mid-reboot: {}", run.debug());

    let resumed = sim.reboot_in_process(&["--resume", journal.to_str().unwrap(), "--poll-interval", "200ms"]);
    assert_eq!(resumed.exit(), ExitCode::Ok, "{}", resumed.debug());
    assert!(dispatch_counts(&journal).values().all(|&n| n == 1), "no node got a second reboot: {:?}", dispatch_counts(&journal));
    let after = boots(&sim);
    assert!(after.iter().all(|(n, c)| *c == before[n] + 1), "each node booted once across both runs: {before:?} → {after:?}");
}
