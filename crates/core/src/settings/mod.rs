//! The typed run settings and their one merge: flag > environment > config file > default.
//!
//! Every source (clap's flags, `FLEETBOOT_*` variables, a config file's keys, the embedded
//! defaults) fills the same [`Partial`]: one `Option` a setting. [`merge`] takes the first value
//! set, in that order, field by field; nothing else decides precedence. Text from the
//! environment or a file goes through one table ([`keys::KEYS`]: `Partial::from_env`,
//! `Partial::from_file`), so a bad value is refused with the file (or variable) and key that
//! held it, before anything is touched.
//!
//! The fixed choices ([`Transport`], [`HostKeyPolicy`], [`OutputFormat`]) exist once, here: clap
//! parses them with `value_parser = Transport::from_str` (their [`Choice::NAMES`] are the
//! possible values), serde reads and writes the same names for the file and the journal.
//!
//! Adding a setting: a field in [`Partial`] and [`Settings`], a line in [`merge`] and, for the
//! file or the environment, a line in [`keys::KEYS`] (its file key, its variable, its parser);
//! then its flag (whose `value_parser` yields the field's type), and where it is used. The
//! commands read the merged model itself (`adapters::config::Settings::run`): nothing copies it.
//!
//! Past 500 lines: the model, its parsers and its one merge are the single place a setting is defined.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A fixed choice spelled the same on the command line, in the file and in the journal.
pub trait Choice: Sized + Copy + 'static {
    /// Every spelling, in the order `--help` lists them.
    const NAMES: &'static [&'static str];
    /// What each spelling means, one line each, for `--help`.
    const HELP: &'static [&'static str];
    /// The value for `NAMES[i]`.
    fn nth(i: usize) -> Self;
    fn name(self) -> &'static str;
}

fn parse_choice<T: Choice>(text: &str) -> Result<T, String> {
    T::NAMES
        .iter()
        .position(|n| *n == text.trim())
        .map(T::nth)
        .ok_or_else(|| format!("expected one of {}, found {text:?}", T::NAMES.join(", ")))
}

macro_rules! choice {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal : $help:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $text)] $variant),+
        }
        impl Choice for $name {
            const NAMES: &'static [&'static str] = &[$($text),+];
            const HELP: &'static [&'static str] = &[$($help),+];
            fn nth(i: usize) -> Self {
                [$($name::$variant),+][i]
            }
            fn name(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
        impl FromStr for $name {
            type Err = String;
            fn from_str(text: &str) -> Result<Self, String> {
                parse_choice(text)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

choice!(
    /// `--transport`: how reboots reach the nodes.
    Transport {
        /// SSH, the BMC as the fallback when the policy allows it.
        Auto = "auto": "SSH, the BMC as the fallback",
        Ssh = "ssh": "SSH only; never a BMC",
        Redfish = "redfish": "Always the BMC (Redfish)",
        Kube = "kube": "The cluster API only: exec into the node's machine-config daemon pod",
    }
);

/// `[transport] order` / `--transport-order`: the rungs `--transport auto` tries on each node,
/// first to last: `ssh`, `kube` (the cluster API's exec), `redfish` (the BMC, the runner's
/// fallback: last when present). A rung left out is never used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TransportOrder(pub Vec<Transport>);

impl Default for TransportOrder {
    fn default() -> TransportOrder {
        TransportOrder(vec![Transport::Ssh, Transport::Kube, Transport::Redfish])
    }
}

impl TransportOrder {
    /// The rungs from names: each of ssh, kube, redfish at most once, redfish last.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<TransportOrder, String> {
        let mut order = Vec::new();
        for name in names {
            let rung = match name.as_ref().trim() {
                "ssh" => Transport::Ssh,
                "kube" => Transport::Kube,
                "redfish" => Transport::Redfish,
                other => return Err(format!("expected ssh, kube or redfish, found {other:?}")),
            };
            if order.contains(&rung) {
                return Err(format!("{rung} is named twice"));
            }
            order.push(rung);
        }
        match order.iter().position(|t| *t == Transport::Redfish) {
            _ if order.is_empty() => Err("name at least one of ssh, kube, redfish".to_owned()),
            Some(i) if i + 1 != order.len() => Err("redfish (the BMC) comes last: it is the fallback once the others failed".to_owned()),
            _ => Ok(TransportOrder(order)),
        }
    }

    pub fn contains(&self, rung: Transport) -> bool {
        self.0.contains(&rung)
    }

    /// Whether `transport` with this order runs the nodes' commands through the cluster API's
    /// exec alone (`kube`, or `auto` whose command rungs are kube alone): exec must then be
    /// granted before anything is changed, as nothing else could reboot a node.
    pub fn commands_only_through_the_api(&self, transport: Transport) -> bool {
        transport == Transport::Kube || (transport == Transport::Auto && self.command_rungs() == [Transport::Kube])
    }

    /// The rungs that run commands on the node (ssh, kube), in order.
    pub fn command_rungs(&self) -> Vec<Transport> {
        self.0.iter().copied().filter(|t| *t != Transport::Redfish).collect()
    }
}

impl FromStr for TransportOrder {
    type Err = String;
    /// `ssh,kube,redfish`.
    fn from_str(text: &str) -> Result<TransportOrder, String> {
        TransportOrder::parse(&text.split(',').collect::<Vec<_>>())
    }
}

impl fmt::Display for TransportOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|t| t.name()).collect();
        f.write_str(&names.join(","))
    }
}

choice!(
    /// `--host-key-policy`: what an unknown or changed SSH host key does.
    HostKeyPolicy {
        /// An unknown or changed key fails the host.
        Strict = "strict": "Unknown or changed keys fail the host",
        /// Unknown keys are recorded; changed keys still fail the host.
        AcceptNew = "accept-new": "Record unknown keys; changed keys still fail the host",
        /// `StrictHostKeyChecking=no`: anything goes. Loudly warned about.
        InsecureIgnore = "insecure-ignore": "Do not verify host keys at all. Dangerous",
    }
);

choice!(
    /// `--output`: how a run is shown.
    OutputFormat {
        Auto = "auto": "A live display on a terminal, plain lines otherwise",
        Plain = "plain": "One line per event",
        Json = "json": "One JSON object per event",
        Yaml = "yaml": "One YAML document per event (a stream: the JSON's events as YAML)",
    }
);

/// `--max-failures`: failed hosts tolerated before no new reboot starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureBudget {
    Count(usize),
    Percent(u8),
}

impl FailureBudget {
    /// How many failed hosts are tolerated in a fleet of `total`; one more stops new reboots.
    pub fn tolerated(&self, total: usize) -> usize {
        match *self {
            FailureBudget::Count(n) => n,
            FailureBudget::Percent(p) => total * p as usize / 100,
        }
    }
}

impl std::fmt::Display for FailureBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailureBudget::Count(n) => write!(f, "{n}"),
            FailureBudget::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// `--rate`: `count` reboots per `per_ms`, evenly spaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateSpec {
    pub count: u32,
    pub per_ms: u64,
}

impl RateSpec {
    /// The rate is enforced as an even spacing, so no window of length `per` ever holds more
    /// than `count` starts (a burst of `count` would allow almost twice that across a boundary).
    pub fn spacing(&self) -> Duration {
        Duration::from_millis(self.per_ms) / self.count.max(1)
    }
}

impl fmt::Display for RateSpec {
    /// As written: `10/min`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per_ms {
            1_000 => "s",
            60_000 => "min",
            3_600_000 => "h",
            other => return write!(f, "{}/{}ms", self.count, other),
        };
        write!(f, "{}/{unit}", self.count)
    }
}

impl FromStr for FailureBudget {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some(p) = text.strip_suffix('%') {
            let p: u8 =
                p.trim().parse().ok().filter(|p| *p <= 100).ok_or_else(|| format!("bad percentage {text:?}: expected 0% to 100%"))?;
            return Ok(FailureBudget::Percent(p));
        }
        text.parse().map(FailureBudget::Count).map_err(|_| format!("expected a count or a percentage like \"10%\", found {text:?}"))
    }
}

/// `--rate` / `reboot.rate`: starts per period (`N/s`, `N/min`, `N/h`), or `unlimited` (`None`).
pub fn parse_rate(text: &str) -> Result<Option<RateSpec>, String> {
    let text = text.trim();
    if matches!(text, "unlimited" | "none") {
        return Ok(None);
    }
    let (count, unit) = text.split_once('/').ok_or_else(|| format!("expected `N/s`, `N/min`, `N/h` or `unlimited`, found {text:?}"))?;
    let count: u32 = count.trim().parse().map_err(|_| format!("bad count {count:?} in rate {text:?}"))?;
    if count == 0 {
        return Err(format!("rate {text:?} allows nothing; use a count of at least 1"));
    }
    let per_ms = match unit.trim() {
        "s" | "sec" | "second" => 1_000,
        "m" | "min" | "minute" => 60_000,
        "h" | "hour" => 3_600_000,
        other => return Err(format!("bad unit {other:?} in rate {text:?}: use s, min or h")),
    };
    Ok(Some(RateSpec { count, per_ms }))
}

/// A rate as clap hands it over: `unlimited` is a value, not an absent flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit(pub Option<RateSpec>);

impl FromStr for RateLimit {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        parse_rate(text).map(RateLimit)
    }
}

/// A command run on the nodes: never empty (it would run nothing and prove nothing).
pub fn parse_command(text: &str) -> Result<String, String> {
    match text.trim() {
        "" => Err("must not be empty".to_owned()),
        _ => Ok(text.to_owned()),
    }
}

/// `--port`: 1 to 65535.
pub fn parse_port(text: &str) -> Result<u16, String> {
    match text.trim().parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("expected a port from 1 to 65535, found {text:?}")),
        Ok(port) => Ok(port),
    }
}

/// `--connect-attempts`: at least 1.
pub fn parse_attempts(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("expected a whole number of at least 1, found {text:?}")),
    }
}

/// A duration as written by people: `500ms`, `90s`, `5m`/`5min`, `2h`, `1day`, or a sum (`1m30s`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad = || format!("expected a duration like \"90s\", \"5min\" or \"1h\", found {text:?}");
    if text.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = rest[digits..].trim_start();
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c.is_whitespace()).unwrap_or(rest.len());
        let millis = match &rest[..unit_len] {
            "ms" | "msec" => 1,
            "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
            "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
            "h" | "hr" | "hour" | "hours" => 3_600_000,
            "d" | "day" | "days" => 86_400_000,
            "w" | "week" | "weeks" => 7 * 86_400_000,
            // A year as humantime counts it: 365.25 days.
            "y" | "year" | "years" => 31_557_600_000,
            _ => return Err(bad()),
        };
        total += Duration::from_millis(n.checked_mul(millis).ok_or_else(bad)?);
        rest = rest[unit_len..].trim_start();
    }
    Ok(total)
}

/// The longest duration any setting takes: deadlines are computed as `now + duration` on the
/// monotonic clock, and a value past this is a typo, not a wish (it would overflow).
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// A duration setting: [`parse_duration`], longer than zero, at most [`MAX_DURATION`].
pub fn parse_setting_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        d if d.is_zero() => Err("must be longer than zero".to_owned()),
        d if d > MAX_DURATION => Err(format!("{:?} is longer than the longest fleetboot accepts (366 days)", text.trim())),
        d => Ok(d),
    }
}

/// A concurrency limit: at least 1 (a limit of 0 reboots nothing).
pub fn parse_limit(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("a limit of 0 reboots nothing; use at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("expected a whole number of at least 1, found {text:?}")),
    }
}

/// One source's settings, every one optional: the flags, the environment, a file, the defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Partial {
    pub concurrency: Option<usize>,
    pub group_concurrency: Option<usize>,
    pub max_failures: Option<FailureBudget>,
    pub timeout: Option<Duration>,
    pub poll_interval: Option<Duration>,
    pub connect_timeout: Option<Duration>,
    pub transport: Option<Transport>,
    pub transport_order: Option<TransportOrder>,
    pub host_key_policy: Option<HostKeyPolicy>,
    pub output: Option<OutputFormat>,
    pub context: Option<String>,
    pub debug_image: Option<String>,
    /// `Some(None)`: explicitly none (`--rate unlimited`, an empty check command).
    pub command: Option<String>,
    pub rate: Option<Option<RateSpec>>,
    pub boot_id_command: Option<String>,
    pub check_command: Option<Option<String>>,
    pub cancel_pending_on_abort: Option<bool>,
    pub parallel: Option<usize>,
    pub cancel_command: Option<String>,
    pub scheduled_delay: Option<Duration>,
    pub journal_liveness: Option<Duration>,
    pub kubeconfig: Option<String>,
    pub ssh: SshPartial,
    pub state_dir: Option<String>,
    /// Windows, `--only-if` ([`crate::batch`]).
    pub batch: crate::batch::BatchPartial,
}

/// The SSH connection's settings from one source. Paths stay as written (`~/` is the
/// commands layer's to expand: core knows no home directory).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SshPartial {
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identities: Option<Vec<String>>,
    pub known_hosts: Option<String>,
    pub auth_timeout: Option<Duration>,
    pub command_timeout: Option<Duration>,
    pub connect_attempts: Option<u32>,
    pub keepalive_interval: Option<Duration>,
}

/// The settings of one command, every one decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Settings {
    pub concurrency: usize,
    /// `None`: each group's own limit (a pool's maxUnavailable, 1 per label value).
    pub group_concurrency: Option<usize>,
    pub max_failures: FailureBudget,
    pub timeout: Duration,
    pub poll_interval: Duration,
    pub transport: Transport,
    /// `auto`'s rungs, per node.
    pub transport_order: TransportOrder,
    pub output: OutputFormat,
    /// The kubeconfig context; `None`: the kubeconfig's current one.
    pub context: Option<String>,
    /// The kubeconfig file; `None`: `$KUBECONFIG`, then `~/.kube/config`, as kubectl finds it.
    pub kubeconfig: Option<String>,
    /// The kube transport's debug pods' image; `None`: the cluster's `openshift/tools:latest`
    /// image stream, else `oc debug node`'s own fallback (a disconnected cluster mirrors the
    /// first, not the second).
    pub debug_image: Option<String>,
    /// The reboot command.
    pub command: String,
    pub boot_id_command: String,
    /// Run on each host once it is back; `None`: no check.
    pub check_command: Option<String>,
    /// Reboot commands started per period; `None`: unlimited.
    pub rate: Option<RateSpec>,
    pub cancel_pending_on_abort: bool,
    /// Connections for plain commands and boot-ID reads at once.
    pub parallel: usize,
    /// Cancels a reboot scheduled but not yet begun (`--cancel-pending-on-abort`).
    pub cancel_command: String,
    /// How long after the reboot command the node may still go down on its own (systemd's
    /// `shutdown -r`: a minute): no BMC reset before that has passed.
    pub scheduled_delay: Duration,
    /// How long the writer of a journal in the cluster may go without renewing its run's lease
    /// (`fleetboot-run-RUN-ID`) before a resume elsewhere may take the journal over.
    pub journal_liveness: Duration,
    pub ssh: SshSettings,
    /// Where journals are kept (`~/` expanded by the commands layer, which knows the home).
    pub state_dir: String,
    /// Windows, `--only-if` ([`crate::batch`]).
    pub batch: crate::batch::BatchSettings,
}

/// The SSH connection, decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SshSettings {
    pub user: String,
    pub port: u16,
    /// Empty: ssh-agent, then the usual key files.
    pub identities: Vec<String>,
    pub known_hosts: String,
    pub host_key_policy: HostKeyPolicy,
    pub connect_timeout: Duration,
    pub auth_timeout: Duration,
    pub command_timeout: Duration,
    pub connect_attempts: u32,
    pub keepalive_interval: Duration,
}

impl Default for Settings {
    /// The embedded defaults (README, "Configuration").
    fn default() -> Self {
        Settings {
            concurrency: 1,
            group_concurrency: None,
            max_failures: FailureBudget::Count(0),
            timeout: Duration::from_secs(20 * 60),
            poll_interval: Duration::from_secs(5),
            transport: Transport::Auto,
            transport_order: TransportOrder::default(),
            output: OutputFormat::Auto,
            context: None,
            debug_image: None,
            kubeconfig: None,
            command: "sudo shutdown -r -t 3".to_owned(),
            boot_id_command: "cat /proc/sys/kernel/random/boot_id".to_owned(),
            check_command: None,
            rate: None,
            cancel_pending_on_abort: false,
            parallel: 64,
            cancel_command: "sudo shutdown -c".to_owned(),
            scheduled_delay: Duration::from_secs(60),
            journal_liveness: Duration::from_secs(30),
            ssh: SshSettings {
                user: "core".to_owned(),
                port: 22,
                identities: Vec::new(),
                known_hosts: "~/.ssh/known_hosts".to_owned(),
                host_key_policy: HostKeyPolicy::Strict,
                connect_timeout: Duration::from_secs(10),
                auth_timeout: Duration::from_secs(10),
                command_timeout: Duration::from_secs(60),
                connect_attempts: 3,
                keepalive_interval: Duration::from_secs(5),
            },
            state_dir: "~/.local/state/fleetboot".to_owned(),
            batch: crate::batch::BatchSettings::default(),
        }
    }
}

/// The one merge: for each setting the flag, else the environment, else the file, else the default.
pub fn merge(flags: &Partial, env: &Partial, file: &Partial, defaults: &Settings) -> Settings {
    macro_rules! first {
        ($field:ident) => {
            flags.$field.clone().or_else(|| env.$field.clone()).or_else(|| file.$field.clone())
        };
    }
    macro_rules! pick {
        ($field:ident) => {
            first!($field).unwrap_or_else(|| defaults.$field.clone())
        };
    }
    Settings {
        concurrency: pick!(concurrency),
        group_concurrency: first!(group_concurrency).or(defaults.group_concurrency),
        max_failures: pick!(max_failures),
        timeout: pick!(timeout),
        poll_interval: pick!(poll_interval),
        transport: pick!(transport),
        transport_order: pick!(transport_order),
        output: pick!(output),
        context: first!(context).or_else(|| defaults.context.clone()),
        kubeconfig: first!(kubeconfig).or_else(|| defaults.kubeconfig.clone()),
        debug_image: first!(debug_image).or_else(|| defaults.debug_image.clone()),
        command: pick!(command),
        boot_id_command: pick!(boot_id_command),
        check_command: pick!(check_command),
        rate: pick!(rate),
        cancel_pending_on_abort: pick!(cancel_pending_on_abort),
        parallel: pick!(parallel),
        cancel_command: pick!(cancel_command),
        scheduled_delay: pick!(scheduled_delay),
        journal_liveness: pick!(journal_liveness),
        ssh: {
            let d = &defaults.ssh;
            macro_rules! ssh {
                ($field:ident) => {
                    flags
                        .ssh
                        .$field
                        .clone()
                        .or_else(|| env.ssh.$field.clone())
                        .or_else(|| file.ssh.$field.clone())
                        .unwrap_or_else(|| d.$field.clone())
                };
            }
            SshSettings {
                user: ssh!(user),
                port: ssh!(port),
                identities: ssh!(identities),
                known_hosts: ssh!(known_hosts),
                host_key_policy: first!(host_key_policy).unwrap_or(d.host_key_policy),
                connect_timeout: first!(connect_timeout).unwrap_or(d.connect_timeout),
                auth_timeout: ssh!(auth_timeout),
                command_timeout: ssh!(command_timeout),
                connect_attempts: ssh!(connect_attempts),
                keepalive_interval: ssh!(keepalive_interval),
            }
        },
        state_dir: pick!(state_dir),
        batch: crate::batch::merge(&flags.batch, &env.batch, &file.batch, &defaults.batch),
    }
}

/// Where a text value came from, for the message that refuses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A config file, by its path as the user gave it.
    File(String),
    /// The environment (`FLEETBOOT_*`).
    Environment,
}

/// A bad value, named by where it was and which key held it: a file and its key, or the
/// environment variable itself (`FLEETBOOT_CONCURRENCY`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct SettingsError {
    pub origin: Origin,
    pub key: String,
    pub reason: String,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::File(path) => write!(f, "{path}: `{}`: {}", self.key, self.reason),
            Origin::Environment => write!(f, "environment variable {}: {}", env_var(&self.key), self.reason),
        }
    }
}

pub mod keys;
pub use keys::{KEYS, Key, Value, env_var};

#[cfg(test)]
mod tests;
