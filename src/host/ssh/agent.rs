//! One session for many commands: once the collector is installed on the target, its hidden
//! `agent` subcommand (server/src/agent.rs) runs the scripts this module sends over a single SSH
//! session, instead of a session per command. A session costs the target a login (sshd's
//! session setup, PAM, the login shell) and this machine an `ssh` process: about 75 ms each on
//! the test machine, against about a millisecond for a script sent to the running agent.
//!
//! The scripts are the same as without the agent (see `script`), with the same stdin; only
//! the framing differs: the agent answers each with its exit status, stdout and stderr, so a
//! lost connection is an answer cut short (or none), never a status. Before the collector is
//! installed (a fresh machine, a dry run of the first install), or when the installed one is
//! older than the agent, every command has its own session, as before.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use super::script::Script;

/// What an agent of protocol version 1 greets with (`S`, `R`, `T`): one that does not know
/// of newer versions, or was not asked for one.
const HELLO_1: &str = "telem-collector agent 1";

/// The greeting of protocol version 2 (`W` and `L` too).
const HELLO_2: &str = "telem-collector agent 2";

/// The protocol version asked for, in the environment of the agent's command (an agent that
/// knows no newer version ignores it and greets with version 1).
pub(super) const ASK: &str = "TELEM_AGENT_PROTOCOL=2";

/// How long a program at the collector's path may take to greet before it is given up on.
const HELLO_TIMEOUT: Duration = Duration::from_secs(15);

/// A running agent: the `ssh` process and both ends of its pipes.
pub(super) struct Agent {
    /// The protocol version it greeted with (1 or 2).
    version: u32,
    handle: duct::Handle,
    to: Option<os_pipe::PipeWriter>,
    from: BufReader<os_pipe::PipeReader>,
}

/// What the agent is asked: a script (with its stdin), or a file read or looked at without
/// starting a process (answered as the scripts `SshHost::read`, `SshHost::stat`,
/// `SshHost::which` and `SshHost::list_dir` run).
pub(super) enum Request<'a> {
    Script(&'a Script),
    Read(&'a Path),
    Stat(&'a Path),
    /// Protocol 2.
    Which(&'a str),
    /// Protocol 2.
    ListDir(&'a Path),
}

impl Request<'_> {
    /// The protocol version an agent needs to answer it.
    pub(super) fn version(&self) -> u32 {
        match self {
            Request::Script(_) | Request::Read(_) | Request::Stat(_) => 1,
            Request::Which(_) | Request::ListDir(_) => 2,
        }
    }
}

/// What one script did, as the agent tells it.
pub(super) struct Answer {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Agent {
    /// Start `ssh` (`expr`, whose remote command is the agent) and wait for its greeting;
    /// `None` when the target has no agent to offer (no collector yet, an older one, anything
    /// else at that path), after which nothing of it is left running.
    pub(super) fn start(expr: duct::Expression, log: &Path) -> Option<Agent> {
        let (from_agent, agent_out) = os_pipe::pipe().ok()?;
        let (agent_in, to_agent) = os_pipe::pipe().ok()?;
        let handle = expr
            .stdin_file(agent_in)
            .stdout_file(agent_out)
            .stderr_path(log)
            .unchecked()
            .start()
            .ok()?;
        let mut from = BufReader::new(from_agent);
        // The greeting, read on a thread so a program that never answers cannot hold us.
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut line = String::new();
            let version = match from.read_line(&mut line).map(|_| line.trim_end()) {
                Ok(HELLO_2) => Some(2),
                Ok(HELLO_1) => Some(1),
                _ => None,
            };
            let _ = tx.send(version);
            from
        });
        match rx.recv_timeout(HELLO_TIMEOUT) {
            Ok(Some(version)) => {
                let from = reader.join().ok()?;
                Some(Agent {
                    version,
                    handle,
                    to: Some(to_agent),
                    from,
                })
            }
            _ => {
                drop(to_agent);
                let _ = handle.kill();
                let _ = reader.join();
                None
            }
        }
    }

    /// Close its input: the agent ends once it has answered what it was sent.
    fn close_input(&mut self) {
        self.to = None;
    }

    /// The protocol version it speaks.
    pub(super) fn version(&self) -> u32 {
        self.version
    }

    /// Whether it answers `req` (an agent of an older protocol does not know every request).
    pub(super) fn answers(&self, req: &Request) -> bool {
        req.version() <= self.version
    }

    /// Run one request; `Err` when the connection (or the agent) went away before its answer.
    pub(super) fn call(&mut self, req: &Request) -> std::io::Result<Answer> {
        use std::os::unix::ffi::OsStrExt;
        let (op, arg, stdin): (u8, &[u8], &[u8]) = match req {
            Request::Script(s) => (b'S', s.body.as_bytes(), &s.stdin),
            Request::Read(p) => (b'R', p.as_os_str().as_bytes(), &[]),
            Request::Stat(p) => (b'T', p.as_os_str().as_bytes(), &[]),
            Request::Which(name) => (b'W', name.as_bytes(), &[]),
            Request::ListDir(p) => (b'L', p.as_os_str().as_bytes(), &[]),
        };
        if !self.answers(req) {
            return Err(std::io::Error::other("a request newer than the agent"));
        }
        let to = self
            .to
            .as_mut()
            .ok_or_else(|| std::io::Error::other("the agent's input is closed"))?;
        let mut request = Vec::with_capacity(13 + arg.len() + stdin.len());
        request.push(op);
        let len = u32::try_from(arg.len()).map_err(std::io::Error::other)?;
        request.extend_from_slice(&len.to_be_bytes());
        request.extend_from_slice(arg);
        request.extend_from_slice(&(stdin.len() as u64).to_be_bytes());
        request.extend_from_slice(stdin);
        to.write_all(&request)?;
        to.flush()?;
        let mut status = [0u8; 4];
        self.from.read_exact(&mut status)?;
        let stdout = read_field(&mut self.from)?;
        let stderr = read_field(&mut self.from)?;
        Ok(Answer {
            code: i32::from_be_bytes(status),
            stdout,
            stderr,
        })
    }
}

fn read_field(from: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 8];
    from.read_exact(&mut len)?;
    let len = u64::from_be_bytes(len);
    let mut buf = Vec::new();
    from.take(len).read_to_end(&mut buf)?;
    if buf.len() as u64 != len {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(buf)
}

impl Agent {
    /// End it: close its input and wait, at most `limit`, for its session to end. The local
    /// `ssh` exits only once sshd has sent the agent's exit status, so the agent no longer
    /// runs on the target when this returns in time; a dead link is not waited for longer.
    pub(super) fn finish(&mut self, limit: Duration) {
        self.close_input();
        if !matches!(self.handle.wait_timeout(limit), Ok(Some(_))) {
            let _ = self.handle.kill();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.finish(Duration::from_millis(500));
    }
}
