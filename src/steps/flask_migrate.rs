//! `flask_migrate` steps: `flask db upgrade` of the web UI in its venv, with the database
//! settings of its uWSGI vassal in the environment (never in an argv).

use serde::{Deserialize, Serialize};

use super::Step;
use crate::engine::{venv, Check, Engine, StepError};
use crate::recipe::compiler::Compiler;

/// `flask db upgrade` of a Flask app in a venv, with the environment of a uWSGI vassal.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FlaskMigrate {
    pub venv: String,
    /// The app's directory (its `migrations/` are relative to it).
    pub chdir: String,
    /// FLASK_APP.
    pub app: String,
    /// The vassal whose `env =` lines (the database settings) the command gets.
    pub env_from: String,
    pub user: String,
}

impl Step for FlaskMigrate {
    const KIND: &'static str = "flask_migrate";
    type Raw = FlaskMigrate;

    fn compile(raw: &FlaskMigrate, _: &mut Compiler) -> Option<FlaskMigrate> {
        Some(raw.clone())
    }

    fn check(&self, eng: &Engine) -> Result<Check, StepError> {
        venv::check_flask(eng, self)
    }

    fn apply(&self, eng: &Engine) -> Result<(), StepError> {
        venv::apply_flask(eng, self)
    }
}
