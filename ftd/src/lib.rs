//! `ftd`, the ftvirt daemon.
//!
//! - [`coordinator`]: the checkpoint coordinator, a pure state machine per protected
//!   domain; it decides, the drivers act.
//! - [`libvirt`]: the libvirt driver (blocking calls off the runtime, reconnection,
//!   QMP through libvirt's monitor pass-through).
//! - [`colo`]: the domain layout, the secondary's XML and the COLO QMP plans (pure).
//! - [`runner`]: runs a plan against a domain, with waits and timeouts.
//! - [`inspect`]: what the live primary's disk looks like to QEMU.
//! - [`sockets`]: dropping QEMU's connections to a lost peer host (`SOCK_DESTROY`).
//! - [`auth`]: who may call the D-Bus API ([`api`]): polkit, for the caller.
//! - [`certs`]: `ftd make-certs`, the certificates of the peer link's and COLO's
//!   mutual TLS, each from a CA of its own.
//! - [`arbiter`]: which host keeps a domain when the pair is split (corosync's quorum).
//! - [`witness`]: the copy of record of each protected domain (etcd), changed only by
//!   compare-and-swap.
//!
//! - [`daemon`] routes the API's commands, peer-link and QEMU events to one task
//!   per [`domain`], which owns the domain's coordinator and executes its actions
//!   through the drivers ([`libvirt`], the peer link [`peer`], [`host`]'s seam).
//! - [`host`]: the seam under the drivers; [`testing`] has its fakes.

pub mod api;
pub mod arbiter;
pub mod auth;
/// The protection annotation in a domain's `<metadata>` (crate `ftd-annotation`,
/// shared with the libvirt hook).
pub use ftd_annotation as annotation;
pub mod certs;
pub mod colo;
pub mod config;
pub mod coordinator;
pub mod daemon;
pub mod domain;
pub mod host;
pub mod inspect;
pub mod libvirt;
pub mod observe;
pub mod peer;
pub mod pidfile;
pub mod protect;
pub mod qmp_events;
pub mod runner;
#[cfg(test)]
mod shell_tests;
pub mod sockets;
pub mod testing;
pub mod witness;
