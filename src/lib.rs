//! fleetboot: reboot fleets of bare-metal nodes safely, fast and provably, and drive OpenShift's
//! offline SDN → OVN-Kubernetes migration.
//!
//! # Layout
//!
//! Three crates. `fleetboot-core` (`crates/core`) is pure: domain types, the journal's records and
//! their fold, the plan, the escalation ladder, events, and the migration's flows, checks, journal
//! fold, events and report files (`fleetboot_core::migrate`). `fleetboot-sim` (`crates/sim`) is
//! the simulated cluster the tests and the demo run against; it depends on no fleetboot crate, so
//! it stays an independent witness. This crate is the application, in layers that point one way:
//!
//! ```text
//!   commands   one module per subcommand: its clap arguments and its `run`
//!      │
//!      ├──────────────┐
//!      ▼              ▼
//!   engine        report      the runner, the migration (emit events, never print)
//!      │              │       │ live, plain, JSON; the migration's lines, plan and checks
//!      ▼              ▼
//!   adapters      ssh, known_hosts, redfish, bmc, kube (connect, discover, watch, lease,
//!      │          drain), config, the journal files (reboot, migration), the system clock
//!      ▼
//!   fleetboot_core
//! ```
//!
//! A module may use its own layer and the layers below it, never one above or beside it: the
//! test `layers_point_one_way` reads every `use crate::…` and fails on an upward one. A command
//! joins an engine to a reporter in one line: the engine hands every event to a callback, the
//! reporter renders it (`commands::migrate::run`: `engine::migrate::migrate(…, &mut |progress|
//! reporter.report(progress))`).

pub mod adapters;
pub mod commands;
pub mod engine;
pub mod report;

pub use fleetboot_core::ExitCode;

#[cfg(test)]
mod layering;

/// Every error that stops fleetboot before or outside a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] adapters::config::ConfigError),
    #[error(transparent)]
    Hosts(#[from] fleetboot_core::hosts::HostsError),
    #[error(transparent)]
    Journal(#[from] adapters::journal::JournalError),
    #[error(transparent)]
    SshSetup(#[from] adapters::ssh::SshSetupError),
    #[error("failed to start the simulated cluster: {0}")]
    Sim(std::io::Error),
    #[error(transparent)]
    Cluster(#[from] adapters::kube::ClusterError),
    #[error(transparent)]
    Selection(#[from] SelectionError),
    /// A journal resumed under a cluster other than the one it was written for.
    #[error("the journal {} belongs to the cluster at {journaled}, but the cluster given is {given}; refusing to act on a cluster the run does not belong to", journal.display())]
    WrongCluster {
        journal: std::path::PathBuf,
        journaled: Box<fleetboot_core::journal::ClusterIdentity>,
        given: Box<fleetboot_core::journal::ClusterIdentity>,
    },
    #[error(transparent)]
    Bmc(#[from] adapters::bmc::BmcSetupError),
    #[error(transparent)]
    Migrate(#[from] engine::migrate::MigrateError),
    #[error(transparent)]
    Repair(#[from] engine::repair::RepairError),
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
    #[error("no such node in {place}: {}", names.join(", "))]
    UnknownNodes { names: Vec<String>, place: &'static str },
    #[error("{}; use --address-type or --exclude", problems.join("; "))]
    NodeAddresses { problems: Vec<String> },
    #[error("host {host} ({address}) matches more than one node of the cluster: {}; name it by one node's address", nodes.join(", "))]
    AmbiguousHost { host: String, address: String, nodes: Vec<String> },
    /// A host-list line named like a node whose address is none of that node's.
    #[error(transparent)]
    NameNotAddress(Box<NameNotAddress>),
    #[error("{why}, but no BMC is known for: {}{hint}", nodes.join(", "))]
    NoBmc { why: &'static str, nodes: Vec<String>, hint: &'static str },
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

impl Error {
    pub fn exit_code(&self) -> ExitCode {
        use engine::migrate::MigrateError;
        match self {
            Error::Journal(adapters::journal::JournalError::Write { .. }) | Error::Sim(_) => ExitCode::Internal,
            // A migration journal held by another live process is refused like a reboot journal.
            Error::Migrate(MigrateError::Journal(e)) if e.is_in_use() => ExitCode::BadInput,
            Error::Migrate(MigrateError::Journal(_) | MigrateError::Api { .. }) => ExitCode::Internal,
            _ => ExitCode::BadInput,
        }
    }
}
