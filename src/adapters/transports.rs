//! The run's power transport, chosen by `--transport`: SSH, the cluster API's exec
//! ([`crate::adapters::kube::exec`]), or `auto`'s order per node: SSH, then the cluster API
//! (when the run has a cluster), then the BMC (the runner's fallback, as before). One type for
//! the runner, which is generic over it.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use fleetboot_core::hosts::Host;
use fleetboot_core::journal::Delivery;
use fleetboot_core::transport::{PowerTransport, TransportError};

use crate::adapters::kube::exec::KubeTransport;
use crate::adapters::ssh::SshTransport;

pub enum NodeTransport {
    Ssh(SshTransport),
    Kube(KubeTransport),
    /// `auto` on a cluster: SSH first; where SSH cannot reach a node (refused, timed out,
    /// authentication failed: never a host key that changed), the cluster API's exec.
    SshThenKube(Box<Chain>),
}

pub struct Chain {
    ssh: SshTransport,
    kube: KubeTransport,
    /// The nodes SSH could not reach and the API's exec did: they stay on the API.
    on_kube: Mutex<HashSet<String>>,
    /// Escalations not yet taken by the runner (journaled by it).
    pending: Mutex<HashMap<String, Vec<(String, String)>>>,
    /// The nodes a reboot went to over SSH: while they are down, SSH failing is the reboot, not a
    /// reason to ask the API (whose exec fails too, one request per poll).
    sent_over_ssh: Mutex<HashSet<String>>,
}

impl Chain {
    pub fn new(ssh: SshTransport, kube: KubeTransport) -> Chain {
        Chain { ssh, kube, on_kube: Default::default(), pending: Default::default(), sent_over_ssh: Default::default() }
    }

    fn on_kube(&self, host: &Host) -> bool {
        self.on_kube.lock().unwrap().contains(&host.name)
    }

    /// The boot ID through SSH, or through the API where SSH cannot reach the node.
    async fn read(&self, host: &Host, right_before: bool) -> Result<String, TransportError> {
        if self.on_kube(host) {
            return self.kube.read_boot_id(host).await;
        }
        let ssh = if right_before { self.ssh.read_boot_id_before_reboot(host).await } else { self.ssh.read_boot_id(host).await };
        let ssh_error = match ssh {
            Ok(id) => return Ok(id),
            Err(e) if self.sent_over_ssh.lock().unwrap().contains(&host.name) => return Err(e),
            Err(e @ (TransportError::Unreachable(_) | TransportError::Timeout(_) | TransportError::Auth(_))) => e,
            Err(other) => return Err(other),
        };
        match self.kube.read_boot_id(host).await {
            Ok(id) => {
                self.on_kube.lock().unwrap().insert(host.name.clone());
                self.pending.lock().unwrap().entry(host.name.clone()).or_default().push((
                    "kube".to_owned(),
                    format!("SSH cannot reach it ({ssh_error}); the cluster API's exec into its machine-config daemon pod does"),
                ));
                Ok(id)
            }
            // Neither: the SSH error (its kind decides the BMC fallback), with the API's too.
            Err(kube_error) => Err(with_note(ssh_error, &format!("the cluster API's exec neither: {kube_error}"))),
        }
    }
}

/// `error` with `note` after its message, of the same kind.
fn with_note(error: TransportError, note: &str) -> TransportError {
    match error {
        TransportError::Unreachable(m) => TransportError::Unreachable(format!("{m}; {note}")),
        TransportError::Timeout(m) => TransportError::Timeout(format!("{m}; {note}")),
        TransportError::Auth(m) => TransportError::Auth(format!("{m}; {note}")),
        TransportError::Forbidden(m) => TransportError::Forbidden(format!("{m}; {note}")),
        other => other,
    }
}

macro_rules! each {
    ($self:ident, $t:ident => $call:expr, $host:expr) => {
        match $self {
            NodeTransport::Ssh($t) => $call,
            NodeTransport::Kube($t) => $call,
            NodeTransport::SshThenKube(chain) if chain.on_kube($host) => {
                let $t = &chain.kube;
                $call
            }
            NodeTransport::SshThenKube(chain) => {
                let $t = &chain.ssh;
                $call
            }
        }
    };
}

impl PowerTransport for NodeTransport {
    async fn read_boot_id(&self, host: &Host) -> Result<String, TransportError> {
        match self {
            NodeTransport::SshThenKube(chain) => chain.read(host, false).await,
            _ => each!(self, t => t.read_boot_id(host).await, host),
        }
    }

    async fn read_boot_id_before_reboot(&self, host: &Host) -> Result<String, TransportError> {
        match self {
            NodeTransport::SshThenKube(chain) => chain.read(host, true).await,
            _ => each!(self, t => t.read_boot_id_before_reboot(host).await, host),
        }
    }

    async fn send_reboot(&self, host: &Host) -> Result<Delivery, TransportError> {
        if let NodeTransport::SshThenKube(chain) = self
            && !chain.on_kube(host)
        {
            chain.sent_over_ssh.lock().unwrap().insert(host.name.clone());
        }
        each!(self, t => t.send_reboot(host).await, host)
    }

    async fn cancel_reboot(&self, host: &Host) -> Result<(), TransportError> {
        each!(self, t => t.cancel_reboot(host).await, host)
    }

    async fn run_check(&self, host: &Host, command: &str) -> Result<(), TransportError> {
        each!(self, t => t.run_check(host, command).await, host)
    }

    async fn soft_reboot_count(&self, host: &Host) -> Option<u64> {
        each!(self, t => t.soft_reboot_count(host).await, host)
    }

    fn take_escalations(&self, host: &Host) -> Vec<(String, String)> {
        match self {
            NodeTransport::SshThenKube(chain) => chain.pending.lock().unwrap().remove(&host.name).unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    fn attach_journal(&self, hook: fleetboot_core::transport::JournalHook) {
        match self {
            NodeTransport::Ssh(_) => {}
            NodeTransport::Kube(kube) => kube.attach_journal(hook),
            NodeTransport::SshThenKube(chain) => chain.kube.attach_journal(hook),
        }
    }

    async fn release(&self, host: &Host) {
        each!(self, t => t.release(host).await, host)
    }
}
