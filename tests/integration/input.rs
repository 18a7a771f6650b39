//! Bad input is refused with a clear message before any host is contacted.

use crate::common::{Fleet, Run};

fn fails_with(fleet: &Fleet, args: &[&str], expected: &str) {
    let run = Run::from(fleet.fleetboot(args).output().unwrap());
    assert_eq!(run.code, 2, "{args:?}: {}", run.debug());
    assert!(run.stderr.contains(expected), "{args:?}: expected {expected:?} in:\n{}", run.stderr);
    for name in &fleet.names {
        assert!(fleet.events(name).is_empty(), "{name} was contacted despite bad input");
    }
}

#[test]
fn bad_input_names_the_problem_and_touches_nothing() {
    let fleet = Fleet::up(1);
    let dir = fleet.dir.path();
    let base = fleet.reboot_args(&[]);
    let with = |extra: &[&str]| -> Vec<String> {
        let mut v = base.clone();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |args: Vec<String>, expected: &str| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        fails_with(&fleet, &refs, expected);
    };

    // A flag's value is refused naming the flag (its config key is named for the file's).
    run(with(&["--rate", "5/fortnight"]), "for '--rate <RATE>': bad unit \"fortnight\"");
    run(with(&["--reboot-timeout", "soon"]), "for '--reboot-timeout <DURATION>'");
    run(with(&["--max-failures", "lots"]), "for '--max-failures <N|P%>'");

    let missing = dir.join("missing.txt");
    let mut args = base.clone();
    let at = args.iter().position(|a| a == "--hosts-file").unwrap();
    args[at + 1] = missing.to_str().unwrap().to_owned();
    run(args.clone(), &format!("failed to read host file {}", missing.display()));

    let bad_hosts = dir.join("bad-hosts.txt");
    std::fs::write(&bad_hosts, "ok 127.0.0.1\n# fine\nthree fields here\n").unwrap();
    args[at + 1] = bad_hosts.to_str().unwrap().to_owned();
    run(args.clone(), &format!("{}:3: expected `[name] address[:port]`", bad_hosts.display()));

    let config = dir.join("bad.toml");
    std::fs::write(&config, "[reboot]\nconcurency = 2\n").unwrap();
    run(with(&["--config", config.to_str().unwrap()]), "`reboot.concurency`: unknown key; [reboot] has ");

    let mut args = base.clone();
    let at = args.iter().position(|a| a == "--identity").unwrap();
    args[at + 1] = dir.join("no-such-key").to_str().unwrap().to_owned();
    run(args, "failed to read SSH identity");

    let garbage_key = dir.join("garbage_key");
    std::fs::write(&garbage_key, "not a key").unwrap();
    let mut args = base.clone();
    args[at + 1] = garbage_key.to_str().unwrap().to_owned();
    run(args, &format!("failed to read SSH identity {}", garbage_key.display()));

    let journal = dir.join("not-a-journal.jsonl");
    std::fs::write(&journal, "{\"v\":1,\"at_ms\":1,\"event\":\"down\",\"host\":\"x\"}\n").unwrap();
    let refs = ["reboot", "--resume", journal.to_str().unwrap()];
    fails_with(&fleet, &refs, "does not start with a run_started record");
}

#[test]
fn no_identity_at_all_is_a_clear_error() {
    let fleet = Fleet::up(1);
    let hosts = fleet.path("hosts.txt");
    let run = Run::from(fleet.fleetboot(&["reboot", "--hosts-file", hosts.to_str().unwrap()]).output().unwrap());
    assert_eq!(run.code, 2, "{}", run.debug());
    assert!(run.stderr.contains("no SSH identity"), "{}", run.stderr);
}

#[test]
fn huge_durations_and_a_parallel_past_the_open_file_limit_exit_2_naming_the_key_without_a_panic() {
    let fleet = Fleet::up(1);
    let base = fleet.reboot_args(&[]);
    let with = |extra: &[&str]| -> Vec<String> {
        let mut v = base.clone();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |args: Vec<String>, expected: &str| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        fails_with(&fleet, &refs, expected);
        let run = Run::from(fleet.fleetboot(&refs).output().unwrap());
        assert!(!run.stderr.contains("panicked"), "{}", run.debug());
    };
    run(with(&["--reboot-timeout", "500000000y"]), "for '--reboot-timeout <DURATION>': \"500000000y\" is longer than the longest");
    run(with(&["--command-timeout", "99999999999999999999999s"]), "for '--command-timeout <DURATION>'");
    run(with(&["--parallel", "18446744073709551615"]), "bad value for reboot.parallel: 18446744073709551615 is more than");
    let config = fleet.path("huge.toml");
    std::fs::write(&config, "[redfish]\ngraceful_timeout = \"1000000y\"\n").unwrap();
    run(with(&["--config", config.to_str().unwrap()]), "bad value for redfish.graceful_timeout");
    std::fs::write(&config, "[redfish]\nbusy_retries = 4000000000\n").unwrap();
    run(with(&["--config", config.to_str().unwrap()]), "bad value for redfish.busy_retries");
    // A lease is whole seconds, renewed every third of it: 0 s would spin, hours would block.
    for (command, duration) in [("reboot", "0s"), ("reboot", "2500ms"), ("migrate", "2h")] {
        let run = Run::from(fleet.fleetboot(&[command, "--lease-duration", duration]).output().unwrap());
        assert_eq!(run.code, 2, "{}", run.debug());
        assert!(run.stderr.contains("--lease-duration") && run.stderr.contains("whole number of seconds from 3s to 1h"), "{}", run.debug());
    }
}
