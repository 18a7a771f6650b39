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

/// Every error that stops fleetboot before or outside a run. What a run refuses or fails with
/// is the engine's ([`engine::error::RunError`], [`engine::migrate::MigrateError`]); the
/// commands' own setup errors (a config file, a host file, the cluster, ...) are the run's kinds
/// too, so they go into `Run` (the `From`s below) rather than into twins of its variants.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to start the simulated cluster: {0}")]
    Sim(std::io::Error),
    #[error(transparent)]
    Run(#[from] engine::error::RunError),
    #[error(transparent)]
    Migrate(#[from] engine::migrate::MigrateError),
    #[error(transparent)]
    Toolbox(#[from] commands::toolbox::ToolboxError),
    #[error(transparent)]
    Access(#[from] adapters::kube::access::AccessError),
}

macro_rules! into_run {
    ($($source:ty),+ $(,)?) => {
        $(impl From<$source> for Error {
            fn from(e: $source) -> Error {
                Error::Run(e.into())
            }
        })+
    };
}

into_run!(
    adapters::config::ConfigError,
    fleetboot_core::hosts::HostsError,
    fleetboot_core::journal::JournalError,
    adapters::ssh::SshSetupError,
    adapters::kube::ClusterError,
    SelectionError,
    adapters::bmc::BmcSetupError,
);

pub use engine::error::{NameNotAddress, SelectionError};

impl Error {
    pub fn exit_code(&self) -> ExitCode {
        use engine::migrate::MigrateError;
        match self {
            Error::Sim(_) => ExitCode::Internal,
            Error::Run(e) => e.exit_code(),
            // A migration journal held by another live process is refused like a reboot journal.
            Error::Migrate(MigrateError::Journal(e)) if e.is_in_use() => ExitCode::BadInput,
            Error::Migrate(MigrateError::Journal(_) | MigrateError::Api { .. }) => ExitCode::Internal,
            _ => ExitCode::BadInput,
        }
    }
}
