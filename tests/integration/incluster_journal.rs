//! The journal in the cluster (`--journal-in-cluster`): ConfigMaps whose every write is
//! conditional, fenced by a token; a run killed with -9 resumed from another directory with no
//! local file; two resumes racing on one run. Judged by the simulation's node history, the
//! ConfigMaps as kubectl reads them, and exit codes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::Run;
use crate::common::sim::{Sim, boot_counts};
use fleetboot::adapters::journal::JournalBackend;
use fleetboot::adapters::kube::journal_store::{self, JournalPlace};
use fleetboot::adapters::kube::{ClusterConnection, ClusterTarget};
use fleetboot_core::hosts::Host;
use fleetboot_core::journal::{Entry, JOURNAL_VERSION, Phase, Record};

/// A child process killed by PID when dropped, also when the test fails.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rec(at_ms: u64, entry: Entry) -> Record {
    Record { v: JOURNAL_VERSION, at_ms, entry }
}

fn start(run_id: &str, names: &[&str]) -> Record {
    let hosts = names.iter().map(|n| Host { name: (*n).into(), address: "127.0.0.1".into(), port: None }).collect();
    rec(
        0,
        Entry::RunStarted {
            run_id: run_id.into(),
            command: "sudo shutdown -r -t 3".into(),
            hosts,
            api_proof: false,
            grouping: None,
            drain: None,
            cluster: None,
            settings: None,
        },
    )
}

#[test]
fn two_writers_of_one_journal_never_both_succeed_and_the_older_stops_naming_the_newer() {
    let sim = Sim::in_process(0, 1);
    let connection = sim.connection();
    let place = JournalPlace::new("kube-system", "20261204T120000Z-7").unwrap();
    let (client, config) = (&connection.client, &connection.config);

    let mut first = sim.block_on(journal_store::create(client, config, &place, "ann@bastion pid 7 run r")).unwrap();
    first.append(&start("20261204T120000Z-7", &["a", "b"])).unwrap();
    first.append(&rec(1, Entry::Down { host: "a".into() })).unwrap();
    // A second create of the same run is refused: a journal is never overwritten.
    let again = sim.block_on(journal_store::create::<Record>(client, config, &place, "bob@laptop pid 8 run r")).unwrap_err().to_string();
    assert!(again.contains("never overwritten") && again.contains("fleetboot-journal-20261204t120000z-7-0"), "{again}");

    // Another writer takes it over: it sees every record so far, and from now on the first
    // writer's appends conflict; it reads the newer token and stops, naming the new holder.
    let (mut second, records) = sim.block_on(journal_store::take_over(client, config, &place, "bob@laptop pid 8 run r")).unwrap();
    assert_eq!(records.len(), 2);
    let fenced = first.append(&rec(2, Entry::Down { host: "b".into() })).unwrap_err().to_string();
    assert!(fenced.contains("taken over by bob@laptop pid 8 run r") && fenced.contains("fencing token 2, this run's 1"), "{fenced}");
    second.append(&rec(3, Entry::Down { host: "b".into() })).unwrap();
    // Still fenced, whatever it tries next.
    assert!(first.append(&rec(4, Entry::Down { host: "b".into() })).is_err());

    // Enough records to fill several chunks: each stays under the 1 MiB object limit, and the
    // fold reads them all back in order.
    let big = "x".repeat(4000);
    for i in 0..150 {
        second.append(&rec(10 + i, Entry::LeaseTakenOver { previous_holder: big.clone(), holder: "bob".into() })).unwrap();
    }
    let loaded = sim.block_on(journal_store::load(client, &place)).unwrap();
    assert_eq!(loaded.records.len(), 3 + 150);
    assert_eq!((loaded.holder.as_str(), loaded.token), ("bob@laptop pid 8 run r", 2));
    assert_eq!(loaded.state.records["b"].phase, Phase::Down);
    let sizes = sim.kubectl_ok(&["-n", "kube-system", "get", "configmaps", "-l", "fleetboot.io/journal-run", "-o", "name"]);
    let chunks = sizes.lines().count();
    assert!(chunks >= 3, "{sizes}");
    for line in sizes.lines() {
        let json = sim.kubectl_ok(&["-n", "kube-system", "get", line, "-o", "json"]);
        assert!(json.len() < 1024 * 1024, "{line} is {} bytes", json.len());
    }
    // Each line names its writer and token, as the ConfigMap holds it (read by kubectl).
    let chunk0 = sim.kubectl_ok(&["-n", "kube-system", "get", "configmap", &place.chunk_name(0), "-o", "jsonpath={.data.records\\.jsonl}"]);
    let lines: Vec<serde_json::Value> = chunk0.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!((lines[0]["token"].as_u64(), lines[0]["holder"].as_str()), (Some(1), Some("ann@bastion pid 7 run r")));
    assert_eq!((lines[2]["token"].as_u64(), lines[2]["holder"].as_str()), (Some(2), Some("bob@laptop pid 8 run r")));
    // The old writer cannot slip a chunk in either: the journal stays the new writer's.
    drop(first);
    second.append(&rec(999, Entry::Down { host: "a".into() })).unwrap();
}

/// The run's ID from its `started` event (JSON output).
fn started_run_id(child: &mut Child) -> String {
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "fleetboot ended before it started the run");
        let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if event["type"] == "started" {
            // The rest of its output is not read: keep the pipe drained.
            std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
            return event["run_id"].as_str().unwrap().to_owned();
        }
    }
}

/// Waits (a minute at most) until the run's first chunk holds `count` reboot dispatches.
fn wait_for_cluster_dispatches(sim: &Sim, place: &JournalPlace, count: usize) {
    let started = Instant::now();
    loop {
        let (_, data, _) =
            sim.kubectl(&["-n", &place.namespace, "get", "configmap", &place.chunk_name(0), "-o", "jsonpath={.data.records\\.jsonl}"]);
        if data.matches(r#""event":"dispatching""#).count() >= count {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no dispatch journaled in the cluster: {data}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A directory elsewhere with a config of its own: the simulation's key, known_hosts and
/// kubeconfig, and a state directory of its own (empty), as another machine would have.
fn elsewhere(sim: &Sim) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new().prefix("fleetboot-elsewhere-").tempdir().unwrap();
    let text = std::fs::read_to_string(sim.config()).unwrap();
    let state = dir.path().join("state");
    let text = text.replace(&format!("state_dir = \"{}\"", sim.path("state").display()), &format!("state_dir = \"{}\"", state.display()));
    assert!(text.contains(state.to_str().unwrap()));
    let config = dir.path().join("fleetboot.toml");
    std::fs::write(&config, text).unwrap();
    (dir, config)
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.map(Result::unwrap) {
            if entry.path().is_dir() {
                found.extend(files_under(&entry.path()));
            } else {
                found.push(entry.path());
            }
        }
    }
    found
}

fn resume_from(dir: &Path, config: &Path, run: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(crate::common::fleetboot_bin());
    cmd.arg("--config")
        .arg(config)
        .args(["reboot", "--resume", run, "--poll-interval", "200ms", "--output", "json"])
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null());
    cmd
}

/// Starts an in-cluster run over the workers, one at a time, and kills it (-9) once its first
/// reboot is journaled in the cluster; the run's journal place.
fn start_and_kill(sim: &Sim) -> JournalPlace {
    let args = ["reboot", "--all", "--journal-in-cluster", "--concurrency", "1", "--poll-interval", "200ms", "--output", "json"];
    let mut child = Killed(sim.fleetboot(&args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap());
    let run_id = started_run_id(&mut child.0);
    let place = JournalPlace::new("kube-system", &run_id).unwrap();
    wait_for_cluster_dispatches(sim, &place, 1);
    drop(child);
    place
}

#[test]
fn a_run_killed_with_9_resumes_from_another_directory_with_no_local_file_and_reboots_each_node_once() {
    let sim = Sim::start(0, 3);
    let place = start_and_kill(&sim);
    let (dir, config) = elsewhere(&sim);
    let location = place.location();
    let run = Run::from(resume_from(dir.path(), &config, location.to_str().unwrap()).output().unwrap());
    assert_eq!(run.code, 0, "{}", run.debug());
    assert_eq!(run.journal(), location, "{}", run.debug());
    let outcomes = run.outcomes();
    assert_eq!(outcomes.len(), 3, "{}", run.debug());
    // Each node rebooted exactly once, by the simulation's own history: the one handed over
    // before the kill was awaited, not rebooted again.
    for (node, boots) in boot_counts(&sim) {
        assert_eq!(boots, 1, "{node} booted {boots} times: {}", run.debug());
    }
    // No journal file anywhere: neither here nor where the first run started.
    assert!(files_under(&dir.path().join("state")).is_empty(), "{:?}", files_under(dir.path()));
    let local: Vec<PathBuf> = files_under(&sim.path("state")).into_iter().filter(|p| p.to_string_lossy().ends_with(".jsonl")).collect();
    assert!(local.is_empty(), "{local:?}");
    // The journal in the cluster says the run finished, with the resumed writer's token.
    let loaded = {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let target = ClusterTarget { kubeconfig: Some(sim.path("kubeconfig")), context: None };
        runtime.block_on(async {
            let connection = ClusterConnection::open(&target).await.unwrap();
            journal_store::load(&connection.client, &place).await.unwrap()
        })
    };
    assert!(loaded.state.finished, "{:?}", loaded.records.last());
    assert_eq!(loaded.token, 2);
    assert!(loaded.records.iter().any(|r| matches!(r.entry, Entry::RunResumed { .. })));
    // `--journal-in-cluster --resume RUN-ID` names the same journal (here: a finished run).
    let again = Run::from(resume_from(dir.path(), &config, &place.run_id).arg("--journal-in-cluster").arg("--dry-run").output().unwrap());
    assert_eq!(again.code, 0, "{}", again.debug());
}

#[test]
fn two_resumes_racing_on_one_in_cluster_run_one_proceeds_and_the_other_exits_2_naming_it() {
    let sim = Sim::start(0, 3);
    let place = start_and_kill(&sim);
    let location = place.location();
    let (a_dir, a_config) = elsewhere(&sim);
    let (b_dir, b_config) = elsewhere(&sim);
    let spawn = |dir: &Path, config: &Path| {
        Killed(resume_from(dir, config, location.to_str().unwrap()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap())
    };
    let (a, b) = (spawn(a_dir.path(), &a_config), spawn(b_dir.path(), &b_config));
    let pids = [a.0.id(), b.0.id()];
    let finish = |mut child: Killed| {
        let out = std::mem::replace(&mut child.0, std::process::Command::new("true").spawn().unwrap()).wait_with_output().unwrap();
        Run::from(out)
    };
    let runs = [finish(a), finish(b)];
    let codes: Vec<i32> = runs.iter().map(|r| r.code).collect();
    let debug = || runs.iter().map(Run::debug).collect::<Vec<_>>().join("\n---\n");
    assert!(codes.contains(&0) && codes.contains(&2), "{codes:?}: {}", debug());
    let (winner, loser) = if codes[0] == 0 { (0, 1) } else { (1, 0) };
    assert!(
        runs[loser].stderr.contains("holds the lease") && runs[loser].stderr.contains(&format!("pid {} ", pids[winner])),
        "the refusal names the run that proceeds (pid {}): {}",
        pids[winner],
        debug()
    );
    for (node, boots) in boot_counts(&sim) {
        assert_eq!(boots, 1, "{node} booted {boots} times: {}", debug());
    }
}

#[test]
fn the_journal_in_the_cluster_survives_an_api_server_restart_between_the_kill_and_the_resume() {
    let state = tempfile::Builder::new().prefix("fleetboot-sim-store-").tempdir().unwrap();
    let sim = Sim::start_with(0, 3, &["--state-dir", state.path().to_str().unwrap()]);
    let place = start_and_kill(&sim);
    // The API server restarts: its store goes to the state directory and comes back from it
    // alone; every connection and watch is cut.
    let restarted: serde_json::Value = serde_json::from_str(&sim.control("POST", "api-restart", "{}")).unwrap();
    assert_eq!(restarted["restarted"], true, "{restarted}");
    let saved = std::fs::read_to_string(state.path().join("store.json")).unwrap();
    assert!(saved.contains(&place.chunk_name(0)), "the journal's chunk is in the saved store");
    let (dir, config) = elsewhere(&sim);
    let run = Run::from(resume_from(dir.path(), &config, place.location().to_str().unwrap()).output().unwrap());
    assert_eq!(run.code, 0, "{}", run.debug());
    for (node, boots) in boot_counts(&sim) {
        assert_eq!(boots, 1, "{node} booted {boots} times: {}", run.debug());
    }
}
