//! The libraries a `[handlers.NAME]` section can name: the one place that
//! decides which library a section is, reads its settings and builds its
//! handler. A new library is a folder beside `text_file` and a line in each
//! `match` here (and a variant of [`Handler`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{Handler, http, lua, text_file};
use crate::config::from_value;
use crate::config::values::SecretSource;
use crate::http::SslSettings;
use crate::http::settings::ConnectionSettings;
use crate::lua::Scripting;

/// The libraries a `[handlers.NAME]` section can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Library {
    TextFile,
    Http,
    Lua,
}

impl Library {
    const ALL: [(Library, &str); 3] = [
        (Library::TextFile, "TextFileHandler"),
        (Library::Http, "HttpHandler"),
        (Library::Lua, "LuaHandler"),
    ];
    pub const NAMES: [&str; 3] = [Library::ALL[0].1, Library::ALL[1].1, Library::ALL[2].1];

    /// Keys some library reads besides its settings' own fields; a misspelt
    /// key is matched against them too.
    pub fn extra_keys() -> &'static [&'static str] {
        ConnectionSettings::keys()
    }

    /// The library's name as `library = "…"` writes it (`HttpHandler`).
    pub fn name(self) -> &'static str {
        Library::ALL
            .into_iter()
            .find(|(library, _)| *library == self)
            .map_or("", |(_, name)| name)
    }

    /// Calls `visit` with each settings type the library reads from its
    /// section (what is not `library` or a common key), so that what is
    /// asked of the types (their keys, which of them hold secrets) cannot
    /// drift from the types.
    pub fn settings_types(self, visit: &mut impl SettingsTypes) {
        match self {
            Library::TextFile => visit.each::<text_file::settings::Settings>(),
            Library::Http => {
                visit.each::<http::settings::Settings>();
                visit.each::<ConnectionSettings>();
            }
            Library::Lua => visit.each::<lua::settings::Settings>(),
        }
    }

    /// Reads a library name as written in `library = "…"` (any case).
    pub fn parse(name: &str) -> Option<Library> {
        Library::ALL
            .into_iter()
            .find(|(_, known)| known.eq_ignore_ascii_case(name))
            .map(|(library, _)| library)
    }
}

/// Something done for each settings type of a library
/// ([`Library::settings_types`]).
pub trait SettingsTypes {
    fn each<T: DeserializeOwned>(&mut self);
}

/// The library-specific half of a section.
#[derive(Debug, PartialEq)]
pub enum LibrarySettings {
    TextFile(text_file::settings::Settings),
    Http(Box<http::settings::Settings>),
    Lua(lua::settings::Settings),
}

impl LibrarySettings {
    /// Reads the keys of a section that are `library`'s (neither `library`
    /// nor a common key).
    pub fn read(
        library: Library,
        keys: DeTable<'_>,
        span: std::ops::Range<usize>,
    ) -> Result<LibrarySettings, toml::de::Error> {
        let table = |keys| Spanned::new(span.clone(), DeValue::Table(keys));
        Ok(match library {
            Library::TextFile => LibrarySettings::TextFile(from_value(table(keys))?),
            Library::Http => LibrarySettings::Http(Box::new(http::settings::Settings::read(
                keys,
                span.clone(),
            )?)),
            Library::Lua => LibrarySettings::Lua(from_value(table(keys))?),
        })
    }

    /// The library these settings are of.
    pub fn library(&self) -> Library {
        match self {
            LibrarySettings::TextFile(_) => Library::TextFile,
            LibrarySettings::Http(_) => Library::Http,
            LibrarySettings::Lua(_) => Library::Lua,
        }
    }

    /// The `[ssl.NAME]` section the handler's connection names, if any.
    pub fn ssl_config(&self) -> Option<&Spanned<String>> {
        match self {
            LibrarySettings::Http(settings) => settings.connection.ssl_config.as_ref(),
            LibrarySettings::TextFile(_) | LibrarySettings::Lua(_) => None,
        }
    }

    /// The secrets the section holds, by key.
    pub fn secrets(&self) -> Vec<(&'static str, &SecretSource)> {
        match self {
            LibrarySettings::Http(settings) => settings.secrets().collect(),
            LibrarySettings::TextFile(_) | LibrarySettings::Lua(_) => Vec::new(),
        }
    }

    /// The script the section runs, relative to the scripts folder.
    pub fn lua_script(&self) -> Option<&Path> {
        match self {
            LibrarySettings::Lua(settings) => Some(&settings.lua_script),
            LibrarySettings::TextFile(_) | LibrarySettings::Http(_) => None,
        }
    }
}

/// What building a handler needs besides its own section.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The config file's directory: relative paths resolve against it.
    pub dir: &'a Path,
    /// The `[ssl.NAME]` sections.
    pub ssl: &'a BTreeMap<String, SslSettings>,
    /// What every script of this build shares.
    pub scripting: &'a Scripting,
}

impl Context<'_> {
    fn http(&self) -> crate::http::Context<'_> {
        crate::http::Context {
            dir: self.dir,
            ssl: self.ssl,
        }
    }
}

/// Why a handler could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    TextFile(#[from] text_file::SettingsError),
    #[error(transparent)]
    Http(#[from] Box<http::SetupError>),
    /// A problem in the script, reported at the script's line.
    #[error("{}", path.display())]
    Script {
        path: PathBuf,
        #[source]
        source: mlua::Error,
    },
}

impl Handler {
    /// Builds the handler a section describes: resolves its secrets, builds
    /// its HTTP client, compiles its script; opens no file and no connection.
    pub fn build(
        section: &super::HandlerSection,
        context: &Context<'_>,
    ) -> Result<Handler, BuildError> {
        let timeout = section.common.timeout.0;
        match &section.library {
            LibrarySettings::TextFile(settings) => Ok(Handler::TextFile(
                text_file::TextFileHandler::new(settings, context.dir)?,
            )),
            LibrarySettings::Http(settings) => http::HttpHandler::new(settings, context.http())
                .map(|handler| Handler::Http(Box::new(handler)))
                .map_err(|err| BuildError::Http(Box::new(err))),
            LibrarySettings::Lua(settings) => {
                let scripting = context.scripting;
                lua::LuaHandler::new(&section.name, settings, timeout, scripting)
                    .map(Handler::Lua)
                    .map_err(|source| BuildError::Script {
                        path: scripting.script_path(&settings.lua_script),
                        source,
                    })
            }
        }
    }
}
