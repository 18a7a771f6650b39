//! `fleetboot migrate --journal-in-cluster` (and `migrate` in a pod): the migration's journal,
//! side files and reboot runs (step 7's `<migration-id>-reboot`, step 10's
//! `<migration-id>-error-nodes-N`) are in the cluster, so a migration killed mid-step and
//! resumed elsewhere continues the same reboot runs and no node is rebooted twice; `job
//! migrate`'s pod command does so with only its ServiceAccount's in-cluster config under RBAC;
//! an unfinished migration is found without its ID and rolled back (`<migration-id>-rollback`).
//! kubectl and the simulation's history are the witnesses.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::elsewhere::{Killed, cluster_journal_lines, migrate_elsewhere, wait_for, wait_while_running};
use crate::common::sim::Sim;
use fleetboot::adapters::kube::journal_store::JournalPlace;

/// Each host's number of `dispatching` records in the run's journal in the cluster.
fn cluster_dispatch_counts(sim: &Sim, place: &JournalPlace) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in cluster_journal_lines(sim, place) {
        if line["record"]["event"] == "dispatching" {
            *counts.entry(line["record"]["host"].as_str().unwrap().to_owned()).or_default() += 1;
        }
    }
    counts
}

fn dispatched(sim: &Sim, place: &JournalPlace) -> usize {
    cluster_journal_lines(sim, place).iter().filter(|l| l["record"]["event"] == "dispatched").count()
}

/// Step 10's reboot of the nodes that hold pods in error keeps its journal in the cluster too
/// (the run `ID-error-nodes-1`): killed with -9 once its first node's reboot was handed over,
/// the migration resumed from another directory continues that run. Each node's reboots, from
/// the simulation's history: one by step 7, one more for each error node, none twice.
#[test]
fn killed_during_the_error_node_reboot_a_resume_elsewhere_continues_its_run_in_the_cluster() {
    let sim = Sim::in_process_with(1, 3, &["--openshift-version", "4.7.60"]);
    let id = "jobmig2-errors-1";
    let args = [
        "--journal-in-cluster",
        "--run-id",
        id,
        "--etcd-backup-confirmed",
        "--reboot-error-nodes",
        "--reboot-concurrency",
        "1",
        "--poll-interval",
        "300ms",
    ];
    let mut child = Killed(
        sim.fleetboot(&[&["migrate"], &args[..], &["--output", "json"]].concat())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let migration = JournalPlace::new("kube-system", &format!("{id}-migration")).unwrap();
    let backed_up =
        || cluster_journal_lines(&sim, &migration).iter().any(|l| l["record"]["event"] == "step_done" && l["record"]["step"] == "backup");
    wait_while_running(&mut child, "step 1 (the backup)", backed_up);
    // Pods no reboot mends, failing since after the migration started: step 10 reboots their nodes.
    sim.fail_daemonset_pod("broken-0", "worker-0");
    sim.fail_daemonset_pod("broken-1", "worker-1");
    let errors = JournalPlace::new("kube-system", &format!("{id}-error-nodes-1")).unwrap();
    wait_while_running(&mut child, "the error-node reboot's first hand-over", || dispatched(&sim, &errors) >= 1);
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    assert_eq!(sim.network_type().1, "OVNKubernetes", "killed after the switch");
    let local: Vec<_> =
        std::fs::read_dir(sim.path("state/migrations").join(id)).into_iter().flatten().map(|e| e.unwrap().file_name()).collect();
    assert!(local.is_empty(), "nothing of the migration is on the first machine's disk: {local:?}");

    let (resumed, _elsewhere) = migrate_elsewhere(&sim, &args);
    assert_eq!(resumed.code, 3, "verification still fails: no reboot mends those pods\n{}", resumed.debug());
    assert!(resumed.stdout.contains("continuing the reboot of the nodes that hold pods in error"), "{}", resumed.debug());
    let counts = cluster_dispatch_counts(&sim, &errors);
    assert_eq!(counts, BTreeMap::from([("worker-0".to_owned(), 1), ("worker-1".to_owned(), 1)]), "the run continued, no node twice");
    let second = JournalPlace::new("kube-system", &format!("{id}-error-nodes-2")).unwrap();
    assert!(cluster_journal_lines(&sim, &second).is_empty(), "no second error-node run was planned");
    // Every node is rebooted as often by the migration itself (step 7, the MCO's rollout); an
    // error node exactly once more.
    let reboots = sim.history_counts("reboot-requested");
    let by_migration = reboots["master-0"];
    assert!(by_migration >= 1, "{reboots:?}");
    let expected: BTreeMap<String, usize> = [("master-0", 0), ("worker-0", 1), ("worker-1", 1), ("worker-2", 0)]
        .into_iter()
        .map(|(n, more)| (n.to_owned(), by_migration + more))
        .collect();
    assert_eq!(reboots, expected, "each error node rebooted once more than the migration reboots every node");
}

#[test]
fn killed_during_step_7_with_the_journal_in_the_cluster_a_resume_from_another_directory_finishes_it() {
    killed_in_step_7_then_finished_elsewhere(&["--resume", "jobmigrate-test-1", "--journal-in-cluster"]);
}

/// The Job's replacement pod runs the very command line of the first: the migration its ID
/// names is resumed, not refused as "in progress" nor started again.
#[test]
fn killed_during_step_7_the_same_command_line_from_another_directory_resumes_it_as_a_jobs_next_pod_does() {
    killed_in_step_7_then_finished_elsewhere(&["--journal-in-cluster", "--run-id", "jobmigrate-test-1", "--etcd-backup-confirmed"]);
}

/// `migrate --journal-in-cluster --run-id jobmigrate-test-1` killed with -9 once step 7 handed
/// every reboot over, then `migrate RESUME` run from an empty directory of its own.
fn killed_in_step_7_then_finished_elsewhere(resume: &[&str]) {
    let sim = Sim::in_process_with(1, 3, &["--openshift-version", "4.7.60"]);
    let id = "jobmigrate-test-1";
    let child = Killed(
        sim.fleetboot(&[
            "migrate",
            "--journal-in-cluster",
            "--run-id",
            id,
            "--etcd-backup-confirmed",
            "--poll-interval",
            "300ms",
            "--output",
            "json",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let mut child = child;
    let place = JournalPlace::new("kube-system", &format!("{id}-reboot")).unwrap();
    // Killed once every reboot of step 7 was handed over (as in migrate.rs: a kill between
    // `dispatching` and the hand-over is the transport ladder's business, not this test's).
    let start = Instant::now();
    while dispatched(&sim, &place) < 4 {
        assert!(start.elapsed() < Duration::from_secs(120), "step 7 never dispatched every reboot into the cluster's journal");
        assert!(child.0.try_wait().unwrap().is_none(), "migrate ended before step 7 was killed");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    assert!(sim.paused("worker") && sim.paused("master"), "the pools stay paused across the kill");
    // Nothing a resume needs is on the first machine's disk: the journal, the backup and the
    // reboot run are in the cluster.
    let local = sim.path("state/migrations").join(id);
    for file in ["migration.jsonl", "reboot.jsonl", "cluster-openshift-sdn.yaml", "multus-generation-before"] {
        assert!(!local.join(file).exists(), "{file} was written to local disk");
    }
    let backup = sim.kubectl_ok(&[
        "-n",
        "kube-system",
        "get",
        "configmap",
        &format!("fleetboot-migration-{id}-cluster-openshift-sdn.yaml"),
        "-o",
        "jsonpath={.data}",
    ]);
    assert!(backup.contains("networkType"), "the network backup is in the cluster: {backup}");

    let (resumed, elsewhere) = migrate_elsewhere(&sim, &[resume, &["--poll-interval", "300ms"]].concat());
    assert_eq!(resumed.code, 0, "{}", resumed.debug());
    assert!(resumed.stdout.contains("resuming the migration"), "{}", resumed.debug());
    assert_eq!(sim.network_type().1, "OVNKubernetes");
    assert!(!sim.paused("worker") && !sim.paused("master"), "the pools were resumed");
    let counts = cluster_dispatch_counts(&sim, &place);
    assert_eq!(counts.len(), 4, "{counts:?}");
    assert!(counts.values().all(|&n| n == 1), "the resume continued the reboot run: no node rebooted twice by step 7: {counts:?}");
    for (node, boots) in crate::common::sim::boot_counts(&sim) {
        assert!(boots >= 1, "{node} never rebooted");
    }
    // The resume's report is written where it runs; its journal stays in the cluster.
    let there = elsewhere.path().join("state/migrations").join(id);
    assert!(there.join("report.md").exists());
    assert!(!there.join("migration.jsonl").exists() && !there.join("reboot.jsonl").exists());
    let journal: Vec<serde_json::Value> =
        cluster_journal_lines(&sim, &JournalPlace::new("kube-system", &format!("{id}-migration")).unwrap());
    assert!(journal.iter().any(|l| l["record"]["event"] == "migration_resumed"), "the resume is journaled in the cluster");
    assert!(
        journal.iter().any(|l| l["record"]["event"] == "step_done" && l["record"]["step"] == "cleanup")
            || journal.iter().any(|l| l["record"]["event"] == "step_done" && l["record"]["step"] == "verify"),
        "the migration ran to its end: {journal:?}"
    );
}

/// The migration's store in the cluster: its journal in the reboot journal's chunked, fenced
/// ConfigMaps, its side files one ConfigMap each; a second writer takes it over and the first
/// can neither append nor overwrite a side file; a side file over 1 MiB is refused by name.
#[test]
fn the_migrations_store_in_the_cluster_is_fenced_and_refuses_a_side_file_over_one_mebibyte() {
    use fleetboot::adapters::migration_journal::{ClusterStore, MigrationStore, load_from_cluster};
    use fleetboot_core::migrate::Step;
    use fleetboot_core::migrate::record::MigrationEntry;

    let sim = Sim::in_process(0, 1);
    let connection = sim.connection();
    let (client, config) = (&connection.client, &connection.config);
    let id = "20261204T120000Z-7";
    assert!(sim.block_on(load_from_cluster(client, "kube-system", id)).unwrap().is_none(), "no journal yet");

    let first = sim.block_on(ClusterStore::open(client, config, "kube-system", id, "ann@bastion pid 7")).unwrap();
    first.append(MigrationEntry::StepStarted { step: Step::Backup }).unwrap();
    sim.block_on(first.write_file("cluster-openshift-sdn.yaml", "spec: {}\n")).unwrap();
    assert_eq!(sim.block_on(first.read_file("cluster-openshift-sdn.yaml")).unwrap().as_deref(), Some("spec: {}\n"));
    assert_eq!(sim.block_on(first.read_file("multus-generation-before")).unwrap(), None);
    // kubectl sees the side file, labelled as fleetboot's.
    let name = first.side_file_name("cluster-openshift-sdn.yaml");
    let labels = sim.kubectl_ok(&["-n", "kube-system", "get", "configmap", &name, "-o", "jsonpath={.metadata.labels}"]);
    assert!(labels.contains(r#""app.kubernetes.io/managed-by":"fleetboot""#), "{labels}");
    let big = "x".repeat(1024 * 1024);
    let refused = sim.block_on(first.write_file("live-boots-seen.json", &big)).unwrap_err().to_string();
    assert!(refused.contains("live-boots-seen.json") && refused.contains("1 MiB"), "{refused}");

    // A second writer (a restarted pod) takes the migration over: it reads what the first wrote.
    let (records, state) = sim.block_on(load_from_cluster(client, "kube-system", id)).unwrap().unwrap();
    assert_eq!(records.len(), 1);
    assert!(!state.is_done(Step::Backup));
    let second = sim.block_on(ClusterStore::open(client, config, "kube-system", id, "bob@pod pid 1")).unwrap();
    sim.block_on(second.write_file("cluster-openshift-sdn.yaml", "spec: {second: true}\n")).unwrap();
    second.append(MigrationEntry::StepDone { step: Step::Backup, detail: "x".into() }).unwrap();
    // The first writer is fenced: no record, no side file.
    let fenced = first.append(MigrationEntry::StepDone { step: Step::Backup, detail: "y".into() }).unwrap_err().to_string();
    assert!(fenced.contains("taken over by bob@pod pid 1"), "{fenced}");
    let fenced = sim.block_on(first.write_file("cluster-openshift-sdn.yaml", "stale\n")).unwrap_err().to_string();
    assert!(fenced.contains("taken over by bob@pod pid 1"), "{fenced}");
    assert_eq!(sim.block_on(second.read_file("cluster-openshift-sdn.yaml")).unwrap().as_deref(), Some("spec: {second: true}\n"));
    let (records, state) = sim.block_on(load_from_cluster(client, "kube-system", id)).unwrap().unwrap();
    assert_eq!(records.len(), 2);
    assert!(state.is_done(Step::Backup));
}

/// A simulation that enforces RBAC (1 master, 2 workers), and the roles `fleetboot rbac migrate
/// --journal-in-cluster SUBJECT -o json` prints for `subject` (`--user NAME` or
/// `--service-account NS:NAME`), not applied.
fn rbac_sim_and_printed_roles(subject: &[&str]) -> (Sim, Vec<serde_json::Value>) {
    let sim = Sim::start_with(1, 2, &["--rbac"]);
    let out = std::process::Command::new(crate::common::fleetboot_bin())
        .args(["rbac", "migrate", "--journal-in-cluster", "-o", "json"])
        .args(subject)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (sim, list["items"].as_array().unwrap().clone())
}

/// `migrate --transport kube` reboots through the API's exec: as the user `fleetboot` with
/// `fleetboot rbac migrate --journal-in-cluster`'s roles alone (no exec), it stops before its
/// first change, naming exec, instead of at step 7 with the pools paused and the network
/// switched.
#[test]
fn migrate_through_the_api_without_exec_granted_stops_before_changing_anything() {
    let (sim, objects) = rbac_sim_and_printed_roles(&["--user", "fleetboot"]);
    crate::rbac::apply(&sim, &objects, "apply");
    let before = sim.network_type();
    // `--transport kube`, and `auto` whose order leaves the API's exec as the only way to a node.
    for (run_id, transport) in
        [("rbac-exec-1", &["--transport", "kube"][..]), ("rbac-exec-2", &["--transport", "auto", "--transport-order", "kube"])]
    {
        let args = ["migrate", "--context", "fleetboot", "--journal-in-cluster", "--run-id", run_id, "--etcd-backup-confirmed"];
        let (code, out, err) = crate::rbac::run(&sim, &[&args[..], transport, &["--stable-checks", "1", "--output", "plain"]].concat());
        assert_eq!(code, 2, "{transport:?}: {out}{err}");
        assert!(err.contains("pods/exec") && err.contains("openshift-machine-config-operator"), "{transport:?}: {err}");
        assert_eq!(sim.network_type(), before, "the network untouched");
        assert!(!sim.paused("worker") && !sim.paused("master"), "no pool paused");
        let journal = sim.kubectl_ok(&["-n", "kube-system", "get", "configmaps", "-o", "name"]);
        assert!(!journal.contains(run_id), "no journal written: {journal}");
    }
}

/// `fleetboot job migrate`: applied with kubectl it is accepted; the pod resumes by its fixed
/// ID from the journal in the cluster, so crashes are retried (`backoffLimit` > 0) and its
/// roles are exactly `fleetboot rbac migrate --journal-in-cluster`.
#[test]
fn the_migration_jobs_manifest_is_accepted_retries_crashes_and_its_roles_are_fleetboot_rbacs() {
    use serde_json::Value;
    let (sim, rbac) = rbac_sim_and_printed_roles(&["--service-account", "fleetboot:fleetboot"]);
    let out = std::process::Command::new(crate::common::fleetboot_bin())
        .args(["job", "migrate", "--run-id", "job-migrate-1", "-o", "json", "--etcd-backup-confirmed"])
        .output()
        .unwrap();
    let run = crate::common::Run::from(out);
    assert_eq!(run.code, 0, "{}", run.debug());
    let list: Value = serde_json::from_str(&run.stdout).unwrap();
    let objects = list["items"].as_array().unwrap().clone();
    let file = sim.path("job.json");
    std::fs::write(&file, run.stdout.as_bytes()).unwrap();
    let applied = sim.kubectl_ok(&["apply", "--validate=false", "-f", file.to_str().unwrap()]);
    assert_eq!(applied.lines().count(), objects.len(), "{applied}");
    let job = sim.kubectl_ok(&["-n", "fleetboot", "get", "job", "fleetboot-migrate-job-migrate-1", "-o", "json"]);
    let job: Value = serde_json::from_str(&job).unwrap();
    assert_eq!(job["spec"]["backoffLimit"], 6, "a crashed pod is replaced and resumes");
    assert_eq!(job["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["type"], "DisruptionTarget");
    let args = job["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(args.contains(r#""--journal-in-cluster","--run-id","job-migrate-1""#), "{args}");
    let is_rbac = |o: &&Value| matches!(o["kind"].as_str(), Some("ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding"));
    let job_rbac: Vec<&Value> = objects.iter().filter(is_rbac).collect();
    let rbac: Vec<&Value> = rbac.iter().collect();
    assert_eq!(job_rbac, rbac);
    let journal = rbac.iter().find(|o| o["kind"] == "Role" && o["metadata"]["namespace"] == "kube-system").unwrap();
    assert!(journal["rules"].to_string().contains("configmaps"), "the journal's ConfigMaps are granted in kube-system: {journal}");
}

/// `migrate --journal-in-cluster` as the user `fleetboot` works with exactly what `fleetboot
/// rbac migrate --journal-in-cluster` prints; without any one rule of its Role in kube-system
/// (the journal's ConfigMaps and leases, the migration's lease) it stops before its journal
/// exists, naming the rule.
#[test]
fn migrate_with_the_journal_in_the_cluster_runs_with_exactly_its_printed_role() {
    use serde_json::Value;
    let (sim, objects) = rbac_sim_and_printed_roles(&["--user", "fleetboot"]);
    crate::rbac::apply(&sim, &objects, "apply");
    let id = "rbac-migration-1";
    let args = [
        "migrate",
        "--context",
        "fleetboot",
        "--journal-in-cluster",
        "--run-id",
        id,
        "--etcd-backup-confirmed",
        "--poll-interval",
        "300ms",
        "--output",
        "plain",
    ];
    let in_kube_system: Vec<Value> =
        objects.iter().filter(|o| o["kind"] == "Role" && o["metadata"]["namespace"] == "kube-system").cloned().collect();
    assert!(!in_kube_system.is_empty(), "a Role in kube-system: {objects:?}");
    let before = sim.network_type();
    let tried = crate::rbac::each_rule_removed_stops_naming_it(&sim, &in_kube_system, &args, &|sim| {
        assert_eq!(sim.network_type(), before, "the network untouched");
        let journal = sim.kubectl_ok(&["-n", "kube-system", "get", "configmaps", "-o", "name"]);
        assert!(!journal.contains(id), "no journal written: {journal}");
    });
    assert!(tried >= 2, "{tried}");
    let (code, out, err) = crate::rbac::run(&sim, &args);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(sim.network_type().0, "OVNKubernetes", "{out}");
    let journal = sim.kubectl_ok(&["-n", "kube-system", "get", "configmaps", "-o", "name"]);
    assert!(
        journal.contains(&format!("fleetboot-journal-{id}-migration-0")) && journal.contains(&format!("fleetboot-journal-{id}-reboot-0")),
        "{journal}"
    );
}

/// `fleetboot job migrate --run-id ID --transport kube …`'s objects applied with kubectl to
/// `sim`; its Job.
fn applied_migration_job(sim: &Sim, id: &str) -> serde_json::Value {
    let out = std::process::Command::new(crate::common::fleetboot_bin())
        .args(["job", "migrate", "--run-id", id, "-o", "json", "--etcd-backup-confirmed", "--transport", "kube"])
        .args(["--poll-interval", "300ms", "--lease-duration", "3s"])
        .output()
        .unwrap();
    let run = crate::common::Run::from(out);
    assert_eq!(run.code, 0, "{}", run.debug());
    let list: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let objects = list["items"].as_array().unwrap().clone();
    crate::common::pod::apply(sim, &objects);
    objects.into_iter().find(|o| o["kind"] == "Job").unwrap()
}

/// In a pod `migrate` journals in the cluster by itself: the Job's command line without
/// `--journal-in-cluster`, run with only the ServiceAccount's in-cluster config, writes its
/// journal to the cluster (its `--run-id` accepted, as only an in-cluster journal takes one) and
/// nothing a resume needs to the pod's disk.
#[test]
fn in_a_pod_migrate_journals_in_the_cluster_without_being_asked() {
    use crate::common::pod::{pod, service_account_dir, walk};
    let sim = Sim::start_with(1, 2, &["--rbac", "--openshift-version", "4.7.60"]);
    let id = "job-migrate-pod-2";
    let mut job = applied_migration_job(&sim, id);
    let args = job["spec"]["template"]["spec"]["containers"][0]["args"].as_array_mut().unwrap();
    args.retain(|a| a != "--journal-in-cluster");
    let dir = tempfile::tempdir().unwrap();
    service_account_dir(&sim, &dir.path().join("serviceaccount"));
    let mut child = Killed(pod(&sim, &job, dir.path(), "worker-0").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    let migration = JournalPlace::new("kube-system", &format!("{id}-migration")).unwrap();
    wait_while_running(&mut child, "the migration's journal in the cluster", || {
        cluster_journal_lines(&sim, &migration).iter().any(|l| l["record"]["event"] == "step_done" && l["record"]["step"] == "backup")
    });
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let files: Vec<_> = walk(dir.path()).into_iter().filter(|p| !p.starts_with(dir.path().join("serviceaccount"))).collect();
    assert!(files.is_empty(), "nothing on the pod's disk: {files:?}");
}

/// `fleetboot job migrate`'s pod command run as a process with only the ServiceAccount's
/// in-cluster credentials on a simulation that enforces RBAC (the Job's own roles applied with
/// kubectl): killed with -9 during step 7, then the same command line started again elsewhere
/// (another working directory, new credentials, no local file) finishes the migration: every
/// node rebooted once by step 7 (the reboot journal in the cluster; the simulation's history),
/// OVNKubernetes, the pools resumed; neither pod wrote anything but reports.
#[test]
fn the_migration_jobs_pod_killed_in_step_7_and_started_again_elsewhere_finishes_it() {
    use crate::common::pod::{pod, service_account_dir, walk};
    let sim = Sim::start_with(1, 2, &["--rbac", "--openshift-version", "4.7.60"]);
    let id = "job-migrate-pod-1";
    let job = applied_migration_job(&sim, id);
    let job = &job;
    let reboot = JournalPlace::new("kube-system", &format!("{id}-reboot")).unwrap();

    let first = tempfile::tempdir().unwrap();
    service_account_dir(&sim, &first.path().join("serviceaccount"));
    // Its output goes to the simulation's directory: the pod's own holds nothing but its credentials.
    let output = sim.path("first-pod.out");
    let to_file = || Stdio::from(std::fs::OpenOptions::new().create(true).append(true).open(&output).unwrap());
    let mut child = Killed(pod(&sim, job, first.path(), "worker-0").stdout(to_file()).stderr(to_file()).spawn().unwrap());
    if child.0.try_wait().unwrap().is_some() || !wait_for(&mut child, || dispatched(&sim, &reboot) >= 1) {
        panic!("the first pod ended before step 7's first hand-over:\n{}", std::fs::read_to_string(&output).unwrap());
    }
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    assert!(sim.paused("worker") && sim.paused("master"), "killed with the pools paused");

    // The replacement pod: another directory, its own credentials, the same command line.
    let second = tempfile::tempdir().unwrap();
    service_account_dir(&sim, &second.path().join("serviceaccount"));
    let run = crate::common::Run::from(pod(&sim, job, second.path(), "worker-0").output().unwrap());
    assert_eq!(run.code, 0, "{}", run.debug());
    assert_eq!(sim.network_type().1, "OVNKubernetes");
    assert!(!sim.paused("worker") && !sim.paused("master"), "the pools were resumed");
    let counts = cluster_dispatch_counts(&sim, &reboot);
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|&n| n == 1), "step 7 rebooted no node twice: {counts:?}");
    // From the simulation's history: every node rebooted as often as every other (once by step
    // 7, then by the MCO's rollout), so none a second time by step 7.
    let reboots = sim.history_counts("reboot-requested");
    let mut times: Vec<usize> = reboots.values().copied().collect();
    times.dedup();
    assert!(times.len() == 1 && times[0] >= 1, "{reboots:?}");
    let journal = cluster_journal_lines(&sim, &JournalPlace::new("kube-system", &format!("{id}-migration")).unwrap());
    assert!(journal.iter().any(|l| l["record"]["event"] == "migration_resumed"), "the second pod resumed the migration");
    // Nothing a resume needs was written to either pod's disk: the reports alone (outputs,
    // written where the migration runs: the pod's emptyDir).
    for dir in [first.path(), second.path()] {
        let files: Vec<_> = walk(dir).into_iter().filter(|p| !p.starts_with(dir.join("serviceaccount"))).collect();
        let report = |p: &std::path::PathBuf| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("report.") || name == "timeline.svg"
        };
        assert!(files.iter().all(report), "{files:?}");
    }
}

/// The rollback of an unfinished migration journaled in the cluster, found without its ID:
/// the forward migration killed with -9 during step 7, then `migrate --journal-in-cluster --to
/// OpenShiftSDN` from another directory finds it by its index entry, journals the rollback in
/// the cluster (`ID-rollback`), inherits the pools it left paused, marks it superseded and rolls
/// back to the end; `--cleanup --journal-in-cluster` then finds the rollback (the superseded
/// migration is over) and cleans up.
#[test]
fn an_unfinished_migration_in_the_cluster_is_rolled_back_from_another_directory_without_its_id() {
    let sim = Sim::in_process_with(1, 2, &["--openshift-version", "4.7.60"]);
    let id = "jobmig2-forward-1";
    let mut child = Killed(
        sim.fleetboot(&["migrate", "--journal-in-cluster", "--run-id", id, "--etcd-backup-confirmed", "--poll-interval", "300ms"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let reboot = JournalPlace::new("kube-system", &format!("{id}-reboot")).unwrap();
    wait_while_running(&mut child, "step 7's hand-overs", || dispatched(&sim, &reboot) >= 3);
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    assert!(sim.paused("worker") && sim.paused("master"), "killed with the pools paused");

    // The killed process's lease is still live: the admin who knows its machine is gone takes
    // it over.
    let rollback_args =
        ["--journal-in-cluster", "--to", "OpenShiftSDN", "--etcd-backup-confirmed", "--break-lock", "--poll-interval", "300ms"];
    let (back, _elsewhere) = migrate_elsewhere(&sim, &rollback_args);
    assert_eq!(back.code, 0, "{}", back.debug());
    assert!(
        back.stdout.contains("rolling back the unfinished migration cluster:kube-system/jobmig2-forward-1-migration"),
        "{}",
        back.debug()
    );
    assert_eq!(sim.network_type(), ("OpenShiftSDN".into(), "OpenShiftSDN".into()));
    assert!(!sim.paused("worker") && !sim.paused("master"), "the pools the killed migration paused were resumed");
    let forward = cluster_journal_lines(&sim, &JournalPlace::new("kube-system", &format!("{id}-migration")).unwrap());
    let superseded: Vec<_> = forward.iter().filter(|l| l["record"]["event"] == "superseded").collect();
    assert_eq!(superseded.len(), 1, "{forward:?}");
    assert_eq!(superseded[0]["record"]["by"], "cluster:kube-system/jobmig2-forward-1-rollback-migration");
    let rollback = cluster_journal_lines(&sim, &JournalPlace::new("kube-system", &format!("{id}-rollback-migration")).unwrap());
    assert!(
        rollback.iter().any(|l| l["record"]["event"] == "migration_started" && l["record"]["target"] == "OpenShiftSDN"),
        "{rollback:?}"
    );
    let inherited = rollback.iter().find(|l| l["record"]["event"] == "pools_inherited").expect("the paused pools inherited");
    assert_eq!(inherited["record"]["pools"], serde_json::json!(["master", "worker"]));
    let counts = cluster_dispatch_counts(&sim, &JournalPlace::new("kube-system", &format!("{id}-rollback-reboot")).unwrap());
    assert!(counts.len() == 3 && counts.values().all(|&n| n == 1), "the rollback's reboot run, in the cluster: {counts:?}");

    let (cleanup, _elsewhere) = migrate_elsewhere(&sim, &["--journal-in-cluster", "--cleanup", "--poll-interval", "300ms"]);
    assert_eq!(cleanup.code, 0, "{}", cleanup.debug());
    let rollback = cluster_journal_lines(&sim, &JournalPlace::new("kube-system", &format!("{id}-rollback-migration")).unwrap());
    assert!(rollback.iter().any(|l| l["record"]["event"] == "step_done" && l["record"]["step"] == "cleanup"), "{}", cleanup.debug());
    let (nothing, _elsewhere) = migrate_elsewhere(&sim, &["--journal-in-cluster", "--resume"]);
    assert_eq!(nothing.code, 2, "{}", nothing.debug());
    assert!(nothing.stderr.contains("no unfinished migration journaled in the cluster"), "{}", nothing.debug());
    // The finished rollback resumed by the killed migration's ID, with the default --to (a
    // resume goes on with the migration as it started): finished, nothing to do, nothing written.
    let (finished, _elsewhere) = migrate_elsewhere(&sim, &["--journal-in-cluster", "--resume", id]);
    assert_eq!(finished.code, 0, "{}", finished.debug());
    assert!(finished.stderr.contains("is already finished (step 11 done): nothing to do"), "{}", finished.debug());
    let after = cluster_journal_lines(&sim, &JournalPlace::new("kube-system", &format!("{id}-rollback-migration")).unwrap());
    assert_eq!(after.len(), rollback.len(), "nothing written to the finished rollback's journal");
}

/// Two unfinished migrations journaled in the cluster: one named by none is refused, listing
/// both; nothing is touched.
#[test]
fn two_unfinished_migrations_in_the_cluster_and_none_named_is_refused_listing_them() {
    use fleetboot::adapters::migration_journal::{ClusterStore, MigrationStore, unfinished_in_cluster};
    use fleetboot_core::migrate::Flow;
    use fleetboot_core::migrate::record::MigrationEntry;

    let sim = Sim::in_process(1, 1);
    let connection = sim.connection();
    let (client, config) = (&connection.client, &connection.config);
    for id in ["m-a", "m-b"] {
        let store = sim.block_on(ClusterStore::open(client, config, "kube-system", id, "ann@bastion pid 7")).unwrap();
        store
            .append(MigrationEntry::MigrationStarted {
                run_id: id.into(),
                target: "OVNKubernetes".into(),
                flow: Flow::Seed,
                version: "4.7.60".into(),
                failing_pods: Vec::new(),
                network_options: None,
                mtu: None,
                geneve_port: None,
                reboot_concurrency: None,
                cluster: None,
            })
            .unwrap();
    }
    // A journal with no record (a kill right after its creation) is no migration.
    drop(sim.block_on(ClusterStore::open(client, config, "kube-system", "m-empty", "ann@bastion pid 7")).unwrap());
    let found: Vec<String> = sim.block_on(unfinished_in_cluster(client, "kube-system")).unwrap().into_iter().map(|(id, _)| id).collect();
    assert_eq!(found, ["m-a", "m-b"]);
    let before = sim.network_type();
    for args in [&["--journal-in-cluster", "--etcd-backup-confirmed"][..], &["--journal-in-cluster", "--resume"]] {
        let (run, _elsewhere) = migrate_elsewhere(&sim, args);
        assert_eq!(run.code, 2, "{}", run.debug());
        assert!(
            run.stderr.contains("2 unfinished migrations are journaled in the cluster (kube-system): m-a (to OVNKubernetes), m-b (to OVNKubernetes); name one with --run-id ID"),
            "{}",
            run.debug()
        );
    }
    assert_eq!(sim.network_type(), before);
}
