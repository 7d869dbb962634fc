use super::*;
use std::sync::Arc;

use crate::spool::protocol::{Accepted, Rejection, SourceBatch};
use crate::spool::{Lane, Progress, Spool};

pub(in crate::spool::sqlite) fn limits(in_memory: usize) -> Limits {
    Limits {
        fsync: Fsync::Never,
        in_memory,
        max_bytes: 1 << 30,
        submitted_bytes: crate::spool::budget_bytes(1 << 20),
        dedupe_window: Duration::from_secs(3600),
        max_dedupe_bytes: 1 << 20,
        filling: 0.8,
        emptying: 0.2,
    }
}

pub(in crate::spool::sqlite) fn event(id: &str) -> Event {
    let line = format!(r#"{{"Id":"{id}","JobId":"49b3a17d-cada-4ec8-84c6-7719bf5beef3"}}"#);
    Event::from_line(line.as_bytes(), jiff::Timestamp::now()).unwrap()
}

/// A spool in `dir` whose one lane has room for `in_memory` events.
pub(in crate::spool::sqlite) fn start(dir: &std::path::Path, in_memory: usize) -> (Spool, Lane) {
    let (lanes, mut receivers) = Lanes::new(1);
    let store = Store::open(dir, Fsync::Never).unwrap();
    let spool = Spool::start(store, limits(in_memory), lanes, Heartbeat::default()).unwrap();
    (spool, receivers.remove(0))
}

/// Submits `count` events (`e0`, `e1`, …), then fails the first attempt
/// of the first `failing` of them, in order, as a handler whose endpoint is
/// down: each waits for a retry due a second later, late enough for every
/// first attempt to come before any retry.
async fn fail_first_attempts(spool: &Spool, lane: &mut Lane, count: usize, failing: usize) {
    for i in 0..count {
        assert!(submit(spool, &format!("e{i}")).await.is_ok());
    }
    let due = now_ms() + 1000;
    for i in 0..failing {
        let work = lane.recv().await.unwrap();
        assert_eq!(
            work.event.id(),
            format!("e{i}"),
            "first attempts come in order"
        );
        spool.recorder().retry(crate::spool::protocol::Retry {
            receipt: work.receipt,
            stage: "down".to_owned(),
            attempts: 1,
            first_attempt: now_ms(),
            due,
        });
    }
}

async fn submit(spool: &Spool, id: &str) -> Result<Accepted, Rejection> {
    spool.queue().submit(event(id)).await.outcome().await
}

fn batch(cursor: &str, ids: &[&str]) -> SourceBatch {
    SourceBatch {
        source: "command".to_owned(),
        cursor: cursor.to_owned(),
        events: ids.iter().map(|id| event(id)).collect(),
    }
}

#[tokio::test]
async fn a_source_batch_and_its_cursor_are_committed_together() {
    let dir = tempfile::tempdir().unwrap();
    let open = || Store::open(dir.path(), Fsync::Never).unwrap();
    let (lanes, mut receivers) = Lanes::new(1);
    let spool = Spool::start(open(), limits(100), lanes, Heartbeat::default()).unwrap();
    let queue = spool.queue();
    assert_eq!(queue.cursor("command").await.unwrap(), None);
    let accepted = queue.submit_batch(batch("1", &["a", "b"])).await.unwrap();
    assert_eq!(accepted.iter().filter(|a| a.duplicate).count(), 0);
    assert_eq!(receivers[0].recv().await.unwrap().event.id(), "a");
    assert_eq!(receivers[0].recv().await.unwrap().event.id(), "b");
    let again = queue.submit_batch(batch("2", &["b"])).await.unwrap();
    assert!(again[0].duplicate);
    spool.close_lanes();
    // Refused as a whole: its cursor is not written either.
    let refused = queue.submit_batch(batch("3", &["c"])).await;
    assert_eq!(refused, Err(Rejection::ShuttingDown));
    spool.stop();

    let (lanes, _receivers) = Lanes::new(1);
    let spool = Spool::start(open(), limits(100), lanes, Heartbeat::default()).unwrap();
    assert_eq!(
        spool.queue().cursor("command").await.unwrap().as_deref(),
        Some("2")
    );
    spool.stop();
}

#[tokio::test]
async fn what_the_lanes_have_no_room_for_waits_on_disk_and_comes_in_the_order_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, mut lane) = start(dir.path(), 2);
    let queue = spool.queue();
    // Room for two: a source's page and single events past it are taken
    // all the same, at once.
    let page = queue.submit_batch(batch("1", &["a", "b", "c"])).await;
    assert_eq!(page.unwrap().len(), 3);
    for id in ["d", "e"] {
        assert!(submit(&spool, id).await.is_ok());
    }
    assert_eq!(queue.cursor("command").await.unwrap().as_deref(), Some("1"));
    let lane = &mut lane;
    let recorder = spool.recorder();
    for id in ["a", "b", "c", "d", "e"] {
        let work = lane.recv().await.unwrap();
        assert_eq!(work.event.id(), id);
        assert!(
            lane.len() < 2,
            "{} in the lane besides this one",
            lane.len()
        );
        recorder.finished(work.receipt);
    }
    spool.stop();
}

#[tokio::test]
async fn a_backlog_larger_than_one_read_comes_back_whole_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let room = LOAD_AT_ONCE + 44;
    let (spool, mut lane) = start(dir.path(), room);
    // Several reads of `LOAD_AT_ONCE` each, after the first `room` events.
    let ids: Vec<String> = (0..room + 3 * LOAD_AT_ONCE + 7)
        .map(|i| format!("e{i}"))
        .collect();
    let names: Vec<&str> = ids.iter().map(String::as_str).collect();
    let page = spool.queue().submit_batch(batch("1", &names)).await;
    assert_eq!(page.unwrap().len(), ids.len());
    let recorder = spool.recorder();
    for id in &ids {
        let work = tokio::time::timeout(Duration::from_secs(10), lane.recv())
            .await
            .unwrap_or_else(|_| panic!("{id} never came out of the backlog"))
            .unwrap();
        assert_eq!(work.event.id(), id);
        assert!(work.event.job_id().is_some(), "{id}: its lane");
        let event_type = work.event.routing().event_type.as_deref();
        assert_eq!(event_type, Some("OrchestratorJob"), "{id}");
        assert!(
            lane.len() < room,
            "{} in the lane besides this one",
            lane.len()
        );
        recorder.finished(work.receipt);
    }
    spool.stop();
}

#[tokio::test]
async fn past_max_spool_bytes_a_page_is_refused_whole_but_a_cursor_alone_goes_in() {
    let dir = tempfile::tempdir().unwrap();
    let (lanes, _receivers) = Lanes::new(1);
    let store = Store::open(dir.path(), Fsync::Never).unwrap();
    let tight = Limits {
        max_bytes: 64,
        ..limits(100)
    };
    let spool = Spool::start(store, tight, lanes, Heartbeat::default()).unwrap();
    let queue = spool.queue();
    assert!(queue.submit_batch(batch("1", &["a", "b"])).await.is_ok());
    let full = queue.submit_batch(batch("2", &["c"])).await;
    assert_eq!(full, Err(Rejection::Overloaded));
    assert_eq!(queue.cursor("command").await.unwrap().as_deref(), Some("1"));
    let cursor_alone = queue.submit_batch(batch("3", &[])).await;
    assert!(cursor_alone.unwrap().is_empty());
    assert_eq!(queue.cursor("command").await.unwrap().as_deref(), Some("3"));
    spool.stop();
}

#[tokio::test]
async fn events_left_from_the_last_run_are_loaded_as_the_lanes_have_room() {
    let dir = tempfile::tempdir().unwrap();
    let open = || Store::open(dir.path(), Fsync::Never).unwrap();
    // Twenty events of one job accepted, never handled.
    let (lanes, unhandled) = Lanes::new(1);
    let spool = Spool::start(open(), limits(100), lanes, Heartbeat::default()).unwrap();
    for i in 0..20 {
        assert!(submit(&spool, &format!("old{i}")).await.is_ok());
    }
    spool.stop();
    drop(unhandled);

    let (lanes, mut receivers) = Lanes::new(1);
    let spool = Arc::new(Spool::start(open(), limits(5), lanes, Heartbeat::default()).unwrap());
    let lane = &mut receivers[0];
    let recorder = spool.recorder();
    let mut newer = None;
    for i in 0..20 {
        let work = lane.recv().await.unwrap();
        assert_eq!(work.event.id(), format!("old{i}"));
        assert!(
            lane.len() < 5,
            "{} in the lane besides this one",
            lane.len()
        );
        if i == 0 {
            // A new event of the same job waits for the old ones.
            let spool = spool.clone();
            newer = Some(tokio::spawn(async move { submit(&spool, "new").await }));
        }
        recorder.finished(work.receipt);
    }
    assert_eq!(lane.recv().await.unwrap().event.id(), "new");
    assert!(newer.unwrap().await.unwrap().is_ok());
}

#[tokio::test]
async fn retries_that_come_due_together_wait_for_room_in_the_lanes() {
    // An endpoint down: every event fails and waits for its retry, which
    // frees its place in the lanes for the next. When the retries come
    // due, they go back only as the lanes have room, or an outage would
    // bring every event accepted during it into memory at once.
    let dir = tempfile::tempdir().unwrap();
    let (spool, mut lane) = start(dir.path(), 2);
    fail_first_attempts(&spool, &mut lane, 12, 12).await;
    let ids: Vec<String> = (0..12).map(|i| format!("e{i}")).collect();
    let recorder = spool.recorder();
    let mut retried = Vec::new();
    while retried.len() < ids.len() {
        let work = tokio::time::timeout(Duration::from_secs(10), lane.recv())
            .await
            .expect("every retry comes back")
            .unwrap();
        assert!(
            lane.len() < 2,
            "{} in the lane besides this one: retries went past the lanes' room",
            lane.len()
        );
        assert!(
            work.resume.is_some(),
            "{}: resumes at its handler",
            work.event.id()
        );
        retried.push(work.event.id().to_owned());
        recorder.finished(work.receipt);
    }
    retried.sort_by_key(|id| id[1..].parse::<usize>().unwrap());
    assert_eq!(retried, ids);
    spool.stop();
}

#[tokio::test]
async fn the_progress_of_an_event_finished_in_a_later_run_goes_with_it() {
    // A handler's success written in one run and the event finished in the
    // next: its progress rows must go with it. Seqs are reused after a
    // restart once the spool empties, and a new event given the same seq would inherit them
    // when read back from disk: its first handler skipped as done.
    let dir = tempfile::tempdir().unwrap();
    let (spool, mut lane) = start(dir.path(), 100);
    assert!(submit(&spool, "old").await.is_ok());
    let work = lane.recv().await.unwrap();
    spool
        .recorder()
        .stage_done(crate::spool::protocol::StageDone {
            receipt: work.receipt,
            stage: "first".to_owned(),
            changed: None,
        });
    spool.stop();

    let (spool, mut lane) = start(dir.path(), 100);
    let resumed = lane.recv().await.unwrap();
    assert_eq!(
        (resumed.event.id(), &resumed.done[..]),
        ("old", &["first".to_owned()][..])
    );
    spool.recorder().finished(resumed.receipt);
    spool.stop();
    let raw = rusqlite::Connection::open(dir.path().join(store::FILE_NAME)).unwrap();
    let rows: i64 = raw
        .query_row("SELECT count(*) FROM progress", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows, 0, "the finished event's progress rows are left");
    // As earlier versions left them: deleted at the next start.
    raw.execute(
        "INSERT INTO progress (seq, stage, state) VALUES (?1, 'first', 'done')",
        [resumed.receipt.0],
    )
    .unwrap();
    drop(raw);

    // A new event in the emptied spool, left unhandled, then read back.
    let (spool, unhandled) = start(dir.path(), 100);
    assert!(submit(&spool, "new").await.is_ok());
    spool.stop();
    drop(unhandled);
    let (spool, mut lane) = start(dir.path(), 100);
    let work = lane.recv().await.unwrap();
    assert_eq!(work.event.id(), "new");
    assert_eq!(
        work.receipt, resumed.receipt,
        "the test needs the seq reused"
    );
    assert!(
        work.done.is_empty(),
        "the new event inherited {:?}",
        work.done
    );
    spool.stop();
}

#[tokio::test]
async fn due_retries_and_the_backlog_share_the_lanes() {
    // Ten events wait for their retry and eight on disk, with room for
    // two in the lanes: neither kind holds the lanes while the other waits.
    let dir = tempfile::tempdir().unwrap();
    let (spool, mut lane) = start(dir.path(), 2);
    fail_first_attempts(&spool, &mut lane, 20, 10).await;
    let recorder = spool.recorder();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut kinds = String::new();
    for _ in 0..20 {
        let work = tokio::time::timeout(Duration::from_secs(10), lane.recv())
            .await
            .expect("every event comes")
            .unwrap();
        kinds.push(if work.resume.is_some() { 'r' } else { 'b' });
        recorder.finished(work.receipt);
    }
    // e10 and e11 were in the lanes already; then both kinds in turn.
    assert_eq!(kinds.matches('r').count(), 10, "{kinds}");
    assert!(
        kinds[2..8].contains('r') && kinds[2..8].contains('b'),
        "one kind went first for long: {kinds}"
    );
    spool.stop();
}
