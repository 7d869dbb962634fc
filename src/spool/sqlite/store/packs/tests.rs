//! Packs through the store's own methods: stored by a commit, read back,
//! finished a few at a time, changed by a handler, and found again by a
//! restart.

use std::collections::HashSet;
use std::path::Path;

use super::PACK_BYTES;
use crate::spool::Fsync;
use crate::spool::protocol::{Receipt, Record, Retry, StageDone};
use crate::spool::sqlite::store::{Store, Unfinished};

/// Events of about 300 bytes, as the load tool sends.
fn bodies(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| format!(r#"{{"Id":"e{i}","Pad":"{}"}}"#, "x".repeat(280)).into_bytes())
        .collect()
}

/// Stores `bodies` in one commit: their receipts.
fn commit(store: &mut Store, bodies: &[Vec<u8>]) -> Vec<Receipt> {
    let mut batch = store.batch().unwrap();
    let mut new_events = batch.new_events();
    let receipts = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| new_events.store(&format!("e{i}"), body, 1).unwrap())
        .collect();
    new_events.finish(1).unwrap();
    drop(new_events);
    batch.commit().unwrap();
    receipts
}

/// `count` events stored in one commit, one pack: their bodies, receipts
/// and the pack's bytes.
fn one_pack(store: &mut Store, count: usize) -> (Vec<Vec<u8>>, Vec<Receipt>, i64) {
    let sent = bodies(count);
    let receipts = commit(store, &sent);
    let bytes = sent.iter().map(|body| body.len() as i64).sum();
    (sent, receipts, bytes)
}

/// Finishes `receipts` in one commit: (events, bytes) deleted.
fn finish(store: &mut Store, receipts: &[Receipt]) -> (u64, i64) {
    let batch = store.batch().unwrap();
    let deleted = batch.delete_events(&mut receipts.to_vec()).unwrap();
    batch.commit().unwrap();
    (deleted.events, deleted.bytes)
}

/// The bodies read back for `receipts` (`None` for one not in the spool).
fn read(store: &Store, receipts: &[Receipt]) -> Vec<Option<Vec<u8>>> {
    store
        .load_all(receipts, &HashSet::new())
        .into_iter()
        .map(|loaded| loaded.unwrap().map(|stored| stored.body))
        .collect()
}

/// A handler's change of `receipt` to `body`, in a commit of its own: by
/// how many bytes the pending events grew.
fn change(store: &mut Store, receipt: Receipt, body: &[u8]) -> i64 {
    apply(
        store,
        Record::StageDone(StageDone {
            receipt,
            stage: "script".to_owned(),
            changed: Some(body.to_vec().into()),
        }),
    )
}

/// `record` applied in a commit of its own: by how many bytes the pending
/// events grew.
fn apply(store: &mut Store, record: Record) -> i64 {
    let mut grown = 0;
    let batch = store.batch().unwrap();
    batch.apply(&record, 1, false, &mut grown).unwrap();
    batch.commit().unwrap();
    grown
}

/// Where a start finds the events not finished.
fn unfinished(store: &Store) -> Unfinished {
    store.unfinished(store.live_seqs().unwrap()).unwrap()
}

fn rows(store: &Store, table: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM {table}");
    store
        .connection
        .query_row(&sql, [], |row| row.get(0))
        .unwrap()
}

/// A new spool in a directory of its own.
fn new_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Fsync::Never).unwrap();
    (dir, store)
}

fn reopen(store: Store, dir: &Path) -> Store {
    drop(store);
    Store::open(dir, Fsync::Never).unwrap()
}

#[test]
fn a_commit_larger_than_a_pack_fills_several_read_back_whole_beside_rows() {
    let (_dir, mut store) = new_store();
    let sent = bodies(1000);
    let mut receipts = commit(&mut store, &sent);
    let total: usize = sent.iter().map(Vec::len).sum();
    // Each pack but the last is written once it holds PACK_BYTES or more.
    let sizes: Vec<usize> = store
        .connection
        .prepare("SELECT length(bodies) FROM event_packs ORDER BY first_seq")
        .unwrap()
        .query_map([], |row| row.get::<_, i64>(0))
        .unwrap()
        .map(|size| size.unwrap() as usize)
        .collect();
    let (last, full) = sizes.split_last().unwrap();
    assert!(full.len() >= 3, "{sizes:?}");
    assert!(
        full.iter()
            .all(|size| (PACK_BYTES..PACK_BYTES + 400).contains(size)),
        "{sizes:?}"
    );
    assert!(
        *last <= PACK_BYTES + 400 && sizes.iter().sum::<usize>() == total,
        "{sizes:?}"
    );
    assert!(receipts.windows(2).all(|pair| pair[1].0 == pair[0].0 + 1));
    // An event that comes alone has a row, and a seq after the packs'.
    let alone = store.insert_event("alone", b"{}", 1).unwrap();
    assert_eq!(alone.0, receipts[999].0 + 1);
    receipts.push(alone);

    let mut expected: Vec<Option<Vec<u8>>> = sent.into_iter().map(Some).collect();
    expected.push(Some(b"{}".to_vec()));
    assert_eq!(read(&store, &receipts), expected);
    // Out of order and one at a time, as due retries are read.
    let few = [receipts[999], receipts[0], receipts[1000], receipts[500]];
    let few_expected: Vec<_> = [999, 0, 1000, 500]
        .iter()
        .map(|&i| expected[i].clone())
        .collect();
    assert_eq!(read(&store, &few), few_expected);
    assert_eq!(store.pending().unwrap(), 1001);
    assert_eq!(store.pending_bytes().unwrap(), total as u64 + 2);
}

#[test]
fn finished_events_leave_their_pack_which_goes_with_the_last_and_a_restart_agrees() {
    let (dir, mut store) = new_store();
    let sent = bodies(600);
    let receipts = commit(&mut store, &sent);
    let total: i64 = sent.iter().map(|body| body.len() as i64).sum();
    let (even, odd): (Vec<Receipt>, Vec<Receipt>) =
        receipts.iter().partition(|receipt| receipt.0 % 2 == 0);

    // Every pack keeps events: none of their bytes is freed yet.
    assert_eq!(finish(&mut store, &even), (even.len() as u64, 0));
    assert_eq!(finish(&mut store, &even), (0, 0), "counted twice");
    let read_back = read(&store, &receipts);
    for (receipt, body) in receipts.iter().zip(&read_back) {
        assert_eq!(body.is_some(), odd.contains(receipt), "{receipt:?}");
    }

    let mut store = reopen(store, dir.path());
    let resumed = unfinished(&store);
    assert_eq!(resumed.to_run, odd);
    assert_eq!(store.pending().unwrap(), odd.len() as u64);
    assert_eq!(store.pending_bytes().unwrap(), total as u64);
    let after = commit(&mut store, &bodies(1));
    assert!(
        after[0].0 > receipts[599].0,
        "a live event's seq given again"
    );

    assert_eq!(finish(&mut store, &odd), (odd.len() as u64, total));
    assert_eq!(rows(&store, "pack_gone"), 0);
    assert_eq!(
        rows(&store, "event_packs"),
        1,
        "only the last commit's pack"
    );
    assert_eq!(unfinished(&store).to_run, after);
}

#[test]
fn a_changed_event_leaves_its_pack_for_a_row_and_is_read_as_changed() {
    let (dir, mut store) = new_store();
    let sent = bodies(3);
    let receipts = commit(&mut store, &sent);
    let changed = br#"{"Id":"e1","Changed":true}"#;
    let grown = change(&mut store, receipts[1], changed);
    assert_eq!(grown, changed.len() as i64, "the pack keeps its bytes");

    let mut store = reopen(store, dir.path());
    assert_eq!(unfinished(&store).to_run, receipts);
    assert_eq!(store.pending().unwrap(), 3);
    let expected = [&sent[0][..], changed, &sent[2][..]].map(|body| Some(body.to_vec()));
    assert_eq!(read(&store, &receipts), expected);
    // Changed again: its row is changed, not taken out anew.
    let again = br#"{"Id":"e1","Changed":2}"#;
    let grown = change(&mut store, receipts[1], again);
    assert_eq!(grown, again.len() as i64 - changed.len() as i64);
    assert_eq!(read(&store, &receipts[1..2]), [Some(again.to_vec())]);

    let pack_bytes: i64 = sent.iter().map(|body| body.len() as i64).sum();
    let all = finish(&mut store, &receipts);
    assert_eq!(all, (3, pack_bytes + again.len() as i64));
    assert_eq!(
        [
            rows(&store, "events"),
            rows(&store, "event_packs"),
            rows(&store, "pack_gone")
        ],
        [0, 0, 0]
    );
    assert_eq!(
        (store.pending().unwrap(), store.pending_bytes().unwrap()),
        (0, 0)
    );
}

#[test]
fn a_damaged_pack_fails_its_own_events_and_no_other() {
    let (_dir, mut store) = new_store();
    let first = commit(&mut store, &bodies(2));
    let second = commit(&mut store, &bodies(2));
    // Its first event ends far past its bodies.
    store
        .connection
        .execute(
            "UPDATE event_packs SET ends = CAST(x'ffffff7f' || substr(ends, 5) AS BLOB) \
             WHERE first_seq = ?1",
            [first[0].0],
        )
        .unwrap();
    let receipts = [first.clone(), second].concat();
    let loaded = store.load_all(&receipts, &HashSet::new());
    let read: Vec<bool> = loaded.iter().map(|loaded| loaded.is_ok()).collect();
    assert_eq!(read, [false, false, true, true]);
    let Err(err) = &loaded[0] else { unreachable!() };
    assert!(
        err.to_string().contains(&format!(
            "pack of events from seq {} has a damaged ends",
            first[0].0
        )),
        "{err}"
    );
}

#[test]
fn a_pack_read_back_in_pieces_never_gives_an_event_finished_since() {
    let (_dir, mut store) = new_store();
    let sent = bodies(10);
    let receipts = commit(&mut store, &sent);
    let later = commit(&mut store, &bodies(1));
    let some: Vec<Option<Vec<u8>>> = sent[..4].iter().cloned().map(Some).collect();
    assert_eq!(read(&store, &receipts[..4]), some);

    // Held whole since the read above: its gone bits are still read.
    finish(&mut store, &receipts[1..3]);
    assert_eq!(
        read(&store, &receipts[..4]),
        [some[0].clone(), None, None, some[3].clone()]
    );
    assert_eq!(read(&store, &later), [Some(bodies(1).remove(0))]);
    // Gone with its last event, as held or not.
    assert_eq!(read(&store, &receipts[4..5]), [Some(sent[4].clone())]);
    finish(&mut store, &receipts);
    assert_eq!(read(&store, &receipts[..10]), vec![None; 10]);
    assert_eq!(rows(&store, "event_packs"), 1);
}

#[test]
fn an_event_waiting_for_a_retry_leaves_its_pack_which_goes_with_the_others() {
    let (dir, mut store) = new_store();
    let (sent, receipts, pack_bytes) = one_pack(&mut store, 3);
    let retry = |attempts| {
        Record::Retry(Retry {
            receipt: receipts[1],
            stage: "sink".to_owned(),
            attempts,
            first_attempt: 1,
            due: 2,
        })
    };
    assert_eq!(apply(&mut store, retry(1)), sent[1].len() as i64);
    // Its second retry: it is in a row already.
    assert_eq!(apply(&mut store, retry(2)), 0);

    // The others through: the pack goes, and the waiting event stays.
    assert_eq!(
        finish(&mut store, &[receipts[0], receipts[2]]),
        (2, pack_bytes)
    );
    assert_eq!(rows(&store, "event_packs"), 0);
    assert_eq!(read(&store, &receipts), [None, Some(sent[1].clone()), None]);
    let mut store = reopen(store, dir.path());
    assert_eq!(
        (store.pending().unwrap(), store.pending_bytes().unwrap()),
        (1, sent[1].len() as u64)
    );
    assert_eq!(unfinished(&store).waiting, [(2, receipts[1])]);
    assert_eq!(
        finish(&mut store, &receipts[1..2]),
        (1, sent[1].len() as i64)
    );
    assert_eq!(rows(&store, "events"), 0);
}

#[test]
fn a_pack_whose_events_all_left_for_rows_goes_with_the_last() {
    let (_dir, mut store) = new_store();
    let (_, receipts, pack_bytes) = one_pack(&mut store, 2);
    let changed = br#"{"Id":"changed"}"#;
    assert_eq!(
        change(&mut store, receipts[0], changed),
        changed.len() as i64
    );
    assert_eq!(
        change(&mut store, receipts[1], changed),
        changed.len() as i64 - pack_bytes
    );
    assert_eq!(
        [rows(&store, "event_packs"), rows(&store, "pack_gone")],
        [0, 0]
    );
    assert_eq!(store.pending_bytes().unwrap(), 2 * changed.len() as u64);
    assert_eq!(
        read(&store, &receipts),
        [Some(changed.to_vec()), Some(changed.to_vec())]
    );
}
