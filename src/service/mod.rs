//! jobhook under a service manager (SPEC §9): `jobhook run` as systemd or
//! the Windows service manager starts it, and `jobhook service
//! install|uninstall`.
//!
//! - [`systemd`] — readiness, reload and stop notifications, the watchdog.
//! - `install` — the systemd unit, sysusers.d and tmpfiles.d files and a
//!   service-ready config, written (and enabled) or removed.
//! - `windows` — the Windows service: registering it, and its service main
//!   around the same daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

mod files;
#[cfg(unix)]
mod install;
#[cfg(unix)]
pub mod systemd;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
mod windows_install;

/// `jobhook service …`
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Register jobhook as a service and start it. Linux: writes the systemd
    /// unit, a sysusers.d and a tmpfiles.d file, and (only where absent) a
    /// service-ready config and the example scripts; then creates the user
    /// and enables the unit. Windows: registers the service `jobhook`.
    /// `-c FILE` names the config the service runs on (default: the
    /// system-wide file). Idempotent.
    Install(Install),
    /// Stop and remove what `install` registered. The config, the scripts
    /// and the spool are kept.
    Uninstall {
        /// Linux: remove from under this root instead of `/` (nothing is run).
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
    },
}

/// `jobhook service install`'s options.
#[derive(Debug, clap::Args)]
pub struct Install {
    /// The account the service runs as. Linux: a system user created by
    /// sysusers.d (default `jobhook`); Windows: default the virtual account
    /// `NT SERVICE\jobhook`.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Linux: install under this root instead of `/` (packaging, tests):
    /// the files are written, nothing is run.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Register the service without enabling or starting it.
    #[arg(long)]
    pub no_enable: bool,
}

/// `jobhook run`: the daemon until SIGTERM or SIGINT, telling systemd how
/// it is doing when systemd started it.
#[cfg(unix)]
pub fn run(config_file: PathBuf) -> ExitCode {
    use crate::daemon;
    let shutdown = tokio_util::sync::CancellationToken::new();
    daemon::main(
        config_file,
        systemd::supervision(),
        shutdown.clone(),
        daemon::stop_requests(shutdown),
    )
}

/// `jobhook run`: as the Windows service when the service manager started
/// it, else in the console until Ctrl-C.
#[cfg(windows)]
pub fn run(config_file: PathBuf) -> ExitCode {
    windows::run(config_file)
}

/// Runs `jobhook service ACTION`; `config` is `-c FILE` if given.
pub fn command(action: Action, config: Option<PathBuf>) -> ExitCode {
    #[cfg(unix)]
    let result = match action {
        Action::Install(options) => install::install(config, options),
        Action::Uninstall { root } => install::uninstall(root),
    };
    #[cfg(windows)]
    let result = match action {
        Action::Install(options) => windows_install::install(config, options),
        Action::Uninstall { root } => windows_install::uninstall(root),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("jobhook: {err:#}");
            ExitCode::from(1)
        }
    }
}
