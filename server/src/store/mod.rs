//! PostgreSQL storage: the connection pool, embedded migrations, the group-commit writer, the
//! read queries and the retention purge. Nothing here knows about HTTP.

mod filter;
mod gather;
mod migrate;
mod migration_sql;
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

pub use filter::{Classification, Filter};
pub use migrate::{
    migrate, migrate_with, payload_search_index, schema_status, SchemaStatus, MIGRATIONS,
};
pub use query::{query_records, RecordFilter};
pub use retention::{purge, retention_plan, PurgeRule, PurgeSummary};
pub use writer::{Writer, WriterOptions};

/// How long a request may wait for a pooled connection before it becomes a 503.
pub const POOL_WAIT: Duration = Duration::from_millis(800);
/// How long a page may wait for a reader connection before it becomes a 503: an operator
/// waits for a page more patiently than a client for its record, and a waiting page costs
/// nothing.
pub const READER_POOL_WAIT: Duration = Duration::from_secs(5);

/// A storage failure, as the HTTP layer needs to tell them apart.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached, timed out or is overloaded: retry later (503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database refused this record's data (400): an error only its content can cause
    /// ([`ErrorMeaning::Content`]); validation refuses what it knows first.
    #[error("record refused by the database: {0}")]
    Refused(String),
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Unavailable(describe_pool(&e))
    }
}

/// Why the pool could not hand out a connection, with the server's reason when it gave one
/// (`password authentication failed for user "telemetry"`), not just "db error".
pub fn describe_pool(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => describe(e),
        other => other.to_string(),
    }
}

/// How long startup and the commands wait for a database that is still starting.
pub const STARTUP_WAIT: Duration = Duration::from_secs(10);

/// A connection from `pool`, retrying for up to [`STARTUP_WAIT`] while the database is still
/// starting (refused connections, "the database system is starting up"). An error waiting
/// cannot cure ([`is_permanent`]: authentication, a missing database) is returned at once.
pub async fn wait_for_connection(
    pool: &Pool,
) -> Result<deadpool_postgres::Object, deadpool_postgres::PoolError> {
    let deadline = tokio::time::Instant::now() + STARTUP_WAIT;
    loop {
        match pool.get().await {
            Ok(client) => return Ok(client),
            Err(e) if tokio::time::Instant::now() >= deadline || is_permanent(&e) => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// A connection failure waiting cannot cure: authentication (SQLSTATE class 28), a missing
/// database (3D000), or a server certificate that `database_ca_file` does not vouch for.
pub fn is_permanent(e: &deadpool_postgres::PoolError) -> bool {
    match e {
        deadpool_postgres::PoolError::Backend(e) => {
            e.code()
                .is_some_and(|c| c.code().starts_with("28") || c.code() == "3D000")
                || certificate_refusal(e).is_some()
        }
        _ => false,
    }
}

/// The TLS library's refusal of the server's certificate (signed by no CA of
/// `database_ca_file`, not naming the URL's host, expired), found under the driver's
/// "error performing TLS handshake".
pub fn certificate_refusal(e: &tokio_postgres::Error) -> Option<&rustls::Error> {
    let io = std::error::Error::source(e)?.downcast_ref::<std::io::Error>()?;
    let tls = io.get_ref()?.downcast_ref::<rustls::Error>()?;
    matches!(tls, rustls::Error::InvalidCertificate(_)).then_some(tls)
}

/// The server's message for a database error, else the driver's (tokio-postgres alone says
/// only "db error"); a refused server certificate says what it must be.
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(tls) = certificate_refusal(e) {
        return format!(
            "TLS: the database server's certificate is refused ({tls}): it must be signed by a \
             CA of database_ca_file and name the host of the URL"
        );
    }
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}

/// What a database error means for the records of the statement that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorMeaning {
    /// The database or the connection cannot work now (connection loss, shutdown, out of
    /// resources, timeouts, conflicts, a broken or missing schema): every record waits (503).
    Unavailable,
    /// Something in the rows themselves: a value PostgreSQL cannot take (data exceptions 22,
    /// integrity 23, program limits 54 such as an index row too large, an error raised by a
    /// trigger or routine). One record's refusal (400); its batch-mates are stored.
    Content,
}

/// SQLSTATE classes that no record's content can cause: the server, the connection or the
/// schema is at fault, and the same statement may succeed later.
const UNAVAILABLE_CLASSES: &[&str] = &[
    "08", // connection exception
    "25", // invalid transaction state (read-only standby)
    "28", // invalid authorization
    "3D", // invalid catalog name (database gone)
    "40", // transaction rollback (serialization failure, deadlock)
    "42", // syntax error or access rule violation (missing table, revoked privilege)
    "53", // insufficient resources (disk full, out of memory, too many connections)
    "55", // object not in prerequisite state (lock not available)
    "57", // operator intervention (query canceled, admin shutdown, crash, cannot connect now)
    "58", // system error (I/O)
    "F0", // configuration file error
    "XX", // internal error
];

/// Classifies an error by its SQLSTATE class. Errors without one (the connection broke, a
/// timeout, a protocol error) are `Unavailable`; so is every class in [`UNAVAILABLE_CLASSES`].
/// Every other class (22, 23, 54, P0 and whatever else a statement's data can provoke) is
/// about the rows, so the writer finds the record at fault and refuses it alone.
pub fn meaning(e: &tokio_postgres::Error) -> ErrorMeaning {
    match e.code() {
        Some(code) if !UNAVAILABLE_CLASSES.contains(&&code.code()[..2]) => ErrorMeaning::Content,
        _ => ErrorMeaning::Unavailable,
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        let message = describe(&e);
        match meaning(&e) {
            ErrorMeaning::Content => StoreError::Refused(message),
            ErrorMeaning::Unavailable => StoreError::Unavailable(message),
        }
    }
}

/// A pool on `pg`: plain connections without `database_ca_file` (as before it existed), TLS
/// verified against the CA file and the URL's host with it.
fn pool(config: &Config, pg: tokio_postgres::Config, size: usize, wait: Duration) -> Pool {
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match &config.database_ca {
        None => Manager::from_config(pg, NoTls, manager_config),
        Some(ca) => Manager::from_config(pg, ca.connector(), manager_config),
    };
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(wait))
        .create_timeout(Some(Duration::from_millis(1500)))
        .recycle_timeout(Some(Duration::from_millis(500)))
        .build()
        .expect("a runtime is configured, so building cannot fail")
}

/// A pool of one connection for the commands (`migrate`, `purge`) and the daily purge inside
/// `serve`, which must take neither the writer's connections nor the readers'. Connections are
/// made lazily, so this succeeds while the database is down.
pub fn build_pool(config: &Config) -> Pool {
    pool(config, config.pg_config(), 1, POOL_WAIT)
}

/// The group-commit writer's pool: `writer_connections` for batches plus one for readiness
/// checks and one for folding the chart counts (a few milliseconds a second). Nothing else
/// takes these, so readers can never starve ingestion.
pub fn writer_pool(config: &Config) -> Pool {
    pool(
        config,
        config.pg_config(),
        config.writer_connections + 2,
        POOL_WAIT,
    )
}

/// The web UI's and the query API's pool on `read_database_url` (else `database_url`):
/// `reader_connections`, each with `statement_timeout = read_statement_timeout` so a page too
/// costly to compute fails (503) instead of holding its connection.
pub fn reader_pool(config: &Config) -> Pool {
    let mut pg = config.read_pg_config();
    let timeout = format!(
        "-c statement_timeout={}",
        config.read_statement_timeout.as_millis()
    );
    let options = match pg.get_options() {
        Some(given) if !given.is_empty() => format!("{given} {timeout}"),
        _ => timeout,
    };
    pg.options(&options);
    pool(config, pg, config.reader_connections, READER_POOL_WAIT)
}

/// One connection to `read_database_url`, for `/readyz` only (so busy readers never make the
/// collector unready); `None` without that key: the writer's check covers the one database.
pub fn read_check_pool(config: &Config) -> Option<Pool> {
    config
        .read_database_url
        .as_ref()
        .map(|_| pool(config, config.read_pg_config(), 1, POOL_WAIT))
}
