//! fleetboot's integration tests, in one binary (one link of russh and kube instead of twelve).
//! Each module starts the real parts it needs (OpenSSH sshd, `fleetboot sim`, sushy-emulator)
//! and stops them by PID, also when a test fails.

mod bmc;
mod clients;
mod common;
mod demo;
mod exec;
mod input;
mod migrate;
mod migrate_versions;
mod netns;
mod nodes;
mod reboot;
mod sim_kube;
mod sim_kubectl;
mod ssh_auth;
mod sushy;
