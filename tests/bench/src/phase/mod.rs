//! The benchmark's phases, each on its own guest; see each module for what it
//! measures and how.

pub mod failover;
pub mod ha;
pub mod overhead;
pub mod protect;
pub mod tls;
