//! Power operations through the nodes' BMCs, every node at once: the BMC inventory keeps one
//! operation per BMC and the global Redfish rate.

use fleetboot_core::power::{PowerResult, RestartKind};

use crate::adapters::bmc::RedfishPower;

/// What `fleetboot power` asks of each BMC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerOperation {
    /// PowerState and the allowed reset types.
    Status,
    /// `power_on`: a powered-off system is switched on (`--yes-power-on`); otherwise it is
    /// left off and reported so.
    Restart { kind: RestartKind, power_on: bool },
    /// On, then wait until the system reports On.
    On,
    /// ForceOff (or GracefulShutdown), then wait until Off.
    Off { graceful: bool },
}

/// Runs the operation on every node; each node's answer or error, in the nodes' order.
pub async fn operate(power: &RedfishPower, nodes: &[String], operation: PowerOperation) -> Vec<PowerResult> {
    futures::future::join_all(nodes.iter().map(|node| async move {
        let bmc = power.url_of(node).unwrap_or_default().to_owned();
        let outcome = match operation {
            PowerOperation::Status => power.status(node).await.map(|s| (s, None)),
            PowerOperation::Restart { kind, power_on } => match power.restart(node, kind, power_on).await {
                Ok(sent) => power.status(node).await.map(|s| (s, Some(sent))),
                Err(e) if e.is_powered_off() => {
                    return PowerResult {
                        node: node.clone(),
                        bmc,
                        power_state: Some("Off".into()),
                        action: Some("none: powered off, left off".into()),
                        allowed_resets: None,
                        error: Some(e.to_string()),
                    };
                }
                Err(e) => Err(e),
            },
            PowerOperation::On => power.power(node, "On", Some("On")).await.map(|s| (s, Some("On".to_owned()))),
            PowerOperation::Off { graceful } => {
                let reset = if graceful { "GracefulShutdown" } else { "ForceOff" };
                power.power(node, reset, Some("Off")).await.map(|s| (s, Some(reset.to_owned())))
            }
        };
        match outcome {
            Ok((system, action)) => PowerResult {
                node: node.clone(),
                bmc,
                power_state: Some(system.power_state),
                action,
                allowed_resets: system.allowed_resets,
                error: None,
            },
            Err(e) => {
                PowerResult { node: node.clone(), bmc, power_state: None, action: None, allowed_resets: None, error: Some(e.to_string()) }
            }
        }
    }))
    .await
}
