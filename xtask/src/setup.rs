//! Debian packages the project needs, installed idempotently with apt.
//!
//! The machine is Debian bookworm. Two things make the install less than trivial
//! (`colo-recipe.md` §1, pitfall 1):
//! - QEMU must be bookworm's 7.2 (the version the COLO recipe and our patch were
//!   made against), not a backport.
//! - The image may ship `qemu-utils` 10.x from backports, which
//!   `Breaks: qemu-system-common (<< 1:8.0+dfsg-5~)`. A plain
//!   `apt-get install qemu-system-x86` then fails with "held broken packages". The
//!   fix is to pin `qemu-system-x86`, `qemu-system-common` and `qemu-utils` to the
//!   same 7.2 version in one `apt-get install --allow-downgrades`.

use crate::util;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::process::Command;

/// Everything `cargo xtask setup` needs from apt, in one list.
///
/// Entries in [`PINNED`] are installed at one common QEMU 7.2 version; the rest at
/// whatever apt's candidate is.
pub const PACKAGES: &[&str] = &[
    // QEMU 7.2 from bookworm (the stock binary, and the data the patched build uses:
    // BIOS, option ROMs, keymaps). Pinned, see `PINNED`.
    "qemu-system-x86",
    "qemu-system-common",
    "qemu-utils",
    "ipxe-qemu", // efi-virtio.rom and friends (virtio-net's option ROM)
    // libvirt: the daemon, virsh, and the C library + pkg-config the Rust bindings link to.
    "libvirt-daemon-system",
    "libvirt-clients",
    "libvirt-dev",
    "pkg-config",
    // D-Bus and polkit (ftd's D-Bus API and its authorisation).
    "dbus",
    "dbus-daemon",
    "polkitd",
    // journald (systemd-journald, journalctl): ftd's structured log fields are tested
    // against a real one per lab host.
    "systemd",
    // gdbus: the polkit tests call Enable(s, a{sv}), which dbus-send cannot write.
    "libglib2.0-bin",
    // The lab: network namespaces, bridges, veths (ip), nsenter/unshare, socat.
    "iproute2",
    "util-linux",
    "socat",
    // Captures on the lab's links: the data-path test shows that no guest data
    // crosses the replication network in clear.
    "tcpdump",
    // The partition arbiter (ftd's `arbiter: {kind: corosync}`): corosync 3 on the
    // pair, a quorum device on each, its qnetd on the lab's witness host; the C
    // libraries' development files for the `rust-corosync` bindings (the crate links
    // libcpg, libcfg, libcmap, libquorum and libvotequorum). nftables cuts single
    // paths of the lab's switch (A<->B while both reach the witness).
    "corosync",
    "corosync-qdevice",
    "corosync-qnetd",
    "libcorosync-common-dev",
    "libcpg-dev",
    "libcfg-dev",
    "libcmap-dev",
    "libquorum-dev",
    "libvotequorum-dev",
    "nftables",
    // The witness (ftd's `arbiter: {kind: etcd}`): the copy of record of each
    // protected domain in etcd (the server on the witness host, and the tests start
    // their own), etcdctl for people looking at the records, and protoc, which the
    // `etcd-client` crate's build runs to generate its gRPC code, with the
    // well-known types it imports (`google/protobuf/descriptor.proto`, which
    // Debian ships in libprotobuf-dev, not with protoc).
    "etcd-server",
    "etcd-client",
    "protobuf-compiler",
    "libprotobuf-dev",
    // The lab runs ftd under the shipped systemd unit's sandbox without systemd
    // (tests/lab/src/sandbox): its seccomp filters are built with libseccomp, as
    // systemd builds them.
    "libseccomp-dev",
    // The test guest: Debian kernel + busybox initramfs.
    "busybox-static",
    "linux-image-amd64",
    "cpio",
    "gzip",
    // Building the patched QEMU from Debian's source package.
    "dpkg-dev",
    "build-essential",
    "ninja-build",
    "meson",
    "python3-venv",
    "libglib2.0-dev",
    "libpixman-1-dev",
    "zlib1g-dev",
    "flex",
    "bison",
    "libslirp-dev",
    "libfdt-dev",
];

/// Built from the `qemu` source package: installed together, at exactly one version.
pub const PINNED: &[&str] = &["qemu-system-x86", "qemu-system-common", "qemu-utils"];

/// Version prefix of bookworm's QEMU (epoch 1, upstream 7.2).
const QEMU_VERSION_PREFIX: &str = "1:7.2+";

const PHASE: &str = "packages";

/// Install [`PACKAGES`] unless they are all there already (then apt is not run at all).
pub fn install_packages() -> Result<()> {
    let installed = installed_versions(PACKAGES)?;
    let missing = missing_packages(PACKAGES, &installed);
    if missing.is_empty() {
        util::step(
            PHASE,
            &format!(
                "all {} packages installed (qemu {}); skipping apt",
                PACKAGES.len(),
                installed[PINNED[0]]
            ),
        );
        return Ok(());
    }
    util::step(
        PHASE,
        &format!("missing or at the wrong version: {}", missing.join(" ")),
    );

    util::step(PHASE, "apt-get update");
    util::run(apt_get().arg("update")).context(
        "apt-get update failed: check network access and that /etc/apt/sources.list.d \
         has Debian bookworm (main), then re-run `cargo xtask setup`",
    )?;

    let version = pinned_qemu_version()?;
    util::step(
        PHASE,
        &format!(
            "installing {} packages, QEMU pinned to {version}",
            PACKAGES.len()
        ),
    );
    let mut install = apt_get();
    install.args([
        "install",
        "-y",
        "--no-install-recommends",
        "--allow-downgrades",
        // Wait for a concurrent apt/dpkg instead of failing at once.
        "-o",
        "DPkg::Lock::Timeout=300",
        // Never stop at a conffile question.
        "-o",
        "Dpkg::Options::=--force-confdef",
        "-o",
        "Dpkg::Options::=--force-confold",
    ]);
    install.args(install_args(&version));
    util::run(&mut install).with_context(|| {
        format!(
            "apt-get install failed (see apt's messages above). If apt reports broken or held \
             packages around qemu, the installed qemu-* packages come from another suite: \
             downgrade them together with `apt-get install --allow-downgrades \
             qemu-system-x86={version} qemu-system-common={version} qemu-utils={version}`, \
             then re-run `cargo xtask setup`"
        )
    })?;

    let installed = installed_versions(PACKAGES)?;
    let missing = missing_packages(PACKAGES, &installed);
    if !missing.is_empty() {
        bail!(
            "apt-get install succeeded but these packages are still missing or at the wrong \
             version: {}; install them by hand and re-run `cargo xtask setup`",
            missing.join(" ")
        );
    }
    util::step(PHASE, &format!("installed; qemu {version}"));
    Ok(())
}

fn apt_get() -> Command {
    let mut c = Command::new("apt-get");
    c.env("DEBIAN_FRONTEND", "noninteractive");
    c
}

/// `pkg` or `pkg=version` arguments for the one install command.
fn install_args(qemu_version: &str) -> Vec<String> {
    PACKAGES
        .iter()
        .map(|p| {
            if PINNED.contains(p) {
                format!("{p}={qemu_version}")
            } else {
                (*p).to_string()
            }
        })
        .collect()
}

/// Installed version of each installed package among `pkgs` (dpkg's database).
fn installed_versions(pkgs: &[&str]) -> Result<HashMap<String, String>> {
    // dpkg-query exits 1 when some name is unknown to dpkg but still reports the
    // others, so the exit status is not an error here.
    let out = Command::new("dpkg-query")
        .arg("-W")
        .arg("-f=${Package}\\t${db:Status-Abbrev}\\t${Version}\\n")
        .args(pkgs)
        .output()
        .context("could not run dpkg-query (is this Debian?)")?;
    Ok(parse_dpkg_query(&String::from_utf8_lossy(&out.stdout)))
}

/// Parse `Package\tStatus-Abbrev\tVersion` lines, keeping installed packages only
/// (`ii`, or `hi` for held ones; no error flag).
fn parse_dpkg_query(text: &str) -> HashMap<String, String> {
    let mut m = HashMap::new();
    for line in text.lines() {
        let mut f = line.split('\t');
        let (Some(pkg), Some(status), Some(version)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let st = status.as_bytes();
        if st.len() >= 2 && st[1] == b'i' && status.trim_end().len() == 2 && !version.is_empty() {
            m.insert(pkg.to_string(), version.to_string());
        }
    }
    m
}

/// Packages of `pkgs` that need apt: not installed, or (for [`PINNED`]) not all at
/// one common bookworm 7.2 version.
fn missing_packages(pkgs: &[&str], installed: &HashMap<String, String>) -> Vec<String> {
    let pinned_version = installed.get(PINNED[0]);
    let pinned_ok = |p: &str| match (installed.get(p), pinned_version) {
        (Some(v), Some(want)) => v == want && v.starts_with(QEMU_VERSION_PREFIX),
        _ => false,
    };
    pkgs.iter()
        .filter(|p| {
            if PINNED.contains(p) {
                !pinned_ok(p)
            } else {
                !installed.contains_key(**p)
            }
        })
        .map(|p| p.to_string())
        .collect()
}

/// The version to pin QEMU to: the highest 7.2 version of `qemu-system-x86` apt
/// offers outside backports, which must also be offered for the other pinned packages.
fn pinned_qemu_version() -> Result<String> {
    let madison = |pkg: &str| -> Result<Vec<(String, String)>> {
        let text = util::output(Command::new("apt-cache").args(["madison", pkg]))?;
        Ok(parse_madison(&text))
    };
    let offered = madison(PINNED[0])?;
    let mut candidates: Vec<String> = offered
        .iter()
        .filter(|(v, archive)| is_bookworm_qemu(v, archive))
        .map(|(v, _)| v.clone())
        .collect();
    candidates.dedup();
    let Some(version) = util::newest_version(candidates)? else {
        bail!(
            "apt offers no QEMU 7.2 ({QEMU_VERSION_PREFIX}*) for {}; offered: {:?}. \
             Add Debian bookworm (main) to /etc/apt/sources.list.d and re-run `cargo xtask setup`",
            PINNED[0],
            offered
        );
    };
    for pkg in &PINNED[1..] {
        if !madison(pkg)?.iter().any(|(v, _)| *v == version) {
            bail!(
                "apt offers {} {version} but not {pkg} {version}; the apt lists look \
                 inconsistent: run `apt-get update` and re-run `cargo xtask setup`",
                PINNED[0]
            );
        }
    }
    Ok(version)
}

/// `apt-cache madison` lines: `pkg | version | archive` -> (version, archive).
fn parse_madison(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split('|').map(str::trim);
            let _pkg = f.next()?;
            let version = f.next()?;
            let archive = f.next()?;
            (!version.is_empty()).then(|| (version.to_string(), archive.to_string()))
        })
        .collect()
}

/// A 7.2 version from a bookworm suite that is not backports (backports carry 10.x
/// anyway, but a `~bpo` 7.2 must not be picked either).
fn is_bookworm_qemu(version: &str, archive: &str) -> bool {
    version.starts_with(QEMU_VERSION_PREFIX)
        && !version.contains("~bpo")
        && !archive.contains("backports")
        && !archive.ends_with("Sources")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_query_keeps_installed_only() {
        let text = "qemu-utils\tii \t1:7.2+dfsg-7+deb12u18+b3\n\
                    gdb\trc \t13.1-3\n\
                    socat\tun \t\n\
                    flex\thi \t2.6.4-8.2\n\
                    cpio\tiF \t2.13\n";
        let m = parse_dpkg_query(text);
        assert_eq!(
            m.get("qemu-utils").map(String::as_str),
            Some("1:7.2+dfsg-7+deb12u18+b3")
        );
        assert_eq!(m.get("flex").map(String::as_str), Some("2.6.4-8.2"));
        assert!(!m.contains_key("gdb"));
        assert!(!m.contains_key("socat"));
        assert!(!m.contains_key("cpio"), "half-configured is not installed");
    }

    fn all_installed(qemu: &str, utils: &str) -> HashMap<String, String> {
        let mut m: HashMap<String, String> = PACKAGES
            .iter()
            .map(|p| (p.to_string(), "1.0".to_string()))
            .collect();
        m.insert("qemu-system-x86".into(), qemu.into());
        m.insert("qemu-system-common".into(), qemu.into());
        m.insert("qemu-utils".into(), utils.into());
        m
    }

    #[test]
    fn pinned_packages_must_share_a_72_version() {
        let v72 = "1:7.2+dfsg-7+deb12u18+b3";
        assert!(missing_packages(PACKAGES, &all_installed(v72, v72)).is_empty());

        let bpo = "1:10.0.2+ds-2+deb13u1~bpo12+1";
        assert_eq!(
            missing_packages(PACKAGES, &all_installed(v72, bpo)),
            vec!["qemu-utils"]
        );

        let mut m = all_installed(bpo, bpo);
        assert_eq!(missing_packages(PACKAGES, &m).len(), PINNED.len());
        m.remove("socat");
        assert!(missing_packages(PACKAGES, &m).contains(&"socat".to_string()));
    }

    #[test]
    fn madison_parsing_and_suite_filter() {
        let text = "qemu-system-x86 | 1:7.2+dfsg-7+deb12u18+b3 | http://deb.debian.org/debian bookworm/main amd64 Packages\n\
                    qemu-system-x86 | 1:10.0.2+ds-2+deb13u1~bpo12+1 | http://deb.debian.org/debian bookworm-backports/main amd64 Packages\n\
                    qemu-system-x86 | 1:7.2+dfsg-7+deb12u15 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages\n";
        let rows = parse_madison(text);
        assert_eq!(rows.len(), 3);
        let ok: Vec<&str> = rows
            .iter()
            .filter(|(v, a)| is_bookworm_qemu(v, a))
            .map(|(v, _)| v.as_str())
            .collect();
        assert_eq!(ok, ["1:7.2+dfsg-7+deb12u18+b3", "1:7.2+dfsg-7+deb12u15"]);
    }

    #[test]
    fn each_package_is_listed_once_with_the_witness_and_its_build_tools() {
        let mut seen = std::collections::HashSet::new();
        for p in PACKAGES {
            assert!(seen.insert(p), "{p} is listed twice");
        }
        // ftd's witness tests run `etcd`; ftd's build needs `protoc` and the
        // well-known types.
        for p in [
            "etcd-server",
            "etcd-client",
            "protobuf-compiler",
            "libprotobuf-dev",
        ] {
            assert!(PACKAGES.contains(&p), "{p} is missing");
        }
        let mut m = all_installed("1:7.2+dfsg-7+deb12u18+b3", "1:7.2+dfsg-7+deb12u18+b3");
        m.remove("etcd-server");
        assert_eq!(missing_packages(PACKAGES, &m), vec!["etcd-server"]);
    }

    #[test]
    fn install_args_pin_exactly_the_qemu_packages() {
        let args = install_args("1:7.2+dfsg-7+deb12u18+b3");
        assert_eq!(args.len(), PACKAGES.len());
        let pinned: Vec<&String> = args.iter().filter(|a| a.contains('=')).collect();
        assert_eq!(pinned.len(), PINNED.len());
        assert!(args.contains(&"qemu-utils=1:7.2+dfsg-7+deb12u18+b3".to_string()));
    }
}
