//! The `[daemon]`, `[log]` and `[hooks]` sections.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use toml::de::DeTable;

use super::per_phase::PerPhase;
use super::values::{Bytes, FileMode, Seconds, count_between, positive_duration, size_between};
use crate::event::Phase;
use crate::spool::Fsync;

/// The sections `config` itself reads: everything but `[handlers.*]`,
/// `[ssl.*]` and `[api]`, which their components read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Top {
    #[serde(default)]
    pub daemon: DaemonSettings,
    #[serde(default)]
    pub log: LogSettings,
    #[serde(default)]
    pub hooks: Hooks,
}

impl Top {
    pub fn deserialize_from(root: Spanned<DeTable<'_>>) -> Result<Top, toml::de::Error> {
        Top::deserialize(toml::de::Deserializer::from(root))
    }
}

/// `[daemon]`: the socket, concurrency and limits. Changing `socket`, `pipe`
/// or `workers` needs a restart.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DaemonSettings {
    /// Unix stream socket that clients write events to, relative to the config
    /// file's directory unless absolute. Default `/run/jobhook/jobhook.sock`.
    pub socket: PathBuf,
    /// Permissions of the socket file; who may send events. Default `"0660"`.
    pub socket_mode: FileMode,
    /// Windows named pipe that clients write events to. Default `\\.\pipe\jobhook`.
    pub pipe: String,
    /// Windows: the accounts that may write events to the pipe (`DOMAIN\name`,
    /// a local name, `NT SERVICE\name`, or a SID), beside SYSTEM,
    /// Administrators and the account jobhook runs as. Remote clients are
    /// always refused. Default none.
    pub pipe_clients: Vec<String>,
    /// Folder of Lua scripts: `lua_script` paths and `require` resolve here,
    /// and drop-in handlers are found here. Relative to the config file's
    /// directory unless absolute. Default `"scripts"`.
    pub scripts_dir: PathBuf,
    /// Events handled at the same time (events of one JobId are always handled
    /// one after another). 0 means the number of CPUs; at most 1024.
    /// Default 0.
    #[serde(deserialize_with = "count_between::<_, 0, 1024>")]
    pub workers: usize,
    /// Longest event line accepted; longer lines are rejected with `too_large`.
    /// From 64 bytes to 256 MiB, and no more than `max_spool_bytes`.
    /// Default `"1MiB"`.
    #[serde(deserialize_with = "size_between::<_, 64, { 256 << 20 }>")]
    pub max_event_bytes: Bytes,
    /// Clients connected at the same time, from 1 to 65536. When all are
    /// connected, a new client takes the place of the one idle longest (no
    /// line half sent, no reply owed), which is disconnected; if none is
    /// idle, it waits until one leaves. Default 256.
    #[serde(deserialize_with = "count_between::<_, 1, 65536>")]
    pub max_connections: usize,
    /// A client that sends no line for this long, with no reply owed to it,
    /// is disconnected. More than 0. Default `"5m"`.
    #[serde(deserialize_with = "positive_duration")]
    pub idle_timeout: Seconds,
    /// A client that takes this long to finish a line it began, or to read
    /// a reply, is disconnected (the unfinished line is not accepted).
    /// More than 0. Default `"30s"`.
    #[serde(deserialize_with = "positive_duration")]
    pub stall_timeout: Seconds,
    /// Events handed to the workers and not yet finished (or set to retry):
    /// what the daemon holds in memory. Beyond it, accepted events wait on
    /// disk, in the spool, and are read back in the order accepted as room
    /// frees up (so do events left by the last run); only
    /// `max_spool_bytes` refuses new events. From 1 to 10,000,000. Default
    /// 2000: with fewer, more events are read back from disk, which costs
    /// more CPU than keeping them (README "Benchmarks"), and each one held
    /// takes about 1.9 KB.
    #[serde(deserialize_with = "count_between::<_, 1, 10_000_000>")]
    pub queue_capacity: usize,
    /// How long a stop (SIGTERM, SIGINT) waits for accepted events to finish
    /// their chains; what is left stays in the spool for the next start.
    /// Default `"30s"`.
    pub shutdown_timeout: Seconds,
    /// Folder of the durable spool (accepted events, pending retries, dead
    /// letters), relative to the config file's directory. Default `"var/spool"`.
    pub spool_dir: PathBuf,
    /// When commits reach the disk: `always` (each event on its own),
    /// `batch` (events arriving together, synced before their acks) or
    /// `never` (survives a killed process, not a power loss). Default `batch`.
    pub fsync: Fsync,
    /// Bytes of pending events (accepted, not yet through their chain)
    /// above which new events are answered `overloaded`. The events a
    /// commit stored together (64 KiB, or past it by one event) count
    /// until the last of them is through or waits for a retry. Dead
    /// letters and
    /// the ids kept for dedupe are not pending events and do not count.
    /// At least 64 KiB. Default `"1GiB"`.
    #[serde(deserialize_with = "size_between::<_, { 64 << 10 }, { u64::MAX }>")]
    pub max_spool_bytes: Bytes,
    /// An `Id` accepted again within this long is acked as a duplicate and
    /// not handled again. Default `"24h"`.
    pub dedupe_window: Seconds,
    /// Bytes of `Id`s kept for dedupe at most. Beyond it the oldest are
    /// forgotten before `dedupe_window` ends (with a warning), so a resend
    /// of one of them is handled again. They are listed on disk once, and
    /// looked up in memory as 12-byte hashes, 13 to 16 bytes an id with the
    /// tables' free room: at this default, about 466,000 GUIDs (a day at 5
    /// events a second) and up to about 7 MiB of memory; shorter ids fit
    /// more (1.4 million of 12 characters, up to about 22 MiB). Default
    /// `"16MiB"`.
    pub max_dedupe_bytes: Bytes,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        DaemonSettings {
            socket: PathBuf::from("/run/jobhook/jobhook.sock"),
            socket_mode: FileMode(0o660),
            pipe: r"\\.\pipe\jobhook".to_owned(),
            pipe_clients: Vec::new(),
            scripts_dir: PathBuf::from("scripts"),
            workers: 0,
            max_event_bytes: Bytes(1 << 20),
            max_connections: 256,
            idle_timeout: Seconds(Duration::from_secs(5 * 60)),
            stall_timeout: Seconds(Duration::from_secs(30)),
            queue_capacity: 2_000,
            shutdown_timeout: Seconds(Duration::from_secs(30)),
            spool_dir: PathBuf::from("var/spool"),
            fsync: Fsync::Batch,
            max_spool_bytes: Bytes(1 << 30),
            dedupe_window: Seconds(Duration::from_secs(24 * 3600)),
            max_dedupe_bytes: Bytes(16 << 20),
        }
    }
}

impl DaemonSettings {
    /// Makes the paths absolute, relative to `dir` (the config's folder).
    pub fn resolve_paths(&mut self, dir: &Path) {
        self.socket = dir.join(&self.socket);
        self.scripts_dir = dir.join(&self.scripts_dir);
        self.spool_dir = dir.join(&self.spool_dir);
    }

    /// `workers`, with 0 replaced by the number of CPUs.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        }
    }
}

/// `[log]`: where the daemon's own log goes.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// Minimum level (`error`, `warn`, `info`, `debug`, `trace`), or any
    /// tracing EnvFilter directive such as `"info,jobhook::chain=debug"`.
    /// `$JOBHOOK_LOG` overrides it. Default `"info"`.
    pub level: String,
    /// `text` for people, `json` for log shippers. Default `text`.
    pub format: LogFormat,
    /// Also write log files here (as well as stderr). Default: stderr only.
    pub dir: Option<PathBuf>,
    /// When log files roll over to a new file: `hourly`, `daily` or `never`.
    /// Default `daily`.
    pub rotation: Rotation,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: "info".to_owned(),
            format: LogFormat::Text,
            dir: None,
            rotation: Rotation::Daily,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rotation {
    Hourly,
    Daily,
    Never,
}

/// How the wait between retries grows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backoff {
    /// Always `retry_interval`.
    #[default]
    Fixed,
    /// `retry_interval` doubled after each attempt, capped at
    /// `max_retry_interval`, with full jitter.
    Exponential,
}

/// `[hooks]`: for each phase, the handlers an event runs through, in order.
#[derive(Debug)]
pub struct Hooks {
    /// The handler names of each phase's chain.
    pub chains: PerPhase<Vec<Spanned<String>>>,
    /// Fraction of `max_spool_bytes` above which `QueueFilling` is raised.
    pub queue_filling_threshold: f64,
    /// Fraction of `max_spool_bytes` below which a filling spool raises
    /// `QueueEmptying` (then `QueueEmpty` once nothing is pending).
    pub queue_emptying_threshold: f64,
}

/// `[hooks]` as written: a key per phase.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HooksSection {
    /// Handlers for events with `Phase = OnStart`.
    #[serde(rename = "OnStart", default)]
    on_start: Vec<Spanned<String>>,
    /// Handlers for events with `Phase = OnFinish` (the default phase).
    #[serde(rename = "OnFinish", default)]
    on_finish: Vec<Spanned<String>>,
    /// Handlers for events with `Phase = OnError` (the default when `JobResult = Failure`).
    #[serde(rename = "OnError", default)]
    on_error: Vec<Spanned<String>>,
    /// Handlers for the daemon's own `QueueEvent`s: `QueueFilling`,
    /// `QueueFull`, `QueueEmptying`, `QueueEmpty`.
    #[serde(rename = "OnQueueEvent", default)]
    on_queue_event: Vec<Spanned<String>>,
    /// Fraction of `max_spool_bytes` above which `QueueFilling` is raised.
    /// Default 0.8.
    #[serde(default = "default_filling")]
    queue_filling_threshold: f64,
    /// Fraction of `max_spool_bytes` below which a filling spool raises
    /// `QueueEmptying` (then `QueueEmpty` once nothing is pending). Default 0.2.
    #[serde(default = "default_emptying")]
    queue_emptying_threshold: f64,
}

impl<'de> Deserialize<'de> for Hooks {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut section = HooksSection::deserialize(deserializer)?;
        Ok(Hooks {
            chains: PerPhase::from_fn(|phase| {
                std::mem::take(match phase {
                    Phase::OnStart => &mut section.on_start,
                    Phase::OnFinish => &mut section.on_finish,
                    Phase::OnError => &mut section.on_error,
                    Phase::OnQueueEvent => &mut section.on_queue_event,
                })
            }),
            queue_filling_threshold: section.queue_filling_threshold,
            queue_emptying_threshold: section.queue_emptying_threshold,
        })
    }
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            chains: PerPhase::default(),
            queue_filling_threshold: default_filling(),
            queue_emptying_threshold: default_emptying(),
        }
    }
}

fn default_filling() -> f64 {
    0.8
}

fn default_emptying() -> f64 {
    0.2
}

impl Hooks {
    /// The handler names of one phase's chain.
    pub fn chain(&self, phase: Phase) -> &[Spanned<String>] {
        &self.chains[phase]
    }

    pub fn chains(&self) -> impl Iterator<Item = (Phase, &[Spanned<String>])> {
        self.chains
            .iter()
            .map(|(phase, names)| (phase, names.as_slice()))
    }
}
