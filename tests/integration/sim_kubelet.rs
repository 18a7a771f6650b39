//! The simulation's kubelets run the pods a client binds to a node (an `oc debug node/NAME`
//! pod): judged by kubectl alone, which waits for the pod's Ready condition and execs into it;
//! `chroot /host` runs on that node.

use crate::common::sim::Sim;

#[test]
fn a_pod_bound_to_a_node_runs_there_and_kubectl_execs_into_it_under_chroot_host() {
    let sim = Sim::start(0, 2);
    let manifest = sim.path("debug-pod.json");
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "worker-1-debug", "namespace": "default"},
        "spec": {
            "nodeName": "worker-1", "hostPID": true, "restartPolicy": "Never",
            "tolerations": [{"operator": "Exists"}],
            "containers": [{"name": "debug", "image": "registry.redhat.io/rhel9/support-tools", "command": ["sleep", "infinity"],
                "securityContext": {"privileged": true}, "volumeMounts": [{"name": "host", "mountPath": "/host"}]}],
            "volumes": [{"name": "host", "hostPath": {"path": "/"}}],
        },
    });
    std::fs::write(&manifest, pod.to_string()).unwrap();
    sim.kubectl_ok(&["create", "--validate=false", "-f", manifest.to_str().unwrap()]);
    sim.kubectl_ok(&["wait", "--for=condition=Ready", "pod/worker-1-debug", "-n", "default", "--timeout=60s"]);
    let phase = sim.kubectl_ok(&["get", "pod", "worker-1-debug", "-n", "default", "-o", "jsonpath={.status.phase}"]);
    assert_eq!(phase.trim(), "Running");
    let boot_id =
        sim.kubectl_ok(&["exec", "-n", "default", "worker-1-debug", "--", "chroot", "/host", "cat", "/proc/sys/kernel/random/boot_id"]);
    let reported = sim.kubectl_ok(&["get", "node", "worker-1", "-o", "jsonpath={.status.nodeInfo.bootID}"]);
    assert_eq!(boot_id.trim(), reported.trim(), "the boot ID of the node the pod is bound to");
    let hostname = sim.kubectl_ok(&["exec", "-n", "default", "worker-1-debug", "--", "chroot", "/host", "hostname"]);
    assert_eq!(hostname.trim(), "worker-1");
    // A line for the host's shell is read as an SSH command is.
    let shell = sim.kubectl_ok(&["exec", "-n", "default", "worker-1-debug", "--", "chroot", "/host", "/bin/sh", "-c", "hostname"]);
    assert_eq!(shell.trim(), "worker-1");
    sim.kubectl_ok(&["delete", "pod", "worker-1-debug", "-n", "default", "--grace-period=0"]);
    assert!(!sim.kubectl(&["get", "pod", "worker-1-debug", "-n", "default"]).0, "deleted");
}
