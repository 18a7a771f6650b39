//! The load a reboot run puts on the API server, from the simulation's request counters
//! (`GET /sim/v1/traffic`): a watch serves the proof, so the requests per node stay a small
//! constant, not a poll per node per interval.

use crate::common::Run;
use crate::common::sim::Sim;

fn traffic(sim: &Sim) -> serde_json::Map<String, serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(&sim.control("GET", "traffic", "")).unwrap().as_object().unwrap().clone()
}

fn count(traffic: &serde_json::Map<String, serde_json::Value>, kind: &str, field: &str) -> u64 {
    traffic.get(kind).and_then(|t| t[field].as_u64()).unwrap_or(0)
}

/// Requests of a run on `workers` nodes, by kind, and the whole run's total.
fn reboot_load(workers: usize) -> (serde_json::Map<String, serde_json::Value>, u64) {
    let sim = Sim::start(0, workers);
    sim.control("POST", "traffic/reset", "{}");
    let run: Run =
        sim.fleetboot(&["reboot", "--all", "--concurrency", "3", "--poll-interval", "200ms", "--output", "json"]).output().unwrap().into();
    assert_eq!(run.code, 0, "{}", run.debug());
    let traffic = traffic(&sim);
    let total = traffic.values().map(|t| t["requests"].as_u64().unwrap_or(0)).sum();
    (traffic, total)
}

#[test]
fn a_reboot_run_asks_the_api_a_constant_few_requests_per_node_and_proves_through_one_watch() {
    let (small, small_total) = reboot_load(3);
    let (large, large_total) = reboot_load(9);
    eprintln!("3 nodes: {small:?}\n9 nodes: {large:?}");
    // The proof comes through the Node watch: no node is fetched one by one per poll.
    for traffic in [&small, &large] {
        assert!(count(traffic, "WATCH nodes", "requests") >= 1, "the nodes are watched: {traffic:?}");
        assert!(count(traffic, "WATCH nodes", "events") > 0, "{traffic:?}");
    }
    assert_eq!(count(&large, "GET nodes", "requests"), 0, "no node is read one by one: {large:?}");
    assert!(count(&large, "LIST nodes", "requests") <= 3, "the nodes are listed for the plan and the watch only: {large:?}");
    // The world is read before each dispatch (design.md, "Reading the world"): the pools
    // (who is unavailable) once per node at least.
    assert!(count(&large, "LIST machineconfigpools", "requests") >= 9, "{large:?}");
    // Six more nodes cost a bounded number of requests each, whatever the polling interval:
    // the difference is per-node work (the reads before each dispatch), not a poll of every
    // node every 200 ms (which would be hundreds).
    let extra = large_total.saturating_sub(small_total);
    assert!(extra <= 6 * 6, "{extra} requests for 6 more nodes: {small:?} / {large:?}");
    let bytes = |t: &serde_json::Map<String, serde_json::Value>| t.values().map(|v| v["bytes"].as_u64().unwrap_or(0)).sum::<u64>();
    eprintln!(
        "per node added: {:.1} requests, {:.1} watch events, {:.1} KB",
        extra as f64 / 6.0,
        (count(&large, "WATCH nodes", "events") - count(&small, "WATCH nodes", "events")) as f64 / 6.0,
        (bytes(&large) - bytes(&small)) as f64 / 6.0 / 1024.0
    );
}
