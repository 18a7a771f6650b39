//! `pods/exec` on the simulated cluster, judged by kubectl (an independent client): the
//! machine-config daemon's pod runs `chroot /rootfs CMD` on its node, the same commands and the
//! same node state its SSH server answers.

use crate::common::sim::Sim;

const MCO: &str = "openshift-machine-config-operator";

fn sim_node(sim: &Sim, name: &str) -> serde_json::Value {
    let nodes: serde_json::Value = serde_json::from_str(&sim.control("GET", "nodes", "")).unwrap();
    nodes.as_array().unwrap().iter().find(|n| n["name"] == name).cloned().unwrap()
}

#[test]
fn kubectl_exec_reads_the_boot_id_through_the_daemon_pod() {
    let sim = Sim::start(1, 2);
    let pod = sim.daemon_pod("worker-1");
    let out = sim.kubectl_ok(&[
        "exec",
        "-n",
        MCO,
        &pod,
        "-c",
        "machine-config-daemon",
        "--",
        "chroot",
        "/rootfs",
        "cat",
        "/proc/sys/kernel/random/boot_id",
    ]);
    let node = sim_node(&sim, "worker-1");
    assert_eq!(out.trim(), node["bootID"].as_str().unwrap());
    // The same ID the Node reports, and the one the other nodes do not have.
    let reported = sim.kubectl_ok(&["get", "node", "worker-1", "-o", "jsonpath={.status.nodeInfo.bootID}"]);
    assert_eq!(out.trim(), reported.trim());
    assert_ne!(out.trim(), sim_node(&sim, "worker-0")["bootID"].as_str().unwrap());
    // The DaemonSet's default container is the daemon: no -c needed.
    let again = sim.kubectl_ok(&["exec", "-n", MCO, &pod, "--", "chroot", "/rootfs", "hostname"]);
    assert_eq!(again.trim(), "worker-1");
}

#[test]
fn kubectl_exec_returns_the_commands_exit_code_and_the_apis_refusals() {
    let sim = Sim::start(1, 1);
    let pod = sim.daemon_pod("worker-0");
    let exec = |args: &[&str]| {
        let mut full = vec!["exec", "-n", MCO, &pod, "-c", "machine-config-daemon", "--"];
        full.extend_from_slice(args);
        let output = std::process::Command::new("kubectl").args(&full).env("KUBECONFIG", sim.path("kubeconfig")).output().unwrap();
        (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let (code, err) = exec(&["chroot", "/rootfs", "false"]);
    assert_eq!(code, Some(1), "{err}");
    let (code, err) = exec(&["chroot", "/rootfs", "no-such-command"]);
    assert_eq!(code, Some(127), "{err}");
    assert!(err.contains("no-such-command: command not found"), "{err}");

    // Absent pod, absent container.
    let (ok, _, err) = sim.kubectl(&["exec", "-n", MCO, "machine-config-daemon-nope", "--", "true"]);
    assert!(!ok && err.contains(r#"pods "machine-config-daemon-nope" not found"#), "{err}");
    let (ok, _, err) = sim.kubectl(&["exec", "-n", MCO, &pod, "-c", "nope", "--", "true"]);
    assert!(!ok && err.contains(&format!("container nope is not valid for pod {pod}")), "{err}");

    // Forbidden in the namespace: the real API's message, and nothing ran.
    let before = sim_node(&sim, "worker-0");
    sim.control("POST", "exec-forbidden", &format!(r#"{{"namespace":"{MCO}","user":"alice"}}"#));
    let (code, err) = exec(&["chroot", "/rootfs", "shutdown", "-r", "+1"]);
    assert_ne!(code, Some(0));
    assert!(
        err.contains(&format!(
            r#"pods "{pod}" is forbidden: User "alice" cannot create resource "pods/exec" in API group "" in the namespace "{MCO}""#
        )),
        "{err}"
    );
    assert_eq!(sim_node(&sim, "worker-0")["history"], before["history"], "a forbidden exec changed the node");
    sim.control("POST", "exec-forbidden", &format!(r#"{{"namespace":"{MCO}","forbidden":false}}"#));

    // Allowed again: the documents' reboot command schedules the node's reboot, as over SSH.
    let (code, err) = exec(&["chroot", "/rootfs", "shutdown", "-r", "+1"]);
    assert_eq!(code, Some(0), "{err}");
    let history = sim_node(&sim, "worker-0")["history"].to_string();
    assert!(history.contains("reboot-requested"), "{history}");
}
