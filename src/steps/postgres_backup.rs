//! `postgres_backup` steps: a `pg_dump` of the database (custom format) into a directory of
//! the cluster's OS user, unless `--no-backup`.

use serde::{Deserialize, Serialize};

use super::Step;
use std::path::Path;

use crate::engine::pgadmin::Op;
use crate::engine::postgres::{admin, query};
use crate::engine::{Check, Engine, StepError};
use crate::host::{Cmd, Owner};
use crate::recipe::compiler::Compiler;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresBackup {
    pub database: String,
    pub dir: String,
}

impl Step for PostgresBackup {
    const KIND: &'static str = "postgres_backup";
    type Raw = PostgresBackup;

    fn compile(raw: &PostgresBackup, _: &mut Compiler) -> Option<PostgresBackup> {
        Some(raw.clone())
    }

    fn check(&self, eng: &Engine) -> Result<Check, StepError> {
            if eng.opts.no_backup {
                return Ok(Check::ok("no backup (--no-backup)"));
            }
            let r = match query(
                eng,
                Op::Database {
                    name: self.database.clone(),
                },
            ) {
                Ok(r) => r,
                Err(unknown) => return Ok(unknown),
            };
            if r.exists != Some(true) {
                return Ok(Check::ok(format!(
                    "no database {} to back up",
                    self.database
                )));
            }
            Ok(Check::change1(format!(
                "pg_dump {} into {}/",
                self.database, self.dir
            )))
    }

    fn apply(&self, eng: &Engine) -> Result<(), StepError> {
            if eng.opts.no_backup {
                return Ok(());
            }
            let r = admin(eng)
                .call(Op::Database {
                    name: self.database.clone(),
                })
                .map_err(StepError::host)?;
            if r.exists != Some(true) {
                return Ok(());
            }
            let pg = &eng.recipe.recipe.postgres;
            let dir = Path::new(&self.dir);
            let own = Owner {
                user: pg.os_user.clone(),
                group: "root".into(),
                mode: 0o700,
            };
            eng.host.mkdir(dir, &own).map_err(StepError::host)?;
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            let file = dir.join(format!("{}-{secs}.dump", self.database));
            let port = pg.port.to_string();
            let file_s = file.display().to_string();
            let cmd = Cmd::new([
                "pg_dump",
                "--format=custom",
                "-h",
                &pg.socket_dir,
                "-p",
                &port,
                "-f",
                &file_s,
                &self.database,
            ])
            .user(&pg.os_user);
            eng.run_ok(&cmd)?;
            eng.note(format!(
                "backup of database {} written to {file_s}",
                self.database
            ));
            Ok(())
    }
}
