//! Did OpenShift SDN's features survive the migration: every EgressNetworkPolicy has its
//! namespace's EgressFirewall `default`, every multicast NetNamespace its namespace's
//! `k8s.ovn.org/multicast-enabled`, every egress IP an EgressIP (and the other way after a
//! rollback). From 4.12 the network operator converts them (cluster-network-operator
//! release-4.12 `pkg/controller/operconfig/migration.go`) unless `spec.migration.features`
//! says no; before 4.12 nothing is converted (openshift-docs
//! `modules/nw-ovn-kubernetes-migration-about.adoc`) and the admin recreates them by hand. The
//! check reads the result, not the path: whoever made the object, it counts. Pure.

use serde_json::Value;

use super::model::Check;

const MULTICAST_SDN: &str = "netnamespace.network.openshift.io/multicast-enabled";
const MULTICAST_OVN: &str = "k8s.ovn.org/multicast-enabled";
const EGRESS_ASSIGNABLE: &str = "k8s.ovn.org/egress-assignable";

/// The objects of both plugins' features, read after the migration (empty lists where a kind is
/// not served).
#[derive(Clone, Debug, Default)]
pub struct FeatureObjects {
    pub netnamespaces: Vec<Value>,
    pub hostsubnets: Vec<Value>,
    pub egress_network_policies: Vec<Value>,
    pub egress_firewalls: Vec<Value>,
    pub egress_ips: Vec<Value>,
    pub namespaces: Vec<Value>,
    /// Node labels by node name, for `k8s.ovn.org/egress-assignable`.
    pub nodes: Vec<Value>,
    /// `Network.operator` `spec.migration.features`, when a migration is still set: a feature
    /// set to false was left to the admin on purpose.
    pub migration_features: Option<Value>,
    /// The minor release (4.N), when known.
    pub release_minor: Option<u32>,
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn name(v: &Value) -> &str {
    text(v, "/metadata/name")
}

fn annotation<'a>(v: &'a Value, key: &str) -> &'a str {
    v.pointer("/metadata/annotations").and_then(|a| a.get(key)).and_then(Value::as_str).unwrap_or("")
}

fn ips(v: &Value, pointer: &str) -> Vec<String> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The namespace an EgressIP selects by `kubernetes.io/metadata.name`, as the operator writes it.
fn selected_namespace(egress_ip: &Value) -> &str {
    text(egress_ip, "/spec/namespaceSelector/matchLabels/kubernetes.io~1metadata.name")
}

/// (feature switch, what is missing) for each object of the source plugin whose counterpart
/// the target plugin lacks.
fn missing(objects: &FeatureObjects, target: &str) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let namespace_has = |ns: &str, key: &str| objects.namespaces.iter().any(|n| name(n) == ns && annotation(n, key) == "true");
    if target == "OVNKubernetes" {
        for policy in &objects.egress_network_policies {
            let ns = text(policy, "/metadata/namespace");
            if !objects.egress_firewalls.iter().any(|f| text(f, "/metadata/namespace") == ns && name(f) == "default") {
                out.push(("egressFirewall", format!("EgressNetworkPolicy {ns}/{} has no EgressFirewall {ns}/default", name(policy))));
            }
        }
        for nns in objects.netnamespaces.iter().filter(|n| annotation(n, MULTICAST_SDN) == "true") {
            if !namespace_has(name(nns), MULTICAST_OVN) {
                out.push(("multicast", format!("namespace {} lacks {MULTICAST_OVN}=true", name(nns))));
            }
        }
        for nns in &objects.netnamespaces {
            let wanted = ips(nns, "/egressIPs");
            let covered = objects.egress_ips.iter().any(|e| {
                selected_namespace(e) == name(nns) && {
                    let have = ips(e, "/spec/egressIPs");
                    wanted.iter().all(|ip| have.contains(ip))
                }
            });
            if !wanted.is_empty() && !covered {
                out.push(("egressIP", format!("egress IPs {} of namespace {} are in no EgressIP", wanted.join(", "), name(nns))));
            }
        }
        for subnet in objects.hostsubnets.iter().filter(|s| !ips(s, "/egressIPs").is_empty()) {
            let host = Some(text(subnet, "/host")).filter(|h| !h.is_empty()).unwrap_or(name(subnet));
            let labelled = objects
                .nodes
                .iter()
                .any(|n| name(n) == host && n.pointer("/metadata/labels").and_then(|l| l.get(EGRESS_ASSIGNABLE)).is_some());
            if !labelled {
                out.push(("egressIP", format!("node {host} hosted egress IPs and is not labelled {EGRESS_ASSIGNABLE}")));
            }
        }
    } else {
        for firewall in &objects.egress_firewalls {
            let ns = text(firewall, "/metadata/namespace");
            if !objects.egress_network_policies.iter().any(|p| text(p, "/metadata/namespace") == ns) {
                out.push(("egressFirewall", format!("EgressFirewall {ns}/{} has no EgressNetworkPolicy in {ns}", name(firewall))));
            }
        }
        for ns in objects.namespaces.iter().filter(|n| annotation(n, MULTICAST_OVN) == "true") {
            if !objects.netnamespaces.iter().any(|n| name(n) == name(ns) && annotation(n, MULTICAST_SDN) == "true") {
                out.push(("multicast", format!("NetNamespace {} lacks {MULTICAST_SDN}=true", name(ns))));
            }
        }
        for egress_ip in &objects.egress_ips {
            let ns = selected_namespace(egress_ip);
            let wanted = ips(egress_ip, "/spec/egressIPs");
            let have = objects.netnamespaces.iter().find(|n| name(n) == ns).map(|n| ips(n, "/egressIPs")).unwrap_or_default();
            if !wanted.iter().all(|ip| have.contains(ip)) {
                out.push(("egressIP", format!("EgressIP {} ({}) is not on NetNamespace {ns}", name(egress_ip), wanted.join(", "))));
            }
        }
    }
    out
}

/// The verify line for the features, or `None` when neither plugin has any to carry over.
pub fn conversion_check(objects: &FeatureObjects, target: &str) -> Option<Check> {
    let any = !objects.egress_network_policies.is_empty()
        || !objects.egress_firewalls.is_empty()
        || !objects.egress_ips.is_empty()
        || objects.netnamespaces.iter().any(|n| annotation(n, MULTICAST_SDN) == "true" || !ips(n, "/egressIPs").is_empty())
        || objects.hostsubnets.iter().any(|s| !ips(s, "/egressIPs").is_empty())
        || objects.namespaces.iter().any(|n| annotation(n, MULTICAST_OVN) == "true");
    if !any {
        return None;
    }
    let skipped = |switch: &str| objects.migration_features.as_ref().and_then(|f| f.get(switch)).and_then(Value::as_bool) == Some(false);
    let converts = objects.release_minor.is_none_or(|m| m >= 12);
    let (mut failing, mut left_on_purpose) = (Vec::new(), Vec::new());
    for (switch, what) in missing(objects, target) {
        if skipped(switch) {
            left_on_purpose.push(what);
        } else {
            failing.push(what);
        }
    }
    let name = "egress firewalls, egress IPs and multicast carried over to the new network".to_owned();
    let by_hand = if left_on_purpose.is_empty() {
        String::new()
    } else {
        format!("; skipped by spec.migration.features, recreate by hand: {}", left_on_purpose.join("; "))
    };
    if failing.is_empty() {
        return Some(Check { name, passed: true, detail: format!("every one has its counterpart{by_hand}") });
    }
    let why = if converts {
        "not converted by the network operator (if it was skipped with --skip-feature, recreate it by hand)".to_owned()
    } else {
        format!("OpenShift 4.{} does not convert them (from 4.12 it does): recreate by hand", objects.release_minor.unwrap_or_default())
    };
    Some(Check { name, passed: false, detail: format!("{why}: {}{by_hand}", failing.join("; ")) })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sdn_features() -> FeatureObjects {
        FeatureObjects {
            netnamespaces: vec![
                json!({"metadata": {"name": "shop", "annotations": {MULTICAST_SDN: "true"}}, "egressIPs": ["198.51.100.50"]}),
                json!({"metadata": {"name": "quiet"}}),
            ],
            hostsubnets: vec![json!({"metadata": {"name": "worker-0"}, "host": "worker-0", "egressIPs": ["198.51.100.50"]})],
            egress_network_policies: vec![json!({"metadata": {"name": "deny-all", "namespace": "shop"}, "spec": {}})],
            namespaces: vec![json!({"metadata": {"name": "shop"}}), json!({"metadata": {"name": "quiet"}})],
            nodes: vec![json!({"metadata": {"name": "worker-0", "labels": {}}})],
            release_minor: Some(14),
            ..Default::default()
        }
    }

    fn converted(mut objects: FeatureObjects) -> FeatureObjects {
        objects.egress_firewalls = vec![json!({"metadata": {"name": "default", "namespace": "shop"}})];
        objects.egress_ips = vec![
            json!({"metadata": {"name": "egressip-shop"}, "spec": {"egressIPs": ["198.51.100.50"], "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shop"}}}}),
        ];
        objects.namespaces[0] = json!({"metadata": {"name": "shop", "annotations": {MULTICAST_OVN: "true"}}});
        objects.nodes[0] = json!({"metadata": {"name": "worker-0", "labels": {EGRESS_ASSIGNABLE: ""}}});
        objects.netnamespaces[0]["egressIPs"] = Value::Null;
        objects.hostsubnets[0]["egressIPs"] = Value::Null;
        objects
    }

    #[test]
    fn nothing_to_carry_over_is_no_line() {
        let objects = FeatureObjects { namespaces: vec![json!({"metadata": {"name": "a"}})], ..Default::default() };
        assert_eq!(conversion_check(&objects, "OVNKubernetes"), None);
    }

    #[test]
    fn every_feature_missing_its_counterpart_is_named() {
        let check = conversion_check(&sdn_features(), "OVNKubernetes").unwrap();
        assert!(!check.passed);
        for part in [
            "not converted by the network operator",
            "EgressNetworkPolicy shop/deny-all has no EgressFirewall shop/default",
            "namespace shop lacks k8s.ovn.org/multicast-enabled=true",
            "egress IPs 198.51.100.50 of namespace shop are in no EgressIP",
            "node worker-0 hosted egress IPs and is not labelled k8s.ovn.org/egress-assignable",
        ] {
            assert!(check.detail.contains(part), "{part}: {}", check.detail);
        }
    }

    #[test]
    fn converted_features_pass() {
        let check = conversion_check(&converted(sdn_features()), "OVNKubernetes").unwrap();
        assert!(check.passed, "{}", check.detail);
    }

    #[test]
    fn before_4_12_the_admin_recreates_them_by_hand() {
        let objects = FeatureObjects { release_minor: Some(10), ..sdn_features() };
        let check = conversion_check(&objects, "OVNKubernetes").unwrap();
        assert!(!check.passed);
        assert!(check.detail.starts_with("OpenShift 4.10 does not convert them (from 4.12 it does): recreate by hand"), "{}", check.detail);
    }

    #[test]
    fn a_skipped_feature_is_listed_for_the_admin_not_failed() {
        let mut objects = converted(sdn_features());
        objects.egress_firewalls.clear();
        objects.migration_features = Some(json!({"egressFirewall": false, "multicast": true, "egressIP": true}));
        let check = conversion_check(&objects, "OVNKubernetes").unwrap();
        assert!(check.passed, "{}", check.detail);
        assert!(check.detail.contains("skipped by spec.migration.features, recreate by hand: EgressNetworkPolicy shop/deny-all"));
    }

    #[test]
    fn after_a_rollback_the_ovn_objects_need_their_sdn_counterparts() {
        let mut objects = converted(sdn_features());
        objects.egress_network_policies.clear();
        objects.netnamespaces = vec![json!({"metadata": {"name": "shop"}})];
        let check = conversion_check(&objects, "OpenShiftSDN").unwrap();
        assert!(!check.passed);
        for part in [
            "EgressFirewall shop/default has no EgressNetworkPolicy in shop",
            "NetNamespace shop lacks netnamespace.network.openshift.io/multicast-enabled=true",
            "EgressIP egressip-shop (198.51.100.50) is not on NetNamespace shop",
        ] {
            assert!(check.detail.contains(part), "{part}: {}", check.detail);
        }
    }
}
