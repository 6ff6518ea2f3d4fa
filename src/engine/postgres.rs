//! The cluster as the PostgreSQL steps reach it: admin queries through psql (`pgadmin.rs`, as
//! the cluster's OS user, over its socket), and the `unknown` a check says while the server
//! cannot be reached yet.

use super::pgadmin::{Op, PgAdmin, Response};
use super::{Check, Engine, StepError};

pub(crate) const NOT_RUNNING: &str =
    "PostgreSQL is not reachable yet (installed or started by an earlier step)";

pub(crate) fn admin<'a>(eng: &'a Engine) -> PgAdmin<'a> {
    let pg = &eng.recipe.recipe.postgres;
    PgAdmin {
        host: eng.host,
        psql: eng.psql(),
        os_user: &pg.os_user,
        socket_dir: &pg.socket_dir,
        port: pg.port,
    }
}

/// Run a read-only admin query; when the server cannot be reached yet, the `unknown` check
/// that says why (e.g. psql's "connection to server ... failed", or no psql yet).
pub(crate) fn query(eng: &Engine, op: Op) -> Result<Response, Check> {
    // No postgres user yet: the package that creates it comes in an earlier step.
    if crate::host::lookup_user(eng.host, &eng.recipe.recipe.postgres.os_user).is_none() {
        return Err(Check::unknown(NOT_RUNNING));
    }
    admin(eng)
        .call(op)
        .map_err(|e| Check::unknown(format!("{NOT_RUNNING}: {e}")))
}

pub(crate) fn exec(eng: &Engine, op: Op) -> Result<(), StepError> {
    admin(eng).call(op).map(drop).map_err(StepError::host)
}
