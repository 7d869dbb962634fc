//! Changes to the text of `handlers.toml`, made with `toml_edit` so that
//! everything the change does not touch (comments, key order, spacing,
//! quoting) stays byte for byte. Each returns the candidate text; nothing
//! here validates it or writes a file.

use toml_edit::{Array, DocumentMut, Item, Table, TableLike, Value};

use super::RegistrationError;
use super::input::Registration;
use super::keys::{canonical, section_keys};
use crate::handlers::LIBRARY_KEYS;

const HANDLERS: &str = "handlers";
const HOOKS: &str = "hooks";
const ENABLED: &str = "enabled";

/// `text` with a `[handlers.NAME]` section for `registration`, after the
/// last handler section, and its name at the end of each chain it joins.
pub fn register(text: &str, registration: &Registration) -> Result<String, RegistrationError> {
    let mut document = parse(text)?;
    let name = &registration.name;
    if section(&document, name).is_some() {
        return Err(RegistrationError::Exists { name: name.clone() });
    }
    let mut table = Table::new();
    table.insert(
        LIBRARY_KEYS[0],
        Item::Value(registration.library.as_str().into()),
    );
    for (key, value) in &registration.settings {
        table.insert(key, Item::Value(value.clone()));
    }
    // A blank line before the header. A table made here has no position:
    // it is written after the table before it in the document, the last
    // handler section.
    table.decor_mut().set_prefix("\n");
    let handlers = document
        .entry(HANDLERS)
        .or_insert_with(|| {
            let mut handlers = Table::new();
            handlers.set_implicit(true);
            Item::Table(handlers)
        })
        .as_table_like_mut()
        .ok_or_else(|| not_a_table(HANDLERS))?;
    handlers.insert(name, Item::Table(table));
    let hooks = document
        .entry(HOOKS)
        .or_insert_with(|| Item::Table(Table::new()))
        .as_table_like_mut()
        .ok_or_else(|| not_a_table(HOOKS))?;
    for phase in &registration.phases {
        match hooks.get_mut(phase).and_then(Item::as_array_mut) {
            Some(chain) => append(chain, name),
            None => {
                let mut chain = Array::new();
                chain.push(name.as_str());
                hooks.insert(phase, Item::Value(chain.into()));
            }
        }
    }
    Ok(document.to_string())
}

/// `text` with `enabled` of handler `name` set: the value replaced where it
/// is written (under its alias too, its comment kept), or added as the
/// section's last key.
pub fn set_enabled(text: &str, name: &str, enabled: bool) -> Result<String, RegistrationError> {
    let mut document = parse(text)?;
    let section = section_mut(&mut document, name)?;
    let keys = section_keys(None);
    let written = section
        .iter()
        .map(|(key, _)| key.to_owned())
        .find(|key| canonical(key, &keys) == Some(ENABLED))
        .unwrap_or_else(|| ENABLED.to_owned());
    match section.get_mut(&written).and_then(Item::as_value_mut) {
        Some(value) => {
            let decor = value.decor().clone();
            *value = enabled.into();
            *value.decor_mut() = decor;
        }
        None => {
            section.insert(ENABLED, Item::Value(enabled.into()));
        }
    }
    Ok(document.to_string())
}

/// `text` without handler `name`: its section (with the comments above its
/// header) and its entry in every chain.
pub fn remove(text: &str, name: &str) -> Result<String, RegistrationError> {
    let mut document = parse(text)?;
    section_mut(&mut document, name)?;
    if let Some(handlers) = document.get_mut(HANDLERS).and_then(Item::as_table_like_mut) {
        handlers.remove(name);
    }
    if let Some(hooks) = document.get_mut(HOOKS).and_then(Item::as_table_like_mut) {
        for (_, chain) in hooks.iter_mut() {
            if let Some(chain) = chain.as_array_mut() {
                take_out(chain, name);
            }
        }
    }
    Ok(document.to_string())
}

fn parse(text: &str) -> Result<DocumentMut, RegistrationError> {
    text.parse()
        .map_err(|err: toml_edit::TomlError| RegistrationError::Invalid {
            problems: vec![err.to_string()],
        })
}

fn section<'a>(document: &'a DocumentMut, name: &str) -> Option<&'a dyn TableLike> {
    document
        .get(HANDLERS)?
        .as_table_like()?
        .get(name)?
        .as_table_like()
}

fn section_mut<'a>(
    document: &'a mut DocumentMut,
    name: &str,
) -> Result<&'a mut dyn TableLike, RegistrationError> {
    document
        .get_mut(HANDLERS)
        .and_then(Item::as_table_like_mut)
        .and_then(|handlers| handlers.get_mut(name))
        .and_then(Item::as_table_like_mut)
        .ok_or_else(|| RegistrationError::NotFound {
            name: name.to_owned(),
        })
}

fn not_a_table(key: &str) -> RegistrationError {
    RegistrationError::Invalid {
        problems: vec![format!(
            "`{key}` is not a table; cannot add a handler to it"
        )],
    }
}

/// Adds `name` to the end of `chain`, laid out like the entry before it:
/// on a line of its own, indented the same, in an array written one entry
/// per line. (What precedes an entry also holds the comment after the
/// entry before it; that is not copied.)
fn append(chain: &mut Array, name: &str) {
    let own_line = chain
        .iter()
        .last()
        .and_then(|last| last.decor().prefix()?.as_str())
        .and_then(|prefix| prefix.rsplit_once('\n'))
        .map(|(_, indent)| indent.to_owned());
    let prefix = match own_line {
        // One entry per line: the comment after the last entry (the
        // array's trailing text up to its newline) stays on that entry's
        // line, and the new entry takes a line of its own below it.
        Some(indent) => {
            let trailing = chain.trailing().as_str().unwrap_or("\n").to_owned();
            let (comment, rest) = trailing.split_once('\n').unwrap_or((&trailing, ""));
            let prefix = format!("{comment}\n{indent}");
            chain.set_trailing(format!("\n{rest}"));
            prefix
        }
        None if chain.is_empty() => String::new(),
        None => " ".to_owned(),
    };
    let mut entry = Value::from(name);
    entry.decor_mut().set_prefix(prefix);
    chain.push_formatted(entry);
}

/// Removes `name` from `chain` with its line in an array written one entry
/// per line: the comment after it and the lines above it go, the comment
/// after the entry before it stays. In an array on one line, the entry
/// that becomes first keeps no leading space (`["a", "b"]` less `a` is
/// `["b"]`).
///
/// What precedes an entry is the rest of the line before it (that entry's
/// comment), a newline, the lines above it, its indent; what follows the
/// last entry is its comment and a newline.
fn take_out(chain: &mut Array, name: &str) {
    let Some(index) = chain.iter().position(|entry| entry.as_str() == Some(name)) else {
        return;
    };
    let removed = chain.remove(index);
    let text =
        |raw: Option<&toml_edit::RawString>| raw.and_then(|raw| raw.as_str()).map(str::to_owned);
    let before = text(removed.decor().prefix()).unwrap_or_default();
    // The comment of the entry before the removed one.
    let kept = before.split_once('\n').map(|(comment, _)| comment);
    let joined = |after: &str| {
        let (_, rest) = after.split_once('\n')?;
        Some(format!("{}\n{rest}", kept?))
    };
    match chain.get_mut(index) {
        Some(next) => {
            let after = text(next.decor().prefix()).unwrap_or_default();
            if let Some(prefix) = joined(&after) {
                next.decor_mut().set_prefix(prefix);
            } else if index == 0 && !after.contains('\n') {
                next.decor_mut().set_prefix("");
            }
        }
        None => {
            let after = text(Some(chain.trailing())).unwrap_or_default();
            if let Some(trailing) = joined(&after) {
                chain.set_trailing(trailing);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
[hooks]
OnStart = [
    \"a\",  # first
    \"b\",
]
OnFinish = [\"a\", \"b\"]

[handlers.a]
library = \"LuaHandler\"
Enabled = false  # until it is tested
lua_script = \"a.lua\"

[handlers.b]
library = \"LuaHandler\"
lua_script = \"b.lua\"
";

    #[test]
    fn enabled_is_set_where_it_is_written_even_under_its_alias() {
        let enabled = set_enabled(TEXT, "a", true).unwrap();
        assert_eq!(
            enabled,
            TEXT.replace("Enabled = false  #", "Enabled = true  #")
        );
        let disabled = set_enabled(TEXT, "b", false).unwrap();
        assert_eq!(
            disabled,
            TEXT.replace("\"b.lua\"\n", "\"b.lua\"\nenabled = false\n")
        );
    }

    #[test]
    fn chains_keep_their_layout() {
        let registration = Registration {
            name: "c".to_owned(),
            library: "LuaHandler".to_owned(),
            phases: vec![
                "OnStart".to_owned(),
                "OnFinish".to_owned(),
                "OnError".to_owned(),
            ],
            settings: vec![("lua_script".to_owned(), "c.lua".into())],
        };
        let registered = register(TEXT, &registration).unwrap();
        let expected = TEXT
            .replace("    \"b\",\n]", "    \"b\",\n    \"c\",\n]")
            .replace("[\"a\", \"b\"]", "[\"a\", \"b\", \"c\"]\nOnError = [\"c\"]")
            + "\n[handlers.c]\nlibrary = \"LuaHandler\"\nlua_script = \"c.lua\"\n";
        assert_eq!(registered, expected);
        let removed = remove(&registered, "a").unwrap();
        assert!(
            removed.contains("OnStart = [\n    \"b\",\n    \"c\",\n]"),
            "{removed}"
        );
        assert!(removed.contains("OnFinish = [\"b\", \"c\"]"), "{removed}");
        assert!(!removed.contains("[handlers.a]") && !removed.contains("until it is tested"));
    }

    #[test]
    fn an_entry_goes_with_its_line_and_comments() {
        let chain = "\
OnStart = [
    \"a\",  # first
    # b is new
    \"b\",  # second
    \"c\",
]
";
        let text = format!("[hooks]\n{chain}\n[handlers.a]\n\n[handlers.b]\n\n[handlers.c]\n");
        let without = |name| {
            let text = remove(&text, name).unwrap();
            text.split("\n\n").next().unwrap().to_owned()
        };
        assert_eq!(
            without("b"),
            "[hooks]\nOnStart = [\n    \"a\",  # first\n    \"c\",\n]"
        );
        assert_eq!(
            without("c"),
            "[hooks]\nOnStart = [\n    \"a\",  # first\n    # b is new\n    \"b\",  # second\n]"
        );
        assert_eq!(
            without("a"),
            "[hooks]\nOnStart = [\n    # b is new\n    \"b\",  # second\n    \"c\",\n]"
        );
    }
}
