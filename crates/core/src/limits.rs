//! Whether a host may go down now, from what the cluster says right now (not from the run's own
//! bookkeeping). Pure: the caller reads the world ([`World`]) and passes `now`; this decides.
//!
//! A node counts against a limit while it is unavailable for *any* reason, whoever made it so,
//! as the MCO's `maxUnavailable` does (machine-config-operator
//! `pkg/controller/node/status.go`, `getUnavailableMachines`/`isNodeReady`: not Ready, or
//! unschedulable, or mid-update):
//! - not Ready;
//! - cordoned (`spec.unschedulable`) by someone other than this run;
//! - mid-update by the MCO: `machineconfiguration.openshift.io/state` is `Working`, or
//!   `currentConfig` ≠ `desiredConfig`;
//! - held by another actor's per-node maintenance Lease: the medik8s operators (node
//!   maintenance, self-node-remediation, fence-agents remediation) take a `Lease` in
//!   `medik8s-leases` named after the node (medik8s/common `pkg/lease/manager.go`: the name is
//!   `node-<node>`), valid while `renewTime + leaseDurationSeconds` is in the future.
//!
//! A control-plane node goes down only when every *other* control-plane node is Ready and the
//! `etcd` ClusterOperator, where there is one, is Available and not Degraded.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::plan::Grouping;

/// The namespace of the medik8s operators' per-node Leases (medik8s/common `pkg/lease`).
pub const MEDIK8S_LEASE_NAMESPACE: &str = "medik8s-leases";

/// One node as the cluster shows it now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeNow {
    pub name: String,
    pub ready: bool,
    pub unschedulable: bool,
    /// `machineconfiguration.openshift.io/state` (empty when absent).
    pub mco_state: String,
    pub current_config: String,
    pub desired_config: String,
    pub control_plane: bool,
    /// The node's group under the run's grouping rule (pool, label value, `master`), for nodes
    /// outside the run too.
    pub group: Option<String>,
    /// The resourceVersion of the node object these fields were read from (`None`: not
    /// known): tells whether this copy already shows a change the reader made (its uncordon).
    pub version: Option<String>,
}

/// A medik8s-style per-node Lease as the cluster shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLease {
    /// The Lease's name: `node-<node>` (medik8s/common) or the node's name.
    pub name: String,
    pub holder: String,
    /// `renewTime` (or `acquireTime`), milliseconds since the epoch; `None`: never renewed.
    pub renewed_ms: Option<u64>,
    pub duration_ms: Option<u64>,
}

impl NodeLease {
    /// The node it holds, by medik8s's naming (`node-<name>`) or the plain name.
    fn holds(&self, node: &str) -> bool {
        self.name == node || self.name.strip_prefix("node-") == Some(node)
    }

    /// Held by someone other than fleetboot, and not expired at `now_ms` (medik8s/common
    /// `pkg/lease/manager.go` `isValidLease`: `renewTime + leaseDurationSeconds` after now).
    fn held_by_another(&self, now_ms: u64) -> bool {
        let valid = match (self.renewed_ms, self.duration_ms) {
            (Some(renewed), Some(duration)) => renewed.saturating_add(duration) > now_ms,
            _ => false,
        };
        valid && !self.holder.is_empty() && !self.holder.starts_with("fleetboot")
    }
}

/// The `etcd` ClusterOperator's conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EtcdHealth {
    pub available: bool,
    pub degraded: bool,
}

/// What the cluster says right now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct World {
    /// Every node that may be unavailable (a reader may leave out nodes that are plainly
    /// available: they never stand in the way).
    pub nodes: Vec<NodeNow>,
    pub leases: Vec<NodeLease>,
    /// `None`: the cluster has no `etcd` ClusterOperator (plain Kubernetes).
    pub etcd: Option<EtcdHealth>,
}

impl World {
    /// This world without the nodes `back_now` says a later look shows plainly available
    /// (Ready, schedulable, not being updated), but for a node a Lease names (it counts whatever
    /// its object says, as [`unavailable`] judges it); `None` when no node is taken out.
    ///
    /// A world is read once for everyone who asked meanwhile, its nodes taken when the read
    /// ends; a host of the run proven back after that (its Ready seen, its place given up)
    /// would count twice until the next read: once in the snapshot as down, and no longer as
    /// in flight. The later look is the same watch, newer: the world is never older for it.
    pub fn with_nodes_back(&self, mut back_now: impl FnMut(&str) -> bool) -> Option<World> {
        let back: BTreeSet<&str> = self
            .nodes
            .iter()
            .filter(|n| !self.leases.iter().any(|l| l.holds(&n.name)) && back_now(&n.name))
            .map(|n| n.name.as_str())
            .collect();
        if back.is_empty() {
            return None;
        }
        let nodes = self.nodes.iter().filter(|n| !back.contains(n.name.as_str())).cloned().collect();
        Some(World { nodes, leases: self.leases.clone(), etcd: self.etcd })
    }
}

/// Why a node counts as unavailable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Why {
    NotReady,
    CordonedByOthers,
    McoUpdating,
    Lease { holder: String },
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::NotReady => f.write_str("not Ready"),
            Why::CordonedByOthers => f.write_str("cordoned by someone else"),
            Why::McoUpdating => f.write_str("being updated by the MCO"),
            Why::Lease { holder } => write!(f, "held by {holder}'s maintenance lease"),
        }
    }
}

/// Every reason a node is unavailable now, in a fixed order (empty: available).
pub fn unavailable(node: &NodeNow, leases: &[NodeLease], cordoned_by_run: &BTreeSet<String>, now_ms: u64) -> Vec<Why> {
    let mut why = Vec::new();
    if !node.ready {
        why.push(Why::NotReady);
    }
    if node.unschedulable && !cordoned_by_run.contains(&node.name) {
        why.push(Why::CordonedByOthers);
    }
    if node.mco_state == "Working" || node.current_config != node.desired_config {
        why.push(Why::McoUpdating);
    }
    if let Some(lease) = leases.iter().find(|l| l.holds(&node.name) && l.held_by_another(now_ms)) {
        why.push(Why::Lease { holder: lease.holder.clone() });
    }
    why
}

/// Who else is acting on `host` itself now (the MCO updating it, another actor's maintenance
/// Lease holding it), and why: `(to whom, why)`, or `None`. A cordon fleetboot put on such a node
/// is theirs now (lifting it would undo their cordon). Pure.
pub fn taken_by_another(world: &World, host: &str, now_ms: u64) -> Option<(String, String)> {
    let me = world.nodes.iter().find(|n| n.name == host)?;
    let mine: Vec<Why> = unavailable(me, &world.leases, &BTreeSet::new(), now_ms)
        .into_iter()
        .filter(|w| matches!(w, Why::Lease { .. } | Why::McoUpdating))
        .collect();
    let to = mine
        .iter()
        .map(|w| match w {
            Why::Lease { holder } => format!("{holder} (maintenance lease)"),
            _ => "the machine-config operator".to_owned(),
        })
        .collect::<Vec<_>>();
    (!mine.is_empty())
        .then(|| (to.join(", "), format!("{host} itself is {}", mine.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))))
}

/// The run's side of the decision for one host.
#[derive(Clone, Debug)]
pub struct Ask<'a> {
    /// The host about to go down (a node's name).
    pub host: &'a str,
    pub grouping: &'a Grouping,
    /// The run's concurrency limit. It counts the unavailable nodes of the run's plan and of
    /// the run's groups (a node down in a pool the run does not touch does not hold it back).
    pub concurrency: usize,
    /// Every host of the run.
    pub plan: &'a BTreeSet<String>,
    /// Hosts of this run holding an in-flight place now, this one included: the run's own
    /// limits already count them.
    pub in_flight: &'a BTreeSet<String>,
    /// Nodes this run cordoned (and has not uncordoned).
    pub cordoned_by_run: &'a BTreeSet<String>,
    /// The migration's reboot step only (the one documented exception): nodes of its plan that
    /// this run has not rebooted yet, whose being NotReady blocks no other (after the switch
    /// they may report NotReady until rebooted). Empty everywhere else.
    pub not_ready_exempt: &'a BTreeSet<String>,
    /// Whether the control-plane rule applies (every run but the migration's all-at-once one).
    pub control_plane_rule: bool,
}

/// One node that stands in the way, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Blocker {
    pub node: String,
    pub why: Vec<Why>,
}

/// The decision: go now, or wait, and why (naming the nodes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Go,
    Wait(Wait),
}

/// Why a host must wait: the rule that holds it and the text that says so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wait {
    pub on: WaitOn,
    /// The rule's words, with the counts and the nodes standing in the way now.
    pub reason: String,
}

/// Which rule holds a host back. A host waiting many polls is told again only when this
/// changes, not when the nodes in the way or their count do (they change at every poll in a
/// large run: a thousand waiting hosts each said so every poll interval).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitOn {
    /// Someone else acts on the host itself (the MCO, another actor's maintenance Lease).
    Itself(Vec<Why>),
    /// Another control-plane node is unavailable.
    ControlPlane,
    /// The etcd ClusterOperator is not Available, or Degraded.
    Etcd { available: bool, degraded: bool },
    /// The run's concurrency.
    Concurrency,
    /// The host's group's limit.
    Group(String),
}

/// The most nodes a reason names; the rest are counted ("and 194 more"). A reason is printed
/// and journaled as events: at 10,000 nodes one naming every node in the way was kilobytes.
pub const NAMED_BLOCKERS: usize = 10;

fn describe(blockers: &[Blocker]) -> String {
    let mut text = blockers
        .iter()
        .take(NAMED_BLOCKERS)
        .map(|b| format!("{} ({})", b.node, b.why.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")))
        .collect::<Vec<_>>()
        .join(", ");
    if blockers.len() > NAMED_BLOCKERS {
        text.push_str(&format!(" and {} more", blockers.len() - NAMED_BLOCKERS));
    }
    text
}

/// Whether `ask.host` may go down now. Pure.
pub fn decide(world: &World, ask: &Ask<'_>, now_ms: u64) -> Verdict {
    // One pass over the nodes that may be unavailable: the host itself, and the others the
    // run's limits do not already count, unavailable now (the exemption applied). Nothing is
    // copied unless the host must wait: a rolling run decides before every dispatch, over a
    // world of a thousand nodes in flight.
    let mut me = None;
    let mut outsiders: Vec<(&NodeNow, Vec<Why>)> = Vec::new();
    for n in &world.nodes {
        if n.name == ask.host {
            me = me.or(Some(n));
            continue;
        }
        if ask.in_flight.contains(&n.name) {
            continue;
        }
        let mut why = unavailable(n, &world.leases, ask.cordoned_by_run, now_ms);
        if ask.not_ready_exempt.contains(&n.name) {
            why.retain(|w| *w != Why::NotReady);
        }
        if !why.is_empty() {
            outsiders.push((n, why));
        }
    }
    let blockers = |keep: &dyn Fn(&NodeNow) -> bool| -> Vec<Blocker> {
        outsiders.iter().filter(|(n, _)| keep(n)).map(|(n, why)| Blocker { node: n.name.clone(), why: why.clone() }).collect()
    };
    let count = |keep: &dyn Fn(&NodeNow) -> bool| outsiders.iter().filter(|(n, _)| keep(n)).count();
    // The host itself: another actor's maintenance Lease on it (node maintenance, remediation
    // fencing it) or the MCO updating it means someone else is acting on it right now. (Down or
    // cordoned, it may still be rebooted.)
    if let Some(me) = me {
        let mine: Vec<Why> = unavailable(me, &world.leases, ask.cordoned_by_run, now_ms)
            .into_iter()
            .filter(|w| matches!(w, Why::Lease { .. } | Why::McoUpdating))
            .collect();
        if !mine.is_empty() {
            let reason = format!("{} itself is {}", me.name, mine.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "));
            return Verdict::Wait(Wait { on: WaitOn::Itself(mine), reason });
        }
    }
    let is_control_plane = me.is_some_and(|n| n.control_plane) || ask.grouping.group_of(ask.host) == Some("master");
    if ask.control_plane_rule && is_control_plane {
        let control_plane = |n: &NodeNow| n.control_plane;
        if count(&control_plane) > 0 {
            let reason = format!("another control-plane node is unavailable: {}", describe(&blockers(&control_plane)));
            return Verdict::Wait(Wait { on: WaitOn::ControlPlane, reason });
        }
        match world.etcd {
            Some(EtcdHealth { available: true, degraded: false }) | None => {}
            Some(EtcdHealth { available, degraded }) => {
                let reason = format!(
                    "the etcd ClusterOperator is {}",
                    match (available, degraded) {
                        (false, true) => "not Available and Degraded",
                        (false, false) => "not Available",
                        _ => "Degraded",
                    }
                );
                return Verdict::Wait(Wait { on: WaitOn::Etcd { available, degraded }, reason });
            }
        }
    }
    // The run's concurrency: its own in-flight hosts plus every other unavailable node of its
    // plan or of its groups.
    let in_scope = |n: &NodeNow| ask.plan.contains(&n.name) || n.group.as_ref().is_some_and(|g| ask.grouping.limits.contains_key(g));
    let all = count(&in_scope);
    let own = ask.in_flight.len() - usize::from(ask.in_flight.contains(ask.host)) + 1;
    if own + all > ask.concurrency {
        let reason = format!(
            "{all} unavailable and {} of this run in flight against a concurrency of {}: {}",
            own - 1,
            ask.concurrency,
            describe(&blockers(&in_scope))
        );
        return Verdict::Wait(Wait { on: WaitOn::Concurrency, reason });
    }
    // The group's limit, counted the same way within the group.
    if let Some(group) = ask.grouping.group_of(ask.host)
        && let Some(&limit) = ask.grouping.limits.get(group)
    {
        let of_group = |n: &NodeNow| n.group.as_deref() == Some(group);
        let in_group = count(&of_group);
        let own = ask.in_flight.iter().filter(|h| h.as_str() != ask.host && ask.grouping.group_of(h) == Some(group)).count() + 1;
        if own + in_group > limit {
            let reason = format!(
                "group {group} allows {limit} unavailable at once; {} already: {}",
                own - 1 + in_group,
                describe(&blockers(&of_group))
            );
            return Verdict::Wait(Wait { on: WaitOn::Group(group.to_owned()), reason });
        }
    }
    Verdict::Go
}

/// Which rule a run's limits follow besides the run's own bookkeeping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The control-plane rule: a master goes down only when every other one is Ready and etcd
    /// is healthy. Off only for an all-at-once reboot (the documents' way).
    pub control_plane: bool,
    /// The migration's reboot step: nodes of its plan not rebooted yet do not count as
    /// unavailable for being NotReady (after the switch they may be, until rebooted).
    pub plan_not_ready_exempt: bool,
}

impl Default for Rule {
    fn default() -> Rule {
        Rule { control_plane: true, plan_not_ready_exempt: false }
    }
}

impl Rule {
    /// What this rule does, and why, for `--dry-run` and `--plan`.
    pub fn describe(&self, cluster_run: bool, wait: &str) -> String {
        describe_rule(cluster_run, self.control_plane, self.plan_not_ready_exempt, wait)
    }
}

/// Which rule a run's limits follow, and why, for `--dry-run` and `--plan`. `cluster_run`: the
/// hosts are (partly) a cluster's nodes; `wait`: how long a host waits for the limits.
pub fn describe_rule(cluster_run: bool, control_plane: bool, plan_not_ready_exempt: bool, wait: &str) -> String {
    if !cluster_run {
        return "limits: the run's own (no cluster to read)".to_owned();
    }
    let mut text = format!(
        "limits: the cluster is read before each host goes down: a node of this run or of its groups that is not Ready, \
         cordoned by someone else, being updated by the MCO or held by another actor's maintenance Lease (medik8s) \
         counts against the concurrency and its group's limit; a host waits for room up to {wait}, then fails untouched"
    );
    if plan_not_ready_exempt {
        text.push_str(
            "; the migration's reboot step is the one documented exception: nodes of its plan not rebooted yet do not \
             count for being NotReady (after the switch they may be, until rebooted); nodes outside the plan, another \
             actor's lease and the MCO mid-update do",
        );
    }
    if control_plane {
        text.push_str(
            "; a control-plane node goes only when every other one is Ready and the etcd ClusterOperator is Available \
             and not Degraded, one at a time, each back and Ready before the next",
        );
    } else {
        text.push_str("; every node at once, as the documents do: no control-plane rule");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, group: &str) -> NodeNow {
        NodeNow {
            name: name.into(),
            ready: true,
            mco_state: "Done".into(),
            current_config: "c".into(),
            desired_config: "c".into(),
            control_plane: group == "master",
            group: Some(group.into()),
            ..NodeNow::default()
        }
    }

    fn cluster() -> World {
        World {
            nodes: vec![node("m0", "master"), node("m1", "master"), node("m2", "master"), node("w0", "worker"), node("w1", "worker")],
            leases: Vec::new(),
            etcd: Some(EtcdHealth { available: true, degraded: false }),
        }
    }

    fn grouping() -> Grouping {
        let mut g = Grouping::default();
        for (h, group) in [("m0", "master"), ("m1", "master"), ("m2", "master"), ("w0", "worker"), ("w1", "worker")] {
            g.of.insert(h.into(), group.into());
        }
        g.limits.insert("master".into(), 1);
        g.limits.insert("worker".into(), 1);
        g.last.push("master".into());
        g
    }

    fn ask<'a>(host: &'a str, grouping: &'a Grouping, in_flight: &'a BTreeSet<String>, none: &'a BTreeSet<String>) -> Ask<'a> {
        Ask {
            host,
            grouping,
            concurrency: 10,
            plan: in_flight,
            in_flight,
            cordoned_by_run: none,
            not_ready_exempt: none,
            control_plane_rule: true,
        }
    }

    #[test]
    fn a_master_waits_while_another_master_is_down_whoever_took_it_down() {
        let (g, none) = (grouping(), BTreeSet::new());
        let me: BTreeSet<String> = ["m1".to_string()].into();
        let mut world = cluster();
        assert_eq!(decide(&world, &ask("m1", &g, &me, &none), 0), Verdict::Go);
        world.nodes[0].ready = false;
        match decide(&world, &ask("m1", &g, &me, &none), 0) {
            Verdict::Wait(why) => assert!(why.reason.contains("m0 (not Ready)"), "{}", why.reason),
            Verdict::Go => panic!("m1 went while m0 was down"),
        }
        // The host itself being down is no reason to wait.
        assert_eq!(decide(&world, &ask("m0", &g, &["m0".to_string()].into(), &none), 0), Verdict::Go);
    }

    #[test]
    fn a_node_seen_back_since_the_read_no_longer_holds_anyone_unless_a_lease_names_it() {
        let (g, none) = (grouping(), BTreeSet::new());
        let me: BTreeSet<String> = ["w0".into()].into();
        let mut read = cluster();
        read.nodes[4].ready = false;
        assert!(matches!(decide(&read, &ask("w0", &g, &me, &none), 0), Verdict::Wait(w) if w.reason.contains("w1 (not Ready)")));
        // A later look shows w1 back: it stands in no one's way.
        let newer = read.with_nodes_back(|n| n == "w1").expect("w1 taken out");
        assert!(newer.nodes.iter().all(|n| n.name != "w1"));
        assert_eq!(decide(&newer, &ask("w0", &g, &me, &none), 0), Verdict::Go);
        // Nothing seen back: nothing changes.
        assert_eq!(read.with_nodes_back(|_| false), None);
        // A node someone's maintenance Lease names counts whatever its object says.
        read.leases.push(NodeLease {
            name: "node-w1".into(),
            holder: "node-maintenance".into(),
            renewed_ms: Some(1000),
            duration_ms: Some(3_600_000),
        });
        assert_eq!(read.with_nodes_back(|n| n == "w1"), None);
    }

    #[test]
    fn an_unhealthy_etcd_holds_the_control_plane_but_not_the_workers() {
        let (g, none) = (grouping(), BTreeSet::new());
        let mut world = cluster();
        world.etcd = Some(EtcdHealth { available: true, degraded: true });
        assert!(matches!(decide(&world, &ask("m1", &g, &["m1".into()].into(), &none), 0), Verdict::Wait(w) if w.reason.contains("etcd")));
        assert_eq!(decide(&world, &ask("w0", &g, &["w0".into()].into(), &none), 0), Verdict::Go);
        world.etcd = None;
        assert_eq!(decide(&world, &ask("m1", &g, &["m1".into()].into(), &none), 0), Verdict::Go, "no etcd operator: plain Kubernetes");
    }

    #[test]
    fn mco_updates_leases_and_foreign_cordons_count_in_the_group() {
        let (g, none) = (grouping(), BTreeSet::new());
        let me: BTreeSet<String> = ["w0".into()].into();
        let mut world = cluster();
        world.nodes[4].mco_state = "Working".into();
        assert!(
            matches!(decide(&world, &ask("w0", &g, &me, &none), 0), Verdict::Wait(w) if w.reason.contains("w1 (being updated by the MCO)"))
        );
        world.nodes[4].mco_state = "Done".into();
        world.nodes[4].desired_config = "d".into();
        assert!(matches!(decide(&world, &ask("w0", &g, &me, &none), 0), Verdict::Wait(_)), "current ≠ desired");
        world.nodes[4].desired_config = "c".into();
        world.leases.push(NodeLease {
            name: "node-w1".into(),
            holder: "node-maintenance".into(),
            renewed_ms: Some(1000),
            duration_ms: Some(3_600_000),
        });
        assert!(matches!(decide(&world, &ask("w0", &g, &me, &none), 2000), Verdict::Wait(w) if w.reason.contains("node-maintenance")));
        // Expired, or fleetboot's own: no hold.
        assert_eq!(decide(&world, &ask("w0", &g, &me, &none), 3_602_000), Verdict::Go);
        world.leases[0] =
            NodeLease { name: "w1".into(), holder: "fleetboot-x".into(), renewed_ms: Some(1000), duration_ms: Some(3_600_000) };
        assert_eq!(decide(&world, &ask("w0", &g, &me, &none), 2000), Verdict::Go);
        world.nodes[4].unschedulable = true;
        assert!(matches!(decide(&world, &ask("w0", &g, &me, &none), 0), Verdict::Wait(w) if w.reason.contains("cordoned")));
        let ours: BTreeSet<String> = ["w1".into()].into();
        let mut mine = ask("w0", &g, &me, &none);
        mine.cordoned_by_run = &ours;
        assert_eq!(decide(&world, &mine, 0), Verdict::Go, "this run's own cordon is counted by its own limits");
        // Another group's unavailable node does not count against this group.
        world.nodes[4].unschedulable = false;
        world.nodes[0].ready = false;
        assert_eq!(decide(&world, &ask("w0", &g, &me, &none), 0), Verdict::Go);
    }

    #[test]
    fn a_host_held_by_another_actor_or_updated_by_the_mco_waits_itself() {
        let (g, none) = (grouping(), BTreeSet::new());
        let me: BTreeSet<String> = ["w0".into()].into();
        let mut world = cluster();
        world.leases.push(NodeLease {
            name: "node-w0".into(),
            holder: "self-node-remediation".into(),
            renewed_ms: Some(0),
            duration_ms: Some(60_000),
        });
        assert!(
            matches!(decide(&world, &ask("w0", &g, &me, &none), 1), Verdict::Wait(w) if w.reason.contains("w0 itself is held by self-node-remediation"))
        );
        world.leases.clear();
        world.nodes[3].mco_state = "Working".into();
        assert!(matches!(decide(&world, &ask("w0", &g, &me, &none), 1), Verdict::Wait(w) if w.reason.contains("being updated by the MCO")));
        world.nodes[3].mco_state = "Done".into();
        world.nodes[3].ready = false;
        world.nodes[3].unschedulable = true;
        assert_eq!(decide(&world, &ask("w0", &g, &me, &none), 1), Verdict::Go, "down or cordoned, it may still be rebooted");
    }

    #[test]
    fn the_concurrency_counts_every_unavailable_node() {
        let (g, none) = (Grouping::default(), BTreeSet::new());
        let mut world = cluster();
        world.nodes[3].ready = false;
        let flying: BTreeSet<String> = ["w1".into(), "m2".into()].into();
        let plan: BTreeSet<String> = ["w0".into(), "w1".into(), "m2".into()].into();
        let mut a = ask("w1", &g, &flying, &none);
        a.plan = &plan;
        a.concurrency = 2;
        a.control_plane_rule = false;
        assert!(matches!(decide(&world, &a, 0), Verdict::Wait(w) if w.reason.contains("w0 (not Ready)")));
        a.concurrency = 3;
        assert_eq!(decide(&world, &a, 0), Verdict::Go);
        // A node outside the plan and outside the run's groups does not count.
        a.concurrency = 2;
        a.plan = &flying;
        assert_eq!(decide(&world, &a, 0), Verdict::Go);
    }

    #[test]
    fn the_migrations_own_not_ready_nodes_do_not_block_each_other_but_others_do() {
        let (g, none) = (grouping(), BTreeSet::new());
        let mut world = cluster();
        for n in &mut world.nodes {
            n.ready = false;
        }
        let exempt: BTreeSet<String> = ["m0", "m1", "m2", "w0", "w1"].iter().map(|s| s.to_string()).collect();
        let me: BTreeSet<String> = ["m1".into()].into();
        let mut a = ask("m1", &g, &me, &none);
        a.not_ready_exempt = &exempt;
        assert_eq!(decide(&world, &a, 0), Verdict::Go);
        // A node rebooted by this run (no longer exempt) that is not back blocks the next master.
        let fewer: BTreeSet<String> = ["m1", "m2", "w0", "w1"].iter().map(|s| s.to_string()).collect();
        a.not_ready_exempt = &fewer;
        assert!(matches!(decide(&world, &a, 0), Verdict::Wait(w) if w.reason.contains("m0 (not Ready)")));
        // The MCO mid-update blocks even an exempt node.
        a.not_ready_exempt = &exempt;
        world.nodes[2].mco_state = "Working".into();
        assert!(matches!(decide(&world, &a, 0), Verdict::Wait(w) if w.reason.contains("m2 (being updated by the MCO)")));
    }

    #[test]
    fn a_wait_names_its_rule_apart_from_the_nodes_in_the_way_and_names_at_most_ten() {
        let none = BTreeSet::new();
        let g = Grouping::default();
        let mut world = World { nodes: (0..30).map(|i| node(&format!("w{i:02}"), "worker")).collect(), leases: Vec::new(), etcd: None };
        let plan: BTreeSet<String> = world.nodes.iter().map(|n| n.name.clone()).collect();
        let me: BTreeSet<String> = ["w00".into()].into();
        let mut a = ask("w00", &g, &me, &none);
        a.plan = &plan;
        a.concurrency = 3;
        world.nodes[1].ready = false;
        world.nodes[2].unschedulable = true;
        world.nodes[3].ready = false;
        let first = match decide(&world, &a, 0) {
            Verdict::Wait(w) => w,
            Verdict::Go => panic!("three unavailable against a concurrency of 3"),
        };
        assert_eq!(first.on, WaitOn::Concurrency);
        // Other nodes in the way, another count: the same rule, other words.
        world.nodes[3].ready = true;
        for n in &mut world.nodes[4..27] {
            n.ready = false;
        }
        let second = match decide(&world, &a, 0) {
            Verdict::Wait(w) => w,
            Verdict::Go => panic!("25 unavailable against a concurrency of 3"),
        };
        assert_eq!(second.on, WaitOn::Concurrency);
        assert_ne!(second.reason, first.reason);
        assert!(second.reason.starts_with("25 unavailable and 0 of this run in flight against a concurrency of 3: w01 (not Ready), "));
        assert!(second.reason.contains("w11 (not Ready)") && !second.reason.contains("w12 ("), "{}", second.reason);
        assert!(second.reason.ends_with(" and 15 more"), "{}", second.reason);
        // The host itself taken by the MCO is another rule.
        world.nodes[0].mco_state = "Working".into();
        assert!(matches!(decide(&world, &a, 0), Verdict::Wait(w) if w.on == WaitOn::Itself(vec![Why::McoUpdating])));
    }
}
