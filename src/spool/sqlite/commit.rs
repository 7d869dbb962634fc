//! One group commit: the new events that arrived together (sources' batches
//! with their cursors among them) and the workers' progress records, in one
//! transaction; then the answers and the dispatch, and the cursors asked
//! for, as committed.
//!
//! A commit that fails (a full disk, a file made read-only or immutable)
//! makes nothing of the batch durable. Its new events are refused with the
//! cause (`overloaded`: "the spool cannot be written: …"), so clients send
//! them again; its progress records — a handler done, a retry scheduled, a
//! dead letter, an event finished — are kept, in order, and written with
//! the next commit, tried again every [`RETRY_FAILED_COMMIT`] until one
//! succeeds: a retry scheduled while the disk was full still runs.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info};

use super::admission::{Admission, Answers, Policy};
use super::thread::{MAX_BATCH, SpoolThread};
use crate::event::Event;
use crate::spool::protocol::{
    CursorReply, Dead, Message, Receipt, Record, Rejection, Reply, Retry, StageDone, Work, now_ms,
};
use crate::telemetry;

/// How soon a failed commit is tried again when nothing else comes.
pub(super) const RETRY_FAILED_COMMIT: Duration = Duration::from_millis(500);

/// The commit's largest lists, kept from one commit to the next: made anew
/// each time, the largest (several hundred events' work, 140 KiB) went
/// back to the allocator at every commit, which returned its pages to the
/// system, to fault them in again at the next (README, "Current figures",
/// has what that cost).
#[derive(Default)]
pub(super) struct Scratch {
    submits: Vec<(Event, Reply)>,
    records: Vec<Record>,
    dispatch: Vec<Work>,
}

/// `list` emptied, to be used again, with room kept for at most what one
/// commit of [`MAX_BATCH`] messages needs: a larger commit (a source's
/// batch, the records of a long spell of failed commits) gives the rest
/// back rather than hold it while the daemon idles.
fn kept<T>(mut list: Vec<T>) -> Vec<T> {
    list.clear();
    list.shrink_to(MAX_BATCH);
    list
}

/// What failed commits left to write.
#[derive(Default)]
pub(super) struct Unwritten {
    /// Their progress records, oldest first.
    pub(super) records: Vec<Record>,
    /// Why the last commit failed; `None` once one succeeded.
    cause: Option<Arc<str>>,
}

impl SpoolThread {
    /// Commits a batch in one transaction (leaving `batch` empty), with the
    /// records failed commits left, then answers and dispatches. Returns
    /// whether the thread should stop.
    pub(super) fn commit(&mut self, batch: &mut Vec<Message>) -> bool {
        if batch.is_empty() && self.unwritten.records.is_empty() {
            return false;
        }
        let mut stop = false;
        let mut close = false;
        let mut submits = std::mem::take(&mut self.scratch.submits);
        let mut batches = Vec::new();
        let mut cursor_reads = Vec::new();
        let mut records = std::mem::take(&mut self.scratch.records);
        records.append(&mut self.unwritten.records);
        for message in batch.drain(..) {
            match message {
                Message::Submit { event, reply } => submits.push((event, reply)),
                Message::SubmitBatch { batch, reply } => batches.push((batch, reply)),
                Message::ReadCursor { source, reply } => cursor_reads.push((source, reply)),
                Message::Record(record) => records.push(record),
                Message::CloseLanes => close = true,
                Message::Stop => stop = true,
            }
        }
        let mut answers = Answers::default();
        let mut dispatch = std::mem::take(&mut self.scratch.dispatch);
        let mut retries = Vec::new();
        let now = now_ms();
        let closed = self.lanes.is_none() || close;
        let mut released = 0;
        // Events given progress rows, and events finished, in this batch;
        // `with_progress` follows only once the commit succeeded.
        let mut progressed = HashSet::new();
        let mut cleared = Vec::with_capacity(records.len());
        // A handler's success need not be written when the event finishes in
        // the same commit (most events, when handlers are quick).
        let finished: HashSet<Receipt> = records
            .iter()
            .filter_map(|record| match record {
                Record::Finished(receipt) => Some(*receipt),
                _ => None,
            })
            .collect();
        // Bytes of event bodies stored (+) and deleted (-) by the batch.
        let mut grown: i64 = 0;
        // New events not yet looked at when a statement fails stay here.
        let mut unlooked = submits.drain(..);
        let mut batches = batches.into_iter();
        let dedupe = &mut self.dedupe;
        let outcome = (|| -> rusqlite::Result<(u64, u64)> {
            let mut transaction = self.store.batch()?;
            for record in &records {
                let progress_rows = match record {
                    Record::StageDone(StageDone { receipt, .. }) if finished.contains(receipt) => {
                        continue;
                    }
                    Record::Retry(Retry { receipt, due, .. }) => {
                        retries.push((*due, receipt.0));
                        progressed.insert(*receipt);
                        true
                    }
                    Record::StageDone(StageDone { receipt, .. })
                    | Record::Dead(Dead { receipt, .. }) => {
                        progressed.insert(*receipt);
                        true
                    }
                    Record::Finished(receipt) => {
                        cleared.push(*receipt);
                        self.with_progress.contains(receipt) || progressed.contains(receipt)
                    }
                    Record::Replayed { .. } => false,
                };
                if transaction.apply(record, now, progress_rows, &mut grown)? {
                    released += 1;
                }
            }
            // Finished events go before new ones come: the pages they free
            // are then filled by the new events, each written to the log
            // once. Deleted after them, each freed page was a log frame
            // of its own: a third more writes to the log (README,
            // "Current figures").
            let deleted = transaction.delete_events(&mut cleared)?;
            grown -= deleted.bytes;
            // What this commit freed counts: events finishing make room
            // for new ones in the same commit.
            let policy = Policy {
                closed,
                over_bytes: self.pending_bytes.saturating_add_signed(grown)
                    >= self.limits.max_bytes,
            };
            let mut admission = Admission::prepare(
                &mut transaction,
                dedupe,
                policy,
                now,
                &mut answers,
                &mut dispatch,
            );
            admission.admit(&mut unlooked)?;
            admission.admit_batches(&mut batches)?;
            admission.finish()?;
            grown += admission.stored_bytes as i64;
            let stored = admission.stored_events;
            drop(admission);
            transaction.commit()?;
            Ok((stored, deleted.events))
        })();
        if close {
            self.lanes = None;
        }
        let (stored, deleted) = match outcome {
            Ok(counts) => counts,
            Err(err) => {
                self.dedupe.rolled_back();
                let cause: Arc<str> = err.to_string().into();
                let refused = Rejection::Unwritable(cause.clone());
                answers.refuse(&refused);
                for reply in unlooked.map(|(_, reply)| reply) {
                    reply.send(Err(refused.clone()));
                }
                self.scratch.submits = kept(submits);
                self.scratch.dispatch = kept(dispatch);
                for reply in batches.map(|(_, reply)| reply) {
                    let _ = reply.send(Err(refused.clone()));
                }
                self.answer_cursor_reads(cursor_reads);
                self.keep_unwritten(records, cause, stop);
                self.status.set_writable(false);
                return stop;
            }
        };
        drop(unlooked);
        self.scratch.submits = kept(submits);
        self.scratch.records = kept(records);
        self.status.set_writable(true);
        if self.unwritten.cause.take().is_some() {
            info!(spool = %self.store.path().display(), "the spool can be written again");
        }
        self.in_lanes = self.in_lanes.saturating_sub(released);
        self.pending_bytes = self.pending_bytes.saturating_add_signed(grown);
        self.pending_events = (self.pending_events + stored).saturating_sub(deleted);
        self.status
            .set_levels(self.pending_events, self.pending_bytes);
        self.dedupe.committed();
        self.with_progress.extend(progressed);
        for receipt in cleared {
            self.with_progress.remove(&receipt);
        }
        answers.send(&self.accepted);
        self.answer_cursor_reads(cursor_reads);
        if telemetry::live::listening() {
            dispatch
                .iter()
                .for_each(|work| telemetry::live::accepted(&work.event));
        }
        self.due.extend(retries.into_iter().map(std::cmp::Reverse));
        // What the lanes have no room for waits on disk, behind the backlog.
        let room = self.room();
        let mut handed = dispatch.drain(..);
        for work in handed.by_ref().take(room) {
            self.dispatch(work);
        }
        self.backlog.extend(handed.map(|work| work.receipt));
        self.scratch.dispatch = kept(dispatch);
        stop
    }

    /// Answers each source that asked where it stands, as committed.
    fn answer_cursor_reads(&self, reads: Vec<(String, CursorReply)>) {
        for (source, reply) in reads {
            let cursor = self.store.cursor(&source);
            let _ = reply.send(cursor.map_err(|err| err.to_string().into()));
        }
    }

    /// Keeps the records of a failed commit for the next one, and says why
    /// the spool cannot be written (once per cause). When stopping there is
    /// no next one: their events are resumed at the next start, as after a
    /// crash, and the log says so.
    fn keep_unwritten(&mut self, records: Vec<Record>, cause: Arc<str>, stopping: bool) {
        let spool = self.store.path().display();
        if self.unwritten.cause.as_deref() != Some(&*cause) {
            error!(
                %spool,
                records = records.len(),
                "the spool cannot be written: {cause}; new events are refused and progress \
                 records are kept to be written again"
            );
        }
        if stopping && !records.is_empty() {
            error!(
                %spool,
                records = records.len(),
                "stopping with progress records that could not be written: their events \
                 resume at the next start from the last progress written"
            );
        }
        self.unwritten = Unwritten {
            records,
            cause: Some(cause),
        };
    }
}

#[cfg(test)]
mod tests;
