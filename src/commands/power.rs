//! `fleetboot power status|restart|on|off`: direct BMC operations for admins, on nodes from
//! the inventory (config hosts, cluster nodes) or on one BMC named on the command line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::adapters::bmc::{BmcInventory, RedfishPower};
use crate::adapters::config::Settings;
use crate::adapters::redfish::{BmcTarget, BmcTls, RestartKind};
use crate::engine::power::PowerOperation;
use crate::report::power::PowerOutput;
use crate::{Error, ExitCode, SelectionError};
use fleetboot_core::hosts::Host;

#[derive(Args, Debug)]
pub struct PowerArgs {
    #[command(subcommand)]
    pub action: PowerAction,
}

#[derive(Subcommand, Debug)]
pub enum PowerAction {
    /// PowerState and the allowed reset types of each node's system.
    Status(PowerTargets),
    /// Restart: GracefulRestart where allowed (--force: ForceRestart).
    Restart {
        #[command(flatten)]
        targets: PowerTargets,
        /// ForceRestart instead of an orderly restart.
        #[arg(long)]
        force: bool,
        /// Switch on a system that is powered off. Without it such a system is left off
        /// (someone switched it off) and reported as "powered off", exit 3.
        #[arg(long)]
        yes_power_on: bool,
    },
    /// Power on, and wait until the system reports On.
    On {
        #[command(flatten)]
        targets: PowerTargets,
        /// Required: powering on nodes is done on purpose.
        #[arg(long)]
        yes_power_on: bool,
    },
    /// Power off (ForceOff; --graceful: GracefulShutdown), and wait until Off.
    Off {
        #[command(flatten)]
        targets: PowerTargets,
        /// Required: powering off nodes is done on purpose.
        #[arg(long)]
        yes_power_off: bool,
        #[arg(long)]
        graceful: bool,
    },
}

#[derive(Args, Debug)]
pub struct PowerTargets {
    /// Node names (from the config's hosts or the cluster).
    #[arg(value_name = "NODE")]
    pub nodes: Vec<String>,
    #[command(flatten, next_help_heading = "Cluster")]
    pub cluster: crate::commands::ClusterArgs,
    /// A BMC in no inventory: https://host[:port][/redfish/v1/Systems/ID].
    #[arg(long, value_name = "URL", requires_all = ["bmc_user", "bmc_password_file"], help_heading = "BMC")]
    pub bmc: Option<String>,
    #[arg(long, value_name = "USER", help_heading = "BMC")]
    pub bmc_user: Option<String>,
    /// A file holding the BMC password (mode 600).
    #[arg(long, value_name = "FILE", help_heading = "BMC")]
    pub bmc_password_file: Option<PathBuf>,
    /// The CA bundle that signed the BMC's certificate.
    #[arg(long, value_name = "FILE", conflicts_with = "bmc_insecure", help_heading = "BMC")]
    pub bmc_ca: Option<PathBuf>,
    /// Do not verify the BMC's certificate (anyone on the path can read the password).
    #[arg(long, help_heading = "BMC")]
    pub bmc_insecure: bool,
    #[arg(long, short = 'o', value_enum, default_value = "table", help_heading = "Output")]
    pub output: PowerOutput,
}

impl PowerAction {
    fn targets(&self) -> &PowerTargets {
        match self {
            PowerAction::Status(t) => t,
            PowerAction::Restart { targets, .. } | PowerAction::On { targets, .. } | PowerAction::Off { targets, .. } => targets,
        }
    }
}

/// The BMCs to act on: one from the flags, or the named nodes' from the inventory.
async fn power_inventory(targets: &PowerTargets, settings: &Settings) -> Result<(RedfishPower, Vec<String>), Error> {
    if let Some(url) = &targets.bmc {
        let password_file = targets.bmc_password_file.as_ref().expect("clap requires it");
        let password = crate::adapters::bmc::read_password_file(password_file)
            .map_err(|source| crate::adapters::bmc::BmcSetupError::Credentials { node: url.clone(), source })?;
        let tls = if targets.bmc_insecure { BmcTls::Insecure } else { BmcTls::Verify { ca_file: targets.bmc_ca.clone() } };
        let target =
            BmcTarget { node: url.clone(), url: url.clone(), username: targets.bmc_user.clone().unwrap_or_default(), password, tls };
        let mut inventory = BmcInventory::default();
        inventory.targets.insert(url.clone(), target);
        inventory.warnings(None).iter().for_each(|warning| eprintln!("WARNING: {warning}"));
        return Ok((RedfishPower::new(inventory, &settings.redfish), vec![url.clone()]));
    }
    if targets.nodes.is_empty() {
        return Err(SelectionError::NoPowerTargets.into());
    }
    let mut hosts: Vec<Host> = settings.hosts.clone().unwrap_or_default();
    let mut cluster_nodes = Vec::new();
    let client = if crate::commands::cluster_configured(settings) {
        let connection = crate::adapters::kube::ClusterConnection::open(&crate::commands::cluster_target(settings)).await?;
        // The BareMetalHosts, their Secrets and the nodes they match (fleetboot_core::rbac), asked first.
        let namespaces = fleetboot_core::rbac::Namespaces { bmh: settings.redfish.bmh_namespaces.clone(), ..Default::default() };
        let rules = fleetboot_core::rbac::needed(&[fleetboot_core::rbac::Mode::Power], &namespaces);
        crate::adapters::kube::access::check(&connection.client, &rules, fleetboot_core::rbac::Mode::Power).await?;
        cluster_nodes = crate::adapters::kube::discover(&connection.client, connection.server(), None, "InternalIP").await?;
        for node in &cluster_nodes {
            if !hosts.iter().any(|h| h.name == node.name) {
                hosts.push(Host { name: node.name.clone(), address: node.addresses.first().cloned().unwrap_or_default(), port: None });
            }
        }
        Some(connection.client)
    } else {
        None
    };
    let unknown: Vec<String> = targets.nodes.iter().filter(|n| !hosts.iter().any(|h| &h.name == *n)).cloned().collect();
    if !unknown.is_empty() {
        return Err(SelectionError::UnknownNodes { names: unknown, place: "the config's hosts or the cluster" }.into());
    }
    let inventory =
        BmcInventory::build(&settings.redfish, &settings.bmcs, &hosts, client.as_ref().map(|c| (c, cluster_nodes.as_slice()))).await?;
    // Said before a refusal too: why a node has no BMC is among them.
    inventory.warnings(Some(&targets.nodes)).iter().for_each(|warning| eprintln!("WARNING: {warning}"));
    let missing: Vec<String> = targets.nodes.iter().filter(|n| !inventory.targets.contains_key(*n)).cloned().collect();
    if !missing.is_empty() {
        let hint = " (add [[bmc]] entries, or BareMetalHosts in the cluster)";
        return Err(SelectionError::NoBmc { why: "power", nodes: missing, hint }.into());
    }
    Ok((RedfishPower::new(inventory, &settings.redfish), targets.nodes.clone()))
}

pub async fn run(args: PowerArgs, config: Option<&Path>) -> Result<ExitCode, Error> {
    let targets = args.action.targets();
    let settings = crate::commands::load_settings(config, &targets.cluster.partial())?;
    match &args.action {
        PowerAction::On { yes_power_on: false, .. } => {
            return Err(SelectionError::NotConfirmed { action: "power on", flag: "--yes-power-on", why: "" }.into());
        }
        PowerAction::Off { yes_power_off: false, .. } => {
            return Err(SelectionError::NotConfirmed {
                action: "power off",
                flag: "--yes-power-off",
                why: ": the nodes' workloads stop at once",
            }
            .into());
        }
        _ => {}
    }
    if targets.bmc_insecure {
        eprintln!("WARNING: --bmc-insecure: the BMC's certificate is not verified; anyone on the path can read its password");
    }
    let (power, nodes) = power_inventory(targets, &settings).await?;
    let operation = match &args.action {
        PowerAction::Status(_) => PowerOperation::Status,
        PowerAction::Restart { force, yes_power_on, .. } => {
            PowerOperation::Restart { kind: if *force { RestartKind::Force } else { RestartKind::Graceful }, power_on: *yes_power_on }
        }
        PowerAction::On { .. } => PowerOperation::On,
        PowerAction::Off { graceful, .. } => PowerOperation::Off { graceful: *graceful },
    };
    let mut work = Box::pin(crate::engine::power::operate(&power, &nodes, operation));
    // Ctrl-C or SIGTERM, as for every command (a SIGTERM used to end it without closing the
    // BMC sessions).
    let mut interrupts = super::Interrupts::new();
    let finished = tokio::select! {
        results = &mut work => Some(results),
        () = interrupts.next() => None,
    };
    let Some(results) = finished else {
        // Dropping the operations ends them; their BMC sessions are deleted before exiting.
        drop(work);
        eprintln!("interrupted: closing the BMC sessions");
        crate::adapters::redfish::finish_cleanups(Duration::from_secs(5)).await;
        return Ok(ExitCode::Incomplete);
    };
    print!("{}", crate::report::power::render(&results, targets.output));
    Ok(if results.iter().any(|r| r.error.is_some()) { ExitCode::HostsFailed } else { ExitCode::Ok })
}
