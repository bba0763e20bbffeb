use super::*;

const LIVE: &str = include_str!("../testdata/lab-guest-live.xml");

#[test]
fn reads_the_live_xml_of_a_lab_guest() {
    let l = DomainLayout::parse(LIVE).unwrap();
    assert_eq!(l.name, "ftguest");
    assert_eq!(l.virt_type, "qemu");
    assert_eq!(l.vcpus, 2);
    assert_eq!(l.memory_kib, 512 * 1024);
    assert_eq!(l.machine, "pc-i440fx-7.2");
    assert!(l.emulator.ends_with("qemu-system-x86_64"));
    assert_eq!(l.disks.len(), 1);
    let d = &l.disks[0];
    assert_eq!(
        (d.target.as_str(), d.bus.as_str(), d.format.as_str()),
        ("vda", "virtio", "qcow2")
    );
    assert_eq!(d.alias.as_deref(), Some("virtio-disk0"));
    assert_eq!(
        d.pci,
        Some(PciAddr {
            domain: 0,
            bus: 0,
            slot: 3,
            function: 0
        })
    );
    let n = &l.nics[0];
    assert_eq!(
        (n.kind.as_str(), n.mac.as_str(), n.model.as_str()),
        ("bridge", "52:54:00:f7:00:10", "virtio")
    );
    assert_eq!(n.source.as_deref(), Some("br0"));
    assert_eq!(n.netdev_id().as_deref(), Some("hostnet0"));
    assert_eq!(n.pci.as_ref().map(|p| p.slot), Some(2));
    assert_eq!(n.host_dev.as_deref(), Some("vnet0"));
    l.check_replicable(LIVE).unwrap();
}

fn with_device(extra: &str) -> String {
    LIVE.replace(
        "    <memballoon model='none'/>",
        &format!("{extra}\n    <memballoon model='none'/>"),
    )
}

fn refusal(xml: &str) -> String {
    let l = DomainLayout::parse(xml).unwrap();
    l.check_replicable(xml).unwrap_err().to_string()
}

#[test]
fn refuses_host_passthrough_naming_the_device() {
    let xml = with_device(
        "<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x03' slot='0x00' function='0x1'/></source></hostdev>",
    );
    let e = refusal(&xml);
    assert!(e.starts_with("host device 0000:03:00.1: "), "{e}");
    assert!(e.contains("detach it"), "{e}");
}

#[test]
fn refuses_a_second_disk_and_a_second_nic() {
    let disk = "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/x.qcow2'/><target dev='vdb' bus='virtio'/></disk>";
    assert_eq!(
        refusal(&with_device(disk)),
        "disk vdb: only one disk per domain is replicated so far; detach the others"
    );
    let nic = "<interface type='bridge'><mac address='52:54:00:00:00:99'/><source bridge='br0'/><model type='virtio'/></interface>";
    let e = refusal(&with_device(nic));
    assert!(
        e.starts_with("interface 52:54:00:00:00:99: only one network interface"),
        "{e}"
    );
}

#[test]
fn refuses_formats_buses_and_models_it_cannot_wrap() {
    let e = refusal(&LIVE.replace("type='qcow2' cache", "type='vmdk' cache"));
    assert!(
        e.starts_with("disk vda (format vmdk): ") && e.contains("qemu-img convert"),
        "{e}"
    );
    let e = refusal(&LIVE.replace("bus='virtio'/>", "bus='sata'/>"));
    assert!(e.starts_with("disk vda (bus sata): "), "{e}");
    let e = refusal(&LIVE.replace("<model type='virtio'/>", "<model type='e1000'/>"));
    assert!(
        e.starts_with("interface 52:54:00:f7:00:10 (model e1000): "),
        "{e}"
    );
    let cd = "<disk type='file' device='cdrom'><source file='/iso/x.iso'/><target dev='sda' bus='sata'/></disk>";
    let e = refusal(&with_device(cd));
    assert!(e.starts_with("cdrom sda: ") && e.contains("eject"), "{e}");
}

#[test]
fn bad_xml_is_reported_not_panicked_on() {
    assert!(DomainLayout::parse("<domain")
        .unwrap_err()
        .to_string()
        .starts_with("domain XML: "));
    assert_eq!(
        DomainLayout::parse("<network/>").unwrap_err().to_string(),
        "domain XML: root element is <network>, not <domain>"
    );
    let e =
        DomainLayout::parse(&LIVE.replace("<vcpu placement='static'>2</vcpu>", "<vcpu>two</vcpu>"))
            .unwrap_err();
    assert_eq!(e.to_string(), "domain XML: <vcpu> is not a number");
}

#[test]
fn a_memory_size_that_does_not_fit_is_refused_not_wrapped() {
    let at = |v: &str, unit: &str| {
        let x = LIVE.replace(
            "<memory unit='KiB'>524288</memory>",
            &format!("<memory unit='{unit}'>{v}</memory>"),
        );
        DomainLayout::parse(&x).map(|l| l.memory_kib)
    };
    assert_eq!(at("2", "GiB"), Ok(2 << 20));
    assert_eq!(at("1048576", "bytes"), Ok(1024));
    // 2^54 GiB in KiB is 2^74: it would wrap to 0 in u64.
    let e = at("18014398509481984", "GiB").unwrap_err().to_string();
    assert!(e.contains("too large"), "{e}");
}
