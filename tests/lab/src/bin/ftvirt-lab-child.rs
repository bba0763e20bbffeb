//! `ftvirt-lab-child`: a lab owner for the tear-down tests. It starts a lab (and,
//! with `--guest`, boots the guest, so that a QEMU is running), prints
//! `LAB id=<id> dir=<dir> inodes=<i1,i2,...>` then `READY`, and then obeys one line
//! on stdin: `panic` (unwinds: `Drop` must clean up), `exit` (returns normally), or
//! nothing at all (it waits to be killed: the reaper must clean up).

use ftvirt_lab::{GuestSpec, Lab, LabConfig};
use std::io::BufRead;

fn main() {
    let guest = std::env::args().any(|a| a == "--guest");
    let lab = Lab::start(LabConfig::hosts(&["a", "b"])).expect("lab start");
    if guest {
        lab.boot_guest("a", &GuestSpec::standard("child", 0))
            .expect("guest boot");
    }
    let inodes: Vec<String> = lab.netns_inodes().iter().map(u64::to_string).collect();
    println!(
        "LAB id={} dir={} inodes={}",
        lab.id,
        lab.dir.display(),
        inodes.join(",")
    );
    println!("READY");
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    match line.trim() {
        "panic" => panic!("ftvirt-lab-child: panicking on request, as a failing test would"),
        "exit" => drop(lab),
        _ => loop {
            std::thread::park();
        },
    }
}
