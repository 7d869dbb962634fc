//! Changes to the text of `handlers.toml`, made with `toml_edit` so that
//! everything the change does not touch (comments, key order, spacing,
//! quoting) stays byte for byte. Each returns the candidate text; nothing
//! here validates it or writes a file.

use toml_edit::{Array, DocumentMut, Item, Table, TableLike, Value};

use super::RegistrationError;
use super::input::Registration;

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
    table.insert("library", Item::Value(registration.library.as_str().into()));
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
/// is written (its comment kept), or added as the section's last key.
pub fn set_enabled(text: &str, name: &str, enabled: bool) -> Result<String, RegistrationError> {
    let mut document = parse(text)?;
    let section = section_mut(&mut document, name)?;
    match section.get_mut(ENABLED).and_then(Item::as_value_mut) {
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

/// Adds `name` to the end of `chain`, laid out like the entry before it
/// (on a line of its own in an array written one entry per line).
fn append(chain: &mut Array, name: &str) {
    let prefix = chain
        .iter()
        .last()
        .and_then(|last| last.decor().prefix()?.as_str())
        .filter(|prefix| prefix.contains('\n'))
        .unwrap_or(if chain.is_empty() { "" } else { " " })
        .to_owned();
    let mut entry = Value::from(name);
    entry.decor_mut().set_prefix(prefix);
    chain.push_formatted(entry);
}

/// Removes `name` from `chain`; the entry that becomes first keeps no
/// leading space (`["a", "b"]` less `a` is `["b"]`).
fn take_out(chain: &mut Array, name: &str) {
    let Some(index) = chain.iter().position(|entry| entry.as_str() == Some(name)) else {
        return;
    };
    chain.remove(index);
    if index == 0
        && let Some(first) = chain.get_mut(0)
        && first
            .decor()
            .prefix()
            .and_then(|prefix| prefix.as_str())
            .is_some_and(|prefix| !prefix.contains('\n'))
    {
        first.decor_mut().set_prefix("");
    }
}
