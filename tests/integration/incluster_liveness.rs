//! The journal in the cluster's liveness check (review 11, finding 4): its writer renews the
//! run's own Lease (`fleetboot-run-RUN-ID`), and `--resume cluster:NS/RUN-ID` refuses to take the
//! journal over (which would fence the writer) while that lease is fresh, naming the holder and
//! how fresh it is. A host-list run is used: it has no cluster Lease of its own, so this heartbeat
//! is all that stands between a resume and a live run. Judged by the fleet's own event logs (real
//! sshd hosts), the Lease and the ConfigMaps as kubectl reads them, and exit codes.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::common::sim::Sim;
use crate::common::{Fleet, Run};
use fleetboot::adapters::kube::journal_store::JournalPlace;

/// A child process killed by PID when dropped, also when the test fails.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The lease's duration for these runs (`[cluster] journal_liveness`, by its variable).
const LIVENESS: &str = "3s";

/// A host-list run of the fleet, its journal in the simulated cluster (whose nodes are none of
/// the fleet's hosts): started, its run ID read from its `started` event.
fn start_run(fleet: &Fleet, sim: &Sim) -> (Killed, String) {
    let kubeconfig = sim.path("kubeconfig");
    let args = fleet.reboot_args(&["--journal-in-cluster", "--kubeconfig", kubeconfig.to_str().unwrap(), "--concurrency", "1"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = Killed(
        fleet
            .fleetboot(&args)
            .env("FLEETBOOT_JOURNAL_LIVENESS", LIVENESS)
            .env_remove("KUBECONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    let run_id = loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "fleetboot ended before it started the run");
        let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if event["type"] == "started" {
            break event["run_id"].as_str().unwrap().to_owned();
        }
    };
    // The rest of its output is kept, for the verdict: put back on a pipe drained by a thread.
    let rest = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut text);
        text
    });
    RESTS.lock().unwrap().insert(child.0.id(), rest);
    (child, run_id)
}

type Rest = std::thread::JoinHandle<String>;
static RESTS: std::sync::Mutex<std::collections::BTreeMap<u32, Rest>> = std::sync::Mutex::new(std::collections::BTreeMap::new());

/// Waits for the run to end: its exit code and its JSON output after the `started` event.
fn finish(mut child: Killed) -> Run {
    let pid = child.0.id();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    let status = child.0.wait().unwrap();
    let stdout = RESTS.lock().unwrap().remove(&pid).unwrap().join().unwrap();
    Run { code: status.code().unwrap_or(-1), stdout, stderr }
}

/// Waits (two minutes at most) until the run's journal in the cluster holds `count` reboot
/// dispatches.
fn wait_for_dispatches(sim: &Sim, place: &JournalPlace, count: usize) {
    let started = Instant::now();
    loop {
        let (_, data, _) =
            sim.kubectl(&["-n", &place.namespace, "get", "configmap", &place.chunk_name(0), "-o", "jsonpath={.data.records\\.jsonl}"]);
        if data.matches(r#""event":"dispatched""#).count() >= count {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "fewer than {count} dispatches journaled in the cluster: {data}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `reboot --resume cluster:NS/RUN-ID` from a directory of its own (no local file), with the
/// fleet's key and known_hosts and the simulation's kubeconfig, as another machine would run it.
fn resume_elsewhere(fleet: &Fleet, sim: &Sim, dir: &Path, place: &JournalPlace) -> Command {
    let location = place.location();
    let kubeconfig = sim.path("kubeconfig");
    let (identity, known) = (fleet.path("id_ed25519"), fleet.path("known_hosts"));
    let state = dir.join("state");
    let mut cmd = Command::new(crate::common::fleetboot_bin());
    cmd.args(["reboot", "--resume", location.to_str().unwrap(), "--kubeconfig", kubeconfig.to_str().unwrap()])
        .args(["--user", &fleet.user, "--identity", identity.to_str().unwrap(), "--known-hosts", known.to_str().unwrap()])
        .args(["--state-dir", state.to_str().unwrap(), "--poll-interval", "200ms", "--output", "json"])
        .current_dir(dir)
        .env("HOME", dir)
        .env("FLEETBOOT_JOURNAL_LIVENESS", LIVENESS)
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null());
    cmd
}

fn run_lease(sim: &Sim, place: &JournalPlace) -> serde_json::Value {
    let name = fleetboot::adapters::kube::run_lease_name(&place.run_id);
    serde_json::from_str(&sim.kubectl_ok(&["-n", &place.namespace, "get", "lease", &name, "-o", "json"])).unwrap()
}

fn slow_fleet(count: usize) -> Fleet {
    let fleet = Fleet::up(count);
    // Long enough a reboot that the run is still mid-way when the resume is tried.
    for name in &fleet.names {
        fleet.set(name, "down_time", "2");
    }
    fleet
}

#[test]
fn a_resume_of_a_live_host_list_run_is_refused_naming_its_holder_and_the_live_run_finishes_unharmed() {
    let sim = Sim::start(0, 1);
    let fleet = slow_fleet(3);
    let (live, run_id) = start_run(&fleet, &sim);
    let pid = live.0.id();
    let place = JournalPlace::new("kube-system", &run_id).unwrap();
    wait_for_dispatches(&sim, &place, 1);
    // The live run holds its run's lease.
    let lease = run_lease(&sim, &place);
    assert!(lease["spec"]["holderIdentity"].as_str().unwrap().contains(&format!("pid {pid} run {run_id}")), "{lease}");

    let dir = tempfile::Builder::new().prefix("fleetboot-elsewhere-").tempdir().unwrap();
    let refused = Run::from(resume_elsewhere(&fleet, &sim, dir.path(), &place).output().unwrap());
    assert_eq!(refused.code, 2, "refused before touching anything: {}", refused.debug());
    assert!(
        refused.stderr.contains("the run is still alive")
            && refused.stderr.contains(&format!("pid {pid} run {run_id}"))
            && refused.stderr.contains("ago")
            && refused.stderr.contains("--break-lock"),
        "the refusal names the holder and how fresh its lease is: {}",
        refused.debug()
    );
    // Nothing was fenced: the token is still the live run's, and no line of the refused one.
    let token = sim.kubectl_ok(&[
        "-n",
        "kube-system",
        "get",
        "configmap",
        &place.chunk_name(0),
        "-o",
        "jsonpath={.metadata.annotations.fleetboot\\.io/journal-token}",
    ]);
    assert_eq!(token, "1");

    // The live run goes on to its end, unharmed: every host rebooted once.
    let run = finish(live);
    assert_eq!(run.code, 0, "{}", run.debug());
    for name in &fleet.names {
        assert_eq!(fleet.count_events(name, "reboot-requested"), 1, "{name}: {}", run.debug());
    }
    // Its lease is given back at the end.
    let name = fleetboot::adapters::kube::run_lease_name(&run_id);
    let (found, _, _) = sim.kubectl(&["-n", "kube-system", "get", "lease", &name]);
    assert!(!found, "the run's lease is released when it ends");
}

#[test]
fn once_a_killed_writers_lease_lapses_a_resume_from_elsewhere_takes_the_journal_over_and_finishes() {
    let sim = Sim::start(0, 1);
    let fleet = slow_fleet(3);
    let (live, run_id) = start_run(&fleet, &sim);
    let place = JournalPlace::new("kube-system", &run_id).unwrap();
    wait_for_dispatches(&sim, &place, 1);
    drop(live);
    // The killed writer ran elsewhere: its lease names another machine (the test rewrites the
    // holder, as that machine would have written it), so no resume here may reclaim it as its
    // own dead process; only its lapse lets a resume in.
    let name = fleetboot::adapters::kube::run_lease_name(&run_id);
    let elsewhere = format!("ann@another-machine pid 1 run {run_id}");
    let patch = serde_json::json!({"spec": {"holderIdentity": elsewhere}}).to_string();
    sim.kubectl_ok(&["-n", "kube-system", "patch", "lease", &name, "--type", "merge", "-p", &patch]);

    let dir = tempfile::Builder::new().prefix("fleetboot-elsewhere-").tempdir().unwrap();
    let refused = Run::from(resume_elsewhere(&fleet, &sim, dir.path(), &place).output().unwrap());
    let lease = run_lease(&sim, &place);
    let lapsed = fleetboot::adapters::kube::lease::lease_expired(&lease, SystemTime::now());
    // Refused while the lease is fresh (a slow machine may have seen it lapse already).
    if !lapsed {
        assert_eq!(refused.code, 2, "refused before touching anything: {}", refused.debug());
        assert!(refused.stderr.contains(&elsewhere) && refused.stderr.contains("still alive"), "{}", refused.debug());
    }
    // Waits on the state: the lease lapsed by its holder's clock.
    let started = Instant::now();
    while !fleetboot::adapters::kube::lease::lease_expired(&run_lease(&sim, &place), SystemTime::now()) {
        assert!(started.elapsed() < Duration::from_secs(60), "the lease never lapsed: {}", run_lease(&sim, &place));
        std::thread::sleep(Duration::from_millis(200));
    }
    let run = Run::from(resume_elsewhere(&fleet, &sim, dir.path(), &place).output().unwrap());
    assert_eq!(run.code, 0, "{}", run.debug());
    assert_eq!(run.outcomes().len(), 3, "{}", run.debug());
    for name in &fleet.names {
        assert_eq!(fleet.count_events(name, "reboot-requested"), 1, "{name} rebooted once: {}", run.debug());
    }
    // The journal was taken over (fencing token raised) by the resume.
    let token = sim.kubectl_ok(&[
        "-n",
        "kube-system",
        "get",
        "configmaps",
        "-l",
        "fleetboot.io/journal-run",
        "-o",
        "jsonpath={.items[*].metadata.annotations.fleetboot\\.io/journal-token}",
    ]);
    assert!(token.split_whitespace().any(|t| t == "2"), "{token}");
}

#[test]
fn break_lock_takes_a_live_runs_journal_over_and_the_fenced_run_stops_naming_the_new_writer() {
    let sim = Sim::start(0, 1);
    let fleet = slow_fleet(3);
    let (live, run_id) = start_run(&fleet, &sim);
    let pid = live.0.id();
    let place = JournalPlace::new("kube-system", &run_id).unwrap();
    wait_for_dispatches(&sim, &place, 1);
    let dir = tempfile::Builder::new().prefix("fleetboot-elsewhere-").tempdir().unwrap();
    let taker = Killed(
        resume_elsewhere(&fleet, &sim, dir.path(), &place)
            .arg("--break-lock")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let taker_pid = taker.0.id();
    let first = finish(live);
    let out = std::mem::replace(&mut { taker }.0, Command::new("true").spawn().unwrap()).wait_with_output().unwrap();
    let second = Run::from(out);
    assert_eq!(second.code, 0, "{}\n---\n{}", second.debug(), first.debug());
    // The fenced run stopped (it writes nothing more) naming the run that took it over.
    assert_ne!(first.code, 0, "pid {pid}: {}", first.debug());
    // It sees its run's lease taken (or its next write fenced) and says so.
    let lease = format!("the run's lease kube-system/{}", fleetboot::adapters::kube::run_lease_name(&run_id));
    assert!(first.stdout.contains(&lease) || first.stdout.contains("the journal was taken over by"), "{}", first.debug());
    assert!(
        first.stdout.contains(&format!("pid {taker_pid} ")) || first.stderr.contains(&format!("pid {taker_pid} ")),
        "{}",
        first.debug()
    );
    for name in &fleet.names {
        assert_eq!(fleet.count_events(name, "reboot-requested"), 1, "{name}: {}\n---\n{}", second.debug(), first.debug());
    }
}
