//! Safety from what the world says, not from the run's own bookkeeping (issue 19): a host-list
//! line is a node by its address alone, a host list with no node touches no cluster, a system
//! that is powered off stays off, and every input is bounded (durations, empty journals, links
//! at a journal's place, verify's baseline from this cluster's own migration).

use std::path::Path;

use crate::common::sim::Sim;
use crate::common::{Fleet, Run, dispatch_counts};

/// The simulation's own history of one node (what the node and its BMC saw).
fn history(sim: &Sim, node: &str) -> Vec<String> {
    let nodes: serde_json::Value = serde_json::from_str(&sim.control("GET", "nodes", "")).unwrap();
    let node = nodes.as_array().unwrap().iter().find(|n| n["name"] == node).unwrap().clone();
    node["history"].as_array().unwrap().iter().map(|e| e[1].as_str().unwrap().to_owned()).collect()
}

/// What changed a node: its history without the BMC's session bookkeeping.
fn actions(sim: &Sim, node: &str) -> Vec<String> {
    history(sim, node).into_iter().filter(|e| !e.starts_with("bmc-session")).collect()
}

/// Whether anything disruptive reached any node of the simulation (SSH reboot, BMC reset).
fn anything_touched(sim: &Sim) -> bool {
    let nodes = sim.control("GET", "nodes", "");
    nodes.contains("reboot-requested") || nodes.contains("bmc-reset")
}

fn lease_exists(sim: &Sim, name: &str) -> bool {
    sim.kubectl(&["get", "lease", name, "-n", "kube-system"]).0
}

fn address_of(sim: &Sim, node: &str) -> String {
    sim.kubectl_ok(&["get", "node", node, "-o", "jsonpath={.status.addresses[?(@.type==\"InternalIP\")].address}"])
}

#[test]
fn a_lab_machine_named_like_a_node_is_refused_naming_both_and_nothing_is_touched() {
    let sim = Sim::start(1, 1);
    let master_ip = address_of(&sim, "master-0");
    let lab = sim.path("lab.txt");
    std::fs::write(&lab, "# the lab\nmaster-0 127.0.0.9:1\n").unwrap();
    for extra in [&["--dry-run"][..], &[]] {
        let args = [&["reboot", "--hosts-file", lab.to_str().unwrap(), "--output", "json"][..], extra].concat();
        let run: Run = sim.fleetboot(&args).output().unwrap().into();
        assert_eq!(run.code, 2, "{}", run.debug());
        for shown in [&format!("{}:2", lab.display()), "master-0", "127.0.0.9", &master_ip, "a name is not an identity"] {
            assert!(run.stderr.contains(shown), "the error shows {shown:?}: {}", run.debug());
        }
    }
    // Nothing touched: no reboot, no BMC reset (the node's own history), no lease taken.
    assert!(!anything_touched(&sim), "{}", sim.control("GET", "nodes", ""));
    assert!(!lease_exists(&sim, "fleetboot"), "the refused run took no lease");

    // The same machine under its own address and another name is that node, and the plan says
    // which line it came from.
    let endpoint = std::fs::read_to_string(sim.path("hosts.txt")).unwrap().lines().find(|l| l.starts_with("master-0 ")).unwrap()
        [("master-0 ".len())..]
        .to_owned();
    let renamed = sim.path("renamed.txt");
    std::fs::write(&renamed, format!("rack12-slot3 {endpoint}\n")).unwrap();
    let dry: Run = sim.fleetboot(&["reboot", "--hosts-file", renamed.to_str().unwrap(), "--dry-run"]).output().unwrap().into();
    assert_eq!(dry.code, 0, "{}", dry.debug());
    assert!(dry.stdout.starts_with("acting on the cluster at http://127.0.0.1:"), "the cluster is named first: {}", dry.stdout);
    let row = dry.stdout.lines().find(|l| l.contains("rack12-slot3")).unwrap_or_else(|| panic!("{}", dry.stdout));
    assert!(row.contains(" master-0 ") && row.contains(&format!("{}:1", renamed.display())), "line name, node, place: {row}");
    // The run names the cluster before anything else, and its journal records it with its context.
    let journal = sim.path("renamed.jsonl");
    let args = ["reboot", "--hosts-file", renamed.to_str().unwrap(), "--poll-interval", "200ms", "--output", "json", "--journal"];
    let run: Run = sim.fleetboot(&[&args[..], &[journal.to_str().unwrap()]].concat()).output().unwrap().into();
    assert_eq!(run.code, 0, "{}", run.debug());
    let first = run.events().into_iter().find(|e| e["type"] == "warning").unwrap();
    assert!(first["message"].as_str().unwrap().starts_with("acting on the cluster at http://127.0.0.1:"), "{first}");
    let (_, state) = fleetboot::adapters::journal::load(&journal).unwrap();
    let context = sim.kubectl_ok(&["config", "current-context"]);
    assert_eq!(state.cluster.and_then(|c| c.context).as_deref(), Some(context.trim()), "the journal names the context");
    assert_eq!(sim.reboot_intervals().len(), 1, "master-0 rebooted once");
}

#[test]
fn a_host_list_with_no_node_touches_no_cluster_even_under_a_broken_kubeconfig() {
    let sim = Sim::start(0, 1);
    let fleet = Fleet::up(1);
    // $KUBECONFIG names a live cluster, none of whose nodes is on the list.
    let journal = fleet.path("plain.jsonl");
    let args = fleet.reboot_args(&["--journal", journal.to_str().unwrap()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run: Run = fleet.fleetboot(&args).env("KUBECONFIG", sim.path("kubeconfig")).output().unwrap().into();
    assert_eq!(run.code, 0, "{}", run.debug());
    let (_, state) = fleetboot::adapters::journal::load(&journal).unwrap();
    assert!(!state.api_proof && state.cluster.is_none(), "a pure host-list run: no cluster in its journal");
    assert!(!lease_exists(&sim, "fleetboot"), "no lease taken on a cluster none of whose nodes is on the list");
    assert!(!run.stdout.contains("acting on the cluster"), "{}", run.debug());
    assert_eq!(fleet.count_events("h001", "reboot-requested"), 1);

    // A $KUBECONFIG that cannot even be loaded names no cluster: the run goes on, and says so.
    let garbage = fleet.path("garbage-kubeconfig");
    std::fs::write(&garbage, "this: [is not a kubeconfig").unwrap();
    for kubeconfig in [garbage.as_path(), Path::new("/nonexistent/kubeconfig")] {
        let run: Run = fleet.fleetboot(&args[..args.len() - 2]).env("KUBECONFIG", kubeconfig).output().unwrap().into();
        assert_eq!(run.code, 0, "{kubeconfig:?}: {}", run.debug());
        assert!(run.stderr.contains("a pure host-list run"), "{}", run.debug());
    }
    assert_eq!(fleet.count_events("h001", "reboot-requested"), 3, "rebooted once per run");
}

#[test]
fn a_powered_off_node_stays_off_through_the_bmc_fallback_and_power_restart_until_yes_power_on() {
    let sim = Sim::start(0, 2);
    let off: Run = sim.fleetboot(&["power", "off", "--yes-power-off", "worker-0"]).output().unwrap().into();
    assert_eq!(off.code, 0, "{}", off.debug());
    let before = actions(&sim, "worker-0");
    assert_eq!(before.last().map(String::as_str), Some("power-off"), "{before:?}");

    // The reboot run: SSH cannot reach it, the BMC says Off: left off, reported, exit 3.
    let args = ["reboot", "--nodes", "worker-0", "--poll-interval", "200ms", "--connect-timeout", "1s", "--output", "json"];
    let run: Run = sim.fleetboot(&args).output().unwrap().into();
    assert_eq!(run.code, 3, "{}", run.debug());
    let (outcome, error) = run.outcomes()["worker-0"].clone();
    assert_eq!(outcome, "powered_off", "{}", run.debug());
    assert!(error.contains("PowerState Off") && error.contains("--yes-power-on"), "{error}");
    let (_, state) = fleetboot::adapters::journal::load(&run.journal()).unwrap();
    assert_eq!(state.records["worker-0"].phase, fleetboot_core::journal::Phase::PoweredOff);
    let plain = Run::from(sim.fleetboot(&["reboot", "--resume", run.journal().to_str().unwrap(), "-o", "plain"]).output().unwrap());
    assert!(plain.stdout.contains("powered off"), "the summary names the outcome: {}", plain.debug());

    // power restart without --yes-power-on: nothing sent, exit 3, says so.
    let restart: Run = sim.fleetboot(&["power", "restart", "worker-0"]).output().unwrap().into();
    assert_eq!(restart.code, 3, "{}", restart.debug());
    assert!(restart.stdout.contains("powered off, left off"), "{}", restart.debug());
    assert_eq!(actions(&sim, "worker-0"), before, "no reset of any kind reached the powered-off node");
    assert!(history(&sim, "worker-1").iter().all(|e| !e.starts_with("bmc-reset")), "the other node untouched");

    // Asked explicitly: On.
    let on: Run = sim.fleetboot(&["power", "restart", "--yes-power-on", "worker-0"]).output().unwrap().into();
    assert_eq!(on.code, 0, "{}", on.debug());
    let after = actions(&sim, "worker-0");
    assert_eq!(&after[before.len()..after.len().min(before.len() + 2)], ["bmc-reset:On", "power-on"], "{after:?}");
}

#[test]
fn durations_from_the_command_line_have_the_configs_bounds() {
    let sim = Sim::start(0, 1);
    let cases: [(&[&str], &str); 6] = [
        (&["reboot", "--all", "--drain", "--dry-run", "--drain-timeout", "1e19s"], "--drain-timeout"),
        (&["reboot", "--all", "--drain", "--dry-run", "--drain-timeout", "10000000000000000000s"], "--drain-timeout"),
        (&["migrate", "--plan", "--operator-timeout", "10000000000000000000s"], "--operator-timeout"),
        (&["migrate", "--plan", "--rollout-timeout", "400days"], "--rollout-timeout"),
        (&["migrate", "--plan", "--poll-interval", "0s"], "--poll-interval"),
        (&["reboot", "--all", "--dry-run", "--poll-interval", "0s"], "--poll-interval"),
    ];
    for (args, flag) in cases {
        let run: Run = sim.fleetboot(args).output().unwrap().into();
        assert_eq!(run.code, 2, "{args:?}: {}", run.debug());
        assert!(run.stderr.contains(flag), "{args:?} names {flag}: {}", run.debug());
        assert!(!run.stderr.contains("panicked"), "{}", run.debug());
    }
    assert!(!anything_touched(&sim));
}

#[test]
fn a_journal_behind_a_symbolic_link_or_not_a_regular_file_is_refused_by_name() {
    let fleet = Fleet::up(1);
    let first = fleet.reboot(&[]);
    assert_eq!(first.code, 0, "{}", first.debug());
    let link = fleet.path("link.jsonl");
    std::os::unix::fs::symlink(first.journal(), &link).unwrap();
    let run = fleet.resume(&link, &[]);
    assert_eq!(run.code, 2, "{}", run.debug());
    assert!(run.stderr.contains(&link.display().to_string()) && run.stderr.contains("symbolic link"), "{}", run.debug());
    // A new run's --journal at a link's place (dangling: it would create the file elsewhere).
    let dangling = fleet.path("dangling.jsonl");
    std::os::unix::fs::symlink(fleet.path("elsewhere.jsonl"), &dangling).unwrap();
    let run = fleet.reboot(&["--journal", dangling.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}", run.debug());
    assert!(run.stderr.contains("symbolic link") && !fleet.path("elsewhere.jsonl").exists(), "{}", run.debug());
    // A FIFO is refused, not waited on.
    let fifo = fleet.path("fifo.jsonl");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let run = fleet.resume(&fifo, &[]);
    assert_eq!(run.code, 2, "{}", run.debug());
    assert!(run.stderr.contains("not a regular file (a FIFO)"), "{}", run.debug());
    assert_eq!(fleet.count_events("h001", "reboot-requested"), 1, "only the first run rebooted");
}

#[test]
fn an_empty_reboot_journal_left_by_a_kill_is_started_afresh_by_migrate_resume() {
    let sim = Sim::start(1, 1);
    // Once the migration holds its own lease, the API fails every Lease creation: step 7 cannot
    // take the reboot lease and stops before its journal is created, as a kill right after the
    // creation of reboot.jsonl would, but for the file...
    let migrate = ["migrate", "--etcd-backup-confirmed", "--poll-interval", "300ms", "--output", "plain"];
    let mut child = sim.fleetboot(&migrate).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    sim.wait_for_migration_journal(r#""step":"backup""#, Some(&mut child));
    sim.control("POST", "fail-requests", r#"{"method": "POST", "resource": "leases", "count": 1000}"#);
    let first: Run = child.wait_with_output().unwrap().into();
    assert_ne!(first.code, 0, "{}", first.debug());
    let dir = sim.migration_dir();
    let journal = dir.join("reboot.jsonl");
    assert!(std::fs::read_to_string(dir.join("migration.jsonl")).unwrap().contains("reboot_journal"), "step 7 began");
    assert!(!journal.exists(), "refused before its journal was created");
    // ...which the kill leaves empty.
    std::fs::write(&journal, "").unwrap();
    sim.control("POST", "fail-requests", r#"{"method": "POST", "resource": "leases", "count": 0}"#);
    let resumed: Run = sim.fleetboot(&["migrate", "--resume", "--poll-interval", "300ms", "--output", "plain"]).output().unwrap().into();
    assert_eq!(resumed.code, 0, "{}", resumed.debug());
    let counts = dispatch_counts(&journal);
    assert_eq!(counts.get("master-0"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("worker-0"), Some(&1), "{counts:?}");
    assert_eq!(sim.kubectl_ok(&["get", "network.config.openshift.io", "cluster", "-o", "jsonpath={.status.networkType}"]), "OVNKubernetes");
}

#[test]
fn verify_takes_its_baseline_from_this_clusters_migration_and_an_unreadable_one_is_named() {
    use fleetboot::adapters::migration_journal::MigrationWriter;
    use fleetboot_core::journal::ClusterIdentity;
    use fleetboot_core::migrate::Flow;
    use fleetboot_core::migrate::record::MigrationEntry;
    let (a, b) = (Sim::start(0, 1), Sim::start(0, 1));
    let identity = |sim: &Sim| ClusterIdentity {
        server: sim.api.clone(),
        cluster_id: Some(sim.kubectl_ok(&["get", "clusterversion", "version", "-o", "jsonpath={.spec.clusterID}"])),
        context: None,
    };
    // One state directory (b's), two clusters' migrations: a's is the newer one, and a pod
    // named like b's broken one was failing on a before a's migration.
    let started = |sim: &Sim, run_id: &str, failing: &[&str]| MigrationEntry::MigrationStarted {
        run_id: run_id.into(),
        target: "OVNKubernetes".into(),
        flow: Flow::TwoPhase,
        version: "4.16.21".into(),
        failing_pods: failing.iter().map(|p| p.to_string()).collect(),
        network_options: None,
        mtu: None,
        geneve_port: None,
        reboot_concurrency: None,
        cluster: Some(identity(sim)),
    };
    let root = b.path("state/migrations");
    MigrationWriter::open(&root.join("20260101T000000Z-1/migration.jsonl")).unwrap().append(started(&b, "b", &[])).unwrap();
    MigrationWriter::open(&root.join("20260102T000000Z-1/migration.jsonl")).unwrap().append(started(&a, "a", &["default/broken"])).unwrap();
    b.fail_daemonset_pod_on("worker-0");
    let verify: Run = b.fleetboot(&["verify", "-o", "json"]).output().unwrap().into();
    assert_eq!(verify.code, 3, "{}", verify.debug());
    let checks: serde_json::Value = serde_json::from_str(&verify.stdout).unwrap();
    let pods = checks.as_array().unwrap().iter().find(|c| c["name"] == "no pod in an error state").unwrap();
    assert_eq!(pods["passed"], false, "b's failing pod counts: a's baseline is not b's: {pods}");
    assert!(pods.to_string().contains("default/broken"), "{pods}");

    // A migration journal that cannot be read is named, never passed over.
    let newest = root.join("20260103T000000Z-1");
    std::fs::create_dir_all(&newest).unwrap();
    std::os::unix::fs::symlink(root.join("20260101T000000Z-1/migration.jsonl"), newest.join("migration.jsonl")).unwrap();
    for args in [&["verify"][..], &["migrate", "--resume"]] {
        let run: Run = b.fleetboot(args).output().unwrap().into();
        assert_eq!(run.code, 2, "{args:?}: {}", run.debug());
        assert!(run.stderr.contains(&newest.join("migration.jsonl").display().to_string()), "{args:?}: {}", run.debug());
        assert!(run.stderr.contains("symbolic link") && run.stderr.contains("cannot tell whether"), "{}", run.debug());
    }
}
