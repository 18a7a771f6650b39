//! Reading host files from disk; their format is `fleetboot_core::hosts`.

use std::path::Path;

use fleetboot_core::hosts::{Host, HostsError, parse_host_file};

/// Each host of the file with where it came from (`file:line`).
pub fn read_host_file(path: &Path) -> Result<Vec<(Host, String)>, HostsError> {
    let text = std::fs::read_to_string(path).map_err(|e| HostsError::Unreadable { path: path.to_owned(), reason: e.to_string() })?;
    parse_host_file(&text, &path.display().to_string())
}
