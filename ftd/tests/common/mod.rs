//! Helpers for tests that run each lab host's own ftd.

#![allow(dead_code)]

use ftd::api::{DomainStatus, FtdProxy};
use ftvirt_lab::{Host, Lab};
use std::time::{Duration, Instant};

pub const BUS_NAME: &str = "org.ftvirt.Ftd1";

/// ftd's configuration for `me`, paired with `peer`.
pub fn ftd_yaml(me: &Host, peer: &Host, checkpoint_ms: u64) -> String {
    format!(
        "host:\n  name: {me}\n  address: {ma}\npeers:\n  - name: {pe}\n    address: {pa}\n\
         defaults:\n  checkpoint-interval: {checkpoint_ms}\n  heartbeat-interval: 100\n  detection-time: 500\n\
         colo:\n  overlay-dir: {dir}/overlays\n\
         bus:\n  connect: system\n  name: {BUS_NAME}\n\
         state-dir: {dir}/ftd-state\nrun-dir: {dir}/ftd-run\nlog:\n  output: stderr\n  level: info\n{tls}",
        me = me.name,
        ma = me.rep_ip,
        pe = peer.name,
        pa = peer.rep_ip,
        dir = me.dir.display(),
        tls = me.ftd_tls_yaml(),
    )
}

/// Start the system bus and ftd on host `name` of the lab.
pub fn start_ftd(lab: &mut Lab, name: &str, peer: &str) {
    let yaml = {
        let (me, p) = (lab.host(name).unwrap(), lab.host(peer).unwrap());
        ftd_yaml(me, p, 2000)
    };
    start_ftd_with(lab, name, &yaml);
}

/// Start the system bus and ftd on host `name` with this configuration.
pub fn start_ftd_with(lab: &mut Lab, name: &str, yaml: &str) {
    let h = lab.host_mut(name).unwrap();
    h.start_dbus().expect("system bus");
    h.start_ftd(
        std::path::Path::new(env!("CARGO_BIN_EXE_ftd")),
        yaml,
        BUS_NAME,
    )
    .expect("ftd");
}

/// A client of host `name`'s ftd over its bus.
pub async fn client(lab: &Lab, name: &str) -> FtdProxy<'static> {
    let addr = lab.host(name).unwrap().bus_address();
    let conn = zbus::connection::Builder::address(addr.as_str())
        .unwrap()
        .build()
        .await
        .unwrap();
    FtdProxy::new(&conn).await.unwrap()
}

/// Poll a host's status of `domain` until `want` (or fail with the log's tail).
pub async fn wait_state(
    lab: &Lab,
    host: &str,
    domain: &str,
    want: &str,
    timeout: Duration,
) -> DomainStatus {
    let t0 = Instant::now();
    loop {
        let last = client(lab, host).await.status(domain).await;
        if let Ok(s) = &last {
            if s.state == want {
                return s.clone();
            }
        }
        if t0.elapsed() > timeout {
            let log =
                std::fs::read_to_string(lab.host(host).unwrap().ftd_log()).unwrap_or_default();
            let tail: Vec<&str> = log
                .lines()
                .rev()
                .take(25)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            panic!("host {host}: {domain} never reached {want} in {timeout:?}; last: {last:?}\nftd log:\n{}", tail.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Fail if the secondary's serial console on `host` shows a guest kernel crash
/// (a secondary that diverged from the primary dies this way under COLO).
pub fn assert_secondary_console_clean(lab: &Lab, host: &str, domain: &str) {
    let p = lab
        .host(host)
        .unwrap()
        .dir
        .join(format!("overlays/{domain}/secondary/serial.log"));
    let log = std::fs::read_to_string(&p).unwrap_or_default();
    for bad in ["Kernel panic", "BUG:", "kernel BUG", "not a head", "Oops"] {
        assert!(
            !log.contains(bad),
            "the secondary on {host} crashed ({bad:?}); console {}:\n{log}",
            p.display()
        );
    }
}

/// Define (not start) a domain `name` on `host` whose devices ftd can protect (a
/// virtio qcow2 disk that need not exist, a virtio NIC): enough for ftd to track
/// it as `stopped`.
pub fn define_stopped(lab: &Lab, host: &str, name: &str) {
    let h = lab.host(host).unwrap();
    let xml = format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>\
         <os><type arch='x86_64' machine='pc'>hvm</type></os><devices>\
         <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
         <source file='{img}/{name}.qcow2'/><target dev='vda' bus='virtio'/></disk>\
         <interface type='bridge'><source bridge='br0'/><model type='virtio'/></interface>\
         </devices></domain>",
        img = h.images().display()
    );
    let f = h.dir.join(format!("{name}.xml"));
    std::fs::write(&f, xml).unwrap();
    h.virsh(&["define", f.to_str().unwrap()]).unwrap();
}
