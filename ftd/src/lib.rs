//! `ftd`, the ftvirt daemon.
//!
//! - [`coordinator`]: the checkpoint coordinator, a pure state machine per protected
//!   domain; it decides, the drivers act.
//! - [`libvirt`]: the libvirt driver (blocking calls off the runtime, reconnection,
//!   QMP through libvirt's monitor pass-through).
//!
//! The drivers (libvirt, QMP, peer link) and the D-Bus API land in later steps; they
//! only execute the coordinator's [`coordinator::Action`]s and feed it
//! [`coordinator::Event`]s.

pub mod colo;
pub mod coordinator;
pub mod libvirt;
