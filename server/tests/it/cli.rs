//! The real binary: `--version`, `check-config` exit codes naming the key, the password never
//! printed, `migrate` idempotent (also over the unix socket), `serve` refusing an unmigrated
//! schema, `purge --dry-run` counts and `purge`, and `serve` on a unix socket.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::harness::{migrated_db, row_count};
use crate::pg::{connect, PgCluster};

const BIN: &str = env!("CARGO_BIN_EXE_telem-collector");

/// Runs the binary with a clean TELEM_COLLECTOR_* environment plus `env`.
fn collector(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("TELEM_COLLECTOR_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(["--config", "/nonexistent/collector.toml"])
        .args(args);
    cmd.envs(env.iter().copied());
    cmd.output().expect("running telem-collector")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn version() {
    let o = collector(&["--version"], &[]);
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("telem-collector {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn check_config_exit_codes_name_the_key() {
    let ok = collector(
        &["check-config"],
        &[
            (
                "TELEM_COLLECTOR_DATABASE_URL",
                "postgres://telemetry@127.0.0.1:5432/telemetry",
            ),
            ("TELEM_COLLECTOR_DATABASE_PASSWORD", "sup3r-s3cret-pw"),
        ],
    );
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(!text(&ok).contains("sup3r-s3cret-pw"), "{}", text(&ok));

    let missing = collector(&["check-config"], &[]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing).contains("database_url"),
        "{}",
        text(&missing)
    );

    let bad = collector(
        &["check-config", "--listen", "not-an-address"],
        &[("TELEM_COLLECTOR_DATABASE_URL", "postgres://u@h/db")],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).contains("listen"), "{}", text(&bad));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("collector.toml");
    std::fs::write(
        &file,
        "database_url = \"postgres://u@h/db\"\nbatch_size = 3\n",
    )
    .unwrap();
    let unknown = Command::new(BIN)
        .args(["--config", file.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown).contains("batch_size"), "{}", text(&unknown));
}

#[tokio::test]
async fn migrate_is_idempotent_and_serve_needs_it() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let db = pg.create_database().await;
    let name = db.rsplit('/').next().unwrap().to_string();
    // Over the unix socket this time.
    let socket_url = format!(
        "postgres://postgres@localhost:{}/{name}?host={}",
        pg.port,
        pg.socket_dir().display()
    );
    let env = [("TELEM_COLLECTOR_DATABASE_URL", socket_url.as_str())];

    let serve = collector(&["serve", "--listen", "127.0.0.1:0"], &env);
    assert_eq!(serve.status.code(), Some(1), "{}", text(&serve));
    assert!(
        text(&serve).contains("run `telem-collector migrate`"),
        "{}",
        text(&serve)
    );

    let first = collector(&["migrate"], &env);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert!(text(&first).contains("applied"), "{}", text(&first));
    let second = collector(&["migrate"], &env);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    assert!(text(&second).contains("current"), "{}", text(&second));

    let client = connect(&db).await;
    let stamp: String = client
        .query_one("SELECT version_num FROM alembic_version", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stamp, "ac1c5921bf2f", "stamped for the upstream web UI");
}

/// Issue 10 item 5: a connection the server refuses names the server's reason, not just
/// "db error", and fails at once (waiting cannot cure it).
#[tokio::test]
async fn a_refused_connection_names_the_cause() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let url = format!("postgres://postgres@127.0.0.1:{}/no_such_db_e10", pg.port);
    let env = [("TELEM_COLLECTOR_DATABASE_URL", url.as_str())];
    for args in [&["migrate"][..], &["serve", "--listen", "127.0.0.1:0"]] {
        let started = Instant::now();
        let out = collector(args, &env);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains("database \"no_such_db_e10\" does not exist"),
            "{args:?}: {}",
            text(&out)
        );
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{args:?}: retried a refusal for {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn purge_dry_run_counts_then_deletes() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let db = migrated_db(pg).await;
    let client = connect(&db).await;
    let day = 86_400i64;
    // (classification, age in days)
    let rows = [
        ("org.clearlinux/hello/world", 10),
        ("org.clearlinux/hello/world", 1),
        ("org.clearlinux/keep/forever", 400),
        ("org.other/crash/x", 40),
        ("org.other/crash/x", 20),
    ];
    for (class, age) in rows {
        client
            .execute(
                "INSERT INTO records (build, classification, payload, timestamp_server, record_version)
                 VALUES ('1', $1, 'p', extract(epoch FROM now()) - $2::int8, 3)",
                &[&class, &(age * day)],
            )
            .await
            .unwrap();
    }
    let env = [
        ("TELEM_COLLECTOR_DATABASE_URL", db.as_str()),
        (
            "TELEM_COLLECTOR_RETENTION_CLASSIFICATIONS",
            "{ \"org.clearlinux/hello/*\" = 7, \"org.clearlinux/keep/*\" = 0 }",
        ),
    ];
    let dry = collector(&["purge", "--dry-run"], &env);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry));
    let out = text(&dry);
    assert!(
        out.contains("org.clearlinux/hello/*: older than 7 days: would delete 1 records"),
        "{out}"
    );
    assert!(
        out.contains("older than 35 days: would delete 1 records"),
        "{out}"
    );
    assert_eq!(row_count(&db).await, 5, "a dry run deletes nothing");

    let real = collector(&["purge"], &env);
    assert_eq!(real.status.code(), Some(0), "{}", text(&real));
    assert_eq!(row_count(&db).await, 3);
    let left: Vec<String> = client
        .query("SELECT classification FROM records ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        left,
        [
            "org.clearlinux/hello/world",
            "org.clearlinux/keep/forever",
            "org.other/crash/x"
        ]
    );
}

#[tokio::test]
async fn serves_on_a_unix_socket_and_stops_on_sigterm() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let db = migrated_db(pg).await;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("collector.sock");
    let mut child = Command::new(BIN)
        .args(["--config", "/nonexistent.toml", "serve"])
        .env("TELEM_COLLECTOR_DATABASE_URL", &db)
        .env("TELEM_COLLECTOR_LISTEN", format!("unix:{}", sock.display()))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stream = loop {
        if let Ok(s) = tokio::net::UnixStream::connect(&sock).await {
            break s;
        }
        assert!(Instant::now() < deadline, "socket never appeared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "{exit}");
    assert!(!sock.exists(), "socket removed on exit");
}
