//! The migration's orchestrator: `fleetboot migrate` and `fleetboot verify` without their
//! command lines. The OpenShift SDN → OVN-Kubernetes migration runs in the order the cluster's
//! release requires ([`Flow`]: the seed document's steps 0-11 up to 4.7, the documented
//! two-phase flow for 4.8-4.16, nothing from 4.17), each step checked, journaled and
//! resumable; the reboot of every node is the reboot engine's own run, with its own journal.
//!
//! It never prints: every step, warning and result is a [`MigrationEvent`] (and the reboot
//! run's [`Event`]s) handed to the caller's sink, which the reporters render.
//!
//! This file decides how a migration starts (new, resumed, a rollback taking over, refused) and
//! holds its types; each job has its own file: `cluster` (what is read and patched), `run` (the
//! stability reads, the run under the lease, the report), `steps` (the step match), `waits`
//! (multus, the pools' rollouts), `reboots` (steps 7 and 10), `verify`, `plan`, `history` (the
//! migrations under the state directory), `rollback` and `live` (their flows' own parts).

mod cluster;
mod history;
mod live;
mod plan;
mod reboots;
mod rollback;
mod run;
mod steps;
mod verify;
mod waits;

use history::{migration_in_progress, migrations_of, migrations_root};
use plan::plan;
use run::{run_under_lease, stable_reads};
pub use verify::verify;

use std::cell::RefCell;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::adapters::config::Settings;
use crate::adapters::kube::ClusterTarget;
use crate::adapters::migration_journal::{self, FileError, MigrationJournalError, MigrationStore};
use crate::engine::error::{RunError, WrongCluster};
use crate::engine::reboot::{GroupPolicy, LeasePolicy, NodeSelection, RebootJob, Selection, prepare};
use crate::engine::runner::Abort;
use cluster::{
    Changes, NodeView, Target, api_error, cluster_operators, cluster_versions, condition_true, connect, daemon_sets, machine_configs,
    name_of, namespaces, network_config, network_operator, pool_of_node, status_observed, str_at,
};
use fleetboot_core::ExitCode;
use fleetboot_core::events::Event;
use fleetboot_core::migrate::checks::{self, Check};
use fleetboot_core::migrate::events::{MigrationEvent, MigrationPlan, PlannedStep, Progress};
use fleetboot_core::migrate::record::{MigrationEntry, MigrationState};
use fleetboot_core::migrate::start::{StartDecision, StartRequest, decide_start};
use fleetboot_core::migrate::{Flow, FlowError, MIGRATION_ANNOTATION, Step, flow_for_target, minor_version, old_namespace, source_type};
use fleetboot_core::settings::Partial;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("the cluster is not ready for the migration:\n  - {}", .0.join("\n  - "))]
    Preflight(Vec<String>),
    /// No order of steps fits the cluster's release (or none can be told from it).
    #[error("the cluster is not ready for the migration:\n  - {0}")]
    NoFlow(#[source] FlowError),
    #[error(transparent)]
    Journal(#[from] MigrationJournalError),
    #[error(transparent)]
    Access(#[from] crate::adapters::kube::access::AccessError),
    #[error("a migration to {target} is in progress ({}); continue it with --resume, or roll it back with --to {rollback_to}", dir.display())]
    InProgress { target: String, dir: PathBuf, rollback_to: String },
    #[error("no migration in progress under {} to resume", root.display())]
    NothingToResume { root: PathBuf },
    /// `--journal-in-cluster` asked for what it cannot do.
    #[error("--journal-in-cluster: {0}")]
    InCluster(String),
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
    RebootJournal(#[source] fleetboot_core::journal::JournalError),
    /// The reboot run of step 7 (or of `--reboot-error-nodes`) could not be set up or run.
    #[error("{0}")]
    Reboot(#[source] Box<RunError>),
    #[error(transparent)]
    WrongCluster(#[from] WrongCluster),
    #[error(transparent)]
    Cluster(#[from] crate::adapters::kube::ClusterError),
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
    /// `--journal-in-cluster`: step 7's reboot run keeps its journal in the cluster
    /// (ConfigMaps in kube-system, run `<migration-id>-reboot`), so that a migration resumed
    /// from another machine finds it.
    pub journal_in_cluster: bool,
    /// `--run-id` / `--resume ID` with `--journal-in-cluster`: the migration's ID, which names
    /// its journal and side files in the cluster (a Job's pod resumes it by this ID).
    pub run_id: Option<String>,
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
pub async fn migrate(options: MigrationOptions, context: &MigrationContext, sink: &mut Sink<'_>) -> Result<ExitCode, MigrateError> {
    let events = Events(RefCell::new(sink));
    let cluster = connect(&context.cluster).await?;
    // Every permission the migration needs (fleetboot_core::rbac), asked before anything is
    // touched; a plan only reads.
    if !options.plan {
        use fleetboot_core::rbac::{Mode, Namespaces, needed, with_base};
        let mut modes = with_base(Mode::Migrate);
        // Steps 7 and 10 through the API's exec only: asked now, not at step 7 with the pools
        // paused and the network switched.
        if context.settings.run.transport_order.commands_only_through_the_api(context.settings.run.transport) {
            modes.push(Mode::KubeTransport);
        }
        if options.journal_in_cluster {
            modes.push(Mode::JournalInCluster);
        }
        let namespaces = Namespaces { lease: reboots::REBOOT_JOURNAL_NAMESPACE.to_owned(), ..Namespaces::default() };
        let rules = needed(&modes, &namespaces);
        crate::adapters::kube::access::check(&cluster.connection.client, &rules, Mode::Migrate).await?;
    }
    let root = migrations_root(&context.settings);
    // --journal-in-cluster: the migration is the one its ID names in the cluster (or, named by
    // none, the one unfinished there), never one found on this machine's disk (a restarted pod
    // has none); its local directory holds the reports.
    let client = &cluster.connection.client;
    let in_cluster_id = match (options.journal_in_cluster, &options.run_id) {
        (false, _) => None,
        (true, Some(id)) => {
            migration_journal::cluster_place(STORE_NAMESPACE, id)?;
            // A migration a rollback took over is the rollback's from then on: the same command
            // line run again (a Job's next pod) goes on with the rollback.
            Some(superseder_of(client, id).await?)
        }
        (true, None) => Some(unfinished_or_new(client, &options).await?),
    };
    let (existing, existing_state) = match &in_cluster_id {
        Some(id) => match migration_journal::load_from_cluster(client, STORE_NAMESPACE, id).await? {
            Some((_, state)) => (Some(root.join(id)), Some(state)),
            None => (None, None),
        },
        None => {
            let existing = match &options.dir {
                Some(dir) => dir.join("migration.jsonl").exists().then(|| dir.clone()),
                None => migration_in_progress(&root, &cluster.connection.identity)?,
            };
            let existing_state = match &existing {
                Some(dir) => Some(migration_journal::load(&dir.join("migration.jsonl")).map_err(MigrateError::from)?.1),
                None => None,
            };
            (existing, existing_state)
        }
    };
    // `--dir` naming a journal with no start yet: a fresh migration in that directory.
    let (existing, existing_state) = match existing_state {
        Some(s) if s.run_id.is_empty() => (None, None),
        found => (existing, found),
    };
    let journal_of = |dir: &Path| match &in_cluster_id {
        Some(id) => migration_journal::cluster_place(STORE_NAMESPACE, id).map(|p| p.location()).unwrap_or_else(|_| dir.join(id)),
        None => dir.join("migration.jsonl"),
    };
    // A migration's journal (named with --dir) belongs to its cluster alone.
    if let (Some(dir), Some(journaled)) = (&existing, existing_state.as_ref().and_then(|s| s.cluster.as_ref()))
        && !journaled.same_cluster(&cluster.connection.identity)
    {
        return Err(WrongCluster {
            journal: journal_of(dir),
            journaled: journaled.clone().into(),
            given: cluster.connection.identity.clone().into(),
        }
        .into());
    }
    // A migration named by its ID in the cluster that is over is never started again on top
    // of its journal.
    if let (Some(_), Some(state)) = (&in_cluster_id, &existing_state)
        && state.is_over()
    {
        let location = journal_of(&root);
        // Its own command line run again once it finished (a Job's pod killed after the last
        // record, before it exited, then restarted): nothing is left to do, and a refusal would
        // fail the Job after a migration that succeeded. Nothing is written to its journal. A
        // resume (`--resume ID`) goes on with the migration as it started whatever --to says
        // (`decide_start`), so a finished rollback resumed with the default --to is finished too.
        if state.superseded_by.is_none() && state.is_done(Step::Cleanup) && (state.target == options.to || options.resume) {
            let message = format!("the migration {} is already finished (step 11 done): nothing to do", location.display());
            events.emit(MigrationEvent::MigrationWarning { message });
            events.emit(MigrationEvent::MigrationComplete { target: state.target.clone() });
            events.emit(MigrationEvent::MigrationFinished { complete: true, exit_code: ExitCode::Ok as u8 });
            return Ok(ExitCode::Ok);
        }
        return Err(MigrateError::InCluster(format!("the migration {} is over; a new one takes another --run-id", location.display())));
    }
    // The unfinished migration its ID names, towards the same network: this very migration,
    // started again (`fleetboot job migrate`'s replacement pod runs the same command line), so
    // it is resumed, as `reboot --run-id` resumes its run. One found without its ID is not: a
    // new `migrate` beside an unfinished one is refused, as on disk.
    let named_again = options.run_id.is_some() && existing_state.as_ref().is_some_and(|s| s.target == options.to);
    // New, resumed, a rollback taking over, or refused (fleetboot_core::migrate::start).
    let request = StartRequest { to: &options.to, resume: options.resume || named_again, cleanup: options.cleanup, plan: options.plan };
    let found = existing.clone().zip(existing_state.as_ref());
    // Where the migration is journaled in the cluster: its ID's, or its rollback's.
    let mut store_id = in_cluster_id.clone();
    let (dir, supersedes) = match decide_start(found, &request) {
        StartDecision::Fresh => match &in_cluster_id {
            Some(id) => (root.join(id), None),
            None => (options.dir.clone().unwrap_or_else(|| root.join(crate::engine::reboot::new_run_id())), None),
        },
        // A rollback of a migration journaled in the cluster: journaled there too, under an ID
        // named from the old one's; the old journal is marked superseded once it has started.
        StartDecision::Supersede(_) if let Some(id) = &in_cluster_id => {
            let rollback = migration_journal::rollback_id(id);
            migration_journal::cluster_place(STORE_NAMESPACE, &rollback)?;
            store_id = Some(rollback.clone());
            (root.join(&rollback), Some(journal_of(&root)))
        }
        StartDecision::Continue(dir) => (dir, None),
        StartDecision::Supersede(previous) => (root.join(crate::engine::reboot::new_run_id()), Some(previous)),
        StartDecision::RefuseInProgress { dir, target, rollback_to } => {
            let dir = if in_cluster_id.is_some() { journal_of(&dir) } else { dir };
            return Err(MigrateError::InProgress { target, dir, rollback_to });
        }
        StartDecision::RefuseNothingToResume => return Err(MigrateError::NothingToResume { root }),
    };
    let journal_path = dir.join("migration.jsonl");
    let state = match &store_id {
        // The rollback's own journal, when a kill left it started (before the old one was marked).
        Some(id) if supersedes.is_some() => {
            migration_journal::load_from_cluster(client, STORE_NAMESPACE, id).await?.map(|(_, state)| state).unwrap_or_default()
        }
        // Read from the cluster above; read again once the journal is taken over (run_under_lease).
        Some(_) => existing_state.clone().unwrap_or_default(),
        None if journal_path.exists() => migration_journal::load(&journal_path).map_err(MigrateError::from)?.1,
        None => MigrationState::default(),
    };

    let mut problems = checks::check_mtu_and_port(&options.to, options.mtu, options.geneve_port, options.node_mtu);
    if options.to == "OpenShiftSDN" && (options.geneve_port.is_some() || options.v4_internal_subnet.is_some() || options.routing_via_host) {
        problems.push("--geneve-port, the internal subnets and the gateway options configure OVN-Kubernetes; a rollback to OpenShiftSDN takes --mtu and --vxlan-port".into());
    }
    if options.to == "OVNKubernetes" && options.vxlan_port.is_some() {
        problems.push("--vxlan-port configures OpenShift SDN (a rollback); OVN-Kubernetes takes --geneve-port".into());
    }
    if !problems.is_empty() {
        return Err(MigrateError::Preflight(problems));
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
            if options.flow.is_some() {
                refused.push("mode-live: --flow chooses an offline flow; it does not go with --mode live".into());
            }
            refused.extend(live::hosted_refusal(&cluster).await?);
            if !refused.is_empty() {
                return Err(MigrateError::Preflight(refused));
            }
            (
                Flow::Live,
                format!(
                    "--mode live: OpenShift {version} has the limited live migration (openshift-docs nw-ovn-kubernetes-live-migration.adoc): one patch, the network operator and the MCO do the rest, every node rebooted {} times{}",
                    fleetboot_core::migrate::live::EXPECTED_REBOOTS,
                    fleetboot_core::migrate::live::rollback_note(&options.to)
                ),
            )
        }
        None => {
            // No flag makes a migration of a release from 4.17 on (nor of a later major).
            let past_openshift_sdn = minor_version(&version).is_some_and(|v| v >= (4, 17));
            match (options.flow, flow_for_target(&version, &options.to)) {
                (_, Err(e)) if past_openshift_sdn => return Err(MigrateError::NoFlow(e)),
                (None, Err(e)) => return Err(MigrateError::NoFlow(e)),
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
        && live::hosted_refusal(&cluster).await?.is_none()
    {
        format!(
            "{reason}. RECOMMENDED on this release: the limited live migration (the documents' preferred method), fleetboot migrate --mode live; --mode offline keeps this flow"
        )
    } else {
        reason
    };
    let refused = checks::options_refused_by_release(&version, minor_version(&version).map(|v| v.1), &rollback::flags_given(&options));
    if !refused.is_empty() {
        return Err(MigrateError::Preflight(refused));
    }
    let subnets = checks::InternalSubnets {
        join: options.v4_internal_subnet.clone(),
        transit: options.transit_switch_subnet.clone(),
        masquerade: options.masquerade_subnet.clone(),
    };
    if options.plan {
        let plan =
            plan(&options, &cluster, &state, flow, &reason, &version, &dir, &subnets, supersedes.is_some(), context.settings.run.timeout)
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
            return Err(MigrateError::Preflight(findings.refusals));
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
    let _journal_lock = if options.break_lock && store_id.is_none() && journal_path.exists() {
        Some(migration_journal::hold(&journal_path).map_err(MigrateError::from)?)
    } else {
        None
    };
    // No reboot run beside a migration (checked with the migration's lease held). Nothing cuts
    // the settle time short: until its reboot step a migration has no abort signal of its own
    // (Ctrl-C ends the process; `--resume` goes on from the journal).
    let mut warn = |message: String| events.emit(MigrationEvent::MigrationWarning { message });
    let lease = crate::engine::lease::take(
        &cluster.connection,
        &crate::engine::lease::LeaseTake {
            namespace: fleetboot_core::rbac::MIGRATION_LEASE_NAMESPACE,
            name: crate::adapters::kube::MIGRATION_LEASE_NAME,
            duration: options.lease_duration,
            break_lock: options.break_lock,
            run_id: &run_id,
            may_reclaim: true,
            exclusive_with: crate::adapters::kube::LEASE_NAME,
            allowed_beside: None,
            waiting_before: "changing anything",
            previous_stops: "the migration that held the lease stops",
        },
        &mut warn,
        std::future::pending(),
    )
    .await?
    .lock;
    let at = match &store_id {
        Some(id) => StoreAt::Cluster { namespace: STORE_NAMESPACE.to_owned(), id: id.clone() },
        None => StoreAt::Dir,
    };
    let outcome = run_under_lease(&options, context, &cluster, &dir, &at, state, start, &lease, &events).await;
    lease.release().await;
    outcome
}

/// The migration `id` names in the cluster, or the rollback that took it over (followed to the
/// newest: a rollback's journal says so in its `superseded_by`).
async fn superseder_of(client: &kube::Client, id: &str) -> Result<String, MigrateError> {
    let mut id = id.to_owned();
    // A chain longer than a few hops is not one fleetboot writes (each rollback is named from
    // the migration it took over); stop there rather than follow a loop.
    for _ in 0..8 {
        let Some((_, state)) = migration_journal::load_from_cluster(client, STORE_NAMESPACE, &id).await? else { break };
        let next = state.superseded_by.as_ref().and_then(|by| by.to_str()).and_then(|by| {
            crate::adapters::kube::journal_store::JournalPlace::parse(by, STORE_NAMESPACE)?
                .ok()
                .and_then(|place| place.run_id.strip_suffix("-migration").map(str::to_owned))
        });
        match next {
            Some(next) => id = next,
            None => break,
        }
    }
    Ok(id)
}

/// `--journal-in-cluster` with no ID: the one unfinished migration journaled in the cluster,
/// found by its index entry (as on disk the one unfinished under the state directory is), or a
/// new ID when there is none; more than one is refused, listing them.
async fn unfinished_or_new(client: &kube::Client, options: &MigrationOptions) -> Result<String, MigrateError> {
    let unfinished = migration_journal::unfinished_in_cluster(client, STORE_NAMESPACE).await?;
    match unfinished.as_slice() {
        [] if options.resume || options.cleanup => Err(MigrateError::InCluster(format!(
            "no unfinished migration journaled in the cluster ({STORE_NAMESPACE}) to {}",
            if options.resume { "resume" } else { "clean up" }
        ))),
        [] => Ok(crate::engine::reboot::new_run_id()),
        [(id, _)] => Ok(id.clone()),
        many => Err(MigrateError::InCluster(format!(
            "{} unfinished migrations are journaled in the cluster ({STORE_NAMESPACE}): {}; name one with --run-id ID",
            many.len(),
            many.iter().map(|(id, state)| format!("{id} (to {})", state.target)).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Where `--journal-in-cluster` keeps the migration's journal and side files: the namespace of
/// the migration's lease and of its reboot run's journal.
pub(super) const STORE_NAMESPACE: &str = "kube-system";

/// Where the migration's journal and side files are: its directory, or the cluster.
pub(super) enum StoreAt {
    Dir,
    Cluster { namespace: String, id: String },
}

struct Migration<'a, 'e> {
    options: &'a MigrationOptions,
    /// The journal and the side files a resume needs (the directory's, or the cluster's).
    store: &'a dyn migration_journal::MigrationStore,
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
