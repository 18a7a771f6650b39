//! The simulated OpenShift cluster (`fleetboot sim`, `fleetboot demo`): a real HTTP server
//! with Kubernetes API semantics, simulated kubelets, and nodes that serve SSH on loopback
//! and really go away while they reboot.

pub mod api;
pub mod bmc;
pub mod cluster;
pub mod cno;
pub mod mco;
pub mod node;
pub mod patch;
pub mod selector;
pub mod store;
pub mod table;
pub mod types;

pub use cluster::{Cluster, SimOptions};
