//! A migration file split in two: the SQL that runs in the migration's transaction, and the
//! steps after a `-- telem:concurrently` line that run one by one outside any transaction
//! (`CREATE INDEX CONCURRENTLY`, `DROP INDEX CONCURRENTLY`), so that building an index on
//! `records` never holds a lock that makes the running collectors' INSERTs wait. A
//! `-- telem:if-extension NAME` line in that section runs its steps only where the extension
//! is installed (the payload trigram index needs `pg_trgm`).

/// The line that starts the steps run outside the transaction.
pub const CONCURRENTLY: &str = "-- telem:concurrently";
const IF_EXTENSION: &str = "-- telem:if-extension ";

/// One migration file, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationSql<'a> {
    /// Runs in one transaction, before the online steps (possibly again after an interrupted
    /// online step, so it is idempotent).
    pub transactional: &'a str,
    /// Run one statement at a time outside any transaction, in order.
    pub online: Vec<OnlineStep>,
    /// The online steps run only where this extension is installed.
    pub requires_extension: Option<String>,
}

/// A statement that must not run inside a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnlineStep {
    /// `CREATE [UNIQUE] INDEX CONCURRENTLY IF NOT EXISTS <index> ...`: an INVALID index of
    /// that name (left by an interrupted build) is dropped and built again.
    CreateIndex { index: String, sql: String },
    /// Anything else (`DROP INDEX CONCURRENTLY IF EXISTS ...`), run as it is.
    Other { sql: String },
}

impl OnlineStep {
    pub fn sql(&self) -> &str {
        match self {
            OnlineStep::CreateIndex { sql, .. } | OnlineStep::Other { sql } => sql,
        }
    }
}

/// Splits a migration at its `-- telem:concurrently` line. The online section holds plain
/// statements ending with `;` (no dollar quoting, no `;` inside) and `--` comment lines.
pub fn parse(sql: &str) -> MigrationSql<'_> {
    let Some(at) = marker_offset(sql) else {
        return MigrationSql {
            transactional: sql,
            online: Vec::new(),
            requires_extension: None,
        };
    };
    let mut requires_extension = None;
    let mut statements = String::new();
    for line in sql[at..].lines().skip(1) {
        let trimmed = line.trim();
        if let Some(name) = trimmed.strip_prefix(IF_EXTENSION) {
            requires_extension = Some(name.trim().to_string());
        } else if !trimmed.starts_with("--") {
            statements.push_str(trimmed);
            statements.push(' ');
        }
    }
    let online = statements
        .split(';')
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .map(classify)
        .collect();
    MigrationSql {
        transactional: &sql[..at],
        online,
        requires_extension,
    }
}

/// Where the marker line starts, if the file has one.
fn marker_offset(sql: &str) -> Option<usize> {
    let mut offset = 0;
    for line in sql.split_inclusive('\n') {
        if line.trim_end() == CONCURRENTLY {
            return Some(offset);
        }
        offset += line.len();
    }
    None
}

fn classify(sql: String) -> OnlineStep {
    let upper = sql.to_ascii_uppercase();
    let index = [
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS ",
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS ",
    ]
    .iter()
    .find(|prefix| upper.starts_with(*prefix))
    .and_then(|prefix| sql[prefix.len()..].split_whitespace().next())
    .map(str::to_string);
    match index {
        Some(index) => OnlineStep::CreateIndex { index, sql },
        None => OnlineStep::Other { sql },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MIGRATIONS;

    #[test]
    fn a_file_without_the_marker_is_all_transactional() {
        let parsed = parse("CREATE TABLE t (a int);\n");
        assert_eq!(parsed.transactional, "CREATE TABLE t (a int);\n");
        assert!(parsed.online.is_empty());
    }

    #[test]
    fn the_online_section_is_split_into_statements() {
        let sql = "CREATE TABLE t (a int);\n-- telem:concurrently\n-- telem:if-extension pg_trgm\n\
            -- a comment; with a semicolon\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS t_a_idx\n    ON t (a);\n\
            DROP INDEX CONCURRENTLY IF EXISTS t_old_idx;\n";
        let parsed = parse(sql);
        assert_eq!(parsed.transactional, "CREATE TABLE t (a int);\n");
        assert_eq!(parsed.requires_extension.as_deref(), Some("pg_trgm"));
        assert_eq!(
            parsed.online,
            vec![
                OnlineStep::CreateIndex {
                    index: "t_a_idx".into(),
                    sql: "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS t_a_idx ON t (a)".into()
                },
                OnlineStep::Other {
                    sql: "DROP INDEX CONCURRENTLY IF EXISTS t_old_idx".into()
                },
            ]
        );
    }

    /// No embedded migration builds an index on `records` inside its transaction: every build
    /// is an online step, and every online step is one PostgreSQL runs outside a transaction.
    #[test]
    fn embedded_migrations_build_indexes_online() {
        for (version, name, sql) in MIGRATIONS {
            let parsed = parse(sql);
            let upper = parsed.transactional.to_ascii_uppercase();
            for line in upper.lines().filter(|l| !l.trim_start().starts_with("--")) {
                assert!(
                    !(line.contains("INDEX") && line.contains(" ON RECORDS")),
                    "migration {version} ({name}) builds an index in its transaction: {line}"
                );
                assert!(!line.contains("DROP INDEX"), "migration {version}: {line}");
            }
            for step in &parsed.online {
                assert!(
                    step.sql()
                        .to_ascii_uppercase()
                        .contains(" CONCURRENTLY IF "),
                    "migration {version}: {}",
                    step.sql()
                );
            }
        }
        let online: Vec<usize> = MIGRATIONS.iter().map(|m| parse(m.2).online.len()).collect();
        assert_eq!(online, [0, 5, 6, 0, 1, 0, 0]);
    }
}
