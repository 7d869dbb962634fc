//! Commits of batches the tests make themselves, to put in one commit
//! what would otherwise only come together by chance.

use std::sync::Arc;
use std::sync::mpsc;

use super::*;
use crate::lifecycle::Heartbeat;
use crate::spool::budget::Budget;
use crate::spool::protocol::Accepted;
use crate::spool::sqlite::store::{self, Fsync, Store};
use crate::spool::sqlite::thread::tests::{event, limits, start};
use crate::spool::{Lane, Lanes, Limits};

/// An event's submission as a connection makes it, and where its answer
/// comes: for tests that hand the spool thread its batches themselves.
async fn submission(
    budget: &Budget,
    id: &str,
) -> (
    Message,
    tokio::sync::oneshot::Receiver<Result<Accepted, Rejection>>,
) {
    let (sender, answer) = tokio::sync::oneshot::channel();
    let reply = Reply {
        sender,
        _share: budget.take(100).await,
    };
    let message = Message::Submit {
        event: event(id),
        reply,
    };
    (message, answer)
}

/// The next event handed to `lane`: failing rather than waiting for good
/// when none comes.
async fn next(lane: &mut Lane) -> Work {
    let next = tokio::time::timeout(std::time::Duration::from_secs(10), lane.recv());
    next.await
        .expect("no event came to the lane in 10 s")
        .expect("the lane is open")
}

/// A spool thread (run by hand) on a new spool in `dir`, its one lane,
/// the ingest budget, and the event "old", committed and handed out.
async fn with_old_event(
    dir: &std::path::Path,
    limits: Limits,
) -> (SpoolThread, Lane, Budget, Work) {
    let (lanes, mut receivers) = Lanes::new(1);
    let store = Store::open(dir, Fsync::Never).unwrap();
    let mut thread = SpoolThread::resume(store, limits, lanes, Arc::default()).unwrap();
    let mut lane = receivers.remove(0);
    let budget = Budget::new(1 << 20);
    let (message, answer) = submission(&budget, "old").await;
    thread.commit(&mut vec![message]);
    assert!(answer.await.unwrap().is_ok());
    let old = next(&mut lane).await;
    (thread, lane, budget, old)
}

/// The events and bytes the spool thread counts are those in the spool.
fn assert_counts_agree(thread: &SpoolThread) {
    assert_eq!(
        (thread.pending_events, thread.pending_bytes),
        (
            thread.store.pending().unwrap(),
            thread.store.pending_bytes().unwrap()
        ),
        "the counts kept agree with the spool"
    );
}

#[tokio::test]
async fn a_new_event_in_the_commit_that_finishes_an_old_one_starts_with_nothing_done() {
    // A commit deletes its finished events before it stores its new ones
    // (`commit.rs`). The new event must come with nothing done, under a
    // seq of its own, and the finished event's dead letter and progress
    // row must go as they would otherwise.
    let dir = tempfile::tempdir().unwrap();
    let (mut thread, mut lane, budget, old) = with_old_event(dir.path(), limits(100)).await;

    // A script changes it (skipped: it finishes in this commit, and the
    // change must land on no other event), its last handler gives
    // up (a dead letter and a progress row), the event finishes, and a new
    // event comes, all in one commit.
    let (message, answer) = submission(&budget, "new").await;
    let dead = Dead {
        receipt: old.receipt,
        event_id: "old".to_owned(),
        stage: "first".to_owned(),
        event: old.event.json().clone(),
        error: "down".to_owned(),
        attempts: 1,
        first_attempt: now_ms(),
    };
    let changed = StageDone {
        receipt: old.receipt,
        stage: "script".to_owned(),
        changed: Some(br#"{"Id":"old","Changed":true}"#.to_vec().into()),
    };
    thread.commit(&mut vec![
        Message::Record(Record::StageDone(changed)),
        Message::Record(Record::Dead(dead)),
        Message::Record(Record::Finished(old.receipt)),
        message,
    ]);
    assert!(!answer.await.unwrap().unwrap().duplicate);
    let new = next(&mut lane).await;
    assert_eq!(new.event.id(), "new");
    assert_ne!(new.receipt, old.receipt, "a seq reused while running");
    assert!(!thread.with_progress.contains(&new.receipt));
    assert_counts_agree(&thread);
    assert_eq!(thread.pending_events, 1);
    // Stopped as the daemon stops it: the run ends cleanly.
    let (stop, messages) = mpsc::channel();
    stop.send(Message::Stop).unwrap();
    thread.run(&messages, &Heartbeat::default());

    let raw = rusqlite::Connection::open(dir.path().join(store::FILE_NAME)).unwrap();
    let count = |table: &str| -> i64 {
        raw.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
            row.get(0)
        })
        .unwrap()
    };
    assert_eq!((count("dead_letters"), count("progress")), (1, 0));
    drop(raw);
    let (spool, mut lane) = start(dir.path(), 100);
    let resumed = next(&mut lane).await;
    assert_eq!(
        (resumed.event.id(), resumed.done.len()),
        ("new", 0),
        "read back with nothing done"
    );
    let body = String::from_utf8_lossy(resumed.event.json());
    assert!(
        !body.contains("Changed"),
        "the script's change landed on it: {body}"
    );
    spool.stop();
}

#[tokio::test]
async fn events_finished_in_a_commit_make_room_for_its_new_ones() {
    // At `max_spool_bytes`, a new event coming with the finish of an
    // older one is taken: the commit deletes before it admits.
    let dir = tempfile::tempdir().unwrap();
    // Room for "old" as it comes (an event's JSON carries the time it was
    // received, whose length varies a little), not once a script made it
    // 500 bytes larger.
    let limits = Limits {
        max_bytes: event("old").json().len() as u64 + 100,
        ..limits(100)
    };
    let (mut thread, _lane, budget, old) = with_old_event(dir.path(), limits).await;
    let larger = StageDone {
        receipt: old.receipt,
        stage: "script".to_owned(),
        changed: Some(
            format!(r#"{{"Id":"old","Pad":"{}"}}"#, "x".repeat(500))
                .into_bytes()
                .into(),
        ),
    };
    let larger = Record::StageDone(larger);
    thread.commit(&mut vec![Message::Record(larger)]);

    let (message, answer) = submission(&budget, "refused").await;
    thread.commit(&mut vec![message]);
    assert_eq!(answer.await.unwrap(), Err(Rejection::Overloaded), "full");

    let (message, answer) = submission(&budget, "new").await;
    let finished = Record::Finished(old.receipt);
    thread.commit(&mut vec![Message::Record(finished), message]);
    assert!(answer.await.unwrap().is_ok(), "no room made");
    assert_counts_agree(&thread);
}

#[test]
fn a_kept_list_comes_back_empty_with_at_most_a_commits_room() {
    let mut large: Vec<u64> = Vec::with_capacity(50 * MAX_BATCH);
    large.extend(0..10);
    let large = kept(large);
    assert!(large.is_empty());
    assert!(
        (MAX_BATCH..50 * MAX_BATCH).contains(&large.capacity()),
        "{}",
        large.capacity()
    );
    let mut small: Vec<u64> = Vec::with_capacity(100);
    small.push(1);
    let small = kept(small);
    assert_eq!((small.len(), small.capacity()), (0, 100));
}
