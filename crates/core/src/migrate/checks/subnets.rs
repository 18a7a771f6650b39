//! OVN-Kubernetes' internal ranges and the cluster networks that would collide with them.

use serde_json::Value;

use super::*;

/// An IPv4 or IPv6 network, as 128 bits (IPv4 in the low 32) and a prefix over 128.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    bits: u128,
    prefix: u32,
    v6: bool,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Cidr> {
        let (address, prefix) = text.trim().split_once('/').map_or((text.trim(), None), |(a, p)| (a, Some(p)));
        match address.parse::<std::net::IpAddr>().ok()? {
            std::net::IpAddr::V4(v4) => {
                let prefix: u32 = prefix.map_or(Some(32), |p| p.parse().ok())?;
                (prefix <= 32).then_some(Cidr { bits: u128::from(u32::from(v4)), prefix: prefix + 96, v6: false })
            }
            std::net::IpAddr::V6(v6) => {
                let prefix: u32 = prefix.map_or(Some(128), |p| p.parse().ok())?;
                (prefix <= 128).then_some(Cidr { bits: u128::from(v6), prefix, v6: true })
            }
        }
    }

    pub fn overlaps(&self, other: &Cidr) -> bool {
        if self.v6 != other.v6 {
            return false;
        }
        let prefix = self.prefix.min(other.prefix);
        let shift = 128 - prefix;
        // IPv4 lives in the low 32 bits: compare those only.
        let mask = |b: u128| if self.v6 { b } else { b & 0xffff_ffff };
        shift >= 128 || (mask(self.bits) >> shift) == (mask(other.bits) >> shift)
    }
}

/// OVN-Kubernetes' internal ranges (openshift-docs `modules/nw-ovn-kubernetes-migration.adoc`,
/// "OVN-Kubernetes reserves..."; openshift/api `operator/v1/types_network.go`,
/// `OVNKubernetesConfig.V4InternalSubnet`, `IPv4OVNKubernetesConfig.InternalTransitSwitchSubnet`,
/// `IPv4GatewayConfig.InternalMasqueradeSubnet`): (what, range in use, the option that moves it).
/// Before 4.14 only the join subnet is reserved: the transit switch subnet arrives with the
/// interconnect architecture and the masquerade subnet becomes configurable in 4.14 (both
/// `IPv4OVNKubernetesConfig.InternalTransitSwitchSubnet` and
/// `IPv4GatewayConfig.InternalMasqueradeSubnet` first appear in the openshift/api that
/// cluster-network-operator release-4.14 vendors); `release_minor: None` checks them all.
pub fn ovn_internal_ranges(moved: &InternalSubnets, release_minor: Option<u32>) -> Vec<(&'static str, String, &'static str)> {
    let mut ranges = vec![
        (
            "join subnet",
            moved.join.clone().unwrap_or_else(|| "100.64.0.0/16".into()),
            "--v4-internal-subnet (ovnKubernetesConfig.v4InternalSubnet)",
        ),
        (
            "masquerade subnet",
            moved.masquerade.clone().unwrap_or_else(|| "169.254.169.0/29".into()),
            "--masquerade-subnet (gatewayConfig.ipv4.internalMasqueradeSubnet)",
        ),
        (
            "transit switch subnet",
            moved.transit.clone().unwrap_or_else(|| "100.88.0.0/16".into()),
            "--transit-switch-subnet (ipv4.internalTransitSwitchSubnet)",
        ),
        ("IPv6 join subnet", "fd98::/64".into(), "ovnKubernetesConfig.v6InternalSubnet"),
        ("IPv6 masquerade subnet", "fd69::/125".into(), "gatewayConfig.ipv6.internalMasqueradeSubnet"),
        ("IPv6 transit switch subnet", "fd97::/64".into(), "ipv6.internalTransitSwitchSubnet"),
    ];
    if release_minor.is_some_and(|m| m < 14) {
        ranges.truncate(1);
    }
    ranges
}

/// The internal subnets in force: the options, else what `ovnKubernetesConfig` already holds
/// (an admin may have moved them before the migration). Pure.
pub fn subnets_in_force(network_operator: &Value, asked: &InternalSubnets) -> InternalSubnets {
    let set = |pointer: &str| Some(text(network_operator, pointer)).filter(|t| !t.is_empty()).map(str::to_owned);
    let config = "/spec/defaultNetwork/ovnKubernetesConfig";
    InternalSubnets {
        join: asked.join.clone().or_else(|| set(&format!("{config}/v4InternalSubnet"))),
        transit: asked.transit.clone().or_else(|| set(&format!("{config}/ipv4/internalTransitSwitchSubnet"))),
        masquerade: asked.masquerade.clone().or_else(|| set(&format!("{config}/gatewayConfig/ipv4/internalMasqueradeSubnet"))),
    }
}

/// The cluster, service and machine networks that overlap an OVN-Kubernetes internal range.
/// Pure.
pub fn range_collisions(snapshot: &ClusterSnapshot, moved: &InternalSubnets, release_minor: Option<u32>) -> Vec<String> {
    let mut networks: Vec<(String, String)> = Vec::new();
    if let Some(list) = snapshot.network_config.pointer("/spec/clusterNetwork").and_then(Value::as_array) {
        networks.extend(list.iter().map(|n| ("clusterNetwork".to_owned(), text(n, "/cidr").to_owned())));
    }
    if let Some(list) = snapshot.network_config.pointer("/spec/serviceNetwork").and_then(Value::as_array) {
        networks.extend(list.iter().map(|n| ("serviceNetwork".to_owned(), n.as_str().unwrap_or("").to_owned())));
    }
    networks.extend(snapshot.node_ips.iter().map(|ip| ("machine network (node address)".to_owned(), ip.clone())));
    let mut found = Vec::new();
    let moved = subnets_in_force(&snapshot.network_operator, moved);
    for (what, range, option) in ovn_internal_ranges(&moved, release_minor) {
        let Some(internal) = Cidr::parse(&range) else {
            found.push(format!("{what} {range} is not a CIDR"));
            continue;
        };
        for (kind, cidr) in &networks {
            if Cidr::parse(cidr).is_some_and(|c| c.overlaps(&internal)) {
                found.push(format!("{kind} {cidr} overlaps OVN-Kubernetes' {what} {range}: move it with {option}"));
            }
        }
    }
    found
}
