//! What the runner tells the world. Reporters render these; the runner never prints.

use std::path::PathBuf;

use serde::Serialize;

use crate::journal::{HostRecord, Phase, Record, Stage};

// Events go one at a time through a channel to the reporters, and most are transitions: boxing
// the record would add an allocation to every one of them to shrink the rare others.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Started {
        run_id: String,
        journal: PathBuf,
        hosts: usize,
        resumed: bool,
        to_reboot: usize,
        awaiting: usize,
    },
    /// A journaled transition of one host (also written to the journal before this is sent).
    Transition {
        record: Record,
    },
    Retrying {
        host: String,
        stage: Stage,
        attempt: u32,
        of: u32,
        error: String,
        wait_ms: u64,
    },
    Warning {
        host: Option<String>,
        message: String,
    },
    /// The host waits before anything is touched: the cluster's state does not allow it to go
    /// down now (`reason` names the nodes in the way, the first ten of them). Sent when the host
    /// starts waiting and when the rule holding it changes (another limit, its own node taken,
    /// a failed read), not when only the nodes in the way or their count change.
    Waiting {
        host: String,
        reason: String,
    },
    /// No new reboot starts (hosts in flight go on): outside the maintenance windows, or a
    /// blocker. Sent when the hold begins and then as a countdown (`until_ms`: when the next
    /// window opens; `remaining_ms`: how long from now), journaled as `held` when it begins.
    Held {
        reason: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        until_ms: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        remaining_ms: Option<u64>,
    },
    AbortRequested {
        hard: bool,
    },
    Finished {
        summary: Summary,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Rebooted,
    Failed,
    Skipped,
    Cancelled,
    /// Left mid-reboot by an interrupted run; `--resume` finishes it.
    Interrupted,
    /// Its BMC reports it powered off: left off, not rebooted (`fleetboot power on
    /// --yes-power-on` switches it on on purpose).
    PoweredOff,
    /// Came back from a `systemctl soft-reboot` with the same boot ID: userspace restarted,
    /// the kernel did not. Not proven as a reboot; counts as a failure.
    SoftRebooted,
    /// Needed no reboot: `--only-if` said so, or it was rebooted since the plan. Done.
    NotNeeded,
}

#[derive(Clone, Debug, Serialize)]
pub struct HostOutcome {
    pub host: String,
    pub address: String,
    pub outcome: Outcome,
    pub old_boot_id: Option<String>,
    pub new_boot_id: Option<String>,
    pub down_ms: Option<u64>,
    pub error: Option<String>,
}

impl HostOutcome {
    pub fn from_record(host: &str, address: &str, record: &HostRecord) -> HostOutcome {
        let outcome = match record.phase {
            Phase::Confirmed => Outcome::Rebooted,
            Phase::Failed => Outcome::Failed,
            Phase::Skipped | Phase::Pending => Outcome::Skipped,
            Phase::Cancelled => Outcome::Cancelled,
            Phase::PoweredOff => Outcome::PoweredOff,
            Phase::SoftRebooted => Outcome::SoftRebooted,
            Phase::NotNeeded => Outcome::NotNeeded,
            Phase::Dispatching | Phase::Dispatched | Phase::Down | Phase::Back => Outcome::Interrupted,
        };
        let went_down = record.down_at_ms.or(record.dispatched_at_ms);
        HostOutcome {
            host: host.to_owned(),
            address: address.to_owned(),
            outcome,
            old_boot_id: record.old_boot_id.clone(),
            new_boot_id: record.new_boot_id.clone(),
            down_ms: match (went_down, record.back_at_ms) {
                (Some(down), Some(back)) => Some(back.saturating_sub(down)),
                _ => None,
            },
            error: match (&record.failure, outcome) {
                (Some((stage, e)), _) => Some(format!("{}: {e}", stage_name(*stage))),
                (None, Outcome::Skipped | Outcome::PoweredOff | Outcome::NotNeeded) => record.skipped_because.clone(),
                (None, _) => None,
            },
        }
    }
}

pub fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Connect => "connect",
        Stage::Drain => "drain",
        Stage::Dispatch => "reboot command",
        Stage::Confirm => "confirmation",
        Stage::Check => "check command",
        Stage::Limits => "limits (not started, nothing touched)",
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub run_id: String,
    pub journal: PathBuf,
    pub hosts: Vec<HostOutcome>,
    pub aborted: bool,
    pub elapsed_ms: u64,
    /// Nodes fleetboot cordoned and could not uncordon (retried until the run ended).
    #[serde(default)]
    pub still_cordoned: Vec<String>,
    /// `--window-exit`: the run stopped starting reboots because its windows closed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub window_closed: bool,
}

impl Summary {
    pub fn count(&self, outcome: Outcome) -> usize {
        self.hosts.iter().filter(|h| h.outcome == outcome).count()
    }

    pub fn exit_code(&self) -> crate::ExitCode {
        // A host left powered off was not rebooted, a soft reboot is not proven, and a node left
        // cordoned by fleetboot is a failure to put things back: someone must look at them.
        let unproven = self.count(Outcome::Failed) + self.count(Outcome::PoweredOff) + self.count(Outcome::SoftRebooted);
        if unproven > 0 || (!self.aborted && !self.still_cordoned.is_empty()) {
            crate::ExitCode::HostsFailed
        } else if self.window_closed && !self.aborted {
            crate::ExitCode::OutsideWindow
        } else if self.aborted || self.hosts.iter().any(|h| !matches!(h.outcome, Outcome::Rebooted | Outcome::NotNeeded)) {
            crate::ExitCode::Incomplete
        } else {
            crate::ExitCode::Ok
        }
    }
}
