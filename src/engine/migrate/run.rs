//! A migration once it may start: the cluster's health read clean several times in a row
//! before the first change, then the journaled steps under the migration's lease, and the report
//! at the end, whatever the outcome.

use super::*;

/// The cluster's health read clean `stable_checks` times in a row, `poll_interval` apart, before
/// the first change: a cluster that passes one read while an operator flaps is not ready for a
/// migration. Red Hat's `network.offline_migration_sdn_to_ovnk` collection waits the same way
/// (roles/migration: `verify_cluster_operators_health` with `required_success_count: 3`,
/// `pause_between_checks: 30`); fleetboot refuses at the first read that is not clean rather than
/// waiting, as its first read does. Not for a rollback after a failure, whose cluster is expected
/// to be unhealthy.
pub(super) async fn stable_reads(
    cluster: &cluster::Target,
    request: &checks::PreflightRequest<'_>,
    options: &MigrationOptions,
    events: &Events<'_>,
) -> Result<(), MigrateError> {
    let of = options.stable_checks.max(1);
    events.emit(MigrationEvent::MigrationClusterStable { pass: 1, of });
    for pass in 2..=of {
        tokio::time::sleep(options.poll_interval.into()).await;
        let findings = checks::preflight(&cluster.snapshot().await?, request);
        if !findings.refusals.is_empty() {
            let mut refusals = vec![format!(
                "stable: the cluster read healthy {} time(s) in a row, then not (--stable-checks {of}); nothing was changed:",
                pass - 1
            )];
            refusals.extend(findings.refusals);
            return Err(MigrateError::Preflight(refusals));
        }
        events.emit(MigrationEvent::MigrationClusterStable { pass, of });
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn run_under_lease(
    options: &MigrationOptions,
    context: &MigrationContext,
    cluster: &Target,
    dir: &Path,
    at: &StoreAt,
    state: MigrationState,
    start: Start,
    lease: &crate::adapters::kube::LeaseLock,
    events: &Events<'_>,
) -> Result<ExitCode, MigrateError> {
    // Read again now that the journal is held (its lock taken, or in the cluster its fencing
    // token raised): what was read before may be stale (a migration that was still running
    // when this one started).
    let (store, fresh): (Box<dyn migration_journal::MigrationStore>, MigrationState) = match at {
        StoreAt::Dir => {
            let store = migration_journal::DirStore::open(dir)?;
            (Box::new(store), migration_journal::load(&dir.join("migration.jsonl"))?.1)
        }
        StoreAt::Cluster { namespace, id } => {
            let (client, config) = (&cluster.connection.client, &cluster.connection.config);
            let store = migration_journal::ClusterStore::open(client, config, namespace, id, lease.identity()).await?;
            let fresh = migration_journal::load_from_cluster(client, namespace, id).await?.map(|(_, state)| state).unwrap_or_default();
            // Its reports are written to a local directory of its own.
            crate::adapters::system::create_private_dir(dir)
                .map_err(|source| MigrateError::StateFile(migration_journal::FileError { path: dir.to_owned(), source }))?;
            (Box::new(store), fresh)
        }
    };
    let journal_path = store.location();
    let journal_path = journal_path.as_path();
    let mut state = if fresh.run_id.is_empty() { state } else { fresh };
    let store = store.as_ref();
    let mut log = |state: &mut MigrationState, entry: MigrationEntry| -> Result<(), MigrateError> {
        let record = store.append(entry)?;
        state.apply(&record);
        Ok(())
    };
    if state.run_id.is_empty() {
        let run_id = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        log(
            &mut state,
            MigrationEntry::MigrationStarted {
                run_id,
                target: options.to.clone(),
                flow: start.flow,
                version: start.version.clone(),
                failing_pods: start.failing_pods.clone(),
                network_options: start.network_options.clone(),
                mtu: options.mtu,
                geneve_port: options.geneve_port,
                reboot_concurrency: options.reboot_concurrency,
                cluster: Some(cluster.connection.identity.clone()),
            },
        )?;
        events.emit(MigrationEvent::MigrationStarted {
            target: options.to.clone(),
            flow: start.flow,
            reason: start.reason.clone(),
            journal: journal_path.to_owned(),
        });
        for message in &start.warnings {
            events.emit(MigrationEvent::MigrationWarning { message: message.clone() });
            log(&mut state, MigrationEntry::Warning { message: message.clone() })?;
        }
    } else {
        log(&mut state, MigrationEntry::MigrationResumed { pid: std::process::id() })?;
        events.emit(MigrationEvent::MigrationResumed { target: state.target.clone(), flow: start.flow, journal: journal_path.to_owned() });
    }
    // The unfinished migration a rollback takes over: what it left paused is inherited, then
    // its journal is marked superseded (last: a kill before the mark leaves it to be done again
    // by the same command line, never a mark without the inheritance).
    if let Some(old) = &start.supersedes {
        let (previous, old_state) = rollback::previous_journal(cluster, old, lease.identity()).await?;
        if old_state.superseded_by.is_none() {
            let message = format!("rolling back the unfinished migration {}", old.display());
            events.emit(MigrationEvent::MigrationRollingBack { previous: old.clone() });
            log(&mut state, MigrationEntry::Warning { message })?;
            if let Some(inherited) = rollback::inherited_pools(&old_state, old) {
                log(&mut state, inherited)?;
            }
            let by = match at {
                StoreAt::Dir => dir.to_owned(),
                StoreAt::Cluster { .. } => journal_path.to_owned(),
            };
            previous.append(MigrationEntry::Superseded { by })?;
        }
    }
    if let Some(previous) = lease.taken_from.clone() {
        let message = format!("took the migration lease over from {previous}");
        events.emit(MigrationEvent::MigrationWarning { message: message.clone() });
        log(&mut state, MigrationEntry::Warning { message })?;
    }
    let run = Migration {
        options,
        store,
        context,
        cluster,
        dir: dir.to_owned(),
        flow: start.flow,
        events,
        lease_lost: lease.lost(),
        lease_holder: lease.identity().to_owned(),
    };
    let outcome = run.steps(&mut state, &mut log).await;
    // Steps 7 and 10's runs read from wherever they are kept (a journal that cannot be read
    // leaves its nodes out: the report is written whatever state the run is in).
    let reboot = match &state.reboot_journal {
        Some(path) => cluster.journaled_reboot_run(path).await.ok(),
        None => None,
    };
    let error_nodes = match &state.error_nodes_journal {
        Some(path) => cluster.journaled_reboot_run(path).await.ok(),
        None => None,
    };
    let files = crate::adapters::reports::migration_files_with(&state, reboot, error_nodes, crate::adapters::system::now_ms());
    match migration_journal::write_files(dir, files) {
        Ok(files) => events.emit(MigrationEvent::MigrationReportWritten { files }),
        Err(e) => events.emit(MigrationEvent::MigrationReportFailed { error: e.to_string() }),
    }
    if let Ok(code) = &outcome {
        events.emit(MigrationEvent::MigrationFinished { complete: state.is_done(Step::Cleanup), exit_code: *code as u8 });
    }
    outcome
}
