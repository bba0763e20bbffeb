//! `ftvirt-sandbox` with the shipped `dbus/ftd.service` inside a lab host, as ftd
//! runs there: what fencing (`ip link set`), socket cutting (`ss -K`) and the
//! pivot (`qemu-img create` beside the guest's disk) need works under it, and
//! the sandbox really bites: `/etc` is read-only, `/tmp` is private, seccomp
//! and the capability bounding set are in force. The same unit less `AF_NETLINK`
//! or less `CAP_NET_ADMIN` (the unit as review 8.4 found it) breaks fencing, and
//! a directive the lab cannot apply stops it before anything runs.

use ftvirt_lab::{Host, Lab, LabConfig};
use std::path::{Path, PathBuf};
use std::process::Output;

const SANDBOX: &str = env!("CARGO_BIN_EXE_ftvirt-sandbox");

/// Run `script` with `sh -c` under `unit` (a path) with `h`'s lab drop-in.
fn under(h: &Host, unit: &Path, script: &str) -> Output {
    let drop_in = h.dir.join("sandbox-test.conf");
    std::fs::write(&drop_in, h.ftd_drop_in()).unwrap();
    let (u, d) = (unit.to_string_lossy(), drop_in.to_string_lossy());
    let argv = [
        SANDBOX,
        "--unit",
        &u,
        "--drop-in",
        &d,
        "--",
        "sh",
        "-c",
        script,
    ];
    h.command(&argv).unwrap().output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The shipped unit with `edit` applied to its text, written in `dir`.
fn edited(dir: &Path, name: &str, edit: impl Fn(&str) -> String) -> PathBuf {
    let shipped = std::fs::read_to_string(ftvirt_lab::host::unit_file()).unwrap();
    let changed = edit(&shipped);
    assert_ne!(changed, shipped, "{name}: the edit changed nothing");
    let p = dir.join(name);
    std::fs::write(&p, changed).unwrap();
    p
}

/// A TCP connection on the host's loopback for `ss -K` to cut, held by busybox's
/// nc (from the set-up's busybox-static) on port 5555; its processes outlive
/// the script until [`stop_connection`].
const CONNECT: &str = "(sleep 60 | busybox nc -l -p 5555 >/dev/null 2>&1 &)\n\
                       sleep 0.3\n\
                       (sleep 60 | busybox nc 127.0.0.1 5555 >/dev/null 2>&1 &)\n\
                       sleep 0.3\n";

fn stop_connection(h: &Host) {
    let _ = h.command(&["pkill", "-f", "busybox nc"]).unwrap().status();
}

#[test]
fn ftd_s_tools_work_under_the_shipped_unit_and_the_sandbox_bites() {
    let Some(lab) = Lab::for_test(LabConfig::hosts(&["a"])) else {
        return;
    };
    let h = lab.host("a").unwrap();
    let unit = ftvirt_lab::host::unit_file();
    let outside =
        std::env::temp_dir().join(format!("ftvirt-sandbox-outside-{}", std::process::id()));
    std::fs::write(&outside, "x").unwrap();
    let image = h.images().join("probe.ftvirt1.qcow2");
    let script = format!(
        "set -e\n\
         ip link set dev lo down && ip link set dev lo up && echo FENCE-OK\n\
         {CONNECT}\
         cut=$(ss -K -t -n -H dst 127.0.0.1 and dport = :5555)\n\
         left=$(ss -t -n -H dst 127.0.0.1 and dport = :5555)\n\
         if [ -n \"$cut\" ] && [ -z \"$left\" ]; then echo CUT-OK; fi\n\
         qemu-img create -q -f qcow2 '{img}' 1M && echo PIVOT-OK\n\
         if touch /etc/.ftvirt-probe 2>/dev/null; then echo ETC-WRITABLE; fi\n\
         if [ -e '{outside}' ]; then echo TMP-SHARED; fi\n\
         grep -E '^(CapBnd|NoNewPrivs|Seccomp):' /proc/self/status\n",
        img = image.display(),
        outside = outside.display(),
    );
    let o = under(h, &unit, &script);
    stop_connection(h);
    let _ = std::fs::remove_file(&outside);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    for want in [
        "FENCE-OK",
        "CUT-OK",
        "PIVOT-OK",
        "NoNewPrivs:\t1",
        "Seccomp:\t2",
    ] {
        assert!(t.contains(want), "no {want}:\n{t}");
    }
    for bad in ["ETC-WRITABLE", "TMP-SHARED"] {
        assert!(!t.contains(bad), "{bad}:\n{t}");
    }
    // CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER CAP_CHOWN CAP_NET_ADMIN.
    assert!(t.contains("CapBnd:\t000000000000100f"), "{t}");
    assert!(
        image.exists(),
        "the pivot's image is not where the guest's disk is"
    );
    // What the sandbox said it applied, in the command's error output (ftd's log).
    assert!(
        t.contains("under ") && t.contains("RestrictAddressFamilies"),
        "{t}"
    );
}

#[test]
fn the_unit_as_review_8_4_found_it_breaks_fencing() {
    let Some(lab) = Lab::for_test(LabConfig::hosts(&["a"])) else {
        return;
    };
    let h = lab.host("a").unwrap();
    let fence = "ip link set dev lo up";
    let no_netlink = edited(&h.dir, "no-netlink.service", |u| {
        u.replace(" AF_NETLINK", "")
    });
    let o = under(h, &no_netlink, fence);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("Address family not supported"),
        "{}",
        text(&o)
    );

    let no_cap = edited(&h.dir, "no-net-admin.service", |u| {
        u.replace(" CAP_NET_ADMIN", "")
    });
    let o = under(h, &no_cap, fence);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("Operation not permitted"), "{}", text(&o));

    let unknown = edited(&h.dir, "unknown.service", |u| {
        u.replace("[Service]\n", "[Service]\nPrivateNetwork=yes\n")
    });
    let o = under(h, &unknown, "echo RAN");
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("RAN"),
        "{}",
        text(&o)
    );
    assert!(
        text(&o).contains("PrivateNetwork= is not known"),
        "{}",
        text(&o)
    );
}
