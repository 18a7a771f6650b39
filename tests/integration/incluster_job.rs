//! `fleetboot job reboot`: the manifest applied with kubectl to the simulated cluster (RBAC
//! enforced), its roles the same as `fleetboot rbac` prints; then the Job's pod command run as
//! a process with the ServiceAccount's in-cluster credentials (a token from the TokenRequest
//! API, the CA from `kube-root-ca.crt`), killed with -9 and started again in another
//! directory: it finishes the same run, each node rebooted once, its own node last.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::Run;
use crate::common::pod::{apply, pod, service_account_dir, walk};
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
