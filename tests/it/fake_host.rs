//! An in-memory `Host` for golden plans: files, users, packages, services and a PostgreSQL
//! cluster as plain data, and the commands telem-deploy runs interpreted against them.
//!
//! It applies too (package installs create the users and files a real package would), so the
//! "installed" fixture is made by really applying `install` to a fresh fake host. Every
//! command is logged; an unknown command fails the test, so the fake never guesses.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use telem_deploy::host::{Cmd, CmdOutput, FileKind, FileMeta, Host, HostError, HostResult, Owner};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: FileKind,
    pub content: Vec<u8>,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct World {
    pub files: BTreeMap<PathBuf, Node>,
    pub packages: BTreeSet<String>,
    /// Running services by unit name.
    pub running: BTreeSet<String>,
    pub enabled: BTreeSet<String>,
    pub roles: BTreeMap<String, Option<String>>,
    pub databases: BTreeMap<String, String>,
    pub schema_current: bool,
    pub next_pid: u32,
    /// `nginx -t` fails (a config nginx rejects).
    pub nginx_rejects: bool,
    /// Pids killed.
    pub dead: BTreeSet<u32>,
    /// Daemons started detached: pid → the service name they count as running.
    pub daemons: BTreeMap<u32, String>,
    /// Tables in the telemetry database owned by the postgres role (a deploy.sh database).
    pub postgres_owned: u64,
    /// Runs of the web UI's `flask db upgrade`.
    pub flask_migrated: u32,
    /// What each package depends on (installed with it; removing one removes its dependents).
    pub depends: BTreeMap<String, Vec<String>>,
    /// The package manager's removal simulation fails (a broken dpkg state, say).
    pub simulation_fails: bool,
    /// `apt-get update` fails (an unreachable mirror).
    pub refresh_fails: bool,
    /// What `fleet::identity::SCRIPT` prints (boot id, network namespace, root directory), a
    /// line each; `None`: it fails, as where one of them cannot be read.
    pub identity: Option<[String; 3]>,
    /// Another run holds the machine's run lock (`lock_run` answers busy).
    pub locked_by_another_run: bool,
    /// What `uname -m` says.
    pub machine: String,
    /// postgresql.auto.conf (`ALTER SYSTEM`): setting → value.
    pub pg_auto_conf: BTreeMap<String, String>,
    /// The settings the server runs with where they are not its defaults (the auto.conf it
    /// read when it last started or reloaded).
    pub pg_settings: BTreeMap<String, String>,
    /// Roles with LOGIN REPLICATION.
    pub replication: BTreeSet<String>,
    /// Replication slots (all physical): name → active (a standby streams through it).
    pub slots: BTreeMap<String, bool>,
    /// The cluster is in recovery (a standby).
    pub in_recovery: bool,
    /// Its WAL receiver streams from (host, port, slot).
    pub receiver: Option<(String, u16, String)>,
    /// The receiver verifies the primary (`sslmode=verify-full`) with this CA file.
    pub receiver_ca: Option<String>,
    /// The primary the last base backup copied (fake_basebackup.rs): a cluster started from
    /// that copy streams from it.
    pub upstream: Option<crate::fake_basebackup::Upstream>,
    /// A command whose shown line contains this panics (a bug in a step, for the tests of
    /// what a run does then).
    pub panic_on: Option<String>,
}

pub struct FakeHost {
    pub world: RefCell<World>,
    /// Every command run (as shown to people), detached daemon and signal.
    pub log: RefCell<Vec<String>>,
    /// Every `Host::read` and `Host::stat`, as `read PATH` and `stat PATH`.
    pub looked_at: RefCell<Vec<String>>,
    /// The fake stands for the machine telem-deploy runs on (as `LocalHost`, with `-H
    /// localhost`) unless a test makes it a remote one.
    pub local: Cell<bool>,
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n";
const GROUP: &str = "root:x:0:\n";

impl FakeHost {
    /// A fresh machine of `distro`, with systemd as PID 1 or not.
    pub fn fresh(distro: &str, systemd: bool) -> FakeHost {
        // A few real dependencies, shared with packages an operator installs (curl).
        let depends: &[(&str, &[&str])] = match distro {
            "centos" => &[
                ("nginx", &["nginx-core"]),
                ("nginx-core", &["nginx-filesystem"]),
                (
                    "postgresql-server",
                    &["postgresql", "postgresql-private-libs"],
                ),
                ("pgadmin-tools", &["postgresql-private-libs"]),
            ],
            "clr" => &[("operator-bundle", &["postgresql"])],
            _ => &[
                ("nginx", &["nginx-common", "libssl3"]),
                ("postgresql", &["postgresql-15"]),
                ("postgresql-15", &["libpq5", "postgresql-common"]),
                ("libpq5", &["libssl3", "libldap-2.5-0"]),
                ("curl", &["libcurl4"]),
                ("libcurl4", &["libldap-2.5-0", "libssl3"]),
            ],
        };
        let depends = depends
            .iter()
            .map(|(p, d)| (p.to_string(), d.iter().map(|d| d.to_string()).collect()))
            .collect();
        let host = FakeHost {
            world: RefCell::new(World {
                next_pid: 100,
                depends,
                machine: "x86_64".into(),
                ..World::default()
            }),
            log: RefCell::default(),
            looked_at: RefCell::default(),
            local: Cell::new(true),
        };
        // Directories every distro has.
        for d in [
            "/usr/local",
            "/usr/local/bin",
            "/var",
            "/var/log",
            "/var/lib",
            "/etc",
        ] {
            host.dir(d);
        }
        host.put("/etc/passwd", PASSWD);
        host.put("/etc/group", GROUP);
        let id = match distro {
            "clr" => "clear-linux-os",
            "centos" => "centos",
            other => other,
        };
        host.put("/etc/os-release", &format!("ID={id}\n"));
        if systemd {
            host.put("/proc/1/comm", "systemd\n");
            host.dir("/run/systemd/system");
            host.dir("/etc/systemd/system");
        } else {
            host.put("/proc/1/comm", "bash\n");
        }
        host
    }

    pub fn put(&self, path: &str, content: &str) {
        self.world.borrow_mut().files.insert(
            PathBuf::from(path),
            Node {
                kind: FileKind::File,
                content: content.as_bytes().to_vec(),
                uid: 0,
                gid: 0,
                mode: 0o644,
            },
        );
    }

    pub fn dir(&self, path: &str) {
        self.world.borrow_mut().files.insert(
            PathBuf::from(path),
            Node {
                kind: FileKind::Dir,
                content: Vec::new(),
                uid: 0,
                gid: 0,
                mode: 0o755,
            },
        );
    }

    pub(crate) fn append(&self, path: &str, line: &str) {
        let mut w = self.world.borrow_mut();
        let node = w.files.get_mut(Path::new(path)).expect("file exists");
        node.content.extend_from_slice(line.as_bytes());
    }

    pub(crate) fn exists(&self, path: &str) -> bool {
        self.world.borrow().files.contains_key(Path::new(path))
    }

    pub(crate) fn has_user(&self, name: &str) -> bool {
        let w = self.world.borrow();
        let passwd = &w.files[Path::new("/etc/passwd")].content;
        String::from_utf8_lossy(passwd)
            .lines()
            .any(|l| l.split(':').next() == Some(name))
    }

    pub(crate) fn add_user(&self, name: &str) {
        if self.has_user(name) {
            return;
        }
        let n =
            String::from_utf8_lossy(&self.world.borrow().files[Path::new("/etc/passwd")].content)
                .lines()
                .count() as u32;
        let id = 100 + n;
        self.append(
            "/etc/passwd",
            &format!("{name}:x:{id}:{id}::/nonexistent:/usr/sbin/nologin\n"),
        );
        self.append("/etc/group", &format!("{name}:x:{id}:\n"));
    }
}

impl Host for FakeHost {
    fn run(&self, cmd: &Cmd) -> HostResult<CmdOutput> {
        self.interpret(cmd)
    }

    fn is_local(&self) -> bool {
        self.local.get()
    }

    fn spawn_detached(&self, cmd: &Cmd, log: &Path) -> HostResult<u32> {
        self.log
            .borrow_mut()
            .push(format!("spawn {}", cmd.display()));
        // The daemon's output is appended to its log, created when missing (as the real one).
        if !self.exists(&log.display().to_string()) {
            self.put(&log.display().to_string(), "");
        }
        self.append(&log.display().to_string(), "started\n");
        let name = match Path::new(&cmd.argv[0]).file_name().and_then(|n| n.to_str()) {
            Some("uwsgi") => "telem-uwsgi",
            Some("redis-server") => "redis-server",
            _ => "telem-collector",
        };
        let pid = self.spawn_pid();
        let mut w = self.world.borrow_mut();
        w.running.insert(name.into());
        w.daemons.insert(pid, name.into());
        Ok(pid)
    }

    fn lock_run(&self) -> HostResult<Option<telem_deploy::host::RunLock>> {
        self.log.borrow_mut().push("lock_run".into());
        let busy = self.world.borrow().locked_by_another_run;
        Ok((!busy).then(|| telem_deploy::host::RunLock::new(())))
    }

    fn signal(&self, pid: u32, _signal: telem_deploy::host::Signal) -> HostResult<()> {
        self.log.borrow_mut().push(format!("signal {pid}"));
        let mut w = self.world.borrow_mut();
        w.dead.insert(pid);
        let name = w
            .daemons
            .remove(&pid)
            .unwrap_or_else(|| "telem-collector".into());
        w.running.remove(&name);
        Ok(())
    }

    fn which(&self, program: &str) -> Option<PathBuf> {
        let w = self.world.borrow();
        let have = |p: &str| w.packages.contains(p);
        let found = match program {
            "dpkg-query" | "id" | "grep" | "useradd" | "sh" | "sed" => true,
            "swupd" => {
                self.exists("/etc/os-release")
                    && String::from_utf8_lossy(&w.files[Path::new("/etc/os-release")].content)
                        .contains("clear")
            }
            "rpm" | "selinuxenabled" | "postgresql-setup" => {
                String::from_utf8_lossy(&w.files[Path::new("/etc/os-release")].content)
                    .contains("centos")
            }
            "firewall-cmd" => have("firewalld"),
            "ufw" => have("ufw"),
            "nginx" => have("nginx") || have("web-server-basic"),
            "git" => have("git"),
            "python3" => have("python3-venv") || have("python-basic") || have("python3"),
            "pg_lsclusters" | "pg_ctlcluster" => have("postgresql") && !self.is_clr(),
            "pg_ctl" => {
                have("postgresql-server")
                    || have("database-basic")
                    || (have("postgresql") && self.is_clr())
            }
            _ => false,
        };
        found.then(|| PathBuf::from(format!("/usr/bin/{program}")))
    }

    fn read(&self, path: &Path) -> HostResult<Option<Vec<u8>>> {
        self.looked_at
            .borrow_mut()
            .push(format!("read {}", path.display()));
        if let Some(pid) = path
            .to_str()
            .and_then(|p| p.strip_prefix("/proc/"))
            .and_then(|p| p.strip_suffix("/stat"))
        {
            let alive = pid.parse::<u32>().is_ok_and(|p| {
                let w = self.world.borrow();
                p >= 100 && p < w.next_pid && !w.dead.contains(&p)
            });
            // A whole stat line: state, parent, process group (its own), ..., start time
            // (its pid: a later process started later).
            return Ok(alive.then(|| {
                format!("{pid} (daemon) S 1 {pid} {pid} 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {pid}")
                    .into_bytes()
            }));
        }
        Ok(self
            .world
            .borrow()
            .files
            .get(path)
            .filter(|n| n.kind == FileKind::File)
            .map(|n| n.content.clone()))
    }

    fn stat(&self, path: &Path) -> HostResult<Option<FileMeta>> {
        self.looked_at
            .borrow_mut()
            .push(format!("stat {}", path.display()));
        Ok(self.world.borrow().files.get(path).map(|n| FileMeta {
            kind: n.kind.clone(),
            uid: n.uid,
            gid: n.gid,
            mode: n.mode,
            size: n.content.len() as u64,
        }))
    }

    fn write(&self, path: &Path, contents: &[u8], owner: &Owner) -> HostResult<()> {
        let (uid, gid) = self.ids(owner)?;
        self.world.borrow_mut().files.insert(
            path.to_owned(),
            Node {
                kind: FileKind::File,
                content: contents.to_vec(),
                uid,
                gid,
                mode: owner.mode,
            },
        );
        Ok(())
    }

    fn mkdir(&self, path: &Path, owner: &Owner) -> HostResult<()> {
        let (uid, gid) = self.ids(owner)?;
        self.world.borrow_mut().files.insert(
            path.to_owned(),
            Node {
                kind: FileKind::Dir,
                content: vec![],
                uid,
                gid,
                mode: owner.mode,
            },
        );
        Ok(())
    }

    fn chown(&self, path: &Path, owner: &Owner) -> HostResult<()> {
        let (uid, gid) = self.ids(owner)?;
        let mut w = self.world.borrow_mut();
        let n = w
            .files
            .get_mut(path)
            .ok_or_else(|| HostError(format!("chown {}: no such file", path.display())))?;
        (n.uid, n.gid, n.mode) = (uid, gid, owner.mode);
        Ok(())
    }

    fn symlink(&self, target: &Path, path: &Path) -> HostResult<()> {
        self.world.borrow_mut().files.insert(
            path.to_owned(),
            Node {
                kind: FileKind::Symlink(target.to_owned()),
                content: vec![],
                uid: 0,
                gid: 0,
                mode: 0o777,
            },
        );
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> HostResult<Vec<String>> {
        Ok(self
            .world
            .borrow()
            .files
            .keys()
            .filter(|p| p.parent() == Some(path))
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect())
    }

    fn remove(&self, path: &Path) -> HostResult<()> {
        self.world
            .borrow_mut()
            .files
            .retain(|p, _| !p.starts_with(path));
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> HostResult<()> {
        let mut w = self.world.borrow_mut();
        let n = w
            .files
            .remove(from)
            .ok_or_else(|| HostError(format!("rename {}: no such file", from.display())))?;
        w.files.insert(to.to_owned(), n);
        // A directory moves with everything under it.
        let under: Vec<PathBuf> = w
            .files
            .keys()
            .filter(|p| p.starts_with(from))
            .cloned()
            .collect();
        for p in under {
            let node = w.files.remove(&p).expect("listed");
            let rel = p.strip_prefix(from).expect("under from");
            w.files.insert(to.join(rel), node);
        }
        Ok(())
    }

    fn http_get(
        &self,
        _addr: &str,
        port: u16,
        _host: &str,
        path: &str,
        _timeout: u64,
    ) -> HostResult<u16> {
        let w = self.world.borrow();
        let app = match path.starts_with("/telemetryui/") {
            true => "telem-uwsgi",
            false => "telem-collector",
        };
        // A balancer's nginx answers through collectors on other machines, which a fake
        // machine cannot see: it answers when its site balances (e2e_inventory/ has the real
        // ones).
        let balances = w.files.iter().any(|(p, n)| {
            p.starts_with("/etc/nginx")
                && String::from_utf8_lossy(&n.content).contains("upstream telem_collectors")
        });
        if w.running.contains("nginx") && (w.running.contains(app) || balances) {
            Ok(200)
        } else {
            Err(HostError(format!(
                "connect 127.0.0.1:{port}: Connection refused"
            )))
        }
    }

    fn pg_login(
        &self,
        _addr: &str,
        _port: u16,
        user: &str,
        password: &str,
        _db: &str,
    ) -> HostResult<bool> {
        if !self.pg_running() {
            return Err(HostError("connection refused".into()));
        }
        // The fake keeps verifiers; a login succeeds when a verifier was set from this password,
        // which the fake can only tell by the marker the test put in the password file.
        let w = self.world.borrow();
        Ok(matches!(w.roles.get(user), Some(Some(_))) && password == crate::golden::PASSWORD)
    }
}

impl FakeHost {
    pub(crate) fn spawn_pid(&self) -> u32 {
        let mut w = self.world.borrow_mut();
        w.next_pid += 1;
        w.next_pid - 1
    }

    fn ids(&self, owner: &Owner) -> HostResult<(u32, u32)> {
        let (uid, _) = telem_deploy::host::lookup_user(self, &owner.user)
            .ok_or_else(|| HostError(format!("no user {}", owner.user)))?;
        let gid = telem_deploy::host::lookup_group(self, &owner.group)
            .ok_or_else(|| HostError(format!("no group {}", owner.group)))?;
        Ok((uid, gid))
    }
}
