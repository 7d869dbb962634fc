//! Value types that appear in `handlers.toml`: durations, sizes, secrets, lists.
//!
//! Each one validates while it is deserialised, so toml attaches the value's
//! position to the error.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;

use crate::event::JobResult;
use serde::Deserialize;
use serde::de::{self, Deserializer};

/// A duration written `"5s"`, `"250ms"`, `"1h 30m"`, or as whole seconds (`5`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seconds(pub Duration);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Whole(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer).map_err(|_| {
            de::Error::custom("expected a duration such as \"5s\", \"2m\" or a number of seconds")
        })? {
            Raw::Whole(seconds) => Ok(Seconds(Duration::from_secs(seconds))),
            Raw::Text(text) => humantime::parse_duration(text.trim())
                .map(Seconds)
                .map_err(|err| {
                    de::Error::custom(format!(
                        "invalid duration {text:?} ({err}); write e.g. \"500ms\", \"5s\", \"2m\""
                    ))
                }),
        }
    }
}

/// A size written `"1MiB"`, `"64 KiB"`, `"1GB"`, or as a number of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bytes(pub u64);

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Whole(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer).map_err(|_| {
            de::Error::custom("expected a size such as \"1MiB\" or a number of bytes")
        })? {
            Raw::Whole(bytes) => Ok(Bytes(bytes)),
            Raw::Text(text) => text
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

/// Where a secret comes from. The value is read only when the config is built,
/// and never printed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(
    untagged,
    expecting = "a string, { env = \"NAME\" } or { file = \"path\" }"
)]
pub enum SecretSource {
    Literal(String),
    Env {
        /// Name of the environment variable that holds the secret.
        env: String,
    },
    File {
        /// File whose content (trailing newline removed) is the secret.
        file: String,
    },
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Literal(_) => f.write_str("Literal([REDACTED])"),
            SecretSource::Env { env } => write!(f, "Env({env})"),
            SecretSource::File { file } => write!(f, "File({file})"),
        }
    }
}

impl SecretSource {
    /// Reads the secret. Errors name where it was looked for, never its value.
    pub fn resolve(&self, config_dir: &Path) -> Result<SecretString, String> {
        match self {
            SecretSource::Literal(value) => Ok(value.clone().into()),
            SecretSource::Env { env } => std::env::var(env)
                .map(Into::into)
                .map_err(|_| format!("environment variable {env} is not set")),
            SecretSource::File { file } => {
                let path = config_dir.join(file);
                std::fs::read_to_string(&path)
                    .map(|text| text.trim_end_matches(['\r', '\n']).to_owned().into())
                    .map_err(|err| format!("cannot read secret file {}: {err}", path.display()))
            }
        }
    }
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

    fn parse<T: for<'de> Deserialize<'de>>(value: &str) -> Result<T, String> {
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

    #[test]
    fn secrets_resolve_without_leaking() {
        use secrecy::ExposeSecret;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pass"), "s3cret\n").unwrap();
        let from_file = parse::<SecretSource>("{ file = \"pass\" }").unwrap();
        assert_eq!(
            from_file.resolve(dir.path()).unwrap().expose_secret(),
            "s3cret"
        );
        let literal = parse::<SecretSource>("\"hunter2\"").unwrap();
        assert!(!format!("{literal:?}").contains("hunter2"));
        let missing = parse::<SecretSource>("{ env = \"JOBHOOK_TEST_UNSET_VARIABLE\" }").unwrap();
        assert_eq!(
            missing.resolve(dir.path()).unwrap_err(),
            "environment variable JOBHOOK_TEST_UNSET_VARIABLE is not set"
        );
        assert!(parse::<SecretSource>("{ vault = \"x\" }").is_err());
    }
}
