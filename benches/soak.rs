//! Soak tool: the release daemon under steady load for a long time, through
//! a Lua handler, a text file and an HTTP endpoint that fails one minute in
//! five, while its config is rewritten every few seconds.
//!
//! ```sh
//! cargo bench --bench soak                                  # 1 h at 5,000 events/s
//! cargo bench --bench soak -- --duration 10m --rate 2000
//! cargo bench --bench soak -- --dir /var/tmp/soak           # keep the daemon's files and log
//! ```
//!
//! Each event goes `enrich` (Lua: adds a field) → `file` (a JSON line) →
//! `sink` (POSTed to an HTTP sink inside this tool). The sink answers 503
//! during the last minute of every five (`--fail-every`, `--fail-for`);
//! the sink handler retries until it is back. Every `--rewrite-every` the
//! config is rewritten with a new header on the sink (a valid change that
//! rebuilds that handler), alternately in place and by renaming a new file
//! over it. When the time is up, the sink is made healthy and the tool
//! waits for the daemon to deliver every acked event, then reports: events
//! acked, lost (acked, never delivered to the file or to the sink), and
//! delivered twice; the daemon's RSS once a `--sample-every`; and how long
//! each reload took from the change (the log's `since_change_ms`).

#[cfg(not(unix))]
fn main() {
    eprintln!("the soak tool drives the Unix socket; run it on Linux");
}

#[cfg(unix)]
fn main() {
    driver::main();
}

#[cfg(unix)]
mod common;

#[cfg(unix)]
mod driver {
    use std::path::{Path, PathBuf};
    use std::process::Stdio;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use clap::Parser;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::UnixStream;
    use tokio::sync::mpsc;

    use crate::common::{Daemon, Sink, Tail, event, id_of};

    #[derive(Debug, Parser)]
    struct Args {
        /// How long events are sent, e.g. `1h`, `10m`.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "1h")]
        duration: Duration,
        /// Events per second over all clients.
        #[arg(long, default_value_t = 5_000)]
        rate: u64,
        /// Concurrent client connections.
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Distinct `JobId`s the events cycle through.
        #[arg(long, default_value_t = 64)]
        jobs: usize,
        /// The HTTP sink fails (503) for `--fail-for` at the end of each
        /// period this long.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "5m")]
        fail_every: Duration,
        /// See `--fail-every`.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "1m")]
        fail_for: Duration,
        /// How often the config is rewritten.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
        rewrite_every: Duration,
        /// How often the daemon's RSS is sampled (and progress printed).
        #[arg(long, value_parser = humantime::parse_duration, default_value = "1m")]
        sample_every: Duration,
        /// Longest wait, once sending stops, for every acked event to be
        /// delivered.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "10m")]
        drain_timeout: Duration,
        /// Folder for the daemon's config, spool, file and log
        /// (`daemon.log`), kept afterwards; default: a temporary folder,
        /// removed afterwards.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Start this jobhook binary instead of the one cargo just built.
        #[arg(long)]
        daemon_binary: Option<PathBuf>,
        /// Ignored; cargo bench passes it.
        #[arg(long, hide = true)]
        bench: bool,
    }

    /// Per event number: whether it was acked, and how often it arrived.
    struct Ledger {
        acked: Vec<AtomicBool>,
        at_sink: Vec<AtomicU8>,
        in_file: Vec<AtomicU8>,
    }

    impl Ledger {
        fn new(events: usize) -> Ledger {
            let counters = || (0..events).map(|_| AtomicU8::new(0)).collect();
            Ledger {
                acked: (0..events).map(|_| AtomicBool::new(false)).collect(),
                at_sink: counters(),
                in_file: counters(),
            }
        }

        /// Counts an arrival of the event with this `Id` (`soak-N`).
        fn arrived(counters: &[AtomicU8], id: &str) {
            if let Some(counter) = id
                .strip_prefix("soak-")
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|n| counters.get(n))
            {
                let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |count| {
                    Some(count.saturating_add(1))
                });
            }
        }

        /// Acked events that never arrived, and events that arrived more
        /// than once, in `counters`.
        fn tally(&self, counters: &[AtomicU8]) -> (usize, usize) {
            let mut lost = 0;
            let mut twice = 0;
            for (acked, count) in self.acked.iter().zip(counters) {
                let count = count.load(Ordering::Relaxed);
                if acked.load(Ordering::Relaxed) && count == 0 {
                    lost += 1;
                }
                if count > 1 {
                    twice += 1;
                }
            }
            (lost, twice)
        }
    }

    pub fn main() {
        let args = Args::parse();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(soak(&args));
    }

    async fn soak(args: &Args) {
        println!(
            "soak: {} at {} events/s over {} clients; sink fails {} in every {}; config rewritten every {}",
            humantime::format_duration(args.duration),
            args.rate,
            args.clients,
            humantime::format_duration(args.fail_for),
            humantime::format_duration(args.fail_every),
            humantime::format_duration(args.rewrite_every),
        );
        let planned = (args.rate as f64 * args.duration.as_secs_f64()).ceil() as usize;
        let ledger = Arc::new(Ledger::new(planned));
        let failing = Arc::new(AtomicBool::new(false));
        let sink = {
            let ledger = ledger.clone();
            Sink::start(Duration::ZERO, failing.clone(), move |id| {
                Ledger::arrived(&ledger.at_sink, id)
            })
            .await
        };
        let temporary = tempfile::tempdir().unwrap();
        let dir = args
            .dir
            .clone()
            .unwrap_or_else(|| temporary.path().to_owned());
        let config = Config::write(&dir, &sink.url);
        let binary = args
            .daemon_binary
            .clone()
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_jobhook")));
        let log_path = dir.join("daemon.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let daemon = Daemon::start(
            &binary,
            &config.path,
            dir.join("jobhook.sock"),
            // Reloads are logged at info; each failed attempt against the
            // failing sink would be a warning, millions in an hour.
            "info,jobhook::chain=error",
            Stdio::from(log),
        );
        let mut file = Tail::new(dir.join("out/events.log"));
        let started = Instant::now();

        let sent = Arc::new(AtomicUsize::new(0));
        let rejected = Arc::new(AtomicUsize::new(0));
        let clients: Vec<_> = (0..args.clients)
            .map(|client| {
                let client = Client {
                    socket: daemon.socket.clone(),
                    number: client,
                    clients: args.clients,
                    planned,
                    rate: args.rate as f64 / args.clients as f64,
                    jobs: args.jobs.max(1),
                    ledger: ledger.clone(),
                    sent: sent.clone(),
                    rejected: rejected.clone(),
                };
                tokio::spawn(client.run(started + args.duration))
            })
            .collect();
        let rewrites = tokio::spawn(config.rewrite_every(args.rewrite_every));

        let mut samples = Vec::new();
        let mut next_sample = started;
        while started.elapsed() < args.duration {
            let into_period = duration_mod(started.elapsed(), args.fail_every);
            failing.store(
                into_period >= args.fail_every.saturating_sub(args.fail_for),
                Ordering::Relaxed,
            );
            file.read(|line| {
                if let Some(id) = id_of(&String::from_utf8_lossy(line)) {
                    Ledger::arrived(&ledger.in_file, id);
                }
            });
            if Instant::now() >= next_sample {
                let sample = Sample::take(&daemon, started, &ledger, &sent);
                println!("{sample}");
                samples.push(sample);
                next_sample += args.sample_every;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        failing.store(false, Ordering::Relaxed);
        for client in clients {
            client.await.unwrap();
        }
        rewrites.abort();
        let sent = sent.load(Ordering::Relaxed);
        println!(
            "sending stopped after {:.0} s: {sent} sent; draining",
            started.elapsed().as_secs_f64()
        );

        let drain_started = Instant::now();
        let drained = loop {
            file.read(|line| {
                if let Some(id) = id_of(&String::from_utf8_lossy(line)) {
                    Ledger::arrived(&ledger.in_file, id);
                }
            });
            let (lost_at_sink, _) = ledger.tally(&ledger.at_sink);
            let (lost_in_file, _) = ledger.tally(&ledger.in_file);
            if lost_at_sink == 0 && lost_in_file == 0 {
                break true;
            }
            if drain_started.elapsed() > args.drain_timeout {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let sample = Sample::take(&daemon, started, &ledger, &AtomicUsize::new(sent));
        println!("{sample}");
        samples.push(sample);
        let peak_kib = daemon.memory_kib("VmHWM");
        let cpu = daemon.cpu_time();
        drop(daemon);

        let acked = ledger
            .acked
            .iter()
            .filter(|acked| acked.load(Ordering::Relaxed))
            .count();
        let (lost_at_sink, twice_at_sink) = ledger.tally(&ledger.at_sink);
        let (lost_in_file, twice_in_file) = ledger.tally(&ledger.in_file);
        println!("== soak report ==");
        println!(
            "events: {sent} sent, {acked} acked, {} rejected; drained in {:.1} s{}",
            rejected.load(Ordering::Relaxed),
            drain_started.elapsed().as_secs_f64(),
            if drained { "" } else { " (drain timed out)" }
        );
        println!("lost (acked, never delivered): sink {lost_at_sink}, file {lost_in_file}");
        println!("delivered twice: sink {twice_at_sink}, file {twice_in_file}");
        println!("RSS (MiB) per sample: {}", rss_curve(&samples));
        if let Some(kib) = peak_kib {
            println!("peak RSS {:.1} MiB", kib as f64 / 1024.0);
        }
        println!(
            "daemon CPU {:.0} s ({:.1} µs/event); sink peak in flight {}",
            cpu.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / sent.max(1) as f64,
            sink.peak.load(Ordering::Relaxed)
        );
        println!("{}", reloads(&log_path));
        println!("daemon log: {}", log_path.display());
        if args.dir.is_none() {
            // The temporary folder goes; say so rather than name a log that
            // is about to disappear.
            println!("(removed with its folder; pass --dir to keep it)");
        }
    }

    /// `elapsed` modulo `period`.
    fn duration_mod(elapsed: Duration, period: Duration) -> Duration {
        if period.is_zero() {
            return Duration::ZERO;
        }
        Duration::from_nanos((elapsed.as_nanos() % period.as_nanos()) as u64)
    }

    /// One connection sending its share of the events at its share of the
    /// rate, noting each acked one.
    struct Client {
        socket: PathBuf,
        number: usize,
        clients: usize,
        planned: usize,
        rate: f64,
        jobs: usize,
        ledger: Arc<Ledger>,
        sent: Arc<AtomicUsize>,
        rejected: Arc<AtomicUsize>,
    }

    impl Client {
        /// Sends events `number`, `number + clients`, … until `until`.
        async fn run(self, until: Instant) {
            let stream = UnixStream::connect(&self.socket)
                .await
                .expect("connect to the daemon");
            let (read, mut write) = stream.into_split();
            // The numbers of the events sent, in order: replies come in order.
            let (sent_tx, mut sent_rx) = mpsc::unbounded_channel::<usize>();
            let writer = {
                let sent = self.sent.clone();
                let (number, clients, planned, rate, jobs) = (
                    self.number,
                    self.clients,
                    self.planned,
                    self.rate,
                    self.jobs,
                );
                tokio::spawn(async move {
                    let start = Instant::now();
                    let mut batch = Vec::with_capacity(64 * 1024);
                    let mut n = number;
                    let mut i = 0u64;
                    while n < planned && Instant::now() < until {
                        let due = start + Duration::from_secs_f64(i as f64 / rate);
                        if due > Instant::now() {
                            write.write_all(&batch).await.unwrap();
                            batch.clear();
                            tokio::time::sleep_until(due.into()).await;
                        }
                        batch.extend_from_slice(event(&format!("soak-{n}"), n % jobs).as_bytes());
                        sent_tx.send(n).unwrap();
                        sent.fetch_add(1, Ordering::Relaxed);
                        n += clients;
                        i += 1;
                    }
                    write.write_all(&batch).await.unwrap();
                    write
                })
            };
            let mut lines = BufReader::new(read).lines();
            while let Some(n) = sent_rx.recv().await {
                let line = lines
                    .next_line()
                    .await
                    .unwrap()
                    .expect("daemon closed the connection");
                if line.starts_with("{\"ok\":true") {
                    self.ledger.acked[n].store(true, Ordering::Relaxed);
                } else {
                    self.rejected.fetch_add(1, Ordering::Relaxed);
                }
            }
            drop(writer.await.unwrap());
        }
    }

    /// The daemon's memory and the progress at one moment.
    struct Sample {
        at: Duration,
        rss_kib: u64,
        sent: usize,
        at_sink: usize,
    }

    impl Sample {
        fn take(daemon: &Daemon, started: Instant, ledger: &Ledger, sent: &AtomicUsize) -> Sample {
            Sample {
                at: started.elapsed(),
                rss_kib: daemon.memory_kib("VmRSS").unwrap_or(0),
                sent: sent.load(Ordering::Relaxed),
                at_sink: ledger
                    .at_sink
                    .iter()
                    .filter(|count| count.load(Ordering::Relaxed) > 0)
                    .count(),
            }
        }
    }

    impl std::fmt::Display for Sample {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(
                f,
                "t={:>5.0}s RSS {:>6.1} MiB; {} sent, {} at the sink",
                self.at.as_secs_f64(),
                self.rss_kib as f64 / 1024.0,
                self.sent,
                self.at_sink
            )
        }
    }

    fn rss_curve(samples: &[Sample]) -> String {
        samples
            .iter()
            .map(|sample| format!("{:.1}", sample.rss_kib as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Reload latencies from the daemon's log (`config reloaded …
    /// since_change_ms=N`), and how many reloads failed.
    fn reloads(log: &Path) -> String {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let mut latencies: Vec<u64> = text
            .lines()
            .filter(|line| line.contains("config reloaded"))
            .filter_map(|line| {
                let (_, rest) = line.split_once("since_change_ms=")?;
                rest.split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            })
            .collect();
        latencies.sort_unstable();
        let failed = text
            .lines()
            .filter(|line| line.contains("config reload failed"))
            .count();
        match (latencies.first(), latencies.last()) {
            (Some(min), Some(max)) => format!(
                "reloads: {} applied, {failed} failed; since_change_ms min {min}, median {}, max {max}",
                latencies.len(),
                latencies[latencies.len() / 2]
            ),
            _ => format!("reloads: none applied, {failed} failed"),
        }
    }

    /// The daemon's config, and the rewrites that keep changing it.
    struct Config {
        path: PathBuf,
        sink_url: String,
    }

    impl Config {
        /// Writes the config (and its script) into `dir`.
        fn write(dir: &Path, sink_url: &str) -> Config {
            std::fs::create_dir_all(dir.join("scripts")).unwrap();
            std::fs::write(
                dir.join("scripts/enrich.lua"),
                "function handle(event)\n  event.Enriched = event.JobType .. '/' .. event.JobResult\n  return event\nend\n",
            )
            .unwrap();
            let config = Config {
                path: dir.join("handlers.toml"),
                sink_url: sink_url.to_owned(),
            };
            std::fs::write(&config.path, config.text(0)).unwrap();
            config
        }

        /// The config of rewrite number `rewrite`: the sink sends a header
        /// that says which.
        fn text(&self, rewrite: u64) -> String {
            format!(
                "[daemon]\nsocket = \"jobhook.sock\"\n\
                 [hooks]\nOnFinish = [\"enrich\", \"file\", \"sink\"]\n\
                 [handlers.enrich]\nlibrary = \"LuaHandler\"\nlua_script = \"enrich.lua\"\n\
                 [handlers.file]\nlibrary = \"TextFileHandler\"\nfile_path = \"out/events.log\"\n\
                 [handlers.sink]\nlibrary = \"HttpHandler\"\nurl = \"{}\"\n\
                 headers = {{ \"X-Soak-Rewrite\" = \"{rewrite}\" }}\n\
                 retries = 1000\nretry_interval = \"1s\"\nbackoff = \"exponential\"\n\
                 max_retry_interval = \"10s\"\n",
                self.sink_url
            )
        }

        /// Rewrites the config every `period`, alternately in place and by
        /// renaming a new file over it, until aborted.
        async fn rewrite_every(self, period: Duration) {
            let mut ticks = tokio::time::interval(period);
            ticks.tick().await;
            for rewrite in 1.. {
                ticks.tick().await;
                let text = self.text(rewrite);
                if rewrite % 2 == 0 {
                    std::fs::write(&self.path, text).unwrap();
                } else {
                    let new = self.path.with_extension("toml.new");
                    std::fs::write(&new, text).unwrap();
                    std::fs::rename(&new, &self.path).unwrap();
                }
            }
        }
    }
}
