//! Argument groups that several commands share, and the fixed choices as `ValueEnum`s.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, ValueEnum};

use fleetboot_core::settings::{self, Partial, SshPartial};

/// `--output`, `--transport`, `--host-key-policy`: core's one type each (no mirror here).
pub use fleetboot_core::settings::{Choice, HostKeyPolicy, OutputFormat, Transport};

/// clap's parser for one of core's fixed choices, limited to `only` (the spellings this flag
/// takes): the possible values and their help come from the type itself.
pub fn choice<T: Choice + FromStr + Clone + Send + Sync>(only: &[&str]) -> impl TypedValueParser<Value = T> {
    let values =
        T::NAMES.iter().zip(T::HELP).filter(|(name, _)| only.contains(name)).map(|(name, help)| PossibleValue::new(*name).help(*help));
    PossibleValuesParser::new(values).map(|name| T::from_str(&name).ok().expect("a possible value parses"))
}

/// `fleetboot migrate --flow`: the order of steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FlowChoice {
    /// The order the cluster's release requires.
    Auto,
    /// The seed document's (OpenShift 4.5-4.7).
    Seed,
    /// The documented two-phase flow (OpenShift 4.8-4.16).
    TwoPhase,
}

/// `fleetboot migrate --to`, `fleetboot verify --to`: the cluster network type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NetworkTypeChoice {
    #[value(name = "OVNKubernetes")]
    OvnKubernetes,
    /// A rollback.
    #[value(name = "OpenShiftSDN")]
    OpenShiftSdn,
}

/// `fleetboot migrate --skip-feature`: an OpenShift SDN feature not to migrate (4.12+).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SdnFeature {
    EgressIp,
    EgressFirewall,
    Multicast,
}

/// `--address-type`: which node address fleetboot connects to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum AddressType {
    /// As the migration document's jsonpath.
    #[default]
    #[value(name = "InternalIP")]
    InternalIp,
    #[value(name = "ExternalIP")]
    ExternalIp,
    #[value(name = "Hostname")]
    Hostname,
}

impl AddressType {
    /// The node address type as the Kubernetes API spells it.
    pub fn api_name(self) -> &'static str {
        match self {
            AddressType::InternalIp => "InternalIP",
            AddressType::ExternalIp => "ExternalIP",
            AddressType::Hostname => "Hostname",
        }
    }
}

/// The config-file spelling of a fixed choice (the same words the flags take).
pub fn choice_name(choice: impl ValueEnum) -> String {
    choice.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default()
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
    #[arg(long, value_name = "DURATION", value_parser = sim_duration)]
    pub reboot_delay: Option<humantime::Duration>,
    /// How long a node stays down while it boots.
    #[arg(long, value_name = "DURATION", value_parser = sim_duration)]
    pub boot_time: Option<humantime::Duration>,
    /// From going down to NotReady in the API.
    #[arg(long, value_name = "DURATION", value_parser = sim_duration)]
    pub notready_after: Option<humantime::Duration>,
    /// From SSH answering again to Ready in the API.
    #[arg(long, value_name = "DURATION", value_parser = sim_duration)]
    pub kubelet_ready_after: Option<humantime::Duration>,
    /// The kubelets' heartbeat interval ("0s": none). `--heartbeat-mode ready`: each node's
    /// Ready condition patched (default 40s); `kubelet`: each node's Lease in kube-node-lease
    /// renewed (default 10s, as kubelets do).
    #[arg(long, value_name = "DURATION", value_parser = sim_duration)]
    pub heartbeat: Option<humantime::Duration>,
    /// How the kubelets beat: `ready` (a Node status patch per node and interval, no Leases) or
    /// `kubelet` (as real kubelets: a Lease renewal per interval, the full status every
    /// `--status-report`).
    #[arg(long, value_name = "MODE", default_value = "ready")]
    pub heartbeat_mode: SimHeartbeatMode,
    /// `--heartbeat-mode kubelet`: how often an unchanged Node status is posted (kubelet's
    /// nodeStatusReportFrequency).
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = sim_duration)]
    pub status_report: humantime::Duration,
    /// The nodes' addresses: NET.1, NET.2, ... (like 127.0.42); default: a free 127.x.y.
    #[arg(long, value_name = "NET", value_parser = loopback_net)]
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
    /// Workloads and PodDisruptionBudgets: 0 is a bare cluster; from 1, the platform's
    /// (router, image registry, console, monitoring, the etcd guard) and N user Deployments
    /// (3 replicas, minAvailable 2 each).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub workloads: usize,
    /// Keep the API server's store in DIR across a simulated restart (`POST /sim/v1/api-restart`).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

fn parse_fault(text: &str) -> Result<(String, String), String> {
    text.split_once('=').map(|(n, f)| (n.to_owned(), f.to_owned())).ok_or_else(|| format!("{text:?}: expected NODE=FAULT"))
}

/// How the simulated kubelets beat (`fleetboot sim --heartbeat-mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum SimHeartbeatMode {
    #[default]
    Ready,
    Kubelet,
}

impl SimHeartbeatMode {
    fn default_interval(self) -> Duration {
        match self {
            SimHeartbeatMode::Ready => Duration::from_secs(40),
            SimHeartbeatMode::Kubelet => fleetboot_sim::heartbeat::NODE_LEASE_RENEW_INTERVAL,
        }
    }
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
            heartbeat: Some(self.heartbeat.map_or(self.heartbeat_mode.default_interval(), Into::into)).filter(|d: &Duration| !d.is_zero()),
            heartbeat_mode: match self.heartbeat_mode {
                SimHeartbeatMode::Ready => fleetboot_sim::HeartbeatMode::Ready,
                SimHeartbeatMode::Kubelet => fleetboot_sim::HeartbeatMode::Kubelet { status_report: self.status_report.into() },
            },
            openshift_version: self.openshift_version.clone(),
            colliding_networks: self.colliding_networks,
            workloads: self.workloads,
            state_dir: self.state_dir.clone(),
            ..Default::default()
        }
    }
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
    #[arg(long, value_parser = settings::parse_command)]
    pub user: Option<String>,
    /// SSH port for hosts that do not name one [default: 22].
    #[arg(long, value_parser = settings::parse_port)]
    pub port: Option<u16>,
    /// Private key file (repeatable). Default: ssh-agent, then ~/.ssh/id_{ed25519,ecdsa,rsa}.
    #[arg(long = "identity", short = 'i', value_name = "FILE")]
    pub identities: Vec<String>,
    /// known_hosts file [default: ~/.ssh/known_hosts].
    #[arg(long, value_name = "FILE", value_parser = settings::parse_command)]
    pub known_hosts: Option<String>,
    /// strict (unknown or changed keys fail the host) or accept-new (record unknown keys).
    #[arg(long, value_name = "POLICY", value_parser = choice::<HostKeyPolicy>(&["strict", "accept-new"]))]
    pub host_key_policy: Option<HostKeyPolicy>,
    /// Do not verify host keys at all (the document's StrictHostKeyChecking=no). Dangerous.
    #[arg(long, conflicts_with = "host_key_policy")]
    pub insecure_ignore_host_keys: bool,
    /// TCP connect timeout [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = setting_duration)]
    pub connect_timeout: Option<Duration>,
    /// SSH handshake + authentication timeout [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = setting_duration)]
    pub auth_timeout: Option<Duration>,
    /// Timeout of one remote command [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = setting_duration)]
    pub command_timeout: Option<Duration>,
    /// Attempts for a transient connection failure [default: 3].
    #[arg(long, value_name = "N", value_parser = settings::parse_attempts)]
    pub connect_attempts: Option<u32>,
}

#[derive(Args, Debug, Default)]
pub struct OutputArgs {
    /// auto (live display on a terminal), plain, json (one event per line) or yaml (one YAML
    /// document per event).
    #[arg(long, short = 'o', value_name = "FORMAT", value_parser = choice::<OutputFormat>(OutputFormat::NAMES))]
    pub output: Option<OutputFormat>,
    /// Where journals are kept [default: ~/.local/state/fleetboot].
    #[arg(long, value_name = "DIR", value_parser = settings::parse_command)]
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

/// How `--transport auto` climbs its rungs and what the kube rung's debug pods run.
#[derive(Args, Debug, Default)]
pub struct TransportRungArgs {
    /// `--transport auto`'s rungs, per node, in order (`[transport] order`): ssh, kube, redfish
    /// (the BMC, last); a rung left out is never used.
    #[arg(long, value_name = "RUNGS", value_parser = |s: &str| s.parse::<settings::TransportOrder>())]
    pub transport_order: Option<settings::TransportOrder>,
    /// The image of the kube rung's debug pods (`[transport] debug_image`); default: as `oc debug
    /// node` picks it, the cluster's `openshift/tools:latest` image stream, else
    /// registry.redhat.io/rhel9/support-tools.
    #[arg(long, value_name = "IMAGE")]
    pub debug_image: Option<String>,
}

impl TransportRungArgs {
    pub(crate) fn apply(&self, flags: &mut Partial) {
        flags.transport_order.clone_from(&self.transport_order);
        flags.debug_image = self.debug_image.clone().filter(|image| !image.trim().is_empty());
    }
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
    #[arg(long, value_name = "TYPE", value_enum, default_value = "InternalIP")]
    pub address_type: AddressType,
}

impl NodeSelectionArgs {
    pub fn label_selector(&self) -> Option<String> {
        let role = self.role.as_ref().map(|r| format!("node-role.kubernetes.io/{r}"));
        let parts: Vec<String> = self.selector.iter().cloned().chain(role).collect();
        (!parts.is_empty()).then(|| parts.join(","))
    }

    /// The labels a node must carry, when that is all the selection asks (`--role`, or
    /// nothing): `None` with a `--selector`, which only the API server parses.
    /// A role that is not a label name (`"worker,infra"`, `"worker "`) is left to the API
    /// server too, which parses the selector it makes (and may refuse it, naming it).
    pub fn label_keys_alone(&self) -> Option<Vec<String>> {
        if self.selector.is_some() || self.role.as_deref().is_some_and(|r| !is_label_name(r)) {
            return None;
        }
        Some(self.role.iter().map(|r| format!("node-role.kubernetes.io/{r}")).collect())
    }
}

/// A label key's name part (Kubernetes' qualified name): 1 to 63 ASCII letters, digits, `-`,
/// `_` and `.`, starting and ending with a letter or digit.
fn is_label_name(name: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    (1..=63).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && edge(name.chars().next())
        && edge(name.chars().last())
}

impl SshArgs {
    /// What these flags set, in the settings' model.
    pub(crate) fn apply(&self, flags: &mut Partial) {
        flags.ssh = SshPartial {
            user: self.user.clone(),
            port: self.port,
            identities: (!self.identities.is_empty()).then(|| self.identities.clone()),
            known_hosts: self.known_hosts.clone(),
            auth_timeout: self.auth_timeout,
            command_timeout: self.command_timeout,
            connect_attempts: self.connect_attempts,
            keepalive_interval: None,
        };
        flags.host_key_policy = if self.insecure_ignore_host_keys { Some(HostKeyPolicy::InsecureIgnore) } else { self.host_key_policy };
        flags.connect_timeout = self.connect_timeout;
    }
}

impl ClusterArgs {
    /// The flags' settings: `--kubeconfig` and `--context` (decided once, with the
    /// environment's and the file's, by the settings' merge).
    pub(crate) fn partial(&self) -> Partial {
        Partial {
            context: self.context.clone(),
            kubeconfig: self.kubeconfig.as_ref().map(|path| path.to_string_lossy().into_owned()),
            ..Partial::default()
        }
    }
}

impl OutputArgs {
    pub(crate) fn apply(&self, flags: &mut Partial) {
        flags.output = self.output;
        flags.state_dir.clone_from(&self.state_dir);
    }
}

/// `--net`: checked before anything starts, so a typo is a usage error naming the value.
fn loopback_net(net: &str) -> Result<String, String> {
    fleetboot_sim::cluster::parse_net(net).map(|_| net.to_owned())
}

/// `--lease-duration`: whole seconds (the Lease stores seconds), from 3 s (renewed every third
/// of it) to an hour (a lease nobody renews blocks every other run that long).
/// A duration flag under the same bounds as the config's durations (longer than zero, at most
/// 366 days): a value past them is a usage error naming the flag (exit 2), never a deadline
/// that overflows the clock or a zero that spins.
pub fn bounded_duration(text: &str) -> Result<humantime::Duration, String> {
    match crate::adapters::config::parse_duration_value(text, "flag") {
        Ok(duration) => Ok(duration.into()),
        Err(crate::adapters::config::ConfigError::BadValue { reason, .. }) => Err(reason),
        Err(other) => Err(other.to_string()),
    }
}

/// A duration setting's flag, under the config file's rules and bounds (the same parser).
pub fn setting_duration(text: &str) -> Result<Duration, String> {
    bounded_duration(text).map(Into::into)
}

/// A simulation's timing: zero allowed (none), at most 366 days.
pub fn sim_duration(text: &str) -> Result<humantime::Duration, String> {
    match text.trim().parse::<humantime::Duration>() {
        Ok(duration) if duration.is_zero() => Ok(duration),
        _ => bounded_duration(text),
    }
}

pub fn lease_duration(text: &str) -> Result<humantime::Duration, String> {
    let duration: std::time::Duration = text.parse::<humantime::Duration>().map_err(|e| e.to_string())?.into();
    if duration.subsec_nanos() != 0 || !(3..=3600).contains(&duration.as_secs()) {
        return Err(format!("{text} is not a whole number of seconds from 3s to 1h"));
    }
    Ok(duration.into())
}

#[cfg(test)]
mod selection_tests {
    use super::NodeSelectionArgs;

    fn keys(selector: Option<&str>, role: Option<&str>) -> Option<Vec<String>> {
        NodeSelectionArgs { selector: selector.map(str::to_owned), role: role.map(str::to_owned), ..Default::default() }.label_keys_alone()
    }

    /// Only a role that is a label name is answered by the Node watch's list; a selector, or a
    /// role the API server would parse into something else, is listed by the API server.
    #[test]
    fn only_a_role_that_is_a_label_name_is_answered_without_the_api_server() {
        assert_eq!(keys(None, None), Some(Vec::new()));
        assert_eq!(keys(None, Some("worker")), Some(vec!["node-role.kubernetes.io/worker".to_owned()]));
        assert_eq!(keys(None, Some("infra-2.a_b")), Some(vec!["node-role.kubernetes.io/infra-2.a_b".to_owned()]));
        for odd in ["worker,infra", "worker ", "worker=", "-worker", "worker.", "", &"w".repeat(64)] {
            assert_eq!(keys(None, Some(odd)), None, "{odd:?}");
        }
        assert_eq!(keys(Some("a=b"), Some("worker")), None);
        assert_eq!(keys(Some("a=b"), None), None);
    }
}
