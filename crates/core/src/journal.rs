//! The journal's records (one JSON line per transition, the on-disk format) and the pure fold
//! that rebuilds a run's state from them for `--resume`. Writing and reading the file is the
//! root crate's `journal` module.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::hosts::Host;
use crate::settings::Partial;

/// Bumped on any incompatible change of the record format.
pub const JOURNAL_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub v: u32,
    /// Wall clock, milliseconds since the Unix epoch.
    pub at_ms: u64,
    #[serde(flatten)]
    pub entry: Entry,
}

/// How the reboot command was handed over. Each of these means "the host may now reboot".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// The command exited 0 (systemd scheduled the reboot).
    ExitZero,
    /// The connection or channel closed before an exit status: the reboot may have begun.
    ConnectionDropped,
    /// The command did not finish in time; it may still have taken effect.
    NoAnswer,
    /// The BMC accepted a reset (and its task, if any, completed).
    BmcAccepted,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Entry {
    RunStarted {
        run_id: String,
        command: String,
        hosts: Vec<Host>,
        /// The hosts are cluster nodes: a reboot is proven through the API as well.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        api_proof: bool,
        /// Groups, their limits and order, so a resume keeps them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grouping: Option<crate::policy::Grouping>,
        /// `--drain`: how nodes are drained before their reboot, so a resume does the same.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        drain: Option<crate::policy::DrainPolicy>,
        /// The cluster whose nodes these are: a resume against any other cluster is refused.
        /// (Boxed: it keeps this rare record from sizing every entry.)
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cluster: Option<Box<ClusterIdentity>>,
        /// Transport, command, rate, concurrency and timeouts, so a resume keeps them (absent
        /// in journals written before they were recorded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        settings: Option<RunSettings>,
    },
    /// A later process picked the run up again. `settings`: what it runs with from here on;
    /// `overridden`: the settings the user changed explicitly against the journaled ones.
    RunResumed {
        pid: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        settings: Option<RunSettings>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        overridden: Vec<String>,
    },
    /// This run took the cluster's fleetboot lease from another holder (`--break-lock`, or
    /// a holder that stopped renewing it).
    LeaseTakenOver {
        previous_holder: String,
        holder: String,
    },
    BootIdRead {
        host: String,
        boot_id: String,
    },
    /// systemd's `SoftRebootsCount` read with the boot ID before the reboot: a host that comes
    /// back with the same boot ID and a higher count did a userspace-only soft reboot.
    SoftRebootCount {
        host: String,
        count: u64,
    },
    /// The host came back with its old boot ID and a higher `SoftRebootsCount`: a
    /// `systemctl soft-reboot` (userspace restarted, the kernel did not). Not a proven reboot,
    /// and nothing is pending any more: the host is not watched further or sent another one.
    SoftRebooted {
        host: String,
        boot_id: String,
        count_before: u64,
        count_after: u64,
    },
    /// Written and fsynced *before* the reboot command is sent: from here on a resume must
    /// never send another one, only wait for a new boot ID. `bmc`: sent as a Redfish reset
    /// of this kind instead of over SSH.
    Dispatching {
        host: String,
        old_boot_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bmc: Option<crate::power::RestartKind>,
    },
    /// `reset_type`: the Redfish ResetType the BMC accepted.
    Dispatched {
        host: String,
        delivery: Delivery,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reset_type: Option<String>,
    },
    /// The node's BMC takes over from SSH, and why. `ssh_reached`: SSH answers this node (its
    /// boot ID is read over SSH); otherwise only the cluster API can show the new boot ID.
    FallingBack {
        host: String,
        reason: String,
        ssh_reached: bool,
    },
    /// The host stopped answering after the dispatch.
    Down {
        host: String,
    },
    /// The host answers again with a boot ID different from `old_boot_id`. `api_only`: seen
    /// through the cluster API alone, SSH being unusable for this node.
    Back {
        host: String,
        new_boot_id: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        api_only: bool,
    },
    /// Written before the node is cordoned: a resume must uncordon it if the run ends there.
    /// `already_cordoned`: the node was unschedulable before (an admin's cordon): fleetboot
    /// drains it but never lifts that cordon.
    Cordoning {
        host: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        already_cordoned: bool,
    },
    /// Every pod the drain covers was evicted (or, forced, deleted).
    Drained {
        host: String,
        evicted: usize,
    },
    Uncordoned {
        host: String,
    },
    /// The cluster API shows the node Ready with a boot ID other than the old one.
    ApiConfirmed {
        host: String,
        boot_id: String,
    },
    /// Back and, if configured, the check command passed.
    Confirmed {
        host: String,
    },
    /// `may_reboot`: the reboot command may have been delivered, so the host must not get
    /// another one; a resume only re-checks its boot ID.
    Failed {
        host: String,
        stage: Stage,
        error: String,
        may_reboot: bool,
    },
    /// A dispatched reboot was cancelled (`shutdown -c`) before the host went down.
    Cancelled {
        host: String,
    },
    /// The host's BMC reports its system powered off (PowerState Off): it was switched off on
    /// purpose, so no reset was sent (a restart of an Off system means On). The reset announced
    /// by the last `dispatching` never went out.
    PoweredOff {
        host: String,
        detail: String,
    },
    /// Never started: the run was stopped or the failure budget was spent.
    Skipped {
        host: String,
        reason: String,
    },
    /// The host's boot ID when the run was planned (runs with windows or `--only-if`): a host
    /// that shows another one before its reboot was rebooted since, by anyone, and is done.
    Planned {
        host: String,
        boot_id: String,
    },
    /// Not rebooted, and needs no reboot: `--only-if` said so, or it was rebooted since the
    /// plan. Done: a resume leaves it alone, and it counts as no failure.
    NotNeeded {
        host: String,
        reason: String,
    },
    /// No new reboot starts, for the whole run: outside the maintenance windows (`until_ms`:
    /// when the next one opens), or a blocker. Hosts in flight go on.
    Held {
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until_ms: Option<u64>,
    },
    RunFinished {
        outcome: String,
    },
    /// The host's places in the limits are given up while it may still be down: its reboot
    /// deadline passed without the node seen back Ready. The explicit decision that lets the
    /// next host of its group start (the limits still count the node while it is unavailable).
    PassReleased {
        host: String,
        reason: String,
    },
}

/// Which cluster a run belongs to: its API server, and the ClusterVersion's `spec.clusterID`
/// where the cluster has one (OpenShift). Two kubeconfig contexts may name one cluster by two
/// URLs, and two clusters may sit behind one URL over time: the ID decides when both have one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterIdentity {
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// The kubeconfig context the run was started under, for the people reading the journal;
    /// it identifies nothing (two contexts may name one cluster), so [`Self::same_cluster`]
    /// ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

impl ClusterIdentity {
    pub fn same_cluster(&self, other: &ClusterIdentity) -> bool {
        match (&self.cluster_id, &other.cluster_id) {
            (Some(a), Some(b)) => a == b,
            _ => self.server.trim_end_matches('/') == other.server.trim_end_matches('/'),
        }
    }
}

impl std::fmt::Display for ClusterIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.cluster_id {
            Some(id) => write!(f, "{} (cluster ID {id})", self.server),
            None => f.write_str(&self.server),
        }
    }
}

/// How reboots reach the nodes (`--transport`): the one type of [`crate::settings`].
pub use crate::settings::Transport as TransportMode;

/// `--rate`: `count` reboots per `per_ms`, evenly spaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateSpec {
    pub count: u32,
    pub per_ms: u64,
}

/// The settings of a run that a resume keeps unless the user overrides them explicitly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSettings {
    pub transport: TransportMode,
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
    transport: Option<TransportMode>,
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Connect,
    Drain,
    Dispatch,
    Confirm,
    Check,
    /// Waiting for the limits (unavailable nodes, the control plane, etcd) before anything was
    /// touched: the host was never started.
    Limits,
}

impl Entry {
    pub fn host(&self) -> Option<&str> {
        match self {
            Entry::BootIdRead { host, .. }
            | Entry::SoftRebootCount { host, .. }
            | Entry::SoftRebooted { host, .. }
            | Entry::Dispatching { host, .. }
            | Entry::Dispatched { host, .. }
            | Entry::FallingBack { host, .. }
            | Entry::Down { host }
            | Entry::Back { host, .. }
            | Entry::ApiConfirmed { host, .. }
            | Entry::Cordoning { host, .. }
            | Entry::Drained { host, .. }
            | Entry::Uncordoned { host }
            | Entry::Confirmed { host }
            | Entry::Failed { host, .. }
            | Entry::Cancelled { host }
            | Entry::Skipped { host, .. }
            | Entry::Planned { host, .. }
            | Entry::NotNeeded { host, .. }
            | Entry::PoweredOff { host, .. }
            | Entry::PassReleased { host, .. } => Some(host),
            Entry::RunStarted { .. }
            | Entry::RunResumed { .. }
            | Entry::LeaseTakenOver { .. }
            | Entry::RunFinished { .. }
            | Entry::Held { .. } => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Pending,
    Dispatching,
    Dispatched,
    Down,
    Back,
    Confirmed,
    Failed,
    Cancelled,
    Skipped,
    /// Found powered off through its BMC and left so: not rebooted, not failed.
    PoweredOff,
    /// Came back from a `systemctl soft-reboot`: same kernel, same boot ID.
    SoftRebooted,
    /// Needs no reboot (`--only-if`, or rebooted since the plan): done.
    NotNeeded,
}

/// Everything the journal says about one host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostRecord {
    pub phase: Phase,
    pub old_boot_id: Option<String>,
    pub new_boot_id: Option<String>,
    /// Set once a reboot command may have reached the host; never cleared except by a
    /// confirmed cancel.
    pub reboot_pending: bool,
    pub dispatched_at_ms: Option<u64>,
    pub down_at_ms: Option<u64>,
    pub back_at_ms: Option<u64>,
    pub failure: Option<(Stage, String)>,
    /// The boot ID the cluster API reported with Ready=True after the reboot.
    pub api_boot_id: Option<String>,
    /// fleetboot cordoned the node and has not uncordoned it yet.
    pub cordoned: bool,
    /// Why the host was skipped, when it was.
    pub skipped_because: Option<String>,
    /// The boot ID when the run was planned (`planned`).
    pub planned_boot_id: Option<String>,
    /// Every reboot sent, in order: over SSH (`bmc: None`) or as a BMC reset.
    pub attempts: Vec<Attempt>,
    /// SSH could not reach this node: the API alone can show its new boot ID.
    pub ssh_unusable: bool,
    /// systemd's `SoftRebootsCount` before the reboot, when the host reports one.
    pub soft_reboots_before: Option<u64>,
}

/// One reboot sent to a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Attempt {
    pub bmc: Option<crate::power::RestartKind>,
    pub at_ms: u64,
    /// `dispatched` (or the host going down) followed: the reboot surely reached it. False
    /// when fleetboot died between `dispatching` and the hand-over.
    pub handed_over: bool,
}

/// The kind of restart a Redfish ResetType amounts to.
pub fn restart_kind_of(reset_type: &str) -> crate::power::RestartKind {
    if reset_type.starts_with("Graceful") { crate::power::RestartKind::Graceful } else { crate::power::RestartKind::Force }
}

impl HostRecord {
    pub fn pending() -> HostRecord {
        HostRecord {
            phase: Phase::Pending,
            old_boot_id: None,
            new_boot_id: None,
            reboot_pending: false,
            dispatched_at_ms: None,
            down_at_ms: None,
            back_at_ms: None,
            failure: None,
            api_boot_id: None,
            cordoned: false,
            skipped_because: None,
            planned_boot_id: None,
            attempts: Vec::new(),
            ssh_unusable: false,
            soft_reboots_before: None,
        }
    }

    /// One transition. Pure: the fold and the live runner share it.
    pub fn apply(&mut self, entry: &Entry, at_ms: u64) {
        match entry {
            Entry::BootIdRead { boot_id, .. } => {
                if !self.reboot_pending {
                    self.old_boot_id = Some(boot_id.clone());
                }
            }
            Entry::Dispatching { old_boot_id, bmc, .. } => {
                self.attempts.push(Attempt { bmc: *bmc, at_ms, handed_over: false });
                self.phase = Phase::Dispatching;
                self.old_boot_id = Some(old_boot_id.clone());
                self.reboot_pending = true;
                self.dispatched_at_ms = Some(at_ms);
                self.failure = None;
            }
            Entry::Dispatched { reset_type, .. } => {
                self.phase = Phase::Dispatched;
                if let Some(last) = self.attempts.last_mut() {
                    last.handed_over = true;
                }
                if let (Some(reset_type), Some(last)) = (reset_type, self.attempts.last_mut())
                    && last.bmc.is_some()
                {
                    last.bmc = Some(restart_kind_of(reset_type));
                }
            }
            Entry::FallingBack { ssh_reached, .. } => self.ssh_unusable |= !*ssh_reached,
            Entry::SoftRebootCount { count, .. } => {
                if !self.reboot_pending {
                    self.soft_reboots_before = Some(*count);
                }
            }
            Entry::SoftRebooted { count_before, count_after, boot_id, .. } => {
                self.phase = Phase::SoftRebooted;
                self.reboot_pending = false;
                self.failure = Some((
                    Stage::Confirm,
                    format!(
                        "soft-rebooted, not a kernel reboot: boot ID still {boot_id}, systemd's SoftRebootsCount {count_before} → {count_after} (userspace restarted, the kernel did not)"
                    ),
                ));
            }
            Entry::Down { .. } => {
                self.phase = Phase::Down;
                if let Some(last) = self.attempts.last_mut() {
                    last.handed_over = true;
                }
                self.down_at_ms.get_or_insert(at_ms);
            }
            Entry::Back { new_boot_id, .. } => {
                self.phase = Phase::Back;
                self.new_boot_id = Some(new_boot_id.clone());
                self.back_at_ms = Some(at_ms);
                self.failure = None;
            }
            Entry::ApiConfirmed { boot_id, .. } => self.api_boot_id = Some(boot_id.clone()),
            Entry::Cordoning { already_cordoned, .. } => self.cordoned |= !already_cordoned,
            Entry::Uncordoned { .. } => self.cordoned = false,
            Entry::Drained { .. } | Entry::PassReleased { .. } => {}
            Entry::Confirmed { .. } => self.phase = Phase::Confirmed,
            Entry::Failed { stage, error, may_reboot, .. } => {
                self.phase = Phase::Failed;
                self.failure = Some((*stage, error.clone()));
                if *stage == Stage::Dispatch && !*may_reboot {
                    // The reboot command itself answered with a non-zero exit (sudo refused):
                    // nothing was scheduled, so a later run may send it again.
                    self.reboot_pending = false;
                } else {
                    // Any other failure can only add doubt about a pending reboot.
                    self.reboot_pending |= *may_reboot;
                }
            }
            Entry::Cancelled { .. } => {
                self.phase = Phase::Cancelled;
                self.reboot_pending = false;
            }
            Entry::PoweredOff { detail, .. } => {
                self.phase = Phase::PoweredOff;
                // The announced reset was never sent: only earlier reboots stay in doubt.
                if self.attempts.last().is_some_and(|a| a.bmc.is_some() && !a.handed_over) {
                    self.attempts.pop();
                }
                self.reboot_pending = !self.attempts.is_empty();
                self.failure = None;
                self.skipped_because = Some(detail.clone());
            }
            Entry::Skipped { reason, .. } => {
                self.phase = Phase::Skipped;
                self.failure = None;
                self.skipped_because = Some(reason.clone());
            }
            Entry::Planned { boot_id, .. } => self.planned_boot_id = Some(boot_id.clone()),
            Entry::NotNeeded { reason, .. } => {
                self.phase = Phase::NotNeeded;
                self.failure = None;
                self.skipped_because = Some(reason.clone());
            }
            Entry::RunStarted { .. }
            | Entry::RunResumed { .. }
            | Entry::LeaseTakenOver { .. }
            | Entry::RunFinished { .. }
            | Entry::Held { .. } => {}
        }
    }

    /// What a resumed run does with this host.
    pub fn resume_action(&self) -> ResumeAction {
        match (self.phase, self.reboot_pending) {
            (Phase::Confirmed, _) => ResumeAction::Done,
            // The reboot became a soft reboot: nothing is pending, and the same command would
            // do the same again. Reported, never re-sent by a resume.
            (Phase::SoftRebooted, _) => ResumeAction::Done,
            // Needs no reboot: decided and journaled; a new run asks again.
            (Phase::NotNeeded, _) => ResumeAction::Done,
            // Back with a new boot ID: the reboot happened; only the check is outstanding.
            (Phase::Back, _) => ResumeAction::Check,
            (_, true) => ResumeAction::AwaitNewBootId,
            (_, false) => ResumeAction::Reboot,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResumeAction {
    Reboot,
    AwaitNewBootId,
    Check,
    Done,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RunState {
    pub run_id: String,
    pub command: String,
    /// In the run's own order.
    pub hosts: Vec<Host>,
    pub records: BTreeMap<String, HostRecord>,
    pub finished: bool,
    pub api_proof: bool,
    pub grouping: crate::policy::Grouping,
    pub drain: Option<crate::policy::DrainPolicy>,
    /// The cluster the run belongs to, when it is a cluster run.
    pub cluster: Option<ClusterIdentity>,
    /// The settings the run last ran with (`run_started`, or the latest `run_resumed` that
    /// names them); None for journals written before settings were recorded.
    pub settings: Option<RunSettings>,
}

impl RunState {
    /// How many hosts stand failed: the `--max-failures` budget a resume starts from.
    pub fn failed_hosts(&self) -> usize {
        self.records.values().filter(|r| matches!(r.phase, Phase::Failed | Phase::SoftRebooted)).count()
    }

    /// When the last reboot of the run was sent (the rate's spacing counts from there).
    pub fn last_sent_ms(&self) -> Option<u64> {
        self.records.values().flat_map(|r| r.attempts.iter().map(|a| a.at_ms).chain(r.dispatched_at_ms)).max()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("failed to read journal {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("journal {path}:{line}: {reason}")]
    Corrupt { path: PathBuf, line: usize, reason: String },
    #[error("journal {path} is version {found}; this fleetboot reads version {JOURNAL_VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error("journal {path} does not start with a run_started record")]
    NoStart { path: PathBuf },
    #[error(
        "journal {path}: record {record} starts a second run ({second}) inside run {first}; two journals were joined into one file, resume each from its own"
    )]
    SecondStart { path: PathBuf, record: usize, first: String, second: String },
    #[error("journal {path} names host {host:?}, which is not in its run")]
    UnknownHost { path: PathBuf, host: String },
    #[error("failed to write journal {path}: {reason}")]
    Write { path: PathBuf, reason: String },
}

/// Folds records into the run's state. Pure and total over well-formed records.
pub fn fold(records: &[Record], path: &Path) -> Result<RunState, JournalError> {
    let mut iter = records.iter();
    let Some(Record { entry: Entry::RunStarted { run_id, command, hosts, api_proof, grouping, drain, cluster, settings }, .. }) =
        iter.next()
    else {
        return Err(JournalError::NoStart { path: path.to_owned() });
    };
    let mut state = RunState {
        run_id: run_id.clone(),
        command: command.clone(),
        hosts: hosts.clone(),
        records: hosts.iter().map(|h| (h.name.clone(), HostRecord::pending())).collect(),
        finished: false,
        api_proof: *api_proof,
        grouping: grouping.clone().unwrap_or_default(),
        drain: *drain,
        cluster: cluster.as_deref().cloned(),
        settings: settings.clone(),
    };
    for (index, record) in iter.enumerate() {
        match &record.entry {
            Entry::RunStarted { run_id: second, .. } => {
                return Err(JournalError::SecondStart {
                    path: path.to_owned(),
                    record: index + 2,
                    first: state.run_id.clone(),
                    second: second.clone(),
                });
            }
            Entry::RunFinished { .. } => state.finished = true,
            Entry::RunResumed { settings, .. } => {
                state.finished = false;
                if settings.is_some() {
                    state.settings = settings.clone();
                }
            }
            Entry::LeaseTakenOver { .. } | Entry::Held { .. } => {}
            entry => {
                let host = entry.host().expect("host entries name a host");
                let host_record = state
                    .records
                    .get_mut(host)
                    .ok_or_else(|| JournalError::UnknownHost { path: path.to_owned(), host: host.to_owned() })?;
                host_record.apply(entry, record.at_ms);
            }
        }
    }
    Ok(state)
}

/// Parses journal text. A last line without its newline is a write cut short by a kill and
/// is dropped; a bad line anywhere else is corruption and refused.
pub fn parse(text: &str, path: &Path) -> Result<Vec<Record>, JournalError> {
    let complete = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    let mut records = Vec::new();
    for (index, line) in complete.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let corrupt = |reason: String| JournalError::Corrupt { path: path.to_owned(), line: index + 1, reason };
        let version: serde_json::Value = serde_json::from_str(line).map_err(|e| corrupt(e.to_string()))?;
        let found = version.get("v").and_then(|v| v.as_u64()).unwrap_or(0) as u32;
        if found != JOURNAL_VERSION {
            return Err(JournalError::Version { path: path.to_owned(), found });
        }
        records.push(serde_json::from_value(version).map_err(|e| corrupt(e.to_string()))?);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn host(name: &str) -> Host {
        Host { name: name.into(), address: "127.0.0.1".into(), port: None }
    }

    fn rec(at_ms: u64, entry: Entry) -> Record {
        Record { v: JOURNAL_VERSION, at_ms, entry }
    }

    fn start(names: &[&str]) -> Record {
        rec(
            0,
            Entry::RunStarted {
                run_id: "r".into(),
                command: "sudo shutdown -r -t 3".into(),
                hosts: names.iter().map(|n| host(n)).collect(),
                api_proof: false,
                grouping: None,
                drain: None,
                cluster: None,
                settings: None,
            },
        )
    }

    #[test]
    fn a_full_reboot_folds_to_done_with_times() {
        let h = || "a".to_string();
        let records = vec![
            start(&["a", "b"]),
            rec(1, Entry::BootIdRead { host: h(), boot_id: "old".into() }),
            rec(2, Entry::Dispatching { host: h(), old_boot_id: "old".into(), bmc: None }),
            rec(3, Entry::Dispatched { host: h(), delivery: Delivery::ExitZero, reset_type: None }),
            rec(60_000, Entry::Down { host: h() }),
            rec(61_000, Entry::Down { host: h() }),
            rec(90_000, Entry::Back { host: h(), new_boot_id: "new".into(), api_only: false }),
            rec(90_001, Entry::Confirmed { host: h() }),
        ];
        let state = fold(&records, Path::new("j")).unwrap();
        let a = &state.records["a"];
        assert_eq!(a.phase, Phase::Confirmed);
        assert_eq!((a.old_boot_id.as_deref(), a.new_boot_id.as_deref()), (Some("old"), Some("new")));
        assert_eq!((a.dispatched_at_ms, a.down_at_ms, a.back_at_ms), (Some(2), Some(60_000), Some(90_000)));
        assert_eq!(a.resume_action(), ResumeAction::Done);
        assert_eq!(state.records["b"].resume_action(), ResumeAction::Reboot);
    }

    #[test]
    fn failures_before_dispatch_are_retried_after_it_are_only_watched() {
        let records = vec![
            start(&["a", "b", "c", "d"]),
            rec(1, Entry::Failed { host: "a".into(), stage: Stage::Connect, error: "refused".into(), may_reboot: false }),
            rec(2, Entry::Dispatching { host: "b".into(), old_boot_id: "x".into(), bmc: None }),
            rec(3, Entry::Failed { host: "b".into(), stage: Stage::Dispatch, error: "sudo: no".into(), may_reboot: false }),
            rec(4, Entry::Dispatching { host: "c".into(), old_boot_id: "y".into(), bmc: None }),
            rec(5, Entry::Failed { host: "c".into(), stage: Stage::Confirm, error: "timeout".into(), may_reboot: true }),
            rec(6, Entry::Dispatching { host: "d".into(), old_boot_id: "z".into(), bmc: None }),
        ];
        let state = fold(&records, Path::new("j")).unwrap();
        assert_eq!(state.records["a"].resume_action(), ResumeAction::Reboot);
        // The command answered "no" (non-zero exit): nothing is scheduled, it may be resent.
        assert_eq!(state.records["b"].resume_action(), ResumeAction::Reboot);
        assert_eq!(state.records["c"].resume_action(), ResumeAction::AwaitNewBootId);
        // Killed between the intent and any answer: the command may have gone out.
        assert_eq!(state.records["d"].resume_action(), ResumeAction::AwaitNewBootId);
    }

    #[test]
    fn torn_last_line_is_dropped_and_corruption_elsewhere_refused() {
        let good = serde_json::to_string(&start(&["a"])).unwrap();
        let text = format!("{good}\n{{\"v\":1,\"at_ms\":5,\"event\":\"dow");
        let records = parse(&text, Path::new("j")).unwrap();
        assert_eq!(records.len(), 1);
        let err = parse(&format!("{good}\nnot json\n{good}\n"), Path::new("j.jsonl")).unwrap_err();
        assert!(err.to_string().starts_with("journal j.jsonl:2:"), "{err}");
        let err = parse("{\"v\":9,\"at_ms\":1,\"event\":\"run_finished\",\"outcome\":\"x\"}\n", Path::new("j")).unwrap_err();
        assert!(matches!(err, JournalError::Version { found: 9, .. }));
    }

    #[test]
    fn a_second_run_started_is_refused_naming_both_runs_not_a_panic() {
        let mut second = start(&["b"]);
        if let Entry::RunStarted { run_id, .. } = &mut second.entry {
            *run_id = "other".into();
        }
        let records = vec![start(&["a"]), rec(1, Entry::BootIdRead { host: "a".into(), boot_id: "x".into() }), second];
        let err = fold(&records, Path::new("j.jsonl")).unwrap_err();
        assert!(matches!(&err, JournalError::SecondStart { record: 3, first, second, .. } if first == "r" && second == "other"), "{err}");
        assert!(err.to_string().contains("journal j.jsonl: record 3 starts a second run (other) inside run r"), "{err}");
    }

    fn policy() -> RunPolicy {
        RunPolicy {
            boot_id_command: "cat /proc/sys/kernel/random/boot_id".into(),
            check_command: Some("systemctl is-system-running --wait".into()),
            cancel_pending_on_abort: true,
            max_failures: FailureBudget::Percent(10),
            fallback: FallbackSpec {
                on_unreachable: true,
                on_auth_failure: false,
                on_host_key: false,
                on_hung: true,
                graceful_timeout_ms: 300_000,
            },
        }
    }

    fn settings() -> RunSettings {
        RunSettings {
            transport: TransportMode::Auto,
            command: "sudo shutdown -r -t 3".into(),
            rate: Some(RateSpec { count: 2, per_ms: 60_000 }),
            concurrency: 3,
            timeout_ms: 600_000,
            scheduled_delay_ms: 60_000,
            poll_interval_ms: 2_000,
            policy: Some(policy()),
            batch: None,
        }
    }

    #[test]
    fn a_resume_keeps_the_journaled_settings_unless_overridden_and_names_what_changed() {
        let journaled = settings();
        let today = RunSettings { concurrency: 50, rate: None, transport: TransportMode::Ssh, policy: None, ..settings() };
        // No override: the journal's settings, not today's configuration.
        let resumed = resume_settings(Some(&journaled), &today, &Partial::default(), false).unwrap();
        assert_eq!(resumed.settings, journaled);
        assert!(resumed.overridden.is_empty() && resumed.not_journaled.is_empty());
        // Explicit overrides win, and are named.
        let overrides = Partial { concurrency: Some(1), rate: Some(None), ..Default::default() };
        let resumed = resume_settings(Some(&journaled), &today, &overrides, false).unwrap();
        assert_eq!(resumed.settings, RunSettings { concurrency: 1, rate: None, ..journaled.clone() });
        assert_eq!(resumed.overridden, ["rate", "concurrency"]);
        // An override equal to the journaled value changes nothing.
        let same = Partial { concurrency: Some(3), ..Default::default() };
        assert!(resume_settings(Some(&journaled), &today, &same, true).unwrap().overridden.is_empty());
        // A journal from before settings were recorded: today's configuration, and said so.
        let old = resume_settings(None, &today, &Partial::default(), false).unwrap();
        assert_eq!(old.settings, today);
        assert!(old.not_journaled.contains(&"concurrency"), "{:?}", old.not_journaled);
    }

    #[test]
    fn a_resume_keeps_the_journaled_policy_and_refuses_a_conflicting_flag_naming_both_values() {
        let journaled = settings();
        let today = RunSettings {
            policy: Some(RunPolicy {
                check_command: None,
                max_failures: FailureBudget::Count(0),
                cancel_pending_on_abort: false,
                ..policy()
            }),
            ..settings()
        };
        // Today's configuration (no check command, no failures) does not replace the journal's.
        let resumed = resume_settings(Some(&journaled), &today, &Partial::default(), true).unwrap();
        assert_eq!(resumed.settings.policy, Some(policy()));
        // An explicit, different value is refused, each flag named with both values.
        let given = Partial {
            check_command: Some(Some("true".into())),
            max_failures: Some(FailureBudget::Count(2)),
            boot_id_command: Some("cat /proc/sys/kernel/random/boot_id".into()),
            ..Default::default()
        };
        let conflicts = resume_settings(Some(&journaled), &today, &given, true).unwrap_err();
        let shown: Vec<String> = conflicts.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                r#"--check-command "true" (the journal says "systemctl is-system-running --wait")"#,
                "--max-failures 2 (the journal says 10%)",
            ]
        );
        // With the override allowed, the given values win and are named as overridden.
        let resumed = resume_settings(Some(&journaled), &today, &given, false).unwrap();
        let policy_now = resumed.settings.policy.unwrap();
        assert_eq!((policy_now.check_command.as_deref(), policy_now.max_failures), (Some("true"), FailureBudget::Count(2)));
        assert_eq!(resumed.overridden, ["check_command", "max_failures"]);
    }

    #[test]
    fn a_journal_without_the_policy_resumes_with_todays_and_says_which_were_not_journaled() {
        let journaled = RunSettings { policy: None, ..settings() };
        let today = settings();
        let given = Partial { check_command: Some(None), ..Default::default() };
        let resumed = resume_settings(Some(&journaled), &today, &given, true).unwrap();
        assert_eq!(resumed.settings.policy, Some(RunPolicy { check_command: None, ..policy() }));
        assert!(resumed.not_journaled.contains(&"check command"), "{:?}", resumed.not_journaled);
        assert!(resumed.overridden.is_empty(), "nothing journaled to override: {:?}", resumed.overridden);
        // A run without BMCs journals no graceful wait: a resume that has them overrides nothing.
        let mut no_bmc = settings();
        no_bmc.policy.as_mut().unwrap().fallback.graceful_timeout_ms = 0;
        assert!(no_bmc.differences(&settings()).is_empty());
        let mut other = settings();
        other.policy.as_mut().unwrap().fallback.on_hung = false;
        assert_eq!(settings().differences(&other), ["fallback"]);
        // The old record format still parses: a settings object without a policy.
        let old = r#"{"transport":"auto","command":"c","concurrency":1,"timeout_ms":1,"scheduled_delay_ms":1,"poll_interval_ms":1}"#;
        assert_eq!(serde_json::from_str::<RunSettings>(old).unwrap().policy, None);
        let round: RunSettings = serde_json::from_str(&serde_json::to_string(&settings()).unwrap()).unwrap();
        assert_eq!(round, settings());
    }

    #[test]
    fn settings_fold_from_run_started_and_the_latest_resume_and_old_journals_still_load() {
        let old = r#"{"v":1,"at_ms":0,"event":"run_started","run_id":"r","command":"c","hosts":[{"name":"a","address":"127.0.0.1"}]}"#;
        let records = parse(&format!("{old}\n{{\"v\":1,\"at_ms\":1,\"event\":\"run_resumed\",\"pid\":7}}\n"), Path::new("j")).unwrap();
        assert_eq!(fold(&records, Path::new("j")).unwrap().settings, None);
        let mut start = start(&["a"]);
        if let Entry::RunStarted { settings: s, .. } = &mut start.entry {
            *s = Some(settings());
        }
        let resumed = RunSettings { concurrency: 1, ..settings() };
        let mut records = vec![start, rec(1, Entry::RunResumed { pid: 1, settings: None, overridden: vec![] })];
        assert_eq!(fold(&records, Path::new("j")).unwrap().settings, Some(settings()));
        records.push(rec(2, Entry::RunResumed { pid: 2, settings: Some(resumed.clone()), overridden: vec!["concurrency".into()] }));
        let text: String = records.iter().map(|r| serde_json::to_string(r).unwrap() + "\n").collect();
        assert_eq!(fold(&parse(&text, Path::new("j")).unwrap(), Path::new("j")).unwrap().settings, Some(resumed));
    }

    #[test]
    fn a_soft_reboot_folds_to_its_own_phase_counts_as_a_failure_and_is_never_resent() {
        let h = || "a".to_string();
        let records = vec![
            start(&["a"]),
            rec(1, Entry::BootIdRead { host: h(), boot_id: "old".into() }),
            rec(2, Entry::SoftRebootCount { host: h(), count: 2 }),
            rec(3, Entry::Dispatching { host: h(), old_boot_id: "old".into(), bmc: None }),
            // A count read while the reboot is pending never replaces the one from before it.
            rec(4, Entry::SoftRebootCount { host: h(), count: 3 }),
        ];
        let state = fold(&records, Path::new("j")).unwrap();
        assert_eq!(state.records["a"].soft_reboots_before, Some(2));
        let mut records = records;
        records.push(rec(5, Entry::SoftRebooted { host: h(), boot_id: "old".into(), count_before: 2, count_after: 3 }));
        let text: String = records.iter().map(|r| serde_json::to_string(r).unwrap() + "\n").collect();
        let state = fold(&parse(&text, Path::new("j")).unwrap(), Path::new("j")).unwrap();
        let a = &state.records["a"];
        assert_eq!((a.phase, a.reboot_pending, a.resume_action()), (Phase::SoftRebooted, false, ResumeAction::Done));
        assert!(a.failure.as_ref().unwrap().1.contains("SoftRebootsCount 2 → 3"), "{:?}", a.failure);
        assert_eq!(state.failed_hosts(), 1);
    }

    #[test]
    fn the_failure_count_folds_from_the_journal() {
        let records = vec![
            start(&["a", "b", "c"]),
            rec(1, Entry::Failed { host: "a".into(), stage: Stage::Connect, error: "e".into(), may_reboot: false }),
            rec(2, Entry::Failed { host: "b".into(), stage: Stage::Confirm, error: "e".into(), may_reboot: true }),
            rec(3, Entry::Back { host: "b".into(), new_boot_id: "n".into(), api_only: false }),
            rec(4, Entry::Confirmed { host: "b".into() }),
            rec(5, Entry::Failed { host: "c".into(), stage: Stage::Check, error: "e".into(), may_reboot: false }),
        ];
        assert_eq!(fold(&records, Path::new("j")).unwrap().failed_hosts(), 2);
    }

    /// Per-host event streams a real run can produce, in order.
    fn host_stream() -> impl Strategy<Value = Vec<Entry>> {
        let h = || "h".to_string();
        let full = [
            Entry::BootIdRead { host: h(), boot_id: "old".into() },
            Entry::Dispatching { host: h(), old_boot_id: "old".into(), bmc: None },
            Entry::Dispatched { host: h(), delivery: Delivery::ExitZero, reset_type: None },
            Entry::Down { host: h() },
            Entry::Back { host: h(), new_boot_id: "new".into(), api_only: false },
            Entry::Confirmed { host: h() },
        ];
        let failure_stage = prop_oneof![Just(0usize), Just(1), Just(2), Just(3), Just(4), Just(5), Just(6)];
        (0..=full.len(), failure_stage, any::<bool>()).prop_map(move |(cut, fail_at, cancel)| {
            let mut out: Vec<Entry> = full[..cut].to_vec();
            if fail_at < cut && fail_at < 5 {
                out.truncate(fail_at);
                let (stage, may_reboot) = match fail_at {
                    0 | 1 => (Stage::Connect, false),
                    2 => (Stage::Dispatch, false), // the command exited non-zero
                    _ => (Stage::Confirm, true),
                };
                out.push(Entry::Failed { host: h(), stage, error: "e".into(), may_reboot });
            } else if cancel && cut == 3 {
                out.push(Entry::Cancelled { host: h() });
            }
            out
        })
    }

    proptest! {
        /// Model: a host whose journal holds a Dispatching record (and no later confirmed
        /// cancel) never gets a second reboot command on resume, whatever the interleaving of
        /// other hosts' records and wherever the journal was cut.
        #[test]
        fn resume_never_reboots_twice(streams in proptest::collection::vec(host_stream(), 1..6),
                                      interleave in proptest::collection::vec(any::<u8>(), 0..64)) {
            let names: Vec<String> = (0..streams.len()).map(|i| format!("h{i}")).collect();
            let mut queues: Vec<std::collections::VecDeque<Entry>> = streams
                .iter()
                .enumerate()
                .map(|(i, s)| s.iter().cloned().map(|e| rename(e, &names[i])).collect())
                .collect();
            let mut records = vec![start(&names.iter().map(String::as_str).collect::<Vec<_>>())];
            let mut picks = interleave.into_iter();
            let mut at = 1;
            while queues.iter().any(|q| !q.is_empty()) {
                let live: Vec<usize> = (0..queues.len()).filter(|i| !queues[*i].is_empty()).collect();
                let i = live[picks.next().unwrap_or(0) as usize % live.len()];
                records.push(rec(at, queues[i].pop_front().unwrap()));
                at += 1;
            }
            let state = fold(&records, Path::new("j")).unwrap();
            for (i, stream) in streams.iter().enumerate() {
                let dispatched = stream.iter().any(|e| matches!(e, Entry::Dispatching { .. }));
                let cancelled = stream.iter().any(|e| matches!(e, Entry::Cancelled { .. }
                    | Entry::Failed { stage: Stage::Dispatch, may_reboot: false, .. }));
                let confirmed = stream.iter().any(|e| matches!(e, Entry::Confirmed { .. }));
                let action = state.records[&names[i]].resume_action();
                if confirmed {
                    prop_assert_eq!(action, ResumeAction::Done);
                } else if dispatched && !cancelled {
                    prop_assert_ne!(action, ResumeAction::Reboot);
                } else if !dispatched {
                    prop_assert_eq!(action, ResumeAction::Reboot);
                }
            }
            // Serialization round trip folds to the same state.
            let text: String = records.iter().map(|r| serde_json::to_string(r).unwrap() + "\n").collect();
            let reparsed = parse(&text, Path::new("j")).unwrap();
            prop_assert_eq!(fold(&reparsed, Path::new("j")).unwrap(), state);
        }
    }

    fn rename(entry: Entry, name: &str) -> Entry {
        let mut value = serde_json::to_value(&entry).unwrap();
        value["host"] = serde_json::Value::String(name.to_owned());
        serde_json::from_value(value).unwrap()
    }
}

#[cfg(test)]
mod cluster_identity_tests {
    use super::ClusterIdentity;

    #[test]
    fn the_cluster_id_decides_when_both_have_one_else_the_server() {
        let id = |server: &str, cluster_id: Option<&str>| ClusterIdentity {
            server: server.into(),
            cluster_id: cluster_id.map(Into::into),
            context: Some(server.into()),
        };
        assert!(id("https://a:6443/", Some("x")).same_cluster(&id("https://b:6443", Some("x"))));
        assert!(!id("https://a:6443", Some("x")).same_cluster(&id("https://a:6443", Some("y"))));
        assert!(id("https://a:6443/", None).same_cluster(&id("https://a:6443", Some("y"))));
        assert!(!id("https://a:6443", None).same_cluster(&id("https://b:6443", None)));
    }
}
