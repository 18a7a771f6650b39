//! Issue 23's `oc debug`-style fallback: a node whose machine-config daemon pod is gone is
//! reached through a pod fleetboot creates (privileged, hostPID, `/` at `/host`, pinned to the
//! node), journaled before it exists and deleted afterwards — also after Ctrl-C, by `repair`
//! after a kill -9, and by the resume. Judges: the simulation's node history, kubectl's view of
//! the pods, the journal.

use std::path::Path;
use std::process::Stdio;

use crate::common::Run;
use crate::common::sim::{KubectlWatch, Sim};

const MCO: &str = "openshift-machine-config-operator";

/// A cluster whose nodes serve no SSH (so only the API can reach them), with the daemon pods of
/// `without_daemon` deleted.
fn cluster(workers: usize, without_daemon: &[&str]) -> Sim {
    let names: Vec<String> = (0..workers).map(|i| format!("worker-{i}")).collect();
    let mut extra = Vec::new();
    for name in &names {
        extra.extend(["--no-ssh", name.as_str()]);
    }
    let sim = Sim::start_with(0, workers, &extra);
    std::fs::remove_file(sim.path("id_ed25519")).unwrap();
    for node in without_daemon {
        sim.delete_daemon_pod(node);
    }
    sim
}

/// Reboot requests each node's simulation saw.
fn reboots(sim: &Sim) -> Vec<(String, usize)> {
    sim.history_counts("reboot-requested").into_iter().collect()
}

/// The debug pods kubectl sees, in every namespace.
fn debug_pods(sim: &Sim) -> Vec<String> {
    let all =
        sim.kubectl_ok(&["get", "pods", "-A", "-o", "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{\"\\n\"}{end}"]);
    all.lines().filter(|l| l.starts_with("fleetboot-debug/")).map(str::to_owned).collect()
}

fn journal_records(journal: &Path, event: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(journal)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["event"] == event)
        .collect()
}

/// Waits (no timing is asserted; the limit only ends a hung test) until a debug pod exists.
fn wait_for_a_debug_pod(sim: &Sim, journal: &Path) -> String {
    let start = std::time::Instant::now();
    loop {
        if let Some(pod) = debug_pods(sim).into_iter().next() {
            assert_eq!(journal_records(journal, "debug_pod_creating").len(), 1, "journaled before it was created");
            return pod;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(60), "no debug pod appeared");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn hold_pod_deletes(sim: &Sim, held: bool) {
    sim.control("POST", "hold-requests", &format!(r#"{{"method":"DELETE","resource":"pods","held":{held}}}"#));
}

/// A kube run killed (SIGKILL) while its debug pod exists (deletions held meanwhile, so the pod
/// outlives it): the pod kubectl sees.
fn killed_with_a_debug_pod(sim: &Sim, journal: &Path, extra: &[&str]) -> String {
    hold_pod_deletes(sim, true);
    let mut args = vec!["reboot", "--transport", "kube", "--poll-interval", "200ms", "--journal", journal.to_str().unwrap()];
    args.extend_from_slice(extra);
    let mut child = sim.fleetboot(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let pod = wait_for_a_debug_pod(sim, journal);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    hold_pod_deletes(sim, false);
    pod
}

#[test]
fn a_node_without_its_daemon_pod_reboots_through_a_debug_pod_which_is_gone_afterwards() {
    let sim = cluster(2, &["worker-1"]);
    let run: Run =
        sim.fleetboot(&["reboot", "--transport", "kube", "--poll-interval", "200ms", "--output", "json"]).output().unwrap().into();
    assert_eq!(run.code, 0, "{}", run.debug());
    for (name, (outcome, error)) in run.outcomes() {
        assert_eq!(outcome, "rebooted", "{name}: {error}");
    }
    for (name, count) in reboots(&sim) {
        assert_eq!(count, 1, "{name} rebooted once");
    }
    // worker-1 through debug pods (each journaled before it existed, and deleted); worker-0
    // through its daemon pod.
    let journal = run.journal();
    let created = journal_records(&journal, "debug_pod_creating");
    let deleted = journal_records(&journal, "debug_pod_deleted");
    assert!(!created.is_empty(), "a debug pod was used");
    assert!(created.iter().all(|r| r["host"] == "worker-1" && r["namespace"] == "fleetboot-debug"), "{created:?}");
    let names = |records: &[serde_json::Value]| {
        let mut names: Vec<String> = records.iter().map(|r| r["pod"].as_str().unwrap().to_owned()).collect();
        names.sort();
        names
    };
    assert_eq!(names(&created), names(&deleted), "every debug pod created was deleted");
    assert_eq!(debug_pods(&sim), Vec::<String>::new(), "kubectl sees no debug pod left");
    // The namespace fleetboot made says who made it.
    let labels = sim.kubectl_ok(&["get", "namespace", "fleetboot-debug", "-o", "jsonpath={.metadata.labels}"]);
    assert!(labels.contains(r#""app.kubernetes.io/managed-by":"fleetboot""#), "{labels}");
}

#[test]
fn after_a_kill_while_a_debug_pod_exists_repair_deletes_it_and_says_so() {
    let sim = cluster(1, &["worker-0"]);
    let journal = sim.path("run.jsonl");
    let pod = killed_with_a_debug_pod(&sim, &journal, &[]);
    assert_eq!(debug_pods(&sim), vec![pod.clone()], "the kill left it");
    let repaired: Run = sim.fleetboot(&["repair", "--journal", journal.to_str().unwrap()]).output().unwrap().into();
    assert_eq!(repaired.code, 0, "{}", repaired.debug());
    assert!(repaired.stdout.contains(&format!("delete debug pod {pod}: done")), "{}", repaired.debug());
    assert_eq!(debug_pods(&sim), Vec::<String>::new(), "kubectl sees no debug pod left");
    let deleted = journal_records(&journal, "debug_pod_deleted");
    assert_eq!(deleted.len(), 1, "the deletion is journaled: {deleted:?}");
    // A second repair has nothing of it left to delete.
    let again: Run = sim.fleetboot(&["repair", "--journal", journal.to_str().unwrap()]).output().unwrap().into();
    assert!(!again.stdout.contains("delete debug pod"), "{}", again.debug());
}

#[test]
fn after_a_kill_while_a_debug_pod_exists_the_resume_deletes_it_and_reboots_the_node_once() {
    let sim = cluster(1, &["worker-0"]);
    let journal = sim.path("run.jsonl");
    let pod = killed_with_a_debug_pod(&sim, &journal, &[]);
    let resumed: Run = sim.fleetboot(&["reboot", "--resume", journal.to_str().unwrap(), "--output", "json"]).output().unwrap().into();
    assert_eq!(resumed.code, 0, "{}", resumed.debug());
    assert!(resumed.stdout.contains(&format!("deleted debug pod {pod} left by the previous run")), "{}", resumed.debug());
    assert_eq!(resumed.outcomes()["worker-0"].0, "rebooted", "{}", resumed.debug());
    assert_eq!(reboots(&sim), vec![("worker-0".to_owned(), 1)]);
    assert_eq!(debug_pods(&sim), Vec::<String>::new(), "kubectl sees no debug pod left");
    let names = |event| {
        let mut names: Vec<String> = journal_records(&journal, event).iter().map(|r| r["pod"].as_str().unwrap().to_owned()).collect();
        names.sort();
        names
    };
    assert_eq!(names("debug_pod_creating"), names("debug_pod_deleted"), "every debug pod created was deleted");
}

/// Applies a debug pod as another process made it: fleetboot's labels, `run` its run ID.
fn apply_debug_pod(sim: &Sim, name: &str, run: &str) {
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "fleetboot-debug",
                     "labels": {"app.kubernetes.io/managed-by": "fleetboot", "fleetboot.io/run-id": run, "fleetboot.io/node": "worker-0"}},
        "spec": {"nodeName": "worker-0", "containers": [{"name": "debug", "image": "registry.example/tools"}]},
    });
    let file = sim.path(&format!("{name}.json"));
    std::fs::write(&file, pod.to_string()).unwrap();
    sim.kubectl_ok(&["apply", "--validate=false", "-f", file.to_str().unwrap()]);
}

#[test]
fn a_new_run_deletes_the_debug_pods_dead_runs_left_not_a_young_one_nor_an_execs() {
    let sim = cluster(1, &["worker-0"]);
    let journal = sim.path("run.jsonl");
    let pod = killed_with_a_debug_pod(&sim, &journal, &["--lease-duration", "3s"]);
    let dead_run = journal_records(&journal, "run_started")[0]["run_id"].as_str().unwrap().to_owned();
    // The new run's command timeout is 4 s: with the clocks' 5 s allowance, a pod older than 9 s
    // has outlived any command of the run that made it. The killed run's is made older than
    // that; one of a run whose lease was just taken over (its exec may still be running) is
    // made now, and one of a `fleetboot exec` (no run ID) too.
    std::thread::sleep(std::time::Duration::from_secs(7));
    apply_debug_pod(&sim, "fleetboot-debug-worker-0-young", "run-taken-over-just-now");
    apply_debug_pod(&sim, "fleetboot-debug-worker-0-exec1", "");

    // A new run (not a resume of the killed one's journal), taking the dead run's lease over
    // (3 s to settle).
    let fresh = sim.path("fresh.jsonl");
    let run: Run = sim
        .fleetboot(&[
            "reboot",
            "--transport",
            "kube",
            "--poll-interval",
            "200ms",
            "--command-timeout",
            "4s",
            "--break-lock",
            "--lease-duration",
            "3s",
            "--journal",
            fresh.to_str().unwrap(),
            "--output",
            "json",
        ])
        .output()
        .unwrap()
        .into();
    assert_eq!(run.code, 0, "{}", run.debug());
    assert!(run.stdout.contains(&format!("deleted debug pod {pod} left by run {dead_run} on worker-0")), "{}", run.debug());
    assert!(
        run.stdout.contains(
            "debug pods younger than the command timeout (4s) left to the runs that made them (a command may still use them): \
             fleetboot-debug/fleetboot-debug-worker-0-young"
        ),
        "{}",
        run.debug()
    );
    assert_eq!(
        debug_pods(&sim),
        ["fleetboot-debug/fleetboot-debug-worker-0-exec1", "fleetboot-debug/fleetboot-debug-worker-0-young"],
        "the exec's and the young pod are left"
    );
    let deleted: Vec<String> = journal_records(&fresh, "debug_pod_deleted")
        .iter()
        .map(|r| format!("{}/{}", r["namespace"].as_str().unwrap(), r["pod"].as_str().unwrap()))
        .collect();
    assert!(deleted.contains(&pod), "the new run journaled the deletion: {deleted:?}");
}

#[test]
fn ctrl_c_while_a_debug_pod_exists_deletes_it() {
    let sim = cluster(1, &["worker-0"]);
    let journal = sim.path("run.jsonl");
    hold_pod_deletes(&sim, true);
    let child = sim
        .fleetboot(&["reboot", "--transport", "kube", "--poll-interval", "200ms", "--journal", journal.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pod = wait_for_a_debug_pod(&sim, &journal);
    // Twice: a hard abort, which does not wait for the host's task.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    hold_pod_deletes(&sim, false);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(debug_pods(&sim), Vec::<String>::new(), "kubectl sees no debug pod left: {stderr}");
    let names = |event| {
        let mut names: Vec<String> =
            journal_records(&journal, event).iter().map(|r| format!("fleetboot-debug/{}", r["pod"].as_str().unwrap())).collect();
        names.sort();
        names
    };
    assert!(names("debug_pod_deleted").contains(&pod), "{stderr}");
    assert_eq!(names("debug_pod_creating"), names("debug_pod_deleted"), "every debug pod created was deleted: {stderr}");
}

#[test]
fn a_daemon_pod_that_runs_but_is_not_ready_is_waited_for_never_replaced_by_a_debug_pod() {
    let sim = cluster(1, &[]);
    let pod = sim.daemon_pod("worker-0");
    // As the node lifecycle controller marks the pods of a node that stopped posting.
    sim.kubectl_ok(&[
        "-n",
        MCO,
        "patch",
        "pod",
        &pod,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"False"}]}}"#,
    ]);
    let journal = sim.path("run.jsonl");
    let run: Run = sim
        .fleetboot(&[
            "reboot",
            "--transport",
            "kube",
            "--poll-interval",
            "200ms",
            "--output",
            "json",
            "--journal",
            journal.to_str().unwrap(),
        ])
        .output()
        .unwrap()
        .into();
    assert_ne!(run.code, 0, "{}", run.debug());
    let (outcome, error) = run.outcomes()["worker-0"].clone();
    assert_eq!(outcome, "failed", "{}", run.debug());
    assert!(error.contains(&format!("the machine-config-daemon pod {pod} on worker-0 is Running but not Ready")), "{error}");
    assert!(journal_records(&journal, "debug_pod_creating").is_empty(), "no debug pod for a daemon pod that runs");
    assert_eq!(debug_pods(&sim), Vec::<String>::new());
    assert_eq!(reboots(&sim), vec![("worker-0".to_owned(), 0)]);
}

/// The debug pod's image, as `oc debug node` picks it: the cluster's `openshift/tools:latest`
/// image stream (a disconnected cluster's mirror), else registry.redhat.io's support-tools;
/// `--debug-image` wins over both. Judge: kubectl's watch of the pods as they were created.
#[test]
fn the_debug_pods_image_is_the_clusters_tools_stream_unless_one_is_given() {
    let sim = cluster(1, &["worker-0"]);
    let images = KubectlWatch::start_with(&sim, &["pods", "-A"], "{.metadata.namespace} {.spec.containers[0].image}");
    let debug_images = || -> Vec<String> {
        let mut seen: Vec<String> = images.lines().iter().filter_map(|l| l.strip_prefix("fleetboot-debug ").map(str::to_owned)).collect();
        seen.dedup();
        seen
    };
    let reboot = |extra: &[&str]| {
        let mut args = vec!["reboot", "--transport", "kube", "--poll-interval", "200ms", "--output", "json"];
        args.extend_from_slice(extra);
        let run: Run = sim.fleetboot(&args).output().unwrap().into();
        assert_eq!(run.code, 0, "{}", run.debug());
    };
    let wait_for = |count: usize| {
        let start = std::time::Instant::now();
        while debug_images().len() < count {
            assert!(start.elapsed() < std::time::Duration::from_secs(30), "the watch saw {:?}", images.lines());
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    // No tools image stream: oc's fallback.
    reboot(&[]);
    wait_for(1);
    assert_eq!(debug_images(), ["registry.redhat.io/rhel9/support-tools"]);

    // The release's tools image, mirrored: the stream's newest import is what the pod runs.
    let mirrored = "mirror.example:5000/ocp/release@sha256:0f3e1a7c2b9d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7";
    let stream = sim.path("tools.json");
    let object = serde_json::json!({"apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
        "metadata": {"name": "tools", "namespace": "openshift"},
        "spec": {"tags": [{"name": "latest", "from": {"kind": "DockerImage", "name": "quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:0f3e"}}]}});
    std::fs::write(&stream, object.to_string()).unwrap();
    sim.kubectl_ok(&["create", "--validate=false", "-f", stream.to_str().unwrap()]);
    let status = serde_json::json!({"status": {"tags": [{"tag": "latest", "items": [{"dockerImageReference": mirrored}]}]}});
    sim.kubectl_ok(&[
        "patch",
        "imagestream",
        "tools",
        "-n",
        "openshift",
        "--subresource=status",
        "--type=merge",
        "-p",
        &status.to_string(),
    ]);
    reboot(&[]);
    wait_for(2);
    assert_eq!(debug_images()[1], mirrored);

    // Given: used as it is.
    reboot(&["--debug-image", "registry.local/tools:1"]);
    wait_for(3);
    assert_eq!(debug_images()[2], "registry.local/tools:1");
    assert!(debug_pods(&sim).is_empty(), "every debug pod deleted");
    for (name, count) in reboots(&sim) {
        assert_eq!(count, 3, "{name} rebooted once per run");
    }
}

/// The API refuses every deletion of the debug pods (three tries after each command, three more
/// at the run's end): the run says which pods are left, privileged, and how to delete them;
/// `repair` then deletes them (review 12, finding 8).
#[test]
fn a_debug_pod_the_api_will_not_delete_is_named_with_how_to_remove_it() {
    let sim = cluster(1, &["worker-0"]);
    sim.control("POST", "fail-requests", r#"{"method":"DELETE","resource":"pods","count":100000}"#);
    let run: Run =
        sim.fleetboot(&["reboot", "--transport", "kube", "--poll-interval", "200ms", "--output", "json"]).output().unwrap().into();
    assert_eq!(run.code, 0, "{}", run.debug());
    let left = debug_pods(&sim);
    assert!(!left.is_empty(), "the API deleted nothing");
    let journal = run.journal();
    for pod in &left {
        assert!(run.stdout.contains(&format!("debug pod {pod} could not be deleted")), "{pod}: {}", run.debug());
    }
    assert!(run.stdout.contains(&format!("fleetboot repair --journal {}", journal.display())), "{}", run.debug());
    sim.control("POST", "fail-requests", r#"{"method":"DELETE","resource":"pods","count":0}"#);
    let repaired: Run = sim.fleetboot(&["repair", "--journal", journal.to_str().unwrap()]).output().unwrap().into();
    assert_eq!(repaired.code, 0, "{}", repaired.debug());
    assert_eq!(debug_pods(&sim), Vec::<String>::new(), "repair deleted it");
}
