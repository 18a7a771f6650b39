//! The defaults the API server writes into what a client creates or replaces, for the kinds
//! whose defaults a client can observe (a JSON patch `replace` needs the field to exist).

use serde_json::{Value, json};

use crate::types::ResourceType;

/// Fill the defaults of `object` of type `t`, as the real API server's defaulting does on decode.
pub fn apply(t: &ResourceType, object: &mut Value) {
    if t.group != "admissionregistration.k8s.io" {
        return;
    }
    // kubernetes `pkg/apis/admissionregistration/v1/defaults.go`: SetDefaults_ValidatingWebhook
    // and SetDefaults_MutatingWebhook (failurePolicy Fail, matchPolicy Equivalent, empty
    // namespace and object selectors, timeoutSeconds 10; reinvocationPolicy Never for mutating).
    let mutating = t.kind == "MutatingWebhookConfiguration";
    let Some(webhooks) = object.get_mut("webhooks").and_then(Value::as_array_mut) else { return };
    for webhook in webhooks.iter_mut().filter_map(Value::as_object_mut) {
        let mut default = |key: &str, value: Value| {
            webhook.entry(key.to_owned()).or_insert(value);
        };
        default("failurePolicy", json!("Fail"));
        default("matchPolicy", json!("Equivalent"));
        default("namespaceSelector", json!({}));
        default("objectSelector", json!({}));
        default("timeoutSeconds", json!(10));
        if mutating {
            default("reinvocationPolicy", json!("Never"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_gets_the_v1_defaults_and_keeps_what_was_given() {
        let t = crate::types::find("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations").unwrap();
        let mut object = json!({"webhooks": [{"name": "a"}, {"name": "b", "timeoutSeconds": 3, "failurePolicy": "Ignore"}]});
        apply(t, &mut object);
        assert_eq!(object["webhooks"][0]["timeoutSeconds"], 10);
        assert_eq!(object["webhooks"][0]["failurePolicy"], "Fail");
        assert_eq!(object["webhooks"][1]["timeoutSeconds"], 3);
        assert_eq!(object["webhooks"][1]["failurePolicy"], "Ignore");
        assert!(object["webhooks"][0].get("reinvocationPolicy").is_none());
    }
}
