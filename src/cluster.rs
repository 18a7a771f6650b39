//! The cluster API side: kubeconfig resolution, node discovery (InternalIP as the migration
//! document's jsonpath reads it, roles, labels, boot ID, readiness, MachineConfigPool), and
//! the pure rendering of what was found.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::ApiResource;
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("failed to load kubeconfig {path}: {reason}")]
    Kubeconfig { path: String, reason: String },
    #[error("no cluster configured: pass --kubeconfig, set KUBECONFIG, or create ~/.kube/config ({0})")]
    NoConfig(String),
    #[error("failed to reach the cluster API at {server}: {reason}")]
    Api { server: String, reason: String },
    #[error("bad selector {selector:?}: {reason}")]
    Selector { selector: String, reason: String },
    #[error("another fleetboot run holds the lease {namespace}/{name}: {holder}; wait for it, or take it over with --break-lock")]
    Locked { holder: String, namespace: String, name: String },
}

/// Where the cluster is, in kubectl's order of precedence.
#[derive(Clone, Debug, Default)]
pub struct ClusterTarget {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

pub async fn connect(target: &ClusterTarget) -> Result<(Client, String), ClusterError> {
    let options = kube::config::KubeConfigOptions { context: target.context.clone(), ..Default::default() };
    let config = match &target.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| ClusterError::Kubeconfig { path: path.display().to_string(), reason: e.to_string() })?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| ClusterError::Kubeconfig { path: path.display().to_string(), reason: e.to_string() })?
        }
        None => match kube::Config::from_kubeconfig(&options).await {
            Ok(config) => config,
            Err(kubeconfig_error) => kube::Config::incluster().map_err(|_| ClusterError::NoConfig(kubeconfig_error.to_string()))?,
        },
    };
    let server = config.cluster_url.to_string();
    let client = Client::try_from(config).map_err(|e| ClusterError::Api { server: server.clone(), reason: e.to_string() })?;
    Ok((client, server))
}

/// One node as fleetboot sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeInfo {
    pub name: String,
    pub roles: Vec<String>,
    /// Every address of the chosen type, in the node's order (normally exactly one).
    pub addresses: Vec<String>,
    pub address_type: String,
    pub ready: String,
    #[serde(rename = "bootID")]
    pub boot_id: String,
    pub pool: Option<String>,
    #[serde(rename = "kubeletVersion")]
    pub kubelet_version: String,
    pub unschedulable: bool,
    pub labels: BTreeMap<String, String>,
    /// The node's BMC URL, when the inventory knows one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bmc: Option<String>,
    /// `-o wide`: whether the BMC answered ("answers", or why not).
    #[serde(rename = "bmcStatus", skip_serializing_if = "Option::is_none")]
    pub bmc_status: Option<String>,
    /// `machine.openshift.io/machine` (namespace/name): how BareMetalHosts find their node.
    #[serde(skip)]
    pub machine: Option<String>,
    #[serde(skip)]
    pub provider_id: Option<String>,
}

/// A MachineConfigPool's name and node selector (`matchLabels` only, as the MCO's are).
#[derive(Clone, Debug)]
pub struct PoolSelector {
    pub name: String,
    pub match_labels: BTreeMap<String, String>,
    /// The pool's spec.maxUnavailable (a count; percentages are taken of the pool's size).
    pub max_unavailable: MaxUnavailable,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxUnavailable {
    Count(usize),
    Percent(usize),
}

impl MaxUnavailable {
    pub fn of(&self, pool_size: usize) -> usize {
        match *self {
            MaxUnavailable::Count(n) => n.max(1),
            MaxUnavailable::Percent(p) => (pool_size * p / 100).max(1),
        }
    }

    pub fn parse(value: Option<&Value>) -> MaxUnavailable {
        match value {
            Some(Value::Number(n)) => MaxUnavailable::Count(n.as_u64().unwrap_or(1) as usize),
            Some(Value::String(s)) if s.ends_with('%') => MaxUnavailable::Percent(s.trim_end_matches('%').parse().unwrap_or(0)),
            Some(Value::String(s)) => MaxUnavailable::Count(s.parse().unwrap_or(1)),
            _ => MaxUnavailable::Count(1),
        }
    }
}

impl PoolSelector {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.match_labels.is_empty() && self.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// A node's pool: a custom pool wins over `worker`, whose selector custom-pool nodes also match.
pub fn pool_of(labels: &BTreeMap<String, String>, pools: &[PoolSelector]) -> Option<String> {
    let matching: Vec<&PoolSelector> = pools.iter().filter(|p| p.matches(labels)).collect();
    matching.iter().find(|p| p.name != "worker").or(matching.first()).map(|p| p.name.clone())
}

pub fn node_info(node: &Node, pools: &[PoolSelector], address_type: &str) -> NodeInfo {
    let labels: BTreeMap<String, String> = node.metadata.labels.clone().unwrap_or_default().into_iter().collect();
    let mut roles: Vec<String> = labels.keys().filter_map(|k| k.strip_prefix("node-role.kubernetes.io/")).map(str::to_owned).collect();
    roles.sort();
    let status = node.status.as_ref();
    let addresses = status
        .and_then(|s| s.addresses.as_ref())
        .map(|list| list.iter().filter(|a| a.type_ == address_type).map(|a| a.address.clone()).collect())
        .unwrap_or_default();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.clone())
        .unwrap_or_else(|| "Unknown".into());
    let info = status.and_then(|s| s.node_info.as_ref());
    NodeInfo {
        name: node.metadata.name.clone().unwrap_or_default(),
        roles,
        addresses,
        address_type: address_type.to_owned(),
        ready,
        boot_id: info.map(|i| i.boot_id.clone()).unwrap_or_default(),
        pool: pool_of(&labels, pools),
        kubelet_version: info.map(|i| i.kubelet_version.clone()).unwrap_or_default(),
        unschedulable: node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false),
        labels,
        bmc: None,
        bmc_status: None,
        machine: node.metadata.annotations.as_ref().and_then(|a| a.get("machine.openshift.io/machine")).cloned(),
        provider_id: node.spec.as_ref().and_then(|s| s.provider_id.clone()),
    }
}

/// A JSON object of strings (labels, annotations, matchLabels) as a map; absent is empty.
pub fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
        .unwrap_or_default()
}

/// Whether a Node object's Ready condition is True.
pub fn node_is_ready(node: &Value) -> bool {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

pub fn pool_selectors(pools: &[DynamicObject]) -> Vec<PoolSelector> {
    pools
        .iter()
        .map(|p| PoolSelector {
            name: p.metadata.name.clone().unwrap_or_default(),
            match_labels: string_map(p.data.pointer("/spec/nodeSelector/matchLabels")),
            max_unavailable: MaxUnavailable::parse(p.data.pointer("/spec/maxUnavailable")),
        })
        .collect()
}

/// A kind the code has no generated type for (OpenShift's, metal3's), for `DynamicObject` APIs.
pub fn api_resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    let api_version = if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") };
    ApiResource { group: group.into(), version: version.into(), api_version, kind: kind.into(), plural: plural.into() }
}

pub fn machine_config_pools() -> ApiResource {
    api_resource("machineconfiguration.openshift.io", "v1", "MachineConfigPool", "machineconfigpools")
}

/// Lists nodes (filtered by a label selector) with their pools. A cluster without the
/// MachineConfigPool kind (plain Kubernetes) simply has no pools.
pub async fn discover(client: &Client, server: &str, selector: Option<&str>, address_type: &str) -> Result<Vec<NodeInfo>, ClusterError> {
    Ok(discover_with_pools(client, server, selector, address_type).await?.0)
}

pub async fn discover_with_pools(
    client: &Client,
    server: &str,
    selector: Option<&str>,
    address_type: &str,
) -> Result<(Vec<NodeInfo>, Vec<PoolSelector>), ClusterError> {
    let api_error = |e: kube::Error| match e {
        kube::Error::Api(status) if status.code == 400 && selector.is_some() => {
            ClusterError::Selector { selector: selector.unwrap_or_default().to_owned(), reason: status.message.clone() }
        }
        other => ClusterError::Api { server: server.to_owned(), reason: other.to_string() },
    };
    let mut params = ListParams::default();
    if let Some(selector) = selector {
        params = params.labels(selector);
    }
    let nodes = Api::<Node>::all(client.clone()).list(&params).await.map_err(api_error)?;
    let pools = match Api::<DynamicObject>::all_with(client.clone(), &machine_config_pools()).list(&ListParams::default()).await {
        Ok(list) => pool_selectors(&list.items),
        Err(kube::Error::Api(status)) if status.code == 404 => Vec::new(),
        Err(e) => return Err(ClusterError::Api { server: server.to_owned(), reason: e.to_string() }),
    };
    let infos = nodes.items.iter().map(|n| node_info(n, &pools, address_type)).collect();
    Ok((infos, pools))
}

/// Groups for a cluster run. Pure. Control-plane nodes form the group "master": one at a time
/// and after everything else. The others group by pool (limit: the pool's maxUnavailable) or by
/// a label's value; `group_limit` overrides the per-group limit.
pub fn grouping(nodes: &[NodeInfo], pools: &[PoolSelector], group_by: &str, group_limit: Option<usize>) -> crate::plan::Grouping {
    let mut grouping = crate::plan::Grouping::default();
    let control_plane = |n: &NodeInfo| n.roles.iter().any(|r| r == "master" || r == "control-plane");
    for node in nodes {
        let group = if control_plane(node) {
            "master".to_owned()
        } else if group_by == "pool" {
            node.pool.clone().unwrap_or_else(|| "(no pool)".into())
        } else {
            format!("{group_by}={}", node.labels.get(group_by).map(String::as_str).unwrap_or("(unset)"))
        };
        grouping.of.insert(node.name.clone(), group);
    }
    let mut sizes: BTreeMap<String, usize> = BTreeMap::new();
    for group in grouping.of.values() {
        *sizes.entry(group.clone()).or_default() += 1;
    }
    for (group, size) in sizes {
        let limit = if group == "master" {
            1
        } else if let Some(limit) = group_limit {
            limit
        } else if group_by == "pool" {
            pools.iter().find(|p| p.name == group).map_or(1, |p| p.max_unavailable.of(size))
        } else {
            1
        };
        grouping.limits.insert(group, limit);
    }
    if grouping.limits.contains_key("master") {
        grouping.last.push("master".into());
    }
    grouping
}

/// Exactly what `oc get nodes -o jsonpath='{.items[*].status.addresses[?(@.type=="InternalIP")].address}'`
/// prints: every matching address, space-separated, no newline.
pub fn render_ips(nodes: &[NodeInfo]) -> String {
    nodes.iter().flat_map(|n| n.addresses.iter().cloned()).collect::<Vec<_>>().join(" ")
}

pub fn render_table(nodes: &[NodeInfo], wide: bool) -> String {
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            let address = match n.addresses.as_slice() {
                [] => "<none>".to_owned(),
                many => many.join(","),
            };
            let ready = match (n.ready.as_str(), n.unschedulable) {
                ("True", false) => "Ready".to_owned(),
                ("True", true) => "Ready,SchedulingDisabled".to_owned(),
                (other, _) => format!("NotReady({other})"),
            };
            let mut row = vec![
                n.name.clone(),
                if n.roles.is_empty() { "<none>".into() } else { n.roles.join(",") },
                address,
                ready,
                if wide { n.boot_id.clone() } else { crate::report::short_id(&n.boot_id).to_owned() },
                n.pool.clone().unwrap_or_else(|| "-".into()),
            ];
            if wide {
                row.push(n.kubelet_version.clone());
                row.push(n.labels.len().to_string());
                row.push(n.bmc.clone().unwrap_or_else(|| "-".into()));
                row.push(n.bmc_status.clone().unwrap_or_else(|| "-".into()));
            }
            row
        })
        .collect();
    let address_header = nodes.first().map_or("INTERNAL-IP".to_owned(), |n| match n.address_type.as_str() {
        "InternalIP" => "INTERNAL-IP".into(),
        other => other.to_uppercase(),
    });
    let mut header = vec!["NAME", "ROLES", address_header.as_str(), "STATUS", "BOOT-ID", "POOL"];
    if wide {
        header.extend(["VERSION", "LABELS", "BMC", "BMC-STATUS"]);
    }
    crate::report::table(&header, &rows)
}

/// Problems a user must see before trusting the list for a reboot.
pub fn address_problems(nodes: &[NodeInfo]) -> Vec<String> {
    nodes
        .iter()
        .filter_map(|n| match n.addresses.len() {
            1 => None,
            0 => Some(format!("node {} has no {} address", n.name, n.address_type)),
            k => Some(format!(
                "node {} has {k} {} addresses ({}); fleetboot would use the first",
                n.name,
                n.address_type,
                n.addresses.join(", ")
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeAddress, NodeCondition, NodeStatus, NodeSystemInfo};

    fn node(name: &str, role: &str, ips: &[&str]) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        n.metadata.labels = Some([(format!("node-role.kubernetes.io/{role}"), String::new())].into_iter().collect());
        n.status = Some(NodeStatus {
            addresses: Some(
                ips.iter()
                    .map(|ip| NodeAddress { type_: "InternalIP".into(), address: (*ip).into() })
                    .chain([NodeAddress { type_: "Hostname".into(), address: name.into() }])
                    .collect(),
            ),
            conditions: Some(vec![NodeCondition { type_: "Ready".into(), status: "True".into(), ..Default::default() }]),
            node_info: Some(NodeSystemInfo { boot_id: "0123456789abcdef".into(), kubelet_version: "v1.33.0".into(), ..Default::default() }),
            ..Default::default()
        });
        n
    }

    fn pools() -> Vec<PoolSelector> {
        let pool = |name: &str, label: &str| PoolSelector {
            name: name.into(),
            match_labels: [(label.to_owned(), String::new())].into_iter().collect(),
            max_unavailable: MaxUnavailable::Count(if name == "worker" { 2 } else { 1 }),
        };
        vec![
            pool("master", "node-role.kubernetes.io/master"),
            pool("worker", "node-role.kubernetes.io/worker"),
            pool("infra", "node-role.kubernetes.io/infra"),
        ]
    }

    #[test]
    fn ips_render_like_the_documents_jsonpath() {
        let nodes = [node("a", "master", &["127.0.0.2"]), node("b", "worker", &[]), node("c", "worker", &["127.0.0.4", "127.0.0.5"])];
        let infos: Vec<NodeInfo> = nodes.iter().map(|n| node_info(n, &pools(), "InternalIP")).collect();
        assert_eq!(render_ips(&infos), "127.0.0.2 127.0.0.4 127.0.0.5");
        let problems = address_problems(&infos);
        assert_eq!(problems.len(), 2);
        assert!(problems[0].contains("node b has no InternalIP address"), "{problems:?}");
        assert!(problems[1].contains("has 2 InternalIP addresses"), "{problems:?}");
        let hostnames: Vec<NodeInfo> = nodes.iter().map(|n| node_info(n, &pools(), "Hostname")).collect();
        assert_eq!(render_ips(&hostnames), "a b c");
    }

    #[test]
    fn custom_pools_win_over_worker() {
        let mut infra = node("i", "worker", &["127.0.0.9"]);
        infra.metadata.labels.as_mut().unwrap().insert("node-role.kubernetes.io/infra".into(), String::new());
        assert_eq!(node_info(&infra, &pools(), "InternalIP").pool.as_deref(), Some("infra"));
        assert_eq!(node_info(&node("w", "worker", &[]), &pools(), "InternalIP").pool.as_deref(), Some("worker"));
        assert_eq!(node_info(&node("x", "edge", &[]), &pools(), "InternalIP").pool, None);
    }

    #[test]
    fn groups_put_the_control_plane_last_one_at_a_time() {
        let mut nodes = vec![
            node_info(&node("m0", "master", &["127.0.0.2"]), &pools(), "InternalIP"),
            node_info(&node("w0", "worker", &["127.0.0.3"]), &pools(), "InternalIP"),
            node_info(&node("w1", "worker", &["127.0.0.4"]), &pools(), "InternalIP"),
        ];
        let by_pool = grouping(&nodes, &pools(), "pool", None);
        assert_eq!(by_pool.limits, [("master".to_string(), 1), ("worker".to_string(), 2)].into_iter().collect());
        assert_eq!(by_pool.last, ["master"]);
        nodes[1].labels.insert("zone".into(), "a".into());
        let by_zone = grouping(&nodes, &pools(), "zone", Some(3));
        assert_eq!(by_zone.of["w0"], "zone=a");
        assert_eq!(by_zone.of["w1"], "zone=(unset)");
        assert_eq!(by_zone.limits["zone=a"], 3);
        assert_eq!(by_zone.limits["master"], 1, "the control plane stays one at a time");
    }

    #[test]
    fn table_shows_roles_address_status_and_pool() {
        let infos = vec![node_info(&node("master-0", "master", &["127.0.0.2"]), &pools(), "InternalIP")];
        let text = render_table(&infos, false);
        assert!(text.starts_with("NAME      ROLES   INTERNAL-IP  STATUS  BOOT-ID   POOL\n"), "{text}");
        assert!(text.contains("master-0  master  127.0.0.2    Ready   01234567  master"), "{text}");
    }
}

/// One watch on Nodes (kube-runtime watcher with backoff, feeding a reflector store) for the
/// whole run: every node's readiness comes from it, with no per-node polling of the API. It
/// rides out API outages: the watcher reconnects with backoff and relists after 410 Gone.
pub struct NodeWatch {
    store: kube::runtime::reflector::Store<Node>,
    waiters: Arc<NodeWaiters>,
    task: tokio::task::JoinHandle<()>,
}

/// Per-node wake-ups: an event for one node wakes only the runs waiting on that node (with
/// thousands of nodes heartbeating, waking every waiter on every event costs more than the
/// watch itself). A relist wakes everyone.
#[derive(Default)]
struct NodeWaiters {
    by_node: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Notify>>>,
}

impl NodeWaiters {
    fn for_node(&self, name: &str) -> Arc<tokio::sync::Notify> {
        self.by_node.lock().unwrap().entry(name.to_owned()).or_default().clone()
    }

    fn wake(&self, name: &str) {
        if let Some(notify) = self.by_node.lock().unwrap().get(name) {
            notify.notify_waiters();
        }
    }

    fn wake_all(&self) {
        for notify in self.by_node.lock().unwrap().values() {
            notify.notify_waiters();
        }
    }
}

/// A Node's boot ID and whether its Ready condition is True, read without copying the node.
fn boot_id_and_ready(node: &Node) -> (&str, &str) {
    let status = node.status.as_ref();
    let boot_id = status.and_then(|s| s.node_info.as_ref()).map_or("", |i| i.boot_id.as_str());
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map_or("Unknown", |c| c.status.as_str());
    (boot_id, ready)
}

impl NodeWatch {
    pub fn start(client: &Client) -> NodeWatch {
        use futures::StreamExt;
        use kube::runtime::{WatchStreamExt, reflector, watcher};
        let (store, writer) = reflector::store::<Node>();
        let waiters = Arc::new(NodeWaiters::default());
        let stream = reflector(writer, watcher(Api::<Node>::all(client.clone()), watcher::Config::default()).default_backoff());
        let wake = waiters.clone();
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            // Errors are the watcher's to retry (with backoff); each event wakes its node's waiters.
            while let Some(event) = stream.next().await {
                match event {
                    Ok(watcher::Event::Apply(node) | watcher::Event::Delete(node)) => {
                        wake.wake(node.metadata.name.as_deref().unwrap_or_default())
                    }
                    Ok(watcher::Event::InitDone) => wake.wake_all(),
                    Ok(_) | Err(_) => {}
                }
            }
        });
        NodeWatch { store, waiters, task }
    }

    /// The node's boot ID as the API shows it now (once the first list arrived, at most 30 s).
    pub async fn boot_id(&self, name: &str) -> Option<String> {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(30), self.store.wait_until_ready()).await;
        let node = self.store.get(&kube::runtime::reflector::ObjectRef::new(name))?;
        let (boot_id, _) = boot_id_and_ready(&node);
        (!boot_id.is_empty()).then(|| boot_id.to_owned())
    }

    /// Waits until the API shows `name` Ready with a boot ID other than `old`; returns that
    /// boot ID, or why not by `deadline_ms` (wall clock).
    pub async fn wait_back(&self, name: &str, old: &str, deadline_ms: u64) -> Result<String, String> {
        let key = kube::runtime::reflector::ObjectRef::new(name);
        let notify = self.waiters.for_node(name);
        loop {
            // Registered before the store is read, so no event between the two is missed.
            let woken = notify.notified();
            if let Some(node) = self.store.get(&key) {
                let (boot_id, ready) = boot_id_and_ready(&node);
                if boot_id != old && !boot_id.is_empty() && ready == "True" {
                    return Ok(boot_id.to_owned());
                }
            }
            let now = crate::runner::now_ms();
            if now >= deadline_ms {
                return Err(match self.store.get(&key) {
                    None => format!("the cluster API never showed node {name}"),
                    Some(node) => match boot_id_and_ready(&node) {
                        (boot_id, ready) if boot_id == old => {
                            format!("the cluster API still shows node {name} with its old boot ID {old} (Ready={ready})")
                        }
                        (_, ready) => format!("the cluster API shows node {name} with a new boot ID but Ready={ready}"),
                    },
                });
            }
            let _ = tokio::time::timeout(std::time::Duration::from_millis(deadline_ms - now), woken).await;
        }
    }
}

impl Drop for NodeWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A coordination.k8s.io/v1 Lease held for a whole cluster run, so two admins cannot reboot
/// one cluster's nodes at once. Renewed in the background; a lease whose holder stopped
/// renewing expires; `--break-lock` takes a live one over.
pub struct LeaseLock {
    api: Api<DynamicObject>,
    name: String,
    identity: String,
    renewer: tokio::task::JoinHandle<()>,
    /// Who held it before a takeover (for the user and the journal).
    pub taken_from: Option<String>,
}

/// Held by reboot runs (`fleetboot reboot` on cluster nodes, and a migration's step 7).
pub const LEASE_NAME: &str = "fleetboot";
/// Held by a migration from its first step to its last.
pub const MIGRATION_LEASE_NAME: &str = "fleetboot-migration";

fn lease_resource() -> ApiResource {
    api_resource("coordination.k8s.io", "v1", "Lease", "leases")
}

fn micro_time(at: std::time::SystemTime) -> String {
    humantime::format_rfc3339_micros(at).to_string()
}

/// Whether a lease's holder stopped renewing it. Pure: `now` is passed in.
pub fn lease_expired(lease: &Value, now: std::time::SystemTime) -> bool {
    let renewed = lease.pointer("/spec/renewTime").and_then(Value::as_str).and_then(|t| humantime::parse_rfc3339_weak(t).ok());
    let duration = lease.pointer("/spec/leaseDurationSeconds").and_then(Value::as_u64).unwrap_or(0);
    match renewed {
        Some(at) => at + std::time::Duration::from_secs(duration) < now,
        None => true,
    }
}

impl LeaseLock {
    /// Takes the lease, or fails naming its holder. A lease is taken over when it expired,
    /// when `break_lock` is set, or when `reclaimable(holder)` says its holder is gone (the
    /// same run, killed on this machine, being resumed).
    pub async fn acquire(
        client: &Client,
        namespace: &str,
        lease_name: &str,
        identity: &str,
        duration: std::time::Duration,
        break_lock: bool,
        reclaimable: impl Fn(&str) -> bool,
    ) -> Result<LeaseLock, ClusterError> {
        use kube::api::PostParams;
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &lease_resource());
        let now = std::time::SystemTime::now();
        let spec = json_spec(identity, duration, now);
        let api_error = |e: kube::Error| ClusterError::Api { server: format!("leases/{namespace}/{lease_name}"), reason: e.to_string() };
        let mut taken_from = None;
        let fresh = DynamicObject::new(lease_name, &lease_resource()).within(namespace).data(serde_json::json!({ "spec": spec }));
        match api.create(&PostParams::default(), &fresh).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let held = api.get(lease_name).await.map_err(api_error)?;
                let holder = held.data.pointer("/spec/holderIdentity").and_then(Value::as_str).unwrap_or("someone").to_owned();
                if !lease_expired(&held.data, now) && !break_lock && !reclaimable(&holder) {
                    return Err(ClusterError::Locked { holder, namespace: namespace.to_owned(), name: lease_name.to_owned() });
                }
                // Replace with the version just read: if another run took it meanwhile, Conflict.
                let mut takeover = held.clone();
                takeover.data["spec"] = spec;
                api.replace(lease_name, &PostParams::default(), &takeover).await.map_err(|e| match e {
                    kube::Error::Api(s) if s.code == 409 => {
                        ClusterError::Locked { holder: holder.clone(), namespace: namespace.to_owned(), name: lease_name.to_owned() }
                    }
                    other => api_error(other),
                })?;
                taken_from = Some(holder);
            }
            Err(e) => return Err(api_error(e)),
        }
        let renew_api = api.clone();
        let renew_identity = identity.to_owned();
        let renew_name = lease_name.to_owned();
        let renewer = tokio::spawn(async move {
            let mut tick = tokio::time::interval(duration / 3);
            tick.tick().await;
            loop {
                tick.tick().await;
                // An API outage only delays renewal; the lease lasts `duration` meanwhile.
                let Ok(mut lease) = renew_api.get(&renew_name).await else { continue };
                if lease.data.pointer("/spec/holderIdentity").and_then(Value::as_str) != Some(renew_identity.as_str()) {
                    // Taken over (--break-lock elsewhere): never steal it back.
                    return;
                }
                lease.data["spec"]["renewTime"] = serde_json::json!(micro_time(std::time::SystemTime::now()));
                // A Conflict means someone wrote it meanwhile; the next tick looks again.
                let _ = renew_api.replace(&renew_name, &PostParams::default(), &lease).await;
            }
        });
        Ok(LeaseLock { api, name: lease_name.to_owned(), identity: identity.to_owned(), renewer, taken_from })
    }

    /// Gives the lease back if this run still holds it.
    pub async fn release(self) {
        self.renewer.abort();
        if let Ok(lease) = self.api.get(&self.name).await
            && lease.data.pointer("/spec/holderIdentity").and_then(Value::as_str) == Some(self.identity.as_str())
        {
            let _ = self.api.delete(&self.name, &Default::default()).await;
        }
    }
}

/// Who holds a lease, as fleetboot writes it: `user@host pid N run ID`.
pub fn lease_identity(user: &str, host: &str, pid: u32, run_id: &str) -> String {
    format!("{user}@{host} pid {pid} run {run_id}")
}

/// This process's lease identity for run `run_id`, and this machine's host name.
pub fn this_process_identity(run_id: &str) -> (String, String) {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    (lease_identity(&user, &host, std::process::id(), run_id), host)
}

/// Whether `holder` is run `run_id` started on `host` by a process that no longer exists:
/// its lease may be reclaimed by the resume of that run without waiting for it to expire.
pub fn holder_is_dead_run(holder: &str, host: &str, run_id: &str, alive: impl Fn(u32) -> bool) -> bool {
    let Some((who, rest)) = holder.split_once(" pid ") else { return false };
    let Some((pid, run)) = rest.split_once(" run ") else { return false };
    let same_host = who.rsplit_once('@').is_some_and(|(_, h)| h == host);
    let pid = pid.parse::<u32>().ok();
    same_host && run == run_id && pid.is_some_and(|pid| !alive(pid))
}

/// Whether a process with this PID exists on this machine.
pub fn process_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let result = unsafe { libc::kill(pid as libc::pid_t, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn json_spec(identity: &str, duration: std::time::Duration, now: std::time::SystemTime) -> Value {
    serde_json::json!({
        "holderIdentity": identity,
        "leaseDurationSeconds": duration.as_secs().max(1),
        "acquireTime": micro_time(now),
        "renewTime": micro_time(now),
    })
}

#[cfg(test)]
mod lease_tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn only_a_dead_process_of_the_same_run_on_this_host_gives_its_lease_back() {
        let holder = lease_identity("ann", "bastion", 41, "r-1");
        let dead = |_| false;
        let alive = |_| true;
        assert!(holder_is_dead_run(&holder, "bastion", "r-1", dead));
        assert!(!holder_is_dead_run(&holder, "bastion", "r-1", alive));
        assert!(!holder_is_dead_run(&holder, "bastion", "r-2", dead));
        assert!(!holder_is_dead_run(&holder, "other", "r-1", dead));
        assert!(!holder_is_dead_run("someone else", "bastion", "r-1", dead));
        assert!(process_alive(std::process::id()));
    }

    #[test]
    fn a_lease_expires_when_its_holder_stops_renewing() {
        let now = SystemTime::now();
        let fresh = serde_json::json!({"spec": json_spec("a", Duration::from_secs(30), now - Duration::from_secs(10))});
        assert!(!lease_expired(&fresh, now));
        let stale = serde_json::json!({"spec": json_spec("a", Duration::from_secs(30), now - Duration::from_secs(31))});
        assert!(lease_expired(&stale, now));
        assert!(lease_expired(&serde_json::json!({"spec": {}}), now));
    }
}

/// What to do with a node whose pods cannot all be evicted in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrainFailure {
    /// Fail the host: it is not rebooted, and is uncordoned again.
    Fail,
    /// Skip the host (uncordoned again) and go on.
    Skip,
    /// Delete the remaining pods and reboot anyway.
    Force,
}

/// Cordon and drain through the Eviction API (PodDisruptionBudgets respected; DaemonSet and
/// mirror pods left alone, as `kubectl drain` does), and uncordon once the node is back.
pub struct Drainer {
    client: Client,
    pub timeout: std::time::Duration,
    pub on_failure: DrainFailure,
}

/// A run's `--drain` choice, journaled so that a resumed run drains the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainPolicy {
    pub timeout_ms: u64,
    pub on_failure: DrainFailure,
}

/// Whether `kubectl drain` would leave this pod alone. Pure.
pub fn drain_skips(pod: &k8s_openapi::api::core::v1::Pod) -> bool {
    let daemonset = pod.metadata.owner_references.as_ref().is_some_and(|o| o.iter().any(|r| r.kind == "DaemonSet"));
    let mirror = pod.metadata.annotations.as_ref().is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
    let finished = pod.status.as_ref().and_then(|s| s.phase.as_deref()).is_some_and(|p| p == "Succeeded" || p == "Failed");
    daemonset || mirror || finished
}

impl Drainer {
    pub fn new(client: Client, policy: DrainPolicy) -> Drainer {
        Drainer { client, timeout: std::time::Duration::from_millis(policy.timeout_ms), on_failure: policy.on_failure }
    }

    pub fn policy(&self) -> DrainPolicy {
        DrainPolicy { timeout_ms: self.timeout.as_millis() as u64, on_failure: self.on_failure }
    }

    pub async fn set_unschedulable(&self, node: &str, on: bool) -> Result<(), String> {
        use kube::api::{Patch, PatchParams};
        let value = if on { serde_json::json!(true) } else { Value::Null };
        Api::<Node>::all(self.client.clone())
            .patch(node, &PatchParams::default(), &Patch::Merge(serde_json::json!({"spec": {"unschedulable": value}})))
            .await
            .map(|_| ())
            .map_err(|e| format!("failed to {} node {node}: {e}", if on { "cordon" } else { "uncordon" }))
    }

    /// Evicts every pod the drain covers, retrying those a PodDisruptionBudget protects,
    /// until none is left or the timeout. Returns how many were evicted, or the pods left.
    pub async fn evict_all(&self, node: &str) -> Result<usize, Vec<String>> {
        use k8s_openapi::api::core::v1::Pod;
        use kube::api::EvictParams;
        let pods_api: Api<Pod> = Api::all(self.client.clone());
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut evicted = 0;
        loop {
            let listed = pods_api.list(&ListParams::default().fields(&format!("spec.nodeName={node}"))).await;
            let pending: Vec<Pod> = match listed {
                Ok(list) => list.items.into_iter().filter(|p| !drain_skips(p)).collect(),
                Err(e) => return Err(vec![format!("could not list pods: {e}")]),
            };
            if pending.is_empty() {
                return Ok(evicted);
            }
            for pod in &pending {
                let (Some(ns), Some(name)) = (pod.metadata.namespace.as_deref(), pod.metadata.name.as_deref()) else { continue };
                // A PodDisruptionBudget answers 429; the client may retry those itself, so each
                // attempt is bounded by the drain's own deadline.
                let remaining = deadline.saturating_duration_since(tokio::time::Instant::now()).max(std::time::Duration::from_millis(100));
                let api = Api::<Pod>::namespaced(self.client.clone(), ns);
                if let Ok(Ok(_)) = tokio::time::timeout(remaining, api.evict(name, &EvictParams::default())).await {
                    evicted += 1;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(pending
                    .iter()
                    .map(|p| {
                        format!(
                            "{}/{}",
                            p.metadata.namespace.as_deref().unwrap_or_default(),
                            p.metadata.name.as_deref().unwrap_or_default()
                        )
                    })
                    .collect());
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }

    /// `--drain-failure force`: deletes the pods eviction could not move.
    pub async fn delete_pods(&self, pods: &[String]) {
        use k8s_openapi::api::core::v1::Pod;
        for pod in pods {
            if let Some((ns, name)) = pod.split_once('/') {
                let _ = Api::<Pod>::namespaced(self.client.clone(), ns).delete(name, &Default::default()).await;
            }
        }
    }
}
