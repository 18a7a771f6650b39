//! The migration's orchestrator: `fleetboot migrate` and `fleetboot verify` without their
//! command lines. The OpenShift SDN → OVN-Kubernetes migration runs in the order the cluster's
//! release requires ([`Flow`]: the seed document's steps 0-11 up to 4.7, the documented
//! two-phase flow for 4.8-4.16, nothing from 4.17), each step checked, journaled and
//! resumable; the reboot of every node is the reboot engine's own run, with its own journal.
//!
//! It never prints: every step, warning and result is a [`MigrationEvent`] (and the reboot
//! run's [`Event`]s) handed to the caller's sink, which the reporters render.

mod cluster;
mod live;
mod rollback;

use std::cell::RefCell;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::adapters::config::Settings;
use crate::adapters::kube::ClusterTarget;
use crate::adapters::migration_journal::{self, FileError, MigrationJournalError, write_atomically};
use crate::engine::reboot::{GroupPolicy, LeasePolicy, NodeSelection, RebootJob, Selection, prepare};
use crate::engine::runner::Abort;
use crate::{Error, ExitCode};
use cluster::{
    Changes, Target, api_error, cluster_operators, cluster_versions, condition_true, connect, daemon_sets, machine_configs, name_of,
    namespaces, network_config, network_operator, nodes, pool_of_node, status_observed, str_at,
};
use fleetboot_core::events::Event;
use fleetboot_core::journal::SettingsOverrides;
use fleetboot_core::migrate::checks::{self, Check};
use fleetboot_core::migrate::events::{MigrationEvent, MigrationPlan, PlannedStep, Progress};
use fleetboot_core::migrate::record::{MigrationEntry, MigrationState};
use fleetboot_core::migrate::{Flow, FlowError, MIGRATION_ANNOTATION, Step, flow_for_target, minor_version, old_namespace, source_type};

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("the cluster is not ready for the migration:\n  - {}", .0.join("\n  - "))]
    Preflight(Vec<String>),
    /// No order of steps fits the cluster's release (or none can be told from it).
    #[error("the cluster is not ready for the migration:\n  - {0}")]
    NoFlow(#[source] FlowError),
    #[error(transparent)]
    Journal(#[from] MigrationJournalError),
    #[error("a migration to {target} is in progress ({}); continue it with --resume, or roll it back with --to {rollback_to}", dir.display())]
    InProgress { target: String, dir: PathBuf, rollback_to: String },
    #[error("no migration in progress under {} to resume", root.display())]
    NothingToResume { root: PathBuf },
    /// A migration journal under the state directory that cannot be read: it may be an
    /// unfinished migration of this very cluster, so it is never passed over.
    #[error(
        "{source}; fleetboot cannot tell whether it is an unfinished migration of this cluster, so it stops here: \
         make it readable (or, if it is not this cluster's, move its directory out of {})",
        root.display()
    )]
    UnreadableMigration {
        root: PathBuf,
        #[source]
        source: MigrationJournalError,
    },
    /// A migration file (the backup, the recorded multus generation) could not be written.
    #[error(transparent)]
    StateFile(FileError),
    #[error("the multus DaemonSet has no metadata.generation")]
    MultusWithoutGeneration,
    /// Step 6 found no usable record of step 4's multus generation: waiting on a guess could
    /// pass at once (0) or never.
    #[error("the multus generation recorded before the switch ({}) cannot be read: {reason}", path.display())]
    MultusGenerationNotRecorded { path: PathBuf, reason: String },
    #[error("step 7 left no reboot journal")]
    NoRebootJournal,
    #[error("the reboot run's journal: {0}")]
    RebootJournal(#[source] crate::adapters::journal::JournalError),
    /// The reboot run of step 7 (or of `--reboot-error-nodes`) could not be set up or run.
    #[error("{0}")]
    Reboot(#[source] Box<Error>),
    #[error("cluster API: {what}: {source}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
}

/// What `fleetboot migrate` was asked, without its command line.
#[derive(Clone, Debug)]
pub struct MigrationOptions {
    pub plan: bool,
    pub resume: bool,
    pub cleanup: bool,
    pub etcd_backup_confirmed: bool,
    /// OVNKubernetes, or OpenShiftSDN for a rollback.
    pub to: String,
    /// `--flow seed|two-phase`; `None`: the one the release requires.
    pub flow: Option<Flow>,
    /// `--mode live|offline`; `None`: offline (`--plan` recommends live where the release has it).
    pub live: Option<bool>,
    pub mtu: Option<u32>,
    pub geneve_port: Option<u32>,
    pub vxlan_port: Option<u32>,
    pub v4_internal_subnet: Option<String>,
    pub transit_switch_subnet: Option<String>,
    pub masquerade_subnet: Option<String>,
    pub routing_via_host: bool,
    pub ip_forwarding_global: bool,
    /// egress-ip, egress-firewall, multicast.
    pub skip_feature: Vec<String>,
    pub operator_timeout: humantime::Duration,
    pub node_mtu: Option<u32>,
    pub reboot_concurrency: Option<usize>,
    pub reboot_error_nodes: bool,
    pub dir: Option<PathBuf>,
    pub paused_warning: humantime::Duration,
    pub multus_timeout: humantime::Duration,
    pub rollout_timeout: humantime::Duration,
    pub break_lock: bool,
    pub lease_duration: Duration,
    pub poll_interval: humantime::Duration,
    /// How many clean reads of the cluster's health in a row, `poll_interval` apart, before the
    /// first change.
    pub stable_checks: u32,
}

/// Where the migration runs: the settings (state directory, the reboot runs' SSH, Redfish and
/// limits), the cluster, and how a reboot run hears Ctrl-C.
pub struct MigrationContext {
    pub settings: Settings,
    pub cluster: ClusterTarget,
    /// Connects Ctrl-C / SIGTERM to a reboot run's abort (the command line's handler).
    pub install_interrupts: fn(watch::Sender<Abort>),
}

/// Where the migration's events go.
pub type Sink<'s> = dyn FnMut(Progress<'_>) + 's;

/// The sink, shared by the steps (which take `&self`); events go one at a time.
struct Events<'s>(RefCell<&'s mut Sink<'s>>);

impl Events<'_> {
    fn emit(&self, event: MigrationEvent) {
        (self.0.borrow_mut())(Progress::Migration(&event));
    }

    fn reboot(&self, event: &Event) {
        (self.0.borrow_mut())(Progress::Reboot(event));
    }
}

/// The file (in the migration's directory) holding step 4's multus generation before the switch.
const MULTUS_GENERATION_BEFORE: &str = "multus-generation-before";

/// What step 4 found of multus before the switch.
enum MultusBefore {
    /// The DaemonSet's generation: step 6 waits for a newer one, rolled out.
    Generation(i64),
    /// The cluster already ran the target (a rollback of a migration that failed before its
    /// switch): the network operator starts no multus rollout.
    NoRolloutComing,
}

/// Records, once, what multus looked like before the switch. A resumed step 4 keeps the first
/// record (`read` is not even polled): the switch may already have bumped the generation, and
/// taking that for "before" would wait for a rollout that already happened. A failed read stops
/// the step and records nothing, rather than 0, which any generation would pass.
async fn record_multus_generation_once(
    path: &Path,
    read: impl Future<Output = Result<MultusBefore, MigrateError>>,
) -> Result<(), MigrateError> {
    if path.exists() {
        return Ok(());
    }
    let text = match read.await? {
        MultusBefore::Generation(generation) => generation.to_string(),
        MultusBefore::NoRolloutComing => "-1".to_owned(),
    };
    write_atomically(path, &text).map_err(MigrateError::StateFile)
}

/// Step 4's record: the generation before the switch, or -1 when no rollout comes.
fn recorded_multus_generation(path: &Path) -> Result<i64, MigrateError> {
    let unreadable = |reason: String| MigrateError::MultusGenerationNotRecorded { path: path.to_owned(), reason };
    let text = crate::adapters::system::read_regular_text(path).map_err(|e| unreadable(e.to_string()))?;
    text.trim().parse().map_err(|e: std::num::ParseIntError| unreadable(format!("{text:?}: {e}")))
}

fn migrations_root(settings: &Settings) -> PathBuf {
    settings.state_dir.join("migrations")
}

/// The migrations of *this* cluster under the state directory, oldest first, each with its
/// folded journal: another cluster's (another context of the same kubeconfig) are none of
/// this command's business. A journal without its start (empty, or cut by a kill right after
/// it was created) is no migration yet: it belongs to no cluster. A journal that cannot be
/// read is an error naming it, never passed over.
fn migrations_of(root: &Path, cluster: &fleetboot_core::journal::ClusterIdentity) -> Result<Vec<(PathBuf, MigrationState)>, MigrateError> {
    let unreadable = |path: PathBuf, source: std::io::Error| MigrateError::UnreadableMigration {
        root: root.to_owned(),
        source: MigrationJournalError::Read { path, source },
    };
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(unreadable(root.to_owned(), e)),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let dir = entry.map_err(|e| unreadable(root.to_owned(), e))?.path();
        // Whatever stands at a journal's place (a link too) is looked at, so it is reported.
        if dir.join("migration.jsonl").symlink_metadata().is_ok() {
            dirs.push(dir);
        }
    }
    dirs.sort();
    let mut found = Vec::new();
    for dir in dirs {
        let (_, state) = migration_journal::load(&dir.join("migration.jsonl"))
            .map_err(|source| MigrateError::UnreadableMigration { root: root.to_owned(), source })?;
        if !state.run_id.is_empty() && state.cluster.as_ref().is_none_or(|journaled| journaled.same_cluster(cluster)) {
            found.push((dir, state));
        }
    }
    Ok(found)
}

/// The newest unfinished migration of *this* cluster under the state directory.
fn migration_in_progress(root: &Path, cluster: &fleetboot_core::journal::ClusterIdentity) -> Result<Option<PathBuf>, MigrateError> {
    Ok(migrations_of(root, cluster)?.into_iter().rev().find(|(_, state)| !state.is_over()).map(|(dir, _)| dir))
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
fn network_options(options: &MigrationOptions, target: &str) -> Option<Value> {
    let mut config = serde_json::Map::new();
    let mut put = |path: &[&str], value: Value| {
        let mut at = &mut config;
        for key in &path[..path.len() - 1] {
            at = at.entry(key.to_string()).or_insert_with(|| json!({})).as_object_mut().expect("objects");
        }
        at.insert(path[path.len() - 1].to_owned(), value);
    };
    if let Some(mtu) = options.mtu {
        put(&["mtu"], json!(mtu));
    }
    if target == "OVNKubernetes" {
        if let Some(port) = options.geneve_port {
            put(&["genevePort"], json!(port));
        }
        if let Some(subnet) = &options.v4_internal_subnet {
            put(&["v4InternalSubnet"], json!(subnet));
        }
        if let Some(subnet) = &options.transit_switch_subnet {
            put(&["ipv4", "internalTransitSwitchSubnet"], json!(subnet));
        }
        if let Some(subnet) = &options.masquerade_subnet {
            put(&["gatewayConfig", "ipv4", "internalMasqueradeSubnet"], json!(subnet));
        }
        if options.routing_via_host {
            put(&["gatewayConfig", "routingViaHost"], json!(true));
        }
        if options.ip_forwarding_global {
            put(&["gatewayConfig", "ipForwarding"], json!("Global"));
        }
    } else if let Some(port) = options.vxlan_port {
        put(&["vxlanPort"], json!(port));
    }
    let key = if target == "OVNKubernetes" { "ovnKubernetesConfig" } else { "openshiftSDNConfig" };
    (!config.is_empty()).then(|| json!({ key: config }))
}

/// Runs (or with `--plan`, shows) the migration of the cluster `context` names; every step,
/// warning and result goes to `sink`, the step 7 reboot run's own events too.
pub async fn migrate(options: MigrationOptions, context: &MigrationContext, sink: &mut Sink<'_>) -> Result<ExitCode, Error> {
    let events = Events(RefCell::new(sink));
    let cluster = connect(&context.cluster).await?;
    let root = migrations_root(&context.settings);
    let existing = match &options.dir {
        Some(dir) => dir.join("migration.jsonl").exists().then(|| dir.clone()),
        None => migration_in_progress(&root, &cluster.connection.identity)?,
    };
    let existing_state = match &existing {
        Some(dir) => Some(migration_journal::load(&dir.join("migration.jsonl")).map_err(MigrateError::from)?.1),
        None => None,
    };
    // `--dir` naming a journal with no start yet: a fresh migration in that directory.
    let (existing, existing_state) = match existing_state {
        Some(s) if s.run_id.is_empty() => (None, None),
        found => (existing, found),
    };
    // A migration's journal (named with --dir) belongs to its cluster alone.
    if let (Some(dir), Some(journaled)) = (&existing, existing_state.as_ref().and_then(|s| s.cluster.as_ref()))
        && !journaled.same_cluster(&cluster.connection.identity)
    {
        return Err(Error::WrongCluster {
            journal: dir.join("migration.jsonl"),
            journaled: journaled.clone().into(),
            given: cluster.connection.identity.clone().into(),
        });
    }
    let continuing = options.resume || options.cleanup;
    // A migration that failed or was interrupted may be rolled back: a new migration towards the
    // other type takes over from it (openshift-docs `modules/nw-ovn-kubernetes-rollback.adoc`).
    let supersedes = match (&existing, &existing_state) {
        (Some(dir), Some(s)) if !continuing && s.target != options.to => Some(dir.clone()),
        _ => None,
    };
    let dir = match (&existing, continuing) {
        _ if supersedes.is_some() => root.join(crate::engine::reboot::new_run_id()),
        (Some(dir), _) if !continuing && !options.plan => {
            let target = existing_state.as_ref().map_or("?", |s| s.target.as_str());
            return Err(MigrateError::InProgress {
                target: target.to_owned(),
                dir: dir.clone(),
                rollback_to: source_type(existing_state.as_ref().map_or("OVNKubernetes", |s| s.target.as_str())).to_owned(),
            }
            .into());
        }
        (Some(dir), _) => dir.clone(),
        (None, true) => return Err(MigrateError::NothingToResume { root }.into()),
        (None, false) => options.dir.clone().unwrap_or_else(|| root.join(crate::engine::reboot::new_run_id())),
    };
    let journal_path = dir.join("migration.jsonl");
    let (_, state) = if journal_path.exists() {
        migration_journal::load(&journal_path).map_err(MigrateError::from)?
    } else {
        (Vec::new(), MigrationState::default())
    };

    let mut problems = checks::check_mtu_and_port(&options.to, options.mtu, options.geneve_port, options.node_mtu);
    if options.to == "OpenShiftSDN" && (options.geneve_port.is_some() || options.v4_internal_subnet.is_some() || options.routing_via_host) {
        problems.push("--geneve-port, the internal subnets and the gateway options configure OVN-Kubernetes; a rollback to OpenShiftSDN takes --mtu and --vxlan-port".into());
    }
    if options.to == "OVNKubernetes" && options.vxlan_port.is_some() {
        problems.push("--vxlan-port configures OpenShift SDN (a rollback); OVN-Kubernetes takes --geneve-port".into());
    }
    if !problems.is_empty() {
        return Err(MigrateError::Preflight(problems).into());
    }
    let version = cluster.get(&cluster_versions(), "version").await.map(|v| str_at(&v, "/status/desired/version")).unwrap_or_default();
    let (flow, reason) = match state.flow {
        Some(flow) => (flow, format!("the {} flow this migration started with", flow.name())),
        // The live migration: refused before anything changes where the release lacks it.
        None if options.live == Some(true) => {
            let mut refused = Vec::new();
            if let Err(e) = fleetboot_core::migrate::live::supported(&version) {
                refused.push(e);
            }
            if options.to != "OVNKubernetes" {
                refused.push("mode-live: fleetboot's live mode migrates to OVNKubernetes; roll back with --mode offline".into());
            }
            if options.flow.is_some() {
                refused.push("mode-live: --flow chooses an offline flow; it does not go with --mode live".into());
            }
            if !refused.is_empty() {
                return Err(MigrateError::Preflight(refused).into());
            }
            (
                Flow::Live,
                format!(
                    "--mode live: OpenShift {version} has the limited live migration (openshift-docs nw-ovn-kubernetes-live-migration.adoc): one patch, the network operator and the MCO do the rest, every node rebooted {} times",
                    fleetboot_core::migrate::live::EXPECTED_REBOOTS
                ),
            )
        }
        None => {
            // No flag makes a migration of a release from 4.17 on (nor of a later major).
            let past_openshift_sdn = minor_version(&version).is_some_and(|v| v >= (4, 17));
            match (options.flow, flow_for_target(&version, &options.to)) {
                (_, Err(e)) if past_openshift_sdn => return Err(MigrateError::NoFlow(e).into()),
                (None, Err(e)) => return Err(MigrateError::NoFlow(e).into()),
                (None, Ok(required)) => required,
                (Some(forced), Ok((required, _))) if forced != required => {
                    events.emit(MigrationEvent::MigrationFlowOverridden { forced, required, version: version.clone() });
                    (forced, format!("forced by --flow {} against the release's {} flow", forced.name(), required.name()))
                }
                (Some(forced), _) => (forced, format!("--flow {}", forced.name())),
            }
        }
    };
    // On 4.15.31+/4.16 the documents call the live migration the preferred method.
    let reason = if state.flow.is_none()
        && options.live.is_none()
        && options.to == "OVNKubernetes"
        && fleetboot_core::migrate::live::recommended(&version)
    {
        format!(
            "{reason}. RECOMMENDED on this release: the limited live migration (the documents' preferred method), fleetboot migrate --mode live; --mode offline keeps this flow"
        )
    } else {
        reason
    };
    let refused = checks::options_refused_by_release(&version, minor_version(&version).map(|v| v.1), &rollback::flags_given(&options));
    if !refused.is_empty() {
        return Err(MigrateError::Preflight(refused).into());
    }
    let subnets = checks::InternalSubnets {
        join: options.v4_internal_subnet.clone(),
        transit: options.transit_switch_subnet.clone(),
        masquerade: options.masquerade_subnet.clone(),
    };
    if options.plan {
        let plan = plan(
            &options,
            &cluster,
            &state,
            flow,
            &reason,
            &version,
            &dir,
            &subnets,
            supersedes.is_some(),
            context.settings.reboot.timeout,
        )
        .await?;
        events.emit(MigrationEvent::MigrationPlanned { plan });
        return Ok(ExitCode::Ok);
    }
    let mut start = Start {
        flow,
        reason,
        version: version.clone(),
        warnings: Vec::new(),
        failing_pods: Vec::new(),
        network_options: network_options(&options, &options.to),
        supersedes: supersedes.clone(),
    };
    if state.run_id.is_empty() {
        // A fresh start: refuse before the journal even exists, and nothing changes.
        let snapshot = cluster.snapshot().await?;
        let request = checks::PreflightRequest {
            target: &options.to,
            flow,
            etcd_backup_confirmed: options.etcd_backup_confirmed,
            rollback_after_failure: supersedes.is_some(),
            subnets: &subnets,
            release_minor: minor_version(&version).map(|v| v.1),
            geneve_port: options.geneve_port,
            vxlan_port: options.vxlan_port,
        };
        let mut findings = checks::preflight(&snapshot, &request);
        // The live migration's network operator sets the MTU itself (its routable-MTU step).
        let mtu = if flow == Flow::Live {
            Default::default()
        } else {
            fleetboot_core::migrate::mtu::decide(&snapshot, &options.to, options.mtu, options.node_mtu)
        };
        findings.refusals.extend(mtu.refusal);
        findings.warnings.extend(mtu.note);
        if let Some(restated) = mtu.restate {
            start.network_options = network_options(&MigrationOptions { mtu: Some(restated), ..options.clone() }, &options.to);
        }
        if !findings.refusals.is_empty() {
            return Err(MigrateError::Preflight(findings.refusals).into());
        }
        if supersedes.is_none() {
            stable_reads(&cluster, &request, &options, &events).await?;
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
    // The lease names a live holder on any machine; this machine's own live holder of the
    // journal is checked first only when --break-lock would take that lease over, so it never
    // takes anything from a migration still running here (refused naming its pid). Otherwise
    // the lease's refusal comes first and names the holder wherever it runs.
    let _journal_lock = if options.break_lock && journal_path.exists() {
        Some(migration_journal::hold(&journal_path).map_err(MigrateError::from)?)
    } else {
        None
    };
    let (identity, host) = crate::adapters::kube::this_process_identity(&run_id);
    let reclaimable =
        |holder: &str| crate::adapters::kube::holder_is_dead_run(holder, &host, &run_id, crate::adapters::kube::process_alive);
    let lease = crate::adapters::kube::LeaseLock::acquire(
        &cluster.client,
        "kube-system",
        crate::adapters::kube::MIGRATION_LEASE_NAME,
        &identity,
        options.lease_duration,
        options.break_lock,
        reclaimable,
    )
    .await?;
    // No reboot run beside a migration (checked with the migration's lease held).
    if let Err(e) =
        crate::adapters::kube::refuse_if_held(&cluster.client, "kube-system", crate::adapters::kube::LEASE_NAME, |_| false).await
    {
        lease.release().await;
        return Err(e.into());
    }
    if let Some(wait) = lease.settle_time() {
        // The migration that held the lease stops at its next step once it sees the takeover.
        events.emit(MigrationEvent::MigrationWarning {
            message: format!(
                "waiting {} before changing anything: the migration that held the lease stops once it sees the takeover",
                humantime::format_duration(wait)
            ),
        });
    }
    // Nothing cuts it short: until its reboot step a migration has no abort signal of its own
    // (Ctrl-C ends the process; `--resume` goes on from the journal).
    lease.settle(std::future::pending()).await;
    let outcome = run_under_lease(&options, context, &cluster, &dir, &journal_path, state, start, &lease, &events).await;
    lease.release().await;
    outcome
}

/// The cluster's health read clean `stable_checks` times in a row, `poll_interval` apart, before
/// the first change: a cluster that passes one read while an operator flaps is not ready for a
/// migration. Red Hat's `network.offline_migration_sdn_to_ovnk` collection waits the same way
/// (roles/migration: `verify_cluster_operators_health` with `required_success_count: 3`,
/// `pause_between_checks: 30`); fleetboot refuses at the first read that is not clean rather than
/// waiting, as its first read does. Not for a rollback after a failure, whose cluster is expected
/// to be unhealthy.
async fn stable_reads(
    cluster: &cluster::Target,
    request: &checks::PreflightRequest<'_>,
    options: &MigrationOptions,
    events: &Events<'_>,
) -> Result<(), Error> {
    let of = options.stable_checks.max(1);
    events.emit(MigrationEvent::MigrationClusterStable { pass: 1, of });
    for pass in 2..=of {
        tokio::time::sleep(options.poll_interval.into()).await;
        let findings = checks::preflight(&cluster.snapshot().await?, request);
        if !findings.refusals.is_empty() {
            let mut refusals = vec![format!(
                "stable: the cluster read healthy {} time(s) in a row, then not (--stable-checks {of}); nothing was changed:",
                pass - 1
            )];
            refusals.extend(findings.refusals);
            return Err(MigrateError::Preflight(refusals).into());
        }
        events.emit(MigrationEvent::MigrationClusterStable { pass, of });
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn run_under_lease(
    options: &MigrationOptions,
    context: &MigrationContext,
    cluster: &Target,
    dir: &Path,
    journal_path: &Path,
    state: MigrationState,
    start: Start,
    lease: &crate::adapters::kube::LeaseLock,
    events: &Events<'_>,
) -> Result<ExitCode, Error> {
    let mut writer = migration_journal::MigrationWriter::open(journal_path).map_err(MigrateError::from)?;
    // Read again now that the journal's lock is held: what was read before it may be stale (a
    // migration that was still running here when this one started).
    let mut state = match migration_journal::load(journal_path).map_err(MigrateError::from)? {
        (_, fresh) if !fresh.run_id.is_empty() => fresh,
        _ => state,
    };
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
                target: options.to.clone(),
                flow: start.flow,
                version: start.version.clone(),
                failing_pods: start.failing_pods.clone(),
                network_options: start.network_options.clone(),
                mtu: options.mtu,
                geneve_port: options.geneve_port,
                reboot_concurrency: options.reboot_concurrency,
                cluster: Some(cluster.connection.identity.clone()),
            },
        )?;
        events.emit(MigrationEvent::MigrationStarted {
            target: options.to.clone(),
            flow: start.flow,
            reason: start.reason.clone(),
            journal: journal_path.to_owned(),
        });
        if let Some(old) = &start.supersedes {
            let mut previous = migration_journal::MigrationWriter::open(&old.join("migration.jsonl")).map_err(MigrateError::from)?;
            previous.append(MigrationEntry::Superseded { by: dir.to_owned() }).map_err(MigrateError::from)?;
            let message = format!("rolling back the unfinished migration {}", old.display());
            events.emit(MigrationEvent::MigrationRollingBack { previous: old.clone() });
            log(&mut state, MigrationEntry::Warning { message })?;
            if let Some(inherited) = rollback::inherited_pools(old) {
                log(&mut state, inherited)?;
            }
        }
        for message in &start.warnings {
            events.emit(MigrationEvent::MigrationWarning { message: message.clone() });
            log(&mut state, MigrationEntry::Warning { message: message.clone() })?;
        }
    } else {
        log(&mut state, MigrationEntry::MigrationResumed { pid: std::process::id() })?;
        events.emit(MigrationEvent::MigrationResumed { target: state.target.clone(), flow: start.flow, journal: journal_path.to_owned() });
    }
    if let Some(previous) = lease.taken_from.clone() {
        let message = format!("took the migration lease over from {previous}");
        events.emit(MigrationEvent::MigrationWarning { message: message.clone() });
        log(&mut state, MigrationEntry::Warning { message })?;
    }
    let run = Migration {
        options,
        context,
        cluster,
        dir: dir.to_owned(),
        flow: start.flow,
        events,
        lease_lost: lease.lost(),
        lease_holder: lease.identity().to_owned(),
    };
    let outcome = run.steps(&mut state, &mut log).await;
    let reboot = state.reboot_journal.as_ref().and_then(|p| crate::adapters::journal::load(p).ok()).map(|(_, s)| s);
    let files = fleetboot_core::migrate::report::render(&state, reboot.as_ref(), crate::adapters::system::now_ms());
    match migration_journal::write_files(dir, files) {
        Ok(files) => events.emit(MigrationEvent::MigrationReportWritten { files }),
        Err(e) => events.emit(MigrationEvent::MigrationReportFailed { error: e.to_string() }),
    }
    if let Ok(code) = &outcome {
        events.emit(MigrationEvent::MigrationFinished { complete: state.is_done(Step::Cleanup), exit_code: *code as u8 });
    }
    outcome
}
struct Migration<'a, 'e> {
    options: &'a MigrationOptions,
    context: &'a MigrationContext,
    cluster: &'a Target,
    dir: PathBuf,
    flow: Flow,
    events: &'a Events<'e>,
    /// Becomes `Some` when the migration's lease is lost: no further step starts.
    lease_lost: tokio::sync::watch::Receiver<Option<crate::adapters::kube::LeaseLost>>,
    /// This migration's lease holder: its own reboot runs go on under it.
    lease_holder: String,
}

type Log<'l> = dyn FnMut(&mut MigrationState, MigrationEntry) -> Result<(), MigrateError> + 'l;

impl Migration<'_, '_> {
    /// Runs a reboot job on this migration's own cluster connection (never a rebuilt command
    /// line, which once lost `--context` and rebooted another cluster's nodes).
    async fn run_reboot(
        &self,
        selection: Selection,
        journal: Option<PathBuf>,
        groups: GroupPolicy,
        concurrency: Option<usize>,
    ) -> Result<ExitCode, StepError> {
        let mut settings = self.context.settings.clone();
        if let Some(concurrency) = concurrency {
            settings.reboot.concurrency = concurrency;
        }
        let job = RebootJob {
            settings,
            selection,
            cluster: Some(self.cluster.connection.clone()),
            journal,
            groups,
            drain: None,
            lease: LeasePolicy { migration_holder: Some(self.lease_holder.clone()), ..LeasePolicy::default() },
            // A resumed reboot run keeps the limits the migration gives it.
            overrides: SettingsOverrides { concurrency, ..SettingsOverrides::default() },
        };
        let failed = |e: Error| MigrateError::Reboot(Box::new(e));
        let prepared = prepare(job).await.map_err(failed)?;
        let (trigger, abort) = tokio::sync::watch::channel(Abort::No);
        (self.context.install_interrupts)(trigger.clone());
        // The migration's lease lost mid-run: no further host starts (hosts in flight finish),
        // as at the first Ctrl-C.
        let (mut lost, soft) = (self.lease_lost.clone(), trigger.clone());
        let lease_watch = tokio::spawn(async move {
            if lost.wait_for(Option::is_some).await.is_ok() {
                soft.send_if_modified(|level| {
                    let raise = *level == Abort::No;
                    if raise {
                        *level = Abort::Soft;
                    }
                    raise
                });
            }
        });
        let summary = prepared.execute((trigger, abort), |event| self.events.reboot(event)).await;
        lease_watch.abort();
        let summary = summary.map_err(failed)?;
        if let Some(lost) = self.lease_lost.borrow().clone() {
            return Err(StepError::LeaseLost(lost));
        }
        Ok(summary.exit_code())
    }

    /// The error-node reboot's groups: the migration's concurrency per group, the control plane
    /// one at a time and last, the control-plane rule (the step-7 exception does not apply).
    fn error_nodes_groups(concurrency: Option<usize>) -> GroupPolicy {
        GroupPolicy { group_concurrency: concurrency, ..GroupPolicy::default() }
    }

    /// Runs one wait of a step unless the migration's lease is lost first: another migration
    /// may be acting, so the wait ends there with [`StepError::LeaseLost`].
    async fn leased<R>(&self, wait: impl std::future::Future<Output = R>) -> Result<R, StepError> {
        let mut lost = self.lease_lost.clone();
        tokio::select! {
            biased;
            Ok(why) = lost.wait_for(Option::is_some) => Err(StepError::LeaseLost(why.clone().expect("some"))),
            value = wait => Ok(value),
        }
    }

    /// The next change (or idle tick) of a wait's watch, under the lease.
    async fn next_change(&self, changes: &mut Changes) -> Result<(), StepError> {
        self.leased(changes.next()).await
    }

    fn line(&self, step: Step, message: &str) {
        self.events.emit(MigrationEvent::StepProgress { step, number: self.flow.number(step), message: message.to_owned() });
    }

    async fn steps(&self, state: &mut MigrationState, log: &mut Log<'_>) -> Result<ExitCode, Error> {
        for &step in self.flow.steps() {
            let number = self.flow.number(step);
            if state.is_done(step) {
                self.events.emit(MigrationEvent::StepSkipped { step, number });
                continue;
            }
            // A migration that lost its lease starts no further step: another may be running.
            if let Some(lost) = self.lease_lost.borrow().clone() {
                let reason = lost.to_string();
                log(state, MigrationEntry::Warning { message: format!("stopped before step {number}: {reason}") })?;
                self.events.emit(MigrationEvent::MigrationLeaseLost { reason });
                return Ok(ExitCode::Incomplete);
            }
            if step == Step::Cleanup && !self.options.cleanup {
                self.events.emit(MigrationEvent::MigrationAwaitingCleanup {
                    flow: self.flow,
                    old_namespace: old_namespace(&state.target).to_owned(),
                });
                return Ok(ExitCode::Ok);
            }
            log(state, MigrationEntry::StepStarted { step })?;
            self.events.emit(MigrationEvent::StepStarted { step, number: number.clone() });
            match self.step(step, state, log).await {
                Ok(detail) => {
                    self.events.emit(MigrationEvent::StepDone { step, number, detail: detail.clone() });
                    log(state, MigrationEntry::StepDone { step, detail })?;
                }
                Err(StepError::LeaseLost(lost)) => {
                    let reason = lost.to_string();
                    log(state, MigrationEntry::Warning { message: format!("stopped in step {number}: {reason}") })?;
                    self.events.emit(MigrationEvent::MigrationLeaseLost { reason: format!("{reason}; stopped in step {number}") });
                    return Ok(ExitCode::Incomplete);
                }
                Err(StepError::Stop(code, error)) => {
                    self.events.emit(MigrationEvent::StepFailed { step, number, error: error.clone() });
                    log(state, MigrationEntry::StepFailed { step, error })?;
                    if self.flow.pools_paused_during(step) {
                        self.events.emit(MigrationEvent::MigrationPoolsStayPaused);
                    } else {
                        self.events.emit(MigrationEvent::MigrationResumeAfterFix { rollback_to: source_type(&state.target).to_owned() });
                    }
                    return Ok(code);
                }
                // fleetboot itself cannot go on: the error is the command's (stderr, exit code),
                // as before; no step line claims the step failed on the cluster.
                Err(StepError::Fatal(e)) => {
                    let _ = log(state, MigrationEntry::StepFailed { step, error: e.to_string() });
                    return Err(e.into());
                }
            }
        }
        self.events.emit(MigrationEvent::MigrationComplete { target: state.target.clone() });
        Ok(ExitCode::Ok)
    }

    /// Waits until `Network.config/cluster` satisfies `applied` (the network operator applied
    /// the change), failing at once with the operator's own message when it refuses the change
    /// (the `network` ClusterOperator Degraded), or at `--operator-timeout`.
    async fn wait_operator(&self, step: Step, what: &str, applied: impl Fn(&Value) -> bool) -> Result<(), StepError> {
        let c = self.cluster;
        let mut changes = Changes::watch(c.cluster_scoped(&network_config()), Some("metadata.name=cluster"), Duration::from_secs(1));
        let deadline = crate::adapters::system::deadline_after(self.options.operator_timeout.into());
        let mut said = false;
        loop {
            let config = c.get(&network_config(), "cluster").await?;
            if applied(&config) {
                return Ok(());
            }
            let operator = c.get(&cluster_operators(), "network").await?;
            let degraded =
                condition_true(&operator, "Degraded").then(|| fleetboot_core::conditions::message(&operator, "Degraded").to_owned());
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
                    format!("the network operator did not apply the change within {}: {what}", self.options.operator_timeout),
                ));
            }
            self.next_change(&mut changes).await?;
        }
    }

    async fn step(&self, step: Step, state: &mut MigrationState, log: &mut Log<'_>) -> Result<String, StepError> {
        if self.flow == Flow::Live && matches!(step, Step::SetNetworkType | Step::WaitRollout | Step::EnableMigration) {
            return self.live_step(step, state, log).await;
        }
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
                match crate::adapters::system::read_regular_text(&file) {
                    // Written by this migration before it was interrupted: keep the first one.
                    Ok(_) => Ok(format!("kept the existing backup {}", file.display())),
                    // Something else at its place (a link, a directory) is never read through.
                    Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
                        Err(MigrateError::StateFile(crate::adapters::migration_journal::FileError { path: file, source }).into())
                    }
                    // Whole or not at all: a kill mid-write must not leave half a backup that a
                    // resume would then keep as the first one.
                    Err(_) => {
                        write_atomically(&file, &yaml).map_err(MigrateError::StateFile)?;
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
                Flow::Live => Ok(String::new()),
                Flow::Seed => {
                    c.merge(&network_operator(), "cluster", json!({"metadata": {"annotations": {MIGRATION_ANNOTATION: ""}}})).await?;
                    Ok(format!("annotated Network.operator.openshift.io/cluster with {MIGRATION_ANNOTATION}"))
                }
                Flow::TwoPhase | Flow::Rollback => {
                    let mut migration = json!({"networkType": target});
                    if !self.options.skip_feature.is_empty() {
                        let on = |f: &str| !self.options.skip_feature.iter().any(|s| s == f);
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
                let read_before = async {
                    let generation = c
                        .namespaced(&daemon_sets(), "openshift-multus")
                        .get("multus")
                        .await
                        .map_err(api_error("read the multus DaemonSet's generation before the switch"))?
                        .metadata
                        .generation
                        .ok_or(MigrateError::MultusWithoutGeneration)?;
                    let config = c.get(&network_config(), "cluster").await?;
                    // Already running the target (a rollback of a migration that failed before its
                    // switch): no multus rollout will follow.
                    let already = str_at(&config, "/status/networkType") == target;
                    Ok(if already { MultusBefore::NoRolloutComing } else { MultusBefore::Generation(generation) })
                };
                record_multus_generation_once(&self.dir.join(MULTUS_GENERATION_BEFORE), read_before).await?;
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
                let journal = state.reboot_journal.clone().ok_or(MigrateError::NoRebootJournal)?;
                let (_, reboot) = crate::adapters::journal::load(&journal).map_err(MigrateError::RebootJournal)?;
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
            Step::WaitRollout => self.wait_rollout(step, Some(state.to_pause.clone()), rollback::rollout_marker(self.flow, &target)).await,
            Step::Verify => self.verify(state, log).await,
            Step::Cleanup => {
                if !state.last_verify.as_ref().is_some_and(|(passed, _)| *passed) {
                    return Err(StepError::Stop(ExitCode::HostsFailed, "the last verification did not pass: no cleanup".into()));
                }
                for patch in rollback::cleanup_patches(self.flow, &target) {
                    c.merge(&network_operator(), "cluster", patch).await?;
                }
                if self.flow == Flow::Live {
                    let annotation = fleetboot_core::migrate::live::ANNOTATION;
                    c.merge(&network_config(), "cluster", json!({"metadata": {"annotations": {annotation: null}}})).await?;
                }
                let namespace = old_namespace(&target);
                match c.cluster_scoped(&namespaces()).delete(namespace, &Default::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(api_error(&format!("delete namespace {namespace}"))(e).into()),
                }
                Ok(format!("{}, namespace {namespace} deleted", rollback::cleanup_words(self.flow, &target)))
            }
        }
    }

    fn warn_if_paused_long(&self, state: &mut MigrationState, log: &mut Log<'_>, warned: &mut bool) -> Result<(), MigrateError> {
        let Some(since) = state.paused_at_ms else { return Ok(()) };
        let paused_for = Duration::from_millis(crate::adapters::system::now_ms().saturating_sub(since));
        if !*warned && paused_for > Duration::from(self.options.paused_warning) {
            *warned = true;
            let message = format!(
                "the MachineConfigPools have been paused for {}: certificate rotation is paused with them; finish the migration soon",
                humantime::format_duration(Duration::from_secs(paused_for.as_secs()))
            );
            self.events.emit(MigrationEvent::MigrationWarning { message: message.clone() });
            log(state, MigrationEntry::Warning { message })?;
        }
        Ok(())
    }

    async fn wait_multus(&self, state: &mut MigrationState, log: &mut Log<'_>) -> Result<String, StepError> {
        let before = recorded_multus_generation(&self.dir.join(MULTUS_GENERATION_BEFORE))?;
        if before < 0 {
            return Ok(format!("the cluster already ran {}: the network operator starts no multus rollout", state.target));
        }
        let api = self.cluster.namespaced(&daemon_sets(), "openshift-multus");
        let mut changes = Changes::watch(api.clone(), Some("metadata.name=multus"), self.options.poll_interval.into());
        let deadline = crate::adapters::system::deadline_after(self.options.multus_timeout.into());
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
                    format!("multus did not finish rolling out within {}: {progress}", self.options.multus_timeout),
                ));
            }
            self.next_change(&mut changes).await?;
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
            Some(n) => GroupPolicy { group_concurrency: Some(n), migration_reboot: true, ..GroupPolicy::default() },
            None => GroupPolicy { all_at_once: true, migration_reboot: true, ..GroupPolicy::default() },
        };
        // A reboot journal with no complete record (a kill right after its creation) means no
        // host was touched: the run starts afresh in it (the writer takes such a file over).
        let selection = if crate::adapters::journal::is_started(&journal) {
            self.line(Step::RebootNodes, &format!("continuing the reboot run {}", journal.display()));
            Selection::Resume(journal.clone())
        } else {
            Selection::Nodes(NodeSelection { address_type: "InternalIP".into(), ..NodeSelection::default() })
        };
        let mut warned = false;
        self.warn_if_paused_long(state, log, &mut warned)?;
        let code = self.run_reboot(selection, Some(journal.clone()), groups, state.reboot_concurrency).await?;
        let (_, reboot) = crate::adapters::journal::load(&journal).map_err(MigrateError::RebootJournal)?;
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
        let mut changes = Changes::watch(self.cluster.cluster_scoped(&pools_api), None, self.options.poll_interval.into());
        let deadline = crate::adapters::system::deadline_after(self.options.rollout_timeout.into());
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
                    let why =
                        if condition_true(pool, "NodeDegraded") { fleetboot_core::conditions::message(pool, "NodeDegraded") } else { "" };
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
                    && status_observed(pool)
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
                    format!("the MCO rollout did not finish within {}", self.options.rollout_timeout),
                ));
            }
            self.next_change(&mut changes).await?;
        }
    }

    /// Waits (up to `--operator-timeout`) until no ClusterOperator is Progressing: the
    /// operators finish what the reboots started before the cluster is judged.
    async fn settle(&self) -> Result<(), StepError> {
        let deadline = crate::adapters::system::deadline_after(self.options.operator_timeout.into());
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
            self.next_change(&mut changes).await?;
        }
    }

    async fn verify(&self, state: &mut MigrationState, log: &mut Log<'_>) -> Result<String, StepError> {
        let target = state.target.clone();
        self.settle().await?;
        let baseline = state.failing_pods.clone();
        // An error-node reboot a killed process left unfinished is continued first, from its
        // journal: a node of it may be mid-boot, and must never be planned afresh.
        let mut rebooted_now = false;
        if self.options.reboot_error_nodes
            && let Some(journal) = state.error_nodes_journal.clone()
            && journal.exists()
            && !crate::adapters::journal::load(&journal).map_err(MigrateError::RebootJournal)?.1.finished
        {
            self.line(Step::Verify, &format!("continuing the reboot of the nodes that hold pods in error: {}", journal.display()));
            let code = self
                .run_reboot(
                    Selection::Resume(journal.clone()),
                    Some(journal),
                    Self::error_nodes_groups(state.reboot_concurrency),
                    state.reboot_concurrency,
                )
                .await?;
            if code != ExitCode::Ok {
                return Err(StepError::Stop(code, "the reboot of the nodes that hold pods in error failed".into()));
            }
            rebooted_now = true;
            tokio::time::sleep(Duration::from(self.options.poll_interval).min(Duration::from_secs(5))).await;
        }
        let mut inputs = self.cluster.verify_inputs(&target, &baseline).await?;
        let mut results = checks::verify(&inputs, &target);
        let passed = results.iter().all(|c| c.passed);
        self.events.emit(MigrationEvent::MigrationVerified { passed, checks: results.clone() });
        log(state, MigrationEntry::Verified { passed, checks: results.clone() })?;
        let error_nodes = checks::nodes_with_error_pods(&inputs.pods, &baseline);
        if !passed && self.options.reboot_error_nodes && !error_nodes.is_empty() && !rebooted_now {
            self.line(Step::Verify, &format!("rebooting the nodes that hold pods in error: {}", error_nodes.join(", ")));
            // Journaled before the run starts: a resume continues this very run.
            let journal = self.dir.join(format!("reboot-error-nodes-{}.jsonl", crate::adapters::system::now_ms()));
            log(state, MigrationEntry::ErrorNodesRebootJournal { path: journal.clone(), nodes: error_nodes.clone() })?;
            let selection = Selection::Nodes(NodeSelection {
                names: error_nodes.clone(),
                address_type: "InternalIP".into(),
                ..NodeSelection::default()
            });
            // The migration's concurrency and the full control-plane rule: no exception here.
            let concurrency = state.reboot_concurrency.or(Some(error_nodes.len()));
            let code = self.run_reboot(selection, Some(journal), Self::error_nodes_groups(state.reboot_concurrency), concurrency).await?;
            if code != ExitCode::Ok {
                return Err(StepError::Stop(code, format!("rebooting {} failed", error_nodes.join(", "))));
            }
            // Give the kubelets a moment to restart their pods, then look again.
            self.leased(tokio::time::sleep(Duration::from(self.options.poll_interval).min(Duration::from_secs(5)))).await?;
            inputs = self.cluster.verify_inputs(&target, &baseline).await?;
            results = checks::verify(&inputs, &target);
            let passed = results.iter().all(|c| c.passed);
            self.events.emit(MigrationEvent::MigrationVerified { passed, checks: results.clone() });
            log(state, MigrationEntry::Verified { passed, checks: results.clone() })?;
        }
        if results.iter().all(|c| c.passed) {
            Ok(format!("{} checks passed", results.len()))
        } else {
            let hint = if !error_nodes.is_empty() && !self.options.reboot_error_nodes {
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
enum StepError {
    /// The step did not succeed; the migration stops here with this exit code.
    Stop(ExitCode, String),
    /// The migration's lease was lost during the step (taken over, or not renewed for half of
    /// it): it stops there, as at a step boundary, and `--resume` goes on.
    LeaseLost(crate::adapters::kube::LeaseLost),
    /// fleetboot itself could not go on (the journal, the API).
    Fatal(MigrateError),
}

impl From<MigrateError> for StepError {
    fn from(e: MigrateError) -> StepError {
        StepError::Fatal(e)
    }
}

#[allow(clippy::too_many_arguments)]
async fn plan(
    options: &MigrationOptions,
    cluster: &Target,
    state: &MigrationState,
    flow: Flow,
    reason: &str,
    version: &str,
    dir: &Path,
    subnets: &checks::InternalSubnets,
    rollback_after_failure: bool,
    reboot_timeout: Duration,
) -> Result<MigrationPlan, MigrateError> {
    let target = if state.target.is_empty() { options.to.clone() } else { state.target.clone() };
    let snapshot = cluster.snapshot().await?;
    let findings = if state.run_id.is_empty() {
        let request = checks::PreflightRequest {
            target: &target,
            flow,
            etcd_backup_confirmed: options.etcd_backup_confirmed,
            rollback_after_failure,
            subnets,
            release_minor: minor_version(version).map(|v| v.1),
            geneve_port: options.geneve_port,
            vxlan_port: options.vxlan_port,
        };
        let mut findings = checks::preflight(&snapshot, &request);
        if checks::documented_prerequisites_apply(&request) {
            let port = options.geneve_port.map(u64::from).or_else(|| {
                snapshot.network_operator.pointer("/spec/defaultNetwork/ovnKubernetesConfig/genevePort").and_then(serde_json::Value::as_u64)
            });
            findings.warnings.push(fleetboot_core::migrate::prerequisites::geneve_reminder(port.unwrap_or(6081)));
        }
        findings
    } else {
        checks::Findings::default()
    };
    let mut findings = findings;
    let mut default_network = network_options(options, &target);
    if state.run_id.is_empty() && flow != Flow::Live {
        let mtu = fleetboot_core::migrate::mtu::decide(&snapshot, &target, options.mtu, options.node_mtu);
        findings.refusals.extend(mtu.refusal);
        findings.warnings.extend(mtu.note);
        if let Some(restated) = mtu.restate {
            default_network = network_options(&MigrationOptions { mtu: Some(restated), ..options.clone() }, &target);
        }
    } else {
        default_network = state.network_options.clone();
    }
    let pools = cluster.list(&crate::adapters::kube::machine_config_pools()).await?;
    let (paused, unpaused): (Vec<&Value>, Vec<&Value>) = pools.iter().partition(|p| p.pointer("/spec/paused") == Some(&json!(true)));
    let names = |list: &[&Value]| list.iter().map(|p| name_of(p)).collect::<Vec<_>>().join(", ");
    let steps = flow
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
                    Flow::Live => String::new(),
                    Flow::TwoPhase | Flow::Rollback => format!(
                        "Network.operator/cluster spec.migration.networkType={target}{}{}; wait for status.migration",
                        if flow == Flow::Rollback { " (pools paused)" } else { " (pools stay unpaused)" },
                        if options.skip_feature.is_empty() { String::new() } else { format!(", features off: {}", options.skip_feature.join(", ")) }
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
                Step::SetNetworkType if flow == Flow::Live => format!(
                    "one patch of network.config/cluster: annotation {}=\"\" and spec.networkType: {} → {target}; the network operator drives spec.migration {{mode: Live}} itself",
                    fleetboot_core::migrate::live::ANNOTATION,
                    snapshot.spec_network_type
                ),
                Step::SetNetworkType => format!("network.config/cluster spec.networkType: {} → {target}", snapshot.spec_network_type),
                Step::MtuAndPort => match &default_network {
                    None => "skipped (no --mtu, --geneve-port, --vxlan-port, internal subnets or gateway options)".into(),
                    Some(merged) => format!("Network.operator/cluster spec.defaultNetwork += {merged}"),
                },
                Step::WaitMultus => "wait for openshift-multus/multus to roll out".into(),
                Step::RebootNodes => {
                    let concurrency = state.reboot_concurrency.or(options.reboot_concurrency);
                    let how = match concurrency {
                        None => format!(
                            "reboot all {} nodes at once (the document's way; --reboot-concurrency N to limit)",
                            snapshot.nodes.len()
                        ),
                        Some(n) => format!("reboot {} nodes, {n} at a time, control plane last", snapshot.nodes.len()),
                    };
                    let wait = humantime::format_duration(reboot_timeout).to_string();
                    format!("{how}; {}", fleetboot_core::limits::describe_rule(true, concurrency.is_some(), true, &wait))
                }
                Step::ResumePools => format!(
                    "once every node is proven back{}: unpause {}",
                    if flow == Flow::Rollback { " and multus rolled out" } else { "" },
                    names(&unpaused)
                ),
                Step::WaitRollout if flow == Flow::Live => format!(
                    "watch the NetworkTypeMigration* conditions and every pool until the operator reports the migration completed; prove each node rebooted {} times by the MCO (new boot IDs), Ready after each",
                    fleetboot_core::migrate::live::EXPECTED_REBOOTS
                ),
                Step::WaitRollout => match rollback::rollout_marker(flow, &target) {
                    Some(marker) => format!("watch the MCO roll {marker} onto every node of those pools, to the end"),
                    None => "watch the MCO roll the new config onto every node".into(),
                },
                Step::Verify => format!(
                    "machine config state, rendered config, status.networkType, Ready nodes, pods in error (not those failing before), ClusterOperators, the network plugin on every node{}",
                    if options.reboot_error_nodes {
                        "; --reboot-error-nodes: their nodes rebooted at the migration's concurrency under the full rule (no exception here: every node of the cluster that is unavailable counts, the control plane one at a time, each other master Ready and etcd healthy)"
                    } else {
                        ""
                    }
                ),
                Step::Cleanup => format!(
                    "only with --cleanup after verify passed: {}, delete {}",
                    rollback::cleanup_words(flow, &target),
                    old_namespace(&target)
                ),
            };
            PlannedStep { step, number: flow.number(step), done: state.is_done(step), change: what }
        })
        .collect();
    // A rollback's plan quotes what the release's documentation says about when it is allowed.
    let reason = if target == "OpenShiftSDN" {
        format!("{reason}; {}", fleetboot_core::migrate::rollback_allowed(version))
    } else {
        reason.to_owned()
    };
    Ok(MigrationPlan { source: source_type(&target).to_owned(), target, version: version.to_owned(), flow, reason, steps })
}

/// The pods failing before the newest migration *of this cluster* started: another cluster's
/// baseline would hide this one's failing pods (or count its own old ones).
fn newest_baseline(root: &Path, cluster: &fleetboot_core::journal::ClusterIdentity) -> Result<Vec<String>, MigrateError> {
    Ok(migrations_of(root, cluster)?.pop().map(|(_, state)| state.failing_pods).unwrap_or_default())
}

/// Steps 9-10's checks of the cluster `context` names, against the network type `to`: pods
/// that were failing before this cluster's newest migration started are not counted.
pub async fn verify(context: &MigrationContext, to: &str) -> Result<Vec<Check>, Error> {
    let cluster = connect(&context.cluster).await?;
    let baseline = newest_baseline(&migrations_root(&context.settings), &cluster.connection.identity)?;
    let inputs = cluster.verify_inputs(to, &baseline).await?;
    Ok(checks::verify(&inputs, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(future)
    }

    #[test]
    fn the_multus_generation_before_the_switch_is_recorded_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MULTUS_GENERATION_BEFORE);
        block_on(record_multus_generation_once(&path, async { Ok(MultusBefore::Generation(4)) })).unwrap();
        assert_eq!(recorded_multus_generation(&path).unwrap(), 4);
        // A resumed step 4: the switch has bumped the generation since; the first record stays
        // and the cluster is not even read again.
        let read_again = std::cell::Cell::new(false);
        let bumped = async {
            read_again.set(true);
            Ok(MultusBefore::Generation(5))
        };
        block_on(record_multus_generation_once(&path, bumped)).unwrap();
        assert!(!read_again.get(), "the generation was read again");
        assert_eq!(recorded_multus_generation(&path).unwrap(), 4);
    }

    #[test]
    fn a_failed_read_of_the_multus_generation_stops_the_step_and_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MULTUS_GENERATION_BEFORE);
        let failed = block_on(record_multus_generation_once(&path, async { Err(MigrateError::MultusWithoutGeneration) }));
        assert!(matches!(failed, Err(MigrateError::MultusWithoutGeneration)));
        assert!(!path.exists(), "nothing recorded, so a resume reads it again");
        // And step 6 never waits on a guessed 0 for a record that is missing or torn.
        assert!(matches!(recorded_multus_generation(&path), Err(MigrateError::MultusGenerationNotRecorded { .. })));
        std::fs::write(&path, "").unwrap();
        assert!(matches!(recorded_multus_generation(&path), Err(MigrateError::MultusGenerationNotRecorded { .. })));
        // A rollback whose cluster already runs the target: no rollout to wait for.
        std::fs::remove_file(&path).unwrap();
        block_on(record_multus_generation_once(&path, async { Ok(MultusBefore::NoRolloutComing) })).unwrap();
        assert_eq!(recorded_multus_generation(&path).unwrap(), -1);
    }
}
