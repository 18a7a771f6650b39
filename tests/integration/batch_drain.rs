//! `--drain-pod-selector` (kured's partial drain) and the drain preflight's budgets on the
//! simulated cluster, real processes: kubectl judges which pods stayed, the simulation's node
//! history which nodes rebooted, the journal what was evicted.

use std::path::Path;
use std::process::Stdio;

use crate::common::Run;
use crate::common::sim::Sim;
use fleetboot::adapters::journal;
use fleetboot_core::journal::Entry;

fn reboot_requests(sim: &Sim, node: &str) -> usize {
    let nodes: serde_json::Value = serde_json::from_str(&sim.control("GET", "nodes", "")).unwrap();
    let node = nodes.as_array().unwrap().iter().find(|n| n["name"] == node).unwrap().clone();
    node["history"].as_array().unwrap().iter().filter(|e| e[1] == "reboot-requested").count()
}

fn create(sim: &Sim, name: &str, json: &str) {
    let file = sim.path(name);
    std::fs::write(&file, json).unwrap();
    sim.kubectl_ok(&["create", "--validate=false", "-f", file.to_str().unwrap()]);
}

/// A bare pod pinned to `node`, Running and Ready as a kubelet would report it.
fn pod(sim: &Sim, name: &str, tier: &str, node: &str) {
    create(
        sim,
        &format!("{name}.json"),
        &format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","namespace":"sample-app","labels":{{"tier":"{tier}"}}}},
                "spec":{{"nodeName":"{node}","containers":[{{"name":"main","image":"registry.example/tool:1"}}]}}}}"#
        ),
    );
    let ready = r#"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}"#;
    sim.kubectl_ok(&["-n", "sample-app", "patch", "pod", name, "--subresource=status", "--type", "merge", "-p", ready]);
}

fn pods_on(sim: &Sim, node: &str) -> Vec<String> {
    let out = sim.kubectl_ok(&[
        "get",
        "pods",
        "-A",
        "--field-selector",
        &format!("spec.nodeName={node}"),
        "-o",
        "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{\"\\n\"}{end}",
    ]);
    out.lines().map(str::to_owned).collect()
}

fn evicted(path: &Path, node: &str) -> Vec<usize> {
    journal::load(path)
        .unwrap()
        .0
        .into_iter()
        .filter_map(|r| match r.entry {
            Entry::Drained { host, evicted } if host == node => Some(evicted),
            _ => None,
        })
        .collect()
}

#[test]
fn a_drain_pod_selector_evicts_only_the_matching_pods_and_the_node_still_reboots() {
    let sim = Sim::start(1, 2);
    pod(&sim, "batch-job", "batch", "worker-0");
    pod(&sim, "node-agent", "agent", "worker-0");
    let before = pods_on(&sim, "worker-0");
    assert!(before.contains(&"sample-app/batch-job".to_owned()) && before.contains(&"sample-app/node-agent".to_owned()), "{before:?}");
    let journal = sim.path("partial.jsonl");
    let out = sim
        .fleetboot(&[
            "reboot",
            "--nodes",
            "worker-0",
            "--drain",
            "--drain-pod-selector",
            "tier=batch",
            "--poll-interval",
            "200ms",
            "--output",
            "json",
            "--journal",
            journal.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let run = Run::from(out);
    assert_eq!(run.code, 0, "{}", run.debug());
    assert_eq!(reboot_requests(&sim, "worker-0"), 1);
    assert_eq!(evicted(&journal, "worker-0"), [1], "only the matching pod was evicted");
    let after = pods_on(&sim, "worker-0");
    assert!(!after.contains(&"sample-app/batch-job".to_owned()), "the matching pod was evicted: {after:?}");
    // Everything outside the selector stayed on the node: the agent and the seeded workloads.
    for stayed in before.iter().filter(|p| *p != "sample-app/batch-job") {
        assert!(after.contains(stayed), "{stayed} stays on worker-0: {after:?}");
    }
    assert_eq!(sim.kubectl_ok(&["get", "node", "worker-0", "-o", "jsonpath={.spec.unschedulable}"]), "", "uncordoned");
    // Journaled with the run's settings, so a resume drains the same way.
    let started = journal::load(&journal).unwrap().1;
    let batch = started.settings.and_then(|s| s.batch).unwrap();
    assert_eq!(batch.drain_pod_selector.as_deref(), Some("tier=batch"));
}

#[test]
fn a_drain_pod_selector_is_shown_in_the_dry_run_and_a_bad_one_is_refused_naming_the_flag() {
    let sim = Sim::start(1, 1);
    let args = ["reboot", "--nodes", "worker-0", "--drain", "--drain-pod-selector", "tier in (batch,cache)", "--dry-run"];
    let run = Run::from(sim.fleetboot(&args).output().unwrap());
    assert_eq!(run.code, 0, "{}", run.debug());
    assert!(run.stdout.contains(r#"drain: only pods matching "tier in (batch,cache)" are evicted"#), "{}", run.stdout);
    let bad = ["reboot", "--nodes", "worker-0", "--drain", "--drain-pod-selector", "tier in batch", "--dry-run"];
    let run = Run::from(sim.fleetboot(&bad).output().unwrap());
    assert_eq!(run.code, 2, "{}", run.debug());
    assert!(run.stderr.contains("--drain-pod-selector"), "{}", run.stderr);
    assert_eq!(reboot_requests(&sim, "worker-0"), 0);
}

/// Review B8: in policy/v1 a budget with no selector covers no pod and one with an empty
/// selector (`{}`) covers every pod of its namespace (kubernetes
/// staging/src/k8s.io/api/policy/v1/types.go, PodDisruptionBudgetSpec.Selector). The preflight
/// names only the second, and `--dry-run` shows it, touching nothing.
#[test]
fn the_preflight_in_the_dry_run_counts_an_empty_selector_as_every_pod_and_a_missing_one_as_none() {
    let sim = Sim::start(1, 2);
    create(&sim, "tools-ns.json", r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"tools"}}"#);
    create(
        &sim,
        "tool.json",
        r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"tool","namespace":"tools","labels":{"app":"tool"}},
            "spec":{"nodeName":"worker-0","containers":[{"name":"main","image":"registry.example/tool:1"}]}}"#,
    );
    let ready = r#"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}"#;
    sim.kubectl_ok(&["-n", "tools", "patch", "pod", "tool", "--subresource=status", "--type", "merge", "-p", ready]);
    for (name, spec) in [("no-selector", r#"{"minAvailable":1}"#), ("every-pod", r#"{"minAvailable":1,"selector":{}}"#)] {
        create(
            &sim,
            &format!("{name}.json"),
            &format!(
                r#"{{"apiVersion":"policy/v1","kind":"PodDisruptionBudget","metadata":{{"name":"{name}","namespace":"tools"}},"spec":{spec}}}"#
            ),
        );
        // As the disruption controller would have it for one bare pod (or none): no disruption.
        let status = r#"{"status":{"observedGeneration":1,"disruptionsAllowed":0,"currentHealthy":1,"desiredHealthy":1,"expectedPods":1}}"#;
        sim.kubectl_ok(&["-n", "tools", "patch", "pdb", name, "--subresource=status", "--type", "merge", "-p", status]);
    }
    let args = ["reboot", "--nodes", "worker-0,worker-1", "--drain", "--dry-run"];
    let run = Run::from(sim.fleetboot(&args).output().unwrap());
    assert_eq!(run.code, 0, "{}", run.debug());
    assert!(
        run.stdout.contains("preflight: PodDisruptionBudget tools/every-pod allows 0 disruptions now: the drain of worker-0 waits on it"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("tools/no-selector"), "a budget without a selector covers no pod: {}", run.stdout);
    assert_eq!(reboot_requests(&sim, "worker-0"), 0);
    assert_eq!(sim.kubectl_ok(&["get", "node", "worker-0", "-o", "jsonpath={.spec.unschedulable}"]), "", "nothing cordoned");
}
