//! One client connection: read lines, answer each one, in order.
//!
//! A reader turns each line into a [`Ticket`] and queues it for a writer,
//! which writes the answers in the order of the lines. The reader does not
//! wait for answers, so a client may send many lines before reading; the
//! bounded hand-over between them makes a client that never reads slow down
//! only itself. Every buffer here is bounded: the read buffer, one line of
//! at most `max_event_bytes`, [`PIPELINE_DEPTH`] answers owed, and the
//! event being submitted, which waits for the spool's ingest budget.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::Limits;
use super::framing::LineReader;
use super::reply::{Pending, answer, shutting_down};
use super::slots::Activity;
use crate::spool::Queue;
use crate::telemetry;

/// Answers one client may have outstanding before its reader pauses.
const PIPELINE_DEPTH: usize = 1024;
/// After shutdown begins, how long a client has to read its last answers
/// before the connection is dropped (a client that never reads would
/// otherwise hold the daemon up forever).
const REPLY_GRACE: Duration = Duration::from_secs(2);

/// Serves one connection until the client closes it, it times out (idle,
/// or stalled mid-line or on its replies), its slot is given to another
/// client, or `shutdown` fires.
pub async fn serve<R, W>(
    read: R,
    write: W,
    queue: Arc<Queue>,
    limits: Limits,
    activity: Arc<Activity>,
    shutdown: CancellationToken,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let _connected = telemetry::Connected::count();
    let (answers, pending) = mpsc::channel(PIPELINE_DEPTH);
    let reader = read_lines(read, answers, &queue, limits, &activity, &shutdown);
    let writer = write_replies(write, pending, limits.stall_timeout, &activity);
    let connection = async {
        tokio::pin!(writer);
        tokio::select! {
            // The reader's end drops its sender: the writer writes what is
            // owed, then ends. A writer that gives up ends the connection.
            () = reader => writer.await,
            () = &mut writer => {}
        }
    };
    let grace_over = async {
        shutdown.cancelled().await;
        tokio::time::sleep(REPLY_GRACE).await;
    };
    tokio::select! {
        () = connection => {}
        () = grace_over => debug!("dropping a connection whose client does not read its replies"),
    }
}

async fn read_lines<R: AsyncRead + Unpin>(
    read: R,
    answers: mpsc::Sender<Pending>,
    queue: &Queue,
    limits: Limits,
    activity: &Activity,
    shutdown: &CancellationToken,
) {
    let mut lines = LineReader::new(
        BufReader::with_capacity(64 * 1024, read),
        limits.max_event_bytes,
        activity.receiving(),
    );
    loop {
        // A line already whole in the buffer is taken at once: no deadline
        // to watch, no timer to set (most lines of a busy client).
        let frame =
            if lines.has_line_buffered() && !shutdown.is_cancelled() && !activity.is_closed() {
                lines.next().await
            } else {
                // A line begun must end within the stall timeout; between
                // lines, with nothing owed, the client may stay silent for the
                // idle one.
                let (deadline, why) = match lines.line_started() {
                    Some(started) => (started + limits.stall_timeout, "stalled mid-line"),
                    None => (activity.idle_deadline(limits.idle_timeout), "idle"),
                };
                let now = Instant::now();
                if deadline <= now {
                    debug!("closing a connection: client {why}");
                    return;
                }
                // A line that begins while waiting has until its start plus the
                // stall timeout: wake by then to look again.
                let look_again = deadline.min(now + limits.stall_timeout);
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => break,
                    () = activity.closed() => break,
                    () = tokio::time::sleep_until(look_again) => continue,
                    frame = lines.next() => frame,
                }
            };
        let pending = match frame {
            Ok(Some(frame)) => answer(frame, queue, limits.max_event_bytes, shutdown).await,
            Ok(None) => return,
            Err(err) => {
                debug!(error = %err, "client read failed");
                return;
            }
        };
        activity.line_read();
        if answers.send(pending).await.is_err() {
            return; // The writer stopped: the client is gone.
        }
    }
    // Stopping, or the slot given to another client: lines the client
    // already sent get a definite answer rather than silence (when stopping,
    // a refusal). Only input already at hand is read (a zero timeout); a
    // line half received gets no answer, so it was not accepted.
    let stopping = shutdown.is_cancelled();
    while let Ok(Ok(Some(frame))) = tokio::time::timeout(Duration::ZERO, lines.next()).await {
        let pending = if stopping {
            shutting_down()
        } else {
            answer(frame, queue, limits.max_event_bytes, shutdown).await
        };
        activity.line_read();
        if answers.send(pending).await.is_err() {
            return;
        }
    }
}

/// Writes the replies in order. A client that takes none of them for
/// `stall_timeout` is given up on.
async fn write_replies<W: AsyncWrite + Unpin>(
    write: W,
    mut pending: mpsc::Receiver<Pending>,
    stall_timeout: Duration,
    activity: &Activity,
) {
    let mut out = BufWriter::new(write);
    let mut line = Vec::with_capacity(128);
    while let Some(next) = pending.recv().await {
        let reply = next.reply().await;
        line.clear();
        serde_json::to_writer(&mut line, &reply).expect("serialise reply");
        line.push(b'\n');
        let written = async {
            out.write_all(&line).await?;
            // Flush when caught up, so replies to a burst go out in few writes.
            if pending.is_empty() {
                out.flush().await?;
            }
            std::io::Result::Ok(())
        };
        match tokio::time::timeout(stall_timeout, written).await {
            Ok(Ok(())) => activity.reply_written(),
            Ok(Err(_)) => return,
            Err(_) => {
                debug!("closing a connection: client stalled, not reading its replies");
                return;
            }
        }
    }
    let _ = tokio::time::timeout(stall_timeout, async {
        let _ = out.flush().await;
        let _ = out.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests;
