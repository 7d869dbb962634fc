//! The spool's own ceiling: events submitted straight to the spool thread
//! (no socket, no parsing, no handler) and finished as soon as a worker gets
//! them — one insert and one delete per event, group-committed.
//!
//! ```sh
//! cargo bench --bench spool                   # fsync = batch and never, 3 runs each
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use jobhook::event::Event;
use jobhook::spool::{Fsync, Lanes, Limits, Progress, Spool, Store};

const EVENTS: usize = 200_000;
const SUBMITTERS: usize = 4;
const WINDOW: usize = 512;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for fsync in [Fsync::Batch, Fsync::Never] {
        let mut rates: Vec<f64> = (0..3).map(|_| runtime.block_on(run(fsync))).collect();
        rates.sort_by(f64::total_cmp);
        println!(
            "fsync={fsync:?}: median {:.0} events/s through the spool alone (runs: {:?})",
            rates[1],
            rates.iter().map(|r| *r as u64).collect::<Vec<_>>()
        );
    }
}

async fn run(fsync: Fsync) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), fsync).unwrap();
    let (lanes, receivers) = Lanes::new(2);
    let limits = Limits {
        fsync,
        in_memory: 100_000,
        max_bytes: 1 << 30,
        submitted_bytes: jobhook::spool::budget_bytes(1 << 20),
        dedupe_window: Duration::from_secs(3600),
        max_dedupe_bytes: 64 << 20,
        filling: 0.8,
        emptying: 0.2,
    };
    let spool = Spool::start(store, limits, lanes, Default::default()).unwrap();
    let queue = Arc::new(spool.queue());
    let workers: Vec<_> = receivers
        .into_iter()
        .map(|mut lane| {
            let recorder = spool.recorder();
            tokio::spawn(async move {
                let mut finished = 0;
                while finished < EVENTS {
                    let Some(work) = lane.recv().await else { break };
                    recorder.finished(work.receipt);
                    finished += 1;
                }
            })
        })
        .collect();
    let started = Instant::now();
    let submitters: Vec<_> = (0..SUBMITTERS)
        .map(|submitter| {
            let queue = queue.clone();
            tokio::spawn(async move {
                let mut tickets = std::collections::VecDeque::new();
                for i in 0..EVENTS / SUBMITTERS {
                    let line = format!(
                        r#"{{"Id":"s{submitter}-{i}","JobId":"3f1e5a2b-8c7d-4e6f-9a0b-{:012x}","JobType":"WinCertInventory","JobResult":"Success"}}"#,
                        i % 64
                    );
                    let event = Event::from_line(line.as_bytes(), jiff::Timestamp::now()).unwrap();
                    tickets.push_back(queue.submit(event).await);
                    if tickets.len() >= WINDOW {
                        assert!(tickets.pop_front().unwrap().outcome().await.is_ok());
                    }
                }
                for ticket in tickets {
                    assert!(ticket.outcome().await.is_ok());
                }
            })
        })
        .collect();
    for submitter in submitters {
        submitter.await.unwrap();
    }
    let rate = EVENTS as f64 / started.elapsed().as_secs_f64();
    drop(queue);
    spool.close_lanes();
    for worker in workers {
        let _ = tokio::time::timeout(Duration::from_secs(30), worker).await;
    }
    spool.stop();
    rate
}
