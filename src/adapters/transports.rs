//! The run's power transport, chosen by `--transport`: SSH, or the cluster API's exec
//! ([`crate::adapters::kube::exec`]). One type for the runner, which is generic over it.

use fleetboot_core::hosts::Host;
use fleetboot_core::journal::Delivery;
use fleetboot_core::transport::{PowerTransport, TransportError};

use crate::adapters::kube::exec::KubeTransport;
use crate::adapters::ssh::SshTransport;

pub enum NodeTransport {
    Ssh(SshTransport),
    Kube(KubeTransport),
}

macro_rules! each {
    ($self:ident, $t:ident => $call:expr) => {
        match $self {
            NodeTransport::Ssh($t) => $call,
            NodeTransport::Kube($t) => $call,
        }
    };
}

impl PowerTransport for NodeTransport {
    async fn read_boot_id(&self, host: &Host) -> Result<String, TransportError> {
        each!(self, t => t.read_boot_id(host).await)
    }

    async fn send_reboot(&self, host: &Host) -> Result<Delivery, TransportError> {
        each!(self, t => t.send_reboot(host).await)
    }

    async fn cancel_reboot(&self, host: &Host) -> Result<(), TransportError> {
        each!(self, t => t.cancel_reboot(host).await)
    }

    async fn run_check(&self, host: &Host, command: &str) -> Result<(), TransportError> {
        each!(self, t => t.run_check(host, command).await)
    }

    async fn read_boot_id_before_reboot(&self, host: &Host) -> Result<String, TransportError> {
        each!(self, t => t.read_boot_id_before_reboot(host).await)
    }

    async fn soft_reboot_count(&self, host: &Host) -> Option<u64> {
        each!(self, t => t.soft_reboot_count(host).await)
    }

    async fn release(&self, host: &Host) {
        each!(self, t => t.release(host).await)
    }
}
