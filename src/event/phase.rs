//! When in a job's life an event was raised, and how the job ended.

use std::fmt;

/// When in a job's life an event was raised; selects the hook chain it runs through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    OnStart,
    OnFinish,
    OnError,
    /// The daemon's own events about its spool filling and emptying; never
    /// sent by clients.
    OnQueueEvent,
}

impl Phase {
    pub const ALL: [Phase; 4] = [
        Phase::OnStart,
        Phase::OnFinish,
        Phase::OnError,
        Phase::OnQueueEvent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::OnStart => "OnStart",
            Phase::OnFinish => "OnFinish",
            Phase::OnError => "OnError",
            Phase::OnQueueEvent => "OnQueueEvent",
        }
    }

    /// The phase of an event that names none: `OnError` for a failed job.
    pub(super) fn of_result(result: Option<JobResult>) -> Phase {
        match result {
            Some(JobResult::Failure) => Phase::OnError,
            _ => Phase::OnFinish,
        }
    }

    /// Parses a phase name, ignoring case (`onfinish`, `OnFinish`, `ONFINISH`).
    pub fn parse(name: &str) -> Option<Phase> {
        Phase::ALL
            .into_iter()
            .find(|phase| phase.as_str().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of the job, as the orchestrator reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobResult {
    Success,
    Warning,
    Failure,
    Unknown,
}

impl JobResult {
    pub const ALL: [JobResult; 4] = [
        JobResult::Success,
        JobResult::Warning,
        JobResult::Failure,
        JobResult::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobResult::Success => "Success",
            JobResult::Warning => "Warning",
            JobResult::Failure => "Failure",
            JobResult::Unknown => "Unknown",
        }
    }

    /// Parses a result name, ignoring case.
    pub fn parse(name: &str) -> Option<JobResult> {
        JobResult::ALL
            .into_iter()
            .find(|result| result.as_str().eq_ignore_ascii_case(name))
    }
}
