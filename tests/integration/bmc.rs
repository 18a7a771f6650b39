//! The Redfish fallback and `fleetboot power` against the simulated cluster's BMCs (HTTPS
//! with the simulation's CA, sessions, BareMetalHosts with Secrets), checked from the
//! simulation's own node history and from the journal. The reboot runs are the engine in
//! process (common/inproc.rs); `fleetboot power` and the killed and interrupted runs are the
//! binary's.

use crate::common::Run;
use crate::common::inproc::EngineRun;
use crate::common::sim::Sim;
use fleetboot::ExitCode;
use fleetboot::adapters::journal;
use fleetboot_core::events::{Event, Outcome};
use fleetboot_core::journal::{Delivery, Entry};
use serde_json::Value;

/// The simulation's config with quick BMC timings.
fn quick_config(sim: &Sim) -> std::path::PathBuf {
    let text = std::fs::read_to_string(sim.config()).unwrap();
    let text = text
        .replace(
            "[redfish]\n",
            "[redfish]\ngraceful_timeout = \"2s\"\nretry_wait = \"100ms\"\noperation_timeout = \"5s\"\nrequest_timeout = \"2s\"\n",
        )
        .replace("[reboot]\n", "[reboot]\nscheduled_delay = \"1s\"\n");
    let path = sim.path("quick.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn fleetboot(sim: &Sim, config: &std::path::Path, args: &[&str]) -> Run {
    let out = std::process::Command::new(crate::common::fleetboot_bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .env("HOME", sim.dir.path())
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .unwrap();
    Run::from(out)
}

fn node(sim: &Sim, name: &str) -> Value {
    let nodes: Value = serde_json::from_str(&sim.control("GET", "nodes", "")).unwrap();
    nodes.as_array().unwrap().iter().find(|n| n["name"] == name).unwrap().clone()
}

fn history(sim: &Sim, name: &str) -> Vec<(u64, String)> {
    node(sim, name)["history"].as_array().unwrap().iter().map(|e| (e[0].as_u64().unwrap(), e[1].as_str().unwrap().to_owned())).collect()
}

fn count(history: &[(u64, String)], what: &str) -> usize {
    history.iter().filter(|(_, w)| w == what).count()
}

/// Every session fleetboot opened on this BMC was deleted again.
fn sessions_closed(sim: &Sim, name: &str) {
    let h = history(sim, name);
    assert!(count(&h, "bmc-session-created") > 0, "{name}: no session was opened: {h:?}");
    assert_eq!(count(&h, "bmc-session-created"), count(&h, "bmc-session-deleted") + count(&h, "bmc-session-expired"), "{name}: {h:?}");
    assert_eq!(node(sim, name)["bmc"]["openSessions"], 0, "{name}");
}

/// The BMC password appears nowhere: not in the output, the errors, or the journal.
fn no_secret_in(sim: &Sim, run: &Run, journal: Option<&std::path::Path>) {
    let password = std::fs::read_to_string(sim.path("bmc-password")).unwrap();
    assert!(password.len() >= 16);
    assert!(!run.stdout.contains(&password) && !run.stderr.contains(&password), "the BMC password leaked into the output");
    if let Some(journal) = journal {
        assert!(!std::fs::read_to_string(journal).unwrap().contains(&password), "the BMC password leaked into the journal");
    }
}

/// The BMC password appears nowhere in what an in-process run emitted or returned, nor in its
/// journal.
fn no_secret_in_run(sim: &Sim, run: &EngineRun, journal: Option<&std::path::Path>) {
    let password = std::fs::read_to_string(sim.path("bmc-password")).unwrap();
    assert!(password.len() >= 16);
    assert!(!run.debug().contains(&password), "the BMC password leaked into the events or the error");
    if let Some(journal) = journal {
        assert!(!std::fs::read_to_string(journal).unwrap().contains(&password), "the BMC password leaked into the journal");
    }
}

const QUICK: &[&str] =
    &["--poll-interval", "200ms", "--connect-timeout", "1s", "--auth-timeout", "1s", "--connect-attempts", "1", "--output", "json"];

#[test]
fn a_node_without_ssh_is_rebooted_through_its_bmc_and_proven_by_the_api() {
    let sim = Sim::in_process(0, 2);
    // The cluster API's exec is not allowed here: `auto` goes SSH, the API (issue 23), then the BMC.
    sim.control("POST", "exec-forbidden", r#"{"namespace":"openshift-machine-config-operator"}"#);
    sim.control("POST", "nodes/worker-0/faults", r#"{"refuse_ssh": true}"#);
    let config = quick_config(&sim);
    let journal_path = sim.path("run.jsonl");
    let mut args = vec!["--all", "--concurrency", "2", "--journal", journal_path.to_str().unwrap()];
    args.extend(QUICK);
    let run = sim.reboot_in_process_with(&config, &args, |_| None);
    assert_eq!(run.exit(), ExitCode::Ok, "{}", run.debug());
    let h = history(&sim, "worker-0");
    assert_eq!(count(&h, "bmc-reset:GracefulRestart"), 1, "{h:?}");
    assert_eq!(count(&h, "reboot-requested"), 1, "{h:?}");
    sessions_closed(&sim, "worker-0");
    assert_eq!(count(&history(&sim, "worker-1"), "bmc-session-created"), 0, "worker-1 answered SSH: its BMC was left alone");

    let (records, state) = journal::load(&journal_path).unwrap();
    let of = |host: &str| records.iter().filter(|r| r.entry.host() == Some(host)).map(|r| r.entry.clone()).collect::<Vec<_>>();
    let worker0 = of("worker-0");
    assert!(
        matches!(&worker0[0], Entry::FallingBack { ssh_reached: false, reason, .. } if reason.contains("SSH cannot reach it")),
        "{worker0:?}"
    );
    assert!(worker0.iter().any(|e| matches!(e, Entry::Dispatching { bmc: Some(_), .. })));
    assert!(
        worker0
            .iter()
            .any(|e| matches!(e, Entry::Dispatched { delivery: Delivery::BmcAccepted, reset_type: Some(t), .. } if t == "GracefulRestart"))
    );
    let back = worker0.iter().find_map(|e| match e {
        Entry::Back { new_boot_id, api_only: true, .. } => Some(new_boot_id.clone()),
        _ => None,
    });
    assert_eq!(back.as_deref(), node(&sim, "worker-0")["bootID"].as_str(), "the API's new boot ID is the node's");
    assert!(!of("worker-1").iter().any(|e| matches!(e, Entry::FallingBack { .. })));
    assert!(state.records.values().all(|r| r.phase == fleetboot_core::journal::Phase::Confirmed));
    no_secret_in_run(&sim, &run, Some(&journal_path));
}

#[test]
fn a_hung_node_gets_an_orderly_then_a_forced_reset_never_before_its_scheduled_shutdown() {
    let sim = Sim::in_process(0, 1);
    sim.control("POST", "nodes/worker-0/faults", r#"{"hangs_on_reboot": true}"#);
    let config = quick_config(&sim);
    let journal_path = sim.path("run.jsonl");
    let mut args = vec!["--all", "--reboot-timeout", "3s", "--journal", journal_path.to_str().unwrap()];
    args.extend(QUICK);
    let run = sim.reboot_in_process_with(&config, &args, |_| None);
    assert_eq!(run.exit(), ExitCode::Ok, "{}", run.debug());
    let h = history(&sim, "worker-0");
    let at = |what: &str| h.iter().find(|(_, w)| w == what).map(|(t, _)| *t).unwrap_or_else(|| panic!("no {what}: {h:?}"));
    assert!(at("hung") > at("reboot-requested"));
    // The orderly restart is ignored by the hung node; the forced one brings it back.
    assert!(at("graceful-restart-ignored") >= at("reboot-requested") + 3000, "the BMC waited for the reboot deadline: {h:?}");
    assert!(at("bmc-reset:ForceRestart") >= at("graceful-restart-ignored") + 2000, "graceful_timeout elapsed first: {h:?}");
    assert!(at("up") > at("power-cycle"));
    sessions_closed(&sim, "worker-0");
    let (records, _) = journal::load(&journal_path).unwrap();
    let reasons: Vec<String> = records
        .iter()
        .filter_map(|r| match &r.entry {
            Entry::FallingBack { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].contains("a hung node") && reasons[1].contains("forcing it"), "{reasons:?}");
    assert!(matches!(records.iter().rev().find(|r| r.entry.host().is_some()).unwrap().entry, Entry::Confirmed { .. }));
    no_secret_in_run(&sim, &run, Some(&journal_path));
}

#[test]
fn transport_ssh_never_touches_a_bmc() {
    let sim = Sim::in_process(0, 1);
    sim.control("POST", "nodes/worker-0/faults", r#"{"refuse_ssh": true}"#);
    let config = quick_config(&sim);
    let mut args = vec!["--all", "--transport", "ssh"];
    args.extend(QUICK);
    let run = sim.reboot_in_process_with(&config, &args, |_| None);
    assert_eq!(run.exit(), ExitCode::HostsFailed, "{}", run.debug());
    assert_eq!(count(&history(&sim, "worker-0"), "bmc-session-created"), 0);
}

#[test]
fn a_flaky_bmc_is_retried_and_an_expired_session_is_renewed() {
    // A 4 s boot: power is back after a quarter of it, so PowerState reads Off for a second.
    let sim = Sim::start_with(0, 2, &["--boot-time", "4s"]);
    let config = quick_config(&sim);
    // Two 500s, then success.
    sim.control("POST", "nodes/worker-0/bmc", r#"{"errors": 2}"#);
    // The session vanishes once mid-operation: one new login, then success.
    sim.control("POST", "nodes/worker-1/bmc", r#"{"unauthorized": 1}"#);
    let run = fleetboot(&sim, &config, &["power", "restart", "--force", "worker-0", "worker-1", "-o", "json"]);
    assert_eq!(run.code, 0, "{}", run.debug());
    let results: Value = serde_json::from_str(&run.stdout).unwrap();
    for r in results.as_array().unwrap() {
        assert_eq!(r["action"], "ForceRestart", "{r}");
        assert!(r["error"].is_null(), "{r}");
        // Read right after the reset: the power is still off.
        assert_eq!(r["power_state"], "Off", "{r}");
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let after = fleetboot(&sim, &config, &["power", "status", "worker-0", "-o", "json"]);
    assert!(after.stdout.contains("\"power_state\": \"On\""), "{}", after.debug());
    let h0 = history(&sim, "worker-0");
    assert_eq!(count(&h0, "bmc-500"), 2, "{h0:?}");
    assert_eq!(count(&h0, "bmc-reset:ForceRestart"), 1, "{h0:?}");
    let h1 = history(&sim, "worker-1");
    assert_eq!(count(&h1, "bmc-session-expired"), 1, "{h1:?}");
    assert_eq!(count(&h1, "bmc-session-created"), 3, "one login for restart, a second after the 401, one for the status: {h1:?}");
    assert_eq!(count(&h1, "bmc-reset:ForceRestart"), 1, "{h1:?}");
    sessions_closed(&sim, "worker-0");
    sessions_closed(&sim, "worker-1");
    no_secret_in(&sim, &run, None);
}

#[test]
fn a_silent_bmc_a_full_session_table_and_a_rejected_reset_are_clear_errors() {
    let sim = Sim::start(0, 3);
    let config = quick_config(&sim);
    sim.control("POST", "nodes/worker-0/bmc", r#"{"silent": true}"#);
    sim.control("POST", "nodes/worker-1/bmc", r#"{"allowed_resets": ["On", "ForceOff", "Nmi"]}"#);
    let run = fleetboot(&sim, &config, &["power", "restart", "worker-0", "worker-1", "-o", "json"]);
    assert_eq!(run.code, 3, "{}", run.debug());
    let results: Value = serde_json::from_str(&run.stdout).unwrap();
    let error =
        |node: &str| results.as_array().unwrap().iter().find(|r| r["node"] == node).unwrap()["error"].as_str().unwrap_or("").to_owned();
    assert!(error("worker-0").contains("BMC of worker-0") && error("worker-0").contains("unreachable"), "{}", error("worker-0"));
    // Neither restart allowed: ForceOff, wait for Off, On.
    assert_eq!(error("worker-1"), "");
    let h1 = history(&sim, "worker-1");
    assert!(count(&h1, "bmc-reset:ForceOff") == 1 && count(&h1, "bmc-reset:On") == 1, "{h1:?}");

    // Four sessions held by someone else fill worker-2's table: a clear refusal naming it.
    let password = std::fs::read_to_string(sim.path("bmc-password")).unwrap();
    let url =
        node(&sim, "worker-2")["bmc"]["url"].as_str().unwrap().replace("/redfish/v1/Systems/1", "/redfish/v1/SessionService/Sessions");
    for _ in 0..4 {
        let out = std::process::Command::new("curl")
            .args(["-sf", "--cacert", sim.path("bmc-ca.pem").to_str().unwrap(), "-H", "Content-Type: application/json", "-d"])
            .arg(format!(r#"{{"UserName":"admin","Password":"{password}"}}"#))
            .arg(&url)
            .output()
            .unwrap();
        assert!(out.status.success(), "curl could not open a session");
    }
    let run = fleetboot(&sim, &config, &["power", "status", "worker-2"]);
    assert_eq!(run.code, 3, "{}", run.debug());
    assert!(run.stdout.contains("503") && run.stdout.contains("number of simultaneous sessions"), "{}", run.debug());
    no_secret_in(&sim, &run, None);
}

#[test]
fn tls_is_verified_against_the_ca_and_bad_credentials_are_named() {
    let sim = Sim::start(0, 1);
    let base = std::fs::read_to_string(sim.config()).unwrap();
    // No CA: the system's trust store does not know the simulation's CA.
    let no_ca = sim.path("no-ca.toml");
    std::fs::write(&no_ca, base.lines().filter(|l| !l.starts_with("ca_file")).collect::<Vec<_>>().join("\n")).unwrap();
    let run = fleetboot(&sim, &no_ca, &["power", "status", "worker-0"]);
    assert_eq!(run.code, 3);
    assert!(run.stdout.contains("certificate is not trusted"), "{}", run.debug());

    let wrong_password = sim.path("wrong-password");
    std::fs::write(&wrong_password, "not-the-password").unwrap();
    std::fs::set_permissions(&wrong_password, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let url = node(&sim, "worker-0")["bmc"]["url"].as_str().unwrap().to_owned();
    let run = fleetboot(
        &sim,
        &sim.config(),
        &[
            "power",
            "status",
            "--bmc",
            &url,
            "--bmc-user",
            "admin",
            "--bmc-password-file",
            wrong_password.to_str().unwrap(),
            "--bmc-ca",
            sim.path("bmc-ca.pem").to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 3);
    assert!(run.stdout.contains("refused the credentials of user \"admin\""), "{}", run.debug());

    // The BareMetalHosts' Secrets carry the right credentials.
    let run = fleetboot(&sim, &sim.config(), &["power", "status", "worker-0", "-o", "json"]);
    assert_eq!(run.code, 0, "{}", run.debug());
    assert!(run.stdout.contains("\"power_state\": \"On\""), "{}", run.debug());

    // Powering off needs its confirmation flag, and nothing is touched without it.
    let run = fleetboot(&sim, &sim.config(), &["power", "off", "worker-0"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--yes-power-off"));
    assert_eq!(count(&history(&sim, "worker-0"), "bmc-session-created"), 1);
}

#[test]
fn nodes_wide_shows_each_bmc_and_whether_it_answers_and_unusable_schemes_are_reported() {
    let sim = Sim::start(1, 2);
    sim.control("POST", "nodes/worker-1/bmc", r#"{"silent": true}"#);
    sim.kubectl_ok(&[
        "-n",
        "openshift-machine-api",
        "patch",
        "bmh",
        "master-0-bmh",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"bmc":{"address":"ipmi://127.0.0.9:623"}}}"#,
    ]);
    let run = fleetboot(&sim, &sim.config(), &["nodes", "-o", "wide"]);
    assert_eq!(run.code, 0, "{}", run.debug());
    let row = |name: &str| run.stdout.lines().find(|l| l.starts_with(name)).unwrap().to_owned();
    assert!(
        row("worker-0").contains(node(&sim, "worker-0")["bmc"]["url"].as_str().unwrap()) && row("worker-0").ends_with("answers"),
        "{}",
        run.stdout
    );
    assert!(row("worker-1").contains("no: "), "{}", run.stdout);
    let master: Vec<String> = row("master-0").split_whitespace().map(str::to_owned).collect();
    assert_eq!(master[master.len() - 2..], ["-", "-"], "{}", run.stdout);
    assert!(
        run.stderr.contains("master-0-bmh: ipmi://127.0.0.9:623 uses ipmi, which fleetboot cannot drive (Redfish only)"),
        "{}",
        run.debug()
    );
    no_secret_in(&sim, &run, None);
}

#[test]
fn a_killed_run_waiting_after_a_bmc_reset_resumes_without_resetting_again() {
    use std::process::Stdio;
    let sim = Sim::in_process(0, 1);
    // The cluster API's exec is not allowed here: `auto` goes SSH, the API (issue 23), then the BMC.
    sim.control("POST", "exec-forbidden", r#"{"namespace":"openshift-machine-config-operator"}"#);
    // No SSH, and a slow boot: the run is killed while the node is down after the reset.
    sim.control("POST", "nodes/worker-0/faults", r#"{"refuse_ssh": true}"#);
    let config = quick_config(&sim);
    let journal_path = sim.path("run.jsonl");
    let mut args: Vec<&str> = vec!["reboot", "--all", "--journal", journal_path.to_str().unwrap()];
    args.extend(QUICK);
    let mut child = std::process::Command::new(crate::common::fleetboot_bin())
        .arg("--config")
        .arg(&config)
        .args(&args)
        .env("HOME", sim.dir.path())
        .env_remove("SSH_AUTH_SOCK")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !std::fs::read_to_string(&journal_path).unwrap_or_default().contains("bmc_accepted") {
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "no BMC reset journaled");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let resumed = sim.reboot_in_process_with(&config, &["--resume", journal_path.to_str().unwrap(), "--poll-interval", "200ms"], |_| None);
    assert_eq!(resumed.exit(), ExitCode::Ok, "{}", resumed.debug());
    let h = history(&sim, "worker-0");
    assert_eq!(count(&h, "bmc-reset:GracefulRestart") + count(&h, "bmc-reset:ForceRestart"), 1, "one reset across both runs: {h:?}");
    let (_, state) = journal::load(&journal_path).unwrap();
    assert_eq!(state.records["worker-0"].phase, fleetboot_core::journal::Phase::Confirmed);
}

#[test]
fn sim_flags_make_a_node_without_ssh_and_a_sudo_refusal_is_no_reason_to_fall_back() {
    let sim = Sim::in_process_with(0, 2, &["--no-ssh", "worker-1", "--fault", "worker-0=refuse_sudo"]);
    // The cluster API's exec is not allowed here: `auto` goes SSH, the API (issue 23), then the BMC.
    sim.control("POST", "exec-forbidden", r#"{"namespace":"openshift-machine-config-operator"}"#);
    let config = quick_config(&sim);
    let mut args = vec!["--all", "--concurrency", "2", "--max-failures", "1"];
    args.extend(QUICK);
    let run = sim.reboot_in_process_with(&config, &args, |_| None);
    assert_eq!(run.exit(), ExitCode::HostsFailed, "{}", run.debug());
    let outcomes = run.outcomes();
    assert_eq!(outcomes["worker-1"].0, Outcome::Rebooted, "{outcomes:?}");
    assert_eq!(outcomes["worker-0"].0, Outcome::Failed, "{outcomes:?}");
    assert!(outcomes["worker-0"].1.contains("sudo"), "{outcomes:?}");
    assert_eq!(count(&history(&sim, "worker-0"), "bmc-session-created"), 0, "the command reached worker-0: no BMC reset");
    assert_eq!(count(&history(&sim, "worker-1"), "bmc-reset:GracefulRestart"), 1);
}

#[test]
fn task_monitors_are_followed_and_one_bmc_serves_one_operation_at_a_time() {
    let sim = Sim::start(0, 1);
    sim.control("POST", "nodes/worker-0/bmc", r#"{"tasks": true}"#);
    let run = fleetboot(&sim, &sim.config(), &["power", "restart", "worker-0", "-o", "json"]);
    assert_eq!(run.code, 0, "{}", run.debug());
    assert!(run.stdout.contains("\"action\": \"GracefulRestart\""), "{}", run.debug());
    // The same BMC named three times: three operations, never two sessions at once.
    let run = fleetboot(&sim, &sim.config(), &["power", "status", "worker-0", "worker-0", "worker-0"]);
    assert_eq!(run.code, 0, "{}", run.debug());
    let mut open = 0i32;
    for (_, what) in history(&sim, "worker-0") {
        match what.as_str() {
            "bmc-session-created" => open += 1,
            "bmc-session-deleted" => open -= 1,
            _ => {}
        }
        assert!(open <= 1, "two sessions open on one BMC at once");
    }
    assert_eq!(open, 0);
}

#[test]
fn ctrl_c_during_a_bmc_operation_still_deletes_its_session() {
    let sim = Sim::start_with(0, 1, &["--fault", "worker-0=hangs_on_reboot"]);
    // Hang the node: its GracefulShutdown is then ignored and `power off --graceful` waits.
    let run = fleetboot(&sim, &sim.config(), &["power", "restart", "worker-0"]);
    assert_eq!(run.code, 0, "{}", run.debug());
    let start = std::time::Instant::now();
    while count(&history(&sim, "worker-0"), "hung") == 0 {
        assert!(start.elapsed() < std::time::Duration::from_secs(10), "the node never hung");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let child = std::process::Command::new(crate::common::fleetboot_bin())
        .arg("--config")
        .arg(sim.config())
        .args(["power", "off", "--graceful", "--yes-power-off", "worker-0"])
        .env("HOME", sim.dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    while count(&history(&sim, "worker-0"), "graceful-shutdown-ignored") == 0 {
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "the shutdown was never sent");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(node(&sim, "worker-0")["bmc"]["openSessions"], 1, "the operation is waiting for PowerState Off");
    // SAFETY: signalling a child this test started, by its PID.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = Run::from(child.wait_with_output().unwrap());
    assert_eq!(out.code, 4, "{}", out.debug());
    assert!(out.stderr.contains("closing the BMC sessions"), "{}", out.debug());
    sessions_closed(&sim, "worker-0");
}

/// A reset the BMC carried out and then failed to confirm (503 after it took effect, the
/// connection closed unanswered, a task monitor that is gone) counts as happened: journaled as
/// handed over with no answer, never sent again, and proven by the node's new boot ID.
#[test]
fn a_reset_that_took_effect_before_the_bmc_failed_is_watched_never_sent_again() {
    let sim = Sim::in_process(0, 3);
    // The cluster API's exec is not allowed here: `auto` goes SSH, the API (issue 23), then the BMC.
    sim.control("POST", "exec-forbidden", r#"{"namespace":"openshift-machine-config-operator"}"#);
    let faults = [("worker-0", "503"), ("worker-1", "drop"), ("worker-2", "task_404")];
    for (node, fault) in faults {
        sim.control("POST", &format!("nodes/{node}/faults"), r#"{"refuse_ssh": true}"#);
        sim.control("POST", &format!("nodes/{node}/bmc"), &format!(r#"{{"after_reset": "{fault}"}}"#));
    }
    let before: Vec<String> = faults.iter().map(|(n, _)| node(&sim, n)["bootID"].as_str().unwrap().to_owned()).collect();
    let config = quick_config(&sim);
    let journal_path = sim.path("run.jsonl");
    let mut args = vec!["--all", "--concurrency", "3", "--journal", journal_path.to_str().unwrap()];
    args.extend(QUICK);
    let run = sim.reboot_in_process_with(&config, &args, |_| None);
    assert_eq!(run.exit(), ExitCode::Ok, "{}", run.debug());
    let (records, state) = journal::load(&journal_path).unwrap();
    for ((name, fault), old) in faults.iter().zip(&before) {
        let h = history(&sim, name);
        let resets = h.iter().filter(|(_, w)| w.starts_with("bmc-reset:")).count();
        assert_eq!(resets, 1, "{name} ({fault}): one reset, never a second: {h:?}");
        let marker = match *fault {
            "503" => "bmc-503-after-reset",
            "drop" => "bmc-dropped-after-reset",
            _ => "bmc-task-vanishes",
        };
        assert_eq!(count(&h, marker), 1, "{name}: the fault happened: {h:?}");
        assert_ne!(node(&sim, name)["bootID"].as_str().unwrap(), old, "{name} rebooted");
        let entries: Vec<&Entry> = records.iter().filter(|r| r.entry.host() == Some(*name)).map(|r| &r.entry).collect();
        assert!(
            entries.iter().any(|e| matches!(e, Entry::Dispatched { delivery: Delivery::NoAnswer, .. })),
            "{name}: journaled as handed over without an answer: {entries:?}"
        );
        assert!(!entries.iter().any(|e| matches!(e, Entry::Dispatched { delivery: Delivery::BmcAccepted, .. })), "{entries:?}");
        assert_eq!(state.records[*name].phase, fleetboot_core::journal::Phase::Confirmed, "{name}");
        let warned = run
            .events
            .iter()
            .any(|e| matches!(e, Event::Warning { host: Some(h), message } if h == name && message.contains("may have happened")));
        assert!(warned, "{name}: the run says the reset may have happened: {}", run.debug());
        sessions_closed(&sim, name);
    }
    no_secret_in_run(&sim, &run, Some(&journal_path));
}

/// `fleetboot power`: a reset answered with a 503 after it took effect is not sent again. A
/// restart says that it may have happened; a power-off is settled by reading PowerState.
#[test]
fn power_never_repeats_a_reset_answered_with_a_5xx_and_reads_the_power_state_instead() {
    let sim = Sim::start(0, 2);
    let config = quick_config(&sim);
    sim.control("POST", "nodes/worker-0/bmc", r#"{"after_reset": "503"}"#);
    sim.control("POST", "nodes/worker-1/bmc", r#"{"after_reset": "503"}"#);
    let restart = fleetboot(&sim, &config, &["power", "restart", "--force", "worker-0", "-o", "json"]);
    assert_eq!(restart.code, 3, "{}", restart.debug());
    let results: Value = serde_json::from_str(&restart.stdout).unwrap();
    let error = results[0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("503") && error.contains("may have been carried out") && error.contains("not sent again"), "{error}");
    let h0 = history(&sim, "worker-0");
    assert_eq!(count(&h0, "bmc-reset:ForceRestart"), 1, "{h0:?}");

    let off = fleetboot(&sim, &config, &["power", "off", "--yes-power-off", "worker-1", "-o", "json"]);
    assert_eq!(off.code, 0, "PowerState Off settles the 503: {}", off.debug());
    let results: Value = serde_json::from_str(&off.stdout).unwrap();
    assert_eq!(results[0]["power_state"], "Off", "{results}");
    let h1 = history(&sim, "worker-1");
    assert_eq!(count(&h1, "bmc-reset:ForceOff"), 1, "{h1:?}");
    assert_eq!(count(&h1, "bmc-503-after-reset"), 1, "{h1:?}");
    sessions_closed(&sim, "worker-0");
    sessions_closed(&sim, "worker-1");
}

/// `fleetboot power`: a reset whose connection the BMC closed unanswered after carrying it out
/// is not sent again either. A power-off is settled by reading PowerState; a restart says that
/// it may have happened.
#[test]
fn power_never_repeats_a_reset_whose_answer_was_lost_and_reads_the_power_state_instead() {
    let sim = Sim::start(0, 2);
    let config = quick_config(&sim);
    sim.control("POST", "nodes/worker-0/bmc", r#"{"after_reset": "drop"}"#);
    sim.control("POST", "nodes/worker-1/bmc", r#"{"after_reset": "drop"}"#);
    let off = fleetboot(&sim, &config, &["power", "off", "--yes-power-off", "worker-0", "-o", "json"]);
    assert_eq!(off.code, 0, "PowerState Off settles the lost answer: {}", off.debug());
    let results: Value = serde_json::from_str(&off.stdout).unwrap();
    assert_eq!(results[0]["power_state"], "Off", "{results}");
    let h0 = history(&sim, "worker-0");
    assert_eq!(h0.iter().filter(|(_, w)| w.starts_with("bmc-reset:")).count(), 1, "one reset, never a second: {h0:?}");
    assert_eq!(count(&h0, "bmc-reset:ForceOff"), 1, "{h0:?}");
    assert_eq!(count(&h0, "bmc-dropped-after-reset"), 1, "the fault happened: {h0:?}");

    let restart = fleetboot(&sim, &config, &["power", "restart", "--force", "worker-1", "-o", "json"]);
    assert_eq!(restart.code, 3, "{}", restart.debug());
    let results: Value = serde_json::from_str(&restart.stdout).unwrap();
    let error = results[0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("ForceRestart was sent") && error.contains("may have been carried out"), "{error}");
    let h1 = history(&sim, "worker-1");
    assert_eq!(h1.iter().filter(|(_, w)| w.starts_with("bmc-reset:")).count(), 1, "one reset, never a second: {h1:?}");
    assert_eq!(count(&h1, "bmc-dropped-after-reset"), 1, "the fault happened: {h1:?}");
    sessions_closed(&sim, "worker-0");
    sessions_closed(&sim, "worker-1");
}

/// A BMC over plain http:// is warned about in a reboot run as one of the run's events (the
/// adapter never prints), before anything is rebooted and even when SSH reboots the node and
/// the BMC is never used.
#[test]
fn a_reboot_run_warns_through_its_events_about_a_bmc_over_plain_http() {
    let sim = Sim::in_process(0, 1);
    let mut text = std::fs::read_to_string(quick_config(&sim)).unwrap();
    // Nothing listens there; SSH answers, so the BMC is never contacted.
    text.push_str("\n[[bmc]]\nnode = \"worker-0\"\nurl = \"http://127.0.0.1:9/redfish/v1/Systems/1\"\n");
    let config = sim.path("plain-http-bmc.toml");
    std::fs::write(&config, text).unwrap();
    let mut args = vec!["--nodes", "worker-0"];
    args.extend(QUICK);
    let run = sim.reboot_in_process_with(&config, &args, |_| None);
    assert_eq!(run.exit(), ExitCode::Ok, "{}", run.debug());
    let warned = run.events.iter().position(|e| {
        matches!(e, Event::Warning { message, .. } if message.contains("the BMC of worker-0 is reached over plain http:// (http://127.0.0.1:9/"))
    });
    let first_transition = run.events.iter().position(|e| matches!(e, Event::Transition { .. }));
    assert!(warned.is_some() && warned < first_transition, "warned before the run's first step: {}", run.debug());
    assert_eq!(count(&history(&sim, "worker-0"), "reboot-requested"), 1);
    assert_eq!(count(&history(&sim, "worker-0"), "bmc-session-created"), 0, "the BMC was never used");
    no_secret_in_run(&sim, &run, None);
}
