//! The limited live migration of 4.15.31+/4.16 ([`Flow::Live`], `fleetboot migrate --mode
//! live`): the one patch of `Network.config/cluster` (the annotation and `spec.networkType`,
//! openshift-docs `modules/nw-ovn-kubernetes-live-migration.adoc`), the watch of the
//! `NetworkTypeMigration*` conditions, of every pool and of every node until the network
//! operator reports the migration completed, the proof that the MCO rebooted each node
//! [`live::EXPECTED_REBOOTS`] times (new boot IDs from `status.nodeInfo.bootID`, Ready after),
//! and, in the common clean-up step, the annotation removed. The boot IDs before the patch and every one seen
//! since are kept in the migration's directory, so a resume after kill -9 goes on proving.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::cluster::{Changes, cluster_operators, condition_true, name_of, network_config, nodes, ready_of, str_at};
use super::{Log, MigrateError, Migration, StepError};
use crate::adapters::kube::machine_config_pools as machine_config_pools_resource;
use crate::adapters::migration_journal::MigrationStore;
use fleetboot_core::ExitCode;
use fleetboot_core::migrate::Step;
use fleetboot_core::migrate::live;
use fleetboot_core::migrate::record::{MigrationEntry, MigrationState};

const BASELINE: &str = "live-boot-ids.json";
const SEEN: &str = "live-boots-seen.json";

/// A side file's map; the default when it was never written.
async fn read_map<T: serde::de::DeserializeOwned + Default>(store: &dyn MigrationStore, name: &str) -> Result<T, MigrateError> {
    Ok(store
        .read_file(name)
        .await
        .map_err(MigrateError::StateFile)?
        .map(|text| serde_json::from_str(&text).unwrap_or_default())
        .unwrap_or_default())
}

async fn write_map(store: &dyn MigrationStore, name: &str, value: &impl serde::Serialize) -> Result<(), MigrateError> {
    store.write_file(name, &serde_json::to_string(value).expect("maps serialize")).await.map_err(MigrateError::StateFile)
}

/// The live preflight's read of `Infrastructure.config.openshift.io/cluster`: the network
/// operator's HyperShift blocker ([`live::hosted_control_plane`]). Err(refusal) on a hosted
/// control plane; an Infrastructure not found (not an OpenShift API) is no refusal.
pub(super) async fn hosted_refusal(cluster: &super::cluster::Target) -> Result<Option<String>, MigrateError> {
    let infrastructures = crate::adapters::kube::api_resource("config.openshift.io", "v1", "Infrastructure", "infrastructures");
    match cluster.cluster_scoped(&infrastructures).get("cluster").await {
        Ok(object) => Ok(live::hosted_control_plane(&serde_json::to_value(object).expect("objects serialize")).err()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(source) => Err(MigrateError::Api { what: "get infrastructures cluster".into(), source }),
    }
}

impl Migration<'_, '_> {
    /// The steps the live flow does its own way; the others are the offline flows'.
    pub(super) async fn live_step(&self, step: Step, state: &mut MigrationState, log: &mut Log<'_>) -> Result<String, StepError> {
        let target = state.target.clone();
        let c = self.cluster;
        match step {
            Step::SetNetworkType => {
                // The boot IDs before the patch, recorded once (a resume keeps the first).
                let mut baseline: BTreeMap<String, String> = read_map(self.store, BASELINE).await?;
                if baseline.is_empty() {
                    for node in c.list(&nodes()).await? {
                        baseline.insert(name_of(&node), str_at(&node, "/status/nodeInfo/bootID"));
                    }
                    write_map(self.store, BASELINE, &baseline).await?;
                }
                c.merge(
                    &network_config(),
                    "cluster",
                    json!({"metadata": {"annotations": {live::ANNOTATION: ""}}, "spec": {"networkType": target}}),
                )
                .await?;
                Ok(format!(
                    "Network.config.openshift.io/cluster annotated {}=\"\" and spec.networkType: {target}; boot IDs of {} nodes recorded",
                    live::ANNOTATION,
                    baseline.len()
                ))
            }
            Step::WaitRollout => self.live_watch(&target, state, log).await,
            _ => Ok("not part of the live flow".into()),
        }
    }

    /// Watches the conditions, the pools and the nodes until the operator reports the live
    /// migration completed and every pool is Updated, then proves every node's reboots.
    async fn live_watch(&self, target: &str, state: &mut MigrationState, log: &mut Log<'_>) -> Result<String, StepError> {
        let c = self.cluster;
        let baseline: BTreeMap<String, String> = read_map(self.store, BASELINE).await?;
        // The file exists from the watch's start: found at entry (or on any --resume), the watch
        // was interrupted, and a node may have rebooted while nothing watched.
        let found = self.store.read_file(SEEN).await.map_err(MigrateError::StateFile)?;
        let interrupted = found.is_some() || self.options.resume;
        let mut seen: BTreeMap<String, Vec<String>> = found.map(|text| serde_json::from_str(&text).unwrap_or_default()).unwrap_or_default();
        if !interrupted {
            write_map(self.store, SEEN, &seen).await?;
        }
        let poll = Duration::from(self.options.poll_interval);
        let mut changes = Changes::watch(c.cluster_scoped(&nodes()), None, poll);
        let mut last_conditions = String::new();
        let mut last_pools = String::new();
        let started = Instant::now();
        let mut seen_here = 0usize;
        // When the nodes were last looked at: a new boot ID came between that look and this one.
        let mut last_look_ms = crate::adapters::system::now_ms();
        let limit = Duration::from(self.options.rollout_timeout);
        loop {
            let config = c.get(&network_config(), "cluster").await?;
            let fold = live::fold(&config);
            if fold.line != last_conditions {
                self.line(Step::WaitRollout, &format!("conditions: {}", fold.line));
                last_conditions = fold.line.clone();
            }
            // The operator's refusal (its blockers: ValidateLiveMigration's error as Degraded).
            let network = c.get(&cluster_operators(), "network").await?;
            // Before it starts (ValidateLiveMigration) or during it (a step's error, e.g. a
            // degraded pool): the operator goes Degraded and does not go on.
            if condition_true(&network, "Degraded") {
                let message = fleetboot_core::conditions::message(&network, "Degraded").to_owned();
                return Err(StepError::Stop(
                    ExitCode::HostsFailed,
                    format!(
                        "the network operator stops the live migration (Degraded): {message}; fix the cause, then fleetboot migrate --resume"
                    ),
                ));
            }
            let mut ready = BTreeMap::new();
            let mut changed = false;
            let look_ms = crate::adapters::system::now_ms();
            for node in c.list(&nodes()).await? {
                let name = name_of(&node);
                let boot = str_at(&node, "/status/nodeInfo/bootID");
                ready.insert(name.clone(), ready_of(&node) == "True");
                let first = baseline.get(&name).cloned().unwrap_or_default();
                let list = seen.entry(name.clone()).or_default();
                if !boot.is_empty() && boot != first && list.last() != Some(&boot) {
                    list.push(boot.clone());
                    changed = true;
                    seen_here += 1;
                    let count = list.len();
                    let by = "the MCO (live migration)".to_owned();
                    log(state, MigrationEntry::RebootObserved { node: name.clone(), by, since_ms: last_look_ms })?;
                    let total = baseline.len() * live::EXPECTED_REBOOTS;
                    let done: usize = seen.values().map(|l| l.len().min(live::EXPECTED_REBOOTS)).sum();
                    let eta = live::eta_ms(seen_here, total.saturating_sub(done), started.elapsed().as_millis() as u64)
                        .map(|ms| format!(", ETA {}", humantime::format_duration(Duration::from_secs(ms.div_ceil(1000)))))
                        .unwrap_or_default();
                    self.line(
                        Step::WaitRollout,
                        &format!(
                            "{name} rebooted by the MCO ({count} of {}): boot ID {boot}; {done} of {total} reboots{eta}",
                            live::EXPECTED_REBOOTS
                        ),
                    );
                }
            }
            if changed {
                write_map(self.store, SEEN, &seen).await?;
            }
            last_look_ms = look_ms;
            let pools = c.list(&machine_config_pools_resource()).await?;
            let pools_line = pools
                .iter()
                .map(|p| {
                    let count = |k: &str| p.pointer(&format!("/status/{k}")).and_then(Value::as_u64).unwrap_or(0);
                    format!(
                        "{} {} {}/{}",
                        name_of(p),
                        if condition_true(p, "Updating") {
                            "Updating"
                        } else if condition_true(p, "Updated") {
                            "Updated"
                        } else {
                            "-"
                        },
                        count("updatedMachineCount"),
                        count("machineCount")
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            if pools_line != last_pools {
                self.line(Step::WaitRollout, &format!("pools: {pools_line}"));
                last_pools = pools_line;
            }
            let pools_done = pools.iter().all(|p| condition_true(p, "Updated") && !condition_true(p, "Updating"));
            if fold.completed && str_at(&config, "/status/networkType") == target && pools_done {
                return match live::reboot_verdict(&baseline, &seen, &ready, interrupted) {
                    Ok(summary) => Ok(format!("the network operator reports the live migration completed; {summary}")),
                    Err(problems) => Err(StepError::Stop(
                        ExitCode::HostsFailed,
                        format!("the live migration completed but the reboots are not proven: {}", problems.join("; ")),
                    )),
                };
            }
            if started.elapsed() > limit {
                return Err(StepError::Stop(
                    ExitCode::HostsFailed,
                    format!(
                        "the live migration did not complete within --rollout-timeout {}: {}; fleetboot migrate --resume watches on",
                        humantime::format_duration(limit),
                        fold.line
                    ),
                ));
            }
            self.next_change(&mut changes).await?;
        }
    }
}
