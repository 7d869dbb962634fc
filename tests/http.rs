//! HttpHandler through the real daemon against real HTTP servers on loopback.

#![cfg(unix)] // Drives the Unix socket; the Windows pipe shares its protocol code.

mod util;

use std::time::Duration;

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use util::http::{HttpServer, Reply};
use util::*;

fn http_config(url: &str, extra: &str) -> String {
    format!(
        "[hooks]\nOnFinish = [\"hook\"]\nOnError = [\"hook\"]\n\n[handlers.hook]\nlibrary = \"HttpHandler\"\nurl = \"{url}\"\n{extra}\n"
    )
}

#[test]
fn delivers_the_event_as_json_with_templated_url_headers_and_basic_auth() {
    let server = HttpServer::start();
    let url = server.url("/jobs/{JobType}/{Note}?result={JobResult}");
    let config = http_config(
        &url,
        "headers = { \"X-Source\" = \"jobhook\" }\nBasicUser = \"svc\"\nBasicPassword = \"pa:ss word\"",
    );
    let daemon = Daemon::start(&config);
    let replies = daemon.send(&[
        r#"{"Id":"e1","JobType":"WinCertInventory","JobResult":"Success","Note":"a/b c"}"#,
    ]);
    assert!(reply_ok(&replies[0]));
    let request = &server.wait_for(1)[0];
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.target,
        "/jobs/WinCertInventory/a%2Fb%20c?result=Success"
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("x-source"), Some("jobhook"));
    let expected = base64::engine::general_purpose::STANDARD.encode("svc:pa:ss word");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Basic {expected}").as_str())
    );
    let body = request.json();
    assert_eq!(body["Id"], "e1");
    assert_eq!(body["Phase"], "OnFinish");
    assert_eq!(body["Note"], "a/b c");
}

#[test]
fn a_content_type_in_headers_replaces_the_default() {
    let server = HttpServer::start();
    let config = http_config(
        &server.url("/hook"),
        "headers = { \"Content-Type\" = \"application/cloudevents+json\" }",
    );
    let daemon = Daemon::start(&config);
    assert!(reply_ok(&daemon.send(&[r#"{"Id":"typed"}"#])[0]));
    let request = &server.wait_for(1)[0];
    let content_types: Vec<&str> = request
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map(|(_, value)| value.as_str())
        .collect();
    assert_eq!(content_types, ["application/cloudevents+json"]);
}

#[test]
fn a_503_is_retried_after_the_interval_then_succeeds() {
    let server = HttpServer::start();
    server.script([Reply::status(503).with_body("busy"), Reply::status(200)]);
    let daemon = Daemon::start(&http_config(
        &server.url("/hook"),
        "retries = 3\nretry_interval = \"300ms\"",
    ));
    daemon.send(&[r#"{"Id":"retry-me"}"#]);
    let requests = server.wait_for(2);
    assert!(requests[1].at - requests[0].at >= Duration::from_millis(300));
    eventually("the delivery to be logged", || {
        daemon.log().contains("attempt failed")
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        server.requests().len(),
        2,
        "a delivered event was sent again"
    );
    let log = daemon.log();
    assert!(log.contains("503") && log.contains("busy"), "{log}");
    assert!(!log.contains("no retries left"), "{log}");
}

#[test]
fn a_400_is_a_permanent_failure_and_is_not_retried() {
    let server = HttpServer::start();
    server.script([Reply::status(400).with_body("{\"error\":\"bad field\"}")]);
    let daemon = Daemon::start(&http_config(&server.url("/hook"), "retries = 3"));
    daemon.send(&[r#"{"Id":"bad-request"}"#]);
    let line = daemon.log_line("failed permanently");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(server.requests().len(), 1);
    assert!(
        line.contains("bad-request") && line.contains("400") && line.contains("bad field"),
        "{line}"
    );
}

#[test]
fn a_redirect_is_not_followed_and_the_failure_says_where_to() {
    let server = HttpServer::start();
    let moved = server.url("/new-hook");
    server.script([Reply::status(301).with_header("Location", &moved)]);
    let daemon = Daemon::start(&http_config(&server.url("/hook"), "retries = 3"));
    daemon.send(&[r#"{"Id":"moved"}"#]);
    let line = daemon.log_line("failed permanently");
    std::thread::sleep(Duration::from_millis(400));
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "the redirect was followed or retried");
    assert_eq!(requests[0].method, "POST");
    assert!(
        line.contains("301") && line.contains(&format!("moved to {moved}")),
        "{line}"
    );
}

#[test]
fn retry_after_sets_the_wait_and_retry_on_replaces_the_retried_statuses() {
    let server = HttpServer::start();
    server.script([
        Reply::status(429).with_header("Retry-After", "1"),
        Reply::status(200),
    ]);
    let daemon = Daemon::start(&http_config(
        &server.url("/hook"),
        "retry_interval = \"10ms\"",
    ));
    daemon.send(&[r#"{"Id":"slow-down"}"#]);
    let requests = server.wait_for(2);
    assert!(requests[1].at - requests[0].at >= Duration::from_secs(1));

    let server = HttpServer::start();
    server.script([Reply::status(409), Reply::status(503)]);
    let daemon = Daemon::start(&http_config(
        &server.url("/hook"),
        "retry_on = [409]\nretries = 5\nretry_interval = \"50ms\"",
    ));
    daemon.send(&[r#"{"Id":"conflict"}"#]);
    server.wait_for(2);
    eventually("503 to be permanent", || {
        daemon.log().contains("failed permanently")
    });
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn a_hanging_server_times_out_and_is_retried() {
    let server = HttpServer::start();
    server.script([Reply::Hang, Reply::status(200)]);
    let daemon = Daemon::start(&http_config(
        &server.url("/hook"),
        "timeout = \"300ms\"\nretries = 1\nretry_interval = \"10ms\"",
    ));
    daemon.send(&[r#"{"Id":"patience"}"#]);
    let requests = server.wait_for(2);
    assert!(requests[1].at - requests[0].at >= Duration::from_millis(300));
    assert!(
        daemon
            .log()
            .contains("timed out after 300ms waiting for the server's answer"),
        "{}",
        daemon.log()
    );
}

/// A listener whose accept queue is full: the kernel drops further SYNs,
/// so a connection to it is never set up. Returns it with the connections
/// that fill it.
fn never_connects() -> (std::net::TcpListener, Vec<std::net::TcpStream>) {
    use std::os::fd::AsRawFd;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: listen(2) on a socket this function owns.
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
    let address = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    while let Ok(stream) =
        std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200))
    {
        queued.push(stream);
        assert!(queued.len() < 64, "the accept queue never filled");
    }
    (listener, queued)
}

#[test]
fn a_connection_never_set_up_times_out_as_connecting_not_as_waiting_for_an_answer() {
    let (listener, _queued) = never_connects();
    let address = listener.local_addr().unwrap();
    let daemon = Daemon::start(&http_config(
        &format!("http://{address}/hook"),
        "timeout = \"300ms\"\nretries = 0",
    ));
    daemon.send(&[r#"{"Id":"syn-dropped"}"#]);
    let line = daemon.log_line("no retries left");
    assert!(
        line.contains("timed out after 300ms connecting to the server"),
        "{line}"
    );
}

#[test]
fn an_unreachable_endpoint_fails_after_its_retries_with_the_reason() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let daemon = Daemon::start(&http_config(
        &format!("http://{closed}/hook"),
        "retries = 1\nretry_interval = \"10ms\"",
    ));
    daemon.send(&[r#"{"Id":"nowhere"}"#]);
    let line = daemon.log_line("no retries left");
    assert!(
        line.contains("nowhere") && line.contains("attempts=2"),
        "{line}"
    );
    assert!(line.to_lowercase().contains("connect"), "{line}");
}

#[test]
fn signed_requests_carry_a_standard_webhooks_signature() {
    let server = HttpServer::start();
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let daemon = Daemon::start(&http_config(
        &server.url("/hook"),
        &format!("signing_secret = \"{secret}\""),
    ));
    daemon.send(&[r#"{"Id":"signed-1","JobResult":"Success"}"#]);
    let request = &server.wait_for(1)[0];
    assert_eq!(request.header("webhook-id"), Some("signed-1"));
    let timestamp: i64 = request
        .header("webhook-timestamp")
        .unwrap()
        .parse()
        .unwrap();
    assert!((jiff::Timestamp::now().as_second() - timestamp).abs() < 300);
    let key = base64::engine::general_purpose::STANDARD
        .decode(&secret[6..])
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("signed-1.{timestamp}.").as_bytes());
    mac.update(&request.body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(
        request.header("webhook-signature"),
        Some(format!("v1,{expected}").as_str())
    );
}

#[test]
fn bearer_tokens_come_from_the_environment_and_secrets_never_reach_the_log() {
    let server = HttpServer::start();
    server.script([Reply::status(401).with_body("denied")]);
    let (dir, config) = config_dir(&http_config(
        &server.url("/hook"),
        "bearer_token = { env = \"JOBHOOK_TEST_TOKEN\" }\nretries = 0",
    ));
    let log = dir.path().join("daemon.log");
    let mut child = std::process::Command::new(BIN)
        .args(["run", "-c"])
        .arg(&config)
        .env("JOBHOOK_TEST_TOKEN", "tok-s3cret-value")
        .env("JOBHOOK_LOG", "trace")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let socket = dir.path().join("run/jobhook.sock");
    eventually("the daemon to listen", || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    });
    let mut client = Client::connect(&socket);
    client.write_lines(&[r#"{"Id":"auth"}"#]);
    assert!(reply_ok(&client.read_reply()));
    let request = &server.wait_for(1)[0];
    assert_eq!(
        request.header("authorization"),
        Some("Bearer tok-s3cret-value")
    );
    eventually("the failure", || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("failed permanently")
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("tok-s3cret-value"),
        "secret in the log:\n{text}"
    );
}

#[test]
fn a_missing_secret_or_bad_url_is_a_config_error_naming_the_handler() {
    let (_dir, config) = config_dir(&http_config(
        "http://127.0.0.1:1/x",
        "basic_user = \"u\"\nbasic_password = { env = \"JOBHOOK_TEST_UNSET\" }",
    ));
    let output = jobhook(&["check", "-c", config.to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains(":7:11: error: handler `hook`: basic_password: environment variable JOBHOOK_TEST_UNSET is not set"), "{text}");

    let (_dir, config) = config_dir(&http_config("ftp://example/{JobId}", ""));
    let output = jobhook(&["check", "-c", config.to_str().unwrap()], None);
    assert!(String::from_utf8_lossy(&output.stdout).contains("is not an http:// or https:// URL"));

    let (_dir, config) = config_dir(&http_config(
        "https://example/x",
        "ssl_config = \"crop\"\n[ssl.corp]\nmin_tls_version = \"1.3\"",
    ));
    let output = jobhook(&["check", "-c", config.to_str().unwrap()], None);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("ssl_config names [ssl.crop], which is not defined; did you mean `corp`?"),
        "{text}"
    );
}
