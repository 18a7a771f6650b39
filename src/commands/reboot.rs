//! `fleetboot reboot`: every host rebooted and each reboot proven by a changed boot ID.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use tokio::sync::watch;

use super::args::{ClusterArgs, HostArgs, NodeSelectionArgs, OutputArgs, SshArgs, Transport, TransportRungArgs, choice, setting_duration};
use super::{cluster_target, install_interrupts, inventory_with_origins, load_settings, style_for};
use crate::adapters::config::Settings;
use crate::adapters::journal;
use crate::adapters::kube::ClusterConnection;
use crate::adapters::notify::{Notifier, redact};
use crate::engine::reboot::{GroupPolicy, LeasePolicy, NodeSelection, PreparedRun, RebootJob, Selection, prepare};
use crate::engine::runner::Abort;
use crate::report::Reporter;
use crate::report::notify::Notices;
use crate::{Error, ExitCode};
use fleetboot_core::nodes::{DrainFailure, DrainPolicy};
use fleetboot_core::settings::{self, Choice, FailureBudget, Partial, RateLimit};

/// `--drain-failure`: what a drain that times out does to its host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DrainFailureArg {
    /// Fail the host: not rebooted, uncordoned again.
    Fail,
    /// Skip the host (uncordoned again) and go on.
    Skip,
    /// Delete the remaining pods and reboot anyway.
    Force,
}

#[derive(Args, Debug)]
pub struct RebootArgs {
    #[command(flatten, next_help_heading = "Selection")]
    pub hosts: HostArgs,
    /// How reboots reach the nodes: auto (per node SSH, the cluster API, the BMC), ssh, redfish,
    /// or kube (the cluster API's exec into the node's machine-config daemon pod).
    #[arg(long, value_parser = choice::<Transport>(Transport::NAMES), help_heading = "Transport")]
    pub transport: Option<Transport>,
    #[command(flatten, next_help_heading = "Transport")]
    pub rungs: TransportRungArgs,
    #[command(flatten, next_help_heading = "Cluster")]
    pub cluster: ClusterArgs,
    #[command(flatten, next_help_heading = "Selection")]
    pub select: NodeSelectionArgs,
    /// Every node of the cluster.
    #[arg(long, conflicts_with_all = ["hosts_files", "hosts"], help_heading = "Selection")]
    pub all: bool,
    /// Only these nodes (comma-separated names).
    #[arg(long, value_delimiter = ',', value_name = "NAMES", conflicts_with_all = ["hosts_files", "hosts"], help_heading = "Selection")]
    pub nodes: Vec<String>,
    /// Leave these nodes out (comma-separated names).
    #[arg(long, value_delimiter = ',', value_name = "NAMES", help_heading = "Selection")]
    pub exclude: Vec<String>,
    /// Cluster runs: group nodes by MachineConfigPool ("pool") or by a label key, each group
    /// with its own in-flight limit; control-plane nodes always go one at a time, last.
    #[arg(long, value_name = "pool|LABEL", default_value = "pool", help_heading = "Limits")]
    pub group_by: String,
    /// Hosts per group in flight at once [default: the pool's maxUnavailable; 1 per label value].
    #[arg(long, value_name = "N", value_parser = settings::parse_limit, help_heading = "Limits")]
    pub group_concurrency: Option<usize>,
    /// Cluster runs: cordon and drain each node (Eviction API, PDBs respected) before its
    /// reboot, uncordon it once it is back.
    #[arg(long, help_heading = "Cluster")]
    pub drain: bool,
    /// How long a drain may take.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = super::args::bounded_duration, help_heading = "Cluster")]
    pub drain_timeout: humantime::Duration,
    /// When a drain times out: fail the host, skip it, or force (delete the remaining pods).
    #[arg(long, value_enum, default_value = "fail", help_heading = "Cluster")]
    pub drain_failure: DrainFailureArg,
    /// Take over the cluster's fleetboot lease from another (live) run.
    #[arg(long, help_heading = "Cluster")]
    pub break_lock: bool,
    /// Namespace of the fleetboot Lease that keeps two runs off one cluster. Runs whose leases
    /// are in different namespaces do not see each other's, and a migration looks only in
    /// kube-system: on a cluster that may be migrated, or where several people run fleetboot,
    /// keep the default.
    #[arg(long, value_name = "NAMESPACE", default_value = "kube-system", help_heading = "Cluster")]
    pub lease_namespace: String,
    /// How long the lease lasts unrenewed (renewed every third of it). A run that cannot renew
    /// it for half of it (an API outage) starts nothing new.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = super::args::lease_duration, help_heading = "Cluster")]
    pub lease_duration: humantime::Duration,
    /// Pure host-list mode: do not look for a cluster, even when one is configured (no proof
    /// through the API, no pools, no control-plane ordering, no lease).
    #[arg(long, conflicts_with_all = ["all", "nodes", "selector", "role", "drain", "resume"], help_heading = "Selection")]
    pub no_cluster: bool,
    /// The migration document's behaviour: every node at once, no groups, no ordering.
    #[arg(long, conflicts_with_all = ["group_concurrency", "concurrency"], help_heading = "Limits")]
    pub all_at_once: bool,
    #[command(flatten, next_help_heading = "Scheduling")]
    pub batch: super::args_batch::BatchArgs,
    #[command(flatten, next_help_heading = "Transport")]
    pub ssh: SshArgs,
    #[command(flatten, next_help_heading = "Output and journal")]
    pub output: OutputArgs,
    /// Show the plan and the settings; contact no host.
    #[arg(long, help_heading = "Output and journal")]
    pub dry_run: bool,
    /// Continue an interrupted run from its journal; hosts come from the journal.
    #[arg(long, value_name = "JOURNAL", conflicts_with_all = ["hosts_files", "hosts", "all", "nodes", "selector", "role"], help_heading = "Output and journal")]
    pub resume: Option<PathBuf>,
    /// Write the run's report here at its end (and on abort): report.html (self-contained, for
    /// the change ticket), report.md, timeline.svg. `fleetboot report` renders it again.
    #[arg(long, value_name = "DIR", help_heading = "Output and journal")]
    pub report: Option<PathBuf>,
    /// Write the journal here instead of the state directory.
    #[arg(long, value_name = "FILE", conflicts_with = "resume", help_heading = "Output and journal")]
    pub journal: Option<PathBuf>,
    /// Keep the journal in the cluster (ConfigMaps in --lease-namespace), so that any machine
    /// can resume the run (`--resume cluster:NAMESPACE/RUN-ID`, or `--journal-in-cluster --resume
    /// RUN-ID`). Always on when fleetboot runs in a pod.
    #[arg(long, conflicts_with_all = ["journal", "no_cluster"], help_heading = "Output and journal")]
    pub journal_in_cluster: bool,
    /// With the journal in the cluster: this run's ID. Its journal there is resumed if it
    /// exists, else a run of this ID starts (what `fleetboot job` gives its pod, so that a
    /// replacement pod finishes the same run).
    #[arg(long, value_name = "ID", conflicts_with = "resume", help_heading = "Output and journal")]
    pub run_id: Option<String>,
    /// The reboot command [default: sudo shutdown -r -t 3].
    #[arg(long, value_name = "CMD", value_parser = settings::parse_command, help_heading = "Transport")]
    pub command: Option<String>,
    /// The command that prints the boot ID [default: cat /proc/sys/kernel/random/boot_id].
    #[arg(long, value_name = "CMD", value_parser = settings::parse_command, help_heading = "Transport")]
    pub boot_id_command: Option<String>,
    /// Run on each host once it is back; a non-zero exit fails the host ("" for none).
    #[arg(long, value_name = "CMD", help_heading = "Transport")]
    pub check_command: Option<String>,
    /// From the reboot command to the new boot ID [default: 20m].
    #[arg(long, value_name = "DURATION", value_parser = setting_duration, help_heading = "Limits")]
    pub reboot_timeout: Option<Duration>,
    /// Between boot-ID probes of a rebooting host [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = setting_duration, help_heading = "Limits")]
    pub poll_interval: Option<Duration>,
    /// Hosts between "dispatched" and "confirmed back" at once [default: 1].
    #[arg(long, value_name = "N", value_parser = settings::parse_limit, help_heading = "Limits")]
    pub concurrency: Option<usize>,
    /// Reboot commands started per period: N/s, N/min, N/h or unlimited [default: unlimited].
    #[arg(long, value_name = "RATE", help_heading = "Limits")]
    pub rate: Option<RateLimit>,
    /// Connections for boot-ID probes at once [default: 64].
    #[arg(long, value_name = "N", value_parser = settings::parse_limit, help_heading = "Limits")]
    pub parallel: Option<usize>,
    /// Failed hosts tolerated (count or N%) before no new reboot starts [default: 0].
    #[arg(long, value_name = "N|P%", help_heading = "Limits")]
    pub max_failures: Option<FailureBudget>,
    /// On interrupt, run `sudo shutdown -c` on hosts whose reboot has not begun.
    #[arg(long, help_heading = "Output and journal")]
    pub cancel_pending_on_abort: bool,
    /// With --resume: the flags given here win over the values the journal recorded (each
    /// journaled as overridden). Without it, a flag that differs from the journal is refused.
    #[arg(long, requires = "resume", help_heading = "Output and journal")]
    pub override_journal: bool,
}

impl RebootArgs {
    /// What this command line sets, in the settings' model (`Some` where a flag was given).
    pub(crate) fn partial(&self) -> Partial {
        let mut flags = self.cluster.partial();
        self.ssh.apply(&mut flags);
        self.output.apply(&mut flags);
        flags.command.clone_from(&self.command);
        flags.boot_id_command.clone_from(&self.boot_id_command);
        flags.check_command = self.check_command.clone().map(|c| Some(c).filter(|c| !c.trim().is_empty()));
        flags.timeout = self.reboot_timeout;
        flags.poll_interval = self.poll_interval;
        flags.concurrency = self.concurrency;
        flags.group_concurrency = self.group_concurrency;
        flags.rate = self.rate.map(|r| r.0);
        flags.parallel = self.parallel;
        flags.max_failures = self.max_failures;
        flags.transport = self.transport;
        self.rungs.apply(&mut flags);
        flags.cancel_pending_on_abort = self.cancel_pending_on_abort.then_some(true);
        flags.batch = self.batch.partial();
        flags
    }
}

impl RebootArgs {
    /// Whether the hosts come from the cluster (rather than from a host list).
    fn selects_nodes(&self) -> bool {
        self.all || !self.nodes.is_empty() || self.select.label_selector().is_some()
    }

    fn drain_policy(&self) -> Option<DrainPolicy> {
        self.drain.then(|| DrainPolicy {
            timeout_ms: Duration::from(self.drain_timeout).as_millis() as u64,
            on_failure: match self.drain_failure {
                DrainFailureArg::Skip => DrainFailure::Skip,
                DrainFailureArg::Force => DrainFailure::Force,
                DrainFailureArg::Fail => DrainFailure::Fail,
            },
        })
    }
}

/// Flags and config → the typed job the engine runs.
pub async fn job_from_args(args: &RebootArgs, settings: Settings) -> Result<RebootJob, Error> {
    let in_cluster = args.journal_in_cluster || crate::adapters::kube::in_pod();
    let named_run = match &args.run_id {
        Some(_) if !in_cluster => {
            let reason = "names a run whose journal is in the cluster: add --journal-in-cluster".to_owned();
            return Err(crate::adapters::config::ConfigError::BadValue { key: "--run-id", reason }.into());
        }
        Some(id) => Some(crate::adapters::kube::journal_store::JournalPlace::new(&args.lease_namespace, id)?),
        None => None,
    };
    let mut selection = match &args.resume {
        Some(given) => match resume_place(given, in_cluster, &args.lease_namespace)? {
            Some(place) => Selection::ResumeInCluster(place),
            None => Selection::Resume(given.clone()),
        },
        None if args.selects_nodes() => Selection::Nodes(NodeSelection {
            label_selector: args.select.label_selector(),
            label_keys_alone: args.select.label_keys_alone(),
            names: args.nodes.clone(),
            exclude: args.exclude.clone(),
            address_type: args.select.address_type.api_name().to_owned(),
        }),
        None => Selection::Hosts(inventory_with_origins(&args.hosts, &settings)?),
    };
    // What this command line gave explicitly (the flags alone): what a resume takes over the journal's.
    let explicit = args.partial();
    // One connection for the whole run: discovery, the Node watcher, the lease and the drain.
    // A resume connects too, to check that its journal belongs to this cluster. A host list is
    // mapped onto the cluster's nodes whenever a cluster is configured (unless --no-cluster):
    // how the hosts were named must not decide whether the cluster's rules apply.
    let wants_cluster = match &selection {
        Selection::Nodes(_) => true,
        Selection::Resume(path) => resume_needs_cluster(path)?,
        Selection::ResumeInCluster(_) => true,
        _ if in_cluster => true,
        Selection::Hosts(_) => !args.no_cluster && super::cluster_configured(&settings),
    };
    let cluster = match wants_cluster {
        true => match ClusterConnection::open(&cluster_target(&settings)).await {
            Ok(connection) => Some(connection),
            // A host list under no cluster the user named: a $KUBECONFIG or ~/.kube/config that
            // cannot even be loaded names no cluster, so the run is a pure host-list run, and
            // says so. (A cluster the user named, or one that loads but does not answer, stops
            // the run: its nodes could be on the list.)
            Err(crate::adapters::kube::ClusterError::NoConfig(reason))
                if matches!(selection, Selection::Hosts(_)) && !super::cluster_named(&settings) =>
            {
                eprintln!(
                    "warning: no usable kubeconfig ({reason}); a pure host-list run: no host is checked against a cluster, \
                     none is proven through one (pass --kubeconfig or --context for a cluster run, --no-cluster to silence this)"
                );
                None
            }
            Err(e) => return Err(e.into()),
        },
        false => None,
    };
    // A named run: resumed when its journal exists in the cluster (a replacement pod), else
    // started under that ID.
    if let (Some(place), Some(connection)) = (&named_run, &cluster)
        && crate::adapters::kube::journal_store::exists(&connection.client, place).await?
    {
        selection = Selection::ResumeInCluster(place.clone());
    }
    // Every permission the run needs, asked before anything is touched.
    if let Some(connection) = &cluster {
        use crate::adapters::config::Transport;
        let transport = settings.run.transport;
        let bmc = matches!(transport, Transport::Auto | Transport::Redfish);
        let batch = settings.run.batch.reads_cluster();
        let through_the_api = settings.run.transport_order.commands_only_through_the_api(transport);
        let (mut modes, mode) = fleetboot_core::rbac::run_modes(bmc, through_the_api, args.drain, batch);
        if in_cluster {
            modes.push(fleetboot_core::rbac::Mode::JournalInCluster);
        }
        let namespaces =
            fleetboot_core::rbac::Namespaces { lease: args.lease_namespace.clone(), bmh: settings.redfish.bmh_namespaces.clone() };
        crate::adapters::kube::access::check(&connection.client, &fleetboot_core::rbac::needed(&modes, &namespaces), mode).await?;
    }
    let group_concurrency = settings.run.group_concurrency;
    Ok(RebootJob {
        settings,
        selection,
        cluster,
        journal: args.journal.clone(),
        journal_in_cluster: in_cluster,
        run_id: named_run.map(|place| place.run_id),
        // In a pod (`fleetboot job`), the node it runs on goes last.
        own_node: std::env::var("FLEETBOOT_NODE_NAME").ok().filter(|n| !n.is_empty()),
        groups: GroupPolicy { group_by: args.group_by.clone(), group_concurrency, all_at_once: args.all_at_once, migration_reboot: false },
        drain: args.drain_policy(),
        lease: LeasePolicy {
            namespace: args.lease_namespace.clone(),
            break_lock: args.break_lock,
            duration: args.lease_duration.into(),
            migration_holder: None,
        },
        explicit,
        refuse_conflicts: !args.override_journal,
        watch_from_the_start: !args.dry_run,
    })
}

/// `--resume` naming a journal in the cluster: `cluster:NAMESPACE/RUN-ID`, or a bare run ID with
/// `--journal-in-cluster` (or in a pod), in the lease's namespace. A path to a local file stays
/// a file.
fn resume_place(
    given: &Path,
    in_cluster: bool,
    lease_namespace: &str,
) -> Result<Option<crate::adapters::kube::journal_store::JournalPlace>, Error> {
    use crate::adapters::kube::journal_store::{JournalPlace, LOCATION_PREFIX};
    let text = given.to_string_lossy();
    if let Some(place) = JournalPlace::parse(&text, lease_namespace) {
        return Ok(Some(place?));
    }
    if in_cluster && !given.exists() {
        return Ok(Some(JournalPlace::parse(&format!("{LOCATION_PREFIX}{text}"), lease_namespace).expect("a cluster: name")?));
    }
    Ok(None)
}

/// Whether the journal to resume is a cluster run, from its start record alone (the engine
/// reads the whole journal once, under its lock).
fn resume_needs_cluster(path: &Path) -> Result<bool, Error> {
    let start = journal::read_start(path)?;
    Ok(start.api_proof || start.cluster.is_some())
}

/// Flags and config file → the prepared run, as `run` prepares it (settings decided once, the
/// cluster connected, the journal planned or taken over). The in-process tests start here and
/// hand [`PreparedRun::execute`] their own event sink and abort channel.
pub async fn prepare_from_args(args: &RebootArgs, config: Option<&Path>) -> Result<PreparedRun, Error> {
    let settings = load_settings(config, &args.partial())?;
    let job = job_from_args(args, settings).await?;
    let prepared = prepare(job).await?;
    // Blocker pods are the cluster's: a run without one would never see them.
    if prepared.settings().run.batch.block_on_pods.is_some() && !prepared.is_cluster_run() {
        let reason = "pods are read from a cluster, and this is a host-list run with no cluster".to_owned();
        return Err(crate::adapters::config::ConfigError::BadValue { key: "--block-on-pods", reason }.into());
    }
    Ok(prepared)
}

pub async fn run(args: RebootArgs, config: Option<&Path>) -> Result<ExitCode, Error> {
    let prepared = prepare_from_args(&args, config).await?;
    if args.dry_run {
        if let Some(line) = prepared.cluster_line() {
            println!("{line}");
        }
        print!(
            "{}",
            crate::report::plan::render_plan(
                prepared.plan(),
                prepared.settings(),
                prepared.is_cluster_run(),
                prepared.listed_as(),
                prepared.limits()
            )
        );
        print!("{}", crate::report::plan::render_batch(&prepared.settings().run.batch, crate::adapters::system::now_ms()));
        for line in prepared.drain_preflight().await {
            println!("{line}");
        }
        if let Some(url) = &args.batch.notify {
            println!("notify: {} ({:?}; run started, drained, rebooted, failed, held, finished)", redact(url), args.batch.notify_format);
        }
        return Ok(ExitCode::Ok);
    }
    // --notify: checked before anything is touched; told in order, never holding the run up.
    let notifier = match &args.batch.notify {
        Some(url) => Some(Notifier::start(url, |warning| eprintln!("warning: {warning}")).map_err(|e| {
            crate::adapters::config::ConfigError::BadValue { key: "--notify", reason: format!("{}: {}", e.shown, e.reason) }
        })?),
        None => None,
    };
    let format = args.batch.notify_format;
    let mut notices = Notices::default();
    // --metrics-listen: the run's metrics, updated from its events, served while it runs.
    let metrics = std::sync::Arc::new(std::sync::Mutex::new(crate::report::metrics::RunMetrics::default()));
    let _metrics_server = match &args.batch.metrics_listen {
        Some(address) => {
            let shared = metrics.clone();
            let render = std::sync::Arc::new(std::sync::Mutex::new(move || shared.lock().unwrap().text()));
            let server = crate::adapters::metrics::MetricsServer::start(address, render).await.map_err(|e| {
                crate::adapters::config::ConfigError::BadValue {
                    key: "--metrics-listen",
                    reason: format!("cannot listen on {address}: {e}"),
                }
            })?;
            eprintln!("metrics: http://{}/metrics", server.address);
            Some(server)
        }
        None => None,
    };
    super::warn_if_insecure(prepared.settings());
    let (trigger, abort) = watch::channel(Abort::No);
    install_interrupts(trigger.clone());
    let mut reporter = Reporter::new(style_for(prepared.settings().run.output), std::io::stdout().lock());
    let mut journal_path = None;
    let report_target = cluster_target(prepared.settings());
    let summary = prepared
        .execute((trigger, abort), |event| {
            if let fleetboot_core::events::Event::Started { journal, .. } = event {
                journal_path = Some(journal.clone());
            }
            reporter.report(event);
            if args.batch.metrics_listen.is_some() {
                metrics.lock().unwrap().update(event);
            }
            if let (Some(notifier), Some(notice)) = (&notifier, notices.of(event)) {
                notifier.send(notices.payload(&notice, format));
            }
        })
        .await;
    // --report: from the journal, whatever the run's end (an error after the start included).
    if let (Some(dir), Some(journal)) = (&args.report, &journal_path) {
        write_report(dir, journal, &report_target, &args.lease_namespace).await;
    }
    let summary = summary?;
    if let Some(notifier) = notifier {
        notifier.finish(Duration::from_secs(15)).await;
    }
    Ok(summary.exit_code())
}

/// The run's report into `dir`, from its journal (a file, or ConfigMaps in the cluster at
/// `target`); a report that cannot be written is a warning (the run's outcome stands), never
/// hidden.
async fn write_report(dir: &Path, journal: &Path, target: &crate::adapters::kube::ClusterTarget, lease_namespace: &str) {
    use crate::adapters::kube::journal_store::JournalPlace;
    let now = crate::adapters::system::now_ms();
    let files = match JournalPlace::parse(&journal.to_string_lossy(), lease_namespace) {
        Some(place) => match place {
            Ok(place) => crate::adapters::reports::cluster_run_files(target, &place, now).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        None => crate::adapters::reports::run_files(journal, now).map_err(|e| e.to_string()),
    };
    match files {
        Ok(files) => match crate::adapters::reports::write(dir, files) {
            Ok(written) => {
                let html = written.iter().find(|p| p.extension().is_some_and(|e| e == "html")).unwrap_or(&written[0]);
                eprintln!("report: {}", html.display());
            }
            Err(e) => eprintln!("warning: the report was not written: {e}"),
        },
        Err(e) => eprintln!("warning: the report was not written: {e}"),
    }
}
