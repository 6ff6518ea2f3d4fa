//! PostgreSQL logins on the target from this process (`Host::pg_login`): through a unix
//! socket in the private directory that the master connection forwards to the server, so the
//! password stays in this process and travels inside the SSH connection.
//!
//! A forward lasts as long as the master (cancelling it would cost another `ssh` run; the
//! socket goes with the private directory): one per address and port, each in its own
//! directory `pg/N`, since a socket's name (`.s.PGSQL.PORT`) holds only the port.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use super::super::{HostError, HostResult};
use super::explain::tail;
use super::SshHost;

/// `ADDR:PORT` of each server forwarded so far; its index names its directory.
#[derive(Debug, Default)]
pub(super) struct Forwards(Mutex<Vec<String>>);

impl SshHost {
    pub(super) fn login_through_forward(
        &self,
        addr: &str,
        port: u16,
        user: &str,
        password: &str,
        database: &str,
    ) -> HostResult<bool> {
        let key = format!("{addr}:{port}");
        let mut forwarded = self.forwards.0.lock().unwrap_or_else(|e| e.into_inner());
        let (index, known) = match forwarded.iter().position(|k| *k == key) {
            Some(i) => (i, true),
            None => {
                forwarded.push(key);
                (forwarded.len() - 1, false)
            }
        };
        let sock_dir = self.dir.0.join("pg").join(index.to_string());
        let local = sock_dir.to_str().unwrap_or_default().to_owned();
        let login = || {
            super::super::local::pg_login_at(&local, port, user, password, database).map_err(|e| {
                // Name the server as the target sees it, not the forwarded socket.
                HostError(e.0.replacen(
                    &format!("PostgreSQL at {local}:{port}"),
                    &format!("PostgreSQL at {addr}:{port} on {}", self.target),
                    1,
                ))
            })
        };
        if known {
            if let Ok(answer) = login() {
                return Ok(answer);
            }
            // The master may have been replaced since (a lost link): forward again.
        }
        self.forward_pg(&sock_dir, addr, port)?;
        login()
    }

    /// Forward PostgreSQL at `addr:port` on the target to `.s.PGSQL.PORT` in `sock_dir` (in
    /// the private directory), for the master's lifetime.
    fn forward_pg(&self, sock_dir: &Path, addr: &str, port: u16) -> HostResult<()> {
        std::fs::create_dir_all(sock_dir).map_err(|e| HostError::io("create", sock_dir, e))?;
        let sock = sock_dir.join(format!(".s.PGSQL.{port}"));
        let _ = std::fs::remove_file(&sock);
        let fwd = format!("{}:{addr}:{port}", sock.display());
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let out = self
            .ssh(&["-O", "forward", "-L", &fwd], None)
            .stdin_null()
            .stdout_null()
            .stderr_capture()
            .unchecked()
            .run()
            .map_err(|e| HostError(format!("cannot run ssh: {e}")))?;
        if out.status.success() {
            return Ok(());
        }
        Err(HostError(format!(
            "cannot forward PostgreSQL at {addr}:{port} from {}: {}",
            self.target,
            tail(&out.stderr)
        )))
    }
}
