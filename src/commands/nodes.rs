//! `fleetboot nodes`: the cluster's nodes as the document's jsonpath, a table, or JSON.

use std::path::Path;

use clap::{Args, ValueEnum};

use super::args::{ClusterArgs, NodeSelectionArgs};
use super::{cluster_target, load_settings};
use crate::adapters::config::{self, Settings};
use crate::{Error, ExitCode};
use fleetboot_core::hosts::Host;
use fleetboot_core::rbac::Mode;

/// `fleetboot nodes -o`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NodesOutput {
    Table,
    /// Also the full boot ID, version, label count, the BMC and whether it answers.
    Wide,
    /// Stable, documented in README.
    Json,
    /// The migration document's jsonpath output: addresses, space-separated.
    Ips,
    /// The JSON's nodes as YAML.
    Yaml,
    /// `node/NAME`, one a line (as `kubectl get nodes -o name`).
    Name,
}

#[derive(Args, Debug)]
pub struct NodesArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub select: NodeSelectionArgs,
    /// table, wide, json (stable, documented in README), yaml, name or ips (the document's
    /// jsonpath output).
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: NodesOutput,
    /// Accepted as kubectl accepts it (nodes are cluster-scoped), so `kubectl fleetboot nodes
    /// -n NS` reads as kubectl's own commands do.
    #[arg(long, short = 'n', value_name = "NAMESPACE")]
    pub namespace: Option<String>,
}

pub async fn run(args: NodesArgs, config: Option<&Path>) -> Result<ExitCode, Error> {
    let settings = load_settings(config, &args.cluster.partial())?;
    let connection = crate::adapters::kube::ClusterConnection::open(&cluster_target(&settings)).await?;
    let (client, server) = (&connection.client, connection.server());
    // What a listing reads (fleetboot_core::rbac), asked first: a missing permission is named,
    // not met half-way. The BMCs and the API exec of -o wide stay best-effort (warnings).
    let rules = fleetboot_core::rbac::needed(&[Mode::Nodes], &fleetboot_core::rbac::Namespaces::default());
    crate::adapters::kube::access::check(client, &rules, Mode::Nodes).await?;
    let mut nodes =
        crate::adapters::kube::discover(client, server, args.select.label_selector().as_deref(), args.select.address_type.api_name())
            .await?;
    for problem in fleetboot_core::nodes::address_problems(&nodes) {
        eprintln!("warning: {problem}");
    }
    if matches!(args.output, NodesOutput::Wide | NodesOutput::Json | NodesOutput::Yaml) {
        attach_bmcs(&mut nodes, &settings, client, args.output == NodesOutput::Wide).await;
    }
    if args.output == NodesOutput::Wide {
        probe_kube_exec(&mut nodes, &settings, client).await;
    }
    match args.output {
        NodesOutput::Ips => print!("{}", crate::report::nodes::render_ips(&nodes)),
        NodesOutput::Json => println!("{}", serde_json::to_string_pretty(&nodes).expect("serializes")),
        NodesOutput::Yaml => print!("{}", crate::report::yaml::render(&nodes)),
        NodesOutput::Name => print!("{}", crate::report::yaml::names("node", nodes.iter().map(|n| n.name.as_str()))),
        NodesOutput::Wide => print!("{}", crate::report::nodes::render_table(&nodes, true)),
        NodesOutput::Table => print!("{}", crate::report::nodes::render_table(&nodes, false)),
    }
    Ok(ExitCode::Ok)
}

/// Each node's BMC (config `[[bmc]]` or BareMetalHost) and, with `probe`, whether it answers.
/// A listing never fails over BMCs: problems become warnings.
async fn attach_bmcs(nodes: &mut [fleetboot_core::nodes::NodeInfo], settings: &Settings, client: &kube::Client, probe: bool) {
    let hosts: Vec<Host> = nodes
        .iter()
        .map(|n| Host { name: n.name.clone(), address: n.addresses.first().cloned().unwrap_or_default(), port: None })
        .collect();
    let entries: Vec<config::BmcEntry> =
        settings.bmcs.iter().filter(|e| hosts.iter().any(|h| h.name == e.node || h.address == e.node)).cloned().collect();
    let inventory = match crate::adapters::bmc::BmcInventory::build(&settings.redfish, &entries, &hosts, Some((client, nodes))).await {
        Ok(inventory) => inventory,
        Err(e) => {
            eprintln!("warning: {e}");
            return;
        }
    };
    inventory.warnings(None).iter().for_each(|warning| eprintln!("WARNING: {warning}"));
    let power = crate::adapters::bmc::RedfishPower::new(inventory, &settings.redfish);
    for node in nodes.iter_mut() {
        node.bmc = power.url_of(&node.name).map(str::to_owned);
    }
    if probe {
        use futures::StreamExt;
        let statuses: Vec<(usize, String)> = futures::stream::iter(nodes.iter().enumerate().filter(|(_, n)| n.bmc.is_some()))
            .map(|(i, n)| {
                let power = &power;
                async move {
                    let status = match power.probe(&n.name).await {
                        Ok(()) => "answers".to_owned(),
                        Err(e) => format!("no: {}", e.to_string().split(": ").last().unwrap_or_default()),
                    };
                    (i, status)
                }
            })
            .buffer_unordered(32)
            .collect()
            .await;
        for (i, status) in statuses {
            nodes[i].bmc_status = Some(status);
        }
    }
}

/// Whether each node's boot ID reads through the cluster API's exec (the `kube` transport).
async fn probe_kube_exec(nodes: &mut [fleetboot_core::nodes::NodeInfo], settings: &Settings, client: &kube::Client) {
    use fleetboot_core::transport::PowerTransport;
    use futures::StreamExt;
    let kube = crate::adapters::kube::exec::KubeTransport::new(client.clone(), settings.run.clone(), settings.run.ssh.command_timeout);
    let answers: Vec<(usize, String)> = futures::stream::iter(nodes.iter().enumerate())
        .map(|(i, n)| {
            let (kube, host) =
                (&kube, Host { name: n.name.clone(), address: n.addresses.first().cloned().unwrap_or_default(), port: None });
            async move {
                match kube.read_boot_id(&host).await {
                    Ok(_) => (i, "answers".to_owned()),
                    Err(e) => (i, format!("no: {}", e.to_string().rsplit(": ").next().unwrap_or_default())),
                }
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    for (i, answer) in answers {
        nodes[i].kube_exec = Some(answer);
    }
}
