//! The `scale` subresource of Deployments and ReplicaSets (kubernetes
//! `pkg/registry/apps/deployment/storage/storage.go` and `.../replicaset/storage/storage.go`,
//! `ScaleREST`): an `autoscaling/v1` Scale read from the object (`scaleFromDeployment`:
//! `spec.replicas`, `status.replicas`, the selector as a string, the object's name,
//! namespace, uid, resourceVersion and creationTimestamp); an update or a patch applies to
//! that Scale, and its `spec.replicas` goes to the object's (`scaleUpdatedObjectInfo`), with
//! the Scale's resourceVersion, when it has one, as the precondition. `kubectl scale` patches
//! it, or reads it and puts it back under `--current-replicas`/`--resource-version`.

use serde_json::{Value, json};

use super::store::{PatchType, Store, StoreError};
use super::types::ResourceType;

/// The selector as `metav1.FormatLabelSelector` writes it: `matchLabels` as `key=value`,
/// sorted, `matchExpressions` as `key op (values)`, comma-separated.
fn selector_string(selector: &Value) -> String {
    let mut parts: Vec<String> = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .map(|labels| labels.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect())
        .unwrap_or_default();
    for expression in selector.get("matchExpressions").and_then(Value::as_array).into_iter().flatten() {
        let key = expression["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = expression["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        parts.push(match expression["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_owned(),
            _ => format!("!{key}"),
        });
    }
    parts.sort();
    parts.join(",")
}

/// The Scale of a Deployment or ReplicaSet.
pub fn of(object: &Value) -> Value {
    let meta = &object["metadata"];
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"]},
        "spec": {"replicas": object.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {"replicas": object.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector_string(&object["spec"]["selector"])},
    })
}

/// PUT of a Scale: its replicas to the object. The new Scale.
pub fn update(store: &mut Store, t: &ResourceType, namespace: Option<&str>, name: &str, scale: &Value) -> Result<Value, StoreError> {
    let replicas = match scale.pointer("/spec/replicas") {
        None => 0,
        Some(n) => n
            .as_i64()
            .ok_or_else(|| StoreError::Invalid(format!("Scale.autoscaling {name:?} is invalid: spec.replicas: must be an integer")))?,
    };
    if replicas < 0 {
        return Err(StoreError::Invalid(format!(
            "Scale.autoscaling {name:?} is invalid: spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"
        )));
    }
    let mut patch = json!({"spec": {"replicas": replicas}});
    if let Some(rv) = scale.pointer("/metadata/resourceVersion").and_then(Value::as_str).filter(|rv| !rv.is_empty()) {
        patch["metadata"] = json!({"resourceVersion": rv});
    }
    store.patch(t, namespace, name, PatchType::Merge, &patch, None).map(|object| of(&object))
}

/// PATCH of a Scale: the patch applies to the current Scale, which is then put.
pub fn patch(
    store: &mut Store,
    t: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    kind: PatchType,
    body: &Value,
) -> Result<Value, StoreError> {
    let current = store.get(t, namespace, name)?;
    let mut scale = of(&current);
    match kind {
        PatchType::Merge | PatchType::Strategic if !body.is_object() => {
            return Err(StoreError::BadRequest("a merge patch must be a JSON object".into()));
        }
        PatchType::Merge => super::patch::merge_patch(&mut scale, body),
        PatchType::Strategic => super::patch::strategic_merge_patch(&mut scale, body),
        PatchType::Json => super::patch::json_patch(&mut scale, body)
            .map_err(|e| StoreError::Invalid(format!("the JSON patch could not be applied: {e}")))?,
    }
    update(store, t, namespace, name, &scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_selector_is_written_as_the_api_server_formats_it() {
        let selector =
            json!({"matchLabels": {"b": "2", "a": "1"}, "matchExpressions": [{"key": "c", "operator": "In", "values": ["x", "y"]}]});
        assert_eq!(selector_string(&selector), "a=1,b=2,c in (x,y)");
    }
}
