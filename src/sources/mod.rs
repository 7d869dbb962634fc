//! Event sources: besides the socket, events the daemon fetches itself.
//! `[sources.NAME]` sections (`settings`, read by `section`) name them; the
//! only kind so far polls Keyfactor Command's job history ([`keyfactor`]).
//!
//! A source commits what it finds to the spool with its cursor in the same
//! transaction ([`crate::spool::SourceBatch`]), so its events get the same
//! ack-after-commit, dedupe and per-`JobId` order as the socket's, and a
//! crash never loses or repeats a record. Sources start with the daemon and
//! stop when it stops; a reload leaves them as they are (changing them
//! needs a restart, and the reload says so).

mod keyfactor;
pub mod section;
pub mod settings;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Diagnostic;
use crate::config::values::error_chain;
use crate::http;
use crate::spool::Queue;
use keyfactor::JobHistorySource;
use settings::SourceSection;

/// Every source of a config, built (clients made, secrets read).
#[derive(Debug)]
pub struct Sources(Vec<JobHistorySource>);

impl Sources {
    /// Builds every `[sources.NAME]` section; each problem names its
    /// section.
    pub fn build(
        sections: &[SourceSection],
        context: http::Context<'_>,
    ) -> Result<Sources, Vec<Diagnostic>> {
        let mut sources = Vec::new();
        let mut problems = Vec::new();
        for section in sections {
            match JobHistorySource::new(section, context) {
                Ok(source) => sources.push(source),
                Err(err) => problems.push(section.position.error(format!(
                    "source `{}`: {}",
                    section.name,
                    error_chain(&err)
                ))),
            }
        }
        if problems.is_empty() {
            Ok(Sources(sources))
        } else {
            Err(problems)
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Runs each source as a task of `tracker` until `shutdown`.
    pub fn start(self, queue: &Arc<Queue>, shutdown: &CancellationToken, tracker: &TaskTracker) {
        for source in self.0 {
            tracker.spawn(source.run(queue.clone(), shutdown.clone()));
        }
    }
}
