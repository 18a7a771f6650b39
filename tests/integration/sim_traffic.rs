//! The load a run puts on the API server, from the simulation's request counters
//! (`GET /sim/v1/traffic`): a watch serves the proof, so the requests per node stay a small
//! constant, not a poll per node per interval. Each kind of run (plain, drained, through the
//! kube transport, with the journal in the cluster, a migration) is measured at two fleet sizes;
//! the difference is what one more node costs (the fixed part cancels), and it is bounded by a
//! constant measured here with a margin. `scripts/bench-api-load.sh` prints the same table at
//! 200 and more nodes.

use std::collections::BTreeMap;

use crate::common::Run;
use crate::common::sim::Sim;

/// One kind of request's counters: requests, answer bytes, watch events, request body bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Counters {
    requests: u64,
    bytes: u64,
    events: u64,
    sent: u64,
}

/// What one run asked of the API server, by `"VERB resource"`, and the exec streams' bytes.
#[derive(Clone, Debug, Default)]
struct Load {
    kinds: BTreeMap<String, Counters>,
    exec_stream_bytes: u64,
}

impl Load {
    fn read(sim: &Sim) -> Load {
        let traffic: serde_json::Value = serde_json::from_str(&sim.control("GET", "traffic", "")).unwrap();
        let field = |t: &serde_json::Value, f: &str| t[f].as_u64().unwrap_or(0);
        let kinds = traffic
            .as_object()
            .unwrap()
            .iter()
            .map(|(kind, t)| {
                let counters = Counters {
                    requests: field(t, "requests"),
                    bytes: field(t, "bytes"),
                    events: field(t, "events"),
                    sent: field(t, "sent"),
                };
                (kind.clone(), counters)
            })
            .collect();
        let exec: serde_json::Value = serde_json::from_str(&sim.control("GET", "exec", "")).unwrap();
        Load { kinds, exec_stream_bytes: exec["streamBytes"].as_u64().unwrap_or(0) }
    }

    fn kind(&self, kind: &str) -> Counters {
        self.kinds.get(kind).copied().unwrap_or_default()
    }

    fn total(&self) -> Counters {
        self.kinds.values().fold(Counters::default(), |a, c| Counters {
            requests: a.requests + c.requests,
            bytes: a.bytes + c.bytes,
            events: a.events + c.events,
            sent: a.sent + c.sent,
        })
    }

    /// Bytes both ways: answers, request bodies and exec streams.
    fn all_bytes(&self) -> u64 {
        let t = self.total();
        t.bytes + t.sent + self.exec_stream_bytes
    }
}

/// What one more node costs: the difference between two fleet sizes, per added node.
#[derive(Debug)]
struct PerNode {
    requests: f64,
    events: f64,
    kib: f64,
    by_kind: Vec<(String, f64)>,
}

fn per_node(small: &Load, large: &Load, added: usize) -> PerNode {
    let n = added as f64;
    let (s, l) = (small.total(), large.total());
    let kinds: std::collections::BTreeSet<&String> = small.kinds.keys().chain(large.kinds.keys()).collect();
    let by_kind = kinds
        .into_iter()
        .map(|k| (k.clone(), (large.kind(k).requests as f64 - small.kind(k).requests as f64) / n))
        .filter(|(_, r)| *r != 0.0)
        .collect();
    PerNode {
        requests: (l.requests as f64 - s.requests as f64) / n,
        events: (l.events as f64 - s.events as f64) / n,
        kib: (large.all_bytes() as f64 - small.all_bytes() as f64) / n / 1024.0,
        by_kind,
    }
}

/// A fresh simulation of `workers` workers (and `extra` flags), counters reset, `args` run to
/// the end (exit 0); what the run asked of the API.
fn load_of(workers: usize, masters: usize, extra: &[&str], args: &[&str]) -> Load {
    let sim = Sim::start_with(masters, workers, extra);
    sim.control("POST", "traffic/reset", "{}");
    let run: Run = sim.fleetboot(args).output().unwrap().into();
    assert_eq!(run.code, 0, "{workers} workers, {args:?}: {}", run.debug());
    Load::read(&sim)
}

fn report(what: &str, small: &Load, large: &Load, per: &PerNode) {
    eprintln!("{what}\n  small: {:?}\n  large: {:?}", small.kinds, large.kinds);
    eprintln!(
        "PER NODE {what}: {:.1} requests, {:.1} watch events, {:.1} KiB; by kind {:?}",
        per.requests, per.events, per.kib, per.by_kind
    );
}

const PLAIN: [&str; 7] = ["reboot", "--all", "--concurrency", "3", "--poll-interval", "200ms", "--output"];

#[test]
fn a_reboot_run_asks_the_api_a_constant_few_requests_per_node_and_proves_through_one_watch() {
    let args = [&PLAIN[..], &["json"]].concat();
    let small = load_of(3, 0, &[], &args);
    let large = load_of(9, 0, &[], &args);
    let per = per_node(&small, &large, 6);
    report("plain", &small, &large, &per);
    // The proof comes through the Node watch: no node is fetched one by one per poll.
    for load in [&small, &large] {
        assert!(load.kind("WATCH nodes").requests >= 1, "the nodes are watched: {load:?}");
        assert!(load.kind("WATCH nodes").events > 0, "{load:?}");
    }
    assert_eq!(large.kind("GET nodes").requests, 0, "no node is read one by one: {large:?}");
    assert!(large.kind("LIST nodes").requests <= 3, "the nodes are listed for the plan and the watch only: {large:?}");
    // The world is read before each dispatch (design.md, "Reading the world"): the pools
    // (who is unavailable) once per node at least.
    assert!(large.kind("LIST machineconfigpools").requests >= 9, "{large:?}");
    // Six more nodes cost a bounded number of requests each, whatever the polling interval:
    // the difference is per-node work (the reads before each dispatch), not a poll of every
    // node every 200 ms (which would be hundreds).
    assert!(per.requests <= 6.0, "{per:?}");
    // Bytes: the reads before each dispatch are of small objects (pools, leases, etcd), not a
    // list of every node (which would grow with the fleet).
    assert!(per.kib <= 24.0, "{per:?}");
}

/// The plan's nodes come from the Node watch's own list when the selection asks only for a
/// role (or for every node): one list of the fleet at the start, not one for the plan beside the
/// watch's (at 10,000 nodes, 26 MB each, competing for the same cores). A `--selector`, which
/// only the API server parses, is listed on its own. Both choose the workers alone.
#[test]
fn a_role_selection_takes_its_nodes_from_the_node_watchs_list_and_a_selector_lists_its_own() {
    let run_with = |select: &[&str]| {
        let sim = Sim::start_with(1, 3, &[]);
        sim.control("POST", "traffic/reset", "{}");
        let args = [&["reboot"][..], select, &["--concurrency", "3", "--poll-interval", "200ms", "--output", "json"]].concat();
        let run: Run = sim.fleetboot(&args).output().unwrap().into();
        assert_eq!(run.code, 0, "{select:?}: {}", run.debug());
        let rebooted: Vec<String> = run.outcomes().into_iter().filter(|(_, (outcome, _))| outcome == "rebooted").map(|(h, _)| h).collect();
        (Load::read(&sim), rebooted)
    };
    let (by_role, role_chose) = run_with(&["--role", "worker"]);
    assert_eq!(by_role.kind("LIST nodes").requests, 1, "the watch's list alone: {:?}", by_role.kinds);
    let (by_selector, selector_chose) = run_with(&["--selector", "node-role.kubernetes.io/worker"]);
    assert_eq!(by_selector.kind("LIST nodes").requests, 2, "the plan's own list beside the watch's: {:?}", by_selector.kinds);
    assert_eq!(role_chose, ["worker-0", "worker-1", "worker-2"], "the workers alone, the master left alone");
    assert_eq!(selector_chose, role_chose);
}

/// The same role selection when the Node watch's first list fails (answered 500 once, the
/// simulation's `fail-requests` on `LIST nodes`; a failed request is not counted): the plan
/// does not wait for the watch to list again (its backoff; up to 30 s for a watch that keeps
/// failing) but lists the nodes on its own at once, beside the watch's list when it comes; and
/// chooses the same nodes.
#[test]
fn a_role_selection_whose_node_watch_fails_its_first_list_lists_the_nodes_itself() {
    let sim = Sim::start_with(1, 3, &[]);
    sim.control("POST", "traffic/reset", "{}");
    sim.control("POST", "fail-requests", r#"{"method": "LIST", "resource": "nodes", "count": 1}"#);
    let args = ["reboot", "--role", "worker", "--concurrency", "3", "--poll-interval", "200ms", "--output", "json"];
    let run: Run = sim.fleetboot(&args).output().unwrap().into();
    assert_eq!(run.code, 0, "{}", run.debug());
    let rebooted: Vec<String> = run.outcomes().into_iter().filter(|(_, (outcome, _))| outcome == "rebooted").map(|(h, _)| h).collect();
    assert_eq!(rebooted, ["worker-0", "worker-1", "worker-2"], "the workers alone: {}", run.debug());
    let load = Load::read(&sim);
    assert_eq!(load.kind("LIST nodes").requests, 2, "the plan's own list and the watch's second: {:?}", load.kinds);
}

/// A drained run with workloads on every node (one user Deployment per worker, 3 replicas,
/// minAvailable 2, with the platform's): a cordon, the node's pods listed by field selector,
/// each evicted, the wait for them to go, an uncordon. One node at a time, so no eviction
/// meets a budget its neighbour's drain used up.
#[test]
fn a_drained_run_costs_a_constant_few_requests_per_node() {
    let load = |workers: usize| {
        let workloads = workers.to_string();
        let args = ["reboot", "--all", "--drain", "--concurrency", "1", "--poll-interval", "200ms", "--output", "json"];
        load_of(workers, 1, &["--workloads", &workloads], &args)
    };
    let (small, large) = (load(3), load(6));
    let per = per_node(&small, &large, 3);
    report("drained", &small, &large, &per);
    // Every added node is cordoned and uncordoned (two patches) and its pods evicted.
    assert!(per.by_kind.iter().any(|(k, r)| k == "PATCH nodes" && *r >= 2.0), "{per:?}");
    // No node is listed or read beyond the cordon's own check.
    assert!(large.kind("LIST nodes").requests <= 3, "{large:?}");
    // Evictions a budget refuses (429) are tried again until the budget allows them, so their
    // count depends on how fast replacements get Ready: bounded per node, not differenced.
    for (load, nodes) in [(&small, 4), (&large, 7)] {
        let evictions = load.kind("POST pods/eviction").requests;
        assert!(evictions >= nodes && evictions <= 15 * nodes, "{evictions} evictions for {nodes} nodes: {load:?}");
    }
    // A constant per node besides the evictions: the reads before the drain and before the
    // reboot, the cordon's check and patches, the pod lists; not a poll per interval.
    let evictions = per.by_kind.iter().find(|(k, _)| k == "POST pods/eviction").map_or(0.0, |(_, r)| *r);
    assert!(per.requests - evictions <= 12.0, "{per:?}");
    assert!(per.kib <= 64.0, "{per:?}");
}

/// Through the kube transport (`--transport kube`): each boot-ID read and the reboot are an
/// exec into the node's machine-config daemon pod, found by field selector.
#[test]
fn the_kube_transport_costs_a_constant_few_execs_per_node() {
    let args = ["reboot", "--all", "--transport", "kube", "--concurrency", "3", "--poll-interval", "200ms", "--output", "json"];
    let (small, large) = (load_of(3, 0, &[], &args), load_of(9, 0, &[], &args));
    let per = per_node(&small, &large, 6);
    report("kube transport", &small, &large, &per);
    let execs = (large.kind("EXEC pods/exec").requests as f64 - small.kind("EXEC pods/exec").requests as f64) / 6.0;
    // The boot ID for the plan and before the reboot, the reboot, a read after it, one when
    // the Node watch shows the node down and one when it shows it back: no exec per poll
    // interval while the node reboots (14 a node at 200 ms polls before).
    assert!((3.0..=8.0).contains(&execs), "{execs} execs per node: {per:?}");
    assert!(per.requests <= 14.0, "{per:?}");
    assert!(per.kib <= 40.0, "{per:?}");
}

/// A migration (the offline procedure on a 4.16 cluster: two MCO rollouts, every node
/// rebooted by fleetboot): the per-node part, and the fixed part (the steps, the waits).
#[test]
fn a_migration_costs_a_constant_per_node_beside_its_fixed_steps() {
    let args = ["migrate", "--etcd-backup-confirmed", "--poll-interval", "300ms", "--output", "json"];
    let (small, large) = (load_of(2, 1, &[], &args), load_of(4, 1, &[], &args));
    let per = per_node(&small, &large, 2);
    report("migration", &small, &large, &per);
    let fixed = small.total().requests as f64 - 3.0 * per.requests;
    eprintln!("FIXED migration: {fixed:.0} requests");
    // The MCO rollouts are watched: the nodes come from one watch, not a LIST of every node
    // per change of a pool (7 a node before, each the whole fleet: quadratic bytes), and each
    // rendered config is read once (its name is the hash of its content).
    assert_eq!(large.kind("LIST nodes").requests, small.kind("LIST nodes").requests, "{per:?}");
    assert!(large.kind("GET machineconfigs").requests <= small.kind("GET machineconfigs").requests + 4, "{per:?}");
    assert!(per.requests <= 20.0, "{per:?}");
    assert!(per.kib <= 140.0, "{per:?}");
}

/// With the journal in the cluster (`--journal-in-cluster`): every record a conditional update
/// of the run's last ConfigMap chunk.
#[test]
fn the_journal_in_the_cluster_costs_a_bounded_few_updates_per_node() {
    let args = ["reboot", "--all", "--journal-in-cluster", "--concurrency", "3", "--poll-interval", "200ms", "--output", "json"];
    let (small, large) = (load_of(3, 0, &[], &args), load_of(9, 0, &[], &args));
    let per = per_node(&small, &large, 6);
    report("journal in the cluster", &small, &large, &per);
    let updates = (large.kind("PUT configmaps").requests as f64 - small.kind("PUT configmaps").requests as f64) / 6.0;
    let sent = |l: &Load| l.kind("PUT configmaps").sent + l.kind("POST configmaps").sent;
    let answered = |l: &Load| l.kind("PUT configmaps").bytes + l.kind("POST configmaps").bytes;
    eprintln!(
        "JOURNAL per node: {updates:.1} updates, {:.1} KiB sent, {:.1} KiB answered",
        (sent(&large) - sent(&small)) as f64 / 6.0 / 1024.0,
        (answered(&large) - answered(&small)) as f64 / 6.0 / 1024.0
    );
    assert!((1.0..=12.0).contains(&updates), "{updates} chunk updates per node: {per:?}");
    // Each update moves at most one 8 KiB chunk each way (64 KiB chunks: 0.5 MB per node).
    assert!(per.kib <= 160.0, "{per:?}");
}
