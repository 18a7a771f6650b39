//! `fleetboot reboot`'s batch flags (windows, `--only-if`, blockers, the health gate, the drain ladder): one flattened group, parsed straight
//! into core's [`BatchPartial`].

use clap::Args;

use fleetboot_core::batch::{BatchPartial, DrainStep, Window};
use fleetboot_core::settings::parse_command;

/// Maintenance windows and `--only-if`.
#[derive(Args, Debug, Clone)]
pub struct BatchArgs {
    /// New reboots start only inside this window: `DAYS HH:MM-HH:MM` or `HH:MM-HH:MM` (every
    /// day), e.g. "Mon-Fri 22:00-06:00" (crossing midnight: it belongs to the day it starts).
    /// Repeatable. Hosts in flight always finish. Outside a window the run waits with a
    /// countdown, or stops with --window-exit.
    #[arg(long = "window", value_name = "WINDOW", value_parser = parse_window)]
    pub windows: Vec<Window>,
    /// The windows' time zone, an IANA name (Europe/Berlin) [default: UTC]. Clock changes are
    /// kept: a window on such a day is as long as the wall clock says.
    #[arg(long, value_name = "ZONE", value_parser = parse_zone, requires = "windows")]
    pub window_tz: Option<String>,
    /// Outside the windows, stop instead of waiting: exit 5 once the hosts in flight are done;
    /// `--resume` continues (inside a window).
    #[arg(long, requires = "windows")]
    pub window_exit: bool,
    /// Run on each host (through the transport) right before it would start: exit 0 means it
    /// needs the reboot; any other exit journals it `not needed` (e.g. "test -f
    /// /var/run/reboot-required").
    #[arg(long, value_name = "CMD", value_parser = parse_command)]
    pub only_if: Option<String>,
    /// Cluster runs: no new reboot while a pod matching this label selector runs anywhere
    /// (not Succeeded, Failed or Unknown), re-checked before each one; the reason is shown and
    /// journaled.
    #[arg(long, value_name = "SELECTOR")]
    pub block_on_pods: Option<String>,
    /// With --block-on-pods: only the matching pods on the node about to go count.
    #[arg(long, requires = "block_on_pods")]
    pub block_on_pods_on_node: bool,
    /// Before each new reboot, the cluster must be healthy this many times in a row: every
    /// node Ready (but the run's own in flight), no MachineConfigPool Degraded, every
    /// ClusterOperator Available and not Degraded, and --health-command exiting 0.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub healthy_checks: Option<u32>,
    /// Between the health checks [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = super::args::setting_duration)]
    pub healthy_interval: Option<std::time::Duration>,
    /// A command run here (by `sh -c`, not on a node) as part of each health check: exit 0
    /// is healthy. Without --healthy-checks: one check.
    #[arg(long, value_name = "CMD", value_parser = parse_command)]
    pub health_command: Option<String>,
    /// After a node is proven, its group's next reboot waits this long.
    #[arg(long, value_name = "DURATION", value_parser = super::args::setting_duration)]
    pub soak: Option<std::time::Duration>,
    /// With --drain: what each --drain-timeout of a node leads to, in order: wait (drain
    /// again), defer (uncordon, move it to the end of the queue), skip (uncordon, leave it,
    /// reported), force (delete what is left; only when named). Once spent, --drain-failure
    /// decides.
    #[arg(long, value_name = "STEPS", value_parser = parse_ladder, requires = "drain")]
    pub drain_escalation: Option<DrainLadder>,
    /// With --drain: evict only the pods matching this label selector (kured's partial
    /// drain), e.g. "app!=node-agent"; the others stay on the node through its reboot.
    /// DaemonSet and mirror pods are never evicted either way.
    #[arg(long, value_name = "SELECTOR", value_parser = fleetboot_core::batch::parse_label_selector, requires = "drain")]
    pub drain_pod_selector: Option<String>,
    /// No new reboot while an alert fires on this Alertmanager (API v2: /api/v2/alerts, active,
    /// not silenced or inhibited), re-checked before each reboot.
    #[arg(long, value_name = "URL", value_parser = parse_alertmanager)]
    pub block_on_alerts: Option<String>,
    /// With --block-on-alerts: ignore alerts whose name matches this regular expression (as
    /// kured's --alert-filter-regexp), e.g. "^(Watchdog|InfoInhibitor)$".
    #[arg(long, value_name = "REGEXP", value_parser = parse_regexp, requires = "block_on_alerts")]
    pub alert_filter_regexp: Option<String>,
    /// Post a message to this webhook when the run starts, a node is drained, rebooted or
    /// failed, the run is held, and when it finishes. Failures are warnings; the URL is shown
    /// only as its scheme and host. Not journaled: give it again with --resume.
    #[arg(long, value_name = "URL")]
    pub notify: Option<String>,
    /// Cluster runs: set this label (KEY=VALUE) on each node right before its reboot is sent
    /// (kured's --pre-reboot-node-labels). Repeatable.
    #[arg(long = "pre-reboot-label", value_name = "KEY=VALUE", value_parser = fleetboot_core::batch::parse_label)]
    pub pre_reboot_labels: Vec<(String, String)>,
    /// Cluster runs: set this label on each node once its reboot is proven. Repeatable.
    #[arg(long = "post-reboot-label", value_name = "KEY=VALUE", value_parser = fleetboot_core::batch::parse_label)]
    pub post_reboot_labels: Vec<(String, String)>,
    /// Cluster runs: annotate each node `fleetboot.io/reboot-in-progress: RUN` while it is in
    /// flight (from its drain to its proof), so other tools see it.
    #[arg(long)]
    pub in_progress_annotation: bool,
    /// Serve Prometheus metrics of the run at http://ADDR/metrics while it runs (nodes by
    /// state, reboots, failures, blocked seconds, dispatch-to-proof durations), e.g.
    /// 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// The webhook's payload: json, slack or teams.
    #[arg(long, value_enum, default_value = "json", requires = "notify")]
    pub notify_format: crate::report::notify::NotifyFormat,
}

/// `--drain-escalation` as clap hands it over (one value, not a list of values).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrainLadder(pub Vec<DrainStep>);

fn parse_ladder(text: &str) -> Result<DrainLadder, String> {
    fleetboot_core::batch::parse_drain_escalation(text).map(DrainLadder)
}

fn parse_alertmanager(text: &str) -> Result<String, String> {
    crate::adapters::alerts::AlertSource::new(text).map(|_| text.trim().to_owned())
}

fn parse_regexp(text: &str) -> Result<String, String> {
    regex::Regex::new(text).map(|_| text.to_owned()).map_err(|e| e.to_string())
}

fn parse_window(text: &str) -> Result<Window, String> {
    text.parse()
}

fn parse_zone(text: &str) -> Result<String, String> {
    let name = text.trim();
    crate::adapters::tz::IanaZone::named(name).map(|_| name.to_owned()).map_err(|e| e.to_string())
}

impl BatchArgs {
    /// What these flags set (`Some` where given).
    pub fn partial(&self) -> BatchPartial {
        BatchPartial {
            windows: Some(self.windows.clone()).filter(|w| !w.is_empty()),
            window_tz: self.window_tz.clone(),
            window_exit: self.window_exit.then_some(true),
            only_if: self.only_if.clone(),
            block_on_pods: self.block_on_pods.clone(),
            block_on_pods_on_node: self.block_on_pods_on_node.then_some(true),
            healthy_checks: self.healthy_checks.or(self.health_command.as_ref().map(|_| 1)),
            healthy_interval_ms: self.healthy_interval.map(|d| d.as_millis() as u64),
            health_command: self.health_command.clone(),
            soak_ms: self.soak.map(|d| d.as_millis() as u64),
            drain_escalation: self.drain_escalation.clone().map(|l| l.0),
            block_on_alerts: self.block_on_alerts.clone(),
            alert_filter: self.alert_filter_regexp.clone(),
            pre_reboot_labels: Some(self.pre_reboot_labels.iter().cloned().collect())
                .filter(|l: &std::collections::BTreeMap<_, _>| !l.is_empty()),
            post_reboot_labels: Some(self.post_reboot_labels.iter().cloned().collect())
                .filter(|l: &std::collections::BTreeMap<_, _>| !l.is_empty()),
            in_progress_annotation: self.in_progress_annotation.then_some(true),
            drain_pod_selector: self.drain_pod_selector.clone(),
        }
    }
}
