//! Where a JobHistory source stands: the newest record it has looked at,
//! and the records at or below it whose job had not finished yet. It is
//! committed with the events it produced (see `crate::spool`), as JSON.
//!
//! Records are looked at in `JobHistoryId` order, but a job that started
//! earlier may finish later: a record still `InProcess` is kept open and
//! asked for again at every look until it has finished, never skipped.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::record;
use crate::sources::settings::Start;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The `start` setting this cursor began from (`now`, `all` or an id):
    /// when the setting changes, the source begins again from it.
    start: String,
    /// The highest `JobHistoryId` looked at.
    after: i64,
    /// `JobHistoryId`s at or below `after` whose job had not finished.
    open: BTreeSet<i64>,
}

impl Cursor {
    /// A cursor that begins after `after`, as `start` says.
    pub fn new(start: Start, after: i64) -> Cursor {
        Cursor {
            start: start.into(),
            after,
            open: BTreeSet::new(),
        }
    }

    /// Reads a cursor the spool kept; `None` if it is not one.
    pub fn parse(text: &str) -> Option<Cursor> {
        serde_json::from_str(text).ok()
    }

    pub fn text(&self) -> String {
        serde_json::to_string(self).expect("a cursor serialises")
    }

    /// Whether it began from `start` (else the setting changed since).
    pub fn began_from(&self, start: Start) -> bool {
        self.start == String::from(start)
    }

    pub fn after(&self) -> i64 {
        self.after
    }

    /// The records to look at again, oldest first.
    pub fn open(&self) -> Vec<i64> {
        self.open.iter().copied().collect()
    }

    /// Takes a page of records asked for after [`Cursor::after`]: returns
    /// the finished ones (with their ids) in id order and keeps the others
    /// open. Records it did not ask for (at or below `after`) are left out.
    pub fn take_new(&mut self, records: Vec<Value>) -> Vec<(i64, Value)> {
        let mut new: Vec<(i64, Value)> = records
            .into_iter()
            .filter_map(|record| Some((record::id(&record)?, record)))
            .filter(|(id, _)| *id > self.after)
            .collect();
        new.sort_by_key(|(id, _)| *id);
        new.dedup_by_key(|(id, _)| *id);
        let mut finished = Vec::with_capacity(new.len());
        for (id, record) in new {
            self.after = id;
            if record::finished(&record) {
                finished.push((id, record));
            } else {
                self.open.insert(id);
            }
        }
        finished
    }

    /// Takes open records looked at again: returns those that finished (in
    /// id order), which leave the open set. A record not returned stays open.
    pub fn take_reopened(&mut self, records: Vec<Value>) -> Vec<(i64, Value)> {
        let mut finished: Vec<(i64, Value)> = records
            .into_iter()
            .filter(record::finished)
            .filter_map(|record| Some((record::id(&record)?, record)))
            .filter(|(id, _)| self.open.remove(id))
            .collect();
        finished.sort_by_key(|(id, _)| *id);
        finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(id: i64, status: &str) -> Value {
        json!({"JobHistoryId": id, "Status": status})
    }

    fn ids(taken: &[(i64, Value)]) -> Vec<i64> {
        taken.iter().map(|(id, _)| *id).collect()
    }

    #[test]
    fn an_unfinished_record_stays_open_until_it_finishes() {
        let mut cursor = Cursor::new(Start::All, 0);
        let page = vec![
            record(3, "Completed"),
            record(1, "InProcess"),
            record(2, "Completed"),
        ];
        assert_eq!(ids(&cursor.take_new(page)), [2, 3]);
        assert_eq!((cursor.after(), cursor.open()), (3, vec![1]));
        // Still running: stays open; a record not asked for is ignored.
        assert!(
            cursor
                .take_reopened(vec![record(1, "InProcess"), record(2, "Completed")])
                .is_empty()
        );
        assert_eq!(cursor.open(), [1]);
        assert_eq!(
            ids(&cursor.take_reopened(vec![record(1, "Completed")])),
            [1]
        );
        assert!(cursor.open().is_empty());
    }

    #[test]
    fn records_at_or_below_the_cursor_are_not_taken_again() {
        let mut cursor = Cursor::new(Start::After(10), 10);
        assert_eq!(
            ids(&cursor.take_new(vec![
                record(9, "Completed"),
                record(10, "Completed"),
                record(11, "Completed")
            ])),
            [11]
        );
    }

    #[test]
    fn survives_its_text_and_knows_where_it_began() {
        let mut cursor = Cursor::new(Start::Now, 41);
        cursor.take_new(vec![record(42, "InProcess")]);
        let back = Cursor::parse(&cursor.text()).unwrap();
        assert_eq!(back, cursor);
        assert!(back.began_from(Start::Now));
        assert!(!back.began_from(Start::All));
        assert!(Cursor::parse("not json").is_none());
    }
}
