//! The flow each OpenShift release requires, run against simulations of those releases whose
//! operators enforce the real operators' rules (`fleetboot sim --openshift-version`), with
//! kubectl as the independent witness: each release migrates with its own flow, refuses the
//! other order with the operator's own message, survives kill -9 in each phase; 4.17 is
//! refused; preflight refusals change nothing. The rollback has its own module,
//! `migrate_rollback`.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::sim::Sim;
use crate::common::{Run, dispatch_counts};

/// `fleetboot migrate --poll-interval 300ms EXTRA --output plain`, run by the engine
/// in this process against the simulation started in the test (common/inproc.rs): stdout and
/// stderr are what its reporter rendered, and the error as the binary prints it.
fn migrate(sim: &Sim, extra: &[&str]) -> Run {
    let mut args = vec!["--poll-interval", "300ms"];
    args.extend(extra);
    sim.migrate_in_process(&args).to_run()
}

fn get(sim: &Sim, kind: &str, name: &str, path: &str) -> String {
    sim.kubectl_ok(&["get", kind, name, "-o", &format!("jsonpath={{{path}}}")])
}

fn degraded(sim: &Sim) -> String {
    get(sim, "clusteroperator", "network", r#".status.conditions[?(@.type=="Degraded")].message"#)
}

/// Waits until `probe` holds (10 s at most).
fn eventually(what: &str, mut probe: impl FnMut() -> bool) {
    let start = Instant::now();
    while !probe() {
        assert!(start.elapsed() < Duration::from_secs(10), "never: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn journal_text(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("migration.jsonl")).unwrap()
}

/// A whole migration on a simulated release, with the flow it requires.
fn migrates_end_to_end(version: &str, flow: &str, extra: &[&str]) {
    let sim = Sim::in_process_with(1, 2, &["--openshift-version", version]);
    assert_eq!(get(&sim, "clusterversion", "version", ".status.desired.version"), version);
    let plan = migrate(&sim, &["--plan"]);
    assert_eq!(plan.code, 0, "{}", plan.debug());
    assert!(plan.stdout.contains(&format!("flow: {flow} — OpenShift {version}")), "{}", plan.stdout);

    let mut args = vec!["--etcd-backup-confirmed"];
    args.extend(extra);
    let run = migrate(&sim, &args);
    assert_eq!(run.code, 0, "{}", run.debug());
    assert_eq!(sim.network_type(), ("OVNKubernetes".into(), "OVNKubernetes".into()));
    if extra.contains(&"multicast") {
        assert_eq!(get(&sim, "network.operator.openshift.io", "cluster", ".spec.migration.features.multicast"), "false");
        assert_eq!(get(&sim, "network.operator.openshift.io", "cluster", ".spec.migration.features.egressIP"), "true");
    }
    let dir = &sim.migration_dirs()[0];
    let journal = journal_text(dir);
    let at = |marker: &str| journal.find(marker).unwrap_or_else(|| panic!("{marker} not in {journal}"));
    if flow == "two-phase" {
        // Phase 1 (the MCO's rollout of configure-ovs.sh OVNKubernetes) before the switch; no pause.
        assert!(at(r#""step_done","step":"enable_migration""#) < at(r#""step_done","step":"rollout_config""#));
        // The options go in with spec.migration, before phase 1 (the 4.8+ docs' order).
        assert!(at(r#""step_done","step":"mtu_and_port""#) < at(r#""step_started","step":"rollout_config""#));
        assert!(at(r#""step_done","step":"rollout_config""#) < at(r#""step_started","step":"set_network_type""#));
        assert!(!journal.contains("pause_pools"));
        assert_eq!(get(&sim, "network.config.openshift.io", "cluster", ".status.migration.networkType"), "OVNKubernetes");
    } else {
        assert!(at(r#""step_done","step":"pause_pools""#) < at(r#""step_started","step":"set_network_type""#));
        assert!(at(r#""step_done","step":"reboot_nodes""#) < at(r#""step_done","step":"resume_pools""#));
    }
    // fleetboot never asked the operator for a change it refuses.
    assert_eq!(sim.refusals(), Vec::<String>::new());
    let counts = dispatch_counts(&dir.join("reboot.jsonl"));
    assert!(counts.len() == 3 && counts.values().all(|&n| n == 1), "{counts:?}");
    let verify = Run::from(sim.fleetboot(&["verify"]).output().unwrap());
    assert_eq!(verify.code, 0, "{}", verify.debug());
    assert!(verify.stdout.contains("ovnkube-node rolled out on every node, no openshift-sdn pod left"), "{}", verify.stdout);

    let cleanup = migrate(&sim, &["--cleanup"]);
    assert_eq!(cleanup.code, 0, "{}", cleanup.debug());
    assert_eq!(get(&sim, "network.operator.openshift.io", "cluster", ".spec.migration"), "");
    if flow == "two-phase" {
        // The forward clean-up of openshift-docs `modules/nw-ovn-kubernetes-migration.adoc`.
        assert_eq!(get(&sim, "network.operator.openshift.io", "cluster", ".spec.defaultNetwork.openshiftSDNConfig"), "");
    }
    assert_eq!(
        get(&sim, "network.operator.openshift.io", "cluster", r#".metadata.annotations.networkoperator\.openshift\.io/network-migration"#),
        ""
    );
    assert_eq!(sim.refusals(), Vec::<String>::new());
}

#[test]
fn release_4_7_migrates_with_the_seed_flow() {
    migrates_end_to_end("4.7.60", "seed", &[]);
}

#[test]
fn release_4_8_migrates_with_the_two_phase_flow() {
    // 4.8 already needs br-ex (cluster-network-operator 86315a352): phase 1 must come first.
    migrates_end_to_end("4.8.57", "two-phase", &[]);
}

#[test]
fn release_4_10_migrates_with_the_two_phase_flow() {
    migrates_end_to_end("4.10.67", "two-phase", &[]);
}

#[test]
fn release_4_14_migrates_with_the_two_phase_flow() {
    // 4.12+: the SDN features the operator converts can be switched off (spec.migration.features).
    migrates_end_to_end("4.14.38", "two-phase", &["--skip-feature", "multicast"]);
}

#[test]
fn each_release_refuses_the_wrong_order_with_the_operators_message() {
    // 4.14 ignores the annotation: the seed's order is refused.
    let sim = Sim::in_process_with(0, 1, &["--openshift-version", "4.14.38"]);
    sim.kubectl_ok(&["annotate", "network.operator.openshift.io", "cluster", "networkoperator.openshift.io/network-migration="]);
    sim.merge("network.config.openshift.io", "cluster", r#"{"spec":{"networkType":"OVNKubernetes"}}"#);
    eventually("refused", || degraded(&sim).contains("[cannot change default network type when not doing migration]"));
    assert!(degraded(&sim).starts_with("Not applying unsafe configuration change: invalid configuration:"), "{}", degraded(&sim));
    assert_eq!(sim.network_type().1, "OpenShiftSDN", "the change was not applied");
    // spec.migration in the same breath as the type: the applied config has no migration yet.
    sim.merge("network.operator.openshift.io", "cluster", r#"{"spec":{"migration":{"networkType":"OVNKubernetes"}}}"#);
    std::thread::sleep(Duration::from_millis(700));
    assert!(degraded(&sim).contains("cannot change default network type when not doing migration"), "{}", degraded(&sim));
    assert_eq!(sim.network_type().1, "OpenShiftSDN");
    // Undone, spec.migration alone is applied (status.migration), and then the type.
    sim.merge("network.config.openshift.io", "cluster", r#"{"spec":{"networkType":"OpenShiftSDN"}}"#);
    eventually("applied", || get(&sim, "network.config.openshift.io", "cluster", ".status.migration.networkType") == "OVNKubernetes");
    assert_eq!(degraded(&sim), "");
    // The target cannot change once started.
    sim.merge("network.operator.openshift.io", "cluster", r#"{"spec":{"migration":{"networkType":"OpenShiftSDN"}}}"#);
    eventually("refused", || degraded(&sim).contains("cannot change migration network type after migration has started"));
    assert!(sim.refusals().len() >= 2);
    drop(sim);

    // 4.7 needs the annotation.
    let sim = Sim::in_process_with(0, 1, &["--openshift-version", "4.7.60"]);
    sim.merge("network.config.openshift.io", "cluster", r#"{"spec":{"networkType":"OVNKubernetes"}}"#);
    eventually("refused", || degraded(&sim).contains("[cannot change default network type]"));
    sim.kubectl_ok(&["annotate", "network.operator.openshift.io", "cluster", "networkoperator.openshift.io/network-migration="]);
    eventually("applied", || sim.network_type().1 == "OVNKubernetes");
    assert_eq!(degraded(&sim), "");
}

#[test]
fn fleetboot_forced_into_the_seed_flow_on_4_14_warns_loudly_and_the_operator_stops_it() {
    let sim = Sim::in_process_with(0, 2, &["--openshift-version", "4.14.38"]);
    let run = migrate(&sim, &["--etcd-backup-confirmed", "--flow", "seed", "--operator-timeout", "20s"]);
    assert_eq!(run.code, 3, "{}", run.debug());
    assert!(run.stderr.contains("WARNING: --flow seed overrides the two-phase flow OpenShift 4.14.38 requires"), "{}", run.debug());
    assert!(
        run.stdout.contains(
            "the network operator refused the change: Not applying unsafe configuration change: invalid configuration: [cannot change default network type when not doing migration]"
        ),
        "{}",
        run.stdout
    );
    assert_eq!(sim.network_type(), ("OVNKubernetes".into(), "OpenShiftSDN".into()), "asked, refused, not applied");
}

#[test]
fn on_4_10_a_node_rebooted_into_ovn_without_the_ovn_render_stays_not_ready_and_verify_says_why() {
    // The order fleetboot used to run on 4.8+: spec.migration, pools paused, switch, reboot.
    let sim = Sim::in_process_with(0, 2, &["--openshift-version", "4.10.67"]);
    sim.merge("mcp", "worker", r#"{"spec":{"paused":true}}"#);
    sim.merge("network.operator.openshift.io", "cluster", r#"{"spec":{"migration":{"networkType":"OVNKubernetes"}}}"#);
    eventually("migration applied", || {
        get(&sim, "network.config.openshift.io", "cluster", ".status.migration.networkType") == "OVNKubernetes"
    });
    sim.merge("network.config.openshift.io", "cluster", r#"{"spec":{"networkType":"OVNKubernetes"}}"#);
    eventually("type applied", || sim.network_type().1 == "OVNKubernetes");
    let power = Run::from(sim.fleetboot(&["power", "restart", "--force", "worker-0"]).output().unwrap());
    assert_eq!(power.code, 0, "{}", power.debug());
    let start = Instant::now();
    let message = loop {
        let message = get(&sim, "node", "worker-0", r#".status.conditions[?(@.type=="Ready")].message"#);
        if message.contains("br-ex") {
            break message;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "worker-0 never came up NotReady for br-ex: {message}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(message.contains("NetworkPluginNotReady") && message.contains("runs configure-ovs.sh OpenShiftSDN"), "{message}");
    assert_eq!(get(&sim, "node", "worker-0", r#".status.conditions[?(@.type=="Ready")].status"#), "False");
    let verify = Run::from(sim.fleetboot(&["verify", "-o", "json"]).output().unwrap());
    assert_eq!(verify.code, 3, "{}", verify.debug());
    let checks: serde_json::Value = serde_json::from_str(&verify.stdout).unwrap();
    let ready = checks.as_array().unwrap().iter().find(|c| c["name"] == "every node Ready").unwrap();
    let detail = ready["detail"].as_str().unwrap();
    assert!(detail.contains("worker-0 NotReady (container runtime network not ready") && detail.contains("br-ex not found"), "{detail}");
    // The last lines of the machine-config-daemon log, not one.
    assert!(detail.contains("machine-config-daemon log tail:") && detail.matches(" ⏎ ").count() >= 2, "{detail}");
}

/// Spawns `fleetboot migrate ARGS` and kills it (SIGKILL) once `done(journal text)` holds.
fn kill_when(sim: &Sim, args: &[&str], done: impl Fn(&str) -> bool) {
    let mut child = sim.fleetboot(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let start = Instant::now();
    loop {
        let text: String = sim
            .migration_dirs()
            .iter()
            .map(|d| {
                std::fs::read_to_string(d.join("migration.jsonl")).unwrap_or_default()
                    + &std::fs::read_to_string(d.join("reboot.jsonl")).unwrap_or_default()
            })
            .collect();
        if done(&text) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "never happened");
        assert!(child.try_wait().unwrap().is_none(), "migrate ended first");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn the_two_phase_flow_killed_in_each_phase_resumes_to_the_end_rebooting_each_node_once() {
    let sim = Sim::in_process_with(1, 2, &["--openshift-version", "4.14.38"]);
    let start = ["migrate", "--etcd-backup-confirmed", "--poll-interval", "300ms"];
    let resume = ["migrate", "--resume", "--poll-interval", "300ms"];
    kill_when(&sim, &start, |j| j.contains(r#""step_done","step":"enable_migration""#));
    assert_eq!(get(&sim, "network.config.openshift.io", "cluster", ".status.migration.networkType"), "OVNKubernetes");
    // In phase 1, once the MCO is rolling (a node Working).
    kill_when(&sim, &resume, |j| {
        j.contains(r#""step_started","step":"rollout_config""#)
            && sim
                .kubectl_ok(&[
                    "get",
                    "nodes",
                    "-o",
                    "jsonpath={.items[*].metadata.annotations.machineconfiguration\\.openshift\\.io/state}",
                ])
                .contains("Working")
    });
    kill_when(&sim, &resume, |j| j.contains(r#""step_done","step":"set_network_type""#));
    assert_eq!(sim.network_type().1, "OVNKubernetes");
    kill_when(&sim, &resume, |j| j.matches(r#""event":"dispatched""#).count() == 3);
    let done = migrate(&sim, &["--resume"]);
    assert_eq!(done.code, 0, "{}", done.debug());
    let dir = &sim.migration_dirs()[0];
    let counts = dispatch_counts(&dir.join("reboot.jsonl"));
    assert!(counts.len() == 3 && counts.values().all(|&n| n == 1), "{counts:?}");
    let journal = journal_text(dir);
    assert_eq!(journal.matches(r#""event":"migration_resumed""#).count(), 4);
    assert_eq!(journal.matches(r#""step_done","step":"rollout_config""#).count(), 1);
    assert_eq!(sim.refusals(), Vec::<String>::new());
}

#[test]
fn release_4_17_has_nothing_to_migrate_and_its_operator_refuses_openshift_sdn() {
    let sim = Sim::in_process_with(0, 1, &["--openshift-version", "4.17.3"]);
    assert_eq!(sim.network_type(), ("OVNKubernetes".into(), "OVNKubernetes".into()));
    for extra in [&["--etcd-backup-confirmed"][..], &["--etcd-backup-confirmed", "--flow", "two-phase"][..], &["--plan"][..]] {
        let run = migrate(&sim, extra);
        assert_eq!(run.code, 2, "{extra:?}: {}", run.debug());
        assert!(
            run.stderr.contains("OpenShift 4.17.3 has no OpenShift SDN (removed in 4.17): there is nothing to migrate"),
            "{}",
            run.debug()
        );
    }
    let back = migrate(&sim, &["--etcd-backup-confirmed", "--to", "OpenShiftSDN"]);
    assert_eq!(back.code, 2, "{}", back.debug());
    assert!(sim.migration_dirs().is_empty());
    // Asked by hand, the 4.17 operator finds OpenShiftSDN an invalid configuration.
    sim.merge("network.config.openshift.io", "cluster", r#"{"spec":{"networkType":"OpenShiftSDN"}}"#);
    eventually("refused", || {
        degraded(&sim)
            .contains(r#"The operator configuration is invalid (invalid configuration: [unsupported network type "OpenShiftSDN"])"#)
    });
    assert_eq!(sim.network_type().1, "OVNKubernetes");
}

#[test]
fn every_preflight_pitfall_is_a_named_refusal_and_leaves_the_cluster_untouched() {
    let sim = Sim::in_process_with(1, 2, &["--openshift-version", "4.14.38", "--colliding-networks"]);
    let state = |sim: &Sim| {
        [
            sim.kubectl_ok(&["get", "network.operator.openshift.io", "cluster", "-o", "jsonpath={.spec}{.metadata.annotations}"]),
            sim.kubectl_ok(&["get", "network.config.openshift.io", "cluster", "-o", "jsonpath={.spec}{.status}"]),
            sim.kubectl_ok(&["get", "mcp", "-o", "jsonpath={.items[*].spec}"]),
        ]
    };
    let refused = |sim: &Sim, extra: &[&str], expected: &str| {
        let before = state(sim);
        let mut args = vec!["--etcd-backup-confirmed"];
        args.extend(extra);
        let run = migrate(sim, &args);
        assert_eq!(run.code, 2, "{}", run.debug());
        assert!(run.stderr.contains(expected), "{expected}: {}", run.debug());
        assert_eq!(state(sim), before, "a refusal changes nothing");
        assert!(sim.migration_dirs().is_empty(), "no journal for a refused migration");
    };
    refused(
        &sim,
        &[],
        "ovn-internal-ranges: clusterNetwork 100.64.0.0/14 overlaps OVN-Kubernetes' join subnet 100.64.0.0/16: move it with --v4-internal-subnet",
    );
    // Moving the join subnet clears the collision; the plan shows where it goes.
    let plan = migrate(&sim, &["--plan", "--etcd-backup-confirmed", "--v4-internal-subnet", "100.99.0.0/16"]);
    assert!(!plan.stdout.contains("REFUSES") && plan.stdout.contains(r#""v4InternalSubnet":"100.99.0.0/16""#), "{}", plan.stdout);
    let moved = ["--v4-internal-subnet", "100.99.0.0/16"];

    sim.merge("network.operator.openshift.io", "cluster", r#"{"spec":{"defaultNetwork":{"openshiftSDNConfig":{"mode":"Multitenant"}}}}"#);
    refused(&sim, &moved, "sdn-mode: OpenShift SDN runs in Multitenant mode");
    sim.merge("network.operator.openshift.io", "cluster", r#"{"spec":{"defaultNetwork":{"openshiftSDNConfig":{"mode":"NetworkPolicy"}}}}"#);

    sim.merge("mcp", "worker", r#"{"spec":{"paused":true}}"#);
    refused(&sim, &moved, "paused-pools: MachineConfigPool worker is paused with 2 machines");
    sim.merge("mcp", "worker", r#"{"spec":{"paused":false}}"#);

    sim.merge("network.operator.openshift.io", "cluster", r#"{"spec":{"migration":{"networkType":"OpenShiftSDN"}}}"#);
    // The operator applies it (status.migration) on its own tick: the state compared is the
    // one after that, not a race with it.
    eventually("spec.migration applied", || {
        get(&sim, "network.config.openshift.io", "cluster", ".status.migration.networkType") == "OpenShiftSDN"
    });
    refused(&sim, &moved, "migration-set: Network.operator.openshift.io/cluster spec.migration.networkType is OpenShiftSDN");
    sim.merge("network.operator.openshift.io", "cluster", r#"{"spec":{"migration":null}}"#);
    // Likewise its removal: the state compared is the one after the operator's tick.
    eventually("spec.migration cleared", || get(&sim, "network.config.openshift.io", "cluster", ".status.migration").is_empty());

    sim.kubectl_ok(&[
        "patch",
        "clusteroperator",
        "dns",
        "--subresource=status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Available","status":"True"},{"type":"Progressing","status":"True","message":"rolling"},{"type":"Degraded","status":"False"}]}}"#,
    ]);
    refused(&sim, &moved, "operators-healthy: ClusterOperator dns is Progressing: rolling");
}

#[test]
fn phase_1_waits_on_a_pod_disruption_budget_and_the_daemon_log_says_so() {
    // The budget under test is the hand-written one: no default workloads beside it.
    let sim = Sim::in_process_with(0, 2, &["--openshift-version", "4.14.38", "--workloads", "0"]);
    let manifest = sim.path("app.json");
    std::fs::write(
        &manifest,
        r#"{"apiVersion":"v1","kind":"List","items":[
        {"apiVersion":"v1","kind":"Pod","metadata":{"name":"db-0","namespace":"default","labels":{"app":"db"}},
         "spec":{"nodeName":"worker-0","containers":[{"name":"db","image":"example/db"}]}},
        {"apiVersion":"v1","kind":"Pod","metadata":{"name":"db-1","namespace":"default","labels":{"app":"db"}},
         "spec":{"nodeName":"worker-1","containers":[{"name":"db","image":"example/db"}]}},
        {"apiVersion":"policy/v1","kind":"PodDisruptionBudget","metadata":{"name":"db","namespace":"default"},
         "spec":{"minAvailable":2,"selector":{"matchLabels":{"app":"db"}}}}]}"#,
    )
    .unwrap();
    sim.kubectl_ok(&["create", "--validate=false", "-f", manifest.to_str().unwrap()]);
    for pod in ["db-0", "db-1"] {
        sim.kubectl_ok(&[
            "patch",
            "pod",
            pod,
            "--subresource=status",
            "--type",
            "merge",
            "-p",
            r#"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}"#,
        ]);
    }
    let pdb_status = |allowed: u32| {
        format!(
            r#"{{"status":{{"currentHealthy":2,"desiredHealthy":2,"disruptionsAllowed":{allowed},"expectedPods":2,"observedGeneration":1}}}}"#
        )
    };
    sim.kubectl_ok(&["patch", "pdb", "db", "--subresource=status", "--type", "merge", "-p", &pdb_status(0)]);
    let child = sim
        .fleetboot(&["migrate", "--etcd-backup-confirmed", "--poll-interval", "300ms", "--output", "plain"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The daemon of the first node cordoned and tries to drain: the budget holds it.
    let start = Instant::now();
    let blocked = loop {
        let logs = sim.kubectl_ok(&["-n", "openshift-machine-config-operator", "logs", "-l", "k8s-app=machine-config-daemon", "--tail=-1"]);
        if let Some(line) = logs.lines().find(|l| l.contains("disruption budget")) {
            break line.to_owned();
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no drain was ever blocked: {logs}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        blocked.contains("error when evicting pods/\"db-")
            && blocked.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{blocked}"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(sim.kubectl_ok(&["get", "pods", "-l", "app=db", "-o", "name"]).lines().count(), 2, "nothing evicted while the budget holds");
    assert_eq!(sim.network_type().1, "OpenShiftSDN", "no switch before phase 1 is over");
    // The budget allows disruptions again: the rollout and the migration go on.
    sim.kubectl_ok(&["patch", "pdb", "db", "--subresource=status", "--type", "merge", "-p", &pdb_status(2)]);
    let done = Run::from(child.wait_with_output().unwrap());
    assert_eq!(done.code, 0, "{}", done.debug());
    assert_eq!(sim.network_type(), ("OVNKubernetes".into(), "OVNKubernetes".into()));
}

#[test]
fn the_sdn_features_are_inventoried_with_what_the_release_does_with_them() {
    let sim = Sim::in_process_with(0, 1, &["--openshift-version", "4.10.67"]);
    sim.merge("netnamespace", "default", r#"{"egressIPs":["192.0.2.50"]}"#);
    sim.kubectl_ok(&["annotate", "netnamespace", "default", "netnamespace.network.openshift.io/multicast-enabled=true"]);
    let policy = sim.path("enp.json");
    std::fs::write(
        &policy,
        r#"{"apiVersion":"network.openshift.io/v1","kind":"EgressNetworkPolicy","metadata":{"name":"default","namespace":"default"},
        "spec":{"egress":[{"type":"Deny","to":{"cidrSelector":"0.0.0.0/0"}}]}}"#,
    )
    .unwrap();
    sim.kubectl_ok(&["create", "--validate=false", "-f", policy.to_str().unwrap()]);
    let plan = migrate(&sim, &["--plan", "--etcd-backup-confirmed"]);
    assert_eq!(plan.code, 0, "{}", plan.debug());
    for expected in [
        "egress-ip: egress IPs on default (192.0.2.50): egress IPs are not migrated before 4.12",
        "multicast: multicast enabled in default",
        "egress-firewall: EgressNetworkPolicies default/default",
    ] {
        assert!(plan.stdout.contains(expected), "{expected}: {}", plan.stdout);
    }
    assert!(!plan.stdout.contains("REFUSES"), "warnings, not refusals: {}", plan.stdout);
}
