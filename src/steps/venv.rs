//! `venv` steps: a Python virtual environment with a requirements file installed by pip
//! (which requirements, and how they are compared, is `engine::venv`'s).

use serde::{Deserialize, Serialize};

use super::Step;
use crate::engine::{venv, Check, Engine, StepError};
use crate::recipe::compiler::Compiler;

/// A Python virtual environment with a requirements file installed into it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Venv {
    pub path: String,
    pub requirements: String,
    #[serde(default = "python3")]
    pub python: String,
    /// pip's `--index-url` (empty: pip's default).
    #[serde(default)]
    pub index_url: String,
    #[serde(default)]
    pub notify: Vec<String>,
    /// The snapshot whose marker names its layout (for telem-deploy's pins when it has no
    /// requirements of its own).
    #[serde(default)]
    pub snapshot: Option<String>,
    /// The recipe's requirements file, used when the snapshot has none (empty: telem-deploy's
    /// pins for the snapshot's layout).
    #[serde(default)]
    pub fallback: String,
}

fn python3() -> String {
    "python3".to_owned()
}

impl Step for Venv {
    const KIND: &'static str = "venv";
    type Raw = Venv;

    fn compile(raw: &Venv, c: &mut Compiler) -> Option<Venv> {
        c.services("notify", &raw.notify).then(|| raw.clone())
    }

    fn check(&self, eng: &Engine) -> Result<Check, StepError> {
        venv::check(eng, self)
    }

    fn apply(&self, eng: &Engine) -> Result<(), StepError> {
        venv::apply(eng, self)
    }

    fn notifies(&self) -> &[String] {
        &self.notify
    }

    /// A Python too old for the web UI refuses `--webapp` before anything changes.
    fn refuse(&self, eng: &Engine) -> Result<(), String> {
        match &eng.recipe.recipe.webapp {
            Some(w) => venv::preflight(eng, self, &w.min_python, &w.unsupported_releases),
            None => Ok(()),
        }
    }
}
