//! Taking a fleetboot lease, the one procedure a reboot run and a migration both follow: take
//! this run's lease (reclaiming the one this machine's own killed process left, when allowed),
//! refuse when the other kind's lease is held (checked with this one held, so the two never both
//! start), say a takeover, and wait out the settle time so the previous holder sees it first.

use std::future::Future;
use std::time::Duration;

use crate::adapters::kube::{self, ClusterError, LeaseLock};

/// What lease to take and how.
pub struct LeaseTake<'a> {
    pub namespace: &'a str,
    /// This run's lease ([`kube::LEASE_NAME`] or [`kube::MIGRATION_LEASE_NAME`]).
    pub name: &'a str,
    pub duration: Duration,
    pub break_lock: bool,
    pub run_id: &'a str,
    /// Whether a holder that is this machine's own dead process of the same run may be
    /// reclaimed (a resume).
    pub may_reclaim: bool,
    /// The other kind's lease, in `kube-system`, which must not be held beside this one...
    pub exclusive_with: &'a str,
    /// ...except by this holder (a migration's own reboot run).
    pub allowed_beside: Option<&'a str>,
    /// What the settle time holds back ("the first reboot"), and what the previous holder does
    /// once it sees the takeover ("the run that held the lease stops starting hosts").
    pub waiting_before: &'a str,
    pub previous_stops: &'a str,
}

/// A lease held, with this process's identity in it.
pub struct TakenLease {
    pub lock: LeaseLock,
    pub identity: String,
}

/// Takes the lease (see the module's header) through `connection`'s own client for leases, so
/// that its renewals never wait behind the run's other requests; `warn` hears the takeover and
/// the wait, `until` cuts the settle time short (Ctrl-C).
pub async fn take(
    connection: &kube::ClusterConnection,
    take: &LeaseTake<'_>,
    warn: &mut dyn FnMut(String),
    until: impl Future<Output = ()>,
) -> Result<TakenLease, ClusterError> {
    let at = connection.lease_api();
    let (identity, host) = kube::this_process_identity(take.run_id);
    let reclaimable = |holder: &str| take.may_reclaim && kube::holder_is_dead_run(holder, &host, take.run_id, kube::process_alive);
    let lock = LeaseLock::acquire(at, take.namespace, take.name, &identity, take.duration, take.break_lock, reclaimable).await?;
    let allowed = take.allowed_beside;
    // The other kind's lease, where it is: a migration's always in kube-system, a reboot run's
    // there unless it was given `--lease-namespace` (a run elsewhere is not seen: the flag's
    // help says so).
    if let Err(e) =
        kube::refuse_if_held(at, fleetboot_core::rbac::MIGRATION_LEASE_NAMESPACE, take.exclusive_with, |holder| allowed == Some(holder))
            .await
    {
        lock.release().await;
        return Err(e);
    }
    if let Some(previous) = &lock.taken_from {
        warn(format!("took the fleetboot lease over from {previous}"));
    }
    if let Some(wait) = lock.settle_time() {
        warn(format!(
            "waiting {} before {}: {} once it sees the takeover",
            humantime::format_duration(wait),
            take.waiting_before,
            take.previous_stops
        ));
    }
    lock.settle(until).await;
    Ok(TakenLease { lock, identity })
}
