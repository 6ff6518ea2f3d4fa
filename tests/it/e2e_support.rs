//! Helpers of the end-to-end tests in e2e.rs and interrupt.rs: sandbox + binaries, running
//! telem-deploy, checks from inside the sandbox, and a report that collects failed checks and
//! timings.

use crate::sandbox::Sandbox;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

pub const DOMAIN: &str = "localhost";
pub const DEPLOY: &str = "/opt/telem/telem-deploy";
pub const CONFIG: &str = "/etc/telemetry/collector.toml";
pub const SITE: &str = "/etc/nginx/sites-available/telemetry.conf";
pub const SITE_LINK: &str = "/etc/nginx/sites-enabled/telemetry.conf";
pub const DEFAULT_SITE: &str = "/etc/nginx/sites-enabled/default";
pub const COLLECTOR: &str = "/usr/local/bin/telem-collector";
pub const BACKUPS: &str = "/var/backups/telemetry";
/// Machine ids of the records in tests/fixtures/e2e/*.http.
pub const MACHINES: [&str; 2] = ["e2e-v2-headers-machine", "e2e-v3-json-machine"];

// ---------------------------------------------------------------------------------------------
// Sandbox and binaries

/// The built binaries, side by side (as a release ships them); `TELEM_E2E_BIN_DIR` names
/// another directory holding both (e.g. target/release, for timings of optimized builds).
pub fn binaries() -> (PathBuf, PathBuf) {
    let deploy = match std::env::var_os("TELEM_E2E_BIN_DIR") {
        Some(dir) => PathBuf::from(dir).join("telem-deploy"),
        None => PathBuf::from(env!("CARGO_BIN_EXE_telem-deploy")),
    };
    let collector = deploy.with_file_name("telem-collector");
    assert!(
        collector.is_file(),
        "{} is missing: run `cargo build --workspace` first (cargo test --workspace builds it too)",
        collector.display()
    );
    (deploy, collector)
}

/// A started sandbox with both binaries under /opt/telem/, or None (skipped).
pub fn sandbox(tag: &str, systemd: bool, rep: &mut Report) -> Option<Sandbox> {
    if let Err(why) = Sandbox::available() {
        if std::env::var("TELEM_E2E_REQUIRED").is_ok_and(|v| v == "1") {
            panic!("TELEM_E2E_REQUIRED=1 but the e2e sandbox is unavailable: {why}");
        }
        eprintln!("skipped: {why}");
        return None;
    }
    let (deploy, collector) = binaries();
    let what = if systemd {
        "start sandbox (boot systemd)"
    } else {
        "start sandbox"
    };
    let sb = rep.time(what, || Sandbox::start(tag, systemd));
    let sb = sb.unwrap_or_else(|e| panic!("{tag}: cannot start the sandbox: {e}"));
    rep.time("copy binaries in", || {
        for bin in [&deploy, &collector] {
            sb.copy_in(bin, "/opt/telem/")
                .unwrap_or_else(|e| panic!("{e}"));
        }
    });
    Some(sb)
}

/// Where [`password_file`] puts the password inside a sandbox.
pub const PASSWORD_FILE: &str = "/root/pw";

/// `install -d debian`, confirmed, with the password from [`PASSWORD_FILE`].
pub const DEBIAN_INSTALL: [&str; 7] = [
    "-a",
    "install",
    "-d",
    "debian",
    "--yes",
    "--db-password-file",
    PASSWORD_FILE,
];

/// Write `password` to /root/pw (0600, no trailing newline) through stdin, never argv.
pub fn password_file(sb: &Sandbox, password: &str) -> &'static str {
    let out = sb.exec_with_stdin(
        &["bash", "-c", "umask 077; cat > /root/pw"],
        password.as_bytes(),
    );
    assert!(
        out.status.success(),
        "writing /root/pw: {}",
        text(&out.stderr)
    );
    PASSWORD_FILE
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `bash` running `script` (fed on stdin) inside; Ok(stdout) on exit 0, else Err with both
/// streams. Not `bash -c`: in the systemd variant `systemd-run` expands `${...}` in an argv.
pub fn sh(sb: &Sandbox, script: &str) -> Result<String, String> {
    outcome(
        sb.exec_with_stdin(&["bash", "-s"], script.as_bytes()),
        script,
    )
}

pub fn outcome(out: Output, what: &str) -> Result<String, String> {
    if out.status.success() {
        Ok(text(&out.stdout).trim_end().to_string())
    } else {
        Err(format!(
            "`{what}` exited {:?}: {}{}",
            out.status.code(),
            text(&out.stdout),
            text(&out.stderr)
        ))
    }
}

/// Poll `cond` every 100 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------------
// Running telem-deploy

/// One run of telem-deploy inside the sandbox.
pub struct Run {
    pub args: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The JSON document on stdout (`--format json`), Null otherwise.
    pub json: Value,
    pub secs: f64,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    pub fn summary(&self, key: &str) -> i64 {
        self.json["summary"][key].as_i64().unwrap_or(-1)
    }

    /// Names of the steps whose status is `status`.
    pub fn steps(&self, status: &str) -> Vec<String> {
        let steps = self.json["steps"].as_array().cloned().unwrap_or_default();
        steps
            .iter()
            .filter(|s| s["status"] == status)
            .map(|s| format!("{} ({})", s["name"].as_str().unwrap_or("?"), s["changes"]))
            .collect()
    }

    /// What to show when an expectation about this run fails.
    pub fn context(&self) -> String {
        let tail: Vec<&str> = self.stderr.lines().rev().take(12).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "`telem-deploy {}` exited {:?}; failed: {:?}; changed: {:?}; stderr tail:\n  {}{}",
            self.args,
            self.code,
            self.steps("failed"),
            self.steps("changed"),
            tail.join("\n  "),
            if self.json.is_null() {
                format!(
                    "\n  stdout (not JSON): {:?}",
                    self.stdout.chars().take(600).collect::<String>()
                )
            } else {
                String::new()
            }
        )
    }
}

/// `telem-deploy -H localhost ARGS --format json` inside, with `envs` passed only through
/// environments (never an argv), `strace` recording every execve when given.
pub fn deploy_run(
    sb: &Sandbox,
    envs: &[(&str, &str)],
    args: &[&str],
    strace: Option<&Path>,
) -> Run {
    deploy_bin_run(sb, DEPLOY, envs, args, strace)
}

/// [`deploy_run`] of the telem-deploy at `bin` inside (e.g. a copy in /usr/local/bin).
pub fn deploy_bin_run(
    sb: &Sandbox,
    bin: &str,
    envs: &[(&str, &str)],
    args: &[&str],
    strace: Option<&Path>,
) -> Run {
    let mut argv = vec![bin, "-H", DOMAIN, "--format", "json"];
    argv.extend_from_slice(args);
    let started = Instant::now();
    let out = match strace {
        Some(file) => sb.strace_env(file, envs, &argv),
        None => sb.exec_env(envs, &argv),
    };
    let stdout = text(&out.stdout);
    Run {
        args: args.join(" "),
        code: out.status.code(),
        json: serde_json::from_str(&stdout).unwrap_or(Value::Null),
        stdout,
        stderr: text(&out.stderr),
        secs: started.elapsed().as_secs_f64(),
    }
}

pub fn deploy(sb: &Sandbox, args: &[&str]) -> Run {
    deploy_run(sb, &[], args, None)
}

// ---------------------------------------------------------------------------------------------
// Checks from inside

/// Send a raw HTTP request to 127.0.0.1:80 inside (bash /dev/tcp, no client needed);
/// returns (status, whole response).
pub fn http(sb: &Sandbox, request: &[u8]) -> Result<(u16, String), String> {
    let script = "exec 3<>/dev/tcp/127.0.0.1/80 || exit 7; cat >&3; timeout 20 cat <&3";
    let response = outcome(sb.exec_with_stdin(&["bash", "-c", script], request), "http")?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {response:?}"))?;
    Ok((status, response))
}

pub fn get(sb: &Sandbox, host: &str, path: &str) -> Result<(u16, String), String> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    http(sb, req.as_bytes())
}

/// Post tests/fixtures/e2e/NAME through nginx; Ok(status).
pub fn post_fixture(sb: &Sandbox, name: &str) -> Result<u16, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/e2e")
        .join(name);
    let raw = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    http(sb, &raw).map(|(status, _)| status)
}

/// /healthz through nginx answers 200 within 20 s.
pub fn healthy(sb: &Sandbox) -> Result<(), String> {
    let mut last = String::new();
    let ok = wait_until(Duration::from_secs(20), || {
        match get(sb, DOMAIN, "/healthz") {
            Ok((200, _)) => true,
            Ok((_, r)) => {
                last = r;
                false
            }
            Err(e) => {
                last = e;
                false
            }
        }
    });
    if ok {
        Ok(())
    } else {
        Err(format!("/healthz through nginx: {last}"))
    }
}

/// `psql` as the postgres OS user on the local socket, database `db`, running `script` (one
/// or more statements, fed on stdin); the rows it returns, unaligned.
pub fn sql(sb: &Sandbox, db: &str, script: &str) -> Result<String, String> {
    let argv = [
        "runuser",
        "-u",
        "postgres",
        "--",
        "psql",
        "-tAXq",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        db,
        "-f",
        "-",
    ];
    outcome(sb.exec_with_stdin(&argv, script.as_bytes()), script)
}

/// Log in as `telemetry` over TCP with password auth; the password travels in PGPASSWORD only.
pub fn tcp_login(sb: &Sandbox, password: &str) -> Result<String, String> {
    let argv = [
        "psql",
        "-h",
        "127.0.0.1",
        "-U",
        "telemetry",
        "-d",
        "telemetry",
        "-tAXc",
        "select current_user",
    ];
    outcome(
        sb.exec_env(&[("PGPASSWORD", password)], &argv),
        "psql -h 127.0.0.1",
    )
}

/// Packages dpkg has fully installed.
pub fn packages(sb: &Sandbox) -> BTreeSet<String> {
    let out = sh(sb, "dpkg-query -W -f '${db:Status-Abbrev} ${Package}\\n'").expect("dpkg-query");
    out.lines()
        .filter_map(|l| l.strip_prefix("ii "))
        .map(|p| p.trim().to_string())
        .collect()
}

/// PIDs of running processes whose comm is `comm` (no procps needed).
pub fn pids_of(sb: &Sandbox, comm: &str) -> Vec<u32> {
    let script = format!(
        "for p in /proc/[0-9]*; do [ \"$(cat $p/comm 2>/dev/null)\" = '{comm}' ] && echo ${{p#/proc/}}; done; true"
    );
    let out = sh(sb, &script).unwrap_or_default();
    out.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// The merged root, host view, of an absolute path inside.
pub fn host_path(sb: &Sandbox, inside: &str) -> PathBuf {
    sb.root().join(inside.trim_start_matches('/'))
}

pub fn exists(sb: &Sandbox, inside: &str) -> bool {
    host_path(sb, inside).symlink_metadata().is_ok()
}

/// Backup files under /var/backups/telemetry.
pub fn backups(sb: &Sandbox) -> BTreeSet<String> {
    std::fs::read_dir(host_path(sb, BACKUPS))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The numeric id of `group` in the sandbox's /etc/group.
pub fn gid_of(sb: &Sandbox, group: &str) -> Option<u32> {
    let groups = std::fs::read_to_string(host_path(sb, "/etc/group")).ok()?;
    groups.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&group))
            .then(|| f.get(2)?.parse().ok())
            .flatten()
    })
}

/// Everything an installed host must show (any service manager).
pub fn check_installed(sb: &Sandbox, rep: &mut Report, password: &str) {
    use std::os::unix::fs::MetadataExt;
    let pk = packages(sb);
    for p in ["nginx", "postgresql"] {
        rep.check(pk.contains(p), format!("package {p} is not installed"));
    }
    let audit = sh(sb, "dpkg --audit");
    rep.check(
        audit.as_deref() == Ok(""),
        format!("dpkg --audit: {audit:?}"),
    );
    let login = tcp_login(sb, password);
    rep.check(
        login.as_deref() == Ok("telemetry"),
        format!("TCP login with the password: {login:?}"),
    );
    let wrong = tcp_login(sb, "not-the-password");
    rep.check(
        wrong.is_err(),
        "TCP login with a wrong password worked (is password auth on?)",
    );
    match std::fs::metadata(host_path(sb, CONFIG)) {
        Ok(m) => {
            rep.check(
                m.mode() & 0o7777 == 0o640,
                format!("{CONFIG} mode {:o}", m.mode() & 0o7777),
            );
            rep.check(m.uid() == 0, format!("{CONFIG} owner uid {}", m.uid()));
            rep.check(
                Some(m.gid()) == gid_of(sb, "telem-collector"),
                format!("{CONFIG} gid {} is not telem-collector", m.gid()),
            );
        }
        Err(e) => rep.check(false, format!("{CONFIG}: {e}")),
    }
    let stored = std::fs::read_to_string(host_path(sb, CONFIG))
        .ok()
        .and_then(|s| s.parse::<toml::Table>().ok())
        .and_then(|t| t.get("database_password")?.as_str().map(str::to_string));
    rep.check(
        stored.as_deref() == Some(password),
        "collector.toml's database_password is not the password",
    );
    rep.check(
        exists(sb, SITE) && exists(sb, SITE_LINK),
        format!("{SITE} or {SITE_LINK} is missing"),
    );
    rep.check(
        !exists(sb, DEFAULT_SITE),
        format!("{DEFAULT_SITE} still claims default_server"),
    );
    rep.check(exists(sb, COLLECTOR), format!("{COLLECTOR} is missing"));
    // the collector runs, as its unprivileged system user
    let users: Vec<String> = pids_of(sb, "telem-collector")
        .iter()
        .map(|p| sh(sb, &format!("stat -c %U /proc/{p}")).unwrap_or_default())
        .collect();
    rep.check(
        !users.is_empty() && users.iter().all(|u| u == "telem-collector"),
        format!("telem-collector processes run as {users:?}, want [\"telem-collector\"]"),
    );
    // nginx answers on port 80 for any name (default_server), and proxies /healthz.
    let any = get(sb, "some-other-name.example", "/");
    let by_nginx = any
        .as_ref()
        .is_ok_and(|(s, r)| *s < 500 && r.contains("Server: nginx"));
    rep.check(by_nginx, format!("nginx on port 80: {any:?}"));
    if let Err(e) = healthy(sb) {
        rep.check(false, e);
    }
}

/// Post both fixture records through nginx; each must be 201 and stored.
pub fn post_records(sb: &Sandbox, rep: &mut Report) {
    for (file, machine) in [
        ("v2-headers.http", MACHINES[0]),
        ("v3-json.http", MACHINES[1]),
    ] {
        let status = post_fixture(sb, file);
        rep.check(
            status == Ok(201),
            format!("POST {file} through nginx: {status:?}"),
        );
        let q = format!("select count(*) from records where machine_id = '{machine}'");
        let n = sql(sb, "telemetry", &q);
        rep.check(
            n.as_deref() == Ok("1"),
            format!("rows of {machine} after POST {file}: {n:?}"),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Failures and timings

/// Collects failed checks (reported together at the end) and phase timings.
pub struct Report {
    test: &'static str,
    timings: Vec<(String, f64)>,
    failures: Vec<String>,
}

impl Report {
    pub fn new(test: &'static str) -> Report {
        Report {
            test,
            timings: Vec::new(),
            failures: Vec::new(),
        }
    }

    pub fn time<T>(&mut self, phase: &str, f: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let t = f();
        self.timing(phase, started.elapsed().as_secs_f64());
        t
    }

    pub fn timing(&mut self, phase: &str, secs: f64) {
        eprintln!("[{}] {phase}: {secs:.2} s", self.test);
        self.timings.push((phase.to_string(), secs));
    }

    pub fn check(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            let what = what.into();
            eprintln!("[{}] FAILED: {what}", self.test);
            self.failures.push(what);
        }
    }

    /// A telem-deploy run that must succeed; returns it for further checks.
    pub fn expect_ok(&mut self, phase: &str, run: Run) -> Run {
        self.timing(phase, run.secs);
        self.check(
            run.ok() && run.summary("failed") == 0,
            format!("{phase}: {}", run.context()),
        );
        run
    }

    /// A run that must report nothing changed (a converged host).
    pub fn expect_converged(&mut self, phase: &str, run: Run) -> Run {
        let run = self.expect_ok(phase, run);
        let changed = run.summary("changed");
        self.check(
            changed == 0,
            format!(
                "{phase}: {changed} changed, want 0: {:?}",
                run.steps("changed")
            ),
        );
        run
    }

    /// Take over another report's timings and failures (e.g. one per thread).
    pub fn absorb(&mut self, other: Report) {
        let test = other.test;
        self.timings.extend(
            other
                .timings
                .into_iter()
                .map(|(phase, secs)| (format!("{test}: {phase}"), secs)),
        );
        self.failures
            .extend(other.failures.into_iter().map(|f| format!("{test}: {f}")));
    }

    pub fn finish(self) {
        eprintln!("[{}] timings:", self.test);
        for (phase, secs) in &self.timings {
            eprintln!("[{}]   {secs:8.2} s  {phase}", self.test);
        }
        if !self.failures.is_empty() {
            panic!(
                "{}: {} check(s) failed:\n- {}",
                self.test,
                self.failures.len(),
                self.failures.join("\n- ")
            );
        }
    }
}
