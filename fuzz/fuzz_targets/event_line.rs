//! The event line parser, differential: whenever the verbatim pass takes a
//! line, the general way must take it too and make the same event (the
//! same fields in the same order, phase, lane and routing; a generated `Id`
//! aside). Every accepted event's JSON must parse back into its fields, and
//! read back from the spool (`Event::restore`) it must be the same event.

#![no_main]

use jobhook::event::Event;
use jobhook::fuzzing::{event_general, event_verbatim};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fuzz_target!(|line: &[u8]| {
    let at: jiff::Timestamp = "2026-01-02T03:04:05.5Z".parse().unwrap();
    let general = event_general(line, at);
    if let Ok(event) = &general {
        assert_consistent(event);
    }
    let Some(verbatim) = event_verbatim(line, at) else {
        return;
    };
    assert_consistent(&verbatim);
    let general = match general {
        Ok(general) => general,
        Err(err) => panic!("verbatim took a line the general way refuses ({err})"),
    };
    let mut wanted = general.fields().clone();
    let top: Map<String, Value> = serde_json::from_slice(line).expect("an object");
    if !top.get("Id").is_some_and(Value::is_string) {
        // Generated, different each time: `insert` keeps the position.
        wanted.insert("Id".into(), verbatim.id().into());
    }
    assert_eq!(
        verbatim.fields().iter().collect::<Vec<_>>(),
        wanted.iter().collect::<Vec<_>>(),
        "fields"
    );
    assert_eq!(verbatim.phase(), general.phase(), "phase");
    assert_eq!(verbatim.job_id(), general.job_id(), "lane");
    assert_eq!(verbatim.routing(), general.routing(), "routing");
});

/// The event's JSON is its fields, each once, and the spool gives back the
/// same event.
fn assert_consistent(event: &Event) {
    let parsed: Map<String, Value> =
        serde_json::from_slice(event.json()).expect("the event's JSON parses");
    let Keys(keys) = serde_json::from_slice(event.json()).expect("an object");
    assert_eq!(keys.len(), parsed.len(), "a field twice in {keys:?}");
    assert_eq!(
        parsed.iter().collect::<Vec<_>>(),
        event.fields().iter().collect::<Vec<_>>(),
        "JSON and fields"
    );
    let restored = Event::restore(event.json()).expect("the spool reads the event back");
    assert_eq!(restored.phase(), event.phase());
    assert_eq!(restored.id(), event.id());
    assert_eq!(restored.job_id(), event.job_id());
    assert_eq!(restored.routing(), event.routing());
}

/// The top-level keys of a JSON object, in order, repeats included.
struct Keys(Vec<String>);

impl<'de> serde::Deserialize<'de> for Keys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Keys, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Keys;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    keys.push(key);
                }
                Ok(Keys(keys))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}
