//! The POSIX shell scripts an SSH target runs: quoting, and the wrapper every command goes
//! through.
//!
//! `ssh` hands the remote side one string that the login shell parses, so every argument is
//! quoted here (single quotes; a `'` becomes `'\''`). Values of the command's environment
//! travel on stdin, one line each ahead of the command's own input, and are read with the
//! shell's `read` builtin (which reads a pipe byte by byte, leaving the rest for the command):
//! so a password given as `POSTGRES_PASSWORD` is in no argv and no environment on the way, only
//! in the environment of the program that asked for it.
//!
//! Every script ends by printing a marker line with its exit status on stderr. A reply without
//! it means the connection (not the command) failed: ssh's own exit status 255 cannot tell the
//! two apart, since a remote command may exit 255 too.

use super::super::{Cmd, HostError, HostResult};

/// Quote one word for a POSIX shell. NUL cannot be passed in an argument at all.
pub fn quote(word: &str) -> HostResult<String> {
    if word.contains('\0') {
        return Err(HostError(
            "an argument contains a NUL byte, which no command line can carry".to_owned(),
        ));
    }
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c))
    {
        return Ok(word.to_owned());
    }
    Ok(format!("'{}'", word.replace('\'', r"'\''")))
}

/// Quote a path (non-UTF-8 paths are refused rather than mangled).
pub fn quote_path(path: &std::path::Path) -> HostResult<String> {
    let s = path
        .to_str()
        .ok_or_else(|| HostError(format!("{} is not valid UTF-8", path.display())))?;
    quote(s)
}

/// The words of a command line, quoted and joined.
pub fn quote_argv(argv: &[String]) -> HostResult<String> {
    Ok(argv
        .iter()
        .map(|a| quote(a))
        .collect::<HostResult<Vec<_>>>()?
        .join(" "))
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A script and the bytes to feed it.
#[derive(Clone, Default)]
pub struct Script {
    pub body: String,
    /// Environment values (one line each) followed by the command's own stdin.
    pub stdin: Vec<u8>,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // stdin may hold a secret: only its size.
        write!(
            f,
            "Script({:?}, stdin: {} bytes)",
            self.body,
            self.stdin.len()
        )
    }
}

/// Exit status of the wrapper when it could not start the command (the reason follows
/// [`SETUP_TAG`] on stderr).
pub const SETUP_FAILED: i32 = 125;
/// Tags the wrapper's own error messages on stderr.
pub const SETUP_TAG: &str = "telem-deploy-remote-setup:";

/// A setup step that fails with a tagged message.
fn or_fail(step: &str, why: &str) -> HostResult<String> {
    Ok(format!(
        "{step} || {{ printf '\\n%s %s\\n' {} {} >&2; exit {SETUP_FAILED}; }}",
        quote(SETUP_TAG)?,
        quote(why)?
    ))
}

/// The lines that prepare a command: its environment (read from stdin), working directory and
/// user. `exec_prefix` is what the command is run with (`exec` for `run`, `setsid` for a
/// daemon).
pub fn prepare(cmd: &Cmd) -> HostResult<(Vec<String>, Vec<u8>, String)> {
    let mut lines = Vec::new();
    let mut header = Vec::new();
    for (i, (name, value)) in cmd.env.iter().enumerate() {
        if !valid_env_name(name) {
            return Err(HostError(format!(
                "`{name}` is not a valid environment variable name"
            )));
        }
        if value.contains('\n') || value.contains('\0') {
            // Never echo the value: it may be a password.
            return Err(HostError(format!(
                "the value of {name} contains a newline or NUL byte, which cannot be passed to an SSH target"
            )));
        }
        lines.push(or_fail(
            &format!("IFS= read -r __telem_e{i}"),
            &format!("the value of {name} did not arrive on stdin"),
        )?);
        lines.push(format!("export {name}=\"$__telem_e{i}\""));
        header.extend_from_slice(value.as_bytes());
        header.push(b'\n');
    }
    match (&cmd.dir, &cmd.user) {
        (Some(dir), _) => lines.push(or_fail(
            &format!("cd -- {}", quote(dir)?),
            &format!("cannot change to the directory {dir}"),
        )?),
        // Commands as another user start in / so they never trip over root's cwd.
        (None, Some(_)) => lines.push("cd /".to_owned()),
        (None, None) => {}
    }
    let run_as = match &cmd.user {
        Some(user) => {
            lines.push(or_fail(
                &format!("__telem_gid=$(id -g -- {})", quote(user)?),
                &format!("no such user `{user}` on this host"),
            )?);
            // The user's uid and primary group, no supplementary groups: as LocalHost does.
            format!(
                "setpriv --reuid={} --regid=\"$__telem_gid\" --clear-groups -- ",
                quote(user)?
            )
        }
        None => String::new(),
    };
    Ok((lines, header, run_as))
}

/// The script that runs `cmd` to completion.
pub fn command(cmd: &Cmd) -> HostResult<Script> {
    if cmd.argv.is_empty() {
        return Err(HostError("empty command".to_owned()));
    }
    let (mut lines, mut stdin, run_as) = prepare(cmd)?;
    lines.push(format!("exec {run_as}{}", quote_argv(&cmd.argv)?));
    if let Some(bytes) = &cmd.stdin {
        stdin.extend_from_slice(bytes);
    }
    Ok(Script {
        body: lines.join("\n"),
        stdin,
    })
}

/// The script that starts `cmd` as a daemon: its own session, stdin closed, output appended
/// to `log` (created 0640), and prints its pid.
pub fn detached(cmd: &Cmd, log: &std::path::Path) -> HostResult<Script> {
    if cmd.argv.is_empty() {
        return Err(HostError("empty command".to_owned()));
    }
    let (mut lines, stdin, run_as) = prepare(cmd)?;
    let log = quote_path(log)?;
    lines.push(or_fail(
        &format!("(umask 027; : >> {log})"),
        "cannot open the log file",
    )?);
    lines.push(format!(
        "setsid {run_as}{} < /dev/null >> {log} 2>&1 &",
        quote_argv(&cmd.argv)?
    ));
    lines.push("echo $!".to_owned());
    Ok(Script {
        body: lines.join("\n"),
        stdin,
    })
}

/// `body` in a subshell followed by the marker line with its exit status on stderr.
pub fn wrap(body: &str, marker: &str) -> String {
    format!(
        "(\n{body}\n)\n__telem_rc=$?\nprintf '\\n%s %s\\n' {marker} \"$__telem_rc\" >&2\nexit \"$__telem_rc\"\n"
    )
}

/// What a wrapped script's stderr says: `Some((status, stderr without the marker))`, or
/// `None` when the marker is missing (the script did not run to its end).
pub fn unwrap(stderr: &[u8], marker: &str) -> Option<(i32, Vec<u8>)> {
    let needle = format!("\n{marker} ");
    let text = stderr;
    let at = find_last(text, needle.as_bytes())?;
    let rest = &text[at + needle.len()..];
    let digits = rest.strip_suffix(b"\n")?;
    let code = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((code, text[..at].to_vec()))
}

fn find_last(hay: &[u8], needle: &[u8]) -> Option<usize> {
    (0..=hay.len().checked_sub(needle.len())?)
        .rev()
        .find(|&i| &hay[i..i + needle.len()] == needle)
}

/// The reason a wrapper could not start its command, when it says so.
pub fn setup_failure(stderr: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stderr);
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix(SETUP_TAG))
        .map(|why| why.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARK: &str = "TELEM-TEST-MARK";

    /// Runs a script through the local /bin/sh exactly as sshd's login shell would.
    fn sh(script: &Script) -> (i32, Vec<u8>, Vec<u8>) {
        let out = duct::cmd("sh", ["-c", &wrap(&script.body, MARK)])
            .stdin_bytes(script.stdin.clone())
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .expect("run sh");
        let (code, stderr) = unwrap(&out.stderr, MARK).expect("the marker");
        assert_eq!(Some(code), out.status.code());
        (code, out.stdout, stderr)
    }

    const NASTY: [&str; 12] = [
        "plain",
        "two words",
        "it's",
        "'",
        "\"double\" $HOME `id` $(id) ${PATH}",
        "; rm -rf /tmp/nothing-here &",
        "a\nnewline",
        "back\\slash\\",
        "*",
        "",
        "-n",
        "ünïcödé \t tab | pipe > redirect < in",
    ];

    #[test]
    fn every_argument_arrives_byte_for_byte() {
        let mut argv = vec!["printf".to_owned(), "%s\\0".to_owned()];
        argv.extend(NASTY.iter().map(|s| s.to_string()));
        let (code, stdout, _) = sh(&command(&Cmd::new(argv)).unwrap());
        assert_eq!(code, 0);
        let got: Vec<String> = stdout
            .split(|b| *b == 0)
            .map(|w| String::from_utf8(w.to_vec()).unwrap())
            .collect();
        assert_eq!(&got[..NASTY.len()], NASTY, "{got:?}");
    }

    #[test]
    fn environment_values_travel_on_stdin_ahead_of_the_commands_input() {
        let secret = "pa'ss \"w$(id)ord` ;";
        let cmd = Cmd::new([
            "sh",
            "-c",
            "printf '%s|%s|' \"$DB_PASSWORD\" \"$OTHER\"; cat",
        ])
        .env("DB_PASSWORD", secret)
        .env("OTHER", "x y")
        .stdin("the command's own input");
        let script = command(&cmd).unwrap();
        assert!(!script.body.contains("pa'ss"), "{}", script.body);
        let (code, stdout, _) = sh(&script);
        assert_eq!(code, 0);
        assert_eq!(
            String::from_utf8(stdout).unwrap(),
            format!("{secret}|x y|the command's own input")
        );
    }

    #[test]
    fn values_that_cannot_be_passed_are_refused_without_showing_them() {
        let err = command(&Cmd::new(["true"]).env("PW", "line1\nhunter2")).unwrap_err();
        assert!(err.0.contains("PW") && !err.0.contains("hunter2"), "{err}");
        assert!(command(&Cmd::new(["true"]).env("A-B", "x")).is_err());
        assert!(command(&Cmd::new(["a\0b"])).is_err());
        assert!(command(&Cmd::new(Vec::<String>::new())).is_err());
    }

    #[test]
    fn exit_statuses_pass_through_including_255() {
        for code in [0, 1, 3, 255] {
            let cmd = Cmd::new(["sh", "-c", &format!("echo out; echo err >&2; exit {code}")]);
            let (got, stdout, stderr) = sh(&command(&cmd).unwrap());
            assert_eq!(got, code);
            assert_eq!(stdout, b"out\n");
            assert_eq!(
                stderr, b"err\n",
                "the marker is gone, the command's stderr stays"
            );
        }
    }

    #[test]
    fn a_missing_marker_means_the_script_did_not_finish() {
        assert_eq!(
            unwrap(b"Connection closed by 10.0.0.5 port 22\r\n", MARK),
            None
        );
        assert_eq!(unwrap(format!("x\n{MARK} 12").as_bytes(), MARK), None);
        assert_eq!(
            unwrap(format!("no newline\n{MARK} 7\n").as_bytes(), MARK),
            Some((7, b"no newline".to_vec()))
        );
    }

    #[test]
    fn a_missing_directory_is_a_setup_failure_that_says_so() {
        let cmd = Cmd::new(["true"]).dir("/nonexistent/telem dir");
        let (code, _, stderr) = sh(&command(&cmd).unwrap());
        assert_eq!(code, SETUP_FAILED);
        assert_eq!(
            setup_failure(&stderr).as_deref(),
            Some("cannot change to the directory /nonexistent/telem dir")
        );
    }

    #[test]
    fn quoting_leaves_safe_words_alone() {
        assert_eq!(quote("/usr/bin/env").unwrap(), "/usr/bin/env");
        assert_eq!(quote("").unwrap(), "''");
        assert_eq!(quote("it's").unwrap(), r"'it'\''s'");
    }
}
