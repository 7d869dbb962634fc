//! `jobhook deadletter`: list, replay and purge failed deliveries through
//! the spool's [`DeadLetters`](crate::spool::DeadLetters) interface — while
//! the daemon runs (it picks up replays within a second) or while it is
//! stopped (they run at its next start). It does not take the spool's lock,
//! which is the daemon's (each command is one transaction of its own), and
//! never creates a spool.

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;

use crate::setup::Config;
use crate::spool::{DeadLetter, DeadLetterId, Marked};

#[derive(Debug, Subcommand)]
pub enum Action {
    /// List dead letters: id, handler, attempts, last attempt, error.
    List {
        /// Print JSON (one array) with the events as the handlers saw them.
        #[arg(long)]
        json: bool,
        /// Only this handler's.
        #[arg(long, value_name = "H")]
        handler: Option<String>,
    },
    /// Run the handler of these dead letters again (or of all of them).
    Replay {
        /// Dead letter ids, as `list` prints them.
        #[arg(value_name = "ID", required_unless_present = "all")]
        ids: Vec<DeadLetterId>,
        /// Every dead letter (of `--handler`, if given).
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        #[arg(long, value_name = "H")]
        handler: Option<String>,
    },
    /// Delete dead letters whose last attempt is older than D (default: all).
    Purge {
        #[arg(long, value_name = "D", value_parser = crate::config::values::parse_duration)]
        older_than: Option<Duration>,
    },
}

pub fn run(config: &Config, action: Action) -> ExitCode {
    let mut spool =
        match crate::spool::open_dead_letters(&config.daemon.spool_dir, config.daemon.fsync) {
            Ok(spool) => spool,
            Err(err) => {
                eprintln!("jobhook: {:#}", anyhow::Error::new(err));
                return ExitCode::from(1);
            }
        };
    let done: anyhow::Result<()> = match action {
        Action::List { json, handler } => spool
            .list(handler.as_deref())
            .map(|letters| print(&letters, json))
            .map_err(Into::into),
        Action::Replay { ids, handler, .. } => spool
            .request_replay(&ids, handler.as_deref())
            .map(print_marked)
            .map_err(Into::into),
        Action::Purge { older_than } => spool
            .purge(older_than)
            .map(|purged| println!("{purged} dead letter(s) purged"))
            .map_err(Into::into),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("jobhook: spool {}: {err:#}", spool.location());
            ExitCode::from(1)
        }
    }
}

fn print_marked(Marked { marked, already }: Marked) {
    let already = match already {
        0 => String::new(),
        n => format!(" ({n} already marked or being replayed)"),
    };
    println!(
        "{marked} dead letter(s) marked for replay{already}; a running daemon replays them \
         within a second, a stopped one at its next start. A replay whose handler is disabled, \
         filtered out or gone keeps its dead letter, and the daemon's log says why."
    );
}

fn print(letters: &[DeadLetter], json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(letters).unwrap_or_default()
        );
        return;
    }
    if letters.is_empty() {
        println!("no dead letters");
        return;
    }
    for letter in letters {
        let last = jiff::Timestamp::from_millisecond(letter.last_attempt)
            .map(|at| at.to_string())
            .unwrap_or_default();
        println!(
            "{}\t{}\tevent {}\t{} attempt(s), last {}\t{}",
            letter.id, letter.handler, letter.event_id, letter.attempts, last, letter.error
        );
    }
}
