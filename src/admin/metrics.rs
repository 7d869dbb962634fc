//! `GET /metrics`: the Prometheus text of everything [`crate::telemetry`]
//! counts, the spool's levels as of now, and the process's own figures.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Shared;
use crate::telemetry::counters;

pub async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let Some(handle) = &shared.metrics else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics are not recorded: another recorder was installed first\n",
        )
            .into_response();
    };
    counters::spool_levels(shared.spool.pending_events(), shared.spool.pending_bytes());
    let mut text = handle.render();
    process::append(&mut text);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// The standard `process_*` metrics, read from `/proc/self` (Linux only:
/// elsewhere there are none). A handful of lines did not justify a crate
/// that pulls a `/proc` parser in.
mod process {
    #[cfg(target_os = "linux")]
    pub fn append(text: &mut String) {
        use std::fmt::Write;
        let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
            return;
        };
        // Fields after the command name, which may hold spaces, in ( ).
        let Some(fields) = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect::<Vec<_>>())
        else {
            return;
        };
        // SAFETY: sysconf only reads a system setting.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        let field = |n: usize| fields.get(n).and_then(|f| f.parse::<f64>().ok());
        // Numbered as in proc(5), minus the first two (pid, comm).
        let (Some(utime), Some(stime), Some(threads), Some(start), Some(rss)) =
            (field(11), field(12), field(17), field(19), field(21))
        else {
            return;
        };
        let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|stat| {
            stat.lines()
                .find_map(|line| line.strip_prefix("btime "))
                .and_then(|secs| secs.trim().parse::<f64>().ok())
        });
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .map(|dir| dir.count())
            .ok();
        let ticks = ticks.max(1) as f64;
        let mut line = |name: &str, kind: &str, help: &str, value: f64| {
            let _ = write!(
                text,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        };
        line(
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent in seconds.",
            (utime + stime) / ticks,
        );
        line(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            rss * page as f64,
        );
        line(
            "process_threads",
            "gauge",
            "Number of OS threads in the process.",
            threads,
        );
        if let Some(open_fds) = open_fds {
            line(
                "process_open_fds",
                "gauge",
                "Number of open file descriptors.",
                open_fds as f64,
            );
        }
        if let Some(boot) = boot {
            line(
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since unix epoch in seconds.",
                boot + start / ticks,
            );
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn append(_text: &mut String) {}
}
