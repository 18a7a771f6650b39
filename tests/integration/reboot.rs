//! `fleetboot reboot` against real OpenSSH sshd hosts on loopback. Reboots are simulated by
//! scripts/fake-node.sh; nothing here reboots a real machine.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Fleet, Run, max_overlap};
use fleetboot::adapters::journal;
use fleetboot_core::journal::Entry;

fn journal_entries(run: &Run) -> Vec<fleetboot_core::journal::Record> {
    journal::load(&run.journal()).expect("journal loads").0
}

#[test]
fn twenty_hosts_within_concurrency_and_rate_each_rebooted_once() {
    let fleet = Fleet::up(20);
    let before: Vec<String> = fleet.names.iter().map(|n| fleet.boot_id(n)).collect();
    let run = fleet.reboot(&["--concurrency", "5", "--rate", "2/s"]);
    assert_eq!(run.code, 0, "{}", run.debug());

    // Every host rebooted exactly once and came back with a new boot ID.
    for (name, old) in fleet.names.iter().zip(&before) {
        assert_eq!(fleet.count_events(name, "reboot-requested"), 1, "{name}");
        assert_eq!(fleet.count_events(name, "up"), 1, "{name}");
        assert_ne!(&fleet.boot_id(name), old, "{name}");
    }
    let outcomes = run.outcomes();
    assert!(outcomes.values().all(|(o, _)| o == "rebooted"), "{outcomes:?}");

    // Concurrency, from the hosts' own clocks: requested → up never overlaps more than 5.
    let host_intervals: Vec<(u64, u64)> = fleet
        .names
        .iter()
        .map(|n| {
            let ev = fleet.events(n);
            let at = |what: &str| ev.iter().find(|(_, w)| w == what).unwrap().0;
            (at("reboot-requested"), at("up"))
        })
        .collect();
    assert!(max_overlap(&host_intervals) <= 5, "host-side overlap {}", max_overlap(&host_intervals));

    // The rate, from the hosts' clocks: 2/s. The SSH handshake between fleetboot's decision
    // and the command's arrival varies by a few hundred ms on a loaded machine, so any one
    // second holds at most 2 arrivals plus 1 for that jitter (without a limit, 5 arrive at once).
    let mut requested: Vec<u64> = host_intervals.iter().map(|(a, _)| *a).collect();
    requested.sort();
    for (i, start) in requested.iter().enumerate() {
        let in_window = requested[i..].iter().take_while(|t| **t < start + 1000).count();
        assert!(in_window <= 3, "{in_window} reboot commands arrived within 1 s from {start}");
    }

    // And from fleetboot's journal, exactly: intents at least 500 ms apart, and at most 5
    // hosts between intent and confirmation.
    let records = journal_entries(&run);
    let mut intents: Vec<u64> = records.iter().filter(|r| matches!(r.entry, Entry::Dispatching { .. })).map(|r| r.at_ms).collect();
    intents.sort();
    assert_eq!(intents.len(), 20);
    for pair in intents.windows(2) {
        assert!(pair[1] - pair[0] >= 495, "journal intents {} ms apart", pair[1] - pair[0]);
    }
    let journal_intervals: Vec<(u64, u64)> = fleet
        .names
        .iter()
        .map(|n| {
            let at = |want: fn(&Entry) -> bool| records.iter().find(|r| r.entry.host() == Some(n) && want(&r.entry)).unwrap().at_ms;
            (at(|e| matches!(e, Entry::Dispatching { .. })), at(|e| matches!(e, Entry::Confirmed { .. })))
        })
        .collect();
    assert!(max_overlap(&journal_intervals) <= 5);
}

#[test]
fn refused_sudo_fails_the_host_shows_stderr_and_spends_the_failure_budget() {
    let fleet = Fleet::up(4);
    fleet.set("h001", "refuse_sudo", "");
    let run = fleet.reboot(&["--concurrency", "1"]);
    assert_eq!(run.code, 3, "{}", run.debug());
    let outcomes = run.outcomes();
    let (outcome, error) = &outcomes["h001"];
    assert_eq!(outcome, "failed");
    assert!(error.contains("exited with 1") && error.contains("a terminal is required"), "{error}");
    // --max-failures 0 (the default): nothing new starts after the first failure.
    for name in ["h002", "h003", "h004"] {
        assert_eq!(outcomes[name].0, "skipped", "{name}: {outcomes:?}");
        assert_eq!(fleet.count_events(name, "reboot-requested"), 0);
    }
}

#[test]
fn max_failures_lets_the_run_go_on() {
    let fleet = Fleet::up(3);
    fleet.set("h001", "refuse_sudo", "");
    let run = fleet.reboot(&["--concurrency", "3", "--max-failures", "1"]);
    assert_eq!(run.code, 3, "{}", run.debug());
    let outcomes = run.outcomes();
    assert_eq!(outcomes["h002"].0, "rebooted");
    assert_eq!(outcomes["h003"].0, "rebooted");
}

#[test]
fn a_host_that_never_returns_times_out_and_one_whose_boot_id_stays_is_not_counted() {
    let fleet = Fleet::up(3);
    fleet.set("h001", "never_return", "");
    fleet.set("h002", "same_boot_id", "");
    let run = fleet.reboot(&["--concurrency", "3", "--max-failures", "3", "--reboot-timeout", "6s", "--connect-attempts", "1"]);
    assert_eq!(run.code, 3, "{}", run.debug());
    let outcomes = run.outcomes();
    assert_eq!(outcomes["h001"].0, "failed");
    assert!(outcomes["h001"].1.contains("went down but did not come back within 6s"), "{outcomes:?}");
    assert_eq!(outcomes["h002"].0, "failed");
    assert!(outcomes["h002"].1.contains("reboot not observed") && outcomes["h002"].1.contains("boot ID is still"), "{outcomes:?}");
    assert_eq!(outcomes["h003"].0, "rebooted");
}

#[test]
fn unreachable_host_is_retried_then_failed_while_others_reboot() {
    let fleet = Fleet::up(2);
    let hosts = fleet.path("hosts.txt");
    let mut text = std::fs::read_to_string(&hosts).unwrap();
    // Nothing listens on this address and port: connection refused.
    text.push_str(&format!("ghost {}.250:{}\n", fleet.net, fleet.port));
    std::fs::write(&hosts, text).unwrap();
    let run = fleet.reboot(&["--concurrency", "3", "--max-failures", "1", "--connect-attempts", "2"]);
    assert_eq!(run.code, 3, "{}", run.debug());
    let outcomes = run.outcomes();
    assert_eq!(outcomes["ghost"].0, "failed");
    assert!(outcomes["ghost"].1.starts_with("connect: unreachable"), "{outcomes:?}");
    let retries = run.events().iter().filter(|e| e["type"] == "retrying" && e["host"] == "ghost").count();
    assert_eq!(retries, 1, "one retry for two attempts");
    assert_eq!(outcomes["h001"].0, "rebooted");
    assert_eq!(outcomes["h002"].0, "rebooted");
}

#[test]
fn wrong_key_is_an_authentication_failure() {
    let fleet = Fleet::up(1);
    let other = fleet.path("other_key");
    assert!(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f", other.to_str().unwrap()]).status().unwrap().success());
    // Offer only a key the hosts do not know.
    let mut args = fleet.reboot_args(&[]);
    let at = args.iter().position(|a| a == "--identity").unwrap();
    args[at + 1] = other.to_str().unwrap().to_owned();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = Run::from(fleet.fleetboot(&args).output().unwrap());
    assert_eq!(run.code, 3, "{}", run.debug());
    assert!(run.outcomes()["h001"].1.contains("authentication failed"), "{:?}", run.outcomes());
    assert_eq!(fleet.count_events("h001", "reboot-requested"), 0);
}

#[test]
fn unknown_host_key_fails_under_strict_and_is_recorded_under_accept_new() {
    let fleet = Fleet::up(1);
    let known = fleet.path("known_hosts");
    std::fs::write(&known, "").unwrap();
    let run = fleet.reboot(&[]);
    assert_eq!(run.code, 3, "{}", run.debug());
    let error = &run.outcomes()["h001"].1;
    assert!(error.contains("is not in") && error.contains(known.to_str().unwrap()) && error.contains("SHA256:"), "{error}");
    assert_eq!(fleet.count_events("h001", "reboot-requested"), 0, "nothing ran on an unverified host");

    let run = fleet.reboot(&["--host-key-policy", "accept-new"]);
    assert_eq!(run.code, 0, "{}", run.debug());
    let recorded = std::fs::read_to_string(&known).unwrap();
    assert!(recorded.contains(&format!("[{}.1]:{} ssh-ed25519 ", fleet.net, fleet.port)), "{recorded}");
}

#[test]
fn changed_host_key_fails_under_every_verifying_policy_naming_file_and_line() {
    let fleet = Fleet::up(1);
    let known = fleet.path("known_hosts");
    let impostor = fleet.path("impostor");
    Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f", impostor.to_str().unwrap()]).status().unwrap();
    let pubkey = std::fs::read_to_string(impostor.with_extension("pub")).unwrap();
    let key = pubkey.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    std::fs::write(&known, format!("# fleet\n[{}.1]:{} {key}\n", fleet.net, fleet.port)).unwrap();
    for policy in ["strict", "accept-new"] {
        let run = fleet.reboot(&["--host-key-policy", policy]);
        assert_eq!(run.code, 3, "{policy}: {}", run.debug());
        let error = &run.outcomes()["h001"].1;
        assert!(error.contains(&format!("does not match {}:2", known.display())), "{policy}: {error}");
    }
    assert_eq!(fleet.count_events("h001", "reboot-requested"), 0);

    // The document's StrictHostKeyChecking=no: allowed only when asked for, and loudly.
    let run = fleet.reboot(&["--insecure-ignore-host-keys"]);
    assert_eq!(run.code, 0, "{}", run.debug());
    assert!(run.stderr.contains("WARNING: host keys are NOT verified"), "{}", run.stderr);
}

#[test]
fn a_host_key_that_changes_across_the_reboot_is_an_alarm_even_when_ignoring_keys() {
    let fleet = Fleet::up(1);
    fleet.set("h001", "new_host_key", "");
    let run = fleet.reboot(&["--insecure-ignore-host-keys", "--reboot-timeout", "20s"]);
    assert_eq!(run.code, 3, "{}", run.debug());
    let error = &run.outcomes()["h001"].1;
    assert!(error.contains("changed during this run"), "{error}");
}

#[test]
fn a_host_that_accepts_tcp_but_never_speaks_ssh_times_out() {
    let fleet = Fleet::up(1);
    // Accepts connections (the kernel completes them) and never sends a byte.
    let silent = std::net::TcpListener::bind(format!("{}.251:0", fleet.net)).unwrap();
    let port = silent.local_addr().unwrap().port();
    let hosts = fleet.path("hosts.txt");
    let mut text = std::fs::read_to_string(&hosts).unwrap();
    text.push_str(&format!("mute {}.251:{port}\n", fleet.net));
    std::fs::write(&hosts, text).unwrap();
    let run = fleet.reboot(&["--concurrency", "2", "--max-failures", "1", "--auth-timeout", "1s", "--connect-attempts", "1"]);
    assert_eq!(run.code, 3, "{}", run.debug());
    let outcomes = run.outcomes();
    assert!(outcomes["mute"].1.contains("timed out") && outcomes["mute"].1.contains("longer than 1s"), "{outcomes:?}");
    assert_eq!(outcomes["h001"].0, "rebooted");
}

/// The one journal in the state directory, once it holds `dispatched` dispatches.
fn wait_for_journal(dir: &std::path::Path, dispatched: usize, limit: Duration) -> std::path::PathBuf {
    let start = Instant::now();
    let path = loop {
        if let Some(path) = std::fs::read_dir(dir).ok().and_then(|mut d| d.next()).and_then(|e| e.ok()).map(|e| e.path()) {
            break path;
        }
        assert!(start.elapsed() < limit, "no journal in {}", dir.display());
        std::thread::sleep(Duration::from_millis(20));
    };
    crate::common::wait_for_dispatches(&path, dispatched, limit);
    path
}

fn signal(pid: u32, sig: &str) {
    assert!(Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success());
}

#[test]
fn kill_9_mid_run_then_resume_reboots_every_host_exactly_once() {
    let fleet = Fleet::up(6);
    for n in &fleet.names {
        fleet.set(n, "reboot_delay", "2");
    }
    let args = fleet.reboot_args(&["--concurrency", "2"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = fleet.fleetboot(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let journal_path = wait_for_journal(&fleet.path("state"), 2, Duration::from_secs(30));
    signal(child.id(), "-KILL");
    child.wait().unwrap();

    let run = fleet.resume(&journal_path, &["--concurrency", "2"]);
    assert_eq!(run.code, 0, "{}", run.debug());
    let started = run.events().into_iter().find(|e| e["type"] == "started").unwrap();
    assert_eq!(started["resumed"], true);
    assert!(started["awaiting"].as_u64().unwrap() >= 2, "{started}");
    for name in &fleet.names {
        assert_eq!(fleet.count_events(name, "reboot-requested"), 1, "{name} rebooted exactly once");
        assert_eq!(fleet.count_events(name, "reboot-requested-again"), 0, "{name} got no second command");
    }
    assert!(run.outcomes().values().all(|(o, _)| o == "rebooted"), "{:?}", run.outcomes());
}

#[test]
fn interrupt_starts_nothing_new_and_resume_finishes() {
    let fleet = Fleet::up(5);
    for n in &fleet.names {
        fleet.set(n, "reboot_delay", "2");
    }
    let args = fleet.reboot_args(&["--concurrency", "2"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = fleet.fleetboot(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let journal_path = wait_for_journal(&fleet.path("state"), 2, Duration::from_secs(30));
    signal(child.id(), "-INT");
    let interrupted_at = fleetboot::adapters::system::now_ms();
    let run = Run::from(child.wait_with_output().unwrap());
    assert_eq!(run.code, 4, "{}", run.debug());
    let outcomes = run.outcomes();
    let rebooted = outcomes.values().filter(|(o, _)| o == "rebooted").count();
    let skipped = outcomes.values().filter(|(o, _)| o == "skipped").count();
    assert_eq!((rebooted, skipped), (2, 3), "{outcomes:?}");
    for name in &fleet.names {
        for (at, what) in fleet.events(name) {
            if what == "reboot-requested" {
                assert!(at < interrupted_at, "{name} got a reboot after the interrupt");
            }
        }
    }
    let resumed = fleet.resume(&journal_path, &["--concurrency", "3", "--override-journal"]);
    assert_eq!(resumed.code, 0, "{}", resumed.debug());
    for name in &fleet.names {
        assert_eq!(fleet.count_events(name, "reboot-requested"), 1, "{name}");
    }
}

#[test]
fn cancel_pending_on_abort_cancels_reboots_that_have_not_begun() {
    let fleet = Fleet::up(3);
    for n in &fleet.names {
        fleet.set(n, "reboot_delay", "30");
    }
    let args = fleet.reboot_args(&["--concurrency", "2", "--cancel-pending-on-abort"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = fleet.fleetboot(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    wait_for_journal(&fleet.path("state"), 2, Duration::from_secs(30));
    signal(child.id(), "-INT");
    let run = Run::from(child.wait_with_output().unwrap());
    assert_eq!(run.code, 4, "{}", run.debug());
    let outcomes = run.outcomes();
    let cancelled: Vec<_> = outcomes.iter().filter(|(_, (o, _))| o == "cancelled").map(|(n, _)| n.clone()).collect();
    assert_eq!(cancelled.len(), 2, "{outcomes:?}");
    for name in &cancelled {
        assert_eq!(fleet.count_events(name, "cancelled"), 1);
        assert_eq!(fleet.count_events(name, "down"), 0, "{name} must not have gone down");
    }
}

#[test]
fn plain_output_shows_progress_and_a_summary_table() {
    let fleet = Fleet::up(2);
    let mut args = fleet.reboot_args(&["--concurrency", "2"]);
    let at = args.iter().position(|a| a == "json").unwrap();
    args[at] = "plain".into();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = Run::from(fleet.fleetboot(&args).output().unwrap());
    assert_eq!(run.code, 0, "{}", run.debug());
    assert!(run.stdout.contains("reboot dispatched (exit 0)"), "{}", run.stdout);
    assert!(run.stdout.contains("HOST  ADDRESS"), "{}", run.stdout);
    assert!(run.stdout.contains("2 rebooted, 0 failed, 0 skipped"), "{}", run.stdout);
}

#[test]
fn dry_run_prints_the_plan_and_touches_nothing() {
    let fleet = Fleet::up(2);
    let run = fleet.reboot(&["--dry-run", "--rate", "10/min", "--concurrency", "2"]);
    assert_eq!(run.code, 0, "{}", run.debug());
    assert!(run.stdout.contains("dry run: nothing is contacted"), "{}", run.stdout);
    assert!(run.stdout.contains("10/min (one every 6s)"), "{}", run.stdout);
    assert!(run.stdout.contains("h002"), "{}", run.stdout);
    assert!(run.stdout.contains("at least 6s"), "{}", run.stdout);
    for name in &fleet.names {
        assert!(fleet.events(name).is_empty(), "{name} was contacted");
    }
    assert!(!fleet.path("state").exists(), "no journal for a dry run");
}

#[test]
fn check_command_runs_after_the_reboot_and_its_failure_fails_the_host() {
    let fleet = Fleet::up(2);
    let run = fleet.reboot(&["--concurrency", "2", "--check-command", "test -r /proc/sys/kernel/random/boot_id"]);
    assert_eq!(run.code, 0, "{}", run.debug());
    let run = fleet.reboot(&["--concurrency", "2", "--max-failures", "2", "--check-command", "false"]);
    assert_eq!(run.code, 3, "{}", run.debug());
    let outcomes = run.outcomes();
    assert!(outcomes["h001"].1.starts_with("check command:"), "{outcomes:?}");
    assert_eq!(fleet.count_events("h001", "reboot-requested"), 2, "one reboot per run");
}

#[test]
fn a_reboot_command_killed_by_a_signal_counts_as_delivered_and_is_never_sent_twice() {
    let fleet = Fleet::up(1);
    // The node's shutdown kills the session that asked for it: SSH answers exit-signal TERM.
    fleet.set("h001", "killed_by_signal", "");
    let run = fleet.reboot(&[]);
    assert_eq!(run.code, 0, "{}", run.debug());
    let delivered = journal_entries(&run)
        .into_iter()
        .any(|r| matches!(r.entry, Entry::Dispatched { delivery: fleetboot_core::journal::Delivery::ConnectionDropped, .. }));
    assert!(delivered, "the reboot counts as handed over: {}", run.debug());
    assert_eq!(fleet.count_events("h001", "reboot-requested"), 1, "sent once");
}

/// The host waiting for a slot opens its SSH connection while the host in flight reboots (once
/// that host's reboot is out, not while it is being sent), and reads its boot ID on that
/// connection once the slot frees, right before its own reboot: the handshake is off the path
/// from one reboot to the next, the boot ID still read at the turn.
#[test]
fn the_host_next_in_line_connects_while_the_one_in_flight_reboots() {
    let fleet = Fleet::up(2);
    for name in &fleet.names {
        fleet.set(name, "log_connections", "");
    }
    let run = fleet.reboot(&["--concurrency", "1"]);
    assert_eq!(run.code, 0, "{}", run.debug());
    let order: Vec<String> = crate::common::dispatches(&run.journal()).into_iter().map(|(host, _)| host).collect();
    assert_eq!(order.len(), 2, "{order:?}");
    let (first, second) = (&order[0], &order[1]);
    // The kernel's ticks since boot, from the nodes' own logs (scripts/fake-node.sh).
    let ticks = |events: &[(u64, String)], prefix: &str| -> Vec<(u64, u64)> {
        events.iter().filter_map(|(ms, what)| Some((*ms, what.strip_prefix(prefix)?.trim().parse().ok()?))).collect()
    };
    let first_events = fleet.events(first);
    let first_up_ms = first_events.iter().find(|(_, w)| w == "up").expect("the first host came back").0;
    let [(_, first_up_ticks)] = ticks(&first_events, "up-at-ticks ")[..] else { panic!("{first_events:?}") };
    let second_events = fleet.events(second);
    let requested_ms = second_events.iter().find(|(_, w)| w == "reboot-requested").expect("the second host rebooted").0;
    // The boot-ID read right before the second host's reboot: the last one before it.
    let (read_ms, connection_ticks) = *ticks(&second_events, "boot-id-read-on-connection-of-ticks ")
        .iter()
        .rfind(|(ms, _)| *ms <= requested_ms)
        .unwrap_or_else(|| panic!("no boot-ID read before the reboot: {second_events:?}"));
    assert!(read_ms >= first_up_ms, "the second host's boot ID was read before the first one's slot freed: {second_events:?}");
    assert!(
        connection_ticks < first_up_ticks,
        "the connection it was read on opened at tick {connection_ticks}, after the first host came back (tick {first_up_ticks}): \
         not opened while waiting for the slot"
    );
    // Opened once the first host's reboot was out: a turn's own handshakes go first.
    let [(_, first_requested_ticks)] = ticks(&first_events, "reboot-requested-at-ticks ")[..] else { panic!("{first_events:?}") };
    assert!(
        connection_ticks >= first_requested_ticks,
        "the second host's connection opened at tick {connection_ticks}, before the first host's reboot went out (tick \
         {first_requested_ticks}): its warm-up competed with the first host's own turn"
    );
    for name in &fleet.names {
        assert_eq!(fleet.count_events(name, "reboot-requested"), 1, "{name}");
    }
}

/// While the host has not gone down yet, the watch's probes read its boot ID on the connection
/// its reboot was sent on, not a handshake each poll interval; its going down and its return are
/// read on connections of their own, opened after it came back.
#[test]
fn probes_read_on_the_reboot_s_connection_until_the_host_goes_down() {
    let fleet = Fleet::up(1);
    let name = &fleet.names[0];
    fleet.set(name, "log_connections", "");
    // Two seconds up after the command (systemd's delay, shortened): about ten probes at 200 ms.
    fleet.set(name, "reboot_delay", "2");
    // What sshd logs from here on (fake-fleet.sh's own readiness check, a bare connect, is gone).
    // That check's own "closed before the identification exchange" line is awaited first: on a
    // loaded machine sshd logged it after the log was emptied, and it read as fleetboot's.
    let sshd_log = fleet.path(&format!("nodes/{name}/sshd.log"));
    let logged = || std::fs::read_to_string(&sshd_log).unwrap_or_default().contains("kex_exchange_identification");
    for _ in 0..100 {
        if logged() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::fs::write(&sshd_log, "").unwrap();
    let run = fleet.reboot(&[]);
    assert_eq!(run.code, 0, "{}", run.debug());
    let events = fleet.events(name);
    let at = |what: &str| events.iter().find(|(_, w)| w == what).unwrap_or_else(|| panic!("no {what}: {events:?}")).0;
    let (requested, down, up) = (at("reboot-requested"), at("down"), at("up"));
    let reads: Vec<(u64, u64)> = events
        .iter()
        .filter_map(|(ms, what)| Some((*ms, what.strip_prefix("boot-id-read-on-connection-of-ticks ")?.trim().parse().ok()?)))
        .collect();
    let up_ticks: u64 = events.iter().find_map(|(_, w)| w.strip_prefix("up-at-ticks ")?.trim().parse().ok()).expect("up-at-ticks");
    let (_, sent_on) = *reads.iter().rfind(|(ms, _)| *ms <= requested).unwrap_or_else(|| panic!("no read before the reboot: {events:?}"));
    let while_up: Vec<u64> = reads.iter().filter(|(ms, _)| *ms > requested && *ms < down).map(|(_, ticks)| *ticks).collect();
    assert!(while_up.len() >= 3, "the host was probed while still up: {events:?}");
    assert!(
        while_up.iter().all(|ticks| *ticks == sent_on),
        "every probe before the host went down read on the connection the reboot was sent on (opened at tick {sent_on}): {while_up:?}"
    );
    // Each probe while up also checked that sshd answers on the port, speaking its
    // identification line before closing: nothing an intrusion filter counts as a failed
    // connection (OpenSSH logs one closed before it as "kex_exchange_identification" at the
    // ERROR level the fake fleet logs; fail2ban's ddos mode counts those). Only a check the
    // simulated shutdown cut off mid-way, its sshd killed under it, may log one; that one is
    // followed by the killed monitor's "mm_request_send: write: Broken pipe".
    let sshd_log = std::fs::read_to_string(&sshd_log).unwrap_or_default();
    let unanswered = sshd_log.matches("kex_exchange_identification").count();
    let cut_off = sshd_log.matches("mm_request_send: write: Broken pipe").count();
    assert!(unanswered <= cut_off, "connections closed before the identification exchange:\n{sshd_log}");
    let (_, proof) = *reads.iter().find(|(ms, _)| *ms >= up).unwrap_or_else(|| panic!("no read after the return: {events:?}"));
    assert!(proof >= up_ticks, "the return was read on a connection opened after it (tick {proof}, up at tick {up_ticks})");
    assert_eq!(fleet.count_events(name, "reboot-requested"), 1);
}

/// A shutdown that stops sshd's listener but leaves its open sessions running (OpenSSH's unit,
/// `KillMode=process`): the session the reboot was sent on goes on answering the old boot ID,
/// and the host is still seen going down (its port refuses), then back; one that never comes
/// back after that is reported as such, not as a reboot that was never observed.
#[test]
fn a_host_whose_sessions_outlive_its_listener_is_seen_going_down() {
    let fleet = Fleet::up(2);
    for name in &fleet.names {
        fleet.set(name, "sessions_outlive_listener", "");
        // Down for three seconds: about fifteen probes at 200 ms while the old session lives.
        fleet.set(name, "down_time", "3");
    }
    fleet.set("h002", "never_return", "");
    // The failed host holds its place until its reboot could still have been pending (one
    // minute by default): shortened, the run ends soon after.
    let config = fleet.path("config.toml");
    std::fs::write(&config, "[reboot]\nscheduled_delay = \"1s\"\n").unwrap();
    let run = fleet.reboot(&[
        "--config",
        config.to_str().unwrap(),
        "--concurrency",
        "2",
        "--max-failures",
        "2",
        "--reboot-timeout",
        "8s",
        "--connect-attempts",
        "1",
    ]);
    assert_eq!(run.code, 3, "{}", run.debug());
    let outcomes = run.outcomes();
    assert_eq!(outcomes["h001"].0, "rebooted", "{outcomes:?}");
    assert_eq!(outcomes["h002"].0, "failed", "{outcomes:?}");
    assert!(outcomes["h002"].1.contains("went down but did not come back within 8s"), "{outcomes:?}");
    let entries = journal_entries(&run);
    for name in ["h001", "h002"] {
        assert!(
            entries.iter().any(|r| matches!(&r.entry, Entry::Down { host } if host == name)),
            "{name}'s going down is journaled: {entries:?}"
        );
        assert_eq!(fleet.count_events(name, "reboot-requested"), 1, "{name}");
    }
}
