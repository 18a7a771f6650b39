//! A migration run "on another machine": an empty working directory with its own state
//! directory and no file of the first run's, the same cluster; the journal read from the
//! cluster with kubectl; a child process killed by PID when dropped.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fleetboot::adapters::kube::journal_store::JournalPlace;

use super::sim::Sim;

/// Every record line of the run's journal in the cluster, chunk after chunk (kubectl's view).
pub fn cluster_journal_lines(sim: &Sim, place: &JournalPlace) -> Vec<serde_json::Value> {
    let mut lines = Vec::new();
    for index in 0.. {
        let (found, data, _) = sim.kubectl(&[
            "-n",
            &place.namespace,
            "get",
            "configmap",
            &place.chunk_name(index),
            "--ignore-not-found",
            "-o",
            "jsonpath={.data.records\\.jsonl}",
        ]);
        assert!(found, "kubectl get configmap {}", place.chunk_name(index));
        if data.is_empty() {
            break;
        }
        lines.extend(data.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()));
    }
    lines
}

/// A child process killed by PID when dropped, also when the test fails.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The simulation's fleetboot.toml (the fleet's SSH key and known_hosts, the kubeconfig) with
/// its state directory moved into `dir`: another machine, with none of the first one's files.
pub fn config_elsewhere(sim: &Sim, dir: &std::path::Path) -> std::path::PathBuf {
    let config = std::fs::read_to_string(sim.config()).unwrap();
    let old = format!("state_dir = \"{}\"", sim.path("state").display());
    assert!(config.contains(&old), "{config}");
    let path = dir.join("fleetboot.toml");
    std::fs::write(&path, config.replace(&old, &format!("state_dir = \"{}\"", dir.join("state").display()))).unwrap();
    path
}

/// `fleetboot migrate ARGS` on another machine, not started: an empty working directory
/// (`elsewhere`), its own state directory, the same cluster; no output option.
pub fn migrate_command_elsewhere(sim: &Sim, elsewhere: &std::path::Path, args: &[&str]) -> Command {
    let config = config_elsewhere(sim, elsewhere);
    let mut command = Command::new(super::fleetboot_bin());
    command
        .arg("--config")
        .arg(&config)
        .arg("migrate")
        .args(args)
        .current_dir(elsewhere)
        .env("HOME", elsewhere)
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null());
    command
}

/// `fleetboot migrate ARGS --output plain` on another machine: an empty working directory, its
/// own state directory, the same cluster; with that directory (dropped: removed).
pub fn migrate_elsewhere(sim: &Sim, args: &[&str]) -> (super::Run, tempfile::TempDir) {
    let elsewhere = tempfile::tempdir().unwrap();
    let out = migrate_command_elsewhere(sim, elsewhere.path(), args).args(["--output", "plain"]).output().unwrap();
    (super::Run::from(out), elsewhere)
}

/// Waits (at most two minutes) until `done`, the migration `child` still running.
pub fn wait_while_running(child: &mut Killed, what: &str, done: impl Fn() -> bool) {
    assert!(wait_for(child, done), "migrate ended before {what}");
}

/// Waits (at most two minutes) until `done` (true), or until `child` ends (false).
pub fn wait_for(child: &mut Killed, done: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(120), "it never happened");
        if child.0.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}
