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
            Progress::Migration(event) if self.reboot.style == Style::Json => {
                let out = &mut self.reboot.out;
                let _ = serde_json::to_writer(&mut *out, event);
                let _ = out.write_all(b"\n");
                let _ = out.flush();
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
        MigrationEvent::StepStarted { .. } | MigrationEvent::StepSkipped { .. } | MigrationEvent::MigrationFinished { .. } => String::new(),
        MigrationEvent::StepProgress { step, number, message } => step_line(*step, number, message),
        MigrationEvent::StepDone { step, number, detail } if detail.is_empty() => step_line(*step, number, "done"),
        MigrationEvent::StepDone { step, number, detail } => step_line(*step, number, &format!("done: {detail}")),
        MigrationEvent::StepFailed { step, number, error } => step_line(*step, number, &format!("FAILED: {error}")),
        MigrationEvent::MigrationVerified { checks, .. } => render_checks(checks),
        MigrationEvent::MigrationPoolsStayPaused => "the pools stay paused; fix the cause, then: fleetboot migrate --resume\n".into(),
        MigrationEvent::MigrationResumeAfterFix { rollback_to } => {
            format!("fix the cause, then: fleetboot migrate --resume (or roll back: fleetboot migrate --to {rollback_to})\n")
        }
        MigrationEvent::MigrationAwaitingCleanup { flow, old_namespace } => format!(
            "verification passed. The clean-up ({}, delete {old_namespace}) runs with: fleetboot migrate --cleanup\n",
            match flow {
                Flow::Seed => "remove the migration annotation",
                Flow::TwoPhase => "spec.migration: null",
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
