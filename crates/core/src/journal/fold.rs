//! The fold: a run's state rebuilt from its records, and the text a journal file holds parsed
//! into records. Pure and total over well-formed records.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::*;

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
    /// When its reboot was proven (`confirmed`): a resume's `--soak` counts from it.
    pub confirmed_at_ms: Option<u64>,
    /// Its drain's timeouts so far (`drain_timed_out`): the `--drain-escalation` step a resume
    /// goes on from.
    pub drain_timeouts: usize,
    /// How often the re-read after its drain sent it to the end of the queue (`deferred` with
    /// `after_drain`): bounded, see the runner's `MAX_POST_DRAIN_DEFERRALS`.
    pub post_drain_deferrals: usize,
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
            confirmed_at_ms: None,
            drain_timeouts: 0,
            post_drain_deferrals: 0,
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
            // Still cordoned until `uncordoned`: the uncordon is in doubt.
            Entry::Drained { .. }
            | Entry::ForceDeleting { .. }
            | Entry::Uncordoning { .. }
            | Entry::PassReleased { .. }
            | Entry::TransportChosen { .. }
            | Entry::DebugPodCreating { .. }
            | Entry::DebugPodDeleted { .. } => {}
            Entry::Confirmed { .. } => {
                self.phase = Phase::Confirmed;
                self.confirmed_at_ms = Some(at_ms);
            }
            Entry::DrainTimedOut { .. } => self.drain_timeouts += 1,
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
            // The cancel may or may not have gone out: the reboot stays in doubt, so a resume
            // waits for a new boot ID and never sends it again.
            Entry::Cancelling { .. } => self.reboot_pending = true,
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
            // Still to do: the reason shows if the run ends before its turn comes again.
            Entry::Deferred { reason, after_drain, .. } => {
                self.skipped_because = Some(reason.clone());
                self.post_drain_deferrals += usize::from(*after_drain);
            }
            // The cordon is another actor's now: never lifted by fleetboot (nor by a resume, whose
            // drain finds the node cordoned by someone else and leaves that cordon alone).
            Entry::CordonHandedOver { to, reason, .. } => {
                self.cordoned = false;
                self.phase = Phase::Skipped;
                self.failure = None;
                self.skipped_because = Some(format!("cordon handed over to {to}: {reason}"));
            }
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
    /// Debug pods the journal says were created and not deleted (a kill came between).
    pub debug_pods: Vec<DebugPodRef>,
}

/// A debug pod the kube transport created on a node, as journaled.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DebugPodRef {
    pub host: String,
    pub namespace: String,
    pub pod: String,
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
        debug_pods: Vec::new(),
    };
    for (index, record) in iter.enumerate() {
        match &record.entry {
            Entry::DebugPodCreating { host, namespace, pod } => {
                state.debug_pods.push(DebugPodRef { host: host.clone(), namespace: namespace.clone(), pod: pod.clone() })
            }
            Entry::DebugPodDeleted { namespace, pod, .. } => state.debug_pods.retain(|d| !(&d.namespace == namespace && &d.pod == pod)),
            _ => {}
        }
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
