//! `postgres_slot` steps: a physical replication slot on the primary, present or absent. A
//! slot keeps the WAL its standby has not received yet; an active slot (a standby streams
//! through it) is never dropped.

use serde::{Deserialize, Serialize};

use super::Step;
use crate::engine::pgrepl::Repl;
use crate::engine::postgres::{admin, NOT_RUNNING};
use crate::engine::{Check, Engine, StepError};
use crate::recipe::compiler::Compiler;
use crate::recipe::model::Presence;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSlot {
    pub name: String,
    #[serde(default)]
    pub state: Presence,
}

/// PostgreSQL's rule for a slot name: 1 to 63 of lower-case letters, digits and `_`.
pub fn valid_slot_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    match ok {
        true => Ok(()),
        false => Err(format!(
            "{name:?} is not a replication slot name (1 to 63 of a-z, 0-9 and _)"
        )),
    }
}

impl Step for PostgresSlot {
    const KIND: &'static str = "postgres_slot";
    type Raw = PostgresSlot;

    fn compile(raw: &PostgresSlot, c: &mut Compiler) -> Option<PostgresSlot> {
        if c.waits(&raw.name) {
            return Some(raw.clone());
        }
        match valid_slot_name(&raw.name) {
            Ok(()) => Some(raw.clone()),
            Err(e) => {
                c.error("name", e);
                None
            }
        }
    }

    fn check(&self, eng: &Engine) -> Result<Check, StepError> {
        if crate::host::lookup_user(eng.host, &eng.recipe.recipe.postgres.os_user).is_none() {
            return Ok(Check::unknown(NOT_RUNNING));
        }
        let a = match admin(eng).repl(&self.query()) {
            Ok(a) => a,
            Err(e) => return Ok(Check::unknown(format!("{NOT_RUNNING}: {e}"))),
        };
        let name = &self.name;
        Ok(match (self.state, a.exists) {
            (Presence::Present, true) if a.slot_type != "physical" => Check::blocked(format!(
                "replication slot {name} exists but is a {} one, not physical",
                a.slot_type
            )),
            (Presence::Present, true) => {
                Check::ok(format!("physical replication slot {name} exists"))
            }
            (Presence::Present, false) => Check::change1(format!(
                "create physical replication slot {name} (reserving WAL from now on)"
            )),
            (Presence::Absent, true) if a.active => Check::blocked(active(name)),
            (Presence::Absent, true) => Check::change1(format!(
                "drop replication slot {name} (the WAL it kept is freed)"
            )),
            (Presence::Absent, false) => {
                Check::ok(format!("replication slot {name} is absent"))
            }
        })
    }

    fn apply(&self, eng: &Engine) -> Result<(), StepError> {
        let pg = admin(eng);
        let a = pg.repl(&self.query()).map_err(StepError::host)?;
        let name = self.name.clone();
        let op = match (self.state, a.exists) {
            (Presence::Present, false) => Repl::CreateSlot { name },
            (Presence::Absent, true) if a.active => return Err(StepError::msg(active(&name))),
            (Presence::Absent, true) => Repl::DropSlot { name },
            _ => return Ok(()),
        };
        pg.repl(&op).map(drop).map_err(StepError::host)
    }
}

impl PostgresSlot {
    fn query(&self) -> Repl {
        Repl::Slot {
            name: self.name.clone(),
        }
    }
}

fn active(name: &str) -> String {
    format!(
        "replication slot {name} is active (a standby streams through it): it is not dropped; \
         stop or fence that standby first"
    )
}
