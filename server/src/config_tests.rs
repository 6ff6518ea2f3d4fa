//! Config layering, defaults and errors (each naming its key; never the password).

use super::*;

fn load(toml: &str, env: &[(&str, &str)], flags: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut raw = RawConfig::from_toml(toml)?;
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    raw.apply_env(|k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))?;
    for (k, v) in flags {
        raw.set(k, v)?;
    }
    Config::resolve(raw)
}

const URL: &str = "database_url = \"postgres://telemetry@127.0.0.1:5432/telemetry\"\n";

#[test]
fn defaults() {
    let c = load(URL, &[], &[]).unwrap();
    assert_eq!(c.listen, Listen::Tcp("127.0.0.1:8090".parse().unwrap()));
    assert_eq!(c.telemetry_id, DEFAULT_TELEMETRY_ID);
    assert_eq!(c.body_limit_bytes, 307_200);
    assert_eq!(c.retention_max_days, 35);
    assert!(c.database_password.is_none());
}

#[test]
fn every_key_from_file() {
    let text = format!(
        "{URL}listen = \"unix:/run/telemetry/collector.sock\"\ndatabase_password = \"pw\"\n\
         telemetry_id = \"tid\"\nbody_limit_bytes = 2048\nwriter_connections = 5\nreader_connections = 3\n\
         read_statement_timeout_ms = 2500\nbody_budget_bytes = 4096\nbatch_max_records = 10\n\
         batch_max_wait_ms = 5\nretention_max_days = 0\nretention_purge_time = \"04:30\"\n\
         log_level = \"debug\"\n[retention_classifications]\n\"org.clearlinux/hello/*\" = 7\n"
    );
    let c = load(&text, &[], &[]).unwrap();
    assert_eq!(
        c.listen,
        Listen::Unix("/run/telemetry/collector.sock".into())
    );
    assert_eq!(c.database_password.as_ref().unwrap().expose(), "pw");
    assert_eq!(
        (
            c.body_limit_bytes,
            c.writer_connections,
            c.reader_connections,
            c.body_budget_bytes,
            c.batch_max_records
        ),
        (2048, 5, 3, 4096, 10)
    );
    assert_eq!(c.read_statement_timeout, Duration::from_millis(2500));
    assert_eq!(c.batch_max_wait, Duration::from_millis(5));
    assert_eq!(c.retention_max_days, 0);
    assert_eq!(
        c.retention_purge_time,
        NaiveTime::from_hms_opt(4, 30, 0).unwrap()
    );
    assert_eq!(
        c.retention_classifications,
        vec![("org.clearlinux/hello/*".to_string(), 7)]
    );
}

#[test]
fn env_overrides_file_and_flags_override_env() {
    let c = load(
        &format!("{URL}listen = \"127.0.0.1:1\"\ntelemetry_id = \"file\""),
        &[
            ("TELEM_COLLECTOR_LISTEN", "127.0.0.1:2"),
            ("TELEM_COLLECTOR_TELEMETRY_ID", "env"),
            ("TELEM_COLLECTOR_POOL_SIZE", "4"),
            (
                "TELEM_COLLECTOR_RETENTION_CLASSIFICATIONS",
                "{ \"a/b/*\" = 3 }",
            ),
        ],
        &[("telemetry_id", "flag")],
    )
    .unwrap();
    assert_eq!(c.listen, Listen::Tcp("127.0.0.1:2".parse().unwrap()));
    assert_eq!(c.telemetry_id, "flag");
    // The deprecated `pool_size` still sizes the readers' pool.
    assert_eq!(c.reader_connections, 4);
    assert_eq!(c.retention_classifications, vec![("a/b/*".to_string(), 3)]);
}

#[test]
fn env_alone_is_enough() {
    let c = load(
        "",
        &[
            ("TELEM_COLLECTOR_DATABASE_URL", "postgres://u@h/db"),
            ("TELEM_COLLECTOR_DATABASE_PASSWORD", "s3cret"),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(c.pg_config().get_password(), Some(&b"s3cret"[..]));
}

#[test]
fn password_file_is_read_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, "from-file\n").unwrap();
    let c = load(
        &format!("{URL}database_password_file = {:?}", file.to_str().unwrap()),
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(c.database_password.unwrap().expose(), "from-file");
}

/// (file text, environment, key the error must name).
type ErrorCase = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[test]
fn errors_name_the_key() {
    let cases: &[ErrorCase] = &[
        ("", &[], "database_url"),
        ("bogus = 1", &[], "bogus"),
        (URL, &[("TELEM_COLLECTOR_LISTEN", "nowhere")], "listen"),
        (
            URL,
            &[("TELEM_COLLECTOR_LISTEN", "unix:relative")],
            "listen",
        ),
        (
            URL,
            &[("TELEM_COLLECTOR_BODY_LIMIT_BYTES", "lots")],
            "body_limit_bytes",
        ),
        (
            URL,
            &[("TELEM_COLLECTOR_HEADER_TIMEOUT_SECS", "0")],
            "header_timeout_secs",
        ),
        (URL, &[("TELEM_COLLECTOR_POOL_SIZE", "0")], "pool_size"),
        (
            URL,
            &[("TELEM_COLLECTOR_WRITER_CONNECTIONS", "0")],
            "writer_connections",
        ),
        (
            URL,
            &[("TELEM_COLLECTOR_READER_CONNECTIONS", "1001")],
            "reader_connections",
        ),
        (
            URL,
            &[("TELEM_COLLECTOR_READ_STATEMENT_TIMEOUT_MS", "50")],
            "read_statement_timeout_ms",
        ),
        (
            URL,
            &[("TELEM_COLLECTOR_BODY_BUDGET_BYTES", "1024")],
            "body_budget_bytes",
        ),
        (
            URL,
            &[("TELEM_COLLECTOR_BATCH_MAX_RECORDS", "0")],
            "batch_max_records",
        ),
        (
            URL,
            &[("TELEM_COLLECTOR_RETENTION_PURGE_TIME", "25:00")],
            "retention_purge_time",
        ),
        (URL, &[("TELEM_COLLECTOR_LOG_LEVEL", "[[")], "log_level"),
        // regression (config fuzzer): tracing-subscriber panicked slicing inside a multi-byte
        // character of a directive
        (
            URL,
            &[(
                "TELEM_COLLECTOR_LOG_LEVEL",
                "telem_collect\u{fffd}=\u{fffd}\u{fffd}",
            )],
            "log_level",
        ),
        (
            URL,
            &[("TELEM_COLLECTOR_TELEMETRY_ID", " ")],
            "telemetry_id",
        ),
        (
            URL,
            &[("TELEM_COLLECTOR_RETENTION_CLASSIFICATIONS", "nope")],
            "retention_classifications",
        ),
        (
            "database_url = \"postgres://u:pw@h/db\"",
            &[],
            "database_url",
        ),
        ("database_url = \"http://[\"", &[], "database_url"),
        ("pool_size = \"four\"\n", &[], "pool_size"),
        (
            URL,
            &[("TELEM_COLLECTOR_DATABASE_PASSWORD_FILE", "/nonexistent/pw")],
            "database_password_file",
        ),
    ];
    for (toml, env, key) in cases {
        let err = load(toml, env, &[]).unwrap_err();
        assert_eq!(err.key, *key, "{toml:?} {env:?}: {err}");
        assert!(err.to_string().contains(key), "{err}");
    }
}

#[test]
fn password_never_printed() {
    let c = load(
        &format!("{URL}database_password = \"hunter2-secret\""),
        &[],
        &[],
    )
    .unwrap();
    assert!(!format!("{c:?}").contains("hunter2"));
    assert!(!format!("{:?}", c.pg_config()).contains("hunter2"));
    // A syntax error on the password line must not echo the line.
    let err = load(
        &format!("{URL}database_password = \"hunter2-secret"),
        &[],
        &[],
    )
    .unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let err = load(&format!("{URL}database_password = 12345678"), &[], &[]).unwrap_err();
    assert!(!err.to_string().contains("12345678"), "{err}");
    assert_eq!(err.key, "database_password");
}

/// A self-signed CA certificate (PEM), as the deploy tool's CA writes `db-ca.pem`.
fn ca_pem(name: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().pem()
}

fn with_ca(file: &Path, extra: &str) -> String {
    format!(
        "{URL}database_ca_file = {:?}\n{extra}",
        file.to_str().unwrap()
    )
}

#[test]
fn database_ca_file_makes_every_connection_tls() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("db-ca.pem");
    // Several certificates (a CA being replaced: old and new), comments between them.
    std::fs::write(
        &file,
        format!("# old\n{}# new\n{}", ca_pem("old CA"), ca_pem("new CA")),
    )
    .unwrap();
    let c = load(
        &with_ca(
            &file,
            "read_database_url = \"postgres://telemetry@10.77.0.12:5432/telemetry\"\n",
        ),
        &[],
        &[],
    )
    .unwrap();
    let ca = c.database_ca.as_ref().expect("database_ca_file loaded");
    assert_eq!((ca.path(), ca.certificates()), (file.as_path(), 2));
    use tokio_postgres::config::SslMode;
    assert_eq!(c.pg_config().get_ssl_mode(), SslMode::Require);
    assert_eq!(c.read_pg_config().get_ssl_mode(), SslMode::Require);
    // Without the key: the driver's default, and no TLS connector is ever built.
    let plain = load(URL, &[], &[]).unwrap();
    assert!(plain.database_ca.is_none());
    assert_eq!(plain.pg_config().get_ssl_mode(), SslMode::Prefer);
}

#[test]
fn database_ca_file_errors_name_the_key_and_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let key_only = dir.path().join("key-only.pem");
    std::fs::write(
        &key_only,
        rcgen::KeyPair::generate().unwrap().serialize_pem(),
    )
    .unwrap();
    let broken = dir.path().join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let unreadable = dir.path().to_path_buf(); // a directory
    for (file, why) in [
        (&missing, "cannot read"),
        (&empty, "holds no certificate"),
        (&key_only, "holds no certificate"),
        (&broken, "certificate 1 is not a usable CA"),
        (&unreadable, "cannot read"),
    ] {
        let err = load(&with_ca(file, ""), &[], &[]).unwrap_err();
        assert_eq!(err.key, "database_ca_file", "{err}");
        let text = err.to_string();
        assert!(text.contains(file.to_str().unwrap()), "{text}");
        assert!(text.contains(why), "{file:?}: {text}");
    }
    // The env and flag layers name the same key.
    let err = load(
        URL,
        &[(
            "TELEM_COLLECTOR_DATABASE_CA_FILE",
            missing.to_str().unwrap(),
        )],
        &[],
    )
    .unwrap_err();
    assert_eq!(err.key, "database_ca_file");
}

#[test]
fn read_database_url_is_checked_like_database_url() {
    let c = load(
        &format!("{URL}read_database_url = \"postgres://telemetry@10.77.0.12:5433/telemetry\"\ndatabase_password = \"pw\"\n"),
        &[],
        &[],
    )
    .unwrap();
    let read = c.read_pg_config();
    assert_eq!(read.get_ports(), &[5433]);
    assert_eq!(read.get_password(), Some(&b"pw"[..]), "the same password");
    assert_eq!(
        c.pg_config().get_ports(),
        &[5432],
        "writes stay on database_url"
    );
    // Without it, the readers use database_url.
    let c = load(URL, &[], &[]).unwrap();
    assert_eq!(c.read_pg_config().get_hosts(), c.pg_config().get_hosts());
    for (url, why) in [
        ("postgres://u:pw@h/db", "must not contain a password"),
        ("http://[", "not a valid"),
    ] {
        let err = load(&format!("{URL}read_database_url = {url:?}\n"), &[], &[]).unwrap_err();
        assert_eq!(err.key, "read_database_url", "{err}");
        assert!(err.to_string().contains(why), "{err}");
        assert!(!err.to_string().contains("pw"), "{err}");
    }
}

#[test]
fn tls_refuses_urls_it_cannot_verify() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("db-ca.pem");
    std::fs::write(&file, ca_pem("CA")).unwrap();
    for (key, url, why) in [
        (
            "read_database_url",
            "host=/run/postgresql dbname=telemetry",
            "unix socket",
        ),
        (
            "read_database_url",
            "postgres://telemetry@10.0.0.1/telemetry?sslmode=disable",
            "sslmode=disable",
        ),
    ] {
        let err = load(&with_ca(&file, &format!("{key} = {url:?}\n")), &[], &[]).unwrap_err();
        assert_eq!(err.key, key, "{err}");
        assert!(err.to_string().contains(why), "{err}");
    }
    let err = load(
        &format!(
            "database_url = \"host=/run/postgresql dbname=telemetry\"\ndatabase_ca_file = {:?}\n",
            file.to_str().unwrap()
        ),
        &[],
        &[],
    )
    .unwrap_err();
    assert_eq!(err.key, "database_url", "{err}");
    // Without database_ca_file a unix socket is fine, as it always was.
    load(
        "database_url = \"host=/run/postgresql dbname=telemetry\"\nread_database_url = \"host=/run/postgresql dbname=telemetry\"\n",
        &[],
        &[],
    )
    .unwrap();
}
