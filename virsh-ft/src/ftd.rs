//! Talking to ftd: the connection, errors in words a user can act on, and waiting
//! for a domain to reach a state with a progress display.

use anyhow::{anyhow, bail, Result};
use enumflags2::BitFlags;
use ftd_proxy::{state, DomainStatus, EnableOptions, FtdProxy, ERROR_ACCESS_DENIED, ERROR_PREFIX};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};
use zbus::proxy::{CacheProperties, MethodFlags};

/// May polkit ask the user (a password, through their authentication agent)?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    Allowed,
    Never,
}

impl Ask {
    /// As systemctl: ask on a terminal unless told not to.
    pub fn from_flag(no_ask_password: bool) -> Ask {
        if !no_ask_password && std::io::stdin().is_terminal() {
            Ask::Allowed
        } else {
            Ask::Never
        }
    }
}

/// How often a waiting command asks ftd for the domain's status.
const POLL: Duration = Duration::from_millis(200);
/// No single call to ftd should take longer than this.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection to one ftd.
#[derive(Debug)]
pub struct Ftd {
    proxy: FtdProxy<'static>,
    /// Where ftd is, for messages: "org.ftvirt.Ftd1 on the system bus".
    place: String,
}

impl Ftd {
    /// Connect to `name` on the bus at `address` (the system bus when `None`).
    pub async fn connect(address: Option<&str>, name: &str) -> Result<Ftd> {
        let place = match address {
            Some(a) => format!("{name} on the bus {a}"),
            None => format!("{name} on the system bus"),
        };
        let unreachable = |e: zbus::Error| {
            anyhow!(
                "cannot reach ftd ({place}): is ftd running? (systemctl status ftd)\n  cause: {e}"
            )
        };
        let builder = match address {
            Some(a) => zbus::connection::Builder::address(a),
            None => zbus::connection::Builder::system(),
        }
        .map_err(unreachable)?;
        let conn = builder
            .method_timeout(CALL_TIMEOUT)
            .build()
            .await
            .map_err(unreachable)?;
        let proxy = FtdProxy::builder(&conn)
            .destination(name.to_string())
            .map_err(|e| anyhow!("{name:?} is not a D-Bus bus name: {e}"))?
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(unreachable)?;
        Ok(Ftd { proxy, place })
    }

    pub async fn enable(&self, domain: &str, opts: &EnableOptions, ask: Ask) -> Result<String> {
        self.change("Enable", &(domain, opts.to_dict()), ask).await
    }

    pub async fn disable(&self, domain: &str, ask: Ask) -> Result<String> {
        self.change("Disable", &(domain,), ask).await
    }

    pub async fn failover(&self, domain: &str, ask: Ask) -> Result<String> {
        self.change("Failover", &(domain,), ask).await
    }

    /// A method that changes something: polkit may ask the user for a password
    /// (through their authentication agent) when `ask` allows it, as systemctl.
    async fn change<B>(&self, method: &str, body: &B, ask: Ask) -> Result<String>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        let flags = match ask {
            Ask::Allowed => MethodFlags::AllowInteractiveAuth.into(),
            Ask::Never => BitFlags::empty(),
        };
        let r: zbus::Result<Option<String>> = self
            .proxy
            .inner()
            .call_with_flags(method, flags, body)
            .await;
        match r {
            Ok(Some(s)) => Ok(s),
            Ok(None) => Err(anyhow!("ftd sent no reply to {method}")),
            Err(e) => Err(self.error(e)),
        }
    }

    pub async fn status(&self, domain: &str) -> Result<DomainStatus> {
        self.proxy.status(domain).await.map_err(|e| self.error(e))
    }

    pub async fn list(&self) -> Result<Vec<DomainStatus>> {
        self.proxy.list().await.map_err(|e| self.error(e))
    }

    fn error(&self, e: zbus::Error) -> anyhow::Error {
        explain(&self.place, e)
    }
}

/// A failed call to ftd (`place`, for messages), in words: ftd's own message for
/// its errors, "permission denied" with ftd's reason when it refused the caller,
/// "cannot reach ftd" when nobody owns the name or the bus went away.
fn explain(place: &str, e: zbus::Error) -> anyhow::Error {
    let unreachable = || {
        anyhow!("cannot reach ftd ({place}): is ftd running? (systemctl status ftd)\n  cause: {e}")
    };
    match &e {
        zbus::Error::MethodError(name, msg, _) => {
            let name = name.as_str();
            let msg = msg.as_deref().unwrap_or("");
            match name {
                ERROR_ACCESS_DENIED => anyhow!("permission denied: {msg}"),
                n if n.starts_with(ERROR_PREFIX) => anyhow!("{msg}"),
                "org.freedesktop.DBus.Error.ServiceUnknown"
                | "org.freedesktop.DBus.Error.NameHasNoOwner"
                | "org.freedesktop.DBus.Error.NoReply"
                | "org.freedesktop.DBus.Error.Disconnected" => unreachable(),
                // The bus itself refused: ftd's bus policy lets anyone call ftd.
                "org.freedesktop.DBus.Error.AccessDenied" => anyhow!(
                    "the bus refused the call to ftd ({place}): {msg}\n  is ftd's bus \
                     policy installed (/usr/share/dbus-1/system.d/org.ftvirt.Ftd1.conf)?"
                ),
                "org.freedesktop.DBus.Error.UnknownMethod"
                | "org.freedesktop.DBus.Error.UnknownInterface"
                | "org.freedesktop.DBus.Error.UnknownObject" => anyhow!(
                    "the program owning {place} does not serve ftd's interface as this \
                     virsh-ft knows it (an older or newer ftd?): {msg}"
                ),
                _ => anyhow!("ftd ({place}) answered {name}: {msg}"),
            }
        }
        zbus::Error::FDO(fdo) => match **fdo {
            zbus::fdo::Error::ServiceUnknown(_)
            | zbus::fdo::Error::NameHasNoOwner(_)
            | zbus::fdo::Error::NoReply(_)
            | zbus::fdo::Error::Disconnected(_) => unreachable(),
            _ => anyhow!("talking to ftd ({place}): {e}"),
        },
        zbus::Error::InputOutput(_) => unreachable(),
        _ => anyhow!("talking to ftd ({place}): {e}"),
    }
}

/// What a waiting command waits for.
#[derive(Debug, Clone, Copy)]
pub struct Goal {
    /// What is being done, for messages: "protecting".
    pub doing: &'static str,
    /// Reached: done.
    pub done: &'static [&'static str],
    /// Reached: it failed (ftd's `last_error` says why).
    pub failed: &'static [&'static str],
}

pub const ENABLE: Goal = Goal {
    doing: "protecting",
    done: &[state::PROTECTED],
    failed: &[
        state::FAILED,
        state::UNPROTECTED,
        state::STANDBY,
        state::STOPPED,
        state::SECONDARY_PREPARING,
        state::SECONDARY,
        state::TAKING_OVER,
        state::SECONDARY_ARBITRATING,
        state::FENCED,
    ],
};

pub const DISABLE: Goal = Goal {
    doing: "disabling protection of",
    done: &[state::UNPROTECTED],
    failed: &[
        state::STANDBY,
        state::STOPPED,
        state::SECONDARY_PREPARING,
        state::SECONDARY,
        state::TAKING_OVER,
        state::SECONDARY_ARBITRATING,
        state::FENCED,
    ],
};

/// This host's copy has handed over once it is standby; with auto re-protection
/// the new primary may already be making it its secondary again.
pub const FAILOVER: Goal = Goal {
    doing: "failing over",
    done: &[state::STANDBY, state::SECONDARY_PREPARING, state::SECONDARY],
    failed: &[
        state::PROTECTED,
        state::DEGRADED,
        state::FAILED,
        state::UNPROTECTED,
    ],
};

/// Poll `domain`'s status until `goal` is reached (Ok), has failed or `timeout`
/// passed (Err). `first` is the state ftd answered the request with. Progress
/// goes to stderr: a spinner on a terminal, a line per state otherwise.
pub async fn wait(
    ftd: &Ftd,
    domain: &str,
    first: &str,
    goal: Goal,
    timeout: Duration,
) -> Result<DomainStatus> {
    let t0 = Instant::now();
    let mut progress = Progress::new(domain, first);
    let mut shown = first.to_string();
    let mut current = first.to_string();
    let result = loop {
        if current != shown {
            progress.state(&current, t0.elapsed());
            shown.clone_from(&current);
        }
        // ftd's answer to the request counts as a first look, except for the goal:
        // that is confirmed with a Status so that the result is a full status.
        let st = match ftd.status(domain).await {
            Ok(st) => st,
            Err(e) => break Err(e),
        };
        current.clone_from(&st.state);
        if goal.done.contains(&st.state.as_str()) {
            break Ok(st);
        }
        if goal.failed.contains(&st.state.as_str()) {
            let why = [&st.last_error, &st.last_failover]
                .into_iter()
                .find(|s| !s.is_empty())
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            break Err(anyhow!(
                "{} {domain} failed (now {}){why}",
                goal.doing,
                st.state
            ));
        }
        if t0.elapsed() >= timeout {
            break Err(anyhow!(
                "{} {domain}: still {} after {} s; ftd carries on (see `virsh-ft ft-status {domain}`)",
                goal.doing,
                st.state,
                timeout.as_secs()
            ));
        }
        tokio::time::sleep(POLL).await;
    };
    if let Ok(st) = &result {
        if st.state != shown {
            progress.state(&st.state, t0.elapsed());
        }
    }
    progress.finish();
    result
}

/// The progress display on stderr.
enum Progress {
    Spinner(ProgressBar),
    Lines(String),
}

impl Progress {
    fn new(domain: &str, first: &str) -> Progress {
        if !std::io::stderr().is_terminal() {
            eprintln!("{domain}: {first} (0.0 s)");
            return Progress::Lines(domain.to_string());
        }
        let style = ProgressStyle::with_template("{spinner} {prefix}: {wide_msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        // Hidden until it has its text, so that no empty frame is drawn.
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())
            .with_style(style)
            .with_prefix(domain.to_string())
            .with_message(first.to_string());
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.enable_steady_tick(Duration::from_millis(100));
        Progress::Spinner(bar)
    }

    fn state(&mut self, state: &str, at: Duration) {
        match self {
            Progress::Spinner(bar) => bar.set_message(state.to_string()),
            Progress::Lines(domain) => eprintln!("{domain}: {state} ({:.1} s)", at.as_secs_f64()),
        }
    }

    fn finish(self) {
        if let Progress::Spinner(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// Refuse a `--connect` URI that names another host: ft-* act on this host's ftd.
pub fn check_local(connect: Option<&str>) -> Result<()> {
    if let Some(host) = connect.and_then(crate::cli::remote_host) {
        bail!(
            "the ft-* commands act on this host's ftd, not on {host}: run virsh-ft on {host} \
             (e.g. `ssh {host} virsh-ft ...`)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn method_error(name: &str, msg: &str) -> zbus::Error {
        let reply = zbus::Message::method_call("/", "M")
            .unwrap()
            .build(&())
            .unwrap();
        zbus::Error::MethodError(name.try_into().unwrap(), Some(msg.into()), reply)
    }

    #[test]
    fn no_ask_password_never_asks_and_without_a_terminal_nobody_is_asked() {
        assert_eq!(Ask::from_flag(true), Ask::Never);
        // Tests run with stdin not a terminal (nextest, CI).
        if !std::io::stdin().is_terminal() {
            assert_eq!(Ask::from_flag(false), Ask::Never);
        }
    }

    #[test]
    fn a_refusal_by_ftd_reads_permission_denied_with_ftds_reason() {
        let why = "uid 1000 (bus name :1.7) is not authorized to manage fault tolerance \
                   (enable, disable, fail over) (polkit action org.ftvirt.ftd1.manage); \
                   nothing was changed. Ask the administrator for a polkit rule that grants \
                   this action";
        let e = explain(
            "org.ftvirt.Ftd1 on the system bus",
            method_error(ERROR_ACCESS_DENIED, why),
        );
        assert_eq!(e.to_string(), format!("permission denied: {why}"));
    }

    #[test]
    fn ftds_other_errors_are_its_message_and_a_missing_ftd_is_unreachable() {
        let place = "org.ftvirt.Ftd1 on the system bus";
        let e = explain(
            place,
            method_error(
                "org.ftvirt.Ftd1.Error.NoSuchDomain",
                "domain \"x\" is not defined",
            ),
        );
        assert_eq!(e.to_string(), "domain \"x\" is not defined");
        let e = explain(
            place,
            method_error(
                "org.freedesktop.DBus.Error.ServiceUnknown",
                "not activatable",
            ),
        );
        assert!(
            e.to_string()
                .starts_with("cannot reach ftd (org.ftvirt.Ftd1 on the system bus)"),
            "{e}"
        );
    }
}
