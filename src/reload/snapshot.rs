//! What a reload looks at: the config's bytes and the scripts folder, read
//! until they stop changing.

use std::path::Path;
use std::time::Duration;

use crate::chain::Pipeline;
use crate::config::read::{MAX_FILE_BYTES, read_regular};
use crate::lua::Fingerprint;
use crate::setup::Config;

/// A config is applied only once two reads this far apart agree, so that a
/// file caught while an editor or a script is still writing it is not.
pub const SETTLE: Duration = Duration::from_millis(100);
/// Reads before giving up on a file that keeps changing; the next change
/// event tries again.
pub const SETTLE_READS: usize = 20;

/// What the last reload looked at: a batch of events that leaves both equal
/// is not a change.
#[derive(Clone, PartialEq)]
pub struct Snapshot {
    config: Option<Vec<u8>>,
    scripts: Fingerprint,
}

impl Snapshot {
    /// What the files hold now. Only a regular file is read (a FIFO or a
    /// device in its place reads as nothing, and fails to load).
    fn take(file: &Path, scripts_dir: &Path) -> Snapshot {
        Snapshot {
            config: read_regular(file, MAX_FILE_BYTES).ok(),
            scripts: Fingerprint::of(scripts_dir),
        }
    }

    /// What the files hold once they stop changing, or `None` if they are
    /// still changing after [`SETTLE_READS`] reads.
    pub fn settled(file: &Path, scripts_dir: &Path) -> Option<Snapshot> {
        let mut last = Snapshot::take(file, scripts_dir);
        for _ in 0..SETTLE_READS {
            std::thread::sleep(SETTLE);
            let now = Snapshot::take(file, scripts_dir);
            if now == last {
                return Some(now);
            }
            last = now;
        }
        None
    }

    /// What the running pipeline was built from.
    pub fn running(config: &Config, pipeline: &Pipeline) -> Snapshot {
        Snapshot {
            config: Some(config.text.clone().into_bytes()),
            scripts: pipeline.scripts().clone(),
        }
    }
}
