//! `--metrics-listen ADDR`: serves `GET /metrics` (Prometheus text format) with whatever text
//! the run's metrics hold at that moment. A plain HTTP/1.1 responder: one request per
//! connection.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The listening server; stops when dropped.
pub struct MetricsServer {
    task: tokio::task::JoinHandle<()>,
    pub address: std::net::SocketAddr,
}

impl MetricsServer {
    /// Binds `address` and serves `render()` at `/metrics` (404 elsewhere).
    pub async fn start(address: &str, render: Arc<Mutex<dyn FnMut() -> String + Send>>) -> Result<MetricsServer, std::io::Error> {
        let listener = tokio::net::TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else { continue };
                let render = render.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
                        match tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf)).await {
                            Ok(Ok(n)) if n > 0 => request.extend_from_slice(&buf[..n]),
                            _ => return,
                        }
                    }
                    let line = String::from_utf8_lossy(&request);
                    let (status, body) = if line.starts_with("GET /metrics ") || line.starts_with("GET /metrics?") {
                        ("200 OK", (render.lock().unwrap())())
                    } else {
                        ("404 Not Found", String::new())
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(body.as_bytes()).await;
                });
            }
        });
        Ok(MetricsServer { task, address })
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
