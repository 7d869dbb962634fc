//! `jobhook service install|uninstall` on Windows: registers the service
//! `jobhook` (automatic start, restarted on failure, run as a virtual
//! service account unless `--user` names one) on a config under
//! `%ProgramData%\jobhook`, written where there is none yet; or stops and
//! removes it, keeping config, scripts, spool and logs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use windows_service::service::{
    Service, ServiceAccess, ServiceAction, ServiceActionType, ServiceErrorControl,
    ServiceFailureActions, ServiceFailureResetPeriod, ServiceInfo, ServiceStartType, ServiceState,
    ServiceType,
};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

use super::windows::NAME;
use super::{Install, files};
use crate::config::default_config_path;

/// The repository's config: its relative paths (spool, handlers' files)
/// land under `%ProgramData%\jobhook`; the daemon's own log too, as the
/// service has no console.
const CONFIG: &str = include_str!("../../handlers.toml");
const LOG_DIR_UNSET: &str = "# dir = \"var/log\"";
const LOG_DIR: &str = "dir = \"logs\"";
/// A virtual account: no password, no rights beyond those granted to it.
const DEFAULT_ACCOUNT: &str = r"NT SERVICE\jobhook";
const DESCRIPTION: &str = "Routes job-completion events received on the named pipe \\\\.\\pipe\\jobhook through HTTP, Lua and text-file handlers.";
/// ERROR_SERVICE_DOES_NOT_EXIST.
const NO_SUCH_SERVICE: i32 = 1060;

pub fn install(config: Option<PathBuf>, options: Install) -> anyhow::Result<()> {
    ensure!(
        options.root.is_none(),
        "--root is for installing the systemd files under another root (Linux)"
    );
    let config = config.unwrap_or_else(default_config_path);
    ensure!(
        config.is_absolute(),
        "-c {}: the service's config must be an absolute path",
        config.display()
    );
    files::config(&config, &CONFIG.replace(LOG_DIR_UNSET, LOG_DIR))?;
    let account = options.user.unwrap_or_else(|| DEFAULT_ACCOUNT.to_owned());
    let info = ServiceInfo {
        name: NAME.into(),
        display_name: "jobhook".into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: std::env::current_exe().context("cannot tell where jobhook.exe is")?,
        launch_arguments: vec!["run".into(), "-c".into(), config.clone().into_os_string()],
        dependencies: vec![],
        account_name: Some(account.clone().into()),
        account_password: None,
    };
    let manager = ServiceManager::local_computer(
        None::<&str>,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    )
    .context("cannot open the service manager (run as Administrator)")?;
    let access = ServiceAccess::QUERY_STATUS | ServiceAccess::CHANGE_CONFIG | ServiceAccess::START;
    let service = match manager.open_service(NAME, access) {
        Ok(service) => {
            service
                .change_config(&info)
                .context("cannot update the service")?;
            println!("updated the service {NAME}");
            service
        }
        Err(_) => {
            let service = manager
                .create_service(&info, access)
                .context("cannot register the service")?;
            println!("registered the service {NAME}, running as {account}");
            service
        }
    };
    configure(&service)?;
    if let Some(folder) = config.parent() {
        grant(&account, folder)?;
    }
    if !options.no_enable && service.query_status()?.current_state == ServiceState::Stopped {
        service
            .start::<&str>(&[])
            .context("cannot start the service")?;
        println!("started the service {NAME}");
    }
    Ok(())
}

/// Description, and recovery: restarted after a crash or a failed exit
/// (5 s, then 30 s, then every minute; the count resets after a day).
fn configure(service: &Service) -> anyhow::Result<()> {
    service.set_description(DESCRIPTION)?;
    let restart = |seconds| ServiceAction {
        action_type: ServiceActionType::Restart,
        delay: Duration::from_secs(seconds),
    };
    service.update_failure_actions(ServiceFailureActions {
        reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(24 * 3600)),
        reboot_msg: None,
        command: None,
        actions: Some(vec![restart(5), restart(30), restart(60)]),
    })?;
    // A stop with a non-zero exit code (a config that no longer loads, a
    // disk that failed) counts as a failure, not only a crash.
    service.set_failure_actions_on_non_crash_failures(true)?;
    Ok(())
}

/// Lets `account` change what is under `folder` (the spool, the logs and
/// the handlers' files live there), for it and for what it creates.
fn grant(account: &str, folder: &Path) -> anyhow::Result<()> {
    let status = Command::new("icacls")
        .arg(folder)
        .args(["/grant", &format!("{account}:(OI)(CI)M"), "/Q"])
        .status()
        .context("cannot run icacls")?;
    ensure!(
        status.success(),
        "icacls could not give {account} access to {} ({status})",
        folder.display()
    );
    Ok(())
}

pub fn uninstall(root: Option<PathBuf>) -> anyhow::Result<()> {
    ensure!(
        root.is_none(),
        "--root is for the systemd files under another root (Linux)"
    );
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .context("cannot open the service manager (run as Administrator)")?;
    let access = ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE;
    let service = match manager.open_service(NAME, access) {
        Ok(service) => service,
        Err(windows_service::Error::Winapi(err)) if err.raw_os_error() == Some(NO_SUCH_SERVICE) => {
            println!("the service {NAME} is not installed");
            return Ok(());
        }
        Err(err) => return Err(err).context("cannot open the service"),
    };
    if service.query_status()?.current_state != ServiceState::Stopped {
        service.stop().context("cannot stop the service")?;
        // The stop finishes accepted events first (shutdown_timeout).
        let deadline = Instant::now() + Duration::from_secs(120);
        while service.query_status()?.current_state != ServiceState::Stopped
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    service.delete().context("cannot remove the service")?;
    println!(
        "removed the service {NAME}; kept the config, scripts, spool and logs in {}",
        default_config_path()
            .parent()
            .unwrap_or(Path::new(""))
            .display()
    );
    Ok(())
}
