//! `jobhook send`: sends events to a running daemon and reads one reply per event.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use crate::config::DaemonSettings;

mod lines;

pub use lines::event_lines;

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

/// The replies to one batch of lines.
#[derive(Debug, Default)]
pub struct Replies {
    pub lines: Vec<String>,
    pub rejected: usize,
}

/// Writes `lines` and reads a reply for each, writing and reading at the same
/// time so that a large batch cannot deadlock on full buffers.
pub async fn exchange<R, W>(read: R, mut write: W, lines: &[String]) -> anyhow::Result<Replies>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut payload = Vec::new();
    for line in lines {
        payload.extend_from_slice(line.as_bytes());
        payload.push(b'\n');
    }
    let sending = async {
        write.write_all(&payload).await?;
        write.flush().await?;
        write.shutdown().await
    };
    let receiving = async {
        let mut replies = Replies::default();
        let mut reader = BufReader::new(read).lines();
        while replies.lines.len() < lines.len() {
            let Some(line) = reader.next_line().await? else {
                break;
            };
            let accepted = serde_json::from_str::<Value>(&line)
                .is_ok_and(|reply| reply["ok"] == Value::Bool(true));
            if !accepted {
                replies.rejected += 1;
            }
            replies.lines.push(line);
        }
        std::io::Result::Ok(replies)
    };
    let (sent, received) = tokio::join!(sending, receiving);
    let replies = received.context("reading replies")?;
    sent.context("sending events")?;
    if replies.lines.len() < lines.len() {
        anyhow::bail!(
            "the daemon closed the connection after {} of {} replies",
            replies.lines.len(),
            lines.len()
        );
    }
    Ok(replies)
}

/// Connects to the daemon and exchanges `lines`; `Err` means no connection.
#[cfg(unix)]
pub async fn send(
    endpoint: &Path,
    lines: &[String],
) -> Result<anyhow::Result<Replies>, std::io::Error> {
    let stream = tokio::net::UnixStream::connect(endpoint).await?;
    let (read, write) = stream.into_split();
    Ok(exchange(read, write, lines).await)
}

/// Connects to the daemon and exchanges `lines`; `Err` means no connection.
#[cfg(windows)]
pub async fn send(
    endpoint: &Path,
    lines: &[String],
) -> Result<anyhow::Result<Replies>, std::io::Error> {
    let pipe = tokio::net::windows::named_pipe::ClientOptions::new().open(endpoint)?;
    let (read, write) = tokio::io::split(pipe);
    Ok(exchange(read, write, lines).await)
}
