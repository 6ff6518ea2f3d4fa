//! `legacy` steps: say in the plan that an installation of the old deploy.sh is here (its app
//! directory, uWSGI vassals or `sites_nginx.conf`), and what becomes of it. The steps after it
//! do the adopting (the database is kept and reassigned, the old site and vassals set aside).

use std::path::Path;

use super::{Check, Engine, StepError};
use crate::recipe::model::LegacyStep;

pub fn check(eng: &Engine, step: &LegacyStep) -> Result<Check, StepError> {
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
