//! A real PostgreSQL for the tests, started by the harness itself: `initdb` into a temp
//! directory owned by the `postgres` OS user (initdb refuses root), its own unix socket
//! directory and a free TCP port, stopped on drop. The server runs under a small shell that
//! shuts it down and removes the directory when its stdin closes, so the shared cluster of a
//! test binary also goes away when the test process exits (statics are never dropped).
//!
//! Without the PostgreSQL server binaries the tests fail with a clear message, unless
//! `TELEM_SKIP_PG_TESTS=1`, in which case they print why they skip.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Directory holding initdb, postgres and pg_isready: the newest /usr/lib/postgresql/*/bin,
/// else the first PATH entry that has initdb.
fn find_bin_dir() -> Option<PathBuf> {
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
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").exists() && dir.join("postgres").exists())
    })
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// `cmd` run as the `postgres` user when we are root, as ourselves otherwise.
fn as_db_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free TCP port")
}

/// One running (or stopped) test cluster.
pub struct PgCluster {
    bin: PathBuf,
    base: PathBuf,
    pub port: u16,
    child: Option<(Child, ChildStdin)>,
    databases: AtomicU32,
    /// `-c name=value` settings after the harness's own (a later one wins).
    settings: Vec<String>,
}

/// Returns (after printing why) when skipping is requested; fails the test otherwise.
fn skip_or_fail(why: &str) {
    if std::env::var("TELEM_SKIP_PG_TESTS").as_deref() == Ok("1") {
        eprintln!("SKIPPED (TELEM_SKIP_PG_TESTS=1): {why}");
    } else {
        panic!(
            "{why}\nInstall them (apt-get install -y postgresql) or set TELEM_SKIP_PG_TESTS=1 to skip the database tests."
        );
    }
}

impl PgCluster {
    /// A fresh cluster of our own, or `None` when skipping.
    pub fn start() -> Option<Self> {
        Self::start_with(|_| Vec::new())
    }

    /// A fresh cluster whose server also gets the `name=value` settings `setup` returns.
    /// `setup` may write files (certificates, an hba file) into the directory it is given;
    /// they are handed to the database user, mode 0600, before the server starts.
    pub fn start_with(setup: impl FnOnce(&Path) -> Vec<String>) -> Option<Self> {
        let Some(bin) = find_bin_dir() else {
            skip_or_fail("PostgreSQL server binaries (initdb, postgres) not found under /usr/lib/postgresql/*/bin or PATH");
            return None;
        };
        let base = tempfile::Builder::new()
            .prefix("telem-pg-")
            .tempdir()
            .expect("creating a temp dir")
            .keep();
        if is_root() {
            let ids = |flag: &str| -> u32 {
                let out = Command::new("id")
                    .args([flag, "postgres"])
                    .output()
                    .expect("running id");
                assert!(
                    out.status.success(),
                    "there is no `postgres` user to run the test cluster as"
                );
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse()
                    .expect("numeric id")
            };
            std::os::unix::fs::chown(&base, Some(ids("-u")), Some(ids("-g")))
                .expect("chown temp dir");
        }
        std::fs::create_dir(base.join("sock")).ok();
        if is_root() {
            let status = Command::new("chown")
                .args(["postgres:", base.join("sock").to_str().unwrap()])
                .status()
                .unwrap();
            assert!(status.success());
        }
        let out = as_db_user(&bin.join("initdb"))
            .args(["-D", base.join("data").to_str().unwrap()])
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ])
            .output()
            .expect("running initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let before: Vec<_> = std::fs::read_dir(&base)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        let settings = setup(&base);
        for entry in std::fs::read_dir(&base).unwrap().flatten() {
            let path = entry.path();
            if before.contains(&path) {
                continue;
            }
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .expect("chmod a setup file");
            if is_root() {
                let status = Command::new("chown")
                    .args(["postgres:", path.to_str().unwrap()])
                    .status()
                    .unwrap();
                assert!(status.success(), "chown {}", path.display());
            }
        }
        let mut cluster = Self {
            bin,
            base,
            port: free_port(),
            child: None,
            databases: AtomicU32::new(0),
            settings,
        };
        cluster.run();
        Some(cluster)
    }

    /// The cluster shared by every test of this binary (`None` when skipping).
    pub fn shared() -> Option<&'static PgCluster> {
        static SHARED: OnceLock<Option<PgCluster>> = OnceLock::new();
        SHARED.get_or_init(PgCluster::start).as_ref()
    }

    pub fn socket_dir(&self) -> PathBuf {
        self.base.join("sock")
    }

    /// Starts the server and waits (bounded) until it accepts connections.
    pub fn run(&mut self) {
        let script = r#"
            bin=$1 base=$2 port=$3
            shift 3
            "$bin/postgres" -D "$base/data" -k "$base/sock" -p "$port" \
                -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 \
                "$@" >"$base/postgres.log" 2>&1 &
            pid=$!
            read cmd
            kill -INT "$pid"
            wait "$pid"
            [ "$cmd" = keep ] || rm -rf "$base"
        "#;
        let mut child = as_db_user(Path::new("sh"))
            .args(["-c", script, "sh"])
            .arg(&self.bin)
            .arg(&self.base)
            .arg(self.port.to_string())
            .args(self.settings.iter().flat_map(|s| ["-c", s.as_str()]))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting postgres");
        let stdin = child.stdin.take().unwrap();
        self.child = Some((child, stdin));
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args([
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                ])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ready {
                return;
            }
            if let Some((child, _)) = &mut self.child {
                if let Ok(Some(status)) = child.try_wait() {
                    let log =
                        std::fs::read_to_string(self.base.join("postgres.log")).unwrap_or_default();
                    panic!("postgres exited ({status}):\n{log}");
                }
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not become ready within {READY_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server, keeping its data for [`PgCluster::run`].
    pub fn stop(&mut self) {
        self.shutdown(b"keep\n");
    }

    /// `pg_ctl stop -m immediate`: the postmaster and every backend quit at once, without a
    /// checkpoint (crash recovery runs on the next start), keeping the data for
    /// [`PgCluster::run`]. Returns once the server is gone.
    pub fn stop_immediate(&mut self) {
        let out = as_db_user(&self.bin.join("pg_ctl"))
            .args(["stop", "-m", "immediate", "-w", "-t", "30", "-D"])
            .arg(self.base.join("data"))
            .output()
            .expect("running pg_ctl");
        assert!(
            out.status.success(),
            "pg_ctl stop -m immediate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The wrapper shell is still waiting on its stdin: let it go, keeping the data.
        self.stop();
    }

    fn shutdown(&mut self, command: &[u8]) {
        if let Some((mut child, mut stdin)) = self.child.take() {
            let _ = stdin.write_all(command);
            drop(stdin);
            let deadline = Instant::now() + READY_TIMEOUT;
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Sends `signal` (STOP, CONT) to the postmaster and all its children: a hung database.
    pub fn signal_all(&self, signal: &str) {
        let pid_file =
            std::fs::read_to_string(self.base.join("data/postmaster.pid")).expect("postmaster.pid");
        let postmaster = pid_file.lines().next().unwrap().trim().to_string();
        let mut pids = vec![postmaster.clone()];
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1));
            if ppid == Some(postmaster.as_str()) {
                pids.push(entry.file_name().to_string_lossy().to_string());
            }
        }
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .args(&pids)
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pids:?}");
    }

    /// The cluster's directory (its data, socket and the files `start_with`'s setup wrote).
    pub fn dir(&self) -> &Path {
        &self.base
    }

    /// A key=value connection string for the superuser over the unix socket (which a cluster
    /// whose pg_hba takes TCP connections over TLS only still trusts).
    pub fn socket_url(&self, database: &str) -> String {
        format!(
            "host={} port={} user=postgres dbname={database}",
            self.socket_dir().display(),
            self.port
        )
    }

    /// A URL for the superuser over TCP.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates an empty database for one test and returns its URL.
    pub async fn create_database(&self) -> String {
        let n = self.databases.fetch_add(1, Ordering::SeqCst);
        let name = format!("test_{}_{n}", std::process::id());
        let client = connect(&self.url("postgres")).await;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("CREATE DATABASE");
        self.url(&name)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.shutdown(b"remove\n");
        } else {
            let _ = std::fs::remove_dir_all(&self.base);
        }
    }
}

/// A plain driver connection (the test's own view of the database).
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    tokio::spawn(connection);
    client
}
