//! The simulated Machine Config Operator. Pure part: from pools and nodes, which nodes get a
//! new desiredConfig (at most `maxUnavailable` at a time, never in a paused pool) and what each
//! pool's status says. Live part: a loop that applies that, and a per-node daemon that cordons,
//! reboots and uncordons a node whose desiredConfig differs from its currentConfig.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::cluster::Cluster;
use super::store::{Filter, PatchType, now_rfc3339};
use super::types;
use crate::util::{MaxUnavailable, node_is_ready, string_map};

pub const CURRENT: &str = "machineconfiguration.openshift.io/currentConfig";
pub const DESIRED: &str = "machineconfiguration.openshift.io/desiredConfig";
pub const STATE: &str = "machineconfiguration.openshift.io/state";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeView {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub current: String,
    pub desired: String,
    pub state: String,
    pub ready: bool,
    pub unschedulable: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolView {
    pub name: String,
    pub selector: BTreeMap<String, String>,
    pub paused: bool,
    pub max_unavailable: MaxUnavailable,
    /// The rendered config the pool should run (spec.configuration.name).
    pub target: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    SetDesired { node: String, config: String },
    PoolStatus { pool: String, status: Value },
}

fn member_of(pool: &PoolView, node: &NodeView, pools: &[PoolView]) -> bool {
    let matches = |p: &PoolView| !p.selector.is_empty() && p.selector.iter().all(|(k, v)| node.labels.get(k) == Some(v));
    if !matches(pool) {
        return false;
    }
    // A node in a custom pool also matches worker's selector; the custom pool owns it.
    pool.name != "worker" || !pools.iter().any(|p| p.name != "worker" && matches(p))
}

impl NodeView {
    fn unavailable(&self) -> bool {
        self.desired != self.current || !self.ready || self.unschedulable || self.state != "Done"
    }
}

/// One reconciliation of every pool. Pure.
pub fn plan(pools: &[PoolView], nodes: &[NodeView]) -> Vec<Action> {
    let mut actions = Vec::new();
    for pool in pools {
        let members: Vec<&NodeView> = nodes.iter().filter(|n| member_of(pool, n, pools)).collect();
        let mut unavailable = members.iter().filter(|n| n.unavailable()).count();
        if !pool.paused {
            for node in members.iter().filter(|n| n.desired != pool.target) {
                if unavailable >= pool.max_unavailable.of(members.len()) {
                    break;
                }
                // A node already unavailable for another reason is not counted twice.
                if !node.unavailable() {
                    unavailable += 1;
                }
                actions.push(Action::SetDesired { node: node.name.clone(), config: pool.target.clone() });
            }
        }
        let updated = members.iter().filter(|n| n.current == pool.target && n.desired == pool.target && n.state == "Done").count();
        let ready = members.iter().filter(|n| n.current == pool.target && n.ready && !n.unschedulable && n.state == "Done").count();
        let degraded = members.iter().filter(|n| n.state == "Degraded").count();
        let all_updated = updated == members.len();
        let updating = !all_updated && !pool.paused;
        let now = now_rfc3339();
        let condition = |kind: &str, on: bool, message: String| json!({"type": kind, "status": if on { "True" } else { "False" }, "lastTransitionTime": now, "reason": "", "message": message});
        let mut status = json!({
            "machineCount": members.len(),
            "updatedMachineCount": updated,
            "readyMachineCount": ready,
            "unavailableMachineCount": unavailable,
            "degradedMachineCount": degraded,
            "conditions": [
                condition("Updated", all_updated, if all_updated { format!("All nodes are updated with {}", pool.target) } else { String::new() }),
                condition("Updating", updating, if updating { format!("All nodes are updating to {}", pool.target) } else { String::new() }),
                condition("Degraded", degraded > 0, String::new()),
            ],
        });
        if all_updated {
            status["configuration"] = json!({"name": pool.target});
        }
        actions.push(Action::PoolStatus { pool: pool.name.clone(), status });
    }
    actions
}

/// Keeps each condition's lastTransitionTime when its status did not change, so an unchanged
/// pool is an unchanged object (no new resourceVersion, no watch event).
pub fn carry_transition_times(old: Option<&Value>, mut new: Value) -> Value {
    let old_conditions = old.and_then(|o| o.get("conditions")).and_then(Value::as_array).cloned().unwrap_or_default();
    if let Some(conditions) = new.get_mut("conditions").and_then(Value::as_array_mut) {
        for condition in conditions {
            if let Some(previous) = old_conditions.iter().find(|c| c["type"] == condition["type"])
                && previous["status"] == condition["status"]
                && previous["message"] == condition["message"]
            {
                condition["lastTransitionTime"] = previous["lastTransitionTime"].clone();
            }
        }
    }
    new
}

fn annotation(node: &Value, key: &str) -> String {
    node.pointer("/metadata/annotations").and_then(|a| a.get(key)).and_then(Value::as_str).unwrap_or_default().to_owned()
}

pub fn node_view(node: &Value) -> NodeView {
    NodeView {
        name: node["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
        labels: string_map(node.pointer("/metadata/labels")),
        current: annotation(node, CURRENT),
        desired: annotation(node, DESIRED),
        state: annotation(node, STATE),
        ready: node_is_ready(node),
        unschedulable: node.pointer("/spec/unschedulable") == Some(&json!(true)),
    }
}

pub fn pool_view(pool: &Value) -> PoolView {
    PoolView {
        name: pool["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
        selector: string_map(pool.pointer("/spec/nodeSelector/matchLabels")),
        paused: pool.pointer("/spec/paused") == Some(&json!(true)),
        max_unavailable: MaxUnavailable::parse(pool.pointer("/spec/maxUnavailable")),
        target: pool.pointer("/spec/configuration/name").and_then(Value::as_str).unwrap_or_default().to_owned(),
    }
}

/// The MCO and the machine-config daemons, reconciling every `interval`.
pub async fn run(cluster: Arc<Cluster>, interval: Duration) {
    let nodes_t = types::find("", "v1", "nodes").expect("nodes");
    let pools_t = types::find("machineconfiguration.openshift.io", "v1", "machineconfigpools").expect("pools");
    // Boot ID each updating node had when its daemon rebooted it.
    let mut rebooting: HashMap<String, String> = HashMap::new();
    let mut tick = tokio::time::interval(interval);
    loop {
        tick.tick().await;
        let (pool_objects, pools, nodes) = {
            let store = cluster.api.store.lock().unwrap();
            let pool_objects = store.list(pools_t, &Filter::default(), None, None).items;
            let pools: Vec<PoolView> = pool_objects.iter().map(|p| pool_view(p)).collect();
            let nodes: Vec<Value> = store.list(nodes_t, &Filter::default(), None, None).items.iter().map(|n| (**n).clone()).collect();
            (pool_objects, pools, nodes)
        };
        let views: Vec<NodeView> = nodes.iter().map(node_view).collect();
        for action in plan(&pools, &views) {
            let mut store = cluster.api.store.lock().unwrap();
            let _ = match action {
                Action::SetDesired { node, config } => {
                    store.patch(nodes_t, None, &node, PatchType::Merge, &json!({"metadata": {"annotations": {DESIRED: config}}}), None)
                }
                Action::PoolStatus { pool, status } => {
                    let old = pool_objects.iter().find(|p| p["metadata"]["name"] == pool.as_str()).and_then(|p| p.get("status"));
                    let status = carry_transition_times(old, status);
                    store.patch(pools_t, None, &pool, PatchType::Merge, &json!({"status": status}), Some("status"))
                }
            };
        }
        for (node, view) in nodes.iter().zip(&views) {
            let Some(sim) = cluster.node(&view.name) else { continue };
            let boot_id = node.pointer("/status/nodeInfo/bootID").and_then(Value::as_str).unwrap_or_default().to_owned();
            let patch = |body: Value| {
                let _ = cluster.api.store.lock().unwrap().patch(nodes_t, None, &view.name, PatchType::Merge, &body, None);
            };
            match rebooting.get(&view.name) {
                None if view.desired != view.current && view.state == "Done" && view.ready && sim.phase() == super::node::Phase::Up => {
                    // Drain is instantaneous here; the reboot is the daemon's `systemctl reboot`.
                    patch(json!({"metadata": {"annotations": {STATE: "Working"}}, "spec": {"unschedulable": true}}));
                    cluster.append_daemon_log(&view.name, &format!("Update prepared; requesting reboot to apply {}", view.desired));
                    rebooting.insert(view.name.clone(), boot_id);
                    sim.schedule_reboot(Duration::ZERO);
                }
                Some(before) if *before != boot_id && view.ready => {
                    patch(json!({"metadata": {"annotations": {CURRENT: view.desired, STATE: "Done"}}, "spec": {"unschedulable": null}}));
                    cluster.append_daemon_log(
                        &view.name,
                        &format!("Update completed for config {} and node has been successfully uncordoned", view.desired),
                    );
                    rebooting.remove(&view.name);
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, role: &str, current: &str, desired: &str) -> NodeView {
        NodeView {
            name: name.into(),
            labels: [(format!("node-role.kubernetes.io/{role}"), String::new())].into_iter().collect(),
            current: current.into(),
            desired: desired.into(),
            state: "Done".into(),
            ready: true,
            unschedulable: false,
        }
    }

    fn pool(name: &str, paused: bool, max: usize, target: &str) -> PoolView {
        PoolView {
            name: name.into(),
            selector: [(format!("node-role.kubernetes.io/{name}"), String::new())].into_iter().collect(),
            paused,
            max_unavailable: MaxUnavailable::Count(max),
            target: target.into(),
        }
    }

    fn desired_set(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::SetDesired { node, .. } => Some(node.clone()),
                _ => None,
            })
            .collect()
    }

    fn status_of<'a>(actions: &'a [Action], name: &str) -> &'a Value {
        actions
            .iter()
            .find_map(|a| match a {
                Action::PoolStatus { pool, status } if pool == name => Some(status),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn a_paused_pool_starts_nothing_and_says_it_is_not_updated() {
        let nodes = vec![node("w0", "worker", "old", "old"), node("w1", "worker", "old", "old")];
        let actions = plan(&[pool("worker", true, 1, "new")], &nodes);
        assert!(desired_set(&actions).is_empty());
        let status = status_of(&actions, "worker");
        assert_eq!(status["updatedMachineCount"], 0);
        assert_eq!(status["conditions"][0]["status"], "False", "Updated");
        assert_eq!(status["conditions"][1]["status"], "False", "a paused pool is not Updating");
    }

    #[test]
    fn an_unpaused_pool_updates_max_unavailable_at_a_time() {
        let nodes = vec![node("w0", "worker", "old", "old"), node("w1", "worker", "old", "old"), node("w2", "worker", "old", "old")];
        assert_eq!(desired_set(&plan(&[pool("worker", false, 1, "new")], &nodes)), ["w0"]);
        assert_eq!(desired_set(&plan(&[pool("worker", false, 2, "new")], &nodes)), ["w0", "w1"]);
        // w0 is mid-update (unavailable): nothing else starts at maxUnavailable 1.
        let mid = vec![node("w0", "worker", "old", "new"), node("w1", "worker", "old", "old")];
        let actions = plan(&[pool("worker", false, 1, "new")], &mid);
        assert!(desired_set(&actions).is_empty());
        assert_eq!(status_of(&actions, "worker")["conditions"][1]["status"], "True", "Updating");
    }

    #[test]
    fn a_finished_rollout_reports_updated_with_the_new_configuration() {
        let nodes = vec![node("m0", "master", "new", "new")];
        let actions = plan(&[pool("master", false, 1, "new")], &nodes);
        let status = status_of(&actions, "master");
        assert_eq!(
            (status["machineCount"].as_u64(), status["updatedMachineCount"].as_u64(), status["readyMachineCount"].as_u64()),
            (Some(1), Some(1), Some(1))
        );
        assert_eq!(status["configuration"]["name"], "new");
        assert_eq!(status["conditions"][0]["status"], "True");
    }

    #[test]
    fn unchanged_conditions_keep_their_transition_time() {
        let old = json!({"conditions": [{"type": "Updated", "status": "True", "message": "m", "lastTransitionTime": "T0"}]});
        let same = json!({"conditions": [{"type": "Updated", "status": "True", "message": "m", "lastTransitionTime": "T1"}]});
        assert_eq!(carry_transition_times(Some(&old), same)["conditions"][0]["lastTransitionTime"], "T0");
        let flipped = json!({"conditions": [{"type": "Updated", "status": "False", "message": "", "lastTransitionTime": "T1"}]});
        assert_eq!(carry_transition_times(Some(&old), flipped)["conditions"][0]["lastTransitionTime"], "T1");
    }

    #[test]
    fn custom_pool_nodes_are_not_counted_in_worker() {
        let mut infra = node("i0", "worker", "old", "old");
        infra.labels.insert("node-role.kubernetes.io/infra".into(), String::new());
        let nodes = vec![infra, node("w0", "worker", "old", "old")];
        let actions = plan(&[pool("worker", false, 5, "new"), pool("infra", true, 1, "new-infra")], &nodes);
        assert_eq!(desired_set(&actions), ["w0"]);
        assert_eq!(status_of(&actions, "infra")["machineCount"], 1);
        assert_eq!(status_of(&actions, "worker")["machineCount"], 1);
    }
}
