//! What a run leaves on a target, for the SSH end-to-end tests (e2e_ssh/): a listing of its
//! root (the overlay's upper dir) and the file-changing calls of every process its sshd starts
//! (`strace -f` attached for a phase).

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::e2e_support::{wait_until, Report};
use crate::sandbox::Sandbox;
use crate::ssh_support::which;

/// The target's root as (path -> type, mode, owner, size, mtime, link target), from the
/// overlay's upper dir: the lower layers never change, so the upper dir holds every difference
/// of the root from the fresh base, and comparing two listings of it compares the whole root.
/// Left out: the daemons' logs and data, sshd's session bookkeeping, directories' mtimes (an
/// entry created or removed shows up as itself).
pub fn root_listing(sb: &Sandbox) -> BTreeMap<String, String> {
    const SKIP: [&str; 9] = [
        "/var/lib/postgresql",
        "/var/log/postgresql",
        "/var/log/nginx",
        "/var/log/telem-collector",
        "/var/log/wtmp",
        "/var/log/btmp",
        "/var/log/lastlog",
        "/run",
        "/var/run",
    ];
    fn walk(dir: &Path, rel: &str, skip: &[&str], out: &mut BTreeMap<String, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = format!("{rel}/{}", e.file_name().to_string_lossy());
            if skip
                .iter()
                .any(|s| path == *s || path.starts_with(&format!("{s}/")))
            {
                continue;
            }
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            let ft = m.file_type();
            let (kind, extra) = if ft.is_dir() {
                ("dir", String::new())
            } else if ft.is_symlink() {
                let to = std::fs::read_link(e.path()).unwrap_or_default();
                ("link", format!("-> {} mtime {}", to.display(), m.mtime()))
            } else if ft.is_char_device() && m.rdev() == 0 {
                ("deleted", String::new())
            } else {
                (
                    "file",
                    format!("size {} mtime {}.{}", m.size(), m.mtime(), m.mtime_nsec()),
                )
            };
            out.insert(
                path.clone(),
                format!(
                    "{kind} {:o} {}:{} {extra}",
                    m.mode() & 0o7777,
                    m.uid(),
                    m.gid()
                ),
            );
            if ft.is_dir() {
                walk(&e.path(), &path, skip, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(sb.upper_dir(), "", &SKIP, &mut out);
    out
}

/// What differs between two listings, one line per path.
pub fn listing_diff(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut diff = Vec::new();
    for (p, a) in after {
        match before.get(p) {
            None => diff.push(format!("+ {p} {a}")),
            Some(b) if b != a => diff.push(format!("~ {p} {b} => {a}")),
            _ => {}
        }
    }
    for (p, b) in before {
        if !after.contains_key(p) {
            diff.push(format!("- {p} {b}"));
        }
    }
    diff
}

// ---------------------------------------------------------------------------------------------
// strace attached to a target's sshd listener

/// `strace -f -ff` attached to a running process (the sshd listener: every session it starts
/// is traced), one file per process under `dir/trace.PID`; stopped (TERM: strace detaches and
/// flushes) by [`Tracer::stop`] or at drop.
pub struct Tracer {
    child: Option<Child>,
    dir: PathBuf,
}

impl Tracer {
    pub fn attach(pid: u32, dir: &Path, args: &[&str]) -> Result<Tracer, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let child = Command::new("strace")
            .args(["-f", "-ff", "-qq"])
            .args(args)
            .arg("-o")
            .arg(dir.join("trace"))
            .args(["-p", &pid.to_string()])
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("strace: {e}"))?;
        let tracer = Tracer {
            child: Some(child),
            dir: dir.to_path_buf(),
        };
        let status = format!("/proc/{pid}/status");
        let attached = wait_until(Duration::from_secs(20), || {
            std::fs::read_to_string(&status)
                .unwrap_or_default()
                .lines()
                .any(|l| l.starts_with("TracerPid:") && l.trim_end() != "TracerPid:\t0")
        });
        if attached {
            Ok(tracer)
        } else {
            Err(format!("strace never attached to {pid}"))
        }
    }

    /// Detach; the lines of every process's trace.
    pub fn stop(mut self) -> Vec<String> {
        self.halt();
        let mut lines = Vec::new();
        for e in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let body = std::fs::read(e.path()).unwrap_or_default();
            lines.extend(String::from_utf8_lossy(&body).lines().map(str::to_owned));
        }
        lines
    }

    fn halt(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
        }
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        self.halt();
    }
}

/// System calls that change files (`-y` shows the paths of file descriptors).
pub const WRITE_CALLS: &str =
    "trace=open,openat,openat2,creat,write,pwrite64,writev,pwritev,pwritev2,\
rename,renameat,renameat2,unlink,unlinkat,rmdir,mkdir,mkdirat,mknod,mknodat,chmod,fchmod,\
fchmodat,chown,fchown,lchown,fchownat,link,linkat,symlink,symlinkat,truncate,ftruncate,\
utimensat,utimes,futimesat,fallocate";

/// Files sshd's session handling itself writes (login records, PAM's motd) and pseudo files.
pub fn allowed_write(path: &str) -> bool {
    const OK: [&str; 9] = [
        "/dev/",
        "/proc/",
        "/sys/",
        "/run/utmp",
        "/var/run/utmp",
        "/run/motd.dynamic",
        "/var/log/wtmp",
        "/var/log/btmp",
        "/var/log/lastlog",
    ];
    OK.iter().any(|p| path.starts_with(p))
        || path.starts_with("pipe:")
        || path.starts_with("socket:")
        || path.starts_with("anon_inode:")
}

/// The lines of a `-y` trace of [`WRITE_CALLS`] that changed a file other than the allowed
/// ones (failed calls do not count). `root`: the sandbox's root as the host sees it (the
/// prefix of the paths strace resolves; removed, so paths read as inside).
pub fn file_writes(lines: &[String], root: &Path) -> Vec<String> {
    let root = root.to_string_lossy().into_owned();
    let quoted = |l: &str| -> Vec<String> {
        l.split('"')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s.to_owned())
            .collect()
    };
    // `fd<path>` decorations
    let fd_path = |l: &str, from: usize| -> Option<String> {
        let rest = &l[from..];
        let open = rest.find('<')?;
        let close = rest[open..].find(">")?;
        Some(rest[open + 1..open + close].to_owned())
    };
    let mut found = Vec::new();
    for l in lines {
        let l = &l
            .replace(&format!("<{root}/"), "</")
            .replace(&format!("<{root}>"), "</>");
        let Some(paren) = l.find('(') else { continue };
        let call = l[..paren].trim();
        let Some(eq) = l.rfind(") = ") else { continue };
        let result = &l[eq + 4..];
        if result.starts_with('-') || result.starts_with('?') {
            continue; // failed, or never returned
        }
        let paths: Vec<String> = match call {
            "open" | "openat" | "openat2" | "creat" => {
                let writes = call == "creat"
                    || ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"]
                        .iter()
                        .any(|f| l.contains(f));
                if !writes {
                    continue;
                }
                // the result's decoration is the resolved path
                match fd_path(l, eq) {
                    Some(p) => vec![p],
                    None => quoted(l),
                }
            }
            "write" | "pwrite64" | "writev" | "pwritev" | "pwritev2" | "fchmod" | "fchown"
            | "ftruncate" | "fallocate" => fd_path(l, paren).into_iter().collect(),
            _ => quoted(l),
        };
        if paths.is_empty() || paths.iter().any(|p| !allowed_write(p)) {
            found.push(l.to_string());
        }
    }
    found
}

pub fn strace_missing(rep: &mut Report) -> bool {
    if which("strace").is_some() {
        return false;
    }
    rep.check(
        std::env::var("TELEM_E2E_REQUIRED").as_deref() != Ok("1"),
        "strace is not installed on this machine",
    );
    eprintln!("skipped (the strace checks): strace is not installed on this machine");
    true
}
