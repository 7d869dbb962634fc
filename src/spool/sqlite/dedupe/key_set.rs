//! The set of dedupe keys, packed: 11 bytes a key in slots kept 68% to
//! 85% full, against 13 bytes in tables kept 44% to 87% full by `HashSet`
//! (about 14 bytes an id instead of 21 on average: a million ids in some
//! 13 MiB of tables instead of 20).
//!
//! The keys are keyed hashes already, so a key's own bytes place it: the
//! first byte of its second hash picks one of [`SHARDS`] tables (and is
//! not stored), its first hash its home slot there. Each table is open addressing with
//! linear probing, Robin Hood style: a key moving in takes the place of one
//! nearer its home, so every key stays close to its own, a search stops
//! at the first key nearer its home than the one looked for would be, and a
//! removal shifts the keys after it back instead of leaving a tombstone.
//! A table grows by a quarter when 85% full and shrinks when under 30%
//! full (a `HashSet` keeps its room once it has grown): each regrowth
//! copies only its table, 1/256 of the keys.

use super::Key;

/// Tables, one for each value of the key's byte that picks them.
const SHARDS: usize = 256;

/// A key as a table holds it: all but the byte that picked the table.
type Slot = [u8; 11];

/// An empty slot. A key whose stored bytes are all zero is stored with its
/// last bit set instead: it then shares its slot value with one other key
/// in 2^88, a chance far below the 96-bit hash's own (`dedupe.rs`).
const EMPTY: Slot = [0; 11];

/// The fewest slots a table has once it holds a key.
const MIN_SLOTS: usize = 8;

/// The keys remembered.
pub(super) struct KeySet(Box<[Table]>);

impl Default for KeySet {
    fn default() -> KeySet {
        KeySet((0..SHARDS).map(|_| Table::default()).collect())
    }
}

impl KeySet {
    /// Whether `key` is new (it is in the set from now on).
    pub(super) fn insert(&mut self, key: Key) -> bool {
        let (table, slot) = self.locate(&key);
        table.insert(slot)
    }

    /// Whether `key` was in the set (it is not any more).
    pub(super) fn remove(&mut self, key: &Key) -> bool {
        let (table, slot) = self.locate(key);
        table.remove(&slot)
    }

    /// The table `key` goes in, and its slot value there.
    fn locate(&mut self, key: &Key) -> (&mut Table, Slot) {
        let Key(first, [pick, rest @ ..]) = *key;
        let mut slot = EMPTY;
        slot[..8].copy_from_slice(&first);
        slot[8..].copy_from_slice(&rest);
        if slot == EMPTY {
            slot[10] = 1;
        }
        (&mut self.0[usize::from(pick)], slot)
    }
}

/// One table: `slots` with `len` of them taken.
#[derive(Default)]
struct Table {
    slots: Vec<Slot>,
    len: usize,
}

impl Table {
    fn insert(&mut self, slot: Slot) -> bool {
        if (self.len + 1) * 20 > self.slots.len() * 17 {
            self.resize((self.slots.len() + self.slots.len() / 4).max(MIN_SLOTS));
        }
        let new = self.place(slot);
        self.len += usize::from(new);
        new
    }

    /// Puts `slot` in its place, unless it is there already: whether it
    /// was not. There is an empty slot.
    fn place(&mut self, slot: Slot) -> bool {
        let mut at = self.home(&slot);
        let mut distance = 0;
        loop {
            let resident = self.slots[at];
            if resident == EMPTY {
                self.slots[at] = slot;
                return true;
            }
            if resident == slot {
                return false;
            }
            // Past a key nearer its home than `slot` is to its own, `slot`
            // cannot be: it takes this place and the key moves on.
            let theirs = self.distance(&resident, at);
            if theirs < distance {
                self.slots[at] = slot;
                return self.carry(resident, at, theirs);
            }
            at = self.next(at);
            distance += 1;
        }
    }

    /// Moves `slot`, put out of `at`, on to a place further along.
    fn carry(&mut self, mut slot: Slot, mut at: usize, mut distance: usize) -> bool {
        loop {
            at = self.next(at);
            distance += 1;
            let resident = self.slots[at];
            if resident == EMPTY {
                self.slots[at] = slot;
                return true;
            }
            let theirs = self.distance(&resident, at);
            if theirs < distance {
                self.slots[at] = slot;
                slot = resident;
                distance = theirs;
            }
        }
    }

    fn remove(&mut self, slot: &Slot) -> bool {
        if self.len == 0 {
            return false;
        }
        let mut at = self.home(slot);
        let mut distance = 0;
        loop {
            let resident = self.slots[at];
            if resident == EMPTY || self.distance(&resident, at) < distance {
                return false;
            }
            if resident == *slot {
                break;
            }
            at = self.next(at);
            distance += 1;
        }
        // The keys after it that are not at home move back a place.
        loop {
            let next = self.next(at);
            let resident = self.slots[next];
            if resident == EMPTY || self.distance(&resident, next) == 0 {
                self.slots[at] = EMPTY;
                break;
            }
            self.slots[at] = resident;
            at = next;
        }
        self.len -= 1;
        if self.len * 10 < self.slots.len() * 3 && self.slots.len() > MIN_SLOTS {
            self.resize((self.len * 10 / 7 + 1).max(MIN_SLOTS));
        }
        true
    }

    /// Moves the keys into `slots` new slots.
    fn resize(&mut self, slots: usize) {
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; slots]);
        for slot in old.into_iter().filter(|slot| *slot != EMPTY) {
            self.place(slot);
        }
    }

    /// Where `slot` would be if nothing were in the way: its first eight
    /// bytes, uniform, scaled to the table's size.
    fn home(&self, slot: &Slot) -> usize {
        let mut first = [0; 8];
        first.copy_from_slice(&slot[..8]);
        ((u128::from(u64::from_le_bytes(first)) * self.slots.len() as u128) >> 64) as usize
    }

    /// How far past its home the key at `at` is.
    fn distance(&self, slot: &Slot, at: usize) -> usize {
        let home = self.home(slot);
        if at >= home {
            at - home
        } else {
            at + self.slots.len() - home
        }
    }

    fn next(&self, at: usize) -> usize {
        if at + 1 == self.slots.len() {
            0
        } else {
            at + 1
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::super::{Key, Keys};
    use super::{KeySet, SHARDS};

    /// Keys and the bytes of their tables' slots, per key.
    fn bytes_per_key(set: &KeySet) -> f64 {
        let keys: usize = set.0.iter().map(|table| table.len).sum();
        let slots: usize = set.0.iter().map(|table| table.slots.len()).sum();
        (slots * 11) as f64 / keys as f64
    }

    #[test]
    fn keys_spread_over_the_tables_and_each_is_found_in_its_own() {
        let keys = Keys::default();
        let mut set = KeySet::default();
        let ids: Vec<String> = (0..100_000).map(|n| format!("job-{n}")).collect();
        assert!(ids.iter().all(|id| set.insert(keys.hash(id))));
        assert!(!ids.iter().any(|id| set.insert(keys.hash(id))));
        // Each table holds about its share: none is left empty, none takes
        // twice its part (the tables would then grow as one).
        let share = ids.len() / SHARDS;
        let sizes: Vec<usize> = set.0.iter().map(|table| table.len).collect();
        assert!(
            sizes
                .iter()
                .all(|&size| size > share / 2 && size < share * 2),
            "{sizes:?}"
        );
        // Between 85% and 68% full, whatever each table's point in its
        // growth: 12.9 to 16.2 bytes a key.
        let packed = bytes_per_key(&set);
        assert!((12.9..16.2).contains(&packed), "{packed} bytes a key");
        assert!(ids.iter().all(|id| set.remove(&keys.hash(id))));
        assert!(set.0.iter().all(|table| table.len == 0));
        assert!(!set.remove(&keys.hash("job-1")));
    }

    #[test]
    fn the_set_answers_as_a_hash_set_does_through_growth_and_shrinking() {
        let keys = Keys::default();
        let mut set = KeySet::default();
        let mut expected = HashSet::new();
        // A few thousand ids, so that tables grow and shrink many times;
        // an xorshift picks what happens, the same each run.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for step in 0..400_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let id = format!("id-{}", state % 5_000);
            // Mostly inserts early on, mostly removals late.
            let inserting = (state >> 32) % 400_000 > step;
            if inserting {
                assert_eq!(
                    set.insert(keys.hash(&id)),
                    expected.insert(id),
                    "step {step}"
                );
            } else {
                assert_eq!(
                    set.remove(&keys.hash(&id)),
                    expected.remove(&id),
                    "step {step}"
                );
            }
        }
        for n in 0..5_000 {
            let id = format!("id-{n}");
            assert_eq!(set.remove(&keys.hash(&id)), expected.contains(&id), "{id}");
        }
        // Emptied, the tables gave their room back.
        let slots: usize = set.0.iter().map(|table| table.slots.len()).sum();
        assert!(slots <= SHARDS * super::MIN_SLOTS, "{slots} slots left");
    }

    #[test]
    fn a_table_that_emptied_gives_its_room_back() {
        let keys = Keys::default();
        let mut set = KeySet::default();
        let ids: Vec<String> = (0..50_000).map(|n| format!("job-{n}")).collect();
        ids.iter().for_each(|id| assert!(set.insert(keys.hash(id))));
        let full: usize = set.0.iter().map(|table| table.slots.len()).sum();
        // Forgotten oldest first, as `dedupe_window` forgets them.
        ids[..49_000]
            .iter()
            .for_each(|id| assert!(set.remove(&keys.hash(id))));
        let left: usize = set.0.iter().map(|table| table.slots.len()).sum();
        assert!(
            left * 10 < full,
            "{left} slots of {full} kept for 1,000 ids"
        );
        assert!(ids[49_000..].iter().all(|id| !set.insert(keys.hash(id))));
    }

    #[test]
    fn a_key_stored_as_all_zero_bytes_is_still_remembered() {
        let mut set = KeySet::default();
        let zero = Key([0; 8], [7, 0, 0, 0]);
        assert!(set.insert(zero));
        assert!(!set.insert(zero));
        assert!(set.insert(Key([1; 8], [7, 0, 0, 0])));
        assert!(set.remove(&zero));
        assert!(!set.remove(&zero));
        assert!(set.insert(zero));
    }
}
