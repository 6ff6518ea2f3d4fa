//! PostgreSQL administration as the cluster's OS user, with the `postgres` crate.
//!
//! telem-deploy runs as root, but the cluster trusts only its own OS user on the local socket
//! (peer authentication). So the parent starts itself again as that user (`__pg-admin`),
//! passes one request as JSON through a pipe, and reads one JSON answer. Passwords never take
//! this path: only a SCRAM verifier computed by the parent does, so the plaintext never reaches
//! a child, the server or its log.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::host::{Cmd, Host, HostError};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// The OS user (and database role) the child connects as.
    pub user: String,
    pub socket_dir: String,
    pub port: u16,
    pub op: Op,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    RoleExists {
        role: String,
    },
    /// Exists, and its owner.
    Database {
        name: String,
    },
    CreateRole {
        role: String,
    },
    DropRole {
        role: String,
    },
    CreateDatabase {
        name: String,
        owner: String,
    },
    AlterDatabaseOwner {
        name: String,
        owner: String,
    },
    DropDatabase {
        name: String,
    },
    /// `verifier` is a SCRAM-SHA-256 verifier, never a plaintext password.
    SetVerifier {
        role: String,
        verifier: String,
    },
    /// How many tables, views and sequences of `database` `role` owns.
    OwnedBy {
        database: String,
        role: String,
    },
    /// Give the tables, views and sequences `from` owns in `database` to `to`.
    Reassign {
        database: String,
        from: String,
        to: String,
    },
}

impl Op {
    /// The database the child connects to.
    fn dbname(&self) -> &str {
        match self {
            Op::OwnedBy { database, .. } | Op::Reassign { database, .. } => database,
            _ => "postgres",
        }
    }
}

/// Relations (not those of the system schemas) owned by $1, sequences last: a sequence owned
/// by a table column follows its table.
const OWNED_BY: &str = "SELECT c.relkind::text, n.nspname::text, c.relname::text \
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
    WHERE pg_get_userbyid(c.relowner) = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') \
    AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' \
    ORDER BY c.relkind = 'S', n.nspname, c.relname";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Response {
    pub exists: Option<bool>,
    pub owner: Option<String>,
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

/// The parent's side: runs `__pg-admin` as `os_user` through the host.
pub struct PgAdmin<'a> {
    pub host: &'a dyn Host,
    pub os_user: &'a str,
    pub socket_dir: &'a str,
    pub port: u16,
}

impl PgAdmin<'_> {
    pub fn call(&self, op: Op) -> Result<Response, HostError> {
        let req = Request {
            user: self.os_user.to_owned(),
            socket_dir: self.socket_dir.to_owned(),
            port: self.port,
            op,
        };
        let exe = admin_exe(self.host)?;
        let cmd = Cmd::new([exe.display().to_string(), "__pg-admin".into()])
            .user(self.os_user)
            .stdin(serde_json::to_vec(&req).expect("request serializes"));
        let out = self.host.run(&cmd)?;
        let resp: Response = serde_json::from_slice(&out.stdout)
            .map_err(|_| HostError(format!("PostgreSQL administration failed: {}", out.tail())))?;
        match resp.error {
            Some(e) => Err(HostError(e)),
            None => Ok(resp),
        }
    }
}

/// How the child runs this executable as the cluster's OS user, without writing anything
/// (a dry run goes through here too): by its path when that user can reach it, else through
/// `/proc/self/exe`. The child is forked from this process, so until its `execve` that link
/// names this very binary; the kernel follows it without looking at the directories on the
/// path, so a binary in a private directory (e.g. a 0700 `/root/bin`) still runs, as long as
/// the file itself is executable by others.
fn admin_exe(host: &dyn Host) -> Result<PathBuf, HostError> {
    let exe = std::env::current_exe()
        .map_err(|e| HostError(format!("cannot find own executable: {e}")))?;
    let executable_by_others = |p: &Path| {
        host.stat(p)
            .ok()
            .flatten()
            .is_some_and(|m| m.mode & 0o001 != 0)
    };
    if exe.ancestors().skip(1).all(executable_by_others) {
        return Ok(exe);
    }
    // `current_exe` follows /proc/self/exe, so this is the file the link leads to.
    let meta = std::fs::metadata(&exe).map_err(|e| HostError::io("stat", &exe, e))?;
    if std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o001 == 0 {
        return Err(HostError(format!(
            "PostgreSQL administration runs {} as the cluster's OS user, which may not execute it (mode {:04o}): make the file executable by others (chmod o+x; its directory may stay private)",
            exe.display(),
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777
        )));
    }
    Ok(PathBuf::from(SELF_EXE))
}

/// The running executable, as every process sees its own.
const SELF_EXE: &str = "/proc/self/exe";

/// The child's side (`telem-deploy __pg-admin`): one request on stdin, one answer on stdout.
pub fn serve_stdin() -> u8 {
    let mut input = Vec::new();
    let resp = match std::io::stdin().read_to_end(&mut input) {
        Err(e) => Response {
            error: Some(format!("reading request: {e}")),
            ..Response::default()
        },
        Ok(_) => match serde_json::from_slice::<Request>(&input) {
            Err(e) => Response {
                error: Some(format!("bad request: {e}")),
                ..Response::default()
            },
            Ok(req) => execute(&req).unwrap_or_else(|e| Response {
                error: Some(e),
                ..Response::default()
            }),
        },
    };
    println!(
        "{}",
        serde_json::to_string(&resp).expect("response serializes")
    );
    u8::from(resp.error.is_some())
}

fn execute(req: &Request) -> Result<Response, String> {
    let mut client = postgres::Config::new()
        .host_path(Path::new(&req.socket_dir))
        .port(req.port)
        .user(&req.user)
        .dbname(req.op.dbname())
        .connect_timeout(std::time::Duration::from_secs(10))
        .connect(postgres::NoTls)
        .map_err(|e| {
            format!(
                "connecting to PostgreSQL on {}: {}",
                req.socket_dir,
                describe(&e)
            )
        })?;
    let err = |e: postgres::Error| describe(&e);
    let mut resp = Response::default();
    match &req.op {
        Op::RoleExists { role } => {
            let rows = client
                .query("SELECT 1 FROM pg_roles WHERE rolname = $1", &[role])
                .map_err(err)?;
            resp.exists = Some(!rows.is_empty());
        }
        Op::Database { name } => {
            let rows = client
                .query(
                    "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1",
                    &[name],
                )
                .map_err(err)?;
            resp.exists = Some(!rows.is_empty());
            resp.owner = rows.first().map(|r| r.get(0));
        }
        Op::CreateRole { role } => client
            .batch_execute(&format!("CREATE ROLE {} LOGIN", ident(role)))
            .map_err(err)?,
        Op::DropRole { role } => client
            .batch_execute(&format!("DROP ROLE IF EXISTS {}", ident(role)))
            .map_err(err)?,
        Op::CreateDatabase { name, owner } => client
            .batch_execute(&format!(
                "CREATE DATABASE {} OWNER {}",
                ident(name),
                ident(owner)
            ))
            .map_err(err)?,
        Op::AlterDatabaseOwner { name, owner } => client
            .batch_execute(&format!(
                "ALTER DATABASE {} OWNER TO {}",
                ident(name),
                ident(owner)
            ))
            .map_err(err)?,
        Op::DropDatabase { name } => client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {}", ident(name)))
            .map_err(err)?,
        Op::SetVerifier { role, verifier } => {
            if !verifier.starts_with("SCRAM-SHA-256$") {
                return Err("refusing to send anything but a SCRAM verifier".into());
            }
            client
                .batch_execute(&format!(
                    "ALTER ROLE {} PASSWORD {}",
                    ident(role),
                    literal(verifier)
                ))
                .map_err(err)?
        }
        Op::OwnedBy { role, .. } => {
            let rows = client.query(OWNED_BY, &[role]).map_err(err)?;
            resp.count = Some(rows.len() as u64);
        }
        Op::Reassign { from, to, .. } => {
            // Twice: sequences owned by a column move with their table in the first pass.
            for _ in 0..2 {
                for row in client.query(OWNED_BY, &[from]).map_err(err)? {
                    let (kind, schema, name): (String, String, String) =
                        (row.get(0), row.get(1), row.get(2));
                    let what = match kind.as_str() {
                        "v" => "VIEW",
                        "m" => "MATERIALIZED VIEW",
                        "f" => "FOREIGN TABLE",
                        "S" => "SEQUENCE",
                        _ => "TABLE",
                    };
                    let sql = format!(
                        "ALTER {what} {}.{} OWNER TO {}",
                        ident(&schema),
                        ident(&name),
                        ident(to)
                    );
                    match client.batch_execute(&sql) {
                        Ok(()) => {}
                        // A sequence linked to a table: done with the table.
                        Err(e) if kind == "S" => drop(e),
                        Err(e) => return Err(err(e)),
                    }
                }
            }
        }
    }
    Ok(resp)
}

/// The server's reason for an error (`password authentication failed for user "telemetry"`),
/// else the driver's message: the postgres crate alone says only "db error".
pub fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => d.message().to_owned(),
        None => e.to_string(),
    }
}

/// A quoted SQL identifier.
pub fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A quoted SQL string literal.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The SCRAM-SHA-256 verifier for `password`, as psql's `\password` computes it.
pub fn scram_verifier(password: &str) -> String {
    postgres_protocol::password::scram_sha_256(password.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
    }

    #[test]
    fn verifier_hides_the_password() {
        let v = scram_verifier("p'a\"s$s;w ö");
        assert!(v.starts_with("SCRAM-SHA-256$4096:"), "{v}");
        assert!(!v.contains("p'a"));
    }
}
