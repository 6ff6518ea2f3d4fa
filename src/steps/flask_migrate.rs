//! `flask_migrate` steps: `flask db upgrade` of the web UI in its venv, with the database
//! settings of its uWSGI vassal in the environment (never in an argv).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Step;
use crate::engine::fs::exists;
use crate::engine::{Check, Engine, StepError};
use crate::host::Cmd;
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
        for (path, what) in [
            (flask(self), "the venv with flask"),
            (self.env_from.clone(), "the vassal"),
            (self.chdir.clone(), "the web UI"),
        ] {
            if !exists(eng, &path)? {
                return Ok(Check::unknown(format!(
                    "{path} is missing: {what} is installed by `-a install --webapp` or `-a deploy --webapp`"
                )));
            }
        }
        Ok(Check::change1(format!(
            "run `FLASK_APP={} {} db upgrade` in {} as {} (flask-migrate applies only pending revisions)",
            self.app,
            flask(self),
            self.chdir,
            self.user
        )))
    }

    fn apply(&self, eng: &Engine) -> Result<(), StepError> {
        let ini = eng
            .host
            .read(Path::new(&self.env_from))
            .map_err(StepError::host)?
            .ok_or_else(|| StepError::msg(format!("{} does not exist", self.env_from)))?;
        // The upstream app reads its database settings (the password too) from its environment:
        // the child gets them there, never in its argv; Cmd::display masks the password.
        let mut cmd = Cmd::new([flask(self), "db".into(), "upgrade".into()])
            .dir(&self.chdir)
            .user(&self.user)
            .env("FLASK_APP", &self.app);
        for (k, v) in vassal_env(&String::from_utf8_lossy(&ini)) {
            cmd = cmd.env(&k, &v);
        }
        eng.run_ok(&cmd).map(drop)
    }
}

fn flask(step: &FlaskMigrate) -> String {
    format!("{}/bin/flask", step.venv)
}

/// The `env = KEY=VALUE` lines of a uWSGI vassal.
fn vassal_env(ini: &str) -> Vec<(String, String)> {
    ini.lines()
        .filter_map(|l| {
            let (key, value) = l.split_once('=')?;
            (key.trim() == "env").then_some(())?;
            let (k, v) = value.trim_start().split_once('=')?;
            Some((k.trim().to_owned(), v.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vassal_env_lines() {
        let ini =
            "[uwsgi]\nenv = POSTGRES_USER=telemetry\nenv=POSTGRES_PASSWORD=a=b c\nsocket = x\n";
        assert_eq!(
            vassal_env(ini),
            vec![
                ("POSTGRES_USER".to_owned(), "telemetry".to_owned()),
                ("POSTGRES_PASSWORD".to_owned(), "a=b c".to_owned())
            ]
        );
    }
}
