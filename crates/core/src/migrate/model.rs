//! What the migration's pure checks read and say: the cluster as preflight reads it in one go,
//! preflight's findings, and one line of the verification. A leaf: every check module uses it,
//! it uses none of them.

use serde::Serialize;
use serde_json::Value;

/// What preflight looks at, read from the cluster in one go.
#[derive(Clone, Debug, Default)]
pub struct ClusterSnapshot {
    /// (name, Ready condition status)
    pub nodes: Vec<(String, String)>,
    /// The nodes' InternalIP addresses (the machine network as the nodes use it).
    pub node_ips: Vec<String>,
    pub pools: Vec<Value>,
    pub operators: Vec<Value>,
    /// `Network.config.openshift.io/cluster` spec.networkType and status.networkType.
    pub spec_network_type: String,
    pub status_network_type: String,
    /// `Network.config.openshift.io/cluster` and `Network.operator.openshift.io/cluster`.
    pub network_config: Value,
    pub network_operator: Value,
    /// Every pod (all namespaces).
    pub pods: Vec<Value>,
    /// OpenShift SDN's NetNamespaces, HostSubnets and EgressNetworkPolicies (empty where the
    /// cluster has none): the egress IPs, multicast and egress firewalls to inventory.
    pub netnamespaces: Vec<Value>,
    pub hostsubnets: Vec<Value>,
    pub egress_network_policies: Vec<Value>,
    /// (kind, object) of every ValidatingWebhookConfiguration and MutatingWebhookConfiguration.
    pub webhook_configurations: Vec<(String, Value)>,
    /// kubernetes-nmstate's NodeNetworkConfigurationPolicies and NodeNetworkStates (empty where
    /// the cluster has no NMState operator).
    pub nncps: Vec<Value>,
    pub node_network_states: Vec<Value>,
}

/// What preflight found: refusals stop the migration before anything changes; warnings are
/// shown, journaled and reported. Each line starts with the finding's name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Findings {
    pub refusals: Vec<String>,
    pub warnings: Vec<String>,
}

/// One line of the verification table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}
