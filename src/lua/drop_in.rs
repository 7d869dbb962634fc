//! Drop-in handlers: a script in `scripts_dir` whose chunk returns
//! `{ on = {...}, handle = function(event) ... end, ... }` joins the end of
//! the chains it names, in file-name order, without an edit to handlers.toml.
//!
//! Files starting with `_` are libraries; scripts a `[handlers.NAME]` section
//! names are run by that section only.

use std::path::{Path, PathBuf};

use mlua::{Table, Value};
use serde::Deserialize;

use super::convert::from_lua;
use super::sandbox;
use super::settings::default_memory_limit;
use super::{Limits, Scripting, script_diagnostic};
use crate::config::values::{Bytes, List, error_chain};
use crate::config::{CommonSettings, Diagnostic, Position, closest, keys_of};
use crate::event::Phase;

/// A drop-in script, read and checked.
#[derive(Debug)]
pub struct DropIn {
    /// The file name (`notify.lua`), which names the handler in logs.
    pub name: String,
    pub path: PathBuf,
    /// The chains it joins.
    pub phases: Vec<Phase>,
    pub common: CommonSettings,
    pub limits: Limits,
}

/// Options a drop-in table gives besides `handle` and the common ones.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Chains to join: `OnStart`, `OnFinish`, `OnError`.
    on: List,
    /// Memory the script's state may use. Default `"32MiB"`.
    #[serde(default = "default_memory_limit")]
    memory_limit: Bytes,
    /// Environment variables `env(name)` may read.
    #[serde(default)]
    allow_env: List,
}

/// The key of the function that handles an event.
const HANDLE: &str = "handle";

/// How long a drop-in's chunk may run when it is read.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// Memory a drop-in's chunk may use when it is read (before its own
/// `memory_limit` is known; its states then run under that).
const READ_MEMORY_LIMIT: usize = 256 << 20;

/// Every drop-in of the scripts folder, skipping the scripts in `claimed`
/// (named by sections). Scripts that are neither drop-ins nor claimed are
/// reported as warnings.
pub fn discover(claimed: &[PathBuf], scripting: &Scripting) -> (Vec<DropIn>, Vec<Diagnostic>) {
    let mut drop_ins = Vec::new();
    let mut problems = Vec::new();
    for path in scripts(&scripting.scripts_dir) {
        if claimed.contains(&path) {
            continue;
        }
        match read(&path, scripting) {
            Ok(Some(drop_in)) => drop_ins.push(drop_in),
            Ok(None) => problems.push(at_start(&path).warning(
                "no [handlers] section names this script and it returns no drop-in table \
                 ({ on = {...}, handle = function(event) ... end }); it is not run",
            )),
            Err(problem) => problems.push(problem),
        }
    }
    (drop_ins, problems)
}

/// `*.lua` files of the folder not starting with `_`, in name order.
fn scripts(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension().is_some_and(|ext| ext == "lua")
                && path.is_file()
                && path
                    .file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| !name.starts_with('_'))
        })
        .collect();
    paths.sort();
    paths
}

fn at_start(path: &Path) -> Position {
    Position {
        file: path.to_owned(),
        line: 1,
        column: 1,
    }
}

/// The drop-in a script declares, `None` if its chunk returns no table with
/// `handle`.
fn read(path: &Path, scripting: &Scripting) -> Result<Option<DropIn>, Diagnostic> {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    sandbox::check_inside(&scripting.scripts_dir, path)
        .map_err(|err| at_start(path).error(error_chain(&err)))?;
    let lua = sandbox::new_state(&scripting.scripts_dir, READ_TIMEOUT)
        .map_err(|err| script_diagnostic(path, &err))?;
    super::api::install(&lua, &scripting.env(&name, &[], default_memory_limit().0))
        .map_err(|err| script_diagnostic(path, &err))?;
    let returned: Value = sandbox::load_file(&lua, path)
        .and_then(|chunk| sandbox::with_limits(&lua, READ_MEMORY_LIMIT, || chunk.call(())))
        .map_err(|err| script_diagnostic(path, &err))?;
    let Value::Table(table) = returned else {
        return Ok(None);
    };
    if !matches!(table.get::<Value>(HANDLE), Ok(Value::Function(_))) {
        return Ok(None);
    }
    let fail = |message: String| at_start(path).error(format!("drop-in {name}: {message}"));
    let (common, options) = options(&lua, &table).map_err(|err| fail(error_chain(&err)))?;
    let common: CommonSettings =
        serde_json::from_value(common.into()).map_err(|err| fail(err.to_string()))?;
    let options: Options =
        serde_json::from_value(options.into()).map_err(|err| fail(err.to_string()))?;
    let phases = options
        .on
        .0
        .iter()
        .map(|chain| {
            Phase::parse(chain).ok_or_else(|| {
                fail(format!(
                    "on: `{chain}` is not a chain; expected OnStart, OnFinish or OnError"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if phases.is_empty() {
        return Err(fail("on: name at least one chain".to_owned()));
    }
    Ok(Some(DropIn {
        name,
        path: path.to_owned(),
        phases,
        limits: Limits {
            timeout: common.timeout.0,
            memory_limit: options.memory_limit.0,
            allow_env: options.allow_env.0,
        },
        common,
    }))
}

type Fields = serde_json::Map<String, serde_json::Value>;

/// The table's keys split into common settings and drop-in options, with a
/// did-you-mean for a key that is neither.
fn options(lua: &mlua::Lua, table: &Table) -> Result<(Fields, Fields), OptionError> {
    let (mut common, mut options) = (Fields::new(), Fields::new());
    for pair in table.pairs::<String, Value>() {
        let (key, value) = pair.map_err(OptionError::KeyNotName)?;
        if key == HANDLE {
            continue;
        }
        let value = match from_lua(lua, value) {
            Ok(value) => value,
            Err(err) => {
                let reason = super::describe(&err);
                return Err(OptionError::Value { key, reason });
            }
        };
        let (common_keys, option_keys) = (CommonSettings::keys(), keys_of::<Options>());
        if common_keys.contains(&key.as_str()) {
            common.insert(key, value);
        } else if option_keys.contains(&key.as_str()) {
            options.insert(key, value);
        } else {
            let known = common_keys.iter().chain(option_keys).chain([&HANDLE]);
            let hint = closest(&key, known.copied());
            let hint = hint.map(str::to_owned);
            return Err(OptionError::Unknown { key, hint });
        }
    }
    Ok((common, options))
}

/// Why a drop-in's table cannot be read.
#[derive(Debug, thiserror::Error)]
enum OptionError {
    #[error("keys must be names")]
    KeyNotName(#[source] mlua::Error),
    /// `reason` is the Lua error as the script's author needs it
    /// (`super::describe`), not the whole error with its traceback.
    #[error("{key}: {reason}")]
    Value { key: String, reason: String },
    #[error(
        "unknown option `{key}`{}",
        hint.as_ref().map(|hint| format!("; did you mean `{hint}`?")).unwrap_or_default()
    )]
    Unknown { key: String, hint: Option<String> },
}
