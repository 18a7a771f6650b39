//! `fleetboot migrate` and `fleetboot verify`: the OpenShift SDN → OVN-Kubernetes migration of
//! `procedure.md`, steps 0-11, each checked, journaled and resumable; the reboot of step 7 is
//! the reboot engine's own run, with its own journal.

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
use record::{MigrationEntry, MigrationState, MigrationWriter, Step, Variant};

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
    /// annotation (the document's), spec-migration (newer releases), or auto (by cluster version).
    #[arg(long, default_value = "auto", value_parser = ["auto", "annotation", "spec-migration"])]
    pub variant: String,
    /// Step 5: the OVN-Kubernetes MTU.
    #[arg(long)]
    pub mtu: Option<u32>,
    /// Step 5: the Geneve UDP port.
    #[arg(long)]
    pub geneve_port: Option<u32>,
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
fn namespaces() -> ApiResource {
    resource("", "v1", "Namespace", "namespaces")
}

/// The cluster as the migration touches it.
struct Target {
    client: kube::Client,
    /// The same connection, handed to the reboot engine in step 7: the nodes rebooted are the
    /// nodes of the cluster being migrated, whatever the kubeconfig's current context is.
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
            pools: self.list(&crate::adapters::kube::machine_config_pools()).await?,
            operators: self.list(&cluster_operators()).await?,
            spec_network_type: str_at(&config, "/spec/networkType"),
            status_network_type: str_at(&config, "/status/networkType"),
        })
    }

    async fn verify_inputs(&self) -> Result<checks::VerifyInputs, MigrateError> {
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
                let params = kube::api::LogParams { tail_lines: Some(20), ..Default::default() };
                let log = api.logs(&name_of(daemon), &params).await.unwrap_or_else(|e| format!("(no log: {e})"));
                daemon_logs.push((node_name, log));
            }
        }
        let config = self.get(&network_config(), "cluster").await?;
        Ok(checks::VerifyInputs {
            nodes,
            machine_configs: rendered,
            status_network_type: str_at(&config, "/status/networkType"),
            pods: all_pods,
            daemon_logs,
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

/// The variant the cluster's version calls for: `spec.migration` from 4.12 on. Pure.
pub fn variant_for(version: &str) -> Variant {
    match minor_version(version) {
        Some(v) if v >= (4, 12) => Variant::SpecMigration,
        _ => Variant::Annotation,
    }
}

fn source_type(target: &str) -> &'static str {
    if target == "OVNKubernetes" { "OpenShiftSDN" } else { "OVNKubernetes" }
}

fn old_namespace(target: &str) -> &'static str {
    if target == "OVNKubernetes" { "openshift-sdn" } else { "openshift-ovn-kubernetes" }
}

fn line(step: Step, message: &str) {
    println!("[step {:>4}] {}: {message}", step.number(), step.title());
}

fn migrations_root(settings: &Settings) -> PathBuf {
    settings.state_dir.join("migrations")
}

/// The newest migration under the state directory that is not finished (step 11 not done).
fn migration_in_progress(root: &Path) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir(root).ok()?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.join("migration.jsonl").exists()).collect();
    dirs.sort();
    dirs.into_iter().rev().find(|d| record::load(&d.join("migration.jsonl")).is_ok_and(|(_, s)| !s.is_done(Step::Cleanup)))
}

async fn connect(args: &ClusterArgs, settings: &Settings) -> Result<Target, Error> {
    let connection = crate::adapters::kube::ClusterConnection::open(&crate::commands::cluster_target(args, settings)).await?;
    Ok(Target { client: connection.client.clone(), connection })
}

pub async fn migrate(args: MigrateArgs, config: Option<&Path>) -> Result<ExitCode, Error> {
    let settings = crate::commands::load_settings(config, Layer::default())?;
    let cluster = connect(&args.cluster, &settings).await?;
    let root = migrations_root(&settings);
    let existing = match &args.dir {
        Some(dir) => dir.join("migration.jsonl").exists().then(|| dir.clone()),
        None => migration_in_progress(&root),
    };
    let continuing = args.resume || args.cleanup;
    let dir = match (&existing, continuing) {
        (Some(dir), _) if !continuing && !args.plan => {
            return Err(MigrateError::State(format!("a migration is in progress ({}); continue it with --resume", dir.display())).into());
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

    let problems = checks::check_mtu_and_port(args.mtu, args.geneve_port, args.node_mtu);
    if !problems.is_empty() {
        return Err(MigrateError::Preflight(problems).into());
    }
    if args.to == "OpenShiftSDN" && (args.mtu.is_some() || args.geneve_port.is_some()) {
        return Err(MigrateError::Preflight(vec![
            "--mtu and --geneve-port configure OVN-Kubernetes; a rollback to OpenShiftSDN takes neither".into(),
        ])
        .into());
    }
    let version = cluster.get(&cluster_versions(), "version").await.map(|v| str_at(&v, "/status/desired/version")).unwrap_or_default();
    let variant = match (state.variant, args.variant.as_str()) {
        (Some(v), _) => v,
        (None, "annotation") => Variant::Annotation,
        (None, "spec-migration") => Variant::SpecMigration,
        (None, _) => variant_for(&version),
    };
    if args.plan {
        return plan(&args, &cluster, &state, variant, &version, &dir).await;
    }
    if state.run_id.is_empty() {
        // A fresh start: refuse an unhealthy cluster before the journal even exists.
        let snapshot = cluster.snapshot().await?;
        let problems = checks::preflight(&snapshot, &args.to, args.etcd_backup_confirmed);
        if !problems.is_empty() {
            return Err(MigrateError::Preflight(problems).into());
        }
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
    let outcome = run_under_lease(&args, config, &cluster, &dir, &journal_path, state, variant, &version, lease.taken_from.clone()).await;
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
    variant: Variant,
    version: &str,
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
                variant,
                mtu: args.mtu,
                geneve_port: args.geneve_port,
                reboot_concurrency: args.reboot_concurrency,
            },
        )?;
        println!("migration to {} ({:?} variant, cluster {version}); journal {}", args.to, variant, journal_path.display());
    } else {
        log(&mut state, MigrationEntry::MigrationResumed { pid: std::process::id() })?;
        println!("resuming the migration to {} from {}", state.target, journal_path.display());
    }
    if let Some(previous) = taken_from {
        let message = format!("took the migration lease over from {previous}");
        eprintln!("warning: {message}");
        log(&mut state, MigrationEntry::Warning { message })?;
    }
    let run = Migration { args, config, cluster, dir: dir.to_owned(), variant };
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
    variant: Variant,
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
        let settings_concurrency = settings.reboot.concurrency;
        let job = RebootJob {
            settings,
            selection,
            cluster: Some(self.cluster.connection.clone()),
            journal,
            groups,
            drain: None,
            lease: LeasePolicy::default(),
            // A resumed step 7 keeps the limits the migration gives it.
            overrides: SettingsOverrides { concurrency: concurrency.map(|_| settings_concurrency), ..SettingsOverrides::default() },
        };
        let prepared = prepare(job).await.map_err(failed)?;
        let (trigger, abort) = tokio::sync::watch::channel(Abort::No);
        crate::commands::install_interrupts(trigger.clone());
        let mut reporter = Reporter::new(crate::commands::style_for(prepared.settings().output), std::io::stdout().lock());
        let summary = prepared.execute((trigger, abort), |event| reporter.report(event)).await.map_err(failed)?;
        Ok(summary.exit_code())
    }

    async fn steps(&self, state: &mut MigrationState, log: &mut Log<'_>) -> Result<ExitCode, Error> {
        for step in Step::ALL {
            if state.is_done(step) {
                continue;
            }
            if step == Step::Cleanup && !self.args.cleanup {
                println!(
                    "verification passed. Step 11 (remove the migration setting, delete {}) runs with: fleetboot migrate --cleanup",
                    old_namespace(&state.target)
                );
                return Ok(ExitCode::Ok);
            }
            log(state, MigrationEntry::StepStarted { step })?;
            match self.step(step, state, log).await {
                Ok(detail) => {
                    line(step, &format!("done{}", if detail.is_empty() { String::new() } else { format!(": {detail}") }));
                    log(state, MigrationEntry::StepDone { step, detail })?;
                }
                Err(StepError::Stop(code, error)) => {
                    line(step, &format!("FAILED: {error}"));
                    log(state, MigrationEntry::StepFailed { step, error })?;
                    if step >= Step::PausePools && step < Step::ResumePools {
                        println!("the pools stay paused; fix the cause, then: fleetboot migrate --resume");
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

    async fn step(&self, step: Step, state: &mut MigrationState, log: &mut Log<'_>) -> Result<String, StepError> {
        let target = state.target.clone();
        let c = self.cluster;
        match step {
            Step::Preflight => {
                // Checked before the journal was created; a resume finds the cluster mid-change.
                Ok("cluster healthy, etcd backup confirmed".into())
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
                    Err(_) => {
                        std::fs::write(&file, yaml).map_err(|e| MigrateError::State(format!("cannot write {}: {e}", file.display())))?;
                        Ok(file.display().to_string())
                    }
                }
            }
            Step::EnableMigration => {
                match self.variant {
                    Variant::Annotation => {
                        c.merge(&network_operator(), "cluster", json!({"metadata": {"annotations": {MIGRATION_ANNOTATION: ""}}})).await?
                    }
                    Variant::SpecMigration => {
                        c.merge(&network_operator(), "cluster", json!({"spec": {"migration": {"networkType": target}}})).await?
                    }
                }
                Ok(match self.variant {
                    Variant::Annotation => format!("annotated Network.operator.openshift.io/cluster with {MIGRATION_ANNOTATION}"),
                    Variant::SpecMigration => format!("Network.operator.openshift.io/cluster spec.migration.networkType = {target}"),
                })
            }
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
            Step::SetNetworkType => {
                let before = c
                    .namespaced(&daemon_sets(), "openshift-multus")
                    .get("multus")
                    .await
                    .ok()
                    .and_then(|d| d.metadata.generation)
                    .unwrap_or(0);
                std::fs::write(self.dir.join("multus-generation-before"), before.to_string())
                    .map_err(|e| MigrateError::State(e.to_string()))?;
                c.merge(&network_config(), "cluster", json!({"spec": {"networkType": target}})).await?;
                Ok(format!("network.config.openshift.io/cluster spec.networkType = {target}"))
            }
            Step::MtuAndPort => {
                let mut ovn = serde_json::Map::new();
                if let Some(mtu) = state.mtu {
                    ovn.insert("mtu".into(), json!(mtu));
                }
                if let Some(port) = state.geneve_port {
                    ovn.insert("genevePort".into(), json!(port));
                }
                if ovn.is_empty() {
                    return Ok("not asked for: left as it is".into());
                }
                let detail = format!("spec.defaultNetwork.ovnKubernetesConfig = {}", Value::Object(ovn.clone()));
                c.merge(&network_operator(), "cluster", json!({"spec": {"defaultNetwork": {"ovnKubernetesConfig": ovn}}})).await?;
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
            Step::WaitRollout => self.wait_rollout(state).await,
            Step::Verify => self.verify(state, log).await,
            Step::Cleanup => {
                if !state.last_verify.as_ref().is_some_and(|(passed, _)| *passed) {
                    return Err(StepError::Stop(ExitCode::HostsFailed, "the last verification did not pass: no cleanup".into()));
                }
                match self.variant {
                    Variant::Annotation => {
                        c.merge(&network_operator(), "cluster", json!({"metadata": {"annotations": {MIGRATION_ANNOTATION: null}}})).await?
                    }
                    Variant::SpecMigration => c.merge(&network_operator(), "cluster", json!({"spec": {"migration": null}})).await?,
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
                line(Step::WaitMultus, &progress);
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
            line(Step::RebootNodes, &format!("continuing the reboot run {}", journal.display()));
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

    async fn wait_rollout(&self, state: &MigrationState) -> Result<String, StepError> {
        let pools_api = crate::adapters::kube::machine_config_pools();
        let mut changes = Changes::watch(self.cluster.cluster_scoped(&pools_api), None, self.args.poll_interval.into());
        let deadline = tokio::time::Instant::now() + Duration::from(self.args.rollout_timeout);
        let started = std::time::Instant::now();
        let mut last = std::collections::BTreeMap::<String, String>::new();
        loop {
            let pools = self.cluster.list(&pools_api).await?;
            let nodes = self.cluster.list(&nodes()).await?;
            let mut all_done = true;
            for pool in pools.iter().filter(|p| state.to_pause.contains(&name_of(p))) {
                let pool_name = name_of(pool);
                let count = |k: &str| pool.pointer(&format!("/status/{k}")).and_then(Value::as_u64).unwrap_or(0);
                let (machines, updated, degraded) = (count("machineCount"), count("updatedMachineCount"), count("degradedMachineCount"));
                if degraded > 0 {
                    return Err(StepError::Stop(ExitCode::HostsFailed, format!("pool {pool_name} has {degraded} degraded machines")));
                }
                let spec = str_at(pool, "/spec/configuration/name");
                let done = updated == machines && str_at(pool, "/status/configuration/name") == spec && condition_true(pool, "Updated");
                all_done &= done;
                let working: Vec<String> = nodes
                    .iter()
                    .filter(|n| str_at(n, "/metadata/annotations/machineconfiguration.openshift.io~1state") == "Working")
                    .filter(|n| pool_of_node(n, pool))
                    .map(name_of)
                    .collect();
                let per_node = if updated > 0 { Some(started.elapsed() / updated as u32) } else { None };
                let eta = per_node
                    .map(|p| humantime::format_duration(Duration::from_secs((p * (machines - updated) as u32).as_secs())).to_string());
                let progress = if done {
                    format!("{pool_name}: all {machines} updated to {spec}")
                } else {
                    format!(
                        "{pool_name}: {updated} of {machines} updated{}",
                        if working.is_empty() { String::new() } else { format!(" · updating {}", working.join(", ")) },
                    )
                };
                // A new line when the pool moves, not when only the estimate does.
                if last.get(&pool_name) != Some(&progress) {
                    let eta = if done { String::new() } else { eta.map_or(String::new(), |e| format!(" · ETA {e}")) };
                    line(Step::WaitRollout, &format!("{progress}{eta}"));
                    last.insert(pool_name, progress);
                }
            }
            if all_done {
                return Ok(format!(
                    "pools {} updated in {}",
                    state.to_pause.join(", "),
                    humantime::format_duration(Duration::from_secs(started.elapsed().as_secs()))
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

    async fn verify(&self, state: &mut MigrationState, log: &mut Log<'_>) -> Result<String, StepError> {
        let target = state.target.clone();
        let mut inputs = self.cluster.verify_inputs().await?;
        let mut results = checks::verify(&inputs, &target);
        print!("{}", render_checks(&results));
        let passed = results.iter().all(|c| c.passed);
        log(state, MigrationEntry::Verified { passed, checks: results.clone() })?;
        let error_nodes = checks::nodes_with_error_pods(&inputs.pods);
        if !passed && self.args.reboot_error_nodes && !error_nodes.is_empty() {
            line(Step::Verify, &format!("rebooting the nodes that hold pods in error: {}", error_nodes.join(", ")));
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
            inputs = self.cluster.verify_inputs().await?;
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

async fn plan(
    args: &MigrateArgs,
    cluster: &Target,
    state: &MigrationState,
    variant: Variant,
    version: &str,
    dir: &Path,
) -> Result<ExitCode, Error> {
    let target = if state.target.is_empty() { args.to.clone() } else { state.target.clone() };
    let snapshot = cluster.snapshot().await?;
    let problems = if state.run_id.is_empty() { checks::preflight(&snapshot, &target, args.etcd_backup_confirmed) } else { vec![] };
    let pools = cluster.list(&crate::adapters::kube::machine_config_pools()).await?;
    let (paused, unpaused): (Vec<&Value>, Vec<&Value>) = pools.iter().partition(|p| p.pointer("/spec/paused") == Some(&json!(true)));
    let names = |list: &[&Value]| list.iter().map(|p| name_of(p)).collect::<Vec<_>>().join(", ");
    println!("migration plan: {} → {target} ({variant:?} variant, cluster {version}); nothing is changed\n", source_type(&target));
    let status = |step: Step| if state.is_done(step) { "done " } else { "to do" };
    let rows: Vec<Vec<String>> = Step::ALL
        .iter()
        .map(|&step| {
            let what = match step {
                Step::Preflight if problems.is_empty() => "the cluster is healthy".to_owned(),
                Step::Preflight => format!("REFUSES: {}", problems.join("; ")),
                Step::Backup => format!("write network.config/cluster as YAML into {}", dir.display()),
                Step::EnableMigration => match variant {
                    Variant::Annotation => format!("annotate Network.operator/cluster {MIGRATION_ANNOTATION}=\"\""),
                    Variant::SpecMigration => format!("Network.operator/cluster spec.migration.networkType={target}"),
                },
                Step::PausePools => format!(
                    "pause {}{}",
                    names(&unpaused),
                    if paused.is_empty() { String::new() } else { format!(" (already paused: {})", names(&paused)) }
                ),
                Step::SetNetworkType => format!("network.config/cluster spec.networkType: {} → {target}", snapshot.spec_network_type),
                Step::MtuAndPort => match (args.mtu, args.geneve_port) {
                    (None, None) => "skipped (no --mtu, no --geneve-port)".into(),
                    (mtu, port) => format!("ovnKubernetesConfig mtu={mtu:?} genevePort={port:?}"),
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
                Step::Verify => "steps 9-10: machine config state, rendered config, status.networkType, Ready nodes, pods in error".into(),
                Step::Cleanup => {
                    format!("only with --cleanup after verify passed: remove the migration setting, delete {}", old_namespace(&target))
                }
            };
            vec![step.number().to_owned(), status(step).to_owned(), step.title().to_owned(), what]
        })
        .collect();
    print!("{}", fleetboot_core::table::table(&["STEP", "STATE", "WHAT", "CHANGE"], &rows));
    Ok(ExitCode::Ok)
}

pub async fn verify(args: VerifyArgs, config: Option<&Path>) -> Result<ExitCode, Error> {
    let settings = crate::commands::load_settings(config, Layer::default())?;
    let cluster = connect(&args.cluster, &settings).await?;
    let inputs = cluster.verify_inputs().await?;
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
    fn the_variant_follows_the_cluster_version() {
        assert_eq!(variant_for("4.10.3"), Variant::Annotation);
        assert_eq!(variant_for("4.11.59"), Variant::Annotation);
        assert_eq!(variant_for("4.12.0"), Variant::SpecMigration);
        assert_eq!(variant_for("4.16.2"), Variant::SpecMigration);
        assert_eq!(variant_for(""), Variant::Annotation);
    }
}
