//! The limited live migration's pure parts (`fleetboot migrate --mode live`): which releases
//! have it, what the `NetworkTypeMigration*` conditions on `Network.config/cluster` say, how
//! many times the MCO reboots each node, and the verdict on the boot IDs seen.
//!
//! The network operator's side: cluster-network-operator release-4.16
//! `pkg/controller/clusterconfig/migration.go` and `pkg/controller/operconfig/migration.go`;
//! openshift-docs `modules/nw-ovn-kubernetes-live-migration.adoc`.

use std::collections::BTreeMap;

use serde_json::Value;

pub use super::checks::LIVE_MIGRATION_ANNOTATION as ANNOTATION;

/// The conditions, in the order the migration reaches them (`pkg/names/names.go`).
pub const IN_PROGRESS: &str = "NetworkTypeMigrationInProgress";
pub const CONDITIONS: [&str; 5] = [
    IN_PROGRESS,
    "NetworkTypeMigrationTargetCNIAvailable",
    "NetworkTypeMigrationMTUReady",
    "NetworkTypeMigrationTargetCNIInUse",
    "NetworkTypeMigrationOriginalCNIPurged",
];

/// How many times the MCO reboots every node in a live migration: once for the routable MTU
/// (`mtu-migration.service`), once for `configure-ovs.sh <target>` (the clusterconfig
/// controller's steps 2 and 3; the docs: "the MCO reboots each node twice").
pub const EXPECTED_REBOOTS: usize = 2;

/// Whether the release offers the live migration: 4.16, and 4.15 from 4.15.31 (Red Hat
/// solution 7057169, environment "4.16, 4.15.31+"; openshift-docs 4.15/4.16
/// `migrate-from-openshift-sdn`). Err: why not, to show before anything changes.
pub fn supported(version: &str) -> Result<(), String> {
    let parts: Vec<u32> = version.split('.').map_while(|p| p.parse().ok()).collect();
    match parts.as_slice() {
        [4, 16, ..] => Ok(()),
        [4, 15, patch, ..] if *patch >= 31 => Ok(()),
        _ => Err(format!(
            "mode-live: OpenShift {version:?} has no limited live migration (4.15.31+ and 4.16 only): use --mode offline (the release's offline flow)"
        )),
    }
}

/// The network operator's HyperShift blocker (cluster-network-operator release-4.16
/// `pkg/network/cluster_config.go`, `ValidateLiveMigration`: `infraRes.HostedControlPlane !=
/// nil` → "network type live migration is not supported on HyperShift clusters"), as the
/// hosted cluster's own API shows it: `Infrastructure.config.openshift.io/cluster`
/// `status.controlPlaneTopology: External` (openshift/api `config/v1/types_infrastructure.go`,
/// `ExternalTopologyMode`: the control plane is hosted outside the cluster). Err: the refusal
/// to show before anything changes. Pure.
pub fn hosted_control_plane(infrastructure: &Value) -> Result<(), String> {
    match infrastructure.pointer("/status/controlPlaneTopology").and_then(Value::as_str) {
        Some("External") => Err("hosted-control-plane: Infrastructure.config.openshift.io/cluster has status.controlPlaneTopology External (a HyperShift hosted control plane): the network operator refuses the live migration there (\"network type live migration is not supported on HyperShift clusters\", cluster-network-operator ValidateLiveMigration); nothing was changed".into()),
        _ => Ok(()),
    }
}

/// What the documents say of a live rollback, for the plan (openshift-docs enterprise-4.16
/// `modules/nw-ovn-kubernetes-live-migration-about.adoc`, "Considerations": "The migration is
/// intended to be a one-way process. However, for users that want to rollback to
/// OpenShift-SDN, migration from OpenShift-SDN to OVN-Kubernetes must have succeeded. Users can
/// follow the same procedure below to migrate to the OpenShift SDN network plugin"; the CNO's
/// clusterconfig `migration.go` drives both directions). Empty going to OVNKubernetes.
pub fn rollback_note(target: &str) -> &'static str {
    if target == "OpenShiftSDN" {
        "; a live rollback: the documents allow it only after a successful migration to OVN-Kubernetes, by the same procedure (nw-ovn-kubernetes-live-migration-about.adoc), and call the migration one-way"
    } else {
        ""
    }
}

/// Whether `--plan` recommends the live migration on this release (the 4.15/4.16 docs call it
/// the preferred method).
pub fn recommended(version: &str) -> bool {
    supported(version).is_ok()
}

/// What the conditions say, folded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fold {
    /// InProgress True.
    pub in_progress: bool,
    /// InProgress False with reason NetworkTypeMigrationCompleted.
    pub completed: bool,
    /// One line: each condition present as `Name=Status (Reason)`.
    pub line: String,
}

/// Folds `status.conditions` of `Network.config/cluster`. Pure.
pub fn fold(config: &Value) -> Fold {
    let conditions = config.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
    let find = |kind: &str| conditions.iter().find(|c| c["type"] == kind);
    let mut parts = Vec::new();
    for kind in CONDITIONS {
        if let Some(c) = find(kind) {
            let short = kind.trim_start_matches("NetworkTypeMigration");
            parts.push(format!("{short}={} ({})", c["status"].as_str().unwrap_or("?"), c["reason"].as_str().unwrap_or("")));
        }
    }
    let in_progress = find(IN_PROGRESS).is_some_and(|c| c["status"] == "True");
    let completed = find(IN_PROGRESS).is_some_and(|c| c["status"] == "False" && c["reason"] == "NetworkTypeMigrationCompleted");
    Fold { in_progress, completed, line: if parts.is_empty() { "no migration conditions yet".into() } else { parts.join(", ") } }
}

/// The verdict on every node's reboots: `baseline` the boot ID each node had before the
/// patch, `seen` every boot ID observed since, in order (the baseline excluded), `ready` each
/// node's Ready now, `interrupted`: the watch was not running all along (a resume after a
/// kill), so a node may have rebooted unseen in between. Ok: the summary; Err: each node that
/// was not rebooted [`EXPECTED_REBOOTS`] times (interrupted: not at least once, nor more than
/// expected) or is not Ready. Pure.
pub fn reboot_verdict(
    baseline: &BTreeMap<String, String>,
    seen: &BTreeMap<String, Vec<String>>,
    ready: &BTreeMap<String, bool>,
    interrupted: bool,
) -> Result<String, Vec<String>> {
    let mut problems = Vec::new();
    let mut unseen = Vec::new();
    for (node, first) in baseline {
        let boots: Vec<&String> = seen.get(node).map(|s| s.iter().filter(|b| *b != first).collect()).unwrap_or_default();
        let count = boots.len();
        if interrupted && (1..EXPECTED_REBOOTS).contains(&count) {
            unseen.push(format!("{node} ({count} seen)"));
        } else if count != EXPECTED_REBOOTS {
            problems.push(format!("{node}: rebooted {count} times by the MCO, expected {EXPECTED_REBOOTS}"));
        }
        if ready.get(node) != Some(&true) {
            problems.push(format!("{node}: not Ready"));
        }
    }
    if problems.is_empty() && unseen.is_empty() {
        Ok(format!("each of the {} nodes rebooted {EXPECTED_REBOOTS} times by the MCO (new boot IDs), Ready after each", baseline.len()))
    } else if problems.is_empty() {
        Ok(format!(
            "each of the {} nodes rebooted by the MCO (new boot IDs) and Ready; the watch was interrupted, so some reboots were not seen: {}",
            baseline.len(),
            unseen.join(", ")
        ))
    } else {
        Err(problems)
    }
}

/// The time left for the reboots still to come, at the pace of those seen so far in this
/// watch (`seen` of them in `elapsed_ms`; `left` still to come). None before the first. Pure.
pub fn eta_ms(seen: usize, left: usize, elapsed_ms: u64) -> Option<u64> {
    (seen > 0).then(|| elapsed_ms / seen as u64 * left as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_eta_follows_the_pace_of_the_reboots_seen() {
        assert_eq!(eta_ms(0, 6, 10_000), None);
        assert_eq!(eta_ms(2, 4, 10_000), Some(20_000));
        assert_eq!(eta_ms(6, 0, 30_000), Some(0));
    }

    #[test]
    fn live_is_for_4_15_31_and_4_16() {
        assert!(supported("4.16.21").is_ok() && supported("4.15.31").is_ok() && supported("4.15.40").is_ok());
        for v in ["4.15.30", "4.14.38", "4.17.3", "4.7.60", ""] {
            let e = supported(v).unwrap_err();
            assert!(e.contains("4.15.31+ and 4.16 only") && e.contains("--mode offline"), "{v}: {e}");
        }
    }

    #[test]
    fn a_hosted_control_plane_refuses_the_live_migration() {
        let hosted = json!({"status": {"controlPlaneTopology": "External"}});
        let e = hosted_control_plane(&hosted).unwrap_err();
        assert!(e.contains("network type live migration is not supported on HyperShift clusters") && e.contains("External"), "{e}");
        for topology in ["HighlyAvailable", "SingleReplica"] {
            assert!(hosted_control_plane(&json!({"status": {"controlPlaneTopology": topology}})).is_ok());
        }
        assert!(hosted_control_plane(&json!({})).is_ok(), "no topology (an old Infrastructure): not hosted");
    }

    #[test]
    fn conditions_fold_into_a_line_and_a_verdict() {
        assert_eq!(fold(&json!({})).line, "no migration conditions yet");
        let config = json!({"status": {"conditions": [
            {"type": IN_PROGRESS, "status": "True", "reason": "NetworkTypeMigrationStarted"},
            {"type": "NetworkTypeMigrationMTUReady", "status": "False", "reason": "MachineConfigPoolsUpdating"}]}});
        let f = fold(&config);
        assert!(f.in_progress && !f.completed);
        assert_eq!(f.line, "InProgress=True (NetworkTypeMigrationStarted), MTUReady=False (MachineConfigPoolsUpdating)");
        let done = json!({"status": {"conditions": [{"type": IN_PROGRESS, "status": "False", "reason": "NetworkTypeMigrationCompleted"}]}});
        assert!(fold(&done).completed);
    }

    #[test]
    fn each_node_must_be_rebooted_twice_and_ready() {
        let baseline: BTreeMap<String, String> = [("a".into(), "0".into()), ("b".into(), "0".into())].into();
        let mut seen: BTreeMap<String, Vec<String>> = [("a".into(), vec!["1".into(), "2".into()]), ("b".into(), vec!["1".into()])].into();
        let ready: BTreeMap<String, bool> = [("a".into(), true), ("b".into(), true)].into();
        assert_eq!(reboot_verdict(&baseline, &seen, &ready, false), Err(vec!["b: rebooted 1 times by the MCO, expected 2".to_owned()]));
        // After a kill and resume a reboot may have gone unseen: at least one new boot ID.
        assert!(reboot_verdict(&baseline, &seen, &ready, true).unwrap().contains("not seen: b (1 seen)"));
        seen.get_mut("b").unwrap().push("2".into());
        assert!(reboot_verdict(&baseline, &seen, &ready, false).unwrap().contains("each of the 2 nodes rebooted 2 times"));
        let not_ready: BTreeMap<String, bool> = [("a".into(), true), ("b".into(), false)].into();
        assert_eq!(reboot_verdict(&baseline, &seen, &not_ready, false), Err(vec!["b: not Ready".to_owned()]));
        seen.get_mut("b").unwrap().push("3".into());
        assert!(reboot_verdict(&baseline, &seen, &ready, true).is_err(), "three reboots are not the live flow's two");
    }
}
