//! The binary upgrade on SIGUSR2 (`listen`): the real binary, 64 keep-alive clients posting
//! records, a handover in the middle. Every request is answered 201, no connection fails, and
//! every 201 is a stored row. The long run: `HANDOVER_REQUESTS=200000 cargo test -p
//! telem-collector --test it handover -- --nocapture` (see server/README.md).

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{free_port, header_request, migrated_db, row_count, HEAVY};
use crate::pg::PgCluster;

const BIN: &str = env!("CARGO_BIN_EXE_telem-collector");
const CLIENTS: usize = 64;

fn record(i: usize) -> Vec<u8> {
    header_request(
        "/v3/collector",
        &[
            ("machine_id", "handover"),
            ("event_id", &format!("{:032x}", 0xe000_0000usize + i)),
        ],
        format!("handover record {i}").as_bytes(),
    )
}

/// One answer on a keep-alive connection: its status and whether the server closes after it.
async fn exchange(stream: &mut TcpStream, request: &[u8]) -> Result<(u16, bool), String> {
    stream
        .write_all(request)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let status: u16 = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .ok_or("no status")?;
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                let close = head.lines().any(|l| l == "connection: close");
                while buf.len() < end + 4 + length {
                    let n = stream
                        .read(&mut chunk)
                        .await
                        .map_err(|e| format!("read: {e}"))?;
                    if n == 0 {
                        return Err("closed in the body".into());
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                return Ok((status, close));
            }
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("closed before an answer".to_string());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .map_err(|_| "no answer within 10 s".to_string())?
}

#[derive(Default)]
struct Tally {
    created: AtomicUsize,
    other: AtomicUsize,
    errors: AtomicUsize,
    closes: AtomicUsize,
    first_error: std::sync::Mutex<Option<String>>,
}

async fn client(
    addr: std::net::SocketAddr,
    next: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) {
    let mut stream: Option<TcpStream> = None;
    while !stop.load(Ordering::Relaxed) {
        let s = match stream.as_mut() {
            Some(s) => s,
            None => match TcpStream::connect(addr).await {
                Ok(s) => stream.insert(s),
                Err(e) => {
                    tally.errors.fetch_add(1, Ordering::Relaxed);
                    tally
                        .first_error
                        .lock()
                        .unwrap()
                        .get_or_insert(format!("connect: {e}"));
                    continue;
                }
            },
        };
        let i = next.fetch_add(1, Ordering::Relaxed);
        match exchange(s, &record(i)).await {
            Ok((status, close)) => {
                if status == 201 {
                    tally.created.fetch_add(1, Ordering::Relaxed);
                } else {
                    tally.other.fetch_add(1, Ordering::Relaxed);
                }
                if close {
                    tally.closes.fetch_add(1, Ordering::Relaxed);
                    stream = None;
                }
            }
            Err(e) => {
                tally.errors.fetch_add(1, Ordering::Relaxed);
                tally.first_error.lock().unwrap().get_or_insert(e);
                stream = None;
            }
        }
    }
}

/// Kills the processes the test started, whatever happens.
struct Reap(Vec<u32>);
impl Drop for Reap {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr2_hands_the_socket_to_a_new_binary_under_load_without_a_failed_request() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let _heavy = HEAVY.lock().await;
    let db = migrated_db(pg).await;
    let port = free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut old = Command::new(BIN)
        .args(["--config", "/nonexistent.toml", "serve"])
        .env("TELEM_COLLECTOR_DATABASE_URL", &db)
        .env("TELEM_COLLECTOR_LISTEN", addr.to_string())
        .env("TELEM_COLLECTOR_LOG_LEVEL", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reap = Reap(vec![old.id()]);
    // The old process logs the new one's pid (the new one logs to the same pipe).
    let (pid_tx, pid_rx) = std::sync::mpsc::channel::<u32>();
    let stderr = old.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            eprintln!("collector: {line}");
            if line.contains("the new process serves") {
                if let Some(pid) = line
                    .split("pid=")
                    .nth(1)
                    .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|s| s.parse().ok())
                {
                    let _ = pid_tx.send(pid);
                }
            }
        }
    });
    wait_for("the collector listens", Duration::from_secs(15), || {
        std::net::TcpStream::connect(addr).is_ok()
    })
    .await;

    let total: usize = std::env::var("HANDOVER_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6_000);
    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(client(addr, next.clone(), stop.clone(), tally.clone())))
        .collect();

    // A third of the load before the handover, the rest while and after it happens.
    wait_for("load before the upgrade", Duration::from_secs(120), || {
        next.load(Ordering::Relaxed) >= total / 3
    })
    .await;
    let status = Command::new("kill")
        .args(["-USR2", &old.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let new_pid = tokio::task::spawn_blocking(move || pid_rx.recv_timeout(Duration::from_secs(40)))
        .await
        .unwrap()
        .expect("the old process reports the new one serving");
    reap.0.push(new_pid);
    assert_ne!(new_pid, old.id());
    // The old process drains: every connection it has is told to close after its answer, so
    // it exits once each client has sent one more request.
    let mut exit = None;
    wait_for(
        "the old process exits after draining",
        Duration::from_secs(70),
        || {
            exit = old.try_wait().unwrap();
            exit.is_some()
        },
    )
    .await;
    assert!(exit.unwrap().success(), "{exit:?}");
    let after_exit = next.load(Ordering::Relaxed);
    wait_for("load after the upgrade", Duration::from_secs(120), || {
        next.load(Ordering::Relaxed) >= total.max(after_exit + total / 3)
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }

    let created = tally.created.load(Ordering::Relaxed);
    let other = tally.other.load(Ordering::Relaxed);
    let errors = tally.errors.load(Ordering::Relaxed);
    eprintln!(
        "handover under load: {created} answered 201, {other} other answers, {errors} socket \
         errors, {} connections closed by the old process",
        tally.closes.load(Ordering::Relaxed)
    );
    assert_eq!(
        (other, errors),
        (0, 0),
        "first error: {:?}",
        tally.first_error.lock().unwrap()
    );
    assert!(
        tally.closes.load(Ordering::Relaxed) >= CLIENTS,
        "every connection of the old process was handed over"
    );
    // The writer of the old process flushed its last batch before it exited; the new one's
    // batches are flushed within batch_max_wait (SIGTERM flushes them all).
    let term = Command::new("kill")
        .args(["-TERM", &new_pid.to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    wait_for(
        "the new process stops on SIGTERM",
        Duration::from_secs(15),
        || {
            !std::path::Path::new(&format!("/proc/{new_pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{new_pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z "))
        },
    )
    .await;
    assert_eq!(
        row_count(&db).await,
        created as i64,
        "rows stored = 201 answers"
    );
}
