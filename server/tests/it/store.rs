//! Storage behaviour over real sockets: group commit, resend dedupe, a bad record failing
//! alone, 503 within 2 s while the database is down and recovery when it is back, refusing a
//! schema that is behind, and graceful shutdown answering every in-flight request.

use std::time::{Duration, Instant};

use telem_collector::error::RunError;
use telem_collector::serve::App;

use crate::harness::{config, header_request, migrated_db, row_count, send_raw, TestServer};
use crate::pg::{connect, PgCluster};

fn nth_record(i: usize) -> Vec<u8> {
    let ts = (1_700_000_000 + i).to_string();
    let event = format!("{i:032x}");
    header_request(
        "/v2/collector",
        &[("creation_timestamp", &ts), ("event_id", &event)],
        format!("record {i}\n").as_bytes(),
    )
}

#[tokio::test]
async fn concurrent_records_are_group_committed() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let db = migrated_db(pg).await;
    let server = TestServer::start(config(&db)).await;
    let n = 300;
    let mut tasks = Vec::new();
    for i in 0..n {
        let addr = server.addr;
        tasks.push(tokio::spawn(
            async move { send_raw(addr, &nth_record(i)).await },
        ));
    }
    let mut ids = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        ids.push(r.json()["id"].as_i64().unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "every record has its own id");
    assert_eq!(row_count(&db).await, n as i64);
    let metrics = server.state.metrics.render();
    let batches: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("telem_collector_batch_size_records_count "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        batches < n as f64,
        "{n} records in {batches} batches: no grouping happened"
    );
    server.stop().await;
}

#[tokio::test]
async fn format4_resend_is_201_without_a_second_row() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let db = migrated_db(pg).await;
    let server = TestServer::start(config(&db)).await;
    let record = nth_record(7);
    let first = send_raw(server.addr, &record).await;
    assert_eq!(first.status, 201);
    let again = send_raw(server.addr, &record).await;
    assert_eq!(again.status, 201);
    assert_eq!(first.json()["id"], again.json()["id"]);
    assert_eq!(first.json()["ts_reception"], again.json()["ts_reception"]);
    // Concurrent resends of a new record: one row.
    let record = nth_record(8);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (addr, r) = (server.addr, record.clone());
        tasks.push(tokio::spawn(async move { send_raw(addr, &r).await }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 201);
        ids.push(r.json()["id"].clone());
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    assert_eq!(row_count(&db).await, 2);
    // Same event id, another timestamp: a distinct record (the captures reuse event ids).
    let other = header_request(
        "/v2/collector",
        &[
            ("creation_timestamp", "1"),
            ("event_id", &format!("{:032x}", 7)),
        ],
        b"x",
    );
    assert_eq!(send_raw(server.addr, &other).await.status, 201);
    // Format 3 has no event id: a resend is stored again, as upstream did.
    let v3 = header_request("/v2/collector", &[("record_format_version", "3")], b"v3");
    assert_eq!(send_raw(server.addr, &v3).await.status, 201);
    assert_eq!(send_raw(server.addr, &v3).await.status, 201);
    assert_eq!(row_count(&db).await, 5);
    server.stop().await;
}

#[tokio::test]
async fn a_record_the_database_refuses_fails_alone() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let db = migrated_db(pg).await;
    connect(&db)
        .await
        .batch_execute("ALTER TABLE records ADD CONSTRAINT no_poison CHECK (payload <> 'poison')")
        .await
        .unwrap();
    let mut cfg = config(&db);
    cfg.batch_max_wait = Duration::from_millis(50);
    let server = TestServer::start(cfg).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let body: Vec<u8> = if i == 13 {
            b"poison".to_vec()
        } else {
            format!("ok {i}").into_bytes()
        };
        let req = header_request("/", &[("event_id", &format!("{i:032x}"))], &body);
        let addr = server.addr;
        tasks.push(tokio::spawn(async move {
            (i, send_raw(addr, &req).await.status)
        }));
    }
    for t in tasks {
        let (i, status) = t.await.unwrap();
        assert_eq!(status, if i == 13 { 400 } else { 201 }, "record {i}");
    }
    assert_eq!(row_count(&db).await, 39);
    server.stop().await;
}

#[tokio::test]
async fn database_down_or_hung_is_503_within_2s_then_recovers() {
    let Some(mut pg) = PgCluster::start() else {
        return;
    };
    let db = migrated_db(&pg).await;
    let server = TestServer::start(config(&db)).await;
    assert_eq!(send_raw(server.addr, &nth_record(1)).await.status, 201);

    pg.stop();
    for i in 2..5 {
        let started = Instant::now();
        let r = send_raw(server.addr, &nth_record(i)).await;
        let took = started.elapsed();
        assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
        assert!(r.header("retry-after").is_some());
        assert!(took < Duration::from_secs(2), "503 took {took:?}");
    }
    let ready = send_raw(server.addr, b"GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(ready.status, 503);
    let health = send_raw(server.addr, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(health.status, 200, "the process is still up");

    pg.run();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = send_raw(server.addr, &nth_record(9)).await;
        if r.status == 201 {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {}", r.status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(row_count(&db).await, 2);

    // A hung database (processes stopped, sockets open) is a 503 within 2 s as well.
    pg.signal_all("STOP");
    let started = Instant::now();
    let r = send_raw(server.addr, &nth_record(10)).await;
    let took = started.elapsed();
    pg.signal_all("CONT");
    assert_eq!(r.status, 503);
    assert!(took < Duration::from_secs(2), "503 took {took:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while send_raw(server.addr, &nth_record(11)).await.status != 201 {
        assert!(Instant::now() < deadline, "no recovery after the hang");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn serve_refuses_a_schema_that_is_behind() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let db = pg.create_database().await;
    match App::start(&config(&db)).await {
        Err(e @ RunError::SchemaBehind { .. }) => {
            assert!(e.to_string().contains("telem-collector migrate"), "{e}")
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("started on an empty database"),
    }
}

#[tokio::test]
async fn shutdown_answers_every_in_flight_request() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let db = migrated_db(pg).await;
    let mut cfg = config(&db);
    // Long enough that records are still waiting for their batch when shutdown starts.
    cfg.batch_max_wait = Duration::from_millis(300);
    cfg.batch_max_records = 1000;
    let server = TestServer::start(cfg).await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let addr = server.addr;
        tasks.push(tokio::spawn(async move {
            send_raw(addr, &nth_record(i)).await.status
        }));
    }
    // Wait (bounded) until every request is in flight, i.e. waiting for its batch.
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.state.metrics.in_flight() < 50 {
        assert!(Instant::now() < deadline, "requests did not arrive");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.stop().await;
    for t in tasks {
        assert_eq!(t.await.unwrap(), 201);
    }
    assert_eq!(row_count(&db).await, 50);
}

/// A database the old Python collector filled may hold format-4 resends already: migrating it
/// keeps the first copy of each in `records`, moves the others to `records_duplicates` (nothing
/// is deleted) and leaves rows whose key has a NULL alone; then the dedupe index exists.
#[tokio::test]
async fn migrating_a_database_with_old_resends_moves_them_aside() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let db = migrated_db(pg).await;
    let mut client = connect(&db).await;
    // As before migration 2: no dedupe index, then the old collector stored resends.
    client
        .batch_execute(
            "DROP INDEX records_format4_resend_idx;
             DELETE FROM telem_collector_migrations WHERE version >= 2;
             INSERT INTO records (machine_id, event_id, timestamp_client, timestamp_server,
                                  record_version, classification, build, payload)
             SELECT 'm1', 'e1', 1700000000, 1700000000 + i, 4, 'a/b/c', '1', 'copy ' || i
             FROM generate_series(1, 3) i;
             INSERT INTO records (machine_id, event_id, timestamp_client, timestamp_server,
                                  record_version, classification, build, payload)
             SELECT 'm1', NULL, 1700000000, 1700000000 + i, 4, 'a/b/c', '1', 'no event id'
             FROM generate_series(1, 2) i;",
        )
        .await
        .unwrap();
    telem_collector::store::migrate(&mut client)
        .await
        .expect("migrating a database with resends");
    let payloads = |table: &'static str| {
        let client = &client;
        async move {
            client
                .query(&format!("SELECT payload FROM {table} ORDER BY id"), &[])
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        payloads("records").await,
        ["copy 1", "no event id", "no event id"]
    );
    assert_eq!(payloads("records_duplicates").await, ["copy 2", "copy 3"]);
    let index: Option<String> = client
        .query_one(
            "SELECT to_regclass('records_format4_resend_idx')::text",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(index.is_some(), "the dedupe index exists");
}

/// The payload index's storage options (`gin_pending_list_limit=256` from migration 7).
async fn payload_index_options(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query_one(
            "SELECT coalesce(reloptions, '{}') FROM pg_class WHERE relname = 'records_payload_trgm_idx'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

async fn payload_index_exists(client: &tokio_postgres::Client) -> bool {
    client
        .query_one(
            "SELECT to_regclass('records_payload_trgm_idx') IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// `payload_search_index = false`: `migrate` drops the payload trigram index and a payload
/// search still finds its record (scanning); `true` creates the index again.
#[tokio::test]
async fn the_payload_index_is_a_choice() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let db = migrated_db(pg).await;
    let mut client = connect(&db).await;
    assert!(
        payload_index_exists(&client).await,
        "migration 5 creates it (pg_trgm ships with the server)"
    );
    // A short pending list: no batch waits for a 4 MB merge (migration 7).
    assert_eq!(
        payload_index_options(&client).await,
        ["gin_pending_list_limit=256"]
    );
    telem_collector::store::payload_search_index(&mut client, false)
        .await
        .unwrap();
    assert!(!payload_index_exists(&client).await, "dropped");
    let server = TestServer::start(config(&db)).await;
    let stored = send_raw(
        server.addr,
        &header_request("/v2/collector", &[], b"a rare Needle-of-the-test word\n"),
    )
    .await;
    assert_eq!(stored.status, 201);
    let page = send_raw(
        server.addr,
        b"GET /records?q=needle-OF-the HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(page.status, 200);
    assert!(
        String::from_utf8_lossy(&page.body).contains("Needle-of-the-test"),
        "the search finds the record without the index"
    );
    server.stop().await;
    telem_collector::store::payload_search_index(&mut client, true)
        .await
        .unwrap();
    assert!(payload_index_exists(&client).await, "created again");
    assert_eq!(
        payload_index_options(&client).await,
        ["gin_pending_list_limit=256"],
        "created again with the short pending list"
    );
}
