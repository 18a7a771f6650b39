//! The migrations of this cluster under the state directory: where they live, which one is
//! unfinished.

use super::*;

pub(super) fn migrations_root(settings: &Settings) -> PathBuf {
    settings.state_dir().join("migrations")
}

/// The migrations of *this* cluster under the state directory, oldest first, each with its
/// folded journal: another cluster's (another context of the same kubeconfig) are none of
/// this command's business. A journal without its start (empty, or cut by a kill right after
/// it was created) is no migration yet: it belongs to no cluster. A journal that cannot be
/// read is an error naming it, never passed over.
pub(super) fn migrations_of(
    root: &Path,
    cluster: &fleetboot_core::journal::ClusterIdentity,
) -> Result<Vec<(PathBuf, MigrationState)>, MigrateError> {
    let unreadable = |path: PathBuf, source: std::io::Error| MigrateError::UnreadableMigration {
        root: root.to_owned(),
        source: MigrationJournalError::Read { path, source },
    };
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(unreadable(root.to_owned(), e)),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let dir = entry.map_err(|e| unreadable(root.to_owned(), e))?.path();
        // Whatever stands at a journal's place (a link too) is looked at, so it is reported.
        if dir.join("migration.jsonl").symlink_metadata().is_ok() {
            dirs.push(dir);
        }
    }
    dirs.sort();
    let mut found = Vec::new();
    for dir in dirs {
        let (_, state) = migration_journal::load(&dir.join("migration.jsonl"))
            .map_err(|source| MigrateError::UnreadableMigration { root: root.to_owned(), source })?;
        if !state.run_id.is_empty() && state.cluster.as_ref().is_none_or(|journaled| journaled.same_cluster(cluster)) {
            found.push((dir, state));
        }
    }
    Ok(found)
}

/// The newest unfinished migration of *this* cluster under the state directory.
pub(super) fn migration_in_progress(
    root: &Path,
    cluster: &fleetboot_core::journal::ClusterIdentity,
) -> Result<Option<PathBuf>, MigrateError> {
    Ok(migrations_of(root, cluster)?.into_iter().rev().find(|(_, state)| !state.is_over()).map(|(dir, _)| dir))
}
