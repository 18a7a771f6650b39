//! `fleetboot migrate` and `fleetboot verify` end to end against the simulated cluster, with
//! kubectl as the independent witness of what changed.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::sim::Sim;
use crate::common::{Run, dispatch_counts};
use fleetboot::adapters::journal;
use fleetboot_core::journal::Entry;

fn run(sim: &Sim, args: &[&str]) -> Run {
    Run::from(sim.fleetboot(args).output().unwrap())
}

/// `fleetboot migrate --poll-interval 300ms EXTRA --output plain`, run by the engine
/// in this process against the simulation started in the test (common/inproc.rs): stdout and
/// stderr are what its reporter rendered, and the error as the binary prints it.
fn migrate(sim: &Sim, extra: &[&str]) -> Run {
    let mut args = vec!["--poll-interval", "300ms"];
    args.extend(extra);
    sim.migrate_in_process(&args).to_run()
}

fn jsonpath(sim: &Sim, args: &[&str]) -> String {
    sim.kubectl_ok(args)
}

#[test]
fn a_4_16_cluster_migrates_with_the_two_phase_flow_end_to_end_and_cleans_up_once() {
    // The default simulation runs 4.16: the documented two-phase flow.
    let sim = Sim::in_process(3, 6);
    // An admin's own pool, paused before the migration: it must stay paused after it.
    let infra = sim.path("infra.json");
    std::fs::write(
        &infra,
        r#"{"apiVersion":"machineconfiguration.openshift.io/v1","kind":"MachineConfigPool","metadata":{"name":"infra"},
        "spec":{"paused":true,"maxUnavailable":1,"nodeSelector":{"matchLabels":{"node-role.kubernetes.io/infra":""}},
        "machineConfigSelector":{"matchLabels":{"machineconfiguration.openshift.io/role":"infra"}}}}"#,
    )
    .unwrap();
    sim.kubectl_ok(&["create", "--validate=false", "-f", infra.to_str().unwrap()]);
    let plan = migrate(&sim, &["--plan"]);
    assert_eq!(plan.code, 0, "{}", plan.debug());
    assert!(
        plan.stdout.contains("REFUSES: etcd-backup: no etcd backup confirmed")
            && plan.stdout.contains("spec.migration.networkType=OVNKubernetes")
            && plan.stdout.contains("flow: two-phase — OpenShift 4.16.21 (4.8-4.16)"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("reboot all 9 nodes at once"), "{}", plan.stdout);
    assert_eq!(sim.network_type().0, "OpenShiftSDN", "--plan changes nothing");

    let first = migrate(&sim, &["--etcd-backup-confirmed"]);
    assert_eq!(first.code, 0, "{}", first.debug());
    assert_eq!(sim.network_type(), ("OVNKubernetes".into(), "OVNKubernetes".into()));
    assert!(!sim.paused("master") && !sim.paused("worker"));
    assert!(sim.paused("infra"), "the admin's paused pool stays paused");
    // The admin's empty paused pool is a warning; nothing is paused by the two-phase flow.
    assert!(first.stderr.contains("warning: paused-pools: MachineConfigPool infra is paused"), "{}", first.debug());
    assert!(!first.stdout.contains("pause the MachineConfigPools"), "{}", first.stdout);
    assert!(first.stdout.contains("runs with: fleetboot migrate --cleanup"), "{}", first.stdout);
    // Phase 1: the MCO rolled configure-ovs.sh OVNKubernetes out before the switch.
    let phase1 =
        first.stdout.find("phase 1: the MCO rolls out the new configure-ovs.sh: worker: all 6 updated to rendered-worker-0f3e9c1b7a");
    let switch = first.stdout.find("switch spec.networkType: done");
    assert!(phase1.is_some() && switch.is_some() && phase1 < switch, "{}", first.stdout);
    assert!(first.stdout.contains("ETA"), "the phase-1 rollout shows an ETA: {}", first.stdout);
    let dir = sim.migration_dir();
    let journal = dir.join("reboot.jsonl");
    let counts = dispatch_counts(&journal);
    assert_eq!(counts.len(), 9);
    assert!(counts.values().all(|&n| n == 1), "step 7 rebooted each node once: {counts:?}");
    // Every other boot is the MCO's rollout (phase 1's configure-ovs.sh, the rollout after the
    // switch): the migration journals those it saw while it watched, each on a node the
    // simulation booted more than fleetboot rebooted it, never more than that.
    let migration: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("migration.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &serde_json::Value| r["event"] == "reboot_observed")
        .collect();
    assert!(!migration.is_empty(), "the MCO's rollout reboots are seen");
    for (node, boots) in crate::common::sim::boot_counts(&sim) {
        let seen = migration.iter().filter(|r| r["node"] == node.as_str() && r["by"] == "the MCO (rollout)").count();
        assert!(seen < boots, "{node}: {seen} MCO reboots seen, {boots} boots in all (one is fleetboot's)");
    }
    let svg = std::fs::read_to_string(dir.join("timeline.svg")).unwrap();
    assert_eq!(svg.matches("rebooted by the MCO (rollout) between").count(), migration.len(), "one bar per reboot seen");
    // The backup is the pre-migration object, in YAML kubectl reads.
    let backup = dir.join("cluster-openshift-sdn.yaml");
    let parsed = jsonpath(
        &sim,
        &["create", "--dry-run=client", "--validate=false", "-f", backup.to_str().unwrap(), "-o", "jsonpath={.spec.networkType}"],
    );
    assert_eq!(parsed, "OpenShiftSDN");
    for file in ["report.md", "report.json", "report.html", "timeline.svg"] {
        assert!(dir.join(file).exists(), "{file}");
    }
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(report.contains("| worker-5 | confirmed | ssh |") && report.contains("| PASS | no pod in an error state"), "{report}");
    assert!(
        report.contains("OpenShift 4.16.21 · two-phase flow") && report.contains("- paused-pools: MachineConfigPool infra is paused"),
        "{report}"
    );
    assert!(
        report.contains(
            "Pods already failing before the migration (not counted by the verification): openshift-kube-apiserver/installer-7-master-0"
        ),
        "{report}"
    );
    let svg = std::fs::read_to_string(dir.join("timeline.svg")).unwrap();
    assert_eq!(svg.matches("<rect id=\"reboot-").count(), 9, "a reboot bar per node");
    assert!(
        jsonpath(&sim, &["get", "network.operator.openshift.io", "cluster", "-o", "jsonpath={.spec.migration.networkType}"])
            == "OVNKubernetes"
    );

    let cleanup = migrate(&sim, &["--cleanup"]);
    assert_eq!(cleanup.code, 0, "{}", cleanup.debug());
    assert_eq!(jsonpath(&sim, &["get", "network.operator.openshift.io", "cluster", "-o", "jsonpath={.spec.migration}"]), "");
    // Deleted: already gone, or still Terminating (one look, so the namespace controller
    // finishing in between cannot fail the test).
    let (exists, phase, _) = sim.kubectl(&["get", "namespace", "openshift-sdn", "-o", "jsonpath={.status.phase}"]);
    assert!(!exists || phase == "Terminating", "openshift-sdn is {phase:?}");
    let again = migrate(&sim, &["--cleanup"]);
    assert_eq!(again.code, 2, "step 11 never runs twice: {}", again.debug());

    let verify = run(&sim, &["verify"]);
    assert_eq!(verify.code, 0, "{}", verify.debug());
    assert_eq!(verify.stdout.matches("PASS").count(), 7, "{}", verify.stdout);
    // The leftovers that were failing before the migration are not counted against it.
    assert!(
        verify.stdout.contains("already failing before the migration, not counted") || !verify.stdout.contains("installer-7"),
        "{}",
        verify.stdout
    );
}

#[test]
fn every_preflight_refusal_is_named_and_nothing_is_touched() {
    let sim = Sim::in_process(1, 2);
    let refused = migrate(&sim, &[]);
    assert_eq!(refused.code, 2);
    assert!(refused.stderr.contains("--etcd-backup-confirmed"), "{}", refused.debug());

    sim.kubectl_ok(&[
        "patch",
        "node",
        "worker-1",
        "--subresource=status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"False","reason":"KubeletNotReady"}]}}"#,
    ]);
    sim.kubectl_ok(&[
        "patch",
        "clusteroperator",
        "network",
        "--subresource=status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Degraded","status":"True","message":"unhealthy"}]}}"#,
    ]);
    sim.kubectl_ok(&[
        "patch",
        "mcp",
        "worker",
        "--subresource=status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Degraded","status":"True"}]}}"#,
    ]);
    let refused = migrate(&sim, &["--etcd-backup-confirmed", "--mtu", "1450", "--node-mtu", "1500"]);
    assert_eq!(refused.code, 2, "{}", refused.debug());
    assert!(refused.stderr.contains("minus 100 = 1400"), "{}", refused.debug());
    let refused = migrate(&sim, &["--etcd-backup-confirmed", "--geneve-port", "70000"]);
    assert!(refused.code == 2 && refused.stderr.contains("UDP port"), "{}", refused.debug());

    let refused = migrate(&sim, &["--etcd-backup-confirmed"]);
    assert_eq!(refused.code, 2, "{}", refused.debug());
    // The simulated controllers may have healed some of it meanwhile; what they did not heal is named.
    assert!(refused.stderr.contains("the cluster is not ready for the migration"), "{}", refused.debug());
    assert!(
        refused.stderr.contains("worker-1 (Ready=False)")
            || refused.stderr.contains("ClusterOperator network is Degraded")
            || refused.stderr.contains("worker is Degraded"),
        "{}",
        refused.debug()
    );

    let refused = migrate(&sim, &["--etcd-backup-confirmed", "--to", "OpenShiftSDN"]);
    assert_eq!(refused.code, 2);
    assert!(refused.stderr.contains("spec.networkType is \"OpenShiftSDN\", not OVNKubernetes"), "{}", refused.debug());

    assert!(
        !sim.path("state/migrations").exists() || std::fs::read_dir(sim.path("state/migrations")).unwrap().count() == 0,
        "no journal for a refused migration"
    );
    assert_eq!(sim.network_type().0, "OpenShiftSDN");
    assert!(!sim.paused("worker"));
}

#[test]
fn killed_during_the_reboots_then_resumed_with_the_documents_annotation_and_a_node_without_ssh() {
    // 4.7: the seed's flow, with the annotation (the release's operators honour it).
    let sim = Sim::in_process_with(1, 3, &["--openshift-version", "4.7.60"]);
    sim.control("POST", "nodes/worker-2/faults", r#"{"refuse_ssh": true}"#);
    // The cluster API's exec is not allowed here: `auto` goes SSH, the API (issue 23), then the BMC.
    sim.control("POST", "exec-forbidden", r#"{"namespace":"openshift-machine-config-operator"}"#);
    let mut child = sim
        .fleetboot(&["migrate", "--etcd-backup-confirmed", "--poll-interval", "300ms", "--output", "json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let journal = loop {
        let found =
            std::fs::read_dir(sim.path("state/migrations")).ok().and_then(|mut d| d.next()).map(|e| e.unwrap().path().join("reboot.jsonl"));
        // Killed once every reboot was handed over (a kill between `dispatching` and the
        // hand-over leaves a reboot fleetboot cannot know was delivered: a resume then waits the
        // full deadline before the BMC takes over, which is the ladder's business, not this test's).
        if let Some(j) = found.filter(|j| std::fs::read_to_string(j).unwrap_or_default().matches("\"event\":\"dispatched\"").count() == 4) {
            break j;
        }
        // Generous: under a full parallel test run the migration's first steps take a while.
        assert!(start.elapsed() < Duration::from_secs(120), "step 7 never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(sim.paused("worker") && sim.paused("master"), "the pools stay paused across the kill");
    let annotation = jsonpath(
        &sim,
        &[
            "get",
            "network.operator.openshift.io",
            "cluster",
            "-o",
            r#"jsonpath={.metadata.annotations.networkoperator\.openshift\.io/network-migration}"#,
        ],
    );
    assert_eq!(annotation, "", "annotated (with an empty value)");

    let resumed = migrate(&sim, &["--resume"]);
    assert_eq!(resumed.code, 0, "{}", resumed.debug());
    assert_eq!(sim.network_type().1, "OVNKubernetes");
    let counts = dispatch_counts(&journal);
    assert_eq!(counts.len(), 4);
    assert!(counts.values().all(|&n| n == 1), "no node got a second reboot from step 7: {counts:?}");
    let (records, _) = journal::load(&journal).unwrap();
    assert!(
        records.iter().any(|r| matches!(&r.entry, Entry::Dispatching { host, bmc: Some(_), .. } if host == "worker-2")),
        "worker-2 went through its BMC"
    );
    let report = std::fs::read_to_string(sim.migration_dir().join("report.md")).unwrap();
    assert!(report.contains("| worker-2 | confirmed | BMC (Redfish) |"), "{report}");
}

#[test]
fn a_node_that_never_returns_stops_the_migration_with_pools_paused_until_it_is_fixed() {
    // 4.7: the seed's flow pauses the pools.
    let sim = Sim::in_process_with(1, 2, &["--openshift-version", "4.7.60"]);
    sim.control("POST", "nodes/worker-1/faults", r#"{"never_returns": true}"#);
    // A short reboot deadline, and no BMC ladder (that has its own tests).
    let config = std::fs::read_to_string(sim.config())
        .unwrap()
        .replace("[redfish]\n", "[redfish]\nfallback_on_hung = false\n")
        .replace("timeout = \"5m\"", "timeout = \"4s\"");
    std::fs::write(sim.config(), config).unwrap();
    let failed = migrate(&sim, &["--etcd-backup-confirmed"]);
    assert_eq!(failed.code, 3, "{}", failed.debug());
    assert!(failed.stdout.contains("not: worker-1") && failed.stdout.contains("the pools stay paused"), "{}", failed.stdout);
    assert!(sim.paused("worker") && sim.paused("master"));

    // The admin fixes the node (here: clears the fault and powers it through its BMC).
    sim.control("POST", "nodes/worker-1/faults", r#"{"never_returns": false}"#);
    let power = run(&sim, &["power", "restart", "--force", "worker-1"]);
    assert_eq!(power.code, 0, "{}", power.debug());
    let resumed = migrate(&sim, &["--resume"]);
    assert_eq!(resumed.code, 0, "{}", resumed.debug());
    assert_eq!(sim.network_type().1, "OVNKubernetes");
    assert!(!sim.paused("worker"));
    let counts = dispatch_counts(&sim.migration_dir().join("reboot.jsonl"));
    assert_eq!(counts["worker-1"], 1, "the resume waited for worker-1's new boot ID instead of rebooting it again");
}

#[test]
fn verify_fails_on_a_pod_in_error_reboot_error_nodes_reboots_its_node_and_resume_finishes_after_the_fix() {
    let sim = Sim::in_process(1, 2);
    // A pod no reboot mends and no drain removes (a DaemonSet's), failing since after the
    // migration started (pods failing before are not counted): step 10 fails on it.
    let mut child = sim
        .fleetboot(&["migrate", "--etcd-backup-confirmed", "--reboot-error-nodes", "--poll-interval", "300ms", "--output", "plain"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    sim.wait_for_migration_journal(r#""step":"backup""#, Some(&mut child));
    sim.fail_daemonset_pod_on("worker-0");
    let failed = Run::from(child.wait_with_output().unwrap());
    assert_eq!(failed.code, 3, "{}", failed.debug());
    assert!(failed.stdout.contains("rebooting the nodes that hold pods in error: worker-0"), "{}", failed.stdout);
    assert!(failed.stdout.contains("default/broken on worker-0: phase Failed"), "{}", failed.stdout);
    let extra = sim.reboot_error_nodes_journals();
    assert_eq!(extra.len(), 1);
    assert_eq!(dispatch_counts(&extra[0]).into_iter().collect::<Vec<_>>(), [("worker-0".to_owned(), 1)]);

    let verify = run(&sim, &["verify", "-o", "json"]);
    assert_eq!(verify.code, 3, "{}", verify.debug());
    let checks: serde_json::Value = serde_json::from_str(&verify.stdout).unwrap();
    let pods = checks.as_array().unwrap().iter().find(|c| c["name"] == "no pod in an error state").unwrap();
    assert_eq!(pods["passed"], false);

    sim.kubectl_ok(&["delete", "pod", "broken"]);
    let resumed = migrate(&sim, &["--resume"]);
    assert_eq!(resumed.code, 0, "{}", resumed.debug());
    assert_eq!(run(&sim, &["verify"]).code, 0);

    // A node whose machine config state is not Done is named.
    sim.kubectl_ok(&["annotate", "node", "master-0", "--overwrite", "machineconfiguration.openshift.io/state=Degraded"]);
    let verify = run(&sim, &["verify"]);
    assert_eq!(verify.code, 3);
    assert!(verify.stdout.lines().any(|l| l.starts_with("FAIL") && l.contains("master-0")), "{}", verify.stdout);
}

/// Spawns `fleetboot migrate ARGS` and kills it (SIGKILL) once its journal holds `marker`.
fn kill_when(sim: &Sim, args: &[&str], marker: &str) {
    let mut child = sim.fleetboot(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    sim.wait_for_migration_journal(marker, Some(&mut child));
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn killed_after_pausing_and_again_during_the_rollout_it_resumes_to_the_end() {
    // 4.7: the seed's flow (pause, ..., unpause, MCO rollout).
    let sim = Sim::in_process_with(1, 2, &["--openshift-version", "4.7.60"]);
    kill_when(&sim, &["migrate", "--etcd-backup-confirmed", "--poll-interval", "300ms"], r#""event":"step_done","step":"pause_pools""#);
    assert!(sim.paused("master") && sim.paused("worker"));
    // Resumed with a short paused-pools warning: it is journaled.
    kill_when(
        &sim,
        &["migrate", "--resume", "--paused-warning", "1ms", "--poll-interval", "300ms"],
        r#""event":"step_started","step":"wait_rollout""#,
    );
    assert!(!sim.paused("worker"), "step 8 resumed the pools before the kill");
    let resumed = migrate(&sim, &["--resume"]);
    assert_eq!(resumed.code, 0, "{}", resumed.debug());
    assert_eq!(sim.network_type().1, "OVNKubernetes");
    let dir = sim.migration_dir();
    let counts = dispatch_counts(&dir.join("reboot.jsonl"));
    assert!(counts.len() == 3 && counts.values().all(|&n| n == 1), "{counts:?}");
    let journal = std::fs::read_to_string(dir.join("migration.jsonl")).unwrap();
    assert!(journal.contains(r#""event":"warning""#) && journal.contains("have been paused for"), "{journal}");
    assert_eq!(journal.matches(r#""event":"pools_found""#).count(), 1, "pausing was not redone");
}

#[test]
fn one_migration_per_cluster_a_second_one_is_refused_naming_the_holder() {
    let sim = Sim::in_process(0, 2);
    let mut first = sim
        .fleetboot(&["migrate", "--etcd-backup-confirmed", "--poll-interval", "300ms"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while jsonpath(&sim, &["-n", "kube-system", "get", "lease", "--ignore-not-found", "-o", "name"]).is_empty()
        || !jsonpath(&sim, &["-n", "kube-system", "get", "lease", "--ignore-not-found", "-o", "name"]).contains("fleetboot-migration")
    {
        assert!(start.elapsed() < Duration::from_secs(30), "no migration lease");
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = migrate(&sim, &["--resume"]);
    assert_eq!(second.code, 2, "{}", second.debug());
    assert!(
        second.stderr.contains("holds the lease kube-system/fleetboot-migration") && second.stderr.contains(&format!("pid {}", first.id())),
        "{}",
        second.debug()
    );
    let status = first.wait().unwrap();
    assert!(status.success());
    let (ok, _, _) = sim.kubectl(&["-n", "kube-system", "get", "lease", "fleetboot-migration"]);
    assert!(!ok, "released at the end");
}

#[test]
fn verify_shows_the_machine_config_daemon_log_of_a_node_that_is_not_ready() {
    let sim = Sim::in_process(0, 2);
    sim.kubectl_ok(&[
        "patch",
        "node",
        "worker-1",
        "--subresource=status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"False","reason":"KubeletNotReady"}]}}"#,
    ]);
    let verify = run(&sim, &["verify", "--to", "OpenShiftSDN", "-o", "json"]);
    assert_eq!(verify.code, 3, "{}", verify.debug());
    let checks: serde_json::Value = serde_json::from_str(&verify.stdout).unwrap();
    let ready = checks.as_array().unwrap().iter().find(|c| c["name"] == "every node Ready").unwrap();
    assert_eq!(ready["passed"], false);
    let detail = ready["detail"].as_str().unwrap();
    // The tail is the daemon's own last line, read through the pods/log subresource.
    assert!(
        detail.starts_with("worker-1 NotReady; machine-config-daemon log tail: ") && detail.contains("node worker-1 is up to date"),
        "{detail}"
    );
    // Before any migration, everything else about OpenShiftSDN checks out, but for the
    // leftovers a real cluster has (no migration started: no baseline to discount them).
    let pods = checks.as_array().unwrap().iter().find(|c| c["name"] == "no pod in an error state").unwrap();
    assert!(
        pods["detail"].as_str().unwrap().contains("openshift-marketplace/redhat-operators-x7k2p on worker-0: phase Failed (Evicted)"),
        "{pods}"
    );
    assert!(
        checks
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["name"] != "every node Ready" && c["name"] != "no pod in an error state")
            .all(|c| c["passed"] == true),
        "{checks}"
    );
}

/// A migration journal with no record (a kill right after it was created) is no migration: not
/// one to roll back (which would relax the health checks and write into it), not one to resume.
#[test]
fn an_empty_migration_journal_is_no_migration_to_roll_back_or_resume() {
    let sim = Sim::in_process(0, 2);
    let stale = sim.path("state/migrations/20260101T000000Z-1");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("migration.jsonl"), "").unwrap();
    let resume = migrate(&sim, &["--resume"]);
    assert_eq!(resume.code, 2, "{}", resume.debug());
    assert!(resume.stderr.contains("no migration in progress"), "{}", resume.debug());
    // A sick cluster: a new migration is refused, as on a state directory without that file.
    // (Three ailments: the simulated controllers may heal one before the check reads it.)
    for (kind, name, condition) in [
        ("node", "worker-1", r#"{"type":"Ready","status":"False","reason":"KubeletNotReady"}"#),
        ("clusteroperator", "network", r#"{"type":"Degraded","status":"True","message":"unhealthy"}"#),
        ("mcp", "worker", r#"{"type":"Degraded","status":"True"}"#),
    ] {
        let patch = format!(r#"{{"status":{{"conditions":[{condition}]}}}}"#);
        sim.kubectl_ok(&["patch", kind, name, "--subresource=status", "--type", "merge", "-p", &patch]);
    }
    let refused = migrate(&sim, &["--etcd-backup-confirmed"]);
    assert_eq!(refused.code, 2, "{}", refused.debug());
    assert!(refused.stderr.contains("the cluster is not ready for the migration"), "{}", refused.debug());
    assert!(!refused.stdout.contains("rolling back") && !refused.stderr.contains("rolling back"), "{}", refused.debug());
    assert_eq!(std::fs::read_to_string(stale.join("migration.jsonl")).unwrap(), "", "nothing was written into it");
    assert_eq!(sim.network_type().0, "OpenShiftSDN");
}

/// A migration whose lease another admin takes over (from another machine) starts no further
/// step: it stops at the next step boundary or inside the wait it is in, says why, and exits 4.
#[test]
fn a_migration_whose_lease_is_taken_over_starts_no_further_step() {
    let sim = Sim::in_process(0, 2);
    let first = sim
        .fleetboot(&["migrate", "--etcd-backup-confirmed", "--poll-interval", "300ms", "--output", "plain", "--lease-duration", "3s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !jsonpath(&sim, &["-n", "kube-system", "get", "lease", "--ignore-not-found", "-o", "name"]).contains("fleetboot-migration") {
        assert!(start.elapsed() < Duration::from_secs(30), "no migration lease");
        std::thread::sleep(Duration::from_millis(50));
    }
    sim.kubectl_ok(&[
        "-n",
        "kube-system",
        "patch",
        "lease",
        "fleetboot-migration",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"holderIdentity":"admin@elsewhere pid 1 run other"}}"#,
    ]);
    let run = Run::from(first.wait_with_output().unwrap());
    assert_eq!(run.code, 4, "{}", run.debug());
    assert!(run.stderr.contains("the migration stops: another run took the cluster's lease over (admin@elsewhere"), "{}", run.debug());
    assert!(!run.stdout.contains("migration to OVNKubernetes complete"), "{}", run.debug());
    let journal = std::fs::read_to_string(sim.migration_dir().join("migration.jsonl")).unwrap();
    // At a step boundary, or inside the step's wait (the lease is watched there too).
    let last = journal.lines().last().unwrap();
    assert!(last.contains("stopped before step") || last.contains("stopped in step"), "{journal}");
    // Its report, like its journal, is its owner's alone.
    use std::os::unix::fs::PermissionsExt;
    for file in ["migration.jsonl", "report.md", "report.json"] {
        let mode = std::fs::metadata(sim.migration_dir().join(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }
    // The lease stays with its new holder: fleetboot never takes it back.
    let holder = jsonpath(&sim, &["-n", "kube-system", "get", "lease", "fleetboot-migration", "-o", "jsonpath={.spec.holderIdentity}"]);
    assert_eq!(holder, "admin@elsewhere pid 1 run other");
}
