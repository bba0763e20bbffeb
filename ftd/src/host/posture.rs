//! ftd's start-up check of the host's security posture towards QEMU: who QEMU
//! runs as (libvirt's `qemu.conf`, [`super::qemu_user`]), and whether that user
//! can reach the directories ftd puts QEMU's files in. A QEMU that cannot open its
//! overlays fails only at the first protection, deep in a libvirt error; here the
//! daemon stops at start with the directory and the fix named instead.
//!
//! Said, not refused: QEMU running as root (then a QEMU escape is root on this
//! host), and AppArmor on this host (libvirt's per-domain profile lists only the
//! files in the domain's definition, never ftd's overlays, base images or TLS
//! files; they must be allowed in `/etc/apparmor.d/local/abstractions/libvirt-qemu`;
//! ftvirt is not tested under AppArmor).

use super::qemu_user::QemuUser;
use std::path::Path;

/// Where the kernel says whether AppArmor is on.
const APPARMOR: &str = "/sys/module/apparmor/parameters/enabled";

/// The QEMU user of libvirt's `qemu_conf`, with `overlay_dir` made (if missing)
/// and checked to be reachable by it. `Err` says what to fix.
pub fn qemu_user(qemu_conf: &Path, overlay_dir: &Path) -> Result<QemuUser, String> {
    let q = QemuUser::from_qemu_conf(qemu_conf).map_err(|e| e.to_string())?;
    if q.uid.is_root() {
        tracing::warn!(
            user = %q.describe(),
            conf = %qemu_conf.display(),
            "libvirt runs QEMU as root: a guest that escapes QEMU owns this host; \
             set user and group in qemu.conf to libvirt's unprivileged user"
        );
    } else {
        tracing::info!(user = %q.describe(), conf = %qemu_conf.display(), "QEMU's files are given to the user libvirt runs QEMU as");
    }
    // One that cannot be made now (a file system not mounted yet) fails each
    // protection with the cause instead, and works once it can be made; one
    // that exists QEMU must reach.
    match q.create_dirs(overlay_dir) {
        Ok(()) => q
            .can_traverse(overlay_dir)
            .map_err(|e| format!("colo.overlay-dir: {e}"))?,
        Err(e) => {
            tracing::warn!(error = %e, "colo.overlay-dir cannot be made now: no secondary can be created on this host until it can")
        }
    }
    if apparmor_on(Path::new(APPARMOR)) {
        tracing::warn!(
            overlay_dir = %overlay_dir.display(),
            "AppArmor is on: unless qemu.conf sets security_driver = \"none\", QEMU may open \
             ftd's overlays, pivot images and TLS files only if \
             /etc/apparmor.d/local/abstractions/libvirt-qemu allows them (untested by ftvirt)"
        );
    }
    Ok(q)
}

/// Is AppArmor enabled (the kernel parameter file says `Y`)?
fn apparmor_on(param: &Path) -> bool {
    std::fs::read_to_string(param).is_ok_and(|s| s.trim() == "Y")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_overlay_directory_is_made_qemus_to_search() {
        let t = tempfile::tempdir().unwrap();
        let conf = t.path().join("qemu.conf");
        std::fs::write(&conf, "user = \"+0\"\ngroup = \"+0\"\n").unwrap();
        let overlay = t.path().join("lib/overlays");
        let q = qemu_user(&conf, &overlay).unwrap();
        assert!(q.uid.is_root());
        let mode = std::fs::metadata(&overlay).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o750);
        let e = qemu_user(&t.path().join("none.conf"), &overlay).unwrap_err();
        assert!(e.contains("none.conf"), "{e}");
        // Under a regular file: said, and left to each protection to report.
        std::fs::write(t.path().join("file"), "x").unwrap();
        qemu_user(&conf, &t.path().join("file/overlays")).unwrap();
    }

    #[test]
    fn apparmor_is_on_only_when_the_kernel_says_y() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("enabled");
        assert!(!apparmor_on(&p));
        std::fs::write(&p, "N\n").unwrap();
        assert!(!apparmor_on(&p));
        std::fs::write(&p, "Y\n").unwrap();
        assert!(apparmor_on(&p));
    }
}
