//! An in-memory `Host` for golden plans: files, users, packages, services and a PostgreSQL
//! cluster as plain data, and the commands telem-deploy runs interpreted against them.
//!
//! It applies too (package installs create the users and files a real package would), so the
//! "installed" fixture is made by really applying `install` to a fresh fake host. Every
//! command is logged; an unknown command fails the test, so the fake never guesses.

use std::cell::RefCell;
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
}

pub struct FakeHost {
    pub world: RefCell<World>,
    pub log: RefCell<Vec<String>>,
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n";
const GROUP: &str = "root:x:0:\n";

fn ok(stdout: &str) -> HostResult<CmdOutput> {
    Ok(CmdOutput {
        code: Some(0),
        stdout: stdout.as_bytes().to_vec(),
        stderr: Vec::new(),
    })
}

fn code(c: i32) -> HostResult<CmdOutput> {
    Ok(CmdOutput {
        code: Some(c),
        ..CmdOutput::default()
    })
}

impl FakeHost {
    /// A fresh machine of `distro`, with systemd as PID 1 or not.
    pub fn fresh(distro: &str, systemd: bool) -> FakeHost {
        let host = FakeHost {
            world: RefCell::new(World {
                next_pid: 100,
                ..World::default()
            }),
            log: RefCell::default(),
        };
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
        } else {
            host.put("/proc/1/comm", "bash\n");
        }
        // The test binary's own directories, so __pg-admin is reachable by the postgres user.
        if let Ok(exe) = std::env::current_exe() {
            for dir in exe.ancestors().skip(1) {
                host.dir(&dir.display().to_string());
            }
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

    fn dir(&self, path: &str) {
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

    fn append(&self, path: &str, line: &str) {
        let mut w = self.world.borrow_mut();
        let node = w.files.get_mut(Path::new(path)).expect("file exists");
        node.content.extend_from_slice(line.as_bytes());
    }

    fn exists(&self, path: &str) -> bool {
        self.world.borrow().files.contains_key(Path::new(path))
    }

    fn has_user(&self, name: &str) -> bool {
        let w = self.world.borrow();
        let passwd = &w.files[Path::new("/etc/passwd")].content;
        String::from_utf8_lossy(passwd)
            .lines()
            .any(|l| l.split(':').next() == Some(name))
    }

    fn add_user(&self, name: &str) {
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

    /// What installing a package does to the machine (only what the recipes rely on).
    fn install_package(&self, name: &str) {
        self.world.borrow_mut().packages.insert(name.to_owned());
        match name {
            "nginx" | "web-server-basic" => {
                self.add_user(if name == "nginx" { "www-data" } else { "httpd" });
                self.dir("/etc/nginx");
                self.dir("/etc/nginx/sites-available");
                self.dir("/etc/nginx/sites-enabled");
                self.dir("/etc/nginx/conf.d");
                self.put(
                    "/etc/nginx/sites-available/default",
                    "server { listen 80 default_server; }\n",
                );
                let link = Node {
                    kind: FileKind::Symlink("/etc/nginx/sites-available/default".into()),
                    content: vec![],
                    uid: 0,
                    gid: 0,
                    mode: 0o777,
                };
                self.world
                    .borrow_mut()
                    .files
                    .insert("/etc/nginx/sites-enabled/default".into(), link);
                if name == "web-server-basic" {
                    self.dir("/usr/share/nginx/conf");
                    self.put(
                        "/usr/share/nginx/conf/nginx.conf.example",
                        "http { include /etc/nginx/conf.d/*.conf; }\n",
                    );
                    self.world
                        .borrow_mut()
                        .files
                        .remove(Path::new("/etc/nginx/sites-enabled/default"));
                } else {
                    self.put(
                        "/etc/nginx/nginx.conf",
                        "http { include /etc/nginx/sites-enabled/*; }\n",
                    );
                }
            }
            "postgresql" | "postgresql-server" | "database-basic" => {
                self.add_user("postgres");
                if name == "postgresql" {
                    // Debian's postgresql-common creates cluster 15/main.
                    self.put("/var/lib/postgresql/15/main/PG_VERSION", "15\n");
                }
            }
            _ => {}
        }
    }

    fn pg_running(&self) -> bool {
        self.world.borrow().running.contains("postgresql")
    }

    fn pg_admin(&self, stdin: &[u8]) -> HostResult<CmdOutput> {
        let req: serde_json::Value = serde_json::from_slice(stdin).expect("pg-admin request");
        if !self.pg_running() {
            return ok(r#"{"error":"connection refused"}"#);
        }
        let op = &req["op"];
        let s = |k: &str| op[k].as_str().unwrap_or_default().to_owned();
        let mut w = self.world.borrow_mut();
        let resp = match op["op"].as_str().unwrap() {
            "role_exists" => serde_json::json!({ "exists": w.roles.contains_key(&s("role")) }),
            "database" => {
                serde_json::json!({ "exists": w.databases.contains_key(&s("name")), "owner": w.databases.get(&s("name")) })
            }
            "create_role" => {
                w.roles.insert(s("role"), None);
                serde_json::json!({})
            }
            "drop_role" => {
                w.roles.remove(&s("role"));
                serde_json::json!({})
            }
            "create_database" | "alter_database_owner" => {
                w.databases.insert(s("name"), s("owner"));
                serde_json::json!({})
            }
            "drop_database" => {
                w.databases.remove(&s("name"));
                w.schema_current = false;
                serde_json::json!({})
            }
            "set_verifier" => {
                assert!(
                    s("verifier").starts_with("SCRAM-SHA-256$"),
                    "only verifiers reach the server"
                );
                w.roles.insert(s("role"), Some(s("verifier")));
                serde_json::json!({})
            }
            other => panic!("unexpected pg-admin op {other}"),
        };
        ok(&resp.to_string())
    }

    fn service_name(unit: &str) -> String {
        unit.trim_end_matches(".service").to_owned()
    }
}

impl Host for FakeHost {
    fn run(&self, cmd: &Cmd) -> HostResult<CmdOutput> {
        self.log.borrow_mut().push(cmd.display());
        let a: Vec<&str> = cmd.argv.iter().map(String::as_str).collect();
        let prog = Path::new(a[0]).file_name().unwrap().to_str().unwrap();
        match (prog, &a[1..]) {
            (_, ["__pg-admin"]) => self.pg_admin(cmd.stdin.as_deref().unwrap_or_default()),
            ("dpkg-query", [_, _]) => {
                let w = self.world.borrow();
                ok(&w.packages.iter().map(|n| format!("{n}\tii \n")).collect::<String>())
            }
            ("rpm", ["-qa", ..]) => ok(&self.world.borrow().packages.iter().map(|p| format!("{p}\n")).collect::<String>()),
            ("apt-get", ["-s", "remove", ..]) => ok(""),
            ("apt-get" | "swupd" | "yum", rest) if rest.contains(&"remove") || rest.contains(&"bundle-remove") => {
                let mut w = self.world.borrow_mut();
                for name in rest.iter().filter(|r| !r.starts_with('-') && !r.contains('=')) {
                    w.packages.remove(*name);
                }
                ok("")
            }
            ("dpkg-query", [_, _, names @ ..]) => {
                let w = self.world.borrow();
                let out: String = names
                    .iter()
                    .filter(|n| w.packages.contains(**n))
                    .map(|n| format!("{n}\tii \n"))
                    .collect();
                ok(&out)
            }
            ("dpkg", ["--audit"]) => ok(""),
            ("swupd", ["bundle-list", ..]) => ok(&self
                .world
                .borrow()
                .packages
                .iter()
                .map(|p| format!("{p}\n"))
                .collect::<String>()),
            ("rpm", ["-q", "--qf", _, names @ ..]) => {
                let w = self.world.borrow();
                let out: String = names
                    .iter()
                    .filter(|n| w.packages.contains(**n))
                    .map(|n| format!("{n}\n"))
                    .collect();
                ok(&out)
            }
            ("apt-get", [.., "update"]) => ok(""),
            ("apt-get" | "swupd" | "yum", rest)
                if rest.contains(&"install") || rest.contains(&"bundle-add") =>
            {
                for name in rest.iter().filter(|r| {
                    !r.starts_with('-')
                        && !r.contains('=')
                        && !["install", "bundle-add"].contains(r)
                }) {
                    self.install_package(name);
                }
                ok("")
            }
            ("id", ["-u", name]) => code(if self.has_user(name) { 0 } else { 1 }),
            ("userdel", [name]) => {
                let mut w = self.world.borrow_mut();
                for f in ["/etc/passwd", "/etc/group"] {
                    let node = w.files.get_mut(Path::new(f)).expect("exists");
                    let kept: String = String::from_utf8_lossy(&node.content)
                        .lines()
                        .filter(|l| l.split(':').next() != Some(*name))
                        .map(|l| format!("{l}\n"))
                        .collect();
                    node.content = kept.into_bytes();
                }
                ok("")
            }
            ("useradd", args) => {
                self.add_user(args.last().unwrap());
                ok("")
            }
            ("grep", [.., file]) => code(if self.exists(file) { 1 } else { 2 }),
            ("selinuxenabled", []) => code(1),
            ("systemctl", ["is-active", "--quiet", unit]) => code(
                if self
                    .world
                    .borrow()
                    .running
                    .contains(&Self::service_name(unit))
                {
                    0
                } else {
                    3
                },
            ),
            ("systemctl", ["is-enabled", "--quiet", unit]) => code(
                if self
                    .world
                    .borrow()
                    .enabled
                    .contains(&Self::service_name(unit))
                {
                    0
                } else {
                    1
                },
            ),
            ("systemctl", ["start" | "restart" | "reload", unit])
                if unit.ends_with("install.service") =>
            {
                self.put("/var/lib/pgsql/data/PG_VERSION", "16\n");
                self.put("/var/lib/pgsql/data/pg_hba.conf", "local all all peer\n");
                ok("")
            }
            ("systemctl", ["start" | "restart" | "reload", unit]) => {
                self.world
                    .borrow_mut()
                    .running
                    .insert(Self::service_name(unit));
                ok("")
            }
            ("systemctl", ["stop", unit]) => {
                self.world
                    .borrow_mut()
                    .running
                    .remove(&Self::service_name(unit));
                ok("")
            }
            ("systemctl", ["enable", unit]) => {
                self.world
                    .borrow_mut()
                    .enabled
                    .insert(Self::service_name(unit));
                ok("")
            }
            ("systemctl", ["disable", unit]) => {
                self.world.borrow_mut().enabled.remove(&Self::service_name(unit));
                ok("")
            }
            ("systemctl", ["daemon-reload"]) => ok(""),
            ("postgresql-setup", ["--initdb"]) => {
                self.put("/var/lib/pgsql/data/PG_VERSION", "16\n");
                self.put(
                    "/var/lib/pgsql/data/pg_hba.conf",
                    "host all all 127.0.0.1/32 ident\n",
                );
                ok("")
            }
            ("pg_lsclusters", ["--no-header"]) => {
                let state = if self.pg_running() { "online" } else { "down" };
                ok(&format!("15  main    5432 {state} postgres /var/lib/postgresql/15/main /var/log/postgresql/postgresql-15-main.log\n"))
            }
            ("pg_ctlcluster", ["15", "main", verb]) => {
                let mut w = self.world.borrow_mut();
                match *verb {
                    "stop" => w.running.remove("postgresql"),
                    _ => w.running.insert("postgresql".into()),
                };
                ok("")
            }
            ("nginx", ["-t", "-q"]) if self.world.borrow().nginx_rejects => {
                Ok(CmdOutput { code: Some(1), stdout: vec![], stderr: b"nginx: [emerg] unexpected \"}\" in /etc/nginx/sites-enabled/telemetry.conf:3\n".to_vec() })
            }
            ("nginx", ["-t", "-q"]) => ok(""),
            ("nginx", []) => {
                self.world.borrow_mut().running.insert("nginx".into());
                let pid = self.spawn_pid();
                self.put("/run/nginx.pid", &format!("{pid}\n"));
                ok("")
            }
            ("nginx", ["-s", "reload"]) => ok(""),
            ("kill", [_, pid]) => {
                let mut w = self.world.borrow_mut();
                w.dead.insert(pid.parse().expect("numeric pid"));
                w.running.remove("telem-collector");
                ok("")
            }
            ("telem-collector", [.., "migrate", "--check"]) => {
                code(if self.world.borrow().schema_current {
                    0
                } else {
                    3
                })
            }
            ("telem-collector", [.., "migrate"]) => {
                self.world.borrow_mut().schema_current = true;
                ok("")
            }
            _ => panic!(
                "the fake host does not know the command `{}`",
                cmd.display()
            ),
        }
    }

    fn spawn_detached(&self, cmd: &Cmd, _log: &Path) -> HostResult<u32> {
        self.log
            .borrow_mut()
            .push(format!("spawn {}", cmd.display()));
        self.world
            .borrow_mut()
            .running
            .insert("telem-collector".into());
        Ok(self.spawn_pid())
    }

    fn signal(&self, pid: u32, _signal: telem_deploy::host::Signal) -> HostResult<()> {
        self.log.borrow_mut().push(format!("signal {pid}"));
        let mut w = self.world.borrow_mut();
        w.dead.insert(pid);
        w.running.remove("telem-collector");
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
            "nginx" => have("nginx") || have("web-server-basic"),
            "pg_lsclusters" | "pg_ctlcluster" => have("postgresql"),
            "pg_ctl" => have("postgresql-server") || have("database-basic"),
            _ => false,
        };
        found.then(|| PathBuf::from(format!("/usr/bin/{program}")))
    }

    fn read(&self, path: &Path) -> HostResult<Option<Vec<u8>>> {
        if let Some(pid) = path
            .to_str()
            .and_then(|p| p.strip_prefix("/proc/"))
            .and_then(|p| p.strip_suffix("/stat"))
        {
            let alive = pid
                .parse::<u32>()
                .is_ok_and(|p| p >= 100 && p < self.world.borrow().next_pid);
            return Ok(alive.then(|| format!("{pid} (daemon) S 1").into_bytes()));
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
        Ok(())
    }

    fn http_get(
        &self,
        _addr: &str,
        port: u16,
        _host: &str,
        _path: &str,
        _timeout: u64,
    ) -> HostResult<u16> {
        let w = self.world.borrow();
        if w.running.contains("nginx") && w.running.contains("telem-collector") {
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
    fn spawn_pid(&self) -> u32 {
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
