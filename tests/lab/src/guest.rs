//! The test guest as a libvirt domain: its XML, its disk, booting it and waiting
//! until its service is READY.
//!
//! The guest is the Debian kernel plus the project's initramfs (busybox + the
//! `ftvirt-guest-agent` service, see `tests/guest-agent`). Its address comes on the
//! kernel command line (`ftvirt.ip=`); its NIC is a libvirt-managed tap on the host's
//! `br0`, which is bridged to the lab LAN shared with the client namespace.

use crate::accel::{Accel, AccelChoice};
use crate::artifacts::{Artifacts, QemuChoice};
use crate::cmd;
use crate::error::{LabError, Result};
use crate::host::Host;
use crate::wait::{wait_until, Look};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Port of the guest's line service.
pub const SERVICE_PORT: u16 = 7000;
const READY: &str = "FTVIRT-GUEST: READY";

/// What to boot.
#[derive(Debug, Clone)]
pub struct GuestSpec {
    pub name: String,
    pub vcpus: u32,
    pub memory_mib: u32,
    pub disk_gib: u32,
    pub ip: Ipv4Addr,
    pub mac: String,
}

impl GuestSpec {
    /// The lab's standard guest number `n` (0-based): 2 vCPUs, 512 MiB, 1 GiB disk,
    /// `10.201.0.(10+n)` on the LAN.
    pub fn standard(name: &str, n: u8) -> GuestSpec {
        GuestSpec {
            name: name.to_string(),
            vcpus: 2,
            memory_mib: 512,
            disk_gib: 1,
            ip: Ipv4Addr::new(10, 201, 0, 10 + n),
            mac: format!("52:54:00:f7:00:{:02x}", 0x10 + n),
        }
    }

    /// libvirt domain XML for this guest on a host.
    pub fn domain_xml(
        &self,
        art: &Artifacts,
        qemu: &QemuChoice,
        accel: &AccelChoice,
        disk: &std::path::Path,
        serial: &std::path::Path,
    ) -> String {
        let cpu = match accel.accel {
            Accel::Kvm => "<cpu mode='host-passthrough'/>".to_string(),
            Accel::Tcg => {
                "<cpu mode='custom' match='exact'><model fallback='allow'>qemu64</model></cpu>"
                    .to_string()
            }
        };
        format!(
            r#"<domain type='{dtype}'>
  <name>{name}</name>
  <memory unit='MiB'>{mem}</memory>
  <vcpu placement='static'>{vcpus}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>console=ttyS0 quiet panic=-1 ftvirt.ip={ip}/24 ftvirt.port={port}</cmdline>
  </os>
  <features><acpi/><apic/></features>
  {cpu}
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>{emulator}</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='{disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='bridge'>
      <source bridge='br0'/>
      <mac address='{mac}'/>
      <model type='virtio'/>
    </interface>
    <serial type='file'>
      <source path='{serial}'/>
      <target port='0'/>
    </serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
"#,
            dtype = accel.accel.domain_type(),
            name = self.name,
            mem = self.memory_mib,
            vcpus = self.vcpus,
            kernel = art.guest_kernel.display(),
            initrd = art.guest_initrd.display(),
            ip = self.ip,
            port = SERVICE_PORT,
            emulator = qemu.path.display(),
            disk = disk.display(),
            mac = self.mac,
            serial = serial.display(),
        )
    }
}

/// A guest booted by the lab.
#[derive(Debug, Clone)]
pub struct Guest {
    pub name: String,
    pub host: String,
    pub ip: Ipv4Addr,
    pub port: u16,
    pub vcpus: u32,
    pub disk: PathBuf,
    pub serial: PathBuf,
    /// From `virsh start` to the service's READY line.
    pub boot_time: Duration,
}

impl Guest {
    /// The serial console so far.
    pub fn console(&self) -> String {
        std::fs::read_to_string(&self.serial).unwrap_or_default()
    }
}

/// Create the disk, define and start the domain on `host`, wait for READY.
pub fn boot(
    host: &Host,
    spec: &GuestSpec,
    art: &Artifacts,
    qemu: &QemuChoice,
    accel: &AccelChoice,
    timeout: Duration,
) -> Result<Guest> {
    let disk = host.images().join(format!("{}.qcow2", spec.name));
    let serial = host.images().join(format!("{}.serial.log", spec.name));
    let xml_path = host.images().join(format!("{}.xml", spec.name));
    cmd::run(
        "qemu-img",
        [
            "create",
            "-q",
            "-f",
            "qcow2",
            &disk.to_string_lossy(),
            &format!("{}G", spec.disk_gib),
        ],
    )?;
    std::fs::write(&xml_path, spec.domain_xml(art, qemu, accel, &disk, &serial))
        .map_err(|e| LabError::io("writing", &xml_path, e))?;
    host.virsh(&["define", &xml_path.to_string_lossy()])?;
    let _ = std::fs::remove_file(&serial);
    let t0 = Instant::now();
    host.virsh(&["start", &spec.name])?;
    let qemu_log = host
        .log_dir()
        .join("qemu")
        .join(format!("{}.log", spec.name));
    wait_until(
        &format!(
            "guest {} on host {} to print {READY:?}",
            spec.name, host.name
        ),
        timeout,
        Duration::from_millis(50),
        || {
            let log = std::fs::read_to_string(&serial).unwrap_or_default();
            if log.contains(READY) {
                return Look::Ready(());
            }
            let state = host.virsh(&["domstate", &spec.name]).unwrap_or_default();
            if !state.trim().starts_with("running") {
                let ql = std::fs::read_to_string(&qemu_log).unwrap_or_default();
                let tail: Vec<&str> = ql.lines().rev().take(5).collect();
                return Look::Seen(format!(
                    "domain is {:?}; QEMU log ends: {:?}",
                    state.trim(),
                    tail
                ));
            }
            let last = log
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("(no console output yet)");
            Look::Seen(format!("console ends with {:?}", last.trim()))
        },
    )?;
    host.save_caps();
    Ok(Guest {
        name: spec.name.clone(),
        host: host.name.clone(),
        ip: spec.ip,
        port: SERVICE_PORT,
        vcpus: spec.vcpus,
        disk,
        serial,
        boot_time: t0.elapsed(),
    })
}
