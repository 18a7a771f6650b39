//! `--block-on-alerts URL`: the alerts an Alertmanager fires now, through its API v2
//! (`GET /api/v2/alerts?active=true&silenced=false&inhibited=false`).

use std::time::Duration;

use fleetboot_core::batch::AlertNow;
use serde::Deserialize;

/// One Alertmanager, by its URL (the root, or the `/api/v2/alerts` endpoint itself).
pub struct AlertSource {
    client: reqwest::Client,
    endpoint: reqwest::Url,
    /// The URL as shown: scheme and host only.
    pub shown: String,
}

#[derive(Deserialize)]
struct Alert {
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    status: Option<AlertStatus>,
}

#[derive(Deserialize)]
struct AlertStatus {
    #[serde(default)]
    state: String,
}

impl AlertSource {
    pub fn new(url: &str) -> Result<AlertSource, String> {
        let shown = super::notify::redact(url);
        let mut endpoint = reqwest::Url::parse(url).map_err(|e| format!("--block-on-alerts {shown}: {e}"))?;
        if !matches!(endpoint.scheme(), "http" | "https") {
            return Err(format!("--block-on-alerts {shown}: expected an http:// or https:// URL"));
        }
        if !endpoint.path().trim_end_matches('/').ends_with("/api/v2/alerts") {
            let path = format!("{}/api/v2/alerts", endpoint.path().trim_end_matches('/'));
            endpoint.set_path(&path);
        }
        endpoint.set_query(Some("active=true&silenced=false&inhibited=false"));
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(super::notify::tls_config().map_err(|e| format!("--block-on-alerts {shown}: {e}"))?)
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("--block-on-alerts {shown}: {e}"))?;
        Ok(AlertSource { client, endpoint, shown })
    }

    /// The alerts listed now, or why they could not be read (the URL shown redacted).
    pub async fn alerts(&self) -> Result<Vec<AlertNow>, String> {
        let shown = &self.shown;
        let answer = self.client.get(self.endpoint.clone()).send().await.map_err(|_| format!("cannot read the alerts at {shown}"))?;
        if !answer.status().is_success() {
            return Err(format!("the Alertmanager at {shown} answered {}", answer.status()));
        }
        let alerts: Vec<Alert> = answer.json().await.map_err(|e| format!("the Alertmanager at {shown} answered no alert list: {e}"))?;
        Ok(alerts
            .into_iter()
            .map(|a| AlertNow {
                name: a.labels.get("alertname").cloned().unwrap_or_default(),
                state: a.status.map_or_else(|| "active".to_owned(), |s| s.state),
            })
            .collect())
    }
}
