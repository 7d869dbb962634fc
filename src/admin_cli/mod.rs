//! The commands that talk to a running daemon through its admin API:
//! `jobhook handlers …`, `jobhook reload` and `jobhook tail`.
//!
//! The daemon is the one named by `-c`: its `[admin] listen` address, and a
//! token from `--token-file` or `$JOBHOOK_TOKEN`. Answers print as readable
//! text, or as the API's JSON with `--json`. Exit codes: 0 done, 1 refused
//! (the daemon answered with an error), 2 cannot reach the daemon.

mod connection;
mod print;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;

use connection::{Admin, Failure};

/// How to reach the admin API, for every command here.
#[derive(Debug, Args)]
pub struct Access {
    /// File holding the bearer token (default: $JOBHOOK_TOKEN).
    #[arg(long, value_name = "FILE", global = true)]
    token_file: Option<PathBuf>,
    /// Print the API's JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
pub enum HandlersAction {
    /// List the handlers: name, library, enabled, phases, job types.
    List,
    /// Show one handler with its settings (secrets redacted).
    Show { name: String },
    /// Enable a handler (written into handlers.toml, then reloaded).
    Enable { name: String },
    /// Disable a handler (written into handlers.toml, then reloaded).
    Disable { name: String },
    /// Register a handler from a JSON file (`-`: standard input), in the
    /// shape of Keyfactor's event handler registration.
    Register {
        #[arg(value_name = "FILE|-")]
        file: PathBuf,
    },
    /// Remove a handler's section and its hook entries.
    Remove { name: String },
}

/// `jobhook handlers …`.
pub fn handlers(config: &Path, access: &Access, action: HandlersAction) -> ExitCode {
    let request = |admin: &Admin| -> Result<Value, Failure> {
        match &action {
            HandlersAction::List => admin.get("/handlers"),
            HandlersAction::Show { name } => admin.get(&format!("/handlers/{}", segment(name))),
            HandlersAction::Enable { name } => {
                admin.post(&format!("/handlers/{}/enable", segment(name)), None)
            }
            HandlersAction::Disable { name } => {
                admin.post(&format!("/handlers/{}/disable", segment(name)), None)
            }
            HandlersAction::Register { file } => {
                let body = read_json(file).map_err(Failure::Input)?;
                admin.post("/handlers", Some(body))
            }
            HandlersAction::Remove { name } => {
                admin.delete(&format!("/handlers/{}", segment(name)))
            }
        }
    };
    run(config, access, |admin| {
        let answer = request(admin)?;
        if access.json {
            print::json(&answer);
        } else {
            match &action {
                HandlersAction::List => print::handler_table(&answer),
                HandlersAction::Show { .. } => print::handler(&answer),
                _ => print::change(&answer),
            }
        }
        Ok(())
    })
}

/// `jobhook reload`.
pub fn reload(config: &Path, access: &Access) -> ExitCode {
    run(config, access, |admin| {
        let answer = admin.post("/reload", None)?;
        if access.json {
            print::json(&answer);
        } else {
            print::reloaded(&answer);
        }
        Ok(())
    })
}

/// `jobhook tail`: prints each accepted event and handler outcome as it
/// happens, until interrupted.
pub fn tail(config: &Path, access: &Access, handler: Option<&str>) -> ExitCode {
    run(config, access, |admin| {
        let path = match handler {
            Some(handler) => format!("/events?handler={}", segment(handler)),
            None => "/events".to_owned(),
        };
        admin.stream(&path, |line| {
            if access.json {
                println!("{line}");
            } else {
                print::live(line);
            }
        })
    })
}

fn run(
    config: &Path,
    access: &Access,
    work: impl FnOnce(&Admin) -> Result<(), Failure>,
) -> ExitCode {
    let outcome =
        Admin::from_config(config, access.token_file.as_deref()).and_then(|admin| work(&admin));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("jobhook: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

/// A handler name as one path segment.
fn segment(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn read_json(file: &Path) -> Result<Value, String> {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|err| format!("cannot read standard input: {err}"))?
    } else {
        std::fs::read_to_string(file)
            .map_err(|err| format!("cannot read {}: {err}", file.display()))?
    };
    serde_json::from_str(&text).map_err(|err| format!("{}: not JSON: {err}", file.display()))
}
