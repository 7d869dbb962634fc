//! LuaHandler and drop-in scripts through the real daemon: real Lua states,
//! real files, a real HTTP server on loopback.

#![cfg(unix)] // Drives the Unix socket; the Windows pipe shares its protocol code.

mod util;

use serde_json::Value;
use util::http::{HttpServer, Reply};
use util::*;

/// A chain of a Lua handler (`script.lua`, with `extra` settings) and then a
/// text file recording each event as the chain left it.
fn lua_then_file(extra: &str) -> String {
    format!(
        "[hooks]\nOnFinish = [\"script\", \"record\"]\nOnError = [\"script\", \"record\"]\n\n\
         [handlers.script]\nlibrary = \"LuaHandler\"\nlua_script = \"script.lua\"\n{extra}\n\n\
         [handlers.record]\nlibrary = \"TextFileHandler\"\nfile_path = \"out/events.log\"\n"
    )
}

fn records(daemon: &Daemon, count: usize) -> Vec<Value> {
    wait_for_lines(&daemon.path("out/events.log"), count)
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn a_returned_table_is_the_event_later_handlers_see_with_types_kept() {
    let script = r#"
        function handle(event)
          event.Enriched = "yes"
          event.Doubled = event.CurrentRetryCount * 2
          event.Half = event.CurrentRetryCount / 2
          event.Tags = { "a", "b" }
          event.Empty = json.array()
          event.WasNull = (event.CertificateId == json.null)
          event.Id = "not-allowed-to-change"
          return event
        end
    "#;
    let daemon = Daemon::start_with(&lua_then_file(""), &[("scripts/script.lua", script)]);
    let replies = daemon.send(&[
        r#"{"Id":"t1","JobType":"WinCertInventory","CertificateId":null,"CurrentRetryCount":3,"Nested":{"List":[1,2.5,"x"],"Deep":{"k":true}},"Custom":"kept"}"#,
    ]);
    assert!(reply_ok(&replies[0]), "{replies:?}");
    let event = &records(&daemon, 1)[0];
    assert_eq!(event["Enriched"], "yes", "{}", daemon.log());
    assert_eq!(event["Doubled"], serde_json::json!(6));
    assert_eq!(event["Half"], serde_json::json!(1.5));
    assert_eq!(event["Tags"], serde_json::json!(["a", "b"]));
    assert_eq!(event["Empty"], serde_json::json!([]));
    assert_eq!(event["WasNull"], true);
    assert_eq!(event["CertificateId"], Value::Null);
    assert_eq!(
        event["Nested"],
        serde_json::json!({"List": [1, 2.5, "x"], "Deep": {"k": true}})
    );
    assert_eq!(event["Custom"], "kept");
    assert_eq!(event["Id"], "t1", "a script cannot change the event's Id");
    assert_eq!(event["Phase"], "OnFinish");
}

#[test]
fn the_api_client_calls_a_real_server_and_returns_status_body_and_headers() {
    let server = HttpServer::start();
    server.script([Reply::status(200)
        .with_header("X-Total", "1")
        .with_body(r#"[{"JobID":"j","Message":"inventory complete"}]"#)]);
    let script = r#"
        function handle(event)
          local status, body, headers = client:get("OrchestratorJobs/JobHistory?jobId=" .. event.JobId)
          if status ~= 200 then return false, "API answered " .. status end
          event.History = json.decode(body)
          event.Total = headers["x-total"]
          log.info("looked up history of " .. event.JobId)
          return event
        end
    "#;
    let config = format!(
        "{}\n[api]\nbase_url = \"{}\"\nbasic_user = \"svc\"\nbasic_password = \"hunter2\"\n",
        lua_then_file(""),
        server.url("/KeyfactorAPI")
    );
    let daemon = Daemon::start_with(&config, &[("scripts/script.lua", script)]);
    let job = "3f1e5a2b-8c7d-4e6f-9a0b-000000000001";
    daemon.send(&[&format!(r#"{{"Id":"api1","JobId":"{job}"}}"#)]);
    let event = &records(&daemon, 1)[0];
    assert_eq!(event["History"][0]["Message"], "inventory complete");
    assert_eq!(event["Total"], "1");
    let request = &server.requests()[0];
    assert_eq!(request.method, "GET");
    assert_eq!(
        request.target,
        format!("/KeyfactorAPI/OrchestratorJobs/JobHistory?jobId={job}")
    );
    assert_eq!(
        request.header("authorization"),
        Some("Basic c3ZjOmh1bnRlcjI=")
    );
    let log = daemon.log();
    assert!(
        log.lines().any(|line| line.contains("looked up history of")
            && line.contains("handler=\"script\" id=\"api1\"")),
        "{log}"
    );
    assert!(!log.contains("hunter2"), "{log}");
}

#[test]
fn http_request_does_not_follow_a_redirect_and_shows_where_it_points() {
    let server = HttpServer::start();
    let moved = server.url("/elsewhere");
    server.script([Reply::status(302).with_header("Location", &moved)]);
    let script = format!(
        r#"
        function handle(event)
          local status, body, headers = http.request{{ method = "POST", url = "{}", body = "x" }}
          event.Status = status
          event.Location = headers["location"]
          return event
        end
    "#,
        server.url("/hook")
    );
    let daemon = Daemon::start_with(&lua_then_file(""), &[("scripts/script.lua", &script)]);
    daemon.send(&[r#"{"Id":"redirected"}"#]);
    let event = &records(&daemon, 1)[0];
    assert_eq!(event["Status"], 302);
    assert_eq!(event["Location"], moved.as_str());
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "the redirect was followed");
    assert_eq!(requests[0].method, "POST");
}

#[test]
fn a_response_larger_than_the_memory_limit_is_refused_before_it_is_read() {
    let server = HttpServer::start();
    let big = "x".repeat(2 << 20);
    server.script([
        Reply::status(200).with_body(&big),
        Reply::status(200).with_body("small"),
    ]);
    let script = format!(
        r#"
        function handle(event)
          local ok, err = pcall(http.request, {{ url = "{0}" }})
          event.Error = tostring(err)
          local _, body = http.request{{ url = "{0}" }}
          event.Body = body
          return event
        end
    "#,
        server.url("/big")
    );
    let daemon = Daemon::start_with(
        &lua_then_file("memory_limit = \"1 MiB\""),
        &[("scripts/script.lua", &script)],
    );
    daemon.send(&[r#"{"Id":"big"}"#]);
    let event = &records(&daemon, 1)[0];
    let error = event["Error"].as_str().unwrap();
    assert!(
        error.contains("response body is larger than the script's memory_limit"),
        "{error}"
    );
    assert_eq!(event["Body"], "small", "the next request works");
}

#[test]
fn a_failed_http_request_names_its_url_without_the_password() {
    let script = r#"
        function handle(event)
          local ok, err = pcall(http.request, { url = "http://svc:hunter2@127.0.0.1:1/x" })
          event.Failed = not ok
          event.Error = tostring(err)
          return event
        end
    "#;
    let daemon = Daemon::start_with(&lua_then_file(""), &[("scripts/script.lua", script)]);
    daemon.send(&[r#"{"Id":"refused"}"#]);
    let event = &records(&daemon, 1)[0];
    assert_eq!(event["Failed"], true);
    let error = event["Error"].as_str().unwrap();
    assert!(
        error.contains("svc:REDACTED@127.0.0.1:1") && !error.contains("hunter2"),
        "{error}"
    );
}

#[test]
fn a_script_stuck_in_a_loop_fails_at_its_timeout_and_the_daemon_carries_on() {
    let script = r#"
        function handle(event)
          if event.Loop then while true do end end
          event.Ran = true
          return event
        end
    "#;
    let daemon = Daemon::start_with(
        &lua_then_file("timeout = \"300ms\"\nretries = 0"),
        &[("scripts/script.lua", script)],
    );
    daemon.send(&[r#"{"Id":"loops","Loop":true}"#]);
    daemon.send(&[r#"{"Id":"after"}"#]);
    let events = records(&daemon, 2);
    let after = events.iter().find(|e| e["Id"] == "after").unwrap();
    assert_eq!(after["Ran"], true);
    let looped = events.iter().find(|e| e["Id"] == "loops").unwrap();
    assert!(looped.get("Ran").is_none(), "{looped}");
    eventually("the timeout is logged", || {
        daemon.log().contains("timed out after 300ms")
    });
}

#[test]
fn a_memory_bomb_fails_at_memory_limit_and_the_state_is_renewed() {
    let script = r#"
        hoard = {}
        function handle(event)
          if event.Bomb then
            for i = 1, 1e9 do hoard[i] = string.rep("x", 4096) .. i end
          end
          event.Ran = true
          return event
        end
    "#;
    let daemon = Daemon::start_with(
        &lua_then_file("memory_limit = \"8MiB\"\nretries = 0\n[daemon]\nworkers = 1"),
        &[("scripts/script.lua", script)],
    );
    daemon.send(&[r#"{"Id":"bomb","Bomb":true}"#]);
    for i in 0..3 {
        daemon.send(&[&format!(r#"{{"Id":"after{i}"}}"#)]);
    }
    let events = records(&daemon, 4);
    assert!(
        events.iter().filter(|e| e["Ran"] == true).count() == 3,
        "{events:?}"
    );
    eventually("the memory limit is logged", || {
        daemon.log().contains("memory_limit exceeded")
    });
}

#[test]
fn an_error_and_false_with_a_reason_both_fail_the_attempt_with_the_reason_logged() {
    let script = r#"
        function handle(event)
          if event.Mode == "error" then error("boom from script") end
          if event.Mode == "false" then return false, "refused by script" end
        end
    "#;
    let daemon = Daemon::start_with(
        &lua_then_file("retries = 1\nretry_interval = \"100ms\""),
        &[("scripts/script.lua", script)],
    );
    daemon.send(&[
        r#"{"Id":"e","Mode":"error"}"#,
        r#"{"Id":"f","Mode":"false"}"#,
    ]);
    // The chain goes on after the failure: the text file still gets both.
    assert_eq!(records(&daemon, 2).len(), 2);
    eventually("both failures are logged after the retry", || {
        let log = daemon.log();
        log.matches("failed; no retries left").count() == 2
            && log.contains("boom from script")
            && log.contains("refused by script")
            && log.contains("attempts=2")
    });
}

#[test]
fn the_sandbox_has_no_way_out() {
    let script = r#"
        function handle(event)
          event.io = io == nil
          event.execute = os.execute == nil
          event.getenv = os.getenv == nil
          event.dofile = dofile == nil
          event.loadfile = loadfile == nil
          event.require_os = not pcall(require, "os")
          event.require_up = not pcall(require, "..secret")
          event.binary = load(string.char(27) .. "Lua") == nil
          event.env_denied = not pcall(env, "HOME")
          event.env_allowed = env("PATH") ~= nil
          return event
        end
    "#;
    let daemon = Daemon::start_with(
        &lua_then_file("allow_env = [\"PATH\"]"),
        &[
            ("scripts/script.lua", script),
            ("secret.lua", "return 'escaped'"),
        ],
    );
    daemon.send(&[r#"{"Id":"s"}"#]);
    let event = &records(&daemon, 1)[0];
    for check in [
        "io",
        "execute",
        "getenv",
        "dofile",
        "loadfile",
        "require_os",
        "require_up",
        "binary",
        "env_denied",
        "env_allowed",
    ] {
        assert_eq!(event[check], true, "{check}: {event}");
    }
}

#[test]
fn a_drop_in_script_joins_the_chains_it_names_with_its_filters() {
    let server = HttpServer::start();
    let drop_in = format!(
        r#"
        local format = require("_format")
        return {{
          on = {{ "OnError" }},
          results = {{ "Failure" }},
          retries = 0,
          handle = function(event)
            local status = http.request{{ method = "POST", url = "{}", body = format.line(event) }}
            return status == 200
          end,
        }}
    "#,
        server.url("/chat")
    );
    let config = "[hooks]\nOnFinish = [\"record\"]\nOnError = [\"record\"]\n\n\
                  [handlers.record]\nlibrary = \"TextFileHandler\"\nfile_path = \"out/events.log\"\n";
    let daemon = Daemon::start_with(
        config,
        &[
            ("scripts/notify.lua", &drop_in),
            (
                "scripts/_format.lua",
                "return { line = function(e) return e.JobType .. ' ' .. e.JobResult end }",
            ),
        ],
    );
    daemon.send(&[
        r#"{"Id":"ok","JobType":"WinCertInventory","JobResult":"Success"}"#,
        r#"{"Id":"bad","JobType":"WinCertManagement","JobResult":"Failure"}"#,
    ]);
    let requests = server.wait_for(1);
    assert_eq!(
        String::from_utf8_lossy(&requests[0].body),
        "WinCertManagement Failure"
    );
    records(&daemon, 2);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        server.requests().len(),
        1,
        "only the failure reaches the drop-in"
    );

    let (dir, config) = config_dir(config);
    write_files(
        dir.path(),
        &[
            ("scripts/notify.lua", &drop_in),
            ("scripts/_format.lua", "return {}"),
        ],
    );
    let output = jobhook(&["check", "-c", config.to_str().unwrap()], None);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("OnError: record → notify.lua"), "{text}");
}

#[test]
fn check_reports_a_script_syntax_error_with_file_and_line() {
    let (dir, config) = config_dir(&lua_then_file(""));
    write_files(
        dir.path(),
        &[(
            "scripts/script.lua",
            "function handle(event)\n  local x = 1\n  if x then return end end end\n",
        )],
    );
    let output = jobhook(&["check", "-c", config.to_str().unwrap()], None);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let expected = format!("{}:3:", dir.path().join("scripts/script.lua").display());
    assert!(
        text.contains(&expected) && text.contains("error:"),
        "{text}"
    );
}

#[test]
fn a_looping_script_does_not_hold_up_other_jobs_or_acks() {
    let script = r#"
        function handle(event)
          if event.Loop then while true do end end
        end
    "#;
    let daemon = Daemon::start_with(
        &lua_then_file("timeout = \"8s\"\nretries = 0\n[daemon]\nworkers = 4"),
        &[("scripts/script.lua", script)],
    );
    daemon.send(&[r#"{"Id":"loops","Loop":true,"JobId":"3f1e5a2b-8c7d-4e6f-9a0b-0000000000ff"}"#]);
    // Events of other jobs: every one is acked, and those in other lanes are
    // handled while the loop is still running.
    let others: Vec<String> = (0..8)
        .map(|i| format!(r#"{{"Id":"other{i}","JobId":"3f1e5a2b-8c7d-4e6f-9a0b-00000000000{i}"}}"#))
        .collect();
    let others: Vec<&str> = others.iter().map(String::as_str).collect();
    assert!(daemon.send(&others).iter().all(reply_ok));
    let handled = records(&daemon, 1);
    assert!(handled[0]["Id"].as_str().unwrap().starts_with("other"));
    assert!(
        !daemon.log().contains("timed out after 8s"),
        "the loop ended before other jobs were handled"
    );
}
