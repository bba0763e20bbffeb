//! `virsh-ft`: virsh with ftvirt's `ft-*` commands. `ft-enable`, `ft-disable`,
//! `ft-failover`, `ft-status` and `ft-list` talk to this host's ftd over D-Bus
//! (`ftd-proxy`); every other command line is `exec`ed as `virsh` unchanged, so its
//! input, output and exit code are virsh's own.
//!
//! - `args`: which command lines are ours, what virsh gets;
//! - `cli`: our command line (clap);
//! - `ftd`: the connection to ftd, its errors, waiting with progress;
//! - `table`: status tables and JSON.

mod args;
mod cli;
mod ftd;
mod table;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser};
use cli::{Cli, Cmd, Format, Wait};
use ftd::{Ask, Ftd, Goal};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let argv: Vec<_> = std::env::args_os().collect();
    if let args::Route::Virsh(virsh_args) = args::route(argv.get(1..).unwrap_or_default()) {
        let e = std::process::Command::new("virsh").args(virsh_args).exec();
        eprintln!("error: cannot run virsh: {e} (it comes with libvirt-clients)");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse_from(argv);
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .and_then(|rt| rt.block_on(run(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let broken_pipe = e
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe);
            if !broken_pipe {
                eprintln!("error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let connect = |cli: &Cli| {
        let (bus, name) = (cli.bus.clone(), cli.bus_name.clone());
        let uri = cli.connect.clone();
        async move {
            ftd::check_local(uri.as_deref())?;
            Ftd::connect(bus.as_deref(), &name).await
        }
    };
    match &cli.cmd {
        Cmd::Enable {
            domain,
            peer,
            interval,
            auto_reprotect,
            wait,
        } => {
            let ftd = connect(&cli).await?;
            let opts = ftd_proxy::EnableOptions {
                peer: peer.clone(),
                checkpoint_interval_ms: *interval,
                auto_reprotect: *auto_reprotect,
            };
            let first = ftd
                .enable(domain, &opts, Ask::from_flag(wait.no_ask_password))
                .await?;
            finish(&ftd, domain, &first, ftd::ENABLE, *wait, |st| {
                format!("Domain '{domain}' is protected (peer {})", st.peer)
            })
            .await
        }
        Cmd::Disable { domain, wait } => {
            let ftd = connect(&cli).await?;
            let first = ftd
                .disable(domain, Ask::from_flag(wait.no_ask_password))
                .await?;
            finish(&ftd, domain, &first, ftd::DISABLE, *wait, |_| {
                format!("Domain '{domain}' is no longer protected")
            })
            .await
        }
        Cmd::Failover { domain, wait } => {
            let ftd = connect(&cli).await?;
            let first = ftd
                .failover(domain, Ask::from_flag(wait.no_ask_password))
                .await?;
            finish(&ftd, domain, &first, ftd::FAILOVER, *wait, |st| {
                format!("Domain '{domain}' failed over to {}", st.peer)
            })
            .await
        }
        Cmd::Status {
            domain: Some(domain),
            format,
        } => {
            let ftd = connect(&cli).await?;
            show(&[ftd.status(domain).await?], *format)
        }
        Cmd::Status {
            domain: None,
            format,
        }
        | Cmd::List { format } => {
            let ftd = connect(&cli).await?;
            show(&ftd.list().await?, *format)
        }
        Cmd::Completion { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "virsh-ft", &mut script);
            out(&script)
        }
    }
}

/// After ftd accepted a request: wait for `goal` (unless `--no-wait`) and say so.
async fn finish(
    ftd: &Ftd,
    domain: &str,
    first: &str,
    goal: Goal,
    wait: Wait,
    done: impl FnOnce(&ftd_proxy::DomainStatus) -> String,
) -> Result<()> {
    if wait.no_wait {
        return out(format!("Domain '{domain}': request accepted, now {first}\n").as_bytes());
    }
    let st = ftd::wait(ftd, domain, first, goal, Duration::from_secs(wait.timeout)).await?;
    out(format!("{}\n", done(&st)).as_bytes())
}

fn show(rows: &[ftd_proxy::DomainStatus], format: Format) -> Result<()> {
    let text = if format.json {
        table::json(rows)
    } else {
        table::table(rows)
    };
    out(text.as_bytes())
}

/// Write to stdout; a closed pipe is an error `main` keeps quiet about.
fn out(bytes: &[u8]) -> Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(bytes)?;
    o.flush()?;
    Ok(())
}
