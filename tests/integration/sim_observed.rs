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
