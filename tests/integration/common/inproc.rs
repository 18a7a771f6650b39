//! The middle tier: the simulated cluster started inside the test process (mini-redis style: the
//! real API server, SSH servers and BMCs on loopback ports, real sockets) and fleetboot's engine
//! run in the same process, from the same entry the command line uses
//! (`commands::reboot::prepare_from_args`, `commands::migrate::migration_from_args`), with an
//! event sink the test reads instead of stdout JSON.
//!
//! What a test of this tier does not cover, the binary tests do: argument parsing errors as a
//! user sees them, exit codes of the process, the reporters' output, signals, kill -9, and the
//! outside clients (kubectl, the Python client, OpenSSH, sushy-emulator).
//!
//! Process-wide state, and why sharing it is safe here (nextest also runs each test in its own
//! process):
//! - signal handlers: none is installed; the abort channel is the harness's
//!   (`commands::install_interrupts` is not called, the migration gets a no-op in its place);
//! - environment: read, never written. `FLEETBOOT_*` variables reach the engine as they reach
//!   the binary tests' children (which inherit them too); `HOME` and `SSH_AUTH_SOCK` do not
//!   matter, as the simulation's config names the identity, known_hosts, kubeconfig and state
//!   directory by absolute path (the agent is used only when no identity is configured);
//! - the current directory: never changed, and every path the harness passes is absolute;
//! - rustls: fleetboot builds its TLS configs with ring explicitly and installs no process-wide
//!   default provider, so nothing is installed twice;
//! - the open-file limit: raised (idempotently) by the simulation, as `fleetboot sim` does;
//! - the process ID: a run's ID is its start second and the PID (`engine::reboot::new_run_id`),
//!   and its lease identity is built from it, so two runs started in the same second in one
//!   process are one holder to the lease. Tests of two competing runs (`--break-lock`, a refused
//!   second run, `kill -9` and the reclaim of a dead run's lease) keep separate processes.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use fleetboot::ExitCode;
use fleetboot::commands::{Cli, Command};
use fleetboot::engine::runner::Abort;
use fleetboot_core::events::{Event, Outcome, Summary};
use fleetboot_core::migrate::events::{MigrationEvent, Progress};
use tokio::sync::watch;

use super::sim::{Backend, FAST_TIMINGS, Sim};

/// A simulated cluster running on this process's own runtime.
pub struct InProcess {
    runtime: Option<tokio::runtime::Runtime>,
    cluster: Arc<fleetboot_sim::Cluster>,
}

impl InProcess {
    pub(super) fn stop(&mut self) {
        self.cluster.shutdown();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The migration's progress, owned: what its sink was handed, in order.
#[derive(Clone, Debug)]
pub enum Step {
    Migration(MigrationEvent),
    Reboot(Box<Event>),
}

/// A reboot run of the engine: every event it emitted and how it ended.
pub struct EngineRun {
    pub events: Vec<Event>,
    /// The run's summary, or the error that stopped it before or outside the run.
    pub result: Result<Summary, fleetboot::Error>,
}

impl EngineRun {
    /// The exit code the binary would end with.
    pub fn exit(&self) -> ExitCode {
        match &self.result {
            Ok(summary) => summary.exit_code(),
            Err(e) => e.exit_code(),
        }
    }

    /// The exit code as a number, as the binary tests compare it.
    pub fn code(&self) -> i32 {
        self.exit() as i32
    }

    pub fn summary(&self) -> &Summary {
        self.result.as_ref().unwrap_or_else(|e| panic!("the run stopped before its summary: {e}\n{}", self.debug()))
    }

    /// The error's message, as the binary would print it after "fleetboot: ".
    pub fn error(&self) -> String {
        self.result.as_ref().err().map(ToString::to_string).unwrap_or_default()
    }

    /// host → (outcome, error)
    pub fn outcomes(&self) -> BTreeMap<String, (Outcome, String)> {
        self.summary().hosts.iter().map(|h| (h.host.clone(), (h.outcome, h.error.clone().unwrap_or_default()))).collect()
    }

    pub fn journal(&self) -> PathBuf {
        self.summary().journal.clone()
    }

    /// Every reason the host was held before anything was touched, in order.
    pub fn waiting(&self, host: &str) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Waiting { host: h, reason } if h == host => Some(reason.clone()),
                _ => None,
            })
            .collect()
    }

    /// Every warning's message.
    pub fn warnings(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Warning { message, .. } => Some(message.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn debug(&self) -> String {
        let events: Vec<String> = self.events.iter().map(|e| format!("{e:?}")).collect();
        match &self.result {
            Ok(summary) => format!("exit {:?}\nsummary: {summary:?}\nevents:\n{}", self.exit(), events.join("\n")),
            Err(e) => format!("exit {:?}\nerror: {e} ({e:?})\nevents:\n{}", self.exit(), events.join("\n")),
        }
    }
}

/// A migration run of the engine: every step of progress it emitted and how it ended.
pub struct MigrationRun {
    pub steps: Vec<Step>,
    pub result: Result<ExitCode, fleetboot::Error>,
    /// What the plain reporter rendered from the same events (the lines a person reads).
    pub text: String,
    /// What it rendered for stderr (warnings).
    pub errors: String,
}

impl MigrationRun {
    pub fn exit(&self) -> ExitCode {
        match &self.result {
            Ok(code) => *code,
            Err(e) => e.exit_code(),
        }
    }

    pub fn code(&self) -> i32 {
        self.exit() as i32
    }

    pub fn error(&self) -> String {
        self.result.as_ref().err().map(ToString::to_string).unwrap_or_default()
    }

    pub fn migration_events(&self) -> Vec<&MigrationEvent> {
        self.steps
            .iter()
            .filter_map(|s| match s {
                Step::Migration(e) => Some(e),
                Step::Reboot(_) => None,
            })
            .collect()
    }

    pub fn debug(&self) -> String {
        format!("exit {:?}\nerror: {}\noutput:\n{}\nstderr:\n{}", self.exit(), self.error(), self.text, self.errors)
    }

    /// What the binary would have shown for the same run (`--output plain`): its exit code,
    /// the reporter's lines as stdout, its warnings and then the error as `main` prints it
    /// ("fleetboot: ...") as stderr. For the tests whose assertions read those words.
    pub fn to_run(&self) -> super::Run {
        let mut stderr = self.errors.clone();
        if let Err(e) = &self.result {
            stderr.push_str(&format!("fleetboot: {e}\n"));
        }
        super::Run { code: self.code(), stdout: self.text.clone(), stderr }
    }
}

impl Sim {
    /// The simulated cluster of [`Sim::start`], started in this process.
    pub fn in_process(masters: usize, workers: usize) -> Sim {
        Sim::in_process_with(masters, workers, &[])
    }

    /// With `fleetboot sim`'s extra flags (`--no-ssh NODE`, `--fault NODE=FAULT`, ...), parsed
    /// by the same clap definitions, so both backends take the same words.
    pub fn in_process_with(masters: usize, workers: usize, extra: &[&str]) -> Sim {
        let dir = tempfile::Builder::new().prefix("fleetboot-sim-").tempdir().unwrap();
        let (masters, workers) = (masters.to_string(), workers.to_string());
        let mut argv = vec!["fleetboot", "sim", "--dir", dir.path().to_str().unwrap(), "--masters", &masters, "--workers", &workers];
        argv.extend(FAST_TIMINGS);
        argv.extend(extra);
        let Command::Sim(args) = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}")).command else { unreachable!() };
        // Every timing is given (FAST_TIMINGS), so these defaults are never used.
        let unused = fleetboot_sim::node::Timings {
            reboot_delay: std::time::Duration::ZERO,
            boot_time: std::time::Duration::ZERO,
            notready_after: std::time::Duration::ZERO,
            kubelet_ready_after: std::time::Duration::ZERO,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let cluster = runtime.block_on(fleetboot_sim::Cluster::start(args.sim.options(unused))).expect("start the simulated cluster");
        cluster.write_files(dir.path()).unwrap();
        let api = format!("http://{}", cluster.api_addr);
        Sim { dir, api, backend: Backend::InProcess(InProcess { runtime: Some(runtime), cluster }) }
    }

    fn in_process_backend(&self) -> &InProcess {
        match &self.backend {
            Backend::InProcess(inner) => inner,
            Backend::Process(_) => panic!("this simulation runs in its own process: start it with Sim::in_process"),
        }
    }

    /// The simulated cluster itself (its nodes, BMCs, faults), for what no API shows.
    pub fn cluster(&self) -> &Arc<fleetboot_sim::Cluster> {
        &self.in_process_backend().cluster
    }

    /// Runs a future on the simulation's runtime (the engine's calls and the cluster's tasks
    /// share it, as one process's would).
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.in_process_backend().runtime.as_ref().unwrap().block_on(future)
    }

    /// A connection to this simulated cluster through its kubeconfig, opened on its runtime, as
    /// the engine opens one.
    pub fn connection(&self) -> fleetboot::adapters::kube::ClusterConnection {
        let target = fleetboot::adapters::kube::ClusterTarget { kubeconfig: Some(self.path("kubeconfig")), context: None };
        self.block_on(fleetboot::adapters::kube::ClusterConnection::open(&target)).unwrap()
    }

    /// `fleetboot --config SIM/fleetboot.toml reboot ARGS`, in process: the command line's own
    /// parsing and preparation, then the engine's run with this test as its event sink. No
    /// `--output` is needed: the events are read typed.
    pub fn reboot_in_process(&self, args: &[&str]) -> EngineRun {
        self.reboot_in_process_aborting(args, |_| None)
    }

    /// [`Sim::reboot_in_process`], with `abort` asked after every event whether the run should
    /// be interrupted now (what Ctrl-C would do): `Some(Abort::Soft)` or `Some(Abort::Hard)`.
    pub fn reboot_in_process_aborting(&self, args: &[&str], abort: impl FnMut(&Event) -> Option<Abort>) -> EngineRun {
        self.reboot_in_process_with(&self.config(), args, abort)
    }

    /// [`Sim::reboot_in_process_aborting`] under another config file than the simulation's.
    pub fn reboot_in_process_with(
        &self,
        config: &std::path::Path,
        args: &[&str],
        mut abort: impl FnMut(&Event) -> Option<Abort>,
    ) -> EngineRun {
        let argv: Vec<&str> = ["fleetboot", "reboot"].into_iter().chain(args.iter().copied()).collect();
        let Command::Reboot(parsed) = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}")).command else {
            unreachable!()
        };
        let mut events = Vec::new();
        let result = self.block_on(async {
            let prepared = fleetboot::commands::reboot::prepare_from_args(&parsed, Some(config)).await?;
            let (trigger, receiver) = watch::channel(Abort::No);
            let sender = trigger.clone();
            prepared
                .execute((trigger, receiver), |event| {
                    events.push(event.clone());
                    if let Some(how) = abort(event) {
                        let _ = sender.send(how);
                    }
                })
                .await
                .map_err(fleetboot::Error::from)
        });
        EngineRun { events, result }
    }

    /// `fleetboot --config SIM/fleetboot.toml migrate ARGS`, in process: the command line's own
    /// parsing and settings, then the migration engine with this test as its sink. Its reboot
    /// runs get no signal handler.
    pub fn migrate_in_process(&self, args: &[&str]) -> MigrationRun {
        let config = self.config();
        let argv: Vec<&str> = ["fleetboot", "migrate"].into_iter().chain(args.iter().copied()).chain(["--output", "plain"]).collect();
        let Command::Migrate(parsed) = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}")).command else {
            unreachable!()
        };
        let mut steps = Vec::new();
        let (mut text, mut errors) = (Vec::new(), Vec::new());
        let result = self.block_on(async {
            let (options, context) = fleetboot::commands::migrate::migration_from_args(&parsed, Some(&config), |_| {})?;
            let mut reporter = fleetboot::report::migrate::MigrationReporter::new(fleetboot::report::Style::Plain, &mut text, &mut errors);
            fleetboot::engine::migrate::migrate(options, &context, &mut |progress| {
                steps.push(match &progress {
                    Progress::Migration(e) => Step::Migration((*e).clone()),
                    Progress::Reboot(e) => Step::Reboot(Box::new((*e).clone())),
                });
                reporter.report(progress);
            })
            .await
            .map_err(fleetboot::Error::from)
        });
        let lossy = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        MigrationRun { steps, result, text: lossy(&text), errors: lossy(&errors) }
    }
}
