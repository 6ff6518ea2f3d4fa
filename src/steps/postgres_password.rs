//! `postgres_password` steps: the role's password, set as a SCRAM-SHA-256 verifier computed
//! here (the plaintext never reaches the server); checked by logging in over TCP.

use serde::{Deserialize, Serialize};

use super::Step;
use crate::engine::pgadmin::{scram_verifier, Op};
use crate::engine::postgres::{exec, NOT_RUNNING};
use crate::engine::{Check, Engine, StepError, INSTALL_FIRST};
use crate::recipe::compiler::Compiler;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresPassword {
    pub role: String,
}

impl Step for PostgresPassword {
    const KIND: &'static str = "postgres_password";
    type Raw = PostgresPassword;

    fn compile(raw: &PostgresPassword, _: &mut Compiler) -> Option<PostgresPassword> {
        Some(raw.clone())
    }

    fn check(&self, eng: &Engine) -> Result<Check, StepError> {
            if eng.needs_install {
                return Ok(Check::blocked(INSTALL_FIRST));
            }
            let Some(pw) = &eng.password else {
                return Ok(Check::unknown(format!(
                    "set the password of role {} to one chosen when applied",
                    self.role
                )));
            };
            match login(eng, self, pw.expose()) {
                Ok(true) => Ok(Check::ok(format!(
                    "role {} logs in with the password over TCP",
                    self.role
                ))),
                Ok(false) => Ok(Check::change1(format!(
                    "set the password of role {} (SCRAM-SHA-256 verifier)",
                    self.role
                ))),
                Err(_) => Ok(Check::unknown(NOT_RUNNING)),
            }
    }

    fn apply(&self, eng: &Engine) -> Result<(), StepError> {
            let pw = eng
                .password
                .as_ref()
                .ok_or_else(|| StepError::msg(INSTALL_FIRST))?;
            if login(eng, self, pw.expose()).unwrap_or(false) {
                return Ok(());
            }
            exec(
                eng,
                Op::SetVerifier {
                    role: self.role.clone(),
                    verifier: scram_verifier(pw.expose()),
                },
            )
    }

    fn uses_password(&self) -> bool {
        true
    }
}

fn login(
    eng: &Engine,
    step: &PostgresPassword,
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
