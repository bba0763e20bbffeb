//! Everything that is not an ft-* command reaches virsh exactly as typed: same
//! arguments, same stdin, same stdout/stderr, same exit code.
//!
//! `argv_and_exit_code_are_virsh_s` runs a stand-in `virsh` (first on PATH) that
//! prints its arguments and exits 42: no lab needed. `lab_virsh_commands_pass_through`
//! compares virsh-ft with the real virsh against a lab host's libvirtd.

use ftvirt_lab::{GuestSpec, Lab, LabConfig};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};

const VIRSH_FT: &str = env!("CARGO_BIN_EXE_virsh-ft");

fn run(prog: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = Command::new(prog);
    c.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap_or_else(|e| panic!("{prog}: {e}"));
    let input = stdin.unwrap_or("").to_string();
    let mut pipe = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || pipe.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn argv_and_exit_code_are_virsh_s() {
    let dir = std::env::temp_dir().join(format!("virsh-ft-fake-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("virsh");
    std::fs::write(
        &fake,
        "#!/bin/sh\nfor a in \"$@\"; do printf '[%s]' \"$a\"; done\necho\ncat\necho oops >&2\nexit 42\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let cases: &[(&[&str], &str)] = &[
        (&["list", "--all"], "[list][--all]"),
        (
            &["-c", "qemu:///system?socket=/x y", "dominfo", "g"],
            "[-c][qemu:///system?socket=/x y][dominfo][g]",
        ),
        (
            &[
                "--bus",
                "unix:path=/b",
                "-rq",
                "--connect=test:///default",
                "list",
                "--bus",
                "z",
            ],
            "[-rq][--connect=test:///default][list][--bus][z]",
        ),
        (&["help", "list"], "[help][list]"),
        (&["-c", "qemu:///system"], "[-c][qemu:///system]"),
    ];
    for (args, want) in cases {
        let out = Command::new(VIRSH_FT)
            .args(*args)
            .env("PATH", &path)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(42), "{args:?}");
        assert_eq!(text(&out.stdout), format!("{want}\n"), "{args:?}");
        assert_eq!(text(&out.stderr), "oops\n", "{args:?}");
    }
    // stdin is virsh's own.
    let out = Command::new(VIRSH_FT)
        .args(["list"])
        .env("PATH", &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b"from stdin\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(text(&out.stdout), "[list]\nfrom stdin\n");
    // Without any virsh, a clear error.
    let out = Command::new(VIRSH_FT)
        .args(["list"])
        .env("PATH", dir.join("none"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot run virsh"),
        "{}",
        text(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lab_virsh_commands_pass_through() {
    let Some(lab) = Lab::for_test(LabConfig::hosts(&["a"])) else {
        return;
    };
    lab.boot_guest("a", &GuestSpec::standard("g", 0))
        .expect("boot");
    let uri = lab.host("a").unwrap().uri();
    let cases: &[(&[&str], Option<&str>)] = &[
        (&["list", "--all"], None),
        (&["dominfo", "g"], None),
        (&["domstate", "--reason", "g"], None),
        (&["dominfo", "nosuchdomain"], None), // fails: exit 1 and virsh's message
        (&["no-such-command"], None),
        (&[], Some("list --all\ndomstate g\n")), // virsh's shell, reading stdin
    ];
    for (args, stdin) in cases {
        let mut argv = vec!["-c", uri.as_str()];
        argv.extend_from_slice(args);
        let want = run("virsh", &argv, *stdin);
        let got = run(VIRSH_FT, &argv, *stdin);
        // dominfo's CPU time moves on between the two runs.
        let steady = |o: &Output| -> String {
            text(&o.stdout)
                .lines()
                .filter(|l| !l.starts_with("CPU time:"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(got.status.code(), want.status.code(), "{argv:?}");
        assert_eq!(steady(&got), steady(&want), "{argv:?}");
        assert_eq!(text(&got.stderr), text(&want.stderr), "{argv:?}");
        eprintln!(
            "virsh-ft {argv:?}: exit {:?}, {} bytes out, as virsh",
            got.status.code(),
            got.stdout.len()
        );
    }
    let list = run(VIRSH_FT, &["-c", &uri, "list", "--all"], None);
    assert!(text(&list.stdout).contains(" g "), "{}", text(&list.stdout));
    let failed = run(VIRSH_FT, &["-c", &uri, "dominfo", "nosuchdomain"], None);
    assert_eq!(failed.status.code(), Some(1));
    lab.shutdown().unwrap();
}
