//! What the batch gates read from the cluster: pods matching `--block-on-pods`, and the health
//! gate's nodes, MachineConfigPools and ClusterOperators. (The PodDisruptionBudgets that block
//! a drain are the drainer's own question: `drain.rs`.)

use std::collections::BTreeSet;
use std::sync::Arc;

use fleetboot_core::batch::{HealthView, PodNow};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};

use super::{api_resource, machine_config_pools};

/// Every pod matching the label selector, in every namespace.
pub async fn pods_matching(client: &Client, selector: &str) -> Result<Vec<PodNow>, String> {
    let list = Api::<Pod>::all(client.clone())
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| format!("cannot list the pods matching {selector:?}: {e}"))?;
    Ok(list
        .items
        .into_iter()
        .map(|p| PodNow {
            namespace: p.metadata.namespace.unwrap_or_default(),
            name: p.metadata.name.unwrap_or_default(),
            node: p.spec.and_then(|s| s.node_name),
            phase: p.status.and_then(|s| s.phase),
        })
        .collect())
}

fn ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

/// The health gate's view: nodes not Ready (but `exclude`), pools Degraded, ClusterOperators
/// not Available or Degraded. Kinds the cluster does not serve (no OpenShift) count as none.
pub async fn read_health(client: &Client, nodes: &[Arc<Node>], exclude: &BTreeSet<String>) -> Result<HealthView, String> {
    let mut not_ready: Vec<String> =
        nodes.iter().filter(|n| !ready(n)).filter_map(|n| n.metadata.name.clone()).filter(|name| !exclude.contains(name)).collect();
    not_ready.sort();
    let list = |resource: kube::discovery::ApiResource, what: &'static str| {
        let client = client.clone();
        async move {
            match Api::<DynamicObject>::all_with(client, &resource).list(&ListParams::default()).await {
                Ok(list) => Ok(list.items),
                Err(kube::Error::Api(status)) if status.code == 404 => Ok(Vec::new()),
                Err(e) => Err(format!("cannot list the {what}: {e}")),
            }
        }
    };
    let operators = api_resource("config.openshift.io", "v1", "ClusterOperator", "clusteroperators");
    let (pools, operators) = futures::join!(list(machine_config_pools(), "MachineConfigPools"), list(operators, "ClusterOperators"));
    let name = |o: &DynamicObject| o.metadata.name.clone().unwrap_or_default();
    let degraded_pools = pools?.iter().filter(|p| fleetboot_core::conditions::is_true(&p.data, "Degraded")).map(name).collect();
    let unhealthy_operators = operators?
        .iter()
        .filter_map(|o| {
            let available = fleetboot_core::conditions::is_true(&o.data, "Available");
            let degraded = fleetboot_core::conditions::is_true(&o.data, "Degraded");
            match (available, degraded) {
                (true, false) => None,
                (false, true) => Some(format!("{}: not Available, Degraded", name(o))),
                (false, false) => Some(format!("{}: not Available", name(o))),
                (true, true) => Some(format!("{}: Degraded", name(o))),
            }
        })
        .collect();
    Ok(HealthView { not_ready, degraded_pools, unhealthy_operators })
}
