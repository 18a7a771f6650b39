//! The little of Kubernetes' protobuf encoding the simulation reads: kubectl sends some bodies
//! as `application/vnd.kubernetes.protobuf` (a `DeleteOptions` when `kubectl drain` deletes a
//! finished pod). The envelope is the 4-byte magic `k8s\0` and a `runtime.Unknown`
//! (k8s.io/apimachinery `pkg/runtime/types_proto.go`, `generated.proto`: 1 typeMeta, 2 raw,
//! 3 contentEncoding, 4 contentType); `raw` holds the object, here a `DeleteOptions`
//! (`pkg/apis/meta/v1/generated.proto`: 1 gracePeriodSeconds, 2 preconditions {1 uid,
//! 2 resourceVersion}, 3 orphanDependents, 4 propagationPolicy, 5 dryRun). Other kinds are not
//! decoded: their bodies are refused with 415, as a server that does not speak protobuf for them.

use serde_json::{Map, Value, json};

pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";
const MAGIC: &[u8] = b"k8s\0";

/// One field of a protobuf message: (number, value).
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(bytes: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at).ok_or("truncated varint")?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint longer than 10 bytes".into())
}

fn fields(bytes: &[u8]) -> Result<Vec<(u64, Field<'_>)>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let key = varint(bytes, &mut at)?;
        let (number, wire) = (key >> 3, key & 7);
        match wire {
            0 => out.push((number, Field::Varint(varint(bytes, &mut at)?))),
            2 => {
                let len = usize::try_from(varint(bytes, &mut at)?).map_err(|_| "length too large")?;
                let end = at.checked_add(len).filter(|e| *e <= bytes.len()).ok_or("truncated field")?;
                out.push((number, Field::Bytes(&bytes[at..end])));
                at = end;
            }
            1 => at += 8,
            5 => at += 4,
            other => return Err(format!("unsupported wire type {other}")),
        }
    }
    Ok(out)
}

fn text(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| "a string field is not UTF-8".to_owned())
}

/// The kind and the raw object of a protobuf body.
fn unwrap(body: &[u8]) -> Result<(String, &[u8]), String> {
    let message = body.strip_prefix(MAGIC).ok_or("the body lacks the k8s protobuf magic")?;
    let (mut kind, mut raw) = (String::new(), &[][..]);
    for (number, field) in fields(message)? {
        match (number, field) {
            (1, Field::Bytes(type_meta)) => {
                for (n, f) in fields(type_meta)? {
                    if let (2, Field::Bytes(k)) = (n, f) {
                        kind = text(k)?;
                    }
                }
            }
            (2, Field::Bytes(r)) => raw = r,
            _ => {}
        }
    }
    Ok((kind, raw))
}

/// A protobuf `DeleteOptions` body as the JSON the rest of the server reads.
pub fn delete_options(body: &[u8]) -> Result<Value, String> {
    let (kind, raw) = unwrap(body)?;
    if kind != "DeleteOptions" {
        return Err(format!("expected a DeleteOptions, got {kind:?}"));
    }
    let mut options = Map::new();
    let mut dry_run = Vec::new();
    for (number, field) in fields(raw)? {
        match (number, field) {
            (1, Field::Varint(v)) => {
                options.insert("gracePeriodSeconds".into(), json!(v as i64));
            }
            (2, Field::Bytes(p)) => {
                let mut preconditions = Map::new();
                for (n, f) in fields(p)? {
                    match (n, f) {
                        (1, Field::Bytes(uid)) => {
                            preconditions.insert("uid".into(), json!(text(uid)?));
                        }
                        (2, Field::Bytes(rv)) => {
                            preconditions.insert("resourceVersion".into(), json!(text(rv)?));
                        }
                        _ => {}
                    }
                }
                options.insert("preconditions".into(), Value::Object(preconditions));
            }
            (3, Field::Varint(v)) => {
                options.insert("orphanDependents".into(), json!(v != 0));
            }
            (4, Field::Bytes(policy)) => {
                options.insert("propagationPolicy".into(), json!(text(policy)?));
            }
            (5, Field::Bytes(mode)) => dry_run.push(json!(text(mode)?)),
            _ => {}
        }
    }
    if !dry_run.is_empty() {
        options.insert("dryRun".into(), Value::Array(dry_run));
    }
    Ok(Value::Object(options))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(number: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(number << 3 | 2) as u8, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    /// What client-go writes for `DeleteOptions{GracePeriodSeconds: 30, Preconditions: {UID}}`.
    fn encoded(kind: &str) -> Vec<u8> {
        let type_meta = [field(1, b"v1"), field(2, kind.as_bytes())].concat();
        let preconditions = field(1, b"7d3c0a52-1f0e-4b47-9a77-3f1f5cbd0b11");
        let raw = [vec![1 << 3, 30], field(2, &preconditions), field(4, b"Background")].concat();
        [MAGIC.to_vec(), field(1, &type_meta), field(2, &raw)].concat()
    }

    #[test]
    fn a_delete_options_body_reads_as_its_json() {
        assert_eq!(
            delete_options(&encoded("DeleteOptions")).unwrap(),
            json!({"gracePeriodSeconds": 30, "preconditions": {"uid": "7d3c0a52-1f0e-4b47-9a77-3f1f5cbd0b11"}, "propagationPolicy": "Background"})
        );
    }

    #[test]
    fn other_kinds_and_broken_bodies_are_named() {
        assert_eq!(delete_options(&encoded("Pod")).unwrap_err(), r#"expected a DeleteOptions, got "Pod""#);
        assert_eq!(delete_options(b"{}").unwrap_err(), "the body lacks the k8s protobuf magic");
        assert!(delete_options(&[MAGIC, &[0x0a, 0x40]].concat()).unwrap_err().contains("truncated"));
    }
}
