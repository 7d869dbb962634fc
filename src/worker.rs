//! Workers: each drains one lane through the pipeline, a batch of the
//! events waiting at a time.

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::chain::{Pipeline, RunEnd};
use crate::queue::Lane;
use crate::spool::Recorder;

/// Events a worker takes from its lane at most, to run through the chain
/// together (see [`Pipeline::run`]).
const BATCH: usize = 64;

/// Handles every event of `lane` until the lane is closed and empty, each
/// batch on the pipeline current when it starts (a reload swaps it). When
/// `abandon` fires (the shutdown deadline passed) the events in hand and
/// those still waiting stay in the spool, each logged, and are resumed at
/// the next start.
pub async fn work(
    mut lane: Lane,
    pipelines: watch::Receiver<Arc<Pipeline>>,
    spool: Recorder,
    abandon: CancellationToken,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while lane.recv_many(&mut batch, BATCH).await > 0 {
        let pipeline = pipelines.borrow().clone();
        let ends = pipeline.run(&batch, &spool, &abandon).await;
        let mut abandoned = false;
        for (work, end) in batch.drain(..).zip(ends) {
            if end == RunEnd::Abandoned {
                abandoned = true;
                warn!(
                    id = work.event.id(),
                    "event not fully handled: shutdown deadline passed; it stays in the spool for the next start"
                );
            }
        }
        if abandoned {
            break;
        }
    }
    lane.close();
    while let Some(work) = lane.recv().await {
        warn!(
            id = work.event.id(),
            "event not handled: shutdown deadline passed; it stays in the spool for the next start"
        );
    }
}
