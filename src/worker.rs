//! Workers: each drains one lane through the pipeline, one event at a time.

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::chain::{Pipeline, RunEnd};
use crate::spool::{Lane, Recorder};

/// Handles every event of `lane` until the lane is closed and empty, each on
/// the pipeline current when it starts (a reload swaps it). When `abandon`
/// fires (the shutdown deadline passed) the event in hand and those still
/// waiting stay in the spool, each logged, and are resumed at the next start.
pub async fn work(
    mut lane: Lane,
    pipelines: watch::Receiver<Arc<Pipeline>>,
    spool: Recorder,
    abandon: CancellationToken,
) {
    while let Some(work) = lane.recv().await {
        let pipeline = pipelines.borrow().clone();
        if pipeline.run(&work, &spool, &abandon).await == RunEnd::Abandoned {
            warn!(
                id = work.event.id(),
                "event not fully handled: shutdown deadline passed; it stays in the spool for the next start"
            );
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
