//! Batch reboots as kured's users run them: maintenance windows (`--window`, `--window-tz`),
//! `--window-exit`, and `--only-if`. Pure: the time zone is a [`Zone`] passed in (the root
//! crate's `adapters::tz` implements it on an IANA database), `now` is an argument.
//!
//! A window belongs to the day it starts on: `Mon-Fri 22:00-06:00` is open from Friday 22:00 to
//! Saturday 06:00 and closed from Saturday 06:00 to Monday 22:00. Its ends are wall-clock times
//! in the window's zone, turned into instants day by day, so a window on the day clocks change
//! lasts as long as the wall clock says (01:00-04:00 lasts two hours on a spring-forward day in
//! Europe/Berlin, four on the fall-back day). A time that does not exist that day (in the
//! spring-forward gap) means the first instant the wall clock shows a later time (the end of
//! the gap); a time that happens twice (in the fall-back fold) means its first occurrence.
//!
//! One file, past 500 lines: the window arithmetic and its DST tests belong together.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const SECONDS_A_DAY: u32 = 24 * 3600;

/// One `--window`: on these weekdays (in the zone), from `start` to `end` (seconds after
/// midnight; an `end` at or before `start` is the next day's; `24:00` ends at midnight).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    /// Bit `i`: weekday `i` (0 = Monday).
    days: u8,
    start: u32,
    end: u32,
}

impl Window {
    pub fn opens_on(&self, weekday: u8) -> bool {
        self.days & (1 << weekday) != 0
    }

    /// Whether the window ends the day after it starts.
    pub fn crosses_midnight(&self) -> bool {
        self.end <= self.start
    }
}

fn parse_day(text: &str) -> Result<u8, String> {
    const NAMES: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
    let lower = text.to_ascii_lowercase();
    NAMES
        .iter()
        .position(|n| lower.len() >= 3 && n.starts_with(&lower))
        .map(|i| i as u8)
        .ok_or_else(|| format!("unknown day {text:?}: use Mon, Tue, Wed, Thu, Fri, Sat or Sun"))
}

/// `HH:MM` or `HH:MM:SS`, in seconds after midnight.
fn parse_time(text: &str, end: bool) -> Result<u32, String> {
    let bad = || format!("bad time {text:?}: expected HH:MM (00:00 to 23:59{})", if end { ", or 24:00" } else { "" });
    let parts: Vec<&str> = text.split(':').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_digit())) {
        return Err(bad());
    }
    let n = |i: usize| parts.get(i).map_or(Ok(0), |p| p.parse::<u32>()).map_err(|_| bad());
    let (h, m, s) = (n(0)?, n(1)?, n(2)?);
    if m > 59 || s > 59 || h > 24 || (h == 24 && (m != 0 || s != 0 || !end)) {
        return Err(bad());
    }
    Ok(h * 3600 + m * 60 + s)
}

fn format_time(seconds: u32) -> String {
    match seconds % 60 {
        0 => format!("{:02}:{:02}", seconds / 3600, seconds / 60 % 60),
        s => format!("{:02}:{:02}:{s:02}", seconds / 3600, seconds / 60 % 60),
    }
}

impl FromStr for Window {
    type Err = String;

    /// `DAYS HH:MM-HH:MM` or `HH:MM-HH:MM` (every day; `HH:MM:SS` too). DAYS: a day, a range (`Mon-Fri`,
    /// `Fri-Mon` wraps), or a comma list of either (`Mon,Wed,Fri-Sat`).
    fn from_str(text: &str) -> Result<Window, String> {
        let text = text.trim();
        let (days_text, times) = match text.rsplit_once(char::is_whitespace) {
            Some((days, times)) => (Some(days.trim()), times),
            None => (None, text),
        };
        let mut days = 0u8;
        match days_text {
            None => days = 0x7f,
            Some(list) => {
                for part in list.split(',').map(str::trim) {
                    match part.split_once('-') {
                        Some((a, b)) => {
                            let (a, b) = (parse_day(a.trim())?, parse_day(b.trim())?);
                            let mut d = a;
                            loop {
                                days |= 1 << d;
                                if d == b {
                                    break;
                                }
                                d = (d + 1) % 7;
                            }
                        }
                        None => days |= 1 << parse_day(part)?,
                    }
                }
            }
        }
        let (start, end) = times
            .split_once('-')
            .ok_or_else(|| format!("expected a window like \"Mon-Fri 22:00-06:00\" or \"01:00-05:00\", found {text:?}"))?;
        let (start, end) = (parse_time(start.trim(), false)?, parse_time(end.trim(), true)?);
        if start == end {
            return Err(format!("window {text:?} is empty: its start and end are the same time"));
        }
        Ok(Window { days, start, end: end % SECONDS_A_DAY })
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.days != 0x7f {
            let names: Vec<&str> = (0..7).filter(|d| self.opens_on(*d)).map(|d| DAYS[d as usize]).collect();
            write!(f, "{} ", names.join(","))?;
        }
        let end = if self.end == 0 { "24:00".to_owned() } else { format_time(self.end) };
        write!(f, "{}-{end}", format_time(self.start))
    }
}

impl Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Window, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A time zone, as the windows need it: wall-clock days and minutes ↔ instants. Days are
/// counted from 1970-01-01 in the zone's calendar (day 0 was a Thursday).
pub trait Zone {
    /// The wall-clock day (days since 1970-01-01) of an instant (ms since the epoch).
    fn day_of(&self, at_ms: i64) -> i64;
    /// The first instant at or after which the wall clock shows `second` (after midnight) of
    /// `day` (or later): in a gap, the gap's end; in a fold, the first occurrence.
    fn instant(&self, day: i64, second: u32) -> i64;
}

/// UTC: no daylight saving, no offset.
pub struct Utc;

impl Zone for Utc {
    fn day_of(&self, at_ms: i64) -> i64 {
        at_ms.div_euclid(86_400_000)
    }
    fn instant(&self, day: i64, second: u32) -> i64 {
        day * 86_400_000 + i64::from(second) * 1_000
    }
}

/// Monday = 0.
pub fn weekday(day: i64) -> u8 {
    (day + 3).rem_euclid(7) as u8
}

/// Whether new reboots may start now, and until or from when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowState {
    /// No window was given: always open.
    Always,
    Open {
        closes_at_ms: i64,
    },
    Closed {
        opens_at_ms: i64,
    },
}

/// The windows' state at `now_ms` in `zone`. Overlapping or adjoining windows count as one.
pub fn window_state(windows: &[Window], zone: &dyn Zone, now_ms: i64) -> WindowState {
    if windows.is_empty() {
        return WindowState::Always;
    }
    let today = zone.day_of(now_ms);
    // Every occurrence from yesterday (a window crossing midnight) to eight days on.
    let mut spans: Vec<(i64, i64)> = Vec::new();
    for day in today - 1..=today + 8 {
        for w in windows.iter().filter(|w| w.opens_on(weekday(day))) {
            let start = zone.instant(day, w.start);
            let end = zone.instant(day + i64::from(w.crosses_midnight()), w.end);
            if end > start {
                spans.push((start, end));
            }
        }
    }
    spans.sort_unstable();
    let mut open_until: Option<i64> = None;
    for (start, end) in spans {
        match open_until {
            // Open, and this span starts before (or as) the current one ends: one window.
            Some(until) if start <= until => open_until = Some(until.max(end)),
            Some(_) => break,
            None if start <= now_ms && now_ms < end => open_until = Some(end),
            None if start > now_ms => return WindowState::Closed { opens_at_ms: start },
            None => {}
        }
    }
    match open_until {
        Some(closes_at_ms) => WindowState::Open { closes_at_ms },
        // Days with no window at all for more than a week cannot happen with a non-empty day set.
        None => WindowState::Closed { opens_at_ms: i64::MAX },
    }
}

/// The batch settings of a run (`--window`, `--window-tz`, `--window-exit`, `--only-if`):
/// journaled with the run, so a resume keeps them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchSettings {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<Window>,
    /// An IANA zone name; `None`: UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_tz: Option<String>,
    /// Outside a window: stop (exit 5) instead of waiting.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub window_exit: bool,
    /// Run on each host before it starts: exit 0 means it needs the reboot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_if: Option<String>,
    /// `--block-on-pods`: a label selector; no new reboot while a matching pod runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_on_pods: Option<String>,
    /// `--block-on-pods-on-node`: only the matching pods on the node about to go count.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub block_on_pods_on_node: bool,
    /// `--healthy-checks`: the cluster must be seen healthy this many times in a row before
    /// each new reboot (0: no health gate).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub healthy_checks: u32,
    /// `--healthy-interval`, between those checks (`None`: 10 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_interval_ms: Option<u64>,
    /// `--health-command`: run here (not on a node) as part of each check; exit 0 is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_command: Option<String>,
    /// `--soak`: after a node of a group is proven, the group's next reboot waits this long.
    #[serde(default, skip_serializing_if = "is_zero_ms")]
    pub soak_ms: u64,
    /// `--drain-escalation`: what each drain timeout of a node leads to, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drain_escalation: Vec<DrainStep>,
    /// `--block-on-alerts`: an Alertmanager (API v2); no new reboot while an alert fires.
    /// Journaled (and shown in `-o json`) without its credentials, user info and query
    /// ([`without_credentials`]): a resume needs the flag again to use them.
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "serialize_without_credentials")]
    pub block_on_alerts: Option<String>,
    /// `--alert-filter-regexp`: alerts whose name matches are ignored (kured's flag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_filter: Option<String>,
    /// `--pre-reboot-label k=v`: set on a node right before its reboot is sent.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pre_reboot_labels: BTreeMap<String, String>,
    /// `--post-reboot-label k=v`: set on a node once its reboot is proven.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub post_reboot_labels: BTreeMap<String, String>,
    /// `--in-progress-annotation`: `fleetboot.io/reboot-in-progress: RUN` on a node while it
    /// is in flight.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_progress_annotation: bool,
    /// `--drain-pod-selector`: the drain evicts only the pods matching this label selector
    /// (kured's partial drain); DaemonSet and mirror pods stay as ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_pod_selector: Option<String>,
}

/// The drain preflight's warning of a PodDisruptionBudget (`namespace/name`) that allows no
/// disruption now and the nodes whose drain waits on it.
pub fn zero_budget_warning(budget: &str, blocked: &[String]) -> String {
    format!("preflight: PodDisruptionBudget {budget} allows 0 disruptions now: the drain of {} waits on it", blocked.join(", "))
}

/// A label selector as the API takes it (`a=b,c!=d,e in (f,g),!h`), checked before the run
/// so a typo is a usage error naming the flag, not a drain failing on every node. Returns the
/// selector trimmed.
pub fn parse_label_selector(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("an empty selector would match every pod; leave the setting out instead".to_owned());
    }
    let key_ok = |k: &str| {
        let k = k.trim();
        let name = k.rsplit_once('/').map_or(k, |(_, n)| n);
        !name.is_empty() && name.len() <= 63 && k.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
    };
    let value_ok = |v: &str| v.trim().len() <= 63 && v.trim().chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    // Requirements are split at commas outside parentheses.
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    for part in parts {
        let part = part.trim();
        let bad = || format!("{part:?} in selector {text:?} is not KEY, !KEY, KEY=VALUE, KEY!=VALUE, KEY in (V,...) or KEY notin (V,...)");
        let ok = if let Some((k, v)) = part.split_once("!=") {
            key_ok(k) && value_ok(v)
        } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
            key_ok(k) && value_ok(v)
        } else if let Some(k) = part.strip_prefix('!') {
            key_ok(k)
        } else if let Some((k, rest)) = part.split_once(" in ").or_else(|| part.split_once(" notin ")) {
            let rest = rest.trim();
            key_ok(k)
                && rest.starts_with('(')
                && rest.ends_with(')')
                && rest[1..rest.len() - 1].split(',').all(|v| !v.trim().is_empty() && value_ok(v))
        } else {
            key_ok(part)
        };
        if !ok {
            return Err(bad());
        }
    }
    Ok(text.to_owned())
}

impl BatchSettings {
    /// Whether the run reads or marks the cluster for these settings: blocker pods, the health
    /// gate, node labels or the in-progress annotation (their permissions: `fleetboot rbac batch`).
    pub fn reads_cluster(&self) -> bool {
        self.block_on_pods.is_some()
            || self.healthy_checks > 0
            || !self.pre_reboot_labels.is_empty()
            || !self.post_reboot_labels.is_empty()
            || self.in_progress_annotation
    }
}

/// The annotation a node carries while this run has it in flight (`--in-progress-annotation`).
pub const IN_PROGRESS_ANNOTATION: &str = "fleetboot.io/reboot-in-progress";

/// `k=v` as a label: a key of at most 253 + 63 characters (`prefix/name`), a value of at most
/// 63, each of letters, digits, `-`, `_`, `.` (and `/` in the key), as Kubernetes validates them.
pub fn parse_label(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or_else(|| format!("expected KEY=VALUE, found {text:?}"))?;
    let ok = |s: &str, slash: bool| s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c) || (slash && c == '/'));
    let name = key.rsplit('/').next().unwrap_or(key);
    if key.is_empty() || name.is_empty() || name.len() > 63 || key.len() > 317 || !ok(key, true) || key.matches('/').count() > 1 {
        return Err(format!("bad label key {key:?}"));
    }
    if value.len() > 63 || !ok(value, false) {
        return Err(format!("bad label value {value:?}: at most 63 letters, digits, '-', '_' or '.'"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// An alert as Alertmanager's `GET /api/v2/alerts` lists it: its `alertname` label and
/// `status.state` (`active`, `suppressed`, `unprocessed`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertNow {
    pub name: String,
    pub state: String,
}

/// The alerts that block a new reboot: active ones whose name `ignored` does not accept,
/// sorted and without repeats.
pub fn blocking_alerts(alerts: &[AlertNow], ignored: impl Fn(&str) -> bool) -> Vec<String> {
    let mut names: Vec<String> = alerts.iter().filter(|a| a.state == "active" && !ignored(&a.name)).map(|a| a.name.clone()).collect();
    names.sort();
    names.dedup();
    names
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero_ms(n: &u64) -> bool {
    *n == 0
}

/// The default `--healthy-interval`.
pub const DEFAULT_HEALTHY_INTERVAL_MS: u64 = 10_000;

/// One step of `--drain-escalation`, taken when a node's drain times out (`--drain-timeout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrainStep {
    /// Keep the node cordoned and drain for another `--drain-timeout`.
    Wait,
    /// Uncordon the node and move it to the end of the queue; it is drained again then.
    Defer,
    /// Uncordon the node and leave it: not rebooted, reported as skipped.
    Skip,
    /// Delete the pods eviction could not move, and reboot (only when named).
    Force,
}

impl DrainStep {
    pub fn name(self) -> &'static str {
        match self {
            DrainStep::Wait => "wait",
            DrainStep::Defer => "defer",
            DrainStep::Skip => "skip",
            DrainStep::Force => "force",
        }
    }
}

/// `--drain-escalation wait,defer,skip`: the steps in order; `skip` and `force` end it (nothing
/// may follow them). At most 10 steps.
pub fn parse_drain_escalation(text: &str) -> Result<Vec<DrainStep>, String> {
    let mut steps = Vec::new();
    for part in text.split(',').map(str::trim) {
        if let Some(last @ (DrainStep::Skip | DrainStep::Force)) = steps.last() {
            return Err(format!("nothing can follow {:?} in {text:?}: it ends the ladder", last.name()));
        }
        steps.push(match part {
            "wait" => DrainStep::Wait,
            "defer" => DrainStep::Defer,
            "skip" => DrainStep::Skip,
            "force" => DrainStep::Force,
            other => return Err(format!("unknown step {other:?} in {text:?}: use wait, defer, skip or force")),
        });
    }
    if steps.len() > 10 {
        return Err(format!("{text:?} has {} steps; at most 10", steps.len()));
    }
    Ok(steps)
}

/// The step after a node's drain timed out for the `timeouts`-th time (from 1); `None`: the
/// ladder is spent, and `--drain-failure` decides.
pub fn drain_step(ladder: &[DrainStep], timeouts: usize) -> Option<DrainStep> {
    timeouts.checked_sub(1).and_then(|i| ladder.get(i)).copied()
}

/// A pod as the blockers read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodNow {
    pub namespace: String,
    pub name: String,
    pub node: Option<String>,
    pub phase: Option<String>,
}

/// The pods that block a new reboot (`namespace/name`): those not finished (phase other than
/// Succeeded, Failed or Unknown, as kured's `--blocking-pod-selector` counts them), and, with
/// `on_node`, only those on that node.
pub fn blocking_pods(pods: &[PodNow], on_node: Option<&str>) -> Vec<String> {
    pods.iter()
        .filter(|p| !matches!(p.phase.as_deref(), Some("Succeeded" | "Failed" | "Unknown")))
        .filter(|p| on_node.is_none_or(|n| p.node.as_deref() == Some(n)))
        .map(|p| format!("{}/{}", p.namespace, p.name))
        .collect()
}

/// What the health gate reads of the cluster: nodes not Ready (the run's own nodes in flight
/// left out), MachineConfigPools Degraded, ClusterOperators not Available or Degraded (where
/// the cluster has them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthView {
    pub not_ready: Vec<String>,
    pub degraded_pools: Vec<String>,
    /// `name: why` (`dns: Degraded`).
    pub unhealthy_operators: Vec<String>,
}

/// Why the cluster is not healthy, or `None`. `command`: the health command's failure, if it
/// failed.
pub fn unhealthy_because(view: &HealthView, command: Option<&str>) -> Option<String> {
    let mut why = Vec::new();
    let list = |names: &[String]| {
        let shown: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
        let more = names.len().saturating_sub(5);
        if more > 0 { format!("{} and {more} more", shown.join(", ")) } else { shown.join(", ") }
    };
    if !view.not_ready.is_empty() {
        why.push(format!("nodes not Ready: {}", list(&view.not_ready)));
    }
    if !view.degraded_pools.is_empty() {
        why.push(format!("MachineConfigPools Degraded: {}", list(&view.degraded_pools)));
    }
    if !view.unhealthy_operators.is_empty() {
        why.push(format!("ClusterOperators {}", list(&view.unhealthy_operators)));
    }
    if let Some(c) = command {
        why.push(c.to_owned());
    }
    (!why.is_empty()).then(|| why.join("; "))
}

impl BatchSettings {
    /// Whether anything here changes a run (a run without any is the plain reboot run).
    pub fn is_empty(&self) -> bool {
        *self == BatchSettings::default()
    }

    /// Whether the run reads each host's boot ID when it starts, so that a host rebooted since
    /// (by anyone) counts as done: runs that may wait long (windows) or select hosts.
    pub fn reads_plan_boot_ids(&self) -> bool {
        !self.windows.is_empty() || self.only_if.is_some()
    }

    /// Whether a new reboot may have to wait for something besides the windows: blocker pods,
    /// the health gate, a soak.
    pub fn has_gates(&self) -> bool {
        self.block_on_pods.is_some()
            || self.block_on_alerts.is_some()
            || self.healthy_checks > 0
            || self.health_command.is_some()
            || self.soak_ms > 0
    }

    /// The pause between health checks.
    pub fn healthy_interval_ms(&self) -> u64 {
        self.healthy_interval_ms.unwrap_or(DEFAULT_HEALTHY_INTERVAL_MS)
    }

    /// The zone's name as shown.
    pub fn zone_name(&self) -> &str {
        self.window_tz.as_deref().unwrap_or("UTC")
    }
}

/// The batch settings from one source, every one optional (see [`crate::settings::Partial`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchPartial {
    pub windows: Option<Vec<Window>>,
    pub window_tz: Option<String>,
    pub window_exit: Option<bool>,
    pub only_if: Option<String>,
    pub block_on_pods: Option<String>,
    pub block_on_pods_on_node: Option<bool>,
    pub healthy_checks: Option<u32>,
    pub healthy_interval_ms: Option<u64>,
    pub health_command: Option<String>,
    pub soak_ms: Option<u64>,
    pub drain_escalation: Option<Vec<DrainStep>>,
    pub block_on_alerts: Option<String>,
    pub alert_filter: Option<String>,
    pub pre_reboot_labels: Option<BTreeMap<String, String>>,
    pub post_reboot_labels: Option<BTreeMap<String, String>>,
    pub in_progress_annotation: Option<bool>,
    pub drain_pod_selector: Option<String>,
}

/// The one merge for the batch settings: flag > environment > file > default, field by field.
pub fn merge(flags: &BatchPartial, env: &BatchPartial, file: &BatchPartial, defaults: &BatchSettings) -> BatchSettings {
    macro_rules! pick {
        ($field:ident) => {
            flags.$field.clone().or_else(|| env.$field.clone()).or_else(|| file.$field.clone())
        };
    }
    BatchSettings {
        windows: pick!(windows).unwrap_or_else(|| defaults.windows.clone()),
        window_tz: pick!(window_tz).or_else(|| defaults.window_tz.clone()),
        window_exit: pick!(window_exit).unwrap_or(defaults.window_exit),
        only_if: pick!(only_if).or_else(|| defaults.only_if.clone()),
        block_on_pods: pick!(block_on_pods).or_else(|| defaults.block_on_pods.clone()),
        block_on_pods_on_node: pick!(block_on_pods_on_node).unwrap_or(defaults.block_on_pods_on_node),
        healthy_checks: pick!(healthy_checks).unwrap_or(defaults.healthy_checks),
        healthy_interval_ms: pick!(healthy_interval_ms).or(defaults.healthy_interval_ms),
        health_command: pick!(health_command).or_else(|| defaults.health_command.clone()),
        soak_ms: pick!(soak_ms).unwrap_or(defaults.soak_ms),
        drain_escalation: pick!(drain_escalation).unwrap_or_else(|| defaults.drain_escalation.clone()),
        block_on_alerts: pick!(block_on_alerts).or_else(|| defaults.block_on_alerts.clone()),
        alert_filter: pick!(alert_filter).or_else(|| defaults.alert_filter.clone()),
        pre_reboot_labels: pick!(pre_reboot_labels).unwrap_or_else(|| defaults.pre_reboot_labels.clone()),
        post_reboot_labels: pick!(post_reboot_labels).unwrap_or_else(|| defaults.post_reboot_labels.clone()),
        in_progress_annotation: pick!(in_progress_annotation).unwrap_or(defaults.in_progress_annotation),
        drain_pod_selector: pick!(drain_pod_selector).or_else(|| defaults.drain_pod_selector.clone()),
    }
}

/// What the reason of a host skipped as not needed says, for `--only-if`.
pub fn not_needed_reason(command: &str, exit: u32) -> String {
    format!("not needed: `{command}` exited {exit}")
}

/// The reason of a host found rebooted since the plan was made.
pub fn rebooted_since_plan_reason(planned: &str, now: &str) -> String {
    format!("already rebooted since the plan (boot ID {} → {})", crate::table::short_id(planned), crate::table::short_id(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(text: &str) -> Window {
        text.parse().unwrap()
    }

    // 2024-01-01 was a Monday: day 19723.
    const MONDAY: i64 = 19_723;
    fn at(day: i64, h: i64, m: i64) -> i64 {
        Utc.instant(day, (h * 3600 + m * 60) as u32)
    }

    #[test]
    fn the_environment_sets_the_batch_settings_under_the_flags() {
        use crate::settings::Partial;
        let env = Partial::from_env([
            ("FLEETBOOT_WINDOW", "Mon-Fri 22:00-06:00; Sat 08:00-12:00"),
            ("FLEETBOOT_SOAK", "5m"),
            ("FLEETBOOT_HEALTHY_CHECKS", "3"),
            ("FLEETBOOT_DRAIN_ESCALATION", "wait,defer,skip"),
            ("FLEETBOOT_DRAIN_POD_SELECTOR", "tier=batch"),
            ("FLEETBOOT_BLOCK_ON_PODS", "app=backup"),
            ("FLEETBOOT_WINDOW_EXIT", "true"),
        ])
        .unwrap();
        let flags = BatchPartial { soak_ms: Some(60_000), ..BatchPartial::default() };
        let merged = merge(&flags, &env.batch, &BatchPartial::default(), &BatchSettings::default());
        assert_eq!(merged.windows, [w("Mon-Fri 22:00-06:00"), w("Sat 08:00-12:00")]);
        assert_eq!(merged.soak_ms, 60_000, "the flag wins");
        assert_eq!(merged.healthy_checks, 3);
        assert_eq!(merged.drain_escalation, [DrainStep::Wait, DrainStep::Defer, DrainStep::Skip]);
        assert_eq!((merged.drain_pod_selector.as_deref(), merged.block_on_pods.as_deref()), (Some("tier=batch"), Some("app=backup")));
        assert!(merged.window_exit);
        let err = Partial::from_env([("FLEETBOOT_DRAIN_POD_SELECTOR", "tier in batch")]).unwrap_err().to_string();
        assert!(err.starts_with("environment variable FLEETBOOT_DRAIN_POD_SELECTOR: "), "{err}");
    }

    #[test]
    fn label_selectors_are_checked_as_the_api_reads_them() {
        for good in
            ["tier=batch", "tier==batch", "tier!=agent", "app", "!app", "tier in (a,b)", "tier notin (a, b),env=prod", "example.com/x=y"]
        {
            assert!(parse_label_selector(good).is_ok(), "{good}");
        }
        for bad in ["", " ", "tier in batch", "tier=a b", "=x", "tier in ()", "a=b,"] {
            assert!(parse_label_selector(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn windows_read_as_written_and_print_back() {
        assert_eq!(weekday(MONDAY), 0);
        assert_eq!(w("Mon-Fri 22:00-06:00").to_string(), "Mon,Tue,Wed,Thu,Fri 22:00-06:00");
        assert_eq!(w("22:00-06:00").to_string(), "22:00-06:00");
        assert_eq!(w("sat,sunday 00:00-24:00").to_string(), "Sat,Sun 00:00-24:00");
        assert_eq!(w("Fri-Mon 01:00-02:30").to_string(), "Mon,Fri,Sat,Sun 01:00-02:30");
        assert_eq!(w("10:00:20-11:00:20").to_string(), "10:00:20-11:00:20");
        for bad in [
            "",
            "Mon-Fri",
            "Mon-Fri 22:00",
            "Xyz 01:00-02:00",
            "01:00-01:00",
            "25:00-26:00",
            "01:60-02:00",
            "24:00-01:00",
            "1:2:3:4-05:00",
            "01:00:60-02:00",
            "+1:00-02:00",
        ] {
            assert!(bad.parse::<Window>().is_err(), "{bad:?} must be refused");
        }
        let err = "Mon-Fry 22:00-06:00".parse::<Window>().unwrap_err();
        assert!(err.contains("\"Fry\""), "{err}");
        let json = serde_json::to_string(&w("Mon-Fri 22:00-06:00")).unwrap();
        assert_eq!(serde_json::from_str::<Window>(&json).unwrap(), w("Mon-Fri 22:00-06:00"));
    }

    #[test]
    fn a_window_crossing_midnight_belongs_to_the_day_it_starts() {
        let ws = [w("Mon-Fri 22:00-06:00")];
        // Monday 21:00: opens at 22:00.
        assert_eq!(window_state(&ws, &Utc, at(MONDAY, 21, 0)), WindowState::Closed { opens_at_ms: at(MONDAY, 22, 0) });
        // Tuesday 03:00: Monday's window, until 06:00.
        assert_eq!(window_state(&ws, &Utc, at(MONDAY + 1, 3, 0)), WindowState::Open { closes_at_ms: at(MONDAY + 1, 6, 0) });
        // Saturday 05:59: Friday's window is still open; at 06:00 closed until Monday 22:00.
        assert_eq!(window_state(&ws, &Utc, at(MONDAY + 5, 5, 59)), WindowState::Open { closes_at_ms: at(MONDAY + 5, 6, 0) });
        assert_eq!(window_state(&ws, &Utc, at(MONDAY + 5, 6, 0)), WindowState::Closed { opens_at_ms: at(MONDAY + 7, 22, 0) });
        // Monday 03:00: Sunday had no window.
        assert_eq!(window_state(&ws, &Utc, at(MONDAY, 3, 0)), WindowState::Closed { opens_at_ms: at(MONDAY, 22, 0) });
        assert_eq!(window_state(&[], &Utc, 0), WindowState::Always);
    }

    #[test]
    fn adjoining_and_overlapping_windows_are_one() {
        let ws = [w("Sat 00:00-24:00"), w("Sun 00:00-12:00"), w("Sun 11:00-13:00")];
        assert_eq!(window_state(&ws, &Utc, at(MONDAY + 5, 10, 0)), WindowState::Open { closes_at_ms: at(MONDAY + 6, 13, 0) });
        assert_eq!(window_state(&ws, &Utc, at(MONDAY + 6, 13, 0)), WindowState::Closed { opens_at_ms: at(MONDAY + 12, 0, 0) });
    }

    #[test]
    fn the_drain_ladder_ends_with_skip_or_force_and_is_walked_one_step_per_timeout() {
        use DrainStep::*;
        assert_eq!(parse_drain_escalation("wait,defer,skip"), Ok(vec![Wait, Defer, Skip]));
        assert_eq!(parse_drain_escalation("defer, force"), Ok(vec![Defer, Force]));
        assert!(parse_drain_escalation("skip,wait").unwrap_err().contains("nothing can follow \"skip\""));
        assert!(parse_drain_escalation("wait,nuke").unwrap_err().contains("\"nuke\""));
        assert!(parse_drain_escalation("").is_err());
        let ladder = [Wait, Defer, Skip];
        assert_eq!((drain_step(&ladder, 0), drain_step(&ladder, 1), drain_step(&ladder, 3)), (None, Some(Wait), Some(Skip)));
        assert_eq!(drain_step(&ladder, 4), None, "spent: --drain-failure decides");
        assert_eq!(serde_json::to_string(&ladder).unwrap(), r#"["wait","defer","skip"]"#);
    }

    #[test]
    fn blocking_pods_are_the_unfinished_ones_anywhere_or_on_the_node() {
        let pod = |name: &str, node: Option<&str>, phase: Option<&str>| PodNow {
            namespace: "ops".into(),
            name: name.into(),
            node: node.map(str::to_owned),
            phase: phase.map(str::to_owned),
        };
        let pods = [
            pod("backup", Some("worker-1"), Some("Running")),
            pod("queued", None, None),
            pod("done", Some("worker-2"), Some("Succeeded")),
            pod("failed", Some("worker-2"), Some("Failed")),
            pod("pending", Some("worker-2"), Some("Pending")),
        ];
        assert_eq!(blocking_pods(&pods, None), ["ops/backup", "ops/queued", "ops/pending"]);
        assert_eq!(blocking_pods(&pods, Some("worker-2")), ["ops/pending"]);
        assert!(blocking_pods(&pods, Some("worker-3")).is_empty());
    }

    #[test]
    fn active_alerts_block_unless_filtered() {
        let alert = |name: &str, state: &str| AlertNow { name: name.into(), state: state.into() };
        let alerts =
            [alert("Watchdog", "active"), alert("NodeDown", "active"), alert("NodeDown", "active"), alert("DiskFull", "suppressed")];
        assert_eq!(blocking_alerts(&alerts, |n| n == "Watchdog"), ["NodeDown"]);
        assert_eq!(blocking_alerts(&alerts, |_| false), ["NodeDown", "Watchdog"]);
    }

    #[test]
    fn labels_read_as_kubernetes_validates_them() {
        assert_eq!(parse_label("fleetboot.io/rebooted=yes"), Ok(("fleetboot.io/rebooted".into(), "yes".into())));
        assert_eq!(parse_label("maintenance="), Ok(("maintenance".into(), String::new())));
        for bad in ["noequals", "=v", "a/b/c=v", "k=has space", "k=a/b", "bad key=v"] {
            assert!(parse_label(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn health_names_everything_that_is_wrong() {
        assert_eq!(unhealthy_because(&HealthView::default(), None), None);
        let view = HealthView {
            not_ready: vec!["worker-1".into()],
            degraded_pools: vec![],
            unhealthy_operators: vec!["dns: Degraded".into(), "ingress: not Available".into()],
        };
        assert_eq!(
            unhealthy_because(&view, Some("`check-prometheus` exited 2")).unwrap(),
            "nodes not Ready: worker-1; ClusterOperators dns: Degraded, ingress: not Available; `check-prometheus` exited 2"
        );
    }

    #[test]
    fn a_resume_keeps_the_journaled_batch_settings_and_refuses_other_explicit_ones() {
        use crate::journal::{RunSettings, resume_settings};
        use crate::settings::Partial;
        let journaled = BatchSettings {
            windows: vec![w("Mon-Fri 22:00-06:00")],
            window_tz: Some("Europe/Berlin".into()),
            window_exit: true,
            drain_escalation: vec![DrainStep::Defer, DrainStep::Skip],
            ..BatchSettings::default()
        };
        let run: RunSettings = serde_json::from_value(serde_json::json!({
            "transport": "auto", "command": "sudo shutdown -r -t 3", "concurrency": 1, "timeout_ms": 1000,
            "scheduled_delay_ms": 1000, "poll_interval_ms": 1000, "batch": journaled,
        }))
        .unwrap();
        let none = Partial::default();
        let kept = resume_settings(Some(&run), &run, &none, true).unwrap();
        assert_eq!(kept.settings.batch.as_ref(), Some(&journaled));
        let same = Partial { batch: BatchPartial { windows: Some(journaled.windows.clone()), ..Default::default() }, ..none.clone() };
        assert!(resume_settings(Some(&run), &run, &same, true).is_ok());
        let other = Partial {
            batch: BatchPartial {
                windows: Some(vec![w("00:00-24:00")]),
                drain_escalation: Some(vec![DrainStep::Skip]),
                ..Default::default()
            },
            ..none.clone()
        };
        let refused = resume_settings(Some(&run), &run, &other, true).unwrap_err();
        let flags: Vec<&str> = refused.iter().map(|c| c.flag).collect();
        assert_eq!(flags, ["--window", "--drain-escalation"]);
        let overridden = resume_settings(Some(&run), &run, &other, false).unwrap();
        assert_eq!(overridden.overridden, ["batch"]);
        let batch = overridden.settings.batch.unwrap();
        assert_eq!((batch.windows, batch.window_tz.as_deref(), batch.window_exit), (vec![w("00:00-24:00")], Some("Europe/Berlin"), true));
    }

    /// A zone with one clock change: at `switch` (an instant) the offset goes from `before` to
    /// `after` minutes.
    struct OneChange {
        switch: i64,
        before: i64,
        after: i64,
    }

    impl Zone for OneChange {
        fn day_of(&self, at_ms: i64) -> i64 {
            let offset = if at_ms < self.switch { self.before } else { self.after };
            (at_ms + offset * 60_000).div_euclid(86_400_000)
        }
        fn instant(&self, day: i64, second: u32) -> i64 {
            let wall = day * 86_400_000 + i64::from(second) * 1_000;
            let (a, b) = (wall - self.before * 60_000, wall - self.after * 60_000);
            match (a < self.switch, b >= self.switch) {
                (true, true) => a.min(b),      // a fold: the first occurrence
                (true, false) => a,            // before the change
                (false, true) => b,            // after the change
                (false, false) => self.switch, // a gap: its end
            }
        }
    }

    #[test]
    fn a_window_on_a_clock_change_day_is_as_long_as_the_wall_clock_says() {
        // Europe/Berlin-like: 2024-03-31 01:00Z clocks go 02:00 → 03:00 (+60 → +120).
        let spring_day = MONDAY + 90; // 2024-03-31, a Sunday
        assert_eq!(weekday(spring_day), 6);
        let spring = OneChange { switch: at(spring_day, 1, 0), before: 60, after: 120 };
        let ws = [w("Sun 01:00-04:00")];
        let WindowState::Closed { opens_at_ms } = window_state(&ws, &spring, at(spring_day, 0, 0) - 3_600_000) else { panic!() };
        assert_eq!(opens_at_ms, at(spring_day, 0, 0)); // 01:00 CET
        let WindowState::Open { closes_at_ms } = window_state(&ws, &spring, opens_at_ms) else { panic!() };
        assert_eq!(closes_at_ms - opens_at_ms, 2 * 3_600_000, "01:00-04:00 lasts two hours when 02:00-03:00 does not exist");
        // A start in the gap opens at the gap's end.
        let gap = [w("Sun 02:30-05:00")];
        let WindowState::Closed { opens_at_ms } = window_state(&gap, &spring, at(spring_day, 0, 0)) else { panic!() };
        assert_eq!(opens_at_ms, at(spring_day, 1, 0));
    }
}

/// A URL without what may be a secret: the user info (`user:password@`), the query
/// (`?token=...`) and the fragment; scheme, host, port and path stay. Pure.
pub fn without_credentials(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
            let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
            if path.is_empty() && !rest.contains('/') { format!("{scheme}://{host}") } else { format!("{scheme}://{host}/{path}") }
        }
        None => url.to_owned(),
    }
}

fn serialize_without_credentials<S: serde::Serializer>(url: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => s.serialize_some(&without_credentials(url)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod url_tests {
    use super::without_credentials;

    #[test]
    fn credentials_never_reach_the_journal() {
        assert_eq!(
            without_credentials("https://ops:s3cret@am.example:9093/api/v2/alerts?token=abc"),
            "https://am.example:9093/api/v2/alerts"
        );
        assert_eq!(without_credentials("http://127.0.0.1:9093"), "http://127.0.0.1:9093");
        assert_eq!(without_credentials("http://127.0.0.1:9093/"), "http://127.0.0.1:9093/");
        assert_eq!(without_credentials("https://u@h/p#frag"), "https://h/p");
    }
}
