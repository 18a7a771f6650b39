//! `pods/exec` over WebSocket: what `kubectl exec` and kube-rs's `ws` feature speak to a real
//! API server, answered by the simulated nodes' one command path (the one their SSH servers
//! use, [`SimNode::answer_as`]), so boot IDs and reboots are the same whichever way they came.
//!
//! Sources: the channel protocols and their negotiation are `k8s.io/apimachinery`
//! `pkg/util/httpstream/wsstream/conn.go` (a binary message is one channel byte and the data;
//! `v4.channel.k8s.io` and `v5.channel.k8s.io`, v5 adding the close channel 255); the empty
//! message on the lowest writable channel at start, the exit status as a `Status` on channel 3
//! (Success, or Failure with reason `NonZeroExitCode` and a cause `ExitCode`) are the kubelet's
//! `pkg/kubelet/cri/streaming/remotecommand/websocket.go` and `exec.go`; the checks before the
//! upgrade (authorization first, then the pod, then its container, then the kubelet) are the
//! API server's `pkg/registry/core/pod/strategy.go` (`ExecLocation`, `validateContainer`) and
//! `pkg/registry/core/pod/rest/subresources.go`.
//!
//! [`SimNode::answer_as`]: super::node::SimNode::answer_as

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

/// Ends the connection a request came on, unanswered (the API server puts it in each request's
/// extensions; a fault a handler injects: the request carried out, its answer lost with the
/// connection).
#[derive(Clone)]
pub struct ConnectionCut(pub Arc<tokio::sync::Notify>);

/// The subprotocols served, in the server's order of preference when a client offers several.
const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
/// From the stream's start to the command's first output: the kubelet dialed, the process started.
const PROCESS_START: Duration = Duration::from_millis(20);

/// What the API server reaches through the kubelets (set by the cluster when it starts).
pub trait Kubelets: Send + Sync {
    /// Ok when the node's kubelet answers; else the error of dialing it.
    fn dial(&self, node: &str) -> Result<(), String>;
    /// Runs `command` on the node's host (`root`: as root, else as the SSH login user).
    fn run(&self, node: &str, command: &str, root: bool) -> (String, String, u32);
}

/// The exec state of the API server.
#[derive(Default)]
pub struct ExecState {
    pub kubelets: OnceLock<Box<dyn Kubelets>>,
    /// Namespaces where `pods/exec` is forbidden, with the user named in the refusal.
    pub forbidden: Mutex<HashMap<String, String>>,
    /// Exec requests answered, and bytes written to clients on their streams (cost measurements).
    pub requests: std::sync::atomic::AtomicU64,
    pub stream_bytes: std::sync::atomic::AtomicU64,
    /// Fault injection: exec streams whose command line contains one of these end right after
    /// the command ran, with no output and no status (the connection cut, as a node going down
    /// under it cuts it).
    pub drop_after_start: Mutex<Vec<String>>,
    /// Fault injection: exec streams whose command line contains one of these end, after the
    /// command ran, with a `Failure` status of reason `InternalError` and no exit code — what a
    /// 1.30+ API server sends when its stream to the kubelet breaks after it opened the
    /// client's (kubernetes `staging/src/k8s.io/kubectl/pkg/cmd/exec` and the API server's
    /// `pkg/kubelet/cri/streaming/remotecommand` translator: errors after the upgrade are
    /// written to the status channel).
    pub fail_after_start: Mutex<Vec<String>>,
    /// Fault injection: exec requests whose command line contains one of these are carried
    /// out (the command runs, as a kubelet behind a proxying API server starts it) and their
    /// connection cut before the upgrade's answer: the client cannot tell whether it ran.
    pub cut_before_answer: Mutex<Vec<String>>,
    /// Exec requests waiting now under `hold-requests` (method EXEC, resource pods/exec).
    pub held: std::sync::atomic::AtomicU64,
}

type Body = BoxBody<Bytes, Infallible>;

fn status(code: u16, reason: &str, message: String, details: Value) -> Response<Body> {
    let mut value = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code});
    if !details.is_null() {
        value["details"] = details;
    }
    Response::builder()
        .status(StatusCode::from_u16(code).expect("valid code"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(&value).expect("serializes"))).boxed())
        .expect("response")
}

/// `(namespace, pod)` when `path` is `/api/v1/namespaces/NS/pods/NAME/exec`.
pub fn exec_target(path: &str) -> Option<(String, String)> {
    match path.trim_matches('/').split('/').collect::<Vec<_>>().as_slice() {
        ["api", "v1", "namespaces", ns, "pods", name, "exec"] => Some((ns.to_string(), name.to_string())),
        _ => None,
    }
}

/// `POST /sim/v1/exec-forbidden` with `{"namespace": NS, "forbidden": true|false, "user": U}`.
pub fn control_forbid(exec: &ExecState, body: &Value) -> Result<Value, (u16, String)> {
    let namespace = body["namespace"].as_str().ok_or((400, "expected {\"namespace\": NS, \"forbidden\": true|false}".to_owned()))?;
    let forbidden = body["forbidden"].as_bool().unwrap_or(true);
    let user = body["user"].as_str().unwrap_or("system:admin");
    let mut map = exec.forbidden.lock().unwrap();
    if forbidden {
        map.insert(namespace.to_owned(), user.to_owned());
    } else {
        map.remove(namespace);
    }
    Ok(json!({"namespace": namespace, "forbidden": forbidden}))
}

/// `POST /sim/v1/exec-drop` with `{"commands": [TEXT, ...]}`: exec streams whose command line
/// contains one of them are cut right after the command ran (`[]`: none).
pub fn control_drop(exec: &ExecState, body: &Value) -> Result<Value, (u16, String)> {
    let commands: Vec<String> =
        serde_json::from_value(body["commands"].clone()).map_err(|_| (400, "expected {\"commands\": [TEXT, ...]}".to_owned()))?;
    // `"status": "InternalError"`: the stream ends with that failure instead of being cut;
    // `"when": "before-answer"`: the connection is cut before the upgrade is answered.
    if body["when"] == "before-answer" {
        *exec.cut_before_answer.lock().unwrap() = commands.clone();
    } else if body["status"] == "InternalError" {
        *exec.fail_after_start.lock().unwrap() = commands.clone();
    } else {
        *exec.drop_after_start.lock().unwrap() = commands.clone();
    }
    Ok(json!({"commands": commands}))
}

/// `GET /sim/v1/exec`: the exec requests answered and the bytes their streams carried.
pub fn counters(exec: &ExecState) -> Value {
    json!({"requests": exec.requests.load(Relaxed), "streamBytes": exec.stream_bytes.load(Relaxed), "held": exec.held.load(Relaxed)})
}

/// The host's `/` as the pod's container sees it: the mount path of a hostPath volume of `/`
/// (the machine-config daemon's `/rootfs`, an `oc debug` pod's `/host`).
fn host_root_mount(pod: &Value, container: &Value) -> Option<String> {
    let volumes = pod.pointer("/spec/volumes")?.as_array()?;
    container.get("volumeMounts")?.as_array()?.iter().find_map(|mount| {
        let volume = volumes.iter().find(|v| v["name"] == mount["name"])?;
        (volume.pointer("/hostPath/path")?.as_str()? == "/").then(|| mount["mountPath"].as_str().map(str::to_owned))?
    })
}

fn query_values(query: Option<&str>, key: &str) -> Vec<String> {
    query
        .unwrap_or_default()
        .split('&')
        .filter_map(|p| p.split_once('=').or(Some((p, ""))))
        .filter(|(k, _)| super::util::percent_decode(k) == key)
        .map(|(_, v)| super::util::percent_decode(v))
        .collect()
}

/// Answers one exec request: a refusal as a `Status`, or `101 Switching Protocols` and the
/// command's streams.
/// `pod`: the pod as the API server found it (`None`: not found); its absence is said only
/// after authorization, as the API server orders its checks.
pub async fn handle(
    req: Request<Incoming>,
    exec: Arc<ExecState>,
    pod: Option<Value>,
    namespace: String,
    pod_name: String,
) -> Response<Body> {
    exec.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if req.method() != Method::GET && req.method() != Method::POST {
        return status(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({})", req.method()),
            Value::Null,
        );
    }
    let details = json!({"name": pod_name, "kind": "pods"});
    if let Some(user) = exec.forbidden.lock().unwrap().get(&namespace) {
        return status(
            403,
            "Forbidden",
            format!(
                "pods \"{pod_name}\" is forbidden: User \"{user}\" cannot create resource \"pods/exec\" in API group \"\" in the namespace \"{namespace}\""
            ),
            details,
        );
    }
    let Some(pod) = pod else {
        return status(404, "NotFound", format!("pods \"{pod_name}\" not found"), details);
    };
    let query = req.uri().query();
    let command = query_values(query, "command");
    let containers = pod.pointer("/spec/containers").and_then(Value::as_array).cloned().unwrap_or_default();
    let default_container = pod
        .pointer("/metadata/annotations/kubectl.kubernetes.io~1default-container")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| (containers.len() == 1).then(|| containers[0]["name"].as_str().unwrap_or_default().to_owned()));
    let Some(container_name) = query_values(query, "container").into_iter().next().or(default_container) else {
        let names: Vec<&str> = containers.iter().filter_map(|c| c["name"].as_str()).collect();
        return status(
            400,
            "BadRequest",
            format!("a container name must be specified for pod {pod_name}, choose one of: [{}]", names.join(" ")),
            Value::Null,
        );
    };
    let Some(container) = containers.iter().find(|c| c["name"] == container_name.as_str()) else {
        return status(400, "BadRequest", format!("container {container_name} is not valid for pod {pod_name}"), Value::Null);
    };
    let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or_default();
    if phase == "Succeeded" || phase == "Failed" {
        return status(
            400,
            "BadRequest",
            format!("cannot exec into a container in a completed pod; current phase is {phase}"),
            Value::Null,
        );
    }
    if command.is_empty() {
        return status(400, "BadRequest", "you must specify at least 1 command".into(), Value::Null);
    }
    let node = pod.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or_default().to_owned();
    let Some(kubelets) = exec.kubelets.get() else {
        return status(503, "ServiceUnavailable", "the simulation is not started".into(), Value::Null);
    };
    if let Err(e) = kubelets.dial(&node) {
        return status(500, "InternalError", e, Value::Null);
    }
    let offered: Vec<String> = req
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_owned()))
        .collect();
    let is_websocket = req.headers().get("upgrade").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let key = req.headers().get("sec-websocket-key").map(|k| k.as_bytes().to_vec());
    let (Some(key), true) = (key, is_websocket) else {
        // SPDY (kubectl's fallback) is not served: the simulation speaks WebSocket only.
        return status(
            400,
            "BadRequest",
            "the simulation serves exec over WebSocket only (v5.channel.k8s.io, v4.channel.k8s.io)".into(),
            Value::Null,
        );
    };
    // The first protocol the client offers that the server speaks (wsstream `handshake`).
    let Some(protocol) = offered.iter().find(|p| PROTOCOLS.contains(&p.as_str())).cloned() else {
        return status(
            400,
            "BadRequest",
            format!("unable to upgrade: no supported subprotocol among {offered:?} (this server speaks {PROTOCOLS:?})"),
            Value::Null,
        );
    };
    let mount = host_root_mount(&pod, container);
    let line = command.join(" ");
    if exec.cut_before_answer.lock().unwrap().iter().any(|text| line.contains(text.as_str())) {
        execute(kubelets.as_ref(), &node, &command, mount.as_deref());
        if let Some(cut) = req.extensions().get::<ConnectionCut>() {
            cut.0.notify_one();
        }
        // Never answered: the connection ends under this request.
        std::future::pending::<()>().await;
    }
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key);
    let upgrade = hyper::upgrade::on(req);
    let exec2 = exec.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let ws = WebSocketStream::from_raw_socket(hyper_util::rt::TokioIo::new(upgraded), Role::Server, None).await;
        run_stream(ws, &exec2, &node, &command, mount.as_deref()).await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-accept", accept)
        .header("sec-websocket-protocol", protocol)
        .body(Full::new(Bytes::new()).boxed())
        .expect("response")
}

/// What the command does: `chroot ROOT CMD...` with ROOT the host's `/` runs CMD on the host as
/// root; the few commands a container has of its own run there (the boot ID is the kernel's).
fn execute(kubelets: &dyn Kubelets, node: &str, command: &[String], mount: Option<&str>) -> (String, String, u32) {
    let is_shell = |word: &str| matches!(word, "sh" | "/bin/sh" | "bash" | "/bin/bash");
    match command {
        // `chroot ROOT /bin/sh -c LINE`: the host's shell reads LINE, as sshd's login shell reads
        // an SSH command (the nodes answer both through one path).
        [chroot, root, sh, c, line] if chroot == "chroot" && Some(root.trim_end_matches('/')) == mount && is_shell(sh) && c == "-c" => {
            kubelets.run(node, line, true)
        }
        [chroot, root, rest @ ..] if chroot == "chroot" && Some(root.trim_end_matches('/')) == mount && !rest.is_empty() => {
            kubelets.run(node, &rest.join(" "), true)
        }
        [chroot, root, ..] if chroot == "chroot" => {
            (String::new(), format!("chroot: cannot change root directory to '{root}': No such file or directory\n"), 125)
        }
        _ => {
            let line = command.join(" ");
            match line.as_str() {
                "cat /proc/sys/kernel/random/boot_id" | "true" | "false" | "hostname" => kubelets.run(node, &line, true),
                // runc's error for a binary the image lacks (exit 126, `exec failed`).
                _ => (
                    String::new(),
                    format!(
                        "OCI runtime exec failed: exec failed: unable to start container process: exec: \"{}\": executable file not found in $PATH: unknown\n",
                        command[0]
                    ),
                    126,
                ),
            }
        }
    }
}

async fn run_stream<S>(mut ws: WebSocketStream<S>, exec: &ExecState, node: &str, command: &[String], mount: Option<&str>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let Some(kubelets) = exec.kubelets.get() else { return };
    let count = |n: usize| exec.stream_bytes.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    // The lowest writable channel's empty message: the client knows the stream is up.
    if ws.send(Message::Binary(Bytes::from_static(&[STDOUT]))).await.is_err() {
        return;
    }
    count(1);
    // A real exec's output comes after the API server has dialed the kubelet and the container
    // runtime has started the process (`runc exec`: tens of milliseconds). client-go's reader
    // starts before its streams exist and drops a frame for a stream not yet made (kubernetes
    // `client-go/tools/remotecommand/websocket.go`, readDemuxLoop: "Unknown stream id,
    // discarding message"), so output sent the instant the stream is up is lost now and then
    // (`kubectl exec` printing nothing, exit 0) where a real cluster's latency hides that race.
    tokio::time::sleep(PROCESS_START).await;
    let (stdout, stderr, exit) = execute(kubelets.as_ref(), node, command, mount);
    let line = command.join(" ");
    if exec.drop_after_start.lock().unwrap().iter().any(|text| line.contains(text.as_str())) {
        return;
    }
    for (channel, data) in [(STDOUT, &stdout), (STDERR, &stderr)] {
        if data.is_empty() {
            continue;
        }
        let mut frame = vec![channel];
        frame.extend_from_slice(data.as_bytes());
        count(frame.len());
        if ws.send(Message::Binary(frame.into())).await.is_err() {
            return;
        }
    }
    let failed_after_start = exec.fail_after_start.lock().unwrap().iter().any(|text| line.contains(text.as_str()));
    let status = if failed_after_start {
        json!({"metadata": {}, "status": "Failure", "reason": "InternalError",
            "message": "error sending request: Post \"https://kubelet:10250/exec\": read: connection reset by peer"})
    } else if exit == 0 {
        json!({"metadata": {}, "status": "Success"})
    } else {
        json!({"metadata": {}, "status": "Failure",
            "message": format!("command terminated with non-zero exit code: command '{}' exited with {exit}: {}", command.join(" "), stderr_tail(&stderr)),
            "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": exit.to_string()}]}})
    };
    let mut frame = vec![STATUS];
    frame.extend_from_slice(&serde_json::to_vec(&status).expect("serializes"));
    count(frame.len());
    if ws.send(Message::Binary(frame.into())).await.is_err() {
        return;
    }
    // A normal closure (1000): client-go's reader takes a close without a code (1005) as an error.
    let _ = ws.close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() })).await;
    // Reads until the client's close answers ours (or it goes away).
    let _ = tokio::time::timeout(Duration::from_secs(5), async { while let Some(Ok(_)) = ws.next().await {} }).await;
}

fn stderr_tail(stderr: &str) -> &str {
    stderr.trim_end()
}

/// The machine-config daemon's pod as its DaemonSet makes it (machine-config-operator,
/// `manifests/machineconfigdaemon/daemonset.yaml`, release-4.14 to release-4.18): privileged,
/// hostPID, the host's `/` at `/rootfs` through the `rootfs` hostPath volume, a second container
/// `kube-rbac-proxy`, and `kubectl.kubernetes.io/default-container: machine-config-daemon`.
pub fn daemon_pod_as_installed(pod: &mut Value) {
    pod["metadata"]["annotations"] = json!({
        "kubectl.kubernetes.io/default-container": "machine-config-daemon",
        "openshift.io/required-scc": "privileged",
    });
    pod["spec"]["hostPID"] = json!(true);
    pod["spec"]["tolerations"] = json!([{"operator": "Exists"}]);
    pod["spec"]["volumes"] = json!([{"name": "rootfs", "hostPath": {"path": "/"}}]);
    if let Some(daemon) = pod.pointer_mut("/spec/containers/0") {
        daemon["securityContext"] = json!({"privileged": true});
        daemon["volumeMounts"] = json!([{"name": "rootfs", "mountPath": "/rootfs"}]);
    }
    let proxy = "quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:kube-rbac-proxy";
    if let Some(containers) = pod.pointer_mut("/spec/containers").and_then(Value::as_array_mut) {
        containers.push(json!({"name": "kube-rbac-proxy", "image": proxy}));
    }
    let started = pod.pointer("/status/startTime").cloned().unwrap_or(Value::Null);
    if let Some(statuses) = pod.pointer_mut("/status/containerStatuses").and_then(Value::as_array_mut) {
        statuses
            .push(json!({"name": "kube-rbac-proxy", "ready": true, "started": true, "restartCount": 0, "image": proxy, "imageID": proxy,
            "state": {"running": {"startedAt": started}}}));
    }
}
