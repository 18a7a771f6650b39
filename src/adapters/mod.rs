//! Adapters: everything that talks to the world outside the process. They depend on the core
//! alone, never on the engine, the reporters or the commands.

pub mod alerts;
pub mod bmc;
pub mod config;
pub mod hostfile;
pub mod journal;
pub mod known_hosts;
pub mod kube;
pub mod metrics;
pub mod migration_journal;
pub mod notify;
pub mod redfish;
pub mod reports;
pub mod ssh;
pub mod system;
pub mod transports;
pub mod tz;
