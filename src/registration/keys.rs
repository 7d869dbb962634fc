//! The keys a handler section may hold, as its settings types declare them,
//! and the snake_case key each alias stands for.
//!
//! The aliases are the `#[serde(alias)]`es of the settings types; none is
//! listed here. An alias is the snake_case key spelled without underscores
//! in another case (`URL` → `url`, `NTLMUser` → `ntlm_user`,
//! `UseNTLMv2` → `use_ntlmv2`), except `LibraryName`, which
//! [`LIBRARY_KEYS`] pairs with `library`; a test checks every alias maps.

use crate::config::{CommonSettings, keys_of};
use crate::handlers::{LIBRARY_KEYS, Library, SettingsTypes};

/// Every key a section of `library` may hold, aliases included; only the
/// common keys and `library` when the library is not known.
pub fn section_keys(library: Option<Library>) -> Vec<&'static str> {
    let mut keys = [LIBRARY_KEYS, CommonSettings::keys()].concat();
    if let Some(library) = library {
        keys.extend(library_keys(library));
    }
    keys
}

/// The keys the library's own settings types read, aliases included.
pub fn library_keys(library: Library) -> Vec<&'static str> {
    struct Keys(Vec<&'static str>);
    impl SettingsTypes for Keys {
        fn each<T: serde::de::DeserializeOwned>(&mut self) {
            self.0.extend(keys_of::<T>());
        }
    }
    let mut keys = Keys(Vec::new());
    library.settings_types(&mut keys);
    keys.0
}

/// The snake_case key `key` is, or is an alias of, among `keys`; `None`
/// when `key` is not one of them (it is then written as given, and
/// validation names it with a "did you mean").
pub fn canonical(key: &str, keys: &[&'static str]) -> Option<&'static str> {
    if LIBRARY_KEYS.contains(&key) {
        return Some(LIBRARY_KEYS[0]);
    }
    let declared = keys.iter().copied().find(|known| *known == key)?;
    if is_snake_case(declared) {
        return Some(declared);
    }
    keys.iter()
        .copied()
        .find(|known| is_snake_case(known) && known.replace('_', "").eq_ignore_ascii_case(declared))
}

fn is_snake_case(key: &str) -> bool {
    key.bytes()
        .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alias_names_a_snake_case_key() {
        for library in [Library::TextFile, Library::Http, Library::Lua] {
            let keys = section_keys(Some(library));
            for key in &keys {
                let canonical = canonical(key, &keys);
                assert!(
                    canonical.is_some_and(is_snake_case),
                    "{}: alias `{key}` maps to {canonical:?}",
                    library.name()
                );
            }
        }
        let http = section_keys(Some(Library::Http));
        for (alias, key) in [
            ("URL", "url"),
            ("BasicPassword", "basic_password"),
            ("NTLMUser", "ntlm_user"),
            ("UseNTLMAuthentication", "use_ntlm_authentication"),
            ("UseNTLMv2", "use_ntlmv2"),
            ("SSLConfig", "ssl_config"),
            ("JobTypes", "job_types"),
            ("DisplayName", "display_name"),
            ("Enabled", "enabled"),
            ("LibraryName", "library"),
        ] {
            assert_eq!(canonical(alias, &http), Some(key));
        }
        assert_eq!(canonical("Url", &http), None, "only declared aliases");
        let lua = section_keys(Some(Library::Lua));
        assert_eq!(canonical("LuaScript", &lua), Some("lua_script"));
        let text_file = section_keys(Some(Library::TextFile));
        assert_eq!(canonical("FilePath", &text_file), Some("file_path"));
    }
}
