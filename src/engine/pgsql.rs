//! The SQL `psql` runs for each PostgreSQL admin [`Op`]: quoting of identifiers and literals
//! (as PostgreSQL's own `quote_ident` and `quote_literal` do), the script fed to psql's stdin,
//! and the parsing of psql's answer.
//!
//! Every name is quoted here, in Rust, and travels only inside the script on stdin: psql's
//! lexer keeps quoted text whole (no `:variable` interpolation, no backslash commands, no
//! statement split at a `;` inside quotes). psql prints rows with `-A -t -z -0`: every field
//! is followed by a NUL byte, which no PostgreSQL text can hold, so a name with newlines, `|`
//! or anything else parses back exactly.

use std::fmt;

use super::pgadmin::{Op, Response, Setting};

/// A name or value PostgreSQL cannot hold: it contains a NUL byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NulError;

impl fmt::Display for NulError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a PostgreSQL name or value cannot contain a NUL byte")
    }
}

impl std::error::Error for NulError {}

/// A quoted SQL identifier: always in double quotes, inner double quotes doubled (what
/// PostgreSQL's `quote_ident` does for a name that needs quoting). Case and every other
/// character are kept as they are.
pub fn quote_ident(s: &str) -> Result<String, NulError> {
    if s.contains('\0') {
        return Err(NulError);
    }
    Ok(format!("\"{}\"", s.replace('"', "\"\"")))
}

/// A quoted SQL string literal, as PostgreSQL's `quote_literal` writes it: single quotes
/// doubled, and when the text holds a backslash, an `E'...'` literal with backslashes doubled.
/// So the literal means the same text whether `standard_conforming_strings` is on (the
/// default since 9.1) or off.
pub fn quote_literal(s: &str) -> Result<String, NulError> {
    if s.contains('\0') {
        return Err(NulError);
    }
    let body = s.replace('\'', "''");
    Ok(match body.contains('\\') {
        true => format!("E'{}'", body.replace('\\', "\\\\")),
        false => format!("'{body}'"),
    })
}

/// A value in a libpq connection string (`dbname='...'`): single quotes, with `\` and `'`
/// escaped by a backslash. psql treats a `-d` argument holding `=` as a connection string, so
/// a database name goes through here rather than bare.
pub fn conninfo_value(s: &str) -> Result<String, NulError> {
    if s.contains('\0') {
        return Err(NulError);
    }
    Ok(format!(
        "'{}'",
        s.replace('\\', "\\\\").replace('\'', "\\'")
    ))
}

/// What psql runs for one [`Op`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// The database psql connects to.
    pub database: String,
    /// A check: the session is read-only, so a write by mistake fails loudly.
    pub read_only: bool,
    /// The script fed to psql's stdin.
    pub sql: String,
}

/// The first lines of every script: errors as one terse line (psql's default shows the
/// statement around an error's position, which could hold a verifier), no notices
/// (`DROP ... IF EXISTS` says "skipping" on stderr).
pub(crate) const PREAMBLE: &str =
    "\\set VERBOSITY terse\n\\set SHOW_CONTEXT never\nSET client_min_messages = warning;\n";

/// A check's first statement: every later statement of the session is read-only.
pub(crate) const READ_ONLY: &str = "SET default_transaction_read_only = on;\n";

/// Before the statement that carries a SCRAM verifier: the server logs neither it (whatever
/// `log_statement` and `log_min_duration_statement` say) nor, should it fail, its text
/// (`log_min_error_statement`). All three are superuser settings; the cluster's OS user
/// connects as its superuser role.
const UNLOGGED: &str = "SET log_statement = 'none';\nSET log_min_duration_statement = -1;\nSET log_min_error_statement = panic;\n";

/// `FROM ... WHERE ...` of the relations (tables, partitioned tables, views, materialized
/// views, foreign tables and sequences; not those of the system schemas) `role` owns.
fn owned_by(role: &str) -> Result<String, NulError> {
    Ok(format!(
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE pg_get_userbyid(c.relowner) = {} AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') \
         AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND left(n.nspname, 3) <> 'pg_'",
        quote_literal(role)?
    ))
}

/// One row per name of `names`, in their order (a name the server does not know too): the
/// fields [`Op::answer`] reads into a [`Setting`]. postgresql.auto.conf is what `ALTER SYSTEM`
/// writes; `pg_file_settings` reads it as it is on disk now, its last line for a name wins.
fn settings_query(names: &[String]) -> Result<String, NulError> {
    let list = names
        .iter()
        .map(|n| quote_literal(n))
        .collect::<Result<Vec<_>, _>>()?
        .join(", ");
    Ok(format!(
        "WITH w(name, i) AS (SELECT * FROM unnest(ARRAY[{list}]::text[]) WITH ORDINALITY), \
         auto AS (SELECT DISTINCT ON (f.name) f.name, f.setting, f.error FROM pg_file_settings f \
         WHERE f.sourcefile = current_setting('data_directory') || '/postgresql.auto.conf' \
         ORDER BY f.name, f.seqno DESC) \
         SELECT w.name, s.name IS NOT NULL, coalesce(s.context, ''), coalesce(s.setting, ''), \
         coalesce(current_setting(w.name, true), ''), coalesce(s.pending_restart, false), \
         coalesce(s.sourcefile = current_setting('data_directory') || '/postgresql.auto.conf', false), \
         a.name IS NOT NULL, coalesce(a.setting, ''), coalesce(a.error, ''), \
         coalesce(pg_conf_load_time() >= (pg_stat_file(current_setting('data_directory') \
         || '/postgresql.auto.conf', true)).modification + interval '1 second', true) \
         FROM w LEFT JOIN pg_settings s ON s.name = w.name LEFT JOIN auto a ON a.name = w.name \
         ORDER BY w.i;\n"
    ))
}

/// The errors of pg_hba.conf as on disk, in English (`lc_messages`, a superuser setting, for
/// the one error recognised here): a `hostssl` line "cannot match because SSL is disabled"
/// is no error when the configuration files turn `ssl` on, since the reload or restart that
/// reads this file reads them too (a `postgres_settings` step of the same run).
const HBA_ERRORS: &str = "SET lc_messages = 'C';\n\
    SELECT count(*), coalesce(string_agg(format('line %s: %s', line_number, error), E'\\n' \
    ORDER BY line_number), '') FROM pg_hba_file_rules WHERE error IS NOT NULL \
    AND NOT (type = 'hostssl' AND error = 'hostssl record cannot match because SSL is disabled' \
    AND coalesce((SELECT f.setting FROM pg_file_settings f WHERE f.name = 'ssl' \
    AND f.error IS NULL ORDER BY f.seqno DESC LIMIT 1), 'off') IN ('on', 'true', 'yes', '1'));\n";

/// A sequence linked to a table column (`serial`, identity): it changes owner with its table
/// and refuses an `ALTER SEQUENCE ... OWNER TO` of its own.
const LINKED_SEQUENCE: &str = "EXISTS (SELECT 1 FROM pg_depend d \
    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid \
    AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))";

/// The `ALTER ... OWNER TO` statements for the relations of `owned` (a [`owned_by`] clause),
/// for psql's `\gexec` to run one by one; the server quotes the names (`format('%I')`).
fn alter_owner(owned: &str, to: &str, which: &str) -> Result<String, NulError> {
    Ok(format!(
        "SELECT format('ALTER %s %I.%I OWNER TO %I', CASE c.relkind WHEN 'v' THEN 'VIEW' \
         WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'S' THEN 'SEQUENCE' \
         ELSE 'TABLE' END, n.nspname, c.relname, {}) {owned} AND {which} \
         ORDER BY n.nspname, c.relname\n\\gexec\n",
        quote_literal(to)?
    ))
}

impl Op {
    /// The database psql connects to.
    pub fn database(&self) -> &str {
        match self {
            Op::OwnedBy { database, .. } | Op::Reassign { database, .. } => database,
            _ => "postgres",
        }
    }

    /// A check, changing nothing: run in a read-only session.
    pub fn reads_only(&self) -> bool {
        matches!(
            self,
            Op::RoleExists { .. }
                | Op::Database { .. }
                | Op::OwnedBy { .. }
                | Op::Settings { .. }
                | Op::HbaFile
                | Op::HbaErrors
        )
    }

    /// The statements of this operation, each valid outside a transaction block (psql runs a
    /// script in autocommit mode: `CREATE DATABASE` and `DROP DATABASE` cannot run inside one).
    fn statements(&self) -> Result<String, NulError> {
        let (i, q) = (quote_ident, quote_literal);
        Ok(match self {
            Op::RoleExists { role } => format!(
                "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {});\n",
                q(role)?
            ),
            Op::Database { name } => {
                let name = q(name)?;
                format!(
                    "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = {name}), \
                     (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = {name});\n"
                )
            }
            Op::CreateRole { role } => format!("CREATE ROLE {} LOGIN;\n", i(role)?),
            Op::DropRole { role } => format!("DROP ROLE IF EXISTS {};\n", i(role)?),
            Op::CreateDatabase { name, owner } => {
                format!("CREATE DATABASE {} OWNER {};\n", i(name)?, i(owner)?)
            }
            Op::AlterDatabaseOwner { name, owner } => {
                format!("ALTER DATABASE {} OWNER TO {};\n", i(name)?, i(owner)?)
            }
            Op::DropDatabase { name } => format!("DROP DATABASE IF EXISTS {};\n", i(name)?),
            Op::SetVerifier { role, verifier } => format!(
                "{UNLOGGED}ALTER ROLE {} PASSWORD {};\n",
                i(role)?,
                q(verifier)?
            ),
            Op::OwnedBy { role, .. } => format!("SELECT count(*) {};\n", owned_by(role)?),
            Op::Settings { names } => settings_query(names)?,
            Op::AlterSystem { set, reset } => {
                // Each its own statement: ALTER SYSTEM cannot run inside a transaction block.
                let mut sql = String::new();
                for (name, value) in set {
                    sql.push_str(&format!("ALTER SYSTEM SET {} = {};\n", i(name)?, q(value)?));
                }
                for name in reset {
                    sql.push_str(&format!("ALTER SYSTEM RESET {};\n", i(name)?));
                }
                sql
            }
            Op::HbaFile => "SELECT current_setting('hba_file');\n".to_owned(),
            Op::HbaErrors => HBA_ERRORS.to_owned(),
            Op::Reassign { from, to, .. } => {
                // Tables, views, ... first: a table takes its linked sequences along; then the
                // sequences left, in one transaction.
                let owned = owned_by(from)?;
                format!(
                    "BEGIN;\n{}{}COMMIT;\n",
                    alter_owner(&owned, to, "c.relkind <> 'S'")?,
                    alter_owner(
                        &owned,
                        to,
                        &format!("c.relkind = 'S' AND NOT {LINKED_SEQUENCE}")
                    )?
                )
            }
        })
    }

    /// What psql runs for this operation.
    pub fn script(&self) -> Result<Script, NulError> {
        let read_only = self.reads_only();
        let mut sql = String::from(PREAMBLE);
        if read_only {
            sql.push_str(READ_ONLY);
        }
        sql.push_str(&self.statements()?);
        Ok(Script {
            database: self.database().to_owned(),
            read_only,
            sql,
        })
    }

    /// This operation's answer from psql's stdout (`-A -t -z -0`: every field followed by a
    /// NUL byte). A check answers exactly one row; anything else is an error, never "absent".
    pub fn answer(&self, stdout: &[u8]) -> Result<Response, String> {
        let fields = fields(stdout)?;
        let one_row = |n: usize| one_row(&fields, n);
        let mut resp = Response::default();
        match self {
            Op::RoleExists { .. } => {
                one_row(1)?;
                resp.exists = Some(boolean(&fields[0])?);
            }
            Op::Database { .. } => {
                one_row(2)?;
                let exists = boolean(&fields[0])?;
                resp.exists = Some(exists);
                resp.owner = exists.then(|| fields[1].clone());
            }
            Op::OwnedBy { .. } => {
                one_row(1)?;
                resp.count = Some(fields[0].parse().map_err(|_| {
                    format!("psql answered {:?} where a count was expected", fields[0])
                })?);
            }
            Op::Settings { names } => {
                const FIELDS: usize = 11;
                one_row(FIELDS * names.len())?;
                for (row, name) in fields.chunks(FIELDS).zip(names) {
                    if &row[0] != name {
                        return Err(format!(
                            "psql answered for setting {:?} where {name:?} was expected",
                            row[0]
                        ));
                    }
                    let present = boolean(&row[7])?;
                    resp.settings.push(Setting {
                        name: name.clone(),
                        known: boolean(&row[1])?,
                        context: row[2].clone(),
                        setting: row[3].clone(),
                        shown: row[4].clone(),
                        pending_restart: boolean(&row[5])?,
                        from_auto_conf: boolean(&row[6])?,
                        auto_conf: present.then(|| row[8].clone()),
                        auto_conf_error: (present && !row[9].is_empty()).then(|| row[9].clone()),
                        reloaded_since_change: boolean(&row[10])?,
                    });
                }
            }
            Op::HbaFile => {
                one_row(1)?;
                resp.text = Some(fields[0].clone());
            }
            Op::HbaErrors => {
                one_row(2)?;
                resp.count = Some(fields[0].parse().map_err(|_| {
                    format!("psql answered {:?} where a count was expected", fields[0])
                })?);
                resp.text = Some(fields[1].clone());
            }
            // Writes answer no rows (psql -q prints no command tags).
            _ => {}
        }
        Ok(resp)
    }
}

/// The fields of psql's `-A -t -z -0` output, each terminated by a NUL byte.
/// Exactly one row of `n` fields, else an error (never "absent").
pub(crate) fn one_row(fields: &[String], n: usize) -> Result<(), String> {
    match fields.len() == n {
        true => Ok(()),
        false => Err(format!(
            "psql answered {} fields where one row of {n} was expected",
            fields.len()
        )),
    }
}

/// psql's `t` or `f`.
pub(crate) fn boolean(s: &str) -> Result<bool, String> {
    match s {
        "t" => Ok(true),
        "f" => Ok(false),
        other => Err(format!("psql answered {other:?} where t or f was expected")),
    }
}

pub(crate) fn fields(stdout: &[u8]) -> Result<Vec<String>, String> {
    if stdout.is_empty() {
        return Ok(Vec::new());
    }
    let Some(body) = stdout.strip_suffix(b"\0") else {
        return Err("psql's answer does not end with a field separator".into());
    };
    Ok(body
        .split(|b| *b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names an attacker (or an unlucky recipe) could choose.
    const HOSTILE: [&str; 10] = [
        "plain",
        "Mixed Case",
        "a\"b",
        "it's",
        "back\\slash",
        "semi;colon; DROP DATABASE postgres; --",
        "new\nline\r\n",
        "ünïcödé ✓ 名前",
        "\\'; SELECT 1; --",
        ":var :'var' :\"var\" \\gexec $$ $x$",
    ];

    #[test]
    fn identifiers_are_double_quoted_with_inner_quotes_doubled() {
        assert_eq!(quote_ident("telemetry").unwrap(), "\"telemetry\"");
        assert_eq!(quote_ident("a\"b").unwrap(), "\"a\"\"b\"");
        assert_eq!(quote_ident("\"").unwrap(), "\"\"\"\"");
        assert_eq!(quote_ident("").unwrap(), "\"\"");
        assert_eq!(quote_ident("it's\\;\n").unwrap(), "\"it's\\;\n\"");
        assert_eq!(quote_ident("名前").unwrap(), "\"名前\"");
        for name in HOSTILE {
            let q = quote_ident(name).unwrap();
            // Inside the outer quotes, every double quote is one of a doubled pair.
            let inner = &q[1..q.len() - 1];
            assert_eq!(inner.replace("\"\"", ""), name.replace('"', ""), "{q}");
            assert_eq!(unquote(&q, '"'), name);
        }
    }

    #[test]
    fn literals_double_single_quotes_and_escape_backslashes() {
        assert_eq!(quote_literal("it's").unwrap(), "'it''s'");
        assert_eq!(quote_literal("").unwrap(), "''");
        assert_eq!(quote_literal("back\\slash").unwrap(), "E'back\\\\slash'");
        assert_eq!(quote_literal("\\'").unwrap(), "E'\\\\'''");
        assert_eq!(quote_literal("a\"b;\nc").unwrap(), "'a\"b;\nc'");
        assert_eq!(quote_literal("ö✓").unwrap(), "'ö✓'");
        for value in HOSTILE {
            let q = quote_literal(value).unwrap();
            let plain = q.strip_prefix('E').unwrap_or(&q);
            let mut inner = plain[1..plain.len() - 1].to_owned();
            if q.starts_with('E') {
                inner = inner.replace("\\\\", "\\");
            } else {
                assert!(!inner.contains('\\'), "{q}");
            }
            assert_eq!(inner.replace("''", "'"), value, "{q}");
        }
    }

    #[test]
    fn conninfo_values_escape_quotes_and_backslashes() {
        assert_eq!(conninfo_value("telemetry").unwrap(), "'telemetry'");
        assert_eq!(conninfo_value("a b=c").unwrap(), "'a b=c'");
        assert_eq!(conninfo_value("it's\\").unwrap(), "'it\\'s\\\\'");
    }

    #[test]
    fn nul_is_refused_everywhere() {
        assert_eq!(quote_ident("a\0b"), Err(NulError));
        assert_eq!(quote_literal("a\0b"), Err(NulError));
        assert_eq!(conninfo_value("a\0b"), Err(NulError));
        let op = Op::CreateRole {
            role: "x\0; DROP ROLE postgres".into(),
        };
        assert_eq!(op.script(), Err(NulError));
        let op = Op::OwnedBy {
            database: "d\0".into(),
            role: "r".into(),
        };
        assert!(
            op.script().is_ok(),
            "the database goes through conninfo_value"
        );
        assert_eq!(conninfo_value(op.database()), Err(NulError));
    }

    /// The text of a quoted token written by [`quote_ident`] (`quote` = `"`) or by
    /// [`quote_literal`] without backslashes.
    fn unquote(q: &str, quote: char) -> String {
        let d = format!("{quote}{quote}");
        q[1..q.len() - 1].replace(&d, &quote.to_string())
    }

    fn sql(op: Op) -> String {
        op.script().unwrap().sql
    }

    #[test]
    fn every_script_starts_terse_and_quiet() {
        let s = sql(Op::CreateRole { role: "r".into() });
        assert!(
            s.starts_with("\\set VERBOSITY terse\n\\set SHOW_CONTEXT never\nSET client_min_messages = warning;\n"),
            "{s}"
        );
    }

    #[test]
    fn checks_are_plain_selects_in_a_read_only_session() {
        let checks = [
            Op::RoleExists { role: "r".into() },
            Op::Database { name: "d".into() },
            Op::OwnedBy {
                database: "d".into(),
                role: "r".into(),
            },
        ];
        for op in checks {
            let script = op.script().unwrap();
            assert!(script.read_only);
            let body = script.sql.strip_prefix(PREAMBLE).unwrap();
            let body = body.strip_prefix(READ_ONLY).expect("read-only first");
            assert!(body.starts_with("SELECT "), "{body}");
            assert_eq!(body.matches(';').count(), 1, "one statement: {body}");
        }
        let writes = [
            Op::CreateRole { role: "r".into() },
            Op::DropRole { role: "r".into() },
            Op::CreateDatabase {
                name: "d".into(),
                owner: "r".into(),
            },
            Op::AlterDatabaseOwner {
                name: "d".into(),
                owner: "r".into(),
            },
            Op::DropDatabase { name: "d".into() },
            Op::SetVerifier {
                role: "r".into(),
                verifier: "SCRAM-SHA-256$4096:x".into(),
            },
            Op::Reassign {
                database: "d".into(),
                from: "a".into(),
                to: "b".into(),
            },
        ];
        for op in writes {
            let script = op.script().unwrap();
            assert!(
                !script.read_only && !script.sql.contains("read_only"),
                "{op:?}"
            );
        }
    }

    #[test]
    fn the_sql_of_each_op() {
        let body = |op: Op| sql(op).strip_prefix(PREAMBLE).unwrap().to_owned();
        assert_eq!(
            body(Op::RoleExists {
                role: "it's".into()
            }),
            format!("{READ_ONLY}SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'it''s');\n")
        );
        assert_eq!(
            body(Op::Database {
                name: "d\\b".into()
            }),
            format!(
                "{READ_ONLY}SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = E'd\\\\b'), \
                 (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = E'd\\\\b');\n"
            )
        );
        assert_eq!(
            body(Op::CreateRole {
                role: "a\"b".into()
            }),
            "CREATE ROLE \"a\"\"b\" LOGIN;\n"
        );
        assert_eq!(
            body(Op::DropRole { role: "r".into() }),
            "DROP ROLE IF EXISTS \"r\";\n"
        );
        assert_eq!(
            body(Op::CreateDatabase {
                name: "d;x".into(),
                owner: "o".into()
            }),
            "CREATE DATABASE \"d;x\" OWNER \"o\";\n"
        );
        assert_eq!(
            body(Op::AlterDatabaseOwner {
                name: "d".into(),
                owner: "o".into()
            }),
            "ALTER DATABASE \"d\" OWNER TO \"o\";\n"
        );
        assert_eq!(
            body(Op::DropDatabase { name: "d".into() }),
            "DROP DATABASE IF EXISTS \"d\";\n"
        );
        assert_eq!(
            body(Op::SetVerifier {
                role: "r".into(),
                verifier: "SCRAM-SHA-256$4096:c2FsdA==$a:b".into()
            }),
            format!("{UNLOGGED}ALTER ROLE \"r\" PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a:b';\n")
        );
        let owned = body(Op::OwnedBy {
            database: "d".into(),
            role: "o'k".into(),
        });
        assert!(owned.starts_with(&format!("{READ_ONLY}SELECT count(*) FROM pg_class c ")));
        assert!(
            owned.contains("pg_get_userbyid(c.relowner) = 'o''k'"),
            "{owned}"
        );
        let reassign = body(Op::Reassign {
            database: "d".into(),
            from: "postgres".into(),
            to: "te\"le".into(),
        });
        assert!(reassign.starts_with("BEGIN;\nSELECT format('ALTER %s %I.%I OWNER TO %I'"));
        assert!(reassign.ends_with("\\gexec\nCOMMIT;\n"), "{reassign}");
        assert_eq!(reassign.matches("\\gexec\n").count(), 2, "{reassign}");
        assert_eq!(reassign.matches("'te\"le')").count(), 2, "{reassign}");
        assert!(reassign.contains("AND c.relkind = 'S' AND NOT EXISTS (SELECT 1 FROM pg_depend"));
    }

    #[test]
    fn databases() {
        let ops = [
            Op::OwnedBy {
                database: "telemetry".into(),
                role: "r".into(),
            },
            Op::Reassign {
                database: "telemetry".into(),
                from: "a".into(),
                to: "b".into(),
            },
        ];
        for op in ops {
            assert_eq!(op.script().unwrap().database, "telemetry");
        }
        assert_eq!(
            Op::DropDatabase {
                name: "telemetry".into()
            }
            .script()
            .unwrap()
            .database,
            "postgres",
            "a database is dropped from another one"
        );
    }

    #[test]
    fn settings_and_hba_scripts() {
        let alter = Op::AlterSystem {
            set: vec![(
                "log_line_prefix".into(),
                "it's \\ '; ALTER SYSTEM SET ssl = off; --".into(),
            )],
            reset: vec!["ssl".into()],
        };
        let script = alter.script().unwrap();
        assert!(!script.read_only);
        assert_eq!(
            script.sql.strip_prefix(PREAMBLE).unwrap(),
            "ALTER SYSTEM SET \"log_line_prefix\" = E'it''s \\\\ ''; ALTER SYSTEM SET ssl = off; --';\n\
             ALTER SYSTEM RESET \"ssl\";\n"
        );
        for op in [
            Op::Settings {
                names: vec!["ssl".into(), "x'y".into()],
            },
            Op::HbaFile,
            Op::HbaErrors,
        ] {
            let script = op.script().unwrap();
            assert!(script.read_only, "{op:?}");
            assert!(
                script.sql.contains("SELECT ") && script.sql.matches(";\n").count() <= 4,
                "{}",
                script.sql
            );
        }
        let settings = Op::Settings {
            names: vec!["ssl".into()],
        }
        .script()
        .unwrap()
        .sql;
        assert!(
            settings.contains("unnest(ARRAY['ssl']::text[])"),
            "{settings}"
        );
    }

    #[test]
    fn settings_answers() {
        let op = Op::Settings {
            names: vec!["ssl".into(), "nope".into()],
        };
        let answer = "ssl\0t\0sighup\0on\0on\0f\0t\0t\0on\0\0t\0\
                      nope\0f\0\0\0\0f\0f\0f\0\0\0t\0";
        let r = op.answer(answer.as_bytes()).unwrap();
        assert_eq!(r.settings.len(), 2);
        let ssl = &r.settings[0];
        assert!(ssl.known && ssl.from_auto_conf && !ssl.pending_restart);
        assert_eq!(
            (
                ssl.context.as_str(),
                ssl.auto_conf.as_deref(),
                &ssl.auto_conf_error
            ),
            ("sighup", Some("on"), &None)
        );
        assert!(!r.settings[1].known && r.settings[1].auto_conf.is_none());
        assert!(op.answer(b"ssl\0t\0").is_err(), "a short answer");
        let swapped = answer.replacen("ssl", "other", 1);
        assert!(
            op.answer(swapped.as_bytes()).is_err(),
            "another setting's row"
        );
        let hba = Op::HbaErrors.answer(b"1\0line 3: bad\0").unwrap();
        assert_eq!(
            (hba.count, hba.text.as_deref()),
            (Some(1), Some("line 3: bad"))
        );
        assert_eq!(
            Op::HbaFile
                .answer(b"/etc/pg_hba.conf\0")
                .unwrap()
                .text
                .as_deref(),
            Some("/etc/pg_hba.conf")
        );
    }

    #[test]
    fn answers() {
        let role = Op::RoleExists { role: "r".into() };
        assert_eq!(role.answer(b"t\0").unwrap().exists, Some(true));
        assert_eq!(role.answer(b"f\0").unwrap().exists, Some(false));
        assert!(role.answer(b"").is_err(), "no row is no answer");
        assert!(role.answer(b"t\0t\0").is_err());
        assert!(role.answer(b"t").is_err(), "unterminated");
        assert!(role.answer(b"yes\0").is_err());

        let db = Op::Database { name: "d".into() };
        let r = db.answer("t\0we;i\"rd\nowner ✓\0".as_bytes()).unwrap();
        assert_eq!(
            (r.exists, r.owner.as_deref()),
            (Some(true), Some("we;i\"rd\nowner ✓"))
        );
        let r = db.answer(b"f\0\0").unwrap();
        assert_eq!((r.exists, r.owner), (Some(false), None));
        assert!(db.answer(b"t\0").is_err());

        let owned = Op::OwnedBy {
            database: "d".into(),
            role: "r".into(),
        };
        assert_eq!(owned.answer(b"12\0").unwrap().count, Some(12));
        assert!(owned.answer(b"x\0").is_err());
        assert!(owned.answer(b"").is_err());

        let write = Op::DropRole { role: "r".into() };
        let r = write.answer(b"").unwrap();
        assert_eq!((r.exists, r.owner, r.count), (None, None, None));
    }
}
