//! `fleetboot migrate` and `fleetboot verify`: the OpenShift SDN → OVN-Kubernetes migration in
//! the order the cluster's release requires ([`Flow`]: the seed document's steps 0-11 up to
//! 4.7, the documented two-phase flow for 4.8-4.16, nothing from 4.17), each step checked,
//! journaled and resumable; the reboot of every node is the reboot engine's own run, with its
//! own journal.

pub mod checks;
pub mod record;
pub mod report;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};

use crate::adapters::config::{Layer, Settings};
use crate::adapters::kube::api_resource as resource;
use crate::commands::ClusterArgs;
use crate::engine::reboot::{GroupPolicy, LeasePolicy, NodeSelection, RebootJob, Selection, prepare};
use crate::engine::runner::Abort;
use crate::report::Reporter;
use crate::{Error, ExitCode};
use checks::Check;
use fleetboot_core::journal::SettingsOverrides;
use record::{Flow, MigrationEntry, MigrationState, MigrationWriter, Step};

pub const MIGRATION_ANNOTATION: &str = "networkoperator.openshift.io/network-migration";

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// Show every step and what it would change; change nothing.
    #[arg(long)]
    pub plan: bool,
    /// Continue the migration in progress after an interruption or a fixed failure.
    #[arg(long)]
    pub resume: bool,
    /// Step 11 (remove the migration setting, delete the old network's namespace); only after
    /// the verification passed.
    #[arg(long)]
    pub cleanup: bool,
    /// You took an etcd backup (the document's precondition); required to start.
    #[arg(long)]
    pub etcd_backup_confirmed: bool,
    /// The network type to migrate to: OVNKubernetes, or OpenShiftSDN for a rollback.
    #[arg(long, default_value = "OVNKubernetes", value_parser = ["OVNKubernetes", "OpenShiftSDN"])]
    pub to: String,
    /// The order of steps: auto (the one the cluster's release requires: seed up to 4.7,
    /// two-phase for 4.8-4.16), or seed / two-phase to override it (with a loud warning: the
    /// operators of a release refuse the other order).
    #[arg(long, default_value = "auto", value_parser = ["auto", "seed", "two-phase"])]
    pub flow: String,
    /// The network's MTU (OVN-Kubernetes: ovnKubernetesConfig.mtu; rollback: openshiftSDNConfig.mtu).
    #[arg(long)]
    pub mtu: Option<u32>,
    /// The Geneve UDP port (OVN-Kubernetes).
    #[arg(long)]
    pub geneve_port: Option<u32>,
    /// The VXLAN UDP port (rollback to OpenShift SDN: openshiftSDNConfig.vxlanPort).
    #[arg(long)]
    pub vxlan_port: Option<u32>,
    /// Move OVN-Kubernetes' join subnet (default 100.64.0.0/16) off the cluster's networks.
    #[arg(long, value_name = "CIDR")]
    pub v4_internal_subnet: Option<String>,
    /// Move OVN-Kubernetes' transit switch subnet (default 100.88.0.0/16).
    #[arg(long, value_name = "CIDR")]
    pub transit_switch_subnet: Option<String>,
    /// Move OVN-Kubernetes' masquerade subnet (default 169.254.169.0/29).
    #[arg(long, value_name = "CIDR")]
    pub masquerade_subnet: Option<String>,
    /// Hosts that route traffic between their interfaces: route egress through the host
    /// (gatewayConfig.routingViaHost), as OpenShift SDN did.
    #[arg(long)]
    pub routing_via_host: bool,
    /// Hosts that forward IP traffic: keep global IP forwarding (gatewayConfig.ipForwarding: Global).
    #[arg(long)]
    pub ip_forwarding_global: bool,
    /// 4.12+: do not migrate these SDN features (spec.migration.features): egress-ip,
    /// egress-firewall, multicast (repeatable).
    #[arg(long, value_name = "FEATURE", value_parser = ["egress-ip", "egress-firewall", "multicast"])]
    pub skip_feature: Vec<String>,
    /// How long an operator may take to apply a change (spec.migration, spec.networkType).
    #[arg(long, default_value = "10m")]
    pub operator_timeout: humantime::Duration,
    /// The smallest MTU of the nodes' interfaces, when known: --mtu must leave 100 bytes.
    #[arg(long, value_name = "MTU")]
    pub node_mtu: Option<u32>,
    /// Step 7 limit; default: every node at once, as the document does.
    #[arg(long, value_name = "N")]
    pub reboot_concurrency: Option<usize>,
    /// Step 10: reboot the nodes that hold pods in an error state, then verify again.
    #[arg(long)]
    pub reboot_error_nodes: bool,
    /// The migration's directory [default: STATE_DIR/migrations/RUN].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Warn when the pools have been paused longer than this (certificate rotation waits too).
    #[arg(long, default_value = "1h")]
    pub paused_warning: humantime::Duration,
    /// Step 6's limit.
    #[arg(long, default_value = "30m")]
    pub multus_timeout: humantime::Duration,
    /// Step 8's limit for the whole MCO rollout.
    #[arg(long, default_value = "4h")]
    pub rollout_timeout: humantime::Duration,
    /// Take over the cluster's migration lease from another (live) holder.
    #[arg(long)]
    pub break_lock: bool,
    /// Steps 6 and 8 watch the multus DaemonSet and the pools and look again on every change;
    /// this is the longest they go without a look when nothing changes.
    #[arg(long, default_value = "30s")]
    pub poll_interval: humantime::Duration,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// auto, plain, or json (for the reboot step's events).
    #[arg(long, short = 'o', default_value = "auto", value_parser = ["auto", "plain", "json"])]
    pub output: String,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The network type the cluster should run.
    #[arg(long, default_value = "OVNKubernetes", value_parser = ["OVNKubernetes", "OpenShiftSDN"])]
    pub to: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// table or json.
    #[arg(long, short = 'o', default_value = "table", value_parser = ["table", "json"])]
    pub output: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("the cluster is not ready for the migration:\n  - {}", .0.join("\n  - "))]
    Preflight(Vec<String>),
    #[error(transparent)]
    Journal(#[from] record::MigrationJournalError),
    #[error("{0}")]
    State(String),
    #[error("cluster API: {0}")]
    Api(String),
}

fn api_error(what: &str) -> impl Fn(kube::Error) -> MigrateError + '_ {
    move |e| MigrateError::Api(format!("{what}: {e}"))
}

fn network_config() -> ApiResource {
    resource("config.openshift.io", "v1", "Network", "networks")
}
fn network_operator() -> ApiResource {
    resource("operator.openshift.io", "v1", "Network", "networks")
}
fn cluster_operators() -> ApiResource {
    resource("config.openshift.io", "v1", "ClusterOperator", "clusteroperators")
}
fn cluster_versions() -> ApiResource {
    resource("config.openshift.io", "v1", "ClusterVersion", "clusterversions")
}
fn machine_configs() -> ApiResource {
    resource("machineconfiguration.openshift.io", "v1", "MachineConfig", "machineconfigs")
}
fn daemon_sets() -> ApiResource {
    resource("apps", "v1", "DaemonSet", "daemonsets")
}
fn pods() -> ApiResource {
    resource("", "v1", "Pod", "pods")
}
fn nodes() -> ApiResource {
    resource("", "v1", "Node", "nodes")
}
fn sdn_kind(kind: &str, plural: &str) -> ApiResource {
    resource("network.openshift.io", "v1", kind, plural)
}
fn namespaces() -> ApiResource {
    resource("", "v1", "Namespace", "namespaces")
}

/// Writes a small state file whole or not at all (temp file, fsync, rename, fsync the directory).
fn write_atomically(path: &Path, text: String) -> Result<(), MigrateError> {
    use std::io::Write;
    let failed = |e: std::io::Error| MigrateError::State(format!("cannot write {}: {e}", path.display()));
    let temp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temp).map_err(failed)?;
    file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(failed)?;
    std::fs::rename(&temp, path).map_err(failed)?;
    crate::adapters::system::sync_dir(path.parent().unwrap_or(Path::new("."))).map_err(failed)
}

/// The cluster as the migration touches it.
struct Target {
    client: kube::Client,
    /// The same connection, handed to the reboot engine when every node reboots: the nodes
    /// rebooted are the nodes of the cluster being migrated, whatever the current context is.
    connection: crate::adapters::kube::ClusterConnection,
}

impl Target {
    fn cluster_scoped(&self, r: &ApiResource) -> Api<DynamicObject> {
        Api::all_with(self.client.clone(), r)
    }

    fn namespaced(&self, r: &ApiResource, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, r)
    }

    async fn get(&self, r: &ApiResource, name: &str) -> Result<Value, MigrateError> {
        let object = self.cluster_scoped(r).get(name).await.map_err(api_error(&format!("get {} {name}", r.plural)))?;
        Ok(serde_json::to_value(object).expect("objects serialize"))
    }

    async fn list(&self, r: &ApiResource) -> Result<Vec<Value>, MigrateError> {
        let list = self.cluster_scoped(r).list(&ListParams::default()).await.map_err(api_error(&format!("list {}", r.plural)))?;
        Ok(list.items.into_iter().map(|o| serde_json::to_value(o).expect("objects serialize")).collect())
    }

    async fn merge(&self, r: &ApiResource, name: &str, patch: Value) -> Result<(), MigrateError> {
        self.cluster_scoped(r)
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(api_error(&format!("patch {} {name}", r.plural)))?;
        Ok(())
    }

    async fn snapshot(&self) -> Result<checks::ClusterSnapshot, MigrateError> {
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
        })
    }

    /// A list of a kind the cluster may not serve (OpenShift SDN's, on an OVN cluster): empty then.
    async fn list_if_served(&self, r: &ApiResource) -> Result<Vec<Value>, MigrateError> {
        match self.cluster_scoped(r).list(&ListParams::default()).await {
            Ok(list) => Ok(list.items.into_iter().map(|o| serde_json::to_value(o).expect("objects serialize")).collect()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(Vec::new()),
            Err(e) => Err(api_error(&format!("list {}", r.plural))(e)),
        }
    }

    async fn verify_inputs(&self, target: &str, baseline: &[String]) -> Result<checks::VerifyInputs, MigrateError> {
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
                let params = kube::api::LogParams { tail_lines: Some(checks::DAEMON_LOG_LINES as i64), ..Default::default() };
                let log = api.logs(&name_of(daemon), &params).await.unwrap_or_else(|e| format!("(no log: {e})"));
                daemon_logs.push((node_name, log));
            }
        }
        let config = self.get(&network_config(), "cluster").await?;
        let (namespace, daemonset, _) = checks::plugin_of(target);
        let plugin_daemonset =
            self.namespaced(&daemon_sets(), namespace).get_opt(daemonset).await.map_err(api_error("get the network plugin DaemonSet"))?;
        Ok(checks::VerifyInputs {
            nodes,
            machine_configs: rendered,
            status_network_type: str_at(&config, "/status/networkType"),
            pods: all_pods,
            daemon_logs,
            operators: self.list(&cluster_operators()).await?,
            plugin_daemonset: plugin_daemonset.map(|d| serde_json::to_value(d).expect("objects serialize")),
            baseline: baseline.to_vec(),
        })
    }
}

/// Wakes on every change of the watched objects (a kube-runtime watcher, with backoff across
/// API outages), or after `idle` without one, so a step re-reads the cluster when it changes
/// instead of on a timer.
struct Changes {
    stream: std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<kube::runtime::watcher::Event<DynamicObject>, kube::runtime::watcher::Error>> + Send>,
    >,
    idle: Duration,
}

impl Changes {
    fn watch(api: Api<DynamicObject>, fields: Option<&str>, idle: Duration) -> Changes {
        use kube::runtime::{WatchStreamExt, watcher};
        let mut config = watcher::Config::default();
        if let Some(fields) = fields {
            config = config.fields(fields);
        }
        Changes { stream: Box::pin(watcher(api, config).default_backoff()), idle }
    }

    async fn next(&mut self) {
        use futures::StreamExt;
        tokio::select! {
            _ = self.stream.next() => {}
            () = tokio::time::sleep(self.idle) => {}
        }
    }
}

fn str_at(value: &Value, pointer: &str) -> String {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn name_of(value: &Value) -> String {
    str_at(value, "/metadata/name")
}

fn ready_of(node: &Value) -> String {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["status"].as_str())
        .unwrap_or("Unknown")
        .to_owned()
}

/// `x.y.z` → (x, y). Pure.
fn minor_version(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The flow the cluster's release requires, with the reason; Err: no migration there. Pure.
///
/// - up to 4.7 the network operator takes the migration annotation and the MCO renders
///   `configure-ovs.sh` from `status.networkType` (cluster-network-operator 4.7
///   `pkg/controller/operconfig/operconfig_controller.go`, `Reconcile`): the seed's order;
/// - 4.8-4.16 the annotation is ignored, a type change needs an applied `spec.migration`
///   (`pkg/network/render.go`, `isDefaultNetworkChangeSafe`) and the MCO renders from
///   `status.migration` (machine-config-operator `pkg/operator/render.go`): the two-phase order
///   of openshift-docs `modules/nw-ovn-kubernetes-migration.adoc`;
/// - 4.17+ has no OpenShift SDN.
pub fn flow_for(version: &str) -> Result<(Flow, String), String> {
    match minor_version(version) {
        Some((4, minor)) if minor <= 7 => Ok((
            Flow::Seed,
            format!(
                "OpenShift {version} (4.5-4.7): the network operator honours the network-migration annotation and the MCO renders configure-ovs.sh from status.networkType, so the seed document's order applies"
            ),
        )),
        Some((4, minor)) if minor <= 16 => Ok((
            Flow::TwoPhase,
            format!(
                "OpenShift {version} (4.8-4.16): the network operator ignores the annotation and refuses a type change until spec.migration is applied; the MCO renders configure-ovs.sh from status.migration, so the new config rolls out first (pools unpaused), then the switch"
            ),
        )),
        Some((4, _)) => Err(format!(
            "OpenShift {version} has no OpenShift SDN (removed in 4.17): there is nothing to migrate; clusters upgrade to 4.17 only once they run OVN-Kubernetes"
        )),
        _ => Err(format!("cannot tell the flow from ClusterVersion {version:?}: pass --flow seed or --flow two-phase")),
    }
}

fn source_type(target: &str) -> &'static str {
    if target == "OVNKubernetes" { "OpenShiftSDN" } else { "OVNKubernetes" }
}

fn old_namespace(target: &str) -> &'static str {
    if target == "OVNKubernetes" { "openshift-sdn" } else { "openshift-ovn-kubernetes" }
}

fn migrations_root(settings: &Settings) -> PathBuf {
    settings.state_dir.join("migrations")
}

/// The newest migration under the state directory that is not finished (step 11 not done).
/// The newest unfinished migration of *this* cluster under the state directory: another
/// cluster's (another context of the same kubeconfig) is none of this command's business.
fn migration_in_progress(root: &Path, cluster: &fleetboot_core::journal::ClusterIdentity) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir(root).ok()?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.join("migration.jsonl").exists()).collect();
    dirs.sort();
    dirs.into_iter().rev().find(|d| {
        record::load(&d.join("migration.jsonl"))
            .is_ok_and(|(_, s)| !s.is_over() && s.cluster.as_ref().is_none_or(|journaled| journaled.same_cluster(cluster)))
    })
}

async fn connect(args: &ClusterArgs, settings: &Settings) -> Result<Target, Error> {
    let connection = crate::adapters::kube::ClusterConnection::open(&crate::commands::cluster_target(args, settings)).await?;
    Ok(Target { client: connection.client.clone(), connection })
}

/// What a fresh start found out before the journal existed.
struct Start {
    flow: Flow,
    reason: String,
    version: String,
    warnings: Vec<String>,
    failing_pods: Vec<String>,
    network_options: Option<Value>,
    /// The unfinished migration this one (a rollback) takes over from.
    supersedes: Option<PathBuf>,
}

/// What the options step merges into `Network.operator` `spec.defaultNetwork`. Pure.
fn network_options(args: &MigrateArgs, target: &str) -> Option<Value> {
    let mut config = serde_json::Map::new();
    let mut put = |path: &[&str], value: Value| {
        let mut at = &mut config;
        for key in &path[..path.len() - 1] {
            at = at.entry(key.to_string()).or_insert_with(|| json!({})).as_object_mut().expect("objects");
        }
        at.insert(path[path.len() - 1].to_owned(), value);
    };
    if let Some(mtu) = args.mtu {
        put(&["mtu"], json!(mtu));
    }
    if target == "OVNKubernetes" {
        if let Some(port) = args.geneve_port {
            put(&["genevePort"], json!(port));
        }
        if let Some(subnet) = &args.v4_internal_subnet {
            put(&["v4InternalSubnet"], json!(subnet));
        }
        if let Some(subnet) = &args.transit_switch_subnet {
            put(&["ipv4", "internalTransitSwitchSubnet"], json!(subnet));
        }
        if let Some(subnet) = &args.masquerade_subnet {
            put(&["gatewayConfig", "ipv4", "internalMasqueradeSubnet"], json!(subnet));
        }
        if args.routing_via_host {
            put(&["gatewayConfig", "routingViaHost"], json!(true));
        }
        if args.ip_forwarding_global {
            put(&["gatewayConfig", "ipForwarding"], json!("Global"));
        }
    } else if let Some(port) = args.vxlan_port {
        put(&["vxlanPort"], json!(port));
    }
    let key = if target == "OVNKubernetes" { "ovnKubernetesConfig" } else { "openshiftSDNConfig" };
    (!config.is_empty()).then(|| json!({ key: config }))
}

pub async fn migrate(args: MigrateArgs, config: Option<&Path>) -> Result<ExitCode, Error> {
    let settings = crate::commands::load_settings(config, Layer::default())?;
    let cluster = connect(&args.cluster, &settings).await?;
    let root = migrations_root(&settings);
    let existing = match &args.dir {
        Some(dir) => dir.join("migration.jsonl").exists().then(|| dir.clone()),
        None => migration_in_progress(&root, &cluster.connection.identity),
    };
    let existing_state = match &existing {
        Some(dir) => Some(record::load(&dir.join("migration.jsonl")).map_err(MigrateError::from)?.1),
        None => None,
    };
    // A migration's journal (named with --dir) belongs to its cluster alone.
    if let (Some(dir), Some(journaled)) = (&existing, existing_state.as_ref().and_then(|s| s.cluster.as_ref()))
        && !journaled.same_cluster(&cluster.connection.identity)
    {
        return Err(Error::WrongCluster {
            journal: dir.join("migration.jsonl"),
            journaled: journaled.clone(),
            given: cluster.connection.identity.clone(),
        });
    }
    let continuing = args.resume || args.cleanup;
    // A migration that failed or was interrupted may be rolled back: a new migration towards the
    // other type takes over from it (openshift-docs `modules/nw-ovn-kubernetes-rollback.adoc`).
    let supersedes = match (&existing, &existing_state) {
        (Some(dir), Some(s)) if !continuing && s.target != args.to => Some(dir.clone()),
        _ => None,
    };
    let dir = match (&existing, continuing) {
        _ if supersedes.is_some() => root.join(crate::engine::reboot::new_run_id()),
        (Some(dir), _) if !continuing && !args.plan => {
            return Err(MigrateError::State(format!(
                "a migration to {} is in progress ({}); continue it with --resume, or roll it back with --to {}",
                existing_state.as_ref().map_or("?", |s| s.target.as_str()),
                dir.display(),
                source_type(existing_state.as_ref().map_or("OVNKubernetes", |s| s.target.as_str()))
            ))
            .into());
        }
        (Some(dir), _) => dir.clone(),
        (None, true) => return Err(MigrateError::State(format!("no migration in progress under {} to resume", root.display())).into()),
        (None, false) => args.dir.clone().unwrap_or_else(|| root.join(crate::engine::reboot::new_run_id())),
    };
    let journal_path = dir.join("migration.jsonl");
    let (_, state) = if journal_path.exists() {
        record::load(&journal_path).map_err(MigrateError::from)?
    } else {
        (Vec::new(), MigrationState::default())
    };

    let mut problems = checks::check_mtu_and_port(args.mtu, args.geneve_port, args.node_mtu);
    if args.to == "OpenShiftSDN" && (args.geneve_port.is_some() || args.v4_internal_subnet.is_some() || args.routing_via_host) {
        problems.push("--geneve-port, the internal subnets and the gateway options configure OVN-Kubernetes; a rollback to OpenShiftSDN takes --mtu and --vxlan-port".into());
    }
    if args.to == "OVNKubernetes" && args.vxlan_port.is_some() {
        problems.push("--vxlan-port configures OpenShift SDN (a rollback); OVN-Kubernetes takes --geneve-port".into());
    }
    if !problems.is_empty() {
        return Err(MigrateError::Preflight(problems).into());
    }
    let version = cluster.get(&cluster_versions(), "version").await.map(|v| str_at(&v, "/status/desired/version")).unwrap_or_default();
    let (flow, reason) = match state.flow {
        Some(flow) => (flow, format!("the {} flow this migration started with", flow.name())),
        None => {
            if minor_version(&version).is_some_and(|v| v >= (4, 17)) {
                return Err(MigrateError::Preflight(vec![flow_for(&version).unwrap_err()]).into());
            }
            let forced = match args.flow.as_str() {
                "seed" => Some(Flow::Seed),
                "two-phase" => Some(Flow::TwoPhase),
                _ => None,
            };
            match (forced, flow_for(&version)) {
                (None, Ok(required)) => required,
                (None, Err(e)) => return Err(MigrateError::Preflight(vec![e]).into()),
                (Some(forced), Ok((required, _))) if forced != required => {
                    let warning = format!(
                        "WARNING: --flow {} overrides the {} flow OpenShift {version} requires: its operators refuse or break the other order (nodes without br-ex, a refused type change). Only for a cluster whose operators you know behave otherwise.",
                        forced.name(),
                        required.name()
                    );
                    eprintln!("\n{}\n{warning}\n{}\n", "!".repeat(78), "!".repeat(78));
                    (forced, format!("forced by --flow {} against the release's {} flow", forced.name(), required.name()))
                }
                (Some(forced), _) => (forced, format!("--flow {}", forced.name())),
            }
        }
    };
    let subnets = checks::InternalSubnets {
        join: args.v4_internal_subnet.clone(),
        transit: args.transit_switch_subnet.clone(),
        masquerade: args.masquerade_subnet.clone(),
    };
    if args.plan {
        return plan(&args, &cluster, &state, flow, &reason, &version, &dir, &subnets, supersedes.is_some()).await;
    }
    let mut start = Start {
        flow,
        reason,
        version: version.clone(),
        warnings: Vec::new(),
        failing_pods: Vec::new(),
        network_options: network_options(&args, &args.to),
        supersedes: supersedes.clone(),
    };
    if state.run_id.is_empty() {
        // A fresh start: refuse before the journal even exists, and nothing changes.
        let snapshot = cluster.snapshot().await?;
        let findings = checks::preflight(
            &snapshot,
            &checks::PreflightRequest {
                target: &args.to,
                flow,
                etcd_backup_confirmed: args.etcd_backup_confirmed,
                rollback_after_failure: supersedes.is_some(),
                subnets: &subnets,
                release_minor: minor_version(&version).map(|v| v.1),
            },
        );
        if !findings.refusals.is_empty() {
            return Err(MigrateError::Preflight(findings.refusals).into());
        }
        start.warnings = findings.warnings;
        start.failing_pods = checks::failing_pods(&snapshot.pods);
    }
    // One migration per cluster: the lease is held from here to the end, and a resume on this
    // machine reclaims the one its own killed process left.
    let run_id = if state.run_id.is_empty() {
        dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    } else {
        state.run_id.clone()
    };
    let (identity, host) = crate::adapters::kube::this_process_identity(&run_id);
    let reclaimable =
        |holder: &str| crate::adapters::kube::holder_is_dead_run(holder, &host, &run_id, crate::adapters::kube::process_alive);
    let lease = crate::adapters::kube::LeaseLock::acquire(
        &cluster.client,
        "kube-system",
        crate::adapters::kube::MIGRATION_LEASE_NAME,
        &identity,
        Duration::from_secs(30),
        args.break_lock,
        reclaimable,
    )
    .await?;
    let outcome = run_under_lease(&args, config, &cluster, &dir, &journal_path, state, start, lease.taken_from.clone()).await;
    lease.release().await;
    outcome
}

#[allow(clippy::too_many_arguments)]
async fn run_under_lease(
    args: &MigrateArgs,
    config: Option<&Path>,
    cluster: &Target,
    dir: &Path,
    journal_path: &Path,
    mut state: MigrationState,
    start: Start,
    taken_from: Option<String>,
) -> Result<ExitCode, Error> {
    let mut writer = MigrationWriter::open(journal_path).map_err(MigrateError::from)?;
    let mut log = |state: &mut MigrationState, entry: MigrationEntry| -> Result<(), MigrateError> {
        let record = writer.append(entry)?;
        state.apply(&record);
        Ok(())
    };
    if state.run_id.is_empty() {
        let run_id = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        log(
            &mut state,
            MigrationEntry::MigrationStarted {
                run_id,
                target: args.to.clone(),
                flow: start.flow,
                version: start.version.clone(),
                failing_pods: start.failing_pods.clone(),
                network_options: start.network_options.clone(),
                mtu: args.mtu,
                geneve_port: args.geneve_port,
                reboot_concurrency: args.reboot_concurrency,
                cluster: Some(cluster.connection.identity.clone()),
            },
        )?;
        println!("migration to {} · {} flow ({}) · journal {}", args.to, start.flow.name(), start.reason, journal_path.display());
        if let Some(old) = &start.supersedes {
            let mut previous = MigrationWriter::open(&old.join("migration.jsonl")).map_err(MigrateError::from)?;
            previous.append(MigrationEntry::Superseded { by: dir.to_owned() }).map_err(MigrateError::from)?;
            let message = format!("rolling back the unfinished migration {}", old.display());
            println!("{message}");
            log(&mut state, MigrationEntry::Warning { message })?;
        }
        for message in &start.warnings {
            eprintln!("warning: {message}");
            log(&mut state, MigrationEntry::Warning { message: message.clone() })?;
        }
    } else {
        log(&mut state, MigrationEntry::MigrationResumed { pid: std::process::id() })?;
        println!("resuming the migration to {} ({} flow) from {}", state.target, start.flow.name(), journal_path.display());
    }
    if let Some(previous) = taken_from {
        let message = format!("took the migration lease over from {previous}");
        eprintln!("warning: {message}");
        log(&mut state, MigrationEntry::Warning { message })?;
    }
    let run = Migration { args, config, cluster, dir: dir.to_owned(), flow: start.flow };
    let outcome = run.steps(&mut state, &mut log).await;
    let report = report::write(dir, &state);
    match &report {
        Ok(files) => println!("report: {}", files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")),
        Err(e) => eprintln!("warning: could not write the report: {e}"),
    }
    outcome
}

struct Migration<'a> {
    args: &'a MigrateArgs,
    config: Option<&'a Path>,
    cluster: &'a Target,
    dir: PathBuf,
    flow: Flow,
}

type Log<'l> = dyn FnMut(&mut MigrationState, MigrationEntry) -> Result<(), MigrateError> + 'l;

impl Migration<'_> {
    /// Runs a reboot job on this migration's own cluster connection (never a rebuilt command
    /// line, which once lost `--context` and rebooted another cluster's nodes).
    async fn run_reboot(
        &self,
        selection: Selection,
        journal: Option<PathBuf>,
        groups: GroupPolicy,
        concurrency: Option<usize>,
    ) -> Result<ExitCode, MigrateError> {
        let mut flags = Layer::default();
        flags.output.format = Some(self.args.output.clone());
        flags.reboot.concurrency = concurrency;
        let failed = |e: Error| MigrateError::State(e.to_string());
        let settings = crate::commands::load_settings(self.config, flags).map_err(failed)?;
        let job = RebootJob {
            settings,
            selection,
            cluster: Some(self.cluster.connection.clone()),
            journal,
            groups,
            drain: None,
            lease: LeasePolicy::default(),
            // A resumed reboot run keeps the limits the migration gives it.
            overrides: SettingsOverrides { concurrency, ..SettingsOverrides::default() },
        };
        let prepared = prepare(job).await.map_err(failed)?;
        let (trigger, abort) = tokio::sync::watch::channel(Abort::No);
        crate::commands::install_interrupts(trigger.clone());
        let mut reporter = Reporter::new(crate::commands::style_for(prepared.settings().output), std::io::stdout().lock());
        let summary = prepared.execute((trigger, abort), |event| reporter.report(event)).await.map_err(failed)?;
        Ok(summary.exit_code())
    }

    fn line(&self, step: Step, message: &str) {
        println!("[step {:>4}] {}: {message}", self.flow.number(step), step.title());
    }

    async fn steps(&self, state: &mut MigrationState, log: &mut Log<'_>) -> Result<ExitCode, Error> {
        for &step in self.flow.steps() {
            if state.is_done(step) {
                continue;
            }
            if step == Step::Cleanup && !self.args.cleanup {
                println!(
                    "verification passed. The clean-up ({}, delete {}) runs with: fleetboot migrate --cleanup",
                    match self.flow {
                        Flow::Seed => "remove the migration annotation",
                        Flow::TwoPhase => "spec.migration: null",
                    },
                    old_namespace(&state.target)
                );
                return Ok(ExitCode::Ok);
            }
            log(state, MigrationEntry::StepStarted { step })?;
            match self.step(step, state, log).await {
                Ok(detail) => {
                    self.line(step, &format!("done{}", if detail.is_empty() { String::new() } else { format!(": {detail}") }));
                    log(state, MigrationEntry::StepDone { step, detail })?;
                }
                Err(StepError::Stop(code, error)) => {
                    self.line(step, &format!("FAILED: {error}"));
                    log(state, MigrationEntry::StepFailed { step, error })?;
                    if self.flow == Flow::Seed && step >= Step::PausePools && step < Step::ResumePools {
                        println!("the pools stay paused; fix the cause, then: fleetboot migrate --resume");
                    } else {
                        println!(
                            "fix the cause, then: fleetboot migrate --resume (or roll back: fleetboot migrate --to {})",
                            source_type(&state.target)
                        );
                    }
                    return Ok(code);
                }
                Err(StepError::Fatal(e)) => {
                    let _ = log(state, MigrationEntry::StepFailed { step, error: e.to_string() });
                    return Err(e.into());
                }
            }
        }
        println!("migration to {} complete", state.target);
        Ok(ExitCode::Ok)
    }

    /// Waits until `Network.config/cluster` satisfies `applied` (the network operator applied
    /// the change), failing at once with the operator's own message when it refuses the change
    /// (the `network` ClusterOperator Degraded), or at `--operator-timeout`.
    async fn wait_operator(&self, step: Step, what: &str, applied: impl Fn(&Value) -> bool) -> Result<(), StepError> {
        let c = self.cluster;
        let mut changes = Changes::watch(c.cluster_scoped(&network_config()), Some("metadata.name=cluster"), Duration::from_secs(1));
        let deadline = tokio::time::Instant::now() + Duration::from(self.args.operator_timeout);
        let mut said = false;
        loop {
            let config = c.get(&network_config(), "cluster").await?;
            if applied(&config) {
                return Ok(());
            }
            let operator = c.get(&cluster_operators(), "network").await?;
            let degraded = operator
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|c| c.iter().find(|c| c["type"] == "Degraded" && c["status"] == "True"))
                .and_then(|c| c["message"].as_str().map(str::to_owned));
            if let Some(message) = degraded.filter(|m| m.contains("Not applying")) {
                return Err(StepError::Stop(ExitCode::HostsFailed, format!("the network operator refused the change: {message}")));
            }
            if !said {
                self.line(step, &format!("waiting for the network operator: {what}"));
                said = true;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StepError::Stop(
                    ExitCode::HostsFailed,
                    format!("the network operator did not apply the change within {}: {what}", self.args.operator_timeout),
                ));
            }
            changes.next().await;
        }
    }

    async fn step(&self, step: Step, state: &mut MigrationState, log: &mut Log<'_>) -> Result<String, StepError> {
        let target = state.target.clone();
        let c = self.cluster;
        match step {
            Step::Preflight => {
                // Checked before the journal was created; a resume finds the cluster mid-change.
                Ok(format!(
                    "cluster checked, etcd backup confirmed; {} pods already failing before the migration (not counted by verify)",
                    state.failing_pods.len()
                ))
            }
            Step::Backup => {
                let mut config = c.get(&network_config(), "cluster").await?;
                if let Some(meta) = config.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.remove("managedFields");
                }
                let file =
                    self.dir.join(format!("cluster-{}.yaml", if target == "OVNKubernetes" { "openshift-sdn" } else { "ovn-kubernetes" }));
                let yaml = checks::to_yaml(&config);
                match std::fs::read_to_string(&file) {
                    // Written by this migration before it was interrupted: keep the first one.
                    Ok(_) => Ok(format!("kept the existing backup {}", file.display())),
                    // Whole or not at all: a kill mid-write must not leave half a backup that a
                    // resume would then keep as the first one.
                    Err(_) => {
                        write_atomically(&file, yaml)?;
                        Ok(file.display().to_string())
                    }
                }
            }
            Step::ClearMigration => {
                let operator = c.get(&network_operator(), "cluster").await?;
                let set = operator.pointer("/spec/migration").is_some_and(|m| !m.is_null());
                if set {
                    c.merge(&network_operator(), "cluster", json!({"spec": {"migration": null}})).await?;
                }
                self.wait_operator(step, "status.migration cleared", |config| {
                    config.pointer("/status/migration").is_none_or(Value::is_null)
                })
                .await?;
                Ok(if set {
                    "Network.operator.openshift.io/cluster spec.migration: null, applied".into()
                } else {
                    "spec.migration was not set".into()
                })
            }
            Step::EnableMigration => match self.flow {
                Flow::Seed => {
                    c.merge(&network_operator(), "cluster", json!({"metadata": {"annotations": {MIGRATION_ANNOTATION: ""}}})).await?;
                    Ok(format!("annotated Network.operator.openshift.io/cluster with {MIGRATION_ANNOTATION}"))
                }
                Flow::TwoPhase => {
                    let mut migration = json!({"networkType": target});
                    if !self.args.skip_feature.is_empty() {
                        let on = |f: &str| !self.args.skip_feature.iter().any(|s| s == f);
                        migration["features"] =
                            json!({"egressIP": on("egress-ip"), "egressFirewall": on("egress-firewall"), "multicast": on("multicast")});
                    }
                    c.merge(&network_operator(), "cluster", json!({"spec": {"migration": migration}})).await?;
                    let wanted = target.clone();
                    self.wait_operator(step, &format!("status.migration.networkType = {target}"), move |config| {
                        config.pointer("/status/migration/networkType").and_then(Value::as_str) == Some(wanted.as_str())
                    })
                    .await?;
                    Ok(format!("Network.operator.openshift.io/cluster spec.migration.networkType = {target}, applied (status.migration)"))
                }
            },
            Step::PausePools => {
                let pools = c.list(&crate::adapters::kube::machine_config_pools()).await?;
                let paused = |p: &Value| p.pointer("/spec/paused") == Some(&json!(true));
                let already: Vec<String> = pools.iter().filter(|p| paused(p)).map(name_of).collect();
                let to_pause: Vec<String> = pools.iter().filter(|p| !paused(p)).map(name_of).collect();
                log(state, MigrationEntry::PoolsFound { already_paused: already, to_pause })?;
                for pool in state.to_pause.clone() {
                    c.merge(&crate::adapters::kube::machine_config_pools(), &pool, json!({"spec": {"paused": true}})).await?;
                }
                let kept = state.already_paused.clone().unwrap_or_default();
                Ok(format!(
                    "paused {}{}",
                    state.to_pause.join(", "),
                    if kept.is_empty() { String::new() } else { format!(" (already paused, left so: {})", kept.join(", ")) }
                ))
            }
            Step::RolloutConfig => self.wait_rollout(step, None, Some(format!("configure-ovs.sh {target}"))).await,
            Step::SetNetworkType => {
                // The multus generation before the switch is recorded once: a resumed step must
                // not take the generation the switch already bumped for "before" (it would wait
                // for a rollout that already happened), and a failed read stops the step rather
                // than recording 0 (which any generation would pass).
                let recorded = self.dir.join("multus-generation-before");
                if !recorded.exists() {
                    let before = c
                        .namespaced(&daemon_sets(), "openshift-multus")
                        .get("multus")
                        .await
                        .map_err(api_error("read the multus DaemonSet's generation before the switch"))?
                        .metadata
                        .generation
                        .ok_or_else(|| MigrateError::State("the multus DaemonSet has no metadata.generation".into()))?;
                    let config = c.get(&network_config(), "cluster").await?;
                    // Already running the target (a rollback of a migration that failed before its
                    // switch): no multus rollout will follow.
                    let already = str_at(&config, "/status/networkType") == target;
                    write_atomically(&recorded, if already { "-1".to_owned() } else { before.to_string() })?;
                }
                c.merge(&network_config(), "cluster", json!({"spec": {"networkType": target}})).await?;
                let wanted = target.clone();
                self.wait_operator(step, &format!("status.networkType = {target}"), move |config| {
                    str_at(config, "/status/networkType") == wanted
                })
                .await?;
                Ok(format!("network.config.openshift.io/cluster spec.networkType = {target}, applied (status.networkType)"))
            }
            Step::MtuAndPort => {
                let Some(options) = state.network_options.clone() else {
                    return Ok("not asked for: left as it is".into());
                };
                let detail = format!("spec.defaultNetwork += {options}");
                c.merge(&network_operator(), "cluster", json!({"spec": {"defaultNetwork": options}})).await?;
                Ok(detail)
            }
            Step::WaitMultus => self.wait_multus(state, log).await,
            Step::RebootNodes => self.reboot_nodes(state, log).await,
            Step::ResumePools => {
                // The gate: every node proven rebooted by step 7 and Ready now.
                let journal = state.reboot_journal.clone().ok_or_else(|| MigrateError::State("step 7 left no reboot journal".into()))?;
                let (_, reboot) = crate::adapters::journal::load(&journal).map_err(|e| MigrateError::State(e.to_string()))?;
                let unproven: Vec<&String> =
                    reboot.records.iter().filter(|(_, r)| r.phase != crate::adapters::journal::Phase::Confirmed).map(|(n, _)| n).collect();
                let snapshot = c.snapshot().await?;
                let not_ready: Vec<&String> = snapshot.nodes.iter().filter(|(_, r)| r != "True").map(|(n, _)| n).collect();
                if !unproven.is_empty() || !not_ready.is_empty() {
                    return Err(StepError::Stop(
                        ExitCode::HostsFailed,
                        format!("not resuming the pools: reboot not proven for {unproven:?}, not Ready: {not_ready:?}"),
                    ));
                }
                for pool in &state.to_pause {
                    c.merge(&crate::adapters::kube::machine_config_pools(), pool, json!({"spec": {"paused": false}})).await?;
                }
                Ok(format!("resumed {}", state.to_pause.join(", ")))
            }
            Step::WaitRollout => self.wait_rollout(step, Some(state.to_pause.clone()), None).await,
            Step::Verify => self.verify(state, log).await,
            Step::Cleanup => {
                if !state.last_verify.as_ref().is_some_and(|(passed, _)| *passed) {
                    return Err(StepError::Stop(ExitCode::HostsFailed, "the last verification did not pass: no cleanup".into()));
                }
                match self.flow {
                    Flow::Seed => {
                        c.merge(&network_operator(), "cluster", json!({"metadata": {"annotations": {MIGRATION_ANNOTATION: null}}})).await?
                    }
                    Flow::TwoPhase => c.merge(&network_operator(), "cluster", json!({"spec": {"migration": null}})).await?,
                }
                let namespace = old_namespace(&target);
                match c.cluster_scoped(&namespaces()).delete(namespace, &Default::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(api_error(&format!("delete namespace {namespace}"))(e).into()),
                }
                Ok(format!("migration setting removed, namespace {namespace} deleted"))
            }
        }
    }

    fn warn_if_paused_long(&self, state: &mut MigrationState, log: &mut Log<'_>, warned: &mut bool) -> Result<(), MigrateError> {
        let Some(since) = state.paused_at_ms else { return Ok(()) };
        let paused_for = Duration::from_millis(crate::adapters::system::now_ms().saturating_sub(since));
        if !*warned && paused_for > Duration::from(self.args.paused_warning) {
            *warned = true;
            let message = format!(
                "the MachineConfigPools have been paused for {}: certificate rotation is paused with them; finish the migration soon",
                humantime::format_duration(Duration::from_secs(paused_for.as_secs()))
            );
            eprintln!("warning: {message}");
            log(state, MigrationEntry::Warning { message })?;
        }
        Ok(())
    }

    async fn wait_multus(&self, state: &mut MigrationState, log: &mut Log<'_>) -> Result<String, StepError> {
        let before: i64 =
            std::fs::read_to_string(self.dir.join("multus-generation-before")).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
        if before < 0 {
            return Ok(format!("the cluster already ran {}: the network operator starts no multus rollout", state.target));
        }
        let api = self.cluster.namespaced(&daemon_sets(), "openshift-multus");
        let mut changes = Changes::watch(api.clone(), Some("metadata.name=multus"), self.args.poll_interval.into());
        let deadline = tokio::time::Instant::now() + Duration::from(self.args.multus_timeout);
        let mut last = String::new();
        let mut warned = false;
        loop {
            self.warn_if_paused_long(state, log, &mut warned)?;
            let ds = api.get("multus").await.map_err(api_error("get daemonset openshift-multus/multus"))?;
            let generation = ds.metadata.generation.unwrap_or(0);
            let status = |k: &str| ds.data.pointer(&format!("/status/{k}")).and_then(Value::as_i64).unwrap_or(0);
            let (desired, updated, available, observed) = (
                status("desiredNumberScheduled"),
                status("updatedNumberScheduled"),
                status("numberAvailable"),
                status("observedGeneration"),
            );
            let progress = if generation > before {
                format!("{updated} of {desired} updated, {available} available")
            } else {
                "waiting for the network operator to start the rollout".to_owned()
            };
            if progress != last {
                self.line(Step::WaitMultus, &progress);
                last = progress.clone();
            }
            // The rollout the switch started: a newer generation, observed and complete.
            if generation > before && observed >= generation && updated == desired && available == desired && desired > 0 {
                return Ok(progress);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StepError::Stop(
                    ExitCode::HostsFailed,
                    format!("multus did not finish rolling out within {}: {progress}", self.args.multus_timeout),
                ));
            }
            changes.next().await;
        }
    }

    async fn reboot_nodes(&self, state: &mut MigrationState, log: &mut Log<'_>) -> Result<String, StepError> {
        let journal = match &state.reboot_journal {
            Some(path) => path.clone(),
            None => {
                let path = self.dir.join("reboot.jsonl");
                log(state, MigrationEntry::RebootJournal { path: path.clone() })?;
                path
            }
        };
        // A resumed reboot run keeps the limits the migration started it with.
        let groups = match state.reboot_concurrency {
            Some(n) => GroupPolicy { group_concurrency: Some(n), ..GroupPolicy::default() },
            None => GroupPolicy { all_at_once: true, ..GroupPolicy::default() },
        };
        let selection = if journal.exists() {
            self.line(Step::RebootNodes, &format!("continuing the reboot run {}", journal.display()));
            Selection::Resume(journal.clone())
        } else {
            Selection::Nodes(NodeSelection { address_type: "InternalIP".into(), ..NodeSelection::default() })
        };
        let mut warned = false;
        self.warn_if_paused_long(state, log, &mut warned)?;
        let code = self.run_reboot(selection, Some(journal.clone()), groups, state.reboot_concurrency).await?;
        let (_, reboot) = crate::adapters::journal::load(&journal).map_err(|e| MigrateError::State(e.to_string()))?;
        let proven = reboot.records.values().filter(|r| r.phase == crate::adapters::journal::Phase::Confirmed).count();
        let fallbacks = reboot.records.values().filter(|r| r.attempts.iter().any(|a| a.bmc.is_some())).count();
        if code != ExitCode::Ok {
            let failed: Vec<String> = reboot
                .records
                .iter()
                .filter(|(_, r)| r.phase != crate::adapters::journal::Phase::Confirmed)
                .map(|(n, r)| format!("{n} ({})", r.failure.as_ref().map_or("not finished".to_owned(), |(_, e)| e.clone())))
                .collect();
            return Err(StepError::Stop(
                code,
                format!("{proven} of {} nodes proven rebooted; not: {}", reboot.records.len(), failed.join("; ")),
            ));
        }
        Ok(format!(
            "{proven} nodes proven rebooted (boot ID changed, Ready in the API){}",
            if fallbacks > 0 { format!("; {fallbacks} through their BMC") } else { String::new() }
        ))
    }

    /// Watches the MCO roll its rendered configs out, with counts and an ETA per pool, until
    /// every pool (`pools`, or every pool there is) is Updated (every machine updated, ready
    /// and available, `status.configuration` = `spec.configuration`) and, with `marker`, the
    /// rendered config of each pool contains it (the phase-1 configs run `configure-ovs.sh
    /// <target>`).
    async fn wait_rollout(&self, step: Step, pools: Option<Vec<String>>, marker: Option<String>) -> Result<String, StepError> {
        let pools_api = crate::adapters::kube::machine_config_pools();
        let mut changes = Changes::watch(self.cluster.cluster_scoped(&pools_api), None, self.args.poll_interval.into());
        let deadline = tokio::time::Instant::now() + Duration::from(self.args.rollout_timeout);
        let started = std::time::Instant::now();
        let mut last = std::collections::BTreeMap::<String, String>::new();
        let mut names: Vec<String> = Vec::new();
        loop {
            let all_pools = self.cluster.list(&pools_api).await?;
            let nodes = self.cluster.list(&nodes()).await?;
            let mut all_done = true;
            names.clear();
            for pool in all_pools.iter().filter(|p| pools.as_ref().is_none_or(|names| names.contains(&name_of(p)))) {
                let pool_name = name_of(pool);
                names.push(pool_name.clone());
                let count = |k: &str| pool.pointer(&format!("/status/{k}")).and_then(Value::as_u64).unwrap_or(0);
                let (machines, updated, degraded) = (count("machineCount"), count("updatedMachineCount"), count("degradedMachineCount"));
                if degraded > 0 {
                    let why = pool
                        .pointer("/status/conditions")
                        .and_then(Value::as_array)
                        .and_then(|c| c.iter().find(|c| c["type"] == "NodeDegraded" && c["status"] == "True"))
                        .and_then(|c| c["message"].as_str())
                        .unwrap_or("");
                    return Err(StepError::Stop(ExitCode::HostsFailed, format!("pool {pool_name} has {degraded} degraded machines {why}")));
                }
                let spec = str_at(pool, "/spec/configuration/name");
                let rendered_ok = match &marker {
                    None => true,
                    Some(marker) => {
                        self.cluster.get(&machine_configs(), &spec).await.is_ok_and(|mc| mc.to_string().contains(marker.as_str()))
                    }
                };
                let done = rendered_ok
                    && updated == machines
                    && str_at(pool, "/status/configuration/name") == spec
                    && condition_true(pool, "Updated");
                all_done &= done;
                let working: Vec<String> = nodes
                    .iter()
                    .filter(|n| str_at(n, "/metadata/annotations/machineconfiguration.openshift.io~1state") == "Working")
                    .filter(|n| pool_of_node(n, pool))
                    .map(name_of)
                    .collect();
                let per_node = if updated > 0 { Some(started.elapsed() / updated as u32) } else { None };
                let eta = per_node.map(|p| {
                    humantime::format_duration(Duration::from_secs((p * machines.saturating_sub(updated) as u32).as_secs())).to_string()
                });
                let progress = if done {
                    format!("{pool_name}: all {machines} updated to {spec}")
                } else if !rendered_ok {
                    format!("{pool_name}: waiting for the MCO to render a config with {}", marker.as_deref().unwrap_or_default())
                } else {
                    format!(
                        "{pool_name}: {updated} of {machines} updated to {spec}{}",
                        if working.is_empty() { String::new() } else { format!(" · updating {}", working.join(", ")) },
                    )
                };
                // A new line when the pool moves, not when only the estimate does.
                if last.get(&pool_name) != Some(&progress) {
                    let eta = if done { String::new() } else { eta.map_or(String::new(), |e| format!(" · ETA {e}")) };
                    self.line(step, &format!("{progress}{eta}"));
                    last.insert(pool_name, progress);
                }
            }
            if all_done {
                return Ok(format!(
                    "pools {} updated in {}{}",
                    names.join(", "),
                    humantime::format_duration(Duration::from_secs(started.elapsed().as_secs())),
                    marker.map_or(String::new(), |m| format!("; their rendered configs run {m}"))
                ));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StepError::Stop(
                    ExitCode::HostsFailed,
                    format!("the MCO rollout did not finish within {}", self.args.rollout_timeout),
                ));
            }
            changes.next().await;
        }
    }

    /// Waits (up to `--operator-timeout`) until no ClusterOperator is Progressing: the
    /// operators finish what the reboots started before the cluster is judged.
    async fn settle(&self) -> Result<(), StepError> {
        let deadline = tokio::time::Instant::now() + Duration::from(self.args.operator_timeout);
        let mut changes = Changes::watch(self.cluster.cluster_scoped(&cluster_operators()), None, Duration::from_secs(1));
        let mut last = String::new();
        loop {
            let progressing: Vec<String> =
                self.cluster.list(&cluster_operators()).await?.iter().filter(|o| condition_true(o, "Progressing")).map(name_of).collect();
            if progressing.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(());
            }
            let now = format!("waiting for the ClusterOperators to settle: {} Progressing", progressing.join(", "));
            if now != last {
                self.line(Step::Verify, &now);
                last = now;
            }
            changes.next().await;
        }
    }

    async fn verify(&self, state: &mut MigrationState, log: &mut Log<'_>) -> Result<String, StepError> {
        let target = state.target.clone();
        self.settle().await?;
        let baseline = state.failing_pods.clone();
        let mut inputs = self.cluster.verify_inputs(&target, &baseline).await?;
        let mut results = checks::verify(&inputs, &target);
        print!("{}", render_checks(&results));
        let passed = results.iter().all(|c| c.passed);
        log(state, MigrationEntry::Verified { passed, checks: results.clone() })?;
        let error_nodes = checks::nodes_with_error_pods(&inputs.pods, &baseline);
        if !passed && self.args.reboot_error_nodes && !error_nodes.is_empty() {
            self.line(Step::Verify, &format!("rebooting the nodes that hold pods in error: {}", error_nodes.join(", ")));
            let journal = self.dir.join(format!("reboot-error-nodes-{}.jsonl", crate::adapters::system::now_ms()));
            let selection = Selection::Nodes(NodeSelection {
                names: error_nodes.clone(),
                address_type: "InternalIP".into(),
                ..NodeSelection::default()
            });
            let all_at_once = GroupPolicy { all_at_once: true, ..GroupPolicy::default() };
            let code = self.run_reboot(selection, Some(journal), all_at_once, None).await?;
            if code != ExitCode::Ok {
                return Err(StepError::Stop(code, format!("rebooting {} failed", error_nodes.join(", "))));
            }
            // Give the kubelets a moment to restart their pods, then look again.
            tokio::time::sleep(Duration::from(self.args.poll_interval).min(Duration::from_secs(5))).await;
            inputs = self.cluster.verify_inputs(&target, &baseline).await?;
            results = checks::verify(&inputs, &target);
            print!("{}", render_checks(&results));
            let passed = results.iter().all(|c| c.passed);
            log(state, MigrationEntry::Verified { passed, checks: results.clone() })?;
        }
        if results.iter().all(|c| c.passed) {
            Ok(format!("{} checks passed", results.len()))
        } else {
            let hint = if !error_nodes.is_empty() && !self.args.reboot_error_nodes {
                " (--reboot-error-nodes reboots the nodes of pods in error)"
            } else {
                ""
            };
            Err(StepError::Stop(
                ExitCode::HostsFailed,
                format!(
                    "{} of {} checks failed{hint}; fix, then fleetboot migrate --resume",
                    results.iter().filter(|c| !c.passed).count(),
                    results.len()
                ),
            ))
        }
    }
}

fn condition_true(object: &Value, kind: &str) -> bool {
    object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| c.iter().any(|c| c["type"] == kind && c["status"] == "True"))
}

fn pool_of_node(node: &Value, pool: &Value) -> bool {
    let labels = node.pointer("/metadata/labels");
    pool.pointer("/spec/nodeSelector/matchLabels")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v)))
}

enum StepError {
    /// The step did not succeed; the migration stops here with this exit code.
    Stop(ExitCode, String),
    /// fleetboot itself could not go on (the journal, the API).
    Fatal(MigrateError),
}

impl From<MigrateError> for StepError {
    fn from(e: MigrateError) -> StepError {
        StepError::Fatal(e)
    }
}

pub fn render_checks(results: &[Check]) -> String {
    let rows: Vec<Vec<String>> =
        results.iter().map(|c| vec![if c.passed { "PASS".into() } else { "FAIL".into() }, c.name.clone(), c.detail.clone()]).collect();
    fleetboot_core::table::table(&["RESULT", "CHECK", "DETAIL"], &rows)
}

#[allow(clippy::too_many_arguments)]
async fn plan(
    args: &MigrateArgs,
    cluster: &Target,
    state: &MigrationState,
    flow: Flow,
    reason: &str,
    version: &str,
    dir: &Path,
    subnets: &checks::InternalSubnets,
    rollback_after_failure: bool,
) -> Result<ExitCode, Error> {
    let target = if state.target.is_empty() { args.to.clone() } else { state.target.clone() };
    let snapshot = cluster.snapshot().await?;
    let findings = if state.run_id.is_empty() {
        checks::preflight(
            &snapshot,
            &checks::PreflightRequest {
                target: &target,
                flow,
                etcd_backup_confirmed: args.etcd_backup_confirmed,
                rollback_after_failure,
                subnets,
                release_minor: minor_version(version).map(|v| v.1),
            },
        )
    } else {
        checks::Findings::default()
    };
    let pools = cluster.list(&crate::adapters::kube::machine_config_pools()).await?;
    let (paused, unpaused): (Vec<&Value>, Vec<&Value>) = pools.iter().partition(|p| p.pointer("/spec/paused") == Some(&json!(true)));
    let names = |list: &[&Value]| list.iter().map(|p| name_of(p)).collect::<Vec<_>>().join(", ");
    println!("migration plan: {} → {target}, cluster {version}; nothing is changed", source_type(&target));
    println!("flow: {} — {reason}\n", flow.name());
    let status = |step: Step| if state.is_done(step) { "done " } else { "to do" };
    let options = network_options(args, &target);
    let rows: Vec<Vec<String>> = flow
        .steps()
        .iter()
        .map(|&step| {
            let what = match step {
                Step::Preflight if findings.refusals.is_empty() => format!(
                    "the cluster passes{}",
                    if findings.warnings.is_empty() { String::new() } else { format!("; WARNS: {}", findings.warnings.join("; ")) }
                ),
                Step::Preflight => format!("REFUSES: {}", findings.refusals.join("; ")),
                Step::Backup => format!("write network.config/cluster as YAML into {}", dir.display()),
                Step::ClearMigration => "Network.operator/cluster spec.migration: null; wait until the operator applied it".into(),
                Step::EnableMigration => match flow {
                    Flow::Seed => format!("annotate Network.operator/cluster {MIGRATION_ANNOTATION}=\"\""),
                    Flow::TwoPhase => format!(
                        "Network.operator/cluster spec.migration.networkType={target}{} (pools stay unpaused); wait for status.migration",
                        if args.skip_feature.is_empty() { String::new() } else { format!(", features off: {}", args.skip_feature.join(", ")) }
                    ),
                },
                Step::PausePools => format!(
                    "pause {}{}",
                    names(&unpaused),
                    if paused.is_empty() { String::new() } else { format!(" (already paused: {})", names(&paused)) }
                ),
                Step::RolloutConfig => format!(
                    "the MCO renders configure-ovs.sh {target} and rolls it out (drain, reboot) onto {}: watched with counts and ETA until every pool is Updated",
                    names(&pools.iter().collect::<Vec<_>>())
                ),
                Step::SetNetworkType => format!("network.config/cluster spec.networkType: {} → {target}", snapshot.spec_network_type),
                Step::MtuAndPort => match &options {
                    None => "skipped (no --mtu, --geneve-port, --vxlan-port, internal subnets or gateway options)".into(),
                    Some(options) => format!("Network.operator/cluster spec.defaultNetwork += {options}"),
                },
                Step::WaitMultus => "wait for openshift-multus/multus to roll out".into(),
                Step::RebootNodes => match args.reboot_concurrency {
                    None => {
                        format!("reboot all {} nodes at once (the document's way; --reboot-concurrency N to limit)", snapshot.nodes.len())
                    }
                    Some(n) => format!("reboot {} nodes, {n} at a time, control plane last", snapshot.nodes.len()),
                },
                Step::ResumePools => format!("once every node is proven back: unpause {}", names(&unpaused)),
                Step::WaitRollout => "watch the MCO roll the new config onto every node".into(),
                Step::Verify => "machine config state, rendered config, status.networkType, Ready nodes, pods in error (not those failing before), ClusterOperators, the network plugin on every node".into(),
                Step::Cleanup => format!(
                    "only with --cleanup after verify passed: {}, delete {}",
                    if flow == Flow::Seed { "remove the annotation" } else { "spec.migration: null" },
                    old_namespace(&target)
                ),
            };
            vec![flow.number(step), status(step).to_owned(), step.title().to_owned(), what]
        })
        .collect();
    print!("{}", fleetboot_core::table::table(&["STEP", "STATE", "WHAT", "CHANGE"], &rows));
    println!(
        "\nRed Hat's documentation for 4.14-4.16 asks not to automate this migration with a script: fleetboot runs it only when you start it, stops at every failure, journals each step and writes a report; review this plan first."
    );
    Ok(ExitCode::Ok)
}

/// The pods failing before the newest migration under the state directory started.
fn newest_baseline(root: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root) else { return Vec::new() };
    let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.join("migration.jsonl").exists()).collect();
    dirs.sort();
    dirs.last().and_then(|d| record::load(&d.join("migration.jsonl")).ok()).map(|(_, s)| s.failing_pods).unwrap_or_default()
}

pub async fn verify(args: VerifyArgs, config: Option<&Path>) -> Result<ExitCode, Error> {
    let settings = crate::commands::load_settings(config, Layer::default())?;
    let cluster = connect(&args.cluster, &settings).await?;
    let baseline = newest_baseline(&migrations_root(&settings));
    let inputs = cluster.verify_inputs(&args.to, &baseline).await?;
    let results = checks::verify(&inputs, &args.to);
    if args.output == "json" {
        println!("{}", serde_json::to_string_pretty(&results).expect("serializes"));
    } else {
        print!("{}", render_checks(&results));
    }
    Ok(if results.iter().all(|c| c.passed) { ExitCode::Ok } else { ExitCode::HostsFailed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flow_follows_the_cluster_version() {
        assert_eq!(flow_for("4.5.41").unwrap().0, Flow::Seed);
        assert_eq!(flow_for("4.7.60").unwrap().0, Flow::Seed);
        assert_eq!(flow_for("4.8.0").unwrap().0, Flow::TwoPhase);
        assert_eq!(flow_for("4.10.3").unwrap().0, Flow::TwoPhase);
        assert_eq!(flow_for("4.16.21").unwrap().0, Flow::TwoPhase);
        assert!(flow_for("4.17.0").unwrap_err().contains("no OpenShift SDN"));
        assert!(flow_for("").unwrap_err().contains("--flow"));
        assert!(flow_for("4.14.38").unwrap().1.contains("spec.migration"));
    }
}
