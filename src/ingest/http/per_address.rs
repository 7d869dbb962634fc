//! `max_connections_per_address`: one client host cannot take every
//! connection slot. Its connections past the bound are answered 429 and
//! closed; those of other hosts are served as before.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Connections open per client address.
pub struct PerAddress {
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection of an address; dropping it frees its place.
pub struct AddressHold {
    per_address: Arc<PerAddress>,
    address: IpAddr,
}

impl PerAddress {
    pub fn new(limit: usize) -> Arc<PerAddress> {
        Arc::new(PerAddress {
            limit: limit.max(1),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A place for a new connection from `address`, unless it already
    /// holds `limit` of them.
    pub fn hold(self: &Arc<Self>, address: IpAddr) -> Option<AddressHold> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(address).or_default();
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(AddressHold {
            per_address: self.clone(),
            address,
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl Drop for AddressHold {
    fn drop(&mut self) {
        let mut open = self
            .per_address
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            // Addresses with nothing open are forgotten, so that the map
            // holds only the hosts connected now.
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_its_limit_and_a_closed_connection_frees_a_place() {
        let per_address = PerAddress::new(2);
        let (one, two) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = per_address.hold(one).unwrap();
        let _second = per_address.hold(one).unwrap();
        assert!(per_address.hold(one).is_none());
        let other = per_address.hold(two);
        assert!(other.is_some(), "another host is not held back");
        drop(first);
        assert!(per_address.hold(one).is_some());
        drop(other);
        let open = per_address.open.lock().unwrap();
        assert_eq!(
            open.get(&two),
            None,
            "a host with nothing open is forgotten"
        );
    }
}
