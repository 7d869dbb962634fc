//! Handlers read and changed through the admin API (`GET /handlers`,
//! `POST /handlers`, enable, disable, delete): no HTTP here, only what
//! the routes call.
//!
//! A change is made on the text the running config was read from and goes
//! through four steps, each its own module:
//!
//! - [`input`]: the registration's JSON read into a section's keys
//!   (`keys` maps aliases to the snake_case keys);
//! - [`edit`]: the candidate text, made with `toml_edit` so that what the
//!   change does not touch stays byte for byte;
//! - [`validate`]: the candidate parsed, validated and built as
//!   `jobhook check` does; every problem reported, nothing written;
//! - [`write`]: the file replaced atomically, unless it changed since it
//!   was read.
//!
//! [`view`] shows handlers with every secret hidden (`secrets` finds them in
//! the settings types). Drop-in scripts are shown but not changed here.
//!
//! Handlers are identified by their name: `Id` is the name.

mod edit;
mod error;
mod input;
mod keys;
mod secrets;
mod validate;
mod view;
mod write;

pub use error::RegistrationError;
pub use input::Registration;
pub use view::HandlerObject;

use crate::chain::Pipeline;
use crate::setup::Config;

/// The running config and the pipeline built from it: what is listed, and
/// what changes are made on.
#[derive(Clone, Copy)]
pub struct Live<'a> {
    pub config: &'a Config,
    pub pipeline: &'a Pipeline,
}

impl Live<'_> {
    /// Every handler: sections in the order written, then drop-ins.
    pub fn list(&self) -> Vec<HandlerObject> {
        view::list(self.config, self.pipeline)
    }

    /// The handler `name`; [`RegistrationError::NotFound`].
    pub fn show(&self, name: &str) -> Result<HandlerObject, RegistrationError> {
        view::show(self.config, self.pipeline, name)
    }

    /// The config's text with `registration` added: its section after the
    /// last handler section, its name at the end of each chain of
    /// `SupportedEvents`. [`RegistrationError::Exists`] if a section or a
    /// drop-in has its name.
    pub fn register(&self, registration: &Registration) -> Result<String, RegistrationError> {
        if self.is_drop_in(&registration.name) {
            return Err(RegistrationError::Exists {
                name: registration.name.clone(),
            });
        }
        edit::register(&self.config.text, registration)
    }

    /// The config's text with handler `name` enabled or disabled.
    pub fn set_enabled(&self, name: &str, enabled: bool) -> Result<String, RegistrationError> {
        self.editable(name)?;
        edit::set_enabled(&self.config.text, name, enabled)
    }

    /// The config's text without handler `name` (its section and its hook
    /// entries).
    pub fn remove(&self, name: &str) -> Result<String, RegistrationError> {
        self.editable(name)?;
        edit::remove(&self.config.text, name)
    }

    /// Validates `candidate` (made by one of the methods above) and writes
    /// it over the config file, if the file still holds the text the
    /// running config was read from. Blocking (it builds every handler):
    /// call it in `spawn_blocking`. The running pipeline is not changed:
    /// the reload that follows the write does that.
    pub fn commit(&self, candidate: &str) -> Result<(), RegistrationError> {
        validate::validate(candidate, &self.config.file)?;
        write::write(&self.config.file, &self.config.text, candidate)
    }

    fn is_drop_in(&self, name: &str) -> bool {
        !self
            .config
            .handlers
            .iter()
            .any(|section| section.name == name)
            && crate::event::Phase::ALL.into_iter().any(|phase| {
                self.pipeline
                    .chain(phase)
                    .iter()
                    .any(|stage| stage.name == name)
            })
    }

    fn editable(&self, name: &str) -> Result<(), RegistrationError> {
        if self.is_drop_in(name) {
            return Err(RegistrationError::DropIn {
                name: name.to_owned(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
