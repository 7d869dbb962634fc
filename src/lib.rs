//! jobhook receives job-completion events on a local socket and runs each one
//! through a chain of built-in handlers configured in `handlers.toml`.
//!
//! How an event travels, and the module that owns each step:
//!
//! - [`ingest`] — the Unix socket (Windows: named pipe). Reads NDJSON lines,
//!   answers every line in order, never lets one client hold up another.
//!   Also `POST /events` over HTTP(S) (`[ingest.http]`), answered the same.
//! - [`sources`] — events the daemon fetches itself (Keyfactor Command's job
//!   history), committed to the spool with each source's cursor.
//! - [`event`] — turns a line into a validated [`event::Event`]; every
//!   rejection names the field.
//! - [`spool`] — an event is accepted once the spool has committed it to
//!   disk; it stays there, with each handler's progress, pending retries and
//!   dead letters, until its chain is done. Events go to workers in lanes by
//!   `JobId`, so one job's events stay in order. The rest of the daemon uses
//!   it through one small interface; SQLite is its backend.
//! - [`worker`] — drains a lane through the pipeline, in batches; events
//!   that wait on the network go to tasks of their own.
//! - [`chain`] — the hook chains (OnStart / OnFinish / OnError): filters,
//!   per-attempt timeout and retries, the same for every handler.
//! - [`handlers`] — the built-in handlers behind one closed enum; which
//!   library a section names, and building it, is decided in one place.
//!   A failed attempt is a [`failure::HandlerError`] that says whether a
//!   retry may help.
//! - [`http`] — outgoing HTTP clients (TLS sections, proxies, authentication;
//!   NTLM on a connection of its own), shared by the HTTP handler, the API
//!   client given to Lua and sources.
//! - [`lua`] — sandboxed Lua states on their own threads, the API scripts
//!   call, and drop-in scripts that join chains by themselves.
//!
//! Around them: [`config`] is the config language every component writes its
//! settings in (value types, `FILE:LINE:COL` problems, `[daemon]`, `[log]`,
//! `[hooks]`); it reads none of the components, each of which keeps its own
//! settings in a data-only `settings.rs` beside its code. [`setup`] reads
//! and validates `handlers.toml` as a whole, [`registration`] lists handlers
//! with their secrets hidden and registers, enables, disables and removes
//! them by editing `handlers.toml` (keeping its comments, validating before
//! writing, atomically) for the admin API, [`reload`] watches it and swaps
//! in a new pipeline when it changes, [`daemon`] wires the parts and stops
//! them in order, [`lifecycle`] is what the daemon tells its supervisor
//! (ready, reloading, reloaded, stopping; the event path's heartbeat),
//! [`service`] is systemd's notify protocol and watchdog, the Windows service
//! and `jobhook service install`, [`handoff`] hands a batch of calls to a
//! thread of its own and watches each, [`logging`] sets up the daemon's own
//! log, [`client`] is `jobhook send`, [`deadletter`] is `jobhook deadletter`,
//! and [`cli`] is the command line. [`admin`] is the admin API (handlers,
//! dead letters, reload, `/events`, `/health`, `/metrics`), [`admin_cli`]
//! the commands that call it, and [`telemetry`] the metric handles and live
//! stream the event path records into.
//!
//! Only what the binary (`cli`) and the benchmarks (`event`, `spool`, and
//! the `lifecycle` heartbeat the spool takes) use is public; everything else
//! is `pub(crate)`, so code nothing calls is reported as dead. The fuzz
//! targets (`fuzz/`) reach the few internals they drive through
//! [`fuzzing`], which exists only with the `fuzzing` feature.

pub(crate) mod admin;
pub(crate) mod admin_cli;
pub(crate) mod chain;
pub mod cli;
pub(crate) mod client;
pub(crate) mod config;
pub(crate) mod daemon;
pub(crate) mod deadletter;
pub mod event;
pub(crate) mod failure;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod handlers;
pub(crate) mod handoff;
pub(crate) mod http;
pub(crate) mod ingest;
pub mod lifecycle;
pub(crate) mod logging;
pub(crate) mod lua;
pub(crate) mod registration;
pub(crate) mod reload;
pub(crate) mod service;
pub(crate) mod setup;
pub(crate) mod sources;
pub mod spool;
pub(crate) mod telemetry;
pub(crate) mod worker;
