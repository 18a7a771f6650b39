//! The documents' manual procedures, run literally with kubectl against `fleetboot sim`, as an
//! admin rehearses them: the simulation must answer kubectl as a real cluster does.

use crate::common::sim::{KubectlWatch, Sim};

/// The 4.14 offline procedure waits on the pools with `kubectl wait mcp --all
/// --for=condition=Updated=True` (`oc wait` in the documents). kubectl treats a condition whose
/// status.observedGeneration is older than metadata.generation as not yet observed
/// (kubernetes/kubectl `pkg/cmd/wait/condition.go`, `checkCondition`), so the simulated MCO must
/// report the generation it acted on, as the real one does after every patch.
#[test]
fn kubectl_wait_for_updated_pools_ends_after_a_pause_and_unpause() {
    let sim = Sim::start(1, 1);
    for paused in ["true", "false", "true", "false"] {
        sim.kubectl_ok(&["patch", "mcp", "worker", "--type", "merge", "-p", &format!(r#"{{"spec":{{"paused":{paused}}}}}"#)]);
    }
    let generation = sim.kubectl_ok(&["get", "mcp", "worker", "-o", "jsonpath={.metadata.generation}"]);
    assert_ne!(generation, "1", "each patch of the spec is a new generation");
    let (ok, out, err) = sim.kubectl(&["wait", "mcp", "--all", "--for=condition=Updated=True", "--timeout=60s"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("machineconfigpool.machineconfiguration.openshift.io/worker condition met"), "{out}");
    assert_eq!(sim.kubectl_ok(&["get", "mcp", "worker", "-o", "jsonpath={.status.observedGeneration}"]), generation);
}

/// `kubectl drain` as the documents and every admin use it: the DaemonSets that own the node's
/// pods (machine-config-daemon, multus, the network plugin) exist, so `--ignore-daemonsets`
/// passes them over; the node ends cordoned; `kubectl uncordon` undoes it.
#[test]
fn kubectl_drain_of_a_worker_passes_over_its_daemonset_pods() {
    let sim = Sim::start(1, 2);
    let (ok, out, err) = sim.kubectl(&["drain", "worker-0", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=60s"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("node/worker-0 drained"), "{out}{err}");
    for daemonset in ["machine-config-daemon", "multus"] {
        assert!(err.contains(daemonset) || out.contains(daemonset), "{daemonset} named among the ignored: {out}{err}");
    }
    assert_eq!(sim.kubectl_ok(&["get", "node", "worker-0", "-o", "jsonpath={.spec.unschedulable}"]), "true");
    sim.kubectl_ok(&["uncordon", "worker-0"]);
    assert_eq!(sim.kubectl_ok(&["get", "node", "worker-0", "-o", "jsonpath={.spec.unschedulable}"]), "");
}

/// Every owner a pod names exists, with the uid the pod names.
#[test]
fn every_pods_owner_exists_with_its_uid() {
    let sim = Sim::start(1, 2);
    let owners = sim.kubectl_ok(&[
        "get",
        "pods",
        "-A",
        "-o",
        r#"jsonpath={range .items[*]}{.metadata.namespace} {.metadata.ownerReferences[0].kind} {.metadata.ownerReferences[0].name} {.metadata.ownerReferences[0].uid}{"\n"}{end}"#,
    ]);
    let mut checked = 0;
    for line in owners.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [namespace, "DaemonSet", name, uid] = fields[..] else { continue };
        let found = sim.kubectl_ok(&["get", "daemonset", name, "-n", namespace, "-o", "jsonpath={.metadata.uid}"]);
        assert_eq!(found, uid, "{namespace}/{name}");
        checked += 1;
    }
    assert!(checked >= 9, "machine-config-daemon, multus and the plugin on 3 nodes: {owners}");
}

/// The seed's and the documents' multus wait, literally.
#[test]
fn kubectl_rollout_status_of_multus_ends_on_a_settled_cluster() {
    let sim = Sim::start(1, 2);
    let (ok, out, err) = sim.kubectl(&["-n", "openshift-multus", "rollout", "status", "daemonset/multus", "--timeout=60s"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("daemon set \"multus\" successfully rolled out"), "{out}");
}

/// The 4.14 offline migration as the documents write it (openshift-docs
/// `modules/nw-ovn-kubernetes-migration.adoc`), literally with kubectl and OpenSSH's client, no
/// fleetboot: back up, the operators healthy, `spec.migration` cleared then set, the MCO's
/// rollout waited for with `kubectl wait mcp`, the type switched, multus waited for with
/// `rollout status`, the reboot loop over the InternalIPs (`ssh core@$ip sudo shutdown -r -t 3`,
/// with the simulation's port, key and known_hosts in place of StrictHostKeyChecking=no), then
/// every node back with a new boot ID and Ready, and the network type applied.
#[test]
fn the_4_14_offline_procedure_runs_literally_with_kubectl_and_openssh() {
    let sim = Sim::start_with(1, 2, &["--openshift-version", "4.14.38"]);
    let backup = sim.kubectl_ok(&["get", "network.config.openshift.io", "cluster", "-o", "yaml"]);
    assert!(backup.contains("networkType: OpenShiftSDN"), "{backup}");
    for condition in ["Available=True", "Progressing=False", "Degraded=False"] {
        let (ok, out, err) = sim.kubectl(&["wait", "co", "--all", &format!("--for=condition={condition}"), "--timeout=60s"]);
        assert!(ok, "{condition}: {out}{err}");
    }
    let operator = |patch: &str| {
        sim.kubectl_ok(&["patch", "network.operator.openshift.io", "cluster", "--type=merge", "--patch", patch]);
    };
    let pools = PoolWatch::start(&sim);
    operator(r#"{"spec":{"migration":null}}"#);
    operator(r#"{"spec":{"migration":{"networkType":"OVNKubernetes"}}}"#);
    // As Red Hat's CI runs the procedure (openshift/release `ovn-sdn-migration-commands.sh`):
    // the MCO starts, then finishes.
    pools.wait_started_then_updated(&sim);
    let rendered = sim.kubectl_ok(&["get", "mcp", "worker", "-o", "jsonpath={.status.configuration.name}"]);
    assert!(sim.kubectl_ok(&["get", "mc", &rendered, "-o", "yaml"]).contains("configure-ovs.sh OVNKubernetes"));
    sim.kubectl_ok(&[
        "patch",
        "network.config.openshift.io",
        "cluster",
        "--type=merge",
        "--patch",
        r#"{"spec":{"networkType":"OVNKubernetes"}}"#,
    ]);
    let (ok, out, err) = sim.kubectl(&["-n", "openshift-multus", "rollout", "status", "daemonset/multus", "--timeout=120s"]);
    assert!(ok, "{out}{err}");
    reboot_every_node_with_openssh(&sim);
    let (ok, out, err) = sim.kubectl(&["wait", "mcp", "--all", "--for=condition=Updated=True", "--timeout=120s"]);
    assert!(ok, "{out}{err}");
    assert_eq!(sim.kubectl_ok(&["get", "network.config.openshift.io", "cluster", "-o", "jsonpath={.status.networkType}"]), "OVNKubernetes");
    let (ok, out, err) = sim.kubectl(&["wait", "co", "--all", "--for=condition=Available=True", "--timeout=60s"]);
    assert!(ok, "{out}{err}");
}

/// The documents' and Red Hat's CI's `oc wait mcp --all --for=condition=Updating=True`, without
/// its race: kubectl waits on the pools one after another, so a pool whose rollout ends before
/// kubectl reaches it (a one-node pool on the simulation's short timings) never shows
/// Updating=True again and the wait times out. A watch started before the change sees every
/// pool's transition whenever it happens.
struct PoolWatch(KubectlWatch);

impl PoolWatch {
    /// Started before the change that makes the MCO roll out.
    fn start(sim: &Sim) -> PoolWatch {
        PoolWatch(KubectlWatch::start(sim, "mcp", r#"{.metadata.name} {.status.conditions[?(@.type=="Updating")].status}"#))
    }

    /// Every pool was seen Updating=True, then every pool is Updated=True (with kubectl's `wait`:
    /// once updating started, Updated is False until the rollout ends).
    fn wait_started_then_updated(&self, sim: &Sim) {
        let start = std::time::Instant::now();
        let started = |pool: &str| self.0.lines().iter().any(|line| line == &format!("{pool} True"));
        while !(started("master") && started("worker")) {
            assert!(start.elapsed() < std::time::Duration::from_secs(120), "every pool Updating=True: {:?}", self.0.lines());
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let (ok, out, err) = sim.kubectl(&["wait", "mcp", "--all", "--for=condition=Updated=True", "--timeout=180s"]);
        assert!(ok, "Updated=True: {out}{err}");
    }
}

/// The documents' reboot loop, `ssh core@$ip sudo shutdown -r -t 3` over every InternalIP with
/// OpenSSH's client (the simulation's port, key and known_hosts in place of
/// StrictHostKeyChecking=no), then every node back with a new boot ID and Ready.
fn reboot_every_node_with_openssh(sim: &Sim) {
    let before = sim.kubectl_ok(&["get", "nodes", "-o", "jsonpath={.items[*].status.nodeInfo.bootID}"]);
    let ips = sim.kubectl_ok(&["get", "nodes", "-o", r#"jsonpath={.items[*].status.addresses[?(@.type=="InternalIP")].address}"#]);
    for ip in ips.split_whitespace() {
        let status = openssh(sim, &[], ip).args(["sudo", "shutdown", "-r", "-t", "3"]).status().unwrap();
        assert!(status.success(), "ssh core@{ip}");
    }
    wait_every_node_back(sim, &before);
}

/// OpenSSH's client to `core@ip` with the simulation's port, key and known_hosts (in place of
/// StrictHostKeyChecking=no), `options` before the destination.
fn openssh(sim: &Sim, options: &[&str], ip: &str) -> std::process::Command {
    let config = std::fs::read_to_string(sim.path("fleetboot.toml")).unwrap();
    let port = config.lines().find_map(|l| l.strip_prefix("port = ")).unwrap().trim().to_owned();
    let mut ssh = std::process::Command::new("ssh");
    ssh.args(["-F", "/dev/null", "-p", &port, "-i"])
        .arg(sim.path("id_ed25519"))
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", sim.path("known_hosts").display()))
        .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"])
        .args(options)
        .arg(format!("core@{ip}"));
    ssh
}

/// Until every node shows a boot ID other than `before`'s and Ready (at most 120 s: the limit
/// only ends a hung test).
fn wait_every_node_back(sim: &Sim, before: &str) {
    let start = std::time::Instant::now();
    loop {
        let after = sim.kubectl_ok(&["get", "nodes", "-o", "jsonpath={.items[*].status.nodeInfo.bootID}"]);
        let ready = sim.kubectl_ok(&["get", "nodes", "-o", r#"jsonpath={.items[*].status.conditions[?(@.type=="Ready")].status}"#]);
        let rebooted = before.split_whitespace().zip(after.split_whitespace()).all(|(b, a)| b != a);
        if rebooted && ready.split_whitespace().all(|r| r == "True") {
            break;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(120), "every node back with a new boot ID: {after} {ready}");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

/// A host's reboot ends its SSH sessions (systemd stops sshd and every session with it): an
/// OpenSSH connection opened before the simulated reboot is closed by it, not kept answering
/// with the old boot ID after the host is back.
#[test]
fn a_reboot_closes_the_ssh_connections_opened_before_it() {
    let sim = Sim::start(0, 1);
    let before = sim.kubectl_ok(&["get", "nodes", "-o", "jsonpath={.items[*].status.nodeInfo.bootID}"]);
    let ip = sim.kubectl_ok(&["get", "node", "worker-0", "-o", r#"jsonpath={.status.addresses[?(@.type=="InternalIP")].address}"#]);
    // A connection held open (no command), its control socket there once it is authenticated.
    let socket = sim.path("held.sock");
    let control = format!("ControlPath={}", socket.display());
    let mut held = openssh(&sim, &["-N", "-o", "ControlMaster=yes", "-o", &control], &ip)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !socket.exists() {
        assert!(held.try_wait().unwrap().is_none(), "the held connection failed to open");
        assert!(start.elapsed() < std::time::Duration::from_secs(30), "the held connection never opened");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The reboot over a connection of its own, scheduled (as the documents' loop does): `now`
    // may end that connection too before its exit status reaches the client, as on a real host.
    let status = openssh(&sim, &["-o", "ControlPath=none"], &ip).args(["sudo", "shutdown", "-r", "-t", "3"]).status().unwrap();
    assert!(status.success(), "ssh core@{ip} sudo shutdown -r -t 3");
    wait_every_node_back(&sim, &before);
    let ended = held.try_wait().unwrap();
    if ended.is_none() {
        let _ = held.kill();
        let _ = held.wait();
    }
    assert!(ended.is_some(), "the connection opened before the reboot is still open after it");
}

/// The 4.14 rollback as the documents write it (openshift-docs
/// `modules/nw-ovn-kubernetes-rollback.adoc`), literally with kubectl and OpenSSH, after a
/// migration fleetboot did: the pools paused first, `spec.migration` cleared then aimed at
/// OpenShift SDN together with the type, multus, the reboot loop, the pools unpaused, the MCO's
/// rollout to the end. Every node ends Ready on OpenShift SDN: the documented order works on the
/// simulation as on a real cluster (the wrong one is `migrate_rollback`'s business).
#[test]
fn the_4_14_rollback_runs_literally_with_kubectl_and_openssh() {
    let sim = Sim::start_with(1, 2, &["--openshift-version", "4.14.38"]);
    let forward = sim.fleetboot(&["migrate", "--etcd-backup-confirmed", "--poll-interval", "300ms"]).output().unwrap();
    assert!(forward.status.success(), "{}", String::from_utf8_lossy(&forward.stderr));
    let cleanup = sim.fleetboot(&["migrate", "--cleanup", "--poll-interval", "300ms"]).output().unwrap();
    assert!(cleanup.status.success(), "{}", String::from_utf8_lossy(&cleanup.stderr));
    let patch = |kind: &str, name: &str, body: &str| {
        sim.kubectl_ok(&["patch", kind, name, "--type=merge", "--patch", body]);
    };
    for pool in ["master", "worker"] {
        patch("machineconfigpool", pool, r#"{"spec":{"paused":true}}"#);
    }
    patch("network.operator.openshift.io", "cluster", r#"{"spec":{"migration":null}}"#);
    patch("network.operator.openshift.io", "cluster", r#"{"spec":{"migration":{"networkType":"OpenShiftSDN"}}}"#);
    // A person's next command comes after the operator applied this one; two patches inside one
    // reconcile would be compared together against the applied config (no migration yet) and
    // refused, on a real operator as here.
    let (ok, out, err) = sim.kubectl(&[
        "wait",
        "network.config.openshift.io/cluster",
        "--for=jsonpath={.status.migration.networkType}=OpenShiftSDN",
        "--timeout=60s",
    ]);
    assert!(ok, "{out}{err}");
    patch("network.config.openshift.io", "cluster", r#"{"spec":{"networkType":"OpenShiftSDN"}}"#);
    let (ok, out, err) = sim.kubectl(&["-n", "openshift-multus", "rollout", "status", "daemonset/multus", "--timeout=120s"]);
    assert!(ok, "{out}{err}");
    reboot_every_node_with_openssh(&sim);
    let pools = PoolWatch::start(&sim);
    for pool in ["master", "worker"] {
        patch("machineconfigpool", pool, r#"{"spec":{"paused":false}}"#);
    }
    pools.wait_started_then_updated(&sim);
    let rendered = sim.kubectl_ok(&["get", "mcp", "worker", "-o", "jsonpath={.status.configuration.name}"]);
    assert!(sim.kubectl_ok(&["get", "mc", &rendered, "-o", "yaml"]).contains("configure-ovs.sh OpenShiftSDN"), "{rendered}");
    assert_eq!(sim.kubectl_ok(&["get", "network.config.openshift.io", "cluster", "-o", "jsonpath={.status.networkType}"]), "OpenShiftSDN");
    let ready = sim.kubectl_ok(&["get", "nodes", "-o", r#"jsonpath={.items[*].status.conditions[?(@.type=="Ready")].status}"#]);
    assert!(ready.split_whitespace().all(|r| r == "True"), "{ready}");
}

/// The 4.7 seed procedure (`/work/shared/seed/`, the 4.7 documents' offline migration) literally
/// with kubectl and OpenSSH's client, no fleetboot: the backup, the migration annotation, both
/// pools paused, the type patched, multus waited for with `rollout status`, the reboot loop over
/// the InternalIPs, the pools unpaused and the MCO's rollout of the new `configure-ovs.sh` to
/// the end (through the default workloads' budgets), then the documents' checks (every node
/// Done with currentConfig = desiredConfig and its config's ExecStart, the type applied, the
/// nodes Ready) and the clean-up (the annotation removed, openshift-sdn deleted).
#[test]
fn the_4_7_seed_procedure_runs_literally_with_kubectl_and_openssh() {
    let sim = Sim::start_with(1, 2, &["--openshift-version", "4.7.60"]);
    // 1. oc get Network.config.openshift.io cluster -o yaml > cluster-openshift-sdn.yaml
    let backup = sim.kubectl_ok(&["get", "Network.config.openshift.io", "cluster", "-o", "yaml"]);
    assert!(backup.contains("networkType: OpenShiftSDN"), "{backup}");
    // 2. The migration annotation.
    sim.kubectl_ok(&["annotate", "Network.operator.openshift.io", "cluster", "networkoperator.openshift.io/network-migration="]);
    // 3. Both pools paused, with the documents' own patches.
    sim.kubectl_ok(&["patch", "MachineConfigPool", "master", "--type=merge", "--patch", r#"{ "spec": { "paused": true } }"#]);
    sim.kubectl_ok(&["patch", "MachineConfigPool", "worker", "--type=merge", "--patch", r#"{ "spec":{ "paused" :true } }"#]);
    // 4. The type.
    sim.kubectl_ok(&[
        "patch",
        "Network.config.openshift.io",
        "cluster",
        "--type=merge",
        "--patch",
        r#"{ "spec": { "networkType": "OVNKubernetes" } }"#,
    ]);
    // 6. Multus rolled out.
    let (ok, out, err) = sim.kubectl(&["-n", "openshift-multus", "rollout", "status", "daemonset/multus", "--timeout=120s"]);
    assert!(ok && out.contains("successfully rolled out"), "{out}{err}");
    // 7. The reboot loop; every node back with a new boot ID and Ready.
    reboot_every_node_with_openssh(&sim);
    // 8. Both pools unpaused; the MCO rolls the new rendered config out.
    sim.kubectl_ok(&["patch", "MachineConfigPool", "master", "--type=merge", "--patch", r#"{ "spec": { "paused": false } }"#]);
    sim.kubectl_ok(&["patch", "MachineConfigPool", "worker", "--type=merge", "--patch", r#"{ "spec": { "paused": false } }"#]);
    let (ok, out, err) = sim.kubectl(&["wait", "mcp", "--all", "--for=condition=Updated=True", "--timeout=240s"]);
    assert!(ok, "{out}{err}");
    // 9. oc describe node | egrep "hostname|machineconfig": Done, currentConfig = desiredConfig,
    //    and that config's ExecStart.
    let annotations = sim.kubectl_ok(&[
        "get",
        "nodes",
        "-o",
        r#"jsonpath={range .items[*]}{.metadata.annotations.machineconfiguration\.openshift\.io/state} {.metadata.annotations.machineconfiguration\.openshift\.io/currentConfig} {.metadata.annotations.machineconfiguration\.openshift\.io/desiredConfig}{"\n"}{end}"#,
    ]);
    assert_eq!(annotations.lines().count(), 3, "{annotations}");
    for line in annotations.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert!(fields.len() == 3 && fields[0] == "Done" && fields[1] == fields[2], "{annotations}");
        let config = sim.kubectl_ok(&["get", "machineconfig", fields[1], "-o", "yaml"]);
        assert!(config.contains("ExecStart=/usr/local/bin/configure-ovs.sh OVNKubernetes"), "{}: {config}", fields[1]);
    }
    // 10. The type applied, every node Ready, the workloads running again.
    assert_eq!(sim.kubectl_ok(&["get", "network.config/cluster", "-o", r#"jsonpath={.status.networkType}"#]), "OVNKubernetes");
    let ready = sim.kubectl_ok(&["get", "nodes", "-o", r#"jsonpath={.items[*].status.conditions[?(@.type=="Ready")].status}"#]);
    assert_eq!(ready, "True True True");
    let (ok, out, err) = sim.kubectl(&["-n", "openshift-ingress", "rollout", "status", "deployment/router-default", "--timeout=120s"]);
    assert!(ok, "{out}{err}");
    // 11. The clean-up.
    sim.kubectl_ok(&["annotate", "Network.operator.openshift.io", "cluster", "networkoperator.openshift.io/network-migration-"]);
    sim.kubectl_ok(&["delete", "namespace", "openshift-sdn"]);
    let annotations = sim.kubectl_ok(&["get", "Network.operator.openshift.io", "cluster", "-o", "jsonpath={.metadata.annotations}"]);
    assert!(!annotations.contains("network-migration"), "{annotations}");
}
