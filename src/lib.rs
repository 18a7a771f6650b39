//! fleetboot: reboot fleets of bare-metal nodes safely, fast and provably.
//!
//! The pieces: an inventory ([`hosts`]), settings ([`config`]), a pure plan ([`plan`]), the
//! journal and its fold ([`journal`]), a power transport ([`transport`], [`ssh`]), the
//! executor ([`runner`]) that emits [`events`], and the reporters ([`report`]).

pub mod bmc;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod escalation;
pub mod events;
pub mod exec;
pub mod hosts;
pub mod journal;
pub mod known_hosts;
pub mod migrate;
pub mod plan;
pub mod power;
pub mod redfish;
pub mod report;
pub mod runner;
pub mod ssh;
pub mod transport;

/// Process exit codes, documented in README.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// Every host rebooted (or every command succeeded).
    Ok = 0,
    /// fleetboot itself broke.
    Internal = 1,
    /// Bad input or could not start: nothing was touched.
    BadInput = 2,
    /// At least one host failed.
    HostsFailed = 3,
    /// Interrupted or stopped early with no failure: `--resume` finishes the run.
    Incomplete = 4,
}

/// Every error that stops fleetboot before or outside a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Hosts(#[from] hosts::HostsError),
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    #[error(transparent)]
    SshSetup(#[from] ssh::SshSetupError),
    #[error("failed to start the simulated cluster: {0}")]
    Sim(std::io::Error),
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
    #[error("{0}")]
    Selection(String),
    #[error(transparent)]
    Bmc(#[from] bmc::BmcSetupError),
    #[error(transparent)]
    Migrate(#[from] migrate::MigrateError),
}

impl Error {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Journal(journal::JournalError::Write { .. }) | Error::Sim(_) => ExitCode::Internal,
            Error::Migrate(migrate::MigrateError::Journal(_) | migrate::MigrateError::Api(_)) => ExitCode::Internal,
            _ => ExitCode::BadInput,
        }
    }
}

/// A simulation holds one listening socket per node, and fan-outs hold one connection per
/// host: lift the soft open-file limit to the hard one (1024 by default on many systems).
pub fn raise_open_file_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    unsafe {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
