//! ServiceAccounts as a pod sees them: a token from the TokenRequest API and the cluster's CA
//! in every namespace, so that a process given both runs as a pod of that ServiceAccount would
//! (`KUBERNETES_SERVICE_HOST`/`_PORT`, `token`, `ca.crt`, `namespace`).
//!
//! Sources (Kubernetes, release-1.33):
//! - TokenRequest: `POST /api/v1/namespaces/NS/serviceaccounts/NAME/token` with an
//!   authentication.k8s.io/v1 TokenRequest; the ServiceAccount must exist (404 otherwise); the
//!   answer is the TokenRequest with `status.token` and `status.expirationTimestamp`, 201
//!   Created (pkg/registry/core/serviceaccount/storage/token.go `TokenREST.Create`; default
//!   `spec.expirationSeconds` 3600). `kubectl create token NAME -n NS` asks exactly this.
//! - Who the token is: `system:serviceaccount:NS:NAME`, in the groups `system:serviceaccounts`,
//!   `system:serviceaccounts:NS` and `system:authenticated`
//!   (staging/src/k8s.io/apiserver/pkg/authentication/serviceaccount/util.go `UserInfo`).
//! - The CA: the root CA publisher puts a ConfigMap `kube-root-ca.crt` with `ca.crt` in every
//!   namespace (pkg/controller/certificates/rootcacertpublisher/publisher.go); the kubelet
//!   projects it beside the token.
//!
//! The simulation's tokens are opaque strings, not signed JWTs: nothing here reads their claims.

use serde_json::{Value, json};

use std::collections::HashMap;
use std::sync::Mutex;

use super::rbac::User;
use super::store::{Store, StoreError};
use super::types;

/// The user a ServiceAccount's token authenticates as.
pub fn user_of(namespace: &str, name: &str) -> User {
    User {
        name: format!("system:serviceaccount:{namespace}:{name}"),
        groups: vec!["system:serviceaccounts".into(), format!("system:serviceaccounts:{namespace}"), "system:authenticated".into()],
    }
}

/// `POST .../serviceaccounts/NAME/token`: a new token for an existing ServiceAccount.
/// `issued` keeps who each token is (the API server's `issued_tokens`).
pub fn token_request(
    store: &Mutex<Store>,
    issued: &Mutex<HashMap<String, User>>,
    namespace: &str,
    name: &str,
    body: &Value,
) -> Result<Value, StoreError> {
    let accounts = types::find("", "v1", "serviceaccounts").expect("served");
    store.lock().unwrap().get(accounts, Some(namespace), name)?;
    let seconds = body.pointer("/spec/expirationSeconds").and_then(Value::as_u64).unwrap_or(3600);
    let token: String = (0..8).map(|_| super::store::random_suffix()).collect();
    issued.lock().unwrap().insert(token.clone(), user_of(namespace, name));
    let expires = std::time::SystemTime::now() + std::time::Duration::from_secs(seconds);
    let mut answer = body.clone();
    answer["apiVersion"] = json!("authentication.k8s.io/v1");
    answer["kind"] = json!("TokenRequest");
    answer["metadata"]["name"] = json!(name);
    answer["metadata"]["namespace"] = json!(namespace);
    answer["spec"]["expirationSeconds"] = json!(seconds);
    answer["status"] = json!({"token": token, "expirationTimestamp": humantime::format_rfc3339_seconds(expires).to_string()});
    Ok(answer)
}

/// The root CA publisher: `kube-root-ca.crt` in every namespace that has none, with the API
/// server's CA (`--rbac`: HTTPS).
pub fn publish_root_ca(store: &mut Store, ca_pem: &str) {
    let namespaces = types::find("", "v1", "namespaces").expect("served");
    let config_maps = types::find("", "v1", "configmaps").expect("served");
    let names: Vec<String> = store
        .list(namespaces, &Default::default(), None, None)
        .items
        .iter()
        .filter(|n| n.pointer("/metadata/deletionTimestamp").is_none())
        .map(|n| super::store::name_of(n).to_owned())
        .collect();
    for namespace in names {
        if store.get(config_maps, Some(&namespace), "kube-root-ca.crt").is_err() {
            let object = json!({"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": ca_pem}});
            let _ = store.create(config_maps, Some(&namespace), object);
        }
    }
}
