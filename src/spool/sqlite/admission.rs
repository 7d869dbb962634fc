//! Admission: which new events a commit stores, and which are refused.
//!
//! Every new event is stored while the pending events take less than
//! `max_spool_bytes`, whether or not the workers' lanes have room: what
//! does not fit in the lanes (`queue_capacity`) waits on disk, in the
//! backlog, and is read into them as they empty ([`super::backlog`]). So a
//! handler whose endpoint is down for an hour holds up neither the clients
//! nor memory; past `max_spool_bytes` new events are refused `overloaded`
//! at once. A source's batch is taken whole, with its cursor, on the same
//! terms.

use super::dedupe::Dedupe;
use super::store::{Batch, NewEvents};
use super::thread::SpoolThread;
use crate::event::Event;
use crate::spool::protocol::{Accepted, BatchReply, Rejection, Reply, SourceBatch, Work};
use crate::telemetry::AcceptedMetrics;

impl SpoolThread {
    /// How many more events the lanes take now: none while a backlog
    /// waits, so that events go to them in the order accepted.
    pub(super) fn room(&self) -> usize {
        if self.pending_bytes >= self.limits.max_bytes || !self.backlog.is_empty() {
            0
        } else {
            self.lanes_room()
        }
    }
}

/// How one commit admits new events.
pub(super) struct Policy {
    /// The workers are finishing up: every new event is refused.
    pub(super) closed: bool,
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
    dedupe: &'a mut Dedupe,
    policy: Policy,
    now: i64,
    answers: &'a mut Answers,
    dispatch: &'a mut Vec<Work>,
    /// Bytes of the bodies stored.
    pub(super) stored_bytes: u64,
    /// Events stored (duplicates are not).
    pub(super) stored_events: u64,
}

impl<'t, 'a> Admission<'t, 'a> {
    pub(super) fn prepare(
        batch: &'t mut Batch<'_>,
        dedupe: &'a mut Dedupe,
        policy: Policy,
        now: i64,
        answers: &'a mut Answers,
        dispatch: &'a mut Vec<Work>,
    ) -> Admission<'t, 'a> {
        Admission {
            new_events: batch.new_events(),
            dedupe,
            policy,
            now,
            answers,
            dispatch,
            stored_bytes: 0,
            stored_events: 0,
        }
    }

    /// Stores the batch's new events, or refuses them. A statement that
    /// fails fails the commit; the events not yet looked at are left in
    /// `submits`.
    pub(super) fn admit(
        &mut self,
        submits: &mut impl Iterator<Item = (Event, Reply)>,
    ) -> rusqlite::Result<()> {
        for (event, reply) in submits {
            match self.refusal() {
                Some(rejection) => self.refuse(reply, rejection),
                None => self.take(event, reply)?,
            }
        }
        Ok(())
    }

    /// Takes each source batch whole, with its cursor, or refuses it (a
    /// batch of only a cursor always goes in). A statement that fails fails
    /// the commit; the batches not yet looked at are left in `batches`.
    pub(super) fn admit_batches(
        &mut self,
        batches: &mut impl Iterator<Item = (SourceBatch, BatchReply)>,
    ) -> rusqlite::Result<()> {
        for (batch, reply) in batches {
            match self.refusal().filter(|_| !batch.events.is_empty()) {
                Some(rejection) => self.answers.batches.push((reply, Err(rejection))),
                None => self.take_batch(batch, reply)?,
            }
        }
        Ok(())
    }

    /// Lists the ids the batch remembered; called once, after its events.
    pub(super) fn finish(&mut self) -> rusqlite::Result<()> {
        self.new_events.finish(self.now)
    }

    /// Why new events are refused now, if they are.
    fn refusal(&self) -> Option<Rejection> {
        if self.policy.closed {
            Some(Rejection::ShuttingDown)
        } else if self.policy.over_bytes {
            Some(Rejection::Overloaded)
        } else {
            None
        }
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
    /// (a duplicate is not handled again), and lines it up for a lane.
    fn store(&mut self, event: Event) -> rusqlite::Result<Accepted> {
        let (id, body) = (event.id(), event.json());
        let receipt = if self.dedupe.remember(id) {
            Some(self.new_events.store(id, body, self.now)?)
        } else {
            None
        };
        let accepted = Accepted {
            id: id.to_owned(),
            duplicate: receipt.is_none(),
        };
        if let Some(receipt) = receipt {
            self.stored_bytes += body.len() as u64;
            self.stored_events += 1;
            self.dispatch.push(Work::new(receipt, event));
        }
        Ok(accepted)
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
