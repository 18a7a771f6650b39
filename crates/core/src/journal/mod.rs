//! The journal's records (one JSON line per transition, the on-disk format) and the pure fold
//! that rebuilds a run's state from them for `--resume`. Writing and reading the file is the
//! root crate's `journal` module.
//!
//! Split by job: the records (here), the run settings a resume keeps and their override rule
//! (`settings`), the fold that rebuilds a run's state (`fold`).

use serde::{Deserialize, Serialize};

use crate::hosts::Host;

mod fold;
mod settings;

pub use fold::*;
pub use settings::*;

/// Bumped on any incompatible change of the record format.
pub const JOURNAL_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub v: u32,
    /// Wall clock, milliseconds since the Unix epoch.
    pub at_ms: u64,
    #[serde(flatten)]
    pub entry: Entry,
}

/// How the reboot command was handed over. Each of these means "the host may now reboot".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// The command exited 0 (systemd scheduled the reboot).
    ExitZero,
    /// The connection or channel closed before an exit status: the reboot may have begun.
    ConnectionDropped,
    /// The command did not finish in time; it may still have taken effect.
    NoAnswer,
    /// The BMC accepted a reset (and its task, if any, completed).
    BmcAccepted,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Entry {
    RunStarted {
        run_id: String,
        command: String,
        hosts: Vec<Host>,
        /// The hosts are cluster nodes: a reboot is proven through the API as well.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        api_proof: bool,
        /// Groups, their limits and order, so a resume keeps them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grouping: Option<crate::policy::Grouping>,
        /// `--drain`: how nodes are drained before their reboot, so a resume does the same.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        drain: Option<crate::policy::DrainPolicy>,
        /// The cluster whose nodes these are: a resume against any other cluster is refused.
        /// (Boxed: it keeps this rare record from sizing every entry.)
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cluster: Option<Box<ClusterIdentity>>,
        /// Transport, command, rate, concurrency and timeouts, so a resume keeps them (absent
        /// in journals written before they were recorded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        settings: Option<RunSettings>,
    },
    /// A later process picked the run up again. `settings`: what it runs with from here on;
    /// `overridden`: the settings the user changed explicitly against the journaled ones.
    RunResumed {
        pid: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        settings: Option<RunSettings>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        overridden: Vec<String>,
    },
    /// This run took the cluster's fleetboot lease from another holder (`--break-lock`, or
    /// a holder that stopped renewing it).
    LeaseTakenOver {
        previous_holder: String,
        holder: String,
    },
    BootIdRead {
        host: String,
        boot_id: String,
    },
    /// systemd's `SoftRebootsCount` read with the boot ID before the reboot: a host that comes
    /// back with the same boot ID and a higher count did a userspace-only soft reboot.
    SoftRebootCount {
        host: String,
        count: u64,
    },
    /// The host came back with its old boot ID and a higher `SoftRebootsCount`: a
    /// `systemctl soft-reboot` (userspace restarted, the kernel did not). Not a proven reboot,
    /// and nothing is pending any more: the host is not watched further or sent another one.
    SoftRebooted {
        host: String,
        boot_id: String,
        count_before: u64,
        count_after: u64,
    },
    /// Written and fsynced *before* the reboot command is sent: from here on a resume must
    /// never send another one, only wait for a new boot ID. `bmc`: sent as a Redfish reset
    /// of this kind instead of over SSH.
    Dispatching {
        host: String,
        old_boot_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bmc: Option<crate::power::RestartKind>,
    },
    /// `reset_type`: the Redfish ResetType the BMC accepted.
    Dispatched {
        host: String,
        delivery: Delivery,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reset_type: Option<String>,
    },
    /// The node's BMC takes over from SSH, and why. `ssh_reached`: SSH answers this node (its
    /// boot ID is read over SSH); otherwise only the cluster API can show the new boot ID.
    FallingBack {
        host: String,
        reason: String,
        ssh_reached: bool,
    },
    /// The node is reached through another transport than the first of the order (`auto`:
    /// SSH, then the cluster API's exec, then the BMC), and why.
    TransportChosen {
        host: String,
        transport: String,
        reason: String,
    },
    /// Written BEFORE an `oc debug`-style pod is created on the host's node (the kube
    /// transport where no machine-config daemon pod serves exec): after a kill, the next run,
    /// a resume or `fleetboot repair` deletes what such records name and no deletion followed.
    DebugPodCreating {
        host: String,
        namespace: String,
        pod: String,
    },
    /// That pod was deleted (or found gone).
    DebugPodDeleted {
        host: String,
        namespace: String,
        pod: String,
    },
    /// The host stopped answering after the dispatch.
    Down {
        host: String,
    },
    /// The host answers again with a boot ID different from `old_boot_id`. `api_only`: seen
    /// through the cluster API alone, SSH being unusable for this node.
    Back {
        host: String,
        new_boot_id: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        api_only: bool,
    },
    /// Written before the node is cordoned: a resume must uncordon it if the run ends there.
    /// `already_cordoned`: the node was unschedulable before (an admin's cordon): fleetboot
    /// drains it but never lifts that cordon.
    Cordoning {
        host: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        already_cordoned: bool,
    },
    /// Every pod the drain covers was evicted (or, forced, deleted).
    Drained {
        host: String,
        evicted: usize,
    },
    /// Written before fleetboot lifts its cordon: a writer fenced meanwhile (its record refused)
    /// touches nothing, and a resume knows the uncordon may or may not have happened (the node
    /// stays counted as cordoned until `uncordoned`; lifting it again is harmless).
    Uncordoning {
        host: String,
    },
    Uncordoned {
        host: String,
    },
    /// The cluster API shows the node Ready with a boot ID other than the old one.
    ApiConfirmed {
        host: String,
        boot_id: String,
    },
    /// Back and, if configured, the check command passed.
    Confirmed {
        host: String,
    },
    /// `may_reboot`: the reboot command may have been delivered, so the host must not get
    /// another one; a resume only re-checks its boot ID.
    Failed {
        host: String,
        stage: Stage,
        error: String,
        may_reboot: bool,
    },
    /// The intent, journaled (fenced) before `shutdown -c` is sent: a stale writer sends no
    /// cancel. Without a later `cancelled` the reboot may or may not have been cancelled, so a
    /// resume re-checks the boot ID and never sends the reboot again.
    Cancelling {
        host: String,
    },
    /// A dispatched reboot was cancelled (`shutdown -c`) before the host went down.
    Cancelled {
        host: String,
    },
    /// The host's BMC reports its system powered off (PowerState Off): it was switched off on
    /// purpose, so no reset was sent (a restart of an Off system means On). The reset announced
    /// by the last `dispatching` never went out.
    PoweredOff {
        host: String,
        detail: String,
    },
    /// Never started: the run was stopped or the failure budget was spent.
    Skipped {
        host: String,
        reason: String,
    },
    /// The host's boot ID when the run was planned (runs with windows or `--only-if`): a host
    /// that shows another one before its reboot was rebooted since, by anyone, and is done.
    Planned {
        host: String,
        boot_id: String,
    },
    /// Not rebooted, and needs no reboot: `--only-if` said so, or it was rebooted since the
    /// plan. Done: a resume leaves it alone, and it counts as no failure.
    NotNeeded {
        host: String,
        reason: String,
    },
    /// The node's drain timed out with these pods left (`namespace/name`): the next step of
    /// `--drain-escalation` follows (counted per host, so a resume goes on from it).
    DrainTimedOut {
        host: String,
        pods: Vec<String>,
    },
    /// The node's drain timed out and `--drain-escalation defer` moved it to the end of the
    /// queue, uncordoned; it is drained again then. Nothing else changes.
    Deferred {
        host: String,
        reason: String,
        /// Deferred by the re-read after its drain (not by `--drain-escalation defer`): counted,
        /// so a node deferred after drain after drain is skipped once the bound is reached.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        after_drain: bool,
    },
    /// The drain's pods eviction could not move are deleted (`--drain-escalation force`,
    /// `--drain-failure force`): journaled before the deletion, which cannot be undone.
    ForceDeleting {
        host: String,
        pods: Vec<String>,
    },
    /// After its drain the node was found taken by another actor (the MCO updating it, another
    /// actor's maintenance Lease): fleetboot's cordon is now theirs (`to`), so fleetboot never
    /// lifts it, and the node is not rebooted by this run. Journaled before anything else.
    CordonHandedOver {
        host: String,
        to: String,
        reason: String,
    },
    /// No new reboot starts, for the whole run: outside the maintenance windows (`until_ms`:
    /// when the next one opens), or a blocker. Hosts in flight go on.
    Held {
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until_ms: Option<u64>,
    },
    RunFinished {
        outcome: String,
    },
    /// The host's places in the limits are given up while it may still be down: its reboot
    /// deadline passed without the node seen back Ready. The explicit decision that lets the
    /// next host of its group start (the limits still count the node while it is unavailable).
    PassReleased {
        host: String,
        reason: String,
    },
}

/// Which cluster a run belongs to: its API server, and the ClusterVersion's `spec.clusterID`
/// where the cluster has one (OpenShift). Two kubeconfig contexts may name one cluster by two
/// URLs, and two clusters may sit behind one URL over time: the ID decides when both have one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterIdentity {
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// The kubeconfig context the run was started under, for the people reading the journal;
    /// it identifies nothing (two contexts may name one cluster), so [`Self::same_cluster`]
    /// ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

impl ClusterIdentity {
    pub fn same_cluster(&self, other: &ClusterIdentity) -> bool {
        match (&self.cluster_id, &other.cluster_id) {
            (Some(a), Some(b)) => a == b,
            _ => self.server.trim_end_matches('/') == other.server.trim_end_matches('/'),
        }
    }
}

impl std::fmt::Display for ClusterIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.cluster_id {
            Some(id) => write!(f, "{} (cluster ID {id})", self.server),
            None => f.write_str(&self.server),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Connect,
    Drain,
    Dispatch,
    Confirm,
    Check,
    /// Waiting for the limits (unavailable nodes, the control plane, etcd) before anything was
    /// touched: the host was never started.
    Limits,
}

impl Entry {
    pub fn host(&self) -> Option<&str> {
        match self {
            Entry::BootIdRead { host, .. }
            | Entry::SoftRebootCount { host, .. }
            | Entry::SoftRebooted { host, .. }
            | Entry::Dispatching { host, .. }
            | Entry::Dispatched { host, .. }
            | Entry::FallingBack { host, .. }
            | Entry::TransportChosen { host, .. }
            | Entry::DebugPodCreating { host, .. }
            | Entry::DebugPodDeleted { host, .. }
            | Entry::Down { host }
            | Entry::Back { host, .. }
            | Entry::ApiConfirmed { host, .. }
            | Entry::Cordoning { host, .. }
            | Entry::Drained { host, .. }
            | Entry::Uncordoning { host }
            | Entry::Uncordoned { host }
            | Entry::Confirmed { host }
            | Entry::Failed { host, .. }
            | Entry::Cancelling { host }
            | Entry::Cancelled { host }
            | Entry::Skipped { host, .. }
            | Entry::Planned { host, .. }
            | Entry::NotNeeded { host, .. }
            | Entry::Deferred { host, .. }
            | Entry::CordonHandedOver { host, .. }
            | Entry::ForceDeleting { host, .. }
            | Entry::DrainTimedOut { host, .. }
            | Entry::PoweredOff { host, .. }
            | Entry::PassReleased { host, .. } => Some(host),
            Entry::RunStarted { .. }
            | Entry::RunResumed { .. }
            | Entry::LeaseTakenOver { .. }
            | Entry::RunFinished { .. }
            | Entry::Held { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests;
