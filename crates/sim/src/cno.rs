//! The simulated Cluster Network Operator, as far as the SDN → OVN-Kubernetes migration shows
//! it, following the rules of the simulated release ([`Release`]):
//!
//! - it copies `Network.config` `spec.networkType` into `Network.operator`
//!   `spec.defaultNetwork.type` (cluster-network-operator
//!   `pkg/controller/clusterconfig/clusterconfig_controller.go`, `Reconcile` →
//!   `network.MergeClusterConfig`);
//! - it compares the operator config with the configuration it applied last (the
//!   `applied-cluster` ConfigMap; `pkg/controller/operconfig/operconfig_controller.go`,
//!   `Reconcile` → `GetAppliedConfiguration`, `network.IsChangeSafe`) and refuses an unsafe change
//!   by going Degraded with the operator's own message, leaving the change unapplied;
//! - when it applies `spec.migration` it writes `Network.config` `status.migration`
//!   (`pkg/controller/clusterconfig`/`statusmanager`, `StatusFromOperatorConfig`), and when it
//!   applies a new type it writes `status.networkType`, rolls multus and replaces the old
//!   network's DaemonSet with the new one's.
//!
//! - from 4.12 it converts OpenShift SDN's egress firewalls, multicast and egress IPs
//!   ([`super::features`]).
//!
//! It does not render MachineConfigs: the MCO does ([`super::mco`]).
//!
//! One file, past 500 lines: the network operator's reconcile is one loop, each rule beside its source.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::store::{Filter, PatchType, now_rfc3339};
use super::types;
use super::version::Release;
use super::world::World;

pub const MIGRATION_ANNOTATION: &str = "networkoperator.openshift.io/network-migration";

/// The part of `Network.operator` `spec` the migration rules compare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetSpec {
    /// `spec.defaultNetwork.type`
    pub default_type: String,
    /// `spec.migration.networkType` when `spec.migration` is set (`Some("")` for an empty one).
    pub migration: Option<String>,
    /// `spec.migration.mode` ("" when unset: offline).
    pub migration_mode: String,
}

impl NetSpec {
    pub fn of(operator: &Value) -> NetSpec {
        let migration = operator.pointer("/spec/migration").filter(|m| m.is_object());
        NetSpec {
            default_type: operator.pointer("/spec/defaultNetwork/type").and_then(Value::as_str).unwrap_or_default().to_owned(),
            migration: migration.map(|m| m.get("networkType").and_then(Value::as_str).unwrap_or_default().to_owned()),
            migration_mode: migration.and_then(|m| m.get("mode")).and_then(Value::as_str).unwrap_or_default().to_owned(),
        }
    }
}

/// Why the operator refuses to go from the applied `prev` to `next`; empty: safe. Pure.
pub fn change_errors(release: Release, prev: &NetSpec, next: &NetSpec, annotated: bool) -> Vec<String> {
    let mut errors = Vec::new();
    if release.annotation_enables_migration() {
        // ≤ 4.7 `pkg/controller/operconfig/operconfig_controller.go`, `Reconcile`: the annotation
        // skips `IsChangeSafe`; without it `pkg/network/render.go`, `IsDefaultNetworkChangeSafe`
        // refuses any type change ("cannot change default network type").
        if !annotated && prev.default_type != next.default_type {
            errors.push("cannot change default network type".to_owned());
        }
        return errors;
    }
    // 4.8-4.17 `pkg/network/render.go`, `IsChangeSafe` runs `isMigrationChangeSafe` then
    // `isDefaultNetworkChangeSafe`, against the *applied* configuration (4.17's
    // `isDefaultNetworkChangeSafe` is 4.16's; what 4.17 refuses is OpenShift SDN itself, in
    // [`validation_errors`]).
    if let (Some(before), Some(after)) = (&prev.migration, &next.migration) {
        let refused = if release.minor >= 17 {
            // release-4.17: a new target unless the new one is a live migration.
            before != after && next.migration_mode != "Live"
        } else if release.minor >= 15 {
            // release-4.15/4.16 (with the live migration): an empty type on either side is no
            // target yet, and the mode may not change either.
            !before.is_empty() && !after.is_empty() && (before != after || prev.migration_mode != next.migration_mode)
        } else {
            // release-4.8 … release-4.14: any other type, an empty one included.
            before != after
        };
        if refused {
            errors.push(release.migration_change_refusal().to_owned());
        }
    }
    if prev.default_type != next.default_type {
        match &prev.migration {
            None => errors.push("cannot change default network type when not doing migration".to_owned()),
            Some(target) if *target != next.default_type => {
                errors.push("can only change default network type to the target migration network type".to_owned())
            }
            Some(_) => {}
        }
    }
    errors
}

/// Why the operator finds the configuration itself invalid, before comparing it with the
/// applied one; empty: valid. From 4.17 OpenShift SDN is no longer deployed: cluster-network-operator
/// commit 0b9c0b2fc ("Reject openshift-sdn as a plugin, drop references to image", first on
/// release-4.17) makes `pkg/network/render.go` `validateDefaultNetwork` return `unsupported
/// network type "OpenShiftSDN"`. (No 4.17 cluster runs SDN: 4.16's operator sets Upgradeable=False
/// with reason `OpenShiftSDNConfigured`, `pkg/controller/statusmanager/status_manager.go`.) Pure.
pub fn validation_errors(release: Release, next: &NetSpec) -> Vec<String> {
    if !release.has_openshift_sdn() && next.default_type == "OpenShiftSDN" {
        return vec![format!("unsupported network type {:?}", next.default_type)];
    }
    Vec::new()
}

/// The Degraded message for an invalid configuration (`operconfig_controller.go`, `Reconcile`:
/// `network.Validate` fails → `SetDegraded(OperatorConfig, "InvalidOperatorConfig", "The operator
/// configuration is invalid (%v). Use 'oc edit network.operator.openshift.io cluster' to fix.")`,
/// release-4.17). Pure.
pub fn invalid_message(errors: &[String]) -> String {
    format!(
        "The operator configuration is invalid (invalid configuration: [{}]). Use 'oc edit network.operator.openshift.io cluster' to fix.",
        errors.join(" ")
    )
}

/// The Degraded message of the `network` ClusterOperator for refused changes
/// (`pkg/controller/operconfig/operconfig_controller.go`, `Reconcile`: `SetDegraded(OperatorConfig,
/// "InvalidOperatorConfig", ...)` around `IsChangeSafe`'s "invalid configuration: %v"). Pure.
pub fn degraded_message(errors: &[String]) -> String {
    format!(
        "Not applying unsafe configuration change: invalid configuration: [{}]. Use 'oc edit network.operator.openshift.io cluster' to undo the change.",
        errors.join(" ")
    )
}

pub use super::world::plugin_daemonset;

/// One type change in progress: the boot IDs at the switch, and the multus rollout.
struct Switch {
    target: String,
    boot_ids: HashMap<String, String>,
    multus_updated: u64,
}

fn t(group: &str, version: &str, plural: &str) -> &'static types::ResourceType {
    types::find(group, version, plural).expect("known type")
}

pub async fn run(cluster: Arc<World>, interval: Duration, error_pods: usize) {
    let config_t = t("config.openshift.io", "v1", "networks");
    let operator_t = t("operator.openshift.io", "v1", "networks");
    let ds_t = t("apps", "v1", "daemonsets");
    let co_t = t("config.openshift.io", "v1", "clusteroperators");
    let nodes_t = t("", "v1", "nodes");
    let pods_t = t("", "v1", "pods");
    let release = cluster.release;
    let mut applied: Option<NetSpec> = None;
    let mut current: Option<Switch> = None;
    let mut last_refusal: Option<String> = None;
    let mut tick = tokio::time::interval(interval);
    loop {
        tick.tick().await;
        let mut store = cluster.api.store.lock().unwrap();
        let (Ok(config), Ok(mut operator)) = (store.get(config_t, None, "cluster"), store.get(operator_t, None, "cluster")) else {
            continue;
        };
        // The cluster config controller: Network.config spec.networkType → operator spec; during
        // a live migration only its steps change the operator config ([`super::live`]).
        let live = super::live::active(release, &config);
        let wanted = config.pointer("/spec/networkType").and_then(Value::as_str).unwrap_or_default().to_owned();
        let mut live_error = None;
        if live {
            match live_reconcile(&mut store, &config, &operator, current.is_some()) {
                Ok(Some(o)) => operator = o,
                Ok(None) => {}
                Err(e) => live_error = Some(e),
            }
        } else if !wanted.is_empty() && NetSpec::of(&operator).default_type != wanted {
            match store.patch(operator_t, None, "cluster", PatchType::Merge, &json!({"spec": {"defaultNetwork": {"type": wanted}}}), None) {
                Ok(o) => operator = o,
                Err(_) => continue,
            }
        }
        let next = NetSpec::of(&operator);
        let prev = applied.get_or_insert_with(|| next.clone()).clone();
        let annotated = operator.pointer("/metadata/annotations").and_then(|a| a.get(MIGRATION_ANNOTATION)).is_some();
        let invalid = validation_errors(release, &next);
        let errors = if invalid.is_empty() { change_errors(release, &prev, &next, annotated) } else { invalid.clone() };
        let nodes = store.list(nodes_t, &Filter::default(), None, None).items;
        let boot_id = |n: &Value| n.pointer("/status/nodeInfo/bootID").and_then(Value::as_str).unwrap_or_default().to_owned();
        let live_mode = operator.pointer("/spec/migration/mode").and_then(Value::as_str) == Some("Live");
        if errors.is_empty() && live_mode && release.mco_reads_status_migration() {
            // `StatusFromOperatorConfig`: in Live mode status.migration follows the operator's
            // type and carries the MTU migration ([`super::live::status_migration`]).
            let migration = super::live::status_migration(&operator);
            if config.pointer("/status/migration") != Some(&migration) {
                let _ = store.patch(config_t, None, "cluster", PatchType::Merge, &json!({"status": {"migration": null}}), Some("status"));
                let _ =
                    store.patch(config_t, None, "cluster", PatchType::Merge, &json!({"status": {"migration": migration}}), Some("status"));
            }
        }
        if errors.is_empty() && next != prev {
            if next.migration != prev.migration && release.mco_reads_status_migration() && !live_mode {
                let migration = next.migration.as_ref().map(|t| json!({"networkType": t})).unwrap_or(Value::Null);
                let _ =
                    store.patch(config_t, None, "cluster", PatchType::Merge, &json!({"status": {"migration": migration}}), Some("status"));
            }
            if live_mode && prev.migration.is_none() {
                // Step 1 of the live migration: the target CNI is deployed next to the running
                // one (release-4.16 `pkg/network/render.go`, `renderDefaultNetwork` renders both
                // plugins while `spec.migration.mode` is Live).
                let target = next.migration.clone().unwrap_or_default();
                drop(store);
                cluster.deploy_network_plugin(&target, true);
                store = cluster.api.store.lock().unwrap();
            }
            if live && next.migration.is_none() && prev.migration.is_some() {
                // Step 4: only the default network is rendered again; the status manager deletes
                // the other plugin (`pkg/controller/statusmanager`, `deleteRelatedObjectsNotRendered`).
                let _ = store.patch(config_t, None, "cluster", PatchType::Merge, &json!({"status": {"migration": null}}), Some("status"));
                let (old_ns, old_name) =
                    plugin_daemonset(if next.default_type == "OVNKubernetes" { "OpenShiftSDN" } else { "OVNKubernetes" });
                purge(&mut store, old_ns, old_name);
            }
            if next.default_type != prev.default_type {
                let target = next.default_type.clone();
                // `pkg/network/cluster_config.go`, `StatusFromOperatorConfig`: the status MTU is
                // the applied type's, its default the probed host MTU (1500 here) minus the
                // overlay (`FillDefaults`: Geneve 100, VXLAN 50).
                let (config_key, overlay) =
                    if target == "OVNKubernetes" { ("ovnKubernetesConfig", 100) } else { ("openshiftSDNConfig", 50) };
                let mtu =
                    operator.pointer(&format!("/spec/defaultNetwork/{config_key}/mtu")).and_then(Value::as_u64).unwrap_or(1500 - overlay);
                let _ = store.patch(
                    config_t,
                    None,
                    "cluster",
                    PatchType::Merge,
                    &json!({"status": {"networkType": target, "clusterNetworkMTU": mtu}}),
                    Some("status"),
                );
                // The new plugin replaces the old one (the status manager deletes what is no longer
                // rendered: `pkg/controller/statusmanager`, `deleteRelatedObjectsNotRendered`).
                // In a live migration both run until step 4 purges the original.
                if !live_mode {
                    let (old_ns, old_name) = plugin_daemonset(&prev.default_type);
                    purge(&mut store, old_ns, old_name);
                }
                drop(store);
                if !live_mode {
                    cluster.deploy_network_plugin(&target, false);
                }
                store = cluster.api.store.lock().unwrap();
                if let Ok(ds) = store.patch(
                    ds_t,
                    Some("openshift-multus"),
                    "multus",
                    PatchType::Merge,
                    &json!({"spec": {"template": {"metadata": {"annotations": {"networkoperator.openshift.io/network-type": target}}}}}),
                    None,
                ) {
                    let generation = ds["metadata"]["generation"].clone();
                    let _ = store.patch(
                        ds_t,
                        Some("openshift-multus"),
                        "multus",
                        PatchType::Merge,
                        &json!({"status": {"updatedNumberScheduled": 0, "numberAvailable": 0, "observedGeneration": generation}}),
                        Some("status"),
                    );
                }
                // A few application pods lose their network with the switch and crash-loop until
                // their node reboots (the kubelets restart them then).
                let workers: Vec<&Arc<Value>> = nodes
                    .iter()
                    .filter(|n| n.pointer("/metadata/labels").and_then(|l| l.get("node-role.kubernetes.io/worker")).is_some())
                    .collect();
                for (i, node) in workers.iter().take(if live_mode { 0 } else { error_pods }).enumerate() {
                    let node_name = node["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                    let name = format!("app-{i}");
                    let _ = store.delete(pods_t, Some("default"), &name);
                    let _ = store.create(pods_t, Some("default"), super::world::app_pod(&name, &node_name, true));
                }
                current = Some(Switch {
                    target,
                    boot_ids: nodes.iter().map(|n| (n["metadata"]["name"].as_str().unwrap_or_default().to_owned(), boot_id(n))).collect(),
                    multus_updated: 0,
                });
            }
            applied = Some(next.clone());
        }
        if errors.is_empty() {
            // After the applied configuration, as `Reconcile` does: an unsafe change returns
            // before it (`pkg/controller/operconfig/operconfig_controller.go`).
            super::features::convert(&mut store, release, &operator);
        }
        let message = match (&live_error, errors.is_empty()) {
            // `operconfig_controller.go`: ClusterNetworkStatus's error (the live migration's
            // validation) sets Degraded "StatusError".
            (Some((_, e)), true) => e.clone(),
            (_, true) => String::new(),
            (_, false) if !invalid.is_empty() => invalid_message(&invalid),
            (_, false) => degraded_message(&errors),
        };
        if !errors.is_empty() && last_refusal.as_ref() != Some(&message) {
            cluster.refusals.lock().unwrap().push(message.clone());
        }
        last_refusal = (!errors.is_empty()).then(|| message.clone());
        let now = now_rfc3339();
        let old_conditions = store.get(co_t, None, "network").ok().and_then(|co| co.pointer("/status/conditions").cloned());
        let condition = |kind: &str, on: bool, reason: &str, message: &str| {
            let status = if on { "True" } else { "False" };
            // An unchanged condition keeps its transition time.
            let since = old_conditions
                .as_ref()
                .and_then(Value::as_array)
                .and_then(|c| c.iter().find(|c| c["type"] == kind && c["status"] == status))
                .and_then(|c| c["lastTransitionTime"].as_str().map(str::to_owned))
                .unwrap_or_else(|| now.clone());
            json!({"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": since})
        };
        let conditions = json!([
            condition("Available", true, "AsExpected", ""),
            condition(
                "Progressing",
                current.is_some(),
                if current.is_some() { "Deploying" } else { "AsExpected" },
                if current.is_some() { "DaemonSet \"/openshift-multus/multus\" is not available" } else { "" }
            ),
            condition(
                "Degraded",
                !message.is_empty(),
                match (errors.is_empty(), &live_error) {
                    (false, _) => "InvalidOperatorConfig",
                    (true, Some((reason, _))) => reason,
                    _ => "AsExpected",
                },
                &message
            ),
        ]);
        if old_conditions.as_ref() != Some(&conditions) {
            let _ = store.patch(co_t, None, "network", PatchType::Merge, &json!({"status": {"conditions": conditions}}), Some("status"));
        }

        let Some(switch) = current.as_mut() else { continue };
        let target = switch.target.clone();
        // The multus rollout: a tenth of the nodes per tick.
        let total = nodes.len() as u64;
        if switch.multus_updated < total {
            switch.multus_updated = (switch.multus_updated + total.div_ceil(10).max(1)).min(total);
            let _ = store.patch(
                ds_t,
                Some("openshift-multus"),
                "multus",
                PatchType::Merge,
                &json!({"status": {"updatedNumberScheduled": switch.multus_updated, "numberAvailable": switch.multus_updated}}),
                Some("status"),
            );
        }
        let all_rebooted =
            nodes.iter().all(|n| switch.boot_ids.get(n["metadata"]["name"].as_str().unwrap_or_default()).is_some_and(|b| *b != boot_id(n)));
        if all_rebooted && switch.multus_updated >= total {
            current = None;
        }
        drop(store);
        cluster.sync_network_plugin(&target);
    }
}

/// Deletes a plugin's DaemonSet and its pods.
fn purge(store: &mut super::store::Store, namespace: &str, name: &str) {
    let _ = store.delete(t("apps", "v1", "daemonsets"), Some(namespace), name);
    let pods_t = t("", "v1", "pods");
    let filter = Filter { namespace: Some(namespace.to_owned()), ..Default::default() };
    for pod in store.list(pods_t, &filter, None, None).items {
        let _ = store.delete(pods_t, Some(namespace), pod["metadata"]["name"].as_str().unwrap_or_default());
    }
}

/// One pass of the live migration ([`super::live`]): the operconfig controller's status part
/// (validate and initialise, or sync the conditions while the operator is not `progressing`),
/// then the clusterconfig controller's step. Ok(Some): the operator config after the step;
/// Err: the Degraded reason and message of the validation's or the step's error.
fn live_reconcile(
    store: &mut super::store::Store,
    config: &Value,
    operator: &Value,
    progressing: bool,
) -> Result<Option<Arc<Value>>, (&'static str, String)> {
    use super::live;
    let config_t = t("config.openshift.io", "v1", "networks");
    let operator_t = t("operator.openshift.io", "v1", "networks");
    let now = now_rfc3339();
    let mut conditions = live::conditions_of(config);
    let spec = config.pointer("/spec/networkType").and_then(Value::as_str).unwrap_or_default();
    let status = config.pointer("/status/networkType").and_then(Value::as_str).unwrap_or_default();
    if live::is(&conditions, live::IN_PROGRESS, "True") {
        if !progressing {
            let pools_t = t("machineconfiguration.openshift.io", "v1", "machineconfigpools");
            let mcs_t = t("machineconfiguration.openshift.io", "v1", "machineconfigs");
            let pools: Vec<live::Pool> = store
                .list(pools_t, &Filter::default(), None, None)
                .items
                .iter()
                .map(|p| {
                    let on = |kind: &str| {
                        p.pointer("/status/conditions")
                            .and_then(Value::as_array)
                            .is_some_and(|c| c.iter().any(|c| c["type"] == kind && c["status"] == "True"))
                    };
                    let rendered = p.pointer("/status/configuration/name").and_then(Value::as_str).unwrap_or_default();
                    live::Pool {
                        name: p["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
                        degraded: on("Degraded"),
                        updating: on("Updating"),
                        config: store.get(mcs_t, None, rendered).ok().map(|mc| live::units(&mc)),
                    }
                })
                .collect();
            let ds_t = t("apps", "v1", "daemonsets");
            let mut daemonsets = Vec::new();
            for ns in ["openshift-ovn-kubernetes", "openshift-sdn"] {
                let filter = Filter { namespace: Some(ns.to_owned()), ..Default::default() };
                for ds in store.list(ds_t, &filter, None, None).items {
                    daemonsets.push((ns.to_owned(), live::daemonset_ready(&ds)));
                }
            }
            conditions = live::sync(config, operator, &pools, &daemonsets, &now);
        }
    } else if spec != status {
        let pods_t = t("", "v1", "pods");
        let macvlan = store
            .list(pods_t, &Filter::default(), None, None)
            .items
            .iter()
            .filter(|p| p.pointer("/metadata/annotations").and_then(|a| a.get(live::ASSIGN_MACVLAN)).is_some())
            .count();
        // `HostedControlPlane` is set where the CNO runs for a HyperShift hosted cluster
        // (release-4.16 `pkg/platform/platform.go`, `BootstrapInfra`: `HYPERSHIFT=true`);
        // the hosted cluster's own Infrastructure says so as controlPlaneTopology External
        // (openshift/api `config/v1/types_infrastructure.go`, `ExternalTopologyMode`).
        let hosted = store
            .get(t("config.openshift.io", "v1", "infrastructures"), None, "cluster")
            .is_ok_and(|i| i.pointer("/status/controlPlaneTopology").and_then(Value::as_str) == Some("External"));
        if let Some(blocker) = live::blocker(config, operator, hosted, macvlan) {
            // `operconfig_controller.go`: ClusterNetworkStatus's error sets Degraded "StatusError".
            return Err(("StatusError", format!("Could not update cluster configuration status: {blocker}")));
        }
        live::init(&mut conditions, &now);
    } else {
        live::reset(&mut conditions, &now);
    }
    let mut config = config.clone();
    if live::conditions_of(&config) != conditions
        && let Ok(c) =
            store.patch(config_t, None, "cluster", PatchType::Merge, &json!({"status": {"conditions": conditions}}), Some("status"))
    {
        config = (*c).clone();
    }
    // The clusterconfig controller (`processNetworkTypeLiveMigration`): nothing while the
    // operator is Progressing.
    if progressing || !live::is(&live::conditions_of(&config), live::IN_PROGRESS, "True") {
        return Ok(None);
    }
    // `clusterconfig_controller.go`, `Reconcile`: the step's error sets Degraded
    // "NetworkTypeMigrationFailed".
    let step = live::next_step(&config, operator).map_err(|e| {
        (
            "NetworkTypeMigrationFailed",
            format!("Failed to process SDN live migration ({e}). Use 'oc edit network.config.openshift.io cluster' to fix."),
        )
    })?;
    let Some(step) = step else { return Ok(None) };
    let mut merged = operator["spec"].clone();
    super::patch::merge_patch(&mut merged, &step);
    if merged == operator["spec"] {
        return Ok(None);
    }
    Ok(store.patch(operator_t, None, "cluster", PatchType::Merge, &json!({"spec": step}), None).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(default_type: &str, migration: Option<&str>) -> NetSpec {
        NetSpec { default_type: default_type.into(), migration: migration.map(str::to_owned), migration_mode: String::new() }
    }

    fn r(text: &str) -> Release {
        Release::parse(text).unwrap()
    }

    #[test]
    fn up_to_4_7_the_annotation_allows_the_type_change() {
        let (sdn, ovn) = (spec("OpenShiftSDN", None), spec("OVNKubernetes", None));
        assert_eq!(change_errors(r("4.7.60"), &sdn, &ovn, false), ["cannot change default network type"]);
        assert!(change_errors(r("4.7.60"), &sdn, &ovn, true).is_empty());
    }

    #[test]
    fn from_4_8_only_an_applied_spec_migration_allows_the_type_change() {
        let sdn = spec("OpenShiftSDN", None);
        // The annotation is ignored.
        assert_eq!(
            change_errors(r("4.14.38"), &sdn, &spec("OVNKubernetes", None), true),
            ["cannot change default network type when not doing migration"]
        );
        // spec.migration and spec.networkType in one go: the applied config has no migration yet.
        assert_eq!(
            change_errors(r("4.14.38"), &sdn, &spec("OVNKubernetes", Some("OVNKubernetes")), false),
            ["cannot change default network type when not doing migration"]
        );
        // spec.migration alone is safe; once applied, the switch to its type is too.
        let prepared = spec("OpenShiftSDN", Some("OVNKubernetes"));
        assert!(change_errors(r("4.14.38"), &sdn, &prepared, false).is_empty());
        assert!(change_errors(r("4.14.38"), &prepared, &spec("OVNKubernetes", Some("OVNKubernetes")), false).is_empty());
        // Not to another type, and the target cannot change once started.
        assert_eq!(
            change_errors(r("4.16.21"), &spec("OVNKubernetes", Some("OVNKubernetes")), &spec("OpenShiftSDN", Some("OpenShiftSDN")), false),
            [
                "cannot change migration network type after migration has started",
                "can only change default network type to the target migration network type"
            ]
        );
        assert_eq!(
            change_errors(r("4.10.67"), &spec("OVNKubernetes", Some("OVNKubernetes")), &spec("OVNKubernetes", Some("OpenShiftSDN")), false),
            ["cannot change migration network type after migration is start"]
        );
        // Rollback as documented: spec.migration null first, then the SDN target.
        let ovn_done = spec("OVNKubernetes", None);
        assert!(change_errors(r("4.16.21"), &spec("OVNKubernetes", Some("OVNKubernetes")), &ovn_done, false).is_empty());
        let back = spec("OVNKubernetes", Some("OpenShiftSDN"));
        assert!(change_errors(r("4.16.21"), &ovn_done, &back, false).is_empty());
        assert!(change_errors(r("4.16.21"), &back, &spec("OpenShiftSDN", Some("OpenShiftSDN")), false).is_empty());
    }

    #[test]
    fn from_4_15_an_empty_target_is_no_target_and_the_mode_counts() {
        let empty = spec("OpenShiftSDN", Some(""));
        let ovn = spec("OpenShiftSDN", Some("OVNKubernetes"));
        let refusal = ["cannot change migration network type after migration has started"];
        // 4.14 compares the types, an empty one included; 4.15 and 4.16 only two set ones.
        assert_eq!(change_errors(r("4.14.38"), &empty, &ovn, false), refusal);
        assert!(change_errors(r("4.15.40"), &empty, &ovn, false).is_empty());
        assert!(change_errors(r("4.16.21"), &empty, &ovn, false).is_empty());
        let live = NetSpec { migration_mode: "Live".into(), ..ovn.clone() };
        assert_eq!(change_errors(r("4.16.21"), &ovn, &live, false), refusal);
        assert!(change_errors(r("4.14.38"), &ovn, &live, false).is_empty(), "4.14 knows no mode");
        // 4.17: another target only for a live migration.
        let sdn_live = NetSpec { migration_mode: "Live".into(), ..spec("OVNKubernetes", Some("OpenShiftSDN")) };
        assert!(change_errors(r("4.17.3"), &spec("OVNKubernetes", Some("OVNKubernetes")), &sdn_live, false).is_empty());
    }

    #[test]
    fn from_4_17_openshift_sdn_is_an_invalid_configuration() {
        let sdn = spec("OpenShiftSDN", Some("OpenShiftSDN"));
        assert_eq!(validation_errors(r("4.17.3"), &sdn), [r#"unsupported network type "OpenShiftSDN""#]);
        assert!(validation_errors(r("4.16.21"), &sdn).is_empty());
        assert!(validation_errors(r("4.17.3"), &spec("OVNKubernetes", None)).is_empty());
        assert_eq!(
            invalid_message(&validation_errors(r("4.17.3"), &sdn)),
            r#"The operator configuration is invalid (invalid configuration: [unsupported network type "OpenShiftSDN"]). Use 'oc edit network.operator.openshift.io cluster' to fix."#
        );
        // The change rules themselves are 4.16's.
        assert_eq!(
            change_errors(r("4.17.3"), &spec("OVNKubernetes", None), &sdn, false),
            ["cannot change default network type when not doing migration"]
        );
    }

    #[test]
    fn the_degraded_message_is_the_operators() {
        assert_eq!(
            degraded_message(&["cannot change default network type when not doing migration".into()]),
            "Not applying unsafe configuration change: invalid configuration: [cannot change default network type when not doing migration]. Use 'oc edit network.operator.openshift.io cluster' to undo the change."
        );
    }
}
