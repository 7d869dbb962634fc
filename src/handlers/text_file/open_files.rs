//! The files a writer thread keeps open, and how one is opened.
//!
//! Files are opened in append mode and kept open; the lines handed over
//! for one file in a row go out together, normally in one `write` call, so
//! lines stay whole (on local file systems even with other processes
//! appending too); a write that fails partway is cut off again
//! ([`whole_line`](super::whole_line)). A file that logrotate moved
//! or deleted is noticed within a second and reopened. Only regular files
//! are written: a FIFO or a device is refused before it is opened.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::whole_line;
use crate::config::read::{NotRegular, require_regular};

/// How often an open file is checked for having been rotated away.
const ROTATION_CHECK: Duration = Duration::from_secs(1);
/// Open files kept at most; a `file_path` templated per job would otherwise
/// keep every file it ever wrote open.
const MAX_OPEN_FILES: usize = 64;

/// Why a line could not be appended.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot write to {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    NotRegular(#[from] NotRegular),
}

impl FileError {
    /// The same error, for another line of the same write.
    pub fn again(&self) -> FileError {
        match self {
            FileError::Io { path, source } => FileError::Io {
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            FileError::NotRegular(not_regular) => FileError::NotRegular(not_regular.clone()),
        }
    }
}

/// The files written last, by path.
#[derive(Debug, Default)]
pub struct OpenFiles {
    files: HashMap<Arc<Path>, OpenFile>,
}

#[derive(Debug)]
struct OpenFile {
    file: File,
    checked_at: Instant,
    used_at: Instant,
}

impl OpenFiles {
    /// Appends `line` (ending with a newline) to `path`, opening it (and
    /// its parent directories) if it is not open.
    pub fn append(&mut self, path: &Arc<Path>, line: &[u8]) -> Result<(), FileError> {
        let mut slot = self.files.remove(path);
        let written = append(&mut slot, path, line);
        if let Some(file) = slot {
            if self.files.len() >= MAX_OPEN_FILES {
                self.close_least_recently_used();
            }
            self.files.insert(path.clone(), file);
        }
        written
    }

    fn close_least_recently_used(&mut self) {
        let oldest = self
            .files
            .iter()
            .min_by_key(|(_, open)| open.used_at)
            .map(|(path, _)| path.clone());
        if let Some(path) = oldest {
            self.files.remove(&path);
        }
    }
}

/// Appends `line` to `path` through the file kept open in `slot`, opening
/// it when there is none or when it was rotated away. A failed write
/// empties the slot: the next attempt reopens (the file may have been
/// replaced).
fn append(slot: &mut Option<OpenFile>, path: &Path, line: &[u8]) -> Result<(), FileError> {
    let now = Instant::now();
    if let Some(open) = slot
        && now.duration_since(open.checked_at) >= ROTATION_CHECK
    {
        open.checked_at = now;
        if !still_at(&open.file, path) {
            *slot = None;
        }
    }
    let open = match slot {
        Some(open) => open,
        None => slot.insert(OpenFile {
            file: open_append(path)?,
            checked_at: now,
            used_at: now,
        }),
    };
    open.used_at = now;
    let written = whole_line::append(&mut open.file, path, line);
    if written.is_err() {
        *slot = None;
    }
    written.map_err(|source| FileError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Opens `path` for appending, creating it and its parent directories.
/// Anything but a regular file is refused: looked at before the open (so
/// that no device is opened at all), and again after it, for a path
/// replaced in between. On Unix the open is non-blocking, so a FIFO with no
/// reader fails at once (ENXIO) instead of blocking; the flag does not
/// change writes to a regular file.
fn open_append(path: &Path) -> Result<File, FileError> {
    let io = |source| FileError::Io {
        path: path.to_owned(),
        source,
    };
    if let Ok(metadata) = std::fs::metadata(path) {
        require_regular(path, &metadata)?;
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(io)?;
    require_regular(path, &file.metadata().map_err(io)?)?;
    Ok(file)
}

/// Whether `path` still names the open file (logrotate has not moved it away).
#[cfg(unix)]
fn still_at(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn still_at(_file: &File, path: &Path) -> bool {
    path.exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(dir: &Path, name: &str) -> Arc<Path> {
        Arc::from(dir.join(name))
    }

    #[test]
    fn reopens_a_file_rotated_away() {
        let dir = tempfile::tempdir().unwrap();
        let rot = path(dir.path(), "rot.log");
        let mut files = OpenFiles::default();
        files.append(&rot, b"before\n").unwrap();
        std::fs::rename(&rot, dir.path().join("rot.log.1")).unwrap();
        // Force the next write to check for rotation.
        files.files.get_mut(&rot).unwrap().checked_at -= ROTATION_CHECK;
        files.append(&rot, b"after\n").unwrap();
        let rotated = std::fs::read_to_string(dir.path().join("rot.log.1")).unwrap();
        assert_eq!(rotated, "before\n");
        assert_eq!(std::fs::read_to_string(&rot).unwrap(), "after\n");
    }

    #[test]
    fn open_files_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = OpenFiles::default();
        for i in 0..(MAX_OPEN_FILES + 10) {
            files
                .append(&path(dir.path(), &format!("jobs/{i}.log")), b"x\n")
                .unwrap();
        }
        assert_eq!(files.files.len(), MAX_OPEN_FILES);
        assert_eq!(
            std::fs::read_dir(dir.path().join("jobs")).unwrap().count(),
            MAX_OPEN_FILES + 10
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_fifo_or_a_device_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = path(dir.path(), "fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&*fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let mut files = OpenFiles::default();
        let err = files.append(&fifo, b"x\n").unwrap_err();
        assert!(
            err.to_string()
                .ends_with("fifo is not a regular file (it is a FIFO)"),
            "{err}"
        );
        let err = files
            .append(&Arc::from(Path::new("/dev/null")), b"x\n")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "/dev/null is not a regular file (it is a device)"
        );
    }
}
