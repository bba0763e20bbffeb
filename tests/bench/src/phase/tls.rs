//! Phase 7: what COLO's TLS costs. The same guest, run after run: request/response
//! unprotected; then both hosts' ftds restarted with COLO's channels in clear
//! (`colo.tls: false`), protected, request/response protected with the
//! checkpoints of that window, unprotected; then the same over TLS (the
//! default). The figures are side by side: protect time, the request/response
//! ratio (protected / unprotected of the same run) and the guest's pause per
//! checkpoint, and TLS over clear per run. The phase leaves the ftds on TLS.

use crate::bench::{say, sections, Bench, REPLY_TIMEOUT};
use crate::checkpoints::Checkpoints;
use crate::stats::ms;
use crate::workload;
use anyhow::{Context, Result};
use ftvirt_lab::{wait_until, Look};
use std::time::{Duration, SystemTime};

const DOMAIN: &str = "benchtls";
/// How long QEMU's events may take to reach us through libvirtd.
const EVENT_LAG: Duration = Duration::from_millis(300);

/// One protected run in one mode.
#[derive(Debug, Default)]
struct Mode {
    protect_ms: Vec<f64>,
    rr_ratio: Vec<f64>,
    pauses_ms: Vec<f64>,
}

pub fn run(b: &mut Bench) -> Result<()> {
    let g = b.boot("a", DOMAIN, 5, 512)?;
    let mut cp = Checkpoints::watch(&b.lab.host("a")?.uri());
    let (mut plain, mut tls) = (Mode::default(), Mode::default());
    let result = (|| -> Result<()> {
        for run in 1..=b.opts.runs {
            let mut c = b.connect(&g)?;
            let un = workload::request_response(&mut c, b.opts.rr)?.per_sec();
            say(&format!(
                "TLS cost run {run}/{}: unprotected {un:.0} req/s",
                b.opts.runs
            ));
            for (on, m) in [(false, &mut plain), (true, &mut tls)] {
                restart_ftds(b, on)?;
                let t = b.protect(DOMAIN, "a", "b")?;
                let mut c = b.connect(&g)?;
                let t0 = SystemTime::now();
                let pr = workload::request_response(&mut c, b.opts.rr)?.per_sec();
                let t1 = SystemTime::now();
                std::thread::sleep(EVENT_LAG);
                let w = cp.window(DOMAIN, t0, t1);
                say(&format!(
                    "  {}: protected in {} ms, {pr:.0} req/s, {} checkpoints",
                    label(on),
                    t.as_millis(),
                    w.pauses_ms.len()
                ));
                m.protect_ms.push(ms(t));
                m.rr_ratio.push(pr / un);
                m.pauses_ms.extend(w.pauses_ms);
                b.unprotect(DOMAIN, "a", "b")?;
            }
        }
        Ok(())
    })();
    // Whatever happened, the phases after this one run as configured (while the
    // domain still exists: the wait for the peer link asks about it).
    let back = restart_ftds(b, true);
    b.remove(DOMAIN);
    add_figures(b, &plain, &tls);
    result.and(back)
}

fn label(on: bool) -> &'static str {
    if on {
        "over TLS"
    } else {
        "in clear"
    }
}

/// Both hosts' ftds again, with COLO's channels over TLS or in clear; returns once
/// their peer link is up again.
fn restart_ftds(b: &mut Bench, tls: bool) -> Result<()> {
    for (name, peer) in [("a", "b"), ("b", "a")] {
        let cfg = with_colo_tls(
            &ftvirt_demo::ftd::yaml(&b.lab, b.lab.host(name)?, b.lab.host(peer)?),
            tls,
        );
        let h = b.lab.host_mut(name)?;
        h.kill_ftd();
        h.start_ftd(&b.ftd_bin, &cfg, ftd::config::DEFAULT_BUS_NAME)
            .with_context(|| format!("starting host {name}'s ftd again"))?;
    }
    wait_until(
        "the peer link between a's and b's ftds",
        REPLY_TIMEOUT,
        Duration::from_millis(50),
        || match b.ftds.status(&b.lab, "a", DOMAIN) {
            Ok(s) => Look::holds(s.peer_up, || format!("{s:?}")),
            Err(e) => Look::Seen(e.to_string()),
        },
    )?;
    Ok(())
}

/// The lab's configuration with `colo.tls` set (its `colo:` section holds
/// `overlay-dir:`; a second `colo:` key would be refused).
fn with_colo_tls(yaml: &str, on: bool) -> String {
    assert!(
        yaml.contains("\ncolo:\n"),
        "the lab's ftd.yaml has a colo: section"
    );
    yaml.replacen("\ncolo:\n", &format!("\ncolo:\n  tls: {on}\n"), 1)
}

fn add_figures(b: &mut Bench, plain: &Mode, tls: &Mode) {
    let s = sections::TLS;
    let r = &mut b.report;
    let per_run = |f: fn(&Mode) -> &Vec<f64>| {
        f(tls)
            .iter()
            .zip(f(plain))
            .map(|(t, p)| t / p)
            .collect::<Vec<f64>>()
    };
    r.add(
        s,
        "tls.protect_ms_plain",
        "Enable -> protected, in clear",
        "ms",
        plain.protect_ms.clone(),
        None,
    );
    r.add(
        s,
        "tls.protect_ms_tls",
        "Enable -> protected, over TLS",
        "ms",
        tls.protect_ms.clone(),
        None,
    );
    r.add(
        s,
        "tls.protect_cost",
        "  protect time, TLS / clear (per run)",
        "x",
        per_run(|m| &m.protect_ms),
        None,
    );
    r.add(
        s,
        "tls.rr_ratio_plain",
        "request/response, protected / unprotected, in clear",
        "x",
        plain.rr_ratio.clone(),
        None,
    );
    r.add(
        s,
        "tls.rr_ratio_tls",
        "request/response, protected / unprotected, over TLS",
        "x",
        tls.rr_ratio.clone(),
        None,
    );
    r.add(
        s,
        "tls.rr_cost",
        "  throughput, TLS / clear (per run)",
        "x",
        per_run(|m| &m.rr_ratio),
        None,
    );
    r.add(
        s,
        "tls.pause_ms_plain",
        "guest pause per checkpoint, in clear (all checkpoints)",
        "ms",
        plain.pauses_ms.clone(),
        None,
    );
    r.add(
        s,
        "tls.pause_ms_tls",
        "guest pause per checkpoint, over TLS (all checkpoints)",
        "ms",
        tls.pauses_ms.clone(),
        None,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colo_tls_goes_into_the_existing_colo_section() {
        let y = "host:\n  name: a\n  address: 10.0.0.1\ncolo:\n  overlay-dir: /x\nbus:\n  connect: system\n";
        let off = with_colo_tls(y, false);
        assert_eq!(off.matches("colo:").count(), 1);
        assert!(
            off.contains("colo:\n  tls: false\n  overlay-dir: /x\n"),
            "{off}"
        );
        let cfg = ftd::config::Config::from_str(&off, "t.yaml").unwrap();
        assert!(!cfg.colo.tls);
        assert!(
            ftd::config::Config::from_str(&with_colo_tls(y, true), "t.yaml")
                .unwrap()
                .colo
                .tls
        );
    }
}
