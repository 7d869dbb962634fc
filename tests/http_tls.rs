//! HttpHandler over TLS: `[ssl.NAME]` trust roots and mutual TLS, with
//! certificates generated here.

#![cfg(unix)] // Drives the Unix socket; the Windows pipe shares its protocol code.

mod util;

use std::path::Path;
use std::sync::Arc;

use util::http::HttpServer;
use util::pki::{Authority, authority, leaf};
use util::*;

/// An HTTPS server that requires a client certificate issued by `clients`.
fn mtls_server(ca: &Authority, clients: &Authority) -> HttpServer {
    let server = leaf(ca, &["127.0.0.1", "localhost"]);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(clients.der.clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .unwrap();
    let config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![server.der], server.key)
        .unwrap();
    HttpServer::start_tls(Arc::new(config))
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    std::fs::write(dir.join(name), text).unwrap();
    name.to_owned()
}

fn tls_config(server: &HttpServer, ssl: &str) -> String {
    format!(
        "[hooks]\nOnFinish = [\"hook\"]\n[handlers.hook]\nlibrary = \"HttpHandler\"\nurl = \"https://{}/hook\"\nssl_config = \"corp\"\nretries = 0\n[ssl.corp]\n{ssl}\n",
        server.addr
    )
}

/// Starts a daemon after the PEM files are written next to its config.
fn daemon_with_files(server: &HttpServer, files: &[(&str, &str)], ssl: &str) -> Daemon {
    let staging = tempfile::tempdir().unwrap();
    for (name, text) in files {
        write(staging.path(), name, text);
    }
    let ssl = ssl.replace("DIR", &staging.path().display().to_string());
    let daemon = Daemon::start(&tls_config(server, &ssl));
    std::mem::forget(staging); // lives as long as the test process
    daemon
}

#[test]
fn mutual_tls_with_the_client_certificate_delivers() {
    let ca = authority("server CA");
    let client_ca = authority("client CA");
    let server = mtls_server(&ca, &client_ca);
    let client = leaf(&client_ca, &["jobhook-client"]);
    let daemon = daemon_with_files(
        &server,
        &[
            ("ca.pem", &ca.pem),
            ("client.pem", &client.cert_pem),
            ("client.key", &client.key_pem),
        ],
        "ca_file = \"DIR/ca.pem\"\nclient_cert = \"DIR/client.pem\"\nclient_key = \"DIR/client.key\"\nmin_tls_version = \"1.2\"",
    );
    daemon.send(&[r#"{"Id":"over-tls"}"#]);
    let request = &server.wait_for(1)[0];
    assert_eq!(request.json()["Id"], "over-tls");
}

#[test]
fn without_the_client_certificate_the_server_refuses() {
    let ca = authority("server CA");
    let client_ca = authority("client CA");
    let server = mtls_server(&ca, &client_ca);
    let daemon = daemon_with_files(
        &server,
        &[("ca.pem", &ca.pem)],
        "ca_file = \"DIR/ca.pem\"\nca_only = true",
    );
    daemon.send(&[r#"{"Id":"no-cert"}"#]);
    let line = daemon.log_line("no retries left");
    assert!(
        line.contains("CertificateRequired") && line.contains("[ssl.corp]"),
        "{line}"
    );
    assert!(server.requests().is_empty());
}

#[test]
fn a_server_from_another_ca_is_refused_naming_the_ssl_section() {
    let ca = authority("server CA");
    let client_ca = authority("client CA");
    let other = authority("some other CA");
    let server = mtls_server(&ca, &client_ca);
    let client = leaf(&client_ca, &["jobhook-client"]);
    let daemon = daemon_with_files(
        &server,
        &[
            ("other.pem", &other.pem),
            ("client.pem", &client.cert_pem),
            ("client.key", &client.key_pem),
        ],
        "ca_file = \"DIR/other.pem\"\nca_only = true\nclient_cert = \"DIR/client.pem\"\nclient_key = \"DIR/client.key\"",
    );
    daemon.send(&[r#"{"Id":"wrong-ca"}"#]);
    let line = daemon.log_line("no retries left");
    assert!(
        line.contains("[ssl.corp]") && line.to_lowercase().contains("certificate"),
        "{line}"
    );
    assert!(server.requests().is_empty());
}

#[test]
fn unreadable_or_incomplete_ssl_files_are_config_errors_naming_the_section() {
    let server = HttpServer::start();
    let (_dir, config) = config_dir(&tls_config(&server, "ca_file = \"missing.pem\""));
    let output = jobhook(&["check", "-c", config.to_str().unwrap()], None);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text.contains("handler `hook`: [ssl.corp] ca_file") && text.contains("missing.pem"),
        "{text}"
    );

    let (_dir, config) = config_dir(&tls_config(&server, "client_cert = \"c.pem\""));
    let text =
        String::from_utf8_lossy(&jobhook(&["check", "-c", config.to_str().unwrap()], None).stdout)
            .into_owned();
    assert!(
        text.contains("[ssl.corp] client_cert and client_key go together"),
        "{text}"
    );

    let (dir, config) = config_dir(&tls_config(&server, "ca_file = \"junk.pem\""));
    write(dir.path(), "junk.pem", "not a certificate");
    let text =
        String::from_utf8_lossy(&jobhook(&["check", "-c", config.to_str().unwrap()], None).stdout)
            .into_owned();
    assert!(text.contains("no PEM certificate in it"), "{text}");
}

/// rustls cannot use an X.509 v1 certificate (no extensions): `check` names
/// the section, the file, and rustls's reason, not just "builder error".
#[test]
fn a_version_1_client_certificate_is_reported_with_its_file_and_why() {
    let server = HttpServer::start();
    let (dir, config) = config_dir(&tls_config(
        &server,
        "client_cert = \"v1.pem\"\nclient_key = \"v1.key\"",
    ));
    let key = dir.path().join("v1.key");
    let csr = dir.path().join("v1.csr");
    let cert = dir.path().join("v1.pem");
    let openssl = |args: &[&std::ffi::OsStr]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl {args:?}");
    };
    openssl(&[
        "genpkey".as_ref(),
        "-algorithm".as_ref(),
        "EC".as_ref(),
        "-pkeyopt".as_ref(),
        "ec_paramgen_curve:P-256".as_ref(),
        "-out".as_ref(),
        key.as_os_str(),
    ]);
    openssl(&[
        "req".as_ref(),
        "-new".as_ref(),
        "-key".as_ref(),
        key.as_os_str(),
        "-subj".as_ref(),
        "/CN=client".as_ref(),
        "-out".as_ref(),
        csr.as_os_str(),
    ]);
    // `x509 -req` without extensions makes a version 1 certificate.
    openssl(&[
        "x509".as_ref(),
        "-req".as_ref(),
        "-in".as_ref(),
        csr.as_os_str(),
        "-signkey".as_ref(),
        key.as_os_str(),
        "-days".as_ref(),
        "2".as_ref(),
        "-out".as_ref(),
        cert.as_os_str(),
    ]);
    let output = jobhook(&["check", "-c", config.to_str().unwrap()], None);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("handler `hook`: [ssl.corp] client_cert")
            && text.contains(&cert.display().to_string())
            && text.contains("version 1"),
        "{text}"
    );
}
