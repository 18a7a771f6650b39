//! `fleetboot exec` against real sshd hosts.

use crate::common::{Fleet, Run};

fn exec_args(fleet: &Fleet, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "exec".into(),
        "--hosts-file".into(),
        fleet.path("hosts.txt").to_str().unwrap().into(),
        "--user".into(),
        fleet.user.clone(),
        "-i".into(),
        fleet.path("id_ed25519").to_str().unwrap().into(),
        "--known-hosts".into(),
        fleet.path("known_hosts").to_str().unwrap().into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn run(fleet: &Fleet, args: Vec<String>) -> Run {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Run::from(fleet.fleetboot(&refs).output().unwrap())
}

#[test]
fn exec_folds_identical_outputs_and_reports_failures() {
    let fleet = Fleet::up(4);
    let run1 = run(&fleet, exec_args(&fleet, &["--", "echo", "same output"]));
    assert_eq!(run1.code, 0, "{}", run1.debug());
    assert!(run1.stdout.contains("h001,h002,h003,h004 (4)\n---------------\nsame output\n"), "{}", run1.stdout);

    // Each host prints its own boot ID: four groups.
    let run2 = run(&fleet, exec_args(&fleet, &["--parallel", "2", "--", "cat /proc/sys/kernel/random/boot_id"]));
    assert_eq!(run2.code, 0, "{}", run2.debug());
    for name in &fleet.names {
        assert!(run2.stdout.contains(&format!("{name} (1)")), "{}", run2.stdout);
    }
    assert!(run2.stdout.contains(&fleet.boot_id("h003")), "{}", run2.stdout);

    // A non-zero exit on some hosts: the exit code says so, the JSON says where.
    let run3 = run(&fleet, exec_args(&fleet, &["--output", "json", "--", "test -e /nonexistent-$RANDOM"]));
    assert_eq!(run3.code, 3, "{}", run3.debug());
    let lines: Vec<serde_json::Value> = run3.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4);
    assert!(lines.iter().all(|l| l["exit"] == 1), "{lines:?}");
}
