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
            && let Some(code) = self.continue_error_nodes_reboot(state).await?
        {
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
            let code = self.reboot_error_nodes(state, log, &error_nodes).await?;
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
