//! The hook as libvirtd runs it: a process with four arguments and the domain XML
//! on stdin. Whatever happens it exits 0, quickly, with nothing on stdout (but for
//! a marked domain's `prepare` that must not go on: exit 1, the reason on stderr);
//! it touches the bus only for a marked domain; with ftd down or mute it says so
//! and gives up within its deadline; with ftd up it delivers `Notify(domain, op)`.

use std::io::Write;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const HOOK: &str = env!("CARGO_BIN_EXE_ftvirt-hook");
/// A running lab guest's live XML, unmarked.
const LIVE: &str = include_str!("../../ftd/src/colo/testdata/lab-guest-live.xml");
const NOT_REACHABLE: &str =
    "ftvirt-hook: ftd not reachable; domain g will be protected when ftd starts";

fn marked() -> String {
    let at = LIVE.find("  <memory").unwrap();
    let el = ftd_annotation::to_metadata_child(&ftd_annotation::Protection::new("b"));
    format!(
        "{}  <metadata>{el}</metadata>\n{}",
        &LIVE[..at],
        &LIVE[at..]
    )
}

/// A private directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("ftvirt-hook-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A socket that is listened on and never accepted: connecting succeeds, and a
/// D-Bus client then waits forever for the server's side of the handshake.
fn mute_bus(dir: &Path) -> (UnixListener, String) {
    let p = dir.join("mute-bus");
    let l = UnixListener::bind(&p).unwrap();
    l.set_nonblocking(true).unwrap();
    (l, format!("unix:path={}", p.display()))
}

/// Run the hook like libvirtd does; returns its output and how long it took.
fn run(args: &[&str], stdin: &[u8], bus: Option<&str>) -> (Output, Duration) {
    run_env(args, stdin, bus, &[])
}

/// [`run`] with more environment variables.
fn run_env(
    args: &[&str],
    stdin: &[u8],
    bus: Option<&str>,
    env: &[(&str, &str)],
) -> (Output, Duration) {
    let mut c = Command::new(HOOK);
    c.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_clear()
        .env("PATH", "/usr/bin:/bin");
    if let Some(b) = bus {
        c.env("FTVIRT_BUS", b);
    }
    c.envs(env.iter().copied());
    let t0 = Instant::now();
    let mut child = c.spawn().unwrap();
    let mut w = child.stdin.take().unwrap();
    // Like libvirtd: the hook may close stdin early, a broken pipe is fine.
    let _ = w.write_all(stdin);
    drop(w);
    let out = child.wait_with_output().unwrap();
    (out, t0.elapsed())
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_silent_success(o: &Output) {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(o));
    assert!(
        o.stdout.is_empty(),
        "stdout must stay empty (libvirt reads it as a new XML): {:?}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn an_unmarked_domain_never_touches_the_bus() {
    let dir = TempDir::new("unmarked");
    let (l, bus) = mute_bus(&dir.0);
    for op in [
        "prepare", "start", "started", "stopped", "release", "migrate",
    ] {
        let (o, took) = run(&["g", op, "begin", "-"], LIVE.as_bytes(), Some(&bus));
        assert_silent_success(&o);
        assert_eq!(stderr(&o), "", "{op}");
        assert!(took < Duration::from_millis(200), "{op} took {took:?}");
        eprintln!("unmarked {op}: {took:?}");
    }
    assert!(
        l.accept().is_err(),
        "the hook connected to the bus for an unmarked domain"
    );
}

#[test]
fn a_marked_domain_with_ftd_down_is_reported_and_let_go() {
    let (o, took) = run(
        &["g", "started", "begin", "-"],
        marked().as_bytes(),
        Some("unix:path=/nonexistent/ftvirt-test/bus"),
    );
    assert_silent_success(&o);
    assert!(stderr(&o).starts_with(NOT_REACHABLE), "{}", stderr(&o));
    assert!(took < Duration::from_millis(500), "took {took:?}");
    eprintln!("marked, no bus: {took:?}: {}", stderr(&o).trim());
    let (o, _) = run(
        &["g", "stopped", "end", "-"],
        marked().as_bytes(),
        Some("unix:path=/nonexistent/ftvirt-test/bus"),
    );
    assert_silent_success(&o);
    assert!(
        stderr(&o).starts_with("ftvirt-hook: ftd not reachable; domain g stopped"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_marked_domain_with_a_mute_bus_is_let_go_on_time() {
    let dir = TempDir::new("mute");
    let (_l, bus) = mute_bus(&dir.0);
    let (o, took) = run(
        &["g", "started", "begin", "-"],
        marked().as_bytes(),
        Some(&bus),
    );
    assert_silent_success(&o);
    assert!(stderr(&o).starts_with(NOT_REACHABLE), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no answer within 500ms"),
        "{}",
        stderr(&o)
    );
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_millis(900),
        "took {took:?}"
    );
    eprintln!("marked, mute bus: {took:?}");
}

#[test]
fn garbage_never_fails_libvirt() {
    let dir = TempDir::new("garbage");
    let (l, bus) = mute_bus(&dir.0);
    let big = vec![b'<'; ftvirt_hook::MAX_XML + 1];
    let cases: [(&[&str], &[u8]); 7] = [
        (&["g", "started", "begin", "-"], b""),
        (&["g", "started", "begin", "-"], b"\xff\xfe\x00garbage"),
        (
            &["g", "started", "begin", "-"],
            b"<domain><metadata><ft:protection",
        ),
        (&["g", "started", "begin", "-"], &big),
        (&[], b""),
        (&["only-one"], b""),
        (&["g", "started", "begin", "-", "one-too-many"], b""),
    ];
    for (args, input) in cases {
        let (o, took) = run(args, input, Some(&bus));
        assert_silent_success(&o);
        assert!(took < Duration::from_millis(500), "{args:?}: {took:?}");
        eprintln!(
            "{args:?} with {} bytes: {took:?}: {}",
            input.len(),
            stderr(&o).trim()
        );
    }
    assert!(l.accept().is_err(), "garbage made the hook call the bus");
    // A broken annotation says what is wrong.
    let broken = marked().replace("peer=", "pear=");
    let (o, _) = run(
        &["g", "started", "begin", "-"],
        broken.as_bytes(),
        Some(&bus),
    );
    assert_silent_success(&o);
    assert!(
        stderr(&o).contains("unknown attribute pear: did you mean peer?"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_stdin_left_open_is_given_up() {
    let mut child: Child = Command::new(HOOK)
        .args(["g", "started", "begin", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let keep_open = child.stdin.take();
    let out = child.wait_with_output().unwrap();
    let took = t0.elapsed();
    drop(keep_open);
    assert_silent_success(&out);
    assert!(
        stderr(&out).contains("stdin was not closed within"),
        "{}",
        stderr(&out)
    );
    assert!(took < Duration::from_millis(1500), "took {took:?}");
}

/// A private bus (dbus-daemon), killed on drop.
struct PrivateBus {
    child: Child,
    address: String,
    _dir: TempDir,
}

impl PrivateBus {
    fn start() -> PrivateBus {
        let dir = TempDir::new("bus");
        let sock = dir.0.join("bus");
        let address = format!("unix:path={}", sock.display());
        let child = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile"])
            .arg(format!("--address={address}"))
            .stdin(Stdio::null())
            .spawn()
            .expect("dbus-daemon");
        let t0 = Instant::now();
        while !sock.exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "dbus-daemon did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        PrivateBus {
            child,
            address,
            _dir: dir,
        }
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Stands for ftd: records what it is told.
#[derive(Debug, Clone, Default)]
struct FakeFtd {
    calls: Arc<Mutex<Vec<(String, String)>>>,
}

#[zbus::interface(name = "org.ftvirt.Ftd1.Manager")]
impl FakeFtd {
    async fn notify(&self, domain: String, operation: String) -> String {
        let reply = if operation == "started" {
            "ok"
        } else {
            "ignored"
        };
        self.calls.lock().unwrap().push((domain, operation));
        reply.into()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ftd_is_told_about_a_marked_domain() {
    let bus = PrivateBus::start();
    // The bus is up but nobody owns ftd's name yet: not reachable, and fast.
    let (o, took) = run(
        &["g", "started", "begin", "-"],
        marked().as_bytes(),
        Some(&bus.address),
    );
    assert_silent_success(&o);
    assert!(stderr(&o).starts_with(NOT_REACHABLE), "{}", stderr(&o));
    assert!(took < Duration::from_millis(500), "took {took:?}");

    let fake = FakeFtd::default();
    let _conn = zbus::connection::Builder::address(bus.address.as_str())
        .unwrap()
        .name(ftd_proxy::BUS_NAME)
        .unwrap()
        .serve_at(ftd_proxy::OBJECT_PATH, fake.clone())
        .unwrap()
        .build()
        .await
        .unwrap();
    let addr = bus.address.clone();
    let runs = tokio::task::spawn_blocking(move || {
        let mut v = Vec::new();
        for (op, sub) in [("started", "begin"), ("stopped", "end"), ("release", "end")] {
            v.push(run(&["g", op, sub, "-"], marked().as_bytes(), Some(&addr)));
        }
        // Unmarked: ftd hears nothing.
        v.push(run(
            &["u", "started", "begin", "-"],
            LIVE.as_bytes(),
            Some(&addr),
        ));
        v
    })
    .await
    .unwrap();
    for (o, took) in &runs {
        assert_silent_success(o);
        assert!(*took < Duration::from_millis(500), "took {took:?}");
        eprintln!("{took:?}: {}", stderr(o).trim());
    }
    assert_eq!(
        stderr(&runs[0].0).trim(),
        "ftvirt-hook: domain g started: ftd notified (ok)"
    );
    assert_eq!(
        stderr(&runs[1].0).trim(),
        "ftvirt-hook: domain g stopped: ftd notified (ignored)"
    );
    assert_eq!(stderr(&runs[3].0), "");
    assert_eq!(
        *fake.calls.lock().unwrap(),
        [
            ("g".to_string(), "started".to_string()),
            ("g".to_string(), "stopped".to_string()),
            ("g".to_string(), "release".to_string()),
        ]
    );
}

/// libvirtd waits for its hook, so a hook that called back into libvirt would
/// deadlock it: the binary does not link libvirt at all, and does not name virsh
/// (it could only run it as a program).
#[test]
fn the_hook_cannot_call_back_into_libvirt() {
    let out = Command::new("ldd").arg(HOOK).output().expect("running ldd");
    let libs = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ldd {HOOK}: {libs}");
    assert!(!libs.contains("libvirt"), "the hook links libvirt:\n{libs}");
    let bin = std::fs::read(HOOK).unwrap();
    for word in [&b"virsh"[..], b"virConnectOpen"] {
        assert!(
            !bin.windows(word.len()).any(|w| w == word),
            "the hook binary mentions {}",
            String::from_utf8_lossy(word)
        );
    }
}

#[test]
fn a_marked_domain_starts_without_ftd_only_where_no_witness_is_configured() {
    let dir = TempDir::new("prepare");
    let cfg = dir.0.join("ftd.yaml");
    let cfgs = cfg.to_string_lossy().to_string();
    let down = Some("unix:path=/nonexistent/ftvirt-test/bus");
    let args = ["g", "prepare", "begin", "-"];
    let xml = marked();

    // No configuration at all: the start goes on.
    let env = [("FTVIRT_CONFIG", cfgs.as_str())];
    let (o, _) = run_env(&args, xml.as_bytes(), down, &env);
    assert_silent_success(&o);
    assert!(
        stderr(&o).contains("no witness configured"),
        "{}",
        stderr(&o)
    );

    // The witness configured: refused, exit 1, the reason on stderr (libvirt
    // shows it), nothing on stdout.
    std::fs::write(&cfg, "arbiter:\n  kind: etcd\n").unwrap();
    let (o, took) = run_env(&args, xml.as_bytes(), down, &env);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    assert!(
        stderr(&o).starts_with("ftvirt-hook: domain g must not start yet")
            && stderr(&o).contains("Start ftd"),
        "{}",
        stderr(&o)
    );
    assert!(took < Duration::from_millis(600), "took {took:?}");

    // A configuration that cannot be read: refused too, naming the file.
    std::fs::write(&cfg, "arbiter: [unclosed\n").unwrap();
    let (o, _) = run_env(&args, xml.as_bytes(), down, &env);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains(&cfgs), "{}", stderr(&o));

    // Other operations never fail, whatever the configuration.
    let (o, _) = run_env(&["g", "started", "begin", "-"], xml.as_bytes(), down, &env);
    assert_silent_success(&o);
}
