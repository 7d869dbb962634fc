//! Harness for tests that drive the real `jobhook` binary.

#![allow(dead_code)] // Each test file uses a different part of the harness.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub mod admin;
pub mod command;
pub mod disk;
pub mod http;
pub mod pki;
pub mod python;
pub mod socks;

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_jobhook");

/// The password the test proxies want (user `svc`): `%41` and `%25` in it
/// must reach the proxy as written, not read as escapes (`A`, `%`).
pub const PROXY_PASSWORD: &str = "pr0xy%41-%25pass";

/// Generous: these machines are shared and slow; waits end as soon as the
/// condition holds.
const PATIENCE: Duration = Duration::from_secs(20);

/// A daemon started on a config in its own temp directory.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub socket: PathBuf,
    child: Option<Child>,
    /// A command the daemon is run under (`prlimit …`), if any.
    wrapper: Vec<String>,
    /// Environment variables set for the daemon (beside `JOBHOOK_LOG`).
    env: Vec<(String, String)>,
}

/// Writes `handlers.toml` into a fresh temp dir, with `[daemon] socket` set
/// to `run/jobhook.sock` unless the text sets a `[daemon]` section itself.
pub fn config_dir(config: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let text = if config.contains("[daemon]") {
        config.replace("[daemon]", "[daemon]\nsocket = \"run/jobhook.sock\"")
    } else {
        format!("[daemon]\nsocket = \"run/jobhook.sock\"\n{config}")
    };
    let path = dir.path().join("handlers.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// Writes each (relative path, contents) under `dir`, creating folders.
pub fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (relative, contents) in files {
        let path = dir.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
}

impl Daemon {
    pub fn start(config: &str) -> Daemon {
        Daemon::start_with(config, &[])
    }

    /// Starts on `config` with `files` (relative path, contents) written
    /// beside it first, e.g. scripts.
    pub fn start_with(config: &str, files: &[(&str, &str)]) -> Daemon {
        Daemon::start_under(&[], config, files)
    }

    /// Starts like [`Daemon::start_with`], with the binary run by the
    /// command `wrapper` (e.g. `["prlimit", "--fsize=1000"]`).
    pub fn start_under(wrapper: &[&str], config: &str, files: &[(&str, &str)]) -> Daemon {
        Daemon::start_in(wrapper, &[], config, files)
    }

    /// Starts like [`Daemon::start_under`], with the variables `env` set.
    pub fn start_in(
        wrapper: &[&str],
        env: &[(&str, &str)],
        config: &str,
        files: &[(&str, &str)],
    ) -> Daemon {
        let (dir, config) = config_dir(config);
        write_files(dir.path(), files);
        let socket = dir.path().join("run/jobhook.sock");
        let mut daemon = Daemon {
            dir,
            config,
            socket,
            child: None,
            wrapper: wrapper.iter().map(|arg| arg.to_string()).collect(),
            env: env
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
        };
        daemon.spawn();
        daemon
    }

    /// Starts the daemon again on the same folder and spool, after it was
    /// stopped or killed; its log goes on in the same file.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the daemon is still running");
        self.spawn();
    }

    /// SIGKILL, as a crash would: nothing is flushed, nothing cleaned up.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("daemon already stopped");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn spawn(&mut self) {
        let stderr = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .unwrap();
        let child = under(&self.wrapper)
            .args(["run", "-c"])
            .arg(&self.config)
            .env("JOBHOOK_LOG", "info")
            .envs(self.env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.wait_until_listening();
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        while UnixStream::connect(&self.socket).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("daemon exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not listen:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// The daemon's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// Waits for the first log line containing `needle` and returns it.
    pub fn log_line(&self, needle: &str) -> String {
        let mut found = None;
        eventually(&format!("a log line with {needle:?}"), || {
            found = self
                .log()
                .lines()
                .find(|line| line.contains(needle))
                .map(str::to_owned);
            found.is_some()
        });
        found.unwrap()
    }

    pub fn connect(&self) -> Client {
        Client::connect(&self.socket)
    }

    /// Sends raw lines on one connection and returns one parsed reply per
    /// non-blank line.
    pub fn send(&self, lines: &[&str]) -> Vec<Value> {
        let mut client = self.connect();
        let expected = lines.iter().filter(|line| !line.trim().is_empty()).count();
        client.write_lines(lines);
        client.read_replies(expected)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGTERM, then the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait()
    }

    /// SIGTERM; asserts a clean exit within `limit`.
    pub fn stop_within(&mut self, limit: Duration) {
        let asked = Instant::now();
        let status = self.stop();
        let took = asked.elapsed();
        assert!(status.success(), "{}", self.log());
        assert!(took < limit, "the stop took {took:?}:\n{}", self.log());
    }

    pub fn wait(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("daemon already stopped");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("daemon did not exit:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One connection to the socket.
pub struct Client {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Client {
    pub fn connect(socket: &Path) -> Client {
        let stream = UnixStream::connect(socket).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Client { stream, reader }
    }

    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    pub fn write_lines(&mut self, lines: &[&str]) {
        let mut payload = Vec::new();
        for line in lines {
            payload.extend_from_slice(line.as_bytes());
            payload.push(b'\n');
        }
        self.write_raw(&payload);
    }

    pub fn read_replies(&mut self, count: usize) -> Vec<Value> {
        (0..count).map(|_| self.read_reply()).collect()
    }

    pub fn read_reply(&mut self) -> Value {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        assert!(
            line.ends_with('\n'),
            "connection closed; partial reply {line:?}"
        );
        serde_json::from_str(&line).unwrap()
    }

    /// Closes the writing side; the daemon answers what it has, then closes.
    pub fn finish(&mut self) -> Vec<Value> {
        self.stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut replies = Vec::new();
        let mut line = String::new();
        while self.reader.read_line(&mut line).unwrap() > 0 {
            replies.push(serde_json::from_str(&line).unwrap());
            line.clear();
        }
        replies
    }
}

/// Waits until `check` holds, panicking with `what` after a while.
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The lines of a file (none if it does not exist yet).
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|text| text.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Makes a FIFO at `path` (and its folder).
pub fn mkfifo(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

/// The ids in a JSON-lines file, with how often each appears.
pub fn ids_in(path: &Path) -> std::collections::HashMap<String, usize> {
    let mut seen = std::collections::HashMap::new();
    for line in lines(path) {
        let event: Value = serde_json::from_str(&line).unwrap();
        *seen
            .entry(event["Id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    seen
}

/// Waits until a file has at least `count` lines, and returns them.
pub fn wait_for_lines(path: &Path, count: usize) -> Vec<String> {
    eventually(&format!("{count} lines in {}", path.display()), || {
        lines(path).len() >= count
    });
    lines(path)
}

/// A chain with one text-file handler writing `out/audit.log`.
pub const AUDIT: &str = r#"
[hooks]
OnFinish = ["audit"]

[handlers.audit]
library = "TextFileHandler"
file_path = "out/audit.log"
"#;

/// Runs `jobhook check` on `config`, which must be refused (exit 1) with a
/// report containing `expected`; returns the report.
pub fn check_refuses(config: &Path, expected: &str) -> String {
    let output = jobhook(&["check", "-c", config.to_str().unwrap()], None);
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(
        report.contains(expected),
        "expected {expected:?} in:\n{report}"
    );
    report
}

/// Runs the binary with arguments and optional standard input.
pub fn jobhook(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("JOBHOOK_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

/// The binary, run by the command `wrapper` (e.g. `["prlimit", "--fsize=1000"]`)
/// if not empty.
fn under(wrapper: &[impl AsRef<std::ffi::OsStr>]) -> Command {
    match wrapper.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(BIN);
            command
        }
        None => Command::new(BIN),
    }
}

/// `jobhook run` on `config` (run by `wrapper`, see [`Daemon::start_under`]),
/// given a few seconds to exit by itself; a daemon still running then is
/// killed and reported as `None`.
pub fn run_expecting_exit(wrapper: &[&str], config: &Path) -> Option<Output> {
    let mut child = under(wrapper)
        .args(["run", "-c"])
        .arg(config)
        .env("JOBHOOK_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(child.wait_with_output().unwrap())
}

pub fn reply_ok(reply: &Value) -> bool {
    reply["ok"] == Value::Bool(true)
}

pub fn code(reply: &Value) -> &str {
    reply["code"].as_str().unwrap_or("")
}

pub fn sample(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/events")
        .join(name);
    let value: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    value.to_string()
}
