//! The command line: flags → a config layer, then the commands themselves.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tokio::sync::watch;

use crate::config::{self, HostKeyPolicy, Layer, OutputFormat, Settings};
use crate::hosts::{self, Host};
use crate::journal::{self, JournalWriter};
use crate::plan::{self, plan_reboot};
use crate::report::{self, Reporter, Style};
use crate::runner::{self, Abort, RetryPolicy, RunInputs};
use crate::ssh::{SshClient, SshTransport};
use crate::{Error, ExitCode};

#[derive(Parser, Debug)]
#[command(name = "fleetboot", version, about = "Reboot fleets of bare-metal nodes safely, fast and provably")]
// A repeated single-value flag takes its last value, as ssh -o does.
#[command(args_override_self = true)]
pub struct Cli {
    /// A TOML config file (see config/fleetboot.example.toml). Flags override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Reboot every host, proving each reboot by a changed boot ID.
    Reboot(Box<RebootArgs>),
    /// Run one command on every host and fold identical outputs (like pdsh/clush).
    Exec(ExecArgs),
    /// List the cluster's nodes: roles, address, readiness, boot ID, MachineConfigPool.
    Nodes(NodesArgs),
    /// Serve a simulated OpenShift cluster on loopback until interrupted.
    Sim(SimArgs),
    /// Start a simulated cluster in-process and reboot every node of it, live.
    Demo(DemoArgs),
    /// Power operations through the nodes' BMCs (Redfish): status, restart, on, off.
    Power(crate::power::PowerArgs),
    /// The OpenShift SDN → OVN-Kubernetes migration, steps 0-11, resumable.
    Migrate(crate::migrate::MigrateArgs),
    /// The migration's checks (steps 9-10) at any time; the exit code is the verdict.
    Verify(crate::migrate::VerifyArgs),
}

#[derive(Args, Debug, Clone)]
pub struct SimTimingArgs {
    /// Control-plane nodes.
    #[arg(long, default_value_t = 3)]
    pub masters: usize,
    /// Worker nodes.
    #[arg(long, default_value_t = 6)]
    pub workers: usize,
    /// From `shutdown -r` to the node going down (systemd's one minute on real nodes).
    #[arg(long, value_name = "DURATION")]
    pub reboot_delay: Option<humantime::Duration>,
    /// How long a node stays down while it boots.
    #[arg(long, value_name = "DURATION")]
    pub boot_time: Option<humantime::Duration>,
    /// From going down to NotReady in the API.
    #[arg(long, value_name = "DURATION")]
    pub notready_after: Option<humantime::Duration>,
    /// From SSH answering again to Ready in the API.
    #[arg(long, value_name = "DURATION")]
    pub kubelet_ready_after: Option<humantime::Duration>,
    /// Ready heartbeats of nodes that are up ("0s": none).
    #[arg(long, value_name = "DURATION", default_value = "40s")]
    pub heartbeat: humantime::Duration,
    /// The nodes' addresses: NET.1, NET.2, ... (like 127.0.42); default: a free 127.x.y.
    #[arg(long, value_name = "NET")]
    pub net: Option<String>,
    /// The API server's port on 127.0.0.1 (0: any).
    #[arg(long, default_value_t = 0)]
    pub api_port: u16,
    /// The nodes' SSH port (0: any free port, the same on every node).
    #[arg(long, default_value_t = 0)]
    pub ssh_port: u16,
    /// The port of every node's simulated Redfish BMC (HTTPS; 0: any free port).
    #[arg(long, default_value_t = 0)]
    pub bmc_port: u16,
    /// No simulated BMCs (and no BareMetalHosts).
    #[arg(long)]
    pub no_bmc: bool,
    /// A node with no SSH at all, reachable through its BMC only (repeatable).
    #[arg(long, value_name = "NODE")]
    pub no_ssh: Vec<String>,
    /// A fault switched on from the start, NODE=FAULT (repeatable): never_returns,
    /// same_boot_id, refuse_ssh, hang_ssh, new_host_key_after_reboot, refuse_sudo, hangs_on_reboot.
    #[arg(long, value_name = "NODE=FAULT", value_parser = parse_fault)]
    pub fault: Vec<(String, String)>,
    /// The OpenShift release the simulated cluster runs; its operators follow that release's
    /// migration rules (4.7: the annotation; 4.8-4.16: spec.migration, two phases; 4.17+: no SDN).
    #[arg(long, value_name = "X.Y.Z", default_value = fleetboot_sim::version::DEFAULT_VERSION)]
    pub openshift_version: String,
    /// Cluster and service networks inside OVN-Kubernetes' internal ranges (for the preflight).
    #[arg(long)]
    pub colliding_networks: bool,
}

fn parse_fault(text: &str) -> Result<(String, String), String> {
    text.split_once('=').map(|(n, f)| (n.to_owned(), f.to_owned())).ok_or_else(|| format!("{text:?}: expected NODE=FAULT"))
}

impl SimTimingArgs {
    pub fn options(&self, defaults: fleetboot_sim::node::Timings) -> fleetboot_sim::SimOptions {
        let pick = |given: Option<humantime::Duration>, default: Duration| given.map_or(default, Into::into);
        fleetboot_sim::SimOptions {
            masters: self.masters,
            workers: self.workers,
            net: self.net.clone(),
            api_port: self.api_port,
            ssh_port: self.ssh_port,
            bmc_port: (!self.no_bmc).then_some(self.bmc_port),
            no_ssh: self.no_ssh.clone(),
            faults: self.fault.clone(),
            timings: fleetboot_sim::node::Timings {
                reboot_delay: pick(self.reboot_delay, defaults.reboot_delay),
                boot_time: pick(self.boot_time, defaults.boot_time),
                notready_after: pick(self.notready_after, defaults.notready_after),
                kubelet_ready_after: pick(self.kubelet_ready_after, defaults.kubelet_ready_after),
            },
            heartbeat: Some(self.heartbeat.into()).filter(|d: &Duration| !d.is_zero()),
            openshift_version: self.openshift_version.clone(),
            colliding_networks: self.colliding_networks,
            ..Default::default()
        }
    }
}

#[derive(Args, Debug)]
pub struct SimArgs {
    #[command(flatten)]
    pub sim: SimTimingArgs,
    /// Where to write kubeconfig, id_ed25519, known_hosts, hosts.txt and fleetboot.toml.
    #[arg(long, value_name = "DIR", default_value = "./sim")]
    pub dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    #[command(flatten)]
    pub sim: SimTimingArgs,
    /// Only reboot every node (standalone mode over SSH), instead of the whole migration.
    #[arg(long)]
    pub reboot_only: bool,
    /// Nodes rebooting at once (--reboot-only).
    #[arg(long, default_value_t = 3)]
    pub concurrency: usize,
    /// Every node answers SSH (by default one worker does not, and goes through its BMC).
    #[arg(long)]
    pub all_ssh: bool,
    /// auto (live display on a terminal), plain, or json.
    #[arg(long, short = 'o', default_value = "auto", value_parser = ["auto", "plain", "json"])]
    pub output: String,
}

#[derive(Args, Debug, Default)]
pub struct HostArgs {
    /// A host file: one `[name] address[:port]` a line, `#` comments.
    #[arg(long = "hosts-file", value_name = "FILE")]
    pub hosts_files: Vec<PathBuf>,
    /// A host address[:port] (repeatable).
    #[arg(long = "host", value_name = "ADDR")]
    pub hosts: Vec<String>,
}

#[derive(Args, Debug, Default)]
pub struct SshArgs {
    /// Remote user [default: core].
    #[arg(long)]
    pub user: Option<String>,
    /// SSH port for hosts that do not name one [default: 22].
    #[arg(long)]
    pub port: Option<u16>,
    /// Private key file (repeatable). Default: ssh-agent, then ~/.ssh/id_{ed25519,ecdsa,rsa}.
    #[arg(long = "identity", short = 'i', value_name = "FILE")]
    pub identities: Vec<String>,
    /// known_hosts file [default: ~/.ssh/known_hosts].
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<String>,
    /// strict (unknown or changed keys fail the host) or accept-new (record unknown keys).
    #[arg(long, value_name = "POLICY", value_parser = ["strict", "accept-new"])]
    pub host_key_policy: Option<String>,
    /// Do not verify host keys at all (the document's StrictHostKeyChecking=no). Dangerous.
    #[arg(long, conflicts_with = "host_key_policy")]
    pub insecure_ignore_host_keys: bool,
    /// TCP connect timeout [default: 10s].
    #[arg(long, value_name = "DURATION")]
    pub connect_timeout: Option<String>,
    /// SSH handshake + authentication timeout [default: 10s].
    #[arg(long, value_name = "DURATION")]
    pub auth_timeout: Option<String>,
    /// Timeout of one remote command [default: 60s].
    #[arg(long, value_name = "DURATION")]
    pub command_timeout: Option<String>,
    /// Attempts for a transient connection failure [default: 3].
    #[arg(long, value_name = "N")]
    pub connect_attempts: Option<u32>,
}

#[derive(Args, Debug, Default)]
pub struct OutputArgs {
    /// auto (live display on a terminal), plain, or json (one event per line).
    #[arg(long, short = 'o', value_name = "FORMAT", value_parser = ["auto", "plain", "json"])]
    pub output: Option<String>,
    /// Where journals are kept [default: ~/.local/state/fleetboot].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<String>,
}

#[derive(Args, Debug, Default)]
pub struct ClusterArgs {
    /// kubeconfig file [default: the config's [cluster] kubeconfig, $KUBECONFIG, ~/.kube/config].
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context [default: the current one].
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

#[derive(Args, Debug, Default)]
pub struct NodeSelectionArgs {
    /// Nodes matching a label selector (as kubectl's -l).
    #[arg(long = "selector", short = 'l', value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Nodes with this role (node-role.kubernetes.io/ROLE), e.g. master or worker.
    #[arg(long, value_name = "ROLE")]
    pub role: Option<String>,
    /// Which node address to use: InternalIP (as the migration document), ExternalIP, Hostname.
    #[arg(long, value_name = "TYPE", default_value = "InternalIP")]
    pub address_type: String,
}

impl NodeSelectionArgs {
    fn label_selector(&self) -> Option<String> {
        let role = self.role.as_ref().map(|r| format!("node-role.kubernetes.io/{r}"));
        let parts: Vec<String> = self.selector.iter().cloned().chain(role).collect();
        (!parts.is_empty()).then(|| parts.join(","))
    }
}

#[derive(Args, Debug)]
pub struct NodesArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub select: NodeSelectionArgs,
    /// table, wide, json (stable, documented in README) or ips (the document's jsonpath output).
    #[arg(long, short = 'o', default_value = "table", value_parser = ["table", "wide", "json", "ips"])]
    pub output: String,
}

#[derive(Args, Debug)]
pub struct RebootArgs {
    #[command(flatten)]
    pub hosts: HostArgs,
    /// How reboots reach the nodes: auto (SSH, the BMC as fallback), ssh, or redfish.
    #[arg(long, value_parser = ["auto", "ssh", "redfish"])]
    pub transport: Option<String>,
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
    #[arg(long, value_name = "fail|skip|force", default_value = "fail", value_parser = ["fail", "skip", "force"])]
    pub drain_failure: String,
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

#[derive(Args, Debug)]
pub struct ExecArgs {
    #[command(flatten)]
    pub hosts: HostArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Connections at once [default: 64].
    #[arg(long, value_name = "N")]
    pub parallel: Option<usize>,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

impl SshArgs {
    fn apply(&self, layer: &mut Layer) {
        let ssh = &mut layer.ssh;
        ssh.user.clone_from(&self.user);
        ssh.port = self.port;
        if !self.identities.is_empty() {
            ssh.identities = Some(self.identities.clone());
        }
        ssh.known_hosts.clone_from(&self.known_hosts);
        ssh.host_key_policy = if self.insecure_ignore_host_keys { Some("insecure-ignore".into()) } else { self.host_key_policy.clone() };
        ssh.connect_timeout.clone_from(&self.connect_timeout);
        ssh.auth_timeout.clone_from(&self.auth_timeout);
        ssh.command_timeout.clone_from(&self.command_timeout);
        ssh.connect_attempts = self.connect_attempts;
    }
}

impl OutputArgs {
    fn apply(&self, layer: &mut Layer) {
        layer.output.format.clone_from(&self.output);
        layer.output.state_dir.clone_from(&self.state_dir);
    }
}

impl RebootArgs {
    fn layer(&self) -> Layer {
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
        r.transport.clone_from(&self.transport);
        if self.cancel_pending_on_abort {
            r.cancel_pending_on_abort = Some(true);
        }
        layer
    }
}

impl ExecArgs {
    fn layer(&self) -> Layer {
        let mut layer = Layer::default();
        self.ssh.apply(&mut layer);
        self.output.apply(&mut layer);
        layer.reboot.parallel = self.parallel;
        layer
    }
}

fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from)
}

pub(crate) fn load_settings(config: Option<&Path>, flags: Layer) -> Result<Settings, Error> {
    let file = config.map(Layer::read).transpose()?;
    Ok(config::resolve(file, flags, home_dir().as_deref())?)
}

/// Hosts from flags when any are given, else from the config file.
fn inventory(args: &HostArgs, settings: &Settings) -> Result<Vec<Host>, Error> {
    let mut sources = Vec::new();
    for path in &args.hosts_files {
        sources.extend(hosts::read_host_file(path)?);
    }
    for (i, endpoint) in args.hosts.iter().enumerate() {
        let (address, port) = hosts::parse_endpoint(endpoint).map_err(|problem| hosts::HostsError::BadLine {
            origin: "--host".into(),
            line: i + 1,
            problem,
        })?;
        sources.push((Host { name: address.clone(), address, port }, format!("--host {endpoint}")));
    }
    if sources.is_empty()
        && let Some(from_config) = &settings.hosts
    {
        sources.extend(from_config.iter().cloned().map(|h| (h, "the config file".to_owned())));
    }
    Ok(hosts::merge_sources(sources)?)
}

fn style_for(format: OutputFormat) -> Style {
    match format {
        OutputFormat::Json => Style::Json,
        OutputFormat::Plain => Style::Plain,
        OutputFormat::Auto if std::io::stdout().is_terminal() && std::io::stderr().is_terminal() => Style::Live,
        OutputFormat::Auto => Style::Plain,
    }
}

fn warn_if_insecure(settings: &Settings) {
    if settings.ssh.host_key_policy == HostKeyPolicy::InsecureIgnore {
        eprintln!(
            "WARNING: host keys are NOT verified (--insecure-ignore-host-keys). Anyone on the path can impersonate \
             a host and receive your commands. A key that changes during the run still stops that host."
        );
    }
}

fn make_ssh_client(settings: &Settings) -> Result<SshClient, Error> {
    let agent = std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from);
    Ok(SshClient::new(settings.ssh.clone(), home_dir().as_deref(), agent)?)
}

/// Runs `fleetboot migrate` from an argument vector (the demo types what a person would).
pub(crate) async fn run_migrate_argv(argv: &[String], config: Option<&Path>) -> Result<ExitCode, Error> {
    let parsed = Cli::try_parse_from(argv).map_err(|e| Error::Selection(format!("internal command line {argv:?}: {e}")))?;
    let Command::Migrate(args) = parsed.command else { return Err(Error::Selection("not a migrate command line".into())) };
    crate::migrate::migrate(args, config).await
}

pub(crate) fn new_run_id() -> String {
    run_id()
}

/// Runs `fleetboot reboot` from an argument vector, as a user would type it (the migration's
/// step 7 and the demo use the same command line a person would).
pub(crate) async fn run_reboot_argv(argv: &[String], config: Option<&Path>) -> Result<ExitCode, Error> {
    let parsed = Cli::try_parse_from(argv).map_err(|e| Error::Selection(format!("internal command line {argv:?}: {e}")))?;
    let Command::Reboot(args) = parsed.command else { return Err(Error::Selection("not a reboot command line".into())) };
    reboot(*args, config).await
}

fn run_id() -> String {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    format!("{}-{}", stamp.replace([':', '-'], ""), std::process::id())
}

/// Ctrl-C or SIGTERM once: soft abort; twice: hard abort.
fn install_interrupts(trigger: watch::Sender<Abort>) {
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        loop {
            let term_signal = async {
                match term.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term_signal => {}
            }
            let next = if *trigger.borrow() == Abort::No { Abort::Soft } else { Abort::Hard };
            let _ = trigger.send(next);
        }
    });
}

pub(crate) fn cluster_target(args: &ClusterArgs, settings: &Settings) -> crate::cluster::ClusterTarget {
    crate::cluster::ClusterTarget {
        kubeconfig: args.kubeconfig.clone().or_else(|| settings.cluster.kubeconfig.clone()),
        context: args.context.clone().or_else(|| settings.cluster.context.clone()),
    }
}

pub async fn nodes(args: NodesArgs, config: Option<&Path>) -> Result<ExitCode, Error> {
    let settings = load_settings(config, Layer::default())?;
    let (client, server) = crate::cluster::connect(&cluster_target(&args.cluster, &settings)).await?;
    let mut nodes = crate::cluster::discover(&client, &server, args.select.label_selector().as_deref(), &args.select.address_type).await?;
    for problem in crate::cluster::address_problems(&nodes) {
        eprintln!("warning: {problem}");
    }
    if matches!(args.output.as_str(), "wide" | "json") {
        attach_bmcs(&mut nodes, &settings, &client, args.output == "wide").await;
    }
    match args.output.as_str() {
        "ips" => print!("{}", crate::cluster::render_ips(&nodes)),
        "json" => println!("{}", serde_json::to_string_pretty(&nodes).expect("serializes")),
        "wide" => print!("{}", crate::cluster::render_table(&nodes, true)),
        _ => print!("{}", crate::cluster::render_table(&nodes, false)),
    }
    Ok(ExitCode::Ok)
}

/// Each node's BMC (config `[[bmc]]` or BareMetalHost) and, with `probe`, whether it answers.
/// A listing never fails over BMCs: problems become warnings.
async fn attach_bmcs(nodes: &mut [crate::cluster::NodeInfo], settings: &Settings, client: &kube::Client, probe: bool) {
    let hosts: Vec<Host> = nodes
        .iter()
        .map(|n| Host { name: n.name.clone(), address: n.addresses.first().cloned().unwrap_or_default(), port: None })
        .collect();
    let entries: Vec<config::BmcEntry> =
        settings.bmcs.iter().filter(|e| hosts.iter().any(|h| h.name == e.node || h.address == e.node)).cloned().collect();
    let inventory = match crate::bmc::BmcInventory::build(&settings.redfish, &entries, &hosts, Some((client, nodes))).await {
        Ok(inventory) => inventory,
        Err(e) => {
            eprintln!("warning: {e}");
            return;
        }
    };
    for problem in &inventory.problems {
        eprintln!("warning: {problem}");
    }
    let power = crate::bmc::RedfishPower::new(inventory, &settings.redfish);
    for node in nodes.iter_mut() {
        node.bmc = power.url_of(&node.name).map(str::to_owned);
    }
    if probe {
        use futures::StreamExt;
        let statuses: Vec<(usize, String)> = futures::stream::iter(nodes.iter().enumerate().filter(|(_, n)| n.bmc.is_some()))
            .map(|(i, n)| {
                let power = &power;
                async move {
                    let status = match power.probe(&n.name).await {
                        Ok(()) => "answers".to_owned(),
                        Err(e) => format!("no: {}", e.to_string().split(": ").last().unwrap_or_default()),
                    };
                    (i, status)
                }
            })
            .buffer_unordered(32)
            .collect()
            .await;
        for (i, status) in statuses {
            nodes[i].bmc_status = Some(status);
        }
    }
}

/// The reboot inventory from the cluster: selected nodes, minus exclusions, each reached at
/// its address of the chosen type. Any node without exactly one such address stops the run.
/// Also returns the chosen nodes as discovered, for the BMC inventory.
async fn cluster_inventory(
    args: &RebootArgs,
    client: &kube::Client,
    server: &str,
) -> Result<(Vec<Host>, crate::plan::Grouping, Vec<crate::cluster::NodeInfo>), Error> {
    let (found, pools) =
        crate::cluster::discover_with_pools(client, server, args.select.label_selector().as_deref(), &args.select.address_type).await?;
    let unknown: Vec<&String> = args.nodes.iter().chain(&args.exclude).filter(|n| !found.iter().any(|f| &f.name == *n)).collect();
    if !unknown.is_empty() {
        return Err(Error::Selection(format!(
            "no such node in the cluster (or not matching the selector): {}",
            unknown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    let chosen: Vec<crate::cluster::NodeInfo> = found
        .into_iter()
        .filter(|n| args.nodes.is_empty() || args.nodes.contains(&n.name))
        .filter(|n| !args.exclude.contains(&n.name))
        .collect();
    let problems = crate::cluster::address_problems(&chosen);
    if !problems.is_empty() {
        return Err(Error::Selection(format!("{}; use --address-type or --exclude", problems.join("; "))));
    }
    let grouping = if args.all_at_once {
        crate::plan::Grouping::default()
    } else {
        crate::cluster::grouping(&chosen, &pools, &args.group_by, args.group_concurrency)
    };
    let hosts: Vec<(Host, String)> = chosen
        .iter()
        .map(|n| (Host { name: n.name.clone(), address: n.addresses[0].clone(), port: None }, format!("node {}", n.name)))
        .collect();
    Ok((hosts::merge_sources(hosts)?, grouping, chosen))
}

pub async fn reboot(args: RebootArgs, config: Option<&Path>) -> Result<ExitCode, Error> {
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
                let (client, server) = crate::cluster::connect(&cluster_target(&args.cluster, &settings)).await?;
                let (hosts, grouping, nodes) = cluster_inventory(&args, &client, &server).await?;
                kube_client = Some(client);
                discovered = Some(nodes);
                (hosts, grouping)
            } else {
                (inventory(&args.hosts, &settings)?, crate::plan::Grouping::default())
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
        (true, None) => Some(crate::cluster::connect(&cluster_target(&args.cluster, &settings)).await?.0),
    };
    // BMC credentials are read now too: a bad one stops the run before any node is touched.
    let bmc = bmc_power(&settings, &plan.hosts, kube.as_ref(), discovered).await?;
    // Cluster nodes are proven through the API as well as over SSH, under the cluster's lease.
    let (api, lease, drain, lease_takeover) = if let Some(kube) = kube {
        let (identity, host) = crate::cluster::this_process_identity(&plan.run_id);
        // A resume may reclaim the lease its own killed process left behind on this machine.
        let reclaimable = |holder: &str| {
            prior.is_some() && crate::cluster::holder_is_dead_run(holder, &host, &plan.run_id, crate::cluster::process_alive)
        };
        let lease = crate::cluster::LeaseLock::acquire(
            &kube,
            &args.lease_namespace,
            crate::cluster::LEASE_NAME,
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
            None => args.drain.then(|| crate::cluster::DrainPolicy {
                timeout_ms: Duration::from(args.drain_timeout).as_millis() as u64,
                on_failure: match args.drain_failure.as_str() {
                    "skip" => crate::cluster::DrainFailure::Skip,
                    "force" => crate::cluster::DrainFailure::Force,
                    _ => crate::cluster::DrainFailure::Fail,
                },
            }),
        };
        let drain = policy.map(|policy| Arc::new(crate::cluster::Drainer::new(kube.clone(), policy)));
        (Some(Arc::new(crate::cluster::NodeWatch::start(&kube))), Some(lease), drain, takeover)
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
    crate::redfish::finish_cleanups(Duration::from_secs(5)).await;
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
    discovered: Option<Vec<crate::cluster::NodeInfo>>,
) -> Result<Option<Arc<crate::bmc::RedfishPower>>, Error> {
    if settings.reboot.transport == config::TransportChoice::Ssh || (settings.bmcs.is_empty() && kube.is_none()) {
        return Ok(None);
    }
    let nodes = match (kube, discovered) {
        (Some(_), Some(nodes)) => nodes,
        (Some(client), None) => crate::cluster::discover(client, "the cluster", None, "InternalIP").await?,
        (None, _) => Vec::new(),
    };
    let inventory = crate::bmc::BmcInventory::build(&settings.redfish, &settings.bmcs, hosts, kube.map(|k| (k, nodes.as_slice()))).await?;
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
    Ok(Some(Arc::new(crate::bmc::RedfishPower::new(inventory, &settings.redfish))))
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
    text.push_str(&report::table(&["#", "HOST", "ADDRESS", "GROUP", "ACTION"], &rows));
    if let Some(rate) = r.rate {
        let n = plan.count(journal::ResumeAction::Reboot) as u32;
        let floor = rate.spacing() * n.saturating_sub(1);
        text.push_str(&format!("\nthe rate alone spreads the reboot commands over at least {}\n", humantime::format_duration(floor)));
    }
    text
}

pub async fn exec(args: ExecArgs, config: Option<&Path>) -> Result<ExitCode, Error> {
    let settings = load_settings(config, args.layer())?;
    let hosts = inventory(&args.hosts, &settings)?;
    warn_if_insecure(&settings);
    let client = Arc::new(make_ssh_client(&settings)?);
    let command = shell_join(&args.command);
    let results = crate::exec::run_everywhere(client, &hosts, &command, settings.reboot.parallel).await;
    let mut out = std::io::stdout().lock();
    use std::io::Write;
    if settings.output == OutputFormat::Json {
        for r in &results {
            let _ = writeln!(out, "{}", serde_json::to_string(r).expect("serializes"));
        }
    } else {
        let _ = out.write_all(crate::exec::render_folded(&results).as_bytes());
    }
    Ok(if results.iter().all(|r| r.ok()) { ExitCode::Ok } else { ExitCode::HostsFailed })
}

/// One argument stays one word on the remote shell: quote what the shell would split.
fn shell_join(words: &[String]) -> String {
    if words.len() == 1 {
        // A single argument is taken as a shell command line, as ssh does.
        return words[0].clone();
    }
    words
        .iter()
        .map(|w| {
            if !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c)) {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub async fn main(cli: Cli) -> Result<ExitCode, Error> {
    crate::raise_open_file_limit();
    let config = cli.config.as_deref();
    match cli.command {
        Command::Reboot(args) => reboot(*args, config).await,
        Command::Exec(args) => exec(args, config).await,
        Command::Nodes(args) => nodes(args, config).await,
        Command::Sim(args) => crate::demo::sim(args).await,
        Command::Demo(args) => crate::demo::demo(args).await,
        Command::Power(args) => crate::power::power(args, config).await,
        Command::Migrate(args) => crate::migrate::migrate(args, config).await,
        Command::Verify(args) => crate::migrate::verify(args, config).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_join_quotes_only_what_needs_it() {
        assert_eq!(shell_join(&["uname -r".into()]), "uname -r");
        assert_eq!(shell_join(&["echo".into(), "a b".into(), "it's".into()]), r"echo 'a b' 'it'\''s'");
        assert_eq!(shell_join(&["cat".into(), "/proc/x".into()]), "cat /proc/x");
    }

    #[test]
    fn the_command_line_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli =
            Cli::try_parse_from(["fleetboot", "reboot", "--host", "127.0.0.2:2222", "--rate", "10/min", "--concurrency", "5"]).unwrap();
        let Command::Reboot(args) = cli.command else { panic!("reboot") };
        let layer = args.layer();
        assert_eq!(layer.reboot.concurrency, Some(5));
        assert_eq!(layer.reboot.rate.as_deref(), Some("10/min"));
        assert!(Cli::try_parse_from(["fleetboot", "reboot", "--resume", "j", "--host", "x"]).is_err());
        assert!(Cli::try_parse_from(["fleetboot", "exec", "--host", "x"]).is_err(), "a command is required");
    }
}
