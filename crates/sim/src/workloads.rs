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
use std::collections::{BTreeMap, HashMap};
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
    node: Arc<Value>,
}

impl NodeView {
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
    let mut facts = PodFacts::default();
    let mut tick = tokio::time::interval(interval);
    let mut last: Option<(Vec<u64>, Instant)> = None;
    loop {
        tick.tick().await;
        let mut store = cluster.api.store.lock().unwrap();
        let now = Instant::now();
        if !pass_needed(last.as_ref(), &kinds_read(&store), &placed, ready_after, now) {
            continue;
        }
        // The revisions this pass reads, taken before it: its own writes are input to the next
        // pass (a pod made Ready here is counted in its ReplicaSet's status there), which runs
        // until a pass writes nothing.
        let seen = kinds_read(&store);
        reconcile_with(&mut store, cluster.release, &mut placed, ready_after, &mut facts);
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
    reconcile_with(store, release, placed, ready_after, &mut PodFacts::default());
}

/// What a pass reads of a pod to decide whether it has anything to do with it, kept by the pod
/// object's identity across passes. Store objects are immutable (a write replaces the `Arc`),
/// so what was read of one stays true of it; the cache holds the `Arc` itself, so its address
/// cannot be reused by another object while the entry lives. At 5,000 nodes the nodes' own
/// pods (15,000) are read by every pass and concern none of its controllers: reading their
/// fields again on every pass, with the store locked, was most of the simulation's CPU.
#[derive(Default)]
pub struct PodFacts {
    by_object: HashMap<usize, (Arc<Value>, Facts)>,
    /// The same for nodes: at 10,000 nodes, reading every node's conditions on every pass was
    /// the next largest part of it.
    by_node: HashMap<usize, (Arc<Value>, NodeFacts)>,
}

struct NodeFacts {
    name: String,
    ready: bool,
    schedulable: bool,
}

struct Facts {
    namespace: Box<str>,
    node: Option<Box<str>>,
    controller: Option<Box<str>>,
    managed: bool,
    bare_and_not_started: bool,
}

impl PodFacts {
    /// The facts of `pod` (read now if it is new to the cache).
    fn of(&mut self, pod: &Arc<Value>) -> &Facts {
        let (_, facts) = self.by_object.entry(Arc::as_ptr(pod) as usize).or_insert_with(|| {
            let facts = Facts {
                namespace: meta(pod, "namespace").into(),
                node: pod.at("/spec/nodeName").and_then(Value::as_str).map(Into::into),
                controller: controller_uid(pod).map(Into::into),
                managed: managed(pod),
                bare_and_not_started: super::kubelet::bare_and_not_started(pod),
            };
            (pod.clone(), facts)
        });
        facts
    }

    /// Drops the objects nothing else holds any more (replaced or deleted in the store, and
    /// out of the watch history too).
    fn sweep(&mut self) {
        self.by_object.retain(|_, (object, _)| Arc::strong_count(object) > 1);
        self.by_node.retain(|_, (object, _)| Arc::strong_count(object) > 1);
    }

    /// What the controllers know of `node` (read now if it is new to the cache).
    fn view_of(&mut self, node: Arc<Value>) -> (String, NodeView) {
        let (_, facts) = self.by_node.entry(Arc::as_ptr(&node) as usize).or_insert_with(|| {
            let facts = NodeFacts {
                name: node["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
                ready: crate::util::node_is_ready(&node),
                schedulable: node.at("/spec/unschedulable") != Some(&json!(true)),
            };
            (node.clone(), facts)
        });
        (facts.name.clone(), NodeView { ready: facts.ready, schedulable: facts.schedulable, node })
    }
}

fn reconcile_with(store: &mut Store, release: Release, placed: &mut HashMap<String, Instant>, ready_after: Duration, facts: &mut PodFacts) {
    facts.sweep();
    let nodes: BTreeMap<String, NodeView> =
        store.list(t("", "v1", "nodes"), &Default::default(), None, None).items.into_iter().map(|n| facts.view_of(n)).collect();
    let all_pods = store.list(pods(), &Default::default(), None, None).items;
    // The pod garbage collector: pods bound to a node that no longer exists (looked up by hash:
    // an ordered map's string comparisons, per pod, were a good part of the pass).
    let names: std::collections::HashSet<&str> = nodes.keys().map(String::as_str).collect();
    for pod in &all_pods {
        if let Some(node) = facts.of(pod).node.as_deref()
            && !names.contains(node)
        {
            let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
            let _ = store.delete(pods(), Some(ns), pod["metadata"]["name"].as_str().unwrap_or_default());
        }
    }
    // The etcd guard controller (4.11+): a guard pod per master that is schedulable.
    let guarded = !store.list(pdbs(), &ns_filter("openshift-etcd"), None, None).items.is_empty();
    if guarded && guard_pods(release) {
        for (name, node) in nodes.iter().filter(|(_, n)| n.label("node-role.kubernetes.io/master").is_some()) {
            let exists = store.get(pods(), Some("openshift-etcd"), &format!("etcd-guard-{name}")).is_ok();
            if !exists && node.schedulable {
                let _ = store.create(pods(), Some("openshift-etcd"), guard_pod(name));
            }
        }
    }
    sync_deployments(store);
    sync_replicasets(store, &nodes, placed, facts);
    sync_readiness(store, &nodes, placed, ready_after, facts);
    super::kubelet::run_bound_pods_where(store, |pod| facts.of(pod).bare_and_not_started);
    sync_budgets(store, facts);
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
fn sync_deployments(store: &mut Store) {
    let all_rs = store.list(replicasets(), &Default::default(), None, None).items;
    let rs_by_owner = by_controller(&all_rs);
    for deployment in store.list(deployments(), &Default::default(), None, None).items {
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
fn sync_replicasets(store: &mut Store, nodes: &BTreeMap<String, NodeView>, placed: &mut HashMap<String, Instant>, facts: &mut PodFacts) {
    let all_pods = store.list(pods(), &Default::default(), None, None).items;
    // by_controller, through the facts kept of each pod.
    let mut pods_by_owner: HashMap<Box<str>, Vec<&Arc<Value>>> = HashMap::new();
    for pod in &all_pods {
        if let Some(uid) = &facts.of(pod).controller {
            pods_by_owner.entry(uid.clone()).or_default().push(pod);
        }
    }
    for rs in store.list(replicasets(), &Default::default(), None, None).items {
        let ns = meta(&rs, "namespace").to_owned();
        let replicas = rs.at("/spec/replicas").and_then(Value::as_u64).unwrap_or(1) as usize;
        // This ReplicaSet's pods, kept up to date below with what this pass changes, so its
        // status needs no second read.
        let mut owned: Vec<Arc<Value>> = pods_by_owner
            .remove(meta(&rs, "uid"))
            .unwrap_or_default()
            .into_iter()
            .filter(|p| meta(p, "namespace") == ns && p.at("/metadata/deletionTimestamp").is_none())
            .cloned()
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
}

/// The scheduler's choice for a pod of `template`: a Ready, schedulable node matching its
/// nodeSelector (and its anti-affinity), with the fewest pods of the same ReplicaSet.
fn schedule(template: &Value, nodes: &BTreeMap<String, NodeView>, per_node: &BTreeMap<String, usize>) -> Option<String> {
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

/// A pod the simulation's controllers run: a ReplicaSet's or an etcd guard.
fn managed(pod: &Value) -> bool {
    pod.at("/metadata/ownerReferences/0/kind").and_then(Value::as_str) == Some("ReplicaSet")
        || (pod["metadata"]["namespace"] == "openshift-etcd" && pod["metadata"]["labels"]["app"] == "guard")
}

/// The kubelet's readiness of the pods it runs, and the node lifecycle controller's
/// MarkPodsNotReady for the pods of a node that is not Ready.
fn sync_readiness(
    store: &mut Store,
    nodes: &BTreeMap<String, NodeView>,
    placed: &mut HashMap<String, Instant>,
    ready_after: Duration,
    facts: &mut PodFacts,
) {
    let all_pods = store.list(pods(), &Default::default(), None, None).items;
    // Only what was placed needs the set of live pods (mostly nothing: a set of every pod's uid
    // on every pass for nothing was a good part of the pass).
    if !placed.is_empty() {
        let live: std::collections::HashSet<&str> = all_pods.iter().map(|p| meta(p, "uid")).collect();
        placed.retain(|uid, _| live.contains(uid.as_str()));
    }
    for pod in all_pods.iter().filter(|p| facts.of(p).managed) {
        let Some(node) = pod.at("/spec/nodeName").and_then(Value::as_str) else { continue };
        let node_ready = nodes.get(node).is_some_and(|n| n.ready);
        let started = placed.get(meta(pod, "uid")).is_none_or(|at| at.elapsed() >= ready_after);
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
fn sync_budgets(store: &mut Store, facts: &mut PodFacts) {
    let all_rs = store.list(replicasets(), &Default::default(), None, None).items;
    let rs_by_uid: HashMap<&str, &Arc<Value>> = all_rs.iter().map(|rs| (meta(rs, "uid"), rs)).collect();
    let all_pods = store.list(pods(), &Default::default(), None, None).items;
    // The pods by namespace and by (namespace, label, value): a budget's selector with a
    // matchLabels pair reads only the pods carrying it (a budget per user workload, each
    // reading the namespace's every pod, made one pass quadratic).
    // Only the namespaces with a budget are indexed: no budget looks elsewhere (the nodes' own
    // pods, three per node, are most of the pods and have none).
    let budgets = store.list(pdbs(), &Default::default(), None, None).items;
    let budgeted: std::collections::HashSet<&str> = budgets.iter().map(|pdb| meta(pdb, "namespace")).collect();
    let mut by_namespace: HashMap<&str, Vec<&Arc<Value>>> = HashMap::new();
    let mut by_label: HashMap<(&str, &str, &str), Vec<&Arc<Value>>> = HashMap::new();
    for pod in &all_pods {
        if !budgeted.contains(&*facts.of(pod).namespace) {
            continue;
        }
        let ns = meta(pod, "namespace");
        by_namespace.entry(ns).or_default().push(pod);
        for (key, value) in pod.at("/metadata/labels").and_then(Value::as_object).into_iter().flatten() {
            if let Some(value) = value.as_str() {
                by_label.entry((ns, key, value)).or_default().push(pod);
            }
        }
    }
    for pdb in &budgets {
        let ns = meta(pdb, "namespace").to_owned();
        // getPodsForPdb: the budget's pods are those its selector matches, none without one.
        let selector = super::selector::LabelSelector::from_optional(&pdb["spec"]["selector"]);
        let candidates = match selector.as_ref().and_then(|s| s.an_equality()) {
            Some((key, value)) => by_label.get(&(ns.as_str(), key, value)),
            None => by_namespace.get(ns.as_str()),
        };
        let matching: Vec<&Arc<Value>> = candidates
            .into_iter()
            .flatten()
            .copied()
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
