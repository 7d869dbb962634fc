//! What an `HttpHandler` section says. Data only: the handler is built from
//! it in `super`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::{self, Deserializer};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::config::values::{SecretSource, WholeOrText, count_between};
use crate::config::{from_value, split};
use crate::handlers::template::Template;
use crate::http::settings::ConnectionSettings;

/// Settings of an `HttpHandler` section.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where events are sent. `{Field}` inserts an event field, URL-encoded.
    /// A string, or a secret (`{ env = "NAME" }`, `{ file = "path" }`) when
    /// the URL carries a token; a secret URL is never shown in messages.
    /// Alias `URL`.
    #[serde(alias = "URL")]
    pub url: UrlSource,
    /// HTTP method. Default `POST`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Extra request headers, e.g. `{ "X-Source" = "jobhook" }`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Adds Standard Webhooks `webhook-id`, `webhook-timestamp` and
    /// `webhook-signature` headers signed with this secret (`whsec_…` base64,
    /// or any other string as its bytes), in any of the secret forms.
    pub signing_secret: Option<SecretSource>,
    /// Statuses that are retried, replacing the default (408, 429, 5xx).
    pub retry_on: Option<Vec<u16>>,
    /// Requests in flight at once: a number from 1 to 1024, or `"adaptive"`
    /// (the default): more while the endpoint answers fast and fine, fewer
    /// on 429, 503, timeouts, connection errors and a climbing round-trip
    /// time. Events of one JobId are still sent one after another.
    #[serde(default)]
    pub concurrency: Concurrency,
    /// The least requests in flight an adaptive `concurrency` keeps. From
    /// 1 to 1024. Default 1.
    #[serde(
        default = "one",
        deserialize_with = "count_between::<_, 1, MAX_CONCURRENCY>"
    )]
    pub min_concurrency: usize,
    /// The most requests in flight an adaptive `concurrency` allows. From
    /// 1 to 1024. Default 256.
    #[serde(
        default = "default_max_concurrency",
        deserialize_with = "count_between::<_, 1, MAX_CONCURRENCY>"
    )]
    pub max_concurrency: usize,
    /// Authentication, proxy and TLS: read from the same section by
    /// [`Settings::read`] (the keys of [`ConnectionSettings`]).
    #[serde(skip)]
    pub connection: ConnectionSettings,
}

fn default_method() -> String {
    "POST".to_owned()
}

fn one() -> usize {
    1
}

fn default_max_concurrency() -> usize {
    256
}

/// `concurrency` as written in a handler's section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Concurrency {
    /// Between `min_concurrency` and `max_concurrency`, as the endpoint
    /// copes.
    #[default]
    Adaptive,
    Fixed(usize),
}

/// Most requests a handler may have in flight.
pub const MAX_CONCURRENCY: usize = 1024;

impl<'de> Deserialize<'de> for Concurrency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Concurrency, D::Error> {
        let expected = format!("expected a number from 1 to {MAX_CONCURRENCY}, or \"adaptive\"");
        match WholeOrText::read(deserializer, &expected)? {
            WholeOrText::Whole(count) if (1..=MAX_CONCURRENCY as u64).contains(&count) => {
                Ok(Concurrency::Fixed(count as usize))
            }
            WholeOrText::Whole(count) => Err(de::Error::custom(format!(
                "{count} is out of range: {expected}"
            ))),
            WholeOrText::Text(word) if word.eq_ignore_ascii_case("adaptive") => {
                Ok(Concurrency::Adaptive)
            }
            WholeOrText::Text(word) => Err(de::Error::custom(format!("{word:?}: {expected}"))),
        }
    }
}

impl Settings {
    /// The secrets the section holds, by key: a secret `url`, the signing
    /// secret and the connection's.
    pub fn secrets(&self) -> impl Iterator<Item = (&'static str, &SecretSource)> {
        let url = match &self.url {
            UrlSource::Secret { source, .. } => Some(("url", source)),
            UrlSource::Written(_) => None,
        };
        url.into_iter()
            .chain(
                self.signing_secret
                    .as_ref()
                    .map(|source| ("signing_secret", source)),
            )
            .chain(self.connection.secrets())
    }

    /// Reads a section's library keys: the connection keys into
    /// [`ConnectionSettings`], the others into [`Settings`].
    pub fn read(
        keys: DeTable<'_>,
        span: std::ops::Range<usize>,
    ) -> Result<Settings, toml::de::Error> {
        let (connection, request) = split(keys, ConnectionSettings::keys());
        let mut settings: Settings =
            from_value(Spanned::new(span.clone(), DeValue::Table(request)))?;
        settings.connection = from_value(Spanned::new(span, DeValue::Table(connection)))?;
        Ok(settings)
    }
}

/// A handler's `url`: written in the config, or a secret read when the
/// handler is built (`{ env = "NAME" }`, `{ file = "path" }`), for a URL
/// with a token in its path or query. Either may have placeholders.
#[derive(Debug, PartialEq)]
pub enum UrlSource {
    Written(Template),
    Secret {
        source: SecretSource,
        /// What messages say in its place: `<url from NAME>`.
        shown: String,
    },
}

impl<'de> Deserialize<'de> for UrlSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = SecretSource::deserialize(deserializer)?;
        let shown = match &source {
            SecretSource::Literal(text) => {
                return Template::parse(text)
                    .map(UrlSource::Written)
                    .map_err(de::Error::custom);
            }
            SecretSource::Env { env: name } | SecretSource::File { file: name } => {
                format!("<url from {name}>")
            }
        };
        Ok(UrlSource::Secret { source, shown })
    }
}
