//! Authentication and host-key files as OpenSSH users have them.

use std::process::{Command, Stdio};

use crate::common::{Fleet, Run, repo};

fn keygen(path: &std::path::Path, kind: &[&str]) {
    let mut args = vec!["-q", "-N", "", "-f", path.to_str().unwrap()];
    args.extend_from_slice(kind);
    assert!(Command::new("ssh-keygen").args(&args).status().unwrap().success());
}

fn authorize(fleet: &Fleet, public: &std::path::Path) {
    let mut keys = std::fs::read_to_string(fleet.path("authorized_keys")).unwrap();
    keys.push_str(&std::fs::read_to_string(public).unwrap());
    std::fs::write(fleet.path("authorized_keys"), keys).unwrap();
}

fn exec_with(fleet: &Fleet, identity: Option<&std::path::Path>, known_hosts: &std::path::Path, agent: Option<&str>) -> Run {
    let (hosts, user) = (fleet.path("hosts.txt"), fleet.user.as_str());
    let mut args = vec!["exec", "--hosts-file", hosts.to_str().unwrap(), "--user", user, "--known-hosts", known_hosts.to_str().unwrap()];
    if let Some(identity) = identity {
        args.extend(["--identity", identity.to_str().unwrap()]);
    }
    args.extend(["--", "echo ok"]);
    let mut cmd = fleet.fleetboot(&args);
    if let Some(socket) = agent {
        cmd.env("SSH_AUTH_SOCK", socket);
    }
    Run::from(cmd.output().unwrap())
}

#[test]
fn ecdsa_and_rsa_identities_authenticate() {
    let fleet = Fleet::up(2);
    for (name, kind) in [("id_ecdsa", vec!["-t", "ecdsa", "-b", "256"]), ("id_rsa", vec!["-t", "rsa", "-b", "2048"])] {
        let key = fleet.path(name);
        keygen(&key, &kind);
        authorize(&fleet, &key.with_extension("pub"));
        let run = exec_with(&fleet, Some(&key), &fleet.path("known_hosts"), None);
        assert_eq!(run.code, 0, "{name}: {}", run.debug());
        assert!(run.stdout.contains("h001,h002 (2)"), "{name}: {}", run.stdout);
    }
}

#[test]
fn hashed_known_hosts_from_ssh_keygen_are_understood() {
    let fleet = Fleet::up(2);
    let known = fleet.path("known_hosts");
    assert!(Command::new("ssh-keygen").args(["-H", "-f", known.to_str().unwrap()]).stderr(Stdio::null()).status().unwrap().success());
    let text = std::fs::read_to_string(&known).unwrap();
    assert!(text.lines().all(|l| l.starts_with("|1|")), "{text}");
    let run = exec_with(&fleet, Some(&fleet.path("id_ed25519")), &known, None);
    assert_eq!(run.code, 0, "{}", run.debug());
}

struct Agent {
    pid: u32,
    socket: String,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
    }
}

#[test]
fn ssh_agent_is_used_when_no_identity_is_given() {
    let fleet = Fleet::up(1);
    let socket = fleet.path("agent.sock").to_str().unwrap().to_owned();
    let out = Command::new("ssh-agent").args(["-a", &socket, "-s"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let pid: u32 = text.split("SSH_AGENT_PID=").nth(1).unwrap().split(';').next().unwrap().parse().unwrap();
    let agent = Agent { pid, socket };
    let added =
        Command::new("ssh-add").arg(fleet.path("id_ed25519")).env("SSH_AUTH_SOCK", &agent.socket).stderr(Stdio::null()).status().unwrap();
    assert!(added.success());
    let run = exec_with(&fleet, None, &fleet.path("known_hosts"), Some(&agent.socket));
    assert_eq!(run.code, 0, "{}", run.debug());
    assert!(run.stdout.contains("ok"), "{}", run.stdout);
}

/// Restarts one node's sshd (started by this test's fleet) so it reads its config again; it
/// runs as the fleet's unprivileged user again, its new files handed to that user.
fn restart_sshd(fleet: &Fleet, name: &str) {
    let node = fleet.node_dir(name);
    let pid = std::fs::read_to_string(node.join("sshd.pid")).unwrap().trim().to_owned();
    assert!(Command::new("kill").arg(&pid).status().unwrap().success());
    while Command::new("kill").args(["-0", &pid]).stderr(Stdio::null()).status().unwrap().success() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let started =
        Command::new(repo().join("scripts/fake-fleet.sh")).args(["start", fleet.dir.path().to_str().unwrap(), name]).status().unwrap();
    assert!(started.success(), "fake-fleet start {name}");
    let index: usize = name.trim_start_matches('h').parse().unwrap();
    let addr = format!("{}.{index}:{}", fleet.net, fleet.port);
    while std::net::TcpStream::connect(&addr).is_err() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_host_known_only_by_its_ecdsa_or_rsa_key_is_verified_against_that_key() {
    let fleet = Fleet::up(2);
    let mut known = String::new();
    for (index, (name, kind)) in [("h001", vec!["-t", "ecdsa", "-b", "256"]), ("h002", vec!["-t", "rsa", "-b", "2048"])].iter().enumerate()
    {
        // The node has its Ed25519 key and one more; known_hosts records only the other one.
        let key = fleet.node_dir(name).join("ssh_host_other_key");
        keygen(&key, kind);
        let config = fleet.node_dir(name).join("sshd_config");
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str(&format!("HostKey {}\n", key.display()));
        std::fs::write(&config, text).unwrap();
        restart_sshd(&fleet, name);
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        let public: Vec<&str> = public.split_whitespace().take(2).collect();
        known.push_str(&format!("[{}.{}]:{} {}\n", fleet.net, index + 1, fleet.port, public.join(" ")));
    }
    let known_path = fleet.path("known_hosts_other_types");
    std::fs::write(&known_path, &known).unwrap();
    let run = exec_with(&fleet, Some(&fleet.path("id_ed25519")), &known_path, None);
    assert_eq!(run.code, 0, "{}", run.debug());
    assert!(run.stdout.contains("h001,h002 (2)"), "{}", run.stdout);
    assert_eq!(std::fs::read_to_string(&known_path).unwrap(), known, "nothing recorded: both keys were known");
}

#[test]
fn accept_new_hashes_into_a_hashed_file_and_creates_dot_ssh_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let fleet = Fleet::up(2);
    // A hashed file (HashKnownHosts) that knows h001 only.
    let known = fleet.path("hashed_known_hosts");
    let first = std::fs::read_to_string(fleet.path("known_hosts")).unwrap().lines().next().unwrap().to_owned();
    std::fs::write(&known, format!("{first}\n")).unwrap();
    assert!(Command::new("ssh-keygen").args(["-H", "-f", known.to_str().unwrap()]).stderr(Stdio::null()).status().unwrap().success());
    let hosts = fleet.path("hosts.txt");
    let policy = ["--host-key-policy", "accept-new", "--", "echo ok"];
    let (identity, user) = (fleet.path("id_ed25519"), fleet.user.as_str());
    let mut args = vec!["exec", "--hosts-file", hosts.to_str().unwrap(), "--user", user, "-i", identity.to_str().unwrap()];
    let mut hashed = args.clone();
    hashed.extend(["--known-hosts", known.to_str().unwrap()]);
    hashed.extend(policy);
    let run = Run::from(fleet.fleetboot(&hashed).output().unwrap());
    assert_eq!(run.code, 0, "{}", run.debug());
    let text = std::fs::read_to_string(&known).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.lines().all(|l| l.starts_with("|1|")) && !text.contains(&fleet.net), "no host name in the clear: {text}");
    // OpenSSH itself finds the new line.
    let name = format!("[{}.2]:{}", fleet.net, fleet.port);
    let found = Command::new("ssh-keygen").args(["-F", &name, "-f", known.to_str().unwrap()]).output().unwrap();
    assert!(found.status.success(), "ssh-keygen -F {name} finds the recorded key");

    // The default ~/.ssh/known_hosts in a home without ~/.ssh: created owner-only.
    assert!(!fleet.path(".ssh").exists());
    args.extend(policy);
    let run = Run::from(fleet.fleetboot(&args).output().unwrap());
    assert_eq!(run.code, 0, "{}", run.debug());
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&fleet.path(".ssh")), 0o700);
    assert_eq!(std::fs::read_to_string(fleet.path(".ssh/known_hosts")).unwrap().lines().count(), 2);
}

#[test]
fn command_output_past_the_limit_is_a_clear_error_and_small_output_is_kept() {
    let fleet = Fleet::up(1);
    let hosts = fleet.path("hosts.txt");
    let (identity, user) = (fleet.path("id_ed25519"), fleet.user.as_str());
    let base = ["exec", "--hosts-file", hosts.to_str().unwrap(), "--user", user, "-i", identity.to_str().unwrap()];
    let known = fleet.path("known_hosts");
    let mut args = base.to_vec();
    args.extend(["--known-hosts", known.to_str().unwrap(), "--", "head -c 3000000 /dev/zero | tr '\\0' x"]);
    let run = Run::from(fleet.fleetboot(&args).output().unwrap());
    assert_ne!(run.code, 0, "{}", run.debug());
    assert!(run.stdout.contains("more than 1024 KiB of output"), "{}", run.debug());
    assert!(run.stdout.len() < 100_000, "the output itself is not shown: {} bytes", run.stdout.len());
    let mut args = base.to_vec();
    args.extend(["--known-hosts", known.to_str().unwrap(), "--", "head -c 1000 /dev/zero | tr '\\0' x"]);
    let run = Run::from(fleet.fleetboot(&args).output().unwrap());
    assert_eq!(run.code, 0, "{}", run.debug());
    assert!(run.stdout.contains(&"x".repeat(1000)), "{}", run.debug());
}
