//! Questions ftd asks a running domain over QMP before wiring COLO: which node the
//! disk device writes to, how big that disk is, and the device properties the
//! secondary must copy (bootindex, write-cache) so that the incoming state fits.

use crate::colo::layout::Disk;
use crate::colo::secondary::DiskDevice;
use crate::host::Hypervisor;
use crate::libvirt::LibvirtError;
use crate::runner::QMP_DEADLINE;
use serde_json::{json, Value};

/// The live block device of `disk`, as QEMU reports it in `query-block`.
pub async fn block_entry(
    lv: &dyn Hypervisor,
    domain: &str,
    disk: &Disk,
) -> Result<Value, LibvirtError> {
    let qdev = disk.alias.clone().ok_or_else(|| LibvirtError::Op {
        op: "query-block",
        domain: domain.into(),
        msg: "the disk has no alias: is the domain running?".into(),
    })?;
    let blocks = lv
        .qmp(domain, &json!({"execute": "query-block"}), QMP_DEADLINE)
        .await?;
    blocks
        .as_array()
        .into_iter()
        .flatten()
        .find(|b| {
            b["qdev"].as_str().is_some_and(|q| {
                q == qdev || q.starts_with(&format!("/machine/peripheral/{qdev}/"))
            })
        })
        .cloned()
        .ok_or_else(|| LibvirtError::Op {
            op: "query-block",
            domain: domain.into(),
            msg: format!("QEMU reports no block device for {qdev}"),
        })
}

/// (root node name, virtual size in bytes) of the disk.
pub async fn disk_node(
    lv: &dyn Hypervisor,
    domain: &str,
    disk: &Disk,
) -> Result<(String, u64), LibvirtError> {
    let b = block_entry(lv, domain, disk).await?;
    let node = b["inserted"]["node-name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let size = b["inserted"]["image"]["virtual-size"].as_u64().unwrap_or(0);
    if node.is_empty() || size == 0 {
        return Err(LibvirtError::Op {
            op: "query-block",
            domain: domain.into(),
            msg: format!("cannot read the disk's node and size from {b}"),
        });
    }
    Ok((node, size))
}

/// The properties of the disk's virtio-blk device that the secondary must copy.
pub async fn disk_device(
    lv: &dyn Hypervisor,
    domain: &str,
    disk: &Disk,
) -> Result<DiskDevice, LibvirtError> {
    let id = disk.alias.clone().unwrap_or_default();
    let path = format!("/machine/peripheral/{id}");
    let get = |prop: &'static str| {
        let path = path.clone();
        async move {
            lv.qmp(
                domain,
                &json!({"execute": "qom-get", "arguments": {"path": path, "property": prop}}),
                QMP_DEADLINE,
            )
            .await
        }
    };
    let bootindex = get("bootindex").await?.as_i64().filter(|b| *b >= 0);
    let write_cache = get("write-cache").await?.as_str().map(String::from);
    let pci = disk.pci.clone().ok_or_else(|| LibvirtError::Op {
        op: "dumpxml",
        domain: domain.into(),
        msg: format!("disk {} has no PCI address", disk.target),
    })?;
    Ok(DiskDevice {
        id,
        bus: if pci.bus == 0 {
            "pci.0".into()
        } else {
            format!("pci.{}", pci.bus)
        },
        addr: if pci.function == 0 {
            format!("{:#x}", pci.slot)
        } else {
            format!("{:#x}.{:#x}", pci.slot, pci.function)
        },
        bootindex,
        write_cache,
    })
}
