use super::*;
use crate::colo::layout::DomainLayout;

const LIVE: &str = include_str!("../testdata/lab-guest-live.xml");

fn dirs() -> Vec<PathBuf> {
    vec!["/var/cache/ftvirt".into()]
}

fn build_live(xml: &str) -> Result<Built, LayoutError> {
    let d = dirs();
    let local = LocalFiles {
        trusted_dirs: &d,
        serial_log: Path::new("/b/serial.log"),
    };
    secondary(xml, "ftguest", &local)
}

fn err(xml: &str) -> String {
    build_live(xml).unwrap_err().to_string()
}

#[test]
fn the_lab_guest_keeps_its_hardware() {
    let b = build_live(LIVE).unwrap();
    let l = DomainLayout::parse(&b.xml).unwrap();
    let want = DomainLayout::parse(LIVE).unwrap();
    assert_eq!(
        (l.name, l.uuid, l.vcpus, l.memory_kib),
        (want.name, want.uuid, want.vcpus, want.memory_kib)
    );
    assert_eq!((l.machine, l.emulator), (want.machine, want.emulator));
    assert_eq!(l.nics[0].mac, want.nics[0].mac);
    assert_eq!(l.nics[0].pci, want.nics[0].pci);
    assert_eq!(l.nics[0].source.as_deref(), Some("br0"));
    assert!(l.disks.is_empty(), "the replicated disk is ftd's own");
    for kept in [
        "<kernel>/var/cache/ftvirt/guest/1ae1abf523a84f39/vmlinuz</kernel>",
        "<cmdline>console=ttyS0 quiet panic=-1 ftvirt.ip=10.201.0.10/24 ftvirt.port=7000</cmdline>",
        "<controller type='usb' index='0' model='none'/>",
        "<feature policy='require' name='lahf_lm'/>",
        "<serial type='file'>",
        "<source path='/b/serial.log'/>",
        "<audio id='1' type='none'/>",
        "<memballoon model='none'/>",
    ] {
        assert!(b.xml.contains(kept), "{kept} missing:\n{}", b.xml);
    }
    for gone in [
        "<alias",
        "<seclabel",
        "vnet0",
        "id='1'>",
        "/var/tmp/ftvirt-lab",
    ] {
        assert!(!b.xml.contains(gone), "{gone} kept:\n{}", b.xml);
    }
    for d in [
        "<domain id>",
        "<domain/seclabel>",
        "<domain/devices/interface/target>",
    ] {
        assert!(
            b.dropped.iter().any(|x| x == d),
            "{d} not reported: {:?}",
            b.dropped
        );
    }
    roxmltree::Document::parse(&b.xml).unwrap();
}

#[test]
fn the_peers_host_resources_are_refused() {
    let dev = |d: &str| LIVE.replace("<memballoon model='none'/>", d);
    for (xml, why) in [
        (dev("<hostdev mode='subsystem' type='pci'/>"), "device <hostdev>"),
        (dev("<filesystem type='mount'><source dir='/'/><target dir='r'/></filesystem>"), "device <filesystem>"),
        (dev("<tpm model='tpm-tis'><backend type='passthrough'/></tpm>"), "device <tpm>"),
        (dev("<rng model='virtio'><backend model='egd' type='tcp'/></rng>"), "rng backend"),
        (dev("<rng model='virtio'><backend model='random'>/etc/shadow</backend></rng>"), "rng backend"),
        (dev("<channel type='tcp'><source mode='connect' host='x' service='1'/><target type='guestfwd'/></channel>"), "virtio channels"),
        (dev("<disk type='file' device='cdrom'><source file='/etc/shadow'/><target dev='hdc' bus='ide'/></disk>"), "media"),
        (LIVE.replace("<disk type='file' device='disk'>", "<disk type='block' device='lun'>"), "LUN"),
        (LIVE.replace("<interface type='bridge'>", "<interface type='hostdev'>"), "interface of type \"hostdev\""),
        (LIVE.replace("/var/cache/ftvirt/guest/1ae1abf523a84f39/initrd.img", "/etc/shadow"), "initrd \"/etc/shadow\""),
        (LIVE.replace("/var/cache/ftvirt/guest/1ae1abf523a84f39/vmlinuz", "/var/cache/ftvirt/../../etc/shadow"), "plain path"),
        (LIVE.replace("/var/cache/ftvirt/qemu/1_7.2+dfsg-7+deb12u18-950f82366fd8/qemu-system-x86_64", "/tmp/qemu-system-x86_64"), "emulator"),
        (LIVE.replace("qemu-system-x86_64</emulator>", "sh</emulator>"), "qemu-system-*"),
        (LIVE.replace("<name>ftguest</name>", "<name>other</name>"), "names domain \"other\""),
        (LIVE.replace("ftvirt.port=7000", "ftvirt.port=7000\u{9b}2J"), "control character"),
        (LIVE.replace("ftvirt.port=7000", &"x".repeat(MAX_VALUE + 1)), "over 4096 bytes"),
    ] {
        let e = err(&xml);
        assert!(e.contains(why), "want {why:?}, got {e}");
    }
}

#[test]
fn what_reaches_the_peers_host_is_left_out_or_made_local() {
    let xml = LIVE.replace(
        "<memballoon model='none'/>",
        "<memballoon model='none'/>
    <serial type='tcp'><source mode='bind' host='0.0.0.0' service='4444'/><target port='1'/><log file='/etc/x'/></serial>
    <channel type='unix'><source mode='bind' path='/etc/cron.d/x'/><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <graphics type='vnc' port='5900' listen='0.0.0.0' passwd='x'><listen type='address' address='0.0.0.0'/></graphics>
    <qemu:commandline xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'><qemu:arg value='-boom'/></qemu:commandline>",
    )
    .replace("<interface type='bridge'>", "<interface type='bridge'><script path='/bin/evil'/><rom bar='on' file='/etc/shadow'/>")
    .replace("<memory unit='KiB'>", "<memoryBacking><source type='file'/></memoryBacking><vcpu cpuset='0-1'>2</vcpu><memory unit='KiB'>")
    .replace("<vcpu placement='static'>2</vcpu>", "")
    .replace("</os>", "<nvram>/etc/passwd</nvram></os>");
    let b = build_live(&xml).unwrap();
    for gone in [
        "4444",
        "0.0.0.0",
        "/etc/",
        "/bin/evil",
        "passwd",
        "-boom",
        "commandline",
        "memoryBacking",
        "cpuset",
        "nvram",
    ] {
        assert!(!b.xml.contains(gone), "{gone} kept:\n{}", b.xml);
    }
    for made in [
        "<serial type='file'>\n      <source path='/b/serial.log'/>\n      <target port='1'/>",
        "<channel type='unix'>\n      <source mode='bind'/>\n      <target type='virtio' name='org.qemu.guest_agent.0'/>",
        "<graphics type='vnc' autoport='yes' listen='127.0.0.1'>",
        "<rom bar='on'/>",
        "<vcpu>2</vcpu>",
    ] {
        assert!(b.xml.contains(made), "{made} missing:\n{}", b.xml);
    }
}

#[test]
fn firmware_chosen_by_libvirt_is_chosen_here() {
    let xml = LIVE.replace(
        "<os>",
        "<os firmware='efi'><loader readonly='yes' type='pflash'>/home/x/OVMF.fd</loader>",
    );
    let b = build_live(&xml).unwrap();
    assert!(
        b.xml.contains("<os firmware='efi'>") && !b.xml.contains("OVMF"),
        "{}",
        b.xml
    );
    let xml = LIVE.replace(
        "<os>",
        "<os><loader readonly='yes' type='rom'>/var/cache/ftvirt/bios.bin</loader>",
    );
    let b = build_live(&xml).unwrap();
    assert!(
        b.xml
            .contains("<loader readonly='yes' type='rom'>/var/cache/ftvirt/bios.bin</loader>"),
        "{}",
        b.xml
    );
}

#[test]
fn a_deep_or_huge_definition_is_an_error() {
    let deep = format!(
        "<domain><name>ftguest</name>{}{}</domain>",
        "<a>".repeat(100_000),
        "</a>".repeat(100_000)
    );
    assert!(err(&deep).contains("limit"), "{}", err(&deep));
    let nested = format!(
        "<domain><name>ftguest</name>{}{}</domain>",
        "<a>".repeat(70),
        "</a>".repeat(70)
    );
    assert!(err(&nested).contains("deeper than 64"), "{}", err(&nested));
}
