//! The config language every component's settings are written in: value
//! types (`values`), reading a file safely (`read`), problems reported as
//! `FILE:LINE:COL: message` (`diagnostic`), the daemon's own sections
//! (`[daemon]`, `[log]`, `[hooks]`, `[admin]`, `[ingest.http]`) and the settings every
//! handler shares.
//!
//! A leaf: it reads no component built from it (only the value types of
//! `event` and `spool`). Each component keeps its own
//! settings beside its code, written in these types; `crate::setup` reads
//! the whole file.

mod admin;
mod common;
mod diagnostic;
mod ingest;
mod keys;
mod locate;
mod per_phase;
pub mod read;
mod sections;
pub mod values;

pub use admin::{AdminSettings, Permission, TokenSettings};
pub use common::{CommonSettings, from_value, split};
pub use diagnostic::{Diagnostic, Locator, Position, closest};
pub use ingest::{HttpIngestSettings, IngestSettings};
pub use keys::keys_of;
pub use locate::{default_config_path, locate};
pub use per_phase::PerPhase;
pub use sections::{Backoff, DaemonSettings, Hooks, LogFormat, LogSettings, Rotation, Top};
