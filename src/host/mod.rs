//! The one boundary between telem-deploy and the machine it provisions.
//!
//! Everything that reads or changes the host goes through [`Host`]: running a command (with
//! optional stdin, as another user), reading, writing (atomically, with owner and mode),
//! linking and removing files, and a few probes (HTTP, a PostgreSQL login). Tests plug a fake
//! in here; [`ssh::SshHost`] reaches a remote machine through it. Nothing outside
//! `host::local` and `host::ssh` may call `std::process` or write system files.

pub mod elf;
mod local;
pub mod ssh;
pub mod upload;
mod users;

use std::fmt;
use std::path::{Path, PathBuf};

pub use local::LocalHost;
pub use users::{lookup_group, lookup_user};

/// A command to run: argv (never through a shell), optional stdin, extra environment.
#[derive(Clone, Default)]
pub struct Cmd {
    pub argv: Vec<String>,
    /// Bytes fed to stdin (how secrets reach a child: never argv or env).
    pub stdin: Option<Vec<u8>>,
    pub env: Vec<(String, String)>,
    /// Run as this user (and its primary group), dropping root.
    pub user: Option<String>,
    /// Working directory (default: the caller's; `/` for commands run as another user).
    pub dir: Option<String>,
}

impl Cmd {
    pub fn new<I, S>(argv: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Cmd {
            argv: argv.into_iter().map(Into::into).collect(),
            ..Cmd::default()
        }
    }

    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(bytes.into());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Cmd {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn user(mut self, user: &str) -> Cmd {
        self.user = Some(user.to_owned());
        self
    }

    pub fn dir(mut self, dir: &str) -> Cmd {
        self.dir = Some(dir.to_owned());
        self
    }

    /// The command line as shown to people (stdin is never shown).
    pub fn display(&self) -> String {
        let mut s: Vec<String> = self
            .env
            .iter()
            .map(|(k, v)| match is_secret_env(k) {
                // e.g. the web UI's POSTGRES_PASSWORD: never shown, not even in errors.
                true => format!("{k}={}", crate::secret::MASK),
                false => format!("{k}={}", quote(v)),
            })
            .collect();
        s.extend(self.argv.iter().map(|a| quote(a)));
        let line = s.join(" ");
        match &self.user {
            Some(u) => format!("(as {u}) {line}"),
            None => line,
        }
    }
}

impl fmt::Debug for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // stdin may hold a secret: show only its size.
        write!(f, "Cmd({}", self.display())?;
        if let Some(stdin) = &self.stdin {
            write!(f, ", stdin: {} bytes", stdin.len())?;
        }
        write!(f, ")")
    }
}

/// Environment variables whose value is a secret (shown masked).
pub fn is_secret_env(key: &str) -> bool {
    let k = key.to_ascii_uppercase();
    k.contains("PASSWORD") || k.contains("SECRET")
}

fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// What a finished command left behind.
#[derive(Debug, Clone, Default)]
pub struct CmdOutput {
    /// The exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// The last lines of stderr (or stdout when stderr is empty), for error reports.
    pub fn tail(&self) -> String {
        let src = if self.stderr.iter().all(u8::is_ascii_whitespace) {
            &self.stdout
        } else {
            &self.stderr
        };
        let text = String::from_utf8_lossy(src);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileKind {
    File,
    Dir,
    Symlink(PathBuf),
    Other,
}

/// lstat of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    pub kind: FileKind,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits only (0o7777).
    pub mode: u32,
    pub size: u64,
}

/// Who should own a file and with which mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub user: String,
    pub group: String,
    pub mode: u32,
}

/// The signals the direct service manager sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Term,
    Kill,
    /// telem-collector's binary upgrade (it hands its listening socket to a new process).
    Usr2,
}

/// A failure to talk to the host (not a command's non-zero exit, which is a `CmdOutput`).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct HostError(pub String);

impl HostError {
    pub fn io(what: &str, path: &Path, e: std::io::Error) -> HostError {
        HostError(format!("{what} {}: {e}", path.display()))
    }
}

pub type HostResult<T> = Result<T, HostError>;

/// The file a run that changes a machine locks there ([`Host::lock_run`]): two runs at once
/// (two CI jobs, an operator and CI) would race for its package manager and its state file,
/// each recording only its own changes.
pub const RUN_LOCK: &str = "/var/lib/telem-deploy/run.lock";

/// A run's lock on its machine, held until dropped.
pub struct RunLock(#[allow(dead_code)] Box<dyn Send>);

impl RunLock {
    /// A lock held as long as `guard` lives.
    pub fn new(guard: impl Send + 'static) -> RunLock {
        RunLock(Box::new(guard))
    }
}

pub trait Host {
    /// How many round trips to the machine this host has made so far (SSH), or None where
    /// that is not counted (the local machine).
    fn round_trips(&self) -> Option<u64> {
        None
    }
    /// Run a command to completion.
    fn run(&self, cmd: &Cmd) -> HostResult<CmdOutput>;
    /// Start a daemon detached from this process (own process group, stdin closed, output
    /// appended to `log`); returns its pid.
    fn spawn_detached(&self, cmd: &Cmd, log: &Path) -> HostResult<u32>;
    /// Send a signal to a process (`TERM` or `KILL`); a process that is gone already is fine.
    fn signal(&self, pid: u32, signal: Signal) -> HostResult<()>;
    /// Where a program is on the host's PATH.
    fn which(&self, program: &str) -> Option<PathBuf>;
    /// A file's contents, or `None` when it does not exist.
    fn read(&self, path: &Path) -> HostResult<Option<Vec<u8>>>;
    /// lstat, or `None` when the path does not exist.
    fn stat(&self, path: &Path) -> HostResult<Option<FileMeta>>;
    /// Write atomically (temporary file in the same directory, then rename) with owner and mode.
    fn write(&self, path: &Path, contents: &[u8], owner: &Owner) -> HostResult<()>;
    /// Create a directory (and missing parents) and set its owner and mode.
    fn mkdir(&self, path: &Path, owner: &Owner) -> HostResult<()>;
    /// Set owner and mode of an existing path.
    fn chown(&self, path: &Path, owner: &Owner) -> HostResult<()>;
    /// Make `path` a symlink to `target`, replacing what is there atomically.
    fn symlink(&self, target: &Path, path: &Path) -> HostResult<()>;
    /// Remove a file, symlink or directory tree; absent is fine.
    fn remove(&self, path: &Path) -> HostResult<()>;
    /// The names of a directory's entries, sorted; empty when it does not exist.
    fn list_dir(&self, path: &Path) -> HostResult<Vec<String>>;
    /// Rename within one file system.
    fn rename(&self, from: &Path, to: &Path) -> HostResult<()>;
    /// GET `path` from `addr:port` with a Host header; the HTTP status code.
    fn http_get(
        &self,
        addr: &str,
        port: u16,
        host_header: &str,
        path: &str,
        timeout_secs: u64,
    ) -> HostResult<u16>;
    /// Whether `user` can log in to `database` over TCP at `addr:port` with `password`
    /// (password authentication, e.g. SCRAM). `Err` when the server cannot be reached.
    fn pg_login(
        &self,
        addr: &str,
        port: u16,
        user: &str,
        password: &str,
        database: &str,
    ) -> HostResult<bool>;
    /// The lock of a run that changes the machine ([`RUN_LOCK`], an exclusive `flock` held as
    /// long as the [`RunLock`] lives; a run that dies loses it), or `None` when another run
    /// holds it. Creates the file (and its directory) when missing: only before a change.
    fn lock_run(&self) -> HostResult<Option<RunLock>>;
    /// Is the host the machine telem-deploy runs on (so a path on it is a path here)?
    /// Only then may the engine compare a host path with a controller file (the bundled
    /// collector); a remote host never shares a file with the controller.
    fn is_local(&self) -> bool {
        false
    }
}

/// Does the host's PID 1 look like systemd?
pub fn systemd_is_pid1(host: &dyn Host) -> bool {
    let comm = host
        .read(Path::new("/proc/1/comm"))
        .ok()
        .flatten()
        .unwrap_or_default();
    let dir = matches!(host.stat(Path::new("/run/systemd/system")), Ok(Some(m)) if m.kind == FileKind::Dir);
    String::from_utf8_lossy(&comm).trim() == "systemd" && dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_and_never_shows_stdin() {
        let c = Cmd::new(["echo", "a b", "it's"]).stdin("secret");
        assert_eq!(c.display(), r"echo 'a b' 'it'\''s'");
        assert!(!format!("{c:?}").contains("secret"));
        let c = Cmd::new(["flask"]).env("POSTGRES_PASSWORD", "hunter2");
        assert_eq!(c.display(), "POSTGRES_PASSWORD=******** flask");
    }
}
