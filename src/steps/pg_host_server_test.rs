//! The database host's steps against a real PostgreSQL: a cluster of our own (`initdb` into a
//! temp directory as the `postgres` OS user, see `engine/pgadmin_server_test.rs`), reached as
//! the engine reaches it (`PgAdmin` through `LocalHost`, psql as `postgres`), with the code the
//! steps' check and apply run (`PostgresSettings::differences` and `alter`,
//! `PostgresHba::contents` and `install`).
//!
//! Needs root and the PostgreSQL server binaries; without them the tests fail saying why,
//! unless `TELEM_SKIP_PG_TESTS=1`, then they say why they skip.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use super::postgres_hba::{install, PostgresHba};
use super::postgres_settings::{PostgresSettings, Records};
use crate::ca::Ca;
use crate::engine::pg_hba::Entry;
use crate::engine::pgadmin::server_test::{available, Cluster};
use crate::engine::pgadmin::{scram_verifier, Op, PgAdmin, Setting};
use crate::host::{Host, LocalHost, Owner};
use crate::recipe::model::Presence;

fn settings(state: Presence, pairs: &[(&str, &str)]) -> PostgresSettings {
    PostgresSettings {
        settings: pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        state,
        notify: Vec::new(),
    }
}

fn admin(cluster: &Cluster) -> PgAdmin<'static> {
    PgAdmin {
        host: &LocalHost,
        psql: crate::engine::pgadmin::PSQL,
        os_user: "postgres",
        socket_dir: Box::leak(cluster.socket_dir().into_boxed_str()),
        port: cluster.port,
    }
}

/// The step's check: what differs (nothing recorded).
fn differences(pg: &PgAdmin, step: &PostgresSettings) -> Vec<String> {
    step.differences(&read(pg, step), &Records::new()).unwrap()
}

fn read(pg: &PgAdmin, step: &PostgresSettings) -> Vec<Setting> {
    pg.call(step.op())
        .unwrap_or_else(|e| panic!("{e}"))
        .settings
}

/// The step's apply: ALTER SYSTEM for what postgresql.auto.conf lacks (nothing recorded).
fn apply(pg: &PgAdmin, step: &PostgresSettings) {
    if let Some(op) = step.alter(&read(pg, step), &Records::new()) {
        pg.call(op).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// What `psql` says connecting over TCP to `host` (exit status and output), as root, with
/// `extra` connection parameters.
fn connect(cluster: &Cluster, host: &str, extra: &str, password: Option<&str>) -> (bool, String) {
    let mut c = Command::new("psql");
    c.env_remove("PGPASSWORD")
        .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(format!(
            "host={host} port={} dbname=postgres connect_timeout=10 {extra}",
            cluster.port
        ))
        .args([
            "-c",
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ]);
    if let Some(p) = password {
        c.env("PGPASSWORD", p);
    }
    let out = c.output().expect("running psql");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn settings_converge_and_reset_on_a_real_server() {
    if !available() {
        return;
    }
    // No listen_addresses on the command line: it would win over postgresql.auto.conf.
    let cluster = Cluster::start_with("-c log_statement=all");
    let pg = admin(&cluster);
    let hostile = "%m [%p] it's \"q\" \\ ; ALTER SYSTEM SET work_mem = '1MB'; -- $$ :var";
    let step = settings(
        Presence::Present,
        &[
            ("listen_addresses", "localhost,127.0.0.2"),
            ("log_line_prefix", hostile),
            // Not as SHOW prints it (1GB).
            ("work_mem", "1024MB"),
        ],
    );
    let before = differences(&pg, &step);
    assert_eq!(before.len(), 3, "{before:?}");
    assert!(
        before[0].starts_with("ALTER SYSTEM SET listen_addresses = 'localhost,127.0.0.2'")
            && before[0].ends_with("applied by a restart)"),
        "{before:?}"
    );
    apply(&pg, &step);
    // In postgresql.auto.conf, not yet in effect: still a change, but nothing left to write.
    let pending = differences(&pg, &step);
    assert_eq!(pending.len(), 3, "{pending:?}");
    assert!(
        pending.iter().all(|d| d.contains("not in effect")),
        "{pending:?}"
    );
    assert!(step.alter(&read(&pg, &step), &Records::new()).is_none());
    // The file's time has whole seconds: a restart in the second of the change would not
    // count as after it. Dated back, as a change made earlier.
    let auto_conf = cluster.base.join("data/postgresql.auto.conf");
    let earlier = std::fs::metadata(&auto_conf).unwrap().mtime() - 10;
    crate::engine::pgadmin::server_test::run_ok(
        Command::new("touch")
            .arg("-d")
            .arg(format!("@{earlier}"))
            .arg(&auto_conf),
    );
    cluster.pg_ctl("restart");
    assert_eq!(differences(&pg, &step), Vec::<String>::new(), "converged");
    assert!(step.alter(&read(&pg, &step), &Records::new()).is_none());
    // The value is exactly the text given, and nothing broke out of its quotes.
    assert_eq!(
        cluster.sql("postgres", "SHOW log_line_prefix"),
        format!("{hostile}\n")
    );
    assert_eq!(
        cluster.sql(
            "postgres",
            "SELECT string_agg(name, ',' ORDER BY name) FROM pg_file_settings \
             WHERE sourcefile LIKE '%postgresql.auto.conf'"
        ),
        "listen_addresses,log_line_prefix,work_mem\n"
    );
    assert_eq!(cluster.sql("postgres", "SHOW work_mem"), "1GB\n");
    // The server listens on the new address (pg_hba refuses, so it answered).
    let (ok, said) = connect(&cluster, "127.0.0.2", "sslmode=disable", None);
    assert!(!ok && said.contains("pg_hba.conf"), "{said}");

    // A line break cannot reach postgresql.auto.conf (the step refuses it when compiled; the
    // server refuses it too).
    let err = pg
        .call(Op::AlterSystem {
            set: vec![("log_line_prefix".into(), "x'\nlisten_addresses = '*".into())],
            reset: Vec::new(),
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("status 3"), "{err}");
    assert_eq!(differences(&pg, &step), Vec::<String>::new(), "unchanged");

    // Absent: reset, then in effect after the restart.
    let gone = settings(
        Presence::Absent,
        &[
            ("listen_addresses", ""),
            ("log_line_prefix", ""),
            ("work_mem", ""),
        ],
    );
    let d = differences(&pg, &gone);
    assert!(
        d.len() == 3 && d.iter().all(|l| l.starts_with("ALTER SYSTEM RESET")),
        "{d:?}"
    );
    apply(&pg, &gone);
    assert_eq!(differences(&pg, &gone).len(), 3, "still in effect");
    cluster.pg_ctl("restart");
    assert_eq!(differences(&pg, &gone), Vec::<String>::new());
    assert_eq!(
        cluster.sql("postgres", "SHOW listen_addresses"),
        "localhost\n"
    );
    // A setting PostgreSQL does not know is an error of the check, not a change.
    let typo = settings(Presence::Present, &[("lsiten_addresses", "*")]);
    let err = typo
        .differences(&read(&pg, &typo), &Records::new())
        .unwrap_err();
    assert!(err.to_string().contains("no setting"), "{err}");
}

#[test]
fn hba_block_and_an_issued_certificate_serve_tls_on_a_real_server() {
    if !available() {
        return;
    }
    let cluster = Cluster::start_with("-c log_statement=all");
    let pg = admin(&cluster);
    let host = &LocalHost;

    // The server's certificate, issued by a CA of this test, installed as issued_tls does
    // (the key 0600 first, owned by postgres).
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = Ca::load_or_create(&ca_dir.path().join("ca"), false).unwrap();
    let issued = ca
        .issue(&["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap();
    let (key, cert) = (
        cluster.base.join("server.key"),
        cluster.base.join("server.crt"),
    );
    let owner = |mode| Owner {
        user: "postgres".into(),
        group: "postgres".into(),
        mode,
    };
    host.write(&key, issued.key_pem.expose().as_bytes(), &owner(0o600))
        .unwrap();
    host.write(&cert, &issued.cert_pem, &owner(0o644)).unwrap();
    let tls = settings(
        Presence::Present,
        &[
            ("ssl", "on"),
            ("ssl_cert_file", cert.to_str().unwrap()),
            ("ssl_key_file", key.to_str().unwrap()),
        ],
    );
    apply(&pg, &tls);

    // The block: on top of initdb's file, which stays byte for byte.
    let path = pg
        .call(Op::HbaFile)
        .unwrap_or_else(|e| panic!("{e}"))
        .text
        .unwrap();
    assert_eq!(Path::new(&path), cluster.base.join("data/pg_hba.conf"));
    let original = std::fs::read(&path).unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    let entry = |conn: &str, user: &str, address: &str, method: &str| Entry {
        conn: conn.parse().unwrap(),
        database: "postgres".into(),
        user: user.into(),
        address: Some(address.parse().unwrap()),
        method: method.parse().unwrap(),
    };
    let hba = PostgresHba {
        entries: vec![
            entry("hostssl", "tls_user", "127.0.0.1", "scram-sha-256"),
            entry("host", "all", "127.0.0.0/8", "reject"),
        ],
        state: Presence::Present,
        notify: Vec::new(),
    };
    let (old, new) = hba.contents(host, &path).unwrap();
    assert_eq!(old, original);
    assert_ne!(old, new);
    install(host, &pg, &path, &old, &new).unwrap();
    let written = std::fs::read(&path).unwrap();
    let block = crate::engine::pg_hba::block(&hba.entries);
    assert_eq!(written, [block.as_bytes(), &original].concat());
    let after = std::fs::metadata(&path).unwrap();
    assert_eq!(
        (after.uid(), after.gid(), after.mode() & 0o7777),
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        "owner and mode kept"
    );
    let (old, new) = hba.contents(host, &path).unwrap();
    assert_eq!(old, new, "a re-run changes nothing");
    // Before the restart that turns SSL on, the server sees a hostssl line that cannot
    // match yet; install counted it as no error since ssl is on in the files.
    let errors = "SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL";
    assert_eq!(cluster.sql("postgres", errors), "1\n");

    // A role with a password (its verifier), the restart the notifications would do, and a
    // client that verifies the server against the CA gets in over TLS.
    let password = "Tls-Zq7 'x\"";
    pg.call(Op::CreateRole {
        role: "tls_user".into(),
    })
    .unwrap();
    pg.call(Op::SetVerifier {
        role: "tls_user".into(),
        verifier: scram_verifier(password),
    })
    .unwrap();
    cluster.pg_ctl("restart");
    assert_eq!(differences(&pg, &tls), Vec::<String>::new());
    assert_eq!(cluster.sql("postgres", errors), "0\n");
    let ca_file = ca.dir().join(crate::ca::CERT_FILE);
    let verify = format!(
        "user=tls_user sslmode=verify-full sslrootcert={}",
        ca_file.display()
    );
    let (ok, said) = connect(&cluster, "127.0.0.1", &verify, Some(password));
    assert!(ok && said == "t\n", "{said}");
    // The name is checked: `localhost` is in the certificate, `db.invalid` is not.
    let (ok, said) = connect(&cluster, "localhost", &verify, Some(password));
    assert!(ok && said == "t\n", "{said}");
    let other = format!("hostaddr=127.0.0.1 {verify}");
    let (ok, said) = connect(&cluster, "db.invalid", &other, Some(password));
    assert!(!ok && said.contains("does not match host name"), "{said}");
    // Without TLS, or with a wrong password: refused by the block's lines.
    let (ok, said) = connect(
        &cluster,
        "127.0.0.1",
        "user=tls_user sslmode=disable",
        Some(password),
    );
    assert!(!ok && said.contains("reject"), "{said}");
    let (ok, said) = connect(&cluster, "127.0.0.1", &verify, Some("wrong"));
    assert!(
        !ok && said.contains("password authentication failed"),
        "{said}"
    );

    // A file PostgreSQL would refuse is put back as it was, and the step fails saying why.
    let broken = [
        b"hostssl all all 10.0.0.0/8 bogus-method\n".as_slice(),
        &written,
    ]
    .concat();
    let err = install(host, &pg, &path, &written, &broken)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("refuses") && err.contains("line 1") && err.contains("previous file is back"),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), written);

    // Absent: only the block goes.
    let gone = PostgresHba {
        entries: Vec::new(),
        state: Presence::Absent,
        notify: Vec::new(),
    };
    let (old, new) = gone.contents(host, &path).unwrap();
    install(host, &pg, &path, &old, &new).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), original);
    let (old, new) = gone.contents(host, &path).unwrap();
    assert_eq!(old, new);
}

/// A certificate and key of `ca` for localhost, written into the cluster's directory as
/// `NAME.crt` and `NAME.key` (the key 0600, both the postgres user's): their paths.
fn pair(cluster: &Cluster, ca: &Ca, name: &str) -> (String, String) {
    let issued = ca
        .issue(&["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap();
    let (cert, key) = (
        cluster.base.join(format!("{name}.crt")),
        cluster.base.join(format!("{name}.key")),
    );
    let owner = |mode| Owner {
        user: "postgres".into(),
        group: "postgres".into(),
        mode,
    };
    LocalHost
        .write(&key, issued.key_pem.expose().as_bytes(), &owner(0o600))
        .unwrap();
    LocalHost
        .write(&cert, &issued.cert_pem, &owner(0o644))
        .unwrap();
    (cert.display().to_string(), key.display().to_string())
}

/// The step's apply with the state file's records (`records`, rewritten as the step saves
/// them), on a cluster that is no base backup.
fn converge(pg: &PgAdmin, step: &PostgresSettings, records: &mut Records) {
    let now = records.clone();
    step.converge(pg, &now, false, &mut |saved| {
        *records = saved;
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

/// What the configuration files hold, file by file (postgresql.conf, postgresql.auto.conf),
/// for the four settings: (file name, setting name, value), by file and name.
fn file_settings(cluster: &Cluster) -> String {
    cluster.sql(
        "postgres",
        "SELECT regexp_replace(sourcefile, '^.*/', '') || '|' || name || '|' || setting \
         FROM pg_file_settings WHERE name IN ('listen_addresses', 'ssl', 'ssl_cert_file', \
         'ssl_key_file') ORDER BY sourcefile, name",
    )
}

/// `SHOW` of the four settings, one per line.
fn shown(cluster: &Cluster) -> String {
    ["listen_addresses", "ssl", "ssl_cert_file", "ssl_key_file"]
        .iter()
        .map(|n| cluster.sql("postgres", &format!("SHOW {n}")))
        .collect()
}

/// The database host's install (listen, TLS, pg_hba block), a re-run, and uninstall, as the
/// recipe's steps do them (`converge` with the state file's records), on `cluster`; each
/// phase ends with the restart the steps notify. Returns the records after install.
fn install_rerun_uninstall(cluster: &Cluster, tool_ca: &Ca) -> Records {
    let pg = admin(cluster);
    let (cert, key) = pair(cluster, tool_ca, "telem");
    let values = [
        ("listen_addresses", "localhost,127.0.0.2"),
        ("ssl", "on"),
        ("ssl_cert_file", cert.as_str()),
        ("ssl_key_file", key.as_str()),
    ];
    let listen = settings(Presence::Present, &values);
    let hba_path = pg.call(Op::HbaFile).unwrap().text.unwrap();
    let hba_before = std::fs::read(&hba_path).unwrap();
    let hba = PostgresHba {
        entries: vec![Entry {
            conn: "hostssl".parse().unwrap(),
            database: "postgres".into(),
            user: "telemetry".into(),
            address: Some("127.0.0.2".parse().unwrap()),
            method: "scram-sha-256".parse().unwrap(),
        }],
        state: Presence::Present,
        notify: Vec::new(),
    };

    let mut records = Records::new();
    converge(&pg, &listen, &mut records);
    let (old, new) = hba.contents(&LocalHost, &hba_path).unwrap();
    install(&LocalHost, &pg, &hba_path, &old, &new).unwrap();
    cluster.pg_ctl("restart");
    assert_eq!(
        listen.differences(&read(&pg, &listen), &records).unwrap(),
        Vec::<String>::new(),
        "installed"
    );
    assert_eq!(
        shown(cluster),
        format!("localhost,127.0.0.2\non\n{cert}\n{key}\n")
    );
    let installed = records.clone();

    // A re-run: nothing to do, and the tool's own values never become the record.
    converge(&pg, &listen, &mut records);
    assert_eq!(records, installed, "a re-run keeps the record");

    // Uninstall: the plan says what comes back; a dry run (the check) changes nothing.
    let gone = settings(Presence::Absent, &values);
    let auto_conf = std::fs::read(cluster.base.join("data/postgresql.auto.conf")).unwrap();
    let plan = gone.differences(&read(&pg, &gone), &records).unwrap();
    assert!(!plan.is_empty());
    assert_eq!(
        std::fs::read(cluster.base.join("data/postgresql.auto.conf")).unwrap(),
        auto_conf,
        "a check changes nothing"
    );
    eprintln!("uninstall plan: {plan:#?}");
    converge(&pg, &gone, &mut records);
    assert!(
        records.len() == 4 && records.values().all(|r| r.ours.is_none()),
        "uninstall is done with them: {records:?}"
    );
    let uninstalled = records.clone();
    let hba_gone = PostgresHba {
        entries: Vec::new(),
        state: Presence::Absent,
        notify: Vec::new(),
    };
    let (old, new) = hba_gone.contents(&LocalHost, &hba_path).unwrap();
    install(&LocalHost, &pg, &hba_path, &old, &new).unwrap();
    assert_eq!(
        std::fs::read(&hba_path).unwrap(),
        hba_before,
        "pg_hba.conf as it was, byte for byte"
    );
    cluster.pg_ctl("restart");
    assert_eq!(
        gone.differences(&read(&pg, &gone), &records).unwrap(),
        Vec::<String>::new(),
        "uninstalled"
    );
    // A second uninstall changes nothing.
    let auto_conf = std::fs::read(cluster.base.join("data/postgresql.auto.conf")).unwrap();
    converge(&pg, &gone, &mut records);
    assert_eq!(records, uninstalled);
    assert_eq!(
        std::fs::read(cluster.base.join("data/postgresql.auto.conf")).unwrap(),
        auto_conf
    );
    installed
}

#[test]
fn uninstall_puts_back_the_operators_own_settings_on_a_real_server() {
    if !available() {
        return;
    }
    let cluster = Cluster::start_with("-c log_statement=all");
    let ca_dir = tempfile::tempdir().unwrap();
    let theirs = Ca::load_or_create(&ca_dir.path().join("operator"), false).unwrap();
    let ours = Ca::load_or_create(&ca_dir.path().join("tool"), false).unwrap();

    // A lived-in host: the operator's own ALTER SYSTEM values, TLS with their own pair.
    let (cert, key) = pair(&cluster, &theirs, "operator");
    for sql in [
        "ALTER SYSTEM SET listen_addresses = '*'".to_owned(),
        "ALTER SYSTEM SET ssl = on".to_owned(),
        format!("ALTER SYSTEM SET ssl_cert_file = '{cert}'"),
        format!("ALTER SYSTEM SET ssl_key_file = '{key}'"),
    ] {
        cluster.sql("postgres", &sql);
    }
    cluster.pg_ctl("restart");
    let files = file_settings(&cluster);
    assert_eq!(
        files,
        format!(
            "postgresql.auto.conf|listen_addresses|*\npostgresql.auto.conf|ssl|on\n\
             postgresql.auto.conf|ssl_cert_file|{cert}\npostgresql.auto.conf|ssl_key_file|{key}\n"
        )
    );
    let running = shown(&cluster);
    assert_eq!(running, format!("*\non\n{cert}\n{key}\n"));

    let installed = install_rerun_uninstall(&cluster, &ours);
    let before = |name: &str| installed[name].before.clone();
    assert_eq!(before("listen_addresses").as_deref(), Some("*"));
    assert_eq!(before("ssl").as_deref(), Some("on"));
    assert_eq!(before("ssl_cert_file"), Some(cert.clone()));
    assert_eq!(before("ssl_key_file"), Some(key.clone()));

    // The operator's values, exactly: in the file and running.
    assert_eq!(file_settings(&cluster), files);
    assert_eq!(shown(&cluster), running);
}

#[test]
fn uninstall_resets_only_what_the_tool_added_on_a_real_server() {
    if !available() {
        return;
    }
    let cluster = Cluster::start_with("-c log_statement=all");
    let ca_dir = tempfile::tempdir().unwrap();
    let ours = Ca::load_or_create(&ca_dir.path().join("tool"), false).unwrap();
    // Nothing set by ALTER SYSTEM; the operator's postgresql.conf names an address (ALTER
    // SYSTEM RESET never touches that file: it applies again).
    let conf = cluster.base.join("data/postgresql.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("listen_addresses = '127.0.0.1'\n");
    std::fs::write(&conf, text).unwrap();
    cluster.pg_ctl("restart");
    let files = file_settings(&cluster);
    assert_eq!(files, "postgresql.conf|listen_addresses|127.0.0.1\n");
    let running = shown(&cluster);
    assert!(running.starts_with("127.0.0.1\noff\n"), "{running}");

    let installed = install_rerun_uninstall(&cluster, &ours);
    assert!(
        installed.values().all(|r| r.before.is_none()) && installed.len() == 4,
        "{installed:?}"
    );
    assert_eq!(
        file_settings(&cluster),
        files,
        "nothing left in postgresql.auto.conf"
    );
    assert_eq!(shown(&cluster), running);
}
