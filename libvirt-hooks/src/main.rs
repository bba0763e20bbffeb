//! `ftvirt-hook DOMAIN OPERATION SUB-OPERATION EXTRA < domain.xml`: see the crate
//! documentation (`src/lib.rs`). Exits 0 at once, except for a refused start of a
//! marked domain (`prepare`, exit 1).

use ftvirt_hook::notify::{self, Bus};
use ftvirt_hook::{decide, invocation, outcome_line, start, Action, Invocation};

fn main() {
    // A panic must not fail libvirt's operation (exit code 101): log it, exit 0.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("ftvirt-hook: internal error, ignoring this call: {info}");
        std::process::exit(0);
    }));
    run();
    // Exit now, even if a D-Bus or stdin thread is still blocked somewhere.
    std::process::exit(0);
}

fn run() {
    let inv = match Invocation::from_args(std::env::args_os().skip(1)) {
        Ok(i) => i,
        Err(e) => return eprintln!("ftvirt-hook: {e}; ignoring this call"),
    };
    if !inv.operation.concerns_ftd() {
        return;
    }
    let xml = match invocation::read_with_deadline(
        std::io::stdin(),
        invocation::MAX_XML,
        invocation::STDIN_DEADLINE,
    ) {
        Ok(x) => x,
        Err(e) => {
            return eprintln!(
                "ftvirt-hook: domain {} {}: {e}; ignoring this call",
                inv.domain,
                inv.operation.as_str()
            )
        }
    };
    match decide(&inv, &xml) {
        Action::Nothing => {}
        Action::Log(line) => eprintln!("{line}"),
        Action::AskToStart => {
            let r = notify::notify(&Bus::from_env(), &inv.domain, "prepare", notify::TIMEOUT);
            let path = start::config_path();
            match start::verdict(&inv.domain, &r, || start::uses_witness(&path)) {
                start::Verdict::Start(line) => eprintln!("{line}"),
                start::Verdict::Refuse(line) => {
                    eprintln!("{line}");
                    std::process::exit(1);
                }
            }
        }
        Action::Notify => {
            let r = notify::notify(
                &Bus::from_env(),
                &inv.domain,
                inv.operation.as_str(),
                notify::TIMEOUT,
            );
            eprintln!("{}", outcome_line(&inv, &r));
        }
    }
}
