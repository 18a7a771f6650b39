//! The journal on disk: one process per journal, private files, an empty journal.

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Stdio};

use crate::common::sim::Sim;
use crate::common::{Run, fleetboot_bin, wait_for_dispatches};

/// A child process killed by PID when dropped, also when the test fails.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_second_resume_of_a_journal_in_use_exits_2_naming_the_holders_pid() {
    let sim = Sim::start_with(0, 1, &["--fault", "worker-0=never_returns"]);
    let line = std::fs::read_to_string(sim.path("hosts.txt")).unwrap().lines().find(|l| l.starts_with("worker-0 ")).unwrap().to_owned();
    let hosts = sim.path("one-host.txt");
    std::fs::write(&hosts, format!("{line}\n")).unwrap();
    let journal = sim.path("private/runs/reboot.jsonl");
    let common = ["--transport", "ssh", "--poll-interval", "200ms", "--output", "json"];
    let mut first =
        vec!["reboot", "--hosts-file", hosts.to_str().unwrap(), "--journal", journal.to_str().unwrap(), "--reboot-timeout", "10m"];
    first.extend(common);
    let holder =
        Killed(sim.fleetboot(&first).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start fleetboot"));
    wait_for_dispatches(&journal, 1, std::time::Duration::from_secs(60));
    // The journal and the directories fleetboot created for it are its owner's alone.
    assert_eq!((mode(&journal), mode(&sim.path("private")), mode(&sim.path("private/runs"))), (0o600, 0o700, 0o700));

    let before = std::fs::read_to_string(&journal).unwrap();
    let mut second = vec!["reboot", "--resume", journal.to_str().unwrap()];
    second.extend(common);
    let run = Run::from(sim.fleetboot(&second).stdin(Stdio::null()).output().unwrap());
    assert_eq!(run.code, 2, "{}", run.debug());
    let pid = holder.0.id();
    assert!(run.stderr.contains(&format!("in use by process {pid}")), "the holder's pid {pid} is named: {}", run.debug());
    assert!(std::fs::read_to_string(&journal).unwrap().starts_with(&before), "the refused resume wrote nothing");
    // The lock is taken before the journal is read for planning (even for a dry run): records
    // read without it could be stale by the time the run starts.
    let mut dry = second.clone();
    dry.push("--dry-run");
    let run = Run::from(sim.fleetboot(&dry).stdin(Stdio::null()).output().unwrap());
    assert_eq!(run.code, 2, "{}", run.debug());
    assert!(run.stderr.contains(&format!("in use by process {pid}")), "{}", run.debug());

    // kill -9 frees the journal: a resume takes it (and fails the node that never returns).
    drop(holder);
    let mut resume = second.clone();
    resume.extend(["--reboot-timeout", "1s", "--override-journal"]);
    let run = Run::from(sim.fleetboot(&resume).stdin(Stdio::null()).output().unwrap());
    assert_eq!(run.code, 3, "{}", run.debug());
    assert!(!run.stderr.contains("in use"), "{}", run.debug());
}

#[test]
fn resuming_an_empty_journal_says_nothing_was_done_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("reboot-killed-at-birth.jsonl");
    std::fs::write(&journal, "").unwrap();
    let out = std::process::Command::new(fleetboot_bin())
        .args(["reboot", "--resume", journal.to_str().unwrap(), "--output", "json"])
        .env("HOME", dir.path())
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let run = Run::from(out);
    assert_eq!(run.code, 2, "{}", run.debug());
    assert!(run.stderr.contains("nothing was done") && run.stderr.contains("without --resume"), "{}", run.debug());
}

#[test]
fn a_second_migrate_resume_while_one_holds_the_migration_journal_exits_2_naming_its_pid() {
    // worker-0 never comes back from the reboot phase 1's rollout gives it: the first migration
    // waits in that step, holding its journal.
    let sim = Sim::start_with(0, 1, &["--fault", "worker-0=never_returns"]);
    let holder = Killed(
        sim.fleetboot(&["migrate", "--etcd-backup-confirmed", "--poll-interval", "300ms", "--output", "json"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fleetboot"),
    );
    let start = std::time::Instant::now();
    let journal = loop {
        let journal = std::fs::read_dir(sim.path("state/migrations"))
            .ok()
            .and_then(|mut d| d.next())
            .map(|e| e.unwrap().path().join("migration.jsonl"))
            .filter(|j| std::fs::read_to_string(j).unwrap_or_default().contains(r#""event":"step_started","step":"rollout_config""#));
        if let Some(journal) = journal {
            break journal;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(60), "phase 1 never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let before = std::fs::read_to_string(&journal).unwrap();
    let pid = holder.0.id();
    // --break-lock would take the cluster's lease over from a holder elsewhere; the journal on
    // this machine still has a live writer, which refuses the takeover before the lease is touched.
    let run = Run::from(
        sim.fleetboot(&["migrate", "--resume", "--break-lock", "--poll-interval", "300ms"]).stdin(Stdio::null()).output().unwrap(),
    );
    assert_eq!(run.code, 2, "{}", run.debug());
    assert!(run.stderr.contains(&format!("in use by process {pid}")), "the holder's pid {pid} is named: {}", run.debug());
    assert!(std::fs::read_to_string(&journal).unwrap().starts_with(&before), "the refused resume wrote nothing");
    let lease = sim.kubectl_ok(&["-n", "kube-system", "get", "lease", "fleetboot-migration", "-o", "jsonpath={.spec.holderIdentity}"]);
    assert!(lease.contains(&format!("pid {pid} ")), "the lease stays the first run's: {lease}");
    drop(holder);
}
