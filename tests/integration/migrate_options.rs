//! The migration's options against the release: an option whose field the release's network
//! operator does not have yet is refused before anything changes (an older operator would drop
//! it and the option would silently do nothing), and the two overlays never share a port.

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

fn operator_spec(sim: &Sim) -> String {
    sim.kubectl_ok(&["get", "network.operator.openshift.io", "cluster", "-o", "jsonpath={.spec}{.metadata.annotations}"])
}

#[test]
fn each_option_a_release_lacks_is_refused_there_and_changes_nothing() {
    let sim = Sim::in_process_with(0, 1, &["--openshift-version", "4.9.59"]);
    let before = operator_spec(&sim);
    for (extra, field, since) in [
        (&["--routing-via-host"][..], "gatewayConfig.routingViaHost", "4.10"),
        (&["--skip-feature", "multicast"][..], "spec.migration.features", "4.12"),
        (&["--v4-internal-subnet", "100.99.0.0/16"][..], "v4InternalSubnet", "4.12"),
        (&["--transit-switch-subnet", "100.100.0.0/16"][..], "ipv4.internalTransitSwitchSubnet", "4.14"),
        (&["--masquerade-subnet", "169.254.0.0/29"][..], "gatewayConfig.ipv4.internalMasqueradeSubnet", "4.14"),
        (&["--ip-forwarding-global"][..], "gatewayConfig.ipForwarding", "4.14"),
    ] {
        let run = migrate(&sim, extra);
        assert_eq!(run.code, 2, "{extra:?}: {}", run.debug());
        let expected = format!("{} sets ovnKubernetesConfig.", extra[0]);
        let expected = if extra[0] == "--skip-feature" { "--skip-feature sets spec.migration.features".to_owned() } else { expected };
        assert!(
            run.stderr.contains(&expected)
                && run.stderr.contains(field)
                && run.stderr.contains(&format!("only from OpenShift {since}; this cluster runs 4.9.59")),
            "{extra:?}: {}",
            run.debug()
        );
    }
    assert_eq!(operator_spec(&sim), before, "a refusal changes nothing");
    assert!(sim.migration_dirs().is_empty(), "no journal for a refused migration");
}

#[test]
fn geneve_and_vxlan_on_one_port_are_refused_before_anything_changes() {
    let sim = Sim::in_process_with(0, 1, &["--openshift-version", "4.14.38"]);
    let before = operator_spec(&sim);
    // The simulated SDN runs VXLAN on 4789.
    let run = migrate(&sim, &["--geneve-port", "4789"]);
    assert_eq!(run.code, 2, "{}", run.debug());
    assert!(
        run.stderr.contains("overlay-ports: the Geneve port (OVN-Kubernetes) and the VXLAN port (OpenShift SDN) are both 4789: pick another with --geneve-port"),
        "{}",
        run.debug()
    );
    assert_eq!(operator_spec(&sim), before);
    assert!(sim.migration_dirs().is_empty());
}

fn jsonpath(sim: &Sim, kind: &str, path: &str) -> String {
    sim.kubectl_ok(&["get", kind, "cluster", "-o", &format!("jsonpath={path}")])
}

/// A cluster on jumbo frames (OpenShift SDN at 8950, so nodes at 9000): the documents ask to
/// declare a custom MTU to keep it; fleetboot detects it and declares 8900 for OVN-Kubernetes.
#[test]
fn a_custom_cluster_mtu_is_detected_and_declared_for_the_new_network() {
    let sim = Sim::in_process_with(1, 2, &["--openshift-version", "4.14.38"]);
    sim.kubectl_ok(&[
        "patch",
        "network.operator.openshift.io",
        "cluster",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"defaultNetwork":{"openshiftSDNConfig":{"mtu":8950}}}}"#,
    ]);
    sim.kubectl_ok(&[
        "patch",
        "network.config.openshift.io",
        "cluster",
        "--subresource=status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"clusterNetworkMTU":8950}}"#,
    ]);
    let plan = migrate(&sim, &["--plan"]);
    assert_eq!(plan.code, 0, "{}", plan.debug());
    assert!(
        plan.stdout.contains(
            "mtu: the cluster runs a custom MTU (OpenShiftSDN at 8950, so nodes at 9000): OVNKubernetes's MTU is declared as 8900"
        ),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains(r#"spec.defaultNetwork += {"ovnKubernetesConfig":{"mtu":8900}}"#), "{}", plan.stdout);
    let run = migrate(&sim, &[]);
    assert_eq!(run.code, 0, "{}", run.debug());
    assert_eq!(jsonpath(&sim, "network.operator.openshift.io", "{.spec.defaultNetwork.ovnKubernetesConfig.mtu}"), "8900");
    assert_eq!(jsonpath(&sim, "network.config.openshift.io", "{.status.clusterNetworkMTU}"), "8900");
}

/// `--mtu` is checked against the nodes' MTU the cluster implies when `--node-mtu` is not given.
#[test]
fn an_mtu_too_large_for_the_nodes_the_cluster_implies_is_refused_before_anything_changes() {
    let sim = Sim::in_process_with(0, 1, &["--openshift-version", "4.14.38"]);
    let before = operator_spec(&sim);
    let run = migrate(&sim, &["--mtu", "1450"]);
    assert_eq!(run.code, 2, "{}", run.debug());
    assert!(
        run.stderr.contains(
            "mtu: --mtu 1450 leaves no room for the 100 bytes of OVNKubernetes's overlay on nodes whose MTU the cluster implies is 1500"
        ),
        "{}",
        run.debug()
    );
    assert_eq!(operator_spec(&sim), before);
    assert!(sim.migration_dirs().is_empty());
}
