//! The command line (SPEC §1): `run`, `check`, `send`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::chain::Pipeline;
use crate::config::{self, Diagnostic};
use crate::event::Phase;
use crate::setup::{self, Config};
use crate::{client, daemon, deadletter, logging, reload, spool};

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
    let config_file = config::locate(cli.config);
    match cli.command {
        Command::Run => run(config_file),
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
    }
}

/// Loads and builds the config, printing every problem to stderr.
fn load(file: PathBuf) -> Option<(Config, Pipeline, Vec<Diagnostic>)> {
    let loaded = setup::load(&file);
    let Some(config) = loaded.config else {
        loaded.diagnostics.iter().for_each(|d| eprintln!("{d}"));
        return None;
    };
    match Pipeline::build(&config) {
        Ok((pipeline, mut warnings)) => {
            warnings.extend(loaded.diagnostics);
            Some((config, pipeline, warnings))
        }
        Err(problems) => {
            loaded
                .diagnostics
                .iter()
                .chain(&problems)
                .for_each(|d| eprintln!("{d}"));
            None
        }
    }
}

fn run(file: PathBuf) -> ExitCode {
    keep_freed_c_memory();
    let runtime = match start_runtime(&mut tokio::runtime::Builder::new_multi_thread()) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    // A SIGHUP from here on asks for a reload (kept until the watcher
    // runs); it never ends a daemon still starting.
    let hangups = runtime.block_on(async { reload::hangups() });
    let Some((config, pipeline, warnings)) = load(file) else {
        return ExitCode::from(1);
    };
    let _log_files = match logging::init(&config.log) {
        Ok(files) => files,
        Err(err) => {
            eprintln!("jobhook: {err:#}");
            return ExitCode::from(1);
        }
    };
    for warning in &warnings {
        warn!("{warning}");
    }
    let store = match spool::Store::open(&config.daemon.spool_dir, config.daemon.fsync) {
        Ok(store) => store,
        Err(err) => {
            tracing::error!("{:#}", anyhow::Error::new(err));
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(async {
        let listener = match daemon::bind(&config) {
            Ok(listener) => listener,
            Err(err) => {
                tracing::error!("{err}");
                return ExitCode::from(2);
            }
        };
        let shutdown = CancellationToken::new();
        let daemon = daemon::run(config, pipeline, store, listener, hangups, shutdown.clone());
        tokio::select! {
            result = daemon => match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!("{}", config::values::error_chain(&err));
                    ExitCode::from(1)
                }
            },
            // Whatever the daemon was doing is dropped unfinished: every
            // acked event is in the spool already, and progress not yet
            // recorded is redone (at least once) at the next start.
            () = daemon::stop_requests(shutdown) => {
                tracing::error!("second stop signal: exiting now; events stay in the spool");
                ExitCode::from(1)
            }
        }
    });
    // Tasks a second stop signal left running are dropped, not waited for
    // (their events are still in the spool); threads stuck in a file
    // system end with the process.
    runtime.shutdown_background();
    code
}

/// SQLite allocates through the C library's malloc (Rust code through
/// mimalloc). glibc gives freed memory at the top of a thread's heap back to
/// the kernel once more than its trim threshold is free; the spool thread's
/// commits crossed it on every commit, and each `madvise` then interrupted
/// the other CPUs to flush their TLBs (README "Benchmarks" has the cost).
/// A high threshold keeps that memory for the next commit.
fn keep_freed_c_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a malloc tunable; called before any thread
    // of ours starts.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
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
    let runtime = match start_runtime(&mut tokio::runtime::Builder::new_current_thread()) {
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

/// Builds a runtime, or says why it cannot (exit code 1).
fn start_runtime(
    builder: &mut tokio::runtime::Builder,
) -> Result<tokio::runtime::Runtime, ExitCode> {
    builder.enable_all().build().map_err(|err| {
        eprintln!("jobhook: cannot start the runtime: {err}");
        ExitCode::from(1)
    })
}
