//! `fleetboot migrate` and `fleetboot verify`: their arguments, and the `run`s that connect the
//! migration engine ([`crate::engine::migrate`]) to the reporters ([`crate::report::migrate`]).

use std::path::{Path, PathBuf};

use clap::Args;

use crate::commands::args::{Choice, FlowChoice, NetworkTypeChoice, OutputFormat, SdnFeature, choice, choice_name};
use crate::commands::{ClusterArgs, cluster_target, install_interrupts, load_settings, style_for};
use crate::engine::migrate::{MigrationContext, MigrationOptions};
use crate::report::migrate::{MigrationReporter, VerifyOutput, render_verify};
use crate::{Error, ExitCode};
use fleetboot_core::migrate::Flow;

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// Show every step and what it would change; change nothing.
    #[arg(long)]
    pub plan: bool,
    /// Continue the migration in progress after an interruption or a fixed failure; with
    /// --journal-in-cluster, the one its ID names (`--resume ID`, from any machine), or with no
    /// ID the one unfinished in the cluster.
    #[arg(long, value_name = "ID", num_args = 0..=1, default_missing_value = "")]
    pub resume: Option<String>,
    /// Step 11 (remove the migration setting, delete the old network's namespace); only after
    /// the verification passed.
    #[arg(long)]
    pub cleanup: bool,
    /// You took an etcd backup (the document's precondition); required to start.
    #[arg(long)]
    pub etcd_backup_confirmed: bool,
    /// The network type to migrate to: OVNKubernetes, or OpenShiftSDN for a rollback.
    #[arg(long, value_enum, default_value = "OVNKubernetes")]
    pub to: NetworkTypeChoice,
    /// The order of steps: auto (the one the cluster's release requires: seed up to 4.7,
    /// two-phase for 4.8-4.16), or seed / two-phase to override it (with a loud warning: the
    /// operators of a release refuse the other order).
    #[arg(long, value_enum, default_value = "auto")]
    pub flow: FlowChoice,
    /// live: the limited live migration of 4.15.31+/4.16 (one patch; the network operator and
    /// the MCO do the rest, fleetboot watches and proves every node's reboots); offline: the
    /// release's offline flow (the default).
    #[arg(long, value_parser = ["live", "offline"])]
    pub mode: Option<String>,
    /// The network's MTU (OVN-Kubernetes: ovnKubernetesConfig.mtu; rollback: openshiftSDNConfig.mtu).
    #[arg(long)]
    pub mtu: Option<u32>,
    /// The Geneve UDP port (OVN-Kubernetes).
    #[arg(long)]
    pub geneve_port: Option<u32>,
    /// The VXLAN UDP port (rollback to OpenShift SDN: openshiftSDNConfig.vxlanPort).
    #[arg(long)]
    pub vxlan_port: Option<u32>,
    /// Move OVN-Kubernetes' join subnet (default 100.64.0.0/16) off the cluster's networks.
    #[arg(long, value_name = "CIDR")]
    pub v4_internal_subnet: Option<String>,
    /// Move OVN-Kubernetes' transit switch subnet (default 100.88.0.0/16).
    #[arg(long, value_name = "CIDR")]
    pub transit_switch_subnet: Option<String>,
    /// Move OVN-Kubernetes' masquerade subnet (default 169.254.169.0/29).
    #[arg(long, value_name = "CIDR")]
    pub masquerade_subnet: Option<String>,
    /// Hosts that route traffic between their interfaces: route egress through the host
    /// (gatewayConfig.routingViaHost), as OpenShift SDN did.
    #[arg(long)]
    pub routing_via_host: bool,
    /// Hosts that forward IP traffic: keep global IP forwarding (gatewayConfig.ipForwarding: Global).
    #[arg(long)]
    pub ip_forwarding_global: bool,
    /// 4.12+: do not migrate these SDN features (spec.migration.features): egress-ip,
    /// egress-firewall, multicast (repeatable).
    #[arg(long, value_name = "FEATURE", value_enum)]
    pub skip_feature: Vec<SdnFeature>,
    /// How long an operator may take to apply a change (spec.migration, spec.networkType).
    #[arg(long, default_value = "10m", value_parser = super::args::bounded_duration)]
    pub operator_timeout: humantime::Duration,
    /// The smallest MTU of the nodes' interfaces, when known: --mtu must leave 100 bytes.
    #[arg(long, value_name = "MTU")]
    pub node_mtu: Option<u32>,
    /// How steps 7 and 10 reboot the nodes, as `reboot --transport` (auto, ssh, redfish, kube).
    #[arg(long, value_parser = choice::<fleetboot_core::settings::Transport>(fleetboot_core::settings::Transport::NAMES))]
    pub transport: Option<fleetboot_core::settings::Transport>,
    #[command(flatten)]
    pub rungs: super::args::TransportRungArgs,
    /// Step 7 limit; default: every node at once, as the document does.
    #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub reboot_concurrency: Option<usize>,
    /// Step 10: reboot the nodes that hold pods in an error state, then verify again.
    #[arg(long)]
    pub reboot_error_nodes: bool,
    /// The migration's directory [default: STATE_DIR/migrations/RUN].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Warn when the pools have been paused longer than this (certificate rotation waits too).
    #[arg(long, default_value = "1h", value_parser = super::args::bounded_duration)]
    pub paused_warning: humantime::Duration,
    /// Step 6's limit.
    #[arg(long, default_value = "30m", value_parser = super::args::bounded_duration)]
    pub multus_timeout: humantime::Duration,
    /// Step 8's limit for the whole MCO rollout.
    #[arg(long, default_value = "4h", value_parser = super::args::bounded_duration)]
    pub rollout_timeout: humantime::Duration,
    /// Take over the cluster's migration lease from another (live) holder.
    #[arg(long)]
    pub break_lock: bool,
    /// How long the migration's lease lasts unrenewed (renewed every third of it). A migration
    /// that loses it (taken over, or not renewed for half of it) starts no further step.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = super::args::lease_duration)]
    pub lease_duration: humantime::Duration,
    /// Steps 6 and 8 watch the multus DaemonSet and the pools and look again on every change;
    /// this is the longest they go without a look when nothing changes.
    #[arg(long, default_value = "30s", value_parser = super::args::bounded_duration)]
    pub poll_interval: humantime::Duration,
    /// Before the first change, the cluster's health (nodes, pools, operators) must read clean
    /// this many times in a row, --poll-interval apart (Red Hat's Ansible collection waits for
    /// three); 1 reads it once.
    #[arg(long, value_name = "N", default_value = "3", value_parser = clap::builder::RangedU64ValueParser::<u32>::new().range(1..=20))]
    pub stable_checks: u32,
    /// Keep the migration's journal, its side files and its reboot runs' journals in the
    /// cluster (ConfigMaps in kube-system; step 7's run `MIGRATION-ID-reboot`), as `reboot
    /// --journal-in-cluster` does: a resume from any machine continues it. Always on in a pod
    /// (the in-cluster config present), unless --dir names a directory for the journal.
    #[arg(long)]
    pub journal_in_cluster: bool,
    /// With --journal-in-cluster: the migration's ID (its journal and files in the cluster are
    /// named by it); a migration of that ID in the cluster is resumed (or its rollback, once one
    /// took it over), else one starts under it (how `fleetboot job migrate`'s pod resumes after
    /// a restart). Without it, the one unfinished migration in the cluster is found (more than
    /// one: refused, listing them); `--to OpenShiftSDN` rolls it back under `ID-rollback`.
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// auto (live display on a terminal), plain, json (one event per line: the migration's and
    /// its reboot runs') or yaml (the same events, one YAML document each).
    #[arg(long, short = 'o', value_name = "FORMAT", value_parser = choice::<OutputFormat>(OutputFormat::NAMES), default_value = "auto")]
    pub output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The network type the cluster should run.
    #[arg(long, value_enum, default_value = "OVNKubernetes")]
    pub to: NetworkTypeChoice,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// table, or json (the checks as one JSON array on one line).
    #[arg(long, short = 'o', value_name = "FORMAT", value_enum, default_value = "table")]
    pub output: VerifyOutput,
}

/// Whether the migration journals in the cluster: asked, or by itself in a pod (`in_pod`: the
/// in-cluster config is present, [`crate::adapters::kube::in_pod`], as `reboot` decides), where
/// the pod's disk dies with it, unless `--dir` names a directory for the journal. Pure.
fn journals_in_cluster(asked: bool, dir_given: bool, in_pod: bool) -> bool {
    asked || (in_pod && !dir_given)
}

impl MigrateArgs {
    /// The options, `in_pod` telling whether this process runs in a pod.
    fn options(&self, in_pod: bool) -> MigrationOptions {
        MigrationOptions {
            plan: self.plan,
            resume: self.resume.is_some(),
            cleanup: self.cleanup,
            etcd_backup_confirmed: self.etcd_backup_confirmed,
            to: choice_name(self.to),
            flow: match self.flow {
                FlowChoice::Auto => None,
                FlowChoice::Seed => Some(Flow::Seed),
                FlowChoice::TwoPhase => Some(Flow::TwoPhase),
            },
            live: self.mode.as_deref().map(|m| m == "live"),
            mtu: self.mtu,
            geneve_port: self.geneve_port,
            vxlan_port: self.vxlan_port,
            v4_internal_subnet: self.v4_internal_subnet.clone(),
            transit_switch_subnet: self.transit_switch_subnet.clone(),
            masquerade_subnet: self.masquerade_subnet.clone(),
            routing_via_host: self.routing_via_host,
            ip_forwarding_global: self.ip_forwarding_global,
            skip_feature: self.skip_feature.iter().copied().map(choice_name).collect(),
            operator_timeout: self.operator_timeout,
            node_mtu: self.node_mtu,
            reboot_concurrency: self.reboot_concurrency,
            reboot_error_nodes: self.reboot_error_nodes,
            dir: self.dir.clone(),
            paused_warning: self.paused_warning,
            multus_timeout: self.multus_timeout,
            rollout_timeout: self.rollout_timeout,
            break_lock: self.break_lock,
            lease_duration: self.lease_duration.into(),
            poll_interval: self.poll_interval,
            stable_checks: self.stable_checks,
            journal_in_cluster: journals_in_cluster(self.journal_in_cluster, self.dir.is_some(), in_pod),
            run_id: self.run_id.clone().or_else(|| self.resume.clone().filter(|id| !id.is_empty())),
        }
    }
}

/// Flags and config file → what the migration engine takes, as `run` builds it, with the
/// caller's interrupt handler (the in-process tests pass one that installs none).
pub fn migration_from_args(
    args: &MigrateArgs,
    config: Option<&Path>,
    install_interrupts: fn(tokio::sync::watch::Sender<crate::engine::runner::Abort>),
) -> Result<(MigrationOptions, MigrationContext), Error> {
    let in_pod = crate::adapters::kube::in_pod();
    let named = args.run_id.is_some() || args.resume.as_deref().is_some_and(|id| !id.is_empty());
    if named && !journals_in_cluster(args.journal_in_cluster, args.dir.is_some(), in_pod) {
        let reason = "names a migration whose journal is in the cluster: add --journal-in-cluster (not with --dir)".to_owned();
        return Err(crate::adapters::config::ConfigError::BadValue { key: "--run-id / --resume ID", reason }.into());
    }
    if let (Some(a), Some(b)) = (&args.run_id, args.resume.as_deref().filter(|id| !id.is_empty()))
        && a != b
    {
        let reason = format!("--run-id {a} and --resume {b} name two migrations");
        return Err(crate::adapters::config::ConfigError::BadValue { key: "--run-id", reason }.into());
    }
    let mut flags = fleetboot_core::settings::Partial { output: Some(args.output), transport: args.transport, ..args.cluster.partial() };
    args.rungs.apply(&mut flags);
    let settings = load_settings(config, &flags)?;
    Ok((args.options(in_pod), MigrationContext { cluster: cluster_target(&settings), settings, install_interrupts }))
}

pub async fn run(args: MigrateArgs, config: Option<&Path>) -> Result<ExitCode, Error> {
    let (options, context) = migration_from_args(&args, config, install_interrupts)?;
    let mut reporter = MigrationReporter::new(style_for(context.settings.run.output), std::io::stdout(), std::io::stderr());
    crate::engine::migrate::migrate(options, &context, &mut |progress| reporter.report(progress)).await.map_err(Into::into)
}

pub async fn run_verify(args: VerifyArgs, config: Option<&Path>) -> Result<ExitCode, Error> {
    let settings = load_settings(config, &args.cluster.partial())?;
    let context = MigrationContext { cluster: cluster_target(&settings), settings, install_interrupts };
    let results = crate::engine::migrate::verify(&context, &choice_name(args.to)).await?;
    print!("{}", render_verify(&results, args.output));
    Ok(if results.iter().all(|c| c.passed) { ExitCode::Ok } else { ExitCode::HostsFailed })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::commands::{Cli, Command};

    #[test]
    fn the_fixed_choices_reach_the_engine_as_the_cluster_spells_them() {
        let argv = [
            "fleetboot",
            "migrate",
            "--to",
            "OpenShiftSDN",
            "--flow",
            "two-phase",
            "--skip-feature",
            "egress-ip",
            "--skip-feature",
            "multicast",
        ];
        let Command::Migrate(args) = Cli::try_parse_from(argv).unwrap().command else { panic!("migrate") };
        let options = args.options(false);
        assert_eq!((options.to.as_str(), options.flow), ("OpenShiftSDN", Some(Flow::TwoPhase)));
        assert_eq!(options.skip_feature, ["egress-ip", "multicast"]);
        let Command::Migrate(args) = Cli::try_parse_from(["fleetboot", "migrate"]).unwrap().command else { panic!("migrate") };
        assert_eq!((args.options(false).to.as_str(), args.options(false).flow, args.output), ("OVNKubernetes", None, OutputFormat::Auto));
        assert!(Cli::try_parse_from(["fleetboot", "migrate", "--to", "Calico"]).is_err());
        assert!(Cli::try_parse_from(["fleetboot", "migrate", "--reboot-concurrency", "0"]).is_err(), "a limit of 0 reboots nothing");
        let Command::Verify(args) = Cli::try_parse_from(["fleetboot", "verify", "-o", "json"]).unwrap().command else { panic!("verify") };
        assert_eq!((args.to, args.output), (NetworkTypeChoice::OvnKubernetes, VerifyOutput::Json));
    }

    /// In a pod the migration journals in the cluster by itself (its disk dies with it), as
    /// `reboot` does there; `--dir` is the one choice that keeps it on disk.
    #[test]
    fn in_a_pod_the_journal_goes_to_the_cluster_unless_dir_names_a_directory() {
        let parse = |argv: &[&str]| {
            let Command::Migrate(args) = Cli::try_parse_from([&["fleetboot", "migrate"], argv].concat()).unwrap().command else {
                panic!("migrate")
            };
            args
        };
        assert!(parse(&[]).options(true).journal_in_cluster, "in a pod");
        assert!(!parse(&[]).options(false).journal_in_cluster, "on an admin's machine the directory stays the default");
        assert!(!parse(&["--dir", "/data/m"]).options(true).journal_in_cluster, "--dir keeps it on disk, also in a pod");
        assert!(parse(&["--journal-in-cluster"]).options(false).journal_in_cluster);
        assert!(parse(&["--run-id", "m-1"]).options(true).journal_in_cluster);
    }
}
