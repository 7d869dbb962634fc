use std::time::Duration;

use super::Dedupe;
use crate::spool::sqlite::store::{FILE_NAME, Fsync, Store};

/// A `Dedupe` over `store` that forgets what is older than `now` and keeps
/// at most `max_bytes` of ids.
fn dedupe(store: &Store, max_bytes: u64) -> Dedupe {
    Dedupe::new(store, Duration::ZERO, max_bytes).unwrap()
}

/// Remembers `ids` in one commit accepted at `at`, as the spool thread
/// does; the ids that were new.
fn remember(store: &mut Store, dedupe: &mut Dedupe, at: i64, ids: &[&str]) -> Vec<String> {
    let mut batch = store.batch().unwrap();
    let mut new_events = batch.new_events();
    let mut new = Vec::new();
    for id in ids {
        if dedupe.remember(id) {
            new_events.store(id, b"{}", at).unwrap();
            new.push(id.to_string());
        }
    }
    new_events.finish(at).unwrap();
    drop(new_events);
    batch.commit().unwrap();
    dedupe.committed();
    new
}

#[test]
fn ids_are_forgotten_a_commit_at_a_time_by_age_then_oldest_first_past_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), Fsync::Never).unwrap();
    let mut ids = dedupe(&store, 100);
    assert_eq!(
        remember(&mut store, &mut ids, 1_000, &["a", "bb", "a"]),
        ["a", "bb"]
    );
    assert_eq!(
        remember(&mut store, &mut ids, 2_000, &["ccc", "a"]),
        ["ccc"]
    );
    assert_eq!(remember(&mut store, &mut ids, 3_000, &["dddd"]), ["dddd"]);
    assert_eq!(remember(&mut store, &mut ids, 4_000, &["eeeee"]), ["eeeee"]);
    assert_eq!(ids.bytes, 15);

    // By age: the first commit only.
    ids.forget(&mut store, 1_500);
    assert_eq!((ids.bytes, ids.evicting), (12, false));

    // Past a bound of 6 bytes: the oldest commits until within it.
    ids.max_bytes = 6;
    ids.forget(&mut store, 1_500);
    assert_eq!(
        (ids.bytes, ids.evicting),
        (5, true),
        "ccc and dddd forgotten early"
    );

    // What is forgotten is new again; what is not, a duplicate.
    assert_eq!(
        remember(&mut store, &mut ids, 5_000, &["a", "ccc", "eeeee"]),
        ["a", "ccc"]
    );

    // Within one commit, the oldest ids only; the rest stay listed.
    remember(&mut store, &mut ids, 6_000, &["f1", "f2", "f3", "f4"]);
    assert_eq!(ids.bytes, 5 + 4 + 8);
    ids.max_bytes = 8;
    ids.forget(&mut store, 0);
    assert_eq!(ids.bytes, 8, "eeeee, a, ccc forgotten");
    ids.max_bytes = 4;
    ids.forget(&mut store, 0);
    assert_eq!(ids.bytes, 4, "f1 and f2 forgotten");
    assert_eq!(
        remember(&mut store, &mut ids, 7_000, &["f2", "f3", "f4"]),
        ["f2"]
    );

    // Read back at start: what is listed, and only that.
    let mut again = dedupe(&store, 100);
    assert_eq!(again.bytes, 6, "f3, f4 and f2");
    assert_eq!(
        remember(
            &mut store,
            &mut again,
            7_500,
            &["f1", "f2", "f3", "f4", "a"]
        ),
        ["f1", "a"]
    );
    again.forget(&mut store, 8_000);
    assert_eq!(again.bytes, 0);
    assert_eq!(
        dedupe(&store, 100).bytes,
        0,
        "the lists of forgotten commits go with them"
    );
}

#[test]
fn a_failed_commit_remembers_none_of_its_ids() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), Fsync::Never).unwrap();
    let mut ids = dedupe(&store, 100);
    remember(&mut store, &mut ids, 1_000, &["kept"]);
    assert!(ids.remember("lost"));
    assert!(!ids.remember("lost"), "a duplicate within the commit");
    assert!(!ids.remember("kept"));
    ids.rolled_back();
    assert_eq!(
        remember(&mut store, &mut ids, 2_000, &["lost", "kept"]),
        ["lost"]
    );
    assert_eq!(ids.bytes, 8);
}

#[test]
fn a_spool_that_kept_ids_in_seen_lists_them_once_and_empties_it() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), Fsync::Never).unwrap());
    let file = dir.path().join(FILE_NAME);
    let raw = rusqlite::Connection::open(&file).unwrap();
    raw.execute_batch(
        "DROP TABLE seen_batches;
         CREATE INDEX seen_by_time ON seen (accepted_at);
         INSERT INTO seen (id, accepted_at) VALUES ('old1', 10), ('old2', 10), ('new', 90);
         UPDATE run SET stopped_at = 1;",
    )
    .unwrap();
    drop(raw);
    let count = |sql: &str| -> i64 {
        let raw = rusqlite::Connection::open(&file).unwrap();
        raw.query_row(sql, [], |row| row.get(0)).unwrap()
    };
    let indexed = "SELECT count(*) FROM sqlite_master WHERE name = 'seen_by_time'";
    // `jobhook deadletter` (no lock) leaves it to the daemon.
    drop(Store::open_existing(dir.path(), Fsync::Never).unwrap());
    assert_eq!(count(indexed), 1, "converted without the lock");
    assert_eq!(count("SELECT count(*) FROM seen"), 3);

    let mut store = Store::open(dir.path(), Fsync::Never).unwrap();
    assert_eq!(count(indexed), 0, "the index is dropped");
    assert_eq!(
        count("SELECT count(*) FROM seen"),
        0,
        "the table is emptied"
    );
    let mut ids = dedupe(&store, 100);
    assert_eq!(ids.bytes, 11);
    ids.forget(&mut store, 50);
    assert_eq!(ids.bytes, 3, "old1 and old2 forgotten by age");
    assert_eq!(
        remember(&mut store, &mut ids, 100, &["old1", "new"]),
        ["old1"]
    );
}
