//! The simulated cluster-version operator's status sync: `status.observedGeneration` of the
//! ClusterVersion follows the generation its sync worker has taken up
//! (openshift/cluster-version-operator release-4.7 and release-4.14 `pkg/cvo/status.go`,
//! `syncStatus`: `config.Status.ObservedGeneration = status.Generation`, the generation the
//! sync worker was handed in `pkg/cvo/sync_worker.go`), so `kubectl wait
//! --for=jsonpath='{.status.observedGeneration}'=N clusterversion/version` ends as on a real
//! cluster.
//!
//! Not modelled: what a spec change asks for (an upgrade to `spec.desiredUpdate`, a new
//! channel's available updates, capabilities); the sync worker takes the generation up and
//! the cluster stays at its release.
//!
//! The network operator's config (`operator.openshift.io/v1 Network cluster`) gets no
//! observedGeneration here because the real operator writes none: on
//! openshift/cluster-network-operator release-4.7 to master, `pkg/controller/statusmanager/
//! status_manager.go` (`set`) applies only `status.version` and the conditions to it, and no
//! file under `pkg/` writes an `ObservedGeneration` of the operator config.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::store::PatchType;
use super::types;
use super::world::World;

/// One pass: the ClusterVersion's observedGeneration set to its generation where it differs.
pub fn sync(store: &mut super::store::Store) {
    let t = types::find("config.openshift.io", "v1", "clusterversions").expect("clusterversions");
    let Ok(version) = store.get(t, None, "version") else { return };
    let generation = version.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
    if version.pointer("/status/observedGeneration").and_then(Value::as_i64) != Some(generation) {
        let _ = store.patch(t, None, "version", PatchType::Merge, &json!({"status": {"observedGeneration": generation}}), Some("status"));
    }
}

/// The status sync, every `interval`.
pub async fn run(cluster: Arc<World>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    loop {
        tick.tick().await;
        sync(&mut cluster.api.store.lock().unwrap());
    }
}
