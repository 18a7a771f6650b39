//! The simulated API server driven by an independent client, the `kube` crate: its watcher,
//! reflector and error handling must work as against a real API server.

use std::time::Duration;

use fleetboot_sim::node::Timings;
use fleetboot_sim::{Cluster, SimOptions};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;

fn fast() -> SimOptions {
    SimOptions {
        masters: 1,
        workers: 2,
        timings: Timings {
            reboot_delay: Duration::ZERO,
            boot_time: Duration::from_millis(800),
            notready_after: Duration::from_millis(200),
            kubelet_ready_after: Duration::from_millis(200),
        },
        heartbeat: None,
        bookmark_interval: Duration::from_millis(300),
        ..Default::default()
    }
}

async fn client(cluster: &Cluster) -> Client {
    let config = kube::Config::new(format!("http://{}", cluster.api_addr).parse().unwrap());
    Client::try_from(config).unwrap()
}

fn ready(node: &Node) -> Option<String> {
    node.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready").map(|c| c.status.clone())
}

fn boot_id(node: &Node) -> String {
    node.status.as_ref().and_then(|s| s.node_info.as_ref()).map(|i| i.boot_id.clone()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_sees_a_node_go_notready_and_return_with_a_new_boot_id() {
    let cluster = Cluster::start(fast()).await.unwrap();
    let nodes: Api<Node> = Api::all(client(&cluster).await);
    let old = boot_id(&nodes.get("worker-0").await.unwrap());
    let mut stream = watcher(nodes.clone(), watcher::Config::default()).default_backoff().applied_objects().boxed();
    // The watcher's first pass lists every node.
    let first = tokio::time::timeout(Duration::from_secs(10), stream.try_next()).await.unwrap().unwrap().unwrap();
    assert!(first.metadata.name.is_some());
    cluster.node("worker-0").unwrap().schedule_reboot(Duration::ZERO);
    let mut saw_not_ready = false;
    let proof = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(node) = stream.try_next().await.unwrap() {
            if node.metadata.name.as_deref() != Some("worker-0") {
                continue;
            }
            match ready(&node).as_deref() {
                Some("Unknown" | "False") => saw_not_ready = true,
                Some("True") if boot_id(&node) != old => return node,
                _ => {}
            }
        }
        panic!("watch ended");
    })
    .await
    .expect("worker-0 came back in time");
    assert!(saw_not_ready, "the node was seen NotReady while down");
    assert_ne!(boot_id(&proof), old);
    cluster.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_resource_version_is_410_gone_and_the_reflector_recovers_after_an_outage() {
    let cluster = Cluster::start(SimOptions { history_limit: 5, ..fast() }).await.unwrap();
    let client = client(&cluster).await;
    let nodes: Api<Node> = Api::all(client.clone());
    let start_rv = nodes.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
    for i in 0..10 {
        nodes
            .patch("worker-1", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"step": i.to_string()}}})))
            .await
            .unwrap();
    }
    let mut events = nodes.watch(&WatchParams::default(), &start_rv).await.unwrap().boxed();
    match events.try_next().await.unwrap() {
        Some(WatchEvent::Error(status)) => assert_eq!((status.code, status.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410 Gone, got {other:?}"),
    }

    let (reader, writer) = reflector::store::<Node>();
    let stream = reflector(writer, watcher(nodes.clone(), watcher::Config::default()).default_backoff());
    let driver = tokio::spawn(stream.applied_objects().for_each(|_| async {}));
    reader.wait_until_ready().await.unwrap();
    // The API goes away (watches cut, connections refused) while nodes change; the history
    // no longer reaches back to the watcher's version, so it must relist after a 410.
    cluster.api_outage(Duration::from_millis(1500));
    let node_type = fleetboot_sim::types::find("", "v1", "nodes").unwrap();
    for i in 0..10 {
        cluster
            .api
            .store
            .lock()
            .unwrap()
            .patch(
                node_type,
                None,
                "worker-1",
                fleetboot_sim::store::PatchType::Merge,
                &json!({"metadata": {"labels": {"step": format!("outage-{i}")}}}),
                None,
            )
            .unwrap();
    }
    let converged = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let label = reader
                .get(&reflector::ObjectRef::new("worker-1"))
                .and_then(|n| n.metadata.labels.as_ref().and_then(|l| l.get("step").cloned()));
            if label.as_deref() == Some("outage-9") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(converged.is_ok(), "the reflector did not catch up after the outage");
    driver.abort();
    cluster.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_not_found_selectors_pagination_and_bookmarks() {
    let cluster = Cluster::start(fast()).await.unwrap();
    let nodes: Api<Node> = Api::all(client(&cluster).await);
    let mut stale = nodes.get("worker-0").await.unwrap();
    nodes.patch("worker-0", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"x": "1"}}}))).await.unwrap();
    stale.metadata.labels.get_or_insert_default().insert("y".into(), "2".into());
    match nodes.replace("worker-0", &PostParams::default(), &stale).await {
        Err(kube::Error::Api(status)) => assert!(status.is_conflict() && status.code == 409, "{status:?}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    match nodes.get("nope").await {
        Err(kube::Error::Api(status)) => assert!(status.is_not_found(), "{status:?}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    let workers = nodes.list(&ListParams::default().labels("node-role.kubernetes.io/worker")).await.unwrap();
    assert_eq!(workers.items.len(), 2);
    let page = nodes.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(page.items.len(), 2);
    let token = page.metadata.continue_.clone().expect("a continue token");
    let rest = nodes.list(&ListParams::default().limit(2).continue_token(&token)).await.unwrap();
    assert_eq!(rest.items.len(), 1);
    let by_name = nodes.list(&ListParams::default().fields("metadata.name=master-0")).await.unwrap();
    assert_eq!(by_name.items.len(), 1);

    let rv = page.metadata.resource_version.unwrap();
    let mut events = nodes.watch(&WatchParams { bookmarks: true, ..Default::default() }, &rv).await.unwrap().boxed();
    let bookmark = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(event) = events.try_next().await.unwrap() {
            if let WatchEvent::Bookmark(b) = event {
                return b;
            }
        }
        panic!("watch ended without a bookmark");
    })
    .await
    .unwrap();
    assert!(bookmark.metadata.resource_version.parse::<u64>().unwrap() >= rv.parse::<u64>().unwrap());
    cluster.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_mco_rolls_an_unpaused_pool_one_node_at_a_time() {
    use kube::api::DynamicObject;
    let cluster = Cluster::start(SimOptions { masters: 1, workers: 3, ..fast() }).await.unwrap();
    let client = client(&cluster).await;
    let pools: Api<DynamicObject> = Api::all_with(client.clone(), &fleetboot::adapters::kube::machine_config_pools());
    let nodes: Api<Node> = Api::all(client.clone());
    let boot_before: Vec<String> =
        nodes.list(&ListParams::default().labels("node-role.kubernetes.io/worker")).await.unwrap().items.iter().map(boot_id).collect();

    // A new rendered config for a paused pool: nothing may happen.
    pools
        .patch(
            "worker",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": true, "configuration": {"name": "rendered-worker-new"}}})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let workers = nodes.list(&ListParams::default().labels("node-role.kubernetes.io/worker")).await.unwrap();
    assert!(
        workers
            .items
            .iter()
            .all(|n| n.metadata.annotations.as_ref().unwrap()["machineconfiguration.openshift.io/desiredConfig"] != "rendered-worker-new")
    );
    let pool = pools.get("worker").await.unwrap();
    assert_eq!(pool.data["status"]["updatedMachineCount"], 0);

    // Unpaused: one node at a time (maxUnavailable 1), each rebooted, until the pool is Updated.
    pools.patch("worker", &PatchParams::default(), &Patch::Merge(json!({"spec": {"paused": false}}))).await.unwrap();
    let mut most_at_once = 0;
    let done = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let workers = nodes.list(&ListParams::default().labels("node-role.kubernetes.io/worker")).await.unwrap();
            let working = workers
                .items
                .iter()
                .filter(|n| {
                    let a = n.metadata.annotations.as_ref().unwrap();
                    a["machineconfiguration.openshift.io/state"] == "Working" || n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true)
                })
                .count();
            most_at_once = most_at_once.max(working);
            let pool = pools.get("worker").await.unwrap();
            if pool.data["status"]["updatedMachineCount"] == 3 && pool.data["status"]["configuration"]["name"] == "rendered-worker-new" {
                return workers;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the pool finished its rollout");
    assert_eq!(most_at_once, 1, "maxUnavailable 1 held");
    for (node, before) in done.items.iter().zip(&boot_before) {
        assert_eq!(node.metadata.annotations.as_ref().unwrap()["machineconfiguration.openshift.io/currentConfig"], "rendered-worker-new");
        assert_ne!(&boot_id(node), before, "each node rebooted to apply the config");
    }
    let master = pools.get("master").await.unwrap();
    assert_eq!(master.data["status"]["conditions"][0]["status"], "True", "the master pool stayed Updated");
    cluster.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_4_7_network_operator_migrates_only_when_annotated_and_pods_recover_with_the_reboots() {
    use kube::api::DynamicObject;
    use kube::discovery::ApiResource;
    // The seed document's release: the annotation enables the migration.
    let cluster = Cluster::start(SimOptions { masters: 1, workers: 2, openshift_version: "4.7.60".into(), ..fast() }).await.unwrap();
    let client = client(&cluster).await;
    let gvk = |group: &str, kind: &str, plural: &str| ApiResource {
        group: group.into(),
        version: "v1".into(),
        api_version: format!("{group}/v1"),
        kind: kind.into(),
        plural: plural.into(),
    };
    let config: Api<DynamicObject> = Api::all_with(client.clone(), &gvk("config.openshift.io", "Network", "networks"));
    let operator: Api<DynamicObject> = Api::all_with(client.clone(), &gvk("operator.openshift.io", "Network", "networks"));
    let operators: Api<DynamicObject> = Api::all_with(client.clone(), &gvk("config.openshift.io", "ClusterOperator", "clusteroperators"));
    let pools: Api<DynamicObject> = Api::all_with(client.clone(), &fleetboot::adapters::kube::machine_config_pools());
    let mcs: Api<DynamicObject> =
        Api::all_with(client.clone(), &gvk("machineconfiguration.openshift.io", "MachineConfig", "machineconfigs"));
    let multus: Api<k8s_openapi::api::apps::v1::DaemonSet> = Api::namespaced(client.clone(), "openshift-multus");
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), "default");
    let merge = |v: serde_json::Value| Patch::Merge(v);

    // Without the migration enabled the operator refuses: Degraded, nothing rendered.
    config.patch("cluster", &PatchParams::default(), &merge(json!({"spec": {"networkType": "OVNKubernetes"}}))).await.unwrap();
    // Read once the operator's tick has seen the change (on a loaded machine that is later
    // than its interval): its Degraded condition is the verdict.
    let degraded = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let network_co = operators.get("network").await.unwrap();
            let conditions = network_co.data["status"]["conditions"].as_array().cloned().unwrap_or_default();
            if let Some(degraded) = conditions.into_iter().find(|c| c["type"] == "Degraded" && c["status"] == "True") {
                return degraded;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the network operator refuses the change: Degraded");
    assert!(degraded["message"].as_str().unwrap().contains("cannot change default network type"), "{degraded}");
    assert!(mcs.get_opt("rendered-worker-0f3e9c1b7a").await.unwrap().is_none());

    // The document's steps 2-4: annotate, pause, (type already patched): configs render, multus rolls.
    for pool in ["master", "worker"] {
        pools.patch(pool, &PatchParams::default(), &merge(json!({"spec": {"paused": true}}))).await.unwrap();
    }
    operator
        .patch(
            "cluster",
            &PatchParams::default(),
            &merge(json!({"metadata": {"annotations": {"networkoperator.openshift.io/network-migration": ""}}})),
        )
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            // The operator's switch bumps the DaemonSet's generation; then the rollout completes.
            let ds = multus.get("multus").await.unwrap();
            let generation = ds.metadata.generation.unwrap_or(1);
            let status = ds.status.unwrap();
            if generation >= 2 && status.updated_number_scheduled == Some(3) && status.observed_generation == Some(generation) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("multus rolled out");
    // The operator applied the type (status.networkType) and the MCO rendered from it; the
    // pools are paused, so nothing rolls out yet.
    assert_eq!(config.get("cluster").await.unwrap().data["status"]["networkType"], "OVNKubernetes", "written when applied");
    tokio::time::timeout(Duration::from_secs(5), async {
        while mcs.get_opt("rendered-worker-0f3e9c1b7a").await.unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the MCO rendered the OVN config");
    let rendered = mcs.get("rendered-worker-0f3e9c1b7a").await.unwrap();
    assert!(rendered.data.to_string().contains("configure-ovs.sh OVNKubernetes"));
    let broken = pods.list(&ListParams::default().labels("app=sample")).await.unwrap();
    assert_eq!(broken.items.len(), 2, "pods the switch left in error");

    // Step 7: every node reboots (4.7 needs no br-ex: they come back Ready).
    for node in &cluster.nodes {
        node.schedule_reboot(Duration::ZERO);
    }

    // Step 8: unpaused pools roll the new config, rebooting every node again; the pods recover.
    for pool in ["master", "worker"] {
        pools.patch(pool, &PatchParams::default(), &merge(json!({"spec": {"paused": false}}))).await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let worker = pools.get("worker").await.unwrap();
            let master = pools.get("master").await.unwrap();
            let healthy = pods
                .list(&ListParams::default().labels("app=sample"))
                .await
                .unwrap()
                .items
                .iter()
                .all(|p| p.status.as_ref().and_then(|s| s.container_statuses.as_ref()).is_some_and(|c| c[0].ready));
            if worker.data["status"]["configuration"]["name"] == "rendered-worker-0f3e9c1b7a"
                && master.data["status"]["configuration"]["name"] == "rendered-master-0f3e9c1b7a"
                && healthy
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("pools updated and pods recovered");
    cluster.shutdown();
}

/// The files `fleetboot sim` and the demo write: a new directory is its owner's alone, the key
/// and the BMC password 0600, and a symlink planted where the key goes is replaced, never
/// written through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulations_files_are_private_and_a_planted_symlink_is_not_followed() {
    use std::os::unix::fs::PermissionsExt;
    let cluster = Cluster::start(SimOptions { masters: 0, workers: 1, ..fast() }).await.unwrap();
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("new/sim");
    let mode = |p: &std::path::Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
    cluster.write_files(&dir).unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("id_ed25519")), 0o600);
    assert_eq!(mode(&dir.join("bmc-password")), 0o600);
    // Written again into a directory where someone planted a symlink to another file.
    let elsewhere = base.path().join("elsewhere");
    std::fs::write(&elsewhere, "untouched").unwrap();
    std::fs::remove_file(dir.join("id_ed25519")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, dir.join("id_ed25519")).unwrap();
    cluster.write_files(&dir).unwrap();
    assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "untouched", "the symlink was not written through");
    let key = dir.join("id_ed25519");
    assert!(std::fs::symlink_metadata(&key).unwrap().file_type().is_file());
    assert_eq!(mode(&key), 0o600);
    assert!(std::fs::read_to_string(&key).unwrap().contains("OPENSSH PRIVATE KEY"));
    let leftovers: Vec<_> =
        std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().starts_with('.')).collect();
    assert!(leftovers.is_empty(), "no temporary files left: {leftovers:?}");
    cluster.shutdown();
}
