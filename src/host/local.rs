//! `Host` for the machine telem-deploy runs on: commands through duct, files through std.
//!
//! Every child gets `TELEM_DB_PASSWORD`, `TELEM_UI_PASSWORD` and any other variable whose name
//! marks a secret (see [`super::is_secret_env`]) removed from its environment, so a password
//! given that way never reaches another process; a command's own `env` (e.g. the web UI's
//! `POSTGRES_PASSWORD` for `flask db upgrade`) is set explicitly.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{
    lookup_group, lookup_user, Cmd, CmdOutput, FileKind, FileMeta, Host, HostError, HostResult,
    Owner, RunLock, RUN_LOCK,
};

/// The variables of this process no child may inherit: those telem-deploy reads its secrets
/// from, and every other one whose name says it holds a secret (PGPASSWORD, ...).
pub(super) fn inherited_secrets() -> Vec<std::ffi::OsString> {
    let mut keys: Vec<std::ffi::OsString> =
        crate::secret::ENV_VARS.iter().map(Into::into).collect();
    keys.extend(
        std::env::vars_os()
            .map(|(k, _)| k)
            .filter(|k| super::is_secret_env(&k.to_string_lossy())),
    );
    keys
}

#[derive(Debug, Default)]
pub struct LocalHost;

impl LocalHost {
    fn expression(&self, cmd: &Cmd) -> HostResult<duct::Expression> {
        let (program, args) = cmd
            .argv
            .split_first()
            .ok_or_else(|| HostError("empty command".to_owned()))?;
        let mut expr = duct::cmd(program, args);
        for key in inherited_secrets() {
            expr = expr.env_remove(key);
        }
        for (k, v) in &cmd.env {
            expr = expr.env(k, v);
        }
        if let Some(dir) = &cmd.dir {
            expr = expr.dir(dir);
        }
        if let Some(user) = &cmd.user {
            let (uid, gid) = lookup_user(self, user)
                .ok_or_else(|| HostError(format!("no such user `{user}` on this host")))?;
            // Commands as another user start in / so they never trip over root's cwd.
            if cmd.dir.is_none() {
                expr = expr.dir("/");
            }
            expr = expr.before_spawn(move |c| {
                c.uid(uid).gid(gid);
                Ok(())
            });
        }
        Ok(expr)
    }

    fn owner_ids(&self, owner: &Owner) -> HostResult<(u32, u32)> {
        let (uid, _) = lookup_user(self, &owner.user)
            .ok_or_else(|| HostError(format!("no such user `{}`", owner.user)))?;
        let gid = lookup_group(self, &owner.group)
            .ok_or_else(|| HostError(format!("no such group `{}`", owner.group)))?;
        Ok((uid, gid))
    }

    fn apply_owner(&self, path: &Path, owner: &Owner) -> HostResult<()> {
        let (uid, gid) = self.owner_ids(owner)?;
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
            .map_err(|e| HostError::io("chown", path, e))?;
        fs::set_permissions(path, fs::Permissions::from_mode(owner.mode))
            .map_err(|e| HostError::io("chmod", path, e))
    }
}

fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.telem-tmp-{}", std::process::id()))
}

impl Host for LocalHost {
    fn is_local(&self) -> bool {
        true
    }

    fn run(&self, cmd: &Cmd) -> HostResult<CmdOutput> {
        let mut expr = self
            .expression(cmd)?
            .stdout_capture()
            .stderr_capture()
            .unchecked();
        expr = match &cmd.stdin {
            Some(bytes) => expr.stdin_bytes(bytes.clone()),
            None => expr.stdin_null(),
        };
        let out = expr
            .run()
            .map_err(|e| HostError(format!("cannot run `{}`: {e}", cmd.argv[0])))?;
        Ok(CmdOutput {
            code: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    fn spawn_detached(&self, cmd: &Cmd, log: &Path) -> HostResult<u32> {
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(log)
            .map_err(|e| HostError::io("open log", log, e))?;
        let err = file
            .try_clone()
            .map_err(|e| HostError::io("open log", log, e))?;
        let handle = self
            .expression(cmd)?
            .before_spawn(|c| {
                // Its own process group: a Ctrl-C meant for telem-deploy must not stop it.
                c.process_group(0);
                Ok(())
            })
            .stdin_null()
            .stdout_file(file)
            .stderr_file(err)
            .unchecked()
            .start()
            .map_err(|e| HostError(format!("cannot start `{}`: {e}", cmd.argv[0])))?;
        let pid = handle
            .pids()
            .first()
            .copied()
            .ok_or_else(|| HostError("no pid".to_owned()))?;
        // Dropping the handle neither waits for nor kills the daemon.
        drop(handle);
        Ok(pid)
    }

    fn signal(&self, pid: u32, signal: super::Signal) -> HostResult<()> {
        use nix::sys::signal::{kill, Signal as S};
        let sig = match signal {
            super::Signal::Term => S::SIGTERM,
            super::Signal::Kill => S::SIGKILL,
            super::Signal::Usr2 => S::SIGUSR2,
        };
        let pid = i32::try_from(pid).map_err(|_| HostError(format!("bad pid {pid}")))?;
        match kill(nix::unistd::Pid::from_raw(pid), sig) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(e) => Err(HostError(format!("kill {pid}: {e}"))),
        }
    }

    fn which(&self, program: &str) -> Option<PathBuf> {
        which::which(program).ok()
    }

    fn read(&self, path: &Path) -> HostResult<Option<Vec<u8>>> {
        read_result(path, fs::read(path))
    }

    fn stat(&self, path: &Path) -> HostResult<Option<FileMeta>> {
        let m = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(HostError::io("stat", path, e)),
        };
        let ft = m.file_type();
        let kind = if ft.is_symlink() {
            FileKind::Symlink(fs::read_link(path).map_err(|e| HostError::io("readlink", path, e))?)
        } else if ft.is_dir() {
            FileKind::Dir
        } else if ft.is_file() {
            FileKind::File
        } else {
            FileKind::Other
        };
        Ok(Some(FileMeta {
            kind,
            uid: m.uid(),
            gid: m.gid(),
            mode: m.mode() & 0o7777,
            size: m.size(),
        }))
    }

    fn write(&self, path: &Path, contents: &[u8], owner: &Owner) -> HostResult<()> {
        let tmp = temp_sibling(path);
        let result = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| HostError::io("create", &tmp, e))?;
            f.write_all(contents)
                .map_err(|e| HostError::io("write", &tmp, e))?;
            f.sync_all().map_err(|e| HostError::io("sync", &tmp, e))?;
            self.apply_owner(&tmp, owner)?;
            fs::rename(&tmp, path).map_err(|e| HostError::io("rename into", path, e))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn mkdir(&self, path: &Path, owner: &Owner) -> HostResult<()> {
        fs::create_dir_all(path).map_err(|e| HostError::io("mkdir", path, e))?;
        self.apply_owner(path, owner)
    }

    fn chown(&self, path: &Path, owner: &Owner) -> HostResult<()> {
        self.apply_owner(path, owner)
    }

    fn symlink(&self, target: &Path, path: &Path) -> HostResult<()> {
        let tmp = temp_sibling(path);
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(target, &tmp).map_err(|e| HostError::io("symlink", &tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            HostError::io("rename into", path, e)
        })
    }

    fn list_dir(&self, path: &Path) -> HostResult<Vec<String>> {
        let entries = match fs::read_dir(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            r => r.map_err(|e| HostError::io("list", path, e))?,
        };
        let mut names = Vec::new();
        for e in entries {
            let e = e.map_err(|e| HostError::io("list", path, e))?;
            names.push(e.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn remove(&self, path: &Path) -> HostResult<()> {
        let result = match fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => Err(e),
            Ok(m) if m.is_dir() => fs::remove_dir_all(path),
            Ok(_) => fs::remove_file(path),
        };
        result.map_err(|e| HostError::io("remove", path, e))
    }

    fn rename(&self, from: &Path, to: &Path) -> HostResult<()> {
        fs::rename(from, to).map_err(|e| HostError::io("rename", from, e))
    }

    fn http_get(
        &self,
        addr: &str,
        port: u16,
        host_header: &str,
        path: &str,
        timeout_secs: u64,
    ) -> HostResult<u16> {
        let timeout = Duration::from_secs(timeout_secs.max(1));
        let sock = (addr, port)
            .to_socket_addrs()
            .map_err(|e| HostError(format!("{addr}:{port}: {e}")))?
            .next()
            .ok_or_else(|| HostError(format!("{addr}:{port}: no address")))?;
        let mut stream = TcpStream::connect_timeout(&sock, timeout)
            .map_err(|e| HostError(format!("connect {sock}: {e}")))?;
        stream.set_read_timeout(Some(timeout)).ok();
        stream.set_write_timeout(Some(timeout)).ok();
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\nUser-Agent: telem-deploy\r\n\r\n");
        stream
            .write_all(req.as_bytes())
            .map_err(|e| HostError(format!("send to {sock}: {e}")))?;
        let mut head = [0u8; 64];
        let n = stream
            .read(&mut head)
            .map_err(|e| HostError(format!("read from {sock}: {e}")))?;
        let line = String::from_utf8_lossy(&head[..n]);
        line.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| HostError(format!("{sock} answered no HTTP status line")))
    }

    fn lock_run(&self) -> HostResult<Option<RunLock>> {
        lock_file(Path::new(RUN_LOCK))
    }

    fn pg_login(
        &self,
        addr: &str,
        port: u16,
        user: &str,
        password: &str,
        database: &str,
    ) -> HostResult<bool> {
        pg_login_at(addr, port, user, password, database)
    }
}

/// Whether `user` can log in to `database` at `addr:port` (`addr` may be a directory holding
/// the socket `.s.PGSQL.PORT`, as for libpq) with `password`. Shared with the SSH host, which
/// forwards a local socket to the target's server.
/// An exclusive `flock` on `path` (created 0600, its directory 0755, when missing), held as
/// long as the lock lives; `None` when another open file holds it (another run).
fn lock_file(path: &Path) -> HostResult<Option<RunLock>> {
    use nix::fcntl::{Flock, FlockArg};
    use std::os::unix::fs::DirBuilderExt;
    if let Some(dir) = path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|e| HostError::io("create", dir, e))?;
    }
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| HostError::io("open", path, e))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(held) => Ok(Some(RunLock::new(held))),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(HostError::io("lock", path, e.into())),
    }
}

pub(super) fn pg_login_at(
    addr: &str,
    port: u16,
    user: &str,
    password: &str,
    database: &str,
) -> HostResult<bool> {
    let mut cfg = postgres::Config::new();
    cfg.host(addr)
        .port(port)
        .user(user)
        .password(password)
        .dbname(database)
        .connect_timeout(Duration::from_secs(5));
    match cfg.connect(postgres::NoTls) {
        Ok(client) => {
            drop(client);
            Ok(true)
        }
        Err(e) => match e.code() {
            Some(code)
                if *code == postgres::error::SqlState::INVALID_PASSWORD
                    || *code == postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
            {
                Ok(false)
            }
            // Authentication passed; only the database is missing.
            Some(code) if *code == postgres::error::SqlState::UNDEFINED_DATABASE => Ok(true),
            // The error text of the postgres crate never contains the password.
            _ => Err(HostError(format!(
                "PostgreSQL at {addr}:{port}: {}",
                describe(&e)
            ))),
        },
    }
}

/// The server's reason for an error (`password authentication failed for user "telemetry"`),
/// else the driver's message: the postgres crate alone says only "db error".
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => d.message().to_owned(),
        None => e.to_string(),
    }
}

/// A read's outcome: a missing file is `None`, and so is a `/proc/PID/...` file whose process
/// exited between open and read (the kernel answers ESRCH, "No such process", then).
fn read_result(path: &Path, r: std::io::Result<Vec<u8>>) -> HostResult<Option<Vec<u8>>> {
    match r {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ESRCH as i32) => Ok(None),
        Err(e) => Err(HostError::io("read", path, e)),
    }
}

#[cfg(test)]
mod lock_tests {
    use super::*;

    #[test]
    fn a_run_lock_is_held_once_and_free_again_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/run.lock");
        let first = lock_file(&path).unwrap().expect("free at first");
        // Another open file (another run) finds it held, the same process or not.
        assert!(lock_file(&path).unwrap().is_none());
        let other = std::process::Command::new("flock")
            .args(["-n", "-E", "75"])
            .arg(&path)
            .arg("true")
            .status()
            .expect("run flock");
        assert_eq!(other.code(), Some(75), "another process took a held lock");
        drop(first);
        let again = lock_file(&path).unwrap();
        assert!(again.is_some(), "free again once dropped");
        let meta = std::fs::metadata(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
}

#[cfg(test)]
mod read_tests {
    use super::*;
    use std::io::Read;

    /// Found by the interrupted-install test under load: the collector exited while the
    /// direct service manager read its /proc/PID/stat, and "Stop the collector" failed.
    #[test]
    fn a_proc_file_of_a_process_that_exited_after_open_reads_as_gone() {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let path = PathBuf::from(format!("/proc/{}/stat", child.id()));
        let mut f = fs::File::open(&path).expect("open stat while the child exists");
        child.wait().expect("reap the child");
        let mut buf = Vec::new();
        let r = f.read_to_end(&mut buf).map(|_| buf);
        assert!(
            matches!(&r, Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ESRCH as i32)),
            "the kernel should answer ESRCH, got {r:?}"
        );
        assert_eq!(read_result(&path, r).expect("gone is not an error"), None);
    }
}
