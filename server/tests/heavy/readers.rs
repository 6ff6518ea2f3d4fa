//! Readers never starve ingestion: on a 300,000-record table, 32 clients read slow pages of
//! the web UI, the query API and the CSV export without pause while records are posted; every
//! record still gets its 201 (the writer has connections no reader can take). Readers beyond
//! the readers' pool wait a bounded time and get 503, and a page slower than
//! `read_statement_timeout_ms` is a 503 for that page only. Prints the ingestion latency
//! (p50/p99) without and with the readers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{config, header_request, migrated_db, try_send, Outcome, TestServer};
use crate::pg::{connect, PgCluster};

const RECORDS: i64 = 300_000;

/// 300,000 records in one statement (the counts' trigger runs once), spread over 30 days,
/// 40 classifications, 200 builds, 1,000 machines, short payloads.
const LOAD_SQL: &str = "
INSERT INTO records (architecture, bios_version, board_name, build, classification, cpu_model,
    event_id, external, host_type, kernel_version, machine_id, payload_version, record_version,
    severity, system_name, timestamp_client, timestamp_server, payload, processed)
SELECT 'x86_64', 'bios', 'board', (30000 + i % 200)::text,
       'org.clearlinux/probe' || (i % 40) || '/event', 'cpu', md5(i::text), false,
       'Intel|NUC|' || (i % 7), '6.1.0', md5((i % 1000)::text), 1, 4, 1 + i % 4,
       'clear-linux-os', extract(epoch FROM now())::int8 - i * 8,
       extract(epoch FROM now())::int8 - i * 8,
       'record ' || i || ' module_' || (i % 100),
       false
FROM generate_series(1, $1::int8) AS i";

/// Pages that cost the database real work on this table: scans through non-indexed filters,
/// payload searches, chart breakdowns that cannot use the pre-aggregated counts, the query
/// API at its largest page, and whole-table CSV exports.
const SLOW_READS: &[&str] = &[
    "/records?system_name=nowhere",
    "/records?q=no-such-text-anywhere",
    "/records?platform=Intel%7CNUC%7C3&severity=4&n=500",
    "/stats?system_name=clear-linux-os",
    "/stats?q=module_7",
    "/builds?platform=Intel%7CNUC%7C5",
    "/builds?q=record",
    "/api/records?limit=1000",
    "/api/records?severity=3&limit=1000&from_id=150000",
    "/records.csv",
    "/records.csv?q=module_1",
    "/records.csv?build=30007",
];

/// How a read ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// The whole answer, with this status.
    Complete(u16),
    /// A 200 whose body broke off (a CSV export whose next chunk found no reader connection
    /// in time) or did not finish within a minute.
    Truncated,
    /// No answer at all.
    Failed,
}

/// GETs `path` (`Connection: close`); only the status line is kept (a whole-table CSV is tens
/// of MB).
async fn read_page(addr: SocketAddr, path: &str) -> Read {
    let mut head = Vec::new();
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut chunk = vec![0u8; 64 << 10];
        loop {
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return Some(());
            }
            if head.len() < 20 {
                head.extend_from_slice(&chunk[..n.min(20)]);
            }
        }
    };
    let complete = tokio::time::timeout(Duration::from_secs(60), attempt)
        .await
        .ok()
        .flatten()
        .is_some();
    let status: Option<u16> = String::from_utf8_lossy(&head)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok());
    match (status, complete) {
        (Some(status), true) => Read::Complete(status),
        (Some(200), false) => Read::Truncated,
        _ => Read::Failed,
    }
}

/// Latencies of records posted by `clients` clients back to back for `duration`; panics on
/// any answer but 201.
async fn post_for(addr: SocketAddr, clients: usize, duration: Duration, first: usize) -> Vec<f64> {
    let next = Arc::new(AtomicUsize::new(first));
    let until = Instant::now() + duration;
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let next = next.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < until {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let event = format!("{:032x}", 0xabc0_0000_0000usize + i);
                    let ts = (1_795_000_000 + i).to_string();
                    let request = header_request(
                        "/",
                        &[("event_id", &event), ("creation_timestamp", &ts)],
                        format!("posted during the readers {i}").as_bytes(),
                    );
                    let started = Instant::now();
                    let outcome = try_send(addr, &request).await;
                    latencies.push(started.elapsed().as_secs_f64());
                    assert!(
                        matches!(outcome, Outcome::Status(201, _)),
                        "record {i}: {outcome}"
                    );
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_by(f64::total_cmp);
    all
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_readers_never_cost_a_record() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let db = migrated_db(pg).await;
    let loaded = Instant::now();
    let client = connect(&db).await;
    // The payload trigram index is built once after the load (10x faster than row by row).
    client
        .batch_execute("DROP INDEX IF EXISTS records_payload_trgm_idx")
        .await
        .unwrap();
    client.execute(LOAD_SQL, &[&RECORDS]).await.unwrap();
    client
        .batch_execute(
            "CREATE INDEX IF NOT EXISTS records_payload_trgm_idx ON records
                 USING gin (payload gin_trgm_ops);
             ANALYZE records;",
        )
        .await
        .unwrap();
    eprintln!(
        "readers: {RECORDS} records loaded in {:?}",
        loaded.elapsed()
    );

    let server = TestServer::start(config(&db)).await;
    let addr = server.addr;
    let posters = 8;
    let quiet = post_for(addr, posters, Duration::from_secs(5), 0).await;

    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(tokio::sync::Barrier::new(33));
    let readers: Vec<_> = (0..32)
        .map(|r| {
            let (stop, start) = (stop.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let mut statuses = Vec::new();
                let mut i = r;
                while !stop.load(Ordering::SeqCst) {
                    let path = SLOW_READS[i % SLOW_READS.len()];
                    statuses.push((path, read_page(addr, path).await));
                    i += 1;
                }
                statuses
            })
        })
        .collect();
    start.wait().await;
    let busy = post_for(addr, posters, Duration::from_secs(10), 1_000_000).await;
    stop.store(true, Ordering::SeqCst);
    let (mut ok, mut unavailable, mut truncated) = (0, 0, 0);
    for r in readers {
        for (path, read) in r.await.unwrap() {
            match read {
                Read::Complete(200) => ok += 1,
                Read::Complete(503) => unavailable += 1,
                Read::Truncated if path.starts_with("/records.csv") => truncated += 1,
                other => panic!("{path}: {other:?}"),
            }
        }
    }
    let ms = |s: f64| format!("{:.1} ms", s * 1000.0);
    eprintln!(
        "readers: ingestion without readers: {} records, p50 {}, p99 {}, max {}; \
         with 32 readers: {} records, p50 {}, p99 {}, max {}; reads: {ok} answered 200, \
         {unavailable} 503 (readers' pool busy or statement timeout), {truncated} CSV exports \
         broken off",
        quiet.len(),
        ms(percentile(&quiet, 0.5)),
        ms(percentile(&quiet, 0.99)),
        ms(*quiet.last().unwrap()),
        busy.len(),
        ms(percentile(&busy, 0.5)),
        ms(percentile(&busy, 0.99)),
        ms(*busy.last().unwrap()),
    );
    assert!(ok > 0, "no read succeeded");
    server.stop().await;

    // A page slower than the statement timeout is a 503 for that page alone.
    let mut cfg = config(&db);
    cfg.read_statement_timeout = Duration::from_millis(20);
    let server = TestServer::start(cfg).await;
    assert_eq!(
        read_page(server.addr, "/stats?q=module_9").await,
        Read::Complete(503)
    );
    assert_eq!(
        read_page(server.addr, "/records/1").await,
        Read::Complete(200)
    );
    assert_eq!(read_page(server.addr, "/readyz").await, Read::Complete(200));
    let request = header_request("/", &[("event_id", &format!("{:032x}", 7))], b"after");
    assert!(matches!(
        try_send(server.addr, &request).await,
        Outcome::Status(201, _)
    ));
    server.stop().await;
}
