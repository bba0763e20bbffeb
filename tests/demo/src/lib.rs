//! The lab-side pieces of the demo that other lab programs share (the benchmark,
//! `tests/bench`, uses them too):
//! - [`ftd`]: each lab host's own ftd (binary, configuration, start) and a blocking
//!   D-Bus client of it;
//! - [`writer`]: a client thread on ONE connection that makes numbered durable
//!   writes and keeps a log of every request (failover times are read from it);
//! - [`report`]: the error for a broken guarantee, with a short reason for scripts,
//!   and the demo's table.

pub mod ftd;
pub mod report;
pub mod writer;
