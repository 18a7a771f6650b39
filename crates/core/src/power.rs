//! How power reaches a node, in the journal's terms.

/// What the reboot should be: an orderly restart first, a hard one when that is not enough.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartKind {
    Graceful,
    Force,
}
