//! `fleetboot repair`: puts back what a journal says fleetboot changed on a cluster (its own
//! cordons, its lease, the pools a migration paused) without rebooting anything, and journals
//! what it did. The plan is pure ([`fleetboot_core::repair`]); this reads the world, refuses
//! when the run may still be live or the journal belongs to another cluster, then acts.

use std::path::{Path, PathBuf};

use crate::adapters::journal::JournalWriter;
use crate::adapters::kube::{ClusterConnection, ClusterTarget, LEASE_NAME, MIGRATION_LEASE_NAME};
use crate::adapters::migration_journal;
use crate::engine::error::{RepairError, RunError as Error, WrongCluster};
use fleetboot_core::batch::IN_PROGRESS_ANNOTATION;
use fleetboot_core::journal::{Entry, JOURNAL_VERSION, Record, RunState};
use fleetboot_core::migrate::record::{MigrationEntry, MigrationState};
use fleetboot_core::rbac::MIGRATION_LEASE_NAMESPACE;
use fleetboot_core::repair::{LeaseVerdict, RepairAction, RepairReport};

/// The journals behind one repair: a reboot run's, or a migration's with its reboot runs'.
struct Journals {
    reboots: Vec<(PathBuf, RunState)>,
    migration: Option<(PathBuf, MigrationState)>,
    _locks: Vec<crate::adapters::journal::JournalLock>,
}

/// Locks (a live run holds its journal: refused, naming its pid) and reads the journals.
fn read_journals(journal: &Path) -> Result<Journals, Error> {
    let mut locks = Vec::new();
    let is_migration = journal.file_name().is_some_and(|n| n == "migration.jsonl");
    let (migration, reboot_paths) = if is_migration {
        locks.push(migration_journal::hold(journal).map_err(RepairError::from)?);
        let (_, state) = migration_journal::load(journal).map_err(RepairError::from)?;
        let reboots: Vec<PathBuf> = state.reboot_journal.iter().filter(|p| p.exists()).cloned().collect();
        (Some((journal.to_owned(), state)), reboots)
    } else {
        (None, vec![journal.to_owned()])
    };
    let mut reboots = Vec::new();
    for path in reboot_paths {
        locks.push(crate::adapters::journal::hold(&path)?);
        let (_, state) = crate::adapters::journal::load(&path)?;
        reboots.push((path, state));
    }
    Ok(Journals { reboots, migration, _locks: locks })
}

/// Repairs what `journal` says fleetboot left changed on the cluster at `target`.
/// `lease_namespace`: where a reboot run took its lease (`reboot --lease-namespace`); a
/// migration's runs take theirs in kube-system.
pub async fn repair(journal: &Path, target: &ClusterTarget, dry_run: bool, lease_namespace: &str) -> Result<RepairReport, Error> {
    let journals = read_journals(journal)?;
    let lease_namespace = if journals.migration.is_some() { MIGRATION_LEASE_NAMESPACE } else { lease_namespace };
    let recorded = journals
        .migration
        .as_ref()
        .and_then(|(_, m)| m.cluster.clone())
        .or_else(|| journals.reboots.iter().find_map(|(_, r)| r.cluster.clone()));
    let cluster_run = recorded.is_some() || journals.reboots.iter().any(|(_, r)| r.api_proof) || journals.migration.is_some();
    if !cluster_run {
        return Err(RepairError::NoCluster(journal.to_owned()).into());
    }
    let cluster = ClusterConnection::open(target).await?;
    if let Some(journaled) = recorded
        && !journaled.same_cluster(&cluster.identity)
    {
        return Err(WrongCluster {
            journal: journal.to_owned(),
            journaled: Box::new(journaled),
            given: Box::new(cluster.identity.clone()),
        }
        .into());
    }
    let runs: Vec<&RunState> = journals.reboots.iter().map(|(_, r)| r).collect();
    let plan = fleetboot_core::repair::plan(&runs, journals.migration.as_ref().map(|(_, m)| m), LEASE_NAME, MIGRATION_LEASE_NAME);
    // Every lease first: a run that still holds its lease live may still act; nothing is
    // touched then.
    let (_, host) = crate::adapters::kube::this_process_identity("");
    // Through the command's one client, as everything else repair asks.
    let lease_api = crate::adapters::kube::LeaseApi { client: &cluster.client, server: cluster.server() };
    let mut releases = Vec::new();
    for (lease, run_id) in &plan.leases {
        let seen = crate::adapters::kube::read_lease(lease_api, lease_namespace, lease).await?;
        let gone = seen
            .as_ref()
            .is_some_and(|(holder, _)| crate::adapters::kube::holder_is_dead_process(holder, &host, crate::adapters::kube::process_alive));
        match fleetboot_core::repair::judge_lease(seen.as_ref().map(|(h, _)| h.as_str()), run_id, seen.as_ref().is_some_and(|s| s.1), gone)
        {
            LeaseVerdict::NotOurs => {}
            LeaseVerdict::Release => releases.push((lease.clone(), run_id.clone())),
            LeaseVerdict::StillLive { holder } => {
                return Err(
                    RepairError::StillLive { journal: journal.to_owned(), lease: format!("{lease_namespace}/{lease}"), holder }.into()
                );
            }
        }
    }
    let mut actions = Vec::new();
    let planned = |action, target: &str| RepairAction { action, target: target.to_owned(), result: "planned", detail: None };
    let outcome = |action, target: &str, result: Result<&'static str, String>| match result {
        Ok(result) => RepairAction { action, target: target.to_owned(), result, detail: None },
        Err(e) => RepairAction { action, target: target.to_owned(), result: "failed", detail: Some(e) },
    };
    // Nodes still annotated in flight by one of these runs, as the cluster says now.
    let annotated = annotated_nodes(&cluster.client, &plan.in_progress_runs).await?;
    if dry_run {
        actions.extend(annotated.iter().map(|(n, _)| planned("remove-annotation", n)));
        actions.extend(plan.uncordon.iter().map(|n| planned("uncordon", n)));
        actions.extend(releases.iter().map(|(l, _)| planned("release-lease", &format!("{lease_namespace}/{l}"))));
        actions.extend(plan.unpause.iter().map(|p| planned("unpause-pool", p)));
        for (_, run) in &journals.reboots {
            actions.extend(run.debug_pods.iter().map(|d| planned("delete-debug-pod", &format!("{}/{}", d.namespace, d.pod))));
        }
        return Ok(RepairReport { journal: journal.to_owned(), cluster: cluster.identity.to_string(), dry_run, plan, actions });
    }
    let policy = fleetboot_core::nodes::DrainPolicy { timeout_ms: 0, on_failure: fleetboot_core::nodes::DrainFailure::Fail };
    let drainer = crate::adapters::kube::Drainer::new(&cluster, policy);
    for (node, run_id) in &annotated {
        actions.push(outcome("remove-annotation", node, remove_in_progress(&cluster.client, node, run_id).await));
    }
    for node in &plan.uncordon {
        let (result, left) = match drainer.set_unschedulable(node, false).await {
            Ok(patched) => (Ok("done"), patched.left_cordoned),
            Err(e) => (Err(e.to_string()), None),
        };
        if result.is_ok() {
            // Journaled in the run's journal that cordoned it: a resume (or another repair)
            // then knows it is not fleetboot's to lift any more, lifted or left as someone
            // else's (a cordon found there again after a lost answer).
            for (path, run) in &journals.reboots {
                if run.records.get(node).is_some_and(|r| r.cordoned) {
                    append(path, Entry::Uncordoned { host: node.clone() })?;
                }
            }
        }
        match left {
            Some(why) => actions.push(RepairAction { action: "uncordon", target: node.clone(), result: "left", detail: Some(why) }),
            None => actions.push(outcome("uncordon", node, result)),
        }
    }
    // Debug pods the journal says were created and never deleted (the kube transport's, after
    // a kill): deleted, and the deletion journaled.
    for (path, run) in &journals.reboots {
        let (deleted, failed) = crate::adapters::kube::debug_pod::delete_leftovers(&cluster.client, &run.debug_pods).await;
        for pod in deleted {
            let target = format!("{}/{}", pod.namespace, pod.pod);
            append(path, Entry::DebugPodDeleted { host: pod.host, namespace: pod.namespace, pod: pod.pod })?;
            actions.push(outcome("delete-debug-pod", &target, Ok("done")));
        }
        for (pod, error) in failed {
            actions.push(outcome("delete-debug-pod", &format!("{}/{}", pod.namespace, pod.pod), Err(error.to_string())));
        }
    }
    for (lease, run_id) in &releases {
        let result = crate::adapters::kube::release_lease(lease_api, lease_namespace, lease, |holder| {
            fleetboot_core::repair::held_by_run(holder, run_id)
        })
        .await
        .map(|released| match released {
            crate::adapters::kube::Released::Released { .. } => "done",
            _ => "left",
        })
        .map_err(|e| e.to_string());
        actions.push(outcome("release-lease", &format!("{lease_namespace}/{lease}"), result));
    }
    let pools = crate::adapters::kube::api_resource("machineconfiguration.openshift.io", "v1", "MachineConfigPool", "machineconfigpools");
    let pools_api: kube::Api<kube::api::DynamicObject> = kube::Api::all_with(cluster.client.clone(), &pools);
    for pool in &plan.unpause {
        let patch = kube::api::Patch::Merge(serde_json::json!({"spec": {"paused": false}}));
        let result = pools_api.patch(pool, &kube::api::PatchParams::default(), &patch).await.map(|_| "done").map_err(|e| e.to_string());
        actions.push(outcome("unpause-pool", pool, result));
    }
    // What was done, in the migration's journal too (a resume of it sees the pools unpaused).
    if let Some((path, _)) = &journals.migration {
        let done: Vec<String> = actions.iter().filter(|a| a.result == "done").map(|a| format!("{} {}", a.action, a.target)).collect();
        if !done.is_empty() {
            drop(journals._locks);
            let mut writer = migration_journal::MigrationWriter::open(path).map_err(RepairError::from)?;
            writer
                .append(MigrationEntry::Warning { message: format!("fleetboot repair: {}", done.join(", ")) })
                .map_err(RepairError::from)?;
        }
    }
    Ok(RepairReport { journal: journal.to_owned(), cluster: cluster.identity.to_string(), dry_run, plan, actions })
}

/// The nodes whose `fleetboot.io/reboot-in-progress` names one of `runs`, with that run.
async fn annotated_nodes(client: &kube::Client, runs: &[String]) -> Result<Vec<(String, String)>, Error> {
    if runs.is_empty() {
        return Ok(Vec::new());
    }
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    let list = nodes.list(&kube::api::ListParams::default()).await.map_err(RepairError::Api)?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|node| {
            let run = node.metadata.annotations.as_ref()?.get(IN_PROGRESS_ANNOTATION)?.clone();
            runs.contains(&run).then(|| (node.metadata.name.unwrap_or_default(), run))
        })
        .collect())
}

/// Removes the annotation if it still names `run_id`: read, checked, and written back with
/// the resourceVersion read (a conflict means the node changed meanwhile: left alone, as a
/// run that annotated it since keeps its own).
async fn remove_in_progress(client: &kube::Client, node: &str, run_id: &str) -> Result<&'static str, String> {
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    let mut object = nodes.get(node).await.map_err(|e| e.to_string())?;
    let annotations = object.metadata.annotations.get_or_insert_with(Default::default);
    if annotations.get(IN_PROGRESS_ANNOTATION).map(String::as_str) != Some(run_id) {
        return Ok("left");
    }
    annotations.remove(IN_PROGRESS_ANNOTATION);
    match nodes.replace(node, &kube::api::PostParams::default(), &object).await {
        Ok(_) => Ok("done"),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok("left"),
        Err(e) => Err(e.to_string()),
    }
}

/// Appends one record to a reboot journal this process holds the lock of.
fn append(path: &Path, entry: Entry) -> Result<(), Error> {
    let mut writer = JournalWriter::reopen(path)?;
    writer.append(&Record { v: JOURNAL_VERSION, at_ms: crate::adapters::system::now_ms(), entry })?;
    Ok(())
}
