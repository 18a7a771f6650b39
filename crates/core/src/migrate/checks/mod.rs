//! The migration's pure decisions: may it start (preflight: named refusals and warnings, here),
//! do the cluster's networks collide with OVN-Kubernetes' internal ranges (`subnets`), did it
//! work, are the MTU and Geneve port sane, which pods are in error (`verify`), and the YAML of
//! the backup (`yaml`).

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

mod subnets;
mod verify;
mod yaml;

pub use subnets::*;
pub use verify::*;
pub use yaml::*;

#[cfg(test)]
mod tests;
