//! systemd's notify protocol (`Type=notify`, sd_notify(3)): `READY=1` once
//! the daemon accepts events, `RELOADING=1` … `READY=1` around every reload,
//! `STOPPING=1`, a `STATUS=` line for `systemctl status`, and `WATCHDOG=1`
//! pings while the event path is alive. Without `NOTIFY_SOCKET` in the
//! environment none of it runs.

use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tracing::{error, warn};

use crate::lifecycle::{Observer, Observers, Reloaded, Supervision};

/// A part of the event path silent this long (or half the watchdog
/// timeout, if that is longer) is stuck. The spool thread comes round at
/// least once a second while idle, the runtime's heartbeat once a second.
const SILENT_LIMIT: Duration = Duration::from_secs(3);

/// What the daemon reports to systemd, if systemd started it: a notifier,
/// and a watchdog thread if `WatchdogSec=` is set.
pub fn supervision() -> Supervision {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return Supervision::default();
    }
    let supervision = Supervision {
        observers: Observers::new(vec![Arc::new(Notifier)]),
        ..Supervision::default()
    };
    if let Some(timeout) = sd_notify::watchdog_enabled() {
        let watched = supervision.clone();
        let spawned = std::thread::Builder::new()
            .name("watchdog".to_owned())
            .spawn(move || watchdog(&watched, timeout));
        // Before the log is set up: straight to stderr (the journal).
        if let Err(err) = spawned {
            eprintln!(
                "jobhook: cannot start the watchdog thread: {err}; systemd will restart jobhook"
            );
        }
    }
    supervision
}

/// Tells systemd each lifecycle event.
struct Notifier;

impl Observer for Notifier {
    fn ready(&self) {
        notify(&[NotifyState::Ready, NotifyState::Status("accepting events")]);
    }

    fn reloading(&self) {
        let mut states = vec![
            NotifyState::Reloading,
            NotifyState::Status("reloading the config"),
        ];
        // With the time sent, systemd (`Type=notify-reload`) can tell this
        // reload from an earlier one.
        states.extend(NotifyState::monotonic_usec_now().ok());
        notify(&states);
    }

    fn reloaded(&self, outcome: &Reloaded) {
        let status = match outcome {
            Reloaded::Applied => "accepting events; config reloaded".to_owned(),
            Reloaded::Refused { problems } => format!(
                "accepting events on the previous config; the last reload failed: {}",
                problems.first().map_or("", String::as_str)
            ),
            // A stop began: STOPPING=1 has been sent, READY=1 must not follow.
            Reloaded::Abandoned => return,
        };
        notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
    }

    fn stopping(&self, within: Duration) {
        // A shutdown_timeout longer than the unit's TimeoutStopSec= is
        // honoured: systemd waits for the whole stop.
        notify(&[
            NotifyState::Stopping,
            NotifyState::ExtendTimeoutUsec(u32::try_from(within.as_micros()).unwrap_or(u32::MAX)),
            NotifyState::Status("stopping: finishing accepted events"),
        ]);
    }
}

fn notify(states: &[NotifyState]) {
    if let Err(err) = sd_notify::notify(states) {
        warn!("cannot notify systemd: {err}");
    }
}

/// Pings systemd every half `timeout` while the spool thread and the
/// runtime both come round; a part that stays silent stops the pings, and
/// systemd restarts the daemon `timeout` after the last one. Runs for the
/// life of the process.
fn watchdog(supervision: &Supervision, timeout: Duration) {
    let interval = timeout / 2;
    let limit = SILENT_LIMIT.max(interval);
    let mut withheld = false;
    loop {
        std::thread::sleep(interval);
        match supervision.stuck(limit) {
            None => {
                if withheld {
                    warn!("the event path is moving again: watchdog pings resume");
                    withheld = false;
                }
                notify(&[NotifyState::Watchdog]);
            }
            Some((part, silent)) if !withheld => {
                withheld = true;
                let status = format!(
                    "{part} has been stuck for {}: watchdog pings withheld",
                    humantime::format_duration(Duration::from_secs(silent.as_secs()))
                );
                error!("{status}; systemd restarts jobhook if it stays stuck");
                notify(&[NotifyState::Status(&status)]);
            }
            Some(_) => {}
        }
    }
}
