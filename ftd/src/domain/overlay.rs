//! The paths ftd builds under `colo.overlay-dir` from a domain name
//! (`<overlay-dir>/<name>/secondary`, `<overlay-dir>/<name>/disk`), each checked
//! to stay there: the name must pass [`validate::domain_name`] (one plain path
//! component: a peer's `../../x` or absolute path never gets here), and where
//! `<overlay-dir>/<name>` exists it must resolve inside the overlay directory
//! (a symbolic link leading elsewhere is refused). Every caller that creates,
//! writes or removes files there goes through [`domain_dir`].

use crate::colo::validate;
use std::path::{Component, Path, PathBuf};

/// `<overlay>/<name>/<sub>`, or why it would not stay under `overlay`.
pub(crate) fn domain_dir(overlay: &Path, name: &str, sub: &str) -> Result<PathBuf, String> {
    validate::domain_name(name).map_err(|e| e.to_string())?;
    let top = overlay.join(name);
    let one_component = matches!(
        Path::new(name).components().collect::<Vec<_>>().as_slice(),
        [Component::Normal(_)]
    );
    if !one_component || top.parent() != Some(overlay) {
        return Err(format!(
            "domain name {} does not make one directory under {}",
            validate::shown(name),
            overlay.display()
        ));
    }
    if let (Ok(real), Ok(base)) = (std::fs::canonicalize(&top), std::fs::canonicalize(overlay)) {
        if !real.starts_with(&base) {
            return Err(format!(
                "{} leads to {}, outside the overlay directory {}: remove it",
                top.display(),
                real.display(),
                base.display()
            ));
        }
    }
    Ok(top.join(sub))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_name_makes_one_directory() {
        let t = tempfile::tempdir().unwrap();
        let p = domain_dir(t.path(), "web", "secondary").unwrap();
        assert_eq!(p, t.path().join("web/secondary"));
    }

    #[test]
    fn names_that_leave_the_overlay_directory_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let abs = t.path().join("web").display().to_string();
        for n in ["../../x", "..", ".", "", "a/b", abs.as_str(), "x\ny"] {
            assert!(domain_dir(t.path(), n, "secondary").is_err(), "{n:?}");
        }
    }

    #[test]
    fn a_link_leading_out_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(out.path(), t.path().join("web")).unwrap();
        let e = domain_dir(t.path(), "web", "secondary").unwrap_err();
        assert!(e.contains("outside the overlay directory"), "{e}");
    }
}
