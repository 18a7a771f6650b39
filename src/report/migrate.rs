//! `fleetboot migrate` and `fleetboot verify` output: the migration's events as the lines people
//! read (the step lines on stdout, warnings on stderr) or one JSON object per line; the reboot
//! runs it starts render through the same [`Reporter`] a `fleetboot reboot` uses; the plan and
//! the checks as tables.

use std::io::Write;
use std::time::Instant;

use clap::ValueEnum;
use fleetboot_core::events::Event;
use fleetboot_core::migrate::checks::Check;
use fleetboot_core::migrate::events::{MigrationEvent, MigrationPlan, Progress};
use fleetboot_core::migrate::{Flow, Step};
use fleetboot_core::table::table;

use super::{Reporter, Style};

/// `fleetboot verify -o`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum VerifyOutput {
    /// A PASS/FAIL table.
    Table,
    /// The checks as one JSON array on one line.
    Json,
    /// The JSON's checks as YAML.
    Yaml,
}

pub struct MigrationReporter<O: Write, E: Write> {
    /// Also the writer of the migration's own lines (stdout), so both keep one order.
    reboot: Reporter<O>,
    err: E,
}

impl<O: Write, E: Write> MigrationReporter<O, E> {
    pub fn new(style: Style, out: O, err: E) -> MigrationReporter<O, E> {
        MigrationReporter { reboot: Reporter::new(style, out), err }
    }

    pub fn report(&mut self, progress: Progress<'_>) {
        match progress {
            Progress::Reboot(event) => {
                if let Event::Started { .. } = event {
                    // Each reboot run's lines are timed from its own start, as `fleetboot reboot`'s.
                    self.reboot.started = Instant::now();
                    self.reboot.hosts.clear();
                }
                self.reboot.report(event);
            }
            Progress::Migration(event) if self.reboot.style.is_structured() => {
                super::write_structured(self.reboot.style, &mut self.reboot.out, event);
                let _ = self.reboot.out.flush();
            }
            Progress::Migration(event) => {
                let (text, to_stderr) = describe(event);
                if !text.is_empty() {
                    let sink: &mut dyn Write = if to_stderr { &mut self.err } else { &mut self.reboot.out };
                    let _ = sink.write_all(text.as_bytes());
                    let _ = sink.flush();
                }
            }
        }
    }
}

fn step_line(step: Step, number: &str, message: &str) -> String {
    format!("[step {number:>4}] {}: {message}\n", step.title())
}

/// The text of one event, and whether it belongs on stderr (warnings); empty: nothing to show.
fn describe(event: &MigrationEvent) -> (String, bool) {
    let bang = "!".repeat(78);
    let text = match event {
        MigrationEvent::MigrationStarted { target, flow, reason, journal } => {
            format!("migration to {target} · {} flow ({reason}) · journal {}\n", flow.name(), journal.display())
        }
        MigrationEvent::MigrationResumed { target, flow, journal } => {
            format!("resuming the migration to {target} ({} flow) from {}\n", flow.name(), journal.display())
        }
        MigrationEvent::MigrationFlowOverridden { forced, required, version } => {
            let warning = format!(
                "WARNING: --flow {} overrides the {} flow OpenShift {version} requires: its operators refuse or break the other order (nodes without br-ex, a refused type change). Only for a cluster whose operators you know behave otherwise.",
                forced.name(),
                required.name()
            );
            return (format!("\n{bang}\n{warning}\n{bang}\n\n"), true);
        }
        MigrationEvent::MigrationRollingBack { previous } => format!("rolling back the unfinished migration {}\n", previous.display()),
        MigrationEvent::MigrationWarning { message } => return (format!("warning: {message}\n"), true),
        MigrationEvent::MigrationClusterStable { pass, of } => {
            format!("preflight: nodes, pools and operators healthy ({pass} of {of} reads in a row)\n")
        }
        MigrationEvent::StepStarted { .. } | MigrationEvent::StepSkipped { .. } | MigrationEvent::MigrationFinished { .. } => String::new(),
        MigrationEvent::StepProgress { step, number, message } => step_line(*step, number, message),
        MigrationEvent::StepDone { step, number, detail } if detail.is_empty() => step_line(*step, number, "done"),
        MigrationEvent::StepDone { step, number, detail } => step_line(*step, number, &format!("done: {detail}")),
        MigrationEvent::StepFailed { step, number, error } => step_line(*step, number, &format!("FAILED: {error}")),
        MigrationEvent::MigrationVerified { checks, .. } => render_checks(checks),
        MigrationEvent::MigrationPoolsStayPaused => "the pools stay paused; fix the cause, then: fleetboot migrate --resume\n".into(),
        MigrationEvent::MigrationLeaseLost { reason } => {
            return (
                format!(
                    "the migration stops: {reason}; no further step is started. Once no other migration runs: fleetboot migrate --resume\n"
                ),
                true,
            );
        }
        MigrationEvent::MigrationResumeAfterFix { rollback_to } => {
            format!("fix the cause, then: fleetboot migrate --resume (or roll back: fleetboot migrate --to {rollback_to})\n")
        }
        MigrationEvent::MigrationAwaitingCleanup { flow, old_namespace } => format!(
            "verification passed. The clean-up ({}, delete {old_namespace}) runs with: fleetboot migrate --cleanup\n",
            match flow {
                Flow::Seed => "remove the migration annotation",
                Flow::TwoPhase => "spec.migration: null, openshiftSDNConfig: null",
                Flow::Rollback => "spec.migration: null, ovnKubernetesConfig: null",
                Flow::Live => "remove the live-migration annotation",
            }
        ),
        MigrationEvent::MigrationReportWritten { files } => {
            format!("report: {}\n", files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))
        }
        MigrationEvent::MigrationReportFailed { error } => return (format!("warning: could not write the report: {error}\n"), true),
        MigrationEvent::MigrationComplete { target } => format!("migration to {target} complete\n"),
        MigrationEvent::MigrationPlanned { plan } => render_plan(plan),
    };
    (text, false)
}

/// Steps 9-10's checks, one PASS/FAIL row each.
pub fn render_checks(results: &[Check]) -> String {
    let rows: Vec<Vec<String>> =
        results.iter().map(|c| vec![if c.passed { "PASS".into() } else { "FAIL".into() }, c.name.clone(), c.detail.clone()]).collect();
    table(&["RESULT", "CHECK", "DETAIL"], &rows)
}

/// `fleetboot verify`'s output.
pub fn render_verify(results: &[Check], output: VerifyOutput) -> String {
    match output {
        VerifyOutput::Table => render_checks(results),
        VerifyOutput::Json => serde_json::to_string(results).expect("serializes") + "\n",
        VerifyOutput::Yaml => super::yaml::render(results),
    }
}

/// `fleetboot migrate --plan`.
pub fn render_plan(plan: &MigrationPlan) -> String {
    let rows: Vec<Vec<String>> = plan
        .steps
        .iter()
        .map(|s| vec![s.number.clone(), if s.done { "done " } else { "to do" }.to_owned(), s.step.title().to_owned(), s.change.clone()])
        .collect();
    format!(
        "migration plan: {} → {}, cluster {}; nothing is changed\nflow: {} — {}\n\n{}\nRed Hat's documentation for 4.14-4.16 asks not to automate this migration with a script: fleetboot runs it only when you start it, stops at every failure, journals each step and writes a report; review this plan first.\n",
        plan.source,
        plan.target,
        plan.version,
        plan.flow.name(),
        plan.reason,
        table(&["STEP", "STATE", "WHAT", "CHANGE"], &rows)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetboot_core::events::Summary;
    use fleetboot_core::migrate::events::PlannedStep;

    fn events() -> Vec<MigrationEvent> {
        vec![
            MigrationEvent::MigrationStarted {
                target: "OVNKubernetes".into(),
                flow: Flow::TwoPhase,
                reason: "OpenShift 4.16.21".into(),
                journal: "/s/m/migration.jsonl".into(),
            },
            MigrationEvent::MigrationWarning { message: "paused-pools: MachineConfigPool infra is paused".into() },
            MigrationEvent::StepSkipped { step: Step::Preflight, number: "0".into() },
            MigrationEvent::StepStarted { step: Step::Backup, number: "1".into() },
            MigrationEvent::StepDone { step: Step::Backup, number: "1".into(), detail: "/s/m/cluster-openshift-sdn.yaml".into() },
            MigrationEvent::StepProgress { step: Step::WaitMultus, number: "7".into(), message: "2 of 3 updated, 2 available".into() },
            MigrationEvent::StepDone { step: Step::MtuAndPort, number: "6".into(), detail: String::new() },
            MigrationEvent::StepFailed { step: Step::RebootNodes, number: "8".into(), error: "1 of 3 nodes proven rebooted".into() },
            MigrationEvent::MigrationVerified {
                passed: false,
                checks: vec![Check { name: "every node Ready".into(), passed: false, detail: "worker-1 NotReady".into() }],
            },
            MigrationEvent::MigrationResumeAfterFix { rollback_to: "OpenShiftSDN".into() },
            MigrationEvent::MigrationReportWritten { files: vec!["/s/m/report.md".into(), "/s/m/report.json".into()] },
            MigrationEvent::MigrationFinished { complete: false, exit_code: 3 },
        ]
    }

    fn reboot_finished() -> Event {
        Event::Finished {
            summary: Summary {
                run_id: "r".into(),
                journal: "/s/m/reboot.jsonl".into(),
                hosts: vec![],
                aborted: false,
                elapsed_ms: 0,
                still_cordoned: vec![],
                window_closed: false,
            },
        }
    }

    fn render(style: Style) -> (String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut reporter = MigrationReporter::new(style, &mut out, &mut err);
        for event in &events() {
            reporter.report(Progress::Migration(event));
        }
        reporter.report(Progress::Reboot(&reboot_finished()));
        drop(reporter);
        (String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    #[test]
    fn plain_text_keeps_the_step_lines_and_sends_warnings_to_stderr() {
        let (out, err) = render(Style::Plain);
        let expected_out = "migration to OVNKubernetes · two-phase flow (OpenShift 4.16.21) · journal /s/m/migration.jsonl\n\
            [step    1] back up network.config/cluster: done: /s/m/cluster-openshift-sdn.yaml\n\
            [step    7] wait for the multus rollout: 2 of 3 updated, 2 available\n\
            [step    6] network options (MTU, port, internal subnets): done\n\
            [step    8] reboot every node: FAILED: 1 of 3 nodes proven rebooted\n\
            RESULT  CHECK             DETAIL\n\
            FAIL    every node Ready  worker-1 NotReady\n\
            fix the cause, then: fleetboot migrate --resume (or roll back: fleetboot migrate --to OpenShiftSDN)\n\
            report: /s/m/report.md, /s/m/report.json\n";
        assert!(out.starts_with(expected_out), "{out}");
        // The reboot run's own summary follows, through the reboot reporter.
        assert!(out[expected_out.len()..].contains("0 rebooted, 0 failed"), "{out}");
        assert_eq!(err, "warning: paused-pools: MachineConfigPool infra is paused\n");
    }

    #[test]
    fn the_flow_override_is_a_banner_on_stderr_and_the_plan_a_table() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut reporter = MigrationReporter::new(Style::Plain, &mut out, &mut err);
        reporter.report(Progress::Migration(&MigrationEvent::MigrationFlowOverridden {
            forced: Flow::Seed,
            required: Flow::TwoPhase,
            version: "4.14.38".into(),
        }));
        let plan = MigrationPlan {
            source: "OpenShiftSDN".into(),
            target: "OVNKubernetes".into(),
            version: "4.7.60".into(),
            flow: Flow::Seed,
            reason: "why".into(),
            steps: vec![PlannedStep { step: Step::Preflight, number: "0".into(), done: true, change: "the cluster passes".into() }],
        };
        reporter.report(Progress::Migration(&MigrationEvent::MigrationPlanned { plan }));
        drop(reporter);
        let (out, err) = (String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap());
        let bang = "!".repeat(78);
        assert!(
            err.starts_with(&format!("\n{bang}\nWARNING: --flow seed overrides the two-phase flow OpenShift 4.14.38 requires")),
            "{err}"
        );
        assert!(err.ends_with(&format!("otherwise.\n{bang}\n\n")), "{err}");
        assert!(
            out.starts_with(
                "migration plan: OpenShiftSDN → OVNKubernetes, cluster 4.7.60; nothing is changed\nflow: seed — why\n\n\
                 STEP  STATE  WHAT       CHANGE\n0     done   preflight  the cluster passes\n\nRed Hat's documentation"
            ),
            "{out}"
        );
    }

    #[test]
    fn json_is_one_object_per_line_migration_and_reboot_events_alike() {
        let (out, err) = render(Style::Json);
        assert!(err.is_empty(), "{err}");
        let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect(l)).collect();
        assert_eq!(lines.len(), events().len() + 1, "{out}");
        let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
        assert_eq!(&types[..5], ["migration_started", "migration_warning", "step_skipped", "step_started", "step_done"]);
        assert_eq!(types[types.len() - 2..], ["migration_finished", "finished"]);
        assert_eq!(lines[4]["step"], "backup");
        assert_eq!(lines[4]["number"], "1");
        assert_eq!(lines[8]["checks"][0]["name"], "every node Ready");
        assert_eq!(lines[11]["exit_code"], 3);
    }

    #[test]
    fn verify_json_is_the_checks_on_one_line() {
        let checks = vec![Check { name: "every node Ready".into(), passed: true, detail: "all 3 nodes".into() }];
        let json = render_verify(&checks, VerifyOutput::Json);
        assert_eq!(json.lines().count(), 1);
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed[0]["passed"], true);
        assert!(render_verify(&checks, VerifyOutput::Table).starts_with("RESULT  CHECK"));
    }
}
