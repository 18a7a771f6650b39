//! The admin's toolbox: shell completions and man pages generated from the clap definitions
//! (clap's own companions, clap_complete and clap_mangen, so they never drift from `--help`),
//! and the kubectl / oc plugin links; the name fleetboot was called by decides the name its
//! help and usage show (`kubectl fleetboot nodes`).

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory, FromArgMatches, ValueEnum};

use super::Cli;
use crate::{Error, ExitCode};

/// `fleetboot completions SHELL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ShellChoice {
    Bash,
    Zsh,
    Fish,
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell, e.g. `source <(fleetboot completions bash)` in ~/.bashrc.
    #[arg(value_enum)]
    pub shell: ShellChoice,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Where the pages go (created if missing), e.g. /usr/local/share/man/man1.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct InstallPluginArgs {
    /// A directory on PATH (created if missing), e.g. ~/.local/bin.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Replace files of those names that are not fleetboot's links.
    #[arg(long)]
    pub force: bool,
}

/// The plugin names kubectl and oc look for on PATH (kubectl's plugin discovery:
/// <https://kubernetes.io/docs/tasks/extend-kubectl/kubectl-plugins/>).
pub const PLUGIN_NAMES: [&str; 2] = ["kubectl-fleetboot", "oc-fleetboot"];

/// The name fleetboot's help and usage show when called as `argv0`: `kubectl fleetboot` for the
/// `kubectl-fleetboot` link, `oc fleetboot` for `oc-fleetboot`, else `fleetboot`.
pub fn display_name(argv0: Option<&std::ffi::OsStr>) -> String {
    let base = argv0.map(Path::new).and_then(Path::file_name).and_then(|n| n.to_str()).unwrap_or("fleetboot");
    match base.strip_suffix("-fleetboot") {
        Some(tool @ ("kubectl" | "oc")) => format!("{tool} fleetboot"),
        _ => "fleetboot".to_owned(),
    }
}

/// The command line's definition under the name it was called by.
pub fn command_named(name: &str) -> clap::Command {
    Cli::command().bin_name(name.to_owned()).display_name(name.to_owned())
}

/// Parses this process's arguments, the help and errors naming the command as it was called.
pub fn parse_args() -> Cli {
    parse_from(std::env::args_os())
}

pub fn parse_from(args: impl IntoIterator<Item = OsString>) -> Cli {
    let args: Vec<OsString> = args.into_iter().collect();
    let name = display_name(args.first().map(OsString::as_os_str));
    let matches = command_named(&name).get_matches_from(args);
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

pub fn completions(args: CompletionsArgs) -> Result<ExitCode, Error> {
    let shell = match args.shell {
        ShellChoice::Bash => clap_complete::Shell::Bash,
        ShellChoice::Zsh => clap_complete::Shell::Zsh,
        ShellChoice::Fish => clap_complete::Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "fleetboot", &mut out);
    write_stdout(&out)?;
    Ok(ExitCode::Ok)
}

/// One page per command: `fleetboot.1`, `fleetboot-reboot.1`, ...; their paths.
pub fn man_pages(dir: &Path) -> Result<Vec<PathBuf>, std::io::Error> {
    std::fs::create_dir_all(dir)?;
    let mut root = Cli::command();
    root.build();
    let mut pages = vec![(String::from("fleetboot"), root.clone())];
    // Built, each subcommand's display name is `fleetboot-NAME` and its usage `fleetboot NAME`.
    // clap's own `help` subcommand has no page of its own (`man fleetboot` lists the commands).
    for sub in root.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        pages.push((format!("fleetboot-{}", sub.get_name()), sub.clone().version(env!("CARGO_PKG_VERSION"))));
    }
    let mut written = Vec::new();
    for (name, command) in pages {
        let path = dir.join(format!("{name}.1"));
        let mut page = Vec::new();
        clap_mangen::Man::new(command).render(&mut page)?;
        std::fs::write(&path, page)?;
        written.push(path);
    }
    Ok(written)
}

pub fn man(args: ManArgs) -> Result<ExitCode, Error> {
    let written = man_pages(&args.dir).map_err(|source| ToolboxError::Write { path: args.dir.clone(), source })?;
    let lines: String = written.iter().map(|p| format!("{}\n", p.display())).collect();
    write_stdout(lines.as_bytes())?;
    Ok(ExitCode::Ok)
}

/// `kubectl-fleetboot` and `oc-fleetboot` in `dir`, symbolic links to this executable.
pub fn install_plugin(args: InstallPluginArgs) -> Result<ExitCode, Error> {
    let exe = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(|source| ToolboxError::Write { path: PathBuf::from("/proc/self/exe"), source })?;
    let links = install_links(&args.dir, &exe, args.force)?;
    let mut text = String::new();
    for link in links {
        text.push_str(&format!("{} -> {}\n", link.display(), exe.display()));
    }
    if !path_contains(&args.dir) {
        text.push_str(&format!("note: {} is not on PATH; kubectl and oc find plugins on PATH only\n", args.dir.display()));
    }
    write_stdout(text.as_bytes())?;
    Ok(ExitCode::Ok)
}

/// The links, each checked before any is made: a file of that name that is not a symbolic
/// link is refused (naming it) unless `force`.
pub fn install_links(dir: &Path, target: &Path, force: bool) -> Result<Vec<PathBuf>, ToolboxError> {
    std::fs::create_dir_all(dir).map_err(|source| ToolboxError::Write { path: dir.to_owned(), source })?;
    let links: Vec<PathBuf> = PLUGIN_NAMES.iter().map(|name| dir.join(name)).collect();
    for link in &links {
        if let Ok(meta) = std::fs::symlink_metadata(link)
            && !meta.file_type().is_symlink()
            && !force
        {
            return Err(ToolboxError::NotALink { path: link.clone() });
        }
    }
    for link in &links {
        if std::fs::symlink_metadata(link).is_ok() {
            std::fs::remove_file(link).map_err(|source| ToolboxError::Write { path: link.clone(), source })?;
        }
        std::os::unix::fs::symlink(target, link).map_err(|source| ToolboxError::Write { path: link.clone(), source })?;
    }
    Ok(links)
}

fn path_contains(dir: &Path) -> bool {
    let wanted = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|p| std::fs::canonicalize(&p).unwrap_or(p) == wanted))
}

fn write_stdout(bytes: &[u8]) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes).and_then(|()| out.flush()).map_err(|source| ToolboxError::Write { path: PathBuf::from("-"), source })?;
    Ok(())
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The run: a reboot journal (reboot-RUN-ID.jsonl), a migration's directory or its
    /// migration.jsonl, a run ID found under the state directory, or a journal in the cluster
    /// (`cluster:NAMESPACE/RUN-ID`, as `--journal-in-cluster` names it).
    #[arg(value_name = "RUN-ID|JOURNAL")]
    pub run: String,
    #[command(flatten)]
    pub cluster: super::ClusterArgs,
    /// Where report.html, report.md and timeline.svg go (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Where journals are kept, to find a run ID [default: ~/.local/state/fleetboot].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<String>,
}

/// What `fleetboot report` renders.
#[derive(Debug, PartialEq, Eq)]
enum ReportSource {
    Reboot(PathBuf),
    Migration(PathBuf),
}

/// A path as given, else a run ID under the state directory: its reboot journal, else its
/// migration. Err: the places looked at.
fn report_source(given: &str, state_dir: &Path) -> Result<ReportSource, ToolboxError> {
    let path = PathBuf::from(given);
    let migration = |p: &Path| p.file_name().is_some_and(|n| n == "migration.jsonl");
    if path.is_dir() {
        return Ok(ReportSource::Migration(path.join("migration.jsonl")));
    }
    if path.is_file() {
        return Ok(if migration(&path) { ReportSource::Migration(path) } else { ReportSource::Reboot(path) });
    }
    let looked = [state_dir.join(format!("reboot-{given}.jsonl")), state_dir.join("migrations").join(given).join("migration.jsonl")];
    let valid_id = !given.is_empty() && given.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) && !given.starts_with('.');
    match looked.iter().position(|p| valid_id && p.is_file()) {
        Some(0) => Ok(ReportSource::Reboot(looked[0].clone())),
        Some(_) => Ok(ReportSource::Migration(looked[1].clone())),
        None => Err(ToolboxError::NoRun { given: given.to_owned(), looked: looked.to_vec() }),
    }
}

/// `fleetboot report RUN-ID|JOURNAL --out DIR`: the report of a run or a migration, rendered
/// again from its journal (the same files the run wrote), whatever state it is in.
pub async fn report(args: ReportArgs, config: Option<&Path>) -> Result<ExitCode, Error> {
    let flags = fleetboot_core::settings::Partial { state_dir: args.state_dir.clone(), ..args.cluster.partial() };
    let settings = super::load_settings(config, &flags)?;
    let now = crate::adapters::system::now_ms();
    let in_cluster = crate::adapters::kube::journal_store::JournalPlace::parse(&args.run, "kube-system");
    let files = match in_cluster {
        Some(place) => {
            let place = place?;
            crate::adapters::reports::cluster_run_files(&super::cluster_target(&settings), &place, now)
                .await
                .map_err(ToolboxError::ClusterJournal)?
        }
        None => local_report_files(&args.run, &settings, now)?,
    };
    let written = crate::adapters::reports::write(&args.out, files).map_err(ToolboxError::Report)?;
    let lines: String = written.iter().map(|p| format!("{}\n", p.display())).collect();
    write_stdout(lines.as_bytes())?;
    Ok(ExitCode::Ok)
}

fn local_report_files(run: &str, settings: &crate::adapters::config::Settings, now: u64) -> Result<Vec<(&'static str, String)>, Error> {
    Ok(match report_source(run, &settings.state_dir())? {
        ReportSource::Reboot(journal) => crate::adapters::reports::run_files(&journal, now)?,
        ReportSource::Migration(journal) => {
            let (_, state) = crate::adapters::migration_journal::load(&journal).map_err(ToolboxError::Migration)?;
            crate::adapters::reports::migration_files(&state, now)
        }
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ToolboxError {
    #[error("no run {given:?}: not a journal or a migration directory, and none of {} exists", looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    NoRun { given: String, looked: Vec<PathBuf> },
    #[error(transparent)]
    Migration(crate::adapters::migration_journal::MigrationJournalError),
    #[error(transparent)]
    ClusterJournal(crate::adapters::reports::ClusterReportError),
    #[error("failed to write the report")]
    Report(#[source] crate::adapters::migration_journal::FileError),
    #[error("failed to write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} exists and is not a symbolic link; remove it or pass --force", path.display())]
    NotALink { path: PathBuf },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_called_by_is_the_name_shown() {
        assert_eq!(display_name(Some("/home/a/bin/kubectl-fleetboot".as_ref())), "kubectl fleetboot");
        assert_eq!(display_name(Some("oc-fleetboot".as_ref())), "oc fleetboot");
        assert_eq!(display_name(Some("/usr/bin/fleetboot".as_ref())), "fleetboot");
        assert_eq!(display_name(Some("kubectl-other".as_ref())), "fleetboot");
        let err = match command_named("kubectl fleetboot").try_get_matches_from(["kubectl-fleetboot", "nodes", "--help"]) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("--help stops"),
        };
        assert!(err.contains("Usage: kubectl fleetboot nodes"), "{err}");
    }

    #[test]
    fn every_option_of_reboot_and_power_sits_under_a_heading() {
        let headings = ["Selection", "Transport", "Limits", "Cluster", "BMC", "Scheduling", "Output", "Output and journal"];
        let mut root = Cli::command();
        root.build();
        for name in ["reboot", "power"] {
            let mut commands = vec![root.find_subcommand(name).unwrap().clone()];
            commands.extend(commands[0].get_subcommands().cloned().collect::<Vec<_>>());
            for command in &commands {
                for arg in command.get_arguments().filter(|a| !a.is_positional() && !a.is_global_set()) {
                    let id = arg.get_id().as_str();
                    if id == "help" || id == "config" {
                        continue;
                    }
                    let heading = arg.get_help_heading();
                    assert!(heading.is_some_and(|h| headings.contains(&h)), "{name} {}: --{id} under {heading:?}", command.get_name());
                }
            }
        }
        let help = root.find_subcommand_mut("reboot").unwrap().render_help().to_string();
        let order: Vec<usize> = ["Selection:", "Transport:", "Cluster:", "Limits:", "Scheduling:", "Output and journal:"]
            .iter()
            .map(|h| help.find(h).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{help}");
    }

    #[test]
    fn a_plain_file_in_the_way_is_refused_before_any_link_is_made() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("oc-fleetboot"), "mine").unwrap();
        let err = install_links(dir.path(), Path::new("/bin/true"), false).unwrap_err().to_string();
        assert!(err.contains("oc-fleetboot") && err.contains("--force"), "{err}");
        assert!(std::fs::symlink_metadata(dir.path().join("kubectl-fleetboot")).is_err(), "nothing made");
        let links = install_links(dir.path(), Path::new("/bin/true"), true).unwrap();
        assert_eq!(links.len(), 2);
        assert_eq!(std::fs::read_link(dir.path().join("oc-fleetboot")).unwrap(), Path::new("/bin/true"));
        install_links(dir.path(), Path::new("/bin/false"), false).expect("its own links are replaced");
    }
}
