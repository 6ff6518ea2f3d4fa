//! End-to-end tests of remote provisioning over SSH (issue 16, "Tests"): the real `telem-deploy`
//! runs as the controller in its own network namespace and provisions fresh Debian roots, each in
//! its own network namespace with sshd, over veth links to a bridge (lab_support.rs). Every
//! address (10.77.0.0/24) exists only inside those namespaces.
//!
//! One test per scenario group, sharing sandboxes between phases (a three-target install takes
//! minutes on two cores): the whole life of one target, and three targets at once with one
//! link cut. Without sandbox support they print `skipped: <reason>` and pass, unless
//! `TELEM_E2E_REQUIRED=1`. Timings go to stderr (`--nocapture`).
//!
//! This file holds the shared checks and the lab's own test; the scenarios are
//! `one_target.rs` and `three_targets.rs`.

use std::path::{Path, PathBuf};

use crate::e2e_support::*;
use crate::lab_support::{Lab, LabTarget, RemoteRun};
use crate::sandbox::Sandbox;
use crate::ssh_support::{sshd_host_pid, which};
mod one_target;
mod three_targets;

use three_targets::{recipes_with_a_cut, CUT_SCRIPT};

use crate::target_watch::{
    file_writes, listing_diff, root_listing, strace_missing, Tracer, WRITE_CALLS,
};

/// Every character class that breaks naive quoting, spaces and non-ASCII; the ASCII token
/// `Zq7Tok` finds it in escaped forms too (strace, JSON, TOML).
const PASSWORD: &str = "it's \"remote\" \\ $USER ; pässwörd ✓ `id` Zq7Tok";
const TOKEN: &str = "Zq7Tok";

/// Lines (of an execve trace) holding the password, raw, escaped by strace, or by its token.
fn password_in(lines: &[String]) -> Vec<String> {
    let escaped = PASSWORD.replace('\\', "\\\\").replace('"', "\\\"");
    lines
        .iter()
        .filter(|l| l.contains(TOKEN) || l.contains(PASSWORD) || l.contains(&escaped))
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Checks over the lab

/// The run's wall time, and each target's own time and SSH round trips (the figures of issue
/// 16), into the report's timings.
fn figures(rep: &mut Report, phase: &str, run: &RemoteRun) {
    rep.timing(phase, run.run.secs);
    for o in run.outcomes().unwrap_or_default() {
        if let (Some(secs), Some(trips)) = (o.seconds, o.round_trips) {
            rep.timing(
                &format!("{phase}: {} ({trips} SSH round trips)", o.target),
                secs,
            );
        }
    }
}

/// A target's part of a run that must succeed; returns it as a local-style [`Run`].
fn expect_target_ok(rep: &mut Report, phase: &str, run: &RemoteRun, t: &LabTarget) -> Run {
    let r = run.target_run(&t.target());
    let ok = r.ok() && r.summary("failed") == 0;
    rep.check(ok, format!("{phase} on {}: {}", t.target(), r.context()));
    r
}

/// A target's part of a run that must report nothing changed.
fn expect_target_converged(rep: &mut Report, phase: &str, run: &RemoteRun, t: &LabTarget) {
    let r = expect_target_ok(rep, phase, run, t);
    let changed = r.summary("changed");
    rep.check(
        changed == 0,
        format!(
            "{phase} on {}: {changed} changed, want 0: {:?}",
            t.target(),
            r.steps("changed")
        ),
    );
}

/// The whole run exited `code` and its document counts `ok` good targets of `total`.
fn expect_totals(rep: &mut Report, phase: &str, run: &RemoteRun, code: i32, ok: i64, total: i64) {
    rep.check(
        run.code() == Some(code),
        format!(
            "{phase}: exit {:?}, want {code}: {}",
            run.code(),
            run.context()
        ),
    );
    let outcomes = run.outcomes();
    rep.check(
        outcomes.as_ref().is_ok_and(|o| o.len() as i64 == total),
        format!("{phase}: per-target results: {outcomes:?}"),
    );
    let (t, o, f) = (run.total("targets"), run.total("ok"), run.total("failed"));
    rep.check(
        (t, o, f) == (total, ok, total - ok),
        format!(
            "{phase}: total {{targets {t}, ok {o}, failed {f}}}, want {{{total}, {ok}, {}}}",
            total - ok
        ),
    );
}

/// Post both fixture records to the target's nginx from the controller, over the link; each
/// must be 201 and stored.
fn post_records_over_the_link(lab: &Lab, i: usize, rep: &mut Report) {
    let sb = &lab.targets[i].sb;
    for (file, machine) in [
        ("v2-headers.http", MACHINES[0]),
        ("v3-json.http", MACHINES[1]),
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/e2e")
            .join(file);
        let raw = std::fs::read(&path).expect("fixture");
        let status = lab.http(i, &raw).map(|(s, _)| s);
        rep.check(
            status == Ok(201),
            format!(
                "POST {file} to {} from the controller: {status:?}",
                lab.targets[i].addr
            ),
        );
        let q = format!("select count(*) from records where machine_id = '{machine}'");
        let n = sql(sb, "telemetry", &q);
        rep.check(
            n.as_deref() == Ok("1"),
            format!("rows of {machine} after POST {file}: {n:?}"),
        );
    }
}

/// After the install: the password is in no file the install wrote (logs included) but the
/// collector's config, and in no process's argv or environment on the target.
fn password_stays_in_the_config(sb: &Sandbox, rep: &mut Report) {
    fn files(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            match e.file_type() {
                Ok(ft) if ft.is_dir() => files(&e.path(), out),
                Ok(ft) if ft.is_file() => out.push(e.path()),
                _ => {}
            }
        }
    }
    let mut written = Vec::new();
    files(sb.upper_dir(), &mut written);
    let config = sb.upper_dir().join(CONFIG.trim_start_matches('/'));
    let holding: Vec<String> = written
        .iter()
        .filter(|f| **f != config)
        .filter(|f| {
            let body = std::fs::read(f).unwrap_or_default();
            String::from_utf8_lossy(&body).contains(TOKEN)
        })
        .map(|f| f.display().to_string())
        .collect();
    rep.check(
        holding.is_empty() && written.len() > 1000,
        format!(
            "files on the target holding the password (of {} written): {holding:?}",
            written.len()
        ),
    );
    rep.check(
        std::fs::read_to_string(&config).is_ok_and(|c| c.contains(TOKEN)),
        "control: the collector's config does not hold the password",
    );
    let procs = sh(
        sb,
        "grep -l -a -e 'Zq7T[o]k' /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null; true",
    );
    rep.check(
        procs.as_deref() == Ok(""),
        format!("process environments/argv on the target hold the password: {procs:?}"),
    );
}

// ---------------------------------------------------------------------------------------------
// The tests

/// The harness itself: the controller's namespace reaches each sandbox's sshd over its link
/// with a plain `ssh`, the host's interfaces have no lab address, and everything is gone after
/// a panic (namespace holder, sandboxes).
#[test]
fn lab_links_the_controller_to_each_sandbox() {
    let mut rep = Report::new("lab_links_the_controller_to_each_sandbox");
    let left = std::sync::Mutex::new(None);
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut inner = Report::new("lab");
        let Some(lab) = Lab::start("lab-check", 2, &mut inner) else {
            return;
        };
        lab.check(&mut inner);
        // The sandboxes reach each other and the controller only through the bridge.
        let out = lab.targets[0].sb.exec(&[
            "bash",
            "-c",
            "exec 3<>/dev/tcp/10.77.0.12/22 && head -c 4 <&3",
        ]);
        inner.check(
            text(&out.stdout) == "SSH-",
            format!(
                "sandbox 1 -> 10.77.0.12:22: {} {}",
                text(&out.stdout),
                text(&out.stderr)
            ),
        );
        controls(&lab, &mut inner);
        let holder = lab.netns();
        let names: Vec<String> = lab.targets.iter().map(|t| t.sb.name().to_owned()).collect();
        *left.lock().unwrap() = Some((holder, names, inner));
        // Unwinding as a panic does (without the hook's noise): the lab must be cleaned up.
        std::panic::resume_unwind(Box::new("on purpose"));
    }));
    let Some((netns, names, inner)) = left.lock().unwrap().take() else {
        if let Err(panic) = unwound {
            std::panic::resume_unwind(panic); // Lab::start failed (or TELEM_E2E_REQUIRED)
        }
        return rep.finish(); // skipped
    };
    rep.absorb(inner);
    rep.check(unwound.is_err(), "the closure did not panic");
    rep.check(
        !Path::new(&netns).exists(),
        format!("{netns}: the controller's namespace holder still runs"),
    );
    let run_dir = std::env::var("TELEM_SANDBOX_RUN").unwrap_or("/tmp/telem-sandbox".into());
    for name in names {
        let dir = Path::new(&run_dir).join(&name);
        rep.check(!dir.exists(), format!("{} is left", dir.display()));
    }
    rep.finish();
}

/// The lab test's checks of the tools the scenarios rely on, each against a positive control:
/// the write detector (strace of sshd) and the root listing see a session that writes a file
/// and nothing for one that only reads; the cut script drops the connection (ssh's 255) and
/// leaves the listener; the recipes with the cut step load.
fn controls(lab: &Lab, rep: &mut Report) {
    let sb = &lab.targets[0].sb;
    let before = root_listing(sb);
    if which("strace").is_some() {
        let dir = lab.dir.path().join("control-trace");
        let tracer = Tracer::attach(
            sshd_host_pid(sb),
            &dir,
            &["-y", "-s", "64", "-e", WRITE_CALLS],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let read = lab.ssh(0, &["cat", "/etc/hostname", "/etc/os-release"]);
        let write = lab.ssh(0, &["sh", "-c", "'echo x > /root/lab-probe'"]);
        let lines = tracer.stop();
        rep.check(
            read.status.success() && write.status.success(),
            format!("control sessions: {read:?} {write:?}"),
        );
        let writes = file_writes(&lines, sb.root());
        rep.check(
            !writes.is_empty() && writes.iter().all(|l| l.contains("/root/lab-probe")),
            format!(
                "the write detector: want only /root/lab-probe, found:\n  {}",
                writes.join("\n  ")
            ),
        );
    } else {
        let write = lab.ssh(0, &["sh", "-c", "'echo x > /root/lab-probe'"]);
        rep.check(
            write.status.success(),
            format!("control session: {write:?}"),
        );
    }
    let diff = listing_diff(&before, &root_listing(sb));
    rep.check(
        diff.len() == 1 && diff[0].starts_with("+ /root/lab-probe file 644 0:0 size 2 "),
        format!(
            "the root listing: want only + /root/lab-probe, found:\n  {}",
            diff.join("\n  ")
        ),
    );
    let script = format!("'{}'", CUT_SCRIPT.replace('\'', "'\\''"));
    let cut = lab.ssh(0, &["sh", "-c", &script]);
    rep.check(
        cut.status.code() == Some(255),
        format!(
            "the cut script over ssh: {:?} {}",
            cut.status.code(),
            text(&cut.stderr)
        ),
    );
    let again = lab.ssh(0, &["true"]);
    rep.check(
        again.status.success(),
        format!("ssh after the cut: {again:?}"),
    );
    let dir = recipes_with_a_cut(lab.dir.path());
    let loaded = telem_deploy::recipe::load(telem_deploy::cli::Distro::Debian, Some(&dir));
    rep.check(
        loaded.is_ok(),
        format!(
            "the recipes with the cut step: {:?}",
            loaded.err().map(|e| e.to_string())
        ),
    );
}
