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

/// The server closes the connection right after its first CHALLENGE: the
/// AUTHENTICATE is not sent on another connection (where no handshake, or
/// behind a proxy someone else's, would take it), the handshake starts over
/// from NEGOTIATE on a new one, and the event is delivered at the first
/// attempt.
#[test]
fn a_challenge_whose_connection_closes_restarts_the_handshake() {
    let scratch = tempfile::tempdir().unwrap();
    let server = python::ntlm_server_with(scratch.path(), &[("NTLM_CLOSE_AFTER_CHALLENGES", "1")]);
    let daemon = Daemon::start(&config(
        server.peer.port,
        r"CORP\svc-jobhook",
        "Corr3ct-Horse",
    ));
    assert!(daemon.send(&[r#"{"Id":"restarted"}"#]).iter().all(reply_ok));
    wait_for_lines(&server.record, 1);
    // The first request, NEGOTIATE (its connection closed), NEGOTIATE again
    // and AUTHENTICATE; the server logs each once it answered it.
    let requests = || server.peer.log_text().matches("POST /events").count();
    eventually("every request in the server's log", || requests() >= 4);
    let log = server.peer.log_text();
    assert!(!log.contains("authenticate without a handshake"), "{log}");
    assert_eq!(requests(), 4, "{log}");
    assert!(!daemon.log().contains("attempt failed"), "{}", daemon.log());
}

/// Sends three events and checks that the server accepted them, each leg on
/// its handshake's connection, with no failed attempt.
fn delivers_three(daemon: &Daemon, server: &python::NtlmServer) {
    let events = [r#"{"Id":"a"}"#, r#"{"Id":"b"}"#, r#"{"Id":"c"}"#];
    assert!(
        daemon.send(&events).iter().all(reply_ok),
        "{}",
        daemon.log()
    );
    wait_for_lines(&server.record, 3);
    let log = server.peer.log_text();
    assert!(!log.contains("authenticate without a handshake"), "{log}");
    assert!(!daemon.log().contains("attempt failed"), "{}", daemon.log());
}

/// Through an authenticating forward proxy the handshake goes over one
/// CONNECT tunnel (for an `http://` target too), which the proxy keeps on
/// one upstream connection; a new connection each time proves each tunnel
/// carries a whole handshake.
#[test]
fn through_a_proxy_the_legs_share_one_tunnel() {
    let scratch = tempfile::tempdir().unwrap();
    let proxy = python::proxy(scratch.path());
    let server = python::ntlm_server_with(scratch.path(), &[("NTLM_CLOSE_AFTER_ACCEPT", "1")]);
    let proxied = format!(
        "ProxyHost = \"127.0.0.1\"\nProxyPort = {}\nProxyUsername = \"svc\"\nProxyPassword = \"{}\"\n",
        proxy.port, PROXY_PASSWORD
    );
    let daemon =
        Daemon::start(&(config(server.peer.port, r"CORP\svc-jobhook", "Corr3ct-Horse") + &proxied));
    delivers_three(&daemon, &server);
    eventually("the proxy to log the CONNECTs", || {
        proxy.log_text().matches("CONNECT").count() >= 3
    });
}

/// Through a SOCKS5 proxy that wants a password, each handshake keeps to
/// one tunnel too.
#[test]
fn through_socks5_the_legs_share_one_tunnel() {
    let scratch = tempfile::tempdir().unwrap();
    let socks = socks::start_with_login("svc", PROXY_PASSWORD);
    let server = python::ntlm_server_with(scratch.path(), &[("NTLM_CLOSE_AFTER_ACCEPT", "1")]);
    let proxied = format!(
        "ProxyHost = \"127.0.0.1\"\nProxyPort = {}\nproxy_scheme = \"socks5\"\n\
         ProxyUsername = \"svc\"\nProxyPassword = \"{PROXY_PASSWORD}\"\n",
        socks.port
    );
    let daemon =
        Daemon::start(&(config(server.peer.port, r"CORP\svc-jobhook", "Corr3ct-Horse") + &proxied));
    delivers_three(&daemon, &server);
    assert!(socks.tunnels() >= 3, "{} tunnels", socks.tunnels());
}

/// A proxy that refuses its credentials (407 to the CONNECT) fails the
/// attempt for good, naming why, and the server never hears of it.
#[test]
fn a_refused_proxy_password_fails_permanently() {
    let scratch = tempfile::tempdir().unwrap();
    let proxy = python::proxy(scratch.path());
    let server = python::ntlm_server(scratch.path());
    let proxied = format!(
        "ProxyHost = \"127.0.0.1\"\nProxyPort = {}\nProxyUsername = \"svc\"\nProxyPassword = \"wr0ng-pass\"\n",
        proxy.port
    );
    let daemon =
        Daemon::start(&(config(server.peer.port, r"CORP\svc-jobhook", "Corr3ct-Horse") + &proxied));
    daemon.send(&[r#"{"Id":"denied"}"#]);
    let line = daemon.log_line("failed permanently");
    assert!(line.contains("proxy authorization required"), "{line}");
    assert!(!daemon.log().contains("wr0ng-pass"), "{}", daemon.log());
    assert!(
        !server.peer.log_text().contains("POST"),
        "the server heard of it"
    );
}

/// A host `no_proxy` lists is reached directly: the proxy named here does
/// not even listen.
#[test]
fn no_proxy_hosts_are_reached_directly() {
    let scratch = tempfile::tempdir().unwrap();
    let server = python::ntlm_server(scratch.path());
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = unused.local_addr().unwrap().port();
    drop(unused);
    let direct =
        format!("ProxyHost = \"127.0.0.1\"\nProxyPort = {port}\nno_proxy = \"127.0.0.1\"\n");
    let daemon =
        Daemon::start(&(config(server.peer.port, r"CORP\svc-jobhook", "Corr3ct-Horse") + &direct));
    delivers_three(&daemon, &server);
}

/// PEM files of a certificate for 127.0.0.1 and its key, and the CA that
/// issued it, in `dir`: their paths.
struct TlsFiles {
    cert: String,
    key: String,
    ca: String,
}

fn tls_files(dir: &std::path::Path) -> TlsFiles {
    let ca = pki::authority("NTLM test CA");
    let leaf = pki::leaf(&ca, &["127.0.0.1"]);
    let file = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    TlsFiles {
        cert: file("server.pem", &leaf.cert_pem),
        key: file("server.key", &leaf.key_pem),
        ca: file("ca.pem", &ca.pem),
    }
}

/// The handler's `[ssl.corp]` section, trusting only `ca`.
fn trusting(ca: &str) -> String {
    format!("ssl_config = \"corp\"\n[ssl.corp]\nca_file = \"{ca}\"\nca_only = true\n")
}

/// Over HTTPS, with the `[ssl.NAME]` section's CA: the own connection's TLS
/// follows the same settings as the handler's other requests.
#[test]
fn over_https_with_the_ssl_sections_ca() {
    let scratch = tempfile::tempdir().unwrap();
    let files = tls_files(scratch.path());
    let server = python::ntlm_server_with(
        scratch.path(),
        &[("NTLM_TLS_CERT", &files.cert), ("NTLM_TLS_KEY", &files.key)],
    );
    let text = config(server.peer.port, r"CORP\svc-jobhook", "Corr3ct-Horse")
        .replace("http://", "https://")
        + &trusting(&files.ca);
    let daemon = Daemon::start(&text);
    delivers_three(&daemon, &server);
}

/// To an `https` proxy: TLS to the proxy (trusted through the `[ssl.NAME]`
/// section), the CONNECT tunnel inside it.
#[test]
fn through_an_https_proxy_the_tunnel_runs_inside_tls() {
    let scratch = tempfile::tempdir().unwrap();
    let files = tls_files(scratch.path());
    let proxy = python::proxy_with(
        scratch.path(),
        &["--cert-file", &files.cert, "--key-file", &files.key],
    );
    let server = python::ntlm_server_with(scratch.path(), &[("NTLM_CLOSE_AFTER_ACCEPT", "1")]);
    let proxied = format!(
        "ProxyHost = \"127.0.0.1\"\nProxyPort = {}\nproxy_scheme = \"https\"\n\
         ProxyUsername = \"svc\"\nProxyPassword = \"{}\"\n",
        proxy.port, PROXY_PASSWORD
    );
    let daemon = Daemon::start(
        &(config(server.peer.port, r"CORP\svc-jobhook", "Corr3ct-Horse")
            + &proxied
            + &trusting(&files.ca)),
    );
    delivers_three(&daemon, &server);
    eventually("the proxy to log the CONNECTs", || {
        proxy.log_text().matches("CONNECT").count() >= 3
    });
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
