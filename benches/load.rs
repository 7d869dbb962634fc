//! Load tool: N clients drive events through the socket into a handler chain
//! and measure throughput and ack latency.
//!
//! ```sh
//! cargo bench --bench load                                   # 4 clients, as fast as possible
//! cargo bench --bench load -- --rate 10000 --events 100000   # fixed rate: ack latency
//! cargo bench --bench load -- --socket run/jobhook.sock      # against a running daemon
//! ```
//!
//! Without `--socket` it starts the daemon itself on a temporary config whose
//! only handler appends every event as JSON to a file, checks afterwards that
//! every accepted event is in that file, and stops the daemon. Each run is
//! repeated (`--runs`) and the median is reported.

#[cfg(not(unix))]
fn main() {
    eprintln!("the load tool drives the Unix socket; run it on Linux");
}

#[cfg(unix)]
fn main() {
    driver::main();
}

#[cfg(unix)]
mod driver {
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use clap::Parser;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::UnixStream;
    use tokio::sync::{Semaphore, mpsc};

    #[derive(Debug, Parser)]
    struct Args {
        /// Concurrent client connections.
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Events per run, over all clients.
        #[arg(long, default_value_t = 200_000)]
        events: usize,
        /// Events per second over all clients; 0 sends as fast as acks allow.
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Events each client may have sent but not yet seen acked.
        #[arg(long, default_value_t = 512)]
        window: usize,
        /// Runs to take the median of.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Send to this socket instead of starting a daemon.
        #[arg(long)]
        socket: Option<PathBuf>,
        /// `workers` for the daemon this tool starts.
        #[arg(long, default_value_t = 0)]
        workers: usize,
        /// Ignored; cargo bench passes it.
        #[arg(long, hide = true)]
        bench: bool,
    }

    struct RunResult {
        accepted: usize,
        rejected: usize,
        elapsed: Duration,
        /// Ack latencies in microseconds, sorted.
        latencies: Vec<u32>,
        /// Until every accepted event was in the handler's file (spawned daemon only).
        handled_after: Option<Duration>,
    }

    pub fn main() {
        let args = Args::parse();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        println!(
            "clients={} events={} rate={} window={} runs={}",
            args.clients,
            args.events,
            if args.rate == 0 {
                "max".to_owned()
            } else {
                args.rate.to_string()
            },
            args.window,
            args.runs
        );
        let mut results = Vec::new();
        for run in 1..=args.runs {
            let result = match &args.socket {
                Some(socket) => runtime.block_on(drive(&args, socket, run)),
                None => {
                    let daemon = SpawnedDaemon::start(args.workers);
                    let mut result = runtime.block_on(drive(&args, &daemon.socket, run));
                    result.handled_after =
                        Some(result.elapsed + daemon.wait_for_lines(result.accepted));
                    result
                }
            };
            report(&format!("run {run}"), &result);
            results.push(result);
        }
        results.sort_by(|a, b| throughput(a).total_cmp(&throughput(b)));
        let median = &results[results.len() / 2];
        report("median", median);
    }

    fn throughput(result: &RunResult) -> f64 {
        result.accepted as f64 / result.elapsed.as_secs_f64()
    }

    fn report(label: &str, result: &RunResult) {
        let percentile = |p: f64| {
            let i = ((result.latencies.len() as f64 - 1.0) * p).round() as usize;
            result
                .latencies
                .get(i)
                .map_or(0.0, |&us| us as f64 / 1000.0)
        };
        let handled = result.handled_after.map_or(String::new(), |after| {
            format!(
                "; all in file after {:.2} s ({:.0} events/s end to end)",
                after.as_secs_f64(),
                result.accepted as f64 / after.as_secs_f64()
            )
        });
        println!(
            "{label}: {} accepted, {} rejected in {:.2} s: {:.0} events/s; ack p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms{handled}",
            result.accepted,
            result.rejected,
            result.elapsed.as_secs_f64(),
            throughput(result),
            percentile(0.50),
            percentile(0.99),
            percentile(1.0),
        );
    }

    async fn drive(args: &Args, socket: &Path, run: usize) -> RunResult {
        let started = Instant::now();
        let per_client = args.events / args.clients;
        let client_rate = args.rate as f64 / args.clients as f64;
        let clients: Vec<_> = (0..args.clients)
            .map(|client| {
                let socket = socket.to_owned();
                let window = args.window;
                tokio::spawn(async move {
                    client_run(&socket, run, client, per_client, window, client_rate).await
                })
            })
            .collect();
        let mut result = RunResult {
            accepted: 0,
            rejected: 0,
            elapsed: Duration::ZERO,
            latencies: Vec::with_capacity(args.events),
            handled_after: None,
        };
        for client in clients {
            let (accepted, rejected, latencies) = client.await.unwrap();
            result.accepted += accepted;
            result.rejected += rejected;
            result.latencies.extend(latencies);
        }
        result.elapsed = started.elapsed();
        result.latencies.sort_unstable();
        result
    }

    /// One connection: a writer paced by the window (and the rate), a reader
    /// matching each ack to its send time (acks come in order).
    async fn client_run(
        socket: &Path,
        run: usize,
        client: usize,
        events: usize,
        window: usize,
        rate: f64,
    ) -> (usize, usize, Vec<u32>) {
        let stream = UnixStream::connect(socket)
            .await
            .expect("connect to the daemon");
        let (read, mut write) = stream.into_split();
        let permits = Arc::new(Semaphore::new(window));
        let (sent_at, mut sent) = mpsc::unbounded_channel::<Instant>();
        let writer = {
            let permits = permits.clone();
            tokio::spawn(async move {
                let start = Instant::now();
                let mut batch = Vec::with_capacity(64 * 1024);
                let mut in_batch = 0;
                for i in 0..events {
                    if rate > 0.0 {
                        let due = start + Duration::from_secs_f64(i as f64 / rate);
                        if due > Instant::now() {
                            flush(&mut write, &mut batch, &mut in_batch, &sent_at).await;
                            tokio::time::sleep_until(due.into()).await;
                        }
                    }
                    let permit = match permits.try_acquire() {
                        Ok(permit) => permit,
                        Err(_) => {
                            flush(&mut write, &mut batch, &mut in_batch, &sent_at).await;
                            permits.acquire().await.unwrap()
                        }
                    };
                    permit.forget();
                    batch.extend_from_slice(event(run, client, i).as_bytes());
                    in_batch += 1;
                    if batch.len() >= 60 * 1024 {
                        flush(&mut write, &mut batch, &mut in_batch, &sent_at).await;
                    }
                }
                flush(&mut write, &mut batch, &mut in_batch, &sent_at).await;
                write
            })
        };
        let mut lines = BufReader::new(read).lines();
        let (mut accepted, mut rejected) = (0, 0);
        let mut latencies = Vec::with_capacity(events);
        for _ in 0..events {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("daemon closed the connection");
            let at = sent.recv().await.unwrap();
            latencies.push(at.elapsed().as_micros().min(u32::MAX as u128) as u32);
            if line.starts_with("{\"ok\":true") {
                accepted += 1;
            } else {
                rejected += 1;
            }
            permits.add_permits(1);
        }
        drop(writer.await.unwrap());
        (accepted, rejected, latencies)
    }

    async fn flush(
        write: &mut tokio::net::unix::OwnedWriteHalf,
        batch: &mut Vec<u8>,
        in_batch: &mut usize,
        sent_at: &mpsc::UnboundedSender<Instant>,
    ) {
        if batch.is_empty() {
            return;
        }
        let now = Instant::now();
        for _ in 0..*in_batch {
            sent_at.send(now).unwrap();
        }
        write.write_all(batch).await.unwrap();
        batch.clear();
        *in_batch = 0;
    }

    /// A realistic orchestrator event (about 450 bytes); 64 jobs interleaved.
    fn event(run: usize, client: usize, i: usize) -> String {
        format!(
            concat!(
                r#"{{"Id":"r{run}-c{client}-{i}","AgentId":"6a0c7c2f-4f8a-4b9e-9d3e-1f2b3c4d5e6f","#,
                r#""Username":"CORP\\svc-orchestrator","ClientMachine":"ORCH01.corp.example","#,
                r#""JobResult":"Success","JobId":"3f1e5a2b-8c7d-4e6f-9a0b-{job:012x}","#,
                r#""JobType":"WinCertInventory","JobTypeId":"49b3a17d-cada-4ec8-84c6-7719bf5beef3","#,
                r#""OperationType":"Unknown","CertificateId":null,"#,
                r#""RequestTimestamp":"5/3/2023 11:18:48 PM","CurrentRetryCount":0}}"#,
                "\n"
            ),
            run = run,
            client = client,
            i = i,
            job = (client * 7919 + i) % 64,
        )
    }

    /// A daemon started on a temporary config: socket → one text-file handler.
    struct SpawnedDaemon {
        _dir: tempfile::TempDir,
        socket: PathBuf,
        out: PathBuf,
        child: Child,
    }

    impl SpawnedDaemon {
        fn start(workers: usize) -> SpawnedDaemon {
            let dir = tempfile::tempdir().unwrap();
            let config = dir.path().join("handlers.toml");
            std::fs::write(
                &config,
                format!(
                    "[daemon]\nsocket = \"jobhook.sock\"\nworkers = {workers}\nqueue_capacity = 100000\n\
                     [hooks]\nOnFinish = [\"audit\"]\n\
                     [handlers.audit]\nlibrary = \"TextFileHandler\"\nfile_path = \"events.log\"\n"
                ),
            )
            .unwrap();
            let child = Command::new(env!("CARGO_BIN_EXE_jobhook"))
                .args(["run", "-c"])
                .arg(&config)
                .env("JOBHOOK_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            let socket = dir.path().join("jobhook.sock");
            let deadline = Instant::now() + Duration::from_secs(20);
            while std::os::unix::net::UnixStream::connect(&socket).is_err() {
                assert!(Instant::now() < deadline, "daemon did not start");
                std::thread::sleep(Duration::from_millis(10));
            }
            SpawnedDaemon {
                out: dir.path().join("events.log"),
                socket,
                _dir: dir,
                child,
            }
        }

        /// Waits until the file holds `count` lines; returns how long that took.
        fn wait_for_lines(&self, count: usize) -> Duration {
            let started = Instant::now();
            loop {
                let lines = std::fs::read(&self.out)
                    .map(|bytes| bytes.iter().filter(|&&b| b == b'\n').count())
                    .unwrap_or(0);
                if lines >= count {
                    assert_eq!(lines, count, "more lines than accepted events");
                    return started.elapsed();
                }
                assert!(
                    started.elapsed() < Duration::from_secs(120),
                    "only {lines} of {count} events handled"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    impl Drop for SpawnedDaemon {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let _ = self.child.wait();
        }
    }
}
