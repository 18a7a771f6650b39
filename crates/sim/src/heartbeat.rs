//! The kubelets' heartbeats, two ways.
//!
//! - [`HeartbeatMode::Ready`], the simulation's first way: every interval, every node that is up
//!   gets its Ready condition's `lastHeartbeatTime` patched (one Node status write per node and
//!   interval; no Lease).
//! - [`HeartbeatMode::Kubelet`], as kubelets of kubernetes 1.17 and later do it (release-1.29
//!   cited):
//!   - a **Lease** `kube-node-lease/<node>` per node (holderIdentity the node, 40 s, an owner
//!     reference to its Node), created when missing and its `spec.renewTime` renewed every
//!     renew interval: staging/src/k8s.io/component-helpers/apimachinery/lease/controller.go
//!     (`NewController`, `sync`: `backoffEnsureLease` gets or creates, `retryUpdateLease`
//!     updates `RenewTime`; `newLease` sets `HolderIdentity`, `LeaseDurationSeconds`, the Node
//!     owner reference), started by pkg/kubelet/kubelet.go with `leaseDuration =
//!     NodeLeaseDurationSeconds (40) s` and `renewInterval = leaseDuration ×
//!     nodeLeaseRenewIntervalFraction (0.25)` = 10 s (pkg/kubelet/apis/config/v1beta1/defaults.go:
//!     `NodeLeaseDurationSeconds = 40`);
//!   - the **Node status** posted every `nodeStatusUpdateFrequency` (10 s) only when it changed,
//!     else once every `nodeStatusReportFrequency`: pkg/kubelet/kubelet_node_status.go,
//!     `tryUpdateNodeStatus` (`if !kl.isUpdateStatusPeriodExperid() &&
//!     !nodeStatusHasChanged(&originalNode.Status, &node.Status) { return nil }`); the defaults
//!     are 10 s and 5 m (defaults.go), and this simulation reports every minute unless told
//!     otherwise (issue 26). A post sets every condition's `lastHeartbeatTime`
//!     (pkg/kubelet/nodestatus/setters.go: each condition setter writes `LastHeartbeatTime =
//!     currentTime`). The changes themselves (Ready flipping, a new bootID) are posted when they
//!     happen by the simulated kubelets in `cluster.rs`.
//!
//!   A kubelet only runs while its node is up: a node that is down neither renews its Lease nor
//!   posts its status. Real kubelets are not synchronised (each starts its timers at its own boot),
//!   so the nodes' beats are spread evenly over each interval here, not sent as one burst.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::node::Phase;
use super::store::{PatchType, now_rfc3339};
use super::types;
use super::world::World;

/// The namespace of the nodes' Leases (k8s.io/api core/v1 `NamespaceNodeLease`).
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// `NodeLeaseDurationSeconds` (pkg/kubelet/apis/config/v1beta1/defaults.go).
pub const NODE_LEASE_DURATION_SECONDS: u64 = 40;
/// `nodeLeaseRenewIntervalFraction` (pkg/kubelet/kubelet.go).
pub const NODE_LEASE_RENEW_FRACTION: f64 = 0.25;
/// The renew interval the two above make: 10 s.
pub const NODE_LEASE_RENEW_INTERVAL: Duration = Duration::from_secs(10);
/// How often a kubelet posts an unchanged Node status here (issue 26: one minute).
pub const NODE_STATUS_REPORT_FREQUENCY: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum HeartbeatMode {
    /// Ready's `lastHeartbeatTime` patched every `heartbeat` interval; no Leases.
    #[default]
    Ready,
    /// Leases renewed every `heartbeat` interval, the full status every `status_report`.
    Kubelet { status_report: Duration },
}

fn nodes_type() -> &'static types::ResourceType {
    types::find("", "v1", "nodes").expect("nodes")
}

fn leases_type() -> &'static types::ResourceType {
    types::find("coordination.k8s.io", "v1", "leases").expect("leases")
}

/// A Lease's MicroTime (`2006-01-02T15:04:05.000000Z07:00`).
pub fn micro_time(at: SystemTime) -> String {
    humantime::format_rfc3339_micros(at).to_string()
}

/// The Lease a node's kubelet creates (component-helpers lease/controller.go `newLease`).
pub fn node_lease(node: &str, node_uid: &str, renew_time: &str) -> Value {
    json!({
        "metadata": {"name": node, "namespace": NODE_LEASE_NAMESPACE,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid}]},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": NODE_LEASE_DURATION_SECONDS, "renewTime": renew_time},
    })
}

/// Renews `node`'s Lease, creating it when missing (`backoffEnsureLease`, then `retryUpdateLease`).
fn renew_lease(world: &World, node: &str) {
    let now = micro_time(SystemTime::now());
    let mut store = world.api.store.lock().unwrap();
    let patched =
        store.patch(leases_type(), Some(NODE_LEASE_NAMESPACE), node, PatchType::Merge, &json!({"spec": {"renewTime": now}}), None);
    if patched.is_err() {
        let uid = store
            .get(nodes_type(), None, node)
            .ok()
            .and_then(|n| n.pointer("/metadata/uid").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default();
        let _ = store.create(leases_type(), Some(NODE_LEASE_NAMESPACE), node_lease(node, &uid, &now));
    }
}

/// Posts `node`'s status with every condition's `lastHeartbeatTime` now (`only_ready`: the
/// Ready condition alone, the simulation's first way). Nothing when the node is not Ready in
/// the API: the kubelets' own transitions say that.
fn post_status(world: &World, node: &str, only_ready: bool) {
    let now = now_rfc3339();
    let mut store = world.api.store.lock().unwrap();
    let Ok(object) = store.get(nodes_type(), None, node) else { return };
    let Some(conditions) = object.pointer("/status/conditions").and_then(Value::as_array) else { return };
    if !conditions.iter().any(|c| c["type"] == "Ready" && c["status"] == "True") {
        return;
    }
    let beats: Vec<Value> = conditions
        .iter()
        .filter(|c| !only_ready || c["type"] == "Ready")
        .map(|c| {
            let mut c = c.clone();
            c["lastHeartbeatTime"] = json!(now);
            c
        })
        .collect();
    let _ = store.patch(nodes_type(), None, node, PatchType::Strategic, &json!({"status": {"conditions": beats}}), Some("status"));
}

/// How many slices an interval is cut into so that the nodes' beats are spread over it.
fn slices(nodes: usize, interval: Duration) -> usize {
    // At most one slice per 20 ms, at least one.
    let by_time = (interval.as_millis() / 20).max(1) as usize;
    nodes.clamp(1, by_time)
}

/// Beats `beat` for every node that is up, each node once per `interval`, spread over it.
async fn spread(world: Arc<World>, interval: Duration, beat: impl Fn(&World, &str)) {
    let count = slices(world.nodes.len(), interval);
    let mut tick = tokio::time::interval(interval / count as u32);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first slice beats one slice after the start, so nothing beats at the seed itself.
    tick.tick().await;
    let mut slice = 0;
    loop {
        tick.tick().await;
        for (i, node) in world.nodes.iter().enumerate() {
            if i % count == slice && node.phase() != Phase::Down {
                beat(&world, &node.name);
            }
        }
        slice = (slice + 1) % count;
    }
}

/// Creates every node's Lease (kubelet mode), as each kubelet does when it starts.
pub fn seed_leases(world: &World) {
    let now = micro_time(SystemTime::now());
    let mut store = world.api.store.lock().unwrap();
    for node in &world.nodes {
        let uid = store
            .get(nodes_type(), None, &node.name)
            .ok()
            .and_then(|n| n.pointer("/metadata/uid").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default();
        let _ = store.create(leases_type(), Some(NODE_LEASE_NAMESPACE), node_lease(&node.name, &uid, &now));
    }
}

/// Runs the heartbeats of `mode` every `interval` (Ready: the status; Kubelet: the Leases).
pub async fn run(world: Arc<World>, mode: HeartbeatMode, interval: Duration) {
    match mode {
        HeartbeatMode::Ready => ready_rounds(world, interval).await,
        HeartbeatMode::Kubelet { status_report } => {
            let leases = tokio::spawn(spread(world.clone(), interval, renew_lease));
            spread(world, status_report, |w, n| post_status(w, n, false)).await;
            leases.abort();
        }
    }
}

/// The simulation's first way, unchanged: one round over every node each interval.
async fn ready_rounds(world: Arc<World>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tick.tick().await;
        for node in &world.nodes {
            if node.phase() != Phase::Down {
                post_status(&world, &node.name, true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_renew_interval_is_a_quarter_of_the_lease() {
        let renew = Duration::from_secs(NODE_LEASE_DURATION_SECONDS).mul_f64(NODE_LEASE_RENEW_FRACTION);
        assert_eq!(renew, NODE_LEASE_RENEW_INTERVAL);
    }

    #[test]
    fn a_node_lease_is_held_by_its_node_and_owned_by_it() {
        let lease = node_lease("worker-0", "u-1", "2026-12-04T16:00:00.000000Z");
        assert_eq!(lease["metadata"]["namespace"], "kube-node-lease");
        assert_eq!(lease["spec"]["holderIdentity"], "worker-0");
        assert_eq!(lease["spec"]["leaseDurationSeconds"], 40);
        assert_eq!(lease["metadata"]["ownerReferences"][0]["kind"], "Node");
        assert_eq!(lease["metadata"]["ownerReferences"][0]["uid"], "u-1");
    }

    #[test]
    fn beats_are_spread_but_never_finer_than_20_ms() {
        assert_eq!(slices(10_000, Duration::from_secs(10)), 500);
        assert_eq!(slices(9, Duration::from_secs(10)), 9);
        assert_eq!(slices(9, Duration::from_millis(10)), 1);
        assert_eq!(slices(0, Duration::from_secs(1)), 1);
    }
}
