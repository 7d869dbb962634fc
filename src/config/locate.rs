//! Which config file to use when `-c` is not given (SPEC §1).

use std::path::PathBuf;

/// The system-wide config file.
pub fn default_config_path() -> PathBuf {
    #[cfg(windows)]
    {
        let base = std::env::var_os("ProgramData").unwrap_or_else(|| r"C:\ProgramData".into());
        PathBuf::from(base).join("jobhook").join("handlers.toml")
    }
    #[cfg(not(windows))]
    {
        PathBuf::from("/etc/jobhook/handlers.toml")
    }
}

/// `-c FILE` if given, else `$JOBHOOK_CONFIG`, else `./handlers.toml` if it
/// exists, else the system-wide file.
pub fn locate(explicit: Option<PathBuf>) -> PathBuf {
    explicit
        .or_else(|| std::env::var_os("JOBHOOK_CONFIG").map(PathBuf::from))
        .or_else(|| {
            let local = PathBuf::from("handlers.toml");
            local.is_file().then_some(local)
        })
        .unwrap_or_else(default_config_path)
}
