//! The journal in the cluster (`--journal-in-cluster`, and always in a pod): a run's records in
//! ConfigMaps of the lease's namespace, so that a run can be resumed from any machine that
//! reaches the cluster, and no second writer can add to it.
//!
//! Layout: chunks `fleetboot-journal-RUN-0`, `-1`, ... (label `fleetboot.io/journal-run`), each
//! holding JSON lines under `records.jsonl`, at most [`CHUNK_LIMIT`] bytes (a ConfigMap holds at
//! most 1 MiB). Every line is `{"token":N,"holder":"...","record":{...}}`: the record as the file
//! journal holds it, with the fencing token and the lease holder of the writer that wrote it.
//!
//! Writes are conditional, so two writers can never both succeed:
//! - an append is an update of the last chunk carrying the resourceVersion this writer last
//!   wrote or read (409 Conflict otherwise);
//! - a new chunk is created (never overwritten: 409 AlreadyExists), after the full one was
//!   sealed by a conditional update (`fleetboot.io/journal-sealed`);
//! - a writer takes a journal over by raising the last chunk's token annotation
//!   (`fleetboot.io/journal-token`, one more than any token seen) with a conditional update.
//!   From then on every write of an older writer conflicts; it reads the chunk again, finds a
//!   newer token and stops, naming the writer that holds the journal now.
//!
//! The records are folded by `fleetboot_core::journal::fold`, as the file's are. The async side
//! (create, load, take over) runs on the caller's runtime; appends are synchronous (the runner
//! appends under a lock, as it fsyncs a file) and go to a thread of their own with its own
//! client, so they need no particular runtime.
//!
//! A request of the writer that goes unanswered fails after [`REQUEST_TIMEOUT`]; a transient
//! failure (connect error, reset, timeout, 5xx, 429) is tried again with growing pauses until
//! [`RETRY_DEADLINE`], the chunk read again before each try (a write whose answer was lost has
//! landed when the chunk ends with it). An append fails only when the journal is fenced, the
//! answer is final (4xx) or the deadline is past.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fleetboot_core::journal::{JournalError, Record, RunState, fold};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::adapters::journal::JournalBackend;

/// The most bytes of records one chunk holds, far under the 1 MiB object limit: an append is an
/// update, which sends the whole chunk and gets it back, so the chunk's size is what each record
/// costs the API server (on average half of it each way). 8 KiB: about 25 records, so a
/// rebooted node's 8 records cost about 64 KiB of API traffic (64 KiB chunks cost 0.5 MB), for
/// one more seal and create every 25 records and about 3,000 chunks for 10,000 nodes. A
/// record longer than this goes alone into a fresh chunk (up to the 1 MiB a ConfigMap holds).
pub const CHUNK_LIMIT: usize = 8 * 1024;
const DATA_KEY: &str = "records.jsonl";
/// The longest record line: what one ConfigMap's data holds (1 MiB, the key counted), the
/// line alone in a fresh chunk.
const RECORD_LIMIT: usize = 1024 * 1024 - DATA_KEY.len();
const TOKEN: &str = "fleetboot.io/journal-token";
const HOLDER: &str = "fleetboot.io/journal-holder";
const SEALED: &str = "fleetboot.io/journal-sealed";
const RUN_LABEL: &str = "fleetboot.io/journal-run";
/// How a cluster journal is named where a path would be (events, the summary's resume hint):
/// `cluster:NAMESPACE/RUN-ID`, which `--resume` takes back.
pub const LOCATION_PREFIX: &str = "cluster:";

/// One line of a chunk: a record of a reboot run's journal ([`Record`]) or of a migration's
/// (`MigrationRecord`), with the writer's fencing token and holder.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line<R> {
    token: u64,
    holder: String,
    record: R,
}

/// What a chunked journal in the cluster holds: any record that goes to and from one JSON line.
pub trait JournalLine: Serialize + DeserializeOwned + Clone + Send + std::fmt::Debug + 'static {}

impl<R: Serialize + DeserializeOwned + Clone + Send + std::fmt::Debug + 'static> JournalLine for R {}

/// Where a run's journal lives in the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalPlace {
    pub namespace: String,
    pub run_id: String,
}

impl JournalPlace {
    /// Checks that a run ID can name ConfigMaps (lowercase letters, digits and `-` once
    /// lowercased: fleetboot's run IDs are), naming where it came from when not.
    pub fn new(namespace: &str, run_id: &str) -> Result<JournalPlace, JournalError> {
        let ok = !run_id.is_empty()
            && run_id.len() <= 200
            && run_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !run_id.starts_with('-')
            && !run_id.ends_with('-');
        if !ok {
            return Err(JournalError::Unreadable {
                path: PathBuf::from(format!("{LOCATION_PREFIX}{namespace}/{run_id}")),
                reason: "not a fleetboot run ID (letters, digits and '-', as `fleetboot reboot` prints them)".into(),
            });
        }
        Ok(JournalPlace { namespace: namespace.to_owned(), run_id: run_id.to_owned() })
    }

    /// `cluster:NAMESPACE/RUN-ID` (or `cluster:RUN-ID`, in `default_namespace`), as `--resume`
    /// takes it; `None` when `given` is not such a name.
    pub fn parse(given: &str, default_namespace: &str) -> Option<Result<JournalPlace, JournalError>> {
        let rest = given.strip_prefix(LOCATION_PREFIX)?;
        Some(match rest.split_once('/') {
            Some((namespace, run_id)) => JournalPlace::new(namespace, run_id),
            None => JournalPlace::new(default_namespace, rest),
        })
    }

    /// `cluster:NAMESPACE/RUN-ID`: what events and the summary show, and `--resume` takes.
    pub fn location(&self) -> PathBuf {
        PathBuf::from(format!("{LOCATION_PREFIX}{}/{}", self.namespace, self.run_id))
    }

    pub fn chunk_name(&self, index: usize) -> String {
        format!("fleetboot-journal-{}-{index}", self.run_id.to_ascii_lowercase())
    }

    fn label(&self) -> String {
        // A label value holds at most 63 characters; the name says the rest.
        self.run_id.to_ascii_lowercase().chars().take(63).collect::<String>().trim_end_matches('-').to_owned()
    }

    fn error(&self, index: usize, reason: impl std::fmt::Display) -> JournalError {
        JournalError::Write { path: self.location(), reason: format!("configmaps/{}/{}: {reason}", self.namespace, self.chunk_name(index)) }
    }
}

fn annotation(map: &ConfigMap, key: &str) -> Option<String> {
    map.metadata.annotations.as_ref().and_then(|a| a.get(key)).cloned()
}

fn token_of(map: &ConfigMap) -> u64 {
    annotation(map, TOKEN).and_then(|t| t.parse().ok()).unwrap_or(0)
}

fn data_of(map: &ConfigMap) -> &str {
    map.data.as_ref().and_then(|d| d.get(DATA_KEY)).map_or("", String::as_str)
}

fn new_chunk(place: &JournalPlace, index: usize, token: u64, holder: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(place.chunk_name(index)),
            namespace: Some(place.namespace.clone()),
            labels: Some(BTreeMap::from([(RUN_LABEL.to_owned(), place.label())])),
            annotations: Some(BTreeMap::from([(TOKEN.to_owned(), token.to_string()), (HOLDER.to_owned(), holder.to_owned())])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(DATA_KEY.to_owned(), String::new())])),
        ..ConfigMap::default()
    }
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == code)
}

/// Whether another try may succeed: the API server busy or between leaders (5xx, 429), or the
/// request never answered (connect error, reset, timeout). A 4xx other than 429 is final.
fn is_transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// How long one request of the writer may go unanswered.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the writer tries again after transient errors before the append fails.
pub const RETRY_DEADLINE: Duration = Duration::from_secs(60);
const RETRY_FIRST_PAUSE: Duration = Duration::from_millis(200);
const RETRY_MAX_PAUSE: Duration = Duration::from_secs(5);

/// How one try of a write ended, when it did not succeed.
enum Attempt {
    Transient(kube::Error),
    Final(JournalError),
}

/// How many chunks one page of the LIST that reads a journal holds: 8 KiB chunks, so a page
/// is at most about 2.5 MB (a 10,000-node run's ~3,000 chunks in 6 pages).
const LIST_PAGE: u32 = 500;

/// Every chunk of the run, in order (none: no such journal): one LIST by the run's label, in
/// pages (`limit`/`continue`: one consistent snapshot of the journal), not one GET per chunk
/// (~3,000 at 10,000 nodes). Each chunk keeps its resourceVersion, so the writes that follow
/// stay conditional on what was read.
async fn read_chunks(api: &Api<ConfigMap>, place: &JournalPlace) -> Result<Vec<ConfigMap>, JournalError> {
    let unreadable = |e: kube::Error| JournalError::Unreadable {
        path: place.location(),
        reason: format!("configmaps -l {RUN_LABEL}={} in {}: {e}", place.label(), place.namespace),
    };
    // A continue token that expired (410 Gone: the snapshot is older than the server keeps)
    // starts the LIST again, a few times at most.
    'listing: for _ in 0..3 {
        let mut listed = Vec::new();
        let mut params = kube::api::ListParams::default().labels(&format!("{RUN_LABEL}={}", place.label())).limit(LIST_PAGE);
        loop {
            let page = match api.list(&params).await {
                Ok(page) => page,
                Err(e) if is_status(&e, 410) => continue 'listing,
                Err(e) => return Err(unreadable(e)),
            };
            listed.extend(page.items);
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(in_order(place, listed)),
            }
        }
    }
    Err(JournalError::Unreadable { path: place.location(), reason: "the journal's listing kept expiring (410 Gone); try again".into() })
}

/// The run's chunks among `listed` (another run whose label is cut to the same 63 characters
/// is left out by name), in order from chunk 0 up to the first one missing, as reading them
/// one by one would stop there. Pure.
fn in_order(place: &JournalPlace, listed: Vec<ConfigMap>) -> Vec<ConfigMap> {
    let mut by_index: BTreeMap<usize, ConfigMap> = BTreeMap::new();
    let prefix = place.chunk_name(0);
    let prefix = &prefix[..prefix.len() - 1];
    for chunk in listed {
        let index = chunk.metadata.name.as_deref().and_then(|n| n.strip_prefix(prefix)).and_then(|i| i.parse::<usize>().ok());
        // `-07` parses as 7 but names no chunk: the name must be the index's own.
        if let Some(index) = index.filter(|i| chunk.metadata.name.as_deref() == Some(place.chunk_name(*i).as_str())) {
            by_index.insert(index, chunk);
        }
    }
    by_index.into_iter().enumerate().take_while(|(expected, (index, _))| expected == index).map(|(_, (_, chunk))| chunk).collect()
}

/// Whether the run has a journal in the cluster (its first chunk exists).
pub async fn exists(client: &kube::Client, place: &JournalPlace) -> Result<bool, JournalError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &place.namespace);
    api.get_opt(&place.chunk_name(0)).await.map(|found| found.is_some()).map_err(|e| JournalError::Unreadable {
        path: place.location(),
        reason: format!("configmaps/{}/{}: {e}", place.namespace, place.chunk_name(0)),
    })
}

/// A journal read from the cluster.
#[derive(Debug)]
pub struct Loaded {
    pub records: Vec<Record>,
    pub state: RunState,
    /// The holder of the newest token, and that token.
    pub holder: String,
    pub token: u64,
}

fn parse_chunks<R: JournalLine>(place: &JournalPlace, chunks: &[ConfigMap]) -> Result<(Vec<R>, String, u64), JournalError> {
    let mut records = Vec::new();
    let (mut holder, mut token) = (String::new(), 0);
    for (index, chunk) in chunks.iter().enumerate() {
        if token_of(chunk) >= token {
            token = token_of(chunk);
            holder = annotation(chunk, HOLDER).unwrap_or_default();
        }
        for (n, text) in data_of(chunk).lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let line: Line<R> = serde_json::from_str(text).map_err(|e| JournalError::Unreadable {
                path: place.location(),
                reason: format!("configmaps/{}/{} line {}: {e}", place.namespace, place.chunk_name(index), n + 1),
            })?;
            records.push(line.record);
        }
    }
    Ok((records, holder, token))
}

/// Reads the run's journal from the cluster and folds it (`fleetboot_core::journal::fold`).
pub async fn load(client: &kube::Client, place: &JournalPlace) -> Result<Loaded, JournalError> {
    let (records, holder, token) = load_lines(client, place).await?;
    let state = fold(&records, &place.location())?;
    Ok(Loaded { records, state, holder, token })
}

/// Reads a journal's records from the cluster, any kind of record, unfolded; with the holder of
/// the newest token, and that token. No journal at `place` is an error naming it.
pub async fn load_lines<R: JournalLine>(client: &kube::Client, place: &JournalPlace) -> Result<(Vec<R>, String, u64), JournalError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &place.namespace);
    let chunks = read_chunks(&api, place).await?;
    if chunks.is_empty() {
        return Err(JournalError::Unreadable {
            path: place.location(),
            reason: format!(
                "no journal of run {} in the namespace {} (no ConfigMap {}): check the run ID and --lease-namespace",
                place.run_id,
                place.namespace,
                place.chunk_name(0)
            ),
        });
    }
    parse_chunks(place, &chunks)
}

/// The writer's state: the last chunk as this writer last wrote or read it.
#[derive(Debug)]
struct Head {
    place: JournalPlace,
    holder: String,
    token: u64,
    index: usize,
    last: ConfigMap,
}

/// Creates a new run's journal (chunk 0, token 1), for any kind of record (a migration's
/// journal too). An existing one is never overwritten.
pub async fn create<R: JournalLine>(
    client: &kube::Client,
    config: &kube::Config,
    place: &JournalPlace,
    holder: &str,
) -> Result<ClusterJournal<R>, JournalError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &place.namespace);
    let last = match api.create(&PostParams::default(), &new_chunk(place, 0, 1, holder)).await {
        Ok(created) => created,
        Err(e) if is_status(&e, 409) => return Err(place.error(0, "a journal of this run already exists; it is never overwritten")),
        Err(e) => return Err(place.error(0, e)),
    };
    ClusterJournal::start(config, Head { place: place.clone(), holder: holder.to_owned(), token: 1, index: 0, last })
}

/// Takes a run's journal over for a resume: raises the fencing token on its last chunk with a
/// conditional write, so that any older writer's next write fails; returns the writer and the
/// records as they stand once no older writer can add to them. For any kind of record (a
/// migration's journal too).
pub async fn take_over<R: JournalLine>(
    client: &kube::Client,
    config: &kube::Config,
    place: &JournalPlace,
    holder: &str,
) -> Result<(ClusterJournal<R>, Vec<R>), JournalError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &place.namespace);
    // A conflict means another writer wrote meanwhile: read again (a few times at most).
    for _ in 0..5 {
        let chunks = read_chunks(&api, place).await?;
        let Some(last) = chunks.last() else {
            return Err(JournalError::Unreadable { path: place.location(), reason: "the journal is gone".into() });
        };
        let token = chunks.iter().map(token_of).max().unwrap_or(0) + 1;
        let index = chunks.len() - 1;
        let taken = if annotation(last, SEALED).is_some() {
            // Sealed by a writer killed before it created the next chunk: this one does.
            api.create(&PostParams::default(), &new_chunk(place, index + 1, token, holder)).await.map(|c| (index + 1, c))
        } else {
            let mut raised = last.clone();
            let annotations = raised.metadata.annotations.get_or_insert_with(BTreeMap::new);
            annotations.insert(TOKEN.to_owned(), token.to_string());
            annotations.insert(HOLDER.to_owned(), holder.to_owned());
            api.replace(&place.chunk_name(index), &PostParams::default(), &raised).await.map(|c| (index, c))
        };
        match taken {
            Ok((index, last)) => {
                // Read once more under the new token: nothing older can be added from now on.
                let chunks = read_chunks(&api, place).await?;
                let (records, _, _) = parse_chunks(place, &chunks)?;
                let head = Head { place: place.clone(), holder: holder.to_owned(), token, index, last };
                return Ok((ClusterJournal::start(config, head)?, records));
            }
            Err(e) if is_status(&e, 409) => continue,
            Err(e) => return Err(place.error(if annotation(last, SEALED).is_some() { index + 1 } else { index }, e)),
        }
    }
    Err(place.error(0, "other writers kept changing the journal while this run took it over; try again"))
}

impl Head {
    /// After a failed write: who holds the journal now, or `None` when this writer still does
    /// (and `last` was refreshed).
    async fn fenced(&mut self, api: &Api<ConfigMap>) -> Result<Option<(String, u64)>, kube::Error> {
        let current = api.get(&self.place.chunk_name(self.index)).await?;
        let token = token_of(&current);
        if token > self.token {
            return Ok(Some((annotation(&current, HOLDER).unwrap_or_else(|| "another writer".into()), token)));
        }
        self.last = current;
        Ok(None)
    }

    fn fenced_error(&self, holder: &str, token: u64) -> JournalError {
        self.place.error(
            self.index,
            format!(
                "the journal was taken over by {holder} (fencing token {token}, this run's {}): this run writes nothing more and stops",
                self.token
            ),
        )
    }

    async fn append<R: Serialize>(&mut self, api: &Api<ConfigMap>, record: &R, deadline: Duration) -> Result<(), JournalError> {
        let line = Line { token: self.token, holder: self.holder.clone(), record };
        let mut text = serde_json::to_string(&line).expect("records serialize");
        text.push('\n');
        if text.len() > RECORD_LIMIT {
            return Err(self.place.error(
                self.index,
                format!(
                    "a record of {} bytes is more than one ConfigMap holds ({RECORD_LIMIT} bytes: the API's 1 MiB limit); it was not written",
                    text.len()
                ),
            ));
        }
        let give_up = tokio::time::Instant::now() + deadline;
        let mut pause = RETRY_FIRST_PAUSE;
        loop {
            match self.try_append(api, &text).await {
                Ok(()) => return Ok(()),
                Err(Attempt::Final(e)) => return Err(e),
                Err(Attempt::Transient(e)) => {
                    if tokio::time::Instant::now() + pause > give_up {
                        return Err(self.place.error(
                            self.index,
                            format!("{e} (retried for {} s; the API server did not take the write)", deadline.as_secs()),
                        ));
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RETRY_MAX_PAUSE);
                    // Read again before the next try: the write whose answer was lost may have
                    // landed (then it is done), or another writer may hold the journal now.
                    match self.fenced(api).await {
                        Ok(Some((holder, token))) => return Err(self.fenced_error(&holder, token)),
                        Ok(None) if data_of(&self.last).ends_with(&text) => return Ok(()),
                        Ok(None) | Err(_) => {}
                    }
                }
            }
        }
    }

    /// One try of an append: done, refused for good (fenced, or an answer no retry changes), or
    /// a transient failure worth another try.
    async fn try_append(&mut self, api: &Api<ConfigMap>, text: &str) -> Result<(), Attempt> {
        if !data_of(&self.last).is_empty() && data_of(&self.last).len() + text.len() > CHUNK_LIMIT {
            self.roll_over(api).await?;
        }
        let mut next = self.last.clone();
        let data = next.data.get_or_insert_with(BTreeMap::new).entry(DATA_KEY.to_owned()).or_default();
        data.push_str(text);
        let expected = data.clone();
        match api.replace(&self.place.chunk_name(self.index), &PostParams::default(), &next).await {
            Ok(written) => {
                self.last = written;
                Ok(())
            }
            Err(e) => match self.fenced(api).await {
                Ok(Some((holder, token))) => Err(Attempt::Final(self.fenced_error(&holder, token))),
                // A write whose answer was lost may have landed: the chunk says.
                Ok(None) if data_of(&self.last) == expected => Ok(()),
                // Refreshed, still ours: a conflict with an older read of our own is tried again.
                Ok(None) if is_transient(&e) || is_status(&e, 409) => Err(Attempt::Transient(e)),
                Err(read) if is_transient(&e) && is_transient(&read) => Err(Attempt::Transient(e)),
                _ => Err(Attempt::Final(self.place.error(self.index, e))),
            },
        }
    }

    /// Seals the full chunk (a conditional update) and creates the next one (create-only). A
    /// seal or a create whose answer was lost is found by reading: the chunk sealed, the next
    /// one holding this writer's token and holder.
    async fn roll_over(&mut self, api: &Api<ConfigMap>) -> Result<(), Attempt> {
        if annotation(&self.last, SEALED).is_none() {
            let mut sealed = self.last.clone();
            sealed.metadata.annotations.get_or_insert_with(BTreeMap::new).insert(SEALED.to_owned(), "true".into());
            match api.replace(&self.place.chunk_name(self.index), &PostParams::default(), &sealed).await {
                Ok(written) => self.last = written,
                Err(e) => match self.fenced(api).await {
                    Ok(Some((holder, token))) => return Err(Attempt::Final(self.fenced_error(&holder, token))),
                    Ok(None) if annotation(&self.last, SEALED).is_some() => {}
                    Ok(None) if is_transient(&e) || is_status(&e, 409) => return Err(Attempt::Transient(e)),
                    Err(read) if is_transient(&e) && is_transient(&read) => return Err(Attempt::Transient(e)),
                    _ => return Err(Attempt::Final(self.place.error(self.index, e))),
                },
            }
        }
        let next = new_chunk(&self.place, self.index + 1, self.token, &self.holder);
        let e = match api.create(&PostParams::default(), &next).await {
            Ok(created) => {
                self.index += 1;
                self.last = created;
                return Ok(());
            }
            Err(e) => e,
        };
        match api.get_opt(&self.place.chunk_name(self.index + 1)).await {
            // This writer's own chunk (a create whose answer was lost, or tried again).
            Ok(Some(found)) if token_of(&found) == self.token && annotation(&found, HOLDER).as_deref() == Some(self.holder.as_str()) => {
                self.index += 1;
                self.last = found;
                Ok(())
            }
            Ok(Some(found)) => {
                self.index += 1;
                let (holder, token) = (annotation(&found, HOLDER).unwrap_or_else(|| "another writer".into()), token_of(&found));
                if token > self.token {
                    Err(Attempt::Final(self.fenced_error(&holder, token)))
                } else {
                    Err(Attempt::Final(
                        self.place.error(self.index, format!("the next chunk exists already, written by {holder} (token {token})")),
                    ))
                }
            }
            Ok(None) if is_transient(&e) => Err(Attempt::Transient(e)),
            Err(read) if is_transient(&e) && is_transient(&read) => Err(Attempt::Transient(e)),
            _ => Err(Attempt::Final(self.place.error(self.index + 1, e))),
        }
    }
}

type Request<R> = (R, Duration, std::sync::mpsc::SyncSender<Result<(), JournalError>>);

/// The append side of a cluster journal: a thread with its own runtime and client, taking one
/// record at a time; [`JournalBackend::append`] returns once the write is acknowledged (or
/// refused) by the API server.
#[derive(Debug)]
pub struct ClusterJournal<R = Record> {
    location: PathBuf,
    requests: std::sync::mpsc::Sender<Request<R>>,
    deadline: Duration,
    /// The fencing token this writer writes under (its side files carry it too).
    token: u64,
}

impl<R: JournalLine> ClusterJournal<R> {
    /// Starts the writer's thread; its runtime and client are made there (never inside the
    /// caller's runtime), and any failure to make them is returned here.
    fn start(config: &kube::Config, mut head: Head) -> Result<ClusterJournal<R>, JournalError> {
        let (location, token) = (head.place.location(), head.token);
        let failed = |reason: String| JournalError::Write { path: location.clone(), reason: format!("cannot start its writer: {reason}") };
        let (requests, incoming) = std::sync::mpsc::channel::<Request<R>>();
        let (ready_tx, ready) = std::sync::mpsc::sync_channel::<Result<(), String>>(1);
        let mut config = config.clone();
        // A request that never answers fails after this long, and is tried again.
        config.read_timeout = Some(config.read_timeout.map_or(REQUEST_TIMEOUT, |t| t.min(REQUEST_TIMEOUT)));
        std::thread::Builder::new()
            .name("cluster-journal".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(e) => return drop(ready_tx.send(Err(e.to_string()))),
                };
                let client = {
                    let _in_runtime = runtime.enter();
                    kube::Client::try_from(config)
                };
                let client = match client {
                    Ok(client) => client,
                    Err(e) => return drop(ready_tx.send(Err(e.to_string()))),
                };
                let _ = ready_tx.send(Ok(()));
                let api: Api<ConfigMap> = Api::namespaced(client, &head.place.namespace);
                while let Ok((record, deadline, reply)) = incoming.recv() {
                    let result = runtime.block_on(head.append(&api, &record, deadline));
                    let _ = reply.send(result);
                }
            })
            .map_err(|e| failed(e.to_string()))?;
        ready.recv().map_err(|_| failed("its thread ended".into()))?.map_err(failed)?;
        Ok(ClusterJournal { location, requests, deadline: RETRY_DEADLINE, token })
    }

    /// Appends one record: returns once the API server acknowledged (or refused) the write.
    pub fn append_line(&mut self, record: &R) -> Result<(), JournalError> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        let gone = || JournalError::Write { path: self.location.clone(), reason: "its writer thread is gone".into() };
        self.requests.send((record.clone(), self.deadline, reply)).map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }

    /// This writer's fencing token.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// How long an append tries again after transient errors ([`RETRY_DEADLINE`] unless set).
    pub fn set_retry_deadline(&mut self, deadline: Duration) {
        self.deadline = deadline;
    }

    pub fn location(&self) -> &Path {
        &self.location
    }
}

impl JournalBackend for ClusterJournal<Record> {
    fn append(&mut self, record: &Record) -> Result<(), JournalError> {
        self.append_line(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chunks a LIST returned, in any order: the run's own (by name), from 0 up to the
    /// first missing one, as reading them one by one stops there.
    #[test]
    fn listed_chunks_are_put_in_order_up_to_the_first_gap() {
        let place = JournalPlace::new("kube-system", "r-1").unwrap();
        let chunk =
            |name: &str| ConfigMap { metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() }, ..ConfigMap::default() };
        let names = |chunks: Vec<ConfigMap>| chunks.into_iter().map(|c| c.metadata.name.unwrap()).collect::<Vec<_>>();
        let listed = ["fleetboot-journal-r-1-2", "fleetboot-journal-r-1-0", "fleetboot-journal-r-1-1", "fleetboot-journal-r-1-4"];
        assert_eq!(
            names(in_order(&place, listed.iter().map(|n| chunk(n)).collect())),
            ["fleetboot-journal-r-1-0", "fleetboot-journal-r-1-1", "fleetboot-journal-r-1-2"]
        );
        let strangers = ["fleetboot-journal-r-1-01", "fleetboot-journal-r-1-x", "fleetboot-journal-r-10-0", "fleetboot-journal-r-1-0"];
        assert_eq!(names(in_order(&place, strangers.iter().map(|n| chunk(n)).collect())), ["fleetboot-journal-r-1-0"]);
        assert!(in_order(&place, vec![chunk("fleetboot-journal-r-1-1")]).is_empty(), "no chunk 0: no journal");
    }

    #[test]
    fn places_parse_and_refuse_what_cannot_name_a_configmap() {
        let place = JournalPlace::parse("cluster:ops/20261204T123000Z-42", "kube-system").unwrap().unwrap();
        assert_eq!(place, JournalPlace { namespace: "ops".into(), run_id: "20261204T123000Z-42".into() });
        assert_eq!(place.chunk_name(3), "fleetboot-journal-20261204t123000z-42-3");
        assert_eq!(place.location(), PathBuf::from("cluster:ops/20261204T123000Z-42"));
        let default = JournalPlace::parse("cluster:r-1", "kube-system").unwrap().unwrap();
        assert_eq!(default.namespace, "kube-system");
        assert!(JournalPlace::parse("/tmp/run.jsonl", "kube-system").is_none());
        let err = JournalPlace::new("ops", "../x").unwrap_err().to_string();
        assert!(err.contains("cluster:ops/../x") && err.contains("not a fleetboot run ID"), "{err}");
    }
}
