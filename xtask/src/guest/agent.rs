//! The guest agent (`tests/guest-agent`), built with `cargo build` as a static
//! x86_64 binary in its own target directory (`target/guest`), so the main build
//! cache keeps its flags; and the ELF check that a binary needs no `ld.so` (the
//! initramfs has no libc).

use super::PHASE;
use crate::util::{run, step};
use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

pub(super) const AGENT_PACKAGE: &str = "ftvirt-guest-agent";
const AGENT_TARGET: &str = "x86_64-unknown-linux-gnu";

/// `cargo build` the agent as a static binary and return its path.
pub(super) fn build_agent(root: &Path) -> Result<PathBuf> {
    let target_dir = root.join("target").join("guest");
    step(
        PHASE,
        &format!(
            "building {AGENT_PACKAGE} (static, {AGENT_TARGET}) in {}",
            target_dir.display()
        ),
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            AGENT_PACKAGE,
            "--target",
            AGENT_TARGET,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        // RUSTFLAGS rather than config: it applies to the target only (not to build
        // scripts, since --target is given), and this tree alone. The encoded form
        // would win over it, so drop one inherited from an outer cargo.
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS"))?;
    let bin = target_dir
        .join(AGENT_TARGET)
        .join("release")
        .join(AGENT_PACKAGE);
    let bytes = fs::read(&bin).with_context(|| format!("reading {}", bin.display()))?;
    if !elf_is_static(&bytes).with_context(|| format!("checking {}", bin.display()))? {
        bail!(
            "{} is not statically linked (it has a PT_INTERP header)",
            bin.display()
        );
    }
    step(
        PHASE,
        &format!(
            "agent {} ({} KiB, static)",
            bin.display(),
            bytes.len() / 1024
        ),
    );
    Ok(bin)
}

/// True if an x86_64 ELF executable has no program interpreter (`PT_INTERP`), i.e.
/// the kernel runs it without `ld.so` (static or static-pie).
pub(super) fn elf_is_static(elf: &[u8]) -> Result<bool> {
    const PT_INTERP: u32 = 3;
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" {
        bail!("not an ELF file");
    }
    if elf[4] != 2 || elf[5] != 1 {
        bail!("not a 64-bit little-endian ELF file");
    }
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[32..40].try_into().expect("8 bytes")) as usize;
    let (phentsize, phnum) = (u16_at(54), u16_at(56));
    for i in 0..phnum {
        let off = phoff + i * phentsize;
        let Some(p_type) = elf.get(off..off + 4) else {
            bail!("truncated program header table");
        };
        if u32::from_le_bytes(p_type.try_into().expect("4 bytes")) == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_detection() {
        // The test binary itself is dynamically linked (default gnu target).
        let me = fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(!elf_is_static(&me).unwrap());
        assert!(elf_is_static(b"not an elf").is_err());
        // A minimal ELF64 header with no program headers: static.
        let mut hdr = vec![0u8; 64];
        hdr[..4].copy_from_slice(b"\x7fELF");
        hdr[4] = 2;
        hdr[5] = 1;
        assert!(elf_is_static(&hdr).unwrap());
    }
}
