//! Test helpers: a migrated database per test, an in-process collector bound to port 0, and a
//! raw HTTP/1.1 client that sends exact bytes (as the real client's captures do).

use std::net::SocketAddr;
use std::time::Duration;

use telem_collector::config::{Config, RawConfig};
use telem_collector::serve::App;
use telem_collector::store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::pg::{connect, PgCluster};

pub const TID: &str = "6907c830-eed9-4ce9-81ae-76daf8d88f0f";

/// The collector configuration tests run with (env-free: everything set here).
pub fn config(db_url: &str) -> Config {
    let mut config = Config::resolve(RawConfig {
        database_url: Some(db_url.to_string()),
        listen: Some("127.0.0.1:0".to_string()),
        ..RawConfig::default()
    })
    .expect("test config is valid");
    config.log_level = "warn".into();
    config
}

/// A new database with the schema applied.
pub async fn migrated_db(pg: &PgCluster) -> String {
    let url = pg.create_database().await;
    let mut client = connect(&url).await;
    store::migrate(&mut client).await.expect("migrate");
    url
}

/// A collector serving on 127.0.0.1:<ephemeral>.
pub struct TestServer {
    pub addr: SocketAddr,
    pub state: telem_collector::http::AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    pub async fn start(config: Config) -> Self {
        let app = App::start(&config).await.expect("collector starts");
        let state = app.state.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(app.serve_tcp(listener, async {
            let _ = rx.await;
        }));
        Self {
            addr,
            state,
            shutdown: Some(tx),
            task,
        }
    }

    /// Graceful shutdown; returns once every in-flight request was answered.
    pub async fn stop(mut self) {
        drop(self.state);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops within 10 s")
            .unwrap()
            .unwrap();
    }
}

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Writes `request` as is on a new connection and reads one response (Content-Length framed).
pub async fn send_raw(addr: SocketAddr, request: &[u8]) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write request");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("response within 10 s")
            .expect("read");
        assert!(
            n > 0,
            "connection closed before a response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.expect("read body");
        assert!(n > 0, "connection closed inside the body");
        body.extend_from_slice(&chunk[..n]);
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

/// Value that removes a header in [`header_request`].
pub const ABSENT: &str = "<absent>";

/// A header-format (v2.x) request with the given record headers overriding a valid record.
pub fn header_request(path: &str, overrides: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut fields: Vec<(String, String)> = [
        ("record_format_version", "4"),
        ("classification", "org.clearlinux/test/record"),
        ("severity", "2"),
        ("machine_id", "0123456789abcdef0123456789abcdef"),
        ("creation_timestamp", "1795758044"),
        ("arch", "x86_64"),
        ("host_type", "Intel Corporation|NUC|1"),
        ("build", "31870"),
        ("kernel_version", "6.1.0-test"),
        ("payload_format_version", "1"),
        ("system_name", "clear-linux-os"),
        ("board_name", "board"),
        ("cpu_model", "cpu"),
        ("bios_version", "bios"),
        ("event_id", "00000000000000000000000000000001"),
        ("X-Telemetry-TID", TID),
        ("Content-Type", "application/text"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in overrides {
        fields.retain(|(name, _)| name != k);
        if *v != ABSENT {
            fields.push((k.to_string(), v.to_string()));
        }
    }
    let mut out = format!("POST {path} HTTP/1.1\r\nHost: test\r\nAccept: */*\r\n").into_bytes();
    for (k, v) in fields {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

/// Number of rows in `records`.
pub async fn row_count(db_url: &str) -> i64 {
    connect(db_url)
        .await
        .query_one("SELECT count(*) FROM records", &[])
        .await
        .unwrap()
        .get(0)
}

/// Held by the tests that load the machine (outage under load, SIGTERM under load, 1,000
/// connections), so their timing assertions are not measured against each other's load.
pub static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A free TCP port on 127.0.0.1 (for the real binary, which is told its port).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free TCP port")
}

/// What a client saw for one request: a status, or the transport error (never a hang: the
/// real client's 10 s total timeout applies).
#[derive(Debug, Clone)]
pub enum Outcome {
    Status(u16, Option<i64>),
    Error(String),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Status(status, _) => write!(f, "HTTP {status}"),
            Outcome::Error(e) => f.write_str(e),
        }
    }
}

/// [`send_raw`] as the real client experiences it: connection errors and the 10 s timeout are
/// outcomes, not panics. The id of a 201 is returned with it.
pub async fn try_send(addr: SocketAddr, request: &[u8]) -> Outcome {
    let attempt = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .write_all(request)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        // Connection: close is not sent, so read until the body is complete.
        loop {
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err(format!(
                    "closed without a complete response: {:?}",
                    String::from_utf8_lossy(&buf)
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
            let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
            let status: u16 = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("bad status line: {head}"))?;
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let body = &buf[head_end + 4..];
            if body.len() < length {
                continue;
            }
            let id = (status == 201)
                .then(|| serde_json::from_slice::<serde_json::Value>(body).ok())
                .flatten()
                .and_then(|v| v["id"].as_i64());
            return Ok(Outcome::Status(status, id));
        }
    };
    match tokio::time::timeout(Duration::from_secs(10), attempt).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => Outcome::Error(e),
        Err(_) => Outcome::Error("no answer within the client's 10 s timeout".into()),
    }
}
