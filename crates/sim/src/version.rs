//! The OpenShift release the simulated cluster runs, and which of the operators' rules that
//! release follows. Every rule names the source it was read from.

/// `X.Y.Z` as ClusterVersion reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Release {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

pub const DEFAULT_VERSION: &str = "4.16.21";

impl Release {
    pub fn parse(text: &str) -> Result<Release, String> {
        let parts: Vec<&str> = text.trim().split('.').collect();
        let number = |i: usize| parts.get(i).and_then(|p| p.parse::<u32>().ok());
        match (parts.len(), number(0), number(1), number(2)) {
            (3, Some(major), Some(minor), Some(patch)) if major == 4 => Ok(Release { major, minor, patch }),
            _ => Err(format!("{text:?}: expected an OpenShift 4 release X.Y.Z, e.g. 4.16.21")),
        }
    }

    fn at_least(self, minor: u32) -> bool {
        self.minor >= minor
    }

    /// Up to 4.7 the network operator skips its change-safety check when `Network.operator`
    /// carries the `networkoperator.openshift.io/network-migration` annotation
    /// (cluster-network-operator 4.7 `pkg/controller/operconfig/operconfig_controller.go`,
    /// `Reconcile`: `if _, ok := operConfig.GetAnnotations()[names.NetworkMigrationAnnotation]; !ok
    /// { network.IsChangeSafe(...) }`); from 4.8 the annotation is ignored and `spec.migration`
    /// drives the migration (`pkg/network/render.go`, `isMigrationChangeSafe`,
    /// `isDefaultNetworkChangeSafe`).
    pub fn annotation_enables_migration(self) -> bool {
        !self.at_least(8)
    }

    /// From 4.8 the MCO takes `configure-ovs.sh`'s argument from `Network.config`
    /// `status.migration.networkType` while a migration is prepared (machine-config-operator
    /// `pkg/operator/render.go`, `createDiscoveredControllerConfigSpec`: "At sdn migration prepare
    /// phase, use the value in status.migration to prepare the node"); before, from
    /// `status.networkType` only.
    pub fn mco_reads_status_migration(self) -> bool {
        self.at_least(8)
    }

    /// From 4.8 ovnkube-node needs the `br-ex` bridge that only `configure-ovs.sh
    /// OVNKubernetes` creates: cluster-network-operator commit 86315a352 ("Allow for local
    /// gateway mode to be configured", on release-4.8, not on release-4.7) removed from
    /// `bindata/network/ovn-kubernetes/ovnkube-node.yaml` the fallback to `--gateway-mode local
    /// --gateway-interface none` for nodes whose `ovs-configuration.service` does not run
    /// `configure-ovs.sh OVNKubernetes`; from then on both gateway modes pass `--gateway-interface
    /// br-ex`. release-4.7's ovnkube-node.yaml still has the fallback.
    pub fn ovn_needs_br_ex(self) -> bool {
        self.at_least(8)
    }

    /// The text of `isMigrationChangeSafe`'s refusal (cluster-network-operator
    /// `pkg/network/render.go`): "... after migration is start" on release-4.8 to release-4.10,
    /// "... after migration has started" from release-4.11 (commit 5ff5c4d13, "Update error
    /// messages for DualStack migration in isNetworkChangeSafe", first on release-4.11).
    pub fn migration_change_refusal(self) -> &'static str {
        if self.at_least(11) {
            "cannot change migration network type after migration has started"
        } else {
            "cannot change migration network type after migration is start"
        }
    }

    /// OpenShift SDN is removed in 4.17: the operator's code for it is mostly still there, but
    /// `pkg/network/render.go` `validateDefaultNetwork` rejects it as an operand (commit
    /// 0b9c0b2fc, first on release-4.17, which also drops the SDN image from the manifests), and
    /// 4.16's operator blocks the upgrade of an SDN cluster (Upgradeable=False, reason
    /// `OpenShiftSDNConfigured`). See `cno::validation_errors`.
    pub fn has_openshift_sdn(self) -> bool {
        !self.at_least(17)
    }

    pub fn minor_text(self) -> String {
        format!("{}.{}", self.major, self.minor)
    }
}

impl std::fmt::Display for Release {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_parse_and_know_their_rules() {
        let r = |s: &str| Release::parse(s).unwrap();
        assert!(r("4.7.60").annotation_enables_migration() && !r("4.7.60").mco_reads_status_migration());
        assert!(!r("4.8.0").annotation_enables_migration() && r("4.8.0").mco_reads_status_migration());
        assert!(!r("4.7.60").ovn_needs_br_ex() && r("4.8.57").ovn_needs_br_ex() && r("4.9.59").ovn_needs_br_ex());
        assert!(r("4.10.67").migration_change_refusal().ends_with("is start"));
        assert!(r("4.11.0").migration_change_refusal().ends_with("has started"));
        assert!(r("4.16.21").has_openshift_sdn() && !r("4.17.0").has_openshift_sdn());
        assert!(Release::parse("4.16").is_err() && Release::parse("5.0.0").is_err() && Release::parse("x").is_err());
        assert_eq!(r(DEFAULT_VERSION).to_string(), DEFAULT_VERSION);
    }
}
