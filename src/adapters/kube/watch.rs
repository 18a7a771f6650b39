//! One Node watch per run, shared by every host task.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::Api;

/// One watch on Nodes (kube-runtime watcher with backoff, feeding a reflector store) for the
/// whole run: every node's readiness comes from it, with no per-node polling of the API. It
/// rides out API outages: the watcher reconnects with backoff and relists after 410 Gone; after
/// [`FAILING_AFTER`] failures in a row with no answer between (its list or its watch) it is
/// blind, as a refused one is, until it answers again ([`NodeWatch::blind`]).
pub struct NodeWatch {
    store: kube::runtime::reflector::Store<Node>,
    /// True once the watch's first list is in the store. Not the store's own
    /// `wait_until_ready`: kube-runtime 5's `DelayedInit` polls one futures oneshot receiver,
    /// which keeps the waker of its last poller only, so of many tasks waiting at once one was
    /// woken and the others sat out their 30 s timeout (a 200/20 rolling run went one host at a
    /// time for its first 30 s). A watch channel wakes every waiter.
    listed: tokio::sync::watch::Receiver<bool>,
    /// The API's refusal while it refuses the watch for good (403: the role lacks `list` or
    /// `watch` on nodes), as the world read's own refusal, cleared by the next event. kube-runtime's watcher retries every error
    /// with backoff as if transient; a refusal left there would read, a reboot timeout later,
    /// as "never showed node X".
    refused: tokio::sync::watch::Receiver<Option<super::world::WorldError>>,
    /// The watch's errors since its last event (any kind: an API server answering 500, a
    /// stream that breaks), cleared by the next event. kube-runtime's watcher retries each with
    /// backoff and says nothing more; past [`FAILING_AFTER`] in a row the nodes in the store
    /// may be stale for good, and the run must not judge limits or proofs on them.
    failing: tokio::sync::watch::Receiver<Option<Failing>>,
    waiters: Arc<NodeWaiters>,
    task: tokio::task::JoinHandle<()>,
    client: Client,
    /// The nodes that may be unavailable, kept from the watch's events (what a dispatch reads).
    unavailable: Arc<std::sync::Mutex<super::world::Unavailable>>,
    /// The world, one read shared by the dispatches that ask at once, per grouping rule (the
    /// pools are read only when the run groups by pool).
    fresh: std::sync::Mutex<std::collections::HashMap<Option<String>, Arc<WorldRead>>>,
}

/// The world's parts read from the API, put together with the watch's nodes once the read is
/// in, once for everyone who shares the read: at 10,000 nodes, 1,000 in flight, each asker
/// putting its own together cost a thousand nodes' evaluation per dispatch.
type WorldRead = super::world::SharedRead<Result<Arc<fleetboot_core::limits::World>, super::world::WorldError>>;

/// How many failed attempts in a row, with no event between, make the Node watch blind (its
/// nodes no longer shown as they are). kube-runtime's default backoff waits at least 0.8 s,
/// then 1.6 s between them (jitter only adds): three in a row are at least 2.4 s of a watch
/// that cannot get through, while one dropped connection or one relist is a single error
/// followed by the watch's events.
pub const FAILING_AFTER: u32 = 3;

/// The Node watch's errors since its last event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failing {
    /// Failed attempts in a row (each a request of the watcher's, spaced by its backoff).
    pub attempts: u32,
    /// The last one's words: the API's status and message, or the transport's error.
    pub last: String,
    /// The API's last answer among them (its status and message), when it answered one: a
    /// watch the API ends with an error is followed by a try on the connection it closed
    /// ("client error (SendRequest)"), and that alone would hide what the API said.
    pub api_answer: Option<String>,
}

impl Failing {
    /// The failures so far (`None`: since an event) and one more, `error`.
    fn then(previous: Option<&Failing>, error: &kube::runtime::watcher::Error) -> Failing {
        let attempts = previous.map_or(0, |f| f.attempts) + 1;
        match api_status(error) {
            Some(status) => {
                let words = status_words(status);
                Failing { attempts, last: words.clone(), api_answer: Some(words) }
            }
            None => Failing { attempts, last: error.to_string(), api_answer: previous.and_then(|f| f.api_answer.clone()) },
        }
    }
}

impl std::fmt::Display for Failing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the cluster API's Node watch failed {} times in a row, the last: {}", self.attempts, self.last)?;
        if let Some(answer) = self.api_answer.as_ref().filter(|answer| **answer != self.last) {
            write!(f, " (the API's last answer: {answer})")?;
        }
        write!(f, "; the nodes it shows may be stale")
    }
}

/// The API's answer in a watcher error, when the API answered (not the transport's failure).
fn api_status(error: &kube::runtime::watcher::Error) -> Option<&kube::core::Status> {
    use kube::runtime::watcher::Error as WatchError;
    match error {
        WatchError::InitialListFailed(kube::Error::Api(status))
        | WatchError::WatchStartFailed(kube::Error::Api(status))
        | WatchError::WatchFailed(kube::Error::Api(status)) => Some(status),
        WatchError::WatchError(status) => Some(status),
        _ => None,
    }
}

/// An API answer's words: its code, reason and message.
fn status_words(status: &kube::core::Status) -> String {
    match status.reason.as_str() {
        "" => format!("{}: {}", status.code, status.message),
        reason => format!("{} {reason}: {}", status.code, status.message),
    }
}

/// Per-node wake-ups: an event for one node wakes only the runs waiting on that node (with
/// thousands of nodes heartbeating, waking every waiter on every event costs more than the
/// watch itself). A relist wakes everyone.
#[derive(Default)]
struct NodeWaiters {
    by_node: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Notify>>>,
}

impl NodeWaiters {
    fn for_node(&self, name: &str) -> Arc<tokio::sync::Notify> {
        self.by_node.lock().unwrap().entry(name.to_owned()).or_default().clone()
    }

    fn wake(&self, name: &str) {
        if let Some(notify) = self.by_node.lock().unwrap().get(name) {
            notify.notify_waiters();
        }
    }

    fn wake_all(&self) {
        for notify in self.by_node.lock().unwrap().values() {
            notify.notify_waiters();
        }
    }
}

/// A Node's boot ID and whether its Ready condition is True, read without copying the node.
fn boot_id_and_ready(node: &Node) -> (&str, &str) {
    let status = node.status.as_ref();
    let boot_id = status.and_then(|s| s.node_info.as_ref()).map_or("", |i| i.boot_id.as_str());
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map_or("Unknown", |c| c.status.as_str());
    (boot_id, ready)
}

impl NodeWatch {
    pub fn start(client: &Client) -> NodeWatch {
        use futures::StreamExt;
        use kube::runtime::{WatchStreamExt, reflector, watcher};
        let (store, writer) = reflector::store::<Node>();
        let waiters = Arc::new(NodeWaiters::default());
        let unavailable = Arc::new(std::sync::Mutex::new(super::world::Unavailable::default()));
        let feed = unavailable.clone();
        // The set sees each event before the reflector's store does: never staler than it.
        let events = watcher(Api::<Node>::all(client.clone()), watcher::Config::default()).default_backoff().map(move |event| {
            if let Ok(event) = &event {
                feed.lock().unwrap().apply(event);
            }
            event
        });
        let stream = reflector(writer, events);
        let wake = waiters.clone();
        let (listed_tx, listed) = tokio::sync::watch::channel(false);
        let (refused_tx, refused) = tokio::sync::watch::channel(None);
        let (failing_tx, failing) = tokio::sync::watch::channel(None::<Failing>);
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            // Errors are the watcher's to retry (with backoff), a refusal said meanwhile; each
            // event wakes its node's waiters.
            while let Some(event) = stream.next().await {
                match &event {
                    Err(error) => {
                        if let Some(refused) = refusal(error) {
                            refused_tx.send_replace(Some(refused));
                        }
                        failing_tx.send_modify(|f| *f = Some(Failing::then(f.as_ref(), error)));
                    }
                    // `Init` is said before the list is even asked for (kube-runtime 5 `watcher.rs`,
                    // `State::Empty`), again after each list that failed: it answers nothing, so
                    // a relist that keeps failing still counts toward blind.
                    Ok(watcher::Event::Init) => {}
                    Ok(_) => {
                        refused_tx.send_if_modified(|r| r.take().is_some());
                        failing_tx.send_if_modified(|f| f.take().is_some());
                    }
                }
                match event {
                    Ok(watcher::Event::Apply(node) | watcher::Event::Delete(node)) => {
                        wake.wake(node.metadata.name.as_deref().unwrap_or_default())
                    }
                    // The reflector applied the list to the store before passing this on.
                    Ok(watcher::Event::InitDone) => {
                        listed_tx.send_replace(true);
                        wake.wake_all()
                    }
                    Ok(_) | Err(_) => {}
                }
            }
        });
        NodeWatch { store, listed, refused, failing, waiters, task, client: client.clone(), unavailable, fresh: Default::default() }
    }

    /// Waits (at most 30 s) until the watch's first list is in the store; whether it is. A
    /// refused watch ends the wait at once.
    async fn listed(&self) -> bool {
        let (mut listed, mut refused) = (self.listed.clone(), self.refused.clone());
        let wait = async {
            tokio::select! {
                done = listed.wait_for(|l| *l) => done.is_ok(),
                _ = refused.wait_for(Option::is_some) => false,
            }
        };
        matches!(tokio::time::timeout(std::time::Duration::from_secs(30), wait).await, Ok(true))
    }

    /// Every node as the watch shows it, once its first list is in (at most 30 s): `None`
    /// when it is not, or the watch is refused or failed even once before it listed (the
    /// caller lists them itself at once, rather than wait out the watch's backoff).
    pub async fn listed_nodes(&self) -> Option<Vec<Arc<Node>>> {
        let mut failing = self.failing.clone();
        let listed = tokio::select! {
            listed = self.listed() => listed,
            _ = failing.wait_for(Option::is_some) => false,
        };
        if !listed || self.blind().is_some() {
            return None;
        }
        Some(self.store.state())
    }

    /// The API's refusal while it refuses the Node watch for good (403).
    pub fn refused(&self) -> Option<super::world::WorldError> {
        self.refused.borrow().clone()
    }

    /// Whether the watch shows `node` plainly available now: listed, and not among the nodes that
    /// may be unavailable (kept from its events before the store sees them). A blind watch
    /// cannot tell.
    pub fn available_now(&self, node: &str) -> bool {
        *self.listed.borrow()
            && self.blind().is_none()
            && !self.unavailable.lock().unwrap().contains(node)
            && self.store.get(&kube::runtime::reflector::ObjectRef::new(node)).is_some()
    }

    /// Why the watch cannot show the nodes as they are now, while it cannot: the API refuses
    /// it for good ([`WorldError::Refused`](super::world::WorldError::Refused)), or it failed
    /// [`FAILING_AFTER`] times in a row with no event between (`Unreadable`, naming the error).
    pub fn blind(&self) -> Option<super::world::WorldError> {
        self.refused().or_else(|| {
            let failing = self.failing.borrow();
            failing.as_ref().filter(|f| f.attempts >= FAILING_AFTER).map(|f| super::world::WorldError::Unreadable(f.to_string()))
        })
    }

    /// Resolves once the API refuses the watch for good: a 403, and [`FAILING_AFTER`] failures
    /// in a row with no answer between (one 403 alone, as an API server restarting may answer
    /// before its authorizer is ready, fails no host whose reboot was sent), with its refusal.
    pub async fn refusal(&self) -> super::world::WorldError {
        let mut failing = self.failing.clone();
        // The refusal is said before the failure it comes with is counted.
        let persisted =
            failing.wait_for(|f| f.as_ref().is_some_and(|f| f.attempts >= FAILING_AFTER) && self.refused.borrow().is_some()).await;
        // Cloned out at once: no channel's guard is held across the await below.
        let found = persisted.ok().and_then(|_| self.refused.borrow().clone());
        match found {
            Some(refused) => refused,
            // The watch's task ended (the run is ending): no refusal will come.
            None => std::future::pending().await,
        }
    }

    /// The node's boot ID as the API shows it now (once the first list arrived, at most 30 s).
    pub async fn boot_id(&self, name: &str) -> Option<String> {
        let _ = self.listed().await;
        let node = self.store.get(&kube::runtime::reflector::ObjectRef::new(name))?;
        let (boot_id, _) = boot_id_and_ready(&node);
        (!boot_id.is_empty()).then(|| boot_id.to_owned())
    }

    /// What the limits read before a host goes down: every node as the watch shows it now,
    /// with the medik8s Leases and the etcd ClusterOperator read fresh (by a read that started
    /// after this call, shared with the others who asked meanwhile).
    pub async fn world(&self, group_by: Option<&str>) -> Result<Arc<fleetboot_core::limits::World>, super::world::WorldError> {
        use super::world::WorldError;
        let listed = self.listed().await;
        // The watch refused, or failing for good: every limit would be judged on nodes it can
        // no longer see (refused: the host fails at once; failing: it waits, saying why).
        if let Some(blind) = self.blind() {
            return Err(blind);
        }
        if !listed {
            return Err(WorldError::Unreadable("the cluster API has not listed the nodes yet".into()));
        }
        let shared = self.fresh.lock().unwrap().entry(group_by.map(str::to_owned)).or_default().clone();
        let world = shared
            .read(|| {
                let (client, group_by) = (self.client.clone(), group_by.map(str::to_owned));
                let (unavailable, store) = (self.unavailable.clone(), self.store.clone());
                async move {
                    let fresh = super::world::read_fresh(client, group_by.clone()).await?;
                    // The nodes as the watch shows them once the rest is in: never older than
                    // the read, so never older than any ask it answers.
                    let candidates = unavailable.lock().unwrap().nodes();
                    let lookup = |name: &str| store.get(&kube::runtime::reflector::ObjectRef::new(name));
                    Ok(Arc::new(super::world::assemble(fresh, candidates, lookup, group_by.as_deref())))
                }
            })
            .await?;
        // Refused (or failing) while the read was in flight (the watch's next request after it
        // ended): the nodes in it are the last ones seen, and a node sent down now could not be
        // seen back.
        if let Some(blind) = self.blind() {
            return Err(blind);
        }
        Ok(world)
    }

    /// What the health gate reads: the nodes as the watch shows them now (but `exclude`, the
    /// run's own in flight), the pools and ClusterOperators read fresh.
    pub async fn health(&self, exclude: &std::collections::BTreeSet<String>) -> Result<fleetboot_core::batch::HealthView, String> {
        if !self.listed().await {
            return Err("the cluster API has not listed the nodes yet".into());
        }
        super::gates::read_health(&self.client, &self.store.state(), exclude).await
    }

    /// Merges labels and annotations into a node's metadata (`None`: removed).
    pub async fn mark(
        &self,
        node: &str,
        labels: &std::collections::BTreeMap<String, Option<String>>,
        annotations: &std::collections::BTreeMap<String, Option<String>>,
    ) -> Result<(), String> {
        use kube::api::{Patch, PatchParams};
        let patch = serde_json::json!({"metadata": {"labels": labels, "annotations": annotations}});
        Api::<Node>::all(self.client.clone())
            .patch(node, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map(|_| ())
            .map_err(|e| format!("cannot label or annotate node {node}: {e}"))
    }

    /// The pods matching a label selector, in every namespace (`--block-on-pods`).
    pub async fn pods_matching(&self, selector: &str) -> Result<Vec<fleetboot_core::batch::PodNow>, String> {
        super::gates::pods_matching(&self.client, selector).await
    }

    /// The node's resourceVersion as the watch shows it now.
    pub fn node_version(&self, name: &str) -> Option<String> {
        self.store.get(&kube::runtime::reflector::ObjectRef::new(name))?.metadata.resource_version.clone()
    }

    /// Waits until the watch shows `name` at a resourceVersion other than `from` (any event of
    /// that node, or a relist), or `deadline`.
    pub async fn wait_changed(&self, name: &str, from: Option<String>, deadline: tokio::time::Instant) {
        let notify = self.waiters.for_node(name);
        loop {
            // Registered before the store is read, so no event between the two is missed.
            let woken = notify.notified();
            if self.node_version(name) != from || tokio::time::Instant::now() >= deadline {
                return;
            }
            let _ = tokio::time::timeout_at(deadline, woken).await;
        }
    }

    /// Waits until the API shows `name` Ready with a boot ID other than `old`; returns that
    /// boot ID, or why not by `deadline` (monotonic: no wall-clock jump moves it).
    pub async fn wait_back(&self, name: &str, old: &str, deadline: tokio::time::Instant) -> Result<String, NotBack> {
        let key = kube::runtime::reflector::ObjectRef::new(name);
        let notify = self.waiters.for_node(name);
        loop {
            // Registered before the store is read, so no event between the two is missed.
            let woken = notify.notified();
            if let Some(node) = self.store.get(&key) {
                let (boot_id, ready) = boot_id_and_ready(&node);
                if boot_id != old && !boot_id.is_empty() && ready == "True" {
                    return Ok(boot_id.to_owned());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                let node = name.to_owned();
                return Err(match self.store.get(&key) {
                    // Blind, not "never seen" nor "old boot ID": the API refused the watch, or
                    // it kept failing.
                    _ if let Some(blind) = self.blind() => NotBack::Blind { node, blind },
                    None => NotBack::NeverSeen { node },
                    Some(seen) => match boot_id_and_ready(&seen) {
                        (boot_id, ready) if boot_id == old => NotBack::OldBootId { node, old: old.to_owned(), ready: ready.to_owned() },
                        (_, ready) => NotBack::NotReady { node, ready: ready.to_owned() },
                    },
                });
            }
            let _ = tokio::time::timeout_at(deadline, woken).await;
        }
    }
}

/// Which of two resourceVersions of objects of the same kind is the later one, or `None` when
/// they are not comparable.
///
/// Kubernetes long documented resourceVersions as opaque (equality only), and KEP-5504
/// "Comparable Resource Version" (kubernetes/enhancements#5504, stable in v1.35) made them
/// comparable for objects of the same type: a comparable version is a decimal integer with no
/// leading zero, and the longer one is the later one, equal lengths compared digit by digit
/// (the KEP's helper function; client-go's comparison helper came with its conformance test,
/// kubernetes/kubernetes#134330). Anything else (an empty string, a leading zero, a character
/// that is not a digit: an aggregated or third-party API server's own format) is not
/// comparable, and neither order is assumed. Equal strings are the same version whatever
/// their form (the one comparison the API always allowed). Pure.
pub fn compare_resource_versions(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    if a == b {
        return Some(std::cmp::Ordering::Equal);
    }
    let comparable = |v: &str| !v.is_empty() && !v.starts_with('0') && v.bytes().all(|c| c.is_ascii_digit());
    (comparable(a) && comparable(b)).then(|| a.len().cmp(&b.len()).then_with(|| a.cmp(b)))
}

/// What the API showed instead of a node back with a new boot ID, at the deadline.
#[derive(Clone, Debug, thiserror::Error)]
pub enum NotBack {
    #[error("the cluster API never showed node {node}")]
    NeverSeen { node: String },
    /// Blind, not "never seen": one message for the refusal (or the failing watch) wherever
    /// it is met (here and in the world read), the API's answer kept as its source.
    #[error("node {node} could not be seen back: {blind}")]
    Blind {
        node: String,
        #[source]
        blind: super::world::WorldError,
    },
    #[error("the cluster API still shows node {node} with its old boot ID {old} (Ready={ready})")]
    OldBootId { node: String, old: String, ready: String },
    #[error("the cluster API shows node {node} with a new boot ID but Ready={ready}")]
    NotReady { node: String, ready: String },
}

/// The refusal, when `error` is a refusal for good (403) of the watch or its list.
fn refusal(error: &kube::runtime::watcher::Error) -> Option<super::world::WorldError> {
    use kube::runtime::watcher::Error as WatchError;
    let status = match error {
        WatchError::InitialListFailed(kube::Error::Api(status))
        | WatchError::WatchStartFailed(kube::Error::Api(status))
        | WatchError::WatchFailed(kube::Error::Api(status)) => status,
        WatchError::WatchError(status) => status,
        _ => return None,
    };
    (status.code == 403).then(|| super::world::WorldError::of_read("watch the Nodes", kube::Error::Api(status.clone())))
}

impl Drop for NodeWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::watcher::Error as WatchError;

    fn api(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(kube::core::Status { code, message: message.into(), ..Default::default() }.boxed())
    }

    #[test]
    fn resource_versions_compare_as_kep_5504_says_and_other_forms_do_not() {
        use std::cmp::Ordering::{Equal, Greater, Less};
        assert_eq!(compare_resource_versions("9", "10"), Some(Less), "a longer version is later, not a lexically later one");
        assert_eq!(compare_resource_versions("123", "124"), Some(Less));
        assert_eq!(compare_resource_versions("1000", "999"), Some(Greater));
        assert_eq!(compare_resource_versions("42", "42"), Some(Equal));
        // Not comparable: no order assumed, but the same string is the same version.
        for other in ["", "0", "012", "12a", "-5", "1.5", "abc"] {
            assert_eq!(compare_resource_versions(other, "10"), None, "{other:?}");
            assert_eq!(compare_resource_versions("10", other), None, "{other:?}");
        }
        assert_eq!(compare_resource_versions("opaque-7", "opaque-7"), Some(Equal));
    }

    #[test]
    fn a_403_to_the_watch_or_its_list_is_a_refusal_with_the_apis_message_and_nothing_else_is() {
        let forbidden = "nodes is forbidden: User \"fleetboot\" cannot watch resource \"nodes\"";
        for error in [
            WatchError::InitialListFailed(api(403, forbidden)),
            WatchError::WatchStartFailed(api(403, forbidden)),
            WatchError::WatchFailed(api(403, forbidden)),
            WatchError::WatchError(Box::new(kube::core::Status { code: 403, message: forbidden.into(), ..Default::default() })),
        ] {
            match refusal(&error) {
                Some(super::super::world::WorldError::Refused { what, message, source }) => {
                    assert_eq!((what.as_str(), message.as_str()), ("watch the Nodes", forbidden), "{error}");
                    assert!(matches!(&*source, kube::Error::Api(status) if status.code == 403), "{error}: {source}");
                }
                other => panic!("{error}: {other:?}"),
            }
        }
        // Transient to the watcher, and to fleetboot: an outage, a relist, a throttle.
        for error in [
            WatchError::InitialListFailed(api(503, "unavailable")),
            WatchError::WatchError(Box::new(kube::core::Status { code: 410, message: "too old".into(), ..Default::default() })),
            WatchError::WatchFailed(api(429, "slow down")),
            WatchError::NoResourceVersion,
        ] {
            assert!(refusal(&error).is_none(), "{error}");
        }
    }

    #[test]
    fn a_failing_watch_is_named_by_its_attempts_and_the_apis_answer() {
        let error = WatchError::WatchStartFailed(api(500, "etcdserver: request timed out"));
        let failing = [&error, &error, &error].into_iter().fold(None, |f: Option<Failing>, e| Some(Failing::then(f.as_ref(), e))).unwrap();
        let text = super::super::world::WorldError::Unreadable(failing.to_string()).to_string();
        assert!(text.contains("the cluster API's Node watch failed 3 times in a row"), "{text}");
        assert!(text.contains("the last: 500: etcdserver: request timed out; the nodes"), "said once: {text}");
        // No Status to read: the watcher's own words.
        let words = Failing::then(None, &WatchError::NoResourceVersion);
        assert_eq!((words.last, words.api_answer), (WatchError::NoResourceVersion.to_string(), None));
    }

    #[test]
    fn a_transport_failure_after_the_apis_answer_keeps_the_answer_named() {
        // The API ends a watch with a 500; the watcher's next tries fail on the connection
        // (`NoResourceVersion` stands in for any failure with no API answer in it).
        let answered = Failing::then(
            None,
            &WatchError::WatchError(Box::new(kube::core::Status {
                code: 500,
                reason: "InternalError".into(),
                message: "etcdserver: request timed out".into(),
                ..Default::default()
            })),
        );
        let broken = Failing::then(Some(&Failing::then(Some(&answered), &WatchError::NoResourceVersion)), &WatchError::NoResourceVersion);
        let text = broken.to_string();
        assert!(text.contains("failed 3 times in a row, the last: "), "{text}");
        assert!(text.contains(&WatchError::NoResourceVersion.to_string()), "{text}");
        assert!(text.contains("(the API's last answer: 500 InternalError: etcdserver: request timed out)"), "{text}");
    }

    #[test]
    fn a_node_not_seen_back_under_a_refused_watch_says_the_watch_was_refused() {
        let refused = refusal(&WatchError::WatchFailed(api(403, "nodes is forbidden"))).expect("a 403 is a refusal");
        let error = NotBack::Blind { node: "worker-0".into(), blind: refused };
        let text = error.to_string();
        assert!(text.contains("refuses to let fleetboot watch the Nodes (403 Forbidden: nodes is forbidden)"), "{text}");
        assert!(text.contains("node worker-0 could not be seen back"), "{text}");
        // The API's answer stays reachable below the message.
        let below = std::error::Error::source(&error).and_then(std::error::Error::source).map(ToString::to_string);
        assert!(below.is_some_and(|b| b.contains("nodes is forbidden")), "{error:?}");
    }
}
