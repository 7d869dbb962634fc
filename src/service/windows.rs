//! The Windows service `jobhook`: `jobhook run`, started by the service
//! manager, runs the same daemon as in a console and reports its state —
//! `StartPending` while it starts, `Running` once it accepts events,
//! `StopPending` (with wait hints and checkpoints) while a stop finishes
//! accepted events, `Stopped` with its exit code. Started from a console,
//! `jobhook run` is the console program it always was.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use windows_service::service::{
    ServiceControl, ServiceControlAccept, ServiceExitCode, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{
    self, ServiceControlHandlerResult, ServiceStatusHandle,
};
use windows_service::{define_windows_service, service_dispatcher};

use crate::daemon;
use crate::lifecycle::{Observer, Observers, Supervision};

/// The service's name (`sc query jobhook`).
pub const NAME: &str = "jobhook";

/// `StartServiceCtrlDispatcher`'s error when the process was not started by
/// the service manager (ERROR_FAILED_SERVICE_CONTROLLER_CONNECT).
const NOT_A_SERVICE: i32 = 1063;

/// How long the service manager is told a start may take before it is
/// reported again (opening a large spool can take a while).
const START_HINT: Duration = Duration::from_secs(30);
/// How often a stop in progress is reported, each time with the next
/// checkpoint: the service manager waits as long as they keep coming.
const STOP_REPORT: Duration = Duration::from_secs(5);

/// The config file `run` was given: the service main (called by the
/// service manager's dispatcher, without our arguments) reads it here.
static CONFIG: OnceLock<PathBuf> = OnceLock::new();
/// Whether the service's daemon failed, for `run` to return once the
/// dispatcher does.
static FAILED: AtomicBool = AtomicBool::new(false);

/// `jobhook run`: as the service when the service manager started it, else
/// in the console until Ctrl-C.
pub fn run(config_file: PathBuf) -> ExitCode {
    let _ = CONFIG.set(config_file.clone());
    match service_dispatcher::start(NAME, ffi_service_main) {
        Ok(()) if FAILED.load(Ordering::SeqCst) => ExitCode::from(1),
        Ok(()) => ExitCode::SUCCESS,
        Err(windows_service::Error::Winapi(err)) if err.raw_os_error() == Some(NOT_A_SERVICE) => {
            let shutdown = CancellationToken::new();
            daemon::main(
                config_file,
                Supervision::default(),
                shutdown.clone(),
                daemon::stop_requests(shutdown),
            )
        }
        Err(err) => {
            eprintln!(
                "jobhook: cannot run as a service: {:#}",
                anyhow::Error::new(err)
            );
            ExitCode::from(1)
        }
    }
}

define_windows_service!(ffi_service_main, service_main);

/// Runs on a thread of the dispatcher's until the daemon has stopped.
fn service_main(_arguments: Vec<OsString>) {
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    // Called on the dispatcher's thread: it only asks for the stop.
    let handler = move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            stop.cancel();
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let Ok(handle) = service_control_handler::register(NAME, handler) else {
        FAILED.store(true, Ordering::SeqCst);
        return;
    };
    let status = Status(Arc::new(Reported {
        handle,
        checkpoint: Mutex::new(Some(0)),
    }));
    status.report(ServiceState::StartPending, START_HINT);
    let supervision = Supervision {
        observers: Observers::new(vec![Arc::new(status.clone())]),
        ..Supervision::default()
    };
    let file = CONFIG
        .get()
        .cloned()
        .unwrap_or_else(crate::config::default_config_path);
    let code = daemon::main(file, supervision, shutdown, std::future::pending());
    let failed = code != ExitCode::SUCCESS;
    FAILED.store(failed, Ordering::SeqCst);
    status.set(
        ServiceState::Stopped,
        Duration::ZERO,
        if failed {
            // A failure: the recovery actions restart the service.
            ServiceExitCode::ServiceSpecific(1)
        } else {
            ServiceExitCode::NO_ERROR
        },
    );
}

/// Reports the daemon's lifecycle to the service manager.
#[derive(Clone)]
struct Status(Arc<Reported>);

struct Reported {
    handle: ServiceStatusHandle,
    /// Raised with each report of a pending state; `None` once `Stopped`
    /// is reported, after which nothing is. Held while reporting, so that
    /// reports go out in the order their checkpoints say.
    checkpoint: Mutex<Option<u32>>,
}

impl Status {
    /// Reports a pending state (with the next checkpoint) or `Running`.
    fn report(&self, state: ServiceState, wait_hint: Duration) {
        self.set(state, wait_hint, ServiceExitCode::NO_ERROR);
    }

    fn set(&self, state: ServiceState, wait_hint: Duration, exit_code: ServiceExitCode) {
        let mut checkpoint = self.0.checkpoint.lock().unwrap_or_else(|e| e.into_inner());
        let Some(last) = *checkpoint else {
            return; // stopped
        };
        let pending = matches!(
            state,
            ServiceState::StartPending | ServiceState::StopPending
        );
        let next = if pending { last + 1 } else { 0 };
        *checkpoint = (state != ServiceState::Stopped).then_some(next);
        let status = ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            // Stop and the system's shutdown, once running (the service
            // manager sends no control to a pending service anyway).
            controls_accepted: if state == ServiceState::Running {
                ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN
            } else {
                ServiceControlAccept::empty()
            },
            exit_code,
            checkpoint: next,
            wait_hint,
            process_id: None,
        };
        if let Err(err) = self.0.handle.set_service_status(status) {
            tracing::error!(
                "cannot report the service's state: {:#}",
                anyhow::Error::new(err)
            );
        }
    }
}

impl Observer for Status {
    fn ready(&self) {
        self.report(ServiceState::Running, Duration::ZERO);
    }

    /// Reports `StopPending` now and then every [`STOP_REPORT`] with a new
    /// checkpoint, for as long as the stop may take (`within`); past that
    /// the service manager may judge it hung.
    fn stopping(&self, within: Duration) {
        let status = self.clone();
        let reports = within.as_secs() / STOP_REPORT.as_secs() + 1;
        std::thread::spawn(move || {
            for _ in 0..reports {
                status.report(ServiceState::StopPending, STOP_REPORT * 2);
                std::thread::sleep(STOP_REPORT);
            }
        });
    }
}
