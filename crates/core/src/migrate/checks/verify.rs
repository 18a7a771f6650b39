//! Did the migration work: the verification's checks, the MTU and port sanity, pods in error.

use serde_json::Value;

use super::*;

/// Pods failing now ("namespace/name"): the baseline the verification does not count. Pure.
pub fn failing_pods(pods: &[Value]) -> Vec<String> {
    let mut failing: Vec<String> =
        pods.iter().filter(|p| pod_error(p).is_some()).map(|p| format!("{}/{}", text(p, "/metadata/namespace"), name(p))).collect();
    failing.sort();
    failing
}

/// `--mtu` and `--geneve-port`. Pure.
pub fn check_mtu_and_port(target: &str, mtu: Option<u32>, geneve_port: Option<u32>, smallest_node_mtu: Option<u32>) -> Vec<String> {
    let mut problems = Vec::new();
    // The overlay's overhead: Geneve 100 bytes (openshift-docs `modules/nw-ovn-kubernetes-migration.adoc`:
    // "100 less than the smallest node MTU value"), VXLAN 50 (`modules/nw-ovn-kubernetes-rollback.adoc`:
    // "50 less than the smallest node MTU value").
    let (overhead, overlay) = if target == "OpenShiftSDN" { (50, "VXLAN") } else { (100, "Geneve") };
    if let Some(mtu) = mtu {
        if !(576..=9216).contains(&mtu) {
            problems.push(format!("--mtu {mtu} is outside 576..9216"));
        }
        if let Some(node_mtu) = smallest_node_mtu
            && mtu + overhead > node_mtu
        {
            problems.push(format!(
                "--mtu {mtu} leaves no room for the {overlay} overhead: it must be at most the smallest node MTU ({node_mtu}) minus {overhead} = {}",
                node_mtu.saturating_sub(overhead)
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
        let reason = pod.pointer("/status/reason").and_then(Value::as_str).unwrap_or("");
        return Some(if reason.is_empty() { format!("phase {phase}") } else { format!("phase {phase} ({reason})") });
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
    pub operators: Vec<Value>,
    /// The target network's plugin DaemonSet (`openshift-ovn-kubernetes/ovnkube-node` or
    /// `openshift-sdn/sdn`), if it exists.
    pub plugin_daemonset: Option<Value>,
    /// Pods that were failing before the migration started ("namespace/name").
    pub baseline: Vec<String>,
    /// Egress firewalls, egress IPs and multicast of both plugins.
    pub features: crate::migrate::features::FeatureObjects,
}

fn annotation<'a>(node: &'a Value, key: &str) -> &'a str {
    node.pointer("/metadata/annotations").and_then(|a| a.get(key)).and_then(Value::as_str).unwrap_or("")
}

/// The plugin DaemonSet of a network type and the namespace of the other one's pods.
pub fn plugin_of(network_type: &str) -> (&'static str, &'static str, &'static str) {
    if network_type == "OVNKubernetes" {
        ("openshift-ovn-kubernetes", "ovnkube-node", "openshift-sdn")
    } else {
        ("openshift-sdn", "sdn", "openshift-ovn-kubernetes")
    }
}

/// How many lines of a failing node's machine-config-daemon log verify shows.
pub const DAEMON_LOG_LINES: usize = 5;

/// The document's steps 9 and 10, and the cluster's health, as a table of checks. Pure.
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
            let why = Some(condition_message(n, "Ready")).filter(|m| !m.is_empty()).map(|m| format!(" ({m})")).unwrap_or_default();
            match inputs.daemon_logs.iter().find(|(name, _)| name == node) {
                Some((_, log)) => {
                    let lines: Vec<&str> = log.trim().lines().collect();
                    let tail = lines[lines.len().saturating_sub(DAEMON_LOG_LINES)..].join(" ⏎ ");
                    format!("{node} NotReady{why}; machine-config-daemon log tail: {tail}")
                }
                None => format!("{node} NotReady{why}"),
            }
        })
        .collect();
    push("every node Ready", not_ready, format!("all {count} nodes"));

    let mut before = 0;
    let errors: Vec<String> = inputs
        .pods
        .iter()
        .filter_map(|p| {
            let why = pod_error(p)?;
            let ns = p.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("");
            if inputs.baseline.iter().any(|b| *b == format!("{ns}/{}", name(p))) {
                before += 1;
                return None;
            }
            let node = p.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("-");
            Some(format!("{ns}/{} on {node}: {why}", name(p)))
        })
        .collect();
    let already = if before > 0 { format!("; {before} already failing before the migration, not counted") } else { String::new() };
    push("no pod in an error state", errors, format!("{} pods checked{already}", inputs.pods.len()));

    let unhealthy: Vec<String> = inputs
        .operators
        .iter()
        .filter_map(|o| {
            let mut bad = Vec::new();
            if condition(o, "Available") != Some("True") {
                bad.push("not Available".to_owned());
            }
            if condition(o, "Progressing") == Some("True") {
                bad.push("Progressing".to_owned());
            }
            if condition(o, "Degraded") == Some("True") {
                bad.push(format!("Degraded: {}", condition_message(o, "Degraded")));
            }
            (!bad.is_empty()).then(|| format!("{} {}", name(o), bad.join(", ")))
        })
        .collect();
    push(
        "every ClusterOperator Available, not Progressing, not Degraded",
        unhealthy,
        format!("{} ClusterOperators", inputs.operators.len()),
    );

    let (namespace, daemonset, old_namespace) = plugin_of(target);
    let mut plugin = Vec::new();
    match &inputs.plugin_daemonset {
        None => plugin.push(format!("DaemonSet {namespace}/{daemonset} not found")),
        Some(ds) => {
            let n = |k: &str| ds.pointer(&format!("/status/{k}")).and_then(Value::as_u64).unwrap_or(0);
            let (desired, available, updated) = (n("desiredNumberScheduled"), n("numberAvailable"), n("updatedNumberScheduled"));
            // A status older than the spec speaks of the previous generation (kubectl's rollout
            // status reads it so: kubernetes/kubectl `pkg/polymorphichelpers/rollout_status.go`).
            let generation = ds.pointer("/metadata/generation").and_then(Value::as_u64);
            let observed = ds.pointer("/status/observedGeneration").and_then(Value::as_u64);
            if let (Some(generation), Some(observed)) = (generation, observed)
                && observed < generation
            {
                plugin.push(format!("{daemonset}: status of generation {observed}, not yet of {generation}"));
            } else if desired != count as u64 || available != desired || updated != desired {
                plugin.push(format!("{daemonset}: {available} of {desired} available, {updated} updated, {count} nodes"));
            }
        }
    }
    let left: Vec<String> = inputs
        .pods
        .iter()
        .filter(|p| p.pointer("/metadata/namespace").and_then(Value::as_str) == Some(old_namespace))
        .map(|p| format!("{old_namespace}/{}", name(p)))
        .collect();
    if !left.is_empty() {
        plugin.push(format!("pods of the old network left: {}", left.join(", ")));
    }
    push(
        &format!("{daemonset} rolled out on every node, no {old_namespace} pod left"),
        plugin,
        format!("{daemonset} available on all {count} nodes"),
    );
    checks.extend(crate::migrate::features::conversion_check(&inputs.features, target));
    checks
}

/// The nodes that hold pods in error (step 10's remedy reboots them), baseline excluded. Pure.
pub fn nodes_with_error_pods(pods: &[Value], baseline: &[String]) -> Vec<String> {
    let mut nodes: Vec<String> = pods
        .iter()
        .filter(|p| pod_error(p).is_some())
        .filter(|p| !baseline.iter().any(|b| *b == format!("{}/{}", text(p, "/metadata/namespace"), name(p))))
        .filter_map(|p| p.pointer("/spec/nodeName").and_then(Value::as_str).map(str::to_owned))
        .collect();
    nodes.sort();
    nodes.dedup();
    nodes
}
