//! Kubernetes status conditions as every kind writes them: `status.conditions[]`, each with a
//! `type`, a `status` ("True", "False", "Unknown") and a `message`. One reader for Nodes, pools,
//! ClusterOperators and the network configs alike. Pure.

use serde_json::Value;

/// The condition of `kind` on `object`, if it has one.
pub fn find<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object.pointer("/status/conditions")?.as_array()?.iter().find(|c| c["type"] == kind)
}

/// Its status ("True", "False", "Unknown"), if the condition is there.
pub fn status<'a>(object: &'a Value, kind: &str) -> Option<&'a str> {
    find(object, kind)?["status"].as_str()
}

/// Whether the condition is there and True.
pub fn is_true(object: &Value, kind: &str) -> bool {
    status(object, kind) == Some("True")
}

/// Its message; empty when the condition or its message is missing.
pub fn message<'a>(object: &'a Value, kind: &str) -> &'a str {
    find(object, kind).and_then(|c| c["message"].as_str()).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_a_condition_and_tolerates_its_absence() {
        let node = json!({"status": {"conditions": [{"type": "Ready", "status": "False", "message": "kubelet stopped posting"}]}});
        assert_eq!(status(&node, "Ready"), Some("False"));
        assert!(!is_true(&node, "Ready"));
        assert_eq!(message(&node, "Ready"), "kubelet stopped posting");
        assert_eq!(status(&node, "MemoryPressure"), None);
        assert_eq!(message(&json!({}), "Ready"), "");
        assert!(is_true(&json!({"status": {"conditions": [{"type": "Available", "status": "True"}]}}), "Available"));
    }
}
