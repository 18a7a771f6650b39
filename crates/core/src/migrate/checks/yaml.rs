//! A JSON value as block YAML, as `oc get -o yaml` writes it (the backup's format).

use serde_json::Value;

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
