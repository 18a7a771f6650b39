//! The OpenShift SDN → OVN-Kubernetes migration's pure parts: which order of steps a release
//! requires ([`flow_for`]), the checks before and after ([`checks`], the features carried over in [`features`]), the migration journal's
//! records and fold ([`record`]), what a migration tells the world ([`events`]) and its report
//! files ([`report`]). The orchestrator that talks to the cluster is the root crate's
//! `engine::migrate`.

pub mod checks;
pub mod events;
pub mod features;
pub mod live;
pub mod model;
pub mod mtu;
pub mod prerequisites;
pub mod record;
pub mod report;
pub mod start;

pub use record::{Flow, Step};

/// The annotation the seed flow (4.5-4.7) puts on `Network.operator/cluster`.
pub const MIGRATION_ANNOTATION: &str = "networkoperator.openshift.io/network-migration";

/// Why no flow can be chosen for a cluster's release.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    #[error(
        "OpenShift {version} has no OpenShift SDN (removed in 4.17): there is nothing to migrate; clusters upgrade to 4.17 only once they run OVN-Kubernetes"
    )]
    NoOpenShiftSdn { version: String },
    #[error("cannot tell the flow from ClusterVersion {version:?}: pass --flow seed or --flow two-phase")]
    UnknownRelease { version: String },
}

/// `x.y.z` → (x, y).
pub fn minor_version(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The flow the cluster's release requires, with the reason.
///
/// - up to 4.7 the network operator takes the migration annotation and the MCO renders
///   `configure-ovs.sh` from `status.networkType` (cluster-network-operator 4.7
///   `pkg/controller/operconfig/operconfig_controller.go`, `Reconcile`): the seed's order;
/// - 4.8-4.16 the annotation is ignored, a type change needs an applied `spec.migration`
///   (`pkg/network/render.go`, `isDefaultNetworkChangeSafe`) and the MCO renders from
///   `status.migration` (machine-config-operator `pkg/operator/render.go`): the two-phase order
///   of openshift-docs `modules/nw-ovn-kubernetes-migration.adoc`;
/// - 4.17+ has no OpenShift SDN.
pub fn flow_for(version: &str) -> Result<(Flow, String), FlowError> {
    match minor_version(version) {
        Some((4, minor)) if minor <= 7 => Ok((
            Flow::Seed,
            format!(
                "OpenShift {version} (4.5-4.7): the network operator honours the network-migration annotation and the MCO renders configure-ovs.sh from status.networkType, so the seed document's order applies"
            ),
        )),
        Some((4, minor)) if minor <= 16 => Ok((
            Flow::TwoPhase,
            format!(
                "OpenShift {version} (4.8-4.16): the network operator ignores the annotation and refuses a type change until spec.migration is applied; the MCO renders configure-ovs.sh from status.migration, so the new config rolls out first (pools unpaused), then the switch"
            ),
        )),
        Some((4, _)) => Err(FlowError::NoOpenShiftSdn { version: version.to_owned() }),
        _ => Err(FlowError::UnknownRelease { version: version.to_owned() }),
    }
}

/// The flow a migration to `target` needs on the cluster's release: [`flow_for`], except that a
/// rollback to OpenShift SDN on 4.8-4.16 is [`Flow::Rollback`] (openshift-docs
/// `modules/nw-ovn-kubernetes-rollback.adoc`: pools paused first, unpaused only after every node
/// rebooted), not the forward two-phase shape.
pub fn flow_for_target(version: &str, target: &str) -> Result<(Flow, String), FlowError> {
    match flow_for(version)? {
        (Flow::TwoPhase, _) if target == "OpenShiftSDN" => Ok((
            Flow::Rollback,
            format!(
                "OpenShift {version} (4.8-4.16), rollback (openshift-docs nw-ovn-kubernetes-rollback.adoc): the pools are paused first, spec.migration and spec.networkType go back to OpenShiftSDN, every node reboots, and only then are the pools unpaused, so the MCO never reboots a node into configure-ovs.sh OpenShiftSDN while OVN-Kubernetes still needs br-ex"
            ),
        )),
        found => Ok(found),
    }
}

/// What the release's documentation says about when a rollback to OpenShift SDN is allowed,
/// quoted, and fleetboot's position. Up to 4.14 the rollback page (4.6 and 4.9 read:
/// `networking/ovn_kubernetes_network_provider/rollback-to-openshift-sdn`) allows it after a
/// failed migration only; from 4.15 (`modules/nw-ovn-kubernetes-rollback.adoc`) after a
/// successful one only. fleetboot allows both: the order of steps is the same, and a cluster
/// half way is the one that needs a way back most.
pub fn rollback_allowed(version: &str) -> String {
    let docs = match minor_version(version) {
        Some((4, minor)) if minor >= 15 => {
            "the 4.15+ documentation: \"You must wait until the migration process from OpenShift SDN to OVN-Kubernetes network plugin is successful before initiating a rollback.\""
        }
        _ => {
            "the documentation up to 4.14 (the 4.6 and 4.9 pages): \"Only rollback to OpenShift SDN if the migration to OVN-Kubernetes fails.\""
        }
    };
    format!("when a rollback is allowed: {docs} fleetboot allows both, after a failed and after a successful migration")
}

/// The network type a migration to `target` leaves.
pub fn source_type(target: &str) -> &'static str {
    if target == "OVNKubernetes" { "OpenShiftSDN" } else { "OVNKubernetes" }
}

/// The namespace of the network plugin a migration to `target` leaves behind (step 11 deletes it).
pub fn old_namespace(target: &str) -> &'static str {
    if target == "OVNKubernetes" { "openshift-sdn" } else { "openshift-ovn-kubernetes" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flow_follows_the_cluster_version() {
        assert_eq!(flow_for("4.5.41").unwrap().0, Flow::Seed);
        assert_eq!(flow_for("4.7.60").unwrap().0, Flow::Seed);
        assert_eq!(flow_for("4.8.0").unwrap().0, Flow::TwoPhase);
        assert_eq!(flow_for("4.10.3").unwrap().0, Flow::TwoPhase);
        assert_eq!(flow_for("4.16.21").unwrap().0, Flow::TwoPhase);
        assert_eq!(flow_for("4.17.0").unwrap_err(), FlowError::NoOpenShiftSdn { version: "4.17.0".into() });
        assert!(flow_for("4.17.0").unwrap_err().to_string().contains("no OpenShift SDN"));
        assert!(flow_for("").unwrap_err().to_string().contains("--flow"));
        assert!(flow_for("4.14.38").unwrap().1.contains("spec.migration"));
    }

    #[test]
    fn a_rollback_from_4_8_has_its_own_flow_and_the_docs_position_per_release() {
        assert_eq!(flow_for_target("4.7.60", "OpenShiftSDN").unwrap().0, Flow::Seed);
        assert_eq!(flow_for_target("4.8.0", "OpenShiftSDN").unwrap().0, Flow::Rollback);
        assert_eq!(flow_for_target("4.16.21", "OpenShiftSDN").unwrap().0, Flow::Rollback);
        assert_eq!(flow_for_target("4.16.21", "OVNKubernetes").unwrap().0, Flow::TwoPhase);
        assert!(flow_for_target("4.17.0", "OpenShiftSDN").is_err());
        assert!(rollback_allowed("4.9.59").contains("if the migration to OVN-Kubernetes fails"));
        assert!(rollback_allowed("4.16.21").contains("is successful before initiating a rollback"));
        assert!(rollback_allowed("4.14.38").contains("fleetboot allows both"));
    }
}
