use super::*;
use crate::spool::{self, Fsync, Lane, Lanes, Spool, Store};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// A queue in front of a real spool in a temporary folder.
fn queue(lanes: usize) -> (Queue, Spool, Vec<Lane>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Fsync::Never).unwrap();
    let (senders, receivers) = Lanes::new(lanes);
    let limits = spool::Limits {
        fsync: Fsync::Never,
        in_memory: 1000,
        max_bytes: 1 << 30,
        submitted_bytes: spool::budget_bytes(1 << 20),
        dedupe_window: std::time::Duration::from_secs(60),
        max_dedupe_bytes: 64 << 20,
        filling: 0.8,
        emptying: 0.2,
    };
    let spool = Spool::start(store, limits, senders, Default::default()).unwrap();
    (spool.queue(), spool, receivers, dir)
}

fn limits(max_event_bytes: usize) -> Limits {
    Limits {
        max_connections: 1,
        max_event_bytes,
        idle_timeout: Duration::from_secs(60),
        stall_timeout: Duration::from_secs(60),
    }
}

/// Serves a connection whose client sends `input` and then nothing,
/// (on a paused clock); how long it lasted, and the replies.
async fn served_silence(input: &[u8], activity: Arc<Activity>) -> (Duration, String) {
    let (queue, _spool, _lanes, _dir) = queue(1);
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (mut client_read, mut client_write) = tokio::io::split(client);
    client_write.write_all(input).await.unwrap();
    let (read, write) = tokio::io::split(server);
    let started = Instant::now();
    let limits = Limits {
        idle_timeout: Duration::from_secs(300),
        stall_timeout: Duration::from_secs(30),
        ..limits(1024)
    };
    serve(
        read,
        write,
        Arc::new(queue),
        limits,
        activity,
        CancellationToken::new(),
    )
    .await;
    let lasted = started.elapsed();
    let mut replies = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut client_read, &mut replies)
        .await
        .unwrap();
    (lasted, replies)
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_is_closed_when_idle_or_stalled_mid_line() {
    let (lasted, replies) = served_silence(b"", Arc::default()).await;
    assert_eq!((lasted.as_secs(), replies.as_str()), (300, ""));
    let (lasted, replies) = served_silence(b"{\"Id\":\"ha", Arc::default()).await;
    assert_eq!((lasted.as_secs(), replies.as_str()), (30, ""));
}

#[tokio::test(start_paused = true)]
async fn a_connection_giving_up_its_slot_still_answers_whole_lines_at_hand() {
    let slots = super::super::slots::Slots::new(1);
    let slot = slots.take().await;
    // Another client arrives: this connection, idle, is told to close.
    assert!(
        tokio::time::timeout(Duration::ZERO, slots.take())
            .await
            .is_err()
    );
    let input = b"{\"Id\":\"a\"}\n{\"Id\":\"hal";
    let (lasted, replies) = served_silence(input, slot.activity()).await;
    assert_eq!(lasted.as_secs(), 0);
    assert_eq!(replies, "{\"ok\":true,\"id\":\"a\"}\n");
}

#[tokio::test]
async fn lines_already_sent_when_stopping_are_refused_not_dropped() {
    let (queue, _spool, _lanes, _dir) = queue(1);
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (mut client_read, mut client_write) = tokio::io::split(client);
    client_write
        .write_all(b"{\"Id\":\"a\"}\n{\"Id\":\"b\"}\n")
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    shutdown.cancel();
    let (read, write) = tokio::io::split(server);
    serve(
        read,
        write,
        Arc::new(queue),
        limits(1024),
        Arc::default(),
        shutdown,
    )
    .await;
    let mut replies = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut client_read, &mut replies)
        .await
        .unwrap();
    let codes: Vec<String> = replies
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["code"].to_string())
        .collect();
    assert_eq!(codes, ["\"shutting_down\"", "\"shutting_down\""]);
}

#[tokio::test]
async fn replies_follow_the_order_of_lines() {
    let (queue, _spool, _lanes, _dir) = queue(2);
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (client_read, mut client_write) = tokio::io::split(client);
    let (read, write) = tokio::io::split(server);
    let server = tokio::spawn(serve(
        read,
        write,
        Arc::new(queue),
        limits(64),
        Arc::default(),
        CancellationToken::new(),
    ));
    let mut input = Vec::new();
    for i in 0..50 {
        input.extend_from_slice(format!("{{\"Id\":\"{i}\"}}\n").as_bytes());
        input.extend_from_slice(b"oops\n");
    }
    client_write.write_all(&input).await.unwrap();
    client_write.shutdown().await.unwrap();
    let mut lines = tokio::io::BufReader::new(client_read).lines();
    for i in 0..50 {
        let ok: serde_json::Value =
            serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        assert_eq!(ok["id"], i.to_string());
        let bad: serde_json::Value =
            serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        assert_eq!(bad["code"], "parse_error");
    }
    assert_eq!(lines.next_line().await.unwrap(), None);
    server.await.unwrap();
}
