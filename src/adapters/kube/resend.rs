//! A read the API never answered because its connection broke is sent again, as client-go does:
//! k8s.io/client-go release-1.33 `rest/request.go` (`request`, `isErrRetryableFunc`) retries a
//! `GET` whose connection was reset or ended early (`IsConnectionReset`, `IsProbableEOF`), after
//! an artificial `Retry-After: 1`, and never a write ("they are not idempotent").
//!
//! kube's client does not: under a thousand drains at once (fleetboot's client speaks HTTP/1.1,
//! one connection per request in flight; the machine's listen queue overflowed) a cordon's
//! `GET node` or a world read after a drain failed with "client error (SendRequest)" and failed
//! its node. Sent again here: a `GET` that got no answer at all, but not a watch (its caller
//! starts it again), nor an upgrade (exec, attach, port-forward: a command may have run), nor
//! a connect error (nothing was sent: the API is not there; its callers have their own ways).

use std::time::Duration;

use http::{Method, Request};
use kube::client::Body;
use tower::BoxError;
use tower::retry::Policy;

/// How often a read is sent again, and the pause before each (client-go: up to 10 times, 1 s
/// apart, on its artificial `Retry-After: 1`).
pub const RESENDS: u32 = 10;
pub const RESEND_PAUSE: Duration = Duration::from_secs(1);

/// The policy: [`RESENDS`] more tries of a read whose connection broke, [`RESEND_PAUSE`] apart.
#[derive(Clone, Debug)]
pub struct ResendBrokenReads {
    left: u32,
}

impl Default for ResendBrokenReads {
    fn default() -> ResendBrokenReads {
        ResendBrokenReads { left: RESENDS }
    }
}

/// Whether `request` may be sent again: a plain `GET` (no watch, no upgrade to a stream).
pub fn resendable<B>(request: &Request<B>) -> bool {
    let watch = request.uri().query().is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let upgrade = request.headers().contains_key(http::header::UPGRADE);
    let path = request.uri().path();
    let stream = ["/exec", "/attach", "/portforward"].iter().any(|s| path.ends_with(s)) || path.contains("/proxy");
    request.method() == Method::GET && !watch && !upgrade && !stream
}

/// Whether `error` (no answer came) is a broken connection, not a connection never made.
pub fn broken_connection(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(client) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
            return !client.is_connect();
        }
        cause = e.source();
    }
    // Not the HTTP client's (the auth layer's, a timeout's): left to the caller.
    false
}

impl ResendBrokenReads {
    /// The pause before sending again a request that got `error`, or `None` (send it no more):
    /// a broken connection while tries are left. The one rule for every resend, the client's
    /// layer's (reads) and a caller's own loop around a request the layer does not resend (the
    /// cordon's merge patch, [`super::drain::Drainer::set_unschedulable`]).
    pub fn pause_after(&mut self, error: &(dyn std::error::Error + 'static)) -> Option<tokio::time::Sleep> {
        if self.left == 0 || !broken_connection(error) {
            return None;
        }
        self.left -= 1;
        Some(tokio::time::sleep(RESEND_PAUSE))
    }
}

impl<Res> Policy<Request<Body>, Res, BoxError> for ResendBrokenReads {
    type Future = tokio::time::Sleep;

    fn retry(&mut self, request: &mut Request<Body>, result: &mut Result<Res, BoxError>) -> Option<Self::Future> {
        match result {
            Err(error) if resendable(request) => self.pause_after(error.as_ref()),
            _ => None,
        }
    }

    fn clone_request(&mut self, request: &Request<Body>) -> Option<Request<Body>> {
        if !resendable(request) {
            return None;
        }
        let mut copy = Request::builder().method(request.method().clone()).uri(request.uri().clone()).version(request.version());
        copy.headers_mut()?.extend(request.headers().clone());
        let mut copy = copy.body(request.body().try_clone()?).ok()?;
        *copy.extensions_mut() = request.extensions().clone();
        Some(copy)
    }
}

/// kube's client for `config`, with [`ResendBrokenReads`] around it.
pub fn client(config: kube::Config) -> Result<kube::Client, kube::Error> {
    let builder = kube::client::ClientBuilder::try_from(config)?;
    // The retry needs a service it can clone: kube's stack is one boxed service, so behind a
    // buffer (as kube's own `Client` puts it).
    Ok(builder
        .with_layer(&tower::buffer::BufferLayer::new(1024))
        .with_layer(&tower::retry::RetryLayer::new(ResendBrokenReads::default()))
        .build())
}
