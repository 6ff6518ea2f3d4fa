//! The fake host's `psql`, as the engine runs it (src/engine/pgadmin.rs): the options it
//! models are required, the script comes on stdin and is split into statements and meta-commands
//! as psql's lexer does (quotes kept whole), each statement is recognised by its shape (names
//! and values replaced by `$1`, `$2`, ...) and run against the world. Rows come back as real
//! psql prints them with `-A -t -z -0` (every field followed by a NUL byte); an error is
//! `ERROR:  ...` on stderr with exit status 3 (`ON_ERROR_STOP`), a connection failure exit
//! status 2. A statement the fake does not know fails the test, showing it, so the fake never
//! guesses.

use telem_deploy::host::{Cmd, CmdOutput, HostError, HostResult};

use crate::fake_host::FakeHost;

/// The options every admin psql runs with: its output format is what the engine parses.
const REQUIRED: [&str; 8] = [
    "--no-psqlrc",
    "--quiet",
    "--no-align",
    "--tuples-only",
    "--field-separator-zero",
    "--record-separator-zero",
    "--no-password",
    "--set=ON_ERROR_STOP=1",
];

/// One piece of a script: a statement (its shape and its quoted values) or a meta-command.
#[derive(Debug)]
enum Piece {
    /// Ended by `;`.
    Sql {
        shape: String,
        values: Vec<String>,
    },
    /// Ended by `\gexec`: its rows are run as statements.
    Gexec {
        shape: String,
        values: Vec<String>,
    },
    Meta(String),
}

/// psql's view of a script: statements end at a `;` outside quotes (or at a meta-command
/// such as `\gexec`); `'...'`, `E'...'` and `"..."` are kept whole, whatever they hold.
fn split(sql: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let (mut shape, mut values) = (String::new(), Vec::new());
    let mut chars = sql.chars().peekable();
    let mut prev: Option<char> = None;
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                let escapes = c == '\''
                    && prev == Some('E')
                    && !shape[..shape.len() - 1]
                        .ends_with(|p: char| p.is_alphanumeric() || p == '_');
                if escapes {
                    shape.pop();
                }
                let mut value = String::new();
                loop {
                    let Some(n) = chars.next() else {
                        panic!("unterminated quote in the script:\n{sql}")
                    };
                    match n {
                        '\\' if escapes => value.push(chars.next().expect("escape")),
                        n if n == c && chars.peek() == Some(&c) => {
                            chars.next();
                            value.push(c);
                        }
                        n if n == c => break,
                        n => value.push(n),
                    }
                }
                if c == '\'' && !escapes {
                    assert!(
                        !value.contains('\\'),
                        "a backslash in a plain literal depends on standard_conforming_strings: {sql}"
                    );
                }
                values.push(value);
                shape.push_str(&format!("${}", values.len()));
            }
            ';' => {
                pieces.push(Piece::Sql {
                    shape: shape.trim().to_owned(),
                    values: std::mem::take(&mut values),
                });
                shape.clear();
            }
            '\\' => {
                let mut line = String::from("\\");
                while let Some(n) = chars.next_if(|n| *n != '\n') {
                    line.push(n);
                }
                if line.trim() == "\\gexec" {
                    pieces.push(Piece::Gexec {
                        shape: shape.trim().to_owned(),
                        values: std::mem::take(&mut values),
                    });
                    shape.clear();
                } else {
                    assert!(
                        shape.trim().is_empty(),
                        "a meta-command inside a statement: {sql}"
                    );
                    pieces.push(Piece::Meta(line.trim().to_owned()));
                }
            }
            c => shape.push(c),
        }
        prev = Some(c);
    }
    assert!(
        shape.trim().is_empty(),
        "an unterminated statement: {shape}\nin:\n{sql}"
    );
    pieces
}

/// The value after `marker` in `shape` (`marker` followed by `$N`).
fn value_after<'v>(shape: &str, values: &'v [String], marker: &str) -> &'v str {
    let at = shape
        .find(marker)
        .unwrap_or_else(|| panic!("no `{marker}` in {shape}"));
    let rest = &shape[at + marker.len()..];
    let n: usize = rest
        .strip_prefix('$')
        .map(|r| {
            r.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("no value after `{marker}` in {shape}"));
    &values[n - 1]
}

/// The session: what earlier statements set.
#[derive(Default)]
struct Session {
    read_only: bool,
    /// The server is a hot standby: only what PostgreSQL allows in recovery (ALTER SYSTEM,
    /// physical slots) writes.
    recovery: bool,
    in_transaction: bool,
    terse: bool,
    unlogged: [bool; 3],
    stdout: Vec<u8>,
}

type Fallible = Result<(), String>;

impl FakeHost {
    /// `psql OPTIONS --dbname CONNINFO` with the script on stdin.
    pub(crate) fn psql(&self, cmd: &Cmd, args: &[&str]) -> HostResult<CmdOutput> {
        for flag in REQUIRED {
            assert!(args.contains(&flag), "psql without {flag}: {args:?}");
        }
        assert_eq!(
            cmd.user.as_deref(),
            Some("postgres"),
            "psql runs as the cluster's OS user (peer authentication)"
        );
        assert!(
            args.iter()
                .all(|a| !a.contains("SCRAM") && !a.contains(crate::golden::PASSWORD)),
            "a secret in psql's argv: {args:?}"
        );
        let option = |name: &str| {
            let i = args
                .iter()
                .position(|a| *a == name)
                .unwrap_or_else(|| panic!("psql without {name}: {args:?}"));
            args[i + 1]
        };
        let (socket_dir, port) = (option("--host"), option("--port"));
        let conninfo = option("--dbname");
        let database = conninfo
            .strip_prefix("dbname='")
            .and_then(|r| r.split_once("' "))
            .map(|(db, _)| db.to_owned())
            .unwrap_or_else(|| panic!("--dbname is not a connection string: {conninfo}"));
        assert!(
            !database.contains(['\'', '\\']),
            "the fake reads plain names only: {conninfo}"
        );
        let sql = String::from_utf8(cmd.stdin.clone().expect("the SQL comes on stdin"))
            .expect("UTF-8 SQL");
        assert!(
            !sql.contains(crate::golden::PASSWORD),
            "the plaintext password reached psql:\n{sql}"
        );
        {
            let w = self.world.borrow();
            let have = |p: &str| w.packages.contains(p);
            if !(have("postgresql") || have("postgresql-server") || have("database-basic")) {
                return Err(HostError(
                    "cannot run `psql`: No such file or directory (os error 2)".into(),
                ));
            }
        }
        let socket = format!("{socket_dir}/.s.PGSQL.{port}");
        if !self.pg_running() {
            return Ok(CmdOutput {
                code: Some(2),
                stdout: Vec::new(),
                stderr: format!(
                    "psql: error: connection to server on socket \"{socket}\" failed: No such file or directory\n\tIs the server running locally and accepting connections on that socket?\n"
                )
                .into_bytes(),
            });
        }
        if database != "postgres" && !self.world.borrow().databases.contains_key(&database) {
            return Ok(CmdOutput {
                code: Some(2),
                stdout: Vec::new(),
                stderr: format!(
                    "psql: error: connection to server on socket \"{socket}\" failed: FATAL:  database \"{database}\" does not exist\n"
                )
                .into_bytes(),
            });
        }
        let mut session = Session {
            recovery: self.world.borrow().in_recovery,
            ..Session::default()
        };
        for piece in split(&sql) {
            let result = match &piece {
                Piece::Meta(m) => {
                    match m.as_str() {
                        "\\set VERBOSITY terse" => session.terse = true,
                        "\\set SHOW_CONTEXT never" => {}
                        other => panic!("the fake psql does not know {other}:\n{sql}"),
                    }
                    Ok(())
                }
                Piece::Sql { shape, values } => self.statement(&mut session, shape, values, &sql),
                Piece::Gexec { shape, values } => self.gexec(&session, shape, values, &sql),
            };
            if let Err(message) = result {
                assert!(
                    session.terse,
                    "an error without VERBOSITY terse may quote the SQL"
                );
                return Ok(CmdOutput {
                    code: Some(3),
                    stdout: session.stdout,
                    stderr: format!("ERROR:  {message}\n").into_bytes(),
                });
            }
        }
        Ok(CmdOutput {
            code: Some(0),
            stdout: session.stdout,
            stderr: Vec::new(),
        })
    }

    /// The row of the settings query for `name`: name, known, context, setting, shown,
    /// pending_restart, from auto.conf, in auto.conf, its value there, its error, read since
    /// the file changed.
    fn pg_setting(&self, name: &str) -> Vec<String> {
        let w = self.world.borrow();
        let tf = |b: bool| if b { "t" } else { "f" }.to_owned();
        let Some(default) = default_setting(name) else {
            let empty = String::new;
            return vec![
                name.into(),
                tf(false),
                empty(),
                empty(),
                empty(),
                tf(false),
                tf(false),
                tf(false),
                empty(),
                empty(),
                tf(true),
            ];
        };
        let running = w.pg_settings.get(name).cloned();
        let auto = w.pg_auto_conf.get(name).cloned();
        let shown = running.clone().unwrap_or_else(|| default.to_owned());
        let context = if restart_applies(name) {
            "postmaster"
        } else {
            "sighup"
        };
        let differs = auto.as_ref().is_some_and(|a| *a != shown);
        let error = match restart_applies(name) && differs {
            true => "setting could not be applied",
            false => "",
        };
        vec![
            name.into(),
            tf(true),
            context.into(),
            shown.clone(),
            shown,
            tf(false),
            tf(running.is_some()),
            tf(auto.is_some()),
            auto.unwrap_or_default(),
            error.into(),
            // The fake's changes and reloads are in order: its settings are what it read.
            tf(w.pg_settings.get(name) == w.pg_auto_conf.get(name)),
        ]
    }

    fn role_exists(&self, role: &str) -> bool {
        role == "postgres" || self.world.borrow().roles.contains_key(role)
    }

    fn statement(&self, s: &mut Session, shape: &str, v: &[String], sql: &str) -> Fallible {
        let row = |s: &mut Session, fields: &[&str]| {
            for f in fields {
                s.stdout.extend_from_slice(f.as_bytes());
                s.stdout.push(0);
            }
        };
        let write = |s: &Session, what: &str| {
            let in_recovery =
                s.recovery && !what.contains("ALTER SYSTEM") && !what.contains("_slot(");
            match s.read_only || in_recovery {
                true => Err(format!("cannot execute {what} in a read-only transaction")),
                false => Ok(()),
            }
        };
        let outside_transaction = |s: &Session, what: &str| match s.in_transaction {
            true => Err(format!("{what} cannot run inside a transaction block")),
            false => Ok(()),
        };
        let tf = |b: bool| if b { "t" } else { "f" };
        match shape {
            "SET client_min_messages = warning" => {}
            "SET lc_messages = $1" if v[0] == "C" => {}
            "SELECT current_setting($1)" if v[0] == "hba_file" => {
                row(s, &[HBA_FILE]);
            }
            shape if shape.starts_with("WITH w(name, i) AS (SELECT * FROM unnest(ARRAY[") => {
                let list = &shape[shape.find("ARRAY[").unwrap()..shape.find("]::text[]").unwrap()];
                let names = &v[..list.matches('$').count()];
                for name in names {
                    let fields = self.pg_setting(name);
                    let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
                    row(s, &fields);
                }
            }
            "ALTER SYSTEM SET $1 = $2" => {
                write(s, "ALTER SYSTEM")?;
                outside_transaction(s, "ALTER SYSTEM")?;
                if v[1].contains('\n') {
                    return Err(
                        "parameter value for ALTER SYSTEM must not contain a newline".into(),
                    );
                }
                if default_setting(&v[0]).is_none() {
                    return Err(format!("unrecognized configuration parameter \"{}\"", v[0]));
                }
                self.world
                    .borrow_mut()
                    .pg_auto_conf
                    .insert(v[0].clone(), v[1].clone());
            }
            "ALTER SYSTEM RESET $1" => {
                write(s, "ALTER SYSTEM")?;
                outside_transaction(s, "ALTER SYSTEM")?;
                self.world.borrow_mut().pg_auto_conf.remove(&v[0]);
            }
            shape
                if shape.starts_with(
                    "SELECT count(*), coalesce(string_agg(format($1, line_number, error)",
                ) =>
            {
                // The fake server finds no error in any pg_hba.conf.
                row(s, &["0", ""]);
            }
            "SET default_transaction_read_only = on" => s.read_only = true,
            "SET log_statement = $1" if v[0] == "none" => s.unlogged[0] = true,
            "SET log_min_duration_statement = -1" => s.unlogged[1] = true,
            "SET log_min_error_statement = panic" => s.unlogged[2] = true,
            "BEGIN" => s.in_transaction = true,
            "COMMIT" => s.in_transaction = false,
            "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)" => {
                row(s, &[tf(self.role_exists(&v[0]))]);
            }
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1), \
             (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $2)" => {
                assert_eq!(v[0], v[1], "{sql}");
                let owner = self.world.borrow().databases.get(&v[0]).cloned();
                row(s, &[tf(owner.is_some()), owner.as_deref().unwrap_or("")]);
            }
            "CREATE ROLE $1 LOGIN" => {
                write(s, "CREATE ROLE")?;
                if self.role_exists(&v[0]) {
                    return Err(format!("role \"{}\" already exists", v[0]));
                }
                self.world.borrow_mut().roles.insert(v[0].clone(), None);
            }
            "DROP ROLE IF EXISTS $1" => {
                write(s, "DROP ROLE")?;
                self.world.borrow_mut().roles.remove(&v[0]);
            }
            "CREATE DATABASE $1 OWNER $2" => {
                write(s, "CREATE DATABASE")?;
                outside_transaction(s, "CREATE DATABASE")?;
                if !self.role_exists(&v[1]) {
                    return Err(format!("role \"{}\" does not exist", v[1]));
                }
                let mut w = self.world.borrow_mut();
                if w.databases.contains_key(&v[0]) {
                    return Err(format!("database \"{}\" already exists", v[0]));
                }
                w.databases.insert(v[0].clone(), v[1].clone());
            }
            "ALTER DATABASE $1 OWNER TO $2" => {
                write(s, "ALTER DATABASE")?;
                if !self.role_exists(&v[1]) {
                    return Err(format!("role \"{}\" does not exist", v[1]));
                }
                let mut w = self.world.borrow_mut();
                let Some(owner) = w.databases.get_mut(&v[0]) else {
                    return Err(format!("database \"{}\" does not exist", v[0]));
                };
                *owner = v[1].clone();
            }
            "DROP DATABASE IF EXISTS $1" => {
                write(s, "DROP DATABASE")?;
                outside_transaction(s, "DROP DATABASE")?;
                let mut w = self.world.borrow_mut();
                w.databases.remove(&v[0]);
                w.schema_current = false;
            }
            "ALTER ROLE $1 PASSWORD $2" => {
                write(s, "ALTER ROLE")?;
                assert!(
                    v[1].starts_with("SCRAM-SHA-256$"),
                    "only verifiers reach the server"
                );
                assert_eq!(
                    s.unlogged, [true; 3],
                    "the server could log the statement with the verifier:\n{sql}"
                );
                if !self.role_exists(&v[0]) {
                    return Err(format!("role \"{}\" does not exist", v[0]));
                }
                self.world
                    .borrow_mut()
                    .roles
                    .insert(v[0].clone(), Some(v[1].clone()));
            }
            "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1), \
             coalesce((SELECT rolcanlogin AND rolreplication FROM pg_roles WHERE rolname = $2), false)" => {
                assert_eq!(v[0], v[1], "{sql}");
                let repl = self.world.borrow().replication.contains(&v[0]);
                row(s, &[tf(self.role_exists(&v[0])), tf(repl)]);
            }
            "CREATE ROLE $1 LOGIN REPLICATION" => {
                write(s, "CREATE ROLE")?;
                if self.role_exists(&v[0]) {
                    return Err(format!("role \"{}\" already exists", v[0]));
                }
                let mut w = self.world.borrow_mut();
                w.roles.insert(v[0].clone(), None);
                w.replication.insert(v[0].clone());
            }
            "ALTER ROLE $1 LOGIN REPLICATION" => {
                write(s, "ALTER ROLE")?;
                if !self.role_exists(&v[0]) {
                    return Err(format!("role \"{}\" does not exist", v[0]));
                }
                self.world.borrow_mut().replication.insert(v[0].clone());
            }
            "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1), \
             coalesce((SELECT slot_type FROM pg_replication_slots WHERE slot_name = $2), $3), \
             coalesce((SELECT active FROM pg_replication_slots WHERE slot_name = $4), false)" => {
                assert!(v[0] == v[1] && v[0] == v[3] && v[2].is_empty(), "{sql}");
                let active = self.world.borrow().slots.get(&v[0]).copied();
                let kind = if active.is_some() { "physical" } else { "" };
                row(s, &[tf(active.is_some()), kind, tf(active == Some(true))]);
            }
            "SELECT pg_create_physical_replication_slot($1, true) IS NOT NULL" => {
                write(s, "pg_create_physical_replication_slot()")?;
                let mut w = self.world.borrow_mut();
                if w.slots.contains_key(&v[0]) {
                    return Err(format!("replication slot \"{}\" already exists", v[0]));
                }
                w.slots.insert(v[0].clone(), false);
                drop(w);
                row(s, &["t"]);
            }
            "SELECT 1 FROM pg_drop_replication_slot($1)" => {
                write(s, "pg_drop_replication_slot()")?;
                let mut w = self.world.borrow_mut();
                match w.slots.get(&v[0]) {
                    None => return Err(format!("replication slot \"{}\" does not exist", v[0])),
                    Some(true) => {
                        return Err(format!("replication slot \"{}\" is active for PID 4242", v[0]))
                    }
                    Some(false) => w.slots.remove(&v[0]),
                };
                drop(w);
                row(s, &["1"]);
            }
            "SELECT pg_is_in_recovery(), coalesce((SELECT status FROM pg_stat_wal_receiver), $1), \
             coalesce((SELECT sender_host FROM pg_stat_wal_receiver), $2), \
             coalesce((SELECT sender_port::text FROM pg_stat_wal_receiver), $3), \
             coalesce((SELECT slot_name FROM pg_stat_wal_receiver), $4), current_setting($5), \
             current_setting($6), \
             coalesce((SELECT substring(conninfo from $7) FROM pg_stat_wal_receiver), $8), \
             coalesce((SELECT substring(conninfo from $9) FROM pg_stat_wal_receiver), $10)" => {
                assert_eq!((&*v[4], &*v[5]), ("data_directory", "primary_slot_name"), "{sql}");
                assert_eq!((&*v[6], &*v[8]), ("sslmode=([^ ]*)", "sslrootcert=([^ ]*)"), "{sql}");
                let w = self.world.borrow();
                let (status, host, port, slot) = match &w.receiver {
                    Some((h, p, sl)) => ("streaming", h.clone(), p.to_string(), sl.clone()),
                    None => ("", String::new(), String::new(), String::new()),
                };
                let recovery = tf(w.in_recovery);
                let configured = if w.in_recovery { slot.clone() } else { String::new() };
                let (mode, root) = match (&w.receiver, &w.receiver_ca) {
                    (None, _) => ("", String::new()),
                    (Some(_), Some(ca)) => ("verify-full", ca.clone()),
                    (Some(_), None) => ("prefer", String::new()),
                };
                drop(w);
                row(
                    s,
                    &[
                        recovery,
                        status,
                        &host,
                        &port,
                        &slot,
                        "/var/lib/postgresql/15/main",
                        &configured,
                        mode,
                        &root,
                    ],
                );
            }
            "SELECT pg_promote(wait => true, wait_seconds => 60)" => {
                let mut w = self.world.borrow_mut();
                if !w.in_recovery {
                    return Err("recovery is not in progress".into());
                }
                w.in_recovery = false;
                w.receiver = None;
                w.receiver_ca = None;
                // The promoted server leaves recovery for good: standby.signal goes.
                w.files.remove(std::path::Path::new(&format!(
                    "{}/standby.signal",
                    crate::fake_basebackup::DATA_DIR
                )));
                drop(w);
                row(s, &["t"]);
            }
            shape if shape.starts_with("SELECT count(*) FROM pg_class c JOIN pg_namespace n") => {
                let role = value_after(shape, v, "pg_get_userbyid(c.relowner) = ");
                let count = match role {
                    "postgres" => self.world.borrow().postgres_owned,
                    _ => 0,
                };
                row(s, &[&count.to_string()]);
            }
            other => panic!(
                "the fake psql does not know this statement: {other}\nvalues {v:?}\nin:\n{sql}"
            ),
        }
        Ok(())
    }

    /// `SELECT format('ALTER %s %I.%I OWNER TO %I', ...) ... \gexec`: the relations `from`
    /// owns change owner (the world counts those of `postgres`).
    fn gexec(&self, s: &Session, shape: &str, v: &[String], sql: &str) -> Fallible {
        assert!(
            shape.starts_with("SELECT format($1, CASE c.relkind")
                && v[0] == "ALTER %s %I.%I OWNER TO %I",
            "the fake psql does not know this \\gexec: {shape}\nin:\n{sql}"
        );
        assert!(
            s.in_transaction,
            "the owners change in one transaction:\n{sql}"
        );
        if s.read_only {
            return Err("cannot execute ALTER TABLE in a read-only transaction".into());
        }
        let from = value_after(shape, v, "pg_get_userbyid(c.relowner) = ");
        let to = value_after(shape, v, "c.relname, ");
        if !self.role_exists(to) {
            return Err(format!("role \"{to}\" does not exist"));
        }
        if from == "postgres" && to != "postgres" {
            self.world.borrow_mut().postgres_owned = 0;
        }
        Ok(())
    }
}

/// Where the fake Debian cluster's pg_hba.conf is.
pub(crate) const HBA_FILE: &str = "/etc/postgresql/15/main/pg_hba.conf";

/// The settings the fake server knows, with their defaults.
fn default_setting(name: &str) -> Option<&'static str> {
    Some(match name {
        "listen_addresses" => "localhost",
        "ssl" => "off",
        "ssl_cert_file" => "/etc/ssl/certs/ssl-cert-snakeoil.pem",
        "ssl_key_file" => "/etc/ssl/private/ssl-cert-snakeoil.key",
        "log_line_prefix" => "%m [%p] %q%u@%d ",
        _ => return None,
    })
}

/// A setting only a restart applies.
pub(crate) fn restart_applies(name: &str) -> bool {
    name == "listen_addresses"
}

#[test]
fn the_fake_splits_scripts_as_psql_does() {
    let pieces = split(
        "\\set VERBOSITY terse\nSELECT E'a\\\\b''c;', \"x\"\"y;\";\nSELECT 'd' FROM t\n\\gexec\n",
    );
    let shown: Vec<String> = pieces.iter().map(|p| format!("{p:?}")).collect();
    assert_eq!(
        shown,
        [
            "Meta(\"\\\\set VERBOSITY terse\")",
            "Sql { shape: \"SELECT $1, $2\", values: [\"a\\\\b'c;\", \"x\\\"y;\"] }",
            "Gexec { shape: \"SELECT $1 FROM t\", values: [\"d\"] }",
        ]
    );
}
