//! End-to-end tests of remote provisioning over SSH (issue 16, "Tests"): the real `telem-deploy`
//! runs as the controller in its own network namespace and provisions fresh Debian roots, each in
//! its own network namespace with sshd, over veth links to a bridge (lab_support.rs). Every
//! address (10.77.0.0/24) exists only inside those namespaces.
//!
//! One test per scenario group, sharing sandboxes between phases (a three-target install takes
//! minutes on two cores): the whole life of one target, and three targets at once with one
//! link cut. Without sandbox support they print `skipped: <reason>` and pass, unless
//! `TELEM_E2E_REQUIRED=1`. Timings go to stderr (`--nocapture`).

use std::path::{Path, PathBuf};

use crate::e2e_support::*;
use crate::lab_support::{Lab, LabTarget, RemoteRun};
use crate::sandbox::Sandbox;
use crate::ssh_support::{sshd_host_pid, which};
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

/// Issue 16, one target: dry run (nothing written there or here), install with a nasty
/// password (in no argv or environment on either side), records stored, a converged re-run,
/// then restart, migrate, deploy, resetdb and uninstall as locally (e2e.rs's checks).
#[test]
fn one_remote_target_lives_its_whole_life() {
    let mut rep = Report::new("one_remote_target_lives_its_whole_life");
    let Some(lab) = Lab::start("ssh-life", 1, &mut rep) else {
        return;
    };
    lab.check(&mut rep);
    let t = &lab.targets[0];
    let sb = &t.sb;
    let pw = lab.password_file(PASSWORD);
    let pw = pw.to_str().expect("utf-8 path");
    let fresh_packages = packages(sb);
    let no_strace = strace_missing(&mut rep);

    // Dry run on the fresh root: nothing written on the target (strace of every session, and
    // the root listing), nothing left on the controller.
    let before = root_listing(sb);
    let tracer = (!no_strace).then(|| {
        Tracer::attach(
            sshd_host_pid(sb),
            &lab.dir.path().join("dry-run-trace"),
            &["-y", "-s", "64", "-e", WRITE_CALLS],
        )
        .unwrap_or_else(|e| panic!("{e}"))
    });
    let human = lab.deploy_as(
        &[0],
        &["-a", "install", "--dry-run", "--db-password-file", pw],
        None,
        false,
    );
    figures(&mut rep, "dry run install (human)", &human);
    rep.check(
        human.code() == Some(0) && human.run.stdout.contains(&t.target()),
        format!("human dry run: {}\n{}", human.context(), human.run.stdout),
    );
    let dry = lab.deploy(
        &[0],
        &["-a", "install", "--dry-run", "--db-password-file", pw],
        None,
    );
    figures(&mut rep, "dry run install (json)", &dry);
    expect_totals(&mut rep, "dry run", &dry, 0, 1, 1);
    let plan = dry.target_run(&t.target());
    rep.check(
        plan.json["format"] == "telem-deploy/plan"
            && plan.json["steps"].as_array().is_some_and(|s| !s.is_empty()),
        format!("dry run: no plan for the target: {}", plan.context()),
    );
    if let Some(tracer) = tracer {
        let lines = tracer.stop();
        rep.check(
            lines
                .iter()
                .any(|l| l.contains("execve(") || l.contains("openat(")),
            "the dry run's trace is empty: strace saw no session",
        );
        let writes = file_writes(&lines, sb.root());
        rep.check(
            writes.is_empty(),
            format!(
                "the dry run wrote on the target:\n  {}",
                writes.join("\n  ")
            ),
        );
    }
    let diff = listing_diff(&before, &root_listing(sb));
    rep.check(
        diff.is_empty(),
        format!(
            "the dry run changed the target's root:\n  {}",
            diff.join("\n  ")
        ),
    );
    rep.check(
        lab.tmp_left().is_empty(),
        format!("left in the controller's TMPDIR: {:?}", lab.tmp_left()),
    );
    for run in [&human, &dry] {
        rep.check(
            !run.run.stdout.contains(TOKEN) && !run.run.stderr.contains(TOKEN),
            "the dry run prints the password",
        );
    }

    // Install, every execve on both sides recorded with argv and environment.
    let controller_trace = lab.dir.path().join("install-controller.strace");
    let tracer = (!no_strace).then(|| {
        Tracer::attach(
            sshd_host_pid(sb),
            &lab.dir.path().join("install-trace"),
            &[
                "-v",
                "-s",
                "4096",
                "-e",
                "trace=execve",
                "-e",
                "signal=none",
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"))
    });
    let install = ["-a", "install", "--yes", "--db-password-file", pw];
    let run = lab.deploy(&[0], &install, (!no_strace).then_some(&*controller_trace));
    figures(
        &mut rep,
        "install (fresh, one remote target, under strace)",
        &run,
    );
    expect_totals(&mut rep, "install", &run, 0, 1, 1);
    let r = expect_target_ok(&mut rep, "install", &run, t);
    if let Some(tracer) = tracer {
        let target_lines = tracer.stop();
        let controller_lines: Vec<String> = std::fs::read_to_string(&controller_trace)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        for (side, lines, must) in [
            ("target", &target_lines, "apt-get"),
            ("controller", &controller_lines, "ssh"),
        ] {
            let execs = lines.iter().filter(|l| l.contains("execve(")).count();
            rep.check(
                execs > 10 && lines.iter().any(|l| l.contains(must)),
                format!("the {side}'s trace records {execs} execve, none of {must}"),
            );
            let leaks = password_in(lines);
            rep.check(
                leaks.is_empty(),
                format!(
                    "the password in an argv or environment on the {side}:\n  {}",
                    leaks.join("\n  ")
                ),
            );
        }
    }
    for out in [&run.run.stdout, &run.run.stderr] {
        rep.check(!out.contains(TOKEN), "the install prints the password");
    }
    rep.check(
        lab.tmp_left().is_empty(),
        format!("left in the controller's TMPDIR: {:?}", lab.tmp_left()),
    );
    if !r.ok() {
        return rep.finish();
    }
    check_installed(sb, &mut rep, PASSWORD);
    post_records_over_the_link(&lab, 0, &mut rep);
    password_stays_in_the_config(sb, &mut rep);

    // A converged re-run (the password is the one stored there), and the same locally.
    let rerun = lab.deploy(&[0], &["-a", "install", "--yes"], None);
    figures(&mut rep, "remote converged re-run (one target)", &rerun);
    expect_totals(&mut rep, "install (second run)", &rerun, 0, 1, 1);
    expect_target_converged(&mut rep, "install (second run)", &rerun, t);
    let (deploy_bin, collector) = binaries();
    rep.time("copy binaries in (local comparison)", || {
        for bin in [&deploy_bin, &collector] {
            sb.copy_in(bin, "/opt/telem/")
                .unwrap_or_else(|e| panic!("{e}"));
        }
    });
    let local = deploy(sb, &["-a", "install", "--yes"]);
    rep.expect_converged("local converged re-run (same machine)", local);

    // The other actions, as debian_lifecycle checks them locally.
    let action = |a: &[&str]| -> RemoteRun { lab.deploy(&[0], a, None) };
    let pid_file = sh(sb, "cat /run/telemetry/collector.pid");
    let run = action(&["-a", "restart"]);
    figures(&mut rep, "restart", &run);
    expect_totals(&mut rep, "restart", &run, 0, 1, 1);
    expect_target_ok(&mut rep, "restart", &run, t);
    let after = sh(sb, "cat /run/telemetry/collector.pid");
    rep.check(
        after.is_ok() && after != pid_file,
        format!("collector pid {pid_file:?} -> {after:?} (not restarted)"),
    );
    crate::e2e::check_running(sb, &mut rep, "after restart", 2);
    for a in ["migrate", "deploy"] {
        let run = action(&["-a", a]);
        figures(&mut rep, a, &run);
        expect_totals(&mut rep, a, &run, 0, 1, 1);
        expect_target_converged(&mut rep, a, &run, t);
        crate::e2e::check_running(sb, &mut rep, &format!("after {a}"), 2);
    }
    let old_backups = backups(sb);
    let run = action(&["-a", "resetdb", "--yes"]);
    figures(&mut rep, "resetdb", &run);
    expect_totals(&mut rep, "resetdb", &run, 0, 1, 1);
    let r = expect_target_ok(&mut rep, "resetdb", &run, t);
    if r.ok() {
        let new: Vec<String> = backups(sb).difference(&old_backups).cloned().collect();
        rep.check(
            new.len() == 1,
            format!("resetdb wrote backups {new:?} under {BACKUPS}"),
        );
        crate::e2e::check_running(sb, &mut rep, "after resetdb", 0);
        post_records_over_the_link(&lab, 0, &mut rep);
    }
    let old_backups = backups(sb);
    let run = action(&["-a", "uninstall", "-u", "--yes"]);
    figures(&mut rep, "uninstall -u", &run);
    expect_totals(&mut rep, "uninstall -u", &run, 0, 1, 1);
    let r = expect_target_ok(&mut rep, "uninstall -u", &run, t);
    if r.ok() {
        rep.check(
            backups(sb).len() > old_backups.len(),
            "uninstall wrote no backup",
        );
        crate::e2e::check_uninstalled(sb, &mut rep, &fresh_packages);
    }
    rep.check(
        lab.tmp_left().is_empty(),
        format!("left in the controller's TMPDIR: {:?}", lab.tmp_left()),
    );
    rep.finish();
}

/// Where the cut happens: a `command` step ([`cut_step`]) added to a copy of the recipes (first in the
/// `firewall` slot, after the site is enabled, before nginx is (re)loaded) that, on a target
/// holding [`CUT_MARKER`], kills the sshd session processes it runs under: the SSH connection
/// is gone at that step boundary, deterministically.
const CUT_MARKER: &str = "/root/telem-cut-link";
/// The shell script of [`CUT_STEP`]: kill -KILL every sshd process it descends from but the
/// listener (the session's privileged monitor and its child).
const CUT_SCRIPT: &str = r#"l=$(cat /run/sshd.pid); p=$$; k=
while [ "$p" -gt 1 ]; do
  [ "$(cat /proc/$p/comm)" = sshd ] && [ "$p" != "$l" ] && k="$k $p"
  n=; while read -r key val; do [ "$key" = PPid: ] && n=$val; done < /proc/$p/status
  p=${n:-1}
done
kill -KILL $k"#;

/// The step (YAML, indented for the slot's list) running [`CUT_SCRIPT`] when [`CUT_MARKER`]
/// exists on the target.
fn cut_step() -> String {
    let script: String = CUT_SCRIPT
        .lines()
        .map(|l| format!("            {l}\n"))
        .collect();
    format!(
        "    - name: \"test: cut this target's SSH link here (when {CUT_MARKER} exists)\"\n      command:\n        run:\n          - sh\n          - -c\n          - |\n{script}        only_if: [sh, -c, \"test -e {CUT_MARKER}\"]\n"
    )
}

/// A copy of recipes/ with [`cut_step`] (debian.yaml); its directory.
fn recipes_with_a_cut(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
    let dst = dir.join("recipes");
    std::fs::create_dir_all(&dst).expect("mkdir recipes");
    for e in std::fs::read_dir(&src).expect("recipes/").flatten() {
        std::fs::copy(e.path(), dst.join(e.file_name())).expect("copy recipe");
    }
    let debian = dst.join("debian.yaml");
    let yaml = std::fs::read_to_string(&debian).expect("debian.yaml");
    let anchor = "\n  firewall:\n";
    assert!(yaml.contains(anchor), "debian.yaml has no firewall slot");
    let yaml = yaml.replacen(anchor, &format!("{anchor}{}", cut_step()), 1);
    std::fs::write(&debian, yaml).expect("write debian.yaml");
    dst
}

/// Another run is changing target a (it holds the run lock, as telem-deploy does: `flock` in a
/// session of its own): an install of a and b leaves a as it was (its collector config,
/// removed for the test, not written back) and says why, b goes on; once that run has ended
/// (its session closed), the next install completes a.
fn another_run_holds_the_lock(lab: &Lab, install: &[&str], rep: &mut Report) {
    use std::io::BufRead;
    let a = &lab.targets[0];
    let config = "/etc/telemetry/collector.toml";
    let out = a.sb.exec(&["rm", config]);
    assert!(out.status.success(), "rm {config}");
    let lock = telem_deploy::host::RUN_LOCK;
    let mut holder = lab
        .ssh_command(
            0,
            &["flock", "-n", lock, "sh", "-c", "'echo held; exec cat'"],
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start ssh");
    let mut line = String::new();
    std::io::BufReader::new(holder.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read the holder's line");
    assert_eq!(
        line.trim_end(),
        "held",
        "the other run could not take the lock"
    );
    let run = lab.deploy(&[0, 1], install, None);
    figures(rep, "install while another run holds a's lock", &run);
    let said = run.outcome(&a.target()).ok().and_then(|o| o.error);
    rep.check(
        run.code() == Some(1)
            && said
                .as_deref()
                .is_some_and(|e| e.contains("another telem-deploy run is changing this machine")),
        format!(
            "a's lock held by another run: a said {said:?}; {}",
            run.context()
        ),
    );
    expect_target_ok(rep, "install while a is locked", &run, &lab.targets[1]);
    rep.check(
        !host_path(&a.sb, config).exists(),
        format!("{config} was written back on a while another run held its lock"),
    );
    drop(holder.stdin.take());
    let status = holder.wait().expect("wait for the holder");
    assert!(status.success(), "the holder's session: {status}");
    let run = lab.deploy(&[0], install, None);
    figures(rep, "install once the other run has ended", &run);
    expect_target_ok(rep, "install once the other run has ended", &run, a);
    rep.check(
        host_path(&a.sb, config).exists(),
        format!("{config} not written back once the lock was free"),
    );
}

/// Issue 16, three targets: an unknown host key refused (nothing changed there); a parallel
/// install with one target's link cut at a step boundary (that target fails, the others
/// succeed); a re-run completes it; converged re-runs of three and of one timed.
#[test]
fn three_targets_in_parallel_one_cut() {
    let mut rep = Report::new("three_targets_in_parallel_one_cut");
    let Some(lab) = Lab::start("ssh-three", 3, &mut rep) else {
        return;
    };
    lab.check(&mut rep);
    let recipes = recipes_with_a_cut(lab.dir.path());
    let recipes = recipes.to_str().expect("utf-8 path");
    let pw = lab.password_file(PASSWORD);
    let pw = pw.to_str().expect("utf-8 path");
    let (a, b, c) = (&lab.targets[0], &lab.targets[1], &lab.targets[2]);
    let install = [
        "-a",
        "install",
        "-d",
        "debian",
        "--yes",
        "--recipes",
        recipes,
        "--parallel",
        "3",
        "--db-password-file",
        pw,
    ];

    // An unknown host key: refused before anything is done there.
    lab.write_known_hosts(&[0, 1]);
    let before = root_listing(&c.sb);
    let run = lab.deploy(&[2], &install, None);
    figures(&mut rep, "unknown host key (one target)", &run);
    rep.check(
        run.code().is_some_and(|c| c != 0),
        format!("an unknown host key: exit {:?}", run.code()),
    );
    let said = run
        .outcome(&c.target())
        .ok()
        .and_then(|o| o.error)
        .unwrap_or_else(|| run.run.stderr.clone());
    rep.check(
        said.contains("not in known_hosts") && said.contains(&c.addr),
        format!(
            "an unknown host key: the error says {said:?}; {}",
            run.context()
        ),
    );
    let diff = listing_diff(&before, &root_listing(&c.sb));
    rep.check(
        diff.is_empty(),
        format!("refused, yet the target changed:\n  {}", diff.join("\n  ")),
    );
    lab.write_known_hosts(&[0, 1, 2]);

    // Three installs at once; b's link is cut at the marked step.
    let out = b.sb.exec(&["touch", CUT_MARKER]);
    assert!(out.status.success(), "touch {CUT_MARKER}");
    let run = lab.deploy(&[0, 1, 2], &install, None);
    figures(&mut rep, "install (fresh, three targets, one cut)", &run);
    expect_totals(&mut rep, "install with a cut", &run, 1, 2, 3);
    for t in [a, c] {
        expect_target_ok(&mut rep, "install with a cut", &run, t);
    }
    let cut = run.outcome(&b.target());
    rep.check(
        cut.as_ref().is_ok_and(|o| {
            !o.ok
                && o.exit_code == Some(1)
                && o.error.as_ref().is_some_and(|e| {
                    e.contains("lost the SSH connection") && e.contains(&b.target())
                })
        }),
        format!("the cut target: {cut:?}"),
    );
    rep.check(
        run.run
            .stderr
            .lines()
            .any(|l| l.starts_with(&format!("[{}] ", a.target()))),
        format!("no progress line prefixed [{}]", a.target()),
    );

    // The link back (no marker): a re-run completes b, the others stay converged.
    let out = b.sb.exec(&["rm", CUT_MARKER]);
    assert!(out.status.success(), "rm {CUT_MARKER}");
    let run = lab.deploy(&[0, 1, 2], &install, None);
    figures(
        &mut rep,
        "install (re-run after the cut, three targets)",
        &run,
    );
    expect_totals(&mut rep, "re-run after the cut", &run, 0, 3, 3);
    for t in [a, c] {
        expect_target_converged(&mut rep, "re-run after the cut", &run, t);
    }
    expect_target_ok(&mut rep, "re-run after the cut", &run, b);

    // Converged: three at once (named in a --targets file this time), then one alone (the
    // figures of issue 16).
    let list = lab.dir.path().join("targets");
    let lines: String = lab
        .targets
        .iter()
        .map(|t| format!("# {}\n{}\n\n", t.sb.name(), t.target()))
        .collect();
    std::fs::write(&list, lines).expect("write the targets file");
    let from_file = [&install[..], &["--targets", list.to_str().expect("utf-8")]].concat();
    let run = lab.deploy(&[], &from_file, None);
    figures(
        &mut rep,
        "remote converged re-run (three targets in parallel)",
        &run,
    );
    expect_totals(&mut rep, "converged (three)", &run, 0, 3, 3);
    for t in [a, b, c] {
        expect_target_converged(&mut rep, "converged (three)", &run, t);
    }
    let run = lab.deploy(&[0], &install, None);
    figures(&mut rep, "remote converged re-run (one target)", &run);
    expect_totals(&mut rep, "converged (one)", &run, 0, 1, 1);
    expect_target_converged(&mut rep, "converged (one)", &run, a);

    // One machine under two names (its address, and with sshd's port): the run stops before
    // any change and names both (fleet/identity.rs); three machines sharing one kernel are
    // not taken for one (the runs above).
    let again = format!("{}:22", a.target());
    let twice = [&install[..], &["--target", &again]].concat();
    let before = root_listing(&a.sb);
    let run = lab.deploy(&[0, 1], &twice, None);
    let said = format!("{} and {again} are the same machine", a.target());
    rep.check(
        run.code() == Some(2) && run.run.stderr.contains(&said),
        format!(
            "one machine named twice: want exit 2 and {said:?}; {}",
            run.context()
        ),
    );
    let diff = listing_diff(&before, &root_listing(&a.sb));
    rep.check(
        diff.is_empty(),
        format!(
            "named twice, yet the target changed:\n  {}",
            diff.join("\n  ")
        ),
    );

    another_run_holds_the_lock(&lab, &install, &mut rep);

    for (i, t) in lab.targets.iter().enumerate() {
        check_installed(&t.sb, &mut rep, PASSWORD);
        post_records_over_the_link(&lab, i, &mut rep);
    }
    rep.check(
        lab.tmp_left().is_empty(),
        format!("left in the controller's TMPDIR: {:?}", lab.tmp_left()),
    );
    rep.finish();
}
