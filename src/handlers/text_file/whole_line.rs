//! Writing a line so that the file is left with whole lines only.
//!
//! A write can stop partway: the disk fills, a quota or a file size limit
//! is reached. The part already written would be half a line, and the
//! retry would write the whole line after it. So on any failure the part
//! written is cut off again, and the file ends with the last whole line.

use std::fs::File;
use std::io::{self, Seek, Write};

/// Writes all of `line` (which ends with a newline) at the end of `file`,
/// opened for appending; on failure, nothing of it stays in the file.
pub fn append(file: &mut File, line: &[u8]) -> io::Result<()> {
    let mut written = 0;
    while written < line.len() {
        match file.write(&line[written..]) {
            Ok(0) => return cut_back(file, written, io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return cut_back(file, written, err),
        }
    }
    Ok(())
}

/// Cuts the last `written` bytes (the part of a line written before
/// `err`) off the end of the file, and returns `err`. In append mode the
/// file's position is the end of what this handle wrote, so lines other
/// processes appended before it are kept.
fn cut_back(file: &mut File, written: usize, err: io::Error) -> io::Result<()> {
    if written == 0 {
        return Err(err);
    }
    let cut = file
        .stream_position()
        .and_then(|end| file.set_len(end.saturating_sub(written as u64)));
    match cut {
        Ok(()) => Err(err),
        Err(cut) => Err(io::Error::new(
            err.kind(),
            format!("{err}; and {written} bytes of a partial line could not be cut off: {cut}"),
        )),
    }
}
