//! The inventory of the standalone mode: hosts from a host file, `--host` flags or the config.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One machine to act on. `port` is `None` when the host uses the fleet-wide SSH port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    pub name: String,
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

impl Host {
    pub fn port_or(&self, default_port: u16) -> u16 {
        self.port.unwrap_or(default_port)
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HostsError {
    #[error("{origin}:{line}: {problem}")]
    BadLine { origin: String, line: usize, problem: String },
    #[error("failed to read host file {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("host name {name:?} appears twice ({first} and {second})")]
    DuplicateName { name: String, first: String, second: String },
    #[error("no hosts given: use --hosts-file, --host or [[hosts]] in the config")]
    Empty,
}

/// Parses `[name] address[:port]` lines; returns each host with where it came from
/// (`file:line`), so duplicates can be reported by location.
pub fn parse_host_file(text: &str, origin: &str) -> Result<Vec<(Host, String)>, HostsError> {
    let mut hosts = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let content = raw.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let bad = |problem: String| HostsError::BadLine { origin: origin.to_owned(), line: line_no, problem };
        let fields: Vec<&str> = content.split_whitespace().collect();
        let (name, endpoint) = match fields.as_slice() {
            [endpoint] => (None, *endpoint),
            [name, endpoint] => (Some(*name), *endpoint),
            _ => {
                return Err(bad(format!("expected `[name] address[:port]`, found {} fields in {content:?}", fields.len())));
            }
        };
        let (address, port) = parse_endpoint(endpoint).map_err(bad)?;
        if let Some(name) = name {
            validate_name(name).map_err(bad)?;
        }
        let name = name.map(str::to_owned).unwrap_or_else(|| address.clone());
        hosts.push((Host { name, address, port }, format!("{origin}:{line_no}")));
    }
    Ok(hosts)
}

/// `addr`, `addr:port`, `[v6]` or `[v6]:port`. Bare IPv6 without brackets is accepted
/// without a port, since its colons cannot be told from a port separator.
pub fn parse_endpoint(endpoint: &str) -> Result<(String, Option<u16>), String> {
    if let Some(rest) = endpoint.strip_prefix('[') {
        let (addr, after) = rest.split_once(']').ok_or_else(|| format!("unclosed `[` in {endpoint:?}"))?;
        let port = match after {
            "" => None,
            p => Some(parse_port(p.strip_prefix(':').ok_or_else(|| format!("expected `:port` after `]` in {endpoint:?}"))?)?),
        };
        return Ok((addr.to_owned(), port));
    }
    match endpoint.matches(':').count() {
        0 => Ok((endpoint.to_owned(), None)),
        1 => {
            let (addr, port) = endpoint.split_once(':').expect("one colon");
            if addr.is_empty() {
                return Err(format!("missing address before `:` in {endpoint:?}"));
            }
            Ok((addr.to_owned(), Some(parse_port(port)?)))
        }
        _ => Ok((endpoint.to_owned(), None)),
    }
}

fn parse_port(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("bad port {text:?}: expected a number from 1 to 65535")),
        Ok(port) => Ok(port),
    }
}

fn validate_name(name: &str) -> Result<(), String> {
    let ok = name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok { Ok(()) } else { Err(format!("bad host name {name:?}: use letters, digits, `-`, `_` and `.`")) }
}

/// Joins host lists from every source, refusing two hosts with one name: the name keys the
/// journal, so a duplicate would make two machines share one reboot record.
pub fn merge_sources(sources: Vec<(Host, String)>) -> Result<Vec<Host>, HostsError> {
    let mut seen: std::collections::HashMap<String, String> = Default::default();
    let mut hosts = Vec::with_capacity(sources.len());
    for (host, origin) in sources {
        if let Some(first) = seen.get(&host.name) {
            return Err(HostsError::DuplicateName { name: host.name, first: first.clone(), second: origin });
        }
        seen.insert(host.name.clone(), origin);
        hosts.push(host);
    }
    if hosts.is_empty() {
        return Err(HostsError::Empty);
    }
    Ok(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(text: &str) -> Vec<Host> {
        parse_host_file(text, "h.txt").unwrap().into_iter().map(|(h, _)| h).collect()
    }

    #[test]
    fn parses_names_ports_comments_and_blanks() {
        let parsed = hosts("# fleet\n\nnode-a 127.0.0.2\n127.0.0.3:2222  # trailing\n  b [::1]:22\n[fe80::1]\n");
        assert_eq!(
            parsed,
            vec![
                Host { name: "node-a".into(), address: "127.0.0.2".into(), port: None },
                Host { name: "127.0.0.3".into(), address: "127.0.0.3".into(), port: Some(2222) },
                Host { name: "b".into(), address: "::1".into(), port: Some(22) },
                Host { name: "fe80::1".into(), address: "fe80::1".into(), port: None },
            ]
        );
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let err = parse_host_file("ok 127.0.0.1\nx y z\n", "fleet.txt").unwrap_err();
        assert_eq!(err.to_string(), "fleet.txt:2: expected `[name] address[:port]`, found 3 fields in \"x y z\"");
        let err = parse_host_file("\n\nn 127.0.0.1:99999", "f").unwrap_err();
        assert!(err.to_string().starts_with("f:3: bad port \"99999\""), "{err}");
        let err = parse_host_file("n 127.0.0.1:0", "f").unwrap_err();
        assert!(err.to_string().contains("bad port \"0\""), "{err}");
        let err = parse_host_file("n/x 127.0.0.1", "f").unwrap_err();
        assert!(err.to_string().contains("bad host name"), "{err}");
    }

    #[test]
    fn duplicate_names_are_refused_with_both_places() {
        let mut all = parse_host_file("a 127.0.0.2\n", "one.txt").unwrap();
        all.extend(parse_host_file("a 127.0.0.3\n", "two.txt").unwrap());
        let err = merge_sources(all).unwrap_err();
        assert_eq!(err.to_string(), "host name \"a\" appears twice (one.txt:1 and two.txt:1)");
        assert_eq!(merge_sources(vec![]).unwrap_err(), HostsError::Empty);
    }
}
