//! The command line: one module per subcommand, each with its clap arguments and its `run`;
//! the argument groups they share in [`args`]. The helpers here turn flags and the config file
//! into settings and connect the reporters; the work itself is the engine's.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use tokio::sync::watch;

use crate::adapters::config::{self, ConfigFile, OutputFormat, Settings};
use crate::engine::runner::Abort;
use crate::report::Style;
use crate::{Error, ExitCode};
use fleetboot_core::hosts::{self, Host};
use fleetboot_core::settings::{Origin, Partial, SettingsError, env_var};

pub mod args;
pub mod args_batch;
pub mod demo;
pub mod exec;
pub mod job;
pub mod migrate;
pub mod nodes;
pub mod power;
pub mod rbac;
pub mod reboot;
pub mod repair;
pub mod sim;
pub mod toolbox;

pub use args::{ClusterArgs, HostArgs};

#[derive(Parser, Debug)]
#[command(name = "fleetboot", version, about = "Reboot fleets of bare-metal nodes safely, fast and provably")]
// A repeated single-value flag takes its last value, as ssh -o does.
#[command(args_override_self = true, after_help = ENVIRONMENT_HELP)]
pub struct Cli {
    /// A TOML config file (see config/fleetboot.example.toml). Flags and FLEETBOOT_* variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// `--help`'s list of the `FLEETBOOT_*` variables (core's `settings::KEYS`; a unit test
/// keeps the two in step).
pub const ENVIRONMENT_HELP: &str = "\
Environment (below the flags, above the config file; a bad value is refused naming the variable):
  FLEETBOOT_CONCURRENCY        --concurrency
  FLEETBOOT_GROUP_CONCURRENCY  --group-concurrency
  FLEETBOOT_MAX_FAILURES       --max-failures
  FLEETBOOT_TIMEOUT            --reboot-timeout
  FLEETBOOT_POLL_INTERVAL      --poll-interval
  FLEETBOOT_CONNECT_TIMEOUT    --connect-timeout
  FLEETBOOT_TRANSPORT          --transport
  FLEETBOOT_DEBUG_IMAGE        --debug-image
  FLEETBOOT_HOST_KEY_POLICY    --host-key-policy
  FLEETBOOT_OUTPUT             --output
  FLEETBOOT_CONTEXT            --context
  FLEETBOOT_JOURNAL_LIVENESS   [cluster] journal_liveness (the run Lease's duration)
  FLEETBOOT_WINDOW             --window (several separated by ;)
  FLEETBOOT_WINDOW_EXIT        --window-exit (true or false)
  FLEETBOOT_BLOCK_ON_PODS      --block-on-pods
  FLEETBOOT_HEALTHY_CHECKS     --healthy-checks
  FLEETBOOT_HEALTHY_INTERVAL   --healthy-interval
  FLEETBOOT_SOAK               --soak
  FLEETBOOT_DRAIN_ESCALATION   --drain-escalation
  FLEETBOOT_DRAIN_POD_SELECTOR --drain-pod-selector";

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Reboot every host, proving each reboot by a changed boot ID.
    Reboot(Box<reboot::RebootArgs>),
    /// Run one command on every host and fold identical outputs (like pdsh/clush).
    Exec(exec::ExecArgs),
    /// List the cluster's nodes: roles, address, readiness, boot ID, MachineConfigPool.
    Nodes(nodes::NodesArgs),
    /// Serve a simulated OpenShift cluster on loopback until interrupted.
    Sim(sim::SimArgs),
    /// Start a simulated cluster in-process and reboot every node of it, live.
    Demo(demo::DemoArgs),
    /// Power operations through the nodes' BMCs (Redfish): status, restart, on, off.
    Power(power::PowerArgs),
    /// The OpenShift SDN → OVN-Kubernetes migration, steps 0-11, resumable.
    Migrate(migrate::MigrateArgs),
    /// The migration's checks (steps 9-10) at any time; the exit code is the verdict.
    Verify(migrate::VerifyArgs),
    /// Put back what a journal says fleetboot changed (its cordons, its lease, paused pools); reboots nothing.
    Repair(repair::RepairArgs),
    /// Print a shell completion script: bash, zsh or fish.
    Completions(toolbox::CompletionsArgs),
    /// Write one man page per command into DIR.
    Man(toolbox::ManArgs),
    /// Make kubectl-fleetboot and oc-fleetboot in DIR (`kubectl fleetboot nodes`).
    InstallPlugin(toolbox::InstallPluginArgs),
    /// The Kubernetes roles and bindings a mode needs (`-o yaml | kubectl apply -f -`).
    Rbac(rbac::RbacArgs),
    /// Write a run's or a migration's report (HTML, Markdown, SVG timeline) from its journal.
    Report(toolbox::ReportArgs),
    /// fleetboot as a Kubernetes Job on the cluster it reboots (`-o yaml | kubectl apply -f -`).
    Job(job::JobArgs),
}

/// The settings of one command, decided once: flags > `FLEETBOOT_*` environment > config file >
/// embedded defaults. A bad value is refused naming its flag, variable or file key, before
/// anything is touched.
pub(crate) fn load_settings(config: Option<&Path>, flags: &Partial) -> Result<Settings, Error> {
    let file = config.map(ConfigFile::read).transpose()?;
    let env = environment_layer()?;
    Ok(config::resolve(file, &env, flags, crate::adapters::system::home_dir().as_deref())?)
}

/// The `FLEETBOOT_*` variables of this process.
fn environment_layer() -> Result<Partial, config::ConfigError> {
    environment_layer_of(std::env::vars_os())
}

/// The settings' layer of these variables: others ignored, a `FLEETBOOT_*` value that is not
/// text refused naming its variable, as a bad value is.
fn environment_layer_of(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Result<Partial, config::ConfigError> {
    let mut text = Vec::new();
    for (name, value) in vars {
        let Some(name) = name.to_str().map(str::to_owned) else { continue };
        match (value.into_string(), fleetboot_core::settings::keys::env_keys().find(|key| env_var(key) == name)) {
            (Ok(value), _) => text.push((name, value)),
            (Err(_), Some(key)) => {
                let reason = "not valid UTF-8".to_owned();
                return Err(SettingsError { origin: Origin::Environment, key: key.to_owned(), reason }.into());
            }
            (Err(_), None) => {}
        }
    }
    Ok(Partial::from_env(text.iter().map(|(name, value)| (name.as_str(), value.as_str())))?)
}

/// Hosts from flags when any are given, else from the config file.
pub(crate) fn inventory(args: &HostArgs, settings: &Settings) -> Result<Vec<Host>, Error> {
    Ok(inventory_with_origins(args, settings)?.into_iter().map(|(host, _)| host).collect())
}

/// [`inventory`], each host with where it was listed (`file:line`, `--host …`, the config).
pub(crate) fn inventory_with_origins(args: &HostArgs, settings: &Settings) -> Result<Vec<(Host, String)>, Error> {
    let mut sources = Vec::new();
    for path in &args.hosts_files {
        sources.extend(crate::adapters::hostfile::read_host_file(path)?);
    }
    for (i, endpoint) in args.hosts.iter().enumerate() {
        let (address, port) = hosts::parse_endpoint(endpoint).map_err(|problem| hosts::HostsError::BadLine {
            origin: "--host".into(),
            line: i + 1,
            problem,
        })?;
        sources.push((Host { name: address.clone(), address, port }, format!("--host {endpoint}")));
    }
    if sources.is_empty()
        && let Some(from_config) = &settings.hosts
    {
        sources.extend(from_config.iter().cloned().map(|h| (h, "the config file".to_owned())));
    }
    hosts::merge_sources(sources.clone())?;
    Ok(sources)
}

pub(crate) fn style_for(format: OutputFormat) -> Style {
    match format {
        OutputFormat::Json => Style::Json,
        OutputFormat::Yaml => Style::Yaml,
        OutputFormat::Plain => Style::Plain,
        OutputFormat::Auto if std::io::stdout().is_terminal() && std::io::stderr().is_terminal() => Style::Live,
        OutputFormat::Auto => Style::Plain,
    }
}

/// The loud warning of `--insecure-ignore-host-keys`, on stderr before anything is contacted.
pub(crate) fn warn_if_insecure(settings: &Settings) {
    if let Some(warning) = crate::engine::reboot::host_key_warning(settings) {
        eprintln!("{warning}");
    }
}

fn internal_command_line(argv: &[String], reason: String) -> Error {
    crate::SelectionError::InternalCommandLine { argv: argv.to_vec(), reason }.into()
}

/// Runs `fleetboot migrate` from an argument vector (the demo types what a person would).
pub(crate) async fn run_migrate_argv(argv: &[String], config: Option<&Path>) -> Result<ExitCode, Error> {
    let parsed = Cli::try_parse_from(argv).map_err(|e| internal_command_line(argv, e.to_string()))?;
    let Command::Migrate(args) = parsed.command else { return Err(internal_command_line(argv, "not a migrate command".into())) };
    migrate::run(args, config).await
}

/// Runs `fleetboot reboot` from an argument vector, as a user would type it (the demo types
/// what a person would; the migration runs its reboot jobs on its own cluster connection).
pub(crate) async fn run_reboot_argv(argv: &[String], config: Option<&Path>) -> Result<ExitCode, Error> {
    let parsed = Cli::try_parse_from(argv).map_err(|e| internal_command_line(argv, e.to_string()))?;
    let Command::Reboot(args) = parsed.command else { return Err(internal_command_line(argv, "not a reboot command".into())) };
    reboot::run(*args, config).await
}

/// Ctrl-C or SIGTERM, each time one comes.
pub(crate) struct Interrupts(Option<tokio::signal::unix::Signal>);

impl Interrupts {
    pub(crate) fn new() -> Interrupts {
        // Without a SIGTERM handler (it could not be installed) Ctrl-C still counts.
        Interrupts(tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok())
    }

    pub(crate) async fn next(&mut self) {
        let term = async {
            match self.0.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = term => {}
        }
    }
}

/// Ctrl-C or SIGTERM once: soft abort; twice: hard abort.
pub(crate) fn install_interrupts(trigger: watch::Sender<Abort>) {
    tokio::spawn(async move {
        let mut interrupts = Interrupts::new();
        loop {
            interrupts.next().await;
            let next = if *trigger.borrow() == Abort::No { Abort::Soft } else { Abort::Hard };
            let _ = trigger.send(next);
        }
    });
}

/// The cluster the settings name: `--kubeconfig` and `--context` were decided once, with the
/// environment and the file (`load_settings`).
pub(crate) fn cluster_target(settings: &Settings) -> crate::adapters::kube::ClusterTarget {
    crate::adapters::kube::ClusterTarget {
        kubeconfig: settings.run.kubeconfig.as_ref().map(PathBuf::from),
        context: settings.run.context.clone(),
    }
}

pub async fn main(cli: Cli) -> Result<ExitCode, Error> {
    crate::adapters::system::raise_open_file_limit();
    let config = cli.config.as_deref();
    match cli.command {
        Command::Reboot(args) => reboot::run(*args, config).await,
        Command::Exec(args) => exec::run(args, config).await,
        Command::Nodes(args) => nodes::run(args, config).await,
        Command::Sim(args) => sim::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Power(args) => power::run(args, config).await,
        Command::Migrate(args) => migrate::run(args, config).await,
        Command::Verify(args) => migrate::run_verify(args, config).await,
        Command::Repair(args) => repair::run(args, config).await,
        Command::Completions(args) => toolbox::completions(args),
        Command::Man(args) => toolbox::man(args),
        Command::InstallPlugin(args) => toolbox::install_plugin(args),
        Command::Rbac(args) => rbac::run(args),
        Command::Report(args) => toolbox::report(args, config).await,
        Command::Job(args) => job::run(args),
    }
}

/// Whether the user named a cluster: `--kubeconfig`, `--context`, or the config's `[cluster]`
/// (not merely `$KUBECONFIG` or `~/.kube/config`).
pub fn cluster_named(settings: &Settings) -> bool {
    settings.run.kubeconfig.is_some() || settings.run.context.is_some()
}

/// Whether a cluster is configured or found as kubectl finds it: flags, the config's
/// `[cluster]`, `$KUBECONFIG`, `~/.kube/config`. Every command that can work with or without a
/// cluster asks this one question, so they agree on which cluster is meant.
pub fn cluster_configured(settings: &Settings) -> bool {
    let home_config = crate::adapters::system::home_dir().is_some_and(|home| home.join(".kube/config").is_file());
    settings.run.kubeconfig.is_some()
        || settings.run.context.is_some()
        || std::env::var_os("KUBECONFIG").is_some_and(|k| !k.is_empty())
        || home_config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli =
            Cli::try_parse_from(["fleetboot", "reboot", "--host", "127.0.0.2:2222", "--rate", "10/min", "--concurrency", "5"]).unwrap();
        let Command::Reboot(args) = cli.command else { panic!("reboot") };
        let flags = args.partial();
        assert_eq!(flags.concurrency, Some(5));
        assert_eq!(flags.rate, Some(Some(fleetboot_core::journal::RateSpec { count: 10, per_ms: 60_000 })));
        for (flag, value, named) in [
            ("--concurrency", "0", "a limit of 0 reboots nothing"),
            ("--rate", "5/fortnight", "fortnight"),
            ("--reboot-timeout", "soon", "soon"),
            ("--max-failures", "101%", "101%"),
            ("--port", "0", "1 to 65535"),
            ("--command", " ", "must not be empty"),
        ] {
            let err = Cli::try_parse_from(["fleetboot", "reboot", "--host", "h", flag, value]).unwrap_err().to_string();
            assert!(err.contains(flag) && err.contains(named), "{flag} {value}: {err}");
        }
        assert!(Cli::try_parse_from(["fleetboot", "reboot", "--resume", "j", "--host", "x"]).is_err());
        assert!(Cli::try_parse_from(["fleetboot", "exec", "--host", "x"]).is_err(), "a command is required");
    }

    #[test]
    fn the_environment_layer_reads_fleetboots_variables_and_names_a_bad_one() {
        use std::os::unix::ffi::OsStringExt;
        let vars = |pairs: &[(&str, &[u8])]| -> Vec<(OsString, OsString)> {
            pairs.iter().map(|(n, v)| (OsString::from(n), OsString::from_vec(v.to_vec()))).collect()
        };
        let layer = environment_layer_of(vars(&[("FLEETBOOT_CONCURRENCY", b"3"), ("PATH", b"/bin"), ("LANG", b"\xff")])).unwrap();
        assert_eq!(layer.concurrency, Some(3));
        let err = environment_layer_of(vars(&[("FLEETBOOT_TRANSPORT", b"\xffssh")])).unwrap_err().to_string();
        assert_eq!(err, "environment variable FLEETBOOT_TRANSPORT: not valid UTF-8");
        let err = environment_layer_of(vars(&[("FLEETBOOT_MAX_FAILURES", b"lots")])).unwrap_err().to_string();
        assert!(err.starts_with("environment variable FLEETBOOT_MAX_FAILURES: ") && err.contains("lots"), "{err}");
    }

    #[test]
    fn the_help_lists_every_environment_variable() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        for key in fleetboot_core::settings::keys::env_keys() {
            let var = fleetboot_core::settings::env_var(key);
            assert!(help.contains(&format!("  {var} ")), "{var} missing from --help:\n{help}");
        }
        assert_eq!(ENVIRONMENT_HELP.matches("FLEETBOOT_").count(), fleetboot_core::settings::keys::env_keys().count());
    }

    #[test]
    fn the_fixed_choices_parse_into_cores_one_type_and_keep_each_flags_spellings() {
        use fleetboot_core::settings::{HostKeyPolicy, OutputFormat, Transport};
        let cli = Cli::try_parse_from([
            "fleetboot",
            "reboot",
            "--host",
            "h",
            "--transport",
            "redfish",
            "--host-key-policy",
            "accept-new",
            "--output",
            "json",
        ])
        .unwrap();
        let Command::Reboot(args) = cli.command else { panic!("reboot") };
        assert_eq!(
            (args.transport, args.ssh.host_key_policy, args.output.output),
            (Some(Transport::Redfish), Some(HostKeyPolicy::AcceptNew), Some(OutputFormat::Json))
        );
        let flags = args.partial();
        assert_eq!((flags.transport, flags.host_key_policy), (Some(Transport::Redfish), Some(HostKeyPolicy::AcceptNew)));
        let err =
            Cli::try_parse_from(["fleetboot", "reboot", "--host", "h", "--host-key-policy", "insecure-ignore"]).unwrap_err().to_string();
        assert!(err.contains("possible values: strict, accept-new"), "only --insecure-ignore-host-keys turns checking off: {err}");
        assert!(Cli::try_parse_from(["fleetboot", "reboot", "--host", "h", "--transport", "telnet"]).is_err());
    }
}
