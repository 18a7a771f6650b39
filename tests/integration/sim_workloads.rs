//! The simulation's workloads and budgets, judged by kubectl: Deployments, ReplicaSets and
//! PodDisruptionBudgets with the status their controllers write, the eviction API's refusal,
//! and replacements that run elsewhere after a drain.

use crate::common::sim::Sim;

fn pdb_field(sim: &Sim, namespace: &str, name: &str, field: &str) -> String {
    sim.kubectl_ok(&["-n", namespace, "get", "pdb", name, "-o", &format!("jsonpath={{.status.{field}}}")])
}

/// The default set is there with observed statuses; `kubectl rollout status` ends;
/// `--workloads 0` is the bare cluster.
#[test]
fn the_default_workloads_have_observed_statuses_and_workloads_0_has_none() {
    let sim = Sim::start(3, 3);
    let deployments = sim.kubectl_ok(&["get", "deployments", "-A", "-o", "name"]);
    for name in ["router-default", "image-registry", "console", "thanos-querier", "frontend-0"] {
        assert!(deployments.contains(&format!("deployment.apps/{name}")), "{deployments}");
    }
    let (ok, out, err) = sim.kubectl(&["-n", "openshift-ingress", "rollout", "status", "deployment/router-default", "--timeout=60s"]);
    assert!(ok && out.contains("successfully rolled out"), "{out}{err}");
    // The router's budget (maxUnavailable 50% of 2) allows one disruption; the etcd guard's
    // (4.10+) needs two of the three masters' guards.
    assert_eq!(pdb_field(&sim, "openshift-ingress", "router-default", "disruptionsAllowed"), "1");
    assert_eq!(pdb_field(&sim, "openshift-ingress", "router-default", "expectedPods"), "2");
    assert_eq!(pdb_field(&sim, "openshift-etcd", "etcd-guard-pdb", "desiredHealthy"), "2");
    assert_eq!(pdb_field(&sim, "openshift-etcd", "etcd-guard-pdb", "currentHealthy"), "3");
    // Scaling is observed: the ReplicaSet follows, and the status reports the new generation.
    sim.kubectl_ok(&["-n", "sample-app", "patch", "deployment", "frontend-0", "--type", "merge", "-p", r#"{"spec":{"replicas":1}}"#]);
    let (ok, out, err) = sim.kubectl(&["-n", "sample-app", "rollout", "status", "deployment/frontend-0", "--timeout=60s"]);
    assert!(ok, "{out}{err}");
    let generation = sim.kubectl_ok(&["-n", "sample-app", "get", "deployment", "frontend-0", "-o", "jsonpath={.metadata.generation}"]);
    let start = std::time::Instant::now();
    while sim.kubectl_ok(&["-n", "sample-app", "get", "pods", "-l", "app=frontend-0", "-o", "name"]).lines().count() != 1 {
        assert!(start.elapsed() < std::time::Duration::from_secs(30), "the ReplicaSet never scaled down");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let observed = sim.kubectl_ok(&["-n", "sample-app", "get", "deployment", "frontend-0", "-o", "jsonpath={.status.observedGeneration}"]);
    assert_eq!(observed, generation);

    let bare = Sim::start_with(1, 2, &["--workloads", "0"]);
    assert_eq!(bare.kubectl_ok(&["get", "deployments,replicasets,pdb", "-A", "-o", "name"]), "");
}

/// The two routers' pods (openshift-ingress).
fn router_pods(sim: &Sim) -> Vec<String> {
    let pods = sim.kubectl_ok(&["-n", "openshift-ingress", "get", "pods", "-o", "jsonpath={.items[*].metadata.name}"]);
    let pods: Vec<String> = pods.split_whitespace().map(str::to_owned).collect();
    assert_eq!(pods.len(), 2, "{pods:?}");
    pods
}

/// `POST pods/NAME/eviction` of a router pod: the status code and the answer.
fn evict_router(sim: &Sim, pod: &str) -> (u16, String) {
    let body = format!(r#"{{"apiVersion":"policy/v1","kind":"Eviction","metadata":{{"name":"{pod}","namespace":"openshift-ingress"}}}}"#);
    sim.raw("POST", &format!("/api/v1/namespaces/openshift-ingress/pods/{pod}/eviction"), "application/json", body.as_bytes())
}

/// The eviction API refuses with the real 429 and message while a budget allows no
/// disruption (kubernetes `pkg/registry/core/pod/storage/eviction.go`), and one eviction that
/// goes takes the budget's one disruption.
#[test]
fn an_eviction_a_budget_forbids_is_refused_with_429() {
    let sim = Sim::start(1, 2);
    let pods = router_pods(&sim);
    let evict = |pod: &str| evict_router(&sim, pod);
    // Both workers cordoned: the evicted router's replacement has nowhere to run.
    sim.kubectl_ok(&["cordon", "worker-0", "worker-1"]);
    let (code, body) = evict(&pods[0]);
    assert_eq!(code, 201, "{body}");
    // The eviction took the one disruption: the other router must stay.
    let (code, body) = evict(&pods[1]);
    assert_eq!(code, 429, "{body}");
    assert!(body.contains("Cannot evict pod as it would violate the pod's disruption budget."), "{body}");
    assert!(body.contains("The disruption budget router-default needs 1 healthy pods and has"), "{body}");
    // As the API server's NewTooManyRequests builds it: the cause names the budget, the details no object.
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["details"].get("name"), None, "{body}");
    assert_eq!(status["details"]["causes"][0]["reason"], "DisruptionBudget", "{body}");
    assert!(sim.kubectl_ok(&["-n", "openshift-ingress", "get", "pods", "-o", "name"]).contains(&pods[1]), "the refused pod stays");
}

/// Which budgets an eviction honours is the policy/v1 rule (kubernetes
/// `pkg/registry/core/pod/storage/eviction.go`, getPodDisruptionBudgets, through
/// `metav1.LabelSelectorAsSelector`): a budget without a selector covers no pod, one with an
/// empty selector every pod of its namespace.
#[test]
fn a_budget_without_a_selector_covers_no_pod_and_an_empty_selector_covers_all() {
    let sim = Sim::start(1, 2);
    let pods = router_pods(&sim);
    let budget = |name: &str, selector: Option<serde_json::Value>| {
        let mut spec = serde_json::json!({"maxUnavailable": 0});
        if let Some(selector) = selector {
            spec["selector"] = selector;
        }
        let manifest = sim.path(&format!("{name}.json"));
        let pdb = serde_json::json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": "openshift-ingress"}, "spec": spec});
        std::fs::write(&manifest, pdb.to_string()).unwrap();
        sim.kubectl_ok(&["create", "--validate=false", "-f", manifest.to_str().unwrap()]);
    };
    let evict = |pod: &str| evict_router(&sim, pod);
    // A budget with no selector beside the router's own: the router's pod is still under one
    // budget only, which allows one disruption.
    budget("no-selector", None);
    let (code, body) = evict(&pods[0]);
    assert_eq!(code, 201, "a budget without a selector covers no pod: {body}");
    // An empty selector covers every pod of the namespace: the other router is now under two
    // budgets, which the eviction subresource refuses.
    budget("empty-selector", Some(serde_json::json!({})));
    let (code, body) = evict(&pods[1]);
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("more than one PodDisruptionBudget"), "{body}");
}

/// `kubectl drain` of a worker evicts its workloads, and their replacements run elsewhere.
#[test]
fn kubectl_drain_of_a_worker_moves_its_workloads_elsewhere() {
    let sim = Sim::start(1, 3);
    let on_worker0 = |sim: &Sim| {
        sim.kubectl_ok(&[
            "get",
            "pods",
            "-A",
            "--field-selector",
            "spec.nodeName=worker-0",
            "-o",
            "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.ownerReferences[0].kind}{\"\\n\"}{end}",
        ])
    };
    assert!(on_worker0(&sim).contains("sample-app/ReplicaSet"), "{}", on_worker0(&sim));
    let (ok, out, err) = sim.kubectl(&["drain", "worker-0", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=120s"]);
    assert!(ok, "{out}{err}");
    assert!(!on_worker0(&sim).contains("ReplicaSet"), "{}", on_worker0(&sim));
    let (ok, out, err) = sim.kubectl(&["-n", "sample-app", "rollout", "status", "deployment/frontend-0", "--timeout=60s"]);
    assert!(ok, "{out}{err}");
    let nodes = sim.kubectl_ok(&["-n", "sample-app", "get", "pods", "-o", "jsonpath={.items[*].spec.nodeName}"]);
    assert_eq!(nodes.split_whitespace().count(), 3, "{nodes}");
    assert!(!nodes.contains("worker-0"), "{nodes}");
}

/// `kubectl drain` of a master is refused by the etcd guard's budget while another master's
/// guard is gone (that master drained: its guard is not recreated while it is cordoned).
#[test]
fn kubectl_drain_of_a_second_master_is_refused_by_the_etcd_guard_budget() {
    let sim = Sim::start(3, 2);
    // The guard pods declare no controller, so kubectl needs --force for them, as on 4.10+.
    let drain = |node: &str| sim.kubectl(&["drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--force", "--timeout=15s"]);
    let (ok, out, err) = drain("master-1");
    assert!(ok, "{out}{err}");
    assert!(!sim.kubectl_ok(&["-n", "openshift-etcd", "get", "pods", "-o", "name"]).contains("etcd-guard-master-1"));
    let (ok, out, err) = drain("master-0");
    assert!(!ok, "{out}{err}");
    assert!(err.contains("Cannot evict pod as it would violate the pod's disruption budget."), "{err}");
    assert!(sim.kubectl_ok(&["-n", "openshift-etcd", "get", "pods", "-o", "name"]).contains("etcd-guard-master-0"), "the guard stays");
    assert_eq!(pdb_field(&sim, "openshift-etcd", "etcd-guard-pdb", "disruptionsAllowed"), "0");
}
