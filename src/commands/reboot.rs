//! `fleetboot reboot`: every host rebooted and each reboot proven by a changed boot ID.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::sync::watch;

use super::args::{ClusterArgs, HostArgs, NodeSelectionArgs, OutputArgs, SshArgs, TransportArg, choice_name};
use super::{cluster_target, install_interrupts, inventory, load_settings, make_ssh_client, run_id, style_for, warn_if_insecure};
use crate::adapters::config::{self, Layer, Settings};
use crate::adapters::journal::{self, JournalWriter};
use crate::adapters::ssh::SshTransport;
use crate::engine::runner::{self, Abort, RetryPolicy, RunInputs};
use crate::report::Reporter;
use crate::{Error, ExitCode};
use fleetboot_core::hosts::{self, Host};
use fleetboot_core::plan::{self, plan_reboot};

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
    #[command(flatten)]
    pub hosts: HostArgs,
    /// How reboots reach the nodes: auto (SSH, the BMC as fallback), ssh, or redfish.
    #[arg(long, value_enum)]
    pub transport: Option<TransportArg>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub select: NodeSelectionArgs,
    /// Every node of the cluster.
    #[arg(long, conflicts_with_all = ["hosts_files", "hosts"])]
    pub all: bool,
    /// Only these nodes (comma-separated names).
    #[arg(long, value_delimiter = ',', value_name = "NAMES", conflicts_with_all = ["hosts_files", "hosts"])]
    pub nodes: Vec<String>,
    /// Leave these nodes out (comma-separated names).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub exclude: Vec<String>,
    /// Cluster runs: group nodes by MachineConfigPool ("pool") or by a label key, each group
    /// with its own in-flight limit; control-plane nodes always go one at a time, last.
    #[arg(long, value_name = "pool|LABEL", default_value = "pool")]
    pub group_by: String,
    /// Hosts per group in flight at once [default: the pool's maxUnavailable; 1 per label value].
    #[arg(long, value_name = "N")]
    pub group_concurrency: Option<usize>,
    /// Cluster runs: cordon and drain each node (Eviction API, PDBs respected) before its
    /// reboot, uncordon it once it is back.
    #[arg(long)]
    pub drain: bool,
    /// How long a drain may take.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub drain_timeout: humantime::Duration,
    /// When a drain times out: fail the host, skip it, or force (delete the remaining pods).
    #[arg(long, value_enum, default_value = "fail")]
    pub drain_failure: DrainFailureArg,
    /// Take over the cluster's fleetboot lease from another (live) run.
    #[arg(long)]
    pub break_lock: bool,
    /// Namespace of the fleetboot Lease that keeps two runs off one cluster.
    #[arg(long, value_name = "NAMESPACE", default_value = "kube-system")]
    pub lease_namespace: String,
    /// The migration document's behaviour: every node at once, no groups, no ordering.
    #[arg(long, conflicts_with_all = ["group_concurrency", "concurrency"])]
    pub all_at_once: bool,
    #[command(flatten)]
    pub ssh: SshArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Show the plan and the settings; contact no host.
    #[arg(long)]
    pub dry_run: bool,
    /// Continue an interrupted run from its journal; hosts come from the journal.
    #[arg(long, value_name = "JOURNAL", conflicts_with_all = ["hosts_files", "hosts", "all", "nodes", "selector", "role"])]
    pub resume: Option<PathBuf>,
    /// Write the journal here instead of the state directory.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub journal: Option<PathBuf>,
    /// The reboot command [default: sudo shutdown -r -t 3].
    #[arg(long, value_name = "CMD")]
    pub command: Option<String>,
    /// The command that prints the boot ID [default: cat /proc/sys/kernel/random/boot_id].
    #[arg(long, value_name = "CMD")]
    pub boot_id_command: Option<String>,
    /// Run on each host once it is back; a non-zero exit fails the host.
    #[arg(long, value_name = "CMD")]
    pub check_command: Option<String>,
    /// From the reboot command to the new boot ID [default: 20m].
    #[arg(long, value_name = "DURATION")]
    pub reboot_timeout: Option<String>,
    /// Between boot-ID probes of a rebooting host [default: 5s].
    #[arg(long, value_name = "DURATION")]
    pub poll_interval: Option<String>,
    /// Hosts between "dispatched" and "confirmed back" at once [default: 1].
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Reboot commands started per period: N/s, N/min, N/h or unlimited [default: unlimited].
    #[arg(long, value_name = "RATE")]
    pub rate: Option<String>,
    /// Connections for boot-ID probes at once [default: 64].
    #[arg(long, value_name = "N")]
    pub parallel: Option<usize>,
    /// Failed hosts tolerated (count or N%) before no new reboot starts [default: 0].
    #[arg(long, value_name = "N|P%")]
    pub max_failures: Option<String>,
    /// On interrupt, run `sudo shutdown -c` on hosts whose reboot has not begun.
    #[arg(long)]
    pub cancel_pending_on_abort: bool,
}

impl RebootArgs {
    pub(crate) fn layer(&self) -> Layer {
        let mut layer = Layer::default();
        self.ssh.apply(&mut layer);
        self.output.apply(&mut layer);
        let r = &mut layer.reboot;
        r.command.clone_from(&self.command);
        r.boot_id_command.clone_from(&self.boot_id_command);
        r.check_command.clone_from(&self.check_command);
        r.timeout.clone_from(&self.reboot_timeout);
        r.poll_interval.clone_from(&self.poll_interval);
        r.concurrency = self.concurrency;
        r.rate.clone_from(&self.rate);
        r.parallel = self.parallel;
        r.max_failures.clone_from(&self.max_failures);
        r.transport = self.transport.map(choice_name);
        if self.cancel_pending_on_abort {
            r.cancel_pending_on_abort = Some(true);
        }
        layer
    }
}

/// The reboot inventory from the cluster: selected nodes, minus exclusions, each reached at
/// its address of the chosen type. Any node without exactly one such address stops the run.
/// Also returns the chosen nodes as discovered, for the BMC inventory.
async fn cluster_inventory(
    args: &RebootArgs,
    client: &kube::Client,
    server: &str,
) -> Result<(Vec<Host>, fleetboot_core::plan::Grouping, Vec<fleetboot_core::nodes::NodeInfo>), Error> {
    let (found, pools) = crate::adapters::kube::discover_with_pools(
        client,
        server,
        args.select.label_selector().as_deref(),
        args.select.address_type.api_name(),
    )
    .await?;
    let unknown: Vec<&String> = args.nodes.iter().chain(&args.exclude).filter(|n| !found.iter().any(|f| &f.name == *n)).collect();
    if !unknown.is_empty() {
        return Err(Error::Selection(format!(
            "no such node in the cluster (or not matching the selector): {}",
            unknown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    let chosen: Vec<fleetboot_core::nodes::NodeInfo> = found
        .into_iter()
        .filter(|n| args.nodes.is_empty() || args.nodes.contains(&n.name))
        .filter(|n| !args.exclude.contains(&n.name))
        .collect();
    let problems = fleetboot_core::nodes::address_problems(&chosen);
    if !problems.is_empty() {
        return Err(Error::Selection(format!("{}; use --address-type or --exclude", problems.join("; "))));
    }
    let grouping = if args.all_at_once {
        fleetboot_core::plan::Grouping::default()
    } else {
        fleetboot_core::nodes::grouping(&chosen, &pools, &args.group_by, args.group_concurrency)
    };
    let hosts: Vec<(Host, String)> = chosen
        .iter()
        .map(|n| (Host { name: n.name.clone(), address: n.addresses[0].clone(), port: None }, format!("node {}", n.name)))
        .collect();
    Ok((hosts::merge_sources(hosts)?, grouping, chosen))
}

pub async fn run(args: RebootArgs, config: Option<&Path>) -> Result<ExitCode, Error> {
    let mut settings = load_settings(config, args.layer())?;
    let from_cluster = args.all || !args.nodes.is_empty() || args.select.label_selector().is_some();
    // One client for the whole run: discovery, the Node watcher, the lease and the drain.
    let mut kube_client = None;
    let mut discovered = None;
    let (hosts, grouping, prior, journal) = match &args.resume {
        Some(path) => {
            let (_, state) = journal::load(path)?;
            (state.hosts.clone(), state.grouping.clone(), Some(state), path.clone())
        }
        None => {
            let (hosts, grouping) = if from_cluster {
                let (client, server) = crate::adapters::kube::connect(&cluster_target(&args.cluster, &settings)).await?;
                let (hosts, grouping, nodes) = cluster_inventory(&args, &client, &server).await?;
                kube_client = Some(client);
                discovered = Some(nodes);
                (hosts, grouping)
            } else {
                (inventory(&args.hosts, &settings)?, fleetboot_core::plan::Grouping::default())
            };
            let id = run_id();
            let path = args.journal.clone().unwrap_or_else(|| settings.state_dir.join(format!("reboot-{id}.jsonl")));
            (hosts, grouping, None, path)
        }
    };
    if args.all_at_once {
        settings.reboot.concurrency = hosts.len().max(1);
    }
    if args.drain && !from_cluster && !prior.as_ref().is_some_and(|p| p.api_proof) {
        return Err(Error::Selection("--drain works on cluster nodes: add --all, -l, --role or --nodes".into()));
    }
    let run_id = prior.as_ref().map_or_else(run_id, |p| p.run_id.clone());
    let plan = plan_reboot(run_id, hosts, prior.as_ref(), grouping);
    if args.dry_run {
        print!("{}", render_plan(&plan, &settings));
        return Ok(ExitCode::Ok);
    }
    warn_if_insecure(&settings);
    // Keys and known_hosts are read before the journal exists or any host is contacted.
    let client = make_ssh_client(&settings)?;
    let retry = RetryPolicy { attempts: settings.ssh.connect_attempts, first_wait: Duration::from_secs(1) };
    let transport = SshTransport::new(client, settings.reboot.clone());
    let cluster_run = from_cluster || prior.as_ref().is_some_and(|p| p.api_proof);
    let kube = match (cluster_run, kube_client) {
        (false, _) => None,
        (true, Some(client)) => Some(client),
        (true, None) => Some(crate::adapters::kube::connect(&cluster_target(&args.cluster, &settings)).await?.0),
    };
    // BMC credentials are read now too: a bad one stops the run before any node is touched.
    let bmc = bmc_power(&settings, &plan.hosts, kube.as_ref(), discovered).await?;
    // Cluster nodes are proven through the API as well as over SSH, under the cluster's lease.
    let (api, lease, drain, lease_takeover) = if let Some(kube) = kube {
        let (identity, host) = crate::adapters::kube::this_process_identity(&plan.run_id);
        // A resume may reclaim the lease its own killed process left behind on this machine.
        let reclaimable = |holder: &str| {
            prior.is_some() && crate::adapters::kube::holder_is_dead_run(holder, &host, &plan.run_id, crate::adapters::kube::process_alive)
        };
        let lease = crate::adapters::kube::LeaseLock::acquire(
            &kube,
            &args.lease_namespace,
            crate::adapters::kube::LEASE_NAME,
            &identity,
            Duration::from_secs(30),
            args.break_lock,
            reclaimable,
        )
        .await?;
        if let Some(previous) = &lease.taken_from {
            eprintln!("warning: took the fleetboot lease over from {previous}");
        }
        let takeover = lease.taken_from.clone().map(|previous| (previous, identity.clone()));
        // A resumed run drains as it started, whatever this command line says.
        let policy = match &prior {
            Some(state) => state.drain,
            None => args.drain.then(|| fleetboot_core::nodes::DrainPolicy {
                timeout_ms: Duration::from(args.drain_timeout).as_millis() as u64,
                on_failure: match args.drain_failure {
                    DrainFailureArg::Skip => fleetboot_core::nodes::DrainFailure::Skip,
                    DrainFailureArg::Force => fleetboot_core::nodes::DrainFailure::Force,
                    DrainFailureArg::Fail => fleetboot_core::nodes::DrainFailure::Fail,
                },
            }),
        };
        let drain = policy.map(|policy| Arc::new(crate::adapters::kube::Drainer::new(kube.clone(), policy)));
        (Some(Arc::new(crate::adapters::kube::NodeWatch::start(&kube))), Some(lease), drain, takeover)
    } else {
        (None, None, None, None)
    };
    // The journal is created only once the lease is held: a refused run leaves nothing behind.
    let opened = match &prior {
        Some(_) => JournalWriter::reopen(&journal),
        None => JournalWriter::create(&journal),
    };
    let writer = match opened {
        Ok(writer) => writer,
        Err(e) => {
            if let Some(lease) = lease {
                lease.release().await;
            }
            return Err(e.into());
        }
    };
    let fallback = settings.redfish.fallback;
    let inputs = RunInputs {
        transport,
        settings: settings.reboot.clone(),
        retry,
        journal: writer,
        plan,
        prior,
        api,
        drain,
        lease_takeover,
        bmc,
        fallback,
    };
    let (trigger, abort) = watch::channel(Abort::No);
    install_interrupts(trigger.clone());
    let mut reporter = Reporter::new(style_for(settings.output), std::io::stdout().lock());
    let summary = runner::run(inputs, (trigger, abort), |event| reporter.report(event)).await;
    // BMC operations a hard abort cut short still log out of their BMCs.
    crate::adapters::redfish::finish_cleanups(Duration::from_secs(5)).await;
    if let Some(lease) = lease {
        lease.release().await;
    }
    Ok(summary.exit_code())
}

/// The BMCs of a run's hosts, unless the run is SSH only. Problems with BareMetalHosts
/// (a scheme fleetboot cannot drive, a missing Secret) are warnings: those nodes simply
/// have no fallback. Problems with `[[bmc]]` entries the user wrote stop the run.
/// `discovered`: the run's nodes when discovery just listed them (a resume lists them here).
async fn bmc_power(
    settings: &Settings,
    hosts: &[Host],
    kube: Option<&kube::Client>,
    discovered: Option<Vec<fleetboot_core::nodes::NodeInfo>>,
) -> Result<Option<Arc<crate::adapters::bmc::RedfishPower>>, Error> {
    if settings.reboot.transport == config::TransportChoice::Ssh || (settings.bmcs.is_empty() && kube.is_none()) {
        return Ok(None);
    }
    let nodes = match (kube, discovered) {
        (Some(_), Some(nodes)) => nodes,
        (Some(client), None) => crate::adapters::kube::discover(client, "the cluster", None, "InternalIP").await?,
        (None, _) => Vec::new(),
    };
    let inventory =
        crate::adapters::bmc::BmcInventory::build(&settings.redfish, &settings.bmcs, hosts, kube.map(|k| (k, nodes.as_slice()))).await?;
    for problem in &inventory.problems {
        eprintln!("warning: {problem}");
    }
    for node in inventory.insecure_nodes() {
        eprintln!("WARNING: the BMC certificate of {node} is not verified (insecure): anyone on the path can read its password");
    }
    if settings.reboot.transport == config::TransportChoice::Redfish {
        let missing: Vec<&str> = hosts.iter().filter(|h| !inventory.targets.contains_key(&h.name)).map(|h| h.name.as_str()).collect();
        if !missing.is_empty() {
            return Err(Error::Selection(format!("--transport redfish, but no BMC is known for: {}", missing.join(", "))));
        }
    }
    Ok(Some(Arc::new(crate::adapters::bmc::RedfishPower::new(inventory, &settings.redfish))))
}

pub fn render_plan(plan: &plan::Plan, settings: &Settings) -> String {
    let r = &settings.reboot;
    let mut text = format!(
        "plan for run {} (dry run: nothing is contacted)\n\n\
         reboot command: {}\nproof: boot ID from `{}` must change within {}\n\
         concurrency: {} down at once · rate: {} · max failures: {} of {} · probes every {}\n\
         ssh: user {} · port {} · host keys: {:?} against {}\n\n",
        plan.run_id,
        r.command,
        r.boot_id_command,
        humantime::format_duration(r.timeout),
        r.concurrency,
        r.rate.map_or("unlimited".to_owned(), |rate| format!("{rate} (one every {})", humantime::format_duration(rate.spacing()))),
        r.max_failures.tolerated(plan.hosts.len()),
        plan.hosts.len(),
        humantime::format_duration(r.poll_interval),
        settings.ssh.user,
        settings.ssh.port,
        settings.ssh.host_key_policy,
        settings.ssh.known_hosts.display(),
    );
    let rows: Vec<Vec<String>> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let group = plan.grouping.group_of(&s.host.name).map_or("-".to_owned(), |g| {
                let limit = plan.grouping.limits.get(g).copied().unwrap_or(0);
                let last = if plan.grouping.is_last(&s.host.name) { ", after all others" } else { "" };
                format!("{g} (≤{limit} at once{last})")
            });
            vec![
                (i + 1).to_string(),
                s.host.name.clone(),
                format!("{}:{}", s.host.address, s.host.port_or(settings.ssh.port)),
                group,
                plan::describe(s.action).to_owned(),
            ]
        })
        .collect();
    text.push_str(&fleetboot_core::table::table(&["#", "HOST", "ADDRESS", "GROUP", "ACTION"], &rows));
    if let Some(rate) = r.rate {
        let n = plan.count(journal::ResumeAction::Reboot) as u32;
        let floor = rate.spacing() * n.saturating_sub(1);
        text.push_str(&format!("\nthe rate alone spreads the reboot commands over at least {}\n", humantime::format_duration(floor)));
    }
    text
}
