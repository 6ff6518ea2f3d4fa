//! `legacy` steps: say in the plan that an installation of the old deploy.sh is here (its app
//! directory, uWSGI vassals or `sites_nginx.conf`), and what becomes of it. The steps after it
//! do the adopting (the database is kept and reassigned, the old site and vassals set aside).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Step;
use crate::engine::{Check, Engine, StepError};
use crate::recipe::compiler::Compiler;

/// Report an installation of the old deploy.sh (any of `paths` exists) in the plan.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Legacy {
    pub paths: Vec<String>,
}

impl Step for Legacy {
    const KIND: &'static str = "legacy";
    type Raw = Legacy;

    fn compile(raw: &Legacy, _: &mut Compiler) -> Option<Legacy> {
        Some(raw.clone())
    }

    fn check(&self, eng: &Engine) -> Result<Check, StepError> {
        check(eng, self)
    }

    /// The plan has said it; the steps after it do the adopting.
    fn apply(&self, _: &Engine) -> Result<(), StepError> {
        Ok(())
    }
}

fn check(eng: &Engine, step: &Legacy) -> Result<Check, StepError> {
    let mut found = Vec::new();
    for p in &step.paths {
        if eng
            .host
            .stat(Path::new(p))
            .map_err(StepError::host)?
            .is_some()
        {
            found.push(p.as_str());
        }
    }
    if found.is_empty() {
        return Ok(Check::ok("no installation of deploy.sh found"));
    }
    Ok(Check::ok(format!(
        "adopting deploy.sh's installation ({}): the telemetry database and its records are kept, its site, uWSGI vassals and service are set aside by the steps below",
        found.join(", ")
    )))
}
