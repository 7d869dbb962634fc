//! What `jobhook service install` writes on every system: a service-ready
//! config and the example scripts, only where there is no config yet, and
//! the check that the config the service will run on loads.

use std::path::Path;

use anyhow::{Context as _, ensure};

use crate::daemon;

const SCRIPTS: [(&str, &str); 4] = [
    ("_history.lua", include_str!("../../scripts/_history.lua")),
    (
        "chat_message.lua",
        include_str!("../../scripts/chat_message.lua"),
    ),
    ("enrich.lua", include_str!("../../scripts/enrich.lua")),
    (
        "route_failures.lua",
        include_str!("../../scripts/route_failures.lua"),
    ),
];

/// Writes `text` as the config at `file`, and the example scripts into
/// `scripts` beside it, unless `file` exists (an operator's config is never
/// touched); then checks the config as `jobhook check` does.
pub fn config(file: &Path, text: &str) -> anyhow::Result<()> {
    if file.exists() {
        println!("kept {}", file.display());
    } else {
        // Readable by the service's group only: a config may hold secrets.
        write(file, text, 0o640)?;
        println!("wrote {}", file.display());
        for (name, script) in SCRIPTS {
            let path = file.with_file_name("scripts").join(name);
            write(&path, script, 0o644)?;
            println!("wrote {}", path.display());
        }
    }
    ensure!(
        daemon::load(file.to_owned()).is_some(),
        "{} does not pass `jobhook check` (the problems are above): fix it, then install again",
        file.display()
    );
    Ok(())
}

/// Writes `text` to a temporary file beside `path` and renames it there (a
/// reader sees the old file or the new one, never half of one), creating
/// folders; `mode` is the file's permissions on Unix.
pub fn write(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    let context = || format!("cannot write {}", path.display());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(context)?;
    }
    let temporary = path.with_extension("jobhook-new");
    std::fs::write(&temporary, text).with_context(context)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(mode))
            .with_context(context)?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    std::fs::rename(&temporary, path).with_context(context)
}
