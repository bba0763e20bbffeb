//! Phase 3: the HA baseline. The same host loss handled the way libvirt HA
//! (Pacemaker's VirtualDomain, or a script) handles it: the guest runs
//! unprotected on one host; that host is power-cut; after the same detection time
//! ftd uses (200 ms without a heartbeat), the survivor's libvirtd defines and
//! starts the domain from the same disk image (shared storage, or what a
//! synchronously replicated disk such as DRBD gives the survivor: the dead host's
//! last written state). The time is from the cut to the first reply on a new
//! client connection (a client reconnecting as fast as it can).

use crate::bench::{say, sections, Bench};
use crate::report::{ids, Target};
use crate::stats::ms;
use anyhow::{Context, Result};
use ftvirt_lab::{wait_until, GuestConn};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const DOMAIN: &str = "benchha";
/// ftd's detection time in the lab (its default with the witness, the demo's
/// configuration), used for HA too.
const DETECTION: Duration = Duration::from_millis(200);
const FIRST_REPLY_TIMEOUT: Duration = Duration::from_secs(180);

pub fn run(b: &mut Bench) -> Result<()> {
    let g = b.boot("a", DOMAIN, 2, 512)?;
    let xml_path = b.lab.host("a")?.images().join(format!("{DOMAIN}.xml"));
    let xml = std::fs::read_to_string(&xml_path)
        .with_context(|| format!("reading {}", xml_path.display()))?;
    // The same domain (same UUID) on every host, as an HA cluster defines it.
    let uuid = b.lab.host("a")?.virsh(&["domuuid", DOMAIN])?;
    let name = format!("<name>{DOMAIN}</name>");
    let xml = xml.replacen(&name, &format!("{name}\n  <uuid>{}</uuid>", uuid.trim()), 1);
    let serial_a = g.serial.to_string_lossy().to_string();
    let addr = SocketAddr::from((g.ip, g.port));
    let (mut on, mut other) = ("a", "b");
    let mut times = Vec::new();
    let mut boots = Vec::new();
    let result = (|| -> Result<()> {
        for i in 1..=b.opts.runs {
            say(&format!(
                "HA run {i}/{}: {DOMAIN} on {on}; power cut of {on}",
                b.opts.runs
            ));
            // The guest answers before the cut.
            b.connect(&g)?.info()?;
            let t0 = Instant::now();
            b.lab
                .kill_host(on)
                .with_context(|| format!("killing host {on}"))?;
            std::thread::sleep(DETECTION.saturating_sub(t0.elapsed()));
            let h = b.lab.host(other)?;
            let serial = h.images().join(format!("{DOMAIN}.serial.log"));
            let path = h.images().join(format!("{DOMAIN}.ha.xml"));
            std::fs::write(&path, xml.replace(&serial_a, &serial.to_string_lossy()))
                .with_context(|| format!("writing {}", path.display()))?;
            let t_start = Instant::now();
            h.virsh(&["define", &path.to_string_lossy()])?;
            h.virsh(&["start", DOMAIN])?;
            first_reply(b, addr)?;
            let t = t0.elapsed();
            say(&format!(
                "  first reply {} ms after the cut ({} ms after define + start on {other})",
                t.as_millis(),
                t_start.elapsed().as_millis()
            ));
            times.push(ms(t));
            boots.push(ms(t_start.elapsed()));
            b.lab
                .restart_host(on)
                .with_context(|| format!("powering host {on} on again"))?;
            b.start_ftd(on, other)?;
            std::mem::swap(&mut on, &mut other);
        }
        Ok(())
    })();
    b.remove(DOMAIN);
    let ft = b.ft_primary_ms.clone();
    let r = &mut b.report;
    let s = sections::HA;
    r.add(
        s,
        ids::HA_MS,
        "host loss: kill -> first reply (new connection)",
        "ms",
        times.clone(),
        None,
    );
    r.add(
        s,
        "ha.start_ms",
        "  define + start on the survivor -> first reply",
        "ms",
        boots,
        None,
    );
    r.add(
        s,
        "ha.detection_ms",
        "  detection (fixed, as ftd's)",
        "ms",
        vec![ms(DETECTION)],
        None,
    );
    let speedup: Vec<f64> = times.iter().zip(&ft).map(|(h, f)| h / f).collect();
    r.add(
        s,
        "ha.ft_speedup",
        "FT faster than HA (run i: HA / FT primary loss)",
        "x",
        speedup,
        Some(Target::AtLeast(10.0)),
    );
    result
}

/// Connect from the client namespace again and again until `INFO` is answered.
fn first_reply(b: &Bench, addr: SocketAddr) -> Result<()> {
    let ns = b.lab.client_ns().path();
    wait_until(
        "the restarted guest to answer INFO",
        FIRST_REPLY_TIMEOUT,
        Duration::from_millis(20),
        || {
            GuestConn::open(&ns, addr, Duration::from_millis(300))
                .and_then(|mut c| {
                    c.set_timeout(Duration::from_secs(2));
                    c.info()
                })
                .map(drop)
                .into()
        },
    )?;
    Ok(())
}
