//! Status as the controllers write it, and the subresources kubectl uses, judged by kubectl.

use crate::common::sim::Sim;

/// The ClusterVersion reports the generation the cluster-version operator took up, so
/// `kubectl wait --for=jsonpath='{.status.observedGeneration}'=N` ends; the network operator's
/// config carries none, as the real operator writes none (see crates/sim/src/cvo.rs).
#[test]
fn cluster_version_observes_its_generation_and_the_network_operator_config_has_none() {
    let sim = Sim::start_with(1, 1, &["--workloads", "0"]);
    let get = |kind: &str, name: &str, path: &str| sim.kubectl_ok(&["get", kind, name, "-o", &format!("jsonpath={{{path}}}")]);
    assert_eq!(get("clusterversion", "version", ".metadata.generation"), "1");
    sim.kubectl_ok(&["patch", "clusterversion", "version", "--type", "merge", "-p", r#"{"spec":{"channel":"fast-4.14"}}"#]);
    assert_eq!(get("clusterversion", "version", ".metadata.generation"), "2");
    let (ok, out, err) = sim.kubectl(&["wait", "clusterversion/version", "--for=jsonpath={.status.observedGeneration}=2", "--timeout=60s"]);
    assert!(ok, "{out}{err}");
    sim.kubectl_ok(&["patch", "network.operator.openshift.io", "cluster", "--type", "merge", "-p", r#"{"spec":{"logLevel":"Debug"}}"#]);
    assert_eq!(get("network.operator.openshift.io", "cluster", ".metadata.generation"), "2");
    assert_eq!(get("network.operator.openshift.io", "cluster", ".status.observedGeneration"), "");
}

/// `kubectl scale` through the scale subresource (a patch, and a read and put back under
/// `--current-replicas`): the ReplicaSet follows, and so does the budget's status.
#[test]
fn kubectl_scale_moves_the_replica_set_and_the_budget_follows() {
    let sim = Sim::start(1, 3);
    let ns = ["-n", "sample-app"];
    let kubectl_ok = |args: &[&str]| sim.kubectl_ok(&[&ns[..], args].concat());
    let wait_for = |what: &str, args: &[&str], want: &str| {
        let start = std::time::Instant::now();
        loop {
            let got = kubectl_ok(args);
            if got == want {
                return;
            }
            assert!(start.elapsed() < std::time::Duration::from_secs(60), "{what}: {got:?}, not {want:?}");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    let budget =
        ["get", "pdb", "frontend-0", "-o", "jsonpath={.status.currentHealthy}/{.status.desiredHealthy}/{.status.disruptionsAllowed}"];
    // The default user workload on three workers: 3 replicas, minAvailable 2.
    wait_for("the budget before", &budget, "3/2/1");
    let out = kubectl_ok(&["scale", "deployment/frontend-0", "--replicas=1"]);
    assert_eq!(out.trim(), "deployment.apps/frontend-0 scaled");
    wait_for("the ReplicaSet follows", &["get", "rs", "-l", "app=frontend-0", "-o", "jsonpath={.items[0].spec.replicas}"], "1");
    wait_for("one pod left", &["get", "pods", "-l", "app=frontend-0", "-o", "jsonpath={.items[*].status.phase}"], "Running");
    wait_for("the budget after scaling down", &budget, "1/2/0");
    // A precondition that does not hold changes nothing.
    let (ok, out, err) = sim.kubectl(&[&ns[..], &["scale", "deployment/frontend-0", "--current-replicas=3", "--replicas=4"]].concat());
    assert!(!ok && err.contains("Expected replicas to be 3, was 1"), "{out}{err}");
    let out = kubectl_ok(&["scale", "deployment/frontend-0", "--current-replicas=1", "--replicas=4"]);
    assert_eq!(out.trim(), "deployment.apps/frontend-0 scaled");
    let (ok, out, err) = sim.kubectl(&[&ns[..], &["rollout", "status", "deployment/frontend-0", "--timeout=60s"]].concat());
    assert!(ok, "{out}{err}");
    wait_for("the budget after scaling up", &budget, "4/2/2");
    // The ReplicaSet's own scale subresource reads what its controller was given.
    let rs = kubectl_ok(&["get", "rs", "-l", "app=frontend-0", "-o", "name"]);
    let scale = sim.kubectl_ok(&[
        "get",
        "--raw",
        &format!("/apis/apps/v1/namespaces/sample-app/replicasets/{}/scale", rs.trim().trim_start_matches("replicaset.apps/")),
    ]);
    let scale: serde_json::Value = serde_json::from_str(&scale).unwrap();
    assert_eq!((scale["kind"].as_str(), scale["spec"]["replicas"].as_i64()), (Some("Scale"), Some(4)), "{scale}");
    assert!(scale["status"]["selector"].as_str().unwrap_or_default().contains("app=frontend-0"), "{scale}");
}
