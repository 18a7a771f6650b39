//! The cluster's MTU across a migration. The documents: "If you used a custom MTU, and you want
//! to keep the custom MTU during migration, you must declare the custom MTU value in this step"
//! (openshift-docs `modules/nw-ovn-kubernetes-migration.adoc`, 4.14+), and the overlay takes
//! 100 bytes for Geneve (OVN-Kubernetes) and 50 for VXLAN (OpenShift SDN,
//! `modules/nw-ovn-kubernetes-rollback.adoc`). The MTU in effect is `Network.config`
//! `status.clusterNetworkMTU` (the network operator writes it from the applied configuration);
//! the nodes' MTU it implies is that plus the running overlay's overhead. Pure.

use serde_json::Value;

use super::model::ClusterSnapshot;

/// The overlay overhead of a network type, in bytes.
pub fn overhead(network_type: &str) -> u32 {
    if network_type == "OVNKubernetes" { 100 } else { 50 }
}

/// The node MTU a default installation has: the cluster MTU is then the operator's default and
/// nothing needs restating.
const DEFAULT_NODE_MTU: u32 = 1500;

/// What the migration does about the MTU.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MtuDecision {
    /// The target network's MTU to declare (no `--mtu` given, and the cluster runs a custom one).
    pub restate: Option<u32>,
    /// A refusal: `--mtu` does not fit the nodes' MTU the cluster implies.
    pub refusal: Option<String>,
    /// A warning for the plan and the journal: what was detected and done.
    pub note: Option<String>,
}

/// The MTU in effect and the type it runs on, if the cluster says.
fn in_effect(snapshot: &ClusterSnapshot) -> Option<(u32, String)> {
    let running = snapshot.status_network_type.clone();
    let from_status = snapshot.network_config.pointer("/status/clusterNetworkMTU").and_then(Value::as_u64);
    let config_key = if running == "OVNKubernetes" { "ovnKubernetesConfig" } else { "openshiftSDNConfig" };
    let from_spec = snapshot.network_operator.pointer(&format!("/spec/defaultNetwork/{config_key}/mtu")).and_then(Value::as_u64);
    let mtu = u32::try_from(from_status.or(from_spec)?).ok()?;
    (!running.is_empty()).then_some((mtu, running))
}

/// Decides from the cluster, `--mtu` (`asked`) and `--node-mtu` (`node_mtu`). Pure.
pub fn decide(snapshot: &ClusterSnapshot, target: &str, asked: Option<u32>, node_mtu: Option<u32>) -> MtuDecision {
    let Some((current, running)) = in_effect(snapshot) else { return MtuDecision::default() };
    if running == target {
        return MtuDecision::default();
    }
    let implied = current + overhead(&running);
    let nodes = node_mtu.unwrap_or(implied);
    let wanted = nodes.saturating_sub(overhead(target));
    let mut decision = MtuDecision::default();
    match asked {
        Some(mtu) if node_mtu.is_none() && mtu + overhead(target) > implied => {
            decision.refusal = Some(format!(
                "mtu: --mtu {mtu} leaves no room for the {} bytes of {target}'s overlay on nodes whose MTU the cluster implies is {implied} ({running} runs at {current} + {}): use at most {wanted}, or pass --node-mtu if the nodes' MTU is larger",
                overhead(target),
                overhead(&running),
            ));
        }
        Some(_) => {}
        None if nodes != DEFAULT_NODE_MTU => {
            decision.restate = Some(wanted);
            decision.note = Some(format!(
                "mtu: the cluster runs a custom MTU ({running} at {current}, so nodes at {nodes}): {target}'s MTU is declared as {wanted} ({nodes} - {}), as the documentation asks to keep a custom MTU; --mtu sets another",
                overhead(target)
            ));
        }
        None => {}
    }
    decision
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cluster(running: &str, mtu: u64) -> ClusterSnapshot {
        ClusterSnapshot {
            status_network_type: running.into(),
            network_config: json!({"status": {"clusterNetworkMTU": mtu}}),
            ..Default::default()
        }
    }

    #[test]
    fn a_default_mtu_needs_nothing() {
        assert_eq!(decide(&cluster("OpenShiftSDN", 1450), "OVNKubernetes", None, None), MtuDecision::default());
        assert_eq!(decide(&cluster("OVNKubernetes", 1400), "OpenShiftSDN", None, None), MtuDecision::default());
        assert_eq!(decide(&ClusterSnapshot::default(), "OVNKubernetes", None, None), MtuDecision::default());
    }

    #[test]
    fn a_custom_mtu_is_declared_for_the_new_network() {
        let jumbo = decide(&cluster("OpenShiftSDN", 8950), "OVNKubernetes", None, None);
        assert_eq!(jumbo.restate, Some(8900));
        assert!(jumbo.note.unwrap().contains("OpenShiftSDN at 8950, so nodes at 9000): OVNKubernetes's MTU is declared as 8900"));
        assert_eq!(decide(&cluster("OVNKubernetes", 8900), "OpenShiftSDN", None, None).restate, Some(8950));
        // Read from the operator's spec when the status does not say.
        let spec_only = ClusterSnapshot {
            status_network_type: "OpenShiftSDN".into(),
            network_operator: json!({"spec": {"defaultNetwork": {"openshiftSDNConfig": {"mtu": 1350}}}}),
            ..Default::default()
        };
        assert_eq!(decide(&spec_only, "OVNKubernetes", None, None).restate, Some(1300));
        // --node-mtu is the admin's word for the nodes.
        assert_eq!(decide(&cluster("OpenShiftSDN", 1450), "OVNKubernetes", None, Some(9000)).restate, Some(8900));
    }

    #[test]
    fn an_mtu_too_large_for_the_nodes_the_cluster_implies_is_refused() {
        let refused = decide(&cluster("OpenShiftSDN", 1450), "OVNKubernetes", Some(1450), None);
        assert!(refused.refusal.unwrap().contains("--mtu 1450 leaves no room for the 100 bytes of OVNKubernetes's overlay on nodes whose MTU the cluster implies is 1500 (OpenShiftSDN runs at 1450 + 50): use at most 1400"));
        assert_eq!(decide(&cluster("OpenShiftSDN", 1450), "OVNKubernetes", Some(1400), None), MtuDecision::default());
        assert_eq!(decide(&cluster("OpenShiftSDN", 1450), "OVNKubernetes", Some(8900), Some(9000)).refusal, None);
        // A migration already done (the type runs): nothing to decide.
        assert_eq!(decide(&cluster("OVNKubernetes", 1400), "OVNKubernetes", Some(9000), None), MtuDecision::default());
    }
}
