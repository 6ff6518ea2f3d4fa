//! A fresh Debian root with sshd, for tests of the SSH transport: the sandbox (own network
//! namespace) gets the cached openssh-server layer (`tests/sandbox/sshd.sh`), sshd listens on
//! 127.0.0.1 and ::1 port 2222 there, a key generated for the test is authorized for root, and
//! the test's own `known_hosts` holds the sandbox's host key. The controller (this process)
//! reaches it only through a `ProxyCommand` that enters the sandbox's network namespace, so no
//! address is used outside it.

use std::path::{Path, PathBuf};
use std::process::Command;

use telem_deploy::host::ssh::{SshHost, SshSettings, Target};
use telem_deploy::host::HostResult;

use crate::sandbox::{script, Sandbox};

pub const PORT: u16 = 2222;

pub struct SshTarget {
    pub sb: Sandbox,
    /// Key pair and known_hosts of this test.
    pub dir: tempfile::TempDir,
    /// `ssh-ed25519 AAAA...` of the sandbox's sshd.
    pub host_key: String,
    pub target: Target,
}

/// Skip (None, saying why) or, with TELEM_E2E_REQUIRED=1, fail.
fn skip(why: &str) -> Option<SshTarget> {
    if std::env::var("TELEM_E2E_REQUIRED").as_deref() == Ok("1") {
        panic!("TELEM_E2E_REQUIRED=1 but the sshd sandbox is unavailable: {why}");
    }
    eprintln!("skipped: {why}");
    None
}

impl SshTarget {
    /// A sandbox with sshd running, or None when sandboxes cannot run here (said on stderr).
    pub fn start(tag: &str) -> Option<SshTarget> {
        if let Err(why) = Sandbox::available() {
            return skip(&why);
        }
        if which("ssh").is_none() || which("ssh-keygen").is_none() || which("socat").is_none() {
            return skip(
                "the OpenSSH client (ssh, ssh-keygen) and socat are needed on this machine",
            );
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("id_ed25519");
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "telem-test", "-f"])
            .arg(&key)
            .status()
            .expect("ssh-keygen");
        assert!(st.success(), "ssh-keygen failed");
        let sb = Sandbox::start(&format!("ssh-{tag}"), false)
            .unwrap_or_else(|e| panic!("cannot start the sandbox: {e}"));
        let out = Command::new("bash")
            .arg(script("sshd.sh"))
            .args(["start", sb.name()])
            .arg(key.with_extension("pub"))
            .arg(PORT.to_string())
            .env("TELEM_SANDBOX_OWNER", std::process::id().to_string())
            .output()
            .expect("run sshd.sh");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            if stderr.contains("downloading openssh-server failed") {
                return skip(&format!(
                    "openssh-server cannot be downloaded once: {stderr}"
                ));
            }
            panic!("sshd.sh start failed: {stderr}");
        }
        let host_key = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            host_key.starts_with("ssh-ed25519 "),
            "{host_key:?} {stderr}"
        );
        let t = SshTarget {
            sb,
            dir,
            host_key,
            target: format!("root@[::1]:{PORT}").parse().expect("target"),
        };
        t.write_known_hosts(&[&t.host_key]);
        Some(t)
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// Replace the test's known_hosts with these keys for the target.
    pub fn write_known_hosts(&self, keys: &[&str]) {
        let lines: String = keys.iter().map(|k| format!("[::1]:{PORT} {k}\n")).collect();
        std::fs::write(self.known_hosts(), lines).expect("write known_hosts");
    }

    /// What a user would pass as `--ssh-option`s to reach the sandbox.
    pub fn options(&self) -> Vec<String> {
        let pid = self.sb.pid().expect("sandbox pid");
        vec![
            format!(
                "IdentityFile={}",
                self.dir.path().join("id_ed25519").display()
            ),
            "IdentitiesOnly=yes".to_owned(),
            format!("UserKnownHostsFile={}", self.known_hosts().display()),
            "GlobalKnownHostsFile=/dev/null".to_owned(),
            // The only way in: through the sandbox's own network namespace.
            format!("ProxyCommand=nsenter --target {pid} --net socat - TCP:[%h]:%p"),
        ]
    }

    pub fn connect(&self) -> HostResult<SshHost> {
        // A session per command (the agent has its own test).
        let settings = SshSettings {
            batch_mode: true,
            agent: false,
            ..SshSettings::with_options(self.options())
        };
        SshHost::connect(self.target.clone(), settings)
    }

    /// Kill every sshd in the sandbox (the listener and the sessions): the link is gone.
    pub fn kill_sshd(&self) {
        let out = Command::new("bash")
            .arg(script("sshd.sh"))
            .args(["kill", self.sb.name()])
            .output()
            .expect("run sshd.sh kill");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl SshTarget {
    /// The host PID of the sandbox's sshd listener (for `strace -p`).
    pub fn sshd_host_pid(&self) -> u32 {
        sshd_host_pid(&self.sb)
    }
}

/// The host PID of a sandbox's sshd listener (for `strace -p`): the process in the sandbox's
/// PID namespace whose PID there is the one in /run/sshd.pid.
pub fn sshd_host_pid(sb: &Sandbox) -> u32 {
    let out = sb.exec(&["cat", "/run/sshd.pid"]);
    let inner = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(!inner.is_empty(), "no /run/sshd.pid");
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let sandbox_ns = ns(&sb.pid().unwrap().to_string()).expect("sandbox pid ns");
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || ns(&pid).as_ref() != Some(&sandbox_ns) {
            continue;
        }
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        let nspid = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .and_then(|l| l.split_whitespace().last().map(str::to_owned));
        if nspid.as_deref() == Some(inner.as_str()) {
            return pid.parse().unwrap();
        }
    }
    panic!("sshd (pid {inner} in the sandbox) not found on the host");
}

pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| Path::new(p).is_file())
    })
}
