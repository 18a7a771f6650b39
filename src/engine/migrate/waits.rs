//! What the steps wait for: multus rolled out after the switch (against the generation recorded
//! before it), every pool's MCO rollout, the operators settled; and the warning when the pools
//! stay paused too long.

use super::*;

/// The file (in the migration's directory) holding step 4's multus generation before the switch.
pub(super) const MULTUS_GENERATION_BEFORE: &str = "multus-generation-before";

/// What step 4 found of multus before the switch.
pub(super) enum MultusBefore {
    /// The DaemonSet's generation: step 6 waits for a newer one, rolled out.
    Generation(i64),
    /// The cluster already ran the target (a rollback of a migration that failed before its
    /// switch): the network operator starts no multus rollout.
    NoRolloutComing,
}

/// Records, once, what multus looked like before the switch. A resumed step 4 keeps the first
/// record (`read` is not even polled): the switch may already have bumped the generation, and
/// taking that for "before" would wait for a rollout that already happened. A failed read stops
/// the step and records nothing, rather than 0, which any generation would pass.
pub(super) async fn record_multus_generation_once(
    store: &dyn MigrationStore,
    read: impl Future<Output = Result<MultusBefore, MigrateError>>,
) -> Result<(), MigrateError> {
    if store.read_file(MULTUS_GENERATION_BEFORE).await.map_err(MigrateError::StateFile)?.is_some() {
        return Ok(());
    }
    let text = match read.await? {
        MultusBefore::Generation(generation) => generation.to_string(),
        MultusBefore::NoRolloutComing => "-1".to_owned(),
    };
    store.write_file(MULTUS_GENERATION_BEFORE, &text).await.map_err(MigrateError::StateFile)
}

/// Step 4's record: the generation before the switch, or -1 when no rollout comes.
pub(super) async fn recorded_multus_generation(store: &dyn MigrationStore) -> Result<i64, MigrateError> {
    let path = store.file_location(MULTUS_GENERATION_BEFORE);
    let unreadable = |reason: String| MigrateError::MultusGenerationNotRecorded { path: path.clone(), reason };
    let text = match store.read_file(MULTUS_GENERATION_BEFORE).await {
        Ok(Some(text)) => text,
        Ok(None) => return Err(unreadable("never recorded".into())),
        Err(e) => return Err(unreadable(e.source.to_string())),
    };
    text.trim().parse().map_err(|e: std::num::ParseIntError| unreadable(format!("{text:?}: {e}")))
}

impl Migration<'_, '_> {
    pub(super) fn warn_if_paused_long(&self, state: &mut MigrationState, log: &mut Log<'_>, warned: &mut bool) -> Result<(), MigrateError> {
        let Some(since) = state.paused_at_ms else { return Ok(()) };
        let paused_for = Duration::from_millis(crate::adapters::system::now_ms().saturating_sub(since));
        if !*warned && paused_for > Duration::from(self.options.paused_warning) {
            *warned = true;
            let message = format!(
                "the MachineConfigPools have been paused for {}: certificate rotation is paused with them; finish the migration soon",
                humantime::format_duration(Duration::from_secs(paused_for.as_secs()))
            );
            self.events.emit(MigrationEvent::MigrationWarning { message: message.clone() });
            log(state, MigrationEntry::Warning { message })?;
        }
        Ok(())
    }

    pub(super) async fn wait_multus(&self, state: &mut MigrationState, log: &mut Log<'_>) -> Result<String, StepError> {
        let before = recorded_multus_generation(self.store).await?;
        if before < 0 {
            return Ok(format!("the cluster already ran {}: the network operator starts no multus rollout", state.target));
        }
        let api = self.cluster.namespaced(&daemon_sets(), "openshift-multus");
        let mut changes = Changes::watch(api.clone(), Some("metadata.name=multus"), self.options.poll_interval.into());
        let deadline = crate::adapters::system::deadline_after(self.options.multus_timeout.into());
        let mut last = String::new();
        let mut warned = false;
        loop {
            self.warn_if_paused_long(state, log, &mut warned)?;
            let ds = api.get("multus").await.map_err(api_error("get daemonset openshift-multus/multus"))?;
            let generation = ds.metadata.generation.unwrap_or(0);
            let status = |k: &str| ds.data.pointer(&format!("/status/{k}")).and_then(Value::as_i64).unwrap_or(0);
            let (desired, updated, available, observed) = (
                status("desiredNumberScheduled"),
                status("updatedNumberScheduled"),
                status("numberAvailable"),
                status("observedGeneration"),
            );
            let progress = if generation > before {
                format!("{updated} of {desired} updated, {available} available")
            } else {
                "waiting for the network operator to start the rollout".to_owned()
            };
            if progress != last {
                self.line(Step::WaitMultus, &progress);
                last = progress.clone();
            }
            // The rollout the switch started: a newer generation, observed and complete.
            if generation > before && observed >= generation && updated == desired && available == desired && desired > 0 {
                return Ok(progress);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StepError::Stop(
                    ExitCode::HostsFailed,
                    format!("multus did not finish rolling out within {}: {progress}", self.options.multus_timeout),
                ));
            }
            self.next_change(&mut changes).await?;
        }
    }

    /// Watches the MCO roll its rendered configs out, with counts and an ETA per pool, until
    /// every pool (`pools`, or every pool there is) is Updated (every machine updated, ready
    /// and available, `status.configuration` = `spec.configuration`) and, with `marker`, the
    /// rendered config of each pool contains it (the phase-1 configs run `configure-ovs.sh
    /// <target>`).
    pub(super) async fn wait_rollout(
        &self,
        step: Step,
        pools: Option<Vec<String>>,
        marker: Option<String>,
        state: &mut MigrationState,
        log: &mut Log<'_>,
    ) -> Result<String, StepError> {
        let pools_api = crate::adapters::kube::machine_config_pools();
        let mut changes = Changes::watch(self.cluster.cluster_scoped(&pools_api), None, self.options.poll_interval.into());
        let deadline = crate::adapters::system::deadline_after(self.options.rollout_timeout.into());
        let started = std::time::Instant::now();
        let mut last = std::collections::BTreeMap::<String, String>::new();
        let mut names: Vec<String> = Vec::new();
        // Each node's boot ID at the last look, and when: the MCO's reboots during the rollout
        // are journaled as seen between two looks (the timeline draws them as the MCO's).
        let mut boots: std::collections::BTreeMap<String, (String, u64)> = std::collections::BTreeMap::new();
        // The nodes from one watch, not a LIST of every node per look.
        let node_view = NodeView::start(&self.cluster.client);
        // Whether each rendered config read runs the marker, by name: a rendered MachineConfig's
        // name is the hash of its content (machine-config-operator
        // pkg/controller/render/render_controller.go, `getMachineConfigHashedName`), so what
        // one name holds never changes. A config that could not be read is read again.
        let mut rendered_has_marker = std::collections::BTreeMap::<String, bool>::new();
        loop {
            // The pools, read fresh at every look: their status decides when the wait is over.
            let all_pools = self.cluster.list(&pools_api).await?;
            let look_ms = crate::adapters::system::now_ms();
            let nodes = node_view.nodes(self.cluster).await?;
            for node in &nodes {
                let boot = str_at(node, "/status/nodeInfo/bootID");
                if boot.is_empty() {
                    continue;
                }
                let name = name_of(node);
                if let Some((before, since_ms)) = boots.insert(name.clone(), (boot.clone(), look_ms))
                    && before != boot
                {
                    let by = "the MCO (rollout)".to_owned();
                    log(state, MigrationEntry::RebootObserved { node: name, by, since_ms })?;
                }
            }
            let mut all_done = true;
            names.clear();
            for pool in all_pools.iter().filter(|p| pools.as_ref().is_none_or(|names| names.contains(&name_of(p)))) {
                let pool_name = name_of(pool);
                names.push(pool_name.clone());
                let count = |k: &str| pool.pointer(&format!("/status/{k}")).and_then(Value::as_u64).unwrap_or(0);
                let (machines, updated, degraded) = (count("machineCount"), count("updatedMachineCount"), count("degradedMachineCount"));
                if degraded > 0 {
                    let why =
                        if condition_true(pool, "NodeDegraded") { fleetboot_core::conditions::message(pool, "NodeDegraded") } else { "" };
                    return Err(StepError::Stop(ExitCode::HostsFailed, format!("pool {pool_name} has {degraded} degraded machines {why}")));
                }
                let spec = str_at(pool, "/spec/configuration/name");
                let rendered_ok = match &marker {
                    None => true,
                    Some(_) if rendered_has_marker.contains_key(&spec) => rendered_has_marker[&spec],
                    Some(marker) => match self.cluster.get(&machine_configs(), &spec).await {
                        Ok(mc) => *rendered_has_marker.entry(spec.clone()).or_insert(mc.to_string().contains(marker.as_str())),
                        Err(_) => false,
                    },
                };
                let done = rendered_ok
                    && updated == machines
                    && str_at(pool, "/status/configuration/name") == spec
                    && status_observed(pool)
                    && condition_true(pool, "Updated");
                all_done &= done;
                let working: Vec<String> = nodes
                    .iter()
                    .filter(|n| str_at(n, "/metadata/annotations/machineconfiguration.openshift.io~1state") == "Working")
                    .filter(|n| pool_of_node(n, pool))
                    .map(name_of)
                    .collect();
                let per_node = if updated > 0 { Some(started.elapsed() / updated as u32) } else { None };
                let eta = per_node.map(|p| {
                    humantime::format_duration(Duration::from_secs((p * machines.saturating_sub(updated) as u32).as_secs())).to_string()
                });
                let progress = if done {
                    format!("{pool_name}: all {machines} updated to {spec}")
                } else if !rendered_ok {
                    format!("{pool_name}: waiting for the MCO to render a config with {}", marker.as_deref().unwrap_or_default())
                } else {
                    format!(
                        "{pool_name}: {updated} of {machines} updated to {spec}{}",
                        if working.is_empty() { String::new() } else { format!(" · updating {}", working.join(", ")) },
                    )
                };
                // A new line when the pool moves, not when only the estimate does.
                if last.get(&pool_name) != Some(&progress) {
                    let eta = if done { String::new() } else { eta.map_or(String::new(), |e| format!(" · ETA {e}")) };
                    self.line(step, &format!("{progress}{eta}"));
                    last.insert(pool_name, progress);
                }
            }
            if all_done {
                return Ok(format!(
                    "pools {} updated in {}{}",
                    names.join(", "),
                    humantime::format_duration(Duration::from_secs(started.elapsed().as_secs())),
                    marker.map_or(String::new(), |m| format!("; their rendered configs run {m}"))
                ));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StepError::Stop(
                    ExitCode::HostsFailed,
                    format!("the MCO rollout did not finish within {}", self.options.rollout_timeout),
                ));
            }
            self.next_change(&mut changes).await?;
        }
    }

    /// Waits (up to `--operator-timeout`) until no ClusterOperator is Progressing: the
    /// operators finish what the reboots started before the cluster is judged.
    pub(super) async fn settle(&self) -> Result<(), StepError> {
        let deadline = crate::adapters::system::deadline_after(self.options.operator_timeout.into());
        let mut changes = Changes::watch(self.cluster.cluster_scoped(&cluster_operators()), None, Duration::from_secs(1));
        let mut last = String::new();
        loop {
            let progressing: Vec<String> =
                self.cluster.list(&cluster_operators()).await?.iter().filter(|o| condition_true(o, "Progressing")).map(name_of).collect();
            if progressing.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(());
            }
            let now = format!("waiting for the ClusterOperators to settle: {} Progressing", progressing.join(", "));
            if now != last {
                self.line(Step::Verify, &now);
                last = now;
            }
            self.next_change(&mut changes).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::migration_journal::DirStore;

    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(future)
    }

    #[test]
    fn the_multus_generation_before_the_switch_is_recorded_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore::open(dir.path()).unwrap();
        let store: &dyn MigrationStore = &store;
        block_on(record_multus_generation_once(store, async { Ok(MultusBefore::Generation(4)) })).unwrap();
        assert_eq!(block_on(recorded_multus_generation(store)).unwrap(), 4);
        // A resumed step 4: the switch has bumped the generation since; the first record stays
        // and the cluster is not even read again.
        let read_again = std::cell::Cell::new(false);
        let bumped = async {
            read_again.set(true);
            Ok(MultusBefore::Generation(5))
        };
        block_on(record_multus_generation_once(store, bumped)).unwrap();
        assert!(!read_again.get(), "the generation was read again");
        assert_eq!(block_on(recorded_multus_generation(store)).unwrap(), 4);
    }

    #[test]
    fn a_failed_read_of_the_multus_generation_stops_the_step_and_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MULTUS_GENERATION_BEFORE);
        let store = DirStore::open(dir.path()).unwrap();
        let store: &dyn MigrationStore = &store;
        let failed = block_on(record_multus_generation_once(store, async { Err(MigrateError::MultusWithoutGeneration) }));
        assert!(matches!(failed, Err(MigrateError::MultusWithoutGeneration)));
        assert!(!path.exists(), "nothing recorded, so a resume reads it again");
        // And step 6 never waits on a guessed 0 for a record that is missing or torn.
        assert!(matches!(block_on(recorded_multus_generation(store)), Err(MigrateError::MultusGenerationNotRecorded { .. })));
        std::fs::write(&path, "").unwrap();
        assert!(matches!(block_on(recorded_multus_generation(store)), Err(MigrateError::MultusGenerationNotRecorded { .. })));
        // A rollback whose cluster already runs the target: no rollout to wait for.
        std::fs::remove_file(&path).unwrap();
        block_on(record_multus_generation_once(store, async { Ok(MultusBefore::NoRolloutComing) })).unwrap();
        assert_eq!(block_on(recorded_multus_generation(store)).unwrap(), -1);
    }
}
