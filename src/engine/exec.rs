//! `fleetboot exec`: one command on every host, like pdsh/clush, with identical outputs folded.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::stream::{self, StreamExt};
use serde::Serialize;

use crate::adapters::ssh::SshClient;
use fleetboot_core::hosts::Host;

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct HostResult {
    pub host: String,
    /// `None` when the command did not finish (connection error, dropped, timed out).
    pub exit: Option<u32>,
    pub stdout: String,
    pub stderr: String,
    pub error: Option<String>,
}

impl HostResult {
    pub fn ok(&self) -> bool {
        self.exit == Some(0) && self.error.is_none()
    }

    /// A command that ran (to its end or not): its output as text, `error` why it has no
    /// exit status when it has none.
    fn ran(host: &Host, exit: Option<u32>, stdout: &[u8], stderr: &[u8], error: Option<String>) -> HostResult {
        HostResult {
            host: host.name.clone(),
            exit,
            stdout: String::from_utf8_lossy(stdout).into_owned(),
            stderr: String::from_utf8_lossy(stderr).into_owned(),
            error,
        }
    }

    /// A command that never ran: the connection or the API refused it.
    fn not_run(host: &Host, error: impl std::fmt::Display) -> HostResult {
        HostResult { host: host.name.clone(), exit: None, stdout: String::new(), stderr: String::new(), error: Some(error.to_string()) }
    }
}

/// Runs `command` on every host, at most `parallel` connections at once. Results come back
/// in the hosts' order.
pub async fn run_everywhere(client: Arc<SshClient>, hosts: &[Host], command: &str, parallel: usize) -> Vec<HostResult> {
    let mut results: Vec<(usize, HostResult)> = stream::iter(hosts.iter().cloned().enumerate())
        .map(|(index, host)| {
            let client = client.clone();
            let command = command.to_owned();
            let work = async move {
                let result = match client.run(&host, &command).await {
                    Ok(out) => {
                        let error = match (out.timed_out, out.exit) {
                            (true, _) => Some("timed out".into()),
                            (false, None) => Some("connection closed before an exit status".into()),
                            _ => None,
                        };
                        HostResult::ran(&host, out.exit, &out.stdout, &out.stderr, error)
                    }
                    Err(e) => HostResult::not_run(&host, e),
                };
                (index, result)
            };
            // A task of its own, on the runtime's workers beside the SSH session task russh
            // spawns for the connection: polled from the caller's thread instead, every packet
            // crossed threads (a futex wake-up and a context switch each, 24 per host, a third
            // of the client's CPU).
            let task = tokio::spawn(work);
            async move {
                match task.await {
                    Ok(done) => done,
                    // Nothing aborts these tasks: a JoinError is the host task's panic, passed on.
                    Err(failed) => std::panic::resume_unwind(failed.try_into_panic().unwrap_or_else(|e| Box::new(e.to_string()))),
                }
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// [`run_everywhere`] through the cluster API: `chroot /rootfs WORDS...` in each node's
/// machine-config daemon pod (the hosts' names are the nodes'), at most `parallel` at once.
pub async fn run_everywhere_kube(
    kube: Arc<crate::adapters::kube::exec::KubeTransport>,
    hosts: &[Host],
    words: &[String],
    parallel: usize,
) -> Vec<HostResult> {
    stream::iter(hosts.iter().cloned())
        .map(|host| {
            let kube = kube.clone();
            async move {
                match kube.exec_words(&host, words).await {
                    Ok(out) => {
                        let error = match (out.timed_out, out.exit, out.failure) {
                            (true, _, _) => Some("timed out".into()),
                            (false, None, Some(failure)) => Some(failure),
                            (false, None, None) => Some("the exec stream ended before an exit status".into()),
                            _ => None,
                        };
                        HostResult::ran(&host, out.exit, &out.stdout, &out.stderr, error)
                    }
                    Err(e) => HostResult::not_run(&host, e),
                }
            }
        })
        .buffered(parallel)
        .collect()
        .await
}

/// What makes two hosts' results the same: exit status, stdout, stderr and error.
type OutcomeKey<'a> = (Option<u32>, &'a str, &'a str, Option<&'a str>);

/// Groups hosts whose output, exit and error are identical (like `clush -b`).
pub fn fold_outputs(results: &[HostResult]) -> Vec<(Vec<String>, &HostResult)> {
    let mut groups: BTreeMap<OutcomeKey, (Vec<String>, &HostResult)> = BTreeMap::new();
    let mut order = Vec::new();
    for r in results {
        let key = (r.exit, r.stdout.as_str(), r.stderr.as_str(), r.error.as_deref());
        let entry = groups.entry(key).or_insert_with(|| {
            order.push(key);
            (Vec::new(), r)
        });
        entry.0.push(r.host.clone());
    }
    order.into_iter().map(|k| groups.remove(&k).expect("grouped")).collect()
}

pub fn render_folded(results: &[HostResult]) -> String {
    let mut text = String::new();
    for (hosts, sample) in fold_outputs(results) {
        let rule = "-".repeat(15);
        let status = match (&sample.error, sample.exit) {
            (Some(e), _) => format!(" — error: {e}"),
            (None, Some(0)) => String::new(),
            (None, Some(code)) => format!(" — exit {code}"),
            (None, None) => String::new(),
        };
        text.push_str(&format!("{rule}\n{} ({}){status}\n{rule}\n", hosts.join(","), hosts.len()));
        text.push_str(&sample.stdout);
        if !sample.stdout.is_empty() && !sample.stdout.ends_with('\n') {
            text.push('\n');
        }
        if !sample.stderr.is_empty() {
            for line in sample.stderr.lines() {
                text.push_str(&format!("stderr: {line}\n"));
            }
        }
    }
    let failed = results.iter().filter(|r| !r.ok()).count();
    text.push_str(&format!("\n{} hosts: {} ok, {} failed\n", results.len(), results.len() - failed, failed));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(host: &str, exit: Option<u32>, out: &str, error: Option<&str>) -> HostResult {
        HostResult { host: host.into(), exit, stdout: out.into(), stderr: String::new(), error: error.map(Into::into) }
    }

    #[test]
    fn identical_outputs_fold_in_first_seen_order() {
        let results = vec![
            r("a", Some(0), "6.1\n", None),
            r("b", Some(0), "6.2\n", None),
            r("c", Some(0), "6.1\n", None),
            r("d", None, "", Some("unreachable: refused")),
        ];
        let folded = fold_outputs(&results);
        let names: Vec<_> = folded.iter().map(|(h, _)| h.join(",")).collect();
        assert_eq!(names, vec!["a,c", "b", "d"]);
        let text = render_folded(&results);
        assert!(text.contains("a,c (2)\n---------------\n6.1\n"), "{text}");
        assert!(text.contains("d (1) — error: unreachable: refused"), "{text}");
        assert!(text.ends_with("4 hosts: 3 ok, 1 failed\n"), "{text}");
    }
}
