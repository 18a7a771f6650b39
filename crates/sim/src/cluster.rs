//! The simulated cluster: seeds an OpenShift-shaped set of objects, runs the simulated nodes
//! and the kubelet/node-controller behaviour that ties them to the API, and exposes fault
//! switches. Everything runs in-process on loopback.
//!
//! One file, past 500 lines: it builds the world and runs the kubelets and the fault switches of `/sim/v1`.

use crate::util::At as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use super::api::{self, ApiState};
pub use super::heartbeat::HeartbeatMode;
use super::node::{NodeEvent, SimNode, Timings};
use super::store::{PatchType, now_rfc3339};
use super::types;
use super::world::World;
pub use super::world::{app_pod, daemon_pod, daemonset, daemonset_uid};

#[derive(Clone, Debug)]
pub struct SimOptions {
    pub masters: usize,
    pub workers: usize,
    /// The first three octets of the nodes' addresses, e.g. "127.0.42".
    pub net: Option<String>,
    /// The API server's port (0: any free port).
    pub api_port: u16,
    /// The nodes' SSH port (0: any free port, the same for every node).
    pub ssh_port: u16,
    /// Simulated Redfish BMCs (and their BareMetalHosts) on this port of every node's
    /// address; None: no BMCs.
    pub bmc_port: Option<u16>,
    /// Nodes with no SSH at all (reachable through their BMC only).
    pub no_ssh: Vec<String>,
    /// Faults switched on from the start: (node, fault name).
    pub faults: Vec<(String, String)>,
    pub timings: Timings,
    pub history_limit: usize,
    pub bookmark_interval: Duration,
    /// The kubelets' heartbeat interval (None: no heartbeats): in [`HeartbeatMode::Ready`] the
    /// Ready condition's, in [`HeartbeatMode::Kubelet`] the node Leases' renewal.
    pub heartbeat: Option<Duration>,
    /// How the kubelets beat ([`super::heartbeat`]).
    pub heartbeat_mode: HeartbeatMode,
    /// How often the simulated operators reconcile.
    pub controller_interval: Duration,
    /// Application pods the network switch leaves in CrashLoopBackOff until their node reboots
    /// (the reboot of every node mends them; the document's step 10 finds any left).
    pub error_pods_after_migration: usize,
    /// The OpenShift release the cluster runs (ClusterVersion), whose operator rules the
    /// simulated CNO and MCO follow: "4.7.60", "4.14.38", "4.16.21", ...
    pub openshift_version: String,
    /// Cluster and service networks inside OVN-Kubernetes' internal ranges (100.64.0.0/14 and
    /// 100.72.0.0/16, as the simulation had them before), for the preflight's overlap check.
    pub colliding_networks: bool,
    /// The workloads and budgets ([`super::workloads`]): 0 is the bare cluster; from 1, the
    /// platform's Deployments with their PodDisruptionBudgets and this many user Deployments.
    pub workloads: usize,
    /// Authenticate bearer tokens and enforce RBAC from the stored roles ([`super::rbac`]).
    pub rbac: bool,
    /// Where the API server's store is kept across a simulated restart ([`super::persist`]).
    pub state_dir: Option<std::path::PathBuf>,
}

impl Default for SimOptions {
    fn default() -> SimOptions {
        SimOptions {
            masters: 3,
            workers: 6,
            net: None,
            bmc_port: Some(0),
            no_ssh: Vec::new(),
            faults: Vec::new(),
            api_port: 0,
            ssh_port: 0,
            timings: Timings {
                reboot_delay: Duration::from_secs(3),
                boot_time: Duration::from_secs(5),
                notready_after: Duration::from_secs(2),
                kubelet_ready_after: Duration::from_secs(1),
            },
            history_limit: 20_000,
            bookmark_interval: Duration::from_secs(5),
            heartbeat: Some(Duration::from_secs(40)),
            heartbeat_mode: HeartbeatMode::Ready,
            controller_interval: Duration::from_millis(300),
            error_pods_after_migration: 2,
            openshift_version: super::version::DEFAULT_VERSION.to_owned(),
            colliding_networks: false,
            workloads: 1,
            rbac: false,
            state_dir: None,
        }
    }
}

pub struct Cluster {
    /// What the operators share with the kubelets and the API server ([`World`]): the cluster
    /// derefs to it, so `cluster.api` and `cluster.nodes` read as before.
    pub world: Arc<World>,
    pub api_addr: SocketAddr,
    pub client_key: russh::keys::PrivateKey,
    pub ssh_port: u16,
    /// One Redfish BMC per node (on the node's address, HTTPS), unless switched off.
    pub bmcs: Vec<Arc<super::bmc::SimBmc>>,
    /// The CA that signed the BMCs' certificate (PEM).
    pub bmc_ca_pem: String,
    pub bmc_password: String,
    stop: watch::Sender<bool>,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

fn nodes_type() -> &'static types::ResourceType {
    types::find("", "v1", "nodes").expect("nodes")
}

fn t(group: &str, version: &str, plural: &str) -> &'static types::ResourceType {
    types::find(group, version, plural).expect("known type")
}

fn rendered(pool: &str, network: &str) -> String {
    super::mco::rendered_name(pool, network)
}

/// `127.A.B` → `[A, B]`: the nodes live on loopback, and nowhere else.
pub fn parse_net(net: &str) -> Result<[u8; 2], String> {
    let bad = || format!("{net:?} is not 127.A.B with A and B from 0 to 255 (the nodes get 127.A.B.1, .2, ...)");
    match net.split('.').collect::<Vec<_>>().as_slice() {
        ["127", a, b] => Ok([a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?]),
        _ => Err(bad()),
    }
}

fn free_net() -> String {
    let n = std::process::id() as usize * 31 + uuid::Uuid::new_v4().as_bytes()[0] as usize;
    format!("127.{}.{}", 100 + n % 150, 1 + (n / 150) % 250)
}

fn ready_condition(status: &str, reason: &str, message: &str) -> Value {
    let now = now_rfc3339();
    json!({"type": "Ready", "status": status, "reason": reason, "message": message, "lastHeartbeatTime": now, "lastTransitionTime": now})
}

impl std::ops::Deref for Cluster {
    type Target = World;
    fn deref(&self) -> &World {
        &self.world
    }
}

impl Cluster {
    pub async fn start(options: SimOptions) -> std::io::Result<Arc<Cluster>> {
        crate::util::raise_open_file_limit();
        let release = super::version::Release::parse(&options.openshift_version).map_err(std::io::Error::other)?;
        let net = options.net.clone().unwrap_or_else(free_net);
        let [net_a, net_b] = parse_net(&net).map_err(|e| std::io::Error::other(format!("--net: {e}")))?;
        let api = ApiState::new(options.history_limit, options.bookmark_interval);
        if options.rbac {
            let _ = api.tokens.set(super::rbac::Tokens::generate());
            let pki = super::bmc::Pki::generate(&[std::net::Ipv4Addr::LOCALHOST.into()]).map_err(std::io::Error::other)?;
            let config = pki.server_config().map_err(std::io::Error::other)?;
            let _ = api.tls.set((tokio_rustls::TlsAcceptor::from(Arc::new(config)), pki.ca_pem));
        }
        if let Some(dir) = &options.state_dir {
            let _ = api.state_dir.set(dir.clone());
        }
        let listener = TcpListener::bind(("127.0.0.1", options.api_port)).await?;
        let api_addr = listener.local_addr()?;
        let ssh_port = match options.ssh_port {
            0 => std::net::TcpListener::bind(format!("{net}.1:0"))?.local_addr()?.port(),
            p => p,
        };
        let client_key = super::node::random_ed25519();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let mut nodes = Vec::new();
        let total = options.masters + options.workers;
        for i in 0..total {
            let (name, _) = node_identity(i, options.masters);
            // Four octets: 127.A.B.(1..=250), spilling into B for large fleets.
            let ip = Ipv4Addr::new(127, net_a, net_b.wrapping_add((i / 250) as u8), (i % 250 + 1) as u8);
            nodes.push(SimNode::new(
                name,
                SocketAddr::new(ip.into(), ssh_port),
                options.timings,
                client_key.public_key().clone(),
                events_tx.clone(),
            ));
        }
        for (name, fault) in &options.faults {
            let node = nodes
                .iter()
                .find(|n| n.name == *name)
                .ok_or_else(|| std::io::Error::other(format!("--fault {name}={fault}: no node {name}")))?;
            node.set_fault(fault, true).map_err(|e| std::io::Error::other(format!("--fault {name}={fault}: {e}")))?;
        }
        for name in &options.no_ssh {
            let node =
                nodes.iter().find(|n| n.name == *name).ok_or_else(|| std::io::Error::other(format!("--no-ssh {name}: no such node")))?;
            node.has_ssh.store(false, Ordering::SeqCst);
        }
        for node in &nodes {
            node.start_ssh().await?;
        }
        let bmc_password = uuid::Uuid::new_v4().simple().to_string();
        let (mut bmcs, mut bmc_ca_pem, mut bmc_tasks) = (Vec::new(), String::new(), Vec::new());
        if let Some(port) = options.bmc_port {
            let port = match port {
                0 => std::net::TcpListener::bind(format!("{net}.1:0"))?.local_addr()?.port(),
                p => p,
            };
            let ips: Vec<std::net::IpAddr> = nodes.iter().map(|n| n.addr.ip()).collect();
            let pki = super::bmc::Pki::generate(&ips).map_err(|e| std::io::Error::other(format!("BMC certificates: {e}")))?;
            let tls = Arc::new(pki.server_config().map_err(std::io::Error::other)?);
            for node in &nodes {
                let bmc = super::bmc::SimBmc::new(node.clone(), port, "admin", &bmc_password);
                bmc_tasks.push(bmc.clone().serve(tls.clone()).await?);
                bmcs.push(bmc);
            }
            bmc_ca_pem = pki.ca_pem;
        }
        let (stop, stop_rx) = watch::channel(false);
        let world = Arc::new(World {
            api: api.clone(),
            nodes,
            release,
            booted_network: Default::default(),
            refusals: Default::default(),
            node_index: Default::default(),
        });
        let cluster = Arc::new(Cluster {
            world: world.clone(),
            api_addr,
            client_key,
            ssh_port,
            bmcs,
            bmc_ca_pem,
            bmc_password,
            stop,
            tasks: Default::default(),
        });
        let weak = Arc::downgrade(&cluster);
        let _ = api.control.set(Box::new(move |method: &hyper::Method, path: &str, body: &Value| match weak.upgrade() {
            Some(cluster) => control(&cluster, method, path, body),
            None => Err((503, "the simulation is shutting down".to_owned())),
        }));
        let _ = api.exec.kubelets.set(Box::new(ClusterKubelets(Arc::downgrade(&cluster))));
        cluster.seed(&options);
        cluster.seed_bare_metal_hosts();
        let mut stop_api = stop_rx.clone();
        let server = tokio::spawn(api::serve(listener, api.clone(), async move {
            let _ = stop_api.wait_for(|s| *s).await;
        }));
        let kubelet = tokio::spawn(kubelets(cluster.clone(), events_rx, options.timings));
        let mut tasks = vec![server, kubelet];
        tasks.extend(bmc_tasks);
        if let Some(interval) = options.heartbeat {
            if matches!(options.heartbeat_mode, HeartbeatMode::Kubelet { .. }) {
                super::heartbeat::seed_leases(&world);
            }
            tasks.push(tokio::spawn(super::heartbeat::run(world.clone(), options.heartbeat_mode, interval)));
        }
        tasks.push(tokio::spawn(namespace_controller(cluster.clone())));
        tasks.push(tokio::spawn(super::mco::run(world.clone(), options.controller_interval)));
        tasks.push(tokio::spawn(super::cno::run(world.clone(), options.controller_interval, options.error_pods_after_migration)));
        tasks.push(tokio::spawn(super::cvo::run(world.clone(), options.controller_interval)));
        if options.workloads > 0 {
            tasks.push(tokio::spawn(super::workloads::run(
                world.clone(),
                options.controller_interval,
                options.timings.kubelet_ready_after,
            )));
        }
        *cluster.tasks.lock().unwrap() = tasks;
        Ok(cluster)
    }

    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
        for node in &self.nodes {
            node.shutdown();
        }
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Cuts the API off for `length` (connections dropped, watches cut), as while the
    /// control plane reboots.
    pub fn api_outage(self: &Arc<Self>, length: Duration) {
        self.api_fault_for(|api| &api.outage, length);
        let _ = self.api.cut_watches.send(());
    }

    /// Stalls the API for `length`: requests are taken and answered only when it ends.
    pub fn api_stall(self: &Arc<Self>, length: Duration) {
        self.api_fault_for(|api| &api.stalled, length);
    }

    /// Sets one of the API's fault flags now and clears it after `length`.
    fn api_fault_for(&self, flag: fn(&ApiState) -> &AtomicBool, length: Duration) {
        flag(&self.api).store(true, Ordering::SeqCst);
        let api = self.api.clone();
        tokio::spawn(async move {
            tokio::time::sleep(length).await;
            flag(&api).store(false, Ordering::SeqCst);
        });
    }

    fn create(&self, t: &types::ResourceType, namespace: Option<&str>, object: Value) {
        self.api.store.lock().unwrap().create(t, namespace, object).expect("seed objects are valid");
    }

    /// metal3 BareMetalHosts for the simulated BMCs, with their credentials Secrets, as a
    /// bare-metal IPI installation leaves them in openshift-machine-api.
    fn seed_bare_metal_hosts(&self) {
        let ns = "openshift-machine-api";
        for (i, bmc) in self.bmcs.iter().enumerate() {
            let name = &bmc.node.name;
            let secret = format!("{name}-bmc-secret");
            let b64 = |s: &str| data_encoding::BASE64.encode(s.as_bytes());
            self.create(
                t("", "v1", "secrets"),
                Some(ns),
                json!({
                    "metadata": {"name": secret}, "type": "Opaque",
                    "data": {"username": b64(&bmc.username), "password": b64(&self.bmc_password)},
                }),
            );
            let machine = format!("fleetboot-sim-{}", name);
            self.create(t("metal3.io", "v1alpha1", "baremetalhosts"), Some(ns), json!({
                "metadata": {"name": format!("{name}-bmh")},
                "spec": {
                    "online": true,
                    "bootMACAddress": format!("52:54:00:{:02x}:{:02x}:{:02x}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff),
                    "bmc": {"address": format!("redfish://{}/redfish/v1/Systems/1", bmc.addr), "credentialsName": secret, "disableCertificateVerification": false},
                    "consumerRef": {"apiVersion": "machine.openshift.io/v1beta1", "kind": "Machine", "name": machine, "namespace": ns},
                },
                "status": {"poweredOn": true, "operationalStatus": "OK", "provisioning": {"state": "provisioned"}},
            }));
        }
    }

    fn seed(&self, options: &SimOptions) {
        let release = self.release;
        let version = release.to_string();
        // 4.17+ has no OpenShift SDN: such a cluster was installed with OVN-Kubernetes.
        let network = if release.has_openshift_sdn() { "OpenShiftSDN" } else { "OVNKubernetes" };
        let mut namespaces = vec![
            "default",
            "kube-system",
            "kube-node-lease",
            "openshift-machine-config-operator",
            "openshift-multus",
            "openshift-network-operator",
            "openshift-machine-api",
            "openshift-ovn-kubernetes",
            "openshift-kube-apiserver",
            "openshift-marketplace",
        ];
        if release.has_openshift_sdn() {
            namespaces.push("openshift-sdn");
        }
        namespaces.extend(super::workloads::namespaces(release, options.workloads));
        for (i, ns) in namespaces.iter().enumerate() {
            self.create(t("", "v1", "namespaces"), None, json!({"metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}));
            if release.has_openshift_sdn() {
                // OpenShift SDN's NetNamespace per namespace (the default and openshift-* ones share VNID 0).
                let netid = if ns.starts_with("openshift") || *ns == "default" { 0 } else { 1000 + i };
                self.create(
                    t("network.openshift.io", "v1", "netnamespaces"),
                    None,
                    json!({"metadata": {"name": ns}, "netname": ns, "netid": netid}),
                );
            }
        }
        // The kubelet of an OpenShift 4.N release is Kubernetes 1.(N+13).
        let kube = format!("v1.{}.{}", release.minor + 13, 3 + release.patch % 10);
        let zones = ["zone-a", "zone-b", "zone-c"];
        for (i, node) in self.nodes.iter().enumerate() {
            let (_, pool) = node_identity(i, options.masters);
            let mut labels = json!({
                "kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "node.openshift.io/os_id": "rhcos",
                "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
                "topology.kubernetes.io/zone": zones[i % zones.len()],
            });
            labels[format!("node-role.kubernetes.io/{pool}")] = json!("");
            if pool == "master" {
                labels["node-role.kubernetes.io/control-plane"] = json!("");
            }
            let config = rendered(pool, network);
            let ip = node.addr.ip().to_string();
            let id = crate::util::stable_uuid(&node.name);
            self.create(nodes_type(), None, json!({
                "metadata": {"name": node.name, "labels": labels, "annotations": {
                    "machine.openshift.io/machine": format!("openshift-machine-api/fleetboot-sim-{}", node.name),
                    "machineconfiguration.openshift.io/currentConfig": config,
                    "machineconfiguration.openshift.io/desiredConfig": config,
                    "machineconfiguration.openshift.io/state": "Done",
                    "machineconfiguration.openshift.io/reason": "",
                    "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                }},
                "spec": {"providerID": format!("baremetalhost:///openshift-machine-api/{}-bmh/{id}", node.name)},
                "status": {
                    "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": node.name}],
                    "nodeInfo": {"bootID": node.boot_id(), "machineID": id.replace('-', ""), "systemUUID": id.clone(),
                        "kubeletVersion": kube, "kubeProxyVersion": kube,
                        "osImage": format!("Red Hat Enterprise Linux CoreOS {}{:02}.92.202411061430-0 (Plow)", release.major, release.minor),
                        "kernelVersion": "5.14.0-427.42.1.el9_4.x86_64", "containerRuntimeVersion": format!("cri-o://1.{}.3-4.rhaos{}.el9", release.minor + 13, release.minor_text()),
                        "operatingSystem": "linux", "architecture": "amd64"},
                    "conditions": [
                        {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "message": "kubelet has sufficient memory available", "lastHeartbeatTime": now_rfc3339(), "lastTransitionTime": now_rfc3339()},
                        {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure", "message": "kubelet has no disk pressure", "lastHeartbeatTime": now_rfc3339(), "lastTransitionTime": now_rfc3339()},
                        {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID", "message": "kubelet has sufficient PID available", "lastHeartbeatTime": now_rfc3339(), "lastTransitionTime": now_rfc3339()},
                        ready_condition("True", "KubeletReady", "kubelet is posting ready status")],
                    "capacity": {"cpu": "16", "memory": "65536Mi", "pods": "250", "ephemeral-storage": "125293548Ki"},
                    "allocatable": {"cpu": "15500m", "memory": "64512Mi", "pods": "250", "ephemeral-storage": "114396791822"},
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                },
            }));
            self.booted_network.lock().unwrap().insert(node.name.clone(), network.to_owned());
            let mut mcd =
                daemon_pod("openshift-machine-config-operator", "machine-config-daemon", "machine-config-daemon", &node.name, &ip, true);
            mcd["metadata"]["labels"] = json!({"k8s-app": "machine-config-daemon"});
            super::exec::daemon_pod_as_installed(&mut mcd);
            self.create(t("", "v1", "pods"), Some("openshift-machine-config-operator"), mcd);
        }
        for pool in ["master", "worker"] {
            let count = if pool == "master" { options.masters } else { options.workers };
            let config = rendered(pool, network);
            self.create(
                t("machineconfiguration.openshift.io", "v1", "machineconfigs"),
                None,
                super::mco::rendered_config(&config, pool, network),
            );
            let now = now_rfc3339();
            self.create(t("machineconfiguration.openshift.io", "v1", "machineconfigpools"), None, json!({
                "metadata": {"name": pool, "labels": {format!("pools.operator.machineconfiguration.openshift.io/{pool}"): ""}},
                "spec": {"paused": false, "maxUnavailable": 1, "machineConfigSelector": {"matchLabels": {"machineconfiguration.openshift.io/role": pool}},
                    "nodeSelector": {"matchLabels": {format!("node-role.kubernetes.io/{pool}"): ""}}, "configuration": {"name": config}},
                "status": {"configuration": {"name": config}, "machineCount": count, "readyMachineCount": count, "updatedMachineCount": count,
                    "unavailableMachineCount": 0, "degradedMachineCount": 0, "observedGeneration": 1,
                    "conditions": [
                        {"type": "Updated", "status": "True", "lastTransitionTime": now, "reason": "", "message": format!("All nodes are updated with MachineConfig {config}")},
                        {"type": "Updating", "status": "False", "lastTransitionTime": now, "reason": "", "message": ""},
                        {"type": "NodeDegraded", "status": "False", "lastTransitionTime": now, "reason": "", "message": ""},
                        {"type": "Degraded", "status": "False", "lastTransitionTime": now, "reason": "", "message": ""}]},
            }));
        }
        // Defaults of the installer (10.128.0.0/14, 172.30.0.0/16) unless asked to collide with
        // OVN-Kubernetes' internal ranges (100.64.0.0/16 join, 100.88.0.0/16 transit).
        let (cluster_cidr, service_cidr) =
            if options.colliding_networks { ("100.64.0.0/14", "100.72.0.0/16") } else { ("10.128.0.0/14", "172.30.0.0/16") };
        self.create(t("config.openshift.io", "v1", "networks"), None, json!({
            "metadata": {"name": "cluster"},
            "spec": {"clusterNetwork": [{"cidr": cluster_cidr, "hostPrefix": 23}], "networkType": network, "serviceNetwork": [service_cidr], "externalIP": {"policy": {}}},
            "status": {"clusterNetwork": [{"cidr": cluster_cidr, "hostPrefix": 23}], "clusterNetworkMTU": if network == "OVNKubernetes" { 1400 } else { 1450 }, "networkType": network, "serviceNetwork": [service_cidr]},
        }));
        let default_network = if network == "OVNKubernetes" {
            json!({"type": network, "ovnKubernetesConfig": {"mtu": 1400, "genevePort": 6081}})
        } else {
            json!({"type": network, "openshiftSDNConfig": {"mode": "NetworkPolicy", "mtu": 1450, "vxlanPort": 4789}})
        };
        self.create(t("operator.openshift.io", "v1", "networks"), None, json!({
            "metadata": {"name": "cluster"},
            "spec": {"clusterNetwork": [{"cidr": cluster_cidr, "hostPrefix": 23}], "serviceNetwork": [service_cidr], "defaultNetwork": default_network,
                "managementState": "Managed", "logLevel": "Normal", "operatorLogLevel": "Normal", "disableNetworkDiagnostics": false},
            "status": {"readyReplicas": 0},
        }));
        // The installer's Infrastructure (openshift/api `config/v1/types_infrastructure.go`):
        // controlPlaneTopology HighlyAvailable with three masters or more, SingleReplica with
        // one; a HyperShift hosted cluster says External ("the control plane is hosted
        // externally to the cluster"), which a test sets through the status subresource.
        let masters = options.masters;
        let topology = if masters == 1 { "SingleReplica" } else { "HighlyAvailable" };
        let workers = if self.nodes.len() > masters { "HighlyAvailable" } else { topology };
        self.create(
            t("config.openshift.io", "v1", "infrastructures"),
            None,
            json!({
                "metadata": {"name": "cluster"},
                "spec": {"platformSpec": {"type": "BareMetal"}},
                "status": {"controlPlaneTopology": topology, "infrastructureTopology": workers, "platform": "BareMetal",
                    "platformStatus": {"type": "BareMetal"}, "infrastructureName": "sim-x7k2p"},
            }),
        );
        let completed = "2024-11-20T09:12:44Z";
        self.create(
            t("config.openshift.io", "v1", "clusterversions"),
            None,
            json!({
                "metadata": {"name": "version"}, "spec": {"channel": format!("stable-{}", release.minor_text()), "clusterID": uuid::Uuid::new_v4().to_string()},
                "status": {"desired": {"version": version, "image": format!("quay.io/openshift-release-dev/ocp-release:{version}-x86_64")},
                    "history": [{"state": "Completed", "version": version, "image": format!("quay.io/openshift-release-dev/ocp-release:{version}-x86_64"),
                        "startedTime": "2024-11-20T08:01:02Z", "completionTime": completed, "verified": false}],
                    "observedGeneration": 1, "versionHash": "ZbmXq0G3dE0=", "availableUpdates": null,
                    "conditions": [{"type": "Available", "status": "True", "lastTransitionTime": completed, "message": format!("Done applying {version}")},
                        {"type": "Failing", "status": "False", "lastTransitionTime": completed},
                        {"type": "Progressing", "status": "False", "lastTransitionTime": completed, "message": format!("Cluster version is {version}")}]},
            }),
        );
        for operator in ["network", "machine-config", "kube-apiserver", "etcd", "dns", "ingress"] {
            let now = now_rfc3339();
            self.create(
                t("config.openshift.io", "v1", "clusteroperators"),
                None,
                json!({
                    "metadata": {"name": operator}, "spec": {},
                    "status": {"conditions": [
                        {"type": "Available", "status": "True", "reason": "AsExpected", "lastTransitionTime": now},
                        {"type": "Progressing", "status": "False", "reason": "AsExpected", "lastTransitionTime": now},
                        {"type": "Degraded", "status": "False", "reason": "AsExpected", "lastTransitionTime": now}],
                        "versions": [{"name": "operator", "version": version}]},
                }),
            );
        }
        let total = self.nodes.len();
        // Every pod a DaemonSet owns names one that exists (so `kubectl drain --ignore-daemonsets`
        // finds it): multus (cluster-network-operator `bindata/network/multus/multus.yaml`) and
        // the machine-config daemon (machine-config-operator `manifests/machineconfigdaemon/daemonset.yaml`,
        // label `k8s-app: machine-config-daemon`).
        let multus =
            daemonset("openshift-multus", "multus", json!({"app": "multus"}), "kube-multus", "quay.io/openshift/multus", total, total);
        self.create(t("apps", "v1", "daemonsets"), Some("openshift-multus"), multus);
        let mcd_labels = json!({"k8s-app": "machine-config-daemon"});
        let mcd = daemonset(
            "openshift-machine-config-operator",
            "machine-config-daemon",
            mcd_labels,
            "machine-config-daemon",
            "quay.io/openshift/machine-config-operator",
            total,
            total,
        );
        self.create(t("apps", "v1", "daemonsets"), Some("openshift-machine-config-operator"), mcd);
        for node in &self.nodes {
            let mut pod = daemon_pod("openshift-multus", "multus", "kube-multus", &node.name, &node.addr.ip().to_string(), true);
            pod["metadata"]["labels"] = json!({"app": "multus"});
            self.create(t("", "v1", "pods"), Some("openshift-multus"), pod);
        }
        self.deploy_network_plugin(network, true);
        // Leftovers every long-lived cluster has, from before any migration: a failed installer
        // pod of a past kube-apiserver revision, and a pod the kubelet evicted.
        let long_ago = "2024-11-20T08:40:00Z";
        if let Some(master) = self.nodes.iter().find(|n| n.name.starts_with("master")) {
            self.create(t("", "v1", "pods"), Some("openshift-kube-apiserver"), json!({
                "metadata": {"name": format!("installer-7-{}", master.name), "labels": {"app": "installer"}},
                "spec": {"nodeName": master.name, "restartPolicy": "Never", "serviceAccountName": "installer-sa",
                    "containers": [{"name": "installer", "image": "quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:1c0d"}]},
                "status": {"phase": "Failed", "hostIP": master.addr.ip().to_string(), "startTime": long_ago,
                    "containerStatuses": [{"name": "installer", "ready": false, "restartCount": 0, "started": false,
                        "image": "quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:1c0d", "imageID": "quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:1c0d",
                        "state": {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": long_ago, "finishedAt": long_ago,
                            "message": "failed to fetch secret openshift-kube-apiserver/etcd-client: context deadline exceeded"}}}]},
            }));
        }
        if let Some(worker) = self.nodes.iter().find(|n| n.name.starts_with("worker")) {
            self.create(t("", "v1", "pods"), Some("openshift-marketplace"), json!({
                "metadata": {"name": "redhat-operators-x7k2p", "labels": {"olm.catalogSource": "redhat-operators"}},
                "spec": {"nodeName": worker.name, "containers": [{"name": "registry-server", "image": "registry.redhat.io/redhat/redhat-operator-index:v4"}]},
                "status": {"phase": "Failed", "reason": "Evicted", "startTime": long_ago,
                    "message": "The node was low on resource: ephemeral-storage. Threshold quantity: 12530286Ki, available: 10912388Ki."},
            }));
        }
        let roles: Vec<(String, bool)> = self.nodes.iter().map(|n| (n.name.clone(), n.name.starts_with("master"))).collect();
        super::workloads::seed(&mut self.api.store.lock().unwrap(), release, &roles, options.workloads);
        let mut logs = self.api.logs.lock().unwrap();
        let pods = self.api.store.lock().unwrap().list(t("", "v1", "pods"), &Default::default(), None, None).items;
        for pod in pods.iter().filter(|p| p["metadata"]["namespace"] == "openshift-machine-config-operator") {
            let node = pod.at("/spec/nodeName").and_then(Value::as_str).unwrap_or_default();
            let key = format!(
                "{}/{}",
                pod["metadata"]["namespace"].as_str().unwrap_or_default(),
                pod["metadata"]["name"].as_str().unwrap_or_default()
            );
            let config = rendered(if node.starts_with("master") { "master" } else { "worker" }, network);
            logs.insert(key, format!("I1120 09:10:00.000000 start.go:61] Version: {version} (Raw: machine-config-daemon)\nI1120 09:10:00.000001 daemon.go:1400] Current config: {config}\nI1120 09:10:00.000002 daemon.go:1401] state: Done\nI1120 09:10:00.000003 daemon.go:1500] node {node} is up to date\n"));
        }
    }

    /// Why a node that just booted cannot run its network plugin, if it cannot: from 4.8 a
    /// node that comes up on OVN-Kubernetes without the `br-ex` bridge of `configure-ovs.sh
    /// OVNKubernetes` (its machine config runs `configure-ovs.sh OpenShiftSDN`, which deletes
    /// `br-ex` and `br-int`: machine-config-operator `templates/common/_base/files/configure-ovs-network.yaml`)
    /// stays NotReady (`Release::ovn_needs_br_ex`). It does not matter why the node booted
    /// with that config: the migration's reboot, an MCO rollout, a rollback done in the wrong
    /// order (the pools unpaused while OVN-Kubernetes still runs, against openshift-docs
    /// `modules/nw-ovn-kubernetes-rollback.adoc`).
    fn network_problem(&self, node: &str) -> Option<String> {
        let store = self.api.store.lock().unwrap();
        let running = store
            .get(t("config.openshift.io", "v1", "networks"), None, "cluster")
            .ok()?
            .at("/status/networkType")
            .and_then(Value::as_str)?
            .to_owned();
        self.booted_network.lock().unwrap().insert(node.to_owned(), running.clone());
        if !(self.release.ovn_needs_br_ex() && running == "OVNKubernetes") {
            return None;
        }
        let object = store.get(nodes_type(), None, node).ok()?;
        let annotation =
            |k: &str| object.at("/metadata/annotations").and_then(|a| a.get(k)).and_then(Value::as_str).unwrap_or_default().to_owned();
        // The daemon wrote the desired config to disk before it rebooted the node for it.
        let booted =
            if annotation(super::mco::STATE) == "Working" { annotation(super::mco::DESIRED) } else { annotation(super::mco::CURRENT) };
        let mc = store.get(t("machineconfiguration.openshift.io", "v1", "machineconfigs"), None, &booted).ok()?;
        if mc.to_string().contains("configure-ovs.sh OVNKubernetes") {
            return None;
        }
        Some(format!(
            "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: No CNI configuration file in /etc/kubernetes/cni/net.d/. Has your network provider started? (ovnkube-node: bridge br-ex not found: node booted with {booted}, which runs configure-ovs.sh OpenShiftSDN, not OVNKubernetes)"
        ))
    }

    /// Rebooted nodes' kubelets restart their containers: pods crash-looping there run again.
    fn restart_crashlooping_pods(&self, nodes: &std::collections::BTreeSet<String>) {
        let pods = t("", "v1", "pods");
        let mut store = self.api.store.lock().unwrap();
        for pod in crashlooping_pods_on(&store, nodes) {
            let (namespace, name) = (
                pod["metadata"]["namespace"].as_str().unwrap_or_default().to_owned(),
                pod["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
            );
            let statuses: Vec<Value> = pod["status"]["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|mut s| {
                    s["state"] = json!({"running": {"startedAt": now_rfc3339()}});
                    s["ready"] = json!(true);
                    s
                })
                .collect();
            let _ = store.patch(
                pods,
                Some(&namespace),
                &name,
                PatchType::Merge,
                &json!({"status": {"phase": "Running", "containerStatuses": statuses}}),
                Some("status"),
            );
        }
    }

    fn patch_node_status(&self, name: &str, status: Value) {
        let _ = self.api.store.lock().unwrap().patch(
            nodes_type(),
            None,
            name,
            PatchType::Strategic,
            &json!({"status": status}),
            Some("status"),
        );
    }

    /// The API's URL: `https://` with `--rbac` (a token is sent over TLS only), else `http://`.
    pub fn api_url(&self) -> String {
        let scheme = if self.api.tls.get().is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.api_addr)
    }

    /// Writes what a user needs to reach the simulation: kubeconfig, SSH identity,
    /// known_hosts, a host file and a fleetboot config pointing at all of them.
    pub fn write_files(&self, dir: &Path) -> std::io::Result<PathBuf> {
        // A directory made here is its owner's alone: it holds the client key and the BMC password.
        if !dir.is_dir() {
            std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700).create(dir)?;
        }
        let server = self.api_url();
        let kubeconfig = match self.api.tokens.get() {
            None => format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fleetboot-sim\n  cluster:\n    server: {server}\ncontexts:\n- name: fleetboot-sim\n  context:\n    cluster: fleetboot-sim\n    user: admin\n    namespace: default\ncurrent-context: fleetboot-sim\nusers:\n- name: admin\n  user: {{}}\n"
            ),
            // `--rbac`: a bearer token per user; `admin` (system:masters) is the current
            // context, the context `fleetboot` is the user with only what is bound to it.
            Some(tokens) => {
                let token = |user: &str| tokens.token_of(user).unwrap_or_default().to_owned();
                format!(
                    "apiVersion: v1\nkind: Config\nclusters:\n- name: fleetboot-sim\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\ncontexts:\n- name: fleetboot-sim\n  context:\n    cluster: fleetboot-sim\n    user: admin\n    namespace: default\n- name: fleetboot\n  context:\n    cluster: fleetboot-sim\n    user: fleetboot\n    namespace: default\ncurrent-context: fleetboot-sim\nusers:\n- name: admin\n  user:\n    token: {}\n- name: fleetboot\n  user:\n    token: {}\n",
                    data_encoding::BASE64.encode(self.api.tls.get().map(|(_, ca)| ca.as_bytes()).unwrap_or_default()),
                    token("admin"),
                    token("fleetboot")
                )
            }
        };
        // With tokens, the kubeconfig is a secret: its owner's alone.
        if self.api.tokens.get().is_some() {
            write_private(&dir.join("kubeconfig"), kubeconfig.as_bytes())?;
        } else {
            write_public(&dir.join("kubeconfig"), kubeconfig.as_bytes())?;
        }
        let key_path = dir.join("id_ed25519");
        let openssh = self.client_key.to_openssh(russh::keys::ssh_key::LineEnding::LF).map_err(|e| std::io::Error::other(e.to_string()))?;
        write_private(&key_path, openssh.as_bytes())?;
        let mut known = String::new();
        let mut hosts = String::new();
        for node in &self.nodes {
            let ip = node.addr.ip();
            let key = node.host_public_key().to_openssh().map_err(|e| std::io::Error::other(e.to_string()))?;
            known.push_str(&format!("[{ip}]:{} {key}\n", self.ssh_port));
            hosts.push_str(&format!("{} {ip}:{}\n", node.name, self.ssh_port));
        }
        write_public(&dir.join("known_hosts"), known.as_bytes())?;
        let redfish = if self.bmcs.is_empty() {
            String::new()
        } else {
            write_public(&dir.join("bmc-ca.pem"), self.bmc_ca_pem.as_bytes())?;
            write_private(&dir.join("bmc-password"), self.bmc_password.as_bytes())?;
            format!(
                "# BMCs: found through the cluster's BareMetalHosts; these are the defaults for them.\n\
                 [redfish]\nca_file = \"{ca}\"\nusername = \"admin\"\npassword_file = \"{password}\"\n\n",
                ca = dir.join("bmc-ca.pem").display(),
                password = dir.join("bmc-password").display(),
            )
        };
        write_public(&dir.join("hosts.txt"), hosts.as_bytes())?;
        let config = dir.join("fleetboot.toml");
        write_public(
            &config,
            format!(
                "# Written by `fleetboot sim`: every fleetboot command reaches the simulation with\n#   fleetboot --config {config} <command>\n\
                 [ssh]\nuser = \"core\"\nport = {port}\nidentities = [\"{key}\"]\nknown_hosts = \"{known}\"\n\n\
                 [reboot]\npoll_interval = \"1s\"\ntimeout = \"5m\"\n\n\
                 [output]\nstate_dir = \"{state}\"\n\n\
                 [cluster]\nkubeconfig = \"{kubeconfig}\"\n\n{redfish}{inventory}",
                config = dir.join("fleetboot.toml").display(),
                port = self.ssh_port,
                key = key_path.display(),
                known = dir.join("known_hosts").display(),
                state = dir.join("state").display(),
                kubeconfig = dir.join("kubeconfig").display(),
                inventory = self
                    .nodes
                    .iter()
                    .map(|n| format!("[[hosts]]\nname = \"{}\"\naddress = \"{}\"\n\n", n.name, n.addr.ip()))
                    .collect::<String>(),
            )
            .as_bytes(),
        )?;
        Ok(config)
    }
}

/// Writes a file whole under a fresh name, then renames it into place: a file (or a symlink)
/// already at `path` is replaced, never written through, and a reader never sees half of it.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temp = path.with_file_name(format!(".{name}.{}", uuid::Uuid::new_v4().simple()));
    let written = std::fs::OpenOptions::new().create_new(true).write(true).mode(mode).open(&temp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    match written.and_then(|()| std::fs::rename(&temp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// Keys and passwords: the owner's alone.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_new(path, bytes, 0o600)
}

fn write_public(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_new(path, bytes, 0o644)
}

/// Node name and pool of the i-th node: masters first.
fn node_identity(i: usize, masters: usize) -> (String, &'static str) {
    if i < masters { (format!("master-{i}"), "master") } else { (format!("worker-{}", i - masters), "worker") }
}

/// The crash-looping pods of `nodes`, in the order a read of every pod gives them (by
/// "namespace/name", the store's key): each node's pods through the store's `spec.nodeName`
/// index, as a kubelet lists its own (kubernetes release-1.33 pkg/kubelet/config/apiserver.go
/// `NewSourceApiserver`: a `spec.nodeName=NODE` field selector). Reading every pod of the
/// cluster for each batch of rebooted nodes was 13 % of the simulation's CPU at 10,000 nodes.
fn crashlooping_pods_on(store: &super::store::Store, nodes: &std::collections::BTreeSet<String>) -> Vec<Arc<Value>> {
    let pods = t("", "v1", "pods");
    let mut found: Vec<(String, Arc<Value>)> = Vec::new();
    for node in nodes {
        let Ok(fields) = super::selector::FieldSelector::parse(&format!("spec.nodeName={node}")) else { continue };
        let filter = super::store::Filter { fields, ..Default::default() };
        for pod in store.list(pods, &filter, None, None).items {
            let crashlooping = pod
                .at("/status/containerStatuses")
                .and_then(Value::as_array)
                .is_some_and(|c| c.iter().any(|s| s.at("/state/waiting/reason").and_then(Value::as_str) == Some("CrashLoopBackOff")));
            if crashlooping {
                found.push((super::store::key_of(&pod), pod));
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found.into_iter().map(|(_, pod)| pod).collect()
}

/// Kubelets and the node lifecycle controller: NotReady some time after a node goes down,
/// Ready with its new boot ID some time after it boots.
async fn kubelets(cluster: Arc<Cluster>, mut events: mpsc::UnboundedReceiver<NodeEvent>, timings: Timings) {
    let (rebooted, restarts) = mpsc::unbounded_channel();
    tokio::spawn(restart_pods_after_reboots(cluster.clone(), restarts));
    while let Some(event) = events.recv().await {
        let cluster = cluster.clone();
        let rebooted = rebooted.clone();
        tokio::spawn(async move {
            match event {
                NodeEvent::WentDown(name) => {
                    tokio::time::sleep(timings.notready_after).await;
                    let still_down = cluster.node(&name).is_some_and(|n| n.phase() == super::node::Phase::Down);
                    if still_down {
                        cluster.patch_node_status(&name, json!({"conditions": [ready_condition("Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")]}));
                    }
                }
                NodeEvent::Booted(name) => {
                    tokio::time::sleep(timings.kubelet_ready_after).await;
                    let Some(node) = cluster.node(&name) else { return };
                    let ready = match cluster.network_problem(&name) {
                        None => ready_condition("True", "KubeletReady", "kubelet is posting ready status"),
                        Some(why) => ready_condition("False", "KubeletNotReady", &why),
                    };
                    let is_ready = ready["status"] == "True";
                    cluster.patch_node_status(&name, json!({"nodeInfo": {"bootID": node.boot_id()}, "conditions": [ready]}));
                    if !is_ready {
                        node.note("up, NotReady (network)");
                        return;
                    }
                    node.note("ready");
                    let _ = rebooted.send(name);
                }
            }
        });
    }
}

/// A rebooted node's kubelet restarts its crash-looping pods. Batched: a whole fleet booting
/// at once costs one pass over the pods, not one per node (each pass holds the store).
async fn restart_pods_after_reboots(cluster: Arc<Cluster>, mut rebooted: mpsc::UnboundedReceiver<String>) {
    while let Some(first) = rebooted.recv().await {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut nodes = std::collections::BTreeSet::from([first]);
        while let Ok(more) = rebooted.try_recv() {
            nodes.insert(more);
        }
        cluster.restart_crashlooping_pods(&nodes);
    }
}

/// Removes Terminating namespaces (and what is in them) a moment after their deletion.
async fn namespace_controller(cluster: Arc<Cluster>) {
    let ns_type = t("", "v1", "namespaces");
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let terminating: Vec<String> = cluster
            .api
            .store
            .lock()
            .unwrap()
            .list(ns_type, &Default::default(), None, None)
            .items
            .iter()
            .filter(|n| n.at("/metadata/deletionTimestamp").is_some())
            .map(|n| n["metadata"]["name"].as_str().unwrap_or_default().to_owned())
            .collect();
        for name in terminating {
            cluster.api.store.lock().unwrap().purge_namespace(&name);
        }
        if let Some((_, ca_pem)) = cluster.api.tls.get() {
            super::serviceaccounts::publish_root_ca(&mut cluster.api.store.lock().unwrap(), ca_pem);
        }
    }
}

/// The cluster's kubelets, by its nodes.
/// (The API server's exec reaches them through the `exec::Kubelets` seam: it does not know the
/// cluster.)
pub struct ClusterKubelets(pub std::sync::Weak<Cluster>);

impl super::exec::Kubelets for ClusterKubelets {
    fn dial(&self, node: &str) -> Result<(), String> {
        let cluster = self.0.upgrade().ok_or("the simulation is shutting down")?;
        let node = cluster.node(node).ok_or_else(|| format!("node {node:?} not found"))?;
        if node.kubelet_up() {
            Ok(())
        } else {
            // The API server's proxy to the kubelet (`upgradeaware.go`) fails dialing it.
            Err(format!("error dialing backend: dial tcp {}:10250: connect: no route to host", node.addr.ip()))
        }
    }

    fn run(&self, node: &str, command: &str, root: bool) -> (String, String, u32) {
        match self.0.upgrade().and_then(|c| c.node(node).cloned()) {
            Some(node) => node.answer_as(command, root),
            None => (String::new(), "node gone\n".into(), 1),
        }
    }
}

/// The longest API outage a test may ask for: an hour is already longer than any timeout.
const MAX_OUTAGE: Duration = Duration::from_secs(3600);

/// The fault-injection and inspection endpoint (`/sim/v1/...`) that tests and rehearsals call.
///
/// - `GET nodes`: every node's phase, boot ID and history
/// - `POST nodes/NAME/faults` with `{"never_returns": true, ...}` (the names of [`Faults`])
/// - `POST nodes/NAME/bmc` with `{"errors": N, "unauthorized": N, "silent": true, "tasks": true,
///   "expire_sessions": true, "session_timeout_ms": N, "allowed_resets": [..] | null,
///   "after_reset": "503" | "drop" | "task_404" | null}` (the last: how the next reset, carried
///   out, fails its client)
/// - `POST outage` with `{"seconds": N}`: the API drops connections and cuts watches; with
///   `"stall": true` it takes requests and answers none until the N seconds are over
/// - `POST hold-requests` with `{"method": M, "resource": R, "held": true|false}`: requests
///   of M on R wait unanswered while held (one slow call; the rest of the API answers); method
///   `EXEC` on `pods/exec` holds exec upgrades before their pod is looked up (`GET exec` counts
///   those waiting as `held`)
/// - `POST lose-answers` with `{"method": M, "resource": R, "count": N}`: the next N requests
///   of M on R are carried out and answered 504 (a write that landed, its answer lost)
/// - `POST fail-requests` with `{"method": M, "resource": R, "count": N}`: the next N requests
///   of M on R are answered 500 (`"LIST"`: only lists of R, not its watches nor gets)
/// - `POST fail-watches` with `{"resource": R, "how": "status" | "error-event" | "gone" | null}`:
///   every watch of R fails until set back to null: answered 500 (`status`), or opened and
///   ended after one ERROR event carrying the 500 (`error-event`) or a 410 Expired, as a watch
///   from a resourceVersion the API's history no longer holds (`gone`: the client relists);
///   its lists and gets answer as usual
/// - `POST cut-watches`: ends every open watch stream once (and closes the connections)
/// - `POST end-watches`: ends every open watch stream once as its timeout would, the
///   connections kept (the client's other requests on them go on)
/// - `POST api-restart` (with `--state-dir`): the API server restarts: its store is written to
///   the state directory, every connection and watch is cut, the store is read back from it
/// - `GET operators/refusals`: every change the simulated network operator refused
/// - `GET traffic`: what clients asked of the API, by `"METHOD resource[/subresource]"` and
///   `"WATCH resource"`: `{"requests", "bytes", "events"}` each, and the requests RBAC refused
///   (`--rbac`, 403) by `"DENIED verb resource"`; `POST traffic/reset` zeroes it
/// - `POST exec-forbidden` with `{"namespace": NS, "forbidden": true|false, "user": U}`: exec
///   there is refused (403, the real API's message); `GET exec`: exec requests and stream bytes;
///   `POST exec-drop` with `{"commands": [TEXT]}`: streams of such commands are cut after they ran
///   (`"when": "before-answer"`: they run and their connection is cut before the upgrade's answer)
///
/// [`Faults`]: super::node::Faults
pub fn control(cluster: &Arc<Cluster>, method: &hyper::Method, path: &str, body: &Value) -> Result<Value, (u16, String)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["nodes"]) => Ok(json!(cluster.nodes.iter().map(|n| json!({
            "name": n.name, "address": n.addr.to_string(), "phase": format!("{:?}", n.phase()), "bootID": n.boot_id(),
            "poweredOff": n.powered_off.load(Ordering::SeqCst),
            "bmc": cluster.bmcs.iter().find(|b| b.node.name == n.name).map(|b| json!({"url": b.url(), "openSessions": b.open_sessions()})),
            "history": n.history.lock().unwrap().iter().map(|(t, w)| json!([t, w])).collect::<Vec<_>>(),
        })).collect::<Vec<_>>())),
        ("POST", ["nodes", name, "faults"]) => {
            let node = cluster.node(name).ok_or((404, format!("no node {name:?}")))?;
            let fields = body.as_object().ok_or((400, "expected a JSON object of fault switches".to_owned()))?;
            for (key, value) in fields {
                let on = value.as_bool().ok_or((400, format!("fault {key:?} takes true or false")))?;
                node.set_fault(key, on).map_err(|e| (400, e))?;
            }
            Ok(json!({"node": name, "applied": body}))
        }
        ("POST", ["nodes", name, "bmc"]) => {
            let bmc = cluster.bmcs.iter().find(|b| b.node.name == *name).ok_or((404, format!("no BMC for node {name:?}")))?;
            let fields = body.as_object().ok_or((400, "expected a JSON object".to_owned()))?;
            for (key, value) in fields {
                let bad = || (400, format!("bad value for BMC setting {key:?}: {value}"));
                match key.as_str() {
                    "errors" => bmc.faults.errors.store(value.as_u64().ok_or_else(bad)? as u32, Ordering::SeqCst),
                    "unauthorized" => bmc.faults.unauthorized.store(value.as_u64().ok_or_else(bad)? as u32, Ordering::SeqCst),
                    "silent" => bmc.faults.silent.store(value.as_bool().ok_or_else(bad)?, Ordering::SeqCst),
                    "tasks" => bmc.faults.tasks.store(value.as_bool().ok_or_else(bad)?, Ordering::SeqCst),
                    "after_reset" => {
                        *bmc.faults.after_reset.lock().unwrap() = match value {
                            Value::Null => None,
                            name => Some(super::bmc::AfterReset::parse(name.as_str().ok_or_else(bad)?).map_err(|e| (400, e))?),
                        }
                    }
                    "expire_sessions" => bmc.expire_sessions(),
                    "session_timeout_ms" => *bmc.session_timeout.lock().unwrap() = Duration::from_millis(value.as_u64().ok_or_else(bad)?),
                    "allowed_resets" => {
                        *bmc.faults.allowed_resets.lock().unwrap() = match value {
                            Value::Null => None,
                            list => Some(serde_json::from_value(list.clone()).map_err(|_| bad())?),
                        }
                    }
                    other => return Err((400, format!("unknown BMC setting {other:?}"))),
                }
            }
            Ok(json!({"node": name, "applied": body}))
        }
        ("POST", ["exec-forbidden"]) => super::exec::control_forbid(&cluster.api.exec, body),
        ("GET", ["exec"]) => Ok(super::exec::counters(&cluster.api.exec)),
        ("POST", ["exec-drop"]) => super::exec::control_drop(&cluster.api.exec, body),
        ("POST", ["outage"]) => {
            let seconds = body["seconds"].as_f64().ok_or((400, "expected {\"seconds\": N}".to_owned()))?;
            let length = Duration::try_from_secs_f64(seconds)
                .ok()
                .filter(|d| *d <= MAX_OUTAGE)
                .ok_or((400, format!("an outage of {seconds} s: expected 0 to {} seconds", MAX_OUTAGE.as_secs())))?;
            match &body["stall"] {
                Value::Null | Value::Bool(false) => cluster.api_outage(length),
                Value::Bool(true) => cluster.api_stall(length),
                other => return Err((400, format!("\"stall\" takes true or false, not {other}"))),
            }
            Ok(json!({"outage_seconds": seconds}))
        }
        ("POST", ["fail-requests"]) => {
            // {"method": "PATCH", "resource": "nodes", "count": N}: the next N such requests get 500.
            let method = body["method"].as_str().ok_or((400, "expected \"method\"".to_owned()))?;
            let resource = body["resource"].as_str().ok_or((400, "expected \"resource\"".to_owned()))?;
            let count = body["count"].as_u64().and_then(|n| u32::try_from(n).ok()).ok_or((400, "expected \"count\"".to_owned()))?;
            cluster.api.failing_requests.lock().unwrap().insert(format!("{method} {resource}"), count);
            Ok(json!({"failing": format!("{method} {resource}"), "count": count}))
        }
        ("POST", ["lose-answers"]) => {
            // {"method": "POST", "resource": "configmaps", "count": N}: the next N such requests
            // are carried out and answered 504 (the answer of a write that landed, lost).
            let method = body["method"].as_str().ok_or((400, "expected \"method\"".to_owned()))?;
            let resource = body["resource"].as_str().ok_or((400, "expected \"resource\"".to_owned()))?;
            let count = body["count"].as_u64().and_then(|n| u32::try_from(n).ok()).ok_or((400, "expected \"count\"".to_owned()))?;
            cluster.api.lost_answers.lock().unwrap().insert(format!("{method} {resource}"), count);
            Ok(json!({"losing": format!("{method} {resource}"), "count": count}))
        }
        ("POST", ["fail-watches"]) => {
            // {"resource": "nodes", "how": "status"}: every watch of nodes fails until "how": null.
            let resource = body["resource"].as_str().ok_or((400, "expected \"resource\"".to_owned()))?;
            let mut failing = cluster.api.failing_watches.lock().unwrap();
            match &body["how"] {
                Value::Null => {
                    failing.remove(resource);
                }
                Value::String(how) => {
                    failing.insert(resource.to_owned(), super::api::WatchFault::parse(how).map_err(|e| (400, e))?);
                }
                other => return Err((400, format!("\"how\" takes \"status\", \"error-event\", \"gone\" or null, not {other}"))),
            }
            Ok(json!({"resource": resource, "how": body["how"]}))
        }
        ("POST", ["hold-requests"]) => {
            // {"method": "DELETE", "resource": "namespaces", "held": true}: such requests wait
            // unanswered until released with "held": false.
            let method = body["method"].as_str().ok_or((400, "expected \"method\"".to_owned()))?;
            let resource = body["resource"].as_str().ok_or((400, "expected \"resource\"".to_owned()))?;
            let held = body["held"].as_bool().ok_or((400, "expected \"held\": true or false".to_owned()))?;
            let key = format!("{method} {resource}");
            let mut all = cluster.api.held_requests.lock().unwrap();
            if held {
                all.insert(key.clone());
            } else {
                all.remove(&key);
            }
            Ok(json!({"held": key, "on": held}))
        }
        ("GET", ["operators", "refusals"]) => Ok(json!(*cluster.refusals.lock().unwrap())),
        ("GET", ["traffic"]) => Ok(json!(
            cluster
                .api
                .traffic
                .lock()
                .unwrap()
                .iter()
                .map(|(kind, t)| { (kind.clone(), json!({"requests": t.requests, "bytes": t.bytes, "events": t.events, "sent": t.sent})) })
                .collect::<serde_json::Map<String, Value>>()
        )),
        ("POST", ["traffic", "reset"]) => {
            cluster.api.traffic.lock().unwrap().clear();
            Ok(json!({}))
        }
        ("POST", ["api-restart"]) => {
            let dir =
                cluster.api.state_dir.get().ok_or((400, "the simulation keeps no store: start it with --state-dir DIR".to_owned()))?;
            super::persist::restart_api(&cluster.api, dir)
        }
        ("POST", ["cut-watches"]) => {
            let _ = cluster.api.cut_watches.send(());
            Ok(json!({"cut": true}))
        }
        ("POST", ["end-watches"]) => {
            let _ = cluster.api.end_watches.send(());
            Ok(json!({"ended": true}))
        }
        _ => Err((404, format!("no simulation endpoint {method} /sim/v1/{path}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Filter, Store};
    use std::collections::BTreeSet;

    /// What `crashlooping_pods_on` replaced: every pod of the cluster read, in the store's order.
    fn by_reading_every_pod(store: &Store, nodes: &BTreeSet<String>) -> Vec<String> {
        store
            .list(t("", "v1", "pods"), &Filter::default(), None, None)
            .items
            .iter()
            .filter(|pod| pod.at("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| nodes.contains(n)))
            .filter(|pod| {
                pod.at("/status/containerStatuses")
                    .and_then(Value::as_array)
                    .is_some_and(|c| c.iter().any(|s| s.at("/state/waiting/reason").and_then(Value::as_str) == Some("CrashLoopBackOff")))
            })
            .map(|pod| super::super::store::key_of(pod))
            .collect()
    }

    #[test]
    fn the_crashlooping_pods_of_rebooted_nodes_are_those_and_in_the_order_a_read_of_every_pod_gives() {
        let mut store = Store::new(100);
        let pods = t("", "v1", "pods");
        // Namespaces whose keys sort apart from their names ("a-b/x" before "a/x"), pods on
        // several nodes, crash-looping or not, one unscheduled.
        for (i, (ns, node, crashlooping)) in [
            ("a", "n1", true),
            ("a-b", "n2", true),
            ("a", "n2", true),
            ("ab", "n1", false),
            ("a-b", "n1", true),
            ("b", "n3", true),
            ("a", "", true),
            ("a.c", "n2", true),
        ]
        .into_iter()
        .enumerate()
        {
            let mut pod = super::super::world::app_pod(&format!("p{}", 7 - i), node, crashlooping);
            if node.is_empty() {
                pod["spec"].as_object_mut().unwrap().remove("nodeName");
            }
            store.create(pods, Some(ns), pod).unwrap();
        }
        for nodes in [vec!["n1"], vec!["n1", "n2"], vec!["n2", "n3", "n4"], vec!["n4"], vec![]] {
            let nodes: BTreeSet<String> = nodes.into_iter().map(str::to_owned).collect();
            let keys: Vec<String> = crashlooping_pods_on(&store, &nodes).iter().map(|p| super::super::store::key_of(p)).collect();
            assert_eq!(keys, by_reading_every_pod(&store, &nodes), "{nodes:?}");
        }
        let all: BTreeSet<String> = ["n1", "n2", "n3"].into_iter().map(str::to_owned).collect();
        assert_eq!(by_reading_every_pod(&store, &all), ["a-b/p3", "a-b/p6", "a.c/p0", "a/p5", "a/p7", "b/p2"]);
    }
}
