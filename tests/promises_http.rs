//! Issue 16: delivery that survives hostile endpoints. Each test drives the
//! real daemon against a server that misbehaves in one way.

#![cfg(unix)] // Drives the Unix socket; the Windows pipe shares its protocol code.

mod util;

use std::time::Duration;

use util::http::{HttpServer, Reply};
use util::*;

fn http_config(url: &str, extra: &str) -> String {
    format!(
        "[hooks]\nOnFinish = [\"hook\"]\n\n[handlers.hook]\nlibrary = \"HttpHandler\"\nurl = \"{url}\"\n{extra}\n"
    )
}

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

#[test]
fn a_refused_ntlm_password_is_one_logon_then_fails_at_once_until_a_replay() {
    let scratch = tempfile::tempdir().unwrap();
    let server = python::ntlm_server(scratch.path());
    let daemon = Daemon::start(&http_config(
        &format!("http://127.0.0.1:{}/events", server.peer.port),
        "UseNTLMAuthentication = true\nNTLMUser = 'CORP\\svc-jobhook'\nNTLMPassword = \"Wr0ng-Horse\"\n\
         retries = 3\nretry_interval = \"50ms\"",
    ));
    let config = daemon.config.to_str().unwrap().to_owned();
    daemon.send(&[r#"{"Id":"a"}"#, r#"{"Id":"b"}"#, r#"{"Id":"c"}"#]);
    eventually("three dead letters", || {
        count(&daemon.log(), "failed permanently") == 3
    });
    let log = daemon.log();
    assert_eq!(count(&log, "attempt failed"), 0, "retried:\n{log}");
    assert_eq!(
        count(&log, r"NTLM credentials for CORP\svc-jobhook were refused"),
        3,
        "{log}"
    );
    // One logon: the plain request, NEGOTIATE and AUTHENTICATE, nothing after.
    let server_log = server.peer.log_text();
    assert_eq!(count(&server_log, "ntlm refused"), 1, "{server_log}");
    assert_eq!(count(&server_log, "\"POST "), 3, "{server_log}");

    // A replay allows one more logon, not one per replayed event.
    let replay = jobhook(&["deadletter", "replay", "--all", "-c", &config], None);
    assert!(replay.status.success());
    eventually("three more dead letters", || {
        count(&daemon.log(), "failed permanently") == 6
    });
    let server_log = server.peer.log_text();
    assert_eq!(count(&server_log, "ntlm refused"), 2, "{server_log}");
    assert!(!daemon.log().contains("Wr0ng-Horse"));
}

const NTLM: &str = "UseNTLMAuthentication = true\nNTLMUser = 'CORP\\svc'\nNTLMPassword = \"pw\"";

#[test]
fn an_endless_401_body_is_cut_off_at_64_kib() {
    let server = HttpServer::start();
    server.script([Reply::Trickle {
        code: 401,
        headers: vec![("WWW-Authenticate".into(), "NTLM".into())],
        length: 20 << 30,
        step: 64 << 10,
        every: Duration::ZERO,
    }]);
    let daemon = Daemon::start(&http_config(
        &server.url("/events"),
        &format!("{NTLM}\nretries = 0\ntimeout = \"5s\""),
    ));
    daemon.send(&[r#"{"Id":"flood"}"#]);
    let line = daemon.log_line("no retries left");
    assert!(line.contains("a body over 65536 bytes"), "{line}");
    // What the kernel's buffers took, not gigabytes.
    assert!(
        server.trickled() < 16 << 20,
        "read {} bytes",
        server.trickled()
    );
}

#[test]
fn a_2xx_whose_body_trickles_is_delivered_once() {
    let server = HttpServer::start();
    server.script([Reply::Trickle {
        code: 200,
        headers: Vec::new(),
        length: 1000,
        step: 1,
        every: Duration::from_millis(200),
    }]);
    let daemon = Daemon::start(&http_config(
        &server.url("/events"),
        "timeout = \"500ms\"\nretries = 2\nretry_interval = \"10ms\"",
    ));
    daemon.send(&[r#"{"Id":"slow-body"}"#]);
    server.wait_for(1);
    // Past the drain's own bound (2 s), and any retry.
    std::thread::sleep(Duration::from_secs(3));
    let log = daemon.log();
    assert_eq!(server.requests().len(), 1, "{log}");
    assert!(
        !log.contains("attempt failed") && !log.contains("failed"),
        "{log}"
    );
}

#[test]
fn waiting_for_the_ntlm_connection_is_not_the_attempts_time() {
    let server = HttpServer::start();
    // Each answer takes 400 ms of a 1 s timeout; six events in parallel
    // queue for the one connection longer than that.
    server.script(
        (0..6).map(|_| Reply::After(Duration::from_millis(400), Box::new(Reply::status(200)))),
    );
    let daemon = Daemon::start(&format!(
        "[daemon]\nworkers = 6\n{}",
        http_config(
            &server.url("/events"),
            &format!("{NTLM}\ntimeout = \"1s\"\nretries = 5\nretry_interval = \"10ms\""),
        )
    ));
    let events: Vec<String> = (0..6)
        .map(|i| format!(r#"{{"Id":"e{i}","JobId":"3f1e5a2b-8c7d-4e6f-9a0b-1c2d3e4f5a6{i}"}}"#))
        .collect();
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    assert!(daemon.send(&refs).iter().all(reply_ok));
    server.wait_for(6);
    std::thread::sleep(Duration::from_millis(1500));
    let log = daemon.log();
    // A request that reached the server was never cut off and sent again;
    // an event that waited too long for its turn says so, sent nothing,
    // and went later.
    let mut ids: Vec<String> = server
        .requests()
        .iter()
        .map(|request| request.json()["Id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, ["e0", "e1", "e2", "e3", "e4", "e5"], "{log}");
    // They did queue: one request at a time on the one connection.
    assert_eq!(server.peak_in_flight(), 1, "{log}");
    assert!(!log.contains("waiting for the server's answer"), "{log}");
    assert!(!log.contains("no retries left"), "{log}");
}

#[test]
fn url_placeholders_cannot_climb_the_path() {
    let server = HttpServer::start();
    let daemon = Daemon::start(&http_config(
        &server.url("/api/tenants/{ClientMachine}/jobs/{JobType}/events"),
        "retries = 3",
    ));
    daemon.send(&[r#"{"Id":"climb","ClientMachine":"..","JobType":".."}"#]);
    let line = daemon.log_line("failed permanently");
    assert!(line.contains("`.` or `..`"), "{line}");
    daemon.send(&[r#"{"Id":"dots","ClientMachine":"...","JobType":"a.b/../c"}"#]);
    let requests = server.wait_for(1);
    assert_eq!(
        requests[0].target,
        "/api/tenants/.../jobs/a.b%2F..%2Fc/events"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.requests().len(), 1, "the climbing URL was sent");
}

#[test]
fn retry_after_in_asctime_form_is_honoured_and_zero_waits_the_interval() {
    let server = HttpServer::start();
    // The date is taken when the request arrives, however long the daemon
    // took to start: three seconds on, in whole seconds, so at least two.
    server.otherwise(|n| match n {
        0 => {
            let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3);
            let asctime = at
                .to_zoned(jiff::tz::TimeZone::UTC)
                .strftime("%a %b %e %H:%M:%S %Y")
                .to_string();
            Reply::status(503).with_header("Retry-After", &asctime)
        }
        1 => Reply::status(503).with_header("Retry-After", "0"),
        _ => Reply::status(200),
    });
    let daemon = Daemon::start(&http_config(
        &server.url("/events"),
        "retries = 2\nretry_interval = \"1s\"",
    ));
    daemon.send(&[r#"{"Id":"later"}"#]);
    let requests = server.wait_for(3);
    let gaps = [
        requests[1].at - requests[0].at,
        requests[2].at - requests[1].at,
    ];
    assert!(gaps[0] >= Duration::from_millis(1900), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(900), "{gaps:?}");
}

#[test]
fn a_proxy_407_to_connect_is_permanent_for_https_targets() {
    let proxy = HttpServer::start();
    proxy.script([Reply::status(407).with_header("Proxy-Authenticate", "Basic realm=\"corp\"")]);
    let daemon = Daemon::start(&http_config(
        "https://itsm.example.invalid/events",
        &format!(
            "ProxyHost = \"127.0.0.1\"\nProxyPort = {}\nProxyUsername = \"svc\"\nProxyPassword = \"wr0ng\"\nretries = 3",
            proxy.addr.port()
        ),
    ));
    daemon.send(&[r#"{"Id":"tunnel"}"#]);
    let line = daemon.log_line("failed permanently");
    assert!(line.contains("proxy authorization required"), "{line}");
    std::thread::sleep(Duration::from_millis(300));
    let requests = proxy.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "CONNECT");
}

#[test]
fn a_token_in_the_query_string_reaches_neither_log_nor_dead_letter() {
    let server = HttpServer::start();
    server.script([Reply::status(400)]);
    let daemon = Daemon::start(&http_config(
        &server.url("/hook?token=s3cr3t-t0ken&tenant={ClientMachine}"),
        "retries = 0",
    ));
    let config = daemon.config.to_str().unwrap().to_owned();
    daemon.send(&[r#"{"Id":"leak","ClientMachine":"web01"}"#]);
    let line = daemon.log_line("failed permanently");
    assert!(
        line.contains("/hook?token=REDACTED&tenant=REDACTED"),
        "{line}"
    );
    assert_eq!(
        server.requests()[0].target,
        "/hook?token=s3cr3t-t0ken&tenant=web01"
    );
    // The dead letter is committed just after the log line.
    let mut letters = String::new();
    eventually("the dead letter", || {
        let listed = jobhook(&["deadletter", "list", "--json", "-c", &config], None);
        letters = String::from_utf8_lossy(&listed.stdout).into_owned();
        letters.contains("\"leak\"")
    });
    assert!(letters.contains("token=REDACTED"), "{letters}");
    assert!(!letters.contains("s3cr3t") && !daemon.log().contains("s3cr3t"));
}

#[test]
fn a_pinned_self_signed_ca_as_server_certificate_is_explained() {
    let (pem, tls) = pki::self_signed_ca_server();
    let server = HttpServer::start_tls(tls);
    let daemon = Daemon::start_with(
        &http_config(
            &format!("https://{}/hook", server.addr),
            "ssl_config = \"pinned\"\nretries = 0\n[ssl.pinned]\nca_file = \"server.pem\"",
        ),
        &[("server.pem", &pem)],
    );
    daemon.send(&[r#"{"Id":"pinned"}"#]);
    let line = daemon.log_line("no retries left");
    assert!(
        line.contains("is a CA certificate") && line.contains("CA:FALSE"),
        "{line}"
    );
}

#[test]
fn jobhook_send_passes_numbers_through_exactly() {
    let server = HttpServer::start();
    let daemon = Daemon::start(&http_config(&server.url("/hook"), ""));
    let config = daemon.config.to_str().unwrap().to_owned();
    let big = "123456789012345678901234567890";
    let inputs = [
        (format!(r#"{{"Id":"object","N":{big},"F":1.10}}"#), None),
        (format!(r#"[{{"Id":"array","N":{big},"F":1.10}}]"#), None),
        (
            format!(
                "{{\"Id\":\"ndjson\",\"N\":{big},\"F\":1.10}}\n{{\"Id\":\"more\",\"N\":{big},\"F\":1.10}}"
            ),
            Some("OnFinish"),
        ),
    ];
    for (input, phase) in &inputs {
        let mut args = vec!["send", "-c", &config];
        if let Some(phase) = phase {
            args.extend(["--phase", phase]);
        }
        let sent = jobhook(&args, Some(input));
        assert!(sent.status.success(), "{sent:?}");
    }
    for request in server.wait_for(4) {
        let body = String::from_utf8(request.body.clone()).unwrap();
        assert!(body.contains(&format!("\"N\":{big},\"F\":1.10")), "{body}");
    }
}
