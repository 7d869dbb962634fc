//! The Windows named pipe. Same protocol and limits as the Unix socket.

use std::sync::Arc;

use tokio::net::windows::named_pipe::{NamedPipeServer, ServerOptions};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::slots::Slots;
use super::{BindError, Limits, connection};
use crate::spool::Queue;

/// A named pipe with one instance waiting for the next client.
pub struct Listener {
    name: String,
    waiting: NamedPipeServer,
}

impl Listener {
    /// Creates the first instance of the pipe; fails if another process owns
    /// the name. (`_mode` applies to Unix sockets only.)
    pub fn bind(name: &str, _mode: u32) -> Result<Listener, BindError> {
        let waiting = ServerOptions::new()
            .first_pipe_instance(true)
            .create(name)
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::PermissionDenied => BindError::InUse {
                    path: name.to_owned(),
                },
                _ => BindError::Io {
                    path: name.to_owned(),
                    source,
                },
            })?;
        Ok(Listener {
            name: name.to_owned(),
            waiting,
        })
    }

    /// Serves clients until `shutdown` fires, then waits for their connections.
    pub async fn serve(mut self, queue: Arc<Queue>, limits: Limits, shutdown: CancellationToken) {
        info!(pipe = %self.name, "listening");
        let slots = Slots::new(limits.max_connections);
        let connections = TaskTracker::new();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                connected = self.waiting.connect() => if let Err(err) = connected {
                    warn!(error = %err, "pipe connect failed");
                    continue;
                },
            }
            // Create the next instance before serving this one, so a client
            // arriving meanwhile finds the pipe.
            let next = match ServerOptions::new().create(&self.name) {
                Ok(next) => next,
                Err(err) => {
                    warn!(error = %err, "cannot create the next pipe instance");
                    continue;
                }
            };
            let client = std::mem::replace(&mut self.waiting, next);
            // With no slot to be had, this client waits, and later ones at
            // the pipe.
            let slot = tokio::select! {
                () = shutdown.cancelled() => break,
                slot = slots.take() => slot,
            };
            let (read, write) = tokio::io::split(client);
            let queue = queue.clone();
            let shutdown = shutdown.clone();
            connections.spawn(async move {
                connection::serve(read, write, queue, limits, slot.activity(), shutdown).await;
                drop(slot);
            });
        }
        connections.close();
        connections.wait().await;
    }
}
