//! `fleetboot job reboot`: the manifest applied with kubectl to the simulated cluster (RBAC
//! enforced), its roles the same as `fleetboot rbac` prints; then the Job's pod command run as
//! a process with the ServiceAccount's in-cluster credentials (a token from the TokenRequest
//! API, the CA from `kube-root-ca.crt`), killed with -9 and started again in another
//! directory: it finishes the same run, each node rebooted once, its own node last.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::Run;
use crate::common::sim::{Sim, boot_counts};
use fleetboot::adapters::kube::journal_store::JournalPlace;

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const JOB_FLAGS: [&str; 8] = ["--all", "--transport", "kube", "--concurrency", "1", "--poll-interval", "200ms", "--lease-duration=3s"];

/// `fleetboot job reboot JOB_FLAGS -o json`: the objects.
fn job_objects() -> Vec<Value> {
    let out = Command::new(crate::common::fleetboot_bin())
        .args(["job", "reboot", "--run-id", "job-test-1", "-o", "json"])
        .args(JOB_FLAGS)
        .output()
        .unwrap();
    let run = Run::from(out);
    assert_eq!(run.code, 0, "{}", run.debug());
    let list: Value = serde_json::from_str(&run.stdout).unwrap();
    list["items"].as_array().unwrap().clone()
}

fn apply(sim: &Sim, objects: &[Value]) {
    let file = sim.path("job.json");
    std::fs::write(&file, serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects}).to_string()).unwrap();
    let applied = sim.kubectl_ok(&["apply", "--validate=false", "-f", file.to_str().unwrap()]);
    assert_eq!(applied.lines().count(), objects.len(), "{applied}");
}

fn is_rbac(object: &Value) -> bool {
    matches!(object["kind"].as_str(), Some("ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding"))
}

#[test]
fn the_job_manifest_applied_with_kubectl_is_accepted_and_its_roles_are_fleetboot_rbacs() {
    let sim = Sim::start_with(1, 2, &["--rbac"]);
    let objects = job_objects();
    // Also as YAML, as an admin pipes it: kubectl takes it.
    let yaml =
        Command::new(crate::common::fleetboot_bin()).args(["job", "reboot", "--run-id", "job-test-1"]).args(JOB_FLAGS).output().unwrap();
    let yaml_file = sim.path("job.yaml");
    std::fs::write(&yaml_file, &yaml.stdout).unwrap();
    let (ok, out, err) = sim.kubectl(&["apply", "--validate=false", "--dry-run=client", "-f", yaml_file.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    apply(&sim, &objects);
    for (kind, name) in [("namespace", "fleetboot"), ("serviceaccount", "fleetboot"), ("job", "fleetboot-reboot-job-test-1")] {
        let found = sim.kubectl_ok(&["-n", "fleetboot", "get", kind, name, "-o", "name"]);
        assert!(found.contains(name), "{kind} {name}: {found}");
    }
    let job = sim.kubectl_ok(&["-n", "fleetboot", "get", "job", "fleetboot-reboot-job-test-1", "-o", "json"]);
    let job: Value = serde_json::from_str(&job).unwrap();
    assert_eq!(job["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["type"], "DisruptionTarget");
    assert_eq!(job["spec"]["template"]["spec"]["serviceAccountName"], "fleetboot");
    // The roles and bindings: exactly what `fleetboot rbac` prints for this run's mode.
    let out = Command::new(crate::common::fleetboot_bin())
        .args(["rbac", "kube-transport", "--journal-in-cluster", "--service-account", "fleetboot:fleetboot", "-o", "json"])
        .output()
        .unwrap();
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let job_rbac: Vec<&Value> = objects.iter().filter(|o| is_rbac(o)).collect();
    let rbac: Vec<&Value> = printed["items"].as_array().unwrap().iter().collect();
    assert_eq!(job_rbac, rbac);
    assert!(rbac.iter().any(|o| o["rules"].to_string().contains("configmaps")), "the journal's ConfigMaps are granted");
}

/// A pod's ServiceAccount directory: a token from the TokenRequest API and the CA the root CA
/// publisher put in the namespace.
fn service_account_dir(sim: &Sim, dir: &Path) {
    let token = sim.kubectl_ok(&["-n", "fleetboot", "create", "token", "fleetboot"]);
    let started = Instant::now();
    let ca = loop {
        let (ok, ca, _) = sim.kubectl(&["-n", "fleetboot", "get", "configmap", "kube-root-ca.crt", "-o", "jsonpath={.data.ca\\.crt}"]);
        if ok && ca.contains("BEGIN CERTIFICATE") {
            break ca;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no kube-root-ca.crt in the namespace");
        std::thread::sleep(Duration::from_millis(50));
    };
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("token"), token.trim()).unwrap();
    std::fs::write(dir.join("ca.crt"), ca).unwrap();
    std::fs::write(dir.join("namespace"), "fleetboot").unwrap();
}

/// The Job's pod command, run as a process in `dir` with in-cluster credentials only, on
/// node `node`.
fn pod(sim: &Sim, job: &Value, dir: &Path, node: &str) -> Command {
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["command"][0], "fleetboot");
    let args: Vec<&str> = container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let port = sim.api.rsplit(':').next().unwrap();
    let mut cmd = Command::new(crate::common::fleetboot_bin());
    cmd.args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", port)
        .env("FLEETBOOT_SERVICEACCOUNT_DIR", dir.join("serviceaccount"))
        .env("FLEETBOOT_NODE_NAME", node)
        .env_remove("KUBECONFIG")
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null());
    cmd
}

#[test]
fn the_jobs_pod_killed_and_started_again_elsewhere_finishes_the_run_each_node_once_its_own_node_last() {
    let sim = Sim::start_with(1, 2, &["--rbac"]);
    let objects = job_objects();
    apply(&sim, &objects);
    let job = objects.iter().find(|o| o["kind"] == "Job").unwrap();
    let place = JournalPlace::new("kube-system", "job-test-1").unwrap();

    let first = tempfile::tempdir().unwrap();
    service_account_dir(&sim, &first.path().join("serviceaccount"));
    let child = Killed(pod(&sim, job, first.path(), "worker-0").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    let started = Instant::now();
    loop {
        let (_, data, _) =
            sim.kubectl(&["-n", "kube-system", "get", "configmap", &place.chunk_name(0), "-o", "jsonpath={.data.records\\.jsonl}"]);
        if data.contains(r#""event":"dispatching""#) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the pod never journaled a reboot in the cluster: {data}");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(child);

    // The replacement pod: another directory, its own credentials, nothing else.
    let second = tempfile::tempdir().unwrap();
    service_account_dir(&sim, &second.path().join("serviceaccount"));
    let run = Run::from(pod(&sim, job, second.path(), "worker-0").output().unwrap());
    assert_eq!(run.code, 0, "{}", run.debug());
    assert_eq!(run.summary()["run_id"], "job-test-1", "the same run, resumed: {}", run.debug());
    for (node, boots) in boot_counts(&sim) {
        assert_eq!(boots, 1, "{node} booted {boots} times: {}", run.debug());
    }
    // Its own node went last of all (the simulation's history of reboot requests).
    let mut requests = sim.reboot_intervals();
    requests.sort_by_key(|(_, requested, _)| *requested);
    assert_eq!(requests.last().map(|(name, _, _)| name.as_str()), Some("worker-0"), "{requests:?}");
    // Nothing was written locally by either pod.
    for dir in [first.path(), second.path()] {
        let files: Vec<_> = walk(dir).into_iter().filter(|p| !p.starts_with(dir.join("serviceaccount"))).collect();
        assert!(files.is_empty(), "{files:?}");
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        if entry.path().is_dir() {
            found.extend(walk(&entry.path()));
        } else {
            found.push(entry.path());
        }
    }
    found
}
