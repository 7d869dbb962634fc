//! Packs: the new events of a group commit stored as one row of
//! `event_packs` — their bodies end to end, and where each ends — rather
//! than a row each. Events finish one by one, so which of a pack's events
//! are gone is a bitmap in `pack_gone`; the pack's row is deleted with the
//! last of them.
//!
//! A row per event cost the file chain a B-tree insert and a delete per
//! event, and writing each leaf page to the log twice (README, "Current
//! figures"). A pack is written once, as overflow pages, and freed whole.
//!
//! An event's seq is its pack's first seq plus its place in the pack. An
//! event a handler changed, or one waiting for a retry, leaves its pack
//! for a row of `events` (its bit is set, the row is read instead); events
//! that come one at a time (queue events, replays) are stored as rows from
//! the start. `events` rows win over pack slots.

use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params};

/// A pack is written once its bodies reach this size (and at the end of
/// the commit): about 200 events of 300 bytes. Larger packs save little
/// more per event and hold more memory while filled, and more disk while
/// one of their events is still in the lanes.
const PACK_BYTES: usize = 64 * 1024;

/// The pack holding a seq, if one does: its first seq, event count and
/// bytes of bodies (read from the row's header: its overflow pages are not).
const PACK_OF: &str = "SELECT first_seq, count, length(bodies), accepted_at FROM event_packs \
                       WHERE first_seq <= ?1 ORDER BY first_seq DESC LIMIT 1";

/// The packs holding seqs from ?1 to ?2, with their gone bits (their
/// bodies are read once each, [`ReadBack`]).
const PACKS_BETWEEN: &str = "SELECT p.first_seq, p.count, g.bits \
     FROM event_packs p LEFT JOIN pack_gone g ON g.first_seq = p.first_seq \
     WHERE p.first_seq <= ?2 AND p.first_seq >= coalesce(\
         (SELECT max(first_seq) FROM event_packs WHERE first_seq <= ?1), ?1) \
     ORDER BY p.first_seq";

/// The last pack read back, whole. The lanes take the backlog's events a
/// few at a time as they make room, so a pack is read in many pieces, and
/// each read of its bodies looked every page of it up in SQLite's index of
/// the log: the largest cost of the Lua chain (README, "Current figures").
/// A pack's ends and bodies never change once written, and a seq is not
/// given to another pack while the daemon runs, so what is kept stays
/// true; which of its events are gone is read each time.
#[derive(Debug, Default)]
pub(super) struct ReadBack {
    first: Option<i64>,
    ends: Vec<u8>,
    bodies: Vec<u8>,
}

impl ReadBack {
    /// Holds the pack at `first`, reading it unless held already.
    fn hold(&mut self, connection: &Connection, first: i64) -> rusqlite::Result<()> {
        if self.first == Some(first) {
            return Ok(());
        }
        self.first = None;
        connection
            .prepare_cached("SELECT ends, bodies FROM event_packs WHERE first_seq = ?1")?
            .query_row([first], |row| {
                for (at, kept) in [(0, &mut self.ends), (1, &mut self.bodies)] {
                    kept.clear();
                    // A pack of large events is not held while idle.
                    kept.shrink_to(2 * PACK_BYTES);
                    kept.extend_from_slice(blob(row, at)?);
                }
                Ok(())
            })?;
        self.first = Some(first);
        Ok(())
    }

    /// The body of the held pack's event `at`.
    fn slot(&self, at: usize) -> rusqlite::Result<&[u8]> {
        let end_at = |at: usize| {
            let end = self.ends.get(at * 4..at * 4 + 4)?;
            Some(u32::from_le_bytes(end.try_into().ok()?) as usize)
        };
        let start = if at == 0 { Some(0) } else { end_at(at - 1) };
        start
            .zip(end_at(at))
            .and_then(|(start, end)| self.bodies.get(start..end))
            .ok_or_else(|| damaged(self.first.unwrap_or_default(), "ends"))
    }

    /// The body `pack` holds for `seq`, read whole (held for the next).
    pub(super) fn body(
        &mut self,
        connection: &Connection,
        pack: &Pack,
        seq: i64,
    ) -> rusqlite::Result<Vec<u8>> {
        self.hold(connection, pack.first)?;
        self.slot((seq - pack.first) as usize).map(<[u8]>::to_vec)
    }
}

/// The pack being filled, and the next seq to give out. Kept by the store
/// from one commit to the next, so that its buffers are not given back to
/// the allocator and faulted in again at every commit.
#[derive(Debug, Default)]
pub(super) struct Packing {
    /// The next seq, for a pack's event or a row of `events` alike: seqs
    /// are not reused while the daemon runs.
    next_seq: i64,
    first: i64,
    bodies: Vec<u8>,
    /// Where each body ends in `bodies`, as little-endian `u32`s.
    ends: Vec<u8>,
}

impl Packing {
    /// Starts from what the spool holds: seqs go on after the highest.
    pub(super) fn resume(connection: &Connection) -> rusqlite::Result<Packing> {
        let highest: i64 = connection.query_row(
            "SELECT max(coalesce((SELECT max(seq) FROM events), 0), coalesce(\
             (SELECT first_seq + count - 1 FROM event_packs ORDER BY first_seq DESC LIMIT 1), 0))",
            [],
            |row| row.get(0),
        )?;
        Ok(Packing {
            next_seq: highest + 1,
            ..Packing::default()
        })
    }

    /// A seq for a row of `events`.
    pub(super) fn take_seq(&mut self) -> i64 {
        self.next_seq += 1;
        self.next_seq - 1
    }

    /// Adds an event to the pack being filled, writing the pack first when
    /// it is full: the event's seq.
    pub(super) fn add(
        &mut self,
        connection: &Connection,
        body: &[u8],
        now: i64,
    ) -> rusqlite::Result<i64> {
        // A pack's seqs follow each other: no seq is taken for a row while
        // a commit stores its events (its `Batch` holds the store).
        if self.bodies.len() >= PACK_BYTES {
            self.write(connection, now)?;
        }
        if self.ends.is_empty() {
            self.first = self.next_seq;
        }
        self.bodies.extend_from_slice(body);
        let end = u32::try_from(self.bodies.len()).expect("a pack is far below 4 GiB");
        self.ends.extend_from_slice(&end.to_le_bytes());
        Ok(self.take_seq())
    }

    /// Writes the pack being filled, if it holds any event.
    pub(super) fn write(&mut self, connection: &Connection, now: i64) -> rusqlite::Result<()> {
        if self.ends.is_empty() {
            return Ok(());
        }
        let count = self.ends.len() / 4;
        let written = connection
            .prepare_cached(
                "INSERT INTO event_packs (first_seq, count, accepted_at, ends, bodies) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                self.first,
                count as i64,
                now,
                self.ends,
                self.bodies
            ]);
        self.forget();
        written.map(drop)
    }

    /// Drops the pack being filled (its commit failed or was written).
    pub(super) fn forget(&mut self) {
        self.bodies.clear();
        self.ends.clear();
        // What a commit of large events left is not held while idle.
        self.bodies.shrink_to(2 * PACK_BYTES);
    }
}

/// A stored pack's place and size.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pack {
    pub(super) first: i64,
    count: usize,
    pub(super) bytes: i64,
    pub(super) accepted_at: i64,
}

/// What finishing some of a pack's events did.
#[derive(Debug, Default)]
pub(super) struct Finished {
    /// Events that were live in the pack.
    pub(super) events: u64,
    /// Bytes of the pack's bodies, when it went with its last event.
    pub(super) freed: i64,
}

impl Pack {
    /// The pack that holds `seq`, if one does.
    pub(super) fn of(connection: &Connection, seq: i64) -> rusqlite::Result<Option<Pack>> {
        let pack = connection
            .prepare_cached(PACK_OF)?
            .query_row([seq], |row| {
                let first = row.get(0)?;
                Ok(Pack {
                    first,
                    count: count(first, row.get(1)?)?,
                    bytes: row.get(2)?,
                    accepted_at: row.get(3)?,
                })
            })
            .optional()?;
        Ok(pack.filter(|pack| seq < pack.end()))
    }

    /// The seq after its last event.
    pub(super) fn end(&self) -> i64 {
        self.first + self.count as i64
    }

    /// Marks `seqs` (in the pack, ascending) gone; deletes the pack when
    /// none is left. Those already gone are pushed to `moved`: they left
    /// the pack for a row of `events` ([`Pack::take_out`]).
    pub(super) fn finish(
        &self,
        connection: &Connection,
        seqs: impl Iterator<Item = i64>,
        moved: &mut Vec<i64>,
    ) -> rusqlite::Result<Finished> {
        let mut bits = self.gone(connection)?;
        let mut finished = Finished::default();
        for seq in seqs {
            if set(&mut bits, seq - self.first) {
                finished.events += 1;
            } else {
                moved.push(seq);
            }
        }
        if finished.events > 0 {
            finished.freed = self.store_gone(connection, &bits)?;
        }
        Ok(finished)
    }

    /// Marks `seq` gone from the pack, as it moves to a row of `events`
    /// with the body `body` gives (called before the pack may go): that
    /// body and the bytes freed (the pack's, when it was the last event
    /// left), or `None` when it was gone already.
    pub(super) fn take_out<B>(
        &self,
        connection: &Connection,
        seq: i64,
        body: impl FnOnce() -> rusqlite::Result<B>,
    ) -> rusqlite::Result<Option<(B, i64)>> {
        let mut bits = self.gone(connection)?;
        if !set(&mut bits, seq - self.first) {
            return Ok(None);
        }
        let body = body()?;
        let freed = self.store_gone(connection, &bits)?;
        Ok(Some((body, freed)))
    }

    /// The pack's gone bits, one per event (none set when it has no row).
    fn gone(&self, connection: &Connection) -> rusqlite::Result<Vec<u8>> {
        let bits: Option<Vec<u8>> = connection
            .prepare_cached("SELECT bits FROM pack_gone WHERE first_seq = ?1")?
            .query_row([self.first], |row| row.get(0))
            .optional()?;
        let mut bits = bits.unwrap_or_default();
        bits.resize(self.count.div_ceil(8), 0);
        Ok(bits)
    }

    /// Writes the pack's gone bits, or deletes the pack when none of its
    /// events is left: the bytes freed.
    fn store_gone(&self, connection: &Connection, bits: &[u8]) -> rusqlite::Result<i64> {
        let gone: u32 = bits.iter().map(|byte| byte.count_ones()).sum();
        if gone as usize == self.count {
            for table in ["event_packs", "pack_gone"] {
                connection
                    .prepare_cached(&format!("DELETE FROM {table} WHERE first_seq = ?1"))?
                    .execute([self.first])?;
            }
            return Ok(self.bytes);
        }
        connection
            .prepare_cached("INSERT OR REPLACE INTO pack_gone (first_seq, bits) VALUES (?1, ?2)")?
            .execute(params![self.first, bits])?;
        Ok(0)
    }
}

/// A pack's event count as stored, checked: a damaged row's is an error,
/// not a count to allocate for.
fn count(first: i64, stored: i64) -> rusqlite::Result<usize> {
    usize::try_from(stored)
        .ok()
        .filter(|count| *count > 0)
        .ok_or_else(|| damaged(first, "count"))
}

/// Sets bit `at`; false when it was set already.
fn set(bits: &mut [u8], at: i64) -> bool {
    let (byte, mask) = ((at / 8) as usize, 1u8 << (at % 8));
    let was = bits[byte] & mask != 0;
    bits[byte] |= mask;
    !was
}

fn is_set(bits: &[u8], at: usize) -> bool {
    bits.get(at / 8)
        .is_some_and(|byte| byte & (1 << (at % 8)) != 0)
}

/// The events of the packs that hold seqs from `first` to `last` and are
/// not gone, as (seq, body), ascending.
pub(super) fn bodies_between(
    connection: &Connection,
    read_back: &mut ReadBack,
    first: i64,
    last: i64,
    mut each: impl FnMut(i64, &[u8]),
) -> rusqlite::Result<()> {
    let mut statement = connection.prepare_cached(PACKS_BETWEEN)?;
    let mut rows = statement.query([first, last])?;
    while let Some(row) = rows.next()? {
        let pack_first: i64 = row.get(0)?;
        let count = count(pack_first, row.get(1)?)?;
        let bits = blob(row, 2)?;
        read_back.hold(connection, pack_first)?;
        let from = usize::try_from(first - pack_first).unwrap_or(0);
        let to = usize::try_from(last - pack_first).map_or(0, |to| count.min(to + 1));
        for at in (from..to).filter(|at| !is_set(bits, *at)) {
            each(pack_first + at as i64, read_back.slot(at)?);
        }
    }
    Ok(())
}

/// The seqs of every event in a pack and not gone, ascending.
pub(super) fn live_in_packs(connection: &Connection) -> rusqlite::Result<Vec<i64>> {
    let mut statement = connection.prepare(
        "SELECT p.first_seq, p.count, g.bits FROM event_packs p \
         LEFT JOIN pack_gone g ON g.first_seq = p.first_seq ORDER BY p.first_seq",
    )?;
    let mut rows = statement.query([])?;
    let mut live = Vec::new();
    while let Some(row) = rows.next()? {
        let first: i64 = row.get(0)?;
        let count = count(first, row.get(1)?)?;
        let bits = blob(row, 2)?;
        live.extend(
            (0..count)
                .filter(|at| !is_set(bits, *at))
                .map(|at| first + at as i64),
        );
    }
    Ok(live)
}

/// Column `at` of `row` as bytes, without copying them (empty for NULL).
fn blob<'r>(row: &'r Row, at: usize) -> rusqlite::Result<&'r [u8]> {
    row.get_ref(at)?
        .as_blob_or_null()
        .map(Option::unwrap_or_default)
        .map_err(|err| rusqlite::Error::FromSqlConversionFailure(at, Type::Blob, Box::new(err)))
}

/// A pack whose `column` cannot be right: read as a damaged row.
fn damaged(first: i64, column: &str) -> rusqlite::Error {
    let cause = format!("the pack of events from seq {first} has a damaged {column}");
    rusqlite::Error::FromSqlConversionFailure(0, Type::Blob, cause.into())
}

#[cfg(test)]
mod tests;
