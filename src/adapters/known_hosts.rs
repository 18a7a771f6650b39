//! OpenSSH `known_hosts` verification: plain, hashed (`|1|salt|hash`), `[host]:port`,
//! wildcard and negated patterns, `@revoked` markers. A verdict, never a silent update.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use data_encoding::BASE64;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::PublicKey;
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
#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    entries: Vec<Entry>,
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
        KnownHosts { entries }
    }

    pub fn read(path: &Path) -> std::io::Result<KnownHosts> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(KnownHosts::parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KnownHosts::default()),
            Err(e) => Err(e),
        }
    }

    pub fn verify(&self, host: &str, port: u16, presented: &PublicKey) -> Verdict {
        let name = lookup_name(host, port);
        let mut first_recorded = None;
        for entry in self.entries.iter().filter(|e| patterns_match(&e.patterns, &name)) {
            let Some(key) = &entry.key else { continue };
            let same = key.key_data() == presented.key_data();
            if entry.revoked {
                if same {
                    return Verdict::Revoked { line: entry.line };
                }
                continue;
            }
            if same {
                return Verdict::Known;
            }
            first_recorded.get_or_insert(entry.line);
        }
        match first_recorded {
            Some(line) => Verdict::Changed { line },
            None => Verdict::Unknown,
        }
    }
}

/// Appends a plain entry, as `ssh -o StrictHostKeyChecking=accept-new` does.
pub fn append(path: &Path, host: &str, port: u16, key: &PublicKey) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let openssh = key.to_openssh().map_err(|e| std::io::Error::other(e.to_string()))?;
    let needs_newline = std::fs::read(path).map(|bytes| bytes.last().is_some_and(|b| *b != b'\n')).unwrap_or(false);
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    let prefix = if needs_newline { "\n" } else { "" };
    writeln!(file, "{prefix}{} {openssh}", lookup_name(host, port))?;
    file.sync_data()
}

/// Where a recorded key was found, for messages: `file:line`.
pub fn describe_line(path: &Path, line: usize) -> String {
    format!("{}:{line}", path.display())
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
}
