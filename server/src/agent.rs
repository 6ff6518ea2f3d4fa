//! `telem-collector agent`: the remote end telem-deploy talks to over one SSH session once the
//! collector is installed on a machine, instead of opening a session per command (each costs
//! the target a login: PAM, the login shell).
//!
//! It only runs shell scripts it is sent, as `/bin/sh -c SCRIPT`, exactly as a session per
//! command would, and answers each with the exit status and the script's output. It reads
//! nothing else, needs no configuration, listens nowhere and writes no file.
//!
//! The protocol, on stdin and stdout, all integers big-endian:
//! - at start the agent writes the line `telem-collector agent 1\n` (the protocol version);
//! - a request: `u32` script length, the script, `u64` stdin length, the script's stdin;
//! - the answer: `i32` exit status (128 + N for a script killed by signal N, as a shell says
//!   it), `u64` length and bytes of stdout, `u64` length and bytes of stderr.
//!
//! End of input between requests ends the agent (exit 0); in the middle of one is an error
//! (exit 1). A script's stdin travels only through a pipe to it, never in an argv or
//! environment.

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::process::{Command, ExitCode, Stdio};

/// The line the agent greets with; the number is the protocol's version.
pub const HELLO: &str = "telem-collector agent 1\n";

/// Longest script accepted (scripts are a few KiB; this bounds a corrupt length).
const MAX_SCRIPT: u32 = 1 << 24;

pub fn run() -> ExitCode {
    let stdin = io::stdin().lock();
    let stdout = io::stdout().lock();
    match serve(BufReader::new(stdin), BufWriter::new(stdout)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("telem-collector agent: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Answer requests from `input` on `output` until `input` ends.
pub fn serve(mut input: impl Read, mut output: impl Write) -> io::Result<()> {
    output.write_all(HELLO.as_bytes())?;
    output.flush()?;
    loop {
        let mut len = [0u8; 4];
        match read_full(&mut input, &mut len)? {
            Filled::None => return Ok(()),
            Filled::Partly => return Err(truncated()),
            Filled::All => {}
        }
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
        let script = String::from_utf8(script)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a script not in UTF-8"))?;
        let (status, out, err) = run_script(&script, stdin);
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

/// `/bin/sh -c script` with `stdin` on its standard input; (status, stdout, stderr).
fn run_script(script: &str, stdin: Vec<u8>) -> (i32, Vec<u8>, Vec<u8>) {
    let child = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
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
        let mut r = Vec::new();
        r.extend_from_slice(&(script.len() as u32).to_be_bytes());
        r.extend_from_slice(script.as_bytes());
        r.extend_from_slice(&(stdin.len() as u64).to_be_bytes());
        r.extend_from_slice(stdin);
        r
    }

    fn answers(mut out: &[u8]) -> Vec<(i32, Vec<u8>, Vec<u8>)> {
        assert!(out.starts_with(HELLO.as_bytes()));
        out = &out[HELLO.len()..];
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
