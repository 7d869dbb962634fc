//! `[sources.NAME] type = "keyfactor_job_history"` against a fake Command
//! on 127.0.0.1: what the daemon asks for, and that every finished record
//! becomes exactly one event, whatever happens between looks.

#![cfg(unix)] // Drives the Unix socket and the harness's Unix-only helpers.

mod util;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use util::command::{FakeCommand, Mishap, record};
use util::{Daemon, check_refuses, config_dir, eventually, ids_in, lines};

/// Every event, whatever its phase, is written to `out/events.log`.
fn config(command: &FakeCommand, source: &str) -> String {
    format!(
        r#"
[hooks]
OnFinish = ["out"]
OnError = ["out"]

[handlers.out]
library = "TextFileHandler"
file_path = "out/events.log"

[sources.command]
type = "keyfactor_job_history"
base_url = "{}"
basic_user = 'CORP\svc'
basic_password = "s3cret"
interval = "200ms"
{source}
"#,
        command.base_url()
    )
}

fn out(daemon: &Daemon) -> PathBuf {
    daemon.path("out/events.log")
}

fn id(n: i64) -> String {
    format!("keyfactor-jobhistory-{n}")
}

/// Waits until the file holds exactly these events (each once), in any order.
fn wait_for_exactly(daemon: &Daemon, wanted: &[i64]) {
    let wanted: std::collections::HashMap<String, usize> =
        wanted.iter().map(|n| (id(*n), 1)).collect();
    eventually(&format!("events {wanted:?}"), || {
        ids_in(&out(daemon)) == wanted
    });
}

fn events(daemon: &Daemon) -> Vec<Value> {
    lines(&out(daemon))
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn backfills_every_finished_record_once_a_page_at_a_time_with_the_parameters_command_expects() {
    let command = FakeCommand::start();
    // Runs of one scheduled job: one JobId, so its events keep their order.
    for n in 1..=7 {
        let mut run = record(n, "WinCertInventory", "Completed", "Success");
        run["JobId"] = "0b4b411a-4b26-4492-a575-a10adb43a08a".into();
        command.put(run);
    }
    let daemon = Daemon::start(&config(&command, "start = \"all\"\npage_size = 3"));
    wait_for_exactly(&daemon, &[1, 2, 3, 4, 5, 6, 7]);
    let found: Vec<i64> = events(&daemon)
        .iter()
        .map(|event| event["JobHistoryId"].as_i64().unwrap())
        .collect();
    assert_eq!(found, [1, 2, 3, 4, 5, 6, 7], "in JobHistoryId order");

    let requests = command.requests();
    let pages: Vec<&str> = requests
        .iter()
        .take(3)
        .map(|request| request.query("QueryString"))
        .collect();
    assert_eq!(
        pages,
        [
            "JobHistoryId -gt 0",
            "JobHistoryId -gt 3",
            "JobHistoryId -gt 6"
        ]
    );
    for request in &requests {
        assert_eq!(request.path, "/KeyfactorAPI/OrchestratorJobs/JobHistory");
        assert_eq!(request.query("PageReturned"), "1");
        assert_eq!(request.query("ReturnLimit"), "3");
        assert_eq!(request.query("SortField"), "JobHistoryId");
        assert_eq!(request.query("SortAscending"), "0", "ascending");
        assert_eq!(request.headers["x-keyfactor-requested-with"], "APIClient");
        // Basic CORP\svc:s3cret
        assert_eq!(
            request.headers["authorization"],
            "Basic Q09SUFxzdmM6czNjcmV0"
        );
    }

    let event = &events(&daemon)[0];
    assert_eq!(event["EventType"], "OrchestratorJob");
    assert_eq!(event["JobResult"], "Success");
    assert_eq!(event["Phase"], "OnFinish");
    assert_eq!(event["JobType"], "WinCertInventory");
    assert_eq!(event["ClientMachine"], "iistarget.example.com");
    assert_eq!(event["StorePath"], "My");
    assert_eq!(event["OperationEnd"], "2023-05-06T00:28:00Z");
    assert_eq!(
        event["KeyfactorJobHistory"]["JobHistoryId"],
        event["JobHistoryId"]
    );
}

#[test]
fn a_job_still_in_process_is_delivered_once_it_completes_never_skipped() {
    let command = FakeCommand::start();
    command.put(record(1, "WinCertManagement", "InProcess", "Unknown"));
    command.put(record(2, "WinCertInventory", "Completed", "Success"));
    let daemon = Daemon::start(&config(&command, "start = \"all\""));
    wait_for_exactly(&daemon, &[2]);
    // Asked for again while it runs.
    eventually("record 1 asked for again", || {
        command
            .requests()
            .iter()
            .any(|request| request.query("QueryString") == "JobHistoryId -eq 1")
    });
    command.put(record(1, "WinCertManagement", "Completed", "Failure"));
    command.put(record(3, "WinCertInventory", "Completed", "Success"));
    wait_for_exactly(&daemon, &[1, 2, 3]);
    let failed = events(&daemon)
        .into_iter()
        .find(|event| event["Id"] == id(1))
        .unwrap();
    assert_eq!(failed["Phase"], "OnError");
    std::thread::sleep(Duration::from_millis(600));
    wait_for_exactly(&daemon, &[1, 2, 3]);
}

#[test]
fn start_now_passes_over_the_history_and_keeps_its_place_across_a_restart() {
    let command = FakeCommand::start();
    for n in 1..=3 {
        command.put(record(n, "WinCertInventory", "Completed", "Success"));
    }
    let mut daemon = Daemon::start(&config(&command, ""));
    eventually("the newest record asked for", || {
        command.requests().iter().any(|request| {
            request.query("SortAscending") == "1" && request.query("ReturnLimit") == "1"
        })
    });
    command.put(record(4, "WinCertInventory", "Completed", "Success"));
    wait_for_exactly(&daemon, &[4]);
    daemon.stop();
    // Records that came while it was down are not "before now".
    command.put(record(5, "WinCertInventory", "Completed", "Success"));
    daemon.restart();
    wait_for_exactly(&daemon, &[4, 5]);
    std::thread::sleep(Duration::from_millis(600));
    wait_for_exactly(&daemon, &[4, 5]);
}

#[test]
fn start_after_an_id_and_job_types_choose_the_records() {
    let command = FakeCommand::start();
    command.put(record(10, "WinCertInventory", "Completed", "Success"));
    command.put(record(11, "WinCertManagement", "Completed", "Success"));
    command.put(record(12, "WinCertInventory", "Completed", "Warning"));
    command.put(record(13, "PemInventory", "Completed", "Success"));
    let daemon = Daemon::start(&config(
        &command,
        "start = 10\njob_types = [\"wincertinventory\", \"PemInventory\"]",
    ));
    wait_for_exactly(&daemon, &[12, 13]);
    command.put(record(14, "WinCertManagement", "Completed", "Success"));
    command.put(record(15, "WinCertInventory", "Completed", "Success"));
    wait_for_exactly(&daemon, &[12, 13, 15]);
}

#[test]
fn refusals_name_the_permission_and_failures_back_off_until_command_answers() {
    let command = FakeCommand::start();
    command.put(record(1, "WinCertInventory", "Completed", "Success"));
    command.mishap(Mishap::Status(401));
    command.mishap(Mishap::Status(403));
    command.mishap(Mishap::Status(500));
    // Over the source's timeout: a failed look, tried again.
    command.mishap(Mishap::Slow(Duration::from_millis(1500)));
    let daemon = Daemon::start(&config(&command, "start = \"all\"\ntimeout = \"500ms\""));
    wait_for_exactly(&daemon, &[1]);
    let log = daemon.log();
    let refused = daemon.log_line("401 Unauthorized");
    assert!(refused.contains("Agent Management – Read"), "{refused}");
    assert!(refused.contains("ERROR"), "{refused}");
    let forbidden = daemon.log_line("403 Forbidden");
    assert!(
        forbidden.contains("lacks the \"Agent Management – Read\" permission"),
        "{forbidden}"
    );
    assert!(log.contains("answered 500"), "{log}");
    assert!(log.contains("no answer within 500ms"), "{log}");
    assert!(
        daemon
            .log_line("failures=4")
            .contains("retry_in=\"1s 600ms\""),
        "{log}"
    );
    eventually("the recovery logged", || {
        daemon.log().contains("job history source recovered")
    });
}

/// One text value read from the daemon's spool (read-only, beside the
/// daemon).
fn spool_value(daemon: &Daemon, sql: &str) -> Option<String> {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let spool = rusqlite::Connection::open_with_flags(daemon.path("var/spool/spool.db"), flags);
    spool.ok()?.query_row(sql, [], |row| row.get(0)).ok()
}

#[test]
fn every_finished_record_is_delivered_once_across_restarts_and_kills_between_a_look_and_its_commit()
{
    let command = FakeCommand::start();
    let mut daemon = Daemon::start(&config(&command, "start = \"all\"\npage_size = 2"));
    let mut delivered = Vec::new();
    for round in 0..4 {
        // Every event of the rounds before has finished (none left in the
        // spool), so none of them can be in a handler when the signal lands.
        eventually("no event left in the spool", || {
            spool_value(&daemon, "SELECT CAST((SELECT count(*) FROM events) + (SELECT count(*) FROM event_packs) AS TEXT)").as_deref()
                == Some("0")
        });
        let first = round * 5 + 1;
        let batch: Vec<i64> = (first..first + 5).collect();
        // Killed as soon as Command has answered with the round's records,
        // mostly before the look's events are committed.
        command.kill_after_records(daemon.pid());
        for n in &batch {
            command.put(record(*n, "WinCertInventory", "Completed", "Success"));
        }
        eventually("the daemon killed after a look", || command.killed());
        daemon.wait();
        daemon.restart();
        delivered.extend(&batch);
        // The signal may also land after the commit, while the handler
        // writes: the spool then runs that event's handler again (its
        // at-least-once window). Only this round's events may show twice.
        eventually("every record delivered once", || {
            let seen = ids_in(&out(&daemon));
            let once = |n: &i64| seen.get(&id(*n)) == Some(&1);
            let once_or_twice = |n: &i64| seen.get(&id(*n)).is_some_and(|count| *count <= 2);
            seen.len() == delivered.len()
                && delivered.iter().filter(|n| !batch.contains(n)).all(once)
                && batch.iter().all(once_or_twice)
        });
    }
    let before = ids_in(&out(&daemon));
    daemon.stop();
    let cursor = spool_value(
        &daemon,
        "SELECT cursor FROM source_cursors WHERE source = 'command'",
    );
    assert_eq!(
        cursor.as_deref(),
        Some(r#"{"start":"all","after":20,"open":[]}"#)
    );
    daemon.restart();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(ids_in(&out(&daemon)), before, "nothing delivered again");
    // The cursor moved with its events: no look after a restart offered the
    // spool a record it already had (dedupe would have hidden that above).
    let log = daemon.log();
    let offered_again = log
        .lines()
        .filter(|line| line.contains("job history records accepted"))
        .filter(|line| !line.contains("duplicates=0"));
    assert_eq!(offered_again.count(), 0, "{log}");
}

#[test]
fn a_stop_abandons_a_look_in_progress_and_the_next_start_makes_it_again() {
    let command = FakeCommand::start();
    command.put(record(1, "WinCertInventory", "Completed", "Success"));
    // The first look (after the cursor is set up) hangs on Command.
    command.mishap(Mishap::Slow(Duration::from_secs(20)));
    let mut daemon = Daemon::start(&config(&command, "start = 0\ntimeout = \"1m\""));
    eventually("the look under way", || !command.requests().is_empty());
    daemon.stop_within(Duration::from_secs(5));
    assert!(lines(&out(&daemon)).is_empty());
    daemon.restart();
    wait_for_exactly(&daemon, &[1]);
}

/// A config whose `[sources.command]` section holds `keys`; its first key is
/// on line 10 of the file (`config_dir` adds two lines before it).
fn source_config(keys: &str) -> (tempfile::TempDir, PathBuf) {
    let text = format!(
        "[hooks]\nOnFinish = [\"out\"]\n[handlers.out]\nlibrary = \"TextFileHandler\"\n\
         file_path = \"out.log\"\n[sources.command]\n{keys}\n"
    );
    config_dir(&text)
}

#[test]
fn check_reports_source_problems_with_their_position() {
    let base = "type = \"keyfactor_job_history\"\nbase_url = \"https://command.example.com/KeyfactorAPI/\"";
    let (_dir, path) = source_config(&format!("{base}\nintervall = \"10s\""));
    let report = check_refuses(&path, "source `command`: unknown field `intervall`");
    assert!(report.contains("did you mean `interval`?"), "{report}");
    assert!(report.contains("handlers.toml:11:1"), "{report}");

    let (_dir, path) = source_config(&format!("{base}\nstart = \"yesterday\""));
    let report = check_refuses(&path, "expected \"now\", \"all\" or a JobHistoryId");
    assert!(report.contains("handlers.toml:11:9"), "{report}");

    let (_dir, path) = source_config(&format!("{base}\nssl_config = \"corp\""));
    let report = check_refuses(&path, "source `command`: ssl_config names [ssl.corp]");
    assert!(report.contains("handlers.toml:11:14"), "{report}");

    let (_dir, path) = source_config("type = \"keyfactor_jobhistory\"\nbase_url = \"https://c/\"");
    check_refuses(&path, "did you mean `keyfactor_job_history`?");

    let (_dir, path) =
        source_config("type = \"keyfactor_job_history\"\nbase_url = \"command.example.com\"");
    check_refuses(
        &path,
        "source `command`: base_url: \"command.example.com\" is not an http(s) URL",
    );
}
