//! A Job's pod command run as a process with only its ServiceAccount's in-cluster credentials
//! (what `fleetboot job reboot|migrate` prints, tested without a kubelet): a token from the
//! TokenRequest API, the CA the root CA publisher put in the namespace, the API server's
//! service in the environment.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::sim::Sim;

/// A pod's ServiceAccount directory in `dir`: a token of ServiceAccount `fleetboot/fleetboot`
/// from the TokenRequest API and the CA the root CA publisher put in the namespace.
pub fn service_account_dir(sim: &Sim, dir: &Path) {
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

/// The Job's pod command, run as a process in `dir` with in-cluster credentials only (those
/// [`service_account_dir`] put in `dir/serviceaccount`), on node `node`.
pub fn pod(sim: &Sim, job: &Value, dir: &Path, node: &str) -> Command {
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["command"][0], "fleetboot");
    let args: Vec<&str> = container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let port = sim.api.rsplit(':').next().unwrap();
    let mut cmd = Command::new(super::fleetboot_bin());
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

/// Applies `objects` (a Job's manifest) with kubectl, as one List; each is accepted.
pub fn apply(sim: &Sim, objects: &[Value]) {
    let file = sim.path("job.json");
    std::fs::write(&file, serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects}).to_string()).unwrap();
    let applied = sim.kubectl_ok(&["apply", "--validate=false", "-f", file.to_str().unwrap()]);
    assert_eq!(applied.lines().count(), objects.len(), "{applied}");
}

/// Every file under `dir`.
pub fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
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
