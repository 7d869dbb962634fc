//! The config parser and validator: any text (valid TOML or not) read as
//! `handlers.toml` gives diagnostics, never a panic, and in bounded time
//! (libFuzzer's `-timeout`), each naming its file (the config, or a script
//! it names); a valid config's pipeline is built as `jobhook check` builds
//! it. Relative paths point into a folder that does not
//! exist, so nothing on this machine is read or written.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let problems =
        jobhook::fuzzing::check_config(text, Path::new("/nonexistent-jobhook-fuzz/handlers.toml"));
    for problem in problems {
        // The config, or a file it names (a script), with a position.
        assert!(
            problem.starts_with("/nonexistent-jobhook-fuzz/") && problem.contains(": "),
            "a problem that does not name its file: {problem}"
        );
    }
});
