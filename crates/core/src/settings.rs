//! The typed run settings and their one merge: flag > environment > config file > default.
//!
//! Every source (clap's flags, `FLEETBOOT_*` variables, a config file's keys, the embedded
//! defaults) fills the same [`Partial`]: one `Option` a setting. [`merge`] takes the first value
//! set, in that order, field by field; nothing else decides precedence. Text from the
//! environment or a file goes through [`RawLayer::parse`], so a bad value is refused with the
//! file (or variable) and key that held it, before anything is touched.
//!
//! The fixed choices ([`Transport`], [`HostKeyPolicy`], [`OutputFormat`]) exist once, here: clap
//! parses them with `value_parser = Transport::from_str` (their [`Choice::NAMES`] are the
//! possible values), serde reads and writes the same names for the file and the journal.
//!
//! Adding a setting: a field in [`Partial`] and [`Settings`], a line in [`merge`], its flag
//! (whose `value_parser` yields the field's type) and, for the file, its key in
//! `adapters::config::Layer::partial`; a key in [`RawLayer`] when the environment may set it.
//! Then use it.
//!
//! One file, past 500 lines: the model, its parsers and its one merge are the single place a setting is defined.

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

/// A duration as written by people: `500ms`, `90s`, `5m`/`5min`, `2h`, or a sum (`1m30s`).
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
            "ms" => 1,
            "s" | "sec" => 1_000,
            "m" | "min" => 60_000,
            "h" | "hour" => 3_600_000,
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
    pub host_key_policy: Option<HostKeyPolicy>,
    pub output: Option<OutputFormat>,
    pub context: Option<String>,
    /// `Some(None)`: explicitly none (`--rate unlimited`, an empty check command).
    pub command: Option<String>,
    pub rate: Option<Option<RateSpec>>,
    pub boot_id_command: Option<String>,
    pub check_command: Option<Option<String>>,
    pub cancel_pending_on_abort: Option<bool>,
    pub parallel: Option<usize>,
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
    pub connect_timeout: Duration,
    pub transport: Transport,
    pub host_key_policy: HostKeyPolicy,
    pub output: OutputFormat,
    /// The kubeconfig context; `None`: the kubeconfig's current one.
    pub context: Option<String>,
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
    pub ssh: SshSettings,
    /// Where journals are kept, as written.
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
    pub auth_timeout: Duration,
    pub command_timeout: Duration,
    pub connect_attempts: u32,
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
            connect_timeout: Duration::from_secs(10),
            transport: Transport::Auto,
            host_key_policy: HostKeyPolicy::Strict,
            output: OutputFormat::Auto,
            context: None,
            command: "sudo shutdown -r -t 3".to_owned(),
            boot_id_command: "cat /proc/sys/kernel/random/boot_id".to_owned(),
            check_command: None,
            rate: None,
            cancel_pending_on_abort: false,
            parallel: 64,
            ssh: SshSettings {
                user: "core".to_owned(),
                port: 22,
                identities: Vec::new(),
                known_hosts: "~/.ssh/known_hosts".to_owned(),
                auth_timeout: Duration::from_secs(10),
                command_timeout: Duration::from_secs(60),
                connect_attempts: 3,
            },
            state_dir: "~/.local/state/fleetboot".to_owned(),
            batch: crate::batch::BatchSettings::default(),
        }
    }
}

/// The one merge: for each setting the flag, else the environment, else the file, else the default.
pub fn merge(flags: &Partial, env: &Partial, file: &Partial, defaults: &Settings) -> Settings {
    macro_rules! pick {
        ($field:ident) => {
            flags.$field.clone().or_else(|| env.$field.clone()).or_else(|| file.$field.clone()).unwrap_or_else(|| defaults.$field.clone())
        };
    }
    Settings {
        concurrency: pick!(concurrency),
        group_concurrency: flags.group_concurrency.or(env.group_concurrency).or(file.group_concurrency).or(defaults.group_concurrency),
        max_failures: pick!(max_failures),
        timeout: pick!(timeout),
        poll_interval: pick!(poll_interval),
        connect_timeout: pick!(connect_timeout),
        transport: pick!(transport),
        host_key_policy: pick!(host_key_policy),
        output: pick!(output),
        context: flags
            .context
            .clone()
            .or_else(|| env.context.clone())
            .or_else(|| file.context.clone())
            .or_else(|| defaults.context.clone()),
        command: pick!(command),
        boot_id_command: pick!(boot_id_command),
        check_command: pick!(check_command),
        rate: pick!(rate),
        cancel_pending_on_abort: pick!(cancel_pending_on_abort),
        parallel: pick!(parallel),
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
                auth_timeout: ssh!(auth_timeout),
                command_timeout: ssh!(command_timeout),
                connect_attempts: ssh!(connect_attempts),
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

/// The settings the environment may give, by key, each read from `FLEETBOOT_` and the key in
/// capitals (`group-concurrency`: `FLEETBOOT_GROUP_CONCURRENCY`).
pub const ENV_KEYS: &[&str] = &[
    "concurrency",
    "group-concurrency",
    "max-failures",
    "timeout",
    "poll-interval",
    "connect-timeout",
    "transport",
    "host-key-policy",
    "output",
    "context",
];

/// The environment variable of a key: `poll-interval` -> `FLEETBOOT_POLL_INTERVAL`.
pub fn env_var(key: &str) -> String {
    format!("FLEETBOOT_{}", key.to_uppercase().replace('-', "_"))
}

/// The settings as text, the way a file's `[run]` table or the environment holds them. Unknown
/// keys are refused by serde, never ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawLayer {
    pub concurrency: Option<String>,
    pub group_concurrency: Option<String>,
    pub max_failures: Option<String>,
    pub timeout: Option<String>,
    pub poll_interval: Option<String>,
    pub connect_timeout: Option<String>,
    pub transport: Option<String>,
    pub host_key_policy: Option<String>,
    pub output: Option<String>,
    pub context: Option<String>,
}

impl RawLayer {
    /// The environment's layer: `FLEETBOOT_CONCURRENCY` and so on, from the pairs given (the
    /// caller reads the environment; this stays pure).
    pub fn from_env<'a>(vars: impl IntoIterator<Item = (&'a str, &'a str)>) -> RawLayer {
        let mut raw = RawLayer::default();
        for (name, value) in vars {
            let Some(key) = ENV_KEYS.iter().find(|key| env_var(key) == name) else { continue };
            *raw.slot(key) = Some(value.to_owned());
        }
        raw
    }

    fn slot(&mut self, key: &str) -> &mut Option<String> {
        match key {
            "concurrency" => &mut self.concurrency,
            "group-concurrency" => &mut self.group_concurrency,
            "max-failures" => &mut self.max_failures,
            "timeout" => &mut self.timeout,
            "poll-interval" => &mut self.poll_interval,
            "connect-timeout" => &mut self.connect_timeout,
            "transport" => &mut self.transport,
            "host-key-policy" => &mut self.host_key_policy,
            "output" => &mut self.output,
            "context" => &mut self.context,
            other => unreachable!("no setting {other}"),
        }
    }

    /// Every value parsed into its type; the first bad one is refused with `origin` and its key.
    pub fn parse(&self, origin: &Origin) -> Result<Partial, SettingsError> {
        fn field<T>(
            origin: &Origin,
            key: &str,
            text: &Option<String>,
            parse: impl Fn(&str) -> Result<T, String>,
        ) -> Result<Option<T>, SettingsError> {
            text.as_deref()
                .map(|t| parse(t).map_err(|reason| SettingsError { origin: origin.clone(), key: key.to_owned(), reason }))
                .transpose()
        }
        Ok(Partial {
            concurrency: field(origin, "concurrency", &self.concurrency, parse_limit)?,
            group_concurrency: field(origin, "group-concurrency", &self.group_concurrency, parse_limit)?,
            max_failures: field(origin, "max-failures", &self.max_failures, str::parse)?,
            timeout: field(origin, "timeout", &self.timeout, parse_setting_duration)?,
            poll_interval: field(origin, "poll-interval", &self.poll_interval, parse_setting_duration)?,
            connect_timeout: field(origin, "connect-timeout", &self.connect_timeout, parse_setting_duration)?,
            transport: field(origin, "transport", &self.transport, str::parse)?,
            host_key_policy: field(origin, "host-key-policy", &self.host_key_policy, str::parse)?,
            output: field(origin, "output", &self.output, str::parse)?,
            context: self.context.clone().filter(|c| !c.is_empty()),
            ..Partial::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_set(concurrency: usize, transport: Transport, context: &str) -> Partial {
        Partial {
            concurrency: Some(concurrency),
            group_concurrency: Some(concurrency),
            max_failures: Some(FailureBudget::Count(concurrency)),
            timeout: Some(Duration::from_secs(concurrency as u64)),
            poll_interval: Some(Duration::from_millis(concurrency as u64)),
            connect_timeout: Some(Duration::from_secs(100 + concurrency as u64)),
            transport: Some(transport),
            host_key_policy: Some(HostKeyPolicy::AcceptNew),
            output: Some(OutputFormat::Json),
            context: Some(context.to_owned()),
            ..Partial::default()
        }
    }

    #[test]
    fn each_field_takes_the_flag_then_the_environment_then_the_file_then_the_default() {
        let flags = all_set(4, Transport::Ssh, "flag");
        let env = all_set(3, Transport::Redfish, "env");
        let file = all_set(2, Transport::Auto, "file");
        let defaults = Settings::default();
        let everything = merge(&flags, &env, &file, &defaults);
        assert_eq!((everything.concurrency, everything.transport, everything.context.as_deref()), (4, Transport::Ssh, Some("flag")));
        assert_eq!(everything.timeout, Duration::from_secs(4));

        let none = Partial::default();
        let no_flag = merge(&none, &env, &file, &defaults);
        assert_eq!((no_flag.concurrency, no_flag.transport, no_flag.context.as_deref()), (3, Transport::Redfish, Some("env")));
        let file_only = merge(&none, &none, &file, &defaults);
        assert_eq!((file_only.concurrency, file_only.group_concurrency, file_only.context.as_deref()), (2, Some(2), Some("file")));
        assert_eq!(merge(&none, &none, &none, &defaults), defaults);
    }

    #[test]
    fn precedence_is_decided_per_field_not_per_source() {
        let flags = Partial { concurrency: Some(9), ..Partial::default() };
        let env = Partial { output: Some(OutputFormat::Plain), ..Partial::default() };
        let file =
            Partial { concurrency: Some(2), transport: Some(Transport::Redfish), output: Some(OutputFormat::Json), ..Partial::default() };
        let s = merge(&flags, &env, &file, &Settings::default());
        assert_eq!(s.concurrency, 9, "the flag beats the file");
        assert_eq!(s.output, OutputFormat::Plain, "the environment beats the file");
        assert_eq!(s.transport, Transport::Redfish, "the file beats the default");
        assert_eq!(s.host_key_policy, HostKeyPolicy::Strict, "the default when nobody says");
    }

    #[test]
    fn a_bad_value_in_the_file_names_the_file_and_the_key() {
        let raw = RawLayer { concurrency: Some("4".into()), transport: Some("telnet".into()), ..RawLayer::default() };
        let err = raw.parse(&Origin::File("/etc/fleetboot.toml".into())).unwrap_err();
        assert_eq!(err.key, "transport");
        let text = err.to_string();
        assert!(text.starts_with("/etc/fleetboot.toml: `transport`: "), "{text}");
        assert!(text.contains("auto, ssh, redfish") && text.contains("telnet"), "{text}");

        let zero = RawLayer { group_concurrency: Some("0".into()), ..RawLayer::default() };
        let err = zero.parse(&Origin::File("site.toml".into())).unwrap_err();
        assert_eq!(err.to_string(), "site.toml: `group-concurrency`: a limit of 0 reboots nothing; use at least 1");
        let late = RawLayer { timeout: Some("soon".into()), ..RawLayer::default() };
        assert!(late.parse(&Origin::Environment).unwrap_err().to_string().starts_with("environment variable FLEETBOOT_TIMEOUT: "));
    }

    #[test]
    fn the_file_format_refuses_unknown_keys_and_reads_the_same_names_as_the_flags() {
        let raw: RawLayer = serde_json::from_str(r#"{"concurrency": "3", "host-key-policy": "accept-new", "output": "json"}"#).unwrap();
        let p = raw.parse(&Origin::File("f".into())).unwrap();
        assert_eq!((p.concurrency, p.host_key_policy, p.output), (Some(3), Some(HostKeyPolicy::AcceptNew), Some(OutputFormat::Json)));
        let unknown = serde_json::from_str::<RawLayer>(r#"{"concurency": "3"}"#).unwrap_err().to_string();
        assert!(unknown.contains("concurency"), "{unknown}");
    }

    #[test]
    fn the_environment_fills_its_layer_by_name() {
        let raw = RawLayer::from_env([
            ("FLEETBOOT_CONCURRENCY", "5"),
            ("FLEETBOOT_TRANSPORT", "ssh"),
            ("HOME", "/root"),
            ("FLEETBOOT_UNKNOWN", "x"),
        ]);
        let p = raw.parse(&Origin::Environment).unwrap();
        assert_eq!((p.concurrency, p.transport, p.output), (Some(5), Some(Transport::Ssh), None));
    }

    #[test]
    fn every_key_has_its_variable_and_a_bad_variable_is_named() {
        for key in ENV_KEYS {
            let name = env_var(key);
            let raw = RawLayer::from_env([(name.as_str(), "nonsense value")]);
            let err = raw.parse(&Origin::Environment);
            if *key == "context" {
                assert_eq!(err.unwrap().context.as_deref(), Some("nonsense value"), "any name is a context's name");
                continue;
            }
            let text = err.unwrap_err().to_string();
            assert!(text.starts_with(&format!("environment variable {name}: ")), "{text}");
            assert!(text.contains("nonsense value"), "the value refused is shown: {text}");
        }
        assert_eq!(env_var("group-concurrency"), "FLEETBOOT_GROUP_CONCURRENCY");
        let zero = RawLayer::from_env([("FLEETBOOT_CONCURRENCY", "0")]).parse(&Origin::Environment).unwrap_err().to_string();
        assert_eq!(zero, "environment variable FLEETBOOT_CONCURRENCY: a limit of 0 reboots nothing; use at least 1");
        let never = RawLayer::from_env([("FLEETBOOT_POLL_INTERVAL", "0s")]).parse(&Origin::Environment).unwrap_err().to_string();
        assert_eq!(never, "environment variable FLEETBOOT_POLL_INTERVAL: must be longer than zero");
        let huge = RawLayer::from_env([("FLEETBOOT_TIMEOUT", "9000h")]).parse(&Origin::Environment).unwrap_err().to_string();
        assert!(huge.contains("366 days"), "{huge}");
        assert_eq!(RawLayer::from_env([("FLEETBOOT_CONTEXT", "")]).parse(&Origin::Environment).unwrap().context, None);
        assert_eq!(RawLayer::from_env([("fleetboot_concurrency", "3"), ("FLEETBOOT_CONCURRENCY_X", "3")]), RawLayer::default());
    }

    #[test]
    fn one_spelling_for_the_command_line_the_file_and_the_journal() {
        for &name in HostKeyPolicy::NAMES {
            let parsed: HostKeyPolicy = name.parse().unwrap();
            assert_eq!(parsed.to_string(), name);
            assert_eq!(serde_json::to_string(&parsed).unwrap(), format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<HostKeyPolicy>(&format!("\"{name}\"")).unwrap(), parsed);
        }
        assert_eq!(Transport::NAMES, ["auto", "ssh", "redfish", "kube"]);
        assert_eq!(OutputFormat::NAMES, ["auto", "plain", "json", "yaml"]);
    }

    #[test]
    fn durations_and_budgets_read_as_people_write_them() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5min"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("").is_err() && parse_duration("5").is_err() && parse_duration("5 fortnights").is_err());
        assert_eq!("10%".parse(), Ok(FailureBudget::Percent(10)));
        assert_eq!("3".parse(), Ok(FailureBudget::Count(3)));
        assert!("101%".parse::<FailureBudget>().is_err());
    }
}
