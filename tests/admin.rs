//! The admin API against the real binary: tokens and permissions on every
//! route, `/health`, `/metrics`, `POST /reload`, dead letters, the live
//! stream and the commands that use them (`jobhook reload`, `jobhook tail`).

#![cfg(unix)] // Drives the Unix socket and the harness's Unix-only helpers.

mod util;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use util::admin::{Api, free_port, section};
use util::http::{HttpServer, Reply};
use util::{AUDIT, BIN, Daemon, eventually, wait_for_lines};

const ALL: &[&str] = &[
    "handlers:read",
    "handlers:modify",
    "deadletter:read",
    "deadletter:modify",
    "reload",
    "events:read",
];

fn event(id: &str) -> String {
    format!(
        r#"{{"Id":"{id}","Phase":"OnFinish","JobId":"6e4c1c5b-8b41-4c43-9f0f-2f4e9d3a1b11","JobType":"Inventory","JobResult":"Success"}}"#
    )
}

/// A daemon with an admin API whose token `ops` may do everything,
/// `reader` only read handlers and `watcher` only follow events; on the audit chain plus `extra`, or on
/// `extra` alone when it has its own `[hooks]`.
fn daemon_with_admin(extra: &str) -> (Daemon, Api) {
    let port = free_port();
    let tokens = section(
        port,
        &[
            ("ops", "ops-secret-token", ALL),
            ("reader", "reader-secret-token", &["handlers:read"]),
            ("watcher", "events-secret-token", &["events:read"]),
        ],
    );
    let handlers = if extra.contains("[hooks]") {
        extra.to_owned()
    } else {
        format!("{AUDIT}{extra}")
    };
    let daemon = Daemon::start(&format!("{handlers}{tokens}"));
    let api = Api::on(port);
    // The socket takes connections a moment before the daemon is ready.
    eventually("health saying ok", || {
        api.get("/health", None).status == 200
    });
    (daemon, api)
}

/// A value from the Prometheus text: the line that starts with `series`.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn every_route_asks_for_its_permission() {
    let (_daemon, api) = daemon_with_admin("");
    // (method, path, body, permission)
    let routes: &[(&str, &str, Option<&str>, &str)] = &[
        ("GET", "/handlers", None, "handlers:read"),
        ("GET", "/handlers/audit", None, "handlers:read"),
        ("POST", "/handlers/audit/disable", None, "handlers:modify"),
        ("POST", "/handlers/audit/enable", None, "handlers:modify"),
        (
            "POST",
            "/handlers",
            Some(
                r#"{"Name":"extra","ClassName":"TextFileHandler","SupportedEvents":["OnFinish"],"FilePath":"out/extra.log"}"#,
            ),
            "handlers:modify",
        ),
        ("DELETE", "/handlers/extra", None, "handlers:modify"),
        ("POST", "/reload", None, "reload"),
        ("GET", "/deadletter", None, "deadletter:read"),
        (
            "POST",
            "/deadletter/replay",
            Some(r#"{"all":true}"#),
            "deadletter:modify",
        ),
        (
            "DELETE",
            "/deadletter?older_than=1d",
            None,
            "deadletter:modify",
        ),
    ];
    for (method, path, body, permission) in routes {
        let call = |token: Option<&str>| api.call(method, path, token, *body);
        let what = format!("{method} {path}");
        let none = call(None);
        assert_eq!(none.status, 401, "{what} without a token: {none:?}");
        assert!(
            none.json()["error"]
                .as_str()
                .unwrap()
                .contains("bearer token")
        );
        assert_eq!(
            call(Some("not-a-token")).status,
            401,
            "{what} with a wrong token"
        );
        // `reader` may only read handlers, `watcher` only follow events.
        let lacking = match *permission {
            "handlers:read" => call(Some("events-secret-token")),
            _ => call(Some("reader-secret-token")),
        };
        assert_eq!(
            lacking.status, 403,
            "{what} without {permission}: {lacking:?}"
        );
        assert!(
            lacking.json()["error"]
                .as_str()
                .unwrap()
                .contains(permission)
        );
        let allowed = call(Some("ops-secret-token"));
        assert!(
            [200, 201].contains(&allowed.status),
            "{what} with {permission}: {allowed:?}"
        );
        assert!(allowed.headers.contains("application/json"), "{allowed:?}");
    }
    // The stream asks for events:read before it starts.
    assert_eq!(api.get("/events", None).status, 401);
    assert_eq!(api.get("/events", Some("reader-secret-token")).status, 403);
    // Health and metrics need no token.
    assert_eq!(api.get("/health", None).status, 200);
    assert_eq!(api.get("/metrics", None).status, 200);
    let unknown = api.get("/nowhere", Some("ops-secret-token"));
    assert_eq!(
        (unknown.status, unknown.json()["error"].as_str()),
        (404, Some("no such route"))
    );
}

#[test]
fn metrics_count_exactly_what_happened() {
    let server = HttpServer::start();
    server.otherwise(|_| Reply::status(400));
    let extra = format!(
        r#"
[hooks]
OnFinish = ["audit", "itsm"]
[handlers.audit]
library = "TextFileHandler"
file_path = "out/audit.log"
[handlers.itsm]
library = "HttpHandler"
url = "{}"
job_types = ["Reenrollment"]
"#,
        server.url("/events")
    );
    let (daemon, api) = daemon_with_admin(&extra);
    let (events, rejected, failing) = (12, 3, 2);
    let mut lines: Vec<String> = (0..events).map(|n| event(&format!("m{n}"))).collect();
    for n in 0..failing {
        lines.push(event(&format!("f{n}")).replace("Inventory", "Reenrollment"));
    }
    lines.extend((0..rejected).map(|n| format!("not json {n}")));
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let replies = daemon.send(&lines);
    assert_eq!(
        replies.iter().filter(|reply| reply["ok"] == true).count(),
        events + failing
    );
    // A duplicate is accepted, and counted as one.
    daemon.send(&[&event("m0")]);
    wait_for_lines(&daemon.path("out/audit.log"), events + failing);
    server.wait_for(failing);
    let mut text = String::new();
    eventually("the dead letters counted", || {
        text = api.get("/metrics", None).body;
        text.contains(r#"jobhook_dead_letters_total{handler="itsm"} 2"#)
    });
    let accepted = (events + failing + 1) as f64;
    assert_eq!(metric(&text, "jobhook_events_accepted_total"), accepted);
    assert_eq!(metric(&text, "jobhook_events_duplicate_total"), 1.0);
    assert_eq!(
        metric(
            &text,
            r#"jobhook_events_rejected_total{code="parse_error"}"#
        ),
        rejected as f64
    );
    assert_eq!(
        metric(
            &text,
            r#"jobhook_handler_attempts_total{handler="itsm",outcome="failure"}"#
        ),
        failing as f64
    );
    assert_eq!(
        metric(
            &text,
            r#"jobhook_handler_attempts_total{handler="audit",outcome="success"}"#
        ),
        (events + failing) as f64
    );
    assert_eq!(
        metric(
            &text,
            r#"jobhook_handler_duration_seconds_count{handler="audit"}"#
        ),
        (events + failing) as f64
    );
    assert_eq!(
        metric(&text, r#"jobhook_handler_in_flight{handler="itsm"}"#),
        0.0
    );
    assert!(metric(&text, "process_resident_memory_bytes") > 1e6);
    // The dead letters are there too.
    let listed = api
        .get("/deadletter?handler=itsm", Some("ops-secret-token"))
        .json();
    assert_eq!(listed["total"], 2, "{listed}");

    // A broken file: the watcher's reload fails and is counted; so does
    // a POST /reload, which answers 422 naming the line. The old config
    // stays.
    let good = std::fs::read_to_string(&daemon.config).unwrap();
    std::fs::write(&daemon.config, format!("{good}\n[handlers.audit2\n")).unwrap();
    daemon.log_line("config reload failed");
    let failures = r#"jobhook_config_reloads_total{result="failure"}"#;
    assert_eq!(metric(&api.get("/metrics", None).body, failures), 1.0);
    let refused = api.post("/reload", Some("ops-secret-token"), None);
    assert_eq!(refused.status, 422, "{refused:?}");
    let problems = refused.json()["problems"].as_array().unwrap().clone();
    let line = good.lines().count() + 2;
    assert!(
        problems.iter().any(|problem| problem
            .as_str()
            .unwrap()
            .contains(&format!("handlers.toml:{line}:"))),
        "{problems:?}"
    );
    assert_eq!(metric(&api.get("/metrics", None).body, failures), 2.0);
    assert!(
        !api.get("/metrics", None)
            .body
            .contains(r#"result="success""#)
    );
    let health = api.get("/health", None).json();
    assert_eq!(health["last_reload"]["result"], "failure", "{health}");
    assert_eq!(daemon.send(&[&event("after")])[0]["ok"], true);
}

#[test]
fn health_says_ok_then_stopping() {
    let slow = r#"
[hooks]
OnFinish = ["slow"]
[handlers.slow]
library = "LuaHandler"
lua_script = "slow.lua"
timeout = "20s"
"#;
    let port = free_port();
    let config = format!(
        "[daemon]\nshutdown_timeout = \"20s\"\n{slow}{}",
        section(port, &[])
    );
    let script = "function handle(event) local t = os.clock() while os.clock() - t < 3 do end return event end";
    let mut daemon = Daemon::start_with(&config, &[("scripts/slow.lua", script)]);
    let api = Api::on(port);
    // The socket takes connections a moment before the daemon is ready
    // (its spool open, its workers started); until then health says so.
    let mut health = api.get("/health", None);
    eventually("health saying ok", || {
        if health.status == 200 {
            return true;
        }
        let report = health.json();
        assert_eq!(
            (health.status, report["status"].as_str()),
            (503, Some("starting")),
            "{health:?}"
        );
        assert_eq!(report["pipeline_loaded"], false, "{report}");
        health = api.get("/health", None);
        false
    });
    let report = health.json();
    assert_eq!(
        (
            report["status"].as_str(),
            report["spool_writable"].as_bool()
        ),
        (Some("ok"), Some(true))
    );
    assert_eq!(daemon.send(&[&event("s1")])[0]["ok"], true);
    eventually("the event pending", || {
        api.get("/health", None).json()["pending_events"] == 1
    });
    daemon.signal("TERM");
    // The script holds the stop for a few seconds: the API says so.
    eventually("health saying stopping", || {
        let health = api.get("/health", None);
        health.status == 503 && health.json()["status"] == "stopping"
    });
    assert!(daemon.wait().success());
}

#[test]
fn dead_letters_are_listed_replayed_and_purged_through_the_api() {
    let server = HttpServer::start();
    server.otherwise(|n| {
        if n < 3 {
            Reply::status(400)
        } else {
            Reply::status(200)
        }
    });
    let extra = format!(
        "\n[handlers.itsm]\nlibrary = \"HttpHandler\"\nurl = \"{}\"\n",
        server.url("/events")
    );
    let (daemon, api) = daemon_with_admin(&extra.replace(
        "[handlers.itsm]",
        "[hooks]\nOnFinish = [\"itsm\"]\n[handlers.itsm]",
    ));
    for n in 0..3 {
        daemon.send(&[&event(&format!("d{n}"))]);
    }
    let token = Some("ops-secret-token");
    eventually("three dead letters", || {
        api.get("/deadletter", token).json()["total"] == 3
    });
    let page = api.get("/deadletter?limit=2&offset=1", token).json();
    assert_eq!(
        (
            page["total"].as_u64(),
            page["dead_letters"].as_array().unwrap().len()
        ),
        (Some(3), 2)
    );
    assert_eq!(page["dead_letters"][0]["event_id"], "d1");
    let future = api
        .get("/deadletter?since=2999-01-01T00:00:00Z", token)
        .json();
    assert_eq!(future["total"], 0);
    let other = api.get("/deadletter?handler=audit", token).json();
    assert_eq!(other["total"], 0);
    let first = page["dead_letters"][0]["id"].as_i64().unwrap();
    let unknown = api.post("/deadletter/replay", token, Some(r#"{"ids":[999999]}"#));
    assert_eq!(unknown.status, 404, "{unknown:?}");
    let both = api.post(
        "/deadletter/replay",
        token,
        Some(r#"{"ids":[1],"all":true}"#),
    );
    assert_eq!(both.status, 400);
    let marked = api.post(
        "/deadletter/replay",
        token,
        Some(&format!(r#"{{"ids":[{first}]}}"#)),
    );
    assert_eq!(marked.json()["marked"], 1, "{marked:?}");
    // The server now answers 200: the replay delivers and its letter goes.
    eventually("the replayed letter gone", || {
        api.get("/deadletter", token).json()["total"] == 2
    });
    let purged = api.delete("/deadletter?older_than=1d", token).json();
    assert_eq!(purged["purged"], 0);
    let purged = api.delete("/deadletter", token).json();
    assert_eq!(purged["purged"], 2);
    let bad = api.delete("/deadletter?older_than=soon", token);
    assert_eq!(bad.status, 400);
    assert!(
        bad.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("older_than")
    );
    // Each change is logged with the token's name, never the token.
    let logged = daemon.log_line("route=\"DELETE /deadletter\"");
    assert!(
        logged.contains("token=\"ops\"") || logged.contains("token=ops"),
        "{logged}"
    );
    assert!(!daemon.log().contains("ops-secret-token"));
}

#[test]
fn tail_shows_events_and_a_stalled_listener_never_holds_up_delivery() {
    let (daemon, api) = daemon_with_admin("");
    let config = daemon.config.to_str().unwrap().to_owned();
    let mut tail = Command::new(BIN)
        .args(["tail", "-c", &config])
        .env("JOBHOOK_TOKEN", "ops-secret-token")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (shown, lines) = std::sync::mpsc::channel();
    let output = tail.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            if shown.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    // A listener that never reads: its socket buffers fill, then it lags.
    let stalled = api.stream("/events", Some("ops-secret-token"));
    stalled
        .socket()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // The tail shows events from when it connected: send until it does.
    let mut seen = Vec::new();
    let mut probes = 0;
    eventually("the tail showing an event", || {
        probes += 1;
        daemon.send(&[&event(&format!("probe{probes}"))]);
        seen.extend(lines.recv_timeout(Duration::from_millis(200)));
        seen.iter().any(|line| line.contains("accepted"))
    });
    let accepted = seen
        .iter()
        .find(|line| line.contains("accepted"))
        .unwrap()
        .clone();
    assert!(
        accepted.contains("OnFinish Inventory 6e4c1c5b-8b41-4c43-9f0f-2f4e9d3a1b11 probe"),
        "{accepted}"
    );
    let id = accepted.rsplit(' ').next().unwrap().to_owned();
    while !seen
        .iter()
        .any(|line| line.contains(&format!("audit {id} ")))
    {
        seen.push(
            lines
                .recv_timeout(Duration::from_secs(20))
                .expect("an outcome line"),
        );
    }
    let outcome = seen
        .iter()
        .find(|line| line.contains(&format!("audit {id} ")))
        .unwrap();
    assert!(outcome.contains("success"), "{outcome}");
    tail.kill().unwrap();
    tail.wait().unwrap();

    // Far more entries than the stream keeps for one listener; the one that
    // never reads is left behind, and delivery does not wait for it.
    let total = 10_000;
    let started = Instant::now();
    let mut client = daemon.connect();
    for chunk in (0..total).collect::<Vec<_>>().chunks(500) {
        // Long job types make long entries: far more than the sockets
        // between the daemon and the stalled listener hold (a few MiB).
        let lines: Vec<String> = chunk
            .iter()
            .map(|n| event(&format!("bulk{n}")).replace("Inventory", &"Inventory".repeat(400)))
            .collect();
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        client.write_lines(&lines);
        client.read_replies(lines.len());
    }
    let delivered = wait_for_lines(&daemon.path("out/audit.log"), total + probes);
    println!(
        "{total} events delivered in {:?} beside a stalled listener",
        started.elapsed()
    );
    assert!(delivered.iter().any(|line| line.contains("bulk9999")));
    let mut stalled = stalled;
    let mut missed = 0;
    while let Some(line) = stalled.next_line() {
        if line["type"] == "missed" {
            missed += line["missed"].as_u64().unwrap();
            break;
        }
    }
    assert!(
        missed > 0,
        "the stalled listener should have been told it missed entries"
    );
}

#[test]
fn reload_command_exit_codes_and_bad_addresses() {
    let (daemon, _api) = daemon_with_admin("");
    let config = daemon.config.to_str().unwrap();
    let run = |token: &str| {
        Command::new(BIN)
            .args(["reload", "-c", config])
            .env("JOBHOOK_TOKEN", token)
            .output()
            .unwrap()
    };
    let ok = run("ops-secret-token");
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    assert!(String::from_utf8_lossy(&ok.stdout).contains("config reloaded: 1 handler(s)"));
    let refused = run("reader-secret-token");
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("403: token `reader` lacks the permission `reload`")
    );
    // A daemon that is not there: exit 2.
    let gone = daemon.config.with_file_name("gone.toml");
    std::fs::write(
        &gone,
        format!("[admin]\nlisten = \"127.0.0.1:{}\"\n", free_port()),
    )
    .unwrap();
    let unreachable = Command::new(BIN)
        .args(["reload", "-c", gone.to_str().unwrap()])
        .env("JOBHOOK_TOKEN", "x")
        .output()
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(2), "{unreachable:?}");
}

#[test]
fn check_refuses_a_remote_listener_and_unreadable_tokens() {
    let (_dir, config) =
        util::config_dir(&format!("{AUDIT}\n[admin]\nlisten = \"0.0.0.0:9464\"\n"));
    util::check_refuses(
        &config,
        "[admin] listen = \"0.0.0.0:9464\" is not a loopback address",
    );
    let remote_allowed =
        format!("{AUDIT}\n[admin]\nlisten = \"0.0.0.0:9464\"\nallow_remote = true\n");
    let (_dir, config) = util::config_dir(&remote_allowed);
    let output = util::jobhook(&["check", "-c", config.to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let unset = format!(
        "{AUDIT}\n[admin]\nlisten = \"127.0.0.1:9464\"\n[[admin.tokens]]\nname = \"ci\"\ntoken = {{ env = \"JOBHOOK_TEST_UNSET_TOKEN\" }}\npermissions = [\"reload\"]\n"
    );
    let (_dir, config) = util::config_dir(&unset);
    util::check_refuses(
        &config,
        "`ci`: cannot read the token: environment variable JOBHOOK_TEST_UNSET_TOKEN is not set",
    );
    let typo = format!(
        "{AUDIT}\n[admin]\nlisten = \"127.0.0.1:9464\"\n[[admin.tokens]]\nname = \"ci\"\ntoken = \"t\"\npermissions = [\"reload:all\"]\n"
    );
    let (_dir, config) = util::config_dir(&typo);
    util::check_refuses(&config, "reload:all");
}

#[allow(dead_code)]
fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// A config with comments everywhere, as an operator keeps it.
const COMMENTED: &str = r#"
# The chains. OnFinish ends in the audit file.
[hooks]
OnStart = ["audit"]   # every start
OnFinish = [
  "audit",  # always first
]

# Keeps a line per event.
[handlers.audit]
library = "TextFileHandler"
file_path = "out/audit.log"   # relative to this file

# The ITSM endpoint (off for now).
[handlers.itsm]
library = "HttpHandler"
url = "https://itsm.invalid/api"
basic_user = "svc"
basic_password = "itsm-secret-password"
signing_secret = "itsm-signing-secret"
enabled = false
"#;

/// The lines of `after` that are not in `before` and the other way round.
fn changed_lines(before: &str, after: &str) -> (Vec<String>, Vec<String>) {
    let only = |a: &str, b: &str| -> Vec<String> {
        let b: Vec<&str> = b.lines().collect();
        a.lines()
            .filter(|line| !b.contains(line))
            .map(str::to_owned)
            .collect()
    };
    (only(before, after), only(after, before))
}

#[test]
fn handlers_are_registered_changed_and_removed_keeping_the_operators_file() {
    let sink = HttpServer::start();
    let (daemon, api) = daemon_with_admin(COMMENTED);
    let token = Some("ops-secret-token");
    let read = || std::fs::read_to_string(&daemon.config).unwrap();

    let listed = api.get("/handlers", Some("reader-secret-token")).json();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["audit", "itsm"]);
    let itsm = api.get("/handlers/itsm", token).json();
    assert_eq!(
        (itsm["ClassName"].as_str(), itsm["Enabled"].as_bool()),
        (Some("HttpHandler"), Some(false))
    );
    assert_eq!(itsm["Settings"]["basic_password"], "<redacted>", "{itsm}");
    assert_eq!(api.get("/handlers/nobody", token).status, 404);

    // Register: the new section and a chain entry are the only new lines.
    let before = read();
    let registration = format!(
        r#"{{"Name":"notify","DisplayName":"Notify the ITSM","ClassName":"HttpHandler",
            "SupportedEvents":["OnFinish"],"JobTypes":["Inventory"],
            "URL":"{}","BasicUser":"svc","BasicPassword":"notify-secret-password"}}"#,
        sink.url("/hook")
    );
    let registered = api.post("/handlers", token, Some(&registration));
    assert_eq!(registered.status, 201, "{registered:?}");
    assert_eq!(
        registered.json()["handler"]["SupportedEvents"],
        serde_json::json!(["OnFinish"])
    );
    let after = read();
    let (removed, added) = changed_lines(&before, &after);
    assert!(removed.is_empty(), "register removed {removed:?}");
    assert!(
        added.iter().any(|line| line.contains("[handlers.notify]")),
        "{added:?}"
    );
    assert!(
        added.iter().any(|line| line.trim() == r#""notify","#)
            || added.iter().any(|line| line.contains("\"notify\"")),
        "{added:?}"
    );
    assert!(
        after.contains("# The ITSM endpoint (off for now).") && after.contains("# always first")
    );
    // It is live: it handles the next event.
    assert_eq!(daemon.send(&[&event("r1")])[0]["ok"], true);
    let delivered = sink.wait_for(1);
    assert_eq!(delivered[0].json()["Id"], "r1");
    // A second registration of the name: 409, file unchanged.
    let again = api.post("/handlers", token, Some(&registration));
    assert_eq!(again.status, 409, "{again:?}");
    assert_eq!(read(), after);

    // Enable and disable touch one line each.
    let before = read();
    assert_eq!(api.post("/handlers/itsm/enable", token, None).status, 200);
    let (removed, added) = changed_lines(&before, &read());
    assert_eq!(
        (removed, added),
        (
            vec!["enabled = false".to_owned()],
            vec!["enabled = true".to_owned()]
        )
    );
    assert_eq!(api.get("/handlers/itsm", token).json()["Enabled"], true);
    let before = read();
    let disabled = api.post("/handlers/notify/disable", token, None);
    assert_eq!(disabled.status, 200, "{disabled:?}");
    let (removed, added) = changed_lines(&before, &read());
    assert_eq!(
        (removed.len(), added),
        (0, vec!["enabled = false".to_owned()])
    );

    // Delete: the section and its chain entry go, nothing else.
    let before = read();
    assert_eq!(api.delete("/handlers/notify", token).status, 200);
    let after = read();
    let (removed, added) = changed_lines(&before, &after);
    assert!(added.is_empty(), "{added:?}");
    assert!(
        removed
            .iter()
            .any(|line| line.contains("[handlers.notify]")),
        "{removed:?}"
    );
    assert!(!after.contains("notify"), "{after}");
    assert!(after.contains("# Keeps a line per event."));
    assert_eq!(api.get("/handlers/notify", token).status, 404);

    // A bad registration: 422 with every problem; the file is untouched.
    let before = read();
    let bad = api.post(
        "/handlers",
        token,
        Some(r#"{"Name":"broken","ClassName":"HttpHandler","SupportedEvents":["OnFnish"],"URL":"http://127.0.0.1:9/","Retires":3}"#),
    );
    assert_eq!(bad.status, 422, "{bad:?}");
    let problems = bad.json()["problems"].to_string();
    assert!(
        problems.contains("`Retires`") && problems.contains("OnFnish"),
        "{problems}"
    );
    assert_eq!(read(), before);
    let shapeless = api.post("/handlers", token, Some(r#"{"ClassName":"HttpHandler"}"#));
    assert_eq!(shapeless.status, 400, "{shapeless:?}");
    assert_eq!(api.post("/handlers", token, Some("not json")).status, 400);

    // Someone edits the file (badly: the running config stays): a change
    // made on what the daemon read would lose that edit, so it is refused.
    let edited = format!("{before}\n[handlers.half_written\n");
    std::fs::write(&daemon.config, &edited).unwrap();
    daemon.log_line("config reload failed");
    let conflict = api.post("/handlers/audit/disable", token, None);
    assert_eq!(conflict.status, 409, "{conflict:?}");
    assert_eq!(read(), edited);

    // No secret in any answer or log line.
    let answers = [
        api.get("/handlers", token).body,
        api.get("/handlers/itsm", token).body,
        registered.body.clone(),
    ];
    let log = daemon.log();
    for secret in [
        "itsm-secret-password",
        "itsm-signing-secret",
        "notify-secret-password",
        "ops-secret-token",
        "reader-secret-token",
    ] {
        for answer in &answers {
            assert!(!answer.contains(secret), "{secret} in an answer: {answer}");
        }
        assert!(!log.contains(secret), "{secret} in the log");
    }
    assert!(
        log.contains("route=\"POST /handlers\"") || log.contains("route=POST /handlers"),
        "{log}"
    );
}

#[test]
fn handlers_commands_print_tables_and_json_and_say_why_they_are_refused() {
    let (daemon, _api) = daemon_with_admin(COMMENTED);
    let config = daemon.config.to_str().unwrap().to_owned();
    let token_file = daemon.path("token");
    std::fs::write(&token_file, "ops-secret-token\n").unwrap();
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .args(["-c", &config, "--token-file", token_file.to_str().unwrap()])
            .env_remove("JOBHOOK_TOKEN");
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.unwrap_or("").as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, table, _) = run(&["handlers", "list"], None);
    assert_eq!(code, Some(0));
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("LIBRARY"),
        "{table}"
    );
    assert!(
        lines.iter().any(|line| line.starts_with("itsm")
            && line.contains("HttpHandler")
            && line.contains(" no ")),
        "{table}"
    );
    let registration = r#"{"Name":"copy","ClassName":"TextFileHandler","SupportedEvents":["OnStart"],"FilePath":"out/copy.log"}"#;
    let (code, out, err) = run(&["handlers", "register", "-"], Some(registration));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("handler `copy` registered"), "{out}");
    let (code, shown, _) = run(&["handlers", "show", "copy", "--json"], None);
    assert_eq!(code, Some(0));
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["Settings"]["file_path"], "out/copy.log");
    let (code, shown, _) = run(&["handlers", "show", "itsm"], None);
    assert_eq!(code, Some(0));
    assert!(shown.contains("basic_password = <redacted>"), "{shown}");
    assert!(!shown.contains("itsm-secret-password"));
    let (code, _, err) = run(&["handlers", "disable", "nobody"], None);
    assert_eq!(code, Some(1));
    assert!(err.contains("404: no handler named `nobody`"), "{err}");
    let (code, out, _) = run(&["handlers", "remove", "copy"], None);
    assert_eq!((code, out.trim()), (Some(0), "handler `copy` removed"));
    let (code, _, err) = run(
        &["handlers", "register", "-"],
        Some("{\"Name\":\"x\",\"ClassName\":\"HttpHandler\",\"SupportedEvents\":[\"OnStart\"]}"),
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("422") && err.contains("handlers.toml:"),
        "{err}"
    );
}
