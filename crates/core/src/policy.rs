//! How a run is shaped, as its journal records it: the groups of hosts with their limits and
//! order, and what a drain does. A leaf: the plan, the nodes' rules and the journal all use it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How hosts are grouped for limits and order. Empty: one group, no extra limits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grouping {
    /// host name → group name
    pub of: BTreeMap<String, String>,
    /// group name → hosts of that group between "dispatched" and "confirmed back" at once
    pub limits: BTreeMap<String, usize>,
    /// Groups that start only once every other host is finished (the control plane: etcd
    /// quorum must never lose two members to fleetboot at once).
    pub last: Vec<String>,
    /// Hosts of a cluster run that are no node of the cluster (a host list may mix both): they
    /// are rebooted and proven over SSH alone, in no group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub standalone: Vec<String>,
    /// The rule the groups come from (`pool` or a label key), so that nodes outside the run can
    /// be put in their group when the limits count the cluster's unavailable nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

impl Grouping {
    pub fn group_of(&self, host: &str) -> Option<&str> {
        self.of.get(host).map(String::as_str)
    }

    pub fn is_standalone(&self, host: &str) -> bool {
        self.standalone.iter().any(|h| h == host)
    }

    pub fn is_last(&self, host: &str) -> bool {
        self.group_of(host).is_some_and(|g| self.last.iter().any(|l| l == g))
    }
}

/// What to do with a node whose pods cannot all be evicted in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrainFailure {
    /// Fail the host: it is not rebooted, and is uncordoned again.
    Fail,
    /// Skip the host (uncordoned again) and go on.
    Skip,
    /// Delete the remaining pods and reboot anyway.
    Force,
}

/// A run's `--drain` choice, journaled so that a resumed run drains the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainPolicy {
    pub timeout_ms: u64,
    pub on_failure: DrainFailure,
}
