//! [`FakeHost`] as a [`Hypervisor`] (libvirt's calls, QMP through [`super::qmp`],
//! the CPU comparison) and as a [`HostOs`] (images, socket cuts, links, TCP
//! probes, free memory), on the host's model in [`super`].

use super::{json, Dom, FakeHost, DISK_SIZE, LIBVIRT_DEADLINE};
use crate::host::{HostOs, Hypervisor};
use crate::libvirt::{CpuFit, DomState, GuestCpu, LibvirtError};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;

pub(super) fn timeout(op: &str, domain: &str, d: Duration) -> LibvirtError {
    LibvirtError::Timeout {
        op: if op == "qmp" {
            "QMP command"
        } else {
            "fake call"
        },
        domain: domain.into(),
        secs: d.as_secs_f64(),
    }
}

/// QEMU starts: plain (running) or incoming (`-incoming`: paused, waiting).
pub(super) fn boot(d: &mut Dom, incoming: bool) {
    d.running = true;
    d.killed = false;
    d.status = if incoming { "inmigrate" } else { "running" }.into();
    d.colo_mode = "none".into();
    d.colo_reason = String::new();
    d.root_node = "libvirt-1-format".into();
    d.disk_size = DISK_SIZE;
    d.nodes = BTreeMap::from([("libvirt-1-format".to_string(), None)]);
    d.jobs.clear();
    d.objects.clear();
    d.chardevs.clear();
    d.nbd = None;
    d.exports.clear();
    d.params.clear();
    d.incoming = None;
}

/// The live XML libvirt makes of a definition: every disk and interface gets
/// its alias (`virtio-disk<n>`, `net<n>`) if it has none.
fn with_aliases(xml: &str) -> String {
    let mut out = String::new();
    let (mut disks, mut nics) = (0, 0);
    let mut rest = xml;
    loop {
        let next = [("</disk>", true), ("</interface>", false)]
            .into_iter()
            .filter_map(|(tag, disk)| rest.find(tag).map(|i| (i, tag, disk)))
            .min_by_key(|(i, ..)| *i);
        let Some((i, tag, disk)) = next else {
            out.push_str(rest);
            return out;
        };
        let open = if disk { "<disk" } else { "<interface" };
        let start = rest[..i].rfind(open).unwrap_or(0);
        let has_alias = rest[start..i].contains("<alias");
        out.push_str(&rest[..i]);
        if !has_alias {
            let name = if disk {
                format!("virtio-disk{disks}")
            } else {
                format!("net{nics}")
            };
            out.push_str(&format!("<alias name='{name}'/>"));
        }
        if disk {
            disks += 1
        } else {
            nics += 1
        }
        out.push_str(tag);
        rest = &rest[i + tag.len()..];
    }
}

pub(super) fn shut_off(d: &mut Dom) {
    d.running = false;
    d.killed = false;
    d.colo_mode = "none".into();
    d.live_xml = d.inactive_xml.clone();
}

fn name_of(xml: &str) -> Result<String, LibvirtError> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| LibvirtError::Op {
        op: "define",
        domain: "(new)".into(),
        msg: format!("XML error: {e}"),
    })?;
    doc.descendants()
        .find(|n| n.has_tag_name("name") && n.parent().is_some_and(|p| p.has_tag_name("domain")))
        .and_then(|n| n.text())
        .map(str::to_string)
        .ok_or_else(|| LibvirtError::Op {
            op: "define",
            domain: "(new)".into(),
            msg: "the XML names no domain".into(),
        })
}

#[async_trait::async_trait]
impl Hypervisor for FakeHost {
    async fn state(&self, domain: &str) -> Result<DomState, LibvirtError> {
        self.enter("state", domain, "", LIBVIRT_DEADLINE).await?;
        self.with_dom(domain, |d| {
            Ok(match (d.running, d.status.as_str()) {
                (false, _) => DomState::ShutOff,
                (true, "paused") => DomState::Paused,
                (true, _) => DomState::Running,
            })
        })
    }

    async fn xml(&self, domain: &str, inactive: bool) -> Result<String, LibvirtError> {
        self.enter(
            "dumpxml",
            domain,
            if inactive { "--inactive" } else { "" },
            LIBVIRT_DEADLINE,
        )
        .await?;
        self.with_dom(domain, |d| {
            Ok(if inactive || !d.running {
                d.inactive_xml.clone()
            } else {
                d.live_xml.clone()
            })
        })
    }

    async fn autostart(&self, domain: &str) -> Result<bool, LibvirtError> {
        self.enter("autostart", domain, "", LIBVIRT_DEADLINE)
            .await?;
        self.with_dom(domain, |d| Ok(d.autostart))
    }

    async fn start(&self, domain: &str) -> Result<(), LibvirtError> {
        self.enter("start", domain, "", LIBVIRT_DEADLINE).await?;
        let mut g = self.lock();
        let Some(d) = g.domains.get_mut(domain) else {
            return Err(LibvirtError::NoDomain(domain.into()));
        };
        if d.running {
            return Err(LibvirtError::Op {
                op: "start",
                domain: domain.into(),
                msg: "domain is already active".into(),
            });
        }
        boot(d, false);
        d.live_xml = with_aliases(&d.inactive_xml);
        g.emit(
            domain,
            crate::qmp_events::LIFECYCLE,
            json!({"event": "started", "detail": 0}),
        );
        Ok(())
    }

    async fn persistent_xml(&self, domain: &str) -> Result<Option<String>, LibvirtError> {
        self.enter("dumpxml", domain, "--persistent", LIBVIRT_DEADLINE)
            .await?;
        self.with_dom(domain, |d| Ok(d.persistent.then(|| d.inactive_xml.clone())))
    }

    async fn define(&self, xml: &str) -> Result<String, LibvirtError> {
        let name = name_of(xml)?;
        self.enter("define", &name, "", LIBVIRT_DEADLINE).await?;
        let mut g = self.lock();
        let d = g.domains.entry(name.clone()).or_default();
        d.persistent = true;
        d.inactive_xml = xml.to_string();
        if !d.running {
            d.live_xml = xml.to_string();
        }
        Ok(name)
    }

    async fn create(&self, xml: &str) -> Result<String, LibvirtError> {
        let name = name_of(xml)?;
        self.enter("create", &name, "", LIBVIRT_DEADLINE).await?;
        let mut g = self.lock();
        let d = g.domains.entry(name.clone()).or_default();
        if d.running {
            return Err(LibvirtError::Op {
                op: "create",
                domain: name,
                msg: "domain is already active".into(),
            });
        }
        if !d.persistent {
            d.inactive_xml = xml.to_string();
        }
        boot(d, xml.contains("-incoming"));
        d.live_xml = with_aliases(xml);
        g.emit(
            &name,
            crate::qmp_events::LIFECYCLE,
            json!({"event": "started", "detail": 0}),
        );
        Ok(name)
    }

    async fn destroy(&self, domain: &str) -> Result<(), LibvirtError> {
        self.enter("destroy", domain, "", LIBVIRT_DEADLINE).await?;
        let mut g = self.lock();
        let Some(d) = g.domains.get_mut(domain) else {
            return Ok(());
        };
        let was_running = d.running;
        shut_off(d);
        if !d.persistent {
            g.domains.remove(domain);
        }
        if was_running {
            g.emit(
                domain,
                crate::qmp_events::LIFECYCLE,
                json!({"event": "stopped", "detail": 1}),
            );
        }
        Ok(())
    }

    async fn iothread(&self, domain: &str, id: u32, add: bool) -> Result<(), LibvirtError> {
        self.enter(
            "iothread",
            domain,
            &format!("{} {id}", if add { "add" } else { "del" }),
            LIBVIRT_DEADLINE,
        )
        .await?;
        self.with_dom(domain, |d| {
            let obj = format!("iothread{id}");
            let changed = if add {
                d.objects.insert(obj)
            } else {
                d.objects.remove(&obj)
            };
            if changed {
                Ok(())
            } else {
                Err(LibvirtError::Op {
                    op: "iothread",
                    domain: domain.into(),
                    msg: format!(
                        "IOThread {id} {}",
                        if add {
                            "already exists"
                        } else {
                            "does not exist"
                        }
                    ),
                })
            }
        })
    }

    async fn metadata(&self, domain: &str, ns: &str) -> Result<Option<String>, LibvirtError> {
        self.enter("metadata", domain, "", LIBVIRT_DEADLINE).await?;
        self.with_dom(domain, |d| Ok(d.metadata.get(ns).cloned()))
    }

    async fn set_metadata(
        &self,
        domain: &str,
        el: Option<&str>,
        _key: &str,
        ns: &str,
    ) -> Result<(), LibvirtError> {
        self.enter(
            "set-metadata",
            domain,
            if el.is_some() { "set" } else { "remove" },
            LIBVIRT_DEADLINE,
        )
        .await?;
        self.with_dom(domain, |d| {
            match el {
                Some(x) => d.metadata.insert(ns.into(), x.into()),
                None => d.metadata.remove(ns),
            };
            Ok(())
        })
    }

    async fn list(&self) -> Result<Vec<(String, DomState)>, LibvirtError> {
        self.enter("list", "*", "", LIBVIRT_DEADLINE).await?;
        let g = self.lock();
        Ok(g.domains
            .iter()
            .map(|(n, d)| {
                (
                    n.clone(),
                    if d.running {
                        DomState::Running
                    } else {
                        DomState::ShutOff
                    },
                )
            })
            .collect())
    }

    async fn qmp(
        &self,
        domain: &str,
        cmd: &Value,
        deadline: Duration,
    ) -> Result<Value, LibvirtError> {
        let name = cmd["execute"].as_str().unwrap_or("?").to_string();
        self.enter("qmp", domain, &name, deadline).await?;
        super::qmp::execute(self, domain, &name, &cmd["arguments"])
    }

    async fn compare_cpu(&self, domain: &str, cpu: &GuestCpu) -> Result<CpuFit, LibvirtError> {
        self.enter("compare-cpu", domain, &cpu.virt_type, LIBVIRT_DEADLINE)
            .await?;
        let required = required_features(&cpu.xml).map_err(|msg| LibvirtError::Op {
            op: "compare CPU",
            domain: domain.into(),
            msg,
        })?;
        let g = self.lock();
        let missing: Vec<_> = match &g.cpu_features {
            None => Vec::new(),
            Some(has) => required.into_iter().filter(|f| !has.contains(f)).collect(),
        };
        Ok(if missing.is_empty() {
            CpuFit::Runs
        } else {
            // libvirt's words (cpu_x86.c) with FAIL_INCOMPATIBLE.
            CpuFit::Incompatible(format!(
                "the CPU is incompatible with host CPU: Host CPU does not provide required \
                 features: {}",
                missing.join(", ")
            ))
        })
    }
}

/// The features a guest `<cpu>` requires (`policy='require'`, libvirt's default).
fn required_features(xml: &str) -> Result<Vec<String>, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| format!("XML error: {e}"))?;
    Ok(doc
        .root_element()
        .children()
        .filter(|n| n.has_tag_name("feature"))
        .filter(|n| n.attribute("policy").unwrap_or("require") == "require")
        .filter_map(|n| n.attribute("name").map(str::to_string))
        .collect())
}

#[async_trait::async_trait]
impl HostOs for FakeHost {
    async fn create_image(&self, path: &Path, size: u64) -> Result<(), String> {
        self.lock().calls.push((
            Instant::now(),
            format!("qemu-img {} {size}", path.display()),
        ));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        std::fs::write(path, b"").map_err(|e| format!("creating {}: {e}", path.display()))
    }

    async fn cut_sockets(&self, peer: &str, ports: &[u16]) -> Result<usize, String> {
        self.lock()
            .calls
            .push((Instant::now(), format!("cut {peer} {ports:?}")));
        Ok(ports.len())
    }

    async fn set_link(&self, dev: &str, up: bool) -> Result<(), String> {
        self.lock().calls.push((
            Instant::now(),
            format!("link {dev} {}", if up { "up" } else { "down" }),
        ));
        Ok(())
    }

    async fn probe_tcp(&self, addr: &str, within: Duration) -> Result<(), String> {
        self.lock()
            .calls
            .push((Instant::now(), format!("probe {addr}")));
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| format!("{addr}: no port"))?;
        let port: u16 = port.parse().map_err(|_| format!("{addr}: bad port"))?;
        let listening = self.cluster.by_addr(host).is_some_and(|h| {
            let g = h.lock();
            g.alive
                && g.domains
                    .values()
                    .any(|d| d.running && !d.killed && d.nbd == Some(port))
        });
        if listening {
            return Ok(());
        }
        tokio::time::sleep(within).await;
        Err(format!("{addr} did not answer within {within:?}"))
    }

    async fn mem_available(&self) -> Result<u64, String> {
        let mut g = self.lock();
        g.calls.push((Instant::now(), "meminfo".into()));
        Ok(g.mem_available)
    }
}
