//! The reboot executor: concurrent within limits, journaled before every action, emitting
//! events and never printing.
//!
//! It reaches nodes only through seams: [`PowerTransport`] (SSH), and the [`NodeEvidence`],
//! [`NodeDrain`] and [`BmcPower`] traits of [`crate::engine::seams`]. Its deadlines run on a
//! [`RunClock`] (monotonic within the process, wall-clock times only in records), so its tests
//! run it against in-memory fakes on tokio's paused clock (`tests.rs`).
//!
//! - `mod.rs`: the run (journal, events, summary), the limits (in-flight gates, the rate's
//!   pacer, the failure budget) and the dispatcher;
//! - `host.rs`: one host's way: boot ID, drain, the reboot, the escalation ladder, the proof.
//!
//! One file, past 500 lines: the run's loop, its limits and its stop rules are one state machine; one host's way is `host.rs`.

mod batch;
mod host;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::time::Instant;

use crate::adapters::bmc::RedfishPower;
use crate::adapters::config::{FallbackPolicy, RebootSettings, Transport};
use crate::adapters::journal::{JournalWriter, Pending};
use crate::adapters::kube::{Drainer, NodeWatch};
use crate::engine::seams::{BmcPower, NodeDrain, NodeEvidence, Patched};
use fleetboot_core::events::{Event, HostOutcome, Summary};
use fleetboot_core::hosts::Host;
use fleetboot_core::journal::{Entry, HostRecord, JOURNAL_VERSION, JournalError, Record, ResumeAction, RunState};
use fleetboot_core::journal::{FallbackSpec, RunPolicy, RunSettings};
use fleetboot_core::plan::Plan;
use fleetboot_core::transport::{PowerTransport, TransportError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Abort {
    No,
    /// Start nothing new; finish (or cancel) what is in flight.
    Soft,
    /// The run's lease is lost: start nothing new, and cancel nothing (another run may own the
    /// nodes now, and a `shutdown -c` may undo its reboot); what is in flight is watched to
    /// its end. Above `Soft`, so a loss after a Ctrl-C still forbids the cancel.
    LeaseLost,
    /// Stop now; the journal is consistent and `--resume` continues.
    Hard,
}

/// The run's clock: the wall-clock time at the start plus tokio's monotonic time since. Records
/// keep wall-clock times, but no wall-clock jump during the run moves a deadline, and under
/// tokio's paused clock (tests) the whole run is deterministic. The maintenance windows alone
/// are judged on the wall clock itself ([`Self::wall_ms`]): the monotonic clock stops while the
/// machine is suspended, the windows' hours do not.
#[derive(Clone, Copy, Debug)]
pub struct RunClock {
    wall_at_start_ms: u64,
    start: Instant,
    /// The wall clock (the system's; a test's own); `None`: the anchored monotonic time.
    wall: Option<fn() -> u64>,
}

impl RunClock {
    /// Anchored at the wall clock now, the windows on the system's wall clock.
    pub fn start() -> RunClock {
        RunClock { wall: Some(crate::adapters::system::now_ms), ..RunClock::anchored(crate::adapters::system::now_ms()) }
    }

    /// Anchored at a given wall-clock time (tests: a world clock of their own), the windows on
    /// the same anchored time.
    pub fn anchored(wall_at_start_ms: u64) -> RunClock {
        RunClock { wall_at_start_ms, start: Instant::now(), wall: None }
    }

    /// Anchored as [`Self::anchored`], the windows on `wall` (tests: a clock that jumps as a
    /// suspended machine's does).
    pub fn with_wall(self, wall: fn() -> u64) -> RunClock {
        RunClock { wall: Some(wall), ..self }
    }

    /// Milliseconds since the Unix epoch on the wall clock, read now (the windows).
    pub fn wall_ms(&self) -> u64 {
        self.wall.map_or_else(|| self.now_ms(), |wall| wall())
    }

    /// Milliseconds since the Unix epoch, on this run's monotonic clock.
    pub fn now_ms(&self) -> u64 {
        self.ms_of(Instant::now())
    }

    /// The wall-clock time of an instant on this run's clock.
    pub fn ms_of(&self, at: Instant) -> u64 {
        self.wall_at_start_ms + at.saturating_duration_since(self.start).as_millis() as u64
    }

    /// The monotonic instant of a wall-clock time on this run's clock (times before the start,
    /// from a journal, map to the start).
    pub fn instant_of(&self, ms: u64) -> Instant {
        let after = Duration::from_millis(ms.saturating_sub(self.wall_at_start_ms));
        // A time no clock can hold (a journal's garbage) is as good as never, not a panic.
        self.start.checked_add(after).unwrap_or_else(|| self.start + Duration::from_secs(400 * 24 * 3600))
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

/// How many attempts a transient failure gets, and the first wait between them.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first_wait: Duration,
}

impl RetryPolicy {
    /// Doubling waits, capped at 30 s.
    pub fn wait_before(&self, attempt: u32) -> Duration {
        let factor = 1u32 << (attempt.saturating_sub(2)).min(5);
        (self.first_wait * factor).min(Duration::from_secs(30))
    }
}

/// Why a host's task stopped before its reboot was confirmed. Every variant leaves the journal
/// consistent, and the caller has nothing more to record: it only stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// The host's outcome (failed, skipped or cancelled) is journaled.
    Journaled,
    /// A hard abort: the host stays as the journal leaves it, for `--resume`.
    Aborted,
    /// The journal cannot be written: nothing further may happen (the run stops hard).
    JournalBroken,
    /// `--drain-escalation defer`: the host goes to the end of the queue (journaled).
    Deferred,
}

/// Caps the hosts between "dispatched" and "confirmed back". Unlike a semaphore it can
/// admit hosts that a previous run left in flight without waiting, and still count them.
struct InFlightGate {
    limit: usize,
    count: Mutex<usize>,
    changed: Notify,
}

impl InFlightGate {
    fn new(limit: usize) -> Arc<InFlightGate> {
        Arc::new(InFlightGate { limit, count: Mutex::new(0), changed: Notify::new() })
    }

    async fn enter(self: &Arc<Self>) -> GatePass {
        loop {
            let notified = self.changed.notified();
            {
                let mut count = self.count.lock().unwrap();
                if *count < self.limit {
                    *count += 1;
                    return GatePass(self.clone());
                }
            }
            notified.await;
        }
    }

    /// Whether a host asking now would wait for a slot.
    fn is_full(&self) -> bool {
        *self.count.lock().unwrap() >= self.limit
    }

    fn enter_regardless(self: &Arc<Self>) -> GatePass {
        *self.count.lock().unwrap() += 1;
        GatePass(self.clone())
    }
}

struct GatePass(Arc<InFlightGate>);

impl Drop for GatePass {
    fn drop(&mut self) {
        *self.0.count.lock().unwrap() -= 1;
        self.0.changed.notify_waiters();
    }
}

/// `--rate` as an even spacing on the run's monotonic clock. A host's first reboot waits for a
/// reserved slot before it starts (boot ID, drain); then every reboot sent (first sends,
/// re-sends and BMC resets alike) claims its moment right before it goes out, at least one
/// spacing after the previous one, so no window of the rate's period ever holds more than its
/// count even when a host took longer than others to get ready. A resume starts one spacing
/// after the journal's last send.
struct Pacer {
    spacing: Duration,
    state: Mutex<PacerState>,
}

struct PacerState {
    /// The next slot a starting host may reserve.
    next_slot: Instant,
    /// When the last reboot went (or goes) out.
    last_send: Option<Instant>,
}

impl Pacer {
    fn new(spacing: Duration, last_send: Option<Instant>) -> Pacer {
        let next_slot = last_send.map_or_else(Instant::now, |at| at + spacing);
        Pacer { spacing, state: Mutex::new(PacerState { next_slot, last_send }) }
    }

    /// Reserves the next slot for a starting host and returns when it opens.
    fn reserve(&self) -> Instant {
        let mut state = self.state.lock().unwrap();
        let at = state.next_slot.max(Instant::now());
        state.next_slot = at + self.spacing;
        at
    }

    /// Claims the moment for a reboot about to go out: now, if the last one went out at least
    /// one spacing ago; otherwise Err(when to try again).
    fn try_claim(&self) -> Result<(), Instant> {
        let mut state = self.state.lock().unwrap();
        let now = Instant::now();
        match state.last_send.map(|last| last + self.spacing).filter(|earliest| *earliest > now) {
            Some(earliest) => Err(earliest),
            None => {
                state.last_send = Some(now);
                state.next_slot = state.next_slot.max(now + self.spacing);
                Ok(())
            }
        }
    }

    /// A reboot's intent was journaled at `at`: the next one goes one spacing after that.
    fn sent(&self, at: Instant) {
        let mut state = self.state.lock().unwrap();
        state.last_send = Some(state.last_send.map_or(at, |last| last.max(at)));
        state.next_slot = state.next_slot.max(at + self.spacing);
    }
}

/// How the cluster's state limits a run besides its own bookkeeping.
pub use fleetboot_core::limits::Rule as LimitsRule;

/// Marks a host as holding its in-flight places (the limits' view of the run's own hosts).
struct InFlightMark<'a>(&'a Mutex<BTreeSet<String>>, String);

impl<'a> InFlightMark<'a> {
    fn new(set: &'a Mutex<BTreeSet<String>>, host: &str) -> InFlightMark<'a> {
        set.lock().unwrap().insert(host.to_owned());
        InFlightMark(set, host.to_owned())
    }
}

impl Drop for InFlightMark<'_> {
    fn drop(&mut self) {
        self.0.lock().unwrap().remove(&self.1);
    }
}

/// Hosts whose turn began and whose reboot is not out yet, while they do not wait on anything
/// else (the cluster's limits, a drain): the hosts next in line connect ahead of their turn
/// (warm-ups) only once there has been none for a while, so those handshakes never compete with
/// the ones of hosts whose turn is now. At the start of a run of 500 at once, the next 500
/// warming up at the same time slowed the first 500's reboots.
#[derive(Default)]
struct TurnsUnderWay(tokio::sync::watch::Sender<Turns>);

#[derive(Default)]
struct Turns {
    hosts: BTreeSet<String>,
    /// Since when no turn has been under way (`None` while one is).
    none_since: Option<Instant>,
}

impl TurnsUnderWay {
    fn begin(&self, host: &str) {
        self.0.send_if_modified(|turns| {
            turns.none_since = None;
            turns.hosts.insert(host.to_owned())
        });
    }

    /// The host's reboot is out, it waits on something else, or its task ended. Idempotent.
    fn over(&self, host: &str) {
        self.0.send_if_modified(|turns| {
            let removed = turns.hosts.remove(host);
            if removed && turns.hosts.is_empty() {
                turns.none_since = Some(Instant::now());
            }
            removed
        });
    }

    /// Returns once no turn has been under way for `quiet` (at once if none ever was).
    async fn quiet_for(&self, quiet: Duration) {
        let mut turns = self.0.subscribe();
        loop {
            // Never closed: the sender lives as long as the run.
            let none_since = match turns.wait_for(|t| t.hosts.is_empty()).await {
                Ok(now) => now.none_since,
                Err(_) => return,
            };
            let Some(until) = none_since.map(|since| since + quiet) else { return };
            if Instant::now() >= until {
                return;
            }
            // A turn that begins meanwhile starts the wait again.
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = turns.changed() => {}
            }
        }
    }
}

/// Test hooks: the clock to run on, and a journal that dies after a given record (a kill).
#[derive(Default)]
struct Hooks {
    clock: Option<RunClock>,
    kill: Option<Kill>,
}

/// The journal stops taking records after record `after` (counted from 1 in this run): every
/// later append fails, as if the process had been killed right there. `before_its_action`: the
/// record `after` itself is written but reported as failed, so the action it announces never
/// happens (a kill between the fsync and the action); otherwise the action happens and the
/// next record fails (a kill right after the action).
#[derive(Clone, Copy, Debug)]
struct Kill {
    after: usize,
    before_its_action: bool,
}

/// The journal file and, in tests, where it dies.
struct JournalSink {
    writer: JournalWriter,
    written: usize,
    kill: Option<Kill>,
    dead: bool,
}

#[derive(Debug, thiserror::Error)]
enum SinkError {
    #[error(transparent)]
    Write(#[from] JournalError),
    #[error("journal {0} is closed (a record failed before, or killed by a test)")]
    Killed(std::path::PathBuf),
}

impl JournalSink {
    fn append(&mut self, record: &Record) -> Result<(), SinkError> {
        Ok(self.write(record)?.wait()?)
    }

    /// Writes the record; it is journaled once the returned wait succeeds (a failed fsync
    /// fails every later record too, so nothing lands after a gap).
    fn write(&mut self, record: &Record) -> Result<Pending, SinkError> {
        if self.dead {
            return Err(SinkError::Killed(self.writer.path().to_owned()));
        }
        let pending = match self.writer.write(record) {
            Ok(pending) => pending,
            Err(e) => {
                // Nothing lands after a gap: the first failed record closes the journal for good.
                self.dead = true;
                return Err(e.into());
            }
        };
        self.written += 1;
        if let Some(kill) = self.kill
            && self.written >= kill.after
        {
            self.dead = true;
            if kill.before_its_action {
                // A kill between the fsync and the action: the record is durable (a resume
                // reads it), only its action never happens. Waited for here, under the lock:
                // a test hook, no group commit to share.
                pending.wait()?;
                return Err(SinkError::Killed(self.writer.path().to_owned()));
            }
        }
        Ok(pending)
    }
}

/// Appends under the sink's lock, and waits for it (an fsync, or the cluster journal's writer
/// answering, up to its deadline) off the runtime's workers
/// ([`wait_off_workers`](crate::adapters::system::wait_off_workers)): the lease renewer, the
/// node watch and Ctrl-C go on meanwhile.
fn append_blocking(journal: &Mutex<JournalSink>, record: &Record) -> Result<(), SinkError> {
    // The fsync is waited for outside the sink's lock: hosts' appends waiting at the same time
    // share one (group commit), each still returning only once its record is durable.
    crate::adapters::system::wait_off_workers(|| Ok(journal.lock().unwrap().write(record)?.wait()?))
}

/// Appends and waits until the record is journaled. A local file's record is written under the
/// sink's lock (into the page cache) and its fsync awaited
/// ([`Pending::wait_async`]): the host's task holds no thread meanwhile. The cluster's journal
/// does its whole append in `write` (requests, retries): that one waits off the workers.
async fn append(journal: &Mutex<JournalSink>, record: &Record) -> Result<(), SinkError> {
    let pending = {
        let mut sink = journal.lock().unwrap();
        if !sink.writer.is_local_file() {
            drop(sink);
            return append_blocking(journal, record);
        }
        sink.write(record)?
    };
    Ok(pending.wait_async().await?)
}

/// Resolves once the run's abort level satisfies `reached` (or the run is gone): a `select!`
/// branch that yields nothing, so no guard of the watch (a `Ref`, not `Send`) is held across
/// the other branches' awaits.
async fn abort_reaches(abort: &mut watch::Receiver<Abort>, reached: impl FnMut(&Abort) -> bool) {
    let _ = abort.wait_for(reached).await;
}

/// Everything a host task shares with the others.
struct Shared<T> {
    transport: T,
    settings: RebootSettings,
    retry: RetryPolicy,
    clock: RunClock,
    journal: Arc<Mutex<JournalSink>>,
    events: mpsc::UnboundedSender<Event>,
    abort: watch::Receiver<Abort>,
    abort_trigger: watch::Sender<Abort>,
    /// Hosts that stand failed, the previous runs' included: the `--max-failures` budget.
    failed: Mutex<BTreeSet<String>>,
    tolerated_failures: usize,
    pacer: Option<Pacer>,
    probes: Semaphore,
    api: Option<Arc<dyn NodeEvidence>>,
    drain: Option<Arc<dyn NodeDrain>>,
    bmc: Option<Arc<dyn BmcPower>>,
    fallback: FallbackPolicy,
    /// Hosts of a cluster run that are no node of it: proven over SSH alone, never drained.
    standalone: BTreeSet<String>,
    limits: LimitsRule,
    grouping: fleetboot_core::plan::Grouping,
    plan_hosts: BTreeSet<String>,
    /// Hosts holding their in-flight places now.
    in_flight: Mutex<BTreeSet<String>>,
    /// Hosts whose turn is under way toward its reboot (see [`TurnsUnderWay`]).
    turns: TurnsUnderWay,
    /// Hosts this run (or the run it resumes) sent a reboot.
    touched: Mutex<BTreeSet<String>>,
    /// Every host's journal record so far (a host's task reads its own after a failure).
    records: Mutex<BTreeMap<String, HostRecord>>,
    /// Nodes fleetboot cordoned (this run or an earlier attempt) and has not uncordoned: the
    /// only cordons it ever lifts.
    cordoned: Mutex<BTreeSet<String>>,
    /// Nodes this run uncordoned (until it cordons them again), each with the resourceVersion
    /// the uncordon produced (the API's answer to the patch). While a world read's copy of the
    /// node is older than that version, a cordon it shows is this run's own, not someone
    /// else's: at 10,000 nodes with a thousand drains the Node watch fell seconds behind, the
    /// nodes the run had just uncordoned counted as "cordoned by someone else", and the hosts
    /// after them waited or were deferred after their drain (3,719 deferrals and 41 nodes
    /// skipped in one run). A copy at that version or later shows the cluster's word: a cordon
    /// there is someone else's ([`host::verdict`]). No timer.
    lifted: Mutex<BTreeMap<String, Option<String>>>,
    /// Windows and `--only-if` (`batch.rs`).
    batch: batch::Batch,
}

impl<T: PowerTransport> Shared<T> {
    /// The cluster's evidence for this host, when it is one of the cluster's nodes.
    fn api_for(&self, host: &Host) -> Option<&Arc<dyn NodeEvidence>> {
        self.api.as_ref().filter(|_| !self.standalone.contains(&host.name))
    }

    /// The drainer for this host, when it is one of the cluster's nodes.
    fn drain_for(&self, host: &Host) -> Option<&Arc<dyn NodeDrain>> {
        self.drain.as_ref().filter(|_| !self.standalone.contains(&host.name))
    }

    fn has_bmc(&self, host: &Host) -> bool {
        self.bmc.as_ref().is_some_and(|b| b.has(&host.name))
    }

    /// Whether this SSH failure lets the BMC take over (SSH never delivered anything).
    fn falls_back_on(&self, host: &Host, error: &TransportError) -> bool {
        let policy = &self.fallback;
        let allowed = match error {
            TransportError::Unreachable(_) | TransportError::Timeout(_) => policy.on_unreachable,
            TransportError::Auth(_) | TransportError::Forbidden(_) => policy.on_auth_failure,
            TransportError::HostKey(_) => policy.on_host_key,
            TransportError::CommandFailed { .. } | TransportError::Other(_) => false,
        };
        self.settings.transport != Transport::Ssh && allowed && self.has_bmc(host)
    }

    fn ladder(&self, host: &Host) -> fleetboot_core::escalation::Ladder {
        fleetboot_core::escalation::Ladder {
            timeout_ms: self.settings.timeout.as_millis() as u64,
            scheduled_delay_ms: self.settings.scheduled_delay.as_millis() as u64,
            graceful_timeout_ms: self.bmc.as_ref().map_or(0, |b| b.graceful_timeout().as_millis() as u64),
            bmc_for_hung: self.fallback.on_hung && self.settings.transport != Transport::Ssh && self.has_bmc(host),
            resend_grace_ms: self.settings.scheduled_delay.as_millis() as u64 / 2,
        }
    }

    /// Journals that this run lifted its cordon of `host` with the patch that produced
    /// `version` (the API's answer), remembered before the record so that no world read finds
    /// the node neither this run's cordon nor its just-lifted one.
    /// An uncordon that left a cordon found there as someone else's says so, and the cordon
    /// counts as someone else's from then on (no version of the node shows this run's).
    async fn uncordoned(&self, host: &str, patched: Patched) -> Result<(), Stop> {
        match patched.left_cordoned {
            Some(why) => {
                let _ = self.events.send(Event::Warning { host: Some(host.to_owned()), message: why });
                self.lifted.lock().unwrap().remove(host);
            }
            None => {
                self.lifted.lock().unwrap().insert(host.to_owned(), patched.version);
            }
        }
        self.record(Entry::Uncordoned { host: host.to_owned() }).await
    }

    /// Journals first (written and fsynced), then tells the reporters.
    async fn record(&self, entry: Entry) -> Result<(), Stop> {
        let now = Instant::now();
        if let (Some(pacer), Entry::Dispatching { .. }) = (&self.pacer, &entry) {
            // The rate counts from the journaled intent.
            pacer.sent(now);
        }
        let record = Record { v: JOURNAL_VERSION, at_ms: self.clock.ms_of(now), entry };
        if let Err(e) = append(&self.journal, &record).await {
            // Without a journal nothing further may happen safely.
            let _ = self.events.send(Event::Warning { host: None, message: format!("{e}; stopping") });
            let _ = self.abort_trigger.send(Abort::Hard);
            return Err(Stop::JournalBroken);
        }
        if let Some(host) = record.entry.host() {
            self.records.lock().unwrap().entry(host.to_owned()).or_insert_with(HostRecord::pending).apply(&record.entry, record.at_ms);
        }
        match &record.entry {
            Entry::Cordoning { host, already_cordoned: false } => {
                self.cordoned.lock().unwrap().insert(host.clone());
                self.lifted.lock().unwrap().remove(host);
            }
            Entry::Uncordoned { host } => {
                self.cordoned.lock().unwrap().remove(host);
            }
            // A cordon handed over to another actor is no longer fleetboot's to lift.
            Entry::CordonHandedOver { host, .. } => {
                self.cordoned.lock().unwrap().remove(host);
            }
            // A soft reboot is no proven reboot: it counts against --max-failures as a failure.
            Entry::Failed { host, .. } | Entry::SoftRebooted { host, .. } => {
                self.failed.lock().unwrap().insert(host.clone());
            }
            Entry::Confirmed { host } => {
                self.failed.lock().unwrap().remove(host);
                self.batch.proven(self.grouping.group_of(host), record.at_ms);
            }
            Entry::Dispatching { host, .. } => {
                self.touched.lock().unwrap().insert(host.clone());
            }
            _ => {}
        }
        let _ = self.events.send(Event::Transition { record });
        Ok(())
    }

    /// Journals the host's failure; the task then stops.
    async fn fail(&self, host: &Host, stage: fleetboot_core::journal::Stage, error: String, may_reboot: bool) -> Stop {
        match self.record(Entry::Failed { host: host.name.clone(), stage, error, may_reboot }).await {
            Ok(()) => Stop::Journaled,
            Err(stop) => stop,
        }
    }

    /// Journals that the host does not start. A host that stands failed (a previous run's
    /// failure, retried now) stays failed: its failure still counts against the budget.
    async fn skip(&self, host: &Host, reason: &str) -> Result<(), Stop> {
        if self.failed.lock().unwrap().contains(&host.name) {
            return Ok(());
        }
        self.record(Entry::Skipped { host: host.name.clone(), reason: reason.to_owned() }).await
    }

    fn warn(&self, host: &Host, message: String) {
        let _ = self.events.send(Event::Warning { host: Some(host.name.clone()), message });
    }

    fn abort_level(&self) -> Abort {
        *self.abort.borrow()
    }

    fn budget_spent(&self) -> bool {
        self.failed.lock().unwrap().len() > self.tolerated_failures
    }

    /// Retries transient failures with growing waits; returns the last error otherwise.
    async fn with_retries<R, F, Fut>(
        &self,
        host: &Host,
        stage: fleetboot_core::journal::Stage,
        mut attempt_once: F,
    ) -> Result<R, TransportError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<R, TransportError>>,
    {
        let mut attempt = 1;
        loop {
            match attempt_once().await {
                Err(e) if e.is_transient() && attempt < self.retry.attempts && self.abort_level() < Abort::Hard => {
                    attempt += 1;
                    let wait = self.retry.wait_before(attempt);
                    let _ = self.events.send(Event::Retrying {
                        host: host.name.clone(),
                        stage,
                        attempt,
                        of: self.retry.attempts,
                        error: e.to_string(),
                        wait_ms: wait.as_millis() as u64,
                    });
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }

    /// Waits for a rate slot before a host starts; false if the run stops first (any abort:
    /// nothing new starts).
    async fn rate_slot(&self) -> bool {
        let Some(pacer) = &self.pacer else { return self.abort_level() == Abort::No };
        self.wait_until(pacer.reserve(), Abort::Soft).await
    }

    /// Waits for the moment a host's first reboot may go out: `None` if the run stops first,
    /// else whether it had to wait (another host's re-send or BMC reset took the slot).
    async fn rate_send(&self) -> Option<bool> {
        self.claim(Abort::Soft).await
    }

    /// Waits for the moment a re-send or a BMC reset of a host in flight may go out; only a
    /// hard abort stops it (in-flight hosts finish after the first Ctrl-C).
    async fn rate_send_in_flight(&self) -> Result<(), Stop> {
        if self.claim(Abort::Hard).await.is_some() { Ok(()) } else { Err(Stop::Aborted) }
    }

    /// `None`: the run stopped first; `Some(waited)`: claimed, after a wait or not.
    async fn claim(&self, stop_at: Abort) -> Option<bool> {
        let Some(pacer) = &self.pacer else { return (self.abort_level() < stop_at).then_some(false) };
        let mut waited = false;
        loop {
            match pacer.try_claim() {
                Ok(()) => return (self.abort_level() < stop_at).then_some(waited),
                Err(at) => {
                    if !self.wait_until(at, stop_at).await {
                        return None;
                    }
                    waited = true;
                }
            }
        }
    }

    async fn wait_until(&self, at: Instant, stop_at: Abort) -> bool {
        let mut abort = self.abort.clone();
        if *abort.borrow() >= stop_at {
            return false;
        }
        tokio::select! {
            () = tokio::time::sleep_until(at) => true,
            _ = abort.wait_for(|a| *a >= stop_at) => false,
        }
    }
}

/// What a reboot run needs. `E`, `D`, `B`: the cluster API's node evidence, the drainer and
/// the BMC power path; the adapters' types by default, fakes in tests.
pub struct RunInputs<T, E = NodeWatch, D = Drainer, B = RedfishPower> {
    pub transport: T,
    pub settings: RebootSettings,
    pub retry: RetryPolicy,
    pub journal: JournalWriter,
    pub plan: Plan,
    /// The folded journal of the run being resumed, if any.
    pub prior: Option<RunState>,
    /// For cluster nodes: the Node watcher whose bootID + Ready must confirm each reboot.
    pub api: Option<Arc<E>>,
    /// `--drain`: cordon and drain before each reboot, uncordon once back.
    pub drain: Option<Arc<D>>,
    /// The cluster lease was taken from another holder: (previous holder, this run's identity).
    pub lease_takeover: Option<(String, String)>,
    /// The nodes' BMCs, for `--transport redfish` and the fallback.
    pub bmc: Option<Arc<B>>,
    pub fallback: FallbackPolicy,
    /// The cluster these nodes belong to, journaled so that a resume elsewhere is refused.
    pub cluster: Option<fleetboot_core::journal::ClusterIdentity>,
    /// How the cluster's state limits the run (with `api`).
    pub limits: LimitsRule,
}

/// The settings a resume keeps, as the journal records them.
pub fn journaled_settings(settings: &RebootSettings) -> RunSettings {
    RunSettings {
        transport: settings.transport,
        transport_order: (settings.transport == fleetboot_core::settings::Transport::Auto).then(|| settings.transport_order.clone()),
        command: settings.command.clone(),
        rate: settings.rate,
        concurrency: settings.concurrency,
        timeout_ms: settings.timeout.as_millis() as u64,
        scheduled_delay_ms: settings.scheduled_delay.as_millis() as u64,
        poll_interval_ms: settings.poll_interval.as_millis() as u64,
        policy: None,
        batch: Some(settings.batch.clone()).filter(|b| !b.is_empty()),
    }
}

/// The proof, abort, failure and fallback rules a resume keeps, as the journal records them.
/// `graceful_timeout`: the BMCs' GracefulRestart → ForceRestart wait (zero: the run has no BMC).
pub fn journaled_policy(settings: &RebootSettings, fallback: &FallbackPolicy, graceful_timeout: Duration) -> RunPolicy {
    RunPolicy {
        boot_id_command: settings.boot_id_command.clone(),
        check_command: settings.check_command.clone(),
        cancel_pending_on_abort: settings.cancel_pending_on_abort,
        max_failures: settings.max_failures,
        fallback: FallbackSpec {
            on_unreachable: fallback.on_unreachable,
            on_auth_failure: fallback.on_auth_failure,
            on_host_key: fallback.on_host_key,
            on_hung: fallback.on_hung,
            graceful_timeout_ms: graceful_timeout.as_millis() as u64,
        },
    }
}

/// Puts a journaled policy back: the reboot settings' part, the fallback policy, and the BMCs'
/// graceful wait (when the run had BMCs).
pub fn apply_run_policy(settings: &mut RebootSettings, fallback: &mut FallbackPolicy, graceful_timeout: &mut Duration, policy: &RunPolicy) {
    settings.boot_id_command.clone_from(&policy.boot_id_command);
    settings.check_command.clone_from(&policy.check_command);
    settings.cancel_pending_on_abort = policy.cancel_pending_on_abort;
    settings.max_failures = policy.max_failures;
    let f = &policy.fallback;
    *fallback = FallbackPolicy {
        on_unreachable: f.on_unreachable,
        on_auth_failure: f.on_auth_failure,
        on_host_key: f.on_host_key,
        on_hung: f.on_hung,
    };
    if f.graceful_timeout_ms > 0 {
        *graceful_timeout = Duration::from_millis(f.graceful_timeout_ms);
    }
}

/// Puts a run's journaled (or merged, see [`fleetboot_core::journal::resume_settings`])
/// settings back into the reboot settings a resume runs with.
pub fn apply_run_settings(settings: &mut RebootSettings, run: &RunSettings) {
    settings.transport = run.transport;
    if let Some(order) = &run.transport_order {
        settings.transport_order = order.clone();
    }
    settings.command = run.command.clone();
    settings.rate = run.rate;
    settings.concurrency = run.concurrency;
    settings.timeout = Duration::from_millis(run.timeout_ms);
    settings.scheduled_delay = Duration::from_millis(run.scheduled_delay_ms);
    settings.poll_interval = Duration::from_millis(run.poll_interval_ms);
    settings.batch = run.batch.clone().unwrap_or_default();
}

/// Runs the plan to the end (or to an abort) and returns the summary. Every event, including
/// the final one, goes to `on_event`.
pub async fn run<T: PowerTransport, E: NodeEvidence, D: NodeDrain, B: BmcPower>(
    inputs: RunInputs<T, E, D, B>,
    abort: (watch::Sender<Abort>, watch::Receiver<Abort>),
    on_event: impl FnMut(&Event),
) -> Summary {
    run_with(inputs, abort, on_event, Hooks::default()).await
}

async fn run_with<T: PowerTransport, E: NodeEvidence, D: NodeDrain, B: BmcPower>(
    inputs: RunInputs<T, E, D, B>,
    abort: (watch::Sender<Abort>, watch::Receiver<Abort>),
    mut on_event: impl FnMut(&Event),
    hooks: Hooks,
) -> Summary {
    let clock = hooks.clock.unwrap_or_else(RunClock::start);
    let RunInputs { transport, settings, retry, journal, plan, prior, api, drain, lease_takeover, bmc, fallback, cluster, limits } = inputs;
    let api: Option<Arc<dyn NodeEvidence>> = api.map(|a| a as Arc<dyn NodeEvidence>);
    let drain: Option<Arc<dyn NodeDrain>> = drain.map(|d| d as Arc<dyn NodeDrain>);
    let bmc: Option<Arc<dyn BmcPower>> = bmc.map(|b| b as Arc<dyn BmcPower>);
    let journal_path = journal.path().to_owned();
    let journal = Arc::new(Mutex::new(JournalSink { writer: journal, written: 0, kill: hooks.kill, dead: false }));
    let hook = journal.clone();
    // Off the runtime's workers as every other append (a journal in the cluster may wait out
    // its retries here; review 12, finding 10).
    transport.attach_journal(Arc::new(move |entry| {
        append_blocking(&hook, &Record { v: JOURNAL_VERSION, at_ms: clock.now_ms(), entry }).is_ok()
    }));
    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let pacer = settings
        .rate
        .map(|rate| Pacer::new(rate.spacing(), prior.as_ref().and_then(RunState::last_sent_ms).map(|at| clock.instant_of(at))));
    let tolerated_failures = settings.max_failures.tolerated(plan.hosts.len());
    let failed: BTreeSet<String> = prior
        .iter()
        .flat_map(|p| p.records.iter())
        .filter(|(_, r)| matches!(r.phase, fleetboot_core::journal::Phase::Failed | fleetboot_core::journal::Phase::SoftRebooted))
        .map(|(name, _)| name.clone())
        .collect();
    let prior_records = || prior.iter().flat_map(|p| p.records.iter());
    let cordoned: BTreeSet<String> = prior_records().filter(|(_, r)| r.cordoned).map(|(n, _)| n.clone()).collect();
    let touched: BTreeSet<String> = prior_records().filter(|(_, r)| !r.attempts.is_empty()).map(|(n, _)| n.clone()).collect();
    let probes = Semaphore::new(settings.parallel);
    let graceful_timeout = bmc.as_ref().map_or(Duration::ZERO, |b| b.graceful_timeout());
    let run_settings =
        RunSettings { policy: Some(journaled_policy(&settings, &fallback, graceful_timeout)), ..journaled_settings(&settings) };
    let settings_batch = settings.batch.clone();
    let shared = Arc::new(Shared {
        transport,
        settings,
        retry,
        clock,
        journal: journal.clone(),
        events: events_tx,
        abort: abort.1.clone(),
        abort_trigger: abort.0.clone(),
        failed: Mutex::new(failed),
        tolerated_failures,
        pacer,
        probes,
        api: api.clone(),
        drain,
        bmc,
        fallback,
        standalone: plan.grouping.standalone.iter().cloned().collect(),
        limits,
        grouping: plan.grouping.clone(),
        plan_hosts: plan.hosts.iter().map(|h| h.name.clone()).collect(),
        in_flight: Mutex::new(BTreeSet::new()),
        turns: TurnsUnderWay::default(),
        cordoned: Mutex::new(cordoned),
        lifted: Mutex::new(BTreeMap::new()),
        touched: Mutex::new(touched),
        records: Mutex::new(prior.as_ref().map(|p| p.records.clone()).unwrap_or_default()),
        batch: batch::Batch::new(&settings_batch, &plan.run_id),
    });
    // A resume's soak goes on from the journal: the next node waits the rest of it.
    for (host, record) in prior_records() {
        if let Some(at) = record.confirmed_at_ms {
            shared.batch.proven(shared.grouping.group_of(host), at);
        }
    }

    let mut records: BTreeMap<String, HostRecord> = match &prior {
        Some(state) => state.records.clone(),
        None => BTreeMap::new(),
    };
    let first_entry = match &prior {
        None => Entry::RunStarted {
            run_id: plan.run_id.clone(),
            command: shared.settings.command.clone(),
            hosts: plan.hosts.clone(),
            api_proof: api.is_some(),
            grouping: Some(plan.grouping.clone()).filter(|g| *g != fleetboot_core::plan::Grouping::default()),
            drain: shared.drain.as_ref().map(|d| d.policy()),
            cluster: cluster.map(Box::new),
            settings: Some(run_settings.clone()),
        },
        Some(state) => Entry::RunResumed {
            pid: std::process::id(),
            overridden: state.settings.as_ref().map(|before| before.differences(&run_settings)).unwrap_or_default(),
            settings: Some(run_settings.clone()),
        },
    };
    on_event(&Event::Started {
        run_id: plan.run_id.clone(),
        journal: journal_path.clone(),
        hosts: plan.hosts.len(),
        resumed: prior.is_some(),
        to_reboot: plan.count(ResumeAction::Reboot),
        awaiting: plan.count(ResumeAction::AwaitNewBootId) + plan.count(ResumeAction::Check),
    });
    let takeover = lease_takeover.map(|(previous_holder, holder)| Entry::LeaseTakenOver { previous_holder, holder });
    let first_recorded = shared.record(first_entry).await.is_ok();
    let takeover_recorded = match takeover {
        Some(entry) if first_recorded => shared.record(entry).await.is_ok(),
        _ => first_recorded,
    };
    if takeover_recorded {
        let gate = InFlightGate::new(shared.settings.concurrency);
        tokio::spawn(host::dispatch(shared.clone(), gate, plan.clone(), prior));
    }
    let mut abort_rx = abort.1.clone();
    let mut announced = Abort::No;
    let window_closed = shared.batch.window_closed.clone();
    drop(shared);
    loop {
        tokio::select! {
            event = events_rx.recv() => match event {
                Some(event) => {
                    if let Event::Transition { record } = &event
                        && let Some(host) = record.entry.host() {
                            records.entry(host.to_owned()).or_insert_with(HostRecord::pending).apply(&record.entry, record.at_ms);
                        }
                    on_event(&event);
                }
                None => break,
            },
            Ok(()) = abort_rx.changed() => {
                let level = *abort_rx.borrow();
                if level > announced {
                    announced = level;
                    on_event(&Event::AbortRequested { hard: level == Abort::Hard });
                }
            }
        }
    }
    let aborted = *abort.1.borrow() != Abort::No;
    let window_closed = window_closed.load(std::sync::atomic::Ordering::SeqCst);
    let still_cordoned: Vec<String> = records.iter().filter(|(_, r)| r.cordoned).map(|(name, _)| name.clone()).collect();
    let hosts = plan
        .hosts
        .iter()
        .map(|h| HostOutcome::from_record(&h.name, &h.address, records.get(&h.name).unwrap_or(&HostRecord::pending())))
        .collect();
    let summary = Summary {
        run_id: plan.run_id.clone(),
        journal: journal_path,
        hosts,
        aborted,
        elapsed_ms: clock.elapsed().as_millis() as u64,
        still_cordoned,
        window_closed,
    };
    // A run with hosts still mid-reboot stays open for --resume.
    if summary.hosts.iter().all(|h| h.outcome != fleetboot_core::events::Outcome::Interrupted) {
        let outcome = format!("{:?}", summary.exit_code()).to_lowercase();
        let _ =
            journal.lock().unwrap().append(&Record { v: JOURNAL_VERSION, at_ms: clock.now_ms(), entry: Entry::RunFinished { outcome } });
    }
    on_event(&Event::Finished { summary: summary.clone() });
    summary
}
