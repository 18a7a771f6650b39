//! The settings of a run that a resume keeps, and the rule by which an explicit flag
//! overrides (or is refused against) the journaled value.

use serde::{Deserialize, Serialize};

use crate::settings::Partial;

/// How reboots reach the nodes (`--transport`): the one type of [`crate::settings`].
pub use crate::settings::Transport;
/// The journal records these as the settings model defines them.
pub use crate::settings::{FailureBudget, RateSpec};

/// The settings of a run that a resume keeps unless the user overrides them explicitly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSettings {
    pub transport: Transport,
    /// `[transport] order` under `auto` (absent in journals written before it was recorded, or
    /// for another transport).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport_order: Option<crate::settings::TransportOrder>,
    pub command: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateSpec>,
    pub concurrency: usize,
    pub timeout_ms: u64,
    pub scheduled_delay_ms: u64,
    pub poll_interval_ms: u64,
    /// How a reboot is proven and what a failure or an abort does (absent in journals written
    /// before they were recorded: a resume of such a journal takes today's configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<RunPolicy>,
    /// Windows and `--only-if` ([`crate::batch`]); absent when the run has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<crate::batch::BatchSettings>,
}

/// The proof, abort and failure rules of a run: a resume that dropped any of them would prove
/// reboots differently from the run it continues.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunPolicy {
    /// `--boot-id-command`.
    pub boot_id_command: String,
    /// `--check-command`: must exit 0 once the host is back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_command: Option<String>,
    /// `--cancel-pending-on-abort`.
    pub cancel_pending_on_abort: bool,
    /// `--max-failures`.
    pub max_failures: FailureBudget,
    /// When the BMC takes over from SSH (`[redfish]`; no credentials).
    pub fallback: FallbackSpec,
}

/// The BMC fallback policy as journaled (`[redfish] fallback_on_*`, `graceful_timeout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FallbackSpec {
    pub on_unreachable: bool,
    pub on_auth_failure: bool,
    pub on_host_key: bool,
    pub on_hung: bool,
    /// GracefulRestart → ForceRestart after this long without a new boot ID.
    pub graceful_timeout_ms: u64,
}

impl RunSettings {
    /// The names of the settings that differ between `self` and `other`. The policy's fields
    /// are compared only when both record one.
    pub fn differences(&self, other: &RunSettings) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |name: &str, differs: bool| {
            if differs {
                out.push(name.to_owned());
            }
        };
        check("transport", self.transport != other.transport);
        check("command", self.command != other.command);
        check("rate", self.rate != other.rate);
        check("concurrency", self.concurrency != other.concurrency);
        check("timeout", self.timeout_ms != other.timeout_ms);
        check("scheduled_delay", self.scheduled_delay_ms != other.scheduled_delay_ms);
        check("poll_interval", self.poll_interval_ms != other.poll_interval_ms);
        check("batch", self.batch != other.batch);
        if let (Some(a), Some(b)) = (&self.policy, &other.policy) {
            check("boot_id_command", a.boot_id_command != b.boot_id_command);
            check("check_command", a.check_command != b.check_command);
            check("cancel_pending_on_abort", a.cancel_pending_on_abort != b.cancel_pending_on_abort);
            check("max_failures", a.max_failures != b.max_failures);
            // A graceful wait of 0 means the run had no BMC to wait on: no difference by itself.
            let (fa, fb) = (a.fallback, b.fallback);
            let graceful_differs =
                fa.graceful_timeout_ms != fb.graceful_timeout_ms && fa.graceful_timeout_ms > 0 && fb.graceful_timeout_ms > 0;
            check(
                "fallback",
                FallbackSpec { graceful_timeout_ms: 0, ..fa } != FallbackSpec { graceful_timeout_ms: 0, ..fb } || graceful_differs,
            );
        }
        out
    }
}

/// An explicit flag of a resume that disagrees with the journaled run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingConflict {
    /// The flag, as typed (`--check-command`).
    pub flag: &'static str,
    pub journaled: String,
    pub given: String,
}

impl std::fmt::Display for SettingConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} (the journal says {})", self.flag, self.given, self.journaled)
    }
}

/// What a resume runs with, from [`resume_settings`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumedSettings {
    pub settings: RunSettings,
    /// The settings that now differ from the journaled ones (journaled with `run_resumed`).
    pub overridden: Vec<String>,
    /// What the journal did not record (written by an older fleetboot), taken from today's
    /// configuration instead: to be said to the user.
    pub not_journaled: Vec<&'static str>,
}

/// The explicit values in the journal's units.
struct Given {
    transport: Option<Transport>,
    command: Option<String>,
    rate: Option<Option<RateSpec>>,
    concurrency: Option<usize>,
    timeout_ms: Option<u64>,
    poll_interval_ms: Option<u64>,
    boot_id_command: Option<String>,
    check_command: Option<Option<String>>,
    cancel_pending_on_abort: Option<bool>,
    max_failures: Option<FailureBudget>,
}

fn shown_command(command: &Option<String>) -> String {
    command.as_ref().map_or_else(|| "none".to_owned(), |c| format!("{c:?}"))
}

fn shown_ms(ms: u64) -> String {
    if ms.is_multiple_of(1000) { format!("{}s", ms / 1000) } else { format!("{ms}ms") }
}

fn shown_rate(rate: &Option<RateSpec>) -> String {
    match rate {
        None => "unlimited".to_owned(),
        Some(r) => format!("{}/{}", r.count, shown_ms(r.per_ms)),
    }
}

/// The settings a resumed run uses: the journaled ones (or, for what a journal written before
/// it was recorded lacks, `fallback`, today's configuration), with every setting the command
/// line gave explicitly (`explicit`: the flags' layer, `Some` where a flag was given; never the
/// environment or the file) applied. With `refuse_conflicts`, an explicit value that differs
/// from a journaled one is refused instead, each conflict named. (The migration's own reboot
/// step leaves it off: its `--reboot-concurrency` is the only value it passes, and it overrides
/// as it always did.) Pure.
pub fn resume_settings(
    journaled: Option<&RunSettings>,
    fallback: &RunSettings,
    explicit: &Partial,
    refuse_conflicts: bool,
) -> Result<ResumedSettings, Vec<SettingConflict>> {
    let ms = |d: std::time::Duration| d.as_millis() as u64;
    let overrides = Given {
        transport: explicit.transport,
        command: explicit.command.clone(),
        rate: explicit.rate,
        concurrency: explicit.concurrency,
        timeout_ms: explicit.timeout.map(ms),
        poll_interval_ms: explicit.poll_interval.map(ms),
        boot_id_command: explicit.boot_id_command.clone(),
        check_command: explicit.check_command.clone(),
        cancel_pending_on_abort: explicit.cancel_pending_on_abort,
        max_failures: explicit.max_failures,
    };
    let overrides = &overrides;
    let base = journaled.cloned().unwrap_or_else(|| fallback.clone());
    let mut not_journaled = Vec::new();
    if journaled.is_none() {
        not_journaled.extend(["transport", "command", "rate", "concurrency", "timeouts"]);
    }
    let base_policy = match (&base.policy, &fallback.policy) {
        (Some(policy), _) => Some(policy.clone()),
        (None, today) => {
            not_journaled.extend(["boot-ID command", "check command", "cancel policy", "max failures", "fallback policy"]);
            today.clone()
        }
    };
    let recorded_policy = journaled.and_then(|j| j.policy.as_ref());
    let mut conflicts = Vec::new();
    let mut conflict = |flag: &'static str, journaled: String, given: String| {
        if journaled != given {
            conflicts.push(SettingConflict { flag, journaled, given });
        }
    };
    if let Some(j) = journaled {
        let o = overrides;
        if let Some(t) = o.transport {
            conflict("--transport", format!("{:?}", j.transport).to_lowercase(), format!("{t:?}").to_lowercase());
        }
        if let Some(c) = &o.command {
            conflict("--command", format!("{:?}", j.command), format!("{c:?}"));
        }
        if let Some(r) = &o.rate {
            conflict("--rate", shown_rate(&j.rate), shown_rate(r));
        }
        if let Some(c) = o.concurrency {
            conflict("--concurrency", j.concurrency.to_string(), c.to_string());
        }
        if let Some(t) = o.timeout_ms {
            conflict("--reboot-timeout", shown_ms(j.timeout_ms), shown_ms(t));
        }
        if let Some(p) = o.poll_interval_ms {
            conflict("--poll-interval", shown_ms(j.poll_interval_ms), shown_ms(p));
        }
        let jb = j.batch.clone().unwrap_or_default();
        let b = &explicit.batch;
        let windows = |w: &[crate::batch::Window]| w.iter().map(|w| format!("{:?}", w.to_string())).collect::<Vec<_>>().join(" ");
        if let Some(w) = &b.windows {
            conflict("--window", windows(&jb.windows), windows(w));
        }
        if let Some(tz) = &b.window_tz {
            conflict("--window-tz", jb.zone_name().to_owned(), tz.clone());
        }
        if let Some(e) = b.window_exit {
            conflict("--window-exit", jb.window_exit.to_string(), e.to_string());
        }
        if let Some(c) = &b.only_if {
            conflict("--only-if", shown_command(&jb.only_if), format!("{c:?}"));
        }
        if let Some(c) = &b.block_on_pods {
            conflict("--block-on-pods", shown_command(&jb.block_on_pods), format!("{c:?}"));
        }
        if let Some(c) = &b.drain_pod_selector {
            conflict("--drain-pod-selector", shown_command(&jb.drain_pod_selector), format!("{c:?}"));
        }
        if let Some(on) = b.block_on_pods_on_node {
            conflict("--block-on-pods-on-node", jb.block_on_pods_on_node.to_string(), on.to_string());
        }
        if let Some(n) = b.healthy_checks {
            conflict("--healthy-checks", jb.healthy_checks.to_string(), n.to_string());
        }
        if let Some(ms) = b.healthy_interval_ms {
            conflict("--healthy-interval", shown_ms(jb.healthy_interval_ms()), shown_ms(ms));
        }
        if let Some(c) = &b.health_command {
            conflict("--health-command", shown_command(&jb.health_command), format!("{c:?}"));
        }
        if let Some(ms) = b.soak_ms {
            conflict("--soak", shown_ms(jb.soak_ms), shown_ms(ms));
        }
        if let Some(steps) = &b.drain_escalation {
            let shown = |s: &[crate::batch::DrainStep]| s.iter().map(|s| s.name()).collect::<Vec<_>>().join(",");
            conflict("--drain-escalation", shown(&jb.drain_escalation), shown(steps));
        }
    }
    if let Some(p) = recorded_policy {
        let o = overrides;
        if let Some(c) = &o.boot_id_command {
            conflict("--boot-id-command", format!("{:?}", p.boot_id_command), format!("{c:?}"));
        }
        if let Some(c) = &o.check_command {
            conflict("--check-command", shown_command(&p.check_command), shown_command(c));
        }
        if let Some(c) = o.cancel_pending_on_abort {
            conflict("--cancel-pending-on-abort", p.cancel_pending_on_abort.to_string(), c.to_string());
        }
        if let Some(m) = o.max_failures {
            conflict("--max-failures", p.max_failures.to_string(), m.to_string());
        }
    }
    if refuse_conflicts && !conflicts.is_empty() {
        return Err(conflicts);
    }
    let policy = base_policy.map(|p| RunPolicy {
        boot_id_command: overrides.boot_id_command.clone().unwrap_or(p.boot_id_command),
        check_command: overrides.check_command.clone().unwrap_or(p.check_command),
        cancel_pending_on_abort: overrides.cancel_pending_on_abort.unwrap_or(p.cancel_pending_on_abort),
        max_failures: overrides.max_failures.unwrap_or(p.max_failures),
        fallback: p.fallback,
    });
    let merged = RunSettings {
        transport: overrides.transport.unwrap_or(base.transport),
        transport_order: base.transport_order.clone(),
        command: overrides.command.clone().unwrap_or_else(|| base.command.clone()),
        rate: overrides.rate.unwrap_or(base.rate),
        concurrency: overrides.concurrency.unwrap_or(base.concurrency),
        timeout_ms: overrides.timeout_ms.unwrap_or(base.timeout_ms),
        scheduled_delay_ms: base.scheduled_delay_ms,
        poll_interval_ms: overrides.poll_interval_ms.unwrap_or(base.poll_interval_ms),
        policy,
        batch: {
            let none = crate::batch::BatchPartial::default();
            Some(crate::batch::merge(&explicit.batch, &none, &none, &base.batch.clone().unwrap_or_default())).filter(|b| !b.is_empty())
        },
    };
    let overridden = RunSettings { policy: recorded_policy.cloned(), ..base }.differences(&merged);
    Ok(ResumedSettings { settings: merged, overridden, not_journaled })
}
