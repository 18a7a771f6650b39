//! Test harness: a fleet of real OpenSSH sshd instances on loopback (scripts/fake-fleet.sh),
//! stopped by PID when the fleet is dropped, also when a test fails. The fleet logs in as an
//! unprivileged user (`Fleet::user`), never as root.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

pub mod elsewhere;
pub mod inproc;
pub mod pod;
pub mod sim;
pub mod sushy;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fleetboot_bin() -> &'static str {
    env!("CARGO_BIN_EXE_fleetboot")
}

pub struct Fleet {
    pub dir: tempfile::TempDir,
    pub names: Vec<String>,
    pub port: u16,
    pub net: String,
    /// The unprivileged login user every node's sshd runs as (for `--user`).
    pub user: String,
}

static FLEETS: AtomicU32 = AtomicU32::new(0);

/// A /24 of 127.x.y.0 no other test process uses at the same time.
fn private_net() -> String {
    let n = std::process::id().wrapping_mul(7).wrapping_add(FLEETS.fetch_add(1, Ordering::SeqCst) * 13);
    format!("127.{}.{}", 1 + n % 250, 1 + (n / 250) % 250)
}

impl Fleet {
    pub fn up(count: usize) -> Fleet {
        Fleet::up_with(count, |_| {})
    }

    /// `before_start` may write behaviour files into each node dir before sshd starts.
    pub fn up_with(count: usize, _before_start: impl Fn(&Path)) -> Fleet {
        assert!(
            Path::new("/usr/sbin/sshd").exists(),
            "OpenSSH sshd is missing: run the README's test command (scripts/test.sh), which installs it"
        );
        let dir = tempfile::Builder::new().prefix("fleetboot-test-").tempdir().expect("tempdir");
        let net = private_net();
        let port = free_port();
        let out = Command::new(repo().join("scripts/fake-fleet.sh"))
            .args(["up", dir.path().to_str().unwrap(), &count.to_string(), &port.to_string(), &net])
            .output()
            .expect("run fake-fleet.sh");
        let user = std::fs::read_to_string(dir.path().join("user")).unwrap_or_default().trim().to_owned();
        let fleet = Fleet { names: (1..=count).map(|i| format!("h{i:03}")).collect(), dir, port, net, user };
        assert!(out.status.success(), "fake-fleet up failed: {}", String::from_utf8_lossy(&out.stderr));
        assert!(!fleet.user.is_empty() && fleet.user != "root", "the fleet logs in as an unprivileged user, not {:?}", fleet.user);
        for name in &fleet.names {
            fleet.set(name, "reboot_delay", "1");
            fleet.set(name, "down_time", "1");
        }
        fleet
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn node_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join("nodes").join(name)
    }

    /// Writes a behaviour file of the fake node (see scripts/fake-node.sh).
    pub fn set(&self, name: &str, file: &str, value: &str) {
        std::fs::write(self.node_dir(name).join(file), value).unwrap();
    }

    pub fn boot_id(&self, name: &str) -> String {
        std::fs::read_to_string(self.node_dir(name).join("boot_id")).unwrap().trim().to_owned()
    }

    /// The node's own timestamped log: (unix ms, what).
    pub fn events(&self, name: &str) -> Vec<(u64, String)> {
        let text = std::fs::read_to_string(self.node_dir(name).join("events.log")).unwrap_or_default();
        text.lines().filter_map(|l| l.split_once(' ')).map(|(t, what)| (t.parse().unwrap(), what.to_owned())).collect()
    }

    pub fn count_events(&self, name: &str, what: &str) -> usize {
        self.events(name).iter().filter(|(_, w)| w == what).count()
    }

    /// A fleetboot command with the fleet's key, known_hosts and host file, isolated from
    /// the user's own ssh setup.
    pub fn fleetboot(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(fleetboot_bin());
        cmd.args(args).env("HOME", self.dir.path()).env_remove("SSH_AUTH_SOCK").stdin(Stdio::null());
        cmd
    }

    /// `reboot` with everything needed to reach the fleet; extra flags after.
    pub fn reboot_args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "reboot",
            "--hosts-file",
            self.path("hosts.txt").to_str().unwrap(),
            "--user",
            self.user.as_str(),
            "--identity",
            self.path("id_ed25519").to_str().unwrap(),
            "--known-hosts",
            self.path("known_hosts").to_str().unwrap(),
            "--state-dir",
            self.path("state").to_str().unwrap(),
            "--poll-interval",
            "200ms",
            "--connect-timeout",
            "2s",
            "--auth-timeout",
            "5s",
            "--output",
            "json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// `reboot --resume JOURNAL` with the fleet's key and known_hosts; extra flags after.
    pub fn resume(&self, journal: &Path, extra: &[&str]) -> Run {
        let user = self.user.as_str();
        let mut args =
            vec!["reboot", "--resume", journal.to_str().unwrap(), "--user", user, "--poll-interval", "200ms", "--output", "json"];
        let identity = self.path("id_ed25519");
        let known = self.path("known_hosts");
        args.extend(["--identity", identity.to_str().unwrap(), "--known-hosts", known.to_str().unwrap()]);
        args.extend_from_slice(extra);
        Run::from(self.fleetboot(&args).output().expect("run fleetboot"))
    }

    pub fn reboot(&self, extra: &[&str]) -> Run {
        let args = self.reboot_args(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Run::from(self.fleetboot(&args).output().expect("run fleetboot"))
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/fake-fleet.sh")).args(["down", self.dir.path().to_str().unwrap()]).status();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A finished fleetboot process with its JSON events parsed.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn events(&self) -> Vec<Value> {
        self.stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
    }

    pub fn summary(&self) -> Value {
        self.events()
            .into_iter()
            .find(|e| e["type"] == "finished")
            .unwrap_or_else(|| panic!("no finished event; stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr))["summary"]
            .clone()
    }

    /// host → (outcome, error)
    pub fn outcomes(&self) -> BTreeMap<String, (String, String)> {
        self.summary()["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["host"].as_str().unwrap().to_owned(),
                    (h["outcome"].as_str().unwrap().to_owned(), h["error"].as_str().unwrap_or("").to_owned()),
                )
            })
            .collect()
    }

    pub fn journal(&self) -> PathBuf {
        PathBuf::from(self.summary()["journal"].as_str().unwrap())
    }

    pub fn debug(&self) -> String {
        format!("exit {}\nstdout:\n{}\nstderr:\n{}", self.code, self.stdout, self.stderr)
    }
}

/// Largest number of intervals overlapping at any instant (ends sort before starts at the same
/// instant: a host confirmed back frees its slot).
pub fn max_overlap(intervals: &[(u64, u64)]) -> usize {
    let mut points: Vec<(u64, i32)> = intervals.iter().flat_map(|&(a, b)| [(a, 1), (b, -1)]).collect();
    points.sort_by_key(|&(t, d)| (t, d));
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in points {
        now += d;
        max = max.max(now);
    }
    max as usize
}

/// Waits until the journal at `path` holds `count` dispatched records.
/// Each `dispatching` record of a reboot journal: (host, at_ms).
pub fn dispatches(journal: &Path) -> Vec<(String, u64)> {
    use fleetboot_core::journal::Entry;
    let (records, _) = fleetboot::adapters::journal::load(journal).unwrap();
    records
        .into_iter()
        .filter_map(|r| match r.entry {
            Entry::Dispatching { host, .. } => Some((host, r.at_ms)),
            _ => None,
        })
        .collect()
}

/// How many reboots a reboot journal sent each host.
pub fn dispatch_counts(journal: &Path) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for (host, _) in dispatches(journal) {
        *counts.entry(host).or_insert(0) += 1;
    }
    counts
}

pub fn wait_for_dispatches(path: &Path, count: usize, limit: std::time::Duration) {
    let start = std::time::Instant::now();
    while std::fs::read_to_string(path).unwrap_or_default().matches("\"event\":\"dispatched\"").count() < count {
        assert!(start.elapsed() < limit, "fewer than {count} reboots dispatched within {limit:?} ({})", path.display());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
