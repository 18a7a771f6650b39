//! `-o yaml` for `reboot` and `migrate`: their `-o json` is a stream of events, one a line; the
//! YAML is the same stream, one document per event. PyYAML, an independent reader, reads the
//! documents back equal to the JSON lines, event for event.

use std::process::Command;

use crate::common::inproc::Step;
use crate::common::sim::Sim;
use fleetboot::report::Style;
use fleetboot::report::migrate::MigrationReporter;

/// The events of one run rendered by the reporters as `-o json` and as `-o yaml`.
fn both<F: Fn(Style, &mut Vec<u8>)>(render: F) -> (String, String) {
    let (mut json, mut yaml) = (Vec::new(), Vec::new());
    render(Style::Json, &mut json);
    render(Style::Yaml, &mut yaml);
    (String::from_utf8(json).unwrap(), String::from_utf8(yaml).unwrap())
}

/// PyYAML's reading of a YAML stream (`safe_load_all`), as JSON values; `dir` holds the file.
fn pyyaml(dir: &std::path::Path, yaml: &str) -> Vec<serde_json::Value> {
    let python = std::env::var("KUBE_PYTHON").expect("$KUBE_PYTHON (scripts/test.sh sets it)");
    let file = dir.join("events.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = Command::new(python)
        .args(["-c", "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn json_lines(json: &str) -> Vec<serde_json::Value> {
    json.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn a_reboot_runs_yaml_is_its_json_event_for_event() {
    let sim = Sim::in_process(1, 2);
    let run = sim.reboot_in_process(&["--all", "--poll-interval", "200ms"]);
    assert_eq!(run.code(), 0, "{}", run.debug());
    let (json, yaml) = both(|style, out| {
        let mut reporter = fleetboot::report::Reporter::new(style, out);
        run.events.iter().for_each(|e| reporter.report(e));
    });
    let events = json_lines(&json);
    assert_eq!(pyyaml(sim.dir.path(), &yaml), events, "{yaml}");
    assert_eq!(yaml.matches("---\n").count(), run.events.len(), "one document per event");
    assert!(events.iter().any(|e| e["type"] == "started") && events.last().unwrap()["type"] == "finished");
    assert!(events.len() > 10);
}

#[test]
fn a_migrations_yaml_is_its_json_event_for_event() {
    let sim = Sim::in_process(1, 2);
    let run = sim.migrate_in_process(&["--etcd-backup-confirmed", "--poll-interval", "300ms"]);
    assert_eq!(run.code(), 0, "{}", run.debug());
    let (json, yaml) = both(|style, out| {
        let mut err = Vec::new();
        let mut reporter = MigrationReporter::new(style, out, &mut err);
        for step in &run.steps {
            reporter.report(match step {
                Step::Migration(e) => fleetboot_core::migrate::events::Progress::Migration(e),
                Step::Reboot(e) => fleetboot_core::migrate::events::Progress::Reboot(e),
            });
        }
        assert!(err.is_empty(), "nothing on stderr for machines");
    });
    let events = json_lines(&json);
    assert_eq!(events.len(), run.steps.len());
    assert_eq!(pyyaml(sim.dir.path(), &yaml), events, "{yaml}");
}

#[test]
fn the_binary_streams_yaml_documents_for_reboot() {
    let fleet = crate::common::Fleet::up(2);
    let args = fleet.reboot_args(&[]);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    let at = args.iter().position(|a| *a == "json").unwrap();
    args[at] = "yaml";
    let out = fleet.fleetboot(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let yaml = String::from_utf8(out.stdout).unwrap();
    let types: Vec<String> = pyyaml(fleet.dir.path(), &yaml).iter().map(|d| d["type"].as_str().unwrap().to_owned()).collect();
    assert_eq!(types.first().map(String::as_str), Some("started"), "{yaml}");
    assert_eq!(types.last().map(String::as_str), Some("finished"), "{yaml}");
    assert!(types.iter().filter(|t| *t == "transition").count() >= 2, "{types:?}");
}
