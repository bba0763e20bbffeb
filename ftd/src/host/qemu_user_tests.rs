//! Unit tests of [`super`]: reading libvirt's `qemu.conf`, the modes and owners
//! ftd gives its files, and the start-up check that QEMU can reach a directory.

use super::*;

#[test]
fn a_setting_wins_over_libvirts_commented_default() {
    let conf = "#user = \"libvirt-qemu\"\n#group = \"libvirt-qemu\"\n\
                # user = \"nobody\" is an example\nuser = \"qemu\"  # ours\n";
    assert_eq!(setting(conf, "user").as_deref(), Some("qemu"));
    // Only the commented default: the build's value.
    assert_eq!(setting(conf, "group").as_deref(), Some("libvirt-qemu"));
    // The last one counts, as in libvirt; another key is not this one.
    let conf = "user = \"a\"\nuser = \"b\"\nusername = \"c\"\n";
    assert_eq!(setting(conf, "user").as_deref(), Some("b"));
    assert_eq!(setting("dynamic_ownership = 1\n", "user"), None);
    assert_eq!(setting("user = \"a\" trailing\n", "user"), None);
}

fn conf(text: &str) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("qemu.conf");
    std::fs::write(&p, text).unwrap();
    (t, p)
}

#[test]
fn users_and_groups_are_read_as_libvirt_reads_them() {
    let (_t, p) = conf("user = \"+0\"\ngroup = \"root\"\n");
    let q = QemuUser::from_qemu_conf(&p).unwrap();
    assert_eq!((q.uid, q.gid), (Uid::from_raw(0), Gid::from_raw(0)));
    assert_eq!(q.describe(), "+0:root");
    let (_t, p) = conf("user = \"root\"\ngroup = \"+4242\"\n");
    let q = QemuUser::from_qemu_conf(&p).unwrap();
    assert_eq!((q.uid, q.gid), (Uid::from_raw(0), Gid::from_raw(4242)));
    assert!(q.groups.contains(&Gid::from_raw(4242)), "{:?}", q.groups);
}

#[test]
fn an_unknown_or_missing_user_is_an_error_that_says_what_to_set() {
    let (_t, p) = conf("#group = \"root\"\n");
    let e = QemuUser::from_qemu_conf(&p).unwrap_err().to_string();
    assert!(
        e.contains("names no `user`") && e.contains("set `user = "),
        "{e}"
    );
    let (_t, p) = conf("user = \"ftvirt-no-such-user\"\ngroup = \"root\"\n");
    let e = QemuUser::from_qemu_conf(&p).unwrap_err().to_string();
    assert!(
        e.contains("user \"ftvirt-no-such-user\" is not known"),
        "{e}"
    );
    let e = QemuUser::from_qemu_conf(Path::new("/nonexistent/qemu.conf"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/qemu.conf"), "{e}");
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn files_are_the_qemu_users_and_nobody_elses() {
    let t = tempfile::tempdir().unwrap();
    let q = QemuUser::current();
    let before = mode(t.path());
    let dirs = t.path().join("web/secondary");
    q.create_dirs(&dirs).unwrap();
    for d in [t.path().join("web"), dirs.clone()] {
        assert_eq!(mode(&d), DIR_MODE, "{}", d.display());
        assert_eq!(std::fs::metadata(&d).unwrap().gid(), q.gid.as_raw());
    }
    // An existing directory is left alone.
    assert_eq!(mode(t.path()), before);
    let f = dirs.join("parent0.qcow2");
    std::fs::write(&f, b"x").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    q.own_file(&f).unwrap();
    assert_eq!(mode(&f), FILE_MODE);
    let m = std::fs::metadata(&f).unwrap();
    assert_eq!((m.uid(), m.gid()), (q.uid.as_raw(), q.gid.as_raw()));
    let e = q.own_file(&dirs.join("nope")).unwrap_err();
    assert!(e.contains("nope"), "{e}");
}

#[test]
fn a_directory_qemu_cannot_search_is_named() {
    let t = tempfile::tempdir().unwrap();
    let me = Gid::effective();
    // Another user, in this process's group.
    let q = QemuUser {
        user: "qemu".into(),
        group: "kvm".into(),
        uid: Uid::from_raw(4_000_000),
        gid: Gid::from_raw(4_000_000),
        groups: vec![Gid::from_raw(4_000_000), me],
    };
    let inner = t.path().join("state/qemu-tls");
    std::fs::create_dir_all(&inner).unwrap();
    let set = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
    set(t.path(), 0o711).unwrap();
    set(&t.path().join("state"), 0o700).unwrap();
    set(&inner, 0o750).unwrap();
    let e = q.can_traverse(&inner).unwrap_err();
    assert!(
        e.contains(&format!(
            "{} is mode 0700",
            t.path().join("state").display()
        )),
        "{e}"
    );
    // Its group may search it: enough.
    set(&t.path().join("state"), 0o710).unwrap();
    q.can_traverse(&inner).unwrap();
    // Neither its user nor its group: only "other" counts.
    let stranger = QemuUser {
        groups: vec![Gid::from_raw(4_000_000)],
        ..q
    };
    assert!(stranger.can_traverse(&inner).is_err());
    set(&t.path().join("state"), 0o711).unwrap();
    set(&inner, 0o751).unwrap();
    stranger.can_traverse(&inner).unwrap();
}
