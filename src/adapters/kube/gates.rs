//! What the batch gates read from the cluster: pods matching `--block-on-pods`, the health
//! gate's nodes, MachineConfigPools and ClusterOperators, and the PodDisruptionBudgets that
//! allow no disruption (the drain preflight).

use std::collections::BTreeSet;
use std::sync::Arc;

use fleetboot_core::batch::{HealthView, PodNow};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
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

/// A budget's selector as a label selector string (`matchLabels` and `matchExpressions`).
fn selector_text(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> = selector.match_labels.iter().flatten().map(|(k, v)| format!("{k}={v}")).collect();
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    parts.join(",")
}

/// Every PodDisruptionBudget that allows no disruption now (`status.disruptionsAllowed` 0),
/// with the nodes of `nodes` that run a pod it covers (a drain there waits on it), sorted.
/// `drained`: `--drain-pod-selector` (only the pods it matches are evicted, so only those count).
pub async fn zero_disruption_budgets(
    client: &Client,
    nodes: &BTreeSet<String>,
    drained: Option<&str>,
) -> Result<Vec<(String, Vec<String>)>, String> {
    let budgets = Api::<PodDisruptionBudget>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("cannot list the PodDisruptionBudgets: {e}"))?;
    let mut out = Vec::new();
    for budget in budgets.items {
        if budget.status.as_ref().map(|s| s.disruptions_allowed) != Some(0) {
            continue;
        }
        let ns = budget.metadata.namespace.clone().unwrap_or_default();
        let name = format!("{ns}/{}", budget.metadata.name.clone().unwrap_or_default());
        // policy/v1: a null selector matches no pods, an empty one ({}) every pod of the
        // namespace (kubernetes staging/src/k8s.io/api/policy/v1/types.go,
        // PodDisruptionBudgetSpec.Selector; the disruption controller's getPodsForPdb in
        // pkg/controller/disruption/disruption.go goes through metav1.LabelSelectorAsSelector,
        // nil -> labels.Nothing(), empty -> labels.Everything()).
        let Some(selector) = budget.spec.as_ref().and_then(|s| s.selector.as_ref()).map(selector_text) else { continue };
        let selector = match drained {
            Some(drained) if selector.is_empty() => drained.to_owned(),
            Some(drained) => format!("{selector},{drained}"),
            None => selector,
        };
        let pods = Api::<Pod>::namespaced(client.clone(), &ns)
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| format!("cannot list the pods of PodDisruptionBudget {name}: {e}"))?;
        let mut blocked: Vec<String> = pods
            .items
            .iter()
            .filter(|p| !super::drain::drain_skips(p))
            .filter_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
            .filter(|n| nodes.contains(n))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        blocked.sort();
        if !blocked.is_empty() {
            out.push((name, blocked));
        }
    }
    out.sort();
    Ok(out)
}
