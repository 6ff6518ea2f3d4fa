//! `symlink` steps: a link to a target; whatever is in its place is set aside for uninstall
//! to put back.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Step;
use crate::engine::fs::{ensure_parent, save};
use crate::engine::{Check, Engine, StepError};
use crate::host::{FileKind, FileMeta};
use crate::recipe::compiler::Compiler;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Symlink {
    pub path: String,
    pub target: String,
    #[serde(default)]
    pub notify: Vec<String>,
}

impl Step for Symlink {
    const KIND: &'static str = "symlink";
    type Raw = Symlink;

    fn compile(raw: &Symlink, c: &mut Compiler) -> Option<Symlink> {
        c.services("notify", &raw.notify).then(|| raw.clone())
    }

    fn notifies(&self) -> &[String] {
        &self.notify
    }

    fn check(&self, eng: &Engine) -> Result<Check, StepError> {
        match eng
            .host
            .stat(Path::new(&self.path))
            .map_err(StepError::host)?
        {
            Some(FileMeta {
                kind: FileKind::Symlink(t),
                ..
            }) if t == Path::new(&self.target) => {
                Ok(Check::ok(format!("{} → {}", self.path, self.target)))
            }
            Some(FileMeta {
                kind: FileKind::Symlink(t),
                ..
            }) => Ok(Check::change1(format!(
                "relink {} → {} (was → {})",
                self.path,
                self.target,
                t.display()
            ))),
            Some(_) => Ok(Check::change1(format!(
                "replace {} by a link → {} (original kept)",
                self.path, self.target
            ))),
            None => Ok(Check::change1(format!(
                "link {} → {}",
                self.path, self.target
            ))),
        }
    }

    fn apply(&self, eng: &Engine) -> Result<(), StepError> {
        let path = Path::new(&self.path);
        match eng.host.stat(path).map_err(StepError::host)? {
            None => eng.update_state(|s| {
                s.created.insert(self.path.clone());
            })?,
            Some(m) if !matches!(m.kind, FileKind::Symlink(_)) => save(eng, &self.path, &m)?,
            Some(_) => {}
        }
        ensure_parent(eng, path)?;
        eng.host
            .symlink(Path::new(&self.target), path)
            .map_err(StepError::host)
    }
}
