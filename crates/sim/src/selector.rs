//! Kubernetes label and field selectors, as the API server parses them.

use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed `labelSelector`; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

/// Splits on commas that are not inside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts.into_iter().map(str::trim).filter(|p| !p.is_empty()).collect()
}

fn parse_set(text: &str) -> Result<Vec<String>, String> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesized set, found {text:?}"))?;
    Ok(inner.split(',').map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).collect())
}

impl LabelSelector {
    pub fn parse(text: &str) -> Result<LabelSelector, String> {
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let requirement = if let Some(key) = part.strip_prefix('!') {
                Requirement::NotExists(key.trim().to_owned())
            } else if let Some((key, value)) = part.split_once("!=") {
                Requirement::NotEquals(key.trim().to_owned(), value.trim().to_owned())
            } else if let Some((key, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Requirement::Equals(key.trim().to_owned(), value.trim().to_owned())
            } else if let Some((key, set)) = part.split_once(" notin ") {
                Requirement::NotIn(key.trim().to_owned(), parse_set(set)?)
            } else if let Some((key, set)) = part.split_once(" in ") {
                Requirement::In(key.trim().to_owned(), parse_set(set)?)
            } else if part.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)) {
                Requirement::Exists(part.to_owned())
            } else {
                return Err(format!("unable to parse requirement: {part:?}"));
            };
            requirements.push(requirement);
        }
        Ok(LabelSelector(requirements))
    }

    /// A selector field that may be absent, as `metav1.LabelSelectorAsSelector` reads it
    /// (apimachinery `pkg/apis/meta/v1/helpers.go`): an absent (nil) selector selects nothing
    /// (`labels.Nothing()`), None here; an empty one (`{}`) selects everything.
    pub fn from_optional(selector: &Value) -> Option<LabelSelector> {
        (!selector.is_null()).then(|| LabelSelector::from_object(selector))
    }

    /// From a `metav1.LabelSelector` object (`matchLabels`, `matchExpressions`).
    pub fn from_object(selector: &Value) -> LabelSelector {
        let mut requirements = Vec::new();
        if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in labels {
                requirements.push(Requirement::Equals(k.clone(), v.as_str().unwrap_or_default().to_owned()));
            }
        }
        for expr in selector.get("matchExpressions").and_then(Value::as_array).into_iter().flatten() {
            let key = expr["key"].as_str().unwrap_or_default().to_owned();
            let values: Vec<String> =
                expr["values"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_owned)).collect();
            requirements.push(match expr["operator"].as_str().unwrap_or_default() {
                "In" => Requirement::In(key, values),
                "NotIn" => Requirement::NotIn(key, values),
                "Exists" => Requirement::Exists(key),
                _ => Requirement::NotExists(key),
            });
        }
        LabelSelector(requirements)
    }

    pub fn matches(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        let get = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, set) => get(k).is_some_and(|x| set.iter().any(|s| s == x)),
            Requirement::NotIn(k, set) => !get(k).is_some_and(|x| set.iter().any(|s| s == x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        })
    }

    /// One `key=value` requirement of the selector, if it has one: every object it matches
    /// carries that label (for an index lookup before the full match).
    pub fn an_equality(&self) -> Option<(&str, &str)> {
        self.0.iter().find_map(|r| match r {
            Requirement::Equals(k, v) => Some((k.as_str(), v.as_str())),
            _ => None,
        })
    }

    pub fn matches_object(&self, object: &Value) -> bool {
        // No requirement matches everything: no need to find the labels (a list of 10,000
        // Nodes with no selector did it 10,000 times).
        self.0.is_empty() || self.matches(object.pointer("/metadata/labels").and_then(Value::as_object))
    }
}

/// A parsed `fieldSelector` over the fields the API server indexes for the kinds in use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<FieldTerm>);

/// One `field=value` or `field!=value` term, with its JSON pointer made once at parse time (a
/// list matches it against every object of the kind).
#[derive(Clone, Debug, PartialEq, Eq)]
struct FieldTerm {
    field: String,
    pointer: String,
    equal: bool,
    value: String,
}

const FIELDS: &[&str] = &["metadata.name", "metadata.namespace", "spec.nodeName", "status.phase", "spec.unschedulable"];

impl FieldSelector {
    pub fn parse(text: &str) -> Result<FieldSelector, String> {
        let mut terms = Vec::new();
        for part in split_top_level(text) {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (f, true, v)
            } else {
                return Err(format!("invalid field selector: {part:?}"));
            };
            let field = field.trim();
            if !FIELDS.contains(&field) {
                return Err(format!("field label not supported: {field}"));
            }
            terms.push(FieldTerm {
                field: field.to_owned(),
                pointer: format!("/{}", field.replace('.', "/")),
                equal,
                value: value.trim().to_owned(),
            });
        }
        Ok(FieldSelector(terms))
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|term| {
            let same = match object.pointer(&term.pointer) {
                Some(Value::String(s)) => *s == term.value,
                Some(Value::Bool(b)) => b.to_string() == term.value,
                // A number's text (a Value's equality would compare it as JSON, not as the text).
                Some(other) => {
                    let text = other.to_string();
                    text == term.value
                }
                None => term.value.is_empty(),
            };
            same == term.equal
        })
    }

    /// The value an equality term requires of `field`, if the selector has one (a list can then
    /// read an index instead of every object).
    /// An empty value (`spec.nodeName=`: the unscheduled pods) requires none: an index of set
    /// fields cannot answer it.
    pub fn required(&self, field: &str) -> Option<&str> {
        self.0.iter().find(|t| t.equal && t.field == field && !t.value.is_empty()).map(|t| t.value.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Value {
        json!({"metadata": {"labels": v}})
    }

    #[test]
    fn label_selectors_follow_kubernetes_syntax() {
        let node = labels(json!({"node-role.kubernetes.io/worker": "", "zone": "a"}));
        let yes = [
            "node-role.kubernetes.io/worker",
            "zone=a",
            "zone==a",
            "zone!=b",
            "zone in (a,b)",
            "zone notin (c)",
            "!missing",
            "zone=a,node-role.kubernetes.io/worker",
        ];
        for s in yes {
            assert!(LabelSelector::parse(s).unwrap().matches_object(&node), "{s}");
        }
        let no = ["zone=b", "zone in (b, c)", "!zone", "missing", "zone notin (a)", "zone=a,missing"];
        for s in no {
            assert!(!LabelSelector::parse(s).unwrap().matches_object(&node), "{s}");
        }
        assert!(LabelSelector::parse("").unwrap().matches_object(&json!({})));
        assert!(LabelSelector::parse("a b").is_err());
    }

    #[test]
    fn selector_objects_and_field_selectors() {
        let sel = LabelSelector::from_object(&json!({"matchLabels": {"node-role.kubernetes.io/master": ""}}));
        assert!(sel.matches_object(&labels(json!({"node-role.kubernetes.io/master": ""}))));
        assert!(!sel.matches_object(&labels(json!({"node-role.kubernetes.io/worker": ""}))));
        let pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Failed"}});
        assert!(FieldSelector::parse("spec.nodeName=n1,status.phase!=Running").unwrap().matches(&pod));
        assert!(!FieldSelector::parse("metadata.name=q").unwrap().matches(&pod));
        assert!(FieldSelector::parse("spec.foo=1").unwrap_err().contains("not supported"));
    }
}
