//! Phase 5: protect time next to a plain live migration of the same guest between
//! the same two lab hosts, for 256 MiB and 1 GiB of guest memory.
//!
//! The migration is what an operator would type: `virsh migrate --live
//! --copy-storage-all` (RAM and disk, no shared storage, as protection copies
//! both too), client-driven (virsh holds a connection to each host's libvirtd
//! through its socket), the migration stream and the NBD disk copy on the
//! replication network (`--migrateuri tcp:<dest>`, `--disks-uri tcp://<dest>`;
//! the hosts' names do not resolve in the lab; libvirt picks both ports from its
//! migration range, so they cannot collide), into an empty
//! qcow2 image made on the destination first (libvirt only creates it itself in a
//! storage pool). Each run migrates a -> b and back; then each run protects the
//! guest on a (`Enable` to the `protected` state change in a's ftd log) and
//! disables protection again.

use crate::bench::{say, sections, Bench};
use crate::report::Target;
use crate::stats::ms;
use anyhow::{Context, Result};
use ftvirt_lab::ftdlog::FtdLog;
use std::time::{Duration, Instant, SystemTime};

pub fn run(b: &mut Bench) -> Result<()> {
    let sizes: [(u32, u8, &'static str, &'static str, &'static str); 2] = [
        (
            256,
            3,
            "protect.ms_256",
            "protect.migrate_ms_256",
            "protect.ratio_256",
        ),
        (
            1024,
            4,
            "protect.ms_1024",
            "protect.migrate_ms_1024",
            "protect.ratio_1024",
        ),
    ];
    for (mib, n, id_p, id_m, id_r) in sizes {
        let name = format!("bench{mib}");
        let (mut prot, mut mig, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
        let mut steps: Vec<[f64; 3]> = Vec::new();
        let result = one_size(b, &name, n, mib, &mut prot, &mut mig, &mut steps);
        b.remove(&name);
        for (i, p) in prot.iter().enumerate() {
            if let Some(m) = mig.get(i) {
                ratio.push(p / m);
            }
        }
        let s = sections::PROTECT;
        let r = &mut b.report;
        r.add(
            s,
            id_p,
            format!("Enable -> protected, {mib} MiB"),
            "ms",
            prot,
            None,
        );
        for (i, what) in STEPS.iter().enumerate() {
            let v = steps.iter().map(|x| x[i]).collect();
            r.add(s, STEP_IDS[i], format!("  {what}"), "ms", v, None);
        }
        r.add(
            s,
            id_m,
            format!("virsh migrate --live --copy-storage-all, {mib} MiB (mean a->b, b->a)"),
            "ms",
            mig,
            None,
        );
        r.add(
            s,
            id_r,
            format!("protect / migrate, {mib} MiB (protect_ratio)"),
            "x",
            ratio,
            Some(Target::AtMost(1.5)),
        );
        result?;
    }
    Ok(())
}

/// ftd's protect steps, as its logs time them: on the secondary's host, then on
/// the primary's.
const STEPS: [&str; 3] = [
    "b: CreateSecondary (images, define + start -incoming, NBD export)",
    "a: Sync (disk pivot onto a quorum, full copy to b's NBD export)",
    "a: StartColo (proxy, replication, RAM to b, COLO on)",
];
const STEP_IDS: [&str; 3] = [
    "protect.step_create",
    "protect.step_sync",
    "protect.step_start_colo",
];

fn step_ms(b: &Bench, host: &str, domain: &str, t0: SystemTime, step: &str) -> f64 {
    b.lab
        .host(host)
        .ok()
        .and_then(|h| {
            FtdLog::read(&h.ftd_log())
                .ok()?
                .domain(domain)
                .step_after(t0, step)
                .map(|s| s.ms as f64)
        })
        .unwrap_or(f64::NAN)
}

fn one_size(
    b: &Bench,
    name: &str,
    n: u8,
    mib: u32,
    prot: &mut Vec<f64>,
    mig: &mut Vec<f64>,
    steps: &mut Vec<[f64; 3]>,
) -> Result<()> {
    let g = b.boot("a", name, n, mib)?;
    let disk_gib = ftvirt_lab::GuestSpec::standard(name, n).disk_gib;
    for i in 1..=b.opts.runs {
        let there = migrate(b, name, "a", "b", disk_gib)?;
        let back = migrate(b, name, "b", "a", disk_gib)?;
        b.connect(&g)?
            .info()
            .context("the guest after migrating back")?;
        say(&format!(
            "{name} run {i}/{}: migrate a->b {} ms, b->a {} ms",
            b.opts.runs,
            there.as_millis(),
            back.as_millis()
        ));
        mig.push((ms(there) + ms(back)) / 2.0);
    }
    for i in 1..=b.opts.runs {
        let t0 = SystemTime::now();
        let t = b.protect(name, "a", "b")?;
        let st = [
            step_ms(b, "b", name, t0, "CreateSecondary"),
            step_ms(b, "a", name, t0, "Sync"),
            step_ms(b, "a", name, t0, "StartColo"),
        ];
        say(&format!(
            "{name} run {i}/{}: protected in {} ms (create {:.0}, sync {:.0}, start COLO {:.0} ms)",
            b.opts.runs,
            t.as_millis(),
            st[0],
            st[1],
            st[2]
        ));
        prot.push(ms(t));
        steps.push(st);
        b.unprotect(name, "a", "b")?;
    }
    Ok(())
}

/// `virsh migrate --live --copy-storage-all` of `name` from `from` to `to`.
fn migrate(b: &Bench, name: &str, from: &str, to: &str, disk_gib: u32) -> Result<Duration> {
    let (src, dst) = (b.lab.host(from)?, b.lab.host(to)?);
    let xml = src.virsh(&["dumpxml", "--migratable", name])?;
    let (si, di) = (src.images(), dst.images());
    let xml = xml.replace(&*si.to_string_lossy(), &di.to_string_lossy());
    let xml_path = di.join(format!("{name}.migrate.xml"));
    std::fs::write(&xml_path, xml).with_context(|| format!("writing {}", xml_path.display()))?;
    let disk = di.join(format!("{name}.qcow2"));
    let _ = std::fs::remove_file(&disk);
    let out = std::process::Command::new("qemu-img")
        .args([
            "create",
            "-q",
            "-f",
            "qcow2",
            &disk.to_string_lossy(),
            &format!("{disk_gib}G"),
        ])
        .output()
        .context("running qemu-img")?;
    if !out.status.success() {
        anyhow::bail!(
            "qemu-img create {}: {}",
            disk.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let t0 = Instant::now();
    src.virsh(&[
        "migrate",
        "--live",
        "--copy-storage-all",
        "--xml",
        &xml_path.to_string_lossy(),
        name,
        &dst.uri(),
        "--migrateuri",
        &format!("tcp:{}", dst.rep_ip),
        "--disks-uri",
        &format!("tcp://{}", dst.rep_ip),
    ])
    .with_context(|| format!("migrating {name} from {from} to {to}"))?;
    Ok(t0.elapsed())
}
