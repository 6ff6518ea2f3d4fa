//! `directory` steps: a directory with its owner, group and mode (created when missing and
//! recorded as created; an existing one gets the ownership and mode asked for).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Step;
use crate::engine::fs::{owner, ownership_changes};
use crate::engine::{Check, Engine, StepError};
use crate::host::FileKind;
use crate::recipe::compiler::Compiler;
use crate::recipe::model::root;
use crate::recipe::values::Mode;

/// A `directory` step as the recipe writes it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawDirectory {
    pub path: String,
    #[serde(default = "root")]
    pub owner: String,
    #[serde(default = "root")]
    pub group: String,
    /// Octal, e.g. "0644".
    pub mode: String,
}

#[derive(Debug, Clone)]
pub struct Directory {
    pub path: String,
    pub owner: String,
    pub group: String,
    pub mode: Mode,
}

impl Step for Directory {
    const KIND: &'static str = "directory";
    type Raw = RawDirectory;

    fn compile(raw: &RawDirectory, c: &mut Compiler) -> Option<Directory> {
        Some(Directory {
            mode: c.parse("mode", &raw.mode)?,
            path: raw.path.clone(),
            owner: raw.owner.clone(),
            group: raw.group.clone(),
        })
    }

    fn check(&self, eng: &Engine) -> Result<Check, StepError> {
        let want = owner(&self.owner, &self.group, self.mode);
        match eng
            .host
            .stat(Path::new(&self.path))
            .map_err(StepError::host)?
        {
            None => Ok(Check::change1(format!(
                "create {} ({}:{} {})",
                self.path, want.user, want.group, self.mode
            ))),
            Some(m) if m.kind != FileKind::Dir => Err(StepError::msg(format!(
                "{} exists and is not a directory",
                self.path
            ))),
            Some(m) => {
                let changes = ownership_changes(eng, &m, &want);
                if changes.is_empty() {
                    Ok(Check::ok(format!("{} exists", self.path)))
                } else {
                    Ok(Check::change(changes))
                }
            }
        }
    }

    fn apply(&self, eng: &Engine) -> Result<(), StepError> {
        let path = Path::new(&self.path);
        let existed = eng.host.stat(path).map_err(StepError::host)?.is_some();
        if !existed {
            eng.update_state(|s| {
                s.created.insert(self.path.clone());
            })?;
        }
        eng.host
            .mkdir(path, &owner(&self.owner, &self.group, self.mode))
            .map_err(StepError::host)
    }
}
