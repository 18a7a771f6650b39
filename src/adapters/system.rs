//! What fleetboot asks of the operating system itself: the wall clock (for records only; deadlines
//! use monotonic time), the home directory, the open-file limit, host-name lookups, private
//! directories and files, and durable creation (the file *and* the directory entry fsynced).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch: the time journal records carry.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `$HOME`, when set and not empty.
pub fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from)
}

/// A simulation holds one listening socket per node, and fan-outs hold one connection per
/// host: lift the soft open-file limit to the hard one (1024 by default on many systems).
pub fn raise_open_file_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    unsafe {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// The open-file limit this process may reach: the hard limit (fleetboot raises the soft one
/// to it at start). `None` when it cannot be read or is unlimited.
pub fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct passed to it.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    (ok && limit.rlim_max != libc::RLIM_INFINITY).then_some(limit.rlim_max)
}

/// The monotonic instant `after` from now, for deadlines: never an overflow panic, whatever
/// the duration (one past what the clock can hold is as good as never).
pub fn deadline_after(after: std::time::Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(after).unwrap_or_else(|| now + FAR_FUTURE)
}

/// Runs `wait`, a blocking wait (an fsync, a journal in the cluster waiting out its retries),
/// without holding up the runtime's other tasks: on a multi-threaded runtime this worker is
/// handed over to blocking for the wait (`block_in_place`), so the lease renewer, the watches
/// and Ctrl-C go on meanwhile. A current-thread runtime (where `block_in_place` panics), or no
/// runtime at all, simply waits.
pub fn wait_off_workers<R>(wait: impl FnOnce() -> R) -> R {
    if on_multi_thread_runtime() { tokio::task::block_in_place(wait) } else { wait() }
}

/// Whether this runs on a multi-threaded tokio runtime: the only kind a wait can be handed off
/// the workers on (the runner's tests run on a current-thread one, on the paused clock).
pub fn on_multi_thread_runtime() -> bool {
    tokio::runtime::Handle::try_current().is_ok_and(|handle| handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

/// What [`deadline_after`] waits instead of a duration the clock cannot hold: longer than any
/// duration fleetboot accepts (366 days), short enough to add to any instant.
const FAR_FUTURE: std::time::Duration = std::time::Duration::from_secs(400 * 24 * 3600);

/// What the resolver said of one host name.
#[derive(Debug)]
pub enum Lookup {
    /// The addresses the name resolves to.
    Addresses(Vec<String>),
    /// The resolver answered that the name does not exist, or has no address (`EAI_NONAME`,
    /// `EAI_NODATA`): an answer, as final as an address.
    NoSuchName,
    /// No answer, and why: the resolver did not answer in time, could not be reached or asked
    /// again later (`EAI_AGAIN`), or failed. Whether the name is a node's is then unknown.
    Unanswered(NoAnswer),
}

/// Why a host name has no answer ([`Lookup::Unanswered`]).
#[derive(Debug, thiserror::Error)]
pub enum NoAnswer {
    /// `getaddrinfo` failed in a system call (`EAI_SYSTEM`): that call's error, kept.
    #[error("the lookup failed: {0}")]
    System(#[source] std::io::Error),
    /// Any other reason, in words (a timeout, the resolver's own message).
    #[error("{0}")]
    Said(String),
}

/// How long one lookup may take before its name counts as unanswered: beyond glibc's own
/// retry, which asks a name server again after 5 s without an answer (resolv.conf(5),
/// `timeout:5`, `attempts:2`), so one lost UDP query among thousands of names is answered on
/// its second try instead of refusing the run.
pub const LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(12);

/// How long all of a host list's lookups together may take at least ([`all_lookups_within`]):
/// past it, the names still waiting count as unanswered (so a resolver that answers each name
/// just within [`LOOKUP_TIMEOUT`] costs this, not 10,000 / 32 × 12 s). A healthy resolver
/// answers 10,000 names well within it (a few milliseconds each, 32 at a time).
pub const ALL_LOOKUPS_WITHIN: std::time::Duration = std::time::Duration::from_secs(60);

/// The time all lookups of `names` distinct names, `at_once` at a time, may take together:
/// [`ALL_LOOKUPS_WITHIN`], or a second per name for each of the `at_once` lookups in flight,
/// whichever is longer, so that a slow but working resolver (uncached names, slow AAAA answers:
/// a few hundred ms each) still resolves a list of 10,000 (313 s), where a fixed minute refused
/// any list whose lookups took 190 ms on average.
pub fn all_lookups_within(names: usize, at_once: usize) -> std::time::Duration {
    ALL_LOOKUPS_WITHIN.max(std::time::Duration::from_secs(names.div_ceil(at_once.max(1)) as u64))
}

/// What [`resolve_hosts`] refuses with: the names the resolver gave no answer for (each with
/// why, in the order they were found), and how many names were never asked because an
/// unanswered one had already settled that the run is refused.
#[derive(Debug)]
pub struct Unanswered {
    pub names: Vec<(String, NoAnswer)>,
    pub not_looked_up: usize,
}

/// Threads that look host names up through the system's resolver (`getaddrinfo`, as SSH
/// connects later, so `/etc/hosts` and NSS count too). A lookup blocks, so each runs on one of
/// these plain threads, not on tokio's blocking pool: a lookup that never returns is abandoned
/// at [`LOOKUP_TIMEOUT`], and a runtime waits for its blocking pool at exit where a process
/// does not wait for a plain thread. A few threads, reused: 10,000 names that fail at once
/// (`/etc/hosts` alone) took 0.23 s with a thread per name, 0.09 s on the blocking pool, 0.04 s
/// on 32 of these (release, 2 shared cores). They end once their sender is dropped and the
/// names sent are looked up.
pub struct LookupThreads {
    work: std::sync::mpsc::Sender<(String, tokio::sync::oneshot::Sender<Lookup>)>,
}

impl LookupThreads {
    /// `threads` threads (at least one; those the system refuses to start are left out).
    pub fn start(threads: usize) -> LookupThreads {
        let (work, queue) = std::sync::mpsc::channel::<(String, tokio::sync::oneshot::Sender<Lookup>)>();
        let queue = std::sync::Arc::new(std::sync::Mutex::new(queue));
        for _ in 0..threads.max(1) {
            let queue = queue.clone();
            let _ = std::thread::Builder::new().name("fleetboot-resolve".into()).spawn(move || {
                loop {
                    // The lock is held only while waiting for the next name, never over a lookup.
                    let next = queue.lock().map_err(drop).and_then(|q| q.recv().map_err(drop));
                    let Ok((name, answer)) = next else { break };
                    let _ = answer.send(getaddrinfo(&name));
                }
            });
        }
        LookupThreads { work }
    }

    /// What the resolver says of `name`.
    pub async fn resolve(&self, name: &str) -> Lookup {
        let (answer, answered) = tokio::sync::oneshot::channel();
        if self.work.send((name.to_owned(), answer)).is_err() {
            return Lookup::Unanswered(NoAnswer::Said("no thread could be started for the lookups".into()));
        }
        answered.await.unwrap_or_else(|_| Lookup::Unanswered(NoAnswer::Said("its lookup ended without an answer".into())))
    }
}

/// `getaddrinfo(name)`, its outcome sorted into the three [`Lookup`]s by the error code (which
/// the standard library's lookup folds into one message).
fn getaddrinfo(name: &str) -> Lookup {
    let Ok(node) = std::ffi::CString::new(name) else {
        return Lookup::Unanswered(NoAnswer::Said("the name holds a NUL byte".into()));
    };
    let mut list: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: `hints` is zeroed as getaddrinfo wants its unused fields; `node` is a
    // NUL-terminated string that outlives the call; `list` is only written by the call.
    let code = unsafe {
        let mut hints: libc::addrinfo = std::mem::zeroed();
        hints.ai_family = libc::AF_UNSPEC;
        // One entry per address (not one per socket type).
        hints.ai_socktype = libc::SOCK_STREAM;
        libc::getaddrinfo(node.as_ptr(), std::ptr::null(), &hints, &mut list)
    };
    if code != 0 {
        // Read at once: errno is only getaddrinfo's until the next call that sets it.
        return failed_lookup(code, std::io::Error::last_os_error());
    }
    let mut addresses: Vec<String> = Vec::new();
    let mut at = list;
    while !at.is_null() {
        // SAFETY: `at` is an entry of the list getaddrinfo returned, not yet freed; each
        // `ai_addr` is read as the family it says it is, and only when `ai_addrlen` holds it.
        let (address, next) = unsafe {
            let entry = &*at;
            let len = entry.ai_addrlen as usize;
            let address = match entry.ai_family {
                libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
                    let v4 = &*(entry.ai_addr as *const libc::sockaddr_in);
                    Some(std::net::IpAddr::from(std::net::Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr))))
                }
                libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
                    let v6 = &*(entry.ai_addr as *const libc::sockaddr_in6);
                    Some(std::net::IpAddr::from(std::net::Ipv6Addr::from(v6.sin6_addr.s6_addr)))
                }
                _ => None,
            };
            (address, entry.ai_next)
        };
        if let Some(address) = address.map(|a| a.to_string()).filter(|a| !addresses.contains(a)) {
            addresses.push(address);
        }
        at = next;
    }
    // SAFETY: `list` came from a successful getaddrinfo and is freed once, after its last read.
    unsafe { libc::freeaddrinfo(list) };
    Lookup::Addresses(addresses)
}

/// What a `getaddrinfo` that returned `code` (not 0) says, `os_error` being errno right after it
/// (`EAI_SYSTEM`'s cause).
fn failed_lookup(code: libc::c_int, os_error: std::io::Error) -> Lookup {
    match code {
        libc::EAI_NONAME | libc::EAI_NODATA => Lookup::NoSuchName,
        libc::EAI_AGAIN => Lookup::Unanswered(NoAnswer::Said(
            "the resolver could not answer now (EAI_AGAIN, temporary failure in name resolution: a name server not reachable or not answering)".into(),
        )),
        libc::EAI_SYSTEM => Lookup::Unanswered(NoAnswer::System(os_error)),
        // SAFETY: gai_strerror returns a static NUL-terminated message for any code.
        other => Lookup::Unanswered(NoAnswer::Said(format!("the lookup failed: {}", unsafe {
            std::ffi::CStr::from_ptr(libc::gai_strerror(other)).to_string_lossy()
        }))),
    }
}

/// How many host names [`resolve_hosts`] looks up at once. Each lookup blocks a thread: a
/// 10,000-name host list all at once took up to 512 threads (tokio's blocking pool's cap, where
/// lookups ran then), and the names queued behind them spent their 5 s waiting for a thread.
const LOOKUPS_AT_ONCE: usize = 32;

/// [`LookupThreads::resolve`] for each of `names`, in their order: IP addresses are not looked up (they
/// get no addresses), a name listed twice is looked up once, at most [`LOOKUPS_AT_ONCE`] at a
/// time, each within [`LOOKUP_TIMEOUT`] and all within [`ALL_LOOKUPS_WITHIN`]. A name that does
/// not exist gets no addresses. A name the resolver gave no answer for refuses the whole list:
/// whether it is a node is unknown, and a guess could reboot a node as a plain host (undrained,
/// outside its pool's rules). Once one name is unanswered no further lookup starts (the run is
/// refused whatever they answer); those under way finish, within their own timeout, so each
/// name they leave unanswered is named too.
pub async fn resolve_hosts(names: &[&str]) -> Result<Vec<Vec<String>>, Unanswered> {
    let to_look_up = names_to_look_up(names);
    if to_look_up.is_empty() {
        return Ok(vec![Vec::new(); names.len()]);
    }
    // No more threads than names: a list of addresses and a few names starts a few.
    let threads = LookupThreads::start(LOOKUPS_AT_ONCE.min(to_look_up.len()));
    resolve_all(names, to_look_up, LOOKUPS_AT_ONCE, |name| threads.resolve(name)).await
}

/// The names of `names` to look up: each once, sorted, and no IP address.
fn names_to_look_up<'n>(names: &[&'n str]) -> Vec<&'n str> {
    let mut distinct: Vec<&str> = names.iter().copied().filter(|n| n.parse::<std::net::IpAddr>().is_err()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    distinct
}

/// [`resolve_hosts`] with `lookup`: `distinct` is [`names_to_look_up`] of `names`.
async fn resolve_all<'n, F, Fut>(
    names: &[&'n str],
    distinct: Vec<&'n str>,
    at_once: usize,
    lookup: F,
) -> Result<Vec<Vec<String>>, Unanswered>
where
    F: Fn(&'n str) -> Fut,
    Fut: std::future::Future<Output = Lookup>,
{
    use futures::stream::{FuturesUnordered, StreamExt};
    let within = all_lookups_within(distinct.len(), at_once);
    let deadline = deadline_after(within);
    let mut waiting = distinct.into_iter();
    let mut running = FuturesUnordered::new();
    // The names under way, to name them should the deadline pass while they wait.
    let mut under_way: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    let mut found: std::collections::HashMap<&str, Vec<String>> = std::collections::HashMap::new();
    let mut unanswered: Vec<(String, NoAnswer)> = Vec::new();
    loop {
        while unanswered.is_empty() && running.len() < at_once.max(1) {
            let Some(name) = waiting.next() else { break };
            under_way.insert(name);
            let resolving = tokio::time::timeout(LOOKUP_TIMEOUT, lookup(name));
            running.push(async move { (name, resolving.await) });
        }
        match tokio::time::timeout_at(deadline, running.next()).await {
            Ok(None) => break,
            Ok(Some((name, outcome))) => {
                under_way.remove(name);
                match outcome {
                    Ok(Lookup::Addresses(addresses)) => {
                        found.insert(name, addresses);
                    }
                    Ok(Lookup::NoSuchName) => {}
                    Ok(Lookup::Unanswered(why)) => unanswered.push((name.to_owned(), why)),
                    Err(_) => unanswered.push((
                        name.to_owned(),
                        NoAnswer::Said(format!("the resolver did not answer within {}", humantime::format_duration(LOOKUP_TIMEOUT))),
                    )),
                }
            }
            Err(_) => {
                let why = format!("no answer yet when the {} for all of the list's lookups ran out", humantime::format_duration(within));
                unanswered.extend(under_way.iter().map(|name| (name.to_string(), NoAnswer::Said(why.clone()))));
                break;
            }
        }
    }
    if !unanswered.is_empty() {
        return Err(Unanswered { names: unanswered, not_looked_up: waiting.len() });
    }
    Ok(names.iter().map(|name| found.get(name).cloned().unwrap_or_default()).collect())
}

/// Opens an existing journal or state file with `O_NOFOLLOW` (a symbolic link at its place is
/// refused, never followed) and checks that it is a regular file (not a FIFO, a device or a
/// directory: opened non-blocking, so a FIFO cannot hang the open). `options` says how.
pub fn open_regular(path: &Path, options: &mut OpenOptions) -> std::io::Result<File> {
    let file = options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "it is a symbolic link, which fleetboot never follows for a journal or state file; give the file's real path",
            )
        } else {
            e
        }
    })?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("it is not a regular file ({}); a journal or state file must be one", describe_kind(&kind)),
        ));
    }
    Ok(file)
}

fn describe_kind(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else {
        "not a plain file"
    }
}

/// Reads a journal or state file whole, through [`open_regular`].
pub fn read_regular(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    open_regular(path, OpenOptions::new().read(true))?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// [`read_regular`], as UTF-8 text.
pub fn read_regular_text(path: &Path) -> std::io::Result<String> {
    String::from_utf8(read_regular(path)?).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// fsyncs a directory, so entries created or renamed in it survive a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` and any missing parents, each new one mode 0700 (state and secrets live
/// there), and fsyncs the parent of every directory it created. Existing directories keep
/// their mode.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_private_dir(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(e),
    }
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => sync_dir(Path::new(".")),
    }
}

/// Creates a new file (never an existing one) readable by its owner alone, in a private
/// directory created as needed; the file and its directory entry are fsynced before it is
/// returned, so a crash right after cannot lose the file a resume will look for.
pub fn create_private_file(path: &Path) -> std::io::Result<File> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    create_private_dir(parent)?;
    let file = OpenOptions::new().create_new(true).read(true).append(true).mode(0o600).open(path)?;
    file.sync_all()?;
    sync_dir(parent)?;
    Ok(file)
}

/// Writes `bytes` to `path` whole or not at all, owner-only (0600): a fresh temporary file
/// beside it, fsynced, renamed over `path` (a file or symlink there is replaced, never written
/// through), then the directory fsynced.
pub fn write_private_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = parent.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    let written = OpenOptions::new().create_new(true).write(true).mode(0o600).open(&temp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    match written.and_then(|()| std::fs::rename(&temp, path)) {
        Ok(()) => sync_dir(parent),
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A host list's names: each looked up once, never an IP address, never more than the bound
    /// at once, and each line given its own name's addresses.
    #[tokio::test(flavor = "current_thread")]
    async fn host_names_are_looked_up_once_each_a_bounded_number_at_once() {
        use std::cell::{Cell, RefCell};
        let (in_flight, peak, asked) = (Cell::new(0usize), Cell::new(0usize), RefCell::new(Vec::new()));
        let names: Vec<String> = (0..200).map(|i| format!("host-{}", i % 100)).chain(["127.0.0.7".into(), "::1".into()]).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let found = resolve_all(&names, names_to_look_up(&names), 4, |name: &str| {
            let (in_flight, peak, asked) = (&in_flight, &peak, &asked);
            async move {
                asked.borrow_mut().push(name.to_owned());
                in_flight.set(in_flight.get() + 1);
                peak.set(peak.get().max(in_flight.get()));
                // Stays in flight across a yield, as a real lookup does while the others start.
                tokio::task::yield_now().await;
                in_flight.set(in_flight.get() - 1);
                Lookup::Addresses(vec![format!("addr-of-{name}")])
            }
        })
        .await
        .unwrap();
        assert_eq!(peak.get(), 4, "the bound is reached and never passed");
        let mut asked = asked.into_inner();
        assert_eq!(asked.len(), 100, "each distinct name once, no IP address");
        asked.sort();
        asked.dedup();
        assert_eq!(asked.len(), 100);
        assert_eq!(found.len(), names.len());
        for (name, addresses) in names.iter().zip(&found) {
            let expected = if name.parse::<std::net::IpAddr>().is_ok() { Vec::new() } else { vec![format!("addr-of-{name}")] };
            assert_eq!(addresses, &expected, "{name}");
        }
    }

    /// A lookup that never answers refuses the list, naming that name and why; a name the
    /// resolver says does not exist is an answer (no addresses), not a refusal.
    #[tokio::test(start_paused = true)]
    async fn a_lookup_that_never_answers_refuses_the_list_naming_the_name() {
        let names = ["gone.example", "dead.example", "node-a.example", "10.0.0.1"];
        let found = resolve_all(&names, names_to_look_up(&names), 4, |name: &str| async move {
            match name {
                "gone.example" => Lookup::NoSuchName,
                "dead.example" => std::future::pending().await,
                _ => Lookup::Addresses(vec![format!("addr-of-{name}")]),
            }
        })
        .await;
        let refused = found.expect_err("an unanswered name is never guessed to be no node");
        let named: Vec<(&str, String)> = refused.names.iter().map(|(name, why)| (name.as_str(), why.to_string())).collect();
        assert_eq!(named, [("dead.example", "the resolver did not answer within 12s".to_owned())]);
        assert_eq!(refused.not_looked_up, 0);
        // Without it, the list resolves: the name that does not exist gets no addresses.
        let found = resolve_all(&names[..1], names_to_look_up(&names[..1]), 4, |_: &str| async { Lookup::NoSuchName }).await.unwrap();
        assert_eq!(found, [Vec::<String>::new()]);
    }

    /// A resolver that answers each name just within its timeout: the list's lookups together
    /// stop at [`all_lookups_within`], refused, the names then under way named and the names
    /// never asked counted, instead of 1,000 / 4 × 4.5 s.
    #[tokio::test(start_paused = true)]
    async fn all_lookups_together_are_bounded_and_the_bound_refuses() {
        let names: Vec<String> = (0..1000).map(|i| format!("slow-{i:04}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let asked = std::cell::Cell::new(0usize);
        // Within the timeout, and no divisor of the deadline (no wave ends on it).
        let each = std::time::Duration::from_millis(4500);
        let found = resolve_all(&names, names_to_look_up(&names), 4, |name: &str| {
            let asked = &asked;
            async move {
                asked.set(asked.get() + 1);
                tokio::time::sleep(each).await;
                Lookup::Addresses(vec![format!("addr-of-{name}")])
            }
        })
        .await;
        let refused = found.expect_err("the deadline refuses, it does not guess");
        // Each wave of 4 takes `each`: the waves that fit before the deadline, then the one it cuts.
        let waves = all_lookups_within(names.len(), 4).as_millis().div_ceil(each.as_millis()) as usize;
        assert_eq!(asked.get(), 4 * waves, "no lookup starts past the deadline");
        assert_eq!(refused.names.len(), 4, "the lookups under way when it passed: {:?}", refused.names);
        assert!(
            refused.names.iter().all(|(_, why)| why.to_string().contains("for all of the list's lookups ran out")),
            "{:?}",
            refused.names
        );
        assert_eq!(refused.not_looked_up, names.len() - asked.get());
    }

    /// Once a name is unanswered the run is refused whatever the others say: no new lookup
    /// starts (a dead resolver costs one timeout, not the list's length in timeouts).
    #[tokio::test(start_paused = true)]
    async fn after_an_unanswered_name_no_further_lookup_starts() {
        let names: Vec<String> = (0..100).map(|i| format!("dead-{i:03}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let asked = std::cell::Cell::new(0usize);
        let found = resolve_all(&names, names_to_look_up(&names), 8, |_: &str| {
            asked.set(asked.get() + 1);
            std::future::pending::<Lookup>()
        })
        .await;
        let refused = found.expect_err("refused");
        assert_eq!(asked.get(), 8, "the first 8 only");
        assert_eq!(refused.names.len(), 8);
        assert_eq!(refused.not_looked_up, 92);
    }

    /// A lookup that failed in a system call (`EAI_SYSTEM`) keeps errno's error as its source,
    /// not only its text.
    #[test]
    fn a_lookup_failed_in_a_system_call_keeps_errnos_error() {
        use std::error::Error as _;
        let Lookup::Unanswered(why) = failed_lookup(libc::EAI_SYSTEM, std::io::Error::from_raw_os_error(libc::EMFILE)) else {
            panic!("EAI_SYSTEM is no answer");
        };
        let source = why.source().and_then(|s| s.downcast_ref::<std::io::Error>()).expect("errno's error is the source");
        assert_eq!(source.raw_os_error(), Some(libc::EMFILE));
        assert_eq!(why.to_string(), format!("the lookup failed: {source}"));
    }

    /// The system's own resolver, asked nothing that leaves the machine: `localhost` (from
    /// /etc/hosts) and a numeric address.
    #[tokio::test]
    async fn the_system_resolver_answers_localhost() {
        let threads = LookupThreads::start(2);
        match threads.resolve("localhost").await {
            Lookup::Addresses(found) => assert!(found.iter().any(|a| a == "127.0.0.1" || a == "::1"), "{found:?}"),
            other => panic!("localhost: {other:?}"),
        }
        match threads.resolve("127.0.0.9").await {
            Lookup::Addresses(found) => assert_eq!(found, ["127.0.0.9"]),
            other => panic!("127.0.0.9: {other:?}"),
        }
    }

    #[test]
    fn journals_open_only_as_regular_files_never_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.jsonl");
        std::fs::write(&real, "x\n").unwrap();
        assert_eq!(read_regular_text(&real).unwrap(), "x\n");
        let link = dir.path().join("link.jsonl");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(read_regular(&link).unwrap_err().to_string().contains("symbolic link"));
        assert!(read_regular(dir.path()).unwrap_err().to_string().contains("not a regular file (a directory)"));
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo reads the path it is given.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(read_regular(&fifo).unwrap_err().to_string().contains("a FIFO"), "refused, not hung");
    }

    #[test]
    fn private_dirs_and_files_are_owner_only() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("a/b/journal.jsonl");
        create_private_file(&file).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root.path().join("a")), 0o700);
        assert_eq!(mode(&root.path().join("a/b")), 0o700);
        assert_eq!(mode(&file), 0o600);
        assert!(create_private_file(&file).is_err(), "never an existing file");
        assert!(open_file_limit().is_none_or(|n| n > 0));
    }

    #[test]
    fn a_private_file_is_written_whole_replacing_what_was_there_never_through_a_symlink() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("report.md");
        let elsewhere = root.path().join("elsewhere");
        std::fs::write(&elsewhere, "untouched").unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        write_private_atomically(&path, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "untouched");
        assert!(std::fs::symlink_metadata(&path).unwrap().file_type().is_file());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        write_private_atomically(&path, b"again").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "again");
        let names: Vec<String> =
            std::fs::read_dir(root.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
    }
}
