//! Building into the cache: a per-process work tree next to the cache entry (stale
//! ones from dead processes are removed), fetch and patch ([`super::source`]),
//! `configure`, `ninja` with progress lines, the checks ([`super::verify`]), then
//! `BUILD-INFO` and the binary renamed into place (the binary last: its presence
//! marks the entry complete).

use super::process::{logged, tail};
use super::source::{apply_patch, fetch_source, find_source_dir};
use super::verify::verify;
use super::{file_name, fmt_duration, QemuBuild, BINARY, BUILD_INFO, PHASE, SOURCE_PACKAGE};
use crate::util;
use anyhow::{bail, Context, Result};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Fetch, patch, configure, compile, check, then install into `dir` atomically.
/// The work tree is removed on success and kept (with its log) on failure.
pub(super) fn build_into(
    dir: &Path,
    build: &QemuBuild,
    patches: &[PathBuf],
    configure: &[String],
) -> Result<()> {
    let parent = dir.parent().context("cache dir has no parent")?;
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    remove_stale_work_dirs(parent);
    // One work dir per process: two concurrent `cargo xtask setup` runs do not share
    // (and delete) each other's trees; the final rename makes the result consistent.
    let work = parent.join(format!(".build-{}-{}", file_name(dir), std::process::id()));
    if work.exists() {
        fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let log = work.join("build.log");

    match build_in(&work, &log, dir, build, patches, configure) {
        Ok(()) => {
            fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
            util::step(
                PHASE,
                &format!("removed the source and build tree {}", work.display()),
            );
            Ok(())
        }
        Err(e) => Err(e.context(format!(
            "building the patched QEMU failed; the tree and its log {} are kept for \
             inspection (the next run deletes them). Fix the cause and re-run `cargo xtask setup`",
            log.display()
        ))),
    }
}

fn build_in(
    work: &Path,
    log: &Path,
    dir: &Path,
    build: &QemuBuild,
    patches: &[PathBuf],
    configure_args: &[String],
) -> Result<()> {
    let t0 = Instant::now();
    let version = &build.source_version;

    util::step(
        PHASE,
        &format!("fetching source {SOURCE_PACKAGE}={version} (apt-get source)"),
    );
    fetch_source(work, log, version)?;
    let src = find_source_dir(work)?;

    for p in patches {
        apply_patch(&src, p, version)?;
    }

    let bdir = src.join("build");
    fs::create_dir_all(&bdir)?;
    util::step(PHASE, &format!("configure {}", configure_args.join(" ")));
    let mut configure = Command::new("../configure");
    configure
        .current_dir(&bdir)
        .args(configure_args)
        .env("PATH", system_path());
    logged(&mut configure, log, "configure")?;

    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get()) + 1;
    util::step(
        PHASE,
        &format!("compiling {BINARY} (ninja -j{jobs}); log {}", log.display()),
    );
    ninja(&bdir, jobs, log)?;

    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(".{BINARY}.tmp"));
    fs::copy(bdir.join(BINARY), &tmp)
        .with_context(|| format!("copying {BINARY} to {}", tmp.display()))?;
    // Checked at its final directory (not in the build tree, where QEMU would also
    // find the firmware in the tree's own pc-bios/).
    let qemu_version = match verify(&tmp) {
        Ok(v) => v,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };

    let elapsed = t0.elapsed();
    let built_at = util::output(Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"]))
        .unwrap_or_else(|_| "unknown".into());
    let names: Vec<String> = patches.iter().map(|p| file_name(p)).collect();
    let info = format!(
        "ftvirt: COLO-patched QEMU, built by `cargo xtask setup` (xtask/src/qemu/)\n\
         qemu-version: {qemu_version}\n\
         debian-source-version: {version}\n\
         patches: {}\n\
         patch-sha256: {}\n\
         configure: {}\n\
         built-at: {built_at}\n\
         build-seconds: {:.0}\n",
        names.join(" "),
        build.patch_sha256,
        configure_args.join(" "),
        elapsed.as_secs_f64()
    );
    let info_path = dir.join(BUILD_INFO);
    let info_tmp = dir.join(format!(".{BUILD_INFO}.tmp"));
    fs::write(&info_tmp, info).with_context(|| format!("writing {}", info_tmp.display()))?;
    fs::rename(&info_tmp, &info_path)?;
    // Last: the binary's presence is what marks the cache entry complete.
    fs::rename(&tmp, &build.binary)
        .with_context(|| format!("renaming {} to {}", tmp.display(), build.binary.display()))?;
    util::step(
        PHASE,
        &format!(
            "{qemu_version}; fetch + patch + build took {}",
            fmt_duration(elapsed)
        ),
    );
    Ok(())
}

/// `ninja -j<jobs> qemu-system-x86_64`: full output to the log, a progress line
/// on stderr every 10 %.
fn ninja(bdir: &Path, jobs: usize, log: &Path) -> Result<()> {
    let mut logf = fs::OpenOptions::new().create(true).append(true).open(log)?;
    writeln!(logf, "\n$ ninja -j{jobs} {BINARY}")?;
    let mut child = Command::new("ninja")
        .arg(format!("-j{jobs}"))
        .arg(BINARY)
        .current_dir(bdir)
        .env("PATH", system_path())
        .stdout(Stdio::piped())
        .stderr(logf.try_clone()?)
        .spawn()
        .context("could not start ninja (package ninja-build)")?;
    let t0 = Instant::now();
    let mut next_pct = 10;
    let stdout = child.stdout.take().context("ninja stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        writeln!(logf, "{line}")?;
        if let Some((n, total)) = ninja_progress(&line) {
            let pct = n * 100 / total.max(1);
            if pct >= next_pct {
                util::step(
                    PHASE,
                    &format!(
                        "compiling: {n}/{total} ({pct}%), {}",
                        fmt_duration(t0.elapsed())
                    ),
                );
                next_pct = (pct / 10 + 1) * 10;
            }
        }
    }
    let st = child.wait()?;
    if !st.success() {
        bail!(
            "ninja failed with {st}; last lines of {}:\n{}",
            log.display(),
            tail(log, 30)
        );
    }
    Ok(())
}

/// `[12/2400] Compiling ...` -> (12, 2400).
fn ninja_progress(line: &str) -> Option<(usize, usize)> {
    let rest = line.strip_prefix('[')?;
    let (counts, _) = rest.split_once(']')?;
    let (n, total) = counts.split_once('/')?;
    Some((n.trim().parse().ok()?, total.trim().parse().ok()?))
}

/// Debian's tools first: the build must use /usr/bin/python3 and /usr/bin/meson,
/// not a python from pyenv or /usr/local that lacks QEMU's build modules.
fn system_path() -> String {
    let rest = std::env::var("PATH").unwrap_or_default();
    format!("/usr/sbin:/usr/bin:/sbin:/bin:{rest}")
}

/// Work trees of builds whose process is gone (killed or crashed).
fn remove_stale_work_dirs(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let Some(pid) = work_dir_pid(&e.file_name().to_string_lossy()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            util::step(
                PHASE,
                &format!("removing stale build tree {}", e.path().display()),
            );
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// The pid in a work dir name `.build-<cache dir name>-<pid>`.
fn work_dir_pid(name: &str) -> Option<u32> {
    name.strip_prefix(".build-")?
        .rsplit('-')
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ninja_progress_lines() {
        assert_eq!(
            ninja_progress("[12/2400] Compiling C object x.o"),
            Some((12, 2400))
        );
        assert_eq!(ninja_progress("FAILED: x.o"), None);
        assert_eq!(ninja_progress("[abc] x"), None);
    }

    #[test]
    fn stale_work_dir_pid_is_the_last_dash_field() {
        // The dir name contains dashes from the version; the pid is the last field.
        assert_eq!(
            work_dir_pid(".build-1_7.2+dfsg-7+deb12u18-0123456789ab-4242"),
            Some(4242)
        );
        assert_eq!(work_dir_pid("1_7.2+dfsg-7+deb12u18-0123456789ab"), None);
        assert_eq!(work_dir_pid(".build-x-notapid"), None);
    }
}
