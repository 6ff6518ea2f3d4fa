//! The oldest PostgreSQL the collector supports, checked against the version the server reports
//! before any migration runs.
//!
//! PostgreSQL 13 (EL 9's default, and the oldest release still supported upstream when this
//! was written). What the migrations need, from PostgreSQL's documentation: `CREATE INDEX IF
//! NOT EXISTS` (9.5), `ON CONFLICT` (9.5), statement triggers with transition tables
//! (`REFERENCING NEW TABLE`, 10), `EXECUTE FUNCTION` in `CREATE TRIGGER` (11), and `pg_trgm` as
//! a trusted extension the database owner may create (13; older servers would only lose the
//! payload-search index). An older server (EL 8's default stream is PostgreSQL 10) is refused
//! with a message that says so, instead of failing halfway through migration 4.

use tokio_postgres::GenericClient;

/// `server_version_num` of the oldest supported server.
pub const MIN_SERVER_VERSION_NUM: i32 = 130000;

/// Fails (with an error raised by the server itself, so it reads like any other database error)
/// when the server is older than `MIN_SERVER_VERSION_NUM`.
pub async fn check_server_version<C: GenericClient>(
    client: &C,
) -> Result<(), tokio_postgres::Error> {
    require_server_version(client, MIN_SERVER_VERSION_NUM).await
}

/// Fails when the server reports a `server_version_num` below `min` (e.g. 130000 for 13).
pub async fn require_server_version<C: GenericClient>(
    client: &C,
    min: i32,
) -> Result<(), tokio_postgres::Error> {
    let major = min / 10000;
    // `min` is an integer: formatting it into the statement cannot inject anything.
    client
        .batch_execute(&format!(
            "DO $$ BEGIN
                IF current_setting('server_version_num')::int < {min} THEN
                    RAISE EXCEPTION 'PostgreSQL % is older than {major}, the oldest telem-collector supports: install PostgreSQL {major} or newer (on EL 8: dnf module enable postgresql:15) and migrate again',
                        current_setting('server_version');
                END IF;
            END $$"
        ))
        .await
}
