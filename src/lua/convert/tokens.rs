//! JSON text read into a flat list of tokens, before anything is pushed
//! onto Lua's stack.

use std::borrow::Cow;

/// JSON text read into a flat list, before anything is pushed: a Lua error
/// (the memory limit) can then unwind the pushing without skipping any
/// destructor, and strings without escapes stay borrowed from the text.
/// A container's token gives the number of values (for an object, key and
/// value pairs) that follow it.
pub(super) enum Token<'a> {
    Null,
    Bool(bool),
    Integer(i64),
    Float(f64),
    Text(Cow<'a, str>),
    Array(usize),
    Object(usize),
}

/// The tokens of `text`, or where it stops being JSON.
pub(super) fn tokenize(text: &[u8]) -> serde_json::Result<Vec<Token<'_>>> {
    let mut tokens = Vec::with_capacity(32);
    match std::str::from_utf8(text) {
        // Checked whole at once, the strings are not checked one by one
        // (a third of the reading); text that is not UTF-8 is read as bytes
        // for serde_json's error naming where.
        Ok(text) => read_tokens(serde_json::Deserializer::from_str(text), &mut tokens)?,
        Err(_) => read_tokens(serde_json::Deserializer::from_slice(text), &mut tokens)?,
    }
    Ok(tokens)
}

fn read_tokens<'a, R: serde_json::de::Read<'a>>(
    mut deserializer: serde_json::Deserializer<R>,
    tokens: &mut Vec<Token<'a>>,
) -> serde_json::Result<()> {
    serde::de::DeserializeSeed::deserialize(Tokens(tokens), &mut deserializer)?;
    deserializer.end()
}

/// Reads one value into the list.
struct Tokens<'t, 'a>(&'t mut Vec<Token<'a>>);

impl<'a> Tokens<'_, 'a> {
    fn push<E>(self, token: Token<'a>) -> Result<(), E> {
        self.0.push(token);
        Ok(())
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Tokens<'_, 'de> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Tokens<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.push(Token::Null)
    }

    fn visit_bool<E>(self, flag: bool) -> Result<(), E> {
        self.push(Token::Bool(flag))
    }

    fn visit_i64<E>(self, integer: i64) -> Result<(), E> {
        self.push(Token::Integer(integer))
    }

    /// Beyond Lua's integers a number becomes a float.
    fn visit_u64<E>(self, integer: u64) -> Result<(), E> {
        self.push(match i64::try_from(integer) {
            Ok(integer) => Token::Integer(integer),
            Err(_) => Token::Float(integer as f64),
        })
    }

    fn visit_f64<E>(self, float: f64) -> Result<(), E> {
        self.push(Token::Float(float))
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<(), E> {
        self.push(Token::Text(Cow::Borrowed(text)))
    }

    fn visit_str<E>(self, text: &str) -> Result<(), E> {
        self.push(Token::Text(Cow::Owned(text.to_owned())))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let at = self.0.len();
        self.0.push(Token::Array(0));
        let mut items = 0;
        while seq.next_element_seed(Tokens(&mut *self.0))?.is_some() {
            items += 1;
        }
        self.0[at] = Token::Array(items);
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let at = self.0.len();
        self.0.push(Token::Object(0));
        let mut fields = 0;
        while map.next_key_seed(Tokens(&mut *self.0))?.is_some() {
            map.next_value_seed(Tokens(&mut *self.0))?;
            fields += 1;
        }
        self.0[at] = Token::Object(fields);
        Ok(())
    }
}
