//! Reporters: turn runner events into a live display, plain lines or JSON lines; the migration's
//! events and results in [`migrate`], through the same reporter for its reboot runs.

pub mod metrics;
pub mod migrate;
pub mod nodes;
pub mod notify;
pub mod plan;
pub mod power;
pub mod repair;
pub mod yaml;

use fleetboot_core::table::{short_id, table};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use fleetboot_core::events::{Event, Outcome, Summary, stage_name};
use fleetboot_core::journal::{Delivery, Entry, HostRecord, Phase};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// A live status bar above scrolling per-host lines (a terminal).
    Live,
    /// One line per transition (logs, pipes, CI).
    Plain,
    /// One JSON event per line on stdout.
    Json,
    /// One YAML document per event on stdout (`---` before each): the JSON's events, as a
    /// stream, so a live run still shows each event as it happens.
    Yaml,
}

impl Style {
    /// `-o json` or `-o yaml`: events for machines, not lines for people.
    pub fn is_structured(self) -> bool {
        matches!(self, Style::Json | Style::Yaml)
    }
}

/// One event as `-o json` (a line) or `-o yaml` (a document) writes it (unflushed).
pub(crate) fn write_structured<T: serde::Serialize>(style: Style, out: &mut dyn Write, event: &T) {
    let _ = match style {
        Style::Yaml => out.write_all(format!("---\n{}", yaml::render(event)).as_bytes()),
        _ => serde_json::to_writer(&mut *out, event).map_err(std::io::Error::from).and_then(|()| out.write_all(b"\n")),
    };
}

pub struct Reporter<W: Write> {
    style: Style,
    out: W,
    started: Instant,
    /// Each host's state, folded from the transitions with the journal's own `apply`.
    hosts: BTreeMap<String, HostRecord>,
    total: usize,
    bar: Option<ProgressBar>,
}

impl<W: Write> Reporter<W> {
    pub fn new(style: Style, out: W) -> Reporter<W> {
        Reporter { style, out, started: Instant::now(), hosts: BTreeMap::new(), total: 0, bar: None }
    }

    pub fn report(&mut self, event: &Event) {
        if self.style.is_structured() {
            write_structured(self.style, &mut self.out, event);
            let _ = self.out.flush();
            return;
        }
        self.count(event);
        match event {
            Event::Started { run_id, journal, hosts, resumed, to_reboot, awaiting } => {
                let verb = if *resumed { "resuming" } else { "starting" };
                self.line(format!(
                    "{verb} run {run_id}: {hosts} hosts, {to_reboot} to reboot, {awaiting} already in flight\njournal: {}",
                    journal.display()
                ));
                if self.style == Style::Live {
                    let bar = ProgressBar::with_draw_target(Some(*to_reboot as u64 + *awaiting as u64), ProgressDrawTarget::stderr());
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}").expect("template"),
                    );
                    bar.enable_steady_tick(Duration::from_millis(200));
                    self.bar = Some(bar);
                }
            }
            Event::Transition { record } => {
                if let Some(text) = describe_entry(&record.entry) {
                    let host = record.entry.host().unwrap_or("-");
                    self.line(format!("{host:<16} {text}"));
                }
            }
            Event::Retrying { host, stage, attempt, of, error, wait_ms } => self.line(format!(
                "{host:<16} {} failed ({error}); attempt {attempt} of {of} in {}",
                stage_name(*stage),
                humantime::format_duration(Duration::from_millis(*wait_ms))
            )),
            Event::Warning { host, message } => {
                self.line(format!("warning: {}{message}", host.as_ref().map(|h| format!("{h}: ")).unwrap_or_default()))
            }
            Event::Waiting { host, reason } => self.line(format!("{host:<16} waiting: {reason}")),
            Event::Held { reason, remaining_ms, .. } => self.line(match remaining_ms {
                Some(ms) => {
                    format!("held: {reason}; next reboot in {}", humantime::format_duration(Duration::from_secs(ms.div_ceil(1000))))
                }
                None => format!("held: {reason}"),
            }),
            Event::AbortRequested { hard: false } => self.line(
                "interrupt: starting nothing new, waiting for hosts in flight (interrupt again to stop now; --resume finishes later)"
                    .into(),
            ),
            Event::AbortRequested { hard: true } => {
                self.line("interrupt: stopping now; the journal is consistent, --resume continues".into())
            }
            Event::Finished { summary } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                let _ = self.out.write_all(render_summary(summary).as_bytes());
            }
        }
        self.refresh();
    }

    fn count(&mut self, event: &Event) {
        match event {
            Event::Started { hosts, .. } => self.total = *hosts,
            Event::Transition { record } => {
                if let Entry::RunStarted { hosts, .. } = &record.entry {
                    for host in hosts {
                        self.hosts.insert(host.name.clone(), HostRecord::pending());
                    }
                }
                if let Some(host) = record.entry.host() {
                    self.hosts.entry(host.to_owned()).or_insert_with(HostRecord::pending).apply(&record.entry, record.at_ms);
                }
            }
            _ => {}
        }
    }

    fn refresh(&self) {
        if let Some(bar) = &self.bar {
            let count = |phases: &[Phase]| self.hosts.values().filter(|h| phases.contains(&h.phase)).count();
            let done = count(&[
                Phase::Confirmed,
                Phase::Failed,
                Phase::SoftRebooted,
                Phase::Skipped,
                Phase::Cancelled,
                Phase::PoweredOff,
                Phase::NotNeeded,
            ]);
            bar.set_position(done as u64);
            bar.set_message(format!(
                "waiting {} · rebooting {} · down {} · back {} · failed {} · skipped {}",
                self.total.saturating_sub(self.hosts.len()) + count(&[Phase::Pending]),
                count(&[Phase::Dispatching, Phase::Dispatched]),
                count(&[Phase::Down]),
                count(&[Phase::Back, Phase::Confirmed]),
                count(&[Phase::Failed, Phase::SoftRebooted]),
                count(&[Phase::Skipped, Phase::Cancelled, Phase::PoweredOff, Phase::NotNeeded]),
            ));
        }
    }

    fn line(&mut self, text: String) {
        let stamped = format!("[{:>7.1}s] {text}", self.started.elapsed().as_secs_f64());
        match &self.bar {
            Some(bar) => bar.println(stamped),
            None => {
                let _ = writeln!(self.out, "{stamped}");
                let _ = self.out.flush();
            }
        }
    }
}

fn describe_entry(entry: &Entry) -> Option<String> {
    Some(match entry {
        Entry::BootIdRead { boot_id, .. } => format!("boot ID {}", short_id(boot_id)),
        Entry::Dispatching { .. } | Entry::SoftRebootCount { .. } => return None,
        Entry::SoftRebooted { boot_id, count_before, count_after, .. } => format!(
            "SOFT-REBOOTED, not proven as a kernel reboot: boot ID still {}, SoftRebootsCount {count_before} → {count_after} (systemctl soft-reboot restarts userspace only)",
            short_id(boot_id)
        ),
        Entry::Dispatched { delivery, reset_type, .. } => match delivery {
            Delivery::ExitZero => "reboot dispatched (exit 0)".into(),
            Delivery::ConnectionDropped => "reboot dispatched (connection dropped, as a reboot does)".into(),
            Delivery::NoAnswer => "reboot dispatched (no answer in time; watching for a new boot ID)".into(),
            Delivery::BmcAccepted => format!("BMC accepted {}", reset_type.as_deref().unwrap_or("the reset")),
        },
        Entry::FallingBack { reason, .. } => format!("falling back to the BMC: {reason}"),
        Entry::TransportChosen { transport, reason, .. } => format!("through {transport}: {reason}"),
        Entry::DebugPodCreating { namespace, pod, .. } => format!("creating debug pod {namespace}/{pod}"),
        Entry::DebugPodDeleted { namespace, pod, .. } => format!("deleted debug pod {namespace}/{pod}"),
        Entry::Down { .. } => "down".into(),
        Entry::Back { new_boot_id, api_only: false, .. } => format!("back with boot ID {}", short_id(new_boot_id)),
        Entry::Back { new_boot_id, api_only: true, .. } => format!("back with boot ID {} (seen by the API; no SSH)", short_id(new_boot_id)),
        Entry::Cordoning { already_cordoned: false, .. } => "cordoned; draining".into(),
        Entry::Cordoning { already_cordoned: true, .. } => "already cordoned (left so afterwards); draining".into(),
        Entry::Drained { evicted, .. } => format!("drained ({evicted} pods evicted)"),
        // The intent alone: its `uncordoned` follows (or the uncordon was in doubt).
        Entry::Uncordoning { .. } => return None,
        Entry::Uncordoned { .. } => "uncordoned".into(),
        Entry::ApiConfirmed { boot_id, .. } => format!("API: Ready with boot ID {}", short_id(boot_id)),
        Entry::Confirmed { .. } => "rebooted ✓".into(),
        Entry::Failed { stage, error, .. } => format!("FAILED at {}: {error}", stage_name(*stage)),
        Entry::Cancelling { .. } => "cancelling the pending reboot (shutdown -c)".into(),
        Entry::Cancelled { .. } => "pending reboot cancelled".into(),
        Entry::Skipped { reason, .. } => format!("skipped: {reason}"),
        Entry::NotNeeded { reason, .. } => format!("skipped: {reason}"),
        Entry::Planned { .. } => return None,
        Entry::Deferred { reason, .. } => format!("deferred: {reason}"),
        Entry::CordonHandedOver { to, reason, .. } => format!("cordon handed over to {to}, not rebooted: {reason}"),
        Entry::ForceDeleting { pods, .. } => format!("deleting the pods eviction could not move: {}", pods.join(", ")),
        Entry::DrainTimedOut { pods, .. } => format!("drain timed out (pods left: {})", pods.join(", ")),
        Entry::Held { reason, .. } => format!("held: {reason}"),
        Entry::PoweredOff { detail, .. } => format!("POWERED OFF, left off: {detail}"),
        Entry::PassReleased { reason, .. } => format!("place in the limits released: {reason}"),
        Entry::RunStarted { .. } | Entry::RunResumed { .. } | Entry::LeaseTakenOver { .. } | Entry::RunFinished { .. } => return None,
    })
}

pub fn render_summary(summary: &Summary) -> String {
    let rows: Vec<Vec<String>> = summary
        .hosts
        .iter()
        .map(|h| {
            vec![
                h.host.clone(),
                h.address.clone(),
                outcome_name(h.outcome).to_owned(),
                match (&h.old_boot_id, &h.new_boot_id) {
                    (Some(old), Some(new)) => format!("{} → {}", short_id(old), short_id(new)),
                    (Some(old), None) => short_id(old).to_owned(),
                    _ => "-".into(),
                },
                h.down_ms.map(|ms| format!("{:.1}s", ms as f64 / 1000.0)).unwrap_or_else(|| "-".into()),
                h.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut text = String::from("\n");
    text.push_str(&table(&["HOST", "ADDRESS", "RESULT", "BOOT ID (OLD → NEW)", "DOWN", "ERROR"], &rows));
    let powered_off = match summary.count(Outcome::PoweredOff) {
        0 => String::new(),
        n => format!(", {n} powered off (left off)"),
    };
    let powered_off = match summary.count(Outcome::NotNeeded) {
        0 => powered_off,
        n => format!("{powered_off}, {n} not needed"),
    };
    text.push_str(&format!(
        "\n{} rebooted, {} failed, {} skipped, {} cancelled, {} interrupted{powered_off} in {}\njournal: {}\n",
        summary.count(Outcome::Rebooted),
        summary.count(Outcome::Failed),
        summary.count(Outcome::Skipped),
        summary.count(Outcome::Cancelled),
        summary.count(Outcome::Interrupted),
        humantime::format_duration(Duration::from_secs(summary.elapsed_ms / 1000)),
        summary.journal.display()
    ));
    let soft = summary.count(Outcome::SoftRebooted);
    if soft > 0 {
        text.push_str(&format!(
            "{soft} soft-rebooted: userspace restarted (systemctl soft-reboot), the kernel did not; not proven as a reboot\n"
        ));
    }
    if !summary.still_cordoned.is_empty() {
        text.push_str(&format!(
            "STILL CORDONED (fleetboot cordoned them and could not uncordon them): {}\nput them back with: fleetboot repair --journal {}\n",
            summary.still_cordoned.join(", "),
            summary.journal.display()
        ));
    }
    if summary.window_closed {
        text.push_str("the maintenance windows closed (--window-exit): no new reboot started after that\n");
    }
    if summary.count(Outcome::Interrupted) + summary.count(Outcome::Skipped) > 0 {
        text.push_str(&format!("finish with: fleetboot reboot --resume {}\n", summary.journal.display()));
    }
    text
}

pub fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Rebooted => "rebooted",
        Outcome::Failed => "FAILED",
        Outcome::Skipped => "skipped",
        Outcome::Cancelled => "cancelled",
        Outcome::Interrupted => "interrupted",
        Outcome::PoweredOff => "powered off",
        Outcome::SoftRebooted => "soft-rebooted",
        Outcome::NotNeeded => "not needed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetboot_core::events::HostOutcome;

    #[test]
    fn summary_table_lines_up_and_says_how_to_resume() {
        let summary = Summary {
            run_id: "r".into(),
            journal: "/s/j.jsonl".into(),
            aborted: true,
            elapsed_ms: 75_000,
            still_cordoned: vec![],
            window_closed: false,
            hosts: vec![
                HostOutcome {
                    host: "node-1".into(),
                    address: "127.0.0.2".into(),
                    outcome: Outcome::Rebooted,
                    old_boot_id: Some("aaaaaaaa-1111".into()),
                    new_boot_id: Some("bbbbbbbb-2222".into()),
                    down_ms: Some(14_200),
                    error: None,
                },
                HostOutcome {
                    host: "n2".into(),
                    address: "127.0.0.3".into(),
                    outcome: Outcome::Skipped,
                    old_boot_id: None,
                    new_boot_id: None,
                    down_ms: None,
                    error: None,
                },
            ],
        };
        let text = render_summary(&summary);
        assert!(text.contains("node-1  127.0.0.2  rebooted  aaaaaaaa → bbbbbbbb  14.2s"), "{text}");
        assert!(text.contains("n2      127.0.0.3  skipped   -                    -"), "{text}");
        assert!(text.contains("1 rebooted, 0 failed, 1 skipped, 0 cancelled, 0 interrupted in 1m 15s"), "{text}");
        assert!(text.contains("fleetboot reboot --resume /s/j.jsonl"), "{text}");
    }
}
