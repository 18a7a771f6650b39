//! The migration journal's file (`migration.jsonl`) and the migration's other files: appended
//! and fsynced record by record under the same one-process lock as a reboot journal
//! ([`crate::adapters::journal::hold`]); the small state files written whole or not at all; the
//! report files. The records and their fold are `fleetboot_core::migrate::record`.

use std::io::Write;
use std::path::{Path, PathBuf};

use fleetboot_core::journal::JournalError;
use fleetboot_core::migrate::record::{self, CorruptLine, MIGRATION_JOURNAL_VERSION, MigrationEntry, MigrationRecord, MigrationState};

#[derive(Debug, thiserror::Error)]
pub enum MigrationJournalError {
    #[error("cannot read migration journal {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("migration journal {} {source}", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: CorruptLine,
    },
    #[error("cannot write migration journal {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the journal (named by pid), or the filesystem cannot lock it.
    #[error(transparent)]
    Lock(JournalError),
    /// The journal in the cluster (`migrate --journal-in-cluster`) could not be read or
    /// written, or another writer took it over (fenced).
    #[error("migration journal {0}")]
    InCluster(#[source] JournalError),
    /// The migration's index entry in the cluster (how it is found without its ID) could not
    /// be written.
    #[error("the migration's index entry: {0}")]
    Index(#[source] FileError),
}

impl MigrationJournalError {
    /// Held by another live process: refused before anything was touched, not a fault.
    pub fn is_in_use(&self) -> bool {
        matches!(self, MigrationJournalError::Lock(JournalError::Unreadable { .. }))
    }
}

/// Reads and folds a migration journal. A torn last line (a kill mid-write) is dropped.
pub fn load(path: &Path) -> Result<(Vec<MigrationRecord>, MigrationState), MigrationJournalError> {
    let text =
        crate::adapters::system::read_regular_text(path).map_err(|source| MigrationJournalError::Read { path: path.to_owned(), source })?;
    record::parse(&text).map_err(|source| MigrationJournalError::Corrupt { path: path.to_owned(), source })
}

/// Takes the migration journal's lock alone (it must exist), before anything else is done,
/// so a second process is refused, naming the holder's pid, before it takes anything over.
pub fn hold(path: &Path) -> Result<crate::adapters::journal::JournalLock, MigrationJournalError> {
    crate::adapters::journal::hold(path).map_err(MigrationJournalError::Lock)
}

/// Appends records, each fsynced before the next action. Holds the journal's lock for as long
/// as it lives: one process per migration journal.
pub struct MigrationWriter {
    path: PathBuf,
    file: std::fs::File,
    _lock: crate::adapters::journal::JournalLock,
}

impl MigrationWriter {
    /// Opens (or creates: mode 0600 in 0700 directories, file and directory fsynced) the
    /// journal and takes its lock. A torn last line (a kill mid-write) is cut off first, so the
    /// next record starts on a line of its own instead of gluing itself to the torn one.
    pub fn open(path: &Path) -> Result<MigrationWriter, MigrationJournalError> {
        let error = |source: std::io::Error| MigrationJournalError::Write { path: path.to_owned(), source };
        if !path.exists() {
            drop(crate::adapters::system::create_private_file(path).map_err(error)?);
        }
        let lock = hold(path)?;
        let text = crate::adapters::system::read_regular(path).map_err(error)?;
        let keep = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let file = crate::adapters::system::open_regular(path, std::fs::OpenOptions::new().append(true)).map_err(error)?;
        if keep < text.len() {
            file.set_len(keep as u64).map_err(error)?;
            file.sync_data().map_err(error)?;
        }
        Ok(MigrationWriter { path: path.to_owned(), file, _lock: lock })
    }

    pub fn append(&mut self, entry: MigrationEntry) -> Result<MigrationRecord, MigrationJournalError> {
        let record = MigrationRecord { v: MIGRATION_JOURNAL_VERSION, at_ms: crate::adapters::system::now_ms(), entry };
        let mut line = serde_json::to_string(&record).expect("records serialize");
        line.push('\n');
        let error = |source: std::io::Error| MigrationJournalError::Write { path: self.path.clone(), source };
        self.file.write_all(line.as_bytes()).map_err(error)?;
        self.file.sync_data().map_err(error)?;
        Ok(record)
    }
}

/// A migration file that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source}", path.display())]
pub struct FileError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Writes a small state file whole or not at all, owner-only (temp file, fsync, rename, fsync
/// the directory).
pub fn write_atomically(path: &Path, text: &str) -> Result<(), FileError> {
    crate::adapters::system::write_private_atomically(path, text.as_bytes()).map_err(|source| FileError { path: path.to_owned(), source })
}

/// Writes the report's files (name, text) into the migration's directory, owner-only, each
/// whole or not at all; their paths.
pub fn write_files(dir: &Path, files: Vec<(&'static str, String)>) -> Result<Vec<PathBuf>, FileError> {
    let mut written = Vec::new();
    for (name, text) in files {
        let path = dir.join(name);
        write_atomically(&path, &text)?;
        written.push(path);
    }
    Ok(written)
}

/// Where a migration keeps what a resume needs: its journal and its side files (the network
/// backup, step 4's multus generation, the live migration's boot IDs). Two real places: the
/// migration's directory ([`DirStore`], the default) and the cluster ([`ClusterStore`],
/// `--journal-in-cluster`: a resume from any machine, a restarted pod, finds everything there).
/// The report files are not in it: they are outputs, rendered again from the journal.
/// Shared by the steps (side files) and the migration's log (appends), one at a time: an
/// append is synchronous and never held across an await.
pub trait MigrationStore: Send + Sync {
    /// Where the journal is: its file, or `cluster:NAMESPACE/ID-migration`.
    fn location(&self) -> PathBuf;
    /// Where side file `name` is, for messages.
    fn file_location(&self, name: &str) -> PathBuf;
    /// Appends a record; returns once it is durable (fsynced, or acknowledged by the API server
    /// under this writer's fencing token).
    fn append(&self, entry: MigrationEntry) -> Result<MigrationRecord, MigrationJournalError>;
    /// A side file's text; `None` when it was never written.
    fn read_file<'a>(&'a self, name: &'a str) -> futures::future::BoxFuture<'a, Result<Option<String>, FileError>>;
    /// Writes a side file whole or not at all.
    fn write_file<'a>(&'a self, name: &'a str, text: &'a str) -> futures::future::BoxFuture<'a, Result<(), FileError>>;
}

/// A new record of `entry`, stamped now.
fn record_of(entry: MigrationEntry) -> MigrationRecord {
    MigrationRecord { v: MIGRATION_JOURNAL_VERSION, at_ms: crate::adapters::system::now_ms(), entry }
}

/// The migration's directory: `migration.jsonl` under its one-process lock, the side files
/// beside it (owner-only, written atomically).
pub struct DirStore {
    dir: PathBuf,
    writer: std::sync::Mutex<MigrationWriter>,
}

impl DirStore {
    pub fn open(dir: &Path) -> Result<DirStore, MigrationJournalError> {
        Ok(DirStore { dir: dir.to_owned(), writer: std::sync::Mutex::new(MigrationWriter::open(&dir.join("migration.jsonl"))?) })
    }
}

impl MigrationStore for DirStore {
    fn location(&self) -> PathBuf {
        self.dir.join("migration.jsonl")
    }

    fn file_location(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn append(&self, entry: MigrationEntry) -> Result<MigrationRecord, MigrationJournalError> {
        // A poisoned lock: an append panicked; the file's writer is still whole (each record
        // is one write), so the next append goes on.
        self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner).append(entry)
    }

    fn read_file<'a>(&'a self, name: &'a str) -> futures::future::BoxFuture<'a, Result<Option<String>, FileError>> {
        let path = self.dir.join(name);
        Box::pin(async move {
            match crate::adapters::system::read_regular_text(&path) {
                Ok(text) => Ok(Some(text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                // Something else at its place (a link, a directory) is never read through.
                Err(source) => Err(FileError { path, source }),
            }
        })
    }

    fn write_file<'a>(&'a self, name: &'a str, text: &'a str) -> futures::future::BoxFuture<'a, Result<(), FileError>> {
        let path = self.dir.join(name);
        Box::pin(async move { write_atomically(&path, text) })
    }
}

/// The most a side file's ConfigMap holds: the API server's 1 MiB object limit, less room for
/// the object's metadata.
pub const SIDE_FILE_LIMIT: usize = 1024 * 1024 - 4 * 1024;
const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
const MIGRATION_LABEL: &str = "fleetboot.io/migration";
/// On the one ConfigMap per migration journaled in the cluster that names it (its ID in full: a
/// label holds 63 characters): a migration is found without its ID by listing these.
const INDEX_LABEL: &str = "fleetboot.io/migration-index";
/// The index entry's side file: the migration's ID.
const INDEX_FILE: &str = "id";
const TOKEN: &str = "fleetboot.io/journal-token";
const HOLDER: &str = "fleetboot.io/journal-holder";

/// The migration's journal in the cluster (the chunked, fenced ConfigMaps of
/// [`crate::adapters::kube::journal_store`], run `ID-migration`) and each side file as one
/// ConfigMap `fleetboot-migration-ID-NAME`, labelled managed-by fleetboot, written
/// conditionally (create-only, or a replace at the resourceVersion read) and fenced by the
/// journal's token: a writer whose journal was taken over overwrites no side file.
pub struct ClusterStore {
    client: kube::Client,
    namespace: String,
    id: String,
    holder: String,
    token: u64,
    journal: std::sync::Mutex<crate::adapters::kube::journal_store::ClusterJournal<MigrationRecord>>,
}

/// The journal's place of migration `id` in `namespace`.
pub fn cluster_place(namespace: &str, id: &str) -> Result<crate::adapters::kube::journal_store::JournalPlace, MigrationJournalError> {
    crate::adapters::kube::journal_store::JournalPlace::new(namespace, &format!("{id}-migration")).map_err(MigrationJournalError::InCluster)
}

/// The migration `id`'s journal in the cluster, read and folded; `None` when it has none.
pub async fn load_from_cluster(
    client: &kube::Client,
    namespace: &str,
    id: &str,
) -> Result<Option<(Vec<MigrationRecord>, MigrationState)>, MigrationJournalError> {
    use crate::adapters::kube::journal_store;
    let place = cluster_place(namespace, id)?;
    if !journal_store::exists(client, &place).await.map_err(MigrationJournalError::InCluster)? {
        return Ok(None);
    }
    let (records, _, _) = journal_store::load_lines::<MigrationRecord>(client, &place).await.map_err(MigrationJournalError::InCluster)?;
    let mut state = MigrationState::default();
    for record in &records {
        state.apply(record);
    }
    Ok(Some((records, state)))
}

/// The migrations journaled in the cluster in `namespace` that are not over (neither cleaned up
/// nor superseded by a rollback), by ID, each folded; found by their index entries (one LIST).
/// A migration `ID` whose rollback `ID-rollback` has started is being superseded (a kill came
/// between the rollback's start and its mark on this journal): it is the rollback's, not listed.
pub async fn unfinished_in_cluster(client: &kube::Client, namespace: &str) -> Result<Vec<(String, MigrationState)>, MigrationJournalError> {
    use k8s_openapi::api::core::v1::ConfigMap;
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), namespace);
    let listed =
        api.list(&kube::api::ListParams::default().labels(&format!("{INDEX_LABEL}=true,{MANAGED_BY}=fleetboot"))).await.map_err(|e| {
            MigrationJournalError::InCluster(JournalError::Unreadable {
                path: PathBuf::from(format!("cluster:{namespace}")),
                reason: format!("configmaps -l {INDEX_LABEL}: {e}"),
            })
        })?;
    let mut ids: Vec<String> = listed.items.into_iter().filter_map(|map| map.data?.remove(INDEX_FILE)).collect();
    ids.sort();
    ids.dedup();
    let mut started = Vec::new();
    for id in ids {
        if let Some((_, state)) = load_from_cluster(client, namespace, &id).await?
            && !state.run_id.is_empty()
        {
            started.push((id, state));
        }
    }
    Ok(unfinished_of(started))
}

/// [`unfinished_in_cluster`]'s choice among the started migrations. Pure.
fn unfinished_of(started: Vec<(String, MigrationState)>) -> Vec<(String, MigrationState)> {
    let ids: std::collections::BTreeSet<String> = started.iter().map(|(id, _)| id.clone()).collect();
    started.into_iter().filter(|(id, state)| !state.is_over() && !ids.contains(&rollback_id(id))).collect()
}

/// The ID of the rollback of migration `id` journaled in the cluster: named from it, so the
/// same command line run again (a Job's next pod) finds the same rollback. Pure.
pub fn rollback_id(id: &str) -> String {
    format!("{id}-rollback")
}

impl ClusterStore {
    /// Creates the migration's journal in the cluster, or takes it over (raising its fencing
    /// token, so any older writer is refused from its next write on).
    pub async fn open(
        client: &kube::Client,
        config: &kube::Config,
        namespace: &str,
        id: &str,
        holder: &str,
    ) -> Result<ClusterStore, MigrationJournalError> {
        use crate::adapters::kube::journal_store;
        let place = cluster_place(namespace, id)?;
        let error = MigrationJournalError::InCluster;
        let journal = if journal_store::exists(client, &place).await.map_err(error)? {
            journal_store::take_over(client, config, &place, holder).await.map_err(error)?.0
        } else {
            journal_store::create(client, config, &place, holder).await.map_err(error)?
        };
        let store = ClusterStore {
            client: client.clone(),
            namespace: namespace.to_owned(),
            id: id.to_owned(),
            holder: holder.to_owned(),
            token: journal.token(),
            journal: std::sync::Mutex::new(journal),
        };
        // After the journal (a kill before this leaves a journal with no record: no migration),
        // and on every take-over (a migration journaled before there was an index is listed too).
        store.write_side(INDEX_FILE, id, true).await.map_err(MigrationJournalError::Index)?;
        Ok(store)
    }

    /// The ConfigMap of side file `name`.
    pub fn side_file_name(&self, name: &str) -> String {
        format!("fleetboot-migration-{}-{name}", self.id.to_ascii_lowercase())
    }

    fn side_path(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("cluster:{}/{}", self.namespace, self.side_file_name(name)))
    }

    fn api(&self) -> kube::Api<k8s_openapi::api::core::v1::ConfigMap> {
        kube::Api::namespaced(self.client.clone(), &self.namespace)
    }
}

impl MigrationStore for ClusterStore {
    fn location(&self) -> PathBuf {
        self.journal.lock().unwrap_or_else(std::sync::PoisonError::into_inner).location().to_owned()
    }

    fn file_location(&self, name: &str) -> PathBuf {
        self.side_path(name)
    }

    fn append(&self, entry: MigrationEntry) -> Result<MigrationRecord, MigrationJournalError> {
        let record = record_of(entry);
        // The append waits for the API server (and out its retries): off the runtime's workers,
        // so the lease's renewal and the watches go on meanwhile.
        let appended = crate::adapters::system::wait_off_workers(|| {
            self.journal.lock().unwrap_or_else(std::sync::PoisonError::into_inner).append_line(&record)
        });
        appended.map_err(MigrationJournalError::InCluster)?;
        Ok(record)
    }

    fn read_file<'a>(&'a self, name: &'a str) -> futures::future::BoxFuture<'a, Result<Option<String>, FileError>> {
        Box::pin(async move {
            let failed = |e: kube::Error| FileError { path: self.side_path(name), source: std::io::Error::other(e.to_string()) };
            let found = self.api().get_opt(&self.side_file_name(name)).await.map_err(failed)?;
            Ok(found.and_then(|map| map.data).and_then(|mut data| data.remove(name)))
        })
    }

    fn write_file<'a>(&'a self, name: &'a str, text: &'a str) -> futures::future::BoxFuture<'a, Result<(), FileError>> {
        Box::pin(self.write_side(name, text, false))
    }
}

impl ClusterStore {
    /// Writes side file `name` (with `index`: labelled as the migration's index entry, which
    /// [`unfinished_in_cluster`] lists): create-only, or a replace at the resourceVersion read,
    /// refused when a newer writer's token is on it.
    async fn write_side(&self, name: &str, text: &str, index: bool) -> Result<(), FileError> {
        {
            use k8s_openapi::api::core::v1::ConfigMap;
            use kube::api::{ObjectMeta, PostParams};
            use std::collections::BTreeMap;
            let refused = |reason: String| FileError { path: self.side_path(name), source: std::io::Error::other(reason) };
            if text.len() + name.len() > SIDE_FILE_LIMIT {
                return Err(refused(format!(
                    "the migration's file {name} is {} bytes, more than one ConfigMap holds ({SIDE_FILE_LIMIT} bytes under the API's 1 MiB object limit); it was not written",
                    text.len()
                )));
            }
            let token = self.token;
            let api = self.api();
            let map_name = self.side_file_name(name);
            let failed = |e: kube::Error| refused(e.to_string());
            let existing = api.get_opt(&map_name).await.map_err(failed)?;
            let metadata = ObjectMeta {
                name: Some(map_name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(
                    [
                        (MANAGED_BY.to_owned(), "fleetboot".to_owned()),
                        (
                            MIGRATION_LABEL.to_owned(),
                            self.id.to_ascii_lowercase().chars().take(63).collect::<String>().trim_end_matches('-').to_owned(),
                        ),
                    ]
                    .into_iter()
                    .chain(index.then(|| (INDEX_LABEL.to_owned(), "true".to_owned())))
                    .collect::<BTreeMap<_, _>>(),
                ),
                annotations: Some(BTreeMap::from([(TOKEN.to_owned(), token.to_string()), (HOLDER.to_owned(), self.holder.clone())])),
                ..ObjectMeta::default()
            };
            let mut map = ConfigMap { metadata, data: Some(BTreeMap::from([(name.to_owned(), text.to_owned())])), ..ConfigMap::default() };
            let written = match existing {
                None => api.create(&PostParams::default(), &map).await,
                Some(found) => {
                    let annotations = found.metadata.annotations.unwrap_or_default();
                    let theirs: u64 = annotations.get(TOKEN).and_then(|t| t.parse().ok()).unwrap_or(0);
                    if theirs > token {
                        let holder = annotations.get(HOLDER).cloned().unwrap_or_else(|| "another writer".into());
                        return Err(refused(format!(
                            "the migration was taken over by {holder} (fencing token {theirs}, this writer's {token}): not written"
                        )));
                    }
                    // Conditional: refused if anything wrote it since it was read.
                    map.metadata.resource_version = found.metadata.resource_version;
                    api.replace(&map_name, &PostParams::default(), &map).await
                }
            };
            written.map(drop).map_err(failed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetboot_core::migrate::Step;

    #[test]
    fn a_writer_cuts_a_torn_tail_so_the_next_record_stands_on_its_own_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m/migration.jsonl");
        let mut writer = MigrationWriter::open(&path).unwrap();
        writer.append(MigrationEntry::StepStarted { step: Step::Backup }).unwrap();
        drop(writer);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"v\":1,\"at_ms\":");
        std::fs::write(&path, text).unwrap();
        let mut writer = MigrationWriter::open(&path).unwrap();
        writer.append(MigrationEntry::StepStarted { step: Step::Backup }).unwrap();
        drop(writer);
        let (records, _) = load(&path).unwrap();
        assert_eq!(records.len(), 2, "the torn record is gone and the next one is whole");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    /// Over (cleaned up, superseded) is not unfinished; a migration whose rollback started is
    /// the rollback's, even before its journal was marked superseded (a kill in between).
    #[test]
    fn the_unfinished_migrations_leave_out_the_over_and_those_a_rollback_took() {
        let state = |target: &str, entries: Vec<MigrationEntry>| {
            let mut state = MigrationState { run_id: "x".into(), target: target.into(), ..MigrationState::default() };
            for entry in entries {
                state.apply(&record_of(entry));
            }
            state
        };
        let started = vec![
            ("a".to_owned(), state("OVNKubernetes", vec![])),
            (
                "b".to_owned(),
                state("OVNKubernetes", vec![MigrationEntry::Superseded { by: "cluster:kube-system/b-rollback-migration".into() }]),
            ),
            ("b-rollback".to_owned(), state("OpenShiftSDN", vec![])),
            ("c".to_owned(), state("OVNKubernetes", vec![])),
            ("c-rollback".to_owned(), state("OpenShiftSDN", vec![])),
            ("d".to_owned(), state("OVNKubernetes", vec![MigrationEntry::StepDone { step: Step::Cleanup, detail: String::new() }])),
        ];
        let ids: Vec<String> = unfinished_of(started).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, ["a", "b-rollback", "c-rollback"]);
        assert_eq!(rollback_id("m-1"), "m-1-rollback");
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_corruption_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        let mut writer = MigrationWriter::open(&path).unwrap();
        writer.append(MigrationEntry::StepDone { step: Step::Backup, detail: "x".into() }).unwrap();
        drop(writer);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"v\":1,\"at_ms\":3,\"event\":\"step_d");
        std::fs::write(&path, &text).unwrap();
        let (records, state) = load(&path).unwrap();
        assert_eq!(records.len(), 1);
        assert!(state.is_done(Step::Backup));
        std::fs::write(&path, format!("garbage\n{text}\n")).unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("line 1"));
    }
}
