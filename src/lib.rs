//! fleetboot: reboot fleets of bare-metal nodes safely, fast and provably.

pub mod config;
pub mod hosts;
pub mod journal;
pub mod known_hosts;
