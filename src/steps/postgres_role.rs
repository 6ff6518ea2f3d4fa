//! `postgres_role` steps: a login role, present or absent; with `replication: true`, one that
//! may also stream WAL (`LOGIN REPLICATION`, for a standby's base backup and its receiver).

use serde::{Deserialize, Serialize};

use super::Step;
use crate::engine::pgadmin::Op;
use crate::engine::pgrepl::Repl;
use crate::engine::postgres::{admin, exec, query, NOT_RUNNING};
use crate::engine::{Check, Engine, StepError};
use crate::recipe::compiler::Compiler;
use crate::recipe::model::Presence;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresRole {
    pub name: String,
    #[serde(default)]
    pub state: Presence,
    /// The role has `REPLICATION` (and `LOGIN`); a role that lacks one is changed. `false`
    /// leaves the attribute as it is.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replication: bool,
}

impl Step for PostgresRole {
    const KIND: &'static str = "postgres_role";
    type Raw = PostgresRole;

    fn compile(raw: &PostgresRole, c: &mut Compiler) -> Option<PostgresRole> {
        if raw.replication && raw.state == Presence::Absent {
            c.error("replication", "an absent role has no attributes");
            return None;
        }
        Some(raw.clone())
    }

    fn check(&self, eng: &Engine) -> Result<Check, StepError> {
        if self.replication {
            return self.check_replication(eng);
        }
        let r = match query(
            eng,
            Op::RoleExists {
                role: self.name.clone(),
            },
        ) {
            Ok(r) => r,
            Err(unknown) => return Ok(unknown),
        };
        let exists = r.exists == Some(true);
        Ok(match (self.state, exists) {
            (Presence::Present, true) => Check::ok(format!("role {} exists", self.name)),
            (Presence::Present, false) => {
                Check::change1(format!("create role {} (LOGIN)", self.name))
            }
            (Presence::Absent, true) => Check::change1(format!("drop role {}", self.name)),
            (Presence::Absent, false) => Check::ok(format!("role {} is absent", self.name)),
        })
    }

    fn apply(&self, eng: &Engine) -> Result<(), StepError> {
        if self.replication {
            return self.apply_replication(eng);
        }
        let exists = admin(eng)
            .call(Op::RoleExists {
                role: self.name.clone(),
            })
            .map_err(StepError::host)?
            .exists
            == Some(true);
        match (self.state, exists) {
            (Presence::Present, false) => exec(
                eng,
                Op::CreateRole {
                    role: self.name.clone(),
                },
            ),
            (Presence::Absent, true) => exec(
                eng,
                Op::DropRole {
                    role: self.name.clone(),
                },
            ),
            _ => Ok(()),
        }
    }
}

impl PostgresRole {
    fn attributes(&self) -> Repl {
        Repl::RoleAttributes {
            role: self.name.clone(),
        }
    }

    fn check_replication(&self, eng: &Engine) -> Result<Check, StepError> {
        if crate::host::lookup_user(eng.host, &eng.recipe.recipe.postgres.os_user).is_none() {
            return Ok(Check::unknown(NOT_RUNNING));
        }
        let a = match admin(eng).repl(&self.attributes()) {
            Ok(a) => a,
            Err(e) => return Ok(Check::unknown(format!("{NOT_RUNNING}: {e}"))),
        };
        Ok(match (a.exists, a.replication_login) {
            (true, true) => Check::ok(format!("role {} exists (LOGIN REPLICATION)", self.name)),
            (true, false) => Check::change1(format!(
                "give role {} LOGIN REPLICATION (it lacks one of them)",
                self.name
            )),
            (false, _) => Check::change1(format!("create role {} (LOGIN REPLICATION)", self.name)),
        })
    }

    fn apply_replication(&self, eng: &Engine) -> Result<(), StepError> {
        let pg = admin(eng);
        let a = pg.repl(&self.attributes()).map_err(StepError::host)?;
        let role = self.name.clone();
        let op = match (a.exists, a.replication_login) {
            (true, true) => return Ok(()),
            (true, false) => Repl::GrantReplication { role },
            (false, _) => Repl::CreateReplicationRole { role },
        };
        pg.repl(&op).map(drop).map_err(StepError::host)
    }
}
