//! The run's Lease (coordination.k8s.io/v1): one fleetboot run per cluster at a time.

use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::discovery::ApiResource;
use serde_json::Value;

use super::{ClusterError, api_resource};

/// A coordination.k8s.io/v1 Lease held for a whole cluster run, so two admins cannot reboot
/// one cluster's nodes at once. Renewed in the background; a lease whose holder stopped
/// renewing expires; `--break-lock` takes a live one over.
pub struct LeaseLock {
    api: Api<DynamicObject>,
    name: String,
    identity: String,
    renewer: tokio::task::JoinHandle<()>,
    lost: tokio::sync::watch::Receiver<Option<LeaseLost>>,
    /// Who held it before a takeover (for the user and the journal).
    pub taken_from: Option<String>,
    /// A live holder's lease was broken (`--break-lock`): that run goes on until it sees the
    /// takeover, so this one waits this long before it reboots anything.
    settle_time: Option<std::time::Duration>,
}

/// How one renewal went.
enum Renewal {
    Renewed,
    /// Not renewed this time (the API refused, failed or did not answer in time).
    Failed,
    TakenOver {
        by: String,
    },
}

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
                Err(_) => Renewal::Failed,
            }
        }
        Err(_) => Renewal::Failed,
    }
}

/// Why a run no longer holds its lease: from then on it must start nothing new.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaseLost {
    #[error("another run took the cluster's lease over ({by})")]
    TakenOver { by: String },
    #[error("the cluster's lease could not be renewed for {}: another run may take it over", humantime::format_duration(*.for_))]
    NotRenewed { for_: std::time::Duration },
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
        client: &Client,
        namespace: &str,
        lease_name: &str,
        identity: &str,
        duration: std::time::Duration,
        break_lock: bool,
        reclaimable: impl Fn(&str) -> bool,
    ) -> Result<LeaseLock, ClusterError> {
        use kube::api::PostParams;
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &lease_resource());
        let now = std::time::SystemTime::now();
        let spec = json_spec(identity, duration, now);
        let api_error = |e: kube::Error| ClusterError::Api { server: format!("leases/{namespace}/{lease_name}"), reason: e.to_string() };
        let mut taken_from = None;
        let mut settle_time = None;
        let fresh = DynamicObject::new(lease_name, &lease_resource()).within(namespace).data(serde_json::json!({ "spec": spec }));
        match api.create(&PostParams::default(), &fresh).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let held = api.get(lease_name).await.map_err(api_error)?;
                let holder = held.data.pointer("/spec/holderIdentity").and_then(Value::as_str).unwrap_or("someone").to_owned();
                let locked =
                    || ClusterError::Locked { holder: holder.clone(), namespace: namespace.to_owned(), name: lease_name.to_owned() };
                let held = if reclaimable(&holder) {
                    held
                } else if break_lock {
                    // The holder looks every third of *its* lease and stops after half of it
                    // without a renewal: half its duration covers both.
                    let theirs = held.data.pointer("/spec/leaseDurationSeconds").and_then(Value::as_u64).unwrap_or(0);
                    settle_time = (!lease_expired(&held.data, now)).then(|| std::time::Duration::from_secs(theirs) / 2);
                    held
                } else if !lease_expired(&held.data, now) {
                    // Live by its holder's own account: a skewed clock can only make this refuse
                    // wrongly, never let two runs hold the lease.
                    return Err(locked());
                } else {
                    // Expired by the holder's clock; confirmed on this machine's monotonic clock
                    // only (as client-go's leader election): unchanged for its whole duration.
                    unchanged_for_its_duration(&api, lease_name, held).await.map_err(api_error)?.ok_or_else(locked)?
                };
                // Replace with the version just read: if another run took it meanwhile, Conflict.
                let mut takeover = held.clone();
                takeover.data["spec"] = spec;
                api.replace(lease_name, &PostParams::default(), &takeover).await.map_err(|e| match e {
                    kube::Error::Api(s) if s.code == 409 => {
                        ClusterError::Locked { holder: holder.clone(), namespace: namespace.to_owned(), name: lease_name.to_owned() }
                    }
                    other => api_error(other),
                })?;
                taken_from = Some(holder);
            }
            Err(e) => return Err(api_error(e)),
        }
        let renew_api = api.clone();
        let renew_identity = identity.to_owned();
        let renew_name = lease_name.to_owned();
        let (lost_tx, lost) = tokio::sync::watch::channel(None);
        let renewer = tokio::spawn(async move {
            let mut tick = tokio::time::interval(duration / 3);
            tick.tick().await;
            // Monotonic: a jump of the wall clock neither hides nor invents a failed renewal.
            let mut renewed_at = tokio::time::Instant::now();
            loop {
                tick.tick().await;
                // An API that hangs instead of refusing must not hold the verdict back past the
                // half-lease mark: the renewal gets only the time left until then.
                let budget = (duration / 2).saturating_sub(renewed_at.elapsed()).max(std::time::Duration::from_millis(100));
                let renewal = tokio::time::timeout(budget, renew_once(&renew_api, &renew_name, &renew_identity)).await;
                let renewed = match renewal {
                    Ok(Renewal::TakenOver { by }) => {
                        // Taken over (--break-lock elsewhere): never steal it back; stop.
                        let _ = lost_tx.send(Some(LeaseLost::TakenOver { by }));
                        return;
                    }
                    Ok(Renewal::Renewed) => true,
                    Ok(Renewal::Failed) | Err(_) => false,
                };
                if renewed {
                    renewed_at = tokio::time::Instant::now();
                } else if renewed_at.elapsed() >= duration / 2 {
                    // Half the lease gone without a renewal: another run could soon take it.
                    let _ = lost_tx.send(Some(LeaseLost::NotRenewed { for_: renewed_at.elapsed() }));
                    return;
                }
            }
        });
        Ok(LeaseLock { api, name: lease_name.to_owned(), identity: identity.to_owned(), renewer, lost, taken_from, settle_time })
    }

    /// How long to wait after breaking a live holder's lease before acting: half its lease.
    /// By then the other run has either seen the takeover (it looks every third of its lease)
    /// or failed to renew for half its lease; either way it starts nothing new, so the two
    /// never reboot at once. `None` when nobody live held it.
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

    /// Gives the lease back if this run still holds it.
    pub async fn release(self) {
        self.renewer.abort();
        if let Ok(lease) = self.api.get(&self.name).await
            && lease.data.pointer("/spec/holderIdentity").and_then(Value::as_str) == Some(self.identity.as_str())
        {
            let _ = self.api.delete(&self.name, &Default::default()).await;
        }
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

/// Whether a process with this PID exists on this machine.
pub fn process_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let result = unsafe { libc::kill(pid as libc::pid_t, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
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
