//! Errors that end a command, each knowing its exit code (2 for configuration, 3 for
//! pending migrations of `migrate --check`, 1 otherwise).
//! Messages never include the database password (see [`crate::config::Secret`]).

use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database: {0}")]
    Database(String),
    #[error("database schema is at version {current}, this collector needs {latest}: run `telem-collector migrate`")]
    SchemaBehind { current: i32, latest: i32 },
    #[error("{0}")]
    Io(String),
    /// `migrate --check` found pending migrations (exit 3, as `--detailed-exitcode` does).
    #[error("migrations pending")]
    MigrationsPending,
}

impl RunError {
    /// The database could not be reached (after [`crate::store::wait_for_connection`]).
    pub fn cannot_connect(e: deadpool_postgres::PoolError) -> Self {
        RunError::Database(format!(
            "cannot connect: {}",
            crate::store::describe_pool(&e)
        ))
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Config(_) => 2,
            RunError::MigrationsPending => 3,
            _ => 1,
        }
    }
}
