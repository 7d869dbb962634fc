//! The admin API (SPEC §8): handlers, dead letters, reload, the live event
//! stream, `/health` and `/metrics`, over HTTP on `[admin] listen`.

mod settings;

pub use settings::{AdminSettings, Permission, TokenSettings};
