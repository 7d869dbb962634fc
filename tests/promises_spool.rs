//! Issue 14, "nothing acked is lost, nothing hangs", for the spool, through
//! the real binary: one daemon per spool, replays that cannot run keep their
//! dead letter, dedupe ids outside the pending budget, `jobhook deadletter`
//! refusing what it cannot do.

#![cfg(unix)] // Drives the Unix socket and signals.

mod util;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use util::*;

const FILE_HANDLER: &str = "[hooks]\nOnFinish = [\"file\"]\n[handlers.file]\n\
                            library = \"TextFileHandler\"\nfile_path = \"out/events.log\"\n";

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `jobhook run` on `config`, given a few seconds to exit by itself; a
/// daemon still running then is killed and reported as `None`.
fn run_expecting_exit(config: &Path) -> Option<Output> {
    let mut child = Command::new(BIN)
        .args(["run", "-c"])
        .arg(config)
        .env("JOBHOOK_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(child.wait_with_output().unwrap())
}

#[test]
fn a_second_daemon_on_the_same_spool_is_refused_naming_the_lock_and_its_holder() {
    let mut daemon = Daemon::start(FILE_HANDLER);
    // Another config beside it: its own socket, the same spool_dir.
    let second = daemon.path("second.toml");
    std::fs::write(
        &second,
        format!("[daemon]\nsocket = \"run/second.sock\"\n{FILE_HANDLER}"),
    )
    .unwrap();
    let output = run_expecting_exit(&second).expect("the second daemon kept running");
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let message = stderr(&output);
    let lock = daemon.path("var/spool/lock");
    assert!(
        message.contains(&lock.display().to_string())
            && message.contains(&format!("pid {}", daemon.pid())),
        "{message}"
    );

    // The first daemon goes on alone; once killed, its lock goes with it.
    assert!(reply_ok(&daemon.send(&[r#"{"Id":"one"}"#])[0]));
    wait_for_lines(&daemon.path("out/events.log"), 1);
    daemon.kill();
    daemon.restart();
    assert!(reply_ok(&daemon.send(&[r#"{"Id":"two"}"#])[0]));
    wait_for_lines(&daemon.path("out/events.log"), 2);
}

#[test]
fn deadletter_commands_on_a_missing_spool_are_refused_and_create_nothing() {
    let (dir, config) = config_dir(FILE_HANDLER);
    let config = config.to_str().unwrap();
    for args in [
        &["deadletter", "list", "-c", config][..],
        &["deadletter", "replay", "--all", "-c", config],
        &["deadletter", "purge", "-c", config],
    ] {
        let output = jobhook(args, None);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let spool = dir.path().join("var/spool");
        assert!(
            stderr(&output).contains(&format!("no spool at {}", spool.display())),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(!dir.path().join("var").exists(), "{args:?} created it");
    }
}
