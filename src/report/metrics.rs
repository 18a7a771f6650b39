//! `--metrics-listen`: a run's events as Prometheus metrics (prometheus-client, text format).
//! Updated from the same events the reporters render; the adapter serves the text.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use fleetboot_core::events::Event;
use fleetboot_core::journal::{Entry, HostRecord, Phase};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

/// The metrics of one run, and what they are computed from.
pub struct RunMetrics {
    registry: Registry,
    nodes: Family<StateLabel, Gauge>,
    reboots: Counter,
    failures: Counter,
    blocked: Counter<f64, AtomicU64>,
    held: Gauge,
    proof: Histogram,
    hosts: BTreeMap<String, HostRecord>,
    /// When the current hold began (ms, journal time).
    held_since: Option<u64>,
}

const STATES: [&str; 7] = ["pending", "in_flight", "rebooted", "failed", "skipped", "not_needed", "other"];

fn state_of(phase: Phase) -> &'static str {
    match phase {
        Phase::Pending => "pending",
        Phase::Dispatching | Phase::Dispatched | Phase::Down | Phase::Back => "in_flight",
        Phase::Confirmed => "rebooted",
        Phase::Failed | Phase::SoftRebooted => "failed",
        Phase::Skipped | Phase::Cancelled => "skipped",
        Phase::NotNeeded => "not_needed",
        Phase::PoweredOff => "other",
    }
}

impl Default for RunMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("fleetboot");
        let nodes = Family::<StateLabel, Gauge>::default();
        registry.register("nodes", "Hosts of the run by state", nodes.clone());
        let reboots = Counter::default();
        registry.register("reboots", "Reboots proven (new boot ID, and Ready where a cluster shows it)", reboots.clone());
        let failures = Counter::default();
        registry.register("failures", "Hosts failed", failures.clone());
        let blocked = Counter::<f64, AtomicU64>::default();
        registry.register("blocked_seconds", "Seconds no new reboot could start (windows, blockers, health, soak)", blocked.clone());
        let held = Gauge::default();
        registry.register("held", "1 while no new reboot may start", held.clone());
        let proof = Histogram::new(exponential_buckets(5.0, 2.0, 10));
        registry.register("dispatch_to_proof_seconds", "From the reboot sent to its proof", proof.clone());
        RunMetrics { registry, nodes, reboots, failures, blocked, held, proof, hosts: BTreeMap::new(), held_since: None }
    }
}

impl RunMetrics {
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn update(&mut self, event: &Event) {
        let Event::Transition { record } = event else { return };
        let at = record.at_ms;
        match &record.entry {
            Entry::RunStarted { hosts, .. } => {
                for host in hosts {
                    self.hosts.entry(host.name.clone()).or_insert_with(HostRecord::pending);
                }
            }
            Entry::Held { .. } if self.held_since.is_none() => {
                self.held_since = Some(at);
                self.held.set(1);
            }
            Entry::Dispatching { .. } | Entry::RunFinished { .. } => self.end_hold(at),
            _ => {}
        }
        if let Some(host) = record.entry.host() {
            let state = self.hosts.entry(host.to_owned()).or_insert_with(HostRecord::pending);
            let sent = state.dispatched_at_ms;
            state.apply(&record.entry, at);
            match &record.entry {
                Entry::Confirmed { .. } => {
                    self.reboots.inc();
                    if let Some(sent) = sent {
                        self.proof.observe(at.saturating_sub(sent) as f64 / 1000.0);
                    }
                }
                Entry::Failed { .. } => {
                    self.failures.inc();
                }
                _ => {}
            }
        }
        for state in STATES {
            let n = self.hosts.values().filter(|h| state_of(h.phase) == state).count();
            self.nodes.get_or_create(&StateLabel { state }).set(n as i64);
        }
    }

    fn end_hold(&mut self, at: u64) {
        if let Some(since) = self.held_since.take() {
            self.blocked.inc_by(at.saturating_sub(since) as f64 / 1000.0);
            self.held.set(0);
        }
    }

    /// The text a scrape gets.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
