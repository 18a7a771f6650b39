//! The engine's own errors: what a reboot run, a repair and a migration refuse or fail with.
//! They live here, not in the crate's outward `Error` (which wraps them), so the engine never
//! names a type of the commands layer and no error type contains itself.

use fleetboot_core::ExitCode;

use std::path::PathBuf;

use crate::adapters;

/// A journal of another cluster than the one given: nothing is done to either.
#[derive(Debug, thiserror::Error)]
#[error("the journal {} belongs to the cluster at {journaled}, but the cluster given is {given}; refusing to act on a cluster the run does not belong to", journal.display())]
pub struct WrongCluster {
    pub journal: std::path::PathBuf,
    pub journaled: Box<fleetboot_core::journal::ClusterIdentity>,
    pub given: Box<fleetboot_core::journal::ClusterIdentity>,
}

/// What a reboot run (and a repair) fails with before or outside its hosts' outcomes.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] adapters::config::ConfigError),
    #[error(transparent)]
    Hosts(#[from] fleetboot_core::hosts::HostsError),
    #[error(transparent)]
    Journal(#[from] fleetboot_core::journal::JournalError),
    #[error(transparent)]
    SshSetup(#[from] adapters::ssh::SshSetupError),
    #[error(transparent)]
    Cluster(#[from] adapters::kube::ClusterError),
    #[error(transparent)]
    Selection(#[from] SelectionError),
    #[error(transparent)]
    WrongCluster(#[from] WrongCluster),
    #[error(transparent)]
    Bmc(#[from] adapters::bmc::BmcSetupError),
    #[error(transparent)]
    Repair(#[from] RepairError),
}

/// What `fleetboot repair` refuses or fails with, beside [`RunError`]'s.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    #[error(
        "the run of {} still holds the lease {lease}: {holder}; it may still be running: stop it (or wait until its lease expires) before repairing",
        journal.display()
    )]
    StillLive {
        journal: PathBuf,
        /// NAMESPACE/NAME
        lease: String,
        holder: String,
    },
    #[error("{0}")]
    MigrationJournal(#[from] adapters::migration_journal::MigrationJournalError),
    #[error("the journal {} records no cluster run: nothing of a cluster to repair", .0.display())]
    NoCluster(PathBuf),
    #[error("cluster API: {0}")]
    Api(#[source] kube::Error),
}

impl RunError {
    /// A journal that cannot be written is fleetboot's own failure; everything else was refused
    /// input (the exit-code map in README).
    pub fn exit_code(&self) -> ExitCode {
        match self {
            RunError::Journal(fleetboot_core::journal::JournalError::Write { .. }) => ExitCode::Internal,
            _ => ExitCode::BadInput,
        }
    }
}

/// Input that names the wrong things: refused before anything is touched (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum SelectionError {
    #[error("choosing nodes (--all, -l, --role, --nodes) needs a cluster")]
    NodesNeedACluster,
    #[error("--drain works on cluster nodes: add --all, -l, --role or --nodes")]
    DrainNeedsNodes,
    #[error("the journal {} belongs to the cluster at {cluster}, which is not reachable from here (pass --kubeconfig or --context)", journal.display())]
    JournalsClusterMissing { journal: std::path::PathBuf, cluster: fleetboot_core::journal::ClusterIdentity },
    #[error("the journal {} is a cluster run, and no cluster is configured (pass --kubeconfig or --context)", journal.display())]
    JournalNeedsACluster { journal: std::path::PathBuf },
    #[error("the journal in the cluster (--journal-in-cluster, or a cluster: journal) needs a cluster: pass --kubeconfig or --context")]
    InClusterJournalNeedsACluster,
    #[error("no such node in {place}: {}", names.join(", "))]
    UnknownNodes { names: Vec<String>, place: &'static str },
    #[error("{}; use --address-type or --exclude", problems.join("; "))]
    NodeAddresses { problems: Vec<String> },
    #[error("host {host} ({address}) matches more than one node of the cluster: {}; name it by one node's address", nodes.join(", "))]
    AmbiguousHost { host: String, address: String, nodes: Vec<String> },
    /// A host-list line named like a node whose address is none of that node's.
    #[error(transparent)]
    NameNotAddress(Box<NameNotAddress>),
    /// Host-list names the resolver gave no answer for, under a cluster.
    #[error(transparent)]
    Unresolved(Box<Unresolved>),
    #[error("{why}, but no BMC is known for: {}{hint}", nodes.join(", "))]
    NoBmc { why: &'static str, nodes: Vec<String>, hint: &'static str },
    #[error("--transport kube reaches the nodes through the cluster API: pass --kubeconfig or --context")]
    KubeNeedsACluster,
    #[error(
        "--transport kube: {source}; nothing was touched (exec needs `create pods/exec` and `list pods` in openshift-machine-config-operator)"
    )]
    KubeExecRefused { node: String, source: fleetboot_core::transport::TransportError },
    #[error("name the nodes to act on, or one BMC with --bmc")]
    NoPowerTargets,
    #[error("{action} needs {flag}{why}")]
    NotConfirmed { action: &'static str, flag: &'static str, why: &'static str },
    /// A resume whose explicit flags disagree with the journaled run.
    #[error(
        "the journal {} was run with other settings than this command line gives: {}; resume without {} to keep the journaled {}, or add --override-journal to run with the given {} from here on (journaled as overridden)",
        journal.display(),
        conflicts.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
        if conflicts.len() == 1 { "that flag" } else { "those flags" },
        if conflicts.len() == 1 { "value" } else { "values" },
        if conflicts.len() == 1 { "value" } else { "values" },
    )]
    ResumeConflicts { journal: std::path::PathBuf, conflicts: Vec<fleetboot_core::journal::SettingConflict> },
    #[error("no journal to repair in {} (name one with --journal)", dir.display())]
    NoJournal { dir: std::path::PathBuf },
    #[error("internal command line {argv:?}: {reason}")]
    InternalCommandLine { argv: Vec<String>, reason: String },
}

/// A host-list line named like a node whose address is none of that node's: a name is not an
/// identity, so the line is neither that node nor a plain host.
#[derive(Debug, thiserror::Error)]
#[error(
    "{origin}: host {host} ({address}) is named like the cluster's node {node}, but {address} is none of {node}'s addresses ({}){}; \
     a name is not an identity, so nothing was touched: give the node's own address, or another name if it is another machine",
    addresses.join(", "),
    address_of.as_ref().map_or(String::new(), |other| format!(" (it is node {other}'s)"))
)]
pub struct NameNotAddress {
    pub origin: String,
    pub host: String,
    pub address: String,
    pub node: String,
    pub addresses: Vec<String>,
    pub address_of: Option<String>,
}

/// Host-list names (under a cluster) the resolver gave no answer for: whether each is one of the
/// cluster's nodes is unknown, and fleetboot does not guess (a node taken for a plain host would
/// be rebooted outside the cluster's rules, undrained). `names`: each name with the line that
/// lists it first and why it has no answer.
#[derive(Debug, thiserror::Error)]
#[error(
    "{} of the host list could not be resolved, so whether {} a node of the cluster is unknown and nothing was touched: {}{}{}; \
     fix the resolver, or write {} addresses instead of {} (--no-cluster if no host of the list is a node)",
    count(names.len(), "host name", "host names"),
    if names.len() == 1 { "it is" } else { "each is" },
    names.iter().take(Self::SHOWN).map(|(name, origin, why)| format!("{name} ({origin}): {why}")).collect::<Vec<_>>().join("; "),
    if names.len() > Self::SHOWN { format!("; and {} more", names.len() - Self::SHOWN) } else { String::new() },
    if *not_looked_up > 0 { format!("; {} not looked up", count(*not_looked_up, "further name", "further names")) } else { String::new() },
    if names.len() == 1 { "that host's" } else { "those hosts'" },
    if names.len() == 1 { "its name" } else { "their names" },
)]
pub struct Unresolved {
    pub names: Vec<(String, String, adapters::system::NoAnswer)>,
    pub not_looked_up: usize,
}

impl Unresolved {
    /// How many unanswered names the message shows; the rest are counted.
    const SHOWN: usize = 10;
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
