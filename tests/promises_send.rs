//! Issue 16 item 14, `jobhook send` and a secret `url`: replies kept when
//! the daemon goes away, any input in bounded memory, a URL that carries a
//! token read from the environment. Each through the real binary.

#![cfg(unix)] // Drives the Unix socket; the Windows pipe shares its protocol code.

mod util;

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::JoinHandle;

use util::http::{HttpServer, Reply};
use util::*;

/// A stand-in daemon on a Unix socket in `dir`: reads every line of one
/// connection, answers the first `answers` non-blank lines as accepted
/// (as they arrive), calls `at_end` once the client has sent everything,
/// then closes. Returns how many lines it read.
fn fake_daemon(
    dir: &Path,
    answers: usize,
    at_end: impl FnOnce() + Send + 'static,
) -> (PathBuf, JoinHandle<usize>) {
    let socket = dir.join("fake.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let serving = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut replies = BufWriter::new(stream.try_clone().unwrap());
        let mut read = 0;
        for line in BufReader::new(stream).lines() {
            if line.unwrap().trim().is_empty() {
                continue;
            }
            read += 1;
            if read <= answers {
                writeln!(replies, r#"{{"ok":true,"id":"e{read}"}}"#).unwrap();
            }
        }
        at_end();
        replies.flush().unwrap();
        read
    });
    (socket, serving)
}

#[test]
fn send_prints_the_replies_it_got_when_the_daemon_closes_early() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, serving) = fake_daemon(dir.path(), 2, || ());
    let output = jobhook(
        &["send", "--socket", socket.to_str().unwrap()],
        Some("{\"Id\":\"a\"}\n{\"Id\":\"b\"}\n{\"Id\":\"c\"}\n"),
    );
    assert_eq!(serving.join().unwrap(), 3);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [r#"{"ok":true,"id":"e1"}"#, r#"{"ok":true,"id":"e2"}"#],
        "{stderr}"
    );
    assert!(
        stderr.contains("the daemon closed the connection after 2 replies to 3 events"),
        "{stderr}"
    );
    assert_eq!(output.status.code(), Some(3), "{stderr}");
}

/// Peak resident memory of a running process, in KiB. (Not `ru_maxrss`:
/// a child spawned with `vfork` inherits its parent's.)
fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .unwrap();
    line.trim().trim_end_matches("kB").trim().parse().unwrap()
}

#[test]
fn send_streams_a_large_input_in_bounded_memory() {
    const EVENTS: usize = 40_000;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.ndjson");
    let mut file = BufWriter::new(std::fs::File::create(&input).unwrap());
    let padding = "x".repeat(1000);
    for i in 0..EVENTS {
        writeln!(file, r#"{{"Id":"e{i}","N":1.10,"Note":"{padding}"}}"#).unwrap();
    }
    file.flush().unwrap();
    drop(file);
    let size = std::fs::metadata(&input).unwrap().len();
    // Measured once `send` has sent everything, before its last replies.
    let (pid_tx, pid_rx) = std::sync::mpsc::channel();
    let (peak_tx, peak_rx) = std::sync::mpsc::channel();
    let (socket, serving) = fake_daemon(dir.path(), EVENTS, move || {
        peak_tx.send(peak_kib(pid_rx.recv().unwrap())).unwrap();
    });
    let replies = std::fs::File::create(dir.path().join("replies")).unwrap();
    let mut child = Command::new(BIN)
        .args(["send", "--phase", "OnStart", "--socket"])
        .args([&socket, &input])
        .stdin(Stdio::null())
        .stdout(replies)
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    pid_tx.send(child.id()).unwrap();
    assert!(child.wait().unwrap().success());
    let peak_kib = peak_rx.recv().unwrap();
    assert_eq!(serving.join().unwrap(), EVENTS);
    assert_eq!(lines(&dir.path().join("replies")).len(), EVENTS);
    // Before: the whole input several times over (5 × 40 MB).
    assert!(
        peak_kib < 32 << 10,
        "peak {peak_kib} KiB for {size} bytes of input"
    );
}

const SECRET_URL: &str = "\n[hooks]\nOnFinish = [\"itsm\"]\n\n[handlers.itsm]\nlibrary = \"HttpHandler\"\nurl = { env = \"ITSM_URL\" }\nretries = 0\n";

#[test]
fn a_url_from_the_environment_delivers_and_its_token_stays_secret() {
    let server = HttpServer::start();
    server.script([Reply::status(400)]);
    let url = server.url("/hook/s3cr3t-p4th?token=s3cr3t-t0ken&tenant={ClientMachine}");
    let env = format!("ITSM_URL={url}");
    let daemon = Daemon::start_under(&["env", &env], SECRET_URL, &[]);
    let config = daemon.config.to_str().unwrap().to_owned();
    daemon.send(&[r#"{"Id":"refused","ClientMachine":"web01"}"#]);
    let line = daemon.log_line("failed permanently");
    assert!(line.contains("<url from ITSM_URL>"), "{line}");
    daemon.send(&[r#"{"Id":"delivered","ClientMachine":"web02"}"#]);
    let requests = server.wait_for(2);
    assert_eq!(
        requests[1].target,
        "/hook/s3cr3t-p4th?token=s3cr3t-t0ken&tenant=web02"
    );
    // The failure is logged before its dead letter is committed.
    let mut letters = String::new();
    eventually("the dead letter", || {
        let listed = jobhook(&["deadletter", "list", "--json", "-c", &config], None);
        letters = String::from_utf8_lossy(&listed.stdout).into_owned();
        letters.contains("<url from ITSM_URL>")
    });
    assert!(!letters.contains("s3cr3t") && !daemon.log().contains("s3cr3t"));
}

#[test]
fn check_validates_a_url_from_the_environment_without_printing_it() {
    let (_dir, config) = config_dir(SECRET_URL);
    let check = |url: Option<&str>| {
        let mut command = Command::new(BIN);
        command.args(["check", "-c"]).arg(&config);
        match url {
            Some(url) => command.env("ITSM_URL", url),
            None => command.env_remove("ITSM_URL"),
        };
        let output = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        (output.status.code(), stdout)
    };
    let (code, text) = check(Some("https://itsm.example.com/api/{JobId}?token=s3cr3t"));
    assert_eq!(code, Some(0), "{text}");
    for (url, problem) in [
        (
            Some("ftp://itsm.example.com/s3cr3t"),
            "is not an http:// or https:// URL",
        ),
        (
            Some("https://itsm.example.com/{Job/s3cr3t"),
            "invalid placeholder",
        ),
        (Some("https://itsm.example.com/../s3cr3t"), "path segment"),
        (None, "environment variable ITSM_URL is not set"),
    ] {
        let (code, text) = check(url);
        assert_eq!(code, Some(1), "{text}");
        assert!(text.contains(problem), "{url:?}: {text}");
        assert!(text.contains("url"), "{text}");
        assert!(!text.contains("s3cr3t"), "{text}");
    }
}
