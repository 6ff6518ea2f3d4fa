//! Why a step failed: the one failure type of a run. The engine's checks and changes return
//! it, the report shows it (plan, result, JSON document), and `Error::Step` ends the run with
//! it and the name of the step. Messages never hold a secret: callers redact first.

use std::fmt;

use serde::Serialize;

use crate::host::{Cmd, CmdOutput, HostError};

/// A message, and the command and the end of its stderr when a command failed.
#[derive(Debug, Clone, Serialize)]
pub struct StepError {
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The end of the command's stderr (`stderr` in the JSON document).
    #[serde(rename = "stderr", skip_serializing_if = "Option::is_none")]
    pub stderr_tail: Option<String>,
}

impl StepError {
    pub fn msg(m: impl Into<String>) -> StepError {
        StepError {
            message: m.into(),
            command: None,
            stderr_tail: None,
        }
    }

    pub fn host(e: HostError) -> StepError {
        StepError::msg(e.0)
    }

    pub fn command(cmd: &Cmd, out: &CmdOutput) -> StepError {
        let how = match out.code {
            Some(c) => format!("exited with status {c}"),
            None => "was killed by a signal".to_owned(),
        };
        StepError {
            message: format!("`{}` {how}", cmd.argv[0]),
            command: Some(cmd.display()),
            stderr_tail: Some(out.tail()),
        }
    }
}

/// The message, then the command and its stderr on lines of their own.
impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
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
