//! Workers: each drains one queue lane through the pipeline, one event at a time.

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::error;

use crate::chain::{Delivery, Pipeline};
use crate::queue::Lane;

/// Handles every event of `lane` until the lane is closed and empty, each on
/// the pipeline current when it starts (a reload swaps it). When
/// `abandon` fires (the shutdown deadline passed) the events still waiting are
/// logged one by one as not handled, so none disappears silently.
pub async fn work(
    mut lane: Lane,
    pipelines: watch::Receiver<Arc<Pipeline>>,
    abandon: CancellationToken,
) {
    while let Some(event) = lane.recv().await {
        let pipeline = pipelines.borrow().clone();
        let outcomes = pipeline.run(&event, &abandon).await;
        if outcomes.last() == Some(&Delivery::Abandoned) {
            error!(
                id = event.id(),
                "event not fully handled: shutdown deadline passed"
            );
            break;
        }
    }
    lane.close();
    while let Some(event) = lane.recv().await {
        error!(
            id = event.id(),
            "event not handled: shutdown deadline passed"
        );
    }
}
