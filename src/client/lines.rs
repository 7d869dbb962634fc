//! `jobhook send`'s input split into event lines as it is read, without
//! rewriting a value: numbers of any size or precision, string escapes and
//! key order reach the daemon as the input wrote them. Only whitespace
//! between tokens goes (one event, one line), and `--phase` replaces the
//! `Phase` field's value.
//!
//! Nothing holds more than one event at a time: a JSON array is read element
//! by element, anything else line by line (a value written over several
//! lines is gathered up to [`MAX_GATHERED`]).

use std::io::{self, BufRead};

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::event::Phase;

/// The most bytes gathered for one value written over several lines. A
/// brace that is never closed would otherwise gather the whole input; past
/// this, the gathered lines go as written and the daemon explains them.
const MAX_GATHERED: usize = 16 << 20;

/// Takes each event line (without its newline); an error stops the reading.
pub type Emit<'a> = dyn FnMut(Vec<u8>) -> io::Result<()> + 'a;

/// Splits `input` into event lines: a JSON array (one line per element),
/// or one value per line (NDJSON), a value that starts a line with `{` or
/// `[` possibly going on over the next lines. A line that is not JSON is
/// passed as written, so that the daemon's answer explains the problem.
/// `phase` overrides each event's `Phase`.
pub fn split(mut input: impl BufRead, phase: Option<Phase>, emit: &mut Emit<'_>) -> io::Result<()> {
    if first_byte(&mut input)? == Some(b'[') {
        let mut array = serde_json::Deserializer::from_reader(input);
        (&mut array).deserialize_seq(Elements { phase, emit })?;
        return Ok(array.end()?);
    }
    let mut gathered = Vec::new();
    let mut nesting = Nesting::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        let end = input.read_until(b'\n', &mut line)? == 0;
        if gathered.is_empty() {
            if end {
                return Ok(());
            }
            if line.trim_ascii().is_empty() {
                continue;
            }
            if let Ok(raw) = serde_json::from_slice::<&RawValue>(&line) {
                emit(with_phase(raw, phase))?;
                continue;
            }
        }
        gathered.extend_from_slice(&line);
        nesting.feed(&line);
        let starts_value = matches!(gathered.trim_ascii_start().first(), Some(b'{' | b'['));
        if starts_value && nesting.open() && gathered.len() < MAX_GATHERED && !end {
            continue;
        }
        match serde_json::from_slice::<&RawValue>(&gathered) {
            Ok(raw) => emit(with_phase(raw, phase))?,
            Err(_) => {
                for text in gathered.split(|&byte| byte == b'\n') {
                    if !text.trim_ascii().is_empty() {
                        emit(text.strip_suffix(b"\r").unwrap_or(text).to_vec())?;
                    }
                }
            }
        }
        if end {
            return Ok(());
        }
        gathered.clear();
        nesting = Nesting::default();
    }
}

/// The first byte that is not whitespace, left unread.
fn first_byte(input: &mut impl BufRead) -> io::Result<Option<u8>> {
    loop {
        let buffer = input.fill_buf()?;
        let Some(&first) = buffer.first() else {
            return Ok(None);
        };
        if !first.is_ascii_whitespace() {
            return Ok(Some(first));
        }
        input.consume(1);
    }
}

/// Emits an array's elements as they are read.
struct Elements<'e, 'f> {
    phase: Option<Phase>,
    emit: &'e mut Emit<'f>,
}

impl<'de> Visitor<'de> for Elements<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array of events")
    }
    fn visit_seq<S: SeqAccess<'de>>(self, mut elements: S) -> Result<(), S::Error> {
        while let Some(raw) = elements.next_element::<Box<RawValue>>()? {
            (self.emit)(with_phase(&raw, self.phase)).map_err(de::Error::custom)?;
        }
        Ok(())
    }
}

/// Where JSON text is: inside a string or not, and how deeply nested.
#[derive(Default)]
struct Nesting {
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl Nesting {
    /// Moves past `byte`; true when it is outside every string.
    fn step(&mut self, byte: u8) -> bool {
        if self.in_string {
            (self.escaped, self.in_string) =
                (byte == b'\\' && !self.escaped, byte != b'"' || self.escaped);
            return false;
        }
        match byte {
            b'"' => self.in_string = true,
            b'{' | b'[' => self.depth += 1,
            b'}' | b']' => self.depth = self.depth.saturating_sub(1),
            _ => return true,
        }
        false
    }

    fn feed(&mut self, bytes: &[u8]) {
        bytes.iter().for_each(|&byte| _ = self.step(byte));
    }

    /// Whether the text so far opens a value that the next line may close
    /// (a string never spans lines).
    fn open(&self) -> bool {
        self.depth > 0 && !self.in_string
    }
}

/// One value on one line, its `Phase` replaced when it is an object.
fn with_phase(raw: &RawValue, phase: Option<Phase>) -> Vec<u8> {
    let fields = phase.and_then(|_| serde_json::from_str::<Fields<'_>>(raw.get()).ok());
    let (Some(phase), Some(Fields(mut fields))) = (phase, fields) else {
        return compact(raw.get());
    };
    let text = format!("\"{}\"", phase.as_str());
    let value: &RawValue = serde_json::from_str(&text).expect("a JSON string");
    match fields.iter_mut().find(|(name, _)| name == "Phase") {
        Some((_, old)) => *old = value,
        None => fields.push(("Phase".to_owned(), value)),
    }
    let mut line = vec![b'{'];
    for (index, (name, value)) in fields.iter().enumerate() {
        if index > 0 {
            line.push(b',');
        }
        line.extend(serde_json::Value::from(name.as_str()).to_string().bytes());
        line.push(b':');
        line.extend(compact(value.get()));
    }
    line.push(b'}');
    line
}

/// JSON text without the whitespace between its tokens.
fn compact(json: &str) -> Vec<u8> {
    let mut nesting = Nesting::default();
    let mut out = Vec::with_capacity(json.len());
    for byte in json.bytes() {
        if !(nesting.step(byte) && byte.is_ascii_whitespace()) {
            out.push(byte);
        }
    }
    out
}

/// An object's fields in order, values as written.
struct Fields<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Fields<'de>, M::Error> {
                let mut fields = Vec::new();
                while let Some(field) = map.next_entry()? {
                    fields.push(field);
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(Object)
    }
}

/// Reads all of `input` as [`split`] does (for tests).
#[cfg(test)]
fn event_lines(input: &str, phase: Option<Phase>) -> io::Result<Vec<String>> {
    let mut lines = Vec::new();
    split(input.as_bytes(), phase, &mut |line| {
        lines.push(String::from_utf8(line).expect("UTF-8"));
        Ok(())
    })?;
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_arrays_objects_and_ndjson() {
        let lines = |input: &str| event_lines(input, None).unwrap();
        assert_eq!(
            lines(" \n[{\"a\":1},\n {\"b\":2}]\n"),
            [r#"{"a":1}"#, r#"{"b":2}"#]
        );
        assert_eq!(lines("{\n \"a\": [1,\n 2]\n}\n"), [r#"{"a":[1,2]}"#]);
        assert_eq!(
            lines("{\"a\":1}\r\n\n{\"b\":\n\"}{\"}\nnot json\r\n{\"c\"\n"),
            [r#"{"a":1}"#, r#"{"b":"}{"}"#, "not json", "{\"c\""]
        );
        assert_eq!(
            lines("oops {\n{\"a\":1}\nnot \"json {\n{\"b\":2}\n"),
            ["oops {", r#"{"a":1}"#, "not \"json {", r#"{"b":2}"#]
        );
        assert!(lines("").is_empty());
    }

    #[test]
    fn a_broken_array_is_an_error_after_its_good_elements() {
        let mut lines = Vec::new();
        let err = split(&b"[{\"a\":1}, {\"b\" 2}]"[..], None, &mut |line| {
            lines.push(line);
            Ok(())
        })
        .unwrap_err();
        assert_eq!(lines, [br#"{"a":1}"#]);
        assert!(err.to_string().contains("line 1 column 16"), "{err}");
    }

    #[test]
    fn phase_overrides_each_event() {
        let lines = event_lines(r#"[{"Phase":"OnFinish"},{}]"#, Some(Phase::OnStart)).unwrap();
        assert_eq!(lines, [r#"{"Phase":"OnStart"}"#, r#"{"Phase":"OnStart"}"#]);
    }

    #[test]
    fn values_pass_as_written() {
        let big =
            r#"{"N": 123456789012345678901234567890, "F": 1.10, "E": 1e400, "S": "a \" b\\"}"#;
        let written = r#"{"N":123456789012345678901234567890,"F":1.10,"E":1e400,"S":"a \" b\\"}"#;
        for phase in [None, Some(Phase::OnFinish)] {
            for input in [big.to_owned(), format!("[{big}]"), format!("{big}\n{big}")] {
                for line in event_lines(&input, phase).unwrap() {
                    let expected = match phase {
                        Some(_) => written.replace('}', ",\"Phase\":\"OnFinish\"}"),
                        None => written.to_owned(),
                    };
                    assert_eq!(line, expected, "{input}");
                }
            }
        }
    }
}
