//! Reading the files a config names (the config itself, secrets, scripts,
//! certificates): regular files only, and only up to a size.
//!
//! A FIFO, a device or a directory where a file is expected must give an
//! error at once, not block the reader (a FIFO with no writer blocks `open`
//! forever) or stream gigabytes (`/dev/zero`).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The largest config, script or secret file read: far above any real one,
/// small enough that a mistake cannot fill the daemon's memory.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Why a file the config names could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    NotRegular(#[from] NotRegular),
    #[error("{} is larger than {limit} bytes", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
}

/// A path that names something other than a regular file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} is not a regular file (it is {kind})", path.display())]
pub struct NotRegular {
    pub path: PathBuf,
    pub kind: &'static str,
}

/// Refuses `path` unless `metadata` (of it) says it is a regular file.
pub(crate) fn require_regular(path: &Path, metadata: &std::fs::Metadata) -> Result<(), NotRegular> {
    match metadata.is_file() {
        true => Ok(()),
        false => Err(NotRegular {
            path: path.to_owned(),
            kind: kind_of(&metadata.file_type()),
        }),
    }
}

/// Reads the regular file at `path` (following symlinks), refusing anything
/// else and anything over `limit` bytes.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let io = |source| ReadError::Io {
        path: path.to_owned(),
        source,
    };
    let file = open_without_blocking(path).map_err(io)?;
    let metadata = file.metadata().map_err(io)?;
    require_regular(path, &metadata)?;
    let too_large = || ReadError::TooLarge {
        path: path.to_owned(),
        limit,
    };
    if metadata.len() > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    // The file may grow between the check and the read.
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// [`read_regular`] as UTF-8 text.
pub fn read_regular_text(path: &Path, limit: u64) -> Result<String, ReadError> {
    let bytes = read_regular(path, limit)?;
    String::from_utf8(bytes).map_err(|err| ReadError::Io {
        path: path.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, err),
    })
}

/// Opens for reading; on Unix with `O_NONBLOCK`, so that opening a FIFO
/// nobody writes to returns at once (the flag does not change reads of a
/// regular file).
fn open_without_blocking(path: &Path) -> std::io::Result<File> {
    let mut options = File::options();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    options.open(path)
}

pub(crate) fn kind_of(file_type: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_char_device() || file_type.is_block_device() {
            return "a device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    if file_type.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_and_others_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a");
        std::fs::write(&file, "hello").unwrap();
        assert_eq!(read_regular(&file, 5).unwrap(), b"hello");
        let err = read_regular(&file, 4).unwrap_err();
        assert!(matches!(err, ReadError::TooLarge { limit: 4, .. }), "{err}");
        let err = read_regular(dir.path(), 10).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} is not a regular file (it is a directory)",
                dir.path().display()
            )
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_fifo_or_a_device_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let err = read_regular(&fifo, 10).unwrap_err();
        assert!(err.to_string().ends_with("(it is a FIFO)"), "{err}");
        let err = read_regular(Path::new("/dev/zero"), 10).unwrap_err();
        assert!(err.to_string().ends_with("(it is a device)"), "{err}");
    }
}
