//! `ftvirt-demo` (run by `cargo xtask demo`): brings up the lab, boots the 2-vCPU
//! guest under host A's libvirtd, talks to it from the client namespace, prints a
//! table and a last line for scripts:
//! `RESULT ok vcpus=N boot_ms=N` or `RESULT fail reason=...` (exit 1).

use ftvirt_lab::{GuestSpec, Lab, LabConfig};
use std::time::Instant;

fn main() {
    match run() {
        Ok(line) => println!("{line}"),
        Err(e) => {
            let reason = format!("{e:#}").replace(char::is_whitespace, "_");
            eprintln!("demo failed: {e:#}");
            println!("RESULT fail reason={reason}");
            std::process::exit(1);
        }
    }
}

fn say(msg: &str) {
    eprintln!("[demo] {msg}");
}

fn run() -> anyhow::Result<String> {
    let t0 = Instant::now();
    say("starting the lab: hosts a and b (own netns, mount ns, virtlogd, libvirtd), client namespace");
    let lab = Lab::start(LabConfig::hosts(&["a", "b"]))?;
    say(&format!(
        "lab {} up in {:.1}s",
        lab.id,
        lab.startup.as_secs_f64()
    ));
    say(&format!(
        "QEMU: {} ({})",
        lab.qemu.label,
        lab.qemu.path.display()
    ));
    say(&format!("accelerator: {}", lab.accel));
    let spec = GuestSpec::standard("ftdemo", 0);
    say(&format!(
        "booting domain {} on host a: {} vCPUs, {} MiB, {} GiB virtio disk, {} on the LAN",
        spec.name, spec.vcpus, spec.memory_mib, spec.disk_gib, spec.ip
    ));
    let g = lab.boot_guest("a", &spec)?;
    say(&format!("guest READY after {} ms", g.boot_time.as_millis()));
    say(&format!(
        "client {} connects to {}:{}",
        ftvirt_lab::CLIENT_IP,
        g.ip,
        g.port
    ));
    let mut c = lab.connect(&g)?;
    let info = c.info()?;
    // `conn` counts every request on this connection; INFO was the first.
    for n in 1..=5u64 {
        let k = c.seq(n)?;
        anyhow::ensure!(
            k == n + 1,
            "SEQ {n}: guest counted request {k} on this connection, expected {}",
            n + 1
        );
    }
    for n in 1..=5u64 {
        c.put(n, &format!("demo-record-{n}"))?;
    }
    let last = c.last()?;
    anyhow::ensure!(
        last == 5,
        "LAST read back {last} durable records, expected 5"
    );
    let cpu = c.cpu(20_000_000)?;
    let mut on = cpu.ran_on.clone();
    on.sort_unstable();
    on.dedup();
    let a = lab.host("a")?;
    let b = lab.host("b")?;
    let on_b = b.domains(true)?;
    anyhow::ensure!(
        on_b.is_empty(),
        "host b's libvirtd sees domains {on_b:?}; it must see none"
    );
    let state = a.virsh(&["domstate", &g.name])?;

    println!();
    println!(
        "{:<6} {:<8} {:>6} {:>10}  service reply",
        "host", "domain", "vCPUs", "boot (ms)"
    );
    println!(
        "{:<6} {:<8} {:>6} {:>10}  -------------",
        "----", "------", "-----", "---------"
    );
    println!(
        "{:<6} {:<8} {:>6} {:>10}  INFO nproc={} boot_id={}..; SEQ 1-5 in order; PUT 1-5 durable, LAST={}; CPU on vCPUs {:?} in {} ms",
        a.name,
        g.name,
        info.nproc,
        g.boot_time.as_millis(),
        info.nproc,
        &info.boot_id[..8.min(info.boot_id.len())],
        last,
        on,
        cpu.ms
    );
    println!();
    println!(
        "libvirt on host a: {} is {}; host b sees no domain",
        g.name,
        state.trim()
    );
    println!("QEMU: {}; accelerator: {}", lab.qemu.label, lab.accel);
    anyhow::ensure!(
        info.nproc == 2,
        "guest reports nproc={}, expected 2",
        info.nproc
    );
    anyhow::ensure!(on.len() == 2, "CPU work ran on vCPUs {on:?}, expected both");
    let boot_ms = g.boot_time.as_millis();
    drop(c);
    lab.shutdown()?;
    say(&format!(
        "lab torn down; demo took {:.1}s",
        t0.elapsed().as_secs_f64()
    ));
    Ok(format!("RESULT ok vcpus={} boot_ms={boot_ms}", info.nproc))
}
