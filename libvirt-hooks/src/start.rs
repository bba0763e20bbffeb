//! The hook's `prepare` of a marked domain: may this host start its copy? ftd
//! answers from the witness's record ("ok", or "refused: WHY"). This is the one
//! place where the hook fails libvirt's operation: a stale copy (its host was the
//! primary, the peer took over meanwhile) must never start next to the survivor,
//! whether an admin's `virsh start` or libvirt's autostart starts it.
//!
//! With ftd not answering (it starts after libvirtd, so at boot libvirt's
//! autostart runs before it), the hook cannot ask the record. It then reads ftd's
//! configuration itself. With the witness configured (`arbiter: kind: etcd`) it
//! refuses the start, saying to start it again once ftd runs. Without a witness,
//! or with no ftd configuration on this host, it lets the start go on, as before.

use crate::notify::NotifyError;
use std::path::{Path, PathBuf};

/// ftd's configuration, unless `$FTVIRT_CONFIG` names another (for tests:
/// libvirtd passes its hooks a fixed environment without it).
pub const DEFAULT_CONFIG: &str = "/etc/ftvirt/ftd.yaml";
pub const CONFIG_ENV: &str = "FTVIRT_CONFIG";

/// The configuration file the hook reads when ftd does not answer.
pub fn config_path() -> PathBuf {
    match std::env::var_os(CONFIG_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_CONFIG),
    }
}

/// What the hook does about a `prepare`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Let the start go on; log this line.
    Start(String),
    /// Fail the start (exit 1) with this line, which libvirt shows.
    Refuse(String),
}

/// Does the configuration at `path` use the witness? `Ok(false)` when there is
/// no such file; an unreadable or unparsable one is an error (ftd would not
/// start with it either).
pub fn uses_witness(path: &Path) -> Result<bool, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let kind = doc
        .get("arbiter")
        .and_then(|a| a.get("kind"))
        .and_then(|k| k.as_str());
    Ok(kind == Some("etcd"))
}

/// The verdict on `domain`'s start from ftd's answer `r`; `witness` is asked
/// only when ftd did not answer.
pub fn verdict(
    domain: &str,
    r: &Result<String, NotifyError>,
    witness: impl FnOnce() -> Result<bool, String>,
) -> Verdict {
    match r {
        Ok(a) => match a.strip_prefix("refused: ") {
            Some(why) => Verdict::Refuse(format!(
                "ftvirt-hook: domain {domain} must not start on this host: {why}"
            )),
            None => Verdict::Start(format!(
                "ftvirt-hook: domain {domain} prepare: ftd lets it start ({a})"
            )),
        },
        Err(e) => match witness() {
            Ok(false) => Verdict::Start(format!(
                "ftvirt-hook: domain {domain} prepare: ftd not reachable and no witness \
                 configured; starting it ({e})"
            )),
            Ok(true) => Verdict::Refuse(format!(
                "ftvirt-hook: domain {domain} must not start yet: it is protected with the \
                 witness, and ftd, which checks the witness's record, does not answer ({e}). \
                 Start ftd (systemctl start ftd): it starts a domain set to autostart \
                 itself when this host holds its record; else start the domain again"
            )),
            Err(c) => Verdict::Refuse(format!(
                "ftvirt-hook: domain {domain} must not start yet: ftd does not answer ({e}) \
                 and its configuration cannot be read to tell whether it uses the witness \
                 ({c}); fix it and start ftd, then start the domain again"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ftds_answer_decides() {
        let never = || -> Result<bool, String> { panic!("ftd answered") };
        assert_eq!(
            verdict("g", &Ok("ok".into()), never),
            Verdict::Start("ftvirt-hook: domain g prepare: ftd lets it start (ok)".into())
        );
        match verdict("g", &Ok("refused: a holds g".into()), never) {
            Verdict::Refuse(l) => {
                assert_eq!(
                    l,
                    "ftvirt-hook: domain g must not start on this host: a holds g"
                )
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn without_ftd_the_configuration_decides() {
        let down = Err(NotifyError::Unreachable("no bus".into()));
        assert!(matches!(
            verdict("g", &down, || Ok(false)),
            Verdict::Start(_)
        ));
        match verdict("g", &down, || Ok(true)) {
            Verdict::Refuse(l) => assert!(l.contains("Start ftd"), "{l}"),
            v => panic!("{v:?}"),
        }
        match verdict("g", &down, || Err("bad".into())) {
            Verdict::Refuse(l) => assert!(l.contains("(bad)"), "{l}"),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn the_configuration_is_read_for_its_arbiter() {
        let d = std::env::temp_dir().join(format!("ftvirt-hook-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("ftd.yaml");
        assert_eq!(uses_witness(&d.join("none.yaml")), Ok(false));
        std::fs::write(&f, "host: {name: a}\narbiter:\n  kind: etcd\n").unwrap();
        assert_eq!(uses_witness(&f), Ok(true));
        std::fs::write(&f, "arbiter:\n  kind: corosync\n").unwrap();
        assert_eq!(uses_witness(&f), Ok(false));
        std::fs::write(&f, "host: [unclosed\n").unwrap();
        assert!(uses_witness(&f).unwrap_err().contains("ftd.yaml"));
        let _ = std::fs::remove_dir_all(&d);
    }
}
