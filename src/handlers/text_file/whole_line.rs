//! Writing a line so that the file is left with whole lines only.
//!
//! A write can stop partway: the disk fills, a quota or a file size limit
//! is reached. The part already written would be half a line, and the
//! retry would write the whole line after it. So on any failure the part
//! written is cut off again, and the file ends with the last whole line.

use std::fs::File;
use std::io::{self, Seek, Write};
use std::path::Path;

/// Writes all of `line` (one or more whole lines, ending with a newline) at
/// the end of `file`, opened for appending at `path`; on failure, nothing
/// of it stays in the file.
pub fn append(file: &mut File, path: &Path, line: &[u8]) -> io::Result<()> {
    let mut written = 0;
    while written < line.len() {
        match file.write(&line[written..]) {
            Ok(0) => return cut_back(file, path, written, io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return cut_back(file, path, written, err),
        }
    }
    Ok(())
}

/// Cuts the last `written` bytes (the part of a line written before
/// `err`) off the end of the file, and returns `err`. In append mode the
/// file's position is the end of what this handle wrote, so lines other
/// processes appended before it are kept (one appended between the part
/// and the failure would be cut too: writers of one file are expected to
/// be this daemon's handlers, which take turns).
fn cut_back(file: &mut File, path: &Path, written: usize, err: io::Error) -> io::Result<()> {
    if written == 0 {
        return Err(err);
    }
    let cut = file
        .stream_position()
        .and_then(|end| truncate(file, path, end.saturating_sub(written as u64)));
    match cut {
        Ok(()) => Err(err),
        Err(cut) => Err(io::Error::new(
            err.kind(),
            format!("{err}; and {written} bytes of a partial line could not be cut off: {cut}"),
        )),
    }
}

/// Sets the file's length. On Windows an append-only handle has no right
/// to change the data (`FILE_WRITE_DATA`), so a second handle does it.
fn truncate(file: &File, path: &Path, len: u64) -> io::Result<()> {
    #[cfg(windows)]
    {
        let _ = file;
        File::options().write(true).open(path)?.set_len(len)
    }
    #[cfg(not(windows))]
    {
        let _ = path;
        file.set_len(len)
    }
}
