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
    Journal(#[from] fleetboot_core::journal::JournalError),
    #[error(transparent)]
    SshSetup(#[from] adapters::ssh::SshSetupError),
    #[error("failed to start the simulated cluster: {0}")]
    Sim(std::io::Error),
    #[error(transparent)]
    Cluster(#[from] adapters::kube::ClusterError),
    #[error(transparent)]
    Selection(#[from] SelectionError),
    /// A journal resumed under a cluster other than the one it was written for.
    #[error(transparent)]
    Bmc(#[from] adapters::bmc::BmcSetupError),
    #[error(transparent)]
    Run(#[from] engine::error::RunError),
    #[error(transparent)]
    Migrate(#[from] engine::migrate::MigrateError),
    #[error(transparent)]
    Toolbox(#[from] commands::toolbox::ToolboxError),
    #[error(transparent)]
    Access(#[from] adapters::kube::access::AccessError),
}

pub use engine::error::{NameNotAddress, SelectionError};

impl Error {
    pub fn exit_code(&self) -> ExitCode {
        use engine::migrate::MigrateError;
        match self {
            Error::Journal(fleetboot_core::journal::JournalError::Write { .. }) | Error::Sim(_) => ExitCode::Internal,
            Error::Run(e) => e.exit_code(),
            // A migration journal held by another live process is refused like a reboot journal.
            Error::Migrate(MigrateError::Journal(e)) if e.is_in_use() => ExitCode::BadInput,
            Error::Migrate(MigrateError::Journal(_) | MigrateError::Api { .. }) => ExitCode::Internal,
            _ => ExitCode::BadInput,
        }
    }
}
