//! The libvirt driver: a cheap-to-clone handle over one connection to this host's
//! libvirtd (crate `virt`). libvirt calls are blocking C, so each runs on tokio's
//! blocking pool with a deadline; a call that overruns returns [`LibvirtError::Timeout`]
//! to its caller (the C call finishes, or not, on its own thread). When libvirtd
//! restarts, the dead connection is noticed (`virConnectIsAlive`) and reopened on
//! the next call.
//!
//! QMP goes through libvirt's monitor pass-through (`virDomainQemuMonitorCommand`):
//! it works for every running domain, including ones ftd did not start, and keeps
//! libvirt the owner of the monitor.

use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use virt::connect::Connect;
use virt::domain::Domain;
use virt::sys;

mod cpu;
mod error;
pub use cpu::{CpuFit, GuestCpu};
use error::op_err;
pub use error::{monitor_gone, LibvirtError, Result};

/// A domain's run state as ftd cares about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomState {
    Running,
    Paused,
    ShutOff,
    Other(String),
}

/// A call that takes longer than this is logged (QEMU or libvirtd stuck).
const SLOW_CALL: Duration = Duration::from_secs(1);

/// Handle to this host's libvirtd.
#[derive(Debug, Clone)]
pub struct Libvirt {
    uri: Arc<str>,
    conn: Arc<Mutex<Option<Arc<Connect>>>>,
    deadline: Duration,
}

impl Libvirt {
    /// A handle for `uri` (e.g. `qemu:///system`); connects lazily.
    pub fn new(uri: &str, deadline: Duration) -> Libvirt {
        Libvirt {
            uri: uri.into(),
            conn: Arc::new(Mutex::new(None)),
            deadline,
        }
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The open connection, reopened if it died.
    fn connection(&self) -> Result<Arc<Connect>> {
        let mut g = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = g.as_ref() {
            if c.is_alive().unwrap_or(false) {
                return Ok(c.clone());
            }
        }
        let c = Connect::open(Some(&self.uri)).map_err(|e| LibvirtError::Connect {
            uri: self.uri.to_string(),
            msg: e.message().to_string(),
        })?;
        let c = Arc::new(c);
        *g = Some(c.clone());
        Ok(c)
    }

    /// Drop the current connection and open a new one.
    fn reconnect(&self) -> Result<Arc<Connect>> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.connection()
    }

    /// Run `f` on the blocking pool against the connection, within the deadline.
    async fn call<T, F>(
        &self,
        op: &'static str,
        domain: &str,
        deadline: Duration,
        f: F,
    ) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&Connect) -> Result<T> + Send + 'static,
    {
        let me = self.clone();
        let task = tokio::task::spawn_blocking(move || {
            let c = me.connection()?;
            // libvirt keepalive needs an event loop, so a restarted libvirtd shows up
            // only as a broken call: reopen and try once more.
            let c = match c.is_alive() {
                Ok(true) => c,
                _ => me.reconnect()?,
            };
            match f(&c) {
                Err(LibvirtError::Disconnected { .. }) => f(&*me.reconnect()?),
                r => r,
            }
        });
        let t0 = std::time::Instant::now();
        let r = tokio::time::timeout(deadline, task).await;
        if t0.elapsed() > SLOW_CALL {
            tracing::warn!(
                op,
                domain,
                ms = t0.elapsed().as_millis() as u64,
                "slow libvirt call"
            );
        }
        match r {
            Ok(Ok(r)) => r,
            Ok(Err(join)) => Err(LibvirtError::Op {
                op,
                domain: domain.to_string(),
                msg: format!("internal error: {join}"),
            }),
            Err(_) => Err(LibvirtError::Timeout {
                op,
                domain: domain.to_string(),
                secs: deadline.as_secs_f64(),
            }),
        }
    }

    /// The domain's state.
    pub async fn state(&self, domain: &str) -> Result<DomState> {
        let d = domain.to_string();
        self.call("state", domain, self.deadline, move |c| {
            let dom = lookup(c, &d)?;
            let (st, _) = dom.state().map_err(|e| op_err("state", &d, e))?;
            Ok(dom_state(st))
        })
        .await
    }

    /// The domain's XML: live (`inactive = false`) or the persistent definition.
    pub async fn xml(&self, domain: &str, inactive: bool) -> Result<String> {
        let d = domain.to_string();
        self.call("dumpxml", domain, self.deadline, move |c| {
            let dom = lookup(c, &d)?;
            let flags = if inactive {
                sys::VIR_DOMAIN_XML_INACTIVE
            } else {
                0
            };
            dom.xml_desc(flags).map_err(|e| op_err("dumpxml", &d, e))
        })
        .await
    }

    /// The persistent definition; `None` for a transient domain.
    pub async fn persistent_xml(&self, domain: &str) -> Result<Option<String>> {
        let d = domain.to_string();
        self.call("dumpxml", domain, self.deadline, move |c| {
            let dom = lookup(c, &d)?;
            if !dom.is_persistent().map_err(|e| op_err("dumpxml", &d, e))? {
                return Ok(None);
            }
            dom.xml_desc(sys::VIR_DOMAIN_XML_INACTIVE)
                .map(Some)
                .map_err(|e| op_err("dumpxml", &d, e))
        })
        .await
    }

    /// Whether libvirt starts the (persistent) domain when libvirtd starts.
    pub async fn autostart(&self, domain: &str) -> Result<bool> {
        let d = domain.to_string();
        self.call("autostart", domain, self.deadline, move |c| {
            lookup(c, &d)?
                .autostart()
                .map_err(|e| op_err("autostart", &d, e))
        })
        .await
    }

    /// Define (or redefine) a persistent domain; returns its name.
    pub async fn define(&self, xml: &str) -> Result<String> {
        let x = xml.to_string();
        self.call("define", "(new)", self.deadline, move |c| {
            let dom = c
                .define_domain_xml(&x)
                .map_err(|e| op_err("define", "(new)", e))?;
            dom.name().map_err(|e| op_err("define", "(new)", e))
        })
        .await
    }

    /// Create and start a transient domain (it leaves no definition behind, and
    /// leaves an existing inactive definition of the same domain untouched).
    pub async fn create(&self, xml: &str) -> Result<String> {
        let x = xml.to_string();
        self.call("create", "(new)", self.deadline * 4, move |c| {
            let dom = c
                .create_domain_xml(&x, 0)
                .map_err(|e| op_err("create", "(new)", e))?;
            dom.name().map_err(|e| op_err("create", "(new)", e))
        })
        .await
    }

    /// Start a defined domain.
    pub async fn start(&self, domain: &str) -> Result<()> {
        let d = domain.to_string();
        self.call("start", domain, self.deadline * 4, move |c| {
            lookup(c, &d)?
                .create()
                .map(|_| ())
                .map_err(|e| op_err("start", &d, e))
        })
        .await
    }

    /// Destroy (power off) a domain; a domain that is not running is fine.
    pub async fn destroy(&self, domain: &str) -> Result<()> {
        let d = domain.to_string();
        self.call("destroy", domain, self.deadline, move |c| {
            let dom = match lookup(c, &d) {
                Ok(dom) => dom,
                Err(LibvirtError::NoDomain(_)) => return Ok(()),
                Err(e) => return Err(e),
            };
            if !dom.is_active().unwrap_or(false) {
                return Ok(());
            }
            dom.destroy().map_err(|e| op_err("destroy", &d, e))
        })
        .await
    }

    /// Remove a domain's persistent definition; an unknown domain is fine.
    pub async fn undefine(&self, domain: &str) -> Result<()> {
        let d = domain.to_string();
        self.call("undefine", domain, self.deadline, move |c| {
            match lookup(c, &d) {
                Ok(dom) => dom.undefine().map_err(|e| op_err("undefine", &d, e)),
                Err(LibvirtError::NoDomain(_)) => Ok(()),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Add (`add`) or remove IOThread `id` of the running domain, live only
    /// (`virDomainAddIOThread`/`virDomainDelIOThread`; the `virt` crate has no
    /// wrapper). Libvirt names it `iothread<id>` in QEMU and keeps it in the live
    /// definition, so it survives a libvirtd restart.
    pub async fn iothread(&self, domain: &str, id: u32, add: bool) -> Result<()> {
        let d = domain.to_string();
        let op = if add {
            "add iothread"
        } else {
            "remove iothread"
        };
        self.call(op, domain, self.deadline, move |c| {
            let dom = lookup(c, &d)?;
            let flags = sys::VIR_DOMAIN_AFFECT_LIVE;
            // SAFETY: `dom` is a valid domain pointer for the duration of the call.
            let r = unsafe {
                if add {
                    sys::virDomainAddIOThread(dom.as_ptr(), id, flags)
                } else {
                    sys::virDomainDelIOThread(dom.as_ptr(), id, flags)
                }
            };
            if r < 0 {
                return Err(op_err(op, &d, virt::error::Error::last_error()));
            }
            Ok(())
        })
        .await
    }

    /// The domain's metadata element in namespace `ns` (`virDomainGetMetadata`), as
    /// the live definition has it when the domain runs, the persistent one when not;
    /// `None` when the domain carries no element in `ns`.
    pub async fn metadata(&self, domain: &str, ns: &str) -> Result<Option<String>> {
        let (d, ns) = (domain.to_string(), ns.to_string());
        self.call("metadata", domain, self.deadline, move |c| {
            match lookup(c, &d)?.metadata(
                sys::VIR_DOMAIN_METADATA_ELEMENT as i32,
                Some(&ns),
                sys::VIR_DOMAIN_AFFECT_CURRENT,
            ) {
                Ok(xml) => Ok(Some(xml)),
                Err(e) if e.code().is(virt::error::ErrorNumber::NoDomainMetadata) => Ok(None),
                Err(e) => Err(op_err("metadata", &d, e)),
            }
        })
        .await
    }

    /// Set (`Some`) or remove (`None`) the domain's metadata element in namespace
    /// `ns`, written with prefix `key` (`virDomainSetMetadata`): in the live and the
    /// persistent definition when the domain runs, the persistent one when not.
    pub async fn set_metadata(
        &self,
        domain: &str,
        element_xml: Option<&str>,
        key: &str,
        ns: &str,
    ) -> Result<()> {
        let (d, xml, key, ns) = (
            domain.to_string(),
            element_xml.map(str::to_string),
            key.to_string(),
            ns.to_string(),
        );
        self.call("set metadata", domain, self.deadline, move |c| {
            let dom = lookup(c, &d)?;
            let active = dom.is_active().map_err(|e| op_err("set metadata", &d, e))?;
            let persistent = dom
                .is_persistent()
                .map_err(|e| op_err("set metadata", &d, e))?;
            let mut flags = 0;
            if active {
                flags |= sys::VIR_DOMAIN_AFFECT_LIVE;
            }
            if persistent || !active {
                flags |= sys::VIR_DOMAIN_AFFECT_CONFIG;
            }
            dom.set_metadata(
                sys::VIR_DOMAIN_METADATA_ELEMENT as i32,
                xml.as_deref(),
                Some(&key),
                Some(&ns),
                flags,
            )
            .map_err(|e| op_err("set metadata", &d, e))
        })
        .await
    }

    /// Names and states of every domain on this host.
    pub async fn list(&self) -> Result<Vec<(String, DomState)>> {
        self.call("list", "*", self.deadline, move |c| {
            let doms = c.list_all_domains(0).map_err(|e| op_err("list", "*", e))?;
            let mut out = Vec::new();
            for d in doms {
                let name = d.name().map_err(|e| op_err("list", "*", e))?;
                let st = match d.state() {
                    Ok((s, _)) => dom_state(s),
                    Err(e) => DomState::Other(e.message().to_string()),
                };
                out.push((name, st));
            }
            Ok(out)
        })
        .await
    }

    /// One QMP command through libvirt's monitor pass-through; returns `return`.
    pub async fn qmp(&self, domain: &str, cmd: &Value, deadline: Duration) -> Result<Value> {
        let d = domain.to_string();
        let text = cmd.to_string();
        let name = cmd
            .get("execute")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let reply = self
            .call("QMP command", domain, deadline, move |c| {
                lookup(c, &d)?.qemu_monitor_command(&text, 0).map_err(|e| {
                    match op_err("QMP command", &d, e) {
                        LibvirtError::Op { domain, msg, .. } if monitor_gone(&msg) => {
                            LibvirtError::MonitorGone { domain, msg }
                        }
                        other => other,
                    }
                })
            })
            .await?;
        parse_qmp_reply(domain, &name, &reply)
    }
}

/// `{"return": X}` -> X; `{"error": {...}}` -> [`LibvirtError::Qmp`].
pub fn parse_qmp_reply(domain: &str, cmd: &str, reply: &str) -> Result<Value> {
    let v: Value = serde_json::from_str(reply).map_err(|e| LibvirtError::Op {
        op: "QMP command",
        domain: domain.to_string(),
        msg: format!("unreadable reply to {cmd}: {e}: {reply:.200}"),
    })?;
    if let Some(err) = v.get("error") {
        return Err(LibvirtError::Qmp {
            cmd: cmd.to_string(),
            domain: domain.to_string(),
            class: err
                .get("class")
                .and_then(Value::as_str)
                .unwrap_or("Error")
                .to_string(),
            desc: err
                .get("desc")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        });
    }
    Ok(v.get("return").cloned().unwrap_or(Value::Null))
}

fn dom_state(s: virt::domain::DomainStateEnum) -> DomState {
    use virt::domain::DomainState as S;
    use virt::enumutil::Enum;
    match s {
        Enum::Known(S::Running) => DomState::Running,
        Enum::Known(S::Paused) => DomState::Paused,
        Enum::Known(S::Shutoff) => DomState::ShutOff,
        Enum::Known(other) => DomState::Other(format!("{other:?}")),
        Enum::Unknown(n) => DomState::Other(format!("state {n}")),
    }
}

fn lookup(c: &Connect, name: &str) -> Result<Domain> {
    c.lookup_domain_by_name(name).map_err(|e| {
        if e.code().is(virt::error::ErrorNumber::NoDomain) {
            LibvirtError::NoDomain(name.to_string())
        } else {
            op_err("lookup", name, e)
        }
    })
}

#[cfg(test)]
mod tests;
