//! What an `Id` may be.
//!
//! An `Id` is a key in the spool, the `webhook-id` header of a signed HTTP
//! request, a word in log lines and a column of `jobhook deadletter list`.
//! An `Id` that cannot be all of these would be acked and then never be
//! delivered, so it is refused at ingest instead: 1 to [`MAX_ID_BYTES`]
//! bytes of printable characters, without whitespace at either end.

use super::EventError;
use super::error::truncate;

/// The longest `Id`, in bytes of UTF-8. A UUID is 36; 256 leaves room for
/// composite keys (`tenant/job/attempt`) while keeping the spool's dedupe
/// index, HTTP headers and log lines small.
pub const MAX_ID_BYTES: usize = 256;

/// Whether `id` is a valid `Id`; the error names the field and the rule.
pub fn check(id: &str) -> Result<(), EventError> {
    let got = if id.is_empty() {
        "an empty string".to_owned()
    } else if id.len() > MAX_ID_BYTES {
        format!("{} bytes", id.len())
    } else if id.chars().any(unprintable) {
        format!("a control character in {:?}", truncate(id))
    } else if id.starts_with(char::is_whitespace) || id.ends_with(char::is_whitespace) {
        format!("whitespace at an end of {:?}", truncate(id))
    } else {
        return Ok(());
    };
    Err(EventError::Invalid(format!(
        "field `Id`: expected 1 to {MAX_ID_BYTES} bytes of printable characters, \
         without whitespace at either end; got {got}"
    )))
}

/// A character that ends or garbles a line of text: C0 and C1 controls,
/// DEL, and the Unicode line and paragraph separators.
pub fn unprintable(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_ids_of_sane_length_pass() {
        for id in [
            "a",
            "e1",
            "tenant/job 7/attempt-2",
            "Ünïcødé",
            &"x".repeat(256),
        ] {
            assert!(check(id).is_ok(), "{id}");
        }
    }

    #[test]
    fn the_rest_is_refused_with_a_message_naming_the_field() {
        for id in [
            "",
            &"x".repeat(257),
            "a\u{0}b",
            "a\nb",
            "a\u{1b}[31m",
            "a\u{7f}",
            "a\u{85}",
            "a\u{9b}",
            "a\u{2028}",
            " a",
            "a\t",
        ] {
            let err = check(id).unwrap_err().to_string();
            assert!(
                err.starts_with("field `Id`: expected 1 to 256 bytes"),
                "{err}"
            );
        }
    }
}
