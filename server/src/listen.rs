//! The listening socket and its handover to a new collector binary, as nginx upgrades its
//! binary: on SIGUSR2 the collector starts the binary at its path with the listening socket as
//! fd 3 (`LISTEN_FDS=1`, the sd_listen_fds protocol, also how systemd socket activation passes
//! it), waits until the new process says it is serving, then stops accepting and drains (see
//! `conn::Stop::Handover`). Both processes share one socket, so no connection queued for
//! `accept` is lost, and the old one keeps serving the keep-alive connections nginx holds.
//!
//! The new process says it is ready by writing [`READY_LINE`] to its stdout, a pipe to the old
//! one, when `TELEM_COLLECTOR_UPGRADE=1` is set; a process that exits (or stays silent for
//! [`READY_WAIT`]) aborts the upgrade and the old one goes on serving.

use std::ffi::OsString;
use std::io::BufRead;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use command_fds::{CommandFdExt, FdMapping};

/// The variable that asks a new process to report readiness on stdout.
pub const UPGRADE_ENV: &str = "TELEM_COLLECTOR_UPGRADE";
/// What a new process writes to stdout once it accepts connections.
pub const READY_LINE: &str = "ready";
/// How long the old process waits for the new one (it waits up to 10 s for the database).
pub const READY_WAIT: Duration = Duration::from_secs(30);

/// A listening socket passed by the parent process (an upgrade or systemd socket activation).
pub enum Inherited {
    None,
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

impl Inherited {
    /// Takes fd 3 when `LISTEN_FDS` says it is ours. Call before any thread starts: the
    /// protocol's variables are removed from the environment.
    pub fn take() -> std::io::Result<Self> {
        let mut fds = listenfd::ListenFd::from_env();
        if fds.len() == 0 {
            return Ok(Self::None);
        }
        if let Some(tcp) = fds.take_tcp_listener(0)? {
            return Ok(Self::Tcp(tcp));
        }
        if let Some(unix) = fds.take_unix_listener(0)? {
            return Ok(Self::Unix(unix));
        }
        Ok(Self::None)
    }
}

/// True when this process was started by an upgrade and must say when it is ready.
pub fn started_by_upgrade() -> bool {
    std::env::var_os(UPGRADE_ENV).is_some_and(|v| v == "1")
}

/// Tells the old process this one accepts connections (no-op when not started by an upgrade).
pub fn report_ready() {
    if started_by_upgrade() {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{READY_LINE}");
        let _ = out.flush();
    }
}

/// The binary to start: the path this process was started as (an upgrade replaces the file
/// there), else the running executable.
fn binary_path() -> std::io::Result<PathBuf> {
    let argv0 = std::env::args_os().next().map(PathBuf::from);
    match argv0 {
        Some(p) if p.components().count() > 1 => Ok(p),
        _ => {
            let exe = std::env::current_exe()?;
            let s = exe.to_string_lossy();
            Ok(PathBuf::from(s.trim_end_matches(" (deleted)").to_string()))
        }
    }
}

/// Why an upgrade did not happen.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("cannot start {path}: {source}")]
    Spawn {
        path: String,
        source: std::io::Error,
    },
    #[error("the new process (pid {pid}) exited before it was ready: {status}")]
    Exited {
        pid: u32,
        status: std::process::ExitStatus,
    },
    #[error("the new process (pid {pid}) was not ready within {secs} s; stopped it")]
    Timeout { pid: u32, secs: u64 },
}

/// Under systemd (`NOTIFY_SOCKET`, `NotifyAccess=main`), names `pid` the service's main process,
/// so systemd follows the new process rather than the draining one.
pub fn notify_main_pid(pid: u32) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let message = format!("MAINPID={pid}\n");
    let sent = (|| -> std::io::Result<()> {
        let datagram = std::os::unix::net::UnixDatagram::unbound()?;
        let bytes = socket.as_encoded_bytes();
        if let Some(name) = bytes.strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            datagram.send_to_addr(message.as_bytes(), &addr)?;
        } else {
            datagram.send_to(message.as_bytes(), &socket)?;
        }
        Ok(())
    })();
    if let Err(e) = sent {
        tracing::warn!("upgrade: cannot tell systemd the new main pid {pid}: {e}");
    }
}

/// Starts the binary with `listener` as fd 3 and waits until it reports ready. Blocking: run
/// it on a blocking thread.
pub fn spawn_successor(listener: OwnedFd) -> Result<u32, UpgradeError> {
    let path = binary_path().map_err(|source| UpgradeError::Spawn {
        path: "the running executable".into(),
        source,
    })?;
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let mut command = Command::new(&path);
    command
        .args(args)
        .env("LISTEN_FDS", "1")
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDNAMES")
        .env(UPGRADE_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    command
        .fd_mappings(vec![FdMapping {
            parent_fd: listener,
            child_fd: 3,
        }])
        .expect("fd 3 is the only mapping");
    let spawn_error = |source| UpgradeError::Spawn {
        path: path.display().to_string(),
        source,
    };
    let mut child = command.spawn().map_err(spawn_error)?;
    drop(command);
    let pid = child.id();
    let stdout = child.stdout.take().expect("stdout is piped");
    // The reader thread ends when the child writes its line or its stdout closes.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let ready = std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .is_ok_and(|_| line.trim_end() == READY_LINE);
        let _ = tx.send(ready);
    });
    match rx.recv_timeout(READY_WAIT) {
        Ok(true) => {
            notify_main_pid(pid);
            Ok(pid)
        }
        Ok(false) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            let status = child.wait().map_err(spawn_error)?;
            Err(UpgradeError::Exited { pid, status })
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(UpgradeError::Timeout {
                pid,
                secs: READY_WAIT.as_secs(),
            })
        }
    }
}
