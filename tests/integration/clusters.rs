//! Never the wrong cluster: two simulated clusters in one kubeconfig (current context `a`), and a
//! run told `--context b` touches `b` alone; its journal, resumed under `a`, is refused.

use std::path::Path;

use crate::common::sim::{Sim, boot_ids, two_cluster_kubeconfig};
use crate::common::{Run, dispatches};

#[test]
fn reboot_with_context_b_reboots_only_b_and_its_journal_is_refused_under_a() {
    let a = Sim::start(1, 2);
    let b = Sim::start(1, 2);
    let kubeconfig = b.path("two-clusters");
    two_cluster_kubeconfig(&a, &b, &kubeconfig);
    let kubeconfig = kubeconfig.to_str().unwrap();
    let (a_before, b_before) = (boot_ids(&a), boot_ids(&b));
    let journal = b.path("b.jsonl");
    let journal = journal.to_str().unwrap();
    let args = ["reboot", "--kubeconfig", kubeconfig, "--context", "b", "--all", "--poll-interval", "200ms", "--journal", journal];
    let run: Run = b.fleetboot(&[&args[..], &["--output", "json"]].concat()).output().unwrap().into();
    assert_eq!(run.code, 0, "{}", run.debug());
    let b_after = boot_ids(&b);
    assert!(b_before.iter().all(|id| !b_after.contains(id)), "every node of b rebooted: {b_before:?} → {b_after:?}");
    assert_eq!(boot_ids(&a), a_before, "cluster a, the current context, was not touched");

    // The journal names its cluster; a resume under the other context is refused, naming both.
    let (_, state) = fleetboot::adapters::journal::load(Path::new(journal)).unwrap();
    let journaled = state.cluster.expect("a cluster run journals its cluster");
    assert_eq!(journaled.server.trim_end_matches('/'), b.api);
    assert!(journaled.cluster_id.is_some(), "the ClusterVersion's clusterID is journaled");
    let refused: Run = b.fleetboot(&["reboot", "--resume", journal, "--kubeconfig", kubeconfig, "--context", "a"]).output().unwrap().into();
    assert_eq!(refused.code, 2, "{}", refused.debug());
    assert!(refused.stderr.contains(&b.api) && refused.stderr.contains(&a.api), "names both clusters: {}", refused.stderr);
    assert_eq!(boot_ids(&a), a_before, "the refused resume touched nothing");
    // Under its own context the resume is accepted (the run is finished: nothing more to do).
    let resumed: Run = b.fleetboot(&["reboot", "--resume", journal, "--kubeconfig", kubeconfig, "--context", "b"]).output().unwrap().into();
    assert_eq!(resumed.code, 0, "{}", resumed.debug());
    assert_eq!(boot_ids(&b), b_after, "a finished run reboots nothing again");
}

fn spawn_reboot(sim: &Sim, journal: &Path, extra: &[&str]) -> std::process::Child {
    spawn_run(sim, journal, &[&["--all", "--concurrency", "1"], extra].concat())
}

fn spawn_run(sim: &Sim, journal: &Path, extra: &[&str]) -> std::process::Child {
    let args = ["reboot", "--poll-interval", "200ms", "--output", "json", "--journal"];
    sim.fleetboot(&[&args[..], &[journal.to_str().unwrap()], extra].concat())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_run_that_cannot_renew_its_lease_through_an_api_outage_starts_nothing_new() {
    let sim = Sim::start(0, 4);
    let journal = sim.path("outage.jsonl");
    let child = spawn_reboot(&sim, &journal, &["--lease-duration", "3s"]);
    crate::common::wait_for_dispatches(&journal, 1, std::time::Duration::from_secs(30));
    // Longer than half the lease: the run no longer knows that nobody else took it.
    sim.control("POST", "outage", r#"{"seconds": 4}"#);
    let run: Run = child.wait_with_output().unwrap().into();
    assert_eq!(run.code, 4, "stopped early, resumable: {}", run.debug());
    assert!(run.stdout.contains("could not be renewed"), "says why: {}", run.debug());
    assert_eq!(dispatches(&journal).len(), 1, "nothing new started after the lease was lost");
    let skipped = run.events().into_iter().filter(|e| e["record"]["event"] == "skipped").count();
    assert_eq!(skipped, 3, "the other nodes are left for --resume: {}", run.debug());
}

/// An API that takes requests and answers none (stalled, not refusing): the renewal gives up at
/// the half-lease mark instead of waiting for an answer that comes after the lease expired.
#[test]
fn a_run_whose_lease_renewal_hangs_stops_at_half_the_lease() {
    let sim = Sim::start(0, 4);
    let journal = sim.path("stalled.jsonl");
    let child = spawn_reboot(&sim, &journal, &["--lease-duration", "3s"]);
    crate::common::wait_for_dispatches(&journal, 1, std::time::Duration::from_secs(30));
    // Longer than the lease: anybody could take it meanwhile; answered only when it is over.
    sim.control("POST", "outage", r#"{"seconds": 5, "stall": true}"#);
    let run: Run = child.wait_with_output().unwrap().into();
    assert_eq!(run.code, 4, "stopped early, resumable: {}", run.debug());
    assert!(run.stdout.contains("could not be renewed"), "says why: {}", run.debug());
    assert_eq!(dispatches(&journal).len(), 1, "nothing new started after the lease was lost");
}

#[test]
fn a_run_whose_lease_is_taken_over_stops_so_two_runs_never_reboot_together() {
    let sim = Sim::start(0, 8);
    let (first_journal, second_journal) = (sim.path("first.jsonl"), sim.path("second.jsonl"));
    // The first run starts a reboot every second, several at once, and looks at its 12 s lease
    // every 4 s: it would go on starting reboots for seconds after a takeover it has not seen.
    let first_nodes = "worker-0,worker-1,worker-2,worker-3,worker-4,worker-5";
    let first =
        spawn_run(&sim, &first_journal, &["--nodes", first_nodes, "--concurrency", "6", "--rate", "1/s", "--lease-duration", "12s"]);
    crate::common::wait_for_dispatches(&first_journal, 1, std::time::Duration::from_secs(30));
    // Other nodes of the same cluster: the lease is the cluster's, whichever nodes a run picks.
    let second = spawn_run(&sim, &second_journal, &["--nodes", "worker-6,worker-7", "--break-lock", "--lease-duration", "3s"]);
    let (first, second): (Run, Run) = (first.wait_with_output().unwrap().into(), second.wait_with_output().unwrap().into());
    assert_eq!(first.code, 4, "{}", first.debug());
    assert!(first.stdout.contains("another run took the cluster's lease over"), "{}", first.debug());
    assert_eq!(second.code, 0, "{}", second.debug());
    // From the second run's first reboot on, the first run sent none.
    let second_started = dispatches(&second_journal).iter().map(|(_, at)| *at).min().unwrap();
    let late: Vec<_> = dispatches(&first_journal).into_iter().filter(|(_, at)| *at >= second_started).collect();
    assert!(late.is_empty(), "the first run rebooted {late:?} while the second was rebooting");
    assert!(dispatches(&first_journal).len() < 6, "the first run stopped before it had started every node");
    assert!(second.stdout.contains("before the first reboot"), "the second run said why it waits: {}", second.debug());
}

#[test]
fn a_lease_stale_by_its_holders_clock_but_still_renewed_is_not_taken_over() {
    let sim = Sim::start(0, 1);
    let lease = sim.path("lease.json");
    // The holder's clock is years behind ours, but it keeps renewing.
    std::fs::write(
        &lease,
        r#"{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"fleetboot","namespace":"kube-system"},
        "spec":{"holderIdentity":"skewed@elsewhere pid 1","leaseDurationSeconds":3,"renewTime":"2020-01-01T00:00:00.000000Z"}}"#,
    )
    .unwrap();
    sim.kubectl_ok(&["create", "--validate=false", "-f", lease.to_str().unwrap()]);
    let renewing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let renewer = {
        let (renewing, kubeconfig) = (renewing.clone(), sim.path("kubeconfig"));
        std::thread::spawn(move || {
            for second in 1..30 {
                if !renewing.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let patch = format!(r#"{{"spec":{{"renewTime":"2020-01-01T00:00:{second:02}.000000Z"}}}}"#);
                let _ = std::process::Command::new("kubectl")
                    .args(["-n", "kube-system", "patch", "lease", "fleetboot", "--type", "merge", "-p", &patch])
                    .env("KUBECONFIG", &kubeconfig)
                    .output();
                std::thread::sleep(std::time::Duration::from_millis(400));
            }
        })
    };
    let journal = sim.path("run.jsonl");
    let run: Run = sim.fleetboot(&["reboot", "--all", "--journal", journal.to_str().unwrap()]).output().unwrap().into();
    renewing.store(false, std::sync::atomic::Ordering::SeqCst);
    renewer.join().unwrap();
    assert_eq!(run.code, 2, "{}", run.debug());
    assert!(run.stderr.contains("holds the lease kube-system/fleetboot: skewed@elsewhere pid 1"), "{}", run.debug());
    assert!(!journal.exists(), "a refused run leaves no journal");
}

fn network_type(sim: &Sim) -> String {
    sim.kubectl_ok(&["get", "network.config.openshift.io", "cluster", "-o", "jsonpath={.spec.networkType}"])
}

#[test]
fn migrate_with_context_b_migrates_and_reboots_only_b() {
    let a = Sim::start(1, 1);
    let b = Sim::start(1, 1);
    let kubeconfig = b.path("two-clusters");
    two_cluster_kubeconfig(&a, &b, &kubeconfig);
    let (a_before, b_before, a_network) = (boot_ids(&a), boot_ids(&b), network_type(&a));
    let args = ["migrate", "--kubeconfig", kubeconfig.to_str().unwrap(), "--context", "b", "--etcd-backup-confirmed"];
    let run: Run = b.fleetboot(&[&args[..], &["--poll-interval", "300ms", "--output", "plain"]].concat()).output().unwrap().into();
    assert_eq!(run.code, 0, "{}", run.debug());
    assert_eq!(network_type(&b), "OVNKubernetes");
    assert!(boot_ids(&b).iter().all(|id| !b_before.contains(id)), "b's nodes rebooted");
    assert_eq!(boot_ids(&a), a_before, "no node of a, the current context, rebooted");
    assert_eq!(network_type(&a), a_network, "a's network config untouched");
    let pools = a.kubectl_ok(&["get", "machineconfigpools", "-o", "jsonpath={.items[*].spec.paused}"]);
    assert!(!pools.contains("true"), "a's pools untouched: {pools}");
}

/// `--reboot-error-nodes` reboots the nodes of the migrated cluster only: a pod in error on b's
/// worker sends that worker a second reboot, on b, while a (the current context) is untouched.
#[test]
fn reboot_error_nodes_with_context_b_reboots_only_bs_node() {
    let a = Sim::start(0, 1);
    let b = Sim::start(0, 1);
    let kubeconfig = b.path("two-clusters");
    two_cluster_kubeconfig(&a, &b, &kubeconfig);
    let a_before = boot_ids(&a);
    let kc = kubeconfig.to_str().unwrap();
    let args =
        ["migrate", "--kubeconfig", kc, "--context", "b", "--etcd-backup-confirmed", "--reboot-error-nodes", "--poll-interval", "300ms"];
    let mut child = b.fleetboot(&args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    b.wait_for_migration_journal(r#""step":"backup""#, Some(&mut child));
    // A pod no reboot mends (a DaemonSet's), failing since the migration started.
    b.fail_daemonset_pod_on("worker-0");
    let run: Run = child.wait_with_output().unwrap().into();
    assert_eq!(run.code, 3, "{}", run.debug());
    assert!(run.stdout.contains("rebooting the nodes that hold pods in error: worker-0"), "{}", run.debug());
    let extra = b.reboot_error_nodes_journals();
    assert_eq!(extra.len(), 1, "{extra:?}");
    assert_eq!(dispatches(&extra[0]).len(), 1, "b's worker got its second reboot");
    let (_, state) = fleetboot::adapters::journal::load(&extra[0]).unwrap();
    assert_eq!(state.cluster.expect("journaled").server.trim_end_matches('/'), b.api, "the rerun's journal names b");
    assert_eq!(boot_ids(&a), a_before, "no node of a, the current context, rebooted");
}

#[test]
fn an_unfinished_migration_of_one_cluster_is_invisible_to_another_and_refused_there() {
    let a = Sim::start(1, 1);
    let b = Sim::start(1, 1);
    let kubeconfig = b.path("two-clusters");
    two_cluster_kubeconfig(&a, &b, &kubeconfig);
    let kc = kubeconfig.to_str().unwrap();
    // Interrupt a migration of a (b's config: one state directory for both).
    let mut child = b
        .fleetboot(&["migrate", "--kubeconfig", kc, "--context", "a", "--etcd-backup-confirmed", "--poll-interval", "300ms"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let a_dir = loop {
        let found = std::fs::read_dir(b.path("state/migrations"))
            .ok()
            .and_then(|mut d| d.next())
            .map(|e| e.unwrap().path())
            .filter(|d| std::fs::read_to_string(d.join("migration.jsonl")).unwrap_or_default().contains(r#""event":"step_done""#));
        if let Some(dir) = found {
            break dir;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "a's migration never got going");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    // b has no migration in progress: its own runs, start to end.
    let args = ["migrate", "--kubeconfig", kc, "--context", "b", "--etcd-backup-confirmed", "--poll-interval", "300ms"];
    let run: Run = b.fleetboot(&args).output().unwrap().into();
    assert_eq!(run.code, 0, "{}", run.debug());
    assert_eq!(network_type(&b), "OVNKubernetes");
    // a's journal, named explicitly, is refused under b, naming both clusters.
    let dir = a_dir.to_str().unwrap();
    let refused: Run = b.fleetboot(&["migrate", "--resume", "--dir", dir, "--kubeconfig", kc, "--context", "b"]).output().unwrap().into();
    assert_eq!(refused.code, 2, "{}", refused.debug());
    assert!(refused.stderr.contains(&a.api) && refused.stderr.contains(&b.api), "{}", refused.debug());
}
