//! The pod eviction subresource (`pods/NAME/eviction`): PodDisruptionBudgets honoured as the
//! API server honours them, then the pod deleted. One path for the API's subresource and the
//! simulated machine-config daemon's drain.

use serde_json::{Value, json};

use crate::store::now_rfc3339;
use crate::types;

fn t(group: &str, version: &str, plural: &str) -> &'static types::ResourceType {
    types::find(group, version, plural).expect("known type")
}

/// The eviction itself, the one path for the API's subresource and the simulated
/// machine-config daemon's drain: Ok when the pod went, else the status code and the Status
/// object the API answers with.
pub fn evict_pod(store: &mut crate::store::Store, namespace: &str, name: &str) -> Result<(), (u16, Value)> {
    let respond = |code: u16, body: Value| Err((code, body));
    let pods = t("", "v1", "pods");
    let pdbs = t("policy", "v1", "poddisruptionbudgets");
    let pod = match store.get(pods, Some(namespace), name) {
        Ok(p) => p,
        Err(e) => return respond(404, e.status()),
    };
    // kubernetes `pkg/registry/core/pod/storage/eviction.go`: a pod that is terminal, Pending
    // or already deleting is evicted without a budget (canIgnorePDB); more than one budget is
    // refused; a budget its controller has not yet observed refuses; an unhealthy pod goes
    // while the budget is met (IfHealthyBudget); else disruptionsAllowed 0 refuses with 429,
    // and an eviction that goes takes one disruption (checkAndDecrement). The budgets that apply
    // are those whose selector matches the pod (getPodDisruptionBudgets, policy/v1): a budget
    // without a selector covers no pod, one with an empty selector every pod of its namespace.
    let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("");
    let ignore = matches!(phase, "Succeeded" | "Failed" | "Pending") || pod.pointer("/metadata/deletionTimestamp").is_some();
    // The budgets that may select the pod (the store's index: those whose selector's
    // `key=value` the pod carries, or without one), each matched as every budget of the
    // namespace is, in the same order.
    let matching: Vec<_> = store
        .budgets_for(&pod)
        .into_iter()
        .filter(|pdb| crate::selector::LabelSelector::from_optional(&pdb["spec"]["selector"]).is_some_and(|s| s.matches_object(&pod)))
        .collect();
    // `errors.NewTooManyRequests(message, 0)` with one DisruptionBudget cause: the details carry
    // the cause only (no name; a retryAfterSeconds of 0 is omitted), the budget is named in it.
    let too_many = |cause: String| {
        let message = "Cannot evict pod as it would violate the pod's disruption budget.";
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": "TooManyRequests", "code": 429,
            "details": {"causes": [{"reason": "DisruptionBudget", "message": cause}]}})
    };
    if !ignore && matching.len() > 1 {
        return respond(
            500,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": 500, "reason": "InternalError",
                "message": "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."}),
        );
    }
    if let Some(pdb) = matching.first().filter(|_| !ignore) {
        let pdb_name = pdb["metadata"]["name"].as_str().unwrap_or_default();
        let int = |p: &str| pdb.pointer(p).and_then(Value::as_i64).unwrap_or(0);
        if int("/status/observedGeneration") < int("/metadata/generation") {
            return respond(429, too_many(format!("The disruption budget {pdb_name} is still being processed by the server.")));
        }
        let healthy_pod = pod
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
        let (current, desired) = (int("/status/currentHealthy"), int("/status/desiredHealthy"));
        let unhealthy_may_go = !healthy_pod && current >= desired && desired > 0;
        if !unhealthy_may_go {
            let allowed = int("/status/disruptionsAllowed");
            if allowed < 1 {
                let cause = format!("The disruption budget {pdb_name} needs {desired} healthy pods and has {current} currently");
                return respond(429, too_many(cause));
            }
            let mut status = pdb["status"].clone();
            status["disruptionsAllowed"] = json!(allowed - 1);
            status["disruptedPods"][name] = json!(now_rfc3339());
            let _ = store.update(pdbs, Some(namespace), pdb_name, json!({"status": status}), Some("status"));
        }
    }
    let _ = store.delete(pods, Some(namespace), name);
    Ok(())
}
