//! fleetboot's own drain (`fleetboot reboot --drain`) against the simulation's default workloads
//! and budgets, judged by the run's outcome and journal and the simulation's node history. The
//! runs are the engine in process (common/inproc.rs).

use crate::common::inproc::EngineRun;
use crate::common::sim::Sim;
use fleetboot::ExitCode;

fn reboot_requests(sim: &Sim, node: &str) -> usize {
    let nodes: serde_json::Value = serde_json::from_str(&sim.control("GET", "nodes", "")).unwrap();
    let node = nodes.as_array().unwrap().iter().find(|n| n["name"] == node).unwrap().clone();
    node["history"].as_array().unwrap().iter().filter(|e| e[1] == "reboot-requested").count()
}

fn frontend_pods_on(sim: &Sim, node: &str) -> Vec<String> {
    let selector = format!("spec.nodeName={node}");
    sim.kubectl_ok(&["-n", "sample-app", "get", "pods", "-l", "app=frontend-0", "--field-selector", &selector, "-o", "name"])
        .lines()
        .map(|l| l.trim_start_matches("pod/").to_owned())
        .collect()
}

fn reboot_worker_0(sim: &Sim, timeout: &str, journal: &str) -> EngineRun {
    let journal = sim.path(journal);
    let args =
        ["--nodes", "worker-0", "--drain", "--drain-timeout", timeout, "--poll-interval", "200ms", "--journal", journal.to_str().unwrap()];
    sim.reboot_in_process(&args)
}

/// Two pods of one budget on the node. A budget that can never be met refuses (429) until
/// `--drain-timeout`, which fails the host naming the pods, leaves it unrebooted and
/// uncordoned; a budget allowing one disruption lets the first go and refuses the second until
/// the first one's replacement is Ready on another worker, then the node drains, reboots once
/// and is uncordoned.
#[test]
fn fleetboot_drain_waits_on_the_default_budgets_then_proceeds() {
    let sim = Sim::in_process(1, 3);
    let ns = ["-n", "sample-app"];
    sim.kubectl_ok(&[&ns[..], &["scale", "deployment/frontend-0", "--replicas=6"]].concat());
    sim.kubectl_ok(&[&ns[..], &["patch", "pdb", "frontend-0", "--type", "merge", "-p", r#"{"spec":{"minAvailable":5}}"#]].concat());
    let start = std::time::Instant::now();
    loop {
        let status = sim.kubectl_ok(
            &[&ns[..], &["get", "pdb", "frontend-0", "-o", "jsonpath={.status.currentHealthy}/{.status.disruptionsAllowed}"]].concat(),
        );
        if status == "6/1" && frontend_pods_on(&sim, "worker-0").len() == 2 {
            break;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(60), "six frontends, two per worker, one disruption: {status}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let before = frontend_pods_on(&sim, "worker-0");

    // A budget that can never be met (all six needed): nothing of it goes, the drain times out.
    let min = |n: u32| {
        let patch = format!(r#"{{"spec":{{"minAvailable":{n}}}}}"#);
        sim.kubectl_ok(&[&ns[..], &["patch", "pdb", "frontend-0", "--type", "merge", "-p", &patch]].concat());
    };
    min(6);
    let run = reboot_worker_0(&sim, "5s", "one.jsonl");
    assert_eq!(run.exit(), ExitCode::HostsFailed, "{}", run.debug());
    let outcome = run.outcomes()["worker-0"].1.clone();
    assert!(outcome.starts_with("drain: pods still on the node after 5s: "), "{outcome}");
    assert!(before.iter().all(|p| outcome.contains(p.as_str())), "both frontends named: {outcome}");
    assert_eq!(frontend_pods_on(&sim, "worker-0"), before, "the budget held both");
    assert!(!outcome.contains("router") && !outcome.contains("image-registry"), "the other budgets allowed theirs: {outcome}");
    assert_eq!(reboot_requests(&sim, "worker-0"), 0, "no reboot after a failed drain");
    assert_eq!(sim.kubectl_ok(&["get", "node", "worker-0", "-o", "jsonpath={.spec.unschedulable}"]), "", "uncordoned after the failure");

    // One disruption allowed: the first eviction takes it, the second is refused (429) until the
    // first one's replacement is Ready on another worker; then the node drains and reboots.
    min(5);
    let run = reboot_worker_0(&sim, "120s", "two.jsonl");
    assert_eq!(run.exit(), ExitCode::Ok, "{}", run.debug());
    assert_eq!(reboot_requests(&sim, "worker-0"), 1);
    let now = sim.kubectl_ok(&[&ns[..], &["get", "pods", "-l", "app=frontend-0", "-o", "name"]].concat());
    assert!(before.iter().all(|p| !now.contains(p.as_str())), "{now}");
    let (ok, out, err) = sim.kubectl(&[&ns[..], &["rollout", "status", "deployment/frontend-0", "--timeout=120s"]].concat());
    assert!(ok, "{out}{err}");
    assert_eq!(sim.kubectl_ok(&["get", "node", "worker-0", "-o", "jsonpath={.spec.unschedulable}"]), "");
}
