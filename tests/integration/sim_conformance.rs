//! The simulated operators against their sources, release by release, through the API only
//! (kubectl; fleetboot is not involved): the documented order of each release is accepted and
//! carried out, the known wrong orders are refused with the operator's own message. A failure
//! here is the simulation's, whatever the product does.
//!
//! Sources: cluster-network-operator `pkg/network/render.go` (`isMigrationChangeSafe`,
//! `isDefaultNetworkChangeSafe`, `validateDefaultNetwork`) and
//! `pkg/controller/operconfig/operconfig_controller.go` on release-4.7 … release-4.17;
//! openshift-docs `modules/nw-ovn-kubernetes-migration.adoc` (4.8+ two-phase order) and the 4.7
//! seed procedure (`../shared/seed/`).

use std::time::{Duration, Instant};

use crate::common::sim::Sim;

const RELEASES: [&str; 11] =
    ["4.7.60", "4.8.57", "4.9.59", "4.10.67", "4.11.59", "4.12.70", "4.13.54", "4.14.38", "4.15.40", "4.16.21", "4.17.3"];

fn get(sim: &Sim, kind: &str, path: &str) -> String {
    sim.kubectl_ok(&["get", kind, "cluster", "-o", &format!("jsonpath={{{path}}}")]).trim().to_owned()
}

fn merge(sim: &Sim, kind: &str, patch: &str) {
    sim.kubectl_ok(&["patch", kind, "cluster", "--type", "merge", "-p", patch]);
}

fn degraded(sim: &Sim) -> String {
    sim.kubectl_ok(&["get", "co", "network", "-o", r#"jsonpath={.status.conditions[?(@.type=="Degraded")].message}"#])
}

fn eventually(release: &str, what: &str, mut probe: impl FnMut() -> bool) {
    let start = Instant::now();
    while !probe() {
        assert!(start.elapsed() < Duration::from_secs(90), "{release}: never {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn minor(release: &str) -> u32 {
    release.split('.').nth(1).unwrap().parse().unwrap()
}

const CONFIG: &str = "network.config.openshift.io";
const OPERATOR: &str = "network.operator.openshift.io";

/// The documented order of each release with SDN, by hand: 4.7 annotates and changes the type;
/// 4.8–4.16 set `spec.migration`, wait for `status.migration`, let the MCO roll the new
/// `configure-ovs.sh` out (`kubectl wait mcp --all --for=condition=Updated=True`), then change
/// the type. Accepted at every step, the type applied.
#[test]
fn each_release_accepts_its_documented_order() {
    for release in RELEASES.iter().filter(|r| minor(r) <= 16) {
        let sim = Sim::start_with(0, 1, &["--openshift-version", release]);
        if minor(release) <= 7 {
            sim.kubectl_ok(&["annotate", OPERATOR, "cluster", "networkoperator.openshift.io/network-migration="]);
        } else {
            merge(&sim, OPERATOR, r#"{"spec":{"migration":{"networkType":"OVNKubernetes"}}}"#);
            eventually(release, "status.migration", || get(&sim, CONFIG, ".status.migration.networkType") == "OVNKubernetes");
            // The render controller's next pass gives the pools the new configuration; a wait
            // begun before it would read the old rollout's Updated=True.
            eventually(release, "the new rendered config targeted", || {
                let target = sim.kubectl_ok(&["get", "mcp", "worker", "-o", "jsonpath={.spec.configuration.name}"]);
                sim.kubectl_ok(&["get", "mc", &target, "-o", "json"]).contains("configure-ovs.sh OVNKubernetes")
            });
            let (ok, out, err) = sim.kubectl(&["wait", "mcp", "--all", "--for=condition=Updated=True", "--timeout=90s"]);
            assert!(ok, "{release}: {out}{err}");
            let rendered = sim.kubectl_ok(&["get", "mcp", "worker", "-o", "jsonpath={.status.configuration.name}"]);
            let config = sim.kubectl_ok(&["get", "mc", &rendered, "-o", "json"]);
            assert!(config.contains("configure-ovs.sh OVNKubernetes"), "{release}: {rendered} rolled out");
        }
        merge(&sim, CONFIG, r#"{"spec":{"networkType":"OVNKubernetes"}}"#);
        eventually(release, "the type applied", || get(&sim, CONFIG, ".status.networkType") == "OVNKubernetes");
        assert_eq!(degraded(&sim), "", "{release}");
    }
}

/// The wrong orders, refused by each release's operator with its own words, the type unchanged:
/// up to 4.7 a type change without the annotation; from 4.8 a type change before
/// `spec.migration` is applied, and a new migration target once one has started ("is start"
/// before 4.11, "has started" from 4.11: commit 5ff5c4d13); on 4.17 OpenShift SDN itself.
#[test]
fn each_release_refuses_the_known_wrong_orders_in_its_own_words() {
    for release in RELEASES {
        let sim = Sim::start_with(0, 1, &["--openshift-version", release]);
        let minor = minor(release);
        if minor >= 17 {
            merge(&sim, CONFIG, r#"{"spec":{"networkType":"OpenShiftSDN"}}"#);
            eventually(release, "refused", || degraded(&sim).contains(r#"[unsupported network type "OpenShiftSDN"]"#));
            assert_eq!(get(&sim, CONFIG, ".status.networkType"), "OVNKubernetes", "{release}");
            continue;
        }
        merge(&sim, CONFIG, r#"{"spec":{"networkType":"OVNKubernetes"}}"#);
        let expected = if minor <= 7 {
            "[cannot change default network type]"
        } else {
            "[cannot change default network type when not doing migration]"
        };
        eventually(release, "the type change refused", || degraded(&sim).contains(expected));
        assert_eq!(get(&sim, CONFIG, ".status.networkType"), "OpenShiftSDN", "{release}: not applied");
        if minor <= 7 {
            continue;
        }
        // Undone; then a migration started and retargeted.
        merge(&sim, CONFIG, r#"{"spec":{"networkType":"OpenShiftSDN"}}"#);
        merge(&sim, OPERATOR, r#"{"spec":{"migration":{"networkType":"OVNKubernetes"}}}"#);
        eventually(release, "status.migration", || get(&sim, CONFIG, ".status.migration.networkType") == "OVNKubernetes");
        merge(&sim, OPERATOR, r#"{"spec":{"migration":{"networkType":"OpenShiftSDN"}}}"#);
        let words = if minor >= 11 { "after migration has started" } else { "after migration is start" };
        eventually(release, "the retarget refused", || degraded(&sim).contains(&format!("cannot change migration network type {words}")));
        assert_eq!(get(&sim, CONFIG, ".status.migration.networkType"), "OVNKubernetes", "{release}: the applied target stays");
    }
}
