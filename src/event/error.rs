//! Why a line is not an event, in words that name the field.

use serde_json::Value;

use super::field::Field;

/// Why a line was not accepted as an event. The message names the field.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The cause is part of the message, not a `source`: the message is the
    /// one line a client is answered with, and printed as a chain it would
    /// say the cause twice.
    #[error("line is not valid JSON: {0}")]
    Parse(serde_json::Error),
    #[error("{0}")]
    Invalid(String),
}

impl EventError {
    /// The wire-protocol code of this rejection (SPEC §2).
    pub fn code(&self) -> &'static str {
        match self {
            EventError::Parse(_) => "parse_error",
            EventError::Invalid(_) => "invalid_event",
        }
    }
}

/// `field` holds a value of the wrong type.
pub(super) fn expected(field: Field, what: &str, got: &Value) -> EventError {
    EventError::Invalid(format!(
        "field `{}`: expected {what}, got {}",
        field.name(),
        json_type(got)
    ))
}

/// A JSON value's type, as a rejection names it.
pub(super) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        // Integers beyond i64 and u64 are read as floating point.
        Value::Number(n) if n.as_f64().is_some_and(out_of_integer_range) => {
            "an integer out of range"
        }
        Value::Number(n) if n.is_f64() => "a number with a fraction",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Whether a number read as floating point is a whole number that no
/// integer type holds: below `i64::MIN` or above `u64::MAX`. (`1.0` is a
/// number with a fraction; `-9223372036854775809` is an integer out of range.)
fn out_of_integer_range(number: f64) -> bool {
    // -2^63 is i64::MIN, but an integer literal that fits was read as an
    // i64: a float equal to it was rounded from one below.
    number.fract() == 0.0 && !(-(2f64.powi(63)) < number && number < 2f64.powi(64))
}

/// Keeps echoed client input short in error messages.
pub(super) fn truncate(text: &str) -> &str {
    match text.char_indices().nth(64) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}
