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
            version: None,
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
            if cordoning(event, "h1") {
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

fn stuck_drain(world: &Arc<World>, dir: &Path, ladder: Vec<fleetboot_core::batch::DrainStep>) -> Job {
    let mut job = Job::new(world, dir, &["h1"]);
    job.drain = true;
    job.drain_faults.stuck = Some("h1");
    job.settings.batch.drain_escalation = ladder;
    job
}

/// Runs `job`, stopping it at `level` 10 s into h1's drain (its evictions take 60 s a round).
async fn stopped_during_the_drain(job: &Job, level: Abort) -> Summary {
    let (trigger, abort) = watch::channel(Abort::No);
    job.run_with_abort((trigger, abort), |event, trigger| {
        if cordoning(event, "h1") {
            let trigger = trigger.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let _ = trigger.send(level);
            });
        }
    })
    .await
}

fn drain_timeouts(job: &Job) -> usize {
    job.records().iter().filter(|r| matches!(r.entry, Entry::DrainTimedOut { .. })).count()
}

/// Finding 6: a Ctrl-C (or the cluster lease lost) during a long `--drain-escalation wait`
/// drain ends it at once: nothing sent, skipped, fleetboot's cordon lifted. (Before, the drain
/// ran its round out and the host failed, its pods force-deletable.)
#[tokio::test(start_paused = true)]
async fn a_ctrl_c_or_a_lost_lease_during_the_drain_ends_it_at_once_skipped_and_uncordoned() {
    use fleetboot_core::batch::DrainStep;
    for level in [Abort::Soft, Abort::LeaseLost] {
        let dir = tempfile::tempdir().unwrap();
        let world = World::new(&["h1"]);
        let job = stuck_drain(&world, dir.path(), vec![DrainStep::Wait, DrainStep::Wait, DrainStep::Force]);
        let summary = stopped_during_the_drain(&job, level).await;
        assert_eq!(outcome(&summary, "h1"), Outcome::Skipped, "{level:?}");
        assert_eq!(world.reboots_received("h1"), 0, "{level:?}");
        assert_eq!(drain_timeouts(&job), 0, "{level:?}: the drain ran its round out after the stop");
        assert_eq!(world.times_of("h1", |e| *e == Happened::Uncordoned).len(), 1, "{level:?}");
        let state = job.state();
        let reason = state.records["h1"].skipped_because.clone().unwrap_or_default();
        assert!(reason.contains("during this host's drain"), "{level:?}: {reason}");
        assert!(!state.records["h1"].cordoned);
    }
}

/// Finding 6: a hard stop during the drain ends it at once and touches nothing more: the node
/// stays cordoned by fleetboot as journaled, nothing is failed or sent, a resume goes on.
#[tokio::test(start_paused = true)]
async fn a_hard_stop_during_the_drain_ends_it_at_once_and_leaves_the_cordon() {
    use fleetboot_core::batch::DrainStep;
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1"]);
    let job = stuck_drain(&world, dir.path(), vec![DrainStep::Wait, DrainStep::Force]);
    stopped_during_the_drain(&job, Abort::Hard).await;
    assert_eq!(world.reboots_received("h1"), 0);
    assert_eq!(drain_timeouts(&job), 0, "the drain ran its round out after the hard stop");
    assert!(world.times_of("h1", |e| *e == Happened::Uncordoned).is_empty(), "lifted after a hard stop");
    assert!(world.deletions.lock().unwrap().is_empty(), "pods deleted after a hard stop");
    let state = job.state();
    assert!(state.records["h1"].cordoned);
    assert_eq!(state.records["h1"].resume_action(), ResumeAction::Reboot);
}

/// Finding 6: `--drain-escalation force` journals which pods it deletes before deleting them.
#[tokio::test(start_paused = true)]
async fn a_forced_drain_journals_the_pods_before_it_deletes_them() {
    use fleetboot_core::batch::DrainStep;
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1"]);
    let job = stuck_drain(&world, dir.path(), vec![DrainStep::Force]);
    *world.journal.lock().unwrap() = Some(job.journal.clone());
    let summary = job.run().await;
    assert_eq!(outcome(&summary, "h1"), Outcome::Rebooted);
    assert_eq!(*world.deletions.lock().unwrap(), [true], "deleted before the deletion was journaled");
    let pods = job.records().into_iter().find_map(|r| match r.entry {
        Entry::ForceDeleting { pods, .. } => Some(pods),
        _ => None,
    });
    assert_eq!(pods, Some(vec!["app/db-0".to_owned()]));
}

/// A forced drain whose deletion the API refuses: the pod is still on the node, so the host
/// fails as on a failed eviction (the API's message kept, never journaled drained), nothing
/// is sent, and fleetboot's cordon is lifted. (Before, the deletion's error was dropped and
/// the node rebooted with the pod on it.)
#[tokio::test(start_paused = true)]
async fn a_forced_drain_whose_deletion_the_api_refuses_fails_the_host_uncordoned_and_not_rebooted() {
    use fleetboot_core::batch::DrainStep;
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1"]);
    let mut job = stuck_drain(&world, dir.path(), vec![DrainStep::Force]);
    job.drain_faults.delete_fails = true;
    let summary = job.run().await;
    assert_eq!(outcome(&summary, "h1"), Outcome::Failed);
    assert_eq!(world.reboots_received("h1"), 0, "rebooted with a pod it could not delete");
    let records = job.records();
    assert!(!records.iter().any(|r| matches!(r.entry, Entry::Drained { .. })), "journaled as drained: {records:?}");
    let error = records.iter().find_map(|r| match &r.entry {
        Entry::Failed { stage: fleetboot_core::journal::Stage::Drain, error, .. } => Some(error.clone()),
        _ => None,
    });
    let error = error.expect("failed at its drain");
    assert!(error.contains("app/db-0") && error.contains("forbidden"), "{error}");
    assert_eq!(world.times_of("h1", |e| *e == Happened::Uncordoned).len(), 1, "its cordon was lifted");
    assert!(!job.state().records["h1"].cordoned);
}

/// The order after the drain: the gates (window, blockers, health) are read first, then the
/// world once, and the limits judge that later read. Here h2 (of the plan, concurrency 1)
/// goes NotReady while the blockers are read after h1's drain: h1 waits (deferred, uncordoned,
/// nothing sent) instead of going down on the world read before the blockers.
#[tokio::test(start_paused = true)]
async fn the_limits_after_a_drain_judge_the_world_read_after_the_gates() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1", "h2"]);
    let mut job = Job::new(&world, dir.path(), &["h1", "h2"]);
    (job.api, job.drain) = (true, true);
    job.settings.concurrency = 1;
    job.settings.batch.block_on_pods = Some("app=backup".into());
    let node = |name: &str, ready: bool| fleetboot_core::limits::NodeNow {
        name: name.into(),
        ready,
        unschedulable: false,
        mco_state: "Done".into(),
        current_config: "rendered-worker-a".into(),
        desired_config: "rendered-worker-a".into(),
        control_plane: false,
        group: None,
        version: None,
    };
    let h2_not_ready = fleetboot_core::limits::World { nodes: vec![node("h1", true), node("h2", false)], leases: Vec::new(), etcd: None };
    *world.cluster.lock().unwrap() =
        Some(fleetboot_core::limits::World { nodes: vec![node("h1", true), node("h2", true)], ..h2_not_ready.clone() });
    *world.cluster_after_drain.lock().unwrap() = Some(h2_not_ready);
    let (trigger, abort) = watch::channel(Abort::No);
    let summary = job
        .run_with_abort((trigger, abort), |event, _| {
            // h2 is Ready again once h1 was sent back: the run ends with both rebooted.
            if let Event::Transition { record } = event
                && matches!(record.entry, Entry::Deferred { .. })
            {
                *world.cluster.lock().unwrap() = None;
            }
        })
        .await;
    let records = job.records();
    let deferred = records.iter().find_map(|r| match &r.entry {
        Entry::Deferred { host, reason, after_drain: true } if host == "h1" => Some(reason.clone()),
        _ => None,
    });
    let reason = deferred.unwrap_or_else(|| panic!("h1 went down on the world read before its gates: {records:?}"));
    assert!(reason.contains("the cluster's limits say wait") && reason.contains("h2"), "{reason}");
    let h1_first_reboot = world.times_of("h1", |e| matches!(e, Happened::SshReboot | Happened::BmcReset(_)))[0];
    let h1_first_uncordon = world.times_of("h1", |e| *e == Happened::Uncordoned)[0];
    assert!(h1_first_uncordon < h1_first_reboot, "uncordoned and requeued before any reboot");
    assert_eq!(outcome(&summary, "h1"), Outcome::Rebooted);
    assert_eq!(outcome(&summary, "h2"), Outcome::Rebooted);
}

/// Finding 11: a resume of a drained host that failed with its reboot in doubt (sent, never
/// seen back) keeps fleetboot's cordon while it watches the node: lifted only once the node is
/// back with a new boot ID (before, the resume lifted it at once, while the node was down).
#[tokio::test(start_paused = true)]
async fn a_resume_keeps_the_cordon_of_a_failed_host_whose_reboot_is_in_doubt_until_it_is_back() {
    let failing = |dir: &Path| {
        let world = World::new(&["h1"]);
        let mut job = Job::new(&world, dir, &["h1"]);
        (job.api, job.drain, job.bmc) = (true, true, false);
        world.set("h1", |h| h.faults.never_returns = true);
        (world, job)
    };
    // Where h1's failure (down, never back) falls in the journal, from a run to the end.
    let probe = tempfile::tempdir().unwrap();
    let (_, probe_job) = failing(probe.path());
    probe_job.run().await;
    let failed_at = probe_job.records().iter().position(|r| matches!(r.entry, Entry::Failed { .. })).expect("h1 fails");
    // The first run is killed right after that failure (the node still cordoned by fleetboot).
    let dir = tempfile::tempdir().unwrap();
    let (world, mut job) = failing(dir.path());
    job.kill = Some(Kill { after: failed_at + 1, before_its_action: false });
    job.run().await;
    job.kill = None;
    let state = job.state();
    assert!(state.records["h1"].cordoned && state.records["h1"].reboot_pending, "{:?}", state.records["h1"]);
    assert_eq!(state.records["h1"].phase, Phase::Failed);
    assert!(world.times_of("h1", |e| *e == Happened::Uncordoned).is_empty());
    // It comes back during the resume, 5 minutes in.
    world.set("h1", |h| {
        h.faults.never_returns = false;
        h.up_at = Some(Instant::now() + 5 * Duration::from_secs(60));
    });
    let summary = job.run().await;
    assert_eq!(outcome(&summary, "h1"), Outcome::Rebooted);
    assert_eq!(world.reboots_received("h1"), 1, "sent again by the resume");
    let up = *world.times_of("h1", |e| *e == Happened::Up).last().expect("back");
    let uncordons = world.times_of("h1", |e| *e == Happened::Uncordoned);
    assert_eq!(uncordons.len(), 1, "{uncordons:?}");
    assert!(uncordons[0] >= up, "uncordoned while its reboot was in doubt");
}

/// Finding 3: a node someone else reboots while fleetboot drains it needs no reboot any more:
/// journaled not needed (both boot IDs), fleetboot's cordon lifted, nothing sent. (Before, the
/// boot ID after the drain became the "old" one and the node was rebooted a second time.)
#[tokio::test(start_paused = true)]
async fn a_node_rebooted_by_someone_else_during_the_drain_is_not_rebooted_again() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1"]);
    let mut job = Job::new(&world, dir.path(), &["h1"]);
    job.drain = true;
    let (trigger, abort) = watch::channel(Abort::No);
    let summary = job
        .run_with_abort((trigger, abort), |event, _| {
            if cordoning(event, "h1") {
                world.set("h1", |h| h.boot += 1);
            }
        })
        .await;
    assert_eq!(world.reboots_received("h1"), 0, "rebooted a second time");
    assert_eq!(outcome(&summary, "h1"), Outcome::NotNeeded);
    let state = job.state();
    let reason = state.records["h1"].skipped_because.clone().unwrap_or_default();
    assert!(reason.contains("during the drain") && reason.contains("h1-boot0") && reason.contains("h1-boot1"), "{reason}");
    assert_eq!(world.times_of("h1", |e| *e == Happened::Uncordoned).len(), 1, "fleetboot's cordon stayed");
    assert!(!state.records["h1"].cordoned);
}

/// Finding 13: a control-plane host whose drain is deferred goes to the end of the queue, behind
/// the control-plane hosts that were waiting (before, it went back in front of them).
#[tokio::test(start_paused = true)]
async fn a_deferred_master_goes_behind_the_masters_still_waiting() {
    use fleetboot_core::batch::DrainStep;
    let dir = tempfile::tempdir().unwrap();
    let all = ["m1", "m2", "m3"];
    let world = World::new(&all);
    let mut job = Job::new(&world, dir.path(), &all);
    job.settings.concurrency = 1;
    job.drain = true;
    job.drain_faults.stuck = Some("m1");
    job.settings.batch.drain_escalation = vec![DrainStep::Defer];
    job.grouping = Grouping {
        of: all.iter().map(|n| (n.to_string(), "master".to_owned())).collect(),
        limits: [("master".to_owned(), 1)].into_iter().collect(),
        last: vec!["master".into()],
        ..Grouping::default()
    };
    job.run().await;
    let cordons: Vec<String> = job
        .records()
        .into_iter()
        .filter_map(|r| match r.entry {
            Entry::Cordoning { host, .. } => Some(host),
            _ => None,
        })
        .collect();
    assert_eq!(cordons, ["m1", "m2", "m3", "m1"], "the deferred master went back in front");
    assert_eq!(world.reboots_received("m2") + world.reboots_received("m3"), 2);
}

/// Finding 12: a transport that takes over after the drain (SSH no longer reaching the node, the
/// next of the order used) is journaled, with why, before the reboot is sent.
#[tokio::test(start_paused = true)]
async fn a_change_of_transport_after_the_drain_is_journaled_before_the_reboot() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1"]);
    let mut job = Job::new(&world, dir.path(), &["h1"]);
    job.drain = true;
    let (trigger, abort) = watch::channel(Abort::No);
    job.run_with_abort((trigger, abort), |event, _| {
        if cordoning(event, "h1") {
            let why = ("kube".to_owned(), "SSH no longer reaches it (connection refused)".to_owned());
            world.escalations.lock().unwrap().insert("h1".into(), vec![why]);
        }
    })
    .await;
    let records = job.records();
    let at = |what: fn(&Entry) -> bool| records.iter().position(|r| what(&r.entry));
    let chosen = at(|e| matches!(e, Entry::TransportChosen { transport, .. } if transport == "kube"));
    let dispatching = at(|e| matches!(e, Entry::Dispatching { .. }));
    assert!(chosen.is_some() && chosen < dispatching, "chosen {chosen:?}, dispatching {dispatching:?}");
}

/// Finding 4: a node the re-read after its drain keeps refusing (here a blocker pod that starts
/// whenever it is cordoned) is not drained again and again for ever: after
/// MAX_POST_DRAIN_DEFERRALS deferrals (journaled, counted by the fold) it is skipped, uncordoned.
#[tokio::test(start_paused = true)]
async fn a_node_deferred_after_its_drain_again_and_again_is_skipped_at_the_bound() {
    use super::super::host::MAX_POST_DRAIN_DEFERRALS;
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1"]);
    let mut job = Job::new(&world, dir.path(), &["h1"]);
    (job.api, job.drain) = (true, true);
    job.settings.batch.block_on_pods = Some("app=backup".into());
    let backup = fleetboot_core::batch::PodNow {
        namespace: "sample-app".into(),
        name: "backup".into(),
        node: Some("h1".into()),
        phase: Some("Running".into()),
    };
    let mut cordons = 0;
    let (trigger, abort) = watch::channel(Abort::No);
    let summary = job
        .run_with_abort((trigger, abort), |event, trigger| match event {
            Event::Transition { record } if matches!(record.entry, Entry::Cordoning { .. }) => {
                cordons += 1;
                // Without a bound it would cycle for ever: stopped hard, the assertions say so.
                if cordons > 10 {
                    let _ = trigger.send(Abort::Hard);
                }
                world.blockers.lock().unwrap().push(backup.clone());
            }
            Event::Transition { record } if matches!(record.entry, Entry::Deferred { .. }) => world.blockers.lock().unwrap().clear(),
            _ => {}
        })
        .await;
    assert_eq!(cordons, MAX_POST_DRAIN_DEFERRALS + 1, "drained after each deferral, then skipped");
    assert_eq!(outcome(&summary, "h1"), Outcome::Skipped);
    assert_eq!(world.reboots_received("h1"), 0);
    let state = job.state();
    assert_eq!(state.records["h1"].post_drain_deferrals, MAX_POST_DRAIN_DEFERRALS);
    assert!(!state.records["h1"].cordoned);
    assert_eq!(world.times_of("h1", |e| *e == Happened::Uncordoned).len(), MAX_POST_DRAIN_DEFERRALS + 1);
}

/// A node of the fake cluster as the limits read it (the copy at resourceVersion `version`):
/// Ready, the MCO done.
fn node_now(name: &str, unschedulable: bool, version: u64) -> fleetboot_core::limits::NodeNow {
    fleetboot_core::limits::NodeNow {
        name: name.into(),
        ready: true,
        unschedulable,
        mco_state: "Done".into(),
        current_config: "rendered-worker-a".into(),
        desired_config: "rendered-worker-a".into(),
        control_plane: false,
        group: None,
        version: Some(version.to_string()),
    }
}

/// The fake cluster showing `h1` cordoned (or not) in its copy at `version`, and `h2`
/// schedulable.
fn h1_cordoned(unschedulable: bool, version: u64) -> fleetboot_core::limits::World {
    let nodes = vec![node_now("h1", unschedulable, version), node_now("h2", false, 1)];
    fleetboot_core::limits::World { nodes, leases: Vec::new(), etcd: None }
}

/// A node this run just uncordoned that the cluster still shows cordoned (the Node watch behind
/// the patch: its copy of the node older than the version the uncordon produced) is not
/// someone else's cordon: the next host goes. Before, it waited on "1 unavailable ... h1
/// (cordoned by someone else)" until the watch caught up; here the watch never does, so it
/// waited its whole timeout and failed untouched. At 10,000 nodes with a thousand drains this
/// deferred thousands of drained nodes and skipped 41.
#[tokio::test(start_paused = true)]
async fn a_cordon_this_run_just_lifted_that_the_watch_still_shows_holds_no_other_host_back() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1", "h2"]);
    let mut job = Job::new(&world, dir.path(), &["h1", "h2"]);
    (job.api, job.drain) = (true, true);
    job.settings.concurrency = 1;
    let (trigger, abort) = watch::channel(Abort::No);
    let summary = job
        .run_with_abort((trigger, abort), |event, _| {
            // From h1's cordon on, the cluster shows it cordoned, in its copy at the cordon:
            // the fake cluster's first write, version 2 (nodes start at 1).
            if cordoning(event, "h1") {
                *world.cluster.lock().unwrap() = Some(h1_cordoned(true, 2));
            }
        })
        .await;
    assert_eq!(outcome(&summary, "h1"), Outcome::Rebooted);
    assert_eq!(outcome(&summary, "h2"), Outcome::Rebooted, "{:?}", summary.hosts);
    assert_eq!(world.reboots_received("h2"), 1);
}

/// Once the Node watch has delivered this run's uncordon, a cordon it shows is someone else's,
/// however soon after: here another actor cordons h1 right after fleetboot lifted its own
/// cordon, and the watch shows it. h2 waits on h1 "cordoned by someone else" until that actor
/// lifts it, then goes. (Before, any cordon of h1 shown within 30 s of this run's uncordon
/// counted as this run's: h2 went at once, with h1 held by another actor.)
#[tokio::test(start_paused = true)]
async fn a_cordon_another_actor_sets_after_the_watch_delivered_this_runs_uncordon_is_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1", "h2"]);
    let mut job = Job::new(&world, dir.path(), &["h1", "h2"]);
    (job.api, job.drain) = (true, true);
    job.settings.concurrency = 1;
    let mut waits = Vec::new();
    let (trigger, abort) = watch::channel(Abort::No);
    let summary = job
        .run_with_abort((trigger, abort), |event, _| {
            collect_waiting(event, &mut waits);
            match event {
                // Another actor cordons h1 the moment fleetboot's uncordon is in; the watch
                // shows both (its copy of h1 at the other actor's version, past the uncordon's).
                Event::Transition { record } if matches!(&record.entry, Entry::Uncordoned { host } if host == "h1") => {
                    let theirs = world.write_node("h1");
                    *world.cluster.lock().unwrap() = Some(h1_cordoned(true, theirs));
                }
                // h2 held by it: the other actor lifts its cordon.
                Event::Waiting { host, .. } if host == "h2" => {
                    let lifted = world.write_node("h1");
                    *world.cluster.lock().unwrap() = Some(h1_cordoned(false, lifted));
                }
                _ => {}
            }
        })
        .await;
    assert_eq!(outcome(&summary, "h1"), Outcome::Rebooted);
    assert_eq!(outcome(&summary, "h2"), Outcome::Rebooted, "{:?}", summary.hosts);
    assert_eq!(waits.len(), 1, "{waits:?}");
    assert!(waits[0].starts_with("h2: ") && waits[0].contains("h1 (cordoned by someone else)"), "{waits:?}");
    assert_eq!(world.times_of("h1", |e| *e == Happened::Uncordoned).len(), 1, "the other actor's cordon was lifted by fleetboot");
    assert_eq!(world.reboots_received("h2"), 1);
}
