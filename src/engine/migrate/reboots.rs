//! Step 7 and step 10's reboots: the reboot engine's own run on this migration's cluster
//! connection, under the migration's lease.

use super::*;

impl Migration<'_, '_> {
    /// Runs a reboot job on this migration's own cluster connection (never a rebuilt command
    /// line, which once lost `--context` and rebooted another cluster's nodes).
    pub(super) async fn run_reboot(
        &self,
        selection: Selection,
        journal: Option<PathBuf>,
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
            journal_in_cluster: false,
            run_id: None,
            own_node: None,
            groups,
            drain: None,
            lease: LeasePolicy { migration_holder: Some(self.lease_holder.clone()), ..LeasePolicy::default() },
            // A resumed reboot run keeps the limits the migration gives it.
            explicit: Partial { concurrency, ..Partial::default() },
            refuse_conflicts: false,
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

    pub(super) async fn reboot_nodes(&self, state: &mut MigrationState, log: &mut Log<'_>) -> Result<String, StepError> {
        let journal = match &state.reboot_journal {
            Some(path) => path.clone(),
            None => {
                let path = self.dir.join("reboot.jsonl");
                log(state, MigrationEntry::RebootJournal { path: path.clone() })?;
                path
            }
        };
        // A resumed reboot run keeps the limits the migration started it with.
        let groups = match state.reboot_concurrency {
            Some(n) => GroupPolicy { group_concurrency: Some(n), migration_reboot: true, ..GroupPolicy::default() },
            None => GroupPolicy { all_at_once: true, migration_reboot: true, ..GroupPolicy::default() },
        };
        // A reboot journal with no complete record (a kill right after its creation) means no
        // host was touched: the run starts afresh in it (the writer takes such a file over).
        let selection = if crate::adapters::journal::is_started(&journal) {
            self.line(Step::RebootNodes, &format!("continuing the reboot run {}", journal.display()));
            Selection::Resume(journal.clone())
        } else {
            Selection::Nodes(NodeSelection { address_type: "InternalIP".into(), ..NodeSelection::default() })
        };
        let mut warned = false;
        self.warn_if_paused_long(state, log, &mut warned)?;
        let code = self.run_reboot(selection, Some(journal.clone()), groups, state.reboot_concurrency).await?;
        let (records, reboot) = crate::adapters::journal::load(&journal).map_err(MigrateError::RebootJournal)?;
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
