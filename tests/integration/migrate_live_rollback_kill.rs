//! The live rollback (`fleetboot migrate --to OpenShiftSDN --mode live`) killed with SIGKILL (by
//! PID) at each of its steps, one kill after the other on one cluster, each kill resumed with
//! `fleetboot migrate --resume`: before its one patch (the boot IDs recorded), after it, in the
//! MCO's reboots it watches (after the first it journals, once the first round is over, once
//! the second is under way: resumed only once the API shows that new boot, so a resume proves
//! the boot before it only from what the killed run kept), after the watch's verdict, after verify; then `--cleanup` killed before the namespace's deletion and run again.
//! At each distinct step rather than after each record: the records of one step's start and the
//! previous step's end follow each other within a millisecond, and a kill between them is the
//! same kill as one at the step's first request (held here). Judged at the end as the live
//! rollback is (migrate_live_rollback.rs): OpenShift SDN in spec and status, `spec.migration`
//! and the annotation gone, and, from the simulation's own history, every machine booted
//! exactly four times in all (two forward, two back: nothing rebooted twice by a resume); the
//! patch changed `Network.config`'s spec once, each step done once, and the network operator
//! refused nothing.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::Run;
use crate::common::elsewhere::Killed;
use crate::common::sim::{Sim, boot_counts};

const ANNOTATION: &str = "network.openshift.io/network-type-migration";

/// `fleetboot migrate --poll-interval 300ms EXTRA --output plain`, in this process.
fn migrate(sim: &Sim, extra: &[&str]) -> Run {
    let mut args = vec!["--poll-interval", "300ms"];
    args.extend(extra);
    sim.migrate_in_process(&args).to_run()
}

/// The live rollback's journal; empty until it journaled its start (the newest directory is
/// the forward migration's until then).
fn rollback_journal(sim: &Sim) -> String {
    let text =
        sim.migration_dirs().last().map(|d| std::fs::read_to_string(d.join("migration.jsonl")).unwrap_or_default()).unwrap_or_default();
    if text.contains(r#""target":"OpenShiftSDN","flow":"live""#) { text } else { String::new() }
}

/// Where to kill: the first moment the rollback's journal holds `marker` `count` times (and,
/// with `boots`, every machine, or one, booted that many times: the simulation's history); from
/// when `hold` (a predicate on the journal) holds, the requests `(method, resource)` wait
/// unanswered (the simulation's `hold-requests`; `""`: from the start), so a kill lands before the next step's first
/// request whatever the machine's speed; released after the kill. With `then`, the resume
/// waits after the kill until it holds.
struct Point {
    marker: &'static str,
    count: usize,
    boots: Option<(Every, usize)>,
    hold: Option<(&'static str, (&'static str, &'static str))>,
    then: Option<After>,
}

/// What the cluster must show before the next resume.
#[derive(Clone, Copy, Debug)]
enum After {
    /// The API shows each machine's boot ID as it is now (a node that booted once more while
    /// nothing watched shows its new one), and some machine booted a fourth time.
    NewBootsShown,
}

impl After {
    fn holds(self, sim: &Sim) -> bool {
        match self {
            After::NewBootsShown => {
                let machines: Value = serde_json::from_str(&sim.control("GET", "nodes", "")).unwrap();
                let shown = |name: &str| sim.kubectl_ok(&["get", "node", name, "-o", "jsonpath={.status.nodeInfo.bootID}"]);
                boot_counts(sim).iter().any(|(_, n)| *n >= 4)
                    && machines.as_array().unwrap().iter().all(|m| shown(m["name"].as_str().unwrap()) == m["bootID"].as_str().unwrap())
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Every {
    Machine,
    AnyMachine,
}

impl Point {
    fn reached(&self, sim: &Sim, journal: &str) -> bool {
        let booted = |(every, n): (Every, usize)| {
            let counts = boot_counts(sim);
            match every {
                Every::Machine => counts.iter().all(|(_, c)| *c >= n),
                Every::AnyMachine => counts.iter().any(|(_, c)| *c >= n),
            }
        };
        journal.matches(self.marker).count() >= self.count && self.boots.is_none_or(booted)
    }
}

impl std::fmt::Debug for Point {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ×{}", self.marker, self.count)?;
        match self.boots {
            Some((every, n)) => write!(f, ", {every:?} booted {n} times"),
            None => Ok(()),
        }
    }
}

fn hold(sim: &Sim, (method, resource): (&str, &str), held: bool) {
    sim.control("POST", "hold-requests", &format!(r#"{{"method": "{method}", "resource": "{resource}", "held": {held}}}"#));
}

/// Spawns `fleetboot migrate ARGS --poll-interval 300ms` and kills it (SIGKILL, by PID) the
/// moment the journal reaches `point`; panics if it ended first. The journal at the kill.
fn kill_at(sim: &Sim, args: &[&str], point: &Point) -> String {
    let mut all = vec!["migrate", "--poll-interval", "300ms", "--output", "plain"];
    all.extend(args);
    let mut child = Killed(sim.fleetboot(&all).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    let mut held = None;
    let start = Instant::now();
    let outcome = loop {
        let journal = rollback_journal(sim);
        if let Some((from, request)) = point.hold
            && held.is_none()
            && journal.contains(from)
        {
            hold(sim, request, true);
            held = Some(request);
        }
        if point.reached(sim, &journal) {
            break Ok(());
        }
        if let Some(status) = child.0.try_wait().unwrap() {
            break Err(format!("migrate ended ({status}) before {point:?}"));
        }
        if start.elapsed() > Duration::from_secs(120) {
            break Err(format!("{point:?} never reached"));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let _ = child.0.kill();
    child.0.wait().unwrap();
    if let Some(request) = held {
        hold(sim, request, false);
    }
    if let Err(e) = outcome {
        panic!("{e}: {}", rollback_journal(sim));
    }
    rollback_journal(sim)
}

fn network_config(sim: &Sim) -> Value {
    let (code, body) = sim.raw("GET", "/apis/config.openshift.io/v1/networks/cluster", "application/json", b"");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The live rollback killed at each of its steps and resumed each time ends as one run would:
/// OpenShift SDN running, each machine booted exactly twice more, each step done once.
#[test]
fn a_live_rollback_killed_at_each_step_resumes_to_the_end_rebooting_each_node_twice_more() {
    let sim = Sim::in_process_with(1, 1, &["--openshift-version", "4.16.21", "--workloads", "0"]);
    let forward = migrate(&sim, &["--mode", "live", "--etcd-backup-confirmed"]);
    assert_eq!(forward.code, 0, "{}", forward.debug());
    assert_eq!(migrate(&sim, &["--cleanup"]).code, 0);
    let forward_boots = boot_counts(&sim);
    assert!(forward_boots.iter().all(|(_, count)| *count == 2), "{forward_boots:?}");
    let generation = network_config(&sim)["metadata"]["generation"].as_i64();

    let point = |marker, count, hold| Point { marker, count, boots: None, hold, then: None };
    let observed = |every, n| Point { marker: r#""event":"reboot_observed""#, count: 1, boots: Some((every, n)), hold: None, then: None };
    let points = [
        // Inside the patch's step, its boot IDs recorded, before the patch (held from the start:
        // nothing before it patches the Network).
        point(r#""step_started","step":"set_network_type""#, 1, Some(("", ("PATCH", "networks")))),
        point(r#""step_done","step":"set_network_type""#, 1, None),
        // In the watch: its first reboot journaled; the MCO's first round (the routable MTU)
        // over, every machine booted a third time; its second (configure-ovs.sh) under way, a
        // machine booted a fourth time, and the resume waits until the API shows that boot:
        // the watch it starts never sees the machine's third boot ID, shown only to the watch
        // killed, so the proof needs the boot IDs the killed watch saw, kept for it. (Killed
        // and resumed at once, the API still showed the third: a resume that kept nothing saw
        // both boots itself, and the test could not tell.)
        point(r#""event":"reboot_observed""#, 1, None),
        observed(Every::Machine, 3),
        Point { then: Some(After::NewBootsShown), ..observed(Every::AnyMachine, 4) },
        // The watch's verdict journaled, before verify's pod reads (held from the last reboot).
        point(r#""step_done","step":"wait_rollout""#, 1, Some((r#""step_started","step":"wait_rollout""#, ("GET", "pods")))),
        // After verify's end the run only releases its lease: the release is held, so the kill
        // lands after the record and before the run's end.
        point(r#""step_done","step":"verify""#, 1, Some((r#""step_done","step":"wait_rollout""#, ("DELETE", "leases")))),
    ];
    let start = ["--to", "OpenShiftSDN", "--mode", "live", "--etcd-backup-confirmed"];
    let mut kills = Vec::new();
    for point in &points {
        // A point a kill landed past already (the MCO rebooted on while nothing watched) is
        // not aimed at again.
        if point.reached(&sim, &rollback_journal(&sim)) {
            continue;
        }
        let at_kill = kill_at(&sim, if kills.is_empty() { &start } else { &["--resume"] }, point);
        let landed = at_kill.lines().last().unwrap_or_default().to_owned();
        assert!(!at_kill.contains(r#""step_done","step":"verify""#) || point.marker.contains("verify"), "{point:?}: past its end");
        // Never a boot more than the two rounds back, whatever was killed.
        for (node, count) in boot_counts(&sim) {
            assert!(count <= 4, "killed at {point:?}: {node} booted {count} times");
        }
        kills.push(format!("{point:?} → {landed}"));
        if let Some(after) = point.then {
            let start = Instant::now();
            while !after.holds(&sim) {
                assert!(start.elapsed() < Duration::from_secs(60), "never: {after:?}: {kills:#?}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    // The kill the proof across resumes hangs on was aimed at, not passed.
    assert!(kills.iter().any(|k| k.contains("AnyMachine booted 4 times")), "{kills:#?}");
    // Most points were aimed at: only the reboots the MCO went on with after a kill may be
    // passed (seen at once by the next resume).
    assert!(kills.len() >= 5, "{kills:#?}");
    let done = migrate(&sim, &["--resume"]);
    assert_eq!(done.code, 0, "{kills:#?}: {}", done.debug());
    assert!(done.stdout.contains("resuming the migration to OpenShiftSDN (live flow)"), "{}", done.stdout);

    // `--cleanup` killed before the namespace's deletion (held), then run to its end.
    let cleanup = point(r#""step_started","step":"cleanup""#, 1, Some((r#""event":"#, ("DELETE", "namespaces"))));
    kill_at(&sim, &["--cleanup"], &cleanup);
    let cleaned = migrate(&sim, &["--cleanup"]);
    assert_eq!(cleaned.code, 0, "{}", cleaned.debug());

    // The live rollback's end, as in migrate_live_rollback.rs.
    let config = network_config(&sim);
    assert_eq!(config["status"]["networkType"], "OpenShiftSDN", "{kills:#?}");
    let get = |kind: &str, path: &str| sim.kubectl_ok(&["get", kind, "cluster", "-o", &format!("jsonpath={{{path}}}")]);
    assert_eq!(get("network.operator.openshift.io", ".spec.defaultNetwork.type"), "OpenShiftSDN");
    assert_eq!(get("network.operator.openshift.io", ".spec.migration"), "");
    assert!(config.pointer(&format!("/metadata/annotations/{}", ANNOTATION.replace('/', "~1"))).is_none(), "annotation removed");
    assert_eq!(
        sim.kubectl_ok(&["get", "daemonset", "sdn", "-n", "openshift-sdn", "-o", "jsonpath={.status.numberReady}"]),
        "2",
        "OpenShift SDN runs on every node"
    );
    // Two boots forward, two back: each machine booted four times (the simulation's history),
    // none twice by a resume.
    for (node, count) in boot_counts(&sim) {
        assert_eq!(count, 4, "{node}: two boots forward, two back: {kills:#?}");
    }
    // The one patch: the spec changed once (its generation), whatever a kill mid-step resent.
    let generation = generation.expect("the simulation keeps metadata.generation");
    assert_eq!(config["metadata"]["generation"].as_i64(), Some(generation + 1), "one spec change: {kills:#?}");
    let journal = rollback_journal(&sim);
    // Every kill but the first (of the start) was of a resume, the last resume ran to the end,
    // and each of the two `--cleanup` runs took the migration up again.
    assert_eq!(journal.matches(r#""event":"migration_resumed""#).count(), kills.len() + 2, "{kills:#?}: {journal}");
    for step in ["preflight", "backup", "set_network_type", "wait_rollout", "verify", "cleanup"] {
        assert_eq!(journal.matches(&format!(r#""step_done","step":"{step}""#)).count(), 1, "{step}: {journal}");
    }
    // Every reboot seen, across the kills: the boot IDs a killed watch saw are kept for the next
    // (the machine's third boot ID, shown only before the kill at its fourth boot, is counted).
    let proof = journal.lines().find(|l| l.contains(r#""step_done","step":"wait_rollout""#)).unwrap();
    assert!(proof.contains("each of the 2 nodes rebooted 2 times by the MCO (new boot IDs), Ready after each"), "{kills:#?}: {proof}");
    assert_eq!(sim.control("GET", "operators/refusals", ""), "[]", "the operator refused nothing");
}
