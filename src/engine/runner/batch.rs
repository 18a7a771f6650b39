//! Batch rules in the run: the maintenance windows (no new reboot starts outside them; hosts in
//! flight always finish), the boot IDs of the plan (a host rebooted since, by anyone, is done)
//! and `--only-if` (a host that does not need the reboot is journaled `not_needed`).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;

use super::{Abort, Shared, Stop};
use crate::adapters::alerts::AlertSource;
use crate::adapters::tz::IanaZone;
use fleetboot_core::batch::{
    BatchSettings, DrainStep, IN_PROGRESS_ANNOTATION, Window, WindowState, blocking_alerts, blocking_pods, not_needed_reason,
    rebooted_since_plan_reason, unhealthy_because, window_state,
};
use fleetboot_core::events::Event;
use fleetboot_core::hosts::Host;
use fleetboot_core::journal::Entry;
use fleetboot_core::journal::Stage;
use fleetboot_core::transport::{PowerTransport, TransportError};

/// The run's batch settings, ready to use.
pub(super) struct Batch {
    windows: Vec<Window>,
    zone: IanaZone,
    zone_name: String,
    exit: bool,
    only_if: Option<String>,
    reads_plan_boot_ids: bool,
    /// The hold each waiter is under now (`""`: the dispatcher's window gate; else the host
    /// whose gates hold it), so a hold is journaled once while any waiter is under it, however
    /// many hosts wait at once and for whatever other reasons.
    held: Mutex<HashMap<String, String>>,
    /// `--window-exit` stopped the run.
    pub(super) window_closed: Arc<AtomicBool>,
    block_on_pods: Option<String>,
    block_on_pods_on_node: bool,
    healthy_checks: u32,
    healthy_interval: Duration,
    health_command: Option<String>,
    soak: Duration,
    pub(super) drain_escalation: Vec<DrainStep>,
    /// When each group's last node was proven (`--soak`), in ms on the run's clock (a resume
    /// starts from the journal's `confirmed` times); "" for hosts in no group.
    last_proven: Mutex<HashMap<String, u64>>,
    /// Hosts deferred to the end of the queue, not yet taken back by the dispatcher.
    deferred: Mutex<VecDeque<Host>>,
    /// `--block-on-alerts` and the names `--alert-filter-regexp` ignores.
    alerts: Option<(AlertSource, Option<regex::Regex>)>,
    pre_reboot_labels: std::collections::BTreeMap<String, String>,
    post_reboot_labels: std::collections::BTreeMap<String, String>,
    in_progress_annotation: bool,
    run_id: String,
}

/// What the window gate says about starting a host now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Gate {
    Open,
    /// `--window-exit`: the windows are closed; nothing new starts in this process.
    Closed,
    /// The run was interrupted while it waited.
    Aborted,
    /// The journal cannot be written.
    Broken,
}

/// The skip reason of hosts left for later by `--window-exit`.
pub(super) const WINDOW_EXIT_REASON: &str = "outside the maintenance windows (--window-exit); --resume continues";

impl Batch {
    pub(super) fn new(settings: &BatchSettings, run_id: &str) -> Batch {
        // The zone was checked when the flag was read (and when the journal was written).
        let zone_name = settings.zone_name().to_owned();
        let zone = IanaZone::named(&zone_name).unwrap_or_else(|_| IanaZone::named("UTC").expect("UTC is in every tz database"));
        Batch {
            windows: settings.windows.clone(),
            zone,
            zone_name,
            exit: settings.window_exit,
            only_if: settings.only_if.clone(),
            reads_plan_boot_ids: settings.reads_plan_boot_ids(),
            held: Mutex::new(HashMap::new()),
            window_closed: Arc::new(AtomicBool::new(false)),
            block_on_pods: settings.block_on_pods.clone(),
            block_on_pods_on_node: settings.block_on_pods_on_node,
            healthy_checks: settings.healthy_checks,
            healthy_interval: Duration::from_millis(settings.healthy_interval_ms()),
            health_command: settings.health_command.clone(),
            soak: Duration::from_millis(settings.soak_ms),
            drain_escalation: settings.drain_escalation.clone(),
            last_proven: Mutex::new(HashMap::new()),
            deferred: Mutex::new(VecDeque::new()),
            // Both were checked when the flags were read (and the journal written).
            alerts: settings
                .block_on_alerts
                .as_deref()
                .and_then(|url| AlertSource::new(url).ok())
                .map(|source| (source, settings.alert_filter.as_deref().and_then(|f| regex::Regex::new(f).ok()))),
            pre_reboot_labels: settings.pre_reboot_labels.clone(),
            post_reboot_labels: settings.post_reboot_labels.clone(),
            in_progress_annotation: settings.in_progress_annotation,
            run_id: run_id.to_owned(),
        }
    }

    /// A node of `group` was proven at `at_ms`: the group's soak starts then (the latest wins).
    pub(super) fn proven(&self, group: Option<&str>, at_ms: u64) {
        if !self.soak.is_zero() {
            let mut last = self.last_proven.lock().unwrap();
            let at = last.entry(group.unwrap_or_default().to_owned()).or_insert(at_ms);
            *at = (*at).max(at_ms);
        }
    }

    pub(super) fn defer(&self, host: &Host) {
        self.deferred.lock().unwrap().push_back(host.clone());
    }

    fn describe_windows(&self) -> String {
        let list: Vec<String> = self.windows.iter().map(ToString::to_string).collect();
        format!("{} ({})", list.join(", "), self.zone_name)
    }
}

/// The pause between countdown events: every minute, every 10 s in the last ten minutes.
fn countdown_step(remaining: Duration) -> Duration {
    let step = if remaining > Duration::from_secs(600) { Duration::from_secs(60) } else { Duration::from_secs(10) };
    remaining.min(step)
}

impl<T: PowerTransport> Shared<T> {
    /// Journals a hold of `waiter` (`""`: the window gate, else a host) once: not while any
    /// waiter is already under the same one (reason and opening time).
    async fn hold(&self, waiter: &str, reason: String, until_ms: Option<u64>) -> Result<bool, Stop> {
        let key = format!("{reason}@{until_ms:?}");
        {
            let mut held = self.batch.held.lock().unwrap();
            let known = held.values().any(|k| *k == key);
            held.insert(waiter.to_owned(), key);
            if known {
                return Ok(false);
            }
        }
        self.record(Entry::Held { reason, until_ms }).await.map(|()| true)
    }

    /// `waiter` is under no hold any more.
    fn unhold(&self, waiter: &str) {
        self.batch.held.lock().unwrap().remove(waiter);
    }

    /// Whether a window is open now (no windows: always), without waiting.
    pub(super) fn window_open_now(&self) -> bool {
        let batch = &self.batch;
        batch.windows.is_empty()
            || matches!(
                window_state(&batch.windows, &batch.zone, self.clock.wall_ms() as i64),
                WindowState::Always | WindowState::Open { .. }
            )
    }

    /// Why `host` may not be sent its reboot now after all (the window closed, a blocker came),
    /// read right before the reboot, after a drain that may have waited long; `None`: it may.
    pub(super) async fn window_or_blocker_now(&self, host: &Host) -> Option<String> {
        if !self.window_open_now() {
            return Some(format!("outside the maintenance windows {}", self.batch.describe_windows()));
        }
        self.blocker(host).await
    }

    /// Whether a blocker (`--block-on-pods`, `--block-on-alerts`) holds `host` back now: read
    /// again right before the host is touched, after whatever waited since [`Self::gates_clear`].
    pub(super) async fn blocked_now(&self, host: &Host) -> bool {
        self.blocker(host).await.is_some()
    }

    /// Waits until a window is open (a countdown while it waits), or says why not: with
    /// `--window-exit` a closed window stops the run's new starts at once.
    pub(super) async fn window_gate(&self) -> Gate {
        let batch = &self.batch;
        if batch.windows.is_empty() {
            return Gate::Open;
        }
        let mut abort = self.abort.clone();
        loop {
            if batch.window_closed.load(Ordering::SeqCst) {
                return Gate::Closed;
            }
            if self.abort_level() != Abort::No {
                return Gate::Aborted;
            }
            // The wall clock, read each time: a bastion that slept (its monotonic clock stopped)
            // sees the window at the right time, at most one countdown step after it wakes.
            let now = self.clock.wall_ms();
            let opens_at = match window_state(&batch.windows, &batch.zone, now as i64) {
                WindowState::Always | WindowState::Open { .. } => {
                    self.unhold("");
                    return Gate::Open;
                }
                WindowState::Closed { opens_at_ms } => opens_at_ms.max(0) as u64,
            };
            let reason = format!(
                "outside the maintenance windows {}; the next opens at {}",
                batch.describe_windows(),
                batch.zone.show(opens_at as i64)
            );
            if batch.exit {
                batch.window_closed.store(true, Ordering::SeqCst);
                let reason = format!("{reason}; --window-exit: no new reboot in this run, --resume continues");
                return match self.hold("", reason, Some(opens_at)).await {
                    Ok(_) => Gate::Closed,
                    Err(_) => Gate::Broken,
                };
            }
            if self.hold("", reason.clone(), Some(opens_at)).await.is_err() {
                return Gate::Broken;
            }
            let remaining = Duration::from_millis(opens_at.saturating_sub(now));
            let _ = self.events.send(Event::Held { reason, until_ms: Some(opens_at), remaining_ms: Some(remaining.as_millis() as u64) });
            tokio::select! {
                () = tokio::time::sleep(countdown_step(remaining)) => {}
                _ = super::abort_reaches(&mut abort, |a| *a != Abort::No) => return Gate::Aborted,
            }
        }
    }

    /// Reads every host's boot ID when a batch run starts (not a resume: its journal has them),
    /// through the cluster API for nodes that show one, else through the transport, at most
    /// `parallel` at once. A host that cannot be read has none: it is simply rebooted.
    pub(super) async fn read_plan_boot_ids(&self, hosts: &[Host]) -> Result<(), Stop> {
        if !self.batch.reads_plan_boot_ids {
            return Ok(());
        }
        let reads = futures::stream::iter(hosts.iter().cloned())
            .map(|host| async move {
                let _permit = self.probes.acquire().await;
                let from_api = match self.api_for(&host) {
                    Some(api) => api.boot_id(&host.name).await,
                    None => None,
                };
                let id = match from_api {
                    Some(id) => Some(id),
                    None => self.transport.read_boot_id(&host).await.ok(),
                };
                (host, id)
            })
            .buffer_unordered(self.settings.parallel.max(1));
        let read: Vec<(Host, Option<String>)> = reads.collect().await;
        for (host, id) in read {
            if let Some(boot_id) = id {
                self.record(Entry::Planned { host: host.name.clone(), boot_id }).await?;
            }
        }
        Ok(())
    }

    /// Whether this host still needs its reboot, right before it starts: not when its boot ID
    /// changed since the plan (rebooted by anyone: done), nor when `--only-if` exits non-zero.
    /// Either is journaled `not_needed`; `Err`: the host's task stops (journaled).
    pub(super) async fn still_needed(&self, host: &Host) -> Result<(), Stop> {
        let planned = self.records.lock().unwrap().get(&host.name).and_then(|r| r.planned_boot_id.clone());
        if let Some(planned) = planned {
            let now = match self.with_retries(host, Stage::Connect, || self.transport.read_boot_id(host)).await {
                Ok(id) => Some(id),
                Err(_) => match self.api_for(host) {
                    Some(api) => api.boot_id(&host.name).await,
                    None => None,
                },
            };
            // Unreadable now: the reboot's own first look decides (and fails it if need be).
            if let Some(now) = now
                && now != planned
            {
                let reason = rebooted_since_plan_reason(&planned, &now);
                return Err(self.not_needed(host, reason).await);
            }
        }
        let Some(command) = self.batch.only_if.clone() else { return Ok(()) };
        match self.with_retries(host, Stage::Connect, || self.transport.run_check(host, &command)).await {
            Ok(()) => Ok(()),
            Err(TransportError::CommandFailed { exit, .. }) => Err(self.not_needed(host, not_needed_reason(&command, exit)).await),
            Err(e) => Err(self.fail(host, Stage::Connect, format!("could not run --only-if `{command}`: {e}"), false).await),
        }
    }

    pub(super) async fn not_needed(&self, host: &Host, reason: String) -> Stop {
        match self.record(Entry::NotNeeded { host: host.name.clone(), reason }).await {
            Ok(()) => Stop::Journaled,
            Err(stop) => stop,
        }
    }
}

impl<T: PowerTransport> Shared<T> {
    /// Takes back every host deferred since the last call, in order.
    pub(super) fn take_deferred(&self) -> Vec<Host> {
        self.batch.deferred.lock().unwrap().drain(..).collect()
    }

    pub(super) fn has_deferred(&self) -> bool {
        !self.batch.deferred.lock().unwrap().is_empty()
    }

    /// Waits, right before `host` is touched, until nothing holds new reboots back: pods
    /// matching `--block-on-pods` (anywhere, or on the node), the group's `--soak`, and the
    /// health gate (`--healthy-checks` healthy checks in a row). While it waits the reason is
    /// journaled (`held`, once per reason) and shown; it waits as long as it takes (an
    /// interrupt stops it: the host is skipped, nothing touched).
    pub(super) async fn gates_clear(&self, host: &Host) -> Result<(), Stop> {
        let batch = &self.batch;
        if batch.block_on_pods.is_none() && batch.alerts.is_none() && batch.healthy_checks == 0 && batch.soak.is_zero() {
            return Ok(());
        }
        let mut abort = self.abort.clone();
        let skip = async |reason: &str| match self.skip(host, reason).await {
            Ok(()) => Stop::Journaled,
            Err(stop) => stop,
        };
        loop {
            if self.abort_level() != Abort::No {
                return Err(skip("the run was interrupted before this host started").await);
            }
            let (reason, until, pause) = match self.first_gate_closed(host).await {
                None => {
                    self.unhold(&host.name);
                    return Ok(());
                }
                Some(held) => held,
            };
            let now = self.clock.now_ms();
            let until_ms = until.map(|at| self.clock.ms_of(at));
            if self.hold(&host.name, reason.clone(), until_ms).await? {
                let remaining_ms = until_ms.map(|at| at.saturating_sub(now));
                let _ = self.events.send(Event::Held { reason, until_ms, remaining_ms });
            }
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = super::abort_reaches(&mut abort, |a| *a != Abort::No) => {}
            }
        }
    }

    /// The blocker pods or firing alerts that hold `host` back now, said as the reason.
    async fn blocker(&self, host: &Host) -> Option<String> {
        let batch = &self.batch;
        if let (Some(selector), Some(api)) = (&batch.block_on_pods, self.api.as_ref()) {
            let on_node = batch.block_on_pods_on_node.then_some(host.name.as_str());
            match api.pods_matching(selector).await {
                Ok(pods) => {
                    let blocking = blocking_pods(&pods, on_node);
                    if !blocking.is_empty() {
                        let place = on_node.map_or(String::new(), |n| format!(" on {n}"));
                        return Some(format!("pods matching {selector:?} run{place}: {}", blocking.join(", ")));
                    }
                }
                Err(e) => return Some(format!("--block-on-pods: {e}")),
            }
        }
        if let Some((source, ignored)) = &batch.alerts {
            match source.alerts().await {
                Ok(alerts) => {
                    let firing = blocking_alerts(&alerts, |name| ignored.as_ref().is_some_and(|r| r.is_match(name)));
                    if !firing.is_empty() {
                        return Some(format!("alerts firing at {}: {}", source.shown, firing.join(", ")));
                    }
                }
                Err(e) => return Some(format!("--block-on-alerts: {e}")),
            }
        }
        None
    }

    /// The first gate that holds `host` back now: (why, until when if known, when to look
    /// again). The health gate checks `--healthy-checks` times, `--healthy-interval` apart.
    async fn first_gate_closed(&self, host: &Host) -> Option<(String, Option<Instant>, Duration)> {
        let batch = &self.batch;
        let poll = self.settings.poll_interval.max(Duration::from_millis(100));
        if let Some(reason) = self.blocker(host).await {
            return Some((reason, None, poll));
        }
        if !batch.soak.is_zero() {
            let group = self.grouping.group_of(&host.name).unwrap_or_default().to_owned();
            let last = batch.last_proven.lock().unwrap().get(&group).copied();
            let now = self.clock.now_ms();
            if let Some(ends_ms) = last.map(|at| at + batch.soak.as_millis() as u64).filter(|ends| *ends > now) {
                let what = if group.is_empty() { String::new() } else { format!(" of group {group}") };
                let reason = format!("soaking after the last node{what} was proven (--soak {})", humantime::format_duration(batch.soak));
                return Some((reason, Some(self.clock.instant_of(ends_ms)), Duration::from_millis(ends_ms - now)));
            }
        }
        for check in 1..=batch.healthy_checks {
            if check > 1 {
                tokio::time::sleep(batch.healthy_interval).await;
            }
            if let Some(why) = self.unhealthy(host).await {
                return Some((format!("the cluster is not healthy: {why}"), None, batch.healthy_interval));
            }
        }
        None
    }

    /// The health gate's verdict now (one check), when the gate is on: why not healthy.
    pub(super) async fn unhealthy_now(&self, host: &Host) -> Option<String> {
        if self.batch.healthy_checks == 0 {
            return None;
        }
        self.unhealthy(host).await.map(|why| format!("the cluster is not healthy: {why}"))
    }

    /// One health check: why the cluster is not healthy, or `None`.
    async fn unhealthy(&self, host: &Host) -> Option<String> {
        let mut exclude: BTreeSet<String> = self.in_flight.lock().unwrap().clone();
        exclude.remove(&host.name);
        let view = match &self.api {
            Some(api) => match api.health(&exclude).await {
                Ok(view) => view.unwrap_or_default(),
                Err(e) => return Some(e),
            },
            None => Default::default(),
        };
        let command = match &self.batch.health_command {
            Some(command) => run_health_command(command).await.err(),
            None => None,
        };
        unhealthy_because(&view, command.as_deref())
    }
}

/// `--health-command`, run here by `sh -c` with a minute to answer: Err(why) unless it exits 0.
async fn run_health_command(command: &str) -> Result<(), String> {
    let run = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status();
    match tokio::time::timeout(Duration::from_secs(60), run).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("`{command}` exited {}", status.code().map_or("by a signal".to_owned(), |c| c.to_string()))),
        Ok(Err(e)) => Err(format!("`{command}` could not run: {e}")),
        Err(_) => Err(format!("`{command}` did not finish within a minute")),
    }
}

impl<T: PowerTransport> Shared<T> {
    /// Labels and annotations on a cluster node; a failure is a warning (the reboot goes on).
    async fn mark(&self, host: &Host, labels: BTreeMap<String, Option<String>>, annotations: BTreeMap<String, Option<String>>) {
        if labels.is_empty() && annotations.is_empty() {
            return;
        }
        let Some(api) = self.api_for(host) else { return };
        if let Err(e) = api.mark(&host.name, &labels, &annotations).await {
            self.warn(host, e);
        }
    }

    /// The node is in flight from here: `fleetboot.io/reboot-in-progress: RUN`.
    pub(super) async fn mark_in_flight(&self, host: &Host) {
        if self.batch.in_progress_annotation {
            let annotation = [(IN_PROGRESS_ANNOTATION.to_owned(), Some(self.batch.run_id.clone()))].into();
            self.mark(host, BTreeMap::new(), annotation).await;
        }
    }

    /// Right before the reboot is sent: `--pre-reboot-label`s.
    pub(super) async fn mark_before_reboot(&self, host: &Host) {
        let labels = self.batch.pre_reboot_labels.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
        self.mark(host, labels, BTreeMap::new()).await;
    }

    /// The host's way is over: the annotation goes, and once proven, `--post-reboot-label`s.
    pub(super) async fn mark_done(&self, host: &Host, proven: bool) {
        let labels = if proven {
            self.batch.post_reboot_labels.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect()
        } else {
            BTreeMap::new()
        };
        let annotations =
            if self.batch.in_progress_annotation { [(IN_PROGRESS_ANNOTATION.to_owned(), None)].into() } else { BTreeMap::new() };
        self.mark(host, labels, annotations).await;
    }
}
