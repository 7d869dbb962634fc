//! What a `LuaHandler` section says. Data only: the handler is built from it
//! in `super`.

use std::path::PathBuf;

use serde::Deserialize;

use crate::config::values::{Bytes, List};
use crate::lua::settings::default_memory_limit;

/// Settings of a `LuaHandler` section.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The script, relative to `[daemon] scripts_dir`. It defines
    /// `function handle(event)`. Alias `LuaScript`.
    #[serde(alias = "LuaScript")]
    pub lua_script: PathBuf,
    /// Memory one Lua state of the script may use; a call that needs more
    /// fails. Default `"32MiB"`.
    #[serde(default = "default_memory_limit")]
    pub memory_limit: Bytes,
    /// Environment variables the script may read with `env(name)`.
    #[serde(default)]
    pub allow_env: List,
}
