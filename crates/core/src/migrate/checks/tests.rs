//! The migration checks' tests.

use super::*;
use serde_json::json;

fn healthy() -> ClusterSnapshot {
    let ok = json!([{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "False"}, {"type": "Degraded", "status": "False"}]);
    ClusterSnapshot {
        nodes: vec![("m0".into(), "True".into()), ("w0".into(), "True".into())],
        node_ips: vec!["192.0.2.10".into(), "192.0.2.11".into()],
        pools: vec![
            json!({"metadata": {"name": "worker"}, "spec": {"paused": false}, "status": {"machineCount": 1, "conditions": [{"type": "Degraded", "status": "False"}, {"type": "Updating", "status": "False"}]}}),
        ],
        operators: vec![json!({"metadata": {"name": "network"}, "status": {"conditions": ok}})],
        spec_network_type: "OpenShiftSDN".into(),
        status_network_type: "OpenShiftSDN".into(),
        network_config: json!({"spec": {"clusterNetwork": [{"cidr": "10.128.0.0/14"}], "serviceNetwork": ["172.30.0.0/16"]}}),
        network_operator: json!({"spec": {"defaultNetwork": {"type": "OpenShiftSDN", "openshiftSDNConfig": {"mode": "NetworkPolicy"}}}}),
        pods: vec![],
        netnamespaces: vec![],
        hostsubnets: vec![],
        egress_network_policies: vec![],
        ..Default::default()
    }
}

fn request(target: &str, backup: bool) -> PreflightRequest<'static> {
    static NONE: InternalSubnets = InternalSubnets { join: None, transit: None, masquerade: None };
    PreflightRequest {
        target: Box::leak(target.to_owned().into_boxed_str()),
        flow: Flow::TwoPhase,
        etcd_backup_confirmed: backup,
        rollback_after_failure: false,
        subnets: &NONE,
        release_minor: Some(14),
        geneve_port: None,
        vxlan_port: None,
    }
}

#[test]
fn preflight_names_every_reason_to_refuse() {
    assert_eq!(preflight(&healthy(), &request("OVNKubernetes", true)), Findings::default());
    let problems = preflight(&healthy(), &request("OVNKubernetes", false)).refusals;
    assert!(problems[0].starts_with("etcd-backup:") && problems[0].contains("--etcd-backup-confirmed"), "{problems:?}");
    let mut sick = healthy();
    sick.nodes[1].1 = "Unknown".into();
    sick.pools[0]["status"]["conditions"][0]["status"] = json!("True");
    sick.pools[0]["status"]["conditions"][1]["status"] = json!("True");
    sick.pools[0]["spec"]["paused"] = json!(true);
    sick.operators[0]["status"]["conditions"] = json!([{"type": "Available", "status": "False"}, {"type": "Progressing", "status": "True"},
        {"type": "Degraded", "status": "True", "message": "boom"}]);
    sick.spec_network_type = "OVNKubernetes".into();
    sick.network_operator["spec"]["defaultNetwork"]["openshiftSDNConfig"]["mode"] = json!("Multitenant");
    sick.network_operator["spec"]["migration"] = json!({"networkType": "OpenShiftSDN"});
    sick.network_config["spec"]["clusterNetwork"][0]["cidr"] = json!("100.64.0.0/14");
    sick.node_ips.push("100.88.0.7".into());
    let problems = preflight(&sick, &request("OVNKubernetes", true)).refusals.join("\n");
    for expected in [
        "nodes-ready: nodes not Ready: w0 (Ready=Unknown)",
        "worker is Degraded",
        "worker is Updating",
        "paused-pools: MachineConfigPool worker is paused with 1 machines",
        "ClusterOperator network is Degraded: boom",
        "ClusterOperator network is not Available",
        "ClusterOperator network is Progressing",
        "spec.networkType is \"OVNKubernetes\"",
        "sdn-mode: OpenShift SDN runs in Multitenant mode",
        "ovn-internal-ranges: clusterNetwork 100.64.0.0/14 overlaps OVN-Kubernetes' join subnet 100.64.0.0/16: move it with --v4-internal-subnet",
        "machine network (node address) 100.88.0.7 overlaps OVN-Kubernetes' transit switch subnet 100.88.0.0/16",
        "migration-set: Network.operator.openshift.io/cluster spec.migration.networkType is OpenShiftSDN",
    ] {
        assert!(problems.contains(expected), "{expected}: {problems}");
    }
    // Moved ranges no longer collide.
    let moved = InternalSubnets { join: Some("100.99.0.0/16".into()), transit: Some("100.100.0.0/16".into()), masquerade: None };
    assert!(range_collisions(&sick, &moved, Some(14)).is_empty(), "{:?}", range_collisions(&sick, &moved, Some(14)));
    // Before 4.14 only the join subnet is reserved: 100.88.0.7 collides with nothing.
    let unmoved = InternalSubnets::default();
    let old = range_collisions(&sick, &unmoved, Some(12));
    assert!(old.len() == 1 && old[0].contains("join subnet"), "{old:?}");
    // A join subnet the admin already moved in ovnKubernetesConfig counts as moved.
    sick.network_operator["spec"]["defaultNetwork"]["ovnKubernetesConfig"] = json!({"v4InternalSubnet": "100.99.0.0/16"});
    assert!(range_collisions(&sick, &unmoved, Some(12)).is_empty());
    // Rolling back a failed migration: health is a warning, the type may be either.
    let mut req = request("OpenShiftSDN", true);
    req.rollback_after_failure = true;
    let findings = preflight(&sick, &req);
    assert!(!findings.refusals.iter().any(|r| r.contains("nodes-ready") || r.contains("operators-healthy")), "{findings:?}");
    assert!(findings.warnings.iter().any(|w| w.contains("not a refusal")), "{findings:?}");
    // The rollback starts from OVNKubernetes.
    let mut ovn = healthy();
    ovn.spec_network_type = "OVNKubernetes".into();
    assert!(preflight(&ovn, &request("OpenShiftSDN", true)).refusals.is_empty());
}

#[test]
fn a_live_migration_refuses_every_offline_flow() {
    assert!(live_migration_signs(&healthy().network_config, &healthy().network_operator).is_empty());
    let mut annotated = healthy();
    annotated.network_config["metadata"] = json!({"annotations": {LIVE_MIGRATION_ANNOTATION: ""}});
    let mut conditioned = healthy();
    conditioned.network_config["status"] =
        json!({"conditions": [{"type": "NetworkTypeMigrationMTUReady", "status": "False", "reason": "MachineConfigPoolsUpdating"}]});
    let mut moded = healthy();
    moded.network_operator["spec"]["migration"] = json!({"networkType": "OVNKubernetes", "mode": "Live"});
    for (snapshot, sign) in [
        (&annotated, "annotation network.openshift.io/network-type-migration=\"\""),
        (
            &conditioned,
            "condition NetworkTypeMigrationMTUReady=False on Network.config.openshift.io/cluster (reason MachineConfigPoolsUpdating)",
        ),
        (&moded, "spec.migration.mode Live"),
    ] {
        for (target, flow, after_failure) in [
            ("OVNKubernetes", Flow::TwoPhase, false),
            ("OVNKubernetes", Flow::Seed, false),
            ("OpenShiftSDN", Flow::Rollback, false),
            ("OpenShiftSDN", Flow::Rollback, true),
        ] {
            let mut snapshot = snapshot.clone();
            if target == "OpenShiftSDN" {
                snapshot.spec_network_type = "OVNKubernetes".into();
            }
            let mut req = request(target, true);
            req.flow = flow;
            req.rollback_after_failure = after_failure;
            let refusals = preflight(&snapshot, &req).refusals;
            let live: Vec<&String> = refusals.iter().filter(|r| r.starts_with("live-migration:")).collect();
            assert!(live.len() == 1 && live[0].contains(sign), "{sign}: {refusals:?}");
        }
    }
}

#[test]
fn a_finished_live_migration_leaves_conditions_that_do_not_refuse_once_cleaned_up() {
    let mut done = healthy();
    done.network_config["status"] = json!({"conditions": [
        {"type": "NetworkTypeMigrationInProgress", "status": "False", "reason": "NetworkTypeMigrationCompleted"},
        {"type": "NetworkTypeMigrationMTUReady", "status": "Unknown", "reason": "NetworkTypeMigrationNotInProgress"}]});
    assert!(live_migration_signs(&done.network_config, &done.network_operator).is_empty());
    // Still annotated: the CNO would take the next type change as a live one.
    done.network_config["metadata"] = json!({"annotations": {LIVE_MIGRATION_ANNOTATION: ""}});
    assert_eq!(live_migration_signs(&done.network_config, &done.network_operator).len(), 3);
}

#[test]
fn options_the_release_lacks_are_refused_and_the_overlays_need_two_ports() {
    assert!(options_refused_by_release("4.14.38", Some(14), &["--ip-forwarding-global", "--routing-via-host"]).is_empty());
    let refused = options_refused_by_release("4.9.59", Some(9), &["--routing-via-host", "--skip-feature", "--masquerade-subnet"]);
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert_eq!(
        refused[0],
        "--routing-via-host sets ovnKubernetesConfig.gatewayConfig.routingViaHost, which the network operator has only from OpenShift 4.10; this cluster runs 4.9.59"
    );
    assert_eq!(options_refused_by_release("4.12.1", Some(12), &["--v4-internal-subnet", "--transit-switch-subnet"]).len(), 1);
    assert!(options_refused_by_release("?", None, &["--transit-switch-subnet"]).is_empty());
    // Geneve and VXLAN on one port: refused, naming the option to change.
    let mut req = request("OVNKubernetes", true);
    req.geneve_port = Some(4789);
    let refusals = preflight(&healthy(), &req).refusals;
    assert!(
        refusals.iter().any(|r| r.starts_with("overlay-ports:") && r.contains("both 4789") && r.contains("--geneve-port")),
        "{refusals:?}"
    );
    let mut ovn = healthy();
    ovn.spec_network_type = "OVNKubernetes".into();
    ovn.network_operator["spec"]["defaultNetwork"]["ovnKubernetesConfig"] = json!({"genevePort": 9000});
    let mut back = request("OpenShiftSDN", true);
    back.vxlan_port = Some(9000);
    assert!(preflight(&ovn, &back).refusals.iter().any(|r| r.contains("both 9000") && r.contains("--vxlan-port")));
    back.vxlan_port = Some(4789);
    assert!(preflight(&ovn, &back).refusals.is_empty());
}

#[test]
fn the_sdn_features_are_inventoried_with_their_fate_by_release() {
    let mut snapshot = healthy();
    snapshot.netnamespaces = vec![
        json!({"metadata": {"name": "shop", "annotations": {"netnamespace.network.openshift.io/multicast-enabled": "true"}}, "egressIPs": ["192.0.2.50"]}),
    ];
    snapshot.egress_network_policies = vec![json!({"metadata": {"name": "default", "namespace": "shop"}})];
    let warnings = preflight(&snapshot, &request("OVNKubernetes", true)).warnings.join("\n");
    assert!(
        warnings.contains(
            "egress-ip: egress IPs on shop (192.0.2.50): the network operator converts egress IPs (spec.migration.features.egressIP"
        ),
        "{warnings}"
    );
    assert!(
        warnings.contains("multicast: multicast enabled in shop")
            && warnings.contains("egress-firewall: EgressNetworkPolicies shop/default"),
        "{warnings}"
    );
    let mut old = request("OVNKubernetes", true);
    old.release_minor = Some(10);
    assert!(preflight(&snapshot, &old).warnings.join("\n").contains("egress IPs are not migrated before 4.12"));
}

#[test]
fn cidrs_overlap_within_their_family() {
    let c = |s: &str| Cidr::parse(s).unwrap();
    assert!(c("100.64.0.0/14").overlaps(&c("100.64.0.0/16")));
    assert!(c("100.66.0.0/16").overlaps(&c("100.64.0.0/14")));
    assert!(!c("100.68.0.0/16").overlaps(&c("100.64.0.0/14")));
    assert!(c("169.254.169.3").overlaps(&c("169.254.169.0/29")) && !c("169.254.169.8").overlaps(&c("169.254.169.0/29")));
    assert!(c("fd98::1/128").overlaps(&c("fd98::/64")) && !c("fd99::/64").overlaps(&c("fd98::/64")));
    assert!(!c("0.0.0.0/0").overlaps(&c("fd98::/64")) && c("0.0.0.0/0").overlaps(&c("10.0.0.0/8")));
    assert!(Cidr::parse("10.0.0.0/33").is_none() && Cidr::parse("nope").is_none());
}

#[test]
fn mtu_and_port_are_validated() {
    let ovn = "OVNKubernetes";
    assert!(check_mtu_and_port(ovn, Some(1400), Some(6081), Some(1500)).is_empty());
    assert!(check_mtu_and_port(ovn, Some(1450), None, Some(1500))[0].contains("minus 100 = 1400"));
    assert!(check_mtu_and_port(ovn, Some(100), None, None)[0].contains("576..9216"));
    assert!(check_mtu_and_port(ovn, None, Some(0), None)[0].contains("UDP port"));
    assert!(check_mtu_and_port(ovn, None, Some(70000), None)[0].contains("UDP port"));
    assert!(check_mtu_and_port(ovn, None, None, None).is_empty());
    // The rollback's VXLAN needs 50 bytes, not 100.
    assert!(check_mtu_and_port("OpenShiftSDN", Some(1450), None, Some(1500)).is_empty());
    assert!(check_mtu_and_port("OpenShiftSDN", Some(1451), None, Some(1500))[0].contains("VXLAN overhead"));
}

#[test]
fn pods_in_error_are_recognised() {
    let crash = json!({"status": {"phase": "Running", "containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
    assert_eq!(pod_error(&crash).as_deref(), Some("CrashLoopBackOff"));
    assert_eq!(pod_error(&json!({"status": {"phase": "Failed"}})).as_deref(), Some("phase Failed"));
    assert_eq!(pod_error(&json!({"status": {"phase": "Succeeded"}})), None);
    let starting = json!({"status": {"phase": "Pending", "containerStatuses": [{"state": {"waiting": {"reason": "ContainerCreating"}}}]}});
    assert_eq!(pod_error(&starting), None);
    let pods = [
        json!({"spec": {"nodeName": "w1"}, "status": {"phase": "Failed"}}),
        json!({"spec": {"nodeName": "w0"}, "status": {"phase": "Failed"}}),
        json!({"spec": {"nodeName": "w1"}, "status": {"phase": "Failed"}}),
    ];
    assert_eq!(nodes_with_error_pods(&pods, &[]), ["w0", "w1"]);
    let evicted = json!({"metadata": {"name": "e", "namespace": "m"}, "status": {"phase": "Failed", "reason": "Evicted"}});
    assert_eq!(pod_error(&evicted).as_deref(), Some("phase Failed (Evicted)"));
    assert_eq!(failing_pods(&[evicted.clone(), crash]), ["/?", "m/e"]);
}

fn node(name: &str, current: &str, desired: &str, ready: &str) -> Value {
    json!({"metadata": {"name": name, "annotations": {
        "machineconfiguration.openshift.io/state": "Done",
        "machineconfiguration.openshift.io/currentConfig": current,
        "machineconfiguration.openshift.io/desiredConfig": desired}},
        "status": {"conditions": [{"type": "Ready", "status": ready}]}})
}

#[test]
fn verify_reports_each_check() {
    let ovs =
        json!({"metadata": {"name": "rendered-worker-new"}, "spec": {"config": "ExecStart=/usr/local/bin/configure-ovs.sh OVNKubernetes"}});
    let healthy = json!({"metadata": {"name": "network"}, "status": {"conditions": [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "False"}, {"type": "Degraded", "status": "False"}]}});
    let ds = |available: u64| json!({"status": {"desiredNumberScheduled": 1, "numberAvailable": available, "updatedNumberScheduled": 1}});
    let old_failure = json!({"metadata": {"name": "installer-7", "namespace": "openshift-kube-apiserver"}, "spec": {"nodeName": "w0"}, "status": {"phase": "Failed"}});
    let mut inputs = VerifyInputs {
        nodes: vec![node("w0", "rendered-worker-new", "rendered-worker-new", "True")],
        machine_configs: vec![ovs],
        status_network_type: "OVNKubernetes".into(),
        pods: vec![old_failure],
        daemon_logs: vec![],
        operators: vec![healthy],
        plugin_daemonset: Some(ds(1)),
        baseline: vec!["openshift-kube-apiserver/installer-7".into()],
        features: Default::default(),
    };
    let checks = verify(&inputs, "OVNKubernetes");
    assert!(checks.iter().all(|c| c.passed), "{checks:?}");
    assert!(checks[4].detail.contains("1 already failing before the migration, not counted"), "{checks:?}");
    let mut stale = ds(1);
    stale["metadata"] = json!({"generation": 3});
    stale["status"]["observedGeneration"] = json!(2);
    inputs.plugin_daemonset = Some(stale);
    let checks = verify(&inputs, "OVNKubernetes");
    assert!(checks[6].detail.contains("ovnkube-node: status of generation 2, not yet of 3"), "{checks:?}");
    inputs.plugin_daemonset = Some(ds(1));
    inputs.nodes.push(node("w1", "rendered-worker-old", "rendered-worker-new", "False"));
    inputs.daemon_logs.push(("w1".into(), "line 1\nline 2\nline 3\nline 4\nline 5\nfailed to drain\n".into()));
    inputs
        .pods
        .push(json!({"metadata": {"name": "app", "namespace": "default"}, "spec": {"nodeName": "w1"}, "status": {"phase": "Failed"}}));
    inputs.pods.push(json!({"metadata": {"name": "sdn-x", "namespace": "openshift-sdn"}, "status": {"phase": "Running"}}));
    inputs.operators[0]["status"]["conditions"][1]["status"] = json!("True");
    inputs.plugin_daemonset = Some(ds(0));
    let checks = verify(&inputs, "OVNKubernetes");
    assert!(!checks[0].passed && checks[0].detail.contains("w1"));
    assert!(!checks[1].passed && checks[1].detail.contains("rendered-worker-old not found"));
    assert!(checks[2].passed);
    // The last lines of the daemon's log, not one line.
    assert!(!checks[3].passed && checks[3].detail.contains("line 2 ⏎ line 3 ⏎ line 4 ⏎ line 5 ⏎ failed to drain"), "{checks:?}");
    assert!(!checks[3].detail.contains("line 1"));
    assert!(!checks[4].passed && checks[4].detail.contains("default/app on w1") && !checks[4].detail.contains("installer-7"));
    assert!(!checks[5].passed && checks[5].detail.contains("network Progressing"));
    assert!(!checks[6].passed && checks[6].detail.contains("0 of 1 available") && checks[6].detail.contains("openshift-sdn/sdn-x"));
}

#[test]
fn yaml_is_block_style_and_quotes_what_needs_it() {
    let value = json!({"apiVersion": "config.openshift.io/v1", "kind": "Network", "metadata": {"name": "cluster", "annotations": {"a": ""}},
        "spec": {"clusterNetwork": [{"cidr": "198.18.0.0/15", "hostPrefix": 23}], "networkType": "OpenShiftSDN", "serviceNetwork": ["100.64.0.0/16"], "empty": {}, "flag": "true"}});
    let yaml = to_yaml(&value);
    assert!(yaml.contains("apiVersion: config.openshift.io/v1\n"), "{yaml}");
    assert!(yaml.contains("  clusterNetwork:\n  - cidr: 198.18.0.0/15\n    hostPrefix: 23\n"), "{yaml}");
    assert!(yaml.contains("  serviceNetwork:\n  - 100.64.0.0/16\n"), "{yaml}");
    assert!(yaml.contains("    a: \"\"\n") && yaml.contains("  empty: {}\n") && yaml.contains("  flag: \"true\"\n"), "{yaml}");
}
