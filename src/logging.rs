//! The daemon's own log: stderr always, rolling files when `[log] dir` is set.

use anyhow::Context as _;
use tracing::warn;
use tracing_appender::non_blocking::{ErrorCounter, WorkerGuard};
use tracing_appender::rolling::{RollingFileAppender, Rotation as AppenderRotation};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, fmt};

use crate::config::{LogFormat, LogSettings, Rotation};

/// The variable that overrides `[log] level` (tracing EnvFilter syntax).
pub const LOG_ENV: &str = "JOBHOOK_LOG";

/// The thread writing `[log] dir`'s files. Keep it alive for the life of
/// the process: dropping it flushes (for a second at most) and stops it.
pub struct LogFiles {
    dropped: ErrorCounter,
    _guard: WorkerGuard,
}

impl Drop for LogFiles {
    fn drop(&mut self) {
        let dropped = self.dropped.dropped_lines();
        if dropped > 0 {
            warn!(
                "{dropped} log lines were not written to the log files: their disk did not keep up"
            );
        }
    }
}

/// Installs the global subscriber.
pub fn init(settings: &LogSettings) -> anyhow::Result<Option<LogFiles>> {
    let directives = std::env::var(LOG_ENV).unwrap_or_else(|_| settings.level.clone());
    let filter = EnvFilter::try_new(&directives)
        .with_context(|| format!("invalid log level {directives:?}"))?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut layers = vec![layer(settings.format, std::io::stderr, ansi)];
    let guard = match &settings.dir {
        Some(dir) => {
            let rotation = match settings.rotation {
                Rotation::Hourly => AppenderRotation::HOURLY,
                Rotation::Daily => AppenderRotation::DAILY,
                Rotation::Never => AppenderRotation::NEVER,
            };
            let appender = RollingFileAppender::builder()
                .rotation(rotation)
                .filename_prefix("jobhook")
                .filename_suffix("log")
                .build(dir)
                .with_context(|| format!("cannot write logs to {}", dir.display()))?;
            // Lossy: when the files' disk stalls, lines beyond the 128,000
            // waiting are dropped (and counted) rather than every thread that
            // logs blocking on it, which would freeze the daemon. Stderr
            // still gets every line.
            let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .lossy(true)
                .finish(appender);
            let dropped = writer.error_counter();
            layers.push(layer(settings.format, writer, false));
            Some(LogFiles {
                dropped,
                _guard: guard,
            })
        }
        None => None,
    };
    tracing_subscriber::registry()
        .with(layers)
        .with(filter)
        .try_init()
        .context("a logger is already installed")?;
    Ok(guard)
}

type BoxedLayer = Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>;

fn layer<W>(format: LogFormat, writer: W, ansi: bool) -> BoxedLayer
where
    W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = fmt::layer().with_writer(writer).with_ansi(ansi);
    match format {
        LogFormat::Text => layer.boxed(),
        LogFormat::Json => layer.json().with_current_span(true).boxed(),
    }
}
