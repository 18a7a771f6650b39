//! What the simulated operators, the kubelets and the API server share: the API's state, the
//! nodes, the release, and the few cluster-wide actions the operators take (rolling out a
//! network plugin, a daemon's log line). The cluster (`cluster.rs`) builds it and starts the
//! operators on it; the operators know this, never the cluster, so the dependencies point one
//! way: cluster → operators → world → API server and store.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::api::ApiState;
use super::node::SimNode;
use super::store::{PatchType, now_rfc3339};
use super::types;

pub struct World {
    pub api: Arc<ApiState>,
    pub nodes: Vec<Arc<SimNode>>,
    /// The simulated release (SimOptions::openshift_version).
    pub release: super::version::Release,
    /// The network type each node's plugin came up with at its last boot.
    pub(crate) booted_network: Mutex<std::collections::HashMap<String, String>>,
    /// Every change the simulated network operator refused (its Degraded message), in order:
    /// the witness that a client never asked for a change the release's operator refuses.
    pub refusals: Mutex<Vec<String>>,
    /// Each node's position in `nodes`, by name: built on first use (`nodes` never changes
    /// after the cluster starts, so the index cannot go stale).
    pub(crate) node_index: std::sync::OnceLock<std::collections::HashMap<String, usize>>,
}

fn nodes_type() -> &'static types::ResourceType {
    types::find("", "v1", "nodes").expect("nodes")
}

fn t(group: &str, version: &str, plural: &str) -> &'static types::ResourceType {
    types::find(group, version, plural).expect("known type")
}

/// The network plugin's DaemonSet, as the CNO names it for a network type
/// (`bindata/network/ovn-kubernetes`, `bindata/network/openshift-sdn`).
pub fn plugin_daemonset(network_type: &str) -> (&'static str, &'static str) {
    if network_type == "OVNKubernetes" { ("openshift-ovn-kubernetes", "ovnkube-node") } else { ("openshift-sdn", "sdn") }
}

/// An application pod of the `default` namespace on `node`, crash-looping or running.
pub fn app_pod(name: &str, node: &str, crashlooping: bool) -> Value {
    let state = if crashlooping {
        json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}})
    } else {
        json!({"running": {"startedAt": now_rfc3339()}})
    };
    json!({
        "metadata": {"name": name, "labels": {"app": "sample"}},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "quay.io/example/app:1"}]},
        "status": {"phase": "Running", "startTime": now_rfc3339(), "containerStatuses": [{"name": "app", "ready": !crashlooping, "restartCount": if crashlooping { 3 } else { 0 },
            "image": "quay.io/example/app:1", "imageID": "quay.io/example/app@sha256:5f0c1d9e2a8b7c6d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d",
            "started": !crashlooping, "state": state}]},
    })
}

/// The uid of a simulated DaemonSet: stable, so the pods it owns name it before it exists.
pub fn daemonset_uid(namespace: &str, daemonset: &str) -> String {
    crate::util::stable_uuid(&format!("{namespace}/{daemonset}"))
}

/// A DaemonSet as its operator creates it, scheduled on `total` nodes, all `available`.
pub fn daemonset(namespace: &str, name: &str, labels: Value, container: &str, image: &str, total: usize, available: usize) -> Value {
    json!({
        "metadata": {"name": name, "namespace": namespace, "uid": daemonset_uid(namespace, name)},
        "spec": {"selector": {"matchLabels": labels}, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "10%"}},
            "template": {"metadata": {"labels": labels}, "spec": {"hostNetwork": true, "containers": [{"name": container, "image": image}]}}},
        "status": {"desiredNumberScheduled": total, "currentNumberScheduled": total, "numberReady": available, "updatedNumberScheduled": total,
            "numberAvailable": available, "numberUnavailable": total - available, "numberMisscheduled": 0, "observedGeneration": 1},
    })
}

/// A pod as a DaemonSet's controller creates it on `node`, running and ready (or not).
pub fn daemon_pod(namespace: &str, daemonset: &str, container: &str, node: &str, ip: &str, ready: bool) -> Value {
    let image = format!("quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:{:0>64}", format!("{:x}", daemonset.len() * 7919));
    json!({
        "metadata": {"generateName": format!("{daemonset}-"), "namespace": namespace, "labels": {"app": daemonset, "component": "network"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": daemonset, "uid": daemonset_uid(namespace, daemonset), "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"nodeName": node, "hostNetwork": true, "containers": [{"name": container, "image": image}]},
        "status": {"phase": "Running", "hostIP": ip, "podIP": ip, "startTime": now_rfc3339(),
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": now_rfc3339()}],
            "containerStatuses": [{"name": container, "ready": ready, "started": true, "restartCount": 0, "image": image, "imageID": image,
                "state": {"running": {"startedAt": now_rfc3339()}}}]},
    })
}

impl World {
    /// The simulated machine named `name` (a hash lookup: the MCO asks for every node on every
    /// tick, and a scan was 10^8 string compares a tick at 10,000 nodes).
    pub fn node(&self, name: &str) -> Option<&Arc<SimNode>> {
        let index = self.node_index.get_or_init(|| self.nodes.iter().enumerate().map(|(i, n)| (n.name.clone(), i)).collect());
        index.get(name).map(|&i| &self.nodes[i])
    }

    /// The network plugin's DaemonSet and one pod per node, as the CNO renders it for
    /// `network_type` (`bindata/network/ovn-kubernetes` or `bindata/network/openshift-sdn`).
    /// Pods come up ready with `ready`; else [`World::sync_network_plugin`] readies them.
    pub fn deploy_network_plugin(&self, network_type: &str, ready: bool) {
        let (namespace, name) = plugin_daemonset(network_type);
        let container = if network_type == "OVNKubernetes" { "ovnkube-controller" } else { "sdn" };
        let total = self.nodes.len();
        let available = if ready { total } else { 0 };
        let mut store = self.api.store.lock().unwrap();
        let mut plugin = daemonset(namespace, name, json!({"app": name}), container, "quay.io/openshift/ovn-kubernetes", total, available);
        plugin["spec"]["template"]["metadata"]["labels"]["component"] = json!("network");
        let _ = store.create(t("apps", "v1", "daemonsets"), Some(namespace), plugin);
        for node in &self.nodes {
            let ip = node.addr.ip().to_string();
            let _ = store.create(t("", "v1", "pods"), Some(namespace), daemon_pod(namespace, name, container, &node.name, &ip, ready));
        }
        if network_type == "OpenShiftSDN" {
            // OpenShift SDN's master gives every node a HostSubnet, a /23 of the cluster network
            // (openshift/sdn `pkg/network/master/subnets.go`, `addNode`); the network operator's
            // egress IP rollback waits for them (`sdnEgressIpResourcesReady`).
            for (i, node) in self.nodes.iter().enumerate() {
                let _ = store.create(
                    t("network.openshift.io", "v1", "hostsubnets"),
                    None,
                    json!({
                        "metadata": {"name": node.name, "annotations": {"pod.network.openshift.io/node-uid": crate::util::stable_uuid(&node.name)}},
                        "host": node.name, "hostIP": node.addr.ip().to_string(), "subnet": format!("10.{}.{}.0/23", 128 + i / 128, (i % 128) * 2),
                    }),
                );
            }
        }
    }

    /// The running plugin's pods are ready on the nodes that are Ready and booted with it; its
    /// DaemonSet counts them (the kubelets and the DaemonSet controller).
    pub fn sync_network_plugin(&self, network_type: &str) {
        let (namespace, name) = plugin_daemonset(network_type);
        let pods_t = t("", "v1", "pods");
        let booted = self.booted_network.lock().unwrap().clone();
        let mut store = self.api.store.lock().unwrap();
        let ready_nodes: std::collections::HashSet<String> = store
            .list(nodes_type(), &Default::default(), None, None)
            .items
            .iter()
            .filter(|n| crate::util::node_is_ready(n))
            .map(|n| n["metadata"]["name"].as_str().unwrap_or_default().to_owned())
            .filter(|n| booted.get(n).is_some_and(|b| b == network_type))
            .collect();
        let filter = super::store::Filter { namespace: Some(namespace.to_owned()), ..Default::default() };
        let mut available = 0;
        let pods = store.list(pods_t, &filter, None, None).items;
        for pod in &pods {
            let ready = pod.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| ready_nodes.contains(n));
            available += usize::from(ready);
            if pod.pointer("/status/containerStatuses/0/ready") != Some(&json!(ready)) {
                let mut statuses = pod["status"]["containerStatuses"].clone();
                statuses[0]["ready"] = json!(ready);
                let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                let _ = store.patch(pods_t, Some(namespace), &pod_name, PatchType::Merge, &json!({"status": {"containerStatuses": statuses,
                    "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": now_rfc3339()}]}}), Some("status"));
            }
        }
        let ds_t = t("apps", "v1", "daemonsets");
        let changed =
            store.get(ds_t, Some(namespace), name).is_ok_and(|ds| ds.pointer("/status/numberAvailable") != Some(&json!(available)));
        if changed {
            let total = pods.len();
            let _ = store.patch(
                ds_t,
                Some(namespace),
                name,
                PatchType::Merge,
                &json!({"status": {"numberReady": available, "numberAvailable": available, "numberUnavailable": total - available}}),
                Some("status"),
            );
        }
    }

    /// Appends a line to the log of the node's machine-config-daemon pod.
    pub fn append_daemon_log(&self, node: &str, line: &str) {
        let filter = super::store::Filter {
            namespace: Some("openshift-machine-config-operator".into()),
            // The daemon's pod, not another pod of the namespace there (the etcd quorum guard's before 4.10).
            labels: super::selector::LabelSelector::parse("k8s-app=machine-config-daemon").expect("valid selector"),
            fields: super::selector::FieldSelector::parse(&format!("spec.nodeName={node}")).expect("valid selector"),
        };
        let pods = self.api.store.lock().unwrap().list(t("", "v1", "pods"), &filter, None, None).items;
        if let Some(pod) = pods.first() {
            let key = format!("openshift-machine-config-operator/{}", pod["metadata"]["name"].as_str().unwrap_or_default());
            let stamp = humantime::format_rfc3339_millis(std::time::SystemTime::now());
            self.api.logs.lock().unwrap().entry(key).or_default().push_str(&format!("I{stamp} daemon.go] {line}\n"));
        }
    }
}
