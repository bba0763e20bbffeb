//! `ftd`: the ftvirt daemon. Reads its YAML configuration and TLS files, connects to
//! libvirt, opens the peer link, serves the D-Bus API and runs until SIGTERM/SIGINT.
//! Named tasks run under one `select!`; whichever ends first is logged with why,
//! then the rest is cancelled.
//!
//! `ftd make-certs` makes the peer link's and COLO's certificates instead
//! ([`ftd::certs`]).

use anyhow::{bail, Context, Result};
use clap::Parser;
use ftd::arbiter::{corosync, ArbiterError, ArbiterHandle};
use ftd::auth::Authorizer;
use ftd::config::{ArbiterKind, BusKind, Config, LogLevel, LogOutput};
use ftd::domain::{HostCtx, PortPool};
use ftd::host::QemuUser;
use ftd::libvirt::Libvirt;
use ftd::observe::Observer;
use ftd::peer::{Credentials, PeerConfig, PeerLink};
use ftd::witness::etcd::EtcdWitness;
use ftd::witness::Witness;
use ftd::{api, daemon};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "ftd",
    version,
    about = "ftvirt daemon: fault tolerance for libvirt domains with QEMU COLO"
)]
struct Args {
    /// Configuration file.
    #[arg(long, short, default_value = "/etc/ftvirt/ftd.yaml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Make the TLS certificates of the peer link and of COLO's channels: two CAs
    /// (on the first run; reused after) and, for each HOST, DIR/HOST/{ca.crt,
    /// host.crt,host.key} (the peer link's) and {colo-ca.crt,colo.crt,colo.key}
    /// (COLO's, which QEMU loads) to copy to that host's /etc/ftvirt/tls/. A HOST
    /// that has one set gets the other. Keep DIR/ca.key and colo-ca.key off the
    /// hosts.
    MakeCerts {
        /// Where the CA is (or is made) and the hosts' directories are written.
        #[arg(long)]
        dir: PathBuf,
        /// Validity of what is made, in days.
        #[arg(long, default_value_t = ftd::certs::DEFAULT_DAYS)]
        days: u32,
        /// Replace the certificates and keys of HOSTs that already have them (both
        /// sets).
        #[arg(long)]
        force: bool,
        /// Hosts, each as NAME=ADDR: its name as under host: and peers: in ftd's
        /// configuration and its replication address (host.address), which COLO's
        /// TLS checks (several addresses: NAME=ADDR,ADDR). A bare NAME makes
        /// certificates good for the peer link only.
        #[arg(required = true)]
        hosts: Vec<String>,
    },
}

fn main() {
    let args = Args::parse();
    if let Some(Command::MakeCerts {
        dir,
        days,
        force,
        hosts,
    }) = args.command
    {
        match make_certs(&dir, &hosts, days, force) {
            Ok(()) => return,
            Err(e) => {
                eprintln!("ftd make-certs: {e}");
                std::process::exit(1);
            }
        }
    }
    let (cfg, creds) = match Config::load(&args.config).and_then(|c| {
        let creds = c.peer_credentials()?;
        c.check_colo_tls(&creds)?;
        if c.arbiter.kind == ArbiterKind::Etcd {
            c.witness_settings()?;
        }
        Ok((c, creds))
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ftd: {e}");
            std::process::exit(2);
        }
    };
    init_logging(&cfg);
    // libvirt prints every error to stderr by default; ftd reports them itself.
    virt::error::clear_error_callback();
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    if let Err(e) = rt.block_on(run(cfg, creds)) {
        tracing::error!("{e:#}");
        eprintln!("ftd: {e:#}");
        std::process::exit(1);
    }
}

fn init_logging(cfg: &Config) {
    use tracing_subscriber::prelude::*;
    let level = match cfg.log.level {
        LogLevel::Error => tracing::Level::ERROR,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Trace => tracing::Level::TRACE,
    };
    let filter = tracing_subscriber::filter::LevelFilter::from_level(level);
    let mut fallback = None;
    if cfg.log.effective_output() == LogOutput::Journald {
        match tracing_journald::layer() {
            Ok(j) => {
                tracing_subscriber::registry()
                    // Fields as they are named (DOMAIN, ROLE, STATE, ...), not F_DOMAIN:
                    // `journalctl DOMAIN=web1` is what an operator types.
                    .with(
                        j.with_syslog_identifier("ftd".into())
                            .with_field_prefix(None),
                    )
                    .with(filter)
                    .init();
                return;
            }
            Err(e) => fallback = Some(e),
        }
    }
    // Colours only on a terminal: a log file or a pipe (the lab's, systemd's
    // without journald) gets plain text that tools and tests can read.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_max_level(level)
        .with_target(false)
        .init();
    if let Some(e) = fallback {
        tracing::warn!(error = %e, socket = ftd::config::JOURNALD_SOCKET, "journald cannot be reached; logging to stderr");
    }
}

fn make_certs(dir: &std::path::Path, hosts: &[String], days: u32, force: bool) -> Result<()> {
    use ftd::certs::Set;
    let r = ftd::certs::make(dir, hosts, days, force)?;
    for (set, what) in [
        (Set::PeerLink, "the peer link"),
        (Set::Colo, "COLO's channels"),
    ] {
        let (crt, key) = set.ca_files();
        if r.new_cas.contains(&set) {
            println!(
                "made a new CA for {what}: {} and {}",
                dir.join(crt).display(),
                dir.join(key).display()
            );
        } else {
            println!("used the CA for {what} in {}", dir.join(crt).display());
        }
    }
    if !r.new_cas.is_empty() {
        println!("keep the CAs' keys safe and off the hosts: they make new host certificates");
    }
    for m in &r.hosts {
        if m.addrs.is_empty() && m.sets.contains(&Set::Colo) {
            println!(
                "note: {host}'s certificates name no address: COLO's TLS needs \
                 {host}=ADDR (its replication address, host.address) unless colo.tls is off",
                host = m.host
            );
        }
        let mut files = vec![];
        for s in &m.sets {
            let (ca, _) = s.ca_files();
            let (crt, key) = s.host_files();
            files.extend([ca, crt, key]);
        }
        let (what, kept) = match m.sets[..] {
            [Set::PeerLink] => ("peer-link certificate", ", keeping its COLO files"),
            [Set::Colo] => ("COLO certificate", ", keeping its peer-link files"),
            _ => ("peer-link and COLO certificates", ""),
        };
        println!(
            "made {host}'s {what} (valid {days} days){kept}: copy {files} from {d} to \
             {host}:/etc/ftvirt/tls/ (the keys readable by root only)",
            host = m.host,
            files = files.join(", "),
            d = m.dir.display()
        );
    }
    Ok(())
}

/// COLO's TLS (`colo.tls`): QEMU's copy of COLO's own files (`colo.tls-*`,
/// never the peer link's), written now (the configuration's check made sure
/// the certificate names this host's replication address and the peer link
/// would refuse it). Off is said loudly: COLO's data then crosses in clear.
fn qemu_tls(cfg: &Config, qemu: &QemuUser) -> Result<Option<std::path::PathBuf>> {
    if !cfg.colo.tls {
        tracing::warn!(
            "colo.tls is false: the guests' memory, disk writes and network traffic \
             cross the replication network in clear, and anyone who reaches a \
             secondary's NBD export can write to its disk; use this only over an \
             authenticated tunnel (WireGuard, IPsec) between the replication addresses"
        );
        return Ok(None);
    }
    let dir = ftd::colo::tls::dir(&cfg.state_dir);
    let c = &cfg.colo;
    ftd::colo::tls::write_dir(&dir, &c.tls_ca, &c.tls_cert, &c.tls_key, qemu).with_context(
        || {
            format!(
                "writing QEMU's copy of the TLS files into {}",
                dir.display()
            )
        },
    )?;
    qemu.can_traverse(&dir)
        .map_err(|e| anyhow::anyhow!("{}: state-dir: {e}", cfg.origin()))?;
    tracing::info!(dir = %dir.display(), "COLO's channels run over mutual TLS");
    Ok(Some(dir))
}

/// The partition arbiter of `arbiter:`. A corosync that answers but cannot
/// arbitrate this pair stops ftd with the fix named; one that does not answer yet is
/// waited for (it may start after ftd), and until then a lost peer fences this
/// host's copies rather than risking two running ones.
fn start_arbiter(cfg: &Config, peer: &ftd::config::Peer) -> Result<Option<ArbiterHandle>> {
    match cfg.arbiter.kind {
        // The witness is no cluster engine: see `start_witness`.
        ArbiterKind::Etcd => Ok(None),
        ArbiterKind::None => {
            tracing::warn!(
                "NO ARBITER (arbiter: kind: none in {}): if only the link between the hosts \
                 fails, BOTH will run the domain (split brain); configure the witness, \
                 arbiter: kind: etcd (docs/witness.md)",
                cfg.origin()
            );
            Ok(None)
        }
        ArbiterKind::Corosync => {
            let target = corosync::Target {
                peer: peer.name.clone(),
                peer_addr: peer.address.to_string(),
                margin: cfg.arbiter.fence_margin,
            };
            match corosync::probe_within(&target, corosync::PROBE_LIMIT) {
                Ok(t) => tracing::info!(me = t.me, peer = t.peer, "arbiter: corosync checked"),
                Err(e @ ArbiterError::Config(_)) => bail!("{}: arbiter: {e}", cfg.origin()),
                Err(e) => tracing::warn!(error = %e, "arbiter: corosync not reachable yet"),
            }
            Ok(Some(
                ArbiterHandle::corosync(target).context("starting the arbiter's thread")?,
            ))
        }
    }
}

/// The witness of `arbiter: kind: etcd`. Its client connects lazily: a witness
/// that does not answer yet delays nothing until a domain needs it (a pair runs on
/// without it; only going live waits for it).
async fn start_witness(cfg: &Config) -> Result<Option<Arc<dyn Witness>>> {
    if cfg.arbiter.kind != ArbiterKind::Etcd {
        return Ok(None);
    }
    let settings = cfg.witness_settings().map_err(|e| anyhow::anyhow!("{e}"))?;
    let endpoints = format!("{:?}", settings.endpoints);
    let w = EtcdWitness::connect(settings)
        .await
        .map_err(|e| anyhow::anyhow!("{}: arbiter.witness: {e}", cfg.origin()))?;
    tracing::info!(%endpoints, "arbiter: the witness (etcd); every go-live and protection start is claimed on it");
    Ok(Some(Arc::new(w)))
}

async fn run(cfg: Config, creds: Credentials) -> Result<()> {
    let Some(peer) = cfg.peers.first() else {
        bail!(
            "{}: no peers: add the host that holds secondaries under peers:",
            cfg.origin()
        );
    };
    let _pid = ftd::pidfile::lock(&cfg.run_dir)
        .map_err(|e| anyhow::anyhow!("{}: run-dir: {e}", cfg.origin()))?;
    let cancel = CancellationToken::new();
    let mut pc = PeerConfig::new(
        &cfg.host.name,
        &peer.name,
        cfg.host.listen_addr(),
        peer.addr(),
        creds,
    );
    pc.interval = cfg.defaults.heartbeat_interval;
    pc.detection = cfg.defaults.detection_time;
    let (peer_handle, links) =
        PeerLink::spawn(pc, cancel.child_token()).context("starting the peer link")?;
    let arbiter = start_arbiter(&cfg, peer)?;
    let witness = start_witness(&cfg).await?;
    let ports = PortPool::load(cfg.colo.ports.into(), &cfg.state_dir)
        .map_err(|e| anyhow::anyhow!("{}: state-dir: {e}", cfg.origin()))?;
    let qemu = ftd::host::posture::qemu_user(
        std::path::Path::new(ftd::host::qemu_user::QEMU_CONF),
        &cfg.colo.overlay_dir,
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", cfg.origin()))?;
    let colo_tls = qemu_tls(&cfg, &qemu)?;
    let (observer, changes) = Observer::channel();
    let ctx = HostCtx {
        host: cfg.host.name.clone(),
        rep_addr: cfg.host.address.to_string(),
        peer_rep_addr: peer.address.to_string(),
        overlay_dir: cfg.colo.overlay_dir.clone(),
        trusted_dirs: cfg.colo.trusted_dirs.clone(),
        secondary_memory: cfg.colo.memory_need(),
        checkpoint_ms: cfg.defaults.checkpoint_interval.as_millis() as u64,
        compare_timeout_ms: cfg.defaults.compare_timeout.as_millis() as u64,
        sync_timeout: cfg.defaults.sync_timeout,
        auto_reprotect: cfg.defaults.auto_reprotect,
        lv: std::sync::Arc::new(Libvirt::new(&cfg.libvirt_uri, Duration::from_secs(30))),
        os: std::sync::Arc::new(ftd::host::RealOs::new(qemu.clone())),
        ports,
        peer: peer_handle,
        peers: cfg.peers.iter().map(|p| p.name.clone()).collect(),
        observer,
        arbiter,
        witness,
        claim_delay: ftd::witness::claim::secondary_delay(cfg.defaults.heartbeat_interval),
        colo_tls,
        qemu,
    };
    let (_watcher, qmp) = ftd::qmp_events::watch(&cfg.libvirt_uri);
    let (handle, daemon_task) = daemon::spawn(ctx, links, qmp, cancel.child_token());
    let builder = match &cfg.bus.connect {
        BusKind::System => zbus::connection::Builder::system()?,
        BusKind::Session => zbus::connection::Builder::session()?,
        BusKind::Address(a) => zbus::connection::Builder::address(a.as_str())?,
    };
    let auth = Authorizer::new(cfg.authorization);
    let (builder, reads) = api::serve(builder.name(cfg.bus.name.as_str())?, handle, auth.clone())?;
    let bus = builder.build().await.with_context(|| {
        format!(
            "serving {} on the D-Bus bus ({:?})",
            cfg.bus.name, cfg.bus.connect
        )
    })?;
    auth.announce(&bus).await;
    let publisher = tokio::spawn(api::publish(bus.clone(), reads, changes));
    tracing::info!(host = %cfg.host.name, peer = %peer.name, bus = %cfg.bus.name, "ftd ready");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let ended = tokio::select! {
        _ = term.recv() => "SIGTERM".to_string(),
        _ = tokio::signal::ctrl_c() => "SIGINT".to_string(),
        r = daemon_task => format!("the daemon task ended ({r:?})"),
        r = publisher => format!("the D-Bus publisher ended ({r:?})"),
    };
    tracing::info!(%ended, "ftd stopping");
    cancel.cancel();
    Ok(())
}
