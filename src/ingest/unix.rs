//! The Unix stream socket.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::slots::Slots;
use super::{BindError, Limits, connection};
use crate::spool::Queue;

/// A bound socket. The socket file is removed when this is dropped, if it
/// is still the one this bound.
pub struct Listener {
    listener: UnixListener,
    path: PathBuf,
    /// Device and inode of the socket file.
    file: (u64, u64),
}

impl Listener {
    /// Binds `path` with permissions `mode`, creating its directory. A socket
    /// file left by a daemon that died is replaced; one that a running daemon
    /// answers on is not, and neither is anything but a socket (a mistyped
    /// `socket = "handlers.toml"` must not delete the config).
    pub fn bind(path: &Path, mode: u32) -> Result<Listener, BindError> {
        let io_error = |source| BindError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_error)?;
        }
        remove_stale_socket(path)?;
        let listener = UnixListener::bind(path).map_err(io_error)?;
        let file = std::fs::symlink_metadata(path).map_err(io_error)?;
        let listener = Listener {
            listener,
            path: path.to_owned(),
            file: (file.dev(), file.ino()),
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_error)?;
        Ok(listener)
    }

    /// Accepts clients until `shutdown` fires, then waits for their connections
    /// to finish answering what they sent.
    pub async fn serve(self, queue: Arc<Queue>, limits: Limits, shutdown: CancellationToken) {
        info!(socket = %self.path.display(), "listening");
        let slots = Slots::new(limits.max_connections);
        let connections = TaskTracker::new();
        loop {
            let stream = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(err) => {
                        // Out of file descriptors, say: wait for some to
                        // close rather than spin.
                        warn!(error = %err, "accept failed");
                        tokio::time::sleep(super::ACCEPT_PAUSE).await;
                        continue;
                    }
                },
            };
            // With no slot to be had, this client waits, and later ones in
            // the backlog.
            let slot = tokio::select! {
                () = shutdown.cancelled() => break,
                slot = slots.take() => slot,
            };
            let (read, write) = stream.into_split();
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

/// Removes what is at `path` if it is a socket nobody listens on. Anything
/// else there is refused: a live socket, and any other kind of file (a
/// symbolic link is not followed).
fn remove_stale_socket(path: &Path) -> Result<(), BindError> {
    let io_error = |source| BindError::Io {
        path: path.display().to_string(),
        source,
    };
    let kind = match std::fs::symlink_metadata(path) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(io_error(err)),
        Ok(meta) => meta.file_type(),
    };
    if !kind.is_socket() {
        let kind = if kind.is_file() {
            "a regular file"
        } else if kind.is_dir() {
            "a directory"
        } else if kind.is_symlink() {
            "a symbolic link"
        } else {
            "a special file"
        };
        return Err(BindError::NotASocket {
            path: path.display().to_string(),
            kind,
        });
    }
    // Only a refused connection shows that nobody listens; any other
    // failure (no permission, say) shows nothing, so the file stays.
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(BindError::InUse {
            path: path.display().to_string(),
        }),
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
            std::fs::remove_file(path).map_err(io_error)
        }
        Err(err) => Err(io_error(err)),
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Whatever replaced the socket file meanwhile is not ours to delete.
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|meta| (meta.dev(), meta.ino()) == self.file);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
