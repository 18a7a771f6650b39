//! The engine: runs a reboot job (the runner), a command everywhere (exec), power operations,
//! and the SDN → OVN-Kubernetes migration (`migrate`), and, through the seams it defines,
//! reaches nodes only through adapters. It hands events to its caller and never prints.

pub mod error;
pub mod exec;
pub mod lease;
pub mod migrate;
pub mod power;
pub mod reboot;
pub mod repair;
pub mod runner;
pub mod seams;
