//! `postgres_fence` steps: an old primary (after its standby was promoted) is stopped, not
//! started at boot, and its data directory holds `standby.signal` and a marker saying why and
//! when, so it can never run as a primary again.

use serde::{Deserialize, Serialize};

use super::postgres_standby::default_service;
use super::Step;
use crate::engine::pgrepl::Repl;
use crate::engine::postgres::{admin, NOT_RUNNING};
use crate::engine::standby::{self, FENCE_MARKER, STANDBY_SIGNAL};
use crate::engine::{Check, Engine, Manager, StepError};
use crate::host::Cmd;
use crate::recipe::compiler::Compiler;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresFence {
    /// The recipe's service that runs the cluster.
    #[serde(default = "default_service")]
    pub service: String,
    /// Why, in the marker.
    #[serde(default = "default_reason")]
    pub reason: String,
}

fn default_reason() -> String {
    "a standby was promoted to primary in its place".to_owned()
}

impl Step for PostgresFence {
    const KIND: &'static str = "postgres_fence";
    type Raw = PostgresFence;

    fn compile(raw: &PostgresFence, c: &mut Compiler) -> Option<PostgresFence> {
        c.service("service", &raw.service).then(|| raw.clone())
    }

    fn check(&self, eng: &Engine) -> Result<Check, StepError> {
        if crate::host::lookup_user(eng.host, &eng.recipe.recipe.postgres.os_user).is_none() {
            return Ok(Check::unknown(NOT_RUNNING));
        }
        let def = eng.service(&self.service).expect("validated service name");
        let running = eng.services.is_running(def).map_err(StepError::host)?;
        let enabled = eng.services.is_enabled(def).map_err(StepError::host)?;
        let data_dir = self.data_dir(eng)?;
        let (signal, marker) = standby::fence_state(eng.host, &data_dir)?;
        let mut changes = Vec::new();
        if running {
            changes.push(format!("stop {}", def.unit));
        }
        if enabled == Some(true) {
            changes.push(format!("disable {} at boot", def.unit));
        }
        if !(signal && marker) {
            changes.push(format!(
                "write {STANDBY_SIGNAL} and {FENCE_MARKER} into {data_dir} (it can only start as a standby)"
            ));
        }
        Ok(match changes.is_empty() {
            true => Check::ok(format!(
                "fenced: {} stopped, {data_dir} holds {STANDBY_SIGNAL} and {FENCE_MARKER}",
                def.unit
            )),
            false => Check::change(changes),
        })
    }

    fn apply(&self, eng: &Engine) -> Result<(), StepError> {
        let def = eng.service(&self.service).expect("validated service name");
        // Asked while it still runs.
        let data_dir = self.data_dir(eng)?;
        if eng.services.is_running(def).map_err(StepError::host)? {
            eng.services.stop(def)?;
        }
        if eng.services.manager == Manager::Systemd
            && eng.services.is_enabled(def).map_err(StepError::host)? == Some(true)
        {
            eng.run_ok(&Cmd::new(["systemctl", "disable", &def.unit]))?;
        }
        let stamp = standby::stamp(time::OffsetDateTime::now_utc());
        standby::fence_files(
            eng.host,
            &eng.recipe.recipe.postgres.os_user,
            &data_dir,
            &self.reason,
            &stamp,
        )
    }
}

impl PostgresFence {
    /// The cluster's data directory: the server's own word while it runs, else where the
    /// cluster is found on disk.
    fn data_dir(&self, eng: &Engine) -> Result<String, StepError> {
        if let Ok(a) = admin(eng).repl(&Repl::Standby) {
            if let Some(s) = a.standby {
                return Ok(s.data_directory);
            }
        }
        let def = eng.service(&self.service);
        standby::data_dir_offline(eng.host, def, &eng.recipe.recipe.postgres.data_dir)
    }
}
