//! `postgres_password` steps: the role's password, set as a SCRAM-SHA-256 verifier computed
//! here (the plaintext never reaches the server); checked by logging in over TCP. The
//! password is the database password (`secret: database`, the default) or the replication
//! role's (`secret: replication`, `Engine::replication_password`).

use serde::{Deserialize, Serialize};

use super::Step;
use crate::engine::pgadmin::{scram_verifier, Op};
use crate::engine::postgres::{exec, NOT_RUNNING};
use crate::engine::{Check, Engine, StepError, INSTALL_FIRST};
use crate::recipe::compiler::Compiler;
use crate::secret::Secret;

/// Which of the run's secrets the role's password is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PasswordSecret {
    /// The database password (`Engine::password`).
    #[default]
    Database,
    /// The replication password (`Engine::replication_password`).
    Replication,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresPassword {
    pub role: String,
    #[serde(default, skip_serializing_if = "is_database")]
    pub secret: PasswordSecret,
}

fn is_database(s: &PasswordSecret) -> bool {
    *s == PasswordSecret::Database
}

/// Why there is no replication password.
const NO_REPLICATION_PASSWORD: &str =
    "no replication password (the inventory's secrets name none)";

impl Step for PostgresPassword {
    const KIND: &'static str = "postgres_password";
    type Raw = PostgresPassword;

    fn compile(raw: &PostgresPassword, _: &mut Compiler) -> Option<PostgresPassword> {
        Some(raw.clone())
    }

    fn check(&self, eng: &Engine) -> Result<Check, StepError> {
        let pw = match self.secret {
            PasswordSecret::Database => {
                if eng.needs_install {
                    return Ok(Check::blocked(INSTALL_FIRST));
                }
                let Some(pw) = &eng.password else {
                    return Ok(Check::unknown(format!(
                        "set the password of role {} to one chosen when applied",
                        self.role
                    )));
                };
                pw
            }
            PasswordSecret::Replication => match &eng.replication_password {
                Some(pw) => pw,
                None => return Ok(Check::blocked(NO_REPLICATION_PASSWORD)),
            },
        };
        match login(eng, self, pw.expose()) {
            Ok(true) => Ok(Check::ok(format!(
                "role {} logs in with the {}password over TCP",
                self.role,
                self.which()
            ))),
            Ok(false) => Ok(Check::change1(format!(
                "set the {}password of role {} (SCRAM-SHA-256 verifier)",
                self.which(),
                self.role
            ))),
            Err(_) => Ok(Check::unknown(NOT_RUNNING)),
        }
    }

    fn apply(&self, eng: &Engine) -> Result<(), StepError> {
        let pw = self.password(eng)?;
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
        self.secret == PasswordSecret::Database
    }
}

impl PostgresPassword {
    /// How messages name the password ("the password", "the replication password").
    fn which(&self) -> &'static str {
        match self.secret {
            PasswordSecret::Database => "",
            PasswordSecret::Replication => "replication ",
        }
    }

    fn password<'e>(&self, eng: &'e Engine) -> Result<&'e Secret, StepError> {
        match self.secret {
            PasswordSecret::Database => eng
                .password
                .as_ref()
                .ok_or_else(|| StepError::msg(INSTALL_FIRST)),
            PasswordSecret::Replication => eng
                .replication_password
                .as_ref()
                .ok_or_else(|| StepError::msg(NO_REPLICATION_PASSWORD)),
        }
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
