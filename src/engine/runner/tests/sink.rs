//! The journal sink (review 11, findings 1 and 2): a failed record closes it for good, a
//! record that failed leaves every cordon as it is, and the wait for a slow journal does not
//! hold up the runtime's other tasks.

use super::*;
use crate::adapters::journal::JournalBackend;

/// A journal backend that fails the appends it is told to, and keeps what it took.
#[derive(Debug, Default)]
struct Flaky {
    taken: Arc<Mutex<Vec<Record>>>,
    fail_at: Vec<usize>,
    seen: usize,
}

impl JournalBackend for Flaky {
    fn append(&mut self, record: &Record) -> Result<(), JournalError> {
        self.seen += 1;
        if self.fail_at.contains(&self.seen) {
            return Err(JournalError::Write { path: "cluster:ns/run".into(), reason: "503 etcdserver: leader changed".into() });
        }
        self.taken.lock().unwrap().push(record.clone());
        Ok(())
    }
}

fn down(at_ms: u64) -> Record {
    Record { v: JOURNAL_VERSION, at_ms, entry: Entry::Down { host: "h1".into() } }
}

#[test]
fn sink_takes_nothing_after_its_first_failed_record() {
    let taken = Arc::new(Mutex::new(Vec::new()));
    let backend = Flaky { taken: taken.clone(), fail_at: vec![2], seen: 0 };
    let writer = JournalWriter::with_backend("cluster:ns/run".into(), Box::new(backend));
    let mut sink = JournalSink { writer, written: 0, kill: None, dead: false };
    sink.append(&down(1)).unwrap();
    assert!(sink.append(&down(2)).is_err());
    // The backend would take it now: the sink must not, or the journal has a gap.
    let third = sink.append(&down(3)).unwrap_err().to_string();
    assert!(third.contains("closed"), "{third}");
    assert_eq!(taken.lock().unwrap().iter().map(|r| r.at_ms).collect::<Vec<_>>(), vec![1]);
}

/// The test hook's "killed before its action" is a kill between the record's fsync and its
/// action: the record is durable when the append reports the kill (as before group commit).
#[test]
fn sink_killed_before_its_action_leaves_that_record_durable() {
    let dir = tempfile::tempdir().unwrap();
    let writer = JournalWriter::create(&dir.path().join("run.jsonl")).unwrap();
    let mut sink = JournalSink { writer, written: 0, kill: Some(Kill { after: 2, before_its_action: true }), dead: false };
    sink.append(&down(1)).unwrap();
    assert!(sink.append(&down(2)).is_err(), "the hook kills at record 2");
    assert_eq!(sink.writer.durable_records(), 2, "record 2 reported killed before its fsync");
    let third = sink.append(&down(3)).unwrap_err().to_string();
    assert!(third.contains("closed"), "{third}");
}

/// Blocks its append until the test releases it (a cluster journal's writer waiting on a slow
/// API server); says when it has started.
#[derive(Debug)]
struct Slow {
    started: Option<tokio::sync::oneshot::Sender<()>>,
    release: std::sync::mpsc::Receiver<()>,
}

impl JournalBackend for Slow {
    fn append(&mut self, _record: &Record) -> Result<(), JournalError> {
        if let Some(started) = self.started.take() {
            let _ = started.send(());
        }
        // Bounded only so that a regression fails instead of hanging.
        self.release.recv_timeout(Duration::from_secs(20)).map_err(|_| JournalError::Write {
            path: "cluster:ns/run".into(),
            reason: "never released: the waiting append held up the runtime".into(),
        })
    }
}

#[test]
fn sink_wait_for_a_slow_journal_leaves_the_runtime_to_the_other_tasks() {
    // One worker: without handing it over, the waiting append would starve the task that
    // releases it (as it would starve the lease renewer and Ctrl-C in a run).
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let (release_tx, release) = std::sync::mpsc::channel();
    let writer = JournalWriter::with_backend("cluster:ns/run".into(), Box::new(Slow { started: Some(started_tx), release }));
    let journal = Arc::new(Mutex::new(JournalSink { writer, written: 0, kill: None, dead: false }));
    let result = runtime.block_on(async move {
        let appending = tokio::spawn(async move { append_blocking(&journal, &down(1)).map_err(|e| e.to_string()) });
        let releasing = tokio::spawn(async move {
            started.await.unwrap();
            release_tx.send(()).unwrap();
        });
        let result = appending.await.unwrap();
        releasing.await.unwrap();
        result
    });
    assert_eq!(result, Ok(()));
}

#[tokio::test(start_paused = true)]
async fn runner_lifts_no_cordon_once_a_record_failed() {
    // A host whose drain fails: failed, then uncordoned (as journaled without a fault).
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1"]);
    let mut job = Job::new(&world, dir.path(), &["h1"]);
    (job.api, job.drain) = (true, true);
    job.drain_faults = DrainFaults { list_fails: true, ..DrainFaults::default() };
    job.run().await;
    let failed_at = job.records().iter().position(|r| matches!(r.entry, Entry::Failed { .. })).expect("h1 failed") + 1;
    assert_eq!(world.times_of("h1", |e| *e == Happened::Uncordoned).len(), 1);

    // Again, the journal failing that `failed` record: the run stops, the cordon stays.
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1"]);
    let mut job = Job::new(&world, dir.path(), &["h1"]);
    (job.api, job.drain) = (true, true);
    job.drain_faults = DrainFaults { list_fails: true, ..DrainFaults::default() };
    job.kill = Some(Kill { after: failed_at, before_its_action: true });
    job.run().await;
    assert_eq!(world.times_of("h1", |e| *e == Happened::Cordoned).len(), 1);
    assert!(world.times_of("h1", |e| *e == Happened::Uncordoned).is_empty(), "uncordoned after its record failed");
    assert!(job.state().records["h1"].cordoned, "the journal still says cordoned, for a resume to lift");
}

#[tokio::test(start_paused = true)]
async fn runner_journals_its_intent_before_an_uncordon_and_a_refused_intent_lifts_nothing() {
    // A drained reboot: `uncordoning` is journaled after `confirmed`-bound work and before the
    // uncordon, then `uncordoned`.
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1"]);
    let mut job = Job::new(&world, dir.path(), &["h1"]);
    (job.api, job.drain) = (true, true);
    job.run().await;
    let records = job.records();
    let intent = records.iter().position(|r| matches!(r.entry, Entry::Uncordoning { .. })).expect("uncordoning journaled");
    let done = records.iter().position(|r| matches!(r.entry, Entry::Uncordoned { .. })).expect("uncordoned journaled");
    assert!(intent < done, "{records:?}");
    assert_eq!(world.times_of("h1", |e| *e == Happened::Uncordoned).len(), 1);

    // Again, the journal refusing that intent (a fenced writer, or a kill before the action):
    // the cordon stays, and the journal says cordoned for a resume (or `repair`) to lift.
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1"]);
    let mut job = Job::new(&world, dir.path(), &["h1"]);
    (job.api, job.drain) = (true, true);
    job.kill = Some(Kill { after: intent + 1, before_its_action: true });
    job.run().await;
    assert_eq!(world.times_of("h1", |e| *e == Happened::Cordoned).len(), 1);
    assert!(world.times_of("h1", |e| *e == Happened::Uncordoned).is_empty(), "uncordoned though its intent was refused");
    assert!(job.state().records["h1"].cordoned, "the journal still says cordoned");

    // A kill right after the uncordon, before `uncordoned`: in doubt, still counted cordoned;
    // a resume lifts it again (harmless: fleetboot cordoned it) and journals it.
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1"]);
    let mut job = Job::new(&world, dir.path(), &["h1"]);
    (job.api, job.drain) = (true, true);
    job.kill = Some(Kill { after: intent + 1, before_its_action: false });
    job.run().await;
    assert_eq!(world.times_of("h1", |e| *e == Happened::Uncordoned).len(), 1);
    let state = job.state();
    assert!(state.records["h1"].cordoned, "an uncordon in doubt is still counted cordoned");
}
