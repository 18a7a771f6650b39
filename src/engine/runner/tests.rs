//! The runner's rules, in process: an in-memory fleet (each host a boot ID, a scheduled-reboot
//! delay, a down time and faults), a fake BMC and fake cluster-API evidence, on tokio's paused
//! clock. Every assertion reads the fakes' own records (what reached each host, when it went
//! down and came back) or the journal, never the runner's word for it.
//!
//! Past 500 lines: the runner's tests on the paused clock, one scenario each.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::time::Instant;

use super::*;
use crate::adapters::config::{FallbackPolicy, RebootSettings, Transport};
use crate::adapters::journal::JournalWriter;
use crate::adapters::kube::world::WorldError;
use crate::adapters::redfish::RedfishError;
use crate::engine::seams::{BmcError, BmcPower, DrainError, EvidenceError, NodeDrain, NodeEvidence};
use fleetboot_core::events::{Event, Outcome, Summary};
use fleetboot_core::hosts::Host;
use fleetboot_core::journal::FailureBudget;
use fleetboot_core::journal::{Delivery, Entry, Phase, ResumeAction, RunState};
use fleetboot_core::nodes::{DrainFailure, DrainPolicy};
use fleetboot_core::plan::{Grouping, plan_reboot};
use fleetboot_core::power::RestartKind;
use fleetboot_core::transport::{PowerTransport, TransportError};

mod batch;
mod drain_review;
mod sink;

/// The wall-clock time the fake world starts at (records carry it; deadlines never see it).
const BASE_MS: u64 = 1_800_000_000_000;
const SSH_LATENCY: Duration = Duration::from_millis(50);

#[derive(Clone, Copy, Debug, Default)]
struct Faults {
    /// SSH connections are refused (the host is up).
    refuse_ssh: bool,
    /// SSH connections hang until the client gives up.
    hang_ssh: bool,
    auth_fail: bool,
    /// The reboot command exits 1 (sudo refuses).
    refuse_sudo: bool,
    /// A reboot is accepted but never happens; a graceful BMC restart is ignored too.
    hung: bool,
    /// Goes down and never comes back.
    never_returns: bool,
    /// Cannot answer the check that no shutdown is scheduled any more.
    cancel_unverifiable: bool,
    /// Answers the boot-ID read, but the connection for the reboot command is refused.
    reboot_unreachable: bool,
    /// Every reboot is a `systemctl soft-reboot`: down and up again, same boot ID, systemd's
    /// SoftRebootsCount one higher.
    soft_reboot: bool,
    /// Presents another host key once it has rebooted.
    new_host_key_after_reboot: bool,
    /// The cluster API never shows the node Ready again.
    api_not_ready: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BmcBehaviour {
    Works,
    /// Fails before the reset request goes out.
    FailsBefore,
    /// Carries the reset out, then the answer is lost.
    FailsAfter,
    /// The system is powered off: the BMC is asked nothing that would switch it on.
    PoweredOff,
}

#[derive(Clone, Debug, PartialEq)]
enum Happened {
    /// A reboot command reached the host and was scheduled.
    SshReboot,
    /// A reboot command reached a host with one already scheduled or under way.
    SshRebootAgain,
    BmcReset(RestartKind),
    Cancelled,
    Down,
    Up,
    Cordoned,
    Uncordoned,
}

struct FakeHost {
    boot: u32,
    delay: Duration,
    down_time: Duration,
    faults: Faults,
    bmc: Option<BmcBehaviour>,
    scheduled: Option<Instant>,
    /// The scheduled shutdown is systemd's (an SSH reboot command), which `shutdown -c` cancels.
    ssh_scheduled: bool,
    down: bool,
    up_at: Option<Instant>,
    log: Vec<(Instant, Happened)>,
    soft_reboots: u64,
    /// The node's resourceVersion at the fake API: the cluster's revision at its last cordon
    /// or uncordon.
    version: u64,
}

impl FakeHost {
    fn boot_id(&self, name: &str) -> String {
        format!("{name}-boot{}", self.boot)
    }

    /// Brings the host's state up to `now`, logging each change at the time it happened.
    fn settle(&mut self, now: Instant) {
        loop {
            if let Some(at) = self.scheduled.filter(|at| *at <= now) {
                self.scheduled = None;
                self.ssh_scheduled = false;
                if !self.down {
                    self.down = true;
                    self.log.push((at, Happened::Down));
                    self.up_at = (!self.faults.never_returns).then_some(at + self.down_time);
                }
                continue;
            }
            if let Some(at) = self.up_at.filter(|at| *at <= now) {
                self.up_at = None;
                self.down = false;
                if self.faults.soft_reboot {
                    self.soft_reboots += 1;
                } else {
                    self.boot += 1;
                    self.soft_reboots = 0;
                }
                self.log.push((at, Happened::Up));
                continue;
            }
            break;
        }
    }

    fn pending(&self) -> bool {
        self.scheduled.is_some() || self.down
    }

    fn count(&self, what: impl Fn(&Happened) -> bool) -> usize {
        self.log.iter().filter(|(_, h)| what(h)).count()
    }
}

struct World {
    start: Instant,
    hosts: Mutex<BTreeMap<String, FakeHost>>,
    /// The pods the fake cluster API lists for any selector (`--block-on-pods`).
    blockers: Mutex<Vec<fleetboot_core::batch::PodNow>>,
    /// What the fake cluster API shows of the cluster's state (`None`: no world to show).
    cluster: Mutex<Option<fleetboot_core::limits::World>>,
    /// The journal the fake drain reads when it deletes pods, and what each deletion found
    /// there: whether `force_deleting` was already journaled.
    journal: Mutex<Option<PathBuf>>,
    deletions: Mutex<Vec<bool>>,
    /// Transports a host was reached through instead of SSH, with why, not yet taken.
    escalations: Mutex<BTreeMap<String, Vec<(String, String)>>>,
    /// A cluster state that comes about during the checks after a drain: a drain that ends
    /// arms it, and the next pod list (`--block-on-pods`) makes it `cluster`.
    cluster_after_drain: Mutex<Option<fleetboot_core::limits::World>>,
    cluster_on_pods_read: Mutex<Option<fleetboot_core::limits::World>>,
    /// Nodes the fake Node watch shows plainly available now, whatever `cluster` (a read that
    /// ended earlier) says of them.
    seen_back: Mutex<BTreeSet<String>>,
    /// The fake API's revision: each cordon or uncordon makes the next one.
    revision: std::sync::atomic::AtomicU64,
}

impl World {
    fn new(names: &[&str]) -> Arc<World> {
        let hosts = names
            .iter()
            .map(|n| {
                let host = FakeHost {
                    boot: 0,
                    delay: Duration::from_secs(60),
                    down_time: Duration::from_secs(30),
                    faults: Faults::default(),
                    bmc: Some(BmcBehaviour::Works),
                    scheduled: None,
                    ssh_scheduled: false,
                    down: false,
                    up_at: None,
                    log: Vec::new(),
                    soft_reboots: 0,
                    version: 1,
                };
                (n.to_string(), host)
            })
            .collect();
        Arc::new(World {
            start: Instant::now(),
            hosts: Mutex::new(hosts),
            blockers: Mutex::new(Vec::new()),
            cluster: Mutex::new(None),
            journal: Mutex::new(None),
            deletions: Mutex::new(Vec::new()),
            escalations: Mutex::new(BTreeMap::new()),
            cluster_after_drain: Mutex::new(None),
            cluster_on_pods_read: Mutex::new(None),
            seen_back: Mutex::new(BTreeSet::new()),
            revision: std::sync::atomic::AtomicU64::new(1),
        })
    }

    fn with<R>(&self, name: &str, f: impl FnOnce(&mut FakeHost) -> R) -> R {
        let mut hosts = self.hosts.lock().unwrap();
        let host = hosts.get_mut(name).expect("a host of the world");
        host.settle(Instant::now());
        f(host)
    }

    fn set(&self, name: &str, f: impl FnOnce(&mut FakeHost)) {
        self.with(name, f)
    }

    /// A write to the node at the fake API (a cordon, an uncordon, by fleetboot or another
    /// actor): the node's resourceVersion, now the cluster's next revision.
    fn write_node(&self, name: &str) -> u64 {
        let version = self.revision.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        self.set(name, |h| h.version = version);
        version
    }

    fn boot_id(&self, name: &str) -> String {
        self.with(name, |h| h.boot_id(name))
    }

    /// Every reboot that reached the host (commands and resets).
    fn reboots_received(&self, name: &str) -> usize {
        self.with(name, |h| h.count(|e| matches!(e, Happened::SshReboot | Happened::SshRebootAgain | Happened::BmcReset(_))))
    }

    fn times_of(&self, name: &str, what: impl Fn(&Happened) -> bool) -> Vec<Instant> {
        self.with(name, |h| h.log.iter().filter(|(_, e)| what(e)).map(|(at, _)| *at).collect())
    }

    /// Every reboot sent to any host, in time order.
    fn sends(&self) -> Vec<(Instant, String)> {
        let names: Vec<String> = self.hosts.lock().unwrap().keys().cloned().collect();
        let mut out: Vec<(Instant, String)> = names
            .iter()
            .flat_map(|n| {
                self.times_of(n, |e| matches!(e, Happened::SshReboot | Happened::SshRebootAgain | Happened::BmcReset(_)))
                    .into_iter()
                    .map(|at| (at, n.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        out.sort();
        out
    }

    /// The most of `names` down at the same moment, from the hosts' own logs.
    fn most_down_at_once(&self, names: &[&str]) -> usize {
        let mut edges: Vec<(Instant, i32)> = Vec::new();
        for name in names {
            self.with(name, |h| {
                for (at, e) in &h.log {
                    match e {
                        Happened::Down => edges.push((*at, 1)),
                        Happened::Up => edges.push((*at, -1)),
                        _ => {}
                    }
                }
            });
        }
        // An "up" at the same instant as another host's "down" frees its place first.
        edges.sort();
        let (mut now, mut most) = (0, 0);
        for (_, delta) in edges {
            now += delta;
            most = most.max(now);
        }
        most as usize
    }

    fn wall_now_ms(&self) -> u64 {
        BASE_MS + self.start.elapsed().as_millis() as u64
    }

    /// A reset through the BMC: a graceful one takes effect after 5 s (ignored by a hung
    /// host), a forced one at once, even on a host that is down or hung.
    fn reset(&self, name: &str, kind: RestartKind) {
        self.set(name, |h| {
            let now = Instant::now();
            h.log.push((now, Happened::BmcReset(kind)));
            match kind {
                RestartKind::Graceful if h.faults.hung || h.down => {}
                RestartKind::Graceful => {
                    h.scheduled = Some(h.scheduled.map_or(now + Duration::from_secs(5), |s| s.min(now + Duration::from_secs(5))))
                }
                RestartKind::Force if h.down => h.up_at = Some(now + h.down_time),
                RestartKind::Force => {
                    h.faults.hung = false;
                    h.scheduled = Some(now);
                }
            }
        });
    }
}

/// SSH to the fake hosts.
struct FakeSsh(Arc<World>);

impl FakeSsh {
    /// Connects: the faults of a reachable host, or "refused" for one that is down.
    async fn connect(&self, host: &Host) -> Result<(), TransportError> {
        tokio::time::sleep(SSH_LATENCY).await;
        let faults = self.0.with(&host.name, |h| if h.down { None } else { Some((h.faults, h.boot)) });
        let Some((faults, boot)) = faults else { return Err(TransportError::Unreachable("connection refused".into())) };
        if faults.new_host_key_after_reboot && boot > 0 {
            return Err(TransportError::HostKey("the host key changed".into()));
        }
        if faults.hang_ssh {
            tokio::time::sleep(Duration::from_secs(10)).await;
            return Err(TransportError::Timeout("connect".into()));
        }
        if faults.refuse_ssh {
            return Err(TransportError::Unreachable("connection refused".into()));
        }
        if faults.auth_fail {
            return Err(TransportError::Auth("publickey refused".into()));
        }
        Ok(())
    }
}

impl PowerTransport for FakeSsh {
    fn take_escalations(&self, host: &Host) -> Vec<(String, String)> {
        self.0.escalations.lock().unwrap().remove(&host.name).unwrap_or_default()
    }

    async fn read_boot_id(&self, host: &Host) -> Result<String, TransportError> {
        self.connect(host).await?;
        Ok(self.0.boot_id(&host.name))
    }

    async fn send_reboot(&self, host: &Host) -> Result<Delivery, TransportError> {
        self.connect(host).await?;
        self.0.with(&host.name, |h| {
            if h.faults.reboot_unreachable {
                return Err(TransportError::Unreachable("connection reset".into()));
            }
            if h.faults.refuse_sudo {
                return Err(TransportError::CommandFailed { command: "sudo shutdown -r -t 3".into(), exit: 1, stderr: "sudo: no".into() });
            }
            let now = Instant::now();
            if h.pending() {
                h.log.push((now, Happened::SshRebootAgain));
            } else {
                h.log.push((now, Happened::SshReboot));
                if !h.faults.hung {
                    h.scheduled = Some(now + h.delay);
                    h.ssh_scheduled = true;
                }
            }
            Ok(Delivery::ExitZero)
        })
    }

    /// Only a host that soft-reboots has a systemd new enough (256) to count soft reboots; the
    /// others answer as older ones do, so their journals hold no count.
    async fn soft_reboot_count(&self, host: &Host) -> Option<u64> {
        if !self.0.with(&host.name, |h| h.faults.soft_reboot) {
            return None;
        }
        self.connect(host).await.ok()?;
        Some(self.0.with(&host.name, |h| h.soft_reboots))
    }

    async fn cancel_reboot(&self, host: &Host) -> Result<(), TransportError> {
        self.connect(host).await?;
        self.0.set(&host.name, |h| {
            if h.ssh_scheduled {
                h.scheduled = None;
                h.ssh_scheduled = false;
                h.log.push((Instant::now(), Happened::Cancelled));
            }
        });
        Ok(())
    }

    async fn run_check(&self, host: &Host, command: &str) -> Result<(), TransportError> {
        self.connect(host).await?;
        // `--only-if` in these tests: "needs h1 h4" exits 0 on those hosts, 1 on the others.
        if let Some(list) = command.strip_prefix("needs ") {
            if list.split(' ').any(|n| n == host.name) {
                return Ok(());
            }
            return Err(TransportError::CommandFailed { command: command.into(), exit: 1, stderr: String::new() });
        }
        if command != super::host::NO_SHUTDOWN_SCHEDULED {
            return Ok(());
        }
        // A BMC's graceful restart (the power button) leaves no scheduled shutdown to see.
        let (unverifiable, scheduled) = self.0.with(&host.name, |h| (h.faults.cancel_unverifiable, h.ssh_scheduled));
        match (unverifiable, scheduled) {
            (true, _) => Err(TransportError::CommandFailed { command: command.into(), exit: 127, stderr: "test: not found".into() }),
            (false, true) => Err(TransportError::CommandFailed { command: command.into(), exit: 1, stderr: String::new() }),
            (false, false) => Ok(()),
        }
    }
}

struct FakeBmc(Arc<World>);

impl BmcPower for FakeBmc {
    fn has(&self, node: &str) -> bool {
        self.0.with(node, |h| h.bmc.is_some())
    }

    fn graceful_timeout(&self) -> Duration {
        Duration::from_secs(120)
    }

    fn restart<'a>(&'a self, node: &'a str, kind: RestartKind) -> BoxFuture<'a, Result<String, BmcError>> {
        Box::pin(async move {
            // The request reaches the BMC as fast as an SSH command reaches a host; its answer
            // takes longer.
            tokio::time::sleep(SSH_LATENCY).await;
            let behaviour = self.0.with(node, |h| h.bmc).unwrap_or(BmcBehaviour::FailsBefore);
            let reset_type = match kind {
                RestartKind::Graceful => "GracefulRestart",
                RestartKind::Force => "ForceRestart",
            };
            match behaviour {
                BmcBehaviour::PoweredOff => Err(BmcError::PoweredOff(RedfishError::PoweredOff { node: node.into() })),
                BmcBehaviour::FailsBefore => {
                    Err(BmcError::NotSent(RedfishError::Auth { node: node.into(), url: "https://bmc".into(), user: "admin".into() }))
                }
                BmcBehaviour::FailsAfter => {
                    self.0.reset(node, kind);
                    Err(BmcError::MayHaveReset(RedfishError::Unreachable {
                        node: node.into(),
                        url: "https://bmc".into(),
                        reason: "connection closed before the answer".into(),
                    }))
                }
                BmcBehaviour::Works => {
                    self.0.reset(node, kind);
                    tokio::time::sleep(Duration::from_millis(150)).await;
                    Ok(reset_type.to_owned())
                }
            }
        })
    }
}

/// The cluster API: a node's boot ID, Ready once it is up.
struct FakeApi(Arc<World>);

impl NodeEvidence for FakeApi {
    fn boot_id<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Option<String>> {
        Box::pin(async move { Some(self.0.boot_id(node)) })
    }

    fn wait_back<'a>(&'a self, node: &'a str, old: &'a str, deadline: Instant) -> BoxFuture<'a, Result<String, EvidenceError>> {
        Box::pin(async move {
            loop {
                let (down, id) = self.0.with(node, |h| (h.down || h.faults.api_not_ready, h.boot_id(node)));
                if !down && id != old {
                    return Ok(id);
                }
                let now = Instant::now();
                if now >= deadline {
                    return Err(EvidenceError::NotBack { reason: format!("the cluster API still shows node {node} with boot ID {id}") });
                }
                tokio::time::sleep((deadline - now).min(Duration::from_secs(1))).await;
            }
        })
    }

    fn pods_matching<'a>(&'a self, _selector: &'a str) -> BoxFuture<'a, Result<Vec<fleetboot_core::batch::PodNow>, String>> {
        Box::pin(async move {
            if let Some(cluster) = self.0.cluster_on_pods_read.lock().unwrap().take() {
                *self.0.cluster.lock().unwrap() = Some(cluster);
            }
            Ok(self.0.blockers.lock().unwrap().clone())
        })
    }

    fn available_now(&self, node: &str) -> bool {
        self.0.seen_back.lock().unwrap().contains(node)
    }

    fn world<'a>(&'a self, _group_by: Option<&'a str>) -> BoxFuture<'a, Result<Option<Arc<fleetboot_core::limits::World>>, WorldError>> {
        Box::pin(async move { Ok(self.0.cluster.lock().unwrap().clone().map(Arc::new)) })
    }
}

struct FakeDrain(Arc<World>, DrainFaults);

/// What the fake cluster does to a drain.
#[derive(Clone, Copy, Default)]
struct DrainFaults {
    /// The policy is `--drain-failure force`.
    force: bool,
    /// The node's pods cannot be listed (until the drain's deadline).
    list_fails: bool,
    /// The admin cordoned every node before the run.
    pre_cordoned: bool,
    /// This node's drain never ends: one pod a budget protects stays (`app/db-0`).
    stuck: Option<&'static str>,
    /// The API refuses to delete pods (a forced drain's deletion fails).
    delete_fails: bool,
}

impl NodeDrain for FakeDrain {
    fn policy(&self) -> DrainPolicy {
        DrainPolicy { timeout_ms: 60_000, on_failure: if self.1.force { DrainFailure::Force } else { DrainFailure::Fail } }
    }

    fn set_unschedulable<'a>(&'a self, node: &'a str, on: bool) -> BoxFuture<'a, Result<Patched, DrainError>> {
        Box::pin(async move {
            self.0.set(node, |h| h.log.push((Instant::now(), if on { Happened::Cordoned } else { Happened::Uncordoned })));
            Ok(Patched { version: Some(self.0.write_node(node).to_string()), left_cordoned: None })
        })
    }

    fn is_unschedulable<'a>(&'a self, _node: &'a str) -> BoxFuture<'a, Result<bool, DrainError>> {
        Box::pin(async move { Ok(self.1.pre_cordoned) })
    }

    fn evict_all<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<usize, DrainError>> {
        Box::pin(async move {
            if self.1.stuck == Some(node) {
                tokio::time::sleep(Duration::from_millis(self.policy().timeout_ms)).await;
                return Err(DrainError::PodsLeft { pods: vec!["app/db-0".into()], answers: Default::default() });
            }
            tokio::time::sleep(Duration::from_secs(20)).await;
            if self.1.list_fails {
                return Err(DrainError::Api {
                    message: format!("could not list the pods of node {node} within the drain timeout"),
                    source: None,
                });
            }
            if let Some(cluster) = self.0.cluster_after_drain.lock().unwrap().take() {
                *self.0.cluster_on_pods_read.lock().unwrap() = Some(cluster);
            }
            Ok(2)
        })
    }

    fn delete_pods<'a>(&'a self, pods: &'a [String]) -> BoxFuture<'a, Result<(), DrainError>> {
        Box::pin(async move {
            let journal = self.0.journal.lock().unwrap().clone();
            if let Some(journal) = journal {
                let text = std::fs::read_to_string(journal).unwrap_or_default();
                self.0.deletions.lock().unwrap().push(text.contains("\"force_deleting\""));
            }
            if self.1.delete_fails {
                let pod = pods.first().cloned().unwrap_or_default();
                return Err(DrainError::Api { message: format!("could not delete pod {pod}: pods \"{pod}\" is forbidden"), source: None });
            }
            Ok(())
        })
    }
}

fn settings() -> RebootSettings {
    RebootSettings {
        command: "sudo shutdown -r -t 3".into(),
        boot_id_command: "cat /proc/sys/kernel/random/boot_id".into(),
        cancel_command: "sudo shutdown -c".into(),
        check_command: None,
        timeout: Duration::from_secs(600),
        poll_interval: Duration::from_secs(2),
        concurrency: 10,
        rate: None,
        parallel: 64,
        max_failures: FailureBudget::Count(10),
        cancel_pending_on_abort: false,
        transport: Transport::Auto,
        scheduled_delay: Duration::from_secs(60),
        ..RebootSettings::default()
    }
}

fn rate(count: u32, per: Duration) -> Option<fleetboot_core::journal::RateSpec> {
    Some(fleetboot_core::journal::RateSpec { count, per_ms: per.as_millis() as u64 })
}

/// One run against the world (fresh, or resuming the journal at `journal`).
struct Job {
    world: Arc<World>,
    names: Vec<String>,
    settings: RebootSettings,
    grouping: Grouping,
    api: bool,
    bmc: bool,
    drain: bool,
    drain_faults: DrainFaults,
    kill: Option<Kill>,
    journal: PathBuf,
    /// The wall clock the windows are judged on (`None`: the world's, anchored).
    wall: Option<fn() -> u64>,
}

impl Job {
    fn new(world: &Arc<World>, dir: &Path, names: &[&str]) -> Job {
        Job {
            world: world.clone(),
            names: names.iter().map(|n| n.to_string()).collect(),
            settings: settings(),
            grouping: Grouping::default(),
            api: false,
            bmc: true,
            drain: false,
            drain_faults: DrainFaults::default(),
            kill: None,
            journal: dir.join("run.jsonl"),
            wall: None,
        }
    }

    fn hosts(&self) -> Vec<Host> {
        self.names.iter().enumerate().map(|(i, n)| Host { name: n.clone(), address: format!("127.0.0.{}", i + 1), port: None }).collect()
    }

    /// The journal folded, as `--resume` sees it.
    fn state(&self) -> RunState {
        crate::adapters::journal::load(&self.journal).unwrap().1
    }

    fn records(&self) -> Vec<Record> {
        crate::adapters::journal::load(&self.journal).unwrap().0
    }

    async fn run(&self) -> Summary {
        let (trigger, abort) = watch::channel(Abort::No);
        self.run_with_abort((trigger, abort), |_, _| {}).await
    }

    /// Runs; `on_event` sees every event with the abort trigger in hand.
    async fn run_with_abort(
        &self,
        abort: (watch::Sender<Abort>, watch::Receiver<Abort>),
        mut on_event: impl FnMut(&Event, &watch::Sender<Abort>),
    ) -> Summary {
        let prior = self.journal.exists().then(|| self.state());
        let journal =
            if prior.is_some() { JournalWriter::reopen(&self.journal).unwrap() } else { JournalWriter::create(&self.journal).unwrap() };
        let plan = plan_reboot("run-1".into(), self.hosts(), prior.as_ref(), self.grouping.clone());
        let inputs: RunInputs<FakeSsh, FakeApi, FakeDrain, FakeBmc> = RunInputs {
            transport: FakeSsh(self.world.clone()),
            settings: self.settings.clone(),
            retry: RetryPolicy { attempts: 3, first_wait: Duration::from_secs(1) },
            journal,
            plan,
            prior,
            api: self.api.then(|| Arc::new(FakeApi(self.world.clone()))),
            drain: self.drain.then(|| Arc::new(FakeDrain(self.world.clone(), self.drain_faults))),
            lease_takeover: None,
            bmc: self.bmc.then(|| Arc::new(FakeBmc(self.world.clone()))),
            fallback: FallbackPolicy { on_unreachable: true, on_auth_failure: true, on_host_key: false, on_hung: true },
            cluster: None,
            limits: LimitsRule::default(),
        };
        let trigger = abort.0.clone();
        let clock = RunClock::anchored(self.world.wall_now_ms());
        let clock = match self.wall {
            Some(wall) => clock.with_wall(wall),
            None => clock,
        };
        let hooks = Hooks { clock: Some(clock), kill: self.kill };
        run_with(inputs, abort, |event| on_event(event, &trigger), hooks).await
    }
}

/// Whether `event` is the journal's record that `host`'s cordon begins (its drain under way).
fn cordoning(event: &Event, host: &str) -> bool {
    matches!(event, Event::Transition { record } if matches!(&record.entry, Entry::Cordoning { host: h, .. } if h == host))
}

/// Each `waiting` event as "HOST: REASON", in order.
fn collect_waiting(event: &Event, waits: &mut Vec<String>) {
    if let Event::Waiting { host, reason } = event {
        waits.push(format!("{host}: {reason}"));
    }
}

fn outcome(summary: &Summary, name: &str) -> Outcome {
    summary.hosts.iter().find(|h| h.host == name).unwrap().outcome
}

fn names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("h{i}")).collect()
}

fn strs(names: &[String]) -> Vec<&str> {
    names.iter().map(String::as_str).collect()
}

#[tokio::test(start_paused = true)]
async fn runner_reboots_every_host_once_within_the_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let all = names(6);
    let world = World::new(&strs(&all));
    let mut job = Job::new(&world, dir.path(), &strs(&all));
    job.settings.concurrency = 2;
    let summary = job.run().await;
    for name in &all {
        assert_eq!(outcome(&summary, name), Outcome::Rebooted, "{name}");
        assert_eq!(world.reboots_received(name), 1, "{name}");
        assert_eq!(world.boot_id(name), format!("{name}-boot1"));
    }
    assert_eq!(world.most_down_at_once(&strs(&all)), 2, "two at a time, and never more");
    assert!(job.state().finished);
}

#[tokio::test(start_paused = true)]
async fn runner_keeps_a_group_to_its_own_limit() {
    let dir = tempfile::tempdir().unwrap();
    let all = names(6);
    let world = World::new(&strs(&all));
    let mut job = Job::new(&world, dir.path(), &strs(&all));
    job.settings.concurrency = 4;
    job.grouping.of = all.iter().enumerate().map(|(i, n)| (n.clone(), if i < 3 { "masters" } else { "workers" }.to_owned())).collect();
    job.grouping.limits = [("masters".to_owned(), 1)].into_iter().collect();
    let summary = job.run().await;
    assert!(summary.hosts.iter().all(|h| h.outcome == Outcome::Rebooted));
    assert_eq!(world.most_down_at_once(&["h1", "h2", "h3"]), 1);
    assert!(world.most_down_at_once(&strs(&all)) <= 4);
}

#[tokio::test(start_paused = true)]
async fn runner_spaces_every_reboot_sent_by_the_rate_including_bmc_resets() {
    let dir = tempfile::tempdir().unwrap();
    let all = names(4);
    let world = World::new(&strs(&all));
    for name in &all {
        world.set(name, |h| {
            h.delay = Duration::from_secs(20);
            h.down_time = Duration::from_secs(20);
        });
    }
    // h1 hangs on its reboot: the ladder resets it through the BMC a minute later, just when
    // h2's turn comes; h2 refuses SSH, so its BMC resets it (a send of its own).
    world.set("h1", |h| h.faults.hung = true);
    world.set("h2", |h| h.faults.refuse_ssh = true);
    let mut job = Job::new(&world, dir.path(), &strs(&all));
    job.api = true;
    job.settings.timeout = Duration::from_secs(60);
    job.settings.rate = rate(1, Duration::from_secs(60));
    let summary = job.run().await;
    assert!(summary.hosts.iter().all(|h| h.outcome == Outcome::Rebooted), "{summary:?}");
    let sends = world.sends();
    assert_eq!(sends.len(), 6, "{sends:?}");
    for pair in sends.windows(2) {
        assert!(pair[1].0 - pair[0].0 >= Duration::from_secs(60), "sends closer than the rate allows: {sends:?}");
    }
}

/// The boot ID is read right before the reboot goes out, also when another host's BMC reset
/// takes the rate slot between the read and the send: then it is read again after the wait.
#[tokio::test(start_paused = true)]
async fn runner_reads_the_boot_id_again_when_another_hosts_reset_took_the_rate_slot() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1", "h2"]);
    // h1's reboot command never reaches it: its BMC reset follows at once, and waits for the
    // rate slot h2 has reserved; h2 takes a moment to read its boot ID and finds it taken.
    world.set("h1", |h| h.faults.reboot_unreachable = true);
    let mut job = Job::new(&world, dir.path(), &["h1", "h2"]);
    job.settings.rate = rate(1, Duration::from_secs(10));
    let summary = job.run().await;
    assert!(summary.hosts.iter().all(|h| h.outcome == Outcome::Rebooted), "{summary:?}");
    let records = job.records();
    let h2: Vec<&Record> = records.iter().filter(|r| r.entry.host() == Some("h2")).collect();
    let read = h2.iter().rev().find(|r| matches!(r.entry, Entry::BootIdRead { .. })).unwrap();
    let dispatching = h2.iter().find(|r| matches!(r.entry, Entry::Dispatching { .. })).unwrap();
    // What reached a host: h1's BMC reset, then h2's reboot, a rate period apart.
    let sends = world.sends();
    assert_eq!(sends.len(), 2, "{sends:?}");
    assert!(sends[1].0 - sends[0].0 >= Duration::from_secs(10), "{sends:?}");
    let reads = h2.iter().filter(|r| matches!(r.entry, Entry::BootIdRead { .. })).count();
    assert_eq!(reads, 2, "read, the slot taken, read again: {h2:?}");
    assert!(
        dispatching.at_ms - read.at_ms < 1_000,
        "the last boot-ID read came {} ms before the reboot: {h2:?}",
        dispatching.at_ms - read.at_ms
    );
}

#[tokio::test(start_paused = true)]
async fn runner_stops_starting_hosts_when_the_failure_budget_is_spent_and_a_resume_remembers() {
    let dir = tempfile::tempdir().unwrap();
    let all = names(4);
    let world = World::new(&strs(&all));
    world.set("h1", |h| h.faults.refuse_sudo = true);
    world.set("h2", |h| h.faults.refuse_sudo = true);
    let mut job = Job::new(&world, dir.path(), &strs(&all));
    job.settings.concurrency = 1;
    job.settings.max_failures = FailureBudget::Count(1);
    // Killed right after h2's failure is journaled.
    let records_to_h2_failure = 1 + 2 + 2 + 2; // run_started; h1: boot_id_read, dispatching, failed (-1: no dispatched); h2 alike
    job.kill = Some(Kill { after: records_to_h2_failure, before_its_action: false });
    job.run().await;
    let state = job.state();
    assert_eq!(state.records["h2"].phase, Phase::Failed, "the kill came after h2's failure: {:?}", job.records());
    assert_eq!(state.failed_hosts(), 2);
    // Whatever made them fail is fixed; the budget stays spent until the user raises it.
    world.set("h1", |h| h.faults.refuse_sudo = false);
    world.set("h2", |h| h.faults.refuse_sudo = false);
    job.kill = None;
    for _ in 0..2 {
        let summary = job.run().await;
        assert_eq!(outcome(&summary, "h1"), Outcome::Failed);
        assert_eq!(outcome(&summary, "h2"), Outcome::Failed);
        assert_eq!(outcome(&summary, "h3"), Outcome::Skipped);
        assert_eq!(outcome(&summary, "h4"), Outcome::Skipped);
        assert_eq!(job.state().failed_hosts(), 2, "skipping a failed host does not forget its failure");
        for name in &all {
            assert_eq!(world.reboots_received(name), 0, "{name}: the resumed run started a host with the budget spent");
        }
    }
    job.settings.max_failures = FailureBudget::Count(2);
    let summary = job.run().await;
    assert!(summary.hosts.iter().all(|h| h.outcome == Outcome::Rebooted), "a raised budget lets the run go on: {summary:?}");
}

#[tokio::test(start_paused = true)]
async fn runner_climbs_the_bmc_ladder_graceful_then_forced_never_before_the_scheduled_delay() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1"]);
    world.set("h1", |h| {
        h.faults.hung = true;
        h.down_time = Duration::from_secs(20);
    });
    let mut job = Job::new(&world, dir.path(), &["h1"]);
    // A deadline shorter than systemd's minute: the ladder still waits the minute out.
    job.settings.timeout = Duration::from_secs(30);
    let summary = job.run().await;
    assert_eq!(outcome(&summary, "h1"), Outcome::Rebooted, "{summary:?}");
    let ssh = world.times_of("h1", |e| *e == Happened::SshReboot);
    let graceful = world.times_of("h1", |e| *e == Happened::BmcReset(RestartKind::Graceful));
    let force = world.times_of("h1", |e| *e == Happened::BmcReset(RestartKind::Force));
    assert_eq!((ssh.len(), graceful.len(), force.len()), (1, 1, 1));
    assert!(graceful[0] - ssh[0] >= Duration::from_secs(60), "a reset before the scheduled shutdown could run");
    assert!(force[0] - graceful[0] >= Duration::from_secs(120), "the forced reset before the graceful one's timeout");
}

/// A resume that finds the host's BMC gone (`--transport ssh`, a Secret that no longer reads)
/// fails the host before anything is journaled as sent: no forced reset recorded that never went
/// out, and the earlier reboots stay in doubt.
#[tokio::test(start_paused = true)]
async fn runner_resumed_without_the_hosts_bmc_fails_it_without_journaling_a_reset() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1", "h2"]);
    world.set("h1", |h| h.faults.hung = true);
    let mut job = Job::new(&world, dir.path(), &["h1", "h2"]);
    job.settings.concurrency = 1;
    // run_started, then h1: boot_id_read, dispatching, dispatched, falling_back, dispatching
    // (BMC), dispatched (BMC): killed while the orderly restart is being watched.
    job.kill = Some(Kill { after: 7, before_its_action: false });
    job.run().await;
    let last = job.records().last().unwrap().entry.clone();
    assert!(matches!(last, Entry::Dispatched { delivery: Delivery::BmcAccepted, .. }), "{last:?}");
    // The resumed run has BMCs, but none for h1 now.
    world.set("h1", |h| h.bmc = None);
    job.kill = None;
    let summary = job.run().await;
    assert_eq!(outcome(&summary, "h1"), Outcome::Failed);
    let forced = job.records().into_iter().filter(|r| matches!(r.entry, Entry::Dispatching { bmc: Some(RestartKind::Force), .. })).count();
    assert_eq!(forced, 0, "no forced reset journaled that was never sent");
    assert_eq!(world.times_of("h1", |e| *e == Happened::BmcReset(RestartKind::Force)).len(), 0);
    let record = &job.state().records["h1"];
    assert!(record.reboot_pending, "the reboots sent before stay in doubt: {record:?}");
    assert_eq!(outcome(&summary, "h2"), Outcome::Rebooted, "{summary:?}");
}

/// A node SSH cannot reach whose BMC reports it powered off is left off: the outcome says so,
/// the run exits 3, the announced reset is not a reboot in doubt, and a resume looks again.
#[tokio::test(start_paused = true)]
async fn runner_leaves_a_powered_off_node_off_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1", "h2"]);
    world.set("h1", |h| {
        h.faults.refuse_ssh = true;
        h.bmc = Some(BmcBehaviour::PoweredOff);
    });
    let mut job = Job::new(&world, dir.path(), &["h1", "h2"]);
    job.api = true;
    let summary = job.run().await;
    assert_eq!(outcome(&summary, "h1"), Outcome::PoweredOff, "{summary:?}");
    assert_eq!(outcome(&summary, "h2"), Outcome::Rebooted, "{summary:?}");
    assert_eq!(summary.exit_code(), fleetboot_core::ExitCode::HostsFailed);
    assert_eq!(world.reboots_received("h1"), 0);
    let record = &job.state().records["h1"];
    assert!(record.phase == Phase::PoweredOff && !record.reboot_pending && record.attempts.is_empty(), "{record:?}");
    assert_eq!(record.resume_action(), ResumeAction::Reboot, "a resume looks at it again");
    // Switched on meanwhile: the resume reboots it.
    world.set("h1", |h| h.bmc = Some(BmcBehaviour::Works));
    let summary = job.run().await;
    assert_eq!(outcome(&summary, "h1"), Outcome::Rebooted, "{summary:?}");
    assert_eq!(world.reboots_received("h1"), 1);
}

#[tokio::test(start_paused = true)]
async fn runner_counts_a_bmc_reset_that_may_have_happened_as_happened() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1"]);
    // SSH cannot reach h1; its BMC carries the reset out and the answer is lost.
    world.set("h1", |h| {
        h.faults.refuse_ssh = true;
        h.bmc = Some(BmcBehaviour::FailsAfter);
    });
    let mut job = Job::new(&world, dir.path(), &["h1"]);
    job.api = true;
    let summary = job.run().await;
    assert_eq!(outcome(&summary, "h1"), Outcome::Rebooted, "{summary:?}");
    assert_eq!(world.reboots_received("h1"), 1, "never another reset after one that may have happened");
    let dispatched = job.records().into_iter().find_map(|r| match r.entry {
        Entry::Dispatched { delivery, .. } => Some(delivery),
        _ => None,
    });
    assert_eq!(dispatched, Some(Delivery::NoAnswer), "journaled as possibly delivered");
}

#[tokio::test(start_paused = true)]
async fn runner_resumes_after_a_bmc_reset_in_doubt_by_waiting_for_the_boot_id() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1"]);
    world.set("h1", |h| {
        h.faults.refuse_ssh = true;
        h.bmc = Some(BmcBehaviour::FailsAfter);
    });
    let mut job = Job::new(&world, dir.path(), &["h1"]);
    job.api = true;
    // Killed after the reset went out: run_started, falling_back, boot_id_read, dispatching.
    job.kill = Some(Kill { after: 4, before_its_action: false });
    job.run().await;
    assert_eq!(job.state().records["h1"].resume_action(), ResumeAction::AwaitNewBootId);
    job.kill = None;
    let summary = job.run().await;
    assert_eq!(outcome(&summary, "h1"), Outcome::Rebooted, "{summary:?}");
    assert_eq!(world.reboots_received("h1"), 1);
}

#[tokio::test(start_paused = true)]
async fn runner_keeps_an_ssh_reboot_in_doubt_when_a_later_bmc_reset_provably_failed() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1"]);
    world.set("h1", |h| {
        h.faults.hung = true;
        h.bmc = Some(BmcBehaviour::FailsBefore);
    });
    let job = Job::new(&world, dir.path(), &["h1"]);
    let summary = job.run().await;
    assert_eq!(outcome(&summary, "h1"), Outcome::Failed);
    let record = &job.state().records["h1"];
    assert!(record.reboot_pending, "the SSH reboot sent first may still happen: {record:?}");
    assert_eq!(record.resume_action(), ResumeAction::AwaitNewBootId);
}

/// Soft abort once `dispatched` hosts have their reboot dispatched.
fn soft_abort_after(dispatched: usize) -> impl FnMut(&Event, &watch::Sender<Abort>) {
    let mut seen = 0;
    move |event, trigger| {
        if let Event::Transition { record } = event
            && matches!(record.entry, Entry::Dispatched { .. })
        {
            seen += 1;
            if seen == dispatched {
                let _ = trigger.send(Abort::Soft);
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn runner_on_a_first_ctrl_c_starts_nothing_new_and_finishes_what_is_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let all = names(5);
    let world = World::new(&strs(&all));
    let mut job = Job::new(&world, dir.path(), &strs(&all));
    job.settings.concurrency = 2;
    let summary = job.run_with_abort(watch::channel(Abort::No), soft_abort_after(2)).await;
    assert!(summary.aborted);
    let rebooted: Vec<&str> = all.iter().map(String::as_str).filter(|n| outcome(&summary, n) == Outcome::Rebooted).collect();
    assert_eq!(rebooted, ["h1", "h2"], "{summary:?}");
    for name in ["h3", "h4", "h5"] {
        assert_eq!(outcome(&summary, name), Outcome::Skipped);
        assert_eq!(world.reboots_received(name), 0, "{name} was started after the abort");
    }
}

#[tokio::test(start_paused = true)]
async fn runner_on_a_second_ctrl_c_stops_at_once_and_a_resume_finishes_without_a_second_reboot() {
    let dir = tempfile::tempdir().unwrap();
    let all = names(3);
    let world = World::new(&strs(&all));
    let mut job = Job::new(&world, dir.path(), &strs(&all));
    job.settings.concurrency = 2;
    let mut soft = soft_abort_after(2);
    let summary = job
        .run_with_abort(watch::channel(Abort::No), move |event, trigger| {
            soft(event, trigger);
            if matches!(event, Event::AbortRequested { hard: false }) {
                let _ = trigger.send(Abort::Hard);
            }
        })
        .await;
    assert!(summary.aborted);
    assert_eq!(outcome(&summary, "h1"), Outcome::Interrupted);
    assert_eq!(outcome(&summary, "h2"), Outcome::Interrupted);
    assert!(!job.state().finished, "left open for --resume");
    let summary = job.run().await;
    for name in &all {
        assert_eq!(outcome(&summary, name), Outcome::Rebooted, "{name}");
        assert_eq!(world.reboots_received(name), 1, "{name}");
    }
}

#[tokio::test(start_paused = true)]
async fn runner_cancels_only_ssh_reboots_it_can_verify_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let all = names(3);
    let world = World::new(&strs(&all));
    // h1 and h2 have no BMC (the ladder waits for them); h2 cannot show that no shutdown is
    // left scheduled; the reboot command never reaches h3, so its BMC restarts it gracefully (a
    // reset `shutdown -c` cannot take back), and the Ctrl-C comes right then.
    for name in ["h1", "h2"] {
        world.set(name, |h| {
            h.delay = Duration::from_secs(300);
            h.bmc = None;
        });
    }
    world.set("h2", |h| h.faults.cancel_unverifiable = true);
    world.set("h3", |h| h.faults.reboot_unreachable = true);
    let mut job = Job::new(&world, dir.path(), &strs(&all));
    job.settings.cancel_pending_on_abort = true;
    let summary = job
        .run_with_abort(watch::channel(Abort::No), |event, trigger| {
            if let Event::Transition { record } = event
                && let Entry::Dispatched { host, delivery: Delivery::BmcAccepted, .. } = &record.entry
                && host == "h3"
            {
                let _ = trigger.send(Abort::Soft);
            }
        })
        .await;
    assert_eq!(outcome(&summary, "h1"), Outcome::Cancelled);
    assert_eq!(world.boot_id("h1"), "h1-boot0");
    assert_ne!(outcome(&summary, "h2"), Outcome::Cancelled, "an unverified cancel is no cancel");
    assert!(job.state().records["h2"].reboot_pending);
    assert_eq!(outcome(&summary, "h3"), Outcome::Rebooted, "a BMC reset is never counted cancelled");
    assert_eq!(world.times_of("h3", |e| *e == Happened::Cancelled).len(), 0);
}

/// A lost lease stops new starts but never cancels a pending reboot (the node may be another
/// run's now); a Ctrl-C at the same moment does (the review's finding 3).
#[tokio::test(start_paused = true)]
async fn runner_cancels_on_ctrl_c_but_never_because_the_lease_was_lost() {
    for (level, cancelled) in [(Abort::Soft, true), (Abort::LeaseLost, false)] {
        let dir = tempfile::tempdir().unwrap();
        let world = World::new(&["h1"]);
        world.set("h1", |h| {
            h.delay = Duration::from_secs(300);
            h.bmc = None;
        });
        let mut job = Job::new(&world, dir.path(), &["h1"]);
        job.settings.cancel_pending_on_abort = true;
        job.settings.timeout = Duration::from_secs(600);
        let (trigger, receiver) = watch::channel(Abort::No);
        let stop = trigger.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let _ = stop.send(level);
        });
        let summary = job.run_with_abort((trigger, receiver), |_, _| {}).await;
        let cancels = world.times_of("h1", |e| *e == Happened::Cancelled).len();
        if cancelled {
            assert_eq!(cancels, 1, "{level:?}: the Ctrl-C cancels the pending reboot");
            assert_eq!(outcome(&summary, "h1"), Outcome::Cancelled);
            assert_eq!(world.boot_id("h1"), "h1-boot0");
        } else {
            assert_eq!(cancels, 0, "{level:?}: no `shutdown -c` after the lease is lost");
            assert_eq!(outcome(&summary, "h1"), Outcome::Rebooted, "the reboot is watched to its end");
            assert_ne!(world.boot_id("h1"), "h1-boot0");
        }
    }
}

/// The cancel's intent is journaled (fenced) before `shutdown -c`: a run whose journal write
/// fails there sends no cancel, and its resume waits for the reboot by boot ID, never sending
/// it again (the review's finding 3).
#[tokio::test(start_paused = true)]
async fn runner_journals_the_cancel_before_sending_it_and_a_failed_write_sends_none() {
    let ctrl_c_at_5s = |trigger: &watch::Sender<Abort>| {
        let stop = trigger.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let _ = stop.send(Abort::Soft);
        });
    };
    let setup = |world: &Arc<World>, dir: &Path| {
        world.set("h1", |h| {
            h.delay = Duration::from_secs(300);
            h.bmc = None;
        });
        let mut job = Job::new(world, dir, &["h1"]);
        job.settings.cancel_pending_on_abort = true;
        job.settings.timeout = Duration::from_secs(600);
        job
    };
    // A run that can write: cancelling, then cancelled, the cancel sent between.
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1"]);
    let job = setup(&world, dir.path());
    let (trigger, receiver) = watch::channel(Abort::No);
    ctrl_c_at_5s(&trigger);
    job.run_with_abort((trigger, receiver), |_, _| {}).await;
    let records = job.records();
    let at = |what: fn(&Entry) -> bool| records.iter().position(|r| what(&r.entry));
    let cancelling = at(|e| matches!(e, Entry::Cancelling { .. })).expect("the intent is journaled");
    assert!(cancelling < at(|e| matches!(e, Entry::Cancelled { .. })).unwrap());
    assert_eq!(world.times_of("h1", |e| *e == Happened::Cancelled).len(), 1);

    // The same run, its journal failing at the intent: no cancel reaches the node.
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1"]);
    let mut job = setup(&world, dir.path());
    job.kill = Some(Kill { after: cancelling + 1, before_its_action: true });
    let (trigger, receiver) = watch::channel(Abort::No);
    ctrl_c_at_5s(&trigger);
    job.run_with_abort((trigger, receiver), |_, _| {}).await;
    assert_eq!(world.times_of("h1", |e| *e == Happened::Cancelled).len(), 0, "no cancel after a failed intent");
    let state = job.state();
    assert!(matches!(job.records().last().unwrap().entry, Entry::Cancelling { .. }), "{:?}", job.records());
    assert_eq!(state.records["h1"].resume_action(), ResumeAction::AwaitNewBootId);
    // Its resume waits for the reboot still pending and never sends another.
    job.kill = None;
    let summary = job.run().await;
    assert_eq!(outcome(&summary, "h1"), Outcome::Rebooted);
    assert_eq!(world.reboots_received("h1"), 1, "the reboot is not re-sent");
}

/// No cancel is tried where it could be "verified" and still leave the node rebooting: an
/// immediate reboot command, or a scheduled shutdown that may have begun (within the margin of
/// its time, or past it, on a node slower to go down than systemd's minute).
#[tokio::test(start_paused = true)]
async fn runner_never_cancels_an_immediate_reboot_or_a_shutdown_that_may_have_begun() {
    for (command, abort_after) in [("sudo systemctl reboot", Duration::from_secs(5)), ("sudo shutdown -r -t 3", Duration::from_secs(55))] {
        let dir = tempfile::tempdir().unwrap();
        let world = World::new(&["h1"]);
        // The node answers, with its old boot ID, for 300 s after the command.
        world.set("h1", |h| {
            h.delay = Duration::from_secs(300);
            h.bmc = None;
        });
        let mut job = Job::new(&world, dir.path(), &["h1"]);
        job.settings.cancel_pending_on_abort = true;
        job.settings.command = command.into();
        job.settings.timeout = Duration::from_secs(600);
        let (trigger, receiver) = watch::channel(Abort::No);
        let soft = trigger.clone();
        tokio::spawn(async move {
            tokio::time::sleep(abort_after).await;
            let _ = soft.send(Abort::Soft);
        });
        let summary = job.run_with_abort((trigger, receiver), |_, _| {}).await;
        assert_eq!(world.times_of("h1", |e| *e == Happened::Cancelled).len(), 0, "{command}: no cancel was tried");
        assert_ne!(outcome(&summary, "h1"), Outcome::Cancelled, "{command}");
        assert_eq!(world.reboots_received("h1"), 1, "{command}: the reboot stays, watched to its end");
        assert_ne!(job.state().records["h1"].phase, Phase::Cancelled, "{command}");
    }
}

#[tokio::test(start_paused = true)]
async fn runner_keeps_the_first_reboot_in_doubt_and_its_slot_when_a_resend_fails() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1", "h2"]);
    // h1's reboot reaches it but runs late (100 s, past the ladder's 60 s + 30 s grace), and
    // h1 then stays down for two minutes.
    world.set("h1", |h| {
        h.delay = Duration::from_secs(100);
        h.down_time = Duration::from_secs(120);
    });
    let mut job = Job::new(&world, dir.path(), &["h1", "h2"]);
    job.settings.concurrency = 1;
    // Killed after the reboot went out and before `dispatched`: run_started, boot_id_read, dispatching.
    job.kill = Some(Kill { after: 3, before_its_action: false });
    job.run().await;
    assert_eq!(world.reboots_received("h1"), 1);
    // The re-send the resumed run tries is refused.
    world.set("h1", |h| h.faults.refuse_sudo = true);
    job.kill = None;
    let summary = job.run().await;
    assert_eq!(outcome(&summary, "h1"), Outcome::Failed);
    let record = &job.state().records["h1"];
    assert!(record.reboot_pending, "the first reboot stays in doubt: {record:?}");
    assert_ne!(record.resume_action(), ResumeAction::Reboot);
    assert_eq!(outcome(&summary, "h2"), Outcome::Rebooted);
    assert_eq!(world.most_down_at_once(&["h1", "h2"]), 1, "h2 started while h1 could still go down");
}

#[tokio::test(start_paused = true)]
async fn runner_reads_the_boot_id_after_the_rate_wait_and_the_drain() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1", "h2"]);
    let mut job = Job::new(&world, dir.path(), &["h1", "h2"]);
    job.settings.rate = rate(1, Duration::from_secs(300));
    job.drain = true;
    let w = world.clone();
    // Somebody else reboots h2 while it waits for its rate slot.
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(100)).await;
        w.set("h2", |h| h.scheduled = Some(Instant::now()));
    });
    let summary = job.run().await;
    // The boot ID read after the rate wait and the drain shows the other reboot: the reboot the
    // plan wanted happened (review finding 3), so nothing is sent and no ID passes for the old one.
    assert_eq!(outcome(&summary, "h2"), Outcome::NotNeeded);
    let records = job.records();
    assert!(!records.iter().any(|r| matches!(&r.entry, Entry::Dispatching { host, .. } if host == "h2")), "a reboot went out");
    assert_eq!(world.boot_id("h2"), "h2-boot1", "rebooted once, by the other actor");
    assert_eq!(world.reboots_received("h2"), 0);
    assert_eq!(world.times_of("h2", |e| *e == Happened::Uncordoned).len(), 1, "fleetboot's cordon lifted");
    assert_eq!(outcome(&summary, "h1"), Outcome::Rebooted);
}

#[tokio::test(start_paused = true)]
async fn runner_journals_its_settings_and_what_a_resume_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1", "h2"]);
    let mut job = Job::new(&world, dir.path(), &["h1", "h2"]);
    job.settings.concurrency = 1;
    job.settings.rate = rate(2, Duration::from_secs(60));
    job.kill = Some(Kill { after: 2, before_its_action: false });
    job.run().await;
    let started = job.state().settings.expect("run_started carries the settings");
    assert_eq!(started.concurrency, 1);
    assert_eq!(started.rate, Some(fleetboot_core::journal::RateSpec { count: 2, per_ms: 60_000 }));
    job.kill = None;
    job.settings.concurrency = 2;
    job.run().await;
    let resumed = job.records().into_iter().find_map(|r| match r.entry {
        Entry::RunResumed { overridden, settings, .. } => Some((overridden, settings)),
        _ => None,
    });
    let (overridden, settings) = resumed.unwrap();
    assert_eq!(overridden, ["concurrency"]);
    assert_eq!(settings.unwrap().concurrency, 2);
}

#[test]
fn runner_settings_round_trip_through_the_journal() {
    let mut original = settings();
    original.rate = rate(3, Duration::from_secs(3600));
    original.transport = Transport::Redfish;
    original.concurrency = 7;
    let journaled = journaled_settings(&original);
    let mut resumed = settings();
    apply_run_settings(&mut resumed, &journaled);
    assert_eq!(journaled_settings(&resumed), journaled);
    assert_eq!(resumed.rate.map(|r| r.spacing()), Some(Duration::from_secs(1200)));
}

#[tokio::test(start_paused = true)]
async fn runner_clock_is_monotonic_and_keeps_wall_clock_times_for_records() {
    let clock = RunClock::anchored(BASE_MS);
    tokio::time::advance(Duration::from_secs(90)).await;
    assert_eq!(clock.now_ms(), BASE_MS + 90_000);
    assert_eq!(clock.instant_of(BASE_MS + 90_000), Instant::now());
    // Times from before the run (a previous run's journal) map to its start.
    assert_eq!(clock.instant_of(BASE_MS - 5_000) + Duration::from_secs(90), Instant::now());
}

/// Every way a run of this fleet can be cut: after each record, with the action it announces
/// carried out or not. The resume never sends a second reboot to a host that may have one,
/// and finishes every host.
#[tokio::test(start_paused = true)]
async fn runner_resume_of_a_journal_cut_at_every_record_never_reboots_twice() {
    cut_everywhere(false).await;
}

/// The same with a drain before each reboot and a rate, and the resume keeps both.
#[tokio::test(start_paused = true)]
async fn runner_resume_of_a_drained_rate_limited_journal_cut_at_every_record_never_reboots_twice() {
    cut_everywhere(true).await;
}

async fn cut_everywhere(drain_and_rate: bool) {
    fn world() -> Arc<World> {
        let world = World::new(&["h1", "h2", "h3"]);
        // h2 refuses SSH (the BMC reboots it, the API proves it); h3's reboot runs late.
        world.set("h2", |h| h.faults.refuse_ssh = true);
        world.set("h3", |h| h.delay = Duration::from_secs(80));
        world
    }
    let configure = |job: &mut Job| {
        job.api = true;
        job.settings.concurrency = 2;
        if drain_and_rate {
            job.drain = true;
            job.settings.rate = rate(1, Duration::from_secs(30));
        }
    };
    let total = {
        let dir = tempfile::tempdir().unwrap();
        let world = world();
        let mut job = Job::new(&world, dir.path(), &["h1", "h2", "h3"]);
        configure(&mut job);
        let summary = job.run().await;
        assert!(summary.hosts.iter().all(|h| h.outcome == Outcome::Rebooted), "{summary:?}");
        job.records().len()
    };
    for after in 1..total {
        for before_its_action in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let world = world();
            let mut job = Job::new(&world, dir.path(), &["h1", "h2", "h3"]);
            configure(&mut job);
            job.kill = Some(Kill { after, before_its_action });
            job.run().await;
            job.kill = None;
            let summary = job.run().await;
            for name in ["h1", "h2", "h3"] {
                let cut = format!("cut after record {after} (action {}): {name}", if before_its_action { "not done" } else { "done" });
                assert_eq!(world.reboots_received(name), 1, "{cut}: {:?}", job.records());
                assert_eq!(outcome(&summary, name), Outcome::Rebooted, "{cut}: {summary:?}");
                let cordons = world.times_of(name, |e| *e == Happened::Cordoned).len();
                let uncordons = world.times_of(name, |e| *e == Happened::Uncordoned).len();
                let last_is_uncordon = world.with(name, |h| {
                    h.log.iter().rev().find(|(_, e)| matches!(e, Happened::Cordoned | Happened::Uncordoned)).map(|(_, e)| e.clone())
                });
                assert!(
                    !drain_and_rate || (cordons >= 1 && last_is_uncordon == Some(Happened::Uncordoned)),
                    "{cut}: cordoned {cordons}, uncordoned {uncordons}, left {last_is_uncordon:?}"
                );
            }
            if drain_and_rate {
                let sends = world.sends();
                for pair in sends.windows(2) {
                    assert!(pair[1].0 - pair[0].0 >= Duration::from_secs(30), "{after}: sends closer than the rate: {sends:?}");
                }
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn runner_with_hosts_that_fail_in_every_way_holds_its_limits() {
    let dir = tempfile::tempdir().unwrap();
    let all = names(8);
    let world = World::new(&strs(&all));
    world.set("h1", |h| {
        h.faults.hang_ssh = true;
        h.bmc = None;
    });
    world.set("h2", |h| {
        h.faults.auth_fail = true;
        h.bmc = None;
    });
    world.set("h3", |h| {
        h.faults.never_returns = true;
        h.bmc = None;
    });
    world.set("h4", |h| {
        h.faults.hung = true;
        h.bmc = None;
    });
    world.set("h5", |h| h.faults.refuse_sudo = true);
    let mut job = Job::new(&world, dir.path(), &strs(&all));
    job.settings.concurrency = 2;
    job.settings.timeout = Duration::from_secs(300);
    let summary = job.run().await;
    for name in ["h1", "h2", "h3", "h4", "h5"] {
        assert_eq!(outcome(&summary, name), Outcome::Failed, "{name}: {summary:?}");
    }
    for name in ["h6", "h7", "h8"] {
        assert_eq!(outcome(&summary, name), Outcome::Rebooted, "{name}");
    }
    for name in &all {
        assert!(world.reboots_received(name) <= 1, "{name}");
    }
    assert!(world.most_down_at_once(&strs(&all)) <= 2);
}

mod model {
    use super::*;
    use proptest::prelude::*;

    fn faults() -> impl Strategy<Value = (Faults, Option<BmcBehaviour>, u64)> {
        let fault = prop_oneof![
            4 => Just(Faults::default()),
            1 => Just(Faults { refuse_ssh: true, ..Faults::default() }),
            1 => Just(Faults { hang_ssh: true, ..Faults::default() }),
            1 => Just(Faults { auth_fail: true, ..Faults::default() }),
            1 => Just(Faults { refuse_sudo: true, ..Faults::default() }),
            1 => Just(Faults { hung: true, ..Faults::default() }),
            1 => Just(Faults { never_returns: true, ..Faults::default() }),
            1 => Just(Faults { reboot_unreachable: true, ..Faults::default() }),
        ];
        let bmc = prop_oneof![
            Just(None),
            Just(Some(BmcBehaviour::Works)),
            Just(Some(BmcBehaviour::FailsBefore)),
            Just(Some(BmcBehaviour::FailsAfter))
        ];
        (fault, bmc, 10u64..120)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(48), ..ProptestConfig::default() })]
        /// Whatever each host does, a run (killed once anywhere, then resumed) never sends a
        /// second SSH reboot to a host with one pending, never resets a node through its BMC
        /// before its scheduled shutdown could have run, never repeats a reset of the same kind,
        /// ends every host, and calls a host rebooted only when its own boot ID changed.
        #[test]
        fn runner_model_holds_for_any_fleet(hosts in proptest::collection::vec(faults(), 1..6),
                                            concurrency in 1usize..4,
                                            kill_after in proptest::option::of((1usize..40, any::<bool>()))) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
            runtime.block_on(async {
                let all = names(hosts.len());
                let world = World::new(&strs(&all));
                for (name, (faults, bmc, delay)) in all.iter().zip(&hosts) {
                    world.set(name, |h| {
                        h.faults = *faults;
                        h.bmc = *bmc;
                        h.delay = Duration::from_secs(*delay);
                    });
                }
                let dir = tempfile::tempdir().unwrap();
                let mut job = Job::new(&world, dir.path(), &strs(&all));
                job.api = true;
                job.settings.concurrency = concurrency;
                job.settings.timeout = Duration::from_secs(300);
                job.settings.scheduled_delay = Duration::from_secs(120);
                job.kill = kill_after.map(|(after, before_its_action)| Kill { after, before_its_action });
                let mut summary = job.run().await;
                if job.kill.is_some() {
                    job.kill = None;
                    summary = job.run().await;
                }
                for (name, (faults, _, _)) in all.iter().zip(&hosts) {
                    let log = world.with(name, |h| h.log.clone());
                    prop_assert!(!log.iter().any(|(_, e)| *e == Happened::SshRebootAgain), "{name}: {log:?}");
                    // A host that swallows a reboot (hung) whose hand-over a kill kept out of the
                    // journal looks exactly like one the reboot never reached: the ladder sends it
                    // again, once. Any other host gets one SSH reboot at most.
                    let swallowed_and_cut = faults.hung && kill_after.is_some();
                    let ssh_reboots = log.iter().filter(|(_, e)| *e == Happened::SshReboot).count();
                    prop_assert!(ssh_reboots <= 1 + usize::from(swallowed_and_cut), "{name}: {log:?}");
                    for kind in [RestartKind::Graceful, RestartKind::Force] {
                        prop_assert!(log.iter().filter(|(_, e)| *e == Happened::BmcReset(kind)).count() <= 1, "{name}: {log:?}");
                    }
                    if let Some((ssh_at, _)) = log.iter().find(|(_, e)| *e == Happened::SshReboot) {
                        for (at, e) in &log {
                            if matches!(e, Happened::BmcReset(_)) {
                                prop_assert!(*at - *ssh_at >= Duration::from_secs(120), "{name}: reset too early: {log:?}");
                            }
                        }
                    }
                    let outcome = outcome(&summary, name);
                    prop_assert_ne!(outcome, Outcome::Interrupted, "{}", name);
                    if outcome == Outcome::Rebooted {
                        prop_assert_ne!(world.boot_id(name), format!("{name}-boot0"));
                    }
                }
                prop_assert!(job.state().finished);
                Ok(())
            })?;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn runner_reports_a_soft_reboot_once_seen_never_escalates_it_and_a_resume_leaves_it() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1", "h2"]);
    world.set("h1", |h| h.faults.soft_reboot = true);
    let job = Job::new(&world, dir.path(), &["h1", "h2"]);
    let started = Instant::now();
    let summary = job.run().await;
    assert_eq!(outcome(&summary, "h1"), Outcome::SoftRebooted);
    assert_eq!(outcome(&summary, "h2"), Outcome::Rebooted);
    assert_eq!(summary.exit_code(), fleetboot_core::ExitCode::HostsFailed);
    // Seen as soon as it answered again (the reboot delay, 60 s, and the 30 s down), long
    // before the 10-minute deadline; no BMC reset although the fallback on a hung node is on.
    assert!(started.elapsed() < Duration::from_secs(120), "waited {:?}", started.elapsed());
    assert_eq!(world.reboots_received("h1"), 1);
    let state = job.state();
    assert_eq!(state.records["h1"].phase, Phase::SoftRebooted);
    assert!(job.records().iter().any(|r| matches!(&r.entry, Entry::SoftRebooted { count_before: 0, count_after: 1, .. })));
    // A resume sends it nothing more.
    job.run().await;
    assert_eq!(world.reboots_received("h1"), 1);
}

/// A master that failed while it may still be down (a host-key change right after its reboot,
/// the API not showing it Ready) keeps the control plane's pass: with `--max-failures 1` the
/// next master starts only after the first one's reboot deadline and the run's journaled
/// decision to let the pass go, never at the failure.
#[tokio::test(start_paused = true)]
async fn runner_holds_a_group_pass_while_a_failed_master_may_be_down_until_its_deadline_and_a_journaled_decision() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["m1", "m2"]);
    world.set("m1", |h| {
        h.faults.new_host_key_after_reboot = true;
        h.faults.api_not_ready = true;
    });
    let mut job = Job::new(&world, dir.path(), &["m1", "m2"]);
    job.api = true;
    job.settings.max_failures = FailureBudget::Count(1);
    job.grouping.of = [("m1", "master"), ("m2", "master")].iter().map(|(h, g)| (h.to_string(), g.to_string())).collect();
    job.grouping.limits = [("master".to_owned(), 1)].into_iter().collect();
    job.grouping.last = vec!["master".into()];
    let summary = job.run().await;
    assert_eq!(outcome(&summary, "m1"), Outcome::Failed, "{summary:?}");
    assert_eq!(outcome(&summary, "m2"), Outcome::Rebooted, "{summary:?}");
    let m1_sent = world.times_of("m1", |e| *e == Happened::SshReboot)[0];
    let m1_up = world.times_of("m1", |e| *e == Happened::Up)[0];
    let m2_sent = world.times_of("m2", |e| *e == Happened::SshReboot)[0];
    assert!(m1_up - m1_sent < Duration::from_secs(120), "m1 failed early, at its host-key change");
    assert!(m2_sent - m1_sent >= job.settings.timeout, "m2 started {:?} after m1, before m1's deadline", m2_sent - m1_sent);
    let records = job.records();
    let released = records.iter().position(|r| matches!(&r.entry, Entry::PassReleased { host, .. } if host == "m1"));
    let m2_dispatching = records.iter().position(|r| matches!(&r.entry, Entry::Dispatching { host, .. } if host == "m2"));
    assert!(released.is_some() && released < m2_dispatching, "the decision is journaled before m2 starts: {records:?}");
}

#[tokio::test(start_paused = true)]
async fn runner_pods_that_could_not_be_listed_never_count_as_drained_even_under_force() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1"]);
    let mut job = Job::new(&world, dir.path(), &["h1"]);
    (job.api, job.drain) = (true, true);
    job.drain_faults = DrainFaults { force: true, list_fails: true, ..DrainFaults::default() };
    let summary = job.run().await;
    assert_eq!(outcome(&summary, "h1"), Outcome::Failed);
    assert_eq!(world.reboots_received("h1"), 0, "rebooted with pods nobody could see");
    assert!(!job.records().iter().any(|r| matches!(r.entry, Entry::Drained { .. })), "journaled as drained");
    assert_eq!(world.times_of("h1", |e| *e == Happened::Uncordoned).len(), 1, "its cordon was lifted");
}

#[tokio::test(start_paused = true)]
async fn runner_never_lifts_a_cordon_it_did_not_make() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1"]);
    let mut job = Job::new(&world, dir.path(), &["h1"]);
    (job.api, job.drain) = (true, true);
    job.drain_faults = DrainFaults { pre_cordoned: true, ..DrainFaults::default() };
    let summary = job.run().await;
    assert_eq!(outcome(&summary, "h1"), Outcome::Rebooted);
    assert!(world.times_of("h1", |e| matches!(e, Happened::Cordoned | Happened::Uncordoned)).is_empty());
    assert!(job.records().iter().any(|r| matches!(r.entry, Entry::Cordoning { already_cordoned: true, .. })));
    assert!(summary.still_cordoned.is_empty(), "the admin's cordon is not fleetboot's to report");
}

#[tokio::test(start_paused = true)]
async fn runner_a_resume_uncordons_a_host_it_skips_that_an_earlier_attempt_cordoned() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(&["h1"]);
    let mut job = Job::new(&world, dir.path(), &["h1"]);
    (job.api, job.drain) = (true, true);
    // Killed right after the cordon (run_started, cordoning): the node stays cordoned.
    job.kill = Some(Kill { after: 2, before_its_action: false });
    job.run().await;
    assert_eq!(world.times_of("h1", |e| *e == Happened::Cordoned).len(), 1);
    assert!(job.state().records["h1"].cordoned);
    // The resume is interrupted before h1 starts again: h1 is skipped, and uncordoned.
    job.kill = None;
    let (trigger, abort) = watch::channel(Abort::Soft);
    let summary = job.run_with_abort((trigger, abort), |_, _| {}).await;
    assert_eq!(outcome(&summary, "h1"), Outcome::Skipped);
    assert_eq!(world.reboots_received("h1"), 0);
    assert_eq!(world.times_of("h1", |e| *e == Happened::Uncordoned).len(), 1, "left cordoned by a skip");
    assert!(!job.state().records["h1"].cordoned);
    assert!(summary.still_cordoned.is_empty());
}

/// Connections open ahead of their turn only once no turn has been under way for the quiet
/// time: a gap between two turns of a burst (one over, the next begun a little later) starts
/// the wait again, and a wait never ends while a turn is under way.
#[tokio::test(start_paused = true)]
async fn warm_ups_wait_for_a_quiet_time_after_the_last_turn_not_for_a_gap_between_turns() {
    let turns = Arc::new(TurnsUnderWay::default());
    let quiet = Duration::from_millis(200);
    let start = Instant::now();
    // No turn ever: nothing to keep clear of.
    turns.quiet_for(quiet).await;
    assert_eq!(Instant::now(), start);
    turns.begin("h1");
    let waiter = {
        let turns = turns.clone();
        tokio::spawn(async move {
            turns.quiet_for(quiet).await;
            Instant::now()
        })
    };
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert!(!waiter.is_finished(), "a turn is under way");
    turns.over("h1");
    // A gap of 150 ms, then another turn of 100 ms: the quiet time counts from its end.
    tokio::time::sleep(Duration::from_millis(150)).await;
    turns.begin("h2");
    tokio::time::sleep(Duration::from_millis(100)).await;
    turns.over("h2");
    let last_over = Instant::now();
    let done = waiter.await.unwrap();
    assert_eq!(done, last_over + quiet, "the warm-ups went before the quiet time after the last turn");
}
