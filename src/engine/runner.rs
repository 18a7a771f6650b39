//! The reboot executor: concurrent within limits, journaled before every action, emitting
//! events and never printing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use governor::DefaultDirectRateLimiter;
use tokio::sync::{Notify, Semaphore, mpsc, watch};

use crate::adapters::config::RebootSettings;
use crate::adapters::journal::{
    Attempt, Delivery, Entry, HostRecord, JOURNAL_VERSION, JournalWriter, Phase, Record, ResumeAction, RunState, Stage,
};
use fleetboot_core::events::{Event, HostOutcome, Summary};
use fleetboot_core::hosts::Host;
use fleetboot_core::plan::Plan;
use fleetboot_core::transport::{PowerTransport, TransportError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Abort {
    No,
    /// Start nothing new; finish (or cancel) what is in flight.
    Soft,
    /// Stop now; the journal is consistent and `--resume` continues.
    Hard,
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
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

/// Everything a host task shares with the others.
struct Shared<T> {
    transport: T,
    settings: RebootSettings,
    retry: RetryPolicy,
    journal: Mutex<JournalWriter>,
    events: mpsc::UnboundedSender<Event>,
    abort: watch::Receiver<Abort>,
    abort_trigger: watch::Sender<Abort>,
    failures: AtomicUsize,
    tolerated_failures: usize,
    limiter: Option<DefaultDirectRateLimiter>,
    /// Wall-clock time before which no reboot may start (the rate across a resume).
    not_before_ms: u64,
    probes: Semaphore,
    api: Option<Arc<crate::adapters::kube::NodeWatch>>,
    drain: Option<Arc<crate::adapters::kube::Drainer>>,
    bmc: Option<Arc<crate::adapters::bmc::RedfishPower>>,
    fallback: crate::adapters::config::FallbackPolicy,
}

impl<T: PowerTransport> Shared<T> {
    fn has_bmc(&self, host: &Host) -> bool {
        self.bmc.as_ref().is_some_and(|b| b.has(&host.name))
    }

    /// Whether this SSH failure lets the BMC take over (SSH never delivered anything).
    fn falls_back_on(&self, host: &Host, error: &TransportError) -> bool {
        use crate::adapters::config::TransportChoice;
        let policy = &self.fallback;
        let allowed = match error {
            TransportError::Unreachable(_) | TransportError::Timeout(_) => policy.on_unreachable,
            TransportError::Auth(_) => policy.on_auth_failure,
            TransportError::HostKey(_) => policy.on_host_key,
            TransportError::CommandFailed { .. } | TransportError::Other(_) => false,
        };
        self.settings.transport != TransportChoice::Ssh && allowed && self.has_bmc(host)
    }

    fn ladder(&self, host: &Host) -> fleetboot_core::escalation::Ladder {
        fleetboot_core::escalation::Ladder {
            timeout_ms: self.settings.timeout.as_millis() as u64,
            scheduled_delay_ms: self.settings.scheduled_delay.as_millis() as u64,
            graceful_timeout_ms: self.bmc.as_ref().map_or(0, |b| b.graceful_timeout.as_millis() as u64),
            bmc_for_hung: self.fallback.on_hung
                && self.settings.transport != crate::adapters::config::TransportChoice::Ssh
                && self.has_bmc(host),
            resend_grace_ms: self.settings.scheduled_delay.as_millis() as u64 / 2,
        }
    }

    /// Journals the intent, then resets the host through its BMC. Err: failed (journaled).
    async fn bmc_reset(&self, host: &Host, old: &str, kind: crate::adapters::redfish::RestartKind, sent_before: bool) -> Result<u64, ()> {
        let bmc = self.bmc.as_ref().expect("callers check has_bmc");
        self.record(Entry::Dispatching { host: host.name.clone(), old_boot_id: old.to_owned(), bmc: Some(kind) })?;
        let at = now_ms();
        match bmc.restart(&host.name, kind).await {
            Ok(reset_type) => {
                self.record(Entry::Dispatched { host: host.name.clone(), delivery: Delivery::BmcAccepted, reset_type: Some(reset_type) })?;
                Ok(at)
            }
            Err(e) => {
                let may_reboot = sent_before || e.reset_may_have_happened();
                let _ = self.record(Entry::Failed { host: host.name.clone(), stage: Stage::Dispatch, error: e.to_string(), may_reboot });
                Err(())
            }
        }
    }
    /// Journals first (written and fsynced), then tells the reporters.
    fn record(&self, entry: Entry) -> Result<(), ()> {
        let record = Record { v: JOURNAL_VERSION, at_ms: now_ms(), entry };
        if let Err(e) = self.journal.lock().unwrap().append(&record) {
            // Without a journal nothing further may happen safely.
            let _ = self.events.send(Event::Warning { host: None, message: format!("{e}; stopping") });
            let _ = self.abort_trigger.send(Abort::Hard);
            return Err(());
        }
        if matches!(record.entry, Entry::Failed { .. }) {
            self.failures.fetch_add(1, Ordering::SeqCst);
        }
        let _ = self.events.send(Event::Transition { record });
        Ok(())
    }

    fn abort_level(&self) -> Abort {
        *self.abort.borrow()
    }

    fn budget_spent(&self) -> bool {
        self.failures.load(Ordering::SeqCst) > self.tolerated_failures
    }

    /// Retries transient failures with growing waits; returns the last error otherwise.
    async fn with_retries<R, F, Fut>(&self, host: &Host, stage: Stage, mut attempt_once: F) -> Result<R, TransportError>
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

    /// Waits for the rate limiter and the post-resume spacing, unless the run stops first.
    async fn rate_slot(&self) -> bool {
        let mut abort = self.abort.clone();
        let wait = async {
            let now = now_ms();
            if self.not_before_ms > now {
                tokio::time::sleep(Duration::from_millis(self.not_before_ms - now)).await;
            }
            if let Some(limiter) = &self.limiter {
                limiter.until_ready().await;
            }
        };
        tokio::select! {
            () = wait => true,
            _ = abort.wait_for(|a| *a >= Abort::Soft) => false,
        }
    }
}

pub struct RunInputs<T> {
    pub transport: T,
    pub settings: RebootSettings,
    pub retry: RetryPolicy,
    pub journal: JournalWriter,
    pub plan: Plan,
    /// The folded journal of the run being resumed, if any.
    pub prior: Option<RunState>,
    /// For cluster nodes: the Node watcher whose bootID + Ready must confirm each reboot.
    pub api: Option<Arc<crate::adapters::kube::NodeWatch>>,
    /// `--drain`: cordon and drain before each reboot, uncordon once back.
    pub drain: Option<Arc<crate::adapters::kube::Drainer>>,
    /// The cluster lease was taken from another holder: (previous holder, this run's identity).
    pub lease_takeover: Option<(String, String)>,
    /// The nodes' BMCs, for `--transport redfish` and the fallback.
    pub bmc: Option<Arc<crate::adapters::bmc::RedfishPower>>,
    pub fallback: crate::adapters::config::FallbackPolicy,
    /// The cluster these nodes belong to, journaled so that a resume elsewhere is refused.
    pub cluster: Option<fleetboot_core::journal::ClusterIdentity>,
}

/// Runs the plan to the end (or to an abort) and returns the summary. Every event, including
/// the final one, goes to `on_event`.
pub async fn run<T: PowerTransport>(
    inputs: RunInputs<T>,
    abort: (watch::Sender<Abort>, watch::Receiver<Abort>),
    mut on_event: impl FnMut(&Event),
) -> Summary {
    let started = std::time::Instant::now();
    let RunInputs { transport, settings, retry, journal, plan, prior, api, drain, lease_takeover, bmc, fallback, cluster } = inputs;
    let journal_path = journal.path().to_owned();
    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let limiter = settings.rate.map(|rate| rate.limiter());
    let not_before_ms = match (&prior, settings.rate) {
        (Some(state), Some(rate)) => {
            state.records.values().filter_map(|r| r.dispatched_at_ms).max().map_or(0, |last| last + rate.spacing().as_millis() as u64)
        }
        _ => 0,
    };
    let tolerated_failures = settings.max_failures.tolerated(plan.hosts.len());
    let probes = Semaphore::new(settings.parallel);
    let shared = Arc::new(Shared {
        transport,
        settings,
        retry,
        journal: Mutex::new(journal),
        events: events_tx,
        abort: abort.1.clone(),
        abort_trigger: abort.0.clone(),
        failures: AtomicUsize::new(0),
        tolerated_failures,
        limiter,
        not_before_ms,
        probes,
        api: api.clone(),
        drain,
        bmc,
        fallback,
    });

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
            cluster,
        },
        Some(_) => Entry::RunResumed { pid: std::process::id() },
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
    if shared.record(first_entry).is_ok() && takeover.is_none_or(|entry| shared.record(entry).is_ok()) {
        let gate = InFlightGate::new(shared.settings.concurrency);
        tokio::spawn(dispatch(shared.clone(), gate, plan.clone(), prior));
    }
    let mut abort_rx = abort.1.clone();
    let mut announced = Abort::No;
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
    let hosts = plan
        .hosts
        .iter()
        .map(|h| HostOutcome::from_record(&h.name, &h.address, records.get(&h.name).unwrap_or(&HostRecord::pending())))
        .collect();
    let summary =
        Summary { run_id: plan.run_id.clone(), journal: journal_path, hosts, aborted, elapsed_ms: started.elapsed().as_millis() as u64 };
    // A run with hosts still mid-reboot stays open for --resume.
    if summary.hosts.iter().all(|h| h.outcome != fleetboot_core::events::Outcome::Interrupted)
        && let Ok(mut journal) = JournalWriter::reopen(&summary.journal)
    {
        let outcome = format!("{:?}", summary.exit_code()).to_lowercase();
        let _ = journal.append(&Record { v: JOURNAL_VERSION, at_ms: now_ms(), entry: Entry::RunFinished { outcome } });
    }
    on_event(&Event::Finished { summary: summary.clone() });
    summary
}

async fn dispatch<T: PowerTransport>(shared: Arc<Shared<T>>, gate: Arc<InFlightGate>, plan: Plan, prior: Option<RunState>) {
    let mut tasks = tokio::task::JoinSet::new();
    let group_gates: std::collections::HashMap<String, Arc<InFlightGate>> =
        plan.grouping.limits.iter().map(|(g, limit)| (g.clone(), InFlightGate::new(*limit))).collect();
    let group_gate = |host: &str| plan.grouping.group_of(host).and_then(|g| group_gates.get(g)).cloned();
    let resumed_at = now_ms();
    // Hosts a previous run left in flight count against the limit at once.
    for step in plan.steps.iter().filter(|s| matches!(s.action, ResumeAction::AwaitNewBootId | ResumeAction::Check)) {
        let record = prior.as_ref().and_then(|p| p.records.get(&step.host.name)).cloned().unwrap_or_else(HostRecord::pending);
        let pass = gate.enter_regardless();
        let group_pass = group_gate(&step.host.name).map(|g| g.enter_regardless());
        let shared = shared.clone();
        let host = step.host.clone();
        let action = step.action;
        tasks.spawn(async move {
            let _passes = (pass, group_pass);
            let old = record.old_boot_id.clone().unwrap_or_default();
            let since = record.dispatched_at_ms.unwrap_or_else(now_ms);
            let ssh_usable = !record.ssh_unusable;
            // Journals from before attempts were recorded: one SSH reboot at the dispatch.
            let mut attempts = if record.attempts.is_empty() {
                vec![Attempt { bmc: None, at_ms: since, handed_over: record.phase != Phase::Dispatching }]
            } else {
                record.attempts.clone()
            };
            // A resumed wait gets a full window from now: the node may have been fixed while
            // fleetboot was not running, and is still booting.
            // (A reboot never seen handed over keeps its time: the ladder decides from it
            // whether it was lost.)
            if let Some(last) = attempts.last_mut().filter(|a| a.handed_over) {
                last.at_ms = last.at_ms.max(resumed_at);
            }
            let last_sent = attempts.last().map_or(since, |a| a.at_ms);
            let watched = match action {
                ResumeAction::Check => Ok(last_sent),
                _ => watch_for_new_boot(&shared, &host, &old, attempts, record.phase == Phase::Down, ssh_usable).await,
            };
            if let Ok(last_sent) = watched {
                let _ = confirm(&shared, &host, &old, last_sent, ssh_usable).await;
            }
        });
    }
    // A node an interrupted run left cordoned, with nothing more to do, is uncordoned now.
    if let (Some(drain), Some(prior)) = (&shared.drain, &prior) {
        for (name, record) in &prior.records {
            if record.cordoned
                && matches!(record.phase, Phase::Confirmed | Phase::Failed | Phase::Skipped | Phase::Cancelled)
                && drain.set_unschedulable(name, false).await.is_ok()
            {
                let _ = shared.record(Entry::Uncordoned { host: name.clone() });
            }
        }
    }
    let mut abort = shared.abort.clone();
    let mut steps = plan.steps.iter().filter(|s| s.action == ResumeAction::Reboot);
    let mut others_finished = false;
    while let Some(step) = steps.next() {
        if plan.grouping.is_last(&step.host.name) && !others_finished {
            // The control plane waits until every other host is finished.
            while tasks.join_next().await.is_some() {}
            others_finished = true;
        }
        let group = group_gate(&step.host.name);
        let pass = tokio::select! {
            pass = async {
                let total = gate.enter().await;
                let in_group = match &group {
                    Some(g) => Some(g.enter().await),
                    None => None,
                };
                (total, in_group)
            } => Some(pass),
            _ = abort.wait_for(|a| *a >= Abort::Soft) => None,
        };
        let stop_reason = match pass {
            None => Some("the run was interrupted before this host started"),
            Some(_) if shared.budget_spent() => Some("the failure budget (--max-failures) was spent"),
            Some(_) => None,
        };
        if let Some(reason) = stop_reason {
            for skipped in std::iter::once(step).chain(steps.by_ref()) {
                if shared.abort_level() == Abort::Hard {
                    break;
                }
                let _ = shared.record(Entry::Skipped { host: skipped.host.name.clone(), reason: reason.to_owned() });
            }
            break;
        }
        let shared = shared.clone();
        let host = step.host.clone();
        tasks.spawn(async move {
            let _pass = pass;
            reboot_host(&shared, &host).await;
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// One host from the start: boot ID, journaled intent, the command, then the proof.
async fn reboot_host<T: PowerTransport>(shared: &Shared<T>, host: &Host) {
    use crate::adapters::config::TransportChoice;
    use crate::adapters::redfish::RestartKind;
    let name = || host.name.clone();
    let fail = |stage, error: String| {
        let _ = shared.record(Entry::Failed { host: name(), stage, error, may_reboot: false });
    };
    // The boot ID before: over SSH, or, for a node SSH cannot reach but its BMC can, from
    // the cluster API (the only other place that shows the new one afterwards).
    let (old, ssh_usable) = match shared.with_retries(host, Stage::Connect, || shared.transport.read_boot_id(host)).await {
        Ok(id) => (id, true),
        Err(e) if shared.falls_back_on(host, &e) => match current_api_boot_id(shared, host).await {
            Some(id) => {
                let reason = format!("SSH cannot reach it ({e})");
                if shared.record(Entry::FallingBack { host: name(), reason, ssh_reached: false }).is_err() {
                    return;
                }
                (id, false)
            }
            None => {
                return fail(
                    Stage::Connect,
                    format!("{e}; its BMC could reboot it, but without SSH or the cluster API no new boot ID could prove it"),
                );
            }
        },
        Err(e) => return fail(Stage::Connect, e.to_string()),
    };
    if shared.record(Entry::BootIdRead { host: name(), boot_id: old.clone() }).is_err() {
        return;
    }
    // The limits are checked at the last moment, right before the command goes out.
    let skip = |reason: &str| shared.record(Entry::Skipped { host: name(), reason: reason.to_owned() });
    if !shared.rate_slot().await || shared.abort_level() != Abort::No {
        let _ = skip("the run was interrupted before this host started");
        return;
    }
    if shared.budget_spent() {
        let _ = skip("the failure budget (--max-failures) was spent");
        return;
    }
    if let Some(drain) = &shared.drain
        && drain_node(shared, drain, host).await.is_err()
    {
        return;
    }
    let by_bmc = !ssh_usable || (shared.settings.transport == TransportChoice::Redfish && shared.has_bmc(host));
    if shared.settings.transport == TransportChoice::Redfish && !shared.has_bmc(host) {
        return fail(Stage::Dispatch, "--transport redfish, but no BMC is known for this node".into());
    }
    let first = if by_bmc {
        match shared.bmc_reset(host, &old, RestartKind::Graceful, false).await {
            Ok(at) => Attempt { bmc: Some(RestartKind::Graceful), at_ms: at, handed_over: true },
            Err(()) => return,
        }
    } else {
        let Ok(sent) = ssh_dispatch(shared, host, &old).await else { return };
        match sent {
            Ok(at) => Attempt { bmc: None, at_ms: at, handed_over: true },
            Err(e) if shared.falls_back_on(host, &e) => {
                let reason = format!("the SSH reboot never reached it ({e})");
                if shared.record(Entry::FallingBack { host: name(), reason, ssh_reached: true }).is_err() {
                    return;
                }
                match shared.bmc_reset(host, &old, RestartKind::Graceful, false).await {
                    Ok(at) => Attempt { bmc: Some(RestartKind::Graceful), at_ms: at, handed_over: true },
                    Err(()) => return,
                }
            }
            Err(e) => return fail(Stage::Dispatch, e.to_string()),
        }
    };
    if let Ok(last_sent) = watch_for_new_boot(shared, host, &old, vec![first], false, ssh_usable).await {
        let _ = confirm(shared, host, &old, last_sent, ssh_usable).await;
    }
}

async fn current_api_boot_id<T: PowerTransport>(shared: &Shared<T>, host: &Host) -> Option<String> {
    shared.api.as_ref()?.boot_id(&host.name).await
}

/// Journals the intent, then hands the reboot over SSH. Ok(Ok(at)): handed over, sent at `at`;
/// Ok(Err(e)): nothing reached the host; Err(()): the journal could not be written.
async fn ssh_dispatch<T: PowerTransport>(shared: &Shared<T>, host: &Host, old: &str) -> Result<Result<u64, TransportError>, ()> {
    shared.record(Entry::Dispatching { host: host.name.clone(), old_boot_id: old.to_owned(), bmc: None })?;
    let at = now_ms();
    // Retrying is safe: send_reboot fails only when nothing reached the host.
    match shared.with_retries(host, Stage::Dispatch, || shared.transport.send_reboot(host)).await {
        Ok(delivery) => {
            shared.record(Entry::Dispatched { host: host.name.clone(), delivery, reset_type: None })?;
            Ok(Ok(at))
        }
        Err(e) => Ok(Err(e)),
    }
}

/// Watches until the host shows a boot ID other than `old`: over SSH (each poll one
/// connection), or, for a node SSH cannot reach, through the cluster API's Node watch.
/// Between polls the escalation ladder decides: keep waiting, reset through the BMC, or fail.
/// Ok: back, with the time the last reboot was sent (the API's deadline counts from there).
async fn watch_for_new_boot<T: PowerTransport>(
    shared: &Shared<T>,
    host: &Host,
    old: &str,
    mut attempts: Vec<Attempt>,
    already_down: bool,
    ssh_usable: bool,
) -> Result<u64, ()> {
    use fleetboot_core::escalation::Next;
    let name = || host.name.clone();
    let ladder = shared.ladder(host);
    let mut down = already_down;
    let mut abort = shared.abort.clone();
    let mut cancel_tried = false;
    // Whether the last answer carried the old boot ID: decides the failure text.
    let mut answered_with_old = false;
    loop {
        // Look first: a resumed host may have come back while fleetboot was not running.
        if shared.abort_level() == Abort::Hard {
            return Err(());
        }
        let next = ladder.next(&attempts, now_ms(), fleetboot_core::escalation::Seen::default());
        if ssh_usable {
            let probe = {
                let _permit = shared.probes.acquire().await.expect("never closed");
                shared.transport.read_boot_id(host).await
            };
            answered_with_old = matches!(&probe, Ok(id) if id == old);
            match probe {
                Ok(id) if id == old => {}
                Ok(id) => {
                    shared.record(Entry::Back { host: name(), new_boot_id: id, api_only: false })?;
                    return Ok(attempts.last().map_or(0, |a| a.at_ms));
                }
                Err(TransportError::HostKey(reason)) => {
                    let error = format!("after the reboot: {reason}");
                    let _ = shared.record(Entry::Failed { host: name(), stage: Stage::Confirm, error, may_reboot: true });
                    return Err(());
                }
                Err(e) if e.is_transient() => {
                    if !down {
                        down = true;
                        shared.record(Entry::Down { host: name() })?;
                    }
                }
                // An authentication or command failure while the host shuts down or boots is
                // expected for a moment; the deadline decides.
                Err(_) => {}
            }
        } else if let (Some(api), Next::WaitUntil(until)) = (&shared.api, next) {
            // No SSH: the Node watch wakes this on the node's own events until the next step.
            let mut abort = shared.abort.clone();
            tokio::select! {
                seen = api.wait_back(&host.name, old, until) => if let Ok(id) = seen {
                    shared.record(Entry::Back { host: name(), new_boot_id: id, api_only: true })?;
                    return Ok(attempts.last().map_or(0, |a| a.at_ms));
                },
                _ = abort.wait_for(|a| *a == Abort::Hard) => return Err(()),
            }
            continue;
        }
        let now = now_ms();
        let seen = fleetboot_core::escalation::Seen { old_boot_id: answered_with_old, went_down: down };
        let until = match ladder.next(&attempts, now, seen) {
            Next::WaitUntil(until) => until,
            Next::ResendSsh => {
                let reason = format!(
                    "the reboot sent before fleetboot was interrupted never arrived: boot ID still {old}, never down; sending it again"
                );
                let _ = shared.events.send(Event::Warning { host: Some(name()), message: reason });
                match ssh_dispatch(shared, host, old).await? {
                    Ok(at) => attempts.push(Attempt { bmc: None, at_ms: at, handed_over: true }),
                    Err(e) => {
                        let _ =
                            shared.record(Entry::Failed { host: name(), stage: Stage::Dispatch, error: e.to_string(), may_reboot: false });
                        return Err(());
                    }
                }
                continue;
            }
            Next::Reset(kind) => {
                let waited = humantime::format_duration(Duration::from_millis(
                    now.saturating_sub(attempts.last().map_or(now, |a| a.at_ms)) / 1000 * 1000,
                ));
                let reason = match attempts.last().and_then(|a| a.bmc) {
                    None => format!("no new boot ID {waited} after the SSH reboot (boot ID still {old}); a hung node"),
                    Some(_) => format!("no new boot ID {waited} after the BMC's orderly restart; forcing it"),
                };
                shared.record(Entry::FallingBack { host: name(), reason, ssh_reached: ssh_usable })?;
                let at = shared.bmc_reset(host, old, kind, true).await?;
                attempts.push(Attempt { bmc: Some(kind), at_ms: at, handed_over: true });
                continue;
            }
            Next::GiveUp => {
                let limit = humantime::format_duration(shared.settings.timeout);
                let error = match (answered_with_old, down, ssh_usable) {
                    (_, _, false) => format!("the cluster API did not show node {} Ready with a new boot ID within {limit}", host.name),
                    (true, true, true) => {
                        format!("reboot not observed: the host was unreachable for a while but its boot ID is still {old} after {limit}")
                    }
                    (true, false, true) => format!("reboot not observed: boot ID still {old} after {limit}"),
                    (false, _, true) => format!("the host went down but did not come back within {limit}"),
                };
                let _ = shared.record(Entry::Failed { host: name(), stage: Stage::Confirm, error, may_reboot: true });
                return Err(());
            }
        };
        let pause = shared.settings.poll_interval.min(Duration::from_millis(until.saturating_sub(now)));
        let cancel_on_soft = !cancel_tried && !down && ssh_usable && shared.settings.cancel_pending_on_abort;
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            level = async { abort.wait_for(|a| *a == Abort::Hard || (*a == Abort::Soft && cancel_on_soft)).await.map(|r| *r).ok() } => {
                if level != Some(Abort::Soft) {
                    return Err(());
                }
                cancel_tried = true;
                if try_cancel(shared, host, old).await? {
                    return Err(());
                }
            }
        }
    }
}

/// `shutdown -c` on a host whose reboot is scheduled but not begun. Ok(true): cancelled.
async fn try_cancel<T: PowerTransport>(shared: &Shared<T>, host: &Host, old: &str) -> Result<bool, ()> {
    match shared.transport.cancel_reboot(host).await {
        Ok(()) => match shared.transport.read_boot_id(host).await {
            Ok(id) if id == old => {
                shared.record(Entry::Cancelled { host: host.name.clone() })?;
                Ok(true)
            }
            _ => Ok(false),
        },
        Err(e) => {
            let _ = shared
                .events
                .send(Event::Warning { host: Some(host.name.clone()), message: format!("could not cancel the pending reboot: {e}") });
            Ok(false)
        }
    }
}

async fn confirm<T: PowerTransport>(shared: &Shared<T>, host: &Host, old: &str, since_ms: u64, ssh_usable: bool) -> Result<(), ()> {
    if let Some(api) = &shared.api {
        // The API must agree: the node Ready with a boot ID other than the old one. An API
        // outage (the masters rebooting) only delays this; the reboot deadline decides.
        let deadline_ms = since_ms + shared.settings.timeout.as_millis() as u64;
        let mut abort = shared.abort.clone();
        let evidence = tokio::select! {
            evidence = api.wait_back(&host.name, old, deadline_ms) => evidence,
            _ = abort.wait_for(|a| *a == Abort::Hard) => return Err(()),
        };
        match evidence {
            Ok(boot_id) => shared.record(Entry::ApiConfirmed { host: host.name.clone(), boot_id })?,
            Err(error) => {
                shared.record(Entry::Failed { host: host.name.clone(), stage: Stage::Confirm, error, may_reboot: false })?;
                return Err(());
            }
        }
    }
    if let Some(check) = &shared.settings.check_command
        && !ssh_usable
    {
        let error = format!("the check `{check}` needs SSH, which cannot reach this node");
        shared.record(Entry::Failed { host: host.name.clone(), stage: Stage::Check, error, may_reboot: false })?;
        return Err(());
    }
    if let Some(check) = &shared.settings.check_command
        && let Err(e) = shared.with_retries(host, Stage::Check, || shared.transport.run_check(host, check)).await
    {
        shared.record(Entry::Failed { host: host.name.clone(), stage: Stage::Check, error: e.to_string(), may_reboot: false })?;
        return Err(());
    }
    shared.record(Entry::Confirmed { host: host.name.clone() })?;
    uncordon(shared, host).await;
    Ok(())
}

async fn uncordon<T: PowerTransport>(shared: &Shared<T>, host: &Host) {
    if let Some(drain) = &shared.drain {
        match drain.set_unschedulable(&host.name, false).await {
            Ok(()) => {
                let _ = shared.record(Entry::Uncordoned { host: host.name.clone() });
            }
            Err(message) => {
                let _ = shared.events.send(Event::Warning { host: Some(host.name.clone()), message });
            }
        }
    }
}

/// Cordon, then evict. Err: the host does not go on (failed or skipped, and uncordoned).
async fn drain_node<T: PowerTransport>(shared: &Shared<T>, drain: &crate::adapters::kube::Drainer, host: &Host) -> Result<(), ()> {
    use fleetboot_core::nodes::DrainFailure;
    let name = || host.name.clone();
    shared.record(Entry::Cordoning { host: name() })?;
    if let Err(error) = drain.set_unschedulable(&host.name, true).await {
        shared.record(Entry::Failed { host: name(), stage: Stage::Drain, error, may_reboot: false })?;
        uncordon(shared, host).await;
        return Err(());
    }
    match drain.evict_all(&host.name).await {
        Ok(evicted) => shared.record(Entry::Drained { host: name(), evicted }),
        Err(left) if drain.on_failure == DrainFailure::Force => {
            drain.delete_pods(&left).await;
            shared.record(Entry::Drained { host: name(), evicted: left.len() })
        }
        Err(left) => {
            let why = format!("pods still on the node after {}: {}", humantime::format_duration(drain.timeout), left.join(", "));
            if drain.on_failure == DrainFailure::Skip {
                shared.record(Entry::Skipped { host: name(), reason: why })?;
            } else {
                shared.record(Entry::Failed { host: name(), stage: Stage::Drain, error: why, may_reboot: false })?;
            }
            uncordon(shared, host).await;
            Err(())
        }
    }
}
