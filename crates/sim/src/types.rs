//! The kinds the simulated API server serves, with what discovery and kubectl need to know.

#[derive(Debug, PartialEq, Eq)]
pub struct ResourceType {
    /// "" for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// Subresources beyond the object itself: "status", "log", "eviction", "scale".
    pub subresources: &'static [&'static str],
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_owned() } else { format!("{}/{}", self.group, self.version) }
    }

    pub fn has_status(&self) -> bool {
        self.subresources.contains(&"status")
    }

    /// The map key of this type in the store.
    pub fn key(&self) -> String {
        format!("{}/{}", self.group, self.plural)
    }
}

macro_rules! rt {
    ($group:expr, $version:expr, $kind:expr, $plural:expr, $singular:expr, $ns:expr, [$($short:expr),*], [$($sub:expr),*]) => {
        ResourceType { group: $group, version: $version, kind: $kind, plural: $plural, singular: $singular,
            namespaced: $ns, short_names: &[$($short),*], subresources: &[$($sub),*] }
    };
}

pub static TYPES: &[ResourceType] = &[
    rt!("", "v1", "Node", "nodes", "node", false, ["no"], ["status"]),
    rt!("", "v1", "Pod", "pods", "pod", true, ["po"], ["status", "log", "eviction"]),
    rt!("", "v1", "Namespace", "namespaces", "namespace", false, ["ns"], ["status"]),
    rt!("", "v1", "Secret", "secrets", "secret", true, [], []),
    // ConfigMaps (kubernetes pkg/apis/core/types.go): no status; their data's size is checked
    // on create and update (store.rs `check_kind_limits`), resourceVersion preconditions as
    // for every kind (the generic registry store's optimistic concurrency).
    rt!("", "v1", "ConfigMap", "configmaps", "configmap", true, ["cm"], []),
    // ServiceAccounts and their TokenRequest subresource (serviceaccounts.rs).
    rt!("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", true, ["sa"], ["token"]),
    // Jobs (kubernetes pkg/apis/batch/types.go): stored and listed; no Job controller runs
    // here, the tests run a Job's pod command themselves.
    rt!("batch", "v1", "Job", "jobs", "job", true, [], ["status"]),
    rt!("", "v1", "Event", "events", "event", true, ["ev"], []),
    rt!("apps", "v1", "DaemonSet", "daemonsets", "daemonset", true, ["ds"], ["status"]),
    rt!("apps", "v1", "Deployment", "deployments", "deployment", true, ["deploy"], ["status", "scale"]),
    rt!("apps", "v1", "ReplicaSet", "replicasets", "replicaset", true, ["rs"], ["status", "scale"]),
    rt!("coordination.k8s.io", "v1", "Lease", "leases", "lease", true, [], []),
    // RBAC (`fleetboot sim --rbac` enforces it: rbac.rs) and the access review a client asks.
    rt!("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", false, [], []),
    rt!("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", "clusterrolebinding", false, [], []),
    rt!("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", true, [], []),
    rt!("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", true, [], []),
    rt!("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", "selfsubjectaccessreview", false, [], []),
    rt!("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", "poddisruptionbudget", true, ["pdb"], ["status"]),
    rt!("config.openshift.io", "v1", "Network", "networks", "network", false, [], ["status"]),
    rt!("config.openshift.io", "v1", "ClusterOperator", "clusteroperators", "clusteroperator", false, ["co"], ["status"]),
    rt!("config.openshift.io", "v1", "ClusterVersion", "clusterversions", "clusterversion", false, [], ["status"]),
    rt!("config.openshift.io", "v1", "Infrastructure", "infrastructures", "infrastructure", false, [], ["status"]),
    rt!("operator.openshift.io", "v1", "Network", "networks", "network", false, [], ["status"]),
    rt!(
        "machineconfiguration.openshift.io",
        "v1",
        "MachineConfigPool",
        "machineconfigpools",
        "machineconfigpool",
        false,
        ["mcp"],
        ["status"]
    ),
    rt!("machineconfiguration.openshift.io", "v1", "MachineConfig", "machineconfigs", "machineconfig", false, ["mc"], []),
    // Image streams (openshift/api `image/v1/types.go`): stored with their status, which on a
    // real cluster the image API fills when it imports a tag (here whoever writes the status).
    rt!("image.openshift.io", "v1", "ImageStream", "imagestreams", "imagestream", true, ["is"], ["status"]),
    rt!("metal3.io", "v1alpha1", "BareMetalHost", "baremetalhosts", "baremetalhost", true, ["bmh"], ["status"]),
    // OpenShift SDN's own kinds (openshift/api `network/v1/types.go`): egress IPs on NetNamespaces
    // and HostSubnets, multicast as a NetNamespace annotation, egress firewalls.
    rt!("network.openshift.io", "v1", "NetNamespace", "netnamespaces", "netnamespace", false, ["netns"], []),
    rt!("network.openshift.io", "v1", "HostSubnet", "hostsubnets", "hostsubnet", false, [], []),
    rt!("network.openshift.io", "v1", "EgressNetworkPolicy", "egressnetworkpolicies", "egressnetworkpolicy", true, [], []),
    // OVN-Kubernetes' counterparts (ovn-org/ovn-kubernetes `go-controller/pkg/crd/egressfirewall/v1`
    // and `egressip/v1`): the EgressFirewall is namespaced and must be named `default`, the
    // EgressIP is cluster-scoped and selects namespaces.
    rt!("k8s.ovn.org", "v1", "EgressFirewall", "egressfirewalls", "egressfirewall", true, [], ["status"]),
    rt!("k8s.ovn.org", "v1", "EgressIP", "egressips", "egressip", false, ["eip"], ["status"]),
    // Admission webhooks (kubernetes `admissionregistration/v1`): stored and listed so that an
    // admin's configuration can be read; the simulated API server never calls a webhook.
    rt!(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        "validatingwebhookconfiguration",
        false,
        [],
        []
    ),
    rt!(
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        "mutatingwebhookconfiguration",
        false,
        [],
        []
    ),
    // kubernetes-nmstate's kinds (nmstate/kubernetes-nmstate `api/v1` and `api/v1beta1`): the
    // policies an admin writes and each node's reported state; no nmstate handler runs here.
    rt!(
        "nmstate.io",
        "v1",
        "NodeNetworkConfigurationPolicy",
        "nodenetworkconfigurationpolicies",
        "nodenetworkconfigurationpolicy",
        false,
        ["nncp"],
        ["status"]
    ),
    rt!("nmstate.io", "v1beta1", "NodeNetworkState", "nodenetworkstates", "nodenetworkstate", false, ["nns"], ["status"]),
];

pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    TYPES.iter().find(|t| t.group == group && t.version == version && t.plural == plural)
}

pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceType> {
    TYPES.iter().find(|t| t.api_version() == api_version && t.kind == kind)
}

/// Groups in a stable order, each with its one version.
pub fn groups() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for t in TYPES.iter().filter(|t| !t.group.is_empty()) {
        if !out.iter().any(|(g, v)| *g == t.group && *v == t.version) {
            out.push((t.group, t.version));
        }
    }
    out
}

/// Every served version of a group, the preferred (first listed in [`TYPES`]) first: a group may
/// serve kinds in several versions (nmstate.io: policies in v1, node states in v1beta1).
pub fn versions_of(group: &str) -> Vec<&'static str> {
    groups().into_iter().filter(|(g, _)| *g == group).map(|(_, v)| v).collect()
}
