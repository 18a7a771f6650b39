//! The cluster's nodes as fleetboot sees them, their MachineConfigPools, and the pure rules
//! built on them: which pool a node belongs to, how a cluster run is grouped, what a drain does
//! when it times out.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::plan::Grouping;

/// One node as fleetboot sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeInfo {
    pub name: String,
    pub roles: Vec<String>,
    /// Every address of the chosen type, in the node's order (normally exactly one).
    pub addresses: Vec<String>,
    pub address_type: String,
    pub ready: String,
    #[serde(rename = "bootID")]
    pub boot_id: String,
    pub pool: Option<String>,
    #[serde(rename = "kubeletVersion")]
    pub kubelet_version: String,
    pub unschedulable: bool,
    pub labels: BTreeMap<String, String>,
    /// The node's BMC URL, when the inventory knows one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bmc: Option<String>,
    /// `-o wide`: whether the BMC answered ("answers", or why not).
    #[serde(rename = "bmcStatus", skip_serializing_if = "Option::is_none")]
    pub bmc_status: Option<String>,
    /// `machine.openshift.io/machine` (namespace/name): how BareMetalHosts find their node.
    #[serde(skip)]
    pub machine: Option<String>,
    #[serde(skip)]
    pub provider_id: Option<String>,
    /// Every address of every type (InternalIP, ExternalIP, Hostname): how a host named in a
    /// host file is recognised as this node.
    #[serde(skip)]
    pub all_addresses: Vec<String>,
}

/// A MachineConfigPool's name and node selector (`matchLabels` only, as the MCO's are).
#[derive(Clone, Debug)]
pub struct PoolSelector {
    pub name: String,
    pub match_labels: BTreeMap<String, String>,
    /// The pool's spec.maxUnavailable (a count; percentages are taken of the pool's size).
    pub max_unavailable: MaxUnavailable,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxUnavailable {
    Count(usize),
    Percent(usize),
}

impl MaxUnavailable {
    pub fn of(&self, pool_size: usize) -> usize {
        match *self {
            MaxUnavailable::Count(n) => n.max(1),
            MaxUnavailable::Percent(p) => (pool_size * p / 100).max(1),
        }
    }

    pub fn parse(value: Option<&Value>) -> MaxUnavailable {
        match value {
            Some(Value::Number(n)) => MaxUnavailable::Count(n.as_u64().unwrap_or(1) as usize),
            Some(Value::String(s)) if s.ends_with('%') => MaxUnavailable::Percent(s.trim_end_matches('%').parse().unwrap_or(0)),
            Some(Value::String(s)) => MaxUnavailable::Count(s.parse().unwrap_or(1)),
            _ => MaxUnavailable::Count(1),
        }
    }
}

impl PoolSelector {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.match_labels.is_empty() && self.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// A node's pool: a custom pool wins over `worker`, whose selector custom-pool nodes also match.
pub fn pool_of(labels: &BTreeMap<String, String>, pools: &[PoolSelector]) -> Option<String> {
    let matching: Vec<&PoolSelector> = pools.iter().filter(|p| p.matches(labels)).collect();
    matching.iter().find(|p| p.name != "worker").or(matching.first()).map(|p| p.name.clone())
}

/// A JSON object of strings (labels, annotations, matchLabels) as a map; absent is empty.
pub fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
        .unwrap_or_default()
}

/// Whether a Node object's Ready condition is True.
pub fn node_is_ready(node: &Value) -> bool {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// Groups for a cluster run. Pure. Control-plane nodes form the group "master": one at a time
/// and after everything else. The others group by pool (limit: the pool's maxUnavailable) or by
/// a label's value; `group_limit` overrides the per-group limit.
pub fn grouping(nodes: &[NodeInfo], pools: &[PoolSelector], group_by: &str, group_limit: Option<usize>) -> Grouping {
    let mut grouping = Grouping { by: Some(group_by.to_owned()), ..Grouping::default() };
    for node in nodes {
        grouping.of.insert(node.name.clone(), group_key(&node.roles, node.pool.as_deref(), &node.labels, group_by));
    }
    let mut sizes: BTreeMap<String, usize> = BTreeMap::new();
    for group in grouping.of.values() {
        *sizes.entry(group.clone()).or_default() += 1;
    }
    for (group, size) in sizes {
        let limit = if group == "master" {
            1
        } else if let Some(limit) = group_limit {
            limit
        } else if group_by == "pool" {
            pools.iter().find(|p| p.name == group).map_or(1, |p| p.max_unavailable.of(size))
        } else {
            1
        };
        grouping.limits.insert(group, limit);
    }
    if grouping.limits.contains_key("master") {
        grouping.last.push("master".into());
    }
    grouping
}

/// Whether a node's roles make it a control-plane node.
pub fn is_control_plane(roles: &[String]) -> bool {
    roles.iter().any(|r| r == "master" || r == "control-plane")
}

/// A node's group under the rule `group_by` (`pool` or a label key): `master` for the control
/// plane, else its pool or its label's value. Pure.
pub fn group_key(roles: &[String], pool: Option<&str>, labels: &BTreeMap<String, String>, group_by: &str) -> String {
    if is_control_plane(roles) {
        "master".to_owned()
    } else if group_by == "pool" {
        pool.unwrap_or("(no pool)").to_owned()
    } else {
        format!("{group_by}={}", labels.get(group_by).map(String::as_str).unwrap_or("(unset)"))
    }
}

/// Problems a user must see before trusting the list for a reboot.
pub fn address_problems(nodes: &[NodeInfo]) -> Vec<String> {
    nodes
        .iter()
        .filter_map(|n| match n.addresses.len() {
            1 => None,
            0 => Some(format!("node {} has no {} address", n.name, n.address_type)),
            k => Some(format!(
                "node {} has {k} {} addresses ({}); fleetboot would use the first",
                n.name,
                n.address_type,
                n.addresses.join(", ")
            )),
        })
        .collect()
}

/// What to do with a node whose pods cannot all be evicted in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrainFailure {
    /// Fail the host: it is not rebooted, and is uncordoned again.
    Fail,
    /// Skip the host (uncordoned again) and go on.
    Skip,
    /// Delete the remaining pods and reboot anyway.
    Force,
}

/// A run's `--drain` choice, journaled so that a resumed run drains the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainPolicy {
    pub timeout_ms: u64,
    pub on_failure: DrainFailure,
}

/// What a host from a host list is in the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostMatch {
    /// Exactly this node.
    Node(String),
    /// No node has this address or name: a standalone host.
    NotANode,
    /// More than one node claims it.
    Ambiguous(Vec<String>),
}

/// Finds the node a listed host is: a node whose addresses (of any type) include the host's
/// address, or whose name is the host's address or name. Pure.
pub fn match_host(name: &str, address: &str, nodes: &[NodeInfo]) -> HostMatch {
    let matching: Vec<String> = nodes
        .iter()
        .filter(|n| n.all_addresses.iter().any(|a| a == address) || n.name == address || n.name == name)
        .map(|n| n.name.clone())
        .collect();
    match matching.as_slice() {
        [] => HostMatch::NotANode,
        [one] => HostMatch::Node(one.clone()),
        _ => HostMatch::Ambiguous(matching),
    }
}

#[cfg(test)]
mod match_tests {
    use super::*;

    fn node(name: &str, addresses: &[&str]) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            roles: Vec::new(),
            addresses: addresses.iter().take(1).map(|a| a.to_string()).collect(),
            address_type: "InternalIP".into(),
            ready: "True".into(),
            boot_id: String::new(),
            pool: None,
            kubelet_version: String::new(),
            unschedulable: false,
            labels: BTreeMap::new(),
            bmc: None,
            bmc_status: None,
            machine: None,
            provider_id: None,
            all_addresses: addresses.iter().map(|a| a.to_string()).collect(),
        }
    }

    #[test]
    fn a_host_is_the_node_with_its_address_or_name_and_two_claimants_are_an_error() {
        let nodes = [node("m0", &["127.0.0.2", "m0.example"]), node("w0", &["127.0.0.3", "198.51.100.3"]), node("w1", &["127.0.0.4"])];
        assert_eq!(match_host("x", "198.51.100.3", &nodes), HostMatch::Node("w0".into()), "an ExternalIP counts");
        assert_eq!(match_host("m0.example", "m0.example", &nodes), HostMatch::Node("m0".into()), "a Hostname counts");
        assert_eq!(match_host("w1", "192.0.2.1", &nodes), HostMatch::Node("w1".into()), "the node's name counts");
        assert_eq!(match_host("bastion", "127.0.0.9", &nodes), HostMatch::NotANode);
        assert_eq!(match_host("w1", "127.0.0.3", &nodes), HostMatch::Ambiguous(vec!["w0".into(), "w1".into()]));
    }
}
