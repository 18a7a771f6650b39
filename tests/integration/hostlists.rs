//! Cluster safety whatever the host list came from: a host file (or the config's `[[hosts]]`)
//! naming a configured cluster's nodes gets the cluster's rules — proof through the API, pools,
//! the control plane one at a time and last, the lease. The runs are the engine in process
//! (common/inproc.rs); the plans a person reads (`--dry-run`) are the binary's.

use crate::common::sim::Sim;
use crate::common::{Run, max_overlap};
use fleetboot::ExitCode;

#[test]
fn a_host_file_of_every_node_keeps_the_control_plane_one_at_a_time_and_proves_through_the_api() {
    let sim = Sim::in_process(3, 3);
    let hosts = sim.path("hosts.txt");
    let hosts = hosts.to_str().unwrap();
    let (plan, journal) = (sim.path("plan"), sim.path("run.jsonl"));
    let dry: Run = sim.fleetboot(&["reboot", "--hosts-file", hosts, "--concurrency", "4", "--dry-run"]).output().unwrap().into();
    assert_eq!(dry.code, 0, "{}", dry.debug());
    std::fs::write(plan, &dry.stdout).unwrap();
    assert!(dry.stdout.contains("master (≤1 at once, after all others)"), "{}", dry.stdout);
    assert!(dry.stdout.lines().any(|l| l.contains("master-0") && l.contains(" master-0 ")), "each host shows its node: {}", dry.stdout);
    let run = sim.reboot_in_process(&[
        "--hosts-file",
        hosts,
        "--concurrency",
        "4",
        "--poll-interval",
        "200ms",
        "--journal",
        journal.to_str().unwrap(),
    ]);
    assert_eq!(run.exit(), ExitCode::Ok, "{}", run.debug());
    let intervals = sim.reboot_intervals();
    assert_eq!(intervals.len(), 6, "every node rebooted once: {intervals:?}");
    let masters: Vec<(u64, u64)> = intervals.iter().filter(|(n, ..)| n.starts_with("master")).map(|(_, a, b)| (*a, *b)).collect();
    assert_eq!(max_overlap(&masters), 1, "never two control-plane nodes down at once: {masters:?}");
    let last_worker_up = intervals.iter().filter(|(n, ..)| n.starts_with("worker")).map(|(_, _, up)| *up).max().unwrap();
    assert!(masters.iter().all(|(start, _)| *start > last_worker_up), "the control plane goes last");
    let (_, state) = fleetboot::adapters::journal::load(&journal).unwrap();
    assert!(state.api_proof && state.cluster.is_some(), "a cluster run, journaled as such");
    assert!(state.records.values().all(|r| r.api_boot_id.is_some()), "every reboot proven through the API");
}

#[test]
fn a_host_two_nodes_claim_is_refused_naming_both() {
    let sim = Sim::in_process(0, 2);
    let worker_1 = sim.kubectl_ok(&["get", "node", "worker-1", "-o", "jsonpath={.status.addresses[?(@.type==\"InternalIP\")].address}"]);
    // Named like one node, addressed like the other.
    let ssh_port = std::fs::read_to_string(sim.path("hosts.txt")).unwrap().lines().next().unwrap().rsplit(':').next().unwrap().to_owned();
    let hosts = sim.path("ambiguous.txt");
    std::fs::write(&hosts, format!("worker-0 {worker_1}:{ssh_port}\n")).unwrap();
    let run = sim.reboot_in_process(&["--hosts-file", hosts.to_str().unwrap()]);
    assert_eq!(run.exit(), ExitCode::BadInput, "{}", run.debug());
    // Named like worker-0, at worker-1's address: a name is not an identity, so neither.
    assert!(
        run.error().contains("named like the cluster's node worker-0") && run.error().contains("it is node worker-1's"),
        "{}",
        run.debug()
    );
    assert!(run.events.is_empty(), "refused before the run started: {}", run.debug());
    assert!(!sim.control("GET", "nodes", "").contains("reboot-requested"), "nothing touched");
}

#[test]
fn no_cluster_is_pure_host_list_mode() {
    let sim = Sim::in_process(1, 1);
    let journal = sim.path("plain.jsonl");
    let hosts = sim.path("hosts.txt");
    let args = ["--no-cluster", "--hosts-file", hosts.to_str().unwrap(), "--poll-interval", "200ms"];
    let run = sim.reboot_in_process(&[&args[..], &["--journal", journal.to_str().unwrap()]].concat());
    assert_eq!(run.exit(), ExitCode::Ok, "{}", run.debug());
    let (_, state) = fleetboot::adapters::journal::load(&journal).unwrap();
    assert!(!state.api_proof && state.cluster.is_none(), "no cluster: proven over SSH alone");
    assert!(state.records.values().all(|r| r.api_boot_id.is_none()));
}

#[test]
fn a_configured_cluster_that_cannot_be_reached_is_an_error_before_anything_is_touched() {
    let sim = Sim::in_process(0, 1);
    let kubeconfig = sim.path("unreachable");
    // A cluster on a loopback port nothing listens on.
    let port = crate::common::free_port();
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: x\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: x\n  context:\n    cluster: x\n    user: u\ncurrent-context: x\nusers:\n- name: u\n  user: {{}}\n"
    );
    std::fs::write(&kubeconfig, text).unwrap();
    let hosts = sim.path("hosts.txt");
    let run = sim.reboot_in_process(&["--hosts-file", hosts.to_str().unwrap(), "--kubeconfig", kubeconfig.to_str().unwrap()]);
    assert_eq!(run.exit(), ExitCode::BadInput, "{}", run.debug());
    assert!(run.error().contains(&format!("127.0.0.1:{port}")), "names the cluster: {}", run.debug());
    assert!(!sim.control("GET", "nodes", "").contains("reboot-requested"), "nothing touched");
}

#[test]
fn a_mixed_list_reboots_the_nodes_under_the_clusters_rules_and_a_plain_host_over_ssh_alone() {
    let sim = Sim::in_process(1, 1);
    let fleet = crate::common::Fleet::up(1);
    // One host file: the cluster's nodes and a plain sshd host that is no node.
    let hosts = sim.path("mixed.txt");
    let lines = std::fs::read_to_string(sim.path("hosts.txt")).unwrap() + &std::fs::read_to_string(fleet.path("hosts.txt")).unwrap();
    std::fs::write(&hosts, lines).unwrap();
    let known = sim.path("mixed_known_hosts");
    let keys = std::fs::read_to_string(sim.path("known_hosts")).unwrap() + &std::fs::read_to_string(fleet.path("known_hosts")).unwrap();
    std::fs::write(&known, keys).unwrap();
    let journal = sim.path("mixed.jsonl");
    let (sim_key, fleet_key) = (sim.path("id_ed25519"), fleet.path("id_ed25519"));
    let args = [
        "--hosts-file",
        hosts.to_str().unwrap(),
        "--user",
        &fleet.user,
        "--identity",
        sim_key.to_str().unwrap(),
        "--identity",
        fleet_key.to_str().unwrap(),
        "--known-hosts",
        known.to_str().unwrap(),
        "--concurrency",
        "2",
        "--poll-interval",
        "200ms",
        "--journal",
        journal.to_str().unwrap(),
    ];
    let dry: Run = sim.fleetboot(&[&["reboot"], &args[..], &["--dry-run"]].concat()).output().unwrap().into();
    assert!(dry.stdout.contains("not a node"), "the plain host is shown as no node: {}", dry.debug());
    let run = sim.reboot_in_process(&args);
    assert_eq!(run.exit(), ExitCode::Ok, "{}", run.debug());
    let (_, state) = fleetboot::adapters::journal::load(&journal).unwrap();
    assert!(state.api_proof, "a cluster run");
    assert_eq!(state.grouping.standalone, ["h001"], "the plain host is standalone");
    for node in ["master-0", "worker-0"] {
        assert!(state.records[node].api_boot_id.is_some(), "{node} proven through the API");
    }
    assert!(state.records["h001"].api_boot_id.is_none() && state.records["h001"].new_boot_id.is_some(), "h001 proven over SSH alone");
    assert_eq!(fleet.count_events("h001", "reboot-requested"), 1, "the plain host rebooted once");
    assert_eq!(sim.reboot_intervals().len(), 2, "both nodes rebooted");
}

/// A host-list line written by name, under a cluster, whose name the resolver gives no answer
/// for: whether it is a node is unknown, so the run is refused before anything is touched,
/// naming the line and why (never guessed a plain host, which would reboot a node undrained
/// and outside its pool's rules). The real resolver (glibc's, through `getaddrinfo`), pointed
/// by a private `/etc/resolv.conf` (a mount namespace of the fleetboot process alone) at a
/// loopback name server: first none at all (the resolver says so at once, `EAI_AGAIN`), then
/// one that takes every query and never answers (fleetboot's own 12 s per lookup).
#[test]
fn a_host_name_the_resolver_does_not_answer_for_refuses_the_run_naming_the_line() {
    let sim = Sim::in_process(0, 1);
    let hosts = sim.path("by-name.txt");
    let lines = std::fs::read_to_string(sim.path("hosts.txt")).unwrap() + "web-1 dead-host.fleetboot.test:22\n";
    std::fs::write(&hosts, lines).unwrap();
    let conf = sim.path("resolv.conf");
    // The resolver's own timeout far past fleetboot's, so the silent server is fleetboot's to give up on.
    std::fs::write(&conf, "nameserver 127.53.0.1\noptions timeout:30 attempts:1\n").unwrap();
    let run = || -> Run {
        let inner = sim.fleetboot(&["reboot", "--hosts-file", hosts.to_str().unwrap(), "--poll-interval", "200ms"]);
        let mut cmd = std::process::Command::new("unshare");
        cmd.args(["-m", "sh", "-c", r#"mount --bind "$0" /etc/resolv.conf && exec "$@""#])
            .arg(&conf)
            .arg(inner.get_program())
            .args(inner.get_args());
        for (key, value) in inner.get_envs() {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        cmd.output().unwrap().into()
    };
    let unreachable = run();
    assert_eq!(unreachable.code, 2, "{}", unreachable.debug());
    assert!(
        unreachable.stderr.contains("dead-host.fleetboot.test (")
            && unreachable.stderr.contains("by-name.txt:2): the resolver could not answer now (EAI_AGAIN"),
        "names the line and why: {}",
        unreachable.debug()
    );
    assert!(unreachable.stderr.contains("1 host name of the host list could not be resolved"), "{}", unreachable.debug());
    // A name server that takes the query and never answers.
    let _silent = std::net::UdpSocket::bind("127.53.0.1:53").unwrap();
    let silent = run();
    assert_eq!(silent.code, 2, "{}", silent.debug());
    assert!(silent.stderr.contains("by-name.txt:2): the resolver did not answer within 12s"), "names the line and why: {}", silent.debug());
    assert!(!sim.control("GET", "nodes", "").contains("reboot-requested"), "nothing touched");
    assert!(sim.kubectl_ok(&["get", "leases", "-A", "-o", "name"]).is_empty(), "no lease taken");
}
