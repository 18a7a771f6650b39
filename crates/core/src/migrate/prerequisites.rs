//! The offline migration's prerequisites that the 4.14+ documents add, as far as the API can
//! tell them (openshift-docs `modules/nw-ovn-kubernetes-migration.adoc`, "Prerequisites" and
//! the procedure's first steps):
//!
//! - "You removed webhooks. Alternatively, you can set a timeout value for each webhook [...] If
//!   you did not complete one of these tasks, your cluster might fail to schedule pods": while
//!   the pod network is replaced, a webhook whose server runs on it cannot answer, and every
//!   request it intercepts waits for its whole timeout. The document's step 1 sets
//!   `timeoutSeconds: 3`.
//! - "Delete the NodeNetworkConfigurationPolicy (NNCP) custom resource (CR) that defines the
//!   primary network interface for the OpenShift SDN network plugin": NetworkManager keeps the
//!   profile, and the policy would fight `configure-ovs.sh` for the interface `br-ex` takes.
//! - "You created a security group rule that allows User Datagram Protocol (UDP) packets on port
//!   6081 for all nodes": a firewall the API cannot see, so it is said, never checked.
//!
//! Pure: the objects come in, refusals and warnings go out.

use serde_json::Value;

use super::model::{ClusterSnapshot, Findings};

/// The longest a webhook may make the API server wait during the migration (the document's step 1).
pub const WEBHOOK_TIMEOUT_LIMIT: u64 = 3;

/// `admissionregistration.k8s.io/v1`'s default `timeoutSeconds` (kubernetes
/// `staging/src/k8s.io/api/admissionregistration/v1/types.go`: "Default to 10 seconds").
const WEBHOOK_DEFAULT_TIMEOUT: u64 = 10;

fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Whether a webhook's server belongs to OpenShift itself (a service in an `openshift-*` or
/// `kube-*` namespace). Its operator owns the configuration and would put the timeout back on
/// its next sync: these are named in a warning, not refused.
fn is_platform_webhook(webhook: &Value) -> bool {
    let namespace = text(webhook, "/clientConfig/service/namespace");
    namespace.starts_with("openshift-") || namespace.starts_with("kube-")
}

/// The webhooks that would hold the API server longer than the document allows, as
/// (refusal, warning) lines. `configurations` are (kind, object) pairs of
/// ValidatingWebhookConfiguration and MutatingWebhookConfiguration.
fn webhook_findings(configurations: &[(String, Value)], findings: &mut Findings) {
    let mut platform = Vec::new();
    for (kind, configuration) in configurations {
        let config_name = text(configuration, "/metadata/name");
        let webhooks = configuration.get("webhooks").and_then(Value::as_array).cloned().unwrap_or_default();
        for (index, webhook) in webhooks.iter().enumerate() {
            let timeout = webhook.get("timeoutSeconds").and_then(Value::as_u64).unwrap_or(WEBHOOK_DEFAULT_TIMEOUT);
            if timeout <= WEBHOOK_TIMEOUT_LIMIT {
                continue;
            }
            let webhook_name = text(webhook, "/name");
            if is_platform_webhook(webhook) {
                platform.push(format!("{kind} {config_name} ({webhook_name}, {timeout}s)"));
                continue;
            }
            let policy = webhook.get("failurePolicy").and_then(Value::as_str).unwrap_or("Fail");
            findings.refusals.push(format!(
                "webhooks: {kind} {config_name} webhook {webhook_name} makes the API server wait up to {timeout}s (failurePolicy {policy}); the migration documents ask to remove webhooks or set each timeout to {WEBHOOK_TIMEOUT_LIMIT}s first, or pods may fail to schedule while the pod network is replaced: oc patch {kind} {config_name} --type=json -p '[{{\"op\": \"replace\", \"path\": \"/webhooks/{index}/timeoutSeconds\", \"value\": {WEBHOOK_TIMEOUT_LIMIT}}}]'"
            ));
        }
    }
    if !platform.is_empty() {
        findings.warnings.push(format!(
            "webhooks: OpenShift's own webhooks wait longer than {WEBHOOK_TIMEOUT_LIMIT}s; their operators own them and put any change back, so they are left as they are: {}",
            platform.join(", ")
        ));
    }
}

/// The names of the interfaces that carry one of the nodes' InternalIPs, with the ports of a
/// bond or bridge that does (the primary interface, as NodeNetworkState reports each node's).
fn primary_interfaces(states: &[Value], node_ips: &[String]) -> Vec<String> {
    let mut primary = Vec::new();
    for state in states {
        let interfaces = state.pointer("/status/currentState/interfaces").and_then(Value::as_array).cloned().unwrap_or_default();
        for interface in &interfaces {
            let addresses = interface.pointer("/ipv4/address").and_then(Value::as_array).cloned().unwrap_or_default();
            let carries = addresses.iter().any(|a| node_ips.iter().any(|ip| text(a, "/ip") == ip));
            if carries {
                primary.push(text(interface, "/name").to_owned());
                primary.extend(ports(interface));
            }
        }
    }
    primary.sort();
    primary.dedup();
    primary
}

/// The ports of a bond (`link-aggregation.port`) or an OVS/Linux bridge (`bridge.port[].name`).
fn ports(interface: &Value) -> Vec<String> {
    let mut found: Vec<String> = interface
        .pointer("/link-aggregation/port")
        .and_then(Value::as_array)
        .map(|p| p.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    if let Some(bridge_ports) = interface.pointer("/bridge/port").and_then(Value::as_array) {
        found.extend(bridge_ports.iter().map(|p| text(p, "/name").to_owned()).filter(|n| !n.is_empty()));
    }
    found
}

fn nncp_findings(snapshot: &ClusterSnapshot, findings: &mut Findings) {
    if snapshot.nncps.is_empty() {
        return;
    }
    if snapshot.node_network_states.is_empty() {
        let names: Vec<&str> = snapshot.nncps.iter().map(|p| text(p, "/metadata/name")).collect();
        findings.warnings.push(format!(
            "nncp: NodeNetworkConfigurationPolicies {} exist and no NodeNetworkState tells which interface is primary: the migration documents delete the one that defines the primary interface first (oc delete nncp NAME); check none does",
            names.join(", ")
        ));
        return;
    }
    let primary = primary_interfaces(&snapshot.node_network_states, &snapshot.node_ips);
    for policy in &snapshot.nncps {
        let declared = policy.pointer("/spec/desiredState/interfaces").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut hits: Vec<String> = Vec::new();
        for interface in &declared {
            let name = text(interface, "/name").to_owned();
            if primary.contains(&name) || ports(interface).iter().any(|p| primary.contains(p)) {
                hits.push(name);
            }
        }
        if !hits.is_empty() {
            let policy_name = text(policy, "/metadata/name");
            findings.refusals.push(format!(
                "nncp: NodeNetworkConfigurationPolicy {policy_name} defines the primary interface ({}); the migration documents delete it before the migration (NetworkManager keeps the profile in /etc/NetworkManager/system-connections): oc delete nncp {policy_name}",
                hits.join(", ")
            ));
        }
    }
}

/// The 4.14+ documents' prerequisites for the offline migration to OVN-Kubernetes that the API
/// shows.
pub fn documented_prerequisites(snapshot: &ClusterSnapshot) -> Findings {
    let mut findings = Findings::default();
    webhook_findings(&snapshot.webhook_configurations, &mut findings);
    nncp_findings(snapshot, &mut findings);
    findings
}

/// The prerequisite the API cannot show (a firewall), said in `--plan` so the admin checks it.
pub fn geneve_reminder(geneve_port: u64) -> String {
    format!(
        "udp-geneve: the migration documents require UDP {geneve_port} (Geneve) open between all nodes (security groups on clouds, host and network firewalls on bare metal); the API cannot show a firewall: make sure it is open"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn webhook(name: &str, namespace: &str, timeout: Option<u64>) -> Value {
        let mut w = json!({"name": name, "clientConfig": {"service": {"namespace": namespace, "name": "svc"}}});
        if let Some(t) = timeout {
            w["timeoutSeconds"] = json!(t);
        }
        w
    }

    fn configuration(name: &str, webhooks: Vec<Value>) -> (String, Value) {
        ("ValidatingWebhookConfiguration".into(), json!({"metadata": {"name": name}, "webhooks": webhooks}))
    }

    #[test]
    fn a_users_webhook_over_three_seconds_refuses_with_the_documents_patch_at_its_index() {
        let snapshot = ClusterSnapshot {
            webhook_configurations: vec![configuration(
                "policy",
                vec![webhook("fast.example.com", "policy", Some(3)), webhook("slow.example.com", "policy", None)],
            )],
            ..Default::default()
        };
        let findings = documented_prerequisites(&snapshot);
        assert_eq!(findings.refusals.len(), 1, "{findings:?}");
        let refusal = &findings.refusals[0];
        assert!(refusal.contains("ValidatingWebhookConfiguration policy webhook slow.example.com"), "{refusal}");
        assert!(refusal.contains("up to 10s (failurePolicy Fail)"), "the v1 defaults: {refusal}");
        assert!(refusal.contains("/webhooks/1/timeoutSeconds"), "{refusal}");
    }

    #[test]
    fn openshifts_own_webhooks_are_named_not_refused() {
        let snapshot = ClusterSnapshot {
            webhook_configurations: vec![configuration("multus.openshift.io", vec![webhook("multus", "openshift-multus", Some(30))])],
            ..Default::default()
        };
        let findings = documented_prerequisites(&snapshot);
        assert!(findings.refusals.is_empty(), "{findings:?}");
        assert!(findings.warnings.iter().any(|w| w.contains("multus.openshift.io (multus, 30s)")), "{findings:?}");
    }

    fn state(node: &str, interfaces: Value) -> Value {
        json!({"metadata": {"name": node}, "status": {"currentState": {"interfaces": interfaces}}})
    }

    #[test]
    fn a_policy_on_the_bond_that_carries_the_node_address_refuses_and_one_on_another_interface_does_not() {
        let snapshot = ClusterSnapshot {
            node_ips: vec!["127.0.0.11".into()],
            node_network_states: vec![state(
                "worker-0",
                json!([
                    {"name": "bond0", "type": "bond", "ipv4": {"address": [{"ip": "127.0.0.11", "prefix-length": 8}]},
                     "link-aggregation": {"port": ["eno1", "eno2"]}},
                    {"name": "eno3", "type": "ethernet", "ipv4": {"address": []}}
                ]),
            )],
            nncps: vec![
                json!({"metadata": {"name": "bondmaster0"}, "spec": {"desiredState": {"interfaces": [
                    {"name": "bond0", "type": "bond", "link-aggregation": {"port": ["eno1", "eno2"]}}]}}}),
                json!({"metadata": {"name": "storage"}, "spec": {"desiredState": {"interfaces": [
                    {"name": "eno3", "type": "ethernet"}]}}}),
            ],
            ..Default::default()
        };
        let findings = documented_prerequisites(&snapshot);
        assert_eq!(findings.refusals.len(), 1, "{findings:?}");
        assert!(findings.refusals[0].contains("NodeNetworkConfigurationPolicy bondmaster0 defines the primary interface (bond0)"));
        assert!(findings.refusals[0].contains("oc delete nncp bondmaster0"));
    }

    #[test]
    fn a_policy_naming_a_port_of_the_primary_bond_refuses_too() {
        let snapshot = ClusterSnapshot {
            node_ips: vec!["127.0.0.11".into()],
            node_network_states: vec![state(
                "worker-0",
                json!([{"name": "bond0", "ipv4": {"address": [{"ip": "127.0.0.11"}]}, "link-aggregation": {"port": ["eno1"]}}]),
            )],
            nncps: vec![json!({"metadata": {"name": "nic"}, "spec": {"desiredState": {"interfaces": [{"name": "eno1"}]}}})],
            ..Default::default()
        };
        assert_eq!(documented_prerequisites(&snapshot).refusals.len(), 1);
    }

    #[test]
    fn policies_without_node_states_are_a_warning() {
        let snapshot = ClusterSnapshot {
            nncps: vec![json!({"metadata": {"name": "bondmaster0"}, "spec": {"desiredState": {"interfaces": []}}})],
            ..Default::default()
        };
        let findings = documented_prerequisites(&snapshot);
        assert!(findings.refusals.is_empty());
        assert!(findings.warnings.iter().any(|w| w.starts_with("nncp:") && w.contains("bondmaster0")), "{findings:?}");
    }
}
