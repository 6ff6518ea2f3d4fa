//! The errors `run` can end with, each knowing its exit code.
//!
//! Exit codes are part of the contract: 0 success, 1 a step failed, 2 usage or recipe error
//! (or a machine in the wrong state for the action, nothing changed: not installed),
//! 3 (only with `--dry-run --detailed-exitcode`) changes pending. Messages never contain a
//! secret: callers redact before building an error.

use crate::failure::StepError;
use crate::recipe::RecipeErrors;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad command-line usage found after clap (e.g. an unreadable password file).
    #[error("{0}")]
    Usage(String),

    /// One or more problems in a recipe, all reported together.
    #[error("{0}")]
    Recipe(#[from] RecipeErrors),

    /// A template failed to parse or render.
    #[error("{0}")]
    Template(String),

    /// The action needs what `install` sets up, and the machines' state file records no
    /// installation: refused before any change (a dry run shows every step blocked instead).
    #[error("{0}")]
    NotInstalled(#[from] crate::not_installed::NotInstalled),

    /// A destructive action was not confirmed.
    #[error("{0}")]
    NotConfirmed(String),

    /// A step failed while applying (or was blocked by a precondition): which step, and why.
    #[error("step '{step}' failed: {error}")]
    Step { step: String, error: StepError },

    /// Anything else that stops the run (host I/O the tool cannot do without).
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_)
            | Error::Recipe(_)
            | Error::Template(_)
            | Error::NotInstalled(_)
            | Error::NotConfirmed(_) => 2,
            Error::Step { .. } | Error::Other(_) => 1,
        }
    }
}
