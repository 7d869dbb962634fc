//! Test peers written in Python (a proxy, an NTLM server), from PyPI.
//!
//! The first test that needs them makes a virtual environment under Cargo's
//! test scratch directory and installs pinned versions; later tests and runs
//! reuse it. Needs `python3` with `venv` and access to PyPI.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

const PACKAGES: &[&str] = &["proxy.py==2.4.10", "pyspnego==0.12.4"];

/// The venv's directory. Run its tools as `bin/python -m …`: the entry
/// scripts' shebangs name the staging directory it was built in.
pub fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let scratch = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let dir = scratch.join(format!(
            "python-tools-{}",
            PACKAGES.join("-").replace(['=', '.'], "")
        ));
        if dir.join("ready").exists() {
            return dir;
        }
        // Build aside, then rename into place: concurrent test processes never
        // see half an environment.
        let staging = tempfile::tempdir_in(scratch).unwrap();
        let run = |program: &Path, args: &[&str]| {
            let output = Command::new(program)
                .args(args)
                .output()
                .unwrap_or_else(|err| {
                    panic!(
                        "cannot run {}: {err}; these tests need python3 with venv",
                        program.display()
                    )
                });
            assert!(
                output.status.success(),
                "{} {args:?} failed:\n{}",
                program.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        };
        run(
            Path::new("python3"),
            &["-m", "venv", staging.path().to_str().unwrap()],
        );
        let python = staging.path().join("bin/python");
        let install = [
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ];
        run(&python, &[&install[..], PACKAGES].concat());
        std::fs::write(staging.path().join("ready"), "").unwrap();
        let staged = staging.keep();
        if std::fs::rename(&staged, &dir).is_err() {
            // Another process finished first; use its environment.
            let _ = std::fs::remove_dir_all(&staged);
        }
        dir
    })
}

/// A child process killed, with every process it started, when dropped.
pub struct Peer {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Peer {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // The peer leads its own process group (proxy.py forks workers that
        // would outlive their parent otherwise).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the venv's `python args…`, with `{port}` in the arguments replaced
/// by a free port, and waits until it accepts connections.
pub fn start(name: &str, args: &[&str], env: &[(&str, &str)], log_dir: &Path) -> Peer {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = log_dir.join(format!("{name}-{port}.log"));
    let args: Vec<String> = args
        .iter()
        .map(|arg| arg.replace("{port}", &port.to_string()))
        .collect();
    let child = Command::new(venv().join("bin/python"))
        .process_group(0)
        .args(&args)
        .envs(env.iter().copied())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::from(
            std::fs::File::options().append(true).open(&log).unwrap(),
        ))
        .spawn()
        .unwrap();
    let peer = Peer { child, port, log };
    super::eventually(&format!("{name} to listen on {port}"), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    peer
}

/// proxy.py, a forward proxy (plain requests and CONNECT) that wants the
/// Basic credentials `svc` / [`super::PROXY_PASSWORD`].
pub fn proxy(dir: &Path) -> Peer {
    proxy_with(dir, &[])
}

/// proxy.py with more arguments (`--cert-file`, `--key-file`: clients talk
/// TLS to it).
pub fn proxy_with(dir: &Path, extra: &[&str]) -> Peer {
    let credentials = format!("svc:{}", super::PROXY_PASSWORD);
    let args = [
        "-m",
        "proxy",
        "--hostname",
        "127.0.0.1",
        "--port",
        "{port}",
        "--basic-auth",
        &credentials,
        "--num-workers",
        "1",
    ];
    start("proxy", &[&args[..], extra].concat(), &[], dir)
}

/// The NTLM server of `tests/data/ntlm_server.py` (pyspnego's acceptor),
/// knowing `CORP\svc-jobhook` (also as `svc-jobhook@CORP`) with the
/// password `Corr3ct-Horse`. Its log has a line `ntlm refused` for every
/// refused logon and one per request it answered.
pub struct NtlmServer {
    pub peer: Peer,
    /// One JSON line `{"user": …, "body": …}` per accepted request.
    pub record: PathBuf,
}

pub fn ntlm_server(dir: &Path) -> NtlmServer {
    ntlm_server_with(dir, &[])
}

/// The NTLM server, with `env` set (`NTLM_CLOSE_AFTER_ACCEPT=1`: a new
/// connection, and so a new handshake, for every request;
/// `NTLM_CLOSE_AFTER_CHALLENGES=N`: the first N CHALLENGEs' connections
/// closed before their AUTHENTICATE;
/// `NTLM_TLS_CERT`/`NTLM_TLS_KEY`: PEM files, to serve HTTPS).
pub fn ntlm_server_with(dir: &Path, env: &[(&str, &str)]) -> NtlmServer {
    let users = dir.join("ntlm-users");
    // A UPN travels as the user name with an empty domain (MS-NLMP 3.1.5.1.2),
    // so pyspnego's store lists it under no domain.
    std::fs::write(
        &users,
        "CORP:svc-jobhook:Corr3ct-Horse\n:svc-jobhook@CORP:Corr3ct-Horse\n",
    )
    .unwrap();
    let record = dir.join("accepted.jsonl");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ntlm_server.py");
    let peer = start(
        "ntlm-server",
        &[script, "{port}", record.to_str().unwrap()],
        &[("NTLM_USER_FILE", users.to_str().unwrap())]
            .into_iter()
            .chain(env.iter().copied())
            .collect::<Vec<_>>(),
        dir,
    );
    NtlmServer { peer, record }
}
