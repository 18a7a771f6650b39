//! The migration's own journal: which steps are done, what they found and changed — its records
//! (the on-disk format) and the pure fold `--resume` rebuilds the migration from. The file itself
//! (lock, fsync) is the root crate's `adapters::migration_journal`.
//!
//! One file, past 500 lines: the records and the fold that reads them are the one on-disk format, with its tests.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::model::Check;
use crate::journal::ClusterIdentity;

pub const MIGRATION_JOURNAL_VERSION: u32 = 1;

/// Every step of either flow; [`Flow::steps`] orders the ones a flow runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Preflight,
    Backup,
    /// Two-phase: `spec.migration: null`, applied by the operator.
    ClearMigration,
    EnableMigration,
    PausePools,
    /// Two-phase: the MCO rolls the new `configure-ovs.sh` out onto every pool (phase 1).
    RolloutConfig,
    SetNetworkType,
    MtuAndPort,
    WaitMultus,
    RebootNodes,
    ResumePools,
    WaitRollout,
    Verify,
    Cleanup,
}

impl Step {
    pub const ALL: [Step; 14] = [
        Step::Preflight,
        Step::Backup,
        Step::ClearMigration,
        Step::EnableMigration,
        Step::PausePools,
        Step::RolloutConfig,
        Step::SetNetworkType,
        Step::MtuAndPort,
        Step::WaitMultus,
        Step::RebootNodes,
        Step::ResumePools,
        Step::WaitRollout,
        Step::Verify,
        Step::Cleanup,
    ];

    /// The step's number in the seed document (0-11; 9 and 10 are one verification).
    pub fn number(self) -> &'static str {
        match self {
            Step::Preflight => "0",
            Step::Backup => "1",
            Step::ClearMigration => "1b",
            Step::EnableMigration => "2",
            Step::PausePools => "3",
            Step::RolloutConfig => "3",
            Step::SetNetworkType => "4",
            Step::MtuAndPort => "5",
            Step::WaitMultus => "6",
            Step::RebootNodes => "7",
            Step::ResumePools => "8",
            Step::WaitRollout => "8",
            Step::Verify => "9-10",
            Step::Cleanup => "11",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Step::Preflight => "preflight",
            Step::Backup => "back up network.config/cluster",
            Step::ClearMigration => "clear spec.migration",
            Step::EnableMigration => "enable the migration",
            Step::PausePools => "pause the MachineConfigPools",
            Step::RolloutConfig => "phase 1: the MCO rolls out the new configure-ovs.sh",
            Step::SetNetworkType => "switch spec.networkType",
            Step::MtuAndPort => "network options (MTU, port, internal subnets)",
            Step::WaitMultus => "wait for the multus rollout",
            Step::RebootNodes => "reboot every node",
            Step::ResumePools => "resume the MachineConfigPools",
            Step::WaitRollout => "watch the MCO rollout",
            Step::Verify => "verify",
            Step::Cleanup => "clean up",
        }
    }
}

/// The order of steps an OpenShift release requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flow {
    /// OpenShift 4.5-4.7, the seed document's: the `networkoperator.openshift.io/network-migration`
    /// annotation, pause the pools, switch, multus, reboot all, unpause, MCO rollout.
    Seed,
    /// OpenShift 4.8-4.16, openshift-docs `modules/nw-ovn-kubernetes-migration.adoc`:
    /// `spec.migration: null`, `spec.migration.networkType` with the pools unpaused, the MCO's
    /// rollout of the new `configure-ovs.sh` (phase 1), then the switch, multus, reboot all.
    TwoPhase,
    /// The rollback to OpenShift SDN on 4.8-4.16, openshift-docs
    /// `modules/nw-ovn-kubernetes-rollback.adoc` (the 4.9, 4.15 and 4.16 pages): **not** the
    /// forward shape. Pause the pools first; `spec.migration: null`; `spec.migration.networkType`
    /// and `spec.networkType` back to back (each waited for as applied); the SDN options; reboot
    /// every node; multus; unpause only then; the MCO's rollout of `configure-ovs.sh
    /// OpenShiftSDN` watched to the end; verify; clean up. Unpaused, the MCO would reboot nodes
    /// into `configure-ovs.sh OpenShiftSDN` (no `br-ex`) while OVN-Kubernetes still runs and
    /// needs `br-ex`: they stay NotReady and the pool stalls.
    Rollback,
    /// The limited live migration of 4.15.31+/4.16 (`--mode live`; openshift-docs
    /// `modules/nw-ovn-kubernetes-live-migration.adoc`): one patch of `Network.config` (the
    /// annotation and `spec.networkType`), the network operator and the MCO do the rest (two
    /// rounds of reboots); fleetboot watches the conditions and the pools and proves every
    /// node's reboots by their boot IDs.
    Live,
}

impl Flow {
    pub fn steps(self) -> &'static [Step] {
        match self {
            Flow::Seed => &[
                Step::Preflight,
                Step::Backup,
                Step::EnableMigration,
                Step::PausePools,
                Step::SetNetworkType,
                Step::MtuAndPort,
                Step::WaitMultus,
                Step::RebootNodes,
                Step::ResumePools,
                Step::WaitRollout,
                Step::Verify,
                Step::Cleanup,
            ],
            // The options go in with spec.migration, before phase 1's wait (openshift-docs
            // `modules/nw-ovn-kubernetes-migration.adoc`, 4.8+: MTU, Geneve port and
            // v4InternalSubnet are patched right after `spec.migration`), not after the switch.
            Flow::TwoPhase => &[
                Step::Preflight,
                Step::Backup,
                Step::ClearMigration,
                Step::EnableMigration,
                Step::MtuAndPort,
                Step::RolloutConfig,
                Step::SetNetworkType,
                Step::WaitMultus,
                Step::RebootNodes,
                Step::Verify,
                Step::Cleanup,
            ],
            Flow::Rollback => &[
                Step::Preflight,
                Step::Backup,
                Step::PausePools,
                Step::ClearMigration,
                Step::EnableMigration,
                Step::SetNetworkType,
                Step::MtuAndPort,
                Step::RebootNodes,
                Step::WaitMultus,
                Step::ResumePools,
                Step::WaitRollout,
                Step::Verify,
                Step::Cleanup,
            ],
            Flow::Live => &[Step::Preflight, Step::Backup, Step::SetNetworkType, Step::WaitRollout, Step::Verify, Step::Cleanup],
        }
    }

    /// The step's number in this flow: the seed document's for the seed flow, the position
    /// for the others.
    pub fn number(self, step: Step) -> String {
        match self {
            Flow::Seed => step.number().to_owned(),
            Flow::TwoPhase | Flow::Rollback | Flow::Live => {
                self.steps().iter().position(|s| *s == step).map_or("-".to_owned(), |i| i.to_string())
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Flow::Seed => "seed",
            Flow::TwoPhase => "two-phase",
            Flow::Rollback => "rollback",
            Flow::Live => "live",
        }
    }

    /// Whether the pools are (or may be) paused by this flow while `step` runs: from its pause
    /// step up to, not including, its resume step.
    pub fn pools_paused_during(self, step: Step) -> bool {
        let at = |s: Step| self.steps().iter().position(|x| *x == s);
        match (at(Step::PausePools), at(Step::ResumePools), at(step)) {
            (Some(pause), Some(resume), Some(here)) => pause <= here && here < resume,
            _ => false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MigrationRecord {
    pub v: u32,
    pub at_ms: u64,
    #[serde(flatten)]
    pub entry: MigrationEntry,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum MigrationEntry {
    MigrationStarted {
        run_id: String,
        target: String,
        flow: Flow,
        /// The release ClusterVersion reported.
        #[serde(default)]
        version: String,
        /// Pods already failing at preflight ("namespace/name"): not the migration's doing.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        failing_pods: Vec<String>,
        /// What the options step merges into `Network.operator` `spec.defaultNetwork`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        network_options: Option<serde_json::Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mtu: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        geneve_port: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reboot_concurrency: Option<usize>,
        /// The cluster being migrated: a resume under any other cluster is refused, and a new
        /// migration only ever looks for an unfinished one of its own cluster.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cluster: Option<ClusterIdentity>,
    },
    MigrationResumed {
        pid: u32,
    },
    StepStarted {
        step: Step,
    },
    StepDone {
        step: Step,
        detail: String,
    },
    StepFailed {
        step: Step,
        error: String,
    },
    /// Written before any pool is paused: the ones found paused stay paused at step 8.
    PoolsFound {
        already_paused: Vec<String>,
        to_pause: Vec<String>,
    },
    /// Written before the reboot run starts, so a resume continues that very run.
    RebootJournal {
        path: PathBuf,
    },
    /// Written before `--reboot-error-nodes` reboots the nodes of pods in error, so a resume
    /// continues that very run (a node of it may be mid-boot) instead of planning afresh.
    ErrorNodesRebootJournal {
        path: PathBuf,
        nodes: Vec<String>,
    },
    Verified {
        passed: bool,
        checks: Vec<Check>,
    },
    Warning {
        message: String,
    },
    /// A rollback (or another migration) took over from this unfinished one.
    Superseded {
        by: PathBuf,
    },
    /// Written by a rollback before it pauses anything: the pools the unfinished migration it
    /// takes over from paused and never resumed. They are this rollback's to resume (never
    /// an admin's own pause), so its resume step unpauses them.
    PoolsInherited {
        pools: Vec<String>,
        from: PathBuf,
    },
    /// A node's reboot that fleetboot did not do but saw: a new boot ID between two looks
    /// (`since_ms`, the last look at the old one, and this record's time). `by` says who
    /// rebooted it ("the MCO (live migration)"), for the timeline.
    RebootObserved {
        node: String,
        by: String,
        since_ms: u64,
    },
}

/// A reboot fleetboot saw and did not do ([`MigrationEntry::RebootObserved`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedReboot {
    pub node: String,
    pub by: String,
    /// The last look at the old boot ID.
    pub since_ms: u64,
    /// The first look at the new one.
    pub seen_ms: u64,
}

/// Everything the journal says about a migration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MigrationState {
    /// The cluster being migrated (absent in journals written before it was recorded).
    pub cluster: Option<ClusterIdentity>,
    pub run_id: String,
    pub target: String,
    pub flow: Option<Flow>,
    pub version: String,
    pub failing_pods: Vec<String>,
    pub network_options: Option<serde_json::Value>,
    pub superseded_by: Option<PathBuf>,
    /// Preflight's warnings and what happened along the way, for the report.
    pub warnings: Vec<String>,
    pub mtu: Option<u32>,
    pub geneve_port: Option<u32>,
    pub reboot_concurrency: Option<usize>,
    pub done: Vec<Step>,
    pub already_paused: Option<Vec<String>>,
    pub to_pause: Vec<String>,
    pub reboot_journal: Option<PathBuf>,
    /// The newest `--reboot-error-nodes` run's journal.
    pub error_nodes_journal: Option<PathBuf>,
    pub last_verify: Option<(bool, Vec<Check>)>,
    /// (step, started ms, ended ms) for the report.
    pub timings: Vec<(Step, u64, Option<u64>)>,
    pub failures: Vec<(Step, String)>,
    pub paused_at_ms: Option<u64>,
    /// Pools an unfinished migration paused that this one (its rollback) resumes.
    pub inherited_pools: Vec<String>,
    /// Reboots the migration saw others do (the MCO's), for the timeline.
    pub observed_reboots: Vec<ObservedReboot>,
}

impl MigrationState {
    pub fn is_done(&self, step: Step) -> bool {
        self.done.contains(&step)
    }

    /// The first step not done yet.
    pub fn next_step(&self) -> Option<Step> {
        self.flow.unwrap_or(Flow::Seed).steps().iter().copied().find(|s| !self.is_done(*s))
    }

    /// The pools this migration paused and has not resumed: what a rollback taking over from
    /// it inherits (`MigrationEntry::PoolsInherited`). Empty once its resume step is done.
    pub fn pools_left_paused(&self) -> Vec<String> {
        let pausing_started = self.timings.iter().any(|t| t.0 == Step::PausePools);
        if !pausing_started || self.is_done(Step::ResumePools) { Vec::new() } else { self.to_pause.clone() }
    }

    /// Finished (cleaned up) or taken over by another migration.
    pub fn is_over(&self) -> bool {
        self.is_done(Step::Cleanup) || self.superseded_by.is_some()
    }

    /// One record. Pure: the fold and the live run share it.
    pub fn apply(&mut self, record: &MigrationRecord) {
        match &record.entry {
            MigrationEntry::MigrationStarted {
                run_id,
                target,
                flow,
                version,
                failing_pods,
                network_options,
                mtu,
                geneve_port,
                reboot_concurrency,
                cluster,
            } => {
                self.cluster = cluster.clone();
                self.run_id = run_id.clone();
                self.target = target.clone();
                self.flow = Some(*flow);
                self.version = version.clone();
                self.failing_pods = failing_pods.clone();
                self.network_options = network_options.clone();
                self.mtu = *mtu;
                self.geneve_port = *geneve_port;
                self.reboot_concurrency = *reboot_concurrency;
            }
            MigrationEntry::MigrationResumed { .. } => {}
            MigrationEntry::RebootObserved { node, by, since_ms } => self.observed_reboots.push(ObservedReboot {
                node: node.clone(),
                by: by.clone(),
                since_ms: (*since_ms).min(record.at_ms),
                seen_ms: record.at_ms,
            }),
            MigrationEntry::Warning { message } => self.warnings.push(message.clone()),
            MigrationEntry::StepStarted { step } => self.timings.push((*step, record.at_ms, None)),
            MigrationEntry::StepDone { step, .. } => {
                if !self.done.contains(step) {
                    self.done.push(*step);
                }
                if let Some(t) = self.timings.iter_mut().rev().find(|t| t.0 == *step) {
                    t.2 = Some(record.at_ms);
                }
                if *step == Step::PausePools {
                    self.paused_at_ms = Some(record.at_ms);
                }
                if *step == Step::ResumePools {
                    self.paused_at_ms = None;
                }
            }
            MigrationEntry::StepFailed { step, error } => {
                if let Some(t) = self.timings.iter_mut().rev().find(|t| t.0 == *step) {
                    t.2 = Some(record.at_ms);
                }
                self.failures.push((*step, error.clone()));
            }
            MigrationEntry::PoolsFound { already_paused, to_pause } => {
                // The first finding wins: a resume must not mistake its own pauses for the admin's.
                // Pools inherited from the migration this one rolls back are not the admin's.
                if self.already_paused.is_none() {
                    let inherited = |p: &String| self.inherited_pools.contains(p);
                    self.already_paused = Some(already_paused.iter().filter(|p| !inherited(p)).cloned().collect());
                    let mut pause = to_pause.clone();
                    pause.extend(already_paused.iter().filter(|p| inherited(p)).cloned());
                    self.to_pause = pause;
                }
            }
            MigrationEntry::RebootJournal { path } => self.reboot_journal = Some(path.clone()),
            MigrationEntry::ErrorNodesRebootJournal { path, .. } => self.error_nodes_journal = Some(path.clone()),
            MigrationEntry::Superseded { by } => self.superseded_by = Some(by.clone()),
            MigrationEntry::PoolsInherited { pools, .. } => {
                for pool in pools {
                    if !self.inherited_pools.contains(pool) {
                        self.inherited_pools.push(pool.clone());
                    }
                }
            }
            MigrationEntry::Verified { passed, checks } => self.last_verify = Some((*passed, checks.clone())),
        }
    }
}

/// A line of a migration journal that is not a record (and not a torn last line).
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {source}")]
pub struct CorruptLine {
    pub line: usize,
    #[source]
    pub source: serde_json::Error,
}

/// Folds a migration journal's text. A torn last line (a kill mid-write) is dropped. Pure.
pub fn parse(text: &str) -> Result<(Vec<MigrationRecord>, MigrationState), CorruptLine> {
    let lines: Vec<&str> = text.lines().collect();
    let mut records = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<MigrationRecord>(line) {
            Ok(record) => records.push(record),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => break,
            Err(source) => return Err(CorruptLine { line: i + 1, source }),
        }
    }
    let mut state = MigrationState::default();
    for record in &records {
        state.apply(record);
    }
    Ok((records, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(at_ms: u64, entry: MigrationEntry) -> MigrationRecord {
        MigrationRecord { v: 1, at_ms, entry }
    }

    #[test]
    fn the_fold_knows_what_is_done_and_what_the_admin_had_paused() {
        let mut state = MigrationState::default();
        for r in [
            rec(
                0,
                MigrationEntry::MigrationStarted {
                    run_id: "m1".into(),
                    target: "OVNKubernetes".into(),
                    flow: Flow::Seed,
                    version: "4.7.60".into(),
                    failing_pods: vec![],
                    network_options: None,
                    mtu: None,
                    geneve_port: None,
                    reboot_concurrency: None,
                    cluster: None,
                },
            ),
            rec(1, MigrationEntry::StepStarted { step: Step::Preflight }),
            rec(2, MigrationEntry::StepDone { step: Step::Preflight, detail: String::new() }),
            rec(3, MigrationEntry::PoolsFound { already_paused: vec!["infra".into()], to_pause: vec!["master".into(), "worker".into()] }),
            // A resumed run finds every pool paused: its own doing, not the admin's.
            rec(4, MigrationEntry::PoolsFound { already_paused: vec!["infra".into(), "master".into(), "worker".into()], to_pause: vec![] }),
            rec(5, MigrationEntry::StepStarted { step: Step::PausePools }),
            rec(6, MigrationEntry::StepDone { step: Step::PausePools, detail: String::new() }),
        ] {
            state.apply(&r);
        }
        assert_eq!(state.next_step(), Some(Step::Backup));
        assert!(state.is_done(Step::PausePools));
        assert_eq!(state.already_paused.as_deref(), Some(&["infra".to_owned()][..]));
        assert_eq!(state.to_pause, ["master", "worker"]);
        assert_eq!(state.paused_at_ms, Some(6));
        assert_eq!(state.timings[0], (Step::Preflight, 1, Some(2)));
    }

    #[test]
    fn a_rollback_resumes_the_pools_the_failed_migration_left_paused_never_the_admins() {
        let mut failed = MigrationState::default();
        for r in [
            rec(1, MigrationEntry::PoolsFound { already_paused: vec!["infra".into()], to_pause: vec!["master".into(), "worker".into()] }),
            rec(2, MigrationEntry::StepStarted { step: Step::PausePools }),
            rec(3, MigrationEntry::StepDone { step: Step::PausePools, detail: String::new() }),
            rec(4, MigrationEntry::StepFailed { step: Step::RebootNodes, error: "worker-1".into() }),
        ] {
            failed.apply(&r);
        }
        assert_eq!(failed.pools_left_paused(), ["master", "worker"]);
        let mut rollback = MigrationState::default();
        for r in [
            rec(5, MigrationEntry::PoolsInherited { pools: failed.pools_left_paused(), from: "m1".into() }),
            // The rollback finds all three paused: only infra is the admin's.
            rec(6, MigrationEntry::PoolsFound { already_paused: vec!["infra".into(), "master".into(), "worker".into()], to_pause: vec![] }),
        ] {
            rollback.apply(&r);
        }
        assert_eq!(rollback.already_paused.as_deref(), Some(&["infra".to_owned()][..]));
        assert_eq!(rollback.to_pause, ["master", "worker"]);
        // A migration that resumed its pools leaves none behind.
        failed.apply(&rec(7, MigrationEntry::StepDone { step: Step::ResumePools, detail: String::new() }));
        assert!(failed.pools_left_paused().is_empty());
        // Nor one that never reached its pause step.
        assert!(MigrationState::default().pools_left_paused().is_empty());
    }

    #[test]
    fn the_rollback_flow_pauses_first_and_resumes_only_after_the_reboots_and_multus() {
        let steps = Flow::Rollback.steps();
        let at = |s: Step| steps.iter().position(|x| *x == s).unwrap();
        assert!(at(Step::PausePools) < at(Step::ClearMigration));
        assert!(at(Step::ClearMigration) < at(Step::EnableMigration) && at(Step::EnableMigration) < at(Step::SetNetworkType));
        assert!(at(Step::SetNetworkType) < at(Step::RebootNodes) && at(Step::RebootNodes) < at(Step::WaitMultus));
        assert!(at(Step::WaitMultus) < at(Step::ResumePools) && at(Step::ResumePools) < at(Step::WaitRollout));
        assert!(!steps.contains(&Step::RolloutConfig), "no phase 1 with the pools paused");
        assert!(Flow::Rollback.pools_paused_during(Step::RebootNodes) && !Flow::Rollback.pools_paused_during(Step::WaitRollout));
        assert!(Flow::Seed.pools_paused_during(Step::WaitMultus) && !Flow::TwoPhase.pools_paused_during(Step::RebootNodes));
        assert_eq!(serde_json::to_string(&Flow::Rollback).unwrap(), "\"rollback\"");
        let forward = Flow::TwoPhase.steps();
        let at = |s: Step| forward.iter().position(|x| *x == s).unwrap();
        assert!(
            at(Step::EnableMigration) < at(Step::MtuAndPort) && at(Step::MtuAndPort) < at(Step::RolloutConfig),
            "options before phase 1"
        );
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_corruption_is_refused() {
        let whole = serde_json::to_string(&rec(2, MigrationEntry::StepDone { step: Step::Backup, detail: "x".into() })).unwrap();
        let text = format!("{whole}\n{{\"v\":1,\"at_ms\":3,\"event\":\"step_d");
        let (records, state) = parse(&text).unwrap();
        assert_eq!(records.len(), 1);
        assert!(state.is_done(Step::Backup));
        assert_eq!(parse(&format!("garbage\n{text}\n")).unwrap_err().line, 1);
    }
}
