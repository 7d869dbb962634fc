//! Writing the config file so that no edit is lost and no reader sees half
//! a file: the file must still hold what the change was made on, and the
//! new text replaces it in one rename, with the old file's mode (and, on
//! Unix, owner).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::RegistrationError;
use crate::config::read::{MAX_FILE_BYTES, read_regular};

/// Replaces `file` with `candidate` if it still holds `based_on` (the text
/// the change was made on); [`RegistrationError::Changed`] if someone
/// changed it since. Blocking.
///
/// Comparing and renaming are not one step: an edit saved between them is
/// still lost. The window is the time of one small write; an operator's
/// editor saving then is not guarded against.
pub fn write(file: &Path, based_on: &str, candidate: &str) -> Result<(), RegistrationError> {
    let io = |action, path: &Path| {
        let path = path.to_owned();
        move |source| RegistrationError::Io {
            action,
            file: path,
            source,
        }
    };
    // A link is followed: the file it points to is replaced, the link kept.
    let target = fs::canonicalize(file).map_err(io("find", file))?;
    if read_regular(&target, MAX_FILE_BYTES)? != based_on.as_bytes() {
        return Err(RegistrationError::Changed {
            file: file.to_owned(),
        });
    }
    let metadata = fs::metadata(&target).map_err(io("read", &target))?;
    let temporary = temporary_name(&target);
    let written = (|| {
        let mut out = File::create_new(&temporary)?;
        out.set_permissions(metadata.permissions())?;
        keep_owner(&out, &metadata)?;
        out.write_all(candidate.as_bytes())?;
        out.sync_all()
    })();
    if let Err(source) = written.and_then(|()| fs::rename(&temporary, &target)) {
        let _ = fs::remove_file(&temporary);
        return Err(io("write", &target)(source));
    }
    // A canonical path has a parent: the file is not the root.
    let dir = target.parent().unwrap_or(Path::new("/"));
    sync_dir(dir).map_err(io("sync", dir))
}

/// `.NAME.jobhook-PID-N.tmp` beside the file: same directory (so the
/// rename stays on one file system), hidden, not `*.toml`, and a name of
/// its own for each write of this process.
fn temporary_name(file: &Path) -> PathBuf {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let name = file
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let write = WRITES.fetch_add(1, Ordering::Relaxed);
    file.with_file_name(format!(
        ".{name}.jobhook-{}-{write}.tmp",
        std::process::id()
    ))
}

/// Gives the new file the old one's owner and group. Only root may give a
/// file away: anyone else writes a file they own, as an editor would.
#[cfg(unix)]
fn keep_owner(out: &File, metadata: &fs::Metadata) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    match std::os::unix::fs::fchown(out, Some(metadata.uid()), Some(metadata.gid())) {
        Err(err) if err.raw_os_error() == Some(libc::EPERM) => Ok(()),
        other => other,
    }
}

#[cfg(not(unix))]
fn keep_owner(_out: &File, _metadata: &fs::Metadata) -> io::Result<()> {
    Ok(())
}

/// Makes the rename durable. Windows cannot open a directory for syncing;
/// its rename is made durable by the file system's journal.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}
