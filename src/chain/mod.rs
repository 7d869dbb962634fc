//! Hook chains: for each phase, the handlers an event runs through in order.
//!
//! A [`Pipeline`] is built complete from a valid config (every handler ready)
//! before it is used, so a bad config never leaves half a pipeline running.
//! Each handler's attempts and retries are run the same way for every
//! library ([`Stage`]), with its `timeout` handed to `Handler::handle_many`
//! (which knows what part of an attempt it bounds, for each event); the
//! handler's error says whether a retry may help. Running events through a
//! chain, in groups, is `run.rs`.

mod filter;
mod leftover;
mod retry;
mod run;
mod stage;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

pub use filter::{Filter, Mismatch};
pub use retry::RetryPolicy;
pub use stage::Stage;

use crate::config::values::error_chain;
use crate::config::{Diagnostic, PerPhase, Position};
use crate::event::Phase;
use crate::handlers::lua::LuaHandler;
use crate::handlers::{self, BuildError, Handler, HandlerSection, LibrarySettings};
use crate::lua::{self, Scripting};
use crate::setup::Config;

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
        let scripting = Scripting::new(config.api.as_ref(), http, &config.daemon.scripts_dir)
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

    /// Whether an event of `phase` would wait on another machine in its
    /// chain: a worker hands such an event to a task of its own, so that
    /// the wait holds no worker.
    pub fn waits_on_network(&self, phase: Phase) -> bool {
        self.chain(phase)
            .iter()
            .any(|stage| stage.waits_on_network())
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

#[cfg(test)]
mod tests;
