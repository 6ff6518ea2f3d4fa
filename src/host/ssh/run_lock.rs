//! The run's lock on the target ([`Host::lock_run`](crate::host::Host::lock_run)): `flock`
//! (util-linux, on every supported system) holds the lock file in a session of its own for as
//! long as this side keeps the session's input open. The lock goes with the session: when the
//! run ends, or this machine or the link dies, the session ends and the lock is released.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Duration;

use super::quote;
use crate::host::{HostError, HostResult, RunLock, RUN_LOCK};

/// What `flock` exits with when another run holds the lock (`-n`: it does not wait).
const BUSY: i32 = 75;

/// The remote command: the directory (0755, as the state file's) and the file (0600) made
/// when missing, then the lock held while `cat` waits for the end of its input, after a line
/// saying it is held.
pub(super) fn script() -> HostResult<String> {
    let file = quote(RUN_LOCK)?;
    let dir = quote(
        Path::new(RUN_LOCK)
            .parent()
            .and_then(Path::to_str)
            .expect("the lock file is in a directory"),
    )?;
    Ok(format!(
        "umask 022 && mkdir -p {dir} && umask 077 && exec flock -n -E {BUSY} {file} sh -c 'echo locked; exec cat >/dev/null'"
    ))
}

/// The lock, held by the session `expr` (running [`script`]) once it says so; `None` when
/// another run holds it. `target` and `log` (the session's stderr) name what went wrong.
pub(super) fn take(
    expr: duct::Expression,
    log: &Path,
    target: String,
) -> HostResult<Option<RunLock>> {
    let failed = |e: std::io::Error| HostError(format!("cannot lock {RUN_LOCK} on {target}: {e}"));
    let (from_session, session_out) = os_pipe::pipe().map_err(failed)?;
    let (session_in, to_session) = os_pipe::pipe().map_err(failed)?;
    let handle = expr
        .stdin_file(session_in)
        .stdout_file(session_out)
        .stderr_path(log)
        .unchecked()
        .start()
        .map_err(failed)?;
    let mut line = String::new();
    let _ = BufReader::new(from_session).read_line(&mut line);
    let held = Held {
        handle,
        input: Some(to_session),
    };
    if line.trim_end() == "locked" {
        return Ok(Some(RunLock::new(held)));
    }
    // No line: the command ended (another run holds the lock, or it could not run).
    let status = held.handle.wait().map(|o| o.status.code());
    match status {
        Ok(Some(BUSY)) => Ok(None),
        _ => {
            let said = std::fs::read_to_string(log).unwrap_or_default();
            Err(HostError(format!(
                "cannot lock {RUN_LOCK} on {target}: {}",
                match said.trim() {
                    "" => "the session ended".to_owned(),
                    said => said.to_owned(),
                }
            )))
        }
    }
}

/// The session holding the lock: closing its input ends it.
struct Held {
    handle: duct::Handle,
    input: Option<os_pipe::PipeWriter>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.input = None;
        // `cat` ends at once; a dead link is not waited for longer (the session's end frees
        // the lock there anyway).
        if !matches!(
            self.handle.wait_timeout(Duration::from_secs(2)),
            Ok(Some(_))
        ) {
            let _ = self.handle.kill();
        }
    }
}
