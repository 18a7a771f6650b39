//! SSH with russh: connect, verify the host key, authenticate, run one command.
//!
//! One file, past 500 lines: connect, verify, authenticate and run are one session's life; the transport on top shares its errors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{Algorithm, HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use russh::{ChannelMsg, Disconnect};
use tokio::net::TcpStream;

use crate::adapters::config::{HostKeyPolicy, RebootSettings, SshSettings};
use crate::adapters::known_hosts::{self, KnownHosts, Verdict};
use fleetboot_core::hosts::Host;
use fleetboot_core::journal::Delivery;
use fleetboot_core::transport::{PowerTransport, TransportError, parse_boot_id};

#[derive(Debug, thiserror::Error)]
pub enum SshSetupError {
    #[error("failed to read SSH identity {path}: {reason}")]
    Identity { path: PathBuf, reason: String },
    #[error("no SSH identity: pass --identity FILE, start ssh-agent, or create ~/.ssh/id_ed25519")]
    NoIdentity,
    #[error("failed to read known_hosts file {path}: {reason}")]
    KnownHosts { path: PathBuf, reason: String },
}

enum Credentials {
    Keys(Vec<Identity>),
    Agent(PathBuf),
}

/// A key file's key, loaded once. An Ed25519 key also keeps its signing key, derived (and
/// checked against its public half) once per run: signing through the key file's type derives
/// and checks it again for every connection, which cost as much as the signature itself.
struct Identity {
    key: Arc<PrivateKey>,
    ed25519: Option<Ed25519Signer>,
}

impl Identity {
    fn new(key: Arc<PrivateKey>) -> Identity {
        let ed25519 = key
            .key_data()
            .ed25519()
            .and_then(|pair| ed25519_dalek::SigningKey::try_from(pair).ok())
            .map(|signing| Ed25519Signer(Box::new(signing)));
        Identity { key, ed25519 }
    }
}

/// Signs the authentication request with an Ed25519 signing key derived once (see [`Identity`]).
struct Ed25519Signer(Box<ed25519_dalek::SigningKey>);

impl russh::Signer for &Ed25519Signer {
    type Error = russh::AgentAuthError;

    #[allow(clippy::manual_async_fn)]
    fn auth_sign(
        &mut self,
        _key: &russh::keys::agent::AgentIdentity,
        _hash: Option<HashAlg>,
        mut to_sign: Vec<u8>,
    ) -> impl std::future::Future<Output = Result<Vec<u8>, Self::Error>> + Send {
        use ed25519_dalek::Signer as _;
        let signature = self.0.sign(&to_sign).to_bytes();
        async move {
            // string(string("ssh-ed25519") string(64 signature bytes)), as RFC 8709 frames it.
            const NAME: &[u8] = b"ssh-ed25519";
            let blob_len = 4 + NAME.len() + 4 + signature.len();
            to_sign.reserve(4 + blob_len);
            to_sign.extend_from_slice(&(blob_len as u32).to_be_bytes());
            to_sign.extend_from_slice(&(NAME.len() as u32).to_be_bytes());
            to_sign.extend_from_slice(NAME);
            to_sign.extend_from_slice(&(signature.len() as u32).to_be_bytes());
            to_sign.extend_from_slice(&signature);
            Ok(to_sign)
        }
    }
}

/// The most output (stdout and stderr together) kept from one remote command: a host that
/// writes more cannot grow fleetboot's memory; the rest is read and dropped, and the command's
/// result is an error naming this limit (the reboot command's exit status still counts).
pub const MAX_COMMAND_OUTPUT: usize = 1024 * 1024;

/// What one command did. `exit` is `None` when the channel or connection closed without an
/// exit status, which a reboot legitimately causes.
#[derive(Debug, Clone, Default)]
pub struct CommandOutput {
    pub exit: Option<u32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub timed_out: bool,
    /// The remote command was killed by this signal (SSH `exit-signal`), as a shutting-down
    /// node's systemd does to the session that asked for the reboot.
    pub signal: Option<String>,
    /// More than [`MAX_COMMAND_OUTPUT`] bytes came: the rest was dropped.
    pub truncated: bool,
}

impl CommandOutput {
    /// Keeps `data` on `stream` as far as the limit allows.
    fn keep(&mut self, data: &[u8], stderr: bool) {
        let room = MAX_COMMAND_OUTPUT.saturating_sub(self.stdout.len() + self.stderr.len());
        if data.len() > room {
            self.truncated = true;
        }
        let part = &data[..data.len().min(room)];
        if stderr { self.stderr.extend_from_slice(part) } else { self.stdout.extend_from_slice(part) }
    }
}

fn too_much_output(command: &str) -> TransportError {
    TransportError::Other(format!(
        "`{command}` wrote more than {} KiB of output, the most fleetboot reads from one command",
        MAX_COMMAND_OUTPUT / 1024
    ))
}

/// The read buffer of one connection: a handshake's packets and a short command's output fit;
/// larger reads bypass it.
const READ_BUFFER: usize = 4096;

pub struct SshClient {
    settings: SshSettings,
    /// russh configurations by the host-key algorithms to negotiate first (those known_hosts
    /// records for the host), built once per distinct list.
    configs: Mutex<HashMap<Vec<Algorithm>, Arc<client::Config>>>,
    credentials: Credentials,
    known_hosts: Arc<Mutex<KnownHosts>>,
    /// The key each host presented first in this run, whatever the policy: a key that
    /// changes across a reboot is an alarm even under insecure-ignore.
    seen_keys: Arc<Mutex<HashMap<String, PublicKey>>>,
}

impl SshClient {
    /// This process's client: the home directory's key files and the agent of
    /// `$SSH_AUTH_SOCK`, as `ssh` itself finds them. Every command builds its client here.
    pub fn for_this_user(settings: SshSettings) -> Result<SshClient, SshSetupError> {
        let agent = std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from);
        SshClient::new(settings, crate::adapters::system::home_dir().as_deref(), agent)
    }

    /// Loads keys and known_hosts up front, so a bad file fails before any host is contacted.
    pub fn new(settings: SshSettings, home: Option<&Path>, agent_socket: Option<PathBuf>) -> Result<SshClient, SshSetupError> {
        let credentials = if !settings.identities.is_empty() {
            Credentials::Keys(settings.identities.iter().map(|p| load_key(Path::new(p)).map(Identity::new)).collect::<Result<_, _>>()?)
        } else if let Some(socket) = agent_socket.filter(|s| s.exists()) {
            Credentials::Agent(socket)
        } else {
            let defaults: Vec<PathBuf> = ["id_ed25519", "id_ecdsa", "id_rsa"]
                .iter()
                .filter_map(|name| home.map(|h| h.join(".ssh").join(name)))
                .filter(|p| p.exists())
                .collect();
            if defaults.is_empty() {
                return Err(SshSetupError::NoIdentity);
            }
            Credentials::Keys(defaults.iter().map(|p| load_key(p).map(Identity::new)).collect::<Result<_, _>>()?)
        };
        let known = KnownHosts::read(Path::new(&settings.known_hosts))
            .map_err(|e| SshSetupError::KnownHosts { path: PathBuf::from(&settings.known_hosts), reason: e.to_string() })?;
        Ok(SshClient {
            settings,
            configs: Mutex::new(HashMap::new()),
            credentials,
            known_hosts: Arc::new(Mutex::new(known)),
            seen_keys: Default::default(),
        })
    }

    pub fn settings(&self) -> &SshSettings {
        &self.settings
    }

    /// The configuration for one host: the host-key algorithms of the keys known_hosts records
    /// for it are offered first, as OpenSSH does, so a host known only by its ECDSA or RSA key
    /// presents that key (and is judged by it) even when it also has an Ed25519 one.
    fn config_for(&self, address: &str, port: u16) -> Arc<client::Config> {
        let recorded = match self.settings.host_key_policy {
            HostKeyPolicy::InsecureIgnore => Vec::new(),
            _ => self.known_hosts.lock().unwrap().recorded_algorithms(address, port),
        };
        let mut configs = self.configs.lock().unwrap();
        configs
            .entry(recorded)
            .or_insert_with_key(|recorded| {
                let key = known_hosts::preferred_host_key_algorithms(recorded, &russh::Preferred::DEFAULT.key);
                Arc::new(client::Config {
                    keepalive_interval: Some(self.settings.keepalive_interval),
                    keepalive_max: 3,
                    nodelay: true,
                    preferred: russh::Preferred { key: key.into(), ..russh::Preferred::DEFAULT },
                    ..Default::default()
                })
            })
            .clone()
    }

    pub async fn connect(&self, host: &Host) -> Result<Handle<Verifier>, TransportError> {
        let port = host.port_or(self.settings.port);
        let addr = (host.address.as_str(), port);
        let stream = match tokio::time::timeout(self.settings.connect_timeout, TcpStream::connect(addr)).await {
            Err(_) => {
                return Err(TransportError::Unreachable(format!(
                    "no TCP answer from {}:{port} within {}",
                    host.address,
                    humantime::format_duration(self.settings.connect_timeout)
                )));
            }
            Ok(Err(e)) => return Err(TransportError::Unreachable(format!("{}:{port}: {e}", host.address))),
            Ok(Ok(stream)) => stream,
        };
        let _ = stream.set_nodelay(true);
        let verifier = Verifier {
            host: host.clone(),
            port,
            policy: self.settings.host_key_policy,
            known_hosts_path: PathBuf::from(&self.settings.known_hosts),
            known_hosts: self.known_hosts.clone(),
            seen_keys: self.seen_keys.clone(),
            rejection: Arc::new(Mutex::new(None)),
        };
        let rejection = verifier.rejection.clone();
        let handshake = async {
            // Buffered reads: russh reads each packet's length and then its body, two reads per
            // packet; through the buffer, one read takes whatever has arrived.
            let stream = tokio::io::BufReader::with_capacity(READ_BUFFER, stream);
            let mut handle = client::connect_stream(self.config_for(&host.address, port), stream, verifier).await.map_err(|e| {
                match rejection.lock().unwrap().take() {
                    Some(reason) => TransportError::HostKey(reason),
                    None => classify(e),
                }
            })?;
            self.authenticate(&mut handle).await?;
            Ok::<_, TransportError>(handle)
        };
        match tokio::time::timeout(self.settings.auth_timeout, handshake).await {
            Ok(result) => result,
            Err(_) => Err(TransportError::Timeout(format!(
                "SSH handshake and authentication with {} took longer than {}",
                host.name,
                humantime::format_duration(self.settings.auth_timeout)
            ))),
        }
    }

    async fn authenticate(&self, handle: &mut Handle<Verifier>) -> Result<(), TransportError> {
        let user = self.settings.user.clone();
        match &self.credentials {
            Credentials::Keys(keys) => {
                for Identity { key, ed25519 } in keys {
                    let result = match ed25519 {
                        Some(signer) => handle
                            .authenticate_publickey_with(user.clone(), key.public_key().clone(), None, &mut { signer })
                            .await
                            .map_err(|e| match e {
                                russh::AgentAuthError::Send(_) => TransportError::Unreachable("connection closed".into()),
                                other => TransportError::Auth(other.to_string()),
                            })?,
                        None => {
                            let hash = if key.algorithm().is_rsa() { handle_rsa_hash(handle).await } else { None };
                            handle
                                .authenticate_publickey(user.clone(), PrivateKeyWithHashAlg::new(key.clone(), hash))
                                .await
                                .map_err(classify)?
                        }
                    };
                    if result.success() {
                        return Ok(());
                    }
                }
                Err(TransportError::Auth(format!("no key was accepted for user {user}")))
            }
            Credentials::Agent(socket) => {
                let mut agent = russh::keys::agent::client::AgentClient::connect_uds(socket)
                    .await
                    .map_err(|e| TransportError::Auth(format!("ssh-agent at {}: {e}", socket.display())))?;
                let identities = agent.request_identities().await.map_err(|e| TransportError::Auth(format!("ssh-agent: {e}")))?;
                for identity in identities {
                    let russh::keys::agent::AgentIdentity::PublicKey { key, .. } = identity else { continue };
                    let hash = if key.algorithm().is_rsa() { handle_rsa_hash(handle).await } else { None };
                    match handle.authenticate_publickey_with(user.clone(), key, hash, &mut agent).await {
                        Ok(result) if result.success() => return Ok(()),
                        Ok(_) => continue,
                        Err(e) => return Err(TransportError::Auth(format!("ssh-agent: {e}"))),
                    }
                }
                Err(TransportError::Auth(format!("no ssh-agent key was accepted for user {user}")))
            }
        }
    }

    /// Connects, runs `command`, disconnects. A dropped connection mid-command is an outcome
    /// (`exit: None`), not an error: it is how a rebooting host usually answers.
    pub async fn run(&self, host: &Host, command: &str) -> Result<CommandOutput, TransportError> {
        let handle = self.connect(host).await?;
        let output = exec(&handle, command, self.settings.command_timeout).await;
        let _ = handle.disconnect(Disconnect::ByApplication, "", "en").await;
        match output {
            Ok(out) if out.truncated => Err(too_much_output(command)),
            other => other,
        }
    }
}

async fn handle_rsa_hash(handle: &Handle<Verifier>) -> Option<HashAlg> {
    handle.best_supported_rsa_hash().await.ok().flatten().flatten()
}

pub async fn exec(handle: &Handle<Verifier>, command: &str, limit: Duration) -> Result<CommandOutput, TransportError> {
    match handle.channel_open_session().await {
        Ok(channel) => exec_on(channel, command, limit).await,
        Err(e) => Err(classify(e)),
    }
}

/// Runs `command` on a session channel that is open.
async fn exec_on(mut channel: russh::Channel<client::Msg>, command: &str, limit: Duration) -> Result<CommandOutput, TransportError> {
    let mut output = CommandOutput::default();
    if let Err(e) = channel.exec(true, command).await {
        return Err(classify(e));
    }
    let deadline = crate::adapters::system::deadline_after(limit);
    loop {
        match tokio::time::timeout_at(deadline, channel.wait()).await {
            Err(_) => {
                output.timed_out = true;
                break;
            }
            Ok(None) => break,
            Ok(Some(ChannelMsg::Data { data })) => output.keep(&data, false),
            Ok(Some(ChannelMsg::ExtendedData { data, ext: 1 })) => output.keep(&data, true),
            Ok(Some(ChannelMsg::ExitStatus { exit_status })) => output.exit = Some(exit_status),
            Ok(Some(ChannelMsg::ExitSignal { signal_name, .. })) => {
                output.keep(format!("killed by signal {signal_name:?}").as_bytes(), true);
                output.exit.get_or_insert(128);
                output.signal = Some(format!("{signal_name:?}"));
            }
            Ok(Some(_)) => {}
        }
    }
    Ok(output)
}

fn classify(error: russh::Error) -> TransportError {
    use russh::Error as E;
    match error {
        E::IO(e) => TransportError::Unreachable(e.to_string()),
        E::Disconnect | E::HUP | E::ConnectionTimeout | E::KeepaliveTimeout | E::InactivityTimeout | E::SendError => {
            TransportError::Unreachable(format!("connection closed: {error}"))
        }
        E::NotAuthenticated | E::NoAuthMethod => TransportError::Auth(error.to_string()),
        other => TransportError::Other(format!("SSH: {other}")),
    }
}

fn load_key(path: &Path) -> Result<Arc<PrivateKey>, SshSetupError> {
    russh::keys::load_secret_key(path, None).map(Arc::new).map_err(|e| SshSetupError::Identity {
        path: path.to_owned(),
        reason: match e {
            russh::keys::Error::KeyIsEncrypted => "the key is encrypted; load it into ssh-agent instead".into(),
            other => other.to_string(),
        },
    })
}

/// russh's client handler: decides whether the server's key is trusted.
pub struct Verifier {
    host: Host,
    port: u16,
    policy: HostKeyPolicy,
    known_hosts_path: PathBuf,
    known_hosts: Arc<Mutex<KnownHosts>>,
    seen_keys: Arc<Mutex<HashMap<String, PublicKey>>>,
    rejection: Arc<Mutex<Option<String>>>,
}

impl Verifier {
    fn judge(&self, key: &PublicKey) -> Result<(), String> {
        let host = &self.host;
        {
            let mut seen = self.seen_keys.lock().unwrap();
            match seen.get(&host.name) {
                Some(first) if first.key_data() != key.key_data() => {
                    return Err(format!(
                        "host key of {host} ({}) changed during this run (now {}): possible impostor",
                        host.address,
                        key.fingerprint(HashAlg::Sha256)
                    ));
                }
                Some(_) => {}
                None => {
                    seen.insert(host.name.clone(), key.clone());
                }
            }
        }
        if self.policy == HostKeyPolicy::InsecureIgnore {
            return Ok(());
        }
        let mut known = self.known_hosts.lock().unwrap();
        let file = self.known_hosts_path.display();
        match known.verify(&host.address, self.port, key) {
            Verdict::Known => Ok(()),
            Verdict::Changed { line } => Err(format!(
                "host key of {host} ({}) does not match {}; it presented {}",
                known_hosts::lookup_name(&host.address, self.port),
                known_hosts::describe_line(&self.known_hosts_path, line),
                key.fingerprint(HashAlg::Sha256)
            )),
            Verdict::Revoked { line } => {
                Err(format!("host key of {host} is revoked in {}", known_hosts::describe_line(&self.known_hosts_path, line)))
            }
            Verdict::Unknown if self.policy == HostKeyPolicy::AcceptNew => {
                known_hosts::append(&self.known_hosts_path, &host.address, self.port, key)
                    .map_err(|e| format!("failed to record the host key of {host} in {file}: {e}"))?;
                *known = KnownHosts::read(&self.known_hosts_path).map_err(|e| format!("failed to re-read {file}: {e}"))?;
                Ok(())
            }
            Verdict::Unknown => Err(format!(
                "host key of {host} ({}) is not in {file}; its fingerprint is {} (use --host-key-policy accept-new to record it)",
                known_hosts::lookup_name(&host.address, self.port),
                key.fingerprint(HashAlg::Sha256)
            )),
        }
    }
}

impl client::Handler for Verifier {
    type Error = russh::Error;

    async fn check_server_key(&mut self, server_key: &russh::keys::PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let key = match server_key {
            russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            russh::keys::PublicKeyOrCertificate::Certificate(cert) => PublicKey::from(cert.public_key().clone()),
        };
        match self.judge(&key) {
            Ok(()) => Ok(true),
            Err(reason) => {
                *self.rejection.lock().unwrap() = Some(reason);
                Ok(false)
            }
        }
    }
}

/// Whether an SSH server still answers on `address:port`: its identification line read and
/// ours sent (RFC 4253 4.2), then the connection closed before any key exchange, so no
/// cryptography on either side. A shutdown stops sshd's listener before the machine goes down.
/// Speaking the identification exchange keeps the check out of intrusion filters that count
/// connections closed before it (fail2ban's sshd filter, in its `ddos` and `aggressive` modes,
/// counts "Did not receive identification string"; a close after it, "Connection closed by
/// HOST [preauth]", it never counts).
async fn sshd_answers(address: &str, port: u16) -> bool {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let Ok(stream) = TcpStream::connect((address, port)).await else { return false };
    let mut stream = tokio::io::BufReader::new(stream);
    // The server may send other lines before its version (RFC 4253 4.2): a few are read, bounded.
    let mut line = Vec::new();
    for _ in 0..16 {
        line.clear();
        match (&mut stream).take(1024).read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return false,
            Ok(_) if line.starts_with(b"SSH-") => {
                let answered = stream.get_mut().write_all(b"SSH-2.0-fleetboot_port_check\r\n").await.is_ok();
                let _ = stream.get_mut().shutdown().await;
                // Read to the server's end: a socket closed with unread data (its key exchange
                // offer) is reset, and a reset can reach the server before our line does.
                let mut rest = [0u8; 4096];
                while matches!(stream.read(&mut rest).await, Ok(n) if n > 0) {}
                return answered;
            }
            Ok(_) => {}
        }
    }
    false
}

/// SSH as a power transport: the reboot, cancel and boot-ID commands from the settings.
pub struct SshTransport {
    pub client: SshClient,
    reboot: RebootSettings,
    /// The connection opened for each host whose turn is near (`warm_up`), then the one its
    /// boot ID was read on right before its reboot: the boot ID is read and `send_reboot`
    /// sends on it (no handshake between a freed slot and the next reboot), `release` drops
    /// what is left. Never used for anything else.
    kept: Mutex<HashMap<String, Handle<Verifier>>>,
    /// What was read right before each host's reboot, from that read until `release`.
    read_before: Mutex<HashMap<String, ReadBefore>>,
    /// Permits for the read right before a reboot that must open a connection of its own (none
    /// kept for the host): [`FIRST_LOOKS_AT_ONCE`].
    first_looks: tokio::sync::Semaphore,
    /// The connection a reboot was sent on (exit 0), while it lives, with the boot ID read
    /// before it: the watch's probes read on it while the host is still up (a connection
    /// opened before the reboot can only reach the system that was running then), instead of
    /// a handshake each poll interval: at 5,000 hosts those were six handshakes per host, two
    /// thirds of them before the node even went down. Its answer counts only while an SSH
    /// server also answers on the host's port ([`sshd_answers`]): a shutdown stops sshd's
    /// listener first, and sessions can outlive it (OpenSSH's unit stops only the listener,
    /// `KillMode=process`), so a session alone would hide that the host is going down. Any
    /// other answer on it, none,
    /// or a listener gone drops it, and the probe connects anew: the node's going down
    /// (refused) and its return (a new boot ID) are only ever read on connections of their own,
    /// opened after the reboot.
    sent_on: Mutex<HashMap<String, (Handle<Verifier>, String)>>,
    /// Hosts whose turn began (their boot ID read right before the reboot), and hosts released
    /// (their task ended, or they were skipped): a warm-up that connects late keeps nothing for
    /// them (the reboot may be out already, and the soft-reboot count after it must not read on
    /// a connection opened before it; after the release nothing would ever close it).
    turn_began: Mutex<std::collections::HashSet<String>>,
}

/// How many reads right before a reboot open their connection at once. A run's first wave has
/// no connection opened ahead of its turn: its thousand handshakes at once shared the cores so
/// evenly that the first ended with nearly all the others, 160 ms in at 10,000/1,000, and no
/// reboot went out before. In turns of 64 the first hosts go while the others still negotiate;
/// where the cores are the limit, the wave's last host is no later (the same work). The reads
/// later waves make on connections opened ahead of their turn take no permit.
const FIRST_LOOKS_AT_ONCE: usize = 64;

/// How long a first look waits for one of [`FIRST_LOOKS_AT_ONCE`]'s turns before it connects
/// without one. A permit is held through the TCP connect and the handshake, so hosts that
/// never answer (an sshd that accepts and stays silent, a rack unreachable) would hold them
/// for their whole timeouts, and a slow link (64 handshakes of four round trips each: 320 a
/// second over 50 ms) would queue the wave behind them: neither may hold up the other hosts'
/// reads by more than this.
const FIRST_LOOK_TURN_WAIT: Duration = Duration::from_secs(1);

/// What was read on a host right before its reboot.
struct ReadBefore {
    boot_id: String,
    /// The soft-reboot count, read beside the boot ID on a channel of its own, until the
    /// reboot is sent: the runner asks for it right after the boot ID, and one after the other
    /// they were two round trips between a freed slot and the next reboot. A count asked for
    /// after the reboot is read anew, on a connection of its own. (`None` when it could not
    /// be read there: asked for, it is read as before.)
    soft_reboots: Option<u64>,
}

impl SshTransport {
    pub fn new(client: SshClient, reboot: RebootSettings) -> SshTransport {
        SshTransport {
            client,
            reboot,
            kept: Mutex::new(HashMap::new()),
            turn_began: Mutex::default(),
            read_before: Mutex::default(),
            first_looks: tokio::sync::Semaphore::new(FIRST_LOOKS_AT_ONCE),
            sent_on: Mutex::default(),
        }
    }

    /// The boot ID on the connection `host`'s reboot was sent on, when that connection still
    /// answers (bounded by the connect timeout) the boot ID read before the reboot and an SSH
    /// server still answers on the host's port: the host is still up, not rebooted yet.
    /// `None` (the connection dropped): connect anew.
    async fn read_on_sent(&self, host: &Host) -> Option<String> {
        let (handle, before) = self.sent_on.lock().unwrap().remove(&host.name)?;
        let command = &self.reboot.boot_id_command;
        let bound = self.client.settings.connect_timeout.min(self.client.settings.command_timeout);
        let read = async {
            let channel = handle.channel_open_session().await.ok()?;
            let output = self.judge(command, exec_on(channel, command, bound).await).ok()?;
            parse_boot_id(&output.stdout).ok()
        };
        let listening = sshd_answers(&host.address, host.port_or(self.client.settings.port));
        match tokio::time::timeout(bound, async { tokio::join!(read, listening) }).await {
            Ok((Some(id), true)) if id == before && !handle.is_closed() => {
                self.sent_on.lock().unwrap().insert(host.name.clone(), (handle, before));
                Some(id)
            }
            _ => {
                let _ = handle.disconnect(Disconnect::ByApplication, "", "en").await;
                None
            }
        }
    }

    fn take_kept(&self, host: &Host) -> Option<Handle<Verifier>> {
        self.kept.lock().unwrap().remove(&host.name)
    }

    /// A session channel on the connection kept for `host`, if it is still open and opens one
    /// within the connect timeout. Nothing has been sent to the host when this returns None.
    async fn kept_channel(&self, host: &Host) -> Option<(Handle<Verifier>, russh::Channel<client::Msg>)> {
        let handle = self.take_kept(host).filter(|h| !h.is_closed())?;
        match tokio::time::timeout(self.client.settings.connect_timeout, handle.channel_open_session()).await {
            Ok(Ok(channel)) => Some((handle, channel)),
            _ => None,
        }
    }

    /// The boot ID on `channel` and, at the same time on a second channel of the same
    /// connection, the soft-reboot count ([`ReadBefore::soft_reboots`]).
    async fn boot_id_beside_soft_count(
        &self,
        handle: &Handle<Verifier>,
        channel: russh::Channel<client::Msg>,
    ) -> (Result<CommandOutput, TransportError>, Option<u64>) {
        let limit = self.client.settings.command_timeout;
        let soft = async {
            let command = fleetboot_core::transport::SOFT_REBOOTS_COMMAND;
            let channel = tokio::time::timeout(self.client.settings.connect_timeout, handle.channel_open_session()).await.ok()?.ok()?;
            let output = self.judge(command, exec_on(channel, command, limit).await).ok()?;
            fleetboot_core::transport::parse_soft_reboots(&output.stdout)
        };
        tokio::join!(exec_on(channel, &self.reboot.boot_id_command, limit), soft)
    }

    async fn run_ok(&self, host: &Host, command: &str) -> Result<CommandOutput, TransportError> {
        let output = self.client.run(host, command).await;
        self.judge(command, output)
    }

    /// A command's output as a result: it finished in time with exit status 0.
    fn judge(&self, command: &str, output: Result<CommandOutput, TransportError>) -> Result<CommandOutput, TransportError> {
        let output = match output? {
            out if out.truncated => return Err(too_much_output(command)),
            out => out,
        };
        if output.timed_out {
            return Err(TransportError::Timeout(format!(
                "`{command}` did not finish within {}",
                humantime::format_duration(self.client.settings.command_timeout)
            )));
        }
        match output.exit {
            Some(0) => Ok(output),
            Some(exit) => Err(TransportError::CommandFailed {
                command: command.to_owned(),
                exit,
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            }),
            None => Err(TransportError::Unreachable(format!("connection closed while `{command}` ran"))),
        }
    }
}

impl PowerTransport for SshTransport {
    async fn read_boot_id(&self, host: &Host) -> Result<String, TransportError> {
        if let Some(still) = self.read_on_sent(host).await {
            return Ok(still);
        }
        let output = self.run_ok(host, &self.reboot.boot_id_command).await?;
        parse_boot_id(&output.stdout)
    }

    async fn read_boot_id_before_reboot(&self, host: &Host) -> Result<String, TransportError> {
        self.turn_began.lock().unwrap().insert(host.name.clone());
        let command = &self.reboot.boot_id_command;
        // On the connection opened when the host's turn came near, while it is still open;
        // otherwise (never opened, closed since, no channel in time: nothing was run on it) on
        // a new one. Either way the boot ID is read now, right before the reboot.
        let kept = match self.kept_channel(host).await {
            Some((handle, channel)) => {
                let (output, soft) = self.boot_id_beside_soft_count(&handle, channel).await;
                match self.judge(command, output) {
                    // The kept connection broke under the read (the host went away since it
                    // was opened): a new one says whether the host is reachable now, as before.
                    Err(e) if e.is_transient() => {
                        let _ = handle.disconnect(Disconnect::ByApplication, "", "en").await;
                        None
                    }
                    output => Some((handle, output, soft)),
                }
            }
            None => None,
        };
        let (handle, output, soft_reboots) = match kept {
            Some(kept) => kept,
            None => {
                let handle = {
                    let _turn = tokio::time::timeout(FIRST_LOOK_TURN_WAIT, self.first_looks.acquire()).await;
                    self.client.connect(host).await?
                };
                let (output, soft) = match handle.channel_open_session().await {
                    Ok(channel) => self.boot_id_beside_soft_count(&handle, channel).await,
                    Err(e) => (Err(classify(e)), None),
                };
                (handle, self.judge(command, output), soft)
            }
        };
        let boot_id = output.and_then(|out| parse_boot_id(&out.stdout));
        match &boot_id {
            Ok(id) => self.read_before.lock().unwrap().insert(host.name.clone(), ReadBefore { boot_id: id.clone(), soft_reboots }),
            Err(_) => self.read_before.lock().unwrap().remove(&host.name),
        };
        if boot_id.is_ok() && !handle.is_closed() {
            self.kept.lock().unwrap().insert(host.name.clone(), handle);
        } else {
            let _ = handle.disconnect(Disconnect::ByApplication, "", "en").await;
        }
        boot_id
    }

    async fn soft_reboot_count(&self, host: &Host) -> Option<u64> {
        if let Some(count) = self.read_before.lock().unwrap().get_mut(&host.name).and_then(|read| read.soft_reboots.take()) {
            return Some(count);
        }
        let command = fleetboot_core::transport::SOFT_REBOOTS_COMMAND;
        let limit = self.client.settings.command_timeout;
        // Right before a reboot, on the connection the boot ID was just read on (kept for it).
        let output = match self.kept_channel(host).await {
            Some((handle, channel)) => {
                let output = exec_on(channel, command, limit).await;
                if !handle.is_closed() {
                    self.kept.lock().unwrap().insert(host.name.clone(), handle);
                }
                output
            }
            None => self.client.run(host, command).await,
        };
        self.judge(command, output).ok().and_then(|out| fleetboot_core::transport::parse_soft_reboots(&out.stdout))
    }

    async fn warm_up(&self, host: &Host) {
        let turn_began = || self.turn_began.lock().unwrap().contains(&host.name);
        if turn_began() || self.kept.lock().unwrap().contains_key(&host.name) {
            return;
        }
        // Connected outside the locks: kept only if the host's turn has not begun (nor was it
        // released) meanwhile and no connection is kept for it yet.
        let Ok(handle) = self.client.connect(host).await else { return };
        let spare = {
            let turn = self.turn_began.lock().unwrap();
            let mut kept = self.kept.lock().unwrap();
            match kept.entry(host.name.clone()) {
                std::collections::hash_map::Entry::Vacant(slot) if !turn.contains(&host.name) => {
                    slot.insert(handle);
                    None
                }
                _ => Some(handle),
            }
        };
        if let Some(handle) = spare {
            let _ = handle.disconnect(Disconnect::ByApplication, "", "en").await;
        }
    }

    async fn release(&self, host: &Host) {
        // Kept, not removed: a warm-up still queued for it opens nothing now.
        self.turn_began.lock().unwrap().insert(host.name.clone());
        self.read_before.lock().unwrap().remove(&host.name);
        let sent_on = self.sent_on.lock().unwrap().remove(&host.name).map(|(handle, _)| handle);
        for handle in self.take_kept(host).into_iter().chain(sent_on) {
            let _ = handle.disconnect(Disconnect::ByApplication, "", "en").await;
        }
    }

    async fn send_reboot(&self, host: &Host) -> Result<Delivery, TransportError> {
        // A count read before this reboot never answers for after it.
        let before = self.read_before.lock().unwrap().get_mut(&host.name).map(|read| {
            read.soft_reboots = None;
            read.boot_id.clone()
        });
        let command = &self.reboot.command;
        let limit = self.client.settings.command_timeout;
        // On the connection the boot ID was just read on, when it is still there; otherwise
        // (closed, or no channel in time: nothing was sent on it) on a new one.
        let (handle, output) = match self.kept_channel(host).await {
            Some((handle, channel)) => {
                let output = exec_on(channel, command, limit).await;
                (handle, output)
            }
            None => {
                let handle = self.client.connect(host).await?;
                let output = exec(&handle, command, limit).await;
                (handle, output)
            }
        };
        // Handed over (exit 0) on a connection still open: kept for the probes while the host
        // is still up, with the boot ID read right before (none read: nothing to compare to).
        match before {
            Some(before) if !handle.is_closed() && matches!(&output, Ok(out) if out.exit == Some(0) && !out.timed_out) => {
                let replaced = self.sent_on.lock().unwrap().insert(host.name.clone(), (handle, before));
                if let Some((old, _)) = replaced {
                    let _ = old.disconnect(Disconnect::ByApplication, "", "en").await;
                }
            }
            _ => {
                let _ = handle.disconnect(Disconnect::ByApplication, "", "en").await;
            }
        }
        match output {
            // The request may have gone out before the connection broke.
            Err(e) if e.is_transient() => Ok(Delivery::ConnectionDropped),
            Err(e) => Err(e),
            Ok(out) if out.timed_out => Ok(Delivery::NoAnswer),
            // Killed by a signal while it ran: the command reached the node, and a node going
            // down kills the session that asked for it. The reboot may be under way.
            Ok(out) if out.signal.is_some() => Ok(Delivery::ConnectionDropped),
            Ok(out) => match out.exit {
                Some(0) => Ok(Delivery::ExitZero),
                None => Ok(Delivery::ConnectionDropped),
                Some(exit) => Err(TransportError::CommandFailed {
                    command: command.clone(),
                    exit,
                    stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                }),
            },
        }
    }

    async fn cancel_reboot(&self, host: &Host) -> Result<(), TransportError> {
        self.run_ok(host, &self.reboot.cancel_command).await.map(|_| ())
    }

    async fn run_check(&self, host: &Host, command: &str) -> Result<(), TransportError> {
        self.run_ok(host, command).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// One real OpenSSH sshd on loopback, from scripts/fake-fleet.sh as the integration tests'
    /// fleet (an unprivileged login user, never root), stopped by PID when dropped.
    struct OneHost {
        dir: tempfile::TempDir,
        endpoint: std::net::SocketAddr,
        user: String,
    }

    impl OneHost {
        fn up() -> OneHost {
            let dir = tempfile::Builder::new().prefix("fleetboot-ssh-").tempdir().unwrap();
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            // A 127.x.y.0/24 of this process's own, beside other test processes' fleets.
            let n = std::process::id();
            let net = format!("127.{}.{}", 1 + n % 250, 1 + (n / 250) % 250);
            let up = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fake-fleet.sh"))
                .args(["up", dir.path().to_str().unwrap(), "1", &port.to_string(), &net])
                .output()
                .unwrap();
            let user = std::fs::read_to_string(dir.path().join("user")).unwrap_or_default().trim().to_owned();
            let host = OneHost { endpoint: format!("{net}.1:{port}").parse().unwrap(), dir, user };
            assert!(up.status.success(), "fake-fleet up: {}", String::from_utf8_lossy(&up.stderr));
            assert!(!host.user.is_empty() && host.user != "root", "logs in as an unprivileged user, not {:?}", host.user);
            host
        }

        /// A client of this host reached at `relay` (known_hosts records its key there).
        fn client(&self, relay: std::net::SocketAddr) -> SshClient {
            let key = std::fs::read_to_string(self.dir.path().join("nodes/h001/ssh_host_ed25519_key.pub")).unwrap();
            let known_hosts = self.dir.path().join("relay_known_hosts");
            let key = key.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
            std::fs::write(&known_hosts, format!("[{}]:{} {key}\n", relay.ip(), relay.port())).unwrap();
            let settings = SshSettings {
                user: self.user.clone(),
                port: relay.port(),
                identities: vec![self.dir.path().join("id_ed25519").to_str().unwrap().to_owned()],
                known_hosts: known_hosts.to_str().unwrap().to_owned(),
                host_key_policy: HostKeyPolicy::Strict,
                connect_timeout: Duration::from_secs(30),
                // The handshake waits for the relay to open: no bound of the test's own.
                auth_timeout: Duration::from_secs(600),
                command_timeout: Duration::from_secs(30),
                connect_attempts: 1,
                keepalive_interval: Duration::from_secs(60),
            };
            SshClient::new(settings, None, None).unwrap()
        }
    }

    impl Drop for OneHost {
        fn drop(&mut self) {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fake-fleet.sh");
            let _ = Command::new(script).args(["down", self.dir.path().to_str().unwrap()]).status();
        }
    }

    /// A TCP relay to `to` that holds each connection it accepts, before any byte of the
    /// server's reaches the client, until `open` says so. Each accepted connection is told on
    /// `accepted`, and its end (both sides closed, or one broken) on `ended`.
    async fn holding_relay(
        to: std::net::SocketAddr,
        open: tokio::sync::watch::Receiver<bool>,
    ) -> (std::net::SocketAddr, tokio::sync::mpsc::UnboundedReceiver<()>, tokio::sync::mpsc::UnboundedReceiver<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = listener.local_addr().unwrap();
        let (accepted_tx, accepted) = tokio::sync::mpsc::unbounded_channel();
        let (ended_tx, ended) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let _ = accepted_tx.send(());
                let (mut open, ended_tx) = (open.clone(), ended_tx.clone());
                tokio::spawn(async move {
                    let _ = open.wait_for(|open| *open).await;
                    // A server it cannot reach ends the relayed connection too (the test then
                    // fails on what it asserts, rather than wait for an end never sent).
                    if let Ok(mut server) = TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                    let _ = ended_tx.send(());
                });
            }
        });
        (at, accepted, ended)
    }

    /// A warm-up whose connect ends after its host was released keeps nothing: the connection
    /// it opened is closed, not left in `kept` for the rest of the run (nothing would close it).
    #[tokio::test]
    async fn a_warm_up_that_connects_after_its_release_keeps_nothing() {
        let sshd = OneHost::up();
        let (open, opened) = tokio::sync::watch::channel(false);
        let (relay, mut accepted, mut ended) = holding_relay(sshd.endpoint, opened).await;
        let transport = SshTransport::new(sshd.client(relay), RebootSettings::default());
        let host = Host { name: "h001".into(), address: relay.ip().to_string(), port: Some(relay.port()) };

        let warm_up = transport.warm_up(&host);
        tokio::pin!(warm_up);
        tokio::select! {
            () = &mut warm_up => panic!("the warm-up ended before its connection was let through"),
            _ = accepted.recv() => {}
        }
        // Released while the warm-up's handshake is held, then the handshake let through.
        transport.release(&host).await;
        open.send(true).unwrap();
        warm_up.await;
        assert!(!transport.kept.lock().unwrap().contains_key(&host.name), "a released host keeps no connection");
        ended.recv().await.expect("the warm-up's connection is closed");

        // The same warm-up for a host not released keeps its connection (it connects, and
        // authenticates, through this relay), open, until its release closes it.
        let other = Host { name: "h001-not-released".into(), ..host.clone() };
        transport.warm_up(&other).await;
        assert!(transport.kept.lock().unwrap().get(&other.name).is_some_and(|h| !h.is_closed()), "kept while not released");
        transport.release(&other).await;
        ended.recv().await.expect("its release closes it");
    }
}
