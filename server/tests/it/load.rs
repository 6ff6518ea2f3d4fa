//! Load and slow clients against the real binary: 1,000 concurrent connections at once (slow
//! senders at one byte per 100 ms, bodies over the limit, malformed HTTP, normal records),
//! while a normal record posted every 250 ms must still get its 201 promptly and the
//! collector's resident memory stays bounded. Loopback only; bounded in time and count.
//!
//! The collector runs with a 6 s request-head deadline (`header_timeout_secs`, 30 s by
//! default): slow senders that finish their head within it are served, the others are cut off.

use std::net::SocketAddr;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::harness::{free_port, header_request, migrated_db, try_send, Outcome, HEAVY};
use crate::pg::PgCluster;

/// The collector idles at ~20 MB and peaks at 65-100 MB here; reading bodies by keeping their
/// chunks peaked at ~190 MB (each trickled byte pinned an 8 KiB read buffer).
const RSS_BOUND_KIB: u64 = 160 * 1024;
const BODY_LIMIT: usize = 307_200;
const HEADER_TIMEOUT: Duration = Duration::from_secs(6);

/// Resident and peak resident memory of a process in KiB (`VmRSS`, `VmHWM`).
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Reads until a status line: `Ok(Some(status))`, `Ok(None)` when the collector closed the
/// connection first, `Err` when nothing happened within `limit` (a hang).
pub async fn read_status(
    stream: &mut (impl AsyncReadExt + Unpin),
    limit: Duration,
) -> Result<Option<u16>, String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&buf[..end]).to_string();
                return line.split(' ').nth(1).and_then(|s| s.parse().ok());
            }
        }
    };
    tokio::time::timeout(limit, read)
        .await
        .map_err(|_| format!("no answer and no close within {limit:?}"))
}

fn record(i: usize) -> Vec<u8> {
    header_request(
        "/v3/collector",
        &[
            ("machine_id", "loadtest"),
            ("event_id", &format!("{:032x}", 0xf000_0000usize + i)),
        ],
        format!("load record {i}").as_bytes(),
    )
}

fn malformed(i: usize) -> Vec<u8> {
    match i % 10 {
        0 => b"GARBAGE\r\n\r\n".to_vec(),
        1 => b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".to_vec(),
        2 => b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            .to_vec(),
        3 => b"POST / HTTP/1.1\r\nBad Header Name: v\r\n\r\n".to_vec(),
        4 => {
            let mut r = b"POST / HTTP/1.1\r\nHost: x\r\n".to_vec();
            for h in 0..200 {
                r.extend_from_slice(format!("x-h{h}: {h}\r\n").as_bytes());
            }
            r.extend_from_slice(b"\r\n");
            r
        }
        5 => {
            let mut r = b"POST / HTTP/1.1\r\nHost: x\r\nx-big: ".to_vec();
            r.extend(std::iter::repeat_n(b'a', 100_000));
            r.extend_from_slice(b"\r\n\r\n");
            r
        }
        6 => b"POST / HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(),
        7 => (0..512u32).map(|b| (b.wrapping_mul(2_654_435_761) >> 13) as u8).collect(),
        8 => b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nabc\r\n".to_vec(),
        _ => b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
    }
}

/// What one of the 1,000 connections does; the result names it when it failed.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// `GET /healthz` at one byte per 100 ms (3.5 s): answered 200.
    SlowComplete,
    /// A record's headers at one byte per 100 ms (~30 s): disconnected at the head deadline.
    SlowHead,
    /// Headers at once, then the body at one byte per 100 ms: 408 after the 10 s body timeout
    /// (or only the close: the collector closes a connection whose body it did not read, and
    /// the kernel answers the client's next byte with a reset that may discard the unread 408).
    SlowBody,
    /// `Content-Length` above the limit: 413 at once.
    OversizeDeclared,
    /// A chunked body growing past the limit: 413, or the connection closed.
    OversizeChunked,
    /// Not HTTP the collector can parse: a 4xx or a close, never a hang.
    Malformed,
    /// A normal record: 201.
    Normal,
}

const MIX: [(Kind, usize); 7] = [
    (Kind::SlowComplete, 150),
    (Kind::SlowHead, 150),
    (Kind::SlowBody, 200),
    (Kind::OversizeDeclared, 150),
    (Kind::OversizeChunked, 50),
    (Kind::Malformed, 100),
    (Kind::Normal, 200),
];

async fn drip(
    writer: &mut (impl AsyncWriteExt + Unpin),
    bytes: &[u8],
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for b in bytes {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if writer.write_all(&[*b]).await.is_err() {
            return;
        }
    }
}

async fn connection(
    kind: Kind,
    i: usize,
    addr: SocketAddr,
    connected: Arc<AtomicUsize>,
    mut release: watch::Receiver<bool>,
) -> Result<(), String> {
    let fail = |e: String| format!("{kind:?} #{i}: {e}");
    let stream = loop {
        // A connect storm can overflow the SYN queue; the kernel retries, we retry too.
        match TcpStream::connect(addr).await {
            Ok(s) => break s,
            Err(e) if e.raw_os_error() == Some(99) || e.raw_os_error() == Some(111) => {
                return Err(fail(format!("connect: {e}")))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    connected.fetch_add(1, Ordering::SeqCst);
    let (mut reader, mut writer) = stream.into_split();
    let expect = |got: Result<Option<u16>, String>, ok: &[Option<u16>]| match got {
        Ok(s) if ok.contains(&s) => Ok(()),
        Ok(s) => Err(fail(format!("answered {s:?}, expected one of {ok:?}"))),
        Err(e) => Err(fail(e)),
    };
    let result = match kind {
        Kind::SlowComplete => {
            let (tx, rx) = watch::channel(false);
            drip(&mut writer, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", rx).await;
            drop(tx);
            expect(
                read_status(&mut reader, Duration::from_secs(5)).await,
                &[Some(200)],
            )
        }
        Kind::SlowHead => {
            let (tx, rx) = watch::channel(false);
            let request = record(i);
            let head_end = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
            let dripping = drip(&mut writer, &request[..head_end], rx);
            let started = Instant::now();
            tokio::pin!(dripping);
            let answer = tokio::select! {
                a = read_status(&mut reader, Duration::from_secs(20)) => a,
                _ = &mut dripping => Err("the whole head was sent".into()),
            };
            let _ = tx.send(true);
            let took = started.elapsed();
            expect(answer, &[None])?;
            if took < HEADER_TIMEOUT - Duration::from_millis(500) {
                return Err(fail(format!("disconnected after only {took:?}")));
            }
            Ok(())
        }
        Kind::SlowBody => {
            let mut head =
                b"POST /v3/collector HTTP/1.1\r\nHost: x\r\nX-Telemetry-TID: t\r\n".to_vec();
            head.extend_from_slice(
                b"Content-Type: application/json\r\nContent-Length: 400\r\n\r\n",
            );
            writer
                .write_all(&head)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let (tx, rx) = watch::channel(false);
            let body = vec![b' '; 400];
            let dripping = drip(&mut writer, &body, rx);
            let started = Instant::now();
            tokio::pin!(dripping);
            let answer = tokio::select! {
                a = read_status(&mut reader, Duration::from_secs(15)) => a,
                _ = &mut dripping => Err("the whole body was sent".into()),
            };
            let _ = tx.send(true);
            let took = started.elapsed();
            expect(answer, &[Some(408), None])?;
            if took < Duration::from_secs(9) {
                return Err(fail(format!("408 after only {took:?}")));
            }
            Ok(())
        }
        Kind::OversizeDeclared => {
            let mut r = header_request("/", &[], b"");
            let cl = b"Content-Length: 0\r\n\r\n";
            r.truncate(r.len() - cl.len());
            r.extend_from_slice(format!("Content-Length: {}\r\n\r\n", BODY_LIMIT + 1).as_bytes());
            r.extend_from_slice(&[b'x'; 4096]);
            writer
                .write_all(&r)
                .await
                .map_err(|e| fail(e.to_string()))?;
            expect(
                read_status(&mut reader, Duration::from_secs(10)).await,
                &[Some(413)],
            )
        }
        Kind::OversizeChunked => {
            let mut r = header_request("/", &[], b"");
            let cl = b"Content-Length: 0\r\n\r\n";
            r.truncate(r.len() - cl.len());
            r.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            let writing = async {
                if writer.write_all(&r).await.is_err() {
                    return;
                }
                let chunk = format!("4000\r\n{}\r\n", "y".repeat(0x4000));
                // 400 KiB in all, well past the 300 KiB limit.
                for _ in 0..25 {
                    if writer.write_all(chunk.as_bytes()).await.is_err() {
                        return;
                    }
                }
                let _ = writer.write_all(b"0\r\n\r\n").await;
            };
            let (_, answer) =
                tokio::join!(writing, read_status(&mut reader, Duration::from_secs(10)));
            expect(answer, &[Some(413), None])
        }
        Kind::Malformed => {
            let _ = writer.write_all(&malformed(i)).await;
            match read_status(&mut reader, Duration::from_secs(10)).await {
                Ok(None) => Ok(()),
                Ok(Some(s)) if (400..500).contains(&s) => Ok(()),
                other => Err(fail(format!(
                    "{:?} for {:?}",
                    other,
                    String::from_utf8_lossy(&malformed(i)[..12.min(malformed(i).len())])
                ))),
            }
        }
        Kind::Normal => {
            writer
                .write_all(&record(i))
                .await
                .map_err(|e| fail(e.to_string()))?;
            expect(
                read_status(&mut reader, Duration::from_secs(10)).await,
                &[Some(201)],
            )
        }
    };
    // Hold the connection open until every connection has done its part.
    let _ = release.wait_for(|r| *r).await;
    drop((reader, writer));
    result
}

pub struct Collector(pub Child);

impl Collector {
    /// The real telem-collector serving `db` on `addr` (with `envs` on top), once `/healthz`
    /// answers 200 (within 15 s).
    pub async fn start(db: &str, addr: SocketAddr, envs: &[(&str, String)]) -> Collector {
        let child = Command::new(env!("CARGO_BIN_EXE_telem-collector"))
            .args(["--config", "/nonexistent.toml", "serve"])
            .env("TELEM_COLLECTOR_DATABASE_URL", db)
            .env("TELEM_COLLECTOR_LISTEN", addr.to_string())
            .env("TELEM_COLLECTOR_LOG_LEVEL", "error")
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .spawn()
            .expect("starting telem-collector");
        let collector = Collector(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while !matches!(
            try_send(addr, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").await,
            Outcome::Status(200, _)
        ) {
            assert!(Instant::now() < deadline, "collector did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        collector
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_connections_slow_and_bad_clients_do_not_starve_others() {
    let _heavy = HEAVY.lock().await;
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let total: usize = MIX.iter().map(|(_, n)| n).sum();
    // 1,000 client sockets here and 1,000 in the collector (which inherits the limit).
    let limit = rlimit::increase_nofile_limit(4096).expect("raising RLIMIT_NOFILE");
    assert!(
        limit as usize >= total + 200,
        "RLIMIT_NOFILE can only be raised to {limit}; {total} connections need more (raise the hard limit)"
    );
    let db = migrated_db(pg).await;
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let header_timeout = HEADER_TIMEOUT.as_secs().to_string();
    let collector = Collector::start(
        &db,
        addr,
        &[("TELEM_COLLECTOR_HEADER_TIMEOUT_SECS", header_timeout)],
    )
    .await;
    let pid = collector.0.id();
    let (idle_rss, _) = rss_kib(pid);

    let connected = Arc::new(AtomicUsize::new(0));
    let (release_tx, release_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let kinds = MIX
        .iter()
        .flat_map(|&(kind, n)| std::iter::repeat_n(kind, n));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(20);
    // Opened in waves of 100 (each wave connected before the next starts), all held open
    // together: a storm of 1,000 SYNs at once is a SYN-flood test of the kernel, which answers
    // it with SYN cookies, not a test of the collector.
    for (i, kind) in kinds.enumerate() {
        let task = connection(kind, i, addr, connected.clone(), release_rx.clone());
        tasks.push(tokio::spawn(task));
        if (i + 1) % 100 == 0 || i + 1 == total {
            while connected.load(Ordering::SeqCst) < i + 1 {
                assert!(
                    Instant::now() < deadline,
                    "only {} of {total} connections established",
                    connected.load(Ordering::SeqCst)
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    let all_connected = started.elapsed();

    // While the slow bodies run into their timeout (~10 s), other clients are served.
    let (mut probes, mut slowest, mut peak_rss, mut peak_fds) = (0, Duration::ZERO, 0, 0);
    let probe_until = started + Duration::from_secs(11);
    while Instant::now() < probe_until {
        let t = Instant::now();
        let outcome = try_send(addr, &record(100_000 + probes)).await;
        let took = t.elapsed();
        assert!(
            matches!(outcome, Outcome::Status(201, _)),
            "a normal record during the load: {outcome}"
        );
        assert!(
            took < Duration::from_secs(2),
            "a normal record took {took:?}"
        );
        slowest = slowest.max(took);
        probes += 1;
        peak_rss = peak_rss.max(rss_kib(pid).0);
        peak_fds = peak_fds.max(open_fds(pid));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Connections that finished their part wait for this.
    release_tx.send(true).unwrap();
    let mut failures = Vec::new();
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(20), t).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => failures.push(e),
            Ok(Err(e)) => failures.push(format!("task panicked: {e}")),
            Err(_) => failures.push("a connection task did not finish".into()),
        }
    }
    let (rss, hwm) = rss_kib(pid);
    eprintln!(
        "load test: {total} connections established in {all_connected:?}; collector held up to \
         {peak_fds} file descriptors; {probes} normal records during the load, slowest 201 in \
         {slowest:?}; RSS idle {idle_rss} KiB, under load up to {peak_rss} KiB, after {rss} KiB, \
         peak (VmHWM) {hwm} KiB"
    );
    assert!(
        failures.is_empty(),
        "{} failures: {:#?}",
        failures.len(),
        &failures[..failures.len().min(20)]
    );
    assert!(
        hwm < RSS_BOUND_KIB,
        "collector peak RSS {hwm} KiB over {RSS_BOUND_KIB} KiB"
    );
    // Still serving afterwards.
    assert!(matches!(
        try_send(addr, &record(200_000)).await,
        Outcome::Status(201, _)
    ));
    drop(collector);
}
