//! The journal file: append-only, one JSON line per transition, each fsynced before the action
//! that depends on it; and loading it back for `--resume`. The records and their pure fold are
//! `fleetboot_core::journal`, re-exported here.
//!
//! One process per journal: a writer holds an exclusive `flock(2)` on the journal file itself
//! for as long as it (or another writer of the same journal in the same process) lives; the
//! kernel drops it when the process dies, even by `kill -9`. A second process is refused,
//! naming the holder's pid as `/proc/locks` shows it (no sidecar file to go stale).
//!
//! Durability: a new journal is created mode 0600 in a private (0700) directory, and the file
//! and its directory are fsynced before the first record; every record is fsynced. A journal
//! that holds no complete record (a kill right after its creation) means nothing happened:
//! [`load`] refuses it with that explanation, and [`JournalWriter::create`] may take it over.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};

use fleetboot_core::journal::{Entry, JournalError, Record, RunState, fold, parse};

/// What [`load`] and `--resume` say about a journal without a single complete record.
pub const EMPTY_JOURNAL: &str = "it holds no record: the run that created it was stopped before it recorded anything, \
     so nothing was done to any host; start the run again without --resume (this file may be deleted)";

pub fn load(path: &Path) -> Result<(Vec<Record>, RunState), JournalError> {
    let text = crate::adapters::system::read_regular_text(path)
        .map_err(|e| JournalError::Unreadable { path: path.to_owned(), reason: e.to_string() })?;
    let records = parse(&text, path)?;
    if records.is_empty() {
        return Err(JournalError::Unreadable { path: path.to_owned(), reason: EMPTY_JOURNAL.into() });
    }
    let state = fold(&records, path)?;
    Ok((records, state))
}

/// Whether a journal's run is a cluster run, and which cluster's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunStart {
    pub api_proof: bool,
    pub cluster: Option<fleetboot_core::journal::ClusterIdentity>,
}

/// The journal's first record, `run_started`, read alone: what a run was started as (whether
/// it is a cluster run, its cluster) never changes after it, so this needs neither the lock
/// nor the rest of the file.
pub fn read_start(path: &Path) -> Result<RunStart, JournalError> {
    use std::io::BufRead;
    let file = crate::adapters::system::open_regular(path, OpenOptions::new().read(true))
        .map_err(|e| JournalError::Unreadable { path: path.to_owned(), reason: e.to_string() })?;
    let mut first = String::new();
    std::io::BufReader::new(file)
        .read_line(&mut first)
        .map_err(|e| JournalError::Unreadable { path: path.to_owned(), reason: e.to_string() })?;
    let records = parse(&first, path)?;
    match records.into_iter().next() {
        None => Err(JournalError::Unreadable { path: path.to_owned(), reason: EMPTY_JOURNAL.into() }),
        Some(Record { entry: Entry::RunStarted { api_proof, cluster, .. }, .. }) => {
            Ok(RunStart { api_proof, cluster: cluster.map(|c| *c) })
        }
        Some(_) => Err(JournalError::NoStart { path: path.to_owned() }),
    }
}

/// Whether the journal at `path` exists and holds at least one complete record: a run was
/// started in it. An empty file (or a torn first line) is "nothing happened yet".
pub fn is_started(path: &Path) -> bool {
    crate::adapters::system::read_regular(path).is_ok_and(|bytes| bytes.contains(&b'\n'))
}

/// The journals this process holds, by (device, inode): a second writer of the same journal
/// in the same process shares the locked file instead of contending with itself.
type Held = HashMap<(u64, u64), Weak<File>>;
static HELD: Mutex<Option<Held>> = Mutex::new(None);

/// Where a journal's records go other than a local file (the journal in the cluster,
/// `adapters::kube::journal_store`): `append` returns once the record is durable there, or
/// fails (and then nothing further may happen).
pub trait JournalBackend: Send + std::fmt::Debug {
    fn append(&mut self, record: &Record) -> Result<(), JournalError>;
}

/// The append side. Every record is written whole and fsynced (or acknowledged by its
/// backend) before `append` returns.
#[derive(Debug)]
pub struct JournalWriter {
    path: PathBuf,
    sink: Sink,
}

#[derive(Debug)]
enum Sink {
    /// Opened for appending; it carries the exclusive lock.
    File(Arc<File>, Arc<GroupSync>),
    Backend(Box<dyn JournalBackend>),
}

/// Group commit: records written (in order, under the writer's `&mut`) and waiting for their
/// fsync at the same moment share one `fdatasync`, which makes every earlier write durable too.
/// Each waiter still returns only once its own record is durable: "journaled before the action".
#[derive(Debug, Default)]
struct GroupSync {
    state: Mutex<SyncState>,
    /// Wakes the waiters blocked in [`Pending::wait`] when an fsync ends.
    done: Condvar,
    /// Wakes the tasks awaiting [`Pending::wait_async`] when an fsync ends.
    done_async: tokio::sync::Notify,
    /// How many fsyncs were issued (the group-commit test counts them; never timed).
    syncs: AtomicUsize,
}

#[derive(Debug, Default)]
struct SyncState {
    /// Records written to the file, and how many of them a finished fsync covers.
    written: u64,
    synced: u64,
    /// One waiter is in `fdatasync` now; the others wait for it, then for the next one.
    syncing: bool,
    /// A failed fsync: nothing after it is known durable, so every later record fails too.
    failed: Option<String>,
}

/// A record written but maybe not yet durable: [`Pending::wait`] returns once it is.
#[must_use = "a record is journaled only once wait() returns Ok"]
#[derive(Debug)]
pub struct Pending {
    file: Option<(Arc<File>, Arc<GroupSync>, u64, PathBuf)>,
}

impl GroupSync {
    /// One `fdatasync` covering every record written up to `target` (the caller set `syncing`),
    /// then the state updated and every waiter woken, blocked or awaiting.
    fn sync(&self, file: &File, target: u64) {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        let result = file.sync_data();
        let mut state = self.state.lock().unwrap();
        state.syncing = false;
        match result {
            Ok(()) => state.synced = state.synced.max(target),
            Err(e) => state.failed = Some(e.to_string()),
        }
        self.wake_all();
    }

    /// Every waiter looks at the state again, blocked or awaiting.
    fn wake_all(&self) {
        self.done.notify_all();
        self.done_async.notify_waiters();
    }
}

/// What a waiter does next, read under the state's lock.
enum Next {
    Durable,
    Failed(String),
    /// Another waiter's fsync is under way: wait for it to end.
    Wait,
    /// Nobody is syncing: this waiter issues the fsync covering everything up to the target.
    Sync(u64),
}

impl SyncState {
    fn next(&mut self, seq: u64) -> Next {
        if self.synced >= seq {
            Next::Durable
        } else if let Some(reason) = &self.failed {
            Next::Failed(reason.clone())
        } else if self.syncing {
            Next::Wait
        } else {
            // Everything written so far is in the page cache: this fsync covers all of it.
            self.syncing = true;
            Next::Sync(self.written)
        }
    }
}

impl Pending {
    /// Waits until the record is durable: joins an fsync that starts after the record was
    /// written, or issues one itself. Never returns Ok before an fsync covering the record ended.
    pub fn wait(self) -> Result<(), JournalError> {
        let Some((file, group, seq, path)) = self.file else { return Ok(()) };
        let mut state = group.state.lock().unwrap();
        loop {
            match state.next(seq) {
                Next::Durable => return Ok(()),
                Next::Failed(reason) => return Err(JournalError::Write { path, reason }),
                Next::Wait => state = group.done.wait(state).unwrap(),
                Next::Sync(target) => {
                    drop(state);
                    group.sync(&file, target);
                    state = group.state.lock().unwrap();
                }
            }
        }
    }

    /// [`wait`](Self::wait) for a task: the same group commit, but a waiter awaits the fsync
    /// under way instead of holding a thread, and the one that issues it does so on the
    /// blocking pool. A thousand hosts appending at once so cost one blocking thread, not a
    /// thread each (a worker handed over to blocking per append: 507 threads at 5000/500). A
    /// current-thread runtime (the runner's tests on the paused clock) waits in place, as
    /// [`wait`](Self::wait) does.
    pub async fn wait_async(self) -> Result<(), JournalError> {
        let multi_thread = crate::adapters::system::on_multi_thread_runtime();
        let Some((file, group, seq, path)) = self.file.as_ref().filter(|_| multi_thread).cloned() else {
            return self.wait();
        };
        loop {
            // Registered before the state is read: an fsync ending after the read wakes it.
            let woken = group.done_async.notified();
            let next = group.state.lock().unwrap().next(seq);
            match next {
                Next::Durable => return Ok(()),
                Next::Failed(reason) => return Err(JournalError::Write { path, reason }),
                Next::Wait => woken.await,
                Next::Sync(target) => {
                    // The fsync and the state's update in one blocking task: a waiter dropped
                    // meanwhile (its host task aborted) cannot leave `syncing` set.
                    let (file, syncing) = (file.clone(), group.clone());
                    if let Err(e) = tokio::task::spawn_blocking(move || syncing.sync(&file, target)).await
                        && e.is_cancelled()
                    {
                        // Never ran (the runtime is shutting down): nobody syncs, say so.
                        group.state.lock().unwrap().syncing = false;
                        group.wake_all();
                        return Err(JournalError::Write { path, reason: "the runtime shut down before the fsync".into() });
                    }
                }
            }
        }
    }
}

fn write_error(path: &Path) -> impl Fn(std::io::Error) -> JournalError + '_ {
    move |e| JournalError::Write { path: path.to_owned(), reason: e.to_string() }
}

/// Takes the exclusive lock of `file` (the journal at `path`) for this process, or says who
/// holds it. The caller holds `HELD`.
fn lock(path: &Path, file: File, held: &mut Held) -> Result<Arc<File>, JournalError> {
    let meta = file.metadata().map_err(write_error(path))?;
    let key = (meta.dev(), meta.ino());
    if let Some(shared) = held.get(&key).and_then(Weak::upgrade) {
        return Ok(shared);
    }
    // SAFETY: flock on a file descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
            let holder = lock_holder(meta.dev(), meta.ino()).map_or_else(|| "another process".to_owned(), |pid| format!("process {pid}"));
            return Err(JournalError::Unreadable {
                path: path.to_owned(),
                reason: format!("it is in use by {holder} (one fleetboot per journal): wait for that run to end, or stop it, then resume"),
            });
        }
        return Err(JournalError::Write {
            path: path.to_owned(),
            reason: format!(
                "cannot lock it ({error}): one process per journal cannot be ensured on this filesystem; \
                 put the journal on a local one (--journal or --state-dir)"
            ),
        });
    }
    let file = Arc::new(file);
    held.retain(|_, weak| weak.strong_count() > 0);
    held.insert(key, Arc::downgrade(&file));
    Ok(file)
}

/// The pid holding a `flock` on the file (device, inode), from `/proc/locks`
/// (`1: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE 0 EOF`, major and minor in hex).
fn lock_holder(dev: u64, ino: u64) -> Option<u32> {
    let text = std::fs::read_to_string("/proc/locks").ok()?;
    let (major, minor) = (libc::major(dev) as u64, libc::minor(dev) as u64);
    let mut by_inode = None;
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // "->" marks a waiter, not a holder.
        if fields.len() < 6 || fields[1] != "FLOCK" || fields.contains(&"->") {
            continue;
        }
        let mut parts = fields[5].split(':');
        let (Some(maj), Some(min), Some(inode)) = (parts.next(), parts.next(), parts.next()) else { continue };
        if inode.parse::<u64>().ok() != Some(ino) {
            continue;
        }
        let Ok(pid) = fields[4].parse::<u32>() else { continue };
        if u64::from_str_radix(maj, 16).ok() == Some(major) && u64::from_str_radix(min, 16).ok() == Some(minor) {
            return Some(pid);
        }
        // Overlay filesystems may report another device for the same file.
        by_inode.get_or_insert(pid);
    }
    by_inode
}

/// The exclusive lock of any journal-like file (the migration's `migration.jsonl` too), held
/// until dropped; the same rules as a [`JournalWriter`]'s: shared within this process, refused
/// to another one naming its pid.
#[derive(Debug)]
pub struct JournalLock {
    _file: Arc<File>,
}

/// Takes the exclusive lock of the existing file at `path`; see [`JournalLock`].
pub fn hold(path: &Path) -> Result<JournalLock, JournalError> {
    let mut held = HELD.lock().unwrap();
    let held = held.get_or_insert_with(HashMap::new);
    let file = open_existing(path).map_err(open_error(path))?;
    Ok(JournalLock { _file: lock(path, file, held)? })
}

/// A journal that cannot be opened: a link or a file that is not a regular one is bad input
/// (named, nothing touched); anything else a failure to write.
fn open_error(path: &Path) -> impl Fn(std::io::Error) -> JournalError + '_ {
    move |e| match e.kind() {
        std::io::ErrorKind::InvalidInput => JournalError::Unreadable { path: path.to_owned(), reason: e.to_string() },
        _ => JournalError::Write { path: path.to_owned(), reason: e.to_string() },
    }
}

/// An existing journal, for appending: never through a symbolic link, and a regular file.
fn open_existing(path: &Path) -> std::io::Result<File> {
    crate::adapters::system::open_regular(path, OpenOptions::new().read(true).append(true))
}

/// A journal written by an older fleetboot (or copied in) is made owner-only on reopen; a file
/// fleetboot does not own keeps its mode (the journal is still usable).
fn owner_only(file: &File) {
    use std::os::unix::fs::PermissionsExt;
    if file.metadata().is_ok_and(|m| m.permissions().mode() & 0o077 != 0) {
        let _ = file.set_permissions(std::fs::Permissions::from_mode(0o600));
    }
}

impl JournalWriter {
    /// Creates a new journal, locked. An existing journal is never overwritten, except one that
    /// holds no record at all (a kill right after its creation): nothing happened in it.
    pub fn create(path: &Path) -> Result<JournalWriter, JournalError> {
        let mut held = HELD.lock().unwrap();
        let held = held.get_or_insert_with(HashMap::new);
        match crate::adapters::system::create_private_file(path) {
            Ok(file) => {
                let file = lock(path, file, held)?;
                Ok(JournalWriter { path: path.to_owned(), sink: Sink::File(file, Arc::default()) })
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let file = open_existing(path).map_err(open_error(path))?;
                let file = lock(path, file, held)?;
                owner_only(&file);
                // No complete record (empty, or a first line torn by a kill): nothing happened.
                let text = crate::adapters::system::read_regular(path).map_err(write_error(path))?;
                if text.contains(&b'\n') {
                    return Err(JournalError::Write {
                        path: path.to_owned(),
                        reason: "a journal already exists there; it is never overwritten".into(),
                    });
                }
                if !text.is_empty() {
                    file.set_len(0).and_then(|()| file.sync_all()).map_err(write_error(path))?;
                }
                Ok(JournalWriter { path: path.to_owned(), sink: Sink::File(file, Arc::default()) })
            }
            Err(e) => Err(write_error(path)(e)),
        }
    }

    /// Reopens a journal for a resume, locked. A torn last line (a kill mid-write) is cut off
    /// first, so the next record starts on a line of its own.
    pub fn reopen(path: &Path) -> Result<JournalWriter, JournalError> {
        let mut held = HELD.lock().unwrap();
        let held = held.get_or_insert_with(HashMap::new);
        let file = open_existing(path).map_err(open_error(path))?;
        let file = lock(path, file, held)?;
        owner_only(&file);
        // Read only once the lock is held: nobody else is writing now.
        let text = crate::adapters::system::read_regular(path).map_err(write_error(path))?;
        let keep = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if keep < text.len() {
            file.set_len(keep as u64).and_then(|()| file.sync_all()).map_err(write_error(path))?;
        }
        Ok(JournalWriter { path: path.to_owned(), sink: Sink::File(file, Arc::default()) })
    }

    /// A journal kept by `backend`, shown as `location` (events, the summary's resume hint).
    pub fn with_backend(location: PathBuf, backend: Box<dyn JournalBackend>) -> JournalWriter {
        JournalWriter { path: location, sink: Sink::Backend(backend) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether [`write`](Self::write) leaves the record to a [`Pending`] fsync (a local file),
    /// rather than doing the whole append itself (a backend: the cluster's journal).
    pub fn is_local_file(&self) -> bool {
        matches!(self.sink, Sink::File(..))
    }

    /// Writes `record` and waits until it is durable.
    pub fn append(&mut self, record: &Record) -> Result<(), JournalError> {
        self.write(record)?.wait()
    }

    /// Writes `record` after every earlier one; it is durable once the returned [`Pending`]'s
    /// `wait` returns Ok. The wait needs no `&mut`: callers that share a writer behind a lock
    /// release it before waiting, so appends waiting at the same time share one fsync.
    pub fn write(&mut self, record: &Record) -> Result<Pending, JournalError> {
        match &mut self.sink {
            Sink::File(file, group) => {
                let mut line = serde_json::to_vec(record).expect("records serialize");
                line.push(b'\n');
                let mut state = group.state.lock().unwrap();
                if let Some(reason) = &state.failed {
                    return Err(JournalError::Write { path: self.path.clone(), reason: reason.clone() });
                }
                // Written under the state's lock, so `written` counts exactly what an fsync
                // started after it covers.
                (&**file).write_all(&line).map_err(write_error(&self.path))?;
                state.written += 1;
                Ok(Pending { file: Some((file.clone(), group.clone(), state.written, self.path.clone())) })
            }
            Sink::Backend(backend) => backend.append(record).map(|()| Pending { file: None }),
        }
    }

    /// How many of the records written so far a finished fsync covers (tests: a record is
    /// durable once this reaches its place).
    #[cfg(test)]
    pub(crate) fn durable_records(&self) -> u64 {
        match &self.sink {
            Sink::File(_, group) => group.state.lock().unwrap().synced,
            Sink::Backend(_) => 0,
        }
    }

    /// How many fsyncs this writer issued (tests of group commit).
    #[cfg(test)]
    fn syncs(&self) -> usize {
        match &self.sink {
            Sink::File(_, group) => group.syncs.load(Ordering::Relaxed),
            Sink::Backend(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetboot_core::hosts::Host;
    use fleetboot_core::journal::{JOURNAL_VERSION, Phase};

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
            cluster: None,
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

    #[test]
    fn an_empty_journal_means_nothing_happened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/run.jsonl");
        drop(JournalWriter::create(&path).unwrap());
        assert!(!is_started(&path));
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("nothing was done") && err.contains("without --resume"), "{err}");
        // A torn first line is no record either.
        std::fs::write(&path, "{\"v\":1,").unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("nothing was done"));
        std::fs::write(&path, "").unwrap();
        // The run may simply be started again in the same file.
        let mut w = JournalWriter::create(&path).unwrap();
        w.append(&start(&["a"])).unwrap();
        assert!(is_started(&path));
        assert_eq!(load(&path).unwrap().0.len(), 1);
    }

    #[test]
    fn journals_are_private_and_a_writer_in_this_process_shares_its_lock() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/sub/run.jsonl");
        let mut w = JournalWriter::create(&path).unwrap();
        w.append(&start(&["a"])).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&path), mode(&dir.path().join("state")), mode(&dir.path().join("state/sub"))), (0o600, 0o700, 0o700));
        // Another holder in this process (the migration around its step 7) shares the lock.
        let held = hold(&path).unwrap();
        // The runner reopens the journal at the end of a run while its writer still lives.
        let mut again = JournalWriter::reopen(&path).unwrap();
        again.append(&rec(1, Entry::Down { host: "a".into() })).unwrap();
        drop((w, again, held));
        assert_eq!(load(&path).unwrap().0.len(), 2);
        // A journal readable by others (an older fleetboot's) is made owner-only on resume.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(JournalWriter::reopen(&path).unwrap());
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn concurrent_appends_share_fsyncs_and_each_returns_durable_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.jsonl");
        let writer = Arc::new(Mutex::new(JournalWriter::create(&path).unwrap()));
        writer.lock().unwrap().append(&start(&["a"])).unwrap();
        let (threads, each) = (8u64, 50u64);
        // Each round every thread writes its record, then all wait together: a count, not a
        // race, shows the sharing (one fsync per round covers the round's records).
        let gate = Arc::new(std::sync::Barrier::new(threads as usize));
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (writer, gate, path) = (writer.clone(), gate.clone(), path.clone());
                std::thread::spawn(move || {
                    for i in 0..each {
                        let at_ms = 1 + t * 1000 + i;
                        let pending = writer.lock().unwrap().write(&rec(at_ms, Entry::Down { host: "a".into() })).unwrap();
                        gate.wait();
                        pending.wait().unwrap();
                        // Durable on return: the record is in the file (a read sees what the
                        // fsync covered; the count below proves the sharing).
                        let text = std::fs::read_to_string(&path).unwrap();
                        assert!(text.contains(&format!("\"at_ms\":{at_ms},")), "record {at_ms} missing after its wait");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let syncs = writer.lock().unwrap().syncs();
        let (records, _) = load(&path).unwrap();
        assert_eq!(records.len() as u64, 1 + threads * each);
        // Each thread's records are in its own order.
        for t in 0..threads {
            let mine: Vec<u64> = records.iter().map(|r| r.at_ms).filter(|at| (1 + t * 1000..1 + t * 1000 + each).contains(at)).collect();
            assert_eq!(mine, (0..each).map(|i| 1 + t * 1000 + i).collect::<Vec<_>>());
        }
        assert_eq!(syncs as u64, 1 + each, "one fsync per round of {threads} concurrent appends");
    }

    #[test]
    fn tasks_awaiting_their_fsync_share_one_and_hold_no_thread_each() {
        // Every thread the runtime ever starts, workers and blocking pool alike.
        let threads = Arc::new(AtomicUsize::new(0));
        let counter = threads.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .on_thread_start(move || {
                counter.fetch_add(1, Ordering::Relaxed);
            })
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.jsonl");
        let writer = Arc::new(Mutex::new(JournalWriter::create(&path).unwrap()));
        writer.lock().unwrap().append(&start(&["a"])).unwrap();
        let tasks = 1000u64;
        runtime.block_on(async {
            // Every task writes its record, then all wait together: one fsync covers them all.
            let gate = Arc::new(tokio::sync::Barrier::new(tasks as usize));
            let handles: Vec<_> = (0..tasks)
                .map(|t| {
                    let (writer, gate) = (writer.clone(), gate.clone());
                    tokio::spawn(async move {
                        let pending = writer.lock().unwrap().write(&rec(1 + t, Entry::Down { host: "a".into() })).unwrap();
                        let seq = pending.file.as_ref().expect("a file's record").2;
                        gate.wait().await;
                        pending.wait_async().await.unwrap();
                        // Durable on return: a finished fsync covers the task's own record.
                        assert!(writer.lock().unwrap().durable_records() >= seq, "record {seq} returned before its fsync");
                    })
                })
                .collect();
            for handle in handles {
                handle.await.unwrap();
            }
        });
        assert_eq!(writer.lock().unwrap().syncs(), 2, "the first record's fsync, then one for all {tasks} tasks");
        assert_eq!(load(&path).unwrap().0.len() as u64, 1 + tasks);
        // Two workers and the blocking thread the fsync ran on (a second one if the pool had
        // not taken the first back yet), not one thread per waiting task.
        let started = threads.load(Ordering::Relaxed);
        assert!(started <= 4, "{started} threads for {tasks} tasks awaiting their fsync");
    }

    #[test]
    fn a_pending_record_is_durable_only_after_an_fsync_that_covers_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.jsonl");
        let mut w = JournalWriter::create(&path).unwrap();
        let first = w.write(&start(&["a"])).unwrap();
        let second = w.write(&rec(1, Entry::Down { host: "a".into() })).unwrap();
        assert_eq!(w.syncs(), 0, "writing alone syncs nothing");
        // The later record's wait covers the earlier one: one fsync for both.
        second.wait().unwrap();
        first.wait().unwrap();
        assert_eq!(w.syncs(), 1);
        w.append(&rec(2, Entry::Down { host: "a".into() })).unwrap();
        assert_eq!(w.syncs(), 2, "a lone append still syncs its own record");
        assert_eq!(load(&path).unwrap().0.len(), 3);
    }

    #[test]
    fn another_process_holding_the_journal_is_named_by_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.jsonl");
        let mut w = JournalWriter::create(&path).unwrap();
        w.append(&start(&["a"])).unwrap();
        drop(w);
        // Another process holds an exclusive flock on the journal, as a running fleetboot would.
        let script = "import fcntl, sys, time\nf = open(sys.argv[1], 'a')\nfcntl.flock(f, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(600)";
        struct Holder(std::process::Child);
        impl Drop for Holder {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let mut holder = Holder(
            std::process::Command::new("python3")
                .args(["-c", script, path.to_str().unwrap()])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("python3"),
        );
        let pid = holder.0.id();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(holder.0.stdout.as_mut().unwrap()), &mut line).unwrap();
        let err = JournalWriter::reopen(&path).map(drop).map_err(|e| e.to_string());
        let held = hold(&path).map(drop).map_err(|e| e.to_string());
        drop(holder);
        assert!(held.unwrap_err().contains(&format!("in use by process {pid}")));
        let err = err.unwrap_err();
        assert!(
            line.contains("locked") && err.contains(&format!("in use by process {pid}")) && err.contains("one fleetboot per journal"),
            "{err}"
        );
        assert!(JournalWriter::create(&path).unwrap_err().to_string().contains("never overwritten"));
        // The holder gone, the journal is free again, and its content untouched.
        JournalWriter::reopen(&path).unwrap();
        assert_eq!(load(&path).unwrap().0.len(), 1);
    }
}
