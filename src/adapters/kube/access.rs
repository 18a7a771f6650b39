//! Whether this user may do what a run needs, asked before anything is touched: one
//! SelfSubjectAccessReview per rule and verb of core's [`rbac`](fleetboot_core::rbac) table.

use futures::future::join_all;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec};
use kube::Api;
use kube::api::PostParams;

use fleetboot_core::rbac::{Mode, Rule};

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// What the user may not do; nothing was changed.
    #[error(
        "missing Kubernetes permissions, nothing was changed: cannot {}; `fleetboot rbac {mode}` prints the roles this run needs",
        missing.join("; cannot ")
    )]
    Missing { missing: Vec<String>, mode: &'static str },
    #[error("failed to ask the API server whether this user may {what}")]
    Review {
        what: String,
        #[source]
        source: kube::Error,
    },
}

/// Asks, for every rule and verb of `rules`, whether this user may; the ones it may not, named
/// (verb, resource, API group, namespace), in one error. `mode` names the `fleetboot rbac` mode
/// that prints them.
pub async fn check(client: &kube::Client, rules: &[Rule], mode: Mode) -> Result<(), AccessError> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let asks: Vec<(&Rule, &str)> = rules.iter().flat_map(|rule| rule.verbs.iter().map(move |verb| (rule, *verb))).collect();
    let answers = join_all(asks.iter().map(|(rule, verb)| {
        let api = api.clone();
        let (resource, subresource) = rule.resource_and_subresource();
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some((*verb).to_owned()),
                    group: Some(rule.group.to_owned()),
                    resource: Some(resource.to_owned()),
                    subresource: (!subresource.is_empty()).then(|| subresource.to_owned()),
                    namespace: rule.namespace.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        async move { api.create(&PostParams::default(), &review).await }
    }))
    .await;
    let mut missing = Vec::new();
    for ((rule, verb), answer) in asks.iter().zip(answers) {
        let answer = answer.map_err(|source| AccessError::Review { what: rule.describe_verb(verb), source })?;
        if !answer.status.is_some_and(|s| s.allowed) {
            missing.push(rule.describe_verb(verb));
        }
    }
    if missing.is_empty() { Ok(()) } else { Err(AccessError::Missing { missing, mode: mode.name() }) }
}
