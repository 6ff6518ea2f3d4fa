//! Faults under load: PostgreSQL killed (`pg_ctl stop -m immediate`) for 10 s while clients
//! send at a steady rate, and SIGTERM to the real binary while it is loaded. The clients behave
//! like telemetrics-client (PROTOCOL.md): a record leaves the spool only on 200/201; anything
//! else (status, connection error, timeout) keeps it, and the spool is retried oldest first,
//! stopping at the first failure (every 50 ms here instead of every 120–300 s).

use std::collections::{HashMap, VecDeque};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{
    config, free_port, header_request, migrated_db, send_raw, try_send, Outcome, TestServer, HEAVY,
};
use crate::pg::{connect, PgCluster};

/// One record a simulated machine produced. Every fifth is format 3 (no event id, no dedupe).
fn machine_record(machine: usize, seq: usize) -> Vec<u8> {
    let version = if seq % 5 == 0 { "3" } else { "4" };
    header_request(
        "/v2/collector",
        &[
            ("record_format_version", version),
            ("machine_id", &format!("machine{machine:02}")),
            ("creation_timestamp", &(1_700_000_000 + seq).to_string()),
            ("event_id", &format!("{:032x}", machine * 1_000_000 + seq)),
        ],
        payload(machine, seq).as_bytes(),
    )
}

fn payload(machine: usize, seq: usize) -> String {
    format!("machine {machine} record {seq}")
}

/// One request as the client saw it.
#[derive(Debug, Clone)]
struct Attempt {
    started: Instant,
    took: Duration,
    outcome: Outcome,
}

#[derive(Default)]
struct Log {
    attempts: Vec<Attempt>,
    /// (machine, seq) → id of every 201 (resends of a format-4 record repeat the same id).
    acked: HashMap<(usize, usize), Vec<i64>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_killed_under_load_loses_nothing() {
    let _heavy = HEAVY.lock().await;
    let Some(pg) = PgCluster::start() else {
        return;
    };
    const MACHINES: usize = 8;
    const PERIOD: Duration = Duration::from_millis(50); // per machine: 160 records/s in all
    const OUTAGE: Duration = Duration::from_secs(10);
    let db = migrated_db(&pg).await;
    let server = TestServer::start(config(&db)).await;
    let addr = server.addr;
    let log = Arc::new(Mutex::new(Log::default()));
    let producing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let started = Instant::now();

    let mut machines = Vec::new();
    for m in 0..MACHINES {
        let (log, producing) = (log.clone(), producing.clone());
        machines.push(tokio::spawn(async move {
            let mut spool: VecDeque<usize> = VecDeque::new();
            let mut produced = 0;
            let mut tick = tokio::time::interval(PERIOD);
            loop {
                tick.tick().await;
                // Steady production, independent of how long sending takes.
                if producing.load(std::sync::atomic::Ordering::SeqCst) {
                    let due = (started.elapsed().as_millis() / PERIOD.as_millis()) as usize + 1;
                    while produced < due {
                        spool.push_back(produced);
                        produced += 1;
                    }
                } else if spool.is_empty() {
                    return produced;
                }
                // Oldest first, stop at the first failure.
                while let Some(&seq) = spool.front() {
                    let t = Instant::now();
                    let outcome = try_send(addr, &machine_record(m, seq)).await;
                    let mut log = log.lock().unwrap();
                    log.attempts.push(Attempt {
                        started: t,
                        took: t.elapsed(),
                        outcome: outcome.clone(),
                    });
                    match outcome {
                        Outcome::Status(200 | 201, id) => {
                            log.acked
                                .entry((m, seq))
                                .or_default()
                                .push(id.unwrap_or(-1));
                            // Every 20th acknowledgement of a format-4 record is "lost" (as
                            // when the connection drops after COMMIT): the client resends.
                            if seq % 5 != 0 && seq % 20 == 1 && log.acked[&(m, seq)].len() == 1 {
                                continue;
                            }
                            spool.pop_front();
                        }
                        _ => break,
                    }
                }
            }
        }));
    }

    let acked = |log: &Mutex<Log>| log.lock().unwrap().acked.len();
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked(&log) < 300 {
        assert!(Instant::now() < deadline, "no load before the outage");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stop_begin = Instant::now();
    let pg = tokio::task::spawn_blocking(move || {
        let mut pg = pg;
        pg.stop_immediate();
        pg
    })
    .await
    .unwrap();
    // Only once pg_ctl returned is the database certainly down: a request that started while
    // it was still stopping may rightly have been committed (seen on a loaded machine).
    let outage_start = Instant::now();
    tokio::time::sleep(OUTAGE.saturating_sub(stop_begin.elapsed())).await;
    // Before this instant the database was certainly down.
    let restart_begin = Instant::now();
    let pg = tokio::task::spawn_blocking(move || {
        let mut pg = pg;
        pg.run();
        pg
    })
    .await
    .unwrap();
    let restarted = Instant::now();
    // Recovery without restarting the collector: its own clients get 201 again.
    let deadline = restarted + Duration::from_secs(10);
    let recovered = loop {
        let first_201 = log
            .lock()
            .unwrap()
            .attempts
            .iter()
            .find(|a| a.started >= restarted && matches!(a.outcome, Outcome::Status(201, _)))
            .map(|a| a.started + a.took);
        if let Some(at) = first_201 {
            break at;
        }
        assert!(
            Instant::now() < deadline,
            "no 201 within 10 s of the restart"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_secs(3)).await; // steady load after recovery
    producing.store(false, std::sync::atomic::Ordering::SeqCst);
    let production_time = started.elapsed();
    let mut produced = 0;
    for machine in machines {
        produced += tokio::time::timeout(Duration::from_secs(30), machine)
            .await
            .expect("every spool drained within 30 s of the end of the load")
            .unwrap();
    }
    let total_time = started.elapsed();
    let ready = send_raw(addr, b"GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(ready.status, 200, "ready again without a restart");

    let log = Arc::try_unwrap(log).ok().unwrap().into_inner().unwrap();
    let during: Vec<&Attempt> = log
        .attempts
        .iter()
        .filter(|a| a.started >= outage_start && a.started + a.took < restart_begin)
        .collect();
    let max_503 = log
        .attempts
        .iter()
        .filter(|a| matches!(a.outcome, Outcome::Status(503, _)))
        .map(|a| a.took)
        .max()
        .unwrap_or_default();
    let errors: Vec<String> = log
        .attempts
        .iter()
        .filter(|a| !matches!(a.outcome, Outcome::Status(201 | 503, _)))
        .map(|a| a.outcome.to_string())
        .collect();
    let acks = log.acked.values().map(Vec::len).sum::<usize>();
    eprintln!(
        "outage test: {produced} records from {MACHINES} machines produced over {:.1} s ({:.0} \
         records/s), all stored after {:.1} s; {} requests ({acks} answered 201), {} during the {:.1} s outage (all 503, \
         slowest 503 {:?}), first 201 {:?} after the database was back",
        production_time.as_secs_f64(),
        produced as f64 / production_time.as_secs_f64(),
        total_time.as_secs_f64(),
        log.attempts.len(),
        during.len(),
        (restart_begin - outage_start).as_secs_f64(),
        max_503,
        recovered.saturating_duration_since(restarted),
    );
    assert!(errors.is_empty(), "answers other than 201/503: {errors:?}");
    assert!(
        during.len() >= 50,
        "too few requests during the outage: {}",
        during.len()
    );
    for a in &during {
        assert!(
            matches!(a.outcome, Outcome::Status(503, _)),
            "during the outage: {a:?}"
        );
    }
    assert!(max_503 < Duration::from_secs(2), "a 503 took {max_503:?}");

    // The database's view: every record stored, format 4 exactly once, every 201'd id holds
    // the record it was given for.
    let client = connect(&db).await;
    let rows: HashMap<String, Vec<i64>> = client
        .query("SELECT payload, id::int8 FROM records", &[])
        .await
        .unwrap()
        .iter()
        .fold(HashMap::new(), |mut map, row| {
            map.entry(row.get::<_, String>(0))
                .or_default()
                .push(row.get(1));
            map
        });
    let mut format3_duplicates = 0;
    for ((m, seq), ids) in &log.acked {
        let stored = rows
            .get(&payload(*m, *seq))
            .unwrap_or_else(|| panic!("record {m}/{seq} answered 201 {ids:?} is not stored"));
        if seq % 5 == 0 {
            format3_duplicates += stored.len() - 1;
        } else {
            assert_eq!(
                stored.len(),
                1,
                "format-4 record {m}/{seq} stored {stored:?}"
            );
            assert!(
                ids.iter().all(|id| *id == stored[0]),
                "{m}/{seq}: {ids:?} vs {stored:?}"
            );
        }
        for id in ids {
            assert!(
                stored.contains(id),
                "{m}/{seq}: 201 with id {id}, stored as {stored:?}"
            );
        }
    }
    assert_eq!(
        log.acked.len(),
        produced,
        "every produced record was acknowledged"
    );
    eprintln!(
        "outage test: {} rows for {produced} records ({format3_duplicates} format-3 duplicates \
         from resends of commits whose answer was a 503)",
        rows.values().map(Vec::len).sum::<usize>()
    );
    server.stop().await;
    drop(pg);
}

/// The real binary, loaded by 32 clients sending back to back, gets SIGTERM: every request it
/// accepted is answered (none hangs), it exits 0, and every record answered 201 is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_no_acknowledged_record() {
    let _heavy = HEAVY.lock().await;
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    const CLIENTS: usize = 32;
    let db = migrated_db(pg).await;
    let port = free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_telem-collector"))
        .args(["--config", "/nonexistent.toml", "serve"])
        .env("TELEM_COLLECTOR_DATABASE_URL", &db)
        .env("TELEM_COLLECTOR_LISTEN", addr.to_string())
        // Records wait a little for their batch, so some are mid-batch at the signal.
        .env("TELEM_COLLECTOR_BATCH_MAX_WAIT_MS", "20")
        .env("TELEM_COLLECTOR_LOG_LEVEL", "warn")
        .spawn()
        .expect("starting telem-collector");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !matches!(
        try_send(addr, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").await,
        Outcome::Status(200, _)
    ) {
        assert!(Instant::now() < deadline, "collector did not start");
        assert!(child.try_wait().unwrap().is_none(), "collector exited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let signalled: Arc<Mutex<Option<Instant>>> = Arc::default();
    let acks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (signalled, acks) = (signalled.clone(), acks.clone());
        clients.push(tokio::spawn(async move {
            // (seq, outcome, answered after the signal)
            let mut seen = Vec::new();
            for seq in 0.. {
                let outcome = try_send(addr, &machine_record(100 + c, seq * 5 + 1)).await;
                let after = signalled
                    .lock()
                    .unwrap()
                    .is_some_and(|t| Instant::now() > t);
                if let Outcome::Status(201, _) = outcome {
                    acks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                let stop = after && matches!(outcome, Outcome::Error(_));
                seen.push((seq * 5 + 1, outcome, after));
                if stop {
                    return seen; // the listener is gone: the client keeps its spool
                }
            }
            unreachable!()
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while acks.load(std::sync::atomic::Ordering::SeqCst) < 500 {
        assert!(Instant::now() < deadline, "no load");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    *signalled.lock().unwrap() = Some(Instant::now());
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let signal_time = Instant::now();
    let deadline = signal_time + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("no exit within 10 s of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let exit_after = signal_time.elapsed();
    assert!(exit.success(), "exit status after SIGTERM: {exit}");

    let mut acked: Vec<(usize, usize, i64)> = Vec::new();
    let (mut answered_after, mut errors, mut other) = (0, Vec::new(), Vec::new());
    for (c, client) in clients.into_iter().enumerate() {
        // try_send bounds every request by the client's 10 s timeout: a hang shows up there.
        let seen = tokio::time::timeout(Duration::from_secs(15), client)
            .await
            .expect("clients finish once the collector is gone")
            .unwrap();
        for (seq, outcome, after) in seen {
            match outcome {
                Outcome::Status(201, id) => {
                    acked.push((100 + c, seq, id.unwrap()));
                    answered_after += usize::from(after);
                }
                Outcome::Status(..) => other.push(outcome.to_string()),
                Outcome::Error(e) => errors.push(e),
            }
        }
    }
    assert!(
        errors.iter().all(|e| !e.contains("timeout")),
        "a request hung: {errors:?}"
    );
    assert!(other.is_empty(), "answers other than 201: {other:?}");
    let client = connect(&db).await;
    let rows: HashMap<String, i64> = client
        .query("SELECT payload, id::int8 FROM records", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (m, seq, id) in &acked {
        assert_eq!(
            rows.get(&payload(*m, *seq)),
            Some(id),
            "record {m}/{seq} answered 201 (id {id}) is missing"
        );
    }
    eprintln!(
        "SIGTERM test: {} records answered 201 ({answered_after} of them after the signal), \
         all stored; {} rows in all; exit 0 after {exit_after:?}; connection errors after the \
         signal: {} ({:?})",
        acked.len(),
        rows.len(),
        errors.len(),
        errors.first()
    );
}
