//! `database_ca_file` and `read_database_url` against a real PostgreSQL with `ssl=on`: a
//! cluster of these tests' own whose pg_hba takes TCP connections over TLS only
//! (`hostnossl ... reject`, `hostssl ... scram-sha-256`), with a server certificate for
//! 127.0.0.1 and `db.test` signed by a test CA made here (rcgen). The collector stores and
//! reads over verified TLS; a certificate of another CA, or one that does not name the URL's
//! host, is refused with a message saying so; the readers use `read_database_url` (a second
//! database of the same cluster) while the writer stays on `database_url`; `/readyz` names
//! the database that is down.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use telem_collector::config::{Config, RawConfig, Secret};
use telem_collector::serve::App;
use tokio::sync::OnceCell;

use crate::harness::{header_request, send_raw, TestServer};
use crate::pg::{connect, PgCluster};

const BIN: &str = env!("CARGO_BIN_EXE_telem-collector");
const ROLE: &str = "telemetry";
const PASSWORD: &str = "tls-test-pw-7c1d";

/// A CA of the tests: its certificate (PEM) and what signs with it.
struct TestCa {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let cert = params.self_signed(&key).unwrap();
        Self { cert, key }
    }

    /// A server certificate for `names` (IP addresses and DNS names) and its key, both PEM.
    fn issue(&self, names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test database");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A TLS-only cluster: the server's certificate names 127.0.0.1 and `db.test`; it listens on
/// 127.0.0.1 and 127.0.0.2 (which the certificate does not name). Beside it, `ca.pem` (the CA
/// that signed it) and `other-ca.pem` (a CA that did not). The role `telemetry` logs in with
/// [`PASSWORD`] (SCRAM).
async fn start_tls_cluster() -> Option<PgCluster> {
    let ca = TestCa::new("telem test CA");
    let other = TestCa::new("some other CA");
    let (cert, key) = ca.issue(&["127.0.0.1", "db.test"]);
    let pg = tokio::task::spawn_blocking(move || {
        PgCluster::start_with(|dir| {
            std::fs::write(dir.join("server.crt"), &cert).unwrap();
            std::fs::write(dir.join("server.key"), &key).unwrap();
            std::fs::write(dir.join("ca.pem"), ca.cert.pem()).unwrap();
            std::fs::write(dir.join("other-ca.pem"), other.cert.pem()).unwrap();
            // First match wins: TCP without TLS is refused before any password is asked.
            std::fs::write(
                dir.join("pg_hba.conf"),
                "local all all trust\n\
                 hostnossl all all 127.0.0.0/8 reject\n\
                 hostssl all all 127.0.0.0/8 scram-sha-256\n",
            )
            .unwrap();
            let file = |name: &str| dir.join(name).display().to_string();
            vec![
                "listen_addresses=127.0.0.1,127.0.0.2".to_string(),
                "ssl=on".to_string(),
                format!("ssl_cert_file={}", file("server.crt")),
                format!("ssl_key_file={}", file("server.key")),
                format!("hba_file={}", file("pg_hba.conf")),
                "password_encryption=scram-sha-256".to_string(),
            ]
        })
    })
    .await
    .unwrap()?;
    let admin = connect(&pg.socket_url("postgres")).await;
    admin
        .batch_execute(&format!("CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'"))
        .await
        .expect("CREATE ROLE");
    Some(pg)
}

/// The TLS cluster the tests of this file share.
async fn shared_tls() -> Option<&'static PgCluster> {
    static SHARED: OnceCell<Option<PgCluster>> = OnceCell::const_new();
    SHARED.get_or_init(start_tls_cluster).await.as_ref()
}

/// A new empty database owned by [`ROLE`]; returns its name.
async fn create_database(pg: &PgCluster, tag: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let name = format!("tls_{tag}_{}_{n}", std::process::id());
    connect(&pg.socket_url("postgres"))
        .await
        .batch_execute(&format!("CREATE DATABASE {name} OWNER {ROLE}"))
        .await
        .expect("CREATE DATABASE");
    name
}

fn ca_file(pg: &PgCluster) -> PathBuf {
    pg.dir().join("ca.pem")
}

fn other_ca_file(pg: &PgCluster) -> PathBuf {
    pg.dir().join("other-ca.pem")
}

/// `postgres://telemetry@HOST:PORT/DB` plus `query` (e.g. `?hostaddr=127.0.0.1`).
fn url(pg: &PgCluster, host: &str, db: &str, query: &str) -> String {
    format!("postgres://{ROLE}@{host}:{}/{db}{query}", pg.port)
}

/// The collector's configuration: the password from the config, never the URL.
fn collector_config(url: &str, ca: Option<&Path>, read_url: Option<&str>) -> Config {
    let mut config = Config::resolve(RawConfig {
        database_url: Some(url.to_string()),
        database_password: Some(Secret::new(PASSWORD.to_string())),
        database_ca_file: ca.map(Path::to_path_buf),
        read_database_url: read_url.map(str::to_string),
        listen: Some("127.0.0.1:0".to_string()),
        ..RawConfig::default()
    })
    .expect("test config is valid");
    config.log_level = "warn".into();
    config
}

/// The real binary with only these settings (the password through the environment).
fn collector(args: &[&str], url: &str, ca: &Path) -> Output {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("TELEM_COLLECTOR_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(["--config", "/nonexistent/collector.toml"])
        .args(args)
        .env("TELEM_COLLECTOR_DATABASE_URL", url)
        .env("TELEM_COLLECTOR_DATABASE_PASSWORD", PASSWORD)
        .env("TELEM_COLLECTOR_DATABASE_CA_FILE", ca);
    cmd.output().expect("running telem-collector")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `telem-collector migrate` over TLS (the CA of the cluster); panics unless it succeeds.
fn migrate(url: &str, ca: &Path) {
    let out = collector(&["migrate"], url, ca);
    assert_eq!(out.status.code(), Some(0), "migrate: {}", text(&out));
}

fn record(event: u32) -> Vec<u8> {
    header_request(
        "/v2/collector",
        &[("event_id", &format!("{event:032x}"))],
        b"tls payload",
    )
}

/// Ids the query API (the readers' database) returns.
async fn api_ids(server: &TestServer) -> Vec<i64> {
    let r = send_raw(server.addr, b"GET /api/records HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}

/// Record ids stored in `db`, read as the superuser over the unix socket.
async fn stored_ids(pg: &PgCluster, db: &str) -> Vec<i64> {
    connect(&pg.socket_url(db))
        .await
        .query("SELECT id FROM records ORDER BY id DESC", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, i32>(0).into())
        .collect()
}

/// (connections of the collector's role to `db` over TLS, all of them).
async fn tls_connections(pg: &PgCluster, db: &str) -> (i64, i64) {
    let row = connect(&pg.socket_url("postgres"))
        .await
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*)
               FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
              WHERE a.usename = $1 AND a.datname = $2",
            &[&ROLE, &db],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

async fn readyz(server: &TestServer) -> (u16, String) {
    let r = send_raw(server.addr, b"GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n").await;
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

/// The error `App::start` ends with (it must fail, and fail at once: waiting cannot make a
/// certificate acceptable).
async fn start_error(config: &Config) -> String {
    let started = Instant::now();
    let err = match App::start(config).await {
        Ok(_) => panic!("the collector started"),
        Err(e) => e.to_string(),
    };
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "retried a permanent refusal for {:?}: {err}",
        started.elapsed()
    );
    err
}

/// (a) Records posted are stored over TLS (the URL's host an IP address, then a DNS name),
/// migrations ran over TLS, and the same URL without `database_ca_file` is refused by the
/// server's pg_hba: nothing here could pass in plain text.
#[tokio::test]
async fn records_are_stored_over_verified_tls() {
    let Some(pg) = shared_tls().await else {
        return;
    };
    let db = create_database(pg, "store").await;
    let by_ip = url(pg, "127.0.0.1", &db, "");
    migrate(&by_ip, &ca_file(pg));

    let plain = start_error(&collector_config(&by_ip, None, None)).await;
    assert!(
        plain.contains("pg_hba.conf rejects connection") && plain.contains("no encryption"),
        "{plain}"
    );

    let server = TestServer::start(collector_config(&by_ip, Some(&ca_file(pg)), None)).await;
    let r = send_raw(server.addr, &record(1)).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let id = r.json()["id"].as_i64().unwrap();
    assert_eq!(stored_ids(pg, &db).await, vec![id]);
    assert_eq!(api_ids(&server).await, vec![id], "read over TLS too");
    assert_eq!(readyz(&server).await, (200, "ready\n".to_string()));
    let (tls, all) = tls_connections(pg, &db).await;
    assert!(all > 0 && tls == all, "{tls} of {all} connections over TLS");
    server.stop().await;

    // The host a DNS name: the certificate names `db.test` (reached at 127.0.0.1).
    let by_name = url(pg, "db.test", &db, "?hostaddr=127.0.0.1");
    let server = TestServer::start(collector_config(&by_name, Some(&ca_file(pg)), None)).await;
    let r = send_raw(server.addr, &record(2)).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let second = r.json()["id"].as_i64().unwrap();
    assert_eq!(stored_ids(pg, &db).await, vec![second, id]);
    server.stop().await;
}

/// (b) A server certificate signed by another CA than the file's is refused, by `serve`
/// and by `migrate`, with a message that says so (and no retrying for 10 s).
#[tokio::test]
async fn a_certificate_of_another_ca_is_refused() {
    let Some(pg) = shared_tls().await else {
        return;
    };
    let db = create_database(pg, "other_ca").await;
    let by_ip = url(pg, "127.0.0.1", &db, "");
    let other = other_ca_file(pg);
    let err = start_error(&collector_config(&by_ip, Some(&other), None)).await;
    assert!(
        err.contains("certificate is refused") && err.contains("UnknownIssuer"),
        "{err}"
    );
    assert!(err.contains("database_ca_file"), "{err}");

    let started = Instant::now();
    let out = collector(&["migrate"], &by_ip, &other);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("UnknownIssuer"), "{}", text(&out));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "migrate retried"
    );
    assert!(!text(&out).contains(PASSWORD), "{}", text(&out));
    // Nothing was migrated: the connection never got past the handshake.
    let tables: i64 = connect(&pg.socket_url(&db))
        .await
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0);
}

/// (c) A certificate of the right CA that does not name the URL's host is refused: an IP
/// address (127.0.0.2, where the server listens too) and a DNS name (`other.test`).
#[tokio::test]
async fn a_certificate_for_another_host_is_refused() {
    let Some(pg) = shared_tls().await else {
        return;
    };
    let db = create_database(pg, "other_host").await;
    migrate(&url(pg, "127.0.0.1", &db, ""), &ca_file(pg));
    for (host, query) in [("127.0.0.2", ""), ("other.test", "?hostaddr=127.0.0.1")] {
        let config = collector_config(&url(pg, host, &db, query), Some(&ca_file(pg)), None);
        let err = start_error(&config).await;
        assert!(
            err.contains(&format!("certificate not valid for name \"{host}\"")),
            "{host}: {err}"
        );
        assert!(err.contains("certificate is refused"), "{host}: {err}");
    }
}

/// (d) With `read_database_url` the API reads there while records are written to
/// `database_url`: two databases of the one TLS cluster, the reader's empty. A record posted
/// is stored in the primary and not visible through the API; with the reader the primary
/// itself, it is.
#[tokio::test]
async fn reads_go_to_read_database_url_and_writes_to_database_url() {
    let Some(pg) = shared_tls().await else {
        return;
    };
    let ca = ca_file(pg);
    let primary = create_database(pg, "primary").await;
    let reader = create_database(pg, "reader").await;
    let primary_url = url(pg, "127.0.0.1", &primary, "");
    let reader_url = url(pg, "db.test", &reader, "?hostaddr=127.0.0.1");
    migrate(&primary_url, &ca);
    migrate(&reader_url, &ca);

    let server =
        TestServer::start(collector_config(&primary_url, Some(&ca), Some(&reader_url))).await;
    let r = send_raw(server.addr, &record(3)).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let id = r.json()["id"].as_i64().unwrap();
    assert_eq!(
        stored_ids(pg, &primary).await,
        vec![id],
        "written to the primary"
    );
    assert_eq!(stored_ids(pg, &reader).await, Vec::<i64>::new());
    assert_eq!(
        api_ids(&server).await,
        Vec::<i64>::new(),
        "read from the reader"
    );
    assert_eq!(readyz(&server).await, (200, "ready\n".to_string()));
    let (tls, all) = tls_connections(pg, &reader).await;
    assert!(all > 0 && tls == all, "reader: {tls} of {all} over TLS");
    server.stop().await;

    let server = TestServer::start(collector_config(
        &primary_url,
        Some(&ca),
        Some(&primary_url),
    ))
    .await;
    assert_eq!(api_ids(&server).await, vec![id], "reader = primary");
    server.stop().await;
}

/// `/readyz` with two databases names the one that is not ready: the reader's database
/// missing (records are still stored), then the primary's cluster stopped.
#[tokio::test]
async fn readyz_names_the_database_that_is_down() {
    let Some(reader_pg) = shared_tls().await else {
        return;
    };
    let Some(mut primary_pg) = start_tls_cluster().await else {
        return;
    };
    let primary = create_database(&primary_pg, "ready_primary").await;
    let primary_url = url(&primary_pg, "127.0.0.1", &primary, "");
    let ca = ca_file(&primary_pg);
    migrate(&primary_url, &ca);
    let reader = create_database(reader_pg, "ready_reader").await;
    // Each cluster has a CA of its own: the file holds both (as during a CA change).
    let both = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        both.path(),
        format!(
            "{}{}",
            std::fs::read_to_string(&ca).unwrap(),
            std::fs::read_to_string(ca_file(reader_pg)).unwrap()
        ),
    )
    .unwrap();
    let reader_url = url(reader_pg, "127.0.0.1", &reader, "");
    migrate(&reader_url, &ca_file(reader_pg));

    let missing_reader = url(reader_pg, "127.0.0.1", "no_such_reader_db", "");
    let server = TestServer::start(collector_config(
        &primary_url,
        Some(both.path()),
        Some(&missing_reader),
    ))
    .await;
    assert_eq!(
        readyz(&server).await,
        (503, "database not ready (read_database_url)\n".to_string())
    );
    let r = send_raw(server.addr, &record(4)).await;
    assert_eq!(r.status, 201, "records are still stored");
    server.stop().await;

    let server = TestServer::start(collector_config(
        &primary_url,
        Some(both.path()),
        Some(&reader_url),
    ))
    .await;
    assert_eq!(readyz(&server).await, (200, "ready\n".to_string()));
    primary_pg.stop();
    assert_eq!(
        readyz(&server).await,
        (503, "database not ready (database_url)\n".to_string())
    );
    assert_eq!(
        api_ids(&server).await,
        Vec::<i64>::new(),
        "the reader still reads"
    );
    server.stop().await;
}
