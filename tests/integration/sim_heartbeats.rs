//! The simulation's kubelets beat as real ones do with `fleetboot sim --heartbeat-mode kubelet`
//! (kubernetes pkg/kubelet/kubelet_node_status.go and the node lease controller, cited in
//! crates/sim/src/heartbeat.rs): a Lease per node in kube-node-lease, renewed every
//! `--heartbeat` while the node is up and never while it is down, and the Node's status posted
//! only every `--status-report` when nothing changed. Judged by kubectl and the simulation's own
//! node history.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::common::sim::{KubectlWatch, Sim};

/// `kubectl get leases -n kube-node-lease -w`: the renew time of every version kubectl saw.
struct LeaseWatch(KubectlWatch);

impl LeaseWatch {
    fn start(sim: &Sim) -> LeaseWatch {
        LeaseWatch(KubectlWatch::start_with(sim, &["leases", "-n", "kube-node-lease"], "{.metadata.name} {.spec.renewTime}"))
    }

    /// The distinct renew times seen for `lease`, in ms since the epoch.
    fn renewals(&self, lease: &str) -> Vec<u64> {
        let mut times: Vec<u64> = self
            .0
            .lines()
            .iter()
            .filter_map(|line| line.split_once(' '))
            .filter(|(name, _)| *name == lease)
            .map(|(_, at)| epoch_ms(at))
            .collect();
        times.dedup();
        times
    }

    /// Waits (at most a minute) until `lease` was renewed `count` times after `after_ms`.
    fn wait_renewals(&self, lease: &str, after_ms: u64, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.renewals(lease).iter().filter(|t| **t > after_ms).count() < count {
            assert!(Instant::now() < deadline, "{lease}: fewer than {count} renewals after {after_ms}: {:?}", self.renewals(lease));
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn epoch_ms(rfc3339: &str) -> u64 {
    humantime::parse_rfc3339(rfc3339).unwrap().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn json(sim: &Sim, args: &[&str]) -> Value {
    serde_json::from_str(&sim.kubectl_ok(&[args, &["-o", "json"]].concat())).unwrap()
}

/// The time of the first `event` in `node`'s own history after `after_ms`.
fn history_event(sim: &Sim, node: &str, event: &str, after_ms: u64) -> u64 {
    let nodes: Value = serde_json::from_str(&sim.control("GET", "nodes", "")).unwrap();
    let entry = nodes.as_array().unwrap().iter().find(|n| n["name"] == node).unwrap();
    let history = entry["history"].as_array().unwrap();
    history
        .iter()
        .filter(|e| e[1] == event)
        .map(|e| e[0].as_u64().unwrap())
        .find(|t| *t > after_ms)
        .unwrap_or_else(|| panic!("no {event} in {history:?}"))
}

#[test]
fn every_node_has_a_lease_renewed_while_it_is_up_and_never_while_it_is_down() {
    let sim = Sim::start_with(1, 2, &["--heartbeat-mode", "kubelet", "--heartbeat", "200ms", "--status-report", "1h"]);
    let nodes = json(&sim, &["get", "nodes"]);
    let leases = json(&sim, &["get", "leases", "-n", "kube-node-lease"]);
    let mut names: Vec<&str> = leases["items"].as_array().unwrap().iter().map(|l| l["metadata"]["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["master-0", "worker-0", "worker-1"], "one Lease per node, named after it");
    for node in nodes["items"].as_array().unwrap() {
        let name = node["metadata"]["name"].as_str().unwrap();
        let lease = leases["items"].as_array().unwrap().iter().find(|l| l["metadata"]["name"] == name).unwrap();
        assert_eq!(lease["spec"]["holderIdentity"], name);
        assert_eq!(lease["spec"]["leaseDurationSeconds"], 40);
        assert_eq!(lease["metadata"]["ownerReferences"][0]["kind"], "Node");
        assert_eq!(lease["metadata"]["ownerReferences"][0]["uid"], node["metadata"]["uid"], "owned by its Node");
    }

    // Renewals do not touch the Nodes: with --status-report 1h and nothing changing, every
    // Node keeps its resourceVersion while each Lease is renewed several times.
    let versions = || sim.kubectl_ok(&["get", "nodes", "-o", "jsonpath={.items[*].metadata.resourceVersion}"]);
    let before = versions();
    let watch = LeaseWatch::start(&sim);
    let start = now_ms();
    for lease in ["master-0", "worker-0", "worker-1"] {
        watch.wait_renewals(lease, start, 3);
    }
    assert_eq!(versions(), before, "no Node status posted while only Leases were renewed");

    // worker-0 reboots: its kubelet stops with it, so its Lease is not renewed while it is down,
    // and is again once it is up.
    let journal = sim.path("reboot.jsonl");
    let requested = now_ms();
    let status = sim.fleetboot(&["reboot", "--nodes", "worker-0", "--journal", journal.to_str().unwrap()]).status().unwrap();
    assert!(status.success(), "the reboot of worker-0");
    let down = history_event(&sim, "worker-0", "down", requested);
    let up = history_event(&sim, "worker-0", "up", down);
    watch.wait_renewals("worker-0", up, 2);
    watch.wait_renewals("worker-1", up, 2);
    let while_down: Vec<u64> = watch.renewals("worker-0").into_iter().filter(|t| *t > down + 100 && *t < up).collect();
    assert!(while_down.is_empty(), "worker-0's Lease renewed while it was down ({down}..{up}): {while_down:?}");
    let other: Vec<u64> = watch.renewals("worker-1").into_iter().filter(|t| *t > down + 100 && *t < up).collect();
    assert!(!other.is_empty(), "worker-1 kept renewing meanwhile ({down}..{up} is {} ms)", up - down);
}

#[test]
fn an_unchanged_status_is_posted_every_status_report_with_every_condition_s_heartbeat() {
    let sim = Sim::start_with(1, 1, &["--heartbeat-mode", "kubelet", "--heartbeat", "1h", "--status-report", "1s"]);
    let conditions = |node: &Value| -> Vec<(String, String, String)> {
        node["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let text = |k: &str| c[k].as_str().unwrap().to_owned();
                (text("type"), text("lastHeartbeatTime"), text("lastTransitionTime"))
            })
            .collect()
    };
    let first = json(&sim, &["get", "node", "worker-0"]);
    let leases_before = sim.kubectl_ok(&["get", "leases", "-n", "kube-node-lease", "-o", "jsonpath={.items[*].spec.renewTime}"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let later = loop {
        let now = json(&sim, &["get", "node", "worker-0"]);
        if conditions(&now).iter().zip(conditions(&first)).all(|(a, b)| a.1 != b.1) {
            break now;
        }
        assert!(Instant::now() < deadline, "not every condition's heartbeat moved: {:?}", conditions(&now));
        std::thread::sleep(Duration::from_millis(200));
    };
    for ((kind, _, transition), (_, _, was)) in conditions(&later).iter().zip(conditions(&first)) {
        assert_eq!(*transition, was, "{kind}: a heartbeat is no transition");
    }
    let leases_after = sim.kubectl_ok(&["get", "leases", "-n", "kube-node-lease", "-o", "jsonpath={.items[*].spec.renewTime}"]);
    assert_eq!(leases_after, leases_before, "the Leases beat on their own interval (1h here)");
}

#[test]
fn the_default_heartbeats_make_no_leases() {
    let sim = Sim::start(1, 1);
    assert!(sim.kubectl_ok(&["get", "leases", "-n", "kube-node-lease", "-o", "name"]).is_empty());
}
