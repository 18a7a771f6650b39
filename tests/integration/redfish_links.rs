//! The Redfish client against a hostile or careless BMC: a small HTTP server on 127.0.0.1 in
//! this process (plain http://, which fleetboot warns about), and a second listener standing
//! for "somewhere else" that must never hear from fleetboot.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::common::{Run, fleetboot_bin};

const PASSWORD: &str = "hunter2-bmc-secret";
/// base64("admin:hunter2-bmc-secret")
const BASIC: &str = "Basic YWRtaW46aHVudGVyMi1ibWMtc2VjcmV0";

type Handler = dyn Fn(&str, &str, Option<&str>) -> (u16, Vec<(String, String)>, Vec<u8>) + Send + Sync;

/// An HTTP/1.1 server answering `handler(method, path, authorization)`, one request per
/// connection, stopped and joined when dropped.
struct FakeBmc {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeBmc {
    fn start(handler: Box<Handler>) -> FakeBmc {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopped) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let _ = serve(stream, &*handler, &seen);
            }
        });
        FakeBmc { port, requests, stop, thread: Some(thread) }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeBmc {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(stream: TcpStream, handler: &Handler, seen: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or_default().to_owned(), parts.next().unwrap_or_default().to_owned());
    let (mut length, mut authorization) = (0usize, None);
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
            break;
        }
        let (name, value) = header.split_once(':').unwrap_or_default();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap_or(0),
            "authorization" => authorization = Some(value.trim().to_owned()),
            "x-auth-token" => authorization = Some(format!("token {}", value.trim())),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    seen.lock().unwrap().push(format!("{method} {path} {}", String::from_utf8_lossy(&body)));
    let (status, headers, answer) = handler(&method, &path, authorization.as_deref());
    let mut stream = stream;
    write!(stream, "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n", answer.len())?;
    for (name, value) in headers {
        write!(stream, "{name}: {value}\r\n")?;
    }
    stream.write_all(b"\r\n")?;
    stream.write_all(&answer)?;
    stream.flush()
}

fn json(status: u16, value: serde_json::Value) -> (u16, Vec<(String, String)>, Vec<u8>) {
    (status, Vec::new(), value.to_string().into_bytes())
}

/// A BMC without SessionService (Basic auth), one system, the given reset answer.
fn basic_bmc(reset: impl Fn() -> (u16, Vec<(String, String)>, Vec<u8>) + Send + Sync + 'static) -> FakeBmc {
    FakeBmc::start(Box::new(move |method, path, auth| {
        if path != "/redfish/v1" && auth != Some(BASIC) {
            return json(401, serde_json::json!({"error": {"message": "unauthorized"}}));
        }
        match (method, path) {
            ("GET", "/redfish/v1") => json(200, serde_json::json!({"RedfishVersion": "1.6.0"})),
            ("GET", "/redfish/v1/Systems") => json(200, serde_json::json!({"Members": [{"@odata.id": "/redfish/v1/Systems/1"}]})),
            ("GET", "/redfish/v1/Systems/1") => json(
                200,
                serde_json::json!({"PowerState": "On", "Actions": {"#ComputerSystem.Reset": {
                    "target": "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
                    "ResetType@Redfish.AllowableValues": ["On", "ForceOff", "GracefulRestart", "ForceRestart"]}}}),
            ),
            ("POST", "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset") => reset(),
            _ => json(404, serde_json::json!({"error": {"message": "not found"}})),
        }
    }))
}

/// `fleetboot power ACTION --bmc URL` with a private password file; HOME is `dir`.
fn power(dir: &std::path::Path, action: &str, url: &str) -> Run {
    let password = dir.join("bmc-password");
    std::fs::write(&password, PASSWORD).unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = std::process::Command::new(fleetboot_bin())
        .args(["power", action, "--bmc", url, "--bmc-user", "admin", "--bmc-password-file", password.to_str().unwrap()])
        .env("HOME", dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let run = Run::from(out);
    assert!(!run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD), "the password leaked: {}", run.debug());
    run
}

#[test]
fn a_session_service_on_another_origin_never_gets_the_password_and_plain_http_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = FakeBmc::start(Box::new(|_, _, _| json(201, serde_json::json!({}))));
    let sessions = elsewhere.url("/redfish/v1/SessionService/Sessions");
    let bmc = FakeBmc::start(Box::new(move |_, path, _| match path {
        "/redfish/v1" => json(200, serde_json::json!({"RedfishVersion": "1.6.0", "Links": {"Sessions": {"@odata.id": sessions}}})),
        _ => json(404, serde_json::json!({})),
    }));
    let run = power(dir.path(), "status", &bmc.url("/redfish/v1/Systems/1"));
    assert_ne!(run.code, 0, "{}", run.debug());
    assert!(run.stdout.contains("not followed") || run.stderr.contains("not followed"), "{}", run.debug());
    assert!(run.stderr.contains("plain http://"), "{}", run.debug());
    assert!(elsewhere.requests().is_empty(), "another origin was contacted: {:?}", elsewhere.requests());
}

#[test]
fn a_task_monitor_on_another_origin_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = FakeBmc::start(Box::new(|_, _, _| json(200, serde_json::json!({"TaskState": "Completed"}))));
    let monitor = elsewhere.url("/redfish/v1/TaskService/TaskMonitors/1");
    let bmc = basic_bmc(move || (202, vec![("Location".to_owned(), monitor.clone())], Vec::new()));
    let run = power(dir.path(), "restart", &bmc.url("/redfish/v1/Systems/1"));
    assert_ne!(run.code, 0, "{}", run.debug());
    let text = format!("{}{}", run.stdout, run.stderr);
    assert!(text.contains("not followed") && text.contains("accepted GracefulRestart (202)"), "{}", run.debug());
    assert!(elsewhere.requests().is_empty(), "another origin was contacted: {:?}", elsewhere.requests());
    assert_eq!(bmc.requests().iter().filter(|r| r.starts_with("POST")).count(), 1, "one reset: {:?}", bmc.requests());
}

#[test]
fn a_bmc_answer_past_the_body_limit_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bmc = FakeBmc::start(Box::new(|_, _, _| (200, Vec::new(), vec![b' '; 3 * 1024 * 1024])));
    let run = power(dir.path(), "status", &bmc.url("/redfish/v1/Systems/1"));
    assert_ne!(run.code, 0, "{}", run.debug());
    let text = format!("{}{}", run.stdout, run.stderr);
    assert!(text.contains("larger than 1024 KiB"), "{}", run.debug());
}

#[test]
fn a_password_file_under_tilde_in_the_config_is_read_from_home() {
    let dir = tempfile::tempdir().unwrap();
    let bmc = basic_bmc(|| json(204, serde_json::json!({})));
    std::fs::write(dir.path().join("bmc-pw"), PASSWORD).unwrap();
    std::fs::set_permissions(dir.path().join("bmc-pw"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.path().join("fleetboot.toml");
    std::fs::write(
        &config,
        format!(
            "[[hosts]]\nname = \"n1\"\naddress = \"127.0.0.1\"\n\n[[bmc]]\nnode = \"n1\"\nurl = \"{}\"\nusername = \"admin\"\npassword_file = \"~/bmc-pw\"\n",
            bmc.url("/redfish/v1/Systems/1")
        ),
    )
    .unwrap();
    let out = std::process::Command::new(fleetboot_bin())
        .arg("--config")
        .arg(&config)
        .args(["power", "status", "n1"])
        .env("HOME", dir.path())
        .env_remove("KUBECONFIG")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let run = Run::from(out);
    assert_eq!(run.code, 0, "{}", run.debug());
    assert!(run.stdout.contains("On"), "{}", run.debug());
}
