//! What the load and soak tools share: the event they send, the HTTP sink
//! the daemon delivers to, the daemon they start and watch, and reading
//! the lines its text-file handler appends.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// A realistic orchestrator event (about 450 bytes) with this `Id`, for
/// job number `job`, as one line.
pub fn event(id: &str, job: usize) -> String {
    format!(
        concat!(
            r#"{{"Id":"{id}","AgentId":"6a0c7c2f-4f8a-4b9e-9d3e-1f2b3c4d5e6f","#,
            r#""Username":"CORP\\svc-orchestrator","ClientMachine":"ORCH01.corp.example","#,
            r#""JobResult":"Success","JobId":"3f1e5a2b-8c7d-4e6f-9a0b-{job:012x}","#,
            r#""JobType":"WinCertInventory","JobTypeId":"49b3a17d-cada-4ec8-84c6-7719bf5beef3","#,
            r#""OperationType":"Unknown","CertificateId":null,"#,
            r#""RequestTimestamp":"5/3/2023 11:18:48 PM","CurrentRetryCount":0}}"#,
            "\n"
        ),
        id = id,
        job = job,
    )
}

/// The `Id` of an event's JSON as the daemon writes it (a file line, an
/// HTTP body).
pub fn id_of(json: &str) -> Option<&str> {
    let (_, rest) = json.split_once("\"Id\":\"")?;
    Some(rest.split_once('"')?.0)
}

/// A keep-alive HTTP/1.1 sink: answers 200 after `latency` and hands each
/// event's `Id` to `arrived`; while `failing` is set it answers 503 and
/// takes nothing. It notes how many requests it had in hand at most.
pub struct Sink {
    pub url: String,
    pub peak: Arc<AtomicUsize>,
}

/// What every connection of the sink shares.
#[derive(Clone)]
struct SinkState {
    arrived: Arc<dyn Fn(&str) + Send + Sync>,
    latency: Duration,
    failing: Arc<AtomicBool>,
    in_flight: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Sink {
    pub async fn start(
        latency: Duration,
        failing: Arc<AtomicBool>,
        arrived: impl Fn(&str) + Send + Sync + 'static,
    ) -> Sink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/events", listener.local_addr().unwrap());
        let state = SinkState {
            arrived: Arc::new(arrived),
            latency,
            failing,
            in_flight: Arc::default(),
            peak: Arc::default(),
        };
        let peak = state.peak.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(sink_connection(stream, state.clone()));
            }
        });
        Sink { url, peak }
    }
}

async fn sink_connection(stream: tokio::net::TcpStream, state: SinkState) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut line = String::new();
    loop {
        let mut length = 0;
        loop {
            line.clear();
            if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if read.read_exact(&mut body).await.is_err() {
            return;
        }
        let answer: &[u8] = if state.failing.load(Ordering::Relaxed) {
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
        } else {
            if let Some(id) = id_of(&String::from_utf8_lossy(&body)) {
                (state.arrived)(id);
            }
            let in_flight = state.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
            state.peak.fetch_max(in_flight, Ordering::Relaxed);
            if !state.latency.is_zero() {
                tokio::time::sleep(state.latency).await;
            }
            state.in_flight.fetch_sub(1, Ordering::Relaxed);
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
        };
        if write.write_all(answer).await.is_err() {
            return;
        }
    }
}

/// A daemon started on a config of the caller's, stopped (SIGTERM) when
/// dropped.
pub struct Daemon {
    pub socket: PathBuf,
    child: Child,
}

impl Daemon {
    /// Starts `binary` on `config` and waits until it listens on `socket`;
    /// its log (at `JOBHOOK_LOG=level`) goes to `log`.
    pub fn start(binary: &Path, config: &Path, socket: PathBuf, level: &str, log: Stdio) -> Daemon {
        let child = Command::new(binary)
            .args(["run", "-c"])
            .arg(config)
            .env("JOBHOOK_LOG", level)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "daemon did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        Daemon { socket, child }
    }

    /// CPU time (user and system, all threads) the daemon used so far.
    pub fn cpu_time(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime
        // are the 14th and 15th fields, in USER_HZ (100 on Linux).
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let ticks: u64 = after_name
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|field| field.parse::<u64>().ok())
            .sum();
        Duration::from_millis(ticks * 10)
    }

    /// A memory figure of `/proc/PID/status` in KiB: `VmRSS` (resident
    /// now) or `VmHWM` (the peak so far).
    pub fn memory_kib(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|line| {
            line.strip_prefix(field)
                .is_some_and(|rest| rest.starts_with(':'))
        })?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// The lines a text-file handler appends to a file, read as they come:
/// each call reads only what was added since the last, so polling a large
/// file does not take CPU from the daemon being measured.
pub struct Tail {
    path: PathBuf,
    offset: u64,
    /// The start of a line not yet ended.
    partial: Vec<u8>,
}

impl Tail {
    pub fn new(path: PathBuf) -> Tail {
        Tail {
            path,
            offset: 0,
            partial: Vec::new(),
        }
    }

    /// Hands each line completed since the last call to `line`.
    pub fn read(&mut self, mut line: impl FnMut(&[u8])) {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return;
        };
        let mut added = Vec::new();
        if file.seek(SeekFrom::Start(self.offset)).is_err() || file.read_to_end(&mut added).is_err()
        {
            return;
        }
        self.offset += added.len() as u64;
        self.partial.extend_from_slice(&added);
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        self.partial[..end]
            .split(|&b| b == b'\n')
            .for_each(&mut line);
        self.partial.drain(..=end);
    }
}
