//! Reloads asked for through the admin API: each request is answered with
//! how its reload ended.

use tokio::sync::{mpsc, oneshot};

use crate::lifecycle::Reloaded;

/// A reload asked for through the admin API, answered once it ended.
pub struct Request(pub(super) oneshot::Sender<Report>);

/// How a requested reload ended.
#[derive(Debug, Clone)]
pub struct Report {
    pub outcome: Reloaded,
    /// Warnings about the config now running (when applied).
    pub warnings: Vec<String>,
    /// Handlers in the running pipeline afterwards.
    pub handlers: usize,
}

/// Asks the reloader for reloads and waits for each one's [`Report`].
#[derive(Clone)]
pub struct Requester(mpsc::Sender<Request>);

/// A requester and the receiver [`watch`] takes its requests from.
pub fn requests() -> (Requester, mpsc::Receiver<Request>) {
    let (send, receive) = mpsc::channel(8);
    (Requester(send), receive)
}

impl Requester {
    /// Reloads now; `None` when the daemon is stopping.
    pub async fn reload(&self) -> Option<Report> {
        let (answer, report) = oneshot::channel();
        self.0.send(Request(answer)).await.ok()?;
        report.await.ok()
    }
}
