//! The cluster as the migration touches it: the OpenShift objects it reads and patches
//! (through the kube adapter's client), a snapshot for preflight, the inputs of the checks, and
//! a watch that wakes a waiting step when what it waits for changes.

use std::time::Duration;

use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::ApiResource;
use serde_json::Value;

use super::MigrateError;
use crate::adapters::kube::api_resource as resource;
use fleetboot_core::conditions;
use fleetboot_core::migrate::checks;

pub(super) fn api_error(what: &str) -> impl Fn(kube::Error) -> MigrateError + '_ {
    move |source| MigrateError::Api { what: what.to_owned(), source }
}

pub(super) fn network_config() -> ApiResource {
    resource("config.openshift.io", "v1", "Network", "networks")
}
pub(super) fn network_operator() -> ApiResource {
    resource("operator.openshift.io", "v1", "Network", "networks")
}
pub(super) fn cluster_operators() -> ApiResource {
    resource("config.openshift.io", "v1", "ClusterOperator", "clusteroperators")
}
pub(super) fn cluster_versions() -> ApiResource {
    resource("config.openshift.io", "v1", "ClusterVersion", "clusterversions")
}
pub(super) fn machine_configs() -> ApiResource {
    resource("machineconfiguration.openshift.io", "v1", "MachineConfig", "machineconfigs")
}
pub(super) fn daemon_sets() -> ApiResource {
    resource("apps", "v1", "DaemonSet", "daemonsets")
}
pub(super) fn pods() -> ApiResource {
    resource("", "v1", "Pod", "pods")
}
pub(super) fn nodes() -> ApiResource {
    resource("", "v1", "Node", "nodes")
}
pub(super) fn sdn_kind(kind: &str, plural: &str) -> ApiResource {
    resource("network.openshift.io", "v1", kind, plural)
}
/// kubernetes-nmstate's kinds (present where the NMState operator is installed).
fn nmstate_kind(version: &str, kind: &str, plural: &str) -> ApiResource {
    resource("nmstate.io", version, kind, plural)
}
pub(super) fn namespaces() -> ApiResource {
    resource("", "v1", "Namespace", "namespaces")
}

/// The cluster as the migration touches it.
pub(super) struct Target {
    pub(super) client: kube::Client,
    /// The same connection, handed to the reboot engine when every node reboots: the nodes
    /// rebooted are the nodes of the cluster being migrated, whatever the current context is.
    pub(super) connection: crate::adapters::kube::ClusterConnection,
}

impl Target {
    pub(super) fn cluster_scoped(&self, r: &ApiResource) -> Api<DynamicObject> {
        Api::all_with(self.client.clone(), r)
    }

    pub(super) fn namespaced(&self, r: &ApiResource, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, r)
    }

    pub(super) async fn get(&self, r: &ApiResource, name: &str) -> Result<Value, MigrateError> {
        let object = self.cluster_scoped(r).get(name).await.map_err(api_error(&format!("get {} {name}", r.plural)))?;
        Ok(serde_json::to_value(object).expect("objects serialize"))
    }

    pub(super) async fn list(&self, r: &ApiResource) -> Result<Vec<Value>, MigrateError> {
        let list = self.cluster_scoped(r).list(&ListParams::default()).await.map_err(api_error(&format!("list {}", r.plural)))?;
        Ok(list.items.into_iter().map(|o| serde_json::to_value(o).expect("objects serialize")).collect())
    }

    pub(super) async fn merge(&self, r: &ApiResource, name: &str, patch: Value) -> Result<(), MigrateError> {
        self.cluster_scoped(r)
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(api_error(&format!("patch {} {name}", r.plural)))?;
        Ok(())
    }

    pub(super) async fn snapshot(&self) -> Result<checks::ClusterSnapshot, MigrateError> {
        let config = self.get(&network_config(), "cluster").await?;
        let nodes = self.list(&nodes()).await?;
        Ok(checks::ClusterSnapshot {
            nodes: nodes.iter().map(|n| (name_of(n), ready_of(n))).collect(),
            node_ips: nodes
                .iter()
                .flat_map(|n| n.pointer("/status/addresses").and_then(Value::as_array).cloned().unwrap_or_default())
                .filter(|a| a["type"] == "InternalIP")
                .filter_map(|a| a["address"].as_str().map(str::to_owned))
                .collect(),
            pools: self.list(&crate::adapters::kube::machine_config_pools()).await?,
            operators: self.list(&cluster_operators()).await?,
            spec_network_type: str_at(&config, "/spec/networkType"),
            status_network_type: str_at(&config, "/status/networkType"),
            network_operator: self.get(&network_operator(), "cluster").await?,
            network_config: config,
            pods: self.list(&pods()).await?,
            netnamespaces: self.list_if_served(&sdn_kind("NetNamespace", "netnamespaces")).await?,
            hostsubnets: self.list_if_served(&sdn_kind("HostSubnet", "hostsubnets")).await?,
            egress_network_policies: self.list_if_served(&sdn_kind("EgressNetworkPolicy", "egressnetworkpolicies")).await?,
            webhook_configurations: self.webhook_configurations().await?,
            nncps: self.list_if_served(&nmstate_kind("v1", "NodeNetworkConfigurationPolicy", "nodenetworkconfigurationpolicies")).await?,
            node_network_states: self.list_if_served(&nmstate_kind("v1beta1", "NodeNetworkState", "nodenetworkstates")).await?,
        })
    }

    /// Every admission webhook configuration, validating and mutating, as (kind, object).
    async fn webhook_configurations(&self) -> Result<Vec<(String, Value)>, MigrateError> {
        let mut all = Vec::new();
        for kind in ["ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"] {
            let plural = format!("{}s", kind.to_lowercase());
            let r = resource("admissionregistration.k8s.io", "v1", kind, &plural);
            all.extend(self.list_if_served(&r).await?.into_iter().map(|o| (kind.to_owned(), o)));
        }
        Ok(all)
    }

    /// A list of a kind the cluster may not serve (OpenShift SDN's, on an OVN cluster): empty then.
    async fn list_if_served(&self, r: &ApiResource) -> Result<Vec<Value>, MigrateError> {
        match self.cluster_scoped(r).list(&ListParams::default()).await {
            Ok(list) => Ok(list.items.into_iter().map(|o| serde_json::to_value(o).expect("objects serialize")).collect()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(Vec::new()),
            Err(e) => Err(api_error(&format!("list {}", r.plural))(e)),
        }
    }

    pub(super) async fn verify_inputs(&self, target: &str, baseline: &[String]) -> Result<checks::VerifyInputs, MigrateError> {
        let nodes = self.list(&nodes()).await?;
        let mut rendered = Vec::new();
        let mut wanted: Vec<String> =
            nodes.iter().map(|n| str_at(n, "/metadata/annotations/machineconfiguration.openshift.io~1currentConfig")).collect();
        wanted.sort();
        wanted.dedup();
        for name in wanted.iter().filter(|n| !n.is_empty()) {
            if let Ok(mc) = self.get(&machine_configs(), name).await {
                rendered.push(mc);
            }
        }
        let all_pods = self.list(&pods()).await?;
        let mut daemon_logs = Vec::new();
        for node in nodes.iter().filter(|n| ready_of(n) != "True") {
            let node_name = name_of(node);
            let daemon = all_pods.iter().find(|p| {
                str_at(p, "/metadata/namespace") == "openshift-machine-config-operator"
                    && str_at(p, "/spec/nodeName") == node_name
                    && name_of(p).starts_with("machine-config-daemon")
            });
            if let Some(daemon) = daemon {
                let api: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(self.client.clone(), "openshift-machine-config-operator");
                // The daemon's pod has two containers (the daemon and kube-rbac-proxy): the API
                // wants the one named; the default-container annotation is only kubectl's.
                let params = kube::api::LogParams {
                    container: Some("machine-config-daemon".to_owned()),
                    tail_lines: Some(checks::DAEMON_LOG_LINES as i64),
                    ..Default::default()
                };
                let log = api.logs(&name_of(daemon), &params).await.unwrap_or_else(|e| format!("(no log: {e})"));
                daemon_logs.push((node_name, log));
            }
        }
        let config = self.get(&network_config(), "cluster").await?;
        let (namespace, daemonset, _) = checks::plugin_of(target);
        let plugin_daemonset =
            self.namespaced(&daemon_sets(), namespace).get_opt(daemonset).await.map_err(api_error("get the network plugin DaemonSet"))?;
        let features = self.feature_objects(nodes.clone()).await?;
        Ok(checks::VerifyInputs {
            nodes,
            machine_configs: rendered,
            status_network_type: str_at(&config, "/status/networkType"),
            pods: all_pods,
            daemon_logs,
            operators: self.list(&cluster_operators()).await?,
            plugin_daemonset: plugin_daemonset.map(|d| serde_json::to_value(d).expect("objects serialize")),
            baseline: baseline.to_vec(),
            features,
        })
    }

    /// Both plugins' egress firewalls, egress IPs and multicast, for verify.
    async fn feature_objects(&self, nodes: Vec<Value>) -> Result<fleetboot_core::migrate::features::FeatureObjects, MigrateError> {
        let operator = self.get(&network_operator(), "cluster").await?;
        let version = self.get(&cluster_versions(), "version").await.map(|v| str_at(&v, "/status/desired/version")).unwrap_or_default();
        let ovn_kind = |kind: &str, plural: &str| resource("k8s.ovn.org", "v1", kind, plural);
        Ok(fleetboot_core::migrate::features::FeatureObjects {
            netnamespaces: self.list_if_served(&sdn_kind("NetNamespace", "netnamespaces")).await?,
            hostsubnets: self.list_if_served(&sdn_kind("HostSubnet", "hostsubnets")).await?,
            egress_network_policies: self.list_if_served(&sdn_kind("EgressNetworkPolicy", "egressnetworkpolicies")).await?,
            egress_firewalls: self.list_if_served(&ovn_kind("EgressFirewall", "egressfirewalls")).await?,
            egress_ips: self.list_if_served(&ovn_kind("EgressIP", "egressips")).await?,
            namespaces: self.list(&namespaces()).await?,
            nodes,
            migration_features: operator.pointer("/spec/migration/features").cloned(),
            release_minor: fleetboot_core::migrate::minor_version(&version).map(|v| v.1),
        })
    }
}

/// Wakes on every change of the watched objects (a kube-runtime watcher, with backoff across
/// API outages), or after `idle` without one, so a step re-reads the cluster when it changes
/// instead of on a timer.
/// Every node as one watch shows it (a reflector fed by one LIST, then a WATCH), for a wait that
/// looks at the nodes on every change of what it waits for: a look costs the API server
/// nothing, where a LIST of every node per look cost the whole fleet's objects each time
/// (quadratic over a rollout that updates one node per change). Only for what is shown and
/// journaled as seen (progress, the MCO's reboots); no decision to act reads it.
pub(super) struct NodeView {
    store: kube::runtime::reflector::Store<k8s_openapi::api::core::v1::Node>,
    task: tokio::task::JoinHandle<()>,
}

impl NodeView {
    pub(super) fn start(client: &kube::Client) -> NodeView {
        use futures::StreamExt;
        use kube::runtime::{WatchStreamExt, reflector, watcher};
        let (store, writer) = reflector::store();
        let api: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
        let stream = reflector(writer, watcher(api, watcher::Config::default()).default_backoff());
        // Errors are the watcher's to retry, with backoff; the store keeps the last view.
        let task = tokio::spawn(stream.for_each(|_| std::future::ready(())));
        NodeView { store, task }
    }

    /// Every node as the watch shows it now; a LIST while the watch has not listed them yet.
    pub(super) async fn nodes(&self, target: &Target) -> Result<Vec<Value>, MigrateError> {
        if tokio::time::timeout(Duration::from_secs(10), self.store.wait_until_ready()).await.is_ok_and(|r| r.is_ok()) {
            return Ok(self.store.state().iter().map(|n| serde_json::to_value(&**n).expect("objects serialize")).collect());
        }
        target.list(&nodes()).await
    }
}

impl Drop for NodeView {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(super) struct Changes {
    stream: std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<kube::runtime::watcher::Event<DynamicObject>, kube::runtime::watcher::Error>> + Send>,
    >,
    idle: Duration,
}

impl Changes {
    pub(super) fn watch(api: Api<DynamicObject>, fields: Option<&str>, idle: Duration) -> Changes {
        use kube::runtime::{WatchStreamExt, watcher};
        let mut config = watcher::Config::default();
        if let Some(fields) = fields {
            config = config.fields(fields);
        }
        Changes { stream: Box::pin(watcher(api, config).default_backoff()), idle }
    }

    pub(super) async fn next(&mut self) {
        use futures::StreamExt;
        tokio::select! {
            _ = self.stream.next() => {}
            () = tokio::time::sleep(self.idle) => {}
        }
    }
}

pub(super) fn str_at(value: &Value, pointer: &str) -> String {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_owned()
}

pub(super) fn name_of(value: &Value) -> String {
    str_at(value, "/metadata/name")
}

pub(super) fn ready_of(node: &Value) -> String {
    conditions::status(node, "Ready").unwrap_or("Unknown").to_owned()
}

pub(super) use fleetboot_core::conditions::is_true as condition_true;

/// Whether an object's status speaks of its current spec: status.observedGeneration, where the
/// object has one, is at least metadata.generation. kubectl's `wait --for=condition` reads a
/// status older than the generation as not yet observed (kubernetes/kubectl
/// `pkg/cmd/wait/condition.go`); a controller that has not yet synced a patch still shows the
/// old conditions, which must not read as "done".
pub(super) fn status_observed(object: &Value) -> bool {
    match (
        object.pointer("/status/observedGeneration").and_then(Value::as_i64),
        object.pointer("/metadata/generation").and_then(Value::as_i64),
    ) {
        (Some(observed), Some(generation)) => observed >= generation,
        _ => true,
    }
}

pub(super) fn pool_of_node(node: &Value, pool: &Value) -> bool {
    let labels = node.pointer("/metadata/labels");
    pool.pointer("/spec/nodeSelector/matchLabels")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v)))
}

/// Connects to the cluster the migration acts on.
pub(super) async fn connect(target: &crate::adapters::kube::ClusterTarget) -> Result<Target, crate::adapters::kube::ClusterError> {
    let connection = crate::adapters::kube::ClusterConnection::open(target).await?;
    Ok(Target { client: connection.client.clone(), connection })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn a_status_older_than_the_generation_is_not_observed() {
        let pool = |observed: Option<i64>| {
            let mut p = json!({"metadata": {"generation": 4}, "status": {"conditions": [{"type": "Updated", "status": "True"}]}});
            if let Some(o) = observed {
                p["status"]["observedGeneration"] = json!(o);
            }
            p
        };
        assert!(!super::status_observed(&pool(Some(1))), "the controller has not synced the last patch");
        assert!(super::status_observed(&pool(Some(4))));
        assert!(super::status_observed(&pool(None)), "an object without observedGeneration is read as before");
    }
}
