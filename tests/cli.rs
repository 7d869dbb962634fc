//! The command line of the real binary: `check`, `send`, help and version.

#![cfg(unix)] // Drives the Unix socket; the Windows pipe shares its protocol code.

mod util;

use util::*;

const VALID: &str = "[hooks]\nOnFinish = [\"audit\"]\n[handlers.audit]\nlibrary = \"TextFileHandler\"\nfile_path = \"audit.log\"\n";

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn check_accepts_the_repository_config() {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/handlers.toml");
    let output = jobhook(&["check", "-c", config], None);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(stdout(&output).contains("ok, 7 handlers"));
}

#[test]
fn check_prints_every_problem_with_its_position_and_exits_1() {
    let (_dir, config) = config_dir(
        "[hooks]\nOnFinish = [\"audit\", \"ghost\"]\n[handlers.audit]\nlibrary = \"TextFileHandler\"\nfle_path = \"a.log\"\n[handlers.spare]\nlibrary = \"TextFileHandler\"\nfile_path = \"b\"\n",
    );
    let output = jobhook(&["check", "-c", config.to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    let file = config.display().to_string();
    assert!(
        text.contains(&format!(
            "{file}:7:1: error: handler `audit`: unknown field `fle_path`"
        )),
        "{text}"
    );
    assert!(text.contains("did you mean `file_path`?"), "{text}");
    assert!(
        text.contains(&format!(
            "{file}:4:22: error: hook OnFinish names handler `ghost`"
        )),
        "{text}"
    );
    assert!(
        !text.contains("handler `audit`, which is not defined"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{file}:8:11: warning: handler `spare` is defined but no hook uses it"
        )),
        "{text}"
    );
}

#[test]
fn check_warns_about_secrets_everyone_can_read() {
    use std::os::unix::fs::PermissionsExt as _;
    let chmod = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let (dir, config) = config_dir(
        "[hooks]\nOnFinish = [\"itsm\"]\n[handlers.itsm]\nlibrary = \"HttpHandler\"\n\
         url = \"http://127.0.0.1:9/x\"\nbasic_user = \"svc\"\nbasic_password = \"hunter2\"\n\
         signing_secret = { file = \"token\" }\n",
    );
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cr3t\n").unwrap();
    let check = || {
        let output = jobhook(&["check", "-c", config.to_str().unwrap()], None);
        assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
        stdout(&output)
    };
    chmod(&config, 0o644);
    chmod(&token, 0o604);
    let text = check();
    let (file, token_file) = (config.display(), token.display());
    assert!(
        text.contains(&format!(
            "{file}:1:1: warning: {file} holds secrets written in it (handler `itsm` \
             basic_password) and everyone can read it (mode 644): chmod 640 {file}"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "warning: handler `itsm` signing_secret: the secret file {token_file} is readable \
             by everyone (mode 604): chmod 600 {token_file}"
        )),
        "{text}"
    );
    assert!(
        !text.contains("hunter2") && !text.contains("s3cr3t"),
        "{text}"
    );
    // Closed: no warning. A config without a written secret may be read by all.
    chmod(&config, 0o640);
    chmod(&token, 0o600);
    assert!(!check().contains("warning"));
    std::fs::write(&config, VALID).unwrap();
    chmod(&config, 0o644);
    assert!(!check().contains("warning"));
    // An admin token written in the file is a secret too.
    let with_token = format!(
        "{VALID}\n[admin]\nlisten = \"127.0.0.1:9464\"\n[[admin.tokens]]\nname = \"ops\"\n\
         token = \"t0ken-value\"\npermissions = [\"reload\"]\n"
    );
    std::fs::write(&config, with_token).unwrap();
    let text = check();
    assert!(
        text.contains("holds secrets written in it ([[admin.tokens]] `ops` token)"),
        "{text}"
    );
    assert!(!text.contains("t0ken-value"), "{text}");
}

#[test]
fn check_finds_the_config_through_the_environment() {
    let (_dir, config) = config_dir(VALID);
    let output = std::process::Command::new(BIN)
        .arg("check")
        .env("JOBHOOK_CONFIG", &config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).contains(&config.display().to_string()));
}

#[test]
fn check_reports_a_missing_file() {
    let output = jobhook(&["check", "-c", "/nonexistent/handlers.toml"], None);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("/nonexistent/handlers.toml:0:0: error: cannot read config"));
}

#[test]
fn send_prints_one_reply_per_event_and_sets_the_exit_code() {
    let daemon = Daemon::start(VALID);
    let config = daemon.config.to_str().unwrap();
    let inventory = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/events/inventory.json"
    );
    let output = jobhook(&["send", "-c", config, inventory], None);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout(&output).starts_with("{\"ok\":true,\"id\":"));

    let output = jobhook(
        &["send", "-c", config, "--phase", "onstart", "-"],
        Some("[{\"Id\":\"a\"},{\"Id\":\"b\"}]"),
    );
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stdout(&output).lines().count(), 2);

    let output = jobhook(
        &["send", "-c", config],
        Some("{\"Id\":\"ok\"}\n{\"JobId\":\"bad\"}\n"),
    );
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    let replies: Vec<&str> = text.lines().collect();
    assert_eq!(replies.len(), 2);
    assert!(replies[1].contains("invalid_event"));

    let audit = wait_for_lines(&daemon.path("audit.log"), 2);
    assert!(audit.iter().any(|line| line.contains("\"Id\":\"ok\"")));
}

#[test]
fn send_exits_2_when_no_daemon_listens() {
    let (_dir, config) = config_dir(VALID);
    let output = jobhook(&["send", "-c", config.to_str().unwrap()], Some("{}"));
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot connect"));
}

#[test]
fn send_takes_an_explicit_socket() {
    let daemon = Daemon::start(VALID);
    let socket = daemon.socket.to_str().unwrap();
    let output = jobhook(
        &["send", "-c", "/nonexistent.toml", "--socket", socket],
        Some("{\"Id\":\"direct\"}"),
    );
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).contains("\"id\":\"direct\""));
}

#[test]
fn help_and_version_read_well() {
    let output = jobhook(&["--version"], None);
    assert_eq!(
        stdout(&output).trim(),
        format!("jobhook {}", env!("CARGO_PKG_VERSION"))
    );
    let help = stdout(&jobhook(&["--help"], None));
    for command in ["run", "check", "send"] {
        assert!(help.contains(command), "{help}");
    }
    let bad_phase = jobhook(&["send", "--phase", "OnLunch"], None);
    assert_eq!(bad_phase.status.code(), Some(2));
}
