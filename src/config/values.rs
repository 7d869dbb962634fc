//! Value types that appear in `handlers.toml`: durations, sizes, secrets, lists.
//!
//! Each one validates while it is deserialised, so toml attaches the value's
//! position to the error.

use std::time::Duration;

mod secret;

pub use secret::{SecretError, SecretSource};

use crate::event::JobResult;
use serde::Deserialize;
use serde::de::{self, Deserializer};

/// The longest duration a config (or a command line) may give: a century
/// (`"100y"`, years of 365.25 days). Longer ones are mistakes, and adding
/// them to a clock overflows.
pub const MAX_DURATION: Duration = Duration::from_secs(3_155_760_000);

/// A value written as a whole number or as text, as sizes, durations and
/// counts with a keyword may be.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum WholeOrText {
    Whole(u64),
    Text(String),
}

impl WholeOrText {
    /// Reads one; anything else is an error saying what was `expected`.
    pub fn read<'de, D: Deserializer<'de>>(
        deserializer: D,
        expected: &str,
    ) -> Result<WholeOrText, D::Error> {
        WholeOrText::deserialize(deserializer).map_err(|_| de::Error::custom(expected))
    }
}

/// A duration written `"5s"`, `"250ms"`, `"1h 30m"`, or as whole seconds (`5`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seconds(pub Duration);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let expected = "expected a duration such as \"5s\", \"2m\" or a number of seconds";
        match WholeOrText::read(deserializer, expected)? {
            WholeOrText::Whole(seconds) => {
                within_range(Duration::from_secs(seconds), &seconds.to_string())
            }
            WholeOrText::Text(text) => parse_duration(&text),
        }
        .map(Seconds)
        .map_err(de::Error::custom)
    }
}

/// Parses a duration as written in the config or on the command line
/// (`"500ms"`, `"5s"`, `"2m"`, `"1h 30m"`), at most [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let duration =
        humantime::parse_duration(text.trim()).map_err(|reason| DurationError::Invalid {
            text: text.to_owned(),
            reason,
        })?;
    within_range(duration, &format!("{text:?}"))
}

fn within_range(duration: Duration, written: &str) -> Result<Duration, DurationError> {
    if duration > MAX_DURATION {
        return Err(DurationError::OutOfRange {
            written: written.to_owned(),
        });
    }
    Ok(duration)
}

/// Why a duration was refused. serde and clap print only an error's own
/// message, so the parser's reason is part of it rather than a `source`.
#[derive(Debug, thiserror::Error)]
pub enum DurationError {
    #[error("invalid duration {text:?} ({reason}); write e.g. \"500ms\", \"5s\", \"2m\"")]
    Invalid {
        text: String,
        reason: humantime::DurationError,
    },
    #[error("duration {written} is out of range: at most 100 years")]
    OutOfRange { written: String },
}

/// A size written `"1MiB"`, `"64 KiB"`, `"1GB"`, or as a number of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bytes(pub u64);

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match WholeOrText::read(
            deserializer,
            "expected a size such as \"1MiB\" or a number of bytes",
        )? {
            WholeOrText::Whole(bytes) => Ok(Bytes(bytes)),
            WholeOrText::Text(text) => text
                .trim()
                .parse::<bytesize::ByteSize>()
                .map(|size| Bytes(size.as_u64()))
                .map_err(|err| {
                    de::Error::custom(format!(
                        "invalid size {text:?} ({err}); write e.g. \"1MiB\""
                    ))
                }),
        }
    }
}

/// Deserialises a count and checks it lies in `MIN..=MAX`, so that a value
/// `run` cannot use fails `check` with its position.
pub fn count_between<'de, D: Deserializer<'de>, const MIN: usize, const MAX: usize>(
    deserializer: D,
) -> Result<usize, D::Error> {
    let count = usize::deserialize(deserializer)?;
    if !(MIN..=MAX).contains(&count) {
        return Err(de::Error::custom(format!(
            "{count} is out of range: expected {MIN} to {MAX}"
        )));
    }
    Ok(count)
}

/// Deserialises a [`Seconds`] that must be more than zero (a timeout of 0
/// would fire at once, every time).
pub fn positive_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Seconds, D::Error> {
    let duration = Seconds::deserialize(deserializer)?;
    if duration.0.is_zero() {
        return Err(de::Error::custom("must be more than 0"));
    }
    Ok(duration)
}

/// Deserialises a [`Bytes`] size and checks it lies in `MIN..=MAX` bytes.
pub fn size_between<'de, D: Deserializer<'de>, const MIN: u64, const MAX: u64>(
    deserializer: D,
) -> Result<Bytes, D::Error> {
    let size = Bytes::deserialize(deserializer)?;
    if !(MIN..=MAX).contains(&size.0) {
        return Err(de::Error::custom(format!(
            "{} is out of range: expected {} to {}",
            bytesize::ByteSize(size.0),
            bytesize::ByteSize(MIN),
            bytesize::ByteSize(MAX)
        )));
    }
    Ok(size)
}

/// A Unix file mode, written as a string of octal digits (`"0660"`) or a TOML
/// octal integer (`0o660`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMode(pub u32);

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u32),
            Text(String),
        }
        let mode = match Raw::deserialize(deserializer)
            .map_err(|_| de::Error::custom("expected a file mode such as \"0660\""))?
        {
            Raw::Number(mode) => Some(mode),
            Raw::Text(text) => u32::from_str_radix(text.trim(), 8).ok(),
        };
        match mode {
            Some(mode) if mode <= 0o777 => Ok(FileMode(mode)),
            _ => Err(de::Error::custom(
                "expected a file mode of octal digits such as \"0660\" (or 0o660)",
            )),
        }
    }
}

/// An error and each of its causes, `: `-separated.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    for cause in err.source().into_iter().flat_map(causes) {
        text.push_str(": ");
        text.push_str(&cause.to_string());
    }
    text
}

/// `err` itself, then each of its causes in turn.
pub fn causes<'e>(
    err: &'e (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'e (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(err), |err| err.source())
}

/// A list written as a TOML array or as one comma-separated string
/// (`"WinCertInventory, WinCertManagement"`), as the products jobhook replaces do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct List(pub Vec<String>);

impl<'de> Deserialize<'de> for List {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Many(Vec<String>),
            One(String),
        }
        let items = match Raw::deserialize(deserializer).map_err(|_| {
            de::Error::custom("expected an array of strings or one comma-separated string")
        })? {
            Raw::Many(items) => items,
            Raw::One(text) => text.split(',').map(str::to_owned).collect(),
        };
        Ok(List(
            items
                .into_iter()
                .map(|item| item.trim().to_owned())
                .filter(|item| !item.is_empty())
                .collect(),
        ))
    }
}

/// A `results` filter: [`List`] of `Success`, `Warning`, `Failure`, `Unknown`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Results(pub Vec<JobResult>);

impl<'de> Deserialize<'de> for Results {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        List::deserialize(deserializer)?
            .0
            .iter()
            .map(|name| {
                JobResult::parse(name).ok_or_else(|| {
                    de::Error::custom(format!(
                        "`{name}` is not Success, Warning, Failure or Unknown"
                    ))
                })
            })
            .collect::<Result<_, _>>()
            .map(Results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Probe<T> {
        v: T,
    }

    /// `value` as a TOML value of type `T`, or serde's message.
    pub(super) fn parse<T: for<'de> Deserialize<'de>>(value: &str) -> Result<T, String> {
        toml::from_str::<Probe<T>>(&format!("v = {value}"))
            .map(|p| p.v)
            .map_err(|e| e.message().to_owned())
    }

    #[test]
    fn durations() {
        assert_eq!(parse::<Seconds>("5").unwrap().0, Duration::from_secs(5));
        assert_eq!(
            parse::<Seconds>("\"250ms\"").unwrap().0,
            Duration::from_millis(250)
        );
        assert_eq!(
            parse::<Seconds>("\"2m\"").unwrap().0,
            Duration::from_secs(120)
        );
        assert!(
            parse::<Seconds>("\"soon\"")
                .unwrap_err()
                .contains("invalid duration \"soon\"")
        );
        assert!(parse::<Seconds>("-1").is_err());
        for huge in [
            "\"1000000000y\"",
            "\"500000000000y\"",
            "18446744073709551615",
        ] {
            let err = parse::<Seconds>(huge).unwrap_err();
            assert!(
                err.contains("out of range: at most 100 years"),
                "{huge}: {err}"
            );
        }
        assert_eq!(
            parse::<Seconds>("\"100y\"").unwrap().0,
            Duration::from_secs(3_155_760_000)
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse::<Bytes>("\"1MiB\"").unwrap().0, 1 << 20);
        assert_eq!(parse::<Bytes>("\"64 KiB\"").unwrap().0, 64 << 10);
        assert_eq!(parse::<Bytes>("4096").unwrap().0, 4096);
        assert!(
            parse::<Bytes>("\"lots\"")
                .unwrap_err()
                .contains("invalid size")
        );
    }

    #[test]
    fn file_modes() {
        assert_eq!(parse::<FileMode>("\"0660\"").unwrap().0, 0o660);
        assert_eq!(parse::<FileMode>("0o600").unwrap().0, 0o600);
        assert!(parse::<FileMode>("\"0999\"").is_err());
        assert!(parse::<FileMode>("660").is_err());
    }

    #[test]
    fn lists_from_arrays_or_comma_strings() {
        let list =
            parse::<List>("\"WinCertInventory, 49b3a17d-cada-4ec8-84c6-7719bf5beef3,\"").unwrap();
        assert_eq!(
            list.0,
            ["WinCertInventory", "49b3a17d-cada-4ec8-84c6-7719bf5beef3"]
        );
        assert_eq!(parse::<List>("[\"a\", \" b \"]").unwrap().0, ["a", "b"]);
        assert!(parse::<List>("3").is_err());
    }
}
