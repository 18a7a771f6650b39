//! Simulated BMCs: one Redfish service per node, over HTTPS with a certificate from the
//! simulation's own CA, on the node's address. Sessions (created, used, deleted, expired,
//! capped), Basic auth, `ComputerSystem.Reset` acting on the simulated node, optional task
//! monitors, and faults: 500s, expired sessions, silence, a narrower set of reset types.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::node::SimNode;

/// A CA and a server certificate signed by it, as PEM.
pub struct Pki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Pki {
    /// A fresh CA and one certificate valid for these addresses (and "localhost").
    pub fn generate(addresses: &[IpAddr]) -> Result<Pki, rcgen::Error> {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "fleetboot simulated BMC CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
        let mut params = CertificateParams::new(vec!["localhost".to_owned()])?;
        params.distinguished_name.push(DnType::CommonName, "fleetboot simulated BMC");
        params.subject_alt_names.extend(addresses.iter().map(|ip| SanType::IpAddress(*ip)));
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca)?;
        Ok(Pki { ca_pem: ca.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    pub fn server_config(&self) -> Result<rustls::ServerConfig, String> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| e.to_string())?;
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| e.to_string())
    }
}

/// Faults of one simulated BMC, switched through `/sim/v1/nodes/NAME/bmc`.
#[derive(Debug, Default)]
pub struct BmcFaults {
    /// The next N authenticated requests answer 500 (a busy or flaky BMC).
    pub errors: AtomicU32,
    /// The next N requests with a session token find their session gone (expired, or
    /// ended by a BMC reset) and answer 401.
    pub unauthorized: AtomicU32,
    /// Accepts connections and never answers.
    pub silent: AtomicBool,
    /// Resets answer 202 with a task monitor that completes a moment later.
    pub tasks: AtomicBool,
    /// Overrides `ResetType@Redfish.AllowableValues`.
    pub allowed_resets: Mutex<Option<Vec<String>>>,
    /// How the next reset request goes wrong after the reset took effect (once).
    pub after_reset: Mutex<Option<AfterReset>>,
}

/// A BMC that carries out a reset and then fails its client: the cases where a client cannot
/// tell whether the reset happened, and must not send it again blindly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterReset {
    /// Answers 503, as a BMC whose web server restarts with the host, or is overloaded, does.
    ServiceUnavailable,
    /// Closes the connection without an answer.
    DropConnection,
    /// Answers 202 with a task monitor that is gone (404) when asked.
    VanishingTask,
}

impl AfterReset {
    pub fn parse(name: &str) -> Result<AfterReset, String> {
        match name {
            "503" => Ok(AfterReset::ServiceUnavailable),
            "drop" => Ok(AfterReset::DropConnection),
            "task_404" => Ok(AfterReset::VanishingTask),
            other => Err(format!("unknown after_reset fault {other:?} (503, drop, task_404)")),
        }
    }
}

/// Marks a response that must not be sent: the connection is closed instead.
#[derive(Clone, Copy, Debug)]
struct CloseWithoutAnswer;

/// Request bodies past this are refused (413): a BMC's requests are a few hundred bytes.
const MAX_REQUEST_BODY: usize = 64 * 1024;

struct SessionEntry {
    id: u32,
    last_used: Instant,
}

pub struct SimBmc {
    pub node: Arc<SimNode>,
    pub addr: SocketAddr,
    pub username: String,
    password: String,
    pub faults: BmcFaults,
    /// Sessions idle longer than this are gone (the 401 that makes a client log in again).
    pub session_timeout: Mutex<Duration>,
    pub max_sessions: usize,
    sessions: Mutex<HashMap<String, SessionEntry>>,
    next_id: AtomicU32,
    tasks: Mutex<HashMap<u32, Instant>>,
}

pub const DEFAULT_RESETS: &[&str] = &["On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart", "PowerCycle"];

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn respond(status: u16, body: Value) -> Response<Body> {
    let bytes = if body.is_null() { Bytes::new() } else { Bytes::from(serde_json::to_vec(&body).expect("serializes")) };
    Response::builder()
        .status(StatusCode::from_u16(status).expect("valid status"))
        .header("content-type", "application/json")
        .header("OData-Version", "4.0")
        .body(Full::new(bytes).boxed())
        .expect("response")
}

fn redfish_error(status: u16, message_id: &str, message: &str) -> Response<Body> {
    respond(
        status,
        json!({"error": {"code": message_id, "message": message,
        "@Message.ExtendedInfo": [{"MessageId": message_id, "Message": message}]}}),
    )
}

impl SimBmc {
    pub fn new(node: Arc<SimNode>, port: u16, username: &str, password: &str) -> Arc<SimBmc> {
        let addr = SocketAddr::new(node.addr.ip(), port);
        Arc::new(SimBmc {
            node,
            addr,
            username: username.to_owned(),
            password: password.to_owned(),
            faults: BmcFaults::default(),
            session_timeout: Mutex::new(Duration::from_secs(300)),
            max_sessions: 4,
            sessions: Mutex::new(HashMap::new()),
            next_id: AtomicU32::new(1),
            tasks: Mutex::new(HashMap::new()),
        })
    }

    pub fn url(&self) -> String {
        format!("https://{}/redfish/v1/Systems/1", self.addr)
    }

    pub fn open_sessions(&self) -> usize {
        self.expire_idle();
        self.sessions.lock().unwrap().len()
    }

    /// Ends every session at once, as a BMC reboot or an admin would.
    pub fn expire_sessions(&self) {
        let count = std::mem::take(&mut *self.sessions.lock().unwrap()).len();
        if count > 0 {
            self.node.note("bmc-sessions-expired");
        }
    }

    fn expire_idle(&self) {
        let timeout = *self.session_timeout.lock().unwrap();
        let mut sessions = self.sessions.lock().unwrap();
        let before = sessions.len();
        sessions.retain(|_, s| s.last_used.elapsed() < timeout);
        if sessions.len() < before {
            self.node.note("bmc-sessions-expired");
        }
    }

    /// Serves HTTPS until the task is aborted.
    pub async fn serve(self: Arc<Self>, tls: Arc<rustls::ServerConfig>) -> std::io::Result<tokio::task::JoinHandle<()>> {
        let listener = TcpListener::bind(self.addr).await?;
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        Ok(tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                while connections.try_join_next().is_some() {}
                if self.faults.silent.load(Ordering::SeqCst) {
                    connections.spawn(async move {
                        let _held = stream;
                        std::future::pending::<()>().await;
                    });
                    continue;
                }
                let acceptor = acceptor.clone();
                let bmc = self.clone();
                connections.spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else { return };
                    let service = hyper::service::service_fn(move |req| {
                        let bmc = bmc.clone();
                        async move {
                            let response = bmc.handle(req).await;
                            match response.extensions().get::<CloseWithoutAnswer>() {
                                // An error from the service makes hyper drop the connection unanswered.
                                Some(_) => Err(std::io::Error::other("closed without an answer (simulated fault)")),
                                None => Ok(response),
                            }
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(tls), service).await;
                });
            }
        }))
    }

    fn authenticated(&self, req: &Request<hyper::body::Incoming>) -> bool {
        self.expire_idle();
        if let Some(token) = req.headers().get("X-Auth-Token").and_then(|v| v.to_str().ok()) {
            if let Some(session) = self.sessions.lock().unwrap().get_mut(token) {
                session.last_used = Instant::now();
                return true;
            }
            return false;
        }
        let Some(basic) = req.headers().get("Authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Basic ")) else {
            return false;
        };
        let decoded = data_encoding::BASE64.decode(basic.trim().as_bytes()).ok().and_then(|b| String::from_utf8(b).ok());
        decoded.is_some_and(|d| d == format!("{}:{}", self.username, self.password))
    }

    async fn handle(self: Arc<Self>, req: Request<hyper::body::Incoming>) -> Response<Body> {
        let method = req.method().clone();
        let path = req.uri().path().trim_end_matches('/').to_owned();
        let authenticated = self.authenticated(&req);
        let token = req.headers().get("X-Auth-Token").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body: Value = match http_body_util::Limited::new(req.into_body(), MAX_REQUEST_BODY).collect().await {
            Ok(collected) => serde_json::from_slice(&collected.to_bytes()).unwrap_or(Value::Null),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return redfish_error(
                    413,
                    "Base.1.8.GeneralError",
                    &format!("The request body is larger than {} KiB.", MAX_REQUEST_BODY / 1024),
                );
            }
            Err(_) => Value::Null,
        };
        // The service root and the login are open to everyone, as the Redfish spec says.
        match (method.as_str(), path.as_str()) {
            ("GET", "/redfish/v1") => return respond(200, self.service_root()),
            ("POST", "/redfish/v1/SessionService/Sessions") => return self.create_session(&body),
            _ => {}
        }
        if authenticated
            && let Some(token) = &token
            && self.faults.unauthorized.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
        {
            self.sessions.lock().unwrap().remove(token);
            self.node.note("bmc-session-expired");
            return redfish_error(401, "Base.1.8.NoValidSession", "There is no valid session established with the implementation.");
        }
        if !authenticated {
            return redfish_error(401, "Base.1.8.NoValidSession", "There is no valid session established with the implementation.");
        }
        let failing = self.faults.errors.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if failing {
            self.node.note("bmc-500");
            return redfish_error(500, "Base.1.8.InternalError", "The request failed due to an internal service error.");
        }
        match (method.as_str(), path.as_str()) {
            ("GET", "/redfish/v1/SessionService/Sessions") => {
                let members: Vec<Value> = self
                    .sessions
                    .lock()
                    .unwrap()
                    .values()
                    .map(|s| json!({"@odata.id": format!("/redfish/v1/SessionService/Sessions/{}", s.id)}))
                    .collect();
                respond(200, json!({"Members@odata.count": members.len(), "Members": members}))
            }
            ("DELETE", p) if p.starts_with("/redfish/v1/SessionService/Sessions/") => {
                let id = p.rsplit('/').next().unwrap_or_default().to_owned();
                let removed = {
                    let mut sessions = self.sessions.lock().unwrap();
                    let token = sessions.iter().find(|(_, s)| s.id.to_string() == id).map(|(t, _)| t.clone());
                    token.and_then(|t| sessions.remove(&t))
                };
                match removed {
                    Some(_) => {
                        self.node.note("bmc-session-deleted");
                        respond(204, Value::Null)
                    }
                    None => redfish_error(404, "Base.1.8.ResourceMissingAtURI", "No such session."),
                }
            }
            ("GET", "/redfish/v1/Systems") => respond(
                200,
                json!({
                "@odata.id": "/redfish/v1/Systems", "Name": "Computer System Collection",
                "Members@odata.count": 1, "Members": [{"@odata.id": "/redfish/v1/Systems/1"}]}),
            ),
            ("GET", "/redfish/v1/Systems/1") => respond(200, self.system()),
            ("POST", "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset") => self.reset(&body),
            ("GET", p) if p.starts_with("/redfish/v1/TaskService/Tasks/") => {
                let id: u32 = p.rsplit('/').next().and_then(|i| i.parse().ok()).unwrap_or(0);
                let Some(done_at) = self.tasks.lock().unwrap().get(&id).copied() else {
                    return redfish_error(404, "Base.1.8.ResourceMissingAtURI", "No such task.");
                };
                let running = Instant::now() < done_at;
                let state = if running { "Running" } else { "Completed" };
                respond(
                    if running { 202 } else { 200 },
                    json!({"@odata.id": p, "Id": id.to_string(), "TaskState": state, "TaskStatus": "OK"}),
                )
            }
            _ => redfish_error(404, "Base.1.8.ResourceMissingAtURI", &format!("{method} {path} is not served by this BMC")),
        }
    }

    fn service_root(&self) -> Value {
        json!({
            "@odata.id": "/redfish/v1", "Id": "RootService", "Name": "Root Service", "RedfishVersion": "1.15.0",
            "UUID": uuid::Uuid::new_v4().to_string(),
            "Systems": {"@odata.id": "/redfish/v1/Systems"},
            "SessionService": {"@odata.id": "/redfish/v1/SessionService"},
            "Links": {"Sessions": {"@odata.id": "/redfish/v1/SessionService/Sessions"}},
        })
    }

    fn create_session(&self, body: &Value) -> Response<Body> {
        if body["UserName"].as_str() != Some(self.username.as_str()) || body["Password"].as_str() != Some(self.password.as_str()) {
            self.node.note("bmc-login-refused");
            return redfish_error(401, "Base.1.8.NoValidSession", "Invalid username or password.");
        }
        self.expire_idle();
        let mut sessions = self.sessions.lock().unwrap();
        if sessions.len() >= self.max_sessions {
            return redfish_error(
                503,
                "Base.1.8.SessionLimitExceeded",
                "The session establishment failed due to the number of simultaneous sessions exceeding the limit of the implementation.",
            );
        }
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let token = uuid::Uuid::new_v4().simple().to_string();
        sessions.insert(token.clone(), SessionEntry { id, last_used: Instant::now() });
        drop(sessions);
        self.node.note("bmc-session-created");
        let location = format!("/redfish/v1/SessionService/Sessions/{id}");
        let mut response = respond(201, json!({"@odata.id": location, "Id": id.to_string(), "UserName": self.username}));
        response.headers_mut().insert("X-Auth-Token", token.parse().expect("header value"));
        response.headers_mut().insert("Location", location.parse().expect("header value"));
        response
    }

    fn allowed_resets(&self) -> Vec<String> {
        self.faults.allowed_resets.lock().unwrap().clone().unwrap_or_else(|| DEFAULT_RESETS.iter().map(|s| s.to_string()).collect())
    }

    fn system(&self) -> Value {
        let off = self.node.powered_off.load(Ordering::SeqCst) || self.node.power_cycling.load(Ordering::SeqCst);
        let power = if off { "Off" } else { "On" };
        json!({
            "@odata.id": "/redfish/v1/Systems/1", "Id": "1", "Name": self.node.name, "HostName": self.node.name,
            "PowerState": power, "Status": {"State": "Enabled", "Health": "OK"},
            "Actions": {"#ComputerSystem.Reset": {
                "target": "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
                "ResetType@Redfish.AllowableValues": self.allowed_resets(),
            }},
        })
    }

    fn reset(&self, body: &Value) -> Response<Body> {
        let Some(reset_type) = body["ResetType"].as_str() else {
            return redfish_error(
                400,
                "Base.1.8.PropertyMissing",
                "The property ResetType is a required property and must be included in the request.",
            );
        };
        if !self.allowed_resets().iter().any(|a| a == reset_type) {
            return redfish_error(
                400,
                "Base.1.8.ActionParameterValueNotInList",
                &format!("The value {reset_type} for the parameter ResetType is not in the list of acceptable values."),
            );
        }
        self.node.note(&format!("bmc-reset:{reset_type}"));
        match reset_type {
            "ForceRestart" | "PowerCycle" => self.node.power_cycle(),
            "GracefulRestart" => self.node.graceful_restart(),
            "ForceOff" => self.node.power_off(false),
            "GracefulShutdown" => self.node.power_off(true),
            "On" => self.node.power_on(),
            _ => {}
        }
        let after_reset = self.faults.after_reset.lock().unwrap().take();
        match after_reset {
            Some(AfterReset::ServiceUnavailable) => {
                self.node.note("bmc-503-after-reset");
                return redfish_error(503, "Base.1.8.ServiceTemporarilyUnavailable", "The service is temporarily unavailable.");
            }
            Some(AfterReset::DropConnection) => {
                self.node.note("bmc-dropped-after-reset");
                let mut response = respond(204, Value::Null);
                response.extensions_mut().insert(CloseWithoutAnswer);
                return response;
            }
            Some(AfterReset::VanishingTask) => {
                self.node.note("bmc-task-vanishes");
                // A monitor for a task the BMC never keeps: asked, it answers 404.
                let id = self.next_id.fetch_add(1, Ordering::SeqCst);
                let mut response =
                    respond(202, json!({"@odata.id": format!("/redfish/v1/TaskService/Tasks/{id}"), "TaskState": "Running"}));
                response.headers_mut().insert("Location", format!("/redfish/v1/TaskService/Tasks/{id}").parse().expect("header value"));
                return response;
            }
            None => {}
        }
        if self.faults.tasks.load(Ordering::SeqCst) {
            let id = self.next_id.fetch_add(1, Ordering::SeqCst);
            self.tasks.lock().unwrap().insert(id, Instant::now() + Duration::from_millis(600));
            let mut response = respond(202, json!({"@odata.id": format!("/redfish/v1/TaskService/Tasks/{id}"), "TaskState": "Running"}));
            response.headers_mut().insert("Location", format!("/redfish/v1/TaskService/Tasks/{id}").parse().expect("header value"));
            return response;
        }
        respond(204, Value::Null)
    }
}
