//! COLO specifics, all pure:
//! - [`layout`]: what a domain looks like (from its live XML) and whether COLO can
//!   replicate it;
//! - [`secondary`]: the secondary's domain XML, generated from the primary's;
//! - [`definition`] and [`allow`]: definitions built from the peer's XML by an
//!   allow-list; [`xml`]: bounded parsing;
//! - [`validate`]: the grammars of the peer's values and the spec's check;
//! - [`fit`]: whether this host can hold a secondary (its memory, its CPU);
//! - [`plan`]: the QMP sequences that wire and unwire COLO on each side;
//! - [`ports`]: the TCP ports of one domain's COLO, per slot;
//! - [`tls`]: the TLS objects of COLO's channels (and, the one part that is not
//!   pure, [`tls::write_dir`]: QEMU's copy of the TLS files, written at start).

pub mod allow;
pub mod definition;
pub mod fit;
pub mod layout;
pub mod plan;
pub mod ports;
pub mod secondary;
pub mod spec;
pub mod tls;
pub mod validate;
pub mod xml;
