//! A `fleetboot sim` process for tests, stopped by PID when dropped; or the same simulated
//! cluster started inside the test process (`Sim::in_process`, common/inproc.rs).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::fleetboot_bin;

/// The simulation's timings in tests (either backend): fast, and the same for every test.
pub(super) const FAST_TIMINGS: [&str; 8] =
    ["--reboot-delay", "1s", "--boot-time", "1s", "--notready-after", "300ms", "--kubelet-ready-after", "300ms"];

pub struct Sim {
    pub dir: tempfile::TempDir,
    pub api: String,
    pub(super) backend: Backend,
}

/// Where the simulated cluster runs: a `fleetboot sim` child, or this process (its runtime).
pub(super) enum Backend {
    Process(Child),
    InProcess(super::inproc::InProcess),
}

impl Sim {
    /// The machine-config daemon pod kubectl finds on `node` (its DaemonSet's label).
    pub fn daemon_pod(&self, node: &str) -> String {
        let selector = format!("spec.nodeName={node}");
        let args = ["-n", "openshift-machine-config-operator", "get", "pods", "-l", "k8s-app=machine-config-daemon"];
        let pod = self.kubectl_ok(&[&args[..], &["--field-selector", &selector, "-o", "jsonpath={.items[0].metadata.name}"]].concat());
        assert!(!pod.is_empty(), "no daemon pod on {node}");
        pod
    }

    /// `node`'s daemon pod deleted with kubectl (no exec into it any more).
    pub fn delete_daemon_pod(&self, node: &str) {
        let pod = self.daemon_pod(node);
        self.kubectl_ok(&["-n", "openshift-machine-config-operator", "delete", "pod", &pod]);
    }

    /// How many times each node's machine saw `event` ("reboot-requested", "up"), from the
    /// simulation's own history, by node name.
    pub fn history_counts(&self, event: &str) -> std::collections::BTreeMap<String, usize> {
        let nodes: serde_json::Value = serde_json::from_str(&self.control("GET", "nodes", "")).unwrap();
        nodes
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                let count = n["history"].as_array().unwrap().iter().filter(|e| e[1] == event).count();
                (n["name"].as_str().unwrap().to_owned(), count)
            })
            .collect()
    }

    /// worker-0 holds default/app-a (labels app=a), whose PodDisruptionBudget allows no
    /// disruption (its status set as the disruption controller would).
    pub fn pin_app_a_under_a_zero_disruption_budget(&self) {
        let manifest = self.path("app.json");
        std::fs::write(
            &manifest,
            r#"{"apiVersion":"v1","kind":"List","items":[
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"app-a","namespace":"default","labels":{"app":"a"}},
             "spec":{"nodeName":"worker-0","containers":[{"name":"a","image":"example/a"}]},"status":{"phase":"Running"}},
            {"apiVersion":"policy/v1","kind":"PodDisruptionBudget","metadata":{"name":"app-a","namespace":"default"},
             "spec":{"minAvailable":1,"selector":{"matchLabels":{"app":"a"}}}}]}"#,
        )
        .unwrap();
        self.kubectl_ok(&["create", "--validate=false", "-f", manifest.to_str().unwrap()]);
        self.set_app_a_disruptions_allowed(0);
    }

    /// app-a's budget's status as the disruption controller would write it: `allowed`
    /// disruptions, for generation 1.
    pub fn set_app_a_disruptions_allowed(&self, allowed: u32) {
        let status = format!(r#"{{"status":{{"disruptionsAllowed":{allowed},"observedGeneration":1}}}}"#);
        self.kubectl_ok(&["-n", "default", "patch", "pdb", "app-a", "--subresource=status", "--type", "merge", "-p", &status]);
    }

    /// Starts `fleetboot sim` with fast timings; returns once it printed its ready line.
    pub fn start(masters: usize, workers: usize) -> Sim {
        Sim::start_with(masters, workers, &[])
    }

    /// With extra `fleetboot sim` flags (`--no-ssh NODE`, `--fault NODE=FAULT`, ...).
    pub fn start_with(masters: usize, workers: usize, extra: &[&str]) -> Sim {
        let dir = tempfile::Builder::new().prefix("fleetboot-sim-").tempdir().unwrap();
        let mut child = Command::new(fleetboot_bin())
            .args(["sim", "--dir", dir.path().to_str().unwrap(), "--masters", &masters.to_string(), "--workers", &workers.to_string()])
            .args(FAST_TIMINGS)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        assert!(line.contains("ready"), "fleetboot sim did not get ready: {line:?}");
        let api = line.split("API ").nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
        Sim { dir, api, backend: Backend::Process(child) }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn config(&self) -> PathBuf {
        self.path("fleetboot.toml")
    }

    /// Debian's kubectl (or the image's) against the simulation.
    pub fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", self.path("kubeconfig"))
            .env("HOME", self.dir.path())
            .output()
            .expect("kubectl is installed (scripts/test.sh installs kubernetes-client when missing)");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.kubectl(args);
        assert!(ok, "kubectl {args:?} failed: {err}");
        out
    }

    /// `Network.config/cluster` (spec.networkType, status.networkType).
    pub fn network_type(&self) -> (String, String) {
        let read = |path: &str| self.kubectl_ok(&["get", "network.config.openshift.io", "cluster", "-o", &format!("jsonpath={path}")]);
        (read("{.spec.networkType}").trim().to_owned(), read("{.status.networkType}").trim().to_owned())
    }

    /// Whether the pool is paused.
    pub fn paused(&self, pool: &str) -> bool {
        self.kubectl_ok(&["get", "mcp", pool, "-o", "jsonpath={.spec.paused}"]).trim() == "true"
    }

    /// `kubectl patch KIND NAME --type merge -p PATCH`.
    pub fn merge(&self, kind: &str, name: &str, patch: &str) {
        self.kubectl_ok(&["patch", kind, name, "--type", "merge", "-p", patch]);
    }

    /// The migrations' directories under the state directory, oldest first.
    pub fn migration_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> =
            std::fs::read_dir(self.path("state/migrations")).map(|d| d.map(|e| e.unwrap().path()).collect()).unwrap_or_default();
        dirs.sort();
        dirs
    }

    /// Every change the simulated network operator refused, with its message.
    pub fn refusals(&self) -> Vec<String> {
        serde_json::from_str(&self.control("GET", "operators/refusals", "")).unwrap()
    }

    /// A request to the simulation's fault-injection endpoint.
    pub fn control(&self, method: &str, path: &str, body: &str) -> String {
        let (code, body) = self.raw(method, &format!("/sim/v1/{path}"), "application/json", body.as_bytes());
        assert_eq!(code, 200, "{body}");
        body
    }

    /// The one migration directory under the simulation's state directory.
    pub fn migration_dir(&self) -> PathBuf {
        let dirs: Vec<PathBuf> = std::fs::read_dir(self.path("state/migrations")).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(dirs.len(), 1, "{dirs:?}");
        dirs[0].clone()
    }

    /// Waits (a minute at most) until the migration journal holds `marker`; its path. With a
    /// `running` migration, it must not end before.
    pub fn wait_for_migration_journal(&self, marker: &str, mut running: Option<&mut std::process::Child>) -> PathBuf {
        let start = std::time::Instant::now();
        loop {
            let journal = std::fs::read_dir(self.path("state/migrations"))
                .ok()
                .and_then(|mut d| d.next())
                .map(|e| e.unwrap().path().join("migration.jsonl"));
            if let Some(journal) = journal.filter(|j| std::fs::read_to_string(j).unwrap_or_default().contains(marker)) {
                return journal;
            }
            assert!(start.elapsed() < std::time::Duration::from_secs(60), "{marker} never appeared");
            if let Some(child) = running.as_deref_mut() {
                assert!(child.try_wait().unwrap().is_none(), "migrate ended before {marker}");
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// A pod no reboot mends and no drain removes (a DaemonSet's), `broken` in `default` on
    /// `node`, failing from now on (pods failing before a migration started are not counted).
    pub fn fail_daemonset_pod_on(&self, node: &str) {
        self.fail_daemonset_pod("broken", node);
    }

    /// [`Sim::fail_daemonset_pod_on`] with the pod named `name`.
    pub fn fail_daemonset_pod(&self, name: &str, node: &str) {
        let pod = self.path(&format!("failed-{name}.json"));
        std::fs::write(
            &pod,
            format!(
                r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","namespace":"default",
        "ownerReferences":[{{"apiVersion":"apps/v1","kind":"DaemonSet","name":"agent","uid":"00000000-0000-0000-0000-0000000000a1","controller":true}}]}},
        "spec":{{"nodeName":"{node}","containers":[{{"name":"a","image":"example/a"}}]}},"status":{{"phase":"Failed"}}}}"#
            ),
        )
        .unwrap();
        self.kubectl_ok(&["create", "--validate=false", "-f", pod.to_str().unwrap()]);
        // As on a real API server, a create ignores status: the kubelet's report comes separately.
        self.kubectl_ok(&["patch", "pod", name, "--subresource=status", "--type", "merge", "-p", r#"{"status":{"phase":"Failed"}}"#]);
    }

    /// The journals of the migration's `--reboot-error-nodes` reruns.
    pub fn reboot_error_nodes_journals(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.migration_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains("reboot-error-nodes"))
            .collect()
    }

    /// One HTTP request to the API server, as any client could send it: (status code, body).
    pub fn raw(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
        let host = self.api.split("://").last().unwrap_or_default();
        let mut stream = std::net::TcpStream::connect(host).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        // A server that refuses a body early may close before all of it is written.
        let _ = stream.write_all(body);
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let response = String::from_utf8_lossy(&response).into_owned();
        let code = response.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
        (code, response.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned())
    }

    /// (name, reboot-requested ms, up ms) of every node that rebooted, from the simulation's own
    /// node history.
    pub fn reboot_intervals(&self) -> Vec<(String, u64, u64)> {
        let nodes: serde_json::Value = serde_json::from_str(&self.control("GET", "nodes", "")).unwrap();
        nodes
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|n| {
                let history = n["history"].as_array().unwrap();
                let at = |what: &str| history.iter().find(|e| e[1] == what).map(|e| e[0].as_u64().unwrap());
                Some((n["name"].as_str().unwrap().to_owned(), at("reboot-requested")?, at("up")?))
            })
            .collect()
    }

    pub fn fleetboot(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(fleetboot_bin());
        cmd.arg("--config").arg(self.config()).args(args).env("HOME", self.dir.path()).env_remove("SSH_AUTH_SOCK");
        cmd
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        match &mut self.backend {
            Backend::Process(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Backend::InProcess(cluster) => cluster.stop(),
        }
    }
}

/// `kubectl get KIND -w -o jsonpath=TEMPLATE`, every line it prints kept; killed by PID when
/// dropped. An independent judge of what the simulation's objects went through.
pub struct KubectlWatch {
    child: Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl KubectlWatch {
    pub fn start(sim: &Sim, kind: &str, template: &str) -> KubectlWatch {
        KubectlWatch::start_with(sim, &[kind], template)
    }

    /// With more arguments than the kind (`-A`, `-n NS`).
    pub fn start_with(sim: &Sim, args: &[&str], template: &str) -> KubectlWatch {
        let mut child = Command::new("kubectl")
            .arg("get")
            .args(args)
            .args(["-w", "-o", &format!("jsonpath={template}{{\"\\n\"}}")])
            .env("KUBECONFIG", sim.path("kubeconfig"))
            .env("HOME", sim.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        KubectlWatch { child, lines }
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for KubectlWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One kubeconfig naming both simulations, `a` current, as an admin's often does.
pub fn two_cluster_kubeconfig(a: &Sim, b: &Sim, path: &std::path::Path) {
    let cluster = |name: &str, server: &str| format!("- name: {name}\n  cluster:\n    server: {server}\n");
    let context = |name: &str| format!("- name: {name}\n  context:\n    cluster: {name}\n    user: admin\n");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n{}{}contexts:\n{}{}current-context: a\nusers:\n- name: admin\n  user: {{}}\n",
        cluster("a", &a.api),
        cluster("b", &b.api),
        context("a"),
        context("b"),
    );
    std::fs::write(path, text).unwrap();
}

/// Every node's boot ID, in the API's order.
pub fn boot_ids(sim: &Sim) -> Vec<String> {
    sim.kubectl_ok(&["get", "nodes", "-o", "jsonpath={.items[*].status.nodeInfo.bootID}"]).split_whitespace().map(str::to_owned).collect()
}

/// Each machine's number of boots since the simulation started (its own history).
pub fn boot_counts(sim: &Sim) -> Vec<(String, usize)> {
    let nodes: serde_json::Value = serde_json::from_str(&sim.control("GET", "nodes", "")).unwrap();
    nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["name"].as_str().unwrap().to_owned(), n["history"].as_array().unwrap().iter().filter(|e| e[1] == "up").count()))
        .collect()
}
