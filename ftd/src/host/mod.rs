//! The seam under the drivers: everything ftd asks of one host, as two traits.
//!
//! - [`Hypervisor`]: libvirt and QEMU's monitor (through libvirt's pass-through):
//!   domain state, XML, definitions, metadata, IOThreads, QMP commands, and
//!   whether this host's hypervisor runs a guest's CPU. The real
//!   one is [`crate::libvirt::Libvirt`]; the fake ([`crate::testing::FakeHypervisor`])
//!   models what the COLO plans and re-attach read and change.
//! - [`HostOs`]: the few things done beside libvirt: creating qcow2 images
//!   (`qemu-img`), destroying QEMU's sockets to a lost peer (`ss -K`), setting a
//!   guest's host-side NIC devices up or down (`ip link`), probing the
//!   secondary's NBD export with a plain TCP connect, and the memory available
//!   for a new QEMU (`/proc/meminfo`). The real one is [`RealOs`],
//!   which gives the images it makes to the user libvirt runs QEMU as
//!   ([`qemu_user`]).
//!
//! Files under the configured directories (the secondary's overlay directory, its
//! saved spec) are plain filesystem work and stay outside the seam: tests point
//! those directories at a temporary directory.
//!
//! Domain tasks, steps, the plan runner, re-attach and the daemon use only these
//! traits (`HostCtx::lv`, `HostCtx::os`), so the whole shell around the
//! coordinator runs on the fakes in unit tests, with tokio's paused clock.

use crate::libvirt::{CpuFit, DomState, GuestCpu, Libvirt, LibvirtError};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

pub mod posture;
pub mod qemu_user;
mod real;
pub mod tool;

pub use qemu_user::QemuUser;
pub use real::RealOs;

type Result<T, E = LibvirtError> = std::result::Result<T, E>;

/// One host's libvirt and QEMU monitors, as ftd uses them.
#[async_trait::async_trait]
pub trait Hypervisor: Send + Sync + std::fmt::Debug {
    /// The domain's run state.
    async fn state(&self, domain: &str) -> Result<DomState>;
    /// Live XML (`inactive = false`) or the persistent definition.
    async fn xml(&self, domain: &str, inactive: bool) -> Result<String>;
    /// The persistent definition; `None` for a transient domain.
    async fn persistent_xml(&self, domain: &str) -> Result<Option<String>>;
    /// Whether libvirt autostarts the domain.
    async fn autostart(&self, domain: &str) -> Result<bool>;
    /// Start a defined, shut-off domain.
    async fn start(&self, domain: &str) -> Result<()>;
    /// Define (or redefine) a persistent domain; returns its name.
    async fn define(&self, xml: &str) -> Result<String>;
    /// Create and start a transient domain; returns its name.
    async fn create(&self, xml: &str) -> Result<String>;
    /// Power a domain off; one that is not running (or unknown) is fine.
    async fn destroy(&self, domain: &str) -> Result<()>;
    /// Add or remove IOThread `id` of the running domain (live only).
    async fn iothread(&self, domain: &str, id: u32, add: bool) -> Result<()>;
    /// The metadata element in namespace `ns`, if the domain carries one.
    async fn metadata(&self, domain: &str, ns: &str) -> Result<Option<String>>;
    /// Set (`Some`) or remove (`None`) the metadata element in `ns`.
    async fn set_metadata(
        &self,
        domain: &str,
        element_xml: Option<&str>,
        key: &str,
        ns: &str,
    ) -> Result<()>;
    /// Names and states of every domain on this host.
    async fn list(&self) -> Result<Vec<(String, DomState)>>;
    /// One QMP command; returns its `return` value.
    async fn qmp(&self, domain: &str, cmd: &Value, deadline: Duration) -> Result<Value>;
    /// Can this host's hypervisor run the guest CPU `cpu` (of `domain`)?
    /// libvirt's comparison; an incompatible CPU is `Ok`, with the features
    /// this host lacks named.
    async fn compare_cpu(&self, domain: &str, cpu: &GuestCpu) -> Result<CpuFit>;
}

/// What ftd does on the host beside libvirt. Errors are plain words: each says
/// what failed and what to check.
#[async_trait::async_trait]
pub trait HostOs: Send + Sync + std::fmt::Debug {
    /// Create an empty qcow2 image of `size` bytes at `path` (and its directory),
    /// for QEMU to open behind libvirt's back: the file is QEMU's user's, mode
    /// 0600, and a directory made for it QEMU's group's, 0750 ([`QemuUser`]).
    async fn create_image(&self, path: &Path, size: u64) -> Result<(), String>;
    /// Destroy this host's TCP sockets to `peer` on `ports`; returns how many.
    async fn cut_sockets(&self, peer: &str, ports: &[u16]) -> Result<usize, String>;
    /// Set the host-side network device `dev` up or down.
    async fn set_link(&self, dev: &str, up: bool) -> Result<(), String>;
    /// Does something accept TCP connections at `addr` (`host:port`) within `within`?
    async fn probe_tcp(&self, addr: &str, within: Duration) -> Result<(), String>;
    /// Bytes of memory a new process can have without swapping (the kernel's
    /// `MemAvailable`: free memory plus what the page cache can give back).
    async fn mem_available(&self) -> Result<u64, String>;
}

#[async_trait::async_trait]
impl Hypervisor for Libvirt {
    async fn state(&self, domain: &str) -> Result<DomState> {
        Libvirt::state(self, domain).await
    }
    async fn xml(&self, domain: &str, inactive: bool) -> Result<String> {
        Libvirt::xml(self, domain, inactive).await
    }
    async fn persistent_xml(&self, domain: &str) -> Result<Option<String>> {
        Libvirt::persistent_xml(self, domain).await
    }
    async fn autostart(&self, domain: &str) -> Result<bool> {
        Libvirt::autostart(self, domain).await
    }
    async fn start(&self, domain: &str) -> Result<()> {
        Libvirt::start(self, domain).await
    }
    async fn define(&self, xml: &str) -> Result<String> {
        Libvirt::define(self, xml).await
    }
    async fn create(&self, xml: &str) -> Result<String> {
        Libvirt::create(self, xml).await
    }
    async fn destroy(&self, domain: &str) -> Result<()> {
        Libvirt::destroy(self, domain).await
    }
    async fn iothread(&self, domain: &str, id: u32, add: bool) -> Result<()> {
        Libvirt::iothread(self, domain, id, add).await
    }
    async fn metadata(&self, domain: &str, ns: &str) -> Result<Option<String>> {
        Libvirt::metadata(self, domain, ns).await
    }
    async fn set_metadata(
        &self,
        domain: &str,
        element_xml: Option<&str>,
        key: &str,
        ns: &str,
    ) -> Result<()> {
        Libvirt::set_metadata(self, domain, element_xml, key, ns).await
    }
    async fn list(&self) -> Result<Vec<(String, DomState)>> {
        Libvirt::list(self).await
    }
    async fn qmp(&self, domain: &str, cmd: &Value, deadline: Duration) -> Result<Value> {
        Libvirt::qmp(self, domain, cmd, deadline).await
    }
    async fn compare_cpu(&self, domain: &str, cpu: &GuestCpu) -> Result<CpuFit> {
        Libvirt::compare_cpu(self, domain, cpu).await
    }
}
