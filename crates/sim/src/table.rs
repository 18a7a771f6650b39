//! Server-side printing: the `meta.k8s.io/v1` Table that kubectl asks for, with the columns
//! a real cluster shows for the kinds in use.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::types::ResourceType;

fn age(object: &Value) -> String {
    let created = object.pointer("/metadata/creationTimestamp").and_then(Value::as_str).and_then(|t| humantime::parse_rfc3339(t).ok());
    let Some(created) = created else { return "<unknown>".into() };
    let secs = SystemTime::now().duration_since(created).unwrap_or(Duration::ZERO).as_secs();
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        7200..=172_799 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

fn text(object: &Value, pointer: &str) -> String {
    match object.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn condition(object: &Value, kind: &str) -> Option<String> {
    object.pointer("/status/conditions")?.as_array()?.iter().find(|c| c["type"] == kind).map(|c| text(c, "/status"))
}

pub fn node_roles(node: &Value) -> String {
    let mut roles: Vec<&str> = node
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|l| l.keys().filter_map(|k| k.strip_prefix("node-role.kubernetes.io/")).collect())
        .unwrap_or_default();
    roles.sort();
    if roles.is_empty() { "<none>".into() } else { roles.join(",") }
}

fn address(node: &Value, kind: &str) -> String {
    node.pointer("/status/addresses")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|x| x["type"] == kind))
        .map(|x| text(x, "/address"))
        .unwrap_or_else(|| "<none>".into())
}

type Column = (&'static str, &'static str, u8, fn(&Value) -> String);

fn columns(t: &ResourceType) -> Vec<Column> {
    let name: Column = ("Name", "name", 0, |o| text(o, "/metadata/name"));
    let age: Column = ("Age", "", 0, age);
    match t.kind {
        "Node" => vec![
            name,
            ("Status", "", 0, |o| {
                let ready = match condition(o, "Ready").as_deref() {
                    Some("True") => "Ready",
                    _ => "NotReady",
                };
                if o.pointer("/spec/unschedulable") == Some(&json!(true)) { format!("{ready},SchedulingDisabled") } else { ready.into() }
            }),
            ("Roles", "", 0, node_roles),
            age,
            ("Version", "", 0, |o| text(o, "/status/nodeInfo/kubeletVersion")),
            ("Internal-IP", "", 1, |o| address(o, "InternalIP")),
            ("External-IP", "", 1, |o| address(o, "ExternalIP")),
            ("OS-Image", "", 1, |o| text(o, "/status/nodeInfo/osImage")),
            ("Kernel-Version", "", 1, |o| text(o, "/status/nodeInfo/kernelVersion")),
            ("Container-Runtime", "", 1, |o| text(o, "/status/nodeInfo/containerRuntimeVersion")),
        ],
        "MachineConfigPool" => vec![
            name,
            ("Config", "", 0, |o| text(o, "/status/configuration/name")),
            ("Updated", "", 0, |o| condition(o, "Updated").unwrap_or_default()),
            ("Updating", "", 0, |o| condition(o, "Updating").unwrap_or_default()),
            ("Degraded", "", 0, |o| condition(o, "Degraded").unwrap_or_default()),
            ("MachineCount", "", 0, |o| text(o, "/status/machineCount")),
            ("ReadyMachineCount", "", 0, |o| text(o, "/status/readyMachineCount")),
            ("UpdatedMachineCount", "", 0, |o| text(o, "/status/updatedMachineCount")),
            ("DegradedMachineCount", "", 0, |o| text(o, "/status/degradedMachineCount")),
            age,
        ],
        "Pod" => vec![
            name,
            ("Ready", "", 0, |o| {
                let statuses = o.pointer("/status/containerStatuses").and_then(Value::as_array);
                let total = statuses.map_or(0, |s| s.len());
                let ready = statuses.map_or(0, |s| s.iter().filter(|c| c["ready"] == true).count());
                format!("{ready}/{total}")
            }),
            ("Status", "", 0, |o| {
                let waiting = o.pointer("/status/containerStatuses/0/state/waiting/reason").and_then(Value::as_str);
                waiting.map(str::to_owned).unwrap_or_else(|| text(o, "/status/phase"))
            }),
            ("Restarts", "", 0, |o| text(o, "/status/containerStatuses/0/restartCount")),
            age,
            ("IP", "", 1, |o| text(o, "/status/podIP")),
            ("Node", "", 1, |o| text(o, "/spec/nodeName")),
        ],
        "BareMetalHost" => vec![
            name,
            ("State", "", 0, |o| text(o, "/status/provisioning/state")),
            ("Consumer", "", 0, |o| text(o, "/spec/consumerRef/name")),
            ("Online", "", 0, |o| text(o, "/spec/online")),
            ("Error", "", 0, |o| text(o, "/status/errorType")),
            age,
        ],
        "DaemonSet" => vec![
            name,
            ("Desired", "", 0, |o| text(o, "/status/desiredNumberScheduled")),
            ("Current", "", 0, |o| text(o, "/status/currentNumberScheduled")),
            ("Ready", "", 0, |o| text(o, "/status/numberReady")),
            ("Up-to-date", "", 0, |o| text(o, "/status/updatedNumberScheduled")),
            ("Available", "", 0, |o| text(o, "/status/numberAvailable")),
            age,
        ],
        "Deployment" => vec![
            name,
            ("Ready", "", 0, |o| format!("{}/{}", text(o, "/status/readyReplicas"), text(o, "/spec/replicas"))),
            ("Up-to-date", "", 0, |o| text(o, "/status/updatedReplicas")),
            ("Available", "", 0, |o| text(o, "/status/availableReplicas")),
            age,
        ],
        "ReplicaSet" => vec![
            name,
            ("Desired", "", 0, |o| text(o, "/spec/replicas")),
            ("Current", "", 0, |o| text(o, "/status/replicas")),
            ("Ready", "", 0, |o| text(o, "/status/readyReplicas")),
            age,
        ],
        "PodDisruptionBudget" => vec![
            name,
            ("Min Available", "", 0, |o| {
                o.pointer("/spec/minAvailable").map_or("N/A".into(), |v| v.to_string().trim_matches('"').to_owned())
            }),
            ("Max Unavailable", "", 0, |o| {
                o.pointer("/spec/maxUnavailable").map_or("N/A".into(), |v| v.to_string().trim_matches('"').to_owned())
            }),
            ("Allowed Disruptions", "", 0, |o| text(o, "/status/disruptionsAllowed")),
            age,
        ],
        "ClusterOperator" => vec![
            name,
            ("Available", "", 0, |o| condition(o, "Available").unwrap_or_default()),
            ("Progressing", "", 0, |o| condition(o, "Progressing").unwrap_or_default()),
            ("Degraded", "", 0, |o| condition(o, "Degraded").unwrap_or_default()),
            age,
        ],
        "Namespace" => vec![name, ("Status", "", 0, |o| text(o, "/status/phase")), age],
        _ => vec![name, age],
    }
}

pub fn table(t: &ResourceType, objects: &[Arc<Value>], metadata: Value) -> Value {
    let columns = columns(t);
    let definitions: Vec<Value> = columns
        .iter()
        .map(|(name, format, priority, _)| json!({"name": name, "type": "string", "format": format, "description": "", "priority": priority}))
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let cells: Vec<String> = columns.iter().map(|(_, _, _, cell)| cell(o)).collect();
            json!({"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "columnDefinitions": definitions, "rows": rows})
}
