//! The migration's pure decisions: may it start (preflight), did it work (verify), are the
//! MTU and Geneve port sane, which pods are in error, and the YAML of the backup.

use serde::Serialize;
use serde_json::Value;

/// What preflight looks at, read from the cluster in one go.
#[derive(Clone, Debug, Default)]
pub struct ClusterSnapshot {
    /// (name, Ready condition status)
    pub nodes: Vec<(String, String)>,
    pub pools: Vec<Value>,
    pub operators: Vec<Value>,
    /// `Network.config.openshift.io/cluster` spec.networkType and status.networkType.
    pub spec_network_type: String,
    pub status_network_type: String,
}

fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a str> {
    object.pointer("/status/conditions")?.as_array()?.iter().find(|c| c["type"] == kind)?["status"].as_str()
}

fn name(object: &Value) -> &str {
    object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?")
}

/// Every reason not to start a migration to `target`; empty: go. Pure.
pub fn preflight(snapshot: &ClusterSnapshot, target: &str, etcd_backup_confirmed: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let from = if target == "OVNKubernetes" { "OpenShiftSDN" } else { "OVNKubernetes" };
    if !etcd_backup_confirmed {
        problems.push("no etcd backup confirmed: take one (the document's precondition), then pass --etcd-backup-confirmed".to_owned());
    }
    if snapshot.spec_network_type != from {
        problems.push(format!(
            "network.config.openshift.io/cluster spec.networkType is {:?}, not {from}: nothing to migrate from",
            snapshot.spec_network_type
        ));
    }
    let not_ready: Vec<String> = snapshot.nodes.iter().filter(|(_, r)| r != "True").map(|(n, r)| format!("{n} (Ready={r})")).collect();
    if !not_ready.is_empty() {
        problems.push(format!("nodes not Ready: {}", not_ready.join(", ")));
    }
    for pool in &snapshot.pools {
        if condition(pool, "Degraded") == Some("True") {
            problems.push(format!("MachineConfigPool {} is Degraded", name(pool)));
        }
        if condition(pool, "Updating") == Some("True") {
            problems.push(format!("MachineConfigPool {} is Updating: wait for it to finish", name(pool)));
        }
    }
    for operator in &snapshot.operators {
        if condition(operator, "Degraded") == Some("True") {
            let message = operator
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|c| c.iter().find(|c| c["type"] == "Degraded"))
                .and_then(|c| c["message"].as_str())
                .unwrap_or("");
            problems.push(format!(
                "ClusterOperator {} is Degraded{}",
                name(operator),
                if message.is_empty() { String::new() } else { format!(": {message}") }
            ));
        }
    }
    problems
}

/// `--mtu` and `--geneve-port`. Pure.
pub fn check_mtu_and_port(mtu: Option<u32>, geneve_port: Option<u32>, smallest_node_mtu: Option<u32>) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(mtu) = mtu {
        if !(576..=9216).contains(&mtu) {
            problems.push(format!("--mtu {mtu} is outside 576..9216"));
        }
        if let Some(node_mtu) = smallest_node_mtu
            && mtu + 100 > node_mtu
        {
            problems.push(format!(
                "--mtu {mtu} leaves no room for the Geneve overhead: it must be at most the smallest node MTU ({node_mtu}) minus 100 = {}",
                node_mtu.saturating_sub(100)
            ));
        }
    }
    if let Some(port) = geneve_port
        && !(1..=65535).contains(&port)
    {
        problems.push(format!("--geneve-port {port} is not a UDP port (1..65535)"));
    }
    problems
}

/// Why a pod counts as in error, if it does. Pure.
pub fn pod_error(pod: &Value) -> Option<String> {
    const BAD: &[&str] = &[
        "CrashLoopBackOff",
        "Error",
        "ImagePullBackOff",
        "ErrImagePull",
        "CreateContainerError",
        "CreateContainerConfigError",
        "RunContainerError",
        "ContainerCannotRun",
        "InvalidImageName",
    ];
    let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("");
    if matches!(phase, "Failed" | "Unknown") {
        return Some(format!("phase {phase}"));
    }
    if phase == "Succeeded" {
        return None;
    }
    let statuses = pod.pointer("/status/containerStatuses").and_then(Value::as_array)?;
    statuses.iter().find_map(|s| {
        let waiting = s.pointer("/state/waiting/reason").and_then(Value::as_str);
        let terminated = s.pointer("/state/terminated/reason").and_then(Value::as_str);
        waiting.or(terminated).filter(|r| BAD.contains(r)).map(str::to_owned)
    })
}

/// One line of the verification table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// What verify looks at.
#[derive(Clone, Debug, Default)]
pub struct VerifyInputs {
    pub nodes: Vec<Value>,
    /// Rendered MachineConfigs by name (only those some node's currentConfig names).
    pub machine_configs: Vec<Value>,
    pub status_network_type: String,
    /// Pods in the cluster (all namespaces).
    pub pods: Vec<Value>,
    /// For NotReady nodes: the tail of their machine-config-daemon pod's log.
    pub daemon_logs: Vec<(String, String)>,
}

fn annotation<'a>(node: &'a Value, key: &str) -> &'a str {
    node.pointer("/metadata/annotations").and_then(|a| a.get(key)).and_then(Value::as_str).unwrap_or("")
}

/// The document's steps 9 and 10 as a table of checks. Pure.
pub fn verify(inputs: &VerifyInputs, target: &str) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut push = |name: &str, problems: Vec<String>, ok: String| {
        checks.push(Check {
            name: name.to_owned(),
            passed: problems.is_empty(),
            detail: if problems.is_empty() { ok } else { problems.join("; ") },
        });
    };
    let count = inputs.nodes.len();

    let not_done: Vec<String> = inputs
        .nodes
        .iter()
        .filter_map(|n| {
            let state = annotation(n, "machineconfiguration.openshift.io/state");
            let current = annotation(n, "machineconfiguration.openshift.io/currentConfig");
            let desired = annotation(n, "machineconfiguration.openshift.io/desiredConfig");
            (state != "Done" || current != desired).then(|| format!("{} (state {state:?}, current {current}, desired {desired})", name(n)))
        })
        .collect();
    push("machine config state Done, currentConfig == desiredConfig", not_done, format!("all {count} nodes"));

    let marker = format!("ExecStart=/usr/local/bin/configure-ovs.sh {target}");
    let mut missing = Vec::new();
    let mut configs: Vec<&str> = inputs.nodes.iter().map(|n| annotation(n, "machineconfiguration.openshift.io/currentConfig")).collect();
    configs.sort();
    configs.dedup();
    for config in &configs {
        match inputs.machine_configs.iter().find(|mc| name(mc) == *config) {
            Some(mc) if mc.to_string().contains(&marker) => {}
            Some(_) => missing.push(format!("{config} lacks `{marker}`")),
            None => missing.push(format!("MachineConfig {config} not found")),
        }
    }
    push("rendered MachineConfigs run configure-ovs.sh for the new type", missing, format!("{} ({})", marker, configs.join(", ")));

    let network =
        if inputs.status_network_type == target { vec![] } else { vec![format!("status.networkType is {:?}", inputs.status_network_type)] };
    push(&format!("network.config status.networkType == {target}"), network, target.to_owned());

    let not_ready: Vec<String> = inputs
        .nodes
        .iter()
        .filter(|n| condition(n, "Ready") != Some("True"))
        .map(|n| {
            let node = name(n);
            match inputs.daemon_logs.iter().find(|(name, _)| name == node) {
                Some((_, log)) => format!("{node} NotReady; machine-config-daemon log tail: {}", log.trim().lines().last().unwrap_or("")),
                None => format!("{node} NotReady"),
            }
        })
        .collect();
    push("every node Ready", not_ready, format!("all {count} nodes"));

    let errors: Vec<String> = inputs
        .pods
        .iter()
        .filter_map(|p| {
            let why = pod_error(p)?;
            let ns = p.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("");
            let node = p.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("-");
            Some(format!("{ns}/{} on {node}: {why}", name(p)))
        })
        .collect();
    push("no pod in an error state", errors, format!("{} pods checked", inputs.pods.len()));
    checks
}

/// The nodes that hold pods in error (step 10's remedy reboots them). Pure.
pub fn nodes_with_error_pods(pods: &[Value]) -> Vec<String> {
    let mut nodes: Vec<String> = pods
        .iter()
        .filter(|p| pod_error(p).is_some())
        .filter_map(|p| p.pointer("/spec/nodeName").and_then(Value::as_str).map(str::to_owned))
        .collect();
    nodes.sort();
    nodes.dedup();
    nodes
}

/// A JSON value as block YAML, the way `oc get -o yaml` writes it. Pure.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    write_yaml(value, 0, &mut out);
    out
}

fn yaml_scalar(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let plain = !s.is_empty()
                && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
                && !matches!(s.as_str(), "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "~")
                && s.parse::<f64>().is_err()
                && !s.starts_with(['-', '.']);
            if plain { s.clone() } else { serde_json::to_string(s).expect("a string serializes") }
        }
        Value::Array(a) if a.is_empty() => "[]".into(),
        Value::Object(o) if o.is_empty() => "{}".into(),
        _ => unreachable!("containers are written as blocks"),
    }
}

fn is_block(value: &Value) -> bool {
    matches!(value, Value::Array(a) if !a.is_empty()) || matches!(value, Value::Object(o) if !o.is_empty())
}

fn write_yaml(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, v) in map {
                let key = yaml_scalar(&Value::String(key.clone()));
                if is_block(v) {
                    out.push_str(&format!("{pad}{key}:\n"));
                    let child = if matches!(v, Value::Array(_)) { indent } else { indent + 2 };
                    write_yaml(v, child, out);
                } else {
                    out.push_str(&format!("{pad}{key}: {}\n", yaml_scalar(v)));
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                if is_block(item) {
                    let mut nested = String::new();
                    write_yaml(item, indent + 2, &mut nested);
                    // The first line of the item goes after the dash.
                    let trimmed = nested.strip_prefix(&" ".repeat(indent + 2)).unwrap_or(&nested);
                    out.push_str(&format!("{pad}- {trimmed}"));
                } else {
                    out.push_str(&format!("{pad}- {}\n", yaml_scalar(item)));
                }
            }
        }
        scalar => out.push_str(&format!("{pad}{}\n", yaml_scalar(scalar))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn healthy() -> ClusterSnapshot {
        ClusterSnapshot {
            nodes: vec![("m0".into(), "True".into()), ("w0".into(), "True".into())],
            pools: vec![
                json!({"metadata": {"name": "worker"}, "status": {"conditions": [{"type": "Degraded", "status": "False"}, {"type": "Updating", "status": "False"}]}}),
            ],
            operators: vec![json!({"metadata": {"name": "network"}, "status": {"conditions": [{"type": "Degraded", "status": "False"}]}})],
            spec_network_type: "OpenShiftSDN".into(),
            status_network_type: "OpenShiftSDN".into(),
        }
    }

    #[test]
    fn preflight_names_every_reason_to_refuse() {
        assert!(preflight(&healthy(), "OVNKubernetes", true).is_empty());
        let problems = preflight(&healthy(), "OVNKubernetes", false);
        assert!(problems[0].contains("--etcd-backup-confirmed"), "{problems:?}");
        let mut sick = healthy();
        sick.nodes[1].1 = "Unknown".into();
        sick.pools[0]["status"]["conditions"][0]["status"] = json!("True");
        sick.pools[0]["status"]["conditions"][1]["status"] = json!("True");
        sick.operators[0]["status"]["conditions"][0] = json!({"type": "Degraded", "status": "True", "message": "boom"});
        sick.spec_network_type = "OVNKubernetes".into();
        let problems = preflight(&sick, "OVNKubernetes", true).join("\n");
        for expected in [
            "w0 (Ready=Unknown)",
            "worker is Degraded",
            "worker is Updating",
            "ClusterOperator network is Degraded: boom",
            "spec.networkType is \"OVNKubernetes\"",
        ] {
            assert!(problems.contains(expected), "{expected}: {problems}");
        }
        // The rollback starts from OVNKubernetes.
        let mut ovn = healthy();
        ovn.spec_network_type = "OVNKubernetes".into();
        assert!(preflight(&ovn, "OpenShiftSDN", true).is_empty());
    }

    #[test]
    fn mtu_and_port_are_validated() {
        assert!(check_mtu_and_port(Some(1400), Some(6081), Some(1500)).is_empty());
        assert!(check_mtu_and_port(Some(1450), None, Some(1500))[0].contains("minus 100 = 1400"));
        assert!(check_mtu_and_port(Some(100), None, None)[0].contains("576..9216"));
        assert!(check_mtu_and_port(None, Some(0), None)[0].contains("UDP port"));
        assert!(check_mtu_and_port(None, Some(70000), None)[0].contains("UDP port"));
        assert!(check_mtu_and_port(None, None, None).is_empty());
    }

    #[test]
    fn pods_in_error_are_recognised() {
        let crash = json!({"status": {"phase": "Running", "containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        assert_eq!(pod_error(&crash).as_deref(), Some("CrashLoopBackOff"));
        assert_eq!(pod_error(&json!({"status": {"phase": "Failed"}})).as_deref(), Some("phase Failed"));
        assert_eq!(pod_error(&json!({"status": {"phase": "Succeeded"}})), None);
        let starting =
            json!({"status": {"phase": "Pending", "containerStatuses": [{"state": {"waiting": {"reason": "ContainerCreating"}}}]}});
        assert_eq!(pod_error(&starting), None);
        let pods = [
            json!({"spec": {"nodeName": "w1"}, "status": {"phase": "Failed"}}),
            json!({"spec": {"nodeName": "w0"}, "status": {"phase": "Failed"}}),
            json!({"spec": {"nodeName": "w1"}, "status": {"phase": "Failed"}}),
        ];
        assert_eq!(nodes_with_error_pods(&pods), ["w0", "w1"]);
    }

    fn node(name: &str, current: &str, desired: &str, ready: &str) -> Value {
        json!({"metadata": {"name": name, "annotations": {
            "machineconfiguration.openshift.io/state": "Done",
            "machineconfiguration.openshift.io/currentConfig": current,
            "machineconfiguration.openshift.io/desiredConfig": desired}},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}})
    }

    #[test]
    fn verify_reports_each_check() {
        let ovs = json!({"metadata": {"name": "rendered-worker-new"}, "spec": {"config": "ExecStart=/usr/local/bin/configure-ovs.sh OVNKubernetes"}});
        let mut inputs = VerifyInputs {
            nodes: vec![node("w0", "rendered-worker-new", "rendered-worker-new", "True")],
            machine_configs: vec![ovs],
            status_network_type: "OVNKubernetes".into(),
            pods: vec![],
            daemon_logs: vec![],
        };
        assert!(verify(&inputs, "OVNKubernetes").iter().all(|c| c.passed), "{:?}", verify(&inputs, "OVNKubernetes"));
        inputs.nodes.push(node("w1", "rendered-worker-old", "rendered-worker-new", "False"));
        inputs.daemon_logs.push(("w1".into(), "line 1\nfailed to drain\n".into()));
        inputs
            .pods
            .push(json!({"metadata": {"name": "app", "namespace": "default"}, "spec": {"nodeName": "w1"}, "status": {"phase": "Failed"}}));
        let checks = verify(&inputs, "OVNKubernetes");
        assert!(!checks[0].passed && checks[0].detail.contains("w1"));
        assert!(!checks[1].passed && checks[1].detail.contains("rendered-worker-old not found"));
        assert!(checks[2].passed);
        assert!(!checks[3].passed && checks[3].detail.contains("failed to drain"));
        assert!(!checks[4].passed && checks[4].detail.contains("default/app on w1"));
    }

    #[test]
    fn yaml_is_block_style_and_quotes_what_needs_it() {
        let value = json!({"apiVersion": "config.openshift.io/v1", "kind": "Network", "metadata": {"name": "cluster", "annotations": {"a": ""}},
            "spec": {"clusterNetwork": [{"cidr": "198.18.0.0/15", "hostPrefix": 23}], "networkType": "OpenShiftSDN", "serviceNetwork": ["100.64.0.0/16"], "empty": {}, "flag": "true"}});
        let yaml = to_yaml(&value);
        assert!(yaml.contains("apiVersion: config.openshift.io/v1\n"), "{yaml}");
        assert!(yaml.contains("  clusterNetwork:\n  - cidr: 198.18.0.0/15\n    hostPrefix: 23\n"), "{yaml}");
        assert!(yaml.contains("  serviceNetwork:\n  - 100.64.0.0/16\n"), "{yaml}");
        assert!(yaml.contains("    a: \"\"\n") && yaml.contains("  empty: {}\n") && yaml.contains("  flag: \"true\"\n"), "{yaml}");
    }
}
