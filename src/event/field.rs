//! The event's known fields, named once.
//!
//! `FIELD_NAMES` (the names Lua pushes from a table), the general way's
//! checks (`validate`) and the verbatim pass's slots (`verbatim`) all come
//! from the one list below, so a field cannot be known to one and not to
//! another: a misspelt name is a compile error, and the test below fails
//! when a field is added without being checked.

/// Declares `Field` with one variant per name, in the order given.
macro_rules! fields {
    ($($(#[$doc:meta])* $name:ident,)+) => {
        /// A field SPEC §3 names, or one validation adds. The variant's
        /// name is the field's name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum Field {
            $($(#[$doc])* $name,)+
        }

        impl Field {
            /// Every field, in the order the general way checks them.
            pub(crate) const ALL: [Field; [$(Field::$name),+].len()] = [$(Field::$name),+];

            /// The field's name in an event's JSON.
            #[inline]
            pub(crate) const fn name(self) -> &'static str {
                match self {
                    $(Field::$name => stringify!($name),)+
                }
            }

            /// The field a key names (case matters, as in JSON).
            #[inline]
            pub(crate) fn from_name(name: &str) -> Option<Field> {
                match name {
                    $(stringify!($name) => Some(Field::$name),)+
                    _ => None,
                }
            }
        }
    };
}

fields! {
    /// The idempotency key; generated when absent.
    Id,
    AgentId,
    JobId,
    JobTypeId,
    /// `OrchestratorJob` when absent.
    EventType,
    Username,
    ClientMachine,
    JobType,
    OperationType,
    JobResult,
    CertificateId,
    CurrentRetryCount,
    /// Rewritten as RFC 3339 UTC.
    RequestTimestamp,
    /// Derived from `JobResult` when absent.
    Phase,
    /// Added by validation; a client's value is replaced.
    ReceivedAt,
}

impl Field {
    /// How many fields there are.
    pub(crate) const COUNT: usize = Field::ALL.len();
}

/// The fields SPEC §3 names, and those validation adds (`Phase`,
/// `ReceivedAt`): every event has some of them.
pub const FIELD_NAMES: [&str; Field::COUNT] = {
    let mut names = [""; Field::COUNT];
    let mut index = 0;
    while index < Field::COUNT {
        names[index] = Field::ALL[index].name();
        index += 1;
    }
    names
};

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::*;
    use crate::event::{Event, EventError};

    /// Every known field but `ReceivedAt` (which validation overwrites)
    /// refuses an array, naming itself, and the verbatim pass leaves such a
    /// line to the general way: a field added to the list without a check
    /// in both fails here.
    #[test]
    fn every_known_field_is_checked_both_ways() {
        let at: Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        for field in Field::ALL {
            let name = field.name();
            assert_eq!(Field::from_name(name), Some(field));
            let line = format!(r#"{{"{name}":[1]}}"#);
            assert!(
                crate::event::verbatim::event(line.as_bytes(), at).is_none(),
                "{line}"
            );
            match Event::from_line(line.as_bytes(), at) {
                Ok(event) if field == Field::ReceivedAt => {
                    assert_eq!(event.field(name), Some(&"2026-01-02T03:04:05Z".into()))
                }
                Err(EventError::Invalid(message)) => {
                    assert!(message.starts_with(&format!("field `{name}`")), "{message}")
                }
                other => panic!("{line}: {other:?}"),
            }
        }
        assert_eq!(Field::from_name("jobid"), None);
    }
}
