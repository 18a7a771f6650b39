//! What `fleetboot migrate` tells the world while it runs. The orchestrator emits these (never
//! prints); the reporters render them as the text people read or one JSON object per line. The
//! reboot run of step 7 emits its own [`crate::events::Event`]s, rendered by the same reporter;
//! every type name here starts apart from those (`migration_…`, `step_…`), so a JSON reader can
//! tell the two apart by `type` alone.

use std::path::PathBuf;

use serde::Serialize;

use super::model::Check;
use super::record::{Flow, Step};

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MigrationEvent {
    /// A new migration's header.
    MigrationStarted {
        target: String,
        flow: Flow,
        reason: String,
        journal: PathBuf,
    },
    /// An interrupted or failed migration continues.
    MigrationResumed {
        target: String,
        flow: Flow,
        journal: PathBuf,
    },
    /// `--flow` forces the order the release's operators refuse (said loudly, before anything).
    MigrationFlowOverridden {
        forced: Flow,
        required: Flow,
        version: String,
    },
    /// This migration (a rollback) takes over from an unfinished one.
    MigrationRollingBack {
        previous: PathBuf,
    },
    MigrationWarning {
        message: String,
    },
    /// One clean read of the cluster's health before the first change (of `of` in a row).
    MigrationClusterStable {
        pass: u32,
        of: u32,
    },
    /// A step begins (steps done before a resume are [`MigrationEvent::StepSkipped`]).
    StepStarted {
        step: Step,
        number: String,
    },
    /// What a step waits for or sees on its way.
    StepProgress {
        step: Step,
        number: String,
        message: String,
    },
    /// Done by an earlier run of this migration: not run again.
    StepSkipped {
        step: Step,
        number: String,
    },
    StepDone {
        step: Step,
        number: String,
        detail: String,
    },
    StepFailed {
        step: Step,
        number: String,
        error: String,
    },
    /// Steps 9-10's checks (also after the nodes with pods in error were rebooted).
    MigrationVerified {
        passed: bool,
        checks: Vec<Check>,
    },
    /// A step of a flow that pauses the pools (seed, rollback) failed between pausing and
    /// resuming them.
    MigrationPoolsStayPaused,
    /// The migration's lease was lost (taken over, or not renewed for half its duration): no
    /// further step is started.
    MigrationLeaseLost {
        reason: String,
    },
    /// A step failed: fix the cause, resume, or roll back to `rollback_to`.
    MigrationResumeAfterFix {
        rollback_to: String,
    },
    /// Verified: step 11 waits for `--cleanup`.
    MigrationAwaitingCleanup {
        flow: Flow,
        old_namespace: String,
    },
    MigrationReportWritten {
        files: Vec<PathBuf>,
    },
    MigrationReportFailed {
        error: String,
    },
    /// Every step, step 11 included, is done.
    MigrationComplete {
        target: String,
    },
    /// The last event of a run: `complete` when nothing is left to do, and the exit code.
    MigrationFinished {
        complete: bool,
        exit_code: u8,
    },
    /// `--plan`: every step and what it would change; nothing was changed.
    MigrationPlanned {
        plan: MigrationPlan,
    },
}

/// `fleetboot migrate --plan`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MigrationPlan {
    pub source: String,
    pub target: String,
    pub version: String,
    pub flow: Flow,
    pub reason: String,
    pub steps: Vec<PlannedStep>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlannedStep {
    pub step: Step,
    pub number: String,
    pub done: bool,
    pub change: String,
}

/// What a migration hands its reporter: its own events, and those of the reboot runs it starts
/// (step 7, `--reboot-error-nodes`), which render as a `fleetboot reboot` run's would.
#[derive(Clone, Copy, Debug)]
pub enum Progress<'e> {
    Migration(&'e MigrationEvent),
    Reboot(&'e crate::events::Event),
}
