//! `jobhook service install|uninstall --root DIR` and the packaged systemd
//! files: what is written, that a second run changes nothing, what
//! uninstall keeps, and what systemd's own tools say of the unit.

#![cfg(target_os = "linux")] // systemd and its tools.

mod util;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::SystemTime;

use util::{BIN, jobhook};

const UNIT: &str = "etc/systemd/system/jobhook.service";
const SYSUSERS: &str = "etc/sysusers.d/jobhook.conf";
const TMPFILES: &str = "etc/tmpfiles.d/jobhook.conf";
const CONFIG: &str = "etc/jobhook/handlers.toml";
/// What install writes only where there is no config yet, and uninstall
/// never removes.
const OPERATORS: [&str; 5] = [
    CONFIG,
    "etc/jobhook/scripts/_history.lua",
    "etc/jobhook/scripts/chat_message.lua",
    "etc/jobhook/scripts/enrich.lua",
    "etc/jobhook/scripts/route_failures.lua",
];

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path.as_ref())
        .unwrap_or_else(|err| panic!("{}: {err}", path.as_ref().display()))
}

fn service(args: &[&str], root: &Path) -> Output {
    let root = root.to_str().unwrap();
    let mut all = vec!["service"];
    all.extend_from_slice(args);
    all.extend(["--root", root]);
    jobhook(&all, None)
}

fn succeeded(output: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    text
}

/// Every file under `root`: its bytes, mode and modification time.
fn snapshot(root: &Path) -> BTreeMap<String, (Vec<u8>, u32, SystemTime)> {
    let mut files = BTreeMap::new();
    let mut folders = vec![root.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::metadata(&path).unwrap();
            if meta.is_dir() {
                folders.push(path);
            } else {
                let relative = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                let mode = meta.permissions().mode() & 0o7777;
                files.insert(
                    relative,
                    (
                        std::fs::read(&path).unwrap(),
                        mode,
                        meta.modified().unwrap(),
                    ),
                );
            }
        }
    }
    files
}

fn names<T>(files: &BTreeMap<String, T>) -> Vec<&str> {
    files.keys().map(String::as_str).collect()
}

#[test]
fn install_writes_the_service_files_once_and_uninstall_keeps_config_and_spool() {
    let root = tempfile::tempdir().unwrap();
    succeeded(&service(&["install"], root.path()));
    let written = snapshot(root.path());
    assert_eq!(
        names(&written),
        [&OPERATORS[..], &[UNIT, SYSUSERS, TMPFILES]].concat()
    );
    // The packaged files, but for the binary the unit names: this one.
    let binary = Path::new(BIN).canonicalize().unwrap();
    let unit = read(root.path().join(UNIT));
    assert_eq!(
        unit,
        read(repo("packaging/systemd/jobhook.service")).replace(
            "ExecStart=/usr/bin/jobhook",
            &format!("ExecStart={}", binary.display())
        )
    );
    assert_eq!(
        read(root.path().join(SYSUSERS)),
        read(repo("packaging/systemd/jobhook.sysusers"))
    );
    assert_eq!(
        read(root.path().join(TMPFILES)),
        read(repo("packaging/systemd/jobhook.tmpfile"))
    );
    assert_eq!(
        read(root.path().join(CONFIG)),
        read(repo("packaging/handlers.toml"))
    );
    assert_eq!(written[CONFIG].1, 0o640);
    assert_eq!(written[UNIT].1, 0o644);
    let config = root.path().join(CONFIG);
    succeeded(&jobhook(&["check", "-c", config.to_str().unwrap()], None));
    verify(&root.path().join(UNIT));

    // A second run: not a byte, mode or time changes.
    let again = succeeded(&service(&["install"], root.path()));
    assert!(
        again.contains("kept") && again.contains("unchanged"),
        "{again}"
    );
    assert_eq!(snapshot(root.path()), written);

    // Uninstall removes the three systemd files, never config, scripts or spool.
    std::fs::create_dir_all(root.path().join("var/lib/jobhook/spool")).unwrap();
    std::fs::write(root.path().join("var/lib/jobhook/spool/spool.db"), "events").unwrap();
    succeeded(&service(&["uninstall"], root.path()));
    let left = snapshot(root.path());
    assert_eq!(
        names(&left),
        [&OPERATORS[..], &["var/lib/jobhook/spool/spool.db"]].concat()
    );
    succeeded(&service(&["uninstall"], root.path()));
}

#[test]
fn an_existing_config_is_kept_checked_and_named_with_the_user_given() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("opt/jh/handlers.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let own = "[hooks]\nOnFinish = [\"audit\"]\n\n[handlers.audit]\nlibrary = \"TextFileHandler\"\nfile_path = \"/var/log/jobhook/a.log\"\n";
    std::fs::write(&config, own).unwrap();
    let args = [
        "install",
        "-c",
        "/opt/jh/handlers.toml",
        "--user",
        "svc-events",
    ];
    succeeded(&service(&args, root.path()));
    assert_eq!(read(&config), own);
    assert!(!root.path().join("opt/jh/scripts").exists());
    let unit = read(root.path().join(UNIT));
    assert!(unit.contains(" run -c /opt/jh/handlers.toml\n"), "{unit}");
    assert!(
        unit.contains("\nUser=svc-events\nGroup=svc-events\n"),
        "{unit}"
    );
    assert!(read(root.path().join(SYSUSERS)).contains("\nu svc-events - "));
    let tmpfiles = read(root.path().join(TMPFILES));
    assert!(
        tmpfiles.contains("d /var/lib/jobhook 0750 svc-events svc-events -"),
        "{tmpfiles}"
    );
    assert!(
        tmpfiles.contains("z /opt/jh/handlers.toml 0640 root svc-events -"),
        "{tmpfiles}"
    );
    verify(&root.path().join(UNIT));

    // A config that does not pass `check`: nothing is (re)written.
    let other = tempfile::tempdir().unwrap();
    let broken = other.path().join(CONFIG);
    std::fs::create_dir_all(broken.parent().unwrap()).unwrap();
    std::fs::write(&broken, "[hooks]\nOnFinish = [\"nobody\"]\n").unwrap();
    let output = service(&["install"], other.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("does not pass `jobhook check`"), "{stderr}");
    assert!(stderr.contains("nobody"), "{stderr}");
    assert!(!other.path().join(UNIT).exists());

    let output = service(&["install", "--user", "no body"], other.path());
    assert_eq!(output.status.code(), Some(1));
}

/// `systemd-analyze verify` on a written unit (whose binary exists).
fn verify(unit: &Path) {
    let Some(output) = systemd_analyze(&["verify".as_ref(), unit.as_os_str()]) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "{stderr}"
    );
}

/// `systemd-analyze ARGS`, or `None` (the test skipped) where it is absent.
fn systemd_analyze(args: &[&std::ffi::OsStr]) -> Option<Output> {
    match Command::new("systemd-analyze").args(args).output() {
        Ok(output) => Some(output),
        Err(err) => {
            eprintln!(
                "SKIPPED: systemd-analyze cannot run here ({err}); install systemd to check the unit"
            );
            None
        }
    }
}

#[test]
fn the_unit_is_sandboxed_to_an_exposure_of_two_or_less() {
    let unit = repo("packaging/systemd/jobhook.service");
    let Some(output) = systemd_analyze(&[
        "security".as_ref(),
        "--offline=true".as_ref(),
        unit.as_os_str(),
    ]) else {
        return;
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let level = stdout
        .lines()
        .find_map(|line| {
            line.split("Overall exposure level for jobhook.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{stdout}"));
    assert!(level <= 2.0, "exposure {level}:\n{stdout}");
}

#[test]
fn the_packaged_config_is_the_repository_config_with_the_service_paths() {
    let body = |text: &str| text[text.find("\n[daemon]\n").unwrap()..].to_owned();
    let expected = [
        (
            "socket = \"run/jobhook.sock\"",
            "socket = \"/run/jobhook/jobhook.sock\"",
        ),
        (
            "spool_dir = \"var/spool\"",
            "spool_dir = \"/var/lib/jobhook/spool\"",
        ),
        ("# dir = \"var/log\"", "# dir = \"/var/log/jobhook\""),
        ("file_path = \"var/log/", "file_path = \"/var/log/jobhook/"),
    ]
    .iter()
    .fold(body(&read(repo("handlers.toml"))), |text, (from, to)| {
        assert!(text.contains(from), "{from} is no longer in handlers.toml");
        text.replace(from, to)
    });
    assert_eq!(body(&read(repo("packaging/handlers.toml"))), expected);
}
