//! Load tool: N clients drive events through the socket into a handler and
//! measure throughput, ack latency and end-to-end latency.
//!
//! ```sh
//! cargo bench --bench load                                   # socket → text file, 4 clients
//! cargo bench --bench load -- --handler http --latency 50ms --jobs 10000  # socket → slow HTTP sink
//! cargo bench --bench load -- --handler lua                  # socket → Lua → text file
//! cargo bench --bench load -- --fsync never                  # spool commits not synced
//! cargo bench --bench load -- --rate 10000 --events 100000   # fixed rate: ack latency
//! cargo bench --bench load -- --socket run/jobhook.sock      # against a running daemon
//! cargo bench --bench load -- --daemon-binary /tmp/jobhook-before  # another build
//! cargo bench --bench load -- --admin                        # with metrics recorded
//! ```
//!
//! Without `--socket` it starts the daemon itself on a temporary config with
//! one handler (`--handler file`: JSON lines into a file; `http`: POSTs to a
//! keep-alive HTTP sink inside this tool; `lua`: a script adds a field, then
//! JSON lines into a file), checks afterwards that every
//! accepted event arrived exactly once, and stops the daemon. Each run is
//! repeated (`--runs`) and the median run is reported.

#[cfg(not(unix))]
fn main() {
    eprintln!("the load tool drives the Unix socket; run it on Linux");
}

#[cfg(unix)]
fn main() {
    driver::main();
}

#[cfg(unix)]
mod common;

#[cfg(unix)]
mod driver {
    use std::collections::HashMap;
    use std::hash::BuildHasher;
    use std::path::{Path, PathBuf};
    use std::process::Stdio;
    use std::sync::atomic::Ordering;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use clap::{Parser, ValueEnum};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::UnixStream;
    use tokio::sync::{Semaphore, mpsc};

    use crate::common::{Daemon, Sink, Tail, event};

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
        /// Distinct `JobId`s the events cycle through (events of one job are
        /// handled one after another, so this bounds HTTP concurrency too).
        #[arg(long, default_value_t = 64)]
        jobs: usize,
        /// Runs to take the median of.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// The handler of the daemon this tool starts.
        #[arg(long, value_enum, default_value_t = Target::File)]
        handler: Target,
        /// `workers` for the daemon this tool starts.
        #[arg(long, default_value_t = 0)]
        workers: usize,
        /// `queue_capacity` for the daemon this tool starts (its default).
        #[arg(long, default_value_t = 2_000)]
        queue_capacity: usize,
        /// `fsync` for the daemon this tool starts: always, batch or never.
        #[arg(long, default_value = "batch")]
        fsync: String,
        /// How long the HTTP sink takes to answer each request (`--handler
        /// http`), e.g. `50ms`, like a real API.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
        latency: Duration,
        /// `concurrency` of the HTTP handler: a number or `adaptive`.
        #[arg(long, default_value = "adaptive")]
        concurrency: String,
        /// Give events GUIDs as their `Id`s (as Keyfactor's are), which
        /// land at random places among the ids kept for dedupe, instead of
        /// ids that sort by client and number.
        #[arg(long)]
        guid_ids: bool,
        /// Give the daemon an admin API (on a free loopback port), so that
        /// metrics are recorded: what counting costs the event path.
        #[arg(long)]
        admin: bool,
        /// Send to this socket instead of starting a daemon.
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Start this jobhook binary instead of the one cargo just built (to
        /// compare two builds back to back on a noisy machine).
        #[arg(long)]
        daemon_binary: Option<PathBuf>,
        /// Ignored; cargo bench passes it.
        #[arg(long, hide = true)]
        bench: bool,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
    enum Target {
        File,
        Http,
        Lua,
    }

    #[derive(Default)]
    struct RunResult {
        accepted: usize,
        rejected: usize,
        elapsed: Duration,
        /// Send → ack, microseconds, sorted.
        acks: Vec<u32>,
        /// Until every accepted event had arrived (daemon started here only).
        handled_after: Option<Duration>,
        /// Send → arrival at the HTTP sink, microseconds, sorted.
        end_to_end: Vec<u32>,
        /// Most requests the HTTP sink had in hand at once.
        sink_peak: Option<usize>,
        /// The daemon's peak resident memory, KiB (daemon started here only).
        peak_rss_kib: Option<u64>,
        /// CPU time the daemon used from the first event until every
        /// accepted one was handled (daemon started here only).
        daemon_cpu: Option<Duration>,
    }

    /// What one client sent: when each event went out, and the replies.
    struct ClientRun {
        accepted: usize,
        rejected: usize,
        acks: Vec<u32>,
        sent: Vec<Instant>,
    }

    pub fn main() {
        let args = Args::parse();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        println!(
            "handler={:?} fsync={} clients={} events={} rate={} window={} runs={}",
            args.handler,
            args.fsync,
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
                Some(socket) => runtime.block_on(drive(&args, socket, run)).0,
                None => runtime.block_on(spawned_run(&args, run)),
            };
            report(&format!("run {run}"), &result);
            results.push(result);
        }
        results.sort_by(|a, b| throughput(a).total_cmp(&throughput(b)));
        report("median", &results[results.len() / 2]);
    }

    async fn spawned_run(args: &Args, run: usize) -> RunResult {
        let arrivals: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let sink = match args.handler {
            Target::Http => {
                let arrivals = arrivals.clone();
                Some(
                    Sink::start(args.latency, Arc::default(), move |id| {
                        let previous = arrivals
                            .lock()
                            .unwrap()
                            .insert(id.to_owned(), Instant::now());
                        assert!(previous.is_none(), "event {id} arrived twice");
                    })
                    .await,
                )
            }
            Target::File | Target::Lua => None,
        };
        let daemon = SpawnedDaemon::start(args, sink.as_ref());
        let cpu_before = daemon.daemon.cpu_time();
        let (mut result, clients) = drive(args, &daemon.daemon.socket, run).await;
        let waited = Instant::now();
        match &sink {
            Some(_) => {
                wait_until_handled(result.accepted, "arrived at the sink", || {
                    arrivals.lock().unwrap().len()
                })
                .await
            }
            None => {
                wait_until_handled(result.accepted, "lines in the file", || daemon.lines()).await
            }
        }
        result.handled_after = Some(result.elapsed + waited.elapsed());
        result.daemon_cpu = Some(daemon.daemon.cpu_time().saturating_sub(cpu_before));
        result.peak_rss_kib = daemon.daemon.memory_kib("VmHWM");
        if let Some(sink) = &sink {
            let arrivals = arrivals.lock().unwrap();
            for (client, sent) in clients.iter().enumerate() {
                for (i, at) in sent.sent.iter().enumerate() {
                    if let Some(arrived) = arrivals.get(&event_id(run, client, i, args.guid_ids)) {
                        result.end_to_end.push(micros(arrived.duration_since(*at)));
                    }
                }
            }
            result.end_to_end.sort_unstable();
            result.sink_peak = Some(sink.peak.load(Ordering::Relaxed));
        }
        result
    }

    fn throughput(result: &RunResult) -> f64 {
        result.accepted as f64 / result.elapsed.as_secs_f64()
    }

    fn percentile(sorted: &[u32], p: f64) -> f64 {
        let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted.get(i).map_or(0.0, |&us| us as f64 / 1000.0)
    }

    fn micros(duration: Duration) -> u32 {
        duration.as_micros().min(u32::MAX as u128) as u32
    }

    fn report(label: &str, result: &RunResult) {
        let mut line = format!(
            "{label}: {} accepted, {} rejected in {:.2} s: {:.0} events/s; ack p50 {:.2} ms, p99 {:.2} ms",
            result.accepted,
            result.rejected,
            result.elapsed.as_secs_f64(),
            throughput(result),
            percentile(&result.acks, 0.50),
            percentile(&result.acks, 0.99),
        );
        if let Some(after) = result.handled_after {
            line.push_str(&format!(
                "; all handled after {:.2} s ({:.0} events/s end to end)",
                after.as_secs_f64(),
                result.accepted as f64 / after.as_secs_f64()
            ));
        }
        if let Some(cpu) = result.daemon_cpu.filter(|_| result.accepted > 0) {
            line.push_str(&format!(
                "; daemon CPU {:.1} µs/event",
                cpu.as_secs_f64() * 1e6 / result.accepted as f64
            ));
        }
        if !result.end_to_end.is_empty() {
            line.push_str(&format!(
                "; socket→sink p50 {:.2} ms, p99 {:.2} ms",
                percentile(&result.end_to_end, 0.50),
                percentile(&result.end_to_end, 0.99)
            ));
        }
        if let Some(kib) = result.peak_rss_kib {
            line.push_str(&format!("; daemon peak RSS {:.1} MiB", kib as f64 / 1024.0));
        }
        if let Some(peak) = result.sink_peak {
            line.push_str(&format!("; sink peak in flight {peak}"));
        }
        println!("{line}");
    }

    async fn drive(args: &Args, socket: &Path, run: usize) -> (RunResult, Vec<ClientRun>) {
        let started = Instant::now();
        let per_client = args.events / args.clients;
        let client_rate = args.rate as f64 / args.clients as f64;
        let tasks: Vec<_> = (0..args.clients)
            .map(|client| {
                let socket = socket.to_owned();
                let (window, jobs, guid_ids) = (args.window, args.jobs.max(1), args.guid_ids);
                tokio::spawn(async move {
                    let events = Events {
                        run,
                        client,
                        count: per_client,
                        jobs,
                        guid_ids,
                    };
                    client_run(&socket, events, window, client_rate).await
                })
            })
            .collect();
        let mut result = RunResult::default();
        let mut clients = Vec::new();
        for task in tasks {
            let client = task.await.unwrap();
            result.accepted += client.accepted;
            result.rejected += client.rejected;
            result.acks.extend(&client.acks);
            clients.push(client);
        }
        result.elapsed = started.elapsed();
        result.acks.sort_unstable();
        (result, clients)
    }

    /// One connection: a writer paced by the window (and the rate), a reader
    /// matching each ack to its send time (acks come in order).
    async fn client_run(socket: &Path, events: Events, window: usize, rate: f64) -> ClientRun {
        let Events {
            run,
            client,
            count: events,
            jobs,
            guid_ids,
        } = events;
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
                let mut batch = Batch {
                    bytes: Vec::with_capacity(64 * 1024),
                    events: 0,
                };
                for i in 0..events {
                    if rate > 0.0 {
                        let due = start + Duration::from_secs_f64(i as f64 / rate);
                        if due > Instant::now() {
                            batch.flush(&mut write, &sent_at).await;
                            tokio::time::sleep_until(due.into()).await;
                        }
                    }
                    let permit = match permits.try_acquire() {
                        Ok(permit) => permit,
                        Err(_) => {
                            batch.flush(&mut write, &sent_at).await;
                            permits.acquire().await.unwrap()
                        }
                    };
                    permit.forget();
                    let job = (client * 7919 + i) % jobs;
                    batch.bytes.extend_from_slice(
                        event(&event_id(run, client, i, guid_ids), job).as_bytes(),
                    );
                    batch.events += 1;
                    if batch.bytes.len() >= 60 * 1024 {
                        batch.flush(&mut write, &sent_at).await;
                    }
                }
                batch.flush(&mut write, &sent_at).await;
                write
            })
        };
        let mut lines = BufReader::new(read).lines();
        let mut result = ClientRun {
            accepted: 0,
            rejected: 0,
            acks: Vec::with_capacity(events),
            sent: Vec::with_capacity(events),
        };
        for _ in 0..events {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("daemon closed the connection");
            let at = sent.recv().await.unwrap();
            result.acks.push(micros(at.elapsed()));
            result.sent.push(at);
            if line.starts_with("{\"ok\":true") {
                result.accepted += 1;
            } else {
                result.rejected += 1;
            }
            permits.add_permits(1);
        }
        drop(writer.await.unwrap());
        result
    }

    /// Lines written together, with the number of events in them.
    struct Batch {
        bytes: Vec<u8>,
        events: usize,
    }

    impl Batch {
        async fn flush(
            &mut self,
            write: &mut tokio::net::unix::OwnedWriteHalf,
            sent_at: &mpsc::UnboundedSender<Instant>,
        ) {
            if self.bytes.is_empty() {
                return;
            }
            let now = Instant::now();
            for _ in 0..self.events {
                sent_at.send(now).unwrap();
            }
            write.write_all(&self.bytes).await.unwrap();
            self.bytes.clear();
            self.events = 0;
        }
    }

    /// The `Id` of event `i` of `client` in `run`: the same each time it
    /// is asked for, so that the sink's arrivals can be matched to sends.
    fn event_id(run: usize, client: usize, i: usize, guid: bool) -> String {
        if !guid {
            return format!("r{run}-c{client}-{i}");
        }
        // SipHash with fixed keys: spread at random, and repeatable.
        let half = |salt: u8| {
            std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default()
                .hash_one((salt, run, client, i))
        };
        let bits = u128::from(half(0)) << 64 | u128::from(half(1));
        uuid::Uuid::from_u128(bits).to_string()
    }

    /// What one client sends: `count` events of run `run`, cycling through
    /// `jobs` job ids.
    struct Events {
        run: usize,
        client: usize,
        count: usize,
        jobs: usize,
        /// GUIDs as `Id`s ([`event_id`]).
        guid_ids: bool,
    }

    /// Waits until `handled()` reaches `count` accepted events; more than
    /// that means an event was handled twice.
    async fn wait_until_handled(count: usize, what: &str, handled: impl Fn() -> usize) {
        let started = Instant::now();
        loop {
            let done = handled();
            if done >= count {
                assert_eq!(done, count, "more {what} than accepted events");
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "only {done} of {count} {what}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The `concurrency` line of the HTTP handler's section (none for the
    /// default, so that builds from before the setting can be compared).
    fn concurrency(value: &str) -> String {
        match value.parse::<usize>() {
            Ok(count) => format!("concurrency = {count}\n"),
            Err(_) if value == "adaptive" => String::new(),
            Err(_) => format!("concurrency = \"{value}\"\n"),
        }
    }

    /// A daemon started on a temporary config with one handler.
    struct SpawnedDaemon {
        daemon: Daemon,
        /// The handler's file, and the lines counted in it.
        out: Mutex<(Tail, usize)>,
        _dir: tempfile::TempDir,
    }

    impl SpawnedDaemon {
        /// The chain `target` names; `sink` is the HTTP sink for `Target::Http`.
        fn start(args: &Args, sink: Option<&Sink>) -> SpawnedDaemon {
            let (workers, target, fsync) = (args.workers, args.handler, &args.fsync);
            let queue_capacity = args.queue_capacity;
            let dir = tempfile::tempdir().unwrap();
            let config = dir.path().join("handlers.toml");
            let file = "library = \"TextFileHandler\"\nfile_path = \"out/events.log\"\n";
            let chain = match (target, sink) {
                (Target::Http, Some(sink)) => format!(
                    "OnFinish = [\"sink\"]\n[handlers.sink]\nlibrary = \"HttpHandler\"\nurl = \"{}\"\n{}",
                    sink.url,
                    concurrency(&args.concurrency)
                ),
                (Target::Lua, _) => {
                    std::fs::create_dir(dir.path().join("scripts")).unwrap();
                    std::fs::write(
                        dir.path().join("scripts/enrich.lua"),
                        "function handle(event)\n  event.Enriched = event.JobType .. '/' .. event.JobResult\n  return event\nend\n",
                    )
                    .unwrap();
                    format!(
                        "OnFinish = [\"enrich\", \"sink\"]\n[handlers.enrich]\nlibrary = \"LuaHandler\"\n\
                         lua_script = \"enrich.lua\"\n[handlers.sink]\n{file}"
                    )
                }
                _ => format!("OnFinish = [\"sink\"]\n[handlers.sink]\n{file}"),
            };
            std::fs::write(
                &config,
                format!(
                    "[daemon]\nsocket = \"jobhook.sock\"\nworkers = {workers}\nqueue_capacity = {queue_capacity}\nfsync = \"{fsync}\"\n\
                     [hooks]\n{chain}{}",
                    if args.admin {
                        "\n[admin]\nlisten = \"127.0.0.1:0\"\n"
                    } else {
                        ""
                    }
                ),
            )
            .unwrap();
            let binary = args
                .daemon_binary
                .clone()
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_jobhook")));
            let socket = dir.path().join("jobhook.sock");
            SpawnedDaemon {
                daemon: Daemon::start(&binary, &config, socket, "warn", Stdio::inherit()),
                out: Mutex::new((Tail::new(dir.path().join("out/events.log")), 0)),
                _dir: dir,
            }
        }

        /// Lines in the handler's file so far.
        fn lines(&self) -> usize {
            let mut out = self.out.lock().unwrap();
            let (tail, count) = &mut *out;
            tail.read(|_| *count += 1);
            *count
        }
    }
}
