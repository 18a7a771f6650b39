//! `-o yaml`: any JSON output of fleetboot as YAML, from the same serde value (so the two never
//! disagree), and `-o name` as kubectl prints it (`node/NAME`).
//!
//! A small emitter rather than a YAML crate: fleetboot only writes YAML, from JSON values, so it
//! needs block maps, block sequences and scalars; strings that a YAML 1.1 or 1.2 reader could
//! take for anything but a string (`yes`, `1.0`, `2026-01-01`, `a: b`, ...) are double-quoted
//! with JSON's escapes, which YAML's double-quoted style accepts as they are.

use serde_json::Value;

/// The YAML document of `value`, ending in a newline.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Array(items) if !items.is_empty() => sequence(items, 0, &mut out),
        Value::Object(map) if !map.is_empty() => mapping(map, 0, &mut out),
        scalar => {
            out.push_str(&inline(scalar));
            out.push('\n');
        }
    }
    out
}

/// `value` serialized, then as YAML.
pub fn render<T: serde::Serialize + ?Sized>(value: &T) -> String {
    to_yaml(&serde_json::to_value(value).expect("fleetboot's outputs serialize"))
}

/// `-o name`: one `KIND/NAME` a line, as `kubectl get -o name`.
pub fn names<'a>(kind: &str, names: impl IntoIterator<Item = &'a str>) -> String {
    names.into_iter().map(|name| format!("{kind}/{name}\n")).collect()
}

fn pad(indent: usize, out: &mut String) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn mapping(map: &serde_json::Map<String, Value>, indent: usize, out: &mut String) {
    for (i, (key, value)) in map.iter().enumerate() {
        // The first key of a map inside a sequence item shares the "- " line.
        if i > 0 || indent == 0 || !out.ends_with("- ") {
            pad(indent, out);
        }
        out.push_str(&scalar_string(key));
        out.push(':');
        nested(value, indent, out);
    }
}

fn sequence(items: &[Value], indent: usize, out: &mut String) {
    for item in items {
        pad(indent, out);
        out.push_str("- ");
        match item {
            Value::Object(map) if !map.is_empty() => mapping(map, indent + 2, out),
            Value::Array(inner) if !inner.is_empty() => {
                out.push('\n');
                sequence(inner, indent + 2, out);
            }
            scalar => {
                out.push_str(&inline(scalar));
                out.push('\n');
            }
        }
    }
}

/// A map's value after `key:`: inline for scalars and empty collections, else a block below.
fn nested(value: &Value, indent: usize, out: &mut String) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            mapping(map, indent + 2, out);
        }
        // Sequences under a key at the key's indentation, as kubectl writes them.
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            sequence(items, indent, out);
        }
        scalar => {
            out.push(' ');
            out.push_str(&inline(scalar));
            out.push('\n');
        }
    }
}

fn inline(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => scalar_string(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// A string plain when no reader could take it for something else, else double-quoted.
fn scalar_string(s: &str) -> String {
    const RESERVED: &[&str] = &["null", "~", "true", "false", "yes", "no", "on", "off", "y", "n"];
    let plain = !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/' || c == '_')
        && !RESERVED.contains(&s.to_ascii_lowercase().as_str())
        // `.inf`, `.nan` and the like start with a dot and are refused above; numbers start
        // with a digit, refused above too.
        ;
    if plain { s.to_owned() } else { serde_json::to_string(s).expect("a string serializes") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn block_maps_sequences_and_quoted_strings() {
        let value = json!({
            "name": "worker-0",
            "addresses": ["127.0.0.2", "::1"],
            "ready": true,
            "pool": null,
            "labels": {"node-role.kubernetes.io/worker": "", "zone": "yes"},
            "items": [{"a": 1, "b": {"c": "x: y"}}, [], {}],
            "empty": []
        });
        assert_eq!(
            to_yaml(&value),
            "addresses:\n- \"127.0.0.2\"\n- \"::1\"\nempty: []\nitems:\n- a: 1\n  b:\n    c: \"x: y\"\n- []\n- {}\n\
             labels:\n  node-role.kubernetes.io/worker: \"\"\n  zone: \"yes\"\nname: worker-0\npool: null\nready: true\n"
        );
        assert_eq!(to_yaml(&json!([])), "[]\n");
        assert_eq!(to_yaml(&json!("2026-12-04")), "\"2026-12-04\"\n");
        assert_eq!(names("node", ["a", "b"]), "node/a\nnode/b\n");
    }
}
