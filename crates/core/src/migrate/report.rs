//! The migration report: Markdown for people, JSON for machines, the SVG timeline
//! ([`crate::timeline`]: every step of the flow, each node's reboots, aggregates, the paused-pool
//! window) and a self-contained HTML report for the change ticket. Rendered from the journals alone.

use serde::Serialize;

use super::model::Check;
use super::record::{MigrationState, Step};
use crate::journal::{HostRecord, Record, RunState};
use crate::timeline::{self, Timeline};
pub use crate::timeline::{time, took};

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

/// A reboot run's journal: its records and their fold.
pub type Run<'a> = (&'a [Record], &'a RunState);

/// The migration's timeline: a lane per step of the flow that ran, the reboot step's run (and
/// the `--reboot-error-nodes` run's) as each node's reboots, the paused window. `now_ms` ends
/// what is still open.
pub fn timeline(state: &MigrationState, reboot: Option<Run>, error_nodes: Option<Run>, now_ms: u64) -> Timeline {
    let flow = state.flow.unwrap_or(super::record::Flow::Seed);
    let steps = flow.steps();
    let mut t = Timeline {
        title: format!("Migration {} → {} ({} flow)", state.run_id, state.target, flow.name()),
        start_ms: state.timings.first().map_or(now_ms, |s| s.1),
        end_ms: if state.is_over() { state.timings.iter().filter_map(|s| s.2).max().unwrap_or(now_ms) } else { now_ms },
        step_lanes: steps.iter().map(|s| format!("{} {}", flow.number(*s), s.title())).collect(),
        paused: paused_window(state, now_ms),
        ..Timeline::default()
    };
    for &(step, started, ended) in &state.timings {
        let Some(lane) = steps.iter().position(|s| *s == step) else { continue };
        let failed = state.failures.iter().rev().find(|(s, _)| *s == step).filter(|_| !state.is_done(step)).map(|(_, e)| e.clone());
        let failed = failed.filter(|_| state.timings.iter().rev().find(|t| t.0 == step).is_some_and(|t| t.1 == started));
        t.spans.push(timeline::Span {
            lane,
            start_ms: started,
            end_ms: ended.unwrap_or(now_ms).max(started),
            open: ended.is_none(),
            failed,
        });
    }
    let runs =
        [(reboot, format!("fleetboot step {}", flow.number(Step::RebootNodes))), (error_nodes, "fleetboot (pods in error)".to_owned())];
    for (run, by) in runs {
        let Some((records, run)) = run else { continue };
        let (reboots, marks) = timeline::reboots_of(records, run, &by, now_ms);
        for h in &run.hosts {
            if !t.nodes.contains(&h.name) {
                t.nodes.push(h.name.clone());
            }
        }
        t.groups.extend(run.grouping.of.clone());
        t.reboots.extend(reboots);
        t.marks.extend(marks);
    }
    // The MCO's reboots, seen between two looks at the node: drawn over that interval.
    for seen in &state.observed_reboots {
        if !t.nodes.contains(&seen.node) {
            t.nodes.push(seen.node.clone());
        }
        t.reboots.push(timeline::Reboot {
            node: seen.node.clone(),
            by: seen.by.clone(),
            transport: "MCO",
            sent_ms: seen.since_ms,
            down_ms: Some(seen.since_ms),
            end_ms: seen.seen_ms,
            outcome: timeline::Outcome::Back,
        });
    }
    t.fit();
    t
}

fn paused_window(state: &MigrationState, now_ms: u64) -> Option<(u64, u64)> {
    state.timings.iter().find(|t| t.0 == Step::PausePools).and_then(|t| t.2).map(|start| {
        let end = state.timings.iter().find(|t| t.0 == Step::ResumePools).and_then(|t| t.2).unwrap_or(now_ms);
        (start, end)
    })
}

fn html(report: &Report, svg: &str) -> String {
    let mut notes = vec![format!("OpenShift {} · {} flow", report.version, report.flow)];
    notes.extend(report.warnings.iter().map(|w| format!("Warning: {w}")));
    if !report.failing_before.is_empty() {
        notes.push(format!(
            "Pods already failing before the migration (not counted by the verification): {}",
            report.failing_before.join(", ")
        ));
    }
    let steps = timeline::Table {
        heading: "Steps".into(),
        columns: ["step", "what", "started", "took", "result"].map(String::from).to_vec(),
        rows: report
            .steps
            .iter()
            .map(|s| {
                let result = match (&s.failed, s.ended_ms) {
                    (Some(e), _) => format!("FAILED: {e}"),
                    (None, Some(_)) => "done".into(),
                    (None, None) => "interrupted".into(),
                };
                let took = s.ended_ms.map_or("-".to_owned(), |e| took(e.saturating_sub(s.started_ms) / 1000));
                vec![s.number.clone(), s.title.to_owned(), time(s.started_ms), took, result]
            })
            .collect(),
    };
    let mut tables = vec![steps, node_table(&format!("Step {}: node reboots", report.reboot_step), &report.nodes)];
    if let Some(checks) = &report.verification {
        tables.push(timeline::Table {
            heading: "Verification".into(),
            columns: ["result", "check", "detail"].map(String::from).to_vec(),
            rows: checks
                .iter()
                .map(|c| vec![if c.passed { "PASS" } else { "FAIL" }.to_owned(), c.name.clone(), c.detail.clone()])
                .collect(),
        });
    }
    timeline::html(&format!("Migration {} → {}", report.run_id, report.target), &notes, svg, &tables)
}

fn node_table(heading: &str, nodes: &[NodeLine]) -> timeline::Table {
    let t = |v: Option<u64>| v.map_or("-".to_owned(), time);
    let id = |v: &Option<String>| v.as_deref().map_or("-", crate::table::short_id).to_owned();
    timeline::Table {
        heading: heading.to_owned(),
        columns: ["node", "outcome", "transport", "dispatched", "down", "back", "boot ID before", "after", "API", "error"]
            .map(String::from)
            .to_vec(),
        rows: nodes
            .iter()
            .map(|n| {
                vec![
                    n.node.clone(),
                    n.outcome.clone(),
                    n.transport.clone(),
                    t(n.dispatched_ms),
                    t(n.down_ms),
                    t(n.back_ms),
                    id(&n.old_boot_id),
                    id(&n.new_boot_id),
                    id(&n.api_boot_id),
                    n.error.clone().unwrap_or_default(),
                ]
            })
            .collect(),
    }
}

/// A plain reboot run's report (`fleetboot reboot --report DIR`, `fleetboot report`):
/// report.md, report.html and timeline.svg, from its journal. Pure: the caller writes them.
pub fn render_run(records: &[Record], run: &RunState, now_ms: u64) -> Vec<(&'static str, String)> {
    let picture = timeline::layout(&timeline::of_run(records, run, now_ms));
    let svg = timeline::svg(&picture);
    let nodes: Vec<NodeLine> = run.hosts.iter().map(|h| node_line(&h.name, &run.records[&h.name])).collect();
    let table = node_table("Node reboots", &nodes);
    let state = if run.finished { "finished" } else { "not finished (interrupted or still running)" };
    let title = format!("fleetboot reboot {}", run.run_id);
    let notes = vec![format!("Command: {}", run.command), format!("The run is {state}.")];
    let mut md = format!("# {title}\n\n{}\n\n", notes.join("\n\n"));
    md.push_str(&markdown_table(&table));
    md.push_str("\n![timeline](timeline.svg)\n");
    vec![("report.md", md), ("report.html", timeline::html(&title, &notes, &svg, &[table])), ("timeline.svg", svg)]
}

fn markdown_table(table: &timeline::Table) -> String {
    let cell = |c: &str| c.replace('|', "\\|").replace('\n', " ");
    let mut md = format!("## {}\n\n| {} |\n|{}\n", table.heading, table.columns.join(" | "), "---|".repeat(table.columns.len()));
    for row in &table.rows {
        md.push_str(&format!("| {} |\n", row.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | ")));
    }
    md
}

/// The report's files, by name (report.md, report.json, report.html, timeline.svg), rendered
/// from the migration's fold and its reboot runs' journals (the reboot step's, and the
/// `--reboot-error-nodes` run's); `now_ms` closes what is still open. Pure: the caller writes them.
pub fn render(state: &MigrationState, reboot: Option<Run>, error_nodes: Option<Run>, now_ms: u64) -> Vec<(&'static str, String)> {
    let report = build(state, reboot.map(|r| r.1));
    let svg = timeline::svg(&timeline::layout(&timeline(state, reboot, error_nodes, now_ms)));
    vec![
        ("report.md", markdown(&report)),
        ("report.json", serde_json::to_string_pretty(&report).expect("serializes")),
        ("report.html", html(&report, &svg)),
        ("timeline.svg", svg),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_markdown_and_html_have_a_row_per_node() {
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
        let html = html(&report, "<svg/>");
        assert!(html.contains("<td>w&lt;1&gt;</td>") && html.contains("<h2>Step 7: node reboots</h2>"));
        let md = markdown(&report);
        assert_eq!(time(1_764_657_628_999), "2025-12-02T06:40:28Z");
        assert_eq!(time(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!((took(0), took(21), took(3723), took(90_061)), ("0s".into(), "21s".into(), "1h 2m 3s".into(), "1d 1h 1m 1s".into()));
        assert!(md.contains("| w0 | confirmed | ssh |") && md.contains("timeline.svg"));
        assert!(md.contains("## Step 7: node reboots"));
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

    #[test]
    fn the_migration_timeline_has_a_lane_per_step_and_the_reboot_steps_nodes() {
        use super::super::record::Flow;
        let text = [
            r#"{"v":1,"at_ms":5000,"event":"run_started","run_id":"r","command":"reboot","hosts":[{"name":"w0","address":"127.0.0.1"}]}"#,
            r#"{"v":1,"at_ms":6000,"event":"dispatching","host":"w0","old_boot_id":"a"}"#,
            r#"{"v":1,"at_ms":7000,"event":"down","host":"w0"}"#,
            r#"{"v":1,"at_ms":9000,"event":"back","host":"w0","new_boot_id":"b"}"#,
        ]
        .join("\n")
            + "\n";
        let path = std::path::Path::new("reboot-r.jsonl");
        let records = crate::journal::parse(&text, path).unwrap();
        let run = crate::journal::fold(&records, path).unwrap();
        let state = MigrationState {
            run_id: "m".into(),
            target: "OVNKubernetes".into(),
            flow: Some(Flow::TwoPhase),
            timings: vec![(Step::Preflight, 1000, Some(2000)), (Step::RebootNodes, 4000, Some(10_000)), (Step::Verify, 10_000, None)],
            failures: vec![(Step::Verify, "a pod <crashed>".into())],
            ..MigrationState::default()
        };
        let t = timeline(&state, Some((&records, &run)), None, 12_000);
        assert_eq!(t.step_lanes.len(), Flow::TwoPhase.steps().len(), "every step of the flow has a lane");
        assert_eq!(t.step_lanes[8], format!("{} {}", Flow::TwoPhase.number(Step::RebootNodes), Step::RebootNodes.title()));
        assert_eq!((t.start_ms, t.end_ms), (1000, 12_000), "from the first step to now (the migration goes on)");
        assert_eq!(t.reboots.len(), 1);
        assert_eq!(t.reboots[0].by, format!("fleetboot step {}", Flow::TwoPhase.number(Step::RebootNodes)));
        let p = timeline::layout(&t);
        let verify = p.rects.iter().find(|r| r.id.starts_with("step-9-")).unwrap();
        assert_eq!(verify.kind, timeline::Kind::StepFailed);
        for r in &p.rects {
            assert!(r.x >= p.axis_x0 - 1e-9 && r.x + r.w <= p.axis_x1 + 1e-9, "{} inside the axis", r.id);
        }
        let files = render(&state, Some((&records, &run)), None, 12_000);
        let names: Vec<&str> = files.iter().map(|f| f.0).collect();
        assert_eq!(names, ["report.md", "report.json", "report.html", "timeline.svg"]);
        assert!(files[2].1.contains("FAILED: a pod &lt;crashed&gt;"));
    }

    #[test]
    fn the_mcos_reboots_the_migration_saw_are_drawn_on_their_nodes_lanes_as_the_mcos() {
        use super::super::record::{Flow, MigrationEntry, MigrationRecord};
        let mut state = MigrationState {
            run_id: "m".into(),
            flow: Some(Flow::Live),
            timings: vec![(Step::WaitRollout, 1000, Some(20_000))],
            ..MigrationState::default()
        };
        for (at_ms, node, since_ms) in [(5000, "w0", 4000), (9000, "w0", 8000), (7000, "m0", 30_000)] {
            let by = "the MCO (live migration)".to_owned();
            state.apply(&MigrationRecord { v: 1, at_ms, entry: MigrationEntry::RebootObserved { node: node.into(), by, since_ms } });
        }
        // A look "since" after the record (a clock step) is clamped: never a bar ending before it starts.
        assert_eq!(state.observed_reboots[2].since_ms, 7000);
        let t = timeline(&state, None, None, 21_000);
        assert_eq!(t.nodes, ["w0", "m0"], "a lane for each node the MCO rebooted");
        assert!(t.reboots.iter().all(|r| r.transport == "MCO" && r.by == "the MCO (live migration)"));
        let p = timeline::layout(&t);
        let mco: Vec<_> = p.rects.iter().filter(|r| r.kind == timeline::Kind::DownMco).collect();
        assert_eq!(mco.len(), 3, "one bar per observed reboot, no waiting part");
        assert!(mco.iter().all(|r| r.title.contains("rebooted by the MCO (live migration) between")));
        assert!(p.legend.iter().any(|(kind, _, _)| *kind == timeline::Kind::DownMco), "the legend names them");
    }
}
