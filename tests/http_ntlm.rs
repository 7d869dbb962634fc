//! NTLMv2 against an independent acceptor: a Python server whose NTLM side
//! is pyspnego (from PyPI), not our own code.

#![cfg(unix)] // The acceptor and the daemon talk over the Unix socket harness.

mod util;

use std::time::{Duration, Instant};

use util::*;

fn config(port: u16, user: &str, password: &str) -> String {
    format!(
        "[hooks]\nOnFinish = [\"iis\"]\n[handlers.iis]\nLibraryName = \"HttpHandler\"\nURL = \"http://127.0.0.1:{port}/events/{{JobId}}\"\n\
         UseNTLMAuthentication = true\nNTLMUser = '{user}'\nNTLMPassword = \"{password}\"\nretries = 0\n"
    )
}

#[test]
fn the_right_password_delivers_every_event() {
    let scratch = tempfile::tempdir().unwrap();
    let server = python::ntlm_server(scratch.path());
    let daemon = Daemon::start(&config(
        server.peer.port,
        r"CORP\svc-jobhook",
        "Corr3ct-Horse",
    ));
    let events: Vec<String> = (0..20)
        .map(|i| format!(r#"{{"Id":"ntlm-{i}","JobId":"3f1e5a2b-8c7d-4e6f-9a0b-1c2d3e4f5a6b"}}"#))
        .collect();
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    assert!(daemon.send(&refs).iter().all(reply_ok));
    let accepted = wait_for_lines(&server.record, 20);
    for (i, line) in accepted.iter().enumerate() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            record["user"].as_str().unwrap().to_lowercase(),
            r"corp\svc-jobhook"
        );
        assert_eq!(record["body"]["Id"], format!("ntlm-{i}"));
    }
    assert!(!daemon.log().contains("attempt failed"), "{}", daemon.log());
}

#[test]
fn a_user_principal_name_works_too() {
    let scratch = tempfile::tempdir().unwrap();
    let server = python::ntlm_server(scratch.path());
    let daemon = Daemon::start(&config(
        server.peer.port,
        "svc-jobhook@CORP",
        "Corr3ct-Horse",
    ));
    daemon.send(&[r#"{"Id":"upn"}"#]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while lines(&server.record).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "not delivered:\n{}\nserver:\n{}",
            daemon.log(),
            std::fs::read_to_string(&server.peer.log).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The three legs of a handshake share one connection, every time: 200
/// events, each on a new connection (the server closes it after accepting),
/// each needing a full handshake; every one succeeds with exactly three
/// requests (the first, NEGOTIATE, AUTHENTICATE), no AUTHENTICATE reaches a
/// connection that did not carry its CHALLENGE, and no attempt fails.
#[test]
fn two_hundred_handshakes_each_keep_their_legs_on_one_connection() {
    const HANDSHAKES: usize = 200;
    let scratch = tempfile::tempdir().unwrap();
    let server = python::ntlm_server_with(scratch.path(), &[("NTLM_CLOSE_AFTER_ACCEPT", "1")]);
    let daemon = Daemon::start(&config(
        server.peer.port,
        r"CORP\svc-jobhook",
        "Corr3ct-Horse",
    ));
    let events: Vec<String> = (0..HANDSHAKES)
        .map(|i| format!(r#"{{"Id":"leg-{i}"}}"#))
        .collect();
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    assert!(daemon.send(&refs).iter().all(reply_ok));
    // Slow on a loaded machine: 600 requests to a Python server, each
    // handshake some crypto on either side.
    let deadline = Instant::now() + Duration::from_secs(180);
    while lines(&server.record).len() < HANDSHAKES {
        assert!(
            Instant::now() < deadline,
            "{} of {HANDSHAKES} accepted:\n{}",
            lines(&server.record).len(),
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The server logs a request once it has answered it, after its record.
    let requests = || {
        let log = server.peer.log_text();
        let count = log
            .lines()
            .filter(|line| line.contains("POST /events"))
            .count();
        (count, log)
    };
    eventually("every request in the server's log", || {
        requests().0 >= 3 * HANDSHAKES
    });
    let (count, log) = requests();
    assert!(!log.contains("authenticate without a handshake"), "{log}");
    assert_eq!(count, 3 * HANDSHAKES, "{log}");
    assert!(!daemon.log().contains("attempt failed"), "{}", daemon.log());
}

#[test]
fn a_wrong_password_fails_and_is_never_logged() {
    let scratch = tempfile::tempdir().unwrap();
    let server = python::ntlm_server(scratch.path());
    let daemon = Daemon::start(&config(
        server.peer.port,
        r"CORP\svc-jobhook",
        "Wr0ng-Horse",
    ));
    daemon.send(&[r#"{"Id":"refused"}"#]);
    let line = daemon.log_line("failed permanently");
    let log = daemon.log();
    assert!(
        line.contains(r"NTLM credentials for CORP\svc-jobhook were refused"),
        "{line}"
    );
    assert!(!log.contains("Wr0ng-Horse"), "password in the log:\n{log}");
    assert!(server.peer.log_text().contains("ntlm refused"));
    assert!(lines(&server.record).is_empty());
}

#[test]
fn ntlmv1_and_half_configured_ntlm_are_config_errors() {
    let (_dir, file) = config_dir(&format!("{}UseNTLMv2 = false\n", config(1, r"CORP\u", "p")));
    let text =
        String::from_utf8_lossy(&jobhook(&["check", "-c", file.to_str().unwrap()], None).stdout)
            .into_owned();
    assert!(
        text.contains("NTLMv1") && text.contains("not supported"),
        "{text}"
    );
    let (_dir, file) = config_dir(&config(1, r"CORP\u", "p").replace("NTLMPassword = \"p\"\n", ""));
    let text =
        String::from_utf8_lossy(&jobhook(&["check", "-c", file.to_str().unwrap()], None).stdout)
            .into_owned();
    assert!(
        text.contains("use_ntlm_authentication needs ntlm_password"),
        "{text}"
    );
}
