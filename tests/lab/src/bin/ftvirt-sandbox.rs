//! `ftvirt-sandbox --unit UNIT [--drop-in FILE]... -- PROGRAM ARGS...`: run
//! PROGRAM under the sandbox that the systemd unit UNIT (and its drop-ins, in
//! order) describes, applied without systemd (see `ftvirt_lab::sandbox`). The lab
//! starts ftd this way with `dbus/ftd.service`; a person can use it to try a
//! command under ftd's limits. Prints one line saying what was applied, then
//! executes PROGRAM (exit status 125 when the sandbox cannot be made).

use ftvirt_lab::sandbox::{self, Sandbox};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("ftvirt-sandbox: {e}");
        std::process::exit(125);
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let usage = "usage: ftvirt-sandbox --unit UNIT [--drop-in FILE]... -- PROGRAM ARGS...";
    let mut unit = None;
    let mut drop_ins = Vec::new();
    let mut it = args.iter();
    let program: Vec<&String> = loop {
        match it.next().map(String::as_str) {
            Some("--unit") => unit = it.next().map(PathBuf::from),
            Some("--drop-in") => drop_ins.push(PathBuf::from(it.next().ok_or(usage)?)),
            Some("--") => break it.collect(),
            _ => return Err(usage.into()),
        }
    };
    let unit = unit.ok_or(usage)?;
    let (prog, rest) = program.split_first().ok_or(usage)?;
    let s = Sandbox::load(&unit, &drop_ins)?;
    sandbox::apply(&s)?;
    eprintln!(
        "ftvirt-sandbox: running {prog} under {}'s sandbox ({}), capabilities {}",
        unit.display(),
        s.seen.join(" "),
        s.capabilities()
            .map(|c| c.join(" "))
            .unwrap_or_else(|| "unbounded".into()),
    );
    let e = std::process::Command::new(prog).args(rest).exec();
    Err(format!("executing {prog}: {e}"))
}
