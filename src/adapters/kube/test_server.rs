//! An HTTP/1.1 server on loopback for one module's unit tests of the cluster clients: each request
//! read (its head and its `content-length` body) is handed to a function, whose [`Answer`] is
//! written back, or the connection closed, or left unanswered. It binds `127.0.0.1:0` only, and
//! everything it runs (the accepting task and one task per connection) ends when it is dropped.
//! Tests of the product against a real API go to the simulated cluster, not here.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A request as the server read it.
#[derive(Clone, Debug)]
pub struct Request {
    /// Upper case, as sent (`GET`, `PATCH`).
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    pub body: Vec<u8>,
}

impl Request {
    /// The target without its query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }
}

/// What the server does with a request.
#[derive(Clone, Debug)]
pub enum Answer {
    /// Answers with this status, these headers and this JSON body.
    Json { status: u16, headers: Vec<(&'static str, String)>, body: String },
    /// Closes the connection unanswered (a connection that broke after the request was sent).
    Close,
    /// Never answers; the connection stays open until the client closes it (a peer gone silent).
    Never,
}

impl Answer {
    pub fn json(status: u16, body: impl Into<String>) -> Answer {
        Answer::Json { status, headers: Vec::new(), body: body.into() }
    }

    /// This answer with one more header (only a [`Answer::Json`] has any).
    pub fn with_header(self, name: &'static str, value: impl Into<String>) -> Answer {
        match self {
            Answer::Json { status, mut headers, body } => {
                headers.push((name, value.into()));
                Answer::Json { status, headers, body }
            }
            other => other,
        }
    }
}

/// The running server; dropped, it stops accepting and closes every connection.
pub struct TestServer {
    address: SocketAddr,
    /// The peers of the connections accepted, in order, and a signal for each one more.
    accepted: Arc<Mutex<Vec<SocketAddr>>>,
    more: Arc<tokio::sync::Notify>,
    /// The connections open now (accepted and not yet ended by either side).
    open: Arc<AtomicUsize>,
    /// Owns the connections' tasks too: aborted, it drops them (and their sockets).
    accepting: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// Serves every request with `answer`, awaited on the request's connection (so an answer
    /// that waits holds only its own connection).
    pub async fn start<F, A>(answer: F) -> TestServer
    where
        F: Fn(Request) -> A + Send + Sync + 'static,
        A: Future<Output = Answer> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (accepted, more) = (Arc::new(Mutex::new(Vec::new())), Arc::new(tokio::sync::Notify::new()));
        let (answer, open) = (Arc::new(answer), Arc::new(AtomicUsize::new(0)));
        let accepting = tokio::spawn({
            let (accepted, more, open) = (accepted.clone(), more.clone(), open.clone());
            async move {
                let mut connections = tokio::task::JoinSet::new();
                while let Ok((stream, peer)) = listener.accept().await {
                    accepted.lock().unwrap().push(peer);
                    more.notify_waiters();
                    let open = Open::count(&open);
                    let answer = answer.clone();
                    connections.spawn(async move {
                        serve_connection(stream, answer).await;
                        drop(open);
                    });
                    // Reaps the connections already ended, so a long test does not keep them.
                    while connections.try_join_next().is_some() {}
                }
            }
        });
        TestServer { address, accepted, more, open, accepting }
    }

    /// Serves every request with the answer `answer` gives at once.
    pub async fn answering(answer: impl Fn(&Request) -> Answer + Send + Sync + 'static) -> TestServer {
        TestServer::start(move |request| std::future::ready(answer(&request))).await
    }

    /// A kube configuration for this server (plain HTTP, no credentials).
    pub fn config(&self) -> kube::Config {
        kube::Config::new(format!("http://{}", self.address).parse().unwrap())
    }

    /// How many connections are open now (accepted, not yet closed by either side).
    pub fn connections_open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// How many connections the server accepted, every connection made to it before this call
    /// included, whether or not its accepting task had got to it yet: a connection of its own,
    /// queued after them, marks the point (the listener accepts in order), so no wait is
    /// guessed.
    pub async fn connections_made(&self) -> usize {
        let connection = TcpStream::connect(self.address).await.unwrap();
        let marker = connection.local_addr().unwrap();
        loop {
            let more = self.more.notified();
            if let Some(at) = self.accepted.lock().unwrap().iter().position(|peer| *peer == marker) {
                return at;
            }
            more.await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// One connection counted open while this lives (dropped too when its task is aborted).
struct Open(Arc<AtomicUsize>);

impl Open {
    fn count(open: &Arc<AtomicUsize>) -> Open {
        open.fetch_add(1, Ordering::SeqCst);
        Open(open.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Reads requests off one connection and answers each in turn, until it ends or an answer
/// ends it.
async fn serve_connection<F, A>(stream: TcpStream, answer: Arc<F>)
where
    F: Fn(Request) -> A + Send + Sync + 'static,
    A: Future<Output = Answer> + Send + 'static,
{
    let mut stream = BufReader::new(stream);
    while let Some(request) = read_request(&mut stream).await {
        let (status, headers, body) = match answer(request).await {
            Answer::Json { status, headers, body } => (status, headers, body),
            Answer::Close => return,
            Answer::Never => {
                // Waits for the client to give up (its end closes the connection).
                let mut rest = Vec::new();
                let _ = stream.read_to_end(&mut rest).await;
                return;
            }
        };
        let mut reply = format!("HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n", body.len());
        for (name, value) in headers {
            reply.push_str(&format!("{name}: {value}\r\n"));
        }
        reply.push_str("\r\n");
        reply.push_str(&body);
        if stream.get_mut().write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// One request: its head to the empty line, then as many bytes of body as its `content-length`
/// says; `None` when the connection ended first.
async fn read_request(stream: &mut BufReader<TcpStream>) -> Option<Request> {
    let (mut head, mut line) = (Vec::new(), String::new());
    loop {
        line.clear();
        match stream.read_line(&mut line).await {
            Ok(0) | Err(_) => return None,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => head.push(line.trim_end().to_owned()),
        }
    }
    let mut first = head.first()?.split(' ');
    let (method, target) = (first.next()?.to_ascii_uppercase(), first.next()?.to_owned());
    let length = head[1..]
        .iter()
        .find_map(|h| h.split_once(':').filter(|(name, _)| name.eq_ignore_ascii_case("content-length")))
        .map_or(0, |(_, n)| n.trim().parse().unwrap());
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.ok()?;
    Some(Request { method, target, body })
}
