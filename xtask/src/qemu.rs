//! The COLO-patched QEMU: Debian's own QEMU 7.2 source plus `qemu/*.patch`, built
//! for x86_64-softmmu only and cached outside the repository.
//!
//! Why a patched build: stock 7.2 cannot run COLO under TCG; see `qemu/README.md`
//! and the header of `qemu/colo-tcg-fix.patch`.
//!
//! Cache layout: `<cache>/qemu/<source-version>-<patch-hash>/` holds
//! `qemu-system-x86_64` and `BUILD-INFO`, nothing else. `<source-version>` is the
//! Debian source version of the installed `qemu-system-x86`, made safe as a file name
//! (`1_7.2+dfsg-7+deb12u18`). `<patch-hash>` is the first 12 hex digits of the sha256 of
//! the patches concatenated in file-name order (`cat qemu/*.patch | sha256sum`).
//! A new Debian version or a changed patch therefore leads to a new build. The source
//! and build trees (about 1.5 GB) live in a sibling `.build-*` directory that is removed
//! after a successful build.

use crate::util;
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct QemuBuild {
    /// The patched `qemu-system-x86_64` (cached by source version + patch hash).
    pub binary: PathBuf,
    /// Debian's own `/usr/bin/qemu-system-x86_64`.
    pub stock_binary: PathBuf,
    /// Debian source version, e.g. `1:7.2+dfsg-7+deb12u18`.
    pub source_version: String,
    /// sha256 of `qemu/*.patch` in application order.
    pub patch_sha256: String,
}

const PHASE: &str = "qemu";
const BINARY: &str = "qemu-system-x86_64";
const STOCK_BINARY: &str = "/usr/bin/qemu-system-x86_64";
const BUILD_INFO: &str = "BUILD-INFO";
/// Source package whose version must match the installed `qemu-system-x86`.
const SOURCE_PACKAGE: &str = "qemu";

/// `configure` flags: x86_64 only, with block replication (COLO), without the
/// front-ends and optional libraries we do not need. `--firmwarepath` is Debian's
/// own search path, so the binary finds the BIOS (seabios) and the option ROMs
/// (ipxe-qemu, qemu-system-data) without `-L`. The guests then get the same ROMs as
/// with the stock binary.
pub const CONFIGURE_FLAGS: &[&str] = &[
    "--target-list=x86_64-softmmu",
    "--enable-replication",
    "--disable-docs",
    "--disable-werror",
    "--disable-xen",
    "--disable-gtk",
    "--disable-sdl",
    "--disable-vnc",
    "--disable-spice",
    "--disable-opengl",
    "--disable-capstone",
    "--firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu",
];

/// [`CONFIGURE_FLAGS`] plus `--with-pkgversion`, which names the build in
/// `--version` and in QMP's `query-version` (`package`), e.g.
/// `7.2.22 (ftvirt 1:7.2+dfsg-7+deb12u18 patches 950f82366fd8)`, so that reports can
/// tell it from Debian's binary (`Debian 1:7.2+dfsg-7+deb12u18+b3`).
fn configure_args(build: &QemuBuild) -> Vec<String> {
    let mut v: Vec<String> = CONFIGURE_FLAGS.iter().map(|s| s.to_string()).collect();
    let short = &build.patch_sha256[..build.patch_sha256.len().min(12)];
    v.push(format!(
        "--with-pkgversion=ftvirt {} patches {short}",
        build.source_version
    ));
    v
}

/// The `configure:` line of a BUILD-INFO file.
fn recorded_configure(info: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix("configure: "))
        .map(str::to_string)
}

/// Temporary deb-src list for `apt-get source` (bookworm, its point-release updates
/// and security). It lives in the build directory and is passed to apt with
/// `-o Dir::Etc::sourcelist=`, so the system's apt sources are never changed.
const DEB_SRC_LIST: &str = "\
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

/// The patched QEMU for the installed Debian QEMU version, built unless cached.
pub fn build_patched_qemu(root: &Path, cache: &Path) -> Result<QemuBuild> {
    let source_version = installed_source_version()?;
    let patch_dir = root.join("qemu");
    let patches = patch_files(&patch_dir)?;
    if patches.is_empty() {
        bail!(
            "no *.patch in {}: the COLO fix is missing from the checkout",
            patch_dir.display()
        );
    }
    let patch_sha256 = patch_sha256(&patches)?;
    let dir = cache
        .join("qemu")
        .join(cache_dir_name(&source_version, &patch_sha256));
    let build = QemuBuild {
        binary: dir.join(BINARY),
        stock_binary: PathBuf::from(STOCK_BINARY),
        source_version,
        patch_sha256,
    };

    let configure = configure_args(&build);
    if let Some(v) = version_line(&build.binary) {
        let recorded = fs::read_to_string(build.binary.with_file_name(BUILD_INFO))
            .ok()
            .and_then(|info| recorded_configure(&info));
        if recorded.as_deref() == Some(configure.join(" ").as_str()) {
            util::step(PHASE, &format!("cached: {} ({v})", build.binary.display()));
            return Ok(build);
        }
        util::step(
            PHASE,
            "the cached build used other configure flags; rebuilding",
        );
    }

    let names: Vec<String> = patches.iter().map(|p| file_name(p)).collect();
    util::step(
        PHASE,
        &format!(
            "building {BINARY} from Debian qemu {} + {}; this takes about 3 minutes",
            build.source_version,
            names.join(", ")
        ),
    );
    let t0 = Instant::now();
    build_into(&dir, &build, &patches, &configure)?;
    util::step(
        PHASE,
        &format!(
            "built {} in {}",
            build.binary.display(),
            fmt_duration(t0.elapsed())
        ),
    );
    Ok(build)
}

/// `${source:Version}` of the installed `qemu-system-x86`, e.g. `1:7.2+dfsg-7+deb12u18`.
fn installed_source_version() -> Result<String> {
    let v = util::output(Command::new("dpkg-query").args([
        "-W",
        "-f=${source:Version}",
        "qemu-system-x86",
    ]))
    .context(
        "qemu-system-x86 is not installed; the package step of `cargo xtask setup` installs it",
    )?;
    if v.is_empty() {
        bail!("dpkg-query reports no source version for qemu-system-x86; reinstall it");
    }
    Ok(v)
}

/// The `*.patch` files of `dir`, sorted by file name (= application order).
fn patch_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    for e in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e?.path();
        if p.is_file() && p.extension().is_some_and(|x| x == "patch") {
            v.push(p);
        }
    }
    v.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(v)
}

/// sha256 (lowercase hex) of the files' contents, concatenated in the given order.
fn patch_sha256(files: &[PathBuf]) -> Result<String> {
    let mut h = Sha256::new();
    for f in files {
        h.update(fs::read(f).with_context(|| format!("reading {}", f.display()))?);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// `<sanitised source version>-<first 12 hex digits of the patch hash>`.
fn cache_dir_name(source_version: &str, patch_sha256: &str) -> String {
    let short = &patch_sha256[..patch_sha256.len().min(12)];
    format!("{}-{short}", sanitise(source_version))
}

/// A Debian version as a file name: `:` (the epoch) and anything unusual become `_`.
fn sanitise(version: &str) -> String {
    version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".+-~_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// First line of `bin --version` when `bin` exists and runs.
fn version_line(bin: &Path) -> Option<String> {
    if !bin.is_file() {
        return None;
    }
    let out = util::output(Command::new(bin).arg("--version")).ok()?;
    out.lines().next().map(str::to_string)
}

/// Fetch, patch, configure, compile, check, then install into `dir` atomically.
/// The work tree is removed on success and kept (with its log) on failure.
fn build_into(
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
        "ftvirt: COLO-patched QEMU, built by `cargo xtask setup` (xtask/src/qemu.rs)\n\
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

/// Deletes a file when dropped (the temporary deb-src list, also on errors).
#[derive(Debug)]
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// `apt-get update` restricted to a temporary deb-src list, then `apt-get source`.
fn fetch_source(work: &Path, log: &Path, version: &str) -> Result<()> {
    let list = work.join("deb-src.sources");
    let _remove = RemoveOnDrop(list.clone());
    fs::write(&list, DEB_SRC_LIST).with_context(|| format!("writing {}", list.display()))?;
    let apt_opts = [
        "-o".to_string(),
        format!("Dir::Etc::sourcelist={}", list.display()),
        "-o".to_string(),
        "Dir::Etc::sourceparts=-".to_string(),
        // Keep the other lists: this update only knows about deb-src.
        "-o".to_string(),
        "APT::Get::List-Cleanup=0".to_string(),
        // Downloads go to a root-owned directory; do not warn about it.
        "-o".to_string(),
        "APT::Sandbox::User=root".to_string(),
    ];
    let mut update = Command::new("apt-get");
    update.args(&apt_opts).args(["-q", "update"]);
    logged(&mut update, log, "apt-get update (deb-src)").context(
        "could not fetch the Debian source index; check network access to deb.debian.org",
    )?;

    let mut source = Command::new("apt-get");
    source
        .current_dir(work)
        .args(&apt_opts)
        .args(["-q", "source", "--only-source"])
        .arg(format!("{SOURCE_PACKAGE}={version}"))
        .env("DEBIAN_FRONTEND", "noninteractive");
    logged(&mut source, log, "apt-get source").with_context(|| {
        format!(
            "could not fetch source {SOURCE_PACKAGE}={version}: if Debian no longer carries it, \
             upgrade qemu-system-x86 (re-run the package step) and re-run `cargo xtask setup`"
        )
    })?;
    Ok(())
}

/// The unpacked source tree (`qemu-7.2+dfsg/`).
fn find_source_dir(work: &Path) -> Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(work)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && file_name(p).starts_with("qemu-"))
        .collect();
    dirs.sort();
    match dirs.as_slice() {
        [d] => Ok(d.clone()),
        _ => bail!(
            "expected one unpacked qemu-* tree in {}, found {dirs:?}",
            work.display()
        ),
    }
}

/// `patch -p1`, strictly: no fuzz (offsets are fine and reported), no reversed hunks.
fn apply_patch(src: &Path, patch: &Path, version: &str) -> Result<()> {
    let name = file_name(patch);
    let out = Command::new("patch")
        .args(["-p1", "--forward", "--batch", "--fuzz=0", "-i"])
        .arg(patch)
        .current_dir(src)
        .output()
        .context("could not run patch (package `patch`)")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        util::step(PHASE, &format!("{name}: {line}"));
    }
    if !out.status.success() {
        bail!(
            "{} does not apply to Debian qemu {version} (see patch's output above); refresh it \
             against that source (`apt-get source qemu={version}`)",
            patch.display()
        );
    }
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

/// Checks on the freshly built binary, at its final location: it runs, finds the
/// firmware through `--firmwarepath`, and has the COLO pieces. Returns the
/// `--version` line.
fn verify(bin: &Path) -> Result<String> {
    let version =
        version_line(bin).with_context(|| format!("{} --version failed", bin.display()))?;

    // A `pc` machine with a virtio-net NIC loads bios-256k.bin (seabios) and
    // efi-virtio.rom (ipxe-qemu) while it is created. QEMU exits with "could not load
    // PC BIOS" / "failed to find romfile" when one is missing, and answers QMP
    // commands only once the machine exists. So a clean `quit` proves both were found.
    let mut child = Command::new(bin)
        .args([
            "-accel",
            "tcg",
            "-machine",
            "pc",
            "-m",
            "128",
            "-display",
            "none",
            "-nodefaults",
            "-device",
            "virtio-net-pci",
            "-S",
            "-qmp",
            "stdio",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start {}", bin.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // Write errors mean QEMU already exited; its status tells why.
        let _ = stdin.write_all(b"{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"quit\"}\n");
    }
    let (ok, stdout, stderr) = wait_with_timeout(child, Duration::from_secs(60))?;
    let firmware_error = ["could not load", "failed to find romfile", "could not find"]
        .iter()
        .any(|s| stderr.contains(s));
    if !ok || firmware_error || !stdout.contains("\"return\"") {
        bail!(
            "{} cannot start a pc machine with virtio-net (firmware search path?):\n{}{}",
            bin.display(),
            stderr.trim(),
            if stderr.trim().is_empty() {
                stdout.trim()
            } else {
                ""
            }
        );
    }

    let objects = output_all(Command::new(bin).args(["-object", "help"]))?;
    for o in [
        "colo-compare",
        "filter-mirror",
        "filter-redirector",
        "filter-rewriter",
    ] {
        if !objects.split_whitespace().any(|w| w == o) {
            bail!("{} has no object type {o}", bin.display());
        }
    }
    let formats = output_all(Command::new(bin).args(["-drive", "format=help"]))?;
    for f in ["replication", "quorum", "nbd", "qcow2"] {
        if !formats.split_whitespace().any(|w| w == f) {
            bail!(
                "{} has no block driver {f} (configure --enable-replication?)",
                bin.display()
            );
        }
    }
    util::step(
        PHASE,
        "checked: boots a pc machine with virtio-net (firmware found), has colo-compare, replication, quorum",
    );
    Ok(version)
}

/// Wait for `child` at most `limit`; kill it when it takes longer. Returns
/// (exited successfully, stdout, stderr).
fn wait_with_timeout(mut child: Child, limit: Duration) -> Result<(bool, String, String)> {
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    match status {
        Some(st) => Ok((st.success(), out, err)),
        None => bail!("timed out after {limit:?}; stdout: {out} stderr: {err}"),
    }
}

/// Run a command; its stdout and stderr together (QEMU prints some help on either).
fn output_all(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("could not start {cmd:?}"))?;
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("{cmd:?} failed with {}: {}", out.status, text.trim());
    }
    Ok(text)
}

/// Run with stdout and stderr appended to `log`; on failure, the log's tail.
fn logged(cmd: &mut Command, log: &Path, what: &str) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    writeln!(f, "\n$ {cmd:?}")?;
    cmd.stdout(f.try_clone()?).stderr(f);
    let st = cmd
        .status()
        .with_context(|| format!("could not start {what} ({cmd:?})"))?;
    if !st.success() {
        bail!(
            "{what} failed with {st}; last lines of {}:\n{}",
            log.display(),
            tail(log, 30)
        );
    }
    Ok(())
}

fn tail(path: &Path, n: usize) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
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

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh, empty directory under the system temp dir.
    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("xtask-qemu-test-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn cache_dir_name_from_version_and_hash() {
        let hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(
            cache_dir_name("1:7.2+dfsg-7+deb12u18", hash),
            "1_7.2+dfsg-7+deb12u18-0123456789ab"
        );
        assert_eq!(
            cache_dir_name("1:10.0.2+ds-2~bpo12+1", hash),
            "1_10.0.2+ds-2~bpo12+1-0123456789ab"
        );
        assert_eq!(sanitise("a/b c:d"), "a_b_c_d");
    }

    #[test]
    fn patch_hash_is_over_sorted_patch_files_only() {
        let d = scratch("hash");
        // Written out of order; only *.patch counts, in file-name order.
        fs::write(d.join("2-second.patch"), "bc").unwrap();
        fs::write(d.join("1-first.patch"), "a").unwrap();
        fs::write(d.join("README.md"), "not a patch").unwrap();
        fs::create_dir(d.join("dir.patch")).unwrap();
        let files = patch_files(&d).unwrap();
        let names: Vec<String> = files.iter().map(|p| file_name(p)).collect();
        assert_eq!(names, ["1-first.patch", "2-second.patch"]);
        // sha256("abc"), the FIPS 180-2 test vector.
        assert_eq!(
            patch_sha256(&files).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // Renaming to swap the order changes the hash.
        fs::rename(d.join("1-first.patch"), d.join("3-first.patch")).unwrap();
        let swapped = patch_sha256(&patch_files(&d).unwrap()).unwrap();
        assert_ne!(
            swapped,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn project_patch_is_present_and_touches_colo() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let files = patch_files(&root.join("qemu")).unwrap();
        assert!(!files.is_empty());
        let text = fs::read_to_string(&files[0]).unwrap();
        assert!(text.contains("+++ b/migration/colo.c"));
        assert!(text.contains("+    tb_flush(first_cpu);"));
        assert!(text.contains("+    qemu_mutex_lock_iothread();"));
    }

    #[test]
    fn configure_args_name_the_build_and_are_recorded() {
        let b = QemuBuild {
            binary: PathBuf::from("/x/qemu-system-x86_64"),
            stock_binary: PathBuf::from(STOCK_BINARY),
            source_version: "1:7.2+dfsg-7+deb12u18".into(),
            patch_sha256: "950f82366fd8f1735434a3a41fab06138eb6443f8de4bf22b900e7cd5def5fc3".into(),
        };
        let args = configure_args(&b);
        assert_eq!(&args[..CONFIGURE_FLAGS.len()], CONFIGURE_FLAGS);
        assert_eq!(
            args.last().unwrap(),
            "--with-pkgversion=ftvirt 1:7.2+dfsg-7+deb12u18 patches 950f82366fd8"
        );
        let info = format!(
            "qemu-version: x\nconfigure: {}\nbuilt-at: y\n",
            args.join(" ")
        );
        assert_eq!(recorded_configure(&info), Some(args.join(" ")));
        assert_eq!(recorded_configure("qemu-version: x\n"), None);
    }

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
    fn durations() {
        assert_eq!(fmt_duration(Duration::from_secs(172)), "2m 52s");
        assert_eq!(fmt_duration(Duration::from_millis(4200)), "4.2s");
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
