//! fleetboot's integration tests, in one binary (one link of russh and kube instead of twelve).
//! Each module starts the real parts it needs (OpenSSH sshd, `fleetboot sim`, sushy-emulator)
//! and stops them by PID, also when a test fails.

mod batch;
mod batch_cluster;
mod bmc;
mod bmh_match;
mod clients;
mod clusters;
mod common;
mod demo;
mod exec;
mod hostlists;
mod input;
mod journal_lock;
mod migrate;
mod migrate_features;
mod migrate_live;
mod migrate_live_hosted;
mod migrate_live_kill;
mod migrate_live_rollback;
mod migrate_options;
mod migrate_output;
mod migrate_prerequisites;
mod migrate_rollback;
mod migrate_versions;
mod netns;
mod nodes;
mod reboot;
mod redfish_links;
mod resume;
mod safety_input;
mod safety_lease;
mod safety_limits;
mod safety_resume;
mod settings_env;
mod sim_conformance;
mod sim_drain_budgets;
mod sim_fleetboot_drain;
mod sim_kube;
mod sim_kubectl;
mod sim_observed;
mod sim_procedures;
mod sim_traffic;
mod sim_workloads;
mod ssh_auth;
mod sushy;
