//! `--notify`: which of a run's events someone is told about, and in which words. Pure: the
//! adapter (`adapters::notify`) posts what this renders.

use fleetboot_core::events::{Event, Outcome};
use fleetboot_core::journal::Entry;
use serde_json::{Value, json};

/// The payload shapes `--notify-format` selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum NotifyFormat {
    /// `{"event", "run_id", "host", "text", "at_ms"}`.
    Json,
    /// A Slack incoming webhook: `{"text"}`.
    Slack,
    /// A Microsoft Teams incoming webhook: a MessageCard with `text`.
    Teams,
}

/// One thing to tell: what happened (`started`, `drained`, `rebooted`, `failed`, `held`,
/// `finished`), to which host, in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub event: &'static str,
    pub host: Option<String>,
    pub text: String,
    pub at_ms: Option<u64>,
}

/// Turns a run's events into notices, in order, remembering the run's ID.
#[derive(Default)]
pub struct Notices {
    run_id: String,
}

impl Notices {
    pub fn of(&mut self, event: &Event) -> Option<Notice> {
        let notice = |event, host: Option<&str>, text: String, at_ms| Notice { event, host: host.map(str::to_owned), text, at_ms };
        match event {
            Event::Started { run_id, hosts, resumed, to_reboot, .. } => {
                self.run_id.clone_from(run_id);
                let verb = if *resumed { "resumed" } else { "started" };
                Some(notice("started", None, format!("run {run_id} {verb}: {hosts} hosts, {to_reboot} to reboot"), None))
            }
            Event::Transition { record } => {
                let at = Some(record.at_ms);
                match &record.entry {
                    Entry::Drained { host, evicted } => {
                        Some(notice("drained", Some(host), format!("{host} drained ({evicted} pods evicted)"), at))
                    }
                    Entry::Confirmed { host } => Some(notice("rebooted", Some(host), format!("{host} rebooted"), at)),
                    Entry::Failed { host, error, .. } => Some(notice("failed", Some(host), format!("{host} FAILED: {error}"), at)),
                    Entry::Held { reason, .. } => Some(notice("held", None, format!("held: {reason}"), at)),
                    _ => None,
                }
            }
            Event::Finished { summary } => {
                let n = |o| summary.count(o);
                let text = format!(
                    "run {} finished: {} rebooted, {} failed, {} skipped, {} not needed (exit {})",
                    summary.run_id,
                    n(Outcome::Rebooted),
                    n(Outcome::Failed),
                    n(Outcome::Skipped),
                    n(Outcome::NotNeeded),
                    summary.exit_code() as i32
                );
                Some(notice("finished", None, text, None))
            }
            _ => None,
        }
    }

    /// The body to post, in the chosen shape.
    pub fn payload(&self, notice: &Notice, format: NotifyFormat) -> Value {
        let text = format!("fleetboot: {}", notice.text);
        match format {
            NotifyFormat::Json => json!({
                "event": notice.event, "run_id": self.run_id, "host": notice.host, "text": notice.text, "at_ms": notice.at_ms,
            }),
            NotifyFormat::Slack => json!({ "text": text }),
            NotifyFormat::Teams => json!({
                "@type": "MessageCard", "@context": "https://schema.org/extensions", "summary": "fleetboot", "text": text,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetboot_core::journal::Record;

    #[test]
    fn the_run_is_told_in_order_and_in_the_chosen_shape() {
        let mut notices = Notices::default();
        let started = Event::Started { run_id: "r1".into(), journal: "/j".into(), hosts: 2, resumed: false, to_reboot: 2, awaiting: 0 };
        let n = notices.of(&started).unwrap();
        assert_eq!((n.event, n.text.as_str()), ("started", "run r1 started: 2 hosts, 2 to reboot"));
        let confirmed = Event::Transition { record: Record { v: 1, at_ms: 5, entry: Entry::Confirmed { host: "h1".into() } } };
        let n = notices.of(&confirmed).unwrap();
        assert_eq!(
            notices.payload(&n, NotifyFormat::Json),
            json!({"event": "rebooted", "run_id": "r1", "host": "h1", "text": "h1 rebooted", "at_ms": 5})
        );
        assert_eq!(notices.payload(&n, NotifyFormat::Slack), json!({"text": "fleetboot: h1 rebooted"}));
        assert_eq!(notices.payload(&n, NotifyFormat::Teams)["@type"], "MessageCard");
        let boot = Event::Transition { record: Record { v: 1, at_ms: 6, entry: Entry::Down { host: "h1".into() } } };
        assert_eq!(notices.of(&boot), None, "not every transition is news");
    }
}
