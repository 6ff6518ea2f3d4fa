//! Replication through the real programs: two clusters of our own (`initdb` into temp
//! directories as the `postgres` OS user), a primary with a replication role (a name and a
//! password chosen to break quoting and the passfile's format) and a slot, and a second
//! cluster replaced by a base backup of the primary with the machinery of `postgres_standby`
//! (`standby::rebuild` through `LocalHost`, `pg_ctl` standing in for the service manager).
//! A row written on the primary appears on the standby; the standby is promoted and accepts
//! writes; the old primary is fenced and, started again, comes up in recovery. While
//! `pg_basebackup` runs, no process's argv or environment holds the password.
//!
//! Needs root and the PostgreSQL server binaries, like `pgadmin_server_test.rs`; without them
//! the test fails saying why, unless `TELEM_SKIP_PG_TESTS=1`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{
    fence_files, fence_state, rebuild, wait_streaming, Control, Source, FENCE_MARKER,
    STANDBY_SIGNAL,
};
use crate::engine::pgadmin::server_test::{as_postgres, bin_dir, run_ok, unavailable};
use crate::engine::pgadmin::{scram_verifier, Op, PgAdmin};
use crate::engine::pgrepl::Repl;
use crate::engine::StepError;
use crate::host::LocalHost;
use crate::secret::Secret;

const ROLE: &str = "re'pl:ica\\tor \"x\"";
const PASSWORD: &str = "Zq7:pass\\word 'x' ünï";
const SLOT: &str = "standby_1";

/// A cluster in a temp directory (`base/data`, its socket in `base`), stopped and removed on
/// drop.
struct Pg {
    bin: PathBuf,
    base: PathBuf,
    socket: String,
    port: u16,
    /// Listens on 127.0.0.1 (the primary) or on its socket only.
    tcp: bool,
    /// More server options (the primary's TLS).
    extra: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port number")
}

impl Pg {
    fn init(tcp: bool) -> Pg {
        let bin = bin_dir().expect("checked by unavailable()");
        let base = tempfile::Builder::new()
            .prefix("telem-repl-")
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
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--no-sync",
                ]),
        );
        Pg {
            bin,
            socket: base.display().to_string(),
            base,
            port: free_port(),
            tcp,
            extra: String::new(),
        }
    }

    fn data(&self) -> PathBuf {
        self.base.join("data")
    }

    fn pg_ctl(&self) -> Command {
        let mut c = as_postgres(&self.bin.join("pg_ctl"));
        c.arg("-D").arg(self.data());
        c
    }

    fn running(&self) -> bool {
        self.pg_ctl()
            .arg("status")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn admin(&self) -> PgAdmin<'_> {
        PgAdmin {
            host: &LocalHost,
            psql: crate::engine::pgadmin::PSQL,
            os_user: "postgres",
            socket_dir: &self.socket,
            port: self.port,
        }
    }

    /// The test's own view: psql as postgres, one value per line.
    fn sql(&self, sql: &str) -> Result<String, String> {
        let out = as_postgres(Path::new("psql"))
            .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.base)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-c", sql])
            .output()
            .expect("running psql");
        match out.status.success() {
            true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
            false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.base.join("server.log")).unwrap_or_default()
    }
}

impl Control for Pg {
    fn stop(&self) -> Result<(), StepError> {
        if self.running() {
            run_ok(self.pg_ctl().args(["-m", "fast", "-w", "stop"]));
        }
        Ok(())
    }

    fn start(&self) -> Result<(), StepError> {
        let listen = if self.tcp { "127.0.0.1" } else { "" };
        let options = format!(
            "-k {} -p {} -c listen_addresses={listen} -c fsync=off -c log_statement=all {}",
            self.socket, self.port, self.extra
        );
        // -w: returns once the server accepts connections (a standby: read-only ones).
        run_ok(
            self.pg_ctl()
                .args(["-o", &options, "-l"])
                .arg(self.base.join("server.log"))
                .args(["-w", "-t", "60", "start"]),
        );
        Ok(())
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = Control::stop(self);
        if let Err(e) = std::fs::remove_dir_all(&self.base) {
            eprintln!("removing {}: {e}", self.base.display());
        }
    }
}

/// Every process whose argv or environment holds `secret`, until `stop` is set; and whether
/// a `pg_basebackup` was seen at all.
fn watch(
    secret: &'static str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(Vec<String>, bool)> {
    std::thread::spawn(move || {
        let (mut leaks, mut seen) = (Vec::new(), false);
        while !stop.load(Ordering::SeqCst) {
            for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                let name = entry.file_name();
                if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                for what in ["cmdline", "environ"] {
                    let Ok(bytes) = std::fs::read(entry.path().join(what)) else {
                        continue;
                    };
                    let text = String::from_utf8_lossy(&bytes);
                    if what == "cmdline" && text.contains("pg_basebackup") {
                        seen = true;
                    }
                    if text.contains(secret) {
                        leaks.push(format!(
                            "{}/{what}: {}",
                            entry.path().display(),
                            text.replace('\0', " ")
                        ));
                    }
                }
            }
        }
        (leaks, seen)
    })
}

/// Any passfile left in `dir`.
fn passfiles_left(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().contains("pgpass"))
}

/// The primary serves TLS with a certificate for 127.0.0.1 from a test CA: (that CA's file,
/// another CA's file), both readable by postgres.
fn tls(primary: &mut Pg) -> (String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair};
    // Distinct names: a leaf named like its issuer is taken for self-signed.
    let named = |sans: Vec<String>, cn: &str| {
        let mut params = CertificateParams::new(sans).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params
    };
    let ca = |cn: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = named(Vec::new(), cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        (cert, key)
    };
    let (ca_cert, ca_key) = ca("telem test CA");
    let (other, _) = ca("another CA");
    let key = KeyPair::generate().unwrap();
    let cert = named(vec!["127.0.0.1".to_owned()], "primary")
        .signed_by(&key, &ca_cert, &ca_key)
        .unwrap();
    let write = |name: &str, text: &str, mode: &str| {
        let path = primary.base.join(name);
        std::fs::write(&path, text).unwrap();
        run_ok(Command::new("chown").arg("postgres:").arg(&path));
        run_ok(Command::new("chmod").arg(mode).arg(&path));
        path.display().to_string()
    };
    let crt = write("server.crt", &cert.pem(), "0644");
    let key = write("server.key", &key.serialize_pem(), "0600");
    let ca_file = write("ca.pem", &ca_cert.pem(), "0644");
    let other_ca = write("other-ca.pem", &other.pem(), "0644");
    primary.extra = format!("-c ssl=on -c ssl_cert_file={crt} -c ssl_key_file={key}");
    (ca_file, other_ca)
}

/// Wait (bounded) until `f` holds.
fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_standby_from_a_base_backup_then_promoted_and_the_old_primary_fenced() {
    if let Some(why) = unavailable() {
        if std::env::var("TELEM_SKIP_PG_TESTS").as_deref() == Ok("1") {
            eprintln!("SKIPPED (TELEM_SKIP_PG_TESTS=1): {why}");
            return;
        }
        panic!("{why}; set TELEM_SKIP_PG_TESTS=1 to skip the real PostgreSQL tests");
    }
    let mut primary = Pg::init(true);
    let (ca_file, other_ca) = tls(&mut primary);
    primary.start().unwrap();
    let admin = primary.admin();
    let repl = |op: Repl| admin.repl(&op).unwrap_or_else(|e| panic!("{e}"));

    // The replication role and its password (a verifier), the slot, some data.
    let role = ROLE.to_owned();
    assert!(!repl(Repl::RoleAttributes { role: role.clone() }).exists);
    repl(Repl::CreateReplicationRole { role: role.clone() });
    let a = repl(Repl::RoleAttributes { role: role.clone() });
    assert!(a.exists && a.replication_login);
    admin
        .call(Op::SetVerifier {
            role: role.clone(),
            verifier: scram_verifier(PASSWORD),
        })
        .unwrap();
    // A role without REPLICATION is reported as such, and granted it.
    admin
        .call(Op::CreateRole {
            role: "plain".into(),
        })
        .unwrap();
    let plain = Repl::RoleAttributes {
        role: "plain".into(),
    };
    assert!(!repl(plain.clone()).replication_login);
    repl(Repl::GrantReplication {
        role: "plain".into(),
    });
    assert!(repl(plain).replication_login);

    let slot = Repl::Slot { name: SLOT.into() };
    assert!(!repl(slot.clone()).exists);
    repl(Repl::CreateSlot { name: SLOT.into() });
    let s = repl(slot.clone());
    assert!(s.exists && !s.active && s.slot_type == "physical", "{s:?}");
    primary
        .sql("CREATE TABLE t (v text); INSERT INTO t VALUES ('before')")
        .unwrap();

    // The standby's host has a cluster of its own (a fresh install's), running.
    let standby = Pg::init(false);
    standby.start().unwrap();
    standby.sql("CREATE TABLE mine (x int)").unwrap();
    let before = std::fs::read(standby.data().join("PG_VERSION")).unwrap();
    let s = standby
        .admin()
        .repl(&Repl::Standby)
        .unwrap()
        .standby
        .unwrap();
    assert!(!s.in_recovery, "a primary before");
    assert_eq!(
        Path::new(&s.data_directory),
        standby.data(),
        "the server names its data directory"
    );

    let source = Source {
        primary: "127.0.0.1".into(),
        port: primary.port,
        role: role.clone(),
        slot: SLOT.into(),
        ca_file: Some(ca_file),
    };
    let argv = source.basebackup("/x").unwrap();
    assert!(argv
        .iter()
        .all(|a| !a.contains(PASSWORD) && !a.contains("Zq7")));

    let data = standby.data().display().to_string();
    // A primary whose certificate the CA file does not vouch for: refused by verify-full,
    // before anything of the standby's cluster changed; the passfile is gone all the same.
    let wrong = Source {
        ca_file: Some(other_ca),
        ..source.clone()
    };
    // What a run killed while pg_basebackup ran would leave behind.
    let stale = standby.base.join(".telem-deploy-pgpass-20261130T000000Z");
    std::fs::write(&stale, "127.0.0.1:1:*:x:old\n").unwrap();
    let err = rebuild(
        &LocalHost,
        "postgres",
        &data,
        &standby,
        &wrong,
        &Secret::new(PASSWORD),
        "20261201T000000Z",
    )
    .unwrap_err();
    let shown = format!("{err:?}");
    assert!(
        shown.contains("certificate verify failed") && shown.contains("is untouched"),
        "{shown}"
    );
    assert!(
        !shown.contains(PASSWORD) && !shown.contains("Zq7"),
        "{shown}"
    );
    assert!(standby.running(), "the old cluster still runs");
    assert!(standby.sql("SELECT * FROM mine").is_ok());
    assert!(!passfiles_left(&standby.base), "the passfile is removed");

    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch(PASSWORD, stop.clone());
    let done = rebuild(
        &LocalHost,
        "postgres",
        &data,
        &standby,
        &source,
        &Secret::new(PASSWORD),
        "20261202T000000Z",
    );
    stop.store(true, Ordering::SeqCst);
    let (leaks, seen) = watcher.join().unwrap();
    let done = done.unwrap_or_else(|e| panic!("{e:?}\nprimary log:\n{}", primary.log()));
    assert!(leaks.is_empty(), "the password in a process: {leaks:?}");
    eprintln!("pg_basebackup seen by the /proc watcher: {seen}");

    // The old cluster is kept aside, whole; the passfile is gone; the new one is postgres's.
    let aside = done.aside.expect("the former data directory");
    assert_eq!(aside, format!("{data}.telem-aside-20261202T000000Z"));
    assert_eq!(
        std::fs::read(Path::new(&aside).join("PG_VERSION")).unwrap(),
        before
    );
    let left: Vec<String> = std::fs::read_dir(&standby.base)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        left.iter()
            .all(|n| !n.contains("pgpass") && !n.ends_with(".telem-new")),
        "{left:?}"
    );
    assert!(
        left.contains(&"data.telem-new.failed-20261202T000000Z".to_owned()),
        "the failed run's partial copy is set aside, not deleted: {left:?}"
    );
    let meta = std::fs::metadata(standby.data()).unwrap();
    let (uid, _) = crate::host::lookup_user(&LocalHost, "postgres").unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (uid, 0o700));
    assert!(standby.data().join(STANDBY_SIGNAL).exists());
    let auto = standby.data().join("postgresql.auto.conf");
    let conf = std::fs::read_to_string(&auto).unwrap();
    assert!(
        conf.contains("primary_conninfo")
            && conf.contains(&format!("primary_slot_name = '{SLOT}'")),
        "{}",
        conf.replace(PASSWORD, "***")
    );
    assert!(
        !conf.contains("passfile") && conf.matches("primary_conninfo").count() == 1,
        "no passfile named, one connection: {}",
        conf.replace(PASSWORD, "***")
    );
    let m = std::fs::metadata(&auto).unwrap();
    assert_eq!(
        (m.uid(), m.mode() & 0o077),
        (uid, 0),
        "only postgres reads it"
    );

    // Streaming, with the row written before and one written now.
    let s = wait_streaming(&standby.admin(), &source, Duration::from_secs(60)).unwrap();
    assert!(s.streams_from("127.0.0.1", primary.port, SLOT), "{s:?}");
    assert!(repl(slot.clone()).active, "the slot is in use");
    assert_eq!(
        primary
            .sql("SELECT ssl FROM pg_stat_ssl JOIN pg_stat_replication USING (pid)")
            .unwrap(),
        "t\n",
        "the standby streams over TLS"
    );
    assert_eq!(s.configured_slot, SLOT);
    assert_eq!(
        (s.ssl_mode.as_str(), Some(&s.ssl_root_cert)),
        ("verify-full", source.ca_file.as_ref()),
        "the receiver verifies the primary"
    );
    assert!(super::follows(&s, &source));
    assert!(
        !super::follows(&s, &wrong),
        "another CA file is another configuration"
    );
    // Restarted, it names its slot at once and streams again within the check's grace.
    standby.stop().unwrap();
    standby.start().unwrap();
    let s = standby
        .admin()
        .repl(&Repl::Standby)
        .unwrap()
        .standby
        .unwrap();
    assert!(s.in_recovery && s.configured_slot == SLOT, "{s:?}");
    wait_streaming(&standby.admin(), &source, Duration::from_secs(30)).unwrap();
    assert_eq!(standby.sql("SELECT v FROM t").unwrap(), "before\n");
    assert!(
        standby.sql("SELECT * FROM mine").is_err(),
        "the old cluster's table is gone"
    );
    primary.sql("INSERT INTO t VALUES ('after')").unwrap();
    eventually(
        "the row reaches the standby",
        Duration::from_secs(30),
        || {
            standby
                .sql("SELECT count(*) FROM t WHERE v = 'after'")
                .as_deref()
                == Ok("1\n")
        },
    );
    // ALTER SYSTEM works on a standby (its own settings, e.g. listen_addresses: the copy holds
    // the primary's postgresql.auto.conf), and keeps primary_conninfo.
    standby.sql("ALTER SYSTEM SET work_mem = '8MB'").unwrap();
    let conf = std::fs::read_to_string(&auto).unwrap();
    assert!(conf.contains("work_mem = '8MB'") && conf.contains("primary_conninfo"));
    assert!(
        standby
            .sql("INSERT INTO t VALUES ('no')")
            .unwrap_err()
            .contains("read-only"),
        "a standby refuses writes"
    );
    // An active slot is not dropped (the step refuses before; the server too).
    let err = admin
        .repl(&Repl::DropSlot { name: SLOT.into() })
        .unwrap_err();
    assert!(err.0.contains("is active"), "{err}");

    // Promote: out of recovery, writes accepted.
    let promoted = standby.admin().repl(&Repl::Promote).unwrap();
    assert!(promoted.promoted);
    let s = standby
        .admin()
        .repl(&Repl::Standby)
        .unwrap()
        .standby
        .unwrap();
    assert!(!s.in_recovery);
    standby
        .sql("INSERT INTO t VALUES ('on the new primary')")
        .unwrap();

    // Fence the old primary: stopped, standby.signal and the marker; started again by
    // mistake, it is a standby (read-only), never a second primary.
    primary.stop().unwrap();
    let pdata = primary.data().display().to_string();
    assert_eq!(fence_state(&LocalHost, &pdata).unwrap(), (false, false));
    fence_files(
        &LocalHost,
        "postgres",
        &pdata,
        "promoted elsewhere",
        "20261202T000001Z",
    )
    .unwrap();
    assert_eq!(fence_state(&LocalHost, &pdata).unwrap(), (true, true));
    let marker = std::fs::read_to_string(primary.data().join(FENCE_MARKER)).unwrap();
    assert!(
        marker.starts_with("fenced by telem-deploy at 20261202T000001Z: promoted elsewhere\n"),
        "{marker}"
    );
    primary.start().unwrap();
    assert_eq!(primary.sql("SELECT pg_is_in_recovery()").unwrap(), "t\n");
    assert!(primary
        .sql("CREATE TABLE x (a int)")
        .unwrap_err()
        .contains("read-only"));
    // The primary's log never held the password.
    assert!(!primary.log().contains(PASSWORD));
}
