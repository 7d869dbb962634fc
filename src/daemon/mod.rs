//! The daemon: ingest and sources → queue → workers → chains, and the
//! orderly stop.
//!
//! Stopping (SIGTERM, SIGINT, service stop) goes: stop accepting; answer the
//! lines clients already sent; let the workers finish the events in their
//! lanes, up to `shutdown_timeout`; past it, log each event left by id. What
//! is left (and every retry still waiting) stays in the spool and is resumed
//! at the next start. A second SIGTERM or SIGINT ends the wait at once
//! ([`stop_requests`]).
//!
//! Whoever supervises the daemon (systemd, the Windows service manager) is
//! told through a [`Supervision`]: ready once the socket is bound, the spool
//! open and the pipeline built; stopping when the stop begins; and a
//! heartbeat from the spool thread and from the runtime.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::chain::Pipeline;
use crate::config::{self, Diagnostic};
use crate::ingest::Limits;
use crate::lifecycle::{Observer, Observers, Supervision};
use crate::setup::{self, Config};
use crate::sources::Sources;
use crate::spool::{self, Lanes, Spool, StartError, Store};
use crate::{admin, ingest, logging, reload, telemetry, worker};

mod listeners;
mod memory;

pub use listeners::{Listeners, credentials};

/// How often the runtime's heartbeat is beaten.
const RUNTIME_BEAT: Duration = Duration::from_secs(1);
/// What a supervisor is told to allow, after `shutdown_timeout`, for the
/// spool's last commit.
const LAST_COMMIT: Duration = Duration::from_secs(15);

/// `jobhook run`, from the config file to the exit code (SPEC §1: 0 clean
/// stop, 1 bad config, 2 cannot bind), in a console and as a service alike.
/// The stop begins when `shutdown` is cancelled; `stop_now` resolving ends
/// it at once (a second stop request), leaving what is unfinished in the
/// spool.
pub fn main(
    file: PathBuf,
    supervision: Supervision,
    shutdown: CancellationToken,
    stop_now: impl Future<Output = ()>,
) -> ExitCode {
    memory::keep_freed_c_memory();
    memory::no_huge_pages();
    memory::purge_sooner();
    let runtime = match start_runtime(&mut tokio::runtime::Builder::new_multi_thread()) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    // A SIGHUP from here on asks for a reload (kept until the watcher
    // runs); it never ends a daemon still starting.
    let hangups = runtime.block_on(async { reload::hangups() });
    let Some((built, warnings)) = load(file) else {
        return ExitCode::from(1);
    };
    let config = &built.config;
    let credentials = match credentials(config) {
        Ok(credentials) => credentials,
        Err(problems) => {
            problems.iter().for_each(|problem| eprintln!("{problem}"));
            return ExitCode::from(1);
        }
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
            error!("{:#}", anyhow::Error::new(err));
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(async {
        let listeners = match Listeners::bind(&built.config, credentials) {
            Ok(listeners) => listeners,
            Err(err) => {
                error!("{err:#}");
                return ExitCode::from(2);
            }
        };
        let daemon = run(built, store, listeners, hangups, supervision, shutdown);
        tokio::select! {
            result = daemon => match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    error!("{}", config::values::error_chain(&err));
                    ExitCode::from(1)
                }
            },
            // Whatever the daemon was doing is dropped unfinished: every
            // acked event is in the spool already, and progress not yet
            // recorded is redone (at least once) at the next start.
            () = stop_now => {
                error!("second stop signal: exiting now; events stay in the spool");
                ExitCode::from(1)
            }
        }
    });
    // Tasks a second stop request left running are dropped, not waited for
    // (their events are still in the spool); threads stuck in a file
    // system end with the process.
    runtime.shutdown_background();
    code
}

/// A config and what was built from it, ready to run.
pub struct Built {
    pub config: Config,
    pub pipeline: Pipeline,
    pub sources: Sources,
}

/// Loads and builds the config (its pipeline and its sources), printing
/// every problem to stderr. With an admin API, metrics are recorded from
/// here on (the pipeline's handlers take their handles as they are built).
pub fn load(file: PathBuf) -> Option<(Built, Vec<Diagnostic>)> {
    let loaded = setup::load(&file);
    let Some(config) = loaded.config else {
        loaded.diagnostics.iter().for_each(|d| eprintln!("{d}"));
        return None;
    };
    if config.admin.is_some() {
        telemetry::counters::install();
    }
    let built = Pipeline::build(&config).and_then(|(pipeline, warnings)| {
        let sources = Sources::build(&config.sources, config.http())?;
        Ok((pipeline, sources, warnings))
    });
    match built {
        Ok((pipeline, sources, mut warnings)) => {
            warnings.extend(loaded.diagnostics);
            let built = Built {
                config,
                pipeline,
                sources,
            };
            Some((built, warnings))
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

/// Builds a runtime, or says why it cannot (exit code 1).
pub fn start_runtime(
    builder: &mut tokio::runtime::Builder,
) -> Result<tokio::runtime::Runtime, ExitCode> {
    builder.enable_all().build().map_err(|err| {
        eprintln!("jobhook: cannot start the runtime: {err}");
        ExitCode::from(1)
    })
}

/// Runs until `shutdown` fires, then stops in order. `hangups` are SIGHUPs
/// ([`reload::hangups`]), listened for since before the socket was bound.
pub async fn run(
    Built {
        config,
        pipeline,
        sources,
    }: Built,
    store: Store,
    listeners: Listeners,
    hangups: mpsc::Receiver<()>,
    supervision: Supervision,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let config = Arc::new(config);
    let Supervision {
        observers,
        spool: spool_beat,
        runtime: runtime_beat,
    } = supervision;
    let health = Arc::new(admin::Health::default());
    let observers = Observers::new(vec![Arc::new(observers), health.clone()]);
    let daemon = &config.daemon;
    let workers = daemon.worker_count();
    let (lanes, receivers) = Lanes::new(workers);
    let spool = Spool::start(
        store,
        spool::Limits {
            fsync: daemon.fsync,
            in_memory: daemon.queue_capacity,
            max_bytes: daemon.max_spool_bytes.0,
            submitted_bytes: spool::budget_bytes(daemon.max_event_bytes.0),
            dedupe_window: daemon.dedupe_window.0,
            max_dedupe_bytes: daemon.max_dedupe_bytes.0,
            filling: config.hooks.queue_filling_threshold,
            emptying: config.hooks.queue_emptying_threshold,
        },
        lanes,
        spool_beat,
    )?;
    // A runtime whose workers are all stuck runs this no more.
    let beating = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(RUNTIME_BEAT);
        loop {
            ticks.tick().await;
            runtime_beat.beat();
        }
    });
    let queue = Arc::new(spool.queue());
    let (swaps, running) = watch::channel(reload::Running {
        config: config.clone(),
        pipeline: Arc::new(pipeline),
    });
    let abandon = CancellationToken::new();
    let tracker = TaskTracker::new();
    for lane in receivers {
        tracker.spawn(worker::work(
            lane,
            running.clone(),
            spool.recorder(),
            abandon.clone(),
        ));
    }
    tracker.close();
    let (reload_requester, reload_requests) = reload::requests();
    // The admin API serves until the daemon has stopped (`/health` says
    // so meanwhile).
    let admin_stop = CancellationToken::new();
    let admin_served = listeners.admin.map(|listener| {
        let shared = admin::Shared {
            tokens: listeners.tokens.clone().unwrap_or_default(),
            running,
            changes: tokio::sync::Mutex::new(()),
            reload: reload_requester,
            spool: spool.status(),
            spool_dir: daemon.spool_dir.clone(),
            fsync: daemon.fsync,
            health,
            metrics: telemetry::counters::install(),
            shutdown: admin_stop.clone(),
        };
        let config = config.clone();
        tokio::spawn(async move {
            let settings = config.admin.as_ref().expect("listening for [admin]");
            listener.serve(settings, shared).await;
        })
    });
    let limits = Limits {
        max_connections: daemon.max_connections,
        max_event_bytes: daemon.max_event_bytes.0.try_into().unwrap_or(usize::MAX),
        idle_timeout: daemon.idle_timeout.0,
        stall_timeout: daemon.stall_timeout.0,
    };
    // Like the socket, HTTP ingest answers what it began before the spool
    // closes.
    let ingest_served = listeners.http.map(|listener| {
        let settings = config
            .http_ingest
            .as_ref()
            .expect("listening for [ingest.http]");
        let access = match &listeners.tokens {
            _ if settings.anonymous => ingest::http::Access::Anonymous,
            tokens => ingest::http::Access::Tokens(tokens.clone().unwrap_or_default()),
        };
        let shared = ingest::http::Shared {
            access,
            queue: queue.clone(),
            max_event_bytes: limits.max_event_bytes,
            request_timeout: settings.request_timeout.0,
            turns: tokio::sync::Semaphore::new(settings.max_requests),
            shutdown: shutdown.clone(),
        };
        let config = config.clone();
        tokio::spawn(async move {
            let settings = config
                .http_ingest
                .as_ref()
                .expect("listening for [ingest.http]");
            listener.serve(settings, shared).await;
        })
    });
    // Sources stop at `shutdown`, before the spool closes its lanes: a look
    // in progress is abandoned (what it committed stays).
    let sourcing = TaskTracker::new();
    let source_count = sources.len();
    sources.start(&queue, &shutdown, &sourcing);
    sourcing.close();
    info!(workers, sources = source_count, config = %config.file.display(), "jobhook started");
    // Before the reloader starts: a reload is never announced before this.
    observers.ready();
    tokio::spawn({
        let (observers, shutdown) = (observers.clone(), shutdown.clone());
        let within = daemon.shutdown_timeout.0 + LAST_COMMIT;
        async move {
            shutdown.cancelled().await;
            observers.stopping(within);
        }
    });
    let reloads = tokio::spawn(reload::watch(
        swaps,
        hangups,
        reload_requests,
        observers,
        shutdown.clone(),
    ));

    listeners.events.serve(queue, limits, shutdown).await;
    if let Some(served) = ingest_served {
        let _ = served.await;
    }
    sourcing.wait().await;
    let _ = reloads.await;
    // Every connection has ended. The spool hands out no more events (due
    // retries wait for the next start); the workers drain their lanes.
    spool.close_lanes();
    info!("stopped accepting events; finishing accepted events");
    let deadline = daemon.shutdown_timeout.0;
    if tokio::time::timeout(deadline, tracker.wait())
        .await
        .is_err()
    {
        error!(
            timeout = %humantime::format_duration(deadline),
            "shutdown_timeout passed with events still in handlers; they stay in the spool for the next start"
        );
        abandon.cancel();
        tracker.wait().await;
    }
    // The last commit waits on the disk: off the runtime, so that a second
    // stop signal is still heard while the disk hangs.
    let _ = tokio::task::spawn_blocking(move || spool.stop()).await;
    admin_stop.cancel();
    if let Some(served) = admin_served {
        let _ = served.await;
    }
    beating.abort();
    info!("jobhook stopped");
    Ok(())
}

/// Cancels `shutdown` at the first request to stop (SIGTERM or SIGINT /
/// Ctrl-C) and resolves at the second: whoever runs the daemon then exits
/// at once, without waiting for `shutdown_timeout`.
pub async fn stop_requests(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        // One stream each, kept across both requests: none is missed.
        let mut terminate = signal(SignalKind::terminate()).expect("install SIGTERM handler");
        let mut interrupt = signal(SignalKind::interrupt()).expect("install SIGINT handler");
        for _ in 0..2 {
            tokio::select! {
                _ = terminate.recv() => info!("SIGTERM received"),
                _ = interrupt.recv() => info!("SIGINT received"),
            }
            shutdown.cancel();
        }
    }
    #[cfg(not(unix))]
    for _ in 0..2 {
        let _ = tokio::signal::ctrl_c().await;
        info!("Ctrl-C received");
        shutdown.cancel();
    }
}
