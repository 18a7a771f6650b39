//! The runner's seams besides power delivery over SSH ([`PowerTransport`]): what the cluster
//! API shows of a node ([`NodeEvidence`]), cordon and drain ([`NodeDrain`]) and resets through
//! the nodes' BMCs ([`BmcPower`]). Each is a small object-safe trait, implemented here for the
//! adapter types, so the runner can also run against in-memory fakes (its tests do).
//!
//! [`PowerTransport`]: fleetboot_core::transport::PowerTransport

use std::time::Duration;

use futures::future::BoxFuture;
use tokio::time::Instant;

use crate::adapters::bmc::RedfishPower;
pub use crate::adapters::kube::Patched;
use crate::adapters::kube::world::WorldError;
use crate::adapters::kube::{Drainer, NodeWatch};
use crate::adapters::redfish::RedfishError;
use fleetboot_core::nodes::DrainPolicy;
use fleetboot_core::power::RestartKind;

/// Why the cluster API did not show a node back by the deadline.
#[derive(Clone, Debug, thiserror::Error)]
pub enum EvidenceError {
    /// The deadline passed; `reason` says what the API showed instead.
    #[error("{reason}")]
    NotBack { reason: String },
    /// The API cannot show the node as it is now: its Node watch refused for good, or failing
    /// for good. Not seeing the node back is then no evidence of anything. The adapter's error
    /// kept whole, whatever its type: its words are this error's, and its sources (down to the
    /// API's answer) this error's, so a chain walked says each level once.
    #[error(transparent)]
    Blind(std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>),
}

impl EvidenceError {
    /// [`EvidenceError::Blind`] for the adapter's `error`.
    pub fn blind(error: impl std::error::Error + Send + Sync + 'static) -> EvidenceError {
        EvidenceError::Blind(std::sync::Arc::new(error))
    }
}

/// The cluster API's view of a node: its boot ID, and when it is Ready with a new one.
pub trait NodeEvidence: Send + Sync + 'static {
    /// The node's boot ID as the API shows it now, if it shows one.
    fn boot_id<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Option<String>>;
    /// Waits until the API shows `node` Ready with a boot ID other than `old`, and returns that
    /// boot ID, or why not by `deadline` (monotonic).
    fn wait_back<'a>(&'a self, node: &'a str, old: &'a str, deadline: Instant) -> BoxFuture<'a, Result<String, EvidenceError>>;
    /// Resolves once the API refuses for good to show `node` (its Node watch refused, 403),
    /// with why ([`EvidenceError::Blind`]); never for evidence that cannot be refused.
    fn refusal<'a>(&'a self, node: &'a str) -> BoxFuture<'a, EvidenceError> {
        let _ = node;
        Box::pin(std::future::pending())
    }
    /// The version of `node` the API shows now (its resourceVersion), if it shows the node.
    fn node_version(&self, node: &str) -> Option<String> {
        let _ = node;
        None
    }
    /// Waits until the API shows `node` at a version other than `from` (any change of it: down,
    /// back, a heartbeat), or `deadline`. A change between reading `from` and this call is not
    /// missed.
    fn wait_changed<'a>(&'a self, node: &'a str, from: Option<String>, deadline: Instant) -> BoxFuture<'a, ()> {
        let _ = (node, from);
        Box::pin(tokio::time::sleep_until(deadline))
    }
    /// What the limits read before a node goes down: every node now, the per-node maintenance
    /// Leases, etcd's health. `None`: this evidence has no world to show (the limits are the
    /// run's own alone). `group_by`: the run's grouping rule, to place nodes outside the run.
    fn world<'a>(
        &'a self,
        group_by: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<std::sync::Arc<fleetboot_core::limits::World>>, WorldError>> {
        let _ = group_by;
        Box::pin(async { Ok(None) })
    }
    /// Whether the API shows `node` plainly available now (Ready, schedulable, not being
    /// updated), by the latest it has seen: a look newer than a [`Self::world`] read it answers
    /// ([`fleetboot_core::limits::World::with_nodes_back`]). `false` when it cannot tell.
    fn available_now(&self, node: &str) -> bool {
        let _ = node;
        false
    }
    /// The pods matching a label selector, in every namespace (`--block-on-pods`).
    fn pods_matching<'a>(&'a self, selector: &'a str) -> BoxFuture<'a, Result<Vec<fleetboot_core::batch::PodNow>, String>> {
        let _ = selector;
        Box::pin(async { Ok(Vec::new()) })
    }
    /// Merges labels and annotations into the node's metadata (a value `None` removes it).
    fn mark<'a>(
        &'a self,
        node: &'a str,
        labels: &'a std::collections::BTreeMap<String, Option<String>>,
        annotations: &'a std::collections::BTreeMap<String, Option<String>>,
    ) -> BoxFuture<'a, Result<(), String>> {
        let _ = (node, labels, annotations);
        Box::pin(async { Ok(()) })
    }
    /// What the health gate reads (`exclude`: the run's own nodes in flight). `None`: this
    /// evidence has no cluster to show.
    fn health<'a>(
        &'a self,
        exclude: &'a std::collections::BTreeSet<String>,
    ) -> BoxFuture<'a, Result<Option<fleetboot_core::batch::HealthView>, String>> {
        let _ = exclude;
        Box::pin(async { Ok(None) })
    }
}

/// A cordon, uncordon or eviction that did not go through.
#[derive(Clone, Debug, thiserror::Error)]
pub enum DrainError {
    /// The API refused or could not be reached; `message` names the node and the operation,
    /// `source` is the adapter's error where there is one (the API's answer kept whole).
    #[error("{message}")]
    Api {
        message: String,
        #[source]
        source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>>,
    },
    /// Pods the drain could not move by its timeout (namespace/name), with the API's last
    /// answer to the eviction of those that got one that was not final.
    #[error("pods still on the node: {}", crate::adapters::kube::drain::pods_with_answers(.pods, .answers))]
    PodsLeft { pods: Vec<String>, answers: std::collections::BTreeMap<String, String> },
}

impl DrainError {
    /// The adapter's error, its text as the message and the error itself as the source.
    pub fn api(error: impl std::error::Error + Send + Sync + 'static) -> DrainError {
        DrainError::Api { message: error.to_string(), source: Some(std::sync::Arc::new(error)) }
    }
}

/// A PodDisruptionBudget allowing no disruption (`namespace/name`) and the nodes whose drain
/// it blocks (the drain preflight).
pub type BlockingBudget = (String, Vec<String>);

/// Cordon, drain and uncordon (`--drain`).
pub trait NodeDrain: Send + Sync + 'static {
    fn policy(&self) -> DrainPolicy;
    /// Cordons (`on`) or uncordons the node: the node's resourceVersion the API answered the
    /// patch with (the version it produced), if it said one, and what the uncordon left.
    fn set_unschedulable<'a>(&'a self, node: &'a str, on: bool) -> BoxFuture<'a, Result<Patched, DrainError>>;
    /// Whether the node is unschedulable (cordoned) now, as the API shows it.
    fn is_unschedulable<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<bool, DrainError>>;
    /// Evicts every pod the drain covers until none is left or the policy's timeout: the number
    /// evicted, or [`DrainError::PodsLeft`], or [`DrainError::Api`] when the node's pods could
    /// not even be listed by then (never counted as drained) or the API refused an eviction for
    /// good (a 403: at once, with the API's message).
    fn evict_all<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<usize, DrainError>>;
    /// `--drain-failure force`: deletes the pods eviction could not move; [`DrainError::Api`]
    /// names those the API did not delete (the node is not drained then).
    fn delete_pods<'a>(&'a self, pods: &'a [String]) -> BoxFuture<'a, Result<(), DrainError>>;
    /// The preflight: PodDisruptionBudgets allowing no disruption, each with the nodes of
    /// `nodes` whose drain it blocks.
    fn zero_disruption_budgets<'a>(
        &'a self,
        nodes: &'a std::collections::BTreeSet<String>,
    ) -> BoxFuture<'a, Result<Vec<BlockingBudget>, String>> {
        let _ = nodes;
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// A BMC reset that failed, classified by whether the reset may have happened anyway
/// ([`RedfishError::reset_may_have_happened`], the same answer `fleetboot power` goes by).
#[derive(Debug, thiserror::Error)]
pub enum BmcError {
    /// Failed before the reset request went out (or the BMC refused it): no reset happened.
    #[error(transparent)]
    NotSent(RedfishError),
    /// Failed once the reset request may have reached the BMC (a dropped connection, a 5xx, a
    /// task monitor that failed or vanished, a timeout): the node may be resetting, and counts
    /// as such.
    #[error(transparent)]
    MayHaveReset(RedfishError),
    /// The system is powered off: nothing was sent (a restart would have switched it on).
    #[error(transparent)]
    PoweredOff(RedfishError),
}

impl BmcError {
    pub fn may_have_reset(&self) -> bool {
        matches!(self, BmcError::MayHaveReset(_))
    }
}

/// Power through the nodes' BMCs.
pub trait BmcPower: Send + Sync + 'static {
    /// Whether a BMC is known for this node.
    fn has(&self, node: &str) -> bool;
    /// After a graceful restart through the BMC, a forced one follows this much later.
    fn graceful_timeout(&self) -> Duration;
    /// Restarts the node; returns the Redfish ResetType the BMC accepted.
    fn restart<'a>(&'a self, node: &'a str, kind: RestartKind) -> BoxFuture<'a, Result<String, BmcError>>;
}

/// The Node watch's answer at the deadline as the runner sees it: blind with the watch's error
/// kept (its chain reaches the API's answer), or not back, in words.
fn evidence_error(not_back: crate::adapters::kube::watch::NotBack) -> EvidenceError {
    match not_back {
        blind @ crate::adapters::kube::watch::NotBack::Blind { .. } => EvidenceError::blind(blind),
        other => EvidenceError::NotBack { reason: other.to_string() },
    }
}

impl NodeEvidence for NodeWatch {
    fn boot_id<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Option<String>> {
        Box::pin(NodeWatch::boot_id(self, node))
    }

    fn wait_back<'a>(&'a self, node: &'a str, old: &'a str, deadline: Instant) -> BoxFuture<'a, Result<String, EvidenceError>> {
        Box::pin(async move { NodeWatch::wait_back(self, node, old, deadline).await.map_err(evidence_error) })
    }

    fn refusal<'a>(&'a self, node: &'a str) -> BoxFuture<'a, EvidenceError> {
        Box::pin(async move {
            let blind = crate::adapters::kube::watch::NotBack::Blind { node: node.to_owned(), blind: NodeWatch::refusal(self).await };
            EvidenceError::blind(blind)
        })
    }

    fn node_version(&self, node: &str) -> Option<String> {
        NodeWatch::node_version(self, node)
    }

    fn wait_changed<'a>(&'a self, node: &'a str, from: Option<String>, deadline: Instant) -> BoxFuture<'a, ()> {
        Box::pin(NodeWatch::wait_changed(self, node, from, deadline))
    }

    fn available_now(&self, node: &str) -> bool {
        NodeWatch::available_now(self, node)
    }

    fn world<'a>(
        &'a self,
        group_by: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<std::sync::Arc<fleetboot_core::limits::World>>, WorldError>> {
        Box::pin(async move { NodeWatch::world(self, group_by).await.map(Some) })
    }

    fn pods_matching<'a>(&'a self, selector: &'a str) -> BoxFuture<'a, Result<Vec<fleetboot_core::batch::PodNow>, String>> {
        Box::pin(NodeWatch::pods_matching(self, selector))
    }

    fn mark<'a>(
        &'a self,
        node: &'a str,
        labels: &'a std::collections::BTreeMap<String, Option<String>>,
        annotations: &'a std::collections::BTreeMap<String, Option<String>>,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(NodeWatch::mark(self, node, labels, annotations))
    }

    fn health<'a>(
        &'a self,
        exclude: &'a std::collections::BTreeSet<String>,
    ) -> BoxFuture<'a, Result<Option<fleetboot_core::batch::HealthView>, String>> {
        Box::pin(async move { NodeWatch::health(self, exclude).await.map(Some) })
    }
}

impl NodeDrain for Drainer {
    fn policy(&self) -> DrainPolicy {
        Drainer::policy(self)
    }

    fn set_unschedulable<'a>(&'a self, node: &'a str, on: bool) -> BoxFuture<'a, Result<Patched, DrainError>> {
        Box::pin(async move { Drainer::set_unschedulable(self, node, on).await.map_err(DrainError::api) })
    }

    fn is_unschedulable<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<bool, DrainError>> {
        Box::pin(async move { Drainer::is_unschedulable(self, node).await.map_err(DrainError::api) })
    }

    fn evict_all<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<usize, DrainError>> {
        Box::pin(async move { Drainer::evict_all(self, node).await.map_err(drain_error) })
    }

    fn delete_pods<'a>(&'a self, pods: &'a [String]) -> BoxFuture<'a, Result<(), DrainError>> {
        Box::pin(async move { Drainer::delete_pods(self, pods).await.map_err(DrainError::api) })
    }

    fn zero_disruption_budgets<'a>(
        &'a self,
        nodes: &'a std::collections::BTreeSet<String>,
    ) -> BoxFuture<'a, Result<Vec<BlockingBudget>, String>> {
        Box::pin(Drainer::zero_disruption_budgets(self, nodes))
    }
}

/// A drain's failure as the runner sees it: the pods left, or the adapter's error kept whole as
/// the source (the API's refusal, or the last failed pod list, reaching kube's error below it).
fn drain_error(error: crate::adapters::kube::drain::EvictError) -> DrainError {
    use crate::adapters::kube::drain::EvictError;
    match error {
        EvictError::PodsLeft { pods, answers } => DrainError::PodsLeft { pods, answers },
        // A refusal (403 Forbidden...) fails the host at once with the API's answer; a list that
        // failed until the timeout says how it failed last.
        failed @ (EvictError::Refused { .. } | EvictError::ListRefused { .. } | EvictError::ListFailed { .. }) => DrainError::api(failed),
    }
}

impl BmcPower for RedfishPower {
    fn has(&self, node: &str) -> bool {
        RedfishPower::has(self, node)
    }

    fn graceful_timeout(&self) -> Duration {
        self.graceful_timeout
    }

    fn restart<'a>(&'a self, node: &'a str, kind: RestartKind) -> BoxFuture<'a, Result<String, BmcError>> {
        Box::pin(async move {
            RedfishPower::restart(self, node, kind, false).await.map_err(|e| match e {
                e if e.is_powered_off() => BmcError::PoweredOff(e),
                e if e.reset_may_have_happened() => BmcError::MayHaveReset(e),
                e => BmcError::NotSent(e),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drain_error_from_the_api_keeps_the_apis_answer_as_its_source() {
        use crate::adapters::kube::drain::EvictError;
        let status =
            kube::core::Status { code: 403, reason: "Forbidden".into(), message: "eviction forbidden".into(), ..Default::default() };
        let refused = EvictError::Refused { node: "worker-0".into(), pod: "ns/p".into(), source: kube::Error::Api(Box::new(status)) };
        let error = DrainError::api(refused);
        assert!(error.to_string().contains("eviction forbidden"), "{error}");
        // DrainError → EvictError → kube::Error: the chain reaches the API's own answer.
        let evict = std::error::Error::source(&error).expect("the adapter's error is kept");
        let api = evict.source().expect("the API's answer is kept");
        assert!(matches!(api.downcast_ref::<kube::Error>(), Some(kube::Error::Api(s)) if s.code == 403), "{api:?}");
    }

    /// The node's pods not listed by the drain's timeout (the API answering 503): the runner's
    /// error says so, and the list's own error is below it, down to the API's answer.
    #[test]
    fn a_pod_list_that_failed_until_the_timeout_keeps_the_lists_error_as_the_source() {
        use crate::adapters::kube::drain::EvictError;
        let status = kube::core::Status {
            code: 503,
            reason: "ServiceUnavailable".into(),
            message: "the server is currently unable to handle the request".into(),
            ..Default::default()
        };
        let failed = EvictError::ListFailed { node: "worker-0".into(), source: kube::Error::Api(Box::new(status)) };
        let error = drain_error(failed);
        assert_eq!(
            error.to_string(),
            "could not list the pods of node worker-0 within the drain timeout: \
             the server is currently unable to handle the request (503 ServiceUnavailable)"
        );
        // DrainError → EvictError → kube::Error.
        let evict = std::error::Error::source(&error).expect("the drain's error is kept");
        let api = evict.source().expect("the list's error is kept");
        assert!(matches!(api.downcast_ref::<kube::Error>(), Some(kube::Error::Api(s)) if s.code == 503), "{api:?}");
    }

    /// A node the refused Node watch cannot show back: the runner's error says what the watch's
    /// said, each level of its chain once, and the API's 403 is below it.
    #[test]
    fn a_node_not_seen_back_under_a_refused_watch_keeps_the_apis_answer_below() {
        use crate::adapters::kube::watch::NotBack;
        use crate::adapters::kube::world::WorldError;
        use std::error::Error;
        let status =
            kube::core::Status { code: 403, reason: "Forbidden".into(), message: "nodes is forbidden".into(), ..Default::default() };
        let refused = WorldError::of_read("watch the Nodes", kube::Error::Api(Box::new(status)));
        let not_back = NotBack::Blind { node: "worker-0".into(), blind: refused };
        let words = not_back.to_string();
        let error = evidence_error(not_back);
        assert!(matches!(error, EvidenceError::Blind(_)), "{error:?}");
        assert_eq!(error.to_string(), words, "the watch's own words");
        let top: &(dyn Error + 'static) = &error;
        let chain: Vec<&dyn Error> = std::iter::successors(Some(top), |&e| e.source()).collect();
        let said: Vec<String> = chain.iter().map(ToString::to_string).collect();
        assert!(said.windows(2).all(|pair| pair[0] != pair[1]), "a level said twice: {said:#?}");
        // kube's error, as WorldError keeps it (in an Arc: the watch's refusal is shared).
        let api = chain.iter().find_map(|e| {
            e.downcast_ref::<kube::Error>().or_else(|| e.downcast_ref::<std::sync::Arc<kube::Error>>().map(|shared| &**shared))
        });
        assert!(matches!(api, Some(kube::Error::Api(s)) if s.code == 403 && s.message == "nodes is forbidden"), "{said:#?}");
    }
}
