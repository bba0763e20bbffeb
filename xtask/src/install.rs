//! `cargo xtask install [--prefix DIR] [--destdir DIR] [--no-build]`: ftvirt's
//! programs and system files where the system looks for them.
//!
//! | file | installed as |
//! |---|---|
//! | `ftd` | `<prefix>/sbin/ftd` |
//! | `virsh-ft` | `<prefix>/bin/virsh-ft` |
//! | `ftvirt-hook` | `/etc/libvirt/hooks/qemu.d/ftvirt` (libvirtd runs every file there) |
//! | `polkit/org.ftvirt.ftd1.policy` | `/usr/share/polkit-1/actions/` |
//! | `dbus/org.ftvirt.Ftd1.conf` | `/usr/share/dbus-1/system.d/` |
//! | `dbus/org.ftvirt.Ftd1.service` | `/usr/share/dbus-1/system-services/` |
//! | `dbus/ftd.service` | `/usr/lib/systemd/system/` |
//! | `examples/ftd.yaml` | `/etc/ftvirt/ftd.yaml`, only if there is none |
//!
//! Only the programs follow `--prefix` (default `/usr`): polkit, the system bus and
//! systemd read their files from fixed places, whatever the prefix. The paths of
//! `ftd` in the activation file and the unit are rewritten to the prefix's.
//! `--destdir` stages everything under another root (for packaging). The
//! programs are built in release mode first unless `--no-build`.

use crate::util;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

const PHASE: &str = "install";
/// Where the files from the repository name the daemon.
const FTD_PATH: &str = "/usr/sbin/ftd";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub prefix: PathBuf,
    pub destdir: Option<PathBuf>,
    pub build: bool,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Options> {
        let mut o = Options {
            prefix: PathBuf::from("/usr"),
            destdir: None,
            build: true,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| -> Result<PathBuf> {
                let v = it
                    .next()
                    .with_context(|| format!("{name} needs a directory"))?;
                let p = PathBuf::from(v);
                if !p.is_absolute() {
                    bail!("{name} {v}: give an absolute path");
                }
                Ok(p)
            };
            match a.as_str() {
                "--prefix" => o.prefix = value("--prefix")?,
                "--destdir" => o.destdir = Some(value("--destdir")?),
                "--no-build" => o.build = false,
                other => bail!(
                    "install: unknown option {other:?}; use --prefix DIR, --destdir DIR, --no-build"
                ),
            }
        }
        Ok(o)
    }
}

/// Where a file comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A program built in release mode: `<target>/release/<name>`.
    Binary(&'static str),
    /// A file of the repository, relative to the workspace root.
    Repo(&'static str),
}

/// One file to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub from: Source,
    /// Its final path on the system (without the destdir).
    pub to: PathBuf,
    pub mode: u32,
    /// `/usr/sbin/ftd` in it becomes this.
    pub ftd_path: Option<String>,
    /// Left alone when it exists (configuration the administrator edits).
    pub keep_existing: bool,
}

/// Everything to install, in order.
pub fn plan(o: &Options) -> Vec<Item> {
    let ftd = o.prefix.join("sbin/ftd").display().to_string();
    let item = |from, to: &str, mode| Item {
        from,
        to: PathBuf::from(to),
        mode,
        ftd_path: None,
        keep_existing: false,
    };
    vec![
        Item {
            to: o.prefix.join("sbin/ftd"),
            ..item(Source::Binary("ftd"), "", 0o755)
        },
        Item {
            to: o.prefix.join("bin/virsh-ft"),
            ..item(Source::Binary("virsh-ft"), "", 0o755)
        },
        item(
            Source::Binary("ftvirt-hook"),
            "/etc/libvirt/hooks/qemu.d/ftvirt",
            0o755,
        ),
        item(
            Source::Repo("polkit/org.ftvirt.ftd1.policy"),
            "/usr/share/polkit-1/actions/org.ftvirt.ftd1.policy",
            0o644,
        ),
        item(
            Source::Repo("dbus/org.ftvirt.Ftd1.conf"),
            "/usr/share/dbus-1/system.d/org.ftvirt.Ftd1.conf",
            0o644,
        ),
        Item {
            ftd_path: Some(ftd.clone()),
            ..item(
                Source::Repo("dbus/org.ftvirt.Ftd1.service"),
                "/usr/share/dbus-1/system-services/org.ftvirt.Ftd1.service",
                0o644,
            )
        },
        Item {
            ftd_path: Some(ftd),
            ..item(
                Source::Repo("dbus/ftd.service"),
                "/usr/lib/systemd/system/ftd.service",
                0o644,
            )
        },
        Item {
            keep_existing: true,
            ..item(
                Source::Repo("examples/ftd.yaml"),
                "/etc/ftvirt/ftd.yaml",
                0o644,
            )
        },
    ]
}

/// `path` under `destdir`, if any.
pub fn staged(destdir: Option<&Path>, path: &Path) -> PathBuf {
    match destdir {
        Some(d) => d.join(path.strip_prefix("/").unwrap_or(path)),
        None => path.to_path_buf(),
    }
}

/// Build (unless told not to) and install; `root` is the workspace, `target` its
/// target directory.
pub fn install(
    o: &Options,
    root: &Path,
    target: &Path,
    cargo: std::process::Command,
) -> Result<()> {
    if o.destdir.is_none() {
        util::require_root()?;
    }
    if o.build {
        util::step(PHASE, "building ftd, virsh-ft and ftvirt-hook (release)");
        let mut c = cargo;
        c.args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "ftd",
            "-p",
            "virsh-ft",
            "-p",
            "ftvirt-hook",
        ]);
        util::run(&mut c)?;
    }
    for it in plan(o) {
        let from = match it.from {
            Source::Binary(name) => target.join("release").join(name),
            Source::Repo(rel) => root.join(rel),
        };
        let to = staged(o.destdir.as_deref(), &it.to);
        if it.keep_existing && to.exists() {
            util::step(PHASE, &format!("kept {} (exists)", to.display()));
            continue;
        }
        put(&from, &to, it.mode, it.ftd_path.as_deref())?;
        util::step(PHASE, &format!("{} -> {}", from.display(), to.display()));
    }
    if o.destdir.is_none() {
        util::step(
            PHASE,
            "done. Next: edit /etc/ftvirt/ftd.yaml (host:, peers:), then\n  \
             systemctl daemon-reload; systemctl reload dbus    # the unit and the bus policy\n  \
             systemctl restart libvirtd                         # libvirtd finds hooks when it starts\n  \
             systemctl enable --now ftd\n  \
             (polkit picks up the new actions by itself)",
        );
    }
    Ok(())
}

/// Copy `from` to `to` with `mode`, through a temporary file renamed into place
/// (a running program or a reading daemon never sees half a file).
fn put(from: &Path, to: &Path, mode: u32, ftd_path: Option<&str>) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let bytes = std::fs::read(from)
        .with_context(|| format!("reading {} (built? use without --no-build)", from.display()))?;
    let bytes = match ftd_path {
        Some(p) => String::from_utf8(bytes)
            .with_context(|| format!("{} is not text", from.display()))?
            .replace(FTD_PATH, p)
            .into_bytes(),
        None => bytes,
    };
    let dir = to.parent().context("installing to /")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.xtask-new",
        to.file_name().unwrap_or_default().to_string_lossy()
    ));
    std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", tmp.display()))?;
    std::fs::rename(&tmp, to).with_context(|| format!("renaming into {}", to.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str]) -> Options {
        Options::parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn options() {
        assert_eq!(
            opts(&[]),
            Options {
                prefix: "/usr".into(),
                destdir: None,
                build: true
            }
        );
        let o = opts(&[
            "--prefix",
            "/usr/local",
            "--destdir",
            "/tmp/stage",
            "--no-build",
        ]);
        assert_eq!(o.prefix, Path::new("/usr/local"));
        assert_eq!(o.destdir.as_deref(), Some(Path::new("/tmp/stage")));
        assert!(!o.build);
        for bad in [&["--prefix"][..], &["--prefix", "usr"], &["--dest", "/x"]] {
            let args: Vec<String> = bad.iter().map(|s| s.to_string()).collect();
            assert!(Options::parse(&args).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_programs_follow_the_prefix() {
        let p = plan(&opts(&["--prefix", "/usr/local"]));
        let to = |from: Source| p.iter().find(|i| i.from == from).unwrap().clone();
        assert_eq!(
            to(Source::Binary("ftd")).to,
            Path::new("/usr/local/sbin/ftd")
        );
        assert_eq!(
            to(Source::Binary("virsh-ft")).to,
            Path::new("/usr/local/bin/virsh-ft")
        );
        let bus = to(Source::Repo("dbus/org.ftvirt.Ftd1.conf"));
        assert_eq!(
            bus.to,
            Path::new("/usr/share/dbus-1/system.d/org.ftvirt.Ftd1.conf")
        );
        let unit = to(Source::Repo("dbus/ftd.service"));
        assert_eq!(unit.ftd_path.as_deref(), Some("/usr/local/sbin/ftd"));
        let conf = to(Source::Repo("examples/ftd.yaml"));
        assert!(conf.keep_existing);
        // Every repository file exists.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for i in &p {
            if let Source::Repo(rel) = i.from {
                assert!(root.join(rel).is_file(), "{rel}");
            }
        }
    }

    #[test]
    fn the_repository_files_name_ftd_where_the_rewrite_looks() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for i in plan(&opts(&[])) {
            if let (Source::Repo(rel), Some(_)) = (&i.from, &i.ftd_path) {
                let text = std::fs::read_to_string(root.join(rel)).unwrap();
                assert!(text.contains(FTD_PATH), "{rel} does not name {FTD_PATH}");
            }
        }
    }

    #[test]
    fn destdir_stages_under_another_root() {
        assert_eq!(
            staged(Some(Path::new("/tmp/s")), Path::new("/usr/sbin/ftd")),
            Path::new("/tmp/s/usr/sbin/ftd")
        );
        assert_eq!(
            staged(None, Path::new("/usr/sbin/ftd")),
            Path::new("/usr/sbin/ftd")
        );
    }
}
