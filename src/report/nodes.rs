//! `fleetboot nodes` output: the document's jsonpath (`-o ips`) and a kubectl-like table.

use fleetboot_core::nodes::NodeInfo;
use fleetboot_core::table::{short_id, table};

/// Exactly what `oc get nodes -o jsonpath='{.items[*].status.addresses[?(@.type=="InternalIP")].address}'`
/// prints: every matching address, space-separated, no newline.
pub fn render_ips(nodes: &[NodeInfo]) -> String {
    nodes.iter().flat_map(|n| n.addresses.iter().cloned()).collect::<Vec<_>>().join(" ")
}

pub fn render_table(nodes: &[NodeInfo], wide: bool) -> String {
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            let address = match n.addresses.as_slice() {
                [] => "<none>".to_owned(),
                many => many.join(","),
            };
            let ready = match (n.ready.as_str(), n.unschedulable) {
                ("True", false) => "Ready".to_owned(),
                ("True", true) => "Ready,SchedulingDisabled".to_owned(),
                (other, _) => format!("NotReady({other})"),
            };
            let mut row = vec![
                n.name.clone(),
                if n.roles.is_empty() { "<none>".into() } else { n.roles.join(",") },
                address,
                ready,
                if wide { n.boot_id.clone() } else { short_id(&n.boot_id).to_owned() },
                n.pool.clone().unwrap_or_else(|| "-".into()),
            ];
            if wide {
                row.push(n.kubelet_version.clone());
                row.push(n.labels.len().to_string());
                row.push(n.kube_exec.clone().unwrap_or_else(|| "-".into()));
                row.push(n.bmc.clone().unwrap_or_else(|| "-".into()));
                row.push(n.bmc_status.clone().unwrap_or_else(|| "-".into()));
            }
            row
        })
        .collect();
    let address_header = nodes.first().map_or("INTERNAL-IP".to_owned(), |n| match n.address_type.as_str() {
        "InternalIP" => "INTERNAL-IP".into(),
        other => other.to_uppercase(),
    });
    let mut header = vec!["NAME", "ROLES", address_header.as_str(), "STATUS", "BOOT-ID", "POOL"];
    if wide {
        header.extend(["VERSION", "LABELS", "KUBE-EXEC", "BMC", "BMC-STATUS"]);
    }
    table(&header, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::kube::node_info;
    use fleetboot_core::nodes::{MaxUnavailable, PoolSelector, address_problems, grouping};
    use k8s_openapi::api::core::v1::Node;
    use k8s_openapi::api::core::v1::{NodeAddress, NodeCondition, NodeStatus, NodeSystemInfo};

    fn node(name: &str, role: &str, ips: &[&str]) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        n.metadata.labels = Some([(format!("node-role.kubernetes.io/{role}"), String::new())].into_iter().collect());
        n.status = Some(NodeStatus {
            addresses: Some(
                ips.iter()
                    .map(|ip| NodeAddress { type_: "InternalIP".into(), address: (*ip).into() })
                    .chain([NodeAddress { type_: "Hostname".into(), address: name.into() }])
                    .collect(),
            ),
            conditions: Some(vec![NodeCondition { type_: "Ready".into(), status: "True".into(), ..Default::default() }]),
            node_info: Some(NodeSystemInfo { boot_id: "0123456789abcdef".into(), kubelet_version: "v1.33.0".into(), ..Default::default() }),
            ..Default::default()
        });
        n
    }

    fn pools() -> Vec<PoolSelector> {
        let pool = |name: &str, label: &str| PoolSelector {
            name: name.into(),
            match_labels: [(label.to_owned(), String::new())].into_iter().collect(),
            max_unavailable: MaxUnavailable::Count(if name == "worker" { 2 } else { 1 }),
        };
        vec![
            pool("master", "node-role.kubernetes.io/master"),
            pool("worker", "node-role.kubernetes.io/worker"),
            pool("infra", "node-role.kubernetes.io/infra"),
        ]
    }

    #[test]
    fn ips_render_like_the_documents_jsonpath() {
        let nodes = [node("a", "master", &["127.0.0.2"]), node("b", "worker", &[]), node("c", "worker", &["127.0.0.4", "127.0.0.5"])];
        let infos: Vec<NodeInfo> = nodes.iter().map(|n| node_info(n, &pools(), "InternalIP")).collect();
        assert_eq!(render_ips(&infos), "127.0.0.2 127.0.0.4 127.0.0.5");
        let problems = address_problems(&infos);
        assert_eq!(problems.len(), 2);
        assert!(problems[0].contains("node b has no InternalIP address"), "{problems:?}");
        assert!(problems[1].contains("has 2 InternalIP addresses"), "{problems:?}");
        let hostnames: Vec<NodeInfo> = nodes.iter().map(|n| node_info(n, &pools(), "Hostname")).collect();
        assert_eq!(render_ips(&hostnames), "a b c");
    }

    #[test]
    fn custom_pools_win_over_worker() {
        let mut infra = node("i", "worker", &["127.0.0.9"]);
        infra.metadata.labels.as_mut().unwrap().insert("node-role.kubernetes.io/infra".into(), String::new());
        assert_eq!(node_info(&infra, &pools(), "InternalIP").pool.as_deref(), Some("infra"));
        assert_eq!(node_info(&node("w", "worker", &[]), &pools(), "InternalIP").pool.as_deref(), Some("worker"));
        assert_eq!(node_info(&node("x", "edge", &[]), &pools(), "InternalIP").pool, None);
    }

    #[test]
    fn groups_put_the_control_plane_last_one_at_a_time() {
        let mut nodes = vec![
            node_info(&node("m0", "master", &["127.0.0.2"]), &pools(), "InternalIP"),
            node_info(&node("w0", "worker", &["127.0.0.3"]), &pools(), "InternalIP"),
            node_info(&node("w1", "worker", &["127.0.0.4"]), &pools(), "InternalIP"),
        ];
        let by_pool = grouping(&nodes, &pools(), "pool", None);
        assert_eq!(by_pool.limits, [("master".to_string(), 1), ("worker".to_string(), 2)].into_iter().collect());
        assert_eq!(by_pool.last, ["master"]);
        nodes[1].labels.insert("zone".into(), "a".into());
        let by_zone = grouping(&nodes, &pools(), "zone", Some(3));
        assert_eq!(by_zone.of["w0"], "zone=a");
        assert_eq!(by_zone.of["w1"], "zone=(unset)");
        assert_eq!(by_zone.limits["zone=a"], 3);
        assert_eq!(by_zone.limits["master"], 1, "the control plane stays one at a time");
    }

    #[test]
    fn table_shows_roles_address_status_and_pool() {
        let infos = vec![node_info(&node("master-0", "master", &["127.0.0.2"]), &pools(), "InternalIP")];
        let text = render_table(&infos, false);
        assert!(text.starts_with("NAME      ROLES   INTERNAL-IP  STATUS  BOOT-ID   POOL\n"), "{text}");
        assert!(text.contains("master-0  master  127.0.0.2    Ready   01234567  master"), "{text}");
    }
}
