//! The unit parser against the shipped unit and against what it must refuse.

use super::*;

fn shipped() -> Sandbox {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dbus/ftd.service");
    Sandbox::load(&unit, &[]).expect("the shipped unit is read")
}

#[test]
fn the_shipped_unit_is_read_whole() {
    let s = shipped();
    assert!(s.no_new_privileges);
    assert_eq!(s.protect_system, ProtectSystem::Strict);
    assert!(s.private_tmp && s.private_devices && s.protect_home);
    assert!(s
        .syscall_allow
        .as_ref()
        .unwrap()
        .contains(&"@system-service".to_string()));
    assert_eq!(s.state_directories, ["ftvirt"]);
}

/// Review 8.4: fencing (`ip link set`) and socket cutting (`ss -K`) need
/// netlink and CAP_NET_ADMIN; the lab test runs them under the sandbox too.
#[test]
fn the_shipped_unit_allows_fencing_and_socket_cutting() {
    let s = shipped();
    let fam = s.address_families.clone().unwrap();
    assert!(fam.contains(&"AF_NETLINK".to_string()), "{fam:?}");
    let caps = s.capabilities().unwrap();
    assert!(caps.contains(&"CAP_NET_ADMIN".to_string()), "{caps:?}");
}

#[test]
fn drop_ins_add_to_lists_and_an_empty_line_resets() {
    let unit = "[Service]\nReadWritePaths=/a\nCapabilityBoundingSet=CAP_CHOWN\n";
    let s = Sandbox::parse(
        unit,
        &["[Service]\nReadWritePaths=-/b\nCapabilityBoundingSet=CAP_FOWNER\n"],
    )
    .unwrap();
    assert_eq!(
        s.read_write_paths,
        [
            PathEntry {
                path: "/a".into(),
                optional: false
            },
            PathEntry {
                path: "/b".into(),
                optional: true
            }
        ]
    );
    assert_eq!(s.capabilities().unwrap(), ["CAP_CHOWN", "CAP_FOWNER"]);
    let s = Sandbox::parse(unit, &["[Service]\nCapabilityBoundingSet=\n"]).unwrap();
    assert_eq!(s.capabilities(), None);
}

#[test]
fn bind_paths_take_a_destination_or_the_same_path() {
    let s = Sandbox::parse("[Service]\nBindPaths=/x:/y -/z\n", &[]).unwrap();
    assert_eq!(
        s.bind_paths,
        [
            BindEntry {
                source: "/x".into(),
                dest: "/y".into(),
                optional: false
            },
            BindEntry {
                source: "/z".into(),
                dest: "/z".into(),
                optional: true
            }
        ]
    );
    assert!(s.writable().contains(&PathBuf::from("/y")));
}

#[test]
fn private_devices_and_protections_take_capabilities_away() {
    let s = Sandbox::parse(
        "[Service]\nCapabilityBoundingSet=CAP_MKNOD CAP_SYS_TIME CAP_CHOWN\nPrivateDevices=yes\nProtectClock=yes\n",
        &[],
    )
    .unwrap();
    assert_eq!(s.capabilities().unwrap(), ["CAP_CHOWN"]);
}

#[test]
fn what_the_lab_cannot_apply_is_an_error_naming_it() {
    for (unit, says) in [
        (
            "[Service]\nPrivateNetwork=yes\n",
            "PrivateNetwork= is not known",
        ),
        ("[Service]\nSystemCallFilter=~@mount\n", "deny lists"),
        (
            "[Service]\nProtectHome=read-only\n",
            "ProtectHome=read-only",
        ),
        ("[Service]\nReadWritePaths=relative\n", "absolute path"),
        ("[Service]\nReadWritePaths=/a/../etc\n", "absolute path"),
        ("[Service]\nNoNewPrivileges=maybe\n", "expected yes or no"),
        ("[Service]\nSystemCallArchitectures=x86\n", "native only"),
        ("[Service]\nReadWritePaths=/a \\\n", "continued lines"),
    ] {
        let e = Sandbox::parse(unit, &[]).unwrap_err();
        assert!(e.contains(says), "{unit:?}: {e}");
    }
    // Other sections are not the sandbox's.
    assert!(Sandbox::parse("[Unit]\nFoo=bar\n[Install]\nWantedBy=x\n", &[]).is_ok());
}

#[test]
fn mountinfo_lines_give_points_and_flags() {
    let info = "36 35 98:0 /mnt1 /mnt\\040two rw,noatime,nosuid master:1 - ext3 /dev/root rw\n\
                37 35 98:0 / / ro,relatime - ext4 /dev/sda rw\n";
    let m = mounts::mountinfo(info);
    assert_eq!(m[0].0, PathBuf::from("/mnt two"));
    assert!(m[0]
        .1
        .contains(nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NOATIME));
    assert_eq!(m[1].0, PathBuf::from("/"));
    assert!(m[1].1.contains(nix::mount::MsFlags::MS_RELATIME));
}

#[test]
fn system_call_groups_are_read_as_systemd_analyze_prints_them() {
    let text = "@aio\n    # Asynchronous IO\n    io_cancel\n    @timer\n\n    io_setup\n";
    assert_eq!(
        seccomp::parse_group(text),
        ["io_cancel", "@timer", "io_setup"]
    );
}
