//! The migration journal's file (`migration.jsonl`) and the migration's other files: appended
//! and fsynced record by record under the same one-process lock as a reboot journal
//! ([`crate::adapters::journal::hold`]); the small state files written whole or not at all; the
//! report files. The records and their fold are `fleetboot_core::migrate::record`.

use std::io::Write;
use std::path::{Path, PathBuf};

use fleetboot_core::journal::JournalError;
use fleetboot_core::migrate::record::{self, CorruptLine, MIGRATION_JOURNAL_VERSION, MigrationEntry, MigrationRecord, MigrationState};

#[derive(Debug, thiserror::Error)]
pub enum MigrationJournalError {
    #[error("cannot read migration journal {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("migration journal {} {source}", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: CorruptLine,
    },
    #[error("cannot write migration journal {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the journal (named by pid), or the filesystem cannot lock it.
    #[error(transparent)]
    Lock(JournalError),
}

impl MigrationJournalError {
    /// Held by another live process: refused before anything was touched, not a fault.
    pub fn is_in_use(&self) -> bool {
        matches!(self, MigrationJournalError::Lock(JournalError::Unreadable { .. }))
    }
}

/// Reads and folds a migration journal. A torn last line (a kill mid-write) is dropped.
pub fn load(path: &Path) -> Result<(Vec<MigrationRecord>, MigrationState), MigrationJournalError> {
    let text =
        crate::adapters::system::read_regular_text(path).map_err(|source| MigrationJournalError::Read { path: path.to_owned(), source })?;
    record::parse(&text).map_err(|source| MigrationJournalError::Corrupt { path: path.to_owned(), source })
}

/// Takes the migration journal's lock alone (it must exist), before anything else is done,
/// so a second process is refused, naming the holder's pid, before it takes anything over.
pub fn hold(path: &Path) -> Result<crate::adapters::journal::JournalLock, MigrationJournalError> {
    crate::adapters::journal::hold(path).map_err(MigrationJournalError::Lock)
}

/// Appends records, each fsynced before the next action. Holds the journal's lock for as long
/// as it lives: one process per migration journal.
pub struct MigrationWriter {
    path: PathBuf,
    file: std::fs::File,
    _lock: crate::adapters::journal::JournalLock,
}

impl MigrationWriter {
    /// Opens (or creates: mode 0600 in 0700 directories, file and directory fsynced) the
    /// journal and takes its lock. A torn last line (a kill mid-write) is cut off first, so the
    /// next record starts on a line of its own instead of gluing itself to the torn one.
    pub fn open(path: &Path) -> Result<MigrationWriter, MigrationJournalError> {
        let error = |source: std::io::Error| MigrationJournalError::Write { path: path.to_owned(), source };
        if !path.exists() {
            drop(crate::adapters::system::create_private_file(path).map_err(error)?);
        }
        let lock = hold(path)?;
        let text = crate::adapters::system::read_regular(path).map_err(error)?;
        let keep = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let file = crate::adapters::system::open_regular(path, std::fs::OpenOptions::new().append(true)).map_err(error)?;
        if keep < text.len() {
            file.set_len(keep as u64).map_err(error)?;
            file.sync_data().map_err(error)?;
        }
        Ok(MigrationWriter { path: path.to_owned(), file, _lock: lock })
    }

    pub fn append(&mut self, entry: MigrationEntry) -> Result<MigrationRecord, MigrationJournalError> {
        let record = MigrationRecord { v: MIGRATION_JOURNAL_VERSION, at_ms: crate::adapters::system::now_ms(), entry };
        let mut line = serde_json::to_string(&record).expect("records serialize");
        line.push('\n');
        let error = |source: std::io::Error| MigrationJournalError::Write { path: self.path.clone(), source };
        self.file.write_all(line.as_bytes()).map_err(error)?;
        self.file.sync_data().map_err(error)?;
        Ok(record)
    }
}

/// A migration file that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source}", path.display())]
pub struct FileError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Writes a small state file whole or not at all, owner-only (temp file, fsync, rename, fsync
/// the directory).
pub fn write_atomically(path: &Path, text: &str) -> Result<(), FileError> {
    crate::adapters::system::write_private_atomically(path, text.as_bytes()).map_err(|source| FileError { path: path.to_owned(), source })
}

/// Writes the report's files (name, text) into the migration's directory, owner-only, each
/// whole or not at all; their paths.
pub fn write_files(dir: &Path, files: Vec<(&'static str, String)>) -> Result<Vec<PathBuf>, FileError> {
    let mut written = Vec::new();
    for (name, text) in files {
        let path = dir.join(name);
        write_atomically(&path, &text)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetboot_core::migrate::Step;

    #[test]
    fn a_writer_cuts_a_torn_tail_so_the_next_record_stands_on_its_own_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m/migration.jsonl");
        let mut writer = MigrationWriter::open(&path).unwrap();
        writer.append(MigrationEntry::StepStarted { step: Step::Backup }).unwrap();
        drop(writer);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"v\":1,\"at_ms\":");
        std::fs::write(&path, text).unwrap();
        let mut writer = MigrationWriter::open(&path).unwrap();
        writer.append(MigrationEntry::StepStarted { step: Step::Backup }).unwrap();
        drop(writer);
        let (records, _) = load(&path).unwrap();
        assert_eq!(records.len(), 2, "the torn record is gone and the next one is whole");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_corruption_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        let mut writer = MigrationWriter::open(&path).unwrap();
        writer.append(MigrationEntry::StepDone { step: Step::Backup, detail: "x".into() }).unwrap();
        drop(writer);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"v\":1,\"at_ms\":3,\"event\":\"step_d");
        std::fs::write(&path, &text).unwrap();
        let (records, state) = load(&path).unwrap();
        assert_eq!(records.len(), 1);
        assert!(state.is_done(Step::Backup));
        std::fs::write(&path, format!("garbage\n{text}\n")).unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("line 1"));
    }
}
