//! Batch reboots against real OpenSSH sshd hosts (scripts/fake-node.sh): `--only-if`, a
//! maintenance window that opens during the run, and `--window-exit` with its exit code. Every
//! assertion reads the fake nodes' own logs and files or the journal.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::common::{Fleet, Run};
use fleetboot::adapters::journal;
use fleetboot_core::journal::Entry;

fn records(run: &Run) -> Vec<fleetboot_core::journal::Record> {
    journal::load(&run.journal()).expect("journal loads").0
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// `HH:MM:SS` (UTC) of a time in ms.
fn utc_time(ms: u64) -> String {
    let s = ms / 1000 % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

#[test]
fn only_if_reboots_the_three_of_nine_that_need_it() {
    let fleet = Fleet::up(9);
    let needing = ["h002", "h005", "h009"];
    for name in needing {
        fleet.set(name, "reboot_required", "");
    }
    let before: Vec<String> = fleet.names.iter().map(|n| fleet.boot_id(n)).collect();
    let only_if = ["--only-if", "test -f /var/run/reboot-required", "--concurrency", "3"];

    let dry = fleet
        .fleetboot(&fleet.reboot_args(&[&only_if[..], &["--dry-run"]].concat()).iter().map(String::as_str).collect::<Vec<_>>())
        .output()
        .unwrap();
    let dry_text = String::from_utf8_lossy(&dry.stdout);
    assert!(dry_text.contains("only if: `test -f /var/run/reboot-required` exits 0"), "{dry_text}");

    let run = fleet.reboot(&only_if);
    assert_eq!(run.code, 0, "hosts that need no reboot are no failure: {}", run.debug());
    let outcomes = run.outcomes();
    for (name, old) in fleet.names.iter().zip(&before) {
        let needs = needing.contains(&name.as_str());
        assert_eq!(fleet.count_events(name, "reboot-requested"), usize::from(needs), "{name}");
        assert_eq!(fleet.boot_id(name) != *old, needs, "{name}");
        let (outcome, reason) = &outcomes[name];
        if needs {
            assert_eq!(outcome, "rebooted", "{name}");
            assert!(!fleet.node_dir(name).join("reboot_required").exists(), "{name}: the boot cleared /run");
        } else {
            assert_eq!(outcome, "not_needed", "{name}");
            assert_eq!(reason, "not needed: `test -f /var/run/reboot-required` exited 1", "{name}");
        }
    }
    let not_needed = records(&run).into_iter().filter(|r| matches!(r.entry, Entry::NotNeeded { .. })).count();
    assert_eq!(not_needed, 6);

    // A second run finds nothing to do: every host already done.
    let again = fleet.reboot(&only_if);
    assert_eq!(again.code, 0, "{}", again.debug());
    assert!(again.outcomes().values().all(|(o, _)| o == "not_needed"), "{:?}", again.outcomes());
    for name in needing {
        assert_eq!(fleet.count_events(name, "reboot-requested"), 1, "{name}: not rebooted twice");
    }
}

#[test]
fn a_window_that_opens_twenty_seconds_in_holds_every_reboot_until_then() {
    let fleet = Fleet::up(3);
    let mut opens_ms = (now_ms() / 1000 + 20) * 1000;
    // On a whole minute fleetboot writes the window back as HH:MM, not as given (HH:MM:00):
    // a second later keeps the text compared below the same (it failed once a minute in 60).
    if (opens_ms / 1000).is_multiple_of(60) {
        opens_ms += 1000;
    }
    let window = format!("{}-{}", utc_time(opens_ms), utc_time(opens_ms + 3_600_000));
    let run = fleet.reboot(&["--window", &window, "--window-tz", "UTC", "--concurrency", "3"]);
    assert_eq!(run.code, 0, "{}", run.debug());
    for name in &fleet.names {
        let requested = fleet.events(name).iter().find(|(_, w)| w == "reboot-requested").map(|(at, _)| *at);
        let requested = requested.unwrap_or_else(|| panic!("{name} was not rebooted"));
        assert!(requested >= opens_ms, "{name}: reboot requested at {requested}, before the window opened at {opens_ms}");
    }
    let held: Vec<(String, Option<u64>)> = records(&run)
        .into_iter()
        .filter_map(|r| match r.entry {
            Entry::Held { reason, until_ms } => Some((reason, until_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].1, Some(opens_ms));
    assert!(held[0].0.contains(&format!("{window} (UTC)")), "{}", held[0].0);
    let countdown: Vec<u64> = run.events().iter().filter(|e| e["type"] == "held").filter_map(|e| e["remaining_ms"].as_u64()).collect();
    assert!(countdown.len() >= 2 && countdown.windows(2).all(|w| w[1] < w[0]), "a countdown: {countdown:?}");
}

#[test]
fn window_exit_stops_with_exit_5_touching_nothing_and_a_resume_outside_the_window_stops_again() {
    let fleet = Fleet::up(2);
    // A window that opened an hour ago and closed a minute ago.
    let now = now_ms();
    let window = format!("{}-{}", utc_time(now - 3_600_000), utc_time(now - 60_000));
    let run = fleet.reboot(&["--window", &window, "--window-exit"]);
    assert_eq!(run.code, 5, "{}", run.debug());
    for name in &fleet.names {
        assert_eq!(fleet.count_events(name, "reboot-requested"), 0, "{name}");
        assert_eq!(run.outcomes()[name].0, "skipped");
    }
    assert_eq!(run.summary()["window_closed"], true);
    let resumed = fleet.resume(&run.journal(), &[]);
    assert_eq!(resumed.code, 5, "the journaled window and --window-exit hold: {}", resumed.debug());
    for name in &fleet.names {
        assert_eq!(fleet.count_events(name, "reboot-requested"), 0, "{name}");
    }
    // Another window given with the resume is refused: the journal's stands.
    let other = fleet.resume(&run.journal(), &["--window", "00:00-24:00"]);
    assert_eq!(other.code, 2, "{}", other.debug());
    assert!(other.stderr.contains("--window"), "{}", other.stderr);
}

#[test]
fn the_health_command_holds_every_reboot_until_it_exits_0() {
    let fleet = Fleet::up(2);
    let flag = fleet.path("healthy");
    let command = format!("test -e {}", flag.display());
    let journal = fleet.path("health.jsonl");
    let args = fleet.reboot_args(&["--health-command", &command, "--healthy-interval", "200ms", "--journal", journal.to_str().unwrap()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = fleet.fleetboot(&args).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let start = std::time::Instant::now();
    let held = loop {
        let found = journal::load(&journal).ok().and_then(|(records, _)| {
            records.into_iter().find(|r| matches!(&r.entry, Entry::Held { reason, .. } if reason.contains(&command)))
        });
        if let Some(held) = found {
            break held;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(60), "no hold for the health command");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(fleet.names.iter().all(|n| fleet.count_events(n, "reboot-requested") == 0), "nothing rebooted while unhealthy");
    let healthy_at = now_ms();
    std::fs::write(&flag, "").unwrap();
    let run = Run::from(child.wait_with_output().unwrap());
    assert_eq!(run.code, 0, "{}", run.debug());
    let Entry::Held { reason, .. } = &held.entry else { unreachable!() };
    assert!(reason.contains(&format!("`{command}` exited 1")), "{reason}");
    for name in &fleet.names {
        let requested = fleet.events(name).iter().find(|(_, w)| w == "reboot-requested").map(|(at, _)| *at).unwrap();
        assert!(requested >= healthy_at, "{name} rebooted before the health command passed");
    }
}

#[test]
fn batch_settings_come_from_the_config_files_batch_table_under_the_flags() {
    let fleet = Fleet::up(1);
    let config = fleet.path("batch.toml");
    std::fs::write(
        &config,
        "[batch]\nwindows = [\"Mon-Fri 22:00-06:00\"]\nwindow_tz = \"Europe/Berlin\"\nonly_if = \"test -f /var/run/reboot-required\"\n\
         drain_escalation = \"wait,skip\"\nsoak = \"5m\"\n",
    )
    .unwrap();
    let dry = |extra: &[&str]| {
        let mut args = vec!["--config".to_owned(), config.to_str().unwrap().to_owned()];
        args.extend(fleet.reboot_args(&[&["--dry-run"], extra].concat()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Run::from(fleet.fleetboot(&args).output().unwrap())
    };
    let run = dry(&[]);
    assert_eq!(run.code, 0, "{}", run.debug());
    assert!(run.stdout.contains("windows: Mon,Tue,Wed,Thu,Fri 22:00-06:00 (Europe/Berlin)"), "{}", run.stdout);
    assert!(run.stdout.contains("only if: `test -f /var/run/reboot-required`"), "{}", run.stdout);
    assert!(run.stdout.contains("soak: 5m"), "{}", run.stdout);
    // The flag beats the file.
    let run = dry(&["--window", "01:00-02:00"]);
    assert!(run.stdout.contains("windows: 01:00-02:00 (Europe/Berlin)"), "{}", run.stdout);
    // A bad value is refused naming the file's key, before anything is touched.
    std::fs::write(&config, "[batch]\nwindows = [\"Mon-Fry 22:00-06:00\"]\n").unwrap();
    let run = dry(&[]);
    assert_eq!(run.code, 2, "{}", run.debug());
    assert!(run.stderr.contains("batch.windows") && run.stderr.contains("\"Fry\""), "{}", run.stderr);
}

/// A tiny webhook receiver on 127.0.0.1: every POST body, in the order received; each answered
/// 200 and the connection closed. Stops when the test ends (its thread dies with the process).
fn webhook() -> (String, std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/T0KEN-SECRET-42", listener.local_addr().unwrap());
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            sink.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, got)
}

#[test]
fn notify_tells_a_webhook_every_step_in_order_and_never_shows_its_secret() {
    let fleet = Fleet::up(2);
    let (url, got) = webhook();
    let run = fleet.reboot(&["--notify", &url, "--concurrency", "1"]);
    assert_eq!(run.code, 0, "{}", run.debug());
    let got = got.lock().unwrap().clone();
    let events: Vec<String> =
        got.iter().map(|m| format!("{} {}", m["event"].as_str().unwrap(), m["host"].as_str().unwrap_or("-"))).collect();
    assert_eq!(events, ["started -", "rebooted h001", "rebooted h002", "finished -"], "{got:?}");
    assert!(got[3]["text"].as_str().unwrap().contains("2 rebooted, 0 failed"), "{got:?}");
    assert!(got.iter().all(|m| m["run_id"] == got[0]["run_id"]));
    assert!(!run.stdout.contains("T0KEN") && !run.stderr.contains("T0KEN"));

    // A webhook that is gone: warnings naming only its host, and the run goes on.
    let port = crate::common::free_port();
    let gone = format!("http://127.0.0.1:{port}/hooks/T0KEN-SECRET-42");
    let run = fleet.reboot(&["--notify", &gone, "--notify-format", "slack"]);
    assert_eq!(run.code, 0, "{}", run.debug());
    assert!(run.stderr.contains(&format!("--notify http://127.0.0.1:{port}/…: could not connect; the run goes on")), "{}", run.stderr);
    assert!(!run.stdout.contains("T0KEN") && !run.stderr.contains("T0KEN"), "{}", run.debug());
    let journal = std::fs::read_to_string(run.journal()).unwrap();
    assert!(!journal.contains("T0KEN"), "the journal keeps no webhook URL");
}

/// A tiny Alertmanager: `GET /api/v2/alerts` answers the alerts in `firing` (names), each
/// active, as Alertmanager's API v2 lists them.
fn alertmanager(firing: std::sync::Arc<std::sync::Mutex<Vec<&'static str>>>) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            let _ = reader.read_line(&mut request);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let body = if request.starts_with("GET /api/v2/alerts?") {
                let alerts: Vec<serde_json::Value> = firing
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|name| {
                        serde_json::json!({"labels": {"alertname": name, "severity": "critical"}, "annotations": {},
                            "status": {"state": "active", "silencedBy": [], "inhibitedBy": []},
                            "startsAt": "2026-12-04T10:00:00Z", "endsAt": "2026-12-04T11:00:00Z", "updatedAt": "2026-12-04T10:00:00Z",
                            "fingerprint": "0123456789abcdef", "receivers": [{"name": "default"}]})
                    })
                    .collect();
                serde_json::to_string(&alerts).unwrap()
            } else {
                String::new()
            };
            let status = if body.is_empty() { "404 Not Found" } else { "200 OK" };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn an_alert_firing_holds_every_new_reboot_until_it_resolves_and_filtered_ones_never_do() {
    let fleet = Fleet::up(2);
    let firing = std::sync::Arc::new(std::sync::Mutex::new(vec!["Watchdog", "NodeFilesystemAlmostFull"]));
    let url = alertmanager(firing.clone());
    let journal = fleet.path("alerts.jsonl");
    let args = fleet.reboot_args(&[
        "--block-on-alerts",
        &url,
        "--alert-filter-regexp",
        "^(Watchdog|InfoInhibitor)$",
        "--journal",
        journal.to_str().unwrap(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = fleet.fleetboot(&args).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let start = std::time::Instant::now();
    let held = loop {
        let found = journal::load(&journal).ok().and_then(|(records, _)| {
            records.into_iter().find(|r| matches!(&r.entry, Entry::Held { reason, .. } if reason.contains("alerts firing")))
        });
        if let Some(held) = found {
            break held;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(60), "no hold for the firing alert");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let Entry::Held { reason, .. } = &held.entry else { unreachable!() };
    assert_eq!(reason, &format!("alerts firing at {url}/…: NodeFilesystemAlmostFull"), "Watchdog is filtered out");
    assert!(fleet.names.iter().all(|n| fleet.count_events(n, "reboot-requested") == 0));
    let resolved_at = now_ms();
    firing.lock().unwrap().retain(|a| *a == "Watchdog");
    let run = Run::from(child.wait_with_output().unwrap());
    assert_eq!(run.code, 0, "{}", run.debug());
    for name in &fleet.names {
        let requested = fleet.events(name).iter().find(|(_, w)| w == "reboot-requested").map(|(at, _)| *at).unwrap();
        assert!(requested >= resolved_at, "{name} rebooted while the alert fired");
    }
}

fn scrape(address: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nhost: {address}\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn metrics_scraped_mid_run_show_the_nodes_by_state_the_proofs_and_the_hold() {
    let fleet = Fleet::up(2);
    let firing = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let alerts = alertmanager(firing.clone());
    let address = format!("127.0.0.1:{}", crate::common::free_port());
    let journal = fleet.path("metrics.jsonl");
    let args = fleet.reboot_args(&[
        "--metrics-listen",
        &address,
        "--block-on-alerts",
        &alerts,
        "--soak",
        "3s",
        "--journal",
        journal.to_str().unwrap(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = fleet.fleetboot(&args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let wait_for = |what: &str, matches: &dyn Fn(&Entry) -> bool| {
        let start = std::time::Instant::now();
        while !journal::load(&journal).map(|(records, _)| records.iter().any(|r| matches(&r.entry))).unwrap_or(false) {
            assert!(start.elapsed() < std::time::Duration::from_secs(60), "no {what}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    // The first node proven; the second soaks, then an alert fires: the run holds.
    wait_for("confirmed", &|e| matches!(e, Entry::Confirmed { .. }));
    firing.lock().unwrap().push("NodeDown");
    wait_for("held", &|e| matches!(e, Entry::Held { reason, .. } if reason.contains("NodeDown")));
    let text = scrape(&address, "/metrics");
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    for line in [
        "fleetboot_nodes{state=\"rebooted\"} 1",
        "fleetboot_nodes{state=\"pending\"} 1",
        "fleetboot_reboots_total 1",
        "fleetboot_failures_total 0",
        "fleetboot_held 1",
        "fleetboot_dispatch_to_proof_seconds_count 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} missing:\n{text}");
    }
    assert!(scrape(&address, "/other").starts_with("HTTP/1.1 404"));
    firing.lock().unwrap().clear();
    let run = Run::from(child.wait_with_output().unwrap());
    assert_eq!(run.code, 0, "{}", run.debug());
    assert!(run.stderr.contains(&format!("metrics: http://{address}/metrics")), "{}", run.stderr);
}
