//! The drain path's review findings (`fleetboot reboot --drain`), in process on tokio's paused
//! clock.

use super::*;

/// The fake cluster with `node` being updated by the MCO (state Working).
fn mco_working_on(node: &str) -> fleetboot_core::limits::World {
    fleetboot_core::limits::World {
        nodes: vec![fleetboot_core::limits::NodeNow {
            name: node.into(),
            ready: true,
            unschedulable: true,
            mco_state: "Working".into(),
            current_config: "rendered-worker-a".into(),
            desired_config: "rendered-worker-b".into(),
            control_plane: false,
            group: None,
        }],
        leases: Vec::new(),
        etcd: None,
    }
}

/// Finding 1: the MCO starts updating the node while fleetboot drains it. Its cordon is the
/// MCO's now: journaled as handed over before anything else, never lifted (not by this run's
/// end, not by a resume), and the node is not rebooted by fleetboot.
#[tokio::test(start_paused = true)]
async fn a_node_the_mco_takes_during_the_drain_keeps_its_cordon_and_is_not_rebooted() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1"]);
    let mut job = Job::new(&world, dir.path(), &["h1"]);
    (job.api, job.drain) = (true, true);
    let (trigger, abort) = watch::channel(Abort::No);
    let summary = job
        .run_with_abort((trigger, abort), |event, _| {
            if let Event::Transition { record } = event
                && matches!(&record.entry, Entry::Cordoning { host, .. } if host == "h1")
            {
                *world.cluster.lock().unwrap() = Some(mco_working_on("h1"));
            }
        })
        .await;
    assert_eq!(world.reboots_received("h1"), 0, "rebooted under the MCO");
    assert_eq!(outcome(&summary, "h1"), Outcome::Skipped);
    assert!(world.times_of("h1", |e| *e == Happened::Uncordoned).is_empty(), "the MCO's cordon was lifted");
    let records = job.records();
    let handed = records.iter().position(|r| matches!(&r.entry, Entry::CordonHandedOver { host, .. } if host == "h1"));
    let handed = handed.expect("the hand-over is journaled");
    match &records[handed].entry {
        Entry::CordonHandedOver { to, reason, .. } => {
            assert!(to.contains("machine-config operator"), "{to}");
            assert!(reason.contains("being updated by the MCO"), "{reason}");
        }
        _ => unreachable!(),
    }
    assert!(records[handed - 1..].iter().all(|r| !matches!(r.entry, Entry::Uncordoning { .. } | Entry::Deferred { .. })));
    assert!(summary.still_cordoned.is_empty(), "the cordon is not fleetboot's to report");
    let state = job.state();
    assert!(!state.records["h1"].cordoned);
    // A resume (the MCO still at it) lifts nothing and sends nothing.
    job.run().await;
    assert_eq!(world.reboots_received("h1"), 0);
    assert!(world.times_of("h1", |e| *e == Happened::Uncordoned).is_empty(), "a resume lifted the MCO's cordon");
}
