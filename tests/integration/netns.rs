//! Hosts whose packets vanish. These run inside a private network namespace (`unshare -n`)
//! with iptables DROP rules on 127.x addresses, so nothing can leave the machine.

use std::process::Command;

use crate::common::{Run, fleetboot_bin, free_port, repo};

/// Stops the fleet by PID even when the test fails (PIDs are the same in every net namespace).
struct FleetDir(tempfile::TempDir);

impl Drop for FleetDir {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/fake-fleet.sh")).args(["down", self.0.path().to_str().unwrap()]).status();
    }
}

#[test]
fn a_host_that_drops_packets_fails_by_timeout_and_the_rest_reboot() {
    let dir = FleetDir(tempfile::Builder::new().prefix("fleetboot-netns-").tempdir().unwrap());
    let d = dir.0.path().to_str().unwrap().to_owned();
    let port = free_port();
    let script = format!(
        r#"set -e
ip link set lo up
trap '{fleet} down {d}' EXIT
{fleet} up {d} 3 {port} 127.0.9 >/dev/null
iptables -A INPUT -d 127.0.9.3 -j DROP
for n in {d}/nodes/*; do echo 1 > $n/reboot_delay; echo 1 > $n/down_time; done
set +e
HOME={d} {bin} reboot --hosts-file {d}/hosts.txt --user "$(cat {d}/user)" --identity {d}/id_ed25519 \
  --known-hosts {d}/known_hosts --state-dir {d}/state --concurrency 3 --max-failures 1 \
  --connect-timeout 1s --connect-attempts 2 --poll-interval 200ms --output json
"#,
        fleet = repo().join("scripts/fake-fleet.sh").display(),
        bin = fleetboot_bin(),
    );
    let out = Command::new("unshare").args(["-n", "bash", "-c", &script]).env_remove("SSH_AUTH_SOCK").output().unwrap();
    let run = Run::from(out);
    assert_eq!(run.code, 3, "{}", run.debug());
    let outcomes = run.outcomes();
    assert_eq!(outcomes["h003"].0, "failed");
    assert!(outcomes["h003"].1.contains("no TCP answer from 127.0.9.3"), "{outcomes:?}");
    assert_eq!(outcomes["h001"].0, "rebooted");
    assert_eq!(outcomes["h002"].0, "rebooted");
}
