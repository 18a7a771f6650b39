//! A rolling run fills every slot from the start. The hosts of the first wave all ask the run's
//! Node watch before its first list is in; every one of them must go on when it arrives. (Once,
//! only one did: kube-runtime's `Store::wait_until_ready` wakes a single waiter, so the others
//! sat out a 30 s timeout and a 200/20 run went one host at a time for its first 30 s.)
//! Judged by the journal's order of records and the simulation's own boot counts.

use crate::common::sim::{Sim, boot_counts};

#[test]
fn the_first_wave_dispatches_every_slot_before_any_host_is_confirmed() {
    // 200 nodes: the watch's first list takes long enough that the first wave asks before it is in.
    let sim = Sim::start(1, 200);
    let journal = sim.path("rolling.jsonl");
    let out = sim
        .fleetboot(&[
            "reboot",
            "--nodes",
            "worker-0,worker-1,worker-2,worker-3,worker-4,worker-5,worker-6,worker-7",
            "--concurrency",
            "4",
            "--group-concurrency",
            "4",
            "--poll-interval",
            "300ms",
            "--journal",
            journal.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let events: Vec<String> = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["event"].as_str().unwrap().to_owned())
        .collect();
    let first_confirmed = events.iter().position(|e| e == "confirmed").expect("a confirmed host");
    let early = events[..first_confirmed].iter().filter(|e| *e == "dispatching").count();
    assert_eq!(early, 4, "every slot of the first wave dispatched before the first confirmation: {events:?}");
    let booted: Vec<(String, usize)> = boot_counts(&sim).into_iter().filter(|(_, count)| *count > 0).collect();
    let expected: Vec<(String, usize)> = (0..8).map(|i| (format!("worker-{i}"), 1)).collect();
    assert_eq!(booted, expected, "each of the eight booted once, no other node");
}
