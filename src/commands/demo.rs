//! `fleetboot sim` (serve a simulated cluster) and `fleetboot demo` (a simulated cluster
//! in-process, every node rebooted through fleetboot's own command line, then checked
//! through the cluster's API).

use std::time::Duration;

use serde_json::Value;

use clap::Args;

use super::args::{Choice, OutputFormat, SimTimingArgs, choice};
use crate::{Error, ExitCode};
use fleetboot_sim::node::Timings;
use fleetboot_sim::store::Filter;
use fleetboot_sim::{Cluster, types};

#[derive(Args, Debug)]
pub struct DemoArgs {
    #[command(flatten)]
    pub sim: SimTimingArgs,
    /// Only reboot every node (standalone mode over SSH), instead of the whole migration.
    #[arg(long)]
    pub reboot_only: bool,
    /// Nodes rebooting at once (--reboot-only).
    #[arg(long, default_value_t = 3)]
    pub concurrency: usize,
    /// Every node answers SSH (by default two workers do not: one goes through the cluster
    /// API's exec, the other, whose machine-config daemon pod is gone too, through its BMC).
    #[arg(long)]
    pub all_ssh: bool,
    /// auto (live display on a terminal), plain, json or yaml.
    #[arg(long, short = 'o', value_parser = choice::<OutputFormat>(OutputFormat::NAMES), default_value = "auto")]
    pub output: OutputFormat,
}

/// The node's machine-config daemon pod deleted (as a node whose daemon is not running shows
/// it): the cluster API's exec has nothing to reach it through.
fn remove_daemon_pod(cluster: &fleetboot_sim::cluster::Cluster, node: &str) {
    let pods = types::find("", "v1", "pods").expect("pods");
    let namespace = "openshift-machine-config-operator";
    let mut store = cluster.api.store.lock().unwrap();
    let filter = fleetboot_sim::store::Filter { namespace: Some(namespace.to_owned()), ..Default::default() };
    let names: Vec<String> = store
        .list(pods, &filter, None, None)
        .items
        .iter()
        .filter(|p| p["metadata"]["labels"]["k8s-app"] == "machine-config-daemon" && p["spec"]["nodeName"] == node)
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    for name in names {
        let _ = store.delete(pods, Some(namespace), &name);
    }
}

/// Realistic enough to rehearse with, short enough to watch.
pub(crate) const SIM_TIMINGS: Timings = Timings {
    reboot_delay: Duration::from_secs(10),
    boot_time: Duration::from_secs(20),
    notready_after: Duration::from_secs(5),
    kubelet_ready_after: Duration::from_secs(3),
};

const DEMO_TIMINGS: Timings = Timings {
    reboot_delay: Duration::from_secs(3),
    boot_time: Duration::from_secs(5),
    notready_after: Duration::from_secs(2),
    kubelet_ready_after: Duration::from_secs(1),
};

pub(crate) async fn interrupted() {
    super::Interrupts::new().next().await;
}

fn nodes_from_api(cluster: &Cluster) -> Vec<Value> {
    let nodes = types::find("", "v1", "nodes").expect("nodes");
    cluster.api.store.lock().unwrap().list(nodes, &Filter::default(), None, None).items.iter().map(|n| (**n).clone()).collect()
}

pub async fn run(args: DemoArgs) -> Result<ExitCode, Error> {
    let cluster = Cluster::start(args.sim.options(DEMO_TIMINGS)).await.map_err(Error::Sim)?;
    // A fresh directory nobody else can read or have prepared (it holds the simulation's SSH
    // key and BMC password): a random name, created here, or the demo stops.
    let random = std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), std::process::id());
    let dir = std::env::temp_dir().join(format!("fleetboot-demo-{}-{random:016x}", std::process::id()));
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700).create(&dir).map_err(Error::Sim)?;
    let config = cluster.write_files(&dir).map_err(Error::Sim)?;
    let before = nodes_from_api(&cluster);
    println!(
        "simulated cluster: {} masters, {} workers · API http://{} · files in {}",
        args.sim.masters,
        args.sim.workers,
        cluster.api_addr,
        dir.display()
    );
    let shown_config = config.display().to_string();
    let show = |argv: &[String]| println!("\n$ fleetboot --config {shown_config} {}\n", argv[1..].join(" "));
    let output = args.output.to_string();
    let code = if args.reboot_only {
        // The config's [[hosts]] are the cluster's nodes: fleetboot maps them onto their nodes
        // and keeps the cluster's order — workers N at a time by pool, then the control plane
        // one at a time, last.
        let n = args.concurrency.to_string();
        let argv: Vec<String> =
            ["fleetboot", "reboot", "--concurrency", &n, "--group-concurrency", &n, "--poll-interval", "500ms", "--output", &output]
                .iter()
                .map(|s| s.to_string())
                .collect();
        show(&argv);
        crate::commands::run_reboot_argv(&argv, Some(&config)).await?
    } else {
        // The cluster an admin would migrate: workers roll three at a time, and one worker's
        // SSH is down, so its reboot goes through its BMC.
        let pools = types::find("machineconfiguration.openshift.io", "v1", "machineconfigpools").expect("pools");
        let _ = cluster.api.store.lock().unwrap().patch(
            pools,
            None,
            "worker",
            fleetboot_sim::store::PatchType::Merge,
            &serde_json::json!({"spec": {"maxUnavailable": 3}}),
            None,
        );
        if !args.all_ssh {
            // `--transport auto`'s ladder, node by node: SSH, then the cluster API's exec into the
            // node's machine-config daemon pod, then the BMC.
            let workers: Vec<_> = cluster.nodes.iter().rev().filter(|n| n.name.starts_with("worker")).take(2).collect();
            for (i, node) in workers.iter().enumerate() {
                node.faults.refuse_ssh.store(true, std::sync::atomic::Ordering::SeqCst);
                if i == 0 {
                    remove_daemon_pod(&cluster, &node.name);
                    // Nor may fleetboot exec into a debug pod (the fallback for a node without
                    // its daemon pod): only the BMC is left.
                    let forbid = serde_json::json!({"namespace": crate::adapters::kube::debug_pod::DEBUG_NAMESPACE});
                    let _ = fleetboot_sim::exec::control_forbid(&cluster.api.exec, &forbid);
                    println!(
                        "{} refuses SSH and its machine-config daemon pod is gone (and exec into a debug pod is forbidden): fleetboot falls back to its BMC (Redfish, HTTPS)",
                        node.name
                    );
                } else {
                    println!(
                        "{} refuses SSH: fleetboot reaches it through the cluster API (exec into its machine-config daemon pod)",
                        node.name
                    );
                }
            }
        }
        let mut code = ExitCode::Ok;
        for extra in [&["--etcd-backup-confirmed"][..], &["--cleanup"][..]] {
            let mut argv: Vec<String> =
                vec!["fleetboot".into(), "migrate".into(), "--poll-interval".into(), "500ms".into(), "--output".into(), output.clone()];
            argv.extend(extra.iter().map(|s| s.to_string()));
            show(&argv);
            code = crate::commands::run_migrate_argv(&argv, Some(&config)).await?;
            if code != ExitCode::Ok {
                break;
            }
        }
        code
    };

    // The proof a person would check with kubectl: every node Ready with a new boot ID.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut after = nodes_from_api(&cluster);
    while !after.iter().all(fleetboot_core::nodes::node_is_ready) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        after = nodes_from_api(&cluster);
    }
    let rows: Vec<Vec<String>> = after
        .iter()
        .map(|node| {
            let name = node["metadata"]["name"].as_str().unwrap_or_default();
            let old = before
                .iter()
                .find(|b| b["metadata"]["name"] == name)
                .and_then(|b| b.pointer("/status/nodeInfo/bootID"))
                .and_then(Value::as_str)
                .unwrap_or("-");
            let new = node.pointer("/status/nodeInfo/bootID").and_then(Value::as_str).unwrap_or("-");
            vec![
                name.to_owned(),
                fleetboot_sim::table::node_roles(node),
                format!("{} → {}", fleetboot_core::table::short_id(old), fleetboot_core::table::short_id(new)),
                if old != new { "changed" } else { "SAME" }.to_owned(),
                if fleetboot_core::nodes::node_is_ready(node) { "Ready" } else { "NotReady" }.to_owned(),
            ]
        })
        .collect();
    if !matches!(args.output, OutputFormat::Json | OutputFormat::Yaml) {
        let network = types::find("config.openshift.io", "v1", "networks").expect("networks");
        let running = cluster
            .api
            .store
            .lock()
            .unwrap()
            .get(network, None, "cluster")
            .ok()
            .and_then(|n| n.pointer("/status/networkType").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default();
        println!("\nwhat the cluster's API says now: network type {running}; each node (status.nodeInfo.bootID, Ready):");
        print!("{}", fleetboot_core::table::table(&["NODE", "ROLES", "BOOT ID (BEFORE → AFTER)", "BOOT ID", "READY"], &rows));
    }
    cluster.shutdown();
    if args.reboot_only {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!(
            "\nthe migration's journal, backup and report (report.md, timeline.svg) stay in {}",
            dir.join("state/migrations").display()
        );
    }
    Ok(code)
}
