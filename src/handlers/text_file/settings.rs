//! What a `TextFileHandler` section says. Data only: the handler is built
//! from it in `super`.

use serde::Deserialize;

use crate::handlers::template::Template;

/// Settings of a `TextFileHandler` section.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// File each event is appended to, created with its parent directories.
    /// `{Field}` inserts an event field (characters other than letters, digits,
    /// `.`, `_`, `-` become `_`), `{date}` the UTC date as `YYYY-MM-DD`.
    /// Relative to the config file's directory. Alias `FilePath`.
    #[serde(alias = "FilePath")]
    pub file_path: Template,
    /// `json`: the event as one line of JSON. `text`: `template` filled in.
    /// Default `json`.
    #[serde(default)]
    pub format: Format,
    /// The line written for `format = "text"`, with `{Field}` and `{date}`
    /// placeholders. Default `"{ReceivedAt} {Phase} {JobType} {JobResult} {JobId}"`.
    pub template: Option<Template>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
    Text,
}
