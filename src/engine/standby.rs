//! A standby made from its primary's base backup, and an old primary fenced after a
//! promotion: the machinery of the `postgres_standby` and `postgres_fence` steps.
//!
//! A rebuild never deletes a cluster: `pg_basebackup` copies the primary into a sibling
//! directory (`DATADIR.telem-new`) while the old cluster still runs, and only once the copy is
//! complete is the cluster stopped, its data directory renamed aside
//! (`DATADIR.telem-aside-YYYYmmddTHHMMSSZ`) and the copy moved into its place. The replication
//! password reaches `pg_basebackup` in a 0600 passfile of the cluster's OS user, named by
//! `PGPASSFILE` in that child's environment only, and removed as soon as it exits; never in
//! argv. `pg_basebackup -R` writes the connection (with the password) into the new cluster's
//! `postgresql.auto.conf`, which only the cluster's OS user reads, and `standby.signal`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::pgadmin::PgAdmin;
use super::pgrepl::{Repl, StandbyState};
use super::pgsql::{conninfo_value, NulError};
use super::svc::Services;
use super::StepError;
use crate::host::{Cmd, Host, Owner};
use crate::recipe::model::{Direct, ServiceDef};
use crate::secret::Secret;

/// The file in a fenced cluster's data directory saying why and when it was fenced.
pub const FENCE_MARKER: &str = "telem-deploy-fenced";
/// The name of a passfile, next to the data directory while `pg_basebackup` runs.
const PASSFILE_PREFIX: &str = ".telem-deploy-pgpass-";
/// The file that makes PostgreSQL start as a standby (12+).
pub const STANDBY_SIGNAL: &str = "standby.signal";

/// The primary a standby copies and streams from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub primary: String,
    pub port: u16,
    pub role: String,
    pub slot: String,
    /// The CA to verify the primary's certificate with (`sslmode=verify-full`).
    pub ca_file: Option<String>,
}

impl Source {
    /// The libpq connection string `pg_basebackup -d` gets (and `-R` writes into
    /// `primary_conninfo`); no password.
    pub fn conninfo(&self) -> Result<String, NulError> {
        let mut s = format!(
            "host={} port={} user={} connect_timeout=10",
            conninfo_value(&self.primary)?,
            self.port,
            conninfo_value(&self.role)?
        );
        if let Some(ca) = &self.ca_file {
            s.push_str(&format!(
                " sslmode=verify-full sslrootcert={}",
                conninfo_value(ca)?
            ));
        }
        Ok(s)
    }

    /// `pg_basebackup` into `target`: the whole cluster, its WAL streamed alongside (`-X
    /// stream`) through the slot, the standby's configuration written (`-R`), a fast
    /// checkpoint, never a password prompt.
    pub fn basebackup(&self, target: &str) -> Result<Vec<String>, NulError> {
        Ok(vec![
            "pg_basebackup".into(),
            "--no-password".into(),
            "--dbname".into(),
            self.conninfo()?,
            "--pgdata".into(),
            target.into(),
            "--write-recovery-conf".into(),
            "--wal-method=stream".into(),
            "--slot".into(),
            self.slot.clone(),
            "--checkpoint=fast".into(),
        ])
    }

    /// The `primary_conninfo` line of `postgresql.auto.conf`: the connection with the
    /// password (the file is the cluster's OS user's, 0600), quoted as a configuration file
    /// quotes a value (`\` and `'` escaped).
    pub fn primary_conninfo(&self, password: &Secret) -> Result<Secret, NulError> {
        let conninfo = format!(
            "{} password={}",
            self.conninfo()?,
            conninfo_value(password.expose())?
        );
        Ok(Secret::new(format!(
            "primary_conninfo = '{}'\n",
            conninfo.replace('\\', "\\\\").replace('\'', "''")
        )))
    }

    /// The passfile's line for this primary and role (`:` and `\` escaped, as libpq reads
    /// them); a password with a line break cannot be written there.
    pub fn passfile_line(&self, password: &Secret) -> Result<Secret, StepError> {
        let pw = password.expose();
        if pw.contains(['\n', '\r', '\0']) || pw.is_empty() {
            return Err(StepError::msg(
                "the replication password cannot be empty or hold a line break or a NUL byte",
            ));
        }
        let esc = |s: &str| s.replace('\\', "\\\\").replace(':', "\\:");
        if self.primary.contains(['\n', '\r']) || self.role.contains(['\n', '\r']) {
            return Err(StepError::msg(
                "the primary's address and the role cannot hold a line break",
            ));
        }
        Ok(Secret::new(format!(
            "{}:{}:*:{}:{}\n",
            esc(&self.primary),
            self.port,
            esc(&self.role),
            esc(pw)
        )))
    }
}

/// Does the cluster in state `s` stream from `source`: its primary and slot, and, when
/// `source` names a CA file, verifying the primary with it?
pub fn follows(s: &StandbyState, source: &Source) -> bool {
    s.streams_from(&source.primary, source.port, &source.slot)
        && source
            .ca_file
            .as_ref()
            .is_none_or(|ca| s.ssl_mode == "verify-full" && s.ssl_root_cert == *ca)
}

/// How the cluster is stopped and started (the recipe's service, or a test's `pg_ctl`).
pub trait Control {
    /// Stop it (nothing when it is not running).
    fn stop(&self) -> Result<(), StepError>;
    fn start(&self) -> Result<(), StepError>;
}

/// The cluster as the recipe's service (`postgresql`) through the run's service manager.
pub struct ServiceControl<'a> {
    pub services: &'a Services<'a>,
    pub def: &'a ServiceDef,
}

impl Control for ServiceControl<'_> {
    fn stop(&self) -> Result<(), StepError> {
        if self
            .services
            .is_running(self.def)
            .map_err(StepError::host)?
        {
            self.services.stop(self.def)?;
        }
        Ok(())
    }

    fn start(&self) -> Result<(), StepError> {
        self.services.start(self.def)
    }
}

/// A moment as file names show it: `20261202T154348Z` (UTC).
pub fn stamp(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The data directory of a cluster that does not answer: Debian's one cluster
/// (`pg_lsclusters`), else the service's `pg_ctl -D`, else the recipe's `data_dir` when it
/// holds a cluster (`PG_VERSION`).
pub fn data_dir_offline(
    host: &dyn Host,
    def: Option<&ServiceDef>,
    recipe_data_dir: &str,
) -> Result<String, StepError> {
    if host.which("pg_lsclusters").is_some() {
        let out = super::svc::run_ok(host, &Cmd::new(["pg_lsclusters", "--no-header"]))?;
        let dirs: Vec<String> = out
            .stdout_text()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(5).map(str::to_owned))
            .collect();
        match dirs.as_slice() {
            [one] => return Ok(one.clone()),
            [] => {}
            many => {
                return Err(StepError::msg(format!(
                    "more than one PostgreSQL cluster ({}): which one is meant is not known",
                    many.join(", ")
                )))
            }
        }
    }
    if let Some(Direct::PgCtl { data_dir, .. }) = def.map(|d| &d.direct) {
        return Ok(data_dir.clone());
    }
    let version = Path::new(recipe_data_dir).join("PG_VERSION");
    if host.stat(&version).map_err(StepError::host)?.is_some() {
        return Ok(recipe_data_dir.to_owned());
    }
    Err(StepError::msg(format!(
        "no PostgreSQL cluster found (no pg_lsclusters, no {})",
        version.display()
    )))
}

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuilt {
    /// Where the former data directory is kept (none when there was none).
    pub aside: Option<String>,
}

/// The cluster of `os_user` in `data_dir` replaced by a base backup of `source` (see the
/// module's comment); `stamp` names what is set aside.
pub fn rebuild(
    host: &dyn Host,
    os_user: &str,
    data_dir: &str,
    control: &dyn Control,
    source: &Source,
    password: &Secret,
    stamp: &str,
) -> Result<Rebuilt, StepError> {
    let data = Path::new(data_dir.trim_end_matches('/'));
    let (Some(parent), Some(name)) = (data.parent(), data.file_name()) else {
        return Err(StepError::msg(format!(
            "{data_dir} cannot be a cluster's data directory"
        )));
    };
    let name = name.to_string_lossy();
    let fresh = parent.join(format!("{name}.telem-new"));
    let fresh_s = fresh.display().to_string();
    let owner = |mode| Owner {
        user: os_user.to_owned(),
        group: os_user.to_owned(),
        mode,
    };
    // A passfile an interrupted run left behind goes now.
    for stale in host.list_dir(parent).map_err(StepError::host)? {
        if stale.starts_with(PASSFILE_PREFIX) {
            host.remove(&parent.join(stale)).map_err(StepError::host)?;
        }
    }
    // A copy an interrupted run left behind is set aside too, never deleted.
    if host.stat(&fresh).map_err(StepError::host)?.is_some() {
        let old = parent.join(format!("{name}.telem-new.failed-{stamp}"));
        host.rename(&fresh, &old).map_err(StepError::host)?;
    }
    let mode = match host.stat(data).map_err(StepError::host)? {
        Some(m) if m.mode & 0o777 == 0o750 => 0o750,
        _ => 0o700,
    };
    host.mkdir(&fresh, &owner(mode)).map_err(StepError::host)?;

    let argv = source
        .basebackup(&fresh_s)
        .map_err(|e| StepError::msg(e.to_string()))?;
    let passfile = parent.join(format!("{PASSFILE_PREFIX}{stamp}"));
    let line = source.passfile_line(password)?;
    host.write(&passfile, line.expose().as_bytes(), &owner(0o600))
        .map_err(StepError::host)?;
    // HOME: libpq looks for a client certificate under ~/.postgresql; the caller's (root's)
    // would be unreadable to the cluster's user, an error rather than "none".
    let home = home_of(host, os_user).unwrap_or_else(|| parent.display().to_string());
    let cmd = Cmd::new(argv)
        .user(os_user)
        .env("HOME", &home)
        .env("PGPASSFILE", &passfile.display().to_string());
    let ran = host.run(&cmd);
    // The passfile goes whatever happened.
    let removed = host.remove(&passfile);
    let out = ran.map_err(StepError::host)?;
    if !out.success() {
        let mut e = StepError::command(&cmd, &out);
        e.message = format!(
            "the base backup of {}:{} failed (the cluster in {data_dir} is untouched; the partial copy is {fresh_s})",
            source.primary, source.port
        );
        return Err(e);
    }
    removed.map_err(StepError::host)?;
    // `-R` names the passfile, gone now, in primary_conninfo: the password goes there.
    write_conninfo(host, os_user, &fresh, source, password)?;

    control.stop()?;
    let aside = match host.stat(data).map_err(StepError::host)? {
        Some(_) => {
            let aside: PathBuf = parent.join(format!("{name}.telem-aside-{stamp}"));
            host.rename(data, &aside).map_err(StepError::host)?;
            Some(aside.display().to_string())
        }
        None => None,
    };
    host.rename(&fresh, data).map_err(StepError::host)?;
    control.start()?;
    Ok(Rebuilt { aside })
}

/// Wait (at most `limit`) until the local cluster streams from `source`; its last state
/// otherwise, in the error.
pub fn wait_streaming(
    pg: &PgAdmin,
    source: &Source,
    limit: Duration,
) -> Result<StandbyState, StepError> {
    let deadline = Instant::now() + limit;
    loop {
        let last = match pg.repl(&Repl::Standby) {
            Ok(a) => {
                let s = a.standby.unwrap_or_default();
                if follows(&s, source) {
                    return Ok(s);
                }
                format!(
                    "in recovery: {}, WAL receiver: {:?} from {}:{} through slot {:?}",
                    s.in_recovery,
                    s.status,
                    s.sender_host,
                    s.sender_port.map(|p| p.to_string()).unwrap_or_default(),
                    s.slot
                )
            }
            Err(e) => e.0,
        };
        if Instant::now() >= deadline {
            return Err(StepError::msg(format!(
                "the standby does not stream from {}:{} through slot {} after {} s ({last})",
                source.primary,
                source.port,
                source.slot,
                limit.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The home directory of `user` (`/etc/passwd`).
fn home_of(host: &dyn Host, user: &str) -> Option<String> {
    let passwd = host.read(Path::new("/etc/passwd")).ok().flatten()?;
    String::from_utf8_lossy(&passwd).lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 7 && f[0] == user && f[5].starts_with('/')).then(|| f[5].to_owned())
    })
}

/// `postgresql.auto.conf` of the (stopped) cluster in `dir` with `source`'s connection and
/// password as its `primary_conninfo`, everything else of the file kept.
fn write_conninfo(
    host: &dyn Host,
    os_user: &str,
    dir: &Path,
    source: &Source,
    password: &Secret,
) -> Result<(), StepError> {
    let path = dir.join("postgresql.auto.conf");
    let old = host
        .read(&path)
        .map_err(StepError::host)?
        .ok_or_else(|| StepError::msg(format!("pg_basebackup -R wrote no {}", path.display())))?;
    let line = source
        .primary_conninfo(password)
        .map_err(|e| StepError::msg(e.to_string()))?;
    let mut text: String = String::from_utf8_lossy(&old)
        .lines()
        .filter(|l| !l.trim_start().starts_with("primary_conninfo"))
        .map(|l| format!("{l}\n"))
        .collect();
    text.push_str(line.expose());
    let owner = Owner {
        user: os_user.to_owned(),
        group: os_user.to_owned(),
        mode: 0o600,
    };
    host.write(&path, text.as_bytes(), &owner)
        .map_err(StepError::host)
}

/// Is `data_dir` fenced: (`standby.signal` present, the marker present)?
pub fn fence_state(host: &dyn Host, data_dir: &str) -> Result<(bool, bool), StepError> {
    let has = |f: &str| {
        host.stat(&Path::new(data_dir).join(f))
            .map(|m| m.is_some())
            .map_err(StepError::host)
    };
    Ok((has(STANDBY_SIGNAL)?, has(FENCE_MARKER)?))
}

/// The marker's text: why and when.
pub fn fence_text(reason: &str, stamp: &str) -> String {
    format!(
        "fenced by telem-deploy at {stamp}: {reason}\n\
         This cluster must not run as a primary again: standby.signal keeps it in recovery.\n\
         Rebuild it as a standby of the new primary (postgres_standby), or remove both files \
         only when you know it is the one primary.\n"
    )
}

/// Write `standby.signal` and the marker into the (stopped) cluster's data directory.
pub fn fence_files(
    host: &dyn Host,
    os_user: &str,
    data_dir: &str,
    reason: &str,
    stamp: &str,
) -> Result<(), StepError> {
    let dir = Path::new(data_dir);
    if host
        .stat(&dir.join("PG_VERSION"))
        .map_err(StepError::host)?
        .is_none()
    {
        return Err(StepError::msg(format!(
            "{data_dir} holds no PostgreSQL cluster (no PG_VERSION) to fence"
        )));
    }
    let owner = Owner {
        user: os_user.to_owned(),
        group: os_user.to_owned(),
        mode: 0o600,
    };
    let (signal, marker) = fence_state(host, data_dir)?;
    if !signal {
        host.write(&dir.join(STANDBY_SIGNAL), b"", &owner)
            .map_err(StepError::host)?;
    }
    if !marker {
        host.write(
            &dir.join(FENCE_MARKER),
            fence_text(reason, stamp).as_bytes(),
            &owner,
        )
        .map_err(StepError::host)?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "standby_server_test.rs"]
mod server_test;

#[cfg(test)]
mod tests {
    use super::*;

    fn source(ca: Option<&str>) -> Source {
        Source {
            primary: "10.77.0.11".into(),
            port: 5432,
            role: "repl'i\\ca tor".into(),
            slot: "standby_1".into(),
            ca_file: ca.map(str::to_owned),
        }
    }

    #[test]
    fn the_conninfo_quotes_and_verifies() {
        assert_eq!(
            source(None).conninfo().unwrap(),
            "host='10.77.0.11' port=5432 user='repl\\'i\\\\ca tor' connect_timeout=10"
        );
        assert_eq!(
            source(Some("/etc/telemetry/db ca.pem")).conninfo().unwrap(),
            "host='10.77.0.11' port=5432 user='repl\\'i\\\\ca tor' connect_timeout=10 \
             sslmode=verify-full sslrootcert='/etc/telemetry/db ca.pem'"
        );
    }

    #[test]
    fn the_argv_has_no_password() {
        let pw = Secret::new("Zq7:pass\\word");
        let argv = source(Some("/ca.pem"))
            .basebackup("/var/lib/x.telem-new")
            .unwrap();
        assert!(argv
            .iter()
            .all(|a| !a.contains("Zq7") && !a.to_ascii_lowercase().contains("password=")));
        assert!(argv.contains(&"--no-password".to_owned()));
        let line = source(None).passfile_line(&pw).unwrap();
        assert_eq!(
            line.expose(),
            "10.77.0.11:5432:*:repl'i\\\\ca tor:Zq7\\:pass\\\\word\n"
        );
        assert_eq!(format!("{line:?}"), crate::secret::MASK);
        assert!(source(None).passfile_line(&Secret::new("a\nb")).is_err());
    }

    #[test]
    fn the_primary_conninfo_is_quoted_twice() {
        // The conninfo quotes with backslashes; the configuration file doubles `'` and `\`.
        let line = source(None)
            .primary_conninfo(&Secret::new(r"p'w\"))
            .unwrap();
        assert_eq!(
            line.expose(),
            r"primary_conninfo = 'host=''10.77.0.11'' port=5432 user=''repl\\''i\\\\ca tor'' connect_timeout=10 password=''p\\''w\\\\'''"
                .to_owned()
                + "\n"
        );
        assert_eq!(format!("{line}"), crate::secret::MASK);
    }

    #[test]
    fn stamps_are_utc() {
        let t = time::OffsetDateTime::from_unix_timestamp(1_796_226_228).unwrap();
        assert_eq!(stamp(t), "20261202T154348Z");
    }
}
