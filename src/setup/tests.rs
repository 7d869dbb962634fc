//! Reading a whole `handlers.toml`: validation, with positions.

use std::path::Path;

use super::*;
use crate::config::Backoff;

fn parse_str(text: &str) -> Loaded {
    parse(text, Path::new("/etc/jobhook/handlers.toml"))
}

fn problems(text: &str) -> Vec<String> {
    parse_str(text)
        .diagnostics
        .iter()
        .map(ToString::to_string)
        .collect()
}

const VALID: &str = r#"
[daemon]
socket = "run/jobhook.sock"
workers = 2
shutdown_timeout = "10s"

[hooks]
OnStart = ["audit"]
OnFinish = ["audit", "failures"]
OnError = ["failures"]

[handlers.audit]
LibraryName = "TextFileHandler"
FilePath = "var/log/events-{Phase}.log"

[handlers.failures]
library = "TextFileHandler"
file_path = "/var/log/failures.log"
format = "text"
template = "{JobId} {JobResult}"
JobTypes = "WinCertInventory, 49b3a17d-cada-4ec8-84c6-7719bf5beef3"
results = ["Failure"]
Retries = 5
RetryInterval = 7
backoff = "exponential"
"#;

#[test]
fn a_valid_config_resolves_paths_and_aliases() {
    let loaded = parse_str(VALID);
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let config = loaded.config.unwrap();
    assert_eq!(
        config.daemon.socket,
        Path::new("/etc/jobhook/run/jobhook.sock")
    );
    assert_eq!(config.daemon.worker_count(), 2);
    assert_eq!(config.handlers.len(), 2);
    let failures = config
        .handlers
        .iter()
        .find(|handler| handler.name == "failures")
        .unwrap();
    assert_eq!(failures.common.retries, 5);
    assert_eq!(
        failures.common.retry_interval.0,
        std::time::Duration::from_secs(7)
    );
    assert_eq!(failures.common.backoff, Backoff::Exponential);
    assert_eq!(
        failures.common.job_types.as_ref().unwrap().0,
        ["WinCertInventory", "49b3a17d-cada-4ec8-84c6-7719bf5beef3"]
    );
    assert_eq!(failures.position.line, 16);
    let names: Vec<&str> = config
        .hooks
        .chain(crate::event::Phase::OnFinish)
        .iter()
        .map(|n| n.get_ref().as_str())
        .collect();
    assert_eq!(names, ["audit", "failures"]);
}

#[test]
fn an_empty_file_is_an_error_and_a_minimal_one_has_defaults() {
    for empty in ["", "\n  \n", "# only a comment\n"] {
        let found = problems(empty);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("error: the config is empty"), "{found:?}");
    }
    let config = parse_str("[hooks]\n").config.unwrap();
    assert_eq!(config.daemon.socket, Path::new("/run/jobhook/jobhook.sock"));
    assert_eq!(config.daemon.max_event_bytes.0, 1 << 20);
    assert!(config.handlers.is_empty());
    assert!(config.daemon_is_default());
}

#[test]
fn limits_run_cannot_use_are_errors_at_their_line() {
    for (setting, expected) in [
        (
            "workers = 100000000",
            ":2:11: error: 100000000 is out of range: expected 0 to 1024",
        ),
        (
            "queue_capacity = 0",
            ":2:18: error: 0 is out of range: expected 1 to 10000000",
        ),
        (
            "max_connections = 0",
            ":2:19: error: 0 is out of range: expected 1 to 65536",
        ),
        (
            "max_event_bytes = \"0\"",
            ":2:19: error: 0 B is out of range",
        ),
        (
            "dedupe_window = \"1000000000y\"",
            ":2:17: error: duration \"1000000000y\" is out of range",
        ),
        (
            "max_event_bytes = \"200KiB\"\nmax_spool_bytes = \"100KiB\"",
            "error: [daemon] max_event_bytes is larger than max_spool_bytes",
        ),
    ] {
        let found = problems(&format!("[daemon]\n{setting}\n[hooks]\n"));
        assert!(
            found.iter().any(|problem| problem.contains(expected)),
            "{setting}: {found:?}"
        );
    }
}

#[test]
fn a_hook_naming_a_handler_twice_is_an_error_at_the_second() {
    let text = "[hooks]\nOnFinish = [\"a\", \"a\"]\n[handlers.a]\nlibrary = \"TextFileHandler\"\nfile_path = \"a.log\"\n";
    let found = problems(text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains(":2:18: error: hook OnFinish names handler `a` twice"),
        "{found:?}"
    );
}

#[test]
fn a_misspelt_key_is_located_with_a_hint() {
    let text = "[handlers.audit]\nlibrary = \"TextFileHandler\"\nfle_path = \"x.log\"\n";
    let found = problems(text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with(
            "/etc/jobhook/handlers.toml:3:1: error: handler `audit`: unknown field `fle_path`"
        ),
        "{}",
        found[0]
    );
    assert!(
        found[0].ends_with("did you mean `file_path`?"),
        "{}",
        found[0]
    );
    let found = problems(
        "[handlers.audit]\nlibrary = \"TextFileHandler\"\nfile_path = \"x\"\nretires = 3\n",
    );
    assert!(
        found[0].contains(":4:1:") && found[0].contains("did you mean `retries`?"),
        "{found:?}"
    );
    let found = problems("[deamon]\n");
    assert!(
        found[0].contains(":1:") && found[0].contains("did you mean `daemon`?"),
        "{found:?}"
    );
}

#[test]
fn wrong_values_are_located_at_the_value() {
    let found = problems("[daemon]\nworkers = 2\nshutdown_timeout = \"soon\"\n");
    assert!(
        found[0].starts_with("/etc/jobhook/handlers.toml:3:20: error: invalid duration \"soon\""),
        "{found:?}"
    );
    let found = problems("[log]\nformat = \"xml\"\n");
    assert!(
        found[0].contains(":2:10:") && found[0].contains("xml"),
        "{found:?}"
    );
    let found = problems("[handlers.a]\nlibrary = \"TextFileHandler\"\nfile_path = \"{Oops\"\n");
    assert!(
        found[0].contains(":3:13:") && found[0].contains("invalid placeholder"),
        "{found:?}"
    );
}

#[test]
fn syntax_errors_are_located() {
    let found = problems("[hooks]\nOnStart = [\"a\"\n");
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with("/etc/jobhook/handlers.toml:2:"),
        "{found:?}"
    );
}

#[test]
fn hooks_must_name_defined_handlers_and_unused_handlers_warn() {
    let text = "[hooks]\nOnFinish = [\"audt\"]\n\n[handlers.audit]\nlibrary = \"TextFileHandler\"\nfile_path = \"a\"\n\n[handlers.spare]\nlibrary = \"TextFileHandler\"\nfile_path = \"b\"\n";
    let loaded = parse_str(text);
    assert!(loaded.config.is_none());
    let found: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    assert!(found.iter().any(|d| d.contains(":2:13: error: hook OnFinish names handler `audt`, which is not defined; did you mean `audit`?")), "{found:?}");
    assert!(
        found
            .iter()
            .any(|d| d.contains(":8:11: warning: handler `spare` is defined but no hook uses it")),
        "{found:?}"
    );
    let fixed = text.replace("audt", "audit");
    let loaded = parse_str(&fixed);
    assert!(loaded.config.is_some());
    assert_eq!(loaded.diagnostics.len(), 1);
    assert!(!loaded.diagnostics[0].is_error());
}

#[test]
fn every_broken_handler_is_reported() {
    let text = "[handlers.a]\nlibrary = \"TextFileHandlr\"\n[handlers.b]\nlibrary = \"TextFileHandler\"\n[handlers.c]\nlibrary = \"TextFileHandler\"\nfile_path = \"c\"\nresults = [\"Failed\"]\n";
    let found = problems(text);
    assert!(
        found.iter().any(|d| d.contains(":2:11:")
            && d.contains("unknown library `TextFileHandlr`")
            && d.contains("did you mean `TextFileHandler`?")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|d| d.contains("handler `b`: missing field `file_path`")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|d| d.contains(":8:11:") && d.contains("`Failed` is not Success")),
        "{found:?}"
    );
}

#[test]
fn an_unreadable_file_is_reported_without_a_position() {
    let loaded = load(Path::new("/nonexistent/handlers.toml"));
    assert!(loaded.config.is_none());
    assert!(
        loaded.diagnostics[0]
            .to_string()
            .starts_with("/nonexistent/handlers.toml:0:0: error: cannot read config")
    );
}
