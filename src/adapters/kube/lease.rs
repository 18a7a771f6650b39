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
    /// Who held it before a takeover (for the user and the journal).
    pub taken_from: Option<String>,
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
        let fresh = DynamicObject::new(lease_name, &lease_resource()).within(namespace).data(serde_json::json!({ "spec": spec }));
        match api.create(&PostParams::default(), &fresh).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let held = api.get(lease_name).await.map_err(api_error)?;
                let holder = held.data.pointer("/spec/holderIdentity").and_then(Value::as_str).unwrap_or("someone").to_owned();
                if !lease_expired(&held.data, now) && !break_lock && !reclaimable(&holder) {
                    return Err(ClusterError::Locked { holder, namespace: namespace.to_owned(), name: lease_name.to_owned() });
                }
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
        let renewer = tokio::spawn(async move {
            let mut tick = tokio::time::interval(duration / 3);
            tick.tick().await;
            loop {
                tick.tick().await;
                // An API outage only delays renewal; the lease lasts `duration` meanwhile.
                let Ok(mut lease) = renew_api.get(&renew_name).await else { continue };
                if lease.data.pointer("/spec/holderIdentity").and_then(Value::as_str) != Some(renew_identity.as_str()) {
                    // Taken over (--break-lock elsewhere): never steal it back.
                    return;
                }
                lease.data["spec"]["renewTime"] = serde_json::json!(micro_time(std::time::SystemTime::now()));
                // A Conflict means someone wrote it meanwhile; the next tick looks again.
                let _ = renew_api.replace(&renew_name, &PostParams::default(), &lease).await;
            }
        });
        Ok(LeaseLock { api, name: lease_name.to_owned(), identity: identity.to_owned(), renewer, taken_from })
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
