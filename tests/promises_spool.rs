//! Issue 14, "nothing acked is lost, nothing hangs", for the spool, through
//! the real binary: one daemon per spool, replays that cannot run keep their
//! dead letter, dedupe ids outside the pending budget, `jobhook deadletter`
//! refusing what it cannot do.

#![cfg(unix)] // Drives the Unix socket and signals.

mod util;

use std::process::Output;
use std::time::Duration;

use util::http::{HttpServer, Reply};
use util::*;

const FILE_HANDLER: &str = "[hooks]\nOnFinish = [\"file\"]\n[handlers.file]\n\
                            library = \"TextFileHandler\"\nfile_path = \"out/events.log\"\n";

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
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
    let output = run_expecting_exit(&[], &second).expect("the second daemon kept running");
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

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// An HTTP handler `itsm` (with `extra` settings) whose first request is
/// refused for good, so the first event becomes a dead letter.
fn itsm_config(server: &HttpServer, hooks: &str, extra: &str) -> String {
    format!(
        "[hooks]\nOnFinish = [{hooks}]\n\
         [handlers.itsm]\nlibrary = \"HttpHandler\"\nurl = \"{}\"\n{extra}",
        server.url("/tickets")
    )
}

fn log_count(daemon: &Daemon, needle: &str) -> usize {
    daemon
        .log()
        .lines()
        .filter(|line| line.contains(needle))
        .count()
}

/// Replaces the config (on the same socket) and waits until the daemon
/// runs on it.
fn reload(daemon: &Daemon, config: &str) {
    let before = log_count(daemon, "config reloaded");
    let text = format!("[daemon]\nsocket = \"run/jobhook.sock\"\n{config}");
    std::fs::write(&daemon.config, text).unwrap();
    daemon.signal("HUP");
    eventually("the reload", || {
        log_count(daemon, "config reloaded") > before
    });
}

fn dead_letters(config: &str) -> Vec<serde_json::Value> {
    let listed = jobhook(&["deadletter", "list", "--json", "-c", config], None);
    assert!(listed.status.success(), "{}", stderr(&listed));
    serde_json::from_str::<serde_json::Value>(&stdout(&listed))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_replay_whose_handler_does_not_take_the_event_keeps_the_dead_letter_and_says_why() {
    let server = HttpServer::start();
    server.script([Reply::status(400)]);
    let daemon = Daemon::start(&itsm_config(&server, "\"itsm\"", ""));
    let config = daemon.config.to_str().unwrap().to_owned();
    daemon.send(&[r#"{"Id":"refused","JobResult":"Success"}"#]);
    eventually("the dead letter", || dead_letters(&config).len() == 1);

    // The handler disabled, filtered out, then gone from the chain: each
    // replay is refused by the running daemon, which keeps the letter.
    let file = "[handlers.file]\nlibrary = \"TextFileHandler\"\nfile_path = \"out/events.log\"\n";
    let cases = [
        (
            itsm_config(&server, "\"itsm\"", "enabled = false\n"),
            "it is disabled (enabled = false)",
        ),
        (
            itsm_config(&server, "\"itsm\"", "results = [\"Failure\"]\n"),
            "its results do not include the event's JobResult",
        ),
        (
            format!("{}{file}", itsm_config(&server, "\"file\"", "")),
            "it is not in the OnFinish chain",
        ),
    ];
    for (round, (changed, why)) in cases.iter().enumerate() {
        reload(&daemon, changed);
        let replay = jobhook(&["deadletter", "replay", "--all", "-c", &config], None);
        assert!(
            stdout(&replay).contains("1 dead letter(s) marked"),
            "{}",
            stdout(&replay)
        );
        let line = daemon.log_line(why);
        assert!(
            line.contains("itsm") && line.contains("dead letter is kept"),
            "{line}"
        );
        assert_eq!(log_count(&daemon, "replay not run"), round + 1);
        let letters = dead_letters(&config);
        assert_eq!(letters.len(), 1, "{letters:?}");
        assert_eq!(letters[0]["event"]["Id"], "refused");
    }
    assert_eq!(server.requests().len(), 1);

    // Back in the chain, the replay runs and the letter goes.
    reload(&daemon, &itsm_config(&server, "\"itsm\"", ""));
    let replay = jobhook(&["deadletter", "replay", "--all", "-c", &config], None);
    assert!(replay.status.success(), "{}", stderr(&replay));
    assert_eq!(server.wait_for(2)[1].json()["Id"], "refused");
    eventually("the dead letter to go", || dead_letters(&config).is_empty());
}

#[test]
fn replaying_unknown_ids_is_refused_naming_them_and_marks_nothing() {
    let server = HttpServer::start();
    server.script([Reply::status(400)]);
    let daemon = Daemon::start(&itsm_config(&server, "\"itsm\"", ""));
    let config = daemon.config.to_str().unwrap().to_owned();
    daemon.send(&[r#"{"Id":"refused"}"#]);
    eventually("the dead letter", || dead_letters(&config).len() == 1);
    let id = dead_letters(&config)[0]["id"].to_string();

    let replay = jobhook(
        &["deadletter", "replay", &id, "999999", "-c", &config],
        None,
    );
    assert_eq!(replay.status.code(), Some(1), "{}", stdout(&replay));
    assert!(
        stderr(&replay).contains("no dead letter 999999; nothing marked"),
        "{}",
        stderr(&replay)
    );
    let other = jobhook(
        &[
            "deadletter",
            "replay",
            &id,
            "--handler",
            "pager",
            "-c",
            &config,
        ],
        None,
    );
    assert_eq!(other.status.code(), Some(1));
    assert!(
        stderr(&other).contains(&format!("no dead letter {id} of handler `pager`")),
        "{}",
        stderr(&other)
    );
    // Nothing was marked: the server (which accepts now) hears nothing.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(server.requests().len(), 1);
    assert_eq!(dead_letters(&config).len(), 1);
}

/// Sends `count` events whose `Id`s are `prefix` padded to 120 bytes, in
/// batches, each batch handled before the next; every one must be acked.
fn send_long_ids(daemon: &Daemon, prefix: &str, count: usize) {
    let log = daemon.path("out/events.log");
    let already = lines(&log).len();
    for batch in 0..count.div_ceil(50) {
        let events: Vec<String> = (batch * 50..count.min(batch * 50 + 50))
            .map(|i| format!(r#"{{"Id":"{prefix}{i:0>110}"}}"#))
            .collect();
        let refs: Vec<&str> = events.iter().map(String::as_str).collect();
        for reply in daemon.send(&refs) {
            assert!(reply_ok(&reply), "event {batch}: {reply}");
        }
        wait_for_lines(&log, already + batch * 50 + refs.len());
    }
}

#[test]
fn ids_kept_for_dedupe_do_not_fill_the_spool() {
    // 600 ids of 120 bytes, kept for dedupe_window, take more than the
    // 64 KiB max_spool_bytes; the events themselves are all handled.
    let daemon = Daemon::start(&format!(
        "[daemon]\nmax_spool_bytes = \"64KiB\"\nmax_event_bytes = \"16KiB\"\n{FILE_HANDLER}"
    ));
    send_long_ids(&daemon, "id", 600);
    // Past the next measure of the spool (once a second), with nothing
    // pending, new events are still accepted.
    std::thread::sleep(Duration::from_millis(2500));
    let reply = daemon.send(&[r#"{"Id":"probe"}"#]);
    assert!(reply_ok(&reply[0]), "{reply:?}");
    assert!(!daemon.log().contains("QueueFull"), "{}", daemon.log());
}

#[test]
fn ids_beyond_max_dedupe_bytes_are_forgotten_oldest_first() {
    let daemon = Daemon::start(&format!(
        "[daemon]\nmax_dedupe_bytes = \"4KiB\"\n{FILE_HANDLER}"
    ));
    assert!(reply_ok(&daemon.send(&[r#"{"Id":"first"}"#])[0]));
    send_long_ids(&daemon, "id", 100);
    daemon.log_line("the oldest are forgotten early");
    // The oldest id is forgotten: its resend is handled again; the newest
    // is still a duplicate.
    let first = daemon.send(&[r#"{"Id":"first"}"#]);
    assert!(
        reply_ok(&first[0]) && first[0].get("duplicate").is_none(),
        "{first:?}"
    );
    let newest = format!("id{:0>110}", 99);
    let last = daemon.send(&[&format!(r#"{{"Id":"{newest}"}}"#)]);
    assert_eq!(last[0]["duplicate"], true, "{last:?}");
    let log = wait_for_lines(&daemon.path("out/events.log"), 102);
    let firsts = log.iter().filter(|line| line.contains(r#""Id":"first""#));
    assert_eq!(firsts.count(), 2);
}

/// Issue 16 item 2: a retry waiting for a handler that a reload, or a
/// restart on another config, removes is kept as a dead letter with a
/// warning naming the handler and the event; the rest of the chain runs.
#[test]
fn a_pending_retry_of_a_removed_handler_becomes_a_dead_letter_with_a_warning() {
    let server = HttpServer::start();
    server.script([Reply::status(503), Reply::status(503)]);
    let file = "[handlers.file]\nlibrary = \"TextFileHandler\"\nfile_path = \"out/events.log\"\n";
    let retrying = format!(
        "{}{file}",
        itsm_config(
            &server,
            "\"itsm\", \"file\"",
            "retries = 3\nretry_interval = \"3s\"\n"
        )
    );
    let without_itsm = format!("[hooks]\nOnFinish = [\"file\"]\n{file}");
    let mut daemon = Daemon::start(&retrying);
    let config = daemon.config.to_str().unwrap().to_owned();
    let log = daemon.path("out/events.log");

    // Removed by a reload while the retry waits.
    daemon.send(&[r#"{"Id":"reloaded"}"#]);
    server.wait_for(1);
    daemon.log_line("attempt failed");
    reload(&daemon, &without_itsm);
    let line = daemon.log_line("handler removed");
    assert!(line.contains("itsm") && line.contains("reloaded"), "{line}");
    wait_for_lines(&log, 1);

    // Removed by a restart on a config without it.
    reload(&daemon, &retrying);
    daemon.send(&[r#"{"Id":"restarted"}"#]);
    server.wait_for(2);
    eventually("the second failure", || {
        log_count(&daemon, "attempt failed") == 2
    });
    assert!(daemon.stop().success());
    let text = format!("[daemon]\nsocket = \"run/jobhook.sock\"\n{without_itsm}");
    std::fs::write(&daemon.config, text).unwrap();
    daemon.restart();
    eventually("the second warning", || {
        log_count(&daemon, "handler removed") == 2
    });
    wait_for_lines(&log, 2);

    // The dead letter is committed with the spool's next group, which may
    // come after the file's line.
    let mut letters = Vec::new();
    eventually("both dead letters", || {
        letters = dead_letters(&config);
        letters.len() == 2
    });
    let ids: Vec<&str> = letters
        .iter()
        .map(|letter| letter["event"]["Id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["reloaded", "restarted"], "{letters:?}");
    for letter in &letters {
        assert_eq!(letter["handler"], "itsm");
        let error = letter["error"].as_str().unwrap();
        assert!(error.starts_with("handler removed"), "{error}");
    }
    assert_eq!(server.requests().len(), 2);
}

/// Issue 16 item 4: a write-ahead log lost after a crash is not taken for
/// an empty spool: the start stops, naming the log and what to do. Listing
/// dead letters after a crash (SQLite folds the log in when it closes the
/// spool) is not taken for a loss.
#[test]
fn a_lost_write_ahead_log_after_a_crash_stops_the_start_naming_it() {
    let server = HttpServer::start();
    server.script([Reply::status(503)]);
    let mut daemon = Daemon::start(&itsm_config(
        &server,
        "\"itsm\"",
        "retries = 3\nretry_interval = \"1h\"\n",
    ));
    let config = daemon.config.to_str().unwrap().to_owned();
    daemon.send(&[r#"{"Id":"waiting"}"#]);
    server.wait_for(1);
    daemon.log_line("attempt failed");
    std::thread::sleep(Duration::from_millis(500));

    daemon.kill();
    assert!(dead_letters(&config).is_empty());
    daemon.restart();
    let line = daemon.log_line("resuming events left in the spool");
    assert!(line.contains("events=1"), "{line}");

    daemon.kill();
    for file in ["spool.db-wal", "spool.db-shm"] {
        std::fs::remove_file(daemon.path("var/spool").join(file)).unwrap();
    }
    let output = run_expecting_exit(&[], &daemon.config).expect("started without its log");
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    let wal = daemon.path("var/spool/spool.db-wal");
    assert!(
        message.contains(&format!("{} is missing", wal.display()))
            && message.contains("did not stop cleanly"),
        "{message}"
    );
}

/// A start that opened the spool and then could not bind its socket (exit
/// 2) closed the spool without marking its run stopped and let SQLite
/// delete the log: every later start refused with "write-ahead log lost".
#[test]
fn a_start_that_could_not_bind_does_not_stop_the_next_one() {
    let mut daemon = Daemon::start(FILE_HANDLER);
    daemon.stop();
    let text = std::fs::read_to_string(&daemon.config).unwrap();
    std::fs::create_dir_all(daemon.path("not-a-socket")).unwrap();
    std::fs::write(
        &daemon.config,
        text.replace("run/jobhook.sock", "not-a-socket"),
    )
    .unwrap();
    let output = run_expecting_exit(&[], &daemon.config).expect("the start ends");
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    std::fs::write(&daemon.config, text).unwrap();
    daemon.restart();
    assert!(reply_ok(&daemon.send(&[r#"{"Id":"after"}"#])[0]));
    assert!(daemon.stop().success(), "{}", daemon.log());
}

/// Review finding: a retry waiting for a handler that a reload then
/// disabled (or whose filters no longer match) ended silently.
#[test]
fn a_pending_retry_of_a_disabled_handler_becomes_a_dead_letter_with_a_warning() {
    let server = HttpServer::start();
    server.script([Reply::status(503)]);
    let file = "[handlers.file]\nlibrary = \"TextFileHandler\"\nfile_path = \"out/events.log\"\n";
    let retrying = |extra: &str| {
        format!(
            "{}{file}",
            itsm_config(
                &server,
                "\"itsm\", \"file\"",
                &format!("retries = 3\nretry_interval = \"2s\"\n{extra}")
            )
        )
    };
    let daemon = Daemon::start(&retrying(""));
    let config = daemon.config.to_str().unwrap().to_owned();
    daemon.send(&[r#"{"Id":"disabled"}"#]);
    server.wait_for(1);
    daemon.log_line("attempt failed");
    reload(&daemon, &retrying("enabled = false\n"));
    let line = daemon.log_line("now skips the event");
    assert!(line.contains("itsm") && line.contains("disabled"), "{line}");
    wait_for_lines(&daemon.path("out/events.log"), 1);
    let letters = dead_letters(&config);
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["handler"], "itsm");
    assert!(
        letters[0]["error"]
            .as_str()
            .unwrap()
            .contains("handler `itsm` now skips the event"),
        "{letters:?}"
    );
    assert_eq!(server.requests().len(), 1);
}
