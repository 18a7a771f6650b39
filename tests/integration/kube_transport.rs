//! Issue 23: `--transport kube`, rebooting through the cluster API (exec into the node's
//! machine-config daemon pod, `chroot /rootfs`), judged by the simulation's node history and
//! the Node objects: no SSH key, no SSH server; a forbidden exec touches nothing; a killed run
//! resumed reboots no node twice.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::common::sim::Sim;
use crate::common::{Run, dispatch_counts, dispatches, wait_for_dispatches};

const MCO: &str = "openshift-machine-config-operator";

/// The simulation's own history of each node.
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

fn count(events: &[String], what: &str) -> usize {
    events.iter().filter(|e| *e == what).count()
}

/// A cluster none of whose nodes serves SSH.
fn no_ssh_cluster(masters: usize, workers: usize) -> Sim {
    let names: Vec<String> = (0..masters).map(|i| format!("master-{i}")).chain((0..workers).map(|i| format!("worker-{i}"))).collect();
    let mut extra = Vec::new();
    for name in &names {
        extra.extend(["--no-ssh", name.as_str()]);
    }
    let sim = Sim::start_with(masters, workers, &extra);
    // No SSH identity either: the kube transport must not need one.
    std::fs::remove_file(sim.path("id_ed25519")).unwrap();
    sim
}

/// A TCP proxy in front of the API that counts what passes: HTTP requests (request lines from
/// the client) and bytes both ways. The cost of a run as the API server sees it.
struct CountingProxy {
    addr: String,
    requests: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

impl CountingProxy {
    fn start(upstream: &str) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let (requests, bytes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (r, b) = (requests.clone(), bytes.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&upstream) else { continue };
                let pump = |mut from: TcpStream, mut to: TcpStream, requests: Option<Arc<AtomicU64>>, bytes: Arc<AtomicU64>| {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                            bytes.fetch_add(n as u64, Ordering::Relaxed);
                            if let Some(requests) = &requests {
                                let text = String::from_utf8_lossy(&buf[..n]);
                                requests.fetch_add(text.matches(" HTTP/1.1\r\n").count() as u64, Ordering::Relaxed);
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                };
                pump(client.try_clone().unwrap(), server.try_clone().unwrap(), Some(r.clone()), b.clone());
                pump(server, client, None, b.clone());
            }
        });
        CountingProxy { addr, requests, bytes }
    }

    fn kubeconfig(&self, sim: &Sim, name: &str) -> String {
        let original = std::fs::read_to_string(sim.path("kubeconfig")).unwrap();
        let path = sim.path(name);
        std::fs::write(&path, original.replace(&sim.api, &self.addr)).unwrap();
        path.to_str().unwrap().to_owned()
    }

    fn take(&self) -> (u64, u64) {
        (self.requests.swap(0, Ordering::Relaxed), self.bytes.swap(0, Ordering::Relaxed))
    }
}

#[test]
fn a_cluster_without_ssh_is_rebooted_entirely_through_the_api() {
    let sim = no_ssh_cluster(1, 3);
    let before = sim.kubectl_ok(&["get", "nodes", "-o", "jsonpath={range .items[*]}{.status.nodeInfo.bootID}{\"\\n\"}{end}"]);
    let proxy = CountingProxy::start(&sim.api);
    let kubeconfig = proxy.kubeconfig(&sim, "kubeconfig-counted");
    let run: Run = sim
        .fleetboot(&[
            "reboot",
            "--transport",
            "kube",
            "--kubeconfig",
            &kubeconfig,
            "--concurrency",
            "2",
            "--poll-interval",
            "200ms",
            "--output",
            "json",
        ])
        .output()
        .unwrap()
        .into();
    assert_eq!(run.code, 0, "{}", run.debug());
    let (requests, bytes) = proxy.take();
    for (name, (outcome, error)) in run.outcomes() {
        assert_eq!(outcome, "rebooted", "{name}: {error}");
    }
    // Each node booted exactly once, by one reboot request (the documents' `shutdown -r +1`).
    for (name, events) in histories(&sim) {
        assert_eq!(count(&events, "reboot-requested"), 1, "{name}: {events:?}");
        assert_eq!(count(&events, "down"), 1, "{name}: {events:?}");
        assert_eq!(count(&events, "ready"), 1, "{name}: {events:?}");
    }
    let counts = dispatch_counts(&run.journal());
    assert_eq!(counts.values().copied().collect::<Vec<_>>(), [1, 1, 1, 1], "{counts:?}");
    let journal = std::fs::read_to_string(run.journal()).unwrap();
    assert!(journal.contains("shutdown -r +1") && journal.contains("\"kube\""), "the journal names the transport and command");
    // The API agrees: every boot ID is new.
    let after = sim.kubectl_ok(&["get", "nodes", "-o", "jsonpath={range .items[*]}{.status.nodeInfo.bootID}{\"\\n\"}{end}"]);
    for (b, a) in before.lines().zip(after.lines()) {
        assert_ne!(b, a, "{before}\n{after}");
    }

    // The cost, against the same run over SSH... which this cluster cannot take: a dry-run's
    // discovery is what every cluster run pays; the rest is the transport's and the proof's.
    let dry: Run = sim.fleetboot(&["reboot", "--transport", "kube", "--kubeconfig", &kubeconfig, "--dry-run"]).output().unwrap().into();
    assert_eq!(dry.code, 0, "{}", dry.debug());
    let (dry_requests, dry_bytes) = proxy.take();
    eprintln!(
        "COST kube transport, 4 nodes: {requests} API requests, {bytes} bytes in all; a dry run (discovery only): {dry_requests} requests, {dry_bytes} bytes"
    );
    assert!(requests > dry_requests, "the run did more than discover");
}

#[test]
fn exec_forbidden_is_refused_before_anything_is_touched() {
    let sim = no_ssh_cluster(0, 2);
    sim.control("POST", "exec-forbidden", &format!(r#"{{"namespace":"{MCO}","user":"system:serviceaccount:ops:rebooter"}}"#));
    let run: Run = sim.fleetboot(&["reboot", "--transport", "kube", "--drain", "--poll-interval", "200ms"]).output().unwrap().into();
    assert_eq!(run.code, 2, "{}", run.debug());
    assert!(
        run.stderr.contains(r#"User "system:serviceaccount:ops:rebooter" cannot create resource "pods/exec" in API group "" in the namespace "openshift-machine-config-operator""#)
            && run.stderr.contains("nothing was touched")
            // A 403 is a missing permission, not bad credentials.
            && run.stderr.contains("forbidden: the cluster API refused exec on")
            && !run.stderr.contains("authentication failed"),
        "{}",
        run.debug()
    );
    for (name, events) in histories(&sim) {
        assert!(events.is_empty(), "{name}: {events:?}");
    }
    assert!(!sim.kubectl_ok(&["get", "nodes"]).contains("SchedulingDisabled"), "no node cordoned");
    assert!(!sim.kubectl(&["get", "lease", "fleetboot", "-n", "kube-system"]).0, "no lease taken");
    let state = sim.path("state");
    let journals: Vec<_> = walk(&state).into_iter().filter(|p| p.extension().is_some_and(|e| e == "jsonl")).collect();
    assert!(journals.is_empty(), "no journal: {journals:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries.flatten().flat_map(|e| if e.path().is_dir() { walk(&e.path()) } else { vec![e.path()] }).collect()
}

#[test]
fn a_kube_run_killed_and_resumed_reboots_no_node_twice() {
    let sim = no_ssh_cluster(0, 3);
    let journal = sim.path("run.jsonl");
    let args = ["reboot", "--transport", "kube", "--concurrency", "1", "--poll-interval", "200ms", "--journal", journal.to_str().unwrap()];
    let mut child = sim.fleetboot(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for_dispatches(&journal, 1, std::time::Duration::from_secs(30));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // The resume keeps the journaled transport: no SSH anywhere, so only the API can do it.
    let resumed: Run = sim.fleetboot(&["reboot", "--resume", journal.to_str().unwrap(), "--output", "json"]).output().unwrap().into();
    assert_eq!(resumed.code, 0, "{}", resumed.debug());
    for (name, (outcome, error)) in resumed.outcomes() {
        assert_eq!(outcome, "rebooted", "{name}: {error}");
    }
    for (name, events) in histories(&sim) {
        assert_eq!(count(&events, "reboot-requested"), 1, "{name} rebooted once: {events:?}");
    }
    assert_eq!(dispatch_counts(&journal).values().copied().collect::<Vec<_>>(), [1, 1, 1]);
}

/// The journal's records of one kind for a host, as JSON.
fn records(journal: &std::path::Path, event: &str, host: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(journal)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["event"] == event && r["host"] == host)
        .collect()
}

#[test]
fn auto_falls_from_ssh_to_the_api_to_the_bmc_on_the_right_nodes_each_reason_journaled() {
    // worker-0 answers SSH; worker-1 has no SSH; worker-2 has neither SSH nor a daemon pod.
    let sim = Sim::start_with(0, 3, &["--no-ssh", "worker-1", "--no-ssh", "worker-2"]);
    sim.delete_daemon_pod("worker-2");
    // Nor may its debug pod (the fallback where no daemon pod runs) be exec'd into.
    sim.control("POST", "exec-forbidden", r#"{"namespace":"fleetboot-debug","user":"system:serviceaccount:ops:rebooter"}"#);
    let run: Run = sim
        .fleetboot(&["reboot", "--transport", "auto", "--poll-interval", "200ms", "--connect-timeout", "1s", "--output", "json"])
        .output()
        .unwrap()
        .into();
    assert_eq!(run.code, 0, "{}", run.debug());
    for (name, (outcome, error)) in run.outcomes() {
        assert_eq!(outcome, "rebooted", "{name}: {error}");
    }
    let journal = run.journal();
    assert!(records(&journal, "transport_chosen", "worker-0").is_empty() && records(&journal, "falling_back", "worker-0").is_empty());
    let chosen = records(&journal, "transport_chosen", "worker-1");
    assert_eq!(chosen.len(), 1, "{chosen:?}");
    assert_eq!(chosen[0]["transport"], "kube");
    assert!(chosen[0]["reason"].as_str().unwrap().contains("SSH cannot reach it"), "{chosen:?}");
    let fell = records(&journal, "falling_back", "worker-2");
    assert_eq!(fell.len(), 1, "{fell:?}");
    let reason = fell[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("the cluster API's exec neither")
            && reason.contains(r#"forbidden: the cluster API refused exec on worker-2: pods "fleetboot-debug-worker-2-"#),
        "{reason}"
    );
    // What each node saw: an SSH or exec reboot request on the first two, a BMC reset on the last.
    let histories = histories(&sim);
    let of = |name: &str| histories.iter().find(|(n, _)| n == name).unwrap().1.clone();
    assert_eq!(count(&of("worker-0"), "reboot-requested"), 1, "{:?}", of("worker-0"));
    assert_eq!(count(&of("worker-1"), "reboot-requested"), 1, "{:?}", of("worker-1"));
    // The BMC's orderly restart (the simulated node notes its own shutdown after the reset).
    let last = of("worker-2");
    assert_eq!(last.iter().filter(|e| e.starts_with("bmc-reset")).count(), 1, "{last:?}");
    assert_eq!(last.iter().position(|e| e.starts_with("bmc-reset")), Some(1), "{last:?}");
    assert_eq!(count(&last, "reboot-requested"), 1, "{last:?}");
    for name in ["worker-0", "worker-1"] {
        assert!(!of(name).iter().any(|e| e.starts_with("bmc-")), "{name}: {:?}", of(name));
    }
}

/// The API's cost of the kube transport, against SSH on the same cluster: requests and bytes
/// through a counting proxy in front of the API, and the simulation's own exec counters.
#[test]
fn the_api_cost_of_a_reboot_through_the_kube_transport_against_ssh() {
    const NODES: u64 = 4;
    let sim = Sim::start(1, 3);
    let proxy = CountingProxy::start(&sim.api);
    let kubeconfig = proxy.kubeconfig(&sim, "kubeconfig-counted");
    let exec_counters = || -> (u64, u64) {
        let c: serde_json::Value = serde_json::from_str(&sim.control("GET", "exec", "")).unwrap();
        (c["requests"].as_u64().unwrap(), c["streamBytes"].as_u64().unwrap())
    };
    let mut figures = Vec::new();
    for transport in ["ssh", "kube"] {
        let before = exec_counters();
        let args = [
            "reboot",
            "--transport",
            transport,
            "--kubeconfig",
            &kubeconfig,
            "--concurrency",
            "1",
            "--poll-interval",
            "1s",
            "--output",
            "json",
        ];
        let run: Run = sim.fleetboot(&args).output().unwrap().into();
        assert_eq!(run.code, 0, "{transport}: {}", run.debug());
        let (requests, bytes) = proxy.take();
        let after = exec_counters();
        figures.push((transport, requests, bytes, after.0 - before.0, after.1 - before.1));
    }
    let (_, ssh_requests, ssh_bytes, ssh_execs, _) = figures[0];
    let (_, kube_requests, kube_bytes, kube_execs, kube_stream) = figures[1];
    assert_eq!(ssh_execs, 0, "SSH runs exec nothing through the API");
    // At least the boot ID before, the reboot, and the boot ID after, per node.
    assert!(kube_execs >= 3 * NODES, "{figures:?}");
    eprintln!(
        "COST per rebooted node (4 nodes, one at a time, 1s polls): ssh {} requests {} bytes; kube {} requests {} bytes ({} execs, {} stream bytes); kube - ssh: {:+} requests {:+} bytes",
        ssh_requests / NODES,
        ssh_bytes / NODES,
        kube_requests / NODES,
        kube_bytes / NODES,
        kube_execs as f64 / NODES as f64,
        kube_stream / NODES,
        (kube_requests as i64 - ssh_requests as i64) / NODES as i64,
        (kube_bytes as i64 - ssh_bytes as i64) / NODES as i64,
    );
}

#[test]
fn an_exec_stream_cut_after_the_reboot_command_started_counts_as_delivered() {
    let sim = no_ssh_cluster(0, 2);
    sim.control("POST", "exec-drop", r#"{"commands": ["shutdown -r"]}"#);
    let run: Run =
        sim.fleetboot(&["reboot", "--transport", "kube", "--poll-interval", "200ms", "--output", "json"]).output().unwrap().into();
    assert_eq!(run.code, 0, "{}", run.debug());
    for node in ["worker-0", "worker-1"] {
        let dispatched = records(&run.journal(), "dispatched", node);
        assert_eq!(dispatched.len(), 1, "{dispatched:?}");
        assert_eq!(dispatched[0]["delivery"], "connection_dropped", "{dispatched:?}");
    }
    for (name, events) in histories(&sim) {
        assert_eq!(count(&events, "reboot-requested"), 1, "{name}: sent once, never again: {events:?}");
        assert_eq!(count(&events, "ready"), 1, "{name}: {events:?}");
    }
}

/// From Kubernetes 1.30 a failure after the stream opened comes as a `Failure` status with no
/// exit code: the reboot command may have run, so it is journaled as sent (no answer) and never
/// sent again, by this run or a resume.
#[test]
fn a_failure_status_after_the_stream_opened_counts_as_sent_never_as_not_sent() {
    let sim = no_ssh_cluster(0, 2);
    sim.control("POST", "exec-drop", r#"{"commands": ["shutdown -r"], "status": "InternalError"}"#);
    let run: Run =
        sim.fleetboot(&["reboot", "--transport", "kube", "--poll-interval", "200ms", "--output", "json"]).output().unwrap().into();
    assert_eq!(run.code, 0, "{}", run.debug());
    for node in ["worker-0", "worker-1"] {
        let dispatched = records(&run.journal(), "dispatched", node);
        assert_eq!(dispatched.len(), 1, "{dispatched:?}");
        assert_eq!(dispatched[0]["delivery"], "no_answer", "{dispatched:?}");
    }
    for (name, events) in histories(&sim) {
        assert_eq!(count(&events, "reboot-requested"), 1, "{name}: sent once, never again: {events:?}");
        assert_eq!(count(&events, "ready"), 1, "{name}: {events:?}");
    }
}

#[test]
fn the_migrations_reboot_step_goes_through_the_api_with_transport_kube() {
    let sim = no_ssh_cluster(1, 2);
    let run: Run = sim
        .fleetboot(&["migrate", "--etcd-backup-confirmed", "--transport", "kube", "--poll-interval", "300ms", "--output", "plain"])
        .output()
        .unwrap()
        .into();
    assert_eq!(run.code, 0, "{}", run.debug());
    assert_eq!(sim.network_type(), ("OVNKubernetes".into(), "OVNKubernetes".into()));
    let journal = sim.migration_dir().join("reboot.jsonl");
    let counts = dispatch_counts(&journal);
    assert_eq!(counts.values().copied().collect::<Vec<_>>(), [1, 1, 1], "step 7 rebooted each node once: {counts:?}");
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(text.contains("shutdown -r +1"), "the documents' command through the API");
    // The simulated MCO reboots each node once for its own rollout; step 7 once more, by exec
    // (no node has SSH): at least the boot ID before, the reboot and the boot ID after each.
    let execs: serde_json::Value = serde_json::from_str(&sim.control("GET", "exec", "")).unwrap();
    assert!(execs["requests"].as_u64().unwrap() >= 9, "{execs}");
    for (name, events) in histories(&sim) {
        assert_eq!(count(&events, "reboot-requested"), 2, "{name}: the MCO's and step 7's: {events:?}");
    }
}

#[test]
fn fleetboot_exec_runs_a_command_on_every_node_through_the_api() {
    let sim = no_ssh_cluster(1, 2);
    let run: Run = sim
        .fleetboot(&["exec", "--transport", "kube", "--output", "json", "--", "cat", "/proc/sys/kernel/random/boot_id"])
        .output()
        .unwrap()
        .into();
    assert_eq!(run.code, 0, "{}", run.debug());
    let nodes: serde_json::Value = serde_json::from_str(&sim.control("GET", "nodes", "")).unwrap();
    let results: Vec<serde_json::Value> = run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(results.len(), 3, "{}", run.debug());
    for node in nodes.as_array().unwrap() {
        let result = results.iter().find(|r| r["host"] == node["name"]).unwrap();
        assert_eq!(result["exit"], 0, "{result}");
        assert_eq!(result["stdout"].as_str().unwrap().trim(), node["bootID"].as_str().unwrap());
    }
    // A failing command folds as today and fails the run (exit 3); one node named alone.
    let run: Run = sim.fleetboot(&["exec", "--transport", "kube", "--host", "worker-1", "--", "false"]).output().unwrap().into();
    assert_eq!(run.code, 3, "{}", run.debug());
    assert!(run.stdout.contains("worker-1") && !run.stdout.contains("worker-0"), "{}", run.debug());
}

#[test]
fn nodes_wide_shows_whether_the_apis_exec_answers_for_each_node() {
    let sim = Sim::start(0, 2);
    sim.delete_daemon_pod("worker-1");
    let run: Run = sim.fleetboot(&["nodes", "-o", "wide"]).output().unwrap().into();
    assert_eq!(run.code, 0, "{}", run.debug());
    let line = |name: &str| run.stdout.lines().find(|l| l.starts_with(name)).unwrap_or_default().to_owned();
    assert!(run.stdout.lines().next().unwrap().contains("LABELS  KUBE-EXEC"), "{}", run.stdout);
    assert!(line("worker-0").contains(" answers "), "{}", run.stdout);
    assert!(line("worker-1").contains("no: no Running machine-config-daemon pod on worker-1"), "{}", run.stdout);
}

#[test]
fn cancel_pending_on_abort_takes_an_api_reboot_back_with_shutdown_c_through_the_same_path() {
    let sim = Sim::start_with(0, 2, &["--no-ssh", "worker-0", "--no-ssh", "worker-1", "--reboot-delay", "30s"]);
    std::fs::remove_file(sim.path("id_ed25519")).unwrap();
    let journal = sim.path("run.jsonl");
    let args = [
        "reboot",
        "--transport",
        "kube",
        "--concurrency",
        "2",
        "--cancel-pending-on-abort",
        "--output",
        "json",
        "--journal",
        journal.to_str().unwrap(),
    ];
    let child = sim.fleetboot(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // The worker pool's maxUnavailable (1) lets one reboot be pending at a time.
    wait_for_dispatches(&journal, 1, std::time::Duration::from_secs(30));
    // SAFETY: a signal to the child this test started, by its PID.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let run = Run::from(child.wait_with_output().unwrap());
    assert_eq!(run.code, 4, "{}", run.debug());
    let sent = dispatches(&journal);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let outcomes = run.outcomes();
    assert_eq!(outcomes[&sent[0].0].0, "cancelled", "{outcomes:?}");
    for (name, events) in histories(&sim) {
        let expected = usize::from(name == sent[0].0);
        assert_eq!(count(&events, "reboot-requested"), expected, "{name}: {events:?}");
        assert_eq!(count(&events, "cancelled"), expected, "{name}: {events:?}");
        assert_eq!(count(&events, "down"), 0, "{name} must not have gone down: {events:?}");
    }
}

/// The daemon pod a transport chose is replaced (as its DaemonSet replaces it) before the exec
/// reaches it: the exec's 404 makes the transport list the node's pods again, once, and the
/// replacement serves the command — no debug pod, no other rung, the node rebooted once.
#[test]
fn a_daemon_pod_replaced_under_the_exec_is_found_again_after_the_404() {
    let sim = no_ssh_cluster(0, 1);
    let exec_counters = || -> serde_json::Value { serde_json::from_str(&sim.control("GET", "exec", "")).unwrap() };
    let hold = |held: bool| sim.control("POST", "hold-requests", &format!(r#"{{"method":"EXEC","resource":"pods/exec","held":{held}}}"#));
    hold(true);
    let child = sim
        .fleetboot(&["reboot", "--transport", "kube", "--poll-interval", "200ms", "--output", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    // The first exec (the boot-ID read) chose the daemon pod and waits.
    while exec_counters()["held"] != 1 {
        assert!(start.elapsed() < std::time::Duration::from_secs(60), "no exec arrived: {}", exec_counters());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let old = sim.daemon_pod("worker-0");
    let mut pod: serde_json::Value = serde_json::from_str(&sim.kubectl_ok(&["-n", MCO, "get", "pod", &old, "-o", "json"])).unwrap();
    let metadata = pod["metadata"].as_object_mut().unwrap();
    // Without its owner: the simulation's kubelet starts bare pods bound to a node (the
    // DaemonSet controller's own replacements are not modelled); the transport finds daemon pods
    // by their label and node, as before.
    for field in ["uid", "resourceVersion", "creationTimestamp", "ownerReferences"] {
        metadata.remove(field);
    }
    metadata.insert("name".into(), format!("{old}-replaced").into());
    pod.as_object_mut().unwrap().remove("status");
    let manifest = sim.path("replacement.json");
    std::fs::write(&manifest, pod.to_string()).unwrap();
    sim.kubectl_ok(&["-n", MCO, "delete", "pod", &old]);
    sim.kubectl_ok(&["create", "--validate=false", "-f", manifest.to_str().unwrap()]);
    sim.kubectl_ok(&["-n", MCO, "wait", "--for=condition=Ready", &format!("pod/{old}-replaced"), "--timeout=60s"]);
    hold(false);
    let run: Run = child.wait_with_output().unwrap().into();
    assert_eq!(run.code, 0, "{}", run.debug());
    for (name, events) in histories(&sim) {
        assert_eq!(count(&events, "reboot-requested"), 1, "{name}: {events:?}");
    }
    let journal = std::fs::read_to_string(run.journal()).unwrap();
    assert!(!journal.contains("debug_pod_creating"), "the replacement served the exec, no debug pod: {journal}");
    assert!(!journal.contains("transport_chosen"), "no other rung: {journal}");
}

/// An exec whose upgrade the API never answers ends by `--command-timeout` (the pod list, the
/// upgrade and the stream under one deadline): the run does not hang, says why, and reboots
/// nothing (the boot ID before the reboot was never read).
#[test]
fn an_exec_the_api_never_answers_ends_by_the_command_timeout_and_reboots_nothing() {
    let sim = no_ssh_cluster(0, 1);
    sim.control("POST", "hold-requests", r#"{"method":"EXEC","resource":"pods/exec","held":true}"#);
    let run: Run = sim
        .fleetboot(&["reboot", "--transport", "kube", "--command-timeout", "1s", "--poll-interval", "200ms", "--output", "json"])
        .output()
        .unwrap()
        .into();
    assert_ne!(run.code, 0, "{}", run.debug());
    let outcomes = run.outcomes();
    let (outcome, error) = &outcomes["worker-0"];
    assert_eq!(outcome, "failed", "{}", run.debug());
    assert!(error.contains("through the cluster API") && error.contains("timed out"), "{error}");
    for (name, events) in histories(&sim) {
        assert_eq!(count(&events, "reboot-requested"), 0, "{name}: {events:?}");
    }
}

/// The reboot's exec is carried out and its connection cut before the API answers (as a
/// kubelet behind a proxying API server starts the command before the answer comes back): the
/// command may have run, so fleetboot never calls it "not sent" — it watches for the new boot
/// and never sends it again. Judge: the simulation's count of reboot requests.
#[test]
fn a_reboot_exec_cut_before_the_answer_counts_as_sent_and_is_never_sent_again() {
    let sim = no_ssh_cluster(0, 1);
    sim.control("POST", "exec-drop", r#"{"commands":["shutdown -r"],"when":"before-answer"}"#);
    let run: Run =
        sim.fleetboot(&["reboot", "--transport", "kube", "--poll-interval", "200ms", "--output", "json"]).output().unwrap().into();
    assert_eq!(run.code, 0, "{}", run.debug());
    for (name, (outcome, error)) in run.outcomes() {
        assert_eq!(outcome, "rebooted", "{name}: {error}");
    }
    for (name, events) in histories(&sim) {
        assert_eq!(count(&events, "reboot-requested"), 1, "{name}: {events:?}");
    }
    assert_eq!(dispatch_counts(&run.journal()).values().copied().collect::<Vec<_>>(), [1], "sent once");
}
