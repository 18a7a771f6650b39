//! `fleetboot sim` as a user meets it: kubectl against its API, fleetboot against its nodes.

use std::time::{Duration, Instant};

use crate::common::Run;
use crate::common::sim::Sim;

const IPS: &str = r#"jsonpath={.items[*].status.addresses[?(@.type=="InternalIP")].address}"#;
const BOOT_IDS: &str = "jsonpath={range .items[*]}{.metadata.name}={.status.nodeInfo.bootID}{\"\\n\"}{end}";

#[test]
fn kubectl_reads_the_simulated_cluster() {
    let sim = Sim::start(3, 2);
    let nodes = sim.kubectl_ok(&["get", "nodes"]);
    assert_eq!(nodes.lines().count(), 6, "{nodes}");
    assert!(
        nodes.lines().nth(1).unwrap().contains("master-0") && nodes.contains("Ready") && nodes.contains("control-plane,master"),
        "{nodes}"
    );
    // The document's jsonpath gives the nodes' SSH addresses, the same the host file holds.
    let ips = sim.kubectl_ok(&["get", "nodes", "-o", IPS]);
    let hosts = std::fs::read_to_string(sim.path("hosts.txt")).unwrap();
    let from_hosts: Vec<&str> = hosts.lines().map(|l| l.split_whitespace().nth(1).unwrap().split(':').next().unwrap()).collect();
    assert_eq!(ips.split_whitespace().collect::<Vec<_>>(), from_hosts);

    let pools = sim.kubectl_ok(&["get", "mcp"]);
    assert!(pools.contains("master") && pools.contains("worker") && pools.contains("rendered-worker-"), "{pools}");
    let network = sim.kubectl_ok(&["get", "network.config.openshift.io", "cluster", "-o", "yaml"]);
    assert!(network.contains("networkType: OpenShiftSDN"), "{network}");
    let (ok, out, err) = sim.kubectl(&["get", "bmh", "-A"]);
    assert!(ok && (out.is_empty() || out.contains("NAME")), "{out}{err}");
    let workers = sim.kubectl_ok(&["get", "nodes", "-l", "node-role.kubernetes.io/worker", "-o", "name"]);
    assert_eq!(workers.lines().collect::<Vec<_>>(), ["node/worker-0", "node/worker-1"]);
    let (ok, _, err) = sim.kubectl(&["get", "node", "nope"]);
    assert!(!ok && err.contains(r#"nodes "nope" not found"#), "{err}");
    let status = sim.kubectl_ok(&["-n", "openshift-multus", "rollout", "status", "daemonset/multus", "--timeout=10s"]);
    assert!(status.contains("successfully rolled out"), "{status}");
    let log = sim.kubectl_ok(&["-n", "openshift-machine-config-operator", "logs", "-l", "k8s-app=machine-config-daemon", "--tail=1"]);
    assert!(log.contains("is up to date"), "{log}");
    // kubectl names the default container itself; the API does not: a two-container pod's log
    // without `container` is refused, as the real API refuses it.
    let pod =
        sim.kubectl_ok(&["-n", "openshift-machine-config-operator", "get", "pods", "-l", "k8s-app=machine-config-daemon", "-o", "name"]);
    let pod = pod.lines().next().unwrap().trim_start_matches("pod/").to_owned();
    let path = format!("/api/v1/namespaces/openshift-machine-config-operator/pods/{pod}/log");
    let (code, body) = sim.raw("GET", &path, "application/json", b"");
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("a container name must be specified for pod") && body.contains("machine-config-daemon kube-rbac-proxy"),
        "{body}"
    );
    let (code, body) = sim.raw("GET", &format!("{path}?container=machine-config-daemon&tailLines=1"), "application/json", b"");
    assert_eq!(code, 200, "{body}");
}

#[test]
fn kubectl_writes_with_every_patch_type_and_conflicts_are_reported() {
    let sim = Sim::start(1, 1);
    sim.kubectl_ok(&["patch", "mcp", "worker", "--type", "merge", "-p", r#"{"spec":{"paused":true}}"#]);
    assert_eq!(sim.kubectl_ok(&["get", "mcp", "worker", "-o", "jsonpath={.spec.paused}"]), "true");
    sim.kubectl_ok(&["cordon", "worker-0"]);
    assert!(sim.kubectl_ok(&["get", "node", "worker-0"]).contains("Ready,SchedulingDisabled"));
    sim.kubectl_ok(&["uncordon", "worker-0"]);
    sim.kubectl_ok(&["annotate", "network.operator.openshift.io", "cluster", "networkoperator.openshift.io/network-migration="]);
    let annotations = sim.kubectl_ok(&["get", "network.operator.openshift.io", "cluster", "-o", "jsonpath={.metadata.annotations}"]);
    assert!(annotations.contains("network-migration"), "{annotations}");
    sim.kubectl_ok(&[
        "patch",
        "network.config.openshift.io",
        "cluster",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/networkType","value":"OVNKubernetes"}]"#,
    ]);
    assert_eq!(sim.kubectl_ok(&["get", "network.config.openshift.io", "cluster", "-o", "jsonpath={.spec.networkType}"]), "OVNKubernetes");
    // Status is the controllers' to write: a patch of the main resource leaves it alone.
    assert_eq!(sim.kubectl_ok(&["get", "network.config.openshift.io", "cluster", "-o", "jsonpath={.status.networkType}"]), "OpenShiftSDN");

    // A stale resourceVersion is a Conflict.
    let yaml = sim.kubectl_ok(&["get", "mcp", "master", "-o", "yaml"]);
    sim.kubectl_ok(&["label", "mcp", "master", "touched=yes"]);
    let stale = sim.path("stale.yaml");
    std::fs::write(&stale, yaml).unwrap();
    // The simulation serves no OpenAPI document, so kubectl's client-side validation is off.
    let (ok, _, err) = sim.kubectl(&["replace", "--validate=false", "-f", stale.to_str().unwrap()]);
    assert!(!ok && err.contains("the object has been modified"), "{err}");

    sim.kubectl_ok(&["delete", "namespace", "openshift-sdn", "--wait=false"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (ok, _, err) = sim.kubectl(&["get", "namespace", "openshift-sdn"]);
        if !ok && err.contains("not found") {
            break;
        }
        assert!(Instant::now() < deadline, "namespace still there");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn fleetboot_reboots_the_simulated_nodes_and_the_api_shows_new_boot_ids() {
    let sim = Sim::start(1, 3);
    let before = sim.kubectl_ok(&["get", "nodes", "-o", BOOT_IDS]);
    sim.control("POST", "nodes/worker-2/faults", r#"{"refuse_sudo": true}"#);
    let run = Run::from(
        sim.fleetboot(&["reboot", "--concurrency", "2", "--max-failures", "1", "--poll-interval", "200ms", "--output", "json"])
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 3, "{}", run.debug());
    let outcomes = run.outcomes();
    assert!(outcomes["worker-2"].1.contains("a password is required"), "{outcomes:?}");
    for name in ["master-0", "worker-0", "worker-1"] {
        assert_eq!(outcomes[name].0, "rebooted", "{outcomes:?}");
    }
    // The API agrees: new boot IDs, Ready again (the kubelet reports a moment after SSH is back).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let after = sim.kubectl_ok(&["get", "nodes", "-o", BOOT_IDS]);
        let ready = sim.kubectl_ok(&["get", "nodes"]);
        let changed: Vec<bool> = before.lines().zip(after.lines()).map(|(b, a)| b != a).collect();
        if changed == [true, true, true, false] && !ready.contains("NotReady") {
            break;
        }
        assert!(Instant::now() < deadline, "API did not converge:\n{before}\n{after}\n{ready}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The nodes' own history: one reboot request each, none for the refusing node.
    let history = sim.control("GET", "nodes", "");
    let nodes: serde_json::Value = serde_json::from_str(&history).unwrap();
    for node in nodes.as_array().unwrap() {
        let requests = node["history"].as_array().unwrap().iter().filter(|e| e[1] == "reboot-requested").count();
        let expected = if node["name"] == "worker-2" { 0 } else { 1 };
        assert_eq!(requests, expected, "{node}");
    }
}

#[test]
fn simulated_faults_reach_fleetboot() {
    let sim = Sim::start(0, 3);
    sim.control("POST", "nodes/worker-0/faults", r#"{"never_returns": true}"#);
    sim.control("POST", "nodes/worker-1/faults", r#"{"same_boot_id": true}"#);
    sim.control("POST", "nodes/worker-2/faults", r#"{"new_host_key_after_reboot": true}"#);
    let run = Run::from(
        // Host-list mode: the faults must reach fleetboot's SSH proof itself (under the cluster's
        // rules the BMC fallback would step in for the node that never returns).
        sim.fleetboot(&[
            "reboot",
            "--no-cluster",
            "--concurrency",
            "3",
            "--max-failures",
            "3",
            "--reboot-timeout",
            "6s",
            "--poll-interval",
            "200ms",
            "--output",
            "json",
        ])
        .output()
        .unwrap(),
    );
    assert_eq!(run.code, 3, "{}", run.debug());
    let outcomes = run.outcomes();
    assert!(outcomes["worker-0"].1.contains("did not come back"), "{outcomes:?}");
    assert!(outcomes["worker-1"].1.contains("reboot not observed"), "{outcomes:?}");
    assert!(outcomes["worker-2"].1.contains("changed during this run"), "{outcomes:?}");
}

/// Malformed requests get a 400 (or 413) Kubernetes Status naming the problem, and the
/// simulation keeps serving: its store is not poisoned by a handler that panicked.
#[test]
fn malformed_requests_are_refused_with_a_status_and_the_simulation_keeps_serving() {
    let sim = Sim::start(0, 1);
    let node = "/api/v1/nodes/worker-0";
    let pool = "/apis/machineconfiguration.openshift.io/v1/machineconfigpools/worker";
    let big = format!(r#"{{"metadata": {{"annotations": {{"x": "{}"}}}}}}"#, "y".repeat(4 * 1024 * 1024));
    /// (method, path, content type, body, expected code, what the Status message says)
    type Case<'a> = (&'a str, &'a str, &'a str, &'a [u8], u16, &'a str);
    let cases: &[Case] = &[
        ("PUT", node, "application/json", b"[1, 2]", 400, "must be a JSON object"),
        ("PUT", node, "application/json", br#""a string""#, 400, "must be a JSON object"),
        ("PUT", node, "application/json", br#"{"metadata": 5}"#, 400, "metadata must be a JSON object"),
        ("PUT", pool, "application/json", br#"{"metadata": {"name": "worker"}, "spec": []}"#, 400, "spec must be a JSON object"),
        ("PUT", node, "application/json", b"{not json", 400, "not JSON"),
        ("POST", "/api/v1/nodes", "application/json", b"17", 400, "must be a JSON object"),
        ("PATCH", node, "application/merge-patch+json", b"[1]", 400, "merge patch must be a JSON object"),
        ("PATCH", pool, "application/merge-patch+json", br#"{"status": "x"}"#, 400, "status must be a JSON object"),
        ("PATCH", node, "application/json-patch+json", br#"{"op": "add"}"#, 400, "JSON array of operations"),
        ("PATCH", node, "application/json-patch+json", br#"[{"op": "replace", "path": "", "value": 3}]"#, 400, "must be a JSON object"),
        ("PATCH", node, "application/merge-patch+json", br#"{"metadata": {"labels": {"a": 1}}}"#, 400, "metadata.labels"),
        ("PATCH", node, "application/merge-patch+json", big.as_bytes(), 413, "Request entity too large"),
        ("POST", "/sim/v1/outage", "application/json", br#"{"seconds": -1}"#, 400, "an outage of -1"),
        ("POST", "/sim/v1/outage", "application/json", br#"{"seconds": 1e300}"#, 400, "expected 0 to 3600 seconds"),
        ("POST", "/sim/v1/nodes/worker-0/faults", "application/json", b"{oops", 400, "not JSON"),
        ("POST", "/sim/v1/nodes/worker-0/bmc", "application/json", br#"{"after_reset": "explode"}"#, 400, "unknown after_reset fault"),
    ];
    for (method, path, content_type, body, code, says) in cases {
        let (got, answer) = sim.raw(method, path, content_type, body);
        let what = format!("{method} {path} {}", String::from_utf8_lossy(&body[..body.len().min(60)]));
        assert_eq!(got, *code, "{what}: {answer}");
        let status: serde_json::Value = serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{what}: not a Status ({e}): {answer}"));
        assert_eq!(status["kind"], "Status", "{what}: {status}");
        assert_eq!(status["code"], *code, "{what}: {status}");
        assert!(status["message"].as_str().unwrap_or_default().contains(says), "{what}: {status}");
    }
    // Still serving, reads and writes, to kubectl as before.
    let nodes = sim.kubectl_ok(&["get", "nodes"]);
    assert!(nodes.contains("worker-0") && nodes.contains("Ready"), "{nodes}");
    sim.kubectl_ok(&["label", "node", "worker-0", "checked=yes"]);
    let labels = sim.kubectl_ok(&["get", "node", "worker-0", "-o", "jsonpath={.metadata.labels.checked}"]);
    assert_eq!(labels, "yes");
    sim.kubectl_ok(&["patch", "mcp", "worker", "--type", "merge", "-p", r#"{"spec":{"paused":true}}"#]);
}

#[test]
fn a_bad_net_is_a_clear_error_before_anything_starts() {
    for net in ["127.1", "127.1.300", "localhost.1.2", "127.1.2.3"] {
        let out = std::process::Command::new(crate::common::fleetboot_bin())
            .args(["sim", "--net", net, "--workers", "1", "--masters", "0"])
            .env("HOME", std::env::temp_dir())
            .output()
            .unwrap();
        let run = Run::from(out);
        assert_eq!(run.code, 2, "{net}: {}", run.debug());
        assert!(run.stderr.contains("--net") && run.stderr.contains(&format!("\"{net}\" is not 127.A.B")), "{net}: {}", run.debug());
        assert!(!run.stderr.contains("panicked"), "{}", run.debug());
    }
}
