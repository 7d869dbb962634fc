//! `[ingest.http]` against the real binary: `POST /events` in each body
//! form, answered per event once committed; who may post; size and time
//! limits; HTTPS; and nothing answered 200 lost to a SIGKILL.

#![cfg(unix)] // Drives the harness's Unix-only helpers.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use util::admin::{Answer, Api, free_port, section};
use util::{AUDIT, Daemon, check_refuses, config_dir, eventually, ids_in};

const WRITER: &str = "writer-secret-token";
const READER: &str = "reader-secret-token";

/// An event of a job of its own (a GUID made from the id).
fn event(id: &str) -> String {
    let job = id.bytes().fold(0u64, |hash, byte| {
        hash.wrapping_mul(31).wrapping_add(u64::from(byte))
    }) & 0xffff_ffff_ffff;
    let job = format!("6e4c1c5b-8b41-4c43-9f0f-{job:012x}");
    json!({"Id": id, "Phase": "OnFinish", "JobId": job, "JobType": "Inventory"}).to_string()
}

/// The audit chain, a token `writer` that may post events and `reader`
/// that may not, and `[ingest.http]` on a free port with `keys`.
fn daemon_with_ingest(keys: &str) -> (Daemon, Api) {
    let port = free_port();
    let admin = section(
        free_port(),
        &[
            ("writer", WRITER, &["events:write"]),
            ("reader", READER, &["handlers:read"]),
        ],
    );
    let ingest = format!("\n[ingest.http]\nlisten = \"127.0.0.1:{port}\"\n{keys}\n");
    let daemon = Daemon::start(&format!("{AUDIT}{admin}{ingest}"));
    (daemon, Api::on(port))
}

fn post(api: &Api, body: &str) -> Answer {
    api.post("/events", Some(WRITER), Some(body))
}

fn audited(daemon: &Daemon) -> std::collections::HashMap<String, usize> {
    ids_in(&daemon.path("out/audit.log"))
}

#[test]
fn an_object_an_array_and_ndjson_are_answered_event_by_event() {
    let (daemon, api) = daemon_with_ingest("");
    let one = post(&api, &event("a"));
    assert_eq!(
        (one.status, one.json()),
        (200, json!([{"ok": true, "id": "a"}]))
    );
    let pretty =
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(&event("b")).unwrap()).unwrap();
    assert_eq!(post(&api, &pretty).status, 200, "one object across lines");
    let array = post(&api, &format!("[{}, {}]", event("c"), event("d")));
    assert_eq!(
        (array.status, array.json()),
        (
            200,
            json!([{"ok": true, "id": "c"}, {"ok": true, "id": "d"}])
        )
    );
    let mixed = post(&api, &format!("{}\nnot json\n{}\n", event("e"), event("a")));
    assert_eq!(mixed.status, 207, "{mixed:?}");
    let replies = mixed.json();
    assert_eq!(replies[0], json!({"ok": true, "id": "e"}));
    assert_eq!(replies[1]["code"], "parse_error");
    assert_eq!(
        replies[2],
        json!({"ok": true, "id": "a", "duplicate": true})
    );
    let refused = post(&api, "{\"Id\": 5}\n[1]\n");
    assert_eq!(refused.status, 400, "{refused:?}");
    assert_eq!(refused.json().as_array().unwrap().len(), 2);
    let empty = post(&api, " \n");
    assert_eq!(empty.status, 400);
    assert_eq!(empty.json()["error"], "the body holds no events");
    let broken = post(&api, "[{\"Id\": \"f\"},");
    assert_eq!(broken.status, 400);
    assert!(
        broken.json()["error"]
            .as_str()
            .unwrap()
            .contains("JSON array")
    );
    // A broken object across lines is refused whole: none of its lines
    // passes for an event, and the error says where it broke.
    let pretty_broken = post(
        &api,
        "{\n \"Id\": \"g\",\n \"Items\": [\n {\"Id\": \"h\"}\n ]\n \"Bad\":\n}",
    );
    assert_eq!(pretty_broken.status, 400, "{pretty_broken:?}");
    let error = pretty_broken.json()["error"].as_str().unwrap().to_owned();
    assert!(
        error.contains("neither one JSON value nor NDJSON"),
        "{error}"
    );
    assert!(error.contains("line 6"), "{error}");
    let wanted: std::collections::HashMap<String, usize> = ["a", "b", "c", "d", "e"]
        .map(|id| (id.to_owned(), 1))
        .into();
    eventually("each accepted event delivered once", || {
        audited(&daemon) == wanted
    });
}

#[test]
fn only_a_token_with_events_write_may_post() {
    let (daemon, api) = daemon_with_ingest("");
    let body = event("a");
    let without = api.post("/events", None, Some(&body));
    assert_eq!(without.status, 401);
    assert!(
        without.json()["error"]
            .as_str()
            .unwrap()
            .contains("bearer token")
    );
    assert_eq!(api.post("/events", Some("nope"), Some(&body)).status, 401);
    let reader = api.post("/events", Some(READER), Some(&body));
    assert_eq!(reader.status, 403);
    assert!(reader.body.contains("events:write"), "{reader:?}");
    assert!(!reader.body.contains(READER));
    assert_eq!(api.post("/events", Some(WRITER), Some(&body)).status, 200);
    assert_eq!(api.get("/events", Some(WRITER)).status, 405);
    assert_eq!(api.post("/other", Some(WRITER), Some(&body)).status, 404);
    eventually("the one accepted event delivered", || {
        audited(&daemon).len() == 1
    });
    assert!(
        !daemon.log().contains(WRITER),
        "a token never reaches the log"
    );
}

#[test]
fn anonymous_posting_is_for_loopback_only_and_otherwise_needs_a_writer() {
    let port = free_port();
    let daemon = Daemon::start(&format!(
        "{AUDIT}\n[ingest.http]\nlisten = \"127.0.0.1:{port}\"\nanonymous = true\n"
    ));
    let answer = Api::on(port).post("/events", None, Some(&event("a")));
    assert_eq!(answer.status, 200, "{answer:?}");
    eventually("delivered", || audited(&daemon).len() == 1);

    let (_dir, config) = config_dir(&format!(
        "{AUDIT}\n[ingest.http]\nlisten = \"0.0.0.0:9465\"\nallow_remote = true\nanonymous = true\n"
    ));
    check_refuses(
        &config,
        "anonymous = true is only allowed on a loopback address",
    );
    let (_dir, config) = config_dir(&format!("{AUDIT}\n[ingest.http]\n"));
    check_refuses(&config, "no [[admin.tokens]] entry has it");
    let (_dir, config) = config_dir(&format!(
        "{AUDIT}\n[ingest.http]\nlisten = \"0.0.0.0:9465\"\nanonymous = true\n"
    ));
    check_refuses(
        &config,
        "is not a loopback address; set allow_remote = true",
    );
    let (_dir, config) = config_dir(&format!(
        "{AUDIT}\n[ingest.http]\nanonymous = true\ntls_cert = \"missing.pem\"\ntls_key = \"missing.key\"\n"
    ));
    check_refuses(&config, "[ingest.http] tls_cert ");
}

#[test]
fn bodies_and_events_past_their_limits_are_refused_whole_or_one_by_one() {
    let (daemon, api) = daemon_with_ingest("max_body_bytes = \"4KiB\"");
    let many: Vec<String> = (0..100).map(|n| event(&format!("big-{n}"))).collect();
    let oversized = post(&api, &many.join("\n"));
    assert_eq!(oversized.status, 413, "{oversized:?}");
    // At most 10,000 events a body, however small.
    let (_big_daemon, big_api) = daemon_with_ingest("max_body_bytes = \"64KiB\"");
    let too_many = post(&big_api, &"{}\n".repeat(10_001));
    assert_eq!(too_many.status, 413, "{too_many:?}");
    assert!(
        too_many.body.contains("more than 10000 events"),
        "{too_many:?}"
    );
    let padded = json!({"Id": "padded", "Phase": "OnFinish", "Message": "x".repeat(2000)});
    // `[daemon] max_event_bytes` is 1 MiB by default: one event of 2 KB
    // fits; the limit per event is shown with a smaller daemon below.
    let fits = post(&api, &format!("{padded}\n{}", event("small")));
    assert_eq!(fits.status, 200, "{fits:?}");
    eventually("what was accepted delivered", || {
        audited(&daemon).len() == 2
    });
    assert!(!audited(&daemon).keys().any(|id| id.starts_with("big-")));

    let port = free_port();
    let small = Daemon::start(&format!(
        "[daemon]\nmax_event_bytes = 512\n{AUDIT}\
         \n[ingest.http]\nlisten = \"127.0.0.1:{port}\"\nanonymous = true\n"
    ));
    let answer = Api::on(port).post("/events", None, Some(&format!("{padded}\n{}", event("s"))));
    assert_eq!(answer.status, 207, "{answer:?}");
    assert_eq!(answer.json()[0]["code"], "too_large");
    assert_eq!(answer.json()[1]["id"], "s");
    eventually("the small one delivered", || audited(&small).len() == 1);
}

#[test]
fn a_client_that_sends_nothing_is_cut_off_after_request_timeout() {
    let (_daemon, api) = daemon_with_ingest("request_timeout = \"1s\"");
    let mut silent = TcpStream::connect(api.address).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut half = TcpStream::connect(api.address).unwrap();
    half.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let headers = format!(
        "POST /events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {WRITER}\r\n\
         Content-Length: 100\r\n\r\n{{\"Id\":"
    );
    half.write_all(headers.as_bytes()).unwrap();
    let started = Instant::now();
    let mut nothing = Vec::new();
    silent.read_to_end(&mut nothing).unwrap();
    assert!(nothing.is_empty());
    let mut answer = String::new();
    half.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(15));
    // Meanwhile others are served.
    assert_eq!(post(&api, &event("a")).status, 200);
}

#[test]
fn every_event_answered_200_survives_a_sigkill_right_after() {
    let (mut daemon, api) = daemon_with_ingest("");
    let mut acked = Vec::new();
    for round in 0..3 {
        let ids: Vec<String> = (0..20).map(|n| format!("r{round}-{n}")).collect();
        let body: Vec<String> = ids.iter().map(|id| event(id)).collect();
        let answer = post(&api, &body.join("\n"));
        daemon.kill();
        assert_eq!(answer.status, 200, "{answer:?}");
        acked.extend(ids);
        daemon.restart();
    }
    eventually("every acked event delivered", || {
        let seen = audited(&daemon);
        acked.iter().all(|id| seen.contains_key(id))
    });
}

#[test]
fn https_serves_the_configured_certificate() {
    let ca = util::pki::authority("ingest CA");
    let leaf = util::pki::leaf(&ca, &["127.0.0.1"]);
    let port = free_port();
    let config = format!(
        "{AUDIT}\n[ingest.http]\nlisten = \"127.0.0.1:{port}\"\nanonymous = true\n\
         tls_cert = \"tls/cert.pem\"\ntls_key = \"tls/key.pem\"\n"
    );
    let daemon = Daemon::start_with(
        &config,
        &[
            ("tls/cert.pem", &leaf.cert_pem),
            ("tls/key.pem", &leaf.key_pem),
        ],
    );
    // The key is a secret: `check` says so while everyone may read it.
    let key = daemon.path("tls/key.pem");
    let check = || {
        let output = util::jobhook(&["check", "-c", daemon.config.to_str().unwrap()], None);
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let report = check();
    assert!(
        report.contains(&format!(
            "warning: [ingest.http] tls_key: the secret file {} is readable by everyone",
            key.display()
        )),
        "{report}"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(!check().contains("warning"));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der.clone()).unwrap();
    let client = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = "127.0.0.1".try_into().unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(client), name).unwrap();
    let socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, socket);
    let body = event("tls");
    write!(
        tls,
        "POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = tls.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    eventually("delivered", || audited(&daemon).len() == 1);
    // Plain HTTP on the TLS port gets no answer.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    plain
        .write_all(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        .unwrap();
    let mut raw = Vec::new();
    let _ = plain.read_to_end(&mut raw);
    assert!(!String::from_utf8_lossy(&raw).contains("HTTP/1.1 200"));
}

#[test]
fn one_address_cannot_hold_every_connection() {
    let (_daemon, api) = daemon_with_ingest("max_connections_per_address = 2");
    let held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(api.address).unwrap())
        .collect();
    // The daemon counts a connection once it has accepted it; until both
    // held ones are, a third may still be served.
    eventually("the third connection refused", || {
        post(&api, &event("x")).status == 429
    });
    let refused = post(&api, &event("x"));
    assert!(
        refused.json()["error"]
            .as_str()
            .is_some_and(|error| error.contains("max_connections_per_address")),
        "{refused:?}"
    );
    assert!(
        refused
            .headers
            .to_ascii_lowercase()
            .contains("connection: close"),
        "{refused:?}"
    );
    // Answered at once, without waiting for a request, and closed.
    let mut silent = TcpStream::connect(api.address).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut answer = String::new();
    silent.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    drop(held);
    eventually("a place freed by a closed connection", || {
        post(&api, &event("a")).status == 200
    });
}
