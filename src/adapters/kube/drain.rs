//! Cordon, drain through the Eviction API, uncordon.

use fleetboot_core::nodes::{DrainFailure, DrainPolicy};
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, ListParams};
use serde_json::Value;

use super::answer_words as refusal;

/// Cordon and drain through the Eviction API (PodDisruptionBudgets respected; DaemonSet and
/// mirror pods left alone, as `kubectl drain` does), and uncordon once the node is back.
pub struct Drainer {
    client: Client,
    /// The evictions' client: no retry of its own ([`super::ClusterConnection::evictions`]), so
    /// a budget's 429 comes back at once and is asked again after [`EVICT_RETRY_PAUSE`].
    evictions: Client,
    pub timeout: std::time::Duration,
    pub on_failure: DrainFailure,
    /// `--drain-pod-selector`: only the pods matching it are evicted (kured's partial drain).
    /// Beside the policy, which is `Copy` and journaled on its own; the selector is journaled
    /// with the batch settings.
    pub pod_selector: Option<String>,
}

/// Whether `kubectl drain` would leave this pod alone. Pure.
fn drain_skips(pod: &k8s_openapi::api::core::v1::Pod) -> bool {
    let daemonset = pod.metadata.owner_references.as_ref().is_some_and(|o| o.iter().any(|r| r.kind == "DaemonSet"));
    let mirror = pod.metadata.annotations.as_ref().is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
    let finished = pod.status.as_ref().and_then(|s| s.phase.as_deref()).is_some_and(|p| p == "Succeeded" || p == "Failed");
    daemonset || mirror || finished
}

/// Why a drain did not finish.
#[derive(Debug, thiserror::Error)]
pub enum EvictError {
    /// Pods still on the node at the timeout (namespace/name), and the API's last answer to
    /// the eviction of those that got one that was not final (a budget's 429, a 5xx).
    #[error("pods still on the node: {}", pods_with_answers(.pods, .answers))]
    PodsLeft { pods: Vec<String>, answers: std::collections::BTreeMap<String, String> },
    /// The node's pods could not be listed by the timeout: nothing is known drained. The last
    /// list's error kept whole, as the source.
    #[error("could not list the pods of node {node} within the drain timeout: {}", refusal(.source))]
    ListFailed {
        node: String,
        #[source]
        source: kube::Error,
    },
    /// The API refused to list the node's pods for good (403 Forbidden): nothing is known
    /// drained, and asking again until the timeout would only hide its answer.
    #[error("the API refused to list the pods of node {node}: {}", refusal(.source))]
    ListRefused {
        node: String,
        #[source]
        source: kube::Error,
    },
    /// The API refused an eviction for good (403 Forbidden, any 4xx but a budget's 429 and a
    /// conflict): retrying until the timeout would only hide its answer.
    #[error("the API refused to evict pod {pod} from node {node}: {}", refusal(.source))]
    Refused {
        node: String,
        /// namespace/name
        pod: String,
        #[source]
        source: kube::Error,
    },
}

/// `ns/a (the last eviction's answer: …), ns/b`: each pod left, with the API's last answer to
/// its eviction where there was one. Pure.
pub fn pods_with_answers(pods: &[String], answers: &std::collections::BTreeMap<String, String>) -> String {
    let described: Vec<String> = pods
        .iter()
        .map(|pod| match answers.get(pod) {
            Some(answer) => format!("{pod} (the last eviction's answer: {answer})"),
            None => pod.clone(),
        })
        .collect();
    described.join(", ")
}

/// Whether an eviction's (or the pod list's, or a forced deletion's) error is the API's final
/// answer. Retried: 429 (a PodDisruptionBudget, or the API's rate limit), 404 (the pod already
/// gone: the next list shows it), 408 and 409 (a timeout, a conflict), every 5xx, errors
/// without an answer (a connection, a timeout), and the 403 an eviction gets in a namespace
/// being deleted (cause `NamespaceTerminating`: the namespace's deletion removes the pod, and
/// `kubectl drain` waits for it, k8s.io/kubectl release-1.33 pkg/drain/drain.go `evictPods`).
/// Any other 4xx (403 Forbidden above all) is not: the same request gets the same answer
/// (`kubectl drain` stops on it too).
fn refused_for_good(error: &kube::Error) -> bool {
    let kube::Error::Api(status) = error else { return false };
    let namespace_terminating =
        status.code == 403 && status.details.as_ref().is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating"));
    (400..500).contains(&status.code) && !matches!(status.code, 404 | 408 | 409 | 429) && !namespace_terminating
}

/// How often a forced deletion is tried when the API's answer is not final (a 429, a 5xx, no
/// answer), and the pause between tries.
const DELETE_TRIES: u32 = 3;
const DELETE_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);

/// How often a drain reads the node's pods again while it waits for evicted pods to go, and how
/// long it waits before evicting a pod again after an answer that was not final (a budget's
/// 429, a 5xx, none): `kubectl drain`'s own cadence (k8s.io/kubectl release-1.33
/// pkg/drain/drain.go: `waitForDelete` polls every second, `evictPods` sleeps
/// `EvictErrorRetryDelay` after a 429, which pkg/cmd/drain/drain.go sets to 5 s), or longer
/// when the answer asks for it (`retryAfterSeconds`). A thousand nodes draining at once thus
/// cost a thousand pod lists a second, not two thousand. The evictions go through a client
/// that does not retry by itself: kube's default one asked a budget's 429 again up to 15
/// times, from 5 ms apart, on top of this pause (10 evictions per node at 200 nodes, where
/// this cadence makes 1.8).
const DRAIN_POLL: std::time::Duration = std::time::Duration::from_secs(1);
const EVICT_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_secs(5);

/// How long before a pod whose eviction got `error` is evicted again: [`EVICT_RETRY_PAUSE`], or
/// the answer's own `retryAfterSeconds` when it asks for longer.
fn retry_pause(error: &kube::Error) -> std::time::Duration {
    let asked = match error {
        kube::Error::Api(status) => status.details.as_ref().map_or(0, |d| d.retry_after_seconds),
        _ => 0,
    };
    EVICT_RETRY_PAUSE.max(std::time::Duration::from_secs(asked.into()))
}

/// Pods a forced drain could not delete (namespace/name), each with the API's error.
#[derive(Debug, thiserror::Error)]
#[error("could not delete {}", .failed.iter().map(|(pod, e)| format!("pod {pod}: {e}")).collect::<Vec<_>>().join("; "))]
pub struct DeletePodsError {
    pub failed: Vec<(String, kube::Error)>,
}

/// How often an uncordon reads the node again after a conflict no lost answer of its own can
/// have caused (client-go's `retry.DefaultRetry`: 5 steps).
const UNCORDON_CONFLICTS: u32 = 5;

/// Whether the node is cordoned. Pure.
fn cordoned(node: &Node) -> bool {
    node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false)
}

/// A cordon or uncordon the API took.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Patched {
    /// The node's resourceVersion the API answered with (the version the patch produced), or,
    /// when nothing was sent (the node found not cordoned) or the cordon was left, the version
    /// read (`None` when it could not be read).
    pub version: Option<String>,
    /// An uncordon that found the node cordoned again after its own answer was lost (or could
    /// not find out), and left that cordon as someone else's: why, to be told. Never set by a
    /// cordon.
    pub left_cordoned: Option<String>,
}

impl Patched {
    fn at(version: Option<String>) -> Patched {
        Patched { version, left_cordoned: None }
    }
}

/// How often an uncordon answered 429, 503 or 504 is sent again (on the same version).
const UNCORDON_UNANSWERED: u32 = 10;

/// What an uncordon whose answer was lost says when it cannot find out what became of it. Pure.
fn unknown_after_lost(node: &str) -> String {
    format!(
        "node {node}: fleetboot's uncordon of it went unanswered and the node could not be read since: \
         it may still be cordoned, and is left to you (`oc adm uncordon {node}` if the cordon is fleetboot's)"
    )
}

/// What an uncordon whose answer was lost says when it finds the node cordoned again. Pure.
fn cordoned_in_between(node: &str) -> String {
    format!(
        "node {node} is cordoned, and changed while fleetboot's uncordon of it went unanswered (its connection broke): \
         the cordon is taken as someone else's and left; if it is fleetboot's, lift it with `oc adm uncordon {node}`"
    )
}

/// A cordon or uncordon the API did not take.
#[derive(Debug, thiserror::Error)]
#[error("failed to {} node {node}: {source}", if *cordon { "cordon" } else { "uncordon" })]
pub struct CordonError {
    pub node: String,
    pub cordon: bool,
    #[source]
    pub source: kube::Error,
}

impl Drainer {
    pub fn new(connection: &super::ClusterConnection, policy: DrainPolicy) -> Drainer {
        Drainer {
            client: connection.client.clone(),
            evictions: connection.evictions.clone(),
            timeout: std::time::Duration::from_millis(policy.timeout_ms),
            on_failure: policy.on_failure,
            pod_selector: None,
        }
    }

    /// Evicts only the pods matching `selector` (`None`: every pod the drain covers).
    pub fn only_pods(self, selector: Option<String>) -> Drainer {
        Drainer { pod_selector: selector, ..self }
    }

    pub fn policy(&self) -> DrainPolicy {
        DrainPolicy { timeout_ms: self.timeout.as_millis() as u64, on_failure: self.on_failure }
    }

    /// Cordons (or uncordons) the node; returns the node's resourceVersion in the API's answer:
    /// the version this patch produced, which tells when the Node watch has caught up with it.
    /// The cordon's merge patch sets one value, so sending it again after a broken connection
    /// changes nothing the first one did not: it is sent again under the reads' own resend
    /// rule ([`super::resend::ResendBrokenReads`]), rather than fail the node on a connection
    /// the API dropped. The uncordon is sent again only on the version it was based on
    /// ([`Drainer::uncordon`]).
    pub async fn set_unschedulable(&self, node: &str, on: bool) -> Result<Patched, CordonError> {
        use kube::api::{Patch, PatchParams};
        if !on {
            return self.uncordon(node).await;
        }
        let patch = Patch::Merge(serde_json::json!({"spec": {"unschedulable": true}}));
        let mut resends = super::resend::ResendBrokenReads::default();
        loop {
            match Api::<Node>::all(self.client.clone()).patch(node, &PatchParams::default(), &patch).await {
                Ok(patched) => return Ok(Patched::at(patched.metadata.resource_version)),
                Err(source) => match resends.pause_after(&source) {
                    Some(pause) => pause.await,
                    None => return Err(CordonError { node: node.to_owned(), cordon: on, source }),
                },
            }
        }
    }

    /// Lifts the node's cordon on the version of the node it read (the patch names that
    /// resourceVersion: a precondition, 409 Conflict if the node changed since). An uncordon
    /// whose connection broke may have landed: sent again blindly, it would lift a cordon
    /// someone else (an admin, another tool) set in between. Sent again on the same version,
    /// it lifts nothing if anything changed; the node is then read again and a cordon found
    /// there is left (with a warning naming the node). That a conflict after a lost answer
    /// cannot tell another's cordon from fleetboot's own (its uncordon never landed and the
    /// kubelet wrote the node's status in between) is why it leaves the cordon: a cordon left
    /// costs a node's capacity until someone looks; an admin's cordon lifted puts workloads
    /// on a node under maintenance. A conflict with no lost answer before it (the node's status
    /// written between the read and the patch) reads the node again and tries again, as
    /// client-go's `retry.RetryOnConflict` does (k8s.io/client-go release-1.33
    /// `util/retry/util.go`, `DefaultRetry`: 5 steps).
    async fn uncordon(&self, node: &str) -> Result<Patched, CordonError> {
        use kube::api::{Patch, PatchParams};
        let reads = Api::<Node>::all(self.client.clone());
        // The patch goes through the client without kube's own retry: kube resends a 504 (the
        // API server's timeout while the write goes on) by itself, and the conflict of that
        // resend would come back here looking like a plain one.
        let writes = Api::<Node>::all(self.evictions.clone());
        let failed = |source| CordonError { node: node.to_owned(), cordon: false, source };
        let mut resends = super::resend::ResendBrokenReads::default();
        let mut unanswered = UNCORDON_UNANSWERED;
        let mut conflicts = 0;
        // Whether a try got no answer it can be judged by: it may have landed. Once true, a
        // cordon found later is someone else's, and a failure to find out leaves it.
        let mut lost = false;
        loop {
            let read = match reads.get(node).await {
                Ok(read) => read,
                Err(_) if lost => return Ok(Patched { version: None, left_cordoned: Some(unknown_after_lost(node)) }),
                Err(source) => return Err(failed(source)),
            };
            if !cordoned(&read) {
                // Lifted already (by this uncordon's lost try, or by whoever): nothing to send.
                return Ok(Patched::at(read.metadata.resource_version));
            }
            if lost {
                return Ok(Patched { version: read.metadata.resource_version, left_cordoned: Some(cordoned_in_between(node)) });
            }
            let patch = Patch::Merge(serde_json::json!({
                "metadata": {"resourceVersion": read.metadata.resource_version},
                "spec": {"unschedulable": Value::Null},
            }));
            loop {
                match writes.patch(node, &PatchParams::default(), &patch).await {
                    Ok(patched) => return Ok(Patched::at(patched.metadata.resource_version)),
                    // The node changed since the read: read again (above) and judge.
                    Err(kube::Error::Api(status)) if status.code == 409 && (lost || conflicts < UNCORDON_CONFLICTS) => {
                        conflicts += 1;
                        break;
                    }
                    // Refused before it was carried out (API Priority and Fairness, the API
                    // server going down): sent again on the same version.
                    Err(kube::Error::Api(status)) if matches!(status.code, 429 | 503) && unanswered > 0 => {
                        unanswered -= 1;
                        tokio::time::sleep(super::resend::RESEND_PAUSE).await;
                    }
                    // The API server's timeout (its timeout filter answers 504 while the write
                    // goes on): it may have been carried out all the same. (A 500 is a failure
                    // to carry it out: the caller tries again later, on a fresh read.)
                    Err(kube::Error::Api(status)) if status.code == 504 && unanswered > 0 => {
                        unanswered -= 1;
                        lost = true;
                        tokio::time::sleep(super::resend::RESEND_PAUSE).await;
                    }
                    Err(source) => match resends.pause_after(&source) {
                        Some(pause) => {
                            lost = true;
                            pause.await;
                        }
                        None if lost => return Ok(Patched { version: None, left_cordoned: Some(unknown_after_lost(node)) }),
                        None => return Err(failed(source)),
                    },
                }
            }
        }
    }

    /// Whether the node is cordoned now.
    pub async fn is_unschedulable(&self, node: &str) -> Result<bool, CordonError> {
        let node_object = Api::<Node>::all(self.client.clone()).get(node).await.map_err(|source| CordonError {
            node: node.to_owned(),
            cordon: true,
            source,
        })?;
        Ok(cordoned(&node_object))
    }

    /// Evicts every pod the drain covers, retrying those a PodDisruptionBudget protects,
    /// until none is left or the timeout. Returns how many were evicted, or the pods left. A
    /// pod list that fails is tried again until the timeout: pods not seen are not gone. An
    /// eviction ([`EvictError::Refused`]) or a pod list the API refuses for good ends the
    /// drain at once.
    pub async fn evict_all(&self, node: &str) -> Result<usize, EvictError> {
        use k8s_openapi::api::core::v1::Pod;
        use kube::api::EvictParams;
        let pods_api: Api<Pod> = Api::all(self.client.clone());
        let deadline = crate::adapters::system::deadline_after(self.timeout);
        let mut evicted = 0;
        // Pods whose eviction got an answer that was not final: when to try each again, and the
        // API's last such answer to it, said if the pod is still there at the timeout.
        let mut not_final: std::collections::HashMap<String, (tokio::time::Instant, String)> = std::collections::HashMap::new();
        loop {
            let mut params = ListParams::default().fields(&format!("spec.nodeName={node}"));
            if let Some(selector) = &self.pod_selector {
                params = params.labels(selector);
            }
            let listed = pods_api.list(&params).await;
            let pending: Vec<Pod> = match listed {
                Ok(list) => list.items.into_iter().filter(|p| !drain_skips(p)).collect(),
                // The API's final answer (403 Forbidden): asking again until the timeout would
                // only hide it.
                Err(source) if refused_for_good(&source) => return Err(EvictError::ListRefused { node: node.to_owned(), source }),
                Err(source) if tokio::time::Instant::now() >= deadline => {
                    return Err(EvictError::ListFailed { node: node.to_owned(), source });
                }
                Err(_) => {
                    tokio::time::sleep(DRAIN_POLL).await;
                    continue;
                }
            };
            if pending.is_empty() {
                return Ok(evicted);
            }
            // The pods this pass evicted: gone, whatever the deadline says of the rest.
            let mut gone = std::collections::HashSet::new();
            // Every pod's eviction at once, as `kubectl drain` runs one goroutine per pod: a pod
            // a budget protects does not hold back the others' evictions.
            let mut evictions: futures::stream::FuturesUnordered<_> = pending
                .iter()
                .filter_map(|pod| {
                    let (Some(ns), Some(name)) = (pod.metadata.namespace.as_deref(), pod.metadata.name.as_deref()) else { return None };
                    // Being deleted already (evicted, its grace period running): waited for, not
                    // evicted again, as `kubectl drain` waits for it.
                    if pod.metadata.deletion_timestamp.is_some() {
                        return None;
                    }
                    let key = format!("{ns}/{name}");
                    if not_final.get(&key).is_some_and(|(at, _)| tokio::time::Instant::now() < *at) {
                        return None;
                    }
                    let api = Api::<Pod>::namespaced(self.evictions.clone(), ns);
                    // Each attempt is bounded by the drain's own deadline.
                    let remaining =
                        deadline.saturating_duration_since(tokio::time::Instant::now()).max(std::time::Duration::from_millis(100));
                    Some(async move {
                        let answer = tokio::time::timeout(remaining, api.evict(name, &EvictParams::default())).await;
                        (key, answer)
                    })
                })
                .collect();
            while let Some((key, answer)) = futures::StreamExt::next(&mut evictions).await {
                match answer {
                    Ok(Ok(_)) => {
                        evicted += 1;
                        not_final.remove(&key);
                        gone.insert(key);
                    }
                    Ok(Err(source)) if refused_for_good(&source) => {
                        return Err(EvictError::Refused { node: node.to_owned(), pod: key, source });
                    }
                    // A budget's 429, a 5xx, no answer: tried again after a pause.
                    Ok(Err(source)) => {
                        not_final.insert(key, (tokio::time::Instant::now() + retry_pause(&source), refusal(&source)));
                    }
                    Err(_) => {
                        let timeout = humantime::format_duration(self.timeout);
                        let answer = format!("none before the drain timeout ({timeout})");
                        not_final.insert(key, (tokio::time::Instant::now() + EVICT_RETRY_PAUSE, answer));
                    }
                }
            }
            drop(evictions);
            if tokio::time::Instant::now() >= deadline {
                let pods: Vec<String> = pending
                    .iter()
                    .map(|p| {
                        format!(
                            "{}/{}",
                            p.metadata.namespace.as_deref().unwrap_or_default(),
                            p.metadata.name.as_deref().unwrap_or_default()
                        )
                    })
                    .filter(|pod| !gone.contains(pod))
                    .collect();
                let answers = pods.iter().filter_map(|pod| Some((pod.clone(), not_final.remove(pod)?.1))).collect();
                return Err(EvictError::PodsLeft { pods, answers });
            }
            tokio::time::sleep(DRAIN_POLL.min(deadline.saturating_duration_since(tokio::time::Instant::now()))).await;
        }
    }

    /// The PodDisruptionBudgets that allow no disruption now, each with the nodes of `nodes`
    /// whose drain it will block (a pod it covers runs there).
    pub async fn zero_disruption_budgets(&self, nodes: &std::collections::BTreeSet<String>) -> Result<Vec<(String, Vec<String>)>, String> {
        budgets_blocking(&self.client, nodes, self.pod_selector.as_deref()).await
    }

    /// `--drain-failure force`: deletes the pods eviction could not move. Every pod is tried,
    /// an answer that is not final ([`refused_for_good`]) up to [`DELETE_TRIES`] times; those
    /// the API did not delete are returned (a pod already gone is deleted).
    pub async fn delete_pods(&self, pods: &[String]) -> Result<(), DeletePodsError> {
        use k8s_openapi::api::core::v1::Pod;
        let mut failed = Vec::new();
        for pod in pods {
            let Some((ns, name)) = pod.split_once('/') else { continue };
            let api = Api::<Pod>::namespaced(self.client.clone(), ns);
            let mut tries = 0;
            loop {
                tries += 1;
                match api.delete(name, &Default::default()).await {
                    Ok(_) => break,
                    Err(kube::Error::Api(status)) if status.code == 404 => break,
                    Err(e) if tries < DELETE_TRIES && !refused_for_good(&e) => tokio::time::sleep(DELETE_RETRY_PAUSE).await,
                    Err(e) => {
                        failed.push((pod.clone(), e));
                        break;
                    }
                }
            }
        }
        if failed.is_empty() { Ok(()) } else { Err(DeletePodsError { failed }) }
    }
}

/// Every PodDisruptionBudget that allows no disruption now (`status.disruptionsAllowed` 0),
/// with the nodes of `nodes` that run a pod it covers (a drain there waits on it), sorted.
/// `drained`: `--drain-pod-selector` (only the pods it matches are evicted, so only those count).
async fn budgets_blocking(
    client: &Client,
    nodes: &std::collections::BTreeSet<String>,
    drained: Option<&str>,
) -> Result<Vec<(String, Vec<String>)>, String> {
    let budgets = Api::<k8s_openapi::api::policy::v1::PodDisruptionBudget>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("cannot list the PodDisruptionBudgets: {e}"))?;
    let mut out = Vec::new();
    for budget in budgets.items {
        if budget.status.as_ref().map(|s| s.disruptions_allowed) != Some(0) {
            continue;
        }
        let ns = budget.metadata.namespace.clone().unwrap_or_default();
        let name = format!("{ns}/{}", budget.metadata.name.clone().unwrap_or_default());
        // policy/v1: a null selector matches no pods, an empty one ({}) every pod of the
        // namespace (kubernetes staging/src/k8s.io/api/policy/v1/types.go,
        // PodDisruptionBudgetSpec.Selector; the disruption controller's getPodsForPdb in
        // pkg/controller/disruption/disruption.go goes through metav1.LabelSelectorAsSelector,
        // nil -> labels.Nothing(), empty -> labels.Everything()).
        let Some(selector) = budget.spec.as_ref().and_then(|s| s.selector.as_ref()).map(selector_text) else { continue };
        let selector = match drained {
            Some(drained) if selector.is_empty() => drained.to_owned(),
            Some(drained) => format!("{selector},{drained}"),
            None => selector,
        };
        let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), &ns)
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| format!("cannot list the pods of PodDisruptionBudget {name}: {e}"))?;
        let blocked: Vec<String> = pods
            .items
            .iter()
            .filter(|p| !drain_skips(p))
            .filter_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
            .filter(|n| nodes.contains(n))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if !blocked.is_empty() {
            out.push((name, blocked));
        }
    }
    out.sort();
    Ok(out)
}

/// A budget's selector as a label selector string (`matchLabels` and `matchExpressions`).
fn selector_text(selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector) -> String {
    let mut parts: Vec<String> = selector.match_labels.iter().flatten().map(|(k, v)| format!("{k}={v}")).collect();
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::kube::resend::ClientOptions;
    use crate::adapters::kube::test_server::{Answer, TestServer};

    fn api_error(code: u16, reason: &str) -> kube::Error {
        let status = kube::core::Status { code, reason: reason.into(), message: format!("the API says {code}"), ..Default::default() };
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn an_eviction_is_refused_for_good_only_on_a_final_4xx() {
        for code in [400, 401, 403, 405, 422] {
            assert!(refused_for_good(&api_error(code, "Forbidden")), "{code}");
        }
        // A budget's 429, the pod already gone, a timeout, a conflict, any 5xx: tried again.
        for code in [404, 408, 409, 429, 500, 503, 504] {
            assert!(!refused_for_good(&api_error(code, "TooManyRequests")), "{code}");
        }
        // A namespace being deleted answers an eviction 403 with this cause: its deletion
        // removes the pod, so the drain waits for it.
        // (The body the API server sends, as kube reads it.)
        let terminating: kube::core::Status = serde_json::from_value(serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 403, "reason": "Forbidden",
            "message": "pods \"p\" is forbidden: unable to create new content in namespace ns because it is being terminated",
            "details": {"name": "p", "kind": "pods", "causes": [{"reason": "NamespaceTerminating", "message": "namespace ns is being terminated", "field": "metadata.namespace"}]},
        }))
        .unwrap();
        assert!(!refused_for_good(&kube::Error::Api(Box::new(terminating))));
        let refused = EvictError::Refused { node: "worker-0".into(), pod: "ns/p".into(), source: api_error(403, "Forbidden") };
        assert_eq!(refused.to_string(), "the API refused to evict pod ns/p from node worker-0: the API says 403 (403 Forbidden)");
    }

    /// A Node on a loopback API server that carries out the merge patches of one node as the
    /// API server does (a `metadata.resourceVersion` in the patch is a precondition: 409 if it
    /// is not the node's), with one fault.
    #[derive(Clone)]
    struct FakeNode {
        version: u64,
        unschedulable: bool,
        reads: u32,
        patches: u32,
        fault: Fault,
    }

    #[derive(Clone, Copy)]
    enum Fault {
        /// The first patch is carried out and its connection closed unanswered, after
        /// another actor's write (this function) on the node.
        LoseFirstPatch(fn(&mut FakeNode)),
        /// The first patch is carried out and answered 504 (the API server's timeout while the
        /// write goes on), after another actor's write (this function) on the node.
        TimeOutFirstPatch(fn(&mut FakeNode)),
        /// Someone writes the node (its status) right after the first read.
        WriteAfterFirstRead,
    }

    impl FakeNode {
        fn json(&self) -> Value {
            let mut node = serde_json::json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": "worker-0", "resourceVersion": self.version.to_string()}, "spec": {}});
            if self.unschedulable {
                node["spec"]["unschedulable"] = serde_json::json!(true);
            }
            node
        }

        /// The answer to a request (status and body), or `None`: the connection is closed.
        fn answer(&mut self, method: &str, body: &[u8]) -> Option<(u16, Value)> {
            if method == "GET" {
                self.reads += 1;
                let answer = self.json();
                if self.reads == 1 && matches!(self.fault, Fault::WriteAfterFirstRead) {
                    self.version += 1;
                }
                return Some((200, answer));
            }
            self.patches += 1;
            let patch: Value = serde_json::from_slice(body).unwrap();
            if let Some(wanted) = patch.pointer("/metadata/resourceVersion").and_then(Value::as_str)
                && wanted != self.version.to_string()
            {
                let message = "Operation cannot be fulfilled on nodes \"worker-0\": the object has been modified; please apply your changes to the latest version and try again";
                let status = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": message, "reason": "Conflict", "code": 409});
                return Some((409, status));
            }
            self.unschedulable = patch["spec"]["unschedulable"] == serde_json::json!(true);
            self.version += 1;
            if let (Fault::LoseFirstPatch(in_between), 1) = (self.fault, self.patches) {
                in_between(self);
                return None;
            }
            if let (Fault::TimeOutFirstPatch(in_between), 1) = (self.fault, self.patches) {
                in_between(self);
                let status = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": "Timeout: request did not complete within requested timeout", "reason": "Timeout", "code": 504});
                return Some((504, status));
            }
            Some((200, self.json()))
        }
    }

    /// Serves `node` on loopback.
    async fn serve(node: std::sync::Arc<std::sync::Mutex<FakeNode>>) -> TestServer {
        TestServer::answering(move |request| match node.lock().unwrap().answer(&request.method, &request.body) {
            Some((status, answer)) => Answer::json(status, answer.to_string()),
            None => Answer::Close,
        })
        .await
    }

    /// Uncordons worker-0, cordoned at version 7, under `fault`: what `set_unschedulable`
    /// returned and the node after it.
    async fn uncordon_on(fault: Fault) -> (Result<Patched, CordonError>, FakeNode) {
        let node = FakeNode { version: 7, unschedulable: true, reads: 0, patches: 0, fault };
        let node = std::sync::Arc::new(std::sync::Mutex::new(node));
        let server = serve(node.clone()).await;
        let config = server.config();
        let limit = crate::adapters::kube::resend::in_flight_limit();
        let drainer = Drainer {
            client: crate::adapters::kube::resend::client(config.clone(), &limit, ClientOptions::RETRYING).unwrap(),
            evictions: crate::adapters::kube::resend::client(config, &limit, ClientOptions::WITHOUT_RETRY).unwrap(),
            timeout: std::time::Duration::from_secs(1),
            on_failure: DrainFailure::Fail,
            pod_selector: None,
        };
        let answer = drainer.set_unschedulable("worker-0", false).await;
        let after = node.lock().unwrap().clone();
        (answer, after)
    }

    /// An admin (or another tool) cordons the node: a write of its own, a new version.
    fn another_actor_cordons(node: &mut FakeNode) {
        node.unschedulable = true;
        node.version += 1;
    }

    #[tokio::test]
    async fn an_uncordon_resent_after_a_broken_connection_leaves_a_cordon_set_in_between() {
        // The uncordon lands, its connection breaks unanswered, and an admin cordons the node
        // before fleetboot sends it again: the admin's cordon stays.
        let (answer, node) = uncordon_on(Fault::LoseFirstPatch(another_actor_cordons)).await;
        assert!(node.unschedulable, "the cordon set in between was lifted");
        let answer = answer.unwrap();
        assert_eq!(answer.version, Some("9".to_owned()), "the version read after the conflict");
        assert_eq!((node.version, node.patches), (9, 2), "sent again once, on the first read's version, and refused");
        let told = answer.left_cordoned.expect("the cordon left is told");
        assert!(told.starts_with("node worker-0 is cordoned"), "{told}");
    }

    #[tokio::test]
    async fn an_uncordon_answered_504_leaves_a_cordon_set_before_it_is_sent_again() {
        // kube's own retry would resend the 504 by itself and hand back the conflict as a plain
        // one (read again, lifted on the new version): the admin's cordon would go.
        let (answer, node) = uncordon_on(Fault::TimeOutFirstPatch(another_actor_cordons)).await;
        assert!(node.unschedulable, "the cordon set in between was lifted");
        assert_eq!((node.version, node.patches), (9, 2), "sent again once, on the first read's version, and refused");
        assert!(answer.unwrap().left_cordoned.is_some_and(|told| told.starts_with("node worker-0 is cordoned")));
    }

    #[tokio::test]
    async fn an_uncordon_whose_answer_was_lost_is_done_when_it_landed_and_nobody_cordoned_again() {
        let (answer, node) = uncordon_on(Fault::LoseFirstPatch(|_| {})).await;
        assert_eq!(answer.unwrap(), Patched { version: Some("8".to_owned()), left_cordoned: None });
        assert!(!node.unschedulable);
        assert_eq!((node.version, node.patches), (8, 2));
    }

    #[tokio::test]
    async fn an_uncordon_on_a_node_changed_since_its_read_reads_it_again_and_lifts_the_cordon() {
        // No lost answer: the kubelet wrote the node's status between fleetboot's read and its
        // patch (the version moved, the cordon is fleetboot's still): 409, read again, lifted.
        let (answer, node) = uncordon_on(Fault::WriteAfterFirstRead).await;
        assert_eq!(answer.unwrap(), Patched { version: Some("9".to_owned()), left_cordoned: None });
        assert!(!node.unschedulable);
        assert_eq!((node.version, node.patches), (9, 2));
    }
}
