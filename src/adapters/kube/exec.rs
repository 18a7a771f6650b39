//! The `kube` power transport: commands run on a node through the cluster API, by `pods/exec`
//! (WebSocket, `v5.channel.k8s.io` / `v4.channel.k8s.io` through kube's `ws` feature) into the
//! machine-config daemon's pod on that node, under `chroot /rootfs`: what the OpenShift
//! migration documents do (`oc rsh -n openshift-machine-config-operator <pod> chroot /rootfs
//! shutdown -r +1`). No SSH key is needed; the API's RBAC decides (`create pods/exec` in
//! `openshift-machine-config-operator`, `list pods` there).
//!
//! Delivery is judged as for SSH: a refusal before the stream opened (403, the pod not found,
//! the kubelet not reachable) sent nothing; a stream that ended without an exit status after
//! the command started may have delivered it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleetboot_core::hosts::Host;
use fleetboot_core::journal::{DebugPodRef, Delivery, Entry};
use fleetboot_core::transport::{JournalHook, PowerTransport, TransportError, parse_boot_id};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, AttachParams, ListParams};
use tokio::io::AsyncReadExt;

use super::debug_pod;
use crate::adapters::config::RebootSettings;

/// Where the machine-config daemon runs (machine-config-operator,
/// `manifests/machineconfigdaemon/daemonset.yaml`): its namespace, its pods' label, its
/// container, and where that container sees the host's `/`.
pub const DAEMON_NAMESPACE: &str = "openshift-machine-config-operator";
pub const DAEMON_SELECTOR: &str = "k8s-app=machine-config-daemon";
pub const DAEMON_CONTAINER: &str = "machine-config-daemon";
pub const HOST_ROOT: &str = "/rootfs";

/// The SSH transport's default reboot command; through the API it becomes the documents'
/// `shutdown -r +1` (cancelable with `shutdown -c` for the first minute).
const SSH_DEFAULT_REBOOT: &str = "sudo shutdown -r -t 3";
pub const KUBE_DEFAULT_REBOOT: &str = "shutdown -r +1";

/// What one exec gave back.
#[derive(Debug)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// None: the stream ended without an exit status (dropped after the command started).
    pub exit: Option<u32>,
    /// The command did not finish within the limit (it may still take effect).
    pub timed_out: bool,
    /// The stream was open (the command may have started) and ended with a `Failure` status
    /// carrying no exit code: from Kubernetes 1.30 the API server opens the client's stream
    /// before it reaches the kubelet, so a failure after that (the kubelet's stream broken, the
    /// node going down) comes as such a status, not as a cut connection.
    pub failure: Option<String>,
}

/// How an exec failed before its stream opened (nothing ran), the API's error kept as the
/// source.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// HTTP 401: the credentials were not accepted.
    #[error("the cluster API did not accept the credentials for exec on {node}: {}", api_message(.source))]
    Unauthorized { node: String, source: kube::Error },
    /// HTTP 403: the API's authorization refused the list or the exec.
    #[error("the cluster API refused exec on {node}: {}", api_message(.source))]
    Forbidden { node: String, source: kube::Error },
    /// 5xx: the kubelet not reachable (the node down or booting); another try may work.
    #[error("exec on {node} through the cluster API: {}", api_message(.source))]
    Backend { node: String, source: kube::Error },
    /// The API server itself not reachable.
    #[error("the cluster API for exec on {node}: {source}")]
    Connection { node: String, source: kube::Error },
    /// Another answer of the API (a 404 twice, a 400).
    #[error("exec on {node} through the cluster API: {}", api_message(.source))]
    Api { node: String, source: kube::Error },
    /// The node's daemon pod runs but cannot take an exec now (not Ready, as while its node is
    /// down, or being replaced): another try may work; no debug pod is made for it.
    #[error("the machine-config-daemon pod {pod} on {node} is Running but not Ready, or Terminating")]
    PodNotReady { node: String, pod: String },
    /// No pod to exec into on the node.
    #[error("no Running machine-config-daemon pod on {node} (namespace {DAEMON_NAMESPACE}, label {DAEMON_SELECTOR})")]
    NoPod { node: String },
    /// The debug pod (the fallback where no daemon pod serves exec) could not be made ready:
    /// created, watched until Running. Nothing ran.
    #[error("the debug pod {pod} on {node}: {action}: {source}")]
    DebugPod { node: String, pod: String, action: &'static str, source: Box<dyn std::error::Error + Send + Sync> },
    /// The debug pod was not Running within `command_timeout` (the node's kubelet down).
    #[error("the debug pod {pod} on {node} was not Running within {limit:?}")]
    DebugPodNotRunning { node: String, pod: String, limit: Duration },
    /// The journal could not take the record written before a debug pod is created.
    #[error("the journal did not take the record of the debug pod for {node}: no pod was created")]
    JournalClosed { node: String },
    /// The exec request went out and its connection failed before the API's answer (cut,
    /// reset, a read timeout, a failed upgrade): the command may have started (a kubelet
    /// behind a proxying API server starts it before the answer comes back).
    #[error("the exec on {node} through the cluster API went out and no answer came: {source}")]
    Unanswered { node: String, source: kube::Error },
    /// The pod list did not answer within `command_timeout`.
    #[error("listing the machine-config-daemon pods for {node} took longer than {limit:?}")]
    ListTimedOut { node: String, limit: Duration },
}

/// Whether the error is a connection that was never made (refused, no route): nothing was sent.
fn never_connected(error: &kube::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            return matches!(io.kind(), ConnectionRefused | HostUnreachable | NetworkUnreachable | AddrNotAvailable);
        }
        source = cause.source();
    }
    false
}

/// The API's own message for an API error; the error itself otherwise.
fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

impl ExecError {
    fn from_api(node: &str, error: kube::Error) -> ExecError {
        let node = node.to_owned();
        match &error {
            kube::Error::Api(status) if status.code == 401 => ExecError::Unauthorized { node, source: error },
            kube::Error::Api(status) if status.code == 403 => ExecError::Forbidden { node, source: error },
            kube::Error::Api(status) if status.code >= 500 => ExecError::Backend { node, source: error },
            kube::Error::Api(_) => ExecError::Api { node, source: error },
            kube::Error::HyperError(_) | kube::Error::Service(_) => ExecError::Connection { node, source: error },
            _ => ExecError::Api { node, source: error },
        }
    }

    /// An exec upgrade's error: an answer of the API (a status), or a connection that could not
    /// be made, is a request that ran nothing; any other failure may have come after the
    /// command started ([`ExecError::Unanswered`]).
    fn from_upgrade(node: &str, error: kube::Error) -> ExecError {
        if matches!(error, kube::Error::Api(_)) || never_connected(&error) {
            ExecError::from_api(node, error)
        } else {
            ExecError::Unanswered { node: node.to_owned(), source: error }
        }
    }

    /// A 404: the pod is gone (replaced by its DaemonSet) since it was listed.
    fn is_not_found(&self) -> bool {
        matches!(self, ExecError::Api { source: kube::Error::Api(status), .. } if status.code == 404)
    }
}

impl From<ExecError> for TransportError {
    fn from(error: ExecError) -> TransportError {
        let message = error.to_string();
        match error {
            ExecError::Unauthorized { .. } => TransportError::Auth(message),
            ExecError::Forbidden { .. } => TransportError::Forbidden(message),
            ExecError::Backend { .. }
            | ExecError::Connection { .. }
            | ExecError::NoPod { .. }
            | ExecError::PodNotReady { .. }
            | ExecError::DebugPodNotRunning { .. }
            | ExecError::Unanswered { .. } => TransportError::Unreachable(message),
            ExecError::DebugPod { .. } | ExecError::JournalClosed { .. } => TransportError::Other(message),
            ExecError::ListTimedOut { .. } => TransportError::Timeout(message),
            ExecError::Api { .. } => TransportError::Other(message),
        }
    }
}

/// Whether a pod can take an exec: Running, its Ready condition True, and not Terminating
/// (no deletionTimestamp: a pod being replaced by its DaemonSet answers for a while, then 404s).
pub fn pod_serves_exec(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    let running = status.and_then(|s| s.phase.as_deref()) == Some("Running");
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    running && ready && pod.metadata.deletion_timestamp.is_none()
}

/// The command as the transport runs it: `chroot /rootfs` and [`command_words`].
pub fn host_argv(command: &str) -> Vec<String> {
    chroot(HOST_ROOT, command_words(command))
}

/// `sudo`'s options that take a value (`-u USER`): such a `sudo` is not simply dropped.
const SUDO_OPTIONS_WITH_VALUES: [&str; 10] = ["-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "-T"];

/// What the exec runs for `command`. A plain command (words, a leading `sudo` with flags only)
/// runs as its words, `sudo` dropped (the daemon's container is root on the host); anything a
/// shell must read (a pipe, `&&`, quotes, a variable, `sudo -u USER`) runs under `/bin/sh -c`,
/// as SSH runs every command through the login shell, so a check or an `--only-if` means the
/// same on both transports.
fn command_words(command: &str) -> Vec<String> {
    let shell_syntax = command.contains(|c: char| "|&;<>()$`\\\"'*?[]#~{}\n".contains(c));
    let mut words = command.split_whitespace().peekable();
    if words.peek() == Some(&"sudo") {
        words.next();
        while let Some(option) = words.peek().filter(|w| w.starts_with('-')) {
            if SUDO_OPTIONS_WITH_VALUES.iter().any(|o| option.starts_with(o)) {
                return shell(command);
            }
            words.next();
        }
    }
    if shell_syntax {
        return shell(command);
    }
    words.map(str::to_owned).collect()
}

fn shell(command: &str) -> Vec<String> {
    ["/bin/sh", "-c", command.trim()].into_iter().map(str::to_owned).collect()
}

/// `chroot ROOT WORDS...`.
fn chroot(root: &str, words: Vec<String>) -> Vec<String> {
    ["chroot", root].into_iter().map(str::to_owned).chain(words).collect()
}

/// The reboot command through this transport: the SSH default becomes `shutdown -r +1`.
pub fn kube_reboot_command(configured: &str) -> String {
    if configured == SSH_DEFAULT_REBOOT { KUBE_DEFAULT_REBOOT.to_owned() } else { configured.to_owned() }
}

/// The exit status an exec's status channel carried (`Success`, or `Failure` with an
/// `ExitCode` cause); None when it carried none.
fn exit_of(status: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>) -> Result<Option<u32>, String> {
    let Some(status) = status else { return Ok(None) };
    if status.status.as_deref() == Some("Success") {
        return Ok(Some(0));
    }
    let cause = status.details.as_ref().and_then(|d| d.causes.as_ref()).and_then(|causes| {
        causes.iter().find(|c| c.reason.as_deref() == Some("ExitCode")).and_then(|c| c.message.as_deref()?.parse::<u32>().ok())
    });
    match cause {
        Some(code) => Ok(Some(code)),
        None => Err(status.message.clone().unwrap_or_else(|| "the exec failed without a message".into())),
    }
}

type Reader = tokio::io::ReadHalf<tokio::io::SimplexStream>;

/// Reads stdout and stderr until the exec stream ends. kube's message loop closes its pipes
/// when the stream ends with a status or a close, but not when the connection is cut (it ends
/// with an error and leaves them open): so the loop's end is waited for too, and what it wrote
/// before is taken from the pipes without waiting.
async fn read_until_the_stream_ends(
    process: kube::api::AttachedProcess,
    stdout: Option<Reader>,
    stderr: Option<Reader>,
) -> (Vec<u8>, Vec<u8>) {
    use futures::FutureExt;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let (mut stdout, mut stderr) = (stdout, stderr);
    let (mut chunk_out, mut chunk_err) = ([0u8; 4096], [0u8; 4096]);
    let ended = process.join();
    tokio::pin!(ended);
    let mut loop_over = false;
    while !loop_over && (stdout.is_some() || stderr.is_some()) {
        tokio::select! {
            read = async { stdout.as_mut().expect("open").read(&mut chunk_out).await }, if stdout.is_some() => match read {
                Ok(n) if n > 0 => out.extend_from_slice(&chunk_out[..n]),
                _ => stdout = None,
            },
            read = async { stderr.as_mut().expect("open").read(&mut chunk_err).await }, if stderr.is_some() => match read {
                Ok(n) if n > 0 => err.extend_from_slice(&chunk_err[..n]),
                _ => stderr = None,
            },
            _ = &mut ended => loop_over = true,
        }
    }
    if !loop_over {
        let _ = ended.await;
    }
    // Whatever the loop wrote before it ended is in the pipes already.
    for (reader, buffer) in [(stdout.as_mut(), &mut out), (stderr.as_mut(), &mut err)] {
        if let Some(reader) = reader {
            let mut chunk = [0u8; 4096];
            while let Some(Ok(n)) = reader.read(&mut chunk).now_or_never() {
                if n == 0 {
                    break;
                }
                buffer.extend_from_slice(&chunk[..n]);
            }
        }
    }
    (out, err)
}

pub struct KubeTransport {
    client: Client,
    reboot: RebootSettings,
    reboot_command: String,
    command_timeout: Duration,
    /// The daemon pod found for each node (found again when it is gone).
    pods: Mutex<HashMap<String, String>>,
    /// API requests made and bytes read from exec streams (for the cost figures).
    pub requests: std::sync::atomic::AtomicU64,
    /// The run's ID, for the debug pods' label.
    run_id: String,
    /// The debug pods this transport made, shared with the engine (which sweeps them after a
    /// Ctrl-C).
    debug: Arc<DebugPods>,
    namespace_ready: std::sync::atomic::AtomicBool,
    /// The debug pods' image, resolved when the first one is made.
    debug_image: tokio::sync::OnceCell<String>,
}

/// The debug pods a transport created and has not deleted yet, and the run's journal.
pub struct DebugPods {
    client: Client,
    /// The run's journal: debug pods are made only with one (each is journaled before it is).
    journal: Mutex<Option<JournalHook>>,
    live: Mutex<BTreeMap<String, DebugPodRef>>,
}

impl DebugPods {
    /// Deletes those still there (a run stopped by Ctrl-C while one existed, or one whose
    /// deletion after its command failed), journaling each deletion. Returns those deleted and
    /// those still there with why.
    pub async fn sweep(&self) -> (Vec<DebugPodRef>, Vec<(DebugPodRef, kube::Error)>) {
        let left: Vec<DebugPodRef> = self.live.lock().unwrap().values().cloned().collect();
        let (mut deleted, mut failed) = (Vec::new(), Vec::new());
        for pod in left {
            match self.remove(&pod).await {
                Ok(()) => deleted.push(pod),
                Err(error) => failed.push((pod, error)),
            }
        }
        (deleted, failed)
    }

    /// Deletes one debug pod (three tries: a privileged pod with the host's `/` is not left
    /// to one API hiccup); journals and forgets it when it is gone.
    async fn remove(&self, pod: &DebugPodRef) -> Result<(), kube::Error> {
        let mut pause = Duration::from_millis(500);
        let mut tries = 0;
        while let Err(error) = debug_pod::delete(&self.client, &pod.namespace, &pod.pod).await {
            tries += 1;
            if tries == 3 {
                return Err(error);
            }
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
        self.live.lock().unwrap().remove(&pod.pod);
        if let Some(hook) = self.journal.lock().unwrap().clone() {
            hook(Entry::DebugPodDeleted { host: pod.host.clone(), namespace: pod.namespace.clone(), pod: pod.pod.clone() });
        }
        Ok(())
    }
}

impl KubeTransport {
    pub fn new(client: Client, reboot: RebootSettings, command_timeout: Duration) -> KubeTransport {
        let reboot_command = kube_reboot_command(&reboot.command);
        KubeTransport {
            client: client.clone(),
            reboot,
            reboot_command,
            command_timeout,
            pods: Default::default(),
            requests: Default::default(),
            run_id: String::new(),
            debug: Arc::new(DebugPods { client, journal: Mutex::new(None), live: Default::default() }),
            namespace_ready: Default::default(),
            debug_image: Default::default(),
        }
    }

    /// The run ID the debug pods are labelled with.
    pub fn with_run_id(mut self, run_id: &str) -> KubeTransport {
        self.run_id = run_id.to_owned();
        self
    }

    /// The debug pods this transport makes, for the engine to sweep after a Ctrl-C.
    pub fn debug_pods(&self) -> Arc<DebugPods> {
        self.debug.clone()
    }

    /// Runs `words` under `chroot /host` in a new debug pod on the node, then deletes it.
    async fn exec_in_debug_pod(
        &self,
        host: &Host,
        words: Vec<String>,
        deadline: tokio::time::Instant,
        hook: JournalHook,
    ) -> Result<ExecOutput, ExecError> {
        use std::sync::atomic::Ordering::Relaxed;
        let node = host.name.as_str();
        let name = debug_pod::pod_name(node);
        let failed = |action: &'static str, source: Box<dyn std::error::Error + Send + Sync>| ExecError::DebugPod {
            node: node.to_owned(),
            pod: name.clone(),
            action,
            source,
        };
        if !self.namespace_ready.load(Relaxed) {
            self.requests.fetch_add(1, Relaxed);
            debug_pod::ensure_namespace(&self.client).await.map_err(|e| failed("creating its namespace", Box::new(e)))?;
            self.namespace_ready.store(true, Relaxed);
        }
        let reference = DebugPodRef { host: node.to_owned(), namespace: debug_pod::DEBUG_NAMESPACE.to_owned(), pod: name.clone() };
        // Journaled before it exists: a kill from here on leaves a record naming it.
        if !hook(Entry::DebugPodCreating {
            host: reference.host.clone(),
            namespace: reference.namespace.clone(),
            pod: reference.pod.clone(),
        }) {
            return Err(ExecError::JournalClosed { node: node.to_owned() });
        }
        self.debug.live.lock().unwrap().insert(name.clone(), reference.clone());
        let api: Api<Pod> = Api::namespaced(self.client.clone(), debug_pod::DEBUG_NAMESPACE);
        self.requests.fetch_add(1, Relaxed);
        let image = self
            .debug_image
            .get_or_init(|| async {
                self.requests.fetch_add(1, Relaxed);
                debug_pod::resolve_image(&self.client, self.reboot.debug_image.as_deref()).await
            })
            .await;
        let created = api.create(&Default::default(), &debug_pod::pod_object(&name, node, &self.run_id, image)).await;
        let result = match created {
            Err(e) => Err(failed("creating it", Box::new(e))),
            Ok(_) => {
                self.requests.fetch_add(1, Relaxed);
                // The pod's start may take three quarters of what is left, never all of it: a
                // stream left no time would time out unsent and count as sent with no answer
                // (review 12, finding 9).
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                match debug_pod::wait_running(&self.client, &name, left.mul_f64(0.75)).await {
                    Ok(true) => {
                        let argv = chroot(debug_pod::DEBUG_HOST_ROOT, words);
                        self.stream(debug_pod::DEBUG_NAMESPACE, &name, debug_pod::DEBUG_CONTAINER, node, argv, deadline).await
                    }
                    Ok(false) => {
                        Err(ExecError::DebugPodNotRunning { node: node.to_owned(), pod: name.clone(), limit: self.command_timeout })
                    }
                    Err(e) => Err(failed("watching it start", Box::new(e))),
                }
            }
        };
        self.requests.fetch_add(1, Relaxed);
        // A pod that could not be deleted stays in `live`: the run's end sweeps it again and
        // says so if it still cannot (the journal names it for `repair` and a resume).
        let _ = self.debug.remove(&reference).await;
        result
    }

    /// The reboot command this transport sends (for the journal and `--dry-run`).
    pub fn reboot_command(&self) -> &str {
        &self.reboot_command
    }

    /// The machine-config daemon pod on `node` that can take an exec ([`pod_serves_exec`]).
    pub async fn daemon_pod(&self, node: &str) -> Result<String, ExecError> {
        if let Some(pod) = self.pods.lock().unwrap().get(node) {
            return Ok(pod.clone());
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), DAEMON_NAMESPACE);
        let params = ListParams::default().labels(DAEMON_SELECTOR).fields(&format!("spec.nodeName={node}"));
        self.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pods = api.list(&params).await.map_err(|e| ExecError::from_api(node, e))?;
        let Some(pod) = pods.items.iter().find(|p| pod_serves_exec(p)).and_then(|p| p.metadata.name.clone()) else {
            // A daemon pod that runs but is not Ready (its node down, rebooting) is waited for,
            // never replaced by a debug pod; only where none runs (not OpenShift, the pod gone or
            // not started) is there no daemon pod.
            let running = pods.items.iter().find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"));
            return Err(match running.and_then(|p| p.metadata.name.clone()) {
                Some(pod) => ExecError::PodNotReady { node: node.to_owned(), pod },
                None => ExecError::NoPod { node: node.to_owned() },
            });
        };
        self.pods.lock().unwrap().insert(node.to_owned(), pod.clone());
        Ok(pod)
    }

    /// Runs `command` on the node's host. Err: refused before the stream opened (nothing ran).
    pub async fn exec(&self, host: &Host, command: &str) -> Result<ExecOutput, ExecError> {
        self.exec_argv(host, command_words(command)).await
    }

    /// Runs `WORDS...` on the node's host (under `chroot /rootfs` in the daemon's pod, `chroot
    /// /host` in a debug pod), each word one argument.
    pub async fn exec_words(&self, host: &Host, words: &[String]) -> Result<ExecOutput, ExecError> {
        self.exec_argv(host, words.to_vec()).await
    }

    /// The whole exec (the pod list, the upgrade, the stream) under one `command_timeout`
    /// deadline. A pod replaced since it was listed (404) is listed again, once.
    async fn exec_argv(&self, host: &Host, words: Vec<String>) -> Result<ExecOutput, ExecError> {
        let deadline = tokio::time::Instant::now() + self.command_timeout;
        match self.exec_once(host, words.clone(), deadline).await {
            Err(e) if e.is_not_found() => self.exec_once(host, words, deadline).await,
            other => other,
        }
    }

    async fn exec_once(&self, host: &Host, words: Vec<String>, deadline: tokio::time::Instant) -> Result<ExecOutput, ExecError> {
        let node = host.name.as_str();
        let Ok(pod) = tokio::time::timeout_at(deadline, self.daemon_pod(node)).await else {
            return Err(ExecError::ListTimedOut { node: node.to_owned(), limit: self.command_timeout });
        };
        let journal = self.debug.journal.lock().unwrap().clone();
        let pod = match (pod, journal) {
            (Ok(pod), _) => pod,
            // No daemon pod serves exec: an `oc debug`-style pod, when a journal records it.
            (Err(ExecError::NoPod { .. }), Some(hook)) => return self.exec_in_debug_pod(host, words, deadline, hook).await,
            (Err(e), _) => return Err(e),
        };
        let result = self.stream(DAEMON_NAMESPACE, &pod, DAEMON_CONTAINER, node, chroot(HOST_ROOT, words), deadline).await;
        // A pod gone since it was found is looked up again.
        if result.as_ref().is_err_and(ExecError::is_not_found) {
            self.pods.lock().unwrap().remove(node);
        }
        result
    }

    /// The exec itself: the upgrade and the stream, until `deadline`.
    async fn stream(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        node: &str,
        argv: Vec<String>,
        deadline: tokio::time::Instant,
    ) -> Result<ExecOutput, ExecError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params = AttachParams::default().container(container).stdin(false).stdout(true).stderr(true);
        self.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let run = async {
            let mut process = api.exec(pod, argv, &params).await.map_err(|e| ExecError::from_upgrade(node, e))?;
            let (stdout, stderr) = (process.stdout(), process.stderr());
            let status = process.take_status();
            let (out, err) = read_until_the_stream_ends(process, stdout, stderr).await;
            let status = match status {
                Some(status) => status.await,
                None => None,
            };
            Ok((out, err, status))
        };
        // The upgrade may have reached the kubelet when the deadline passes: the command may
        // have started, so a timeout here is an answer that did not come, never a refusal.
        let Ok(ran) = tokio::time::timeout_at(deadline, run).await else {
            return Ok(ExecOutput { stdout: Vec::new(), stderr: Vec::new(), exit: None, timed_out: true, failure: None });
        };
        let (stdout, stderr, status) = ran?;
        let (exit, failure) = match exit_of(status.as_ref()) {
            Ok(exit) => (exit, None),
            Err(why) => (None, Some(format!("exec on {node}: {why}"))),
        };
        Ok(ExecOutput { stdout, stderr, exit, timed_out: false, failure })
    }

    /// Runs `command`; Ok only when it exited 0.
    async fn run_ok(&self, host: &Host, command: &str) -> Result<ExecOutput, TransportError> {
        let output = self.exec(host, command).await.map_err(TransportError::from)?;
        match output.exit {
            Some(0) => Ok(output),
            _ if output.timed_out => Err(TransportError::Timeout(format!("`{command}` through the cluster API"))),
            // The API or the kubelet failed under an open stream (a node going down, a NotReady
            // kubelet): a read to try again, as SSH's refused connection is.
            None if output.failure.is_some() => Err(TransportError::Unreachable(output.failure.unwrap_or_default())),
            None => {
                Err(TransportError::Unreachable(format!("the exec stream of `{command}` on {} ended without an exit status", host.name)))
            }
            Some(exit) => Err(TransportError::CommandFailed {
                command: command.to_owned(),
                exit,
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            }),
        }
    }
}

impl PowerTransport for KubeTransport {
    fn reaches_through_the_api(&self, _host: &Host) -> bool {
        true
    }

    fn attach_journal(&self, hook: JournalHook) {
        *self.debug.journal.lock().unwrap() = Some(hook);
    }

    async fn read_boot_id(&self, host: &Host) -> Result<String, TransportError> {
        let output = self.run_ok(host, &self.reboot.boot_id_command).await?;
        parse_boot_id(&output.stdout)
    }

    async fn send_reboot(&self, host: &Host) -> Result<Delivery, TransportError> {
        let command = &self.reboot_command;
        let output = match self.exec(host, command).await {
            Ok(output) => output,
            // Sent, and no answer: the command may have run, so never "not sent" (a retry or
            // the BMC would then reboot a node that may be going down on its own).
            Err(ExecError::Unanswered { .. }) => return Ok(Delivery::NoAnswer),
            Err(error) => return Err(error.into()),
        };
        match output.exit {
            _ if output.timed_out => Ok(Delivery::NoAnswer),
            Some(0) => Ok(Delivery::ExitZero),
            // The stream was open, so the command may have run: never "not sent" (a resume
            // would send it again). A failure status without an exit code, after the stream
            // opened, is no answer; a stream that ended without a status was cut.
            None if output.failure.is_some() => Ok(Delivery::NoAnswer),
            None => Ok(Delivery::ConnectionDropped),
            // Killed by a signal (128 + N), as SSH's `exit-signal`: the command was running.
            Some(exit) if exit >= 128 => Ok(Delivery::ConnectionDropped),
            Some(exit) => Err(TransportError::CommandFailed {
                command: command.clone(),
                exit,
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            }),
        }
    }

    async fn cancel_reboot(&self, host: &Host) -> Result<(), TransportError> {
        self.run_ok(host, &self.reboot.cancel_command).await.map(|_| ())
    }

    async fn run_check(&self, host: &Host, command: &str) -> Result<(), TransportError> {
        self.run_ok(host, command).await.map(|_| ())
    }

    async fn soft_reboot_count(&self, host: &Host) -> Option<u64> {
        let output = self.run_ok(host, fleetboot_core::transport::SOFT_REBOOTS_COMMAND).await.ok()?;
        fleetboot_core::transport::parse_soft_reboots(&output.stdout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_run_under_chroot_without_sudo() {
        assert_eq!(host_argv("cat /proc/sys/kernel/random/boot_id"), ["chroot", "/rootfs", "cat", "/proc/sys/kernel/random/boot_id"]);
        assert_eq!(host_argv("sudo -n shutdown -c"), ["chroot", "/rootfs", "shutdown", "-c"]);
        // What a shell must read runs under one, as over SSH.
        assert_eq!(
            host_argv("rpm-ostree status --json | jq -e '.deployments[0].booted'"),
            ["chroot", "/rootfs", "/bin/sh", "-c", "rpm-ostree status --json | jq -e '.deployments[0].booted'"]
        );
        assert_eq!(
            host_argv("test -f /run/reboot-required && echo yes"),
            ["chroot", "/rootfs", "/bin/sh", "-c", "test -f /run/reboot-required && echo yes"]
        );
        assert_eq!(host_argv("sudo -u core podman ps"), ["chroot", "/rootfs", "/bin/sh", "-c", "sudo -u core podman ps"]);
        assert_eq!(host_argv("sudo -E systemctl reboot"), ["chroot", "/rootfs", "systemctl", "reboot"]);
        assert_eq!(kube_reboot_command("sudo shutdown -r -t 3"), "shutdown -r +1");
        assert_eq!(kube_reboot_command("sudo systemctl reboot"), "sudo systemctl reboot");
        assert!(fleetboot_core::escalation::cancellable_command(KUBE_DEFAULT_REBOOT));
    }

    #[test]
    fn the_status_channel_gives_the_exit_code() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};
        let success = Status { status: Some("Success".into()), ..Default::default() };
        assert_eq!(exit_of(Some(&success)), Ok(Some(0)));
        let failed = Status {
            status: Some("Failure".into()),
            reason: Some("NonZeroExitCode".into()),
            details: Some(StatusDetails {
                causes: Some(vec![StatusCause { reason: Some("ExitCode".into()), message: Some("3".into()), ..Default::default() }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(exit_of(Some(&failed)), Ok(Some(3)));
        assert_eq!(exit_of(None), Ok(None));
        let other = Status { status: Some("Failure".into()), message: Some("container not found".into()), ..Default::default() };
        assert!(exit_of(Some(&other)).is_err());
    }

    fn api_error(code: u16, message: &str) -> kube::Error {
        let status = kube::core::Status { code, message: message.into(), ..Default::default() };
        kube::Error::Api(status.boxed())
    }

    #[test]
    fn a_403_is_forbidden_with_the_apis_message_and_keeps_its_source() {
        use std::error::Error as _;
        let error = ExecError::from_api("worker-0", api_error(403, "pods \"x\" is forbidden: User \"u\" cannot create"));
        assert!(error.source().is_some(), "the API's error is kept as the source");
        let transport = TransportError::from(error);
        assert!(matches!(transport, TransportError::Forbidden(_)), "{transport:?}");
        assert_eq!(
            transport.to_string(),
            "forbidden: the cluster API refused exec on worker-0: pods \"x\" is forbidden: User \"u\" cannot create"
        );
        assert!(matches!(TransportError::from(ExecError::from_api("n", api_error(401, "Unauthorized"))), TransportError::Auth(_)));
        assert!(TransportError::from(ExecError::from_api("n", api_error(500, "error dialing backend"))).is_transient());
        assert!(ExecError::from_api("n", api_error(404, "pods \"x\" not found")).is_not_found());
    }

    #[test]
    fn only_a_running_ready_pod_not_terminating_takes_an_exec() {
        let pod = |phase: &str, ready: &str, deleting: bool| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p", "deletionTimestamp": if deleting { Some("2026-01-01T00:00:00Z") } else { None }},
                "status": {"phase": phase, "conditions": [{"type": "Ready", "status": ready}]},
            }))
            .unwrap()
        };
        assert!(pod_serves_exec(&pod("Running", "True", false)));
        assert!(!pod_serves_exec(&pod("Running", "True", true)), "Terminating");
        assert!(!pod_serves_exec(&pod("Running", "False", false)), "not Ready");
        assert!(!pod_serves_exec(&pod("Pending", "True", false)), "not Running");
    }
}
