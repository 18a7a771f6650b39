//! The kube transport's fallback where a node has no machine-config daemon pod that serves
//! exec (not OpenShift, or the pod not Running and Ready): an `oc debug node/NAME`-style pod —
//! privileged, hostPID, the host's `/` at `/host`, pinned to the node by `spec.nodeName`,
//! tolerating every taint — in a namespace fleetboot creates ([`DEBUG_NAMESPACE`]), labelled
//! with who made it. The command runs under `chroot /host`; the pod is deleted right after.
//!
//! Every pod is journaled BEFORE it is created (`debug_pod_creating`) and after it is deleted
//! (`debug_pod_deleted`): a run stopped by Ctrl-C deletes what it still has; after a kill, the
//! resume or `fleetboot repair` deletes what the journal names without a deletion, and the next
//! new run that may make debug pods deletes those any dead run left (found by their run label).

use std::time::Duration;

use fleetboot_core::journal::DebugPodRef;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use serde_json::json;

/// Where fleetboot's debug pods live.
pub const DEBUG_NAMESPACE: &str = "fleetboot-debug";
/// The pod's only container.
pub const DEBUG_CONTAINER: &str = "debug";
/// Where the container sees the host's `/` (as `oc debug node/NAME` mounts it).
pub const DEBUG_HOST_ROOT: &str = "/host";
/// `oc debug node`'s image where the cluster has no `openshift/tools` image stream to resolve.
pub const FALLBACK_IMAGE: &str = "registry.redhat.io/rhel9/support-tools";
/// The image stream tag `oc debug node` takes its image from: namespace, stream, tag.
pub const TOOLS_STREAM: (&str, &str, &str) = ("openshift", "tools", "latest");
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "fleetboot");
pub const RUN_ID_LABEL: &str = "fleetboot.io/run-id";
pub const NODE_LABEL: &str = "fleetboot.io/node";

/// The namespace fleetboot creates for its debug pods: privileged under Pod Security
/// admission (the pods are privileged and hostPID), no project node selector (OpenShift's
/// `openshift.io/node-selector: ""`, as `oc adm` creates its debug namespaces).
pub fn namespace_object() -> Namespace {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {
            "name": DEBUG_NAMESPACE,
            "labels": {
                MANAGED_BY.0: MANAGED_BY.1,
                "pod-security.kubernetes.io/enforce": "privileged",
                "pod-security.kubernetes.io/audit": "privileged",
                "pod-security.kubernetes.io/warn": "privileged",
            },
            "annotations": {"openshift.io/node-selector": ""},
        },
    }))
    .expect("a valid Namespace")
}

/// The debug pod for `node`, as `oc debug node/NAME` makes it (oc `pkg/cli/debug/debug.go`:
/// hostPID, hostNetwork, privileged, `/` at `/host`, `nodeName` set, restartPolicy Never) and
/// tolerating every taint (`operator: Exists`), so a cordoned or tainted node takes it.
pub fn pod_object(name: &str, node: &str, run_id: &str, image: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": DEBUG_NAMESPACE,
            "labels": {MANAGED_BY.0: MANAGED_BY.1, RUN_ID_LABEL: run_id, NODE_LABEL: node},
            "annotations": {"debug.openshift.io/source-resource": format!("/v1, Resource=nodes/{node}")},
        },
        "spec": {
            "nodeName": node,
            "hostPID": true,
            "hostNetwork": true,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "tolerations": [{"operator": "Exists"}],
            "containers": [{
                "name": DEBUG_CONTAINER,
                "image": image,
                "command": ["/bin/sh", "-c", "sleep infinity"],
                "securityContext": {"privileged": true, "runAsUser": 0},
                "volumeMounts": [{"name": "host", "mountPath": DEBUG_HOST_ROOT}],
            }],
            "volumes": [{"name": "host", "hostPath": {"path": "/", "type": "Directory"}}],
        },
    }))
    .expect("a valid Pod")
}

/// The debug pods' image, in `oc debug node`'s order (oc `pkg/cli/debug/debug.go`): the one
/// given, else the newest image of the cluster's `openshift/tools:latest` image stream (part of
/// the release, so a disconnected cluster has it mirrored), else [`FALLBACK_IMAGE`]. A stream
/// that cannot be read (none, not OpenShift, no permission) falls back as oc does.
pub async fn resolve_image(client: &Client, configured: Option<&str>) -> String {
    if let Some(image) = configured {
        return image.to_owned();
    }
    let (namespace, stream, tag) = TOOLS_STREAM;
    let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("image.openshift.io", "v1", "ImageStream"), "imagestreams");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    match api.get(stream).await {
        Ok(object) => image_for_tag(&object.data, tag).unwrap_or_else(|| FALLBACK_IMAGE.to_owned()),
        Err(_) => FALLBACK_IMAGE.to_owned(),
    }
}

/// An image stream's pull spec for `tag`, as openshift/library-go's `ResolveRecentPullSpecForTag`
/// reads it: the tag's newest imported image (`status.tags[].items[0]`), else what its spec
/// points at when that is an image (`spec.tags[].from`, kind `DockerImage`).
fn image_for_tag(stream: &serde_json::Value, tag: &str) -> Option<String> {
    let named =
        |list: &serde_json::Value, key: &str| list.as_array().and_then(|tags| tags.iter().find(|t| t[key].as_str() == Some(tag)).cloned());
    let imported = named(&stream["status"]["tags"], "tag")
        .and_then(|t| t["items"].get(0).and_then(|i| i["dockerImageReference"].as_str()).map(str::to_owned));
    imported.or_else(|| {
        named(&stream["spec"]["tags"], "name")
            .filter(|t| t["from"]["kind"] == "DockerImage")
            .and_then(|t| t["from"]["name"].as_str().map(str::to_owned))
    })
}

/// A name for a new debug pod on `node` (unique per call).
pub fn pod_name(node: &str) -> String {
    static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let made = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let suffix = format!("{:05x}", (nanos ^ (made << 40) ^ u64::from(std::process::id())) & 0xf_ffff);
    // A pod name is a DNS subdomain (253); node names fit, the prefix and suffix are short.
    format!("fleetboot-debug-{node}-{suffix}")
}

/// Creates the namespace unless it exists.
pub async fn ensure_namespace(client: &Client) -> Result<(), kube::Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    match api.create(&PostParams::default(), &namespace_object()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Waits until the pod is Running (a watch), at most `limit`.
pub async fn wait_running(client: &Client, name: &str, limit: Duration) -> Result<bool, kube::runtime::wait::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), DEBUG_NAMESPACE);
    let running = kube::runtime::wait::await_condition(api, name, kube::runtime::conditions::is_pod_running());
    match tokio::time::timeout(limit, running).await {
        Ok(Ok(_)) => Ok(true),
        Ok(Err(e)) => Err(e),
        Err(_) => Ok(false),
    }
}

/// Deletes a debug pod now (no grace: it only sleeps). A pod already gone counts as deleted.
pub async fn delete(client: &Client, namespace: &str, name: &str) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match api.delete(name, &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// How far the API server's clock may be ahead of this machine's before a young debug pod could
/// pass for an old one (NTP-synced clocks are milliseconds apart).
const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(5);

/// Debug pods other reboot runs left, found by their labels.
#[derive(Debug, Default)]
pub struct LeftByOthers {
    /// Old enough that no command of theirs can still be running, with the run that made each.
    pub dead: Vec<(String, DebugPodRef)>,
    /// Younger than that: an exec of a run whose lease was just taken over may still use them;
    /// left to that run or to a later sweep.
    pub young: Vec<DebugPodRef>,
}

/// The debug pods that reboot runs other than `own_run` left behind: fleetboot's, labelled with
/// a run ID (a `fleetboot exec` or `nodes` pod has none: such a process may still be running,
/// and its pods are its own to delete). Only a run that holds the cluster's lease asks, so no
/// other run starts a command now; one that held it until a `--break-lock` may still be inside
/// an exec, which ends within `command_timeout`: only pods older than that (and the clocks'
/// allowance) count as dead. A namespace that does not exist yet holds none.
pub async fn left_by_other_runs(
    client: &Client,
    own_run: &str,
    command_timeout: Duration,
    now: std::time::SystemTime,
) -> Result<LeftByOthers, kube::Error> {
    use kube::api::ListParams;
    let api: Api<Pod> = Api::namespaced(client.clone(), DEBUG_NAMESPACE);
    let pods = match api.list(&ListParams::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1))).await {
        Ok(pods) => pods,
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(LeftByOthers::default()),
        Err(e) => return Err(e),
    };
    let now_ms = now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let oldest_live_ms = now_ms - (command_timeout + CLOCK_SKEW_ALLOWANCE).as_millis() as i64;
    let mut left = LeftByOthers::default();
    for pod in pods.items {
        let Some(labels) = pod.metadata.labels.as_ref() else { continue };
        let Some(run) = labels.get(RUN_ID_LABEL).filter(|run| !run.is_empty() && run.as_str() != own_run).cloned() else { continue };
        let host = labels.get(NODE_LABEL).cloned().or_else(|| pod.spec.as_ref()?.node_name.clone()).unwrap_or_default();
        // No creation time (never so from an API server): not known old, so not dead.
        let created_ms = pod.metadata.creation_timestamp.as_ref().map(|t| t.0.as_millisecond());
        let Some(name) = pod.metadata.name else { continue };
        let reference = DebugPodRef { host, namespace: DEBUG_NAMESPACE.to_owned(), pod: name };
        match created_ms {
            Some(created) if created <= oldest_live_ms => left.dead.push((run, reference)),
            _ => left.young.push(reference),
        }
    }
    Ok(left)
}

/// Deletes the debug pods a journal names without a deletion (after a kill): those deleted (or
/// found gone), and the errors of those that could not be.
pub async fn delete_leftovers(client: &Client, pods: &[DebugPodRef]) -> (Vec<DebugPodRef>, Vec<(DebugPodRef, kube::Error)>) {
    let (mut deleted, mut failed) = (Vec::new(), Vec::new());
    for pod in pods {
        match delete(client, &pod.namespace, &pod.pod).await {
            Ok(()) => deleted.push(pod.clone()),
            Err(e) => failed.push((pod.clone(), e)),
        }
    }
    (deleted, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pod_is_pinned_privileged_tolerates_everything_and_says_who_made_it() {
        let pod = pod_object("fleetboot-debug-worker-0-abcde", "worker-0", "run-1", FALLBACK_IMAGE);
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("worker-0"));
        assert_eq!(spec.host_pid, Some(true));
        let tolerations = spec.tolerations.as_ref().unwrap();
        assert_eq!(tolerations.len(), 1);
        assert_eq!(tolerations[0].operator.as_deref(), Some("Exists"));
        assert_eq!(tolerations[0].key, None);
        let container = &spec.containers[0];
        assert_eq!(container.security_context.as_ref().unwrap().privileged, Some(true));
        assert_eq!(container.volume_mounts.as_ref().unwrap()[0].mount_path, "/host");
        assert_eq!(spec.volumes.as_ref().unwrap()[0].host_path.as_ref().unwrap().path, "/");
        let labels = pod.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["app.kubernetes.io/managed-by"], "fleetboot");
        assert_eq!(labels[RUN_ID_LABEL], "run-1");
        assert!(pod_name("worker-0").starts_with("fleetboot-debug-worker-0-"));
        assert_eq!(spec.containers[0].image.as_deref(), Some(FALLBACK_IMAGE));
    }

    #[test]
    fn the_image_is_the_tags_newest_import_else_its_spec_image_else_none() {
        let imported = serde_json::json!({
            "spec": {"tags": [{"name": "latest", "from": {"kind": "DockerImage", "name": "quay.io/x/tools:spec"}}]},
            "status": {"tags": [
                {"tag": "other", "items": [{"dockerImageReference": "quay.io/x/other@sha256:1"}]},
                {"tag": "latest", "items": [{"dockerImageReference": "mirror.example/x/tools@sha256:2"},
                    {"dockerImageReference": "mirror.example/x/tools@sha256:1"}]},
            ]},
        });
        assert_eq!(image_for_tag(&imported, "latest").as_deref(), Some("mirror.example/x/tools@sha256:2"));
        let spec_only =
            serde_json::json!({"spec": {"tags": [{"name": "latest", "from": {"kind": "DockerImage", "name": "quay.io/x/tools:spec"}}]}});
        assert_eq!(image_for_tag(&spec_only, "latest").as_deref(), Some("quay.io/x/tools:spec"));
        let from_a_stream_tag =
            serde_json::json!({"spec": {"tags": [{"name": "latest", "from": {"kind": "ImageStreamTag", "name": "tools:4.16"}}]}});
        assert_eq!(image_for_tag(&from_a_stream_tag, "latest"), None);
        assert_eq!(image_for_tag(&serde_json::json!({}), "latest"), None);
    }
}
