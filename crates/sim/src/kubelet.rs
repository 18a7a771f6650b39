//! The kubelets' part for pods a client creates bound to a node (an `oc debug node/NAME` pod,
//! any bare pod with `spec.nodeName`): the node's kubelet runs them. Exec into them is served
//! by `exec.rs` like any pod's (a hostPath volume of `/` is the host's root).
//!
//! What is modelled, and from where:
//! - Binding: a pod created with `spec.nodeName` set is bound already; the scheduler skips it
//!   (kubernetes `pkg/scheduler/eventhandlers.go`, `assignedPod`) and that node's kubelet
//!   picks it up (`pkg/kubelet/config/apiserver.go`, the `spec.nodeName` field selector).
//!   Taints are not checked for such a pod (the scheduler's TaintToleration plugin never sees
//!   it); the kubelet's admission is not modelled.
//! - Phase and readiness: the kubelet writes `Pending` until the pod's containers run, then
//!   `Running` (`pkg/kubelet/kubelet_pods.go`, `getPhase`), with `Ready` True once every
//!   container is ready (`pkg/kubelet/status/generate.go`, `GeneratePodReadyCondition`; no
//!   readiness probe: ready when running). A kubelet that is down writes nothing: the pod
//!   stays as it was until the node's kubelet posts Ready again (the node's Ready condition is
//!   the kubelet's own heartbeat, `pkg/kubelet/kubelet_node_status.go`).
//! - Not modelled: image pulls (a container starts on the next pass), restartPolicy after a
//!   node reboot, pods owned by controllers (their readiness is `workloads.rs`'s).

use crate::util::At as _;
use serde_json::{Value, json};

use super::store::{PatchType, Store, now_rfc3339};
use super::types;

fn pods() -> &'static types::ResourceType {
    types::find("", "v1", "pods").expect("pods")
}

fn nodes() -> &'static types::ResourceType {
    types::find("", "v1", "nodes").expect("nodes")
}

/// Whether the pod is one this module runs: bound by its creator, owned by no controller, not
/// terminating, and not yet started.
pub(crate) fn bare_and_not_started(pod: &Value) -> bool {
    pod.at("/spec/nodeName").and_then(Value::as_str).is_some()
        && pod.at("/metadata/ownerReferences").and_then(Value::as_array).is_none_or(Vec::is_empty)
        && pod.at("/metadata/deletionTimestamp").is_none()
        && matches!(pod.at("/status/phase").and_then(Value::as_str), None | Some("Pending"))
}

/// One pass: each bare pod bound to a node whose kubelet is up (node Ready) starts running.
pub fn run_bound_pods(store: &mut Store) {
    let waiting: Vec<_> =
        store.list(pods(), &Default::default(), None, None).items.into_iter().filter(|p| bare_and_not_started(p)).collect();
    start_bound_pods(store, waiting);
}

/// [`run_bound_pods`] over the pods `waiting` (bare and not started, in the order a read of
/// every pod gives them): the workloads' pass looks only at the pods that changed or whose
/// node did (`super::workloads::Followed`).
pub fn start_bound_pods(store: &mut Store, waiting: Vec<std::sync::Arc<Value>>) {
    // The Ready nodes only when a pod waits to start (mostly none is: reading every node's
    // conditions on every pass for nothing cost more than the rest of this pass).
    if waiting.is_empty() {
        return;
    }
    let ready_nodes: std::collections::HashSet<String> = store
        .list(nodes(), &Default::default(), None, None)
        .items
        .iter()
        .filter(|n| crate::util::node_is_ready(n))
        .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    for pod in &waiting {
        let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
        if !ready_nodes.contains(node) {
            continue;
        }
        let now = now_rfc3339();
        let containers: Vec<Value> = pod
            .at("/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| {
                json!({"name": c["name"], "image": c["image"], "ready": true, "started": true, "restartCount": 0,
                    "state": {"running": {"startedAt": now}}})
            })
            .collect();
        let status = json!({
            "phase": "Running",
            "startTime": now,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
            ],
            "containerStatuses": containers,
        });
        let (namespace, name) =
            (pod["metadata"]["namespace"].as_str().unwrap_or_default(), pod["metadata"]["name"].as_str().unwrap_or_default());
        let _ = store.patch(pods(), Some(namespace), name, PatchType::Merge, &json!({"status": status}), Some("status"));
    }
}
