//! The keys a settings struct reads, as `#[derive(Deserialize)]` lists them
//! (aliases included, `#[serde(skip)]` fields left out): a section whose
//! keys are split between structs is split on these, so the split cannot
//! drift from the structs.

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// The keys `T` reads. `T` must be a struct with named fields.
pub fn keys_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut keys: &'static [&'static str] = &[];
    let _ = T::deserialize(Capture(&mut keys));
    assert!(
        !keys.is_empty(),
        "keys_of::<{}>: not a struct with named fields",
        std::any::type_name::<T>()
    );
    keys
}

/// A deserializer that only records the field list serde's derive hands it.
struct Capture<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for Capture<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("only a struct's keys are read"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("only a struct's keys are read"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Sample {
        #[serde(alias = "First")]
        first: u32,
        #[serde(skip)]
        skipped: u32,
        last: u32,
    }

    #[test]
    fn lists_fields_and_aliases_but_not_skipped_fields() {
        let mut keys = keys_of::<Sample>().to_vec();
        keys.sort_unstable();
        assert_eq!(keys, ["First", "first", "last"]);
    }
}
