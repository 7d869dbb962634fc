//! Running events through a chain: in groups sized by the chain's measured
//! pace, stage by stage, each event's progress reported to the spool.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span, info_span};

use super::leftover::{bury_removed, bury_skipped, settle_replay};
use super::stage::{Attempt, Call};
use super::{Mismatch, Pipeline, RunEnd, Stage};
use crate::event::Event;
use crate::spool::{Dead, Progress, Retry, StageDone, Work, millis, now_ms};

impl Pipeline {
    /// Runs each event through its phase's chain from where its `Work`
    /// says it got to, recording each step with the spool, and says where
    /// each got to. A handler that gives up leaves a dead letter and the
    /// chain goes on; one that will retry suspends the chain until the
    /// retry is due; `stop` abandons the rest.
    ///
    /// Events go through a chain in groups, stage by stage: a stage that
    /// hands its work to a thread (a script, a file) gets the whole group in
    /// one call. Each event still meets the stages in order, and the events
    /// of a job reach each handler in the order given. A group is as large
    /// as the chain usually handles within [`GROUP_BUDGET`].
    pub async fn run(
        &self,
        works: &[Work],
        spool: &dyn Progress,
        stop: &CancellationToken,
    ) -> Vec<RunEnd> {
        let mut ends = Vec::with_capacity(works.len());
        for same_phase in works.chunk_by(|a, b| a.event.phase() == b.event.phase()) {
            if stop.is_cancelled() {
                ends.resize(works.len(), RunEnd::Abandoned);
                break;
            }
            let chain = self.chain(same_phase[0].event.phase());
            let mut rest = same_phase;
            while !rest.is_empty() {
                let group;
                (group, rest) = rest.split_at(group_size(chain, rest.len()));
                ends.extend(run_chain(chain, group, spool, stop).await);
            }
        }
        ends
    }
}

/// [`Pipeline::run`] for events of one phase, through its `chain`.
async fn run_chain(
    chain: &[Arc<Stage>],
    works: &[Work],
    spool: &dyn Progress,
    stop: &CancellationToken,
) -> Vec<RunEnd> {
    let mut runs: Vec<Run> = works
        .iter()
        .map(|work| Run::start(work, chain, spool))
        .collect();
    'stages: for (index, stage) in chain.iter().enumerate() {
        let last = index + 1 == chain.len();
        let waiting: Vec<usize> = (0..runs.len())
            .filter(|&i| runs[i].waits_for(stage))
            .collect();
        let per_call = if !stage.waits_on_network() {
            waiting.len().max(1)
        } else {
            1
        };
        for group in waiting.chunks(per_call) {
            if stop.is_cancelled() {
                // Nothing more is handed to a handler once stopping.
                for run in &mut runs {
                    run.abandon(spool);
                }
                break 'stages;
            }
            for &i in group {
                runs[i].prepare(stage, spool);
            }
            let attempts = {
                let calls: Vec<Call> = group.iter().map(|&i| runs[i].call()).collect();
                let attempts = stage.attempt_many(&calls, stop);
                match &calls[..] {
                    [call] => attempts.instrument(call.span.clone()).await,
                    _ => attempts.await,
                }
            };
            for (&i, attempt) in group.iter().zip(attempts) {
                runs[i].settle(stage, last, attempt, spool);
            }
        }
    }
    runs.into_iter().map(|run| run.finish(spool)).collect()
}

/// How long a group of events should usually take through a chain. An
/// event's end is recorded (and its room in the queue freed) only once its
/// group is through, so a chain whose events take long (a script waiting on
/// an API, an HTTP exchange) takes them one at a time, and one whose events
/// take microseconds hands many at once to each stage's thread.
pub const GROUP_BUDGET: std::time::Duration = std::time::Duration::from_millis(2);

/// How many of `waiting` events to run through `chain` together: one until
/// every stage's pace is known.
pub(super) fn group_size(chain: &[Arc<Stage>], waiting: usize) -> usize {
    let per_event: Option<u64> = chain.iter().map(|stage| stage.pace()).sum();
    match per_event {
        Some(per_event) => {
            let fits = GROUP_BUDGET.as_nanos() as u64 / per_event.max(1);
            (fits as usize).clamp(1, waiting)
        }
        None => 1,
    }
}

/// One event on its way through a chain.
struct Run<'w> {
    work: &'w Work,
    span: Span,
    /// Where it got to, once it stopped going on.
    end: Option<RunEnd>,
    /// The event as the last handler that changed it left it.
    changed: Option<Arc<Event>>,
    /// Stages done whose success is not yet sent to the spool (see
    /// `Stage::writes_locally`).
    unsent: Vec<StageDone>,
    /// Why a replay's handler did not take the event.
    skipped: Option<Mismatch>,
    /// The attempt being made: failed attempts before it, and when the
    /// first of them was made (milliseconds since the epoch).
    prior: u32,
    first_attempt: i64,
}

impl<'w> Run<'w> {
    /// Settles what the chain as it is now cannot run: a replay of a
    /// handler not in it, retries of handlers removed from it.
    fn start(work: &'w Work, chain: &[Arc<Stage>], spool: &dyn Progress) -> Run<'w> {
        let event = &work.event;
        let span = info_span!(
            "event",
            id = event.id(),
            job_id = event.job_id().map(tracing::field::display),
            job_type = event.routing().job_type.as_deref(),
            phase = %event.phase(),
        );
        let mut end = None;
        span.in_scope(|| match &work.replay {
            Some(replay) if !chain.iter().any(|stage| stage.name == replay.handler) => {
                let phase = event.phase();
                settle_replay(
                    work,
                    replay,
                    Some(format!("it is not in the {phase} chain")),
                    spool,
                );
                end = Some(RunEnd::Finished);
            }
            _ => bury_removed(work, chain, spool),
        });
        Run {
            work,
            span,
            end,
            changed: None,
            unsent: Vec::new(),
            skipped: None,
            prior: 0,
            first_attempt: 0,
        }
    }

    /// Whether the event still goes on and `stage` has yet to take it.
    fn waits_for(&self, stage: &Stage) -> bool {
        self.end.is_none()
            && self
                .work
                .replay
                .as_ref()
                .is_none_or(|replay| replay.handler == stage.name)
            && !self.work.done.contains(&stage.name)
    }

    fn resumes(&self, stage: &Stage) -> bool {
        self.work
            .resume
            .as_ref()
            .is_some_and(|resume| resume.stage == stage.name)
    }

    /// Readies the attempt at `stage`: the progress a crash must not lose
    /// is sent first if the stage may wait on another process.
    fn prepare(&mut self, stage: &Stage, spool: &dyn Progress) {
        if !stage.writes_locally() {
            self.send(spool);
        }
        (self.prior, self.first_attempt) = match &self.work.resume {
            Some(resume) if resume.stage == stage.name => (resume.attempts, resume.first_attempt),
            _ => (0, now_ms()),
        };
    }

    fn call(&self) -> Call<'_> {
        Call {
            event: self.current(),
            prior: self.prior,
            // The first attempt of a replay: the operator asked for it.
            replayed: self.work.replay.is_some() && self.work.resume.is_none(),
            span: &self.span,
        }
    }

    fn current(&self) -> &Event {
        self.changed.as_deref().unwrap_or(&self.work.event)
    }

    /// Records what became of the attempt at `stage` (the `last` of the
    /// chain).
    fn settle(&mut self, stage: &Stage, last: bool, attempt: Attempt, spool: &dyn Progress) {
        let receipt = self.work.receipt;
        let _entered = self.span.clone().entered();
        match attempt {
            Attempt::Skipped(mismatch) => {
                if self.resumes(stage) {
                    self.send(spool);
                    bury_skipped(self.work, self.current(), &mismatch.to_string(), spool);
                }
                self.skipped = Some(mismatch);
            }
            // The last stage's success is recorded by `Finished`.
            Attempt::Delivered(_) if last => {}
            Attempt::Delivered(replaced) => {
                let replaced = replaced.map(Arc::new);
                // Made here, not on the spool's thread: the next handlers
                // (a file line, an HTTP body) share it.
                self.unsent.push(StageDone {
                    receipt,
                    stage: stage.name.clone(),
                    changed: replaced.as_ref().map(|event| event.json().clone()),
                });
                if let Some(replaced) = replaced {
                    self.changed = Some(replaced);
                }
            }
            Attempt::Failed { attempts, error } => {
                self.send(spool);
                let current = self.current();
                spool.dead(Dead {
                    receipt,
                    event_id: current.id().to_owned(),
                    stage: stage.name.clone(),
                    event: current.json().clone(),
                    error: error.message,
                    attempts,
                    first_attempt: self.first_attempt,
                });
            }
            Attempt::Retry { attempts, wait } => {
                self.send(spool);
                spool.retry(Retry {
                    receipt,
                    stage: stage.name.clone(),
                    attempts,
                    first_attempt: self.first_attempt,
                    due: now_ms().saturating_add(millis(wait)),
                });
                self.end = Some(RunEnd::Suspended);
            }
            Attempt::Abandoned => self.abandon(spool),
        }
    }

    /// The daemon stops: what was done is sent, the rest waits for the next
    /// start.
    fn abandon(&mut self, spool: &dyn Progress) {
        if self.end.is_none() {
            self.send(spool);
            self.end = Some(RunEnd::Abandoned);
        }
    }

    fn send(&mut self, spool: &dyn Progress) {
        for done in self.unsent.drain(..) {
            spool.stage_done(done);
        }
    }

    /// Where the event got to; one that went through every stage is
    /// recorded as finished (which stands for every stage: what was not
    /// sent is moot).
    fn finish(self, spool: &dyn Progress) -> RunEnd {
        if let Some(end) = self.end {
            return end;
        }
        let _entered = self.span.enter();
        match &self.work.replay {
            Some(replay) => settle_replay(
                self.work,
                replay,
                self.skipped.map(|m| m.to_string()),
                spool,
            ),
            None => spool.finished(self.work.receipt),
        }
        RunEnd::Finished
    }
}
