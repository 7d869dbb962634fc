//! The Windows named pipe. Same protocol and limits as the Unix socket;
//! every instance carries the same [`PipeAccess`] (who may connect).

use std::sync::Arc;

use tokio::net::windows::named_pipe::{NamedPipeServer, ServerOptions};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::pipe_access::PipeAccess;
use super::slots::Slots;
use super::{BindError, Limits, connection};
use crate::spool::Queue;

/// A named pipe with one instance waiting for the next client.
pub struct Listener {
    name: String,
    access: PipeAccess,
    waiting: NamedPipeServer,
}

/// Creates an instance of the pipe `name` that `access` admits.
fn instance(
    options: &ServerOptions,
    name: &str,
    access: &PipeAccess,
) -> std::io::Result<NamedPipeServer> {
    // SAFETY: `access` outlives the call and holds a valid descriptor.
    unsafe { options.create_with_security_attributes_raw(name, access.attributes()) }
}

impl Listener {
    /// Creates the first instance of the pipe, which only `clients` (with
    /// SYSTEM, Administrators and the daemon's own account) may open; fails
    /// if another process owns the name.
    pub fn bind(name: &str, clients: &[String]) -> Result<Listener, BindError> {
        let io_error = |source| BindError::Io {
            path: name.to_owned(),
            source,
        };
        let access = PipeAccess::new(clients).map_err(io_error)?;
        let waiting = instance(
            ServerOptions::new().first_pipe_instance(true),
            name,
            &access,
        )
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::PermissionDenied => BindError::InUse {
                path: name.to_owned(),
            },
            _ => io_error(source),
        })?;
        Ok(Listener {
            name: name.to_owned(),
            access,
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
            let next = match instance(&ServerOptions::new(), &self.name, &self.access) {
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
