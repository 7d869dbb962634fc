//! `jobhook send`: streams events to a running daemon and prints its reply
//! to each as it comes.
//!
//! The input is read and split on a thread of its own while the socket is
//! written and the replies read, so memory stays bounded whatever the input
//! size (a few events in flight), and the daemon never waits on replies that
//! nobody reads.

use std::cell::Cell;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::mpsc;

use crate::config::DaemonSettings;
use crate::event::Phase;

mod lines;
/// Where the daemon listens, read from `[daemon]` only, so that a config with
/// problems elsewhere does not stop an operator from sending events.
pub fn endpoint_from_config(file: &Path) -> anyhow::Result<PathBuf> {
    #[derive(Deserialize, Default)]
    struct Addresses {
        #[serde(default)]
        daemon: Endpoint,
    }
    #[derive(Deserialize, Default)]
    struct Endpoint {
        socket: Option<PathBuf>,
        pipe: Option<String>,
    }
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read config {}", file.display()))?;
    let addresses: Addresses = toml::from_str(&text)
        .map_err(|err| anyhow::anyhow!("{}: {}", file.display(), err.message()))?;
    let defaults = DaemonSettings::default();
    if cfg!(windows) {
        return Ok(PathBuf::from(
            addresses.daemon.pipe.unwrap_or(defaults.pipe),
        ));
    }
    let socket = addresses.daemon.socket.unwrap_or(defaults.socket);
    let dir = file.parent().unwrap_or(Path::new("."));
    Ok(dir.join(socket))
}

/// Event lines read but not yet written to the socket.
const EVENTS_QUEUED: usize = 16;

/// How a send ended when every event got its reply.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub replies: u64,
    pub rejected: u64,
}

/// Why a send did not end with a reply to every event it read.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot connect to {} (is the daemon running?)", .endpoint.display())]
    Connect {
        endpoint: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the daemon closed the connection after {replies} replies to {events} events")]
    Closed {
        replies: u64,
        events: u64,
        /// The failed read or write that found it closed, if one did.
        #[source]
        source: Option<io::Error>,
    },
    #[error("cannot read the events")]
    Input(#[source] io::Error),
    #[error("cannot write the replies")]
    Output(#[source] io::Error),
}

impl SendError {
    /// The exit code documented for `jobhook send`.
    pub fn exit_code(&self) -> u8 {
        match self {
            SendError::Connect { .. } => 2,
            SendError::Closed { .. } => 3,
            SendError::Input(_) | SendError::Output(_) => 1,
        }
    }
}

/// Connects to the daemon, streams the events read from `input` to it and
/// writes each reply to `out` as one line.
pub async fn send(
    endpoint: &Path,
    input: Box<dyn BufRead + Send>,
    phase: Option<Phase>,
    out: &mut dyn Write,
) -> Result<Tally, SendError> {
    let (read, write) = connect(endpoint)
        .await
        .map_err(|source| SendError::Connect {
            endpoint: endpoint.to_owned(),
            source,
        })?;
    let (queue, events) = mpsc::channel(EVENTS_QUEUED);
    // A thread, not a blocking task: one stuck reading a terminal must not
    // hold up the runtime's shutdown.
    std::thread::spawn(move || {
        let read = lines::split(input, phase, &mut |mut line| {
            line.push(b'\n');
            queue
                .blocking_send(Ok(line))
                .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
        });
        if let Err(err) = read {
            let _ = queue.blocking_send(Err(err));
        }
    });
    exchange(read, write, events, out).await
}

#[cfg(unix)]
async fn connect(endpoint: &Path) -> io::Result<(impl AsyncRead + Unpin, impl AsyncWrite + Unpin)> {
    Ok(tokio::net::UnixStream::connect(endpoint)
        .await?
        .into_split())
}

#[cfg(windows)]
async fn connect(endpoint: &Path) -> io::Result<(impl AsyncRead + Unpin, impl AsyncWrite + Unpin)> {
    let pipe = tokio::net::windows::named_pipe::ClientOptions::new().open(endpoint)?;
    Ok(tokio::io::split(pipe))
}

/// Writes the event lines as they come and reads the replies at the same
/// time, until the daemon closes the connection (it does once it has
/// answered every line after the end of ours).
async fn exchange(
    read: impl AsyncRead + Unpin,
    write: impl AsyncWrite + Unpin,
    mut events: mpsc::Receiver<io::Result<Vec<u8>>>,
    out: &mut dyn Write,
) -> Result<Tally, SendError> {
    let sent = Cell::new(0);
    let sending = async {
        let mut write = BufWriter::new(write);
        let mut input_error = None;
        // Flushed whenever no event is waiting: many events per write under
        // load, each event at once when the input comes slowly.
        while let Some(event) = match events.try_recv() {
            Ok(event) => Some(event),
            Err(_) => {
                write.flush().await?;
                events.recv().await
            }
        } {
            match event {
                Ok(line) => write.write_all(&line).await?,
                Err(err) => {
                    input_error = Some(err);
                    break;
                }
            }
            sent.set(sent.get() + 1);
        }
        write.shutdown().await?;
        io::Result::Ok(input_error)
    };
    let receiving = async {
        let mut tally = Tally::default();
        let mut printing = Ok(());
        let mut replies = BufReader::new(read).lines();
        // Read to the end even when `out` fails, so the daemon is never
        // stuck on replies nobody reads.
        let closed = loop {
            match replies.next_line().await {
                Ok(Some(reply)) => {
                    tally.replies += 1;
                    if !serde_json::from_str::<Value>(&reply)
                        .is_ok_and(|reply| reply["ok"] == Value::Bool(true))
                    {
                        tally.rejected += 1;
                    }
                    if printing.is_ok() {
                        printing = writeln!(out, "{reply}");
                    }
                }
                Ok(None) => break None,
                Err(err) => break Some(err),
            }
        };
        (tally, closed, printing.and_then(|()| out.flush()))
    };
    let (sending, (tally, closed, printing)) = tokio::join!(sending, receiving);
    let input_error = match sending {
        Ok(input_error) if tally.replies >= sent.get() => input_error,
        broken => {
            return Err(SendError::Closed {
                replies: tally.replies,
                events: sent.get(),
                source: broken.err().or(closed),
            });
        }
    };
    printing.map_err(SendError::Output)?;
    match input_error {
        Some(err) => Err(SendError::Input(err)),
        None => Ok(tally),
    }
}
