//! Workloads and their budgets, as every OpenShift 4.x cluster has them: apps/v1 Deployments
//! and their ReplicaSets, the pods those own, PodDisruptionBudgets with the status the
//! disruption controller writes, the etcd guard on the masters, and a small scheduler that
//! places a replacement pod on another schedulable Ready node when one is evicted or its node
//! goes away. The eviction subresource that honours the budgets is `cluster::evict`.
//!
//! What is modelled, and from where:
//! - Deployment -> ReplicaSet -> pods (kubernetes `pkg/controller/deployment`, `pkg/controller/replicaset`):
//!   one ReplicaSet per Deployment (no rollouts of a new template), `spec.replicas` propagated,
//!   missing pods created, extra pods deleted, status with `observedGeneration`.
//! - The scheduler (kubernetes `pkg/scheduler`): a new pod goes to a node that is Ready, not
//!   cordoned (`spec.unschedulable`, the NodeUnschedulable plugin), matching the pod's
//!   `nodeSelector`, and, for a pod with required anti-affinity on `kubernetes.io/hostname`
//!   (the router's), not already running a pod of its ReplicaSet; among those, the node with
//!   the fewest pods of the ReplicaSet (the default topology spreading). No node fits: the pod
//!   stays Pending (no nodeName) until one does.
//! - Readiness: a new pod is Ready a short delay after it is placed; the pods of a node that is
//!   not Ready are marked not Ready (kubernetes `pkg/controller/nodelifecycle`, MarkPodsNotReady)
//!   and Ready again when it is.
//! - A pod whose node no longer exists is deleted (kubernetes `pkg/controller/podgc`, gcOrphaned).
//! - PodDisruptionBudget status (kubernetes `pkg/controller/disruption/disruption.go`):
//!   `expectedPods` from the owners' `spec.replicas`, `currentHealthy` the Ready pods,
//!   `desiredHealthy` from `minAvailable` or `expectedPods - maxUnavailable` (percentages
//!   round up, `intstr.GetScaledValueFromIntOrPercent(.., true)`), `disruptionsAllowed` =
//!   max(0, currentHealthy - desiredHealthy), `observedGeneration`.
//!
//! Not modelled: rollouts of a changed pod template (maxSurge/maxUnavailable), StatefulSets,
//! resource requests, taints and tolerations, the 5 minutes a pod of a NotReady node waits
//! before it is evicted (`tolerationSeconds: 300`), preemption.
//!
//! One file, past 500 lines: the workload controllers (ReplicaSets, DaemonSets, budgets) are one rule set, each rule beside its source.

use crate::util::At as _;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::store::{PatchType, Store, now_rfc3339};
use super::types::{self, ResourceType};
use super::version::Release;
use super::world::World;

fn t(group: &str, version: &str, plural: &str) -> &'static ResourceType {
    types::find(group, version, plural).expect("known type")
}

fn deployments() -> &'static ResourceType {
    t("apps", "v1", "deployments")
}

fn replicasets() -> &'static ResourceType {
    t("apps", "v1", "replicasets")
}

fn pods() -> &'static ResourceType {
    t("", "v1", "pods")
}

fn pdbs() -> &'static ResourceType {
    t("policy", "v1", "poddisruptionbudgets")
}

/// Where a workload runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Master,
    Worker,
}

/// One Deployment of the default set, with its budget.
struct App {
    namespace: &'static str,
    name: String,
    labels: Value,
    replicas: usize,
    role: Role,
    /// Required pod anti-affinity on `kubernetes.io/hostname`: one pod per node.
    spread: bool,
    /// (name, "minAvailable" | "maxUnavailable", value)
    budget: Option<(String, &'static str, Value)>,
}

/// The namespaces the default set lives in.
pub fn namespaces(_release: Release, workloads: usize) -> Vec<&'static str> {
    if workloads == 0 {
        return Vec::new();
    }
    vec!["openshift-ingress", "openshift-image-registry", "openshift-console", "openshift-monitoring", "openshift-etcd", "sample-app"]
}

/// The router budget's maxUnavailable for a router of `replicas` (openshift/cluster-ingress-operator
/// `pkg/operator/controller/ingress/poddisruptionbudget.go`, `desiredRouterPodDisruptionBudget`):
/// none below 2 replicas; "50%", or "25%" from 4 replicas (release-4.7 to release-4.13) and
/// from 3 replicas (release-4.14 on, OCPBUGS-7546: two routers stay available of three).
fn router_max_unavailable(release: Release, replicas: usize) -> Option<&'static str> {
    let quarter_from = if release.minor >= 14 { 3 } else { 4 };
    match replicas {
        0 | 1 => None,
        n if n >= quarter_from => Some("25%"),
        _ => Some("50%"),
    }
}

/// The etcd guard's pods come from the guard controller with `etcd-guard-pdb` from 4.11
/// (openshift/cluster-etcd-operator release-4.11 `pkg/operator/starter.go`,
/// `WithPodDisruptionBudgetGuard`; release-4.10 still starts the QuorumGuardController).
fn guard_pods(release: Release) -> bool {
    release.minor >= 11
}

/// The default set of a release: `workloads` 0 is none (the bare cluster); from 1, the
/// platform's workloads and `workloads` user Deployments.
fn default_set(release: Release, masters: usize, workers: usize, workloads: usize) -> Vec<App> {
    if workloads == 0 {
        return Vec::new();
    }
    let router_replicas = 2;
    let mut apps = vec![
        // The default IngressController's router: 2 replicas, one per node (required
        // anti-affinity), and its budget ([`router_max_unavailable`]).
        App {
            namespace: "openshift-ingress",
            name: "router-default".into(),
            labels: json!({"ingresscontroller.operator.openshift.io/deployment-ingresscontroller": "default"}),
            replicas: router_replicas,
            role: Role::Worker,
            spread: true,
            budget: router_max_unavailable(release, router_replicas).map(|max| ("router-default".into(), "maxUnavailable", json!(max))),
        },
        // The image registry with 2 replicas: required anti-affinity at exactly 2 replicas
        // (openshift/cluster-image-registry-operator release-4.14 `pkg/resource/podtemplatespec.go`),
        // and from 4.8 its budget `image-registry` minAvailable 1, 0 for one replica
        // (`pkg/resource/poddisruptionbudget.go`, first on release-4.8; none on release-4.7).
        App {
            namespace: "openshift-image-registry",
            name: "image-registry".into(),
            labels: json!({"docker-registry": "default"}),
            replicas: 2,
            role: Role::Worker,
            spread: true,
            budget: (release.minor >= 8).then(|| ("image-registry".into(), "minAvailable", json!(1))),
        },
        // The console on the masters (openshift/console-operator: nodeSelector
        // node-role.kubernetes.io/master, 2 replicas), and from 4.11 its budget `console`
        // maxUnavailable 1 (release-4.11 `bindata/pdb/console-pdb.yaml`, release-4.14
        // `bindata/assets/pdb/console-pdb.yaml`; no budget on release-4.10 and before).
        App {
            namespace: "openshift-console",
            name: "console".into(),
            labels: json!({"app": "console", "component": "ui"}),
            replicas: 2,
            role: Role::Master,
            spread: true,
            budget: (release.minor >= 11).then(|| ("console".into(), "maxUnavailable", json!(1))),
        },
        // Monitoring's query frontend (openshift/cluster-monitoring-operator
        // `assets/thanos-querier/deployment.yaml`: 2 replicas, required anti-affinity), and
        // from 4.8 its budget `thanos-querier-pdb` minAvailable 1
        // (`assets/thanos-querier/pod-disruption-budget.yaml`, first on release-4.8, the same
        // on release-4.14). Prometheus (`prometheus-k8s` minAvailable 1) and Alertmanager
        // (`alertmanager-main` maxUnavailable 1), budgeted from 4.10, are StatefulSets: not modelled.
        App {
            namespace: "openshift-monitoring",
            name: "thanos-querier".into(),
            labels: json!({"app.kubernetes.io/name": "thanos-query", "app.kubernetes.io/component": "query-layer"}),
            replicas: 2,
            role: Role::Worker,
            spread: true,
            budget: (release.minor >= 8).then(|| ("thanos-querier-pdb".into(), "minAvailable", json!(1))),
        },
    ];
    if !guard_pods(release) {
        // Before the guard pods: the etcd quorum guard, a Deployment with one pod per master
        // and its budget `etcd-quorum-guard` maxUnavailable 1, in openshift-etcd from 4.6
        // (openshift/cluster-etcd-operator release-4.7 `manifests/0000_12_etcd-operator_09_etcdquorumguard_pdb.yaml`;
        // release-4.8 to release-4.10 `pkg/operator/quorumguardcontroller/quorumguardcontroller.go`).
        // Up to 4.5 the machine-config operator shipped it in openshift-machine-config-operator
        // (openshift/machine-config-operator release-4.5 `install/0000_80_machine-config-operator_08_etcdquorumguard_pdb.yaml`):
        // older than any release simulated.
        apps.push(App {
            namespace: "openshift-etcd",
            name: "etcd-quorum-guard".into(),
            labels: json!({"k8s-app": "etcd-quorum-guard"}),
            replicas: masters,
            role: Role::Master,
            spread: true,
            budget: Some(("etcd-quorum-guard".into(), "maxUnavailable", json!(1))),
        });
    }
    // The operators size their workloads by the infrastructure's topology (a SingleReplica
    // control plane or infrastructure runs one replica and creates no budget: console-operator
    // and cluster-monitoring-operator skip the PDB there). Here each is sized by the nodes it
    // may run on: no more replicas than nodes, and no budget for a single replica.
    let user_replicas = workers.clamp(1, 3);
    for i in 0..workloads {
        // A user workload as the Kubernetes documentation's PDB example has it
        // (concepts/workloads/pods/disruptions): 3 replicas, minAvailable 2 (fewer on fewer workers).
        apps.push(App {
            namespace: "sample-app",
            name: format!("frontend-{i}"),
            labels: json!({"app": format!("frontend-{i}")}),
            replicas: user_replicas,
            role: Role::Worker,
            spread: false,
            budget: Some((format!("frontend-{i}"), "minAvailable", json!(user_replicas - 1))),
        });
    }
    for app in &mut apps {
        let nodes = if app.role == Role::Master { masters } else { workers };
        if app.replicas > nodes {
            app.replicas = nodes.max(1);
        }
        if app.replicas < 2 {
            app.budget = None;
        }
    }
    apps
}

fn role_selector(role: Role) -> Value {
    match role {
        Role::Master => json!({"node-role.kubernetes.io/master": ""}),
        Role::Worker => json!({"node-role.kubernetes.io/worker": ""}),
    }
}

fn owner(kind: &str, name: &str, uid: &str) -> Value {
    json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid, "controller": true, "blockOwnerDeletion": true}])
}

/// The pod-template-hash a ReplicaSet's name carries: stable per Deployment.
fn template_hash(namespace: &str, name: &str) -> String {
    crate::util::stable_uuid(&format!("{namespace}/{name}/template")).replace('-', "")[..10].to_owned()
}

/// Seeds the default set: Deployments, their ReplicaSets, pods already placed and Ready, the
/// budgets; from 4.11 the etcd guard pods and `etcd-guard-pdb`. The controller ([`run`]) keeps them.
pub fn seed(store: &mut Store, release: Release, nodes: &[(String, bool)], workloads: usize) {
    let masters = nodes.iter().filter(|(_, m)| *m).count();
    for app in default_set(release, masters, nodes.len() - masters, workloads) {
        let hash = template_hash(app.namespace, &app.name);
        let mut pod_labels = app.labels.clone();
        pod_labels["pod-template-hash"] = json!(hash);
        let mut template_spec = json!({"nodeSelector": role_selector(app.role), "containers": [{"name": app.name, "image": format!("quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:{hash:0>64}")}]});
        if app.spread {
            template_spec["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": app.labels}, "topologyKey": "kubernetes.io/hostname"}]}});
        }
        let deployment = json!({
            "metadata": {"name": app.name, "namespace": app.namespace, "labels": app.labels},
            "spec": {"replicas": app.replicas, "selector": {"matchLabels": app.labels},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {"metadata": {"labels": app.labels}, "spec": template_spec}},
        });
        let deployment = store.create(deployments(), Some(app.namespace), deployment).expect("seed deployment");
        let rs_name = format!("{}-{hash}", app.name);
        let rs = json!({
            "metadata": {"name": rs_name, "namespace": app.namespace, "labels": pod_labels,
                "annotations": {"deployment.kubernetes.io/revision": "1", "deployment.kubernetes.io/desired-replicas": app.replicas.to_string()},
                "ownerReferences": owner("Deployment", &app.name, deployment["metadata"]["uid"].as_str().unwrap_or_default())},
            "spec": {"replicas": app.replicas, "selector": {"matchLabels": pod_labels},
                "template": {"metadata": {"labels": pod_labels}, "spec": template_spec}},
        });
        store.create(replicasets(), Some(app.namespace), rs).expect("seed replicaset");
        if let Some((name, field, value)) = app.budget {
            let mut spec = json!({"selector": {"matchLabels": app.labels}});
            spec[field] = value;
            store
                .create(pdbs(), Some(app.namespace), json!({"metadata": {"name": name, "namespace": app.namespace}, "spec": spec}))
                .expect("seed pdb");
        }
    }
    if workloads > 0 && guard_pods(release) {
        // The etcd guard (4.11+, openshift/cluster-etcd-operator with openshift/library-go
        // `pkg/operator/staticpod/controller/guard/guard_controller.go`, vendored on
        // release-4.14): one `etcd-guard-<node>` pod per master, Ready while that master's etcd
        // is healthy, and `etcd-guard-pdb` with minAvailable `len(nodes) - 1`, so a second
        // master cannot be drained while one is down.
        let min = masters.saturating_sub(1);
        store
            .create(
                pdbs(),
                Some("openshift-etcd"),
                json!({"metadata": {"name": "etcd-guard-pdb", "namespace": "openshift-etcd"},
                    "spec": {"minAvailable": min, "selector": {"matchLabels": {"app": "guard"}}}}),
            )
            .expect("seed guard pdb");
    }
    // The pods as the controllers and the scheduler had placed them long before: Ready now.
    reconcile(store, release, &mut HashMap::new(), Duration::ZERO);
}

fn guard_pod(node: &str) -> Value {
    json!({
        "metadata": {"name": format!("etcd-guard-{node}"), "namespace": "openshift-etcd", "labels": {"app": "guard"}},
        "spec": {"nodeName": node, "hostNetwork": true, "priorityClassName": "system-cluster-critical",
            "containers": [{"name": "guard", "image": "quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:6775617264",
                "readinessProbe": {"httpGet": {"path": "readyz", "port": 9980, "scheme": "HTTPS"}}}]},
        "status": {"phase": "Running", "startTime": now_rfc3339(), "conditions": [], "containerStatuses": []},
    })
}

fn pod_ready(pod: &Value) -> bool {
    pod.at("/status/conditions").and_then(Value::as_array).is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// The status of a running pod, Ready or not; `started` false: still ContainerCreating.
fn ready_status(pod: &Value, ready: bool, started: bool) -> Value {
    let now = now_rfc3339();
    let container = pod.at("/spec/containers/0/name").and_then(Value::as_str).unwrap_or("app");
    let image = pod.at("/spec/containers/0/image").cloned().unwrap_or(json!(""));
    let flag = if ready { "True" } else { "False" };
    json!({
        "phase": "Running",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": flag, "lastTransitionTime": now},
            {"type": "Ready", "status": flag, "lastTransitionTime": now}],
        "containerStatuses": [{"name": container, "ready": ready, "started": ready, "restartCount": 0, "image": image, "imageID": image,
            "state": if started { json!({"running": {"startedAt": now}}) } else { json!({"waiting": {"reason": "ContainerCreating"}}) }}],
    })
}

/// What the controllers know of a node. Its labels are read from the object when asked (a
/// copy of every node's labels on every pass cost more than the pass's work).
struct NodeView {
    ready: bool,
    schedulable: bool,
    /// Labelled `node-role.kubernetes.io/master` (the etcd guard controller's nodes).
    master: bool,
    node: Arc<Value>,
}

impl NodeView {
    fn of(node: Arc<Value>) -> NodeView {
        let mut view = NodeView {
            ready: crate::util::node_is_ready(&node),
            schedulable: node.at("/spec/unschedulable") != Some(&json!(true)),
            master: false,
            node,
        };
        view.master = view.label("node-role.kubernetes.io/master").is_some();
        view
    }

    /// A label's value ("" for a value that is not a string), as `util::string_map` reads it.
    fn label(&self, key: &str) -> Option<&str> {
        self.node.at("/metadata/labels").and_then(Value::as_object).and_then(|m| m.get(key)).map(|v| v.as_str().unwrap_or_default())
    }
}

fn int_or_percent(value: &Value, total: usize) -> usize {
    match value {
        Value::Number(n) => n.as_u64().unwrap_or(0) as usize,
        Value::String(s) => match s.strip_suffix('%') {
            // intstr.GetScaledValueFromIntOrPercent(.., roundUp=true), as the disruption controller calls it.
            Some(p) => (total * p.trim().parse::<usize>().unwrap_or(0)).div_ceil(100),
            None => s.trim().parse().unwrap_or(0),
        },
        _ => 0,
    }
}

/// The workload controllers: one pass every `interval`, skipped when nothing a pass reads has
/// changed since the last one and no placed pod's start fell due (a pass is a function of the
/// nodes, pods, ReplicaSets, Deployments and budgets, and of those start times alone; real
/// controllers act on informer events, not on a timer, so a quiet cluster costs them nothing).
pub async fn run(cluster: Arc<World>, interval: Duration, ready_after: Duration) {
    let mut placed: HashMap<String, Instant> = HashMap::new();
    let mut state = Followed::default();
    let mut tick = tokio::time::interval(interval);
    let mut last: Option<(Vec<u64>, Instant)> = None;
    loop {
        tick.tick().await;
        let mut store = cluster.api.store.lock().unwrap();
        let now = Instant::now();
        if !pass_needed(last.as_ref(), &kinds_read(&store), &placed, ready_after, now) {
            // Nothing a pass reads changed since the last one's start (its own writes would
            // count): the changes since are of other kinds, not to be read again.
            state.skip_to(store.resource_version());
            continue;
        }
        // The revisions this pass reads, taken before it: its own writes are input to the next
        // pass (a pod made Ready here is counted in its ReplicaSet's status there), which runs
        // until a pass writes nothing.
        let seen = kinds_read(&store);
        reconcile_with(&mut store, cluster.release, &mut placed, ready_after, &mut state);
        last = Some((seen, now));
    }
}

/// Whether a pass may change anything: never run yet, a kind it reads changed since the
/// revisions the last pass read (`last`: those and when it ran), or a placed pod's start fell
/// due since then.
fn pass_needed(
    last: Option<&(Vec<u64>, Instant)>,
    kinds: &[u64],
    placed: &HashMap<String, Instant>,
    ready_after: Duration,
    now: Instant,
) -> bool {
    let Some((seen, at)) = last else { return true };
    seen.as_slice() != kinds || placed.values().any(|placed_at| *placed_at + ready_after > *at && *placed_at + ready_after <= now)
}

/// The revisions of the kinds a pass reads.
fn kinds_read(store: &Store) -> Vec<u64> {
    [t("", "v1", "nodes"), pods(), replicasets(), deployments(), pdbs()].iter().map(|kind| store.kind_revision(kind)).collect()
}

/// One pass of the controllers over the store. `placed`: when each pod (by uid) the scheduler
/// placed got its node; a pod not in it was placed long ago.
pub fn reconcile(store: &mut Store, release: Release, placed: &mut HashMap<String, Instant>, ready_after: Duration) {
    reconcile_with(store, release, placed, ready_after, &mut Followed::default());
}

/// What the controllers follow between passes, as their informers do: the store's changes since
/// the last pass (`Store::changes_since`), the indexes those keep (nodes by name, pods by their
/// controller and by label), and per controller the objects whose inputs changed since it last
/// looked at them. A controller looks again only at those: an object none of whose inputs
/// changed would get the same answer as last time, which wrote nothing for it (a write is
/// itself a change, so the object is looked at again). Reading every pod and node on every pass
/// was most of the simulation's CPU at 10,000 nodes (30,000 of the pods, the nodes' own, concern
/// none of these controllers). When the history no longer holds every change since the last
/// pass (or on the first), the next pass reads everything, as an informer relists.
#[derive(Default)]
pub struct Followed {
    /// The store's revision through which changes have been read; None: read everything.
    cursor: Option<u64>,
    nodes: BTreeMap<String, NodeView>,
    /// Pod keys ("namespace/name") by their controller's uid.
    pods_by_controller: HashMap<String, BTreeSet<String>>,
    /// Pod keys by (namespace, label, value): a budget's `matchLabels` pair.
    pods_by_label: HashMap<(String, String, String), BTreeSet<String>>,
    dirty: Dirty,
    /// ReplicaSets (by uid) that had pods without a node at their last look: they depend on
    /// every node (the scheduler's choice), so they are looked at on every pass.
    unsatisfied: BTreeSet<String>,
    /// Pods (by key) whose start had not fallen due at their last look: time is their input.
    not_started: BTreeSet<String>,
}

/// What changed since each controller last looked.
#[derive(Default)]
struct Dirty {
    /// Pods (keys) for the garbage collector, the readiness pass and the kubelets.
    gc: BTreeSet<String>,
    readiness: BTreeSet<String>,
    kubelet: BTreeSet<String>,
    /// Deployments and ReplicaSets by uid.
    deployments: HashSet<String>,
    replicasets: HashSet<String>,
    /// Budgets by key, and the namespaces and (namespace, label, value) of changed pods.
    budgets: BTreeSet<String>,
    budget_namespaces: HashSet<String>,
    budget_labels: HashSet<(String, String, String)>,
}

fn labels_of(pod: &Value) -> impl Iterator<Item = (&str, &str)> {
    pod.at("/metadata/labels").and_then(Value::as_object).into_iter().flatten().filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
}

impl Followed {
    /// Reads the changes since the cursor into the indexes and the dirty sets, or everything
    /// when the history does not reach back to it.
    fn absorb(&mut self, store: &Store, placed: &mut HashMap<String, Instant>) {
        let changes: Option<Vec<Arc<super::store::Change>>> =
            self.cursor.and_then(|rv| store.changes_since(rv)).map(|changes| changes.cloned().collect());
        self.cursor = Some(store.resource_version());
        let Some(changes) = changes else {
            self.read_everything(store, placed);
            return;
        };
        let (node_key, pod_key, rs_key, deployment_key, pdb_key) =
            (t("", "v1", "nodes").key(), pods().key(), replicasets().key(), deployments().key(), pdbs().key());
        for change in changes {
            let gone = change.kind == super::store::ChangeKind::Deleted;
            let object = &change.object;
            let key = super::store::key_of(object);
            if change.type_key == node_key {
                if gone {
                    self.nodes.remove(&key);
                } else {
                    self.nodes.insert(key.clone(), NodeView::of(object.clone()));
                }
                // Its pods' readiness and start follow its readiness; gone, they are orphans.
                for pod in pods_on(store, &key) {
                    self.dirty.gc.insert(pod.clone());
                    self.dirty.readiness.insert(pod.clone());
                    self.dirty.kubelet.insert(pod);
                }
            } else if change.type_key == pod_key {
                self.unindex_pod(change.previous.as_deref(), &key);
                if gone {
                    // The set of live pods' uids that `placed` is kept to.
                    placed.remove(meta(object, "uid"));
                } else {
                    self.index_pod(object, &key);
                    self.dirty.gc.insert(key.clone());
                    self.dirty.readiness.insert(key.clone());
                    self.dirty.kubelet.insert(key.clone());
                }
                for pod in change.previous.iter().map(|p| &**p).chain([&**object]) {
                    if let Some(uid) = controller_uid(pod) {
                        self.dirty.replicasets.insert(uid.to_owned());
                    }
                    self.mark_budget_inputs(pod);
                }
            } else if change.type_key == rs_key {
                if !gone {
                    self.dirty.replicasets.insert(meta(object, "uid").to_owned());
                }
                for rs in change.previous.iter().map(|p| &**p).chain([&**object]) {
                    if let Some(uid) = controller_uid(rs) {
                        self.dirty.deployments.insert(uid.to_owned());
                    }
                }
                // A budget's expected pods count the replicas of its pods' owners.
                let owned: Vec<String> = self.pods_by_controller.get(meta(object, "uid")).into_iter().flatten().cloned().collect();
                for pod in owned {
                    let (ns, name) = pod.split_once('/').unwrap_or_default();
                    if let Ok(pod) = store.get(pods(), Some(ns), name) {
                        self.mark_budget_inputs(&pod);
                    }
                }
            } else if change.type_key == deployment_key {
                if !gone {
                    self.dirty.deployments.insert(meta(object, "uid").to_owned());
                }
            } else if change.type_key == pdb_key && !gone {
                self.dirty.budgets.insert(key);
            }
        }
    }

    /// An informer's relist: the indexes built again from every object, every object dirty.
    fn read_everything(&mut self, store: &Store, placed: &mut HashMap<String, Instant>) {
        let unsatisfied = std::mem::take(&mut self.unsatisfied);
        let not_started = std::mem::take(&mut self.not_started);
        *self = Followed { cursor: self.cursor, unsatisfied, not_started, ..Default::default() };
        self.nodes = store
            .list(t("", "v1", "nodes"), &Default::default(), None, None)
            .items
            .into_iter()
            .map(|n| (super::store::name_of(&n).to_owned(), NodeView::of(n)))
            .collect();
        let all_pods = store.list(pods(), &Default::default(), None, None).items;
        if !placed.is_empty() {
            let live: HashSet<&str> = all_pods.iter().map(|p| meta(p, "uid")).collect();
            placed.retain(|uid, _| live.contains(uid.as_str()));
        }
        for pod in all_pods {
            let key = super::store::key_of(&pod);
            self.index_pod(&pod, &key);
            self.dirty.gc.insert(key.clone());
            self.dirty.readiness.insert(key.clone());
            self.dirty.kubelet.insert(key);
            self.mark_budget_inputs(&pod);
        }
        for rs in store.list(replicasets(), &Default::default(), None, None).items {
            self.dirty.replicasets.insert(meta(&rs, "uid").to_owned());
        }
        for deployment in store.list(deployments(), &Default::default(), None, None).items {
            self.dirty.deployments.insert(meta(&deployment, "uid").to_owned());
        }
        for pdb in store.list(pdbs(), &Default::default(), None, None).items {
            self.dirty.budgets.insert(super::store::key_of(&pdb));
        }
    }

    fn index_pod(&mut self, pod: &Value, key: &str) {
        if let Some(uid) = controller_uid(pod) {
            self.pods_by_controller.entry(uid.to_owned()).or_default().insert(key.to_owned());
        }
        let ns = meta(pod, "namespace");
        for (k, v) in labels_of(pod) {
            self.pods_by_label.entry((ns.to_owned(), k.to_owned(), v.to_owned())).or_default().insert(key.to_owned());
        }
    }

    fn unindex_pod(&mut self, pod: Option<&Value>, key: &str) {
        let Some(pod) = pod else { return };
        if let Some(uid) = controller_uid(pod)
            && let Some(keys) = self.pods_by_controller.get_mut(uid)
        {
            keys.remove(key);
            if keys.is_empty() {
                self.pods_by_controller.remove(uid);
            }
        }
        let ns = meta(pod, "namespace");
        for (k, v) in labels_of(pod) {
            let label = (ns.to_owned(), k.to_owned(), v.to_owned());
            if let Some(keys) = self.pods_by_label.get_mut(&label) {
                keys.remove(key);
                if keys.is_empty() {
                    self.pods_by_label.remove(&label);
                }
            }
        }
    }

    /// The budgets that may select `pod`: those of its namespace with one of its labels (or
    /// with no `matchLabels` pair to look it up by).
    fn mark_budget_inputs(&mut self, pod: &Value) {
        let ns = meta(pod, "namespace");
        self.dirty.budget_namespaces.insert(ns.to_owned());
        for (k, v) in labels_of(pod) {
            self.dirty.budget_labels.insert((ns.to_owned(), k.to_owned(), v.to_owned()));
        }
    }

    /// No change since the cursor concerns the controllers (the caller knows): skip them.
    fn skip_to(&mut self, rv: u64) {
        if self.cursor.is_some() {
            self.cursor = Some(rv);
        }
    }

    /// The pods of `keys` as the store has them now, in key order (a full read's order).
    fn pods_of<'a>(store: &Store, keys: impl IntoIterator<Item = &'a String>) -> Vec<Arc<Value>> {
        keys.into_iter()
            .filter_map(|key| {
                let (ns, name) = key.split_once('/')?;
                store.get(pods(), Some(ns), name).ok()
            })
            .collect()
    }
}

/// The keys of the pods bound to `node` (the store's `spec.nodeName` index).
fn pods_on(store: &Store, node: &str) -> Vec<String> {
    let Ok(fields) = super::selector::FieldSelector::parse(&format!("spec.nodeName={node}")) else { return Vec::new() };
    let filter = super::store::Filter { fields, ..Default::default() };
    store.list(pods(), &filter, None, None).items.iter().map(|p| super::store::key_of(p)).collect()
}

fn reconcile_with(store: &mut Store, release: Release, placed: &mut HashMap<String, Instant>, ready_after: Duration, state: &mut Followed) {
    state.absorb(store, placed);
    // The pod garbage collector: pods bound to a node that no longer exists.
    let candidates = std::mem::take(&mut state.dirty.gc);
    for pod in Followed::pods_of(store, &candidates) {
        if let Some(node) = pod.at("/spec/nodeName").and_then(Value::as_str)
            && !state.nodes.contains_key(node)
        {
            let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
            let _ = store.delete(pods(), Some(ns), pod["metadata"]["name"].as_str().unwrap_or_default());
        }
    }
    state.absorb(store, placed);
    // The etcd guard controller (4.11+): a guard pod per master that is schedulable.
    let guarded = !store.list(pdbs(), &ns_filter("openshift-etcd"), None, None).items.is_empty();
    if guarded && guard_pods(release) {
        for (name, node) in state.nodes.iter().filter(|(_, n)| n.master) {
            let exists = store.get(pods(), Some("openshift-etcd"), &format!("etcd-guard-{name}")).is_ok();
            if !exists && node.schedulable {
                let _ = store.create(pods(), Some("openshift-etcd"), guard_pod(name));
            }
        }
    }
    state.absorb(store, placed);
    sync_deployments(store, std::mem::take(&mut state.dirty.deployments));
    state.absorb(store, placed);
    sync_replicasets(store, placed, state);
    state.absorb(store, placed);
    sync_readiness(store, placed, ready_after, state);
    state.absorb(store, placed);
    let candidates = std::mem::take(&mut state.dirty.kubelet);
    let waiting: Vec<Arc<Value>> =
        Followed::pods_of(store, &candidates).into_iter().filter(|p| super::kubelet::bare_and_not_started(p)).collect();
    super::kubelet::start_bound_pods(store, waiting);
    state.absorb(store, placed);
    sync_budgets(store, state);
}

fn ns_filter(namespace: &str) -> super::store::Filter {
    super::store::Filter { namespace: Some(namespace.to_owned()), ..Default::default() }
}

/// The uid of an object's controlling owner (the one ownerReference with `controller: true`).
fn controller_uid(object: &Value) -> Option<&str> {
    object.at("/metadata/ownerReferences")?.as_array()?.iter().find(|r| r["controller"] == true)?["uid"].as_str()
}

/// Objects by their controller's uid, as the controllers' informers index them (client-go
/// `tools/cache` indexers; kubernetes `pkg/controller/controller_ref_manager.go` claims by the
/// controller reference): each owner finds its own without reading every object of the kind,
/// which made one pass quadratic (a ReplicaSet per three workers, each reading every pod).
fn by_controller(objects: &[Arc<Value>]) -> HashMap<&str, Vec<&Arc<Value>>> {
    let mut index: HashMap<&str, Vec<&Arc<Value>>> = HashMap::new();
    for object in objects {
        if let Some(uid) = controller_uid(object) {
            index.entry(uid).or_default().push(object);
        }
    }
    index
}

fn meta<'a>(object: &'a Value, field: &str) -> &'a str {
    object["metadata"][field].as_str().unwrap_or_default()
}

/// The deployment controller, without rollouts: its ReplicaSet follows `spec.replicas`; its
/// status sums the ReplicaSet's (kubernetes `pkg/controller/deployment/sync.go`, calculateStatus).
/// Only the Deployments of `dirty` (uids: changed, or one of their ReplicaSets did).
fn sync_deployments(store: &mut Store, dirty: HashSet<String>) {
    if dirty.is_empty() {
        return;
    }
    let all_rs = store.list(replicasets(), &Default::default(), None, None).items;
    let rs_by_owner = by_controller(&all_rs);
    for deployment in store.list(deployments(), &Default::default(), None, None).items {
        if !dirty.contains(meta(&deployment, "uid")) {
            continue;
        }
        let ns = meta(&deployment, "namespace");
        let replicas = deployment.at("/spec/replicas").and_then(Value::as_u64).unwrap_or(1);
        let owned: &[&Arc<Value>] = rs_by_owner.get(meta(&deployment, "uid")).map_or(&[], Vec::as_slice);
        let (mut ready, mut available, mut current) = (0, 0, 0);
        for rs in owned {
            if rs.at("/spec/replicas").and_then(Value::as_u64) != Some(replicas) {
                let _ = store.patch(
                    replicasets(),
                    Some(ns),
                    meta(rs, "name"),
                    PatchType::Merge,
                    &json!({"metadata": {"annotations": {"deployment.kubernetes.io/desired-replicas": replicas.to_string()}}, "spec": {"replicas": replicas}}),
                    None,
                );
            }
            current += rs.at("/status/replicas").and_then(Value::as_u64).unwrap_or(0);
            ready += rs.at("/status/readyReplicas").and_then(Value::as_u64).unwrap_or(0);
            available += rs.at("/status/availableReplicas").and_then(Value::as_u64).unwrap_or(0);
        }
        let generation = deployment["metadata"]["generation"].as_i64().unwrap_or(1);
        let is_available = available >= replicas.saturating_sub(replicas / 4);
        let old_available = deployment
            .at("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|c| c.iter().find(|c| c["type"] == "Available").cloned());
        let available_condition = match old_available {
            Some(c) if c["status"] == if is_available { "True" } else { "False" } => c,
            _ => {
                let now = now_rfc3339();
                json!({"type": "Available", "status": if is_available { "True" } else { "False" },
                    "reason": if is_available { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
                    "message": if is_available { "Deployment has minimum availability." } else { "Deployment does not have minimum availability." },
                    "lastUpdateTime": now, "lastTransitionTime": now})
            }
        };
        let progressing = deployment
            .at("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|c| c.iter().find(|c| c["type"] == "Progressing").cloned())
            .unwrap_or_else(|| {
                let now = now_rfc3339();
                let rs_name = owned.first().map(|rs| meta(rs, "name")).unwrap_or_default();
                json!({"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                    "message": format!("ReplicaSet \"{rs_name}\" has successfully progressed."), "lastUpdateTime": now, "lastTransitionTime": now})
            });
        let status = json!({"observedGeneration": generation, "replicas": current, "updatedReplicas": current, "readyReplicas": ready,
            "availableReplicas": available, "unavailableReplicas": replicas.saturating_sub(available),
            "conditions": [available_condition, progressing]});
        if deployment.get("status") != Some(&status) {
            let _ = store.update(deployments(), Some(ns), meta(&deployment, "name"), json!({"status": status}), Some("status"));
        }
    }
}

/// The ReplicaSet controller (kubernetes `pkg/controller/replicaset/replica_set.go`,
/// manageReplicas) with the scheduler's placement.
/// Only the ReplicaSets whose inputs changed (it, or one of its pods), and those with pods
/// waiting for a node (the nodes are their input too).
fn sync_replicasets(store: &mut Store, placed: &mut HashMap<String, Instant>, state: &mut Followed) {
    let dirty = std::mem::take(&mut state.dirty.replicasets);
    if dirty.is_empty() && state.unsatisfied.is_empty() {
        return;
    }
    let mut unsatisfied = std::mem::take(&mut state.unsatisfied);
    let nodes = &state.nodes;
    let listed = store.list(replicasets(), &Default::default(), None, None).items;
    for rs in listed.iter().cloned() {
        let uid = meta(&rs, "uid");
        if !dirty.contains(uid) && !unsatisfied.contains(uid) {
            continue;
        }
        let ns = meta(&rs, "namespace").to_owned();
        let replicas = rs.at("/spec/replicas").and_then(Value::as_u64).unwrap_or(1) as usize;
        // This ReplicaSet's pods, kept up to date below with what this pass changes, so its
        // status needs no second read.
        let mut owned: Vec<Arc<Value>> = Followed::pods_of(store, state.pods_by_controller.get(uid).into_iter().flatten())
            .into_iter()
            .filter(|p| meta(p, "namespace") == ns && p.at("/metadata/deletionTimestamp").is_none())
            .collect();
        // Too many: the newest go first (the controller prefers deleting unready, then newer pods).
        owned
            .sort_by_key(|p| (pod_ready(p), std::cmp::Reverse(p["metadata"]["creationTimestamp"].as_str().unwrap_or_default().to_owned())));
        while owned.len() > replicas {
            let pod = owned.remove(0);
            let _ = store.delete(pods(), Some(&ns), meta(&pod, "name"));
        }
        let template = &rs["spec"]["template"];
        let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
        for pod in &owned {
            if let Some(node) = pod.at("/spec/nodeName").and_then(Value::as_str) {
                *per_node.entry(node.to_owned()).or_default() += 1;
            }
        }
        // Pending pods (no node yet) get one when a node fits.
        let mut pending: Vec<Option<String>> =
            owned.iter().filter(|p| p.at("/spec/nodeName").is_none()).map(|p| Some(meta(p, "name").to_owned())).collect();
        pending.extend(std::iter::repeat_n(None, replicas.saturating_sub(owned.len())));
        if pending.is_empty() {
            unsatisfied.remove(uid);
        } else {
            unsatisfied.insert(uid.to_owned());
        }
        for existing in pending {
            let node = schedule(template, nodes, &per_node);
            if let Some(node) = &node {
                *per_node.entry(node.clone()).or_default() += 1;
            }
            match existing {
                Some(name) => {
                    if let Some(node) = node
                        && let Ok(pod) = store.patch(pods(), Some(&ns), &name, PatchType::Merge, &json!({"spec": {"nodeName": node}}), None)
                    {
                        placed.insert(meta(&pod, "uid").to_owned(), Instant::now());
                        if let Some(slot) = owned.iter_mut().find(|p| meta(p, "name") == name) {
                            *slot = pod;
                        }
                    }
                }
                None => {
                    let mut spec = template["spec"].clone();
                    let status = match &node {
                        Some(node) => {
                            spec["nodeName"] = json!(node);
                            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now_rfc3339()}]})
                        }
                        None => {
                            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                            "message": "0/0 nodes are available: no node fits the pod's node selector, affinity and cordons.", "lastTransitionTime": now_rfc3339()}]})
                        }
                    };
                    let pod = json!({
                        "metadata": {"generateName": format!("{}-", meta(&rs, "name")), "namespace": ns, "labels": template["metadata"]["labels"],
                            "ownerReferences": owner("ReplicaSet", meta(&rs, "name"), meta(&rs, "uid"))},
                        "spec": spec, "status": status,
                    });
                    if let Ok(pod) = store.create(pods(), Some(&ns), pod) {
                        if node.is_some() {
                            placed.insert(meta(&pod, "uid").to_owned(), Instant::now());
                        }
                        owned.push(pod);
                    }
                }
            }
        }
        let ready = owned.iter().filter(|p| pod_ready(p)).count();
        let generation = rs["metadata"]["generation"].as_i64().unwrap_or(1);
        let status = json!({"replicas": owned.len(), "fullyLabeledReplicas": owned.len(), "readyReplicas": ready,
            "availableReplicas": ready, "observedGeneration": generation});
        if rs.get("status") != Some(&status) {
            let _ = store.update(replicasets(), Some(&ns), meta(&rs, "name"), json!({"status": status}), Some("status"));
        }
    }
    // A ReplicaSet deleted while waiting for a node waits no more.
    let live: HashSet<&str> = listed.iter().map(|rs| meta(rs, "uid")).collect();
    unsatisfied.retain(|uid| live.contains(uid.as_str()));
    state.unsatisfied = unsatisfied;
}

/// The scheduler's choice for a pod of `template`: a Ready, schedulable node matching its
/// nodeSelector (and its anti-affinity), with the fewest pods of the same ReplicaSet.
fn schedule(template: &Value, nodes: &BTreeMap<String, NodeView>, per_node: &BTreeMap<String, usize>) -> Option<String> {
    let selector = crate::util::string_map(template.at("/spec/nodeSelector"));
    let spread = template.at("/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution").is_some();
    let count = |name: &String| per_node.get(name).copied().unwrap_or(0);
    let fitting = || {
        nodes
            .iter()
            .filter(|(_, n)| n.ready && n.schedulable)
            .filter(|(_, n)| selector.iter().all(|(k, v)| n.label(k) == Some(v.as_str())))
            .filter(|(name, _)| !spread || count(name) == 0)
    };
    // The first fitting node with none of the ReplicaSet's pods is the first of the fewest, the
    // one `min_by_key` returns (the first of equal minima), found without reading every other
    // node: at 10,000 nodes each pod a drain evicted read every node's labels, the store locked.
    if let Some((name, _)) = fitting().find(|(name, _)| count(name) == 0) {
        return Some(name.clone());
    }
    fitting().min_by_key(|(name, _)| count(name)).map(|(name, _)| name.clone())
}

/// A pod the simulation's controllers run: a ReplicaSet's or an etcd guard.
fn managed(pod: &Value) -> bool {
    pod.at("/metadata/ownerReferences/0/kind").and_then(Value::as_str) == Some("ReplicaSet")
        || (pod["metadata"]["namespace"] == "openshift-etcd" && pod["metadata"]["labels"]["app"] == "guard")
}

/// The kubelet's readiness of the pods it runs, and the node lifecycle controller's
/// MarkPodsNotReady for the pods of a node that is not Ready.
/// Only the pods that changed, whose node did, or whose start had not fallen due (`placed`
/// holds only live pods: `Followed::absorb` drops a deleted pod's uid).
fn sync_readiness(store: &mut Store, placed: &mut HashMap<String, Instant>, ready_after: Duration, state: &mut Followed) {
    let mut candidates = std::mem::take(&mut state.dirty.readiness);
    candidates.extend(std::mem::take(&mut state.not_started));
    let (nodes, not_started) = (&state.nodes, &mut state.not_started);
    for pod in Followed::pods_of(store, &candidates).iter().filter(|p| managed(p)) {
        let Some(node) = pod.at("/spec/nodeName").and_then(Value::as_str) else { continue };
        let node_ready = nodes.get(node).is_some_and(|n| n.ready);
        let started = placed.get(meta(pod, "uid")).is_none_or(|at| at.elapsed() >= ready_after);
        if !started {
            not_started.insert(super::store::key_of(pod));
        }
        let ready = node_ready && started;
        let has_status = pod.at("/status/containerStatuses/0").is_some();
        if pod_ready(pod) != ready || !has_status {
            // A pod not yet started stays ContainerCreating until then.
            if !ready && !started && has_status {
                continue;
            }
            let status = ready_status(pod, ready, started);
            let _ = store.patch(
                pods(),
                Some(meta(pod, "namespace")),
                meta(pod, "name"),
                PatchType::Merge,
                &json!({"status": status}),
                Some("status"),
            );
        }
    }
}

/// The disruption controller (kubernetes `pkg/controller/disruption/disruption.go`, trySync
/// and getExpectedPodCount).
///
/// Only the budgets that changed or that may select a pod that changed (or whose owner did).
fn sync_budgets(store: &mut Store, state: &mut Followed) {
    let changed = std::mem::take(&mut state.dirty.budgets);
    let namespaces = std::mem::take(&mut state.dirty.budget_namespaces);
    let labels = std::mem::take(&mut state.dirty.budget_labels);
    if changed.is_empty() && namespaces.is_empty() {
        return;
    }
    let all_rs = store.list(replicasets(), &Default::default(), None, None).items;
    let rs_by_uid: HashMap<&str, &Arc<Value>> = all_rs.iter().map(|rs| (meta(rs, "uid"), rs)).collect();
    // The budgets that changed and those that may select a changed pod (the store's index of
    // budgets by the same `an_equality` read below, or by namespace for a selector without
    // one), in key order: the budgets a read of every budget would not skip below, without
    // reading the others (at 10,000 workers, 3,333 budgets and their selectors on every pass
    // of a drain).
    let mut keys = changed.clone();
    keys.extend(store.budget_keys_for(&labels, &namespaces));
    let budgets: Vec<Arc<Value>> = keys
        .iter()
        .filter_map(|key| {
            let (ns, name) = key.split_once('/')?;
            store.get(pdbs(), Some(ns), name).ok()
        })
        .collect();
    for pdb in &budgets {
        let ns = meta(pdb, "namespace").to_owned();
        if !changed.contains(&super::store::key_of(pdb)) && !namespaces.contains(&ns) {
            continue;
        }
        // getPodsForPdb: the budget's pods are those its selector matches, none without one.
        // The pods by (namespace, label, value): a budget's selector with a matchLabels pair
        // reads only the pods carrying it (a budget per user workload, each reading the
        // namespace's every pod, made one pass quadratic).
        let selector = super::selector::LabelSelector::from_optional(&pdb["spec"]["selector"]);
        let candidates: Vec<Arc<Value>> = match selector.as_ref().and_then(|s| s.an_equality()) {
            Some((key, value)) => {
                let label = (ns.clone(), key.to_owned(), value.to_owned());
                if !changed.contains(&super::store::key_of(pdb)) && !labels.contains(&label) {
                    continue;
                }
                Followed::pods_of(store, state.pods_by_label.get(&label).into_iter().flatten())
            }
            None => store.list(pods(), &ns_filter(&ns), None, None).items,
        };
        let matching: Vec<&Arc<Value>> = candidates
            .iter()
            .filter(|p| selector.as_ref().is_some_and(|s| s.matches_object(p)) && p.at("/metadata/deletionTimestamp").is_none())
            .collect();
        // The budgets of pods the simulation's controllers run; a budget over pods that nobody
        // runs here (created bare, with the status a test writes) keeps the status it is given.
        if matching.is_empty() || !matching.iter().all(|p| managed(p)) {
            continue;
        }
        let healthy = matching.iter().filter(|p| pod_ready(p)).count();
        // expectedPods: with maxUnavailable or a percentage, the owners' replicas; with an
        // integer minAvailable, the pods matched.
        let integer_min = pdb.at("/spec/minAvailable").is_some_and(Value::is_number);
        let expected = if integer_min {
            matching.len()
        } else {
            let mut owners: Vec<&str> = matching
                .iter()
                .filter_map(|p| p.at("/metadata/ownerReferences")?.as_array()?.iter().find(|r| r["kind"] == "ReplicaSet")?["uid"].as_str())
                .collect();
            owners.sort_unstable();
            owners.dedup();
            let from_owners: usize = owners
                .iter()
                .filter_map(|uid| rs_by_uid.get(uid))
                .map(|rs| rs.at("/spec/replicas").and_then(Value::as_u64).unwrap_or(0) as usize)
                .sum();
            // Pods with no controller (the guard pods) count as themselves.
            from_owners + matching.iter().filter(|p| p.at("/metadata/ownerReferences").is_none()).count()
        };
        let desired = if let Some(min) = pdb.at("/spec/minAvailable") {
            int_or_percent(min, expected)
        } else if let Some(max) = pdb.at("/spec/maxUnavailable") {
            expected.saturating_sub(int_or_percent(max, expected))
        } else {
            expected
        };
        let allowed = healthy.saturating_sub(desired);
        let generation = pdb["metadata"]["generation"].as_i64().unwrap_or(1);
        let old = pdb.get("status");
        let sufficient = allowed > 0;
        let condition = old
            .and_then(|s| s.at("/conditions/0").cloned())
            .filter(|c| c["status"] == if sufficient { "True" } else { "False" })
            .unwrap_or_else(|| {
                json!({"type": "DisruptionAllowed", "status": if sufficient { "True" } else { "False" },
                    "reason": if sufficient { "SufficientPods" } else { "InsufficientPods" }, "message": "",
                    "observedGeneration": generation, "lastTransitionTime": now_rfc3339()})
            });
        let status = json!({"observedGeneration": generation, "disruptionsAllowed": allowed, "currentHealthy": healthy,
            "desiredHealthy": desired, "expectedPods": expected, "conditions": [condition]});
        // disruptedPods: the eviction subresource records an evicted pod there; it is dropped
        // once the pod is gone (the controller's buildDisruptedPodMap).
        let same = old.is_some_and(|o| {
            ["observedGeneration", "disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods"]
                .iter()
                .all(|k| o.get(*k) == status.get(*k))
                && o.at("/conditions/0/status") == status.at("/conditions/0/status")
        });
        if !same {
            let _ = store.update(pdbs(), Some(&ns), meta(pdb, "name"), json!({"status": status}), Some("status"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cluster as `seed` leaves it: 3 masters, `workers` workers, `apps` user Deployments.
    fn seeded(workers: usize, apps: usize) -> Store {
        let mut store = Store::new(100_000);
        let mut roles = Vec::new();
        for i in 0..3 + workers {
            let (name, role) = if i < 3 { (format!("master-{i}"), "master") } else { (format!("worker-{}", i - 3), "worker") };
            let node = json!({"metadata": {"name": name, "labels": {format!("node-role.kubernetes.io/{role}"): "", "kubernetes.io/hostname": name}},
                "spec": {}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
            store.create(t("", "v1", "nodes"), None, node).unwrap();
            roles.push((name, role == "master"));
        }
        seed(&mut store, Release::parse("4.14.38").unwrap(), &roles, apps);
        store
    }

    /// What a pass decides, without what differs between two runs of the same decisions: uids,
    /// versions, times, the random suffix of a generated name. Sorted: generated names order
    /// the objects differently.
    fn decided(store: &Store) -> Vec<String> {
        fn strip(value: &mut Value) {
            match value {
                Value::Object(map) => {
                    for volatile in
                        ["uid", "resourceVersion", "creationTimestamp", "lastTransitionTime", "lastUpdateTime", "startTime", "startedAt"]
                    {
                        map.remove(volatile);
                    }
                    if map.contains_key("generateName") {
                        map.remove("name");
                    }
                    map.values_mut().for_each(strip);
                }
                Value::Array(items) => items.iter_mut().for_each(strip),
                _ => {}
            }
        }
        let mut objects: Vec<String> = [t("", "v1", "nodes"), pods(), replicasets(), deployments(), pdbs()]
            .iter()
            .flat_map(|kind| store.list(kind, &Default::default(), None, None).items)
            .map(|object| {
                let mut object = (*object).clone();
                strip(&mut object);
                object.to_string()
            })
            .collect();
        objects.sort();
        objects
    }

    /// The pods of a node, by name.
    fn pods_of_node(store: &Store, node: &str) -> Vec<(String, String)> {
        pods_on(store, node).into_iter().map(|key| key.split_once('/').map(|(a, b)| (a.to_owned(), b.to_owned())).unwrap()).collect()
    }

    #[test]
    fn a_pass_reading_only_what_changed_writes_what_a_pass_reading_everything_writes() {
        for ready_after in [Duration::ZERO, Duration::from_secs(3600)] {
            // `following`: one `Followed` across passes, as `run` keeps it; `full`: a fresh one
            // for each pass, which reads everything (the pass before the change set followed).
            let mut following = seeded(6, 4);
            let mut full = Store::new(100_000);
            full.restore(&following.snapshot()).unwrap();
            let release = Release::parse("4.14.38").unwrap();
            let (mut state, mut placed_following, mut placed_full) = (Followed::default(), HashMap::new(), HashMap::new());
            let nodes = t("", "v1", "nodes");
            type Change = Box<dyn Fn(&mut Store)>;
            let not_ready: Change = Box::new(|s: &mut Store| {
                let status = json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
                s.patch(t("", "v1", "nodes"), None, "worker-1", PatchType::Merge, &status, Some("status")).unwrap();
            });
            let drained: Change = Box::new(|s: &mut Store| {
                s.patch(t("", "v1", "nodes"), None, "worker-2", PatchType::Merge, &json!({"spec": {"unschedulable": true}}), None).unwrap();
                for (ns, name) in pods_of_node(s, "worker-2") {
                    s.delete(pods(), Some(&ns), &name).unwrap();
                }
            });
            let node_gone: Change = Box::new(|s: &mut Store| {
                s.delete(t("", "v1", "nodes"), None, "worker-3").unwrap();
            });
            let ready_again: Change = Box::new(|s: &mut Store| {
                let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
                s.patch(t("", "v1", "nodes"), None, "worker-1", PatchType::Merge, &status, Some("status")).unwrap();
            });
            let scaled_up: Change = Box::new(|s: &mut Store| {
                s.patch(deployments(), Some("sample-app"), "frontend-1", PatchType::Merge, &json!({"spec": {"replicas": 4}}), None)
                    .unwrap();
            });
            let bare_pod: Change = Box::new(|s: &mut Store| {
                let pod =
                    json!({"metadata": {"name": "debug"}, "spec": {"nodeName": "worker-4", "containers": [{"name": "c", "image": "i"}]}});
                s.create(pods(), Some("default"), pod).unwrap();
            });
            let budget: Change = Box::new(|s: &mut Store| {
                s.patch(pdbs(), Some("sample-app"), "frontend-0", PatchType::Merge, &json!({"spec": {"minAvailable": 1}}), None).unwrap();
            });
            let uncordoned: Change = Box::new(|s: &mut Store| {
                s.patch(t("", "v1", "nodes"), None, "worker-2", PatchType::Merge, &json!({"spec": {"unschedulable": null}}), None).unwrap();
            });
            let changes = [not_ready, drained, node_gone, ready_again, scaled_up, bare_pod, budget, uncordoned];
            assert_eq!(decided(&following), decided(&full), "the same start");
            for (step, change) in changes.iter().enumerate() {
                change(&mut following);
                change(&mut full);
                // Passes until one writes nothing, as `run` does; each writes the same.
                for pass in 0..10 {
                    let (before_following, before_full) = (following.resource_version(), full.resource_version());
                    reconcile_with(&mut following, release, &mut placed_following, ready_after, &mut state);
                    reconcile_with(&mut full, release, &mut placed_full, ready_after, &mut Followed::default());
                    let writes = (following.resource_version() - before_following, full.resource_version() - before_full);
                    assert_eq!(writes.0, writes.1, "{ready_after:?}: change {step}, pass {pass}: the number of writes");
                    assert_eq!(decided(&following), decided(&full), "{ready_after:?}: change {step}, pass {pass}");
                    if writes.0 == 0 {
                        break;
                    }
                }
                assert_eq!(placed_following.len(), placed_full.len(), "{ready_after:?}: change {step}: pods placed");
            }
            // The changes reached the pods: the drained node's were replaced, the lost node's
            // collected, the bare pod started.
            assert!(pods_of_node(&following, "worker-3").is_empty());
            let debug = following.get(pods(), Some("default"), "debug").unwrap();
            assert_eq!(debug["status"]["phase"], "Running");
            assert!(following.get(nodes, None, "worker-3").is_err());
        }
    }

    #[test]
    fn the_scheduler_picks_the_node_a_read_of_every_node_picks() {
        // The choice before the shortcut: every fitting node read, the first of the fewest.
        fn every_node(template: &Value, nodes: &BTreeMap<String, NodeView>, per_node: &BTreeMap<String, usize>) -> Option<String> {
            let selector = crate::util::string_map(template.at("/spec/nodeSelector"));
            let spread = template.at("/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution").is_some();
            nodes
                .iter()
                .filter(|(_, n)| n.ready && n.schedulable)
                .filter(|(_, n)| selector.iter().all(|(k, v)| n.label(k) == Some(v.as_str())))
                .filter(|(name, _)| !spread || per_node.get(*name).copied().unwrap_or(0) == 0)
                .min_by_key(|(name, _)| per_node.get(*name).copied().unwrap_or(0))
                .map(|(name, _)| name.clone())
        }
        let templates = [
            json!({"spec": {}}),
            json!({"spec": {"nodeSelector": {"node-role.kubernetes.io/worker": ""}}}),
            json!({"spec": {"nodeSelector": {"node-role.kubernetes.io/master": ""}}}),
            json!({"spec": {"nodeSelector": {"node-role.kubernetes.io/worker": ""},
                "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": "kubernetes.io/hostname"}]}}}}),
        ];
        // A small linear congruential sequence: the same cases on every run.
        let mut seed: u64 = 7;
        let mut next = |n: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let mut decided = 0;
        for _ in 0..400 {
            let mut nodes = BTreeMap::new();
            let mut per_node = BTreeMap::new();
            for i in 0..next(12) {
                let (name, role) = if next(4) == 0 { (format!("master-{i}"), "master") } else { (format!("worker-{i}"), "worker") };
                let ready = if next(4) == 0 { "False" } else { "True" };
                let node = json!({"metadata": {"name": name, "labels": {format!("node-role.kubernetes.io/{role}"): ""}},
                    "spec": {"unschedulable": next(4) == 0}, "status": {"conditions": [{"type": "Ready", "status": ready}]}});
                if next(2) == 0 {
                    per_node.insert(name.clone(), next(3) as usize);
                }
                nodes.insert(name, NodeView::of(Arc::new(node)));
            }
            for template in &templates {
                let chosen = schedule(template, &nodes, &per_node);
                assert_eq!(chosen, every_node(template, &nodes, &per_node), "{template} on {:?} with {per_node:?}", nodes.keys());
                decided += usize::from(chosen.is_some());
            }
        }
        assert!(decided > 400, "most cases place the pod: {decided}");
    }

    #[test]
    fn a_pass_runs_after_a_change_or_a_start_falling_due_and_not_otherwise() {
        let start = Instant::now();
        let ready_after = Duration::from_secs(1);
        let last = (vec![5, 7], start + Duration::from_secs(10));
        let none = HashMap::new();
        assert!(pass_needed(None, &[5, 7], &none, ready_after, start), "the first pass");
        assert!(!pass_needed(Some(&last), &[5, 7], &none, ready_after, start + Duration::from_secs(20)), "nothing changed");
        assert!(
            pass_needed(Some(&last), &[5, 8], &none, ready_after, start + Duration::from_secs(20)),
            "a kind changed (the last pass's own writes too)"
        );
        let placed_then = HashMap::from([("uid".to_owned(), start + Duration::from_millis(9_500))]);
        assert!(!pass_needed(Some(&last), &[5, 7], &placed_then, ready_after, start + Duration::from_millis(10_200)), "not due yet");
        assert!(pass_needed(Some(&last), &[5, 7], &placed_then, ready_after, start + Duration::from_millis(10_600)), "fell due since");
        let placed_long_ago = HashMap::from([("uid".to_owned(), start)]);
        assert!(
            !pass_needed(Some(&last), &[5, 7], &placed_long_ago, ready_after, start + Duration::from_secs(20)),
            "due before the last pass"
        );
    }

    #[test]
    fn percentages_round_up_as_the_disruption_controller_scales_them() {
        assert_eq!(int_or_percent(&json!("50%"), 2), 1);
        assert_eq!(int_or_percent(&json!("50%"), 3), 2);
        assert_eq!(int_or_percent(&json!(2), 3), 2);
        assert_eq!(int_or_percent(&json!("25%"), 3), 1);
    }

    #[test]
    fn the_router_budget_follows_the_ingress_operators_release() {
        let r = |text: &str| Release::parse(text).unwrap();
        assert_eq!(router_max_unavailable(r("4.13.0"), 1), None);
        assert_eq!(router_max_unavailable(r("4.13.0"), 2), Some("50%"));
        assert_eq!(router_max_unavailable(r("4.13.0"), 3), Some("50%"));
        assert_eq!(router_max_unavailable(r("4.13.0"), 4), Some("25%"));
        assert_eq!(router_max_unavailable(r("4.14.0"), 3), Some("25%"));
    }

    #[test]
    fn the_default_budgets_are_those_of_each_release() {
        let budgets = |text: &str| -> Vec<String> {
            default_set(Release::parse(text).unwrap(), 3, 3, 1)
                .into_iter()
                .filter_map(|app| app.budget.map(|(name, field, value)| format!("{}/{name} {field} {value}", app.namespace)))
                .collect()
        };
        assert_eq!(
            budgets("4.7.60"),
            [
                r#"openshift-ingress/router-default maxUnavailable "50%""#,
                "openshift-etcd/etcd-quorum-guard maxUnavailable 1",
                "sample-app/frontend-0 minAvailable 2"
            ]
        );
        assert_eq!(
            budgets("4.10.67"),
            [
                r#"openshift-ingress/router-default maxUnavailable "50%""#,
                "openshift-image-registry/image-registry minAvailable 1",
                "openshift-monitoring/thanos-querier-pdb minAvailable 1",
                "openshift-etcd/etcd-quorum-guard maxUnavailable 1",
                "sample-app/frontend-0 minAvailable 2"
            ]
        );
        // From 4.11 the guard pods' etcd-guard-pdb is seeded apart from the Deployments.
        assert_eq!(
            budgets("4.14.38"),
            [
                r#"openshift-ingress/router-default maxUnavailable "50%""#,
                "openshift-image-registry/image-registry minAvailable 1",
                "openshift-console/console maxUnavailable 1",
                "openshift-monitoring/thanos-querier-pdb minAvailable 1",
                "sample-app/frontend-0 minAvailable 2"
            ]
        );
    }
}
