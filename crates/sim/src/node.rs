//! A simulated node: an SSH server (russh) on its own loopback address that answers the
//! boot-ID read and the reboot command, and really goes away while it "reboots": its sessions
//! close, connections are refused, and it comes back with a new boot ID.
//!
//! One file, past 500 lines: a node's SSH server and its boot cycle are one state machine.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{PrivateKey, PublicKey};
use russh::server::{Auth, Handler, Msg, Session};
use russh::{Channel, ChannelId};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// How long systemd waits before it starts a failed sshd again: `RestartSec=42s` in the
/// `sshd.service` of RHEL 9's openssh package (Fedora's likewise), which RHCOS nodes run.
const SSHD_RESTART: Duration = Duration::from_secs(42);

/// How long each phase of a simulated reboot takes.
#[derive(Clone, Copy, Debug)]
pub struct Timings {
    /// From `shutdown -r` to going down (systemd schedules a minute ahead).
    pub reboot_delay: Duration,
    /// Down: from going down to SSH answering again.
    pub boot_time: Duration,
    /// From going down until the node controller marks it NotReady.
    pub notready_after: Duration,
    /// From SSH answering until the kubelet reports Ready.
    pub kubelet_ready_after: Duration,
}

/// Faults a test or a rehearsal can switch on per node.
#[derive(Debug, Default)]
pub struct Faults {
    /// Goes down and never comes back.
    pub never_returns: AtomicBool,
    /// Comes back with the same boot ID (as if the reboot never happened).
    pub same_boot_id: AtomicBool,
    /// Closes every connection at once (as a firewall REJECT or a dead sshd would).
    pub refuse_ssh: AtomicBool,
    /// Accepts TCP and never speaks.
    pub hang_ssh: AtomicBool,
    /// Presents a new host key after the reboot.
    pub new_host_key_after_reboot: AtomicBool,
    /// Answers the reboot command like sudo without rights.
    pub refuse_sudo: AtomicBool,
    /// Hangs on the way down (a stuck unit, a hung kernel): SSH stops answering, the kubelet
    /// stops posting, the boot ID never changes. Only a hard reset through the BMC helps.
    pub hangs_on_reboot: AtomicBool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Up,
    RebootScheduled,
    Down,
}

/// What a node tells the cluster about itself.
#[derive(Debug, Clone)]
pub enum NodeEvent {
    WentDown(String),
    Booted(String),
}

pub struct SimNode {
    pub name: String,
    pub addr: SocketAddr,
    pub faults: Faults,
    /// False for a node with no SSH at all (BMC only).
    pub has_ssh: AtomicBool,
    /// Powered off through its BMC.
    pub powered_off: AtomicBool,
    /// Between a hard reset through the BMC and the boot: PowerState Off.
    pub power_cycling: AtomicBool,
    /// Hung (see [`Faults::hangs_on_reboot`]): only a hard reset helps.
    pub hung: AtomicBool,
    timings: Timings,
    boot_id: Mutex<String>,
    /// systemd's `SoftRebootsCount` (org.freedesktop.systemd1(5), Manager): soft reboots since
    /// the last full boot, 0 after a kernel boot.
    soft_reboots: std::sync::atomic::AtomicU64,
    phase: Mutex<Phase>,
    host_key: Mutex<PrivateKey>,
    authorized: PublicKey,
    ssh_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    reboot_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    events: mpsc::UnboundedSender<NodeEvent>,
    /// Timestamped history for tests: "reboot-requested", "down", "up", "ready" (in the API),
    /// "cancelled".
    pub history: Mutex<Vec<(u64, String)>>,
}

pub fn random_ed25519() -> PrivateKey {
    let mut seed = [0u8; 32];
    seed[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    seed[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    PrivateKey::from(Ed25519Keypair::from_seed(&seed))
}

pub fn new_boot_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

use crate::util::now_ms;

/// The key exchanges a node's sshd offers, as RHCOS's does: OpenShift 4.13 and later run RHCOS 9
/// (RHEL 9), whose OpenSSH 8.7p1 has no ML-KEM hybrid (`mlkem768x25519-sha256` came with OpenSSH
/// 9.9, first shipped by Red Hat in RHEL 10: redhat.com blog "Advancing post-quantum capabilities
/// of SSH in Red Hat Enterprise Linux"), and whose `DEFAULT` crypto policy lists these (the
/// fedora/rhel crypto-policies `tests/outputs/DEFAULT-opensshserver.txt`, less the SHA-1 ones
/// RHEL 9 dropped), in this order. russh's own default would offer ML-KEM first, a handshake that
/// costs both sides several times the X25519 one, which no SDN-era node negotiates.
const RHCOS_SSHD_KEX: &[russh::kex::Name] = &[
    russh::kex::CURVE25519,
    russh::kex::CURVE25519_PRE_RFC_8731,
    russh::kex::ECDH_SHA2_NISTP256,
    russh::kex::ECDH_SHA2_NISTP384,
    russh::kex::ECDH_SHA2_NISTP521,
    // RHCOS offers diffie-hellman-group-exchange-sha256 here too; left out: this server has no
    // group-exchange moduli to answer it with (russh's `lookup_dh_gex_group`).
    russh::kex::DH_G14_SHA256,
    russh::kex::DH_G16_SHA512,
    russh::kex::DH_G18_SHA512,
    // Not algorithms: the extension negotiation and OpenSSH's strict key exchange (CVE-2023-48795,
    // backported to RHEL 9's 8.7p1), which russh takes from the same list.
    russh::kex::EXTENSION_SUPPORT_AS_SERVER,
    russh::kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
];

impl SimNode {
    pub fn new(
        name: String,
        addr: SocketAddr,
        timings: Timings,
        authorized: PublicKey,
        events: mpsc::UnboundedSender<NodeEvent>,
    ) -> Arc<SimNode> {
        Arc::new(SimNode {
            name,
            addr,
            faults: Faults::default(),
            has_ssh: AtomicBool::new(true),
            powered_off: AtomicBool::new(false),
            power_cycling: AtomicBool::new(false),
            hung: AtomicBool::new(false),
            timings,
            boot_id: Mutex::new(new_boot_id()),
            soft_reboots: std::sync::atomic::AtomicU64::new(0),
            phase: Mutex::new(Phase::Up),
            host_key: Mutex::new(random_ed25519()),
            authorized,
            ssh_task: Mutex::new(None),
            reboot_task: Mutex::new(None),
            events,
            history: Mutex::new(Vec::new()),
        })
    }

    /// Switches a fault (a field of [`Faults`]) by name.
    pub fn set_fault(&self, name: &str, on: bool) -> Result<(), String> {
        let switch = match name {
            "never_returns" => &self.faults.never_returns,
            "same_boot_id" => &self.faults.same_boot_id,
            "refuse_ssh" => &self.faults.refuse_ssh,
            "hang_ssh" => &self.faults.hang_ssh,
            "new_host_key_after_reboot" => &self.faults.new_host_key_after_reboot,
            "refuse_sudo" => &self.faults.refuse_sudo,
            "hangs_on_reboot" => &self.faults.hangs_on_reboot,
            other => {
                return Err(format!(
                    "unknown fault {other:?} (never_returns, same_boot_id, refuse_ssh, hang_ssh, new_host_key_after_reboot, refuse_sudo, hangs_on_reboot)"
                ));
            }
        };
        switch.store(on, Ordering::SeqCst);
        Ok(())
    }

    pub fn boot_id(&self) -> String {
        self.boot_id.lock().unwrap().clone()
    }

    pub fn phase(&self) -> Phase {
        *self.phase.lock().unwrap()
    }

    pub fn host_public_key(&self) -> PublicKey {
        self.host_key.lock().unwrap().public_key().clone()
    }

    pub fn timings(&self) -> Timings {
        self.timings
    }

    pub(crate) fn note(&self, what: &str) {
        self.history.lock().unwrap().push((now_ms(), what.to_owned()));
    }

    /// Starts serving SSH (a no-op for a node without SSH). Binding errors are returned so a
    /// simulation that cannot claim its addresses fails at start.
    pub async fn start_ssh(self: &Arc<Self>) -> std::io::Result<()> {
        if !self.has_ssh.load(Ordering::SeqCst) {
            return Ok(());
        }
        let listener = TcpListener::bind(self.addr).await?;
        let node = self.clone();
        let config = Arc::new(russh::server::Config {
            keys: vec![self.host_key.lock().unwrap().clone()],
            auth_rejection_time: Duration::from_millis(50),
            auth_rejection_time_initial: Some(Duration::ZERO),
            inactivity_timeout: Some(Duration::from_secs(600)),
            nodelay: true,
            preferred: russh::Preferred { kex: RHCOS_SSHD_KEX.into(), ..russh::Preferred::DEFAULT },
            ..Default::default()
        });
        let task = tokio::spawn(async move {
            // Dropping this set (when the task is aborted) ends every session: the reboot.
            let mut sessions = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                if node.faults.refuse_ssh.load(Ordering::SeqCst) {
                    drop(stream);
                    continue;
                }
                if node.faults.hang_ssh.load(Ordering::SeqCst) || node.hung.load(Ordering::SeqCst) {
                    sessions.spawn(async move {
                        let _held = stream;
                        std::future::pending::<()>().await;
                    });
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let handler = Connection { node: node.clone() };
                let config = config.clone();
                sessions.spawn(async move {
                    if let Ok(session) = russh::server::run_stream(config, stream, handler).await {
                        // russh runs the session on a task of its own, which aborting this one
                        // would leave running: the guard ends it when this task goes (the node
                        // goes down), as a real host's shutdown ends its sshd's sessions (systemd
                        // v252 src/shutdown/shutdown.c: `broadcast_signal` SIGTERM then SIGKILL to
                        // every remaining process before the reboot).
                        let _ends_with_the_node = EndsWithTheNode(session.handle());
                        let _ = session.await;
                    }
                });
                while sessions.try_join_next().is_some() {}
            }
        });
        *self.ssh_task.lock().unwrap() = Some(task);
        Ok(())
    }

    fn stop_ssh(&self) {
        if let Some(task) = self.ssh_task.lock().unwrap().take() {
            task.abort();
        }
    }

    /// Schedules a reboot as `shutdown -r` does; a second request while one is pending is a
    /// no-op. Returns false when the node is already going down.
    pub fn schedule_reboot(self: &Arc<Self>, delay: Duration) -> bool {
        let mut phase = self.phase.lock().unwrap();
        if *phase != Phase::Up {
            self.note("reboot-requested-again");
            return false;
        }
        *phase = Phase::RebootScheduled;
        self.note("reboot-requested");
        let node = self.clone();
        *self.reboot_task.lock().unwrap() = Some(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            node.go_down_and_boot(false).await;
        }));
        true
    }

    /// A hard reset through the BMC (ForceRestart, PowerCycle): down now, whatever state
    /// the node is in, hung included.
    pub fn power_cycle(self: &Arc<Self>) {
        if let Some(task) = self.reboot_task.lock().unwrap().take() {
            task.abort();
        }
        *self.phase.lock().unwrap() = Phase::RebootScheduled;
        self.hung.store(false, Ordering::SeqCst);
        self.powered_off.store(false, Ordering::SeqCst);
        self.power_cycling.store(true, Ordering::SeqCst);
        self.note("power-cycle");
        let node = self.clone();
        *self.reboot_task.lock().unwrap() = Some(tokio::spawn(async move { node.go_down_and_boot(true).await }));
    }

    /// An orderly restart requested through the BMC (ACPI): like `shutdown -r now`, ignored
    /// by a hung node.
    pub fn graceful_restart(self: &Arc<Self>) {
        if self.hung.load(Ordering::SeqCst) {
            self.note("graceful-restart-ignored");
            return;
        }
        self.schedule_reboot(Duration::ZERO);
    }

    /// ForceOff (or a GracefulShutdown the node honours): down, and stays down.
    pub fn power_off(self: &Arc<Self>, graceful: bool) {
        if graceful && self.hung.load(Ordering::SeqCst) {
            self.note("graceful-shutdown-ignored");
            return;
        }
        if self.powered_off.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(task) = self.reboot_task.lock().unwrap().take() {
            task.abort();
        }
        self.hung.store(false, Ordering::SeqCst);
        *self.phase.lock().unwrap() = Phase::Down;
        self.stop_ssh();
        self.note("power-off");
        let _ = self.events.send(NodeEvent::WentDown(self.name.clone()));
    }

    /// On: a powered-off node boots.
    pub fn power_on(self: &Arc<Self>) {
        if !self.powered_off.swap(false, Ordering::SeqCst) {
            return;
        }
        self.note("power-on");
        let node = self.clone();
        *self.reboot_task.lock().unwrap() = Some(tokio::spawn(async move { node.boot().await }));
    }

    /// `systemctl soft-reboot` (systemd >= 254, systemd-soft-reboot.service(8)): a
    /// userspace-only reboot. Every process is killed (SSH sessions end, the kubelet
    /// restarts), the service manager re-executes and boots userspace again, but the kernel
    /// keeps running: the boot ID (`/proc/sys/kernel/random/boot_id`, the kernel's) stays the
    /// same and `SoftRebootsCount` goes up by one. Userspace comes back after a fraction of a
    /// full boot (no firmware, boot loader, kernel or initrd).
    pub fn soft_reboot(self: &Arc<Self>) -> bool {
        let mut phase = self.phase.lock().unwrap();
        if *phase != Phase::Up {
            self.note("reboot-requested-again");
            return false;
        }
        *phase = Phase::RebootScheduled;
        self.note("soft-reboot-requested");
        let node = self.clone();
        *self.reboot_task.lock().unwrap() = Some(tokio::spawn(async move {
            *node.phase.lock().unwrap() = Phase::Down;
            node.stop_ssh();
            node.note("soft-reboot");
            let _ = node.events.send(NodeEvent::WentDown(node.name.clone()));
            tokio::time::sleep(node.timings.boot_time / 4).await;
            node.soft_reboots.fetch_add(1, Ordering::SeqCst);
            node.bring_up_ssh().await;
            *node.phase.lock().unwrap() = Phase::Up;
            node.note("up");
            let _ = node.events.send(NodeEvent::Booted(node.name.clone()));
        }));
        true
    }

    /// `shutdown -c`: cancels a reboot that has not begun.
    pub fn cancel_reboot(&self) -> bool {
        let mut phase = self.phase.lock().unwrap();
        if *phase != Phase::RebootScheduled {
            return false;
        }
        if let Some(task) = self.reboot_task.lock().unwrap().take() {
            task.abort();
        }
        *phase = Phase::Up;
        self.note("cancelled");
        true
    }

    /// `hard`: a reset from the BMC, which no hang survives.
    async fn go_down_and_boot(self: Arc<Self>, hard: bool) {
        if !hard && self.faults.hangs_on_reboot.load(Ordering::SeqCst) {
            // Stuck on the way down: new SSH connections freeze, the kubelet goes quiet, and
            // the boot ID stays.
            self.hung.store(true, Ordering::SeqCst);
            *self.phase.lock().unwrap() = Phase::Down;
            self.note("hung");
            let _ = self.events.send(NodeEvent::WentDown(self.name.clone()));
            return;
        }
        *self.phase.lock().unwrap() = Phase::Down;
        self.stop_ssh();
        self.note("down");
        let _ = self.events.send(NodeEvent::WentDown(self.name.clone()));
        if self.faults.never_returns.load(Ordering::SeqCst) {
            return;
        }
        self.boot().await;
    }

    async fn boot(self: Arc<Self>) {
        // Power comes back first; the OS takes its boot time.
        tokio::time::sleep(self.timings.boot_time / 4).await;
        self.power_cycling.store(false, Ordering::SeqCst);
        tokio::time::sleep(self.timings.boot_time - self.timings.boot_time / 4).await;
        if !self.faults.same_boot_id.load(Ordering::SeqCst) {
            *self.boot_id.lock().unwrap() = new_boot_id();
        }
        // A full boot starts the count again (org.freedesktop.systemd1(5): soft reboots "since
        // the last full boot").
        self.soft_reboots.store(0, Ordering::SeqCst);
        if self.faults.new_host_key_after_reboot.load(Ordering::SeqCst) {
            *self.host_key.lock().unwrap() = random_ed25519();
        }
        self.bring_up_ssh().await;
        *self.phase.lock().unwrap() = Phase::Up;
        self.note("up");
        let _ = self.events.send(NodeEvent::Booted(self.name.clone()));
    }

    /// sshd as a booting host starts it. Rebinding can briefly fail while the old listener
    /// closes (it goes with a task being aborted), so it is tried again a little at once. Past
    /// that the node boots on without SSH, and sshd is started again as systemd restarts a
    /// failed sshd on an RHCOS (RHEL 9) node: `Restart=on-failure`, `RestartSec=42s` in the
    /// openssh package's `sshd.service`, with no start limit those 42 s could reach (systemd's
    /// default allows 5 starts in 10 s), so until it binds. Before, the node gave up after the
    /// 5 s and stayed up without SSH for good: in a simulation of 10,000 nodes, whose one
    /// process holds every node's listener and every client connection against one open-file
    /// limit (18,824 of 20,000 seen in a drained run), a bind that fails for want of a file
    /// descriptor left a node no probe could ever see back, while its kubelet reported it Ready
    /// with its new boot ID. Each failure is said on stderr (the simulation's output).
    async fn bring_up_ssh(self: &Arc<Self>) {
        let mut last = None;
        for _ in 0..50 {
            match self.start_ssh().await {
                Ok(()) => return,
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let Some(error) = last else { return };
        eprintln!("node {}: sshd could not listen on {} ({error}); started again every {}s", self.name, self.addr, SSHD_RESTART.as_secs());
        let node = self.clone();
        // In the SSH task's place, so that the node going down again stops the restarts too.
        *self.ssh_task.lock().unwrap() = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(SSHD_RESTART).await;
                match node.start_ssh().await {
                    // `start_ssh` put the listener's task in this one's place.
                    Ok(()) => {
                        eprintln!("node {}: sshd listens on {} again", node.name, node.addr);
                        return;
                    }
                    Err(e) => eprintln!("node {}: sshd could not listen on {} ({e})", node.name, node.addr),
                }
            }
        }));
    }

    /// Stops everything this node runs (simulation shutdown).
    pub fn shutdown(&self) {
        self.stop_ssh();
        if let Some(task) = self.reboot_task.lock().unwrap().take() {
            task.abort();
        }
    }

    /// The answer to one exec request over SSH, as the unprivileged login user (privileged
    /// commands need `sudo`): (stdout, stderr, exit status).
    fn answer(self: &Arc<Self>, command: &str) -> (String, String, u32) {
        self.answer_as(command, false)
    }

    /// The answer to one command on the host, as root (`root`: a process of the host's root,
    /// such as `chroot /rootfs CMD` in a privileged pod, where `sudo` is not needed) or as the
    /// SSH login user. The one code path for SSH and the API's exec, so both see the same boot
    /// IDs and schedule the same reboots.
    pub fn answer_as(self: &Arc<Self>, command: &str, root: bool) -> (String, String, u32) {
        let command = command.trim();
        let (privileged, bare) = match command.strip_prefix("sudo ") {
            Some(bare) => (true, bare.trim()),
            None => (root, command),
        };
        if privileged && let Some(answer) = self.answer_privileged(bare, root) {
            return answer;
        }
        match command {
            "cat /proc/sys/kernel/random/boot_id" => (format!("{}\n", self.boot_id()), String::new(), 0),
            "systemctl show --property=SoftRebootsCount --value" | "systemctl show -P SoftRebootsCount" => {
                (format!("{}\n", self.soft_reboots.load(Ordering::SeqCst)), String::new(), 0)
            }
            "true" | "systemctl is-system-running --wait" => {
                (if command == "true" { String::new() } else { "running\n".into() }, String::new(), 0)
            }
            "false" => (String::new(), String::new(), 1),
            // systemd-logind keeps /run/systemd/shutdown/scheduled while a shutdown is scheduled
            // and removes it on `shutdown -c` (systemd `src/login/logind-dbus.c`,
            // `update_schedule_file`, `reset_scheduled_shutdown`).
            "test ! -e /run/systemd/shutdown/scheduled" | "test -e /run/systemd/shutdown/scheduled" => {
                let scheduled = self.phase() == Phase::RebootScheduled;
                let holds = scheduled != command.contains('!');
                (String::new(), String::new(), if holds { 0 } else { 1 })
            }
            "hostname" => (format!("{}\n", self.name), String::new(), 0),
            "uname -r" => ("5.14.0-427.fleetboot.el9_4.x86_64\n".into(), String::new(), 0),
            other => (String::new(), format!("bash: {}: command not found\n", other.split_whitespace().next().unwrap_or(other)), 127),
        }
    }

    /// A command that needs root (`bare`: without `sudo`), or None for any other command.
    fn answer_privileged(self: &Arc<Self>, bare: &str, root: bool) -> Option<(String, String, u32)> {
        let refused = !root && self.faults.refuse_sudo.load(Ordering::SeqCst);
        Some(match bare {
            // `shutdown -r +1` is the OpenShift migration documents' form (a minute ahead, as
            // `shutdown -r` alone and `-t 3`: systemd-shutdown schedules whole minutes).
            "shutdown -r -t 3" | "shutdown -r now" | "shutdown -r" | "shutdown -r +1" | "systemctl reboot" | "reboot" => {
                if refused {
                    return Some((String::new(), "sudo: a terminal is required to read the password; either use the -S option to read from standard input or configure an askpass helper\nsudo: a password is required\n".into(), 1));
                }
                let delay = if bare.ends_with("now") || !bare.contains("shutdown") { Duration::ZERO } else { self.timings.reboot_delay };
                self.schedule_reboot(delay);
                let msg = if delay.is_zero() {
                    String::new()
                } else {
                    format!(
                        "Reboot scheduled for {}, use 'shutdown -c' to cancel.\n",
                        humantime::format_rfc3339_seconds(std::time::SystemTime::now() + delay)
                    )
                };
                (String::new(), msg, 0)
            }
            "systemctl soft-reboot" => {
                if refused {
                    return Some((String::new(), "sudo: a password is required\n".into(), 1));
                }
                self.soft_reboot();
                (String::new(), String::new(), 0)
            }
            "shutdown -c" => {
                self.cancel_reboot();
                (String::new(), String::new(), 0)
            }
            _ => return None,
        })
    }

    /// Whether the node's kubelet answers (the API server reaches it for exec, logs, ...).
    pub fn kubelet_up(&self) -> bool {
        self.phase() != Phase::Down && !self.powered_off.load(Ordering::SeqCst) && !self.hung.load(Ordering::SeqCst)
    }
}

struct Connection {
    node: Arc<SimNode>,
}

impl Handler for Connection {
    type Error = russh::Error;

    async fn auth_publickey(&mut self, _user: &str, key: russh::server::VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        if key.public_key.key_data() == self.node.authorized.key_data() { Ok(Auth::Accept) } else { Ok(Auth::reject()) }
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        Ok(())
    }

    async fn exec_request(&mut self, channel: ChannelId, data: &[u8], session: &mut Session) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        let (stdout, stderr, exit) = self.node.answer(&String::from_utf8_lossy(data));
        if !stdout.is_empty() {
            session.data(channel, stdout.into_bytes())?;
        }
        if !stderr.is_empty() {
            session.extended_data(channel, 1, stderr.into_bytes())?;
        }
        session.exit_status_request(channel, exit)?;
        session.eof(channel)?;
        session.close(channel)?;
        Ok(())
    }
}

/// An SSH session's handle that disconnects it when dropped: with the task serving the node's
/// SSH (aborted when the node goes down) its sessions go too.
struct EndsWithTheNode(russh::server::Handle);

impl Drop for EndsWithTheNode {
    fn drop(&mut self) {
        let handle = self.0.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = handle.disconnect(russh::Disconnect::ByApplication, "the host is going down".into(), String::new()).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node whose SSH port cannot be bound when it boots (here another listener holds it, as
    /// a simulation out of file descriptors fails every bind) comes back on SSH once the port
    /// can be bound, as systemd starts a failed sshd again. Before, it gave up after 5 s and
    /// served no SSH ever again: a probe could never see it back.
    #[tokio::test(start_paused = true)]
    async fn a_node_that_cannot_bind_its_ssh_port_at_boot_serves_ssh_once_it_can() {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = free.local_addr().unwrap();
        drop(free);
        let timings = Timings {
            reboot_delay: Duration::ZERO,
            boot_time: Duration::from_secs(1),
            notready_after: Duration::from_millis(300),
            kubelet_ready_after: Duration::from_millis(300),
        };
        let (events, mut told) = mpsc::unbounded_channel();
        let node = SimNode::new("worker-0".into(), addr, timings, random_ed25519().public_key().clone(), events);
        node.start_ssh().await.unwrap();
        assert!(node.schedule_reboot(Duration::ZERO));
        assert!(matches!(told.recv().await, Some(NodeEvent::WentDown(_))));
        // The node's listener is gone (its task aborted): another takes the port for a minute.
        let squatter = loop {
            match std::net::TcpListener::bind(addr) {
                Ok(listener) => break listener,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        assert!(matches!(told.recv().await, Some(NodeEvent::Booted(_))), "the node boots, SSH or not");
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(squatter);
        // Within systemd's next restarts of sshd, the node's own SSH server answers.
        let mut answered = false;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await {
                let mut banner = [0u8; 4];
                answered = tokio::io::AsyncReadExt::read_exact(&mut stream, &mut banner).await.is_ok() && &banner == b"SSH-";
                if answered {
                    break;
                }
            }
        }
        assert!(answered, "the node never served SSH again");
        node.shutdown();
    }
}
