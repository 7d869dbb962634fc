//! Delivery that scales with the endpoint: an HTTP handler's requests run
//! as tasks of their own, as many at once as its concurrency limit allows,
//! whatever `workers` is; the adaptive limit backs off from an endpoint
//! that is overloaded; events of one job stay in order.

#![cfg(unix)] // Drives the Unix socket; the Windows pipe shares its protocol code.

mod util;

use std::collections::HashMap;
use std::time::Duration;

use util::http::{HttpServer, Reply};
use util::{Daemon, eventually};

fn job(n: usize) -> String {
    format!("3f1e5a2b-8c7d-4e6f-9a0b-{n:012x}")
}

/// The repository's defaults (no `workers`, no `concurrency`) with one
/// HTTP handler on both phases.
fn daemon_for(server: &HttpServer) -> Daemon {
    Daemon::start(&format!(
        "[hooks]\nOnStart = [\"api\"]\nOnFinish = [\"api\"]\n\
         [handlers.api]\nlibrary = \"HttpHandler\"\nurl = \"{}\"\nretry_interval = \"50ms\"\n",
        server.url("/events")
    ))
}

/// Sends events `first..last`, each of a job of its own; all must be
/// accepted.
fn send_events(daemon: &Daemon, first: usize, last: usize) {
    let lines: Vec<String> = (first..last)
        .map(|i| format!(r#"{{"Id":"e{i}","JobId":"{}"}}"#, job(i)))
        .collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    for reply in daemon.send(&lines) {
        assert_eq!(reply["ok"], true, "{reply}");
    }
}

fn after(pause_ms: u64, code: u16) -> Reply {
    Reply::After(
        Duration::from_millis(pause_ms),
        Box::new(Reply::status(code)),
    )
}

#[test]
fn an_endpoint_answering_in_50ms_gets_many_requests_at_once_with_the_defaults() {
    let server = HttpServer::start();
    server.otherwise(|_| after(50, 200));
    let mut daemon = daemon_for(&server);
    send_events(&daemon, 0, 1000);
    let requests = server.wait_for(1000);
    let mut ids: Vec<String> = requests
        .iter()
        .map(|request| request.json()["Id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1000, "an event was lost or sent twice");
    // `workers` defaults to the CPU count; before, that many were in flight.
    let peak = server.peak_in_flight();
    eprintln!("peak requests in flight: {peak}");
    assert!(peak >= 32, "only {peak} requests in flight at most");
    daemon.stop_within(Duration::from_secs(5));
}

#[test]
fn an_endpoint_answering_503_to_half_its_requests_gets_fewer_at_once() {
    let peak = |code: u16| {
        let server = HttpServer::start();
        server.otherwise(move |n| after(50, if n % 2 == 0 { code } else { 200 }));
        let daemon = daemon_for(&server);
        send_events(&daemon, 0, 400);
        eventually("150 requests", || server.requests().len() >= 150);
        let peak = server.peak_in_flight();
        drop(daemon);
        peak
    };
    let fine = peak(200);
    let overloaded = peak(503);
    eprintln!("peak in flight: {fine} answering 200, {overloaded} answering 503 to half");
    assert!(fine >= 16, "{fine}");
    assert!(
        overloaded * 2 <= fine,
        "{overloaded} in flight with 503s against {fine} without"
    );
}

#[test]
fn events_of_one_job_reach_a_slow_endpoint_in_order_under_concurrency() {
    let server = HttpServer::start();
    server.otherwise(|n| after(if n % 3 == 0 { 40 } else { 5 }, 200));
    let daemon = daemon_for(&server);
    // OnStart of each job, with OnFinish of a job started a little earlier
    // in between, so that the two phases of many jobs are in flight at once.
    let mut lines = Vec::new();
    for i in 0..200 {
        lines.push(format!(
            r#"{{"Id":"start{i}","JobId":"{}","Phase":"OnStart"}}"#,
            job(i)
        ));
        if i >= 3 {
            let j = i - 3;
            lines.push(format!(
                r#"{{"Id":"finish{j}","JobId":"{}","Phase":"OnFinish"}}"#,
                job(j)
            ));
        }
    }
    for j in 197..200 {
        lines.push(format!(
            r#"{{"Id":"finish{j}","JobId":"{}","Phase":"OnFinish"}}"#,
            job(j)
        ));
    }
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    for reply in daemon.send(&refs) {
        assert_eq!(reply["ok"], true, "{reply}");
    }
    let requests = server.wait_for(400);
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    for request in &requests {
        let event = request.json();
        seen.entry(event["JobId"].as_str().unwrap().to_owned())
            .or_default()
            .push(event["Phase"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen.len(), 200);
    for (job, phases) in &seen {
        assert_eq!(phases, &["OnStart", "OnFinish"], "job {job}");
    }
    assert!(
        server.peak_in_flight() >= 8,
        "only {} in flight: not concurrent",
        server.peak_in_flight()
    );
}

#[test]
fn a_script_that_calls_an_api_waits_on_it_without_holding_the_workers() {
    let server = HttpServer::start();
    server.otherwise(|_| after(100, 200));
    let script = format!(
        "function handle(e)\n\
           local status = http.request{{ method = 'POST', url = '{}', body = e.Id }}\n\
           return status == 200\n\
         end",
        server.url("/lookup")
    );
    let daemon = Daemon::start_with(
        "[daemon]\nworkers = 1\n[hooks]\nOnFinish = [\"lookup\"]\n\
         [handlers.lookup]\nlibrary = \"LuaHandler\"\nlua_script = \"lookup.lua\"\n",
        &[("scripts/lookup.lua", script.as_str())],
    );
    // The first call shows the script makes requests; the rest then run as
    // tasks, up to one per Lua state.
    send_events(&daemon, 0, 1);
    server.wait_for(1);
    send_events(&daemon, 1, 61);
    server.wait_for(61);
    let peak = server.peak_in_flight();
    eprintln!("peak script requests in flight with one worker: {peak}");
    assert!(peak >= 8, "only {peak} script requests in flight at once");
}
