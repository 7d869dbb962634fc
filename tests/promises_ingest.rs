//! Issue 14, "nothing acked is lost, nothing hangs", on the ingest side:
//! whole lines in text files on a full disk, the socket path, idle
//! clients, what an `Id` may be, validation messages, control characters
//! in text lines. Each through the real binary.

#![cfg(unix)] // Drives the Unix socket; the Windows pipe shares its protocol code.

mod util;

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use util::*;

/// Runs `jobhook run` on `config` (written to `dir/handlers.toml` unless a
/// file is there) and returns its output once it exits; a daemon that keeps
/// running fails the test.
fn refused_start(dir: &Path, config: &str) -> Output {
    let path = dir.join("handlers.toml");
    if !path.exists() {
        std::fs::write(&path, config).unwrap();
    }
    run_expecting_exit(&[], &path).expect("the daemon started instead of refusing")
}

#[test]
fn a_socket_path_naming_anything_but_a_socket_is_refused_and_left_alone() {
    // The typo: the socket path names the config itself.
    let dir = tempfile::tempdir().unwrap();
    let config = format!("[daemon]\nsocket = \"handlers.toml\"\n{AUDIT}");
    std::fs::write(dir.path().join("handlers.toml"), &config).unwrap();
    let output = refused_start(dir.path(), &config);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("handlers.toml is a regular file, not a socket"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("handlers.toml")).unwrap(),
        config
    );

    // A directory, and a symbolic link (to a file, and dangling): the link
    // is not followed, and neither it nor its target is removed.
    for (name, what) in [
        ("dir", "a directory"),
        ("link", "a symbolic link"),
        ("dangling", "a symbolic link"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("dir")).unwrap();
        std::fs::write(dir.path().join("target"), "keep").unwrap();
        std::os::unix::fs::symlink(dir.path().join("target"), dir.path().join("link")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("nowhere"), dir.path().join("dangling"))
            .unwrap();
        let config = format!("[daemon]\nsocket = \"{name}\"\n{AUDIT}");
        let output = refused_start(dir.path(), &config);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("{name} is {what}, not a socket")),
            "{stderr}"
        );
        assert!(std::fs::symlink_metadata(dir.path().join(name)).is_ok());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("target")).unwrap(),
            "keep"
        );
    }
}

/// Ignores SIGXFSZ and limits the size of files the daemon writes to
/// `bytes`, so that a write crossing it fails partway with EFBIG, as on a
/// full disk. `None` (with the reason printed) where `prlimit` is missing.
fn file_size_limit(bytes: u64) -> Option<Vec<String>> {
    let found = Command::new("prlimit").arg("--version").output();
    if !found.is_ok_and(|output| output.status.success()) {
        eprintln!("skipped: `prlimit` (util-linux) is not installed");
        return None;
    }
    Some(vec![
        "sh".into(),
        "-c".into(),
        // An ignored signal stays ignored across exec.
        "trap '' XFSZ; exec \"$@\"".into(),
        "sh".into(),
        "prlimit".into(),
        format!("--fsize={bytes}"),
    ])
}

#[test]
fn a_write_that_fails_partway_leaves_only_whole_lines() {
    // The log already holds 16,000 whole lines of 1,000 bytes; the daemon
    // may write 1,000 bytes more (its spool stays far below the limit).
    const OLD_LINES: usize = 16_000;
    let limit = (OLD_LINES as u64 + 1) * 1000;
    let Some(wrapper) = file_size_limit(limit) else {
        return;
    };
    let mut old = String::with_capacity(OLD_LINES * 1000);
    for i in 0..OLD_LINES {
        let line = format!(r#"{{"Id":"old-{i:05}","Pad":""}}"#);
        let pad = "x".repeat(999 - line.len());
        old.push_str(&line.replace(r#""Pad":"""#, &format!(r#""Pad":"{pad}""#)));
        old.push('\n');
    }
    assert_eq!(old.len(), OLD_LINES * 1000);
    let config = format!("[daemon]\nworkers = 1\n{AUDIT}retries = 0\n");
    let daemon = Daemon::start_under(
        &wrapper.iter().map(String::as_str).collect::<Vec<_>>(),
        &config,
        &[("out/audit.log", &old)],
    );
    // 3,000 bytes cross the limit mid-line; the write fails partway. Then a
    // short event fits in what is left (one worker: in this order).
    let big = format!(r#"{{"Id":"big","Pad":"{}"}}"#, "y".repeat(3000));
    let replies = daemon.send(&[&big, r#"{"Id":"small"}"#]);
    assert!(replies.iter().all(reply_ok), "{replies:?}");
    let path = daemon.path("out/audit.log");
    eventually("the short event in the file", || {
        lines(&path)
            .last()
            .is_some_and(|line| line.contains(r#""Id":"small""#))
    });
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.ends_with('\n'));
    let ids: Vec<String> = text
        .lines()
        .map(|line| {
            let event: Value = serde_json::from_str(line)
                .unwrap_or_else(|err| panic!("a torn line ({err}): {:.80}…", line));
            event["Id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), OLD_LINES + 1);
    assert!(!ids.contains(&"big".to_owned()));
    assert!(daemon.log().contains("File too large"), "{}", daemon.log());
}

#[test]
fn a_new_client_gets_the_slot_of_an_idle_one_when_all_are_taken() {
    let daemon = Daemon::start(&format!("[daemon]\nmax_connections = 2\n{AUDIT}"));
    let mut first = daemon.connect();
    first.write_lines(&[r#"{"Id":"first"}"#]);
    assert!(reply_ok(&first.read_reply()));
    // The first is idle from its reply on; the second from when it connects.
    std::thread::sleep(Duration::from_millis(200));
    let _second = daemon.connect();
    std::thread::sleep(Duration::from_millis(100));

    let started = Instant::now();
    let replies = daemon.send(&[r#"{"Id":"third"}"#]);
    assert_eq!(replies[0]["id"], "third");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The first was idle longest: its slot went to the third, and it was
    // closed (after its reply, which it had read).
    first
        .stream()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut rest = Vec::new();
    assert_eq!(first.stream().read_to_end(&mut rest).unwrap(), 0);
}

#[test]
fn an_idle_client_is_closed_after_idle_timeout_and_a_stalled_one_after_stall_timeout() {
    let daemon = Daemon::start(&format!(
        "[daemon]\nidle_timeout = \"3s\"\nstall_timeout = \"1s\"\n{AUDIT}"
    ));
    let closed_within = |client: &Client, limit: Duration| {
        let started = Instant::now();
        client
            .stream()
            .set_read_timeout(Some(limit + Duration::from_millis(1500)))
            .unwrap();
        let mut rest = Vec::new();
        let read = client.stream().read_to_end(&mut rest);
        assert!(matches!(read, Ok(0)), "{read:?} {rest:?}");
        let elapsed = started.elapsed();
        assert!(elapsed >= limit - Duration::from_millis(300), "{elapsed:?}");
    };
    // Idle after its reply: closed idle_timeout after it.
    let mut idle = daemon.connect();
    idle.write_lines(&[r#"{"Id":"idle"}"#]);
    assert!(reply_ok(&idle.read_reply()));
    closed_within(&idle, Duration::from_secs(3));

    // Half a line, then nothing: closed after the stall timeout, without
    // an answer for the half line (it was not accepted).
    let mut stalled = daemon.connect();
    stalled.write_raw(br#"{"Id":"half"#);
    closed_within(&stalled, Duration::from_secs(1));
    assert_eq!(lines(&daemon.path("out/audit.log")).len(), 1);

    // A client that sends a line now and then stays connected, pauses
    // between lines longer than stall_timeout included.
    let mut busy = daemon.connect();
    for i in 0..3 {
        std::thread::sleep(Duration::from_millis(1500));
        busy.write_lines(&[&format!(r#"{{"Id":"busy-{i}"}}"#)]);
        assert!(reply_ok(&busy.read_reply()));
    }
}

#[test]
fn an_id_with_control_characters_or_absurd_length_is_refused_naming_id() {
    let daemon = Daemon::start(AUDIT);
    let long = format!(r#"{{"Id":"{}"}}"#, "i".repeat(257));
    let refused = [
        r#"{"Id":"a\u0007b"}"#,
        r#"{"Id":"a\nb"}"#,
        "{\"Id\":\"a\u{7f}b\"}",
        "{\"Id\":\"a\u{85}b\"}",
        "{\"Id\":\"a\u{2028}b\"}",
        r#"{"Id":" padded "}"#,
        r#"{"Id":""}"#,
        &long,
    ];
    let replies = daemon.send(&refused);
    for (line, reply) in refused.iter().zip(&replies) {
        assert_eq!(code(reply), "invalid_event", "{line}: {reply}");
        let error = reply["error"].as_str().unwrap();
        assert!(
            error.starts_with("field `Id`: expected 1 to 256 bytes"),
            "{error}"
        );
    }
    let fine = format!(r#"{{"Id":"{}"}}"#, "é".repeat(128));
    let replies = daemon.send(&[&fine, r#"{"Id":"tenant 7/job/Ünï"}"#]);
    assert!(replies.iter().all(reply_ok), "{replies:?}");

    // `jobhook send` goes the same way.
    let config = daemon.config.to_str().unwrap();
    let output = jobhook(&["send", "-c", config], Some(r#"{"Id":"esc\u001b[2J"}"#));
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("field `Id`"), "{stdout}");
}

#[test]
fn validation_messages_say_what_is_wrong_and_cr_does_not_count() {
    let daemon = Daemon::start(&format!("[daemon]\nmax_event_bytes = 100\n{AUDIT}"));
    let replies = daemon.send(&[
        r#"{"CurrentRetryCount":-1}"#,
        r#"{"CertificateId":-9223372036854775809}"#,
        r#"{"CurrentRetryCount":18446744073709551616}"#,
        r#"{"CertificateId":1.0}"#,
    ]);
    let errors: Vec<&str> = replies
        .iter()
        .map(|reply| reply["error"].as_str().unwrap())
        .collect();
    assert_eq!(
        errors,
        [
            "field `CurrentRetryCount`: expected an integer of 0 or more, got -1",
            "field `CertificateId`: expected an integer or null, got an integer out of range",
            "field `CurrentRetryCount`: expected an integer of 0 or more, got an integer out of range",
            "field `CertificateId`: expected an integer or null, got a number with a fraction",
        ]
    );

    // Exactly max_event_bytes, then CRLF: the `\r` is not part of the line.
    let bare = r#"{"Id":"crlf","Pad":""}"#;
    let exactly = bare.replace(
        r#""Pad":"""#,
        &format!(r#""Pad":"{}""#, "p".repeat(100 - bare.len())),
    );
    assert_eq!(exactly.len(), 100);
    let over = exactly.replacen("crlf", "crlf+", 1);
    let mut client = daemon.connect();
    client.write_raw(format!("{exactly}\r\n{over}\r\n").as_bytes());
    let replies = client.read_replies(2);
    assert_eq!(replies[0]["id"], "crlf", "{replies:?}");
    assert_eq!(code(&replies[1]), "too_large", "{replies:?}");
}

#[test]
fn control_characters_in_text_lines_are_escaped() {
    let daemon = Daemon::start(
        r#"
[hooks]
OnFinish = ["text"]

[handlers.text]
library = "TextFileHandler"
file_path = "out/text.log"
format = "text"
template = "{Id} {Note}"
"#,
    );
    let replies = daemon.send(&[
        "{\"Id\":\"t1\",\"Note\":\"red\\u001b[31m nul\\u0000 tab\\t del\u{7f} nel\u{85} ls\u{2028} ps\u{2029} cr\\r lf\\n end\"}",
    ]);
    assert!(reply_ok(&replies[0]), "{replies:?}");
    let text = wait_for_lines(&daemon.path("out/text.log"), 1);
    assert_eq!(
        text,
        [
            r"t1 red\u{1b}[31m nul\u{0} tab\t del\u{7f} nel\u{85} ls\u{2028} ps\u{2029} cr\r lf\n end"
        ]
    );
}

/// Issue 16, item 3: a line that goes the general way (parsed, normalised:
/// here a lower-case `JobResult`) kept numbers as `f64`: the 30-digit one
/// reached handlers as `1.2345678901234568e+29`.
#[test]
fn numbers_pass_through_exactly_when_the_event_is_normalised() {
    let daemon = Daemon::start(
        "[hooks]\nOnError = [\"sink\"]\nOnFinish = [\"sink\"]\n\
         [handlers.sink]\nlibrary = \"TextFileHandler\"\nfile_path = \"out/events.log\"\n",
    );
    let replies = daemon.send(&[
        r#"{"Id":"big","JobResult":"failure","Big":123456789012345678901234567890,"Nested":{"U":18446744073709551616,"F":1.10}}"#,
    ]);
    assert!(reply_ok(&replies[0]), "{replies:?}");
    let line = &wait_for_lines(&daemon.path("out/events.log"), 1)[0];
    assert!(
        line.contains(r#""Big":123456789012345678901234567890"#),
        "{line}"
    );
    assert!(
        line.contains(r#""Nested":{"U":18446744073709551616,"F":1.10}"#),
        "{line}"
    );
    assert!(line.contains(r#""JobResult":"Failure""#), "{line}");
    assert!(line.contains(r#""Phase":"OnError""#), "{line}");
}
