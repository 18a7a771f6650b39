//! A resumed run goes on as it started: its transport, command, rate, concurrency and timeouts
//! come from the journal, except what the resuming command line overrides explicitly (journaled).

use std::process::Stdio;

use fleetboot::adapters::journal::load;
use fleetboot_core::journal::Entry;

use crate::common::sim::Sim;
use crate::common::{Run, wait_for_dispatches};

/// The `run_resumed` records of a journal: (rate per minute, concurrency, overridden).
fn resumes(journal: &std::path::Path) -> Vec<(Option<u64>, usize, Vec<String>)> {
    let (records, _) = load(journal).unwrap();
    records
        .into_iter()
        .filter_map(|r| match r.entry {
            Entry::RunResumed { settings: Some(s), overridden, .. } => {
                Some((s.rate.map(|rate| rate.count as u64 * 60_000 / rate.per_ms), s.concurrency, overridden))
            }
            _ => None,
        })
        .collect()
}

/// Starts the run (or a resume), waits for its first new dispatch, and kills it.
fn kill_after_a_dispatch(sim: &Sim, args: &[&str], journal: &std::path::Path, dispatched: usize) {
    let mut child = sim.fleetboot(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for_dispatches(journal, dispatched, std::time::Duration::from_secs(30));
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_resume_keeps_the_runs_rate_and_limits_unless_told_otherwise_and_says_so() {
    let sim = Sim::start(0, 3);
    let journal = sim.path("run.jsonl");
    let j = journal.to_str().unwrap();
    let hosts = sim.path("hosts.txt");
    // One reboot a minute: the second host waits for the rate when the run is killed.
    let start = ["reboot", "--no-cluster", "--hosts-file", hosts.to_str().unwrap(), "--rate", "1/min", "--poll-interval", "200ms"];
    kill_after_a_dispatch(&sim, &[&start[..], &["--journal", j]].concat(), &journal, 1);
    // A resume without flags keeps the rate: it would otherwise dispatch at once.
    let mut resume = sim.fleetboot(&["reboot", "--resume", j, "--poll-interval", "200ms"]).stdout(Stdio::null()).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    resume.kill().unwrap();
    resume.wait().unwrap();
    let (_, state) = load(&journal).unwrap();
    let dispatched = state.records.values().filter(|r| !r.attempts.is_empty()).count();
    assert_eq!(dispatched, 1, "the journaled rate still spaces the reboots after a resume");
    assert_eq!(resumes(&journal)[0], (Some(1), 1, vec![]), "journaled settings, nothing overridden");
    // An explicit flag that contradicts the journal overrides it with --override-journal, and
    // the journal says which.
    let run: Run = sim
        .fleetboot(&[
            "reboot",
            "--resume",
            j,
            "--rate",
            "unlimited",
            "--concurrency",
            "2",
            "--poll-interval",
            "200ms",
            "--override-journal",
        ])
        .output()
        .unwrap()
        .into();
    assert_eq!(run.code, 0, "{}", run.debug());
    let last = resumes(&journal).pop().unwrap();
    assert_eq!(last, (None, 2, vec!["rate".to_owned(), "concurrency".to_owned()]));
}
