//! `fleetboot sim`: a simulated OpenShift cluster on loopback until interrupted.

use std::path::PathBuf;

use clap::Args;
use fleetboot_sim::Cluster;

use super::args::SimTimingArgs;
use super::demo::{SIM_TIMINGS, interrupted};
use crate::{Error, ExitCode};

#[derive(Args, Debug)]
pub struct SimArgs {
    #[command(flatten)]
    pub sim: SimTimingArgs,
    /// Where to write kubeconfig, id_ed25519, known_hosts, hosts.txt and fleetboot.toml.
    #[arg(long, value_name = "DIR", default_value = "./sim")]
    pub dir: PathBuf,
    /// Enforce RBAC: a bearer token per user in the kubeconfig (context fleetboot-sim: admin,
    /// in system:masters; context fleetboot: only what Roles and bindings applied with kubectl
    /// grant it), 403 for what they do not.
    #[arg(long)]
    pub rbac: bool,
}

pub async fn run(args: SimArgs) -> Result<ExitCode, Error> {
    let options = fleetboot_sim::SimOptions { rbac: args.rbac, ..args.sim.options(SIM_TIMINGS) };
    let cluster = Cluster::start(options).await.map_err(Error::Sim)?;
    let dir = std::path::absolute(&args.dir).unwrap_or(args.dir.clone());
    let config = cluster.write_files(&dir).map_err(Error::Sim)?;
    let first = cluster.nodes.first().map(|n| n.addr.ip().to_string()).unwrap_or_default();
    println!(
        "fleetboot sim: ready: API {} · {} nodes from {first} on SSH port {} · config {}",
        cluster.api_url(),
        cluster.nodes.len(),
        cluster.ssh_port,
        config.display()
    );
    println!("  kubectl --kubeconfig {} get nodes", dir.join("kubeconfig").display());
    println!("  fleetboot --config {} reboot --dry-run", config.display());
    if args.rbac {
        println!("  RBAC enforced: --context fleetboot is a user with only what is bound to it (fleetboot rbac MODE | kubectl apply -f -)");
    }
    interrupted().await;
    cluster.shutdown();
    Ok(ExitCode::Ok)
}
