//! What the config says about event sources: `[sources.NAME]` sections.
//! Data only: `section` reads them, `keyfactor` runs them.

use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer};

use crate::config::Position;
use crate::config::values::{List, Seconds, count_between, positive_duration};
use crate::http::settings::ConnectionSettings;

/// One `[sources.NAME]` section.
#[derive(Debug)]
pub struct SourceSection {
    /// `NAME`: logs name the source by it, and the spool keeps its cursor
    /// under it (renaming a source starts it afresh, as `start` says).
    pub name: String,
    /// Where the section's name is written; problems found when the source
    /// is built are reported here.
    pub position: Position,
    /// `type = "keyfactor_job_history"`, the only type so far.
    pub job_history: JobHistorySettings,
}

/// `type = "keyfactor_job_history"`: polls Keyfactor Command's
/// `GET OrchestratorJobs/JobHistory`. Besides these keys, the section takes
/// the connection keys of `[api]` (authentication, proxy, `ssl_config`).
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobHistorySettings {
    /// The Command API's base URL, as in `[api]`
    /// (`https://command.example.com/KeyfactorAPI/`);
    /// `OrchestratorJobs/JobHistory` is requested under it.
    pub base_url: String,
    /// Only records of these job types become events (the record's
    /// `JobType`, any case); the others are passed over. Alias `JobTypes`.
    /// Default: every job type.
    #[serde(alias = "JobTypes")]
    pub job_types: Option<List>,
    /// How long between looks at the job history. Default `"30s"`.
    #[serde(default = "default_interval", deserialize_with = "positive_duration")]
    pub interval: Seconds,
    /// Records asked for per request (`ReturnLimit`), 1 to 1000. Default 100.
    #[serde(
        default = "default_page_size",
        deserialize_with = "count_between::<_, 1, 1000>"
    )]
    pub page_size: usize,
    /// Where a source with no cursor yet begins: `"now"` (records that
    /// appear after its first look), `"all"` (every record the API returns)
    /// or a JobHistoryId to continue after. Changing it later makes the
    /// source begin again from the new value. Default `"now"`.
    #[serde(default, deserialize_with = "Start::read")]
    pub start: Start,
    /// Longest one request may take, answer included. Default `"30s"`.
    #[serde(default = "default_timeout", deserialize_with = "positive_duration")]
    pub timeout: Seconds,
    /// Authentication, proxy and TLS: read from the same section by
    /// `section` (the keys of `ConnectionSettings`).
    #[serde(skip)]
    pub connection: ConnectionSettings,
}

/// Where a source with no cursor begins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Start {
    /// After the newest record at the first look.
    #[default]
    Now,
    /// From the oldest record the API returns.
    All,
    /// After this JobHistoryId.
    After(i64),
}

impl Start {
    /// Reads `"now"`, `"all"`, or a JobHistoryId as an integer or a string.
    pub fn read<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Start, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Id(i64),
            Text(String),
        }
        let expected = "expected \"now\", \"all\" or a JobHistoryId (a whole number ≥ 0)";
        match Raw::deserialize(deserializer).map_err(|_| de::Error::custom(expected))? {
            Raw::Id(id) if id >= 0 => Ok(Start::After(id)),
            Raw::Id(_) => Err(de::Error::custom(expected)),
            Raw::Text(text) => Start::try_from(text).map_err(|_| de::Error::custom(expected)),
        }
    }
}

impl From<Start> for String {
    fn from(start: Start) -> String {
        match start {
            Start::Now => "now".to_owned(),
            Start::All => "all".to_owned(),
            Start::After(id) => id.to_string(),
        }
    }
}

impl TryFrom<String> for Start {
    type Error = String;

    fn try_from(text: String) -> Result<Start, String> {
        match text.trim() {
            "now" => Ok(Start::Now),
            "all" => Ok(Start::All),
            id => match id.parse() {
                Ok(id) if id >= 0 => Ok(Start::After(id)),
                _ => Err(text),
            },
        }
    }
}

fn default_interval() -> Seconds {
    Seconds(Duration::from_secs(30))
}

fn default_page_size() -> usize {
    100
}

fn default_timeout() -> Seconds {
    Seconds(Duration::from_secs(30))
}
