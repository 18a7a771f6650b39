//! The simulated network operator's *limited live migration* (SDN → OVN-Kubernetes and back,
//! 4.15.31+ and 4.16), read in cluster-network-operator release-4.16 (release-4.15 has the same
//! code; the files are cited per rule):
//!
//! - the trigger is the annotation [`ANNOTATION`] on `Network.config/cluster` plus a new
//!   `spec.networkType` (`pkg/controller/clusterconfig/clusterconfig_controller.go`,
//!   `Reconcile`; `pkg/controller/operconfig/cluster.go`, `ClusterNetworkStatus`). While the
//!   annotation is there, the operconfig controller does not merge `Network.config` into the
//!   operator config (`cluster.go`, `MergeClusterConfig` returns early): only the clusterconfig
//!   controller's steps change it;
//! - `ClusterNetworkStatus` validates the migration (`pkg/network/cluster_config.go`,
//!   `ValidateLiveMigration`: the CNO's blockers, reported as the operator's Degraded
//!   `StatusError`, `operconfig_controller.go`) and initialises the conditions
//!   (`pkg/controller/operconfig/migration.go`, `initMigrationConditions`), then keeps them in sync
//!   (`syncNetworkTypeMigrationConditions`) while the operator is not Progressing, and resets
//!   them when the migration is complete (`resetMigrationConditions`);
//! - the clusterconfig controller drives `spec.migration {networkType, mode: Live}` through its
//!   four steps (`pkg/controller/clusterconfig/migration.go`,
//!   `prepareOperatorConfigForNetworkTypeMigration`): deploy the target CNI; the routable MTU
//!   (`spec.migration.mtu`, first round of reboots: the MCO's `mtu-migration.service`); the
//!   switch of `spec.defaultNetwork.type` (second round: `configure-ovs.sh <target>` without
//!   `mtu-migration.service`); the purge of the original CNI (`spec.migration: null`).
//!
//! This module only decides (pure functions over the objects); [`super::cno`] applies it on
//! its tick, and [`super::mco`] renders what `status.migration` asks for.
//!
//! One file, past 500 lines: the live migration's conditions are one rule set, each rule beside its source.

use serde_json::{Value, json};

use super::version::Release;

/// `pkg/names/names.go` (release-4.15, release-4.16), `NetworkTypeMigrationAnnotation`.
pub const ANNOTATION: &str = "network.openshift.io/network-type-migration";
/// The condition types on `Network.config` (`pkg/names/names.go`, release-4.16).
pub const IN_PROGRESS: &str = "NetworkTypeMigrationInProgress";
pub const TARGET_CNI_AVAILABLE: &str = "NetworkTypeMigrationTargetCNIAvailable";
pub const TARGET_CNI_IN_USE: &str = "NetworkTypeMigrationTargetCNIInUse";
pub const ORIGINAL_CNI_PURGED: &str = "NetworkTypeMigrationOriginalCNIPurged";
pub const MTU_READY: &str = "NetworkTypeMigrationMTUReady";
/// `pkg/controller/operconfig/migration.go`, `networkTypeMigrationConditionTypes`.
pub const STEP_CONDITIONS: [&str; 4] = [MTU_READY, TARGET_CNI_AVAILABLE, TARGET_CNI_IN_USE, ORIGINAL_CNI_PURGED];
/// `pkg/names/names.go`: the reasons of TargetCNIInUse and MTUReady while a pool moves.
pub const POOLS_UPDATING: &str = "MachineConfigPoolsUpdating";
pub const POOL_DEGRADED: &str = "MachineConfigPoolDegraded";
/// `vendor/github.com/openshift/api/network/v1/constants.go`, `AssignMacvlanAnnotation`
/// (egress router pods).
pub const ASSIGN_MACVLAN: &str = "pod.network.openshift.io/assign-macvlan";

/// Whether the release's network operator acts on the annotation: the live-migration code and
/// its `NetworkLiveMigration` feature gate (enabled in the Default feature set: release-4.15
/// `vendor/github.com/openshift/api/config/v1/types_feature.go`, `defaultFeatures` lists
/// `sdnLiveMigration`; release-4.16 `vendor/github.com/openshift/api/features/features.go`,
/// `enableIn(configv1.Default, ...)`) ship in 4.16 and, as a supported z-stream, from 4.15.31
/// (Red Hat solution 7057169, "Limited Live Migration from OpenShift SDN to OVN-Kubernetes":
/// environment "4.16, 4.15.31+"). release-4.14 has no such code (no `clusterconfig/migration.go`,
/// no annotation in `pkg/names/names.go`): the annotation is ignored and a type change is the
/// offline one, refused without `spec.migration`. 4.17 has no OpenShift SDN.
pub fn supported(release: Release) -> bool {
    release.minor == 16 || (release.minor == 15 && release.patch >= 31)
}

/// The annotation is on `Network.config/cluster` and the release acts on it.
pub fn active(release: Release, config: &Value) -> bool {
    supported(release) && config.pointer("/metadata/annotations").and_then(|a| a.get(ANNOTATION)).is_some()
}

fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

fn find<'a>(conditions: &'a [Value], kind: &str) -> Option<&'a Value> {
    conditions.iter().find(|c| c["type"] == kind)
}

/// `meta.IsStatusConditionPresentAndEqual`.
pub fn is(conditions: &[Value], kind: &str, status: &str) -> bool {
    find(conditions, kind).is_some_and(|c| c["status"] == status)
}

pub fn conditions_of(config: &Value) -> Vec<Value> {
    config.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default()
}

/// `meta.SetStatusCondition`: the transition time changes only with the status.
pub fn set(conditions: &mut Vec<Value>, kind: &str, status: &str, reason: &str, message: &str, now: &str) {
    match conditions.iter_mut().find(|c| c["type"] == kind) {
        Some(c) => {
            if c["status"] != status {
                c["lastTransitionTime"] = json!(now);
            }
            c["status"] = json!(status);
            c["reason"] = json!(reason);
            c["message"] = json!(message);
        }
        None => conditions.push(json!({"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": now})),
    }
}

/// `initMigrationConditions` (`pkg/controller/operconfig/migration.go`).
pub fn init(conditions: &mut Vec<Value>, now: &str) {
    for kind in STEP_CONDITIONS {
        set(conditions, kind, "False", "NetworkTypeMigrationInitialized", "network operator initialize network type migration status", now);
    }
    set(conditions, IN_PROGRESS, "True", "NetworkTypeMigrationStarted", "Network type migration is started", now);
}

/// `resetMigrationConditions` (`pkg/controller/operconfig/migration.go`).
pub fn reset(conditions: &mut Vec<Value>, now: &str) {
    for kind in STEP_CONDITIONS {
        set(conditions, kind, "Unknown", "NetworkTypeMigrationNotInProgress", "Network type migration is not in progress", now);
    }
    set(conditions, IN_PROGRESS, "False", "NetworkTypeMigrationCompleted", "Network type migration is completed", now);
}

fn ipv4(cidr: &str) -> Option<(u32, u32)> {
    let (address, prefix) = cidr.split_once('/')?;
    let address: std::net::Ipv4Addr = address.parse().ok()?;
    let prefix: u32 = prefix.parse().ok().filter(|p| *p <= 32)?;
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
    Some((u32::from(address) & mask, mask))
}

/// `ValidateLiveMigration` (release-4.16 `pkg/network/cluster_config.go`): why the CNO does
/// not start the live migration, as its error says it. `hosted`: a HyperShift control plane;
/// `macvlan_pods`: pods carrying [`ASSIGN_MACVLAN`]. Pure.
pub fn blocker(config: &Value, operator: &Value, hosted: bool, macvlan_pods: usize) -> Option<String> {
    let conditions = conditions_of(config);
    let (spec, status) = (text(config, "/spec/networkType"), text(config, "/status/networkType"));
    if spec == status || is(&conditions, IN_PROGRESS, "True") {
        return None;
    }
    if spec != "OpenShiftSDN" && spec != "OVNKubernetes" {
        return Some("network type live migration is only supported for OVNKubernetes and OpenShiftSDN CNI".into());
    }
    if hosted {
        return Some("network type live migration is not supported on HyperShift clusters".into());
    }
    if status == "OpenShiftSDN" {
        if text(operator, "/spec/defaultNetwork/openshiftSDNConfig/mode") == "Multitenant" {
            return Some("network type live migration is not supported on SDN Multitenant clusters".into());
        }
        // `validateOVNKubernetesCIDROverlap`: every pair among the cluster and service networks
        // and OVN-Kubernetes' internal subnets (defaults of `GetInternalSubnets`,
        // `GetTransitSwitchSubnets`, `GetMasqueradeSubnet`: 100.64.0.0/16, 100.88.0.0/16,
        // 169.254.169.0/29). The simulated clusters are IPv4: the v6 ranges are left out.
        let ovn = |pointer: &str, default: &str| {
            let set = text(operator, pointer);
            if set.is_empty() { default.to_owned() } else { set.to_owned() }
        };
        let mut subnets: Vec<(String, String)> = Vec::new();
        for c in config.pointer("/spec/clusterNetwork").and_then(Value::as_array).into_iter().flatten() {
            subnets.push(("clusterNetwork".into(), text(c, "/cidr").to_owned()));
        }
        for s in config.pointer("/spec/serviceNetwork").and_then(Value::as_array).into_iter().flatten() {
            subnets.push(("serviceNetwork".into(), s.as_str().unwrap_or_default().to_owned()));
        }
        subnets.push(("v4InternalSubnet".into(), ovn("/spec/defaultNetwork/ovnKubernetesConfig/v4InternalSubnet", "100.64.0.0/16")));
        subnets.push((
            "v4InternalTransitSwitchSubnet".into(),
            ovn("/spec/defaultNetwork/ovnKubernetesConfig/ipv4/internalTransitSwitchSubnet", "100.88.0.0/16"),
        ));
        subnets.push((
            "v4InternalMasqueradeSubnet".into(),
            ovn("/spec/defaultNetwork/ovnKubernetesConfig/gatewayConfig/ipv4/internalMasqueradeSubnet", "169.254.169.0/29"),
        ));
        for (i, (name_a, a)) in subnets.iter().enumerate() {
            for (j, (name_b, b)) in subnets.iter().enumerate() {
                let (Some((net_a, mask_a)), Some((net_b, mask_b))) = (ipv4(a), ipv4(b)) else { continue };
                if i != j && (net_b & mask_a == net_a || net_a & mask_b == net_b) {
                    return Some(format!("network {name_a}({a}) overlaps with network {name_b}({b})"));
                }
            }
        }
        if macvlan_pods > 0 {
            return Some(format!(
                "network type live migration is not supported for pods with {ASSIGN_MACVLAN:?} annotation. Please remove all egress router pods"
            ));
        }
    }
    None
}

/// What a rendered MachineConfig runs, as `ovsConfigurationUnitMatch` and
/// `routebleMtuUnitMatch` read it (`pkg/controller/operconfig/migration.go`): the argument of
/// `configure-ovs.sh` in an enabled `ovs-configuration.service`, and whether
/// `mtu-migration.service` is there (enabled).
pub fn units(machine_config: &Value) -> (String, bool) {
    let mut ovs = String::new();
    let mut mtu = false;
    for unit in machine_config.pointer("/spec/config/systemd/units").and_then(Value::as_array).into_iter().flatten() {
        let enabled = unit["enabled"] == true;
        match unit["name"].as_str() {
            Some("ovs-configuration.service") if enabled => {
                ovs = text(unit, "/contents")
                    .lines()
                    .find_map(|l| l.strip_prefix("ExecStart=/usr/local/bin/configure-ovs.sh "))
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
            }
            Some("mtu-migration.service") => mtu = mtu || enabled,
            _ => {}
        }
    }
    (ovs, mtu)
}

/// One pool as `ensureMachineConfigPools` reads it: degraded, updating, and the units of the
/// config in `status.configuration` (None: no such MachineConfig).
pub struct Pool {
    pub name: String,
    pub degraded: bool,
    pub updating: bool,
    pub config: Option<(String, bool)>,
}

/// `ensureMachineConfigPools` for one condition: (isDesired, isStable, (status, reason,
/// message)). `target_cni`: TargetCNIInUse (configure-ovs.sh <type> and no MTU unit), else
/// MTUReady (the MTU unit). Pure.
pub fn pools_condition(pools: &[Pool], network_type: &str, target_cni: bool) -> (bool, bool, (&'static str, &'static str, String)) {
    if let Some(p) = pools.iter().find(|p| p.degraded) {
        return (false, false, ("False", POOL_DEGRADED, format!("MachineConfig Pool {} is degraded", p.name)));
    }
    if let Some(p) = pools.iter().find(|p| p.updating) {
        return (false, false, ("False", POOLS_UPDATING, format!("MachineConfigPools {} is updating", p.name)));
    }
    let applied = |p: &Pool| match &p.config {
        Some((ovs, mtu)) if target_cni => ovs == network_type && !mtu,
        Some((_, mtu)) => *mtu,
        None => false,
    };
    if !pools.iter().all(applied) {
        return (false, true, ("False", "MachineConfigNotApplied", "The desired MachineConfig is not applied to cluster".into()));
    }
    (true, true, ("True", "MachineConfigApplied", "The desired MachineConfig is applied to cluster".into()))
}

/// A DaemonSet as `isMigrationCNIReady` reads it: (namespace, name, every count equal).
pub fn daemonset_ready(ds: &Value) -> bool {
    let n = |k: &str| ds.pointer(&format!("/status/{k}")).and_then(Value::as_u64).unwrap_or(0);
    let current = n("currentNumberScheduled");
    current == n("desiredNumberScheduled")
        && current == n("numberAvailable")
        && current == n("numberReady")
        && current == n("updatedNumberScheduled")
}

/// The CNI namespaces (`pkg/util`, `OVN_NAMESPACE`, `SDN_NAMESPACE`).
pub fn namespace_of(network_type: &str) -> &'static str {
    if network_type == "OVNKubernetes" { "openshift-ovn-kubernetes" } else { "openshift-sdn" }
}

/// `syncNetworkTypeMigrationConditions` (`pkg/controller/operconfig/migration.go`), once the
/// operator is not Progressing: the conditions after one sync. `daemonsets`: (namespace, ready)
/// of every DaemonSet in the CNI namespaces. Pure.
pub fn sync(config: &Value, operator: &Value, pools: &[Pool], daemonsets: &[(String, bool)], now: &str) -> Vec<Value> {
    let mut conditions = conditions_of(config);
    let network_type = text(config, "/spec/networkType");
    let (in_use, _, (status, reason, message)) = pools_condition(pools, network_type, true);
    set(&mut conditions, TARGET_CNI_IN_USE, status, reason, &message, now);
    let (_, stable, (status, reason, message)) = pools_condition(pools, network_type, false);
    set(&mut conditions, MTU_READY, status, reason, &message, now);
    if stable {
        // `isMigrationCNIReady`: both CNIs' namespaces while spec.migration is set, else the
        // target's only; each must have a DaemonSet and every one must be ready.
        let migrating = !text(operator, "/spec/migration/networkType").is_empty();
        let namespaces: Vec<&str> =
            if migrating { vec!["openshift-ovn-kubernetes", "openshift-sdn"] } else { vec![namespace_of(network_type)] };
        let mut ready = true;
        let mut why = (String::new(), String::new());
        for ns in namespaces {
            let in_ns: Vec<&(String, bool)> = daemonsets.iter().filter(|(n, _)| n == ns).collect();
            if in_ns.is_empty() {
                ready = false;
                why = ("TargetCNINotDeployed".into(), format!("No daemonSet running in the namespace {ns}"));
                break;
            }
            if in_ns.iter().any(|(_, r)| !r) {
                ready = false;
                why = ("TargetCNINotReady".into(), format!("DaemonSet in {ns} is not ready"));
                break;
            }
        }
        if ready {
            set(&mut conditions, TARGET_CNI_AVAILABLE, "True", "TargetCNIDeployed", &format!("{network_type} is deployed"), now);
        } else {
            set(&mut conditions, TARGET_CNI_AVAILABLE, "False", &why.0, &why.1, now);
        }
        // `isOriginalCNIPurged`: no DaemonSet left in the other CNI's namespace.
        let original = if network_type == "OVNKubernetes" { "openshift-sdn" } else { "openshift-ovn-kubernetes" };
        let purged = !daemonsets.iter().any(|(n, _)| n == original);
        if purged {
            set(
                &mut conditions,
                ORIGINAL_CNI_PURGED,
                "True",
                "OriginalCNIPurged",
                &format!("No daemonSet running in the namespace {original}"),
                now,
            );
        } else {
            set(
                &mut conditions,
                ORIGINAL_CNI_PURGED,
                "False",
                "OriginalCNINotPurged",
                "The original CNI plugin is running in the cluster",
                now,
            );
        }
        if purged && in_use && ready {
            reset(&mut conditions, now);
        }
    }
    conditions
}

/// `calculateRoutableMTU` (`pkg/controller/clusterconfig/migration.go`): the routable MTU
/// both CNIs share while they run side by side: the cluster MTU minus 50 leaving SDN (the
/// difference of the two overlays), unchanged leaving OVN-Kubernetes; the machine MTU unchanged
/// (`util.ReadMTUConfigMap`: the simulated hosts' MTU is the SDN cluster MTU + 50).
pub fn routable_mtu(config: &Value) -> Value {
    let current = config.pointer("/status/clusterNetworkMTU").and_then(Value::as_u64).unwrap_or(1450);
    let from_sdn = text(config, "/status/networkType") == "OpenShiftSDN";
    let routable = if from_sdn { current - 50 } else { current };
    let machine = if from_sdn { current + 50 } else { current + 100 };
    json!({"network": {"from": current, "to": routable}, "machine": {"to": machine}})
}

/// `prepareOperatorConfigForNetworkTypeMigration`: the merge patch of the operator config's
/// spec for the next step, if any; Err when a pool is degraded. Called while InProgress is
/// True and the operator is not Progressing. Pure.
pub fn next_step(config: &Value, operator: &Value) -> Result<Option<Value>, String> {
    let conditions = conditions_of(config);
    let Some(mtu_condition) = find(&conditions, MTU_READY) else {
        return Err(format!("condition {MTU_READY:?} not found"));
    };
    match mtu_condition["reason"].as_str() {
        Some(POOL_DEGRADED) => return Err("MCP is degraded, network type migration cannot proceed".into()),
        Some(POOLS_UPDATING) => return Ok(None),
        _ => {}
    }
    let target = text(config, "/spec/networkType");
    let mtu_applied = is(&conditions, MTU_READY, "True");
    let cni_ready = is(&conditions, TARGET_CNI_AVAILABLE, "True");
    let mc_applied = is(&conditions, TARGET_CNI_IN_USE, "True");
    let rollback = target == "OpenShiftSDN";
    let live = json!({"mode": "Live", "networkType": target});
    if mc_applied {
        // step 4: purge the original CNI.
        return Ok(cni_ready.then(|| json!({"defaultNetwork": {"type": target}, "migration": null})));
    }
    if mtu_applied {
        // step 3: the MCO applies the target's MachineConfig (without the MTU unit).
        return Ok(Some(json!({"defaultNetwork": {"type": target}, "migration": {"mode": "Live", "networkType": target, "mtu": null}})));
    }
    let status_migration = text(config, "/status/migration/networkType");
    if !cni_ready && status_migration.is_empty() {
        // step 1: deploy the target CNI.
        return Ok(Some(json!({"migration": live})));
    }
    if cni_ready && text(operator, "/spec/defaultNetwork/type") != target {
        // step 2: the routable MTU (on a rollback, with the type).
        let mut spec = json!({"migration": {"mode": "Live", "networkType": target, "mtu": routable_mtu(config)}});
        if rollback {
            spec["defaultNetwork"] = json!({"type": target});
        }
        return Ok(Some(spec));
    }
    Ok(None)
}

/// `status.migration` as `StatusFromOperatorConfig` writes it (release-4.16
/// `pkg/network/cluster_config.go`): in Live mode the MCO follows the operator's default
/// network type; otherwise the migration's type; `mtu` copied; null without `spec.migration`.
pub fn status_migration(operator: &Value) -> Value {
    let Some(migration) = operator.pointer("/spec/migration").filter(|m| m.is_object()) else {
        return Value::Null;
    };
    let mut status = json!({});
    if text(migration, "/mode") == "Live" {
        status["networkType"] = json!(text(operator, "/spec/defaultNetwork/type"));
    } else if !text(migration, "/networkType").is_empty() {
        status["networkType"] = json!(text(migration, "/networkType"));
    }
    if let Some(mtu) = migration.get("mtu").filter(|m| m.is_object()) {
        status["mtu"] = mtu.clone();
    }
    status
}

/// Whether the MCO renders `mtu-migration.service`: `status.migration.mtu` is set
/// (machine-config-operator `pkg/operator/render.go`, `createDiscoveredControllerConfigSpec`
/// copies it into the ControllerConfig's `network.mtuMigration`;
/// `templates/common/_base/units/mtu-migration.service.yaml` is enabled when it is set).
pub fn mtu_migration(config: &Value) -> bool {
    config.pointer("/status/migration/mtu").is_some_and(Value::is_object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(text: &str) -> Release {
        Release::parse(text).unwrap()
    }

    #[test]
    fn only_4_15_31_and_4_16_act_on_the_annotation() {
        let annotated = json!({"metadata": {"annotations": {ANNOTATION: ""}}});
        assert!(active(r("4.16.21"), &annotated) && active(r("4.15.31"), &annotated));
        assert!(!active(r("4.15.30"), &annotated) && !active(r("4.14.38"), &annotated) && !active(r("4.17.3"), &annotated));
        assert!(!active(r("4.16.21"), &json!({"metadata": {}})));
    }

    fn sdn() -> (Value, Value) {
        let config = json!({"spec": {"networkType": "OVNKubernetes", "clusterNetwork": [{"cidr": "10.128.0.0/14"}], "serviceNetwork": ["172.30.0.0/16"]},
            "status": {"networkType": "OpenShiftSDN", "clusterNetworkMTU": 1450}});
        let operator = json!({"spec": {"defaultNetwork": {"type": "OpenShiftSDN", "openshiftSDNConfig": {"mode": "NetworkPolicy"}}}});
        (config, operator)
    }

    #[test]
    fn the_blockers_are_the_operators() {
        let (mut config, mut operator) = sdn();
        assert_eq!(blocker(&config, &operator, false, 0), None);
        assert_eq!(blocker(&config, &operator, true, 0).unwrap(), "network type live migration is not supported on HyperShift clusters");
        assert!(blocker(&config, &operator, false, 2).unwrap().contains("Please remove all egress router pods"));
        operator["spec"]["defaultNetwork"]["openshiftSDNConfig"]["mode"] = json!("Multitenant");
        assert_eq!(
            blocker(&config, &operator, false, 0).unwrap(),
            "network type live migration is not supported on SDN Multitenant clusters"
        );
        operator["spec"]["defaultNetwork"]["openshiftSDNConfig"]["mode"] = json!("NetworkPolicy");
        config["spec"]["clusterNetwork"][0]["cidr"] = json!("100.64.0.0/14");
        assert_eq!(
            blocker(&config, &operator, false, 0).unwrap(),
            "network clusterNetwork(100.64.0.0/14) overlaps with network v4InternalSubnet(100.64.0.0/16)"
        );
        // Moved join subnet: no overlap. Once in progress, no validation at all.
        operator["spec"]["defaultNetwork"]["ovnKubernetesConfig"] = json!({"v4InternalSubnet": "100.99.0.0/16"});
        assert_eq!(blocker(&config, &operator, false, 0), None);
        config["status"]["conditions"] = json!([{"type": IN_PROGRESS, "status": "True"}]);
        assert_eq!(blocker(&config, &operator, true, 0), None);
    }

    fn pool(config: Option<(&str, bool)>, updating: bool) -> Pool {
        Pool { name: "worker".into(), degraded: false, updating, config: config.map(|(o, m)| (o.to_owned(), m)) }
    }

    fn ds(ns: &str, ready: bool) -> (String, bool) {
        (ns.to_owned(), ready)
    }

    /// The four steps, each driven by the conditions the previous one produced.
    #[test]
    fn the_controller_walks_the_four_steps_and_the_conditions_follow_the_pools() {
        let now = "2026-12-04T04:00:00Z";
        let (mut config, mut operator) = sdn();
        let mut conditions = Vec::new();
        init(&mut conditions, now);
        config["status"]["conditions"] = json!(conditions);
        assert!(is(&conditions, IN_PROGRESS, "True") && is(&conditions, MTU_READY, "False"));
        // Step 1.
        let step = next_step(&config, &operator).unwrap().unwrap();
        assert_eq!(step, json!({"migration": {"mode": "Live", "networkType": "OVNKubernetes"}}));
        crate::patch::merge_patch(&mut operator["spec"], &step);
        assert_eq!(status_migration(&operator), json!({"networkType": "OpenShiftSDN"}), "the MCO keeps rendering SDN");
        config["status"]["migration"] = status_migration(&operator);
        let sdn_pool = [pool(Some(("OpenShiftSDN", false)), false)];
        let both = [ds("openshift-sdn", true), ds("openshift-ovn-kubernetes", true)];
        config["status"]["conditions"] = json!(sync(&config, &operator, &sdn_pool, &both, now));
        assert!(is(&conditions_of(&config), TARGET_CNI_AVAILABLE, "True"));
        // Step 2: the routable MTU; the pools roll it out (round 1).
        let step = next_step(&config, &operator).unwrap().unwrap();
        assert_eq!(step["migration"]["mtu"], json!({"network": {"from": 1450, "to": 1400}, "machine": {"to": 1500}}));
        crate::patch::merge_patch(&mut operator["spec"], &step);
        config["status"]["migration"] = status_migration(&operator);
        assert!(mtu_migration(&config));
        config["status"]["conditions"] = json!(sync(&config, &operator, &[pool(Some(("OpenShiftSDN", false)), true)], &both, now));
        let c = conditions_of(&config);
        assert_eq!(find(&c, MTU_READY).unwrap()["reason"], POOLS_UPDATING);
        assert_eq!(next_step(&config, &operator), Ok(None), "nothing while the pools update");
        config["status"]["conditions"] = json!(sync(&config, &operator, &[pool(Some(("OpenShiftSDN", true)), false)], &both, now));
        assert!(is(&conditions_of(&config), MTU_READY, "True"));
        // Step 3: the switch; the pools roll configure-ovs.sh OVNKubernetes out (round 2).
        let step = next_step(&config, &operator).unwrap().unwrap();
        crate::patch::merge_patch(&mut operator["spec"], &step);
        assert_eq!(operator["spec"]["defaultNetwork"]["type"], "OVNKubernetes");
        assert_eq!(status_migration(&operator), json!({"networkType": "OVNKubernetes"}));
        config["status"]["conditions"] = json!(sync(&config, &operator, &[pool(Some(("OVNKubernetes", false)), false)], &both, now));
        let c = conditions_of(&config);
        assert!(is(&c, TARGET_CNI_IN_USE, "True") && is(&c, MTU_READY, "False") && is(&c, ORIGINAL_CNI_PURGED, "False"));
        // Step 4: the purge; then complete.
        let step = next_step(&config, &operator).unwrap().unwrap();
        assert_eq!(step, json!({"defaultNetwork": {"type": "OVNKubernetes"}, "migration": null}));
        crate::patch::merge_patch(&mut operator["spec"], &step);
        assert_eq!(status_migration(&operator), Value::Null);
        let ovn_only = [ds("openshift-ovn-kubernetes", true)];
        config["status"]["conditions"] = json!(sync(&config, &operator, &[pool(Some(("OVNKubernetes", false)), false)], &ovn_only, now));
        let c = conditions_of(&config);
        assert!(is(&c, IN_PROGRESS, "False") && STEP_CONDITIONS.iter().all(|k| is(&c, k, "Unknown")), "{c:?}");
        assert_eq!(find(&c, IN_PROGRESS).unwrap()["reason"], "NetworkTypeMigrationCompleted");
    }

    #[test]
    fn a_degraded_pool_stops_the_controller() {
        let (mut config, operator) = sdn();
        let degraded = [Pool { name: "worker".into(), degraded: true, updating: false, config: None }];
        config["status"]["conditions"] = json!(sync(&config, &operator, &degraded, &[], "t"));
        assert_eq!(next_step(&config, &operator), Err("MCP is degraded, network type migration cannot proceed".into()));
    }

    #[test]
    fn units_are_read_from_the_rendered_config() {
        let mc = json!({"spec": {"config": {"systemd": {"units": [
            {"name": "ovs-configuration.service", "enabled": true, "contents": "[Service]\nExecStart=/usr/local/bin/configure-ovs.sh OVNKubernetes\n"},
            {"name": "mtu-migration.service", "enabled": true}]}}}});
        assert_eq!(units(&mc), ("OVNKubernetes".into(), true));
        assert!(daemonset_ready(
            &json!({"status": {"currentNumberScheduled": 3, "desiredNumberScheduled": 3, "numberAvailable": 3, "numberReady": 3, "updatedNumberScheduled": 3}})
        ));
        assert!(!daemonset_ready(
            &json!({"status": {"currentNumberScheduled": 3, "desiredNumberScheduled": 3, "numberAvailable": 2, "numberReady": 3, "updatedNumberScheduled": 3}})
        ));
    }
}
