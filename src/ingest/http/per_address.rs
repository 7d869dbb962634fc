//! `max_connections_per_address`: one client host cannot take every
//! connection slot. Its connections past the bound are answered 429 and
//! closed; those of other hosts are served as before.
//!
//! A refused connection takes no connection slot: it is answered at once,
//! without waiting for its request, and given [`REFUSAL_TIME`] in all. At
//! most [`REFUSALS_AT_ONCE`] are answered at a time; past that, a refused
//! connection is closed unanswered.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;
use tracing::debug;

/// How long a refused connection is given: a TLS handshake, the answer,
/// and reading what the client still sends.
const REFUSAL_TIME: Duration = Duration::from_secs(1);
/// Refused connections answered at once.
const REFUSALS_AT_ONCE: usize = 16;
/// What is read of a refused client's request before closing: closing with
/// its bytes unread would reset the connection, and the client might lose
/// the answer.
const LINGER_BYTES: usize = 64 * 1024;

/// Connections open per client address.
pub struct PerAddress {
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
    refusals: Arc<Semaphore>,
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
            refusals: Arc::new(Semaphore::new(REFUSALS_AT_ONCE)),
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

    /// Answers a connection from `address`, past its bound, 429 and closes
    /// it (see the module doc).
    pub fn refuse(
        &self,
        stream: TcpStream,
        address: IpAddr,
        tls: Option<TlsAcceptor>,
        tasks: &TaskTracker,
    ) {
        let limit = self.limit;
        let Ok(turn) = self.refusals.clone().try_acquire_owned() else {
            return debug!(%address, "[ingest.http] closing a connection past max_connections_per_address unanswered: {REFUSALS_AT_ONCE} refusals under way");
        };
        debug!(%address, limit, "[ingest.http] refusing a connection past max_connections_per_address");
        let answer = too_many(address, limit);
        tasks.spawn(async move {
            let answered = async {
                match tls {
                    None => linger(stream, &answer).await,
                    Some(acceptor) => linger(acceptor.accept(stream).await?, &answer).await,
                }
            };
            if let Ok(Err(err)) = tokio::time::timeout(REFUSAL_TIME, answered).await {
                debug!(%address, "[ingest.http] refusing a connection: {err}");
            }
            drop(turn);
        });
    }
}

/// The whole HTTP answer: 429, the reason as JSON, and the connection closed.
fn too_many(address: IpAddr, limit: usize) -> Vec<u8> {
    let body = serde_json::json!({
        "error": format!(
            "{address} already has {limit} connections open (max_connections_per_address); \
             send on those or close some"
        )
    })
    .to_string();
    format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Writes `answer`, ends the writing side, and reads what the client still
/// sends (up to [`LINGER_BYTES`]) until it closes.
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    answer: &[u8],
) -> std::io::Result<()> {
    stream.write_all(answer).await?;
    stream.shutdown().await?;
    let mut sink = [0; 4096];
    let mut read = 0;
    while read < LINGER_BYTES {
        match stream.read(&mut sink).await? {
            0 => break,
            more => read += more,
        }
    }
    Ok(())
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
