//! Steps 9-10's verification, and `fleetboot verify`.

use super::*;

impl Migration<'_, '_> {
    pub(super) async fn verify(&self, state: &mut MigrationState, log: &mut Log<'_>) -> Result<String, StepError> {
        let target = state.target.clone();
        self.settle().await?;
        let baseline = state.failing_pods.clone();
        // An error-node reboot a killed process left unfinished is continued first, from its
        // journal: a node of it may be mid-boot, and must never be planned afresh.
        let mut rebooted_now = false;
        if self.options.reboot_error_nodes
            && let Some(journal) = state.error_nodes_journal.clone()
            && journal.exists()
            && !crate::adapters::journal::load(&journal).map_err(MigrateError::RebootJournal)?.1.finished
        {
            self.line(Step::Verify, &format!("continuing the reboot of the nodes that hold pods in error: {}", journal.display()));
            let code = self
                .run_reboot(
                    Selection::Resume(journal.clone()),
                    Some(journal),
                    None,
                    Self::error_nodes_groups(state.reboot_concurrency),
                    state.reboot_concurrency,
                )
                .await?;
            if code != ExitCode::Ok {
                return Err(StepError::Stop(code, "the reboot of the nodes that hold pods in error failed".into()));
            }
            rebooted_now = true;
            tokio::time::sleep(Duration::from(self.options.poll_interval).min(Duration::from_secs(5))).await;
        }
        let mut inputs = self.cluster.verify_inputs(&target, &baseline).await?;
        let mut results = checks::verify(&inputs, &target);
        let passed = results.iter().all(|c| c.passed);
        self.events.emit(MigrationEvent::MigrationVerified { passed, checks: results.clone() });
        log(state, MigrationEntry::Verified { passed, checks: results.clone() })?;
        let error_nodes = checks::nodes_with_error_pods(&inputs.pods, &baseline);
        if !passed && self.options.reboot_error_nodes && !error_nodes.is_empty() && !rebooted_now {
            self.line(Step::Verify, &format!("rebooting the nodes that hold pods in error: {}", error_nodes.join(", ")));
            // Journaled before the run starts: a resume continues this very run.
            let journal = self.dir.join(format!("reboot-error-nodes-{}.jsonl", crate::adapters::system::now_ms()));
            log(state, MigrationEntry::ErrorNodesRebootJournal { path: journal.clone(), nodes: error_nodes.clone() })?;
            let selection = Selection::Nodes(NodeSelection {
                names: error_nodes.clone(),
                address_type: "InternalIP".into(),
                ..NodeSelection::default()
            });
            // The migration's concurrency and the full control-plane rule: no exception here.
            let concurrency = state.reboot_concurrency.or(Some(error_nodes.len()));
            let code =
                self.run_reboot(selection, Some(journal), None, Self::error_nodes_groups(state.reboot_concurrency), concurrency).await?;
            if code != ExitCode::Ok {
                return Err(StepError::Stop(code, format!("rebooting {} failed", error_nodes.join(", "))));
            }
            // Give the kubelets a moment to restart their pods, then look again.
            self.leased(tokio::time::sleep(Duration::from(self.options.poll_interval).min(Duration::from_secs(5)))).await?;
            inputs = self.cluster.verify_inputs(&target, &baseline).await?;
            results = checks::verify(&inputs, &target);
            let passed = results.iter().all(|c| c.passed);
            self.events.emit(MigrationEvent::MigrationVerified { passed, checks: results.clone() });
            log(state, MigrationEntry::Verified { passed, checks: results.clone() })?;
        }
        if results.iter().all(|c| c.passed) {
            Ok(format!("{} checks passed", results.len()))
        } else {
            let hint = if !error_nodes.is_empty() && !self.options.reboot_error_nodes {
                " (--reboot-error-nodes reboots the nodes of pods in error)"
            } else {
                ""
            };
            Err(StepError::Stop(
                ExitCode::HostsFailed,
                format!(
                    "{} of {} checks failed{hint}; fix, then fleetboot migrate --resume",
                    results.iter().filter(|c| !c.passed).count(),
                    results.len()
                ),
            ))
        }
    }
}

/// The pods failing before the newest migration *of this cluster* started: another cluster's
/// baseline would hide this one's failing pods (or count its own old ones).
pub(super) fn newest_baseline(root: &Path, cluster: &fleetboot_core::journal::ClusterIdentity) -> Result<Vec<String>, MigrateError> {
    Ok(migrations_of(root, cluster)?.pop().map(|(_, state)| state.failing_pods).unwrap_or_default())
}

/// Steps 9-10's checks of the cluster `context` names, against the network type `to`: pods
/// that were failing before this cluster's newest migration started are not counted.
pub async fn verify(context: &MigrationContext, to: &str) -> Result<Vec<Check>, MigrateError> {
    let cluster = connect(&context.cluster).await?;
    // What the checks read (fleetboot_core::rbac), asked first.
    let rules = fleetboot_core::rbac::needed(&[fleetboot_core::rbac::Mode::Verify], &Default::default());
    crate::adapters::kube::access::check(&cluster.connection.client, &rules, fleetboot_core::rbac::Mode::Verify).await?;
    let baseline = newest_baseline(&migrations_root(&context.settings), &cluster.connection.identity)?;
    let inputs = cluster.verify_inputs(to, &baseline).await?;
    Ok(checks::verify(&inputs, to))
}
