//! `venv` steps: a Python virtual environment with a requirements file installed by pip
//! (which requirements, and how they are compared, is `engine::venv`'s).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Step;
use crate::engine::fs::{exists, unified_diff};
use crate::engine::venv::{self, pip_cmd, requirements, MARKER, PENDING};
use crate::engine::{Check, Engine, StepError};
use crate::host::{Cmd, Owner};
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
        let wanted = match requirements(eng, self)? {
            Ok(r) => r,
            Err(why) => {
                let mut c = Check::unknown(why);
                c.changes
                    .push(format!("then run if needed: {}", pip_cmd(self).display()));
                return Ok(c);
            }
        };
        let venv = exists(eng, &format!("{}/bin/python", self.path))?;
        if !venv && eng.host.which(&self.python).is_none() {
            return Ok(Check::unknown(format!(
                "{} is installed by an earlier step; then the venv {} is created; requirements: {}",
                self.python, self.path, wanted.source
            )));
        }
        let installed = eng
            .host
            .read(&Path::new(&self.path).join(MARKER))
            .map_err(StepError::host)?;
        let mut changes = Vec::new();
        if !venv {
            changes.push(format!(
                "create the venv {} ({} -m venv)",
                self.path, self.python
            ));
        }
        let same = installed.as_deref() == Some(wanted.text.as_slice());
        if !venv || !same {
            changes.push(format!("requirements: {}", wanted.source));
            changes.push(format!("run: {}", pip_cmd(self).display()));
        }
        if changes.is_empty() {
            return Ok(Check::ok(format!(
                "{} has the requirements of {}",
                self.path, wanted.source
            )));
        }
        if !self.notify.is_empty() {
            changes.push(format!("then restart {}", self.notify.join(", ")));
        }
        let mut c = Check::change(changes);
        if !same {
            c.diff = unified_diff(
                &format!("{}/{MARKER}", self.path),
                installed.as_deref().unwrap_or_default(),
                &wanted.text,
            );
        }
        Ok(c)
    }

    fn apply(&self, eng: &Engine) -> Result<(), StepError> {
        let wanted = requirements(eng, self)?.map_err(StepError::msg)?;
        if !exists(eng, &format!("{}/bin/python", self.path))? {
            if !exists(eng, &self.path)? {
                eng.update_state(|s| {
                    s.created.insert(self.path.clone());
                })?;
            }
            eng.run_ok(&Cmd::new([self.python.as_str(), "-m", "venv", &self.path]))?;
        }
        let root = Owner {
            user: "root".into(),
            group: "root".into(),
            mode: 0o644,
        };
        let pending = Path::new(&self.path).join(PENDING);
        eng.host
            .write(&pending, &wanted.text, &root)
            .map_err(StepError::host)?;
        eng.run_ok(&pip_cmd(self))?;
        eng.host
            .write(&Path::new(&self.path).join(MARKER), &wanted.text, &root)
            .map_err(StepError::host)?;
        eng.host.remove(&pending).map_err(StepError::host)
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
