//! A reboot job, typed: which hosts (a host list, a cluster selection, or a journal to resume),
//! the cluster connection the caller resolved, the limits and policies. `fleetboot reboot` builds
//! one from its flags; the migration builds one with its own cluster connection, so the cluster
//! it reboots is always the cluster it migrates.
//!
//! [`prepare`] reads everything a run depends on and refuses bad input before any host is
//! contacted; [`PreparedRun::execute`] takes the lease, opens the journal and runs the runner.
//!
//! One file, past 500 lines: `prepare` and `execute` are the two halves of one job, read together.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fleetboot_core::events::{Event, Summary};
use fleetboot_core::hosts::{self, Host};
use fleetboot_core::journal::{RunSettings, RunState, resume_settings};
use fleetboot_core::nodes::{DrainPolicy, NodeInfo};
use fleetboot_core::plan::{Grouping, Plan, plan_reboot};
use fleetboot_core::settings::Partial;
use tokio::sync::watch;

use crate::adapters::config::{HostKeyPolicy, Settings, Transport};
use crate::adapters::journal::{self, JournalWriter};
use crate::adapters::kube::ClusterConnection;
use crate::adapters::kube::exec::KubeTransport;
use crate::adapters::kube::journal_store::{self, JournalPlace};
use crate::adapters::ssh::{SshClient, SshTransport};
use crate::adapters::transports::NodeTransport;
use crate::engine::error::{RunError as Error, SelectionError, WrongCluster};
use crate::engine::runner::{
    self, Abort, RetryPolicy, RunInputs, apply_run_policy, apply_run_settings, journaled_policy, journaled_settings,
};

/// Which hosts a job reboots.
#[derive(Clone, Debug)]
pub enum Selection {
    /// Hosts the user listed (host files, `--host`, `[[hosts]]`), each with where it was
    /// listed (`file:line`), which an error about it names.
    Hosts(Vec<(Host, String)>),
    /// Nodes of the job's cluster.
    Nodes(NodeSelection),
    /// The hosts of an interrupted run, from its journal.
    Resume(PathBuf),
    /// The hosts of an interrupted run, from its journal in the cluster (any machine may
    /// resume it; the job's cluster is the journal's).
    ResumeInCluster(JournalPlace),
}

/// Nodes chosen from the cluster: a label selector, then names to keep and names to leave out.
#[derive(Clone, Debug, Default)]
pub struct NodeSelection {
    pub label_selector: Option<String>,
    /// When the selector asks only that nodes carry these labels (`--role`'s, or none at
    /// all): the Node watch's own list answers it, with no list of the fleet of its own (at
    /// 10,000 nodes two lists of 26 MB at the start, each slowing the other). `None`: the
    /// selector says more (`--selector`), and the API server, which parses it, lists them.
    pub label_keys_alone: Option<Vec<String>>,
    /// Only these nodes (empty: every node the selector matches).
    pub names: Vec<String>,
    pub exclude: Vec<String>,
    /// The node address type fleetboot connects to (`InternalIP`, as the migration document).
    pub address_type: String,
}

/// How a cluster run is grouped.
#[derive(Clone, Debug)]
pub struct GroupPolicy {
    /// `pool` (MachineConfigPools) or a label key.
    pub group_by: String,
    /// Hosts per group in flight at once; default the pool's maxUnavailable (1 per label value).
    pub group_concurrency: Option<usize>,
    /// The migration document's behaviour: every node at once, no groups, no ordering (and no
    /// control-plane rule).
    pub all_at_once: bool,
    /// The migration's reboot step, the one documented exception: nodes of its plan not
    /// rebooted yet do not block each other for being NotReady.
    pub migration_reboot: bool,
}

impl GroupPolicy {
    /// The groups of these nodes under this policy: none at all when every node goes at once.
    fn grouping(&self, nodes: &[NodeInfo], pools: &[fleetboot_core::nodes::PoolSelector]) -> Grouping {
        if self.all_at_once {
            Grouping::default()
        } else {
            fleetboot_core::nodes::grouping(nodes, pools, &self.group_by, self.group_concurrency)
        }
    }
}

impl Default for GroupPolicy {
    fn default() -> GroupPolicy {
        GroupPolicy { group_by: "pool".into(), group_concurrency: None, all_at_once: false, migration_reboot: false }
    }
}

/// The cluster-wide Lease that keeps two runs off one cluster.
#[derive(Clone, Debug)]
pub struct LeasePolicy {
    pub namespace: String,
    /// Take the lease over from another, live run.
    pub break_lock: bool,
    /// How long the lease lasts unrenewed; renewed every third of it. A run that cannot renew it
    /// for half of it starts nothing new.
    pub duration: Duration,
    /// The migration this run is a step of (its lease holder): a run refuses to start while a
    /// migration holds its lease (`kube-system/fleetboot-migration`), except its own.
    pub migration_holder: Option<String>,
}

impl Default for LeasePolicy {
    fn default() -> LeasePolicy {
        LeasePolicy {
            namespace: fleetboot_core::rbac::MIGRATION_LEASE_NAMESPACE.into(),
            break_lock: false,
            duration: Duration::from_secs(30),
            migration_holder: None,
        }
    }
}

/// Everything one reboot run needs. Nothing in it is parsed or looked up later.
pub struct RebootJob {
    pub settings: Settings,
    pub selection: Selection,
    /// The cluster, resolved by the caller (`--kubeconfig`, `--context`, config, `$KUBECONFIG`).
    /// Required for [`Selection::Nodes`] and for resuming a cluster run.
    pub cluster: Option<ClusterConnection>,
    /// Where a new run writes its journal (default: the state directory).
    pub journal: Option<PathBuf>,
    /// A new run journals in the cluster (ConfigMaps in the lease's namespace) instead of a
    /// file; it needs the job's cluster.
    pub journal_in_cluster: bool,
    /// A new run's ID when the caller names it (`--run-id`); else one is made.
    pub run_id: Option<String>,
    /// The node this process runs on (a pod's): rebooted last of all, as rebooting it ends
    /// this process (its replacement resumes the run).
    pub own_node: Option<String>,
    pub groups: GroupPolicy,
    /// `--drain`. A resumed run drains as it started, whatever is given here.
    pub drain: Option<DrainPolicy>,
    pub lease: LeasePolicy,
    /// The settings given explicitly for this job (its flags' layer, `Some` where given; never
    /// the environment or the file): a resumed run keeps its journaled transport, command, rate,
    /// concurrency and timeouts except these.
    pub explicit: Partial,
    /// A resume refuses an explicit value that differs from the journal's (no `--override-journal`).
    pub refuse_conflicts: bool,
    /// The run will be executed (not a dry run): its Node watch starts with the plan, so the
    /// watch's first list of every node comes in while discovery, the BMC inventory, the lease
    /// and the journal go on (at 10,000 nodes it took 0.6 s after all of them). A dry run lists
    /// nothing it does not show.
    pub watch_from_the_start: bool,
}

/// A job whose inventory, plan and journal path are known; nothing has been contacted but the
/// cluster API (discovery, and a cluster run's Node watch, when it starts with the plan): only read.
pub struct PreparedRun {
    settings: Settings,
    plan: Plan,
    prior: Option<RunState>,
    journal: PathBuf,
    /// A resumed journal's lock, held from before its records were read to the run's end.
    resume_lock: Option<journal::JournalLock>,
    /// The journal in the cluster, when the run keeps it there.
    in_cluster: Option<InClusterJournal>,
    cluster: Option<ClusterConnection>,
    /// The run's nodes as discovery listed them (for the BMC inventory), when it did.
    discovered: Option<Vec<NodeInfo>>,
    /// The cluster's Node watch, when it was started with the plan ([`RebootJob::watch_from_the_start`]).
    watch: Option<Arc<crate::adapters::kube::NodeWatch>>,
    drain: Option<DrainPolicy>,
    lease: LeasePolicy,
    /// Host-list runs: each node's line as the user wrote it (its own name, where it was
    /// listed), for the plan.
    listed_as: std::collections::BTreeMap<String, (String, String)>,
    limits: runner::LimitsRule,
    /// Said to the user when the run starts (what an old journal did not record).
    notes: Vec<String>,
}

/// A run's journal in the cluster: where, through which connection, and for a resume how many
/// records it held when the plan was made (taking it over must find no more).
struct InClusterJournal {
    place: JournalPlace,
    connection: ClusterConnection,
    seen: Option<usize>,
}

impl InClusterJournal {
    /// Takes the run's heartbeat lease (`fleetboot-run-RUN-ID`), renewed until the run ends:
    /// refused while another writer of this journal renews it, unless `break_lock`.
    async fn heartbeat(&self, holder: &str, liveness: Duration, break_lock: bool) -> Result<crate::adapters::kube::LeaseLock, Error> {
        Ok(crate::adapters::kube::lease::acquire_run_lease(
            // Renewed until the run ends: outside the bound on the run's other requests.
            self.connection.lease_api(),
            &self.place.namespace,
            &self.place.run_id,
            holder,
            liveness,
            break_lock,
        )
        .await?)
    }

    /// Creates it, or takes it over for a resume (raising its fencing token): after the lease,
    /// so that a refused run leaves no trace and fences nobody.
    async fn open(&self, holder: &str) -> Result<JournalWriter, Error> {
        let (client, config) = (&self.connection.client, &self.connection.config);
        let writer = match self.seen {
            None => journal_store::create(client, config, &self.place, holder).await?,
            Some(seen) => {
                let (writer, records) = journal_store::take_over(client, config, &self.place, holder).await?;
                if records.len() != seen {
                    return Err(fleetboot_core::journal::JournalError::Unreadable {
                        path: self.place.location(),
                        reason: format!(
                            "it changed while this resume prepared ({seen} records then, {} now): another writer added to it; resume again",
                            records.len()
                        ),
                    }
                    .into());
                }
                writer
            }
        };
        Ok(JournalWriter::with_backend(self.place.location(), Box::new(writer)))
    }
}

/// A resumed run goes on as it started, but for what the user overrides explicitly.
fn resume_settings_onto(
    settings: &mut Settings,
    path: &Path,
    state: &RunState,
    explicit: &Partial,
    refuse_conflicts: bool,
    notes: &mut Vec<String>,
) -> Result<(), Error> {
    let today = RunSettings {
        policy: Some(journaled_policy(&settings.run, &settings.redfish.fallback, settings.redfish.graceful_timeout)),
        ..journaled_settings(&settings.run)
    };
    let resumed = resume_settings(state.settings.as_ref(), &today, explicit, refuse_conflicts)
        .map_err(|conflicts| SelectionError::ResumeConflicts { journal: path.to_owned(), conflicts })?;
    apply_run_settings(&mut settings.run, &resumed.settings);
    if let Some(policy) = &resumed.settings.policy {
        let redfish = &mut settings.redfish;
        apply_run_policy(&mut settings.run, &mut redfish.fallback, &mut redfish.graceful_timeout, policy);
    }
    if !resumed.not_journaled.is_empty() {
        notes.push(format!(
            "the journal {} was written before fleetboot recorded its {}: this resume uses today's configuration for them",
            path.display(),
            resumed.not_journaled.join(", ")
        ));
    }
    Ok(())
}

/// A new run's ID: the start time and this process's PID, and from a process's second run on
/// its number (`-2`, `-3`): one process may start several runs in one second (a migration's
/// reboot steps; tests), and two runs sharing an ID would share a lease holder, so a takeover
/// between them would go unseen.
pub fn new_run_id() -> String {
    static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let id = format!("{}-{}", stamp.replace([':', '-'], ""), std::process::id());
    match STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) {
        0 => id,
        n => format!("{id}-{}", n + 1),
    }
}

/// Resolves the job's hosts and plan. Refuses, before anything is touched: unknown node names,
/// nodes without exactly one address of the chosen type, `--drain` without a cluster, and a
/// resume under a cluster other than the journal's.
pub async fn prepare(job: RebootJob) -> Result<PreparedRun, Error> {
    let RebootJob {
        mut settings,
        selection,
        cluster,
        journal,
        journal_in_cluster,
        run_id: named_run,
        own_node,
        groups,
        drain,
        lease,
        explicit,
        refuse_conflicts,
        watch_from_the_start,
    } = job;
    // Only read: nothing is touched before the lease.
    let watch = cluster.as_ref().filter(|_| watch_from_the_start).map(|c| Arc::new(crate::adapters::kube::NodeWatch::start(&c.client)));
    let mut resume_lock = None;
    let mut in_cluster = None;
    let mut listed_as = std::collections::BTreeMap::new();
    let mut notes = Vec::new();
    // A fresh run's ID, made once: its journal's name and its records say the same.
    let fresh_id = match selection {
        Selection::Resume(_) | Selection::ResumeInCluster(_) => None,
        _ => Some(named_run.unwrap_or_else(new_run_id)),
    };
    let (hosts, grouping, prior, journal_path, discovered) = match selection {
        Selection::Resume(path) => {
            // The journal's lock first, then its records: read before the lock, they could be
            // stale by the time the run starts (another fleetboot finishing the same journal
            // in between), and a host it just rebooted would be planned as pending.
            resume_lock = Some(journal::hold(&path)?);
            let (_, state) = journal::load(&path)?;
            check_same_cluster(&path, &state, cluster.as_ref())?;
            resume_settings_onto(&mut settings, &path, &state, &explicit, refuse_conflicts, &mut notes)?;
            (state.hosts.clone(), state.grouping.clone(), Some(state), path, None)
        }
        // Read without any lock: taking it over (after the lease) finds out whether another
        // writer added to it since, and refuses then.
        Selection::ResumeInCluster(place) => {
            let Some(connection) = &cluster else {
                return Err(SelectionError::InClusterJournalNeedsACluster.into());
            };
            let loaded = journal_store::load(&connection.client, &place).await?;
            let path = place.location();
            check_same_cluster(&path, &loaded.state, cluster.as_ref())?;
            resume_settings_onto(&mut settings, &path, &loaded.state, &explicit, refuse_conflicts, &mut notes)?;
            in_cluster = Some(InClusterJournal { place, connection: connection.clone(), seen: Some(loaded.records.len()) });
            (loaded.state.hosts.clone(), loaded.state.grouping.clone(), Some(loaded.state), path, None)
        }
        Selection::Nodes(select) => {
            let Some(connection) = &cluster else {
                return Err(SelectionError::NodesNeedACluster.into());
            };
            let (hosts, grouping, nodes) = cluster_inventory(&select, &groups, connection, watch.as_deref()).await?;
            (hosts, grouping, None, new_journal_path(&settings, journal, fresh_id.as_deref()), Some(nodes))
        }
        // A host list under a known cluster: the hosts that are nodes follow the cluster's rules
        // (proof through the API, pools, the control plane one at a time and last, the lease).
        // When no host of the list is a node, the run is a pure host-list run.
        Selection::Hosts(listed) => {
            let (hosts, grouping, nodes) = match &cluster {
                Some(connection) => {
                    let (hosts, grouping, nodes, lines) = hosts_onto_nodes(listed, &groups, connection).await?;
                    listed_as = lines;
                    (hosts, grouping, Some(nodes).filter(|nodes| !nodes.is_empty()))
                }
                None => (hosts::merge_sources(listed)?, Grouping::default(), None),
            };
            if drain.is_some() && nodes.is_none() {
                return Err(SelectionError::DrainNeedsNodes.into());
            }
            let grouping = if nodes.is_some() { grouping } else { Grouping::default() };
            (hosts, grouping, None, new_journal_path(&settings, journal, fresh_id.as_deref()), nodes)
        }
    };
    let cluster_run = discovered.is_some() || prior.as_ref().is_some_and(|p| p.api_proof);
    // A host-list run touches no cluster: it neither proves through one nor takes its lease
    // (its journal may still be kept there).
    let in_cluster_connection = cluster.clone().filter(|_| journal_in_cluster);
    let cluster = if cluster_run { cluster } else { None };
    // Nor does it watch one's nodes.
    let watch = watch.filter(|_| cluster_run);
    if groups.all_at_once {
        settings.run.concurrency = hosts.len().max(1);
    }
    let run_id = match (&prior, fresh_id) {
        (Some(p), _) => p.run_id.clone(),
        (None, Some(id)) => id,
        (None, None) => new_run_id(),
    };
    // A new run journaled in the cluster: ConfigMaps in the lease's namespace, named by the run.
    let journal_path = match (&prior, journal_in_cluster) {
        (None, true) => {
            let connection = cluster.as_ref().or(in_cluster_connection.as_ref()).ok_or(SelectionError::InClusterJournalNeedsACluster)?;
            let place = JournalPlace::new(&lease.namespace, &run_id)?;
            let path = place.location();
            in_cluster = Some(InClusterJournal { place, connection: connection.clone(), seen: None });
            path
        }
        _ => journal_path,
    };
    let mut plan = plan_reboot(run_id, hosts, prior.as_ref(), grouping);
    if let Some(node) = &own_node {
        fleetboot_core::plan::put_last(&mut plan, node);
    }
    // A resumed run drains as it started, whatever this job says.
    let drain = match &prior {
        Some(state) => state.drain,
        None => drain,
    };
    let limits = runner::LimitsRule { control_plane: !groups.all_at_once, plan_not_ready_exempt: groups.migration_reboot };
    Ok(PreparedRun {
        settings,
        plan,
        prior,
        journal: journal_path,
        resume_lock,
        in_cluster,
        cluster,
        discovered,
        watch,
        drain,
        lease,
        listed_as,
        limits,
        notes,
    })
}

fn new_journal_path(settings: &Settings, given: Option<PathBuf>, run_id: Option<&str>) -> PathBuf {
    given.unwrap_or_else(|| settings.state_dir().join(format!("reboot-{}.jsonl", run_id.map_or_else(new_run_id, str::to_owned))))
}

/// A cluster run's journal may only be resumed against its own cluster.
fn check_same_cluster(path: &Path, state: &RunState, cluster: Option<&ClusterConnection>) -> Result<(), Error> {
    match (&state.cluster, cluster) {
        (Some(journaled), Some(connection)) if !journaled.same_cluster(&connection.identity) => {
            Err(WrongCluster { journal: path.to_owned(), journaled: journaled.clone().into(), given: connection.identity.clone().into() }
                .into())
        }
        (Some(journaled), None) => {
            Err(SelectionError::JournalsClusterMissing { journal: path.to_owned(), cluster: journaled.clone() }.into())
        }
        (None, None) if state.api_proof => Err(SelectionError::JournalNeedsACluster { journal: path.to_owned() }.into()),
        _ => Ok(()),
    }
}

/// The reboot inventory from the cluster: selected nodes, minus exclusions, each reached at
/// its address of the chosen type. Any node without exactly one such address stops the run.
/// Also returns the chosen nodes as discovered, for the BMC inventory.
async fn cluster_inventory(
    select: &NodeSelection,
    groups: &GroupPolicy,
    cluster: &ClusterConnection,
    watch: Option<&crate::adapters::kube::NodeWatch>,
) -> Result<(Vec<Host>, Grouping, Vec<NodeInfo>), Error> {
    let watched = match (watch, &select.label_keys_alone) {
        (Some(watch), Some(keys)) => watch.listed_nodes().await.map(|nodes| {
            nodes.into_iter().filter(|n| keys.iter().all(|k| n.metadata.labels.as_ref().is_some_and(|l| l.contains_key(k)))).collect()
        }),
        _ => None,
    };
    let (found, pools) = match watched {
        Some(nodes) => crate::adapters::kube::discover::among(nodes, &cluster.client, cluster.server(), &select.address_type).await?,
        // No watch, a selector only the API server reads, or a watch that did not list in time.
        None => {
            crate::adapters::kube::discover_with_pools(
                &cluster.client,
                cluster.server(),
                select.label_selector.as_deref(),
                &select.address_type,
            )
            .await?
        }
    };
    let unknown: Vec<String> =
        select.names.iter().chain(&select.exclude).filter(|n| !found.iter().any(|f| &f.name == *n)).cloned().collect();
    if !unknown.is_empty() {
        return Err(SelectionError::UnknownNodes { names: unknown, place: "the cluster (or not matching the selector)" }.into());
    }
    let chosen: Vec<NodeInfo> = found
        .into_iter()
        .filter(|n| select.names.is_empty() || select.names.contains(&n.name))
        .filter(|n| !select.exclude.contains(&n.name))
        .collect();
    let problems = fleetboot_core::nodes::address_problems(&chosen);
    if !problems.is_empty() {
        return Err(SelectionError::NodeAddresses { problems }.into());
    }
    let grouping = groups.grouping(&chosen, &pools);
    let hosts: Vec<(Host, String)> = chosen
        .iter()
        .map(|n| (Host { name: n.name.clone(), address: n.addresses[0].clone(), port: None }, format!("node {}", n.name)))
        .collect();
    Ok((hosts::merge_sources(hosts)?, grouping, chosen))
}

/// Maps a host list onto the cluster's nodes by address alone (any of the node's addresses,
/// or an address the line's host name resolves to): each host that is a node takes the
/// node's name and the cluster's grouping; the others (a name that does not exist included:
/// SSH, asking the same resolver, cannot reach it either) are standalone hosts, rebooted over
/// SSH alone. Refused, naming the line: a host two nodes claim, a line named like a node whose
/// address is none of that node's (a name is not an identity), and a name the resolver gave no
/// answer for (whether it is a node is unknown). Also returns, per node, the line as the user
/// wrote it.
async fn hosts_onto_nodes(
    listed: Vec<(Host, String)>,
    groups: &GroupPolicy,
    cluster: &ClusterConnection,
) -> Result<(Vec<Host>, Grouping, Vec<NodeInfo>, std::collections::BTreeMap<String, (String, String)>), Error> {
    use fleetboot_core::nodes::{HostMatch, NodeIndex};
    let (found, pools) = crate::adapters::kube::discover_with_pools(&cluster.client, cluster.server(), None, "InternalIP").await?;
    let mut mapped: Vec<(Host, String)> = Vec::new();
    let mut matched: Vec<NodeInfo> = Vec::new();
    let mut standalone = Vec::new();
    let mut lines = std::collections::BTreeMap::new();
    // Names are resolved a bounded number at a time (IP addresses need no lookup).
    let addresses: Vec<&str> = listed.iter().map(|(host, _)| host.address.as_str()).collect();
    // A name with no answer refuses the list, naming its line: never guessed a plain host.
    let resolved = crate::adapters::system::resolve_hosts(&addresses).await.map_err(|unanswered| {
        let line_of = |name: &str| listed.iter().find(|(host, _)| host.address == name).map_or(String::new(), |(_, origin)| origin.clone());
        let names = unanswered.names.into_iter().map(|(name, why)| (name.clone(), line_of(&name), why)).collect();
        SelectionError::Unresolved(Box::new(crate::engine::error::Unresolved { names, not_looked_up: unanswered.not_looked_up }))
    })?;
    // Indexed once: each line is then matched without a scan of every node's addresses.
    let index = NodeIndex::new(&found);
    for ((host, origin), resolved) in listed.into_iter().zip(resolved) {
        match index.match_host(&host.name, &host.address, &resolved) {
            HostMatch::Node(node) => {
                lines.insert(node.clone(), (host.name.clone(), origin.clone()));
                let origin = format!("host {} ({}, {origin}), node {node}", host.name, host.address);
                matched.extend(index.node(&node).cloned());
                mapped.push((Host { name: node, ..host }, origin));
            }
            HostMatch::NotANode => {
                standalone.push(host.name.clone());
                let origin = format!("host {} ({origin})", host.name);
                mapped.push((host, origin));
            }
            HostMatch::Ambiguous(nodes) => {
                return Err(
                    SelectionError::AmbiguousHost { host: format!("{} ({origin})", host.name), address: host.address, nodes }.into()
                );
            }
            HostMatch::NameOnly { node, addresses, address_of } => {
                let claim =
                    crate::engine::error::NameNotAddress { origin, host: host.name, address: host.address, node, addresses, address_of };
                return Err(SelectionError::NameNotAddress(Box::new(claim)).into());
            }
        }
    }
    // Two lines naming one node are refused here, with both origins.
    let hosts = hosts::merge_sources(mapped)?;
    let mut grouping = groups.grouping(&matched, &pools);
    grouping.standalone = standalone;
    Ok((hosts, grouping, matched, lines))
}

impl PreparedRun {
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// How the cluster's state limits this run.
    pub fn limits(&self) -> runner::LimitsRule {
        self.limits
    }

    /// Whether the hosts are (at least partly) a cluster's nodes, proven through its API.
    pub fn is_cluster_run(&self) -> bool {
        self.cluster.is_some()
    }

    /// The drain preflight, as the run makes it before its first drain (`--dry-run` shows it):
    /// the PodDisruptionBudgets allowing no disruption now and the drains of this plan they
    /// block. Empty without `--drain` or a cluster.
    pub async fn drain_preflight(&self) -> Vec<String> {
        let (Some(connection), Some(policy)) = (&self.cluster, self.drain) else { return Vec::new() };
        let drainer = crate::adapters::kube::Drainer::new(connection, policy).only_pods(self.settings.run.batch.drain_pod_selector.clone());
        let nodes: std::collections::BTreeSet<String> = self
            .plan
            .steps
            .iter()
            .filter(|s| s.action == fleetboot_core::journal::ResumeAction::Reboot && !self.plan.grouping.is_standalone(&s.host.name))
            .map(|s| s.host.name.clone())
            .collect();
        match drainer.zero_disruption_budgets(&nodes).await {
            Ok(found) => found.iter().map(|(budget, blocked)| fleetboot_core::batch::zero_budget_warning(budget, blocked)).collect(),
            Err(e) => vec![format!("preflight: {e}")],
        }
    }

    /// Host-list runs: each node's line as the user wrote it (its name, where it was listed).
    pub fn listed_as(&self) -> &std::collections::BTreeMap<String, (String, String)> {
        &self.listed_as
    }

    /// The cluster this run acts on, with its context, to be named before anything starts.
    pub fn cluster_line(&self) -> Option<String> {
        let connection = self.cluster.as_ref()?;
        let nodes = self.plan.hosts.iter().filter(|h| !self.plan.grouping.is_standalone(&h.name)).count();
        let context = connection.identity.context.as_ref().map_or(String::new(), |c| format!(" (context {c})"));
        Some(format!(
            "acting on the cluster at {}{context}: {nodes} of {} hosts are its nodes and follow its rules",
            connection.identity,
            self.plan.hosts.len()
        ))
    }

    /// Runs the job to its end (or an abort). Keys, known_hosts and BMC credentials are read
    /// first, then the lease is taken, then the journal is created: a refused run leaves
    /// nothing behind. Every event, warnings included, goes to `on_event`.
    pub async fn execute(
        self,
        abort: (watch::Sender<Abort>, watch::Receiver<Abort>),
        mut on_event: impl FnMut(&Event),
    ) -> Result<Summary, Error> {
        let cluster_line = self.cluster_line();
        let PreparedRun {
            settings,
            plan,
            prior,
            journal,
            resume_lock,
            in_cluster,
            cluster,
            discovered,
            watch,
            drain,
            lease,
            limits,
            notes,
            ..
        } = self;
        // One process per journal: a resume took the journal's lock in `prepare`, so a second
        // resume of a journal in use was refused (naming the holder) before it touched the
        // cluster; the writer shares that lock, which is let go when the run ends.
        let _resume_lock = resume_lock;
        let resumed_journal = match &prior {
            Some(_) if in_cluster.is_none() => Some(JournalWriter::reopen(&journal)?),
            _ => None,
        };
        let mut warn = |message: String| on_event(&Event::Warning { host: None, message });
        // Which cluster is touched is said loudly, before anything is.
        if let Some(line) = cluster_line {
            warn(line);
        }
        notes.into_iter().for_each(&mut warn);
        // Keys and known_hosts are read before the journal exists or any host is contacted.
        let retry = RetryPolicy { attempts: settings.run.ssh.connect_attempts, first_wait: Duration::from_secs(1) };
        let mut settings = settings;
        if settings.run.transport == Transport::Kube {
            // The documents' `shutdown -r +1` for the SSH default (cancelable for a minute).
            settings.run.command = crate::adapters::kube::exec::kube_reboot_command(&settings.run.command);
        }
        let mut debug_pods = None;
        if settings.run.transport == Transport::Auto {
            match settings.run.transport_order.command_rungs().as_slice() {
                // `order = ["redfish"]`: the BMC alone, as `--transport redfish`.
                [] => settings.run.transport = Transport::Redfish,
                [Transport::Kube] if cluster.is_none() => return Err(SelectionError::KubeNeedsACluster.into()),
                _ => {}
            }
        }
        let transport = match settings.run.transport {
            // Through the cluster API only: no SSH key is read; exec must be allowed before
            // anything is touched.
            Transport::Kube => {
                let connection = cluster.as_ref().ok_or(SelectionError::KubeNeedsACluster)?;
                let kube = KubeTransport::new(connection.client.clone(), settings.run.clone(), settings.run.ssh.command_timeout)
                    .with_run_id(&plan.run_id);
                kube_preflight(&kube, &plan.hosts).await?;
                debug_pods = Some(kube.debug_pods());
                NodeTransport::Kube(kube)
            }
            // `auto` on a cluster: SSH and the API's exec in `[transport] order`'s order (then the
            // BMC, the runner's fallback, when the order names it).
            Transport::Auto if let Some(connection) = &cluster => {
                let kube = || {
                    KubeTransport::new(connection.client.clone(), settings.run.clone(), settings.run.ssh.command_timeout)
                        .with_run_id(&plan.run_id)
                };
                let ssh = || -> Result<SshTransport, Error> {
                    Ok(SshTransport::new(SshClient::for_this_user(settings.run.ssh.clone())?, settings.run.clone()))
                };
                match settings.run.transport_order.command_rungs().as_slice() {
                    [Transport::Kube] => {
                        let kube = kube();
                        debug_pods = Some(kube.debug_pods());
                        NodeTransport::Kube(kube)
                    }
                    [Transport::Kube, Transport::Ssh] | [Transport::Ssh, Transport::Kube] => {
                        let kube_first = settings.run.transport_order.command_rungs()[0] == Transport::Kube;
                        let kube = kube();
                        debug_pods = Some(kube.debug_pods());
                        NodeTransport::SshThenKube(Box::new(crate::adapters::transports::Chain::in_order(ssh()?, kube, kube_first)))
                    }
                    // SSH alone, or the BMC alone (the runner sends to the BMC what SSH cannot reach).
                    _ => NodeTransport::Ssh(ssh()?),
                }
            }
            _ => NodeTransport::Ssh(SshTransport::new(SshClient::for_this_user(settings.run.ssh.clone())?, settings.run.clone())),
        };
        // BMC credentials are read now too: a bad one stops the run before any node is touched.
        let (bmc, bmc_warnings) = bmc_power(&settings, &plan.hosts, cluster.as_ref(), discovered).await?;
        // An order without redfish never sends a node to its BMC.
        let bmc = bmc.filter(|_| settings.run.transport != Transport::Auto || settings.run.transport_order.contains(Transport::Redfish));
        bmc_warnings.into_iter().for_each(&mut warn);
        // Cluster nodes are proven through the API as well as over SSH, under the cluster's lease.
        let lease_policy_break = lease.break_lock;
        let (api, lease, drainer, lease_takeover) = match &cluster {
            Some(connection) => {
                let kube = &connection.client;
                // A resume may reclaim the lease its own killed process left behind on this
                // machine; a migration reboots every node itself, so no other reboot run beside
                // it (only its own).
                let mut aborted = abort.1.clone();
                let taken = crate::engine::lease::take(
                    connection,
                    &crate::engine::lease::LeaseTake {
                        namespace: &lease.namespace,
                        name: crate::adapters::kube::LEASE_NAME,
                        duration: lease.duration,
                        break_lock: lease.break_lock,
                        run_id: &plan.run_id,
                        may_reclaim: prior.is_some(),
                        exclusive_with: crate::adapters::kube::MIGRATION_LEASE_NAME,
                        allowed_beside: lease.migration_holder.as_deref(),
                        waiting_before: "the first reboot",
                        previous_stops: "the run that held the lease stops starting hosts",
                    },
                    &mut warn,
                    // Ctrl-C meanwhile ends the wait: the runner sees it and starts nothing.
                    async move {
                        let _ = aborted.wait_for(|level| *level != Abort::No).await;
                    },
                )
                .await?;
                let (lock, identity) = (taken.lock, taken.identity);
                let takeover = lock.taken_from.clone().map(|previous| (previous, identity.clone()));
                let pods = settings.run.batch.drain_pod_selector.clone();
                let drainer = drain.map(|policy| Arc::new(crate::adapters::kube::Drainer::new(connection, policy).only_pods(pods)));
                let watch = watch.unwrap_or_else(|| Arc::new(crate::adapters::kube::NodeWatch::start(kube)));
                (Some(watch), Some(lock), drainer, takeover)
            }
            None => (None, None, None, None),
        };
        // A new run's journal is created only once the lease is held: a refused run leaves
        // nothing behind. (A resumed one was opened, and locked, before anything else.)
        // The journal in the cluster is created (or taken over, fencing any older writer) now,
        // with the lease's holder in each record.
        // Its writer's heartbeat, the run's own lease, is taken first: a resume never fences
        // a writer that still renews it (unless --break-lock).
        let mut run_lease = None;
        let opened = match (&in_cluster, resumed_journal) {
            (Some(store), _) => {
                let holder = match &lease {
                    Some(lock) => lock.identity().to_owned(),
                    None => crate::adapters::kube::this_process_identity(&plan.run_id).0,
                };
                match store.heartbeat(&holder, settings.run.journal_liveness, lease_policy_break).await {
                    Ok(beat) => {
                        run_lease = Some(beat);
                        store.open(&holder).await
                    }
                    Err(e) => Err(e),
                }
            }
            (None, Some(writer)) => Ok(writer),
            (None, None) => JournalWriter::create(&journal).map_err(Error::from),
        };
        let writer = match opened {
            Ok(writer) => writer,
            Err(e) => {
                for lock in lease.into_iter().chain(run_lease) {
                    lock.release().await;
                }
                return Err(e);
            }
        };
        // Debug pods a killed run left go first: those the resumed journal names as created and
        // never deleted; on a new run that may make debug pods, those any other (dead: this run
        // holds the cluster's lease) run left, found by their label. Privileged pods pinned to
        // nodes are not left to whoever remembers the dead run's ID.
        let mut writer = writer;
        if let Some(connection) = &cluster {
            let left: Vec<(String, Vec<fleetboot_core::journal::DebugPodRef>)> = match &prior {
                Some(prior) if !prior.debug_pods.is_empty() => vec![("the previous run".to_owned(), prior.debug_pods.clone())],
                Some(_) => Vec::new(),
                None if debug_pods.is_some() => {
                    let timeout = settings.run.ssh.command_timeout;
                    match crate::adapters::kube::debug_pod::left_by_other_runs(
                        &connection.client,
                        &plan.run_id,
                        timeout,
                        std::time::SystemTime::now(),
                    )
                    .await
                    {
                        Ok(left) => {
                            if !left.young.is_empty() {
                                let names: Vec<String> = left.young.iter().map(|p| format!("{}/{}", p.namespace, p.pod)).collect();
                                on_event(&Event::Warning {
                                    host: None,
                                    message: format!(
                                        "debug pods younger than the command timeout ({}) left to the runs that made them (a command may still use them): {}",
                                        humantime::format_duration(timeout),
                                        names.join(", ")
                                    ),
                                });
                            }
                            let mut by_run: std::collections::BTreeMap<String, Vec<_>> = Default::default();
                            for (run, pod) in left.dead {
                                by_run.entry(format!("run {run}")).or_default().push(pod);
                            }
                            by_run.into_iter().collect()
                        }
                        // Not finding them stops nothing: they are another run's leftovers.
                        Err(e) => {
                            on_event(&Event::Warning {
                                host: None,
                                message: format!("could not look for debug pods older runs left: {e}"),
                            });
                            Vec::new()
                        }
                    }
                }
                None => Vec::new(),
            };
            for (left_by, pods) in left {
                match remove_debug_pods_left(&connection.client, &pods, &left_by, &mut writer).await {
                    Ok(messages) => messages.into_iter().for_each(|message| on_event(&Event::Warning { host: None, message })),
                    Err(e) => {
                        for lock in lease.into_iter().chain(run_lease) {
                            lock.release().await;
                        }
                        return Err(e.into());
                    }
                }
            }
        }
        let inputs = RunInputs {
            transport,
            settings: settings.run.clone(),
            retry,
            journal: writer,
            plan,
            prior,
            api,
            drain: drainer,
            lease_takeover,
            bmc,
            fallback: settings.redfish.fallback,
            cluster: cluster.as_ref().map(|c| c.identity.clone()),
            limits,
        };
        // A run that loses its lease starts nothing new, like the first Ctrl-C, and says why; unlike
        // it, it cancels no pending reboot (`Abort::LeaseLost`): the nodes may be another run's now.
        let lost_reason = Arc::new(std::sync::Mutex::new(None::<String>));
        // The run's own lease (the journal's heartbeat) is named as such in the reason.
        let run_lease_name = in_cluster.as_ref().map(|store| {
            format!("the run's lease {}/{}", store.place.namespace, crate::adapters::kube::run_lease_name(&store.place.run_id))
        });
        let leases = lease.iter().map(|lock| (lock, None)).chain(run_lease.iter().map(|lock| (lock, run_lease_name.clone())));
        let lease_watch: Vec<_> = leases
            .map(|(lock, which)| {
                let (mut lost, trigger, reason) = (lock.lost(), abort.0.clone(), lost_reason.clone());
                tokio::spawn(async move {
                    if let Ok(why) = lost.wait_for(Option::is_some).await {
                        *reason.lock().unwrap() = why.as_ref().map(|why| match &which {
                            Some(name) => why.to_string().replace("the cluster's lease", name),
                            None => why.to_string(),
                        });
                        trigger.send_if_modified(|level| {
                            let raise = *level < Abort::LeaseLost;
                            if raise {
                                *level = Abort::LeaseLost;
                            }
                            raise
                        });
                    }
                })
            })
            .collect();
        let summary = runner::run(inputs, abort, |event| {
            if let Event::AbortRequested { .. } = event
                && let Some(why) = lost_reason.lock().unwrap().take()
            {
                on_event(&Event::Warning { host: None, message: format!("{why}; starting nothing new") });
            }
            on_event(event)
        })
        .await;
        for task in lease_watch {
            task.abort();
        }
        // Debug pods a Ctrl-C left mid-exec are deleted (and journaled) before the lease goes.
        if let Some(debug_pods) = debug_pods {
            let (deleted, failed) = debug_pods.sweep().await;
            for pod in deleted {
                on_event(&Event::Warning {
                    host: Some(pod.host.clone()),
                    message: format!("deleted debug pod {}/{} (left by a stop or a failed deletion)", pod.namespace, pod.pod),
                });
            }
            // A privileged pod with the host's `/` still there: said, with how to remove it (the
            // journal names it without a deletion: `repair` and a resume delete it).
            for (pod, error) in failed {
                on_event(&Event::Warning {
                    host: Some(pod.host.clone()),
                    message: format!(
                        "debug pod {}/{} could not be deleted ({}): it is privileged with the host's / mounted; `fleetboot repair --journal {}` deletes it",
                        pod.namespace,
                        pod.pod,
                        error,
                        summary.journal.display()
                    ),
                });
            }
        }
        // BMC operations a hard abort cut short still log out of their BMCs.
        crate::adapters::redfish::finish_cleanups(Duration::from_secs(5)).await;
        for lock in lease.into_iter().chain(run_lease) {
            lock.release().await;
        }
        Ok(summary)
    }
}

/// `--transport kube`, before the lease, the journal or any node: the first host's
/// machine-config daemon pod answers a boot-ID read through exec. A refusal by the API (exec
/// forbidden, no such pod) stops the run here; a node that is merely down is the runner's to
/// judge, as over SSH.
async fn kube_preflight(kube: &KubeTransport, hosts: &[Host]) -> Result<(), SelectionError> {
    use fleetboot_core::transport::{PowerTransport, TransportError};
    let Some(first) = hosts.first() else { return Ok(()) };
    match kube.read_boot_id(first).await {
        Err(e @ (TransportError::Auth(_) | TransportError::Forbidden(_) | TransportError::Other(_))) => {
            Err(SelectionError::KubeExecRefused { node: first.name.clone(), source: e })
        }
        _ => Ok(()),
    }
}

/// Deletes the debug pods a killed run left (`left_by` names it for the user: "the previous
/// run" for the journal being resumed, whose records name them as created and not deleted, or
/// another, dead run whose pods still carry its label), journaling each deletion; returns what
/// to tell the user. A deletion that cannot be journaled stops it there (the journal is fenced
/// or broken: nothing more may be touched), and the run with it.
pub async fn remove_debug_pods_left(
    client: &kube::Client,
    pods: &[fleetboot_core::journal::DebugPodRef],
    left_by: &str,
    writer: &mut JournalWriter,
) -> Result<Vec<String>, fleetboot_core::journal::JournalError> {
    use fleetboot_core::journal::{Entry, JOURNAL_VERSION, Record};
    let mut messages = Vec::new();
    for pod in pods {
        match crate::adapters::kube::debug_pod::delete(client, &pod.namespace, &pod.pod).await {
            Ok(()) => {
                let entry = Entry::DebugPodDeleted { host: pod.host.clone(), namespace: pod.namespace.clone(), pod: pod.pod.clone() };
                writer.append(&Record { v: JOURNAL_VERSION, at_ms: crate::adapters::system::now_ms(), entry })?;
                messages.push(format!("deleted debug pod {}/{} left by {left_by} on {}", pod.namespace, pod.pod, pod.host));
            }
            Err(error) => messages.push(format!("could not delete debug pod {}/{} left on {}: {error}", pod.namespace, pod.pod, pod.host)),
        }
    }
    Ok(messages)
}

/// What a user must hear before a run starts, whatever it reboots.
pub fn host_key_warning(settings: &Settings) -> Option<&'static str> {
    (settings.run.ssh.host_key_policy == HostKeyPolicy::InsecureIgnore).then_some(
        "WARNING: host keys are NOT verified (--insecure-ignore-host-keys). Anyone on the path can impersonate \
         a host and receive your commands. A key that changes during the run still stops that host.",
    )
}

/// The BMCs of a run's hosts, unless the run is SSH only, with the warnings to show. Problems
/// with BareMetalHosts (a scheme fleetboot cannot drive, a missing Secret) are warnings: those
/// nodes simply have no fallback. Problems with `[[bmc]]` entries the user wrote stop the run.
/// `discovered`: the run's nodes when discovery just listed them (a resume lists them here).
async fn bmc_power(
    settings: &Settings,
    hosts: &[Host],
    cluster: Option<&ClusterConnection>,
    discovered: Option<Vec<NodeInfo>>,
) -> Result<(Option<Arc<crate::adapters::bmc::RedfishPower>>, Vec<String>), Error> {
    if matches!(settings.run.transport, Transport::Ssh | Transport::Kube) || (settings.bmcs.is_empty() && cluster.is_none()) {
        return Ok((None, Vec::new()));
    }
    let kube = cluster.map(|c| &c.client);
    let nodes = match (cluster, discovered) {
        (Some(_), Some(nodes)) => nodes,
        (Some(connection), None) => crate::adapters::kube::discover(&connection.client, connection.server(), None, "InternalIP").await?,
        (None, _) => Vec::new(),
    };
    let inventory =
        crate::adapters::bmc::BmcInventory::build(&settings.redfish, &settings.bmcs, hosts, kube.map(|k| (k, nodes.as_slice()))).await?;
    let warnings = inventory.warnings(None);
    if settings.run.transport == Transport::Redfish {
        let missing: Vec<String> = hosts.iter().filter(|h| !inventory.targets.contains_key(&h.name)).map(|h| h.name.clone()).collect();
        if !missing.is_empty() {
            return Err(SelectionError::NoBmc { why: "--transport redfish", nodes: missing, hint: "" }.into());
        }
    }
    Ok((Some(Arc::new(crate::adapters::bmc::RedfishPower::new(inventory, &settings.redfish))), warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_runs_of_one_process_in_one_second_have_two_ids() {
        let (first, second) = (new_run_id(), new_run_id());
        assert_ne!(first, second, "a lease holder names its run: two runs must not share one");
        let pid = std::process::id().to_string();
        assert!(first.contains(&pid) && second.contains(&pid), "{first} {second}");
    }
    use fleetboot_core::journal::ClusterIdentity;

    fn state(cluster: Option<ClusterIdentity>, api_proof: bool) -> RunState {
        RunState {
            run_id: "r".into(),
            command: "c".into(),
            hosts: Vec::new(),
            records: Default::default(),
            finished: false,
            api_proof,
            grouping: Grouping::default(),
            drain: None,
            cluster,
            settings: None,
            debug_pods: Vec::new(),
        }
    }

    #[test]
    fn a_cluster_runs_journal_needs_its_cluster() {
        let a = ClusterIdentity { server: "https://a:6443".into(), cluster_id: Some("a".into()), context: None };
        let journal = Path::new("j.jsonl");
        let err = check_same_cluster(journal, &state(Some(a.clone()), true), None).unwrap_err();
        assert!(err.to_string().contains("belongs to the cluster at https://a:6443 (cluster ID a)"), "{err}");
        assert!(check_same_cluster(journal, &state(None, true), None).is_err(), "an old cluster journal still needs a cluster");
        assert!(check_same_cluster(journal, &state(None, false), None).is_ok(), "a host-list run needs none");
    }
}
