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

/// How many requests one connection to the cluster (its clients: [`client`] and the evictions'
/// [`client_without_retry`]) has in flight at once; the rest wait their turn in the client.
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

/// kube's client for `config`, with [`ResendBrokenReads`] around it and `limit` under it.
pub fn client(config: kube::Config, limit: &GlobalConcurrencyLimitLayer) -> Result<kube::Client, kube::Error> {
    let builder = kube::client::ClientBuilder::try_from(config)?;
    // The limit sits under the buffer: the buffer's one worker holds the only permit taken
    // ahead of a call, and a read waiting [`RESEND_PAUSE`] to be sent again holds none (the
    // retry is above). The retry needs a service it can clone: kube's stack is one boxed
    // service, so behind a buffer (as kube's own `Client` puts it).
    Ok(builder
        .with_layer(limit)
        .with_layer(&tower::buffer::BufferLayer::new(1024))
        .with_layer(&tower::retry::RetryLayer::new(ResendBrokenReads::default()))
        .build())
}

/// kube's client for `config` without any retry of its own or of [`ResendBrokenReads`] (the
/// caller answers every error itself), under `limit`.
pub fn client_without_retry(config: kube::Config, limit: &GlobalConcurrencyLimitLayer) -> Result<kube::Client, kube::Error> {
    let mut config = config;
    config.default_retry = false;
    // kube's `Client` puts its own buffer in front: the limit is under it, as in [`client`].
    Ok(kube::client::ClientBuilder::try_from(config)?.with_layer(limit).build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    /// What the API server below has seen: connections and requests open now, and the most
    /// requests open at once.
    #[derive(Default)]
    struct Seen {
        connections: usize,
        requests: usize,
        most_requests: usize,
    }

    /// An HTTP/1.1 server on loopback that keeps every request unanswered until `gate` opens,
    /// counting what is open at once.
    async fn holding_server(seen: Arc<Mutex<Seen>>, gate: tokio::sync::watch::Receiver<bool>) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (seen, mut gate) = (seen.clone(), gate.clone());
                tokio::spawn(async move {
                    {
                        let mut s = seen.lock().unwrap();
                        s.connections += 1;
                    }
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read);
                    'requests: loop {
                        // A GET's head, to its empty line (no body).
                        let mut line = String::new();
                        loop {
                            line.clear();
                            match lines.read_line(&mut line).await {
                                Ok(0) | Err(_) => break 'requests,
                                Ok(_) if line == "\r\n" => break,
                                Ok(_) => {}
                            }
                        }
                        {
                            let mut s = seen.lock().unwrap();
                            s.requests += 1;
                            s.most_requests = s.most_requests.max(s.requests);
                        }
                        let _ = gate.wait_for(|open| *open).await;
                        seen.lock().unwrap().requests -= 1;
                        let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                        if write.write_all(answer.as_bytes()).await.is_err() {
                            break;
                        }
                    }
                    seen.lock().unwrap().connections -= 1;
                });
            }
        });
        address
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_clients_of_one_connection_keep_at_most_the_cap_of_requests_and_connections_open() {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (open_gate, gate) = tokio::sync::watch::channel(false);
        let address = holding_server(seen.clone(), gate).await;
        let config = kube::Config::new(format!("http://{address}").parse().unwrap());
        // Both clients of a connection, as `ClusterConnection::open` makes them.
        let limit = in_flight_limit();
        let reads = client(config.clone(), &limit).unwrap();
        let evictions = client_without_retry(config, &limit).unwrap();
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
        {
            let s = seen.lock().unwrap();
            assert_eq!((s.requests, s.connections), (MAX_REQUESTS_IN_FLIGHT, MAX_REQUESTS_IN_FLIGHT));
        }
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
}
