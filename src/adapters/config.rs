//! Settings: embedded defaults, then the config file, then the environment, then flags,
//! resolved in one function. The run settings of core's model ([`Partial`]) take their
//! precedence from its one [`settings::merge`]; the rest overlay the file's keys with the flags.
//!
//! One file, past 500 lines: the file's shape and every check of its keys, with the tests of each.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use fleetboot_core::hosts::Host;
use fleetboot_core::journal::{FailureBudget, RateSpec};
use fleetboot_core::settings::{self, Choice, Partial, SshPartial};
/// The fixed choices exist once, in core's settings model.
pub use fleetboot_core::settings::{HostKeyPolicy, OutputFormat, Transport as TransportChoice};

const EMBEDDED_DEFAULTS: &str = include_str!("../../config/defaults.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read config file {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("bad config file {origin}: {reason}")]
    Syntax { origin: String, reason: String },
    #[error("bad value for {key}: {reason}")]
    BadValue { key: &'static str, reason: String },
    /// A bad `FLEETBOOT_*` variable, named.
    #[error(transparent)]
    Environment(#[from] settings::SettingsError),
}

/// One layer of settings, every key optional. The same shape is read from the embedded
/// defaults, from a config file and built from flags, so merging is one function.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    #[serde(default)]
    pub ssh: SshLayer,
    #[serde(default)]
    pub reboot: RebootLayer,
    #[serde(default)]
    pub output: OutputLayer,
    #[serde(default)]
    pub cluster: ClusterLayer,
    #[serde(default)]
    pub hosts: Option<Vec<Host>>,
    #[serde(default)]
    pub redfish: RedfishLayer,
    /// BMCs by node, overriding what the cluster's BareMetalHosts say.
    #[serde(default)]
    pub bmc: Option<Vec<BmcEntry>>,
    /// `[batch]`: windows, `only_if`, blockers, the health gate, the drain ladder.
    #[serde(default)]
    pub batch: BatchLayer,
}

/// `[batch]`, as the flags of the same names (`windows` a list of `--window` values).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchLayer {
    pub windows: Option<Vec<String>>,
    pub window_tz: Option<String>,
    pub window_exit: Option<bool>,
    pub only_if: Option<String>,
    pub block_on_pods: Option<String>,
    pub block_on_pods_on_node: Option<bool>,
    pub healthy_checks: Option<u32>,
    pub healthy_interval: Option<String>,
    pub health_command: Option<String>,
    pub soak: Option<String>,
    pub drain_escalation: Option<String>,
    pub block_on_alerts: Option<String>,
    pub alert_filter_regexp: Option<String>,
}

impl BatchLayer {
    /// The file's batch keys, parsed as the flags parse them; a bad one named by its key.
    pub fn partial(&self) -> Result<fleetboot_core::batch::BatchPartial, ConfigError> {
        let bad = |key: &'static str| move |reason: String| ConfigError::BadValue { key, reason };
        let windows = self
            .windows
            .as_ref()
            .map(|list| list.iter().map(|w| w.parse()).collect::<Result<Vec<_>, String>>())
            .transpose()
            .map_err(bad("batch.windows"))?;
        let window_tz = self
            .window_tz
            .as_deref()
            .map(|tz| crate::adapters::tz::IanaZone::named(tz.trim()).map(|_| tz.trim().to_owned()))
            .transpose()
            .map_err(|e| bad("batch.window_tz")(e.to_string()))?;
        let ms = |text: &Option<String>, key: &'static str| {
            text.as_deref().map(|t| parse_duration_value(t, key).map(|d| d.as_millis() as u64)).transpose()
        };
        let command =
            |text: &Option<String>, key: &'static str| text.as_deref().map(|c| settings::parse_command(c).map_err(bad(key))).transpose();
        if self.healthy_checks == Some(0) || self.healthy_checks.is_some_and(|n| n > 100) {
            return Err(bad("batch.healthy_checks")("must be from 1 to 100".into()));
        }
        Ok(fleetboot_core::batch::BatchPartial {
            windows,
            window_tz,
            window_exit: self.window_exit,
            only_if: command(&self.only_if, "batch.only_if")?,
            block_on_pods: self.block_on_pods.clone().filter(|s| !s.trim().is_empty()),
            block_on_pods_on_node: self.block_on_pods_on_node,
            healthy_checks: self.healthy_checks.or(self.health_command.as_ref().map(|_| 1)),
            healthy_interval_ms: ms(&self.healthy_interval, "batch.healthy_interval")?,
            health_command: command(&self.health_command, "batch.health_command")?,
            soak_ms: ms(&self.soak, "batch.soak")?,
            drain_escalation: self
                .drain_escalation
                .as_deref()
                .map(fleetboot_core::batch::parse_drain_escalation)
                .transpose()
                .map_err(bad("batch.drain_escalation"))?,
            block_on_alerts: self
                .block_on_alerts
                .as_deref()
                .map(|url| crate::adapters::alerts::AlertSource::new(url).map(|_| url.trim().to_owned()))
                .transpose()
                .map_err(bad("batch.block_on_alerts"))?,
            alert_filter: self
                .alert_filter_regexp
                .as_deref()
                .map(|r| regex::Regex::new(r).map(|_| r.to_owned()).map_err(|e| e.to_string()))
                .transpose()
                .map_err(bad("batch.alert_filter_regexp"))?,
            // Labels and the annotation: flags only.
            pre_reboot_labels: None,
            post_reboot_labels: None,
            in_progress_annotation: None,
        })
    }
}

/// `[redfish]`: defaults for every BMC, limits, and the fallback policy.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedfishLayer {
    pub username: Option<String>,
    pub password_file: Option<String>,
    pub password_env: Option<String>,
    pub ca_file: Option<String>,
    pub insecure: Option<bool>,
    pub request_timeout: Option<String>,
    pub operation_timeout: Option<String>,
    pub graceful_timeout: Option<String>,
    pub rate: Option<String>,
    pub busy_retries: Option<u32>,
    pub retry_wait: Option<String>,
    pub fallback_on_unreachable: Option<bool>,
    pub fallback_on_auth_failure: Option<bool>,
    pub fallback_on_host_key: Option<bool>,
    pub fallback_on_hung: Option<bool>,
    /// Where this cluster's BareMetalHosts live; BareMetalHosts elsewhere are never used.
    pub bmh_namespaces: Option<Vec<String>>,
}

/// One `[[bmc]]` entry: the BMC of a node (by name or address).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BmcEntry {
    pub node: String,
    pub url: String,
    pub username: Option<String>,
    pub password_file: Option<String>,
    pub password_env: Option<String>,
    /// A Kubernetes Secret `namespace/name` with `username` and `password` keys.
    pub password_secret: Option<String>,
    pub ca_file: Option<String>,
    pub insecure: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterLayer {
    pub kubeconfig: Option<String>,
    pub context: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshLayer {
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identities: Option<Vec<String>>,
    pub known_hosts: Option<String>,
    pub host_key_policy: Option<String>,
    pub connect_timeout: Option<String>,
    pub auth_timeout: Option<String>,
    pub command_timeout: Option<String>,
    pub connect_attempts: Option<u32>,
    pub keepalive_interval: Option<String>,
}

impl SshLayer {
    fn partial(&self) -> Result<SshPartial, ConfigError> {
        let some_duration = |text: &Option<String>, key| text.as_deref().map(|t| parse_duration_value(t, key)).transpose();
        let port = match self.port {
            Some(0) => return Err(ConfigError::BadValue { key: "ssh.port", reason: "must be 1 to 65535".into() }),
            port => port,
        };
        let connect_attempts = match self.connect_attempts {
            Some(0) => return Err(ConfigError::BadValue { key: "ssh.connect_attempts", reason: "must be at least 1".into() }),
            attempts => attempts,
        };
        Ok(SshPartial {
            user: self.user.clone().map(|u| non_empty(Some(u), "ssh.user")).transpose()?,
            port,
            identities: self.identities.clone(),
            known_hosts: self.known_hosts.clone().map(|k| non_empty(Some(k), "ssh.known_hosts")).transpose()?,
            auth_timeout: some_duration(&self.auth_timeout, "ssh.auth_timeout")?,
            command_timeout: some_duration(&self.command_timeout, "ssh.command_timeout")?,
            connect_attempts,
        })
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebootLayer {
    pub command: Option<String>,
    pub boot_id_command: Option<String>,
    pub cancel_command: Option<String>,
    pub check_command: Option<String>,
    pub timeout: Option<String>,
    pub poll_interval: Option<String>,
    pub concurrency: Option<usize>,
    pub rate: Option<String>,
    pub parallel: Option<usize>,
    pub max_failures: Option<String>,
    pub cancel_pending_on_abort: Option<bool>,
    pub transport: Option<String>,
    pub scheduled_delay: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputLayer {
    pub format: Option<String>,
    pub state_dir: Option<String>,
}

/// A fixed choice as a file writes it (exactly one of its names), refused as [`resolve`] refuses it.
fn layer_choice<T: Choice>(text: &Option<String>, key: &'static str) -> Result<Option<T>, ConfigError> {
    let Some(text) = text else { return Ok(None) };
    match T::NAMES.iter().position(|name| name == text) {
        Some(i) => Ok(Some(T::nth(i))),
        None => {
            let (last, rest) = T::NAMES.split_last().expect("a choice has names");
            Err(ConfigError::BadValue { key, reason: format!("{text:?}: expected {} or {last}", rest.join(", ")) })
        }
    }
}

macro_rules! overlay {
    ($base:expr, $top:expr; $($field:ident),+ $(,)?) => {
        $( if $top.$field.is_some() { $base.$field = $top.$field; } )+
    };
}

impl Layer {
    pub fn embedded_defaults() -> Layer {
        Layer::parse(EMBEDDED_DEFAULTS, "embedded defaults").expect("embedded defaults parse")
    }

    pub fn parse(text: &str, origin: &str) -> Result<Layer, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Syntax { origin: origin.to_owned(), reason: e.to_string().trim_end().to_owned() })
    }

    pub fn read(path: &Path) -> Result<Layer, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Unreadable { path: path.to_owned(), reason: e.to_string() })?;
        Layer::parse(&text, &path.display().to_string())
    }

    /// The settings of core's model this layer sets, parsed (a bad value named by its key, as
    /// [`resolve`] names it).
    pub fn partial(&self) -> Result<Partial, ConfigError> {
        let some_duration = |text: &Option<String>, key| text.as_deref().map(|t| parse_duration_value(t, key)).transpose();
        let r = &self.reboot;
        Ok(Partial {
            concurrency: r.concurrency.map(|n| positive(Some(n), "reboot.concurrency")).transpose()?,
            // `--group-concurrency` or `FLEETBOOT_GROUP_CONCURRENCY`: no file key.
            group_concurrency: None,
            max_failures: r
                .max_failures
                .as_deref()
                .map(|t| parse_max_failures(t).map_err(|reason| ConfigError::BadValue { key: "reboot.max_failures", reason }))
                .transpose()?,
            timeout: some_duration(&r.timeout, "reboot.timeout")?,
            poll_interval: some_duration(&r.poll_interval, "reboot.poll_interval")?,
            connect_timeout: some_duration(&self.ssh.connect_timeout, "ssh.connect_timeout")?,
            transport: layer_choice(&r.transport, "reboot.transport")?,
            host_key_policy: layer_choice(&self.ssh.host_key_policy, "ssh.host_key_policy")?,
            output: layer_choice(&self.output.format, "output.format")?,
            context: self.cluster.context.clone().filter(|c| !c.is_empty()),
            command: r.command.clone().map(|c| non_empty(Some(c), "reboot.command")).transpose()?,
            rate: r
                .rate
                .as_deref()
                .map(|t| settings::parse_rate(t).map_err(|reason| ConfigError::BadValue { key: "reboot.rate", reason }))
                .transpose()?,
            boot_id_command: r.boot_id_command.clone().map(|c| non_empty(Some(c), "reboot.boot_id_command")).transpose()?,
            check_command: r.check_command.clone().map(|c| Some(c).filter(|c| !c.trim().is_empty())),
            cancel_pending_on_abort: r.cancel_pending_on_abort,
            parallel: r.parallel.map(|n| positive(Some(n), "reboot.parallel")).transpose()?,
            ssh: self.ssh.partial()?,
            state_dir: self.output.state_dir.clone().map(|d| non_empty(Some(d), "output.state_dir")).transpose()?,
            batch: self.batch.partial()?,
        })
    }

    /// `top` wins wherever it sets a key.
    pub fn overlaid_with(mut self, top: Layer) -> Layer {
        overlay!(self.ssh, top.ssh; user, port, identities, known_hosts, host_key_policy,
            connect_timeout, auth_timeout, command_timeout, connect_attempts, keepalive_interval);
        overlay!(self.reboot, top.reboot; command, boot_id_command, cancel_command, check_command,
            timeout, poll_interval, concurrency, rate, parallel, max_failures, cancel_pending_on_abort, transport, scheduled_delay);
        overlay!(self.redfish, top.redfish; username, password_file, password_env, ca_file, insecure, request_timeout,
            operation_timeout, graceful_timeout, rate, busy_retries, retry_wait, fallback_on_unreachable,
            fallback_on_auth_failure, fallback_on_host_key, fallback_on_hung, bmh_namespaces);
        overlay!(self.output, top.output; format, state_dir);
        overlay!(self.cluster, top.cluster; kubeconfig, context);
        overlay!(self, top; hosts, bmc);
        self
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Rate {
    pub count: NonZeroU32,
    #[serde(with = "humantime_serde_compat")]
    pub per: Duration,
}

impl Rate {
    /// The rate is enforced as an even spacing, so no window of length `per` ever holds more
    /// than `count` starts (a burst of `count` would allow almost twice that across a boundary).
    pub fn spacing(&self) -> Duration {
        self.per / self.count.get()
    }

    /// A limiter that lets one start through per spacing, never a burst.
    pub fn limiter(&self) -> governor::DefaultDirectRateLimiter {
        let spacing = self.spacing().max(Duration::from_nanos(1));
        governor::RateLimiter::direct(governor::Quota::with_period(spacing).expect("non-zero period").allow_burst(NonZeroU32::MIN))
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "min",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

mod humantime_serde_compat {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

/// A rate for a limiter: core's one parser ([`settings::parse_rate`]).
pub fn parse_rate(text: &str) -> Result<Option<Rate>, String> {
    Ok(settings::parse_rate(text)?.map(Rate::from))
}

impl From<RateSpec> for Rate {
    fn from(spec: RateSpec) -> Rate {
        Rate { count: NonZeroU32::new(spec.count).unwrap_or(NonZeroU32::MIN), per: Duration::from_millis(spec.per_ms) }
    }
}

/// `--max-failures` / `reboot.max_failures`: core's one type (the journal's), its one parser.
fn parse_max_failures(text: &str) -> Result<FailureBudget, String> {
    text.parse()
}

#[derive(Clone, Debug, Serialize)]
pub struct SshSettings {
    pub user: String,
    pub port: u16,
    pub identities: Vec<PathBuf>,
    pub known_hosts: PathBuf,
    pub host_key_policy: HostKeyPolicy,
    pub connect_timeout: Duration,
    pub auth_timeout: Duration,
    pub command_timeout: Duration,
    pub connect_attempts: u32,
    pub keepalive_interval: Duration,
}

#[derive(Clone, Debug, Serialize)]
pub struct RebootSettings {
    pub command: String,
    pub boot_id_command: String,
    pub cancel_command: String,
    pub check_command: Option<String>,
    pub timeout: Duration,
    pub poll_interval: Duration,
    pub concurrency: usize,
    pub rate: Option<Rate>,
    pub parallel: usize,
    pub max_failures: FailureBudget,
    pub cancel_pending_on_abort: bool,
    pub transport: TransportChoice,
    /// How long after `shutdown -r` the node may still go down on its own (systemd: 1 min):
    /// no BMC reset before that has passed.
    pub scheduled_delay: Duration,
    /// Windows and `--only-if`.
    pub batch: fleetboot_core::batch::BatchSettings,
}

/// When a node's BMC takes over from SSH.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FallbackPolicy {
    /// SSH refused, reset or timed out: the reboot never reached the node.
    pub on_unreachable: bool,
    /// SSH authentication failed.
    pub on_auth_failure: bool,
    /// The node's host key was unknown or changed. Off by default: it may not be the node.
    pub on_host_key: bool,
    /// The boot ID has not changed by the deadline (a hung node).
    pub on_hung: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct RedfishConfig {
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub insecure: bool,
    #[serde(skip)]
    pub settings: crate::adapters::redfish::RedfishSettings,
    /// After a GracefulRestart, a ForceRestart follows when no new boot ID shows by then.
    pub graceful_timeout: Duration,
    /// BMC operations started per period, across all BMCs.
    pub rate: Option<Rate>,
    pub fallback: FallbackPolicy,
    /// The namespaces whose BareMetalHosts may provide BMCs (`openshift-machine-api`).
    pub bmh_namespaces: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    pub ssh: SshSettings,
    pub reboot: RebootSettings,
    /// Hosts per group in flight; `None`: each group's own limit (a pool's maxUnavailable).
    pub group_concurrency: Option<usize>,
    pub output: OutputFormat,
    pub state_dir: PathBuf,
    pub cluster: ClusterSettings,
    /// The inventory from the config file, when flags named none.
    pub hosts: Option<Vec<Host>>,
    pub redfish: RedfishConfig,
    pub bmcs: Vec<BmcEntry>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ClusterSettings {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

/// The one place precedence is decided: embedded defaults < config file < environment < flags.
/// The file is checked whole first (a bad value names its key; the flags' and the
/// environment's values were checked as they were parsed); every setting a flag or a variable
/// can set is then taken from [`settings::merge`], the file-only ones (BMCs, hosts, the
/// `[redfish]` table) from the file's keys over the defaults.
pub fn resolve(file: Option<Layer>, env: &Partial, flags: &Partial, home: Option<&Path>) -> Result<Settings, ConfigError> {
    let file_part = file.as_ref().map(Layer::partial).transpose()?.unwrap_or_default();
    let mut layer = Layer::embedded_defaults();
    if let Some(file) = file {
        layer = layer.overlaid_with(file);
    }
    let mut resolved = finish(layer, home)?;
    let model = settings::merge(flags, env, &file_part, &model_defaults()?);
    apply_model(&mut resolved, model, home)?;
    Ok(resolved)
}

/// The merged model written into the settings the commands use.
fn apply_model(s: &mut Settings, m: settings::Settings, home: Option<&Path>) -> Result<(), ConfigError> {
    s.reboot.concurrency = m.concurrency;
    s.group_concurrency = m.group_concurrency;
    s.reboot.max_failures = m.max_failures;
    s.reboot.timeout = m.timeout;
    s.reboot.poll_interval = m.poll_interval;
    s.reboot.transport = m.transport;
    s.reboot.command = m.command;
    s.reboot.boot_id_command = m.boot_id_command;
    s.reboot.check_command = m.check_command;
    s.reboot.rate = m.rate.map(Rate::from);
    s.reboot.cancel_pending_on_abort = m.cancel_pending_on_abort;
    s.reboot.batch = m.batch;
    s.reboot.parallel = check_parallel(m.parallel, crate::adapters::system::open_file_limit())?;
    s.ssh.connect_timeout = m.connect_timeout;
    s.ssh.host_key_policy = m.host_key_policy;
    s.ssh.user = m.ssh.user;
    s.ssh.port = m.ssh.port;
    s.ssh.identities = m.ssh.identities.iter().map(|p| expand_home(p, home)).collect();
    s.ssh.known_hosts = expand_home(&m.ssh.known_hosts, home);
    s.ssh.auth_timeout = m.ssh.auth_timeout;
    s.ssh.command_timeout = m.ssh.command_timeout;
    s.ssh.connect_attempts = m.ssh.connect_attempts;
    s.output = m.output;
    s.state_dir = expand_home(&m.state_dir, home);
    s.cluster.context = m.context;
    Ok(())
}

/// The embedded defaults as core's model.
fn model_defaults() -> Result<settings::Settings, ConfigError> {
    let p = Layer::embedded_defaults().partial()?;
    let none = Partial::default();
    Ok(settings::merge(&none, &none, &p, &settings::Settings::default()))
}

fn required<T>(value: Option<T>, key: &'static str) -> Result<T, ConfigError> {
    value.ok_or(ConfigError::BadValue { key, reason: "missing".into() })
}

/// The longest duration any setting takes: deadlines are computed as `now + duration` on the
/// monotonic clock, and a value past this is a typo, not a wish (it would overflow).
pub const MAX_DURATION: Duration = settings::MAX_DURATION;

/// Parses a duration setting: humantime syntax, longer than zero, at most [`MAX_DURATION`].
pub fn parse_duration_value(text: &str, key: &'static str) -> Result<Duration, ConfigError> {
    let parsed = humantime::parse_duration(text.trim())
        .map_err(|e| ConfigError::BadValue { key, reason: format!("{text:?} is not a duration like \"30s\" or \"20m\" ({e})") })?;
    if parsed.is_zero() {
        return Err(ConfigError::BadValue { key, reason: "must be longer than zero".into() });
    }
    if parsed > MAX_DURATION {
        return Err(ConfigError::BadValue { key, reason: format!("{text:?} is longer than the longest fleetboot accepts (366 days)") });
    }
    Ok(parsed)
}

fn duration(value: Option<String>, key: &'static str) -> Result<Duration, ConfigError> {
    parse_duration_value(&required(value, key)?, key)
}

/// Open files kept for fleetboot itself (its runtime, journal, config, the API client) when
/// `--parallel` connections are counted against the open-file limit.
pub const RESERVED_FILES: u64 = 64;
/// The most connections `--parallel` allows, whatever the open-file limit.
pub const MAX_PARALLEL: usize = 1 << 20;

/// `reboot.parallel` against what this process may open: one file per connection, and
/// [`RESERVED_FILES`] for the rest. `fd_limit` is the hard open-file limit (fleetboot raises
/// the soft one to it). Pure.
pub fn check_parallel(parallel: usize, fd_limit: Option<u64>) -> Result<usize, ConfigError> {
    let by_files = fd_limit.map_or(MAX_PARALLEL as u64, |limit| limit.saturating_sub(RESERVED_FILES));
    let most = by_files.min(MAX_PARALLEL as u64).max(1) as usize;
    if parallel > most {
        let why = match fd_limit {
            Some(limit) if (most as u64) == limit.saturating_sub(RESERVED_FILES).max(1) => format!(
                "each connection needs an open file and this process may have {limit} (ulimit -Hn), {RESERVED_FILES} of them kept for fleetboot itself"
            ),
            _ => format!("fleetboot holds at most {MAX_PARALLEL} connections at once"),
        };
        return Err(ConfigError::BadValue { key: "reboot.parallel", reason: format!("{parallel} is more than {most}: {why}") });
    }
    Ok(parallel)
}

fn positive(value: Option<usize>, key: &'static str) -> Result<usize, ConfigError> {
    match required(value, key)? {
        0 => Err(ConfigError::BadValue { key, reason: "must be at least 1".into() }),
        n => Ok(n),
    }
}

fn non_empty(value: Option<String>, key: &'static str) -> Result<String, ConfigError> {
    let text = required(value, key)?;
    if text.trim().is_empty() {
        return Err(ConfigError::BadValue { key, reason: "must not be empty".into() });
    }
    Ok(text)
}

/// `~/x` against the home directory; other paths as they are.
pub fn expand_home(path: &str, home: Option<&Path>) -> PathBuf {
    match (path.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(path),
    }
}

fn finish(layer: Layer, home: Option<&Path>) -> Result<Settings, ConfigError> {
    let Layer { ssh, reboot, output, cluster, hosts, redfish, bmc, batch: _ } = layer;
    let host_key_policy = required(layer_choice(&ssh.host_key_policy, "ssh.host_key_policy")?, "ssh.host_key_policy")?;
    let port = required(ssh.port, "ssh.port")?;
    if port == 0 {
        return Err(ConfigError::BadValue { key: "ssh.port", reason: "must be 1 to 65535".into() });
    }
    let connect_attempts = required(ssh.connect_attempts, "ssh.connect_attempts")?;
    if connect_attempts == 0 {
        return Err(ConfigError::BadValue { key: "ssh.connect_attempts", reason: "must be at least 1".into() });
    }
    let ssh = SshSettings {
        user: non_empty(ssh.user, "ssh.user")?,
        port,
        identities: required(ssh.identities, "ssh.identities")?.iter().map(|p| expand_home(p, home)).collect(),
        known_hosts: expand_home(&non_empty(ssh.known_hosts, "ssh.known_hosts")?, home),
        host_key_policy,
        connect_timeout: duration(ssh.connect_timeout, "ssh.connect_timeout")?,
        auth_timeout: duration(ssh.auth_timeout, "ssh.auth_timeout")?,
        command_timeout: duration(ssh.command_timeout, "ssh.command_timeout")?,
        connect_attempts,
        keepalive_interval: duration(ssh.keepalive_interval, "ssh.keepalive_interval")?,
    };
    let rate_text = required(reboot.rate, "reboot.rate")?;
    let failures_text = required(reboot.max_failures, "reboot.max_failures")?;
    let reboot = RebootSettings {
        command: non_empty(reboot.command, "reboot.command")?,
        boot_id_command: non_empty(reboot.boot_id_command, "reboot.boot_id_command")?,
        cancel_command: non_empty(reboot.cancel_command, "reboot.cancel_command")?,
        check_command: reboot.check_command.filter(|c| !c.trim().is_empty()),
        timeout: duration(reboot.timeout, "reboot.timeout")?,
        poll_interval: duration(reboot.poll_interval, "reboot.poll_interval")?,
        concurrency: positive(reboot.concurrency, "reboot.concurrency")?,
        rate: parse_rate(&rate_text).map_err(|reason| ConfigError::BadValue { key: "reboot.rate", reason })?,
        parallel: check_parallel(positive(reboot.parallel, "reboot.parallel")?, crate::adapters::system::open_file_limit())?,
        max_failures: parse_max_failures(&failures_text).map_err(|reason| ConfigError::BadValue { key: "reboot.max_failures", reason })?,
        cancel_pending_on_abort: required(reboot.cancel_pending_on_abort, "reboot.cancel_pending_on_abort")?,
        transport: required(layer_choice(&reboot.transport, "reboot.transport")?, "reboot.transport")?,
        scheduled_delay: duration(reboot.scheduled_delay, "reboot.scheduled_delay")?,
        batch: Default::default(),
    };
    let redfish_rate = required(redfish.rate, "redfish.rate")?;
    let flag = |v: Option<bool>, key| required(v, key);
    let redfish = RedfishConfig {
        username: redfish.username.filter(|u| !u.is_empty()),
        password_file: redfish.password_file.filter(|p| !p.is_empty()).map(|p| expand_home(&p, home)),
        password_env: redfish.password_env.filter(|p| !p.is_empty()),
        ca_file: redfish.ca_file.filter(|p| !p.is_empty()).map(|p| expand_home(&p, home)),
        insecure: flag(redfish.insecure, "redfish.insecure")?,
        settings: crate::adapters::redfish::RedfishSettings {
            request_timeout: duration(redfish.request_timeout, "redfish.request_timeout")?,
            operation_timeout: duration(redfish.operation_timeout, "redfish.operation_timeout")?,
            busy_retries: match required(redfish.busy_retries, "redfish.busy_retries")? {
                n @ 0..=20 => n,
                n => return Err(ConfigError::BadValue { key: "redfish.busy_retries", reason: format!("{n} is more than 20") }),
            },
            retry_wait: duration(redfish.retry_wait, "redfish.retry_wait")?,
        },
        graceful_timeout: duration(redfish.graceful_timeout, "redfish.graceful_timeout")?,
        rate: parse_rate(&redfish_rate).map_err(|reason| ConfigError::BadValue { key: "redfish.rate", reason })?,
        fallback: FallbackPolicy {
            on_unreachable: flag(redfish.fallback_on_unreachable, "redfish.fallback_on_unreachable")?,
            on_auth_failure: flag(redfish.fallback_on_auth_failure, "redfish.fallback_on_auth_failure")?,
            on_host_key: flag(redfish.fallback_on_host_key, "redfish.fallback_on_host_key")?,
            on_hung: flag(redfish.fallback_on_hung, "redfish.fallback_on_hung")?,
        },
        bmh_namespaces: {
            let namespaces = required(redfish.bmh_namespaces, "redfish.bmh_namespaces")?;
            if namespaces.is_empty() || namespaces.iter().any(|n| n.trim().is_empty() || n.contains('/')) {
                return Err(ConfigError::BadValue {
                    key: "redfish.bmh_namespaces",
                    reason: format!("{namespaces:?}: name at least one namespace, each without \"/\""),
                });
            }
            namespaces
        },
    };
    let bmcs = bmc.unwrap_or_default();
    for (i, entry) in bmcs.iter().enumerate() {
        let sources = [&entry.password_file, &entry.password_env, &entry.password_secret].iter().filter(|s| s.is_some()).count();
        if sources > 1 {
            return Err(ConfigError::BadValue {
                key: "bmc",
                reason: format!(
                    "entry {} (node {:?}) names more than one of password_file, password_env, password_secret",
                    i + 1,
                    entry.node
                ),
            });
        }
        if crate::adapters::redfish::split_bmc_url(&entry.url).is_none() {
            return Err(ConfigError::BadValue {
                key: "bmc",
                reason: format!(
                    "entry {} (node {:?}): url {:?} is not https://host[:port][/redfish/v1/Systems/ID]",
                    i + 1,
                    entry.node,
                    entry.url
                ),
            });
        }
    }
    let output_format = required(layer_choice(&output.format, "output.format")?, "output.format")?;
    Ok(Settings {
        ssh,
        reboot,
        group_concurrency: None,
        output: output_format,
        state_dir: expand_home(&non_empty(output.state_dir, "output.state_dir")?, home),
        cluster: ClusterSettings {
            kubeconfig: cluster.kubeconfig.filter(|k| !k.is_empty()).map(|k| expand_home(&k, home)),
            context: cluster.context.filter(|c| !c.is_empty()),
        },
        hosts,
        redfish,
        bmcs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home() -> Option<&'static Path> {
        Some(Path::new("/home/admin"))
    }

    #[test]
    fn defaults_alone_resolve_to_the_documented_values() {
        let s = resolve(None, &Partial::default(), &Partial::default(), home()).unwrap();
        assert_eq!(s.ssh.user, "core");
        assert_eq!(s.ssh.port, 22);
        assert_eq!(s.ssh.known_hosts, PathBuf::from("/home/admin/.ssh/known_hosts"));
        assert_eq!(s.ssh.host_key_policy, HostKeyPolicy::Strict);
        assert_eq!(s.reboot.command, "sudo shutdown -r -t 3");
        assert_eq!(s.reboot.timeout, Duration::from_secs(20 * 60));
        assert_eq!(s.reboot.concurrency, 1);
        assert_eq!(s.reboot.rate, None);
        assert_eq!(s.reboot.max_failures, FailureBudget::Count(0));
        assert_eq!(s.reboot.check_command, None);
        assert_eq!(s.output, OutputFormat::Auto);
    }

    #[test]
    fn cores_defaults_are_the_embedded_file() {
        // Core's model has its own defaults (it knows no file); they must not drift from
        // config/defaults.toml, which is what users read.
        assert_eq!(model_defaults().unwrap(), settings::Settings::default());
    }

    #[test]
    fn flags_beat_file_and_file_beats_defaults() {
        let file = Layer::parse("[ssh]\nuser = \"admin\"\nport = 2200\n[reboot]\nconcurrency = 4\nrate = \"10/min\"\n", "f.toml").unwrap();
        let mut flags = Partial { rate: Some(settings::parse_rate("2/s").unwrap()), ..Partial::default() };
        flags.ssh.user = Some("root".into());
        let s = resolve(Some(file), &Partial::default(), &flags, home()).unwrap();
        assert_eq!(s.ssh.user, "root", "flag wins over file");
        assert_eq!(s.ssh.port, 2200, "file wins over default");
        assert_eq!(s.reboot.concurrency, 4);
        assert_eq!(s.reboot.rate.unwrap().spacing(), Duration::from_millis(500));
        assert_eq!(s.reboot.parallel, 64, "default kept");
    }

    #[test]
    fn the_environment_sits_between_the_file_and_the_flags() {
        use fleetboot_core::settings::{Origin, RawLayer};
        let file = || Layer::parse("[reboot]\nconcurrency = 4\ntimeout = \"30m\"\n[cluster]\ncontext = \"from-file\"\n", "f.toml").unwrap();
        let env = RawLayer::from_env([("FLEETBOOT_CONCURRENCY", "3"), ("FLEETBOOT_CONTEXT", "from-env"), ("FLEETBOOT_OUTPUT", "json")])
            .parse(&Origin::Environment)
            .unwrap();
        let s = resolve(Some(file()), &env, &Partial::default(), home()).unwrap();
        assert_eq!(s.reboot.concurrency, 3, "the environment beats the file");
        assert_eq!(s.cluster.context.as_deref(), Some("from-env"));
        assert_eq!(s.output, OutputFormat::Json);
        assert_eq!(s.reboot.timeout, Duration::from_secs(30 * 60), "the file beats the default");
        assert_eq!(s.group_concurrency, None, "each group's own limit unless told");

        let flags = Partial { concurrency: Some(2), context: Some("from-flag".into()), ..Partial::default() };
        let s = resolve(Some(file()), &env, &flags, home()).unwrap();
        assert_eq!((s.reboot.concurrency, s.cluster.context.as_deref()), (2, Some("from-flag")), "the flag beats the environment");

        let s = resolve(None, &Partial::default(), &Partial::default(), home()).unwrap();
        assert_eq!((s.reboot.concurrency, s.cluster.context), (1, None), "no context: the kubeconfig's current one");
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let err = Layer::parse("[reboot]\nconcurency = 3\n", "my.toml").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("my.toml") && text.contains("concurency"), "{text}");

        let bad = Layer::parse("[reboot]\ntimeout = \"soon\"\n", "f").unwrap();
        let err = resolve(Some(bad), &Partial::default(), &Partial::default(), home()).unwrap_err();
        assert!(err.to_string().starts_with("bad value for reboot.timeout: \"soon\""), "{err}");

        let bad = Layer::parse("[reboot]\nrate = \"5/fortnight\"\n", "f").unwrap();
        let err = resolve(Some(bad), &Partial::default(), &Partial::default(), home()).unwrap_err();
        assert!(err.to_string().contains("reboot.rate") && err.to_string().contains("fortnight"), "{err}");

        let bad = Layer::parse("[reboot]\nconcurrency = 0\n", "f").unwrap();
        assert!(resolve(Some(bad), &Partial::default(), &Partial::default(), home()).is_err());
    }

    #[test]
    fn the_annotated_example_is_a_valid_config() {
        let text = include_str!("../../config/fleetboot.example.toml");
        let s = resolve(Some(Layer::parse(text, "example").unwrap()), &Partial::default(), &Partial::default(), home()).unwrap();
        assert_eq!(s.hosts.unwrap().len(), 2);
        assert_eq!(s.reboot.max_failures, FailureBudget::Percent(10));
    }

    #[test]
    fn bmc_entries_and_redfish_settings_are_checked() {
        let s = resolve(None, &Partial::default(), &Partial::default(), home()).unwrap();
        assert_eq!(s.reboot.transport, TransportChoice::Auto);
        assert!(s.redfish.fallback.on_unreachable && !s.redfish.fallback.on_host_key);
        let two = Layer::parse("[[bmc]]\nnode = \"n1\"\nurl = \"https://b\"\npassword_file = \"f\"\npassword_env = \"E\"\n", "f").unwrap();
        let err = resolve(Some(two), &Partial::default(), &Partial::default(), home()).unwrap_err().to_string();
        assert!(err.contains("entry 1") && err.contains("n1") && err.contains("more than one"), "{err}");
        let ipmi = Layer::parse("[[bmc]]\nnode = \"n1\"\nurl = \"ipmi://b\"\n", "f").unwrap();
        let err = resolve(Some(ipmi), &Partial::default(), &Partial::default(), home()).unwrap_err().to_string();
        assert!(err.contains("ipmi://b"), "{err}");
        let typo = Layer::parse("[[bmc]]\nnode = \"n1\"\nurl = \"https://b\"\npasword_file = \"f\"\n", "my.toml").unwrap_err().to_string();
        assert!(typo.contains("pasword_file"), "{typo}");
        let bad = Layer::parse("[reboot]\ntransport = \"ipmi\"\n", "f").unwrap();
        assert!(resolve(Some(bad), &Partial::default(), &Partial::default(), home()).unwrap_err().to_string().contains("reboot.transport"));
    }

    #[test]
    fn rates_and_failure_budgets_parse() {
        assert_eq!(parse_rate("unlimited").unwrap(), None);
        let r = parse_rate("10/min").unwrap().unwrap();
        assert_eq!(r.spacing(), Duration::from_secs(6));
        assert_eq!(r.to_string(), "10/min");
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("ten/s").is_err());
        assert!(parse_rate("10").is_err());
        assert_eq!(parse_max_failures("3").unwrap().tolerated(100), 3);
        assert_eq!(parse_max_failures("10%").unwrap().tolerated(25), 2);
        assert!(parse_max_failures("101%").is_err());
        assert!(parse_max_failures("x").is_err());
    }

    #[test]
    fn huge_durations_parallel_and_retries_are_refused_naming_the_key() {
        for (section, key) in [("reboot", "timeout"), ("ssh", "connect_timeout"), ("redfish", "graceful_timeout")] {
            for huge in ["500000000y", "367days", "99999999999999999999999s"] {
                let layer = Layer::parse(&format!("[{section}]\n{key} = \"{huge}\"\n"), "f").unwrap();
                let err = resolve(Some(layer), &Partial::default(), &Partial::default(), home()).unwrap_err().to_string();
                assert!(err.starts_with(&format!("bad value for {section}.{key}: \"{huge}\"")), "{err}");
            }
        }
        let year = Layer::parse("[reboot]\ntimeout = \"366days\"\n", "f").unwrap();
        assert_eq!(resolve(Some(year), &Partial::default(), &Partial::default(), home()).unwrap().reboot.timeout, MAX_DURATION);

        assert_eq!(check_parallel(960, Some(1024)).unwrap(), 960);
        let err = check_parallel(961, Some(1024)).unwrap_err().to_string();
        assert!(err.starts_with("bad value for reboot.parallel: 961 is more than 960") && err.contains("1024"), "{err}");
        let err = check_parallel(usize::MAX, None).unwrap_err().to_string();
        assert!(err.contains("at most 1048576"), "{err}");
        let flags = Partial { parallel: Some(usize::MAX), ..Partial::default() };
        assert!(resolve(None, &Partial::default(), &flags, home()).unwrap_err().to_string().contains("reboot.parallel"));

        let retries = Layer::parse("[redfish]\nbusy_retries = 4000000000\n", "f").unwrap();
        assert!(
            resolve(Some(retries), &Partial::default(), &Partial::default(), home())
                .unwrap_err()
                .to_string()
                .contains("redfish.busy_retries")
        );
        let namespaces = Layer::parse("[redfish]\nbmh_namespaces = []\n", "f").unwrap();
        assert!(
            resolve(Some(namespaces), &Partial::default(), &Partial::default(), home())
                .unwrap_err()
                .to_string()
                .contains("redfish.bmh_namespaces")
        );
        assert_eq!(
            resolve(None, &Partial::default(), &Partial::default(), home()).unwrap().redfish.bmh_namespaces,
            ["openshift-machine-api"]
        );
    }
}
