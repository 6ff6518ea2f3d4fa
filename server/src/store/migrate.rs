//! Embedded schema migrations: applied in order by `telem-collector migrate` (idempotent, under
//! an advisory lock), and checked by `serve`, which refuses to run on a schema that is behind.

use tokio_postgres::Client;

/// (version, name, SQL), in order. Never edit an applied migration: add a new one.
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

/// Applies every missing migration in one transaction; returns the versions applied. A server
/// older than the collector supports is refused first (`version::check_server_version`).
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>, tokio_postgres::Error> {
    super::version::check_server_version(client).await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock(7291634)", &[])
        .await?;
    tx.batch_execute(TRACKING_TABLE).await?;
    let applied: Vec<i32> = tx
        .query("SELECT version FROM telem_collector_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut done = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO telem_collector_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await?;
        done.push(*version);
    }
    tx.commit().await?;
    Ok(done)
}

/// The payload trigram index of migration 5 as `payload_search_index` asks: created (where
/// `pg_trgm` is available, as the migration does) or dropped. It speeds up the web UI's payload
/// search (`q`) for rare words and costs every insert (server/README.md has both figures).
pub async fn payload_search_index(
    client: &Client,
    keep: bool,
) -> Result<(), tokio_postgres::Error> {
    if keep {
        // Created as migration 5 does, with migration 7's short pending list.
        client
            .batch_execute(include_str!("../../migrations/0005_payload_search.sql"))
            .await?;
        client
            .batch_execute(include_str!(
                "../../migrations/0007_payload_search_pending_list.sql"
            ))
            .await
    } else {
        client
            .batch_execute("DROP INDEX IF EXISTS records_payload_trgm_idx")
            .await
    }
}
