//! KVM or TCG: a short boot probe decides.
//!
//! `/dev/kvm` existing is not enough: on nested set-ups (e.g. `kvm_pvm`) a Linux guest
//! hangs in the kernel decompressor. So the probe boots the real test guest under
//! KVM for a few seconds and accepts KVM only if the guest's service reports READY.
//! The verdict is cached per machine boot (`/proc/sys/kernel/random/boot_id`) in the
//! cache directory. `FTVIRT_ACCEL=kvm|tcg` overrides the probe.

use crate::artifacts::{cache_dir, Artifacts, QemuChoice};
use crate::error::{LabError, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    /// libvirt's `<domain type=...>`.
    pub fn domain_type(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "qemu",
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "KVM",
            Accel::Tcg => "TCG",
        }
    }
}

/// The accelerator in use and why it was chosen.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccelChoice {
    pub accel: Accel,
    pub reason: String,
}

impl std::fmt::Display for AccelChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.accel.name(), self.reason)
    }
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(20);
const READY: &str = "FTVIRT-GUEST: READY";

/// Decide, from the environment, the cache, or a fresh probe.
pub fn choose(art: &Artifacts, qemu: &QemuChoice) -> Result<AccelChoice> {
    match std::env::var("FTVIRT_ACCEL").as_deref() {
        Ok("kvm") => {
            return Ok(AccelChoice {
                accel: Accel::Kvm,
                reason: "forced by FTVIRT_ACCEL=kvm".into(),
            })
        }
        Ok("tcg") => {
            return Ok(AccelChoice {
                accel: Accel::Tcg,
                reason: "forced by FTVIRT_ACCEL=tcg".into(),
            })
        }
        Ok("auto") | Ok("") | Err(_) => {}
        Ok(other) => {
            return Err(LabError::Usage(format!(
                "FTVIRT_ACCEL={other:?}: use kvm, tcg or auto"
            )))
        }
    }
    if !Path::new("/dev/kvm").exists() {
        return Ok(AccelChoice {
            accel: Accel::Tcg,
            reason: "no /dev/kvm on this machine".into(),
        });
    }
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let cache = cache_dir().join(format!("accel-probe-{}.json", boot_id.trim()));
    if let Ok(s) = std::fs::read_to_string(&cache) {
        if let Ok(c) = serde_json::from_str::<AccelChoice>(&s) {
            return Ok(c);
        }
    }
    let choice = probe(art, qemu)?;
    let _ = std::fs::create_dir_all(cache_dir());
    let _ = std::fs::write(&cache, serde_json::to_vec(&choice).unwrap_or_default());
    Ok(choice)
}

/// Boot the guest under KVM and wait for its service to say READY.
fn probe(art: &Artifacts, qemu: &QemuChoice) -> Result<AccelChoice> {
    let dir = std::env::temp_dir().join(format!("ftvirt-kvm-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| LabError::io("creating", &dir, e))?;
    let serial = dir.join("serial.log");
    let t0 = Instant::now();
    let mut child = Command::new(&qemu.path)
        .args(["-accel", "kvm", "-cpu", "host", "-smp", "2", "-m", "256"])
        .args(["-display", "none", "-nodefaults", "-no-reboot"])
        .arg("-kernel")
        .arg(&art.guest_kernel)
        .arg("-initrd")
        .arg(&art.guest_initrd)
        .args(["-append", "console=ttyS0 ftvirt.ip=10.0.2.15/24 panic=1"])
        .args([
            "-netdev",
            "user,id=n0,restrict=on",
            "-device",
            "virtio-net-pci,netdev=n0",
        ])
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| LabError::Spawn {
            cmd: format!("{} -accel kvm", qemu.path.display()),
            source,
        })?;
    let verdict = loop {
        let log = std::fs::read_to_string(&serial).unwrap_or_default();
        if log.contains(READY) {
            break AccelChoice {
                accel: Accel::Kvm,
                reason: format!(
                    "KVM probe booted the guest in {:.1}s",
                    t0.elapsed().as_secs_f64()
                ),
            };
        }
        if let Ok(Some(st)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            break AccelChoice {
                accel: Accel::Tcg,
                reason: format!(
                    "/dev/kvm present but QEMU -accel kvm exited ({st}): {}",
                    first_line(&err)
                ),
            };
        }
        if t0.elapsed() > PROBE_TIMEOUT {
            let last = log
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("(no console output)");
            break AccelChoice {
                accel: Accel::Tcg,
                reason: format!(
                    "/dev/kvm present but a KVM guest did not boot in {}s (console stuck at: {:?}; nested KVM?)",
                    PROBE_TIMEOUT.as_secs(),
                    last.trim()
                ),
            };
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(verdict)
}

fn first_line(s: &str) -> &str {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}
