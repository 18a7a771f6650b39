//! The journal file: append-only, one JSON line per transition, each fsynced before the action
//! that depends on it; and loading it back for `--resume`. The records and their pure fold are
//! `fleetboot_core::journal`, re-exported here.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub use fleetboot_core::journal::*;

pub fn load(path: &Path) -> Result<(Vec<Record>, RunState), JournalError> {
    let text = std::fs::read_to_string(path).map_err(|e| JournalError::Unreadable { path: path.to_owned(), reason: e.to_string() })?;
    let records = parse(&text, path)?;
    let state = fold(&records, path)?;
    Ok((records, state))
}

/// The append side. Every record is written whole and fsynced before `append` returns.
#[derive(Debug)]
pub struct JournalWriter {
    path: PathBuf,
    file: File,
}

impl JournalWriter {
    pub fn create(path: &Path) -> Result<JournalWriter, JournalError> {
        let write_error = |e: std::io::Error| JournalError::Write { path: path.to_owned(), reason: e.to_string() };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(write_error)?;
        }
        let file = OpenOptions::new().create_new(true).append(true).open(path).map_err(write_error)?;
        Ok(JournalWriter { path: path.to_owned(), file })
    }

    /// Reopens a journal for a resume. A torn last line (a kill mid-write) is cut off first,
    /// so the next record starts on a line of its own.
    pub fn reopen(path: &Path) -> Result<JournalWriter, JournalError> {
        let write_error = |e: std::io::Error| JournalError::Write { path: path.to_owned(), reason: e.to_string() };
        let text = std::fs::read(path).map_err(write_error)?;
        let keep = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let file = OpenOptions::new().append(true).open(path).map_err(write_error)?;
        if keep < text.len() {
            file.set_len(keep as u64).map_err(write_error)?;
        }
        Ok(JournalWriter { path: path.to_owned(), file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append(&mut self, record: &Record) -> Result<(), JournalError> {
        let mut line = serde_json::to_vec(record).expect("records serialize");
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| JournalError::Write { path: self.path.clone(), reason: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetboot_core::hosts::Host;

    fn rec(at_ms: u64, entry: Entry) -> Record {
        Record { v: JOURNAL_VERSION, at_ms, entry }
    }

    fn start(names: &[&str]) -> Record {
        let hosts = names.iter().map(|n| Host { name: (*n).into(), address: "127.0.0.1".into(), port: None }).collect();
        let entry = Entry::RunStarted {
            run_id: "r".into(),
            command: "sudo shutdown -r -t 3".into(),
            hosts,
            api_proof: false,
            grouping: None,
            drain: None,
            settings: None,
        };
        rec(0, entry)
    }

    #[test]
    fn writer_appends_and_reopen_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/run.jsonl");
        let mut w = JournalWriter::create(&path).unwrap();
        w.append(&start(&["a"])).unwrap();
        assert!(JournalWriter::create(&path).is_err(), "never overwrite a journal");
        drop(w);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"v\":1,\"at");
        std::fs::write(&path, &text).unwrap();
        let mut w = JournalWriter::reopen(&path).unwrap();
        w.append(&rec(9, Entry::Down { host: "a".into() })).unwrap();
        let (records, state) = load(&path).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(state.records["a"].phase, Phase::Down);
    }
}
