//! Whether a host can hold a domain's secondary, decided from the secondary's
//! definition (built by the allow-list from the primary's live XML) and the
//! host's facts, which the caller reads through the host seam
//! (`crate::domain::create`) before anything is created for the secondary:
//!
//! - memory: COLO's secondary keeps a cache of the guest's whole RAM beside the
//!   RAM itself (QEMU's `colo_init_ram_cache`), so it needs about twice the
//!   guest's memory, plus QEMU's own ([`MemoryNeed`], `colo.secondary-memory-*`);
//! - CPU: a KVM guest runs on the host's CPU, so the secondary's host must
//!   provide every feature of the primary's guest CPU ([`cpu_check`]: what to
//!   ask libvirt's comparison, or why nothing is asked). A TCG guest (`type='qemu'`)
//!   has an emulated CPU, the same on every host.

use super::xml;
use crate::libvirt::GuestCpu;
use roxmltree::Node;

/// `colo.secondary-memory-percent` by default: the guest's RAM and COLO's
/// cache of it.
pub const DEFAULT_MEMORY_PERCENT: u32 = 200;
/// `colo.secondary-memory-headroom` by default (MiB): QEMU's own memory beside
/// the guest's (its code, device models, COLO's buffers).
pub const DEFAULT_MEMORY_HEADROOM_MIB: u64 = 128;

const MIB: u64 = 1 << 20;

/// How much memory a secondary needs on its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryNeed {
    /// Percent of the guest's memory (`<memory>`).
    pub percent: u32,
    /// MiB beyond that.
    pub headroom_mib: u64,
}

impl Default for MemoryNeed {
    fn default() -> Self {
        MemoryNeed {
            percent: DEFAULT_MEMORY_PERCENT,
            headroom_mib: DEFAULT_MEMORY_HEADROOM_MIB,
        }
    }
}

impl MemoryNeed {
    /// Bytes the secondary of a guest of `guest_kib` needs (saturating).
    pub fn bytes(&self, guest_kib: u64) -> u64 {
        let need = u128::from(guest_kib) * 1024 * u128::from(self.percent) / 100
            + u128::from(self.headroom_mib) * u128::from(MIB);
        u64::try_from(need).unwrap_or(u64::MAX)
    }

    /// Refuse when `available` bytes on `host` are less than the secondary
    /// of `domain` (a guest of `guest_kib`) needs.
    pub fn check(
        &self,
        host: &str,
        domain: &str,
        guest_kib: u64,
        available: u64,
    ) -> Result<(), Unfit> {
        let need = self.bytes(guest_kib);
        if available >= need {
            return Ok(());
        }
        Err(Unfit::Memory {
            host: host.into(),
            domain: domain.into(),
            available_mib: available / MIB,
            guest_mib: guest_kib.div_ceil(1024),
            need_mib: need.div_ceil(MIB),
            percent: self.percent,
            headroom_mib: self.headroom_mib,
        })
    }
}

/// Why a host cannot hold a domain's secondary; each says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unfit {
    /// Too little memory available.
    #[error(
        "host {host} has {available_mib} MiB available, the secondary of {domain} \
         ({guest_mib} MiB) needs about {need_mib} MiB ({percent}% of its memory for its RAM \
         and COLO's cache of it, and {headroom_mib} MiB for QEMU): free memory on {host} or \
         lower {domain}'s memory (virsh setmaxmem {domain} SIZE --config, then restart it)"
    )]
    Memory {
        host: String,
        domain: String,
        available_mib: u64,
        guest_mib: u64,
        need_mib: u64,
        percent: u32,
        headroom_mib: u64,
    },
    /// A KVM guest CPU libvirt cannot compare: the host's own.
    #[error(
        "domain {domain} uses <cpu mode='{mode}'>, which libvirt cannot compare with host \
         {host}'s CPU (a KVM secondary must run the very same CPU): give {domain} a CPU \
         model both hosts run (<cpu mode='host-model'/>, or a model from `virsh \
         hypervisor-cpu-baseline` of both hosts' CPUs) with virsh edit, then restart it"
    )]
    CpuNotComparable {
        host: String,
        domain: String,
        mode: String,
    },
    /// The host lacks features of the guest's CPU. What to do comes before
    /// libvirt's list of features, which may be long (the peer link keeps 512
    /// characters of a message).
    #[error(
        "host {host} cannot run domain {domain}'s CPU; give {domain} a CPU model both \
         hosts run (from `virsh hypervisor-cpu-baseline` of both hosts' CPUs, with virsh \
         edit, then restart it) or pair it with a host that has every feature: {why}"
    )]
    CpuIncompatible {
        host: String,
        domain: String,
        /// libvirt's words, naming the missing features.
        why: String,
    },
    /// The secondary's definition cannot be read (it is ftd's own, built
    /// from the peer's; a bound of [`xml::parse`] was hit).
    #[error("the secondary's definition: {0}")]
    Definition(String),
}

/// What to do about the guest's CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuCheck {
    /// Nothing to compare; why (for a debug line).
    Skip(String),
    /// Ask libvirt whether this host runs this CPU.
    Compare(GuestCpu),
}

/// The CPU comparison the secondary's definition `xml` (of `domain`, to be
/// run on `host`) calls for. Only `type='kvm'` guests run the host's CPU; of
/// their `<cpu>` modes only `custom` (what libvirt shows of a running
/// `host-model` guest too) names what the guest sees.
pub fn cpu_check(host: &str, domain: &str, xml: &str) -> Result<CpuCheck, Unfit> {
    let doc = xml::parse(xml).map_err(|e| Unfit::Definition(e.to_string()))?;
    let root = doc.root_element();
    let kind = root.attribute("type").unwrap_or("");
    if kind != "kvm" {
        return Ok(CpuCheck::Skip(format!(
            "domain type '{kind}': QEMU emulates the CPU (TCG), the same on every host"
        )));
    }
    let Some(cpu) = child(root, "cpu") else {
        return Ok(CpuCheck::Skip(
            "no <cpu>: QEMU's default model, which every KVM host of the architecture runs".into(),
        ));
    };
    let mode = cpu.attribute("mode").unwrap_or("custom");
    if mode != "custom" {
        return Err(Unfit::CpuNotComparable {
            host: host.into(),
            domain: domain.into(),
            mode: mode.into(),
        });
    }
    let named = child(cpu, "model")
        .and_then(|m| m.text())
        .is_some_and(|t| !t.trim().is_empty());
    if !named {
        return Ok(CpuCheck::Skip(
            "<cpu> names no model: QEMU's default, which every KVM host of the architecture runs"
                .into(),
        ));
    }
    let os_type = child(root, "os").and_then(|os| child(os, "type"));
    let attr = |a: &str| {
        os_type
            .and_then(|t| t.attribute(a))
            .unwrap_or("")
            .to_string()
    };
    Ok(CpuCheck::Compare(GuestCpu {
        xml: xml[cpu.range()].to_string(),
        arch: attr("arch"),
        machine: attr("machine"),
        virt_type: kind.into(),
        emulator: child(root, "devices")
            .and_then(|d| child(d, "emulator"))
            .and_then(|e| e.text())
            .map(|t| t.trim().to_string()),
    }))
}

fn child<'a, 'i>(n: Node<'a, 'i>, tag: &str) -> Option<Node<'a, 'i>> {
    n.children().find(|c| c.has_tag_name(tag))
}

#[cfg(test)]
mod tests;
