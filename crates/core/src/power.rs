//! How power reaches a node, in the journal's terms.

/// What the reboot should be: an orderly restart first, a hard one when that is not enough.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartKind {
    Graceful,
    Force,
}

/// What one node's BMC answered to `fleetboot power`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PowerResult {
    pub node: String,
    pub bmc: String,
    pub power_state: Option<String>,
    pub action: Option<String>,
    pub allowed_resets: Option<Vec<String>>,
    pub error: Option<String>,
}
