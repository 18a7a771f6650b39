//! The three patch types the API server accepts: JSON merge patch (RFC 7386), JSON patch
//! (RFC 6902), and strategic merge patch for the core kinds' fields in use.

use serde_json::{Map, Value};

pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let object = target.as_object_mut().expect("object");
            for (key, value) in fields {
                if value.is_null() {
                    object.remove(key);
                } else {
                    merge_patch(object.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Lists whose items are merged by a key instead of replaced (the `patchMergeKey`s of the
/// core types fleetboot and kubectl touch).
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "conditions" | "addresses" => Some("type"),
        "containers" | "initContainers" | "volumes" | "env" | "ports" => Some("name"),
        "taints" => Some("key"),
        _ => None,
    }
}

pub fn strategic_merge_patch(target: &mut Value, patch: &Value) {
    strategic(target, patch, "")
}

fn strategic(target: &mut Value, patch: &Value, field: &str) {
    match (patch, merge_key(field)) {
        (Value::Object(fields), _) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let object = target.as_object_mut().expect("object");
            for (key, value) in fields {
                if key.starts_with("$setElementOrder/") || key == "$retainKeys" {
                    continue;
                }
                if value.is_null() {
                    object.remove(key);
                } else {
                    strategic(object.entry(key.clone()).or_insert(Value::Null), value, key);
                }
            }
        }
        (Value::Array(items), Some(key)) if target.is_array() => {
            let list = target.as_array_mut().expect("array");
            for item in items {
                let id = item.get(key).cloned();
                let position = id.as_ref().and_then(|id| list.iter().position(|x| x.get(key) == Some(id)));
                let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                match (position, delete) {
                    (Some(i), true) => {
                        list.remove(i);
                    }
                    (Some(i), false) => strategic(&mut list[i], item, ""),
                    (None, false) => list.push(item.clone()),
                    (None, true) => {}
                }
            }
        }
        (other, _) => *target = other.clone(),
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split_pointer(path: &str) -> Result<(String, String), String> {
    let (parent, last) = path.rsplit_once('/').ok_or_else(|| format!("bad JSON pointer {path:?}"))?;
    Ok((parent.to_owned(), unescape(last)))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = split_pointer(path)?;
    match doc.pointer_mut(&parent) {
        Some(Value::Object(map)) => {
            map.insert(last, value);
            Ok(())
        }
        Some(Value::Array(list)) => {
            let index = if last == "-" { list.len() } else { last.parse().map_err(|_| format!("bad array index in {path:?}"))? };
            if index > list.len() {
                return Err(format!("index out of range in {path:?}"));
            }
            list.insert(index, value);
            Ok(())
        }
        _ => Err(format!("path {parent:?} does not exist")),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split_pointer(path)?;
    match doc.pointer_mut(&parent) {
        Some(Value::Object(map)) => map.remove(&last).ok_or_else(|| format!("path {path:?} does not exist")),
        Some(Value::Array(list)) => {
            let index: usize = last.parse().map_err(|_| format!("bad array index in {path:?}"))?;
            if index >= list.len() {
                return Err(format!("index out of range in {path:?}"));
            }
            Ok(list.remove(index))
        }
        _ => Err(format!("path {parent:?} does not exist")),
    }
}

/// Applies a JSON patch atomically: on any failed operation `doc` is left unchanged.
pub fn json_patch(doc: &mut Value, operations: &Value) -> Result<(), String> {
    let operations = operations.as_array().ok_or("a JSON patch must be an array of operations")?;
    let mut work = doc.clone();
    for op in operations {
        let path = op["path"].as_str().ok_or("operation without a path")?;
        match op["op"].as_str().unwrap_or_default() {
            "add" => add(&mut work, path, op.get("value").cloned().ok_or("add without a value")?)?,
            "remove" => {
                remove(&mut work, path)?;
            }
            "replace" => {
                let value = op.get("value").cloned().ok_or("replace without a value")?;
                let slot = work.pointer_mut(path).ok_or_else(|| format!("path {path:?} does not exist"))?;
                *slot = value;
            }
            "move" => {
                let from = op["from"].as_str().ok_or("move without from")?;
                let value = remove(&mut work, from)?;
                add(&mut work, path, value)?;
            }
            "copy" => {
                let from = op["from"].as_str().ok_or("copy without from")?;
                let value = work.pointer(from).cloned().ok_or_else(|| format!("path {from:?} does not exist"))?;
                add(&mut work, path, value)?;
            }
            "test" => {
                if work.pointer(path) != op.get("value") {
                    return Err(format!("test failed at {path:?}"));
                }
            }
            other => return Err(format!("unknown operation {other:?}")),
        }
    }
    *doc = work;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_sets_and_removes() {
        let mut doc = json!({"spec": {"paused": false, "x": 1}, "metadata": {"annotations": {"a": "1"}}});
        merge_patch(&mut doc, &json!({"spec": {"paused": true, "x": null}, "metadata": {"annotations": {"b": ""}}}));
        assert_eq!(doc, json!({"spec": {"paused": true}, "metadata": {"annotations": {"a": "1", "b": ""}}}));
    }

    #[test]
    fn strategic_merge_merges_keyed_lists() {
        let mut node =
            json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "DiskPressure", "status": "False"}]}});
        strategic_merge_patch(
            &mut node,
            &json!({"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "PIDPressure", "status": "False"}]}}),
        );
        let conditions = node["status"]["conditions"].as_array().unwrap();
        assert_eq!(conditions.len(), 3);
        assert_eq!(conditions[0]["status"], "False");
        strategic_merge_patch(&mut node, &json!({"status": {"conditions": [{"type": "PIDPressure", "$patch": "delete"}]}}));
        assert_eq!(node["status"]["conditions"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn json_patch_operations_and_atomicity() {
        let mut doc = json!({"metadata": {"annotations": {"networkoperator.openshift.io/network-migration": ""}}, "list": [1, 2]});
        json_patch(
            &mut doc,
            &json!([
                {"op": "remove", "path": "/metadata/annotations/networkoperator.openshift.io~1network-migration"},
                {"op": "add", "path": "/list/-", "value": 3},
                {"op": "replace", "path": "/list/0", "value": 0},
                {"op": "copy", "from": "/list/0", "path": "/first"},
                {"op": "test", "path": "/first", "value": 0}
            ]),
        )
        .unwrap();
        assert_eq!(doc, json!({"metadata": {"annotations": {}}, "list": [0, 2, 3], "first": 0}));
        let before = doc.clone();
        assert!(json_patch(&mut doc, &json!([{"op": "add", "path": "/x", "value": 1}, {"op": "remove", "path": "/missing"}])).is_err());
        assert_eq!(doc, before, "a failed patch changes nothing");
    }
}
