//! The migration's pure decisions: may it start (preflight: named refusals and warnings), did
//! it work (verify), are the MTU and Geneve port sane, do the cluster's networks collide with
//! OVN-Kubernetes' internal ranges, which pods are in error, and the YAML of the backup.

use serde_json::Value;

pub use super::model::{Check, ClusterSnapshot, Findings};
use super::record::Flow;
use crate::conditions::{message as condition_message, status as condition};

/// How the migration is asked to start.
#[derive(Clone, Debug)]
pub struct PreflightRequest<'a> {
    pub target: &'a str,
    pub flow: Flow,
    pub etcd_backup_confirmed: bool,
    /// A rollback of a migration that failed or was interrupted: the cluster is expected to be
    /// unhealthy, so health problems are warnings, and the type may be either.
    pub rollback_after_failure: bool,
    pub subnets: &'a InternalSubnets,
    /// The minor release (4.N), when known: egress IP, egress firewall and multicast are
    /// migrated by the network operator only from 4.12.
    pub release_minor: Option<u32>,
    /// `--geneve-port` and `--vxlan-port`, when given: the two overlays must not share a port.
    pub geneve_port: Option<u32>,
    pub vxlan_port: Option<u32>,
}

/// An option of `fleetboot migrate` that sets a field the network operator's API has only from
/// some release: (flag, field, first minor). The fields were read in the openshift/api the
/// cluster-network-operator vendors on each release branch
/// (`vendor/github.com/openshift/api/operator/v1/types_network.go`): `routingViaHost` from
/// release-4.10, `migration.features` and `v4InternalSubnet` from release-4.12 (the operator
/// reads it in `pkg/network/ovn_kubernetes.go` from then), `ipv4.internalTransitSwitchSubnet`,
/// `gatewayConfig.ipv4.internalMasqueradeSubnet` and `gatewayConfig.ipForwarding` from
/// release-4.14. An older operator drops the field: the option would silently do nothing.
pub const GATED_OPTIONS: [(&str, &str, u32); 6] = [
    ("--routing-via-host", "ovnKubernetesConfig.gatewayConfig.routingViaHost", 10),
    ("--skip-feature", "spec.migration.features", 12),
    ("--v4-internal-subnet", "ovnKubernetesConfig.v4InternalSubnet", 12),
    ("--transit-switch-subnet", "ovnKubernetesConfig.ipv4.internalTransitSwitchSubnet", 14),
    ("--masquerade-subnet", "ovnKubernetesConfig.gatewayConfig.ipv4.internalMasqueradeSubnet", 14),
    ("--ip-forwarding-global", "ovnKubernetesConfig.gatewayConfig.ipForwarding", 14),
];

/// The options given (`flags`, as spelled on the command line) that the release's operator does
/// not know, each named with its field and the first release that has it. An unknown release
/// refuses nothing here. Pure.
pub fn options_refused_by_release(release: &str, release_minor: Option<u32>, flags: &[&str]) -> Vec<String> {
    let Some(minor) = release_minor else { return Vec::new() };
    GATED_OPTIONS
        .iter()
        .filter(|(flag, _, since)| flags.contains(flag) && minor < *since)
        .map(|(flag, field, since)| {
            format!("{flag} sets {field}, which the network operator has only from OpenShift 4.{since}; this cluster runs {release}")
        })
        .collect()
}

/// Where OVN-Kubernetes' internal ranges go, when moved (`--v4-internal-subnet` and friends).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InternalSubnets {
    /// `ovnKubernetesConfig.v4InternalSubnet` (the join subnet, default 100.64.0.0/16).
    pub join: Option<String>,
    /// `ovnKubernetesConfig.ipv4.internalTransitSwitchSubnet` (default 100.88.0.0/16).
    pub transit: Option<String>,
    /// `ovnKubernetesConfig.gatewayConfig.ipv4.internalMasqueradeSubnet` (default 169.254.169.0/29).
    pub masquerade: Option<String>,
}

fn name(object: &Value) -> &str {
    object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?")
}

fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The annotation that asks the network operator for a live migration (CNO release-4.15 and
/// release-4.16 `pkg/names/names.go`, `NetworkTypeMigrationAnnotation`; openshift-docs
/// `modules/nw-ovn-kubernetes-live-migration.adoc`). While it is on `Network.config/cluster`, the
/// CNO's clusterconfig controller routes a change of `spec.networkType` down the live path.
pub const LIVE_MIGRATION_ANNOTATION: &str = "network.openshift.io/network-type-migration";

/// Signs of a live migration on the cluster, each named: the annotation on
/// `Network.config/cluster`, any `NetworkTypeMigration*` condition in its status (CNO
/// release-4.16 `pkg/names/names.go`: InProgress, TargetCNIAvailable, TargetCNIInUse,
/// OriginalCNIPurged, MTUReady), and `spec.migration.mode: Live` on the operator config. Empty
/// when there is none. The conditions a *finished* live migration leaves for good (the CNO's
/// `resetMigrationConditions`: InProgress False with reason NetworkTypeMigrationCompleted, the
/// others Unknown) are no sign once the annotation and the Live mode are gone: the offline
/// rollback stays possible after a live migration. Pure.
pub fn live_migration_signs(network_config: &Value, network_operator: &Value) -> Vec<String> {
    let mut signs = Vec::new();
    let conditions: Vec<&Value> = network_config
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c["type"].as_str().is_some_and(|k| k.starts_with("NetworkTypeMigration")))
        .collect();
    let finished = !conditions.is_empty()
        && conditions.iter().all(|c| {
            if c["type"] == "NetworkTypeMigrationInProgress" {
                c["status"] == "False" && c["reason"] == "NetworkTypeMigrationCompleted"
            } else {
                c["status"] == "Unknown"
            }
        });
    let annotated = network_config.pointer("/metadata/annotations").and_then(|a| a.get(LIVE_MIGRATION_ANNOTATION)).is_some();
    let live_mode = text(network_operator, "/spec/migration/mode") == "Live";
    if let Some(value) = network_config.pointer("/metadata/annotations").and_then(|a| a.get(LIVE_MIGRATION_ANNOTATION)) {
        signs.push(format!(
            "annotation {LIVE_MIGRATION_ANNOTATION}={} on Network.config.openshift.io/cluster",
            value.as_str().map(|v| format!("{v:?}")).unwrap_or_else(|| value.to_string())
        ));
    }
    for c in conditions.into_iter().filter(|_| !finished || annotated || live_mode) {
        let kind = c["type"].as_str().unwrap_or("");
        {
            signs.push(format!(
                "condition {kind}={} on Network.config.openshift.io/cluster{}",
                c["status"].as_str().unwrap_or("?"),
                c["reason"].as_str().filter(|r| !r.is_empty()).map(|r| format!(" (reason {r})")).unwrap_or_default()
            ));
        }
    }
    if live_mode {
        signs.push("spec.migration.mode Live on Network.operator.openshift.io/cluster".into());
    }
    signs
}

/// An IPv4 or IPv6 network, as 128 bits (IPv4 in the low 32) and a prefix over 128.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    bits: u128,
    prefix: u32,
    v6: bool,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Cidr> {
        let (address, prefix) = text.trim().split_once('/').map_or((text.trim(), None), |(a, p)| (a, Some(p)));
        match address.parse::<std::net::IpAddr>().ok()? {
            std::net::IpAddr::V4(v4) => {
                let prefix: u32 = prefix.map_or(Some(32), |p| p.parse().ok())?;
                (prefix <= 32).then_some(Cidr { bits: u128::from(u32::from(v4)), prefix: prefix + 96, v6: false })
            }
            std::net::IpAddr::V6(v6) => {
                let prefix: u32 = prefix.map_or(Some(128), |p| p.parse().ok())?;
                (prefix <= 128).then_some(Cidr { bits: u128::from(v6), prefix, v6: true })
            }
        }
    }

    pub fn overlaps(&self, other: &Cidr) -> bool {
        if self.v6 != other.v6 {
            return false;
        }
        let prefix = self.prefix.min(other.prefix);
        let shift = 128 - prefix;
        // IPv4 lives in the low 32 bits: compare those only.
        let mask = |b: u128| if self.v6 { b } else { b & 0xffff_ffff };
        shift >= 128 || (mask(self.bits) >> shift) == (mask(other.bits) >> shift)
    }
}

/// OVN-Kubernetes' internal ranges (openshift-docs `modules/nw-ovn-kubernetes-migration.adoc`,
/// "OVN-Kubernetes reserves..."; openshift/api `operator/v1/types_network.go`,
/// `OVNKubernetesConfig.V4InternalSubnet`, `IPv4OVNKubernetesConfig.InternalTransitSwitchSubnet`,
/// `IPv4GatewayConfig.InternalMasqueradeSubnet`): (what, range in use, the option that moves it).
/// Before 4.14 only the join subnet is reserved: the transit switch subnet arrives with the
/// interconnect architecture and the masquerade subnet becomes configurable in 4.14 (both
/// `IPv4OVNKubernetesConfig.InternalTransitSwitchSubnet` and
/// `IPv4GatewayConfig.InternalMasqueradeSubnet` first appear in the openshift/api that
/// cluster-network-operator release-4.14 vendors); `release_minor: None` checks them all.
pub fn ovn_internal_ranges(moved: &InternalSubnets, release_minor: Option<u32>) -> Vec<(&'static str, String, &'static str)> {
    let mut ranges = vec![
        (
            "join subnet",
            moved.join.clone().unwrap_or_else(|| "100.64.0.0/16".into()),
            "--v4-internal-subnet (ovnKubernetesConfig.v4InternalSubnet)",
        ),
        (
            "masquerade subnet",
            moved.masquerade.clone().unwrap_or_else(|| "169.254.169.0/29".into()),
            "--masquerade-subnet (gatewayConfig.ipv4.internalMasqueradeSubnet)",
        ),
        (
            "transit switch subnet",
            moved.transit.clone().unwrap_or_else(|| "100.88.0.0/16".into()),
            "--transit-switch-subnet (ipv4.internalTransitSwitchSubnet)",
        ),
        ("IPv6 join subnet", "fd98::/64".into(), "ovnKubernetesConfig.v6InternalSubnet"),
        ("IPv6 masquerade subnet", "fd69::/125".into(), "gatewayConfig.ipv6.internalMasqueradeSubnet"),
        ("IPv6 transit switch subnet", "fd97::/64".into(), "ipv6.internalTransitSwitchSubnet"),
    ];
    if release_minor.is_some_and(|m| m < 14) {
        ranges.truncate(1);
    }
    ranges
}

/// The internal subnets in force: the options, else what `ovnKubernetesConfig` already holds
/// (an admin may have moved them before the migration). Pure.
pub fn subnets_in_force(network_operator: &Value, asked: &InternalSubnets) -> InternalSubnets {
    let set = |pointer: &str| Some(text(network_operator, pointer)).filter(|t| !t.is_empty()).map(str::to_owned);
    let config = "/spec/defaultNetwork/ovnKubernetesConfig";
    InternalSubnets {
        join: asked.join.clone().or_else(|| set(&format!("{config}/v4InternalSubnet"))),
        transit: asked.transit.clone().or_else(|| set(&format!("{config}/ipv4/internalTransitSwitchSubnet"))),
        masquerade: asked.masquerade.clone().or_else(|| set(&format!("{config}/gatewayConfig/ipv4/internalMasqueradeSubnet"))),
    }
}

/// The cluster, service and machine networks that overlap an OVN-Kubernetes internal range.
/// Pure.
pub fn range_collisions(snapshot: &ClusterSnapshot, moved: &InternalSubnets, release_minor: Option<u32>) -> Vec<String> {
    let mut networks: Vec<(String, String)> = Vec::new();
    if let Some(list) = snapshot.network_config.pointer("/spec/clusterNetwork").and_then(Value::as_array) {
        networks.extend(list.iter().map(|n| ("clusterNetwork".to_owned(), text(n, "/cidr").to_owned())));
    }
    if let Some(list) = snapshot.network_config.pointer("/spec/serviceNetwork").and_then(Value::as_array) {
        networks.extend(list.iter().map(|n| ("serviceNetwork".to_owned(), n.as_str().unwrap_or("").to_owned())));
    }
    networks.extend(snapshot.node_ips.iter().map(|ip| ("machine network (node address)".to_owned(), ip.clone())));
    let mut found = Vec::new();
    let moved = subnets_in_force(&snapshot.network_operator, moved);
    for (what, range, option) in ovn_internal_ranges(&moved, release_minor) {
        let Some(internal) = Cidr::parse(&range) else {
            found.push(format!("{what} {range} is not a CIDR"));
            continue;
        };
        for (kind, cidr) in &networks {
            if Cidr::parse(cidr).is_some_and(|c| c.overlaps(&internal)) {
                found.push(format!("{kind} {cidr} overlaps OVN-Kubernetes' {what} {range}: move it with {option}"));
            }
        }
    }
    found
}

/// Whether the 4.14+ documents' own prerequisites for the offline migration to OVN-Kubernetes
/// apply ([`super::prerequisites`]).
pub fn documented_prerequisites_apply(request: &PreflightRequest<'_>) -> bool {
    request.target == "OVNKubernetes" && request.flow == Flow::TwoPhase && request.release_minor.is_some_and(|m| m >= 14)
}

/// Every reason not to start (refusals) and every thing to know (warnings). Pure.
pub fn preflight(snapshot: &ClusterSnapshot, request: &PreflightRequest<'_>) -> Findings {
    let mut findings = Findings::default();
    let target = request.target;
    let from = if target == "OVNKubernetes" { "OpenShiftSDN" } else { "OVNKubernetes" };
    let lenient = request.rollback_after_failure;
    let health = |findings: &mut Findings, line: String| {
        if lenient {
            findings.warnings.push(format!("{line} (rolling back a failed migration: not a refusal)"));
        } else {
            findings.refusals.push(line);
        }
    };
    // A live migration on the cluster (or its traces) refuses every offline flow, a rollback
    // after a failure included: the CNO would route the offline patches down the live path.
    let live = live_migration_signs(&snapshot.network_config, &snapshot.network_operator);
    if !live.is_empty() {
        findings.refusals.push(format!(
            "live-migration: a live network-type migration is in progress or was started: {}; the offline flows do not mix with it: let it finish (watch the NetworkTypeMigration* conditions with oc get network.config cluster -o yaml), or remove the annotation and spec.migration as the live-migration documentation says, then run again",
            live.join("; ")
        ));
    }
    if !request.etcd_backup_confirmed {
        findings.refusals.push(
            "etcd-backup: no etcd backup confirmed: take one (the document's precondition), then pass --etcd-backup-confirmed".into(),
        );
    }
    if snapshot.spec_network_type != from && !(lenient && snapshot.spec_network_type == target) {
        findings.refusals.push(format!(
            "network-type: network.config.openshift.io/cluster spec.networkType is {:?}, not {from}: nothing to migrate from",
            snapshot.spec_network_type
        ));
    }
    let not_ready: Vec<String> = snapshot.nodes.iter().filter(|(_, r)| r != "True").map(|(n, r)| format!("{n} (Ready={r})")).collect();
    if !not_ready.is_empty() {
        health(&mut findings, format!("nodes-ready: nodes not Ready: {}", not_ready.join(", ")));
    }
    for pool in &snapshot.pools {
        if condition(pool, "Degraded") == Some("True") {
            health(&mut findings, format!("pools-healthy: MachineConfigPool {} is Degraded", name(pool)));
        }
        if condition(pool, "Updating") == Some("True") {
            health(&mut findings, format!("pools-healthy: MachineConfigPool {} is Updating: wait for it to finish", name(pool)));
        }
        let paused = pool.pointer("/spec/paused") == Some(&Value::Bool(true));
        let machines = pool.pointer("/status/machineCount").and_then(Value::as_u64).unwrap_or(0);
        match (paused, request.flow) {
            (true, Flow::TwoPhase) if machines > 0 => findings.refusals.push(format!(
                "paused-pools: MachineConfigPool {} is paused with {machines} machines: phase 1 needs every pool to roll the new configure-ovs.sh out; unpause it (spec.paused: false) first",
                name(pool)
            )),
            (true, Flow::Live) if machines > 0 => findings.refusals.push(format!(
                "paused-pools: MachineConfigPool {} is paused with {machines} machines: the live migration's two rollouts need every pool; unpause it (spec.paused: false) first",
                name(pool)
            )),
            (true, _) => findings.warnings.push(format!("paused-pools: MachineConfigPool {} is paused (by an admin): it stays paused", name(pool))),
            _ => {}
        }
    }
    // Every ClusterOperator Available, not Progressing, not Degraded (openshift-docs
    // `modules/nw-ovn-kubernetes-migration.adoc`, "Prerequisites"; the
    // `network.offline_migration_sdn_to_ovnk` collection's `verify_cluster_operators_health`).
    for operator in &snapshot.operators {
        for (kind, bad) in [("Degraded", "True"), ("Available", "False"), ("Progressing", "True")] {
            let status = condition(operator, kind).unwrap_or(if kind == "Available" { "False" } else { "Unknown" });
            if status == bad || (kind == "Available" && status != "True") {
                let message = condition_message(operator, kind);
                let state = match kind {
                    "Degraded" => "Degraded",
                    "Available" => "not Available",
                    _ => "Progressing",
                };
                health(
                    &mut findings,
                    format!(
                        "operators-healthy: ClusterOperator {} is {state}{}",
                        name(operator),
                        if message.is_empty() { String::new() } else { format!(": {message}") }
                    ),
                );
            }
        }
    }
    if from == "OpenShiftSDN" {
        let mode = text(&snapshot.network_operator, "/spec/defaultNetwork/openshiftSDNConfig/mode");
        if !mode.is_empty() && mode != "NetworkPolicy" {
            findings.refusals.push(format!(
                "sdn-mode: OpenShift SDN runs in {mode} mode; the documented migration supports the NetworkPolicy mode only"
            ));
        }
    }
    if target == "OVNKubernetes" {
        for collision in range_collisions(snapshot, request.subnets, request.release_minor) {
            findings.refusals.push(format!("ovn-internal-ranges: {collision}"));
        }
    }
    // The overlays' ports (openshift-docs `modules/nw-ovn-kubernetes-rollback.adoc`: the VXLAN
    // port "cannot be the same as the Geneve port that is used by OVN-Kubernetes"): the port
    // asked for, else the one configured, else the default (Geneve 6081, VXLAN 4789).
    let port = |asked: Option<u32>, pointer: &str, default: u64| {
        asked.map(u64::from).or_else(|| snapshot.network_operator.pointer(pointer).and_then(Value::as_u64)).unwrap_or(default)
    };
    let geneve = port(request.geneve_port, "/spec/defaultNetwork/ovnKubernetesConfig/genevePort", 6081);
    let vxlan = port(request.vxlan_port, "/spec/defaultNetwork/openshiftSDNConfig/vxlanPort", 4789);
    if geneve == vxlan {
        findings.refusals.push(format!(
            "overlay-ports: the Geneve port (OVN-Kubernetes) and the VXLAN port (OpenShift SDN) are both {geneve}: pick another with {}",
            if target == "OVNKubernetes" { "--geneve-port" } else { "--vxlan-port" }
        ));
    }
    // The 4.14+ documents' own prerequisites for the offline migration to OVN-Kubernetes.
    if documented_prerequisites_apply(request) {
        let documented = super::prerequisites::documented_prerequisites(snapshot);
        findings.refusals.extend(documented.refusals);
        findings.warnings.extend(documented.warnings);
    }
    let migration = snapshot.network_operator.pointer("/spec/migration").filter(|m| m.is_object());
    let migration_type = migration.map(|m| text(m, "/networkType")).unwrap_or("");
    if !migration_type.is_empty() && migration_type != target && !lenient {
        findings.refusals.push(format!(
            "migration-set: Network.operator.openshift.io/cluster spec.migration.networkType is {migration_type}: a migration towards it was started; finish it, or roll it back with fleetboot migrate --to {from}"
        ));
    } else if migration.is_some() && request.flow != Flow::Seed {
        findings.warnings.push(format!(
            "migration-set: spec.migration is already set ({}): the first step clears it, as the documentation does",
            migration.map(Value::to_string).unwrap_or_default()
        ));
    }
    // OpenShift SDN features: the operator converts them from 4.12 (`spec.migration.features`);
    // before, they are lost (openshift-docs `modules/nw-ovn-kubernetes-migration-about.adoc`).
    let converted = request.release_minor.is_some_and(|m| m >= 12);
    let fate = |what: &str, switch: &str| {
        if converted {
            format!("the network operator converts {what} (spec.migration.features.{switch}; --skip-feature to leave them)")
        } else {
            format!("{what} are not migrated before 4.12: recreate them for OVN-Kubernetes after the migration")
        }
    };
    let mut egress_ips: Vec<String> = Vec::new();
    for object in snapshot.netnamespaces.iter().chain(&snapshot.hostsubnets) {
        if let Some(ips) = object.get("egressIPs").and_then(Value::as_array).filter(|a| !a.is_empty()) {
            let ips: Vec<&str> = ips.iter().filter_map(Value::as_str).collect();
            egress_ips.push(format!("{} ({})", name(object), ips.join(", ")));
        }
    }
    if !egress_ips.is_empty() {
        findings.warnings.push(format!("egress-ip: egress IPs on {}: {}", egress_ips.join("; "), fate("egress IPs", "egressIP")));
    }
    let multicast: Vec<&str> = snapshot
        .netnamespaces
        .iter()
        .filter(|n| text(n, "/metadata/annotations/netnamespace.network.openshift.io~1multicast-enabled") == "true")
        .map(name)
        .collect();
    if !multicast.is_empty() {
        findings.warnings.push(format!(
            "multicast: multicast enabled in {}: {}",
            multicast.join(", "),
            fate("multicast namespaces", "multicast")
        ));
    }
    let firewalls: Vec<String> =
        snapshot.egress_network_policies.iter().map(|p| format!("{}/{}", text(p, "/metadata/namespace"), name(p))).collect();
    if !firewalls.is_empty() {
        findings.warnings.push(format!(
            "egress-firewall: EgressNetworkPolicies {}: {}",
            firewalls.join(", "),
            fate("egress network policies (to EgressFirewalls)", "egressFirewall")
        ));
    }
    // Egress routers (`pod.network.openshift.io/assign-macvlan`) are not migrated.
    let routers: Vec<String> = snapshot
        .pods
        .iter()
        .filter(|p| text(p, "/metadata/annotations/pod.network.openshift.io~1assign-macvlan") == "true")
        .map(|p| format!("{}/{}", text(p, "/metadata/namespace"), name(p)))
        .collect();
    if !routers.is_empty() && request.flow == Flow::Live {
        // The CNO's own blocker (release-4.16 `pkg/network/cluster_config.go`, `ValidateLiveMigration`).
        findings.refusals.push(format!(
            "egress-routers: egress router pods block the live migration (the network operator refuses it): remove them first: {}",
            routers.join(", ")
        ));
    } else if !routers.is_empty() {
        findings
            .warnings
            .push(format!("egress-routers: egress router pods are not migrated, recreate them for OVN-Kubernetes: {}", routers.join(", ")));
    }
    findings
}

/// Pods failing now ("namespace/name"): the baseline the verification does not count. Pure.
pub fn failing_pods(pods: &[Value]) -> Vec<String> {
    let mut failing: Vec<String> =
        pods.iter().filter(|p| pod_error(p).is_some()).map(|p| format!("{}/{}", text(p, "/metadata/namespace"), name(p))).collect();
    failing.sort();
    failing
}

/// `--mtu` and `--geneve-port`. Pure.
pub fn check_mtu_and_port(target: &str, mtu: Option<u32>, geneve_port: Option<u32>, smallest_node_mtu: Option<u32>) -> Vec<String> {
    let mut problems = Vec::new();
    // The overlay's overhead: Geneve 100 bytes (openshift-docs `modules/nw-ovn-kubernetes-migration.adoc`:
    // "100 less than the smallest node MTU value"), VXLAN 50 (`modules/nw-ovn-kubernetes-rollback.adoc`:
    // "50 less than the smallest node MTU value").
    let (overhead, overlay) = if target == "OpenShiftSDN" { (50, "VXLAN") } else { (100, "Geneve") };
    if let Some(mtu) = mtu {
        if !(576..=9216).contains(&mtu) {
            problems.push(format!("--mtu {mtu} is outside 576..9216"));
        }
        if let Some(node_mtu) = smallest_node_mtu
            && mtu + overhead > node_mtu
        {
            problems.push(format!(
                "--mtu {mtu} leaves no room for the {overlay} overhead: it must be at most the smallest node MTU ({node_mtu}) minus {overhead} = {}",
                node_mtu.saturating_sub(overhead)
            ));
        }
    }
    if let Some(port) = geneve_port
        && !(1..=65535).contains(&port)
    {
        problems.push(format!("--geneve-port {port} is not a UDP port (1..65535)"));
    }
    problems
}

/// Why a pod counts as in error, if it does. Pure.
pub fn pod_error(pod: &Value) -> Option<String> {
    const BAD: &[&str] = &[
        "CrashLoopBackOff",
        "Error",
        "ImagePullBackOff",
        "ErrImagePull",
        "CreateContainerError",
        "CreateContainerConfigError",
        "RunContainerError",
        "ContainerCannotRun",
        "InvalidImageName",
    ];
    let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("");
    if matches!(phase, "Failed" | "Unknown") {
        let reason = pod.pointer("/status/reason").and_then(Value::as_str).unwrap_or("");
        return Some(if reason.is_empty() { format!("phase {phase}") } else { format!("phase {phase} ({reason})") });
    }
    if phase == "Succeeded" {
        return None;
    }
    let statuses = pod.pointer("/status/containerStatuses").and_then(Value::as_array)?;
    statuses.iter().find_map(|s| {
        let waiting = s.pointer("/state/waiting/reason").and_then(Value::as_str);
        let terminated = s.pointer("/state/terminated/reason").and_then(Value::as_str);
        waiting.or(terminated).filter(|r| BAD.contains(r)).map(str::to_owned)
    })
}

/// What verify looks at.
#[derive(Clone, Debug, Default)]
pub struct VerifyInputs {
    pub nodes: Vec<Value>,
    /// Rendered MachineConfigs by name (only those some node's currentConfig names).
    pub machine_configs: Vec<Value>,
    pub status_network_type: String,
    /// Pods in the cluster (all namespaces).
    pub pods: Vec<Value>,
    /// For NotReady nodes: the tail of their machine-config-daemon pod's log.
    pub daemon_logs: Vec<(String, String)>,
    pub operators: Vec<Value>,
    /// The target network's plugin DaemonSet (`openshift-ovn-kubernetes/ovnkube-node` or
    /// `openshift-sdn/sdn`), if it exists.
    pub plugin_daemonset: Option<Value>,
    /// Pods that were failing before the migration started ("namespace/name").
    pub baseline: Vec<String>,
    /// Egress firewalls, egress IPs and multicast of both plugins.
    pub features: super::features::FeatureObjects,
}

fn annotation<'a>(node: &'a Value, key: &str) -> &'a str {
    node.pointer("/metadata/annotations").and_then(|a| a.get(key)).and_then(Value::as_str).unwrap_or("")
}

/// The plugin DaemonSet of a network type and the namespace of the other one's pods.
pub fn plugin_of(network_type: &str) -> (&'static str, &'static str, &'static str) {
    if network_type == "OVNKubernetes" {
        ("openshift-ovn-kubernetes", "ovnkube-node", "openshift-sdn")
    } else {
        ("openshift-sdn", "sdn", "openshift-ovn-kubernetes")
    }
}

/// How many lines of a failing node's machine-config-daemon log verify shows.
pub const DAEMON_LOG_LINES: usize = 5;

/// The document's steps 9 and 10, and the cluster's health, as a table of checks. Pure.
pub fn verify(inputs: &VerifyInputs, target: &str) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut push = |name: &str, problems: Vec<String>, ok: String| {
        checks.push(Check {
            name: name.to_owned(),
            passed: problems.is_empty(),
            detail: if problems.is_empty() { ok } else { problems.join("; ") },
        });
    };
    let count = inputs.nodes.len();

    let not_done: Vec<String> = inputs
        .nodes
        .iter()
        .filter_map(|n| {
            let state = annotation(n, "machineconfiguration.openshift.io/state");
            let current = annotation(n, "machineconfiguration.openshift.io/currentConfig");
            let desired = annotation(n, "machineconfiguration.openshift.io/desiredConfig");
            (state != "Done" || current != desired).then(|| format!("{} (state {state:?}, current {current}, desired {desired})", name(n)))
        })
        .collect();
    push("machine config state Done, currentConfig == desiredConfig", not_done, format!("all {count} nodes"));

    let marker = format!("ExecStart=/usr/local/bin/configure-ovs.sh {target}");
    let mut missing = Vec::new();
    let mut configs: Vec<&str> = inputs.nodes.iter().map(|n| annotation(n, "machineconfiguration.openshift.io/currentConfig")).collect();
    configs.sort();
    configs.dedup();
    for config in &configs {
        match inputs.machine_configs.iter().find(|mc| name(mc) == *config) {
            Some(mc) if mc.to_string().contains(&marker) => {}
            Some(_) => missing.push(format!("{config} lacks `{marker}`")),
            None => missing.push(format!("MachineConfig {config} not found")),
        }
    }
    push("rendered MachineConfigs run configure-ovs.sh for the new type", missing, format!("{} ({})", marker, configs.join(", ")));

    let network =
        if inputs.status_network_type == target { vec![] } else { vec![format!("status.networkType is {:?}", inputs.status_network_type)] };
    push(&format!("network.config status.networkType == {target}"), network, target.to_owned());

    let not_ready: Vec<String> = inputs
        .nodes
        .iter()
        .filter(|n| condition(n, "Ready") != Some("True"))
        .map(|n| {
            let node = name(n);
            let why = Some(condition_message(n, "Ready")).filter(|m| !m.is_empty()).map(|m| format!(" ({m})")).unwrap_or_default();
            match inputs.daemon_logs.iter().find(|(name, _)| name == node) {
                Some((_, log)) => {
                    let lines: Vec<&str> = log.trim().lines().collect();
                    let tail = lines[lines.len().saturating_sub(DAEMON_LOG_LINES)..].join(" ⏎ ");
                    format!("{node} NotReady{why}; machine-config-daemon log tail: {tail}")
                }
                None => format!("{node} NotReady{why}"),
            }
        })
        .collect();
    push("every node Ready", not_ready, format!("all {count} nodes"));

    let mut before = 0;
    let errors: Vec<String> = inputs
        .pods
        .iter()
        .filter_map(|p| {
            let why = pod_error(p)?;
            let ns = p.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("");
            if inputs.baseline.iter().any(|b| *b == format!("{ns}/{}", name(p))) {
                before += 1;
                return None;
            }
            let node = p.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("-");
            Some(format!("{ns}/{} on {node}: {why}", name(p)))
        })
        .collect();
    let already = if before > 0 { format!("; {before} already failing before the migration, not counted") } else { String::new() };
    push("no pod in an error state", errors, format!("{} pods checked{already}", inputs.pods.len()));

    let unhealthy: Vec<String> = inputs
        .operators
        .iter()
        .filter_map(|o| {
            let mut bad = Vec::new();
            if condition(o, "Available") != Some("True") {
                bad.push("not Available".to_owned());
            }
            if condition(o, "Progressing") == Some("True") {
                bad.push("Progressing".to_owned());
            }
            if condition(o, "Degraded") == Some("True") {
                bad.push(format!("Degraded: {}", condition_message(o, "Degraded")));
            }
            (!bad.is_empty()).then(|| format!("{} {}", name(o), bad.join(", ")))
        })
        .collect();
    push(
        "every ClusterOperator Available, not Progressing, not Degraded",
        unhealthy,
        format!("{} ClusterOperators", inputs.operators.len()),
    );

    let (namespace, daemonset, old_namespace) = plugin_of(target);
    let mut plugin = Vec::new();
    match &inputs.plugin_daemonset {
        None => plugin.push(format!("DaemonSet {namespace}/{daemonset} not found")),
        Some(ds) => {
            let n = |k: &str| ds.pointer(&format!("/status/{k}")).and_then(Value::as_u64).unwrap_or(0);
            let (desired, available, updated) = (n("desiredNumberScheduled"), n("numberAvailable"), n("updatedNumberScheduled"));
            // A status older than the spec speaks of the previous generation (kubectl's rollout
            // status reads it so: kubernetes/kubectl `pkg/polymorphichelpers/rollout_status.go`).
            let generation = ds.pointer("/metadata/generation").and_then(Value::as_u64);
            let observed = ds.pointer("/status/observedGeneration").and_then(Value::as_u64);
            if let (Some(generation), Some(observed)) = (generation, observed)
                && observed < generation
            {
                plugin.push(format!("{daemonset}: status of generation {observed}, not yet of {generation}"));
            } else if desired != count as u64 || available != desired || updated != desired {
                plugin.push(format!("{daemonset}: {available} of {desired} available, {updated} updated, {count} nodes"));
            }
        }
    }
    let left: Vec<String> = inputs
        .pods
        .iter()
        .filter(|p| p.pointer("/metadata/namespace").and_then(Value::as_str) == Some(old_namespace))
        .map(|p| format!("{old_namespace}/{}", name(p)))
        .collect();
    if !left.is_empty() {
        plugin.push(format!("pods of the old network left: {}", left.join(", ")));
    }
    push(
        &format!("{daemonset} rolled out on every node, no {old_namespace} pod left"),
        plugin,
        format!("{daemonset} available on all {count} nodes"),
    );
    checks.extend(super::features::conversion_check(&inputs.features, target));
    checks
}

/// The nodes that hold pods in error (step 10's remedy reboots them), baseline excluded. Pure.
pub fn nodes_with_error_pods(pods: &[Value], baseline: &[String]) -> Vec<String> {
    let mut nodes: Vec<String> = pods
        .iter()
        .filter(|p| pod_error(p).is_some())
        .filter(|p| !baseline.iter().any(|b| *b == format!("{}/{}", text(p, "/metadata/namespace"), name(p))))
        .filter_map(|p| p.pointer("/spec/nodeName").and_then(Value::as_str).map(str::to_owned))
        .collect();
    nodes.sort();
    nodes.dedup();
    nodes
}

/// A JSON value as block YAML, the way `oc get -o yaml` writes it. Pure.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    write_yaml(value, 0, &mut out);
    out
}

fn yaml_scalar(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let plain = !s.is_empty()
                && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
                && !matches!(s.as_str(), "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "~")
                && s.parse::<f64>().is_err()
                && !s.starts_with(['-', '.']);
            if plain { s.clone() } else { serde_json::to_string(s).expect("a string serializes") }
        }
        Value::Array(a) if a.is_empty() => "[]".into(),
        Value::Object(o) if o.is_empty() => "{}".into(),
        _ => unreachable!("containers are written as blocks"),
    }
}

fn is_block(value: &Value) -> bool {
    matches!(value, Value::Array(a) if !a.is_empty()) || matches!(value, Value::Object(o) if !o.is_empty())
}

fn write_yaml(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, v) in map {
                let key = yaml_scalar(&Value::String(key.clone()));
                if is_block(v) {
                    out.push_str(&format!("{pad}{key}:\n"));
                    let child = if matches!(v, Value::Array(_)) { indent } else { indent + 2 };
                    write_yaml(v, child, out);
                } else {
                    out.push_str(&format!("{pad}{key}: {}\n", yaml_scalar(v)));
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                if is_block(item) {
                    let mut nested = String::new();
                    write_yaml(item, indent + 2, &mut nested);
                    // The first line of the item goes after the dash.
                    let trimmed = nested.strip_prefix(&" ".repeat(indent + 2)).unwrap_or(&nested);
                    out.push_str(&format!("{pad}- {trimmed}"));
                } else {
                    out.push_str(&format!("{pad}- {}\n", yaml_scalar(item)));
                }
            }
        }
        scalar => out.push_str(&format!("{pad}{}\n", yaml_scalar(scalar))),
    }
}

#[cfg(test)]
mod tests {
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
        let starting =
            json!({"status": {"phase": "Pending", "containerStatuses": [{"state": {"waiting": {"reason": "ContainerCreating"}}}]}});
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
        let ovs = json!({"metadata": {"name": "rendered-worker-new"}, "spec": {"config": "ExecStart=/usr/local/bin/configure-ovs.sh OVNKubernetes"}});
        let healthy = json!({"metadata": {"name": "network"}, "status": {"conditions": [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "False"}, {"type": "Degraded", "status": "False"}]}});
        let ds =
            |available: u64| json!({"status": {"desiredNumberScheduled": 1, "numberAvailable": available, "updatedNumberScheduled": 1}});
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
}
