//! `ftd`, the ftvirt daemon.
//!
//! - [`coordinator`]: the checkpoint coordinator, a pure state machine per protected
//!   domain; it decides, the drivers act.
//!
//! The drivers (libvirt, QMP, peer link) and the D-Bus API land in later steps; they
//! only execute the coordinator's [`coordinator::Action`]s and feed it
//! [`coordinator::Event`]s.

pub mod coordinator;
