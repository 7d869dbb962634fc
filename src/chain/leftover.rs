//! Work the spool kept for one handler — a dead letter's replay, a retry
//! waiting — that the chain running now may no longer take: the handler was
//! disabled, filtered out, or removed by a reload or a restart on another
//! config. Nothing of it ends silently: it is logged naming the handler, and
//! a dead letter keeps the event.

use tracing::warn;

use super::Stage;
use crate::event::Event;
use crate::spool::{Dead, Progress, Replay, Resume, Work};

/// Ends a replay (`work`, of `replay`) in the spool: its dead letter goes
/// once the handler ran, and stays when it did not (`not_run` says why),
/// which is logged for the person who asked for the replay.
pub(super) fn settle_replay(
    work: &Work,
    replay: &Replay,
    not_run: Option<String>,
    spool: &dyn Progress,
) {
    if let Some(why) = &not_run {
        warn!(
            handler = %replay.handler,
            dead_letter = %replay.dead_letter,
            "replay not run: {why}; the dead letter is kept"
        );
    }
    spool.replayed(replay.dead_letter, not_run.is_none());
    spool.finished(work.receipt);
}

/// A retry waiting for a handler that is no longer in `chain` (a reload or
/// a restart removed it) becomes a dead letter, as a replay in that case
/// keeps one; the rest of the chain goes on.
pub(super) fn bury_removed(work: &Work, chain: &[std::sync::Arc<Stage>], spool: &dyn Progress) {
    let Some(resume) = &work.resume else {
        return;
    };
    if chain.iter().any(|running| running.name == resume.stage) {
        return;
    }
    let error = format!(
        "handler removed: `{}` is no longer in the {} chain",
        resume.stage,
        work.event.phase()
    );
    bury(work, resume, &work.event, error, spool);
}

/// A retry waiting for a handler that now skips the event (disabled, or
/// its filters changed) becomes a dead letter: the event was owed that
/// delivery when it was accepted.
pub(super) fn bury_skipped(work: &Work, event: &Event, why: &str, spool: &dyn Progress) {
    if let Some(resume) = &work.resume {
        let error = format!("handler `{}` now skips the event: {why}", resume.stage);
        bury(work, resume, event, error, spool);
    }
}

fn bury(work: &Work, resume: &Resume, event: &Event, error: String, spool: &dyn Progress) {
    warn!(
        handler = %resume.stage,
        attempts = resume.attempts,
        "{error}; its pending retry of event {} is kept as a dead letter",
        work.event.id()
    );
    spool.dead(Dead {
        receipt: work.receipt,
        event_id: work.event.id().to_owned(),
        stage: resume.stage.clone(),
        event: event.json().clone(),
        error,
        attempts: resume.attempts,
        first_attempt: resume.first_attempt,
    });
}
