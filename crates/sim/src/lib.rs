//! The simulated OpenShift cluster (`fleetboot sim`, `fleetboot demo`): a real HTTP server
//! with Kubernetes API semantics, simulated kubelets and operators, and nodes that serve SSH and
//! Redfish on loopback and really go away while they reboot.
//!
//! This crate depends on no fleetboot crate, on purpose: it is the witness fleetboot is tested
//! against, and a witness that shared code with what it checks would share its bugs.

pub mod api;
pub mod bmc;
pub mod cluster;
pub mod cno;
pub mod cvo;
pub mod defaults;
pub mod eviction;
pub mod exec;
pub mod features;
pub mod heartbeat;
pub mod kubelet;
pub mod live;
pub mod mco;
pub mod node;
pub mod patch;
pub mod persist;
pub mod protobuf;
pub mod rbac;
pub mod scale;
pub mod selector;
pub mod serviceaccounts;
pub mod store;
pub mod table;
pub mod types;
pub mod util;
pub mod version;
pub mod workloads;
pub mod world;

pub use cluster::{Cluster, HeartbeatMode, SimOptions};
