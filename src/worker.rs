//! Workers: each drains one lane through the pipeline.
//!
//! A worker takes the events waiting in its lane (a batch) and runs them
//! through their chains itself, in groups (see [`Pipeline::run`]), when
//! their chains only use the CPU and local files. An event whose chain waits
//! on another machine (an HTTP handler) is handed to a task of its own, so
//! that the wait holds no worker: how many such events are in flight is
//! bounded by each handler's concurrency limit, not by `workers`.
//!
//! Events of one job keep their order: while a job has an event in a task,
//! the job's later events queue behind it, in that task, whatever their
//! chain.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;
use uuid::Uuid;

use crate::chain::{Pipeline, RunEnd};
use crate::reload::Running;
use crate::spool::{Lane, Recorder, Work};

/// Events a worker takes from its lane at most, to run through the chain
/// together (see [`Pipeline::run`]).
const BATCH: usize = 64;

/// What a worker and its tasks share.
#[derive(Clone)]
struct Shared {
    running: watch::Receiver<Running>,
    spool: Recorder,
    abandon: CancellationToken,
    /// Jobs with an event in a task: the events queued behind it.
    jobs: Arc<Mutex<HashMap<Uuid, VecDeque<Work>>>>,
}

/// Handles every event of `lane` until the lane is closed and empty, each
/// batch on the pipeline current when it starts (a reload swaps it). When
/// `abandon` fires (the shutdown deadline passed) the events in hand and
/// those still waiting stay in the spool, each logged, and are resumed at
/// the next start.
pub async fn work(
    mut lane: Lane,
    running: watch::Receiver<Running>,
    spool: Recorder,
    abandon: CancellationToken,
) {
    let shared = Shared {
        running,
        spool,
        abandon,
        jobs: Arc::default(),
    };
    let tasks = TaskTracker::new();
    let mut batch = Vec::with_capacity(BATCH);
    let mut here = Vec::with_capacity(BATCH);
    'lane: while lane.recv_many(&mut batch, BATCH).await > 0 {
        let pipeline = shared.running.borrow().pipeline.clone();
        let mut works = batch.drain(..);
        while let Some(work) = works.next() {
            let Some(work) = shared.queue_behind_its_job(work) else {
                continue;
            };
            if !pipeline.waits_on_network(work.event.phase()) {
                here.push(work);
                continue;
            }
            // Events of its job taken before it go first.
            let job = work.event.job_id();
            if job.is_some()
                && here.iter().any(|earlier| earlier.event.job_id() == job)
                && shared.run_here(&pipeline, &mut here).await
            {
                not_handled(&work);
                works.for_each(|work| not_handled(&work));
                break 'lane;
            }
            if let Some(job) = job {
                shared.jobs.lock().insert(job, VecDeque::new());
            }
            tasks.spawn(shared.clone().run_job(work));
        }
        drop(works);
        if shared.run_here(&pipeline, &mut here).await {
            break;
        }
    }
    lane.close();
    tasks.close();
    tasks.wait().await;
    while let Some(work) = lane.recv().await {
        not_handled(&work);
    }
}

impl Shared {
    /// Queues `work` behind its job's event in a task, if there is one;
    /// gives it back otherwise.
    fn queue_behind_its_job(&self, work: Work) -> Option<Work> {
        let Some(job) = work.event.job_id() else {
            return Some(work);
        };
        match self.jobs.lock().get_mut(&job) {
            Some(queue) => {
                queue.push_back(work);
                None
            }
            None => Some(work),
        }
    }

    /// Runs `works` on this worker, and empties it; true when the daemon
    /// gave up on them (the shutdown deadline passed).
    async fn run_here(&self, pipeline: &Pipeline, works: &mut Vec<Work>) -> bool {
        if works.is_empty() {
            return false;
        }
        let ends = pipeline.run(works, &self.spool, &self.abandon).await;
        let mut abandoned = false;
        for (work, end) in works.drain(..).zip(ends) {
            if end == RunEnd::Abandoned {
                abandoned = true;
                not_fully_handled(&work);
            }
        }
        abandoned
    }

    /// Runs `work`, then each event its job queued behind it meanwhile.
    async fn run_job(self, work: Work) {
        let job = work.event.job_id();
        // However this ends (a stop, a panic), the job's queue goes with it.
        let mut leaving = job.map(|job| Leaving {
            shared: self.clone(),
            job,
            emptied: false,
        });
        let mut next = Some(work);
        while let Some(work) = next {
            let pipeline = self.running.borrow().pipeline.clone();
            let ends = pipeline
                .run(std::slice::from_ref(&work), &self.spool, &self.abandon)
                .await;
            if ends.first() == Some(&RunEnd::Abandoned) {
                not_fully_handled(&work);
                return;
            }
            next = job.and_then(|job| {
                let mut jobs = self.jobs.lock();
                let next = jobs.get_mut(&job).and_then(VecDeque::pop_front);
                if next.is_none() {
                    jobs.remove(&job);
                    // From here the job may get a task of its own again.
                    if let Some(leaving) = &mut leaving {
                        leaving.emptied = true;
                    }
                }
                next
            });
        }
    }
}

/// A job's task ending early (a stop, a panic): the events still queued
/// behind it stay in the spool for the next start, and the job no longer
/// waits for the task.
struct Leaving {
    shared: Shared,
    job: Uuid,
    /// The task emptied the job's queue and removed it itself.
    emptied: bool,
}

impl Drop for Leaving {
    fn drop(&mut self) {
        if self.emptied {
            return;
        }
        let queued = self.shared.jobs.lock().remove(&self.job);
        for work in queued.into_iter().flatten() {
            not_handled(&work);
        }
    }
}

fn not_fully_handled(work: &Work) {
    warn!(
        id = work.event.id(),
        "event not fully handled: shutdown deadline passed; it stays in the spool for the next start"
    );
}

fn not_handled(work: &Work) {
    warn!(
        id = work.event.id(),
        "event not handled: shutdown deadline passed; it stays in the spool for the next start"
    );
}
