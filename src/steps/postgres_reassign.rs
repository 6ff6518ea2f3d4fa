//! `postgres_reassign` steps: objects in a database owned by one role (e.g. `postgres`, as
//! deploy.sh left them) are given to another; the records stay.

use serde::{Deserialize, Serialize};

use super::Step;
use crate::engine::pgadmin::Op;
use crate::engine::postgres::{admin, exec, query};
use crate::engine::{Check, Engine, StepError};
use crate::recipe::compiler::Compiler;

/// Objects in a database owned by `from` (e.g. `postgres`, as deploy.sh left them) are
/// given to `to`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresReassign {
    pub database: String,
    pub from: String,
    pub to: String,
}

impl Step for PostgresReassign {
    const KIND: &'static str = "postgres_reassign";
    type Raw = PostgresReassign;

    fn compile(raw: &PostgresReassign, _: &mut Compiler) -> Option<PostgresReassign> {
        Some(raw.clone())
    }

    fn check(&self, eng: &Engine) -> Result<Check, StepError> {
            let db = match query(
                eng,
                Op::Database {
                    name: self.database.clone(),
                },
            ) {
                Ok(r) => r,
                Err(unknown) => return Ok(unknown),
            };
            if db.exists != Some(true) {
                return Ok(Check::ok(format!("no database {} yet", self.database)));
            }
            let owned = admin(eng)
                .call(Op::OwnedBy {
                    database: self.database.clone(),
                    role: self.from.clone(),
                })
                .map_err(StepError::host)?
                .count
                .unwrap_or_default();
            if owned == 0 {
                return Ok(Check::ok(format!(
                    "{} owns no tables in database {}",
                    self.from, self.database
                )));
            }
            Ok(Check::change1(format!(
                "make {} the owner of the {owned} tables, views and sequences {} owns in database {} (records kept)",
                self.to, self.from, self.database
            )))
    }

    fn apply(&self, eng: &Engine) -> Result<(), StepError> {
            exec(
                eng,
                Op::Reassign {
                    database: self.database.clone(),
                    from: self.from.clone(),
                    to: self.to.clone(),
                },
            )
    }
}
