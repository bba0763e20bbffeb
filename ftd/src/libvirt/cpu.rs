//! libvirt's CPU comparison: can this host's hypervisor run a guest's CPU
//! (`virConnectCompareHypervisorCPU`, which the `virt` crate does not wrap)?
//! It compares against what QEMU with KVM can give on this host, not the bare
//! host CPU (`virConnectCompareCPU`), so features KVM masks count as missing.
//! With `VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE`, libvirt answers an
//! incompatible CPU with an error whose message names the features this host
//! lacks ("Host CPU does not provide required features: avx512f, ...").

use super::{op_err, Libvirt, LibvirtError, Result};
use std::ffi::CString;
use virt::sys;

/// A guest's CPU as the comparison takes it: the `<cpu>` element of its
/// definition and what selects the hypervisor's view of this host's CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestCpu {
    /// The `<cpu>` element (XML text).
    pub xml: String,
    /// `x86_64`, ... (from `<os><type arch=...>`).
    pub arch: String,
    /// The machine type (`pc-i440fx-7.2`); empty: the arch's default.
    pub machine: String,
    /// The domain type: `kvm`.
    pub virt_type: String,
    /// The emulator the guest runs on; `None`: libvirt's default for the arch.
    pub emulator: Option<String>,
}

/// libvirt's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuFit {
    /// This host runs the CPU (identical or a superset).
    Runs,
    /// It does not: libvirt's message, naming the missing features.
    Incompatible(String),
}

impl Libvirt {
    /// Compare `cpu` with this host's hypervisor CPU; `domain` only names the
    /// call in errors and logs.
    pub async fn compare_cpu(&self, domain: &str, cpu: &GuestCpu) -> Result<CpuFit> {
        let (d, cpu) = (domain.to_string(), cpu.clone());
        self.call("compare CPU", domain, self.deadline, move |c| {
            let cs = |field: &str, v: &str| {
                CString::new(v).map_err(|_| LibvirtError::Op {
                    op: "compare CPU",
                    domain: d.clone(),
                    msg: format!("the guest's {field} contains a NUL byte"),
                })
            };
            let xml = cs("<cpu>", &cpu.xml)?;
            let arch = cs("arch", &cpu.arch)?;
            let machine = (!cpu.machine.is_empty())
                .then(|| cs("machine", &cpu.machine))
                .transpose()?;
            let virt_type = cs("type", &cpu.virt_type)?;
            let emulator = cpu
                .emulator
                .as_deref()
                .map(|e| cs("emulator", e))
                .transpose()?;
            let opt = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
            // SAFETY: the connection is valid for the call; every string is a
            // NUL-terminated CString (or NULL where libvirt allows it) that
            // outlives the call.
            let r = unsafe {
                sys::virConnectCompareHypervisorCPU(
                    c.as_ptr(),
                    opt(&emulator),
                    arch.as_ptr(),
                    opt(&machine),
                    virt_type.as_ptr(),
                    xml.as_ptr(),
                    sys::VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE,
                )
            };
            match r {
                sys::VIR_CPU_COMPARE_IDENTICAL | sys::VIR_CPU_COMPARE_SUPERSET => Ok(CpuFit::Runs),
                // Not with FAIL_INCOMPATIBLE, but older libvirts may answer so.
                sys::VIR_CPU_COMPARE_INCOMPATIBLE => Ok(CpuFit::Incompatible(
                    "libvirt finds the CPU incompatible (it named no feature)".into(),
                )),
                _ => {
                    let e = virt::error::Error::last_error();
                    if e.code().is(virt::error::ErrorNumber::CpuIncompatible) {
                        Ok(CpuFit::Incompatible(e.message().to_string()))
                    } else {
                        Err(op_err("compare CPU", &d, e))
                    }
                }
            }
        })
        .await
    }
}
