//! The real daemon on a real socket: acks, rejections, chains, files, shutdown.

#![cfg(unix)] // Drives the Unix socket; the Windows pipe shares its protocol code.

mod util;

use std::collections::HashMap;
use std::io::Write as _;
use std::time::Duration;

use serde_json::Value;
use util::*;

const AUDIT: &str = r#"
[hooks]
OnStart = ["audit"]
OnFinish = ["audit", "summary"]
OnError = ["audit", "failures"]

[handlers.audit]
library = "TextFileHandler"
file_path = "out/events-{Phase}.log"

[handlers.summary]
library = "TextFileHandler"
file_path = "out/summary.log"
format = "text"
template = "{JobType} {OperationType} {JobResult} {CertificateId}"

[handlers.failures]
library = "TextFileHandler"
file_path = "out/failures.log"
format = "text"
template = "{JobId} {ErrorMessage}"
results = ["Failure"]
"#;

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap()
}

#[test]
fn sample_contexts_reach_the_files_of_their_phase() {
    let mut daemon = Daemon::start(AUDIT);
    let samples = [
        "inventory.json",
        "management-add.json",
        "reenrollment.json",
        "failure.json",
    ];
    let lines: Vec<String> = samples.iter().map(|name| sample(name)).collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let replies = daemon.send(&refs);
    assert!(replies.iter().all(reply_ok), "{replies:?}");

    let finish = wait_for_lines(&daemon.path("out/events-OnFinish.log"), 3);
    let error = wait_for_lines(&daemon.path("out/events-OnError.log"), 1);
    // Different jobs run concurrently, so their order across jobs may vary.
    let mut summary = wait_for_lines(&daemon.path("out/summary.log"), 3);
    summary.sort();
    let failures = wait_for_lines(&daemon.path("out/failures.log"), 1);
    assert_eq!(
        summary,
        [
            "WinCertInventory Unknown Success ",
            "WinCertManagement Add Success 1234",
            "WinCertReenrollment Unknown Warning 5678",
        ]
    );
    assert_eq!(
        failures,
        ["e5f6a7b8-c9d0-4e1f-8a2b-3c4d5e6f7a8b Access denied to the certificate store"]
    );

    let inventory = finish
        .iter()
        .map(|line| parse(line))
        .find(|e| e["JobType"] == "WinCertInventory")
        .unwrap();
    assert_eq!(inventory["Id"], replies[0]["id"]);
    assert_eq!(inventory["RequestTimestamp"], "2023-05-03T23:18:48Z");
    assert_eq!(inventory["EventType"], "OrchestratorJob");
    assert_eq!(inventory["Phase"], "OnFinish");
    assert!(inventory["ReceivedAt"].as_str().unwrap().ends_with('Z'));
    let failed = parse(&error[0]);
    assert_eq!(failed["Phase"], "OnError");
    assert_eq!(
        failed["ErrorMessage"],
        "Access denied to the certificate store"
    );
    assert!(!daemon.path("out/events-OnStart.log").exists());

    assert!(daemon.stop().success());
    assert!(!daemon.socket.exists(), "socket file left behind");
}

#[test]
fn every_line_gets_one_reply_in_order_and_bad_lines_do_not_close_the_connection() {
    let daemon = Daemon::start(&format!("[daemon]\nmax_event_bytes = 200\n{AUDIT}"));
    let long = format!(r#"{{"Pad":"{}"}}"#, "x".repeat(300));
    let replies = daemon.send(&[
        r#"{"Id":"first","JobResult":"Success"}"#,
        "{not json",
        "",
        "   ",
        "[1,2,3]",
        r#"{"JobId":"nope"}"#,
        r#"{"CertificateId":"12"}"#,
        &long,
        "{\"Id\":\"crlf\"}\r",
        r#"{"Id":"last","Phase":"onstart"}"#,
    ]);
    let summary: Vec<(bool, &str)> = replies.iter().map(|r| (reply_ok(r), code(r))).collect();
    assert_eq!(
        summary,
        [
            (true, ""),
            (false, "parse_error"),
            (false, "invalid_event"),
            (false, "invalid_event"),
            (false, "invalid_event"),
            (false, "too_large"),
            (true, ""),
            (true, ""),
        ]
    );
    assert_eq!(replies[0]["id"], "first");
    assert_eq!(replies[6]["id"], "crlf");
    assert!(replies[3]["error"].as_str().unwrap().contains("`JobId`"));
    assert!(
        replies[4]["error"]
            .as_str()
            .unwrap()
            .contains("`CertificateId`")
    );
    assert!(
        replies[5]["error"]
            .as_str()
            .unwrap()
            .contains("max_event_bytes")
    );
    let started = wait_for_lines(&daemon.path("out/events-OnStart.log"), 1);
    assert_eq!(parse(&started[0])["Id"], "last");
}

#[test]
fn invalid_utf8_and_deep_nesting_are_rejected_and_the_daemon_lives_on() {
    let daemon = Daemon::start(AUDIT);
    let mut client = daemon.connect();
    client.write_raw(b"{\"Username\":\"\xff\xfe\"}\n");
    client.write_raw(format!("{}\n", "[".repeat(100_000)).as_bytes());
    client.write_raw(b"{\"Id\":\"after\"}\n");
    let replies = client.read_replies(3);
    assert_eq!(code(&replies[0]), "parse_error");
    assert_eq!(code(&replies[1]), "parse_error");
    assert_eq!(replies[2]["id"], "after");
}

#[test]
fn a_final_line_without_newline_is_answered_when_the_client_closes() {
    let daemon = Daemon::start(AUDIT);
    let mut client = daemon.connect();
    client.write_raw(b"{\"Id\":\"a\"}\n{\"Id\":\"b\"}");
    let replies = client.finish();
    let ids: Vec<&str> = replies.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["a", "b"]);
}

#[test]
fn many_pipelining_clients_lose_nothing_and_lines_stay_whole() {
    let daemon = Daemon::start(
        "[daemon]\nworkers = 4\n[hooks]\nOnFinish = [\"all\"]\n[handlers.all]\nlibrary = \"TextFileHandler\"\nfile_path = \"all.log\"\n",
    );
    let clients = 8;
    let per_client = 500;
    let pad = "p".repeat(2000);
    std::thread::scope(|scope| {
        for c in 0..clients {
            let daemon = &daemon;
            let pad = &pad;
            scope.spawn(move || {
                let lines: Vec<String> = (0..per_client)
                    .map(|i| format!(r#"{{"Id":"{c}-{i}","Pad":"{pad}"}}"#))
                    .collect();
                let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
                let replies = daemon.send(&refs);
                for (i, reply) in replies.iter().enumerate() {
                    assert_eq!(reply["id"], format!("{c}-{i}"), "replies out of order");
                }
            });
        }
    });
    let written = wait_for_lines(&daemon.path("all.log"), clients * per_client);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for line in &written {
        *seen
            .entry(parse(line)["Id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(seen.len(), clients * per_client);
    assert!(seen.values().all(|&n| n == 1));
}

#[test]
fn events_of_one_job_reach_handlers_in_the_order_accepted() {
    let daemon = Daemon::start(
        "[daemon]\nworkers = 4\n[hooks]\nOnFinish = [\"all\"]\n[handlers.all]\nlibrary = \"TextFileHandler\"\nfile_path = \"all.log\"\n",
    );
    let jobs = [
        "11111111-1111-4111-8111-111111111111",
        "22222222-2222-4222-8222-222222222222",
        "33333333-3333-4333-8333-333333333333",
    ];
    let lines: Vec<String> = (0..300)
        .map(|i| format!(r#"{{"Id":"{i}","JobId":"{}","Seq":{i}}}"#, jobs[i % 3]))
        .collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    assert!(daemon.send(&refs).iter().all(reply_ok));
    let written = wait_for_lines(&daemon.path("all.log"), 300);
    for job in jobs {
        let seqs: Vec<u64> = written
            .iter()
            .map(|line| parse(line))
            .filter(|event| event["JobId"] == job)
            .map(|event| event["Seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs.len(), 100);
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "job {job} out of order: {seqs:?}"
        );
    }
}

#[test]
fn an_idle_client_holding_half_a_line_does_not_hold_up_others() {
    let daemon = Daemon::start(AUDIT);
    let mut idle = daemon.connect();
    idle.write_raw(b"{\"Id\":\"half");
    let replies = daemon.send(&[r#"{"Id":"other"}"#]);
    assert_eq!(replies[0]["id"], "other");
    idle.write_raw(b"-done\"}\n");
    assert_eq!(idle.read_reply()["id"], "half-done");
}

#[test]
fn a_failing_handler_is_retried_logged_and_the_chain_goes_on() {
    let config = r#"
[hooks]
OnFinish = ["broken", "audit"]

[handlers.broken]
library = "TextFileHandler"
file_path = "blocker/x.log"
retries = 2
retry_interval = "50ms"

[handlers.audit]
library = "TextFileHandler"
file_path = "audit.log"
"#;
    let daemon = {
        let daemon = Daemon::start(config);
        std::fs::write(daemon.path("blocker"), "a file where a directory should be").unwrap();
        daemon
    };
    let replies = daemon.send(&[r#"{"Id":"evt-1"}"#]);
    assert!(reply_ok(&replies[0]));
    wait_for_lines(&daemon.path("audit.log"), 1);
    let log = daemon.log();
    assert_eq!(log.matches("attempt failed").count(), 2, "{log}");
    let gave_up = log
        .lines()
        .find(|l| l.contains("no retries left"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        gave_up.contains("evt-1") && gave_up.contains("broken") && gave_up.contains("attempts=3"),
        "{gave_up}"
    );
}

/// One worker, room for two events in the lanes, and a handler that keeps
/// the CPU busy for `seconds` per event, then a file of what it handled.
fn slow_daemon(seconds: f64) -> Daemon {
    let config = r#"
[daemon]
workers = 1
queue_capacity = 2

[hooks]
OnFinish = ["slow", "file"]

[handlers.slow]
library = "LuaHandler"
lua_script = "slow.lua"

[handlers.file]
library = "TextFileHandler"
file_path = "out/handled.log"
"#;
    let script = format!(
        "function handle(e) local t = os.clock() while os.clock() - t < {seconds} do end end"
    );
    Daemon::start_with(config, &[("scripts/slow.lua", script.as_str())])
}

/// `count` events of one job, sent on one connection; their replies.
fn burst(daemon: &Daemon, prefix: &str, count: usize) -> Vec<Value> {
    let lines: Vec<String> = (0..count)
        .map(|i| {
            format!(r#"{{"Id":"{prefix}{i}","JobId":"49b3a17d-cada-4ec8-84c6-7719bf5beef3"}}"#)
        })
        .collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    daemon.send(&refs)
}

#[test]
fn a_burst_past_queue_capacity_waits_on_disk_and_is_handled_in_order() {
    // Two events fit in the lanes; the other three are accepted all the
    // same, wait in the spool and follow in the order accepted.
    let daemon = slow_daemon(0.1);
    let replies = burst(&daemon, "burst", 5);
    assert!(replies.iter().all(reply_ok), "{replies:?}");
    let handled = wait_for_lines(&daemon.path("out/handled.log"), 5);
    let ids: Vec<String> = handled
        .iter()
        .map(|line| serde_json::from_str::<Value>(line).unwrap()["Id"].to_string())
        .collect();
    assert_eq!(
        ids,
        ["burst0", "burst1", "burst2", "burst3", "burst4"].map(|id| format!("{id:?}"))
    );
}

#[test]
fn a_handler_stuck_for_long_refuses_no_sender_while_the_spool_has_room() {
    // The worker takes 2.5 s an event: twenty events are far more than the
    // lanes' two, and every one is acked, none `overloaded`.
    let daemon = slow_daemon(2.5);
    let replies = burst(&daemon, "stuck", 20);
    let refused: Vec<&Value> = replies.iter().filter(|reply| !reply_ok(reply)).collect();
    assert!(refused.is_empty(), "{refused:?}");
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let spool =
        rusqlite::Connection::open_with_flags(daemon.path("var/spool/spool.db"), flags).unwrap();
    // Events in rows, plus those in packs less the ones marked gone.
    let count = |sql: &str| -> i64 { spool.query_row(sql, [], |row| row.get(0)).unwrap() };
    let stored = count(
        "SELECT (SELECT count(*) FROM events) + (SELECT coalesce(sum(count), 0) FROM event_packs)",
    );
    let mut bits = spool.prepare("SELECT bits FROM pack_gone").unwrap();
    let gone: u32 = bits
        .query_map([], |row| row.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|bits| {
            bits.unwrap()
                .iter()
                .map(|byte| byte.count_ones())
                .sum::<u32>()
        })
        .sum();
    let pending = stored - i64::from(gone);
    assert!(pending >= 18, "{pending} events in the spool");
}

#[test]
fn sigterm_finishes_every_accepted_event_before_exiting() {
    // Room in the lanes for every event: a stop finishes the events in
    // hand, and those waiting on disk behind a full lane (more likely as
    // ingest outruns the file) stay for the next start, which is not what
    // this test is about.
    let mut daemon = Daemon::start(
        "[daemon]\nqueue_capacity = 5000\n[hooks]\nOnFinish = [\"all\"]\n[handlers.all]\nlibrary = \"TextFileHandler\"\nfile_path = \"all.log\"\n",
    );
    let events: Vec<String> = (0..3000).map(|i| format!(r#"{{"Id":"{i}"}}"#)).collect();
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    let replies = daemon.send(&refs);
    let accepted = replies.iter().filter(|r| reply_ok(r)).count();
    assert_eq!(accepted, 3000);
    assert!(daemon.stop().success());
    assert_eq!(lines(&daemon.path("all.log")).len(), accepted);
    assert!(!daemon.socket.exists());
}

#[test]
fn a_client_that_never_reads_its_replies_does_not_block_shutdown() {
    let mut daemon = Daemon::start(
        "[hooks]\nOnFinish = [\"all\"]\n[handlers.all]\nlibrary = \"TextFileHandler\"\nfile_path = \"all.log\"\n",
    );
    let client = daemon.connect();
    // Far more replies than the socket buffers and the reply pipeline hold.
    let writer = {
        let mut stream = client.stream().try_clone().unwrap();
        std::thread::spawn(move || {
            let line = format!("{{\"Id\":\"x\",\"Pad\":\"{}\"}}\n", "p".repeat(100));
            for _ in 0..200_000 {
                if stream.write_all(line.as_bytes()).is_err() {
                    break;
                }
            }
        })
    };
    eventually("the daemon to accept some events", || {
        !lines(&daemon.path("all.log")).is_empty()
    });
    assert!(daemon.stop().success(), "{}", daemon.log());
    writer.join().unwrap();
    drop(client);
}

#[test]
fn a_second_daemon_on_the_same_socket_exits_2_and_a_stale_socket_is_replaced() {
    let daemon = Daemon::start(AUDIT);
    // The same socket, its own spool (a shared spool_dir is refused first).
    let config = daemon.path("second.toml");
    let socket = "[daemon]\nsocket = \"run/jobhook.sock\"\nspool_dir = \"var/second\"\n";
    std::fs::write(&config, format!("{socket}{AUDIT}")).unwrap();
    let second = jobhook(&["run", "-c", config.to_str().unwrap()], None);
    assert_eq!(second.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&second.stderr).contains("already listening"));
    // The first daemon still serves.
    assert!(reply_ok(&daemon.send(&[r#"{"Id":"still"}"#])[0]));

    // A socket file left by a killed daemon does not block a new one.
    let (dir, config) = config_dir(AUDIT);
    std::fs::create_dir_all(dir.path().join("run")).unwrap();
    drop(std::os::unix::net::UnixListener::bind(dir.path().join("run/jobhook.sock")).unwrap());
    assert!(dir.path().join("run/jobhook.sock").exists());
    let mut child = std::process::Command::new(BIN)
        .args(["run", "-c"])
        .arg(&config)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    eventually("the new daemon to listen", || {
        std::os::unix::net::UnixStream::connect(dir.path().join("run/jobhook.sock")).is_ok()
    });
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn the_socket_gets_the_configured_mode() {
    use std::os::unix::fs::PermissionsExt;
    let daemon = Daemon::start(&format!("[daemon]\nsocket_mode = \"0600\"\n{AUDIT}"));
    let mode = std::fs::metadata(&daemon.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_bad_config_exits_1_with_the_position() {
    let (_dir, config) = config_dir("[hooks]\nOnFinish = [\"nobody\"]\n");
    let output = jobhook(&["run", "-c", config.to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Line 4: the harness writes two [daemon] lines first.
    assert!(
        stderr.contains("handlers.toml:4:13: error: hook OnFinish names handler `nobody`"),
        "{stderr}"
    );
}

#[test]
fn log_files_are_written_when_a_log_dir_is_set() {
    let mut daemon = Daemon::start(&format!(
        "[log]\ndir = \"logs\"\nformat = \"json\"\nrotation = \"never\"\n{AUDIT}"
    ));
    daemon.send(&[r#"{"Id":"logged"}"#]);
    assert!(daemon.stop().success());
    let log = std::fs::read_to_string(daemon.path("logs/jobhook.log")).unwrap();
    let first: Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(first["level"], "INFO");
    assert!(log.contains("jobhook started"));
}

#[test]
fn a_long_running_connection_survives_idle_time() {
    let daemon = Daemon::start(AUDIT);
    let mut client = daemon.connect();
    client.write_lines(&[r#"{"Id":"one"}"#]);
    assert!(reply_ok(&client.read_reply()));
    std::thread::sleep(Duration::from_millis(300));
    client.write_lines(&[r#"{"Id":"two"}"#]);
    assert_eq!(client.read_reply()["id"], "two");
}
