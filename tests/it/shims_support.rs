//! Helpers of the Clear Linux and CentOS shim scenarios (shims.rs): the sandbox with the
//! shims installed, running telem-deploy through them, and the checks of the recorded calls.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Instant;

use serde_json::Value;

use crate::sandbox::Sandbox;

pub(crate) const SHIMS: &str = "/opt/telem-shims";
pub(crate) const BUNDLE: &str = "/opt/telem-deploy";
pub(crate) const CALLS: &str = "var/log/telem-shims/calls.log";
pub(crate) const FORBIDDEN: &str = "var/log/telem-shims/forbidden.log";
pub(crate) const PATH_WITH_SHIMS: &str =
    "PATH=/opt/telem-shims/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Quotes, backslash, dollar, semicolon, spaces and non-ASCII: any password must work.
pub(crate) const PASSWORD: &str = "shim p'w \"q\" \\ $HOME; ünï";
pub(crate) const TID: &str = "6907c830-eed9-4ce9-81ae-76daf8d88f0f";

pub(crate) fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// None when the scenario should be skipped (reason printed), panics if CI requires it.
pub(crate) fn sandbox_or_skip(tag: &str) -> Option<Sandbox> {
    if let Err(why) = Sandbox::available() {
        if std::env::var("TELEM_E2E_REQUIRED").as_deref() == Ok("1") {
            panic!("TELEM_E2E_REQUIRED=1 but sandboxes are not available: {why}");
        }
        eprintln!("skipped: {why}");
        return None;
    }
    Some(Sandbox::start(tag, false).expect("start a sandbox"))
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub(crate) fn show(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// Everything checked, collected; the scenario fails at the end with all of them, so one
/// problem (say, a re-run that changes something) does not hide the later phases.
#[derive(Default)]
pub(crate) struct Problems(pub(crate) Vec<String>);

impl Problems {
    pub(crate) fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            let msg = what();
            eprintln!("PROBLEM: {msg}");
            self.0.push(msg);
        }
    }
}

pub(crate) struct Scenario {
    pub(crate) distro: &'static str,
    /// `systemd` (the systemctl shim) or `direct` (no systemd: the tool runs the daemons).
    pub(crate) manager: &'static str,
    pub(crate) sb: Sandbox,
    /// Shim calls already seen (lines of the calls log).
    pub(crate) seen: usize,
    pub(crate) timings: Vec<(String, f64)>,
}

impl Scenario {
    pub(crate) fn deploy_argv<'a>(&self, action: &'a [&'a str]) -> Vec<&'a str> {
        let mut argv = vec!["env", PATH_WITH_SHIMS, "/opt/telem-deploy/telem-deploy"];
        argv.extend_from_slice(action);
        argv.extend_from_slice(&[
            "-d",
            self.distro,
            "-H",
            "localhost",
            "--yes",
            "--service-manager",
            self.manager,
            "--format",
            "json",
        ]);
        argv
    }

    /// Run telem-deploy with the shims first on PATH (under strace when `trace` is given);
    /// returns its output, its JSON document and the shim calls it made.
    pub(crate) fn deploy(&mut self, label: &str, action: &[&str], trace: Option<&Path>) -> Run {
        let argv = self.deploy_argv(action);
        let t = Instant::now();
        let out = match trace {
            Some(path) => self.sb.strace(path, &argv),
            None => self.sb.exec(&argv),
        };
        let secs = t.elapsed().as_secs_f64();
        eprintln!(
            "[{}] {label}: {secs:.1} s, exit {:?}",
            self.distro,
            out.status.code()
        );
        self.timings.push((label.to_owned(), secs));
        let json = serde_json::from_slice::<Value>(&out.stdout).unwrap_or(Value::Null);
        let all = self.calls();
        let calls = all[self.seen.min(all.len())..].to_vec();
        self.seen = all.len();
        Run { out, json, calls }
    }

    pub(crate) fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.sb.root().join(CALLS))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    pub(crate) fn sh(&self, script: &str) -> Output {
        self.sb.sh(script)
    }
}

pub(crate) struct Run {
    pub(crate) out: Output,
    pub(crate) json: Value,
    pub(crate) calls: Vec<String>,
}

impl Run {
    pub(crate) fn summary(&self, key: &str) -> Option<u64> {
        self.json["summary"][key].as_u64()
    }

    pub(crate) fn steps_with(&self, status: &str) -> Vec<String> {
        self.json["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["status"] == status)
            .map(|s| format!("{} ({})", s["name"].as_str().unwrap_or("?"), s["changes"]))
            .collect()
    }

    pub(crate) fn step_status(&self, kind: &str) -> Vec<String> {
        self.json["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["kind"] == kind)
            .map(|s| s["status"].as_str().unwrap_or("?").to_owned())
            .collect()
    }
}

/// Calls that only look: everything else changes the machine.
pub(crate) fn is_query(call: &str) -> bool {
    let f: Vec<&str> = call.split('\t').collect();
    let arg = |i: usize| f.get(i).copied().unwrap_or("");
    let verb = f
        .iter()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .copied()
        .unwrap_or("");
    match arg(0) {
        "swupd" => verb == "bundle-list",
        // dnf's simulation (it shows the transaction and answers no), and its repository list.
        "yum" | "dnf" => f.contains(&"--assumeno") || verb == "repolist",
        "rpm" | "selinuxenabled" | "getsebool" => true,
        "firewall-cmd" => f[1..]
            .iter()
            .all(|a| *a == "--state" || a.starts_with("--query-service=")),
        "semodule" => arg(1) == "-l",
        "pg_ctl" => verb == "status",
        "systemctl" => matches!(
            verb,
            "is-active" | "is-enabled" | "is-failed" | "status" | "show"
        ),
        _ => false,
    }
}

/// Checks the strace of a run: every real apt-get carries the shims' marker (so a shim ran it)
/// and every dpkg runs while such an apt-get is running (between it and its end marker).
pub(crate) fn check_trace(trace: &Path, problems: &mut Problems) {
    let Ok(log) = std::fs::read_to_string(trace) else {
        problems.check(false, || format!("no strace output in {}", trace.display()));
        return;
    };
    let mut in_apt = false;
    let mut apt_runs = 0;
    for line in log.lines() {
        let Some(rest) = line.split_once("execve(\"").map(|(_, r)| r) else {
            continue;
        };
        if line.contains("= -1 ") {
            continue; // a failed lookup along PATH
        }
        let file = rest.split('"').next().unwrap_or("");
        let base = file.rsplit('/').next().unwrap_or("");
        let shim = file.starts_with(&format!("{SHIMS}/bin/"));
        if file == "/bin/true" && line.contains("telem-shim-apt-done") {
            in_apt = false;
        } else if !shim && matches!(base, "apt-get" | "apt" | "aptitude") {
            apt_runs += 1;
            problems.check(line.contains("Telem::Shim="), || {
                format!("apt run by something else than a shim: {line}")
            });
            in_apt = true;
        } else if !shim && base.starts_with("dpkg") {
            problems.check(in_apt, || {
                format!("dpkg run outside a shim's apt-get: {line}")
            });
        }
    }
    problems.check(apt_runs > 0, || {
        format!("strace saw no apt-get at all in {}", trace.display())
    });
}

/// The package removals among `calls`, each as "tool verb" plus its sorted package names
/// (telem-deploy may order them as it likes).
pub(crate) fn removals(calls: &[String]) -> Vec<String> {
    calls
        .iter()
        .filter_map(|c| {
            let f: Vec<&str> = c.split('\t').collect();
            let verb = *f.iter().skip(1).find(|a| !a.starts_with('-'))?;
            if !matches!(verb, "bundle-remove" | "remove" | "erase") || f.contains(&"--assumeno") {
                return None;
            }
            let mut names: Vec<&str> = f
                .iter()
                .skip(1)
                .filter(|a| !a.starts_with('-') && **a != verb)
                .copied()
                .collect();
            names.sort_unstable();
            Some(format!("{} {verb} {}", f[0], names.join(" ")))
        })
        .collect()
}

pub(crate) fn golden_path(distro: &str) -> PathBuf {
    repo().join(format!("tests/shims/expected-{distro}.txt"))
}

pub(crate) fn check_golden(distro: &str, actual: &str, problems: &mut Problems) {
    let path = golden_path(distro);
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::write(&path, actual).expect("write golden file");
        eprintln!("[{distro}] wrote {}", path.display());
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    problems.check(expected == actual, || {
        let diff = similar::TextDiff::from_lines(expected.as_str(), actual)
            .unified_diff()
            .header(&path.display().to_string(), "recorded")
            .to_string();
        format!(
            "the shim calls differ from {} (UPDATE_GOLDEN=1 to accept):\n{diff}",
            path.display()
        )
    });
}

/// POST a header-format (format 4) record through nginx; returns the HTTP status line.
pub(crate) fn post_record(sc: &Scenario) -> String {
    let script = format!(
        r#"set -e
body='hello from the {distro} shim scenario'
exec 3<>/dev/tcp/127.0.0.1/80
printf 'POST /v2/collector HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/text\r\nContent-Length: %d\r\nX-Telemetry-TID: {TID}\r\nrecord_format_version: 4\r\nseverity: 2\r\nclassification: org.clearlinux/shims/{distro}\r\nmachine_id: 0123456789abcdef0123456789abcdef\r\ncreation_timestamp: %d\r\narch: x86_64\r\nhost_type: shim-scenario\r\nkernel_version: 6.1.0-shim\r\nbuild: 41000\r\npayload_format_version: 1\r\nsystem_name: clear-linux-os\r\nboard_name: shim\r\ncpu_model: shim\r\nbios_version: shim\r\nevent_id: 0123456789abcdef0123456789abcdef\r\n\r\n%s' "${{#body}}" "$(date +%s)" "$body" >&3
head -n 1 <&3
"#,
        distro = sc.distro
    );
    let out = sc.sh(&script);
    text(&out.stdout).trim().to_owned() + &text(&out.stderr)
}

/// `psql` as role telemetry over TCP with `password`; Ok(stdout) or Err(output).
pub(crate) fn psql_tcp(sc: &Scenario, password: &str, sql: &str) -> Result<String, String> {
    let out = sc.sb.exec_env(
        &[("PGPASSWORD", password)],
        &[
            "psql",
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            "5432",
            "-U",
            "telemetry",
            "-d",
            "telemetry",
            "-tAc",
            sql,
        ],
    );
    if out.status.success() {
        Ok(text(&out.stdout).trim().to_owned())
    } else {
        Err(show(&out))
    }
}

/// A fresh sandbox with the bundle, the shims, the state of a fresh `release` machine, the
/// password file and the package-tool guards (checked); None when skipped.
pub(crate) fn prepare(release: &'static str, manager: &'static str, tag: &str) -> Option<Scenario> {
    let distro = if release.starts_with("clr") {
        "clr"
    } else {
        "centos"
    };
    let sb = sandbox_or_skip(tag)?;
    let sc = Scenario {
        distro,
        manager,
        sb,
        seen: 0,
        timings: Vec::new(),
    };
    // The bundle as an operator would unpack it, the shims, a fresh machine's state.
    let deploy_bin = PathBuf::from(env!("CARGO_BIN_EXE_telem-deploy"));
    let collector_bin = deploy_bin.with_file_name("telem-collector");
    assert!(
        collector_bin.exists(),
        "{} is missing: build the workspace (cargo build --workspace)",
        collector_bin.display()
    );
    sc.sb
        .copy_in(&deploy_bin, &format!("{BUNDLE}/telem-deploy"))
        .unwrap();
    sc.sb
        .copy_in(&collector_bin, &format!("{BUNDLE}/telem-collector"))
        .unwrap();
    sc.sb.copy_in(&repo().join("tests/shims"), SHIMS).unwrap();
    let out = sc.sh(&format!("{SHIMS}/setup {release}"));
    assert!(out.status.success(), "shim setup: {}", show(&out));
    let out = sc.sb.exec_with_stdin(
        &["sh", "-c", "umask 077 && cat > /root/pw"],
        PASSWORD.as_bytes(),
    );
    assert!(out.status.success(), "password file: {}", show(&out));
    // The guard bites: the real dpkg-query, called by absolute path, refuses and is recorded.
    let out = sc.sb.exec(&["/usr/bin/dpkg-query", "-W", "nginx"]);
    let forbidden = std::fs::read_to_string(sc.sb.root().join(FORBIDDEN)).unwrap_or_default();
    assert!(
        out.status.code() == Some(97) && forbidden.contains("dpkg-query\t-W\tnginx"),
        "the package tool guard does not work: {}\nforbidden.log: {forbidden:?}",
        show(&out)
    );
    std::fs::write(sc.sb.root().join(FORBIDDEN), "").expect("reset forbidden.log");
    Some(sc)
}
