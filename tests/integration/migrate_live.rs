//! The live migration of 4.15.31+/4.16 (CNO release-4.16 `pkg/controller/clusterconfig/`,
//! openshift-docs `modules/nw-ovn-kubernetes-live-migration.adoc`). While one is under way, or
//! its traces remain, every offline flow (forward and rollback, on every release) refuses before
//! anything changes: the network operator would route their patches down the live path. The
//! simulation's live migration is proven by hand with kubectl, as the documents do it
//! (openshift-docs `modules/nw-ovn-kubernetes-live-migration.adoc`), independently of fleetboot.

use std::process::Stdio;

use crate::common::Run;
use crate::common::sim::Sim;

/// `fleetboot migrate --poll-interval 300ms EXTRA --output plain`, run by the engine
/// in this process against the simulation started in the test (common/inproc.rs): stdout and
/// stderr are what its reporter rendered, and the error as the binary prints it.
fn migrate(sim: &Sim, extra: &[&str]) -> Run {
    let mut args = vec!["--poll-interval", "300ms"];
    args.extend(extra);
    sim.migrate_in_process(&args).to_run()
}

/// What a refusal must leave as it was: both network objects (spec, annotations, status) and
/// every pool's spec (unpaused).
fn state(sim: &Sim) -> [String; 3] {
    [
        sim.kubectl_ok(&["get", "network.operator.openshift.io", "cluster", "-o", "jsonpath={.spec}{.metadata.annotations}"]),
        sim.kubectl_ok(&["get", "network.config.openshift.io", "cluster", "-o", "jsonpath={.spec}{.metadata.annotations}{.status}"]),
        sim.kubectl_ok(&["get", "mcp", "-o", "jsonpath={.items[*].spec}"]),
    ]
}

/// `fleetboot migrate <extra>` refuses with exit code 2, naming `expected`, and changes nothing.
fn refused(sim: &Sim, extra: &[&str], expected: &[&str]) {
    let before = state(sim);
    let journals = sim.migration_dirs().len();
    let mut args = vec!["--etcd-backup-confirmed"];
    args.extend(extra);
    let run = migrate(sim, &args);
    assert_eq!(run.code, 2, "{}", run.debug());
    for expected in expected {
        assert!(run.stderr.contains(expected), "{expected}: {}", run.debug());
    }
    assert!(run.stderr.contains("live-migration: a live network-type migration is in progress or was started"), "{}", run.debug());
    assert_eq!(state(sim), before, "a refusal changes nothing");
    assert_eq!(sim.migration_dirs().len(), journals, "no journal for a refused migration");
    for pool in ["master", "worker"] {
        assert_ne!(sim.kubectl_ok(&["get", "mcp", pool, "-o", "jsonpath={.spec.paused}"]), "true", "{pool} stays unpaused");
    }
}

const ANNOTATION: &str = "network.openshift.io/network-type-migration";

#[test]
fn the_live_annotation_refuses_the_offline_two_phase_flow() {
    let sim = Sim::in_process_with(1, 2, &["--openshift-version", "4.14.38"]);
    sim.kubectl_ok(&["annotate", "network.config.openshift.io", "cluster", &format!("{ANNOTATION}=")]);
    refused(&sim, &[], &[&format!("annotation {ANNOTATION}=\"\" on Network.config.openshift.io/cluster")]);
    assert_eq!(sim.kubectl_ok(&["get", "network.config.openshift.io", "cluster", "-o", "jsonpath={.spec.networkType}"]), "OpenShiftSDN");
    // The plan says so too, before anything is asked.
    let plan = migrate(&sim, &["--plan", "--etcd-backup-confirmed"]);
    assert!(plan.stdout.contains("REFUSES") && plan.stdout.contains("live-migration:"), "{}", plan.debug());
    // Without the annotation the same run is not refused for it.
    sim.kubectl_ok(&["annotate", "network.config.openshift.io", "cluster", &format!("{ANNOTATION}-")]);
    let plan = migrate(&sim, &["--plan", "--etcd-backup-confirmed"]);
    assert!(!plan.stdout.contains("live-migration:"), "{}", plan.debug());
}

#[test]
fn a_live_mode_on_the_operator_config_refuses_the_seed_flow() {
    let sim = Sim::in_process_with(1, 2, &["--openshift-version", "4.7.60"]);
    sim.merge("network.operator.openshift.io", "cluster", r#"{"spec":{"migration":{"networkType":"OVNKubernetes","mode":"Live"}}}"#);
    refused(&sim, &[], &["spec.migration.mode Live on Network.operator.openshift.io/cluster"]);
}

#[test]
fn a_live_migration_condition_refuses_the_rollback() {
    let sim = Sim::in_process_with(1, 2, &["--openshift-version", "4.16.21"]);
    sim.kubectl_ok(&[
        "patch",
        "network.config.openshift.io",
        "cluster",
        "--subresource=status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"NetworkTypeMigrationInProgress","status":"True","reason":"NetworkTypeMigrationStarted","message":"Network type migration is started","lastTransitionTime":"2026-12-04T03:00:00Z"}]}}"#,
    ]);
    refused(
        &sim,
        &["--to", "OpenShiftSDN"],
        &["condition NetworkTypeMigrationInProgress=True on Network.config.openshift.io/cluster (reason NetworkTypeMigrationStarted)"],
    );
    // The forward flow too.
    refused(&sim, &[], &["condition NetworkTypeMigrationInProgress=True"]);
}

use crate::common::sim::KubectlWatch as Watch;

/// Each node's history in the simulation (what happened to the machine itself).
fn histories(sim: &Sim) -> Vec<(String, Vec<String>)> {
    let nodes: serde_json::Value = serde_json::from_str(&sim.control("GET", "nodes", "")).unwrap();
    nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let events = n["history"].as_array().unwrap().iter().map(|e| e[1].as_str().unwrap().to_owned()).collect();
            (n["name"].as_str().unwrap().to_owned(), events)
        })
        .collect()
}

fn wait_condition(sim: &Sim, condition: &str) {
    sim.kubectl_ok(&["wait", "network.config.openshift.io/cluster", &format!("--for=condition={condition}"), "--timeout=600s"]);
}

/// The documented procedure, by hand: one patch (annotation + spec.networkType), then
/// `kubectl wait` on the conditions. The simulated CNO drives spec.migration through its steps
/// and the simulated MCO reboots every node twice (the routable MTU, then configure-ovs.sh
/// OVNKubernetes), each node NotReady then Ready with a new boot ID, each pool Updating then
/// Updated in each round.
#[test]
fn a_live_migration_by_hand_with_kubectl_reboots_every_node_twice() {
    let sim = Sim::in_process_with(1, 2, &["--openshift-version", "4.16.21"]);
    let pools = Watch::start(&sim, "mcp", r#"{.metadata.name} {.status.conditions[?(@.type=="Updating")].status}"#);
    let operator = Watch::start(&sim, "network.operator.openshift.io", "{.spec.defaultNetwork.type} {.spec.migration}");
    let nodes = Watch::start(&sim, "node", r#"{.metadata.name} {.status.nodeInfo.bootID} {.status.conditions[?(@.type=="Ready")].status}"#);
    sim.merge(
        "network.config.openshift.io",
        "cluster",
        &format!(r#"{{"metadata":{{"annotations":{{"{ANNOTATION}":""}}}},"spec":{{"networkType":"OVNKubernetes"}}}}"#),
    );
    wait_condition(&sim, "NetworkTypeMigrationInProgress=True");
    wait_condition(&sim, "NetworkTypeMigrationTargetCNIAvailable=True");
    wait_condition(&sim, "NetworkTypeMigrationMTUReady=True");
    wait_condition(&sim, "NetworkTypeMigrationTargetCNIInUse=True");
    wait_condition(&sim, "NetworkTypeMigrationInProgress=False");
    sim.kubectl_ok(&["wait", "mcp", "--all", "--for=condition=Updated=True", "--timeout=600s"]);

    let get = |kind: &str, path: &str| sim.kubectl_ok(&["get", kind, "cluster", "-o", &format!("jsonpath={{{path}}}")]);
    assert_eq!(get("network.config.openshift.io", ".spec.networkType"), "OVNKubernetes");
    assert_eq!(get("network.config.openshift.io", ".status.networkType"), "OVNKubernetes");
    assert_eq!(get("network.operator.openshift.io", ".spec.defaultNetwork.type"), "OVNKubernetes");
    assert_eq!(get("network.operator.openshift.io", ".spec.migration"), "", "the CNO cleared spec.migration");
    assert_eq!(
        get("network.config.openshift.io", r#".status.conditions[?(@.type=="NetworkTypeMigrationInProgress")].reason"#),
        "NetworkTypeMigrationCompleted"
    );
    for kind in ["TargetCNIAvailable", "TargetCNIInUse", "OriginalCNIPurged", "MTUReady"] {
        let path = format!(r#".status.conditions[?(@.type=="NetworkTypeMigration{kind}")].status"#);
        assert_eq!(get("network.config.openshift.io", &path), "Unknown", "{kind} reset");
    }
    let (ok, _, _) = sim.kubectl(&["get", "daemonset", "sdn", "-n", "openshift-sdn"]);
    assert!(!ok, "OpenShift SDN purged");
    assert_eq!(
        sim.kubectl_ok(&["get", "daemonset", "ovnkube-node", "-n", "openshift-ovn-kubernetes", "-o", "jsonpath={.status.numberReady}"]),
        "3"
    );

    // The operator config went through the four steps, in order.
    let steps = operator.lines();
    let at = |what: &str| steps.iter().position(|l| l.contains(what)).unwrap_or_else(|| panic!("{what} not in {steps:?}"));
    let step1 = at(r#"OpenShiftSDN {"mode":"Live","networkType":"OVNKubernetes"}"#);
    let step2 = at(r#""mtu":{"machine":{"to":1500},"network":{"from":1450,"to":1400}}"#);
    let step3 = steps.iter().rposition(|l| l.starts_with("OVNKubernetes {") && !l.contains("mtu")).expect("step 3");
    let step4 = steps.iter().rposition(|l| l == "OVNKubernetes ").expect("step 4");
    assert!(step1 < step2 && step2 < step3 && step3 < step4, "{steps:?}");

    // Each machine rebooted exactly twice, each boot followed by Ready.
    for (name, history) in histories(&sim) {
        let ups: Vec<usize> = history.iter().enumerate().filter(|(_, e)| *e == "up").map(|(i, _)| i).collect();
        assert_eq!(ups.len(), 2, "{name}: {history:?}");
        for up in ups {
            assert!(history[up..].iter().any(|e| e == "ready"), "{name} Ready after each boot: {history:?}");
        }
    }
    // The API saw it: three boot IDs per node (the first and one per reboot), NotReady between.
    let lines = nodes.lines();
    for node in ["master-0", "worker-0", "worker-1"] {
        let mut boot_ids: Vec<&str> = Vec::new();
        let mut not_ready = 0;
        let mut last_ready = "";
        for l in lines.iter().filter(|l| l.starts_with(&format!("{node} "))) {
            let fields: Vec<&str> = l.split_whitespace().collect();
            if boot_ids.last() != Some(&fields[1]) {
                boot_ids.push(fields[1]);
            }
            if fields.get(2) != Some(&last_ready) && fields.get(2) != Some(&"True") {
                not_ready += 1;
            }
            last_ready = fields.get(2).copied().unwrap_or_default();
        }
        assert_eq!(boot_ids.len(), 3, "{node}: {lines:?}");
        assert_eq!(not_ready, 2, "{node} NotReady once per reboot: {lines:?}");
        assert_eq!(last_ready, "True");
    }
    // Each pool went Updating twice (one round per rendered config) and ended Updated.
    for pool in ["master", "worker"] {
        let states: Vec<String> = pools.lines().iter().filter_map(|l| l.strip_prefix(&format!("{pool} ")).map(str::to_owned)).collect();
        let rounds = states.windows(2).filter(|w| w[0] != "True" && w[1] == "True").count()
            + usize::from(states.first().is_some_and(|s| s == "True"));
        assert_eq!(rounds, 2, "{pool}: {states:?}");
    }
    assert_eq!(sim.control("GET", "operators/refusals", ""), "[]", "the CNO refused nothing");
}

/// Before 4.15.31 the network operator does not act on the annotation: the same patch by hand
/// is an offline type change without `spec.migration`, which the CNO refuses (Degraded with its
/// own message, nothing applied); on 4.16 the CNO's own blockers stop it the same way.
#[test]
fn the_patch_by_hand_is_refused_where_the_operator_has_no_live_migration_or_a_blocker() {
    let patch = format!(r#"{{"metadata":{{"annotations":{{"{ANNOTATION}":""}}}},"spec":{{"networkType":"OVNKubernetes"}}}}"#);
    let degraded = |sim: &Sim| {
        sim.kubectl_ok(&["get", "clusteroperator", "network", "-o", r#"jsonpath={.status.conditions[?(@.type=="Degraded")].message}"#])
    };
    let eventually = |what: &str, probe: &dyn Fn() -> bool| {
        let start = std::time::Instant::now();
        while !probe() {
            assert!(start.elapsed() < std::time::Duration::from_secs(30), "never: {what}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    for version in ["4.14.38", "4.15.30"] {
        let sim = Sim::in_process_with(0, 1, &["--openshift-version", version]);
        sim.merge("network.config.openshift.io", "cluster", &patch);
        eventually(version, &|| degraded(&sim).contains("[cannot change default network type when not doing migration]"));
        let conditions = sim.kubectl_ok(&["get", "network.config.openshift.io", "cluster", "-o", "jsonpath={.status.conditions}"]);
        assert!(!conditions.contains("NetworkTypeMigration"), "{version}: no live conditions: {conditions}");
        assert_eq!(
            sim.kubectl_ok(&["get", "network.config.openshift.io", "cluster", "-o", "jsonpath={.status.networkType}"]),
            "OpenShiftSDN"
        );
    }
    let sim = Sim::in_process_with(0, 1, &["--openshift-version", "4.16.21"]);
    sim.merge("network.operator.openshift.io", "cluster", r#"{"spec":{"defaultNetwork":{"openshiftSDNConfig":{"mode":"Multitenant"}}}}"#);
    sim.merge("network.config.openshift.io", "cluster", &patch);
    eventually("blocked", &|| {
        degraded(&sim)
            == "Could not update cluster configuration status: network type live migration is not supported on SDN Multitenant clusters"
    });
    assert_eq!(sim.kubectl_ok(&["get", "network.operator.openshift.io", "cluster", "-o", "jsonpath={.spec.migration}"]), "");
    assert_eq!(sim.kubectl_ok(&["get", "network.config.openshift.io", "cluster", "-o", "jsonpath={.status.networkType}"]), "OpenShiftSDN");
}

/// How many times each machine booted since the simulation started (its own history).
fn boots(sim: &Sim) -> Vec<(String, usize)> {
    histories(sim).into_iter().map(|(name, h)| (name, h.iter().filter(|e| *e == "up").count())).collect()
}

fn journal(sim: &Sim) -> String {
    let dirs = sim.migration_dirs();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    std::fs::read_to_string(dirs[0].join("migration.jsonl")).unwrap()
}

/// `fleetboot migrate --mode live` on a release that has it: the plan recommends it, the one
/// patch, the watch, every node rebooted twice by the simulated MCO (the simulation's own
/// history), verify, the clean-up removes the annotation.
fn migrates_live(version: &str) {
    let sim = Sim::in_process_with(1, 2, &["--openshift-version", version]);
    let plan = migrate(&sim, &["--plan"]);
    assert!(
        plan.stdout.contains("RECOMMENDED on this release: the limited live migration") && plan.stdout.contains("--mode live"),
        "{}",
        plan.stdout
    );
    let run = migrate(&sim, &["--mode", "live", "--etcd-backup-confirmed"]);
    assert_eq!(run.code, 0, "{}", run.debug());
    for expected in [
        "· live flow (--mode live",
        "NetworkTypeMigrationCompleted",
        "each of the 3 nodes rebooted 2 times by the MCO (new boot IDs), Ready after each",
        "7 checks passed",
        "1 of 6 reboots",
        "6 of 6 reboots, ETA 0s",
    ] {
        assert!(run.stdout.contains(expected), "{expected}: {}", run.stdout);
    }
    for (node, count) in boots(&sim) {
        assert_eq!(count, 2, "{node} booted twice: {:?}", histories(&sim));
    }
    let get = |kind: &str, path: &str| sim.kubectl_ok(&["get", kind, "cluster", "-o", &format!("jsonpath={{{path}}}")]);
    assert_eq!(get("network.config.openshift.io", ".status.networkType"), "OVNKubernetes");
    assert_eq!(get("network.operator.openshift.io", ".spec.migration"), "");
    let journal = journal(&sim);
    assert!(journal.contains(r#""flow":"live""#) && journal.contains(r#""step_done","step":"wait_rollout""#), "{journal}");
    // Each of the MCO's reboots is journaled as seen (between two looks) and drawn in the
    // report's timeline as the MCO's, on its node's lane.
    let observed: Vec<serde_json::Value> = journal
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["event"] == "reboot_observed")
        .collect();
    for (node, count) in boots(&sim) {
        let seen = observed.iter().filter(|r| r["node"] == node.as_str()).count();
        assert_eq!(seen, count, "{node}: each of its boots observed once: {observed:?}");
    }
    assert!(observed.iter().all(|r| r["since_ms"].as_u64() <= r["at_ms"].as_u64()), "{observed:?}");
    let svg = std::fs::read_to_string(sim.migration_dirs()[0].join("timeline.svg")).unwrap();
    assert!(svg.contains("rebooted by the MCO (between two looks)"), "the legend names the MCO's reboots");
    assert_eq!(svg.matches("rebooted by the MCO (live migration) between").count(), observed.len(), "one bar per observed reboot");
    let cleanup = migrate(&sim, &["--cleanup"]);
    assert_eq!(cleanup.code, 0, "{}", cleanup.debug());
    assert!(!get("network.config.openshift.io", ".metadata.annotations").contains(ANNOTATION), "annotation removed");
    // The finished live migration's conditions stay; once cleaned up they block no offline rollback.
    assert!(get("network.config.openshift.io", ".status.conditions").contains("NetworkTypeMigrationCompleted"));
    let back = migrate(&sim, &["--to", "OpenShiftSDN", "--plan", "--etcd-backup-confirmed"]);
    assert!(!back.stdout.contains("live-migration:"), "{}", back.stdout);
    assert_eq!(sim.control("GET", "operators/refusals", ""), "[]", "fleetboot asked the CNO for nothing it refuses");
}

#[test]
fn the_live_migration_on_4_16_21_reboots_each_node_twice() {
    migrates_live("4.16.21");
}

#[test]
fn the_live_migration_on_4_15_31_reboots_each_node_twice() {
    migrates_live("4.15.31");
}

#[test]
fn live_is_refused_on_4_14_and_4_15_30_before_anything_changes() {
    for version in ["4.14.38", "4.15.30"] {
        let sim = Sim::in_process_with(0, 1, &["--openshift-version", version]);
        let before = state(&sim);
        let run = migrate(&sim, &["--mode", "live", "--etcd-backup-confirmed"]);
        assert_eq!(run.code, 2, "{}", run.debug());
        assert!(
            run.stderr.contains(&format!(
                "mode-live: OpenShift \"{version}\" has no limited live migration (4.15.31+ and 4.16 only): use --mode offline"
            )),
            "{}",
            run.debug()
        );
        assert_eq!(state(&sim), before, "nothing changed");
        assert!(sim.migration_dirs().is_empty());
        let plan = migrate(&sim, &["--plan"]);
        assert!(!plan.stdout.contains("RECOMMENDED"), "{}", plan.stdout);
    }
}

/// Killed with SIGKILL while the MCO reboots the nodes, `--resume` watches on from the
/// journal and the boot IDs kept in the migration's directory; each node booted exactly twice.
#[test]
fn a_live_migration_killed_mid_way_resumes_to_the_end() {
    let sim = Sim::in_process_with(1, 2, &["--openshift-version", "4.16.21"]);
    let mut child = sim
        .fleetboot(&["migrate", "--mode", "live", "--etcd-backup-confirmed", "--poll-interval", "300ms", "--output", "plain"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    // Mid-way: at least one node's first reboot seen and journaled.
    loop {
        let seen =
            sim.migration_dirs().first().and_then(|d| std::fs::read_to_string(d.join("live-boots-seen.json")).ok()).unwrap_or_default();
        if seen.matches('-').count() >= 4 {
            break;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(120), "no reboot seen");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SIGKILL, by PID.
    child.kill().unwrap();
    child.wait().unwrap();
    let journal_before = journal(&sim);
    assert!(!journal_before.contains(r#""step_done","step":"wait_rollout""#), "killed mid-way: {journal_before}");
    let resumed = migrate(&sim, &["--resume"]);
    assert_eq!(resumed.code, 0, "{}", resumed.debug());
    assert!(resumed.stdout.contains("resuming the migration to OVNKubernetes (live flow)"), "{}", resumed.stdout);
    assert!(resumed.stdout.contains("rebooted") && resumed.stdout.contains("7 checks passed"), "{}", resumed.stdout);
    for (node, count) in boots(&sim) {
        assert_eq!(count, 2, "{node} booted twice, not more: {:?}", histories(&sim));
    }
    let journal = journal(&sim);
    assert!(journal.contains(r#""event":"migration_resumed""#) || journal.contains("resumed"), "{journal}");
    assert_eq!(journal.matches(r#""step_started","step":"set_network_type""#).count(), 1, "the patch was sent once: {journal}");
}

/// The live preflight refuses what would stall or block the network operator's live migration:
/// a paused pool (its two rollouts) and egress router pods (the CNO's own blocker), before
/// anything changes.
#[test]
fn the_live_preflight_refuses_paused_pools_and_egress_routers() {
    let sim = Sim::in_process_with(1, 2, &["--openshift-version", "4.16.21"]);
    let refused_live = |expected: &str| {
        let before = state(&sim);
        let run = migrate(&sim, &["--mode", "live", "--etcd-backup-confirmed"]);
        assert_eq!(run.code, 2, "{}", run.debug());
        assert!(run.stderr.contains(expected), "{expected}: {}", run.debug());
        assert_eq!(state(&sim), before, "nothing changed");
        assert!(sim.migration_dirs().is_empty());
    };
    sim.merge("mcp", "worker", r#"{"spec":{"paused":true}}"#);
    refused_live("paused-pools: MachineConfigPool worker is paused with 2 machines: the live migration's two rollouts need every pool");
    sim.merge("mcp", "worker", r#"{"spec":{"paused":false}}"#);
    let pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"egress-router","namespace":"default","annotations":{"pod.network.openshift.io/assign-macvlan":"true"}},"spec":{"containers":[{"name":"router","image":"registry.example/egress-router"}]}}"#;
    let file = sim.path("egress-router.json");
    std::fs::write(&file, pod).unwrap();
    sim.kubectl_ok(&["create", "--validate=false", "-f", file.to_str().unwrap()]);
    refused_live(
        "egress-routers: egress router pods block the live migration (the network operator refuses it): remove them first: default/egress-router",
    );
    // Offline, the same pod is a warning only.
    let plan = migrate(&sim, &["--plan", "--etcd-backup-confirmed"]);
    assert!(!plan.stdout.contains("REFUSES") && plan.stdout.contains("egress-routers:"), "{}", plan.stdout);
}

/// A pool that goes Degraded mid-way stops the simulated network operator as the real one
/// (`prepareOperatorConfigForNetworkTypeMigration`: "MCP is degraded, network type migration
/// cannot proceed", Degraded NetworkTypeMigrationFailed), and fleetboot's watch stops on it
/// with the operator's words; nothing is claimed done.
#[test]
fn a_degraded_pool_stops_the_live_migration_with_the_operators_message() {
    let sim = Sim::in_process_with(1, 2, &["--openshift-version", "4.16.21"]);
    let child = sim
        .fleetboot(&["migrate", "--mode", "live", "--etcd-backup-confirmed", "--poll-interval", "300ms", "--output", "plain"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let reason = |sim: &Sim| {
        sim.kubectl_ok(&["get", "clusteroperator", "network", "-o", r#"jsonpath={.status.conditions[?(@.type=="Degraded")].reason}"#])
    };
    let start = std::time::Instant::now();
    // The daemon rewrites the state of a node it is updating: mark it until it sticks.
    while reason(&sim) != "NetworkTypeMigrationFailed" {
        if sim.migration_dirs().first().is_some_and(|d| {
            std::fs::read_to_string(d.join("migration.jsonl")).unwrap_or_default().contains(r#""step_started","step":"wait_rollout""#)
        }) {
            let (_, _, _) = sim.kubectl(&[
                "annotate",
                "--overwrite",
                "node",
                "worker-1",
                "machineconfiguration.openshift.io/state=Degraded",
                "machineconfiguration.openshift.io/reason=disk full",
            ]);
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(120), "the operator never stopped");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("the network operator stops the live migration (Degraded): Failed to process SDN live migration (MCP is degraded, network type migration cannot proceed)"),
        "{stdout}"
    );
    let journal = journal(&sim);
    assert!(
        journal.contains(r#""step_failed","step":"wait_rollout""#) && !journal.contains(r#""step_done","step":"wait_rollout""#),
        "{journal}"
    );
}
