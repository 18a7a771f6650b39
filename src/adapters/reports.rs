//! The reports' files on disk: the journals they are rendered from are read here, the files
//! written here; what they say is the core's ([`fleetboot_core::migrate::report`],
//! [`fleetboot_core::timeline`]).

use std::path::{Path, PathBuf};

use fleetboot_core::journal::{JournalError, Record, RunState};
use fleetboot_core::migrate::record::MigrationState;

use crate::adapters::migration_journal::{FileError, write_files};

/// A migration's report files, from its fold and the reboot runs' journals it names (a journal
/// that cannot be read leaves its nodes out: the report of a migration is written whatever
/// state its runs are in).
pub fn migration_files(state: &MigrationState, now_ms: u64) -> Vec<(&'static str, String)> {
    let load = |p: &Option<PathBuf>| p.as_ref().and_then(|p| crate::adapters::journal::load(p).ok());
    migration_files_with(state, load(&state.reboot_journal), load(&state.error_nodes_journal), now_ms)
}

/// [`migration_files`] with step 7's and step 10's reboot journals read by the caller (the
/// migration reads them from the cluster when they are kept there, `migrate --journal-in-cluster`).
pub fn migration_files_with(
    state: &MigrationState,
    reboot: Option<(Vec<Record>, RunState)>,
    error_nodes: Option<(Vec<Record>, RunState)>,
    now_ms: u64,
) -> Vec<(&'static str, String)> {
    fleetboot_core::migrate::report::render(state, run(&reboot), run(&error_nodes), now_ms)
}

fn run(loaded: &Option<(Vec<Record>, RunState)>) -> Option<(&[Record], &RunState)> {
    loaded.as_ref().map(|(records, state)| (records.as_slice(), state))
}

/// A reboot run's report files (report.md, report.html, timeline.svg), from its journal.
pub fn run_files(journal: &Path, now_ms: u64) -> Result<Vec<(&'static str, String)>, JournalError> {
    let (records, state) = crate::adapters::journal::load(journal)?;
    Ok(fleetboot_core::migrate::report::render_run(&records, &state, now_ms))
}

/// Why a report of a journal in the cluster could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum ClusterReportError {
    #[error(transparent)]
    Cluster(#[from] crate::adapters::kube::ClusterError),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// A reboot run's report files from its journal in the cluster (`cluster:NAMESPACE/RUN-ID`).
pub async fn cluster_run_files(
    target: &crate::adapters::kube::ClusterTarget,
    place: &crate::adapters::kube::journal_store::JournalPlace,
    now_ms: u64,
) -> Result<Vec<(&'static str, String)>, ClusterReportError> {
    let connection = crate::adapters::kube::ClusterConnection::open(target).await?;
    let loaded = crate::adapters::kube::journal_store::load(&connection.client, place).await?;
    Ok(fleetboot_core::migrate::report::render_run(&loaded.records, &loaded.state, now_ms))
}

/// Writes the files into `dir` (created if missing), each whole or not at all; their paths.
pub fn write(dir: &Path, files: Vec<(&'static str, String)>) -> Result<Vec<PathBuf>, FileError> {
    std::fs::create_dir_all(dir).map_err(|source| FileError { path: dir.to_owned(), source })?;
    write_files(dir, files)
}
