//! A Redfish client for power control through a node's BMC: sessions (or Basic auth when the
//! service has none), `ComputerSystem.Reset` with a ResetType the BMC allows, task monitors,
//! and bounded retries of a busy BMC. Passwords live in [`Secret`], which never prints.
//!
//! One file, past 500 lines: one protocol (sessions, resets, task monitors, retries of a busy BMC).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A password or token. Its Debug and Display print a placeholder, so no log line, error or
/// report can carry it by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

/// How the BMC's certificate is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BmcTls {
    /// Against this CA bundle, or the system's trust store when `None`.
    Verify { ca_file: Option<PathBuf> },
    /// Not at all (`insecure = true`): anyone on the path can read the password.
    Insecure,
}

/// One BMC as the inventory knows it.
#[derive(Clone, Debug)]
pub struct BmcTarget {
    /// The node it powers, for messages.
    pub node: String,
    /// `https://host[:port]`, optionally followed by the system's path
    /// (`/redfish/v1/Systems/1`); without it the system is found through the service root.
    pub url: String,
    pub username: String,
    pub password: Secret,
    pub tls: BmcTls,
}

impl BmcTarget {
    /// (scheme://host[:port], the system's path if the URL names one). Pure.
    pub fn split_url(&self) -> Result<(String, Option<String>), RedfishError> {
        split_bmc_url(&self.url).ok_or_else(|| RedfishError::BadUrl { node: self.node.clone(), url: strip_userinfo(&self.url).0 })
    }
}

/// The URL without a `user:pass@` in its authority, and whether it had one, so a password
/// written into a URL reaches no error text, journal or report. Pure.
pub fn strip_userinfo(url: &str) -> (String, bool) {
    let Some((scheme, rest)) = url.split_once("://") else { return (url.to_owned(), false) };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => (format!("{scheme}://{}", &rest[at + 1..]), true),
        None => (url.to_owned(), false),
    }
}

/// Splits `https://host:port/redfish/v1/Systems/1` into origin and path. Pure.
pub fn split_bmc_url(url: &str) -> Option<(String, Option<String>)> {
    let rest = url.strip_prefix("https://").map(|r| ("https", r)).or_else(|| url.strip_prefix("http://").map(|r| ("http", r)))?;
    let (scheme, rest) = rest;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    // Credentials in the URL (user:pass@host) are refused: they would be carried into every
    // error and report that names the BMC's origin.
    if authority.is_empty() || authority.contains(char::is_whitespace) || authority.contains('@') {
        return None;
    }
    let path = path.trim_end_matches('/');
    let system = (!path.is_empty() && path != "/redfish/v1").then(|| path.to_owned());
    Some((format!("{scheme}://{authority}"), system))
}

/// The most bytes fleetboot reads of one BMC answer. Redfish resources are a few KiB; a body
/// past this is refused (an error naming the limit) instead of filling memory.
pub const MAX_BODY: usize = 1024 * 1024;

/// `scheme://host[:port]` of an absolute URL, lower-cased, with the scheme's default port
/// removed, so equal origins compare equal. `None` for a relative link. Pure.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default().to_ascii_lowercase();
    // Credentials in a link (user@host) never match the BMC's own origin.
    let authority = match (scheme.as_str(), authority.as_str()) {
        ("https", a) if a.ends_with(":443") => a.trim_end_matches(":443").to_owned(),
        ("http", a) if a.ends_with(":80") => a.trim_end_matches(":80").to_owned(),
        (_, a) => a.to_owned(),
    };
    Some(format!("{scheme}://{authority}"))
}

/// Where a link found in a BMC's answer (`@odata.id`, an action target, a `Location` header)
/// leads: a path on the BMC's own origin, or an absolute URL on that same origin. A link to any
/// other origin (or protocol-relative `//host/...`) is refused, so the BMC's credentials and
/// session token never go anywhere else. Pure.
fn resolve_link(origin: &str, link: &str) -> Result<String, String> {
    let link = link.trim();
    if link.starts_with("//") {
        return Err(format!("{link:?} leads to another host"));
    }
    match origin_of(link) {
        Some(other) if Some(other.clone()) == origin_of(origin) => Ok(link.to_owned()),
        Some(other) => Err(format!("{link:?} leads to {other}, not the BMC's own {origin}")),
        None if link.starts_with('/') => Ok(format!("{origin}{link}")),
        None => Ok(format!("{origin}/{link}")),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedfishError {
    #[error("BMC of {node}: {url:?} is not an https:// (or http://) URL")]
    BadUrl { node: String, url: String },
    #[error("BMC of {node} ({url}) is unreachable: {reason}")]
    Unreachable { node: String, url: String, reason: String },
    #[error("BMC of {node} ({url}): its TLS certificate is not trusted ({reason}); give its CA with ca_file, or insecure = true")]
    Tls { node: String, url: String, reason: String },
    #[error("BMC of {node} ({url}) refused the credentials of user {user:?}")]
    Auth { node: String, url: String, user: String },
    #[error("BMC of {node}: {method} {path} answered {status}: {message}")]
    Http { node: String, method: String, path: String, status: u16, message: String },
    #[error("BMC of {node}: {message}")]
    Protocol { node: String, message: String },
    #[error("BMC of {node} allows none of the reset types fleetboot can use (allowed: {allowed})")]
    NoUsableReset { node: String, allowed: String },
    #[error("BMC of {node} does not allow ResetType {reset_type} (allowed: {allowed})")]
    ResetNotAllowed { node: String, reset_type: String, allowed: String },
    #[error("BMC of {node}: {what} did not finish within {limit}")]
    Timeout { node: String, what: String, limit: String },
    #[error("cannot set up TLS for the BMC of {node}: {reason}")]
    Setup { node: String, reason: String },
    /// A link in the BMC's answer leads elsewhere: nothing was sent there.
    #[error("BMC of {node}: not followed: {reason} (credentials go to the BMC alone)")]
    ForeignLink { node: String, reason: String },
    #[error("no BMC is known for {node}")]
    NoBmc { node: String },
    /// The system is powered off (PowerState Off), so a restart would switch it on: someone
    /// switched it off, perhaps to work on it. Nothing was sent.
    #[error(
        "the BMC of {node} reports the system powered off (PowerState Off); it was left off, since a restart would switch on \
         a machine someone switched off: `fleetboot power on --yes-power-on {node}` (or `power restart --yes-power-on`) does it on purpose"
    )]
    PoweredOff { node: String },
    /// Failed before any reset request of the operation was sent (logging in, reading the
    /// system): whatever the error, no reset happened.
    #[error(transparent)]
    BeforeReset(Box<RedfishError>),
    /// Failed once a reset request may have reached the BMC: its answer was lost or was a 5xx,
    /// or the BMC accepted it and its task, or what came after it, failed. `what` says how far
    /// the reset got. The reset may have been carried out.
    #[error("{what}, then {source} (the reset may have been carried out, so it is not sent again)")]
    ResetInDoubt { what: String, source: Box<RedfishError> },
}

impl RedfishError {
    /// Marks an error met before any reset request went out.
    pub fn before_reset(self) -> RedfishError {
        match self {
            already @ RedfishError::BeforeReset(_) => already,
            other => RedfishError::BeforeReset(Box::new(other)),
        }
    }

    /// Marks an error met once a reset may have reached the BMC (`what`: how far it got).
    pub fn reset_in_doubt(self, what: impl Into<String>) -> RedfishError {
        match self {
            already @ RedfishError::ResetInDoubt { .. } => already,
            other => RedfishError::ResetInDoubt { what: what.into(), source: Box::new(other) },
        }
    }

    /// Whether a reset may have been carried out despite this error: then it is never sent
    /// again blindly (a reboot run watches for the new boot ID, `power on/off` reads
    /// PowerState). The one answer to that question for every caller.
    ///
    /// The stage decides: an error marked [`RedfishError::BeforeReset`] came before any reset
    /// request (none happened); one marked [`RedfishError::ResetInDoubt`] came after a reset
    /// may have reached the BMC. An unmarked error is the reset request's own: a refusal (4xx,
    /// 501, credentials refused on a new login) or one that never left fleetboot (a link to
    /// another origin, TLS, the URL) proves nothing happened; a lost answer or any other answer
    /// may come after the BMC carried it out.
    pub fn reset_may_have_happened(&self) -> bool {
        match self {
            RedfishError::BeforeReset(_) => false,
            RedfishError::ResetInDoubt { .. } => true,
            RedfishError::Http { status, .. } => !refused(*status),
            RedfishError::Unreachable { .. } | RedfishError::Protocol { .. } | RedfishError::Timeout { .. } => true,
            RedfishError::BadUrl { .. }
            | RedfishError::Tls { .. }
            | RedfishError::Auth { .. }
            | RedfishError::Setup { .. }
            | RedfishError::NoUsableReset { .. }
            | RedfishError::ResetNotAllowed { .. }
            | RedfishError::ForeignLink { .. }
            | RedfishError::PoweredOff { .. }
            | RedfishError::NoBmc { .. } => false,
        }
    }

    /// The system was found powered off and left so (nothing sent).
    pub fn is_powered_off(&self) -> bool {
        match self {
            RedfishError::PoweredOff { .. } => true,
            RedfishError::BeforeReset(inner) => inner.is_powered_off(),
            _ => false,
        }
    }
}

pub use fleetboot_core::power::RestartKind;

/// The request(s) to send for a restart, chosen from the BMC's allowed reset types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResetPlan {
    One(&'static str),
    /// Neither restart is allowed: ForceOff, wait for PowerState Off, then On.
    OffThenOn,
}

/// Off, or on its way there (`PoweringOff`: someone is shutting it down right now). Either way it
/// was switched off on purpose, as far as fleetboot can tell, and a restart must not undo that.
pub fn off_or_going_off(power_state: &str) -> bool {
    matches!(power_state, "Off" | "PoweringOff")
}

/// Picks the reset for a restart. An absent `ResetType@Redfish.AllowableValues` means the
/// BMC did not say, so the standard values are tried. A powered-off system is switched on
/// (callers allow that only when asked: [`Bmc::restart`]). Pure.
pub fn choose_reset(allowed: Option<&[String]>, kind: RestartKind, power_state: &str) -> Option<ResetPlan> {
    let allows = |t: &str| allowed.is_none_or(|list| list.iter().any(|a| a == t));
    if off_or_going_off(power_state) {
        return allows("On").then_some(ResetPlan::One("On"));
    }
    let order: &[&'static str] = match kind {
        RestartKind::Graceful => &["GracefulRestart", "ForceRestart", "PowerCycle"],
        RestartKind::Force => &["ForceRestart", "PowerCycle"],
    };
    if let Some(t) = order.iter().find(|t| allows(t)) {
        return Some(ResetPlan::One(t));
    }
    (allows("ForceOff") && allows("On")).then_some(ResetPlan::OffThenOn)
}

/// Timeouts and retries of one BMC conversation.
#[derive(Clone, Copy, Debug)]
pub struct RedfishSettings {
    /// Per HTTP request.
    pub request_timeout: Duration,
    /// For a whole operation: a task to finish, PowerState to reach Off.
    pub operation_timeout: Duration,
    /// Answers that mean "busy, try again" (409, 500, 502, 503, 504) are retried this often.
    pub busy_retries: u32,
    /// The first wait before such a retry (doubling, or the BMC's Retry-After).
    pub retry_wait: Duration,
}

impl Default for RedfishSettings {
    fn default() -> RedfishSettings {
        RedfishSettings {
            request_timeout: Duration::from_secs(30),
            operation_timeout: Duration::from_secs(300),
            busy_retries: 4,
            retry_wait: Duration::from_secs(2),
        }
    }
}

/// The computer system behind a BMC, as last read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemState {
    pub path: String,
    pub power_state: String,
    pub allowed_resets: Option<Vec<String>>,
    pub reset_target: String,
}

impl SystemState {
    /// Reads the fields fleetboot needs from a ComputerSystem resource. Pure.
    pub fn from_resource(path: &str, system: &Value) -> SystemState {
        let action = system.pointer("/Actions/#ComputerSystem.Reset");
        SystemState {
            path: path.to_owned(),
            power_state: system["PowerState"].as_str().unwrap_or("Unknown").to_owned(),
            allowed_resets: action
                .and_then(|a| a.get("ResetType@Redfish.AllowableValues"))
                .and_then(Value::as_array)
                .map(|list| list.iter().filter_map(Value::as_str).map(str::to_owned).collect()),
            reset_target: action
                .and_then(|a| a["target"].as_str())
                .map_or_else(|| format!("{path}/Actions/ComputerSystem.Reset"), str::to_owned),
        }
    }
}

enum Auth {
    None,
    Basic,
    Session { token: Secret, location: Option<String> },
}

/// A conversation with one BMC. Log in with [`Bmc::login`]; [`Bmc::logout`] ends the session
/// on every path; a `Bmc` dropped while still logged in (Ctrl-C) deletes its session from a
/// background task.
pub struct Bmc {
    target: BmcTarget,
    origin: String,
    system_hint: Option<String>,
    client: reqwest::Client,
    settings: RedfishSettings,
    auth: Mutex<Auth>,
}

/// Builds the rustls configuration for a BMC: ring, and the CA bundle, the system's trust
/// store, or no verification at all.
fn tls_config(tls: &BmcTls) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder =
        rustls::ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions().map_err(|e| e.to_string())?;
    let config = match tls {
        BmcTls::Verify { ca_file: Some(path) } => {
            use rustls::pki_types::pem::PemObject;
            let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
                roots.add(cert).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("{}: no certificate in it", path.display()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        BmcTls::Verify { ca_file: None } => {
            let verifier = rustls_platform_verifier::Verifier::new(provider).map_err(|e| e.to_string())?;
            builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier)).with_no_client_auth()
        }
        BmcTls::Insecure => builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerification(provider))).with_no_client_auth(),
    };
    Ok(config)
}

/// `insecure = true`: accepts any certificate (signatures are still checked, so the
/// handshake itself stays sound).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The Redfish error text of a failed answer: `error.message` and its extended messages.
fn redfish_message(body: &Value) -> Option<String> {
    let error = body.get("error")?;
    let mut parts: Vec<String> = error["message"].as_str().map(str::to_owned).into_iter().collect();
    if let Some(extended) = error["@Message.ExtendedInfo"].as_array() {
        parts.extend(extended.iter().filter_map(|m| m["Message"].as_str()).map(str::to_owned));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// The message of an error and every cause under it.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

/// The wait before busy retry `n` (1, 2, ...): `first`, doubling, without overflow. Pure.
fn backoff(first: Duration, n: u32) -> Duration {
    first.saturating_mul(1 << n.saturating_sub(1).min(16))
}

fn is_busy(status: StatusCode) -> bool {
    matches!(status.as_u16(), 409 | 500 | 502 | 503 | 504)
}

/// Whether an error answer says the request was not carried out: a 4xx, or 501 Not
/// Implemented (a BMC that does not support the reset type). Any other 5xx may come after it
/// was. Pure.
pub fn refused(status: u16) -> bool {
    (400..500).contains(&status) || status == 501
}

/// Which answers a request is sent again on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Retry {
    /// Every "busy" answer ([`is_busy`]): for reads, logins, task monitors.
    WhileBusy,
    /// Only 409 Conflict, the one busy answer that says the request was not carried out. A
    /// 5xx to a reset may come from a BMC that reset the system and then failed to answer
    /// (or restarted its own web server with it); sending the reset again could restart a
    /// node that is already booting, so it is reported as "may have reset" instead and the
    /// caller watches the boot ID (or reads PowerState) before anything else.
    OnlyConflict,
}

impl Retry {
    fn retries(self, status: StatusCode) -> bool {
        match self {
            Retry::WhileBusy => is_busy(status),
            Retry::OnlyConflict => status == StatusCode::CONFLICT,
        }
    }
}

impl Bmc {
    pub fn new(target: BmcTarget, settings: RedfishSettings) -> Result<Bmc, RedfishError> {
        let (origin, system_hint) = target.split_url()?;
        let setup = |reason: String| RedfishError::Setup { node: target.node.clone(), reason };
        let tls = tls_config(&target.tls).map_err(setup)?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout.min(Duration::from_secs(10)))
            .no_proxy()
            // A redirect is followed only on the BMC's own origin: the session token is a custom
            // header that reqwest would otherwise carry to any host.
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let same = attempt.previous().first().is_some_and(|first| first.origin() == attempt.url().origin());
                if same && attempt.previous().len() < 5 { attempt.follow() } else { attempt.stop() }
            }))
            .build()
            .map_err(|e| setup(error_chain(&e)))?;
        Ok(Bmc { target, origin, system_hint, client, settings, auth: Mutex::new(Auth::None) })
    }

    pub fn node(&self) -> &str {
        &self.target.node
    }

    fn transport_error(&self, error: &reqwest::Error) -> RedfishError {
        let reason = error_chain(error);
        let (node, url) = (self.target.node.clone(), self.origin.clone());
        if reason.contains("certificate") || reason.contains("UnknownIssuer") || reason.contains("InvalidCertificate") {
            RedfishError::Tls { node, url, reason }
        } else {
            RedfishError::Unreachable { node, url, reason }
        }
    }

    /// One request with the current credentials; no retry.
    async fn send_once(
        &self,
        method: &Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, Value), RedfishError> {
        let url = self.link(path)?;
        let mut request = self.client.request(method.clone(), &url).header("Accept", "application/json");
        match &*self.auth.lock().unwrap() {
            Auth::Session { token, .. } => request = request.header("X-Auth-Token", token.expose()),
            Auth::Basic => request = request.basic_auth(&self.target.username, Some(self.target.password.expose())),
            Auth::None => {}
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = self.bounded_body(method, path, response).await?;
        let value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        Ok((status, headers, value))
    }

    /// A link from the BMC's answers, as a URL on its own origin; see [`resolve_link`].
    fn link(&self, link: &str) -> Result<String, RedfishError> {
        resolve_link(&self.origin, link).map_err(|reason| RedfishError::ForeignLink { node: self.target.node.clone(), reason })
    }

    /// The answer's body, at most [`MAX_BODY`] bytes.
    async fn bounded_body(&self, method: &Method, path: &str, mut response: reqwest::Response) -> Result<Vec<u8>, RedfishError> {
        let too_large = || RedfishError::Protocol {
            node: self.target.node.clone(),
            message: format!("{method} {path} answered with a body larger than {} KiB, the most fleetboot reads", MAX_BODY / 1024),
        };
        if response.content_length().is_some_and(|n| n > MAX_BODY as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport_error(&e))? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// A request with one re-authentication on 401 and bounded retries while the BMC is busy.
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, Value), RedfishError> {
        self.request_retrying(method, path, body, Retry::WhileBusy).await
    }

    /// As [`Bmc::request`], retrying only on `retry`'s answers.
    async fn request_retrying(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        retry: Retry,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, Value), RedfishError> {
        let mut reauthenticated = false;
        let mut busy = 0;
        loop {
            let (status, headers, value) = self.send_once(&method, path, body).await?;
            if status == StatusCode::UNAUTHORIZED && !reauthenticated {
                reauthenticated = true;
                self.login().await?;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED {
                return Err(self.auth_error());
            }
            if retry.retries(status) && busy < self.settings.busy_retries {
                busy += 1;
                let asked = headers
                    .get("Retry-After")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let wait = asked.unwrap_or_else(|| backoff(self.settings.retry_wait, busy)).min(Duration::from_secs(60));
                tokio::time::sleep(wait).await;
                continue;
            }
            if !status.is_success() {
                return Err(RedfishError::Http {
                    node: self.target.node.clone(),
                    method: method.to_string(),
                    path: path.to_owned(),
                    status: status.as_u16(),
                    message: redfish_message(&value).unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned()),
                });
            }
            return Ok((status, headers, value));
        }
    }

    fn auth_error(&self) -> RedfishError {
        RedfishError::Auth { node: self.target.node.clone(), url: self.origin.clone(), user: self.target.username.clone() }
    }

    /// Opens a session when the service has a SessionService, else uses Basic auth. Checks the
    /// credentials either way, so a wrong password fails here and not halfway through.
    pub async fn login(&self) -> Result<(), RedfishError> {
        self.close_session().await;
        let (_, _, root) = self.send_once(&Method::GET, "/redfish/v1", None).await?;
        let sessions = root
            .pointer("/Links/Sessions/@odata.id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| root.pointer("/SessionService/@odata.id").and_then(Value::as_str).map(|s| format!("{s}/Sessions")));
        if let Some(sessions) = sessions {
            let credentials = json!({"UserName": self.target.username, "Password": self.target.password.expose()});
            let mut busy = 0;
            let (status, headers, body) = loop {
                let answer = self.send_once(&Method::POST, &sessions, Some(&credentials)).await?;
                // A full session table (503) frees up as other clients' sessions end.
                if is_busy(answer.0) && busy < self.settings.busy_retries {
                    busy += 1;
                    tokio::time::sleep(backoff(self.settings.retry_wait, busy).min(Duration::from_secs(60))).await;
                    continue;
                }
                break answer;
            };
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN || status == StatusCode::BAD_REQUEST {
                return Err(self.auth_error());
            }
            let token = headers.get("X-Auth-Token").and_then(|v| v.to_str().ok());
            if status.is_success()
                && let Some(token) = token
            {
                // A session elsewhere is never deleted there with the token: it expires instead.
                let location = headers.get("Location").and_then(|v| v.to_str().ok()).and_then(|l| resolve_link(&self.origin, l).ok());
                *self.auth.lock().unwrap() = Auth::Session { token: Secret::new(token), location };
                return Ok(());
            }
            if status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED {
                return Err(RedfishError::Http {
                    node: self.target.node.clone(),
                    method: "POST".into(),
                    path: sessions,
                    status: status.as_u16(),
                    message: redfish_message(&body).unwrap_or_else(|| "could not open a session".into()),
                });
            }
        }
        *self.auth.lock().unwrap() = Auth::Basic;
        let (status, _, _) = self.send_once(&Method::GET, "/redfish/v1/Systems", None).await?;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            *self.auth.lock().unwrap() = Auth::None;
            return Err(self.auth_error());
        }
        Ok(())
    }

    /// Whether the service answers at all: its service root, which needs no credentials.
    pub async fn probe(&self) -> Result<(), RedfishError> {
        let (status, _, root) = self.send_once(&Method::GET, "/redfish/v1", None).await?;
        if status.is_success() && root.get("RedfishVersion").is_some() || status == StatusCode::UNAUTHORIZED {
            Ok(())
        } else {
            Err(RedfishError::Protocol {
                node: self.target.node.clone(),
                message: format!("GET /redfish/v1 answered {status}, not a Redfish service root"),
            })
        }
    }

    /// Deletes the session, if one is open. Errors are ignored: the BMC expires it anyway.
    async fn close_session(&self) {
        let previous = std::mem::replace(&mut *self.auth.lock().unwrap(), Auth::None);
        if let Auth::Session { token, location: Some(url) } = previous {
            let _ = self.client.delete(url).header("X-Auth-Token", token.expose()).send().await;
        }
    }

    pub async fn logout(&self) {
        self.close_session().await;
    }

    /// The system's path: the URL's, or the only member of the Systems collection.
    async fn system_path(&self) -> Result<String, RedfishError> {
        if let Some(path) = &self.system_hint {
            return Ok(path.clone());
        }
        let (_, _, systems) = self.request(Method::GET, "/redfish/v1/Systems", None).await?;
        let members: Vec<&str> =
            systems["Members"].as_array().map(|m| m.iter().filter_map(|m| m["@odata.id"].as_str()).collect()).unwrap_or_default();
        match members.as_slice() {
            [one] => Ok((*one).to_owned()),
            [] => Err(RedfishError::Protocol { node: self.target.node.clone(), message: "the BMC lists no computer system".into() }),
            many => Err(RedfishError::Protocol {
                node: self.target.node.clone(),
                message: format!("the BMC manages several systems ({}); name one in its URL", many.join(", ")),
            }),
        }
    }

    pub async fn system(&self) -> Result<SystemState, RedfishError> {
        let path = self.system_path().await?;
        let (_, _, system) = self.request(Method::GET, &path, None).await?;
        Ok(SystemState::from_resource(&path, &system))
    }

    /// POSTs one reset and follows a task monitor to its end. An error that may have come after
    /// the BMC carried the reset out is marked [`RedfishError::ResetInDoubt`].
    pub async fn reset(&self, system: &SystemState, reset_type: &str) -> Result<(), RedfishError> {
        let body = json!({"ResetType": reset_type});
        let (status, headers, _) = self
            .request_retrying(Method::POST, &system.reset_target, Some(&body), Retry::OnlyConflict)
            .await
            .map_err(|e| if e.reset_may_have_happened() { e.reset_in_doubt(format!("{reset_type} was sent")) } else { e })?;
        if status == StatusCode::ACCEPTED
            && let Some(monitor) = headers.get("Location").and_then(|v| v.to_str().ok())
        {
            // The BMC accepted the reset: whatever goes wrong with its task now, it may happen.
            return self.follow_task(monitor).await.map_err(|e| e.reset_in_doubt(format!("the BMC accepted {reset_type} (202)")));
        }
        Ok(())
    }

    /// Polls a task monitor until the task ends (200/204 without a running TaskState).
    async fn follow_task(&self, monitor: &str) -> Result<(), RedfishError> {
        let deadline = crate::adapters::system::deadline_after(self.settings.operation_timeout);
        loop {
            let (status, _, task) = self.request(Method::GET, monitor, None).await?;
            let state = task["TaskState"].as_str().unwrap_or("");
            match state {
                "Exception" | "Killed" | "Cancelled" | "Interrupted" => {
                    let messages: Vec<&str> =
                        task["Messages"].as_array().map(|m| m.iter().filter_map(|m| m["Message"].as_str()).collect()).unwrap_or_default();
                    return Err(RedfishError::Protocol {
                        node: self.target.node.clone(),
                        message: format!("the reset task ended {state}: {}", messages.join("; ")),
                    });
                }
                "New" | "Starting" | "Running" | "Pending" | "Stopping" | "Suspended" | "Service" => {}
                _ if status != StatusCode::ACCEPTED => return Ok(()),
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(self.timeout("the reset task"));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn timeout(&self, what: &str) -> RedfishError {
        RedfishError::Timeout {
            node: self.target.node.clone(),
            what: what.to_owned(),
            limit: humantime::format_duration(self.settings.operation_timeout).to_string(),
        }
    }

    /// Waits until the system reports `state`.
    pub async fn wait_power_state(&self, state: &str) -> Result<SystemState, RedfishError> {
        let deadline = crate::adapters::system::deadline_after(self.settings.operation_timeout);
        loop {
            let system = self.system().await?;
            if system.power_state == state {
                return Ok(system);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(self.timeout(&format!("PowerState {state}")));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Restarts the system with the best reset the BMC allows; returns the reset type(s) sent.
    /// A system that is powered off is switched on only with `power_on` (`power restart
    /// --yes-power-on`): otherwise [`RedfishError::PoweredOff`], and nothing is sent.
    pub async fn restart(&self, kind: RestartKind, power_on: bool) -> Result<String, RedfishError> {
        let mut system = self.system().await.map_err(RedfishError::before_reset)?;
        if off_or_going_off(&system.power_state) && !power_on {
            return Err(RedfishError::PoweredOff { node: self.target.node.clone() });
        }
        if system.power_state == "PoweringOff" {
            // Switched on only once it is off: an `On` during the shutdown may be ignored or refused.
            system = self.wait_power_state("Off").await.map_err(RedfishError::before_reset)?;
        }
        let plan =
            choose_reset(system.allowed_resets.as_deref(), kind, &system.power_state).ok_or_else(|| RedfishError::NoUsableReset {
                node: self.target.node.clone(),
                allowed: system.allowed_resets.as_ref().map_or("unknown".into(), |a| a.join(", ")),
            })?;
        match plan {
            ResetPlan::One(reset_type) => {
                self.reset(&system, reset_type).await?;
                Ok(reset_type.to_owned())
            }
            ResetPlan::OffThenOn => {
                // A ForceOff that may have been carried out is settled by PowerState, never by a
                // second ForceOff.
                let off = match self.reset(&system, "ForceOff").await {
                    Ok(()) => self.wait_power_state("Off").await.map_err(|e| e.reset_in_doubt("the BMC accepted ForceOff"))?,
                    Err(e) if e.reset_may_have_happened() => self.wait_power_state("Off").await.map_err(|_| e)?,
                    Err(e) => return Err(e),
                };
                // The node is off now: whatever happens to the On, a reset has happened.
                self.reset(&off, "On").await.map_err(|e| e.reset_in_doubt("ForceOff was carried out"))?;
                Ok("ForceOff+On".to_owned())
            }
        }
    }

    /// Sends one named reset (`On`, `ForceOff`, `GracefulShutdown`...) if the BMC allows it.
    pub async fn power(&self, reset_type: &str) -> Result<SystemState, RedfishError> {
        let system = self.system().await.map_err(RedfishError::before_reset)?;
        if let Some(allowed) = &system.allowed_resets
            && !allowed.iter().any(|a| a == reset_type)
        {
            return Err(RedfishError::ResetNotAllowed {
                node: self.target.node.clone(),
                reset_type: reset_type.to_owned(),
                allowed: allowed.join(", "),
            });
        }
        self.reset(&system, reset_type).await?;
        Ok(system)
    }
}

/// Session deletions started by interrupted operations, for [`finish_cleanups`].
static CLEANUPS: Mutex<Vec<tokio::task::JoinHandle<()>>> = Mutex::new(Vec::new());

/// Waits (at most `limit`) for the session deletions of interrupted operations, so a
/// process that exits right after an interruption still logs out of its BMCs.
pub async fn finish_cleanups(limit: Duration) {
    let pending: Vec<_> = std::mem::take(&mut *CLEANUPS.lock().unwrap());
    let _ = tokio::time::timeout(limit, futures::future::join_all(pending)).await;
}

impl Drop for Bmc {
    fn drop(&mut self) {
        // Interrupted mid-operation: the session must not linger on the BMC (they are few).
        let auth = std::mem::replace(&mut *self.auth.lock().unwrap(), Auth::None);
        if let Auth::Session { token, location: Some(url) } = auth
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let client = self.client.clone();
            let handle = runtime.spawn(async move {
                let _ = client.delete(url).header("X-Auth-Token", token.expose()).send().await;
            });
            CLEANUPS.lock().unwrap().push(handle);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_origin_and_system() {
        assert_eq!(split_bmc_url("https://bmc.example"), Some(("https://bmc.example".into(), None)));
        assert_eq!(
            split_bmc_url("https://bmc:8443/redfish/v1/Systems/1/"),
            Some(("https://bmc:8443".into(), Some("/redfish/v1/Systems/1".into())))
        );
        assert_eq!(split_bmc_url("https://bmc/redfish/v1"), Some(("https://bmc".into(), None)));
        assert_eq!(split_bmc_url("ipmi://bmc"), None);
        assert_eq!(split_bmc_url("https:///x"), None);
        assert_eq!(split_bmc_url("https://admin:hunter2@bmc/redfish/v1/Systems/1"), None);
        assert_eq!(strip_userinfo("https://admin:hunter2@bmc:8443/x@y"), ("https://bmc:8443/x@y".into(), true));
        assert_eq!(strip_userinfo("https://bmc/x"), ("https://bmc/x".into(), false));
    }

    #[test]
    fn the_reset_is_chosen_from_what_the_bmc_allows() {
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let all = list(&["On", "ForceOff", "GracefulRestart", "ForceRestart"]);
        assert_eq!(choose_reset(Some(&all), RestartKind::Graceful, "On"), Some(ResetPlan::One("GracefulRestart")));
        assert_eq!(choose_reset(Some(&all), RestartKind::Force, "On"), Some(ResetPlan::One("ForceRestart")));
        assert_eq!(choose_reset(None, RestartKind::Graceful, "On"), Some(ResetPlan::One("GracefulRestart")));
        let hard = list(&["On", "ForceOff", "ForceRestart"]);
        assert_eq!(choose_reset(Some(&hard), RestartKind::Graceful, "On"), Some(ResetPlan::One("ForceRestart")));
        let off_on = list(&["On", "ForceOff"]);
        assert_eq!(choose_reset(Some(&off_on), RestartKind::Graceful, "On"), Some(ResetPlan::OffThenOn));
        assert_eq!(choose_reset(Some(&off_on), RestartKind::Force, "Off"), Some(ResetPlan::One("On")));
        assert_eq!(choose_reset(None, RestartKind::Graceful, "PoweringOff"), Some(ResetPlan::One("On")), "going off is off");
        assert!(off_or_going_off("PoweringOff") && off_or_going_off("Off") && !off_or_going_off("PoweringOn") && !off_or_going_off("On"));
        assert_eq!(choose_reset(Some(&list(&["Nmi"])), RestartKind::Force, "On"), None);
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "<secret> <secret>");
        let target = BmcTarget { node: "n".into(), url: "https://b".into(), username: "u".into(), password: s, tls: BmcTls::Insecure };
        assert!(!format!("{target:?}").contains("hunter2"));
    }

    #[test]
    fn the_system_resource_gives_state_resets_and_target() {
        let system = json!({"PowerState": "On", "Actions": {"#ComputerSystem.Reset": {
            "target": "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
            "ResetType@Redfish.AllowableValues": ["On", "ForceRestart"]}}});
        let state = SystemState::from_resource("/redfish/v1/Systems/1", &system);
        assert_eq!(state.power_state, "On");
        assert_eq!(state.allowed_resets, Some(vec!["On".into(), "ForceRestart".into()]));
        assert_eq!(state.reset_target, "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset");
        let bare = SystemState::from_resource("/s", &json!({}));
        assert_eq!(
            (bare.power_state.as_str(), bare.allowed_resets, bare.reset_target.as_str()),
            ("Unknown", None, "/s/Actions/ComputerSystem.Reset")
        );
    }

    #[test]
    fn links_are_followed_on_the_bmcs_own_origin_only() {
        let origin = "https://bmc.example:8443";
        assert_eq!(
            resolve_link(origin, "/redfish/v1/TaskService/Tasks/1").unwrap(),
            "https://bmc.example:8443/redfish/v1/TaskService/Tasks/1"
        );
        assert_eq!(resolve_link(origin, "https://BMC.example:8443/redfish/v1/x").unwrap(), "https://BMC.example:8443/redfish/v1/x");
        assert_eq!(resolve_link("https://bmc", "https://bmc:443/redfish/v1").unwrap(), "https://bmc:443/redfish/v1");
        for elsewhere in [
            "https://evil.example/redfish/v1/SessionService/Sessions",
            "https://bmc.example:9443/x",
            "http://bmc.example:8443/x",
            "//evil.example/x",
            "https://admin@bmc.example:8443/x",
        ] {
            let err = resolve_link(origin, elsewhere).unwrap_err();
            assert!(err.contains(elsewhere), "{err}");
        }
        let refused = RedfishError::ForeignLink { node: "n".into(), reason: "x".into() };
        assert!(!refused.reset_may_have_happened(), "nothing was sent to a link that was refused");
    }

    #[test]
    fn the_stage_an_error_was_met_at_decides_whether_the_reset_may_have_happened() {
        let node = || "n".to_string();
        let reset_path = "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset";
        let http = |method: &str, path: &str, status| RedfishError::Http {
            node: node(),
            method: method.into(),
            path: path.into(),
            status,
            message: "m".into(),
        };
        let dropped = || RedfishError::Unreachable { node: node(), url: "u".into(), reason: "connection closed".into() };
        // Before any reset request: logging in, reading the system.
        assert!(!dropped().before_reset().reset_may_have_happened());
        assert!(!http("GET", "/redfish/v1/Systems/1", 503).before_reset().reset_may_have_happened());
        assert!(!RedfishError::NoBmc { node: node() }.reset_may_have_happened());
        // The reset request refused, or never sent.
        assert!(!http("POST", reset_path, 400).reset_may_have_happened());
        assert!(!http("POST", reset_path, 501).reset_may_have_happened(), "501: the BMC does not implement that reset type");
        assert!(!RedfishError::Auth { node: node(), url: "u".into(), user: "admin".into() }.reset_may_have_happened());
        assert!(!RedfishError::ForeignLink { node: node(), reason: "x".into() }.reset_may_have_happened());
        // The reset request may have reached the BMC: its answer lost, a 5xx.
        assert!(dropped().reset_may_have_happened());
        assert!(http("POST", reset_path, 503).reset_may_have_happened());
        // After the BMC accepted it: whatever failed, even a refusal of the task monitor.
        let vanished = http("GET", "/redfish/v1/TaskService/Tasks/1", 404).reset_in_doubt("the BMC accepted ForceRestart (202)");
        assert!(vanished.reset_may_have_happened());
        assert!(vanished.to_string().contains("accepted ForceRestart (202), then BMC of n: GET"), "{vanished}");
        assert!(dropped().reset_in_doubt("ForceOff was sent").reset_in_doubt("ignored").to_string().starts_with("ForceOff was sent"));
    }
}
