//! The ft-* commands against each lab host's own ftd, on the host's private system
//! bus (`--bus`): protect, look, fail over, disable; and the errors a user meets.

use ftvirt_lab::{wait_until, GuestSpec, Lab, LabConfig, Look};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const VIRSH_FT: &str = env!("CARGO_BIN_EXE_virsh-ft");
const BUS_NAME: &str = "org.ftvirt.Ftd1";

/// ftd's binary, built for this test run.
///
/// Cargo gives an integration test `CARGO_BIN_EXE_<name>` only for its own package's
/// binaries, and a dev-dependency on ftd would build ftd's library, not its binary
/// (artifact dependencies are unstable). So the test has cargo build ftd into the same
/// target directory and profile as the virsh-ft under test, whose binary is
/// `<target>/<profile>/virsh-ft`; ftd lands next to it. `cargo build` always runs
/// (a no-op taking a moment when ftd is fresh): a binary that merely happens to be
/// there could be stale. `FTVIRT_FTD=<path>` uses a given binary instead.
fn ftd_binary() -> &'static Path {
    static FTD: OnceLock<PathBuf> = OnceLock::new();
    FTD.get_or_init(|| {
        if let Some(p) = std::env::var_os("FTVIRT_FTD") {
            return PathBuf::from(p);
        }
        let exe = Path::new(VIRSH_FT);
        let profile_dir = exe.parent().expect("virsh-ft's directory");
        let target_dir = profile_dir.parent().expect("the target directory");
        let profile = match profile_dir.file_name().and_then(|p| p.to_str()) {
            Some("debug") => "dev",
            Some(p) => p,
            None => panic!("no profile directory in {}", exe.display()),
        };
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let t = Instant::now();
        let st = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--package", "ftd", "--bin", "ftd"])
            .arg("--manifest-path")
            .arg(&workspace)
            .arg("--target-dir")
            .arg(target_dir)
            .args(["--profile", profile])
            .status()
            .expect("running cargo to build ftd");
        assert!(st.success(), "building ftd failed: {st}");
        let ftd = profile_dir.join("ftd");
        assert!(ftd.exists(), "cargo built no {}", ftd.display());
        eprintln!("ftd: {} (cargo build: {:?})", ftd.display(), t.elapsed());
        ftd
    })
}

/// Start the system bus and ftd on host `name` of the lab.
fn start_ftd(lab: &mut Lab, name: &str, peer: &str) {
    let yaml = {
        let (me, p) = (lab.host(name).unwrap(), lab.host(peer).unwrap());
        ftvirt_lab::ftd::yaml(me, p, 2000)
    };
    let h = lab.host_mut(name).unwrap();
    h.start_dbus().expect("system bus");
    h.start_ftd(ftd_binary(), &yaml, BUS_NAME).expect("ftd");
}

/// `virsh-ft --bus <host's bus> ARGS...`
fn virsh_ft(lab: &Lab, host: &str, args: &[&str]) -> Output {
    let bus = lab.host(host).unwrap().bus_address();
    let t = Instant::now();
    let out = Command::new(VIRSH_FT)
        .arg("--bus")
        .arg(&bus)
        .args(args)
        .env_remove("FTVIRT_BUS")
        .output()
        .expect("running virsh-ft");
    eprintln!(
        "[{host}] virsh-ft {} -> {:?} in {:.1?}\n{}{}",
        args.join(" "),
        out.status.code(),
        t.elapsed(),
        indent(&out.stdout),
        indent(&out.stderr)
    );
    out
}

fn indent(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .lines()
        .map(|l| format!("    | {l}\n"))
        .collect()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `ft-status DOMAIN --json` on `host`: the domain's state.
fn state(lab: &Lab, host: &str, domain: &str) -> Option<String> {
    let out = virsh_ft(lab, host, &["ft-status", domain, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v[0]["state"].as_str().map(String::from)
}

/// Wait until `ft-status` (through the CLI, on purpose) says `want`.
fn wait_state(lab: &Lab, host: &str, domain: &str, want: &str, timeout: Duration) {
    let r = wait_until(
        &format!("{domain} to become {want} on {host} (ft-status)"),
        timeout,
        Duration::from_millis(500),
        || {
            let got = state(lab, host, domain);
            Look::holds(got.as_deref() == Some(want), || format!("{got:?}"))
        },
    );
    if let Err(e) = r {
        panic!(
            "{e}; ftd log:\n{}",
            ftvirt_lab::ftd::log_tail(lab, host, 40)
        );
    }
}

/// Wait until host's ftd log shows `needle`.
fn wait_log(lab: &Lab, host: &str, needle: &str, timeout: Duration) {
    let log = lab.host(host).unwrap().ftd_log();
    wait_until(
        &format!("{host}'s ftd to log {needle:?} in {}", log.display()),
        timeout,
        Duration::from_millis(50),
        || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            Look::holds(text.contains(needle), || {
                format!("{} lines", text.lines().count())
            })
        },
    )
    .unwrap();
}

fn assert_ok(o: &Output, what: &str) {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{what}: exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
}

#[test]
fn lab_ft_commands_protect_fail_over_and_disable() {
    let Some(mut lab) = Lab::for_test(LabConfig::hosts(&["a", "b"])) else {
        return;
    };
    lab.boot_guest("a", &GuestSpec::standard("g", 0))
        .expect("boot");
    start_ftd(&mut lab, "a", "b");
    start_ftd(&mut lab, "b", "a");
    // Enable fails at once while the peer link is still coming up ("the peer host is
    // unreachable"): wait until a's ftd has seen b.
    wait_log(&lab, "a", "peer up", Duration::from_secs(30));

    // Nothing protected yet.
    let list = virsh_ft(&lab, "a", &["ft-list", "--json"]);
    assert_ok(&list, "ft-list");
    assert_eq!(stdout(&list).trim(), "[]");

    // ft-enable waits until protected, a progress line per state (stderr is no terminal).
    let t = Instant::now();
    let en = virsh_ft(&lab, "a", &["ft-enable", "g", "--timeout", "240"]);
    assert_ok(&en, "ft-enable g");
    eprintln!("ft-enable g took {:?}", t.elapsed());
    assert!(
        stdout(&en).contains("Domain 'g' is protected (peer b)"),
        "{}",
        stdout(&en)
    );
    let progress = stderr(&en);
    assert!(
        progress.lines().any(|l| l.starts_with("g: preparing (")),
        "{progress}"
    );
    assert!(
        progress.lines().any(|l| l.starts_with("g: protected (")),
        "{progress}"
    );

    // ft-status: the table and JSON.
    let st = virsh_ft(&lab, "a", &["ft-status", "g"]);
    assert_ok(&st, "ft-status g");
    let table = stdout(&st);
    let header = table.lines().next().unwrap_or_default();
    assert!(
        header.starts_with(" Domain   State       Peer   Peer-up   Checkpoints"),
        "{table}"
    );
    let row = table.lines().nth(2).unwrap_or_default();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[..4], ["g", "protected", "b", "yes"], "{table}");
    let list = virsh_ft(&lab, "a", &["ft-list", "--json"]);
    assert_ok(&list, "ft-list --json");
    let v: serde_json::Value =
        serde_json::from_slice(&list.stdout).expect("ft-list --json is JSON");
    let all = v.as_array().expect("an array");
    assert_eq!(all.len(), 1, "{v}");
    assert_eq!(all[0]["domain"], "g");
    assert_eq!(all[0]["state"], "protected");
    assert_eq!(all[0]["peer"], "b");
    assert_eq!(all[0]["wanted"], true);
    // ft-status without a domain is ft-list.
    let st_all = virsh_ft(&lab, "a", &["ft-status", "--json"]);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&st_all.stdout).unwrap()[0]["domain"],
        "g"
    );
    // b's ftd sees its secondary.
    wait_state(&lab, "b", "g", "secondary", Duration::from_secs(60));

    // Planned failover: a hands over to b, which re-protects back onto a by itself.
    let t = Instant::now();
    let fo = virsh_ft(&lab, "a", &["ft-failover", "g", "--timeout", "240"]);
    assert_ok(&fo, "ft-failover g");
    eprintln!("ft-failover g took {:?}", t.elapsed());
    assert!(
        stdout(&fo).contains("Domain 'g' failed over to b"),
        "{}",
        stdout(&fo)
    );
    assert!(
        stderr(&fo).contains("g: switching-over ("),
        "{}",
        stderr(&fo)
    );
    wait_state(&lab, "b", "g", "protected", Duration::from_secs(240));

    // ft-disable on b: b runs g alone, a stands by.
    let dis = virsh_ft(&lab, "b", &["ft-disable", "g"]);
    assert_ok(&dis, "ft-disable g");
    assert!(
        stdout(&dis).contains("Domain 'g' is no longer protected"),
        "{}",
        stdout(&dis)
    );
    assert_eq!(state(&lab, "b", "g").as_deref(), Some("unprotected"));
    let st = virsh_ft(&lab, "b", &["ft-status", "g"]);
    assert!(
        stdout(&st)
            .lines()
            .nth(2)
            .unwrap_or_default()
            .contains(" unprotected "),
        "{}",
        stdout(&st)
    );
    wait_state(&lab, "a", "g", "standby", Duration::from_secs(60));

    // Errors: ftd's message and exit 1.
    let no = virsh_ft(&lab, "a", &["ft-enable", "nosuchdomain"]);
    assert_eq!(no.status.code(), Some(1), "{}", stderr(&no));
    assert!(stderr(&no).starts_with("error: "), "{}", stderr(&no));
    assert!(stderr(&no).contains("\"nosuchdomain\""), "{}", stderr(&no));
    let refused = virsh_ft(&lab, "b", &["ft-failover", "g"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    // Nobody owns the name: ftd is not running.
    let none = virsh_ft(&lab, "a", &["--bus-name", "org.ftvirt.Nobody1", "ft-list"]);
    assert_eq!(none.status.code(), Some(1));
    assert!(
        stderr(&none).contains("cannot reach ftd"),
        "{}",
        stderr(&none)
    );
    assert!(
        stderr(&none).contains("is ftd running?"),
        "{}",
        stderr(&none)
    );
    // The bus from the environment, as scripts set it.
    let env = Command::new(VIRSH_FT)
        .args(["ft-status", "g"])
        .env("FTVIRT_BUS", lab.host("b").unwrap().bus_address())
        .output()
        .unwrap();
    assert_ok(&env, "FTVIRT_BUS=... ft-status g");
    lab.shutdown().unwrap();
}

/// `virsh-ft ARGS...` run inside `host` as uid 65534 (setpriv drops to it before
/// virsh-ft starts), on the host's system bus.
fn virsh_ft_as_nobody(lab: &Lab, host: &str, args: &[&str]) -> Output {
    let mut argv = vec![
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
        VIRSH_FT,
        "--bus",
        "unix:path=/run/dbus/system_bus_socket",
    ];
    argv.extend(args);
    let out = lab
        .host(host)
        .unwrap()
        .command(&argv)
        .unwrap()
        .env_remove("FTVIRT_BUS")
        .output()
        .expect("running virsh-ft");
    eprintln!(
        "[{host}] (uid 65534) virsh-ft {} -> {:?}\n{}{}",
        args.join(" "),
        out.status.code(),
        indent(&out.stdout),
        indent(&out.stderr)
    );
    out
}

/// A user polkit does not authorize (uid 65534, with the lab host's real polkitd
/// and ftd's actions): ft-enable fails with "permission denied" and ftd's reason,
/// naming the polkit action; reading is for anyone.
#[test]
fn lab_ft_commands_refuse_an_unprivileged_user_clearly() {
    let Some(mut lab) = Lab::for_test(LabConfig::hosts(&["a"])) else {
        return;
    };
    let yaml = {
        let a = lab.host("a").unwrap();
        format!(
            "host:\n  name: a\n  address: {ip}\npeers:\n  - name: b\n    address: 10.200.0.99\n\
             colo:\n  overlay-dir: {dir}/overlays\n{colo_tls}bus:\n  connect: system\n  name: {BUS_NAME}\n\
             state-dir: {dir}/ftd-state\nrun-dir: {dir}/ftd-run\nlog:\n  output: stderr\n{tls}",
            ip = a.rep_ip,
            dir = a.dir.display(),
            tls = a.ftd_tls_yaml(),
            colo_tls = a.ftd_colo_tls_yaml(),
        )
    };
    let h = lab.host_mut("a").unwrap();
    h.start_dbus().expect("system bus");
    h.start_polkit().expect("polkitd");
    h.start_ftd(ftd_binary(), &yaml, BUS_NAME).expect("ftd");

    for args in [
        &["ft-enable", "g"][..],
        &["ft-disable", "g"],
        &["ft-failover", "g"],
    ] {
        let out = virsh_ft_as_nobody(&lab, "a", args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stdout(&out).is_empty(), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.starts_with("error: permission denied: uid 65534 "),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("polkit action org.ftvirt.ftd1.manage"),
            "{err}"
        );
        assert!(err.contains("nothing was changed"), "{err}");
    }
    let list = virsh_ft_as_nobody(&lab, "a", &["ft-list", "--json"]);
    assert_ok(&list, "ft-list as uid 65534");
    assert_eq!(stdout(&list).trim(), "[]");
    lab.shutdown().unwrap();
}
