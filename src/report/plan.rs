//! `fleetboot reboot --dry-run`: the plan, the settings it runs under, and what the limits imply.

use fleetboot_core::journal::ResumeAction;
use fleetboot_core::plan::{self, Plan};

use crate::adapters::config::Settings;

/// `cluster_run`: the hosts were mapped onto a cluster's nodes (the NODE column says which).
/// `listed_as`: for a host list mapped onto nodes, each node's line as the user wrote it (its
/// own name, where it was listed): the HOST column shows the line's name.
pub fn render_plan(
    plan: &Plan,
    settings: &Settings,
    cluster_run: bool,
    listed_as: &std::collections::BTreeMap<String, (String, String)>,
    limits: fleetboot_core::limits::Rule,
) -> String {
    let r = &settings.run;
    let mut text = format!(
        "plan for run {} (dry run: nothing is contacted)\n\n\
         reboot command: {}\nproof: boot ID from `{}` must change within {}\n\
         concurrency: {} down at once · rate: {} · max failures: {} of {} · probes every {}\n\
         ssh: user {} · port {} · host keys: {:?} against {}\n\n",
        plan.run_id,
        r.command,
        r.boot_id_command,
        humantime::format_duration(r.timeout),
        r.concurrency,
        r.rate.map_or("unlimited".to_owned(), |rate| format!("{rate} (one every {})", humantime::format_duration(rate.spacing()))),
        r.max_failures.tolerated(plan.hosts.len()),
        plan.hosts.len(),
        humantime::format_duration(r.poll_interval),
        settings.run.ssh.user,
        settings.run.ssh.port,
        settings.run.ssh.host_key_policy,
        settings.run.ssh.known_hosts,
    );
    let rows: Vec<Vec<String>> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let group = plan.grouping.group_of(&s.host.name).map_or("-".to_owned(), |g| {
                let limit = plan.grouping.limits.get(g).copied().unwrap_or(0);
                let last = if plan.grouping.is_last(&s.host.name) { ", after all others" } else { "" };
                format!("{g} (≤{limit} at once{last})")
            });
            let node = match (cluster_run, plan.grouping.is_standalone(&s.host.name)) {
                (true, false) => s.host.name.clone(),
                (true, true) => "not a node".to_owned(),
                (false, _) => "-".to_owned(),
            };
            let (listed, line) = listed_as.get(&s.host.name).map_or((s.host.name.clone(), "-".to_owned()), Clone::clone);
            vec![
                (i + 1).to_string(),
                listed,
                format!("{}:{}", s.host.address, s.host.port_or(settings.run.ssh.port)),
                node,
                group,
                plan::describe(s.action).to_owned(),
                line,
            ]
        })
        .collect();
    text.push_str(&fleetboot_core::table::table(&["#", "HOST", "ADDRESS", "NODE", "GROUP", "ACTION", "LISTED AT"], &rows));
    let wait = humantime::format_duration(r.timeout).to_string();
    text.push_str(&format!("\n{}\n", limits.describe(cluster_run, &wait)));
    if let Some(rate) = r.rate {
        let n = plan.count(ResumeAction::Reboot) as u32;
        let floor = rate.spacing() * n.saturating_sub(1);
        text.push_str(&format!("\nthe rate alone spreads the reboot commands over at least {}\n", humantime::format_duration(floor)));
    }
    text
}

/// The batch part of a dry run: the windows (open or closed at `now_ms`, and until when), what a
/// closed window does, `--only-if`, and the plan's boot IDs. Empty for a run without any.
pub fn render_batch(batch: &fleetboot_core::batch::BatchSettings, now_ms: u64) -> String {
    use fleetboot_core::batch::{WindowState, window_state};
    if batch.is_empty() {
        return String::new();
    }
    let mut text = String::from("\n");
    if !batch.windows.is_empty() {
        let zone = crate::adapters::tz::IanaZone::named(batch.zone_name());
        let list: Vec<String> = batch.windows.iter().map(ToString::to_string).collect();
        text.push_str(&format!("windows: {} ({})", list.join(", "), batch.zone_name()));
        if let Ok(zone) = zone {
            match window_state(&batch.windows, &zone, now_ms as i64) {
                WindowState::Open { closes_at_ms } => text.push_str(&format!(" · open now, until {}", zone.show(closes_at_ms))),
                WindowState::Closed { opens_at_ms } => text.push_str(&format!(" · closed now, next opens {}", zone.show(opens_at_ms))),
                WindowState::Always => {}
            }
        }
        text.push_str(if batch.window_exit {
            "\noutside the windows: no new reboot; the run stops with exit 5 once hosts in flight are done (--window-exit), --resume continues\n"
        } else {
            "\noutside the windows: no new reboot; the run waits with a countdown (hosts in flight finish)\n"
        });
    }
    if let Some(command) = &batch.only_if {
        text.push_str(&format!("only if: `{command}` exits 0 on the host right before it starts; otherwise journaled not needed\n"));
    }
    if batch.reads_plan_boot_ids() {
        text.push_str("each host's boot ID is noted at the start: a host rebooted since (by anyone) counts as done\n");
    }
    if let Some(selector) = &batch.block_on_pods {
        let place = if batch.block_on_pods_on_node { "on the node about to go" } else { "anywhere" };
        text.push_str(&format!("blocked while pods matching {selector:?} run {place} (re-checked before each reboot)\n"));
    }
    if let Some(url) = &batch.block_on_alerts {
        let filter = batch.alert_filter.as_ref().map_or(String::new(), |f| format!(" (ignoring names matching {f:?})"));
        text.push_str(&format!(
            "blocked while an alert fires at {}{filter} (re-checked before each reboot)\n",
            crate::adapters::notify::redact(url)
        ));
    }
    if batch.healthy_checks > 0 {
        let command = batch.health_command.as_ref().map_or(String::new(), |c| format!(", and `{c}` exits 0"));
        text.push_str(&format!(
            "health gate before each reboot: {} healthy checks in a row, {} apart (every node Ready, no pool Degraded, \
             ClusterOperators Available and not Degraded{command})\n",
            batch.healthy_checks,
            humantime::format_duration(std::time::Duration::from_millis(batch.healthy_interval_ms()))
        ));
    }
    if batch.soak_ms > 0 {
        text.push_str(&format!(
            "soak: {} after a node is proven before the next of its group\n",
            humantime::format_duration(std::time::Duration::from_millis(batch.soak_ms))
        ));
    }
    let labels = |l: &std::collections::BTreeMap<String, String>| l.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
    if !batch.pre_reboot_labels.is_empty() {
        text.push_str(&format!("labels before each reboot: {}\n", labels(&batch.pre_reboot_labels)));
    }
    if !batch.post_reboot_labels.is_empty() {
        text.push_str(&format!("labels once proven: {}\n", labels(&batch.post_reboot_labels)));
    }
    if batch.in_progress_annotation {
        text.push_str(&format!("annotation while in flight: {}: RUN\n", fleetboot_core::batch::IN_PROGRESS_ANNOTATION));
    }
    if let Some(selector) = &batch.drain_pod_selector {
        text.push_str(&format!("drain: only pods matching {selector:?} are evicted; the others stay on the node\n"));
    }
    if !batch.drain_escalation.is_empty() {
        let steps: Vec<&str> = batch.drain_escalation.iter().map(|s| s.name()).collect();
        text.push_str(&format!("after each drain timeout: {} (then --drain-failure)\n", steps.join(" → ")));
    }
    text
}
