//! What a reload does with a valid config that it must not apply as it is:
//! one that looks like an accident is refused, and settings read only at
//! start keep their running value.

use crate::setup::Config;
use crate::sources::settings::JobHistorySettings;

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
/// `[daemon]` key but `scripts_dir`, the spool's `[hooks]` thresholds,
/// `[log]`, and `[sources]` (a source runs as it started; its cursor lives
/// on in the spool across the restart).
pub fn restart_needed(running: &Config, new: &Config) -> Vec<&'static str> {
    compared(running, new)
        .into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect()
}

/// `("[SECTION] field", changed)` for each setting read only at start.
fn compared(running: &Config, new: &Config) -> Vec<(&'static str, bool)> {
    macro_rules! compared {
        ($section:literal, $old:expr, $new:expr; $($field:ident),+ $(,)?) => {
            [$((concat!("[", $section, "] ", stringify!($field)), $old.$field != $new.$field)),+]
        };
    }
    let (daemon, next) = (&running.daemon, &new.daemon);
    let daemon_keys = compared!("daemon", daemon, next;
        socket, socket_mode, pipe, pipe_clients, workers, max_event_bytes, max_connections, idle_timeout,
        stall_timeout, queue_capacity, shutdown_timeout, spool_dir, fsync, max_spool_bytes,
        dedupe_window, max_dedupe_bytes,
    );
    let hook_keys = compared!("hooks", running.hooks, new.hooks;
        queue_filling_threshold, queue_emptying_threshold,
    );
    daemon_keys
        .into_iter()
        .chain(hook_keys)
        .chain([
            ("[log]", running.log != new.log),
            ("[admin]", running.admin != new.admin),
            ("[ingest.http]", running.http_ingest != new.http_ingest),
        ])
        .chain([("[sources]", sources(running) != sources(new))])
        .collect()
}

/// Each source's name and settings (not where its section is written).
fn sources(config: &Config) -> Vec<(&str, &JobHistorySettings)> {
    config
        .sources
        .iter()
        .map(|source| (source.name.as_str(), &source.job_history))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{DaemonSettings, keys_of};

    /// `[daemon]` keys a reload applies; every other one needs a restart.
    const APPLIED_ON_RELOAD: &[&str] = &["scripts_dir"];

    #[test]
    fn a_changed_source_needs_a_restart_and_a_moved_one_does_not() {
        let parse = |text: &str| {
            let text = format!(
                "[hooks]\nOnFinish = [\"sink\"]\n[handlers.sink]\nlibrary = \"TextFileHandler\"\n\
                 file_path = \"x\"\n{text}"
            );
            crate::setup::parse(&text, Path::new("/etc/jobhook/handlers.toml"))
                .config
                .expect("valid")
        };
        let source = "[sources.kf]\ntype = \"keyfactor_job_history\"\nbase_url = \"https://c/\"\n";
        let running = parse(source);
        let moved = parse(&format!("\n\n{source}"));
        assert!(restart_needed(&running, &moved).is_empty());
        let changed = parse(&format!("{source}interval = \"1m\"\n"));
        assert_eq!(restart_needed(&running, &changed), ["[sources]"]);
    }

    #[test]
    fn every_daemon_key_but_the_reloaded_ones_is_compared() {
        let text = "[hooks]\nOnFinish = [\"sink\"]\n[handlers.sink]\nlibrary = \"TextFileHandler\"\nfile_path = \"x\"\n";
        let config = crate::setup::parse(text, Path::new("/etc/jobhook/handlers.toml"))
            .config
            .expect("valid");
        let compared: Vec<&str> = compared(&config, &config)
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        for key in keys_of::<DaemonSettings>() {
            let named = compared.contains(&format!("[daemon] {key}").as_str());
            assert_eq!(
                named,
                !APPLIED_ON_RELOAD.contains(key),
                "[daemon] {key}: compared for a restart = {named}"
            );
        }
    }
}
