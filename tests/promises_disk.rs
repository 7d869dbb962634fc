//! Issue 16, "delivery that survives failing disks", through the real
//! binary on real file systems (a tmpfs, an ext4 image): a spool that cannot
//! be written for a moment loses nothing and says why; a spool that cannot
//! be written at all is refused at start, naming the cause. Mounting, and
//! running the daemon as another user, need root: where they are refused,
//! each test says so and skips.

#![cfg(target_os = "linux")] // mount, chattr.

mod util;

use std::time::Duration;

use util::disk::{Disk, Kind, chattr};
use util::http::{HttpServer, Reply};
use util::*;

/// A daemon whose spool is on `disk`, with an HTTP handler `itsm` that
/// gives up on a request after a second and retries a second later.
fn start_on(disk: &Disk, server: &HttpServer) -> Daemon {
    Daemon::start(&format!(
        "[daemon]\nspool_dir = \"{}\"\nmax_event_bytes = \"4MiB\"\n[hooks]\nOnFinish = [\"itsm\"]\n\
         [handlers.itsm]\nlibrary = \"HttpHandler\"\nurl = \"{}\"\n\
         timeout = \"1s\"\nretries = 3\nretry_interval = \"1s\"\n",
        disk.path().join("spool").display(),
        server.url("/tickets")
    ))
}

/// Item 1: the retry an HTTP failure schedules while the spool's commits
/// fail (`break_disk` .. `mend`) is written once they succeed again, and
/// runs; the failure is logged with its cause, and new events are refused
/// with it.
fn a_retry_survives_failed_commits(
    kind: Kind,
    break_disk: impl FnOnce(&Disk) -> Box<dyn FnOnce()>,
    cause: &str,
) {
    let Some(disk) = Disk::mount(kind, "8m") else {
        return;
    };
    let server = HttpServer::start();
    server.script([Reply::Hang]);
    let daemon = start_on(&disk, &server);
    assert!(reply_ok(&daemon.send(&[r#"{"Id":"kept"}"#])[0]));
    server.wait_for(1);
    let mend = break_disk(&disk);
    // The attempt times out; its retry cannot be committed.
    daemon.log_line("attempt failed");

    let line = daemon.log_line("the spool cannot be written");
    assert!(line.contains(cause), "{line}");
    // Item 12: new events are refused naming the cause, not "full": a
    // small one (its commit fails), a large one (its statement fails, as it
    // does not fit SQLite's cache).
    let large = format!(r#"{{"Id":"large","Padding":"{}"}}"#, "x".repeat(3 << 20));
    for refused in daemon.send(&[r#"{"Id":"small"}"#, &large]) {
        assert_eq!(code(&refused), "overloaded", "{refused}");
        let error = refused["error"].as_str().unwrap();
        assert!(
            error.starts_with(&format!("the spool cannot be written: {cause}")),
            "{error}"
        );
    }
    std::thread::sleep(Duration::from_millis(1500));
    mend();
    let requests = server.wait_for(2);
    assert_eq!(requests[1].json()["Id"], "kept");
    daemon.log_line("the spool can be written again");
    assert!(reply_ok(&daemon.send(&[r#"{"Id":"after"}"#])[0]));
    server.wait_for(3);
}

#[test]
fn a_retry_scheduled_while_the_spool_is_full_runs_once_there_is_room() {
    a_retry_survives_failed_commits(
        Kind::Tmpfs,
        |disk| {
            let ballast = disk.fill();
            Box::new(move || std::fs::remove_file(ballast).unwrap())
        },
        "database or disk is full",
    );
}

#[test]
fn a_retry_scheduled_while_the_wal_is_immutable_runs_once_it_is_not() {
    a_retry_survives_failed_commits(
        Kind::Ext4,
        |disk| {
            let wal = disk.path().join("spool/spool.db-wal");
            chattr("+i", &wal);
            Box::new(move || chattr("-i", &wal))
        },
        "disk I/O error",
    );
}

/// Item 12: a spool that cannot be written — its file immutable, its file
/// system read-only — stops the start with exit code 1 and the cause, not
/// a daemon that refuses every event, nor the advice meant for a damaged
/// file.
#[test]
fn an_unwritable_spool_stops_the_start_naming_the_cause() {
    let Some(disk) = Disk::mount(Kind::Ext4, "8m") else {
        return;
    };
    let server = HttpServer::start();
    let mut daemon = start_on(&disk, &server);
    assert!(reply_ok(&daemon.send(&[r#"{"Id":"one"}"#])[0]));
    server.wait_for(1);
    assert!(daemon.stop().success());

    let spool = disk.path().join("spool/spool.db");
    chattr("+i", &spool);
    let immutable = run_expecting_exit(&[], &daemon.config);
    chattr("-i", &spool);
    disk.remount("ro");
    let read_only = run_expecting_exit(&[], &daemon.config);
    disk.remount("rw");
    for (output, cause) in [
        (immutable, "readonly database"),
        (read_only, "Read-only file system"),
    ] {
        let output = output.expect("the daemon started on a spool it cannot write");
        let message = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{message}");
        assert!(
            message.contains("cannot be written") && message.contains(cause),
            "{message}"
        );
        assert!(!message.contains("move it aside"), "{message}");
    }
    // Writable again, it starts and works.
    daemon.restart();
    assert!(reply_ok(&daemon.send(&[r#"{"Id":"two"}"#])[0]));
    server.wait_for(2);
}

/// Item 12: a `spool.db` owned by another user (root's, the daemon run as
/// `nobody`, everything else open to it) stops the start naming the cause.
#[test]
fn a_spool_owned_by_another_user_stops_the_start_naming_the_cause() {
    let root = std::process::Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&root.stdout).trim() != "0" {
        eprintln!("SKIPPED: running as another user needs root");
        return;
    }
    let mut daemon = Daemon::start(
        "[hooks]\nOnFinish = [\"file\"]\n[handlers.file]\n\
         library = \"TextFileHandler\"\nfile_path = \"out/events.log\"\n",
    );
    assert!(reply_ok(&daemon.send(&[r#"{"Id":"one"}"#])[0]));
    wait_for_lines(&daemon.path("out/events.log"), 1);
    assert!(daemon.stop().success());
    for (path, mode) in [("", 0o755), ("run", 0o777), ("var", 0o755)] {
        set_mode(&daemon.path(path), mode);
    }
    set_mode(&daemon.path("var/spool"), 0o777);
    set_mode(&daemon.path("var/spool/lock"), 0o666);

    let output = run_expecting_exit(&["runuser", "-u", "nobody", "--"], &daemon.config)
        .expect("the daemon started on a spool it cannot write");
    let message = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(
        message.contains("spool.db cannot be written") && message.contains("readonly database"),
        "{message}"
    );
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
