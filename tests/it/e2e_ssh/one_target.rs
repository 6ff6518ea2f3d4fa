//! The whole life of one remote target (install, records, converged re-run, dry runs writing
//! nothing on either side, the password in no argv, every other action).

use super::*;

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
