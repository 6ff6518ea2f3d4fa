//! `migrate` steps: the collector's schema migrations (`telem-collector migrate`), run when
//! `migrate --check` says the schema is behind, or always.

use serde::{Deserialize, Serialize};

use super::Step;
use std::path::Path;

use crate::engine::pgadmin::Op;
use crate::engine::postgres::query;
use crate::engine::{Check, Engine, StepError, INSTALL_FIRST};
use crate::host::Cmd;
use crate::recipe::compiler::Compiler;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Migrate {
    /// Run the migrations even when the collector reports the schema current.
    #[serde(default)]
    pub always: bool,
}

impl Step for Migrate {
    const KIND: &'static str = "migrate";
    type Raw = Migrate;

    fn compile(raw: &Migrate, _: &mut Compiler) -> Option<Migrate> {
        Some(raw.clone())
    }

    fn check(&self, eng: &Engine) -> Result<Check, StepError> {
            if eng.needs_install {
                return Ok(Check::blocked(INSTALL_FIRST));
            }
            let c = &eng.recipe.recipe.collector;
            let installed = [&c.binary, &c.config]
                .iter()
                .all(|p| matches!(eng.host.stat(Path::new(p)), Ok(Some(_))));
            if !installed || crate::host::lookup_user(eng.host, &c.user).is_none() {
                return Ok(Check::unknown(
                    "the collector is installed by an earlier step; then its migrations run",
                ));
            }
            if self.always {
                return Ok(Check::change1("run the collector's migrations"));
            }
            // The collector waits (bounded) for a database that is starting; a check need not.
            // Only this machine's own cluster is asked: an inventory's primary on another
            // machine is reached by `migrate --check` itself, as the collector reaches it.
            if eng.opts.roles().db {
                let db = &eng.recipe.recipe.database.name;
                if let Err(unknown) = query(eng, Op::Database { name: db.clone() }) {
                    return Ok(unknown);
                }
            }
            let out = eng
                .host
                .run(&migrate_cmd(eng, &["--check"]))
                .map_err(StepError::host)?;
            Ok(match out.code {
                Some(0) => Check::ok("the database schema is current"),
                Some(3) => Check::change1(format!(
                    "migrate the database schema: {}",
                    out.stdout_text().trim()
                )),
                _ => Check::unknown(format!(
                    "cannot tell the schema version yet: {}",
                    out.tail().trim()
                )),
            })
    }

    fn apply(&self, eng: &Engine) -> Result<(), StepError> {
        eng.run_ok(&migrate_cmd(eng, &[])).map(drop)
    }
}

fn migrate_cmd(eng: &Engine, extra: &[&str]) -> Cmd {
    let c = &eng.recipe.recipe.collector;
    let mut argv = vec![
        c.binary.clone(),
        "--config".into(),
        c.config.clone(),
        "migrate".into(),
    ];
    argv.extend(extra.iter().map(|s| s.to_string()));
    Cmd::new(argv).user(&c.user)
}
