//! Batch rules in the run: the maintenance windows (no new reboot starts outside them; hosts in
//! flight always finish), the boot IDs of the plan (a host rebooted since, by anyone, is done)
//! and `--only-if` (a host that does not need the reboot is journaled `not_needed`).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;

use super::{Abort, Shared, Stop};
use crate::adapters::tz::IanaZone;
use fleetboot_core::batch::{BatchSettings, Window, WindowState, not_needed_reason, rebooted_since_plan_reason, window_state};
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
    /// The hold last journaled (`held`), so each is journaled once.
    held: Mutex<Option<String>>,
    /// `--window-exit` stopped the run.
    pub(super) window_closed: Arc<AtomicBool>,
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
    pub(super) fn new(settings: &BatchSettings) -> Batch {
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
            held: Mutex::new(None),
            window_closed: Arc::new(AtomicBool::new(false)),
        }
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
    /// Journals a run-wide hold once (a new reason, or a new opening time).
    fn hold(&self, reason: String, until_ms: Option<u64>) -> Result<(), Stop> {
        let key = format!("{reason}@{until_ms:?}");
        {
            let mut held = self.batch.held.lock().unwrap();
            if held.as_deref() == Some(key.as_str()) {
                return Ok(());
            }
            *held = Some(key);
        }
        self.record(Entry::Held { reason, until_ms })
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
            let now = self.clock.now_ms();
            let opens_at = match window_state(&batch.windows, &batch.zone, now as i64) {
                WindowState::Always | WindowState::Open { .. } => {
                    *batch.held.lock().unwrap() = None;
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
                return match self.hold(reason, Some(opens_at)) {
                    Ok(()) => Gate::Closed,
                    Err(_) => Gate::Broken,
                };
            }
            if self.hold(reason.clone(), Some(opens_at)).is_err() {
                return Gate::Broken;
            }
            let remaining = Duration::from_millis(opens_at.saturating_sub(now));
            let _ = self.events.send(Event::Held { reason, until_ms: Some(opens_at), remaining_ms: Some(remaining.as_millis() as u64) });
            tokio::select! {
                () = tokio::time::sleep(countdown_step(remaining)) => {}
                _ = abort.wait_for(|a| *a != Abort::No) => return Gate::Aborted,
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
                self.record(Entry::Planned { host: host.name.clone(), boot_id })?;
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
                return Err(self.not_needed(host, reason));
            }
        }
        let Some(command) = self.batch.only_if.clone() else { return Ok(()) };
        match self.with_retries(host, Stage::Connect, || self.transport.run_check(host, &command)).await {
            Ok(()) => Ok(()),
            Err(TransportError::CommandFailed { exit, .. }) => Err(self.not_needed(host, not_needed_reason(&command, exit))),
            Err(e) => Err(self.fail(host, Stage::Connect, format!("could not run --only-if `{command}`: {e}"), false)),
        }
    }

    fn not_needed(&self, host: &Host, reason: String) -> Stop {
        match self.record(Entry::NotNeeded { host: host.name.clone(), reason }) {
            Ok(()) => Stop::Journaled,
            Err(stop) => stop,
        }
    }
}
