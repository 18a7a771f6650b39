//! The Kubernetes permissions each of fleetboot's modes needs, in one place: `fleetboot rbac`
//! prints them as ClusterRoles, Roles and their bindings, and every command asks the API
//! server (SelfSubjectAccessReviews) for exactly these before it changes anything.
//!
//! Each rule is what the code calls: the adapter or engine module that makes the call is named
//! beside it, so a new call and its rule change together.

use serde_json::{Value, json};

/// A mode of fleetboot: what a command does decides which rules it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    /// `fleetboot reboot` against a cluster (SSH transport), also `fleetboot nodes`.
    Reboot,
    /// `--drain`: cordon, evict, delete what a forced drain deletes.
    Drain,
    /// The migration (`fleetboot migrate`, `verify`, `repair` of its pools).
    Migrate,
    /// BMCs found through BareMetalHosts and their Secrets (`fleetboot power`, the Redfish
    /// transport and fallback).
    Power,
    /// Reboots through the API: exec into the node's machine-config-daemon pod.
    KubeTransport,
    /// The batch gates: blocker pods, ClusterOperators, per-node annotations.
    Batch,
    /// `fleetboot nodes`: reads only.
    Nodes,
    /// `fleetboot verify` (and the migration's own verification): reads only.
    Verify,
    /// `fleetboot repair`: puts back cordons, annotations, leases and paused pools.
    Repair,
    /// The journal in the cluster (`--journal-in-cluster`, and every run in a pod).
    JournalInCluster,
}

impl Mode {
    pub const ALL: [Mode; 10] = [
        Mode::Reboot,
        Mode::Drain,
        Mode::Migrate,
        Mode::Power,
        Mode::KubeTransport,
        Mode::Batch,
        Mode::Nodes,
        Mode::Verify,
        Mode::Repair,
        Mode::JournalInCluster,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Reboot => "reboot",
            Mode::Drain => "drain",
            Mode::Migrate => "migrate",
            Mode::Power => "power",
            Mode::KubeTransport => "kube-transport",
            Mode::Batch => "batch",
            Mode::Nodes => "nodes",
            Mode::Verify => "verify",
            Mode::Repair => "repair",
            Mode::JournalInCluster => "journal-in-cluster",
        }
    }

    /// What needs the mode's rules, as `fleetboot rbac --help` lists it.
    pub fn about(self) -> &'static str {
        match self {
            Mode::Reboot => "`fleetboot reboot` on a cluster (SSH, the BMC as the fallback)",
            Mode::Drain => "`fleetboot reboot --drain`",
            Mode::Migrate => "`fleetboot migrate` (its verification included)",
            Mode::Power => "`fleetboot power` through BareMetalHosts",
            Mode::KubeTransport => "Reboots through the API (exec into the machine-config-daemon pod)",
            Mode::Batch => "The batch gates (blocker pods, health gate, node labels, the in-progress annotation)",
            Mode::Nodes => "`fleetboot nodes` (reads only)",
            Mode::Verify => "`fleetboot verify` (reads only)",
            Mode::Repair => "`fleetboot repair` (uncordons, releases leases, resumes pools)",
            Mode::JournalInCluster => "The journal in the cluster (`--journal-in-cluster`, every run in a pod), added to any mode",
        }
    }

    /// The mode of this name ([`Mode::name`]).
    pub fn named(name: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// Where the namespaced rules apply: the settings that name namespaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespaces {
    /// `--lease-namespace`: fleetboot's own Lease.
    pub lease: String,
    /// `[redfish] bmh_namespaces`: BareMetalHosts and their credentials Secrets.
    pub bmh: Vec<String>,
}

impl Default for Namespaces {
    fn default() -> Namespaces {
        Namespaces { lease: "kube-system".into(), bmh: vec!["openshift-machine-api".into()] }
    }
}

/// One permission: verbs on a resource (`pods/eviction` for a subresource) of an API group,
/// cluster-wide (`namespace: None`, which for a namespaced resource means every namespace) or
/// in one namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub group: &'static str,
    pub resource: &'static str,
    pub verbs: Vec<&'static str>,
    pub namespace: Option<String>,
    /// Why fleetboot needs it (the call that needs it).
    pub why: &'static str,
}

impl Rule {
    /// The resource and subresource as a SelfSubjectAccessReview names them.
    pub fn resource_and_subresource(&self) -> (&'static str, &'static str) {
        self.resource.split_once('/').unwrap_or((self.resource, ""))
    }

    /// `create pods/eviction in every namespace`, as an error or a listing names the rule.
    pub fn describe_verb(&self, verb: &str) -> String {
        let group = if self.group.is_empty() { String::new() } else { format!(" (API group {})", self.group) };
        let scope = match &self.namespace {
            Some(ns) => format!("in namespace {ns}"),
            None => "cluster-wide".to_owned(),
        };
        format!("{verb} {}{group} {scope}", self.resource)
    }
}

const MCO: &str = "machineconfiguration.openshift.io";
const CONFIG: &str = "config.openshift.io";
const COORDINATION: &str = "coordination.k8s.io";

fn cluster(group: &'static str, resource: &'static str, verbs: &'static [&'static str], why: &'static str) -> Rule {
    Rule { group, resource, verbs: verbs.to_vec(), namespace: None, why }
}

fn within(ns: &str, group: &'static str, resource: &'static str, verbs: &'static [&'static str], why: &'static str) -> Rule {
    Rule { group, resource, verbs: verbs.to_vec(), namespace: Some(ns.to_owned()), why }
}

/// The rules of one mode (only its own: a drain also needs [`Mode::Reboot`]'s, see [`needed`]).
pub fn rules(mode: Mode, ns: &Namespaces) -> Vec<Rule> {
    match mode {
        Mode::Reboot => vec![
            cluster("", "nodes", &["get", "list", "watch"], "discover nodes, watch Ready and boot IDs (adapters/kube discover, watch)"),
            cluster(MCO, "machineconfigpools", &["list"], "pools and maxUnavailable (adapters/kube discover, world)"),
            cluster(CONFIG, "clusteroperators", &["get"], "etcd's health before a control-plane node (adapters/kube world)"),
            cluster(CONFIG, "clusterversions", &["get"], "the cluster's identity in the journal (adapters/kube)"),
            within(&ns.lease, COORDINATION, "leases", &["get", "create", "update", "delete"], "one run per cluster (adapters/kube lease)"),
            within(
                crate::limits::MEDIK8S_LEASE_NAMESPACE,
                COORDINATION,
                "leases",
                &["list"],
                "nodes held by remediation operators (adapters/kube world)",
            ),
        ],
        Mode::Drain => vec![
            cluster("", "nodes", &["patch"], "cordon and uncordon (adapters/kube drain)"),
            cluster("", "pods", &["list"], "the pods on a node (adapters/kube drain)"),
            cluster("", "pods/eviction", &["create"], "evict under PodDisruptionBudgets (adapters/kube drain)"),
            cluster("", "pods", &["delete"], "--drain-failure force (adapters/kube drain)"),
        ],
        Mode::Power => {
            let mut rules = vec![
                cluster("", "nodes", &["list"], "the nodes the BareMetalHosts are matched to (adapters/kube discover)"),
                cluster(MCO, "machineconfigpools", &["list"], "each node's pool (adapters/kube discover)"),
                cluster(CONFIG, "clusterversions", &["get"], "the cluster's identity, read when connecting (adapters/kube)"),
            ];
            for namespace in &ns.bmh {
                rules.push(within(namespace, "metal3.io", "baremetalhosts", &["list"], "each node's BMC (adapters/bmc)"));
                rules.push(within(namespace, "", "secrets", &["get"], "the BMC credentials a BareMetalHost names (adapters/bmc)"));
            }
            rules
        }
        Mode::Migrate => vec![
            cluster(CONFIG, "networks", &["get", "patch"], "Network.config cluster: networkType, migration (engine/migrate)"),
            cluster("operator.openshift.io", "networks", &["get", "patch"], "the network operator's spec.migration (engine/migrate)"),
            cluster(CONFIG, "clusteroperators", &["get", "list"], "the operators' conditions (engine/migrate)"),
            cluster(CONFIG, "infrastructures", &["get"], "the platform, for the live migration (engine/migrate live)"),
            cluster(MCO, "machineconfigpools", &["get", "list", "watch", "patch"], "pause, resume, wait for the pools (engine/migrate)"),
            cluster(MCO, "machineconfigs", &["get"], "the rendered configs' network settings (engine/migrate waits)"),
            cluster("", "pods", &["list"], "the network plugin's pods (engine/migrate)"),
            cluster("apps", "daemonsets", &["get"], "the multus and plugin DaemonSets (engine/migrate)"),
            cluster("", "namespaces", &["list", "delete"], "step 11: the old plugin's namespace (engine/migrate steps)"),
            cluster(
                "admissionregistration.k8s.io",
                "validatingwebhookconfigurations",
                &["list"],
                "preflight: webhooks the switch may break (engine/migrate snapshot)",
            ),
            cluster(
                "admissionregistration.k8s.io",
                "mutatingwebhookconfigurations",
                &["list"],
                "preflight: webhooks the switch may break (engine/migrate snapshot)",
            ),
            cluster(
                "nmstate.io",
                "nodenetworkconfigurationpolicies",
                &["list"],
                "preflight: NMState policies on br-ex (engine/migrate snapshot)",
            ),
            cluster("nmstate.io", "nodenetworkstates", &["list"], "preflight: NMState's view of br-ex (engine/migrate snapshot)"),
        ],
        Mode::KubeTransport => vec![
            within("openshift-machine-config-operator", "", "pods", &["list"], "each node's machine-config-daemon pod"),
            // Kubernetes 1.31+ checks `create` for exec over WebSockets too
            // (AuthorizePodWebsocketUpgradeCreatePermission), as for SPDY.
            within("openshift-machine-config-operator", "", "pods/exec", &["create"], "the reboot command through the daemon pod"),
            // Where no daemon pod serves exec: an `oc debug`-style pod (adapters/kube debug_pod).
            cluster("", "namespaces", &["create"], "the debug pods' namespace fleetboot-debug (adapters/kube debug_pod)"),
            within(
                "fleetboot-debug",
                "",
                "pods",
                &["create", "delete", "get", "list", "watch"],
                "the debug pod where no daemon pod runs: created, watched until Running, deleted (adapters/kube debug_pod)",
            ),
            within("fleetboot-debug", "", "pods/exec", &["create"], "commands through the debug pod"),
            within(
                "openshift",
                "image.openshift.io",
                "imagestreams",
                &["get"],
                "the debug pod's image, as `oc debug node` picks it: the tools image stream (adapters/kube debug_pod)",
            ),
        ],
        Mode::JournalInCluster => vec![
            within(
                &ns.lease,
                "",
                "configmaps",
                &["get", "list", "create", "update"],
                "the journal in the cluster: its chunks, every write conditional (adapters/kube journal_store); list: a migration found without its ID (adapters/migration_journal)",
            ),
            within(
                &ns.lease,
                COORDINATION,
                "leases",
                &["get", "create", "update", "delete"],
                "the journal's writer renews its run's lease, fleetboot-run-RUN-ID (adapters/kube lease)",
            ),
        ],
        Mode::Batch => vec![
            cluster("", "pods", &["list"], "--block-on-pods: blocker pods (adapters/kube gates)"),
            cluster(MCO, "machineconfigpools", &["list"], "the health gate: Degraded pools (adapters/kube gates)"),
            cluster(CONFIG, "clusteroperators", &["list"], "the health gate: ClusterOperators (adapters/kube gates)"),
            cluster("policy", "poddisruptionbudgets", &["list"], "budgets that allow no disruption (adapters/kube gates)"),
            cluster("", "nodes", &["patch"], "--pre/--post-reboot-label, --in-progress-annotation (adapters/kube watch mark)"),
        ],
        Mode::Nodes => vec![
            cluster("", "nodes", &["list"], "the nodes (adapters/kube discover)"),
            cluster(MCO, "machineconfigpools", &["list"], "each node's pool (adapters/kube discover)"),
            cluster(CONFIG, "clusterversions", &["get"], "the cluster's identity (adapters/kube)"),
        ],
        Mode::Verify => vec![
            cluster("", "nodes", &["list"], "nodes Ready, their rendered configs (engine/migrate verify_inputs)"),
            cluster(MCO, "machineconfigs", &["get"], "the rendered configs' network settings (engine/migrate verify_inputs)"),
            cluster("", "pods", &["list"], "pods in error, the plugin's pods (engine/migrate verify_inputs)"),
            within(
                "openshift-machine-config-operator",
                "",
                "pods/log",
                &["get"],
                "a NotReady node's machine-config-daemon log (engine/migrate verify_inputs)",
            ),
            cluster(CONFIG, "networks", &["get"], "Network.config status.networkType (engine/migrate verify_inputs)"),
            cluster("operator.openshift.io", "networks", &["get"], "the migration's features (engine/migrate feature_objects)"),
            cluster("apps", "daemonsets", &["get"], "the plugin's DaemonSet (engine/migrate verify_inputs)"),
            cluster(CONFIG, "clusteroperators", &["list"], "the operators' conditions (engine/migrate verify_inputs)"),
            cluster(CONFIG, "clusterversions", &["get"], "the release, the cluster's identity (engine/migrate feature_objects)"),
            cluster("", "namespaces", &["list"], "namespaces' multicast and egress settings (engine/migrate feature_objects)"),
            cluster(
                "network.openshift.io",
                "netnamespaces",
                &["list"],
                "OpenShift SDN's per-namespace settings (engine/migrate feature_objects)",
            ),
            cluster("network.openshift.io", "hostsubnets", &["list"], "OpenShift SDN's egress IPs (engine/migrate feature_objects)"),
            cluster(
                "network.openshift.io",
                "egressnetworkpolicies",
                &["list"],
                "OpenShift SDN's egress firewalls (engine/migrate feature_objects)",
            ),
            cluster("k8s.ovn.org", "egressfirewalls", &["list"], "OVN-Kubernetes' egress firewalls (engine/migrate feature_objects)"),
            cluster("k8s.ovn.org", "egressips", &["list"], "OVN-Kubernetes' egress IPs (engine/migrate feature_objects)"),
        ],
        Mode::Repair => vec![
            cluster("", "nodes", &["get", "list", "patch", "update"], "uncordon, remove the in-progress annotation (engine/repair)"),
            cluster(CONFIG, "clusterversions", &["get"], "the cluster's identity, checked against the journal's (adapters/kube)"),
            within(&ns.lease, COORDINATION, "leases", &["get", "delete"], "release a gone run's lease (engine/repair)"),
            cluster(MCO, "machineconfigpools", &["patch"], "resume the pools a migration paused (engine/repair)"),
        ],
    }
}

/// What `fleetboot repair` of this journal needs: the pools only for a migration's journal
/// (a reboot run pauses none); the leases in `lease_namespace` (`repair --lease-namespace`),
/// a migration's in kube-system, where it takes them.
pub fn repair_rules(migration: bool, lease_namespace: &str) -> Vec<Rule> {
    let lease = if migration { MIGRATION_LEASE_NAMESPACE } else { lease_namespace };
    let mut rules = rules(Mode::Repair, &Namespaces { lease: lease.to_owned(), ..Namespaces::default() });
    if !migration {
        rules.retain(|r| r.resource != "machineconfigpools");
    }
    rules
}

/// Where a migration takes its lease and its reboot runs theirs (`engine/migrate`).
pub const MIGRATION_LEASE_NAMESPACE: &str = "kube-system";

/// The modes a run of `mode` needs, as `fleetboot rbac MODE` prints them: a reboot's default
/// transport (auto) falls back to the BMCs, so a reboot needs [`Mode::Power`]'s rules too
/// (`--transport ssh` needs fewer: [`run_modes`]).
pub fn with_base(mode: Mode) -> Vec<Mode> {
    match mode {
        Mode::Power | Mode::Nodes | Mode::Verify | Mode::Repair => vec![mode],
        // The migration verifies at its end (steps 9-10).
        Mode::Migrate => vec![Mode::Reboot, Mode::Power, Mode::Verify, Mode::Migrate],
        Mode::Reboot => vec![Mode::Reboot, Mode::Power],
        Mode::KubeTransport => vec![Mode::Reboot, Mode::KubeTransport],
        Mode::JournalInCluster => vec![Mode::JournalInCluster],
        other => vec![Mode::Reboot, Mode::Power, other],
    }
}

/// The modes of one `fleetboot reboot` run and the `fleetboot rbac` mode that prints all of
/// them: the BMCs' (listed at the start) unless the transport is SSH or the API only; the API
/// transport's with `--transport kube` (under `auto` the API is a fallback that a 403 skips, so
/// it is not required); the drain's with `--drain`; the batch gates' when the run uses any
/// ([`crate::batch::BatchSettings::reads_cluster`]).
pub fn run_modes(bmc: bool, kube: bool, drain: bool, batch: bool) -> (Vec<Mode>, Mode) {
    let mut modes = vec![Mode::Reboot];
    if bmc {
        modes.push(Mode::Power);
    }
    if kube {
        modes.push(Mode::KubeTransport);
    }
    if drain {
        modes.push(Mode::Drain);
    }
    if batch {
        modes.push(Mode::Batch);
    }
    let named = if drain {
        Mode::Drain
    } else if kube {
        Mode::KubeTransport
    } else if batch {
        Mode::Batch
    } else {
        Mode::Reboot
    };
    (modes, named)
}

/// Every rule of these modes, merged: one rule per group, resource and namespace, its verbs the
/// union, in a stable order.
pub fn needed(modes: &[Mode], ns: &Namespaces) -> Vec<Rule> {
    let mut merged: Vec<Rule> = Vec::new();
    for mode in modes {
        for rule in rules(*mode, ns) {
            match merged.iter_mut().find(|r| r.group == rule.group && r.resource == rule.resource && r.namespace == rule.namespace) {
                Some(known) => {
                    for verb in rule.verbs {
                        if !known.verbs.contains(&verb) {
                            known.verbs.push(verb);
                        }
                    }
                }
                None => merged.push(rule),
            }
        }
    }
    merged
}

/// Who the bindings bind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    User(String),
    ServiceAccount { namespace: String, name: String },
}

impl Subject {
    fn json(&self) -> Value {
        match self {
            Subject::User(name) => json!({"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name}),
            Subject::ServiceAccount { namespace, name } => json!({"kind": "ServiceAccount", "namespace": namespace, "name": name}),
        }
    }
}

/// The rules by where they apply: the cluster-wide ones first (`None`), then each namespace in
/// name order, each group in the table's order. The ClusterRole / Role split of [`objects`] and
/// `fleetboot rbac`'s table both come from it.
pub fn by_namespace(rules: &[Rule]) -> Vec<(Option<&str>, Vec<&Rule>)> {
    let mut groups: Vec<(Option<&str>, Vec<&Rule>)> = Vec::new();
    let mut scopes: Vec<Option<&str>> = rules.iter().map(|r| r.namespace.as_deref()).collect();
    scopes.sort();
    scopes.dedup();
    for scope in scopes {
        groups.push((scope, rules.iter().filter(|r| r.namespace.as_deref() == scope).collect()));
    }
    groups
}

fn policy_rules<'a>(rules: impl Iterator<Item = &'a Rule>) -> Vec<Value> {
    rules.map(|r| json!({"apiGroups": [r.group], "resources": [r.resource], "verbs": r.verbs})).collect()
}

/// The RBAC objects granting `rules` to `subject`: one ClusterRole and ClusterRoleBinding for
/// the cluster-wide rules, one Role and RoleBinding per namespace for the others, all named
/// `name` (e.g. `fleetboot-reboot`).
pub fn objects(name: &str, rules: &[Rule], subject: &Subject) -> Vec<Value> {
    const RBAC: &str = "rbac.authorization.k8s.io/v1";
    let labels = json!({"app.kubernetes.io/managed-by": "fleetboot"});
    let mut objects = Vec::new();
    for (scope, rules) in by_namespace(rules) {
        let role_rules = policy_rules(rules.into_iter());
        let (role, binding, metadata) = match scope {
            None => ("ClusterRole", "ClusterRoleBinding", json!({"name": name, "labels": labels})),
            Some(namespace) => ("Role", "RoleBinding", json!({"name": name, "namespace": namespace, "labels": labels})),
        };
        objects.push(json!({"apiVersion": RBAC, "kind": role, "metadata": metadata, "rules": role_rules}));
        objects.push(json!({
            "apiVersion": RBAC, "kind": binding, "metadata": metadata,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role, "name": name},
            "subjects": [subject.json()],
        }));
    }
    objects
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_repair_reads_the_leases_where_the_run_took_them() {
        let leases_in = |rules: Vec<Rule>| -> Vec<Option<String>> {
            rules.into_iter().filter(|r| r.resource == "leases").map(|r| r.namespace).collect()
        };
        // A reboot run's, in its --lease-namespace; no pools (it paused none).
        let reboot = repair_rules(false, "ops");
        assert!(reboot.iter().all(|r| r.resource != "machineconfigpools"));
        assert_eq!(leases_in(reboot), [Some("ops".to_owned())]);
        // A migration's, in kube-system whatever was given; its pools resumed.
        let migration = repair_rules(true, "ops");
        assert!(migration.iter().any(|r| r.resource == "machineconfigpools"));
        assert_eq!(leases_in(migration), [Some(MIGRATION_LEASE_NAMESPACE.to_owned())]);
    }

    use super::*;

    #[test]
    fn a_drain_needs_the_reboots_rules_and_its_own_merged() {
        let ns = Namespaces::default();
        let rules = needed(&with_base(Mode::Drain), &ns);
        let nodes = rules.iter().find(|r| r.resource == "nodes").unwrap();
        assert_eq!(nodes.verbs, ["get", "list", "watch", "patch"]);
        let pods = rules.iter().filter(|r| r.resource == "pods").count();
        assert_eq!(pods, 1, "list and delete merged into one rule");
        let objects = objects("fleetboot-drain", &rules, &Subject::User("fleetboot".into()));
        let kinds: Vec<&str> = objects.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Role", "RoleBinding", "Role", "RoleBinding"]);
        let namespaces: Vec<&str> = objects.iter().step_by(2).skip(1).map(|o| o["metadata"]["namespace"].as_str().unwrap()).collect();
        assert_eq!(namespaces, ["kube-system", "medik8s-leases", "openshift-machine-api"]);
        let scopes: Vec<Option<&str>> = by_namespace(&rules).iter().map(|g| g.0).collect();
        assert_eq!(scopes, [None, Some("kube-system"), Some("medik8s-leases"), Some("openshift-machine-api")], "one grouping for both");
        assert_eq!(by_namespace(&rules).iter().map(|g| g.1.len()).sum::<usize>(), rules.len());
        assert!(Mode::ALL.iter().all(|m| Mode::named(m.name()) == Some(*m) && !m.about().is_empty()));
        let secrets = needed(&[Mode::Power], &ns).into_iter().find(|r| r.resource == "secrets").unwrap();
        assert_eq!((secrets.namespace.as_deref(), secrets.verbs.as_slice()), (Some("openshift-machine-api"), &["get"][..]));
        assert_eq!(run_modes(false, false, true, false), (vec![Mode::Reboot, Mode::Drain], Mode::Drain));
        assert_eq!(run_modes(false, true, false, false), (vec![Mode::Reboot, Mode::KubeTransport], Mode::KubeTransport));
        assert_eq!(run_modes(true, false, false, true), (vec![Mode::Reboot, Mode::Power, Mode::Batch], Mode::Batch));
    }
}
