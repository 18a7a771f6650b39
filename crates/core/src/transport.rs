//! The power-transport seam: how a reboot reaches a node and how its boot ID is read.
//! SSH is the first implementation; Redfish joins it as the fallback.

use std::future::Future;

use crate::hosts::Host;
use crate::journal::Delivery;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// Refused, reset, timed out before the protocol started: worth another try.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The host's identity could not be trusted. Never retried, never ignored.
    #[error("{0}")]
    HostKey(String),
    #[error("authentication failed: {0}")]
    Auth(String),
    /// Authenticated, but the API's authorization refused the request (HTTP 403): the
    /// credentials work, the permission is missing. Carries the API's message.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The command ran and exited non-zero.
    #[error("command `{command}` exited with {exit}{}", stderr_suffix(.stderr))]
    CommandFailed { command: String, exit: u32, stderr: String },
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("{0}")]
    Other(String),
}

fn stderr_suffix(stderr: &str) -> String {
    let trimmed = stderr.trim();
    if trimmed.is_empty() { String::new() } else { format!(": {trimmed}") }
}

impl TransportError {
    /// Whether another connection attempt may succeed where this one failed.
    pub fn is_transient(&self) -> bool {
        matches!(self, TransportError::Unreachable(_) | TransportError::Timeout(_))
    }
}

/// Writes one record to the run's journal; false when it could not.
pub type JournalHook = std::sync::Arc<dyn Fn(crate::journal::Entry) -> bool + Send + Sync>;

pub trait PowerTransport: Send + Sync + 'static {
    /// The node's current boot ID.
    fn read_boot_id(&self, host: &Host) -> impl Future<Output = Result<String, TransportError>> + Send;
    /// Hands the reboot to the node. Returns how it was handed over; a refusal is an error.
    fn send_reboot(&self, host: &Host) -> impl Future<Output = Result<Delivery, TransportError>> + Send;
    /// Cancels a reboot that was scheduled but has not begun.
    fn cancel_reboot(&self, host: &Host) -> impl Future<Output = Result<(), TransportError>> + Send;
    /// Runs the post-reboot check; Ok means it passed.
    fn run_check(&self, host: &Host, command: &str) -> impl Future<Output = Result<(), TransportError>> + Send;
    /// The boot ID right before this host's reboot is sent: a transport with connections may
    /// keep the one it read it on for the `send_reboot` that follows (one connection instead of
    /// two, so a freed slot is refilled sooner). The same answer as `read_boot_id`.
    fn read_boot_id_before_reboot(&self, host: &Host) -> impl Future<Output = Result<String, TransportError>> + Send {
        self.read_boot_id(host)
    }
    /// The host's turn is near: a transport with connections may open one now (connected,
    /// host key verified, authenticated; nothing run on it) for
    /// `read_boot_id_before_reboot` to read on when the turn comes, so the handshake is off
    /// the path from a freed slot to the next reboot. Nothing is reported: the read at the
    /// turn connects again where this failed, and says why if that fails too.
    fn warm_up(&self, host: &Host) -> impl Future<Output = ()> + Send {
        let _ = host;
        async {}
    }
    /// systemd's `SoftRebootsCount` (soft reboots since the last full boot), when the host
    /// reports one; None when it cannot (no systemd, systemd < 256, no answer). Read with the
    /// boot ID: a later count that went up under the same boot ID is a soft reboot.
    fn soft_reboot_count(&self, host: &Host) -> impl Future<Output = Option<u64>> + Send {
        let _ = host;
        async { None }
    }
    /// The transports this host was reached through instead of the first of the order, with
    /// why, since the last call (taken once: the runner journals them).
    fn take_escalations(&self, host: &Host) -> Vec<(String, String)> {
        let _ = host;
        Vec::new()
    }
    /// The run's journal, for a transport that must journal what it creates before it creates
    /// it (the kube transport's debug pods). The hook returns false when the record could not
    /// be written: nothing may then be created.
    fn attach_journal(&self, hook: JournalHook) {
        let _ = hook;
    }
    /// Whether reaching this host goes through the cluster's API server (an exec into a pod):
    /// then a boot-ID poll per interval is a request per node per interval, and the runner
    /// waits on the Node watch between reads instead.
    fn reaches_through_the_api(&self, host: &Host) -> bool {
        let _ = host;
        false
    }
    /// This host's task is over: whatever the transport kept for it goes.
    fn release(&self, host: &Host) -> impl Future<Output = ()> + Send {
        let _ = host;
        async {}
    }
}

/// Reads systemd's soft-reboot count (`org.freedesktop.systemd1(5)`, Manager property
/// `SoftRebootsCount`, systemd 256); an older systemd prints an empty line.
pub const SOFT_REBOOTS_COMMAND: &str = "systemctl show --property=SoftRebootsCount --value";

/// The count [`SOFT_REBOOTS_COMMAND`] printed, when it printed one.
pub fn parse_soft_reboots(output: &[u8]) -> Option<u64> {
    String::from_utf8_lossy(output).trim().parse().ok()
}

/// A boot ID as printed by `cat /proc/sys/kernel/random/boot_id`: one non-empty line.
pub fn parse_boot_id(output: &[u8]) -> Result<String, TransportError> {
    let text = String::from_utf8_lossy(output);
    let id = text.trim();
    if id.is_empty() || id.contains(char::is_whitespace) || id.len() > 128 {
        return Err(TransportError::Other(format!("the boot ID command printed {:?}, not a boot ID", crate::table::shorten(&text, 80))));
    }
    Ok(id.to_owned())
}
