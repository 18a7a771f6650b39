//! The cluster's nodes as fleetboot sees them, their MachineConfigPools, and the pure rules
//! built on them: which pool a node belongs to, how a cluster run is grouped, what a drain does
//! when it times out.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;

use crate::policy::Grouping;
pub use crate::policy::{DrainFailure, DrainPolicy};

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
    /// `nodes -o wide`: whether the cluster API's exec into the node's machine-config daemon pod
    /// answers (the `kube` transport): "answers", or "no: why".
    #[serde(rename = "kubeExec", skip_serializing_if = "Option::is_none")]
    pub kube_exec: Option<String>,
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
    crate::conditions::is_true(node, "Ready")
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

/// What a host from a host list is in the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostMatch {
    /// Exactly this node: the line's address is one of the node's.
    Node(String),
    /// No node has this address, and no node is named like the line: a standalone host.
    NotANode,
    /// More than one node claims the address.
    Ambiguous(Vec<String>),
    /// The line is named like `node` (its name, or one of its addresses), but the line's
    /// address is none of that node's `addresses`: a name is not an identity. `address_of`: the
    /// node the address does belong to, if any.
    NameOnly { node: String, addresses: Vec<String>, address_of: Option<String> },
}

/// Finds the node a listed host is, by address alone: a node whose addresses (of any type:
/// InternalIP, ExternalIP, Hostname) include the line's address, or one of `resolved` (the
/// addresses the line's host name resolves to). A line *named* like a node whose address is
/// not that node's is [`HostMatch::NameOnly`], never that node. Pure. For one line; a whole
/// host list indexes the nodes once ([`NodeIndex`]), as this does for its line.
pub fn match_host(name: &str, address: &str, resolved: &[String], nodes: &[NodeInfo]) -> HostMatch {
    NodeIndex::new(nodes).match_host(name, address, resolved)
}

/// The nodes indexed once for a whole host list: [`NodeIndex::match_host`] answers what a scan
/// of every node for each line answers (the rule as the tests state it), without that scan of
/// every node's addresses for each line (a 10,000-host list on a 10,000-node cluster was 10^8
/// string compares before the first reboot). Pure.
pub struct NodeIndex<'a> {
    nodes: &'a [NodeInfo],
    /// Each address (of any type) → the nodes that have it, in the nodes' order, each once.
    by_address: HashMap<&'a str, Vec<usize>>,
    /// Each name → the nodes so named, in the nodes' order.
    by_name: HashMap<&'a str, Vec<usize>>,
}

impl<'a> NodeIndex<'a> {
    pub fn new(nodes: &'a [NodeInfo]) -> Self {
        let mut by_address: HashMap<&str, Vec<usize>> = HashMap::with_capacity(nodes.len());
        let mut by_name: HashMap<&str, Vec<usize>> = HashMap::with_capacity(nodes.len());
        for (i, node) in nodes.iter().enumerate() {
            by_name.entry(node.name.as_str()).or_default().push(i);
            for address in &node.all_addresses {
                let holders = by_address.entry(address.as_str()).or_default();
                // A node listing one address twice is still one claimant.
                if holders.last() != Some(&i) {
                    holders.push(i);
                }
            }
        }
        NodeIndex { nodes, by_address, by_name }
    }

    /// The first node named `name` (the nodes' order), as `nodes.iter().find` finds it.
    pub fn node(&self, name: &str) -> Option<&'a NodeInfo> {
        self.by_name.get(name).and_then(|found| found.first()).map(|&i| &self.nodes[i])
    }

    /// [`match_host`] over the indexed nodes: the same answer, in time bounded by the line's
    /// own addresses and the nodes that share them, not by the size of the cluster.
    pub fn match_host(&self, name: &str, address: &str, resolved: &[String]) -> HostMatch {
        let holders = |s: &str| self.by_address.get(s).into_iter().flatten().copied();
        let mut by_address: Vec<usize> = std::iter::once(address).chain(resolved.iter().map(String::as_str)).flat_map(holders).collect();
        by_address.sort_unstable();
        by_address.dedup();
        let nodes = self.nodes;
        if by_address.len() > 1 {
            return HostMatch::Ambiguous(by_address.iter().map(|&i| nodes[i].name.clone()).collect());
        }
        // Named like a node: the line's name or address is a node's name or one of its
        // addresses. The first such node (the nodes' order) that is not the address's own.
        let named = [name, address]
            .into_iter()
            .flat_map(|s| self.by_name.get(s).into_iter().flatten().copied().chain(holders(s)))
            .filter(|&i| !by_address.iter().any(|&b| nodes[b].name == nodes[i].name))
            .min();
        if let Some(claimed) = named.map(|i| &nodes[i]) {
            return HostMatch::NameOnly {
                node: claimed.name.clone(),
                addresses: claimed.all_addresses.clone(),
                address_of: by_address.first().map(|&i| nodes[i].name.clone()),
            };
        }
        match by_address.first() {
            Some(&i) => HostMatch::Node(nodes[i].name.clone()),
            None => HostMatch::NotANode,
        }
    }
}

#[cfg(test)]
mod match_tests {
    use super::*;

    use proptest::prelude::*;

    /// The rule, stated as a scan of every node (what [`NodeIndex`] must answer): finds the node a
    /// listed host is, by address alone: a node whose addresses (of any type:
    /// InternalIP, ExternalIP, Hostname) include the line's address, or one of `resolved` (the
    /// addresses the line's host name resolves to). A line *named* like a node whose address is
    /// not that node's is [`HostMatch::NameOnly`], never that node. Pure.
    fn scan(name: &str, address: &str, resolved: &[String], nodes: &[NodeInfo]) -> HostMatch {
        let by_address: Vec<&NodeInfo> =
            nodes.iter().filter(|n| n.all_addresses.iter().any(|a| a == address || resolved.iter().any(|r| r == a))).collect();
        if by_address.len() > 1 {
            return HostMatch::Ambiguous(by_address.iter().map(|n| n.name.clone()).collect());
        }
        let named = |n: &&NodeInfo| [name, address].iter().any(|s| n.name == *s || n.all_addresses.iter().any(|a| a == s));
        if let Some(claimed) = nodes.iter().filter(named).find(|n| !by_address.iter().any(|b| b.name == n.name)) {
            return HostMatch::NameOnly {
                node: claimed.name.clone(),
                addresses: claimed.all_addresses.clone(),
                address_of: by_address.first().map(|n| n.name.clone()),
            };
        }
        match by_address.first() {
            Some(node) => HostMatch::Node(node.name.clone()),
            None => HostMatch::NotANode,
        }
    }

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
            kube_exec: None,
            machine: None,
            provider_id: None,
            all_addresses: addresses.iter().map(|a| a.to_string()).collect(),
        }
    }

    #[test]
    fn a_host_is_the_node_with_its_address_and_a_name_alone_is_refused() {
        let nodes = [node("m0", &["127.0.0.2", "m0.example"]), node("w0", &["127.0.0.3", "198.51.100.3"]), node("w1", &["127.0.0.4"])];
        let none: &[String] = &[];
        assert_eq!(match_host("x", "198.51.100.3", none, &nodes), HostMatch::Node("w0".into()), "an ExternalIP counts");
        assert_eq!(match_host("m0.example", "m0.example", none, &nodes), HostMatch::Node("m0".into()), "a Hostname counts");
        assert_eq!(match_host("w1", "127.0.0.4", none, &nodes), HostMatch::Node("w1".into()), "name and address agree");
        assert_eq!(
            match_host("lab", "lab.example", &["127.0.0.3".into()], &nodes),
            HostMatch::Node("w0".into()),
            "a resolved address counts"
        );
        assert_eq!(match_host("bastion", "127.0.0.9", none, &nodes), HostMatch::NotANode);
        // The lab machine called like a node: never that node.
        assert_eq!(
            match_host("m0", "127.0.0.9", none, &nodes),
            HostMatch::NameOnly { node: "m0".into(), addresses: vec!["127.0.0.2".into(), "m0.example".into()], address_of: None }
        );
        assert_eq!(
            match_host("w1", "127.0.0.3", none, &nodes),
            HostMatch::NameOnly { node: "w1".into(), addresses: vec!["127.0.0.4".into()], address_of: Some("w0".into()) }
        );
        let twins = [node("a", &["127.0.0.5"]), node("b", &["127.0.0.5"])];
        assert_eq!(match_host("x", "127.0.0.5", none, &twins), HostMatch::Ambiguous(vec!["a".into(), "b".into()]));
    }

    /// A small vocabulary, so that generated nodes and lines collide: names shared by two nodes,
    /// an address two nodes claim, a node named like another's address, a line resolving to one.
    const WORDS: [&str; 8] = ["m0", "w0", "w1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "m0.example", "lab"];

    fn word() -> impl Strategy<Value = String> {
        proptest::sample::select(&WORDS[..]).prop_map(str::to_owned)
    }

    proptest! {
        /// The index answers each line exactly as the plain scan does, and finds the node the
        /// scan finds by name.
        #[test]
        fn the_index_matches_a_host_as_the_scan_does(
            spec in proptest::collection::vec((word(), proptest::collection::vec(word(), 0..4)), 0..6),
            lines in proptest::collection::vec((word(), word(), proptest::collection::vec(word(), 0..3)), 1..8),
        ) {
            let nodes: Vec<NodeInfo> = spec.iter().map(|(name, addresses)| {
                node(name, &addresses.iter().map(String::as_str).collect::<Vec<_>>())
            }).collect();
            let index = NodeIndex::new(&nodes);
            for (name, address, resolved) in &lines {
                prop_assert_eq!(index.match_host(name, address, resolved), scan(name, address, resolved, &nodes));
                prop_assert_eq!(index.node(name), nodes.iter().find(|n| &n.name == name));
            }
        }
    }
}
