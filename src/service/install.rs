//! `jobhook service install|uninstall` on Linux: the packaged unit,
//! sysusers.d and tmpfiles.d files (naming this binary, the config and the
//! user given), and — only where there is no config yet — the service-ready
//! config and the example scripts. Then, on the running system, the user is
//! created and the unit enabled and started. Running it again changes
//! nothing; `--root` writes under another root and runs nothing.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail, ensure};

use super::{Install, files};
use crate::config::default_config_path;

/// The packaged files, which are the templates (the Debian package installs
/// them as they are).
const UNIT: &str = include_str!("../../packaging/systemd/jobhook.service");
const SYSUSERS: &str = include_str!("../../packaging/systemd/jobhook.sysusers");
const TMPFILES: &str = include_str!("../../packaging/systemd/jobhook.tmpfile");
const CONFIG: &str = include_str!("../../packaging/handlers.toml");
/// Where `install` writes (relative to the root) and `uninstall` removes.
const UNIT_PATH: &str = "etc/systemd/system/jobhook.service";
const SYSUSERS_PATH: &str = "etc/sysusers.d/jobhook.conf";
const TMPFILES_PATH: &str = "etc/tmpfiles.d/jobhook.conf";
const SERVICE: &str = "jobhook.service";

/// What the templates name, replaced by what `install` is given.
const PACKAGED_EXEC_START: &str = "ExecStart=/usr/bin/jobhook run -c /etc/jobhook/handlers.toml";
const DEFAULT_USER: &str = "jobhook";

/// The system `install` writes to: `/` (then it also runs systemd's tools)
/// or the `--root` given.
struct Target {
    root: PathBuf,
    live: bool,
}

impl Target {
    fn new(root: Option<PathBuf>) -> anyhow::Result<Target> {
        let live = root.is_none();
        // SAFETY: geteuid has no preconditions and cannot fail.
        if live && unsafe { libc::geteuid() } != 0 {
            bail!(
                "must run as root: it writes under /etc and runs systemctl (or give --root DIR to write the files under DIR)"
            );
        }
        Ok(Target {
            root: root.unwrap_or_else(|| PathBuf::from("/")),
            live,
        })
    }

    /// `path` (absolute, as the installed system sees it) under the root.
    fn path(&self, path: impl AsRef<Path>) -> PathBuf {
        let path = path.as_ref();
        self.root.join(path.strip_prefix("/").unwrap_or(path))
    }

    /// Whether systemd is this system's service manager (PID 1).
    fn systemd_running(&self) -> bool {
        self.live && Path::new("/run/systemd/system").is_dir()
    }
}

pub fn install(config: Option<PathBuf>, options: Install) -> anyhow::Result<()> {
    let target = Target::new(options.root)?;
    let config = config.unwrap_or_else(default_config_path);
    let user = options.user.as_deref().unwrap_or(DEFAULT_USER);
    ensure!(
        is_user_name(user),
        "--user {user:?}: a system user name is letters, digits, '_' and '-', not starting with a digit or '-', at most 31 characters"
    );
    let binary = std::env::current_exe()
        .and_then(|path| path.canonicalize())
        .context("cannot tell where this jobhook binary is")?;
    for (what, path) in [("the binary", &binary), ("the config", &config)] {
        usable_in_unit(what, path, target.live)?;
    }

    files::config(&target.path(&config), CONFIG)?;

    let (binary, config) = (binary.display(), config.display());
    let unit = filled(
        UNIT,
        &[
            (
                PACKAGED_EXEC_START,
                &format!("ExecStart={binary} run -c {config}"),
            ),
            ("\nUser=jobhook\n", &format!("\nUser={user}\n")),
            ("\nGroup=jobhook\n", &format!("\nGroup={user}\n")),
        ],
    );
    let sysusers = filled(SYSUSERS, &[("\nu jobhook ", &format!("\nu {user} "))]);
    let tmpfiles = filled(
        TMPFILES,
        &[
            (" jobhook jobhook ", &format!(" {user} {user} ")),
            (
                "z /etc/jobhook/handlers.toml 0640 root jobhook",
                &format!("z {config} 0640 root {user}"),
            ),
        ],
    );
    let mut changed = false;
    for (path, text) in [
        (UNIT_PATH, unit),
        (SYSUSERS_PATH, sysusers),
        (TMPFILES_PATH, tmpfiles),
    ] {
        changed |= write_if_changed(&target.path(path), &text)?;
    }
    activate(&target, changed, options.no_enable)
}

/// Creates the user and the directories, and enables and starts the unit
/// (restarts it if its files changed) — where systemd runs this system.
fn activate(target: &Target, changed: bool, no_enable: bool) -> anyhow::Result<()> {
    if !target.live {
        return Ok(());
    }
    if !target.systemd_running() {
        println!(
            "systemd is not running here (PID 1 is another init): the files are written, nothing is enabled; create the user (systemd-sysusers or useradd) and run `jobhook run` yourself"
        );
        return Ok(());
    }
    let sysusers = target.path(SYSUSERS_PATH);
    let tmpfiles = target.path(TMPFILES_PATH);
    run("systemd-sysusers", &[sysusers.as_os_str()])?;
    run(
        "systemd-tmpfiles",
        &["--create".as_ref(), tmpfiles.as_os_str()],
    )?;
    run("systemctl", &["daemon-reload"])?;
    match (no_enable, changed) {
        (true, _) => {
            println!("not enabled (--no-enable): `systemctl enable --now jobhook` starts it")
        }
        (false, true) => {
            run("systemctl", &["enable", SERVICE])?;
            run("systemctl", &["restart", SERVICE])?;
        }
        (false, false) => run("systemctl", &["enable", "--now", SERVICE])?,
    }
    Ok(())
}

pub fn uninstall(root: Option<PathBuf>) -> anyhow::Result<()> {
    let target = Target::new(root)?;
    if target.systemd_running() {
        // Not installed (or already stopped) is not an error here.
        if let Err(err) = run("systemctl", &["disable", "--now", SERVICE]) {
            println!("{err:#}");
        }
    }
    for path in [UNIT_PATH, SYSUSERS_PATH, TMPFILES_PATH] {
        let path = target.path(path);
        match std::fs::remove_file(&path) {
            Ok(()) => println!("removed {}", path.display()),
            Err(err) if err.kind() == ErrorKind::NotFound => {}
            Err(err) => return Err(err).context(format!("cannot remove {}", path.display())),
        }
    }
    if target.systemd_running() {
        run("systemctl", &["daemon-reload"])?;
    }
    println!(
        "kept the config and scripts (/etc/jobhook), the spool (/var/lib/jobhook), the logs (/var/log/jobhook) and the user"
    );
    Ok(())
}

/// `template` with each `(from, to)` replaced. Every `from` is in the
/// packaged file (a test keeps them in step).
fn filled(template: &str, replacements: &[(&str, &str)]) -> String {
    replacements
        .iter()
        .fold(template.to_owned(), |text, (from, to)| {
            text.replace(from, to)
        })
}

fn is_user_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && name.len() <= 31
}

/// Whether `path` can be written into the unit as it is and the sandboxed
/// service can reach it (`ProtectHome=` hides home directories). Where the
/// files are for another system (`--root`), only the first is checked.
fn usable_in_unit(what: &str, path: &Path, live: bool) -> anyhow::Result<()> {
    let text = path.to_str().unwrap_or("");
    ensure!(
        path.is_absolute()
            && !text.is_empty()
            && !text.contains(|c: char| c.is_whitespace() || "\"'\\%$;".contains(c)),
        "{what} {}: the unit needs an absolute path without spaces, quotes, '%', '$' or ';'",
        path.display()
    );
    let hidden = ["/home", "/root", "/run/user"]
        .iter()
        .any(|dir| path.starts_with(dir));
    ensure!(
        !(live && hidden),
        "{what} {} is in a home directory, which the service's sandbox hides (ProtectHome=yes): put the binary in /usr/local/bin and the config in /etc/jobhook",
        path.display()
    );
    Ok(())
}

/// Writes `text` at `path` unless it already holds it; whether it wrote.
fn write_if_changed(path: &Path, text: &str) -> anyhow::Result<bool> {
    if std::fs::read(path).is_ok_and(|held| held == text.as_bytes()) {
        println!("unchanged {}", path.display());
        return Ok(false);
    }
    files::write(path, text, 0o644)?;
    println!("wrote {}", path.display());
    Ok(true)
}

/// Runs a command, saying so; its stderr on failure.
fn run(program: &str, args: &[impl AsRef<std::ffi::OsStr>]) -> anyhow::Result<()> {
    let shown: Vec<_> = args
        .iter()
        .map(|arg| arg.as_ref().to_string_lossy())
        .collect();
    println!("running {program} {}", shown.join(" "));
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    ensure!(
        output.status.success(),
        "{program} {} failed ({}): {}",
        shown.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packaged_files_hold_every_text_install_replaces() {
        for (file, text) in [
            (UNIT, PACKAGED_EXEC_START),
            (UNIT, "\nUser=jobhook\n"),
            (UNIT, "\nGroup=jobhook\n"),
            (SYSUSERS, "\nu jobhook "),
            (TMPFILES, " jobhook jobhook "),
            (TMPFILES, "z /etc/jobhook/handlers.toml 0640 root jobhook"),
        ] {
            assert!(
                file.contains(text),
                "{text:?} is no longer in its packaged file"
            );
        }
    }

    #[test]
    fn user_names_are_what_sysusers_accepts() {
        for good in ["jobhook", "_svc", "svc-jobhook2"] {
            assert!(is_user_name(good), "{good}");
        }
        for bad in ["", "2fa", "-x", "a b", "a:b", &"x".repeat(32)] {
            assert!(!is_user_name(bad), "{bad}");
        }
    }
}
