//! Issue 22, "hardening", through the real binary: hostile clients cannot
//! make the daemon's memory grow past the bound README states, and a full
//! spool disk refuses events without losing or corrupting any.

#![cfg(target_os = "linux")] // /proc, mount.

mod util;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use util::disk::{Disk, Kind};
use util::http::{HttpServer, Reply};
use util::*;

const MIB: u64 = 1 << 20;

/// The limits of the memory test: small, so that it runs in seconds.
const MAX_CONNECTIONS: u64 = 8;
const MAX_EVENT_BYTES: u64 = 256 << 10;
const QUEUE_CAPACITY: u64 = 16;
const MAX_SPOOL_BYTES: u64 = 64 * MIB;

/// README's bound on the daemon's peak memory ("Limits"), for the limits
/// above (no Lua handler, so no Lua term).
fn stated_bound() -> u64 {
    let budget = (16 * MIB).max(2 * MAX_EVENT_BYTES);
    48 * MIB
        + MAX_CONNECTIONS * (80 * 1024 + 3 * MAX_EVENT_BYTES)
        + 3 * budget
        + 3 * (QUEUE_CAPACITY * MAX_EVENT_BYTES).min(MAX_SPOOL_BYTES)
}

/// The peak resident memory of process `pid` (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|kib| kib.parse().ok())
        .expect("VmHWM in kB");
    kib * 1024
}

/// The CPU time process `pid` has used (user and system).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command's closing parenthesis; utime and stime are
    // the 14th and 15th of the whole line, in clock ticks (100 a second).
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// `count` lines of just under `MAX_EVENT_BYTES`, ids `client-i`.
fn large_lines(client: u64, count: usize) -> Vec<u8> {
    let padding = "x".repeat(MAX_EVENT_BYTES as usize - 100);
    let mut lines = Vec::new();
    for i in 0..count {
        let line = format!(r#"{{"Id":"{client}-{i}","JobType":"Flood","Padding":"{padding}"}}"#);
        assert!(line.len() < MAX_EVENT_BYTES as usize);
        lines.extend_from_slice(line.as_bytes());
        lines.push(b'\n');
    }
    lines
}

/// A client pipelining `count` large lines as fast as the daemon reads
/// them, reading its replies as they come; returns them.
fn flood(socket: &std::path::Path, client: u64, count: usize) -> Vec<serde_json::Value> {
    let stream = UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sending = std::thread::spawn(move || writer.write_all(&large_lines(client, count)));
    let mut replies = Vec::new();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    while replies.len() < count {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "client {client}: the daemon closed after {} replies",
            replies.len()
        );
        replies.push(serde_json::from_str(&line).unwrap());
    }
    sending.join().unwrap().unwrap();
    replies
}

/// `max_connections` clients pipeline lines just under `max_event_bytes`
/// as fast as they can, the endpoint slow enough that the lanes stay full:
/// the daemon's peak memory stays under README's bound, every line gets
/// exactly one reply (acked or `overloaded`), every acked event is
/// delivered, and one client that never reads its replies is cut off at
/// `stall_timeout` without holding the others up.
#[test]
fn hostile_clients_cannot_grow_memory_past_the_stated_bound() {
    let server = HttpServer::start();
    server.otherwise(|_| Reply::After(Duration::from_millis(100), Box::new(Reply::status(200))));
    let daemon = Daemon::start(&format!(
        "[daemon]\nmax_connections = {MAX_CONNECTIONS}\nmax_event_bytes = {MAX_EVENT_BYTES}\n\
         queue_capacity = {QUEUE_CAPACITY}\nmax_spool_bytes = {MAX_SPOOL_BYTES}\n\
         stall_timeout = \"3s\"\nfsync = \"never\"\nworkers = 2\n\
         [hooks]\nOnFinish = [\"itsm\"]\n\
         [handlers.itsm]\nlibrary = \"HttpHandler\"\nurl = \"{}\"\nconcurrency = 4\n",
        server.url("/events")
    ));
    let idle = peak_rss(daemon.pid());

    // The client that never reads: it sends short lines (each answered at
    // once) until its replies fill the socket, and on until it is cut off.
    let deaf = UnixStream::connect(&daemon.socket).unwrap();
    let mut deaf_writer = deaf.try_clone().unwrap();
    let deaf_sending = std::thread::spawn(move || {
        let junk = b"not json\n".repeat(10_000);
        while deaf_writer.write_all(&junk).is_ok() {}
    });

    let started = Instant::now();
    let per_client = 40;
    let clients: Vec<_> = (1..MAX_CONNECTIONS)
        .map(|client| {
            let socket = daemon.socket.clone();
            std::thread::spawn(move || flood(&socket, client, per_client))
        })
        .collect();
    let mut acked = HashSet::new();
    for (client, replies) in (1..).zip(clients) {
        let replies = replies.join().unwrap();
        assert_eq!(replies.len(), per_client);
        for (i, reply) in replies.iter().enumerate() {
            if reply_ok(reply) {
                assert_eq!(reply["id"], format!("{client}-{i}"));
                acked.insert(format!("{client}-{i}"));
            } else {
                assert_eq!(code(reply), "overloaded", "{reply}");
            }
        }
    }
    let flooded = started.elapsed();

    // The deaf client was hung up on: its writes fail (reading before that
    // would take its replies and keep it going), and reading its socket
    // then finds the end (or a reset), not replies that go on.
    eventually("the deaf client cut off", || deaf_sending.is_finished());
    deaf.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut rest = Vec::new();
    match (&deaf).read_to_end(&mut rest) {
        Ok(_) => {}
        Err(err) => assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}"),
    }
    deaf_sending.join().unwrap();

    let peak = peak_rss(daemon.pid());
    let bound = stated_bound();
    eprintln!(
        "peak RSS {:.1} MiB (idle {:.1} MiB) against the stated bound {:.1} MiB; \
         {} of {} events acked in {flooded:?}",
        peak as f64 / MIB as f64,
        idle as f64 / MIB as f64,
        bound as f64 / MIB as f64,
        acked.len(),
        (MAX_CONNECTIONS - 1) * per_client as u64,
    );
    assert!(peak < bound, "peak RSS {peak} over the bound {bound}");
    assert!(!acked.is_empty(), "nothing was acked");

    // Every acked event reaches the endpoint.
    eventually("every acked event delivered", || {
        let delivered: HashSet<String> = server
            .requests()
            .iter()
            .filter_map(|request| request.json()["Id"].as_str().map(str::to_owned))
            .collect();
        acked.is_subset(&delivered)
    });
}

/// The ids of the events `server` received.
fn delivered(server: &HttpServer) -> HashSet<String> {
    server
        .requests()
        .iter()
        .filter_map(|request| request.json()["Id"].as_str().map(str::to_owned))
        .collect()
}

/// `count` small events, ids `prefix-i`.
fn events(prefix: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| format!(r#"{{"Id":"{prefix}-{i}"}}"#))
        .collect()
}

/// The spool's file system fills up (a small tmpfs, as root) while events
/// acked before are still being delivered: new events are refused
/// `overloaded` naming the cause, the daemon stays up, the progress of the
/// deliveries under way waits in memory; once space returns, the daemon
/// takes events again by itself, every event acked before or after is
/// delivered, none refused is, and the spool passes SQLite's integrity check.
#[test]
fn a_full_spool_disk_refuses_events_loses_none_and_recovers_by_itself() {
    let Some(disk) = Disk::mount(Kind::Tmpfs, "16m") else {
        return;
    };
    let server = HttpServer::start();
    server.otherwise(|_| Reply::After(Duration::from_millis(200), Box::new(Reply::status(200))));
    let spool = disk.path().join("spool");
    let mut daemon = Daemon::start(&format!(
        "[daemon]\nspool_dir = \"{}\"\n[hooks]\nOnFinish = [\"itsm\"]\n\
         [handlers.itsm]\nlibrary = \"HttpHandler\"\nurl = \"{}\"\nconcurrency = 1\n",
        spool.display(),
        server.url("/events")
    ));
    let before = events("before", 20);
    let before: Vec<&str> = before.iter().map(String::as_str).collect();
    assert!(daemon.send(&before).iter().all(reply_ok));

    let ballast = disk.fill();
    let during = events("during", 10);
    let during: Vec<&str> = during.iter().map(String::as_str).collect();
    for refused in daemon.send(&during) {
        assert_eq!(code(&refused), "overloaded", "{refused}");
        let error = refused["error"].as_str().unwrap();
        assert!(error.contains("database or disk is full"), "{error}");
    }
    daemon.log_line("the spool cannot be written");
    // Deliveries go on meanwhile; their progress cannot be written, and
    // waits without a busy loop.
    let cpu = cpu_time(daemon.pid());
    std::thread::sleep(Duration::from_secs(3));
    let spent = cpu_time(daemon.pid()) - cpu;
    assert!(spent < Duration::from_secs(1), "{spent:?} of CPU in 3 s");
    assert_eq!(code(&daemon.send(&during[..1])[0]), "overloaded");

    std::fs::remove_file(ballast).unwrap();
    daemon.log_line("the spool can be written again");
    let after = events("after", 10);
    let after: Vec<&str> = after.iter().map(String::as_str).collect();
    assert!(daemon.send(&after).iter().all(reply_ok));

    let acked: HashSet<String> = (0..20)
        .map(|i| format!("before-{i}"))
        .chain((0..10).map(|i| format!("after-{i}")))
        .collect();
    eventually("every acked event delivered", || {
        acked.is_subset(&delivered(&server))
    });
    assert!(
        delivered(&server)
            .iter()
            .all(|id| !id.starts_with("during")),
        "a refused event was delivered"
    );
    assert!(daemon.stop().success(), "{}", daemon.log());
    let db = rusqlite::Connection::open(spool.join("spool.db")).unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    // Every event finished, its progress written: nothing left to redo.
    let left: i64 = db
        .query_row(
            "SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM event_packs)",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(left, 0, "events left in the spool");
}
