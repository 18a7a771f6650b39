//! A Node watch the API refuses (`fleetboot sim --rbac`, its authorizer the judge of every
//! request: the role fleetboot runs under lacks `watch` on nodes, 403), end to end with a real
//! fleetboot process: it stops naming the refused verb and resource and `fleetboot rbac`, before
//! any node is touched (no lease, no cordon, no reboot in the simulation's history), and does
//! not wait as if the answer were only late. Lacking from the start, the permission check at
//! start names it; taken away once the run started (a role re-applied narrower while a run
//! waits), the watch's next request is refused and the host fails with the API's answer;
//! refused once a host's reboot was sent, the host fails at once, rebooted once and not
//! reported rebooted. And a Node watch the API keeps failing without a 403 (500s, a stream
//! that breaks on every attempt: the simulation's `fail-watches`): retried with backoff, never
//! in a loop; no reboot is judged on the nodes it no longer shows, a host sent one fails at its
//! deadline naming the watch's error, and a node seen only through it is not reset twice. The
//! same once a 410 Gone sends the watch to list again and the list keeps failing (the
//! simulation's `fail-watches` `gone` and `fail-requests` `LIST`): a rolling run sends no second
//! host a reboot judged on the nodes as last listed.

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::elsewhere::Killed;
use crate::common::sim::{Sim, boot_counts};
use crate::rbac::{apply, apply_printed, run};

/// `objects`' ClusterRole rule on nodes without the verb `watch` (its other verbs kept).
fn without_watch_on_nodes(objects: &[Value]) -> Value {
    let mut role = objects.iter().find(|o| o["kind"] == "ClusterRole").expect("a ClusterRole").clone();
    let mut found = false;
    for rule in role["rules"].as_array_mut().unwrap() {
        if rule["apiGroups"] == serde_json::json!([""]) && rule["resources"].as_array().unwrap().iter().any(|r| r == "nodes") {
            let verbs = rule["verbs"].as_array_mut().unwrap();
            found |= verbs.iter().any(|v| v == "watch");
            verbs.retain(|v| v != "watch");
        }
    }
    assert!(found, "the printed role watches nodes: {role}");
    role
}

/// Nothing touched: no Lease, no node cordoned, no reboot since `boots`.
fn untouched(sim: &Sim, boots: &[(String, usize)]) {
    assert!(sim.kubectl_ok(&["get", "leases", "-A", "-o", "name"]).is_empty(), "no lease taken");
    assert!(!sim.kubectl_ok(&["get", "nodes", "-o", "jsonpath={.items[*].spec.unschedulable}"]).contains("true"), "no cordon");
    assert_eq!(boot_counts(sim), boots, "no reboot");
}

#[test]
fn a_role_without_watch_on_nodes_stops_reboot_and_migrate_at_start_naming_it() {
    let sim = Sim::start_with(1, 2, &["--rbac"]);
    let boots = boot_counts(&sim);
    for (mode, args) in [
        ("reboot", &["reboot", "--context", "fleetboot", "--nodes", "worker-0", "--poll-interval", "200ms"][..]),
        ("migrate", &["migrate", "--context", "fleetboot", "--etcd-backup-confirmed", "--poll-interval", "200ms"][..]),
    ] {
        let objects = apply_printed(&sim, mode);
        apply(&sim, &[without_watch_on_nodes(&objects)], "replace");
        let (code, out, err) = run(&sim, args);
        assert_eq!(code, 2, "{mode}: {out}{err}");
        assert!(err.contains("cannot watch nodes cluster-wide"), "{mode}: names the verb and resource: {err}");
        assert!(!err.contains("cannot list nodes") && !err.contains("cannot get nodes"), "{mode}: only what is missing: {err}");
        assert!(err.contains(&format!("`fleetboot rbac {mode}`")), "{mode}: names the command that prints the role: {err}");
        untouched(&sim, &boots);
        assert!(sim.migration_dirs().is_empty(), "no migration journal");
        assert!(!sim.paused("master") && !sim.paused("worker"), "no pool paused");
    }
}

/// The run starts with exactly the role `fleetboot rbac reboot` prints (its check at start
/// passes, its Node watch lists and watches); its first world read before a dispatch is held
/// (the simulation's hold-requests on the etcd ClusterOperator's read), the read's Lease list
/// already answered. Meanwhile the role loses `watch` on nodes and the open watch ends (`how`:
/// `end-watches`, as an API server ends a watch at its timeout, the connection kept; or
/// `cut-watches`, the connections dropped, the held read with them): the watch's next request
/// is refused (403, seen in the simulation's traffic). Then the read is released: the host fails
/// naming the refusal (the verb, the resource, the role, `fleetboot rbac`), no reboot sent,
/// instead of judging the limits on the nodes as last seen and rebooting a node it can no
/// longer watch come back.
fn a_node_watch_refused_mid_read(how: &str) {
    let sim = Sim::start_with(1, 2, &["--rbac"]);
    let objects = apply_printed(&sim, "reboot");
    let boots = boot_counts(&sim);
    let hold = |held: bool| {
        sim.control("POST", "hold-requests", &format!(r#"{{"method": "GET", "resource": "clusteroperators", "held": {held}}}"#));
    };
    hold(true);
    let journal = sim.path("refused.jsonl");
    let args =
        ["reboot", "--context", "fleetboot", "--nodes", "worker-0", "--poll-interval", "200ms", "--journal", journal.to_str().unwrap()];
    let mut child = Killed(sim.fleetboot(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap());
    // The run started, its Node watch is open, and its world read is in flight (the Lease list
    // answered, the etcd ClusterOperator's read held).
    wait(&mut child, "the run started", || read(&journal).contains("\"run_started\""));
    wait(&mut child, "the Node watch open", || traffic(&sim, "WATCH nodes") >= 1);
    wait(&mut child, "the world read in flight", || traffic(&sim, "LIST leases") >= 1);
    apply(&sim, &[without_watch_on_nodes(&objects)], "replace");
    sim.control("POST", how, "");
    wait(&mut child, "the Node watch refused", || traffic(&sim, "DENIED watch nodes") >= 1);
    hold(false);

    let (status, text) = finish(child);
    let records = read(&journal);
    assert!(!records.contains("\"dispatching\""), "no reboot sent: {text}");
    assert_eq!(status, Some(3), "the host failed: {text}");
    assert!(text.contains("refuses to let fleetboot watch the Nodes (403 Forbidden"), "names the refused watch: {text}");
    assert!(text.contains(r#"cannot watch resource "nodes""#), "the API's answer: {text}");
    assert!(text.contains("`fleetboot rbac`"), "the hint: {text}");
    assert_eq!(boot_counts(&sim), boots, "nothing rebooted");
    assert!(!sim.kubectl_ok(&["get", "nodes", "-o", "jsonpath={.items[*].spec.unschedulable}"]).contains("true"), "no cordon");
}

/// The requests of one kind the simulation's API server took (`GET /sim/v1/traffic`).
fn traffic(sim: &Sim, key: &str) -> u64 {
    let all: Value = serde_json::from_str(&sim.control("GET", "traffic", "")).unwrap();
    all[key]["requests"].as_u64().unwrap_or(0)
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Waits (a minute at most) until `probe` holds, fleetboot still running.
fn wait(child: &mut Killed, what: &str, probe: impl Fn() -> bool) {
    let start = Instant::now();
    while !probe() {
        assert!(child.0.try_wait().unwrap().is_none(), "fleetboot ended before {what}");
        assert!(start.elapsed() < Duration::from_secs(60), "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// fleetboot's exit code and everything it printed (stdout, then stderr), once it ended.
fn finish(mut child: Killed) -> (Option<i32>, String) {
    let status = child.0.wait().unwrap();
    let mut text = String::new();
    child.0.stdout.take().unwrap().read_to_string(&mut text).unwrap();
    child.0.stderr.take().unwrap().read_to_string(&mut text).unwrap();
    (status.code(), text)
}

/// The watch ends as at its timeout, the connection kept: the held world read goes on and is
/// answered after the refusal.
#[test]
fn a_node_watch_refused_while_a_world_read_is_in_flight_fails_the_host_naming_it_before_any_reboot() {
    a_node_watch_refused_mid_read("end-watches");
}

/// The connections dropped with the watch: the held read fails, and the host's next read finds
/// the refusal.
#[test]
fn a_node_watch_refused_after_a_dropped_connection_fails_the_host_naming_it_before_any_reboot() {
    a_node_watch_refused_mid_read("cut-watches");
}

/// Waits (two minutes at most) until fleetboot ended: its exit code and everything it printed.
/// A run that waits a long reboot timeout out instead of failing fails the test here.
fn finish_soon(mut child: Killed, what: &str) -> (Option<i32>, String) {
    let start = Instant::now();
    while child.0.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            child.0.kill().unwrap();
            panic!("fleetboot still ran after two minutes: {what}: {}", finish(child).1);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    finish(child)
}

/// The simulation's config with a reboot command that fleetboot knows to act within 2 s (the
/// simulated nodes go down 1 s after it): a host that failed with its return unproven holds its
/// places until its reboot timeout, not the minute a real `shutdown -r` waits.
fn short_schedule(sim: &Sim) {
    let config = std::fs::read_to_string(sim.config()).unwrap();
    std::fs::write(sim.config(), config.replace("[reboot]\n", "[reboot]\nscheduled_delay = \"2s\"\n")).unwrap();
}

/// The journal's records of `event` for `host`.
fn records_of(journal: &str, event: &str, host: &str) -> usize {
    journal.lines().filter(|l| l.contains(&format!(r#""event":"{event}""#)) && l.contains(&format!(r#""host":"{host}""#))).count()
}

/// Each machine's boots since `before`, by name.
fn boots_since(sim: &Sim, before: &[(String, usize)]) -> Vec<(String, usize)> {
    boot_counts(sim).into_iter().zip(before).map(|((name, now), (_, then))| (name, now - then)).collect()
}

/// The role loses `watch` on nodes once worker-0's reboot was sent (the open watch ends, its
/// next request is refused), the node still booting (5 s here). Its new boot ID is seen over
/// SSH (journaled `back`), but its return Ready can no longer be: the host fails naming the
/// refusal (the role, `fleetboot rbac`), at once: its reboot timeout is an hour, and its failure
/// must be journaled while the watch is still refused, within the test's one-minute wait (no
/// duration is measured; a host that waited for its deadline fails the test). Its reboot in
/// doubt, the run then holds its place until the node is seen back through the API: the role
/// is restored, and the run ends without ever releasing the place at the deadline (no
/// `pass_released`). It is not
/// reported rebooted (nothing confirmed), and it is not sent another reboot: one
/// `dispatching`, one boot in the simulation's history.
#[test]
fn a_node_watch_refused_after_the_reboot_was_sent_fails_the_host_naming_it_after_one_reboot() {
    let sim = Sim::start_with(1, 2, &["--rbac", "--boot-time", "5s"]);
    short_schedule(&sim);
    let objects = apply_printed(&sim, "reboot");
    let boots = boot_counts(&sim);
    let journal = sim.path("sent.jsonl");
    let args = [
        "reboot",
        "--context",
        "fleetboot",
        "--nodes",
        "worker-0",
        "--poll-interval",
        "200ms",
        "--reboot-timeout",
        "1h",
        "--journal",
        journal.to_str().unwrap(),
    ];
    let mut child = Killed(sim.fleetboot(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap());
    wait(&mut child, "the reboot sent", || read(&journal).contains(r#""event":"dispatched""#));
    apply(&sim, &[without_watch_on_nodes(&objects)], "replace");
    sim.control("POST", "end-watches", "");

    wait(&mut child, "worker-0 failed at once, not at its reboot timeout (an hour)", || {
        records_of(&read(&journal), "failed", "worker-0") == 1
    });
    let failed = read(&journal);
    assert!(failed.contains("node worker-0 could not be seen back: the cluster API refuses"), "failed on the refusal: {failed}");
    apply(&sim, &objects, "replace");

    let (status, text) = finish_soon(child, "the node never seen back once the role was restored");
    assert!(traffic(&sim, "DENIED watch nodes") >= 1, "the watch was refused");
    let records = read(&journal);
    assert!(!records.contains(r#""event":"pass_released""#), "its place never let go at the deadline: {records}");
    assert_eq!(status, Some(3), "the host failed: {text}");
    assert!(
        text.contains("node worker-0 could not be seen back: the cluster API refuses to let fleetboot watch the Nodes (403 Forbidden"),
        "names the refused watch: {text}"
    );
    assert!(text.contains(r#"cannot watch resource "nodes""#) && text.contains("`fleetboot rbac`"), "the API's answer, the hint: {text}");
    assert_eq!(records_of(&records, "dispatching", "worker-0"), 1, "one reboot sent: {records}");
    assert_eq!(records_of(&records, "back", "worker-0"), 1, "its new boot ID seen over SSH: {records}");
    assert_eq!(records_of(&records, "api_confirmed", "worker-0") + records_of(&records, "confirmed", "worker-0"), 0, "{records}");
    let since = boots_since(&sim, &boots);
    assert!(since.iter().all(|(name, n)| *n == usize::from(name == "worker-0")), "worker-0 booted once, nothing else: {since:?}");
}

/// The Node watch's attempts the simulation took.
fn watches(sim: &Sim) -> u64 {
    traffic(sim, "WATCH nodes")
}

/// The most watch attempts kube-runtime's default backoff lets fail in a row within `elapsed`
/// (watcher.rs `DefaultBackoff`: 0.8 s after the first failure, doubling, at most 30 s; its
/// jitter only lengthens them). A client that retried without its backoff would make hundreds.
fn most_failed_attempts(elapsed: Duration) -> u64 {
    let (mut attempts, mut at, mut pause) = (1, Duration::ZERO, Duration::from_millis(800));
    loop {
        at += pause;
        if at > elapsed {
            return attempts;
        }
        attempts += 1;
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}

/// How many failed attempts in a row make the Node watch blind.
const FAILING_AFTER: u64 = fleetboot::adapters::kube::watch::FAILING_AFTER as u64;

/// The API server answers every Node watch 500 from the moment the run's first world read is
/// in flight (the simulation's `fail-watches`, as an etcd timing out; the open watch ended; its
/// lists still answer): once the watch failed three times in a row the read is released. The
/// host is not sent a reboot judged on nodes the watch no longer shows: it waits, saying why,
/// and fails at its reboot timeout (5 s) naming the watch's error, nothing touched. The watch
/// is retried with backoff, not in a loop: the simulation's count of watch requests over the
/// run stays within what the backoff allows in the run's length.
#[test]
fn a_node_watch_answered_500_for_good_holds_the_reboot_and_fails_the_host_naming_it_without_spinning() {
    let sim = Sim::start_with(1, 2, &[]);
    let boots = boot_counts(&sim);
    let hold = |held: bool| {
        sim.control("POST", "hold-requests", &format!(r#"{{"method": "GET", "resource": "clusteroperators", "held": {held}}}"#));
    };
    hold(true);
    let journal = sim.path("failing.jsonl");
    let args =
        ["reboot", "--nodes", "worker-0", "--poll-interval", "200ms", "--reboot-timeout", "5s", "--journal", journal.to_str().unwrap()];
    let started = Instant::now();
    let mut child = Killed(sim.fleetboot(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap());
    wait(&mut child, "the run started", || read(&journal).contains("\"run_started\""));
    wait(&mut child, "the Node watch open", || watches(&sim) >= 1);
    wait(&mut child, "the world read in flight", || traffic(&sim, "LIST leases") >= 1);
    sim.control("POST", "fail-watches", r#"{"resource": "nodes", "how": "status"}"#);
    sim.control("POST", "end-watches", "");
    wait(&mut child, "the Node watch failed three times", || watches(&sim) > FAILING_AFTER);
    hold(false);

    let (status, text) = finish_soon(child, "it never fails the host");
    let elapsed = started.elapsed();
    let records = read(&journal);
    assert_eq!(status, Some(3), "the host failed: {text}");
    assert!(!records.contains("\"dispatching\""), "no reboot sent: {text}");
    assert!(text.contains("not started, nothing touched"), "{text}");
    assert!(text.contains("the cluster API's Node watch failed"), "names the failing watch: {text}");
    assert!(text.contains("500 InternalError: etcdserver: request timed out"), "the API's answer: {text}");
    assert_eq!(boot_counts(&sim), boots, "nothing rebooted");
    // The first watch, then the failed ones, spaced by the backoff.
    let (asked, most) = (watches(&sim), 1 + most_failed_attempts(elapsed));
    assert!(asked <= most, "{asked} watch requests in {elapsed:?}: at most {most} with the backoff");
}

/// The Node watch breaks on every attempt once worker-0's reboot was sent (the simulation's
/// `fail-watches` `error-event`: each watch opens, carries one ERROR event with a 500, and
/// ends; the open one cut), the node still booting. Its new boot ID is seen over SSH, but its
/// return Ready cannot be: at its reboot timeout it fails naming the watch's error (not "the
/// API still shows its old boot ID", which the API does not say), not reported rebooted, sent
/// one reboot, booted once; the watch retried with backoff.
#[test]
fn a_node_watch_broken_on_every_attempt_after_the_reboot_was_sent_fails_the_host_naming_it_after_one_reboot() {
    let sim = Sim::start_with(1, 2, &["--boot-time", "5s"]);
    short_schedule(&sim);
    let boots = boot_counts(&sim);
    let journal = sim.path("broken.jsonl");
    let args =
        ["reboot", "--nodes", "worker-0", "--poll-interval", "200ms", "--reboot-timeout", "12s", "--journal", journal.to_str().unwrap()];
    let started = Instant::now();
    let mut child = Killed(sim.fleetboot(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap());
    wait(&mut child, "the reboot sent", || read(&journal).contains(r#""event":"dispatched""#));
    sim.control("POST", "fail-watches", r#"{"resource": "nodes", "how": "error-event"}"#);
    sim.control("POST", "cut-watches", "");

    let (status, text) = finish_soon(child, "it never fails the host");
    let elapsed = started.elapsed();
    let records = read(&journal);
    assert_eq!(status, Some(3), "the host failed: {text}");
    assert!(text.contains("node worker-0 could not be seen back: the cluster API's Node watch failed"), "names the failing watch: {text}");
    assert!(text.contains("500 InternalError: etcdserver: request timed out"), "the API's answer: {text}");
    assert_eq!(records_of(&records, "dispatching", "worker-0"), 1, "one reboot sent: {records}");
    assert_eq!(records_of(&records, "back", "worker-0"), 1, "its new boot ID seen over SSH: {records}");
    assert_eq!(records_of(&records, "api_confirmed", "worker-0") + records_of(&records, "confirmed", "worker-0"), 0, "{records}");
    let since = boots_since(&sim, &boots);
    assert!(since.iter().all(|(name, n)| *n == usize::from(name == "worker-0")), "worker-0 booted once, nothing else: {since:?}");
    let (asked, most) = (watches(&sim), 1 + most_failed_attempts(elapsed));
    assert!(asked <= most, "{asked} watch requests in {elapsed:?}: at most {most} with the backoff");
}

/// A node without SSH (reset through its BMC, its return seen only through the Node watch):
/// the watch answered 500 for good once the reset was sent. Not seeing the node back through
/// a watch that cannot show it is no evidence of a hung node: at the ladder's next step (the
/// graceful reset's timeout, 8 s here) the host fails naming the watch's error, its reboot in
/// doubt, and the BMC is not told to force a second reset (one GracefulRestart, no
/// ForceRestart in the simulation's history).
#[test]
fn a_node_watch_answered_500_after_a_bmc_reset_fails_the_host_without_forcing_a_second_reset() {
    let sim = Sim::start_with(0, 2, &["--no-ssh", "worker-1", "--boot-time", "5s"]);
    // The cluster API's exec is not allowed: the node is reset through its BMC.
    sim.control("POST", "exec-forbidden", r#"{"namespace":"openshift-machine-config-operator"}"#);
    let config = std::fs::read_to_string(sim.config()).unwrap();
    std::fs::write(sim.config(), config.replace("[redfish]\n", "[redfish]\ngraceful_timeout = \"8s\"\n")).unwrap();
    short_schedule(&sim);
    let journal = sim.path("bmc.jsonl");
    let args =
        ["reboot", "--nodes", "worker-1", "--poll-interval", "200ms", "--reboot-timeout", "15s", "--journal", journal.to_str().unwrap()];
    let mut child = Killed(sim.fleetboot(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap());
    wait(&mut child, "the reset sent", || read(&journal).contains(r#""event":"dispatched""#));
    sim.control("POST", "fail-watches", r#"{"resource": "nodes", "how": "status"}"#);
    sim.control("POST", "cut-watches", "");

    let (status, text) = finish_soon(child, "it never fails the host");
    let records = read(&journal);
    assert_eq!(status, Some(3), "the host failed: {text}");
    assert!(text.contains("node worker-1 could not be seen back: the cluster API's Node watch failed"), "names the failing watch: {text}");
    assert!(text.contains("its reboot was sent and is not sent again"), "{text}");
    assert_eq!(records_of(&records, "dispatching", "worker-1"), 1, "one reset sent: {records}");
    let nodes: Value = serde_json::from_str(&sim.control("GET", "nodes", "")).unwrap();
    let history = nodes.as_array().unwrap().iter().find(|n| n["name"] == "worker-1").unwrap()["history"].to_string();
    assert_eq!(history.matches("bmc-reset:GracefulRestart").count(), 1, "{history}");
    assert_eq!(history.matches("bmc-reset:ForceRestart").count(), 0, "no second reset forced: {history}");
}

/// The host a journal shows dispatched first.
fn first_dispatched(journal: &str) -> Option<String> {
    let line = journal.lines().find(|l| l.contains(r#""event":"dispatched""#))?;
    let record: Value = serde_json::from_str(line).ok()?;
    record["host"].as_str().map(str::to_owned)
}

/// A Node watch that must relist and whose relist keeps failing is blind, as one whose watch
/// keeps failing is (kube-runtime 5 says `Init` before each list it asks for, also after a list
/// that failed: counted as an answer, it reset the failures and the watch never went blind).
/// A rolling run of two workers, one at a time, one failure tolerated: once the first one's
/// reboot was sent, every Node watch is answered 410 Expired (the simulation's `fail-watches`
/// `gone`, the open watch ended: the client must list again) and every list of the nodes 500
/// (`fail-requests` `LIST`). The watch's store keeps the nodes as last listed for good. The host
/// sent its reboot fails at its deadline naming the watch's error, the list's 500 its last (not
/// "the API still shows its old boot ID"); the other is never sent a reboot judged on the nodes
/// the watch last saw: it waits and fails, nothing touched. The simulation's boot counts: the
/// first worker once, nothing else.
#[test]
fn a_node_watch_whose_relist_keeps_failing_is_blind_and_no_second_host_is_rebooted_on_its_old_nodes() {
    let sim = Sim::start_with(1, 2, &["--boot-time", "5s"]);
    short_schedule(&sim);
    let boots = boot_counts(&sim);
    let journal = sim.path("relist.jsonl");
    let args = [
        "reboot",
        "--nodes",
        "worker-0,worker-1",
        "--concurrency",
        "1",
        "--max-failures",
        "1",
        "--poll-interval",
        "200ms",
        "--reboot-timeout",
        "12s",
        "--journal",
        journal.to_str().unwrap(),
    ];
    let mut child = Killed(sim.fleetboot(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap());
    wait(&mut child, "the first reboot sent", || read(&journal).contains(r#""event":"dispatched""#));
    let watched = watches(&sim);
    // Lists fail first: the relist the 410 forces is the first list the watch asks for.
    sim.control("POST", "fail-requests", r#"{"method": "LIST", "resource": "nodes", "count": 1000000}"#);
    sim.control("POST", "fail-watches", r#"{"resource": "nodes", "how": "gone"}"#);
    sim.control("POST", "end-watches", "");

    let (status, text) = finish_soon(child, "it never ends");
    let records = read(&journal);
    let first = first_dispatched(&records).expect("a host dispatched");
    let other = if first == "worker-0" { "worker-1" } else { "worker-0" };
    assert!(watches(&sim) > watched, "the watch was asked again and answered 410");
    assert_eq!(status, Some(3), "the hosts failed: {text}");
    assert!(
        text.contains(&format!("node {first} could not be seen back: the cluster API's Node watch failed")),
        "names the blind watch: {text}"
    );
    assert!(text.contains("the last: 500 InternalError: etcdserver: request timed out"), "the relist's answer: {text}");
    assert_eq!(records_of(&records, "dispatching", &first), 1, "one reboot sent: {records}");
    assert_eq!(
        records_of(&records, "dispatching", other) + records_of(&records, "dispatched", other),
        0,
        "{other} not sent one: {records}"
    );
    let since = boots_since(&sim, &boots);
    assert!(since.iter().all(|(name, n)| *n == usize::from(*name == first)), "{first} booted once, nothing else: {since:?}");
}
