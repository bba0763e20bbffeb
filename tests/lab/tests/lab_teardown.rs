//! Tear-down: whatever happens to the process that owns a lab (normal drop, a
//! panicking test, SIGKILL, Ctrl-C), no namespace, libvirtd, virtlogd, QEMU or
//! other process of the lab is left, and its directory is gone. Checked from the
//! outside, against the kernel's view (`/proc/*/ns/net`, `/run/netns`).

use ftvirt_lab::{netns, wait_until, Look};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Owner {
    child: Child,
    id: String,
    dir: PathBuf,
    inodes: Vec<u64>,
}

/// Start the lab's owner process (`None` when lab tests are skipped: the child
/// would boot a lab).
fn start_owner(guest: bool) -> Option<Owner> {
    if ftvirt_lab::skip_lab_test() {
        return None;
    }
    let mut c = Command::new(env!("CARGO_BIN_EXE_ftvirt-lab-child"));
    if guest {
        c.arg("--guest");
    }
    // Own process group, as a test binary run from a terminal would be.
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn ftvirt-lab-child");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (mut id, mut dir, mut inodes) = (String::new(), PathBuf::new(), Vec::new());
    loop {
        let mut l = String::new();
        assert!(
            out.read_line(&mut l).unwrap() > 0,
            "lab child exited before READY"
        );
        if let Some(rest) = l.trim().strip_prefix("LAB ") {
            for kv in rest.split_whitespace() {
                match kv.split_once('=') {
                    Some(("id", v)) => id = v.into(),
                    Some(("dir", v)) => dir = v.into(),
                    Some(("inodes", v)) => {
                        inodes = v.split(',').map(|s| s.parse().unwrap()).collect()
                    }
                    _ => {}
                }
            }
        }
        if l.trim() == "READY" {
            break;
        }
    }
    assert!(!id.is_empty() && inodes.len() == 4, "bad LAB line");
    // While it runs, the lab really has processes (holders, virtlogd, libvirtd, ...).
    let pids = netns::pids_in(&inodes);
    assert!(
        pids.len() >= 6,
        "expected the lab's processes to be running, found {pids:?}"
    );
    Some(Owner {
        child,
        id,
        dir,
        inodes,
    })
}

/// Wait (bounded) until nothing of the lab is left; fail naming what is.
fn assert_nothing_left(o: &Owner) {
    let r = wait_until(
        &format!("lab {} to leave nothing behind", o.id),
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            let spaces: Vec<String> = netns::list_lab_namespaces()
                .into_iter()
                .filter(|n| n.starts_with(&format!("ftl-{}-", o.id)))
                .collect();
            let pids = netns::pids_in(&o.inodes);
            let dir_left = o.dir.exists();
            let names: Vec<String> = pids
                .iter()
                .map(|p| {
                    std::fs::read_to_string(format!("/proc/{p}/comm"))
                        .unwrap_or_default()
                        .trim()
                        .to_string()
                })
                .collect();
            let clean = spaces.is_empty() && pids.is_empty() && !dir_left;
            Look::holds(clean, || {
                format!(
                    "namespaces {spaces:?}, processes {pids:?} {names:?}, dir exists: {dir_left}"
                )
            })
        },
    );
    r.unwrap();
}

#[test]
fn normal_drop_leaves_nothing() {
    let Some(mut o) = start_owner(false) else {
        return;
    };
    o.child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"exit\n")
        .unwrap();
    assert!(o.child.wait().unwrap().success());
    assert_nothing_left(&o);
}

#[test]
fn panicking_owner_leaves_nothing() {
    let Some(mut o) = start_owner(false) else {
        return;
    };
    o.child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"panic\n")
        .unwrap();
    let st = o.child.wait().unwrap();
    assert!(
        !st.success(),
        "the child should have failed like a panicking test"
    );
    assert_nothing_left(&o);
}

#[test]
fn sigkilled_owner_with_running_guest_leaves_nothing() {
    let Some(mut o) = start_owner(true) else {
        return;
    };
    let qemus = netns::pids_in(&o.inodes)
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .unwrap_or_default()
                .starts_with("qemu")
        })
        .count();
    assert_eq!(qemus, 1, "the guest's QEMU should be running in the lab");
    o.child.kill().unwrap(); // SIGKILL: no Drop runs; only the reaper can clean up.
    o.child.wait().unwrap();
    assert_nothing_left(&o);
}

#[test]
fn interrupted_owner_leaves_nothing() {
    let Some(mut o) = start_owner(false) else {
        return;
    };
    // Ctrl-C: SIGINT to the owner's whole process group.
    let pgid = nix::unistd::Pid::from_raw(-(o.child.id() as i32));
    nix::sys::signal::kill(pgid, nix::sys::signal::Signal::SIGINT).unwrap();
    o.child.wait().unwrap();
    assert_nothing_left(&o);
}
