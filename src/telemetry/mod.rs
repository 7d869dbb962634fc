//! What the daemon counts and shows while it runs: Prometheus metrics
//! through the `metrics` facade ([`counters`]) and the live stream of
//! accepted events and handler outcomes ([`live`]) that `GET /events` and
//! `jobhook tail` read.
//!
//! A leaf: ingest, the spool, the chain and the reloader record here; the
//! admin API reads. Recording costs an atomic add on a handle made once
//! (per handler, per connection listener), and nothing at all when no admin
//! API is configured: the recorder is installed only then.

pub mod counters;
pub mod live;

pub use counters::{AcceptedMetrics, Connected, HandlerMetrics, Outcome};
