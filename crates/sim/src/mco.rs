//! The simulated Machine Config Operator. Pure part: which rendered config each pool targets
//! (from the network's status, per release), which pool owns each node, which nodes get a new
//! desiredConfig (at most `maxUnavailable` at a time, never in a paused pool) and what each
//! pool's status says. Live part: a loop that applies that, and a per-node daemon that cordons,
//! drains (respecting PodDisruptionBudgets), reboots and uncordons a node whose desiredConfig
//! differs from its currentConfig.
//!
//! One file, past 500 lines: the MCO's controller and daemon are one rollout, each rule beside its source.

use crate::util::At as _;
use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::store::{Filter, PatchType, now_rfc3339};
use super::types;
use super::version::Release;
use super::world::World;
use crate::util::{MaxUnavailable, node_is_ready, string_map};

pub const CURRENT: &str = "machineconfiguration.openshift.io/currentConfig";
pub const DESIRED: &str = "machineconfiguration.openshift.io/desiredConfig";
pub const STATE: &str = "machineconfiguration.openshift.io/state";
pub const REASON: &str = "machineconfiguration.openshift.io/reason";

/// The rendered MachineConfig name for a pool under a network type.
pub fn rendered_name(pool: &str, network_type: &str) -> String {
    let hash = match network_type {
        "OVNKubernetes" => "0f3e9c1b7a",
        "OpenShiftSDN" => "5b8d2c4e61",
        _ => "9a9a9a9a9a",
    };
    format!("rendered-{pool}-{hash}")
}

/// A rendered MachineConfig whose `ovs-configuration.service` runs `configure-ovs.sh
/// <network_type>` (machine-config-operator `templates/common/_base/units/ovs-configuration.service.yaml`:
/// `ExecStart=/usr/local/bin/configure-ovs.sh {{.NetworkType}}`).
pub fn rendered_config(name: &str, pool: &str, network_type: &str) -> Value {
    json!({
        "metadata": {"name": name,
            "annotations": {"machineconfiguration.openshift.io/generated-by-controller-version": "fleetboot-sim",
                "machineconfiguration.openshift.io/release-image-version": "sim"},
            "ownerReferences": [{"apiVersion": "machineconfiguration.openshift.io/v1", "kind": "MachineConfigPool", "name": pool,
                "uid": crate::util::stable_uuid(pool), "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"osImageURL": "quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:rhcos", "config": {"ignition": {"version": "3.4.0"},
            "systemd": {"units": [{"name": "ovs-configuration.service", "enabled": true,
            "contents": format!("[Unit]\nDescription=Configures OVS with proper host networking configuration\n[Service]\nType=oneshot\nExecStart=/usr/local/bin/configure-ovs.sh {network_type}\n[Install]\nWantedBy=multi-user.target\n")}]}}},
    })
}

/// The rendered config with `mtu-migration.service` too, as the MCO renders it while
/// `Network.config` `status.migration.mtu` is set (a live migration's routable MTU:
/// machine-config-operator `pkg/operator/render.go`, `createDiscoveredControllerConfigSpec`
/// copies it into the ControllerConfig; `templates/common/_base/units/mtu-migration.service.yaml`
/// is rendered with it). Its name differs from the config without it.
pub fn with_mtu_migration(mut config: Value) -> Value {
    let name = format!("{}-mtu", config["metadata"]["name"].as_str().unwrap_or_default());
    config["metadata"]["name"] = json!(name);
    if let Some(units) = config.pointer_mut("/spec/config/systemd/units").and_then(Value::as_array_mut) {
        units.push(json!({"name": "mtu-migration.service", "enabled": true,
            "contents": "[Unit]\nDescription=Configures the routable MTU of a network type live migration\n[Service]\nType=oneshot\nExecStart=/usr/local/bin/mtu-migration.sh\n[Install]\nWantedBy=multi-user.target\n"}));
    }
    config
}

/// The argument of `configure-ovs.sh` the MCO renders, from `Network.config` (machine-config-operator
/// `pkg/operator/render.go`, `createDiscoveredControllerConfigSpec`: `status.networkType`
/// empty → `spec.networkType`; from 4.8 `status.migration` set → `status.migration.networkType`;
/// else `status.networkType`). Pure.
pub fn ovs_argument(release: Release, network: &Value) -> String {
    let text = |p: &str| network.at(p).and_then(Value::as_str).unwrap_or_default().to_owned();
    let status = text("/status/networkType");
    if status.is_empty() {
        return text("/spec/networkType");
    }
    if release.mco_reads_status_migration() && network.at("/status/migration").is_some_and(Value::is_object) {
        return text("/status/migration/networkType");
    }
    status
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeView {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub current: String,
    pub desired: String,
    pub state: String,
    pub reason: String,
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
    /// metadata.generation, which the status reports as observed.
    pub generation: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    SetDesired { node: String, config: String },
    PoolStatus { pool: String, status: Value },
}

/// The pool that owns a node, as the MCO decides it (machine-config-operator
/// `pkg/helpers/helpers.go`, `GetPoolsForNode`): a pool with an empty selector matches nothing;
/// two custom pools are an error ("node %s belongs to %d custom roles, cannot proceed with this
/// Node"); master wins over a custom pool, a custom pool over worker. Pure.
pub fn primary_pool<'a>(node: &NodeView, pools: &'a [PoolView]) -> Result<Option<&'a str>, String> {
    let matching: Vec<&PoolView> =
        pools.iter().filter(|p| !p.selector.is_empty() && p.selector.iter().all(|(k, v)| node.labels.get(k) == Some(v))).collect();
    let master = matching.iter().find(|p| p.name == "master");
    let worker = matching.iter().find(|p| p.name == "worker");
    let custom: Vec<&&PoolView> = matching.iter().filter(|p| p.name != "master" && p.name != "worker").collect();
    if custom.len() > 1 {
        return Err(format!("node {} belongs to {} custom roles, cannot proceed with this Node", node.name, custom.len()));
    }
    Ok(master.or(custom.first().copied()).or(worker).map(|p| p.name.as_str()))
}

impl NodeView {
    /// `IsUnavailableForUpdate` (machine-config-operator `pkg/controller/common/layered_node_state.go`).
    fn unavailable(&self) -> bool {
        self.desired != self.current || !self.ready || self.unschedulable || self.state != "Done"
    }

    fn degraded(&self) -> bool {
        // `pkg/controller/node/status.go`, `getDegradedMachines`.
        self.state == "Degraded" || self.state == "Unreconcilable"
    }
}

/// The position in `pools` of the pool that owns `node` ([`primary_pool`]); None when no pool
/// does or it cannot be decided (`pkg/controller/node/node_controller.go`, `getNodesForPool`
/// skips such a node). Pure.
pub fn owner_of(node: &NodeView, pools: &[PoolView]) -> Option<usize> {
    let name = primary_pool(node, pools).ok().flatten()?;
    pools.iter().position(|p| p.name == name)
}

/// One reconciliation of every pool. Pure.
pub fn plan<V: std::borrow::Borrow<NodeView>>(pools: &[PoolView], nodes: &[V]) -> Vec<Action> {
    let nodes: Vec<&NodeView> = nodes.iter().map(Borrow::borrow).collect();
    let owners: Vec<Option<usize>> = nodes.iter().map(|n| owner_of(n, pools)).collect();
    plan_owned(pools, &nodes, &owners)
}

/// [`plan`] with each node's owner ([`owner_of`]) given: the live loop keeps it per node object,
/// as it keeps the node's view (deciding it again for 10,000 unchanged nodes on every tick was
/// a good part of the loop's cost). Pure.
pub fn plan_owned(pools: &[PoolView], nodes: &[&NodeView], owners: &[Option<usize>]) -> Vec<Action> {
    let mut actions = Vec::new();
    for (index, pool) in pools.iter().enumerate() {
        // A node whose pool cannot be decided belongs to none (`pkg/controller/node/node_controller.go`,
        // `getNodesForPool` skips it).
        let members: Vec<&NodeView> = nodes.iter().zip(owners).filter(|(_, o)| **o == Some(index)).map(|(n, _)| *n).collect();
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
        // `pkg/controller/node/status.go`, `calculateStatus`: updated = current == desired ==
        // target and Done; ready = updated and Ready; Updated only when every machine is updated,
        // ready and none unavailable.
        let updated: Vec<&&NodeView> =
            members.iter().filter(|n| n.current == pool.target && n.desired == pool.target && n.state == "Done").collect();
        let ready = updated.iter().filter(|n| n.ready).count();
        let degraded: Vec<&&NodeView> = members.iter().filter(|n| n.degraded()).collect();
        let all_updated = updated.len() == members.len() && ready == members.len() && unavailable == 0;
        let updating = !all_updated && !pool.paused;
        let now = now_rfc3339();
        let condition = |kind: &str, on: bool, reason: String, message: String| json!({"type": kind, "status": if on { "True" } else { "False" }, "lastTransitionTime": now, "reason": reason, "message": message});
        let degraded_message =
            degraded.iter().map(|n| format!("Node {} is reporting: {:?}", n.name, n.reason)).collect::<Vec<_>>().join(", ");
        let line = format!("MachineConfig {}", pool.target);
        // `calculateStatus` also reports the generation it acted on (`ObservedGeneration:
        // pool.Generation`), on every sync, paused or not (`syncStatusOnly`); kubectl's and oc's
        // `wait --for=condition` treat a condition older than the generation as not yet observed.
        let mut status = json!({
            "observedGeneration": pool.generation,
            "machineCount": members.len(),
            "updatedMachineCount": updated.len(),
            "readyMachineCount": ready,
            "unavailableMachineCount": unavailable,
            "degradedMachineCount": degraded.len(),
            "conditions": [
                condition("Updated", all_updated, String::new(), if all_updated { format!("All nodes are updated with {line}") } else { String::new() }),
                condition("Updating", updating, String::new(), if updating { format!("All nodes are updating to {line}") }
                    else if pool.paused && !all_updated { format!("Pool is paused; will not update to {line}") } else { String::new() }),
                condition("NodeDegraded", !degraded.is_empty(),
                    if degraded.is_empty() { String::new() } else { format!("{} nodes are reporting degraded status on sync", degraded.len()) },
                    degraded_message.clone()),
                condition("Degraded", !degraded.is_empty(), String::new(), degraded_message),
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
    node.at("/metadata/annotations").and_then(|a| a.get(key)).and_then(Value::as_str).unwrap_or_default().to_owned()
}

pub fn node_view(node: &Value) -> NodeView {
    NodeView {
        name: node["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
        labels: string_map(node.at("/metadata/labels")),
        current: annotation(node, CURRENT),
        desired: annotation(node, DESIRED),
        state: annotation(node, STATE),
        reason: annotation(node, REASON),
        ready: node_is_ready(node),
        unschedulable: node.at("/spec/unschedulable") == Some(&json!(true)),
    }
}

pub fn pool_view(pool: &Value) -> PoolView {
    PoolView {
        name: pool["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
        selector: string_map(pool.at("/spec/nodeSelector/matchLabels")),
        paused: pool.at("/spec/paused") == Some(&json!(true)),
        max_unavailable: MaxUnavailable::parse(pool.at("/spec/maxUnavailable")),
        target: pool.at("/spec/configuration/name").and_then(Value::as_str).unwrap_or_default().to_owned(),
        generation: pool.at("/metadata/generation").and_then(Value::as_i64).unwrap_or(1),
    }
}

/// The daemon's drain (machine-config-operator `pkg/daemon/drain.go`; on release-4.14 the drain
/// controller `pkg/controller/drain/drain_controller.go`, both through kubectl's `drain.Helper`):
/// every pod on the node but DaemonSet pods is evicted through the eviction subresource's own
/// path ([`super::eviction::evict_pod`]), so each eviction that goes takes one of its budget's
/// disruptions and an admin's `kubectl drain` racing for the same budget sees the same numbers.
/// A pod whose eviction is refused (429) stays and is retried on the next pass (`evictPods`:
/// "will retry after 5s"); the pods already evicted stay evicted. The pods evicted on this pass,
/// and Ok when none is left, else the refusal to log.
fn drain(cluster: &World, node: &str) -> (Result<(), String>, usize) {
    let pods_t = types::find("", "v1", "pods").expect("pods");
    let mut store = cluster.api.store.lock().unwrap();
    let filter = Filter {
        fields: super::selector::FieldSelector::parse(&format!("spec.nodeName={node}")).expect("valid selector"),
        ..Default::default()
    };
    let pods: Vec<Arc<Value>> = store
        .list(pods_t, &filter, None, None)
        .items
        .into_iter()
        .filter(|p| {
            !p.at("/metadata/ownerReferences").and_then(Value::as_array).is_some_and(|o| o.iter().any(|r| r["kind"] == "DaemonSet"))
        })
        .collect();
    let mut evicted = 0;
    let mut refusal = None;
    for pod in &pods {
        let namespace = pod["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        match super::eviction::evict_pod(&mut store, namespace, name) {
            Ok(()) => evicted += 1,
            // Gone meanwhile: nothing left to evict.
            Err((404, _)) => {}
            Err((_, status)) => {
                refusal.get_or_insert_with(|| {
                    format!(
                        "error when evicting pods/{name:?} -n {namespace:?} (will retry after 5s): {}",
                        status["message"].as_str().unwrap_or_default()
                    )
                });
            }
        }
    }
    (refusal.map_or(Ok(()), Err), evicted)
}

/// The revisions of what the pass over the nodes (the node controller and the daemons) reads
/// from the store: the Nodes and the MachineConfigPools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PassInputs {
    nodes: u64,
    pools: u64,
}

/// Whether the pass over the nodes may change anything: never run yet, a Node or a pool changed
/// since the revisions the last pass read (its own writes count, so it runs until a pass writes
/// nothing), or something it follows is not in those kinds alone (`elsewhere`: a drain waits on
/// pods and budgets, an update on its host's phase, a reboot on the boot ID). The same inputs
/// give the same plan, which the last pass wrote already: the pass over 10,000 unchanged nodes
/// every 300 ms was a fifth of the simulation's CPU in a rolling run (issue 26). Pure.
fn pass_needed(last: Option<PassInputs>, now: PassInputs, elsewhere: bool) -> bool {
    elsewhere || last != Some(now)
}

/// The MCO's render controller (from the network config, per release) and node controller, and
/// the machine-config daemons, reconciling every `interval`.
pub async fn run(cluster: Arc<World>, interval: Duration) {
    let nodes_t = types::find("", "v1", "nodes").expect("nodes");
    let pools_t = types::find("machineconfiguration.openshift.io", "v1", "machineconfigpools").expect("pools");
    let mcs_t = types::find("machineconfiguration.openshift.io", "v1", "machineconfigs").expect("machineconfigs");
    let network_t = types::find("config.openshift.io", "v1", "networks").expect("networks");
    // Boot ID each updating node had when its daemon rebooted it.
    let mut rebooting: HashMap<String, String> = HashMap::new();
    // Nodes cordoned and being drained, with the last refusal logged and the pods evicted so far.
    let mut draining: HashMap<String, (String, usize)> = HashMap::new();
    // The configure-ovs.sh argument each pool's config was last rendered for.
    let mut rendered_for: HashMap<String, String> = HashMap::new();
    // Each node's view, with the object it was read from: the store never changes an object in
    // place (a write stores a new Arc), so while a node's Arc is the same its view is too, and
    // only the nodes written since the last tick are read again.
    // With the pool that owns it ([`owner_of`]), for the pools' names and selectors in `owned_by`.
    let mut views_of: HashMap<String, (Arc<Value>, NodeView, Option<usize>)> = HashMap::new();
    let mut owned_by: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    // What the last pass over the nodes read, and whether it left a node waiting on its host.
    let mut last_pass: Option<PassInputs> = None;
    let mut waits_on_a_host = false;
    let mut tick = tokio::time::interval(interval);
    loop {
        tick.tick().await;
        {
            // The render controller (`pkg/controller/render/render_controller.go`,
            // `syncGeneratedMachineConfig`): each pool targets the config rendered for the
            // network's configure-ovs.sh argument, re-rendered when that argument changes (the
            // other MachineConfigs a real render merges are not modelled: a test may set
            // spec.configuration itself to stand for such a change).
            let mut store = cluster.api.store.lock().unwrap();
            let network = store.get(network_t, None, "cluster").ok();
            let argument = network.as_ref().map(|n| ovs_argument(cluster.release, n)).unwrap_or_default();
            let mtu = network.as_ref().is_some_and(|n| super::live::mtu_migration(n));
            if !argument.is_empty() {
                for pool in store.list(pools_t, &Filter::default(), None, None).items {
                    let name = pool["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                    let plain = rendered_name(&name, &argument);
                    let rendered = if mtu { format!("{plain}-mtu") } else { plain };
                    let key = if mtu { format!("{argument}+mtu") } else { argument.clone() };
                    let unset = pool.at("/spec/configuration/name").and_then(Value::as_str).is_none_or(str::is_empty);
                    let seeded = pool.at("/spec/configuration/name").and_then(Value::as_str) == Some(rendered.as_str());
                    let before = rendered_for.insert(name.clone(), key.clone());
                    if unset || (!seeded && before.as_ref().is_some_and(|b| *b != key)) {
                        if store.get(mcs_t, None, &rendered).is_err() {
                            let config = rendered_config(&rendered_name(&name, &argument), &name, &argument);
                            let _ = store.create(mcs_t, None, if mtu { with_mtu_migration(config) } else { config });
                        }
                        let _ = store.patch(
                            pools_t,
                            None,
                            &name,
                            PatchType::Merge,
                            &json!({"spec": {"configuration": {"name": rendered}}}),
                            None,
                        );
                    }
                }
            }
        }
        let (pool_objects, pools, nodes) = {
            let store = cluster.api.store.lock().unwrap();
            let inputs = PassInputs { nodes: store.kind_revision(nodes_t), pools: store.kind_revision(pools_t) };
            let in_progress = !rebooting.is_empty() || !draining.is_empty();
            if !pass_needed(last_pass, inputs, in_progress || waits_on_a_host) {
                continue;
            }
            last_pass = Some(inputs);
            let pool_objects = store.list(pools_t, &Filter::default(), None, None).items;
            let pools: Vec<PoolView> = pool_objects.iter().map(|p| pool_view(p)).collect();
            // The store's objects are immutable (a write replaces the Arc), so holding them is
            // the same snapshot a deep copy was, without copying every Node each tick.
            let nodes: Vec<Arc<Value>> = store.list(nodes_t, &Filter::default(), None, None).items;
            (pool_objects, pools, nodes)
        };
        // A node's owner depends on the pools' names and selectors alone: decided again for
        // every node when those change.
        let pool_selectors: Vec<(String, BTreeMap<String, String>)> = pools.iter().map(|p| (p.name.clone(), p.selector.clone())).collect();
        if pool_selectors != owned_by {
            views_of.clear();
            owned_by = pool_selectors;
        }
        for node in &nodes {
            let name = node["metadata"]["name"].as_str().unwrap_or_default();
            if !views_of.get(name).is_some_and(|(seen, _, _)| Arc::ptr_eq(seen, node)) {
                let view = node_view(node);
                let owner = owner_of(&view, &pools);
                views_of.insert(name.to_owned(), (node.clone(), view, owner));
            }
        }
        if views_of.len() > nodes.len() {
            let present: HashSet<&str> = nodes.iter().map(|n| n["metadata"]["name"].as_str().unwrap_or_default()).collect();
            views_of.retain(|name, _| present.contains(name.as_str()));
        }
        let (views, owners): (Vec<&NodeView>, Vec<Option<usize>>) = nodes
            .iter()
            .map(|n| {
                let (_, view, owner) = &views_of[n["metadata"]["name"].as_str().unwrap_or_default()];
                (view, *owner)
            })
            .unzip();
        for action in plan_owned(&pools, &views, &owners) {
            let mut store = cluster.api.store.lock().unwrap();
            let _ = match action {
                Action::SetDesired { node, config } => {
                    store.patch(nodes_t, None, &node, PatchType::Merge, &json!({"metadata": {"annotations": {DESIRED: config}}}), None)
                }
                Action::PoolStatus { pool, status } => {
                    let old = pool_objects.iter().find(|p| p["metadata"]["name"] == pool.as_str()).and_then(|p| p.get("status"));
                    let status = carry_transition_times(old, status);
                    if old.is_some_and(|o| {
                        let mut merged = o.clone();
                        super::patch::merge_patch(&mut merged, &status);
                        merged == *o
                    }) {
                        continue;
                    }
                    store.patch(pools_t, None, &pool, PatchType::Merge, &json!({"status": status}), Some("status"))
                }
            };
        }
        let in_progress: HashSet<String> = rebooting.keys().chain(draining.keys()).cloned().collect();
        let mut started = Vec::new();
        waits_on_a_host = false;
        for (node, view) in nodes.iter().zip(&views) {
            // Only a node whose update may start, or one this loop is draining or rebooting,
            // has anything to do here (the simulated node looked up for those alone).
            let may_start = view.desired != view.current && view.state == "Done" && view.ready;
            let busy = !in_progress.is_empty() && in_progress.contains(&view.name);
            if !may_start && !busy {
                continue;
            }
            let Some(sim) = cluster.node(&view.name) else { continue };
            if may_start && !busy && sim.phase() != super::node::Phase::Up {
                // Its host's phase is not in the store: no write tells when the update may start.
                waits_on_a_host = true;
            }
            if may_start && sim.phase() == super::node::Phase::Up && !busy {
                let _ = cluster.api.store.lock().unwrap().patch(
                    nodes_t,
                    None,
                    &view.name,
                    PatchType::Merge,
                    &json!({"metadata": {"annotations": {STATE: "Working"}}, "spec": {"unschedulable": true}}),
                    None,
                );
                cluster.append_daemon_log(&view.name, "Update prepared; requesting cordon and drain via annotation to controller");
                started.push(view.name.clone());
                continue;
            }
            // Only a node this loop is draining or rebooting has more to do here.
            if !busy {
                continue;
            }
            let boot_id = node.at("/status/nodeInfo/bootID").and_then(Value::as_str).unwrap_or_default().to_owned();
            if let Some((last, before)) = draining.get(&view.name).cloned() {
                let (outcome, evicted) = drain(&cluster, &view.name);
                let evicted = before + evicted;
                match outcome {
                    Ok(()) => {
                        cluster.append_daemon_log(&view.name, &format!("drain complete ({evicted} pods evicted)"));
                        cluster.append_daemon_log(&view.name, &format!("initiating reboot: Node will reboot into config {}", view.desired));
                        draining.remove(&view.name);
                        rebooting.insert(view.name.clone(), boot_id);
                        sim.schedule_reboot(Duration::ZERO);
                    }
                    Err(refusal) => {
                        if refusal != last {
                            cluster.append_daemon_log(&view.name, &refusal);
                        }
                        draining.insert(view.name.clone(), (refusal, evicted));
                    }
                }
                continue;
            }
            // The daemon finishes the update once the node booted into it, Ready or not (it runs
            // on the host network: `pkg/daemon/daemon.go`, `checkStateOnFirstRun`).
            if let Some(before) = rebooting.get(&view.name)
                && *before != boot_id
                && !boot_id.is_empty()
            {
                let _ = cluster.api.store.lock().unwrap().patch(
                    nodes_t,
                    None,
                    &view.name,
                    PatchType::Merge,
                    &json!({"metadata": {"annotations": {CURRENT: view.desired, STATE: "Done"}}, "spec": {"unschedulable": null}}),
                    None,
                );
                cluster.append_daemon_log(
                    &view.name,
                    &format!("Update completed for config {} and node has been successfully uncordoned", view.desired),
                );
                rebooting.remove(&view.name);
            }
        }
        for name in started {
            draining.insert(name, (String::new(), 0));
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
            reason: String::new(),
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
            generation: 1,
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
    fn the_pass_over_the_nodes_runs_again_only_when_what_it_reads_changed_or_waits_elsewhere() {
        let read = PassInputs { nodes: 10, pools: 4 };
        assert!(pass_needed(None, read, false), "the first pass");
        assert!(!pass_needed(Some(read), read, false), "nothing it reads changed");
        assert!(pass_needed(Some(read), PassInputs { nodes: 11, ..read }, false), "a Node changed");
        assert!(pass_needed(Some(read), PassInputs { pools: 5, ..read }, false), "a pool changed");
        assert!(pass_needed(Some(read), read, true), "a drain, a reboot or a host's phase is followed");
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
    fn the_status_reports_the_generation_it_acted_on_paused_or_not() {
        for paused in [false, true] {
            let mut p = pool("worker", paused, 1, "old");
            p.generation = 4;
            let actions = plan(&[p], &[node("w0", "worker", "old", "old")]);
            assert_eq!(status_of(&actions, "worker")["observedGeneration"], 4, "paused: {paused}");
        }
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

    #[test]
    fn pool_membership_follows_the_mco() {
        let mut both = node("n0", "worker", "a", "a");
        both.labels.insert("node-role.kubernetes.io/infra".into(), String::new());
        let pools =
            [pool("worker", false, 1, "w"), pool("infra", false, 1, "i"), pool("master", false, 1, "m"), pool("gpu", false, 1, "g")];
        assert_eq!(primary_pool(&both, &pools), Ok(Some("infra")), "custom over worker");
        both.labels.insert("node-role.kubernetes.io/master".into(), String::new());
        assert_eq!(primary_pool(&both, &pools), Ok(Some("master")), "master over custom");
        both.labels.insert("node-role.kubernetes.io/gpu".into(), String::new());
        assert_eq!(primary_pool(&both, &pools), Err("node n0 belongs to 2 custom roles, cannot proceed with this Node".into()));
        // Such a node belongs to no pool.
        let actions = plan(&pools, &[both]);
        assert!(["worker", "infra", "master", "gpu"].iter().all(|p| status_of(&actions, p)["machineCount"] == 0));
    }

    #[test]
    fn a_degraded_node_degrades_its_pool_and_a_not_ready_one_keeps_it_from_updated() {
        let mut bad = node("w0", "worker", "new", "new");
        bad.state = "Unreconcilable".into();
        bad.reason = "invalid MachineConfig".into();
        let actions = plan(&[pool("worker", false, 1, "new")], &[bad]);
        let status = status_of(&actions, "worker");
        assert_eq!(status["degradedMachineCount"], 1);
        assert_eq!(status["conditions"][2]["type"], "NodeDegraded");
        assert_eq!(status["conditions"][2]["message"], "Node w0 is reporting: \"invalid MachineConfig\"");
        assert_eq!(status["conditions"][3]["status"], "True");
        let mut not_ready = node("w1", "worker", "new", "new");
        not_ready.ready = false;
        let status = status_of(&plan(&[pool("worker", false, 1, "new")], &[not_ready]), "worker").clone();
        assert_eq!((status["updatedMachineCount"].as_u64(), status["readyMachineCount"].as_u64()), (Some(1), Some(0)));
        assert_eq!(status["conditions"][0]["status"], "False", "not Updated while a machine is not ready");
    }

    #[test]
    fn configure_ovs_takes_its_argument_from_the_release_s_field() {
        let preparing = json!({"spec": {"networkType": "OpenShiftSDN"}, "status": {"networkType": "OpenShiftSDN", "migration": {"networkType": "OVNKubernetes"}}});
        assert_eq!(ovs_argument(Release::parse("4.14.38").unwrap(), &preparing), "OVNKubernetes");
        assert_eq!(ovs_argument(Release::parse("4.7.60").unwrap(), &preparing), "OpenShiftSDN");
        let switched = json!({"spec": {"networkType": "OVNKubernetes"}, "status": {"networkType": "OVNKubernetes"}});
        assert_eq!(ovs_argument(Release::parse("4.7.60").unwrap(), &switched), "OVNKubernetes");
        assert_eq!(ovs_argument(Release::parse("4.16.2").unwrap(), &json!({"spec": {"networkType": "OVNKubernetes"}})), "OVNKubernetes");
        let mc = rendered_config(&rendered_name("worker", "OVNKubernetes"), "worker", "OVNKubernetes");
        assert_eq!(mc["metadata"]["name"], "rendered-worker-0f3e9c1b7a");
        assert!(mc.to_string().contains("ExecStart=/usr/local/bin/configure-ovs.sh OVNKubernetes"));
    }
}
