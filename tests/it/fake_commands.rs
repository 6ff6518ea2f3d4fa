//! The commands the fake host understands, interpreted against its `World`: package
//! managers (installing creates the users and files a real package would), systemctl,
//! pg_ctlcluster, nginx, psql (fake_psql.rs) and the guards recipes use. An unknown command
//! fails the test, so the fake never guesses.

use std::path::Path;

use telem_deploy::host::upload;
use telem_deploy::host::{Cmd, CmdOutput, FileKind, HostError, HostResult};

use crate::fake_host::{FakeHost, Node};

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
    /// What `host::upload::inspect`'s script prints, as the real `uname -m`, `sha256sum` and
    /// `stat -c '%U %G %a %u %g %s'` would: the file is hashed here, never read by the caller.
    fn inspect(&self, path: &str) -> String {
        let w = self.world.borrow();
        let mut out = format!("{}\n", w.machine);
        match w.files.get(Path::new(path)) {
            None => {}
            Some(n) if n.kind != FileKind::File => out.push_str("-\n"),
            Some(n) => {
                let name = |file: &str, id: u32| {
                    String::from_utf8_lossy(&w.files[Path::new(file)].content)
                        .lines()
                        .map(|l| l.split(':').collect::<Vec<_>>())
                        .find(|f| f.len() >= 3 && f[2] == id.to_string())
                        .map_or_else(|| "UNKNOWN".to_owned(), |f| f[0].to_owned())
                };
                out.push_str(&format!("{}  -\n", upload::sha256_hex(&n.content)));
                out.push_str(&format!(
                    "{} {} {:o} {} {} {}\n",
                    name("/etc/passwd", n.uid),
                    name("/etc/group", n.gid),
                    n.mode,
                    n.uid,
                    n.gid,
                    n.content.len()
                ));
            }
        }
        out
    }

    /// Run `cmd` against the world (`Host::run` of the fake).
    pub(crate) fn interpret(&self, cmd: &Cmd) -> HostResult<CmdOutput> {
        self.log.borrow_mut().push(cmd.display());
        let panic_on = self.world.borrow().panic_on.clone();
        if let Some(p) = panic_on.filter(|p| cmd.display().contains(p.as_str())) {
            panic!("the test makes `{p}` panic");
        }
        let a: Vec<&str> = cmd.argv.iter().map(String::as_str).collect();
        let prog = Path::new(a[0]).file_name().unwrap().to_str().unwrap();
        match (prog, &a[1..]) {
            ("psql", args) => self.psql(cmd, args),
            ("pg_basebackup", args) => self.pg_basebackup(cmd, args),
            ("dpkg-query", ["-W", format]) if format.contains("${Depends}") => {
                let w = self.world.borrow();
                let line = |p: &String| {
                    let deps = w.depends.get(p).map(|d| d.join(", ")).unwrap_or_default();
                    format!("ii \t{p}\t\t{deps}\t\n")
                };
                ok(&w.packages.iter().map(line).collect::<String>())
            }
            ("dpkg-query", [_, _]) => {
                let w = self.world.borrow();
                ok(&w.packages.iter().map(|n| format!("{n}\tii \n")).collect::<String>())
            }
            ("rpm", ["-qa", ..]) => ok(&self.world.borrow().packages.iter().map(|p| format!("{p}\n")).collect::<String>()),
            ("apt-get" | "yum" | "swupd", [..]) if self.world.borrow().simulation_fails && (a.contains(&"-s") || a.contains(&"--assumeno") || a.iter().any(|x| x.starts_with("--has-dep"))) => {
                Ok(CmdOutput { code: Some(100), stdout: Vec::new(), stderr: b"E: Unmet dependencies. Try 'apt --fix-broken install'".to_vec() })
            }
            ("apt-get", ["-s", "remove", names @ ..]) => ok(&self
                .removal_closure(names)
                .iter()
                .map(|p| format!("Remv {p} [1.0-1]\n"))
                .collect::<String>()),
            ("yum", ["remove", "--assumeno", _, names @ ..]) => {
                let gone = self.removal_closure(names);
                let mut out = String::from("Dependencies resolved.\nRemoving:\n");
                for p in names.iter().filter(|n| gone.contains(**n)) {
                    out.push_str(&format!(" {p}  x86_64  1.0-1.el9  @appstream  1 k\n"));
                }
                out.push_str("Removing dependent packages:\n");
                for p in gone.iter().filter(|p| !names.contains(&p.as_str())) {
                    out.push_str(&format!(" {p}  x86_64  1.0-1.el9  @appstream  1 k\n"));
                }
                out.push_str("\nTransaction Summary\nOperation aborted.\n");
                Ok(CmdOutput { code: Some(1), stdout: out.into_bytes(), stderr: Vec::new() })
            }
            ("swupd", ["bundle-list", "--quiet", dep]) if dep.starts_with("--has-dep=") => {
                let b = &dep["--has-dep=".len()..];
                let mut gone = self.removal_closure(&[b]);
                gone.remove(b);
                ok(&gone.iter().map(|p| format!("{p}\n")).collect::<String>())
            }
            ("apt-get" | "swupd" | "yum", rest) if rest.contains(&"remove") || rest.contains(&"bundle-remove") => {
                let names: Vec<&str> = rest
                    .iter()
                    .filter(|r| !r.starts_with('-') && !r.contains('=') && !["remove", "bundle-remove"].contains(r))
                    .copied()
                    .collect();
                // apt and dnf take the dependents along; swupd refuses to (without --force).
                let gone = self.removal_closure(&names);
                if prog == "swupd" && gone.len() > names.len() {
                    return Ok(CmdOutput { code: Some(1), stdout: Vec::new(), stderr: b"Error: bundle is required by another bundle".to_vec() });
                }
                let mut w = self.world.borrow_mut();
                for name in gone {
                    w.packages.remove(&name);
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
            ("swupd", ["bundle-list", "--all", "--quiet"]) => ok(&clr_catalogue()),
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
            ("apt-get", [.., "update"]) if self.world.borrow().refresh_fails => Ok(CmdOutput {
                code: Some(100),
                stdout: Vec::new(),
                stderr: b"E: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease".to_vec(),
            }),
            ("apt-get", [.., "update"]) => ok(""),
            ("uname", ["-m"]) => ok(&format!("{}\n", self.world.borrow().machine)),
            ("sh", ["-c", script, "sh", path]) if *script == upload::INSPECT_SCRIPT => {
                ok(&self.inspect(path))
            }
            ("sh", ["-c", script]) if *script == telem_deploy::fleet::identity::SCRIPT => {
                match &self.world.borrow().identity {
                    Some(lines) => ok(&(lines.join("\n") + "\n")),
                    None => code(1),
                }
            }
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
            // Guards written as shell pipelines (`sh -c "ufw status | grep ..."`): not done yet.
            ("sh", ["-c", _]) => code(1),
            ("rpm", ["-q", name]) => code(if self.world.borrow().packages.contains(*name) { 0 } else { 1 }),
            ("firewall-cmd", ["--state"]) => ok("running\n"),
            ("firewall-cmd", [q]) if q.starts_with("--query-service=") => code(1),
            ("ufw", ["status"]) => ok("Status: active\n"),
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
            ("systemctl", [verb @ ("start" | "restart" | "reload"), unit]) => {
                if Self::service_name(unit) == "postgresql" {
                    self.pg_read_config(verb);
                    if *verb == "restart" || (*verb == "start" && !self.pg_running()) {
                        self.pg_start_from_data_dir();
                    }
                }
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
            ("systemctl", ["disable", "--now", unit]) => {
                let mut w = self.world.borrow_mut();
                w.enabled.remove(&Self::service_name(unit));
                w.running.remove(&Self::service_name(unit));
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
            ("pg_lsclusters", ["--no-header"]) if !self.world.borrow().packages.contains("postgresql") => {
                Err(HostError("cannot run `pg_lsclusters`: No such file or directory (os error 2)".into()))
            }
            ("pg_lsclusters", ["--no-header"]) => {
                let state = if self.pg_running() { "online" } else { "down" };
                ok(&format!("15  main    5432 {state} postgres /var/lib/postgresql/15/main /var/log/postgresql/postgresql-15-main.log\n"))
            }
            ("pg_ctlcluster", ["15", "main", verb]) => {
                if *verb != "stop" {
                    self.pg_read_config(verb);
                }
                if *verb == "restart" || (*verb == "start" && !self.pg_running()) {
                    self.pg_start_from_data_dir();
                }
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
            ("nginx", [] | ["-e", _]) => {
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
            // A backup before resetdb or uninstall drops the database.
            ("pg_dump", [.., "-f", path, _database]) => {
                self.put(path, "PGDMP\n");
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
            ("timeout", ["--kill-after=10", _, "git", "-c", "safe.directory=*", rest @ ..]) => {
                self.git(rest)
            }
            ("tar", ["-tvf", _]) => ok("drwxr-xr-x u/g 0 2020-02-14 22:30 telemetrics-backend/\n\
                drwxr-xr-x u/g 0 2020-02-14 22:30 telemetrics-backend/telemetryui/\n\
                -rw-r--r-- u/g 19 2020-02-14 22:30 telemetrics-backend/telemetryui/requirements.txt\n"),
            ("find", ["-P", dir, "-type", "l", "-printf", _]) => {
                // `%P\0%l\0` of every symlink under dir
                let w = self.world.borrow();
                let mut out = Vec::new();
                for (path, node) in &w.files {
                    if let (Ok(rel), FileKind::Symlink(target)) = (path.strip_prefix(dir), &node.kind) {
                        out.extend_from_slice(rel.to_string_lossy().as_bytes());
                        out.push(0);
                        out.extend_from_slice(target.to_string_lossy().as_bytes());
                        out.push(0);
                    }
                }
                Ok(CmdOutput { code: Some(0), stdout: out, stderr: Vec::new() })
            }
            ("python3", ["-c", _]) => ok("3.11\n"),
            ("tar", ["-xf", tarball, ..]) if tarball.contains("corrupt") => code(2),
            ("tar", ["-xf", _, "-C", dest, ..]) => {
                self.fake_checkout(dest);
                ok("")
            }
            ("chown", ["-R", "--no-dereference", _, _]) => ok(""),
            ("python3", ["-m", "venv", path]) => {
                self.dir(path);
                self.put(&format!("{path}/bin/python"), "");
                self.put(&format!("{path}/bin/pip"), "");
                ok("")
            }
            ("pip", ["install", ..]) => {
                let venv = Path::new(a[0]).parent().and_then(Path::parent).unwrap();
                self.put(&format!("{}/bin/flask", venv.display()), "");
                ok("")
            }
            ("flask", ["db", "upgrade"]) => {
                assert!(cmd.dir.is_some() && cmd.user.is_some(), "flask runs in the app's directory, as the web server's user");
                assert!(cmd.env.iter().any(|(k, _)| k == "POSTGRES_PASSWORD"), "flask gets the password in its environment");
                self.world.borrow_mut().flask_migrated += 1;
                ok("")
            }
            _ => panic!(
                "the fake host does not know the command `{}`",
                cmd.display()
            ),
        }
    }

    /// Is this a Clear Linux host (its bundles are named like other distros' packages)?
    pub(crate) fn is_clr(&self) -> bool {
        self.world
            .borrow()
            .files
            .get(Path::new("/etc/os-release"))
            .is_some_and(|n| String::from_utf8_lossy(&n.content).contains("clear"))
    }

    /// What installing a package does to the machine (only what the recipes rely on).
    /// The installed packages removing `names` removes: them and, transitively, what depends
    /// on them (as apt and dnf do).
    pub(crate) fn removal_closure(&self, names: &[&str]) -> std::collections::BTreeSet<String> {
        let w = self.world.borrow();
        let mut gone: std::collections::BTreeSet<String> = names
            .iter()
            .filter(|n| w.packages.contains(**n))
            .map(|n| n.to_string())
            .collect();
        loop {
            let more: Vec<String> = w
                .packages
                .iter()
                .filter(|p| !gone.contains(*p))
                .filter(|p| {
                    w.depends
                        .get(*p)
                        .is_some_and(|d| d.iter().any(|d| gone.contains(d)))
                })
                .cloned()
                .collect();
            if more.is_empty() {
                return gone;
            }
            gone.extend(more);
        }
    }

    pub(crate) fn install_package(&self, name: &str) {
        let deps = self
            .world
            .borrow()
            .depends
            .get(name)
            .cloned()
            .unwrap_or_default();
        for d in deps {
            if !self.world.borrow().packages.contains(&d) {
                self.install_package(&d);
            }
        }
        self.world.borrow_mut().packages.insert(name.to_owned());
        match name {
            "nginx" | "web-server-basic" => {
                let clr = self.is_clr();
                self.add_user(if clr {
                    "httpd"
                } else if name == "nginx" {
                    "www-data"
                } else {
                    "httpd"
                });
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
                if clr {
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
                if name == "postgresql" && !self.is_clr() {
                    // Debian's postgresql-common creates cluster 15/main, its config in /etc.
                    let postgres = telem_deploy::host::lookup_user(self, "postgres")
                        .expect("postgres")
                        .0;
                    for (d, mode) in [
                        ("/var/lib/postgresql", 0o755),
                        ("/var/lib/postgresql/15", 0o755),
                        ("/var/lib/postgresql/15/main", 0o700),
                    ] {
                        self.world.borrow_mut().files.insert(
                            d.into(),
                            Node {
                                kind: FileKind::Dir,
                                content: vec![],
                                uid: postgres,
                                gid: postgres,
                                mode,
                            },
                        );
                    }
                    self.put("/var/lib/postgresql/15/main/PG_VERSION", "15\n");
                    // (a cluster's own, kept when there is one)
                    if !self.exists(crate::fake_psql::HBA_FILE) {
                        self.put(
                            crate::fake_psql::HBA_FILE,
                            "local all postgres peer\nlocal all all peer\nhost all all 127.0.0.1/32 scram-sha-256\n",
                        );
                    }
                }
            }
            "redis-server" | "redis" | "valkey" | "redis-native" => self.add_user("redis"),
            _ => {}
        }
    }

    /// The server (re)reads postgresql.auto.conf: all of it when it starts, on a reload only
    /// what a reload applies (a restart applies listen_addresses).
    fn pg_read_config(&self, verb: &str) {
        let mut w = self.world.borrow_mut();
        let auto = w.pg_auto_conf.clone();
        let keep: Vec<(String, String)> = match verb {
            "reload" => w
                .pg_settings
                .iter()
                .filter(|(n, _)| crate::fake_psql::restart_applies(n))
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect(),
            _ => Vec::new(),
        };
        w.pg_settings = auto
            .into_iter()
            .filter(|(n, _)| verb != "reload" || !crate::fake_psql::restart_applies(n))
            .chain(keep)
            .collect();
    }

    pub(crate) fn pg_running(&self) -> bool {
        self.world.borrow().running.contains("postgresql")
    }

    fn service_name(unit: &str) -> String {
        unit.trim_end_matches(".service").to_owned()
    }
}

impl FakeHost {
    /// `git -c safe.directory=* ARGS`: ls-remote answers a revision derived from repo and ref,
    /// a clone checks out a tree with the web UI.
    fn git(&self, args: &[&str]) -> HostResult<CmdOutput> {
        match args {
            ["ls-remote", "--heads", "--tags", "--", repo, source] => {
                let rev = Self::revision(repo, source);
                ok(&format!("{rev}\trefs/heads/{source}\n"))
            }
            ["clone", .., "--branch", source, "--", repo, dest] => {
                self.fake_checkout(dest);
                // A remote repository whose requirements file is a symlink out of it.
                if repo.contains("evil-link") {
                    let link = Node {
                        kind: FileKind::Symlink("../../../../etc/shadow".into()),
                        content: vec![],
                        uid: 0,
                        gid: 0,
                        mode: 0o777,
                    };
                    let path = format!("{dest}/telemetryui/requirements.txt");
                    self.world.borrow_mut().files.insert(path.into(), link);
                }
                self.dir(&format!("{dest}/.git"));
                self.put(&format!("{dest}/.git/HEAD"), &Self::revision(repo, source));
                ok("")
            }
            ["-C", dir, "rev-parse", "HEAD"] => {
                let head = self.world.borrow().files[Path::new(&format!("{dir}/.git/HEAD"))]
                    .content
                    .clone();
                ok(&format!("{}\n", String::from_utf8_lossy(&head)))
            }
            _ => panic!("the fake host does not know `git {}`", args.join(" ")),
        }
    }

    /// A 40-hex revision of `repo` at `source` (stable across runs).
    pub(crate) fn revision(repo: &str, source: &str) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (repo, source).hash(&mut h);
        let x = h.finish();
        format!("{x:016x}{x:016x}{:08x}", x as u32)
    }

    fn fake_checkout(&self, dest: &str) {
        self.dir(dest);
        self.dir(&format!("{dest}/telemetryui"));
        self.put(
            &format!("{dest}/telemetryui/requirements.txt"),
            "fixture-flask==0.1\n",
        );
    }
}

/// Every bundle of Clear Linux's last releases (`swupd bundle-list --all`), from the shims'
/// catalogue.
fn clr_catalogue() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/shims/catalog/clr-2025.txt"
    );
    std::fs::read_to_string(path)
        .expect("the Clear Linux catalogue")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .map(|n| format!("{n}\n"))
        .collect()
}
