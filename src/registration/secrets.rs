//! Which settings are never shown, and showing a section's settings with
//! them replaced by `"<redacted>"`.
//!
//! What is secret is asked of the settings types, not listed: a key is a
//! secret when its type takes the secret forms (`{ env = "NAME" }`,
//! `{ file = "path" }`, i.e. [`SecretSource`](crate::config::values::SecretSource))
//! and refuses other tables. A key whose type takes any table of strings
//! (`headers`) has every value hidden: nothing types a header as secret,
//! and `Authorization` or `X-Api-Key` headers carry credentials; the header
//! names are shown.
//!
//! Each form of a secret is hidden, the names of variables and files too
//! (they say where credentials are kept). One key takes the secret forms
//! but reads a plain string as public: `url`, the handler's address, whose
//! secret form is for URLs carrying a token ([`URL_KEY`]).

use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::config::{CommonSettings, from_value, keys_of};
use crate::handlers::{Library, SettingsTypes};

/// What a redacted value shows.
pub const REDACTED: &str = "<redacted>";

/// The one secret-capable key whose plain string is shown (an HTTP
/// handler's address, `UrlSource::Written`).
const URL_KEY: &str = "url";

/// How a library's settings are shown: the keys that are secrets and the
/// keys whose values are all hidden, aliases included.
#[derive(Debug, Default)]
pub struct Hidden {
    secrets: Vec<&'static str>,
    tables: Vec<&'static str>,
}

impl Hidden {
    /// What `library` hides: asked once of the common settings and each of
    /// the library's settings types (which of their keys take a secret,
    /// which any table), then kept.
    pub fn of(library: Library) -> &'static Hidden {
        static ALL: OnceLock<Vec<(Library, Hidden)>> = OnceLock::new();
        let all = ALL.get_or_init(|| {
            Library::NAMES
                .iter()
                .filter_map(|name| Library::parse(name))
                .map(|library| {
                    let mut hidden = Hidden::default();
                    hidden.each::<CommonSettings>();
                    library.settings_types(&mut hidden);
                    (library, hidden)
                })
                .collect()
        });
        all.iter()
            .find(|(known, _)| *known == library)
            .map(|(_, hidden)| hidden)
            .expect("every library is in Library::NAMES")
    }

    /// `value` of `key` (snake_case) as the admin API shows it.
    pub fn show(&self, key: &str, value: Value) -> Value {
        if self.secrets.contains(&key) {
            if key == URL_KEY
                && let Value::String(url) = &value
            {
                return Value::from(without_password(url));
            }
            return Value::from(REDACTED);
        }
        match value {
            Value::Object(map) if self.tables.contains(&key) => Value::Object(
                map.into_iter()
                    .map(|(name, _)| (name, Value::from(REDACTED)))
                    .collect::<Map<_, _>>(),
            ),
            value => value,
        }
    }
}

/// A URL as shown: credentials written in it (`https://user:pw@host/`,
/// `https://TOKEN@host/`) and every query value (`?api_key=…`) are
/// replaced, as [`crate::http::redact`] does for messages; the rest is
/// shown as written, so placeholders such as `{JobId}` stay readable.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:{REDACTED}@{host}"),
            None => format!("{REDACTED}@{host}"),
        },
        None => authority.to_owned(),
    };
    let path = match path.split_once('?') {
        Some((before, query)) => {
            let (query, fragment) = query
                .split_once('#')
                .map_or((query, None), |(q, f)| (q, Some(f)));
            let hidden: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _)) => format!("{name}={REDACTED}"),
                    None => pair.to_owned(),
                })
                .collect();
            let fragment = fragment.map(|f| format!("#{f}")).unwrap_or_default();
            format!("{before}?{}{fragment}", hidden.join("&"))
        }
        None => path.to_owned(),
    };
    format!("{scheme}://{authority}{path}")
}

impl SettingsTypes for Hidden {
    fn each<T: DeserializeOwned>(&mut self) {
        for &key in keys_of::<T>() {
            if takes::<T>(key, "{ jobhook_probe = \"x\" }") {
                self.tables.push(key);
            } else if takes::<T>(key, "{ env = \"JOBHOOK_PROBE\" }") {
                self.secrets.push(key);
            }
        }
    }
}

/// Whether `T` reads `value` (TOML) as the value of `key`: reading a table
/// holding only that key fails at the value if it does not (other
/// problems, such as a missing required key, are placed elsewhere). A
/// problem placed nowhere counts as taken: in doubt, a value is hidden.
fn takes<T: DeserializeOwned>(key: &str, value: &str) -> bool {
    let text = format!("{key} = {value}");
    let at = text.len() - value.len()..text.len();
    let Ok(table) = DeTable::parse(&text) else {
        return false;
    };
    // The table is placed at 0..0 so that a problem with it as a whole is
    // never mistaken for one at the value.
    let table = Spanned::new(0..0, DeValue::Table(table.into_inner()));
    match from_value::<T>(table) {
        Ok(_) => true,
        Err(err) => err
            .span()
            .is_none_or(|span| span.end <= at.start || span.start >= at.end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_found_in_the_types() {
        let http = Hidden::of(Library::Http);
        let mut secrets = http.secrets.clone();
        secrets.sort_unstable();
        assert_eq!(
            secrets,
            [
                "BasicPassword",
                "NTLMPassword",
                "ProxyPassword",
                "URL",
                "basic_password",
                "bearer_token",
                "ntlm_password",
                "proxy_password",
                "signing_secret",
                "url"
            ]
        );
        assert_eq!(http.tables, ["headers"]);
        for library in [Library::TextFile, Library::Lua] {
            let hidden = Hidden::of(library);
            assert!(hidden.secrets.is_empty() && hidden.tables.is_empty());
        }
    }

    #[test]
    fn a_password_written_in_a_url_is_hidden() {
        let http = Hidden::of(Library::Http);
        let shown = |url: &str| http.show("url", Value::from(url));
        assert_eq!(
            shown("https://svc:hunter2@itsm.example.com/api/{JobId}?api_key=k@y&x"),
            "https://svc:<redacted>@itsm.example.com/api/{JobId}?api_key=<redacted>&x"
        );
        assert_eq!(
            shown("https://TOKEN@itsm.example.com/"),
            "https://<redacted>@itsm.example.com/"
        );
        assert_eq!(
            shown("https://itsm.example.com/a@b"),
            "https://itsm.example.com/a@b"
        );
        assert_eq!(shown("{Target}"), "{Target}");
    }

    #[test]
    fn shows_secrets_redacted_in_every_form() {
        let http = Hidden::of(Library::Http);
        let json = |text: &str| serde_json::from_str::<Value>(text).unwrap();
        assert_eq!(http.show("basic_password", json(r#""hunter2""#)), REDACTED);
        assert_eq!(
            http.show("signing_secret", json(r#"{"env": "SIGNING"}"#)),
            REDACTED
        );
        assert_eq!(http.show("url", json(r#"{"file": "url.txt"}"#)), REDACTED);
        assert_eq!(http.show("url", json(r#""https://a/""#)), "https://a/");
        assert_eq!(
            http.show("headers", json(r#"{"Authorization": "Bearer abc"}"#)),
            json(r#"{"Authorization": "<redacted>"}"#)
        );
        assert_eq!(http.show("basic_user", json(r#""svc""#)), "svc");
    }
}
