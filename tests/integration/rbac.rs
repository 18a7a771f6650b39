//! Least privilege, printed and proven (issue 25): the simulation started with `--rbac`
//! authorizes every request from the Roles and bindings kubectl applied, and fleetboot, as the
//! kubeconfig's unprivileged user `fleetboot`, works with exactly what `fleetboot rbac` prints
//! and, with any one of its rules removed, stops before its first change naming that rule.

use serde_json::Value;

use crate::common::fleetboot_bin;
use crate::common::sim::{Sim, boot_counts};

pub(crate) fn rbac_objects(mode: &str) -> (String, Vec<Value>) {
    let out = std::process::Command::new(fleetboot_bin()).args(["rbac", mode, "--user", "fleetboot", "-o", "yaml"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let yaml = String::from_utf8(out.stdout).unwrap();
    let out = std::process::Command::new(fleetboot_bin()).args(["rbac", mode, "--user", "fleetboot", "-o", "json"]).output().unwrap();
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    (yaml, list["items"].as_array().unwrap().clone())
}

pub(crate) fn apply(sim: &Sim, objects: &[Value], verb: &str) {
    let path = sim.path("rbac.json");
    std::fs::write(&path, serde_json::to_vec(&serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects})).unwrap()).unwrap();
    sim.kubectl_ok(&[verb, "--validate=false", "-f", path.to_str().unwrap()]);
}

pub(crate) fn run(sim: &Sim, args: &[&str]) -> (i32, String, String) {
    let o = sim.fleetboot(args).output().unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn the_simulation_answers_401_and_403_from_the_rules_kubectl_applied() {
    let sim = Sim::start_with(1, 1, &["--rbac"]);
    let as_fleetboot = |args: &[&str]| {
        let mut all = vec!["--context", "fleetboot"];
        all.extend_from_slice(args);
        sim.kubectl(&all)
    };
    let (ok, _, err) = as_fleetboot(&["get", "nodes"]);
    assert!(!ok);
    assert!(
        err.contains("nodes is forbidden: User \"fleetboot\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"),
        "{err}"
    );
    let grant = sim.path("read-nodes.yaml");
    std::fs::write(
        &grant,
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: read-nodes\nrules:\n- apiGroups: [\"\"]\n  resources: [nodes]\n  verbs: [get, list]\n\
         ---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: read-nodes\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: read-nodes\nsubjects:\n- kind: User\n  apiGroup: rbac.authorization.k8s.io\n  name: fleetboot\n",
    )
    .unwrap();
    sim.kubectl_ok(&["apply", "--validate=false", "-f", grant.to_str().unwrap()]);
    let (ok, out, err) = as_fleetboot(&["get", "nodes", "-o", "name"]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 2);
    // kubectl cordon reports the API's 403 (its exit code stays 0); the node stays schedulable.
    let (_, _, err) = as_fleetboot(&["cordon", "worker-0"]);
    assert!(err.contains("nodes \"worker-0\" is forbidden: User \"fleetboot\" cannot patch resource \"nodes\""), "{err}");
    assert_eq!(sim.kubectl_ok(&["get", "node", "worker-0", "-o", "jsonpath={.spec.unschedulable}"]), "");
    // Without a token: 401.
    let (code, body) = sim.raw("GET", "/api/v1/nodes", "application/json", b"");
    assert_eq!(code, 401, "{body}");
}

/// `fleetboot reboot EXTRA` as the user `fleetboot` works with exactly what `fleetboot rbac
/// MODE` prints, applied with kubectl, and with any one of its rules removed stops before its
/// first change (no lease, no cordon, no reboot in the simulation's history), naming the rule.
pub(crate) fn works_with_exactly_its_printed_role(mode: &str, extra: &[&str]) -> Sim {
    let sim = Sim::start_with(1, 2, &["--rbac"]);
    let objects = apply_printed(&sim, mode);

    let boots = boot_counts(&sim);
    let mut args = vec!["reboot", "--context", "fleetboot", "--nodes", "worker-0", "--poll-interval", "200ms"];
    args.extend_from_slice(extra);
    let removed = each_rule_removed_stops_naming_it(&sim, &objects, &args, &|sim| {
        assert!(sim.kubectl_ok(&["get", "leases", "-A", "-o", "name"]).is_empty(), "no lease taken");
        assert!(!sim.kubectl_ok(&["get", "nodes", "-o", "jsonpath={.items[*].spec.unschedulable}"]).contains("true"), "no cordon");
        assert_eq!(boot_counts(sim), boots, "no reboot");
    });
    assert!(removed >= 8, "every rule was tried: {removed}");

    let (code, out, err) = run(&sim, &args);
    assert_eq!(code, 0, "{out}{err}");
    let after = boot_counts(&sim);
    let rebooted: Vec<&str> = after.iter().zip(&boots).filter(|((_, a), (_, b))| a > b).map(|((name, _), _)| name.as_str()).collect();
    assert_eq!(rebooted, ["worker-0"], "the simulation's history: {after:?}");
    sim
}

/// What `fleetboot rbac MODE -o yaml` prints, applied as an admin would (kubectl apply); the
/// objects applied.
pub(crate) fn apply_printed(sim: &Sim, mode: &str) -> Vec<Value> {
    let (yaml, objects) = rbac_objects(mode);
    let yaml_path = sim.path("rbac.yaml");
    std::fs::write(&yaml_path, &yaml).unwrap();
    let applied = sim.kubectl_ok(&["apply", "--validate=false", "-f", yaml_path.to_str().unwrap()]);
    assert_eq!(applied.lines().count(), objects.len(), "{applied}");
    objects
}

/// Each rule of each of `objects`' roles removed in turn (with kubectl replace, then put back):
/// `fleetboot ARGS` exits 2 naming the rule's verbs, resource and namespace, and `untouched`
/// holds. How many rules were tried.
pub(crate) fn each_rule_removed_stops_naming_it(sim: &Sim, objects: &[Value], args: &[&str], untouched: &dyn Fn(&Sim)) -> usize {
    let mut removed = 0;
    for (index, object) in objects.iter().enumerate() {
        let Some(rules) = object["rules"].as_array() else { continue };
        for (r, rule) in rules.iter().enumerate() {
            let mut reduced = object.clone();
            reduced["rules"].as_array_mut().unwrap().remove(r);
            apply(sim, std::slice::from_ref(&reduced), "replace");
            let (code, out, err) = run(sim, args);
            assert_eq!(code, 2, "without {rule} in {}: {out}{err}", object["metadata"]);
            let resource = rule["resources"][0].as_str().unwrap();
            for verb in rule["verbs"].as_array().unwrap() {
                let verb = verb.as_str().unwrap();
                // The cluster's identity is read when connecting, before the check: the API's
                // own 403 names that rule.
                let named = err.contains(&format!("cannot {verb} {resource}"))
                    || err.contains(&format!("cannot {verb} resource \"{resource}\""))
                    || err.contains(&format!("; cannot {verb} {resource}"));
                assert!(named, "the error names {verb} {resource}: {err}");
            }
            if let Some(ns) = object["metadata"]["namespace"].as_str() {
                assert!(err.contains(ns), "names the namespace {ns}: {err}");
            }
            untouched(sim);
            apply(sim, std::slice::from_ref(&objects[index]), "replace");
            removed += 1;
        }
    }
    removed
}

#[test]
fn reboot_works_with_exactly_its_printed_role_and_stops_before_any_change_naming_a_removed_rule() {
    works_with_exactly_its_printed_role("reboot", &[]);
}

#[test]
fn drain_works_with_exactly_its_printed_role_and_stops_before_any_change_naming_a_removed_rule() {
    works_with_exactly_its_printed_role("drain", &["--drain"]);
}

#[test]
fn the_api_transport_works_with_exactly_its_printed_role_and_stops_naming_a_removed_rule() {
    works_with_exactly_its_printed_role("kube-transport", &["--transport", "kube"]);
}
