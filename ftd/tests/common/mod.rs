//! Helpers for tests that run each lab host's own ftd.

#![allow(dead_code)]

use ftd::api::FtdProxy;
use ftvirt_lab::{Host, Lab};

pub const BUS_NAME: &str = "org.ftvirt.Ftd1";

/// ftd's configuration for `me`, paired with `peer` (the lab's standard one).
pub fn ftd_yaml(me: &Host, peer: &Host, checkpoint_ms: u64) -> String {
    ftvirt_lab::ftd::yaml(me, peer, checkpoint_ms)
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
    ftvirt_lab::ftd::client(lab, name).await.unwrap()
}

#[allow(unused_imports)]
pub use ftvirt_lab::ftd::wait_state;

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
