//! The world a dispatch decision reads ([`fleetboot_core::limits::World`]): every node from the
//! run's Node watch, the medik8s per-node Leases, and the `etcd` ClusterOperator.

use std::collections::BTreeMap;

use fleetboot_core::limits::{EtcdHealth, MEDIK8S_LEASE_NAMESPACE, NodeLease, NodeNow, World};
use fleetboot_core::nodes::{PoolSelector, group_key, is_control_plane};
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};

use super::{api_resource, machine_config_pools, pool_selectors};

/// One node as a limit counts it. `group_by`: the run's grouping rule, when it has one.
pub fn node_now(node: &Node, pools: &[PoolSelector], group_by: Option<&str>) -> NodeNow {
    let labels: BTreeMap<String, String> = node.metadata.labels.clone().unwrap_or_default().into_iter().collect();
    let roles: Vec<String> = labels.keys().filter_map(|k| k.strip_prefix("node-role.kubernetes.io/")).map(str::to_owned).collect();
    let annotation = |key: &str| node.metadata.annotations.as_ref().and_then(|a| a.get(key)).cloned().unwrap_or_default();
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    let pool = fleetboot_core::nodes::pool_of(&labels, pools);
    NodeNow {
        name: node.metadata.name.clone().unwrap_or_default(),
        ready,
        unschedulable: node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false),
        mco_state: annotation("machineconfiguration.openshift.io/state"),
        current_config: annotation("machineconfiguration.openshift.io/currentConfig"),
        desired_config: annotation("machineconfiguration.openshift.io/desiredConfig"),
        control_plane: is_control_plane(&roles),
        group: group_by.map(|by| group_key(&roles, pool.as_deref(), &labels, by)),
        version: node.metadata.resource_version.clone(),
    }
}

/// A Lease time (`renewTime`, `acquireTime`: RFC 3339 with microseconds) in ms since the epoch.
fn lease_time_ms(lease: &DynamicObject, field: &str) -> Option<u64> {
    let text = lease.data.pointer(&format!("/spec/{field}"))?.as_str()?;
    let at = humantime::parse_rfc3339_weak(text).ok()?;
    Some(at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as u64)
}

/// Why the world around a node could not be read.
#[derive(Clone, Debug, thiserror::Error)]
pub enum WorldError {
    /// The API refuses the read for good (403: the role fleetboot runs under lacks it). Waiting
    /// cannot change that: the host fails at once, nothing touched, instead of waiting its
    /// reboot timeout out as if the answer were only late.
    #[error(
        "the cluster API refuses to let fleetboot {what} (403 Forbidden: {message}): the role it runs under lacks it (re-apply what `fleetboot rbac` prints)"
    )]
    Refused {
        what: String,
        message: String,
        #[source]
        source: std::sync::Arc<kube::Error>,
    },
    /// Not known now (an outage, the first list not in yet): the host waits, as for any other
    /// reason not to go.
    #[error("{0}")]
    Unreadable(String),
}

impl WorldError {
    /// `error` from trying to `what` ("list the Leases in …"): refused for good on a 403.
    pub fn of_read(what: &str, error: kube::Error) -> WorldError {
        match &error {
            kube::Error::Api(status) if status.code == 403 => {
                WorldError::Refused { what: what.to_owned(), message: status.message.clone(), source: std::sync::Arc::new(error) }
            }
            _ => WorldError::Unreadable(format!("cannot {what}: {error}")),
        }
    }
}

/// The parts of the world read from the API at each ask (the Node watch keeps the nodes): the
/// pools (only when the run groups by pool), the medik8s per-node Leases, etcd's health.
#[derive(Clone, Debug)]
pub struct FreshParts {
    pools: Vec<PoolSelector>,
    leases: Vec<NodeLease>,
    etcd: Option<EtcdHealth>,
}

/// Reads [`FreshParts`]. An error names what could not be read: the caller waits, as for any
/// other reason not to go, unless the API refused it for good ([`WorldError::Refused`]).
pub async fn read_fresh(client: Client, group_by: Option<String>) -> Result<FreshParts, WorldError> {
    // Three independent reads, at once: the decision waits for the slowest alone.
    let (pools, leases, etcd) = futures::join!(read_pools(&client, group_by.as_deref()), read_leases(&client), read_etcd(&client));
    Ok(FreshParts { pools: pools?, leases: leases?, etcd: etcd? })
}

/// The world from `fresh` around the watch's view: `candidates`, the nodes that may be
/// unavailable ([`Unavailable`], kept by the watch's own events), and `lookup`, any node by name
/// (a node holding a medik8s Lease counts whatever its object says).
pub fn assemble(
    fresh: FreshParts,
    candidates: Vec<std::sync::Arc<Node>>,
    lookup: impl Fn(&str) -> Option<std::sync::Arc<Node>>,
    group_by: Option<&str>,
) -> World {
    let FreshParts { pools, leases, etcd } = fresh;
    // Only a node that may be unavailable can stand in the way: the others are not even
    // looked at (a rolling run over thousands of nodes reads this before every dispatch).
    let mut chosen: BTreeMap<String, std::sync::Arc<Node>> =
        candidates.into_iter().filter(|n| may_be_unavailable(n)).map(|n| (n.metadata.name.clone().unwrap_or_default(), n)).collect();
    for lease in &leases {
        for name in [lease.name.as_str(), lease.name.strip_prefix("node-").unwrap_or(lease.name.as_str())] {
            if !chosen.contains_key(name)
                && let Some(node) = lookup(name)
            {
                chosen.insert(name.to_owned(), node);
            }
        }
    }
    let nodes = chosen.values().map(|n| node_now(n, &pools, group_by)).collect();
    World { nodes, leases, etcd }
}

/// One read shared by everyone who asked before it started. An answer is never older than its
/// question (the read it comes from began after the ask: "read the world before acting" holds
/// for each asker), yet however many ask at once, one read is in flight and at most one more
/// waits behind it for all who asked meanwhile. At 5,000 nodes, 500 in flight, a dispatch every
/// few ms each asked the API three questions of its own, and the answers queued behind each other.
///
/// The read runs as a task of its own: an asker that gives up (an abort) takes no one's answer
/// with it; a read that panics lets the next asker start another.
pub struct SharedRead<V> {
    state: std::sync::Arc<tokio::sync::watch::Sender<Flights<V>>>,
}

struct Flights<V> {
    /// Reads started so far; the n-th is numbered n.
    started: u64,
    running: bool,
    /// The latest read's number and answer.
    done: Option<(u64, V)>,
}

impl<V: Clone + Send + Sync + 'static> Default for SharedRead<V> {
    fn default() -> Self {
        SharedRead { state: std::sync::Arc::new(tokio::sync::watch::Sender::new(Flights { started: 0, running: false, done: None })) }
    }
}

impl<V: Clone + Send + Sync + 'static> SharedRead<V> {
    /// The answer of a read that started after this call: the one this call starts, or one
    /// another asker started after it asked. `read` starts a read (called at most once per
    /// read started here; again only if a read panicked).
    pub async fn read<F>(&self, read: impl Fn() -> F) -> V
    where
        F: std::future::Future<Output = V> + Send + 'static,
    {
        let mut seen = self.state.subscribe();
        // Any read numbered above what has started by now starts after the ask.
        let needed = seen.borrow_and_update().started + 1;
        loop {
            let mut lead = None;
            self.state.send_if_modified(|f| {
                if f.running || f.done.as_ref().is_some_and(|(number, _)| *number >= needed) {
                    return false;
                }
                f.started += 1;
                f.running = true;
                lead = Some(f.started);
                true
            });
            if let Some(number) = lead {
                let answer = read();
                let finished = Finished { state: self.state.clone(), number, answer: None };
                tokio::spawn(async move {
                    let mut finished = finished;
                    finished.answer = Some(answer.await);
                });
            }
            if let Some((number, answer)) = &seen.borrow_and_update().done
                && *number >= needed
            {
                return answer.clone();
            }
            // Never closed: this holds the sender.
            let _ = seen.changed().await;
        }
    }
}

/// A read's end, said when its task ends: with its answer, or (a panic, a runtime shutting down)
/// without one, so that the next asker starts another read rather than waiting for ever.
struct Finished<V> {
    state: std::sync::Arc<tokio::sync::watch::Sender<Flights<V>>>,
    number: u64,
    answer: Option<V>,
}

impl<V> Drop for Finished<V> {
    fn drop(&mut self) {
        let answer = self.answer.take();
        let number = self.number;
        self.state.send_modify(|f| {
            f.running = false;
            if let Some(answer) = answer {
                f.done = Some((number, answer));
            }
        });
    }
}

/// The nodes that may be unavailable by their own objects, kept from the Node watch's events as
/// they arrive: a dispatch reads this small set instead of testing every node of the view. It is
/// fed each event before the reflector's store is, so it is never staler than the store (a node
/// that went NotReady a moment ago is in it); a relist replaces it whole at its end, as the
/// store is replaced.
#[derive(Debug, Default)]
pub struct Unavailable {
    nodes: std::collections::HashMap<String, std::sync::Arc<Node>>,
    /// A relist under way: its nodes so far (the old set stands until it is done).
    relist: Option<std::collections::HashMap<String, std::sync::Arc<Node>>>,
}

impl Unavailable {
    pub fn apply(&mut self, event: &kube::runtime::watcher::Event<Node>) {
        use kube::runtime::watcher::Event;
        let key = |n: &Node| n.metadata.name.clone().unwrap_or_default();
        match event {
            Event::Apply(node) => {
                if may_be_unavailable(node) {
                    self.nodes.insert(key(node), std::sync::Arc::new(node.clone()));
                } else {
                    self.nodes.remove(&key(node));
                }
            }
            Event::Delete(node) => {
                self.nodes.remove(&key(node));
            }
            Event::Init => self.relist = Some(Default::default()),
            Event::InitApply(node) => {
                if may_be_unavailable(node) {
                    self.relist.get_or_insert_with(Default::default).insert(key(node), std::sync::Arc::new(node.clone()));
                }
            }
            Event::InitDone => self.nodes = self.relist.take().unwrap_or_default(),
        }
    }

    /// Whether `node` may be unavailable by its latest object (as the watch delivered it).
    pub fn contains(&self, node: &str) -> bool {
        self.nodes.contains_key(node)
    }

    pub fn nodes(&self) -> Vec<std::sync::Arc<Node>> {
        self.nodes.values().cloned().collect()
    }
}

/// Whether a node may count as unavailable by its own object (the cheap test before the full
/// conversion; [`fleetboot_core::limits::unavailable`] decides).
fn may_be_unavailable(node: &Node) -> bool {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    let annotation = |key: &str| node.metadata.annotations.as_ref().and_then(|a| a.get(key));
    let updating = annotation("machineconfiguration.openshift.io/state").is_some_and(|s| s == "Working")
        || annotation("machineconfiguration.openshift.io/currentConfig") != annotation("machineconfiguration.openshift.io/desiredConfig");
    !ready || node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false) || updating
}

async fn read_pools(client: &Client, group_by: Option<&str>) -> Result<Vec<PoolSelector>, WorldError> {
    Ok(if group_by == Some("pool") {
        match Api::<DynamicObject>::all_with(client.clone(), &machine_config_pools()).list(&ListParams::default()).await {
            Ok(list) => pool_selectors(&list.items),
            Err(kube::Error::Api(status)) if status.code == 404 => Vec::new(),
            Err(e) => return Err(WorldError::of_read("list the MachineConfigPools", e)),
        }
    } else {
        Vec::new()
    })
}

async fn read_leases(client: &Client) -> Result<Vec<NodeLease>, WorldError> {
    let lease_kind = api_resource("coordination.k8s.io", "v1", "Lease", "leases");
    match Api::<DynamicObject>::namespaced_with(client.clone(), MEDIK8S_LEASE_NAMESPACE, &lease_kind).list(&ListParams::default()).await {
        Ok(list) => Ok(list
            .items
            .iter()
            .map(|l| NodeLease {
                name: l.metadata.name.clone().unwrap_or_default(),
                holder: l.data.pointer("/spec/holderIdentity").and_then(serde_json::Value::as_str).unwrap_or_default().to_owned(),
                renewed_ms: lease_time_ms(l, "renewTime").or_else(|| lease_time_ms(l, "acquireTime")),
                duration_ms: l.data.pointer("/spec/leaseDurationSeconds").and_then(serde_json::Value::as_u64).map(|s| s * 1000),
            })
            .collect()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Vec::new()),
        Err(e) => Err(WorldError::of_read(&format!("list the Leases in {MEDIK8S_LEASE_NAMESPACE}"), e)),
    }
}

async fn read_etcd(client: &Client) -> Result<Option<EtcdHealth>, WorldError> {
    let operators = api_resource("config.openshift.io", "v1", "ClusterOperator", "clusteroperators");
    match Api::<DynamicObject>::all_with(client.clone(), &operators).get_opt("etcd").await {
        Ok(Some(etcd)) => {
            let condition = |kind: &str| fleetboot_core::conditions::is_true(&etcd.data, kind);
            Ok(Some(EtcdHealth { available: condition("Available"), degraded: condition("Degraded") }))
        }
        Ok(None) => Ok(None),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(e) => Err(WorldError::of_read("read the etcd ClusterOperator", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::watcher::Event;

    fn node(name: &str, ready: bool, unschedulable: bool) -> Node {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"unschedulable": unschedulable},
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        }))
        .unwrap()
    }

    /// The full scan the set replaces, over a view kept the way the reflector keeps it.
    fn full_scan(view: &BTreeMap<String, Node>) -> Vec<String> {
        view.values().filter(|n| may_be_unavailable(n)).map(|n| n.metadata.name.clone().unwrap()).collect()
    }

    fn names(set: &Unavailable) -> Vec<String> {
        let mut names: Vec<String> = set.nodes().iter().map(|n| n.metadata.name.clone().unwrap()).collect();
        names.sort();
        names
    }

    #[test]
    fn the_incremental_set_equals_the_full_scan_through_applies_deletes_and_relists() {
        let mut set = Unavailable::default();
        let mut view: BTreeMap<String, Node> = BTreeMap::new();
        let mut relist: Option<BTreeMap<String, Node>> = None;
        let mut feed = |set: &mut Unavailable, view: &mut BTreeMap<String, Node>, event: Event<Node>| {
            set.apply(&event);
            // The reflector's semantics: a relist replaces the view at its end.
            match event {
                Event::Apply(n) => {
                    view.insert(n.metadata.name.clone().unwrap(), n);
                }
                Event::Delete(n) => {
                    view.remove(n.metadata.name.as_ref().unwrap());
                }
                Event::Init => relist = Some(BTreeMap::new()),
                Event::InitApply(n) => {
                    relist.get_or_insert_with(BTreeMap::new).insert(n.metadata.name.clone().unwrap(), n);
                }
                Event::InitDone => *view = relist.take().unwrap_or_default(),
            }
        };
        let events = vec![
            Event::Init,
            Event::InitApply(node("a", true, false)),
            Event::InitApply(node("b", false, false)),
            Event::InitApply(node("c", true, true)),
            Event::InitDone,
            // a goes NotReady a moment ago: in the set at once.
            Event::Apply(node("a", false, false)),
            Event::Apply(node("b", true, false)),
            Event::Delete(node("c", true, true)),
            Event::Apply(node("d", false, false)),
            // A relist (410 Gone, a restart): the old set stands until it is done, then is replaced.
            Event::Init,
            Event::InitApply(node("a", true, false)),
            Event::InitApply(node("e", true, true)),
            Event::InitDone,
            Event::Apply(node("a", true, true)),
        ];
        let mut checked = 0;
        for event in events {
            let during_relist = matches!(event, Event::Init | Event::InitApply(_));
            feed(&mut set, &mut view, event);
            if !during_relist {
                assert_eq!(names(&set), full_scan(&view));
                checked += 1;
            }
        }
        assert_eq!(checked, 7);
        assert_eq!(names(&set), vec!["a".to_owned(), "e".to_owned()]);
    }

    /// A world the test changes, and reads of it that take 100 ms and answer what it was when
    /// they started.
    struct Changing {
        epoch: std::sync::atomic::AtomicU64,
        reads: std::sync::atomic::AtomicU64,
        panics_left: std::sync::atomic::AtomicU64,
    }

    impl Changing {
        fn new(panics: u64) -> std::sync::Arc<Changing> {
            std::sync::Arc::new(Changing { epoch: 0.into(), reads: 0.into(), panics_left: panics.into() })
        }

        fn read(self: &std::sync::Arc<Changing>) -> impl std::future::Future<Output = u64> + Send + 'static {
            use std::sync::atomic::Ordering::SeqCst;
            let world = self.clone();
            async move {
                world.reads.fetch_add(1, SeqCst);
                let seen = world.epoch.load(SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                if world.panics_left.load(SeqCst) > 0 {
                    world.panics_left.fetch_sub(1, SeqCst);
                    panic!("a read that breaks");
                }
                seen
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn askers_share_one_read_that_started_after_each_of_them_asked() {
        use std::sync::atomic::Ordering::SeqCst;
        let world = Changing::new(0);
        let shared = std::sync::Arc::new(SharedRead::<u64>::default());
        let ask = |shared: &std::sync::Arc<SharedRead<u64>>| {
            let (shared, world) = (shared.clone(), world.clone());
            tokio::spawn(async move { shared.read(|| world.read()).await })
        };
        let first = ask(&shared);
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        // The world changes while the first read is under way: whoever asks now must not get
        // its answer, which started before they asked.
        world.epoch.store(1, SeqCst);
        let later: Vec<_> = (0..50).map(|_| ask(&shared)).collect();
        assert_eq!(first.await.unwrap(), 0);
        for asker in later {
            assert_eq!(asker.await.unwrap(), 1, "an answer from a read that started after the ask");
        }
        assert_eq!(world.reads.load(SeqCst), 2, "51 askers, one read in flight and one behind it for all who asked meanwhile");
        // Nothing under way, an answer at hand: a new ask still gets a new read.
        world.epoch.store(2, SeqCst);
        assert_eq!(ask(&shared).await.unwrap(), 2);
        assert_eq!(world.reads.load(SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn an_asker_that_gives_up_or_a_read_that_panics_leaves_no_one_waiting() {
        use std::sync::atomic::Ordering::SeqCst;
        let world = Changing::new(1);
        let shared = std::sync::Arc::new(SharedRead::<u64>::default());
        // The first asker starts a read that will panic, and gives up before it ends.
        let gave_up = tokio::time::timeout(std::time::Duration::from_millis(10), shared.read(|| world.read())).await;
        assert!(gave_up.is_err());
        // Asked while that read is under way: it waits for it, finds no answer, and reads itself.
        world.epoch.store(1, SeqCst);
        let answer = tokio::time::timeout(std::time::Duration::from_secs(5), shared.read(|| world.read())).await;
        assert_eq!(answer.expect("answered, not left waiting"), 1);
        assert_eq!(world.reads.load(SeqCst), 2);
    }
}
