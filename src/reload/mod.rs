//! Hot reload: `handlers.toml`'s folder and `scripts_dir` are watched (and
//! SIGHUP listened for). A change is parsed, validated and built into a
//! complete new pipeline off the hot path, then swapped in; events already in
//! a chain finish on the pipeline they started with. A broken change is
//! logged, problem by problem, and the running pipeline stays.
//!
//! Watching the folders rather than the files keeps working whatever the
//! editor does (write in place, write a new file and rename it, a symlink
//! swap as Kubernetes ConfigMaps do); a batch of events only causes a reload
//! when the config's bytes or the scripts' files actually changed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

mod changes;
mod requests;
mod snapshot;

pub use requests::{Report, Request, Requester, requests};

use changes::{accident, restart_needed};
use snapshot::{SETTLE, SETTLE_READS, Snapshot};

use crate::chain::{Pipeline, Previous};
use crate::config;
use crate::lifecycle::{Observer, Observers, Reloaded};
use crate::setup::{self, Config};
use crate::telemetry;

/// How long the watcher waits for a burst of file events to end.
const DEBOUNCE: Duration = Duration::from_millis(150);
/// Why a reload runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// Files changed; handlers whose settings did not change are kept.
    Change { seen: Instant },
    /// SIGHUP or a [`Request`]: every handler is built anew (secret files
    /// are read again), whether or not the files changed.
    Signal,
}

/// The config now running and the pipeline built from it: swapped in
/// together, so whoever reads one never sees the other's predecessor.
#[derive(Clone)]
pub struct Running {
    pub config: Arc<Config>,
    pub pipeline: Arc<Pipeline>,
}

struct Reloader {
    running: Arc<Config>,
    /// The `[daemon]` settings the daemon started with, which need a restart.
    started: Arc<Config>,
    /// Told each config and pipeline swapped in (workers run events on the
    /// pipeline, the admin API shows both).
    swaps: watch::Sender<Running>,
    snapshot: Snapshot,
    /// Reload failures since the last success (reported when one succeeds).
    failures: u64,
    /// Told when a reload begins and how it ends.
    observers: Observers,
}

/// Watches and reloads until `shutdown` fires, starting from what `swaps`
/// holds; each reload applied is sent on it. Reloads happen on file changes, `hangups` and `requests` (each answered
/// with its [`Report`]). `observers` are told of every reload
/// ([`Observer::reloading`], then [`Observer::reloaded`]).
pub async fn watch(
    swaps: watch::Sender<Running>,
    mut hangups: mpsc::Receiver<()>,
    mut requests: mpsc::Receiver<Request>,
    observers: Observers,
    shutdown: CancellationToken,
) {
    let (changes, mut changed) = mpsc::unbounded_channel::<Instant>();
    let debouncer = new_debouncer(
        DEBOUNCE,
        None,
        move |result: DebounceEventResult| match result {
            Ok(events) => {
                if let Some(first) = events.iter().map(|event| event.time).min() {
                    let _ = changes.send(first);
                }
            }
            Err(errors) => {
                for err in errors {
                    warn!("watching the config: {err}");
                }
            }
        },
    );
    let mut debouncer = match debouncer {
        Ok(debouncer) => Some(debouncer),
        Err(err) => {
            error!("cannot watch the config for changes ({err}); reload with SIGHUP");
            None
        }
    };
    let Running { config, pipeline } = swaps.borrow().clone();
    if let Some(debouncer) = &mut debouncer {
        watch_folders(debouncer, &config);
    }

    let initial = Snapshot::running(&config, &pipeline);
    let mut reloader = Reloader {
        snapshot: initial,
        running: config.clone(),
        started: config,
        swaps,
        failures: 0,
        observers,
    };
    // A change made between loading the config and watching it.
    reloader
        .reload(
            Trigger::Change {
                seen: Instant::now(),
            },
            &shutdown,
        )
        .await;
    loop {
        let mut answer = None;
        let trigger = tokio::select! {
            () = shutdown.cancelled() => return,
            Some(seen) = changed.recv() => Trigger::Change { seen },
            Some(()) = hangups.recv() => {
                info!("SIGHUP received: reloading the config");
                Trigger::Signal
            }
            Some(Request(reply)) = requests.recv() => {
                info!("reload requested through the admin API");
                answer = Some(reply);
                Trigger::Signal
            }
        };
        let report = reloader.reload(trigger, &shutdown).await;
        if let Some(Report {
            outcome: Reloaded::Applied,
            ..
        }) = &report
            && let Some(debouncer) = &mut debouncer
        {
            watch_folders(debouncer, &reloader.running);
        }
        if let Some(answer) = answer {
            let outcome = match report {
                Some(report) => report,
                None if shutdown.is_cancelled() => return,
                None => Report {
                    outcome: Reloaded::Refused {
                        problems: vec![format!(
                            "{}: the config is still being written; not reloaded (try again)",
                            reloader.running.file.display()
                        )],
                    },
                    warnings: Vec::new(),
                    handlers: reloader.swaps.borrow().pipeline.handler_count(),
                },
            };
            let _ = answer.send(outcome);
        }
    }
}

/// Watches the config's folder and `scripts_dir` (once it exists; watching
/// a folder already watched changes nothing).
fn watch_folders(debouncer: &mut Debouncer<RecommendedWatcher, RecommendedCache>, config: &Config) {
    if let Err(err) = debouncer.watch(&config.dir, RecursiveMode::NonRecursive) {
        error!(dir = %config.dir.display(), "cannot watch the config's folder ({err}); reload with SIGHUP");
    }
    if config.daemon.scripts_dir.is_dir() {
        let _ = debouncer.watch(&config.daemon.scripts_dir, RecursiveMode::Recursive);
    }
}

impl Reloader {
    /// Reloads if the files changed (or on a signal, whatever they hold),
    /// telling the observers; says how it ended, or `None` when nothing was
    /// reloaded (the files had not changed, were still being written, or
    /// the daemon is stopping).
    async fn reload(&mut self, trigger: Trigger, shutdown: &CancellationToken) -> Option<Report> {
        if !self.changed(trigger, shutdown).await {
            return None;
        }
        self.observers.reloading();
        let (outcome, warnings) = self.apply(trigger, shutdown).await;
        if let Reloaded::Refused { problems } = &outcome {
            self.failed(problems);
        }
        // A reload cut short by a stop is neither.
        if outcome != Reloaded::Abandoned {
            telemetry::counters::reloaded(outcome == Reloaded::Applied);
        }
        self.observers.reloaded(&outcome);
        Some(Report {
            outcome,
            warnings,
            handlers: self.swaps.borrow().pipeline.handler_count(),
        })
    }

    /// Waits for the files to settle; whether they differ from what the
    /// running pipeline was built from (always, for a signal). Files are
    /// read on a thread of their own, which a stop does not wait for: a disk
    /// that hangs can delay a reload, never a shutdown.
    async fn changed(&mut self, trigger: Trigger, shutdown: &CancellationToken) -> bool {
        let (file, scripts_dir) = (
            self.running.file.clone(),
            self.running.daemon.scripts_dir.clone(),
        );
        let settled = off_runtime(shutdown, move || Snapshot::settled(&file, &scripts_dir));
        let snapshot = match settled.await {
            Some(Some(snapshot)) => snapshot,
            Some(None) => {
                warn!(
                    "the config is still changing after {}; it is reloaded once it settles",
                    humantime::format_duration(SETTLE * SETTLE_READS as u32)
                );
                return false;
            }
            None => return false, // stopping
        };
        if trigger != Trigger::Signal && snapshot == self.snapshot {
            return false; // an editor's temporary file, a log written beside the config
        }
        self.snapshot = snapshot;
        true
    }

    /// Builds the config as the files now hold it (off the runtime, like
    /// [`Reloader::changed`]) and swaps it in unless it is refused; the
    /// warnings about it come back with the outcome.
    async fn apply(
        &mut self,
        trigger: Trigger,
        shutdown: &CancellationToken,
    ) -> (Reloaded, Vec<String>) {
        let started = Instant::now();
        let file = self.running.file.clone();
        let running = self.running.clone();
        let previous_pipeline = self.swaps.borrow().pipeline.clone();
        let reuse = matches!(trigger, Trigger::Change { .. });
        let Some(built) = off_runtime(shutdown, move || {
            build(file, &running, &previous_pipeline, reuse)
        })
        .await
        else {
            return (Reloaded::Abandoned, Vec::new());
        };
        let (config, pipeline, warnings) = match built {
            Ok(built) => built,
            Err(problems) => return (Reloaded::Refused { problems }, Vec::new()),
        };
        if let Some(reason) = accident(&self.running, &config) {
            let problems = vec![format!(
                "{}: {reason}; not applied (restart jobhook to apply it on purpose)",
                config.file.display()
            )];
            return (Reloaded::Refused { problems }, Vec::new());
        }
        for warning in &warnings {
            warn!("{warning}");
        }
        for key in restart_needed(&self.started, &config) {
            warn!("{key} changed; it takes effect at the next restart (keeping the running value)");
        }
        let since_change = match trigger {
            Trigger::Change { seen } => seen.elapsed().as_millis(),
            Trigger::Signal => started.elapsed().as_millis(),
        };
        let resolved = std::mem::take(&mut self.failures);
        info!(
            build_ms = started.elapsed().as_millis(),
            since_change_ms = since_change,
            "config reloaded{}",
            if resolved > 0 {
                format!(" (after {resolved} failed reload(s), now resolved)")
            } else {
                String::new()
            }
        );
        self.running = Arc::new(config);
        self.swaps.send_replace(Running {
            config: self.running.clone(),
            pipeline: Arc::new(pipeline),
        });
        (Reloaded::Applied, warnings)
    }

    fn failed(&mut self, problems: &[String]) {
        self.failures += 1;
        for problem in problems {
            error!("{problem}");
        }
        error!(
            errors = problems.len(),
            config_reload_failures_total = self.failures,
            "config reload failed; still running the previous config"
        );
    }
}

/// Runs `work` on a thread of its own; `None` if `shutdown` fires first (the
/// thread is left to finish by itself, and nothing waits for it).
async fn off_runtime<T: Send + 'static>(
    shutdown: &CancellationToken,
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (done, result) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("jobhook-reload".to_owned())
        .spawn(move || {
            let _ = done.send(work());
        });
    if let Err(err) = spawned {
        error!("cannot start a thread to reload the config: {err}");
        return None;
    }
    tokio::select! {
        () = shutdown.cancelled() => None,
        result = result => result.ok(),
    }
}

/// Loads and builds the config at `file`, reusing `previous`'s handlers when
/// `reuse` is set. Problems come back as printed diagnostics.
fn build(
    file: PathBuf,
    running: &Config,
    pipeline: &Pipeline,
    reuse: bool,
) -> Result<(Config, Pipeline, Vec<String>), Vec<String>> {
    let loaded = setup::load(&file);
    let text =
        |list: &[config::Diagnostic]| list.iter().map(ToString::to_string).collect::<Vec<_>>();
    let Some(config) = loaded.config else {
        return Err(text(&loaded.diagnostics));
    };
    let previous = reuse.then_some(Previous {
        config: running,
        pipeline,
    });
    let mut messages = text(&loaded.diagnostics);
    match Pipeline::rebuild(&config, previous) {
        Ok((pipeline, warnings)) => {
            messages.extend(text(&warnings));
            Ok((config, pipeline, messages))
        }
        Err(problems) => {
            messages.extend(text(&problems));
            Err(messages)
        }
    }
}

/// SIGHUP, as a stream of `()` (never on Windows). Called first thing at
/// start: from then on a SIGHUP is a reload request (one is kept until the
/// watcher runs), never the signal's default of ending the process.
pub fn hangups() -> mpsc::Receiver<()> {
    let (send, receive) = mpsc::channel(1);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        // Installed now, not in the task: the task may first run later.
        match signal(SignalKind::hangup()) {
            Ok(mut hangup) => {
                tokio::spawn(async move {
                    while hangup.recv().await.is_some() {
                        // Full: a reload is already asked for, which is enough.
                        if let Err(mpsc::error::TrySendError::Closed(())) = send.try_send(()) {
                            return;
                        }
                    }
                });
            }
            Err(err) => error!("cannot listen for SIGHUP: {err}"),
        }
    }
    #[cfg(not(unix))]
    drop(send);
    receive
}
