//! The simulated Cluster Network Operator, as far as the SDN → OVN-Kubernetes migration
//! shows it: once `Network.config` asks for another network type and the migration is enabled
//! (the `networkoperator.openshift.io/network-migration` annotation, or the newer
//! `spec.migration.networkType` of `Network.operator`), it renders new MachineConfigs for every
//! pool, rolls the multus DaemonSet, and reports the new type in `status.networkType` once every
//! node has rebooted since the switch. A change without the migration enabled degrades the
//! network ClusterOperator, as the real operator refuses it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::cluster::Cluster;
use super::store::{Filter, PatchType, now_rfc3339};
use super::types;

pub const MIGRATION_ANNOTATION: &str = "networkoperator.openshift.io/network-migration";

/// The rendered MachineConfig name for a pool under a network type.
pub fn rendered_name(pool: &str, network_type: &str) -> String {
    let hash = match network_type {
        "OVNKubernetes" => "0f3e9c1b7a",
        "OpenShiftSDN" => "5b8d2c4e61",
        _ => "9a9a9a9a9a",
    };
    format!("rendered-{pool}-{hash}")
}

pub fn rendered_config(name: &str, network_type: &str) -> Value {
    json!({
        "metadata": {"name": name, "annotations": {"machineconfiguration.openshift.io/generated-by-controller-version": "fleetboot-sim"}},
        "spec": {"config": {"ignition": {"version": "3.4.0"}, "systemd": {"units": [{"name": "ovs-configuration.service", "enabled": true,
            "contents": format!("[Service]\nType=oneshot\nExecStart=/usr/local/bin/configure-ovs.sh {network_type}\n")}]}}},
    })
}

/// Whether the operator may act on a type change. Pure.
pub fn migration_enabled(operator: &Value, target: &str) -> bool {
    let annotated = operator.pointer("/metadata/annotations").and_then(|a| a.get(MIGRATION_ANNOTATION)).is_some();
    let newer = operator.pointer("/spec/migration/networkType").and_then(Value::as_str) == Some(target);
    annotated || newer
}

/// One migration in progress.
struct Switch {
    target: String,
    boot_ids: HashMap<String, String>,
    multus_updated: u64,
}

fn t(group: &str, version: &str, plural: &str) -> &'static types::ResourceType {
    types::find(group, version, plural).expect("known type")
}

pub async fn run(cluster: Arc<Cluster>, interval: Duration, error_pods: usize) {
    let config_t = t("config.openshift.io", "v1", "networks");
    let operator_t = t("operator.openshift.io", "v1", "networks");
    let pools_t = t("machineconfiguration.openshift.io", "v1", "machineconfigpools");
    let mcs_t = t("machineconfiguration.openshift.io", "v1", "machineconfigs");
    let ds_t = t("apps", "v1", "daemonsets");
    let co_t = t("config.openshift.io", "v1", "clusteroperators");
    let nodes_t = t("", "v1", "nodes");
    let pods_t = t("", "v1", "pods");
    let mut current: Option<Switch> = None;
    let mut tick = tokio::time::interval(interval);
    loop {
        tick.tick().await;
        let mut store = cluster.api.store.lock().unwrap();
        let (Ok(config), Ok(operator)) = (store.get(config_t, None, "cluster"), store.get(operator_t, None, "cluster")) else { continue };
        let wanted = config.pointer("/spec/networkType").and_then(Value::as_str).unwrap_or_default().to_owned();
        let running = config.pointer("/status/networkType").and_then(Value::as_str).unwrap_or_default().to_owned();
        let nodes = store.list(nodes_t, &Filter::default(), None, None).items;
        let boot_id = |n: &Value| n.pointer("/status/nodeInfo/bootID").and_then(Value::as_str).unwrap_or_default().to_owned();
        let degraded_message = if wanted != running && !migration_enabled(&operator, &wanted) {
            format!(
                "Not applying unsafe configuration change: network type change from {running} to {wanted} requires the migration to be enabled"
            )
        } else {
            String::new()
        };
        let _ = store.patch(co_t, None, "network", PatchType::Merge, &json!({"status": {"conditions": [
            {"type": "Available", "status": "True", "lastTransitionTime": now_rfc3339()},
            {"type": "Progressing", "status": if current.is_some() { "True" } else { "False" }, "lastTransitionTime": now_rfc3339()},
            {"type": "Degraded", "status": if degraded_message.is_empty() { "False" } else { "True" }, "message": degraded_message, "lastTransitionTime": now_rfc3339()},
        ]}}), Some("status"));

        if wanted != running && migration_enabled(&operator, &wanted) && current.as_ref().is_none_or(|c| c.target != wanted) {
            // The switch: new rendered configs for every pool, and a multus rollout.
            for pool in store.list(pools_t, &Filter::default(), None, None).items {
                let name = pool["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                let rendered = rendered_name(&name, &wanted);
                let _ = store.create(mcs_t, None, rendered_config(&rendered, &wanted));
                let _ = store.patch(pools_t, None, &name, PatchType::Merge, &json!({"spec": {"configuration": {"name": rendered}}}), None);
            }
            if let Ok(ds) = store.patch(
                ds_t,
                Some("openshift-multus"),
                "multus",
                PatchType::Merge,
                &json!({"spec": {"template": {"metadata": {"annotations": {"networkoperator.openshift.io/network-type": wanted}}}}}),
                None,
            ) {
                let generation = ds["metadata"]["generation"].clone();
                let _ = store.patch(
                    ds_t,
                    Some("openshift-multus"),
                    "multus",
                    PatchType::Merge,
                    &json!({"status": {"updatedNumberScheduled": 0, "observedGeneration": generation}}),
                    Some("status"),
                );
            }
            current = Some(Switch {
                target: wanted.clone(),
                boot_ids: nodes.iter().map(|n| (n["metadata"]["name"].as_str().unwrap_or_default().to_owned(), boot_id(n))).collect(),
                multus_updated: 0,
            });
            continue;
        }
        // Pods the switch left crash-looping recover when their node reboots (the kubelets do that).
        let Some(switch) = current.as_mut() else { continue };
        // The multus rollout: a tenth of the nodes per tick.
        let total = nodes.len() as u64;
        if switch.multus_updated < total {
            switch.multus_updated = (switch.multus_updated + total.div_ceil(10).max(1)).min(total);
            let _ = store.patch(
                ds_t,
                Some("openshift-multus"),
                "multus",
                PatchType::Merge,
                &json!({"status": {"updatedNumberScheduled": switch.multus_updated}}),
                Some("status"),
            );
        }
        let all_rebooted =
            nodes.iter().all(|n| switch.boot_ids.get(n["metadata"]["name"].as_str().unwrap_or_default()).is_some_and(|b| *b != boot_id(n)));
        if all_rebooted && switch.multus_updated >= total {
            let _ = store.patch(
                config_t,
                None,
                "cluster",
                PatchType::Merge,
                &json!({"status": {"networkType": switch.target}}),
                Some("status"),
            );
            let _ = store.patch(
                operator_t,
                None,
                "cluster",
                PatchType::Merge,
                &json!({"spec": {"defaultNetwork": {"type": switch.target}}}),
                None,
            );
            // A few application pods come out of the switch broken until their node reboots again.
            let workers: Vec<&std::sync::Arc<Value>> = nodes
                .iter()
                .filter(|n| n.pointer("/metadata/labels").and_then(|l| l.get("node-role.kubernetes.io/worker")).is_some())
                .collect();
            for (i, node) in workers.iter().take(error_pods).enumerate() {
                let node_name = node["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                let _ = store.create(
                    pods_t,
                    Some("default"),
                    json!({
                        "metadata": {"name": format!("app-{i}"), "labels": {"app": "sample"}},
                        "spec": {"nodeName": node_name, "containers": [{"name": "app", "image": "quay.io/example/app"}]},
                        "status": {"phase": "Running", "containerStatuses": [{"name": "app", "ready": false, "restartCount": 3,
                            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}}}]},
                    }),
                );
            }
            current = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_migration_is_enabled_by_either_variant() {
        let annotated = json!({"metadata": {"annotations": {MIGRATION_ANNOTATION: ""}}});
        assert!(migration_enabled(&annotated, "OVNKubernetes"));
        let newer = json!({"metadata": {}, "spec": {"migration": {"networkType": "OVNKubernetes"}}});
        assert!(migration_enabled(&newer, "OVNKubernetes"));
        assert!(!migration_enabled(&newer, "OpenShiftSDN"));
        assert!(!migration_enabled(&json!({"metadata": {}}), "OVNKubernetes"));
    }

    #[test]
    fn rendered_configs_name_the_network_type() {
        let mc = rendered_config(&rendered_name("worker", "OVNKubernetes"), "OVNKubernetes");
        assert_eq!(mc["metadata"]["name"], "rendered-worker-0f3e9c1b7a");
        assert!(mc.to_string().contains("ExecStart=/usr/local/bin/configure-ovs.sh OVNKubernetes"));
    }
}
