//! Node discovery: every node with its roles, addresses of the chosen type, readiness, boot ID
//! and MachineConfigPool, as the migration document's jsonpath reads them.

use std::collections::BTreeMap;

use fleetboot_core::nodes::{MaxUnavailable, NodeInfo, PoolSelector, pool_of, string_map};
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::ApiResource;

use super::{ClusterError, api_resource};

pub fn node_info(node: &Node, pools: &[PoolSelector], address_type: &str) -> NodeInfo {
    let labels: BTreeMap<String, String> = node.metadata.labels.clone().unwrap_or_default().into_iter().collect();
    let mut roles: Vec<String> = labels.keys().filter_map(|k| k.strip_prefix("node-role.kubernetes.io/")).map(str::to_owned).collect();
    roles.sort();
    let status = node.status.as_ref();
    let addresses = status
        .and_then(|s| s.addresses.as_ref())
        .map(|list| list.iter().filter(|a| a.type_ == address_type).map(|a| a.address.clone()).collect())
        .unwrap_or_default();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.clone())
        .unwrap_or_else(|| "Unknown".into());
    let info = status.and_then(|s| s.node_info.as_ref());
    NodeInfo {
        name: node.metadata.name.clone().unwrap_or_default(),
        roles,
        addresses,
        address_type: address_type.to_owned(),
        ready,
        boot_id: info.map(|i| i.boot_id.clone()).unwrap_or_default(),
        pool: pool_of(&labels, pools),
        kubelet_version: info.map(|i| i.kubelet_version.clone()).unwrap_or_default(),
        unschedulable: node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false),
        labels,
        bmc: None,
        bmc_status: None,
        kube_exec: None,
        machine: node.metadata.annotations.as_ref().and_then(|a| a.get("machine.openshift.io/machine")).cloned(),
        provider_id: node.spec.as_ref().and_then(|s| s.provider_id.clone()),
        all_addresses: status
            .and_then(|s| s.addresses.as_ref())
            .map(|list| list.iter().map(|a| a.address.clone()).collect())
            .unwrap_or_default(),
    }
}

pub fn pool_selectors(pools: &[DynamicObject]) -> Vec<PoolSelector> {
    pools
        .iter()
        .map(|p| PoolSelector {
            name: p.metadata.name.clone().unwrap_or_default(),
            match_labels: string_map(p.data.pointer("/spec/nodeSelector/matchLabels")),
            max_unavailable: MaxUnavailable::parse(p.data.pointer("/spec/maxUnavailable")),
        })
        .collect()
}

pub fn machine_config_pools() -> ApiResource {
    api_resource("machineconfiguration.openshift.io", "v1", "MachineConfigPool", "machineconfigpools")
}

/// Lists nodes (filtered by a label selector) with their pools. A cluster without the
/// MachineConfigPool kind (plain Kubernetes) simply has no pools.
pub async fn discover(client: &Client, server: &str, selector: Option<&str>, address_type: &str) -> Result<Vec<NodeInfo>, ClusterError> {
    Ok(discover_with_pools(client, server, selector, address_type).await?.0)
}

pub async fn discover_with_pools(
    client: &Client,
    server: &str,
    selector: Option<&str>,
    address_type: &str,
) -> Result<(Vec<NodeInfo>, Vec<PoolSelector>), ClusterError> {
    let api_error = |e: kube::Error| match e {
        kube::Error::Api(status) if status.code == 400 && selector.is_some() => {
            ClusterError::Selector { selector: selector.unwrap_or_default().to_owned(), reason: status.message.clone() }
        }
        other => ClusterError::Api { server: server.to_owned(), source: other },
    };
    let mut params = ListParams::default();
    if let Some(selector) = selector {
        params = params.labels(selector);
    }
    let nodes = Api::<Node>::all(client.clone()).list(&params).await.map_err(api_error)?;
    let pools = list_pools(client, server).await?;
    let infos = nodes.items.iter().map(|n| node_info(n, &pools, address_type)).collect();
    Ok((infos, pools))
}

/// [`discover_with_pools`] among `nodes` already listed (a Node watch's list), in the order a
/// list of the API server gives them (by name); only the pools are read.
pub async fn among(
    mut nodes: Vec<std::sync::Arc<Node>>,
    client: &Client,
    server: &str,
    address_type: &str,
) -> Result<(Vec<NodeInfo>, Vec<PoolSelector>), ClusterError> {
    nodes.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let pools = list_pools(client, server).await?;
    let infos = nodes.iter().map(|n| node_info(n, &pools, address_type)).collect();
    Ok((infos, pools))
}

/// The MachineConfigPools' selectors; none on a cluster without the kind (plain Kubernetes).
async fn list_pools(client: &Client, server: &str) -> Result<Vec<PoolSelector>, ClusterError> {
    match Api::<DynamicObject>::all_with(client.clone(), &machine_config_pools()).list(&ListParams::default()).await {
        Ok(list) => Ok(pool_selectors(&list.items)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Vec::new()),
        Err(source) => Err(ClusterError::Api { server: server.to_owned(), source }),
    }
}
