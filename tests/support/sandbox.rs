//! Fresh-Debian-root sandboxes for end-to-end tests (std only).
//!
//! A thin wrapper around `tests/sandbox/sandbox.sh` (see `tests/sandbox/README.md`). Include it
//! from an integration test with
//!
//! ```ignore
//! #[path = "support/sandbox.rs"]
//! mod sandbox;
//! use sandbox::Sandbox;
//!
//! #[test]
//! fn dry_run_changes_nothing() {
//!     if let Err(why) = Sandbox::available() {
//!         eprintln!("skipped: {why}");
//!         return;
//!     }
//!     let sb = Sandbox::start("dryrun", false).expect("sandbox");
//!     sb.copy_in(env!("CARGO_BIN_EXE_telem-deploy").as_ref(), "/usr/local/bin/telem-deploy").unwrap();
//!     let out = sb.exec(&["telem-deploy", "-a", "install", "-H", "localhost", "--dry-run"]);
//!     assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
//!     assert_eq!(sb.changes().unwrap(), vec!["A /usr/local/bin/telem-deploy"]);
//! } // Drop stops the sandbox
//! ```
//!
//! Everything runs as root on the host; `available()` says why not when it cannot.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// Options for [`Sandbox::start_with`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Boot systemd as PID 1 (`systemd-nspawn --boot`) instead of a plain PID-1 reaper.
    pub systemd: bool,
    /// Relay 127.0.0.1:3142 inside to the Debian mirror, so `apt-get update` works
    /// (without it apt installs offline from the pre-downloaded cache only).
    pub apt_relay: bool,
}

/// A running sandbox; stopped (killed, unmounted, removed) on drop.
#[derive(Debug)]
pub struct Sandbox {
    name: String,
    systemd: bool,
    root: PathBuf,
    upper: PathBuf,
    timeout: Duration,
    stopped: bool,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);
static AVAILABLE: OnceLock<Result<(), String>> = OnceLock::new();

/// Path of `tests/sandbox/<file>`.
pub fn script(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sandbox")
        .join(file)
}

/// A sandbox name unique per process and call: `<tag>-<pid>-<n>` (tag sanitised, shortened).
pub fn unique_name(tag: &str) -> String {
    let mut clean: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    clean.truncate(32);
    let clean = clean.trim_matches('-');
    let clean = if clean.is_empty() { "t" } else { clean };
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{clean}-{}-{n}", std::process::id())
}

fn script_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(script("sandbox.sh")).args(args);
    // Sandboxes whose owner process is gone are reaped by `sandbox.sh gc`.
    cmd.env("TELEM_SANDBOX_OWNER", std::process::id().to_string());
    cmd
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim_end().to_string()
}

fn run_checked(mut cmd: Command, what: &str) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: cannot run: {e}"))?;
    if out.status.success() {
        Ok(lossy(&out.stdout))
    } else {
        Err(format!(
            "{what} failed ({}): {}",
            out.status,
            lossy(&out.stderr)
        ))
    }
}

/// Run `cmd`, feeding `stdin`, collecting stdout/stderr, killing it after `timeout`.
fn run_with_timeout(mut cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child: Child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Output {
                status: failed_status(),
                stdout: Vec::new(),
                stderr: format!("sandbox: cannot run sandbox.sh: {e}").into_bytes(),
            }
        }
    };
    // Readers append to shared buffers, so output is kept even if a process left running
    // (a daemon that did not redirect its stdio) holds a pipe open after the command returned.
    let reader = |mut r: Box<dyn Read + Send>| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<()>();
        let sink = Arc::clone(&buf);
        thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                match r.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink.lock().expect("buffer").extend_from_slice(&chunk[..n]),
                }
            }
            let _ = tx.send(());
        });
        (buf, rx)
    };
    let (out_buf, out_done) = reader(Box::new(child.stdout.take().expect("stdout")));
    let (err_buf, err_done) = reader(Box::new(child.stderr.take().expect("stderr")));
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let data = data.to_vec();
        thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().unwrap_or_else(|_| failed_status());
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(_) => break failed_status(),
        }
    };
    let grace_end = Instant::now() + Duration::from_secs(2);
    let left = || grace_end.saturating_duration_since(Instant::now());
    let out_closed = out_done.recv_timeout(left()).is_ok();
    let err_closed = err_done.recv_timeout(left()).is_ok();
    let stdout = out_buf.lock().expect("buffer").clone();
    let mut stderr = err_buf.lock().expect("buffer").clone();
    if !(out_closed && err_closed) {
        stderr.extend_from_slice(
            b"sandbox: a process left running still holds stdout/stderr open (redirect daemons' stdio)\n",
        );
    }
    if timed_out {
        stderr.extend_from_slice(format!("sandbox: timed out after {timeout:?}\n").as_bytes());
    }
    Output {
        status,
        stdout,
        stderr,
    }
}

fn failed_status() -> ExitStatus {
    Command::new("false").status().expect("run false")
}

impl Sandbox {
    /// Ok when sandboxes can run here (root, Linux, the cached base is built or buildable), else
    /// the reason, for a test to print `skipped: <reason>`. Builds/refreshes the base once per
    /// process (the first call may take about a minute) and reaps sandboxes of dead test runs.
    /// Set `TELEM_SANDBOX_SKIP=1` to skip on purpose.
    pub fn available() -> Result<(), String> {
        AVAILABLE.get_or_init(check_available).clone()
    }

    /// Start a sandbox named `unique_name(tag)`; `systemd` boots systemd as PID 1.
    pub fn start(tag: &str, systemd: bool) -> Result<Sandbox, String> {
        Self::start_with(
            tag,
            Options {
                systemd,
                ..Options::default()
            },
        )
    }

    /// Start a sandbox with explicit [`Options`].
    pub fn start_with(tag: &str, opts: Options) -> Result<Sandbox, String> {
        Self::available()?;
        let name = unique_name(tag);
        let mut args = vec!["start", name.as_str()];
        if opts.systemd {
            args.push("--systemd");
        }
        if opts.apt_relay {
            args.push("--apt-relay");
        }
        run_checked(script_cmd(&args), &format!("sandbox.sh start {name}"))?;
        let mut sb = Sandbox {
            root: PathBuf::new(),
            upper: PathBuf::new(),
            name,
            systemd: opts.systemd,
            timeout: default_timeout(),
            stopped: false,
        };
        sb.root = PathBuf::from(run_checked(
            script_cmd(&["root", &sb.name]),
            "sandbox.sh root",
        )?);
        sb.upper = PathBuf::from(run_checked(
            script_cmd(&["upper", &sb.name]),
            "sandbox.sh upper",
        )?);
        Ok(sb)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_systemd(&self) -> bool {
        self.systemd
    }

    /// Per-command timeout (default 900 s, or `TELEM_SANDBOX_EXEC_TIMEOUT` seconds).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Run a command inside as root with a clean environment (PATH, HOME=/root, LANG=C.UTF-8),
    /// stdin from /dev/null. The exit code of the command is `Output::status`.
    pub fn exec(&self, args: &[&str]) -> Output {
        self.exec_full(&[], args, None)
    }

    /// Like [`exec`](Self::exec), feeding `stdin`.
    pub fn exec_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        self.exec_full(&[], args, Some(stdin))
    }

    /// Like [`exec`](Self::exec) with extra environment variables. Values are passed through the
    /// environment of the helper processes, never on any command line.
    pub fn exec_env(&self, envs: &[(&str, &str)], args: &[&str]) -> Output {
        self.exec_full(envs, args, None)
    }

    /// `bash -c script` inside (a convenience for multi-step checks).
    pub fn sh(&self, script: &str) -> Output {
        self.exec(&["bash", "-c", script])
    }

    /// The general form of `exec`.
    pub fn exec_full(&self, envs: &[(&str, &str)], args: &[&str], stdin: Option<&[u8]>) -> Output {
        self.run_inside("exec", None, envs, args, stdin)
    }

    /// Run a command like `exec_env`, with every `execve` of its process tree (daemons it starts
    /// included, until it returns) recorded by host `strace -f -e trace=execve -s 4096` into
    /// `out`. In the systemd variant the container's PID 1 is traced, which covers the command and
    /// everything systemd starts meanwhile.
    pub fn strace(&self, out: &Path, args: &[&str]) -> Output {
        self.strace_env(out, &[], args)
    }

    pub fn strace_env(&self, out: &Path, envs: &[(&str, &str)], args: &[&str]) -> Output {
        self.run_inside("strace", Some(out), envs, args, None)
    }

    /// Like `strace`, recording the system calls of `trace` (strace's `-e trace=` syntax)
    /// instead of `execve`.
    pub fn strace_calls(&self, out: &Path, trace: &str, args: &[&str]) -> Output {
        let mut cmd = script_cmd(&["strace", &self.name]);
        cmd.arg(out).env("TELEM_SANDBOX_STRACE_TRACE", trace);
        cmd.arg("--").args(args);
        run_with_timeout(cmd, None, self.timeout)
    }

    fn run_inside(
        &self,
        sub: &str,
        out: Option<&Path>,
        envs: &[(&str, &str)],
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Output {
        let mut cmd = script_cmd(&[sub, &self.name]);
        if let Some(out) = out {
            cmd.arg(out);
        }
        for (k, v) in envs {
            cmd.arg("-e").arg(k).env(k, v);
        }
        cmd.arg("--").args(args);
        run_with_timeout(cmd, stdin, self.timeout)
    }

    /// Copy a host file (mode preserved) or directory into the sandbox at `dst` (an absolute
    /// path inside; an existing directory or a trailing `/` copies into it). Owner root.
    pub fn copy_in(&self, src: &Path, dst: &str) -> Result<(), String> {
        let src = src.to_str().ok_or("copy_in: non-UTF-8 path")?;
        run_checked(
            script_cmd(&["cp", &self.name, src, dst]),
            &format!("copy_in {src} {dst}"),
        )
        .map(|_| ())
    }

    /// The merged root as seen from the host (API file systems such as /proc, /dev, /run and the
    /// apt archive cache are mounted only inside the sandbox and are not visible here).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The overlay upper dir: exactly the files created, changed or deleted (whiteouts) since
    /// the start.
    pub fn upper_dir(&self) -> &Path {
        &self.upper
    }

    /// `A|M|D /path` lines for everything in the upper dir (directories that merely hold a change
    /// are not listed). Empty after a no-op in the plain variant.
    pub fn changes(&self) -> Result<Vec<String>, String> {
        let out = run_checked(script_cmd(&["changes", &self.name]), "sandbox.sh changes")?;
        Ok(out
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }

    /// Host PID of the sandbox's PID 1 (for `nsenter --target PID --net ...`).
    pub fn pid(&self) -> Result<u32, String> {
        run_checked(script_cmd(&["pid", &self.name]), "sandbox.sh pid")?
            .parse()
            .map_err(|e| format!("sandbox.sh pid: {e}"))
    }

    /// Stop now (also done on drop). Idempotent.
    pub fn stop(&mut self) -> Result<(), String> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        run_checked(
            script_cmd(&["stop", &self.name]),
            &format!("sandbox.sh stop {}", self.name),
        )
        .map(|_| ())
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if std::env::var_os("TELEM_SANDBOX_KEEP").is_some() {
            eprintln!(
                "sandbox: keeping {} (TELEM_SANDBOX_KEEP); stop it with: {} stop {}",
                self.name,
                script("sandbox.sh").display(),
                self.name
            );
            return;
        }
        if let Err(e) = self.stop() {
            eprintln!("sandbox: {e}");
        }
    }
}

fn default_timeout() -> Duration {
    let secs = std::env::var("TELEM_SANDBOX_EXEC_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(900);
    Duration::from_secs(secs)
}

fn check_available() -> Result<(), String> {
    if std::env::var_os("TELEM_SANDBOX_SKIP").is_some_and(|v| !v.is_empty() && v != "0") {
        return Err("TELEM_SANDBOX_SKIP is set".into());
    }
    if !cfg!(target_os = "linux") {
        return Err("sandboxes need Linux".into());
    }
    // /proc/self is owned by the effective uid of this process.
    {
        use std::os::unix::fs::MetadataExt;
        let uid = std::fs::metadata("/proc/self")
            .map_err(|e| format!("no /proc: {e}"))?
            .uid();
        if uid != 0 {
            return Err(format!("not root (uid {uid}); the sandbox needs root"));
        }
    }
    if !script("sandbox.sh").is_file() {
        return Err(format!("{} is missing", script("sandbox.sh").display()));
    }
    for (bin, why) in [("bash", "bash"), ("mount", "mount")] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {bin}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| !s.success())
            .unwrap_or(true)
        {
            return Err(format!("{why} is not installed"));
        }
    }
    if !Path::new("/proc/self/ns/pid").exists() {
        return Err("no PID namespaces in this kernel".into());
    }
    // Reap sandboxes left behind by crashed test runs, then build or refresh the base.
    let _ = script_cmd(&["gc"]).stdin(Stdio::null()).output();
    let started = Instant::now();
    let mut base = Command::new("bash");
    base.arg(script("base.sh"));
    let out = base
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run base.sh: {e}"))?;
    if !out.status.success() {
        let err = lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(8).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!(
            "building the sandbox base failed: {}",
            tail.join(" | ")
        ));
    }
    if started.elapsed() > Duration::from_secs(5) {
        eprintln!(
            "sandbox: base built in {:.0?}:\n{}",
            started.elapsed(),
            lossy(&out.stderr)
        );
    }
    Ok(())
}
