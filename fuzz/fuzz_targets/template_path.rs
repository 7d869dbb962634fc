//! The `file_path` and `url` template renderer. Input: a template on the
//! first line, an event line after it. A rendered file path has the same
//! shape as the template with `x` for every placeholder: as many parts, each
//! of the same kind, so no field value adds a `..`, a root or a separator.
//! A rendered URL, when the handler sends to it at all, has the scheme,
//! path segments and fragment of that same stand-in, no more query
//! parameters, and its host when no placeholder is in the host.

#![no_main]

use std::path::{Component, Path};

use jobhook::event::Event;
use jobhook::fuzzing::{file_path, url};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|&b| b == b'\n') else {
        return;
    };
    let Ok(template) = std::str::from_utf8(&data[..split]) else {
        return;
    };
    let at: jiff::Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
    let Ok(event) = Event::from_line(&data[split + 1..], at) else {
        return;
    };
    if let Ok((stand_in, rendered)) = file_path(template, &event) {
        assert_eq!(
            shape(&stand_in),
            shape(&rendered),
            "{rendered:?} from {template:?}"
        );
    }
    if let Some((stand_in, Ok(rendered))) = url(template, "x", &event) {
        assert_eq!(rendered.scheme(), stand_in.scheme(), "{rendered}");
        assert_eq!(
            rendered.path_segments().map(Iterator::count),
            stand_in.path_segments().map(Iterator::count),
            "{rendered}"
        );
        // An empty value can leave a parameter out (`?{Missing}`), never add one.
        assert!(
            rendered.query_pairs().count() <= stand_in.query_pairs().count(),
            "{rendered}"
        );
        assert_eq!(rendered.fragment().is_some(), stand_in.fragment().is_some());
        // The authority has no placeholder when another stand-in leaves it
        // as it is.
        let other = url(template, "y", &event).map(|(other, _)| other);
        if other.is_some_and(|other| {
            other.host_str() == stand_in.host_str() && other.port() == stand_in.port()
        }) {
            assert_eq!(rendered.host_str(), stand_in.host_str(), "{rendered}");
            assert_eq!(rendered.port(), stand_in.port(), "{rendered}");
        }
    }
});

/// A path's parts by kind, with `.`/`..` told apart from names.
fn shape(path: &Path) -> Vec<&'static str> {
    path.components()
        .map(|part| match part {
            Component::Prefix(_) => "prefix",
            Component::RootDir => "root",
            Component::CurDir => ".",
            Component::ParentDir => "..",
            Component::Normal(_) => "name",
        })
        .collect()
}
