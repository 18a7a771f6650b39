//! Node discovery and cluster-sourced reboots against the simulated cluster, checked with
//! kubectl as the independent client.

mod common;

use common::sim::Sim;
use common::Run;

const IPS: &str = r#"jsonpath={.items[*].status.addresses[?(@.type=="InternalIP")].address}"#;

fn out(sim: &Sim, args: &[&str]) -> (i32, String, String) {
    let o = sim.fleetboot(args).output().unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn nodes_ips_equals_the_documents_jsonpath_and_selectors_work() {
    let sim = Sim::start(3, 3);
    let kubectl = sim.kubectl_ok(&["get", "nodes", "-o", IPS]);
    let (code, ours, err) = out(&sim, &["nodes", "-o", "ips"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(ours, kubectl, "byte for byte what the document's jsonpath prints");

    let kubectl_workers = sim.kubectl_ok(&["get", "nodes", "-l", "node-role.kubernetes.io/worker", "-o", IPS]);
    let (_, workers, _) = out(&sim, &["nodes", "--role", "worker", "-o", "ips"]);
    assert_eq!(workers, kubectl_workers);

    let (_, table, _) = out(&sim, &["nodes"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("master-0") && table.contains("control-plane,master") && table.contains("Ready") && table.contains(" master\n"), "{table}");
    let (_, json, _) = out(&sim, &["nodes", "-o", "json", "-l", "topology.kubernetes.io/zone=zone-a"]);
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    let names: Vec<&str> = parsed.as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["master-0", "worker-0"]);
    let boot_id = sim.kubectl_ok(&["get", "node", "worker-0", "-o", "jsonpath={.status.nodeInfo.bootID}"]);
    assert_eq!(parsed[1]["bootID"], boot_id.as_str());
    assert_eq!(parsed[1]["pool"], "worker");

    let (code, _, err) = out(&sim, &["nodes", "-l", "a b"]);
    assert_ne!(code, 0);
    assert!(err.contains("bad selector \"a b\""), "{err}");
}

#[test]
fn reboot_from_the_cluster_by_role_with_exclusions() {
    let sim = Sim::start(1, 3);
    let run = Run::from(
        sim.fleetboot(&["reboot", "--role", "worker", "--exclude", "worker-2", "--concurrency", "2", "--poll-interval", "200ms", "--output", "json"])
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "{}", run.debug());
    let outcomes = run.outcomes();
    assert_eq!(outcomes.keys().collect::<Vec<_>>(), ["worker-0", "worker-1"]);
    let (code, _, err) = out(&sim, &["reboot", "--nodes", "worker-9", "--dry-run"]);
    assert_eq!(code, 2);
    assert!(err.contains("no such node in the cluster") && err.contains("worker-9"), "{err}");
    let (code, plan, _) = out(&sim, &["reboot", "--all", "--dry-run"]);
    assert_eq!(code, 0);
    for name in ["master-0", "worker-0", "worker-1", "worker-2"] {
        assert!(plan.contains(name), "{plan}");
    }
}

#[test]
fn cluster_reboots_are_proven_through_the_api_even_across_an_api_outage() {
    use fleetboot::journal::{self, Entry};
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let sim = Sim::start(1, 3);
    let child = sim
        .fleetboot(&["reboot", "--all", "--concurrency", "4", "--poll-interval", "200ms", "--output", "json", "--journal", sim.path("run.jsonl").to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once reboots are under way, the API goes away for 3 s: the nodes come back Ready meanwhile.
    let start = Instant::now();
    while !std::fs::read_to_string(sim.path("run.jsonl")).unwrap_or_default().contains("\"event\":\"dispatched\"") {
        assert!(start.elapsed() < Duration::from_secs(20), "no dispatch");
        std::thread::sleep(Duration::from_millis(20));
    }
    let outage_start = fleetboot::runner::now_ms();
    sim.control("POST", "outage", r#"{"seconds": 3}"#);
    let run = Run::from(child.wait_with_output().unwrap());
    assert_eq!(run.code, 0, "{}", run.debug());
    let (records, state) = journal::load(&sim.path("run.jsonl")).unwrap();
    assert!(state.api_proof);
    for host in &state.hosts {
        let ssh_new = records.iter().find_map(|r| match &r.entry {
            Entry::Back { host: h, new_boot_id } if *h == host.name => Some(new_boot_id.clone()),
            _ => None,
        });
        let api_new = records.iter().find_map(|r| match &r.entry {
            Entry::ApiConfirmed { host: h, boot_id } if *h == host.name => Some(boot_id.clone()),
            _ => None,
        });
        assert!(ssh_new.is_some(), "{}: no SSH evidence", host.name);
        let api_at = records.iter().find(|r| matches!(&r.entry, Entry::ApiConfirmed { host: h, .. } if *h == host.name)).unwrap().at_ms;
        assert!(api_at >= outage_start + 2900, "{}: API evidence while the API was down?", host.name);
        assert_eq!(api_new, ssh_new, "{}: the API and SSH saw the same new boot ID", host.name);
    }
}
