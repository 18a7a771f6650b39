//! OpenShift SDN's egress firewalls, egress IPs and multicast through a migration: the
//! simulated network operator converts them from 4.12 (at phase 1 up to 4.15, after the switch
//! on 4.16), and fleetboot's verify checks every one has its OVN-Kubernetes counterpart, or says
//! what the admin must recreate by hand. The objects are made with kubectl, as an admin's would be.

use crate::common::Run;
use crate::common::sim::Sim;

/// `fleetboot migrate --etcd-backup-confirmed --poll-interval 300ms EXTRA --output plain`, run by the engine
/// in this process against the simulation started in the test (common/inproc.rs): stdout and
/// stderr are what its reporter rendered, and the error as the binary prints it.
fn migrate(sim: &Sim, extra: &[&str]) -> Run {
    let mut args = vec!["--etcd-backup-confirmed", "--poll-interval", "300ms"];
    args.extend(extra);
    sim.migrate_in_process(&args).to_run()
}

fn get(sim: &Sim, args: &[&str]) -> String {
    let (found, out, _) = sim.kubectl(args);
    if found { out.trim().to_owned() } else { "(not found)".into() }
}

/// A tenant namespace `shop` with an EgressNetworkPolicy, multicast and an egress IP hosted on
/// worker-0, as OpenShift SDN keeps them.
fn sdn_features(sim: &Sim) {
    let objects = sim.path("sdn-features.json");
    std::fs::write(
        &objects,
        serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"kubernetes.io/metadata.name": "shop"}}},
            {"apiVersion": "network.openshift.io/v1", "kind": "NetNamespace",
             "metadata": {"name": "shop", "annotations": {"netnamespace.network.openshift.io/multicast-enabled": "true"}},
             "netname": "shop", "netid": 4242, "egressIPs": ["198.51.100.50"]},
            {"apiVersion": "network.openshift.io/v1", "kind": "EgressNetworkPolicy", "metadata": {"name": "deny-all", "namespace": "shop"},
             "spec": {"egress": [{"type": "Allow", "to": {"dnsName": "example.com"}}, {"type": "Deny", "to": {"cidrSelector": "0.0.0.0/0"}}]}},
        ]})
        .to_string(),
    )
    .unwrap();
    sim.kubectl_ok(&["create", "--validate=false", "-f", objects.to_str().unwrap()]);
    sim.kubectl_ok(&[
        "patch",
        "hostsubnet",
        "worker-0",
        "--type",
        "merge",
        "-p",
        r#"{"egressCIDRs": ["198.51.100.0/24"], "egressIPs": ["198.51.100.50"]}"#,
    ]);
}

fn converts_and_verify_passes(version: &str) {
    let sim = Sim::in_process_with(1, 2, &["--openshift-version", version]);
    sdn_features(&sim);
    let run = migrate(&sim, &[]);
    assert_eq!(run.code, 0, "{}", run.debug());
    assert!(run.stdout.contains("egress firewalls, egress IPs and multicast carried over to the new network"), "{}", run.stdout);
    assert!(run.stdout.contains("every one has its counterpart"), "{}", run.stdout);
    // The simulated operator's work, read with kubectl.
    let firewall = get(&sim, &["get", "egressfirewall", "default", "-n", "shop", "-o", "jsonpath={.spec.egress[1].to.cidrSelector}"]);
    assert_eq!(firewall, "0.0.0.0/0");
    assert_eq!(
        get(&sim, &["get", "namespace", "shop", "-o", r#"jsonpath={.metadata.annotations.k8s\.ovn\.org/multicast-enabled}"#]),
        "true"
    );
    assert_eq!(get(&sim, &["get", "egressip", "egressip-shop", "-o", "jsonpath={.spec.egressIPs[0]}"]), "198.51.100.50");
    assert_eq!(get(&sim, &["get", "node", "worker-0", "-o", r#"jsonpath={.metadata.labels.k8s\.ovn\.org/egress-assignable}"#]), "");
    assert_eq!(get(&sim, &["get", "hostsubnet", "worker-0", "-o", "jsonpath={.egressIPs}"]), "");
}

#[test]
fn release_4_14_converts_the_features_at_phase_1_and_verify_finds_each() {
    converts_and_verify_passes("4.14.38");
}

#[test]
fn release_4_16_converts_the_features_after_the_switch_and_verify_finds_each() {
    converts_and_verify_passes("4.16.21");
}

#[test]
fn a_skipped_feature_is_left_and_listed_for_the_admin() {
    let sim = Sim::in_process_with(1, 2, &["--openshift-version", "4.14.38"]);
    sdn_features(&sim);
    let run = migrate(&sim, &["--skip-feature", "egress-firewall"]);
    assert_eq!(run.code, 0, "{}", run.debug());
    assert_eq!(get(&sim, &["get", "egressfirewall", "default", "-n", "shop", "-o", "name"]), "(not found)");
    assert!(
        run.stdout.contains(
            "skipped by spec.migration.features, recreate by hand: EgressNetworkPolicy shop/deny-all has no EgressFirewall shop/default"
        ),
        "{}",
        run.stdout
    );
    // The other two were converted.
    assert_eq!(get(&sim, &["get", "egressip", "egressip-shop", "-o", "jsonpath={.spec.egressIPs[0]}"]), "198.51.100.50");
}

#[test]
fn before_4_12_nothing_is_converted_and_verify_names_what_to_recreate() {
    let sim = Sim::in_process_with(1, 2, &["--openshift-version", "4.10.67"]);
    sdn_features(&sim);
    let run = migrate(&sim, &[]);
    assert_ne!(run.code, 0, "{}", run.debug());
    let all = format!("{}{}", run.stdout, run.stderr);
    for part in [
        "OpenShift 4.10 does not convert them (from 4.12 it does): recreate by hand",
        "EgressNetworkPolicy shop/deny-all has no EgressFirewall shop/default",
        "namespace shop lacks k8s.ovn.org/multicast-enabled=true",
        "egress IPs 198.51.100.50 of namespace shop are in no EgressIP",
    ] {
        assert!(all.contains(part), "{part}: {}", run.debug());
    }
    assert_eq!(get(&sim, &["get", "egressfirewall", "-A", "-o", "name"]), "");
    // The admin recreates the firewall, the egress IP and multicast; the resume's verify passes.
    let objects = sim.path("ovn-features.json");
    std::fs::write(
        &objects,
        serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "k8s.ovn.org/v1", "kind": "EgressFirewall", "metadata": {"name": "default", "namespace": "shop"},
             "spec": {"egress": [{"type": "Deny", "to": {"cidrSelector": "0.0.0.0/0"}}]}},
            {"apiVersion": "k8s.ovn.org/v1", "kind": "EgressIP", "metadata": {"name": "shop"},
             "spec": {"egressIPs": ["198.51.100.50"], "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shop"}}}},
        ]})
        .to_string(),
    )
    .unwrap();
    sim.kubectl_ok(&["create", "--validate=false", "-f", objects.to_str().unwrap()]);
    sim.kubectl_ok(&["annotate", "namespace", "shop", "k8s.ovn.org/multicast-enabled=true"]);
    sim.kubectl_ok(&["label", "node", "worker-0", "k8s.ovn.org/egress-assignable="]);
    let resumed = migrate(&sim, &["--resume"]);
    assert_eq!(resumed.code, 0, "{}", resumed.debug());
    assert!(resumed.stdout.contains("every one has its counterpart"), "{}", resumed.stdout);
}

#[test]
fn a_rollback_on_4_14_carries_the_features_back_to_openshift_sdn() {
    let sim = Sim::in_process_with(1, 2, &["--openshift-version", "4.14.38"]);
    sdn_features(&sim);
    assert_eq!(migrate(&sim, &[]).code, 0);
    assert_eq!(migrate(&sim, &["--cleanup"]).code, 0);
    let back = migrate(&sim, &["--to", "OpenShiftSDN"]);
    assert_eq!(back.code, 0, "{}", back.debug());
    assert!(back.stdout.contains("every one has its counterpart"), "{}", back.stdout);
    // Read with kubectl: the egress IP is back on its NetNamespace, the node's egress CIDRs on
    // its HostSubnet, multicast on the NetNamespace only, the policy still there.
    assert_eq!(get(&sim, &["get", "netnamespace", "shop", "-o", "jsonpath={.egressIPs[0]}"]), "198.51.100.50");
    assert_eq!(get(&sim, &["get", "hostsubnet", "worker-0", "-o", "jsonpath={.egressCIDRs[0]}"]), "198.51.100.0/24");
    assert_eq!(get(&sim, &["get", "namespace", "shop", "-o", r#"jsonpath={.metadata.annotations.k8s\.ovn\.org/multicast-enabled}"#]), "");
    assert_eq!(
        get(
            &sim,
            &[
                "get",
                "netnamespace",
                "shop",
                "-o",
                r#"jsonpath={.metadata.annotations.netnamespace\.network\.openshift\.io/multicast-enabled}"#
            ]
        ),
        "true"
    );
    assert_eq!(get(&sim, &["get", "egressnetworkpolicy", "-n", "shop", "-o", "name"]).lines().count(), 2, "deny-all and default");
}
