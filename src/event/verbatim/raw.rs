//! A line's top-level entries, read with strings borrowed from the line:
//! as much of each value as the verbatim pass needs, nothing copied.

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess};

/// A top-level value, as much of it as validation needs.
pub(super) enum Raw<'a> {
    Null,
    /// A string without escapes, borrowed from the line.
    Text(&'a str),
    /// A string with escapes (valid, but not borrowed).
    EscapedText,
    Integer(i128),
    /// A number with a fraction, a boolean, an array or an object.
    Other,
}

/// The top-level fields, in order; keys with escapes are refused.
pub(super) struct Entries<'a>(pub(super) Vec<(&'a str, Raw<'a>)>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = Entries<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<'de>, A::Error> {
                let mut entries = Vec::with_capacity(16);
                while let Some(key) = map.next_key::<&'de str>()? {
                    entries.push((key, map.next_value()?));
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

impl<'de> Deserialize<'de> for Raw<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = Raw<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }

            fn visit_unit<E>(self) -> Result<Raw<'de>, E> {
                Ok(Raw::Null)
            }

            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Raw<'de>, E> {
                Ok(Raw::Text(text))
            }

            fn visit_str<E>(self, _: &str) -> Result<Raw<'de>, E> {
                Ok(Raw::EscapedText)
            }

            fn visit_i64<E>(self, number: i64) -> Result<Raw<'de>, E> {
                Ok(Raw::Integer(number.into()))
            }

            fn visit_u64<E>(self, number: u64) -> Result<Raw<'de>, E> {
                Ok(Raw::Integer(number.into()))
            }

            fn visit_f64<E>(self, _: f64) -> Result<Raw<'de>, E> {
                Ok(Raw::Other)
            }

            fn visit_bool<E>(self, _: bool) -> Result<Raw<'de>, E> {
                Ok(Raw::Other)
            }

            // Nested values are read as `Raw`s too, not skipped with
            // `IgnoredAny`: that way serde_json's nesting limit holds here
            // as it does when the fields are parsed.
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw<'de>, A::Error> {
                while seq.next_element::<Raw>()?.is_some() {}
                Ok(Raw::Other)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, Raw>()?.is_some() {}
                Ok(Raw::Other)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}
