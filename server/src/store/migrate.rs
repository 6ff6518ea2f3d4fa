//! Embedded schema migrations: applied in order by `telem-collector migrate` (idempotent, under
//! an advisory lock), and checked by `serve`, which refuses to run on a schema that is behind.
//! Each migration commits on its own: its transactional part in one transaction, then its
//! online steps (`migration_sql`: index builds with `CONCURRENTLY`) one by one outside any
//! transaction, then its row in `telem_collector_migrations`. So a running collector keeps
//! inserting while an index is built, and an interrupted migration is simply run again.

use std::time::{Duration, Instant};

use tokio_postgres::Client;

use super::migration_sql::{self, OnlineStep};

/// (version, name, SQL), in order. Never change what an applied migration makes: add a new one.
/// (Only how it gets there may change, as 2, 3 and 5 now build the same indexes online.)
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "upstream_schema",
        include_str!("../../migrations/0001_upstream_schema.sql"),
    ),
    (
        2,
        "query_indexes",
        include_str!("../../migrations/0002_query_indexes.sql"),
    ),
    (
        3,
        "ui_indexes",
        include_str!("../../migrations/0003_ui_indexes.sql"),
    ),
    (
        4,
        "record_counts",
        include_str!("../../migrations/0004_record_counts.sql"),
    ),
    (
        5,
        "payload_search",
        include_str!("../../migrations/0005_payload_search.sql"),
    ),
    (
        6,
        "record_counts_deltas",
        include_str!("../../migrations/0006_record_counts_deltas.sql"),
    ),
    (
        7,
        "payload_search_pending_list",
        include_str!("../../migrations/0007_payload_search_pending_list.sql"),
    ),
];

const TRACKING_TABLE: &str = "CREATE TABLE IF NOT EXISTS telem_collector_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

/// Where the database stands against the embedded migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaStatus {
    pub current: i32,
    pub latest: i32,
}

impl SchemaStatus {
    pub fn is_current(&self) -> bool {
        self.current >= self.latest
    }
}

fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// Reads the applied version (0 on an empty database).
pub async fn schema_status(client: &Client) -> Result<SchemaStatus, tokio_postgres::Error> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('telem_collector_migrations') IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    let current = if exists {
        client
            .query_one(
                "SELECT coalesce(max(version), 0) FROM telem_collector_migrations",
                &[],
            )
            .await?
            .get(0)
    } else {
        0
    };
    Ok(SchemaStatus {
        current,
        latest: latest(),
    })
}

/// The advisory lock key that serializes migrators (the same key earlier versions took with
/// `pg_advisory_xact_lock`, so an older and a newer migrator exclude each other too).
const MIGRATE_LOCK: i64 = 7291634;
/// How often a second migrator looks again whether the first is done.
const LOCK_RETRY: Duration = Duration::from_millis(200);

/// Applies every missing embedded migration; returns the versions applied. A server older than
/// the collector supports is refused first (`version::check_server_version`).
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>, tokio_postgres::Error> {
    migrate_with(client, MIGRATIONS).await
}

/// Applies the missing ones of `migrations` (version, name, SQL) in order under the migrators'
/// advisory lock, each recorded only once all of it (online steps included) succeeded.
pub async fn migrate_with(
    client: &mut Client,
    migrations: &[(i32, &str, &str)],
) -> Result<Vec<i32>, tokio_postgres::Error> {
    super::version::check_server_version(client).await?;
    lock(client).await?;
    let result = apply_missing(client, migrations).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATE_LOCK])
        .await;
    let done = result?;
    unlocked?;
    Ok(done)
}

/// Takes the session advisory lock, trying again while another migrator holds it. A waiting
/// `pg_advisory_lock` would hold a snapshot the other migrator's `CREATE INDEX CONCURRENTLY`
/// waits for (a deadlock PostgreSQL resolves by cancelling the build); a short try does not.
async fn lock(client: &Client) -> Result<(), tokio_postgres::Error> {
    let mut waited = false;
    loop {
        let got: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&MIGRATE_LOCK])
            .await?
            .get(0);
        if got {
            return Ok(());
        }
        if !waited {
            tracing::info!("another migrator is running; waiting for it");
            waited = true;
        }
        tokio::time::sleep(LOCK_RETRY).await;
    }
}

async fn apply_missing(
    client: &mut Client,
    migrations: &[(i32, &str, &str)],
) -> Result<Vec<i32>, tokio_postgres::Error> {
    client.batch_execute(TRACKING_TABLE).await?;
    let applied: Vec<i32> = client
        .query("SELECT version FROM telem_collector_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut done = Vec::new();
    for (version, name, sql) in migrations {
        if applied.contains(version) {
            continue;
        }
        let started = Instant::now();
        let parsed = migration_sql::parse(sql);
        let tx = client.transaction().await?;
        tx.batch_execute(parsed.transactional).await?;
        if parsed.online.is_empty() {
            record(&tx, *version, name).await?;
            tx.commit().await?;
        } else {
            tx.commit().await?;
            run_online(client, &parsed).await?;
            record(client, *version, name).await?;
        }
        tracing::info!(
            version,
            name,
            seconds = started.elapsed().as_secs_f64(),
            "migration applied"
        );
        done.push(*version);
    }
    Ok(done)
}

async fn record(
    client: &impl tokio_postgres::GenericClient,
    version: i32,
    name: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO telem_collector_migrations (version, name) VALUES ($1, $2)",
            &[&version, &name],
        )
        .await
        .map(drop)
}

/// Runs a migration's online steps, each in its own implicit transaction (none may run in a
/// transaction block). An INVALID index of a step's name, left by an interrupted
/// `CREATE INDEX CONCURRENTLY`, is dropped first: `IF NOT EXISTS` would keep it as it is.
async fn run_online(
    client: &Client,
    parsed: &migration_sql::MigrationSql<'_>,
) -> Result<(), tokio_postgres::Error> {
    if let Some(extension) = &parsed.requires_extension {
        let installed: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = $1)",
                &[extension],
            )
            .await?
            .get(0);
        if !installed {
            return Ok(());
        }
    }
    for step in &parsed.online {
        if let OnlineStep::CreateIndex { index, .. } = step {
            let invalid = client
                .query_opt(
                    "SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)",
                    &[index],
                )
                .await?
                .is_some_and(|row| row.get::<_, bool>(0));
            if invalid {
                tracing::warn!(index = %index, "dropping the invalid index an interrupted build left");
                client
                    .batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {index}"))
                    .await?;
            }
        }
        client.batch_execute(step.sql()).await?;
    }
    Ok(())
}

/// Runs one migration's SQL (both parts) without recording it.
async fn run_unrecorded(client: &mut Client, sql: &str) -> Result<(), tokio_postgres::Error> {
    let parsed = migration_sql::parse(sql);
    client.batch_execute(parsed.transactional).await?;
    run_online(client, &parsed).await
}

/// The payload trigram index of migration 5 as `payload_search_index` asks: created (where
/// `pg_trgm` is available, as the migration does) or dropped. It speeds up the web UI's payload
/// search (`q`) for rare words and costs every insert (server/README.md has both figures).
pub async fn payload_search_index(
    client: &mut Client,
    keep: bool,
) -> Result<(), tokio_postgres::Error> {
    if keep {
        // Created as migration 5 does (online), with migration 7's short pending list.
        run_unrecorded(
            client,
            include_str!("../../migrations/0005_payload_search.sql"),
        )
        .await?;
        client
            .batch_execute(include_str!(
                "../../migrations/0007_payload_search_pending_list.sql"
            ))
            .await
    } else {
        client
            .batch_execute("DROP INDEX CONCURRENTLY IF EXISTS records_payload_trgm_idx")
            .await
    }
}
