//! The Unix stream socket.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::UnixListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::{BindError, Limits, connection};
use crate::queue::Queue;

/// A bound socket. The socket file is removed when this is dropped.
pub struct Listener {
    listener: UnixListener,
    path: PathBuf,
}

impl Listener {
    /// Binds `path` with permissions `mode`, creating its directory. A socket
    /// file left by a daemon that died is replaced; one that a running daemon
    /// answers on is not.
    pub fn bind(path: &Path, mode: u32) -> Result<Listener, BindError> {
        let io_error = |source| BindError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_error)?;
        }
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(BindError::InUse {
                    path: path.display().to_string(),
                });
            }
            std::fs::remove_file(path).map_err(io_error)?;
        }
        let listener = UnixListener::bind(path).map_err(io_error)?;
        let listener = Listener {
            listener,
            path: path.to_owned(),
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_error)?;
        Ok(listener)
    }

    /// Accepts clients until `shutdown` fires, then waits for their connections
    /// to finish answering what they sent.
    pub async fn serve(self, queue: Arc<Queue>, limits: Limits, shutdown: CancellationToken) {
        info!(socket = %self.path.display(), "listening");
        let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
        let connections = TaskTracker::new();
        loop {
            // Take a permit before accepting: at the limit, clients wait in the backlog.
            let permit = tokio::select! {
                () = shutdown.cancelled() => break,
                permit = permits.clone().acquire_owned() => permit.expect("semaphore never closed"),
            };
            let stream = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(err) => {
                        warn!(error = %err, "accept failed");
                        continue;
                    }
                },
            };
            let (read, write) = stream.into_split();
            let queue = queue.clone();
            let shutdown = shutdown.clone();
            connections.spawn(async move {
                connection::serve(read, write, queue, limits.max_event_bytes, shutdown).await;
                drop(permit);
            });
        }
        connections.close();
        connections.wait().await;
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
