//! `Host` for a machine reached over SSH, through the system OpenSSH client.
//!
//! The system client, so `~/.ssh/config`, the agent, `known_hosts` and `ProxyJump` work as
//! users expect. One master connection per target (`ControlMaster`, socket in a private 0700
//! directory removed on drop); every operation is one `ssh` run through duct over it, running
//! a POSIX shell script (see [`script`]) with POSIX tools only (`cat`, `dd`, `stat`, `mkdir`,
//! `mv`, `chmod`, `chown`, `ln`, `rm`), since minimal targets have no python or curl.
//!
//! Never: accept an unknown host key (`StrictHostKeyChecking=yes`, a clear error instead), put
//! a secret in an argv or environment (local or remote: they go on stdin), or let a lost
//! connection pass for a command's exit status (see [`script::wrap`]).

mod agent;
mod explain;
mod kept;
mod pg_forward;
mod private_dir;
mod run_lock;
pub mod script;
mod settings;
mod stat;
mod target;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

pub use settings::{SshSettings, DEFAULT_PROBE};
pub use target::{Target, TargetError};

use super::{Cmd, CmdOutput, FileMeta, Host, HostError, HostResult, Owner, RunLock, Signal};
use explain::{explain_connect_failure, explain_lost};
use private_dir::PrivateDir;
use script::{quote, quote_path, Script};
pub use settings::check_options;
use stat::parse_stat;

/// A target reached over one multiplexed SSH connection.
#[derive(Debug)]
pub struct SshHost {
    target: Target,
    settings: SshSettings,
    dir: PrivateDir,
    /// Ends every wrapped script's stderr (random per connection, see [`script::wrap`]).
    marker: String,
    round_trips: AtomicU64,
    /// The session of the target's agent, once it offers one (see [`agent`]).
    agent: Mutex<AgentState>,
    /// /etc/passwd, /etc/group and /etc/os-release as last read, while no script ran since.
    kept: kept::KeptFiles,
    /// The PostgreSQL servers forwarded into the private directory so far.
    forwards: pg_forward::Forwards,
}

/// Whether commands go to a running agent.
#[derive(Default)]
enum AgentState {
    /// Not asked yet.
    #[default]
    Untried,
    /// The target had none to offer when `round_trips` was this (asked again later: the
    /// collector may have been installed since).
    Absent(u64),
    Running(Box<agent::Agent>),
}

impl std::fmt::Debug for AgentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AgentState::Untried => "Untried",
            AgentState::Absent(_) => "Absent",
            AgentState::Running(_) => "Running",
        })
    }
}

/// Round trips between two offers of the agent while the target has none.
const AGENT_RETRY: u64 = 24;

impl SshHost {
    /// Open the master connection (authentication and host key check happen here, so their
    /// errors come before anything else runs).
    pub fn connect(target: Target, settings: SshSettings) -> HostResult<SshHost> {
        check_options(&settings.options)?;
        let dir = PrivateDir::create()?;
        let marker = {
            use rand::Rng;
            let n: u64 = rand::thread_rng().gen();
            format!("telem-deploy-exit-{n:016x}")
        };
        let host = SshHost {
            target,
            settings,
            dir,
            marker,
            round_trips: AtomicU64::new(0),
            agent: Mutex::default(),
            kept: kept::KeptFiles::default(),
            forwards: pg_forward::Forwards::default(),
        };
        host.start_master()?;
        Ok(host)
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The private directory holding the control socket (removed on drop).
    pub fn private_dir(&self) -> &Path {
        &self.dir.0
    }

    /// How many times `ssh` was run (each is one round trip over the connection).
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    fn control_path(&self) -> PathBuf {
        self.dir.0.join("cm")
    }

    /// The options every `ssh` run starts with. The first value ssh sees for an option wins,
    /// so ours come before the user's (which come before `~/.ssh/config`), and the defaults a
    /// user may change come last.
    fn base_args(&self) -> Vec<String> {
        let mut args: Vec<String> = Vec::new();
        let mut o = |opt: String| args.extend(["-o".to_owned(), opt]);
        o(format!("ControlPath={}", self.control_path().display()));
        o("StrictHostKeyChecking=yes".to_owned());
        if self.settings.batch_mode {
            o("BatchMode=yes".to_owned());
        }
        for opt in &self.settings.options {
            o(opt.clone());
        }
        o("LogLevel=ERROR".to_owned());
        o("ConnectTimeout=15".to_owned());
        // A dead link (cable, veth, firewall) is noticed in about 45 s, not hours.
        o("ServerAliveInterval=15".to_owned());
        o("ServerAliveCountMax=3".to_owned());
        args
    }

    fn ssh(&self, extra: &[&str], remote: Option<&str>) -> duct::Expression {
        let mut args = self.base_args();
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(self.target.ssh_args());
        if let Some(remote) = remote {
            args.push("--".to_owned());
            args.push(remote.to_owned());
        }
        let mut expr = duct::cmd("ssh", args);
        // ssh and a ProxyCommand inherit no secret (`SendEnv` could pass one on).
        for key in super::local::inherited_secrets() {
            expr = expr.env_remove(key);
        }
        expr
    }

    fn start_master(&self) -> HostResult<()> {
        let log = self.dir.0.join("master.log");
        let persist = format!("ControlPersist={}", self.settings.persist_secs);
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let out = self
            .ssh(
                &["-o", "ControlMaster=yes", "-o", &persist, "-f", "-N", "-T"],
                None,
            )
            .stdin_null()
            .stdout_null()
            // A file, not a pipe: the master forked into the background would hold a pipe open.
            .stderr_path(&log)
            .unchecked()
            .run()
            .map_err(|e| HostError(format!("cannot run ssh: {e}")))?;
        if out.status.success() {
            return Ok(());
        }
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        Err(HostError(explain_connect_failure(&self.target, &said)))
    }

    /// Run a script to its end over the connection (through the agent when the target runs
    /// one); `Err` when the connection failed.
    pub fn run_script(&self, script: &Script) -> HostResult<CmdOutput> {
        self.kept.script(|| self.run_script_now(script))
    }

    fn run_script_now(&self, script: &Script) -> HostResult<CmdOutput> {
        if let Some(out) = self.through_agent(&agent::Request::Script(script))? {
            return Ok(out);
        }
        let wrapped = script::wrap(&script.body, &self.marker);
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let out = self
            .session(&wrapped)
            .stdin_bytes(script.stdin.clone())
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .map_err(|e| HostError(format!("cannot run ssh: {e}")))?;
        match script::unwrap(&out.stderr, &self.marker) {
            Some((code, stderr)) => Ok(CmdOutput {
                code: Some(code),
                stdout: out.stdout,
                stderr,
            }),
            None => Err(HostError(explain_lost(&self.target, &out.stderr))),
        }
    }

    /// `ssh` running `remote` in a session over the master connection, which reconnects on
    /// its own (`auto`) when the master has gone (idle, or a lost link).
    fn session(&self, remote: &str) -> duct::Expression {
        let persist = format!("ControlPersist={}", self.settings.persist_secs);
        self.ssh(
            &["-o", "ControlMaster=auto", "-o", &persist, "-T"],
            Some(remote),
        )
    }

    /// Whether commands go to the target's agent: `agent` in the settings, and its collector
    /// offers one.
    pub fn uses_agent(&self) -> bool {
        matches!(
            *self.agent.lock().unwrap_or_else(|e| e.into_inner()),
            AgentState::Running(_)
        )
    }

    /// The protocol version of the running agent (1: scripts, reads and stats; 2: `which` and
    /// `list_dir` too, without a process), `None` without one.
    pub fn agent_protocol(&self) -> Option<u32> {
        match &*self.agent.lock().unwrap_or_else(|e| e.into_inner()) {
            AgentState::Running(a) => Some(a.version()),
            _ => None,
        }
    }

    /// `req` answered by the agent, when the target runs one (started here when it is time to
    /// ask); `None` to run it in a session of its own.
    fn through_agent(&self, req: &agent::Request) -> HostResult<Option<CmdOutput>> {
        if !self.settings.agent {
            return Ok(None);
        }
        // One command at a time goes to the agent; one issued while it is busy (another
        // thread's) gets a session of its own rather than waiting.
        let mut state = match self.agent.try_lock() {
            Ok(state) => state,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Ok(None),
        };
        let trips = self.round_trips();
        let ask = match *state {
            AgentState::Untried => true,
            AgentState::Absent(at) => trips >= at + AGENT_RETRY,
            AgentState::Running(_) => false,
        };
        if ask {
            self.round_trips.fetch_add(1, Ordering::Relaxed);
            let expr = self.session(&format!(
                "{} exec {} agent",
                agent::ASK,
                quote(&self.settings.probe)?
            ));
            *state = match agent::Agent::start(expr, &self.dir.0.join("agent.log")) {
                Some(a) => AgentState::Running(Box::new(a)),
                None => AgentState::Absent(trips + 1),
            };
        }
        let AgentState::Running(agent) = &mut *state else {
            return Ok(None);
        };
        // An agent of an older protocol runs the request's script instead.
        if !agent.answers(req) {
            return Ok(None);
        }
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        match agent.call(req) {
            Ok(a) => Ok(Some(CmdOutput {
                code: Some(a.code),
                stdout: a.stdout,
                stderr: a.stderr,
            })),
            Err(_) => {
                // Its session is gone: the next command asks again (ssh reconnects).
                *state = AgentState::Absent(0);
                let said = std::fs::read(self.dir.0.join("agent.log")).unwrap_or_default();
                Err(HostError(explain_lost(&self.target, &said)))
            }
        }
    }

    /// Like [`run_script`](Self::run_script) for a script of our own: a wrapper setup failure
    /// becomes an error, the exit status is returned.
    fn sh(&self, body: String, stdin: Vec<u8>) -> HostResult<CmdOutput> {
        self.run_script(&Script { body, stdin })
    }

    /// A script of our own that must succeed (exit 0), with `what` naming it in errors.
    fn sh_ok(
        &self,
        what: &str,
        path: &Path,
        body: String,
        stdin: Vec<u8>,
    ) -> HostResult<CmdOutput> {
        let out = self.sh(body, stdin)?;
        if out.success() {
            return Ok(out);
        }
        Err(HostError(format!(
            "{what} {} on {}: {}",
            path.display(),
            self.target,
            out.tail().trim()
        )))
    }

    /// `chown` and `chmod` lines for a path already quoted.
    fn owner_lines(q: &str, owner: &Owner) -> HostResult<String> {
        Ok(format!(
            "chown -h {}:{} {q} && chmod {:o} {q}",
            quote(&owner.user)?,
            quote(&owner.group)?,
            owner.mode
        ))
    }
}

impl Drop for SshHost {
    fn drop(&mut self) {
        // The agent ends first (its input closed, its session's end waited for): the master's
        // exit would tear the session down under it, and the agent could outlive this run on
        // the target for a moment (after `uninstall`, a process of a deleted binary). Then the
        // master is told to exit.
        let mut agent = std::mem::take(self.agent.get_mut().unwrap_or_else(|e| e.into_inner()));
        if let AgentState::Running(a) = &mut agent {
            a.finish(AGENT_END_LIMIT);
        }
        // Ends the master; the private directory goes with `self.dir`.
        let _ = self
            .ssh(&["-O", "exit"], None)
            .stdin_null()
            .stdout_null()
            .stderr_null()
            .unchecked()
            .run();
        drop(agent);
    }
}

/// A temporary sibling of `path` (same directory, so the final `mv` is a rename).
fn temp_sibling(path: &Path) -> HostResult<PathBuf> {
    use rand::Rng;
    let name = path
        .file_name()
        .ok_or_else(|| HostError(format!("{} names no file", path.display())))?
        .to_string_lossy()
        .into_owned();
    let n: u32 = rand::thread_rng().gen();
    Ok(path.with_file_name(format!(".{name}.telem-tmp-{n:08x}")))
}

const MISSING: i32 = 3;

/// How long the end of a run waits for the agent's session to end before it kills the local
/// `ssh` (a link that died is not waited for longer).
const AGENT_END_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// `http_get` where the collector (its `probe`) is not installed: `bash -c THIS telem-probe
/// ADDR PORT PATH HOST` sends one GET and prints the answer's status code.
const BASH_HTTP_GET: &str = r#"exec 3<>"/dev/tcp/$1/$2" || exit 7
printf 'GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$3" "$4" >&3
IFS=' ' read -r _ code _ <&3 && printf '%s\n' "$code""#;

impl Host for SshHost {
    fn round_trips(&self) -> Option<u64> {
        Some(SshHost::round_trips(self))
    }

    fn run(&self, cmd: &Cmd) -> HostResult<CmdOutput> {
        let out = self.run_script(&script::command(cmd)?)?;
        if out.code == Some(script::SETUP_FAILED) {
            if let Some(why) = script::setup_failure(&out.stderr) {
                return Err(HostError(format!("{} on {}", why, self.target)));
            }
        }
        Ok(out)
    }

    fn lock_run(&self) -> HostResult<Option<RunLock>> {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        run_lock::take(
            self.session(&run_lock::script()?),
            &self.dir.0.join("lock.log"),
            self.target.to_string(),
        )
    }

    fn spawn_detached(&self, cmd: &Cmd, log: &Path) -> HostResult<u32> {
        let out = self.run_script(&script::detached(cmd, log)?)?;
        if let Some(why) = script::setup_failure(&out.stderr) {
            return Err(HostError(format!("{why} on {}", self.target)));
        }
        let text = out.stdout_text();
        match (out.success(), text.trim().parse()) {
            (true, Ok(pid)) => Ok(pid),
            _ => Err(HostError(format!(
                "cannot start `{}` on {}: {}",
                cmd.argv[0],
                self.target,
                out.tail().trim()
            ))),
        }
    }

    fn signal(&self, pid: u32, signal: Signal) -> HostResult<()> {
        let sig = match signal {
            Signal::Term => "TERM",
            Signal::Kill => "KILL",
            Signal::Usr2 => "USR2",
        };
        // A process that is gone already is fine.
        let body = format!("kill -s {sig} {pid} 2>/dev/null || [ ! -d /proc/{pid} ]");
        self.sh_ok("kill", Path::new(&format!("pid {pid}")), body, Vec::new())
            .map(drop)
    }

    fn which(&self, program: &str) -> Option<PathBuf> {
        let q = quote(program).ok()?;
        if program.starts_with('-') {
            return None;
        }
        // The executable file on PATH, as `which` finds it locally: not `command -v`, which
        // names a shell builtin (`test`, `kill`) by its name alone.
        let body = format!(
            "p={q}\nset -f\ncase $p in */*) [ -f \"$p\" ] && [ -x \"$p\" ] && printf '%s\\n' \"$p\"; exit;; esac\nIFS=:\nfor d in $PATH; do\n  [ -n \"$d\" ] || d=.\n  if [ -f \"$d/$p\" ] && [ -x \"$d/$p\" ]; then printf '%s\\n' \"$d/$p\"; exit 0; fi\ndone\nexit 1"
        );
        let out = match self.through_agent(&agent::Request::Which(program)).ok()? {
            Some(out) => out,
            None => self.sh(body, Vec::new()).ok()?,
        };
        let path = out.stdout_text().trim_end_matches('\n').to_owned();
        (out.success() && path.starts_with('/')).then(|| PathBuf::from(path))
    }

    fn read(&self, path: &Path) -> HostResult<Option<Vec<u8>>> {
        let q = quote_path(path)?;
        // A file that vanishes while read (a /proc/PID file) reads as missing, as locally.
        let body = format!(
            "[ -e {q} ] || exit {MISSING}\ncat -- {q} || {{ [ -e {q} ] || exit {MISSING}; exit 1; }}"
        );
        if let Some(kept) = self.kept.get(path) {
            return Ok(kept);
        }
        self.kept.read(path, || {
            let out = match self.through_agent(&agent::Request::Read(path))? {
                Some(out) => out,
                None => self.sh(body, Vec::new())?,
            };
            match out.code {
                Some(0) => Ok(Some(out.stdout)),
                Some(MISSING) => Ok(None),
                _ => Err(HostError(format!(
                    "read {} on {}: {}",
                    path.display(),
                    self.target,
                    out.tail().trim()
                ))),
            }
        })
    }

    fn stat(&self, path: &Path) -> HostResult<Option<FileMeta>> {
        let q = quote_path(path)?;
        let body = format!(
            "[ -e {q} ] || [ -L {q} ] || exit {MISSING}\nstat -c '%f %u %g %s' -- {q} || exit 1\nif [ -L {q} ]; then readlink -- {q} || exit 1; fi"
        );
        let out = match self.through_agent(&agent::Request::Stat(path))? {
            Some(out) => out,
            None => self.sh(body, Vec::new())?,
        };
        match out.code {
            Some(0) => parse_stat(path, &out.stdout_text()).map(Some),
            Some(MISSING) => Ok(None),
            _ => Err(HostError(format!(
                "stat {} on {}: {}",
                path.display(),
                self.target,
                out.tail().trim()
            ))),
        }
    }

    fn write(&self, path: &Path, contents: &[u8], owner: &Owner) -> HostResult<()> {
        let tmp = quote_path(&temp_sibling(path)?)?;
        let q = quote_path(path)?;
        // Created 0600 (umask), on disk (`conv=fsync`, as LocalHost's sync_all), owner and
        // mode set before the rename makes it visible.
        let body = format!(
            "umask 077\n{{ dd of={tmp} bs=65536 conv=fsync && {} && mv -f -T -- {tmp} {q}; }} || {{ rm -f -- {tmp}; exit 1; }}",
            Self::owner_lines(&tmp, owner)?
        );
        self.sh_ok("write", path, body, contents.to_vec()).map(drop)
    }

    fn mkdir(&self, path: &Path, owner: &Owner) -> HostResult<()> {
        let q = quote_path(path)?;
        let body = format!("mkdir -p -- {q} && {}", Self::owner_lines(&q, owner)?);
        self.sh_ok("mkdir", path, body, Vec::new()).map(drop)
    }

    fn chown(&self, path: &Path, owner: &Owner) -> HostResult<()> {
        let q = quote_path(path)?;
        self.sh_ok("chown", path, Self::owner_lines(&q, owner)?, Vec::new())
            .map(drop)
    }

    fn symlink(&self, target: &Path, path: &Path) -> HostResult<()> {
        let tmp = quote_path(&temp_sibling(path)?)?;
        let body = format!(
            "{{ ln -s -- {} {tmp} && mv -f -T -- {tmp} {}; }} || {{ rm -f -- {tmp}; exit 1; }}",
            quote_path(target)?,
            quote_path(path)?
        );
        self.sh_ok("symlink", path, body, Vec::new()).map(drop)
    }

    fn remove(&self, path: &Path) -> HostResult<()> {
        let body = format!("rm -rf -- {}", quote_path(path)?);
        self.sh_ok("remove", path, body, Vec::new()).map(drop)
    }

    fn list_dir(&self, path: &Path) -> HostResult<Vec<String>> {
        let q = quote_path(path)?;
        // NUL-separated, so any name survives; hidden names too, but not . and ..
        let body = format!(
            "[ -e {q} ] || exit 0\ncd -- {q} || exit 1\nfor f in * .[!.]* ..?*; do if [ -e \"$f\" ] || [ -L \"$f\" ]; then printf '%s\\0' \"$f\"; fi; done"
        );
        let out = match self.through_agent(&agent::Request::ListDir(path))? {
            Some(out) if out.success() => out,
            Some(out) => {
                return Err(HostError(format!(
                    "list {} on {}: {}",
                    path.display(),
                    self.target,
                    out.tail().trim()
                )))
            }
            None => self.sh_ok("list", path, body, Vec::new())?,
        };
        let mut names: Vec<String> = out
            .stdout
            .split(|b| *b == 0)
            .filter(|n| !n.is_empty())
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    fn rename(&self, from: &Path, to: &Path) -> HostResult<()> {
        let body = format!("mv -f -T -- {} {}", quote_path(from)?, quote_path(to)?);
        self.sh_ok("rename", from, body, Vec::new()).map(drop)
    }

    fn http_get(
        &self,
        addr: &str,
        port: u16,
        host_header: &str,
        path: &str,
        timeout_secs: u64,
    ) -> HostResult<u16> {
        let host = if addr.contains(':') {
            format!("[{addr}]")
        } else {
            addr.to_owned()
        };
        let url = format!("http://{host}:{port}{path}");
        let cmd = Cmd::new([
            self.settings.probe.clone(),
            "probe".to_owned(),
            "--host-header".to_owned(),
            host_header.to_owned(),
            "--timeout".to_owned(),
            timeout_secs.to_string(),
            "--any-status".to_owned(),
            url.clone(),
        ]);
        let mut out = self.run(&cmd)?;
        if out.code == Some(127) {
            // No collector on this machine (an inventory's balancer): one plain request
            // through bash's /dev/tcp (bash is essential on the Debian family, the only one
            // whose recipes have a balancer).
            out = self.run(&Cmd::new([
                "timeout".to_owned(),
                timeout_secs.max(1).to_string(),
                "bash".to_owned(),
                "-c".to_owned(),
                BASH_HTTP_GET.to_owned(),
                "telem-probe".to_owned(),
                addr.to_owned(),
                port.to_string(),
                path.to_owned(),
                host_header.to_owned(),
            ]))?;
        }
        // `probe --any-status` (and the bash fallback) print the status code of any answer
        // and exit 0.
        match (out.success(), out.stdout_text().trim().parse()) {
            (true, Ok(code)) => Ok(code),
            _ => Err(HostError(format!(
                "{url} on {}: {}",
                self.target,
                match out.code {
                    Some(127) => format!(
                        "{} is not installed there yet (it answers the health probe), nor are bash and timeout",
                        self.settings.probe
                    ),
                    _ => out.tail().trim().to_owned(),
                }
            ))),
        }
    }

    fn pg_login(
        &self,
        addr: &str,
        port: u16,
        user: &str,
        password: &str,
        database: &str,
    ) -> HostResult<bool> {
        self.login_through_forward(addr, port, user, password, database)
    }
}
