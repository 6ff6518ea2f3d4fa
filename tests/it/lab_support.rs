//! A lab network for the end-to-end tests of remote provisioning (issue 16, e2e_ssh/): N fresh
//! Debian roots (tests/support/sandbox.rs, each with its own network namespace holding only
//! `lo`) with sshd, and a controller network namespace that reaches them over real links:
//!
//! ```text
//!  controller netns (held by a child `cat`)          sandbox i's netns (its PID 1's)
//!  lo, br0 10.77.0.1/24 ── vh<i> ═══ veth ═══ eth0 10.77.0.(10+i)/24, sshd on port 22
//! ```
//!
//! Every link and address is created inside these namespaces (the veth pair is made in the
//! controller's namespace with its peer moved straight into the sandbox's by PID), so nothing is
//! added to the host's interfaces and the names cannot clash with another test's. Clean-up needs
//! no code that could be skipped: the controller's namespace lives as long as the `cat` holding
//! it reads its stdin, a pipe from this process (closed at drop, or when this process dies,
//! even by SIGKILL); a veth pair goes when either namespace goes, and sandboxes stop at drop
//! (or are reaped by `sandbox.sh gc` once their owner is gone).
//!
//! The tool runs as the controller: `nsenter --net=/proc/HOLDER/ns/net telem-deploy ...` with
//! the `--ssh-option`s of [`Lab::ssh_options`] (a key generated per lab, a `known_hosts` the test
//! writes from each sandbox's host key, no ProxyCommand) and `TMPDIR` set to a directory of the
//! lab's (so a test sees what the tool leaves on the controller).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::time::Instant;

use serde_json::Value;

use crate::e2e_support::{binaries, text, Report, Run, DOMAIN};
use crate::sandbox::{script, Sandbox};
use crate::ssh_support::which;

/// The lab's private subnet (only inside the lab's namespaces).
pub const SUBNET: &str = "10.77.0";
pub const CONTROLLER_ADDR: &str = "10.77.0.1";
/// Seconds a tool run may take before `timeout` kills it (a hung run fails, never blocks).
const RUN_TIMEOUT: &str = "1500";

/// One target machine of the lab.
pub struct LabTarget {
    pub sb: Sandbox,
    /// `10.77.0.11`, ...
    pub addr: String,
    /// `ssh-ed25519 AAAA...` of its sshd.
    pub host_key: String,
}

impl LabTarget {
    /// `root@10.77.0.11`: what `--target` gets and how the tool names it.
    pub fn target(&self) -> String {
        format!("root@{}", self.addr)
    }
}

/// The network namespace of the controller, held by a child process.
struct Holder {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Holder {
    fn start() -> Result<Holder, String> {
        let mut child = Command::new("unshare")
            .args(["--net", "--", "sh", "-c", "echo ready; exec cat >/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("unshare --net: {e}"))?;
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| format!("unshare --net: {e}"))?;
        let stdin = child.stdin.take();
        let holder = Holder { child, stdin };
        if line.trim() != "ready" {
            return Err("unshare --net did not start (no `ready`)".into());
        }
        Ok(holder)
    }

    fn netns(&self) -> String {
        format!("/proc/{}/ns/net", self.child.id())
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        drop(self.stdin.take()); // EOF: `cat` exits, the namespace (bridge, veths) goes
        let _ = self.child.wait();
    }
}

/// N sandboxes with sshd, linked to a controller namespace (see the module's doc).
pub struct Lab {
    pub targets: Vec<LabTarget>,
    holder: Holder,
    /// Key pair, known_hosts, the controller's TMPDIR, traces, recipes.
    pub dir: tempfile::TempDir,
}

/// Skip (None, saying why) or, with TELEM_E2E_REQUIRED=1, fail.
fn skip(why: &str) -> Option<Lab> {
    if std::env::var("TELEM_E2E_REQUIRED").as_deref() == Ok("1") {
        panic!("TELEM_E2E_REQUIRED=1 but the SSH lab is unavailable: {why}");
    }
    eprintln!("skipped: {why}");
    None
}

/// Run `cmd`; Ok(stdout) on success, else Err naming `what` with stderr.
fn checked(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(format!(
            "{what} exited {:?}: {}",
            out.status.code(),
            text(&out.stderr)
        ))
    }
}

/// `nsenter --net=NETNS program`.
fn in_netns(netns: &str, program: &str) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={netns}")).arg(program);
    cmd
}

impl Lab {
    /// `n` sandboxes with sshd on port 22 of their veth address, or None when this machine
    /// cannot run them (said on stderr; a failure with TELEM_E2E_REQUIRED=1).
    pub fn start(tag: &str, n: usize, rep: &mut Report) -> Option<Lab> {
        assert!((1..=50).contains(&n), "1 to 50 targets");
        if let Err(why) = Sandbox::available() {
            return skip(&why);
        }
        for program in ["ssh", "ssh-keygen", "ip", "nsenter", "unshare", "timeout"] {
            if which(program).is_none() {
                return skip(&format!("`{program}` is needed on this machine"));
            }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("tmp")).expect("mkdir tmp");
        let key = dir.path().join("id_ed25519");
        checked(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "telem-lab", "-f"])
                .arg(&key),
            "ssh-keygen",
        )
        .unwrap_or_else(|e| panic!("{e}"));

        let started = Instant::now();
        let holder = Holder::start().unwrap_or_else(|e| panic!("{e}"));
        let netns = holder.netns();
        let ip = |args: &[&str]| {
            checked(in_netns(&netns, "ip").args(args), &format!("ip {args:?}"))
                .unwrap_or_else(|e| panic!("controller namespace: {e}"))
        };
        ip(&["link", "set", "lo", "up"]);
        ip(&["link", "add", "br0", "type", "bridge"]);
        ip(&[
            "addr",
            "add",
            &format!("{CONTROLLER_ADDR}/24"),
            "dev",
            "br0",
        ]);
        ip(&["link", "set", "br0", "up"]);

        let mut lab = Lab {
            targets: Vec::new(),
            holder,
            dir,
        };
        for i in 1..=n {
            let sb = Sandbox::start(&format!("{tag}-{i}"), false)
                .unwrap_or_else(|e| panic!("cannot start sandbox {i}: {e}"));
            let pid = sb.pid().unwrap_or_else(|e| panic!("{e}")).to_string();
            let addr = format!("{SUBNET}.{}", 10 + i);
            let vh = format!("vh{i}");
            ip(&[
                "link", "add", &vh, "type", "veth", "peer", "name", "eth0", "netns", &pid,
            ]);
            ip(&["link", "set", &vh, "master", "br0", "up"]);
            let sb_ns = format!("/proc/{pid}/ns/net");
            for args in [
                vec!["addr", "add", &format!("{addr}/24"), "dev", "eth0"],
                vec!["link", "set", "eth0", "up"],
            ] {
                checked(in_netns(&sb_ns, "ip").args(&args), &format!("ip {args:?}"))
                    .unwrap_or_else(|e| panic!("sandbox {i}'s namespace: {e}"));
            }
            let out = Command::new("bash")
                .arg(script("sshd.sh"))
                .args(["start", sb.name()])
                .arg(key.with_extension("pub"))
                .args(["22", &addr])
                .env("TELEM_SANDBOX_OWNER", std::process::id().to_string())
                .stdin(Stdio::null())
                .output()
                .expect("run sshd.sh");
            let stderr = text(&out.stderr);
            if !out.status.success() {
                if stderr.contains("downloading openssh-server failed") {
                    return skip(&format!(
                        "openssh-server cannot be downloaded once: {stderr}"
                    ));
                }
                panic!("sshd.sh start failed: {stderr}");
            }
            let host_key = text(&out.stdout)
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ");
            assert!(
                host_key.starts_with("ssh-ed25519 "),
                "{host_key:?} {stderr}"
            );
            lab.targets.push(LabTarget { sb, addr, host_key });
        }
        let all: Vec<usize> = (0..n).collect();
        lab.write_known_hosts(&all);
        rep.timing(
            &format!("start the lab ({n} sandboxes with sshd, links)"),
            started.elapsed().as_secs_f64(),
        );
        Some(lab)
    }

    /// The controller's network namespace (`/proc/PID/ns/net`).
    pub fn netns(&self) -> String {
        self.holder.netns()
    }

    /// A command run in the controller's network namespace (the host's everything else).
    pub fn controller(&self, program: &str) -> Command {
        in_netns(&self.netns(), program)
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// Replace known_hosts with the host keys of these targets (indexes into `targets`).
    pub fn write_known_hosts(&self, which: &[usize]) {
        let lines: String = which
            .iter()
            .map(|&i| format!("{} {}\n", self.targets[i].addr, self.targets[i].host_key))
            .collect();
        std::fs::write(self.known_hosts(), lines).expect("write known_hosts");
    }

    /// The controller's TMPDIR for tool runs (where `telem-ssh-*` directories would be left).
    pub fn tmp(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }

    /// Entries left in [`Lab::tmp`].
    pub fn tmp_left(&self) -> Vec<String> {
        std::fs::read_dir(self.tmp())
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What a user passes as `--ssh-option`s (as `ssh -o`): the lab's key and known_hosts only.
    pub fn ssh_options(&self) -> Vec<String> {
        vec![
            format!(
                "IdentityFile={}",
                self.dir.path().join("id_ed25519").display()
            ),
            "IdentitiesOnly=yes".to_owned(),
            format!("UserKnownHostsFile={}", self.known_hosts().display()),
            "GlobalKnownHostsFile=/dev/null".to_owned(),
        ]
    }

    /// Plain `ssh root@ADDR COMMAND...` from the controller's namespace, run to its end.
    pub fn ssh(&self, target: usize, command: &[&str]) -> Output {
        self.ssh_command(target, command)
            .stdin(Stdio::null())
            .output()
            .expect("run ssh")
    }

    /// The command of [`Lab::ssh`], to be started as the caller needs.
    pub fn ssh_command(&self, target: usize, command: &[&str]) -> Command {
        let mut cmd = self.controller("ssh");
        for o in self.ssh_options() {
            cmd.arg("-o").arg(o);
        }
        cmd.args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=15"])
            .arg(self.targets[target].target())
            .arg("--")
            .args(command)
            .env_remove("SSH_AUTH_SOCK");
        cmd
    }

    /// The lab works: every sandbox's sshd answers over its link, and no lab address is on the
    /// host's own interfaces.
    pub fn check(&self, rep: &mut Report) {
        for (i, t) in self.targets.iter().enumerate() {
            let started = Instant::now();
            let out = self.ssh(i, &["cat", "/etc/hostname"]);
            rep.timing(
                &format!("ssh {} cat /etc/hostname", t.target()),
                started.elapsed().as_secs_f64(),
            );
            rep.check(
                out.status.success() && text(&out.stdout).trim() == "sandbox",
                format!(
                    "ssh {} from the controller: {:?} {} {}",
                    t.target(),
                    out.status.code(),
                    text(&out.stdout),
                    text(&out.stderr)
                ),
            );
        }
        let host = checked(Command::new("ip").args(["-o", "addr"]), "ip -o addr");
        rep.check(
            host.as_ref()
                .is_ok_and(|a| !a.contains(&format!("{SUBNET}."))),
            format!("the host's interfaces hold a lab address: {host:?}"),
        );
        let links = checked(Command::new("ip").args(["-o", "link"]), "ip -o link");
        rep.check(
            links
                .as_ref()
                .is_ok_and(|l| !(1..=self.targets.len()).any(|i| l.contains(&format!(": vh{i}@")))),
            format!("a lab link is on the host: {links:?}"),
        );
        let ours = checked(self.controller("ip").args(["-o", "addr"]), "ip -o addr");
        rep.check(
            ours.as_ref()
                .is_ok_and(|a| a.contains(&format!("{CONTROLLER_ADDR}/24"))),
            format!("the controller's namespace lacks {CONTROLLER_ADDR}: {ours:?}"),
        );
    }

    /// Run telem-deploy as the controller against `targets` (indexes), `--format json`, with
    /// the lab's `--ssh-option`s; `strace` records every execve of the tool's process tree
    /// (argv and environment) into that file.
    pub fn deploy(&self, targets: &[usize], args: &[&str], strace: Option<&Path>) -> RemoteRun {
        self.deploy_as(targets, args, strace, true)
    }

    /// Like [`Lab::deploy`]; `json: false` for the human output.
    pub fn deploy_as(
        &self,
        targets: &[usize],
        args: &[&str],
        strace: Option<&Path>,
        json: bool,
    ) -> RemoteRun {
        let mut argv: Vec<String> = vec!["-H".into(), DOMAIN.into()];
        if json {
            argv.extend(["--format".into(), "json".into()]);
        }
        for &i in targets {
            argv.push("--target".into());
            argv.push(self.targets[i].target());
        }
        self.run_tool(argv, args, strace)
    }

    /// Run telem-deploy as the controller on the inventory `file` (`--inventory FILE --format
    /// json`, the lab's `--ssh-option`s, then `args`); the domain comes from the inventory.
    pub fn deploy_inventory(&self, file: &Path, args: &[&str], strace: Option<&Path>) -> RemoteRun {
        let argv: Vec<String> = vec![
            "--inventory".into(),
            file.display().to_string(),
            "--format".into(),
            "json".into(),
        ];
        self.run_tool(argv, args, strace)
    }

    /// `telem-deploy HEAD --ssh-option ... ARGS` in the controller's namespace (see
    /// [`Lab::deploy`]).
    fn run_tool(&self, mut argv: Vec<String>, args: &[&str], strace: Option<&Path>) -> RemoteRun {
        let (deploy, _) = binaries();
        for o in self.ssh_options() {
            argv.push("--ssh-option".into());
            argv.push(o);
        }
        argv.extend(args.iter().map(|a| a.to_string()));

        let mut cmd = Command::new("timeout");
        cmd.args(["-k", "10", RUN_TIMEOUT]);
        if let Some(file) = strace {
            cmd.args(["strace", "-f", "--seccomp-bpf", "-qq", "-v", "-s", "4096"])
                .args(["-e", "trace=execve", "-e", "signal=none", "-o"])
                .arg(file);
        }
        cmd.arg("nsenter")
            .arg(format!("--net={}", self.netns()))
            .arg(&deploy)
            .args(&argv)
            .env("TMPDIR", self.tmp())
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("TELEM_DB_PASSWORD")
            .stdin(Stdio::null());
        let started = Instant::now();
        let out = cmd.output().expect("run telem-deploy");
        let stdout = text(&out.stdout);
        let json_doc: Value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
        RemoteRun {
            run: Run {
                args: argv.join(" "),
                code: out.status.code(),
                json: json_doc,
                stdout,
                stderr: text(&out.stderr),
                secs: started.elapsed().as_secs_f64(),
            },
        }
    }

    /// Write `password` to a 0600 file on the controller for `--db-password-file`.
    pub fn password_file(&self, password: &str) -> PathBuf {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.dir.path().join("db-password");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .expect("password file");
        f.write_all(password.as_bytes()).expect("write password");
        path
    }

    /// Send a raw HTTP request to ADDR:80 from the controller's namespace; (status, response).
    pub fn http(&self, target: usize, request: &[u8]) -> Result<(u16, String), String> {
        use std::io::Write;
        let script = format!(
            "exec 3<>/dev/tcp/{}/80 || exit 7; cat >&3; timeout 20 cat <&3",
            self.targets[target].addr
        );
        let mut child = self
            .controller("bash")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(request)
            .map_err(|e| e.to_string())?;
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        let response = text(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "HTTP to {}: exit {:?} {}",
                self.targets[target].addr,
                out.status.code(),
                text(&out.stderr)
            ));
        }
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("not an HTTP response: {response:?}"))?;
        Ok((status, response))
    }
    /// Send one raw HTTP request to `addr:80` from the network namespace `netns` and read
    /// exactly one response (its head, then `Content-Length` bytes), so a request without
    /// `Connection: close` (a captured client's) returns as soon as it is answered;
    /// (status, head, body). Everything is bounded by a 30 s `timeout`.
    pub fn request_from(
        netns: &str,
        addr: &str,
        request: &[u8],
    ) -> Result<(u16, String, String), String> {
        use std::io::Write;
        let script = format!(
            r#"exec 3<>/dev/tcp/{addr}/80 || exit 7
cat >&3
len=0
while IFS= read -r line <&3; do
  line=${{line%$'\r'}}
  printf '%s\n' "$line"
  [ -z "$line" ] && break
  case "${{line,,}}" in content-length:*) len=${{line#*:}}; len=${{len// /}};; esac
done
[ "$len" -gt 0 ] && head -c "$len" <&3
exit 0"#
        );
        let mut child = Command::new("timeout")
            .args(["30", "nsenter"])
            .arg(format!("--net={netns}"))
            .args(["bash", "-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(request)
            .map_err(|e| e.to_string())?;
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        let response = text(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "HTTP to {addr}: exit {:?} {} (read: {response:?})",
                out.status.code(),
                text(&out.stderr)
            ));
        }
        let (head, body) = response
            .split_once("\n\n")
            .ok_or_else(|| format!("no complete response head: {response:?}"))?;
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("not an HTTP response: {response:?}"))?;
        Ok((status, head.to_owned(), body.to_owned()))
    }
}

// ---------------------------------------------------------------------------------------------
// The multi-target JSON document

/// One target's outcome in the `telem-deploy/targets` document.
#[derive(Debug, Clone)]
pub struct TargetOutcome {
    pub target: String,
    pub ok: bool,
    pub exit_code: Option<i64>,
    /// The document a local run prints (`telem-deploy/result` or `/plan`), Null when the
    /// target failed before it had one.
    pub report: Value,
    /// `error.message` of a failed target.
    pub error: Option<String>,
    /// The target's own wall time and number of SSH round trips, when the document has them.
    pub seconds: Option<f64>,
    pub round_trips: Option<i64>,
}

/// The only place that knows the field names of the multi-target document (issue 16): adjust
/// here when they change. Err says what is missing.
pub fn parse_targets(doc: &Value) -> Result<(Vec<TargetOutcome>, Value), String> {
    let format = doc["format"].as_str().unwrap_or("");
    if format != "telem-deploy/targets" {
        return Err(format!(
            "format {:?}, want \"telem-deploy/targets\"",
            doc["format"]
        ));
    }
    let list = doc["targets"]
        .as_array()
        .ok_or("no `targets` array in the document")?;
    let mut out = Vec::new();
    for t in list {
        let target = t["target"]
            .as_str()
            .ok_or_else(|| format!("a target without `target`: {t}"))?
            .to_owned();
        let error = match &t["error"] {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            e => Some(
                e["message"]
                    .as_str()
                    .map_or_else(|| e.to_string(), str::to_owned),
            ),
        };
        out.push(TargetOutcome {
            ok: t["ok"].as_bool().unwrap_or(false),
            exit_code: t["exit_code"].as_i64(),
            report: t["report"].clone(),
            error,
            seconds: t["seconds"].as_f64(),
            round_trips: t["ssh_round_trips"].as_i64(),
            target,
        });
    }
    Ok((out, doc["total"].clone()))
}

/// One run of telem-deploy against remote targets.
pub struct RemoteRun {
    /// The whole run: exit status, output, the multi-target document as `json`.
    pub run: Run,
}

impl RemoteRun {
    pub fn code(&self) -> Option<i32> {
        self.run.code
    }

    /// Per-target outcomes, or why the document is not one.
    pub fn outcomes(&self) -> Result<Vec<TargetOutcome>, String> {
        parse_targets(&self.run.json).map(|(t, _)| t)
    }

    /// `total` of the document (`targets`, `ok`, `failed`).
    pub fn total(&self, key: &str) -> i64 {
        parse_targets(&self.run.json)
            .ok()
            .and_then(|(_, total)| total[key].as_i64())
            .unwrap_or(-1)
    }

    pub fn outcome(&self, target: &str) -> Result<TargetOutcome, String> {
        self.outcomes()?
            .into_iter()
            .find(|t| t.target == target)
            .ok_or_else(|| format!("no result for {target}: {}", self.context()))
    }

    /// One target's part as a local-style [`Run`] (its report as `json`, its exit code), for
    /// `Report::expect_ok`/`expect_converged` and e2e_support's checks.
    pub fn target_run(&self, target: &str) -> Run {
        let (code, json, err) = match self.outcome(target) {
            Ok(t) => (
                t.exit_code
                    .map(|c| c as i32)
                    .or(if t.ok { Some(0) } else { None }),
                t.report,
                t.error.unwrap_or_default(),
            ),
            Err(e) => (None, Value::Null, e),
        };
        let prefix = format!("[{target}]");
        let lines: Vec<&str> = self
            .run
            .stderr
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .collect();
        Run {
            args: format!("{} (target {target})", self.run.args),
            code,
            stdout: json.to_string(),
            stderr: format!("{}\nerror: {err}", lines.join("\n")),
            json,
            secs: self.run.secs,
        }
    }

    pub fn context(&self) -> String {
        self.run.context()
    }
}
