//! PostgreSQL steps: role, database, password (as a SCRAM verifier), pg_dump backups, and the
//! collector's schema migrations.

use std::path::Path;

use super::pgadmin::{scram_verifier, Op, PgAdmin};
use super::{Check, Engine, StepError, INSTALL_FIRST};
use crate::host::{Cmd, Owner};
use crate::recipe::model::{
    MigrateStep, PgBackupStep, PgDatabaseStep, PgPasswordStep, PgReassignStep, PgRoleStep, Presence,
};

const NOT_RUNNING: &str =
    "PostgreSQL is not reachable yet (installed or started by an earlier step)";

fn admin<'a>(eng: &'a Engine) -> PgAdmin<'a> {
    let pg = &eng.recipe.recipe.postgres;
    PgAdmin {
        host: eng.host,
        os_user: &pg.os_user,
        socket_dir: &pg.socket_dir,
        port: pg.port,
    }
}

/// Run a read-only admin query; when the server cannot be reached yet, the `unknown` check
/// that says why (e.g. the admin child may not execute this binary).
fn query(eng: &Engine, op: Op) -> Result<super::pgadmin::Response, Check> {
    // No postgres user yet: the package that creates it comes in an earlier step.
    if crate::host::lookup_user(eng.host, &eng.recipe.recipe.postgres.os_user).is_none() {
        return Err(Check::unknown(NOT_RUNNING));
    }
    admin(eng)
        .call(op)
        .map_err(|e| Check::unknown(format!("{NOT_RUNNING}: {e}")))
}

fn exec(eng: &Engine, op: Op) -> Result<(), StepError> {
    admin(eng).call(op).map(drop).map_err(StepError::host)
}

pub fn check_role(eng: &Engine, step: &PgRoleStep) -> Result<Check, StepError> {
    let r = match query(
        eng,
        Op::RoleExists {
            role: step.name.clone(),
        },
    ) {
        Ok(r) => r,
        Err(unknown) => return Ok(unknown),
    };
    let exists = r.exists == Some(true);
    Ok(match (step.state, exists) {
        (Presence::Present, true) => Check::ok(format!("role {} exists", step.name)),
        (Presence::Present, false) => Check::change1(format!("create role {} (LOGIN)", step.name)),
        (Presence::Absent, true) => Check::change1(format!("drop role {}", step.name)),
        (Presence::Absent, false) => Check::ok(format!("role {} is absent", step.name)),
    })
}

pub fn apply_role(eng: &Engine, step: &PgRoleStep) -> Result<(), StepError> {
    let exists = admin(eng)
        .call(Op::RoleExists {
            role: step.name.clone(),
        })
        .map_err(StepError::host)?
        .exists
        == Some(true);
    match (step.state, exists) {
        (Presence::Present, false) => exec(
            eng,
            Op::CreateRole {
                role: step.name.clone(),
            },
        ),
        (Presence::Absent, true) => exec(
            eng,
            Op::DropRole {
                role: step.name.clone(),
            },
        ),
        _ => Ok(()),
    }
}

pub fn check_database(eng: &Engine, step: &PgDatabaseStep) -> Result<Check, StepError> {
    let r = match query(
        eng,
        Op::Database {
            name: step.name.clone(),
        },
    ) {
        Ok(r) => r,
        Err(unknown) => return Ok(unknown),
    };
    let exists = r.exists == Some(true);
    Ok(match (step.state, exists) {
        (Presence::Present, false) => Check::change1(format!(
            "create database {} owned by {}",
            step.name, step.owner
        )),
        (Presence::Present, true) if r.owner.as_deref() != Some(step.owner.as_str()) => {
            Check::change1(format!(
                "make {} the owner of database {} (owned by {})",
                step.owner,
                step.name,
                r.owner.unwrap_or_default()
            ))
        }
        (Presence::Present, true) => Check::ok(format!(
            "database {} exists, owned by {}",
            step.name, step.owner
        )),
        (Presence::Absent, true) => Check::change1(format!("drop database {}", step.name)),
        (Presence::Absent, false) => Check::ok(format!("database {} is absent", step.name)),
    })
}

pub fn apply_database(eng: &Engine, step: &PgDatabaseStep) -> Result<(), StepError> {
    let r = admin(eng)
        .call(Op::Database {
            name: step.name.clone(),
        })
        .map_err(StepError::host)?;
    let exists = r.exists == Some(true);
    match (step.state, exists) {
        (Presence::Present, false) => exec(
            eng,
            Op::CreateDatabase {
                name: step.name.clone(),
                owner: step.owner.clone(),
            },
        ),
        (Presence::Present, true) if r.owner.as_deref() != Some(step.owner.as_str()) => exec(
            eng,
            Op::AlterDatabaseOwner {
                name: step.name.clone(),
                owner: step.owner.clone(),
            },
        ),
        (Presence::Absent, true) => exec(
            eng,
            Op::DropDatabase {
                name: step.name.clone(),
            },
        ),
        _ => Ok(()),
    }
}

fn login(
    eng: &Engine,
    step: &PgPasswordStep,
    password: &str,
) -> Result<bool, crate::host::HostError> {
    let pg = &eng.recipe.recipe.postgres;
    eng.host.pg_login(
        "127.0.0.1",
        pg.port,
        &step.role,
        password,
        &eng.recipe.recipe.database.name,
    )
}

pub fn check_password(eng: &Engine, step: &PgPasswordStep) -> Result<Check, StepError> {
    if eng.needs_install {
        return Ok(Check::blocked(INSTALL_FIRST));
    }
    let Some(pw) = &eng.password else {
        return Ok(Check::unknown(format!(
            "set the password of role {} to one chosen when applied",
            step.role
        )));
    };
    match login(eng, step, pw.expose()) {
        Ok(true) => Ok(Check::ok(format!(
            "role {} logs in with the password over TCP",
            step.role
        ))),
        Ok(false) => Ok(Check::change1(format!(
            "set the password of role {} (SCRAM-SHA-256 verifier)",
            step.role
        ))),
        Err(_) => Ok(Check::unknown(NOT_RUNNING)),
    }
}

pub fn apply_password(eng: &Engine, step: &PgPasswordStep) -> Result<(), StepError> {
    let pw = eng
        .password
        .as_ref()
        .ok_or_else(|| StepError::msg(INSTALL_FIRST))?;
    if login(eng, step, pw.expose()).unwrap_or(false) {
        return Ok(());
    }
    exec(
        eng,
        Op::SetVerifier {
            role: step.role.clone(),
            verifier: scram_verifier(pw.expose()),
        },
    )
}

pub fn check_backup(eng: &Engine, step: &PgBackupStep) -> Result<Check, StepError> {
    if eng.opts.no_backup {
        return Ok(Check::ok("no backup (--no-backup)"));
    }
    let r = match query(
        eng,
        Op::Database {
            name: step.database.clone(),
        },
    ) {
        Ok(r) => r,
        Err(unknown) => return Ok(unknown),
    };
    if r.exists != Some(true) {
        return Ok(Check::ok(format!(
            "no database {} to back up",
            step.database
        )));
    }
    Ok(Check::change1(format!(
        "pg_dump {} into {}/",
        step.database, step.dir
    )))
}

pub fn apply_backup(eng: &Engine, step: &PgBackupStep) -> Result<(), StepError> {
    if eng.opts.no_backup {
        return Ok(());
    }
    let r = admin(eng)
        .call(Op::Database {
            name: step.database.clone(),
        })
        .map_err(StepError::host)?;
    if r.exists != Some(true) {
        return Ok(());
    }
    let pg = &eng.recipe.recipe.postgres;
    let dir = Path::new(&step.dir);
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
    let file = dir.join(format!("{}-{secs}.dump", step.database));
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
        &step.database,
    ])
    .user(&pg.os_user);
    eng.run_ok(&cmd)?;
    eprintln!("backup of database {} written to {file_s}", step.database);
    Ok(())
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

pub fn check_migrate(eng: &Engine, step: &MigrateStep) -> Result<Check, StepError> {
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
    if step.always {
        return Ok(Check::change1("run the collector's migrations"));
    }
    // The collector waits (bounded) for a database that is starting; a check need not.
    let db = &eng.recipe.recipe.database.name;
    if let Err(unknown) = query(eng, Op::Database { name: db.clone() }) {
        return Ok(unknown);
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

pub fn apply_migrate(eng: &Engine, _step: &MigrateStep) -> Result<(), StepError> {
    eng.run_ok(&migrate_cmd(eng, &[])).map(drop)
}

pub fn check_reassign(eng: &Engine, step: &PgReassignStep) -> Result<Check, StepError> {
    let db = match query(
        eng,
        Op::Database {
            name: step.database.clone(),
        },
    ) {
        Ok(r) => r,
        Err(unknown) => return Ok(unknown),
    };
    if db.exists != Some(true) {
        return Ok(Check::ok(format!("no database {} yet", step.database)));
    }
    let owned = admin(eng)
        .call(Op::OwnedBy {
            database: step.database.clone(),
            role: step.from.clone(),
        })
        .map_err(StepError::host)?
        .count
        .unwrap_or_default();
    if owned == 0 {
        return Ok(Check::ok(format!(
            "{} owns no tables in database {}",
            step.from, step.database
        )));
    }
    Ok(Check::change1(format!(
        "make {} the owner of the {owned} tables, views and sequences {} owns in database {} (records kept)",
        step.to, step.from, step.database
    )))
}

pub fn apply_reassign(eng: &Engine, step: &PgReassignStep) -> Result<(), StepError> {
    exec(
        eng,
        Op::Reassign {
            database: step.database.clone(),
            from: step.from.clone(),
            to: step.to.clone(),
        },
    )
}
