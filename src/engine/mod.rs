//! The engine: runs a reboot job (the runner), a command everywhere (exec), and, through the
//! seams it defines, reaches nodes only through adapters.

pub mod exec;
pub mod migrate;
pub mod power;
pub mod reboot;
pub mod runner;
pub mod seams;
