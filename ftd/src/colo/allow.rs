//! The allow-list of a domain definition built from the peer's: for each element
//! path (`domain/devices/interface/driver`), the attributes kept and whether its
//! text is kept. An element or attribute that is not here is not copied; the
//! elements that need more than copying (disks, serial ports, channels, the
//! emulator, kernel and firmware paths, graphics, the RNG's backend, audio) are
//! [`Special`] and built by `super::definition`.
//!
//! What is here is what fixes the guest's hardware (machine, CPU, memory, every
//! device's model and PCI address: COLO's incoming side must match it exactly)
//! plus the domain's identity. What is left out names something on the peer's
//! host (paths, host devices, sockets, CPU pinning, NUMA tuning, memory backing,
//! security labels) or is ftd's own business (`<metadata>`, `<qemu:commandline>`).

/// Elements that `super::definition` builds itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    /// `<emulator>`: a `qemu-system-*` under a trusted directory.
    Emulator,
    /// `<kernel>`, `<initrd>`, `<loader>`, `<dtb>`: a file under a trusted directory.
    BootFile,
    /// `<disk>`: the replicated disk (rebuilt), or an empty cdrom/floppy.
    Disk,
    /// `<serial>`, `<console>`: onto a log file of this host (or pty/null).
    Serial,
    /// `<channel>`: a virtio port whose host end libvirt places itself.
    Channel,
    /// `<graphics>`: VNC or SPICE on this host's loopback.
    Graphics,
    /// `<rng><backend>`: one of the host's random devices.
    RngBackend,
    /// `<audio>`: no host audio backend.
    Audio,
}

/// What may be copied of the element at `path` (names joined by `/`, from
/// `domain`): its attributes and whether its text goes too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Copy {
        attrs: &'static [&'static str],
        text: bool,
    },
    Special(Special),
}

const fn copy(attrs: &'static [&'static str]) -> Option<Rule> {
    Some(Rule::Copy { attrs, text: false })
}

const fn text(attrs: &'static [&'static str]) -> Option<Rule> {
    Some(Rule::Copy { attrs, text: true })
}

const fn special(s: Special) -> Option<Rule> {
    Some(Rule::Special(s))
}

/// The attributes of `<address>`, wherever it is (PCI, drive, ISA, USB, ...).
const ADDRESS: &[&str] = &[
    "type",
    "domain",
    "bus",
    "slot",
    "function",
    "multifunction",
    "controller",
    "target",
    "unit",
    "port",
    "iobase",
    "irq",
    "reg",
];

/// The rule for the element at `path`, `None`: not copied.
pub fn rule(path: &str) -> Option<Rule> {
    use Special::*;
    if let Some(rest) = path.strip_prefix("domain/devices/") {
        if rest.ends_with("/address") && rest.matches('/').count() == 1 {
            return copy(ADDRESS);
        }
        return device(rest);
    }
    match path {
        "domain" => copy(&["type"]),
        "domain/name" | "domain/uuid" | "domain/genid" | "domain/iothreads" => text(&[]),
        "domain/memory" | "domain/currentMemory" => text(&["unit"]),
        "domain/maxMemory" => text(&["unit", "slots"]),
        "domain/vcpu" => text(&["placement", "current"]),
        "domain/vcpus" => copy(&[]),
        "domain/vcpus/vcpu" => copy(&["id", "enabled", "hotpluggable", "order"]),
        "domain/os" => copy(&["firmware"]),
        "domain/os/type" => text(&["arch", "machine"]),
        "domain/os/boot" => copy(&["dev"]),
        "domain/os/bootmenu" => copy(&["enable", "timeout"]),
        "domain/os/bios" => copy(&["useserial", "rebootTimeout"]),
        "domain/os/smbios" => copy(&["mode"]),
        "domain/os/cmdline" => text(&[]),
        "domain/os/firmware" => copy(&[]),
        "domain/os/firmware/feature" => copy(&["enabled", "name"]),
        "domain/os/kernel" | "domain/os/initrd" | "domain/os/loader" | "domain/os/dtb" => {
            special(BootFile)
        }
        "domain/features" => copy(&[]),
        "domain/features/hyperv" | "domain/features/kvm" => copy(&["mode"]),
        p if p.starts_with("domain/features/hyperv/") || p.starts_with("domain/features/kvm/") => {
            copy(&["state", "retries", "value"])
        }
        p if p.starts_with("domain/features/") && p.matches('/').count() == 2 => {
            copy(&["state", "eoi", "driver", "policy"])
        }
        "domain/cpu" => copy(&["mode", "match", "check", "migratable"]),
        "domain/cpu/model" => text(&["fallback", "vendor_id"]),
        "domain/cpu/vendor" => text(&[]),
        "domain/cpu/topology" => copy(&["sockets", "dies", "clusters", "cores", "threads"]),
        "domain/cpu/feature" => copy(&["policy", "name"]),
        "domain/cpu/cache" => copy(&["level", "mode"]),
        "domain/cpu/maxphysaddr" => copy(&["mode", "bits"]),
        "domain/cpu/numa" => copy(&[]),
        "domain/cpu/numa/cell" => copy(&["id", "cpus", "memory", "unit", "memAccess", "discard"]),
        "domain/clock" => copy(&["offset", "adjustment", "basis"]),
        "domain/clock/timer" => copy(&[
            "name",
            "present",
            "tickpolicy",
            "track",
            "frequency",
            "mode",
        ]),
        "domain/on_poweroff" | "domain/on_reboot" | "domain/on_crash" | "domain/on_lockfailure" => {
            text(&[])
        }
        "domain/pm" => copy(&[]),
        "domain/pm/suspend-to-mem" | "domain/pm/suspend-to-disk" => copy(&["enabled"]),
        "domain/sysinfo" => copy(&["type"]),
        "domain/sysinfo/bios"
        | "domain/sysinfo/system"
        | "domain/sysinfo/baseBoard"
        | "domain/sysinfo/chassis"
        | "domain/sysinfo/oemStrings" => copy(&[]),
        p if p.starts_with("domain/sysinfo/") && p.ends_with("/entry") => text(&["name"]),
        "domain/devices" => copy(&[]),
        _ => None,
    }
}

/// The rule for a device or a part of it (`path` below `domain/devices/`).
fn device(path: &str) -> Option<Rule> {
    use Special::*;
    match path {
        "emulator" => special(Emulator),
        "disk" => special(Disk),
        // An empty cdrom or floppy (`Disk` checks there is no source).
        "disk/driver" => copy(&["name", "type"]),
        "disk/target" => copy(&["dev", "bus", "tray"]),
        "disk/readonly" => copy(&[]),
        "disk/boot" => copy(&["order"]),
        "controller" => copy(&["type", "index", "model", "ports", "vectors"]),
        "controller/model" => copy(&["name"]),
        "controller/target" => copy(&["chassisNr", "chassis", "port", "busNr", "index", "hotplug"]),
        "controller/driver" => copy(&["queues", "cmd_per_lun", "max_sectors", "ioeventfd"]),
        "interface" => copy(&["type"]),
        "interface/mac" => copy(&["address"]),
        "interface/source" => copy(&["bridge", "network"]),
        "interface/model" => copy(&["type"]),
        "interface/driver" => copy(&[
            "name",
            "txmode",
            "ioeventfd",
            "event_idx",
            "queues",
            "rx_queue_size",
            "tx_queue_size",
        ]),
        "interface/driver/host" => {
            copy(&["csum", "gso", "tso4", "tso6", "ecn", "ufo", "mrg_rxbuf"])
        }
        "interface/driver/guest" => copy(&["csum", "tso4", "tso6", "ecn", "ufo"]),
        "interface/mtu" => copy(&["size"]),
        "interface/link" => copy(&["state"]),
        "interface/rom" => copy(&["bar", "enabled"]),
        "interface/boot" => copy(&["order"]),
        "serial" | "console" => special(Serial),
        "serial/target" | "console/target" => copy(&["type", "port"]),
        "serial/target/model" => copy(&["name"]),
        "channel" => special(Channel),
        "channel/target" => copy(&["type", "name"]),
        "input" => copy(&["type", "bus"]),
        "input/model" => copy(&["type"]),
        "graphics" => special(Graphics),
        "video" => copy(&[]),
        "video/model" => copy(&[
            "type", "vram", "heads", "primary", "ram", "vgamem", "vram64",
        ]),
        "video/model/acceleration" => copy(&["accel3d", "accel2d"]),
        "sound" => copy(&["model"]),
        "sound/codec" => copy(&["type"]),
        "sound/audio" => copy(&["id"]),
        "audio" => special(Audio),
        "memballoon" => copy(&["model", "autodeflate", "freePageReporting"]),
        "memballoon/stats" => copy(&["period"]),
        "rng" => copy(&["model"]),
        "rng/backend" => special(RngBackend),
        "rng/rate" => copy(&["bytes", "period"]),
        "watchdog" => copy(&["model", "action"]),
        "panic" => copy(&["model"]),
        "hub" => copy(&["type"]),
        "iommu" => copy(&["model"]),
        "iommu/driver" => copy(&["intremap", "caching_mode", "eim", "iotlb", "aw_bits"]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_names_the_peers_host_is_not_on_the_list() {
        for p in [
            "domain/metadata",
            "domain/seclabel",
            "domain/memoryBacking",
            "domain/cputune",
            "domain/numatune",
            "domain/os/nvram",
            "domain/devices/hostdev",
            "domain/devices/filesystem",
            "domain/devices/tpm",
            "domain/devices/shmem",
            "domain/devices/smartcard",
            "domain/devices/redirdev",
            "domain/devices/interface/script",
            "domain/devices/interface/target",
            "domain/devices/interface/alias",
            "domain/devices/disk/source",
            "domain/devices/serial/log",
            "domain/devices/input/source",
            "domain/sysinfo/system/entry/x",
        ] {
            assert_eq!(rule(p), None, "{p}");
        }
        assert_eq!(
            rule("domain/devices/interface/rom"),
            copy(&["bar", "enabled"]),
            "a ROM file is a path on the peer's host"
        );
        assert_eq!(
            rule("domain/vcpu"),
            text(&["placement", "current"]),
            "no cpuset"
        );
    }

    #[test]
    fn the_lab_guests_hardware_is_on_the_list() {
        for p in [
            "domain/os/type",
            "domain/cpu/feature",
            "domain/features/acpi",
            "domain/devices/controller",
            "domain/devices/controller/address",
            "domain/devices/interface/mac",
            "domain/devices/interface/address",
            "domain/devices/serial/target/model",
            "domain/devices/memballoon",
        ] {
            assert!(matches!(rule(p), Some(Rule::Copy { .. })), "{p}");
        }
        assert_eq!(rule("domain/devices/audio"), special(Special::Audio));
    }
}
