//! Least privilege for the other commands (issue 25): `nodes`, `verify`, `repair`, `power` and
//! `migrate`, each run as the kubeconfig's unprivileged user `fleetboot` against the simulation
//! started with `--rbac`, work with exactly the role `fleetboot rbac MODE` prints, and with any
//! one of its rules removed stop before anything is touched, naming the rule (exit 2).

use crate::common::sim::{Sim, boot_counts};
use crate::rbac::{apply_printed, each_rule_removed_stops_naming_it, run, works_with_exactly_its_printed_role};

#[test]
fn nodes_lists_with_exactly_its_printed_role_and_names_a_removed_rule() {
    let sim = Sim::start_with(1, 2, &["--rbac"]);
    let objects = apply_printed(&sim, "nodes");
    let args = ["nodes", "--context", "fleetboot", "-o", "name"];
    let tried = each_rule_removed_stops_naming_it(&sim, &objects, &args, &|_| {});
    assert_eq!(tried, 3);
    let (code, out, err) = run(&sim, &args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "node/master-0\nnode/worker-0\nnode/worker-1\n");
}

#[test]
fn verify_checks_with_exactly_its_printed_role_and_names_a_removed_rule() {
    let sim = Sim::start_with(1, 2, &["--rbac"]);
    let objects = apply_printed(&sim, "verify");
    // The cluster runs OpenShift SDN: verified as such, every check reads what it needs.
    let args = ["verify", "--context", "fleetboot", "--to", "OpenShiftSDN", "-o", "json"];
    let tried = each_rule_removed_stops_naming_it(&sim, &objects, &args, &|_| {});
    assert!(tried >= 14, "{tried}");
    // Read whole: every check has its verdict; the one that fails is the simulation's pods
    // already failing (no migration recorded them as failing before).
    let (code, out, err) = run(&sim, &args);
    assert_eq!(code, 3, "{out}{err}");
    let checks: serde_json::Value = serde_json::from_str(&out).unwrap();
    let failed: Vec<&str> =
        checks.as_array().unwrap().iter().filter(|c| c["passed"] != true).map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(failed, ["no pod in an error state"], "{out}");
    assert!(checks.as_array().unwrap().len() >= 7, "{out}");
}

/// A migration's journal that paused the worker pool and whose reboot run cordoned worker-0,
/// then died; both done on the cluster as an admin.
fn left_behind(sim: &Sim) -> std::path::PathBuf {
    let dir = sim.path("left-behind");
    std::fs::create_dir_all(&dir).unwrap();
    let reboot = dir.join("reboot-r1.jsonl");
    let host = r#"{"name":"worker-0","address":"127.0.0.1"}"#;
    std::fs::write(
        &reboot,
        format!(
            "{{\"v\":1,\"at_ms\":1000,\"event\":\"run_started\",\"run_id\":\"r1\",\"command\":\"migrate\",\"hosts\":[{host}],\"api_proof\":true}}\n\
             {{\"v\":1,\"at_ms\":1001,\"event\":\"cordoning\",\"host\":\"worker-0\"}}\n"
        ),
    )
    .unwrap();
    let migration = dir.join("migration.jsonl");
    let lines = [
        r#""event":"migration_started","run_id":"m1","target":"OVNKubernetes","flow":"two-phase","version":"4.16.21""#.to_owned(),
        r#""event":"pools_found","already_paused":[],"to_pause":["worker"]"#.to_owned(),
        r#""event":"step_started","step":"pause_pools""#.to_owned(),
        r#""event":"step_done","step":"pause_pools","detail":"paused""#.to_owned(),
        format!(r#""event":"reboot_journal","path":"{}""#, reboot.display()),
    ];
    let text: String = lines.iter().enumerate().map(|(i, l)| format!("{{\"v\":1,\"at_ms\":{},{l}}}\n", 500 + i)).collect();
    std::fs::write(&migration, text).unwrap();
    sim.kubectl_ok(&["cordon", "worker-0"]);
    sim.merge("mcp", "worker", r#"{"spec":{"paused":true}}"#);
    migration
}

fn cordoned(sim: &Sim) -> bool {
    sim.kubectl_ok(&["get", "node", "worker-0", "-o", "jsonpath={.spec.unschedulable}"]).contains("true")
}

#[test]
fn repair_puts_back_with_exactly_its_printed_role_and_touches_nothing_without_one_rule() {
    let sim = Sim::start_with(1, 2, &["--rbac"]);
    let objects = apply_printed(&sim, "repair");
    let journal = left_behind(&sim);
    let args = ["repair", "--context", "fleetboot", "--journal", journal.to_str().unwrap()];
    let tried = each_rule_removed_stops_naming_it(&sim, &objects, &args, &|sim| {
        assert!(cordoned(sim), "worker-0 still cordoned");
        assert!(sim.paused("worker"), "the pool still paused");
    });
    assert!(tried >= 4, "{tried}");
    let (code, out, err) = run(&sim, &args);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!cordoned(&sim) && !sim.paused("worker"), "put back: {out}");
}

#[test]
fn power_restarts_with_exactly_its_printed_role_and_names_a_removed_rule() {
    let sim = Sim::start_with(0, 2, &["--rbac"]);
    let objects = apply_printed(&sim, "power");
    let args = ["power", "restart", "--context", "fleetboot", "worker-0"];
    let tried = each_rule_removed_stops_naming_it(&sim, &objects, &args, &|sim| assert_eq!(resets(sim), 0, "no reset"));
    assert!(tried >= 5, "{tried}");
    let (code, out, err) = run(&sim, &args);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(resets(&sim), 1, "the BMC's own history: one reset");
}

/// The resets worker-0's simulated BMC received (its history).
fn resets(sim: &Sim) -> usize {
    let nodes: serde_json::Value = serde_json::from_str(&sim.control("GET", "nodes", "")).unwrap();
    let node = nodes.as_array().unwrap().iter().find(|n| n["name"] == "worker-0").unwrap();
    node["history"].as_array().unwrap().iter().filter(|e| e[1].as_str().is_some_and(|w| w.starts_with("bmc-reset:"))).count()
}

#[test]
fn migrate_runs_with_exactly_its_printed_role_and_touches_nothing_without_one_rule() {
    let sim = Sim::start_with(1, 2, &["--rbac"]);
    let objects = apply_printed(&sim, "migrate");
    let before = sim.network_type();
    let boots = boot_counts(&sim);
    let args = ["migrate", "--context", "fleetboot", "--etcd-backup-confirmed", "--poll-interval", "300ms", "--output", "plain"];
    let tried = each_rule_removed_stops_naming_it(&sim, &objects, &args, &|sim| {
        assert_eq!(sim.network_type(), before, "the network untouched");
        assert!(!sim.paused("worker") && !sim.paused("master"), "no pool paused");
        assert!(sim.kubectl_ok(&["get", "leases", "-A", "-o", "name"]).is_empty(), "no lease taken");
        assert_eq!(boot_counts(sim), boots, "no reboot");
        assert!(sim.migration_dirs().is_empty(), "no migration started");
    });
    assert!(tried >= 20, "{tried}");
    let (code, out, err) = run(&sim, &args);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(sim.network_type().0, "OVNKubernetes", "{out}");
    let after = boot_counts(&sim);
    assert!(after.iter().zip(&boots).all(|(a, b)| a.1 > b.1), "every node rebooted: {after:?}");
}

#[test]
fn the_batch_gates_work_with_exactly_their_printed_role_and_stop_naming_a_removed_rule() {
    let sim = works_with_exactly_its_printed_role(
        "batch",
        &[
            "--block-on-pods",
            "app=blocker",
            "--healthy-checks",
            "1",
            "--healthy-interval",
            "200ms",
            "--pre-reboot-label",
            "fleetboot.io/rebooting=yes",
            "--in-progress-annotation",
        ],
    );
    let label = sim.kubectl_ok(&["get", "node", "worker-0", "-o", "jsonpath={.metadata.labels.fleetboot\\.io/rebooting}"]);
    assert_eq!(label, "yes", "the label went on with the role's nodes patch");
}
