//! The steps in order: each one journaled, skipped when an earlier run did it, stopped when the
//! migration's lease is lost; the step match itself, and the wait for an operator to apply a change.

use super::waits::{MultusBefore, record_multus_generation_once};
use super::*;

impl Migration<'_, '_> {
    /// Runs one wait of a step unless the migration's lease is lost first: another migration
    /// may be acting, so the wait ends there with [`StepError::LeaseLost`].
    pub(super) async fn leased<R>(&self, wait: impl std::future::Future<Output = R>) -> Result<R, StepError> {
        let mut lost = self.lease_lost.clone();
        tokio::select! {
            biased;
            Ok(why) = lost.wait_for(Option::is_some) => Err(StepError::LeaseLost(why.clone().expect("some"))),
            value = wait => Ok(value),
        }
    }

    /// The next change (or idle tick) of a wait's watch, under the lease.
    pub(super) async fn next_change(&self, changes: &mut Changes) -> Result<(), StepError> {
        self.leased(changes.next()).await
    }

    pub(super) fn line(&self, step: Step, message: &str) {
        self.events.emit(MigrationEvent::StepProgress { step, number: self.flow.number(step), message: message.to_owned() });
    }

    pub(super) async fn steps(&self, state: &mut MigrationState, log: &mut Log<'_>) -> Result<ExitCode, MigrateError> {
        for &step in self.flow.steps() {
            let number = self.flow.number(step);
            if state.is_done(step) {
                self.events.emit(MigrationEvent::StepSkipped { step, number });
                continue;
            }
            // A migration that lost its lease starts no further step: another may be running.
            if let Some(lost) = self.lease_lost.borrow().clone() {
                let reason = lost.to_string();
                log(state, MigrationEntry::Warning { message: format!("stopped before step {number}: {reason}") })?;
                self.events.emit(MigrationEvent::MigrationLeaseLost { reason });
                return Ok(ExitCode::Incomplete);
            }
            if step == Step::Cleanup && !self.options.cleanup {
                self.events.emit(MigrationEvent::MigrationAwaitingCleanup {
                    flow: self.flow,
                    old_namespace: old_namespace(&state.target).to_owned(),
                });
                return Ok(ExitCode::Ok);
            }
            log(state, MigrationEntry::StepStarted { step })?;
            self.events.emit(MigrationEvent::StepStarted { step, number: number.clone() });
            match self.step(step, state, log).await {
                Ok(detail) => {
                    self.events.emit(MigrationEvent::StepDone { step, number, detail: detail.clone() });
                    log(state, MigrationEntry::StepDone { step, detail })?;
                }
                Err(StepError::LeaseLost(lost)) => {
                    let reason = lost.to_string();
                    log(state, MigrationEntry::Warning { message: format!("stopped in step {number}: {reason}") })?;
                    self.events.emit(MigrationEvent::MigrationLeaseLost { reason: format!("{reason}; stopped in step {number}") });
                    return Ok(ExitCode::Incomplete);
                }
                Err(StepError::Stop(code, error)) => {
                    self.events.emit(MigrationEvent::StepFailed { step, number, error: error.clone() });
                    log(state, MigrationEntry::StepFailed { step, error })?;
                    if self.flow.pools_paused_during(step) {
                        self.events.emit(MigrationEvent::MigrationPoolsStayPaused);
                    } else {
                        self.events.emit(MigrationEvent::MigrationResumeAfterFix { rollback_to: source_type(&state.target).to_owned() });
                    }
                    return Ok(code);
                }
                // fleetboot itself cannot go on: the error is the command's (stderr, exit code),
                // as before; no step line claims the step failed on the cluster.
                Err(StepError::Fatal(e)) => {
                    let _ = log(state, MigrationEntry::StepFailed { step, error: e.to_string() });
                    return Err(e);
                }
            }
        }
        self.events.emit(MigrationEvent::MigrationComplete { target: state.target.clone() });
        Ok(ExitCode::Ok)
    }

    /// Waits until `Network.config/cluster` satisfies `applied` (the network operator applied
    /// the change), failing at once with the operator's own message when it refuses the change
    /// (the `network` ClusterOperator Degraded), or at `--operator-timeout`.
    pub(super) async fn wait_operator(&self, step: Step, what: &str, applied: impl Fn(&Value) -> bool) -> Result<(), StepError> {
        let c = self.cluster;
        let mut changes = Changes::watch(c.cluster_scoped(&network_config()), Some("metadata.name=cluster"), Duration::from_secs(1));
        let deadline = crate::adapters::system::deadline_after(self.options.operator_timeout.into());
        let mut said = false;
        loop {
            let config = c.get(&network_config(), "cluster").await?;
            if applied(&config) {
                return Ok(());
            }
            let operator = c.get(&cluster_operators(), "network").await?;
            let degraded =
                condition_true(&operator, "Degraded").then(|| fleetboot_core::conditions::message(&operator, "Degraded").to_owned());
            if let Some(message) = degraded.filter(|m| m.contains("Not applying")) {
                return Err(StepError::Stop(ExitCode::HostsFailed, format!("the network operator refused the change: {message}")));
            }
            if !said {
                self.line(step, &format!("waiting for the network operator: {what}"));
                said = true;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StepError::Stop(
                    ExitCode::HostsFailed,
                    format!("the network operator did not apply the change within {}: {what}", self.options.operator_timeout),
                ));
            }
            self.next_change(&mut changes).await?;
        }
    }

    pub(super) async fn step(&self, step: Step, state: &mut MigrationState, log: &mut Log<'_>) -> Result<String, StepError> {
        if self.flow == Flow::Live && matches!(step, Step::SetNetworkType | Step::WaitRollout | Step::EnableMigration) {
            return self.live_step(step, state, log).await;
        }
        let target = state.target.clone();
        let c = self.cluster;
        match step {
            Step::Preflight => {
                // Checked before the journal was created; a resume finds the cluster mid-change.
                Ok(format!(
                    "cluster checked, etcd backup confirmed; {} pods already failing before the migration (not counted by verify)",
                    state.failing_pods.len()
                ))
            }
            Step::Backup => {
                let mut config = c.get(&network_config(), "cluster").await?;
                if let Some(meta) = config.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.remove("managedFields");
                }
                let name = format!("cluster-{}.yaml", if target == "OVNKubernetes" { "openshift-sdn" } else { "ovn-kubernetes" });
                let yaml = checks::to_yaml(&config);
                // Something else at a file's place (a link, a directory) is never read through:
                // the store's read refuses it.
                match self.store.read_file(&name).await.map_err(MigrateError::StateFile)? {
                    // Written by this migration before it was interrupted: keep the first one.
                    Some(_) => Ok(format!("kept the existing backup {}", self.store.file_location(&name).display())),
                    // Whole or not at all: a kill mid-write must not leave half a backup that a
                    // resume would then keep as the first one.
                    None => {
                        self.store.write_file(&name, &yaml).await.map_err(MigrateError::StateFile)?;
                        Ok(self.store.file_location(&name).display().to_string())
                    }
                }
            }
            Step::ClearMigration => {
                let operator = c.get(&network_operator(), "cluster").await?;
                let set = operator.pointer("/spec/migration").is_some_and(|m| !m.is_null());
                if set {
                    c.merge(&network_operator(), "cluster", json!({"spec": {"migration": null}})).await?;
                }
                self.wait_operator(step, "status.migration cleared", |config| {
                    config.pointer("/status/migration").is_none_or(Value::is_null)
                })
                .await?;
                Ok(if set {
                    "Network.operator.openshift.io/cluster spec.migration: null, applied".into()
                } else {
                    "spec.migration was not set".into()
                })
            }
            Step::EnableMigration => match self.flow {
                Flow::Live => Ok(String::new()),
                Flow::Seed => {
                    c.merge(&network_operator(), "cluster", json!({"metadata": {"annotations": {MIGRATION_ANNOTATION: ""}}})).await?;
                    Ok(format!("annotated Network.operator.openshift.io/cluster with {MIGRATION_ANNOTATION}"))
                }
                Flow::TwoPhase | Flow::Rollback => {
                    let mut migration = json!({"networkType": target});
                    if !self.options.skip_feature.is_empty() {
                        let on = |f: &str| !self.options.skip_feature.iter().any(|s| s == f);
                        migration["features"] =
                            json!({"egressIP": on("egress-ip"), "egressFirewall": on("egress-firewall"), "multicast": on("multicast")});
                    }
                    c.merge(&network_operator(), "cluster", json!({"spec": {"migration": migration}})).await?;
                    let wanted = target.clone();
                    self.wait_operator(step, &format!("status.migration.networkType = {target}"), move |config| {
                        config.pointer("/status/migration/networkType").and_then(Value::as_str) == Some(wanted.as_str())
                    })
                    .await?;
                    Ok(format!("Network.operator.openshift.io/cluster spec.migration.networkType = {target}, applied (status.migration)"))
                }
            },
            Step::PausePools => {
                let pools = c.list(&crate::adapters::kube::machine_config_pools()).await?;
                let paused = |p: &Value| p.pointer("/spec/paused") == Some(&json!(true));
                let already: Vec<String> = pools.iter().filter(|p| paused(p)).map(name_of).collect();
                let to_pause: Vec<String> = pools.iter().filter(|p| !paused(p)).map(name_of).collect();
                log(state, MigrationEntry::PoolsFound { already_paused: already, to_pause })?;
                for pool in state.to_pause.clone() {
                    c.merge(&crate::adapters::kube::machine_config_pools(), &pool, json!({"spec": {"paused": true}})).await?;
                }
                let kept = state.already_paused.clone().unwrap_or_default();
                Ok(format!(
                    "paused {}{}",
                    state.to_pause.join(", "),
                    if kept.is_empty() { String::new() } else { format!(" (already paused, left so: {})", kept.join(", ")) }
                ))
            }
            Step::RolloutConfig => self.wait_rollout(step, None, Some(format!("configure-ovs.sh {target}")), state, log).await,
            Step::SetNetworkType => {
                // The multus generation before the switch is recorded once: a resumed step must
                // not take the generation the switch already bumped for "before" (it would wait
                // for a rollout that already happened), and a failed read stops the step rather
                // than recording 0 (which any generation would pass).
                let read_before = async {
                    let generation = c
                        .namespaced(&daemon_sets(), "openshift-multus")
                        .get("multus")
                        .await
                        .map_err(api_error("read the multus DaemonSet's generation before the switch"))?
                        .metadata
                        .generation
                        .ok_or(MigrateError::MultusWithoutGeneration)?;
                    let config = c.get(&network_config(), "cluster").await?;
                    // Already running the target (a rollback of a migration that failed before its
                    // switch): no multus rollout will follow.
                    let already = str_at(&config, "/status/networkType") == target;
                    Ok(if already { MultusBefore::NoRolloutComing } else { MultusBefore::Generation(generation) })
                };
                record_multus_generation_once(self.store, read_before).await?;
                c.merge(&network_config(), "cluster", json!({"spec": {"networkType": target}})).await?;
                let wanted = target.clone();
                self.wait_operator(step, &format!("status.networkType = {target}"), move |config| {
                    str_at(config, "/status/networkType") == wanted
                })
                .await?;
                Ok(format!("network.config.openshift.io/cluster spec.networkType = {target}, applied (status.networkType)"))
            }
            Step::MtuAndPort => {
                let Some(options) = state.network_options.clone() else {
                    return Ok("not asked for: left as it is".into());
                };
                let detail = format!("spec.defaultNetwork += {options}");
                c.merge(&network_operator(), "cluster", json!({"spec": {"defaultNetwork": options}})).await?;
                Ok(detail)
            }
            Step::WaitMultus => self.wait_multus(state, log).await,
            Step::RebootNodes => self.reboot_nodes(state, log).await,
            Step::ResumePools => {
                // The gate: every node proven rebooted by step 7 and Ready now.
                let journal = state.reboot_journal.clone().ok_or(MigrateError::NoRebootJournal)?;
                let (_, reboot) = c.journaled_reboot_run(&journal).await?;
                let unproven: Vec<&String> =
                    reboot.records.iter().filter(|(_, r)| r.phase != fleetboot_core::journal::Phase::Confirmed).map(|(n, _)| n).collect();
                let snapshot = c.snapshot().await?;
                let not_ready: Vec<&String> = snapshot.nodes.iter().filter(|(_, r)| r != "True").map(|(n, _)| n).collect();
                if !unproven.is_empty() || !not_ready.is_empty() {
                    return Err(StepError::Stop(
                        ExitCode::HostsFailed,
                        format!("not resuming the pools: reboot not proven for {unproven:?}, not Ready: {not_ready:?}"),
                    ));
                }
                for pool in &state.to_pause {
                    c.merge(&crate::adapters::kube::machine_config_pools(), pool, json!({"spec": {"paused": false}})).await?;
                }
                Ok(format!("resumed {}", state.to_pause.join(", ")))
            }
            Step::WaitRollout => {
                let pools = Some(state.to_pause.clone());
                self.wait_rollout(step, pools, rollback::rollout_marker(self.flow, &target), state, log).await
            }
            Step::Verify => self.verify(state, log).await,
            Step::Cleanup => {
                if !state.last_verify.as_ref().is_some_and(|(passed, _)| *passed) {
                    return Err(StepError::Stop(ExitCode::HostsFailed, "the last verification did not pass: no cleanup".into()));
                }
                for patch in rollback::cleanup_patches(self.flow, &target) {
                    c.merge(&network_operator(), "cluster", patch).await?;
                }
                if self.flow == Flow::Live {
                    let annotation = fleetboot_core::migrate::live::ANNOTATION;
                    c.merge(&network_config(), "cluster", json!({"metadata": {"annotations": {annotation: null}}})).await?;
                }
                let namespace = old_namespace(&target);
                match c.cluster_scoped(&namespaces()).delete(namespace, &Default::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(api_error(&format!("delete namespace {namespace}"))(e).into()),
                }
                Ok(format!("{}, namespace {namespace} deleted", rollback::cleanup_words(self.flow, &target)))
            }
        }
    }
}
