//! virsh-ft's own command line (clap): the global options and the `ft-*` commands.
//! What is not ours never reaches clap (see `args`).

use clap::{Args, Parser, Subcommand};
use clap_complete::Shell;

const GLOBAL: &str = "Global options";

const AFTER_HELP: &str = "\
Every other command and option is handed to virsh unchanged, exit code included:
`virsh-ft list --all` runs `virsh list --all`, `virsh-ft -c URI dominfo DOM` runs
`virsh -c URI dominfo DOM` (see `virsh help`).

The ft-* commands talk to ftd on this host's system bus (or --bus): ftd protects the
domains of this host's libvirt, so run virsh-ft on the host that runs the domain.
Exit status: 0 done, 1 failed (ftd's reason is printed), 2 bad usage.";

/// virsh with fault tolerance: protect libvirt domains with QEMU COLO through ftd.
#[derive(Debug, Parser)]
#[command(name = "virsh-ft", after_help = AFTER_HELP, arg_required_else_help = true)]
pub struct Cli {
    /// libvirt URI, as `virsh -c` (ft-* act on this host's ftd only)
    #[arg(short = 'c', long = "connect", value_name = "URI", global = true, help_heading = GLOBAL)]
    pub connect: Option<String>,
    /// D-Bus address of the bus ftd is on [default: the system bus]
    #[arg(long, value_name = "ADDRESS", env = "FTVIRT_BUS", global = true, help_heading = GLOBAL)]
    pub bus: Option<String>,
    /// ftd's bus name
    #[arg(
        long = "bus-name",
        value_name = "NAME",
        default_value = ftd_proxy::BUS_NAME,
        global = true,
        help_heading = GLOBAL
    )]
    pub bus_name: String,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Protect a running domain with its peer host; waits until it is protected
    #[command(name = "ft-enable")]
    Enable {
        /// Domain name, as in `virsh list`
        domain: String,
        /// Peer host for the secondary (a host under peers: in ftd.yaml) [default: the domain's annotation, then ftd's peer]
        #[arg(long, value_name = "HOST")]
        peer: Option<String>,
        /// Checkpoint interval in milliseconds, 100 to 60000 [default: the domain's annotation, then ftd.yaml]
        #[arg(long, value_name = "MS")]
        interval: Option<u64>,
        /// Re-protect by itself when a lost peer is back [default: the domain's annotation, then ftd.yaml]
        #[arg(long, value_name = "yes|no", value_parser = parse_yes_no)]
        auto_reprotect: Option<bool>,
        #[command(flatten)]
        wait: Wait,
    },
    /// Stop protecting a domain (it keeps running here); waits until unprotected
    #[command(name = "ft-disable")]
    Disable {
        /// Domain name, as in `virsh list`
        domain: String,
        #[command(flatten)]
        wait: Wait,
    },
    /// Planned failover: the peer takes the domain over; waits until this host hands over
    #[command(name = "ft-failover")]
    Failover {
        /// Domain name, as in `virsh list`
        domain: String,
        #[command(flatten)]
        wait: Wait,
    },
    /// Protection status of a domain, or of every domain ftd knows (as ft-list)
    #[command(name = "ft-status")]
    Status {
        /// Domain name [default: every domain]
        domain: Option<String>,
        #[command(flatten)]
        format: Format,
    },
    /// Every domain ftd knows on this host
    #[command(name = "ft-list")]
    List {
        #[command(flatten)]
        format: Format,
    },
    /// Print a shell completion script for virsh-ft's own commands
    Completion {
        #[arg(value_enum)]
        shell: Shell,
    },
}

/// How long a command waits for ftd to get there.
#[derive(Debug, Clone, Copy, Args)]
pub struct Wait {
    /// Return as soon as ftd has accepted the request
    #[arg(long)]
    pub no_wait: bool,
    /// Give up waiting after this many seconds (ftd carries on)
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub timeout: u64,
    /// Never ask for a password: without it, on a terminal, polkit may ask
    /// (through an authentication agent) when ftd's policy says auth_admin
    #[arg(long)]
    pub no_ask_password: bool,
}

#[derive(Debug, Clone, Copy, Args)]
pub struct Format {
    /// A JSON array of status objects, for scripts
    #[arg(long)]
    pub json: bool,
}

fn parse_yes_no(s: &str) -> Result<bool, String> {
    match s {
        "yes" | "true" | "on" => Ok(true),
        "no" | "false" | "off" => Ok(false),
        _ => Err(format!("{s:?} is not yes or no")),
    }
}

/// The host part of a libvirt URI (`qemu+ssh://b/system` -> `b`), if it names one
/// other than this host.
pub fn remote_host(uri: &str) -> Option<&str> {
    let (_, rest) = uri.split_once("://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => host.split(':').next().unwrap_or(host),
    };
    match host {
        "" | "localhost" | "127.0.0.1" | "::1" => None,
        h => Some(h),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_globals_anywhere_and_defaults() {
        let c =
            Cli::try_parse_from(["virsh-ft", "ft-enable", "g", "-c", "qemu:///system"]).unwrap();
        assert_eq!(c.connect.as_deref(), Some("qemu:///system"));
        assert_eq!(c.bus_name, "org.ftvirt.Ftd1");
        match c.cmd {
            Cmd::Enable {
                domain,
                wait,
                peer,
                interval,
                auto_reprotect,
            } => {
                assert_eq!(domain, "g");
                assert!(!wait.no_wait);
                assert_eq!(wait.timeout, 300);
                assert_eq!((peer, interval, auto_reprotect), (None, None, None));
            }
            other => panic!("{other:?}"),
        }
        let c = Cli::try_parse_from([
            "virsh-ft",
            "ft-enable",
            "g",
            "--peer",
            "b",
            "--interval",
            "500",
            "--auto-reprotect",
            "no",
        ])
        .unwrap();
        assert!(matches!(
            c.cmd,
            Cmd::Enable {
                peer: Some(ref p),
                interval: Some(500),
                auto_reprotect: Some(false),
                ..
            } if p == "b"
        ));
        assert!(
            Cli::try_parse_from(["virsh-ft", "ft-enable", "g", "--auto-reprotect", "maybe"])
                .is_err()
        );
        let c = Cli::try_parse_from([
            "virsh-ft",
            "--bus",
            "unix:path=/b",
            "ft-failover",
            "--no-wait",
            "--timeout",
            "5",
            "--no-ask-password",
            "g",
        ])
        .unwrap();
        assert_eq!(c.bus.as_deref(), Some("unix:path=/b"));
        assert!(matches!(
            c.cmd,
            Cmd::Failover {
                wait: Wait {
                    no_wait: true,
                    timeout: 5,
                    no_ask_password: true
                },
                ..
            }
        ));
        assert!(matches!(
            Cli::try_parse_from(["virsh-ft", "ft-status"]).unwrap().cmd,
            Cmd::Status {
                domain: None,
                format: Format { json: false }
            }
        ));
        assert!(Cli::try_parse_from(["virsh-ft", "ft-enable"]).is_err());
        assert!(Cli::try_parse_from(["virsh-ft", "completion", "tcsh"]).is_err());
    }

    #[test]
    fn remote_uris_are_recognised() {
        for (uri, host) in [
            ("qemu:///system", None),
            ("qemu:///system?socket=/var/tmp/x/run/libvirt-sock", None),
            ("qemu+unix:///system", None),
            ("qemu://localhost/system", None),
            ("test:///default", None),
            ("qemu+ssh://b/system", Some("b")),
            ("qemu+ssh://root@host-b:2222/system", Some("host-b")),
            ("qemu+tcp://[fe80::1]/system", Some("fe80::1")),
            (
                "qemu+tls://b.example.org/system?no_verify=1",
                Some("b.example.org"),
            ),
        ] {
            assert_eq!(remote_host(uri), host, "{uri}");
        }
    }
}
