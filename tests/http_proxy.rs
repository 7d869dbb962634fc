//! HttpHandler through a real forward proxy (proxy.py from PyPI) with Basic
//! proxy authentication, to http targets and to https targets via CONNECT,
//! and through a SOCKS5 relay that wants a password.

#![cfg(unix)] // Drives the Unix socket; the Windows pipe shares its protocol code.

mod util;

use util::http::{HttpServer, Reply};
use util::*;

fn config(url: &str, proxy_port: u16, password: &str, extra: &str) -> String {
    format!(
        "[hooks]\nOnFinish = [\"hook\"]\n[handlers.hook]\nlibrary = \"HttpHandler\"\nurl = \"{url}\"\n\
         ProxyHost = \"127.0.0.1\"\nProxyPort = {proxy_port}\nProxyUsername = \"svc\"\nProxyPassword = \"{password}\"\n\
         retries = 0\n{extra}\n"
    )
}

#[test]
fn an_http_target_is_reached_through_the_authenticating_proxy() {
    let scratch = tempfile::tempdir().unwrap();
    let proxy = python::proxy(scratch.path());
    let server = HttpServer::start();
    let daemon = Daemon::start(&config(
        &server.url("/via-proxy"),
        proxy.port,
        PROXY_PASSWORD,
        "",
    ));
    daemon.send(&[r#"{"Id":"proxied"}"#]);
    let request = &server.wait_for(1)[0];
    assert_eq!(request.target, "/via-proxy");
    assert_eq!(request.json()["Id"], "proxied");
    eventually("the proxy to log the request", || {
        proxy.log_text().contains("/via-proxy")
    });
}

#[test]
fn an_https_target_is_reached_through_connect() {
    let scratch = tempfile::tempdir().unwrap();
    let proxy = python::proxy(scratch.path());
    let ca = pki::authority("proxy test CA");
    let server = HttpServer::start_tls(pki::server_config(&ca));
    std::fs::write(scratch.path().join("ca.pem"), &ca.pem).unwrap();
    let url = format!("https://{}/secure", server.addr);
    let ssl = format!(
        "ssl_config = \"corp\"\n[ssl.corp]\nca_file = \"{}\"",
        scratch.path().join("ca.pem").display()
    );
    let daemon = Daemon::start(&config(&url, proxy.port, PROXY_PASSWORD, &ssl));
    daemon.send(&[r#"{"Id":"tunnelled"}"#]);
    let request = &server.wait_for(1)[0];
    assert_eq!(request.json()["Id"], "tunnelled");
    eventually("the proxy to log the CONNECT", || {
        proxy.log_text().contains("CONNECT")
    });
}

#[test]
fn a_wrong_proxy_password_fails_without_reaching_the_target_or_the_log() {
    let scratch = tempfile::tempdir().unwrap();
    let proxy = python::proxy(scratch.path());
    let server = HttpServer::start();
    server.script([Reply::status(200)]);
    let daemon = Daemon::start(&config(&server.url("/x"), proxy.port, "wr0ng-pass", ""));
    daemon.send(&[r#"{"Id":"denied"}"#]);
    let line = daemon.log_line("failed permanently");
    let log = daemon.log();
    assert!(line.contains("407"), "{line}");
    assert!(!log.contains("wr0ng-pass"), "password in the log:\n{log}");
    assert!(server.requests().is_empty());
}

#[test]
fn a_socks5_proxy_gets_its_password_as_written() {
    let socks = socks::start_with_login("svc", PROXY_PASSWORD);
    let server = HttpServer::start();
    let daemon = Daemon::start(&config(
        &server.url("/via-socks"),
        socks.port,
        PROXY_PASSWORD,
        "proxy_scheme = \"socks5\"",
    ));
    daemon.send(&[r#"{"Id":"socks"}"#]);
    assert_eq!(server.wait_for(1)[0].json()["Id"], "socks");
    assert_eq!(socks.tunnels(), 1);
}
