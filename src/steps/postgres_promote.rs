//! `postgres_promote` steps: the local standby becomes a primary (`pg_promote`, waiting until
//! it has left recovery and accepts writes); a cluster not in recovery is left as it is.

use serde::{Deserialize, Serialize};

use super::Step;
use crate::engine::pgrepl::{Repl, PROMOTE_WAIT_SECONDS};
use crate::engine::postgres::{admin, NOT_RUNNING};
use crate::engine::{Check, Engine, StepError};
use crate::recipe::compiler::Compiler;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresPromote {}

impl Step for PostgresPromote {
    const KIND: &'static str = "postgres_promote";
    type Raw = PostgresPromote;

    fn compile(raw: &PostgresPromote, _: &mut Compiler) -> Option<PostgresPromote> {
        Some(raw.clone())
    }

    fn check(&self, eng: &Engine) -> Result<Check, StepError> {
        if crate::host::lookup_user(eng.host, &eng.recipe.recipe.postgres.os_user).is_none() {
            return Ok(Check::unknown(NOT_RUNNING));
        }
        let in_recovery = match admin(eng).repl(&Repl::Standby) {
            Ok(a) => a.standby.unwrap_or_default().in_recovery,
            Err(e) => return Ok(Check::unknown(format!("{NOT_RUNNING}: {e}"))),
        };
        Ok(match in_recovery {
            false => Check::ok("not in recovery: a primary, accepting writes"),
            true => Check::change1(format!(
                "promote the standby to primary (pg_promote, waiting up to {PROMOTE_WAIT_SECONDS} s until it accepts writes)"
            )),
        })
    }

    fn apply(&self, eng: &Engine) -> Result<(), StepError> {
        let pg = admin(eng);
        let a = pg.repl(&Repl::Standby).map_err(StepError::host)?;
        if !a.standby.unwrap_or_default().in_recovery {
            return Ok(());
        }
        let promoted = pg.repl(&Repl::Promote).map_err(StepError::host)?.promoted;
        match promoted {
            true => Ok(()),
            false => Err(StepError::msg(format!(
                "the standby was asked to promote but is still in recovery after {PROMOTE_WAIT_SECONDS} s"
            ))),
        }
    }
}
