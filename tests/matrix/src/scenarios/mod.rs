//! The matrix: every scenario, in the order they run. A scenario is a name, one
//! line on what must hold, whether it is long, and how it runs: most are a body
//! (one function in a module here) on a lab made as a [`Setup`] says; the runner
//! ([`crate::run`]) does everything around it. To add one: write its body, add
//! its line below.

mod checkpoint;
mod crossed;
mod cycles;
mod disk_full;
mod domains;
mod external;
mod kills;
mod libvirtd;
mod sync;

use crate::world::Setup;
use crate::{Kind, Scenario};

const fn custom(
    name: &'static str,
    about: &'static str,
    f: fn(&crate::Opts) -> crate::Row,
) -> Scenario {
    Scenario {
        name,
        about,
        long: true,
        kind: Kind::Custom(f),
    }
}

const fn lab(
    name: &'static str,
    about: &'static str,
    long: bool,
    setup: Setup,
    body: crate::Body,
) -> Scenario {
    Scenario {
        name,
        about,
        long,
        kind: Kind::Lab { setup, body },
    }
}

pub static SCENARIOS: &[Scenario] = &[
    lab(
        "primary-qemu-kill",
        "SIGKILL of the primary's QEMU: b takes over, the client's connection and every write survive, b re-protects onto a",
        false,
        Setup::STANDARD,
        kills::primary_qemu,
    ),
    lab(
        "primary-host-kill",
        "power cut of the primary's host: b takes over by itself, nothing lost, same connection",
        false,
        Setup::STANDARD,
        kills::primary_host,
    ),
    lab(
        "secondary-qemu-kill",
        "SIGKILL of the secondary's QEMU: the primary leaves COLO and runs on, nothing lost",
        false,
        Setup::STANDARD,
        kills::secondary_qemu,
    ),
    lab(
        "secondary-host-kill",
        "power cut of the secondary's host: the primary runs on alone, nothing lost",
        false,
        Setup::STANDARD,
        kills::secondary_host,
    ),
    lab(
        "libvirtd-restart",
        "libvirtd restarted on the primary's host, then on the secondary's, while protected: checkpoints go on",
        false,
        Setup::STANDARD,
        libvirtd::restart_both,
    ),
    lab(
        "secondary-kill-mid-sync",
        "the secondary's host killed during the initial disk sync: the primary runs on, protection fails clearly and resumes when b is back",
        false,
        Setup::UNPROTECTED,
        sync::secondary_host,
    ),
    lab(
        "primary-kill-mid-sync",
        "the primary's host killed during the initial disk sync: b drops its partial copy (no takeover from it), a's disk holds every acknowledged write",
        false,
        Setup::UNPROTECTED,
        sync::primary_host,
    ),
    lab(
        "primary-kill-mid-checkpoint",
        "the primary's host killed while a checkpoint is under way (between QEMU's STOP and RESUME): b takes over from the last complete one",
        false,
        Setup::STANDARD,
        checkpoint::primary_host,
    ),
    lab(
        "secondary-kill-mid-checkpoint",
        "the secondary's host killed while a checkpoint is under way: the paused primary resumes and runs on",
        false,
        Setup::STANDARD,
        checkpoint::secondary_host,
    ),
    lab(
        "disk-full",
        "the secondary's overlay disk fills up: the primary runs on, ftd names the cause and the fix, nothing lost",
        false,
        disk_full::SETUP,
        disk_full::fill,
    ),
    lab(
        "ten-cycles",
        "ten failovers in a row (the primary's QEMU killed, re-protect, back): nothing lost or leaked, ftd's fds and memory flat",
        true,
        Setup::STANDARD,
        cycles::ten,
    ),
    lab(
        "three-domains",
        "three protected domains on the same pair, the primary's host killed: all three survive",
        true,
        domains::SETUP,
        domains::three,
    ),
    lab(
        "crossed-primaries",
        "each host the primary of one domain, one host killed: b takes its peer's domain over and keeps its own, both serve on, nothing lost",
        false,
        crossed::SETUP,
        crossed::primaries_on_both_hosts,
    ),
    custom(
        "partitions",
        "the replication link cut (the primary's, the secondary's, only the path between them) with the corosync arbiter: one copy serves, nothing lost, the loser rejoins (ftd/tests/partition_lab.rs)",
        external::partitions,
    ),
    custom(
        "witness-primary-host-kill",
        "power cut of the primary's host with the etcd witness: b wins the record and takes over, nothing lost, same connection (ftd/tests/witness_lab.rs)",
        external::witness_primary_host,
    ),
    custom(
        "partition-primary-link",
        "the primary's replication link cut, with the etcd witness: its guest is cut off, b wins the record and serves, a rejoins as secondary on the heal",
        external::partition_primary_link,
    ),
    custom(
        "partition-secondary-link",
        "the secondary's replication link cut, with the etcd witness: a wins and serves on, b never takes over and rejoins on the heal",
        external::partition_secondary_link,
    ),
    custom(
        "partition-pair-path",
        "only the path between the pair cut (both reach the witness): the primary keeps the record, the secondary is fenced and rejoins",
        external::partition_pair_path,
    ),
    custom(
        "witness-down-primary-lost",
        "the etcd witness down (protection goes on), then the primary's host lost: nobody serves until the witness answers, then b does, nothing lost",
        external::witness_down_primary_lost,
    ),
    custom(
        "autostart-stale-copy",
        "the old primary's host boots after a failover with its copy set to autostart: the hook refuses it (ftd down, then ftd up), b makes a its secondary (libvirt-hooks/tests/hook_lab.rs)",
        external::autostart_stale_copy,
    ),
    custom(
        "disable-survivor-restart-ftd",
        "Disable on the survivor of a takeover, then its ftd restarted: the guest runs on, its disk and every write intact (ftd/tests/ftd_restart.rs)",
        external::disable_survivor_restart_ftd,
    ),
    custom(
        "cpu-load",
        "both hosts' cores kept busy for 3 minutes, protected with the etcd witness: never two copies serving, nothing lost; the needless switch-overs and spells out of protection are counted (ftd/tests/witness_lab.rs)",
        external::cpu_load,
    ),
    custom(
        "ftd-restarts",
        "ftd SIGKILLed on either host while protected: COLO goes on, the restarted ftd re-attaches; a host killed after its ftd still fails over (ftd/tests/ftd_restart.rs)",
        external::ftd_restarts,
    ),
    custom(
        "fuzz",
        "the fuzz targets (annotation, config, QMP, peer frames), 60 s each: no crash (cargo xtask fuzz)",
        external::fuzz,
    ),
];
