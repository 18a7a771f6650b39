//! RBAC on request (`fleetboot sim --rbac`): bearer tokens name users, and every request is
//! authorized from the Roles, ClusterRoles and bindings stored in the API (applied with
//! kubectl), as kube-apiserver's token authenticator and RBAC authorizer do.
//!
//! Sources (Kubernetes, release-1.33):
//! - Authentication: static bearer tokens (`--token-auth-file`: token → user, groups);
//!   an unknown or missing token is 401 `Unauthorized` (k8s.io/apiserver
//!   pkg/endpoints/handlers/responsewriters/errors.go `InternalError`/`Unauthorized`; the
//!   filter pkg/endpoints/filters/authentication.go). Every authenticated user is in
//!   `system:authenticated`.
//! - The request's attributes: verb from the method (GET → get, or list without a name, or
//!   watch with `?watch=true`; POST → create; PUT → update; PATCH → patch; DELETE → delete, or
//!   deletecollection without a name), the API group, resource, subresource, namespace and name
//!   (k8s.io/apiserver pkg/endpoints/request/requestinfo.go).
//! - Authorization: `system:masters` is allowed everything (the privileged-groups authorizer,
//!   pkg/kubeapiserver/authorizer/config.go). Otherwise RBAC (plugin/pkg/auth/authorizer/rbac/
//!   rbac.go `VisitRulesFor`): every ClusterRoleBinding's ClusterRole applies everywhere; a
//!   RoleBinding's Role or ClusterRole applies only in the RoleBinding's namespace. A rule
//!   matches (pkg/apis/rbac/v1/evaluation_helpers.go) when its verbs hold the verb or `*`, its
//!   apiGroups the group or `*`, its resources `resource`, `resource/subresource`, `*` or
//!   `*/subresource`, and its resourceNames are empty or hold the name. Subjects
//!   (rbac.go `appliesToUser`): a User by name, a Group by membership, a ServiceAccount as the
//!   user `system:serviceaccount:NAMESPACE:NAME` (the binding's namespace when the subject has
//!   none).
//! - Requests for no resource (discovery, /version) and SelfSubjectAccessReviews are allowed to
//!   every authenticated user: the bootstrap ClusterRoles `system:discovery`,
//!   `system:public-info-viewer` and `system:basic-user`, bound to `system:authenticated`
//!   (plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go).
//! - A denial is 403 `Forbidden` with the message of
//!   responsewriters/errors.go `forbiddenMessage` inside apimachinery's `NewForbidden`
//!   (`nodes "worker-0" is forbidden: User "u" cannot patch resource "nodes" in API group ""
//!   at the cluster scope`), details naming the group, resource and name.
//! - SelfSubjectAccessReview (authorization.k8s.io/v1): its spec.resourceAttributes are
//!   answered by the same authorizer, status.allowed (pkg/registry/authorization/
//!   selfsubjectaccessreview/rest.go).

use std::collections::HashMap;

use serde_json::{Value, json};

use super::selector::{FieldSelector, LabelSelector};
use super::store::{Filter, Store};
use super::types;

/// Who a bearer token is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

/// The token file of a `--rbac` simulation: token → user.
#[derive(Debug, Default)]
pub struct Tokens(pub HashMap<String, User>);

impl Tokens {
    /// `admin` in `system:masters` and `fleetboot` in no group of its own, each with a fresh token.
    pub fn generate() -> Tokens {
        let mut tokens = HashMap::new();
        tokens.insert(token(), User { name: "admin".into(), groups: vec!["system:masters".into(), "system:authenticated".into()] });
        tokens.insert(token(), User { name: "fleetboot".into(), groups: vec!["system:authenticated".into()] });
        Tokens(tokens)
    }

    pub fn token_of(&self, user: &str) -> Option<&str> {
        self.0.iter().find(|(_, u)| u.name == user).map(|(t, _)| t.as_str())
    }

    /// The user of an `Authorization` header.
    pub fn authenticate(&self, authorization: Option<&str>) -> Option<&User> {
        let token = authorization?.strip_prefix("Bearer ")?.trim();
        self.0.get(token)
    }
}

fn token() -> String {
    (0..8).map(|_| super::store::random_suffix()).collect()
}

/// One request's attributes, as the authorizer sees them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
}

impl Attributes {
    /// The verb of a request (requestinfo.go).
    pub fn verb_of(method: &str, named: bool, watch: bool) -> &'static str {
        match (method, named) {
            ("GET" | "HEAD", true) => "get",
            ("GET" | "HEAD", false) if watch => "watch",
            ("GET" | "HEAD", false) => "list",
            ("POST", _) => "create",
            ("PUT", _) => "update",
            ("PATCH", _) => "patch",
            ("DELETE", true) => "delete",
            ("DELETE", false) => "deletecollection",
            _ => "",
        }
    }

    /// The attributes of a SelfSubjectAccessReview's spec.resourceAttributes.
    pub fn of_review(spec: &Value) -> Attributes {
        let field = |key: &str| spec.pointer(&format!("/resourceAttributes/{key}")).and_then(Value::as_str).unwrap_or_default().to_owned();
        Attributes {
            verb: field("verb"),
            group: field("group"),
            resource: field("resource"),
            subresource: field("subresource"),
            namespace: field("namespace"),
            name: field("name"),
        }
    }
}

fn all(store: &Store, plural: &str) -> Vec<Value> {
    let t = types::find("rbac.authorization.k8s.io", "v1", plural).expect("the RBAC kinds are served");
    let filter = Filter { namespace: None, labels: LabelSelector::default(), fields: FieldSelector::default() };
    store.list(t, &filter, None, None).items.iter().map(|o| o.as_ref().clone()).collect()
}

fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    v.pointer(path).and_then(Value::as_str).unwrap_or_default()
}

fn applies_to(binding: &Value, user: &User) -> bool {
    let binding_ns = str_at(binding, "/metadata/namespace");
    binding["subjects"].as_array().into_iter().flatten().any(|s| match str_at(s, "/kind") {
        "User" => str_at(s, "/name") == user.name,
        "Group" => user.groups.iter().any(|g| g == str_at(s, "/name")),
        "ServiceAccount" => {
            let ns = Some(str_at(s, "/namespace")).filter(|n| !n.is_empty()).unwrap_or(binding_ns);
            user.name == format!("system:serviceaccount:{ns}:{}", str_at(s, "/name"))
        }
        _ => false,
    })
}

fn holds(list: &Value, wanted: &str) -> bool {
    list.as_array().into_iter().flatten().filter_map(Value::as_str).any(|v| v == wanted || v == "*")
}

fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    let resource_ok = rule["resources"].as_array().into_iter().flatten().filter_map(Value::as_str).any(|r| {
        if a.subresource.is_empty() {
            r == a.resource || r == "*"
        } else {
            r == format!("{}/{}", a.resource, a.subresource) || r == "*" || r == format!("*/{}", a.subresource)
        }
    });
    let names = rule["resourceNames"].as_array().map(Vec::as_slice).unwrap_or_default();
    holds(&rule["verbs"], &a.verb)
        && holds(&rule["apiGroups"], &a.group)
        && resource_ok
        && (names.is_empty() || names.iter().any(|n| n.as_str() == Some(a.name.as_str())))
}

/// Whether RBAC allows `a` to `user`, from the stored roles and bindings.
pub fn allows(store: &Store, user: &User, a: &Attributes) -> bool {
    if user.groups.iter().any(|g| g == "system:masters") {
        return true;
    }
    if a.group == "authorization.k8s.io" && a.resource == "selfsubjectaccessreviews" && a.verb == "create" {
        return true;
    }
    let cluster_roles = all(store, "clusterroles");
    let roles = all(store, "roles");
    let rules_of = |role_ref: &Value, ns: &str| -> Vec<Value> {
        let name = str_at(role_ref, "/name");
        let found = match str_at(role_ref, "/kind") {
            "ClusterRole" => cluster_roles.iter().find(|r| str_at(r, "/metadata/name") == name),
            "Role" => roles.iter().find(|r| str_at(r, "/metadata/name") == name && str_at(r, "/metadata/namespace") == ns),
            _ => None,
        };
        found.and_then(|r| r["rules"].as_array().cloned()).unwrap_or_default()
    };
    let by_cluster = all(store, "clusterrolebindings")
        .iter()
        .filter(|b| applies_to(b, user))
        .any(|b| rules_of(&b["roleRef"], "").iter().any(|rule| rule_allows(rule, a)));
    by_cluster
        || (!a.namespace.is_empty()
            && all(store, "rolebindings")
                .iter()
                .filter(|b| str_at(b, "/metadata/namespace") == a.namespace && applies_to(b, user))
                .any(|b| rules_of(&b["roleRef"], &a.namespace).iter().any(|rule| rule_allows(rule, a))))
}

/// The 403 Status of a denied request (responsewriters `forbiddenMessage`, `NewForbidden`).
pub fn forbidden(user: &User, a: &Attributes) -> Value {
    let qualified = if a.group.is_empty() { a.resource.clone() } else { format!("{}.{}", a.resource, a.group) };
    let resource = if a.subresource.is_empty() { a.resource.clone() } else { format!("{}/{}", a.resource, a.subresource) };
    let scope = if a.namespace.is_empty() { "at the cluster scope".to_owned() } else { format!("in the namespace {:?}", a.namespace) };
    let reason = format!("User {:?} cannot {} resource {resource:?} in API group {:?} {scope}", user.name, a.verb, a.group);
    let message = if a.name.is_empty() {
        format!("{qualified} is forbidden: {reason}")
    } else {
        format!("{qualified} {:?} is forbidden: {reason}", a.name)
    };
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": "Forbidden",
        "details": {"name": a.name, "group": a.group, "kind": a.resource}, "code": 403,
    })
}

/// The 401 Status of a request without a known token.
pub fn unauthorized() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
}

/// The answer to a SelfSubjectAccessReview `review` by `user`.
pub fn review(store: &Store, user: &User, mut review: Value) -> Value {
    let attributes = Attributes::of_review(&review["spec"]);
    let allowed = allows(store, user, &attributes);
    review["status"] = if allowed { json!({"allowed": true, "reason": "RBAC: allowed"}) } else { json!({"allowed": false}) };
    review["apiVersion"] = json!("authorization.k8s.io/v1");
    review["kind"] = json!("SelfSubjectAccessReview");
    review
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(objects: &[(&str, Value)]) -> Store {
        let mut store = Store::new(100);
        for (plural, object) in objects {
            let t = types::find("rbac.authorization.k8s.io", "v1", plural).unwrap();
            let ns = object.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_owned);
            store.create(t, ns.as_deref(), object.clone()).unwrap();
        }
        store
    }

    fn attrs(verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: name.into(),
        }
    }

    #[test]
    fn cluster_and_namespace_bindings_subresources_and_the_forbidden_message() {
        let user = User { name: "system:serviceaccount:fb:runner".into(), groups: vec!["system:authenticated".into()] };
        let store = store_with(&[
            (
                "clusterroles",
                json!({"metadata": {"name": "c"}, "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]}, {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]}]}),
            ),
            (
                "clusterrolebindings",
                json!({"metadata": {"name": "c"}, "roleRef": {"kind": "ClusterRole", "name": "c"}, "subjects": [{"kind": "ServiceAccount", "namespace": "fb", "name": "runner"}]}),
            ),
            (
                "roles",
                json!({"metadata": {"name": "r", "namespace": "kube-system"}, "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["*"]}]}),
            ),
            (
                "rolebindings",
                json!({"metadata": {"name": "r", "namespace": "kube-system"}, "roleRef": {"kind": "Role", "name": "r"}, "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": "fb"}]}),
            ),
        ]);
        assert!(allows(&store, &user, &attrs("list", "", "nodes", "", "", "")));
        assert!(!allows(&store, &user, &attrs("patch", "", "nodes", "", "", "worker-0")));
        assert!(allows(&store, &user, &attrs("create", "", "pods", "eviction", "ns1", "p")));
        assert!(!allows(&store, &user, &attrs("create", "", "pods", "", "ns1", "p")), "a subresource's rule is not the resource's");
        assert!(allows(&store, &user, &attrs("delete", "coordination.k8s.io", "leases", "", "kube-system", "fleetboot")));
        assert!(
            !allows(&store, &user, &attrs("get", "coordination.k8s.io", "leases", "", "default", "fleetboot")),
            "a Role binds in its namespace only"
        );
        let other = User { name: "someone".into(), groups: vec!["system:authenticated".into()] };
        assert!(!allows(&store, &other, &attrs("list", "", "nodes", "", "", "")));
        assert_eq!(
            forbidden(&user, &attrs("patch", "", "nodes", "", "", "worker-0"))["message"],
            "nodes \"worker-0\" is forbidden: User \"system:serviceaccount:fb:runner\" cannot patch resource \"nodes\" in API group \"\" at the cluster scope"
        );
        assert_eq!(
            forbidden(&user, &attrs("list", "coordination.k8s.io", "leases", "", "medik8s-leases", ""))["message"],
            "leases.coordination.k8s.io is forbidden: User \"system:serviceaccount:fb:runner\" cannot list resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"medik8s-leases\""
        );
    }
}
