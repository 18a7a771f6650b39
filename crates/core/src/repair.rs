//! `fleetboot repair`: what a journal says fleetboot changed on a cluster and has not put back.
//! Pure: it folds journals already read; the engine reads the world, acts, and journals.

use serde::Serialize;

use crate::journal::RunState;
use crate::migrate::Step;
use crate::migrate::record::MigrationState;

/// What fleetboot changed and did not put back, by the journals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RepairPlan {
    /// Nodes fleetboot cordoned (never ones it found cordoned) and did not uncordon.
    pub uncordon: Vec<String>,
    /// MachineConfigPools the migration paused (never ones the admin had paused) and did not
    /// unpause.
    pub unpause: Vec<String>,
    /// Leases (name, run ID) a run of these journals may still hold.
    pub leases: Vec<(String, String)>,
    /// Runs that annotated their nodes in flight (`--in-progress-annotation`): a node still
    /// carrying `fleetboot.io/reboot-in-progress` with one of these run IDs was left so by a run
    /// that died. Which nodes do is the cluster's to say.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub in_progress_runs: Vec<String>,
}

impl RepairPlan {
    pub fn is_empty(&self) -> bool {
        self.uncordon.is_empty() && self.unpause.is_empty() && self.leases.is_empty() && self.in_progress_runs.is_empty()
    }
}

/// The repair of reboot runs (a `fleetboot reboot` journal, or a migration's) and of a
/// migration. `reboot_lease`, `migration_lease`: the leases' names.
pub fn plan(reboots: &[&RunState], migration: Option<&MigrationState>, reboot_lease: &str, migration_lease: &str) -> RepairPlan {
    let mut plan = RepairPlan::default();
    for run in reboots {
        plan.uncordon.extend(run.records.iter().filter(|(_, r)| r.cordoned).map(|(name, _)| name.clone()));
        // A host-list run touches no cluster and holds no lease.
        if run.api_proof || run.cluster.is_some() {
            plan.leases.push((reboot_lease.to_owned(), run.run_id.clone()));
            let annotated = run.settings.as_ref().and_then(|s| s.batch.as_ref()).is_some_and(|b| b.in_progress_annotation);
            if annotated {
                plan.in_progress_runs.push(run.run_id.clone());
            }
        }
    }
    if let Some(m) = migration {
        let paused = m.timings.iter().any(|(step, _, _)| *step == Step::PausePools);
        if paused && !m.is_done(Step::ResumePools) {
            let admins = m.already_paused.clone().unwrap_or_default();
            plan.unpause.extend(m.to_pause.iter().filter(|p| !admins.contains(p)).cloned());
        }
        if !m.run_id.is_empty() {
            plan.leases.push((migration_lease.to_owned(), m.run_id.clone()));
        }
    }
    plan.uncordon.sort();
    plan.uncordon.dedup();
    plan
}

/// One thing repair did, or would do (`--dry-run`), and how it went.
#[derive(Clone, Debug, Serialize)]
pub struct RepairAction {
    /// `uncordon`, `release-lease`, `unpause-pool`.
    pub action: &'static str,
    pub target: String,
    /// `done`, `planned` (dry run), `left` (changed meanwhile: left alone), `failed`.
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RepairReport {
    pub journal: std::path::PathBuf,
    pub cluster: String,
    pub dry_run: bool,
    pub plan: RepairPlan,
    pub actions: Vec<RepairAction>,
}

impl RepairReport {
    pub fn exit_code(&self) -> crate::ExitCode {
        if self.actions.iter().any(|a| a.result == "failed") { crate::ExitCode::HostsFailed } else { crate::ExitCode::Ok }
    }
}

/// Whether a lease holder (as fleetboot writes it: `user@host pid N run ID`) is run `run_id`.
pub fn held_by_run(holder: &str, run_id: &str) -> bool {
    holder.rsplit_once(" run ").is_some_and(|(_, run)| run == run_id)
}

/// What to do with a lease a journal's run may hold, from what the cluster shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum LeaseVerdict {
    /// No lease, or another run's: nothing to do.
    NotOurs,
    /// The run's, and the run is gone (its process dead on this machine, or the lease expired):
    /// released, conditionally on the version read.
    Release,
    /// The run's and live: that run may still be running; repair refuses.
    StillLive { holder: String },
}

/// `holder`: the lease's holder, if there is a lease; `expired`: by its holder's clock;
/// `process_gone`: the holder names a process of this machine that no longer exists.
pub fn judge_lease(holder: Option<&str>, run_id: &str, expired: bool, process_gone: bool) -> LeaseVerdict {
    match holder {
        Some(h) if held_by_run(h, run_id) => {
            if expired || process_gone {
                LeaseVerdict::Release
            } else {
                LeaseVerdict::StillLive { holder: h.to_owned() }
            }
        }
        _ => LeaseVerdict::NotOurs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{HostRecord, RunState};

    fn run(cordoned: &[(&str, bool)]) -> RunState {
        let mut state = RunState {
            run_id: "r-1".into(),
            command: String::new(),
            hosts: Vec::new(),
            records: Default::default(),
            finished: false,
            api_proof: true,
            grouping: Default::default(),
            drain: None,
            cluster: None,
            settings: None,
            debug_pods: Vec::new(),
        };
        for (name, c) in cordoned {
            let mut record = HostRecord::pending();
            record.cordoned = *c;
            state.records.insert((*name).to_owned(), record);
        }
        state
    }

    #[test]
    fn only_fleetboots_own_cordons_and_pauses_are_put_back() {
        let reboot = run(&[("a", true), ("b", false)]);
        let mut migration = MigrationState { run_id: "m-1".into(), ..MigrationState::default() };
        migration.already_paused = Some(vec!["infra".into()]);
        migration.to_pause = vec!["master".into(), "worker".into()];
        migration.timings.push((Step::PausePools, 1, Some(2)));
        let plan = plan(&[&reboot], Some(&migration), "fleetboot", "fleetboot-migration");
        assert_eq!(plan.uncordon, ["a"]);
        assert_eq!(plan.unpause, ["master", "worker"]);
        assert_eq!(plan.leases, [("fleetboot".to_owned(), "r-1".to_owned()), ("fleetboot-migration".to_owned(), "m-1".to_owned())]);
        migration.timings.push((Step::ResumePools, 3, Some(4)));
        migration.done.push(Step::ResumePools);
        assert!(super::plan(&[], Some(&migration), "l", "m").unpause.is_empty(), "resumed: nothing to unpause");
    }

    #[test]
    fn a_live_lease_of_the_run_is_refused_an_expired_or_orphaned_one_released() {
        let holder = "ann@bastion pid 7 run r-1";
        assert_eq!(judge_lease(Some(holder), "r-1", false, false), LeaseVerdict::StillLive { holder: holder.into() });
        assert_eq!(judge_lease(Some(holder), "r-1", true, false), LeaseVerdict::Release);
        assert_eq!(judge_lease(Some(holder), "r-1", false, true), LeaseVerdict::Release);
        assert_eq!(judge_lease(Some(holder), "r-2", true, true), LeaseVerdict::NotOurs);
        assert_eq!(judge_lease(None, "r-1", true, true), LeaseVerdict::NotOurs);
    }
}
