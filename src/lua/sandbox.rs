//! A fresh Lua state with only what a script may use, and the limits every
//! call runs under.
//!
//! Loaded: the base library without `dofile`, `loadfile` and binary chunks,
//! `string` (without `dump`), `table`, `math`, `utf8`, and `os.time`,
//! `os.date`, `os.clock`. `require` loads modules from `scripts_dir` only.
//! No `io`, no `package`, no `debug`, no native modules. `setmetatable` is
//! guarded (see `guards`).

use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use mlua::chunk::ChunkMode;
use mlua::{Function, HookTriggers, Lua, LuaOptions, StdLib, Table, Value, VmState};

use super::guards;
use crate::config::read::{MAX_FILE_BYTES, read_regular};
use crate::config::values::{MAX_DURATION, error_chain};

/// Instructions between two checks of the deadline.
const INSTRUCTIONS_PER_CHECK: u32 = 1000;

/// The deadline of the call in progress, kept in the state's app data.
pub struct Deadline {
    pub at: Option<Instant>,
    pub timeout: Duration,
    /// Whether the call in progress (or the last one) ran past `at`.
    pub fired: bool,
}

/// A sandboxed state. `scripts_dir` is where `require` looks for modules.
pub fn new_state(scripts_dir: &Path, timeout: Duration) -> mlua::Result<Lua> {
    let lua = Lua::new_with(
        StdLib::STRING | StdLib::TABLE | StdLib::MATH | StdLib::UTF8 | StdLib::OS,
        LuaOptions::default(),
    )?;
    let globals = lua.globals();
    for name in ["dofile", "loadfile"] {
        globals.raw_set(name, Value::Nil)?;
    }
    let load: Function = globals.get("load")?;
    globals.set(
        "load",
        lua.create_function(
            move |_, (chunk, name, _mode, env): (Value, Value, Value, Value)| {
                load.call::<mlua::MultiValue>((chunk, name, "t", env))
            },
        )?,
    )?;
    let os: Table = globals.get("os")?;
    let safe_os = lua.create_table()?;
    for name in ["time", "date", "clock"] {
        safe_os.set(name, os.get::<Function>(name)?)?;
    }
    globals.set("os", safe_os)?;
    globals.get::<Table>("string")?.set("dump", Value::Nil)?;
    globals.set("require", require_function(&lua, scripts_dir.to_owned())?)?;

    lua.set_app_data(Deadline {
        at: None,
        timeout,
        fired: false,
    });
    guards::install(&lua)?;
    lua.set_global_hook(
        HookTriggers::new().every_nth_instruction(INSTRUCTIONS_PER_CHECK),
        |lua, _| {
            let Some(mut deadline) = lua.app_data_mut::<Deadline>() else {
                return Ok(VmState::Continue);
            };
            match deadline.at {
                Some(at) if Instant::now() >= at => {
                    deadline.fired = true;
                    Err(mlua::Error::runtime(format!(
                        "timed out after {}",
                        humantime::format_duration(deadline.timeout)
                    )))
                }
                _ => Ok(VmState::Continue),
            }
        },
    )?;
    Ok(lua)
}

/// Runs `call` with the deadline set `timeout` from now.
pub fn with_deadline<T>(lua: &Lua, call: impl FnOnce() -> T) -> T {
    start_deadline(lua);
    let result = call();
    end_deadline(lua);
    result
}

/// Runs `call` with the deadline set and at most `memory_limit` bytes in use
/// (what a script's top-level chunk runs under, as its calls do).
pub fn with_limits<T>(
    lua: &Lua,
    memory_limit: usize,
    call: impl FnOnce() -> mlua::Result<T>,
) -> mlua::Result<T> {
    lua.set_memory_limit(memory_limit)?;
    let result = with_deadline(lua, call);
    lua.set_memory_limit(0)?;
    result
}

/// Sets the deadline `timeout` from now, for the call about to start.
pub fn start_deadline(lua: &Lua) {
    if let Some(mut deadline) = lua.app_data_mut::<Deadline>() {
        let now = Instant::now();
        // A century at most (as config validation allows) cannot overflow.
        deadline.at = Some(now + deadline.timeout.min(MAX_DURATION));
        deadline.fired = false;
    }
}

/// Clears the deadline; returns whether the call ran past it.
pub fn end_deadline(lua: &Lua) -> bool {
    lua.app_data_mut::<Deadline>().is_some_and(|mut deadline| {
        deadline.at = None;
        deadline.fired
    })
}

/// Time left before the deadline of the call in progress.
pub fn time_left(lua: &Lua) -> Option<Duration> {
    let deadline = lua.app_data_ref::<Deadline>()?;
    deadline
        .at
        .map(|at| at.saturating_duration_since(Instant::now()))
}

/// Loads a script file's source as a text chunk named by its path.
pub fn load_file(lua: &Lua, path: &Path) -> mlua::Result<Function> {
    let source = read_regular(path, MAX_FILE_BYTES)
        .map_err(|err| mlua::Error::runtime(error_chain(&err)))?;
    lua.load(source)
        .set_name(format!("@{}", path.display()))
        .set_mode(ChunkMode::Text)
        .into_function()
}

/// `require(name)`: `a.b` loads `scripts_dir/a/b.lua` once and returns what
/// its chunk returned (`true` if nothing).
fn require_function(lua: &Lua, scripts_dir: PathBuf) -> mlua::Result<Function> {
    let loaded = lua.create_table()?;
    lua.create_function(move |lua, name: String| {
        if let Some(module) = loaded.get::<Option<Value>>(name.as_str())? {
            return Ok(module);
        }
        let path = module_path(&scripts_dir, &name).ok_or_else(|| {
            mlua::Error::runtime(format!(
                "require: {name:?} is not a module name (letters, digits, `_`, `-`, dots)"
            ))
        })?;
        if !path.is_file() {
            return Err(mlua::Error::runtime(format!(
                "require: module {name:?} not found: no {} (modules are loaded from scripts_dir only)",
                path.display()
            )));
        }
        check_inside(&scripts_dir, &path)
            .map_err(|err| mlua::Error::runtime(error_chain(&err)))?;
        let module = match load_file(lua, &path)?.call::<Value>(name.as_str())? {
            Value::Nil => Value::Boolean(true),
            module => module,
        };
        loaded.set(name.as_str(), &module)?;
        Ok(module)
    })
}

/// Refuses a script that is, once every symlink is resolved, outside
/// `scripts_dir`: a link there must not load (and quote, in a syntax error)
/// a file from elsewhere, such as a token.
pub fn check_inside(scripts_dir: &Path, path: &Path) -> Result<(), ScriptPathError> {
    let resolved = |path: &Path| {
        std::fs::canonicalize(path).map_err(|source| ScriptPathError::Unresolved {
            path: path.to_owned(),
            source,
        })
    };
    if resolved(path)?.starts_with(resolved(scripts_dir)?) {
        Ok(())
    } else {
        Err(ScriptPathError::Outside {
            path: path.to_owned(),
            scripts_dir: scripts_dir.to_owned(),
        })
    }
}

/// Why a script or module may not be loaded from where it is.
#[derive(Debug, thiserror::Error)]
pub enum ScriptPathError {
    #[error("cannot resolve {}", path.display())]
    Unresolved {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} leads outside scripts_dir ({}); scripts and modules are loaded from there only",
        path.display(),
        scripts_dir.display()
    )]
    Outside { path: PathBuf, scripts_dir: PathBuf },
}

/// `scripts_dir/a/b.lua` for `a.b`, refusing anything that could leave the folder.
fn module_path(scripts_dir: &Path, name: &str) -> Option<PathBuf> {
    let valid = !name.is_empty()
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
    if !valid {
        return None;
    }
    let relative = PathBuf::from(format!("{}.lua", name.replace('.', "/")));
    relative
        .components()
        .all(|part| matches!(part, Component::Normal(_)))
        .then(|| scripts_dir.join(relative))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> (tempfile::TempDir, Lua) {
        let dir = tempfile::tempdir().unwrap();
        let lua = new_state(dir.path(), Duration::from_millis(200)).unwrap();
        (dir, lua)
    }

    #[test]
    fn escapes_are_not_available() {
        let (_dir, lua) = state();
        for code in [
            "return io",
            "return os.execute",
            "return os.getenv",
            "return os.remove",
            "return dofile",
            "return loadfile",
            "return package",
            "return debug",
            "return string.dump",
        ] {
            let value: Value = lua.load(code).eval().unwrap();
            assert!(value.is_nil(), "{code} gave {value:?}");
        }
        let binary = lua
            .load("return load('\\27Lua')")
            .eval::<mlua::MultiValue>()
            .unwrap();
        assert!(binary[0].is_nil(), "a binary chunk was loaded");
        let err = lua.load("require('os')").exec().unwrap_err().to_string();
        assert!(err.contains("module \"os\" not found"), "{err}");
        let err = lua.load("require('../etc/passwd')").exec().unwrap_err();
        assert!(err.to_string().contains("is not a module name"), "{err}");
    }

    #[test]
    fn what_scripts_need_is_there() {
        let (_dir, lua) = state();
        let ok: bool = lua
            .load(
                "return type(os.time()) == 'number' and os.date('!%Y', 0) == '1970' \
                 and string.upper('a') == 'A' and utf8.char(72) == 'H' and math.max(1, 2) == 2 \
                 and load('return 1')() == 1 and table.concat({'a', 'b'}) == 'ab'",
            )
            .eval()
            .unwrap();
        assert!(ok);
    }

    #[test]
    fn require_loads_modules_from_scripts_dir_once() {
        let (dir, lua) = state();
        std::fs::create_dir(dir.path().join("lib")).unwrap();
        std::fs::write(
            dir.path().join("lib/_util.lua"),
            "counter = (counter or 0) + 1\nreturn { twice = function(x) return 2 * x end }",
        )
        .unwrap();
        let value: i64 = lua
            .load("local u = require('lib._util'); require('lib._util'); return u.twice(21) + counter")
            .eval()
            .unwrap();
        assert_eq!(value, 43);
    }

    #[test]
    fn a_loop_stops_at_the_deadline() {
        let (_dir, lua) = state();
        let started = Instant::now();
        let err = with_deadline(&lua, || lua.load("while true do end").exec()).unwrap_err();
        assert!(err.to_string().contains("timed out after 200ms"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // Without a deadline set, code runs unbounded by time.
        let n: i64 = lua
            .load("local n = 0 for i = 1, 100000 do n = n + 1 end return n")
            .eval()
            .unwrap();
        assert_eq!(n, 100000);
    }
}
