//! The pre-aggregated counts behind the chart pages (`record_counts`, migration 4, and the
//! changes appended to `record_counts_delta` until they are folded, migration 6) stay exact:
//! after concurrent group-committed inserts, deletes (as retention purges them), updates and a
//! truncate, and after the migration fills them for records stored before it. The chart
//! queries built on them agree with counting the records themselves, also for time windows
//! that start mid-hour.

use telem_collector::store::{self, build_pool, ui_queries, Classification, Filter};
use tokio_postgres::Client;

use crate::harness::{config, header_request, migrated_db, send_raw, TestServer};
use crate::pg::{connect, PgCluster};

const DIMENSIONS: [(&str, &str); 4] = [
    ("records", "''"),
    ("build", "build"),
    ("platform", "host_type"),
    ("arch", "architecture"),
];

/// Every (dimension, classification, value, day, count): from the counts table, then counted
/// from the records.
async fn both_ways(client: &Client) -> (Vec<String>, Vec<String>) {
    let mut rolled = Vec::new();
    let mut counted = Vec::new();
    for (dimension, column) in DIMENSIONS {
        // The folded counts plus the changes appended since the last fold (migration 6).
        let delta_column = match dimension {
            "records" => "''",
            "build" => "build",
            "platform" => "platform",
            _ => "arch",
        };
        let stored = client
            .query(
                &format!(
                    "SELECT classification, value, day, sum(n)::int8 FROM (
                         SELECT classification, value, day, n FROM record_counts
                         WHERE dimension = $1
                         UNION ALL
                         SELECT classification, {delta_column}, day, n FROM record_counts_delta
                     ) u(classification, value, day, n)
                     GROUP BY 1, 2, 3 HAVING sum(n) <> 0 ORDER BY 1, 2, 3"
                ),
                &[&dimension],
            )
            .await
            .unwrap();
        let sql = format!(
            "SELECT classification::text, coalesce({column}::text, '(none)'),
                    (floor(timestamp_server / 86400) * 86400)::int8, count(*)
             FROM records GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        );
        let scanned = client.query(&sql, &[]).await.unwrap();
        for (rows, out) in [(stored, &mut rolled), (scanned, &mut counted)] {
            for r in rows {
                let (c, v, d, n): (String, String, i64, i64) =
                    (r.get(0), r.get(1), r.get(2), r.get(3));
                out.push(format!("{dimension} {c} {v} {d} {n}"));
            }
        }
    }
    (rolled, counted)
}

/// (key, count) rows of `sql`.
async fn pairs<K: for<'a> tokio_postgres::types::FromSql<'a>>(
    client: &Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Vec<(K, i64)> {
    client
        .query(sql, params)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// The counts agree with the records before folding (folded counts plus the appended
/// changes), and again after `record_counts_fold()` moved every change into `record_counts`.
async fn assert_exact(client: &Client, when: &str) {
    for stage in ["unfolded", "folded"] {
        if stage == "folded" {
            client
                .query_one("SELECT record_counts_fold()", &[])
                .await
                .unwrap();
            let left: i64 = client
                .query_one("SELECT count(*) FROM record_counts_delta", &[])
                .await
                .unwrap()
                .get(0);
            assert_eq!(left, 0, "a fold after {when} leaves no change unfolded");
        }
        let (rolled, counted) = both_ways(client).await;
        let only_rolled: Vec<_> = rolled.iter().filter(|r| !counted.contains(r)).collect();
        let only_counted: Vec<_> = counted.iter().filter(|c| !rolled.contains(c)).collect();
        assert!(
            only_rolled.is_empty() && only_counted.is_empty(),
            "record_counts after {when} ({stage}): only in the counts {only_rolled:?}, only counted {only_counted:?}"
        );
    }
}

/// Rows with every kind of dimension value (NULL platforms and architectures included), spread
/// over hours: `n` rows from `start` (unix seconds), one every 17 minutes.
async fn insert_rows(client: &Client, n: i32, start: i64) {
    client
        .execute(
            "INSERT INTO records (classification, build, host_type, architecture,
                                  timestamp_server, payload, record_version, severity)
             SELECT 'org.test/c' || (i % 5), (30000 + i % 7)::text,
                    CASE WHEN i % 4 = 0 THEN NULL ELSE 'host' || (i % 3) END,
                    CASE WHEN i % 6 = 0 THEN NULL ELSE 'x86_64' END,
                    $2::int8 + i * 1020 + 0.5, 'payload ' || i, 4, 1 + i % 4
             FROM generate_series(1, $1) i",
            &[&n, &start],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn counts_stay_exact_through_inserts_deletes_updates_and_truncate() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let db = migrated_db(pg).await;
    let client = connect(&db).await;
    let now = chrono::Utc::now().timestamp();
    insert_rows(&client, 500, now - 6 * 86400).await;
    assert_exact(&client, "a multi-row insert").await;

    // Concurrent records through the collector: group commit runs several batches at once,
    // while another session folds the appended changes again and again.
    let server = TestServer::start(config(&db)).await;
    let folding = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let folder = {
        let (folding, folder_client) = (folding.clone(), connect(&db).await);
        tokio::spawn(async move {
            let mut folds = 0;
            while folding.load(std::sync::atomic::Ordering::Relaxed) {
                folder_client
                    .query_one("SELECT record_counts_fold()", &[])
                    .await
                    .unwrap();
                folds += 1;
            }
            folds
        })
    };
    let mut tasks = Vec::new();
    for i in 0..200 {
        let request = header_request(
            "/v2/collector",
            &[
                ("classification", &format!("org.test/http/{}", i % 3)),
                ("event_id", &format!("{i:032x}")),
            ],
            b"concurrent",
        );
        let addr = server.addr;
        tasks.push(tokio::spawn(async move { send_raw(addr, &request).await }));
    }
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    }
    folding.store(false, std::sync::atomic::Ordering::Relaxed);
    assert!(folder.await.unwrap() > 0);
    server.stop().await;
    assert_exact(&client, "concurrent batches and folds").await;

    client
        .execute(
            "DELETE FROM records WHERE timestamp_server < $1::int8",
            &[&(now - 4 * 86400)],
        )
        .await
        .unwrap();
    assert_exact(&client, "a purge-like delete").await;
    let zero: i64 = client
        .query_one("SELECT count(*) FROM record_counts WHERE n = 0", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(zero, 0, "deleted hours leave no zero rows");

    client
        .execute(
            "UPDATE records SET classification = 'org.test/moved', host_type = NULL
             WHERE id % 3 = 0",
            &[],
        )
        .await
        .unwrap();
    client
        .execute("UPDATE records SET processed = true", &[])
        .await
        .unwrap();
    assert_exact(&client, "updates").await;

    client.execute("TRUNCATE records", &[]).await.unwrap();
    assert_exact(&client, "truncate").await;
}

#[tokio::test]
async fn migration_fills_the_counts_and_charts_agree_with_a_scan() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let db = migrated_db(pg).await;
    let mut client = connect(&db).await;
    let now = chrono::Utc::now().timestamp() as f64;
    // Records stored before migrations 4 and 6 existed: no trigger, no counts.
    client
        .batch_execute(
            "DROP TRIGGER record_counts_insert ON records;
             DROP TABLE record_counts_delta;
             DELETE FROM telem_collector_migrations WHERE version IN (4, 6);",
        )
        .await
        .unwrap();
    insert_rows(&client, 3000, now as i64 - 35 * 86400).await;
    store::migrate(&mut client)
        .await
        .expect("migrations 4 and 6 again");
    // Then records the backfill did not see, left unfolded: the charts add them.
    insert_rows(&client, 700, now as i64 - 9 * 86400).await;
    let unfolded: i64 = client
        .query_one("SELECT count(*) FROM record_counts_delta", &[])
        .await
        .unwrap()
        .get(0);
    assert!(unfolded > 0, "the later records are appended changes");

    let pool = build_pool(&config(&db));
    // `now` mid-hour on purpose: every window then starts with a partial hour.
    let now = now - now.rem_euclid(3600.0) + 1234.5;
    let o = ui_queries::overview(&pool, now, 3).await.unwrap();
    let count = |since: f64| {
        let client = &client;
        async move {
            client
                .query_one(
                    "SELECT count(*) FROM records WHERE timestamp_server >= $1::float8::numeric",
                    &[&since],
                )
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    assert_eq!(o.last_24h, count(now - 86400.0).await);
    assert_eq!(o.last_7d, count(now - 7.0 * 86400.0).await);
    assert_eq!(o.last_30d, count(now - 30.0 * 86400.0).await);
    assert_eq!(o.total, count(0.0).await);
    let days: Vec<(i64, i64)> = pairs(
        &client,
        "SELECT (floor(timestamp_server / 86400) * 86400)::int8, count(*) FROM records
             WHERE timestamp_server >= $1::float8::numeric GROUP BY 1 ORDER BY 1",
        &[&(now - 30.0 * 86400.0)],
    )
    .await;
    assert_eq!(o.per_day, days);
    let top: Vec<(String, i64)> = pairs(
        &client,
        "SELECT classification, count(*) FROM records
             WHERE timestamp_server >= $1::float8::numeric
             GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 3",
        &[&(now - 7.0 * 86400.0)],
    )
    .await;
    assert_eq!(o.top_classifications, top);

    let unfiltered = Filter::default();
    let b = ui_queries::breakdown(&pool, &unfiltered).await.unwrap();
    assert_eq!(b.total, count(0.0).await);
    let platforms: Vec<(String, i64)> = pairs(
        &client,
        "SELECT coalesce(host_type, '(none)'), count(*) FROM records GROUP BY 1 ORDER BY 2 DESC, 1",
        &[],
    )
    .await;
    assert_eq!(b.platform, platforms);
    let builds = ui_queries::count_by_build(&pool, &unfiltered, 4)
        .await
        .unwrap();
    let scanned: Vec<(String, i64)> = pairs(
        &client,
        "SELECT build, count(*) FROM records GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 4",
        &[],
    )
    .await;
    assert_eq!(builds, scanned);

    // Filtered by a classification glob (and a start time): still from the counts, still exact.
    let filter = Filter {
        classification: Some(Classification::pattern("org.test/c*")),
        from: Some(now - 9.5 * 86400.0),
        ..Default::default()
    };
    let b = ui_queries::breakdown(&pool, &filter).await.unwrap();
    let arch: Vec<(String, i64)> = pairs(
        &client,
        "SELECT coalesce(architecture, '(none)'), count(*) FROM records
             WHERE classification LIKE 'org.test/c%' AND timestamp_server >= $1::float8::numeric
             GROUP BY 1 ORDER BY 2 DESC, 1",
        &[&(now - 9.5 * 86400.0)],
    )
    .await;
    assert_eq!(b.arch, arch);
    let classes: i64 = b.classification.iter().map(|c| c.1).sum();
    assert_eq!(
        (b.total, classes),
        (arch.iter().map(|a| a.1).sum(), b.total)
    );
    assert_exact(&client, "the migration's backfill and later inserts").await;
}

/// Keeping the counts exact must not make one batch wait for another: a transaction that
/// inserted records of the same classification and day and has not committed yet (as a
/// concurrent batch that is waiting for its WAL flush) holds no lock a batch of the collector
/// needs. Migration 4's upsert made the second batch wait on the first's `record_counts` rows
/// (here: until the writer's 1.5 s batch timeout, a 503).
#[tokio::test]
async fn a_batch_never_waits_for_another_batchs_counts() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let db = migrated_db(pg).await;
    let mut other = connect(&db).await;
    let server = TestServer::start(config(&db)).await;
    // The record the collector stores below has the same counts keys (classification, build,
    // platform, architecture, day received).
    let open = other.transaction().await.unwrap();
    open.execute(
        "INSERT INTO records (record_version, severity, classification, machine_id,
                              timestamp_client, architecture, host_type, build, payload,
                              timestamp_server)
         VALUES (4, 2, 'org.clearlinux/test/record', 'ffffffffffffffffffffffffffffffff', 1,
                 'x86_64', 'Intel Corporation|NUC|1', '31870', 'open',
                 round(extract(epoch FROM now()), 6))",
        &[],
    )
    .await
    .unwrap();
    let request = header_request("/v2/collector", &[], b"while another batch is open");
    let started = std::time::Instant::now();
    let answer = send_raw(server.addr, &request).await;
    let waited = started.elapsed();
    open.commit().await.unwrap();
    assert_eq!(
        answer.status,
        201,
        "a batch waited for another's counts (after {waited:?}): {}",
        String::from_utf8_lossy(&answer.body)
    );
    server.stop().await;
    let client = connect(&db).await;
    assert_exact(&client, "a batch next to an open one").await;
}
