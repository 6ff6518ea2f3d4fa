//! The errors `run` can end with, each knowing its exit code.
//!
//! Exit codes are part of the contract: 0 success, 1 a step failed, 2 usage or recipe error,
//! 3 (only with `--dry-run --detailed-exitcode`) changes pending. Messages never contain a
//! secret: callers redact before building an error.

use std::fmt;

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

    /// A destructive action was not confirmed.
    #[error("{0}")]
    NotConfirmed(String),

    /// A step failed while applying (or was blocked by a precondition).
    #[error("{0}")]
    Step(StepFailure),

    /// Anything else that stops the run (host I/O the tool cannot do without).
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Recipe(_) | Error::Template(_) | Error::NotConfirmed(_) => 2,
            Error::Step(_) | Error::Other(_) => 1,
        }
    }
}

/// What the user needs to fix a failed step: which step, which command, what it said.
#[derive(Debug, Clone)]
pub struct StepFailure {
    pub step: String,
    pub message: String,
    pub command: Option<String>,
    pub stderr_tail: Option<String>,
}

impl fmt::Display for StepFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "step '{}' failed: {}", self.step, self.message)?;
        if let Some(cmd) = &self.command {
            write!(f, "\n  command: {cmd}")?;
        }
        if let Some(tail) = &self.stderr_tail {
            if !tail.trim().is_empty() {
                write!(f, "\n  stderr:")?;
                for line in tail.lines() {
                    write!(f, "\n    {line}")?;
                }
            }
        }
        Ok(())
    }
}
