//! How a chain reports an event's progress: the [`Progress`] trait, and the
//! workers' [`Recorder`] that sends each report to the spool as a
//! [`Record`] message.

use std::sync::mpsc;

use super::protocol::{Dead, DeadLetterId, Message, Receipt, Record, Retry, StageDone};

/// What a chain tells the spool about one event. Each report is durable
/// once the spool's next commit succeeds; until then a crash redoes the
/// step (at least once). Reports of one event are applied in the order
/// they are made.
pub trait Progress: Sync {
    /// A handler succeeded: not run again for this event.
    fn stage_done(&self, done: StageDone);
    /// A handler failed and waits for its retry: the spool hands the event
    /// back to its lane when it is due, also after a restart.
    fn retry(&self, retry: Retry);
    /// A handler gave up: its dead letter is kept for a person.
    fn dead(&self, dead: Dead);
    /// A replay's handler ran (`ran`): its dead letter goes; or it did not
    /// run: its dead letter stays.
    fn replayed(&self, dead_letter: DeadLetterId, ran: bool);
    /// Every handler is done with the event: the spool forgets it.
    fn finished(&self, receipt: Receipt);
}

/// The workers' side of the spool: sends progress records to it.
#[derive(Clone)]
pub struct Recorder(pub(super) mpsc::Sender<Message>);

impl Recorder {
    fn record(&self, record: Record) {
        // The spool outlives every worker (it is stopped after them).
        let _ = self.0.send(Message::Record(record));
    }
}

impl Progress for Recorder {
    fn stage_done(&self, done: StageDone) {
        self.record(Record::StageDone(done));
    }

    fn retry(&self, retry: Retry) {
        self.record(Record::Retry(retry));
    }

    fn dead(&self, dead: Dead) {
        self.record(Record::Dead(dead));
    }

    fn replayed(&self, dead_letter: DeadLetterId, ran: bool) {
        self.record(Record::Replayed { dead_letter, ran });
    }

    fn finished(&self, receipt: Receipt) {
        self.record(Record::Finished(receipt));
    }
}
