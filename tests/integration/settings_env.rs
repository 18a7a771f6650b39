//! The `FLEETBOOT_*` environment as a layer of the settings: below the flags, above the config
//! file, judged by what the run journaled and did on real sshd hosts; a bad variable is refused
//! (exit 2) naming it, before any host is contacted; `--context` decided once, the same way.

use fleetboot::adapters::journal;
use fleetboot_core::journal::Entry;

use crate::common::sim::{Sim, boot_ids, two_cluster_kubeconfig};
use crate::common::{Fleet, Run};

/// The concurrency the run journaled at its start (what a resume would keep).
fn journaled_concurrency(run: &Run) -> usize {
    let (records, _) = journal::load(&run.journal()).expect("journal loads");
    records
        .into_iter()
        .find_map(|r| match r.entry {
            Entry::RunStarted { settings: Some(s), .. } => Some(s.concurrency),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no journaled settings\n{}", run.debug()))
}

fn reboot(fleet: &Fleet, config: &std::path::Path, env: &[(&str, &str)], extra: &[&str]) -> Run {
    let args = fleet.reboot_args(extra);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend(["--config", config.to_str().unwrap()]);
    let mut cmd = fleet.fleetboot(&args);
    cmd.envs(env.iter().copied());
    Run::from(cmd.output().expect("run fleetboot"))
}

#[test]
fn the_environment_takes_effect_below_a_flag_and_above_the_file() {
    let fleet = Fleet::up(1);
    let name = fleet.names[0].clone();
    let config = fleet.path("fleetboot.toml");
    std::fs::write(&config, "[reboot]\nconcurrency = 4\n").unwrap();

    let file_only = reboot(&fleet, &config, &[], &[]);
    assert_eq!(file_only.code, 0, "{}", file_only.debug());
    assert_eq!(journaled_concurrency(&file_only), 4, "the file beats the default");

    let env = reboot(&fleet, &config, &[("FLEETBOOT_CONCURRENCY", "3")], &[]);
    assert_eq!(env.code, 0, "{}", env.debug());
    assert_eq!(journaled_concurrency(&env), 3, "the environment beats the file");

    let flag = reboot(&fleet, &config, &[("FLEETBOOT_CONCURRENCY", "3")], &["--concurrency", "2"]);
    assert_eq!(flag.code, 0, "{}", flag.debug());
    assert_eq!(journaled_concurrency(&flag), 2, "the flag beats the environment");

    // Each run rebooted the host once and proved it.
    assert_eq!(fleet.count_events(&name, "reboot-requested"), 3);
    assert_eq!(fleet.count_events(&name, "up"), 3);
}

#[test]
fn a_bad_variable_exits_2_naming_it_before_any_host_is_touched() {
    let fleet = Fleet::up(1);
    let name = fleet.names[0].clone();
    let config = fleet.path("fleetboot.toml");
    std::fs::write(&config, "[reboot]\nconcurrency = 4\n").unwrap();
    for (var, value) in [("FLEETBOOT_CONCURRENCY", "0"), ("FLEETBOOT_TRANSPORT", "telnet"), ("FLEETBOOT_POLL_INTERVAL", "soon")] {
        // A flag for the same setting does not hide a bad variable: bad input is refused wherever it is.
        let run = reboot(&fleet, &config, &[(var, value)], &["--concurrency", "1"]);
        assert_eq!(run.code, 2, "{var}={value}: {}", run.debug());
        assert!(run.stderr.contains(&format!("environment variable {var}: ")) && run.stderr.contains(value), "{}", run.debug());
        assert!(run.stdout.is_empty(), "nothing started: {}", run.debug());
    }
    assert_eq!(fleet.count_events(&name, "reboot-requested"), 0, "no host was rebooted");
    let journals = std::fs::read_dir(fleet.path("state")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(journals, 0, "no journal was written");
}

/// `--context` is decided once for every command: flag > `FLEETBOOT_CONTEXT` > the config's
/// `[cluster] context` > the kubeconfig's current one. Cluster `a` (current) has two nodes,
/// `b` three, so the node count says which cluster a command reached.
#[test]
fn the_context_comes_from_the_flag_then_the_environment_then_the_file_then_the_kubeconfig() {
    let a = Sim::start(1, 1);
    let b = Sim::start(1, 2);
    let kubeconfig = b.path("two-clusters");
    two_cluster_kubeconfig(&a, &b, &kubeconfig);
    let kubeconfig = kubeconfig.to_str().unwrap();
    // b's own config (its SSH and BMC settings), its [cluster] naming context "b".
    let with_context = b.path("with-context.toml");
    let text = std::fs::read_to_string(b.config()).unwrap().replace("[cluster]\n", "[cluster]\ncontext = \"b\"\n");
    assert!(text.contains("context = \"b\""), "{text}");
    std::fs::write(&with_context, text).unwrap();

    let nodes = |config: Option<&std::path::Path>, env: Option<&str>, flag: Option<&str>| -> usize {
        let mut args = vec!["nodes", "--kubeconfig", kubeconfig, "-o", "json"];
        if let Some(flag) = flag {
            args.extend(["--context", flag]);
        }
        let mut cmd = std::process::Command::new(crate::common::fleetboot_bin());
        if let Some(config) = config {
            cmd.arg("--config").arg(config);
        }
        cmd.args(&args).env("HOME", b.dir.path()).env_remove("FLEETBOOT_CONTEXT");
        if let Some(env) = env {
            cmd.env("FLEETBOOT_CONTEXT", env);
        }
        let run = Run::from(cmd.output().unwrap());
        assert_eq!(run.code, 0, "{}", run.debug());
        serde_json::from_str::<serde_json::Value>(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.debug())).as_array().unwrap().len()
    };
    assert_eq!(nodes(None, None, None), 2, "no context anywhere: the kubeconfig's current one, a");
    assert_eq!(nodes(Some(&with_context), None, None), 3, "the file beats the kubeconfig's current context");
    assert_eq!(nodes(Some(&with_context), Some("a"), None), 2, "the environment beats the file");
    assert_eq!(nodes(Some(&with_context), Some("a"), Some("b")), 3, "the flag beats the environment");

    // A reboot reaches the same cluster: FLEETBOOT_CONTEXT=b reboots b's nodes, a stays as it was.
    let (a_before, b_before) = (boot_ids(&a), boot_ids(&b));
    let journal = b.path("b.jsonl");
    let args = ["reboot", "--kubeconfig", kubeconfig, "--all", "--poll-interval", "200ms", "--output", "json"];
    let run: Run = b
        .fleetboot(&[&args[..], &["--journal", journal.to_str().unwrap()]].concat())
        .env("FLEETBOOT_CONTEXT", "b")
        .output()
        .unwrap()
        .into();
    assert_eq!(run.code, 0, "{}", run.debug());
    let b_after = boot_ids(&b);
    assert!(b_before.iter().all(|id| !b_after.contains(id)), "every node of b rebooted: {b_before:?} → {b_after:?}");
    assert_eq!(boot_ids(&a), a_before, "cluster a, the current context, was not touched");
    let (_, state) = journal::load(&journal).unwrap();
    assert_eq!(state.cluster.expect("a cluster run journals its cluster").server.trim_end_matches('/'), b.api);
}

/// A resume takes the flags over the journal's values, never the environment: the variable
/// that differs from the journaled concurrency neither changes it nor is refused as a conflict;
/// the same value as a flag is refused (no `--override-journal`), naming the flag.
#[test]
fn a_resume_keeps_the_journaled_value_under_a_variable_and_refuses_a_differing_flag() {
    let fleet = Fleet::up(1);
    let name = fleet.names[0].clone();
    let run = fleet.reboot(&["--concurrency", "3"]);
    assert_eq!(run.code, 0, "{}", run.debug());
    let journal_path = run.journal();

    let resumed = {
        let user = fleet.user.as_str();
        let identity = fleet.path("id_ed25519");
        let known = fleet.path("known_hosts");
        let args = [
            "reboot",
            "--resume",
            journal_path.to_str().unwrap(),
            "--user",
            user,
            "--identity",
            identity.to_str().unwrap(),
            "--known-hosts",
            known.to_str().unwrap(),
            "--output",
            "json",
        ];
        Run::from(fleet.fleetboot(&args).env("FLEETBOOT_CONCURRENCY", "2").output().unwrap())
    };
    assert_eq!(resumed.code, 0, "{}", resumed.debug());
    let (records, _) = journal::load(&journal_path).unwrap();
    let resumes: Vec<(usize, Vec<String>)> = records
        .into_iter()
        .filter_map(|r| match r.entry {
            Entry::RunResumed { settings: Some(s), overridden, .. } => Some((s.concurrency, overridden)),
            _ => None,
        })
        .collect();
    assert_eq!(resumes, [(3, vec![])], "the journaled concurrency kept, nothing overridden");

    let refused = fleet.resume(&journal_path, &["--concurrency", "2"]);
    assert_eq!(refused.code, 2, "{}", refused.debug());
    assert!(refused.stderr.contains("--concurrency 2 (the journal says 3)"), "{}", refused.debug());
    assert_eq!(fleet.count_events(&name, "reboot-requested"), 1, "the finished run rebooted nothing again");
}
