//! `SshHost` against a real sshd in a fresh Debian root (see ssh_support.rs): commands with
//! shell metacharacters, exit statuses, other users; files written atomically, read, linked,
//! listed and removed; daemons started and signalled; uploads sent once (skipped when the
//! SHA-256 matches) and refused for another architecture; a secret on stdin or in a command's
//! environment in no process's argv or environment on the target (also by `strace -f` of its
//! sshd); unknown and changed host keys refused with advice; a lost connection reported as such, and a new one working after.
//!
//! Skipped (saying why) where sandboxes cannot run; TELEM_E2E_REQUIRED=1 makes that a failure.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use telem_deploy::host::upload::{self, Uploaded};
use telem_deploy::host::{lookup_user, Cmd, FileKind, Host, Owner};

use crate::e2e_support::wait_until;
use crate::ssh_support::SshTarget;

fn owner(user: &str, group: &str, mode: u32) -> Owner {
    Owner {
        user: user.to_owned(),
        group: group.to_owned(),
        mode,
    }
}

fn run_ok(host: &dyn Host, argv: &[&str]) -> String {
    let out = host
        .run(&Cmd::new(argv.iter().copied()))
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    assert!(out.success(), "{argv:?}: {:?} {}", out.code, out.tail());
    out.stdout_text()
}

const NASTY: [&str; 9] = [
    "two words",
    "it's",
    "\"$HOME\" `id` $(id) ${PATH}",
    "; touch /tmp/injected &",
    "a\nnewline",
    "back\\slash",
    "*",
    "",
    "-n",
];

#[test]
fn commands_files_and_uploads_over_ssh() {
    let Some(t) = SshTarget::start("files") else {
        return;
    };
    let started = Instant::now();
    let host = t.connect().unwrap_or_else(|e| panic!("connect: {e}"));
    let connect_time = started.elapsed();

    exercise(&host);
    eprintln!(
        "ssh: connect {connect_time:?}, {} round trips in {:?}",
        host.round_trips(),
        started.elapsed()
    );

    // The control socket lives in a private directory, gone with the connection.
    use std::os::unix::fs::PermissionsExt;
    let private = host.private_dir().to_path_buf();
    let mode = std::fs::metadata(&private).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "{}", private.display());
    assert!(private.join("cm").exists(), "the control socket");
    drop(host);
    assert!(!private.exists(), "{} left behind", private.display());
}

/// Every `Host` method over the connection: arguments, statuses, stdin, users, files,
/// symlinks, daemons, secrets, uploads.
fn exercise(host: &telem_deploy::host::ssh::SshHost) {
    // Arguments arrive byte for byte; nothing in them is run by a shell.
    let mut argv = vec!["printf", "%s\\0"];
    argv.extend(NASTY);
    let got = run_ok(host, &argv);
    let words: Vec<&str> = got.split('\0').collect();
    assert_eq!(&words[..NASTY.len()], NASTY);
    assert_eq!(host.stat(Path::new("/tmp/injected")).unwrap(), None);

    // Exit statuses pass through, 255 included (ssh's own code for its errors).
    for code in [1, 3, 255] {
        let out = host
            .run(&Cmd::new([
                "sh",
                "-c",
                &format!("echo err >&2; exit {code}"),
            ]))
            .unwrap();
        assert_eq!(out.code, Some(code));
        assert_eq!(out.stderr, b"err\n");
    }
    // Binary stdin, as another user, in a directory.
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let out = host.run(&Cmd::new(["cat"]).stdin(bytes.clone())).unwrap();
    assert_eq!(out.stdout, bytes);
    assert_eq!(run_ok(host, &["pwd"]).trim(), "/root");
    let as_nobody = Cmd::new(["sh", "-c", "id -u; id -G; pwd"]).user("nobody");
    assert_eq!(
        host.run(&as_nobody).unwrap().stdout_text(),
        "65534\n65534\n/\n"
    );
    let in_tmp = Cmd::new(["pwd"]).dir("/tmp");
    assert_eq!(host.run(&in_tmp).unwrap().stdout_text(), "/tmp\n");
    let err = host
        .run(&Cmd::new(["true"]).user("no-such-user"))
        .unwrap_err();
    assert!(err.0.contains("no such user `no-such-user`"), "{err}");
    assert!(host.which("sh").is_some_and(|p| p.ends_with("sh")));
    assert_eq!(host.which("no-such-program"), None);
    // A shell builtin is found where `which` finds it locally: a file on PATH.
    for builtin in ["test", "kill", "printf"] {
        let found = host.which(builtin);
        assert!(
            found
                .as_ref()
                .is_some_and(|p| p.is_absolute() && p.ends_with(builtin)),
            "{builtin}: {found:?}"
        );
    }
    assert_eq!(host.which("/bin/sh"), Some(PathBuf::from("/bin/sh")));
    assert_eq!(host.which("/etc/passwd"), None, "not executable");

    // The account files: through the agent, read once while no script runs; any script
    // (a command, a write) makes the next look-up read them again.
    let passwd_path = Path::new("/etc/passwd");
    let trips = host.round_trips();
    let passwd = host.read(passwd_path).unwrap().unwrap();
    assert_eq!(host.read(passwd_path).unwrap().unwrap(), passwd);
    let reads = if host.uses_agent() { 1 } else { 2 };
    assert_eq!(host.round_trips(), trips + reads);
    run_ok(
        host,
        &[
            "sh",
            "-c",
            "echo 'telem-kept:x:4242:4243::/:/bin/false' >> /etc/passwd",
        ],
    );
    assert_eq!(lookup_user(host, "telem-kept"), Some((4242, 4243)));
    host.write(passwd_path, &passwd, &owner("root", "root", 0o644))
        .unwrap();
    assert_eq!(lookup_user(host, "telem-kept"), None);

    // Directories and files: owner, mode, contents; the write replaces the file by a rename.
    let dir = PathBuf::from("/srv/telem dir/it's");
    host.mkdir(&dir, &owner("nobody", "nogroup", 0o750))
        .unwrap();
    let m = host.stat(&dir).unwrap().expect("the directory");
    assert_eq!(
        (m.kind, m.uid, m.gid, m.mode),
        (FileKind::Dir, 65534, 65534, 0o750)
    );
    let file = dir.join("a file; with $(metachars)");
    host.write(&file, &bytes, &owner("root", "nogroup", 0o640))
        .unwrap();
    assert_eq!(host.read(&file).unwrap().as_deref(), Some(&bytes[..]));
    let m = host.stat(&file).unwrap().expect("the file");
    assert_eq!(
        (m.kind, m.uid, m.gid, m.mode, m.size),
        (FileKind::File, 0, 65534, 0o640, bytes.len() as u64)
    );
    let inode = |p: &Path| run_ok(host, &["stat", "-c", "%i", p.to_str().unwrap()]);
    let before = inode(&file);
    host.write(&file, b"second", &owner("root", "root", 0o600))
        .unwrap();
    assert_ne!(
        inode(&file),
        before,
        "a new inode: written aside, then renamed"
    );
    assert_eq!(host.read(&file).unwrap().as_deref(), Some(&b"second"[..]));
    assert_eq!(
        host.list_dir(&dir).unwrap(),
        ["a file; with $(metachars)"],
        "no temporary file left"
    );
    let err = host
        .write(
            Path::new("/nonexistent/dir/f"),
            b"x",
            &owner("root", "root", 0o644),
        )
        .unwrap_err();
    assert!(err.0.contains("/nonexistent/dir/f"), "{err}");
    assert_eq!(host.read(Path::new("/nonexistent/f")).unwrap(), None);
    assert_eq!(host.stat(Path::new("/nonexistent/f")).unwrap(), None);
    assert_eq!(
        host.list_dir(Path::new("/nonexistent")).unwrap(),
        Vec::<String>::new()
    );

    // A symlink replaced atomically, also one that points to a directory.
    let link = dir.join(".link");
    host.symlink(Path::new("/tmp"), &link).unwrap();
    host.symlink(Path::new("/etc/some target"), &link).unwrap();
    assert_eq!(
        host.stat(&link).unwrap().map(|m| m.kind),
        Some(FileKind::Symlink(PathBuf::from("/etc/some target")))
    );
    assert_eq!(
        run_ok(host, &["ls", "-A", "/tmp"]),
        "",
        "nothing moved into /tmp"
    );
    assert_eq!(
        host.list_dir(&dir).unwrap(),
        [".link", "a file; with $(metachars)"]
    );
    let moved = dir.join("moved");
    host.rename(&file, &moved).unwrap();
    assert_eq!(host.read(&file).unwrap(), None);
    host.chown(&moved, &owner("nobody", "nogroup", 0o604))
        .unwrap();
    assert_eq!(
        host.stat(&moved).unwrap().map(|m| (m.uid, m.mode)),
        Some((65534, 0o604))
    );
    host.remove(Path::new("/srv/telem dir")).unwrap();
    assert_eq!(host.stat(Path::new("/srv/telem dir")).unwrap(), None);
    host.remove(Path::new("/srv/telem dir")).unwrap();

    // A daemon: detached (the call returns), logging, signalled; a gone pid is fine.
    let log = Path::new("/var/log/telem-test.log");
    let pid = host
        .spawn_detached(
            &Cmd::new(["sh", "-c", "echo started; exec sleep 300"]).user("nobody"),
            log,
        )
        .unwrap();
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    assert!(wait_until(Duration::from_secs(10), || {
        host.read(log).unwrap().is_some_and(|l| l == b"started\n")
    }));
    assert_eq!(host.stat(log).unwrap().map(|m| m.mode), Some(0o640));
    let status = String::from_utf8(host.read(&proc_dir.join("status")).unwrap().unwrap()).unwrap();
    assert!(status.contains("Uid:\t65534"), "{status}");
    host.signal(pid, telem_deploy::host::Signal::Kill).unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        host.stat(&proc_dir).unwrap().is_none()
    }));
    host.signal(pid, telem_deploy::host::Signal::Term).unwrap();

    // One round trip over the master connection (a figure for doc/ssh.md).
    let t = Instant::now();
    for _ in 0..20 {
        run_ok(host, &["true"]);
    }
    eprintln!("ssh: a round trip takes {:?}", t.elapsed() / 20);

    secrets_stay_out_of_argv_and_environment(host);
    uploads(host);
}

/// Write an executable `/bin/sh` script at `path` in the target's sandbox (`lines`, as
/// `printf` prints them: `\n` between lines).
fn put_script(t: &SshTarget, path: &str, lines: &str) {
    let out = t.sb.sh(&format!(
        "printf '#!/bin/sh\\n{lines}\\n' > {path} && chmod 755 {path}"
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Connect to `t` offering the agent at `probe` on the target.
fn connect_with_agent(t: &SshTarget, probe: &str) -> telem_deploy::host::ssh::SshHost {
    let settings = telem_deploy::host::ssh::SshSettings {
        batch_mode: true,
        probe: probe.into(),
        agent: true,
        ..telem_deploy::host::ssh::SshSettings::with_options(t.options())
    };
    telem_deploy::host::ssh::SshHost::connect(t.target.clone(), settings)
        .unwrap_or_else(|e| panic!("connect: {e}"))
}

/// The same, through the installed collector's agent (one session for every command); a lost
/// connection is reported the same way, and the next command reconnects.
#[test]
fn commands_files_and_uploads_through_the_agent() {
    let Some(t) = SshTarget::start("agent") else {
        return;
    };
    // Something else at the collector's path (a machine the operator has used): no greeting,
    // so every command has its own session, and works.
    let other = "/usr/local/sbin/not-the-collector";
    put_script(&t, other, "echo hello from something else");
    let host = connect_with_agent(&t, other);
    assert_eq!(run_ok(&host, &["echo", "still"]), "still\n");
    assert!(
        !host.uses_agent(),
        "a program that does not greet is no agent"
    );
    drop(host);

    // The agent's collector elsewhere than where `uploads` installs one.
    let (_, collector) = crate::e2e_support::binaries();
    t.sb.copy_in(&collector, "/usr/local/sbin/").unwrap();
    let host = connect_with_agent(&t, "/usr/local/sbin/telem-collector");
    assert_eq!(run_ok(&host, &["echo", "up"]), "up\n");
    assert!(
        host.uses_agent(),
        "the installed collector offers the agent"
    );
    assert_eq!(host.agent_protocol(), Some(2), "asked for protocol 2");
    // The request for a protocol version is not in the commands' environment.
    assert_eq!(
        run_ok(&host, &["sh", "-c", "echo ${TELEM_AGENT_PROTOCOL-unset}"]),
        "unset\n"
    );
    // `which` and `list_dir` are one request each, answered without a process.
    let trips = host.round_trips();
    assert!(host.which("sh").is_some_and(|p| p.ends_with("sh")));
    assert!(host
        .list_dir(Path::new("/usr/local/sbin"))
        .unwrap()
        .contains(&"telem-collector".to_owned()));
    assert_eq!(host.round_trips(), trips + 2);
    let started = Instant::now();
    exercise(&host);
    assert!(host.uses_agent());
    let trips = host.round_trips();
    let t0 = Instant::now();
    for _ in 0..20 {
        run_ok(&host, &["true"]);
    }
    eprintln!(
        "ssh agent: a round trip takes {:?}; the exercise {:?}",
        t0.elapsed() / 20,
        started.elapsed()
    );
    assert_eq!(host.round_trips(), trips + 20, "one round trip per command");

    t.kill_sshd();
    let err = host.run(&Cmd::new(["echo", "down"])).unwrap_err().0;
    assert!(
        err.contains("lost the SSH connection to root@[::1]:2222"),
        "{err}"
    );
    let out = t.sb.exec(&["/usr/sbin/sshd"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(run_ok(&host, &["echo", "back"]), "back\n");
    assert!(host.uses_agent(), "the agent again after the reconnection");
    drop(host);

    // The end of a run waits for the agent's session to end: nothing of it runs on the target
    // afterwards (after `uninstall`, it would be a process of a deleted binary). This agent
    // takes half a second to end after its input closed, then leaves a mark.
    let lingering = "/usr/local/sbin/lingering-agent";
    put_script(
        &t,
        lingering,
        "/usr/local/sbin/telem-collector \"$@\"\\nsleep 0.5\\n: > /tmp/agent-ended",
    );
    let host = connect_with_agent(&t, lingering);
    assert_eq!(run_ok(&host, &["echo", "up"]), "up\n");
    assert!(host.uses_agent(), "the wrapped collector offers the agent");
    drop(host);
    let ended = t.sb.sh("test -e /tmp/agent-ended");
    assert!(
        ended.status.success(),
        "the run ended while its agent still ran on the target"
    );
}

/// An agent of protocol 1 (an older collector: it ignores the request for version 2) answers
/// scripts, reads and stats; `which` and `list_dir`, which it does not know, run their
/// scripts through it, and every Host method works as with a newer one.
#[test]
fn an_agent_of_protocol_1_runs_the_scripts_of_newer_requests() {
    let Some(t) = SshTarget::start("agent-v1") else {
        return;
    };
    let (_, collector) = crate::e2e_support::binaries();
    t.sb.copy_in(&collector, "/usr/local/sbin/").unwrap();
    // The collector of today asked for nothing greets with version 1, as an older one does.
    let old = "/usr/local/sbin/old-collector";
    put_script(
        &t,
        old,
        "unset TELEM_AGENT_PROTOCOL\\nexec /usr/local/sbin/telem-collector \"$@\"",
    );
    let host = connect_with_agent(&t, old);
    assert_eq!(run_ok(&host, &["echo", "up"]), "up\n");
    assert_eq!(host.agent_protocol(), Some(1), "the agent of protocol 1");
    let trips = host.round_trips();
    assert!(host.which("sh").is_some_and(|p| p.ends_with("sh")));
    assert!(host
        .list_dir(Path::new("/usr/local/sbin"))
        .unwrap()
        .contains(&"old-collector".to_owned()));
    assert_eq!(host.round_trips(), trips + 2, "still one request each");
    assert_eq!(host.agent_protocol(), Some(1), "the agent is still there");
    exercise(&host);
    assert_eq!(host.agent_protocol(), Some(1));
}

/// Every /proc/*/cmdline and environ on the target holding the secret (read from stdin), but
/// the environ of the process whose command line (NULs as spaces) is `$1` (a command given the secret in
/// its environment on purpose); a control file proves the scan finds what is there.
const SCAN: &str = r#"IFS= read -r s || exit 9
printf '%s' "$s" > /tmp/control
for p in /proc/[0-9]*; do
  for f in "$p/cmdline" "$p/environ"; do
    if [ -n "$1" ] && [ "$f" = "$p/environ" ] && [ "$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null)" = "$1" ]; then continue; fi
    if printf '%s\n' "$s" | grep -qaF -f - "$f" 2>/dev/null; then echo "$f"; fi
  done
done
if printf '%s\n' "$s" | grep -qaF -f - /tmp/control; then echo /tmp/control; fi
rm /tmp/control"#;

/// While the target holds the secret (on stdin, or in a command's own environment), no
/// process there has it in its argv or environment, but for the command that asked for it.
fn secrets_stay_out_of_argv_and_environment(host: &telem_deploy::host::ssh::SshHost) {
    let secret = "s3cr'et \"pa$$word\" `x` ;&|";
    let scan = |exclude: &str| {
        let cmd = Cmd::new(["sh", "-c", SCAN, "sh", exclude]).stdin(format!("{secret}\n"));
        let out = host.run(&cmd).unwrap();
        assert!(out.success(), "{}", out.tail());
        out.stdout_text()
    };
    // On stdin: only the scanner itself has it, in memory.
    assert_eq!(scan(""), "/tmp/control\n", "found the secret in");

    // In a command's environment (as the web UI's `flask db upgrade` gets POSTGRES_PASSWORD):
    // while it runs, held at a FIFO, no other process (sshd, the login shell, the wrapper)
    // has it.
    run_ok(host, &["mkfifo", "/tmp/gate"]);
    let find = "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -qx 'sh -c read x < /tmp/gat[e]; echo released ' && echo $p; done; true";
    let (held, scanned, control, released) = std::thread::scope(|s| {
        let waiting = s.spawn(|| {
            let cmd = Cmd::new(["sh", "-c", "read x < /tmp/gate; echo released"])
                .env("TELEM_TEST_PASSWORD", secret);
            host.run(&cmd)
        });
        // Whatever happens next, the gate opens, or this scope would wait forever.
        let checks = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut pid = String::new();
            let held = wait_until(Duration::from_secs(20), || {
                pid = run_ok(host, &["sh", "-c", find]).trim().to_owned();
                !pid.is_empty()
            });
            (
                held,
                pid,
                scan("sh -c read x < /tmp/gate; echo released "),
                scan(""),
            )
        }));
        let _ = host.run(&Cmd::new(["sh", "-c", "echo go > /tmp/gate"]));
        let released = waiting.join().expect("the waiting command");
        let (held, pid, scanned, all) = checks.unwrap_or_else(|p| std::panic::resume_unwind(p));
        (held, scanned, (pid, all), released)
    });
    assert!(held, "the command never started");
    assert_eq!(scanned, "/tmp/control\n", "found the secret in");
    // Control: the command itself does have it.
    assert_eq!(control.1, format!("{}/environ\n/tmp/control\n", control.0));
    assert_eq!(released.unwrap().stdout_text(), "released\n");
    run_ok(host, &["rm", "/tmp/gate"]);
}

/// The collector binary: sent once, skipped while the SHA-256 matches, refused for another
/// architecture.
fn uploads(host: &telem_deploy::host::ssh::SshHost) {
    let (_, collector) = crate::e2e_support::binaries();
    let bin = std::fs::read(&collector).unwrap();
    let dest = Path::new("/usr/local/bin/telem-collector");
    let own = owner("root", "root", 0o755);

    // Not installed yet: the health probe is bash's /dev/tcp then (through the agent, the
    // agent's collector), and nothing listens.
    let err = host
        .http_get("127.0.0.1", 80, "localhost", "/healthz", 2)
        .unwrap_err();
    assert!(err.0.contains("Connection refused"), "{err}");

    let t = Instant::now();
    let first = upload::upload(host, "the collector", &bin, dest, &own).unwrap();
    let first_time = t.elapsed();
    assert_eq!(
        first,
        Uploaded::Sent {
            bytes: bin.len() as u64
        }
    );
    let sha = run_ok(host, &["sha256sum", dest.to_str().unwrap()]);
    assert!(sha.starts_with(&upload::sha256_hex(&bin)), "{sha}");
    let trips = host.round_trips();
    let t = Instant::now();
    assert_eq!(
        upload::upload(host, "the collector", &bin, dest, &own).unwrap(),
        Uploaded::Unchanged
    );
    assert_eq!(host.round_trips() - trips, 1, "one look, nothing sent");
    eprintln!(
        "upload of {} MB: {first_time:?}; unchanged: {:?}",
        bin.len() / 1_000_000,
        t.elapsed()
    );

    // The same bytes claiming another machine: refused before anything is sent.
    let mut foreign = bin.clone();
    let aarch64: u16 = if std::env::consts::ARCH == "aarch64" {
        62
    } else {
        183
    };
    foreign[18..20].copy_from_slice(&aarch64.to_le_bytes());
    let err = upload::upload(host, "the collector", &foreign, dest, &own).unwrap_err();
    assert!(
        err.0
            .contains(&format!("but the machine is {}", std::env::consts::ARCH)),
        "{err}"
    );
    let sha = run_ok(host, &["sha256sum", dest.to_str().unwrap()]);
    assert!(
        sha.starts_with(&upload::sha256_hex(&bin)),
        "unchanged: {sha}"
    );

    // The installed collector answers the probe; nothing listens on port 80 yet.
    let err = host
        .http_get("127.0.0.1", 80, "localhost", "/healthz", 2)
        .unwrap_err();
    assert!(err.0.contains("127.0.0.1:80"), "{err}");
    assert!(err.0.to_lowercase().contains("refused"), "{err}");
}

#[test]
fn unknown_and_changed_host_keys_are_refused_with_advice() {
    let Some(t) = SshTarget::start("hostkey") else {
        return;
    };
    // Unknown: known_hosts is empty.
    t.write_known_hosts(&[]);
    let err = t
        .connect()
        .expect_err("an unknown host key must be refused")
        .0;
    assert!(err.contains("root@[::1]:2222"), "{err}");
    assert!(err.contains("not in known_hosts"), "{err}");
    assert!(err.contains("`ssh -p 2222 root@::1`"), "{err}");
    assert!(err.contains("never accepted silently"), "{err}");
    assert_eq!(
        std::fs::read_to_string(t.known_hosts()).unwrap(),
        "",
        "not added"
    );

    // Changed: known_hosts holds another key for the address.
    let other = t.dir.path().join("other");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(st.success());
    let other_key = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let other_key: Vec<&str> = other_key.split_whitespace().take(2).collect();
    t.write_known_hosts(&[&other_key.join(" ")]);
    let err = t
        .connect()
        .expect_err("a changed host key must be refused")
        .0;
    assert!(err.contains("CHANGED"), "{err}");
    assert!(err.contains("ssh-keygen -R '[::1]:2222'"), "{err}");

    // Once the right key is known, the same target connects.
    t.write_known_hosts(&[&t.host_key]);
    let host = t.connect().unwrap();
    assert_eq!(run_ok(&host, &["hostname"]).trim(), "sandbox");

    // PostgreSQL logins go through a socket forwarded over the connection (nothing listens
    // on the target's 5432 here): the error names the server as the target sees it. The
    // forward lasts as long as the connection, in its private directory, which goes with it.
    let err = host
        .pg_login("127.0.0.1", 5432, "telemetry", "pw", "telemetry")
        .unwrap_err()
        .0;
    assert!(
        err.starts_with("PostgreSQL at 127.0.0.1:5432 on root@[::1]:2222: "),
        "{err}"
    );
    assert!(!err.contains("telem-ssh-"), "{err}");
    let private = host.private_dir().to_path_buf();
    let forwarded = private.join("pg/0/.s.PGSQL.5432");
    assert!(forwarded.exists(), "{} not forwarded", forwarded.display());
    // Another address on the same port has a socket of its own: a later login to the first
    // one never reaches the second.
    let err = host
        .pg_login("127.0.0.2", 5432, "telemetry", "pw", "telemetry")
        .unwrap_err()
        .0;
    assert!(err.starts_with("PostgreSQL at 127.0.0.2:5432 on "), "{err}");
    assert!(forwarded.exists(), "{} replaced", forwarded.display());
    let second = private.join("pg/1/.s.PGSQL.5432");
    assert!(second.exists(), "{} not forwarded", second.display());
    // A failed login through a kept forward forwards once more (the master may have been
    // replaced since) and tries again: one round trip.
    let trips = host.round_trips();
    let again = host
        .pg_login("127.0.0.1", 5432, "telemetry", "pw", "telemetry")
        .unwrap_err()
        .0;
    assert!(
        again.starts_with("PostgreSQL at 127.0.0.1:5432 on "),
        "{again}"
    );
    assert_eq!(host.round_trips(), trips + 1);
    drop(host);
    assert!(!private.exists(), "{} left", private.display());
}

#[test]
fn a_lost_connection_is_reported_and_the_next_one_works() {
    let Some(t) = SshTarget::start("lost") else {
        return;
    };
    let host = t.connect().unwrap();
    assert_eq!(run_ok(&host, &["echo", "up"]), "up\n");
    t.kill_sshd();
    let err = host.run(&Cmd::new(["echo", "down"])).unwrap_err().0;
    assert!(
        err.contains("lost the SSH connection to root@[::1]:2222"),
        "{err}"
    );
    let err = host.read(Path::new("/etc/hostname")).unwrap_err().0;
    assert!(err.contains("lost the SSH connection"), "{err}");

    // sshd back: the same host reconnects (a re-run converges).
    let out = t.sb.exec(&["/usr/sbin/sshd"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(run_ok(&host, &["echo", "back"]), "back\n");
}

/// `strace -f` of the target's sshd for the whole session (every process it starts, with its
/// environment): the secret given on stdin is in no execve; given in `Cmd.env` it is only in
/// the environment of the command that asked for it.
#[test]
fn strace_of_the_targets_sshd_never_sees_the_secret() {
    let Some(t) = SshTarget::start("strace") else {
        return;
    };
    if super::ssh_support::which("strace").is_none() {
        let why = "strace is not installed on this machine";
        assert!(
            std::env::var("TELEM_E2E_REQUIRED").as_deref() != Ok("1"),
            "{why}"
        );
        eprintln!("skipped: {why}");
        return;
    }
    let sshd = t.sshd_host_pid();
    let trace = t.dir.path().join("sshd.strace");
    let mut strace = std::process::Command::new("strace")
        .args(["-f", "-qq", "-v", "-s", "65536", "-e", "trace=execve", "-o"])
        .arg(&trace)
        .args(["-p", &sshd.to_string()])
        .spawn()
        .expect("start strace");
    let status = format!("/proc/{sshd}/status");
    let attached = wait_until(Duration::from_secs(20), || {
        std::fs::read_to_string(&status)
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("TracerPid:") && l.trim_end() != "TracerPid:\t0")
    });
    let secret = "tr4ce'd \"secret\" $(id)";
    let results = attached.then(|| {
        let host = t.connect().unwrap();
        let on_stdin = host
            .run(
                &Cmd::new(["sh", "-c", "IFS= read -r pw && [ -n \"$pw\" ] && echo got"])
                    .stdin(format!("{secret}\n")),
            )
            .unwrap();
        let in_env = host
            .run(
                &Cmd::new(["sh", "-c", "[ -n \"$TELEM_TEST_PASSWORD\" ] && echo got"])
                    .env("TELEM_TEST_PASSWORD", secret),
            )
            .unwrap();
        (on_stdin.stdout_text(), in_env.stdout_text())
    });
    // Our own child, stopped by its pid: TERM makes strace detach and flush its output.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(strace.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = strace.wait();
    assert!(attached, "strace never attached to sshd {sshd}");
    assert_eq!(results, Some(("got\n".to_owned(), "got\n".to_owned())));
    let text = std::fs::read_to_string(&trace).unwrap();
    let execs: Vec<&str> = text.lines().filter(|l| l.contains("execve(")).collect();
    assert!(
        execs.iter().any(|l| l.contains("telem-deploy-exit-")),
        "the trace covers the sessions' shells: {text}"
    );
    let escaped = secret.replace('"', "\\\"");
    let leaks: Vec<&&str> = execs
        .iter()
        .filter(|l| l.contains(&escaped) || l.contains(secret))
        .collect();
    assert_eq!(leaks.len(), 1, "the secret in: {leaks:#?}");
    assert!(
        leaks[0].contains("[\"sh\", \"-c\", \"[ -n \\\"$TELEM_TEST_PASSWORD\\\" ] && echo got\"]"),
        "only in the environment of the command that asked for it: {}",
        leaks[0]
    );
}
