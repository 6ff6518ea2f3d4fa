//! Migrations on a live database (server/README.md, "Migrations on a live database"): while a
//! migration builds an index on a populated `records`, INSERTs from another connection (a
//! collector still running the previous binary) complete; with a plain `CREATE INDEX` they
//! wait for the whole build. An interrupted build leaves an INVALID index that the next
//! `migrate` drops and builds again, recording the migration only then.
//!
//! The index is built on an expression that takes a shared advisory lock the test holds
//! exclusively (a "gate"), so the build lasts exactly as long as the test needs, whatever the
//! machine's speed: the test waits (bounded) until the build waits at the gate, inserts, looks
//! that the build is still waiting, then opens the gate.

use std::time::{Duration, Instant};

use telem_collector::store;
use tokio_postgres::Client;

use crate::harness::migrated_db;
use crate::pg::{connect, PgCluster};

const GATE: i64 = 4_242_001;
const VERSION: i32 = 100;

/// A migration building `records_gate_idx` online, as the embedded ones do.
const ONLINE: &str = "-- telem:concurrently\n\
    CREATE INDEX CONCURRENTLY IF NOT EXISTS records_gate_idx ON records (migration_gate(payload));\n";
/// The same index built inside the migration's transaction (what migrations did before).
const IN_TRANSACTION: &str =
    "CREATE INDEX IF NOT EXISTS records_gate_idx ON records (migration_gate(payload));\n";

/// A migrated database with `rows` records and the gate function.
async fn populated(pg: &PgCluster, rows: i32) -> (String, Client) {
    let db = migrated_db(pg).await;
    let client = connect(&db).await;
    client
        .batch_execute(&format!(
            "INSERT INTO records (build, classification, timestamp_server, payload)
             SELECT (i % 100)::text, 'test/online/' || (i % 7), 1700000000 + i,
                    repeat('frame ' || md5(i::text) || E'\\n', 10)
             FROM generate_series(1, {rows}) i;
             CREATE FUNCTION migration_gate(t text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
             BEGIN
                 PERFORM pg_advisory_xact_lock_shared({GATE});
                 RETURN t;
             END $$;"
        ))
        .await
        .expect("records and gate");
    (db, client)
}

/// Whether backend `pid` waits for an advisory lock (the gate), looked at until `limit`.
async fn waits_at_gate(observer: &Client, pid: i32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let waiting: bool = observer
            .query_one(
                "SELECT coalesce(bool_or(wait_event = 'advisory'), false)
                 FROM pg_stat_activity WHERE pid = $1",
                &[&pid],
            )
            .await
            .unwrap()
            .get(0);
        if waiting || Instant::now() >= deadline {
            return waiting;
        }
        tokio::time::sleep(Duration::from_millis(10)).await; // polling interval, not a sync
    }
}

async fn backend_pid(client: &Client) -> i32 {
    client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0)
}

type Migrator = tokio::task::JoinHandle<(Client, Result<Vec<i32>, tokio_postgres::Error>)>;

/// Starts `migrate` of `sql` (as version 100) while the gate is closed; returns once its index
/// build waits at the gate, with the migrator's pid.
async fn start_gated_migration(db: &str, gate: &Client, sql: &'static str) -> (Migrator, i32) {
    gate.execute("SELECT pg_advisory_lock($1)", &[&GATE])
        .await
        .unwrap();
    let mut migrator = connect(db).await;
    let pid = backend_pid(&migrator).await;
    let task = tokio::spawn(async move {
        let result = store::migrate_with(&mut migrator, &[(VERSION, "gated_index", sql)]).await;
        (migrator, result)
    });
    assert!(
        waits_at_gate(gate, pid, Duration::from_secs(60)).await,
        "the index build never reached the gate"
    );
    (task, pid)
}

/// One INSERT as the collector's writer does, waiting at most 5 s for a lock.
async fn insert_one(db: &str) -> Result<Duration, tokio_postgres::Error> {
    let writer = connect(db).await;
    writer.batch_execute("SET lock_timeout = '5s'").await?;
    let started = Instant::now();
    writer
        .execute(
            "INSERT INTO records (build, classification, timestamp_server, payload)
             VALUES ('1', 'test/online/insert', 1800000000, 'inserted during the build')",
            &[],
        )
        .await?;
    Ok(started.elapsed())
}

/// Inserts while the migration `sql` builds its index; returns how the insert went and whether
/// the build was still running when it returned. Opens the gate and checks the migration then
/// completes and is recorded.
async fn insert_during_build(sql: &'static str) -> Option<(Result<Duration, String>, bool)> {
    let pg = PgCluster::shared()?;
    let (db, gate) = populated(pg, 50_000).await;
    let (migrator, pid) = start_gated_migration(&db, &gate, sql).await;
    let inserted = insert_one(&db).await.map_err(|e| {
        e.as_db_error()
            .map_or_else(|| e.to_string(), |d| d.message().to_string())
    });
    let still_building = waits_at_gate(&gate, pid, Duration::ZERO).await;
    gate.execute("SELECT pg_advisory_unlock($1)", &[&GATE])
        .await
        .unwrap();
    let (_, result) = tokio::time::timeout(Duration::from_secs(120), migrator)
        .await
        .expect("the migration completes once the gate opens")
        .unwrap();
    assert_eq!(result.expect("migrate"), [VERSION]);
    let (valid, recorded): (bool, i64) = {
        let row = gate
            .query_one(
                "SELECT (SELECT indisvalid FROM pg_index
                         WHERE indexrelid = 'records_gate_idx'::regclass),
                        (SELECT count(*) FROM telem_collector_migrations WHERE version = $1)",
                &[&VERSION],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert!(valid, "the index is valid");
    assert_eq!(recorded, 1, "the migration is recorded");
    Some((inserted, still_building))
}

#[tokio::test]
async fn inserts_complete_while_a_migration_builds_an_index() {
    let Some((inserted, still_building)) = insert_during_build(ONLINE).await else {
        return;
    };
    let took = inserted.expect("the INSERT completes during the build");
    assert!(
        still_building,
        "the build was still running when the INSERT returned"
    );
    assert!(
        took < Duration::from_secs(5),
        "the INSERT took {took:?} during the build"
    );
}

/// The test above can fail: with the index built inside the migration's transaction (a SHARE
/// lock on `records` for the whole build), the same INSERT waits until its lock timeout.
#[tokio::test]
async fn inserts_wait_while_a_plain_create_index_builds() {
    let Some((inserted, still_building)) = insert_during_build(IN_TRANSACTION).await else {
        return;
    };
    let error = inserted.expect_err("the INSERT waited for the build");
    assert!(
        error.contains("lock timeout"),
        "the INSERT failed on its lock timeout: {error}"
    );
    assert!(still_building, "the build outlasted the INSERT's wait");
}

/// An interrupted online build leaves an INVALID index and no record of the migration; the
/// next `migrate` drops that index, builds it again and records the migration.
#[tokio::test]
async fn an_interrupted_index_build_is_redone_by_the_next_migrate() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let (db, gate) = populated(pg, 2_000).await;
    let (migrator, pid) = start_gated_migration(&db, &gate, ONLINE).await;
    gate.execute("SELECT pg_cancel_backend($1)", &[&pid])
        .await
        .unwrap();
    let (mut migrator, result) = tokio::time::timeout(Duration::from_secs(60), migrator)
        .await
        .expect("the cancelled migration returns")
        .unwrap();
    let error = result.expect_err("the cancelled build fails the migration");
    assert!(
        error
            .as_db_error()
            .is_some_and(|d| d.message().contains("canceling statement")),
        "{error}"
    );
    let row = gate
        .query_one(
            "SELECT (SELECT indisvalid FROM pg_index WHERE indexrelid = 'records_gate_idx'::regclass),
                    (SELECT count(*) FROM telem_collector_migrations WHERE version = $1)",
            &[&VERSION],
        )
        .await
        .unwrap();
    assert!(
        !row.get::<_, bool>(0),
        "the interrupted build left an INVALID index"
    );
    assert_eq!(row.get::<_, i64>(1), 0, "the migration is not recorded");
    gate.execute("SELECT pg_advisory_unlock($1)", &[&GATE])
        .await
        .unwrap();
    let applied = store::migrate_with(&mut migrator, &[(VERSION, "gated_index", ONLINE)])
        .await
        .expect("migrate again");
    assert_eq!(applied, [VERSION]);
    let row = gate
        .query_one(
            "SELECT (SELECT indisvalid FROM pg_index WHERE indexrelid = 'records_gate_idx'::regclass),
                    (SELECT count(*) FROM telem_collector_migrations WHERE version = $1),
                    (SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'records_gate_idx%')",
            &[&VERSION],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "built again, valid");
    assert_eq!(row.get::<_, i64>(1), 1, "recorded");
    assert_eq!(row.get::<_, i64>(2), 1, "one index, not a second copy");
}

/// A second `migrate` started while the first builds an index waits for it without holding a
/// snapshot the build waits for (a blocking `pg_advisory_lock` would: PostgreSQL's deadlock
/// detector then cancels one of them), then finds the migration applied.
#[tokio::test]
async fn a_second_migrator_waits_for_the_first_without_deadlock() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let (db, gate) = populated(pg, 2_000).await;
    let (first, _) = start_gated_migration(&db, &gate, ONLINE).await;
    let mut second = connect(&db).await;
    let second_pid = backend_pid(&second).await;
    let second = tokio::spawn(async move {
        store::migrate_with(&mut second, &[(VERSION, "gated_index", ONLINE)]).await
    });
    // Bounded wait until the second migrator has asked for the lock (and been refused).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let asked: bool = gate
            .query_one(
                "SELECT coalesce(bool_or(query LIKE '%pg_try_advisory_lock%'), false)
                 FROM pg_stat_activity WHERE pid = $1",
                &[&second_pid],
            )
            .await
            .unwrap()
            .get(0);
        if asked {
            break;
        }
        assert!(Instant::now() < deadline, "the second migrator never asked");
        tokio::time::sleep(Duration::from_millis(10)).await; // polling interval, not a sync
    }
    gate.execute("SELECT pg_advisory_unlock($1)", &[&GATE])
        .await
        .unwrap();
    let (_, first) = tokio::time::timeout(Duration::from_secs(120), first)
        .await
        .expect("the first migrator completes")
        .unwrap();
    assert_eq!(first.expect("first migrate"), [VERSION]);
    let second = tokio::time::timeout(Duration::from_secs(60), second)
        .await
        .expect("the second migrator completes")
        .unwrap();
    assert_eq!(
        second.expect("second migrate"),
        Vec::<i32>::new(),
        "already applied by the first"
    );
}
