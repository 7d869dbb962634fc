//! Events stored and not yet in a lane, oldest first: those left from the
//! last run, and new ones accepted while the lanes were full. Only their
//! receipts are kept, as runs of consecutive ones (events accepted together
//! are numbered one after another), so a backlog of a million events on
//! disk takes a few bytes of memory, not a million.

use std::collections::VecDeque;

use crate::spool::protocol::Receipt;

#[derive(Debug, Default)]
pub(super) struct Backlog {
    /// First receipt and length of each run.
    runs: VecDeque<(i64, u64)>,
}

impl Backlog {
    pub(super) fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Adds an event behind the others.
    pub(super) fn push(&mut self, Receipt(seq): Receipt) {
        if let Some((first, length)) = self.runs.back_mut()
            && *first + *length as i64 == seq
        {
            *length += 1;
            return;
        }
        self.runs.push_back((seq, 1));
    }

    /// The oldest event.
    pub(super) fn pop(&mut self) -> Option<Receipt> {
        let (first, length) = self.runs.front_mut()?;
        let seq = *first;
        if *length == 1 {
            self.runs.pop_front();
        } else {
            *first += 1;
            *length -= 1;
        }
        Some(Receipt(seq))
    }
}

impl Extend<Receipt> for Backlog {
    fn extend<T: IntoIterator<Item = Receipt>>(&mut self, receipts: T) {
        receipts.into_iter().for_each(|receipt| self.push(receipt));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_come_out_in_order_and_consecutive_ones_share_a_run() {
        let mut backlog = Backlog::default();
        backlog.extend([1, 2, 3, 7, 8, 4].map(Receipt));
        assert_eq!(backlog.runs.len(), 3);
        let out: Vec<i64> = std::iter::from_fn(|| backlog.pop()).map(|r| r.0).collect();
        assert_eq!(out, [1, 2, 3, 7, 8, 4]);
        assert!(backlog.is_empty());
    }
}
