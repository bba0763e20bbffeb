//! Whether this process may boot a lab, and what a lab test does when it may not.
//!
//! A lab needs root (namespaces, bridges, libvirtd) and the artifacts of
//! `cargo xtask setup`. [`Lab::start`](crate::Lab::start) checks both before it
//! touches anything and fails at once with [`LabError::NotALabHost`]. Lab tests
//! start through [`Lab::for_test`](crate::Lab::for_test) (or call
//! [`skip_lab_test`] first when they start a lab another way): without root or
//! the artifacts they fail at once with one clear message, unless
//! `FTVIRT_SKIP_LAB=1` asks to skip them, in which case they say so and return.

use crate::artifacts::Artifacts;
use crate::error::{LabError, Result};

/// The environment variable that skips lab tests.
pub const SKIP_VAR: &str = "FTVIRT_SKIP_LAB";

/// What a lab test says when it cannot run.
pub const NEEDS: &str = "this test boots a lab and needs root and `cargo xtask setup`; \
                         set FTVIRT_SKIP_LAB=1 to skip lab tests";

/// `Ok` when this process runs as root and the set-up's artifacts are there.
pub fn check_host() -> Result<()> {
    let uid = nix::unistd::geteuid();
    if !uid.is_root() {
        return Err(LabError::NotALabHost(format!(
            "this process runs as uid {uid}, not as root"
        )));
    }
    Artifacts::load()
        .map(drop)
        .map_err(|e| LabError::NotALabHost(e.to_string()))
}

/// Is `FTVIRT_SKIP_LAB` set to skip (anything but empty or `0`)?
fn skip_asked() -> bool {
    std::env::var_os(SKIP_VAR).is_some_and(|v| !v.is_empty() && v != "0")
}

/// The first call of a lab test: `true` (after saying so on stderr) when
/// `FTVIRT_SKIP_LAB=1` asks to skip lab tests, so the test returns; `false` when
/// this process can boot a lab. Otherwise it panics at once with [`NEEDS`] and
/// what is missing.
pub fn skip_lab_test() -> bool {
    let test = std::thread::current()
        .name()
        .unwrap_or("this lab test")
        .to_string();
    if skip_asked() {
        eprintln!("{test}: skipped ({SKIP_VAR} is set and this test boots a lab)");
        return true;
    }
    match check_host() {
        Ok(()) => false,
        Err(LabError::NotALabHost(why)) => panic!("{NEEDS} ({why})"),
        Err(e) => panic!("{NEEDS} ({e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_says_what_is_needed_and_how_to_skip() {
        assert!(NEEDS.contains("root") && NEEDS.contains("cargo xtask setup"));
        assert!(NEEDS.contains(&format!("{SKIP_VAR}=1")));
    }
}
