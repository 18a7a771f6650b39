//! Small helpers the simulation keeps for itself. They are written here, not borrowed from
//! fleetboot: the simulation is fleetboot's witness, and a witness that shares code with what
//! it checks shares its bugs.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// Milliseconds since the Unix epoch: the timestamps of the nodes' own histories.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A JSON object of strings (labels, annotations, matchLabels) as a map; anything else is empty.
pub fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
        .unwrap_or_default()
}

/// Whether a Node's `Ready` condition is `True`, as the MCO's node controller reads it
/// (machine-config-operator `pkg/controller/node/status.go`, `isNodeReady`).
pub fn node_is_ready(node: &Value) -> bool {
    node.at("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|conditions| conditions.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// A pool's `spec.maxUnavailable`: an int-or-percent, 1 when absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxUnavailable {
    Count(usize),
    Percent(usize),
}

impl MaxUnavailable {
    /// The MCO's `maxUnavailable` (machine-config-operator `pkg/controller/node/node_controller.go`):
    /// `intstr.GetScaledValueFromIntOrPercent(maxUnavailable, len(nodes), false)` (a percentage
    /// rounds down), and 0 becomes 1 so that a pool always makes progress.
    pub fn of(self, pool_size: usize) -> usize {
        let scaled = match self {
            MaxUnavailable::Count(n) => n,
            MaxUnavailable::Percent(p) => pool_size * p / 100,
        };
        scaled.max(1)
    }

    /// The field as the API holds it: a number, `"N"` or `"N%"`; anything else is 1.
    pub fn parse(value: Option<&Value>) -> MaxUnavailable {
        match value {
            Some(Value::Number(n)) => MaxUnavailable::Count(n.as_u64().map_or(1, |n| n as usize)),
            Some(Value::String(s)) => match s.strip_suffix('%') {
                Some(percent) => MaxUnavailable::Percent(percent.trim().parse().unwrap_or(0)),
                None => MaxUnavailable::Count(s.trim().parse().unwrap_or(1)),
            },
            _ => MaxUnavailable::Count(1),
        }
    }
}

/// A simulation holds one listening socket per node: lift the soft open-file limit to the hard
/// one (1024 by default on many systems).
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

/// A UUID-shaped identifier that is the same for the same text (FNV-1a, twice): stable uids,
/// machine IDs and system UUIDs for the simulated objects.
pub fn stable_uuid(text: &str) -> String {
    let fnv = |seed: u64| text.bytes().fold(seed, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3));
    let (a, b) = (fnv(0xcbf2_9ce4_8422_2325), fnv(0x8422_2325_cbf2_9ce4));
    let hex = format!("{a:016x}{b:016x}");
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// Decodes `%XX` escapes and `+` byte by byte (RFC 3986 section 2.1: an escape is `%` and two
/// hex digits, which are ASCII; anything else after `%`, raw UTF-8 included, stays as it is).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => match (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// [`Value::pointer`] without its allocations: serde_json builds two `String`s per segment
/// (unescaping `~1` and `~0`) on every call, and the controllers' passes read a few pointers
/// of every pod and node on every tick (at 5,000 nodes, 15,000 pods: most of the simulation's
/// CPU, with the store locked). Same answers: a path with an escape goes to serde_json itself.
pub trait At {
    fn at(&self, path: &str) -> Option<&Value>;
}

impl At for Value {
    fn at(&self, path: &str) -> Option<&Value> {
        if path.is_empty() {
            return Some(self);
        }
        if path.contains('~') {
            return self.pointer(path);
        }
        let rest = path.strip_prefix('/')?;
        rest.split('/').try_fold(self, |target, token| match target {
            Value::Object(map) => map.get(token),
            Value::Array(list) => array_index(token).and_then(|i| list.get(i)),
            _ => None,
        })
    }
}

/// An array index as a JSON pointer token gives it (serde_json's `parse_index`): digits, no
/// sign, no leading zero.
fn array_index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() != 1) {
        return None;
    }
    token.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn max_unavailable_rounds_down_and_never_reaches_zero() {
        assert_eq!(MaxUnavailable::parse(Some(&json!("50%"))).of(5), 2);
        assert_eq!(MaxUnavailable::parse(Some(&json!("10%"))).of(5), 1);
        assert_eq!(MaxUnavailable::parse(Some(&json!(3))).of(5), 3);
        assert_eq!(MaxUnavailable::parse(Some(&json!(0))).of(5), 1);
        assert_eq!(MaxUnavailable::parse(None).of(5), 1);
    }

    #[test]
    fn at_answers_as_serde_json_pointer_does() {
        let pod = json!({"metadata": {"name": "p", "ownerReferences": [{"kind": "ReplicaSet", "uid": "u"}], "labels": {"a/b": "x", "c~d": "y"}},
            "spec": {"nodeName": "n", "containers": [{"name": "c0"}, {"name": "c1"}]}, "status": null});
        for path in [
            "",
            "/",
            "/metadata",
            "/metadata/name",
            "/metadata/missing",
            "/metadata/ownerReferences/0/kind",
            "/metadata/ownerReferences/1/kind",
            "/metadata/ownerReferences/00/kind",
            "/metadata/ownerReferences/+0/kind",
            "/metadata/ownerReferences/-1",
            "/metadata/labels/a~1b",
            "/metadata/labels/c~0d",
            "/metadata/labels/a/b",
            "/spec/containers/1/name",
            "/spec/nodeName/x",
            "/status/x",
            "metadata",
            "/metadata/name/",
        ] {
            assert_eq!(pod.at(path), pod.pointer(path), "{path}");
        }
    }
}
