//! Settings: the embedded defaults, then the config file, then the environment, then flags,
//! resolved in one function. Every setting a flag, a variable or a file's `[ssh]`, `[reboot]`,
//! `[output]`, `[cluster]` or `[batch]` key can set is core's model ([`settings::Settings`]),
//! read through core's one key table ([`settings::KEYS`]) and merged by its one
//! [`settings::merge`]; the commands use the merged model as it is ([`Settings::run`]). Only the
//! file's own tables (`[redfish]`, `[[bmc]]`, `[[hosts]]`) are shaped here.
//!
//! One file, past 500 lines with its tests: the file's shape and every check of its keys.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use fleetboot_core::hosts::Host;
use fleetboot_core::journal::RateSpec;
use fleetboot_core::settings::{self, Origin, Partial, SettingsError, Value};
/// The fixed choices exist once, in core's settings model.
pub use fleetboot_core::settings::{HostKeyPolicy, OutputFormat, SshSettings, Transport};

/// The runner's and the transports' settings are the model itself.
pub type RebootSettings = settings::Settings;

const EMBEDDED_DEFAULTS: &str = include_str!("../../config/defaults.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read config file {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("bad config file {origin}: {reason}")]
    Syntax { origin: String, reason: String },
    #[error("bad value for {key}: {reason}")]
    BadValue { key: &'static str, reason: String },
    /// A bad run setting, named by its file and key or by its `FLEETBOOT_*` variable.
    #[error(transparent)]
    Setting(#[from] SettingsError),
}

/// A config file, read: the run settings it sets (core's model, every key checked) and the
/// file's own tables.
#[derive(Clone, Debug, Default)]
pub struct ConfigFile {
    pub run: Partial,
    pub tables: FileTables,
}

/// The tables only a file has: the inventory, the BMC defaults and policy, the BMCs by node.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTables {
    #[serde(default)]
    pub hosts: Option<Vec<Host>>,
    #[serde(default)]
    pub redfish: RedfishLayer,
    /// BMCs by node, overriding what the cluster's BareMetalHosts say.
    #[serde(default)]
    pub bmc: Option<Vec<BmcEntry>>,
}

impl ConfigFile {
    pub fn embedded_defaults() -> ConfigFile {
        ConfigFile::parse(EMBEDDED_DEFAULTS, "embedded defaults").expect("embedded defaults parse")
    }

    pub fn read(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Unreadable { path: path.to_owned(), reason: e.to_string() })?;
        ConfigFile::parse(&text, &path.display().to_string())
    }

    /// The whole file checked: a syntax error, an unknown key or a bad value is refused naming
    /// the file and the key, before anything is touched.
    pub fn parse(text: &str, origin: &str) -> Result<ConfigFile, ConfigError> {
        let syntax = |reason: String| ConfigError::Syntax { origin: origin.to_owned(), reason: reason.trim_end().to_owned() };
        let document: toml::Table = toml::from_str(text).map_err(|e| syntax(e.to_string()))?;
        let file_origin = Origin::File(origin.to_owned());
        let mut entries = Vec::new();
        let mut own = toml::Table::new();
        for (name, value) in document {
            if !settings::keys::file_sections().any(|section| section == name) {
                own.insert(name, value);
                continue;
            }
            let toml::Value::Table(table) = value else {
                return Err(syntax(format!("[{name}] must be a table")));
            };
            for (key, value) in table {
                let key = format!("{name}.{key}");
                let value =
                    setting_value(value).map_err(|reason| SettingsError { origin: file_origin.clone(), key: key.clone(), reason })?;
                entries.push((key, value));
            }
        }
        let run = Partial::from_file(entries, &file_origin)?;
        check_batch(&run.batch, &file_origin)?;
        let tables = FileTables::deserialize(own).map_err(|e| syntax(e.to_string()))?;
        Ok(ConfigFile { run, tables })
    }
}

/// A file's value as core's key table reads it: text for a string, a number or a boolean; a
/// list of strings.
fn setting_value(value: toml::Value) -> Result<Value, String> {
    match value {
        toml::Value::String(text) => Ok(Value::Text(text)),
        toml::Value::Integer(n) => Ok(Value::Text(n.to_string())),
        toml::Value::Float(x) => Ok(Value::Text(x.to_string())),
        toml::Value::Boolean(b) => Ok(Value::Text(b.to_string())),
        toml::Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                toml::Value::String(text) => Ok(text),
                other => Err(format!("expected a list of strings, found {other:?}")),
            })
            .collect::<Result<_, _>>()
            .map(Value::List),
        other => Err(format!("expected a value, found {other:?}")),
    }
}

/// What core cannot check of the batch settings (it has no time-zone database, no HTTP client,
/// no regex engine), checked here with the file and key named.
fn check_batch(batch: &fleetboot_core::batch::BatchPartial, origin: &Origin) -> Result<(), SettingsError> {
    let refuse = |key: &str, reason: String| SettingsError { origin: origin.clone(), key: key.to_owned(), reason };
    if let Some(zone) = &batch.window_tz {
        crate::adapters::tz::IanaZone::named(zone).map_err(|e| refuse("batch.window_tz", e.to_string()))?;
    }
    if let Some(url) = &batch.block_on_alerts {
        crate::adapters::alerts::AlertSource::new(url).map_err(|reason| refuse("batch.block_on_alerts", reason))?;
    }
    if let Some(expression) = &batch.alert_filter {
        regex::Regex::new(expression).map_err(|e| refuse("batch.alert_filter_regexp", e.to_string()))?;
    }
    Ok(())
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

impl RedfishLayer {
    /// `top` wins wherever it sets a key.
    fn overlaid_with(mut self, top: RedfishLayer) -> RedfishLayer {
        macro_rules! overlay {
            ($($field:ident),+ $(,)?) => {
                $( if top.$field.is_some() { self.$field = top.$field; } )+
            };
        }
        overlay!(
            username,
            password_file,
            password_env,
            ca_file,
            insecure,
            request_timeout,
            operation_timeout,
            graceful_timeout,
            rate,
            busy_retries,
            retry_wait,
            fallback_on_unreachable,
            fallback_on_auth_failure,
            fallback_on_host_key,
            fallback_on_hung,
            bmh_namespaces,
        );
        self
    }
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

/// A rate for a limiter: core's one parser ([`settings::parse_rate`]).
pub fn parse_rate(text: &str) -> Result<Option<RateSpec>, String> {
    settings::parse_rate(text)
}

/// A limiter that lets one start through per spacing of `rate`, never a burst.
pub fn limiter(rate: RateSpec) -> governor::DefaultDirectRateLimiter {
    let spacing = rate.spacing().max(Duration::from_nanos(1));
    governor::RateLimiter::direct(governor::Quota::with_period(spacing).expect("non-zero period").allow_burst(std::num::NonZeroU32::MIN))
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
    pub rate: Option<RateSpec>,
    pub fallback: FallbackPolicy,
    /// The namespaces whose BareMetalHosts may provide BMCs (`openshift-machine-api`).
    pub bmh_namespaces: Vec<String>,
}

/// One command's settings, decided.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    /// Every run setting: flags > `FLEETBOOT_*` > the file > the defaults, `~/` expanded.
    pub run: settings::Settings,
    /// The inventory from the config file, when flags named none.
    pub hosts: Option<Vec<Host>>,
    pub redfish: RedfishConfig,
    pub bmcs: Vec<BmcEntry>,
}

impl Settings {
    /// Where journals are kept.
    pub fn state_dir(&self) -> PathBuf {
        PathBuf::from(&self.run.state_dir)
    }
}

/// The one place precedence is decided: embedded defaults < config file < environment < flags.
/// Every run setting comes from [`settings::merge`]; the file's own tables from its keys over
/// the embedded defaults'.
pub fn resolve(file: Option<ConfigFile>, env: &Partial, flags: &Partial, home: Option<&Path>) -> Result<Settings, ConfigError> {
    let file = file.unwrap_or_default();
    let mut run = settings::merge(flags, env, &file.run, &settings::Settings::default());
    run.parallel = check_parallel(run.parallel, crate::adapters::system::open_file_limit())?;
    let expand = |path: &mut String| *path = expand_home(path, home).to_string_lossy().into_owned();
    run.ssh.identities.iter_mut().for_each(expand);
    expand(&mut run.ssh.known_hosts);
    expand(&mut run.state_dir);
    run.kubeconfig.iter_mut().for_each(expand);
    let FileTables { hosts, redfish, bmc } = file.tables;
    let redfish = redfish_config(ConfigFile::embedded_defaults().tables.redfish.overlaid_with(redfish), home)?;
    let bmcs = bmc.unwrap_or_default();
    check_bmcs(&bmcs)?;
    Ok(Settings { run, hosts, redfish, bmcs })
}

fn required<T>(value: Option<T>, key: &'static str) -> Result<T, ConfigError> {
    value.ok_or(ConfigError::BadValue { key, reason: "missing".into() })
}

/// The longest duration any setting takes: deadlines are computed as `now + duration` on the
/// monotonic clock, and a value past this is a typo, not a wish (it would overflow).
pub const MAX_DURATION: Duration = settings::MAX_DURATION;

/// A duration setting: core's one parser ([`settings::parse_setting_duration`]), the key named.
pub fn parse_duration_value(text: &str, key: &'static str) -> Result<Duration, ConfigError> {
    settings::parse_setting_duration(text).map_err(|reason| ConfigError::BadValue { key, reason })
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

/// `~/x` against the home directory; other paths as they are.
pub fn expand_home(path: &str, home: Option<&Path>) -> PathBuf {
    match (path.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(path),
    }
}

/// `[redfish]` over the embedded defaults, every key checked.
fn redfish_config(redfish: RedfishLayer, home: Option<&Path>) -> Result<RedfishConfig, ConfigError> {
    let redfish_rate = required(redfish.rate, "redfish.rate")?;
    let flag = |v: Option<bool>, key| required(v, key);
    Ok(RedfishConfig {
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
    })
}

/// Each `[[bmc]]` entry: one password source at most, a Redfish URL.
fn check_bmcs(bmcs: &[BmcEntry]) -> Result<(), ConfigError> {
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
        // Refused, not stripped: the file is the user's to fix, and a password written there
        // would otherwise be carried into errors, the journal and the report. The URL is not
        // echoed, so the password is not either.
        if crate::adapters::redfish::strip_userinfo(&entry.url).1 {
            return Err(ConfigError::BadValue {
                key: "bmc",
                reason: format!(
                    "entry {} (node {:?}): url carries a user name or password (user:pass@host); give username and \
                     password_file, password_env or password_secret instead",
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetboot_core::settings::FailureBudget;

    fn home() -> Option<&'static Path> {
        Some(Path::new("/home/admin"))
    }

    #[test]
    fn defaults_alone_resolve_to_the_documented_values() {
        let s = resolve(None, &Partial::default(), &Partial::default(), home()).unwrap();
        assert_eq!(s.run.ssh.user, "core");
        assert_eq!(s.run.ssh.port, 22);
        assert_eq!(s.run.ssh.known_hosts, "/home/admin/.ssh/known_hosts");
        assert_eq!(s.run.ssh.host_key_policy, HostKeyPolicy::Strict);
        assert_eq!(s.run.command, "sudo shutdown -r -t 3");
        assert_eq!(s.run.timeout, Duration::from_secs(20 * 60));
        assert_eq!(s.run.concurrency, 1);
        assert_eq!(s.run.rate, None);
        assert_eq!(s.run.max_failures, FailureBudget::Count(0));
        assert_eq!(s.run.check_command, None);
        assert_eq!(s.run.output, OutputFormat::Auto);
        assert_eq!(s.state_dir(), PathBuf::from("/home/admin/.local/state/fleetboot"));
    }

    #[test]
    fn cores_defaults_are_the_embedded_file() {
        // Core's model has its own defaults (it knows no file); they must not drift from
        // config/defaults.toml, which is what users read.
        let none = Partial::default();
        let from_file = settings::merge(&none, &none, &ConfigFile::embedded_defaults().run, &settings::Settings::default());
        assert_eq!(from_file, settings::Settings::default());
        // Every key the file may set is written in the defaults, but the batch's (off unless asked).
        let text: toml::Table = toml::from_str(EMBEDDED_DEFAULTS).unwrap();
        for key in settings::KEYS.iter().filter_map(|k| k.file).filter(|k| !k.starts_with("batch.")) {
            let (section, name) = key.split_once('.').unwrap();
            let written = text.get(section).and_then(|s| s.get(name)).is_some();
            assert!(written || key == "cluster.kubeconfig" || key == "cluster.context", "{key} missing from config/defaults.toml");
        }
    }

    #[test]
    fn flags_beat_file_and_file_beats_defaults() {
        let file =
            ConfigFile::parse("[ssh]\nuser = \"admin\"\nport = 2200\n[reboot]\nconcurrency = 4\nrate = \"10/min\"\n", "f.toml").unwrap();
        let mut flags = Partial { rate: Some(settings::parse_rate("2/s").unwrap()), ..Partial::default() };
        flags.ssh.user = Some("root".into());
        let s = resolve(Some(file), &Partial::default(), &flags, home()).unwrap();
        assert_eq!(s.run.ssh.user, "root", "flag wins over file");
        assert_eq!(s.run.ssh.port, 2200, "file wins over default");
        assert_eq!(s.run.concurrency, 4);
        assert_eq!(s.run.rate.unwrap().spacing(), Duration::from_millis(500));
        assert_eq!(s.run.parallel, 64, "default kept");
    }

    #[test]
    fn the_environment_sits_between_the_file_and_the_flags() {
        let file =
            || ConfigFile::parse("[reboot]\nconcurrency = 4\ntimeout = \"30m\"\n[cluster]\ncontext = \"from-file\"\n", "f.toml").unwrap();
        let env =
            Partial::from_env([("FLEETBOOT_CONCURRENCY", "3"), ("FLEETBOOT_CONTEXT", "from-env"), ("FLEETBOOT_OUTPUT", "json")]).unwrap();
        let s = resolve(Some(file()), &env, &Partial::default(), home()).unwrap();
        assert_eq!(s.run.concurrency, 3, "the environment beats the file");
        assert_eq!(s.run.context.as_deref(), Some("from-env"));
        assert_eq!(s.run.output, OutputFormat::Json);
        assert_eq!(s.run.timeout, Duration::from_secs(30 * 60), "the file beats the default");
        assert_eq!(s.run.group_concurrency, None, "each group's own limit unless told");

        let flags = Partial { concurrency: Some(2), context: Some("from-flag".into()), ..Partial::default() };
        let s = resolve(Some(file()), &env, &flags, home()).unwrap();
        assert_eq!((s.run.concurrency, s.run.context.as_deref()), (2, Some("from-flag")), "the flag beats the environment");

        let s = resolve(None, &Partial::default(), &Partial::default(), home()).unwrap();
        assert_eq!((s.run.concurrency, s.run.context), (1, None), "no context: the kubeconfig's current one");
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let err = ConfigFile::parse("[reboot]\nconcurency = 3\n", "my.toml").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("my.toml: `reboot.concurency`: unknown key"), "{text}");
        let err = ConfigFile::parse("[rebot]\nconcurrency = 3\n", "my.toml").unwrap_err().to_string();
        assert!(err.contains("my.toml") && err.contains("rebot"), "{err}");

        let err = ConfigFile::parse("[reboot]\ntimeout = \"soon\"\n", "f").unwrap_err();
        assert!(err.to_string().starts_with("f: `reboot.timeout`: ") && err.to_string().contains("\"soon\""), "{err}");

        let err = ConfigFile::parse("[reboot]\nrate = \"5/fortnight\"\n", "f").unwrap_err();
        assert!(err.to_string().contains("reboot.rate") && err.to_string().contains("fortnight"), "{err}");

        assert!(ConfigFile::parse("[reboot]\nconcurrency = 0\n", "f").is_err());
        let err = ConfigFile::parse("[batch]\nwindow_tz = \"Mars/Olympus\"\n", "f").unwrap_err().to_string();
        assert!(err.starts_with("f: `batch.window_tz`: "), "{err}");
        let err = ConfigFile::parse("[batch]\nalert_filter_regexp = \"(\"\n", "f").unwrap_err().to_string();
        assert!(err.starts_with("f: `batch.alert_filter_regexp`: "), "{err}");
    }

    #[test]
    fn the_annotated_example_is_a_valid_config() {
        let text = include_str!("../../config/fleetboot.example.toml");
        let s = resolve(Some(ConfigFile::parse(text, "example").unwrap()), &Partial::default(), &Partial::default(), home()).unwrap();
        assert_eq!(s.hosts.unwrap().len(), 2);
        assert_eq!(s.run.max_failures, FailureBudget::Percent(10));
    }

    #[test]
    fn bmc_entries_and_redfish_settings_are_checked() {
        let s = resolve(None, &Partial::default(), &Partial::default(), home()).unwrap();
        assert_eq!(s.run.transport, Transport::Auto);
        assert!(s.redfish.fallback.on_unreachable && !s.redfish.fallback.on_host_key);
        let two =
            ConfigFile::parse("[[bmc]]\nnode = \"n1\"\nurl = \"https://b\"\npassword_file = \"f\"\npassword_env = \"E\"\n", "f").unwrap();
        let err = resolve(Some(two), &Partial::default(), &Partial::default(), home()).unwrap_err().to_string();
        assert!(err.contains("entry 1") && err.contains("n1") && err.contains("more than one"), "{err}");
        let ipmi = ConfigFile::parse("[[bmc]]\nnode = \"n1\"\nurl = \"ipmi://b\"\n", "f").unwrap();
        let err = resolve(Some(ipmi), &Partial::default(), &Partial::default(), home()).unwrap_err().to_string();
        assert!(err.contains("ipmi://b"), "{err}");
        let creds = ConfigFile::parse("[[bmc]]\nnode = \"n1\"\nurl = \"https://admin:hunter2@b/redfish/v1/Systems/1\"\n", "f").unwrap();
        let err = resolve(Some(creds), &Partial::default(), &Partial::default(), home()).unwrap_err().to_string();
        assert!(err.contains("entry 1") && err.contains("n1") && err.contains("user:pass@"), "{err}");
        assert!(!err.contains("hunter2") && !err.contains("admin"), "the secret is not echoed: {err}");
        let typo =
            ConfigFile::parse("[[bmc]]\nnode = \"n1\"\nurl = \"https://b\"\npasword_file = \"f\"\n", "my.toml").unwrap_err().to_string();
        assert!(typo.contains("pasword_file"), "{typo}");
        assert!(ConfigFile::parse("[reboot]\ntransport = \"ipmi\"\n", "f").unwrap_err().to_string().contains("reboot.transport"));
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
        assert_eq!("3".parse::<FailureBudget>().unwrap().tolerated(100), 3);
        assert_eq!("10%".parse::<FailureBudget>().unwrap().tolerated(25), 2);
        assert!("101%".parse::<FailureBudget>().is_err());
        assert!("x".parse::<FailureBudget>().is_err());
    }

    #[test]
    fn huge_durations_parallel_and_retries_are_refused_naming_the_key() {
        for (section, key) in [("reboot", "timeout"), ("ssh", "connect_timeout")] {
            for huge in ["500000000y", "367days", "99999999999999999999999s"] {
                let err = ConfigFile::parse(&format!("[{section}]\n{key} = \"{huge}\"\n"), "f").unwrap_err().to_string();
                assert!(err.starts_with(&format!("f: `{section}.{key}`: ")) && err.contains(huge), "{err}");
            }
        }
        for huge in ["500000000y", "367days", "99999999999999999999999s"] {
            let layer = ConfigFile::parse(&format!("[redfish]\ngraceful_timeout = \"{huge}\"\n"), "f").unwrap();
            let err = resolve(Some(layer), &Partial::default(), &Partial::default(), home()).unwrap_err().to_string();
            assert!(err.starts_with("bad value for redfish.graceful_timeout: ") && err.contains(huge), "{err}");
        }
        let year = ConfigFile::parse("[reboot]\ntimeout = \"366days\"\n", "f").unwrap();
        assert_eq!(resolve(Some(year), &Partial::default(), &Partial::default(), home()).unwrap().run.timeout, MAX_DURATION);

        assert_eq!(check_parallel(960, Some(1024)).unwrap(), 960);
        let err = check_parallel(961, Some(1024)).unwrap_err().to_string();
        assert!(err.starts_with("bad value for reboot.parallel: 961 is more than 960") && err.contains("1024"), "{err}");
        let err = check_parallel(usize::MAX, None).unwrap_err().to_string();
        assert!(err.contains("at most 1048576"), "{err}");
        let flags = Partial { parallel: Some(usize::MAX), ..Partial::default() };
        assert!(resolve(None, &Partial::default(), &flags, home()).unwrap_err().to_string().contains("reboot.parallel"));

        let retries = ConfigFile::parse("[redfish]\nbusy_retries = 4000000000\n", "f").unwrap();
        assert!(
            resolve(Some(retries), &Partial::default(), &Partial::default(), home())
                .unwrap_err()
                .to_string()
                .contains("redfish.busy_retries")
        );
        let namespaces = ConfigFile::parse("[redfish]\nbmh_namespaces = []\n", "f").unwrap();
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
