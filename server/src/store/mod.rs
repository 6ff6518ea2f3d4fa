//! PostgreSQL storage: the connection pool, embedded migrations, the group-commit writer, the
//! read queries and the retention purge. Nothing here knows about HTTP.

mod migrate;
mod query;
mod retention;
mod rollup;
pub mod ui_queries;
pub mod version;
mod writer;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::config::Config;

pub use migrate::{migrate, schema_status, SchemaStatus, MIGRATIONS};
pub use query::{count_records, query_records, RecordFilter};
pub use retention::{purge, retention_plan, PurgeRule, PurgeSummary};
pub use writer::{Writer, WriterOptions};

/// How long a request may wait for a pooled connection before it becomes a 503.
pub const POOL_WAIT: Duration = Duration::from_millis(800);

/// A storage failure, as the HTTP layer needs to tell them apart.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached, timed out or is overloaded: retry later (503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database refused this record's data (400; validation should have caught it).
    #[error("record refused by the database: {0}")]
    Refused(String),
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

/// The server's message for a database error, else the driver's (tokio-postgres alone says
/// only "db error").
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        // Data exceptions (22) and integrity violations (23) are about the record itself.
        let refused = e
            .code()
            .is_some_and(|c| c.code().starts_with("22") || c.code().starts_with("23"));
        let message = describe(&e);
        if refused {
            StoreError::Refused(message)
        } else {
            StoreError::Unavailable(message)
        }
    }
}

/// Builds the pool; connections are made lazily, so this succeeds while the database is down.
pub fn build_pool(config: &Config) -> Pool {
    let manager = Manager::from_config(
        config.pg_config(),
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(config.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(Duration::from_millis(1500)))
        .recycle_timeout(Some(Duration::from_millis(500)))
        .build()
        .expect("a runtime is configured, so building cannot fail")
}
