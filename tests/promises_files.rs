//! Issue 16, item 5, through the real binary: a file that does not answer
//! (a FIFO nobody reads, an open that hangs, a log file that takes no more
//! lines) costs only what writes to it. Other events are acked and handled,
//! the attempt fails at its `timeout`, SIGTERM still stops the daemon within
//! `shutdown_timeout`, and a second SIGTERM stops it at once, the events
//! left in the spool.

#![cfg(unix)] // Drives the Unix socket, FIFOs and signals.

mod util;

use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use util::*;

/// Sends events with the given ids and phase, asserting each is acked within
/// a few seconds. Events without a `JobId` go to the workers in turn.
fn send_promptly(daemon: &Daemon, phase: &str, ids: &[String]) {
    let lines: Vec<String> = ids
        .iter()
        .map(|id| format!(r#"{{"Id":"{id}","Phase":"{phase}"}}"#))
        .collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let sent = Instant::now();
    let replies = daemon.send(&refs);
    assert!(replies.iter().all(reply_ok), "{replies:?}");
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "acks took {:?}",
        sent.elapsed()
    );
}

fn ids(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i}")).collect()
}

#[test]
fn a_fifo_as_file_path_is_refused_and_every_other_event_goes_on() {
    let mut daemon = Daemon::start(&blocked_then_audit("fifo", "1s", "2s"));
    mkfifo(&daemon.path("out/fifo.log"));
    // Enough events for every worker, and every runtime thread, to meet the FIFO.
    send_promptly(&daemon, "OnFinish", &ids("fifo", 16));
    send_promptly(&daemon, "OnStart", &ids("other", 16));
    wait_for_lines(&daemon.path("out/audit.log"), 32);
    let gave_up = daemon.log_line("no retries left");
    assert!(
        gave_up.contains("fifo.log is not a regular file (it is a FIFO)"),
        "{gave_up}"
    );
    daemon.stop_within(Duration::from_secs(5));
}

/// A file whose opens wait for an answer that never comes, as behind an
/// on-access scanner that hangs (fanotify `FAN_OPEN_PERM`). `None` without
/// the privilege fanotify needs (CAP_SYS_ADMIN).
#[cfg(target_os = "linux")]
struct HungOpens {
    fanotify: std::os::fd::OwnedFd,
}

#[cfg(target_os = "linux")]
impl HungOpens {
    fn on(path: &Path) -> Option<HungOpens> {
        use std::os::fd::FromRawFd;
        use std::os::unix::ffi::OsStrExt;
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "").unwrap();
        let flags = libc::FAN_CLASS_CONTENT | libc::FAN_CLOEXEC | libc::FAN_NONBLOCK;
        // SAFETY: plain system calls; the descriptor is owned from here on.
        let fd = unsafe { libc::fanotify_init(flags, libc::O_RDONLY as u32) };
        if fd < 0 {
            eprintln!(
                "skipped: fanotify_init: {} (needs CAP_SYS_ADMIN)",
                std::io::Error::last_os_error()
            );
            return None;
        }
        let fanotify = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        let marked = unsafe {
            libc::fanotify_mark(
                fd,
                libc::FAN_MARK_ADD,
                libc::FAN_OPEN_PERM,
                libc::AT_FDCWD,
                path.as_ptr(),
            )
        };
        assert_eq!(marked, 0, "{}", std::io::Error::last_os_error());
        Some(HungOpens { fanotify })
    }

    /// Waits until some process is held in an open of the file.
    fn wait_for_an_open(&self) {
        use std::os::fd::AsRawFd;
        let mut buffer = [0u8; 4096];
        eventually("an open of the file", || {
            // SAFETY: reads into a buffer of the given length.
            let read = unsafe {
                libc::read(
                    self.fanotify.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                )
            };
            read > 0
        });
    }
}

/// `out/NAME.log` (which a test makes block or refuse writes), retried once,
/// then an audit file that every event reaches.
fn blocked_then_audit(name: &str, timeout: &str, shutdown_timeout: &str) -> String {
    format!(
        r#"
[daemon]
shutdown_timeout = "{shutdown_timeout}"

[hooks]
OnStart = ["audit"]
OnFinish = ["{name}", "audit"]

[handlers.{name}]
library = "TextFileHandler"
file_path = "out/{name}.log"
retries = 1
retry_interval = "50ms"
timeout = "{timeout}"

[handlers.audit]
library = "TextFileHandler"
file_path = "out/audit.log"
"#
    )
}

#[cfg(target_os = "linux")]
#[test]
fn a_hung_open_fails_at_the_timeout_then_at_once_and_other_events_go_on() {
    let mut daemon = Daemon::start(&blocked_then_audit("hung", "500ms", "30s"));
    let Some(hung) = HungOpens::on(&daemon.path("out/hung.log")) else {
        return;
    };
    send_promptly(&daemon, "OnFinish", &["first".to_owned()]);
    hung.wait_for_an_open();
    send_promptly(&daemon, "OnStart", &ids("other", 16));
    let timed_out = daemon.log_line("attempt failed");
    assert!(timed_out.contains("timed out after 500ms"), "{timed_out}");
    // The retry does not queue behind the open that hangs.
    let gave_up = daemon.log_line("no retries left");
    assert!(
        gave_up.contains("the previous write to") && gave_up.contains("hung.log has not finished"),
        "{gave_up}"
    );
    // The chain went on past the dead letter.
    wait_for_lines(&daemon.path("out/audit.log"), 17);
    daemon.stop_within(Duration::from_secs(5));
}

#[cfg(target_os = "linux")]
#[test]
fn sigterm_exits_within_shutdown_timeout_with_an_open_hung_and_the_event_stays_spooled() {
    let mut daemon = Daemon::start(&blocked_then_audit("hung", "60s", "1s"));
    let Some(hung) = HungOpens::on(&daemon.path("out/hung.log")) else {
        return;
    };
    send_promptly(&daemon, "OnFinish", &["held".to_owned()]);
    hung.wait_for_an_open();
    daemon.stop_within(Duration::from_secs(4));
    daemon.log_line("shutdown_timeout passed");
    // The file answers again; the next start writes the event.
    drop(hung);
    daemon.restart();
    let written = wait_for_lines(&daemon.path("out/hung.log"), 1);
    assert!(written[0].contains(r#""Id":"held""#), "{written:?}");
}

/// Waits for a connection from the daemon and keeps it open, unanswered.
fn accept(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let mut accepted = None;
    eventually("a connection from the daemon", || {
        accepted = listener.accept().ok().map(|(stream, _)| stream);
        accepted.is_some()
    });
    accepted.unwrap()
}

#[test]
fn a_second_sigterm_during_a_long_shutdown_exits_at_once_leaving_the_event_spooled() {
    // A server that takes connections and never answers holds the event in
    // its handler for the whole (long) shutdown_timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let config = format!(
        r#"
[daemon]
shutdown_timeout = "60s"

[hooks]
OnFinish = ["silent"]

[handlers.silent]
library = "HttpHandler"
url = "http://{}/"
timeout = "60s"
"#,
        silent.local_addr().unwrap()
    );
    let mut daemon = Daemon::start(&config);
    send_promptly(&daemon, "OnFinish", &["held".to_owned()]);
    let _first = accept(&silent);
    daemon.signal("TERM");
    daemon.log_line("finishing accepted events");
    std::thread::sleep(Duration::from_millis(300));
    daemon.signal("TERM");
    let asked = Instant::now();
    let status = daemon.wait();
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(status.code(), Some(1), "{}", daemon.log());
    daemon.log_line("second stop signal: exiting now; events stay in the spool");
    // The event is still there: the next start delivers it again.
    daemon.restart();
    let _second = accept(&silent);
}

#[test]
fn a_log_file_that_takes_no_more_lines_does_not_freeze_the_daemon() {
    // The daemon's log file is a FIFO this test opens and never reads: the
    // log writer blocks once the pipe is full, as on a stalled disk.
    let logs = tempfile::tempdir().unwrap();
    let log_file = logs.path().join("jobhook.log");
    mkfifo(&log_file);
    let _reader = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&log_file)
        .unwrap();
    let config = format!(
        r#"
[log]
dir = "{}"
rotation = "never"

[hooks]
OnStart = ["chatty"]
OnFinish = ["audit"]

[handlers.chatty]
library = "LuaHandler"
lua_script = "chatty.lua"
timeout = "60s"

[handlers.audit]
library = "TextFileHandler"
file_path = "out/audit.log"
"#,
        logs.path().display()
    );
    // More lines than the log writer's buffer (128,000) holds.
    let chatty = "function handle(e) for i = 1, 140000 do log.info('line ' .. i) end end";
    let mut daemon = Daemon::start_with(&config, &[("scripts/chatty.lua", chatty)]);
    send_promptly(&daemon, "OnStart", &["chatty".to_owned()]);
    daemon.log_line("line 140000");
    send_promptly(&daemon, "OnFinish", &ids("after", 4));
    wait_for_lines(&daemon.path("out/audit.log"), 4);
    daemon.stop_within(Duration::from_secs(5));
    daemon.log_line("log lines were not written to the log files: their disk did not keep up");
}
