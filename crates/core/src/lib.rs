//! fleetboot's pure core. Nothing here performs I/O or reads a clock: every function takes its
//! inputs, `now` included, and returns a value, so the rules that decide whether a node may be
//! rebooted can be read, and property-tested, alone.
//!
//! - [`batch`]: maintenance windows (wall-clock days and times in a zone), `--only-if`.
//! - [`hosts`]: a host and the host-file format.
//! - [`nodes`]: cluster nodes, MachineConfigPools, grouping rules, the drain policy.
//! - [`power`]: the restart kinds a BMC can be asked for.
//! - [`rbac`]: the Kubernetes permissions of each mode (`fleetboot rbac`, the start-up check).
//! - [`journal`]: the journal's records (its on-disk format) and the fold that rebuilds a run.
//! - [`limits`]: whether a host may go down now, from the cluster's state (unavailable nodes,
//!   the control plane, etcd).
//! - [`plan`]: inventory + folded journal → what each host gets, in which order.
//! - [`escalation`]: the ladder for a host whose reboot has not shown: wait, re-send, reset, give up.
//! - [`events`]: what a run tells the world, and its summary.
//! - [`migrate`]: the SDN → OVN-Kubernetes migration's flows, checks, journal fold, events and
//!   report files.
//! - [`repair`]: what a journal says fleetboot changed and did not put back (`fleetboot repair`).
//! - [`settings`]: the typed run settings and their one merge (flag > environment > file > default).
//! - [`table`]: plain text tables.
//! - [`timeline`]: a run's or a migration's timeline: its model, geometry, SVG and HTML report.
//! - [`transport`]: the power-transport seam (how a reboot reaches a node) and its errors.

pub mod batch;
pub mod conditions;
pub mod escalation;
pub mod events;
pub mod hosts;
pub mod journal;
pub mod limits;
pub mod migrate;
pub mod nodes;
pub mod plan;
pub mod policy;
pub mod power;
pub mod rbac;
pub mod repair;
pub mod settings;
pub mod table;
pub mod timeline;
pub mod transport;

/// Process exit codes, documented in README.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// Every host rebooted (or every command succeeded).
    Ok = 0,
    /// fleetboot itself broke.
    Internal = 1,
    /// Bad input or could not start: nothing was touched.
    BadInput = 2,
    /// At least one host failed.
    HostsFailed = 3,
    /// Interrupted or stopped early with no failure: `--resume` finishes the run.
    Incomplete = 4,
    /// `--window-exit`: the maintenance windows closed before every host was done; nothing
    /// failed, and `--resume` continues (in a window).
    OutsideWindow = 5,
}
