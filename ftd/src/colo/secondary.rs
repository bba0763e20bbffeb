//! The secondary's domain XML, generated from the primary's live XML.
//!
//! COLO's incoming side must have exactly the primary's device layout (machine
//! type, PCI addresses, ACPI, no extra USB controller, same ROMs, same CPU model),
//! or the incoming state is refused ("Unknown ramblock", "PCI slot not
//! available": colo-recipe pitfalls 9-10). So the secondary is built from the
//! primary's live XML by the allow-list of [`super::definition`] (what fixes the
//! hardware is kept; paths, host devices, sockets, `<metadata>`, the primary's
//! own `<qemu:commandline>` and every runtime part are not), with:
//! - the replicated `<disk>` left out and rebuilt in `<qemu:commandline>` as the
//!   replication chain `parent0 <- hidden <- active` under a quorum `colo-disk0`, with
//!   a `virtio-blk-pci` device of the same id, PCI address, bootindex and write-cache
//!   (checked by [`super::validate`]);
//! - the network proxy's secondary half: chardevs `red0`/`red1` connecting to the
//!   primary (reconnecting), `filter-redirector` x2 and `filter-rewriter` on the NIC's
//!   netdev, all with `vnet_hdr_support=on` (libvirt opens taps with a virtio-net
//!   header);
//! - with COLO over TLS, the TLS objects (`super::tls`: server and client creds,
//!   authz pinned to the primary's name) first, and `tls-creds` on `red0`/`red1`;
//! - `-incoming defer`: the domain starts paused, waiting for the primary's
//!   state; ftd then listens with `migrate-incoming` on the replication address
//!   only, with TLS set first (`super::plan::secondary_export`);
//! - serial/console onto a log file of this host.
//!
//! Paths in option strings have their commas doubled ([`qemu_value`]): a domain
//! name may contain one.

use super::definition::{self, Built, LocalFiles};
use super::layout::{DomainLayout, LayoutError};
use super::xml::escape;
use std::fmt::Write;
use std::path::{Path, PathBuf};

pub const QEMU_NS: &str = "http://libvirt.org/schemas/domain/qemu/1.0";

/// The primary's block device as QEMU sees it (from `qom-get` on the primary).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DiskDevice {
    /// qdev id (`virtio-disk0`).
    pub id: String,
    /// `bus=pci.0,addr=0x3`-style location.
    pub bus: String,
    pub addr: String,
    pub bootindex: Option<i64>,
    /// `on`/`off`.
    pub write_cache: Option<String>,
}

/// Where the secondary finds the primary and keeps its disks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecondaryParams {
    /// The primary's address on the replication network.
    pub primary_addr: String,
    pub mirror_port: u16,
    pub compare_port: u16,
    /// The secondary's base image (same virtual size as the primary's disk; filled by
    /// the primary's drive-mirror), and the active/hidden overlays.
    pub parent: PathBuf,
    pub active: PathBuf,
    pub hidden: PathBuf,
    /// Where a file-backed serial console goes on this host.
    pub serial_log: PathBuf,
    /// COLO's channels over mutual TLS with the primary's host (`None`: clear).
    pub tls: Option<super::tls::ColoTls>,
    /// Where the emulator, kernel, initrd and firmware the primary names may be
    /// on this host (`colo.trusted-dirs`).
    pub trusted_dirs: Vec<PathBuf>,
}

/// Generate the secondary's domain XML for domain `name`, with what of the
/// primary's was left out.
pub fn secondary_xml(
    primary_live: &str,
    name: &str,
    disk: &DiskDevice,
    p: &SecondaryParams,
) -> Result<Built, LayoutError> {
    let layout = DomainLayout::parse(primary_live)?;
    layout.check_replicable(primary_live)?;
    let nic = &layout.nics[0];
    let netdev = nic.netdev_id().ok_or_else(|| {
        LayoutError::Xml(
            "the interface has no <alias>: pass the LIVE XML of the running primary".into(),
        )
    })?;
    super::validate::qemu_id("interface alias", &netdev)
        .map_err(|e| LayoutError::Xml(e.to_string()))?;
    let local = LocalFiles {
        trusted_dirs: &p.trusted_dirs,
        serial_log: &p.serial_log,
    };
    let mut built = definition::secondary(primary_live, name, &local)?;
    let out = &mut built.xml;
    *out = out.replacen("<domain", &format!("<domain xmlns:qemu='{QEMU_NS}'"), 1);
    let args = commandline(&netdev, disk, p);
    let mut cl = String::from("  <qemu:commandline>\n");
    for a in args {
        let _ = writeln!(cl, "    <qemu:arg value='{}'/>", escape(&a));
    }
    cl.push_str("  </qemu:commandline>\n");
    let end = out
        .rfind("</domain>")
        .ok_or_else(|| LayoutError::Xml("no </domain>".into()))?;
    out.insert_str(end, &cl);
    Ok(built)
}

/// A value for a QEMU option string: commas doubled (QEMU's escape), so a path
/// stays one value.
pub fn qemu_value(p: &Path) -> String {
    p.display().to_string().replace(',', ",,")
}

/// The `<qemu:commandline>` arguments of the secondary.
pub fn commandline(netdev: &str, disk: &DiskDevice, p: &SecondaryParams) -> Vec<String> {
    let mut v = Vec::new();
    let mut push = |flag: &str, val: String| {
        v.push(flag.to_string());
        v.push(val);
    };
    let pa = &p.primary_addr;
    let ids = super::tls::Ids::secondary();
    let mut tls = String::new();
    if let Some(t) = &p.tls {
        for pair in t.command_line(&ids).chunks(2) {
            push(&pair[0], pair[1].clone());
        }
        tls = format!(",tls-creds={}", ids.client);
    }
    push(
        "-chardev",
        format!(
            "socket,id=red0,host={pa},port={},reconnect=1{tls}",
            p.mirror_port
        ),
    );
    push(
        "-chardev",
        format!(
            "socket,id=red1,host={pa},port={},reconnect=1{tls}",
            p.compare_port
        ),
    );
    push(
        "-object",
        format!("filter-redirector,id=f1,netdev={netdev},queue=tx,indev=red0,vnet_hdr_support=on"),
    );
    push(
        "-object",
        format!("filter-redirector,id=f2,netdev={netdev},queue=rx,outdev=red1,vnet_hdr_support=on"),
    );
    push(
        "-object",
        format!("filter-rewriter,id=rew0,netdev={netdev},queue=all,vnet_hdr_support=on"),
    );
    push(
        "-drive",
        format!(
            "if=none,id=parent0,driver=qcow2,file.filename={},cache.direct=on",
            qemu_value(&p.parent)
        ),
    );
    push(
        "-drive",
        format!(
            "if=none,id=childs0,driver=replication,mode=secondary,top-id=colo-disk0,file.driver=qcow2,file.file.filename={},file.backing.driver=qcow2,file.backing.file.filename={},file.backing.backing=parent0",
            qemu_value(&p.active),
            qemu_value(&p.hidden)
        ),
    );
    push(
        "-drive",
        "if=none,id=colo-disk0,driver=quorum,read-pattern=fifo,vote-threshold=1,children.0=childs0"
            .into(),
    );
    let mut dev = format!(
        "virtio-blk-pci,id={},drive=colo-disk0,bus={},addr={}",
        disk.id, disk.bus, disk.addr
    );
    if let Some(b) = disk.bootindex {
        let _ = write!(dev, ",bootindex={b}");
    }
    if let Some(w) = &disk.write_cache {
        let _ = write!(dev, ",write-cache={w}");
    }
    push("-device", dev);
    push("-incoming", "defer".into());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIVE: &str = include_str!("testdata/lab-guest-live.xml");

    fn params() -> SecondaryParams {
        SecondaryParams {
            primary_addr: "10.200.0.11".into(),
            mirror_port: 9003,
            compare_port: 9004,
            parent: "/b/parent0.qcow2".into(),
            active: "/b/active.qcow2".into(),
            hidden: "/b/hidden.qcow2".into(),
            serial_log: "/b/serial.log".into(),
            tls: Some(crate::colo::tls::ColoTls {
                dir: "/b/qemu-tls".into(),
                peer: "hosta".into(),
            }),
            trusted_dirs: vec!["/var/cache/ftvirt".into()],
        }
    }

    fn disk() -> DiskDevice {
        DiskDevice {
            id: "virtio-disk0".into(),
            bus: "pci.0".into(),
            addr: "0x3".into(),
            bootindex: Some(1),
            write_cache: Some("on".into()),
        }
    }

    #[test]
    fn secondary_keeps_the_layout_and_adds_the_colo_halves() {
        let x = secondary_xml(LIVE, "ftguest", &disk(), &params())
            .unwrap()
            .xml;
        // It is a valid domain, with the same layout but no disk of libvirt's own.
        let l = DomainLayout::parse(&x).unwrap();
        assert_eq!(
            (l.name.as_str(), l.vcpus, l.memory_kib),
            ("ftguest", 2, 512 * 1024)
        );
        assert_eq!(l.machine, "pc-i440fx-7.2");
        assert!(!x.contains("<disk"), "libvirt's own disk element must go");
        assert_eq!(
            l.disks[0].alias.as_deref(),
            Some("virtio-disk0"),
            "the disk is the commandline one"
        );
        assert_eq!(l.nics[0].mac, "52:54:00:f7:00:10");
        assert_eq!(l.nics[0].pci.as_ref().unwrap().slot, 2);
        assert!(
            !x.lines().next().unwrap().contains(" id="),
            "the runtime domain id must go"
        );
        for gone in [
            "<alias",
            "<backingStore",
            "<seclabel",
            "vnet0",
            "ftguest.serial.log",
        ] {
            assert!(!x.contains(gone), "{gone} should be gone:\n{x}");
        }
        for kept in [
            "<acpi/>",
            "<controller type='usb' index='0' model='none'/>",
            "check='full'",
            "<feature policy='require' name='lahf_lm'/>",
            "/b/serial.log",
        ] {
            assert!(x.contains(kept), "{kept} missing:\n{x}");
        }
        let args: Vec<String> = commandline("hostnet0", &disk(), &params());
        assert_eq!(args.len(), 26);
        assert_eq!(
            args[1],
            "tls-creds-x509,id=ftvirt-tls-server,dir=/b/qemu-tls,endpoint=server,verify-peer=on"
        );
        assert_eq!(args[5], "authz-simple,id=ftvirt-authz,identity=CN=hosta");
        assert_eq!(
            args[7],
            "socket,id=red0,host=10.200.0.11,port=9003,reconnect=1,tls-creds=ftvirt-tls-client"
        );
        assert_eq!(
            args[9],
            "socket,id=red1,host=10.200.0.11,port=9004,reconnect=1,tls-creds=ftvirt-tls-client"
        );
        assert_eq!(
            args[17],
            "if=none,id=parent0,driver=qcow2,file.filename=/b/parent0.qcow2,cache.direct=on"
        );
        assert_eq!(args[23], "virtio-blk-pci,id=virtio-disk0,drive=colo-disk0,bus=pci.0,addr=0x3,bootindex=1,write-cache=on");
        assert_eq!(
            args[24..],
            ["-incoming", "defer"],
            "no listener before ftd sets TLS"
        );
        // In clear only when TLS is off.
        let plain = commandline(
            "hostnet0",
            &disk(),
            &SecondaryParams {
                tls: None,
                ..params()
            },
        );
        assert_eq!(plain.len(), 20);
        assert!(!plain.iter().any(|a| a.contains("tls")), "{plain:?}");
        assert!(args
            .iter()
            .filter(|a| a.contains("netdev=hostnet0"))
            .all(|a| a.ends_with("vnet_hdr_support=on")));
        for a in &args {
            assert!(
                x.contains(&format!("<qemu:arg value='{}'/>", escape(a))),
                "{a} missing"
            );
        }
        // Well-formed, with the qemu namespace declared once.
        let doc = roxmltree::Document::parse(&x).unwrap();
        assert_eq!(
            doc.root_element()
                .children()
                .filter(|c| c.tag_name().namespace() == Some(QEMU_NS))
                .count(),
            1
        );
    }

    #[test]
    fn needs_the_live_xml() {
        let inactive = LIVE.replace("<alias name='net0'/>", "");
        let e = secondary_xml(&inactive, "ftguest", &disk(), &params()).unwrap_err();
        assert!(e.to_string().contains("LIVE XML"), "{e}");
    }

    #[test]
    fn refuses_what_cannot_be_replicated_before_generating_anything() {
        let x = LIVE.replace("<model type='virtio'/>", "<model type='e1000'/>");
        assert!(secondary_xml(&x, "ftguest", &disk(), &params())
            .unwrap_err()
            .to_string()
            .contains("model e1000"));
    }

    #[test]
    fn a_takeover_survivor_can_be_protected_again() {
        // The survivor's live XML is the secondary's: disk in <qemu:commandline>.
        let first = secondary_xml(LIVE, "ftguest", &disk(), &params())
            .unwrap()
            .xml;
        let l = DomainLayout::parse(&first).unwrap();
        assert_eq!(l.disks.len(), 1, "the commandline disk is recognised");
        let d = &l.disks[0];
        assert_eq!(d.alias.as_deref(), Some("virtio-disk0"));
        assert_eq!(d.source, PathBuf::from("/b/parent0.qcow2"));
        assert_eq!(
            d.pci,
            Some(crate::colo::layout::PciAddr {
                domain: 0,
                bus: 0,
                slot: 3,
                function: 0
            })
        );
        l.check_replicable(&first).unwrap();
        // Its own secondary gets fresh arguments only, not the old ones.
        let again = secondary_xml(
            &first.replace(
                "<interface type='bridge'>",
                "<interface type='bridge'>\n      <alias name='net0'/>",
            ),
            "ftguest",
            &disk(),
            &params(),
        )
        .unwrap()
        .xml;
        assert_eq!(again.matches("-incoming").count(), 1, "{again}");
        assert_eq!(again.matches("<qemu:commandline>").count(), 1);
    }

    #[test]
    fn metadata_does_not_travel_to_the_secondary() {
        let x = LIVE.replace(
            "<memory unit='KiB'>",
            "<metadata><ft:protection xmlns:ft='https://ftvirt.org/xmlns/ftd/1' peer='b'/></metadata>\n  <memory unit='KiB'>",
        );
        let s = secondary_xml(&x, "ftguest", &disk(), &params())
            .unwrap()
            .xml;
        assert!(!s.contains("protection") && !s.contains("metadata"), "{s}");
    }
}
