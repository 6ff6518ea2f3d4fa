//! `postgres_database` steps: a database with its owner, present or absent.

use serde::{Deserialize, Serialize};

use super::Step;
use crate::engine::pgadmin::Op;
use crate::engine::postgres::{admin, exec, query};
use crate::engine::{Check, Engine, StepError};
use crate::recipe::model::Presence;
use crate::recipe::compiler::Compiler;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresDatabase {
    pub name: String,
    pub owner: String,
    #[serde(default)]
    pub state: Presence,
}

impl Step for PostgresDatabase {
    const KIND: &'static str = "postgres_database";
    type Raw = PostgresDatabase;

    fn compile(raw: &PostgresDatabase, _: &mut Compiler) -> Option<PostgresDatabase> {
        Some(raw.clone())
    }

    fn check(&self, eng: &Engine) -> Result<Check, StepError> {
            let r = match query(
                eng,
                Op::Database {
                    name: self.name.clone(),
                },
            ) {
                Ok(r) => r,
                Err(unknown) => return Ok(unknown),
            };
            let exists = r.exists == Some(true);
            Ok(match (self.state, exists) {
                (Presence::Present, false) => Check::change1(format!(
                    "create database {} owned by {}",
                    self.name, self.owner
                )),
                (Presence::Present, true) if r.owner.as_deref() != Some(self.owner.as_str()) => {
                    Check::change1(format!(
                        "make {} the owner of database {} (owned by {})",
                        self.owner,
                        self.name,
                        r.owner.unwrap_or_default()
                    ))
                }
                (Presence::Present, true) => Check::ok(format!(
                    "database {} exists, owned by {}",
                    self.name, self.owner
                )),
                (Presence::Absent, true) => Check::change1(format!("drop database {}", self.name)),
                (Presence::Absent, false) => Check::ok(format!("database {} is absent", self.name)),
            })
    }

    fn apply(&self, eng: &Engine) -> Result<(), StepError> {
            let r = admin(eng)
                .call(Op::Database {
                    name: self.name.clone(),
                })
                .map_err(StepError::host)?;
            let exists = r.exists == Some(true);
            match (self.state, exists) {
                (Presence::Present, false) => exec(
                    eng,
                    Op::CreateDatabase {
                        name: self.name.clone(),
                        owner: self.owner.clone(),
                    },
                ),
                (Presence::Present, true) if r.owner.as_deref() != Some(self.owner.as_str()) => exec(
                    eng,
                    Op::AlterDatabaseOwner {
                        name: self.name.clone(),
                        owner: self.owner.clone(),
                    },
                ),
                (Presence::Absent, true) => exec(
                    eng,
                    Op::DropDatabase {
                        name: self.name.clone(),
                    },
                ),
                _ => Ok(()),
            }
    }
}
