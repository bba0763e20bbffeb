//! The lab-side pieces of the demo that other lab programs share (the benchmark,
//! `tests/bench`, uses them too):
//! - [`ftd`]: each lab host's own ftd (binary, configuration, start) and a blocking
//!   D-Bus client of it;
//! - [`report`]: the error for a broken guarantee (the client, its writes and
//!   their verification are `ftvirt_lab::writer`'s), with a short reason for scripts,
//!   and the demo's table.

pub mod ftd;
pub mod report;
