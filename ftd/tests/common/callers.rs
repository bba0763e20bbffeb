//! Calling ftd on a lab host as another Unix user: `dbus-send` (or `gdbus`)
//! started inside the host by `setpriv`, which drops to that uid before it
//! connects to the host's system bus; ftd alone on a host (`start_lone_ftd`),
//! with or without polkitd; and the checks of ftd's refusals.

use super::BUS_NAME;
use ftvirt_lab::Lab;
use std::time::Instant;

pub const NOBODY: u32 = 65534;
pub const MANAGE: &str = "org.ftvirt.ftd1.manage";
pub const MONITOR: &str = "org.ftvirt.ftd1.monitor";
pub const ACCESS_DENIED: &str = "org.ftvirt.Ftd1.Error.AccessDenied";
pub const NO_SUCH_DOMAIN: &str = "org.ftvirt.Ftd1.Error.NoSuchDomain";

/// A D-Bus error: (name, message).
pub type BusError = (String, String);

/// Run a D-Bus command-line tool (`argv`) inside host `host` as `uid` (0: as
/// root). Ok(its output) or Err(the D-Bus error it printed after `error_prefix`,
/// as `<name>: <message>`).
pub fn run_as(
    lab: &Lab,
    host: &str,
    uid: u32,
    argv: &[&str],
    error_prefix: &str,
) -> Result<String, BusError> {
    let (u, g) = (format!("--reuid={uid}"), format!("--regid={uid}"));
    let mut full = vec!["setpriv", &u, &g, "--clear-groups", "--"];
    full.extend(argv);
    let out = lab
        .host(host)
        .unwrap()
        .command(&full)
        .unwrap()
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", argv[0]));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if out.status.success() {
        return Ok(stdout);
    }
    match stderr
        .strip_prefix(error_prefix)
        .and_then(|e| e.split_once(": "))
    {
        Some((name, msg)) => Err((
            name.to_string(),
            msg.lines().next().unwrap_or("").to_string(),
        )),
        None => panic!("{} failed without a D-Bus error: {stderr}", argv[0]),
    }
}

/// `dbus-send` to `dest` on host `host`'s system bus, as `uid` (0: as root).
/// Ok(the printed reply) or Err(the D-Bus error).
pub fn send_as(
    lab: &Lab,
    host: &str,
    uid: u32,
    dest: &str,
    path: &str,
    method: &str,
    args: &[&str],
) -> Result<String, BusError> {
    if method.ends_with(".Enable") {
        return gdbus_as(lab, host, uid, dest, path, method, args);
    }
    let dest = format!("--dest={dest}");
    let mut argv = vec![
        "dbus-send",
        "--bus=unix:path=/run/dbus/system_bus_socket",
        "--print-reply",
        &dest,
        path,
        method,
    ];
    argv.extend(args);
    // dbus-send prints "Error <name>: <message>".
    run_as(lab, host, uid, &argv, "Error ")
}

/// `Enable(s, a{sv})` needs a dictionary of variants, which dbus-send cannot
/// write: the same call with `gdbus`, an empty options dictionary appended.
pub fn gdbus_as(
    lab: &Lab,
    host: &str,
    uid: u32,
    dest: &str,
    path: &str,
    method: &str,
    args: &[&str],
) -> Result<String, BusError> {
    let strings: Vec<String> = args
        .iter()
        .map(|a| format!("'{}'", a.strip_prefix("string:").unwrap_or(a)))
        .collect();
    let mut argv = vec![
        "gdbus",
        "call",
        "--address=unix:path=/run/dbus/system_bus_socket",
        "--dest",
        dest,
        "--object-path",
        path,
        "--method",
        method,
    ];
    argv.extend(strings.iter().map(String::as_str));
    argv.push("@a{sv} {}");
    // gdbus prints "Error: GDBus.Error:<name>: <message>".
    run_as(lab, host, uid, &argv, "Error: GDBus.Error:")
}

/// A call of ftd's manager on `host` as `uid`.
pub fn call_as(
    lab: &Lab,
    host: &str,
    uid: u32,
    method: &str,
    args: &[&str],
) -> Result<String, BusError> {
    let t = Instant::now();
    let r = send_as(
        lab,
        host,
        uid,
        BUS_NAME,
        "/org/ftvirt/Ftd1",
        &format!("org.ftvirt.Ftd1.Manager.{method}"),
        args,
    );
    eprintln!(
        "[{host}] uid {uid}: {method}({}) -> {} in {:.0?}",
        args.join(", "),
        match &r {
            Ok(_) => "ok".to_string(),
            Err((n, m)) => format!("{n}: {m}"),
        },
        t.elapsed()
    );
    r
}

/// `e` is ftd's AccessDenied for `action`, about uid `uid`.
pub fn assert_denied(e: &BusError, action: &str, uid: u32) {
    assert_eq!(e.0, ACCESS_DENIED, "{e:?}");
    assert!(e.1.contains(&format!("polkit action {action}")), "{e:?}");
    assert!(e.1.contains(&format!("uid {uid} ")), "{e:?}");
}

/// ftd's configuration for a lone host `a` whose peer `b` is not in the lab
/// (enough for ftd to start and answer; nothing is protected).
pub fn lone_yaml(lab: &Lab) -> String {
    let a = lab.host("a").unwrap();
    format!(
        "host:\n  name: a\n  address: {ip}\npeers:\n  - name: b\n    address: 10.200.0.99\n\
         colo:\n  overlay-dir: {dir}/overlays\n{colo_tls}bus:\n  connect: system\n  name: {BUS_NAME}\n\
         state-dir: {dir}/ftd-state\nrun-dir: {dir}/ftd-run\nlog:\n  output: stderr\n  level: debug\n{tls}",
        ip = a.rep_ip,
        dir = a.dir.display(),
        tls = a.ftd_tls_yaml(),
        colo_tls = a.ftd_colo_tls_yaml(),
    )
}

pub fn start_lone_ftd(lab: &mut Lab, with_polkit: bool) {
    let yaml = lone_yaml(lab);
    let h = lab.host_mut("a").unwrap();
    h.start_dbus().expect("system bus");
    if with_polkit {
        let t = h.start_polkit().expect("polkitd");
        eprintln!("polkitd ready in {t:.1?}");
    }
    h.start_ftd(
        std::path::Path::new(env!("CARGO_BIN_EXE_ftd")),
        &yaml,
        BUS_NAME,
    )
    .expect("ftd");
}

pub fn ftd_log(lab: &Lab, host: &str) -> String {
    std::fs::read_to_string(lab.host(host).unwrap().ftd_log()).unwrap_or_default()
}
