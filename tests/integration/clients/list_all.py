"""Lists every kind the simulated cluster serves with the official Python `kubernetes` client.

Its typed models reject objects that lack a field the API marks required (client-side
validation is on by default), so a successful typed list is the proof that the simulation's
objects are ones a real kubelet or operator would write. OpenShift and metal3 kinds have no
typed models: they go through CustomObjectsApi. Prints what it saw as JSON.
"""

import json
import sys

from kubernetes import client, config

config.load_kube_config(config_file=sys.argv[1])
core = client.CoreV1Api()
apps = client.AppsV1Api()
coordination = client.CoordinationV1Api()
policy = client.PolicyV1Api()
custom = client.CustomObjectsApi()

seen = {}
nodes = core.list_node().items
for node in nodes:
    info = node.status.node_info
    for field in ("machine_id", "system_uuid", "boot_id", "kernel_version", "os_image", "container_runtime_version",
                  "kubelet_version", "kube_proxy_version", "operating_system", "architecture"):
        assert getattr(info, field), f"{node.metadata.name}: status.nodeInfo.{field} is empty"
    assert node.metadata.creation_timestamp is not None
seen["nodes"] = len(nodes)
pods = core.list_pod_for_all_namespaces().items
seen["pods"] = len(pods)
seen["pod_phases"] = sorted({p.status.phase for p in pods})
seen["namespaces"] = len(core.list_namespace().items)
seen["secrets"] = len(core.list_secret_for_all_namespaces().items)
seen["events"] = len(core.list_event_for_all_namespaces().items)
seen["daemonsets"] = sorted(f"{d.metadata.namespace}/{d.metadata.name}" for d in apps.list_daemon_set_for_all_namespaces().items)
seen["leases"] = len(coordination.list_lease_for_all_namespaces().items)
seen["poddisruptionbudgets"] = len(policy.list_pod_disruption_budget_for_all_namespaces().items)
daemon = next(
    p for p in pods
    if p.metadata.namespace == "openshift-machine-config-operator" and (p.metadata.labels or {}).get("k8s-app") == "machine-config-daemon"
)
# The daemon's pod has two containers: the API wants one named (only kubectl reads the
# default-container annotation).
log = core.read_namespaced_pod_log(daemon.metadata.name, daemon.metadata.namespace, container="machine-config-daemon", tail_lines=5)
seen["daemon_log_lines"] = len(log.strip().splitlines())
for group, version, plural in [
    ("config.openshift.io", "v1", "networks"),
    ("config.openshift.io", "v1", "clusteroperators"),
    ("config.openshift.io", "v1", "clusterversions"),
    ("operator.openshift.io", "v1", "networks"),
    ("machineconfiguration.openshift.io", "v1", "machineconfigpools"),
    ("machineconfiguration.openshift.io", "v1", "machineconfigs"),
    ("metal3.io", "v1alpha1", "baremetalhosts"),
    ("network.openshift.io", "v1", "netnamespaces"),
    ("network.openshift.io", "v1", "hostsubnets"),
    ("network.openshift.io", "v1", "egressnetworkpolicies"),
]:
    items = custom.list_cluster_custom_object(group, version, plural)["items"]
    seen[f"{plural}.{group}"] = len(items)
version = custom.get_cluster_custom_object("config.openshift.io", "v1", "clusterversions", "version")
seen["version"] = version["status"]["desired"]["version"]
print(json.dumps(seen, sort_keys=True))
