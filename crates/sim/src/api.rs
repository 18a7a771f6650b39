//! The simulated cluster's Kubernetes API over plain HTTP on loopback: discovery, list/get,
//! create, update, patch, delete, status subresources, watch with bookmarks and 410 Gone,
//! `Status` errors, and server-side Tables for kubectl.
//!
//! One file, past 500 lines: the API server's routing and verbs are read together; storage is `store.rs`, exec `exec.rs`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};

use super::selector::{FieldSelector, LabelSelector};
use super::store::{Filter, PatchType, Store, StoreError, visible};
use super::table;
use super::types::{self, ResourceType};
use super::util::percent_decode;

/// The `/sim/v1` endpoint: method, path under it, JSON body → the answer or a status and message.
pub type ControlEndpoint = dyn Fn(&Method, &str, &Value) -> Result<Value, (u16, String)> + Send + Sync;

/// What the API server shares with the simulated controllers.
pub struct ApiState {
    pub store: Mutex<Store>,
    /// While set, new connections are dropped and open watches are cut (masters rebooting).
    pub outage: AtomicBool,
    /// While set, requests are accepted and not answered until it clears (a stalled API
    /// server: the failure a client only notices through its own timeouts).
    pub stalled: AtomicBool,
    pub bookmark_interval: Duration,
    /// Pod logs, by "namespace/name".
    pub logs: Mutex<std::collections::HashMap<String, String>>,
    /// Cuts every open watch stream when sent to (fault injection).
    pub cut_watches: broadcast::Sender<()>,
    /// Ends every open watch stream, its connection kept (fault injection): as a watch ends at
    /// its timeout (kube-apiserver: the request's `timeoutSeconds`, else a random one between
    /// `--min-request-timeout` and twice it; k8s.io/apiserver pkg/endpoints/handlers/get.go
    /// `ListResource`), the client's other requests on that connection unharmed.
    pub end_watches: broadcast::Sender<()>,
    /// The fault-injection endpoint under /sim/v1: the cluster's, set when it starts (the API
    /// server does not know the cluster model; the cluster knows it).
    pub control: std::sync::OnceLock<Box<ControlEndpoint>>,
    /// Fault injection: the next N requests of a method on a resource (`"PATCH nodes"`) are
    /// answered 500 InternalError "etcdserver: request timed out", as an API server whose etcd
    /// did not answer in time (a 500 no client retries by itself, unlike 429/503/504). `"GET R"`
    /// is every GET of R (a get, a list or a watch); `"LIST R"` only a list (a GET of the
    /// collection that is not a watch), as the traffic names it: a watch that goes on while
    /// its relist fails.
    pub failing_requests: Mutex<std::collections::HashMap<String, u32>>,
    /// Fault injection, no rule: every watch of a resource (by its plural, `"nodes"`) fails
    /// while set, however often a client asks: an API server whose etcd keeps timing out
    /// (500 InternalError "etcdserver: request timed out", the answer `failing_requests` gives).
    /// The watch is counted in the traffic (`"WATCH nodes"`) as any other; lists and gets of
    /// the resource answer as usual.
    pub failing_watches: Mutex<std::collections::HashMap<String, WatchFault>>,
    /// Fault injection: requests of a method on a resource (`"DELETE namespaces"`) are taken
    /// and not answered while held (one slow call of a client, the rest of the API answering).
    pub held_requests: Mutex<std::collections::HashSet<String>>,
    /// Fault injection: the next N requests of a method on a resource (`"POST configmaps"`) are
    /// carried out and answered 504 instead of their result (a write that landed, its answer lost).
    pub lost_answers: Mutex<std::collections::HashMap<String, u32>>,
    /// `pods/exec` (the `exec` module).
    pub exec: Arc<super::exec::ExecState>,
    /// What clients asked of the API, by `"METHOD resource[/subresource]"` (`"LIST nodes"` for
    /// a list, `"WATCH nodes"` for watch streams): the load a client puts on the API server (`GET /sim/v1/traffic`). Only
    /// requests over HTTP count: the simulated kubelets and operators write to the store directly.
    pub traffic: Mutex<std::collections::BTreeMap<String, Traffic>>,
    /// `--rbac`: the bearer tokens; when set, every request is authenticated and authorized
    /// from the stored RBAC objects (rbac.rs).
    pub tokens: std::sync::OnceLock<super::rbac::Tokens>,
    /// `--rbac`: the API over HTTPS, and the CA (PEM) that signed its certificate.
    pub tls: std::sync::OnceLock<(tokio_rustls::TlsAcceptor, String)>,
    /// ServiceAccount tokens issued through the TokenRequest API (serviceaccounts.rs).
    pub issued_tokens: Mutex<std::collections::HashMap<String, super::rbac::User>>,
    /// `--state-dir`: where the store is kept across a simulated restart (persist.rs).
    pub state_dir: std::sync::OnceLock<std::path::PathBuf>,
}

/// One kind of request's load: requests (watch streams opened), the bytes of the answers, for
/// watches the events sent, and the bytes of the requests' bodies (`Content-Length`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    pub requests: u64,
    pub bytes: u64,
    pub events: u64,
    pub sent: u64,
}

impl ApiState {
    fn count(&self, key: &str, requests: u64, bytes: u64, events: u64) {
        let mut traffic = self.traffic.lock().unwrap();
        let entry = traffic.entry(key.to_owned()).or_default();
        entry.requests += requests;
        entry.bytes += bytes;
        entry.events += events;
    }

    pub fn new(history_limit: usize, bookmark_interval: Duration) -> Arc<ApiState> {
        Arc::new(ApiState {
            store: Mutex::new(Store::new(history_limit)),
            outage: AtomicBool::new(false),
            stalled: AtomicBool::new(false),
            bookmark_interval,
            logs: Default::default(),
            cut_watches: broadcast::channel(4).0,
            end_watches: broadcast::channel(4).0,
            control: std::sync::OnceLock::new(),
            failing_requests: Default::default(),
            failing_watches: Default::default(),
            held_requests: Default::default(),
            lost_answers: Default::default(),
            traffic: Default::default(),
            exec: Default::default(),
            tokens: std::sync::OnceLock::new(),
            tls: std::sync::OnceLock::new(),
            state_dir: std::sync::OnceLock::new(),
            issued_tokens: Default::default(),
        })
    }
}

/// How a watch fails under [`ApiState::failing_watches`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchFault {
    /// The watch request itself is answered 500.
    Status,
    /// The stream opens (200) and carries one ERROR event with the 500 Status, then ends (a
    /// watch that breaks as soon as it starts).
    ErrorEvent,
    /// The stream opens (200) and carries one ERROR event with 410 Expired "too old resource
    /// version", then ends: what a real API server answers a watch from a resourceVersion its
    /// history no longer holds (the store's own `Gone`, below). The client must list again
    /// (Kubernetes docs, "API Concepts", Efficient detection of changes: "clients must handle
    /// the case by recognizing the status code 410 Gone, clearing their local cache, performing
    /// a new get or list operation, and starting the watch from the resourceVersion that was
    /// returned"); every watch answered so forces a relist each time.
    Gone,
}

impl WatchFault {
    pub fn parse(name: &str) -> Result<WatchFault, String> {
        match name {
            "status" => Ok(WatchFault::Status),
            "error-event" => Ok(WatchFault::ErrorEvent),
            "gone" => Ok(WatchFault::Gone),
            other => Err(format!("unknown watch fault {other:?}: \"status\", \"error-event\" or \"gone\"")),
        }
    }
}

/// The Status a failing watch carries: an API server whose etcd did not answer in time.
fn etcd_timeout() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "etcdserver: request timed out", "reason": "InternalError", "code": 500})
}

type Body = BoxBody<Bytes, Infallible>;

fn json_response(code: StatusCode, value: &Value) -> Response<Body> {
    encoded_response(code, value)
}

fn encoded_response(code: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(value).expect("serializes"))).boxed())
        .expect("response")
}

fn error_response(error: &StoreError) -> Response<Body> {
    let (code, _) = error.code_and_reason();
    json_response(StatusCode::from_u16(code).expect("valid code"), &error.status())
}

fn status_error(code: u16, reason: &str, message: String) -> Response<Body> {
    json_response(
        StatusCode::from_u16(code).expect("valid code"),
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}),
    )
}

/// Serves until `shutdown` resolves. Each connection is its own task.
pub async fn serve(listener: TcpListener, state: Arc<ApiState>, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(_) => continue,
            },
            () = &mut shutdown => return,
        };
        if state.outage.load(Ordering::SeqCst) {
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        // An outage (or a cut) closes kept-alive connections too, as a dead API server would.
        let cut = state.cut_watches.subscribe();
        tokio::spawn(async move {
            // `--rbac`: HTTPS, as kubectl sends a bearer token over TLS only (client-go
            // clientcmd reads a user's credentials only for a TLS transport).
            // A connection that starts with a TLS handshake record (0x16) is HTTPS; plain HTTP
            // still reaches the control endpoint (tests, the demo), and gets 401 elsewhere.
            let mut first = [0u8; 1];
            let tls = matches!(stream.peek(&mut first).await, Ok(1) if first[0] == 0x16);
            match state.tls.get().map(|(acceptor, _)| acceptor.clone()).filter(|_| tls) {
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve_connection(stream, state, cut).await;
                    }
                }
                None => serve_connection(stream, state, cut).await,
            }
        });
    }
}

async fn serve_connection<I>(io: I, state: Arc<ApiState>, mut cut: broadcast::Receiver<()>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let cut_this = Arc::new(tokio::sync::Notify::new());
    let cut_handle = cut_this.clone();
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        let state = state.clone();
        req.extensions_mut().insert(super::exec::ConnectionCut(cut_handle.clone()));
        async move {
            // The fault-injection endpoint answers even while the API is stalled.
            if !req.uri().path().starts_with("/sim/") {
                while state.stalled.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            Ok::<_, Infallible>(handle(req, state).await)
        }
    });
    let connection = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(io), service).with_upgrades();
    tokio::select! {
        _ = connection => {}
        _ = cut.recv() => {}
        () = cut_this.notified() => {}
    }
}

/// Whether a `Host` header names this machine's loopback (`localhost`, `127.x.y.z` or `[::1]`,
/// with or without a port). The control endpoint answers only such requests: a page in the
/// admin's browser that reaches the simulation through a DNS name rebound to 127.0.0.1 still
/// sends that name as its Host (the usual defence against DNS rebinding).
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((inside, port)) if port.is_empty() || port.strip_prefix(':').is_some_and(|p| p.parse::<u16>().is_ok()) => inside,
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if port.parse::<u16>().is_ok() => name,
            Some(_) => return false,
            None => host,
        },
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether a `Content-Type` is JSON (`application/json`, parameters allowed). A browser sends a
/// cross-origin POST without a CORS preflight only as `text/plain`, form or multipart
/// (the Fetch standard's "CORS-safelisted request-header"), so requiring JSON keeps a web page
/// from posting faults.
fn json_content_type(value: &str) -> bool {
    value.split(';').next().is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: Option<&str>) -> Query {
        Query(
            query
                .unwrap_or_default()
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("1" | "true"))
    }
}

/// A parsed resource path.
struct Target {
    resource: &'static ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

enum Route {
    Version,
    Discovery(Value),
    Resource(Target),
    NotFound,
}

fn route(path: &str, port_hint: &str) -> Route {
    let parts: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match parts.as_slice() {
        ["version"] => return Route::Version,
        ["api"] => {
            return Route::Discovery(
                json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": port_hint}]}),
            );
        }
        ["apis"] => return Route::Discovery(group_list()),
        ["api", "v1"] => return Route::Discovery(resource_list("", "v1")),
        ["apis", g, v] if types::groups().iter().any(|(gg, vv)| gg == g && vv == v) => return Route::Discovery(resource_list(g, v)),
        ["apis", g] => {
            let versions = types::versions_of(g);
            return if versions.is_empty() { Route::NotFound } else { Route::Discovery(api_group(g, &versions)) };
        }
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Route::NotFound,
    };
    // namespaces/{ns}/{plural}/... is namespaced unless the third part is not a plural
    // (then it is the Namespace object itself, or its subresource).
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, tail @ ..] if types::find(group, version, plural).is_some() => (Some(ns.to_string()), {
            let mut v = vec![*plural];
            v.extend_from_slice(tail);
            v
        }),
        other => (None, other.to_vec()),
    };
    let Some(resource) = rest.first().and_then(|p| types::find(group, version, p)) else { return Route::NotFound };
    if resource.namespaced != namespace.is_some() && !(resource.namespaced && rest.len() == 1) {
        return Route::NotFound;
    }
    Route::Resource(Target {
        resource,
        namespace,
        name: rest.get(1).map(|s| s.to_string()),
        subresource: rest.get(2).map(|s| s.to_string()),
    })
}

/// One group's discovery document: every version it serves, the first preferred.
fn api_group(group: &str, versions: &[&str]) -> Value {
    let listed: Vec<Value> = versions.iter().map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v})).collect();
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": listed, "preferredVersion": listed[0]})
}

fn group_list() -> Value {
    let mut names: Vec<&str> = Vec::new();
    for (g, _) in types::groups() {
        if !names.contains(&g) {
            names.push(g);
        }
    }
    let groups: Vec<Value> = names
        .into_iter()
        .map(|g| {
            let mut group = api_group(g, &types::versions_of(g));
            let object = group.as_object_mut().expect("an object");
            object.remove("kind");
            object.remove("apiVersion");
            group
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_list(group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for t in types::TYPES.iter().filter(|t| t.group == group && t.version == version) {
        // The access reviews are answers, not objects: their REST storage is a `Creater` only
        // (kubernetes `pkg/registry/authorization/selfsubjectaccessreview/rest.go`), so
        // discovery lists `create` alone and `kubectl get` refuses them.
        let verbs: &[&str] =
            if t.group == "authorization.k8s.io" { &["create"] } else { &["create", "delete", "get", "list", "patch", "update", "watch"] };
        resources.push(json!({
            "name": t.plural, "singularName": t.singular, "namespaced": t.namespaced, "kind": t.kind,
            "verbs": verbs,
            "shortNames": t.short_names,
        }));
        for sub in t.subresources {
            let (kind, verbs) = match *sub {
                "log" => ("Pod", json!(["get"])),
                "eviction" => ("Eviction", json!(["create"])),
                "scale" => ("Scale", json!(["get", "patch", "update"])),
                "token" => ("TokenRequest", json!(["create"])),
                _ => (t.kind, json!(["get", "patch", "update"])),
            };
            let mut resource = json!({"name": format!("{}/{sub}", t.plural), "singularName": "", "namespaced": t.namespaced, "kind": kind, "verbs": verbs});
            if *sub == "eviction" {
                // The real server names the Eviction's group and version; kubectl drain evicts
                // only when it finds them (kubectl `pkg/drain/drain.go`, CheckEvictionSupport),
                // else it deletes the pods, past every PodDisruptionBudget.
                resource["group"] = json!("policy");
                resource["version"] = json!("v1");
            }
            if *sub == "token" {
                resource["group"] = json!("authentication.k8s.io");
                resource["version"] = json!("v1");
            }
            if *sub == "scale" {
                // A Scale is autoscaling/v1 whatever the object's group (kubectl scale reads it so).
                resource["group"] = json!("autoscaling");
                resource["version"] = json!("v1");
            }
            resources.push(resource);
        }
    }
    let group_version = if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}

fn wants_table(req: &Request<Incoming>) -> bool {
    req.headers().get("accept").and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("as=Table"))
}

/// The largest request body served, kube-apiserver's default (`--max-resource-write-bytes`,
/// 3 MiB): past it the answer is 413 and the body is not read further.
pub const MAX_REQUEST_BODY: usize = 3 * 1024 * 1024;

async fn read_body(req: Request<Incoming>) -> Result<Bytes, Response<Body>> {
    match http_body_util::Limited::new(req.into_body(), MAX_REQUEST_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(status_error(413, "RequestEntityTooLarge", format!("Request entity too large: limit is {MAX_REQUEST_BODY}")))
        }
        Err(e) => Err(status_error(400, "BadRequest", format!("failed to read the body: {e}"))),
    }
}

async fn read_json(req: Request<Incoming>) -> Result<Value, Response<Body>> {
    let content_type = req.headers().get("content-type").and_then(|h| h.to_str().ok()).unwrap_or_default().to_owned();
    if content_type.starts_with(super::protobuf::CONTENT_TYPE) {
        // Only DeleteOptions are decoded (`protobuf`); a client sends the rest as JSON again.
        return Err(status_error(
            415,
            "UnsupportedMediaType",
            format!("the simulation reads this body as JSON only, not {content_type}: send it with Content-Type: application/json"),
        ));
    }
    let bytes = read_body(req).await?;
    serde_json::from_slice(&bytes).map_err(|e| status_error(400, "BadRequest", format!("the body is not JSON: {e}")))
}

async fn handle(req: Request<Incoming>, state: Arc<ApiState>) -> Response<Body> {
    let host = req.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1").to_owned();
    let query = Query::parse(req.uri().query());
    if let Some(rest) = req.uri().path().strip_prefix("/sim/v1/") {
        let header = |name: &str| req.headers().get(name).and_then(|h| h.to_str().ok());
        if !header("host").is_some_and(loopback_host) {
            return status_error(
                403,
                "Forbidden",
                "the simulation's control endpoint answers only a loopback Host (localhost, 127.x.y.z or [::1])".into(),
            );
        }
        if !header("content-type").is_some_and(json_content_type) {
            return status_error(
                415,
                "UnsupportedMediaType",
                "the simulation's control endpoint takes only Content-Type: application/json".into(),
            );
        }
        let rest = rest.to_owned();
        let method = req.method().clone();
        let body = match read_body(req).await {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Value::Null,
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(value) => value,
                Err(e) => return status_error(400, "BadRequest", format!("the body is not JSON: {e}")),
            },
            Err(response) => return response,
        };
        let Some(control) = state.control.get() else {
            return status_error(503, "ServiceUnavailable", "the simulation is not started".into());
        };
        return match control(&method, &rest, &body) {
            Ok(value) => json_response(StatusCode::OK, &value),
            Err((code, message)) => status_error(code, "BadRequest", message),
        };
    }
    // `--rbac`: who is asking (401 for no known token), then whether RBAC allows it (rbac.rs).
    let user = match state.tokens.get() {
        None => None,
        Some(tokens) => {
            let header = req.headers().get("authorization").and_then(|h| h.to_str().ok());
            let issued = || {
                let token = header?.strip_prefix("Bearer ")?.trim();
                state.issued_tokens.lock().unwrap().get(token).cloned()
            };
            match tokens.authenticate(header).cloned().or_else(issued) {
                Some(user) => Some(user),
                None => return json_response(StatusCode::UNAUTHORIZED, &super::rbac::unauthorized()),
            }
        }
    };
    if let Some((namespace, pod)) = super::exec::exec_target(req.uri().path()) {
        // RBAC: exec is `create` on pods/exec, over SPDY and WebSockets alike (Kubernetes 1.31+,
        // AuthorizePodWebsocketUpgradeCreatePermission).
        if let Some(user) = &user {
            let attributes = super::rbac::Attributes {
                verb: "create".into(),
                resource: "pods".into(),
                subresource: "exec".into(),
                namespace: namespace.clone(),
                name: pod.clone(),
                ..Default::default()
            };
            if !super::rbac::allows(&state.store.lock().unwrap(), user, &attributes) {
                return json_response(StatusCode::FORBIDDEN, &super::rbac::forbidden(user, &attributes));
            }
        }
        // Fault injection (`hold-requests` of method EXEC on pods/exec): the exec waits before its
        // pod is looked up, so a test can change the pod under a client that already chose it.
        if state.held_requests.lock().unwrap().contains("EXEC pods/exec") {
            state.exec.held.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            while state.held_requests.lock().unwrap().contains("EXEC pods/exec") {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            state.exec.held.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
        // Counted as one request: the streams' bytes are the exec module's (not counted yet).
        state.count("EXEC pods/exec", 1, 0, 0);
        let pods = types::find("", "v1", "pods").expect("pods");
        let found = state.store.lock().unwrap().get(pods, Some(&namespace), &pod).ok().map(|p| (*p).clone());
        return super::exec::handle(req, state.exec.clone(), found, namespace, pod).await;
    }
    match route(req.uri().path(), &host) {
        Route::Resource(target) if target.resource.plural == "selfsubjectaccessreviews" => access_review(req, user.as_ref(), &state).await,
        Route::Version => json_response(
            StatusCode::OK,
            &json!({
            "major": "1", "minor": "33", "gitVersion": "v1.33.0+fleetboot-sim", "gitCommit": "", "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"}),
        ),
        Route::Discovery(body) => json_response(StatusCode::OK, &body),
        Route::NotFound => {
            status_error(404, "NotFound", format!("the server could not find the requested resource ({})", req.uri().path()))
        }
        Route::Resource(target) => match user.as_ref().and_then(|u| authorize(&req, &target, &query, u, &state)) {
            Some(denied) => denied,
            None => handle_resource(req, target, query, state).await,
        },
    }
}

/// The 403 of a request RBAC does not allow (rbac.rs), or None.
fn authorize(
    req: &Request<Incoming>,
    target: &Target,
    query: &Query,
    user: &super::rbac::User,
    state: &ApiState,
) -> Option<Response<Body>> {
    let attributes = super::rbac::Attributes {
        verb: super::rbac::Attributes::verb_of(req.method().as_str(), target.name.is_some(), query.flag("watch")).to_owned(),
        group: target.resource.group.to_owned(),
        resource: target.resource.plural.to_owned(),
        subresource: target.subresource.clone().unwrap_or_default(),
        namespace: target.namespace.clone().unwrap_or_default(),
        name: target.name.clone().unwrap_or_default(),
    };
    let allowed = super::rbac::allows(&state.store.lock().unwrap(), user, &attributes);
    if !allowed {
        // Counted as kube-apiserver's `apiserver_request_total` counts it, by verb, resource and
        // code (k8s.io/apiserver pkg/endpoints/metrics/metrics.go): here "DENIED verb resource".
        state.count(&format!("DENIED {} {}", attributes.verb, attributes.resource), 1, 0, 0);
    }
    (!allowed).then(|| json_response(StatusCode::FORBIDDEN, &super::rbac::forbidden(user, &attributes)))
}

/// A SelfSubjectAccessReview: answered, never stored (without `--rbac`, everything is allowed).
async fn access_review(req: Request<Incoming>, user: Option<&super::rbac::User>, state: &ApiState) -> Response<Body> {
    if req.method() != Method::POST {
        return status_error(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({})", req.method()),
        );
    }
    let body = match read_json(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let answer = match user {
        Some(user) => super::rbac::review(&state.store.lock().unwrap(), user, body),
        None => {
            let mut body = body;
            body["status"] = json!({"allowed": true, "reason": "no authorization in this simulation (start it with --rbac)"});
            body
        }
    };
    json_response(StatusCode::CREATED, &answer)
}

/// The list or watch filter of a request, or the 400 that says which selector is malformed.
fn parse_filter(target: &Target, query: &Query) -> Result<Filter, Box<Response<Body>>> {
    let bad_request = |e| Box::new(status_error(400, "BadRequest", e));
    let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or_default()).map_err(bad_request)?;
    let fields = FieldSelector::parse(query.get("fieldSelector").unwrap_or_default()).map_err(bad_request)?;
    Ok(Filter { namespace: target.namespace.clone(), labels, fields })
}

async fn handle_resource(req: Request<Incoming>, target: Target, query: Query, state: Arc<ApiState>) -> Response<Body> {
    let t = target.resource;
    let sub = target.subresource.as_deref();
    if let Some(sub) = sub
        && !t.subresources.contains(&sub)
    {
        return status_error(404, "NotFound", format!("{} has no subresource {sub:?}", t.plural));
    }
    let method = req.method().clone();
    while state.held_requests.lock().unwrap().contains(&format!("{method} {}", t.plural)) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A list is not a get: "LIST pods" is one request whatever it returns, "GET pods" one per pod.
    let verb = if method == Method::GET && target.name.is_none() { "LIST" } else { method.as_str() };
    {
        // "GET R" fails every GET of R; "LIST R" only its lists (not a watch).
        let list = verb == "LIST" && !query.flag("watch");
        let keys = [Some(method.as_str()), list.then_some("LIST")].map(|v| v.map(|v| format!("{v} {}", t.plural)));
        let mut failing = state.failing_requests.lock().unwrap();
        let hit = keys.into_iter().flatten().find(|key| failing.get(key).is_some_and(|n| *n > 0));
        if let Some(left) = hit.and_then(|key| failing.get_mut(&key)) {
            *left -= 1;
            return status_error(500, "InternalError", "etcdserver: request timed out".into());
        }
    }
    let kind = format!("{verb} {}{}", t.plural, sub.map(|s| format!("/{s}")).unwrap_or_default());
    if method == Method::GET && target.name.is_none() && query.flag("watch") {
        state.count(&format!("WATCH {}", t.plural), 1, 0, 0);
        let fault = state.failing_watches.lock().unwrap().get(t.plural).copied();
        return match fault {
            Some(WatchFault::Status) => json_response(StatusCode::INTERNAL_SERVER_ERROR, &etcd_timeout()),
            Some(WatchFault::ErrorEvent) => Response::builder()
                .header("content-type", "application/json")
                .body(Full::new(watch_line("ERROR", &etcd_timeout())).boxed())
                .expect("response"),
            Some(WatchFault::Gone) => {
                let requested = query.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
                let oldest = state.store.lock().unwrap().resource_version() + 1;
                let gone = StoreError::Gone { requested, oldest };
                Response::builder()
                    .header("content-type", "application/json")
                    .body(Full::new(watch_line("ERROR", &gone.status())).boxed())
                    .expect("response")
            }
            None => watch(t, &target, &query, state),
        };
    }
    let counted = state.clone();
    let lost_key = format!("{method} {}", t.plural);
    let sent = hyper::body::Body::size_hint(req.body()).exact().unwrap_or(0);
    let response = serve_resource(req, &method, target, query, state).await;
    let bytes = hyper::body::Body::size_hint(response.body()).exact().unwrap_or(0);
    counted.count(&kind, 1, bytes, 0);
    counted.traffic.lock().unwrap().entry(kind).or_default().sent += sent;
    if let Some(left) = counted.lost_answers.lock().unwrap().get_mut(&lost_key).filter(|n| **n > 0) {
        *left -= 1;
        // Fault injection, no rule: the change stands, the client never learns it (an API
        // server's "Timeout: request did not complete within requested timeout").
        return status_error(504, "Timeout", "Timeout: request did not complete within requested timeout".into());
    }
    response
}

async fn serve_resource(req: Request<Incoming>, method: &Method, target: Target, query: Query, state: Arc<ApiState>) -> Response<Body> {
    let t = target.resource;
    let ns = target.namespace.as_deref();
    let sub = target.subresource.as_deref();
    match (method, &target.name, sub) {
        (&Method::GET, None, _) => {
            let filter = match parse_filter(&target, &query) {
                Ok(f) => f,
                Err(r) => return *r,
            };
            let limit = query.get("limit").and_then(|l| l.parse().ok()).filter(|l| *l > 0);
            let page = match state.store.lock().unwrap().list_paged(t, &filter, limit, query.get("continue").filter(|c| !c.is_empty())) {
                Ok(page) => page,
                Err(e) => return error_response(&e),
            };
            let mut metadata = json!({"resourceVersion": page.resource_version.to_string()});
            if let Some(token) = &page.continue_token {
                metadata["continue"] = json!(token);
                metadata["remainingItemCount"] = json!(page.remaining);
            }
            if wants_table(&req) {
                return json_response(StatusCode::OK, &table::table(t, &page.items, metadata));
            }
            // Written out from the stored objects: `json!` would first copy every item into a
            // new `Value` (a whole page of Nodes deep-copied, then encoded), a cost of the
            // simulation's that no API server has and that held up clients' paged lists.
            #[derive(serde::Serialize)]
            #[serde(rename_all = "camelCase")]
            struct List<'a> {
                kind: String,
                api_version: String,
                metadata: Value,
                items: Vec<&'a Value>,
            }
            let list = List {
                kind: format!("{}List", t.kind),
                api_version: t.api_version(),
                metadata,
                items: page.items.iter().map(|o| o.as_ref()).collect(),
            };
            encoded_response(StatusCode::OK, &list)
        }
        (&Method::GET, Some(name), Some("log")) => {
            let key = format!("{}/{name}", ns.unwrap_or_default());
            let pod = match state.store.lock().unwrap().get(t, ns, name) {
                Ok(pod) => pod,
                Err(e) => return error_response(&e),
            };
            // kubernetes `pkg/registry/core/pod/strategy.go`, `LogLocation`: a pod of more than
            // one container needs `container` named ("a container name must be specified for
            // pod %s, choose one of: %s"), and a named one must exist. The
            // `kubectl.kubernetes.io/default-container` annotation is kubectl's, not the API's.
            let containers: Vec<&str> = pod
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| c["name"].as_str())
                .collect();
            match query.get("container").filter(|c| !c.is_empty()) {
                None if containers.len() > 1 => {
                    return status_error(
                        400,
                        "BadRequest",
                        format!("a container name must be specified for pod {name}, choose one of: [{}]", containers.join(" ")),
                    );
                }
                Some(container) if !containers.contains(&container) => {
                    return status_error(400, "BadRequest", format!("container {container} is not valid for pod {name}"));
                }
                _ => {}
            }
            let text = state.logs.lock().unwrap().get(&key).cloned().unwrap_or_default();
            let text = match query.get("tailLines").and_then(|n| n.parse::<usize>().ok()) {
                Some(n) => {
                    let lines: Vec<&str> = text.lines().collect();
                    lines[lines.len().saturating_sub(n)..].join("\n") + "\n"
                }
                None => text,
            };
            Response::builder().header("content-type", "text/plain").body(Full::new(Bytes::from(text)).boxed()).expect("response")
        }
        (&Method::GET, Some(name), Some("scale")) => match state.store.lock().unwrap().get(t, ns, name) {
            Ok(object) => json_response(StatusCode::OK, &super::scale::of(&object)),
            Err(e) => error_response(&e),
        },
        (&Method::GET, Some(name), _) => match state.store.lock().unwrap().get(t, ns, name) {
            Ok(object) if wants_table(&req) => {
                let rv = object["metadata"]["resourceVersion"].clone();
                json_response(StatusCode::OK, &table::table(t, &[object], json!({"resourceVersion": rv})))
            }
            Ok(object) => json_response(StatusCode::OK, &object),
            Err(e) => error_response(&e),
        },
        (&Method::POST, None, _) => {
            let body = match read_json(req).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            if let Some(body_ns) = body.pointer("/metadata/namespace").and_then(Value::as_str)
                && Some(body_ns) != ns
            {
                return status_error(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                );
            }
            // The server assigns the uid of what a client creates (apiserver
            // `rest.FillObjectMetaSystemFields`); only the simulated controllers name their own.
            let mut body = body;
            if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("uid");
            }
            super::defaults::apply(t, &mut body);
            match state.store.lock().unwrap().create(t, ns, body) {
                Ok(object) => json_response(StatusCode::CREATED, &object),
                Err(e) => error_response(&e),
            }
        }
        (&Method::POST, Some(name), Some("eviction")) => evict(&state, ns.unwrap_or_default(), name),
        (&Method::POST, Some(name), Some("token")) => {
            // kubectl (`create token`) sends the TokenRequest as protobuf, which is not decoded
            // here: its spec's defaults apply (one hour, the API server's audience).
            let body = match read_body(req).await {
                Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({"spec": {}})),
                Err(r) => return r,
            };
            match super::serviceaccounts::token_request(&state.store, &state.issued_tokens, ns.unwrap_or_default(), name, &body) {
                Ok(answer) => json_response(StatusCode::CREATED, &answer),
                Err(e) => error_response(&e),
            }
        }
        (&Method::PUT, Some(name), sub) => {
            let body = match read_json(req).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            if sub == Some("scale") {
                return match super::scale::update(&mut state.store.lock().unwrap(), t, ns, name, &body) {
                    Ok(scale) => json_response(StatusCode::OK, &scale),
                    Err(e) => error_response(&e),
                };
            }
            let mut body = body;
            super::defaults::apply(t, &mut body);
            match state.store.lock().unwrap().update(t, ns, name, body, sub) {
                Ok(object) => json_response(StatusCode::OK, &object),
                Err(e) => error_response(&e),
            }
        }
        (&Method::PATCH, Some(name), sub) => {
            let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            let kind = match content_type.split(';').next().unwrap_or_default().trim() {
                "application/merge-patch+json" => PatchType::Merge,
                "application/json-patch+json" => PatchType::Json,
                "application/strategic-merge-patch+json" if t.group.is_empty() || t.group == "apps" || t.group == "policy" => {
                    PatchType::Strategic
                }
                "application/strategic-merge-patch+json" => {
                    return status_error(
                        415,
                        "UnsupportedMediaType",
                        format!("strategic merge patch is not supported for {}; use a merge patch", t.kind),
                    );
                }
                other => {
                    return status_error(
                        415,
                        "UnsupportedMediaType",
                        format!(
                            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {other:?})"
                        ),
                    );
                }
            };
            let body = match read_json(req).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            if sub == Some("scale") {
                return match super::scale::patch(&mut state.store.lock().unwrap(), t, ns, name, kind, &body) {
                    Ok(scale) => json_response(StatusCode::OK, &scale),
                    Err(e) => error_response(&e),
                };
            }
            match state.store.lock().unwrap().patch(t, ns, name, kind, &body, sub) {
                Ok(object) => json_response(StatusCode::OK, &object),
                Err(e) => error_response(&e),
            }
        }
        (&Method::DELETE, Some(name), None) => {
            // The body is a DeleteOptions (or nothing); its `preconditions` are checked against
            // the stored object, as the API server does (k8s.io/apiserver
            // pkg/registry/generic/registry/store.go Delete -> storage.Preconditions.Check in
            // pkg/storage/interfaces.go: a mismatched uid or resourceVersion fails with
            // "Precondition failed: ...", which InterpretDeleteError turns into 409 Conflict).
            let protobuf = req
                .headers()
                .get("content-type")
                .and_then(|h| h.to_str().ok())
                .is_some_and(|c| c.starts_with(super::protobuf::CONTENT_TYPE));
            let options = match read_body(req).await {
                Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Value::Null,
                // kubectl drain deletes a finished pod with a protobuf DeleteOptions.
                Ok(bytes) if protobuf => match super::protobuf::delete_options(&bytes) {
                    Ok(value) => value,
                    Err(e) => return status_error(400, "BadRequest", format!("the protobuf body cannot be read: {e}")),
                },
                Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                    Ok(value) => value,
                    Err(e) => return status_error(400, "BadRequest", format!("the body is not JSON: {e}")),
                },
                Err(response) => return response,
            };
            let preconditions = options.get("preconditions").filter(|p| !p.is_null());
            match state.store.lock().unwrap().delete_checked(t, ns, name, preconditions) {
                Ok(object) => json_response(StatusCode::OK, &object),
                Err(e) => error_response(&e),
            }
        }
        _ => status_error(405, "MethodNotAllowed", format!("the server does not allow this method on the requested resource ({method})")),
    }
}

fn watch_line(kind: &str, object: &Value) -> Bytes {
    event_line(kind, &serde_json::to_vec(object).expect("serializes"))
}

/// A watch event's line around its object already encoded as JSON: `{"object":...,"type":KIND}`
/// and a newline, the bytes `serde_json` gives the event as a JSON object (its keys in order),
/// without copying the object into an event value first. `kind` is one of the watch event
/// types (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR), which need no escaping.
fn event_line(kind: &str, object_json: &[u8]) -> Bytes {
    let mut line = Vec::with_capacity(object_json.len() + kind.len() + 23);
    line.extend_from_slice(b"{\"object\":");
    line.extend_from_slice(object_json);
    line.extend_from_slice(b",\"type\":\"");
    line.extend_from_slice(kind.as_bytes());
    line.extend_from_slice(b"\"}\n");
    Bytes::from(line)
}

fn watch(t: &'static ResourceType, target: &Target, query: &Query, state: Arc<ApiState>) -> Response<Body> {
    let filter = match parse_filter(target, query) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let since = match query.get("resourceVersion").filter(|v| !v.is_empty()) {
        Some(v) => match v.parse::<u64>() {
            Ok(rv) => Some(rv),
            Err(_) => return status_error(400, "BadRequest", format!("invalid resourceVersion {v:?}")),
        },
        None => None,
    };
    let bookmarks = query.flag("allowWatchBookmarks");
    let timeout = query.get("timeoutSeconds").and_then(|s| s.parse::<u64>().ok()).map(Duration::from_secs);
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(256);
    let start = state.store.lock().unwrap().watch(t, &filter, since);
    let mut cut = state.cut_watches.subscribe();
    let mut end = state.end_watches.subscribe();
    let interval = state.bookmark_interval;
    let key = format!("WATCH {}", t.plural);
    let type_key = t.key();
    tokio::spawn(async move {
        let send = |bytes: Bytes| {
            let tx = tx.clone();
            state.count(&key, 0, bytes.len() as u64, 1);
            async move { tx.send(Ok(Frame::data(bytes))).await.is_ok() }
        };
        let (initial, mut changes) = match start {
            Ok(pair) => pair,
            Err(e) => {
                // As a real API server: the stream opens, carries one ERROR event, and ends.
                let _ = send(watch_line("ERROR", &e.status())).await;
                return;
            }
        };
        let mut last_rv = since.unwrap_or(0);
        for (kind, object) in initial {
            last_rv = last_rv.max(object["metadata"]["resourceVersion"].as_str().and_then(|v| v.parse().ok()).unwrap_or(0));
            if !send(watch_line(kind.as_str(), &object)).await {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout.unwrap_or(Duration::from_secs(3600 * 24)));
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Ok(change) => {
                        last_rv = last_rv.max(change.rv);
                        // The change's object is encoded once for every watch that sends it.
                        if let Some((kind, _)) = visible(&change, &type_key, &filter)
                            && !send(event_line(kind.as_str(), change.object_json())).await {
                                return;
                            }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let gone = StoreError::Gone { requested: last_rv, oldest: last_rv + 1 };
                        let _ = send(watch_line("ERROR", &gone.status())).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = ticker.tick(), if bookmarks => {
                    let rv = state.store.lock().unwrap().resource_version().max(last_rv);
                    let bookmark = json!({"kind": t.kind, "apiVersion": t.api_version(), "metadata": {"resourceVersion": rv.to_string()}});
                    if !send(watch_line("BOOKMARK", &bookmark)).await {
                        return;
                    }
                }
                _ = cut.recv() => return,
                _ = end.recv() => return,
                () = &mut deadline => return,
            }
        }
    });
    Response::builder()
        .header("content-type", "application/json")
        .header("transfer-encoding", "chunked")
        .body(BodyExt::boxed(StreamBody::new(tokio_stream_from(rx))))
        .expect("response")
}

/// An mpsc receiver as a body stream.
fn tokio_stream_from(
    rx: mpsc::Receiver<Result<Frame<Bytes>, Infallible>>,
) -> impl futures::Stream<Item = Result<Frame<Bytes>, Infallible>> {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}

/// The pod eviction subresource: the budgets' verdict ([`super::eviction::evict_pod`]) as the
/// API answers it.
fn evict(state: &ApiState, namespace: &str, name: &str) -> Response<BoxBody<Bytes, Infallible>> {
    let (code, body) = match super::eviction::evict_pod(&mut state.store.lock().unwrap(), namespace, name) {
        Ok(()) => (201, json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})),
        Err(refusal) => refusal,
    };
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .expect("response")
}

#[cfg(test)]
mod tests {
    /// A watch event's line is byte for byte what encoding the event as a JSON value gives, for
    /// an object encoded once and shared by every watch.
    #[test]
    fn an_event_line_around_an_encoded_object_is_the_event_encoded_whole() {
        let object = serde_json::json!({"kind": "Node", "metadata": {"name": "w-0", "annotations": {"a/b": "q\"u\\o\te ü"}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "n": 1.5, "none": null}});
        for kind in ["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"] {
            let mut whole = serde_json::to_vec(&serde_json::json!({"type": kind, "object": object})).unwrap();
            whole.push(b'\n');
            assert_eq!(super::event_line(kind, &serde_json::to_vec(&object).unwrap()), whole, "{kind}");
            assert_eq!(super::watch_line(kind, &object), whole, "{kind}");
        }
    }

    use super::*;

    #[test]
    fn paths_route_to_resources() {
        let Route::Resource(t) = route("/api/v1/nodes/n1/status", "h") else { panic!() };
        assert_eq!((t.resource.kind, t.name.as_deref(), t.subresource.as_deref()), ("Node", Some("n1"), Some("status")));
        let Route::Resource(t) = route("/api/v1/namespaces/openshift-sdn", "h") else { panic!() };
        assert_eq!((t.resource.kind, t.name.as_deref()), ("Namespace", Some("openshift-sdn")));
        let Route::Resource(t) = route("/api/v1/namespaces/ns1/pods/p/log", "h") else { panic!() };
        assert_eq!((t.resource.kind, t.namespace.as_deref(), t.subresource.as_deref()), ("Pod", Some("ns1"), Some("log")));
        let Route::Resource(t) = route("/api/v1/pods", "h") else { panic!() };
        assert_eq!((t.resource.kind, t.namespace), ("Pod", None));
        let Route::Resource(t) = route("/apis/machineconfiguration.openshift.io/v1/machineconfigpools/worker", "h") else { panic!() };
        assert_eq!(t.resource.kind, "MachineConfigPool");
        assert!(matches!(route("/apis/nope/v1/things", "h"), Route::NotFound));
        assert!(matches!(route("/api/v1/namespaces/x/nodes", "h"), Route::NotFound), "nodes are not namespaced");
    }

    #[test]
    fn query_strings_decode() {
        let q = Query::parse(Some("labelSelector=node-role.kubernetes.io%2Fworker%3D&watch=1&x=a+b"));
        assert_eq!(q.get("labelSelector"), Some("node-role.kubernetes.io/worker="));
        assert!(q.flag("watch"));
        assert_eq!(q.get("x"), Some("a b"));
    }

    #[test]
    fn percent_decoding_works_on_bytes_and_leaves_what_is_no_escape() {
        // Raw UTF-8 right after '%' (a multi-byte character) once panicked on a str slice.
        assert_eq!(percent_decode("%é"), "%é");
        assert_eq!(percent_decode("a%€b%"), "a%€b%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%41%zz%c3%a9+"), "A%zzé ");
        // Escapes that make no UTF-8 decode lossily, never panic.
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
        let q = Query::parse(Some("labelSelector=%E2%9C%93&%=%%"));
        assert_eq!(q.get("labelSelector"), Some("✓"));
        assert_eq!(q.get("%"), Some("%%"));
    }

    #[test]
    fn the_control_endpoint_takes_only_loopback_hosts_and_json() {
        for good in ["127.0.0.1:6443", "127.3.2.1", "localhost:1", "LOCALHOST", "[::1]:80", "[::1]"] {
            assert!(loopback_host(good), "{good}");
        }
        for bad in ["evil.example:6443", "127.0.0.1.evil.example", "10.0.0.1:80", "", "[::1]x", "localhost:99999", "127.0.0.1:", "[::2]:1"]
        {
            assert!(!loopback_host(bad), "{bad}");
        }
        assert!(json_content_type("application/json") && json_content_type("Application/JSON; charset=utf-8"));
        for bad in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "", "application/jsonx"] {
            assert!(!json_content_type(bad), "{bad}");
        }
    }
}
