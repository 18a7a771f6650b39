//! One host's way through a run, and the dispatcher that starts hosts within the limits.
//!
//! One file, past 500 lines: one host's way (boot ID, drain, reboot, ladder, proof) is one state machine.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Abort, InFlightGate, InFlightMark, Shared, Stop};
use crate::adapters::config::Transport;
use crate::adapters::kube::drain::pods_with_answers;
use crate::adapters::kube::world::WorldError;
use crate::engine::seams::{BmcError, EvidenceError, NodeDrain};
use fleetboot_core::escalation::{Next, Seen, cancel_still_possible};
use fleetboot_core::events::Event;
use fleetboot_core::hosts::Host;
use fleetboot_core::journal::{Attempt, Delivery, Entry, HostRecord, Phase, ResumeAction, RunState, Stage};
use fleetboot_core::plan::Plan;
use fleetboot_core::power::RestartKind;
use fleetboot_core::transport::{PowerTransport, TransportError};

/// Run after `shutdown -c` to verify that no shutdown is scheduled any more (systemd-logind
/// keeps a scheduled one in this file). A host that cannot answer it is not counted cancelled.
pub const NO_SHUTDOWN_SCHEDULED: &str = "test ! -e /run/systemd/shutdown/scheduled";

/// How often the re-read after a node's drain may send it to the end of the queue before it is
/// skipped (uncordoned): each deferral costs a full drain of its workloads.
pub const MAX_POST_DRAIN_DEFERRALS: usize = 3;

pub(super) async fn dispatch<T: PowerTransport>(shared: Arc<Shared<T>>, gate: Arc<InFlightGate>, plan: Plan, prior: Option<RunState>) {
    let mut tasks = tokio::task::JoinSet::new();
    let group_gates: std::collections::HashMap<String, Arc<InFlightGate>> =
        plan.grouping.limits.iter().map(|(g, limit)| (g.clone(), InFlightGate::new(*limit))).collect();
    let group_gate = |host: &str| plan.grouping.group_of(host).and_then(|g| group_gates.get(g)).cloned();
    let resumed_at = shared.clock.now_ms();
    // The drain preflight: budgets that allow no disruption now, and the drains they block.
    if let Some(drain) = &shared.drain {
        let nodes: std::collections::BTreeSet<String> = plan
            .steps
            .iter()
            .filter(|s| s.action == ResumeAction::Reboot && !shared.standalone.contains(&s.host.name))
            .map(|s| s.host.name.clone())
            .collect();
        let message = match drain.zero_disruption_budgets(&nodes).await {
            Ok(found) => found.iter().map(|(budget, blocked)| fleetboot_core::batch::zero_budget_warning(budget, blocked)).collect(),
            Err(e) => vec![format!("preflight: {e}")],
        };
        for message in message {
            let _ = shared.events.send(Event::Warning { host: None, message });
        }
    }
    // A batch run notes every host's boot ID first: one rebooted since (by anyone) is done.
    if prior.is_none() {
        let to_reboot: Vec<Host> = plan.steps.iter().filter(|s| s.action == ResumeAction::Reboot).map(|s| s.host.clone()).collect();
        if shared.read_plan_boot_ids(&to_reboot).await.is_err() {
            return;
        }
    }
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
            let _mark = InFlightMark::new(&shared.in_flight, &host.name);
            if resume_host(&shared, &host, record, action, resumed_at).await == Err(Stop::Journaled) {
                hold_while_possibly_down(&shared, &host).await;
            }
            shared.transport.release(&host).await;
        });
    }
    // A node an interrupted run left cordoned, with nothing more to do, is uncordoned now
    // (never once a record failed: the run may no longer own the journal). One whose reboot is
    // in doubt (a failed host with a reboot that may have been sent) is watched above and keeps
    // its cordon until it is proven back or given up, as every in-doubt host does.
    if let (Some(drain), Some(prior)) = (&shared.drain, &prior) {
        for (name, record) in &prior.records {
            if shared.abort_level() == Abort::Hard {
                break;
            }
            let in_doubt = matches!(record.resume_action(), ResumeAction::AwaitNewBootId | ResumeAction::Check);
            if record.cordoned
                && !in_doubt
                && matches!(record.phase, Phase::Confirmed | Phase::Failed | Phase::Skipped | Phase::Cancelled | Phase::PoweredOff)
                && shared.record(Entry::Uncordoning { host: name.clone() }).await.is_ok()
                && let Ok(patched) = drain.set_unschedulable(name, false).await
            {
                let _ = shared.uncordoned(name, patched).await;
            }
        }
    }
    // However the run ends (short of a hard stop), no cordon of fleetboot's is left behind.
    let shared_at_end = shared.clone();
    let mut abort = shared.abort.clone();
    // The hosts still to start, in order; a host whose drain is deferred (--drain-escalation
    // defer) goes to the end (before the control plane, which goes last).
    let mut pending: std::collections::VecDeque<Host> =
        plan.steps.iter().filter(|s| s.action == ResumeAction::Reboot).map(|s| s.host.clone()).collect();
    let mut others_finished = false;
    // Hosts whose connection is to be opened ahead of their turn, and the one task that opens
    // them (dropped with whatever it has left when the run ends).
    let mut warmed = std::collections::HashSet::new();
    let (warm_up_queue, queued) = tokio::sync::mpsc::unbounded_channel();
    let mut warm_ups = tokio::task::JoinSet::new();
    warm_ups.spawn(warm_up_ahead(shared.clone(), queued));
    loop {
        // A deferred control-plane host goes behind the control-plane hosts still waiting (the
        // very end), never in front of them; any other goes behind the others still waiting.
        for h in shared.take_deferred() {
            match pending.iter().position(|p| plan.grouping.is_last(&p.name)).filter(|_| !plan.grouping.is_last(&h.name)) {
                Some(at) => pending.insert(at, h),
                None => pending.push_back(h),
            }
        }
        let Some(step_host) = pending.pop_front() else {
            // Nothing left to start: wait for a task (it may defer its host), or finish.
            match tasks.join_next().await {
                Some(_) => continue,
                None if shared.has_deferred() => continue,
                None => break,
            }
        };
        let step = &step_host;
        if plan.grouping.is_last(&step.name) && !others_finished {
            // The control plane waits until every other host is finished.
            while tasks.join_next().await.is_some() {}
            if shared.has_deferred() {
                pending.push_front(step_host);
                continue;
            }
            others_finished = true;
        }
        // New reboots start only inside a maintenance window (hosts in flight go on meanwhile).
        let window = shared.window_gate().await;
        if window == super::batch::Gate::Broken {
            break;
        }
        let group = group_gate(&step.name);
        // Every slot taken: the hosts next in line (as many as may be in flight) connect while
        // they wait, so their handshakes happen while the hosts in flight are down, not between
        // a freed slot and the next reboot. (With a slot free the host connects at once
        // itself.) The control plane's hosts wait for every other host first: they connect
        // when their turn nears, not for the whole run.
        if gate.is_full() || group.as_ref().is_some_and(|g| g.is_full()) {
            // Looked up before anything else: at 10,000 hosts, 1,000 in flight, this runs for
            // every dispatch over the whole window, nearly all of it warmed already.
            for next in std::iter::once(&step_host).chain(pending.iter()).take(shared.settings.concurrency) {
                if warmed.contains(&next.name) {
                    continue;
                }
                if others_finished || !plan.grouping.is_last(&next.name) {
                    warmed.insert(next.name.clone());
                    let _ = warm_up_queue.send(next.clone());
                }
            }
        }
        let pass = tokio::select! {
            pass = async {
                let total = gate.enter().await;
                let in_group = match &group {
                    Some(g) => Some(g.enter().await),
                    None => None,
                };
                (total, in_group)
            } => Some(pass),
            _ = super::abort_reaches(&mut abort, |a| *a >= Abort::Soft) => None,
        };
        let stop_reason = match pass {
            _ if window == super::batch::Gate::Closed => Some(super::batch::WINDOW_EXIT_REASON),
            _ if window == super::batch::Gate::Aborted => Some("the run was interrupted before this host started"),
            None => Some("the run was interrupted before this host started"),
            Some(_) if shared.budget_spent() => Some("the failure budget (--max-failures) was spent"),
            Some(_) => None,
        };
        if let Some(reason) = stop_reason {
            // No connection opens ahead of a turn that will not come.
            warm_ups.abort_all();
            let rest: Vec<Host> = std::iter::once(step_host.clone()).chain(pending.drain(..)).chain(shared.take_deferred()).collect();
            for skipped in &rest {
                if shared.abort_level() == Abort::Hard {
                    break;
                }
                let _ = shared.skip(skipped, reason).await;
                // A connection opened ahead of a turn that never came.
                shared.transport.release(skipped).await;
            }
            break;
        }
        let shared = shared.clone();
        let host = step_host.clone();
        // Marked before the loop goes on: the warm-ups it starts next wait for this turn.
        shared.turns.begin(&host.name);
        tasks.spawn(async move {
            // The passes are held until the task ends: a host that failed while possibly
            // still down holds them until it is seen back or its deadline passes.
            let _pass = pass;
            let _mark = InFlightMark::new(&shared.in_flight, &host.name);
            let result = reboot_host(&shared, &host).await;
            shared.turns.over(&host.name);
            if result == Err(Stop::Journaled) {
                hold_while_possibly_down(&shared, &host).await;
            }
            shared.transport.release(&host).await;
        });
    }
    while tasks.join_next().await.is_some() {}
    drop(warm_ups);
    uncordon_left_over(&shared_at_end).await;
}

/// How long no turn must have been under way before connections open ahead of their turn.
/// A wave's turns come as a burst with gaps of a few ms between them (a slot frees, the next
/// host's turn begins): a gap is not the burst's end. At 10,000 hosts, 1,000 at a time, the
/// next wave's 1,000 handshakes went off in such gaps, in the middle of the turns they were to
/// keep clear of (both cores saturated for 1.5 s at each wave).
const WARM_UP_QUIET: Duration = Duration::from_millis(200);

/// Connections opened ahead of their turn at once: the handshakes of a wave waiting for its
/// turn, spread over the quiet between bursts rather than all started in one instant.
const WARM_UPS_AT_ONCE: usize = 64;

/// Opens the connections of the hosts next in line (`queued`, in turn order) while no turn is
/// under way ([`WARM_UP_QUIET`]), [`WARM_UPS_AT_ONCE`] at a time. One task waits on the turns,
/// not one per host: each turn's start and end woke a thousand waiting warm-ups.
async fn warm_up_ahead<T: PowerTransport>(shared: Arc<Shared<T>>, mut queued: tokio::sync::mpsc::UnboundedReceiver<Host>) {
    let mut opening = tokio::task::JoinSet::new();
    while let Some(host) = queued.recv().await {
        loop {
            shared.turns.quiet_for(WARM_UP_QUIET).await;
            if opening.len() < WARM_UPS_AT_ONCE {
                break;
            }
            opening.join_next().await;
        }
        let shared = shared.clone();
        opening.spawn(async move { shared.transport.warm_up(&host).await });
        while opening.try_join_next().is_some() {}
    }
    while opening.join_next().await.is_some() {}
}

/// Every node fleetboot cordoned and has not uncordoned yet (a failed uncordon, a host skipped
/// after an earlier attempt cordoned it) is uncordoned at the end of the run, with a few tries
/// spread over about 15 s; what still fails stays in the journal and the summary lists it.
/// After a hard stop nothing is touched (a resume or `fleetboot repair` finishes it).
async fn uncordon_left_over<T: PowerTransport>(shared: &Shared<T>) {
    let Some(drain) = &shared.drain else { return };
    let mut wait = Duration::from_secs(1);
    for attempt in 1..=5 {
        let left: Vec<String> = shared.cordoned.lock().unwrap().iter().cloned().collect();
        if left.is_empty() || shared.abort_level() == Abort::Hard {
            return;
        }
        for name in left {
            // Journaled first (fenced): a writer that no longer owns the journal lifts nothing.
            if shared.record(Entry::Uncordoning { host: name.clone() }).await.is_err() {
                return;
            }
            match drain.set_unschedulable(&name, false).await {
                Ok(patched) => {
                    if shared.uncordoned(&name, patched).await.is_err() {
                        return;
                    }
                }
                Err(e) if attempt == 5 => {
                    let _ = shared.events.send(Event::Warning { host: Some(name), message: format!("{e}; it stays cordoned") });
                }
                Err(_) => {}
            }
        }
        if attempt < 5 && !shared.cordoned.lock().unwrap().is_empty() {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
}

/// A host a previous run left in flight: only watched (never sent another reboot blindly).
async fn resume_host<T: PowerTransport>(
    shared: &Shared<T>,
    host: &Host,
    record: HostRecord,
    action: ResumeAction,
    resumed_at: u64,
) -> Result<(), Stop> {
    let old = record.old_boot_id.clone().unwrap_or_default();
    let since = record.dispatched_at_ms.unwrap_or(resumed_at);
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
    let last_sent = match action {
        ResumeAction::Check => attempts.last().map_or(since, |a| a.at_ms),
        _ => watch_for_new_boot(shared, host, &old, attempts, record.phase == Phase::Down, ssh_usable, record.soft_reboots_before).await?,
    };
    confirm(shared, host, &old, last_sent, ssh_usable).await
}

/// The boot ID before the reboot: over SSH, or, for a node SSH cannot reach but its BMC can,
/// from the cluster API (the only other place that shows the new one afterwards).
/// Returns it and whether SSH reaches the host. `right_before`: the reboot follows this read
/// (the transport may keep its connection for it).
async fn first_look<T: PowerTransport>(shared: &Shared<T>, host: &Host, right_before: bool) -> Result<(String, bool), Stop> {
    let read = || async {
        if right_before { shared.transport.read_boot_id_before_reboot(host).await } else { shared.transport.read_boot_id(host).await }
    };
    let read = shared.with_retries(host, Stage::Connect, read).await;
    // Another transport of the order took over (SSH → the cluster API's exec): journaled, why.
    for (transport, reason) in shared.transport.take_escalations(host) {
        shared.record(Entry::TransportChosen { host: host.name.clone(), transport, reason }).await?;
    }
    match read {
        Ok(id) => Ok((id, true)),
        Err(e) if shared.falls_back_on(host, &e) => match current_api_boot_id(shared, host).await {
            Some(id) => {
                let reason = format!("SSH cannot reach it ({e})");
                shared.record(Entry::FallingBack { host: host.name.clone(), reason, ssh_reached: false }).await?;
                Ok((id, false))
            }
            None => Err(shared
                .fail(
                    host,
                    Stage::Connect,
                    format!("{e}; its BMC could reboot it, but without SSH or the cluster API no new boot ID could prove it"),
                    false,
                )
                .await),
        },
        Err(e) => Err(shared.fail(host, Stage::Connect, e.to_string(), false).await),
    }
}

/// The boot ID again, through the way the first look found, right before the reboot goes out.
async fn read_again<T: PowerTransport>(shared: &Shared<T>, host: &Host, ssh_usable: bool) -> Result<String, String> {
    if ssh_usable {
        shared.with_retries(host, Stage::Connect, || shared.transport.read_boot_id_before_reboot(host)).await.map_err(|e| e.to_string())
    } else {
        current_api_boot_id(shared, host).await.ok_or_else(|| "the cluster API no longer shows a boot ID for it".to_owned())
    }
}

/// [`read_again`], or the host failed (nothing was sent) and uncordoned if it was drained.
async fn read_again_or_fail<T: PowerTransport>(shared: &Shared<T>, host: &Host, ssh_usable: bool) -> Result<String, Stop> {
    let read = read_again(shared, host, ssh_usable).await;
    // Another transport of the order took over since the first look (SSH no longer reaching it
    // after the drain): journaled, with why, before the reboot goes out through it.
    for (transport, reason) in shared.transport.take_escalations(host) {
        shared.record(Entry::TransportChosen { host: host.name.clone(), transport, reason }).await?;
    }
    match read {
        Ok(id) => Ok(id),
        Err(e) => {
            let stop = shared.fail(host, Stage::Connect, e, false).await;
            uncordon(shared, host).await;
            Err(stop)
        }
    }
}

/// One host from the start: the limits, the drain, the boot ID, the journaled intent, the
/// reboot, then the proof.
async fn reboot_host<T: PowerTransport>(shared: &Shared<T>, host: &Host) -> Result<(), Stop> {
    // Rebooted since the plan, or `--only-if` says it needs none: done, nothing touched.
    shared.still_needed(host).await?;
    // With a drain, SSH (or the fallback) must reach the node before it is cordoned.
    let looked = match shared.drain_for(host) {
        Some(_) => Some(first_look(shared, host, false).await?),
        None => None,
    };
    // The limits are checked at the last moment, right before the host starts.
    let skip = async |reason: &str| match shared.skip(host, reason).await {
        Ok(()) => Stop::Journaled,
        Err(stop) => stop,
    };
    if !shared.rate_slot().await || shared.abort_level() != Abort::No {
        return Err(skip("the run was interrupted before this host started").await);
    }
    if shared.budget_spent() {
        return Err(skip("the failure budget (--max-failures) was spent").await);
    }
    // The windows, the gates (blockers, soak, health) and the cluster's state, each of which may
    // wait: after any wait the others may be stale (a master gone NotReady during a soak, the
    // window closed during a health hold), so they are taken again until one pass finds all
    // three open with nothing waited after the window and the blockers were read.
    loop {
        match shared.window_gate().await {
            super::batch::Gate::Open => {}
            super::batch::Gate::Closed => return Err(skip(super::batch::WINDOW_EXIT_REASON).await),
            super::batch::Gate::Aborted => return Err(skip("the run was interrupted before this host started").await),
            super::batch::Gate::Broken => return Err(Stop::JournalBroken),
        }
        shared.gates_clear(host).await?;
        // The cluster's state, read now: nodes down for any reason count against the limits.
        if world_allows(shared, host).await? {
            continue;
        }
        if shared.window_open_now() && !shared.blocked_now(host).await {
            break;
        }
    }
    // In flight from here (the annotation says so to other tools) until the proof or the end.
    shared.mark_in_flight(host).await;
    let result = reboot_touched(shared, host, looked).await;
    shared.mark_done(host, result.is_ok()).await;
    result
}

/// [`reboot_host`] from the drain on: the node is touched.
async fn reboot_touched<T: PowerTransport>(shared: &Shared<T>, host: &Host, looked: Option<(String, bool)>) -> Result<(), Stop> {
    let name = || host.name.clone();
    let skip = async |reason: &str| match shared.skip(host, reason).await {
        Ok(()) => Stop::Journaled,
        Err(stop) => stop,
    };
    if let Some(drain) = shared.drain_for(host) {
        // A drain takes a while: the hosts next in line may connect meanwhile.
        shared.turns.over(&host.name);
        drain_node(shared, drain.as_ref(), host).await?;
        // The drain (and its ladder) may have waited long: the window, the blockers and the
        // health gate are read again first (each may take a while: a pod list, an alert query,
        // a health command), then the cluster's state once, after them: the limits (and who
        // else took the node) are judged on the latest read before anything is sent.
        let gates_say = gates_after_drain(shared, host).await;
        // The world read once after the drain: who else takes the node, and the limits.
        let world = read_world(shared, host).await;
        if let Some(refused) = refused(&world) {
            let stop = shared.fail(host, Stage::Limits, format!("after the drain, nothing sent: {refused}; uncordoned"), false).await;
            uncordon(shared, host).await;
            return Err(stop);
        }
        // Someone else took the node meanwhile (the MCO updating it, another actor's maintenance
        // Lease): the cordon is theirs now. Journaled first, never lifted, nothing sent.
        if let Some((to, why)) = taken_by_another(shared, host, &world) {
            let reason = format!("after the drain, {why}; the cordon stays for them, not rebooted by this run");
            shared.record(Entry::CordonHandedOver { host: name(), to, reason }).await?;
            return Err(Stop::Journaled);
        }
        // The failure budget spent while it drained: no new reboot starts, as at the first look.
        if shared.budget_spent() {
            let stop = skip("the failure budget (--max-failures) was spent during its drain; uncordoned, nothing sent").await;
            uncordon(shared, host).await;
            return Err(stop);
        }
        let says_wait =
            gates_say.or_else(|| verdict_now(shared, host, &world).map(|(_, why)| format!("the cluster's limits say wait: {why}")));
        if let Some(why) = says_wait {
            // On a "no" from the gates or the limits the node is uncordoned and goes to the end
            // of the queue, where the gates wait for them again. Bounded: a node the world keeps refusing after each drain is skipped (uncordoned,
            // its workloads back) rather than drained again and again for ever; a resume or a
            // later run tries it again.
            let deferrals = shared.records.lock().unwrap().get(&host.name).map_or(0, |r| r.post_drain_deferrals);
            if deferrals >= MAX_POST_DRAIN_DEFERRALS {
                let reason = format!(
                    "after the drain, {why}; deferred after its drain {deferrals} times already: uncordoned and skipped, nothing sent"
                );
                let stop = skip(&reason).await;
                uncordon(shared, host).await;
                return Err(stop);
            }
            let reason = format!("after the drain, {why}; uncordoned and requeued, nothing sent");
            shared.record(Entry::Deferred { host: name(), reason, after_drain: true }).await?;
            uncordon(shared, host).await;
            shared.batch.defer(host);
            return Err(Stop::Deferred);
        }
    }
    // The boot ID is read right before the intent is journaled: after the rate wait and the
    // drain, so a reboot by someone else in between cannot pass for this one.
    let (old, ssh_usable) = match looked {
        None => first_look(shared, host, true).await?,
        Some((first, ssh_usable)) => {
            let again = read_again_or_fail(shared, host, ssh_usable).await?;
            // Rebooted by someone else while it drained: the reboot the plan wanted happened.
            // Nothing is sent (proving a second reboot against the new ID would reboot it twice).
            if again != first {
                let reason = format!("rebooted by someone else during the drain: boot ID {first} before the drain, {again} after it");
                let stop = shared.not_needed(host, reason).await;
                uncordon(shared, host).await;
                return Err(stop);
            }
            (again, ssh_usable)
        }
    };
    shared.record(Entry::BootIdRead { host: name(), boot_id: old.clone() }).await?;
    let mut soft_before = None;
    if ssh_usable && let Some(count) = shared.transport.soft_reboot_count(host).await {
        shared.record(Entry::SoftRebootCount { host: name(), count }).await?;
        soft_before = Some(count);
    }
    let old = match shared.rate_send().await {
        None => {
            let stop = skip("the run was interrupted before this host started").await;
            uncordon(shared, host).await;
            return Err(stop);
        }
        // Another host's re-send or BMC reset took the slot after the read: read again, so no
        // reboot in the wait can pass for this one.
        Some(true) => {
            let id = read_again_or_fail(shared, host, ssh_usable).await?;
            shared.record(Entry::BootIdRead { host: name(), boot_id: id.clone() }).await?;
            id
        }
        Some(false) => old,
    };
    shared.mark_before_reboot(host).await;
    let by_bmc = !ssh_usable || (shared.settings.transport == Transport::Redfish && shared.has_bmc(host));
    if shared.settings.transport == Transport::Redfish && !shared.has_bmc(host) {
        return Err(shared.fail(host, Stage::Dispatch, "--transport redfish, but no BMC is known for this node".into(), false).await);
    }
    let first = if by_bmc {
        bmc_reset(shared, host, &old, RestartKind::Graceful, &[]).await?
    } else {
        match ssh_dispatch(shared, host, &old).await? {
            Ok(at) => Attempt { bmc: None, at_ms: at, handed_over: true },
            Err(e) if shared.falls_back_on(host, &e) => {
                let reason = format!("the SSH reboot never reached it ({e})");
                shared.record(Entry::FallingBack { host: name(), reason, ssh_reached: true }).await?;
                // Another reboot sent: it takes a rate slot of its own.
                shared.rate_send_in_flight().await?;
                bmc_reset(shared, host, &old, RestartKind::Graceful, &[]).await?
            }
            Err(e) => return Err(shared.fail(host, Stage::Dispatch, e.to_string(), false).await),
        }
    };
    shared.turns.over(&host.name);
    let last_sent = watch_for_new_boot(shared, host, &old, vec![first], false, ssh_usable, soft_before).await?;
    confirm(shared, host, &old, last_sent, ssh_usable).await
}

/// After a node's drain: why its gates say it may not go now after all (the window closed, a
/// blocker appeared, the health gate), or `None`. The cluster's limits are judged after these,
/// on a world read after them.
async fn gates_after_drain<T: PowerTransport>(shared: &Shared<T>, host: &Host) -> Option<String> {
    if let Some(why) = shared.window_or_blocker_now(host).await {
        return Some(why);
    }
    // The health gate, as the first look applies it (one check: the drain was the wait).
    shared.unhealthy_now(host).await
}

/// The world as `host`'s cluster shows it now: `None` for a host outside a cluster.
type WorldRead = Option<Result<Option<std::sync::Arc<fleetboot_core::limits::World>>, WorldError>>;

/// A world read the API refuses for good (403): the host fails on it at once, nothing touched.
fn refused(world: &WorldRead) -> Option<&WorldError> {
    match world {
        Some(Err(refused @ WorldError::Refused { .. })) => Some(refused),
        _ => None,
    }
}

async fn read_world<T: PowerTransport>(shared: &Shared<T>, host: &Host) -> WorldRead {
    Some(shared.api_for(host)?.world(shared.grouping.by.as_deref()).await)
}

/// Who else acts on `host` itself in `world` ([`fleetboot_core::limits::taken_by_another`]): `(to, why)`.
fn taken_by_another<T: PowerTransport>(shared: &Shared<T>, host: &Host, world: &WorldRead) -> Option<(String, String)> {
    let Some(Ok(Some(world))) = world else { return None };
    fleetboot_core::limits::taken_by_another(world, &host.name, shared.clock.now_ms())
}

/// What holds a waiting host back, as far as telling it goes: a rule of the limits, or the
/// world read that failed (its words).
#[derive(Clone, Debug, PartialEq, Eq)]
enum HeldBy {
    Rule(fleetboot_core::limits::WaitOn),
    Unread(String),
}

/// Whether a copy of a node (`seen`, its resourceVersion) is older than the version this run's
/// uncordon `produced`: it predates the uncordon (the Node watch had not delivered it).
/// resourceVersions order only as KEP-5504 allows
/// ([`crate::adapters::kube::watch::compare_resource_versions`]). A version that is not
/// comparable (or missing) is never taken for "behind": the cordon shown then counts as
/// someone else's and hosts wait until the watch shows the node uncordoned, as they did before
/// this run knew better. Waiting is the safe side; taking another actor's hold for the run's
/// own is not.
fn copy_behind(seen: Option<&str>, produced: Option<&str>) -> bool {
    let (Some(seen), Some(produced)) = (seen, produced) else { return false };
    crate::adapters::kube::watch::compare_resource_versions(seen, produced) == Some(std::cmp::Ordering::Less)
}

/// The cluster's verdict on `host` going down now ([`fleetboot_core::limits::decide`]) on a
/// world read: what holds it and why it must wait, or `None` (it may go; a host outside a
/// cluster, or evidence with no world, always may). A world not read is a reason to wait.
fn verdict<T: PowerTransport>(shared: &Shared<T>, host: &Host, world: &WorldRead) -> Option<(HeldBy, String)> {
    use fleetboot_core::limits::{Ask, Verdict, decide};
    match world.as_ref()? {
        Ok(None) => None,
        Err(e) => Some((HeldBy::Unread(e.to_string()), e.to_string())),
        Ok(Some(world)) => {
            // Held for the decision, not copied: it is quick, and nothing else holds two of
            // these at once (at 1,000 in flight a copy per dispatch was a thousand names).
            let in_flight = shared.in_flight.lock().unwrap();
            let cordoned = shared.cordoned.lock().unwrap();
            let cordoned_by_run: std::borrow::Cow<'_, std::collections::BTreeSet<String>> = {
                // Lifted by this run, and this world's copy of the node (the Node watch's, when
                // the world was put together) is older than the uncordon: a cordon it shows is
                // this run's. A copy at that version or later shows the cluster's word. Judged
                // on the copy the world holds, not on the watch now: a world read shared by the
                // hosts that asked at once can predate an uncordon the watch has since shown.
                let lifted = shared.lifted.lock().unwrap();
                let behind: Vec<&String> = world
                    .nodes
                    .iter()
                    .filter(|n| n.unschedulable && !cordoned.contains(&n.name))
                    .filter_map(|n| Some((n, lifted.get(&n.name)?)))
                    .filter(|(n, produced)| copy_behind(n.version.as_deref(), produced.as_deref()))
                    .map(|(n, _)| &n.name)
                    .collect();
                if behind.is_empty() {
                    std::borrow::Cow::Borrowed(&*cordoned)
                } else {
                    std::borrow::Cow::Owned(cordoned.iter().chain(behind).cloned().collect())
                }
            };
            let exempt: std::collections::BTreeSet<String> = if shared.limits.plan_not_ready_exempt {
                let touched = shared.touched.lock().unwrap();
                shared.plan_hosts.iter().filter(|h| !touched.contains(*h)).cloned().collect()
            } else {
                Default::default()
            };
            let ask = Ask {
                host: &host.name,
                grouping: &shared.grouping,
                concurrency: shared.settings.concurrency,
                plan: &shared.plan_hosts,
                in_flight: &in_flight,
                cordoned_by_run: &cordoned_by_run,
                not_ready_exempt: &exempt,
                control_plane_rule: shared.limits.control_plane,
            };
            match decide(world, &ask, shared.clock.now_ms()) {
                Verdict::Go => None,
                Verdict::Wait(wait) => Some((HeldBy::Rule(wait.on), wait.reason)),
            }
        }
    }
}

/// [`verdict`], and when it says wait, again on the read's nodes as the Node watch shows them
/// now ([`fleetboot_core::limits::World::with_nodes_back`]): a world read is shared by all who
/// asked meanwhile, its nodes taken as it ends, and a host of the run proven back since (its
/// Ready seen, its places given up) would otherwise stand in the way of the host taking its
/// place, as down in the read and no longer in flight. (At 10,000 nodes, 1,000 at a time,
/// one host in a hundred waited a poll interval on nodes already back.)
fn verdict_now<T: PowerTransport>(shared: &Shared<T>, host: &Host, world: &WorldRead) -> Option<(HeldBy, String)> {
    let wait = verdict(shared, host, world)?;
    let (Some(Ok(Some(read))), Some(api)) = (world, shared.api_for(host)) else { return Some(wait) };
    let newer = {
        let in_flight = shared.in_flight.lock().unwrap();
        // The host itself and the hosts in flight are counted by the run, not by their nodes.
        read.with_nodes_back(|node| node != host.name && !in_flight.contains(node) && api.available_now(node))
    };
    match newer {
        Some(newer) => verdict(shared, host, &Some(Ok(Some(Arc::new(newer))))),
        None => Some(wait),
    }
}

/// Waits until the cluster's state lets this host go down ([`verdict_now`]), saying why when it
/// starts waiting and again only when what holds it changes (another rule, another failed
/// read), not at each poll: the nodes in the way and their count change at every poll of a
/// large run (a thousand waiting hosts each said so every poll interval, 55,000 `waiting`
/// events in one run at 10,000 nodes). Up to the reboot deadline; then the host fails
/// untouched, naming the reason as read last. A read the API refuses for good fails it at
/// once. `Ok(true)` when it had to wait (what was read before it may be stale), `Ok(false)`
/// when it allowed it at once.
async fn world_allows<T: PowerTransport>(shared: &Shared<T>, host: &Host) -> Result<bool, Stop> {
    if shared.api_for(host).is_none() {
        return Ok(false);
    }
    let mut waited = false;
    let deadline = Instant::now().checked_add(shared.settings.timeout).unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
    let mut said: Option<HeldBy> = None;
    let mut abort = shared.abort.clone();
    loop {
        let world = read_world(shared, host).await;
        if let Some(refused) = refused(&world) {
            return Err(shared.fail(host, Stage::Limits, format!("not started, nothing touched: {refused}"), false).await);
        }
        let Some((held_by, reason)) = verdict_now(shared, host, &world) else { return Ok(waited) };
        if Instant::now() >= deadline {
            let how_long = humantime::format_duration(shared.settings.timeout);
            return Err(shared
                .fail(host, Stage::Limits, format!("not started, nothing touched: waited {how_long}: {reason}"), false)
                .await);
        }
        if said.as_ref() != Some(&held_by) {
            let _ = shared.events.send(fleetboot_core::events::Event::Waiting { host: host.name.clone(), reason });
            said = Some(held_by);
        }
        let pause = shared.settings.poll_interval.max(Duration::from_millis(100)).min(deadline - Instant::now());
        // Waiting on the cluster: the hosts next in line may connect meanwhile.
        shared.turns.over(&host.name);
        waited = true;
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = super::abort_reaches(&mut abort, |a| *a != Abort::No) => {
                return Err(match shared.skip(host, "the run was interrupted before this host started").await {
                    Ok(()) => Stop::Journaled,
                    Err(stop) => stop,
                });
            }
        }
    }
}

async fn current_api_boot_id<T: PowerTransport>(shared: &Shared<T>, host: &Host) -> Option<String> {
    shared.api_for(host)?.boot_id(&host.name).await
}

/// Journals the intent, then hands the reboot over SSH. Ok(Ok(at)): handed over, sent at `at`;
/// Ok(Err(e)): nothing reached the host (the transport's contract for an error).
async fn ssh_dispatch<T: PowerTransport>(shared: &Shared<T>, host: &Host, old: &str) -> Result<Result<u64, TransportError>, Stop> {
    shared.record(Entry::Dispatching { host: host.name.clone(), old_boot_id: old.to_owned(), bmc: None }).await?;
    let at = shared.clock.now_ms();
    // Retrying is safe: send_reboot fails only when nothing reached the host.
    match shared.with_retries(host, Stage::Dispatch, || shared.transport.send_reboot(host)).await {
        Ok(delivery) => {
            shared.record(Entry::Dispatched { host: host.name.clone(), delivery, reset_type: None }).await?;
            Ok(Ok(at))
        }
        Err(e) => Ok(Err(e)),
    }
}

/// Journals the intent, then resets the host through its BMC. A reset that may have happened
/// counts as happened: it is journaled as handed over (no answer) and watched like any other.
/// A reset that provably did not happen fails the host, keeping any earlier reboot in doubt.
async fn bmc_reset<T: PowerTransport>(
    shared: &Shared<T>,
    host: &Host,
    old: &str,
    kind: RestartKind,
    earlier: &[Attempt],
) -> Result<Attempt, Stop> {
    // A resume may meet a world without this host's BMC (`--transport ssh`, a Secret that no
    // longer reads): that is a failure before anything is sent, never a reset in doubt.
    let Some(bmc) = shared.bmc.as_ref().filter(|bmc| bmc.has(&host.name)) else {
        return Err(shared.fail(host, Stage::Dispatch, "no BMC is known for this node".into(), !earlier.is_empty()).await);
    };
    shared.record(Entry::Dispatching { host: host.name.clone(), old_boot_id: old.to_owned(), bmc: Some(kind) }).await?;
    let at = shared.clock.now_ms();
    let attempt = Attempt { bmc: Some(kind), at_ms: at, handed_over: true };
    match bmc.restart(&host.name, kind).await {
        Ok(reset_type) => {
            shared
                .record(Entry::Dispatched { host: host.name.clone(), delivery: Delivery::BmcAccepted, reset_type: Some(reset_type) })
                .await?;
            Ok(attempt)
        }
        Err(e @ BmcError::MayHaveReset(_)) => {
            shared.warn(host, format!("the BMC reset may have happened ({e}); watching for a new boot ID"));
            shared.record(Entry::Dispatched { host: host.name.clone(), delivery: Delivery::NoAnswer, reset_type: None }).await?;
            Ok(attempt)
        }
        Err(e @ BmcError::NotSent(_)) => Err(shared.fail(host, Stage::Dispatch, e.to_string(), !earlier.is_empty()).await),
        // Switched off on purpose (a technician at work on it): it stays off, and says so.
        Err(BmcError::PoweredOff(e)) => {
            let stop = match shared.record(Entry::PoweredOff { host: host.name.clone(), detail: e.to_string() }).await {
                Ok(()) => Stop::Journaled,
                Err(stop) => stop,
            };
            uncordon(shared, host).await;
            Err(stop)
        }
    }
}

/// The longest a transport reading through the API server waits on the Node watch without a
/// change of the node before it reads the boot ID again (a safety net, not the proof).
const THROUGH_API_QUIET: Duration = Duration::from_secs(30);

/// Watches until the host shows a boot ID other than `old`: over SSH (each poll one
/// connection), or, for a node SSH cannot reach, through the cluster API's Node watch.
/// Between polls the escalation ladder decides: keep waiting, reset through the BMC, or fail.
/// A host that answers with its old boot ID once it was seen down, or once a scheduled
/// shutdown would have begun, is asked for systemd's soft-reboot count: one higher than
/// `soft_before` is a `systemctl soft-reboot`, reported at once (never waited on to the
/// deadline, never escalated to the BMC: the node is up).
/// Ok: back, with the time the last reboot was sent (the API's deadline counts from there).
async fn watch_for_new_boot<T: PowerTransport>(
    shared: &Shared<T>,
    host: &Host,
    old: &str,
    mut attempts: Vec<Attempt>,
    already_down: bool,
    ssh_usable: bool,
    soft_before: Option<u64>,
) -> Result<u64, Stop> {
    let name = || host.name.clone();
    let ladder = shared.ladder(host);
    let mut down = already_down;
    let mut abort = shared.abort.clone();
    let mut cancel_tried = false;
    // Whether the last answer carried the old boot ID: decides the failure text.
    let mut answered_with_old = false;
    // Whether the last pause was cut short by the cluster API showing the node back.
    let mut api_woke = false;
    let mut through_api: Option<Option<String>>;
    loop {
        // Look first: a resumed host may have come back while fleetboot was not running.
        if shared.abort_level() == Abort::Hard {
            return Err(Stop::Aborted);
        }
        let next = ladder.next(&attempts, shared.clock.now_ms(), Seen::default());
        // A transport whose reads go through the API server (an exec into a pod) reads again
        // when the Node watch shows the node changed, not every poll interval: the node's
        // version before this read, so a change during it is not missed.
        through_api = shared
            .api_for(host)
            .filter(|_| ssh_usable && shared.transport.reaches_through_the_api(host))
            .map(|api| api.node_version(&host.name));
        if ssh_usable {
            let probe = {
                let _permit = shared.probes.acquire().await.expect("never closed");
                shared.transport.read_boot_id(host).await
            };
            answered_with_old = matches!(&probe, Ok(id) if id == old);
            match probe {
                Ok(id) if id == old => {
                    let past_schedule = attempts
                        .last()
                        .is_some_and(|a| shared.clock.now_ms() >= a.at_ms + shared.settings.scheduled_delay.as_millis() as u64);
                    if let Some(before) = soft_before.filter(|_| down || past_schedule)
                        && let Some(after) = shared.transport.soft_reboot_count(host).await.filter(|after| *after > before)
                    {
                        shared.record(Entry::SoftRebooted { host: name(), boot_id: id, count_before: before, count_after: after }).await?;
                        uncordon(shared, host).await;
                        return Err(Stop::Journaled);
                    }
                }
                Ok(id) => {
                    shared.record(Entry::Back { host: name(), new_boot_id: id, api_only: false }).await?;
                    return Ok(attempts.last().map_or(0, |a| a.at_ms));
                }
                Err(TransportError::HostKey(reason)) => {
                    return Err(shared.fail(host, Stage::Confirm, format!("after the reboot: {reason}"), true).await);
                }
                Err(e) if e.is_transient() => {
                    if !down {
                        down = true;
                        shared.record(Entry::Down { host: name() }).await?;
                    }
                }
                // An authentication or command failure while the host shuts down or boots is
                // expected for a moment; the deadline decides.
                Err(_) => {}
            }
        } else if let (Some(api), Next::WaitUntil(until)) = (shared.api_for(host), next) {
            // No SSH: the Node watch wakes this on the node's own events until the next step.
            let mut abort = shared.abort.clone();
            let blind = tokio::select! {
                // The store first: a node it shows back is proven, refused since or not.
                biased;
                seen = api.wait_back(&host.name, old, shared.clock.instant_of(until)) => match seen {
                    Ok(id) => {
                        shared.record(Entry::Back { host: name(), new_boot_id: id, api_only: true }).await?;
                        return Ok(attempts.last().map_or(0, |a| a.at_ms));
                    }
                    Err(blind @ EvidenceError::Blind { .. }) => blind,
                    Err(EvidenceError::NotBack { .. }) => continue,
                },
                refused = api.refusal(&host.name) => refused,
                _ = super::abort_reaches(&mut abort, |a| *a == Abort::Hard) => return Err(Stop::Aborted),
            };
            // The only eyes on this node are the watch's: a node it cannot show is no evidence
            // of a hung one, and the ladder's next step (a BMC reset) could reboot a node that
            // rebooted fine a second time. The host fails, its reboot in doubt, naming why.
            let error = format!("{blind}; its reboot was sent and is not sent again");
            return Err(shared.fail(host, Stage::Confirm, error, true).await);
        }
        let now = shared.clock.now_ms();
        let seen = Seen { old_boot_id: answered_with_old, went_down: down };
        let until = match ladder.next(&attempts, now, seen) {
            Next::WaitUntil(until) => until,
            Next::ResendSsh => {
                let reason = format!(
                    "the reboot sent before fleetboot was interrupted never arrived: boot ID still {old}, never down; sending it again"
                );
                shared.warn(host, reason);
                shared.rate_send_in_flight().await?;
                match ssh_dispatch(shared, host, old).await? {
                    Ok(at) => attempts.push(Attempt { bmc: None, at_ms: at, handed_over: true }),
                    Err(e) => {
                        // The first reboot stays in doubt: it may still arrive.
                        let stop = shared.fail(host, Stage::Dispatch, format!("sending the reboot again: {e}"), true).await;
                        return Err(stop);
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
                shared.record(Entry::FallingBack { host: name(), reason, ssh_reached: ssh_usable }).await?;
                shared.rate_send_in_flight().await?;
                match bmc_reset(shared, host, old, kind, &attempts).await {
                    Ok(attempt) => attempts.push(attempt),
                    Err(stop) => {
                        return Err(stop);
                    }
                }
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
                return Err(shared.fail(host, Stage::Confirm, error, true).await);
            }
        };
        let to_next_step = Duration::from_millis(until.saturating_sub(now));
        let api_shows_back = match (&through_api, shared.api_for(host)) {
            (Some(_), Some(api)) => api.wait_back(&host.name, old, tokio::time::Instant::now()).await.is_ok(),
            _ => false,
        };
        let pause = match &through_api {
            // Reads through the API while the API does not show the node back: the next one
            // when the Node watch shows a change (down, back), at the ladder's next step, or
            // after THROUGH_API_QUIET at the latest. A node the API shows back (its pod not
            // answering yet) is read every poll interval.
            Some(_) if !api_shows_back => to_next_step.min(THROUGH_API_QUIET.max(shared.settings.poll_interval)),
            _ => shared.settings.poll_interval.min(to_next_step),
        };
        // Only a reboot that is all scheduled `shutdown` commands, well before the shutdown
        // begins, can be cancelled (`shutdown -c`); a BMC reset or an immediate command cannot.
        let cancel_on_soft = !cancel_tried
            && !down
            && ssh_usable
            && shared.settings.cancel_pending_on_abort
            && cancel_still_possible(&shared.settings.command, &attempts, shared.settings.scheduled_delay.as_millis() as u64, now);
        // A node the cluster API shows Ready with a new boot ID is probed now, not at the end
        // of the pause: the SSH answer still decides. Once per pause at most, so a node whose
        // SSH keeps failing is not probed in a tight loop.
        let api_back = async {
            if let (Some(api), Some(version)) = (shared.api_for(host), &through_api)
                && !api_shows_back
            {
                api.wait_changed(&host.name, version.clone(), crate::adapters::system::deadline_after(pause)).await;
                return;
            }
            if let Some(api) = shared.api_for(host).filter(|_| ssh_usable && !api_woke && through_api.is_none())
                && api.wait_back(&host.name, old, crate::adapters::system::deadline_after(pause)).await.is_ok()
            {
                return;
            }
            std::future::pending::<()>().await
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => api_woke = false,
            () = api_back => api_woke = true,
            level = async { abort.wait_for(|a| *a == Abort::Hard || (*a == Abort::Soft && cancel_on_soft)).await.map(|r| *r).ok() } => {
                if level != Some(Abort::Soft) {
                    return Err(Stop::Aborted);
                }
                cancel_tried = true;
                if try_cancel(shared, host, old).await? {
                    return Err(Stop::Journaled);
                }
            }
        }
    }
}

/// After a failure that leaves a reboot in doubt (the host failed with a reboot sent and not
/// proven back), the host keeps its in-flight places (its task's passes) until it is seen back
/// Ready (the cluster API: Ready with a new boot ID; a host outside a cluster: a new boot ID
/// over SSH, or any answer after a host-key change), or until its reboot deadline passes and the
/// run records its decision to let the places go ([`Entry::PassReleased`]). A host that may
/// still be down must count against the limits; giving up on it, or its API proof failing, is
/// not enough. (The limits still count the node while the cluster shows it unavailable.)
pub(super) async fn hold_while_possibly_down<T: PowerTransport>(shared: &Shared<T>, host: &Host) {
    let Some(record) = shared.records.lock().unwrap().get(&host.name).cloned() else { return };
    let api = shared.api_for(host);
    let proven_back = record.api_boot_id.is_some() || (api.is_none() && record.new_boot_id.is_some());
    if record.phase != Phase::Failed || !record.reboot_pending || proven_back {
        return;
    }
    let Some(last) = record.attempts.last() else { return };
    let old = record.old_boot_id.clone().unwrap_or_default();
    let window = shared.settings.timeout.max(shared.settings.scheduled_delay);
    let deadline = shared.clock.instant_of(last.at_ms.saturating_add(window.as_millis() as u64));
    let mut abort = shared.abort.clone();
    let seen_up = async {
        if let Some(api) = api {
            return api.wait_back(&host.name, &old, deadline).await.is_ok();
        }
        loop {
            let probe = {
                let _permit = shared.probes.acquire().await.expect("never closed");
                shared.transport.read_boot_id(host).await
            };
            match probe {
                Ok(id) if id != old => return true,
                Err(TransportError::HostKey(_)) => return true,
                _ => {}
            }
            tokio::time::sleep(shared.settings.poll_interval).await;
        }
    };
    let seen = tokio::select! {
        seen = seen_up => seen,
        () = tokio::time::sleep_until(deadline) => false,
        _ = super::abort_reaches(&mut abort, |a| *a == Abort::Hard) => return,
    };
    if !seen {
        let reason = format!(
            "not seen back Ready within {} of its last reboot; its places go to the next host (it still counts as unavailable while the cluster shows it so)",
            humantime::format_duration(window)
        );
        let _ = shared.record(Entry::PassReleased { host: host.name.clone(), reason }).await;
    }
}

/// `shutdown -c` on a host whose reboot is scheduled but not begun. Ok(true): cancelled and
/// verified (no shutdown left scheduled, the boot ID unchanged), and journaled so.
async fn try_cancel<T: PowerTransport>(shared: &Shared<T>, host: &Host, old: &str) -> Result<bool, Stop> {
    // A lost lease (or a hard stop) that came after the Ctrl-C: the node may be another run's.
    if shared.abort_level() >= Abort::LeaseLost {
        return Ok(false);
    }
    // The intent first, fenced: a writer whose journal (or lease) is gone sends no cancel, and a
    // resume of a host with `cancelling` and no `cancelled` re-checks its boot ID.
    shared.record(Entry::Cancelling { host: host.name.clone() }).await?;
    if let Err(e) = shared.transport.cancel_reboot(host).await {
        shared.warn(host, format!("could not cancel the pending reboot: {e}"));
        return Ok(false);
    }
    let verified = match shared.transport.run_check(host, NO_SHUTDOWN_SCHEDULED).await {
        Ok(()) => matches!(shared.transport.read_boot_id(host).await, Ok(id) if id == old),
        Err(e) => {
            shared.warn(host, format!("the cancel could not be verified ({e}); the reboot stays pending and is watched"));
            false
        }
    };
    if verified {
        shared.record(Entry::Cancelled { host: host.name.clone() }).await?;
    }
    Ok(verified)
}

async fn confirm<T: PowerTransport>(shared: &Shared<T>, host: &Host, old: &str, since_ms: u64, ssh_usable: bool) -> Result<(), Stop> {
    if let Some(api) = shared.api_for(host) {
        // The API must agree: the node Ready with a boot ID other than the old one. An API
        // outage (the masters rebooting) only delays this; the reboot deadline decides.
        let deadline = shared.clock.instant_of(since_ms.saturating_add(shared.settings.timeout.as_millis() as u64));
        let mut abort = shared.abort.clone();
        let evidence = tokio::select! {
            // The store first: a node it shows back is proven, refused since or not.
            biased;
            evidence = api.wait_back(&host.name, old, deadline) => evidence,
            // Refused for good while it waits (a role re-applied narrower): waiting its deadline
            // out cannot change that, and would read as an answer only late.
            refused = api.refusal(&host.name) => Err(refused),
            _ = super::abort_reaches(&mut abort, |a| *a == Abort::Hard) => return Err(Stop::Aborted),
        };
        match evidence {
            Ok(boot_id) => shared.record(Entry::ApiConfirmed { host: host.name.clone(), boot_id }).await?,
            Err(error) => return Err(shared.fail(host, Stage::Confirm, error.to_string(), false).await),
        }
    }
    if let Some(check) = &shared.settings.check_command
        && !ssh_usable
    {
        let error = format!("the check `{check}` needs SSH, which cannot reach this node");
        return Err(shared.fail(host, Stage::Check, error, false).await);
    }
    if let Some(check) = &shared.settings.check_command
        && let Err(e) = shared.with_retries(host, Stage::Check, || shared.transport.run_check(host, check)).await
    {
        return Err(shared.fail(host, Stage::Check, e.to_string(), false).await);
    }
    shared.record(Entry::Confirmed { host: host.name.clone() }).await?;
    uncordon(shared, host).await;
    Ok(())
}

/// Lifts fleetboot's own cordon of the node (never one it found there); a failure is tried
/// again at the end of the run ([`uncordon_left_over`]).
async fn uncordon<T: PowerTransport>(shared: &Shared<T>, host: &Host) {
    // After a failed record (the run stops at Abort::Hard) nothing more is touched: the
    // journal may be fenced, another run may own the node now; a resume or `repair` lifts it.
    if !shared.cordoned.lock().unwrap().contains(&host.name) || shared.abort_level() == Abort::Hard {
        return;
    }
    if let Some(drain) = shared.drain_for(host) {
        // Journaled first (fenced): a writer that no longer owns the journal lifts nothing.
        if shared.record(Entry::Uncordoning { host: host.name.clone() }).await.is_err() {
            return;
        }
        match drain.set_unschedulable(&host.name, false).await {
            Ok(patched) => {
                let _ = shared.uncordoned(&host.name, patched).await;
            }
            Err(e) => shared.warn(host, format!("{e}; tried again at the end of the run")),
        }
    }
}

/// Cordon, then evict. Err: the host does not go on (failed or skipped, and uncordoned).
async fn drain_node<T: PowerTransport>(shared: &Shared<T>, drain: &dyn NodeDrain, host: &Host) -> Result<(), Stop> {
    use crate::engine::seams::DrainError;
    use fleetboot_core::batch::DrainStep;
    use fleetboot_core::nodes::DrainFailure;
    let name = || host.name.clone();
    let policy = drain.policy();
    // An admin's cordon is the admin's: journaled as found, drained under, never lifted. (A
    // cordon an earlier attempt of this run made stays this run's.)
    let ours = shared.cordoned.lock().unwrap().contains(&host.name);
    let already_cordoned = match ours {
        true => false,
        false => match drain.is_unschedulable(&host.name).await {
            Ok(on) => on,
            Err(error) => return Err(shared.fail(host, Stage::Drain, error.to_string(), false).await),
        },
    };
    shared.record(Entry::Cordoning { host: name(), already_cordoned }).await?;
    if !already_cordoned && let Err(error) = drain.set_unschedulable(&host.name, true).await {
        let stop = shared.fail(host, Stage::Drain, error.to_string(), false).await;
        uncordon(shared, host).await;
        return Err(stop);
    }
    let timeout = humantime::format_duration(Duration::from_millis(policy.timeout_ms));
    let mut abort = shared.abort.clone();
    let (left, answers, step) = loop {
        // The evictions may take many minutes (`--drain-escalation wait`): a stop (Ctrl-C, a
        // hard stop, the cluster lease lost) ends the drain at once, nothing sent.
        let evicted = tokio::select! {
            evicted = drain.evict_all(&host.name) => Some(evicted),
            _ = super::abort_reaches(&mut abort, |a| *a >= Abort::Soft) => None,
        };
        let Some(evicted) = evicted else { return Err(drain_stopped(shared, host).await) };
        if shared.abort_level() != Abort::No && evicted.is_err() {
            return Err(drain_stopped(shared, host).await);
        }
        let (left, answers) = match evicted {
            Ok(evicted) => return shared.record(Entry::Drained { host: name(), evicted }).await,
            Err(DrainError::PodsLeft { pods, answers }) => (pods, answers),
            // The pods could not even be listed: nothing is known drained, and nothing to force.
            Err(e @ DrainError::Api { .. }) => {
                let stop = shared.fail(host, Stage::Drain, e.to_string(), false).await;
                uncordon(shared, host).await;
                return Err(stop);
            }
        };
        // --drain-escalation: one step per timeout; `wait` drains again, still cordoned. Each
        // timeout is journaled, so a resume goes on from the same step.
        shared.record(Entry::DrainTimedOut { host: name(), pods: left.clone() }).await?;
        let timeouts = shared.records.lock().unwrap().get(&host.name).map_or(1, |r| r.drain_timeouts);
        match fleetboot_core::batch::drain_step(&shared.batch.drain_escalation, timeouts) {
            Some(DrainStep::Wait) if shared.abort_level() == Abort::No => {
                let reason = format!(
                    "drain timed out after {timeout} (pods left: {}); draining for another {timeout} (--drain-escalation wait)",
                    pods_with_answers(&left, &answers)
                );
                let _ = shared.events.send(Event::Waiting { host: name(), reason });
            }
            Some(DrainStep::Wait) => break (left, answers, None),
            step => break (left, answers, step),
        }
    };
    let why = format!("pods still on the node after {timeout}: {}", pods_with_answers(&left, &answers));
    match step {
        Some(DrainStep::Defer) if shared.abort_level() == Abort::No => {
            let reason = format!("{why}; uncordoned and moved to the end of the queue (--drain-escalation defer)");
            shared.record(Entry::Deferred { host: name(), reason, after_drain: false }).await?;
            uncordon(shared, host).await;
            shared.batch.defer(host);
            return Err(Stop::Deferred);
        }
        Some(DrainStep::Skip) => {
            let reason = format!("{why}; left uncordoned, not rebooted (--drain-escalation skip)");
            let stop = match shared.record(Entry::Skipped { host: name(), reason }).await {
                Ok(()) => Stop::Journaled,
                Err(stop) => stop,
            };
            uncordon(shared, host).await;
            return Err(stop);
        }
        Some(DrainStep::Force) => return force_delete(shared, drain, host, left).await,
        _ => {}
    }
    if policy.on_failure == DrainFailure::Force {
        return force_delete(shared, drain, host, left).await;
    }
    let stop = if policy.on_failure == DrainFailure::Skip {
        match shared.record(Entry::Skipped { host: name(), reason: why }).await {
            Ok(()) => Stop::Journaled,
            Err(stop) => stop,
        }
    } else {
        shared.fail(host, Stage::Drain, why, false).await
    };
    uncordon(shared, host).await;
    Err(stop)
}

/// A stop that came during the drain: nothing was sent. After a hard stop nothing more is
/// touched (the journal shows the node cordoned by fleetboot; a resume drains it again or
/// `repair` lifts it); after a Ctrl-C or the cluster lease lost the host is skipped and
/// fleetboot's cordon lifted (fenced), as for a host the stop caught before its reboot.
async fn drain_stopped<T: PowerTransport>(shared: &Shared<T>, host: &Host) -> Stop {
    if shared.abort_level() == Abort::Hard {
        return Stop::Aborted;
    }
    let reason = "the run was interrupted during this host's drain; nothing sent";
    let stop = match shared.skip(host, reason).await {
        Ok(()) => Stop::Journaled,
        Err(stop) => stop,
    };
    uncordon(shared, host).await;
    stop
}

/// `--drain-escalation force` / `--drain-failure force`: the pods eviction could not move are
/// deleted. Which pods is journaled first (a deletion is not undone), then they are deleted.
/// A deletion the API refused leaves a pod on the node: the host fails as on a failed
/// eviction (nothing sent) and fleetboot's cordon is lifted.
async fn force_delete<T: PowerTransport>(shared: &Shared<T>, drain: &dyn NodeDrain, host: &Host, pods: Vec<String>) -> Result<(), Stop> {
    shared.record(Entry::ForceDeleting { host: host.name.clone(), pods: pods.clone() }).await?;
    if let Err(error) = drain.delete_pods(&pods).await {
        let stop = shared.fail(host, Stage::Drain, format!("forcing the drain: {error}"), false).await;
        uncordon(shared, host).await;
        return Err(stop);
    }
    shared.record(Entry::Drained { host: host.name.clone(), evicted: pods.len() }).await
}
