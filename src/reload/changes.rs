//! What a reload does with a valid config that it must not apply as it is:
//! one that looks like an accident is refused, and settings read only at
//! start keep their running value.

use crate::config::Config;

/// Why `new` looks like an accident rather than an edit, if it does: a
/// config that lost every hook, or whose `[daemon]` settings all fell back to
/// their defaults, is what a truncated or half-written file parses as.
pub fn accident(running: &Config, new: &Config) -> Option<&'static str> {
    let has_hooks = |config: &Config| config.hooks.chains().any(|(_, names)| !names.is_empty());
    if has_hooks(running) && !has_hooks(new) {
        return Some(
            "the new config has no hooks at all, so every event would be handled by nobody",
        );
    }
    if !running.daemon_is_default() && new.daemon_is_default() {
        return Some(
            "every [daemon] setting of the new config is back at its default, as in a truncated file",
        );
    }
    None
}

/// Settings read once at start, whose new value needs a restart: every
/// `[daemon]` key but `scripts_dir`, the spool's `[hooks]` thresholds, and
/// `[log]`.
pub fn restart_needed(running: &Config, new: &Config) -> Vec<&'static str> {
    let (daemon, next) = (&running.daemon, &new.daemon);
    let (hooks, next_hooks) = (&running.hooks, &new.hooks);
    [
        ("[daemon] socket", daemon.socket != next.socket),
        (
            "[daemon] socket_mode",
            daemon.socket_mode != next.socket_mode,
        ),
        ("[daemon] pipe", daemon.pipe != next.pipe),
        ("[daemon] workers", daemon.workers != next.workers),
        (
            "[daemon] max_event_bytes",
            daemon.max_event_bytes != next.max_event_bytes,
        ),
        (
            "[daemon] max_connections",
            daemon.max_connections != next.max_connections,
        ),
        (
            "[daemon] idle_timeout",
            daemon.idle_timeout != next.idle_timeout,
        ),
        (
            "[daemon] stall_timeout",
            daemon.stall_timeout != next.stall_timeout,
        ),
        (
            "[daemon] queue_capacity",
            daemon.queue_capacity != next.queue_capacity,
        ),
        (
            "[daemon] shutdown_timeout",
            daemon.shutdown_timeout != next.shutdown_timeout,
        ),
        ("[daemon] spool_dir", daemon.spool_dir != next.spool_dir),
        ("[daemon] fsync", daemon.fsync != next.fsync),
        (
            "[daemon] max_spool_bytes",
            daemon.max_spool_bytes != next.max_spool_bytes,
        ),
        (
            "[daemon] dedupe_window",
            daemon.dedupe_window != next.dedupe_window,
        ),
        (
            "[daemon] max_dedupe_bytes",
            daemon.max_dedupe_bytes != next.max_dedupe_bytes,
        ),
        (
            "[hooks] queue_filling_threshold",
            hooks.queue_filling_threshold != next_hooks.queue_filling_threshold,
        ),
        (
            "[hooks] queue_emptying_threshold",
            hooks.queue_emptying_threshold != next_hooks.queue_emptying_threshold,
        ),
        ("[log]", running.log != new.log),
    ]
    .into_iter()
    .filter_map(|(key, changed)| changed.then_some(key))
    .collect()
}
