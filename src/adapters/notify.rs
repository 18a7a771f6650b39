//! `--notify URL`: posts JSON messages to a webhook, in order, from one background task.
//! Delivery failures are warnings, never a stop; the URL (which often holds a token) is shown
//! only as its scheme and host.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

/// A webhook URL that cannot be used, named without its secret parts.
#[derive(Debug, thiserror::Error)]
#[error("--notify {shown}: {reason}")]
pub struct NotifyError {
    pub shown: String,
    pub reason: String,
}

/// The URL as it may be shown: `https://hooks.example.com/…` (no path, query or credentials).
pub fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let port = u.port().map_or(String::new(), |p| format!(":{p}"));
            format!("{}://{}{port}/…", u.scheme(), u.host_str().unwrap_or("?"))
        }
        Err(_) => "(an unparsable URL)".to_owned(),
    }
}

/// TLS for webhooks and Alertmanagers: ring, and the system's trust store.
pub fn tls_config() -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone()).map_err(|e| e.to_string())?;
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// The posting task and its queue.
pub struct Notifier {
    tx: Option<mpsc::UnboundedSender<Value>>,
    task: tokio::task::JoinHandle<()>,
}

impl Notifier {
    /// Starts the task; `warn` hears of every message that could not be delivered.
    pub fn start(url: &str, warn: impl Fn(String) + Send + 'static) -> Result<Notifier, NotifyError> {
        let shown = redact(url);
        let bad = |reason: String| NotifyError { shown: shown.clone(), reason };
        let parsed = reqwest::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad("expected an http:// or https:// URL".into()));
        }
        let tls = tls_config().map_err(bad)?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| bad(e.to_string()))?;
        let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
        let task = tokio::spawn(async move {
            while let Some(body) = rx.recv().await {
                // reqwest's errors print the URL: only the redacted one is ever shown.
                let outcome = client.post(parsed.clone()).json(&body).send().await;
                match outcome {
                    Ok(answer) if answer.status().is_success() => {}
                    Ok(answer) => warn(format!("--notify {shown}: the webhook answered {}", answer.status())),
                    Err(e) => {
                        let why = if e.is_timeout() {
                            "no answer within 10s"
                        } else if e.is_connect() {
                            "could not connect"
                        } else {
                            "the request failed"
                        };
                        warn(format!("--notify {shown}: {why}; the run goes on"));
                    }
                }
            }
        });
        Ok(Notifier { tx: Some(tx), task })
    }

    /// Queues a message (never waits).
    pub fn send(&self, body: Value) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(body);
        }
    }

    /// Delivers what is queued (at most `limit` more), then stops.
    pub async fn finish(mut self, limit: Duration) {
        self.tx = None;
        let _ = tokio::time::timeout(limit, &mut self.task).await;
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_url_is_shown_without_its_secret() {
        assert_eq!(super::redact("https://hooks.slack.com/services/T000/B000/XXXXSECRET"), "https://hooks.slack.com/…");
        assert_eq!(super::redact("http://user:pw@127.0.0.1:9000/hook?token=abc"), "http://127.0.0.1:9000/…");
    }
}
