//! OpenSSH `known_hosts` verification: plain, hashed (`|1|salt|hash`), `[host]:port`,
//! wildcard and negated patterns, `@revoked` markers. A verdict, never a silent update.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use data_encoding::BASE64;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::{Algorithm, PublicKey};
use sha1::Sha1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The presented key is recorded for this host.
    Known,
    /// No key is recorded for this host.
    Unknown,
    /// Keys are recorded for this host, none of them the presented one.
    Changed { line: usize },
    /// The presented key is marked `@revoked`.
    Revoked { line: usize },
}

#[derive(Debug, Clone)]
struct Entry {
    line: usize,
    revoked: bool,
    patterns: String,
    key: Option<PublicKey>,
}

/// A parsed known_hosts file. Lines that cannot be parsed are kept out of matching, as
/// OpenSSH does, instead of failing every host over one bad line.
///
/// Indexed once when parsed: an entry whose patterns are all plain names (no `*`, `?`, `!` or
/// `|1|` hash) can only match one of those names, so it is found by name; the others (globs,
/// negations, hashed names) are tried one by one, as before. A lookup costs the entries of
/// that name plus the non-plain ones, not the whole file: with a line per host, a fleet of N
/// hosts no longer costs N × N pattern matches.
#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    entries: Vec<Entry>,
    /// Lower-cased plain name → the indices of the entries that list it, in file order.
    by_name: std::collections::HashMap<String, Vec<usize>>,
    /// The indices of the entries with any non-plain pattern, in file order.
    patterned: Vec<usize>,
}

/// The name OpenSSH looks up: `host` on port 22, `[host]:port` elsewhere.
pub fn lookup_name(host: &str, port: u16) -> String {
    if port == 22 { host.to_owned() } else { format!("[{host}]:{port}") }
}

impl KnownHosts {
    pub fn parse(text: &str) -> KnownHosts {
        let mut entries = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let mut first = fields.next().unwrap_or_default();
            let mut revoked = false;
            if first.starts_with('@') {
                match first {
                    "@revoked" => revoked = true,
                    // Certificate authorities sign host certificates; a plain key never matches them.
                    _ => continue,
                }
                first = fields.next().unwrap_or_default();
            }
            let _algorithm = fields.next();
            let key = fields.next().and_then(|b64| russh::keys::parse_public_key_base64(b64).ok());
            entries.push(Entry { line: index + 1, revoked, patterns: first.to_owned(), key });
        }
        let mut by_name: std::collections::HashMap<String, Vec<usize>> = std::collections::HashMap::new();
        let mut patterned = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            if entry.patterns.split(',').all(is_plain) {
                let mut names: Vec<String> = entry.patterns.split(',').map(str::to_ascii_lowercase).collect();
                names.dedup();
                for name in names {
                    let list = by_name.entry(name).or_default();
                    if list.last() != Some(&i) {
                        list.push(i);
                    }
                }
            } else {
                patterned.push(i);
            }
        }
        KnownHosts { entries, by_name, patterned }
    }

    /// The entries whose patterns match `name`, in file order: those indexed under it and the
    /// non-plain ones that match.
    fn matching(&self, name: &str) -> Vec<&Entry> {
        let plain = self.by_name.get(&name.to_ascii_lowercase()).map_or(&[][..], Vec::as_slice);
        let mut found: Vec<usize> = plain.to_vec();
        found.extend(self.patterned.iter().copied().filter(|&i| patterns_match(&self.entries[i].patterns, name)));
        if !plain.is_empty() && found.len() > plain.len() {
            found.sort_unstable();
        }
        found.into_iter().map(|i| &self.entries[i]).collect()
    }

    pub fn read(path: &Path) -> std::io::Result<KnownHosts> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(KnownHosts::parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KnownHosts::default()),
            Err(e) => Err(e),
        }
    }

    /// OpenSSH's verdict: a revoked key is refused wherever its `@revoked` line stands (before
    /// or after a line that lists the same key as valid); then the key must be recorded.
    pub fn verify(&self, host: &str, port: u16, presented: &PublicKey) -> Verdict {
        let same = |e: &Entry| e.key.as_ref().is_some_and(|k| k.key_data() == presented.key_data());
        let matching: Vec<&Entry> = self.matching(&lookup_name(host, port)).into_iter().filter(|e| e.key.is_some()).collect();
        if let Some(revoked) = matching.iter().find(|e| e.revoked && same(e)) {
            return Verdict::Revoked { line: revoked.line };
        }
        let recorded: Vec<&Entry> = matching.into_iter().filter(|e| !e.revoked).collect();
        if recorded.iter().any(|e| same(e)) {
            return Verdict::Known;
        }
        match recorded.first() {
            Some(entry) => Verdict::Changed { line: entry.line },
            None => Verdict::Unknown,
        }
    }

    /// The algorithms of the keys recorded (not revoked) for this host, in file order: the
    /// host-key algorithms to negotiate first, as OpenSSH does, so a host known by its ECDSA or
    /// RSA key is asked for that key and not judged by another one.
    pub fn recorded_algorithms(&self, host: &str, port: u16) -> Vec<Algorithm> {
        let mut found: Vec<Algorithm> = Vec::new();
        for entry in self.matching(&lookup_name(host, port)).into_iter().filter(|e| !e.revoked) {
            if let Some(algorithm) = entry.key.as_ref().map(PublicKey::algorithm)
                && !found.contains(&algorithm)
            {
                found.push(algorithm);
            }
        }
        found
    }

    /// Whether the file hashes host names (`HashKnownHosts`): new lines are then hashed too.
    pub fn is_hashed(&self) -> bool {
        self.entries.iter().any(|e| e.patterns.starts_with("|1|"))
    }
}

/// The host-key algorithms to offer: those of the recorded keys first (every RSA signature
/// variant for an RSA key), then the rest of `defaults` in their order. Pure.
pub fn preferred_host_key_algorithms(recorded: &[Algorithm], defaults: &[Algorithm]) -> Vec<Algorithm> {
    let known = |a: &Algorithm| recorded.iter().any(|r| r == a || (r.clone().is_rsa() && a.clone().is_rsa()));
    let (mut first, rest): (Vec<Algorithm>, Vec<Algorithm>) = defaults.iter().cloned().partition(known);
    first.extend(rest);
    first
}

/// Appends an entry, as `ssh -o StrictHostKeyChecking=accept-new` does: hashed when the file
/// already hashes its names (`|1|salt|hash`), plain otherwise. A missing directory (`~/.ssh`)
/// is created 0700, a missing file 0600.
pub fn append(path: &Path, host: &str, port: u16, key: &PublicKey) -> std::io::Result<()> {
    let hashed = KnownHosts::read(path)?.is_hashed();
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::adapters::system::create_private_dir(parent)?;
    }
    let openssh = key.to_openssh().map_err(|e| std::io::Error::other(e.to_string()))?;
    let needs_newline = std::fs::read(path).map(|bytes| bytes.last().is_some_and(|b| *b != b'\n')).unwrap_or(false);
    let name = lookup_name(host, port);
    let name = if hashed { hash_name(&name, &random_salt()?) } else { name };
    let created = !path.exists();
    let mut file = OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
    let prefix = if needs_newline { "\n" } else { "" };
    writeln!(file, "{prefix}{name} {openssh}")?;
    file.sync_data()?;
    match path.parent().filter(|p| created && !p.as_os_str().is_empty()) {
        Some(parent) => crate::adapters::system::sync_dir(parent),
        None => Ok(()),
    }
}

/// `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`, as `ssh-keygen -H` writes it. Pure.
pub fn hash_name(name: &str, salt: &[u8]) -> String {
    let mac = Hmac::<Sha1>::new_from_slice(salt).expect("HMAC takes any key length").chain_update(name.as_bytes());
    format!("|1|{}|{}", BASE64.encode(salt), BASE64.encode(&mac.finalize().into_bytes()))
}

fn random_salt() -> std::io::Result<[u8; 20]> {
    let mut salt = [0u8; 20];
    // SAFETY: getrandom writes at most `salt.len()` bytes into the buffer it is given.
    let n = unsafe { libc::getrandom(salt.as_mut_ptr().cast(), salt.len(), 0) };
    if n != salt.len() as isize {
        return Err(std::io::Error::other("getrandom gave no salt for a hashed known_hosts line"));
    }
    Ok(salt)
}

/// Where a recorded key was found, for messages: `file:line`.
pub fn describe_line(path: &Path, line: usize) -> String {
    format!("{}:{line}", path.display())
}

/// A pattern that matches exactly one name (case-insensitively): no glob, negation or hash.
fn is_plain(pattern: &str) -> bool {
    !pattern.is_empty() && !pattern.starts_with('!') && !pattern.starts_with("|1|") && !pattern.contains(['*', '?'])
}

fn patterns_match(patterns: &str, name: &str) -> bool {
    let mut matched = false;
    for pattern in patterns.split(',') {
        if let Some(hashed) = pattern.strip_prefix("|1|") {
            if hashed_match(hashed, name) {
                matched = true;
            }
        } else if let Some(negated) = pattern.strip_prefix('!') {
            if wildcard_match(negated, name) {
                return false;
            }
        } else if wildcard_match(pattern, name) {
            matched = true;
        }
    }
    matched
}

fn hashed_match(salt_and_hash: &str, name: &str) -> bool {
    let Some((salt, hash)) = salt_and_hash.split_once('|') else { return false };
    let (Ok(salt), Ok(hash)) = (BASE64.decode(salt.as_bytes()), BASE64.decode(hash.as_bytes())) else {
        return false;
    };
    let Ok(mac) = Hmac::<Sha1>::new_from_slice(&salt) else { return false };
    mac.chain_update(name.as_bytes()).verify_slice(&hash).is_ok()
}

/// `*` and `?` globbing, case-insensitive like OpenSSH host matching.
fn wildcard_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIA6rWI3G1sz07DnfFlrouTcysQlj2P+jpNSOEWD9OJ3X";

    fn key(b64: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(b64).unwrap()
    }

    fn hashed(name: &str, salt: &[u8]) -> String {
        let mac = Hmac::<Sha1>::new_from_slice(salt).unwrap().chain_update(name.as_bytes());
        format!("|1|{}|{}", BASE64.encode(salt), BASE64.encode(&mac.finalize().into_bytes()))
    }

    #[test]
    fn plain_port_and_hashed_entries() {
        let text = format!(
            "# comment\n\n[127.0.0.5]:2222 ssh-ed25519 {KEY_A}\nnode1,127.0.0.6 ssh-ed25519 {KEY_A}\n{} ssh-ed25519 {KEY_B}\n",
            hashed("[127.0.0.7]:2200", b"0123456789abcdefghij")
        );
        let kh = KnownHosts::parse(&text);
        assert_eq!(kh.verify("127.0.0.5", 2222, &key(KEY_A)), Verdict::Known);
        assert_eq!(kh.verify("127.0.0.5", 22, &key(KEY_A)), Verdict::Unknown, "port matters");
        assert_eq!(kh.verify("127.0.0.6", 22, &key(KEY_A)), Verdict::Known);
        assert_eq!(kh.verify("127.0.0.6", 22, &key(KEY_B)), Verdict::Changed { line: 4 });
        assert_eq!(kh.verify("127.0.0.7", 2200, &key(KEY_B)), Verdict::Known);
        assert_eq!(kh.verify("127.0.0.7", 2200, &key(KEY_A)), Verdict::Changed { line: 5 });
    }

    #[test]
    fn wildcards_negation_revocation_and_bad_lines() {
        let text = format!(
            "garbage line\n*.lab,!bad.lab ssh-ed25519 {KEY_A}\n@revoked * ssh-ed25519 {KEY_B}\n@cert-authority * ssh-ed25519 {KEY_B}\n"
        );
        let kh = KnownHosts::parse(&text);
        assert_eq!(kh.verify("n1.lab", 22, &key(KEY_A)), Verdict::Known);
        assert_eq!(kh.verify("N1.LAB", 22, &key(KEY_A)), Verdict::Known);
        assert_eq!(kh.verify("bad.lab", 22, &key(KEY_A)), Verdict::Unknown);
        assert_eq!(kh.verify("n1.lab", 22, &key(KEY_B)), Verdict::Revoked { line: 3 });
    }

    #[test]
    fn the_index_keeps_file_order_across_plain_and_patterned_lines() {
        const ECDSA: &str = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBHoJ1RtfpBslTr1GKIGVYMK2fySz0Un711xrJrKXM+HkZsKJ6OQULVWGr0JQJ5GjDiyG21ZUHbgnJi115f9Ouh8=";
        let text = format!(
            "n*.lab ecdsa-sha2-nistp256 {ECDSA}\nN1.LAB,n1.lab,other ssh-ed25519 {KEY_B}\n{} ssh-ed25519 {KEY_B}\nn1.lab ssh-ed25519 {KEY_A}\n",
            hashed("n2.lab", b"0123456789abcdefghij")
        );
        let kh = KnownHosts::parse(&text);
        let p256 = Algorithm::Ecdsa { curve: russh::keys::EcdsaCurve::NistP256 };
        // The glob on line 1 comes before the plain lines 2 and 4, whatever the index does.
        assert_eq!(kh.recorded_algorithms("n1.lab", 22), vec![p256, Algorithm::Ed25519]);
        assert_eq!(kh.verify("n1.lab", 22, &key(KEY_A)), Verdict::Known);
        assert_eq!(kh.verify("N1.Lab", 22, &key(KEY_B)), Verdict::Known, "case-insensitive, as before");
        let unknown = key("AAAAC3NzaC1lZDI1NTE5AAAAICbUUnsxdOHolITn+7NVmMYQDMblewPQJHqjMKONmc3l");
        assert_eq!(kh.verify("n1.lab", 22, &unknown), Verdict::Changed { line: 1 });
        assert_eq!(kh.verify("n2.lab", 22, &key(KEY_B)), Verdict::Known, "hashed");
        assert_eq!(kh.verify("other", 22, &key(KEY_B)), Verdict::Known);
        assert_eq!(kh.verify("n3.lab", 22, &key(KEY_A)), Verdict::Changed { line: 1 });
    }

    #[test]
    fn append_then_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/known_hosts");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("other ssh-ed25519 {KEY_B}")).unwrap();
        append(&path, "127.0.0.9", 2022, &key(KEY_A)).unwrap();
        let kh = KnownHosts::read(&path).unwrap();
        assert_eq!(kh.verify("127.0.0.9", 2022, &key(KEY_A)), Verdict::Known);
        assert_eq!(kh.verify("other", 22, &key(KEY_B)), Verdict::Known, "no line was glued to the last");
        assert!(KnownHosts::read(&dir.path().join("missing")).unwrap().entries.is_empty());
    }

    #[test]
    fn revoked_wins_wherever_it_stands() {
        let after = format!("n1 ssh-ed25519 {KEY_A}\n@revoked n1 ssh-ed25519 {KEY_A}\n");
        assert_eq!(KnownHosts::parse(&after).verify("n1", 22, &key(KEY_A)), Verdict::Revoked { line: 2 });
        let before = format!("@revoked * ssh-ed25519 {KEY_A}\nn1 ssh-ed25519 {KEY_A}\n");
        assert_eq!(KnownHosts::parse(&before).verify("n1", 22, &key(KEY_A)), Verdict::Revoked { line: 1 });
        let other_host = format!("@revoked n2 ssh-ed25519 {KEY_A}\nn1 ssh-ed25519 {KEY_A}\n");
        assert_eq!(KnownHosts::parse(&other_host).verify("n1", 22, &key(KEY_A)), Verdict::Known);
    }

    #[test]
    fn the_recorded_key_types_are_negotiated_first() {
        const ECDSA: &str = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBHoJ1RtfpBslTr1GKIGVYMK2fySz0Un711xrJrKXM+HkZsKJ6OQULVWGr0JQJ5GjDiyG21ZUHbgnJi115f9Ouh8=";
        let text = format!("n1 ecdsa-sha2-nistp256 {ECDSA}\n@revoked n1 ssh-ed25519 {KEY_A}\nn2 ssh-ed25519 {KEY_B}\n");
        let kh = KnownHosts::parse(&text);
        let p256 = Algorithm::Ecdsa { curve: russh::keys::EcdsaCurve::NistP256 };
        assert_eq!(kh.recorded_algorithms("n1", 22), vec![p256.clone()], "a revoked key is no reason to ask for its type");
        assert!(kh.recorded_algorithms("n3", 22).is_empty());
        let defaults = russh::Preferred::DEFAULT.key.to_vec();
        let order = preferred_host_key_algorithms(std::slice::from_ref(&p256), &defaults);
        assert_eq!(order[0], p256);
        assert_eq!(order.len(), defaults.len(), "the others stay, after it");
        let rsa = preferred_host_key_algorithms(&[Algorithm::Rsa { hash: None }], &defaults);
        assert!(rsa[..3].iter().all(|a| a.clone().is_rsa()), "every RSA signature variant first: {rsa:?}");
        assert_eq!(preferred_host_key_algorithms(&[], &defaults), defaults);
    }

    #[test]
    fn accept_new_hashes_into_a_hashed_file_and_creates_a_private_directory() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".ssh/known_hosts");
        append(&path, "127.0.0.9", 2022, &key(KEY_A)).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&dir.path().join(".ssh")), mode(&path)), (0o700, 0o600));
        assert!(std::fs::read_to_string(&path).unwrap().starts_with("[127.0.0.9]:2022 ssh-ed25519 "), "a plain file stays plain");

        let hashed_path = dir.path().join("hashed");
        std::fs::write(&hashed_path, format!("{} ssh-ed25519 {KEY_B}\n", hashed("n1", b"0123456789abcdefghij"))).unwrap();
        append(&hashed_path, "127.0.0.9", 2022, &key(KEY_A)).unwrap();
        let text = std::fs::read_to_string(&hashed_path).unwrap();
        assert!(text.lines().all(|l| l.starts_with("|1|")) && !text.contains("127.0.0.9"), "{text}");
        assert_eq!(KnownHosts::read(&hashed_path).unwrap().verify("127.0.0.9", 2022, &key(KEY_A)), Verdict::Known);
    }
}
