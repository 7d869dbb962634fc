//! Hook chains: for each phase, the handlers an event runs through in order.
//!
//! A [`Pipeline`] is built complete from a valid config (every handler ready)
//! before it is used, so a bad config never leaves half a pipeline running.
//! Each handler's attempts and retries are run the same way for every
//! library ([`Stage`]), with its `timeout` handed to `Handler::handle`
//! (which knows what part of an attempt it bounds); the handler's error
//! says whether a retry may help.

mod filter;
mod leftover;
mod retry;
mod stage;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info_span};

pub use filter::{Filter, Mismatch};
pub use retry::RetryPolicy;
pub use stage::Stage;

use leftover::{bury_removed, bury_skipped, settle_replay};
use stage::Attempt;

use crate::config::values::error_chain;
use crate::config::{Diagnostic, PerPhase, Position};
use crate::event::{Event, Phase};
use crate::handlers::lua::LuaHandler;
use crate::handlers::{self, BuildError, Handler, HandlerSection, LibrarySettings};
use crate::lua::{self, Scripting};
use crate::queue::Work;
use crate::setup::Config;
use crate::spool::{Record, Recorder, millis, now_ms};

/// Where an event's chain got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// Every stage is done with it.
    Finished,
    /// A stage waits for its retry; the spool fires it when due.
    Suspended,
    /// The daemon stopped part-way; the spool resumes it at the next start.
    Abandoned,
}

/// The chains of every phase, sharing one instance of each handler.
#[derive(Debug)]
pub struct Pipeline {
    chains: PerPhase<Vec<Arc<Stage>>>,
    /// Handlers built: every section and every drop-in script.
    handlers: usize,
    /// The scripts folder as it was when this was built.
    scripts: lua::Fingerprint,
}

/// What a reload may keep: the running config and pipeline, whose handlers
/// (open files, connection pools, Lua states) are reused where their
/// settings did not change.
#[derive(Clone, Copy)]
pub struct Previous<'a> {
    pub config: &'a Config,
    pub pipeline: &'a Pipeline,
}

impl Pipeline {
    /// Builds every handler a hook uses, then the drop-in scripts of
    /// `scripts_dir`. Problems name the handler's section, or the script and
    /// its line. Warnings (a script that is not run) come with a pipeline.
    pub fn build(config: &Config) -> Result<(Pipeline, Vec<Diagnostic>), Vec<Diagnostic>> {
        Pipeline::rebuild(config, None)
    }

    /// Like [`Pipeline::build`], reusing the handlers of `previous` whose
    /// settings (and what they depend on) did not change.
    pub fn rebuild(
        config: &Config,
        previous: Option<Previous<'_>>,
    ) -> Result<(Pipeline, Vec<Diagnostic>), Vec<Diagnostic>> {
        let scripts = lua::Fingerprint::of(&config.daemon.scripts_dir);
        let http = crate::http::Context {
            dir: &config.dir,
            ssl: &config.ssl,
        };
        let scripting = Scripting::new(
            config.api.as_ref(),
            http,
            config.daemon.worker_count(),
            &config.daemon.scripts_dir,
        )
        .map_err(|err| {
            vec![
                Position {
                    file: config.file.clone(),
                    line: 1,
                    column: 1,
                }
                .error(error_chain(&err)),
            ]
        })?;
        let context = handlers::Context {
            dir: &config.dir,
            ssl: &config.ssl,
            scripting: &scripting,
        };
        let reuse = previous.map(Reuse::new);
        let mut stages: Vec<Arc<Stage>> = Vec::new();
        let mut problems = Vec::new();
        for section in &config.handlers {
            if let Some(stage) = reuse
                .as_ref()
                .and_then(|reuse| reuse.reusable(section, config, &scripts))
            {
                stages.push(stage);
                continue;
            }
            match Handler::build(section, &context) {
                Ok(handler) => stages.push(Arc::new(Stage::new(
                    &section.name,
                    &section.common,
                    handler,
                ))),
                Err(BuildError::Script { path, source }) => {
                    problems.push(lua::script_diagnostic(&path, &source));
                }
                Err(err) => problems.push(section.position.error(format!(
                    "handler `{}`: {}",
                    section.name,
                    error_chain(&err)
                ))),
            }
        }
        let claimed: Vec<PathBuf> = config
            .handlers
            .iter()
            .filter_map(|section| section.library.lua_script())
            .map(|script| scripting.script_path(script))
            .collect();
        let (drop_ins, mut found) = lua::drop_in::discover(&claimed, &scripting);
        problems.append(&mut found);
        let mut joined: Vec<(Vec<Phase>, Arc<Stage>)> = Vec::new();
        for drop_in in &drop_ins {
            match LuaHandler::drop_in(drop_in, &scripting) {
                Ok(handler) => joined.push((
                    drop_in.phases.clone(),
                    Arc::new(Stage::new(
                        &drop_in.name,
                        &drop_in.common,
                        Handler::Lua(handler),
                    )),
                )),
                Err(err) => problems.push(lua::script_diagnostic(&drop_in.path, &err)),
            }
        }
        if problems.iter().any(Diagnostic::is_error) {
            return Err(problems);
        }
        // Config validation guarantees every hook entry names a defined handler.
        let by_name: HashMap<&str, &Arc<Stage>> = stages
            .iter()
            .map(|stage| (stage.name.as_str(), stage))
            .collect();
        let chain = |phase: Phase| {
            config
                .hooks
                .chain(phase)
                .iter()
                .filter_map(|name| by_name.get(name.get_ref().as_str()).copied())
                .cloned()
                .chain(
                    joined
                        .iter()
                        .filter(|(phases, _)| phases.contains(&phase))
                        .map(|(_, stage)| stage.clone()),
                )
                .collect()
        };
        let pipeline = Pipeline {
            chains: PerPhase::from_fn(chain),
            handlers: stages.len() + joined.len(),
            scripts,
        };
        Ok((pipeline, problems))
    }

    /// The scripts folder as it was when this was built.
    pub fn scripts(&self) -> &lua::Fingerprint {
        &self.scripts
    }

    /// Handlers built: every section and every drop-in script.
    pub fn handler_count(&self) -> usize {
        self.handlers
    }

    pub fn chain(&self, phase: Phase) -> &[Arc<Stage>] {
        &self.chains[phase]
    }

    /// Runs an event through its phase's chain from where `work` says it
    /// got to, recording each step with the spool. A handler that gives up
    /// leaves a dead letter and the chain goes on; one that will retry
    /// suspends the chain until the retry is due; `stop` abandons the rest.
    pub async fn run(&self, work: &Work, spool: &Recorder, stop: &CancellationToken) -> RunEnd {
        let event = &work.event;
        let span = info_span!(
            "event",
            id = event.id(),
            job_id = event.job_id().map(tracing::field::display),
            job_type = event.routing().job_type.as_deref(),
            phase = %event.phase(),
        );
        async {
            let chain = self.chain(event.phase());
            if let Some(replay) = &work.replay
                && !chain.iter().any(|stage| stage.name == replay.handler)
            {
                let phase = event.phase();
                settle_replay(
                    work,
                    replay,
                    Some(format!("it is not in the {phase} chain")),
                    spool,
                );
                return RunEnd::Finished;
            }
            bury_removed(work, chain, spool);
            // Why a replay's handler did not take the event.
            let mut skipped = None;
            // The event as the last handler that changed it left it.
            let mut changed: Option<Arc<Event>> = None;
            // Stages done whose success is not yet sent to the spool (see
            // `Stage::writes_locally`).
            let mut unsent: Vec<Record> = Vec::new();
            let send = |unsent: &mut Vec<Record>| {
                for record in unsent.drain(..) {
                    spool.record(record);
                }
            };
            for (index, stage) in chain.iter().enumerate() {
                if work
                    .replay
                    .as_ref()
                    .is_some_and(|replay| replay.handler != stage.name)
                    || work.done.contains(&stage.name)
                {
                    continue;
                }
                if !stage.writes_locally() {
                    send(&mut unsent);
                }
                let (prior, first_attempt) = match &work.resume {
                    Some(resume) if resume.stage == stage.name => {
                        (resume.attempts, resume.first_attempt)
                    }
                    _ => (0, now_ms()),
                };
                let seq = work.seq;
                let current = changed.as_deref().unwrap_or(event);
                // The first attempt of a replay: the operator asked for it.
                let replayed = work.replay.is_some() && work.resume.is_none();
                match stage.attempt(current, prior, replayed, stop).await {
                    Attempt::Skipped(mismatch) => {
                        if work
                            .resume
                            .as_ref()
                            .is_some_and(|resume| resume.stage == stage.name)
                        {
                            send(&mut unsent);
                            bury_skipped(work, current, &mismatch.to_string(), spool);
                        }
                        skipped = Some(mismatch);
                    }
                    // The last stage's success is recorded by `Finished`.
                    Attempt::Delivered(replaced) if index + 1 < chain.len() => {
                        let replaced = replaced.map(Arc::new);
                        if let Some(replaced) = &replaced {
                            changed = Some(replaced.clone());
                        }
                        // Made here, not on the spool's thread: the next
                        // handlers (a file line, an HTTP body) share it.
                        unsent.push(Record::StageDone {
                            seq,
                            stage: stage.name.clone(),
                            changed: replaced.as_ref().map(|event| event.json().clone()),
                        });
                    }
                    Attempt::Delivered(_) => {}
                    Attempt::Failed { attempts, error } => {
                        send(&mut unsent);
                        spool.record(Record::Dead {
                            seq,
                            event_id: current.id().to_owned(),
                            stage: stage.name.clone(),
                            event: current.json().clone(),
                            error: error.message,
                            attempts,
                            first_attempt,
                        });
                    }
                    Attempt::Retry { attempts, wait } => {
                        send(&mut unsent);
                        spool.record(Record::Retry {
                            seq,
                            stage: stage.name.clone(),
                            attempts,
                            first_attempt,
                            due: now_ms().saturating_add(millis(wait)),
                        });
                        return RunEnd::Suspended;
                    }
                    Attempt::Abandoned => {
                        send(&mut unsent);
                        return RunEnd::Abandoned;
                    }
                }
            }
            match &work.replay {
                Some(replay) => settle_replay(work, replay, skipped.map(|m| m.to_string()), spool),
                // `Finished` stands for every stage: what was not sent is moot.
                None => spool.record(Record::Finished { seq: work.seq }),
            }
            RunEnd::Finished
        }
        .instrument(span)
        .await
    }
}

/// [`Previous`] with its sections and stages found by name (a rebuild looks
/// up every handler, so a scan per handler would make reloads quadratic).
struct Reuse<'a> {
    config: &'a Config,
    pipeline: &'a Pipeline,
    sections: HashMap<&'a str, &'a HandlerSection>,
    stages: HashMap<&'a str, &'a Arc<Stage>>,
}

impl<'a> Reuse<'a> {
    fn new(previous: Previous<'a>) -> Reuse<'a> {
        let Previous { config, pipeline } = previous;
        Reuse {
            config,
            pipeline,
            sections: config
                .handlers
                .iter()
                .map(|section| (section.name.as_str(), section))
                .collect(),
            stages: Phase::ALL
                .into_iter()
                .flat_map(|phase| pipeline.chain(phase))
                .map(|stage| (stage.name.as_str(), stage))
                .collect(),
        }
    }

    /// The running stage for `section`, if it can serve the new config as it is.
    fn reusable(
        &self,
        section: &HandlerSection,
        config: &Config,
        scripts: &lua::Fingerprint,
    ) -> Option<Arc<Stage>> {
        let old = self.sections.get(section.name.as_str())?;
        let same = old.common == section.common
            && old.library == section.library
            && self.config.dir == config.dir
            && match &section.library {
                LibrarySettings::TextFile(_) => true,
                LibrarySettings::Http(settings) => {
                    let ssl = |config: &Config| {
                        let name = settings.connection.ssl_config.as_ref()?;
                        config.ssl.get(name.get_ref()).cloned()
                    };
                    ssl(self.config) == ssl(config)
                }
                LibrarySettings::Lua(_) => {
                    self.pipeline.scripts == *scripts
                        && self.config.api == config.api
                        && self.config.daemon.scripts_dir == config.daemon.scripts_dir
                        && self.config.daemon.worker_count() == config.daemon.worker_count()
                }
            };
        if !same {
            return None;
        }
        self.stages
            .get(section.name.as_str())
            .map(|&stage| stage.clone())
    }
}
