//! `type = "keyfactor_job_history"`: polls Keyfactor Command's orchestrator
//! job history ([`api`]) and turns every finished record into one event
//! ([`record`]), committed to the spool together with the [`cursor`] it
//! brings the source to.
//!
//! One look: records left open by earlier looks are asked for again, then
//! the records after the cursor, a page at a time, each page committed
//! before the next is asked for. A look that fails (Command down, slow,
//! refusing the credentials, the spool full) is logged and tried again
//! after a back-off that doubles up to [`MAX_BACK_OFF`]; the cursor moves
//! only with a commit, so nothing is lost or delivered twice.

mod api;
mod cursor;
mod record;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::values::error_chain;
use crate::http;
use crate::spool::{CursorError, Queue, Rejection, SourceBatch};
pub use api::BuildError;
use api::{FetchError, JobHistoryApi, Query};
use cursor::Cursor;

use super::settings::{SourceSection, Start};

/// Longest wait between failed looks (unless `interval` is longer).
const MAX_BACK_OFF: Duration = Duration::from_secs(300);
/// Open records asked for in one request.
const OPEN_PER_REQUEST: usize = 50;

/// A job-history source, ready to run.
#[derive(Debug)]
pub struct JobHistorySource {
    name: String,
    api: JobHistoryApi,
    job_types: Option<Vec<String>>,
    interval: Duration,
    page_size: usize,
    start: Start,
}

/// Why a look failed.
#[derive(Debug, thiserror::Error)]
enum LookError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("the spool refused its events: {}", .0.message())]
    Spool(Rejection),
    #[error("cannot read its cursor")]
    Cursor(#[source] CursorError),
}

impl JobHistorySource {
    pub fn new(section: &SourceSection, context: http::Context<'_>) -> Result<Self, BuildError> {
        let settings = &section.job_history;
        Ok(JobHistorySource {
            name: section.name.clone(),
            api: JobHistoryApi::new(settings, context)?,
            job_types: settings.job_types.as_ref().map(|list| list.0.clone()),
            interval: settings.interval.0,
            page_size: settings.page_size,
            start: settings.start,
        })
    }

    /// Looks at the job history every `interval` until `shutdown`; a look in
    /// progress is abandoned then (what it committed stays, the rest is
    /// looked at again at the next start).
    pub async fn run(self, queue: Arc<Queue>, shutdown: CancellationToken) {
        let source = self.name.as_str();
        info!(source, "job history source started");
        let mut cursor = None;
        let mut failures: u32 = 0;
        loop {
            let looked = tokio::select! {
                () = shutdown.cancelled() => return,
                looked = self.look(&queue, &mut cursor) => looked,
            };
            let wait = match looked {
                Ok(()) => {
                    if failures > 0 {
                        info!(source, failures, "job history source recovered");
                    }
                    failures = 0;
                    self.interval
                }
                Err(err) => {
                    failures = failures.saturating_add(1);
                    let wait = back_off(self.interval, failures);
                    let retry_in = humantime::format_duration(wait).to_string();
                    let message = error_chain(&err);
                    match &err {
                        LookError::Fetch(fetch) if fetch.needs_a_person() => {
                            error!(source, failures, retry_in, "job history: {message}")
                        }
                        _ => warn!(source, failures, retry_in, "job history: {message}"),
                    }
                    wait
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One look: records left open, then new records page by page. The
    /// cursor in hand moves only once the spool has committed.
    async fn look(&self, queue: &Queue, cursor: &mut Option<Cursor>) -> Result<(), LookError> {
        let cursor = match cursor {
            Some(cursor) => cursor,
            None => cursor.insert(self.begin(queue).await?),
        };
        for ids in cursor.open().chunks(OPEN_PER_REQUEST) {
            let records = self.api.fetch(Query::Ids(ids)).await?;
            let mut next = cursor.clone();
            let finished = next.take_reopened(records);
            self.commit(queue, cursor, next, finished).await?;
        }
        loop {
            let before = cursor.after();
            let query = Query::After {
                id: before,
                limit: self.page_size,
            };
            let records = self.api.fetch(query).await?;
            let full = records.len() >= self.page_size;
            let mut next = cursor.clone();
            let finished = next.take_new(records);
            self.commit(queue, cursor, next, finished).await?;
            // A full page of nothing new (a server that ignored the filter)
            // must not be asked for again at once.
            if !full || cursor.after() == before {
                return Ok(());
            }
        }
    }

    /// The cursor the spool kept, or a new one as `start` says (committed
    /// at once, so that `now` means the first look, not each start).
    async fn begin(&self, queue: &Queue) -> Result<Cursor, LookError> {
        let source = self.name.as_str();
        let kept = queue.cursor(source).await.map_err(LookError::Cursor)?;
        let kept = kept.as_deref().and_then(|text| {
            let cursor = Cursor::parse(text);
            if cursor.is_none() {
                warn!(
                    source,
                    "the cursor kept in the spool cannot be read; beginning again as `start` says"
                );
            }
            cursor
        });
        match kept {
            Some(cursor) if cursor.began_from(self.start) => {
                info!(
                    source,
                    after = cursor.after(),
                    open = cursor.open().len(),
                    "continuing"
                );
                return Ok(cursor);
            }
            Some(_) => info!(source, "`start` changed; beginning again from it"),
            None => {}
        }
        let after = match self.start {
            Start::All => 0,
            Start::After(id) => id,
            Start::Now => {
                let newest = self.api.fetch(Query::Newest).await?;
                newest.iter().filter_map(record::id).max().unwrap_or(0)
            }
        };
        let cursor = Cursor::new(self.start, after);
        let batch = SourceBatch {
            source: self.name.clone(),
            cursor: cursor.text(),
            events: Vec::new(),
        };
        queue.submit_batch(batch).await.map_err(LookError::Spool)?;
        info!(source, after, "beginning after JobHistoryId {after}");
        Ok(cursor)
    }

    /// Commits the events of the finished records with `next`, then moves
    /// `cursor` to it. Nothing is written when nothing changed.
    async fn commit(
        &self,
        queue: &Queue,
        cursor: &mut Cursor,
        next: Cursor,
        finished: Vec<(i64, serde_json::Value)>,
    ) -> Result<(), LookError> {
        let source = self.name.as_str();
        let now = jiff::Timestamp::now();
        let mut events = Vec::with_capacity(finished.len());
        for (id, found) in &finished {
            if !self.wanted(found) {
                continue;
            }
            match record::event(found, *id, now) {
                Ok(event) => events.push(event),
                // Looking again would not change it: it is passed over.
                Err(err) => error!(
                    source,
                    job_history_id = id,
                    "a record cannot be an event; passed over: {err}"
                ),
            }
        }
        if events.is_empty() && next == *cursor {
            return Ok(());
        }
        let count = events.len();
        let batch = SourceBatch {
            source: self.name.clone(),
            cursor: next.text(),
            events,
        };
        let accepted = queue.submit_batch(batch).await.map_err(LookError::Spool)?;
        let duplicates = accepted
            .iter()
            .filter(|accepted| accepted.duplicate)
            .count();
        if count > 0 {
            info!(
                source,
                events = count,
                duplicates,
                after = next.after(),
                "job history records accepted"
            );
        }
        *cursor = next;
        Ok(())
    }

    /// Whether the record's job type passes `job_types`.
    fn wanted(&self, found: &serde_json::Value) -> bool {
        let Some(wanted) = &self.job_types else {
            return true;
        };
        record::job_type(found).is_some_and(|job_type| {
            wanted
                .iter()
                .any(|name| name.eq_ignore_ascii_case(job_type))
        })
    }
}

/// The wait after the `failures`-th failed look in a row: `interval`,
/// doubling with each failure, at most [`MAX_BACK_OFF`] (or `interval`
/// when that is longer).
fn back_off(interval: Duration, failures: u32) -> Duration {
    let doubled = interval.saturating_mul(1 << failures.saturating_sub(1).min(20));
    doubled.min(MAX_BACK_OFF.max(interval))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_up_to_its_cap() {
        let second = Duration::from_secs(1);
        assert_eq!(back_off(second, 1), second);
        assert_eq!(back_off(second, 3), 4 * second);
        assert_eq!(back_off(second, 40), MAX_BACK_OFF);
        assert_eq!(back_off(2 * MAX_BACK_OFF, 5), 2 * MAX_BACK_OFF);
    }
}
