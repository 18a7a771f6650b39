//! `fleetboot sim --state-dir DIR`: the API server's store kept on disk, and a simulated API
//! server restart (`POST /sim/v1/api-restart`).
//!
//! A real API server keeps nothing of its own: its objects and their revision live in etcd,
//! and a restarted server lists them back, with a watch cache that starts at the revision it
//! listed (k8s.io/apiserver release-1.33 pkg/storage/cacher/cacher.go, watch_cache.go). A
//! restart here does the same with a file: the store is written to `DIR/store.json`
//! (written whole, fsynced, then renamed over the previous one), every connection and watch is
//! cut, and the store is read back from the file alone. What a client wrote before the restart
//! and the server acknowledged is there after it; resourceVersions go on from where they were,
//! and a watch from an older one is 410 Gone.

use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};

use super::api::ApiState;

/// The file the store is kept in, under the state directory.
pub const STORE_FILE: &str = "store.json";

fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Saves the store to `dir`, cuts every connection and watch, and reads the store back from
/// the file: a restart of the API server whose etcd is the file.
pub fn restart_api(api: &ApiState, dir: &Path) -> Result<Value, (u16, String)> {
    let failed = |what: &str, e: &dyn std::fmt::Display| (500, format!("{what} {}: {e}", dir.join(STORE_FILE).display()));
    let mut store = api.store.lock().unwrap();
    std::fs::create_dir_all(dir).map_err(|e| failed("cannot create the directory of", &e))?;
    let path = dir.join(STORE_FILE);
    let saved = serde_json::to_vec(&store.snapshot()).expect("JSON values serialize");
    write_durably(&path, &saved).map_err(|e| failed("cannot write", &e))?;
    // Every client is cut off, as from a server that went away.
    let _ = api.cut_watches.send(());
    let text = std::fs::read(&path).map_err(|e| failed("cannot read", &e))?;
    let snapshot: Value = serde_json::from_slice(&text).map_err(|e| failed("cannot parse", &e))?;
    store.restore(&snapshot).map_err(|e| failed("cannot restore", &e))?;
    Ok(json!({"restarted": true, "resourceVersion": store.resource_version(), "bytes": text.len()}))
}
