//! The daemon: ingest → queue → workers → chains, and the orderly stop.
//!
//! Stopping (SIGTERM, SIGINT, service stop) goes: stop accepting; answer the
//! lines clients already sent; let the workers finish the events in their
//! lanes, up to `shutdown_timeout`; past it, log each event left by id. What
//! is left (and every retry still waiting) stays in the spool and is resumed
//! at the next start. A second SIGTERM or SIGINT ends the wait at once
//! ([`stop_requests`]).

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info};

use crate::chain::Pipeline;
use crate::ingest::{self, Limits, Listener};
use crate::setup::Config;
use crate::spool::{self, Lanes, Spool, StartError, Store};
use crate::{reload, worker};

/// Opens the ingest endpoint named by the config.
pub fn bind(config: &Config) -> Result<Listener, ingest::BindError> {
    #[cfg(unix)]
    let endpoint = config.daemon.socket.as_path();
    #[cfg(windows)]
    let endpoint = config.daemon.pipe.as_str();
    Listener::bind(endpoint, config.daemon.socket_mode.0)
}

/// Runs until `shutdown` fires, then stops in order. `hangups` are SIGHUPs
/// ([`reload::hangups`]), listened for since before the socket was bound.
pub async fn run(
    config: Config,
    pipeline: Pipeline,
    store: Store,
    listener: Listener,
    hangups: mpsc::Receiver<()>,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let config = Arc::new(config);
    let daemon = &config.daemon;
    let workers = daemon.worker_count();
    let (lanes, receivers) = Lanes::new(workers);
    let spool = Spool::start(
        store,
        spool::Limits {
            fsync: daemon.fsync,
            in_memory: daemon.queue_capacity,
            max_bytes: daemon.max_spool_bytes.0,
            dedupe_window: daemon.dedupe_window.0,
            max_dedupe_bytes: daemon.max_dedupe_bytes.0,
            filling: config.hooks.queue_filling_threshold,
            emptying: config.hooks.queue_emptying_threshold,
        },
        lanes,
    )?;
    let queue = spool.queue();
    let (pipelines, current) = watch::channel(Arc::new(pipeline));
    let abandon = CancellationToken::new();
    let tracker = TaskTracker::new();
    for lane in receivers {
        tracker.spawn(worker::work(
            lane,
            current.clone(),
            spool.recorder(),
            abandon.clone(),
        ));
    }
    tracker.close();
    let reloads = tokio::spawn(reload::watch(
        config.clone(),
        pipelines,
        hangups,
        shutdown.clone(),
    ));
    info!(workers, config = %config.file.display(), "jobhook started");

    let limits = Limits {
        max_connections: daemon.max_connections,
        max_event_bytes: daemon.max_event_bytes.0.try_into().unwrap_or(usize::MAX),
        idle_timeout: daemon.idle_timeout.0,
        stall_timeout: daemon.stall_timeout.0,
    };
    listener.serve(Arc::new(queue), limits, shutdown).await;
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
