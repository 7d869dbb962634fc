//! Problems found in a config file, located as `FILE:LINE:COL`.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// A place in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub file: PathBuf,
    /// 1-based line and column (in characters); 0 when there is no position
    /// (the file could not be read).
    pub line: usize,
    pub column: usize,
}

impl Position {
    pub fn error(&self, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            position: self.clone(),
            message: message.into(),
        }
    }

    pub fn warning(&self, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            position: self.clone(),
            message: message.into(),
        }
    }
}

/// One problem, printed as `FILE:LINE:COL: error: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub position: Position,
    pub message: String,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let Position { file, line, column } = &self.position;
        write!(
            f,
            "{}:{line}:{column}: {severity}: {}",
            file.display(),
            self.message
        )
    }
}

/// Turns byte offsets of one source text into diagnostics.
pub struct Locator<'a> {
    file: &'a Path,
    text: &'a str,
    /// Byte offset of each line's start, so that placing a span is a binary
    /// search, not a scan of the text before it (a config of thousands of
    /// handlers places thousands of spans).
    line_starts: Vec<usize>,
}

impl<'a> Locator<'a> {
    pub fn new(file: &'a Path, text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(memchr::memchr_iter(b'\n', text.as_bytes()).map(|newline| newline + 1))
            .collect();
        Locator {
            file,
            text,
            line_starts,
        }
    }

    pub fn error(&self, span: Option<Range<usize>>, message: impl Into<String>) -> Diagnostic {
        self.position(span).error(message)
    }

    /// A diagnostic from a toml error, with a hint when a key looks misspelt.
    pub fn toml_error(&self, error: &toml::de::Error, extra_keys: &[&str]) -> Diagnostic {
        let mut message = error.message().trim_end().to_owned();
        if let Some(hint) = did_you_mean(&message, extra_keys) {
            message.push_str(&format!("; did you mean `{hint}`?"));
        }
        self.error(error.span(), message)
    }

    /// The position of a span's start (the file's start when there is no span).
    pub fn position(&self, span: Option<Range<usize>>) -> Position {
        let (line, column) = span.map_or((1, 1), |span| self.line_column(span.start));
        Position {
            file: self.file.to_owned(),
            line,
            column,
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = self.text.floor_char_boundary(offset.min(self.text.len()));
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let line_start = self.line_starts[line - 1];
        (line, self.text[line_start..offset].chars().count() + 1)
    }
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" messages, the
/// closest known key (from the message and `extra_keys`).
fn did_you_mean(message: &str, extra_keys: &[&str]) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, expected) = rest.split_once('`')?;
    let known = expected.split('`').skip(1).step_by(2);
    closest(unknown, known.chain(extra_keys.iter().copied())).map(str::to_owned)
}

/// The candidate most like `word`, if any is close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    candidates
        .map(|candidate| {
            let score = strsim::jaro_winkler(&word, &candidate.to_ascii_lowercase());
            (score, candidate)
        })
        .filter(|(score, _)| *score >= 0.85)
        // On a tie a snake_case key wins over its alias (spelt as the
        // products jobhook replaces spell it), then the first candidate.
        .fold(
            None,
            |best: Option<(f64, &str)>, (score, candidate)| match best {
                Some((best_score, best_candidate))
                    if best_score > score
                        || (best_score == score
                            && (is_snake_case(best_candidate) || !is_snake_case(candidate))) =>
                {
                    best
                }
                _ => Some((score, candidate)),
            },
        )
        .map(|(_, candidate)| candidate)
}

fn is_snake_case(key: &str) -> bool {
    !key.chars().any(char::is_uppercase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let text = "a = 1\nbé = 2\n";
        let locator = Locator::new(Path::new("x"), text);
        assert_eq!(locator.line_column(0), (1, 1));
        assert_eq!(locator.line_column(6), (2, 1));
        assert_eq!(locator.line_column(text.find('=').unwrap()), (1, 3));
        let second_eq = text.rfind('=').unwrap();
        assert_eq!(locator.line_column(second_eq), (2, 4));
        assert_eq!(locator.line_column(text.len()), (3, 1));
    }

    #[test]
    fn suggests_the_closest_key() {
        let message = "unknown field `fle_path`, expected one of `file_path`, `format`";
        assert_eq!(did_you_mean(message, &[]).as_deref(), Some("file_path"));
        let message = "unknown field `retires`, expected `file_path`";
        assert_eq!(
            did_you_mean(message, &["retries"]).as_deref(),
            Some("retries")
        );
        let message = "unknown field `zzz`, expected `file_path`";
        assert_eq!(did_you_mean(message, &[]), None);
    }
}
