//! Reading response bodies within bounds.
//!
//! A server decides how much it sends; a daemon must not follow it. Every
//! body jobhook reads (NTLM legs, handler answers, error snippets) is read
//! up to a limit; beyond it reading stops and the response is dropped, which
//! drops its connection instead of pooling it half read.

use std::time::Duration;

use reqwest::Response;

/// Bytes read of a body that is only drained (so the connection can be
/// reused) or quoted in a log line.
pub const DRAIN_LIMIT: usize = 64 * 1024;

/// Time given to draining a body whose status already decided the outcome.
pub const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Up to `limit` bytes of a body.
#[derive(Debug, Default)]
pub struct Body {
    pub bytes: Vec<u8>,
    /// The body ended within the limit: the connection may be reused.
    pub complete: bool,
}

/// Reads the body until it ends or `limit` bytes are read, whichever comes
/// first. Bounded in size only: callers bound the time.
pub async fn read_at_most(response: &mut Response, limit: usize) -> Result<Body, reqwest::Error> {
    let mut body = Body::default();
    read_into(response, limit, &mut body).await?;
    Ok(body)
}

/// Reads what a decided answer has to say, within [`DRAIN_TIME`]: at most its
/// first `limit` bytes. A body that is slow, too long or broken is cut off
/// where it got to; it never changes the outcome its status decided.
pub async fn drain(response: &mut Response, limit: usize) -> Body {
    let mut body = Body::default();
    let _ = tokio::time::timeout(DRAIN_TIME, read_into(response, limit, &mut body)).await;
    body
}

/// [`read_at_most`] into `body`, so what was read survives a timeout.
async fn read_into(
    response: &mut Response,
    limit: usize,
    body: &mut Body,
) -> Result<(), reqwest::Error> {
    while let Some(chunk) = response.chunk().await? {
        let room = limit - body.bytes.len();
        body.bytes
            .extend_from_slice(&chunk[..chunk.len().min(room)]);
        if chunk.len() >= room {
            // Full: complete only if nothing follows.
            body.complete = chunk.len() == room && response.chunk().await?.is_none();
            return Ok(());
        }
    }
    body.complete = true;
    Ok(())
}
