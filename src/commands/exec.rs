//! `fleetboot exec -- CMD`: one command on every host, identical outputs folded.

use std::path::Path;
use std::sync::Arc;

use clap::Args;

use super::args::{HostArgs, OutputArgs, SshArgs};
use super::{inventory, load_settings, warn_if_insecure};
use crate::adapters::config::OutputFormat;
use crate::adapters::ssh::SshClient;
use crate::{Error, ExitCode};
use fleetboot_core::settings::Partial;

#[derive(Args, Debug)]
pub struct ExecArgs {
    #[command(flatten)]
    pub hosts: HostArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// ssh (the default) or kube: through the cluster API, `chroot /rootfs COMMAND` in each
    /// node's machine-config daemon pod (the hosts' names are the nodes'; none given: every node).
    #[arg(long, value_parser = ["ssh", "kube"])]
    pub transport: Option<String>,
    #[command(flatten)]
    pub cluster: super::args::ClusterArgs,
    /// Connections at once [default: 64].
    #[arg(long, value_name = "N", value_parser = fleetboot_core::settings::parse_limit)]
    pub parallel: Option<usize>,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

impl ExecArgs {
    fn partial(&self) -> Partial {
        let mut flags = Partial { parallel: self.parallel, ..Partial::default() };
        self.ssh.apply(&mut flags);
        self.output.apply(&mut flags);
        flags
    }
}

pub async fn run(args: ExecArgs, config: Option<&Path>) -> Result<ExitCode, Error> {
    let flags = Partial { ..args.partial() };
    let settings = load_settings(config, &flags)?;
    let results = if args.transport.as_deref() == Some("kube") {
        let connection = crate::adapters::kube::ClusterConnection::open(&super::cluster_target(&settings)).await?;
        let hosts = if args.hosts.hosts.is_empty() && args.hosts.hosts_files.is_empty() {
            let server = connection.server();
            crate::adapters::kube::discover(&connection.client, server, None, "InternalIP")
                .await?
                .into_iter()
                .map(|n| fleetboot_core::hosts::Host {
                    address: n.addresses.first().cloned().unwrap_or_default(),
                    name: n.name,
                    port: None,
                })
                .collect()
        } else {
            inventory(&args.hosts, &settings)?
        };
        let kube = crate::adapters::kube::exec::KubeTransport::new(
            connection.client.clone(),
            settings.run.clone(),
            settings.run.ssh.command_timeout,
        );
        crate::engine::exec::run_everywhere_kube(Arc::new(kube), &hosts, &args.command, settings.run.parallel).await
    } else {
        let hosts = inventory(&args.hosts, &settings)?;
        warn_if_insecure(&settings);
        let client = Arc::new(SshClient::for_this_user(settings.run.ssh.clone())?);
        let command = shell_join(&args.command);
        crate::engine::exec::run_everywhere(client, &hosts, &command, settings.run.parallel).await
    };
    // One write for the lot, not one per host.
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    use std::io::Write;
    if matches!(settings.run.output, OutputFormat::Json | OutputFormat::Yaml) {
        let style = crate::commands::style_for(settings.run.output);
        for r in &results {
            crate::report::write_structured(style, &mut out, r);
        }
    } else {
        let _ = out.write_all(crate::engine::exec::render_folded(&results).as_bytes());
    }
    let _ = out.flush();
    Ok(if results.iter().all(|r| r.ok()) { ExitCode::Ok } else { ExitCode::HostsFailed })
}

/// One argument stays one word on the remote shell: quote what the shell would split.
fn shell_join(words: &[String]) -> String {
    if words.len() == 1 {
        // A single argument is taken as a shell command line, as ssh does.
        return words[0].clone();
    }
    words
        .iter()
        .map(|w| {
            if !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c)) {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_join_quotes_only_what_needs_it() {
        assert_eq!(shell_join(&["uname -r".into()]), "uname -r");
        assert_eq!(shell_join(&["echo".into(), "a b".into(), "it's".into()]), r"echo 'a b' 'it'\''s'");
        assert_eq!(shell_join(&["cat".into(), "/proc/x".into()]), "cat /proc/x");
    }
}
