use super::*;
use crate::colo::secondary::DiskDevice;

fn local() -> Local {
    Local {
        peer_addr: Some("10.200.0.11".parse().unwrap()),
        port_bases: Ports::DEFAULT,
    }
}

fn good() -> SecondarySpec {
    SecondarySpec {
        primary_live_xml: String::new(),
        primary_inactive_xml: String::new(),
        disk: DiskDevice {
            id: "virtio-disk0".into(),
            bus: "pci.0".into(),
            addr: "0x3".into(),
            bootindex: Some(1),
            write_cache: Some("on".into()),
        },
        disk_size: 1 << 30,
        ports: Ports::slot(2),
        primary_addr: "10.200.0.11".into(),
    }
}

#[test]
fn names_libvirt_allows_pass() {
    for n in [
        "ftguest",
        "web-1",
        "a.b",
        "db_2",
        "名前",
        "with space",
        &"x".repeat(MAX_NAME),
    ] {
        domain_name(n).unwrap_or_else(|e| panic!("{n}: {e}"));
    }
}

#[test]
fn names_that_leave_a_directory_or_a_line_are_refused() {
    for (n, why) in [
        ("", "empty"),
        ("../../x", "'/'"),
        ("/var/lib/ftvirt/overlays/web", "'/'"),
        ("..", "'..'"),
        (".", "'..'"),
        ("a..b", "'..'"),
        ("a\nb", "control"),
        ("a\0b", "control"),
        ("a\u{1b}[2Jb", "control"),
        (&"x".repeat(MAX_NAME + 1), "longer than 200"),
    ] {
        let e = domain_name(n).unwrap_err().to_string();
        assert!(e.contains(why), "{n:?}: {e}");
        assert!(!e.contains('\n') && !e.contains('\0'), "{e:?}");
    }
}

#[test]
fn a_sound_spec_passes() {
    spec(&good(), "ftguest", &local()).unwrap();
    let mut s = good();
    s.disk.addr = "0x1f.0x7".into();
    s.disk.bus = "pci.255".into();
    s.disk.bootindex = None;
    s.disk.write_cache = None;
    s.ports = Ports::slot(Ports::SLOTS - 1);
    spec(&s, "ftguest", &local()).unwrap();
}

#[test]
fn the_primary_address_is_a_plain_ip_and_the_configured_one() {
    for (a, why) in [
        ("10.0.0.1,server=on", "expected an IP address"),
        ("10.200.0.11\n", "expected an IP address"),
        ("hosta", "expected an IP address"),
        ("10.200.0.11:9003", "expected an IP address"),
        ("10.200.0.12", "configuration is 10.200.0.11"),
    ] {
        let mut s = good();
        s.primary_addr = a.into();
        let e = spec(&s, "g", &local()).unwrap_err();
        assert_eq!(e.field, "primary_addr");
        assert!(e.why.contains(why), "{a:?}: {e}");
    }
    // Without a configured peer address, any IP address.
    let mut s = good();
    s.primary_addr = "fd00::1".into();
    let l = Local {
        peer_addr: None,
        ..local()
    };
    spec(&s, "g", &l).unwrap();
}

#[test]
fn disk_fields_cannot_carry_an_option() {
    type Set = fn(&mut DiskDevice, &str);
    let cases: [(&str, Set, &str); 12] = [
        ("disk.addr", |d, v| d.addr = v.into(), "0x3,drive=x"),
        ("disk.addr", |d, v| d.addr = v.into(), "0x20"),
        ("disk.addr", |d, v| d.addr = v.into(), "0x3.0x8"),
        ("disk.addr", |d, v| d.addr = v.into(), "3"),
        ("disk.addr", |d, v| d.addr = v.into(), "0x3\n"),
        ("disk.bus", |d, v| d.bus = v.into(), "pci.0,addr=0x9"),
        ("disk.bus", |d, v| d.bus = v.into(), "pci.256"),
        ("disk.bus", |d, v| d.bus = v.into(), "usb.0"),
        ("disk.id", |d, v| d.id = v.into(), "d0,drive=parent0"),
        ("disk.id", |d, v| d.id = v.into(), "0disk"),
        ("disk.id", |d, v| d.id = v.into(), &"d".repeat(65)),
        (
            "disk.write_cache",
            |d, v| d.write_cache = Some(v.into()),
            "on,x=y",
        ),
    ];
    for (field, set, v) in cases {
        let mut s = good();
        set(&mut s.disk, v);
        let e = spec(&s, "g", &local()).unwrap_err();
        assert_eq!(e.field, field, "{v:?}: {e}");
    }
    let mut s = good();
    s.disk.bootindex = Some(-5);
    assert_eq!(spec(&s, "g", &local()).unwrap_err().field, "disk.bootindex");
}

#[test]
fn sizes_and_ports_are_bounded() {
    for size in [0, MAX_DISK_SIZE + 1, u64::MAX] {
        let mut s = good();
        s.disk_size = size;
        assert_eq!(spec(&s, "g", &local()).unwrap_err().field, "disk_size");
    }
    let mut s = good();
    s.ports.nbd = 22;
    let e = spec(&s, "g", &local()).unwrap_err();
    assert!(e.why.contains("same colo.ports"), "{e}");
    let mut s = good();
    s.ports = Ports::DEFAULT.nth(Ports::SLOTS);
    assert_eq!(spec(&s, "g", &local()).unwrap_err().field, "ports");
}

#[test]
fn a_shown_value_is_one_short_escaped_line() {
    let v = format!("a\nb\u{1b}{}", "z".repeat(500));
    let s = shown(&v);
    assert!(
        s.len() < 100 && !s.contains('\n') && !s.contains('\u{1b}'),
        "{s}"
    );
    assert!(s.ends_with("..."));
}
