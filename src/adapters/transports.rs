//! The run's power transport, chosen by `--transport`: SSH, the cluster API's exec
//! ([`crate::adapters::kube::exec`]), or `auto`'s order per node (`[transport] order`, by
//! default SSH, then the cluster API when the run has a cluster, then the BMC: the runner's
//! fallback). One type for
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
    /// `auto` on a cluster: SSH and the cluster API's exec, in `[transport] order`'s order;
    /// where the first cannot reach a node (refused, timed out, authentication failed or
    /// forbidden: never a host key that changed), the second.
    SshThenKube(Box<Chain>),
}

pub struct Chain {
    ssh: SshTransport,
    kube: KubeTransport,
    /// The cluster API's exec is tried first, SSH second (`order = ["kube", "ssh", ...]`).
    kube_first: bool,
    /// The nodes the first rung could not reach and the second did: they stay on the second.
    on_second: Mutex<HashSet<String>>,
    /// Escalations not yet taken by the runner (journaled by it).
    pending: Mutex<HashMap<String, Vec<(String, String)>>>,
    /// The nodes a reboot went to through the first rung: while they are down, its failing is
    /// the reboot, not a reason to ask the second (which fails too, one request per poll).
    sent_over_first: Mutex<HashSet<String>>,
}

impl Chain {
    /// SSH first, then the cluster API.
    pub fn new(ssh: SshTransport, kube: KubeTransport) -> Chain {
        Chain::in_order(ssh, kube, false)
    }

    pub fn in_order(ssh: SshTransport, kube: KubeTransport, kube_first: bool) -> Chain {
        Chain { ssh, kube, kube_first, on_second: Default::default(), pending: Default::default(), sent_over_first: Default::default() }
    }

    /// Whether this host's commands go through the cluster API.
    fn on_kube(&self, host: &Host) -> bool {
        self.on_second.lock().unwrap().contains(&host.name) != self.kube_first
    }

    async fn read_through(&self, kube: bool, host: &Host, right_before: bool) -> Result<String, TransportError> {
        match (kube, right_before) {
            (true, _) => self.kube.read_boot_id(host).await,
            (false, true) => self.ssh.read_boot_id_before_reboot(host).await,
            (false, false) => self.ssh.read_boot_id(host).await,
        }
    }

    /// The boot ID through the first rung, or through the second where the first cannot reach
    /// the node.
    async fn read(&self, host: &Host, right_before: bool) -> Result<String, TransportError> {
        if self.on_second.lock().unwrap().contains(&host.name) {
            return self.read_through(!self.kube_first, host, right_before).await;
        }
        let first_error = match self.read_through(self.kube_first, host, right_before).await {
            Ok(id) => return Ok(id),
            Err(e) if self.sent_over_first.lock().unwrap().contains(&host.name) => return Err(e),
            Err(
                e @ (TransportError::Unreachable(_) | TransportError::Timeout(_) | TransportError::Auth(_) | TransportError::Forbidden(_)),
            ) => e,
            Err(other) => return Err(other),
        };
        let (second, reason, neither) = if self.kube_first {
            ("ssh", format!("the cluster API's exec cannot reach it ({first_error}); SSH does"), "SSH neither")
        } else {
            (
                "kube",
                format!("SSH cannot reach it ({first_error}); the cluster API's exec into its machine-config daemon pod does"),
                "the cluster API's exec neither",
            )
        };
        match self.read_through(!self.kube_first, host, right_before).await {
            Ok(id) => {
                self.on_second.lock().unwrap().insert(host.name.clone());
                self.pending.lock().unwrap().entry(host.name.clone()).or_default().push((second.to_owned(), reason));
                Ok(id)
            }
            // Neither: the first error (its kind decides the BMC fallback), with the second's too.
            Err(second_error) => Err(with_note(first_error, &format!("{neither}: {second_error}"))),
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
            && !chain.on_second.lock().unwrap().contains(&host.name)
        {
            chain.sent_over_first.lock().unwrap().insert(host.name.clone());
        }
        each!(self, t => t.send_reboot(host).await, host)
    }

    async fn cancel_reboot(&self, host: &Host) -> Result<(), TransportError> {
        each!(self, t => t.cancel_reboot(host).await, host)
    }

    async fn run_check(&self, host: &Host, command: &str) -> Result<(), TransportError> {
        each!(self, t => t.run_check(host, command).await, host)
    }

    async fn warm_up(&self, host: &Host) {
        each!(self, t => t.warm_up(host).await, host)
    }

    async fn soft_reboot_count(&self, host: &Host) -> Option<u64> {
        each!(self, t => t.soft_reboot_count(host).await, host)
    }

    fn reaches_through_the_api(&self, host: &Host) -> bool {
        match self {
            NodeTransport::Ssh(_) => false,
            NodeTransport::Kube(_) => true,
            NodeTransport::SshThenKube(chain) => chain.on_kube(host),
        }
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
