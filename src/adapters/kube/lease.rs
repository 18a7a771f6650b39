//! The run's Lease (coordination.k8s.io/v1): one fleetboot run per cluster at a time.
//!
//! One file, past 500 lines: the lease is one protocol (take, renew, release, take over) and its tests.

use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::discovery::ApiResource;
use serde_json::Value;

use super::{ClusterError, LeaseUse, api_resource};

/// The API the leases are read and written through: the client, and the API server it reaches,
/// which a failed request names beside the Lease.
#[derive(Clone, Copy)]
pub struct LeaseApi<'a> {
    pub client: &'a Client,
    pub server: &'a str,
}

impl LeaseApi<'_> {
    fn leases_in(&self, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, &lease_resource())
    }

    /// [`ClusterError::Lease`] for `doing` with `namespace/name`, for `map_err`.
    fn error(&self, doing: LeaseUse, namespace: &str, name: &str) -> impl Fn(kube::Error) -> ClusterError {
        let (lease, server): (Box<str>, Box<str>) = (format!("{namespace}/{name}").into(), self.server.into());
        move |source| ClusterError::Lease { doing, lease: lease.clone(), server: server.clone(), source }
    }
}

/// A coordination.k8s.io/v1 Lease held for a whole cluster run, so two admins cannot reboot
/// one cluster's nodes at once. Renewed in the background ([`keep_renewed`]); a lease whose
/// holder stopped renewing expires; `--break-lock` takes a live one over. Every write carries
/// the resourceVersion it read (updates through `replace` of the object read, the release as a
/// DeleteOptions precondition): a Lease gives no fencing of its own.
pub struct LeaseLock {
    api: Api<DynamicObject>,
    name: String,
    identity: String,
    renewer: tokio::task::JoinHandle<()>,
    lost: tokio::sync::watch::Receiver<Option<LeaseLost>>,
    /// Who held it before a takeover (for the user and the journal).
    pub taken_from: Option<String>,
    /// A holder's lease was broken (`--break-lock`): that run may go on until it sees the
    /// takeover, so this one waits the holder's whole lease before it acts.
    settle_time: Option<std::time::Duration>,
}

/// How one renewal went.
#[derive(Debug)]
pub(crate) enum Renewal {
    Renewed,
    /// Not renewed this time (the API refused, failed or did not answer in time): why, as the
    /// API said it, for the verdict's message (a 403 after a role was changed reads as such).
    Failed {
        why: String,
    },
    TakenOver {
        by: String,
    },
}

/// How long one renewal try (a read and a write of the lease) may go unanswered before another
/// starts beside it: an eighteenth of the lease, so that three tries fit between the first (a
/// third of the lease after the last renewal) and the verdict (half of it), and at least 1 s.
/// Never more than half the lease.
pub(crate) fn renewal_try_limit(duration: std::time::Duration) -> std::time::Duration {
    // Whole milliseconds: the verdict's message names it.
    let eighteenth = std::time::Duration::from_millis((duration.as_millis() / 18) as u64);
    eighteenth.max(std::time::Duration::from_secs(1)).min(duration / 2)
}

/// Tries of one renewal out at once, at most.
const RENEWAL_TRIES_AT_ONCE: usize = 3;

/// Reads the lease and writes a new renewTime, if this run still holds it.
async fn renew_once(api: &Api<DynamicObject>, name: &str, identity: &str) -> Renewal {
    use kube::api::PostParams;
    match api.get(name).await {
        Ok(lease) if lease.data.pointer("/spec/holderIdentity").and_then(Value::as_str) != Some(identity) => {
            let by = lease.data.pointer("/spec/holderIdentity").and_then(Value::as_str).unwrap_or("nobody").to_owned();
            Renewal::TakenOver { by }
        }
        Ok(mut lease) => {
            lease.data["spec"]["renewTime"] = serde_json::json!(micro_time(std::time::SystemTime::now()));
            // A Conflict means someone wrote it meanwhile; the next tick looks again.
            match api.replace(name, &PostParams::default(), &lease).await {
                Ok(_) => Renewal::Renewed,
                Err(e) => Renewal::Failed { why: format!("writing it: {e}") },
            }
        }
        Err(e) => Renewal::Failed { why: format!("reading it: {e}") },
    }
}

/// Renews the lease every third of `duration` and says when it is lost. The verdict "not
/// renewed for half the lease" runs on a timer of its own, set half the lease after the start of
/// the last renewal that succeeded: neither a slow tick nor an API call that hangs can hold it
/// back. A renewal that failed is tried again sooner (a tenth of the lease). A takeover seen at
/// a renewal ends it at once; the lease is never taken back.
///
/// A try that gets no answer within [`renewal_try_limit`] gets another beside it, on a
/// connection of its own ([`RENEWAL_TRIES_AT_ONCE`] at most), and is never given up: the first
/// answer wins. A request stuck on a dead connection does not hold the renewal until the verdict,
/// and an API server that is merely slow (an APF queue, a `Retry-After`) still renews it: cutting
/// each try at its limit lost the lease to a server answering in 2 s.
pub(crate) async fn keep_renewed<F, Fut>(duration: std::time::Duration, mut renew: F, lost: tokio::sync::watch::Sender<Option<LeaseLost>>)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Renewal>,
{
    use futures::StreamExt;
    use tokio::time::{Instant, sleep_until};
    let half = duration / 2;
    let per_try = renewal_try_limit(duration);
    // Monotonic: a jump of the wall clock neither hides nor invents a failed renewal.
    let mut renewed_at = Instant::now();
    let mut next_try = renewed_at + duration / 3;
    // The last failed renewal's cause since the last one that succeeded.
    let mut last_failure: Option<String> = None;
    // The tries out, each with when it started.
    let mut tries = futures::stream::FuturesUnordered::new();
    loop {
        let verdict_at = renewed_at + half;
        tokio::select! {
            biased;
            () = sleep_until(verdict_at) => {
                // Half the lease gone without a renewal: another run could soon take it.
                let _ = lost.send(Some(LeaseLost::NotRenewed { for_: half, last_failure }));
                return;
            }
            Some((started, renewal)) = tries.next(), if !tries.is_empty() => match renewal {
                Renewal::TakenOver { by } => {
                    // Taken over (--break-lock elsewhere): never steal it back; stop.
                    let _ = lost.send(Some(LeaseLost::TakenOver { by }));
                    return;
                }
                Renewal::Renewed => {
                    // Counted from the try's start: the renewTime it wrote is no later. The
                    // tries still out are dropped.
                    renewed_at = renewed_at.max(started);
                    next_try = renewed_at + duration / 3;
                    last_failure = None;
                    tries.clear();
                }
                Renewal::Failed { why } => {
                    last_failure = Some(why);
                    // Tried again sooner (a tenth of the lease), unless others are still out:
                    // they keep their schedule.
                    if tries.is_empty() {
                        next_try = Instant::now() + (duration / 10).max(std::time::Duration::from_millis(100));
                    }
                }
            },
            () = sleep_until(next_try), if tries.len() < RENEWAL_TRIES_AT_ONCE => {
                if !tries.is_empty() {
                    last_failure = Some(format!("no answer within {}", humantime::format_duration(per_try)));
                }
                let started = Instant::now();
                let attempt = renew();
                tries.push(async move { (started, attempt.await) });
                next_try = started + per_try;
            }
        }
    }
}

/// Why a run no longer holds its lease: from then on it must start nothing new.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaseLost {
    #[error("another run took the cluster's lease over ({by})")]
    TakenOver { by: String },
    #[error(
        "the cluster's lease could not be renewed for {}{}: another run may take it over",
        humantime::format_duration(*.for_),
        .last_failure.as_ref().map(|why| format!(" (the last try, {why})")).unwrap_or_default()
    )]
    NotRenewed {
        for_: std::time::Duration,
        /// The last failed try's cause (an unanswered one says so); `None`: no try came back
        /// before the verdict.
        last_failure: Option<String>,
    },
}

/// Held by reboot runs (`fleetboot reboot` on cluster nodes, and a migration's step 7).
pub const LEASE_NAME: &str = "fleetboot";
/// Held by a migration from its first step to its last.
pub const MIGRATION_LEASE_NAME: &str = "fleetboot-migration";

fn lease_resource() -> ApiResource {
    api_resource("coordination.k8s.io", "v1", "Lease", "leases")
}

fn micro_time(at: std::time::SystemTime) -> String {
    humantime::format_rfc3339_micros(at).to_string()
}

/// Whether a lease's holder stopped renewing it. Pure: `now` is passed in.
pub fn lease_expired(lease: &Value, now: std::time::SystemTime) -> bool {
    let renewed = lease.pointer("/spec/renewTime").and_then(Value::as_str).and_then(|t| humantime::parse_rfc3339_weak(t).ok());
    let duration = lease.pointer("/spec/leaseDurationSeconds").and_then(Value::as_u64).unwrap_or(0);
    match renewed {
        Some(at) => at + std::time::Duration::from_secs(duration) < now,
        None => true,
    }
}

impl LeaseLock {
    /// Takes the lease, or fails naming its holder. A lease is taken over when it expired,
    /// when `break_lock` is set, or when `reclaimable(holder)` says its holder is gone (the
    /// same run, killed on this machine, being resumed).
    pub async fn acquire(
        at: LeaseApi<'_>,
        namespace: &str,
        lease_name: &str,
        identity: &str,
        duration: std::time::Duration,
        break_lock: bool,
        reclaimable: impl Fn(&str) -> bool,
    ) -> Result<LeaseLock, ClusterError> {
        use kube::api::PostParams;
        let api = at.leases_in(namespace);
        let now = std::time::SystemTime::now();
        let spec = json_spec(identity, duration, now);
        let api_error = at.error(LeaseUse::Take, namespace, lease_name);
        let mut taken_from = None;
        let mut settle_time = None;
        let fresh = DynamicObject::new(lease_name, &lease_resource()).within(namespace).data(serde_json::json!({ "spec": spec }));
        match api.create(&PostParams::default(), &fresh).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let held = api.get(lease_name).await.map_err(&api_error)?;
                let holder = held.data.pointer("/spec/holderIdentity").and_then(Value::as_str).unwrap_or("someone").to_owned();
                let locked =
                    || ClusterError::Locked { holder: holder.clone(), namespace: namespace.to_owned(), name: lease_name.to_owned() };
                let held = if reclaimable(&holder) {
                    held
                } else if break_lock {
                    // Live or only expired-looking (its holder's clock may be wrong), the holder
                    // may still act until it sees the takeover or gives up for want of a
                    // renewal: it does both within half its lease, and the whole lease covers
                    // any holder that keeps to the lease's contract at all.
                    let theirs = held.data.pointer("/spec/leaseDurationSeconds").and_then(Value::as_u64).unwrap_or(0);
                    settle_time = Some(std::time::Duration::from_secs(theirs));
                    held
                } else if !lease_expired(&held.data, now) {
                    // Live by its holder's own account: a skewed clock can only make this refuse
                    // wrongly, never let two runs hold the lease.
                    return Err(locked());
                } else {
                    // Expired by the holder's clock; confirmed on this machine's monotonic clock
                    // only (as client-go's leader election): unchanged for its whole duration.
                    unchanged_for_its_duration(&api, lease_name, held).await.map_err(&api_error)?.ok_or_else(locked)?
                };
                // Replace with the version just read: if another run took it meanwhile, Conflict,
                // and the refusal names that run (read again), not the holder it replaced.
                let mut takeover = held.clone();
                takeover.data["spec"] = spec;
                match api.replace(lease_name, &PostParams::default(), &takeover).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        let now_held = api.get(lease_name).await.ok();
                        let winner = now_held
                            .as_ref()
                            .and_then(|l| l.data.pointer("/spec/holderIdentity").and_then(Value::as_str))
                            .map_or_else(|| holder.clone(), str::to_owned);
                        return Err(ClusterError::Locked { holder: winner, namespace: namespace.to_owned(), name: lease_name.to_owned() });
                    }
                    Err(other) => return Err(api_error(other)),
                }
                taken_from = Some(holder);
            }
            Err(e) => return Err(api_error(e)),
        }
        let renew_api = api.clone();
        let renew_identity = identity.to_owned();
        let renew_name = lease_name.to_owned();
        let (lost_tx, lost) = tokio::sync::watch::channel(None);
        let renewer = tokio::spawn(keep_renewed(
            duration,
            move || {
                let (api, name, identity) = (renew_api.clone(), renew_name.clone(), renew_identity.clone());
                async move { renew_once(&api, &name, &identity).await }
            },
            lost_tx,
        ));
        Ok(LeaseLock { api, name: lease_name.to_owned(), identity: identity.to_owned(), renewer, lost, taken_from, settle_time })
    }

    /// How long to wait after breaking a holder's lease (live or expired-looking) before
    /// acting: its whole lease. The other run stops starting anything within half its lease
    /// (it sees the takeover at a renewal, or its own timer says it was not renewed), so the
    /// two never act at once. `None` when nobody held it or the holder was reclaimed.
    pub fn settle_time(&self) -> Option<std::time::Duration> {
        self.settle_time
    }

    /// Waits [`LeaseLock::settle_time`] (not at all when nobody live held the lease), or until
    /// `interrupted` completes, whichever comes first: a run stopped meanwhile need not wait
    /// out a pause meant for starting things.
    pub async fn settle(&self, interrupted: impl std::future::Future<Output = ()>) {
        let Some(wait) = self.settle_time else { return };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = interrupted => {}
        }
    }

    /// Changes to `Some` when this run no longer holds the lease (taken over, or not renewed for
    /// half its duration); the run must then start nothing new.
    pub fn lost(&self) -> tokio::sync::watch::Receiver<Option<LeaseLost>> {
        self.lost.clone()
    }

    /// Who holds it: this run, as written into the lease.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Gives the lease back if this run still holds it: a delete conditional on the
    /// resourceVersion read (a lease changed meanwhile, taken over, is left alone).
    pub async fn release(self) {
        self.renewer.abort();
        let identity = self.identity.clone();
        let _ = release_held(&self.api, &self.name, |holder| holder == identity).await;
    }
}

/// How a conditional release went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Released {
    /// Deleted, with the holder it named.
    Released { holder: String },
    /// No such lease.
    Absent,
    /// Held by someone `ours` does not accept: left alone.
    HeldByOther { holder: String },
    /// It changed between the read and the delete (409 Conflict): left alone.
    Changed,
}

/// Deletes the lease when `ours(holder)` accepts its holder, with a DeleteOptions precondition
/// on the resourceVersion just read: a lease renewed or taken over in between is not deleted.
async fn release_held(api: &Api<DynamicObject>, name: &str, ours: impl Fn(&str) -> bool) -> Result<Released, kube::Error> {
    use kube::api::{DeleteParams, Preconditions};
    let lease = match api.get(name).await {
        Ok(lease) => lease,
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(Released::Absent),
        Err(e) => return Err(e),
    };
    let holder = lease.data.pointer("/spec/holderIdentity").and_then(Value::as_str).unwrap_or_default().to_owned();
    if !ours(&holder) {
        return Ok(Released::HeldByOther { holder });
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions { resource_version: lease.metadata.resource_version.clone(), uid: lease.metadata.uid.clone() }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(Released::Released { holder }),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Released::Changed),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Released::Absent),
        Err(e) => Err(e),
    }
}

/// Releases `namespace/name` when `ours(holder)` accepts its holder (`fleetboot repair`: the
/// lease of a run that is gone), conditionally on the version read.
pub async fn release_lease(at: LeaseApi<'_>, namespace: &str, name: &str, ours: impl Fn(&str) -> bool) -> Result<Released, ClusterError> {
    release_held(&at.leases_in(namespace), name, ours).await.map_err(at.error(LeaseUse::Release, namespace, name))
}

/// The lease's holder and whether it expired by its holder's clock at `now`; `None` when there
/// is no such lease.
pub async fn read_lease(at: LeaseApi<'_>, namespace: &str, name: &str) -> Result<Option<(String, bool)>, ClusterError> {
    match at.leases_in(namespace).get(name).await {
        Ok(lease) => {
            let holder = lease.data.pointer("/spec/holderIdentity").and_then(Value::as_str).unwrap_or_default().to_owned();
            Ok(Some((holder, lease_expired(&lease.data, std::time::SystemTime::now()))))
        }
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(source) => Err(at.error(LeaseUse::Read, namespace, name)(source)),
    }
}

/// The holder of `namespace/name` when the lease is live by its holder's account (present, not
/// expired at `now`); `None` when there is no lease or it expired.
pub async fn live_holder(at: LeaseApi<'_>, namespace: &str, name: &str) -> Result<Option<(String, Value)>, ClusterError> {
    match at.leases_in(namespace).get(name).await {
        Ok(lease) if lease_expired(&lease.data, std::time::SystemTime::now()) => Ok(None),
        Ok(lease) => {
            let holder = lease.data.pointer("/spec/holderIdentity").and_then(Value::as_str).unwrap_or("someone").to_owned();
            Ok(Some((holder, lease.data)))
        }
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(source) => Err(at.error(LeaseUse::Read, namespace, name)(source)),
    }
}

/// Watches a lease that looks expired by its holder's clock for its whole duration on this
/// machine's monotonic clock. `Some`: it never changed (its holder is gone), the version to
/// replace; `None`: it changed, its holder is alive.
async fn unchanged_for_its_duration(
    api: &Api<DynamicObject>,
    name: &str,
    seen: DynamicObject,
) -> Result<Option<DynamicObject>, kube::Error> {
    let seconds = seen.data.pointer("/spec/leaseDurationSeconds").and_then(Value::as_u64).unwrap_or(0);
    let deadline = crate::adapters::system::deadline_after(std::time::Duration::from_secs(seconds));
    let version = seen.metadata.resource_version.clone();
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(Some(seen));
        }
        tokio::time::sleep((deadline - now).min(std::time::Duration::from_millis(500))).await;
        let current = api.get(name).await?;
        if current.metadata.resource_version != version {
            return Ok(None);
        }
    }
}

/// Who holds a lease, as fleetboot writes it: `user@host pid N run ID`.
pub fn lease_identity(user: &str, host: &str, pid: u32, run_id: &str) -> String {
    format!("{user}@{host} pid {pid} run {run_id}")
}

/// This process's lease identity for run `run_id`, and this machine's host name.
pub fn this_process_identity(run_id: &str) -> (String, String) {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    (lease_identity(&user, &host, std::process::id(), run_id), host)
}

/// Whether `holder` is run `run_id` started on `host` by a process that no longer exists:
/// its lease may be reclaimed by the resume of that run without waiting for it to expire.
pub fn holder_is_dead_run(holder: &str, host: &str, run_id: &str, alive: impl Fn(u32) -> bool) -> bool {
    let Some((who, rest)) = holder.split_once(" pid ") else { return false };
    let Some((pid, run)) = rest.split_once(" run ") else { return false };
    let same_host = who.rsplit_once('@').is_some_and(|(_, h)| h == host);
    let pid = pid.parse::<u32>().ok();
    same_host && run == run_id && pid.is_some_and(|pid| !alive(pid))
}

/// Whether `holder` names a process on `host` that no longer exists (killed): it acts no more,
/// whatever its lease still says.
pub fn holder_is_dead_process(holder: &str, host: &str, alive: impl Fn(u32) -> bool) -> bool {
    let Some((who, rest)) = holder.split_once(" pid ") else { return false };
    let pid = rest.split_once(" run ").map_or(rest, |(pid, _)| pid).parse::<u32>().ok();
    who.rsplit_once('@').is_some_and(|(_, h)| h == host) && pid.is_some_and(|pid| !alive(pid))
}

/// Refuses when the other kind of run (a migration for a reboot run, a reboot run for a
/// migration) holds `name`'s lease live, unless `allowed(holder)` (a migration's own reboot
/// step) or its holder is a dead process of this machine. Checked *after* taking one's own
/// lease: two that start together both see the other and both refuse, never both go on.
pub async fn refuse_if_held(at: LeaseApi<'_>, namespace: &str, name: &str, allowed: impl Fn(&str) -> bool) -> Result<(), ClusterError> {
    let Some((holder, _)) = live_holder(at, namespace, name).await? else { return Ok(()) };
    let (_, host) = this_process_identity("");
    if allowed(&holder) || holder_is_dead_process(&holder, &host, process_alive) {
        return Ok(());
    }
    let (other, hint) = if name == MIGRATION_LEASE_NAME {
        ("a fleetboot migration", "reboot runs wait until it ends (its own reboot step reboots every node)")
    } else {
        ("a fleetboot reboot run", "the migration starts once it ends")
    };
    Err(ClusterError::Busy { other, holder, namespace: namespace.to_owned(), name: name.to_owned(), hint })
}

/// Whether a process with this PID exists on this machine.
pub fn process_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let result = unsafe { libc::kill(pid as libc::pid_t, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The heartbeat of a journal kept in the cluster: a Lease per run, `fleetboot-run-RUN-ID` in the
/// journal's namespace, held and renewed by the process writing the journal (whatever the run:
/// a host-list run has no cluster lease, and a `--break-lock` elsewhere may have taken that one).
pub fn run_lease_name(run_id: &str) -> String {
    format!("fleetboot-run-{}", run_id.to_ascii_lowercase())
}

/// How long ago a lease was renewed at `now`, as its holder's clock wrote it, and its duration.
pub fn renewed_ago(lease: &Value, now: std::time::SystemTime) -> (Option<std::time::Duration>, std::time::Duration) {
    let renewed = lease.pointer("/spec/renewTime").and_then(Value::as_str).and_then(|t| humantime::parse_rfc3339_weak(t).ok());
    let duration = std::time::Duration::from_secs(lease.pointer("/spec/leaseDurationSeconds").and_then(Value::as_u64).unwrap_or(0));
    (renewed.map(|at| now.duration_since(at).unwrap_or_default()), duration)
}

fn run_alive(namespace: &str, name: &str, holder: String, lease: Option<&Value>) -> ClusterError {
    let (ago, duration) = lease.map_or((None, std::time::Duration::ZERO), |l| renewed_ago(l, std::time::SystemTime::now()));
    let renewed = match ago {
        // Whole seconds: the holder's clock and this one's differ by more than a millisecond.
        Some(ago) => format!("renewed {} ago", humantime::format_duration(std::time::Duration::from_secs(ago.as_secs()))),
        None => "renewed just now".to_owned(),
    };
    ClusterError::RunAlive {
        holder,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        renewed,
        lasts: humantime::format_duration(duration).to_string(),
    }
}

/// Takes the run's heartbeat lease ([`run_lease_name`]) before its journal is taken over, so a
/// resume never fences a live writer: refused, naming the holder and how fresh its last renewal
/// is, while the lease is renewed, unless `break_lock`; taken when it expired (confirmed on this
/// machine's monotonic clock, as [`LeaseLock::acquire`] does) or when its holder is this
/// machine's own dead process of the same run.
pub async fn acquire_run_lease(
    at: LeaseApi<'_>,
    namespace: &str,
    run_id: &str,
    identity: &str,
    duration: std::time::Duration,
    break_lock: bool,
) -> Result<LeaseLock, ClusterError> {
    let name = run_lease_name(run_id);
    let (_, host) = this_process_identity(run_id);
    let reclaimable = |holder: &str| holder_is_dead_run(holder, &host, run_id, process_alive);
    if !break_lock
        && let Some((holder, lease)) = live_holder(at, namespace, &name).await?
        && holder != identity
        && !reclaimable(&holder)
    {
        return Err(run_alive(namespace, &name, holder, Some(&lease)));
    }
    match LeaseLock::acquire(at, namespace, &name, identity, duration, break_lock, reclaimable).await {
        // Renewed while this run watched it expire, or taken by another resume meanwhile.
        Err(ClusterError::Locked { holder, .. }) => {
            let lease = live_holder(at, namespace, &name).await.ok().flatten();
            let holder = lease.as_ref().map_or(holder, |(h, _)| h.clone());
            Err(run_alive(namespace, &name, holder, lease.as_ref().map(|(_, l)| l)))
        }
        other => other,
    }
}

fn json_spec(identity: &str, duration: std::time::Duration, now: std::time::SystemTime) -> Value {
    serde_json::json!({
        "holderIdentity": identity,
        "leaseDurationSeconds": duration.as_secs().max(1),
        "acquireTime": micro_time(now),
        "renewTime": micro_time(now),
    })
}

#[cfg(test)]
mod lease_tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    /// Runs [`keep_renewed`] with renewals answered by `answer(n)` (n from 1) and returns the
    /// verdict and when it came, on tokio's paused clock.
    async fn verdict_with(answer: impl Fn(u32) -> Option<Renewal> + Send + Sync + 'static) -> (LeaseLost, Duration) {
        let (tx, mut rx) = tokio::sync::watch::channel(None);
        let start = tokio::time::Instant::now();
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let answer = std::sync::Arc::new(answer);
        let task = tokio::spawn(keep_renewed(
            Duration::from_secs(30),
            move || {
                let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                let answer = answer.clone();
                async move {
                    match answer(n) {
                        Some(renewal) => renewal,
                        // An API that never answers.
                        None => std::future::pending().await,
                    }
                }
            },
            tx,
        ));
        let lost = rx.wait_for(Option::is_some).await.unwrap().clone().unwrap();
        let at = start.elapsed();
        task.await.unwrap();
        (lost, at)
    }

    #[tokio::test(start_paused = true)]
    async fn a_renewal_that_hangs_loses_the_lease_at_half_of_it_not_later() {
        let (lost, at) = verdict_with(|_| None).await;
        let last_failure = Some("no answer within 1s 666ms".to_owned());
        assert_eq!(lost, LeaseLost::NotRenewed { for_: Duration::from_secs(15), last_failure });
        assert_eq!(at, Duration::from_secs(15), "the verdict runs on its own timer");
    }

    /// An API server that answers every try, but only after 4 s (an APF queue, a
    /// `Retry-After`): longer than a try's limit (1.67 s), well within the verdict (15 s). The
    /// first try's answer renews the lease; cutting each try at its limit lost it.
    #[tokio::test(start_paused = true)]
    async fn a_slow_api_server_keeps_the_lease_renewed() {
        let (tx, rx) = tokio::sync::watch::channel(None);
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counted = calls.clone();
        let task = tokio::spawn(keep_renewed(
            Duration::from_secs(30),
            move || {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async move {
                    tokio::time::sleep(Duration::from_secs(4)).await;
                    Renewal::Renewed
                }
            },
            tx,
        ));
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(*rx.borrow(), None, "a slow answer cost the lease");
        // A hedge or two beside each slow try, never more than the bound.
        let tries = calls.load(std::sync::atomic::Ordering::SeqCst);
        assert!((3600 / 10 / 2..=3 * (3600 / 10 + 1)).contains(&tries), "renewed throughout, three tries out at most: {tries} tries");
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_try_left_unanswered_gets_another_beside_it_before_the_verdict() {
        // The first try hangs (a dead connection); the next one, on a new connection, answers.
        let (tx, rx) = tokio::sync::watch::channel(None);
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let task = tokio::spawn(keep_renewed(
            Duration::from_secs(30),
            move || {
                let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                async move {
                    if n == 1 {
                        std::future::pending::<()>().await;
                    }
                    Renewal::Renewed
                }
            },
            tx,
        ));
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(*rx.borrow(), None, "the hung try cost the lease");
        task.abort();
    }

    #[test]
    fn three_tries_fit_before_the_verdict_and_none_outlives_it() {
        assert_eq!(renewal_try_limit(Duration::from_secs(30)), Duration::from_millis(1666));
        assert_eq!(renewal_try_limit(Duration::from_secs(3600)), Duration::from_secs(200));
        // A short lease: at least a second, never past half of it.
        assert_eq!(renewal_try_limit(Duration::from_secs(10)), Duration::from_secs(1));
        assert_eq!(renewal_try_limit(Duration::from_secs(1)), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn the_verdict_counts_from_the_last_renewal_that_succeeded() {
        // Renewed at 10 s and 20 s, then every renewal fails: lost at 20 + 15 s.
        let forbidden = || Renewal::Failed { why: "writing it: leases \"fleetboot\" is forbidden (403)".into() };
        let (lost, at) = verdict_with(move |n| Some(if n <= 2 { Renewal::Renewed } else { forbidden() })).await;
        // The API's answer to the last try is in the verdict, not lost to "could not be renewed".
        assert_eq!(
            lost.to_string(),
            "the cluster's lease could not be renewed for 15s (the last try, writing it: leases \"fleetboot\" is forbidden (403)): \
             another run may take it over"
        );
        assert_eq!(at, Duration::from_secs(35));
    }

    #[tokio::test(start_paused = true)]
    async fn a_takeover_seen_at_a_renewal_ends_it_at_once() {
        let (lost, at) = verdict_with(|n| Some(if n == 1 { Renewal::Renewed } else { Renewal::TakenOver { by: "b".into() } })).await;
        assert_eq!(lost, LeaseLost::TakenOver { by: "b".into() });
        assert_eq!(at, Duration::from_secs(20));
    }

    #[tokio::test(start_paused = true)]
    async fn renewals_that_succeed_keep_it_forever() {
        let (tx, rx) = tokio::sync::watch::channel(None);
        let task = tokio::spawn(keep_renewed(Duration::from_secs(30), || async { Renewal::Renewed }, tx));
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(rx.borrow().is_none());
        task.abort();
    }

    #[test]
    fn only_a_dead_process_of_the_same_run_on_this_host_gives_its_lease_back() {
        let holder = lease_identity("ann", "bastion", 41, "r-1");
        let dead = |_| false;
        let alive = |_| true;
        assert!(holder_is_dead_run(&holder, "bastion", "r-1", dead));
        assert!(!holder_is_dead_run(&holder, "bastion", "r-1", alive));
        assert!(!holder_is_dead_run(&holder, "bastion", "r-2", dead));
        assert!(!holder_is_dead_run(&holder, "other", "r-1", dead));
        assert!(!holder_is_dead_run("someone else", "bastion", "r-1", dead));
        assert!(process_alive(std::process::id()));
        assert!(holder_is_dead_process(&holder, "bastion", dead));
        assert!(!holder_is_dead_process(&holder, "bastion", alive));
        assert!(!holder_is_dead_process(&holder, "other", dead));
        assert!(!holder_is_dead_process("someone", "bastion", dead));
    }

    /// A lease the API refuses (403) is an error that names the Lease, what fleetboot was doing
    /// with it and the API server, with kube's own error (the API's answer) as its source: not
    /// "failed to reach the cluster API at leases/…", which named the Lease as a server.
    #[tokio::test]
    async fn a_refused_lease_names_the_lease_and_the_server_and_keeps_kubes_error() {
        use crate::adapters::kube::test_server::{Answer, TestServer};
        use std::error::Error as _;
        let forbidden = r#"leases.coordination.k8s.io "fleetboot" is forbidden: User "u" cannot get resource "leases""#;
        let status = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": forbidden, "reason": "Forbidden", "code": 403});
        let server = TestServer::answering(move |_| Answer::json(403, status.to_string())).await;
        let client = kube::Client::try_from(server.config()).unwrap();
        let url = server.config().cluster_url.to_string();
        let at = LeaseApi { client: &client, server: &url };
        let taken = LeaseLock::acquire(at, "kube-system", LEASE_NAME, "me", Duration::from_secs(30), false, |_| false).await;
        let read = read_lease(at, "kube-system", LEASE_NAME).await;
        for (doing, error) in [("take", taken.err().expect("refused")), ("read", read.expect_err("refused"))] {
            let source = error.source().and_then(|s| s.downcast_ref::<kube::Error>()).expect("kube's error is the source");
            assert!(matches!(source, kube::Error::Api(s) if s.code == 403 && s.message == forbidden), "{source:?}");
            assert_eq!(
                error.to_string(),
                format!("failed to {doing} the lease kube-system/fleetboot through the cluster API at {url}: {forbidden} (403 Forbidden)")
            );
        }
    }

    #[test]
    fn a_lease_expires_when_its_holder_stops_renewing() {
        let now = SystemTime::now();
        let fresh = serde_json::json!({"spec": json_spec("a", Duration::from_secs(30), now - Duration::from_secs(10))});
        assert!(!lease_expired(&fresh, now));
        let stale = serde_json::json!({"spec": json_spec("a", Duration::from_secs(30), now - Duration::from_secs(31))});
        assert!(lease_expired(&stale, now));
        assert!(lease_expired(&serde_json::json!({"spec": {}}), now));
    }
}
