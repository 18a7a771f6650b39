//! The settings' names outside the command line, in one table: each setting's config-file key
//! (`section.key`), its `FLEETBOOT_*` variable when the environment may set it, and the parser
//! that turns the text into the model's type. The file and the environment are both read
//! through [`KEYS`], so a setting has one spelling and one parser wherever it is written, and a
//! key nobody knows is refused, never ignored.

use std::time::Duration;

use super::{Origin, Partial, SettingsError, parse_attempts, parse_command, parse_limit, parse_port, parse_rate, parse_setting_duration};
use crate::batch::{Window, parse_drain_escalation};

/// A value as a file or the environment writes it: text (numbers and booleans of a file read
/// as their text), or a list (`identities`, `windows`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Text(String),
    List(Vec<String>),
}

impl Value {
    fn text(self) -> Result<String, String> {
        match self {
            Value::Text(text) => Ok(text),
            Value::List(_) => Err("expected one value, found a list".to_owned()),
        }
    }

    fn list(self) -> Result<Vec<String>, String> {
        match self {
            Value::List(items) => Ok(items),
            Value::Text(text) => Err(format!("expected a list like [\"…\"], found {text:?}")),
        }
    }
}

/// One setting outside the command line.
pub struct Key {
    /// `section.key` in a config file; `None`: the file cannot set it.
    pub file: Option<&'static str>,
    /// The environment's name for it (`poll-interval`: `FLEETBOOT_POLL_INTERVAL`); `None`: the
    /// environment cannot set it.
    pub env: Option<&'static str>,
    set: fn(&mut Partial, Value) -> Result<(), String>,
}

macro_rules! key {
    ($file:expr, $env:expr, |$p:ident, $v:ident| $body:expr) => {
        Key {
            file: $file,
            env: $env,
            set: |$p: &mut Partial, $v: Value| -> Result<(), String> {
                $body;
                Ok(())
            },
        }
    };
}

fn duration(v: Value) -> Result<Duration, String> {
    parse_setting_duration(&v.text()?)
}

fn millis(v: Value) -> Result<u64, String> {
    Ok(duration(v)?.as_millis() as u64)
}

/// `healthy_checks`: 1 to 100.
fn healthy_checks(v: Value) -> Result<u32, String> {
    let text = v.text()?;
    match text.trim().parse::<u32>() {
        Ok(n @ 1..=100) => Ok(n),
        _ => Err(format!("must be from 1 to 100, found {text:?}")),
    }
}

/// `windows`: a file's list, or one text (the environment's) of windows separated by `;`.
fn windows(v: Value) -> Result<Vec<Window>, String> {
    let items = match v {
        Value::List(items) => items,
        Value::Text(text) => text.split(';').map(str::to_owned).collect(),
    };
    items.iter().map(|w| w.trim().parse::<Window>().map_err(|e| format!("{:?}: {e}", w.trim()))).collect()
}

/// `journal_liveness`: the run lease's duration, whole seconds (a Lease counts in seconds), 3 s at least
/// (it is renewed every third of it).
fn liveness(v: Value) -> Result<Duration, String> {
    let given = duration(v)?;
    if given < Duration::from_secs(3) || given.subsec_nanos() != 0 {
        return Err(format!("must be whole seconds, 3s at least, found {}", given.as_secs_f64()));
    }
    Ok(given)
}

/// A container image reference, as the distribution reference grammar has it
/// (`[host[:port]/]path[:tag][@algorithm:hex]`, the path lowercase); empty: none.
fn image(v: Value) -> Result<Option<String>, String> {
    let Some(text) = optional(v)? else { return Ok(None) };
    let text = text.trim();
    let bad = |why: &str| Err(format!("{text:?} is not an image reference: {why}"));
    let (name, digest) = match text.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (text, None),
    };
    if let Some(digest) = digest {
        let Some((algorithm, hex)) = digest.split_once(':') else { return bad("a digest is ALGORITHM:HEX") };
        if algorithm.is_empty() || hex.len() < 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return bad("a digest is ALGORITHM:HEX, 32 hex digits at least");
        }
    }
    // A tag follows the last `:` after the last `/` (a `:` before it is the registry's port).
    let last_part = name.rsplit('/').next().unwrap_or(name);
    let (path, tag) = match last_part.split_once(':') {
        Some((_, tag)) => (&name[..name.len() - tag.len() - 1], Some(tag)),
        None => (name, None),
    };
    if let Some(tag) = tag {
        let first_ok = tag.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if !first_ok || tag.len() > 128 || !tag.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
            return bad("a tag is up to 128 letters, digits, `_`, `.` and `-`");
        }
    }
    let mut parts = path.split('/').collect::<Vec<_>>();
    // The first part is a registry when it looks like a host (a dot, a port, or localhost).
    if parts.len() > 1 && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost") {
        let host = parts.remove(0);
        if !host.chars().all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c)) {
            return bad("a registry is HOST[:PORT]");
        }
    }
    let component_ok = |p: &str| {
        !p.is_empty()
            && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            && p.starts_with(|c: char| c.is_ascii_alphanumeric())
            && p.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    if parts.is_empty() || !parts.iter().all(|p| component_ok(p)) {
        return bad("a repository path is lowercase letters, digits and `._-` between `/`");
    }
    Ok(Some(text.to_owned()))
}

fn boolean(v: Value) -> Result<bool, String> {
    match v.text()?.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!("expected true or false, found {other:?}")),
    }
}

fn non_empty(v: Value) -> Result<String, String> {
    let text = v.text()?;
    match text.trim() {
        "" => Err("must not be empty".to_owned()),
        _ => Ok(text),
    }
}

/// Text that may be empty, meaning "not set" (a context, a selector).
fn optional(v: Value) -> Result<Option<String>, String> {
    Ok(Some(v.text()?).filter(|t| !t.trim().is_empty()))
}

/// Every setting a file or the environment may give. Order: as `config/defaults.toml` lists them.
pub const KEYS: &[Key] = &[
    key!(Some("ssh.user"), None, |p, v| p.ssh.user = Some(non_empty(v)?)),
    key!(Some("ssh.port"), None, |p, v| p.ssh.port = Some(parse_port(&v.text()?)?)),
    key!(Some("ssh.identities"), None, |p, v| p.ssh.identities = Some(v.list()?)),
    key!(Some("ssh.known_hosts"), None, |p, v| p.ssh.known_hosts = Some(non_empty(v)?)),
    key!(Some("ssh.host_key_policy"), Some("host-key-policy"), |p, v| p.host_key_policy = Some(v.text()?.parse()?)),
    key!(Some("ssh.connect_timeout"), Some("connect-timeout"), |p, v| p.connect_timeout = Some(duration(v)?)),
    key!(Some("ssh.auth_timeout"), None, |p, v| p.ssh.auth_timeout = Some(duration(v)?)),
    key!(Some("ssh.command_timeout"), None, |p, v| p.ssh.command_timeout = Some(duration(v)?)),
    key!(Some("ssh.connect_attempts"), None, |p, v| p.ssh.connect_attempts = Some(parse_attempts(&v.text()?)?)),
    key!(Some("ssh.keepalive_interval"), None, |p, v| p.ssh.keepalive_interval = Some(duration(v)?)),
    key!(Some("reboot.command"), None, |p, v| p.command = Some(parse_command(&v.text()?)?)),
    key!(Some("reboot.boot_id_command"), None, |p, v| p.boot_id_command = Some(parse_command(&v.text()?)?)),
    key!(Some("reboot.cancel_command"), None, |p, v| p.cancel_command = Some(parse_command(&v.text()?)?)),
    // Empty: no check (the defaults' way of writing "none").
    key!(Some("reboot.check_command"), None, |p, v| p.check_command = Some(optional(v)?)),
    key!(Some("reboot.timeout"), Some("timeout"), |p, v| p.timeout = Some(duration(v)?)),
    key!(Some("reboot.poll_interval"), Some("poll-interval"), |p, v| p.poll_interval = Some(duration(v)?)),
    key!(Some("reboot.concurrency"), Some("concurrency"), |p, v| p.concurrency = Some(parse_limit(&v.text()?)?)),
    key!(None, Some("group-concurrency"), |p, v| p.group_concurrency = Some(parse_limit(&v.text()?)?)),
    key!(Some("reboot.rate"), None, |p, v| p.rate = Some(parse_rate(&v.text()?)?)),
    key!(Some("reboot.parallel"), None, |p, v| p.parallel = Some(parse_limit(&v.text()?)?)),
    key!(Some("reboot.max_failures"), Some("max-failures"), |p, v| p.max_failures = Some(v.text()?.parse()?)),
    key!(Some("reboot.cancel_pending_on_abort"), None, |p, v| p.cancel_pending_on_abort = Some(boolean(v)?)),
    key!(Some("reboot.transport"), Some("transport"), |p, v| p.transport = Some(v.text()?.parse()?)),
    key!(Some("transport.order"), None, |p, v| p.transport_order = Some(super::TransportOrder::parse(&v.list()?)?)),
    key!(Some("transport.debug_image"), Some("debug-image"), |p, v| p.debug_image = image(v)?),
    key!(Some("reboot.scheduled_delay"), None, |p, v| p.scheduled_delay = Some(duration(v)?)),
    key!(Some("output.format"), Some("output"), |p, v| p.output = Some(v.text()?.parse()?)),
    key!(Some("output.state_dir"), None, |p, v| p.state_dir = Some(non_empty(v)?)),
    key!(Some("cluster.kubeconfig"), None, |p, v| p.kubeconfig = optional(v)?),
    key!(Some("cluster.context"), Some("context"), |p, v| p.context = optional(v)?),
    key!(Some("cluster.journal_liveness"), Some("journal-liveness"), |p, v| p.journal_liveness = Some(liveness(v)?)),
    key!(Some("batch.windows"), Some("window"), |p, v| p.batch.windows = Some(windows(v)?)),
    // The zone's name is checked against the time-zone database by the adapters (core has none).
    key!(Some("batch.window_tz"), None, |p, v| p.batch.window_tz = Some(non_empty(v)?.trim().to_owned())),
    key!(Some("batch.window_exit"), Some("window-exit"), |p, v| p.batch.window_exit = Some(boolean(v)?)),
    key!(Some("batch.only_if"), None, |p, v| p.batch.only_if = Some(parse_command(&v.text()?)?)),
    // Checked as a label selector: a typo is refused naming the key, not met on every poll.
    key!(Some("batch.block_on_pods"), Some("block-on-pods"), |p, v| p.batch.block_on_pods = match optional(v)? {
        Some(text) => Some(crate::batch::parse_label_selector(&text)?),
        None => None,
    }),
    key!(Some("batch.block_on_pods_on_node"), None, |p, v| p.batch.block_on_pods_on_node = Some(boolean(v)?)),
    key!(Some("batch.healthy_checks"), Some("healthy-checks"), |p, v| p.batch.healthy_checks = Some(healthy_checks(v)?)),
    key!(Some("batch.healthy_interval"), Some("healthy-interval"), |p, v| p.batch.healthy_interval_ms = Some(millis(v)?)),
    key!(Some("batch.health_command"), None, |p, v| p.batch.health_command = Some(parse_command(&v.text()?)?)),
    key!(Some("batch.soak"), Some("soak"), |p, v| p.batch.soak_ms = Some(millis(v)?)),
    key!(Some("batch.drain_escalation"), Some("drain-escalation"), |p, v| p.batch.drain_escalation =
        Some(parse_drain_escalation(&v.text()?)?)),
    // The URL and the expression are checked by the adapters (an HTTP client, a regex engine).
    key!(Some("batch.block_on_alerts"), None, |p, v| p.batch.block_on_alerts = Some(non_empty(v)?.trim().to_owned())),
    key!(Some("batch.alert_filter_regexp"), None, |p, v| p.batch.alert_filter = Some(v.text()?)),
    key!(Some("batch.drain_pod_selector"), Some("drain-pod-selector"), |p, v| p.batch.drain_pod_selector =
        Some(crate::batch::parse_label_selector(&v.text()?)?)),
];

/// The environment variable of a key: `poll-interval` -> `FLEETBOOT_POLL_INTERVAL`.
pub fn env_var(key: &str) -> String {
    format!("FLEETBOOT_{}", key.to_uppercase().replace('-', "_"))
}

/// The keys the environment may set (`concurrency`, `poll-interval`, ...), in [`KEYS`]' order.
pub fn env_keys() -> impl Iterator<Item = &'static str> {
    KEYS.iter().filter_map(|k| k.env)
}

/// The file sections [`KEYS`] reads (`ssh`, `reboot`, ...).
pub fn file_sections() -> impl Iterator<Item = &'static str> {
    let mut seen: Vec<&'static str> = Vec::new();
    KEYS.iter().filter_map(|k| k.file?.split_once('.').map(|(section, _)| section)).filter(move |s| {
        let new = !seen.contains(s);
        seen.push(s);
        new
    })
}

impl Partial {
    /// The environment's layer: `FLEETBOOT_CONCURRENCY` and so on, from the pairs given (the
    /// caller reads the environment; this stays pure). Other variables are ignored; a bad value
    /// is refused naming its variable.
    pub fn from_env<'a>(vars: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Partial, SettingsError> {
        let mut partial = Partial::default();
        for (name, value) in vars {
            let Some((key, env)) = KEYS.iter().find_map(|k| k.env.filter(|env| env_var(env) == name).map(|env| (k, env))) else {
                continue;
            };
            (key.set)(&mut partial, Value::Text(value.to_owned())).map_err(|reason| SettingsError {
                origin: Origin::Environment,
                key: env.to_owned(),
                reason,
            })?;
        }
        Ok(partial)
    }

    /// A file's layer from its `section.key` entries; an unknown key or a bad value is refused
    /// naming the file and the key.
    pub fn from_file(entries: impl IntoIterator<Item = (String, Value)>, origin: &Origin) -> Result<Partial, SettingsError> {
        let mut partial = Partial::default();
        for (name, value) in entries {
            let refuse = |reason: String| SettingsError { origin: origin.clone(), key: name.clone(), reason };
            let Some(key) = KEYS.iter().find(|k| k.file == Some(name.as_str())) else {
                let section = name.split_once('.').map_or(name.as_str(), |(s, _)| s);
                let known: Vec<&str> = KEYS.iter().filter_map(|k| k.file?.strip_prefix(section)?.strip_prefix('.')).collect();
                return Err(refuse(format!("unknown key; [{section}] has {}", known.join(", "))));
            };
            (key.set)(&mut partial, value).map_err(refuse)?;
        }
        // A health command alone means one healthy check, as `--health-command` alone does.
        if partial.batch.health_command.is_some() && partial.batch.healthy_checks.is_none() {
            partial.batch.healthy_checks = Some(1);
        }
        Ok(partial)
    }
}
