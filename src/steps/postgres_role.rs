//! `postgres_role` steps: a login role, present or absent.

use serde::{Deserialize, Serialize};

use super::Step;
use crate::engine::pgadmin::Op;
use crate::engine::postgres::{admin, exec, query};
use crate::engine::{Check, Engine, StepError};
use crate::recipe::model::Presence;
use crate::recipe::compiler::Compiler;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresRole {
    pub name: String,
    #[serde(default)]
    pub state: Presence,
}

impl Step for PostgresRole {
    const KIND: &'static str = "postgres_role";
    type Raw = PostgresRole;

    fn compile(raw: &PostgresRole, _: &mut Compiler) -> Option<PostgresRole> {
        Some(raw.clone())
    }

    fn check(&self, eng: &Engine) -> Result<Check, StepError> {
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
                (Presence::Present, false) => Check::change1(format!("create role {} (LOGIN)", self.name)),
                (Presence::Absent, true) => Check::change1(format!("drop role {}", self.name)),
                (Presence::Absent, false) => Check::ok(format!("role {} is absent", self.name)),
            })
    }

    fn apply(&self, eng: &Engine) -> Result<(), StepError> {
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
