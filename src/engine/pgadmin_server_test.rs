//! The PostgreSQL admin operations through the real `psql`, against a real server: a cluster of
//! our own (`initdb` into a temp directory as the `postgres` OS user, peer authentication on
//! its socket, no TCP), reached exactly as the engine reaches it (`PgAdmin` through
//! `LocalHost`, psql as `postgres`). Names chosen to break quoting: quotes, backslashes,
//! semicolons, newlines, `=` (a connection string to libpq), psql's `:variables`, unicode.
//! The server logs every statement; the SCRAM verifier must not be among them.
//!
//! Needs root (psql runs as `postgres`) and the PostgreSQL server binaries; without them the
//! test fails saying why, unless `TELEM_SKIP_PG_TESTS=1`, then it says why it skips.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{scram_verifier, Op, PgAdmin};
use crate::host::LocalHost;

/// The newest `/usr/lib/postgresql/*/bin` with initdb.
pub(crate) fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b)
}

/// Can this machine run the real PostgreSQL tests? `false` (with why, on stderr) only when it
/// cannot and `TELEM_SKIP_PG_TESTS=1` says to skip; else a missing piece fails the test.
pub(crate) fn available() -> bool {
    let Some(why) = unavailable() else {
        return true;
    };
    if std::env::var("TELEM_SKIP_PG_TESTS").as_deref() == Ok("1") {
        eprintln!("SKIPPED (TELEM_SKIP_PG_TESTS=1): {why}");
        return false;
    }
    panic!("{why}; set TELEM_SKIP_PG_TESTS=1 to skip the real PostgreSQL tests");
}

/// Why this machine cannot run the test, if it cannot.
pub(crate) fn unavailable() -> Option<String> {
    if std::fs::metadata("/proc/self").map(|m| m.uid()).ok() != Some(0) {
        return Some("not root: psql must run as the postgres OS user".into());
    }
    if bin_dir().is_none() {
        return Some("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin".into());
    }
    let has = |what: &str, args: &[&str]| {
        Command::new(what)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !has("id", &["postgres"]) {
        return Some("no postgres OS user".into());
    }
    if !has("psql", &["--version"]) {
        return Some("no psql on the PATH".into());
    }
    None
}

/// A running cluster, stopped and removed on drop.
pub(crate) struct Cluster {
    bin: PathBuf,
    pub(crate) base: PathBuf,
    pub(crate) port: u16,
    /// The server's command-line options (`pg_ctl -o`).
    options: String,
}

pub(crate) fn as_postgres(program: &Path) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--"])
        .arg(program)
        .current_dir("/");
    c
}

pub(crate) fn run_ok(c: &mut Command) -> String {
    let out = c.output().expect("running a command");
    assert!(
        out.status.success(),
        "{c:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Cluster {
    /// A cluster on its socket only (no TCP), logging every statement.
    fn start() -> Cluster {
        Cluster::start_with("-c listen_addresses= -c log_statement=all -c log_min_duration_statement=0 -c log_min_error_statement=info")
    }

    /// A cluster started with the server options `options` (besides its socket, port and
    /// fsync=off); what is not given there comes from its configuration files.
    pub(crate) fn start_with(options: &str) -> Cluster {
        let bin = bin_dir().expect("checked by unavailable()");
        let base = tempfile::Builder::new()
            .prefix("telem-psql-")
            .tempdir()
            .expect("temp dir")
            .keep();
        run_ok(Command::new("chown").args(["postgres:"]).arg(&base));
        run_ok(
            as_postgres(&bin.join("initdb"))
                .arg("-D")
                .arg(base.join("data"))
                .args([
                    "-U",
                    "postgres",
                    "--auth-local=peer",
                    "--auth-host=reject",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--no-sync",
                ]),
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port number");
        let options = format!("-k {} -p {port} -c fsync=off {options}", base.display());
        let cluster = Cluster {
            bin,
            base,
            port,
            options,
        };
        cluster.pg_ctl("start");
        cluster
    }

    /// `pg_ctl start`, `restart` or `reload`: -w returns once the server accepts connections
    /// (or failed to).
    pub(crate) fn pg_ctl(&self, what: &str) {
        run_ok(
            as_postgres(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.base.join("data"))
                .args(["-o", &self.options, "-l"])
                .arg(self.log_path())
                .args(["-w", "-t", "60", what]),
        );
    }

    pub(crate) fn log_path(&self) -> PathBuf {
        self.base.join("server.log")
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub(crate) fn socket_dir(&self) -> String {
        self.base.display().to_string()
    }

    /// The test's own view: psql as postgres in `database`, one value per line.
    pub(crate) fn sql(&self, database: &str, sql: &str) -> String {
        let mut c = as_postgres(Path::new("psql"));
        c.args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.base)
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-d"])
            .arg(format!(
                "dbname='{}'",
                database.replace('\\', "\\\\").replace('\'', "\\'")
            ))
            .args(["-c", sql]);
        run_ok(&mut c)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let stop = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.base.join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .output();
        if !stop.as_ref().is_ok_and(|o| o.status.success()) {
            eprintln!(
                "stopping the test cluster in {}: {stop:?}",
                self.base.display()
            );
        }
        if let Err(e) = std::fs::remove_dir_all(&self.base) {
            eprintln!("removing {}: {e}", self.base.display());
        }
    }
}

fn literal(s: &str) -> String {
    crate::engine::pgsql::quote_literal(s).unwrap()
}

#[test]
fn psql_admin_with_hostile_names_on_a_real_server() {
    if !available() {
        return;
    }
    let cluster = Cluster::start();
    let socket_dir = cluster.socket_dir();
    // The psql the engine runs: on Debian a version's own (not the Perl wrapper).
    let psql = crate::engine::pgadmin::psql_program(&LocalHost)
        .unwrap_or_else(|| crate::engine::pgadmin::PSQL.to_owned());
    if std::path::Path::new("/usr/lib/postgresql").is_dir() {
        assert!(psql.starts_with("/usr/lib/postgresql/"), "{psql}");
    }
    let admin = PgAdmin {
        host: &LocalHost,
        psql: &psql,
        os_user: "postgres",
        socket_dir: &socket_dir,
        port: cluster.port,
    };
    let call = |op: Op| admin.call(op).unwrap_or_else(|e| panic!("{e}"));

    let roles = [
        "semi;colon\"; DROP ROLE postgres; --",
        "back\\slash 'quote' \\gexec",
        "new\nline :var :'var'",
        "ünïcödé ✓ 名前",
    ];
    let databases = [
        "x=y dbname=postgres",
        "d'b\\\" ;\n$$ DROP DATABASE postgres",
        "ünï ✓",
        "plain",
    ];
    for (role, db) in roles.iter().zip(databases) {
        let role = role.to_string();
        let exists = |role: &str| call(Op::RoleExists { role: role.into() }).exists;
        assert_eq!(exists(&role), Some(false), "{role:?}");
        call(Op::CreateRole { role: role.clone() });
        assert_eq!(exists(&role), Some(true), "{role:?}");
        assert_eq!(
            cluster.sql(
                "postgres",
                &format!(
                    "SELECT rolcanlogin FROM pg_roles WHERE rolname = {}",
                    literal(&role)
                )
            ),
            "t\n"
        );

        let database = |name: &str| call(Op::Database { name: name.into() });
        let r = database(db);
        assert_eq!((r.exists, r.owner), (Some(false), None), "{db:?}");
        call(Op::CreateDatabase {
            name: db.into(),
            owner: "postgres".into(),
        });
        let r = database(db);
        assert_eq!(
            (r.exists, r.owner.as_deref()),
            (Some(true), Some("postgres"))
        );
        call(Op::AlterDatabaseOwner {
            name: db.into(),
            owner: role.clone(),
        });
        assert_eq!(database(db).owner.as_deref(), Some(role.as_str()));

        // Objects as deploy.sh left them: owned by postgres, a serial's and an identity's
        // sequences linked to their table, a sequence of its own, a view, a second schema.
        cluster.sql(
            db,
            "CREATE TABLE records (id serial PRIMARY KEY, n int GENERATED ALWAYS AS IDENTITY); \
             CREATE SEQUENCE lone; CREATE VIEW v AS SELECT 1 AS one; \
             CREATE SCHEMA \"odd \"\"schema\"; CREATE TABLE \"odd \"\"schema\".\"t;x\" (a int)",
        );
        let owned = |who: &str| {
            call(Op::OwnedBy {
                database: db.into(),
                role: who.into(),
            })
            .count
        };
        assert_eq!(owned("postgres"), Some(6), "{db:?}");
        assert_eq!(owned(&role), Some(0));
        call(Op::Reassign {
            database: db.into(),
            from: "postgres".into(),
            to: role.clone(),
        });
        assert_eq!(owned("postgres"), Some(0));
        assert_eq!(owned(&role), Some(6));
        // Converged: nothing left to move, the second run changes nothing.
        call(Op::Reassign {
            database: db.into(),
            from: "postgres".into(),
            to: role.clone(),
        });
        assert_eq!(owned(&role), Some(6));
    }

    // The password: only the verifier reaches the server, and not even its log.
    let role = roles[0].to_string();
    let verifier = scram_verifier("Correct-Horse-Zq7");
    call(Op::SetVerifier {
        role: role.clone(),
        verifier: verifier.clone(),
    });
    assert_eq!(
        cluster.sql(
            "postgres",
            &format!(
                "SELECT rolpassword FROM pg_authid WHERE rolname = {}",
                literal(&role)
            )
        ),
        format!("{verifier}\n")
    );
    // A failing ALTER ROLE: the error names the role, neither it nor the log the verifier.
    let err = admin
        .call(Op::SetVerifier {
            role: "nobody".into(),
            verifier: verifier.clone(),
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("role \"nobody\" does not exist"), "{err}");
    assert!(!err.contains("SCRAM"), "{err}");
    let log = cluster.log();
    assert!(
        log.contains("CREATE ROLE"),
        "the server logs statements:\n{log}"
    );
    let salt = verifier.split('$').nth(1).unwrap();
    assert!(
        !log.contains("SCRAM-SHA-256$") && !log.contains(salt),
        "the server log holds the verifier:\n{log}"
    );
    assert!(
        !admin
            .call(Op::SetVerifier {
                role: role.clone(),
                verifier: "plaintext".into(),
            })
            .unwrap_err()
            .to_string()
            .contains("plaintext"),
        "not a verifier: refused without echo"
    );

    // psql's own errors, as the engine reports them.
    let err = admin
        .call(Op::CreateRole { role: role.clone() })
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("psql as postgres (database postgres) exited with status 3: ERROR:")
            && err.contains("already exists"),
        "{err}"
    );
    let err = admin
        .call(Op::OwnedBy {
            database: "no such database".into(),
            role: "postgres".into(),
        })
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("status 2") && err.contains("database \"no such database\" does not exist"),
        "{err}"
    );
    let err = admin
        .call(Op::CreateRole {
            role: "a\0b".into(),
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("NUL"), "{err}");

    // Dropping: a database outside a transaction block, then its owner.
    for (role, db) in roles.iter().zip(databases) {
        call(Op::DropDatabase { name: db.into() });
        assert_eq!(call(Op::Database { name: db.into() }).exists, Some(false));
        call(Op::DropRole {
            role: role.to_string(),
        });
        assert_eq!(
            call(Op::RoleExists {
                role: role.to_string()
            })
            .exists,
            Some(false)
        );
    }
    // Absent already: IF EXISTS, and no notice becomes an error.
    call(Op::DropDatabase {
        name: databases[0].into(),
    });
    call(Op::DropRole {
        role: roles[0].into(),
    });
    assert_eq!(
        cluster.sql("postgres", "SELECT count(*) FROM pg_database"),
        "3\n",
        "postgres, template0, template1 and nothing else"
    );

    // The server gone: the connection error, status 2.
    drop(cluster);
    let err = admin
        .call(Op::RoleExists {
            role: "postgres".into(),
        })
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("status 2") && err.contains("connection to server"),
        "{err}"
    );
}
