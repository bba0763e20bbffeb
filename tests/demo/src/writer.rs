//! The demo's client, [`ftvirt_lab::writer`]: one connection, numbered durable
//! writes, a log of every request.

pub use ftvirt_lab::writer::*;
