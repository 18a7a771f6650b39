//! The 4.14+ documents' prerequisites (openshift-docs `modules/nw-ovn-kubernetes-migration.adoc`):
//! webhooks that would hold the API server longer than 3 s and a NodeNetworkConfigurationPolicy
//! on the primary interface refuse the offline migration before anything changes, and the
//! documents' own fix (kubectl's JSON patch, `kubectl delete nncp`) lets it start. And the
//! stability gate: the cluster's health must read clean several times in a row.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::common::Run;
use crate::common::sim::Sim;

/// `fleetboot migrate --etcd-backup-confirmed --poll-interval 300ms EXTRA --output plain`, run by the engine
/// in this process against the simulation started in the test (common/inproc.rs): stdout and
/// stderr are what its reporter rendered, and the error as the binary prints it.
fn migrate(sim: &Sim, extra: &[&str]) -> Run {
    let mut args = vec!["--etcd-backup-confirmed", "--poll-interval", "300ms"];
    args.extend(extra);
    sim.migrate_in_process(&args).to_run()
}

/// `kubectl create -f` of a JSON object written to the simulation's directory.
fn create(sim: &Sim, file: &str, object: serde_json::Value) {
    let path = sim.path(file);
    std::fs::write(&path, object.to_string()).unwrap();
    sim.kubectl_ok(&["create", "--validate=false", "-f", path.to_str().unwrap()]);
}

fn an_admins_webhook(timeout: Option<u64>) -> serde_json::Value {
    let mut webhook = serde_json::json!({
        "name": "validate.policy.example.com",
        "clientConfig": {"service": {"namespace": "policy-engine", "name": "webhook", "path": "/validate"}},
        "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"]
    });
    if let Some(t) = timeout {
        webhook["timeoutSeconds"] = t.into();
    }
    serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "policy-engine"},
        "webhooks": [webhook]
    })
}

fn untouched(sim: &Sim) {
    assert_eq!(sim.network_type().0, "OpenShiftSDN", "spec.networkType unchanged");
    assert!(!sim.paused("worker") && !sim.paused("master"), "no pool paused");
    let migration = sim.kubectl_ok(&["get", "network.operator.openshift.io", "cluster", "-o", "jsonpath={.spec.migration}"]);
    assert!(migration.is_empty(), "spec.migration never set: {migration}");
}

#[test]
fn a_slow_webhook_refuses_on_4_14_until_the_documents_patch_sets_three_seconds() {
    let sim = Sim::in_process_with(0, 1, &["--openshift-version", "4.14.38", "--workloads", "0"]);
    create(&sim, "webhook.json", an_admins_webhook(None));
    let refused = migrate(&sim, &[]);
    assert_eq!(refused.code, 2, "{}", refused.debug());
    assert!(
        refused.stderr.contains(
            "webhooks: ValidatingWebhookConfiguration policy-engine webhook validate.policy.example.com makes the API server wait up to 10s (failurePolicy Fail)"
        ) && refused.stderr.contains("/webhooks/0/timeoutSeconds"),
        "{}",
        refused.debug()
    );
    untouched(&sim);
    assert!(sim.migration_dirs().is_empty(), "no journal for a refused migration");

    // The documents' step 1, literally, with kubectl.
    sim.kubectl_ok(&[
        "patch",
        "validatingwebhookconfiguration",
        "policy-engine",
        "--type=json",
        "-p",
        r#"[{"op": "replace", "path": "/webhooks/0/timeoutSeconds", "value": 3}]"#,
    ]);
    let run = migrate(&sim, &[]);
    assert_eq!(run.code, 0, "{}", run.debug());
    assert_eq!(sim.network_type(), ("OVNKubernetes".into(), "OVNKubernetes".into()));
}

#[test]
fn the_webhook_prerequisite_is_the_4_14_documents_and_openshifts_own_webhooks_are_only_named() {
    // 4.13's documents have no such prerequisite: the same webhook refuses nothing there.
    let older = Sim::in_process_with(0, 1, &["--openshift-version", "4.13.40"]);
    create(&older, "webhook.json", an_admins_webhook(Some(30)));
    let plan = migrate(&older, &["--plan"]);
    assert_eq!(plan.code, 0, "{}", plan.debug());
    assert!(!plan.stdout.contains("webhooks:") && !plan.stderr.contains("webhooks:"), "{}", plan.debug());

    let sim = Sim::in_process_with(0, 1, &["--openshift-version", "4.16.21"]);
    let mut own = an_admins_webhook(Some(30));
    own["metadata"]["name"] = "multus.openshift.io".into();
    own["webhooks"][0]["clientConfig"]["service"]["namespace"] = "openshift-multus".into();
    create(&sim, "webhook.json", own);
    let plan = migrate(&sim, &["--plan", "--mode", "offline"]);
    assert_eq!(plan.code, 0, "{}", plan.debug());
    let all = format!("{}{}", plan.stdout, plan.stderr);
    assert!(all.contains("multus.openshift.io (validate.policy.example.com, 30s)"), "{}", plan.debug());
    assert!(all.contains("udp-geneve: the migration documents require UDP 6081"), "{}", plan.debug());
}

#[test]
fn a_policy_on_the_primary_interface_refuses_until_it_is_deleted() {
    let sim = Sim::in_process_with(0, 1, &["--openshift-version", "4.14.38", "--workloads", "0"]);
    let ip = sim.kubectl_ok(&["get", "node", "worker-0", "-o", r#"jsonpath={.status.addresses[?(@.type=="InternalIP")].address}"#]);
    // What kubernetes-nmstate's handler reports for the node: the bond carries its address.
    create(
        &sim,
        "nns.json",
        serde_json::json!({
            "apiVersion": "nmstate.io/v1beta1", "kind": "NodeNetworkState", "metadata": {"name": "worker-0"},
            "status": {"currentState": {"interfaces": [
                {"name": "bond0", "type": "bond", "state": "up",
                 "ipv4": {"enabled": true, "address": [{"ip": ip, "prefix-length": 8}]},
                 "link-aggregation": {"mode": "active-backup", "port": ["eno1", "eno2"]}},
                {"name": "eno1", "type": "ethernet", "state": "up"},
                {"name": "eno2", "type": "ethernet", "state": "up"}
            ]}}
        }),
    );
    create(
        &sim,
        "nncp.json",
        serde_json::json!({
            "apiVersion": "nmstate.io/v1", "kind": "NodeNetworkConfigurationPolicy", "metadata": {"name": "bondmaster0"},
            "spec": {"desiredState": {"interfaces": [
                {"name": "bond0", "type": "bond", "state": "up",
                 "link-aggregation": {"mode": "active-backup", "port": ["eno1", "eno2"]}}
            ]}}
        }),
    );
    let refused = migrate(&sim, &["--stable-checks", "1"]);
    assert_eq!(refused.code, 2, "{}", refused.debug());
    assert!(
        refused.stderr.contains("nncp: NodeNetworkConfigurationPolicy bondmaster0 defines the primary interface (bond0)")
            && refused.stderr.contains("oc delete nncp bondmaster0"),
        "{}",
        refused.debug()
    );
    untouched(&sim);
    // The documents' step: `oc get nncp`, then delete it.
    assert!(sim.kubectl_ok(&["get", "nncp"]).contains("bondmaster0"));
    sim.kubectl_ok(&["delete", "nncp", "bondmaster0"]);
    let plan = migrate(&sim, &["--plan"]);
    assert_eq!(plan.code, 0, "{}", plan.debug());
    assert!(!plan.stdout.contains("nncp:") && !plan.stderr.contains("nncp:"), "{}", plan.debug());
}

/// A cluster whose operator turns Degraded between two reads is refused, naming the read, and
/// nothing changes; every clean read is reported.
#[test]
fn an_operator_degraded_between_the_stability_reads_refuses_before_any_change() {
    let sim = Sim::in_process_with(0, 1, &["--workloads", "0"]);
    let mut child = sim
        .fleetboot(&["migrate", "--etcd-backup-confirmed", "--stable-checks", "3", "--poll-interval", "4s", "--output", "plain"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains("(1 of 3 reads in a row)") {
            break;
        }
    }
    assert!(seen.iter().any(|l| l.contains("(1 of 3 reads in a row)")), "{seen:?}");
    // An operator goes Degraded, as a real one reports it through its status.
    sim.kubectl_ok(&[
        "patch",
        "clusteroperator",
        "dns",
        "--subresource=status",
        "--type=json",
        "-p",
        r#"[{"op": "replace", "path": "/status/conditions/2", "value": {"type": "Degraded", "status": "True", "reason": "Flapping", "message": "dns pods restarting"}}]"#,
    ]);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{seen:?} {rest:?} {stderr}");
    assert!(
        // The patch lands before the second read, or (on a loaded machine) the third.
        (stderr.contains("stable: the cluster read healthy 1 time(s) in a row, then not (--stable-checks 3)")
            || stderr.contains("stable: the cluster read healthy 2 time(s) in a row, then not (--stable-checks 3)"))
            && stderr.contains("ClusterOperator dns is Degraded"),
        "{stderr}"
    );
    untouched(&sim);
}
