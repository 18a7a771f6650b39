//! A reboot run that loses the cluster's lease mid-run (review 11, finding 3's wiring, end to
//! end through `fleetboot reboot`): taken over by another holder, or deleted so that it can no
//! longer be renewed. The run starts no further node, sends no `shutdown -c` to the node whose
//! reboot is pending (even with `cancel_pending_on_abort`: the nodes may be another run's now),
//! and exits 4 naming why. Judged by the simulation's own node history and the exit code.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::Run;
use crate::common::sim::Sim;
use fleetboot_core::journal::Entry;

/// Starts `fleetboot reboot --all` one node at a time, with pending reboots cancelled on an
/// abort, waits for its first reboot to be handed to a node (pending there: the simulated
/// systemd waits 5 s), does `lose` to the lease, and returns the run.
fn lose_the_lease_mid_run(lose: impl FnOnce(&Sim)) -> (Sim, Run) {
    let sim = Sim::start_with(0, 3, &["--reboot-delay", "5s"]);
    let config = std::fs::read_to_string(sim.config()).unwrap().replace("[reboot]\n", "[reboot]\ncancel_pending_on_abort = true\n");
    assert!(config.contains("cancel_pending_on_abort = true"));
    let config_path = sim.path("cancelling.toml");
    std::fs::write(&config_path, config).unwrap();
    let journal = sim.path("run.jsonl");
    let mut child = std::process::Command::new(crate::common::fleetboot_bin())
        .arg("--config")
        .arg(&config_path)
        .args(["reboot", "--all", "--concurrency", "1", "--lease-duration", "3s", "--poll-interval", "200ms", "--output", "json"])
        .arg("--journal")
        .arg(&journal)
        .env("HOME", sim.dir.path())
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        let dispatched = fleetboot::adapters::journal::load(&journal)
            .is_ok_and(|(records, _)| records.iter().any(|r| matches!(r.entry, Entry::Dispatched { .. })));
        if dispatched {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the run ended before its first reboot");
        assert!(started.elapsed() < Duration::from_secs(60), "no reboot dispatched");
        std::thread::sleep(Duration::from_millis(20));
    }
    lose(&sim);
    let run = Run::from(child.wait_with_output().unwrap());
    (sim, run)
}

fn assert_stopped_without_cancelling(sim: &Sim, run: &Run) {
    assert_eq!(run.code, 4, "{}", run.debug());
    assert!(run.stdout.contains("starting nothing new") || run.stderr.contains("starting nothing new"), "{}", run.debug());
    let requested = sim.history_counts("reboot-requested");
    let cancelled = sim.history_counts("cancelled");
    assert!(cancelled.values().all(|n| *n == 0), "a pending reboot was cancelled: {cancelled:?}\n{}", run.debug());
    // The node in flight was rebooted (its reboot left alone); no other node was started.
    assert_eq!(requested.values().sum::<usize>(), 1, "{requested:?}\n{}", run.debug());
    let (node, _) = requested.iter().find(|(_, n)| **n == 1).unwrap();
    // Waits on the state: the pending reboot lands (the simulated systemd's delay).
    let started = Instant::now();
    while sim.history_counts("up")[node] == 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "{node}'s pending reboot never happened");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(sim.history_counts("up")[node], 1);
    assert_eq!(sim.history_counts("cancelled")[node], 0);
}

#[test]
fn a_reboot_run_whose_lease_is_taken_over_starts_no_further_node_and_cancels_nothing() {
    let (sim, run) = lose_the_lease_mid_run(|sim| {
        let patch = r#"{"spec":{"holderIdentity":"admin@elsewhere pid 1 run other"}}"#;
        sim.kubectl_ok(&["-n", "kube-system", "patch", "lease", "fleetboot", "--type", "merge", "-p", patch]);
    });
    assert!(
        run.stdout.contains("another run took the cluster's lease over (admin@elsewhere pid 1 run other)")
            || run.stderr.contains("another run took the cluster's lease over (admin@elsewhere pid 1 run other)"),
        "names the new holder: {}",
        run.debug()
    );
    assert_stopped_without_cancelling(&sim, &run);
}

#[test]
fn a_reboot_run_whose_lease_is_deleted_stops_when_it_cannot_renew_it_and_cancels_nothing() {
    let (sim, run) = lose_the_lease_mid_run(|sim| {
        sim.kubectl_ok(&["-n", "kube-system", "delete", "lease", "fleetboot"]);
    });
    assert!(
        run.stdout.contains("the cluster's lease could not be renewed") || run.stderr.contains("the cluster's lease could not be renewed"),
        "says why: {}",
        run.debug()
    );
    assert_stopped_without_cancelling(&sim, &run);
}

/// The same through a migration's reboot step (`engine/migrate/reboots.rs`): its lease taken
/// over while a node's reboot is pending, the step starts no further node, cancels nothing, and
/// the migration stops in that step with exit 4.
#[test]
fn a_migrations_reboot_step_whose_lease_is_taken_over_starts_no_further_node_and_cancels_nothing() {
    let sim = Sim::in_process_with(1, 3, &["--reboot-delay", "5s"]);
    let config = std::fs::read_to_string(sim.config()).unwrap().replace("[reboot]\n", "[reboot]\ncancel_pending_on_abort = true\n");
    assert!(config.contains("cancel_pending_on_abort = true"));
    std::fs::write(sim.config(), config).unwrap();
    let args = ["--etcd-backup-confirmed", "--poll-interval", "300ms", "--lease-duration", "3s", "--reboot-concurrency", "1"];
    let (migration, reboot_journal, run, before) = std::thread::scope(|scope| {
        let run = scope.spawn(|| sim.migrate_in_process(&args));
        let migration = sim.wait_for_migration_journal(r#""event":"step_started","step":"reboot_nodes""#, None);
        // The machine-config rollout before this step rebooted nodes of its own.
        let before = sim.history_counts("reboot-requested");
        let reboot_journal = migration.with_file_name("reboot.jsonl");
        let start = Instant::now();
        let dispatched = |path: &std::path::Path| {
            fleetboot::adapters::journal::load(path)
                .is_ok_and(|(records, _)| records.iter().any(|r| matches!(r.entry, Entry::Dispatched { .. })))
        };
        while !dispatched(&reboot_journal) {
            assert!(!run.is_finished(), "migrate ended first");
            assert!(start.elapsed() < Duration::from_secs(60), "no reboot started");
            std::thread::sleep(Duration::from_millis(20));
        }
        let patch = r#"{"spec":{"holderIdentity":"admin@elsewhere pid 1 run other"}}"#;
        sim.kubectl_ok(&["-n", "kube-system", "patch", "lease", "fleetboot-migration", "--type", "merge", "-p", patch]);
        (migration, reboot_journal, run.join().unwrap().to_run(), before)
    });
    assert_eq!(run.code, 4, "{}", run.debug());
    assert!(run.stdout.contains("starting nothing new") || run.stderr.contains("starting nothing new"), "{}", run.debug());
    assert!(std::fs::read_to_string(&migration).unwrap().lines().last().unwrap().contains("stopped in step"));
    let cancelled = sim.history_counts("cancelled");
    assert!(cancelled.values().all(|n| *n == 0), "a pending reboot was cancelled: {cancelled:?}\n{}", run.debug());
    // Every node the step started was started once, and nothing after the loss: as many
    // reboots reached the nodes as the journal dispatched (one at a time: the one in flight).
    let sent = crate::common::dispatch_counts(&reboot_journal);
    let requested = sim.history_counts("reboot-requested");
    assert!(sent.values().all(|n| *n == 1) && sent.len() == 1, "{sent:?}");
    let added = requested.values().sum::<usize>() - before.values().sum::<usize>();
    assert_eq!(added, 1, "{before:?} then {requested:?}");
}

/// The run's lease is renewed while the run's own requests fill the client's bound on requests
/// in flight (`resend::MAX_REQUESTS_IN_FLIGHT`), held unanswered by the API server (the
/// simulation's `hold-requests`, a fault it injects on any client's requests): the renewals
/// wait behind none of them, and no spurious "not renewed" stops the run. Taken as a run takes
/// it (`engine::lease::take`), judged by kubectl, another client, seeing the renewals.
#[test]
fn the_lease_is_renewed_while_the_run_s_requests_fill_the_client_s_bound() {
    use fleetboot::adapters::kube::resend::MAX_REQUESTS_IN_FLIGHT;
    use fleetboot::adapters::kube::{LEASE_NAME, MIGRATION_LEASE_NAME};
    use k8s_openapi::api::core::v1::{ConfigMap, Node};

    let sim = crate::common::sim::Sim::in_process(0, 1);
    let connection = sim.connection();
    let take = fleetboot::engine::lease::LeaseTake {
        namespace: "kube-system",
        name: LEASE_NAME,
        duration: Duration::from_secs(3),
        break_lock: false,
        run_id: "20261206T020000Z-cap",
        may_reclaim: false,
        exclusive_with: MIGRATION_LEASE_NAME,
        allowed_beside: None,
        waiting_before: "the first reboot",
        previous_stops: "the run that held the lease stops starting hosts",
    };
    let taken = sim.block_on(fleetboot::engine::lease::take(&connection, &take, &mut |_| {}, std::future::pending())).unwrap();
    let lost = taken.lock.lost();
    let renewed = || sim.kubectl_ok(&["get", "lease", "-n", "kube-system", LEASE_NAME, "-o", "jsonpath={.spec.renewTime}"]);

    // Every read of a ConfigMap is taken and left unanswered; the run asks for more of them
    // than the bound lets go at once.
    sim.control("POST", "hold-requests", r#"{"method": "GET", "resource": "configmaps", "held": true}"#);
    // Spawned on the simulation's runtime, where the connection was opened.
    let runtime = sim.block_on(async { tokio::runtime::Handle::current() });
    let held: Vec<_> = (0..MAX_REQUESTS_IN_FLIGHT + 50)
        .map(|i| {
            let api = kube::Api::<ConfigMap>::namespaced(connection.client.clone(), "kube-system");
            runtime.spawn(async move { api.get_opt(&format!("c{i}")).await })
        })
        .collect();
    // Given a moment to be queued, a read of a Node through the same client waits its turn
    // behind them (only a bound missing lets it through: checked at the end).
    std::thread::sleep(Duration::from_millis(500));
    let nodes = kube::Api::<Node>::all(connection.client.clone());
    let probe = runtime.spawn(async move { nodes.list(&Default::default()).await });

    // Three renewals seen by kubectl (a lease of 3 s is renewed every second, lost after 1.5 s
    // without a renewal), the lease never lost meanwhile.
    let started = Instant::now();
    let mut seen = vec![renewed()];
    while seen.len() < 4 {
        assert_eq!(*lost.borrow(), None, "the lease was lost while the client's bound was full");
        assert!(started.elapsed() < Duration::from_secs(60), "no renewal seen: {seen:?}");
        let now = renewed();
        if seen.last() != Some(&now) {
            seen.push(now);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!probe.is_finished(), "the bound was not full: the probe went through");

    // Answered, the held reads and the probe complete: nothing was lost or stuck.
    sim.control("POST", "hold-requests", r#"{"method": "GET", "resource": "configmaps", "held": false}"#);
    sim.block_on(async {
        for read in held {
            assert!(read.await.unwrap().unwrap().is_none(), "no such ConfigMap");
        }
        assert_eq!(probe.await.unwrap().unwrap().items.len(), 1);
    });
    assert_eq!(*lost.borrow(), None);
    sim.block_on(taken.lock.release());
}
