//! The network operator's conversion of OpenShift SDN's features during a migration: egress
//! firewalls, multicast and egress IPs, each unless `spec.migration.features.<x>` is false.
//!
//! Source: cluster-network-operator `pkg/controller/operconfig/migration.go` and its caller in
//! `pkg/controller/operconfig/operconfig_controller.go` (`Reconcile`), first on release-4.12
//! (release-4.11 has neither). On release-4.12 to release-4.15 the operator converts on every
//! reconcile while `spec.migration.networkType` is set, that is from phase 1 of the offline
//! migration; on release-4.16 only once `spec.defaultNetwork.type` equals it ("start feature
//! migration when the cluster CNI is changed to the target type"). Each conversion runs in both
//! directions (`migrateEgressFirewallCRs`, `migrateMulticastEnablement`, `migrateEgressIpCRs`
//! switch on the target type). The features default to true: openshift/api
//! `operator/v1/types_network.go`, `FeaturesMigration`, `+kubebuilder:default:=true` on each.
//!
//! Every write is an apply: a reconcile that finds the work done changes nothing.

use serde_json::{Value, json};

use super::store::{Filter, PatchType, Store};
use super::types::{self, ResourceType};
use super::version::Release;

const EGRESS_FIREWALL_NAME: &str = "default";
const MULTICAST_SDN: &str = "netnamespace.network.openshift.io/multicast-enabled";
const MULTICAST_OVN: &str = "k8s.ovn.org/multicast-enabled";
const EGRESS_ASSIGNABLE: &str = "k8s.ovn.org/egress-assignable";
const EGRESS_CIDR_ANNOTATION: &str = "networkoperator.openshift.io/sdn-to-ovn-migration";

/// Every kind this module touches is served at v1.
fn t(group: &str, plural: &str) -> &'static ResourceType {
    types::find(group, "v1", plural).expect("known type")
}

fn name(object: &Value) -> &str {
    object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default()
}

fn namespace(object: &Value) -> &str {
    object.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default()
}

/// Which features the operator converts now, if any: `None` when it converts nothing on this
/// reconcile (release, no migration, or not yet switched on 4.16).
pub fn features_to_convert(release: Release, operator: &Value) -> Option<(String, [bool; 3])> {
    if release.minor < 12 || !release.has_openshift_sdn() {
        return None;
    }
    let migration = operator.pointer("/spec/migration").filter(|m| m.is_object())?;
    let target = migration.get("networkType").and_then(Value::as_str).unwrap_or_default();
    if target != "OVNKubernetes" && target != "OpenShiftSDN" {
        return None;
    }
    let current = operator.pointer("/spec/defaultNetwork/type").and_then(Value::as_str).unwrap_or_default();
    if release.minor >= 16 && current != target {
        return None;
    }
    let on = |key: &str| migration.pointer(&format!("/features/{key}")).and_then(Value::as_bool).unwrap_or(true);
    Some((target.to_owned(), [on("egressFirewall"), on("multicast"), on("egressIP")]))
}

/// One reconcile's conversions.
pub fn convert(store: &mut Store, release: Release, operator: &Value) {
    let Some((target, [firewall, multicast, egress_ip])) = features_to_convert(release, operator) else { return };
    let to_ovn = target == "OVNKubernetes";
    if firewall {
        convert_firewalls(store, to_ovn);
    }
    if multicast {
        convert_multicast(store, to_ovn);
    }
    if egress_ip {
        if to_ovn {
            egress_ips_to_ovn(store);
        } else {
            egress_ips_to_sdn(store);
        }
    }
}

/// Creates `object` or merges it over the existing one.
fn apply(store: &mut Store, kind: &ResourceType, ns: Option<&str>, object: Value) {
    let object_name = name(&object).to_owned();
    if store.get(kind, ns, &object_name).is_ok() {
        let _ = store.patch(kind, ns, &object_name, PatchType::Merge, &object, None);
    } else {
        let _ = store.create(kind, ns, object);
    }
}

fn all(store: &Store, kind: &ResourceType) -> Vec<Value> {
    store.list(kind, &Filter::default(), None, None).items.iter().map(|o| (**o).clone()).collect()
}

/// `convertEgressNetworkPolicyToEgressFirewall`: each EgressNetworkPolicy becomes the
/// namespace's EgressFirewall `default` (the only name OVN-Kubernetes allows) with the same
/// spec; `convertEgressFirewallToEgressNetworkPolicy` the other way, keeping the name.
fn convert_firewalls(store: &mut Store, to_ovn: bool) {
    let (from, to) = if to_ovn {
        (t("network.openshift.io", "egressnetworkpolicies"), t("k8s.ovn.org", "egressfirewalls"))
    } else {
        (t("k8s.ovn.org", "egressfirewalls"), t("network.openshift.io", "egressnetworkpolicies"))
    };
    for policy in all(store, from) {
        let Some(spec) = policy.get("spec").cloned() else { continue };
        let ns = namespace(&policy).to_owned();
        let target_name = if to_ovn { EGRESS_FIREWALL_NAME } else { name(&policy) };
        apply(
            store,
            to,
            Some(&ns),
            json!({"apiVersion": to.api_version(), "kind": to.kind, "metadata": {"name": target_name, "namespace": ns}, "spec": spec}),
        );
    }
}

/// `enableMulticastOVN`: a NetNamespace annotated multicast-enabled "true" gets its namespace
/// annotated `k8s.ovn.org/multicast-enabled: "true"`. `enableMulticastSDN`: the other way, the
/// namespace's annotation removed afterwards.
fn convert_multicast(store: &mut Store, to_ovn: bool) {
    let (namespaces, netnamespaces) = (t("", "namespaces"), t("network.openshift.io", "netnamespaces"));
    if to_ovn {
        for nns in all(store, netnamespaces) {
            if nns.pointer("/metadata/annotations").and_then(|a| a.get(MULTICAST_SDN)).and_then(Value::as_str) == Some("true") {
                let body = json!({"metadata": {"annotations": {MULTICAST_OVN: "true"}}});
                let _ = store.patch(namespaces, None, name(&nns), PatchType::Merge, &body, None);
            }
        }
        return;
    }
    for ns in all(store, namespaces) {
        if ns.pointer("/metadata/annotations").and_then(|a| a.get(MULTICAST_OVN)).and_then(Value::as_str) == Some("true") {
            let body = json!({"metadata": {"annotations": {MULTICAST_SDN: "true"}}});
            if store.patch(netnamespaces, None, name(&ns), PatchType::Merge, &body, None).is_ok() {
                let remove = json!({"metadata": {"annotations": {MULTICAST_OVN: null}}});
                let _ = store.patch(namespaces, None, name(&ns), PatchType::Merge, &remove, None);
            }
        }
    }
}

fn egress_ips_of(object: &Value) -> Vec<Value> {
    object.get("egressIPs").and_then(Value::as_array).cloned().unwrap_or_default()
}

/// `convertSdnEgressIpToOvnEgressIp` and `applyEgressIpList`: each HostSubnet with egress IPs
/// labels its node egress-assignable (its egressCIDRs kept in a node annotation for a rollback)
/// and loses its egress configuration; nothing more happens unless one did ("did not find a
/// hostsubnet object with egressIP configured, quitting process early"). Then each NetNamespace
/// with egress IPs becomes an EgressIP `egressip-<namespace>` selecting its namespace by
/// `kubernetes.io/metadata.name`, and loses its egress IPs.
fn egress_ips_to_ovn(store: &mut Store) {
    let (nodes, hostsubnets, netnamespaces, egress_ips) = (
        t("", "nodes"),
        t("network.openshift.io", "hostsubnets"),
        t("network.openshift.io", "netnamespaces"),
        t("k8s.ovn.org", "egressips"),
    );
    let mut found = false;
    for subnet in all(store, hostsubnets) {
        if egress_ips_of(&subnet).is_empty() {
            continue;
        }
        found = true;
        let host = subnet.get("host").and_then(Value::as_str).unwrap_or(name(&subnet)).to_owned();
        let mut body = json!({"metadata": {"labels": {EGRESS_ASSIGNABLE: ""}}});
        if let Some(cidrs) = subnet.get("egressCIDRs").filter(|c| c.as_array().is_some_and(|a| !a.is_empty())) {
            body["metadata"]["annotations"] = json!({EGRESS_CIDR_ANNOTATION: json!({"EgressCIDRs": cidrs}).to_string()});
        }
        let _ = store.patch(nodes, None, &host, PatchType::Merge, &body, None);
        let _ = store.patch(hostsubnets, None, name(&subnet), PatchType::Merge, &json!({"egressCIDRs": null, "egressIPs": null}), None);
    }
    if !found {
        return;
    }
    for nns in all(store, netnamespaces) {
        let ips = egress_ips_of(&nns);
        if ips.is_empty() {
            continue;
        }
        let netname = nns.get("netname").cloned().unwrap_or_else(|| json!(name(&nns)));
        apply(
            store,
            egress_ips,
            None,
            json!({"apiVersion": "k8s.ovn.org/v1", "kind": "EgressIP", "metadata": {"name": format!("egressip-{}", name(&nns))},
                   "spec": {"egressIPs": ips, "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": netname}}}}),
        );
        let _ = store.patch(netnamespaces, None, name(&nns), PatchType::Merge, &json!({"egressIPs": null}), None);
    }
}

/// `convertOvnEgressIpToSdnEgressIp`: each EgressIP's addresses go back to the NetNamespace its
/// namespace selector names, and each egress-assignable node's HostSubnet gets back the
/// egressCIDRs kept in its annotation. The operator waits until every node has a HostSubnet
/// (`sdnEgressIpResourcesReady`); a node without one leaves the conversion for a later reconcile.
fn egress_ips_to_sdn(store: &mut Store) {
    let (nodes, hostsubnets, netnamespaces, egress_ips) = (
        t("", "nodes"),
        t("network.openshift.io", "hostsubnets"),
        t("network.openshift.io", "netnamespaces"),
        t("k8s.ovn.org", "egressips"),
    );
    let node_list = all(store, nodes);
    let subnets = all(store, hostsubnets);
    let every_node_has_a_subnet =
        node_list.iter().all(|n| subnets.iter().any(|s| s.get("host").and_then(Value::as_str).unwrap_or(name(s)) == name(n)));
    if !every_node_has_a_subnet {
        return;
    }
    for eip in all(store, egress_ips) {
        let Some(ns) = eip.pointer("/spec/namespaceSelector/matchLabels/kubernetes.io~1metadata.name").and_then(Value::as_str) else {
            continue;
        };
        let ips = eip.pointer("/spec/egressIPs").cloned().unwrap_or(json!([]));
        let _ = store.patch(netnamespaces, None, ns, PatchType::Merge, &json!({"egressIPs": ips}), None);
    }
    for node in node_list.iter().filter(|n| n.pointer("/metadata/labels").and_then(|l| l.get(EGRESS_ASSIGNABLE)).is_some()) {
        let kept = node
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(EGRESS_CIDR_ANNOTATION))
            .and_then(Value::as_str)
            .and_then(|text| serde_json::from_str::<Value>(text).ok())
            .and_then(|v| v.get("EgressCIDRs").cloned());
        if let Some(cidrs) = kept {
            let _ = store.patch(hostsubnets, None, name(node), PatchType::Merge, &json!({"egressCIDRs": cidrs}), None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(text: &str) -> Release {
        Release::parse(text).unwrap()
    }

    fn operator(default_type: &str, migration: Value) -> Value {
        json!({"spec": {"defaultNetwork": {"type": default_type}, "migration": migration}})
    }

    fn store_with_sdn_features() -> Store {
        let mut store = Store::new(100);
        for ns in ["shop", "quiet"] {
            store
                .create(t("", "namespaces"), None, json!({"metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}}))
                .unwrap();
        }
        store
            .create(
                t("network.openshift.io", "netnamespaces"),
                None,
                json!({"metadata": {"name": "shop", "annotations": {MULTICAST_SDN: "true"}}, "netname": "shop", "netid": 1001, "egressIPs": ["198.51.100.50"]}),
            )
            .unwrap();
        store
            .create(
                t("network.openshift.io", "netnamespaces"),
                None,
                json!({"metadata": {"name": "quiet"}, "netname": "quiet", "netid": 1002}),
            )
            .unwrap();
        store.create(t("", "nodes"), None, json!({"metadata": {"name": "worker-0"}})).unwrap();
        store
            .create(
                t("network.openshift.io", "hostsubnets"),
                None,
                json!({"metadata": {"name": "worker-0"}, "host": "worker-0", "egressCIDRs": ["198.51.100.0/24"], "egressIPs": ["198.51.100.50"]}),
            )
            .unwrap();
        store
            .create(
                t("network.openshift.io", "egressnetworkpolicies"),
                Some("shop"),
                json!({"metadata": {"name": "deny-all", "namespace": "shop"}, "spec": {"egress": [{"type": "Deny", "to": {"cidrSelector": "0.0.0.0/0"}}]}}),
            )
            .unwrap();
        store
    }

    #[test]
    fn release_4_11_converts_nothing_4_12_converts_from_phase_1_and_4_16_only_after_the_switch() {
        let phase_1 = operator("OpenShiftSDN", json!({"networkType": "OVNKubernetes"}));
        let switched = operator("OVNKubernetes", json!({"networkType": "OVNKubernetes"}));
        assert_eq!(features_to_convert(release("4.11.9"), &switched), None);
        assert_eq!(features_to_convert(release("4.12.3"), &phase_1), Some(("OVNKubernetes".into(), [true; 3])));
        assert_eq!(features_to_convert(release("4.15.40"), &phase_1), Some(("OVNKubernetes".into(), [true; 3])));
        assert_eq!(features_to_convert(release("4.16.21"), &phase_1), None);
        assert_eq!(features_to_convert(release("4.16.21"), &switched), Some(("OVNKubernetes".into(), [true; 3])));
        assert_eq!(features_to_convert(release("4.14.38"), &operator("OpenShiftSDN", Value::Null)), None);
        let skipped = operator("OpenShiftSDN", json!({"networkType": "OVNKubernetes", "features": {"egressIP": false, "multicast": true}}));
        assert_eq!(features_to_convert(release("4.14.38"), &skipped), Some(("OVNKubernetes".into(), [true, true, false])));
    }

    #[test]
    fn to_ovn_each_feature_becomes_its_ovn_kubernetes_object_once() {
        let mut store = store_with_sdn_features();
        let op = operator("OpenShiftSDN", json!({"networkType": "OVNKubernetes"}));
        convert(&mut store, release("4.14.38"), &op);
        let firewall = store.get(t("k8s.ovn.org", "egressfirewalls"), Some("shop"), "default").unwrap();
        assert_eq!(firewall["spec"]["egress"][0]["type"], "Deny");
        let ns = store.get(t("", "namespaces"), None, "shop").unwrap();
        assert_eq!(ns["metadata"]["annotations"][MULTICAST_OVN], "true");
        assert!(store.get(t("", "namespaces"), None, "quiet").unwrap().pointer("/metadata/annotations").is_none());
        let eip = store.get(t("k8s.ovn.org", "egressips"), None, "egressip-shop").unwrap();
        assert_eq!(eip["spec"]["egressIPs"], json!(["198.51.100.50"]));
        assert_eq!(eip["spec"]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], "shop");
        let node = store.get(t("", "nodes"), None, "worker-0").unwrap();
        assert_eq!(node["metadata"]["labels"][EGRESS_ASSIGNABLE], "");
        assert!(node["metadata"]["annotations"][EGRESS_CIDR_ANNOTATION].as_str().unwrap().contains("198.51.100.0/24"));
        assert!(store.get(t("network.openshift.io", "netnamespaces"), None, "shop").unwrap().get("egressIPs").is_none());
        // A second reconcile finds the work done and writes nothing.
        let before = store.list(t("k8s.ovn.org", "egressips"), &Filter::default(), None, None).resource_version;
        convert(&mut store, release("4.14.38"), &op);
        assert_eq!(store.list(t("k8s.ovn.org", "egressips"), &Filter::default(), None, None).resource_version, before);
    }

    #[test]
    fn a_feature_set_false_is_left_alone() {
        let mut store = store_with_sdn_features();
        let op = operator(
            "OpenShiftSDN",
            json!({"networkType": "OVNKubernetes", "features": {"egressFirewall": false, "multicast": false, "egressIP": true}}),
        );
        convert(&mut store, release("4.14.38"), &op);
        assert!(store.get(t("k8s.ovn.org", "egressfirewalls"), Some("shop"), "default").is_err());
        assert!(store.get(t("", "namespaces"), None, "shop").unwrap().pointer("/metadata/annotations").is_none());
        assert!(store.get(t("k8s.ovn.org", "egressips"), None, "egressip-shop").is_ok());
    }

    #[test]
    fn back_to_sdn_the_objects_return_to_their_sdn_kinds() {
        let mut store = store_with_sdn_features();
        convert(&mut store, release("4.14.38"), &operator("OpenShiftSDN", json!({"networkType": "OVNKubernetes"})));
        convert(&mut store, release("4.14.38"), &operator("OVNKubernetes", json!({"networkType": "OpenShiftSDN"})));
        let nns = store.get(t("network.openshift.io", "netnamespaces"), None, "shop").unwrap();
        assert_eq!(nns["egressIPs"], json!(["198.51.100.50"]));
        assert_eq!(nns["metadata"]["annotations"][MULTICAST_SDN], "true");
        let ns = store.get(t("", "namespaces"), None, "shop").unwrap();
        assert!(ns.pointer(&format!("/metadata/annotations/{}", MULTICAST_OVN.replace('/', "~1"))).is_none());
        let subnet = store.get(t("network.openshift.io", "hostsubnets"), None, "worker-0").unwrap();
        assert_eq!(subnet["egressCIDRs"], json!(["198.51.100.0/24"]));
        assert!(store.get(t("network.openshift.io", "egressnetworkpolicies"), Some("shop"), "default").is_ok());
    }
}
