//! Admission and backpressure: which new events a commit stores, which wait
//! for room in the workers' lanes, and which are refused.
//!
//! A new event waits while the lanes hold `queue_capacity` events (or events
//! left from the last run are still to be loaded: they go first, which keeps
//! each job's events in order). While it waits its client gets no ack, which
//! slows a pipelining client down to the pace of the workers; a burst is
//! absorbed, a queue that stays full is reported (`overloaded` after
//! [`ADMISSION_WAIT`]). Past `max_spool_bytes`, new events are refused at
//! once.
//!
//! A source's batch never waits (its source looks again later): it is taken
//! whole, with its cursor, while the lanes have any room, and refused
//! `overloaded` otherwise.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::store::{Batch, NewEvents};
use super::thread::SpoolThread;
use crate::event::Event;
use crate::spool::protocol::{Accepted, BatchReply, Rejection, Reply, SourceBatch, Work};
use crate::telemetry::AcceptedMetrics;

/// How long a new event waits for room in the lanes before it is refused
/// as `overloaded`.
pub(super) const ADMISSION_WAIT: Duration = Duration::from_secs(1);

/// A new event that found the lanes full.
pub(super) struct WaitingForRoom {
    pub(super) since: Instant,
    pub(super) event: Event,
    pub(super) reply: Reply,
}

impl SpoolThread {
    /// How many more new events the lanes take now.
    pub(super) fn room(&self) -> usize {
        if self.pending_bytes >= self.limits.max_bytes || !self.backlog.is_empty() {
            0
        } else {
            self.limits.in_memory.saturating_sub(self.in_lanes)
        }
    }
}

/// How one commit admits new events.
pub(super) struct Policy {
    /// The workers are finishing up: every new event is refused.
    pub(super) closed: bool,
    /// New events the lanes take in this commit ([`SpoolThread::room`]).
    pub(super) room: usize,
    /// `fsync = "always"`: a commit takes one event.
    pub(super) one_event_each: bool,
    /// The pending events take `max_spool_bytes` or more.
    pub(super) over_bytes: bool,
}

/// The answers a commit owes, sent once it is known whether it succeeded.
#[derive(Default)]
pub(super) struct Answers {
    pub(super) events: Vec<(Reply, Result<Accepted, Rejection>)>,
    pub(super) batches: Vec<(BatchReply, Result<Vec<Accepted>, Rejection>)>,
}

impl Answers {
    /// Sends each answer, counting those accepted ([`Reply::send`] counts
    /// refusals).
    pub(super) fn send(self, metrics: &AcceptedMetrics) {
        for (reply, answer) in self.events {
            if let Ok(accepted) = &answer {
                metrics.accepted(accepted.duplicate);
            }
            reply.send(answer);
        }
        for (reply, answer) in self.batches {
            if let Ok(accepted) = &answer {
                accepted
                    .iter()
                    .for_each(|accepted| metrics.accepted(accepted.duplicate));
            }
            let _ = reply.send(answer);
        }
    }

    /// Sends `refused` instead of each answer: the commit failed.
    pub(super) fn refuse(self, refused: &Rejection) {
        for (reply, _) in self.events {
            reply.send(Err(refused.clone()));
        }
        for (reply, _) in self.batches {
            let _ = reply.send(Err(refused.clone()));
        }
    }
}

/// The commit's new events: each is stored, waits or is refused, and its
/// answer and its work are lined up for after the commit.
pub(super) struct Admission<'t, 'a> {
    new_events: NewEvents<'t>,
    policy: Policy,
    now: i64,
    answers: &'a mut Answers,
    dispatch: &'a mut Vec<Work>,
    /// Bytes of the bodies stored, and of the ids remembered.
    pub(super) stored_bytes: u64,
    pub(super) remembered_bytes: u64,
}

impl<'t, 'a> Admission<'t, 'a> {
    pub(super) fn prepare(
        batch: &'t Batch<'_>,
        policy: Policy,
        now: i64,
        answers: &'a mut Answers,
        dispatch: &'a mut Vec<Work>,
    ) -> rusqlite::Result<Admission<'t, 'a>> {
        Ok(Admission {
            new_events: batch.new_events()?,
            policy,
            now,
            answers,
            dispatch,
            stored_bytes: 0,
            remembered_bytes: 0,
        })
    }

    /// Admits the events that waited for room, as far as it goes, then the
    /// batch's new ones (`submits`), which wait behind them. A statement
    /// that fails fails the commit; the events of `submits` not yet looked
    /// at are left in it.
    pub(super) fn admit(
        &mut self,
        waiting: &mut VecDeque<WaitingForRoom>,
        submits: &mut impl Iterator<Item = (Event, Reply)>,
    ) -> rusqlite::Result<()> {
        while let Some(first) = waiting.pop_front() {
            if self.policy.closed {
                self.refuse(first.reply, Rejection::ShuttingDown);
            } else if first.since.elapsed() >= ADMISSION_WAIT {
                self.refuse(first.reply, Rejection::Overloaded);
            } else if !self.full() {
                self.take(first.event, first.reply)?;
            } else {
                waiting.push_front(first);
                break;
            }
        }
        for (event, reply) in submits {
            if self.policy.closed {
                self.refuse(reply, Rejection::ShuttingDown);
            } else if self.policy.over_bytes {
                self.refuse(reply, Rejection::Overloaded);
            } else if self.full() || !waiting.is_empty() {
                waiting.push_back(WaitingForRoom {
                    since: Instant::now(),
                    event,
                    reply,
                });
            } else {
                self.take(event, reply)?;
            }
        }
        Ok(())
    }

    /// Takes each source batch whole, with its cursor, or refuses it. A
    /// statement that fails fails the commit; the batches not yet looked at
    /// are left in `batches`.
    pub(super) fn admit_batches(
        &mut self,
        batches: &mut impl Iterator<Item = (SourceBatch, BatchReply)>,
    ) -> rusqlite::Result<()> {
        for (batch, reply) in batches {
            let refusal = if self.policy.closed {
                Some(Rejection::ShuttingDown)
            } else if !batch.events.is_empty()
                && (self.policy.over_bytes || self.dispatch.len() >= self.policy.room)
            {
                Some(Rejection::Overloaded)
            } else {
                None
            };
            match refusal {
                Some(rejection) => self.answers.batches.push((reply, Err(rejection))),
                None => self.take_batch(batch, reply)?,
            }
        }
        Ok(())
    }

    /// Stores a batch's events (duplicates answered as such) and its cursor.
    fn take_batch(&mut self, batch: SourceBatch, reply: BatchReply) -> rusqlite::Result<()> {
        let mut accepted = Vec::with_capacity(batch.events.len());
        let stored = || -> rusqlite::Result<()> {
            for event in batch.events {
                accepted.push(self.store(event)?);
            }
            self.new_events.set_cursor(&batch.source, &batch.cursor)
        };
        match stored() {
            Ok(()) => {
                self.answers.batches.push((reply, Ok(accepted)));
                Ok(())
            }
            Err(err) => {
                let cause = Rejection::Unwritable(err.to_string().into());
                self.answers.batches.push((reply, Err(cause)));
                Err(err)
            }
        }
    }

    /// Stores the event unless its `Id` was seen within the dedupe window
    /// (a duplicate is not handled again), and hands it to a lane.
    fn store(&mut self, event: Event) -> rusqlite::Result<Accepted> {
        let (id, body) = (event.id(), event.json());
        let receipt = self.new_events.store(id, body, self.now)?;
        let accepted = Accepted {
            id: id.to_owned(),
            duplicate: receipt.is_none(),
        };
        if let Some(receipt) = receipt {
            self.stored_bytes += body.len() as u64;
            self.remembered_bytes += id.len() as u64;
            self.dispatch.push(Work::new(receipt, event));
        }
        Ok(accepted)
    }

    /// Whether this commit takes no more new events.
    fn full(&self) -> bool {
        let taken = self.dispatch.len();
        taken >= self.policy.room || (self.policy.one_event_each && taken > 0)
    }

    /// Stores the event ([`Admission::store`]). A statement that fails
    /// fails the commit; the event is still answered, with the cause, as the
    /// rest of the batch will be.
    fn take(&mut self, event: Event, reply: Reply) -> rusqlite::Result<()> {
        match self.store(event) {
            Ok(accepted) => {
                self.answers.events.push((reply, Ok(accepted)));
                Ok(())
            }
            Err(err) => {
                let cause = Rejection::Unwritable(err.to_string().into());
                self.answers.events.push((reply, Err(cause)));
                Err(err)
            }
        }
    }

    fn refuse(&mut self, reply: Reply, rejection: Rejection) {
        self.answers.events.push((reply, Err(rejection)));
    }
}
