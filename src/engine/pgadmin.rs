//! PostgreSQL administration as the cluster's OS user, through `psql`.
//!
//! telem-deploy runs as root, but the cluster trusts only its own OS user on the local socket
//! (peer authentication). So each operation ([`Op`]) runs `psql` as that user through
//! [`Host::run`] (on this machine or over SSH alike), with its SQL (built and quoted in
//! `pgsql.rs`) on stdin, never in argv, and reads the rows psql prints. Passwords never take
//! this path: only a SCRAM verifier computed here does, so the plaintext never reaches psql,
//! the server or its log.

use super::pgsql::{conninfo_value, NulError, Script};
use crate::host::{Cmd, CmdOutput, Host, HostError};

#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// The server's view of the settings `names`: one [`Setting`] each, in order.
    Settings {
        names: Vec<String>,
    },
    /// `ALTER SYSTEM SET name = value` for each of `set`, `ALTER SYSTEM RESET name` for each
    /// of `reset` (postgresql.auto.conf; a reload or restart applies them).
    AlterSystem {
        set: Vec<(String, String)>,
        reset: Vec<String>,
    },
    /// The path of the cluster's pg_hba.conf (`SHOW hba_file`).
    HbaFile,
    /// The errors PostgreSQL finds in its pg_hba.conf as it is on disk now
    /// (`pg_hba_file_rules`), as `line N: error` texts.
    HbaErrors,
}

/// What the server says of one setting (`pg_settings`, and `pg_file_settings` of
/// postgresql.auto.conf, which `ALTER SYSTEM` writes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Setting {
    pub name: String,
    /// The server knows the setting (a typo is not one).
    pub known: bool,
    /// `postmaster` (a restart applies it), `sighup` (a reload), ...
    pub context: String,
    /// `pg_settings.setting` (in the setting's base unit).
    pub setting: String,
    /// `current_setting(name)` (with its unit, as `SHOW` prints it).
    pub shown: String,
    /// Changed in a configuration file, waiting for a restart.
    pub pending_restart: bool,
    /// The value in effect came from postgresql.auto.conf.
    pub from_auto_conf: bool,
    /// What postgresql.auto.conf holds for it (`ALTER SYSTEM`), when anything.
    pub auto_conf: Option<String>,
    /// The server's objection to that value (`setting could not be applied`: a restart is
    /// needed; or a bad value), when any.
    pub auto_conf_error: Option<String>,
    /// The server read its configuration files after postgresql.auto.conf last changed
    /// (in a later second: the file's time has whole seconds), or there is no such file.
    pub reloaded_since_change: bool,
}

/// A check's answer (`None` where the operation says nothing about it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    pub exists: Option<bool>,
    pub owner: Option<String>,
    pub count: Option<u64>,
    /// [`Op::Settings`].
    pub settings: Vec<Setting>,
    /// [`Op::HbaFile`]: the path; [`Op::HbaErrors`]: the errors, one per line.
    pub text: Option<String>,
}

/// Runs `psql` as the cluster's OS user through the host, the same way on this machine and
/// over SSH.
pub struct PgAdmin<'a> {
    pub host: &'a dyn Host,
    /// The psql program to run ([`psql_program`], else [`PSQL`]).
    pub psql: &'a str,
    pub os_user: &'a str,
    pub socket_dir: &'a str,
    pub port: u16,
}

impl PgAdmin<'_> {
    pub fn call(&self, op: Op) -> Result<Response, HostError> {
        if let Op::SetVerifier { verifier, .. } = &op {
            if !verifier.starts_with("SCRAM-SHA-256$") {
                return Err(HostError(
                    "refusing to send anything but a SCRAM verifier to PostgreSQL".into(),
                ));
            }
        }
        let refused = |e: NulError| HostError(format!("PostgreSQL administration: {e}"));
        let script = op.script().map_err(refused)?;
        let masked = match &op {
            Op::SetVerifier { verifier, .. } => Some(verifier.as_str()),
            _ => None,
        };
        let stdout = self.run_script(&script, masked)?;
        op.answer(&stdout)
            .map_err(|e| HostError(format!("PostgreSQL administration: {e}")))
    }

    /// Run `script` (an [`Op`]'s, or one of `pgrepl.rs`) and return psql's stdout; a failure
    /// is psql's stderr, with `masked` (a secret the script holds) never shown.
    pub fn run_script(&self, script: &Script, masked: Option<&str>) -> Result<Vec<u8>, HostError> {
        let refused = |e: NulError| HostError(format!("PostgreSQL administration: {e}"));
        let out = self.host.run(&self.command(script).map_err(refused)?)?;
        if !out.success() {
            return Err(HostError(self.failure(masked, script, &out)));
        }
        Ok(out.stdout)
    }

    /// `psql` as the cluster's OS user over the local socket (peer authentication), the
    /// script on stdin. `--no-password`: psql never prompts on the terminal; `--no-psqlrc`:
    /// no `~/.psqlrc` changes the output; the database as a connection string, so a name with
    /// `=` is never taken for one.
    fn command(&self, script: &Script) -> Result<Cmd, NulError> {
        let port = self.port.to_string();
        let conninfo = format!(
            "dbname={} connect_timeout=10 client_encoding=UTF8 application_name=telem-deploy",
            conninfo_value(&script.database)?
        );
        Ok(Cmd::new([
            self.psql,
            "--no-psqlrc",
            "--quiet",
            "--no-align",
            "--tuples-only",
            "--field-separator-zero",
            "--record-separator-zero",
            "--no-password",
            "--set=ON_ERROR_STOP=1",
            "--host",
            self.socket_dir,
            "--port",
            &port,
            "--username",
            self.os_user,
            "--dbname",
            &conninfo,
        ])
        .user(self.os_user)
        .stdin(script.sql.clone()))
    }

    /// Why psql failed, in its own words (its stderr: `ERROR:  role "x" does not exist`,
    /// `psql: error: connection to server on socket ... failed: ...`), never the script. A
    /// verifier is masked should a message ever quote one.
    fn failure(&self, masked: Option<&str>, script: &Script, out: &CmdOutput) -> String {
        let mut text = out
            .tail()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if let Some(secret) = masked.filter(|s| !s.is_empty()) {
            text = text.replace(secret, crate::secret::MASK);
        }
        let status = match out.code {
            Some(c) => format!("exited with status {c}"),
            None => "was killed by a signal".to_owned(),
        };
        match text.is_empty() {
            true => format!(
                "psql as {} (database {}) {status}",
                self.os_user, script.database
            ),
            false => format!(
                "psql as {} (database {}) {status}: {text}",
                self.os_user, script.database
            ),
        }
    }
}

/// psql by name, found on the PATH like every other program the engine runs: the server
/// package's on Clear Linux and EL (and Debian's wrapper when no version's psql is found).
pub const PSQL: &str = "psql";

/// Where Debian and Ubuntu install each PostgreSQL version (`VERSION/bin/psql`).
const DEBIAN_VERSIONS: &str = "/usr/lib/postgresql";

/// The psql of the newest PostgreSQL version installed the Debian way, when there is one.
///
/// There, `/usr/bin/psql` is postgresql-common's Perl wrapper, which only chooses a version's
/// psql to exec: about 17 ms of Perl per call against 7 ms for psql itself (measured on the
/// e2e sandboxes), five times in a converged install. The wrapper would choose the version of
/// the cluster on the port given; the newest version's psql talks to every older server, and
/// the host, port and user are always given, so nothing else of the wrapper matters here.
pub fn psql_program(host: &dyn Host) -> Option<String> {
    let root = std::path::Path::new(DEBIAN_VERSIONS);
    let mut versions: Vec<(Vec<u32>, String)> = host
        .list_dir(root)
        .ok()?
        .into_iter()
        .filter_map(|name| {
            let parts: Option<Vec<u32>> = name.split('.').map(|p| p.parse().ok()).collect();
            parts.map(|v| (v, name))
        })
        .collect();
    versions.sort();
    versions.into_iter().rev().find_map(|(_, name)| {
        let psql = root.join(name).join("bin/psql");
        let regular = matches!(
            host.stat(&psql),
            Ok(Some(m)) if m.kind == crate::host::FileKind::File
        );
        regular.then(|| psql.to_string_lossy().into_owned())
    })
}

/// The SCRAM-SHA-256 verifier for `password`, as psql's `\password` computes it.
pub fn scram_verifier(password: &str) -> String {
    postgres_protocol::password::scram_sha_256(password.as_bytes())
}

#[cfg(test)]
#[path = "pgadmin_server_test.rs"]
pub(crate) mod server_test;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_hides_the_password() {
        let v = scram_verifier("p'a\"s$s;w ö");
        assert!(v.starts_with("SCRAM-SHA-256$4096:"), "{v}");
        assert!(!v.contains("p'a"));
    }
}
