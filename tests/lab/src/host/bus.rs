//! The host's own system bus: a `dbus-daemon` on `/run/dbus/system_bus_socket`
//! inside the host, configured as a real system bus would be for ftd:
//!
//! - the default policy of Debian's `/usr/share/dbus-1/system.conf` (nobody may
//!   own a name or call a method unless a service's policy file allows it);
//! - the machine's polkit policy file (polkitd may own its name, anyone may call it);
//! - ftd's real policy file, `dbus/org.ftvirt.Ftd1.conf`, compiled into the lab so
//!   that the lab tests the repository's file, not whatever is installed.
//!
//! Unlike the machine's bus it has no service activation (a lab host starts its
//! daemons itself, and "polkit is not running" must mean it), runs as root, and
//! includes no other service's policy file (so it does not change with what is
//! installed on the machine).

use super::{mkdir, write, Host};
use crate::cmd;
use crate::error::Result;
use crate::wait::{wait_until, Look};
use std::path::Path;
use std::process::Child;
use std::time::Duration;

/// ftd's bus policy, as installed in `/usr/share/dbus-1/system.d/`.
pub const FTD_BUS_POLICY: &str = include_str!("../../../../dbus/org.ftvirt.Ftd1.conf");
/// polkit's bus policy on the machine (package polkitd).
const POLKIT_BUS_POLICY: &str = "/usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf";

/// The system bus configuration; `ftd_policy` is where ftd's policy file was put.
fn system_bus_conf(ftd_policy: &Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<!-- written by ftvirt-lab: a lab host's system bus -->
<busconfig>
  <type>system</type>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <auth>EXTERNAL</auth>

  <!-- The default policy of /usr/share/dbus-1/system.conf. -->
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Containers1"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Debug.Stats"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.systemd1.Activator"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>

  <include ignore_missing="yes">{POLKIT_BUS_POLICY}</include>
  <include>{ftd}</include>
</busconfig>
"#,
        ftd = ftd_policy.display()
    )
}

impl Host {
    /// The host's own D-Bus system bus, as seen from outside the host.
    pub fn bus_address(&self) -> String {
        format!(
            "unix:path={}",
            self.dir.join("dbus/system_bus_socket").display()
        )
    }

    /// Start the host's own system bus (`/run/dbus/system_bus_socket` inside the
    /// host), with the standard system bus policy and ftd's real one (see the
    /// module's documentation); returns once its socket is there.
    pub fn start_dbus(&self) -> Result<()> {
        let dir = self.dir.join("dbus-conf");
        mkdir(&dir)?;
        let ftd_policy = dir.join("org.ftvirt.Ftd1.conf");
        write(&ftd_policy, FTD_BUS_POLICY)?;
        let conf = dir.join("system.conf");
        write(&conf, &system_bus_conf(&ftd_policy))?;
        self.start_daemon(
            "dbus-daemon",
            &[
                "dbus-daemon",
                "--fork",
                "--nopidfile",
                &format!("--config-file={}", conf.display()),
            ],
        )?;
        let sock = self.dir.join("dbus/system_bus_socket");
        wait_until(
            &format!("the system bus of host {}", self.name),
            Duration::from_secs(10),
            Duration::from_millis(20),
            || Look::holds(sock.exists(), || format!("no {}", sock.display())),
        )
    }

    /// Wait until `child` (the daemon `what`, logging to `log`) owns `name` on the
    /// host's bus; fails at once with the log's end if it exits, and kills it if
    /// the wait fails.
    pub(crate) fn await_bus_name(
        &self,
        what: &str,
        child: &mut Child,
        name: &str,
        log: &Path,
        timeout: Duration,
    ) -> Result<()> {
        let r = wait_until(
            &format!("{what} of host {} to own {name}", self.name),
            timeout,
            Duration::from_millis(50),
            || {
                if let Ok(Some(st)) = child.try_wait() {
                    let text = std::fs::read_to_string(log).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(5).collect();
                    return Look::Failed(format!("{what} exited ({st}): {tail:?}"));
                }
                match self.bus_name_has_owner(name) {
                    Ok(owned) => Look::holds(owned, || "not owned yet".into()),
                    Err(e) => Look::Seen(e.to_string()),
                }
            },
        );
        if r.is_err() {
            let _ = child.kill();
            let _ = child.wait();
        }
        r
    }

    /// Is `name` owned on the host's bus?
    pub fn bus_name_has_owner(&self, name: &str) -> Result<bool> {
        let out = cmd::run(
            "dbus-send",
            [
                &format!("--bus={}", self.bus_address()),
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                &format!("string:{name}"),
            ],
        )?;
        Ok(out.contains("boolean true"))
    }
}
