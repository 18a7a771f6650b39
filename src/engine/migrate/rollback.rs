//! What the rollback to OpenShift SDN does apart from the forward flows: the pools it inherits
//! from the unfinished migration it takes over from, and the clean-up each flow ends with
//! (openshift-docs `modules/nw-ovn-kubernetes-rollback.adoc` and
//! `modules/nw-ovn-kubernetes-migration.adoc`, their last steps). The order of steps itself is
//! [`Flow::Rollback`]'s.

use std::path::Path;

use serde_json::{Value, json};

use crate::adapters::migration_journal::{self, MigrationStore};
use fleetboot_core::migrate::record::{MigrationEntry, MigrationState};
use fleetboot_core::migrate::{Flow, MIGRATION_ANNOTATION};

/// The record a rollback writes before it pauses anything: the pools the migration in `old`
/// paused and never resumed. Without it the rollback would find them paused, take them for an
/// admin's and leave them so (certificate rotation waits with a paused pool). `None`: nothing
/// to inherit (or the old journal cannot be read: then nothing is taken for the admin's that
/// was not found paused before, and the rollback's own pause step decides).
pub(super) fn inherited_pools(state: &MigrationState, old: &Path) -> Option<MigrationEntry> {
    let pools = state.pools_left_paused();
    (!pools.is_empty()).then(|| MigrationEntry::PoolsInherited { pools, from: old.to_owned() })
}

/// The journal of the unfinished migration a rollback takes over (`old`: its directory, or its
/// journal's place in the cluster, `cluster:NS/ID-migration`), held for writing (its lock
/// taken, or in the cluster its fencing token raised), and its fold as it stands then.
pub(super) async fn previous_journal(
    cluster: &super::Target,
    old: &Path,
    holder: &str,
) -> Result<(Box<dyn MigrationStore>, MigrationState), super::MigrateError> {
    let place = old.to_str().and_then(|p| crate::adapters::kube::journal_store::JournalPlace::parse(p, super::STORE_NAMESPACE));
    match place {
        Some(place) => {
            let place = place.map_err(|e| super::MigrateError::Journal(migration_journal::MigrationJournalError::InCluster(e)))?;
            let id = place.run_id.strip_suffix("-migration").unwrap_or(&place.run_id);
            let (client, config) = (&cluster.connection.client, &cluster.connection.config);
            let store = migration_journal::ClusterStore::open(client, config, &place.namespace, id, holder).await?;
            let state = migration_journal::load_from_cluster(client, &place.namespace, id).await?.map(|(_, s)| s).unwrap_or_default();
            Ok((Box::new(store), state))
        }
        None => {
            let store = migration_journal::DirStore::open(old)?;
            // Unreadable: nothing is inherited (see inherited_pools), the mark is still written.
            let state = migration_journal::load(&old.join("migration.jsonl")).map(|(_, s)| s).unwrap_or_default();
            Ok((Box::new(store), state))
        }
    }
}

/// The merge patches of `Network.operator/cluster` the clean-up sends, in order. Pure.
/// - seed (≤ 4.7): the annotation goes;
/// - two-phase (forward): `spec.migration: null` and the old plugin's `openshiftSDNConfig: null`;
/// - rollback: `spec.migration: null` and `ovnKubernetesConfig: null`.
pub(super) fn cleanup_patches(flow: Flow, target: &str) -> Vec<Value> {
    match flow {
        Flow::Seed => vec![json!({"metadata": {"annotations": {MIGRATION_ANNOTATION: null}}})],
        Flow::TwoPhase | Flow::Rollback => {
            let old_config = if target == "OVNKubernetes" { "openshiftSDNConfig" } else { "ovnKubernetesConfig" };
            vec![json!({"spec": {"migration": null}}), json!({"spec": {"defaultNetwork": {old_config: null}}})]
        }
        // The network operator cleared spec.migration and purged the old plugin itself.
        Flow::Live => Vec::new(),
    }
}

/// What the clean-up changes, in words (the plan, the step's detail).
pub(super) fn cleanup_words(flow: Flow, target: &str) -> String {
    match flow {
        Flow::Seed => "remove the annotation".into(),
        Flow::TwoPhase | Flow::Rollback => format!(
            "spec.migration: null, spec.defaultNetwork.{}: null",
            if target == "OVNKubernetes" { "openshiftSDNConfig" } else { "ovnKubernetesConfig" }
        ),
        Flow::Live => format!("remove the annotation {} from Network.config/cluster", fleetboot_core::migrate::live::ANNOTATION),
    }
}

/// The flags given whose fields exist only from some release (`checks::GATED_OPTIONS`).
pub(super) fn flags_given(options: &super::MigrationOptions) -> Vec<&'static str> {
    [
        ("--routing-via-host", options.routing_via_host),
        ("--skip-feature", !options.skip_feature.is_empty()),
        ("--v4-internal-subnet", options.v4_internal_subnet.is_some()),
        ("--transit-switch-subnet", options.transit_switch_subnet.is_some()),
        ("--masquerade-subnet", options.masquerade_subnet.is_some()),
        ("--ip-forwarding-global", options.ip_forwarding_global),
    ]
    .into_iter()
    .filter_map(|(flag, given)| given.then_some(flag))
    .collect()
}

/// The rendered config the MCO's rollout after the pools resume must carry: the rollback
/// watches `configure-ovs.sh OpenShiftSDN` reach every node of the pools it resumed.
pub(super) fn rollout_marker(flow: Flow, target: &str) -> Option<String> {
    (flow == Flow::Rollback).then(|| format!("configure-ovs.sh {target}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_flow_cleans_up_what_its_documentation_says() {
        assert_eq!(cleanup_patches(Flow::Seed, "OVNKubernetes"), [json!({"metadata": {"annotations": {MIGRATION_ANNOTATION: null}}})]);
        assert_eq!(
            cleanup_patches(Flow::TwoPhase, "OVNKubernetes"),
            [json!({"spec": {"migration": null}}), json!({"spec": {"defaultNetwork": {"openshiftSDNConfig": null}}})]
        );
        assert_eq!(
            cleanup_patches(Flow::Rollback, "OpenShiftSDN"),
            [json!({"spec": {"migration": null}}), json!({"spec": {"defaultNetwork": {"ovnKubernetesConfig": null}}})]
        );
        assert_eq!(rollout_marker(Flow::Rollback, "OpenShiftSDN").as_deref(), Some("configure-ovs.sh OpenShiftSDN"));
        assert_eq!(rollout_marker(Flow::Seed, "OVNKubernetes"), None);
    }

    #[test]
    fn a_rollback_inherits_the_pools_a_failed_run_left_paused() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("migration.jsonl");
        let mut writer = migration_journal::MigrationWriter::open(&journal).unwrap();
        let state = || migration_journal::load(&journal).unwrap().1;
        writer.append(MigrationEntry::PoolsFound { already_paused: vec!["infra".into()], to_pause: vec!["master".into()] }).unwrap();
        assert!(inherited_pools(&state(), dir.path()).is_none(), "found, not yet paused");
        writer.append(MigrationEntry::StepStarted { step: fleetboot_core::migrate::Step::PausePools }).unwrap();
        assert_eq!(
            inherited_pools(&state(), dir.path()),
            Some(MigrationEntry::PoolsInherited { pools: vec!["master".into()], from: dir.path().to_owned() })
        );
        assert!(inherited_pools(&MigrationState::default(), &dir.path().join("missing")).is_none());
    }
}
