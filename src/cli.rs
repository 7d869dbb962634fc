//! The command line (SPEC §1): `run`, `check`, `send`, `deadletter`,
//! `handlers`, `reload`, `tail`, `service`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::chain::Pipeline;
use crate::config;
use crate::event::Phase;
use crate::setup;
use crate::sources::Sources;
use crate::{admin_cli, client, daemon, deadletter, service};

#[derive(Debug, Parser)]
#[command(
    name = "jobhook",
    version,
    about = "Routes job-completion events from a local socket through HTTP, Lua and text-file handlers.",
    long_about = None,
    after_help = "Config lookup when -c is absent: $JOBHOOK_CONFIG, ./handlers.toml, then the system-wide file."
)]
pub(crate) struct Cli {
    /// The config file (handlers.toml).
    #[arg(short, long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon in the foreground until SIGTERM or SIGINT.
    /// Exit codes: 0 clean stop, 1 bad config, 2 cannot bind.
    Run,
    /// Validate the config; print each problem as FILE:LINE:COL: message.
    /// Exit codes: 0 valid, 1 invalid.
    Check,
    /// Send events (one JSON object, a JSON array, or NDJSON) to the daemon
    /// as they are read; print one reply line per event as it comes.
    /// Exit codes: 0 all accepted, 1 any rejected (or unreadable input),
    /// 2 cannot connect, 3 the daemon closed the connection before
    /// answering every event.
    Send {
        /// Socket (Windows: pipe) to send to, instead of the config's.
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
        /// Set this Phase on every event (OnStart, OnFinish, OnError).
        #[arg(long, value_name = "P", value_parser = parse_phase)]
        phase: Option<Phase>,
        /// File to read events from; `-` or absent reads standard input.
        #[arg(value_name = "FILE|-")]
        input: Option<PathBuf>,
    },
    /// Inspect, replay and purge failed deliveries kept in the spool.
    /// Exit codes: 0 ok, 1 refused.
    Deadletter {
        #[command(subcommand)]
        action: deadletter::Action,
    },
    /// List, show, enable, disable, register and remove handlers through
    /// the running daemon's admin API. Exit codes: 0 ok, 1 refused, 2
    /// cannot reach the daemon.
    Handlers {
        #[command(subcommand)]
        action: admin_cli::HandlersAction,
        #[command(flatten)]
        access: admin_cli::Access,
    },
    /// Reload the running daemon's config through its admin API and say
    /// how it went. Exit codes: 0 applied, 1 refused, 2 cannot reach.
    Reload {
        #[command(flatten)]
        access: admin_cli::Access,
    },
    /// Follow the running daemon: each event accepted and each handler
    /// outcome, as they happen (admin API, permission events:read).
    Tail {
        /// Only this handler's outcomes (accepted events are always shown).
        #[arg(long, value_name = "NAME")]
        handler: Option<String>,
        #[command(flatten)]
        access: admin_cli::Access,
    },
    /// Install or uninstall jobhook as a service (systemd unit, or Windows
    /// service). Exit codes: 0 ok, 1 refused.
    Service {
        #[command(subcommand)]
        action: service::Action,
    },
}

fn parse_phase(name: &str) -> Result<Phase, NotAChain> {
    match Phase::parse(name) {
        Some(Phase::OnQueueEvent) | None => Err(NotAChain),
        Some(phase) => Ok(phase),
    }
}

/// `--phase` names no chain an event can be sent to.
#[derive(Debug, thiserror::Error)]
#[error("expected OnStart, OnFinish or OnError")]
struct NotAChain;

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config_file = config::locate(cli.config.clone());
    match cli.command {
        Command::Run => service::run(config_file),
        Command::Check => check(config_file),
        Command::Send {
            socket,
            phase,
            input,
        } => send(config_file, socket, phase, input),
        Command::Deadletter { action } => {
            let loaded = setup::load(&config_file);
            match loaded.config {
                Some(config) => deadletter::run(&config, action),
                None => {
                    loaded.diagnostics.iter().for_each(|d| eprintln!("{d}"));
                    ExitCode::from(1)
                }
            }
        }
        Command::Handlers { action, access } => admin_cli::handlers(&config_file, &access, action),
        Command::Reload { access } => admin_cli::reload(&config_file, &access),
        Command::Tail { handler, access } => {
            admin_cli::tail(&config_file, &access, handler.as_deref())
        }
        // The service's config is where `-c` says, or the system-wide file:
        // never one found in the current folder.
        Command::Service { action } => service::command(action, cli.config),
    }
}

fn check(file: PathBuf) -> ExitCode {
    let loaded = setup::load(&file);
    let mut diagnostics = loaded.diagnostics;
    let pipeline = match &loaded.config {
        Some(config) => match Pipeline::build(config) {
            Ok((pipeline, warnings)) => {
                diagnostics.extend(warnings);
                Some(pipeline)
            }
            Err(problems) => {
                diagnostics.extend(problems);
                None
            }
        },
        None => None,
    };
    if let Some(config) = &loaded.config
        && let Err(problems) = daemon::credentials(config)
    {
        let nowhere = config::Position {
            file: file.clone(),
            line: 0,
            column: 0,
        };
        diagnostics.extend(problems.into_iter().map(|problem| nowhere.error(problem)));
    }
    // Sources are built as the daemon builds them: clients made, secrets read.
    if let Some(config) = &loaded.config
        && let Err(problems) = Sources::build(&config.sources, config.http())
    {
        diagnostics.extend(problems);
    }
    for diagnostic in &diagnostics {
        println!("{diagnostic}");
    }
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    match (&pipeline, errors) {
        (Some(pipeline), 0) => {
            println!(
                "{}: ok, {} handlers",
                file.display(),
                pipeline.handler_count()
            );
            for phase in Phase::ALL {
                let names: Vec<&str> = pipeline
                    .chain(phase)
                    .iter()
                    .map(|stage| stage.name.as_str())
                    .collect();
                println!("  {phase}: {}", names.join(" → "));
            }
            ExitCode::SUCCESS
        }
        _ => {
            println!("{}: {errors} error(s)", file.display());
            ExitCode::from(1)
        }
    }
}

fn send(
    config_file: PathBuf,
    socket: Option<PathBuf>,
    phase: Option<Phase>,
    input: Option<PathBuf>,
) -> ExitCode {
    let endpoint = match socket.map_or_else(|| client::endpoint_from_config(&config_file), Ok) {
        Ok(endpoint) => endpoint,
        Err(err) => {
            eprintln!("jobhook: {err:#}");
            return ExitCode::from(2);
        }
    };
    let input: Box<dyn BufRead + Send> = match input {
        Some(path) if path.as_os_str() != "-" => match std::fs::File::open(&path) {
            Ok(file) => Box::new(BufReader::new(file)),
            Err(err) => {
                eprintln!("jobhook: cannot read {}: {err}", path.display());
                return ExitCode::from(1);
            }
        },
        _ => Box::new(BufReader::new(std::io::stdin())),
    };
    let runtime = match daemon::start_runtime(&mut tokio::runtime::Builder::new_current_thread()) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let mut out = std::io::stdout().lock();
    match runtime.block_on(client::send(&endpoint, input, phase, &mut out)) {
        Ok(tally) if tally.rejected == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(err) => {
            let code = err.exit_code();
            eprintln!("jobhook: {:#}", anyhow::Error::new(err));
            ExitCode::from(code)
        }
    }
}
