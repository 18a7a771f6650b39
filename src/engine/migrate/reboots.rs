//! Step 7 and step 10's reboots: the reboot engine's own run on this migration's cluster
//! connection, under the migration's lease.

use super::*;
use crate::adapters::kube::journal_store::{self, JournalPlace};

/// Where step 7's reboot run keeps its journal in the cluster: the namespace of the reboot
/// run's lease (`LeasePolicy::default`), which the migration's reboot runs use.
pub(super) const REBOOT_JOURNAL_NAMESPACE: &str = STORE_NAMESPACE;

/// Step 7's reboot journal: a file in the migration's directory, or (`--journal-in-cluster`)
/// the run `<migration-id>-reboot` in the cluster, named so that a migration resumed anywhere
/// (a restarted pod, another machine) finds and continues the same reboot run instead of
/// starting a second one that would reboot every node again.
enum RebootJournal {
    File(PathBuf),
    Cluster(JournalPlace),
}

/// Where a new step 7 journals. Pure.
fn new_reboot_journal(dir: &Path, run_id: &str, in_cluster: bool) -> Result<RebootJournal, fleetboot_core::journal::JournalError> {
    Ok(match in_cluster {
        true => RebootJournal::Cluster(JournalPlace::new(REBOOT_JOURNAL_NAMESPACE, &format!("{run_id}-reboot"))?),
        false => RebootJournal::File(dir.join("reboot.jsonl")),
    })
}

/// Where a new error-node reboot (step 10, `--reboot-error-nodes`) journals: a file of its own
/// in the migration's directory, or (`--journal-in-cluster`) the run
/// `<migration-id>-error-nodes-<n>` in the cluster, `n` one more than the previous error-node
/// run's (`previous`, as the migration journaled it): named from the migration's ID alone, so
/// a resume anywhere finds it from the migration's journal, and each verification's reboot is a
/// run of its own. Pure.
fn new_error_nodes_journal(
    dir: &Path,
    run_id: &str,
    in_cluster: bool,
    previous: Option<&Path>,
    now_ms: u64,
) -> Result<RebootJournal, fleetboot_core::journal::JournalError> {
    if !in_cluster {
        return Ok(RebootJournal::File(dir.join(format!("reboot-error-nodes-{now_ms}.jsonl"))));
    }
    let prefix = format!("{run_id}-error-nodes-");
    let previous = previous
        .and_then(|p| p.to_str())
        .and_then(|p| JournalPlace::parse(p, REBOOT_JOURNAL_NAMESPACE))
        .and_then(Result::ok)
        .and_then(|place| place.run_id.strip_prefix(&prefix).and_then(|n| n.parse::<u64>().ok()))
        .unwrap_or(0);
    Ok(RebootJournal::Cluster(JournalPlace::new(REBOOT_JOURNAL_NAMESPACE, &format!("{prefix}{}", previous + 1))?))
}

/// The journaled place read back: `cluster:NS/RUN-ID` is the cluster's, anything else a file.
/// What the migration journaled decides, never today's flags: a migration that started with its
/// reboot journal in a file resumes it there.
fn journaled_reboot_journal(path: &Path) -> Result<RebootJournal, fleetboot_core::journal::JournalError> {
    match path.to_str().and_then(|p| JournalPlace::parse(p, REBOOT_JOURNAL_NAMESPACE)) {
        Some(place) => Ok(RebootJournal::Cluster(place?)),
        None => Ok(RebootJournal::File(path.to_owned())),
    }
}

impl Target {
    /// Step 7's reboot journal read back, from its file or from the cluster.
    async fn load_reboot_journal(
        &self,
        journal: &RebootJournal,
    ) -> Result<(Vec<fleetboot_core::journal::Record>, fleetboot_core::journal::RunState), MigrateError> {
        match journal {
            RebootJournal::File(path) => crate::adapters::journal::load(path).map_err(MigrateError::RebootJournal),
            RebootJournal::Cluster(place) => {
                let loaded = journal_store::load(&self.connection.client, place).await.map_err(MigrateError::RebootJournal)?;
                Ok((loaded.records, loaded.state))
            }
        }
    }

    /// A reboot run the migration journaled that holds a record and did not finish: a kill
    /// left it, and a node of it may be mid-boot. A journal that was never written (a kill
    /// right after the migration journaled its place) touched no node.
    async fn unfinished(&self, journal: &RebootJournal) -> Result<bool, MigrateError> {
        let started = match journal {
            RebootJournal::File(path) => crate::adapters::journal::is_started(path),
            RebootJournal::Cluster(place) => {
                journal_store::exists(&self.connection.client, place).await.map_err(MigrateError::RebootJournal)?
            }
        };
        Ok(started && !self.load_reboot_journal(journal).await?.1.finished)
    }

    /// The reboot journal the migration journaled (`MigrationEntry::RebootJournal`), read back.
    pub(super) async fn journaled_reboot_run(
        &self,
        path: &Path,
    ) -> Result<(Vec<fleetboot_core::journal::Record>, fleetboot_core::journal::RunState), MigrateError> {
        self.load_reboot_journal(&journaled_reboot_journal(path).map_err(MigrateError::RebootJournal)?).await
    }
}

/// A reboot run's journal as the reboot engine takes it: the selection that resumes it, and
/// its file or its place in the cluster.
fn resumed(journal: &RebootJournal) -> (Selection, Option<PathBuf>, Option<&JournalPlace>) {
    match journal {
        RebootJournal::File(path) => (Selection::Resume(path.clone()), Some(path.clone()), None),
        RebootJournal::Cluster(place) => (Selection::ResumeInCluster(place.clone()), None, Some(place)),
    }
}

fn location(journal: &RebootJournal) -> PathBuf {
    match journal {
        RebootJournal::File(path) => path.clone(),
        RebootJournal::Cluster(place) => place.location(),
    }
}

impl Migration<'_, '_> {
    /// Runs a reboot job on this migration's own cluster connection (never a rebuilt command
    /// line, which once lost `--context` and rebooted another cluster's nodes).
    pub(super) async fn run_reboot(
        &self,
        selection: Selection,
        journal: Option<PathBuf>,
        in_cluster: Option<&JournalPlace>,
        groups: GroupPolicy,
        concurrency: Option<usize>,
    ) -> Result<ExitCode, StepError> {
        let mut settings = self.context.settings.clone();
        if let Some(concurrency) = concurrency {
            settings.run.concurrency = concurrency;
        }
        let job = RebootJob {
            settings,
            selection,
            cluster: Some(self.cluster.connection.clone()),
            journal,
            journal_in_cluster: in_cluster.is_some(),
            run_id: in_cluster.map(|place| place.run_id.clone()),
            // In a pod (`fleetboot job migrate`), its own node goes last, as in `job reboot`.
            own_node: std::env::var("FLEETBOOT_NODE_NAME").ok().filter(|n| !n.is_empty()),
            groups,
            drain: None,
            lease: LeasePolicy { migration_holder: Some(self.lease_holder.clone()), ..LeasePolicy::default() },
            // A resumed reboot run keeps the limits the migration gives it.
            explicit: Partial { concurrency, ..Partial::default() },
            refuse_conflicts: false,
            // The migration's reboot step always runs: its watch starts with its plan.
            watch_from_the_start: true,
        };
        let failed = |e: RunError| MigrateError::Reboot(Box::new(e));
        let prepared = prepare(job).await.map_err(failed)?;
        let (trigger, abort) = tokio::sync::watch::channel(Abort::No);
        (self.context.install_interrupts)(trigger.clone());
        // The migration's lease lost mid-run: no further host starts (hosts in flight finish),
        // as at the first Ctrl-C.
        let (mut lost, soft) = (self.lease_lost.clone(), trigger.clone());
        let lease_watch = tokio::spawn(async move {
            if lost.wait_for(Option::is_some).await.is_ok() {
                soft.send_if_modified(|level| {
                    let raise = *level < Abort::LeaseLost;
                    if raise {
                        *level = Abort::LeaseLost;
                    }
                    raise
                });
            }
        });
        let summary = prepared.execute((trigger, abort), |event| self.events.reboot(event)).await;
        lease_watch.abort();
        let summary = summary.map_err(failed)?;
        if let Some(lost) = self.lease_lost.borrow().clone() {
            return Err(StepError::LeaseLost(lost));
        }
        Ok(summary.exit_code())
    }

    /// The error-node reboot's groups: the migration's concurrency per group, the control plane
    /// one at a time and last, the control-plane rule (the step-7 exception does not apply).
    pub(super) fn error_nodes_groups(concurrency: Option<usize>) -> GroupPolicy {
        GroupPolicy { group_concurrency: concurrency, ..GroupPolicy::default() }
    }

    /// Continues the error-node reboot a killed process left unfinished (from its file, or its
    /// run in the cluster): `None` when there is none to continue.
    pub(super) async fn continue_error_nodes_reboot(&self, state: &MigrationState) -> Result<Option<ExitCode>, StepError> {
        let Some(path) = &state.error_nodes_journal else { return Ok(None) };
        let journal = journaled_reboot_journal(path).map_err(MigrateError::RebootJournal)?;
        if !self.cluster.unfinished(&journal).await? {
            return Ok(None);
        }
        self.line(Step::Verify, &format!("continuing the reboot of the nodes that hold pods in error: {}", location(&journal).display()));
        let (selection, file, place) = resumed(&journal);
        let groups = Self::error_nodes_groups(state.reboot_concurrency);
        Ok(Some(self.run_reboot(selection, file, place, groups, state.reboot_concurrency).await?))
    }

    /// Reboots `nodes` (those holding pods in error after the migration), at the migration's
    /// concurrency under the full control-plane rule (no step-7 exception here). Its journal's
    /// place is journaled before the run starts: a resume, wherever it runs, continues this
    /// very run instead of planning the reboot afresh.
    pub(super) async fn reboot_error_nodes(
        &self,
        state: &mut MigrationState,
        log: &mut Log<'_>,
        nodes: &[String],
    ) -> Result<ExitCode, StepError> {
        let journal = new_error_nodes_journal(
            &self.dir,
            &state.run_id,
            self.options.journal_in_cluster,
            state.error_nodes_journal.as_deref(),
            crate::adapters::system::now_ms(),
        )
        .map_err(MigrateError::RebootJournal)?;
        log(state, MigrationEntry::ErrorNodesRebootJournal { path: location(&journal), nodes: nodes.to_vec() })?;
        let selection =
            Selection::Nodes(NodeSelection { names: nodes.to_vec(), address_type: "InternalIP".into(), ..NodeSelection::default() });
        let (file, place) = match &journal {
            RebootJournal::File(path) => (Some(path.clone()), None),
            RebootJournal::Cluster(place) => (None, Some(place)),
        };
        let concurrency = state.reboot_concurrency.or(Some(nodes.len()));
        self.run_reboot(selection, file, place, Self::error_nodes_groups(state.reboot_concurrency), concurrency).await
    }

    pub(super) async fn reboot_nodes(&self, state: &mut MigrationState, log: &mut Log<'_>) -> Result<String, StepError> {
        let journal = match &state.reboot_journal {
            Some(path) => journaled_reboot_journal(path).map_err(MigrateError::RebootJournal)?,
            None => {
                let journal =
                    new_reboot_journal(&self.dir, &state.run_id, self.options.journal_in_cluster).map_err(MigrateError::RebootJournal)?;
                // Journaled before the run starts: a resume finds the same run wherever it runs.
                log(state, MigrationEntry::RebootJournal { path: location(&journal) })?;
                journal
            }
        };
        // A resumed reboot run keeps the limits the migration started it with.
        let groups = match state.reboot_concurrency {
            Some(n) => GroupPolicy { group_concurrency: Some(n), migration_reboot: true, ..GroupPolicy::default() },
            None => GroupPolicy { all_at_once: true, migration_reboot: true, ..GroupPolicy::default() },
        };
        let nodes = || Selection::Nodes(NodeSelection { address_type: "InternalIP".into(), ..NodeSelection::default() });
        // A reboot journal with no complete record (a kill right after its creation) means no
        // host was touched: the run starts afresh in it (the writer takes such a file over).
        let (selection, file, place) = match &journal {
            RebootJournal::File(path) if crate::adapters::journal::is_started(path) => {
                self.line(Step::RebootNodes, &format!("continuing the reboot run {}", path.display()));
                (Selection::Resume(path.clone()), Some(path.clone()), None)
            }
            RebootJournal::File(path) => (nodes(), Some(path.clone()), None),
            RebootJournal::Cluster(place) => {
                let started = journal_store::exists(&self.cluster.connection.client, place).await.map_err(MigrateError::RebootJournal)?;
                if started {
                    self.line(Step::RebootNodes, &format!("continuing the reboot run {}", place.location().display()));
                    (Selection::ResumeInCluster(place.clone()), None, Some(place))
                } else {
                    (nodes(), None, Some(place))
                }
            }
        };
        let mut warned = false;
        self.warn_if_paused_long(state, log, &mut warned)?;
        let code = self.run_reboot(selection, file, place, groups, state.reboot_concurrency).await?;
        let (records, reboot) = self.cluster.load_reboot_journal(&journal).await?;
        let proven = reboot.records.values().filter(|r| r.phase == fleetboot_core::journal::Phase::Confirmed).count();
        let fallbacks = reboot.records.values().filter(|r| r.attempts.iter().any(|a| a.bmc.is_some())).count();
        // Nodes the cluster API's exec rebooted (`auto` stepped to it, and no BMC after it).
        let through_api: std::collections::BTreeSet<&str> = records
            .iter()
            .filter_map(|r| match &r.entry {
                fleetboot_core::journal::Entry::TransportChosen { host, transport, .. } if transport == "kube" => Some(host.as_str()),
                _ => None,
            })
            .filter(|host| reboot.records.get(*host).is_some_and(|r| r.attempts.iter().all(|a| a.bmc.is_none())))
            .collect();
        if code != ExitCode::Ok {
            let failed: Vec<String> = reboot
                .records
                .iter()
                .filter(|(_, r)| r.phase != fleetboot_core::journal::Phase::Confirmed)
                .map(|(n, r)| format!("{n} ({})", r.failure.as_ref().map_or("not finished".to_owned(), |(_, e)| e.clone())))
                .collect();
            return Err(StepError::Stop(
                code,
                format!("{proven} of {} nodes proven rebooted; not: {}", reboot.records.len(), failed.join("; ")),
            ));
        }
        Ok(format!(
            "{proven} nodes proven rebooted (boot ID changed, Ready in the API){}{}",
            if through_api.is_empty() { String::new() } else { format!("; {} through the cluster API", through_api.len()) },
            if fallbacks > 0 { format!("; {fallbacks} through their BMC") } else { String::new() }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_id(journal: RebootJournal) -> String {
        match journal {
            RebootJournal::Cluster(place) => place.run_id,
            RebootJournal::File(path) => panic!("a file: {}", path.display()),
        }
    }

    #[test]
    fn the_error_node_runs_in_the_cluster_are_named_from_the_migrations_id_one_after_another() {
        let dir = Path::new("/state/migrations/m-1");
        let first = new_error_nodes_journal(dir, "m-1", true, None, 7).unwrap();
        assert_eq!(run_id(first), "m-1-error-nodes-1");
        let previous = PathBuf::from("cluster:kube-system/m-1-error-nodes-1");
        assert_eq!(run_id(new_error_nodes_journal(dir, "m-1", true, Some(&previous), 8).unwrap()), "m-1-error-nodes-2");
        // Named the same whenever it is asked: the clock does not enter the name.
        assert_eq!(run_id(new_error_nodes_journal(dir, "m-1", true, Some(&previous), 9).unwrap()), "m-1-error-nodes-2");
        // A previous run in a file (the migration started with its journals on disk) does not count.
        let file = dir.join("reboot-error-nodes-5.jsonl");
        assert_eq!(run_id(new_error_nodes_journal(dir, "m-1", true, Some(&file), 9).unwrap()), "m-1-error-nodes-1");
        match new_error_nodes_journal(dir, "m-1", false, None, 9).unwrap() {
            RebootJournal::File(path) => assert_eq!(path, dir.join("reboot-error-nodes-9.jsonl")),
            RebootJournal::Cluster(place) => panic!("{place:?}"),
        }
    }
}
