//! Newline-delimited frames with a length limit that never ends the stream.
//!
//! (tokio-util's `LinesCodec` ends the stream after an over-long line,
//! tokio#3976; here an over-long line is reported and skipped up to the next
//! newline, and the connection goes on.)

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

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
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    pub fn new(reader: R, max: usize) -> Self {
        LineReader {
            reader,
            line: Vec::new(),
            max,
            skipping: false,
        }
    }

    /// The next frame, or `None` at the end of the stream. Blank lines are
    /// skipped. Cancel-safe: state lives in `self` and input is consumed only
    /// once it has been copied or skipped.
    pub async fn next(&mut self) -> std::io::Result<Option<Frame<'_>>> {
        self.line.clear();
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
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        let ended = if std::mem::take(&mut self.skipping) || self.line.len() > self.max {
            Ended::TooLarge
        } else if self.line.iter().all(u8::is_ascii_whitespace) {
            Ended::Blank
        } else {
            return Ended::Line;
        };
        self.line.clear();
        ended
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
        let mut lines = LineReader::new(reader, max);
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
