//! The migration report: Markdown for people, JSON for machines, and an SVG timeline (nodes as
//! rows, downtime as bars, the paused-pool window shaded). Rendered from the journals alone.

use serde::Serialize;

use super::model::Check;
use super::record::{MigrationState, Step};
use crate::journal::{HostRecord, RunState};

#[derive(Serialize)]
struct StepLine {
    step: Step,
    number: String,
    title: &'static str,
    started_ms: u64,
    ended_ms: Option<u64>,
    failed: Option<String>,
}

#[derive(Serialize)]
struct NodeLine {
    node: String,
    outcome: String,
    dispatched_ms: Option<u64>,
    down_ms: Option<u64>,
    back_ms: Option<u64>,
    transport: String,
    old_boot_id: Option<String>,
    new_boot_id: Option<String>,
    api_boot_id: Option<String>,
    error: Option<String>,
}

#[derive(Serialize)]
struct Report {
    run_id: String,
    target: String,
    flow: String,
    version: String,
    warnings: Vec<String>,
    failing_before: Vec<String>,
    steps: Vec<StepLine>,
    /// The reboot step's number in the flow that ran (7 in the seed document's, 8 in the
    /// two-phase flow's, ...).
    reboot_step: String,
    nodes: Vec<NodeLine>,
    verification: Option<Vec<Check>>,
    verification_passed: Option<bool>,
}

fn node_line(name: &str, r: &HostRecord) -> NodeLine {
    let transport = match (r.attempts.iter().any(|a| a.bmc.is_none()), r.attempts.iter().any(|a| a.bmc.is_some())) {
        (true, true) => "ssh, then BMC".to_owned(),
        (false, true) => "BMC (Redfish)".to_owned(),
        _ => "ssh".to_owned(),
    };
    NodeLine {
        node: name.to_owned(),
        outcome: format!("{:?}", r.phase).to_lowercase(),
        dispatched_ms: r.dispatched_at_ms,
        down_ms: r.down_at_ms,
        back_ms: r.back_at_ms,
        transport,
        old_boot_id: r.old_boot_id.clone(),
        new_boot_id: r.new_boot_id.clone(),
        api_boot_id: r.api_boot_id.clone(),
        error: r.failure.as_ref().map(|(_, e)| e.clone()),
    }
}

fn build(state: &MigrationState, reboot: Option<&RunState>) -> Report {
    let steps = state
        .timings
        .iter()
        .map(|&(step, started, ended)| StepLine {
            step,
            number: state.flow.unwrap_or(super::record::Flow::Seed).number(step),
            title: step.title(),
            started_ms: started,
            ended_ms: ended,
            failed: state.failures.iter().rev().find(|(s, _)| *s == step).filter(|_| !state.is_done(step)).map(|(_, e)| e.clone()),
        })
        .collect();
    let nodes = reboot.map_or_else(Vec::new, |run| run.hosts.iter().map(|h| node_line(&h.name, &run.records[&h.name])).collect());
    Report {
        run_id: state.run_id.clone(),
        target: state.target.clone(),
        flow: state.flow.map_or(String::new(), |f| f.name().to_owned()),
        version: state.version.clone(),
        warnings: state.warnings.clone(),
        failing_before: state.failing_pods.clone(),
        steps,
        reboot_step: state.flow.unwrap_or(super::record::Flow::Seed).number(super::record::Step::RebootNodes),
        nodes,
        verification: state.last_verify.as_ref().map(|(_, c)| c.clone()),
        verification_passed: state.last_verify.as_ref().map(|(p, _)| *p),
    }
}

/// `ms` since the epoch as RFC 3339 UTC to the second (the core has no time crate; this is the
/// civil-from-days conversion of Howard Hinnant's date algorithms).
fn time(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, of_day) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", of_day / 3600, of_day % 3600 / 60, of_day % 60)
}

/// Whole seconds as "1h 2m 3s" (zero parts left out; "0s"), as the rest of fleetboot writes them.
fn took(secs: u64) -> String {
    let parts = [(secs / 86_400, "d"), (secs % 86_400 / 3600, "h"), (secs % 3600 / 60, "m"), (secs % 60, "s")];
    let text: Vec<String> = parts.iter().filter(|(n, _)| *n > 0).map(|(n, unit)| format!("{n}{unit}")).collect();
    if text.is_empty() { "0s".to_owned() } else { text.join(" ") }
}

fn markdown(report: &Report) -> String {
    let mut md = format!("# Migration {} → {}\n\nOpenShift {} · {} flow\n\n", report.run_id, report.target, report.version, report.flow);
    if !report.warnings.is_empty() {
        md.push_str("## Warnings\n\n");
        for w in &report.warnings {
            md.push_str(&format!("- {w}\n"));
        }
        md.push('\n');
    }
    if !report.failing_before.is_empty() {
        md.push_str(&format!(
            "Pods already failing before the migration (not counted by the verification): {}\n\n",
            report.failing_before.join(", ")
        ));
    }
    md.push_str("## Steps\n\n| step | what | started | took | result |\n|---|---|---|---|---|\n");
    for s in &report.steps {
        let took = s.ended_ms.map_or("-".to_owned(), |e| took(e.saturating_sub(s.started_ms) / 1000));
        let result = match (&s.failed, s.ended_ms) {
            (Some(e), _) => format!("FAILED: {e}"),
            (None, Some(_)) => "done".into(),
            (None, None) => "interrupted".into(),
        };
        md.push_str(&format!("| {} | {} | {} | {took} | {} |\n", s.number, s.title, time(s.started_ms), result.replace('|', "\\|")));
    }
    if !report.nodes.is_empty() {
        md.push_str(&format!("\n## Step {}: node reboots\n\n", report.reboot_step));
        md.push_str("| node | outcome | transport | dispatched | down | back | boot ID before → after (API) | error |\n|---|---|---|---|---|---|---|---|\n");
        for n in &report.nodes {
            let t = |v: Option<u64>| v.map_or("-".to_owned(), time);
            let ids = format!(
                "{} → {} ({})",
                n.old_boot_id.as_deref().map_or("-", crate::table::short_id),
                n.new_boot_id.as_deref().map_or("-", crate::table::short_id),
                n.api_boot_id.as_deref().map_or("-", crate::table::short_id)
            );
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {ids} | {} |\n",
                n.node,
                n.outcome,
                n.transport,
                t(n.dispatched_ms),
                t(n.down_ms),
                t(n.back_ms),
                n.error.as_deref().unwrap_or("").replace('|', "\\|")
            ));
        }
        md.push_str("\n![timeline](timeline.svg)\n");
    }
    if let Some(checks) = &report.verification {
        md.push_str("\n## Verification (steps 9-10)\n\n| result | check | detail |\n|---|---|---|\n");
        for c in checks {
            md.push_str(&format!("| {} | {} | {} |\n", if c.passed { "PASS" } else { "FAIL" }, c.name, c.detail.replace('|', "\\|")));
        }
    }
    md
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Nodes as rows, from dispatch to back: waiting (light) then down (dark); the window in which
/// the pools were paused shaded behind them. Pure.
fn svg(report: &Report, paused: Option<(u64, u64)>) -> String {
    let rows = report.nodes.len().max(1);
    let (label_w, width, row_h, top) = (140.0, 900.0, 22.0, 40.0);
    let starts = report.nodes.iter().filter_map(|n| n.dispatched_ms);
    let ends = report.nodes.iter().filter_map(|n| n.back_ms.or(n.down_ms).or(n.dispatched_ms));
    let t0 = starts.clone().chain(paused.map(|p| p.0)).min().unwrap_or(0);
    let t1 = ends.chain(paused.map(|p| p.1)).max().unwrap_or(t0 + 1).max(t0 + 1);
    let x = |t: u64| label_w + (t.saturating_sub(t0)) as f64 / (t1 - t0) as f64 * (width - label_w - 20.0);
    let height = top + rows as f64 * row_h + 30.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <text x=\"10\" y=\"20\" font-size=\"14\">{} → {}: step {}, node reboots ({} s shown)</text>\n",
        escape(&report.run_id),
        escape(&report.target),
        escape(&report.reboot_step),
        (t1 - t0) / 1000
    );
    if let Some((a, b)) = paused {
        svg.push_str(&format!(
            "<rect x=\"{:.1}\" y=\"{top}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#fff3cd\"/><text x=\"{:.1}\" y=\"{:.1}\" fill=\"#8a6d3b\">pools paused</text>\n",
            x(a), (x(b) - x(a)).max(1.0), rows as f64 * row_h, x(a) + 4.0, top - 4.0
        ));
    }
    for (i, n) in report.nodes.iter().enumerate() {
        let y = top + i as f64 * row_h;
        svg.push_str(&format!("<text x=\"10\" y=\"{:.1}\">{}</text>\n", y + 15.0, escape(&n.node)));
        if let Some(d) = n.dispatched_ms {
            let down = n.down_ms.unwrap_or(d);
            let back = n.back_ms.unwrap_or(t1);
            svg.push_str(&format!("<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"14\" fill=\"#9ecae1\"><title>waiting for the reboot</title></rect>\n", x(d), y + 4.0, (x(down) - x(d)).max(1.0)));
            let color = if n.outcome == "confirmed" { "#3182bd" } else { "#de2d26" };
            svg.push_str(&format!(
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"14\" fill=\"{color}\"><title>{} down {} s via {}</title></rect>\n",
                x(down),
                y + 4.0,
                (x(back) - x(down)).max(1.0),
                escape(&n.node),
                back.saturating_sub(down) / 1000,
                escape(&n.transport)
            ));
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// The report's files, by name (report.md, report.json, timeline.svg), rendered from the
/// migration's fold and its reboot run's (when step 7 started one); `now_ms` closes a paused
/// window still open. Pure: the caller writes them.
pub fn render(state: &MigrationState, reboot: Option<&RunState>, now_ms: u64) -> Vec<(&'static str, String)> {
    let report = build(state, reboot);
    let paused = state.timings.iter().find(|t| t.0 == Step::PausePools).and_then(|t| t.2).map(|start| {
        let end = state.timings.iter().find(|t| t.0 == Step::ResumePools).and_then(|t| t.2).unwrap_or(now_ms);
        (start, end)
    });
    vec![
        ("report.md", markdown(&report)),
        ("report.json", serde_json::to_string_pretty(&report).expect("serializes")),
        ("timeline.svg", svg(&report, paused)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_svg_has_a_row_per_node_and_the_paused_window() {
        let report = Report {
            run_id: "m1".into(),
            target: "OVNKubernetes".into(),
            flow: "seed".into(),
            version: "4.7.60".into(),
            warnings: vec![],
            failing_before: vec![],
            steps: vec![],
            reboot_step: "7".into(),
            nodes: vec![
                NodeLine {
                    node: "w0".into(),
                    outcome: "confirmed".into(),
                    dispatched_ms: Some(1000),
                    down_ms: Some(2000),
                    back_ms: Some(5000),
                    transport: "ssh".into(),
                    old_boot_id: None,
                    new_boot_id: None,
                    api_boot_id: None,
                    error: None,
                },
                NodeLine {
                    node: "w<1>".into(),
                    outcome: "failed".into(),
                    dispatched_ms: Some(1000),
                    down_ms: None,
                    back_ms: None,
                    transport: "BMC (Redfish)".into(),
                    old_boot_id: None,
                    new_boot_id: None,
                    api_boot_id: None,
                    error: Some("x".into()),
                },
            ],
            verification: None,
            verification_passed: None,
        };
        let svg = svg(&report, Some((500, 9000)));
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains(">w0</text>") && svg.contains("w&lt;1&gt;") && svg.contains("pools paused"));
        assert_eq!(svg.matches("#de2d26").count(), 1, "the failed node's bar is red");
        let md = markdown(&report);
        assert_eq!(time(1_764_657_628_999), "2025-12-02T06:40:28Z");
        assert_eq!(time(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!((took(0), took(21), took(3723), took(90_061)), ("0s".into(), "21s".into(), "1h 2m 3s".into(), "1d 1h 1m 1s".into()));
        assert!(md.contains("| w0 | confirmed | ssh |") && md.contains("timeline.svg"));
        assert!(md.contains("## Step 7: node reboots") && svg.contains("step 7, node reboots"));
    }

    #[test]
    fn the_reboot_steps_number_is_the_flows() {
        use super::super::record::{Flow, Step};
        let two_phase = Flow::TwoPhase.number(Step::RebootNodes);
        assert_ne!(two_phase, "7", "the two-phase flow numbers its steps by position");
        let report = build(&MigrationState { flow: Some(Flow::TwoPhase), ..MigrationState::default() }, None);
        assert_eq!(report.reboot_step, two_phase);
        assert_eq!(build(&MigrationState { flow: Some(Flow::Seed), ..MigrationState::default() }, None).reboot_step, "7");
    }
}
