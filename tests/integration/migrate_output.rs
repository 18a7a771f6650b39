//! `fleetboot migrate` and `fleetboot verify` with `--output json` against the simulated
//! cluster: every line a JSON object a machine can follow, the migration's events and its reboot
//! run's alike; and step 4's record of the multus generation across a kill in that step.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::Run;
use crate::common::sim::Sim;

fn run(sim: &Sim, args: &[&str]) -> Run {
    Run::from(sim.fleetboot(args).output().unwrap())
}

/// Every stdout line as JSON; a line that is not a JSON object fails the test.
fn json_lines(run: &Run) -> Vec<Value> {
    run.stdout
        .lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{}", run.debug()));
            assert!(value.is_object() && value["type"].is_string(), "not an event: {line}");
            value
        })
        .collect()
}

fn types(lines: &[Value]) -> Vec<&str> {
    lines.iter().map(|l| l["type"].as_str().unwrap()).collect()
}

fn done_steps(lines: &[Value]) -> Vec<&str> {
    lines.iter().filter(|l| l["type"] == "step_done").map(|l| l["step"].as_str().unwrap()).collect()
}

#[test]
fn migrate_and_verify_with_output_json_write_one_event_per_line_down_to_a_final_one() {
    let sim = Sim::start(1, 2);
    let first = run(&sim, &["migrate", "--etcd-backup-confirmed", "--poll-interval", "300ms", "--output", "json"]);
    assert_eq!(first.code, 0, "{}", first.debug());
    let lines = json_lines(&first);
    let kinds = types(&lines);
    // Preflight's three clean reads of the cluster's health come before the start.
    assert_eq!(
        kinds[..4],
        ["migration_cluster_stable", "migration_cluster_stable", "migration_cluster_stable", "migration_started"],
        "{kinds:?}"
    );
    assert_eq!((lines[2]["pass"].as_u64(), lines[2]["of"].as_u64()), (Some(3), Some(3)));
    let started = &lines[3];
    assert_eq!(started["flow"], "two-phase");
    assert!(started["journal"].as_str().unwrap().ends_with("migration.jsonl"));
    assert_eq!(
        done_steps(&lines),
        [
            "preflight",
            "backup",
            "clear_migration",
            "enable_migration",
            "mtu_and_port",
            "rollout_config",
            "set_network_type",
            "wait_multus",
            "reboot_nodes",
            "verify"
        ]
    );
    // Every step that ran was announced first, with its number in this flow.
    let started: Vec<&str> = lines.iter().filter(|l| l["type"] == "step_started").map(|l| l["step"].as_str().unwrap()).collect();
    assert_eq!(started, done_steps(&lines));
    assert!(lines.iter().any(|l| l["type"] == "step_progress" && l["step"] == "rollout_config"), "progress lines: {kinds:?}");
    // The reboot run of step 7 speaks as `fleetboot reboot --output json` does, in between.
    let reboot_started = kinds.iter().position(|k| *k == "started").expect("the reboot run's events");
    let reboot_finished = kinds.iter().position(|k| *k == "finished").unwrap();
    let step_7_done = lines.iter().position(|l| l["type"] == "step_done" && l["step"] == "reboot_nodes").unwrap();
    assert!(reboot_started < reboot_finished && reboot_finished < step_7_done, "{kinds:?}");
    assert_eq!(lines[reboot_finished]["summary"]["hosts"].as_array().unwrap().len(), 3);
    let verified = lines.iter().find(|l| l["type"] == "migration_verified").unwrap();
    assert_eq!(verified["passed"], true);
    assert!(verified["checks"].as_array().unwrap().iter().any(|c| c["name"] == "every node Ready" && c["passed"] == true));
    assert_eq!(kinds[kinds.len() - 3..], ["migration_awaiting_cleanup", "migration_report_written", "migration_finished"]);
    assert_eq!(lines.last().unwrap()["complete"], false);
    assert_eq!(lines.last().unwrap()["exit_code"], 0);

    let cleanup = run(&sim, &["migrate", "--cleanup", "--output", "json"]);
    assert_eq!(cleanup.code, 0, "{}", cleanup.debug());
    let lines = json_lines(&cleanup);
    let kinds = types(&lines);
    assert_eq!(kinds[0], "migration_resumed", "{kinds:?}");
    assert_eq!(lines.iter().filter(|l| l["type"] == "step_skipped").count(), 10, "the steps done before are skipped: {kinds:?}");
    assert_eq!(done_steps(&lines), ["cleanup"]);
    assert_eq!(kinds[kinds.len() - 3..], ["migration_complete", "migration_report_written", "migration_finished"]);
    assert_eq!(lines.last().unwrap()["complete"], true);

    let verify = run(&sim, &["verify", "--output", "json"]);
    assert_eq!(verify.code, 0, "{}", verify.debug());
    assert_eq!(verify.stdout.lines().count(), 1, "one line: {}", verify.stdout);
    let checks: Value = serde_json::from_str(&verify.stdout).unwrap();
    let checks = checks.as_array().unwrap();
    assert!(checks.len() >= 5 && checks.iter().all(|c| c["passed"] == true && c["name"].is_string()), "{checks:?}");
}

fn multus_generation(sim: &Sim) -> i64 {
    sim.kubectl_ok(&["-n", "openshift-multus", "get", "daemonset", "multus", "-o", "jsonpath={.metadata.generation}"])
        .trim()
        .parse()
        .unwrap()
}

/// Keeps the journal's lines before the first that holds `marker`: as if the run had been
/// killed just before writing it.
fn cut_journal_before(journal: &Path, marker: &str) {
    let text = std::fs::read_to_string(journal).unwrap();
    let kept: String = text.lines().take_while(|l| !l.contains(marker)).map(|l| format!("{l}\n")).collect();
    assert!(kept.len() < text.len(), "{marker} not in the journal");
    std::fs::write(journal, kept).unwrap();
}

#[test]
fn a_step_4_rerun_after_the_switch_keeps_the_multus_generation_recorded_before_it() {
    let sim = Sim::start(0, 2);
    let before = multus_generation(&sim);
    let mut child = sim
        .fleetboot(&["migrate", "--etcd-backup-confirmed", "--poll-interval", "300ms", "--output", "json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let journal = sim.wait_for_migration_journal(r#""event":"step_done","step":"set_network_type""#, None);
    child.kill().unwrap();
    child.wait().unwrap();
    let recorded = sim.migration_dir().join("multus-generation-before");
    assert_eq!(std::fs::read_to_string(&recorded).unwrap().trim(), before.to_string());
    // Killed after the switch was applied but before step 4 was journaled done: the resume runs
    // step 4 again, on a cluster whose multus generation the switch has already bumped.
    cut_journal_before(&journal, r#""event":"step_done","step":"set_network_type""#);
    let start = Instant::now();
    while multus_generation(&sim) <= before {
        assert!(start.elapsed() < Duration::from_secs(30), "the switch never bumped multus");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Had step 4 taken the bumped generation for "before", step 6 would wait for a rollout that
    // already happened, until this timeout.
    let resumed = run(&sim, &["migrate", "--resume", "--poll-interval", "300ms", "--multus-timeout", "20s", "--output", "json"]);
    assert_eq!(resumed.code, 0, "{}", resumed.debug());
    let lines = json_lines(&resumed);
    assert!(done_steps(&lines).starts_with(&["set_network_type", "wait_multus"]), "{:?}", done_steps(&lines));
    assert_eq!(std::fs::read_to_string(&recorded).unwrap().trim(), before.to_string(), "recorded once, never overwritten");
}

/// `migrate --break-lock` over a live holder's migration lease waits that whole lease before
/// its first step: the holder stops within half its lease once it sees the takeover or fails
/// to renew, so the two never change the cluster at once. The wait is a warning event
/// first, and the journal's first step starts no earlier than it allows.
#[test]
fn migrate_breaking_a_live_lease_waits_all_of_it_before_its_first_step() {
    let sim = Sim::start(1, 1);
    let now = std::process::Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%S.000000Z"]).output().unwrap();
    let now = String::from_utf8(now.stdout).unwrap();
    let lease = sim.path("held-migration-lease.json");
    std::fs::write(
        &lease,
        format!(
            r#"{{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{{"name":"fleetboot-migration","namespace":"kube-system"}},
            "spec":{{"holderIdentity":"other@elsewhere pid 1","leaseDurationSeconds":8,"renewTime":"{}"}}}}"#,
            now.trim()
        ),
    )
    .unwrap();
    sim.kubectl_ok(&["create", "--validate=false", "-f", lease.to_str().unwrap()]);
    let launched_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let taken = run(&sim, &["migrate", "--etcd-backup-confirmed", "--break-lock", "--poll-interval", "300ms", "--output", "json"]);
    assert_eq!(taken.code, 0, "{}", taken.debug());
    let lines = json_lines(&taken);
    let warned = lines.iter().position(|l| {
        l["type"] == "migration_warning" && l["message"].as_str().is_some_and(|m| m.contains("waiting 8s before changing anything"))
    });
    let first_step = lines.iter().position(|l| l["type"] == "step_started");
    assert!(warned.is_some() && first_step.is_some() && warned < first_step, "says it waits, before any step: {}", taken.debug());
    let journal = std::fs::read_to_string(sim.migration_dir().join("migration.jsonl")).unwrap();
    let first_step_ms = journal
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .find(|record| record["event"] == "step_started")
        .and_then(|record| record["at_ms"].as_u64())
        .expect("a step started");
    assert!(
        first_step_ms >= launched_ms + 8000,
        "the first step started {} ms after the takeover began, before the old 8 s lease was over",
        first_step_ms - launched_ms
    );
}
