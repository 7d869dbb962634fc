//! Newline-delimited frames with a length limit that never ends the stream.
//!
//! (tokio-util's `LinesCodec` ends the stream after an over-long line,
//! tokio#3976; here an over-long line is reported and skipped up to the next
//! newline, and the connection goes on.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio::time::Instant;

/// One frame read from a client.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A line without its newline or trailing `\r`; never blank.
    Line(&'a [u8]),
    /// A line longer than the limit, already skipped.
    TooLarge,
}

pub struct LineReader<R> {
    reader: R,
    line: Vec<u8>,
    max: usize,
    skipping: bool,
    /// `line` holds the frame returned last, to be cleared before reading on.
    returned: bool,
    /// When the line now being received began; `None` between lines.
    started: Option<Instant>,
    /// Set while a line is partly received, for others to see.
    receiving: Arc<AtomicBool>,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    /// Reads lines of at most `max` bytes; `receiving` is set while a line
    /// is partly received.
    pub fn new(reader: R, max: usize, receiving: Arc<AtomicBool>) -> Self {
        LineReader {
            reader,
            line: Vec::new(),
            max,
            skipping: false,
            returned: false,
            started: None,
            receiving,
        }
    }

    /// When the line now being received began arriving, if one has and it
    /// had to wait for more input.
    pub fn line_started(&self) -> Option<Instant> {
        self.started
    }

    /// The next frame, or `None` at the end of the stream. Blank lines are
    /// skipped. Cancel-safe: state lives in `self` (a line half received
    /// when the future is dropped is continued by the next call) and input
    /// is consumed only once it has been copied or skipped.
    pub async fn next(&mut self) -> std::io::Result<Option<Frame<'_>>> {
        if std::mem::take(&mut self.returned) {
            self.line.clear();
        }
        loop {
            let available = self.reader.fill_buf().await?;
            if available.is_empty() {
                // End of stream: a last line without a newline still counts.
                return Ok(match self.end_line() {
                    Ended::Blank => None,
                    Ended::TooLarge => Some(Frame::TooLarge),
                    Ended::Line => Some(Frame::Line(&self.line)),
                });
            }
            let (chunk, complete) = match memchr::memchr(b'\n', available) {
                Some(end) => (&available[..end], Some(end + 1)),
                None => (available, None),
            };
            let consumed = complete.unwrap_or(available.len());
            // Only a line that must wait for more input has a start time.
            if complete.is_none() && self.started.is_none() {
                self.started = Some(Instant::now());
                self.receiving.store(true, Ordering::Relaxed);
            }
            // One byte past the limit may be the `\r` of a CRLF line end,
            // which does not count; `end_line` decides.
            if !self.skipping {
                if self.line.len() + chunk.len() > self.max + 1 {
                    self.skipping = true;
                    self.line.clear();
                } else {
                    self.line.extend_from_slice(chunk);
                }
            }
            self.reader.consume(consumed);
            if complete.is_none() {
                continue;
            }
            match self.end_line() {
                Ended::Blank => {}
                Ended::TooLarge => return Ok(Some(Frame::TooLarge)),
                Ended::Line => return Ok(Some(Frame::Line(&self.line))),
            }
        }
    }

    /// Ends the line received so far, a trailing `\r` stripped; `line`
    /// keeps it only if it is to be returned.
    fn end_line(&mut self) -> Ended {
        self.started = None;
        self.receiving.store(false, Ordering::Relaxed);
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        let ended = if std::mem::take(&mut self.skipping) || self.line.len() > self.max {
            Ended::TooLarge
        } else if self.line.iter().all(u8::is_ascii_whitespace) {
            Ended::Blank
        } else {
            self.returned = true;
            return Ended::Line;
        };
        self.line.clear();
        ended
    }
}

impl<R: tokio::io::AsyncRead + Unpin> LineReader<tokio::io::BufReader<R>> {
    /// Whether [`LineReader::next`] has a frame without waiting for input:
    /// the buffer holds the end of the next line, and that line is not
    /// blank (blank lines are skipped, and the line after them may have to
    /// be waited for).
    pub fn has_line_buffered(&self) -> bool {
        let buffer = self.reader.buffer();
        let Some(end) = memchr::memchr(b'\n', buffer) else {
            return false;
        };
        let begun: &[u8] = if self.returned { &[] } else { &self.line };
        self.skipping
            || !buffer[..end]
                .iter()
                .chain(begun)
                .all(u8::is_ascii_whitespace)
    }
}

/// How a line ended.
enum Ended {
    Line,
    TooLarge,
    Blank,
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(input: &[u8], max: usize, buffer: usize) -> Vec<Option<Vec<u8>>> {
        let reader = tokio::io::BufReader::with_capacity(buffer, input);
        let mut lines = LineReader::new(reader, max, Arc::default());
        let mut out = Vec::new();
        while let Some(frame) = lines.next().await.unwrap() {
            out.push(match frame {
                Frame::Line(line) => Some(line.to_vec()),
                Frame::TooLarge => None,
            });
        }
        out
    }

    #[tokio::test]
    async fn a_line_cut_off_by_a_dropped_call_is_continued() {
        use tokio::io::AsyncWriteExt;
        let (mut client, server) = tokio::io::duplex(64);
        let receiving = Arc::new(AtomicBool::new(false));
        let mut lines = LineReader::new(tokio::io::BufReader::new(server), 100, receiving.clone());
        client.write_all(b"{\"a\"").await.unwrap();
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), lines.next()).await;
        assert!(waited.is_err());
        assert!(lines.line_started().is_some() && receiving.load(Ordering::Relaxed));
        client.write_all(b":1}\n").await.unwrap();
        let frame = lines.next().await.unwrap().unwrap();
        assert_eq!(frame, Frame::Line(b"{\"a\":1}"));
        assert!(lines.line_started().is_none() && !receiving.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn a_line_said_to_be_buffered_comes_without_waiting_and_others_are_waited_for() {
        use std::time::Duration;
        use tokio::io::AsyncWriteExt;
        let (mut client, server) = tokio::io::duplex(256);
        let mut lines = LineReader::new(tokio::io::BufReader::new(server), 10, Arc::default());
        // Left open: a call that waits for input would wait for good.
        client
            .write_all(b"a\nb\n0123456789abc\n\n \r\nc")
            .await
            .unwrap();
        let mut got = vec![lines.next().await.unwrap().unwrap() == Frame::Line(b"a")];
        while lines.has_line_buffered() {
            let frame = tokio::time::timeout(Duration::ZERO, lines.next()).await;
            got.push(
                match frame.expect("a buffered line waited").unwrap().unwrap() {
                    Frame::Line(line) => line == b"b",
                    Frame::TooLarge => true,
                },
            );
        }
        assert_eq!(got, [true, true, true], "a, b, and the long line");
        // Blank lines (taken conservatively: only the first is looked at)
        // and a partial one are not a line to take at once.
        let waited = tokio::time::timeout(Duration::from_millis(20), lines.next()).await;
        assert!(waited.is_err());
        client.write_all(b"d\n").await.unwrap();
        assert_eq!(lines.next().await.unwrap().unwrap(), Frame::Line(b"cd"));
    }

    #[tokio::test]
    async fn splits_lines_strips_cr_and_skips_blanks() {
        for buffer in [1, 3, 64] {
            let got = frames(b"a\r\n\n  \r\nbc\nlast", 10, buffer).await;
            assert_eq!(
                got,
                [
                    Some(b"a".to_vec()),
                    Some(b"bc".to_vec()),
                    Some(b"last".to_vec())
                ]
            );
        }
    }

    #[tokio::test]
    async fn an_overlong_line_is_skipped_and_reading_goes_on() {
        for buffer in [1, 4, 64] {
            let got = frames(b"ok\n0123456789abc\nnext\n", 10, buffer).await;
            assert_eq!(got, [Some(b"ok".to_vec()), None, Some(b"next".to_vec())]);
            let got = frames(b"0123456789abc", 10, buffer).await;
            assert_eq!(got, [None]);
        }
        for buffer in [1, 4, 64] {
            let exactly = frames(b"0123456789\n0123456789\r\n0123456789\r", 10, buffer).await;
            assert_eq!(exactly, vec![Some(b"0123456789".to_vec()); 3]);
            let over = frames(b"0123456789x\r\n0123456789\r\r\n", 10, buffer).await;
            assert_eq!(over, [None, None]);
        }
    }
}
