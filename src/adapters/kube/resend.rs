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
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::retry::Policy;

/// How often a read is sent again, and the pause before each (client-go: up to 10 times, 1 s
/// apart, on its artificial `Retry-After: 1`).
pub const RESENDS: u32 = 10;
pub const RESEND_PAUSE: Duration = Duration::from_secs(1);

/// How many of those [`RESENDS`] may follow a try that got no answer within its timeout
/// ([`Unanswered`], [`ANSWER_TIMEOUT`] each): one. A broken connection fails at once and is
/// sent again 1 s later, but a silent one costs its whole timeout: ten resends of a read that
/// keeps timing out kept its caller (an admin watching, a slot of the run's) waiting 11 ×
/// 90 s, about 17 minutes, before it failed. One resend still covers what a timeout mostly
/// is, one connection gone silent (a peer or a middlebox that dropped it without a reset, an
/// idle pooled connection among them): the resend opens a new one. A second timeout in a row
/// says the API server itself does not answer, which more tries will not change: the request
/// fails at its second timeout (2 × [`ANSWER_TIMEOUT`] when no broken connection comes
/// between: those count against [`RESENDS`] alone), and its caller's own rule (fail the node,
/// leave a node cordoned and say so, stop the run) takes over. client-go
/// resends no timeout at all (`isErrRetryableFunc`: a reset or an EOF only).
pub const UNANSWERED_RESENDS: u32 = 1;

/// The policy: [`RESENDS`] more tries of a read whose connection broke, [`RESEND_PAUSE`] apart,
/// of which at most [`UNANSWERED_RESENDS`] after a try that got no answer in time.
#[derive(Clone, Debug)]
pub struct ResendBrokenReads {
    left: u32,
    unanswered_left: u32,
}

impl Default for ResendBrokenReads {
    fn default() -> ResendBrokenReads {
        ResendBrokenReads { left: RESENDS, unanswered_left: UNANSWERED_RESENDS }
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

/// Whether `error` (no answer came) is a broken connection, not a connection never made: also
/// a request that got no answer within [`ANSWER_TIMEOUT`] (its connection is closed for it).
pub fn broken_connection(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        // No answer began in time: the connection is as good as broken (and is closed).
        if e.is::<Unanswered>() {
            return true;
        }
        if let Some(client) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
            return !client.is_connect();
        }
        cause = e.source();
    }
    // Not the HTTP client's (the auth layer's, a timeout's): left to the caller.
    false
}

/// Whether `error` is, or was caused by, a request that got no answer in time ([`Unanswered`]).
pub fn unanswered(error: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(error), |e| e.source()).any(|e| e.is::<Unanswered>())
}

impl ResendBrokenReads {
    /// The pause before sending again a request that got `error`, or `None` (send it no more):
    /// a broken connection while tries are left ([`UNANSWERED_RESENDS`] of them after a
    /// timeout). The one rule for every resend, the client's
    /// layer's (reads) and a caller's own loop around a request the layer does not resend (the
    /// cordon's merge patch, [`super::drain::Drainer::set_unschedulable`]).
    pub fn pause_after(&mut self, error: &(dyn std::error::Error + 'static)) -> Option<tokio::time::Sleep> {
        if self.left == 0 || !broken_connection(error) {
            return None;
        }
        if unanswered(error) {
            if self.unanswered_left == 0 {
                return None;
            }
            self.unanswered_left -= 1;
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

/// How many requests one connection to the cluster (its clients: [`client`], retrying, and the
/// evictions', [`ClientOptions::WITHOUT_RETRY`]) has in flight at once; the rest wait their turn in the client.
///
/// Without a bound the client sent every request at once, and HTTP/1.1 carries one request per
/// connection: a drained run of 10,000 nodes kept up to 7,658 connections open to the API,
/// and hyper's pool keeps a connection once opened (idle 90 s, any number), so the peak stayed
/// open. 400 is kube-apiserver's own bound on the read-only requests it serves at once
/// (`--max-requests-inflight`, default 400: kubernetes.io/docs/reference/command-line-tools-
/// reference/kube-apiserver/; it answers 429 past it, when API Priority and Fairness is off):
/// one client sending more at once than a whole API server serves gains nothing, and a
/// connection per request up to that is what a real API server is sized for.
///
/// The permit is held until the request's answer *starts* (its status and headers), not while
/// its body is read: tower's `ConcurrencyLimit` (tower 0.5 `limit/concurrency/future.rs`) keeps
/// the permit in the response future, dropped when that future completes, which for hyper's
/// client is at the response's headers. A watch, a followed log or an exec/attach stream (101
/// Switching Protocols) thus gives its permit back as soon as the API server accepts it, and
/// the cap cannot deadlock on long-lived streams; what it bounds is requests waiting for an
/// answer (an eviction the API server takes its time over holds one while it waits). A body
/// still being read keeps its connection busy, so the connections may pass the cap by the
/// answers being read at that moment, not by the requests queued.
pub const MAX_REQUESTS_IN_FLIGHT: usize = 400;

/// The bound of [`MAX_REQUESTS_IN_FLIGHT`], to share between the clients of one connection to
/// the cluster (each layered service takes its permits from the same semaphore).
pub fn in_flight_limit() -> GlobalConcurrencyLimitLayer {
    GlobalConcurrencyLimitLayer::new(MAX_REQUESTS_IN_FLIGHT)
}

/// How long a request the API server does not hold open on purpose may go without the start of
/// an answer before its connection is taken for dead (a peer gone silent, no RST: nothing else
/// ends it, kube's client sets no read timeout of its own, kube-client 5.0.0
/// `config/mod.rs` `read_timeout: None`). kube-apiserver ends such a request itself after its
/// `--request-timeout` (1 min by default, kubernetes.io/docs/reference/command-line-tools-
/// reference/kube-apiserver/), answering 504: an API server that is alive has answered by
/// then, and half a minute more covers one that is slow to say so.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(90);

/// No answer began within [`ANSWER_TIMEOUT`]: the request's connection is taken for dead (it is
/// closed, the request's permit given back).
#[derive(Debug, thiserror::Error)]
#[error("the API server did not begin to answer within {}: its connection is taken for dead", humantime::format_duration(*.after))]
pub struct Unanswered {
    pub after: Duration,
}

/// Whether the API server holds `request` open on purpose, as kube-apiserver classes its own
/// long-running requests (which its `--request-timeout` does not end): a watch, a proxy, and
/// the subresources `attach`, `exec`, `proxy`, `log`, `portforward`
/// (k8s.io/kubernetes release-1.33 `pkg/controlplane/apiserver/config.go`:
/// `BasicLongRunningRequestCheck(sets.NewString("watch", "proxy"), sets.NewString("attach",
/// "exec", "proxy", "log", "portforward"))`). A watch's answer begins when the watch starts,
/// but its events may be minutes apart; kube's watcher looks after a silent one itself
/// (kube-runtime 5.0.0 `watcher.rs` `next_with_idle_timeout`).
pub fn long_running<B>(request: &Request<B>) -> bool {
    let watch = request.uri().query().is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    // The path as the API server reads it (k8s.io/apiserver `endpoints/request/requestinfo.go`):
    // after `/api/V` or `/apis/G/V`, a verb (`watch`, `proxy`) or `namespaces/NS`, then
    // `resource/name/subresource`.
    let segments: Vec<&str> = request.uri().path().split('/').filter(|s| !s.is_empty()).collect();
    let parts = match segments.first() {
        Some(&"api") => segments.get(2..),
        Some(&"apis") => segments.get(3..),
        _ => None,
    }
    .unwrap_or_default();
    let verb_in_path = parts.first().is_some_and(|p| *p == "watch" || *p == "proxy");
    let parts = if parts.first() == Some(&"namespaces") && parts.len() > 2 { &parts[2..] } else { parts };
    let subresource = parts.get(2).is_some_and(|s| ["attach", "exec", "proxy", "log", "portforward"].contains(s));
    watch || verb_in_path || subresource || request.headers().contains_key(http::header::UPGRADE)
}

/// A service under which a request not [`long_running`] fails with [`Unanswered`] when no
/// answer began within `after`.
#[derive(Clone)]
pub struct AnswerTimeout<S> {
    inner: S,
    after: Duration,
}

/// The [`AnswerTimeout`] layer.
#[derive(Clone, Copy, Debug)]
pub struct AnswerTimeoutLayer {
    pub after: Duration,
}

impl<S> tower::Layer<S> for AnswerTimeoutLayer {
    type Service = AnswerTimeout<S>;

    fn layer(&self, inner: S) -> AnswerTimeout<S> {
        AnswerTimeout { inner, after: self.after }
    }
}

impl<S, Res> tower::Service<Request<Body>> for AnswerTimeout<S>
where
    S: tower::Service<Request<Body>, Response = Res>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = Res;
    type Error = BoxError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Res, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let bounded = !long_running(&request);
        let answer = self.inner.call(request);
        let after = self.after;
        Box::pin(async move {
            if !bounded {
                return answer.await.map_err(Into::into);
            }
            // Dropped unanswered, hyper's connection closes (its answer can no longer be read
            // by anyone) and the limit above gets its permit back.
            match tokio::time::timeout(after, answer).await {
                Ok(answer) => answer.map_err(Into::into),
                Err(_) => Err(Box::new(Unanswered { after }) as BoxError),
            }
        })
    }
}

/// How [`client`] makes a client of one connection to the cluster: which retries go around it
/// and how long it awaits an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// [`ResendBrokenReads`] and kube's own retry of a 429, a 503 and a 504 (when the
    /// configuration asks for it, `default_retry`) around the client, above the limit; without
    /// them the caller answers every error itself.
    pub retry: bool,
    /// How long a request not [`long_running`] may wait for the start of its answer
    /// ([`ANSWER_TIMEOUT`]; a test passes a shorter one).
    pub answer_timeout: Duration,
}

impl ClientOptions {
    /// The run's reads and writes: retried, [`ANSWER_TIMEOUT`].
    pub const RETRYING: ClientOptions = ClientOptions { retry: true, answer_timeout: ANSWER_TIMEOUT };
    /// The evictions' and the uncordon's client: no retry at all (each caller answers every
    /// error itself), [`ANSWER_TIMEOUT`].
    pub const WITHOUT_RETRY: ClientOptions = ClientOptions { retry: false, answer_timeout: ANSWER_TIMEOUT };

    /// These options with the answers awaited `after` long.
    pub const fn answering_within(self, after: Duration) -> ClientOptions {
        ClientOptions { answer_timeout: after, ..self }
    }
}

/// kube's client for `config` under `limit`, with the answer's timeout of `options` under the
/// limit and, when `options` retry, [`ResendBrokenReads`] and kube's own retry of a 429, a 503
/// and a 504 above it.
pub fn client(config: kube::Config, limit: &GlobalConcurrencyLimitLayer, options: ClientOptions) -> Result<kube::Client, kube::Error> {
    // kube's own retry (`config.default_retry`) sits inside the stack `ClientBuilder` makes
    // (kube-client 5.0.0 `client/builder.rs` `make_generic_builder`: its `RetryLayer` under the
    // auth layer), so under any layer added here: a request sleeping out its backoff (5 ms
    // doubling to 1000 s, 15 times, or the server's `Retry-After`) would hold its permit all
    // along, and a throttling API server could park the whole cap in sleeps. It is left out of
    // that stack and, when `options` retry, the same policy put above the limit instead.
    let mut config = config;
    let kube_retries = options.retry && config.default_retry;
    config.default_retry = false;
    // The answer's timeout is under the limit: it counts from the permit, never the time a
    // request waited its turn.
    let bounded =
        kube::client::ClientBuilder::try_from(config)?.with_layer(&AnswerTimeoutLayer { after: options.answer_timeout }).with_layer(limit);
    if !options.retry {
        // kube's `Client` puts its own buffer in front: the limit is under it, as below.
        return Ok(bounded.build());
    }
    // The limit sits under the buffer: the buffer's one worker holds the only permit taken
    // ahead of a call, and a request waiting to be sent again (a read after [`RESEND_PAUSE`],
    // a 429 after its backoff) holds none (the retries are above). A retry needs a service it
    // can clone: kube's stack is one boxed service, so behind a buffer (as kube's own `Client`
    // puts it).
    let kube_retry = kube_retries.then(|| tower::retry::RetryLayer::new(kube::client::retry::RetryPolicy::server_retry()));
    Ok(bounded
        .with_layer(&tower::buffer::BufferLayer::new(1024))
        .with_layer(&tower::util::option_layer(kube_retry))
        .with_layer(&tower::retry::RetryLayer::new(ResendBrokenReads::default()))
        .build())
}

/// A client of its own for the run's leases, outside the cap of [`MAX_REQUESTS_IN_FLIGHT`]: a
/// renewal never waits its turn behind the run's other requests (a lease not renewed in time
/// stops the run), and its connections are its own (hyper's pool is per client). kube's own
/// retry stays inside it (it holds no permit here), and a read on a connection that broke is
/// sent again ([`ResendBrokenReads`], as on the run's other clients: the lease's reads at the
/// take-over and at the release); the renewal adds tries beside a slow one itself
/// ([`super::lease`]), and [`ANSWER_TIMEOUT`] bounds every other request.
pub fn lease_client(config: kube::Config) -> Result<kube::Client, kube::Error> {
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&AnswerTimeoutLayer { after: ANSWER_TIMEOUT })
        .with_layer(&tower::buffer::BufferLayer::new(1024))
        .with_layer(&tower::retry::RetryLayer::new(ResendBrokenReads::default()))
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::kube::test_server::{Answer, TestServer};
    use std::sync::{Arc, Mutex};

    /// What the API server below has seen: the requests open now, and the most open at once.
    #[derive(Default)]
    struct Seen {
        requests: usize,
        most_requests: usize,
    }

    /// An API server that keeps every request unanswered until `gate` opens, counting what is
    /// open at once.
    async fn holding_server(seen: Arc<Mutex<Seen>>, gate: tokio::sync::watch::Receiver<bool>) -> TestServer {
        TestServer::start(move |_| {
            let (seen, mut gate) = (seen.clone(), gate.clone());
            async move {
                {
                    let mut s = seen.lock().unwrap();
                    s.requests += 1;
                    s.most_requests = s.most_requests.max(s.requests);
                }
                let _ = gate.wait_for(|open| *open).await;
                seen.lock().unwrap().requests -= 1;
                Answer::json(200, "{}")
            }
        })
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_clients_of_one_connection_keep_at_most_the_cap_of_requests_and_connections_open() {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (open_gate, gate) = tokio::sync::watch::channel(false);
        let server = holding_server(seen.clone(), gate).await;
        let config = server.config();
        // Both clients of a connection, as `ClusterConnection::open` makes them.
        let limit = in_flight_limit();
        let reads = client(config.clone(), &limit, ClientOptions::RETRYING).unwrap();
        let evictions = client(config, &limit, ClientOptions::WITHOUT_RETRY).unwrap();
        let asked = MAX_REQUESTS_IN_FLIGHT + 50;
        let requests: Vec<_> = (0..asked)
            .map(|i| {
                let client = if i % 2 == 0 { reads.clone() } else { evictions.clone() };
                tokio::spawn(async move {
                    let request = Request::get(format!("/api/v1/namespaces/default/configmaps/c{i}")).body(Vec::new()).unwrap();
                    client.request_text(request).await
                })
            })
            .collect();
        // Every request is sent at once; the server answers none: the cap is reached...
        while seen.lock().unwrap().requests < MAX_REQUESTS_IN_FLIGHT {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // ...and, given a moment to arrive, the 50 more do not reach the server (without the
        // cap they all do: this moment only lets a missing cap show, it never fails a cap).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let requests_open = seen.lock().unwrap().requests;
        assert_eq!((requests_open, server.connections_open()), (MAX_REQUESTS_IN_FLIGHT, MAX_REQUESTS_IN_FLIGHT));
        // Answered, the permits come back: the requests waiting go, none is lost or stuck.
        open_gate.send(true).unwrap();
        for request in requests {
            assert_eq!(request.await.unwrap().unwrap(), "{}");
        }
        let most = seen.lock().unwrap().most_requests;
        assert_eq!(most, MAX_REQUESTS_IN_FLIGHT, "never more requests in flight than the cap");
        // (Connections are not bounded as strictly: a permit comes back at an answer's headers, so
        // a request that waited may open one while the answers before it are still read.)
    }

    /// An API server that answers by path: `/silent...` never (the connection stays open, as a
    /// peer gone silent), `/throttled...` 429 with `Retry-After: 3600` the first time (counted in
    /// `throttled`) and 200 after, anything else 200 at once.
    async fn routing_server(throttled: Arc<std::sync::atomic::AtomicUsize>) -> TestServer {
        TestServer::answering(move |request| {
            if request.path().starts_with("/silent") {
                Answer::Never
            } else if request.path().starts_with("/throttled") && throttled.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                Answer::json(429, "{}").with_header("retry-after", "3600")
            } else {
                Answer::json(200, "{}")
            }
        })
        .await
    }

    /// How long a test waits for what must happen long before it (a guard against a hang, never
    /// a measure of speed).
    const GUARD: Duration = Duration::from_secs(60);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_sleeping_out_kube_s_backoff_holds_no_permit() {
        let throttled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let server = routing_server(throttled.clone()).await;
        let config = server.config();
        // One permit: whatever holds it holds up every other request.
        let limit = GlobalConcurrencyLimitLayer::new(1);
        let reads = client(config, &limit, ClientOptions::RETRYING).unwrap();
        let backing_off = tokio::spawn({
            let reads = reads.clone();
            async move { reads.request_text(Request::get("/throttled").body(Vec::new()).unwrap()).await }
        });
        // Answered 429 (the server asks for an hour): kube's retry now sleeps before asking again.
        while throttled.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Another request goes meanwhile: the sleeping one gave its permit back.
        let other = tokio::time::timeout(GUARD, reads.request_text(Request::get("/other").body(Vec::new()).unwrap())).await;
        assert_eq!(other.expect("a request waited for the permit of one sleeping out its backoff").unwrap(), "{}");
        assert!(!backing_off.is_finished(), "the throttled request is still backing off: kube's retry is in place");
        backing_off.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_never_answered_fails_and_gives_its_permit_back() {
        let server = routing_server(Arc::default()).await;
        let config = server.config();
        let limit = GlobalConcurrencyLimitLayer::new(1);
        let after = Duration::from_millis(300);
        // Both clients of a connection: a write (not resent) and an eviction's client.
        for silent in [
            client(config.clone(), &limit, ClientOptions::RETRYING.answering_within(after)).unwrap(),
            client(config.clone(), &limit, ClientOptions::WITHOUT_RETRY.answering_within(after)).unwrap(),
        ] {
            let request = Request::post("/silent").body(b"{}".to_vec()).unwrap();
            let failed = tokio::time::timeout(GUARD, silent.request_text(request)).await.expect("a request never answered hung");
            let error = failed.expect_err("the silent server answered");
            let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
            let mut unanswered = false;
            while let Some(e) = cause {
                unanswered |= e.is::<Unanswered>();
                cause = e.source();
            }
            assert!(unanswered, "failed otherwise than unanswered: {error:?}");
            // The one permit came back: the next request goes and is answered.
            let next = tokio::time::timeout(GUARD, silent.request_text(Request::get("/next").body(Vec::new()).unwrap())).await;
            assert_eq!(next.expect("the permit of the unanswered request never came back").unwrap(), "{}");
        }
    }

    /// Sends a `GET` of a node through the run's reads' client (production's options) to a
    /// server that answers its `n`th request (from 0) with `answer(n)`, until it fails: its
    /// error and how many connections (one a try) it made.
    async fn read_until_it_fails(answer: fn(usize) -> Answer) -> (kube::Error, usize) {
        let asked = std::sync::atomic::AtomicUsize::new(0);
        let server = TestServer::answering(move |_| answer(asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst))).await;
        let options = ClientOptions::RETRYING.answering_within(TEST_ANSWER_TIMEOUT);
        let reads = client(server.config(), &in_flight_limit(), options).unwrap();
        let error = reads.request_text(Request::get("/api/v1/nodes/worker-0").body(Vec::new()).unwrap()).await.expect_err("answered");
        (error, server.connections_made().await)
    }

    /// The answer timeout of [`read_until_it_fails`]'s client: real time, short. Not tokio's
    /// paused clock: it jumps to the next timer whenever the runtime has nothing to do, also
    /// while a packet is still on its way over loopback (tokio#4522), so a connection the
    /// server closes at once could be taken for one that never answered. A closed connection
    /// must be seen within it to count as broken: 2 s leaves a suite on two loaded cores room
    /// (the silent cases then take 5 and 7 s). The tries are counted, never timed.
    const TEST_ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

    #[tokio::test]
    async fn a_read_that_keeps_timing_out_is_sent_again_once_and_fails() {
        let (error, tries) = read_until_it_fails(|_| Answer::Never).await;
        assert!(unanswered(&error), "failed otherwise than unanswered: {error:?}");
        assert_eq!(tries, 1 + UNANSWERED_RESENDS as usize, "a silent API server was asked {tries} times");
    }

    #[tokio::test]
    async fn broken_connections_between_two_timeouts_are_still_sent_again() {
        // Silent, broken twice, silent: the broken ones are sent again as ever, the second
        // timeout ends it (tries were left for broken connections: 10 in all).
        let (error, tries) = read_until_it_fails(|n| if n == 0 || n == 3 { Answer::Never } else { Answer::Close }).await;
        assert!(unanswered(&error), "failed otherwise than unanswered: {error:?}");
        assert_eq!(tries, 4);
    }

    #[test]
    fn watches_and_streams_are_not_cut_and_an_unanswered_read_is_sent_again() {
        let get = |uri: &str| Request::get(uri).body(()).unwrap();
        for held_open in [
            "/api/v1/nodes?watch=true&resourceVersion=5",
            "/api/v1/watch/nodes",
            "/api/v1/namespaces/a/pods/p/exec?command=true",
            "/api/v1/namespaces/a/pods/p/attach",
            "/api/v1/namespaces/a/pods/p/log?follow=true",
            "/api/v1/namespaces/a/pods/p/portforward",
            "/api/v1/namespaces/a/services/s/proxy/healthz",
            "/api/v1/nodes/n/proxy",
        ] {
            assert!(long_running(&get(held_open)), "{held_open}");
        }
        for answered in [
            "/api/v1/nodes",
            "/api/v1/nodes/watch",
            "/api/v1/namespaces/log",
            "/api/v1/namespaces/exec/pods/proxy",
            "/api/v1/namespaces/a/pods/p/eviction",
            "/apis/coordination.k8s.io/v1/namespaces/a/leases/log",
        ] {
            assert!(!long_running(&get(answered)), "{answered}");
        }
        assert!(broken_connection(&Unanswered { after: ANSWER_TIMEOUT }));
    }
}
