//! `telem-collector agent`: the remote end telem-deploy talks to over one SSH session once the
//! collector is installed on a machine, instead of opening a session per command (each costs
//! the target a login: PAM, the login shell).
//!
//! It only runs shell scripts it is sent, as `/bin/sh -c SCRIPT`, exactly as a session per
//! command would, and answers each with the exit status and the script's output. It reads
//! nothing else, needs no configuration, listens nowhere and writes no file.
//!
//! The protocol, on stdin and stdout, all integers big-endian:
//! - at start the agent writes the line `telem-collector agent N\n`, N the protocol version:
//!   2 when the environment asks for it (`TELEM_AGENT_PROTOCOL=2`, set by telem-deploy in the
//!   session's command), else 1, so a telem-deploy that knows only version 1 still gets the
//!   greeting it expects (and never sends the operations of version 2);
//! - a request: one byte, the operation; `u32` length and bytes of its argument; `u64` length
//!   and bytes of the script's stdin (empty but for `S`). The operations:
//!   - `S`: run the argument as `/bin/sh -c SCRIPT`;
//!   - `R`: read the file at the argument (a path, any bytes): status 0 and its content, 3
//!     when nothing is there (a dangling symlink included), 1 and why otherwise: what
//!     `[ -e P ] || exit 3; cat -- P` answers, without starting a process;
//!   - `T`: the file's metadata, not following a symlink, as `stat -c '%f %u %g %s' -- P`
//!     prints it, and for a symlink its target on the next line; status 3 when nothing is
//!     there;
//!   - (version 2) `W`: the executable regular file the argument (a program name) names on
//!     the agent's `PATH`, as telem-deploy's `which` script finds it: status 0 and the path
//!     and a newline, 1 when there is none;
//!   - (version 2) `L`: the names in the directory at the argument, `.` and `..` left out,
//!     each followed by a NUL byte (unsorted): status 0 (also when nothing is there), 1 and
//!     why when it cannot be read;
//! - the answer: `i32` exit status (128 + N for a script killed by signal N, as a shell says
//!   it), `u64` length and bytes of stdout, `u64` length and bytes of stderr.
//!
//! End of input between requests ends the agent (exit 0); in the middle of one is an error
//! (exit 1). A script's stdin travels only through a pipe to it, never in an argv or
//! environment.

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::process::{Command, ExitCode, Stdio};

/// The line the agent greets with when asked for nothing newer (protocol version 1: `S`, `R`
/// and `T`).
pub const HELLO: &str = "telem-collector agent 1\n";

/// The greeting of protocol version 2 (`W` and `L` too).
pub const HELLO_2: &str = "telem-collector agent 2\n";

/// The environment variable by which telem-deploy asks for a protocol version.
pub const PROTOCOL_VAR: &str = "TELEM_AGENT_PROTOCOL";

/// The newest protocol version this agent speaks.
pub const PROTOCOL: u32 = 2;

/// Longest script accepted (scripts are a few KiB; this bounds a corrupt length).
const MAX_SCRIPT: u32 = 1 << 24;

pub fn run() -> ExitCode {
    let stdin = io::stdin().lock();
    let stdout = io::stdout().lock();
    // The version asked for, at most ours; 1 when nothing (or nonsense) is asked.
    let version = std::env::var(PROTOCOL_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .map_or(1, |v| v.clamp(1, PROTOCOL));
    match serve_version(version, BufReader::new(stdin), BufWriter::new(stdout)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("telem-collector agent: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Answer requests from `input` on `output` until `input` ends (protocol version 1).
pub fn serve(input: impl Read, output: impl Write) -> io::Result<()> {
    serve_version(1, input, output)
}

/// Answer requests of protocol `version` (1 or 2) from `input` on `output` until `input`
/// ends; an operation of a newer version is an unknown one.
pub fn serve_version(version: u32, mut input: impl Read, mut output: impl Write) -> io::Result<()> {
    output.write_all(if version >= 2 { HELLO_2 } else { HELLO }.as_bytes())?;
    output.flush()?;
    loop {
        let mut op = [0u8; 1];
        match read_full(&mut input, &mut op)? {
            Filled::None => return Ok(()),
            Filled::Partly => return Err(truncated()),
            Filled::All => {}
        }
        let mut len = [0u8; 4];
        input.read_exact(&mut len).map_err(|_| truncated())?;
        let script_len = u32::from_be_bytes(len);
        if script_len > MAX_SCRIPT {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a script of {script_len} bytes"),
            ));
        }
        let script = read_exact_vec(&mut input, u64::from(script_len))?;
        let mut len = [0u8; 8];
        input.read_exact(&mut len).map_err(|_| truncated())?;
        let stdin = read_exact_vec(&mut input, u64::from_be_bytes(len))?;
        let (status, out, err) = match op[0] {
            b'S' => {
                let script = String::from_utf8(script).map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidData, "a script not in UTF-8")
                })?;
                run_script(&script, stdin)
            }
            b'R' => read_file(&path_of(script)),
            b'T' => stat_file(&path_of(script)),
            b'W' if version >= 2 => which(&path_of(script), std::env::var_os("PATH")),
            b'L' if version >= 2 => list_dir(&path_of(script)),
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unknown operation {other:#04x}"),
                ))
            }
        };
        output.write_all(&status.to_be_bytes())?;
        output.write_all(&(out.len() as u64).to_be_bytes())?;
        output.write_all(&out)?;
        output.write_all(&(err.len() as u64).to_be_bytes())?;
        output.write_all(&err)?;
        output.flush()?;
    }
}

fn truncated() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the input ended inside a request",
    )
}

enum Filled {
    None,
    Partly,
    All,
}

/// Fill `buf`, telling an end of input before any byte from one inside it.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<Filled> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(Filled::None),
            Ok(0) => return Ok(Filled::Partly),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Filled::All)
}

fn read_exact_vec(input: &mut impl Read, len: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    input.take(len).read_to_end(&mut buf)?;
    if buf.len() as u64 != len {
        return Err(truncated());
    }
    Ok(buf)
}

fn path_of(bytes: Vec<u8>) -> std::path::PathBuf {
    use std::os::unix::ffi::OsStringExt;
    std::ffi::OsString::from_vec(bytes).into()
}

/// Status 3: nothing at the path (as the scripts of telem-deploy's SSH host say it).
const MISSING: i32 = 3;

fn failed(what: &str, path: &std::path::Path, e: &io::Error) -> (i32, Vec<u8>, Vec<u8>) {
    (
        1,
        Vec::new(),
        format!("{what} {}: {e}\n", path.display()).into_bytes(),
    )
}

/// `R`: the file's content (following symlinks), or 3 when nothing is there (also a file that
/// vanished while read, such as a /proc entry).
fn read_file(path: &std::path::Path) -> (i32, Vec<u8>, Vec<u8>) {
    match std::fs::read(path) {
        Ok(bytes) => (0, bytes, Vec::new()),
        Err(_) if std::fs::metadata(path).is_err() => (MISSING, Vec::new(), Vec::new()),
        Err(e) => failed("cat", path, &e),
    }
}

/// `T`: `stat -c '%f %u %g %s'` of the path itself, and a symlink's target.
fn stat_file(path: &std::path::Path) -> (i32, Vec<u8>, Vec<u8>) {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return (MISSING, Vec::new(), Vec::new()),
        Err(e) => return failed("stat", path, &e),
    };
    let mut out = format!(
        "{:x} {} {} {}\n",
        meta.mode(),
        meta.uid(),
        meta.gid(),
        meta.size()
    )
    .into_bytes();
    if meta.file_type().is_symlink() {
        match std::fs::read_link(path) {
            Ok(target) => {
                out.extend_from_slice(target.as_os_str().as_bytes());
                out.push(b'\n');
            }
            Err(e) => return failed("readlink", path, &e),
        }
    }
    (0, out, Vec::new())
}

/// `W`: what telem-deploy's `which` script prints: a name with a `/` is itself, when it is an
/// executable regular file; any other, the first `DIR/NAME` on `path` (an empty entry is `.`)
/// that is one.
fn which(name: &std::path::Path, path: Option<std::ffi::OsString>) -> (i32, Vec<u8>, Vec<u8>) {
    use std::os::unix::ffi::OsStrExt;
    let found = |p: &std::path::Path| {
        let mut line = p.as_os_str().as_bytes().to_vec();
        line.push(b'\n');
        (0, line, Vec::new())
    };
    if name.as_os_str().as_bytes().contains(&b'/') {
        return if executable_file(name) {
            found(name)
        } else {
            (1, Vec::new(), Vec::new())
        };
    }
    let path = path.unwrap_or_default();
    for dir in path.as_bytes().split(|b| *b == b':') {
        let dir: &std::ffi::OsStr =
            std::ffi::OsStr::from_bytes(if dir.is_empty() { b"." } else { dir });
        // `"$d/$p"`, joined as the shell does (no normalization).
        let mut joined = dir.as_bytes().to_vec();
        joined.push(b'/');
        joined.extend_from_slice(name.as_os_str().as_bytes());
        let candidate = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(&joined));
        if executable_file(&candidate) {
            return found(&candidate);
        }
    }
    (1, Vec::new(), Vec::new())
}

/// `[ -f P ] && [ -x P ]`: a regular file (following symlinks) this process may execute
/// (`access(2)`, as the shell's `test` asks).
fn executable_file(p: &std::path::Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file())
        && nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok()
}

/// `L`: the directory's names (any bytes), each ended by NUL; nothing when nothing is there.
fn list_dir(path: &std::path::Path) -> (i32, Vec<u8>, Vec<u8>) {
    use std::os::unix::ffi::OsStrExt;
    // `[ -e P ] || exit 0`: a dangling symlink is nothing too.
    if std::fs::metadata(path).is_err() {
        return (0, Vec::new(), Vec::new());
    }
    let entries = match std::fs::read_dir(path) {
        Ok(e) => e,
        Err(e) => return failed("cd", path, &e),
    };
    let mut out = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => {
                out.extend_from_slice(entry.file_name().as_bytes());
                out.push(0);
            }
            Err(e) => return failed("list", path, &e),
        }
    }
    (0, out, Vec::new())
}

/// `/bin/sh -c script` with `stdin` on its standard input; (status, stdout, stderr).
fn run_script(script: &str, stdin: Vec<u8>) -> (i32, Vec<u8>, Vec<u8>) {
    // The scripts' environment is the session's, as without the agent: not our request for a
    // protocol version.
    let child = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .env_remove(PROTOCOL_VAR)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            return (
                127,
                Vec::new(),
                format!("cannot run /bin/sh: {e}\n").into_bytes(),
            )
        }
    };
    let mut input = child.stdin.take().expect("piped stdin");
    // A script that does not read its stdin closes the pipe: that is not an error here.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let out = child.wait_with_output();
    let _ = writer.join();
    match out {
        Ok(out) => {
            use std::os::unix::process::ExitStatusExt;
            let status = out
                .status
                .code()
                .or_else(|| out.status.signal().map(|s| 128 + s))
                .unwrap_or(255);
            (status, out.stdout, out.stderr)
        }
        Err(e) => (
            255,
            Vec::new(),
            format!("waiting for /bin/sh: {e}\n").into_bytes(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(script: &str, stdin: &[u8]) -> Vec<u8> {
        op(b'S', script, stdin)
    }

    fn op(code: u8, script: &str, stdin: &[u8]) -> Vec<u8> {
        let mut r = vec![code];
        r.extend_from_slice(&(script.len() as u32).to_be_bytes());
        r.extend_from_slice(script.as_bytes());
        r.extend_from_slice(&(stdin.len() as u64).to_be_bytes());
        r.extend_from_slice(stdin);
        r
    }

    fn answers(out: &[u8]) -> Vec<(i32, Vec<u8>, Vec<u8>)> {
        answers_after(HELLO, out)
    }

    fn answers_after(hello: &str, mut out: &[u8]) -> Vec<(i32, Vec<u8>, Vec<u8>)> {
        assert!(out.starts_with(hello.as_bytes()));
        out = &out[hello.len()..];
        let mut all = Vec::new();
        while !out.is_empty() {
            let status = i32::from_be_bytes(out[..4].try_into().unwrap());
            out = &out[4..];
            let mut field = || {
                let n = u64::from_be_bytes(out[..8].try_into().unwrap()) as usize;
                let v = out[8..8 + n].to_vec();
                out = &out[8 + n..];
                v
            };
            let (o, e) = (field(), field());
            all.push((status, o, e));
        }
        all
    }

    #[test]
    fn scripts_run_in_order_with_their_stdin_status_and_both_outputs() {
        let binary: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
        let mut input = request("cat; echo err >&2; exit 3", &binary);
        input.extend(request("printf 'a\\0b'", b""));
        input.extend(request("kill -TERM $$", b""));
        // A script that does not read its (large) stdin.
        input.extend(request("true", &binary));
        let mut out = Vec::new();
        serve(&input[..], &mut out).unwrap();
        let a = answers(&out);
        assert_eq!(a.len(), 4);
        assert_eq!(a[0], (3, binary.clone(), b"err\n".to_vec()));
        assert_eq!(a[1], (0, b"a\0b".to_vec(), Vec::new()));
        assert_eq!(a[2].0, 128 + 15);
        assert_eq!(a[3].0, 0);
    }

    /// `R` and `T` answer as the scripts they stand for do (compared with the real `stat`,
    /// `readlink` and `cat` on the same files).
    #[test]
    fn reads_and_stats_answer_as_the_scripts_do() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"a\0b\n").unwrap();
        let link = dir.path().join("l");
        std::os::unix::fs::symlink("f", &link).unwrap();
        let dangling = dir.path().join("d");
        std::os::unix::fs::symlink("nowhere", &dangling).unwrap();
        let missing = dir.path().join("m");
        let p = |p: &std::path::Path| p.to_str().unwrap().to_owned();
        let mut input = Vec::new();
        for path in [&file, &link, &dangling, &missing, &dir.path().to_path_buf()] {
            input.extend(op(b'R', &p(path), b""));
            input.extend(op(b'T', &p(path), b""));
        }
        let mut out = Vec::new();
        serve(&input[..], &mut out).unwrap();
        let a = answers(&out);
        let script = |body: &str, path: &std::path::Path| {
            let out = Command::new("sh")
                .args(["-c", body, "sh", &p(path)])
                .output()
                .unwrap();
            (out.status.code().unwrap(), out.stdout)
        };
        const READ: &str = "[ -e \"$1\" ] || exit 3\ncat -- \"$1\" 2>/dev/null || exit 1";
        const STAT: &str = "[ -e \"$1\" ] || [ -L \"$1\" ] || exit 3\nstat -c '%f %u %g %s' -- \"$1\" || exit 1\nif [ -L \"$1\" ]; then readlink -- \"$1\" || exit 1; fi";
        for (i, path) in [&file, &link, &dangling, &missing, &dir.path().to_path_buf()]
            .iter()
            .enumerate()
        {
            let (read, stat) = (&a[2 * i], &a[2 * i + 1]);
            let (code, bytes) = script(READ, path);
            assert_eq!(read.0, code, "read {}", path.display());
            if code == 0 {
                assert_eq!(read.1, bytes, "read {}", path.display());
            }
            assert_eq!(
                (stat.0, stat.1.clone()),
                script(STAT, path),
                "stat {}",
                path.display()
            );
        }
    }

    /// `W` and `L` (protocol 2) answer as the `which` and `list_dir` scripts of telem-deploy's
    /// SSH host do (run here with the same PATH and directories).
    #[test]
    fn which_and_list_answer_as_the_scripts_do() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        for d in [&a, &b] {
            std::fs::create_dir(d).unwrap();
        }
        let file = |p: &std::path::Path, mode: u32| {
            std::fs::write(p, b"#!/bin/sh\n").unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        file(&a.join("plain"), 0o644);
        file(&b.join("plain"), 0o755);
        file(&b.join("tool"), 0o755);
        std::fs::create_dir(a.join("dir")).unwrap();
        std::os::unix::fs::symlink(b.join("tool"), a.join("linked")).unwrap();
        std::os::unix::fs::symlink("nowhere", a.join(".dangling")).unwrap();
        std::fs::write(a.join("..dots"), b"").unwrap();
        std::fs::write(a.join("x\ny"), b"").unwrap();
        let path = format!("{}::{}", a.display(), b.display());
        const WHICH: &str = "p=$1\nset -f\ncase $p in */*) [ -f \"$p\" ] && [ -x \"$p\" ] && printf '%s\\n' \"$p\"; exit;; esac\nIFS=:\nfor d in $PATH; do\n  [ -n \"$d\" ] || d=.\n  if [ -f \"$d/$p\" ] && [ -x \"$d/$p\" ]; then printf '%s\\n' \"$d/$p\"; exit 0; fi\ndone\nexit 1";
        let script = |body: &str, arg: &str| {
            let out = Command::new("/bin/sh")
                .args(["-c", body, "sh", arg])
                .env("PATH", &path)
                .output()
                .unwrap();
            (out.status.code().unwrap(), out.stdout)
        };
        // Relative names (and the empty PATH entry, `.`) are taken from the same directory
        // by both: this process's.
        let (tool, plain, dir_a) = (b.join("tool"), a.join("plain"), a.join("dir"));
        let names = [
            "plain",
            "tool",
            "linked",
            "dir",
            "missing",
            "sh",
            tool.to_str().unwrap(),
            plain.to_str().unwrap(),
            dir_a.to_str().unwrap(),
            "a/plain",
            "/nonexistent/x",
        ];
        for name in names {
            let (code, out, _) = which(
                std::path::Path::new(name),
                Some(std::ffi::OsString::from(&path)),
            );
            assert_eq!((code, out), script(WHICH, name), "which {name}");
        }
        const LIST: &str = "[ -e \"$1\" ] || exit 0\ncd -- \"$1\" || exit 1\nfor f in * .[!.]* ..?*; do if [ -e \"$f\" ] || [ -L \"$f\" ]; then printf '%s\\0' \"$f\"; fi; done";
        let sorted = |out: Vec<u8>| {
            let mut names: Vec<Vec<u8>> = out
                .split(|b| *b == 0)
                .filter(|n| !n.is_empty())
                .map(<[u8]>::to_vec)
                .collect();
            names.sort();
            names
        };
        let dangling = a.join(".dangling");
        let plain = a.join("plain");
        for p in [&a, &b, &dir.path().join("missing"), &dangling, &plain] {
            let (code, out, _) = list_dir(p);
            let (want_code, want) = script(LIST, p.to_str().unwrap());
            assert_eq!(code, want_code, "list {}", p.display());
            assert_eq!(sorted(out), sorted(want), "list {}", p.display());
        }
    }

    /// An agent asked for protocol 1 (or a telem-deploy that asks for nothing) greets with
    /// version 1 and takes `W` and `L` for unknown operations, as an older agent does; asked
    /// for 2, it greets with 2 and answers them.
    #[test]
    fn protocol_2_is_spoken_only_when_asked_for() {
        let mut out = Vec::new();
        let err = serve(&op(b'W', "sh", b"")[..], &mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(out, HELLO.as_bytes());
        let mut out = Vec::new();
        serve_version(1, &op(b'L', "/", b"")[..], &mut out).unwrap_err();
        let mut input = op(b'W', "sh", b"");
        input.extend(op(b'L', "/", b""));
        let mut out = Vec::new();
        serve_version(2, &input[..], &mut out).unwrap();
        assert!(out.starts_with(HELLO_2.as_bytes()));
        let a = answers_after(HELLO_2, &out);
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].0, 0, "which sh: {:?}", a[0]);
        assert!(a[0].1.ends_with(b"/sh\n"));
        assert_eq!(a[1].0, 0);
        assert!(a[1]
            .1
            .split(|b| *b == 0)
            .any(|n| n == b"proc" || n == b"etc"));
    }

    #[test]
    fn input_ending_inside_a_request_is_an_error() {
        let input = request("true", b"abc");
        let mut out = Vec::new();
        let err = serve(&input[..input.len() - 1], &mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let mut out = Vec::new();
        serve(&[][..], &mut out).unwrap();
        assert_eq!(out, HELLO.as_bytes());
    }
}
