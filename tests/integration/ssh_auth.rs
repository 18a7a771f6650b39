//! Authentication and host-key files as OpenSSH users have them.

use std::process::{Command, Stdio};

use crate::common::{Fleet, Run};

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
    let hosts = fleet.path("hosts.txt");
    let mut args = vec!["exec", "--hosts-file", hosts.to_str().unwrap(), "--user", "root", "--known-hosts", known_hosts.to_str().unwrap()];
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
