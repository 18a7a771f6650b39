//! The simulated API server's object store: one cluster-wide increasing resourceVersion,
//! optimistic concurrency, a bounded change history for watch resumption (older versions are
//! 410 Gone), and a broadcast of changes for live watches.
//!
//! One file, past 500 lines: versions, history and watches are one consistency model, with its tests.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::patch;
use super::selector::{FieldSelector, LabelSelector};
use super::types::ResourceType;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "ADDED",
            ChangeKind::Modified => "MODIFIED",
            ChangeKind::Deleted => "DELETED",
        }
    }
}

#[derive(Debug)]
pub struct Change {
    pub rv: u64,
    pub type_key: String,
    pub kind: ChangeKind,
    pub object: Arc<Value>,
    pub previous: Option<Arc<Value>>,
    /// `object` as JSON, encoded by the first watch that sends it and shared by every other:
    /// one encoding per change, not one per watcher, as the API server's watch cache wraps each
    /// event's object in a `cachingObject` that keeps its serialization for all watchers
    /// (k8s.io/apiserver `pkg/storage/cacher/caching_object.go`, KEP-1152 "Less object
    /// serializations", kubernetes 1.18 and later).
    encoded: std::sync::OnceLock<Vec<u8>>,
}

impl Change {
    /// [`Change::object`] as JSON, encoded once.
    pub fn object_json(&self) -> &[u8] {
        self.encoded.get_or_init(|| serde_json::to_vec(&*self.object).expect("a JSON value serializes"))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} {name:?} not found")]
    NotFound { kind: String, name: String },
    #[error("{kind} {name:?} already exists")]
    AlreadyExists { kind: String, name: String },
    #[error(
        "Operation cannot be fulfilled on {plural} {name:?}: the object has been modified; please apply your changes to the latest version and try again"
    )]
    Conflict { plural: String, name: String },
    /// A DeleteOptions precondition that does not hold (the API server's 409 Conflict).
    #[error("Operation cannot be fulfilled on {plural} {name:?}: {message}")]
    PreconditionFailed { plural: String, name: String, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("too old resource version: {requested} ({oldest})")]
    Gone { requested: u64, oldest: u64 },
    #[error("{0}")]
    TooManyRequests(String),
}

impl StoreError {
    /// The HTTP code and the `Status.reason` a real API server gives.
    pub fn code_and_reason(&self) -> (u16, &'static str) {
        match self {
            StoreError::NotFound { .. } => (404, "NotFound"),
            StoreError::AlreadyExists { .. } => (409, "AlreadyExists"),
            StoreError::Conflict { .. } | StoreError::PreconditionFailed { .. } => (409, "Conflict"),
            StoreError::Invalid(_) => (422, "Invalid"),
            StoreError::BadRequest(_) => (400, "BadRequest"),
            StoreError::Gone { .. } => (410, "Expired"),
            StoreError::TooManyRequests(_) => (429, "TooManyRequests"),
        }
    }

    pub fn status(&self) -> Value {
        let (code, reason) = self.code_and_reason();
        let mut status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.to_string(), "reason": reason, "code": code,
        });
        if let StoreError::NotFound { kind, name } | StoreError::AlreadyExists { kind, name } = self {
            status["details"] = json!({"name": name, "kind": kind});
        }
        status
    }
}

/// A body the server can store: a JSON object whose `metadata`, `spec` and `status` are objects
/// where present. A real API server's decoder refuses anything else with 400 before any
/// handler sees it; the simulation's handlers and controllers index into these fields, so a
/// malformed body must stop here, before the store's lock is held by code that could panic.
fn check_shape(object: &Value) -> Result<(), StoreError> {
    let Some(fields) = object.as_object() else {
        return Err(StoreError::BadRequest(format!("the body must be a JSON object, not {}", json_type(object))));
    };
    for field in ["metadata", "spec", "status"] {
        match fields.get(field) {
            None | Some(Value::Null) | Some(Value::Object(_)) => {}
            Some(other) => {
                return Err(StoreError::BadRequest(format!("{field} must be a JSON object, not {}", json_type(other))));
            }
        }
    }
    if let Some(Value::Object(meta)) = fields.get("metadata") {
        for field in ["labels", "annotations"] {
            if let Some(map) = meta.get(field).filter(|v| !v.is_null()) {
                let strings = map.as_object().is_some_and(|m| m.values().all(Value::is_string));
                if !strings {
                    return Err(StoreError::BadRequest(format!("metadata.{field} must map strings to strings")));
                }
            }
        }
    }
    Ok(())
}

/// Per-kind validation a real API server applies on create and update. A ConfigMap's `data`
/// plus `binaryData` may hold at most 1 MiB: kubernetes release-1.33
/// pkg/apis/core/validation/validation.go `ValidateConfigMap` (`totalSize > core.MaxSecretSize`,
/// `field.TooLong(field.NewPath(""), "", core.MaxSecretSize)`; pkg/apis/core/types.go
/// `MaxSecretSize = 1 * 1024 * 1024`), answered 422 Invalid as
/// `ConfigMap "NAME" is invalid: []: Too long: may not be more than 1048576 bytes`.
fn check_kind_limits(t: &ResourceType, object: &Value) -> Result<(), StoreError> {
    const MAX_CONFIG_MAP_SIZE: usize = 1024 * 1024;
    if t.kind != "ConfigMap" {
        return Ok(());
    }
    let mut total = 0;
    for field in ["data", "binaryData"] {
        if let Some(map) = object.get(field).and_then(Value::as_object) {
            for (key, value) in map {
                total += key.len() + value.as_str().map_or(0, str::len);
            }
        }
    }
    if total > MAX_CONFIG_MAP_SIZE {
        return Err(StoreError::Invalid(format!(
            "ConfigMap {:?} is invalid: []: Too long: may not be more than {MAX_CONFIG_MAP_SIZE} bytes",
            name_of(object)
        )));
    }
    Ok(())
}

/// Whether `body` (without a status) equals `current` in every field but its status.
fn equal_but_status(body: &Value, current: &Value) -> bool {
    let (Some(body), Some(current)) = (body.as_object(), current.as_object()) else { return false };
    body.len() == current.len() - usize::from(current.contains_key("status")) && body.iter().all(|(k, v)| current.get(k) == Some(v))
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
}

/// Which objects a list or watch sees.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn matches(&self, object: &Value) -> bool {
        let ns_ok = match &self.namespace {
            Some(ns) => object.pointer("/metadata/namespace").and_then(Value::as_str) == Some(ns.as_str()),
            None => true,
        };
        ns_ok && self.labels.matches_object(object) && self.fields.matches(object)
    }
}

pub struct ListPage {
    pub items: Vec<Arc<Value>>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining: usize,
}

/// What a new watch sees first (the events it missed since its resourceVersion, or the current
/// objects as ADDED) and the receiver of every change after.
pub type WatchStart = (Vec<(ChangeKind, Arc<Value>)>, broadcast::Receiver<Arc<Change>>);

pub struct Store {
    rv: u64,
    objects: HashMap<String, BTreeMap<String, Arc<Value>>>,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// Changes with a resourceVersion at or below this are no longer in the history.
    compacted_through: u64,
    changes: broadcast::Sender<Arc<Change>>,
    /// The last revision that changed an object of each kind (by type key): a controller whose
    /// pass reads only some kinds skips it when none of them changed.
    kind_revisions: HashMap<String, u64>,
    /// The pods' keys by `spec.nodeName`, as the API server's watch cache indexes them
    /// (kubernetes release-1.33 pkg/registry/core/pod/strategy.go `Indexers`: the
    /// `spec.nodeName` field index its cacher serves a kubelet's or a client's
    /// `fieldSelector=spec.nodeName=X` list from, instead of every pod of the cluster).
    pods_by_node: HashMap<String, BTreeSet<String>>,
    /// The PodDisruptionBudgets' keys by where a pod they may select is found ([`BudgetSlot`]):
    /// an eviction reads the budgets that may select its pod, not every budget of its namespace
    /// (3,333 in one namespace at 10,000 workers, each selector parsed per eviction: a drained
    /// run's evictions held the store for seconds).
    budgets_by_slot: HashMap<BudgetSlot, BTreeSet<String>>,
}

const PODS: &str = "/pods";
const BUDGETS: &str = "policy/poddisruptionbudgets";

/// Where a budget's pods are looked up: by the one `key=value` requirement of its selector that
/// every pod it selects carries ([`LabelSelector::an_equality`]: namespace, key, value), or, for
/// a selector without one (empty, or expressions only), by its namespace alone. A budget
/// without a selector selects no pod (`metav1.LabelSelectorAsSelector`: `labels.Nothing()`) and
/// has no slot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum BudgetSlot {
    Label(String, String, String),
    Namespace(String),
}

fn budget_slot(budget: &Value) -> Option<BudgetSlot> {
    let selector = LabelSelector::from_optional(budget.pointer("/spec/selector").unwrap_or(&Value::Null))?;
    let namespace = budget.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default().to_owned();
    Some(match selector.an_equality() {
        Some((key, value)) => BudgetSlot::Label(namespace, key.to_owned(), value.to_owned()),
        None => BudgetSlot::Namespace(namespace),
    })
}

/// Moves a changed object's key in an index from its slot `was` to `is` (either may be none); an
/// emptied slot goes.
fn move_key<S, Q>(index: &mut HashMap<S, BTreeSet<String>>, was: Option<&Q>, is: Option<&Q>, before: Option<&Value>, after: Option<&Value>)
where
    S: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: std::hash::Hash + Eq + ToOwned<Owned = S> + ?Sized,
{
    if was == is {
        return;
    }
    let key = key_of(after.or(before).expect("a change has an object"));
    if let Some(was) = was
        && let Some(keys) = index.get_mut(was)
    {
        keys.remove(&key);
        if keys.is_empty() {
            index.remove(was);
        }
    }
    if let Some(is) = is {
        index.entry(is.to_owned()).or_default().insert(key);
    }
}

fn node_name_of(object: &Value) -> Option<&str> {
    object.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty())
}

/// An object's key in its kind's map ("namespace/name", or "name"): a full list's order.
pub fn key_of(object: &Value) -> String {
    object_key(object.pointer("/metadata/namespace").and_then(Value::as_str), name_of(object))
}

fn object_key(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_owned(),
    }
}

/// A random suffix as the API server makes for `generateName`: 5 characters from the
/// alphabet Kubernetes uses (no vowels, no look-alikes).
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4().as_bytes()[..5].iter().map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect()
}

pub fn name_of(object: &Value) -> &str {
    object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default()
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

impl Store {
    pub fn new(history_limit: usize) -> Store {
        let (changes, _) = broadcast::channel(16384);
        Store {
            rv: 1,
            objects: HashMap::new(),
            history: VecDeque::new(),
            history_limit,
            compacted_through: 0,
            changes,
            kind_revisions: HashMap::new(),
            pods_by_node: HashMap::new(),
            budgets_by_slot: HashMap::new(),
        }
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// The last revision that changed an object of kind `t` (0: none since the start).
    pub fn kind_revision(&self, t: &ResourceType) -> u64 {
        self.kind_revisions.get(&t.key()).copied().unwrap_or(0)
    }

    /// Every change after revision `rv`, oldest first, or None when the history no longer holds
    /// them all (compacted, or a restored store): a controller that follows the changes must
    /// then read everything again, as an informer relists after a 410 Gone.
    pub fn changes_since(&self, rv: u64) -> Option<impl Iterator<Item = &Arc<Change>>> {
        if rv < self.compacted_through {
            return None;
        }
        let start = self.history.partition_point(|c| c.rv <= rv);
        Some(self.history.range(start..))
    }

    /// What a real API server keeps in etcd: every object and the current revision; not the
    /// change history, which lives in the API server's memory (its watch cache).
    pub fn snapshot(&self) -> Value {
        let mut objects = serde_json::Map::new();
        for (type_key, bucket) in &self.objects {
            objects.insert(type_key.clone(), Value::Array(bucket.values().map(|o| (**o).clone()).collect()));
        }
        json!({"resourceVersion": self.rv, "objects": objects})
    }

    /// Puts a [`Store::snapshot`] back, as an API server restarting reads etcd: the objects
    /// and the revision go on; the history starts empty at the current revision, so a watch
    /// from an older version is 410 Gone (k8s.io/apiserver release-1.33
    /// pkg/storage/cacher/watch_cache.go: a new watch cache starts at the revision it listed,
    /// and an older one is "too old resource version").
    pub fn restore(&mut self, snapshot: &Value) -> Result<(), String> {
        let rv = snapshot["resourceVersion"].as_u64().ok_or("no resourceVersion in the saved store")?;
        let saved = snapshot["objects"].as_object().ok_or("no objects in the saved store")?;
        let mut objects: HashMap<String, BTreeMap<String, Arc<Value>>> = HashMap::new();
        for (type_key, items) in saved {
            let bucket = objects.entry(type_key.clone()).or_default();
            for item in items.as_array().ok_or_else(|| format!("{type_key}: not a list"))? {
                let namespace = item.pointer("/metadata/namespace").and_then(Value::as_str);
                bucket.insert(object_key(namespace, name_of(item)), Arc::new(item.clone()));
            }
        }
        // Every restored kind changed as far as a controller can tell.
        self.kind_revisions = objects.keys().map(|k| (k.clone(), rv)).collect();
        self.objects = objects;
        self.pods_by_node.clear();
        for pod in self.objects.get(PODS).into_iter().flat_map(|b| b.values()) {
            if let Some(node) = node_name_of(pod) {
                self.pods_by_node.entry(node.to_owned()).or_default().insert(key_of(pod));
            }
        }
        self.budgets_by_slot.clear();
        let budgets: Vec<Arc<Value>> = self.objects.get(BUDGETS).into_iter().flat_map(|b| b.values().cloned()).collect();
        for budget in budgets {
            self.index_budget(None, Some(&budget));
        }
        self.rv = rv;
        self.history.clear();
        self.compacted_through = rv;
        Ok(())
    }

    fn bucket(&mut self, t: &ResourceType) -> &mut BTreeMap<String, Arc<Value>> {
        self.objects.entry(t.key()).or_default()
    }

    fn record(&mut self, t: &ResourceType, kind: ChangeKind, object: Arc<Value>, previous: Option<Arc<Value>>) {
        let type_key = t.key();
        if type_key == PODS {
            self.index_pod(previous.as_deref(), (kind != ChangeKind::Deleted).then_some(&*object));
        } else if type_key == BUDGETS {
            self.index_budget(previous.as_deref(), (kind != ChangeKind::Deleted).then_some(&*object));
        }
        self.kind_revisions.insert(type_key, self.rv);
        let change = Arc::new(Change { rv: self.rv, type_key: t.key(), kind, object, previous, encoded: Default::default() });
        self.history.push_back(change.clone());
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted_through = old.rv;
            }
        }
        // No receivers is fine; a lagging receiver learns it on its next recv.
        let _ = self.changes.send(change);
    }

    /// Moves a pod's key in the node index from where `before` had it to where `after` has it.
    fn index_pod(&mut self, before: Option<&Value>, after: Option<&Value>) {
        let (was, is) = (before.and_then(node_name_of), after.and_then(node_name_of));
        move_key(&mut self.pods_by_node, was, is, before, after);
    }

    /// Moves a budget's key in its index from `before`'s slot to `after`'s.
    fn index_budget(&mut self, before: Option<&Value>, after: Option<&Value>) {
        let (was, is) = (before.and_then(budget_slot), after.and_then(budget_slot));
        move_key(&mut self.budgets_by_slot, was.as_ref(), is.as_ref(), before, after);
    }

    /// The PodDisruptionBudgets that may select `pod`, in key order (a namespace's list order):
    /// those of its namespace whose selector's `key=value` is one of its labels or that have no
    /// such requirement. Every budget that selects it is among them; the caller still matches
    /// each selector, as the eviction's `getPodDisruptionBudgets` matches every budget of the
    /// namespace (kubernetes release-1.33 pkg/registry/core/pod/storage/eviction.go).
    pub fn budgets_for(&self, pod: &Value) -> Vec<Arc<Value>> {
        let namespace = pod.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default();
        let labels = pod.pointer("/metadata/labels").and_then(Value::as_object).into_iter().flatten();
        let slots = labels
            .filter_map(|(key, value)| Some(BudgetSlot::Label(namespace.to_owned(), key.clone(), value.as_str()?.to_owned())))
            .chain([BudgetSlot::Namespace(namespace.to_owned())]);
        let keys: BTreeSet<&String> = slots.filter_map(|slot| self.budgets_by_slot.get(&slot)).flatten().collect();
        let Some(bucket) = self.objects.get(BUDGETS) else { return Vec::new() };
        keys.into_iter().filter_map(|key| bucket.get(key).cloned()).collect()
    }

    /// The keys of the budgets whose selector's `key=value` ([`LabelSelector::an_equality`]) is
    /// one of `labels` (namespace, key, value), and of those of `namespaces` whose selector has
    /// none: every budget with a selector that may select a pod carrying one of `labels` in
    /// one of `namespaces`. In key order.
    pub fn budget_keys_for(&self, labels: &HashSet<(String, String, String)>, namespaces: &HashSet<String>) -> BTreeSet<String> {
        let by_label = labels.iter().map(|(ns, key, value)| BudgetSlot::Label(ns.clone(), key.clone(), value.clone()));
        let by_namespace = namespaces.iter().map(|ns| BudgetSlot::Namespace(ns.clone()));
        by_label.chain(by_namespace).filter_map(|slot| self.budgets_by_slot.get(&slot)).flatten().cloned().collect()
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    pub fn get(&self, t: &ResourceType, namespace: Option<&str>, name: &str) -> Result<Arc<Value>, StoreError> {
        self.objects
            .get(&t.key())
            .and_then(|b| b.get(&object_key(namespace, name)))
            .cloned()
            .ok_or_else(|| StoreError::NotFound { kind: t.plural.to_owned(), name: name.to_owned() })
    }

    pub fn list(&self, t: &ResourceType, filter: &Filter, limit: Option<usize>, continue_after: Option<&str>) -> ListPage {
        let empty = BTreeMap::new();
        let bucket = self.objects.get(&t.key()).unwrap_or(&empty);
        // A namespaced object's key is "NAMESPACE/NAME" (names hold no '/'), so the objects of
        // one namespace are one range of keys: a namespace's list no longer reads every object
        // of the kind (the workloads' controller lists pods by namespace on every tick).
        let prefix = filter.namespace.as_ref().map(|ns| format!("{ns}/"));
        // Pods of one node: the keys its index holds, in the same (key) order as a full read,
        // every other term of the filter still checked below.
        let by_node = (t.key() == PODS).then(|| filter.fields.required("spec.nodeName")).flatten();
        let range: Box<dyn Iterator<Item = (&String, &Arc<Value>)>> = match (by_node, continue_after, &prefix) {
            (Some(node), _, _) => Box::new(
                self.pods_by_node
                    .get(node)
                    .into_iter()
                    .flatten()
                    .filter(move |k| continue_after.is_none_or(|after| k.as_str() > after))
                    .filter_map(|k| bucket.get_key_value(k)),
            ),
            (None, Some(after), _) => Box::new(bucket.range::<str, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))),
            (None, None, Some(prefix)) => Box::new(
                bucket
                    .range::<str, _>((std::ops::Bound::Included(prefix.as_str()), std::ops::Bound::Unbounded))
                    .take_while(move |(k, _)| k.starts_with(prefix.as_str())),
            ),
            (None, None, None) => Box::new(bucket.iter()),
        };
        let mut matching = range.filter(|(_, o)| filter.matches(o));
        let mut items = Vec::new();
        let mut last_key = None;
        for (key, object) in matching.by_ref() {
            items.push(object.clone());
            // The key is copied once, at the end, not for every item of a full list.
            last_key = Some(key);
            if limit.is_some_and(|l| items.len() >= l) {
                break;
            }
        }
        let remaining = matching.count();
        ListPage { items, resource_version: self.rv, continue_token: if remaining > 0 { last_key.cloned() } else { None }, remaining }
    }

    /// A page of a list as the API server serves it: the continue token carries the revision of
    /// the list's first page with the last key served, and every later page is read at that
    /// revision and reports it (k8s.io/apiserver release-1.33 `pkg/storage/continue.go`
    /// EncodeContinue; `pkg/storage/etcd3/store.go` GetList reads a continued list at the
    /// token's revision), so the pages of one list are one snapshot and a watch from its
    /// resourceVersion misses no change made while it was paged. Each page read at the current
    /// revision instead made a client's relist during churn (an informer's after a 410) start
    /// its watch after changes to objects of its earlier pages: it never saw them. A token
    /// older than the history is 410 Gone, as a compacted revision is.
    pub fn list_paged(&self, t: &ResourceType, filter: &Filter, limit: Option<usize>, token: Option<&str>) -> Result<ListPage, StoreError> {
        let Some(token) = token else {
            let mut page = self.list(t, filter, limit, None);
            page.continue_token = page.continue_token.map(|key| format!("{}:{key}", page.resource_version));
            return Ok(page);
        };
        let (rv, after) = token
            .split_once(':')
            .and_then(|(rv, key)| Some((rv.parse::<u64>().ok()?, key)))
            .ok_or_else(|| StoreError::BadRequest(format!("continue key is not valid: {token:?}")))?;
        if rv < self.compacted_through || rv > self.rv {
            return Err(StoreError::Gone { requested: rv, oldest: self.compacted_through + 1 });
        }
        // The objects as of `rv`: each key changed since then as it was before its first change
        // after `rv` (absent if that change added it), every other key as it is.
        let type_key = t.key();
        let mut then: BTreeMap<String, Option<Arc<Value>>> = BTreeMap::new();
        for change in self.history.iter().filter(|c| c.rv > rv && c.type_key == type_key) {
            then.entry(key_of(&change.object)).or_insert_with(|| change.previous.clone());
        }
        let empty = BTreeMap::new();
        let bucket = self.objects.get(&type_key).unwrap_or(&empty);
        let after_key = (std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded);
        let keys: BTreeSet<&str> = bucket
            .range::<str, _>(after_key)
            .map(|(k, _)| k.as_str())
            .chain(then.range::<str, _>(after_key).map(|(k, _)| k.as_str()))
            .collect();
        let mut matching = keys
            .into_iter()
            .filter_map(|key| match then.get(key) {
                Some(was) => was.clone().map(|o| (key, o)),
                None => bucket.get(key).map(|o| (key, o.clone())),
            })
            .filter(|(_, o)| filter.matches(o));
        let mut items = Vec::new();
        let mut last_key = None;
        for (key, object) in matching.by_ref() {
            items.push(object);
            last_key = Some(key);
            if limit.is_some_and(|l| items.len() >= l) {
                break;
            }
        }
        let remaining = matching.count();
        let continue_token = last_key.filter(|_| remaining > 0).map(|key| format!("{rv}:{key}"));
        Ok(ListPage { items, resource_version: rv, continue_token, remaining })
    }

    pub fn create(&mut self, t: &ResourceType, namespace: Option<&str>, mut object: Value) -> Result<Arc<Value>, StoreError> {
        check_shape(&object)?;
        check_kind_limits(t, &object)?;
        let meta = object.as_object_mut().expect("object").entry("metadata").or_insert_with(|| json!({}));
        let mut name = meta.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
        if name.is_empty() {
            let prefix = meta.get("generateName").and_then(Value::as_str).unwrap_or_default();
            if prefix.is_empty() {
                return Err(StoreError::Invalid(format!(
                    "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                    t.kind
                )));
            }
            // Retry on the (rare) collision instead of failing the create.
            let taken = |name: &str| self.objects.get(&t.key()).is_some_and(|b| b.contains_key(&object_key(namespace, name)));
            name = format!("{prefix}{}", random_suffix());
            while taken(&name) {
                name = format!("{prefix}{}", random_suffix());
            }
        }
        let key = object_key(namespace, &name);
        if self.objects.get(&t.key()).is_some_and(|b| b.contains_key(&key)) {
            return Err(StoreError::AlreadyExists { kind: t.plural.to_owned(), name });
        }
        let rv = self.next_rv();
        object["apiVersion"] = json!(t.api_version());
        object["kind"] = json!(t.kind);
        let meta = &mut object["metadata"];
        meta["name"] = json!(name);
        if let Some(ns) = namespace {
            meta["namespace"] = json!(ns);
        }
        // A simulated controller may name the uid (so the owner references of what it creates
        // resolve); the API server's create handler removes a client's.
        if meta.get("uid").and_then(Value::as_str).is_none_or(str::is_empty) {
            meta["uid"] = json!(uuid::Uuid::new_v4().to_string());
        }
        meta["resourceVersion"] = json!(rv.to_string());
        meta["creationTimestamp"] = json!(now_rfc3339());
        meta["generation"] = json!(1);
        if t.kind == "Namespace" && object.pointer("/status/phase").is_none() {
            object["status"] = json!({"phase": "Active"});
        }
        let object = Arc::new(object);
        self.bucket(t).insert(key, object.clone());
        self.record(t, ChangeKind::Added, object.clone(), None);
        Ok(object)
    }

    /// Replaces an object. `subresource` "status" changes only status; the main resource of a
    /// kind with a status subresource keeps its status. A stale resourceVersion is a Conflict.
    pub fn update(
        &mut self,
        t: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        mut object: Value,
        subresource: Option<&str>,
    ) -> Result<Arc<Value>, StoreError> {
        let current = self.get(t, namespace, name)?;
        check_shape(&object)?;
        check_kind_limits(t, &object)?;
        if let Some(given) = object.pointer("/metadata/resourceVersion").and_then(Value::as_str)
            && !given.is_empty()
            && given != current["metadata"]["resourceVersion"].as_str().unwrap_or_default()
        {
            return Err(StoreError::Conflict { plural: t.plural.to_owned(), name: name.to_owned() });
        }
        if name_of(&object) != name && !name_of(&object).is_empty() {
            return Err(StoreError::BadRequest(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                name_of(&object)
            )));
        }
        let mut next = if subresource == Some("status") {
            // Only the status is taken from the body: moved, not copied. A body that differs from
            // the current object in nothing else (a status patch's: the current object patched)
            // is kept as the new object instead of a second copy of the current one; either way
            // the result is the current object with the body's status.
            let status = object.as_object_mut().and_then(|o| o.remove("status")).unwrap_or(Value::Null);
            let mut next = if equal_but_status(&object, &current) { object } else { (*current).clone() };
            next["status"] = status;
            next
        } else {
            if t.has_status() {
                object["status"] = current.get("status").cloned().unwrap_or(Value::Null);
                if object["status"].is_null() {
                    object.as_object_mut().expect("object").remove("status");
                }
            }
            // Identity and bookkeeping fields are the server's.
            for field in ["uid", "creationTimestamp", "namespace", "name", "generation", "deletionTimestamp"] {
                match current["metadata"].get(field) {
                    Some(v) => object["metadata"][field] = v.clone(),
                    None => {
                        if let Some(m) = object["metadata"].as_object_mut() {
                            m.remove(field);
                        }
                    }
                }
            }
            object["apiVersion"] = json!(t.api_version());
            object["kind"] = json!(t.kind);
            object
        };
        if next.get("spec") != current.get("spec") {
            let generation = current["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            next["metadata"]["generation"] = json!(generation);
        }
        if next == *current {
            // A no-op write does not move the resourceVersion, as on a real server.
            return Ok(current);
        }
        let rv = self.next_rv();
        next["metadata"]["resourceVersion"] = json!(rv.to_string());
        let next = Arc::new(next);
        self.bucket(t).insert(object_key(namespace, name), next.clone());
        self.record(t, ChangeKind::Modified, next.clone(), Some(current));
        Ok(next)
    }

    pub fn patch(
        &mut self,
        t: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        kind: PatchType,
        body: &Value,
        subresource: Option<&str>,
    ) -> Result<Arc<Value>, StoreError> {
        let current = self.get(t, namespace, name)?;
        match kind {
            PatchType::Merge | PatchType::Strategic if !body.is_object() => {
                return Err(StoreError::BadRequest("a merge patch must be a JSON object".into()));
            }
            PatchType::Json if !body.is_array() => {
                return Err(StoreError::BadRequest("a JSON patch must be a JSON array of operations".into()));
            }
            _ => {}
        }
        let mut next = (*current).clone();
        match kind {
            PatchType::Merge => patch::merge_patch(&mut next, body),
            PatchType::Strategic => patch::strategic_merge_patch(&mut next, body),
            PatchType::Json => {
                patch::json_patch(&mut next, body).map_err(|e| StoreError::Invalid(format!("the JSON patch could not be applied: {e}")))?
            }
        }
        // A patch can replace the whole object or its metadata ("op": "replace", "path": ""):
        // what it leaves must still be an object, as a real server's decoder insists.
        check_shape(&next)?;
        let wanted_rv = next.pointer("/metadata/resourceVersion").cloned();
        if wanted_rv != current.pointer("/metadata/resourceVersion").cloned() {
            // The patch named a resourceVersion: it is a precondition.
            return Err(StoreError::Conflict { plural: t.plural.to_owned(), name: name.to_owned() });
        }
        if subresource != Some("status") && t.has_status() && next.get("status") != current.get("status") {
            // Status changes through the main resource are ignored, as by a real server.
            next["status"] = current.get("status").cloned().unwrap_or(Value::Null);
        }
        self.update(t, namespace, name, next, subresource)
    }

    pub fn delete(&mut self, t: &ResourceType, namespace: Option<&str>, name: &str) -> Result<Arc<Value>, StoreError> {
        self.delete_checked(t, namespace, name, None)
    }

    /// [`Store::delete`] under a DeleteOptions' `preconditions` (`uid`, `resourceVersion`): a
    /// mismatch is a Conflict and deletes nothing (k8s.io/apiserver pkg/storage/interfaces.go
    /// `Preconditions.Check`: "Precondition failed: ResourceVersion in precondition: X,
    /// ResourceVersion in object meta: Y"; pkg/registry/generic/registry/store.go returns it as
    /// 409 Conflict through storeerr.InterpretDeleteError).
    pub fn delete_checked(
        &mut self,
        t: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        preconditions: Option<&Value>,
    ) -> Result<Arc<Value>, StoreError> {
        let current = self.get(t, namespace, name)?;
        for (field, meta) in [("uid", "/metadata/uid"), ("resourceVersion", "/metadata/resourceVersion")] {
            let Some(wanted) = preconditions.and_then(|p| p.get(field)).and_then(Value::as_str) else { continue };
            let actual = current.pointer(meta).and_then(Value::as_str).unwrap_or_default();
            if wanted != actual {
                return Err(StoreError::PreconditionFailed {
                    plural: t.plural.to_owned(),
                    name: name.to_owned(),
                    message: format!("Precondition failed: {field} in precondition: {wanted}, {field} in object meta: {actual}"),
                });
            }
        }
        if t.kind == "Namespace" {
            if current.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(current);
            }
            // A namespace goes Terminating; the namespace controller removes it later.
            let mut next = (*current).clone();
            next["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
            next["status"]["phase"] = json!("Terminating");
            let rv = self.next_rv();
            next["metadata"]["resourceVersion"] = json!(rv.to_string());
            let next = Arc::new(next);
            self.bucket(t).insert(object_key(None, name), next.clone());
            self.record(t, ChangeKind::Modified, next.clone(), Some(current));
            return Ok(next);
        }
        self.remove(t, namespace, name)
    }

    fn remove(&mut self, t: &ResourceType, namespace: Option<&str>, name: &str) -> Result<Arc<Value>, StoreError> {
        let current = self
            .bucket(t)
            .remove(&object_key(namespace, name))
            .ok_or_else(|| StoreError::NotFound { kind: t.plural.to_owned(), name: name.to_owned() })?;
        let rv = self.next_rv();
        let mut gone = (*current).clone();
        gone["metadata"]["resourceVersion"] = json!(rv.to_string());
        let gone = Arc::new(gone);
        self.record(t, ChangeKind::Deleted, gone.clone(), Some(current));
        Ok(gone)
    }

    /// The namespace controller's work: every object in the namespace, then the namespace.
    pub fn purge_namespace(&mut self, name: &str) {
        for t in super::types::TYPES.iter().filter(|t| t.namespaced) {
            let prefix = format!("{name}/");
            let keys: Vec<String> =
                self.objects.get(&t.key()).map(|b| b.keys().filter(|k| k.starts_with(&prefix)).cloned().collect()).unwrap_or_default();
            for key in keys {
                let object_name = key[prefix.len()..].to_owned();
                let _ = self.remove(t, Some(name), &object_name);
            }
        }
        if let Some(ns) = super::types::TYPES.iter().find(|t| t.kind == "Namespace") {
            let _ = self.remove(ns, None, name);
        }
    }

    /// Starts a watch: the events before "now" that the watcher must see first, and a receiver
    /// for everything after. Both are taken under one lock, so nothing falls between them.
    pub fn watch(&self, t: &ResourceType, filter: &Filter, since: Option<u64>) -> Result<WatchStart, StoreError> {
        let receiver = self.changes.subscribe();
        let initial = match since {
            None | Some(0) => self.list(t, filter, None, None).items.into_iter().map(|o| (ChangeKind::Added, o)).collect(),
            Some(rv) if rv < self.compacted_through => {
                return Err(StoreError::Gone { requested: rv, oldest: self.compacted_through + 1 });
            }
            Some(rv) => self.history.iter().filter(|c| c.rv > rv).filter_map(|c| visible(c, &t.key(), filter)).collect(),
        };
        Ok((initial, receiver))
    }
}

/// How a change looks through a filtered watch: an object moving into the selection is ADDED,
/// one moving out is DELETED, as a real API server reports them.
pub fn visible(change: &Change, type_key: &str, filter: &Filter) -> Option<(ChangeKind, Arc<Value>)> {
    if change.type_key != type_key {
        return None;
    }
    let now = filter.matches(&change.object);
    let before = change.previous.as_ref().is_some_and(|p| filter.matches(p));
    let kind = match (change.kind, before, now) {
        (ChangeKind::Deleted, true, _) => ChangeKind::Deleted,
        (ChangeKind::Deleted, false, _) => return None,
        (ChangeKind::Added, _, true) => ChangeKind::Added,
        (ChangeKind::Modified, true, true) => ChangeKind::Modified,
        (ChangeKind::Modified, false, true) => ChangeKind::Added,
        (ChangeKind::Modified, true, false) => ChangeKind::Deleted,
        _ => return None,
    };
    Some((kind, change.object.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::find;

    fn nodes() -> &'static ResourceType {
        find("", "v1", "nodes").unwrap()
    }

    fn node(name: &str, role: &str) -> Value {
        json!({"metadata": {"name": name, "labels": {format!("node-role.kubernetes.io/{role}"): ""}}, "spec": {}, "status": {"nodeInfo": {"bootID": "a"}}})
    }

    #[test]
    fn a_namespace_s_list_is_exactly_its_objects_beside_namespaces_sharing_a_prefix() {
        let mut store = Store::new(100);
        let pods = find("", "v1", "pods").unwrap();
        for (ns, name) in [("a", "x"), ("a", "y"), ("a-b", "x"), ("ab", "x"), ("b", "x"), ("a.c", "z")] {
            store.create(pods, Some(ns), json!({"metadata": {"name": name, "namespace": ns}, "spec": {}})).unwrap();
        }
        let names = |ns: &str| -> Vec<String> {
            let filter = Filter { namespace: Some(ns.to_owned()), ..Default::default() };
            store
                .list(pods, &filter, None, None)
                .items
                .iter()
                .map(|p| format!("{}/{}", p["metadata"]["namespace"].as_str().unwrap(), name_of(p)))
                .collect()
        };
        assert_eq!(names("a"), ["a/x", "a/y"]);
        assert_eq!(names("ab"), ["ab/x"]);
        assert_eq!(names("a-b"), ["a-b/x"]);
        assert!(names("c").is_empty());
        // A namespace's filter over a cluster-scoped kind matches nothing, as before.
        store.create(nodes(), None, node("a", "master")).unwrap();
        let filter = Filter { namespace: Some("a".into()), ..Default::default() };
        assert!(store.list(nodes(), &filter, None, None).items.is_empty());
    }

    #[test]
    fn the_budgets_that_may_select_a_pod_hold_every_budget_that_does_through_changes_deletes_and_restores() {
        let mut store = Store::new(1000);
        let (pods, pdbs) = (find("", "v1", "pods").unwrap(), find("policy", "v1", "poddisruptionbudgets").unwrap());
        let budget = |name: &str, ns: &str, selector: Value| {
            let mut object = json!({"metadata": {"name": name, "namespace": ns}, "spec": {"minAvailable": 1}});
            if !selector.is_null() {
                object["spec"]["selector"] = selector;
            }
            object
        };
        let selectors = [
            json!({"matchLabels": {"app": "a"}}),
            json!({"matchLabels": {"app": "b", "tier": "web"}}),
            json!({"matchLabels": {"tier": "web"}}),
            json!({"matchLabels": {"app": 3}}),
            json!({}),
            json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["a", "b"]}]}),
            json!({"matchExpressions": [{"key": "app", "operator": "Exists"}], "matchLabels": {"tier": "db"}}),
            Value::Null,
        ];
        for ns in ["x", "x-y", "z"] {
            for (i, selector) in selectors.iter().enumerate() {
                store.create(pdbs, Some(ns), budget(&format!("b{i}"), ns, selector.clone())).unwrap();
            }
        }
        let mut i = 0;
        for ns in ["x", "x-y", "z"] {
            for labels in
                [json!({}), json!({"app": "a"}), json!({"app": "b", "tier": "web"}), json!({"tier": "db", "app": "c"}), json!({"app": ""})]
            {
                store
                    .create(pods, Some(ns), json!({"metadata": {"name": format!("p{i}"), "namespace": ns, "labels": labels}, "spec": {}}))
                    .unwrap();
                i += 1;
            }
        }
        // A read of every budget of the pod's namespace, each selector matched (the eviction's
        // reading before the index).
        let check = |store: &Store| {
            let mut matched = 0;
            for pod in store.list(pods, &Filter::default(), None, None).items {
                let ns = pod["metadata"]["namespace"].as_str().unwrap();
                let filter = Filter { namespace: Some(ns.to_owned()), ..Default::default() };
                let selects = |b: &Arc<Value>| LabelSelector::from_optional(&b["spec"]["selector"]).is_some_and(|s| s.matches_object(&pod));
                let every: Vec<Arc<Value>> = store.list(pdbs, &filter, None, None).items.into_iter().filter(selects).collect();
                let indexed: Vec<Arc<Value>> = store.budgets_for(&pod).into_iter().filter(selects).collect();
                assert_eq!(indexed, every, "{pod}");
                matched += every.len();
            }
            matched
        };
        assert!(check(&store) >= 16, "the cases select pods");
        // A selector changed (its slot with it), one removed, one added, budgets deleted.
        for (name, selector) in
            [("b0", json!({"matchLabels": {"tier": "web"}})), ("b2", json!({})), ("b7", json!({"matchLabels": {"app": "c"}}))]
        {
            let patch = json!({"spec": {"selector": selector}});
            store.patch(pdbs, Some("x"), name, PatchType::Merge, &patch, None).unwrap();
        }
        store.patch(pdbs, Some("z"), "b4", PatchType::Merge, &json!({"spec": {"selector": null}}), None).unwrap();
        store.delete(pdbs, Some("x-y"), "b1").unwrap();
        store.delete(pdbs, Some("x-y"), "b5").unwrap();
        check(&store);
        let mut restored = Store::new(1000);
        restored.restore(&store.snapshot()).unwrap();
        assert_eq!(restored.budgets_by_slot, store.budgets_by_slot);
        check(&restored);
        store.purge_namespace("x");
        assert!(
            store.budgets_by_slot.keys().all(|slot| !matches!(slot, BudgetSlot::Label(ns, ..) | BudgetSlot::Namespace(ns) if ns == "x"))
        );
        check(&store);
    }

    #[test]
    fn a_continued_list_is_read_at_its_first_page_s_revision_and_a_watch_from_it_sees_every_change_since() {
        let mut store = Store::new(1000);
        for name in ["a", "b", "c", "d", "e"] {
            store.create(nodes(), None, node(name, "worker")).unwrap();
        }
        let ready = |s: &mut Store, name: &str, boot: &str| {
            let patch = json!({"status": {"nodeInfo": {"bootID": boot}}});
            s.patch(nodes(), None, name, PatchType::Merge, &patch, Some("status")).unwrap();
        };
        let first = store.list_paged(nodes(), &Filter::default(), Some(2), None).unwrap();
        let names = |page: &ListPage| page.items.iter().map(|n| name_of(n).to_owned()).collect::<Vec<_>>();
        assert_eq!(names(&first), ["a", "b"]);
        let listed_at = first.resource_version;
        // While the list is paged: a node of the first page changes, one of the rest changes,
        // one is deleted, one is added.
        ready(&mut store, "a", "a2");
        ready(&mut store, "d", "d2");
        store.delete(nodes(), None, "c").unwrap();
        store.create(nodes(), None, node("bb", "worker")).unwrap();
        let second = store.list_paged(nodes(), &Filter::default(), Some(2), first.continue_token.as_deref()).unwrap();
        let third = store.list_paged(nodes(), &Filter::default(), Some(2), second.continue_token.as_deref()).unwrap();
        // The list as it was at its first page: c still there, bb not yet, d with its old boot ID.
        assert_eq!((names(&second), names(&third)), (vec!["c".to_owned(), "d".to_owned()], vec!["e".to_owned()]));
        assert_eq!(second.items[1]["status"]["nodeInfo"]["bootID"], "a");
        assert_eq!((second.resource_version, third.resource_version, third.continue_token.as_ref()), (listed_at, listed_at, None));
        // A watch from the list's revision delivers every change made while it was paged.
        let (events, _) = store.watch(nodes(), &Filter::default(), Some(listed_at)).unwrap();
        let seen: Vec<(ChangeKind, String)> = events.iter().map(|(kind, n)| (*kind, name_of(n).to_owned())).collect();
        assert_eq!(
            seen,
            [
                (ChangeKind::Modified, "a".into()),
                (ChangeKind::Modified, "d".into()),
                (ChangeKind::Deleted, "c".into()),
                (ChangeKind::Added, "bb".into())
            ]
        );
        // A page of a list started now is read now; a token older than the history is 410 Gone.
        let now = store.list_paged(nodes(), &Filter::default(), Some(2), None).unwrap();
        assert_eq!((names(&now), now.resource_version), (vec!["a".to_owned(), "b".to_owned()], store.resource_version()));
        let mut small = Store::new(2);
        for name in ["a", "b", "c"] {
            small.create(nodes(), None, node(name, "worker")).unwrap();
        }
        let page = small.list_paged(nodes(), &Filter::default(), Some(1), None).unwrap();
        for boot in ["x", "y", "z"] {
            ready(&mut small, "c", boot);
        }
        assert!(matches!(
            small.list_paged(nodes(), &Filter::default(), Some(1), page.continue_token.as_deref()),
            Err(StoreError::Gone { .. })
        ));
        assert!(matches!(store.list_paged(nodes(), &Filter::default(), None, Some("b")), Err(StoreError::BadRequest(_))));
    }

    #[test]
    fn a_list_of_one_node_s_pods_is_what_reading_every_pod_gives_through_moves_deletes_and_restores() {
        let mut store = Store::new(100);
        let pods = find("", "v1", "pods").unwrap();
        for (ns, name, node, app) in
            [("a", "p1", "n1", "x"), ("a", "p2", "n2", "y"), ("b", "p1", "n1", "y"), ("b", "p3", "", "x"), ("a", "p4", "n1", "x")]
        {
            let spec = if node.is_empty() { json!({}) } else { json!({"nodeName": node}) };
            store
                .create(pods, Some(ns), json!({"metadata": {"name": name, "namespace": ns, "labels": {"app": app}}, "spec": spec}))
                .unwrap();
        }
        let keys = |items: &[Arc<Value>]| -> Vec<String> { items.iter().map(|p| key_of(p)).collect() };
        // Every filter a client may send, listed through the index and page by page, against a
        // read of every pod filtered one by one.
        let check = |store: &Store| {
            // "": `spec.nodeName=`, the pods no node runs, which the index does not hold.
            for node in ["n1", "n2", "n3", ""] {
                for namespace in [None, Some("a"), Some("b")] {
                    for labels in ["", "app=x"] {
                        let filter = Filter {
                            namespace: namespace.map(str::to_owned),
                            labels: LabelSelector::parse(labels).unwrap(),
                            fields: FieldSelector::parse(&format!("spec.nodeName={node}")).unwrap(),
                        };
                        let every = store.list(pods, &Filter::default(), None, None).items;
                        let expected: Vec<String> = every.iter().filter(|p| filter.matches(p)).map(|p| key_of(p)).collect();
                        assert_eq!(keys(&store.list(pods, &filter, None, None).items), expected, "{node} {namespace:?} {labels}");
                        let (mut paged, mut after) = (Vec::new(), None::<String>);
                        loop {
                            let page = store.list(pods, &filter, Some(1), after.as_deref());
                            paged.extend(keys(&page.items));
                            match page.continue_token {
                                Some(token) => after = Some(token),
                                None => break,
                            }
                        }
                        assert_eq!(paged, expected, "paged: {node} {namespace:?} {labels}");
                    }
                }
            }
        };
        check(&store);
        // Bound to another node, unbound, deleted, then a restart from the saved store.
        store.patch(pods, Some("a"), "p1", PatchType::Merge, &json!({"spec": {"nodeName": "n3"}}), None).unwrap();
        store.patch(pods, Some("b"), "p3", PatchType::Merge, &json!({"spec": {"nodeName": "n2"}}), None).unwrap();
        store.patch(pods, Some("a"), "p4", PatchType::Merge, &json!({"spec": {"nodeName": null}}), None).unwrap();
        store.delete(pods, Some("b"), "p1").unwrap();
        check(&store);
        assert_eq!(
            keys(
                &store
                    .list(pods, &Filter { fields: FieldSelector::parse("spec.nodeName=n3").unwrap(), ..Default::default() }, None, None)
                    .items
            ),
            ["a/p1"]
        );
        let mut restored = Store::new(100);
        restored.restore(&store.snapshot()).unwrap();
        check(&restored);
        assert_eq!(restored.pods_by_node, store.pods_by_node);
    }

    #[test]
    fn a_delete_whose_resource_version_precondition_fails_is_a_conflict_and_deletes_nothing() {
        let mut store = Store::new(100);
        let a = store.create(nodes(), None, node("a", "master")).unwrap();
        let rv = a["metadata"]["resourceVersion"].as_str().unwrap().to_owned();
        let stale = json!({"resourceVersion": "1"});
        let err = store.delete_checked(nodes(), None, "a", Some(&stale)).unwrap_err();
        assert_eq!(err.code_and_reason(), (409, "Conflict"));
        assert!(err.to_string().contains("Precondition failed: resourceVersion in precondition: 1"), "{err}");
        assert!(store.get(nodes(), None, "a").is_ok(), "nothing deleted");
        store.delete_checked(nodes(), None, "a", Some(&json!({ "resourceVersion": rv }))).unwrap();
        assert!(store.get(nodes(), None, "a").is_err());
    }

    #[test]
    fn a_config_map_holds_at_most_1_mib_and_a_stale_update_of_one_conflicts() {
        let mut store = Store::new(100);
        let cm = super::super::types::find("", "v1", "configmaps").unwrap();
        let small = json!({"metadata": {"name": "j"}, "data": {"k": "v"}});
        let created = store.create(cm, Some("ns"), small).unwrap();
        let mut big = (*created).clone();
        big["data"]["k"] = json!("x".repeat(1024 * 1024));
        let err = store.update(cm, Some("ns"), "j", big, None).unwrap_err();
        assert_eq!(err.code_and_reason(), (422, "Invalid"));
        assert!(err.to_string().contains("may not be more than 1048576 bytes"), "{err}");
        let mut edit = (*created).clone();
        edit["data"]["k"] = json!("w");
        store.update(cm, Some("ns"), "j", edit.clone(), None).unwrap();
        // The same version again: the object has moved on.
        let err = store.update(cm, Some("ns"), "j", edit, None).unwrap_err();
        assert_eq!(err.code_and_reason(), (409, "Conflict"));
        assert!(err.to_string().contains("Operation cannot be fulfilled on configmaps \"j\": the object has been modified"), "{err}");
    }

    #[test]
    fn a_restored_store_keeps_objects_and_versions_and_forgets_its_history() {
        let mut store = Store::new(100);
        store.create(nodes(), None, node("a", "master")).unwrap();
        let b = store.create(nodes(), None, node("b", "worker")).unwrap();
        let snapshot = store.snapshot();
        let mut restarted = Store::new(100);
        restarted.restore(&serde_json::from_str(&snapshot.to_string()).unwrap()).unwrap();
        assert_eq!(restarted.resource_version(), store.resource_version());
        assert_eq!(*restarted.get(nodes(), None, "b").unwrap(), *b);
        // A stale write still conflicts; a watch from before the restart is Gone.
        let mut stale = (*b).clone();
        stale["metadata"]["resourceVersion"] = json!("1");
        assert_eq!(restarted.update(nodes(), None, "b", stale, None).unwrap_err().code_and_reason(), (409, "Conflict"));
        let filter = Filter::default();
        assert!(matches!(restarted.watch(nodes(), &filter, Some(1)), Err(StoreError::Gone { .. })));
        assert!(restarted.watch(nodes(), &filter, Some(restarted.resource_version())).is_ok());
    }

    #[test]
    fn versions_increase_and_stale_updates_conflict() {
        let mut store = Store::new(100);
        let a = store.create(nodes(), None, node("a", "master")).unwrap();
        let rv1 = a["metadata"]["resourceVersion"].as_str().unwrap().to_owned();
        assert!(store.create(nodes(), None, node("a", "master")).unwrap_err().code_and_reason() == (409, "AlreadyExists"));
        let mut edit = (*a).clone();
        edit["spec"]["unschedulable"] = json!(true);
        let b = store.update(nodes(), None, "a", edit.clone(), None).unwrap();
        let rv2 = b["metadata"]["resourceVersion"].as_str().unwrap();
        assert!(rv2.parse::<u64>().unwrap() > rv1.parse::<u64>().unwrap());
        assert_eq!(b["metadata"]["generation"], 2);
        let err = store.update(nodes(), None, "a", edit, None).unwrap_err();
        assert_eq!(err.code_and_reason(), (409, "Conflict"));
        assert_eq!(err.status()["reason"], "Conflict");
        assert_eq!(store.get(nodes(), None, "zz").unwrap_err().status()["code"], 404);
    }

    #[test]
    fn status_is_only_written_through_the_status_subresource() {
        let mut store = Store::new(100);
        store.create(nodes(), None, node("a", "worker")).unwrap();
        let patched = store.patch(nodes(), None, "a", PatchType::Merge, &json!({"status": {"nodeInfo": {"bootID": "b"}}}), None).unwrap();
        assert_eq!(patched["status"]["nodeInfo"]["bootID"], "a");
        let patched =
            store.patch(nodes(), None, "a", PatchType::Merge, &json!({"status": {"nodeInfo": {"bootID": "b"}}}), Some("status")).unwrap();
        assert_eq!(patched["status"]["nodeInfo"]["bootID"], "b");
        assert_eq!(patched["metadata"]["generation"], 1, "status changes do not bump generation");
    }

    /// A status write takes the body's status alone, whether the rest of the body is the current
    /// object (a status patch's, kept as the new object) or not (the current rest is kept).
    #[test]
    fn a_status_write_keeps_everything_but_the_status_as_it_was() {
        let mut store = Store::new(100);
        store.create(nodes(), None, node("a", "worker")).unwrap();
        let patch = json!({"metadata": {"labels": {"x": "y"}}, "spec": {"unschedulable": true}, "status": {"nodeInfo": {"bootID": "b"}}});
        let patched = store.patch(nodes(), None, "a", PatchType::Merge, &patch, Some("status")).unwrap();
        assert_eq!(patched["status"]["nodeInfo"]["bootID"], "b");
        assert_eq!(patched["metadata"]["labels"], json!({"node-role.kubernetes.io/worker": ""}));
        assert_eq!(patched["spec"], json!({}));
        let mut body = (*patched).clone();
        body["metadata"]["labels"]["x"] = json!("y");
        body["status"] = json!({"nodeInfo": {"bootID": "c"}});
        let updated = store.update(nodes(), None, "a", body, Some("status")).unwrap();
        assert_eq!(updated["status"], json!({"nodeInfo": {"bootID": "c"}}));
        assert_eq!(updated["metadata"]["labels"], json!({"node-role.kubernetes.io/worker": ""}));
        let bare = store.update(nodes(), None, "a", json!({"status": {"nodeInfo": {"bootID": "d"}}}), Some("status")).unwrap();
        assert_eq!((bare["status"]["nodeInfo"]["bootID"].as_str(), name_of(&bare)), (Some("d"), "a"));
        assert_eq!(bare["metadata"]["uid"], updated["metadata"]["uid"]);
    }

    #[test]
    fn lists_filter_and_paginate() {
        let mut store = Store::new(100);
        for (n, role) in [("m1", "master"), ("w1", "worker"), ("w2", "worker"), ("w3", "worker")] {
            store.create(nodes(), None, node(n, role)).unwrap();
        }
        let workers = Filter { labels: LabelSelector::parse("node-role.kubernetes.io/worker").unwrap(), ..Default::default() };
        let page = store.list(nodes(), &workers, Some(2), None);
        assert_eq!(page.items.iter().map(|o| name_of(o)).collect::<Vec<_>>(), ["w1", "w2"]);
        assert_eq!((page.remaining, page.continue_token.as_deref()), (1, Some("w2")));
        let rest = store.list(nodes(), &workers, Some(2), page.continue_token.as_deref());
        assert_eq!(rest.items.len(), 1);
        assert!(rest.continue_token.is_none());
    }

    #[test]
    fn watches_resume_from_history_and_expire_when_compacted() {
        let mut store = Store::new(3);
        let a = store.create(nodes(), None, node("a", "worker")).unwrap();
        let from: u64 = a["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
        store.patch(nodes(), None, "a", PatchType::Merge, &json!({"metadata": {"labels": {"x": "1"}}}), None).unwrap();
        store.create(nodes(), None, node("b", "worker")).unwrap();
        let (events, _rx) = store.watch(nodes(), &Filter::default(), Some(from)).unwrap();
        let seen: Vec<_> = events.iter().map(|(k, o)| (k.as_str(), name_of(o).to_owned())).collect();
        assert_eq!(seen, [("MODIFIED", "a".to_owned()), ("ADDED", "b".to_owned())]);
        for i in 0..5 {
            store.patch(nodes(), None, "b", PatchType::Merge, &json!({"metadata": {"labels": {"i": i.to_string()}}}), None).unwrap();
        }
        let err = store.watch(nodes(), &Filter::default(), Some(from)).unwrap_err();
        assert_eq!(err.code_and_reason(), (410, "Expired"));
    }

    #[test]
    fn filtered_watches_see_objects_enter_and_leave() {
        let mut store = Store::new(100);
        store.create(nodes(), None, node("a", "worker")).unwrap();
        let labelled = Filter { labels: LabelSelector::parse("pool=x").unwrap(), ..Default::default() };
        let (initial, mut rx) = store.watch(nodes(), &labelled, None).unwrap();
        assert!(initial.is_empty());
        store.patch(nodes(), None, "a", PatchType::Merge, &json!({"metadata": {"labels": {"pool": "x"}}}), None).unwrap();
        store.patch(nodes(), None, "a", PatchType::Merge, &json!({"metadata": {"labels": {"pool": null}}}), None).unwrap();
        let key = nodes().key();
        let first = rx.try_recv().unwrap();
        let second = rx.try_recv().unwrap();
        assert_eq!(visible(&first, &key, &labelled).unwrap().0, ChangeKind::Added);
        assert_eq!(visible(&second, &key, &labelled).unwrap().0, ChangeKind::Deleted);
    }

    #[test]
    fn namespaces_terminate_then_vanish_with_their_objects() {
        let mut store = Store::new(100);
        let ns = find("", "v1", "namespaces").unwrap();
        let pods = find("", "v1", "pods").unwrap();
        store.create(ns, None, json!({"metadata": {"name": "openshift-sdn"}})).unwrap();
        store.create(pods, Some("openshift-sdn"), json!({"metadata": {"name": "sdn-1"}})).unwrap();
        let terminating = store.delete(ns, None, "openshift-sdn").unwrap();
        assert_eq!(terminating["status"]["phase"], "Terminating");
        store.purge_namespace("openshift-sdn");
        assert!(store.get(ns, None, "openshift-sdn").is_err());
        assert!(store.get(pods, Some("openshift-sdn"), "sdn-1").is_err());
    }
}
