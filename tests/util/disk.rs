//! Real file systems that fail for tests of a failing disk: a small tmpfs to
//! fill, or an ext4 image (loop-mounted) whose files `chattr +i` makes
//! immutable even to the daemon's open descriptors; either can be remounted
//! read-only. Mounting needs root: where it is refused, [`Disk::mount`]
//! says so and gives `None`, and the test skips.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted file system in a temp folder, unmounted on drop.
pub struct Disk {
    dir: tempfile::TempDir,
    /// The ext4 image behind it, if any.
    _image: Option<tempfile::NamedTempFile>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tmpfs,
    Ext4,
}

/// Runs a command; its stderr on failure.
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|err| format!("{program}: {err}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

impl Disk {
    /// Mounts a file system of `kind` and `size` (e.g. "2m"), or prints why
    /// the test is skipped.
    pub fn mount(kind: Kind, size: &str) -> Option<Disk> {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().to_str().unwrap();
        let mounted = match kind {
            Kind::Tmpfs => run(
                "mount",
                &[
                    "-t",
                    "tmpfs",
                    "-o",
                    &format!("size={size}"),
                    "tmpfs",
                    target,
                ],
            )
            .map(|()| None),
            Kind::Ext4 => {
                let image = tempfile::NamedTempFile::new().unwrap();
                let file = image.path().to_str().unwrap();
                run("truncate", &["-s", size, file])
                    .and_then(|()| run("mkfs.ext4", &["-q", file]))
                    .and_then(|()| run("mount", &["-o", "loop", file, target]))
                    .map(|()| Some(image))
            }
        };
        match mounted {
            Ok(image) => Some(Disk { dir, _image: image }),
            Err(why) => {
                eprintln!("SKIPPED: cannot mount a {kind:?} file system here ({why})");
                None
            }
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the file system with a ballast file; returns it.
    pub fn fill(&self) -> PathBuf {
        let ballast = self.path().join("ballast");
        let mut file = std::fs::File::create(&ballast).unwrap();
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        let _ = file.sync_all();
        ballast
    }

    /// Remounts read-only (`"ro"`) or read-write (`"rw"`).
    pub fn remount(&self, mode: &str) {
        let target = self.path().to_str().unwrap();
        run("mount", &["-o", &format!("remount,{mode}"), target]).unwrap();
    }
}

/// `chattr +i` / `-i` on `path`.
pub fn chattr(flag: &str, path: &Path) {
    run("chattr", &[flag, path.to_str().unwrap()]).unwrap();
}

impl Drop for Disk {
    fn drop(&mut self) {
        // Lazily: a daemon being killed may still hold files open.
        let _ = run("umount", &["--lazy", self.path().to_str().unwrap()]);
    }
}
