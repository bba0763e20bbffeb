//! A real polkitd on the host's system bus.
//!
//! polkitd reads actions only from `/usr/share/polkit-1/actions` and rules only
//! from `/etc/polkit-1/rules.d` and `/usr/share/polkit-1/rules.d`, so the host's
//! private mount namespace gets its own copies:
//!
//! | host dir         | mounted on                    | holds                                    |
//! |------------------|-------------------------------|------------------------------------------|
//! | `polkit/actions` | `/usr/share/polkit-1/actions` | the machine's actions + ftd's, compiled in from `polkit/org.ftvirt.ftd1.policy` |
//! | `polkit/rules.d` | `/etc/polkit-1/rules.d`       | this host's rules ([`Host::add_polkit_rule`]); empty at first |
//!
//! `/usr/share/polkit-1/rules.d` stays the machine's (Debian's defaults, such as
//! who counts as an administrator). polkitd starts as root and drops to its own
//! user by itself; its log (it logs every rules reload) is `log/polkitd.log`.

use super::{mkdir, write, Host};
use crate::error::{LabError, Result};
use crate::wait::{wait_until, Look};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// ftd's polkit actions, as installed in `/usr/share/polkit-1/actions/`.
pub const FTD_ACTIONS: &str = include_str!("../../../../polkit/org.ftvirt.ftd1.policy");
/// The machine's polkit daemon (package polkitd).
pub const POLKITD: &str = "/usr/lib/polkit-1/polkitd";
/// polkit's name on the bus.
pub const POLKIT_NAME: &str = "org.freedesktop.PolicyKit1";
const ACTIONS_DIR: &str = "/usr/share/polkit-1/actions";
const RULES_DIR: &str = "/etc/polkit-1/rules.d";
/// The line polkitd logs after each (re)load of the rules.
const RULES_LOADED: &str = "Finished loading, compiling and executing";

impl Host {
    /// This host's private polkit rules directory (`/etc/polkit-1/rules.d` inside).
    pub fn polkit_rules_dir(&self) -> PathBuf {
        self.dir.join("polkit/rules.d")
    }

    /// polkitd's log.
    pub fn polkit_log(&self) -> PathBuf {
        self.log_dir().join("polkitd.log")
    }

    /// Start polkitd on the host's system bus ([`Host::start_dbus`] first); returns
    /// once it owns `org.freedesktop.PolicyKit1`.
    pub fn start_polkit(&mut self) -> Result<Duration> {
        let t0 = Instant::now();
        if self.polkit.is_some() {
            return Err(LabError::Usage(format!(
                "host {}: polkitd is already running",
                self.name
            )));
        }
        if !self.dir.join("dbus/system_bus_socket").exists() {
            return Err(LabError::Usage(format!(
                "host {}: start its system bus (start_dbus) before polkitd",
                self.name
            )));
        }
        self.prepare_polkit_dirs()?;
        let (actions, rules) = (self.dir.join("polkit/actions"), self.polkit_rules_dir());
        // Mounted once per boot: a restarted polkitd finds them in place.
        self.exec(&[
            "sh",
            "-c",
            &format!(
                "set -e\n\
                 mountpoint -q {ACTIONS_DIR} || mount --bind '{}' {ACTIONS_DIR}\n\
                 mountpoint -q {RULES_DIR} || mount --bind '{}' {RULES_DIR}\n",
                actions.display(),
                rules.display()
            ),
        ])?;
        let log = self.polkit_log();
        // Without --no-debug: polkitd then logs each rules reload, which
        // add_polkit_rule waits for.
        let mut child = self.spawn_to_log(&[POLKITD], &log)?;
        self.await_bus_name(
            "polkitd",
            &mut child,
            POLKIT_NAME,
            &log,
            Duration::from_secs(20),
        )?;
        self.polkit = Some(child);
        Ok(t0.elapsed())
    }

    /// The machine's actions plus ftd's; the rules directory is kept (it is this
    /// host's `/etc`).
    fn prepare_polkit_dirs(&self) -> Result<()> {
        let actions = self.dir.join("polkit/actions");
        if actions.exists() {
            std::fs::remove_dir_all(&actions).map_err(|e| LabError::io("clearing", &actions, e))?;
        }
        mkdir(&actions)?;
        let machine = std::path::Path::new(ACTIONS_DIR);
        let rd = std::fs::read_dir(machine).map_err(|e| LabError::io("reading", machine, e))?;
        for entry in rd.flatten() {
            let p = entry.path();
            if p.extension().is_some_and(|e| e == "policy") {
                let to = actions.join(entry.file_name());
                std::fs::copy(&p, &to).map_err(|e| LabError::io("copying", &p, e))?;
            }
        }
        write(&actions.join("org.ftvirt.ftd1.policy"), FTD_ACTIONS)?;
        mkdir(&self.polkit_rules_dir())
    }

    /// Stop polkitd (SIGTERM); returns once its name is gone from the bus.
    pub fn stop_polkit(&mut self) -> Result<()> {
        let Some(mut child) = self.polkit.take() else {
            return Ok(());
        };
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = child.wait();
        wait_until(
            &format!("{POLKIT_NAME} to leave the bus of host {}", self.name),
            Duration::from_secs(10),
            Duration::from_millis(20),
            || match self.bus_name_has_owner(POLKIT_NAME) {
                Ok(owned) => Look::holds(!owned, || "still owned".into()),
                Err(e) => Look::Seen(e.to_string()),
            },
        )
    }

    /// Put rule `name` (`<name>.rules`, JavaScript) in this host's rules
    /// directory. With polkitd running, returns once polkitd has reloaded its
    /// rules (its log says so), so the rule is in force.
    pub fn add_polkit_rule(&self, name: &str, js: &str) -> Result<()> {
        let log = self.polkit_log();
        let loads = || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .matches(RULES_LOADED)
                .count()
        };
        let before = loads();
        // Written aside, then renamed in: polkitd never reads half a file.
        let tmp = self.dir.join(format!("polkit/{name}.rules.tmp"));
        write(&tmp, js)?;
        let to = self.polkit_rules_dir().join(format!("{name}.rules"));
        std::fs::rename(&tmp, &to).map_err(|e| LabError::io("renaming into", &to, e))?;
        if self.polkit.is_none() {
            return Ok(());
        }
        wait_until(
            &format!("polkitd of host {} to load rule {name}", self.name),
            Duration::from_secs(10),
            Duration::from_millis(20),
            || Look::holds(loads() > before, || format!("{before} reloads logged")),
        )
    }
}
