//! The replication data path, seen from a third host on the replication network
//! (the witness host w, which reaches a and b there like an intruder would): with
//! the domain protected over COLO's TLS, nobody but the peer reads or writes it.
//!
//! - a capture on b's replication link holds none of the client's records
//!   (while the same capture method finds them on the LAN, where they are plain);
//! - the secondary's NBD export refuses w, plain or with a certificate of the
//!   cluster's own COLO CA that names another host;
//! - every COLO listener is bound to its host's replication address only;
//! - a client that takes the primary's proxy sockets before the secondary makes
//!   protection fail closed with an error that says so, the guest serving on; once
//!   it lets go, protection comes back by itself.

mod common;

use common::{client, lab_with_guest, protect_g};
use ftd::colo::plan::Ports;
use ftvirt_lab::ftd::wait_status;
use ftvirt_lab::{wait_until, Host, Lab, Look};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// tcpdump on `dev` inside `ns`, writing `out`, until [`stop`].
/// tcpdump's own messages (packets dropped, errors) go to `<out>.log`.
/// `--immediate-mode`: each packet is handed to tcpdump at once, never left in
/// the kernel's ring when the capture stops (a LAN capture once ended with only
/// the first records in it).
fn capture(ns: &str, dev: &str, out: &Path) -> Child {
    let _ = std::fs::remove_file(out);
    let log = std::fs::File::create(out.with_extension("log")).expect("tcpdump's log");
    let mut c = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "tcpdump",
            "--immediate-mode",
            "-U",
            "-n",
            "-s",
            "0",
            "-i",
            dev,
            "-w",
        ])
        .arg(out)
        .arg("tcp")
        .stderr(log)
        .spawn()
        .expect("tcpdump (cargo xtask setup installs it)");
    wait_until(
        &format!("tcpdump to open {}", out.display()),
        Duration::from_secs(10),
        Duration::from_millis(20),
        || match c.try_wait() {
            Ok(Some(st)) => Look::Failed(format!("tcpdump exited ({st})")),
            _ => Look::holds(out.exists(), || "no capture file yet".into()),
        },
    )
    .unwrap();
    c
}

fn stop(mut c: Child) {
    let _ = Command::new("kill")
        .args(["-INT", &c.id().to_string()])
        .status();
    let _ = c.wait();
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A command run inside host `h`: its exit status and output.
fn run(h: &Host, argv: &[&str]) -> (bool, String) {
    let o = h.command(argv).unwrap().output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

/// Every TCP listener inside host `h` on one of `ports`, as `addr:port`.
fn listeners(h: &Host, ports: &[u16]) -> Vec<String> {
    let (ok, out) = run(h, &["ss", "-Hltn"]);
    assert!(ok, "{out}");
    out.lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .filter(|local| {
            local
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .is_some_and(|p| ports.contains(&p))
        })
        .map(String::from)
        .collect()
}

/// A certificate of the cluster's COLO CA (what the hosts' QEMUs hold) naming
/// `w` and its address, in QEMU's layout.
fn intruder_tls(lab: &Lab, w: &Host) -> PathBuf {
    let tls = lab.dir.join("tls");
    let read = |f: &str| std::fs::read_to_string(tls.join(f)).unwrap();
    let ca = ftd::certs::Ca::from_pem(&read("colo-ca.crt"), &read("colo-ca.key")).unwrap();
    let hc = ca.host(&w.name, &[w.rep_ip.into()], 1).unwrap();
    let d = lab.dir.join("intruder-tls");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("colo-ca.crt"), ca.cert_pem()).unwrap();
    std::fs::write(d.join("colo.crt"), &hc.cert_pem).unwrap();
    std::fs::write(d.join("colo.key"), &hc.key_pem).unwrap();
    let out = lab.dir.join("qemu-tls-w");
    ftd::colo::tls::write_dir(
        &out,
        &d.join("colo-ca.crt"),
        &d.join("colo.crt"),
        &d.join("colo.key"),
        // w runs no QEMU: its files are this process's (root's).
        &ftd::host::QemuUser::current(),
    )
    .unwrap();
    out
}

/// From w, in a tight loop, connect to each of `targets` and hold what gets
/// through, saying nothing (no TLS hello): as a client that is there first.
fn hijack(
    lab: &Lab,
    targets: Vec<SocketAddr>,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    let ns = lab.witness().unwrap().ns.clone();
    std::thread::spawn(move || {
        ns.run_in(|| {
            let mut held: Vec<Option<TcpStream>> = targets.iter().map(|_| None).collect();
            while !done.load(Ordering::Relaxed) {
                for (t, h) in targets.iter().zip(held.iter_mut()) {
                    if h.is_none() {
                        *h = TcpStream::connect_timeout(t, Duration::from_millis(50)).ok();
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            held.iter().filter(|h| h.is_some()).count()
        })
        .unwrap()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn nobody_but_the_peer_reads_or_writes_the_replication_data() {
    let Some((lab, g)) = lab_with_guest() else {
        return;
    };
    let (a, b) = (lab.host("a").unwrap(), lab.host("b").unwrap());
    let w = lab.witness().unwrap();
    let ports = Ports::slot(0);
    let marker = format!("ftvirt-secret-{:016x}", rand_u64());

    // Captures from before protection: b's replication link, and the LAN side
    // of the client, where the records travel plain.
    let rep_pcap = b.dir.join("rep0.pcap");
    let lan_pcap = b.dir.join("lan.pcap");
    let rep = capture(&b.ns.name, "rep0", &rep_pcap);
    let lan = capture(&lab.client_ns().name, "eth0", &lan_pcap);
    let mut c = lab.connect(&g).unwrap();
    let boot = c.info().unwrap().boot_id;
    c.put(1, "before").unwrap();

    protect_g(&lab).await;
    for n in 2..=30 {
        c.put(n, &format!("{marker}-{n}")).unwrap();
    }
    // A checkpoint after the records: the RAM that holds them crossed too.
    let now = ftvirt_lab::ftd::status(&lab, "a", "g")
        .await
        .unwrap()
        .checkpoints;
    ftvirt_lab::ftd::wait_checkpoints(&lab, "a", "g", now + 2, Duration::from_secs(60)).await;
    stop(rep);
    stop(lan);
    let rep_bytes = std::fs::read(&rep_pcap).unwrap();
    let lan_bytes = std::fs::read(&lan_pcap).unwrap();
    eprintln!(
        "captured {} bytes on b's replication link, {} on the LAN",
        rep_bytes.len(),
        lan_bytes.len()
    );
    assert!(
        contains(&lan_bytes, marker.as_bytes()),
        "the capture method must see the records where they are plain (the LAN); tcpdump \
         said: {}",
        std::fs::read_to_string(lan_pcap.with_extension("log")).unwrap_or_default()
    );
    assert!(
        rep_bytes.len() > 1 << 20,
        "the replication link carried the guest's RAM and disk: {} bytes",
        rep_bytes.len()
    );
    assert!(
        !contains(&rep_bytes, marker.as_bytes()),
        "a client record crossed the replication link in clear"
    );
    // The guest's console line (plain text in its RAM) is not there either.
    assert!(
        !contains(&rep_bytes, b"PUT 2 "),
        "a request crossed in clear"
    );

    // w at b's NBD export: plain, then with the cluster's COLO CA's certificate
    // for w.
    let export = format!("nbd://{}:{}/parent0", b.rep_ip, ports.nbd);
    let (ok, out) = run(w, &["qemu-img", "info", &export]);
    assert!(!ok, "qemu-img info from w read the export:\n{out}");
    eprintln!("w, plain NBD: {}", out.trim());
    let (ok, out) = run(
        w,
        &["qemu-io", "-f", "raw", "-c", "write -P 0x41 0 512", &export],
    );
    assert!(
        !ok && !out.contains("wrote 512"),
        "w wrote to the export:\n{out}"
    );
    let tls = intruder_tls(&lab, w);
    let object = format!(
        "tls-creds-x509,id=t0,dir={},endpoint=client,verify-peer=on",
        tls.display()
    );
    let image = format!(
        "driver=nbd,host={},port={},export=parent0,tls-creds=t0,tls-hostname=b",
        b.rep_ip, ports.nbd
    );
    let (ok, out) = run(
        w,
        &[
            "qemu-img",
            "info",
            "--object",
            &object,
            "--image-opts",
            &image,
        ],
    );
    assert!(
        !ok,
        "w's certificate of the same CA read the export:\n{out}"
    );
    eprintln!("w, NBD over TLS with its own certificate: {}", out.trim());

    // Every COLO listener on its host's replication address (loopback for
    // colo-compare's own pairs), never on every address.
    // (QEMU 7.2 keeps the incoming migration's listener while COLO runs; it
    // ignores an extra connection, and a client without the primary's
    // certificate never gets past TLS.)
    let on_b = listeners(b, &[ports.nbd, ports.migration]);
    let want_b = [
        format!("{}:{}", b.rep_ip, ports.nbd),
        format!("{}:{}", b.rep_ip, ports.migration),
    ];
    assert!(on_b.contains(&want_b[0]), "the export listens: {on_b:?}");
    assert!(on_b.iter().all(|l| want_b.contains(l)), "b: {on_b:?}");
    let mut on_a = listeners(
        a,
        &[
            ports.mirror,
            ports.compare,
            ports.compare_in,
            ports.compare_out,
        ],
    );
    on_a.sort();
    let mut want = vec![
        format!("{}:{}", a.rep_ip, ports.mirror),
        format!("{}:{}", a.rep_ip, ports.compare),
        format!("127.0.0.1:{}", ports.compare_in),
        format!("127.0.0.1:{}", ports.compare_out),
    ];
    want.sort();
    assert_eq!(on_a, want);

    // Take the proxy's sockets first: disable, let w hold a's proxy ports as
    // soon as they listen, then protect again.
    let ca = client(&lab, "a").await;
    ca.disable("g").await.expect("disable");
    ftvirt_lab::ftd::wait_state(&lab, "a", "g", "unprotected", Duration::from_secs(60)).await;
    let done = Arc::new(AtomicBool::new(false));
    let targets = [ports.mirror, ports.compare]
        .map(|p| SocketAddr::from((a.rep_ip, p)))
        .to_vec();
    let thief = hijack(&lab, targets, done.clone());
    ca.enable("g", ftd_proxy::no_options())
        .await
        .expect("enable");
    let s = wait_status(
        &lab,
        "a",
        "g",
        "to fail closed on the held proxy sockets",
        Duration::from_secs(120),
        |s| s.last_error.contains("proxy's sockets"),
    )
    .await;
    eprintln!("a's error: {}", s.last_error);
    assert!(s.state != "protected", "{s:?}");
    assert!(
        s.last_error.contains(&b.rep_ip.to_string()),
        "the error names the peer it waited for: {}",
        s.last_error
    );
    c.put(31, "while the sockets are held").unwrap();
    done.store(true, Ordering::Relaxed);
    let held = thief.join().unwrap();
    assert!(held >= 1, "w held no socket: the test proved nothing");
    // Let go: the next attempt protects.
    ftvirt_lab::ftd::wait_state(&lab, "a", "g", "protected", Duration::from_secs(180)).await;
    c.put(32, "protected again").unwrap();
    assert_eq!(c.info().unwrap().boot_id, boot, "the guest never rebooted");
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .unwrap();
    u64::from_le_bytes(b)
}
