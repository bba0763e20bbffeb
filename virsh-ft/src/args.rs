//! Which command line is ours and which is virsh's. Only the leading global options
//! are looked at, the way virsh itself reads them (getopt stopping at the first
//! word): virsh's own (`-c URI`, `-r`, `--log FILE`, ...) are kept verbatim, ours
//! (`--bus ADDRESS`, `--bus-name NAME`) are taken out, and the first word that is
//! not an option decides. `ft-*`, `completion` and a bare `help` (or `help ft-*`)
//! are ours; so are no arguments at all and `-h`/`--help`. Everything else is
//! handed to virsh exactly as typed.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

/// Where a command line goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// virsh-ft's own commands: parse the whole command line with clap.
    Ours,
    /// `virsh` with these arguments: what the user typed minus our own options.
    Virsh(Vec<OsString>),
}

/// virsh's global options that take a value, short and long.
const VIRSH_SHORT_WITH_VALUE: &[u8] = b"cdekKl";
const VIRSH_SHORT_FLAGS: &[u8] = b"qrtvV";
const VIRSH_LONG_WITH_VALUE: &[&str] = &[
    "connect",
    "debug",
    "escape",
    "keepalive-interval",
    "keepalive-count",
    "log",
];
/// (`--version` takes an optional value, only as `--version=short|long`.)
const VIRSH_LONG_FLAGS: &[&str] = &["quiet", "readonly", "timing", "version"];
/// Our global options; each takes a value.
const OURS_LONG: &[&str] = &["bus", "bus-name"];

/// Commands virsh-ft handles itself (besides `help`).
fn is_our_command(word: &[u8]) -> bool {
    word.starts_with(b"ft-") || word == b"completion"
}

/// Decide where `args` (the command line without the program name) goes.
pub fn route(args: &[OsString]) -> Route {
    if args.is_empty() {
        return Route::Ours;
    }
    let mut virsh: Vec<OsString> = Vec::with_capacity(args.len());
    let mut virsh_option_seen = false;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_bytes();
        if a == b"--" {
            // End of options: the next word is the command, whatever it looks like.
            virsh.extend_from_slice(&args[i..]);
            return decide(args.get(i + 1), args.get(i + 2), virsh);
        }
        if let Some(long) = a.strip_prefix(b"--") {
            let (name, has_value) = match long.iter().position(|&b| b == b'=') {
                Some(eq) => (&long[..eq], true),
                None => (long, false),
            };
            let name = String::from_utf8_lossy(name);
            if OURS_LONG.contains(&name.as_ref()) {
                if !has_value && i + 1 >= args.len() {
                    return Route::Ours; // clap says what is missing
                }
                i += if has_value { 1 } else { 2 };
                continue;
            }
            if name == "help" {
                return Route::Ours;
            }
            let takes_value = VIRSH_LONG_WITH_VALUE.contains(&name.as_ref());
            if !takes_value && !VIRSH_LONG_FLAGS.contains(&name.as_ref()) {
                // Not a virsh option: virsh will say so.
                virsh.extend_from_slice(&args[i..]);
                return Route::Virsh(virsh);
            }
            virsh_option_seen = true;
            let n = if takes_value && !has_value { 2 } else { 1 };
            virsh.extend_from_slice(&args[i..(i + n).min(args.len())]);
            i += n;
            continue;
        }
        if a.len() > 1 && a[0] == b'-' {
            // A cluster of short options, getopt style: `-rc URI`, `-cURI`, `-q`.
            let mut n = 1;
            for (k, &c) in a.iter().enumerate().skip(1) {
                if c == b'h' {
                    return Route::Ours;
                }
                if VIRSH_SHORT_WITH_VALUE.contains(&c) {
                    if k + 1 == a.len() {
                        n = 2; // the value is the next argument
                    }
                    break;
                }
                if !VIRSH_SHORT_FLAGS.contains(&c) {
                    virsh.extend_from_slice(&args[i..]);
                    return Route::Virsh(virsh);
                }
            }
            virsh_option_seen = true;
            virsh.extend_from_slice(&args[i..(i + n).min(args.len())]);
            i += n;
            continue;
        }
        // The first word: the command.
        virsh.extend_from_slice(&args[i..]);
        return decide(args.get(i), args.get(i + 1), virsh);
    }
    // Options only. virsh's own (`-c URI` opens virsh's shell, `-V` its version) go
    // to virsh; our options alone get our help.
    if virsh_option_seen {
        Route::Virsh(virsh)
    } else {
        Route::Ours
    }
}

fn decide(command: Option<&OsString>, next: Option<&OsString>, virsh: Vec<OsString>) -> Route {
    let Some(command) = command else {
        return Route::Virsh(virsh);
    };
    let command = command.as_bytes();
    if is_our_command(command) {
        return Route::Ours;
    }
    if command == b"help" {
        match next {
            None => return Route::Ours,
            Some(n) if is_our_command(n.as_bytes()) => return Route::Ours,
            Some(_) => {}
        }
    }
    Route::Virsh(virsh)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(line: &str) -> Route {
        let args: Vec<OsString> = line.split_whitespace().map(OsString::from).collect();
        route(&args)
    }

    fn virsh(line: &str) -> Route {
        Route::Virsh(line.split_whitespace().map(OsString::from).collect())
    }

    #[test]
    fn ours() {
        for line in [
            "",
            "ft-enable g",
            "ft-status",
            "ft-list --json",
            "-c qemu:///system ft-enable g",
            "--connect qemu:///system ft-disable g --no-wait",
            "--connect=qemu:///system ft-failover g",
            "-cqemu:///system ft-list",
            "--bus unix:path=/tmp/bus ft-status g",
            "--bus=unix:path=/tmp/bus --bus-name org.ftvirt.Test1 ft-list",
            "ft-enabel g", // a typo of ours: clap suggests ft-enable
            "completion bash",
            "help",
            "help ft-enable",
            "--help",
            "-h",
            "-c qemu:///system --help",
            "-rh",
            "--bus unix:path=/tmp/bus",
            "--bus", // clap reports the missing value
            "ft-status --bus unix:path=/tmp/bus g",
        ] {
            assert_eq!(r(line), Route::Ours, "{line:?}");
        }
    }

    #[test]
    fn virsh_gets_exactly_what_was_typed() {
        for line in [
            "list --all",
            "-c qemu:///system dominfo g",
            "--connect qemu:///system dominfo g",
            "--connect=qemu:///system list",
            "-cqemu:///system list",
            "-rc qemu:///system list",
            "-q -r -t list",
            "-d 4 -l /tmp/log -e ^] -k 5 -K 3 list",
            "--debug 4 --log /tmp/log --escape ^] --keepalive-interval 5 --keepalive-count 3 list",
            "--readonly --quiet --timing list",
            "help list",
            "list --help",       // the command's own help is virsh's
            "dominfo ft-enable", // only the command word decides
            "-c ft-enable list", // a URI that looks like ours is still a value
            "--connect ft-list list",
            "-- list",
            "-c qemu:///system", // virsh's interactive shell
            "-V",
            "--version",
            "--version=long",
            "-x list", // unknown to virsh too: virsh says so
            "--frobnicate list",
            "-",
        ] {
            assert_eq!(r(line), virsh(line), "{line:?}");
        }
    }

    #[test]
    fn our_options_are_taken_out_of_virsh_s_command_line() {
        assert_eq!(
            r("--bus unix:path=/tmp/bus -c qemu:///system list --all"),
            virsh("-c qemu:///system list --all")
        );
        assert_eq!(
            r("-c qemu:///system --bus-name=org.ftvirt.Test1 --bus=unix:path=/b dominfo g"),
            virsh("-c qemu:///system dominfo g")
        );
        // After the command word nothing is ours, even if it looks like it.
        assert_eq!(
            r("list --bus unix:path=/tmp/bus"),
            virsh("list --bus unix:path=/tmp/bus")
        );
    }

    #[test]
    fn non_utf8_arguments_pass_through_untouched() {
        use std::os::unix::ffi::OsStringExt;
        let odd = OsString::from_vec(vec![b'g', 0xff, b'x']);
        let args = vec![OsString::from("dominfo"), odd.clone()];
        assert_eq!(route(&args), Route::Virsh(args.clone()));
        let args = vec![OsString::from("-c"), odd, OsString::from("list")];
        assert_eq!(route(&args), Route::Virsh(args.clone()));
    }
}
