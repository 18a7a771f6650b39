//! `fleetboot repair`: puts back what a journal says fleetboot changed (its cordons, its lease,
//! the pools a migration paused) without rebooting anything.

use std::path::{Path, PathBuf};

use clap::Args;

use super::args::ClusterArgs;
use super::{cluster_target, load_settings};
use crate::adapters::config::Settings;
use crate::{Error, ExitCode};

#[derive(Args, Debug)]
pub struct RepairArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// The journal of the run to repair: a reboot run's, or a migration's `migration.jsonl`
    /// [default: the newest one in the state directory].
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Say what would be put back; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Where the run took its lease (`reboot --lease-namespace`); ignored for a migration's
    /// journal: its leases are in kube-system.
    #[arg(long, value_name = "NAMESPACE", default_value = "kube-system")]
    pub lease_namespace: String,
    /// plain, json or yaml (the JSON's value as YAML).
    #[arg(long, short = 'o', default_value = "plain", value_parser = ["plain", "json", "yaml"])]
    pub output: String,
}

pub async fn run(args: RepairArgs, config: Option<&Path>) -> Result<ExitCode, Error> {
    let settings = load_settings(config, &args.cluster.partial())?;
    let journal = match &args.journal {
        Some(path) => path.clone(),
        None => newest_journal(&settings).ok_or(crate::SelectionError::NoJournal { dir: settings.state_dir() })?,
    };
    let target = cluster_target(&settings);
    check_access(&journal, &target, &args.lease_namespace).await?;
    let report = crate::engine::repair::repair(&journal, &target, args.dry_run, &args.lease_namespace).await?;
    let text = match args.output.as_str() {
        "json" => crate::report::repair::render_json(&report),
        "yaml" => crate::report::yaml::render(&report),
        _ => crate::report::repair::render_plain(&report),
    };
    print!("{text}");
    Ok(report.exit_code())
}

/// What the repair of this journal needs (fleetboot_core::rbac), asked before anything is
/// touched, also for `--dry-run` (which reads what the repair would change). A journal of no
/// cluster run is left to the repair to refuse.
async fn check_access(journal: &Path, target: &crate::adapters::kube::ClusterTarget, lease_namespace: &str) -> Result<(), Error> {
    let migration = journal.file_name().is_some_and(|n| n == "migration.jsonl");
    if !migration {
        let start = crate::adapters::journal::read_start(journal)?;
        if !start.api_proof && start.cluster.is_none() {
            return Ok(());
        }
    }
    let connection = crate::adapters::kube::ClusterConnection::open(target).await?;
    let rules = fleetboot_core::rbac::repair_rules(migration, lease_namespace);
    crate::adapters::kube::access::check(&connection.client, &rules, fleetboot_core::rbac::Mode::Repair).await?;
    Ok(())
}

/// The newest reboot journal or migration journal under the state directory.
fn newest_journal(settings: &Settings) -> Option<PathBuf> {
    let dir = &settings.state_dir();
    let reboots = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("reboot-") && n.ends_with(".jsonl")));
    let migrations = std::fs::read_dir(dir.join("migrations"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("migration.jsonl"))
        .filter(|p| p.is_file());
    reboots.chain(migrations).max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
}
