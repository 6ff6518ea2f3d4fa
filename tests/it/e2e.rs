//! End-to-end runs of the real `telem-deploy` on a fresh Debian root (issue 3 items 6 and 8,
//! issue 2 item 6): every test starts its own sandbox (tests/sandbox/, tests/support/sandbox.rs)
//! with a private network namespace, copies the built binaries to /opt/telem/ and runs them as a
//! user would. Without sandbox support a test prints `skipped: <reason>` and passes, unless
//! `TELEM_E2E_REQUIRED=1` (CI), which turns that into a failure.
//!
//! Checks that do not stop the scenario are collected (`Report::check`) and reported together at
//! the end, so one run shows every broken expectation; timings go to stderr (`--nocapture`).

use crate::e2e_support::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// Every character class that breaks naive quoting, spaces and non-ASCII; the ASCII token
/// `Zq0Tok` finds the password in escaped forms too (strace, JSON, TOML).
const LIFECYCLE_PASSWORD: &str = "it's \"e2e\" \\ $USER ; pässwörd ✓ Zq0Tok";

/// Issue 3 item 6: install on a fresh Debian root, then every action, checked from inside.
#[test]
fn debian_lifecycle() {
    let mut rep = Report::new("debian_lifecycle");
    let Some(sb) = sandbox("e2e-lifecycle", false, &mut rep) else {
        return;
    };
    password_file(&sb, LIFECYCLE_PASSWORD);
    let fresh_packages = packages(&sb);
    let d = ["-d", "debian"];

    // install on the fresh root, then use it as a client would
    let install = DEBIAN_INSTALL;
    let run = rep.expect_ok("install (fresh)", deploy(&sb, &install));
    if !run.ok() {
        return rep.finish();
    }
    check_installed(&sb, &mut rep, LIFECYCLE_PASSWORD);
    post_records(&sb, &mut rep);

    // a converged re-run changes nothing (its time is reported with the timings, not checked:
    // speed belongs to the figures in doc/ssh.md, not to a timed test)
    rep.expect_converged("install (second run)", deploy(&sb, &install));

    // restart: new collector process, same data, healthy
    let pid_file = sh(&sb, "cat /run/telemetry/collector.pid");
    rep.expect_ok("restart", deploy(&sb, &["-a", "restart", d[0], d[1]]));
    let after = sh(&sb, "cat /run/telemetry/collector.pid");
    rep.check(
        after.is_ok() && after != pid_file,
        format!("collector pid {pid_file:?} -> {after:?} (not restarted)"),
    );
    check_running(&sb, &mut rep, "after restart", 2);

    // migrate and deploy on an installed host: nothing to do, still healthy
    rep.expect_converged("migrate", deploy(&sb, &["-a", "migrate", d[0], d[1]]));
    check_running(&sb, &mut rep, "after migrate", 2);
    rep.expect_converged("deploy", deploy(&sb, &["-a", "deploy", d[0], d[1]]));
    check_running(&sb, &mut rep, "after deploy", 2);

    // resetdb: a backup holding the records, then an empty, migrated, served database
    let old_backups = backups(&sb);
    let run = rep.expect_ok(
        "resetdb",
        deploy(&sb, &["-a", "resetdb", d[0], d[1], "--yes"]),
    );
    if !run.ok() {
        return rep.finish(); // the state checks below would only repeat the failure
    }
    let new: Vec<String> = backups(&sb).difference(&old_backups).cloned().collect();
    rep.check(
        new.len() == 1,
        format!("resetdb wrote backups {new:?} under {BACKUPS}"),
    );
    // The engine's note of it is in the step's report (JSON), not loose on stderr.
    let noted = run.json["steps"].as_array().is_some_and(|steps| {
        steps.iter().any(|s| {
            s["kind"] == "postgres_backup"
                && s["notes"].as_array().is_some_and(|n| {
                    n.iter().any(|n| {
                        n.as_str().is_some_and(|n| {
                            n.starts_with("backup of database telemetry written to")
                        })
                    })
                })
        })
    });
    rep.check(noted, "resetdb's result does not note the backup it wrote");
    if let Some(file) = new.first() {
        let dump = sh(
            &sb,
            &format!("pg_restore -f - {BACKUPS}/{file} || cat {BACKUPS}/{file}"),
        );
        let has = dump
            .as_ref()
            .is_ok_and(|d| MACHINES.iter().all(|m| d.contains(m)));
        rep.check(
            has,
            format!("backup {file} does not hold the posted records"),
        );
    }
    check_running(&sb, &mut rep, "after resetdb", 0);
    post_records(&sb, &mut rep);

    // uninstall -u: back to the fresh root (packages, site, collector, database)
    let old_backups = backups(&sb);
    let uninstall = ["-a", "uninstall", "-u", "--yes", d[0], d[1]];
    let run = rep.expect_ok("uninstall -u", deploy(&sb, &uninstall));
    if !run.ok() {
        return rep.finish();
    }
    let dropped = run.json["steps"].as_array().is_some_and(|s| {
        s.iter()
            .any(|s| s["name"] == "Drop the database" && s["status"] == "changed")
    });
    rep.check(
        dropped,
        "uninstall did not report 'Drop the database' as changed",
    );
    rep.check(
        backups(&sb).len() > old_backups.len(),
        "uninstall wrote no backup",
    );
    check_uninstalled(&sb, &mut rep, &fresh_packages);
    rep.finish();
}

/// Collector healthy through nginx with `records` rows of our machines.
pub(crate) fn check_running(
    sb: &crate::sandbox::Sandbox,
    rep: &mut Report,
    when: &str,
    records: usize,
) {
    if let Err(e) = healthy(sb) {
        rep.check(false, format!("{when}: {e}"));
    }
    let q = format!(
        "select count(*) from records where machine_id in ('{}', '{}')",
        MACHINES[0], MACHINES[1]
    );
    let n = sql(sb, "telemetry", &q);
    rep.check(
        n == Ok(records.to_string()),
        format!("{when}: {n:?} records, want {records}"),
    );
}

/// After `uninstall -u`: nothing of the deployment is left and the package set is the fresh one.
pub(crate) fn check_uninstalled(
    sb: &crate::sandbox::Sandbox,
    rep: &mut Report,
    fresh: &BTreeSet<String>,
) {
    for path in [
        SITE,
        SITE_LINK,
        COLLECTOR,
        CONFIG,
        "/etc/telemetry",
        "/run/telemetry/collector.pid",
    ] {
        rep.check(
            !exists(sb, path),
            format!("{path} is still there after uninstall"),
        );
    }
    let link = std::fs::read_link(host_path(sb, DEFAULT_SITE));
    let restored = link
        .as_ref()
        .is_ok_and(|l| l == Path::new("/etc/nginx/sites-available/default"));
    rep.check(restored, format!("{DEFAULT_SITE} not restored: {link:?}"));
    let left = pids_of(sb, "telem-collector");
    rep.check(
        left.is_empty(),
        format!("telem-collector still runs: {left:?}"),
    );
    rep.check(
        sh(sb, "id -u telem-collector").is_err(),
        "user telem-collector is still there",
    );
    let now = packages(sb);
    for p in ["nginx", "postgresql"] {
        rep.check(!now.contains(p), format!("package {p} is still installed"));
    }
    let added: Vec<&String> = now.difference(fresh).collect();
    let removed: Vec<&String> = fresh.difference(&now).collect();
    rep.check(
        added.is_empty() && removed.is_empty(),
        format!("packages after uninstall -u differ from the fresh root: left installed {added:?}, removed {removed:?}"),
    );
    // The database: ask the cluster if a server is still installed (it should not be).
    if sh(sb, "command -v pg_ctlcluster").is_ok() && sh(sb, "pg_ctlcluster 15 main start").is_ok() {
        let db = sql(
            sb,
            "postgres",
            "select count(*) from pg_database where datname = 'telemetry'",
        );
        let role = sql(
            sb,
            "postgres",
            "select count(*) from pg_roles where rolname = 'telemetry'",
        );
        rep.check(
            db.as_deref() == Ok("0"),
            format!("database telemetry still exists: {db:?}"),
        );
        rep.check(
            role.as_deref() == Ok("0"),
            format!("role telemetry still exists: {role:?}"),
        );
        let _ = sh(sb, "pg_ctlcluster 15 main stop");
    }
    let port80 = get(sb, DOMAIN, "/healthz");
    rep.check(
        port80.is_err(),
        format!("port 80 still answers after uninstall -u: {port80:?}"),
    );
}

/// Issue 2 item 6: dry runs of every action leave the root file system untouched.
#[test]
fn dry_runs_leave_the_root_untouched() {
    let mut rep = Report::new("dry_runs_leave_the_root_untouched");
    let Some(sb) = sandbox("e2e-dryrun", false, &mut rep) else {
        return;
    };
    let baseline = sb.changes().expect("changes");
    for bin in ["telem-deploy", "telem-collector"] {
        let line = format!("A /opt/telem/{bin}");
        assert!(
            baseline.contains(&line),
            "{line} not in changes(): {baseline:?}"
        );
    }
    for action in [
        "deploy",
        "install",
        "migrate",
        "resetdb",
        "restart",
        "uninstall",
    ] {
        // human plan, then the JSON plan
        let argv = [
            DEPLOY,
            "-a",
            action,
            "-d",
            "debian",
            "-H",
            DOMAIN,
            "--dry-run",
        ];
        let started = Instant::now();
        let out = sb.exec(&argv);
        rep.timing(
            &format!("dry run {action}"),
            started.elapsed().as_secs_f64(),
        );
        let code = out.status.code();
        rep.check(
            code == Some(0),
            format!("dry run {action} exited {code:?}: {}", text(&out.stderr)),
        );
        let run = rep.expect_ok(
            &format!("dry run {action} (json)"),
            deploy(&sb, &["-a", action, "-d", "debian", "--dry-run"]),
        );
        let plan = run.json["steps"].as_array().map_or(0, Vec::len);
        rep.check(
            plan > 0,
            format!("dry run {action}: no JSON plan on stdout: {:?}", run.stdout),
        );
    }
    let after = sb.changes().expect("changes");
    let new: Vec<&String> = after.iter().filter(|c| !baseline.contains(c)).collect();
    rep.check(
        new.is_empty() && after.len() == baseline.len(),
        format!("dry runs changed the root: {new:?}"),
    );
    rep.finish();
}

const SECRET_1: &str = "first 'Pw' \"q\" \\ $HOME ; Grüße Zq1Tok";
const SECRET_2: &str = "new 'pw' \"x\" \\\\ $PATH ; ünïcødé ☃ Zq2Tok end";
/// ASCII tokens inside the secrets: found even where a secret shows up escaped.
const TOKENS: [&str; 2] = ["Zq1Tok", "Zq2Tok"];

/// Which secrets (raw or escaped, via their tokens) `hay` holds.
fn leaks(hay: &[u8]) -> Vec<&'static str> {
    let hay = String::from_utf8_lossy(hay);
    [SECRET_1, SECRET_2, TOKENS[0], TOKENS[1]]
        .into_iter()
        .filter(|s| hay.contains(s))
        .collect()
}

/// Files under `dir` (host view), recursively, without following symlinks.
fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() {
            files_under(&entry.path(), out);
        } else if ft.is_file() {
            out.push(entry.path());
        }
    }
}

/// Issue 3 item 8, with `-d ubuntu`: the password (given only through TELEM_DB_PASSWORD) is in no
/// argv of the process tree, no log (PostgreSQL's with log_statement = 'all' included: it
/// shows neither the password nor the SCRAM verifier, whose session turns statement logging
/// off), no output or plan, no process environment; only in the collector's config, which works.
#[test]
fn ubuntu_install_keeps_secrets() {
    let mut rep = Report::new("ubuntu_install_keeps_secrets");
    let Some(sb) = sandbox("e2e-secrets", false, &mut rep) else {
        return;
    };
    // Workaround, not part of the scenario: the direct service manager runs `kill`, which is
    // procps' /bin/kill and missing on a minbase root (debian_lifecycle fails on that bug);
    // this test is about secrets, so it provides the program. Remove once the bug is fixed.
    sh(&sb, "apt-get install -y -q procps").expect("apt-get install procps");
    let traces = tempfile::tempdir().expect("tempdir");
    let (trace_1, trace_2) = (
        traces.path().join("install-1.strace"),
        traces.path().join("install-2.strace"),
    );
    let install = ["-a", "install", "-d", "ubuntu", "--yes"];
    let mut runs = Vec::new();

    // 1. fresh install, password from the environment only, every execve recorded
    let env_1 = [("TELEM_DB_PASSWORD", SECRET_1)];
    let run = rep.expect_ok(
        "install 1 under strace",
        deploy_run(&sb, &env_1, &install, Some(&trace_1)),
    );
    let installed = run.ok();
    runs.push(run);
    if !installed {
        return rep.finish();
    }
    // 2. PostgreSQL logs every statement from now on
    let log_all = "v=$(pg_lsclusters -h | awk '{print $1; exit}'); \
        printf \"log_statement = 'all'\\nlog_connections = on\\n\" > /etc/postgresql/$v/main/conf.d/zz-e2e-log.conf && \
        pg_ctlcluster $v main reload";
    sh(&sb, log_all).expect("enable log_statement = 'all'");
    let shown = wait_until(Duration::from_secs(10), || {
        sql(&sb, "postgres", "show log_statement").as_deref() == Ok("all")
    });
    rep.check(shown, "log_statement = 'all' did not take effect");
    // 3. a new password through the environment: the role's password and the config change
    let env_2 = [("TELEM_DB_PASSWORD", SECRET_2)];
    let run = rep.expect_ok(
        "install 2 (new password) under strace",
        deploy_run(&sb, &env_2, &install, Some(&trace_2)),
    );
    let set = run.json["steps"].as_array().is_some_and(|s| {
        s.iter()
            .any(|s| s["kind"] == "postgres_password" && s["status"] == "changed")
    });
    rep.check(
        set,
        format!("install 2 did not set the new password: {}", run.context()),
    );
    runs.push(run);
    // 4. the plan (JSON and human) and --help, with the password in the environment
    runs.push(deploy_run(
        &sb,
        &env_2,
        &["-a", "install", "-d", "ubuntu", "--dry-run"],
        None,
    ));
    for argv in [
        vec![
            DEPLOY,
            "-a",
            "install",
            "-d",
            "ubuntu",
            "-H",
            DOMAIN,
            "--dry-run",
            "-v",
        ],
        vec![DEPLOY, "--help"],
    ] {
        let out = sb.exec_env(&env_2, &argv);
        rep.check(
            out.status.success(),
            format!("{argv:?} exited {:?}", out.status.code()),
        );
        rep.check(
            leaks(&out.stdout).is_empty() && leaks(&out.stderr).is_empty(),
            format!("{argv:?} prints the password"),
        );
    }
    for run in &runs {
        let found = [leaks(run.stdout.as_bytes()), leaks(run.stderr.as_bytes())].concat();
        rep.check(
            found.is_empty(),
            format!("`telem-deploy {}` output holds {found:?}", run.args),
        );
    }
    rep.check(
        runs[2].json["steps"]
            .as_array()
            .is_some_and(|s| !s.is_empty()),
        "the dry run printed no JSON plan",
    );

    // argv of every process of both installs
    for (file, must) in [(&trace_1, "apt-get"), (&trace_2, "telem-collector")] {
        let trace = std::fs::read(file).unwrap_or_default();
        let execs = String::from_utf8_lossy(&trace).matches("execve(").count();
        rep.check(
            execs > 20 && String::from_utf8_lossy(&trace).contains(must),
            format!("{} records {execs} execve, none of {must}", file.display()),
        );
        let found = leaks(&trace);
        rep.check(
            found.is_empty(),
            format!("an argv in {} holds {found:?}", file.display()),
        );
    }
    // logs, PostgreSQL's statement log included: it shows the password's session turning
    // statement logging off, then neither the password nor the verifier
    let mut logs = Vec::new();
    files_under(&host_path(&sb, "/var/log"), &mut logs);
    let mut statement_log = false;
    for log in &logs {
        let body = std::fs::read(log).unwrap_or_default();
        let found = leaks(&body);
        rep.check(
            found.is_empty(),
            format!("{} holds {found:?}", log.display()),
        );
        let text = String::from_utf8_lossy(&body);
        statement_log |= text.contains("statement: SET log_statement = 'none'");
        rep.check(
            !text.contains("SCRAM-SHA-256$"),
            format!("{} holds the SCRAM verifier", log.display()),
        );
    }
    rep.check(statement_log, format!("no log under /var/log shows the statements of setting the password (log_statement = 'all'?): {logs:?}"));
    // every file the installs created or changed (overlay upper dir: packages, PostgreSQL's
    // data and WAL, state file, configs), except the one that must hold it
    let mut written = Vec::new();
    files_under(sb.upper_dir(), &mut written);
    let config = sb.upper_dir().join(CONFIG.trim_start_matches('/'));
    for file in written.iter().filter(|f| **f != config) {
        let found = leaks(&std::fs::read(file).unwrap_or_default());
        rep.check(
            found.is_empty(),
            format!("{} holds {found:?}", file.display()),
        );
    }
    rep.check(
        written.len() > 1000,
        format!("only {} files in the upper dir", written.len()),
    );
    // every running process: environment and command line (the pattern does not match itself)
    let procs = sh(
        &sb,
        "grep -l -a -e 'Zq[12]T[o]k' /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null; true",
    );
    rep.check(
        procs.as_deref() == Ok(""),
        format!("process environments/argv hold the password: {procs:?}"),
    );
    let collector = sh(
        &sb,
        "p=$(cat /run/telemetry/collector.pid) && cat /proc/$p/cmdline /proc/$p/environ",
    );
    rep.check(
        collector
            .as_ref()
            .is_ok_and(|c| c.contains("telem-collector")),
        format!("collector's /proc: {collector:?}"),
    );
    rep.check(
        collector
            .as_ref()
            .is_ok_and(|c| leaks(c.as_bytes()).is_empty()),
        "the collector's environ/cmdline hold the password",
    );
    // where it must be: the config (0640 root:telemetry), and it works
    check_installed(&sb, &mut rep, SECRET_2);
    rep.check(
        tcp_login(&sb, SECRET_1).is_err(),
        "the old password still logs in",
    );
    post_records(&sb, &mut rep);
    rep.finish();
}

/// Issue 3 item 6, second variant: systemd as PID 1; install and restart go through systemctl.
#[test]
fn systemd_install_and_restart() {
    let mut rep = Report::new("systemd_install_and_restart");
    let Some(sb) = sandbox("e2e-systemd", true, &mut rep) else {
        return;
    };
    let password = "systemd 'pw' \"q\" \\ $x ; ß ✓";
    password_file(&sb, password);
    let install = DEBIAN_INSTALL;
    let run = rep.expect_ok("install (systemd)", deploy(&sb, &install));
    if !run.ok() {
        return rep.finish();
    }
    rep.check(
        run.json["service_manager"] == "systemd",
        format!("service manager {}", run.json["service_manager"]),
    );
    let units = ["telem-collector", "nginx", "postgresql"];
    let systemctl = |what: &str| sh(&sb, &format!("systemctl {what} {}", units.join(" ")));
    let active = systemctl("is-active");
    rep.check(
        active.as_deref() == Ok("active\nactive\nactive"),
        format!("systemctl is-active {units:?}: {active:?}"),
    );
    let enabled = systemctl("is-enabled");
    rep.check(
        enabled.as_deref() == Ok("enabled\nenabled\nenabled"),
        format!("systemctl is-enabled {units:?}: {enabled:?}"),
    );
    check_installed(&sb, &mut rep, password);
    post_records(&sb, &mut rep);
    rep.expect_converged("install (second run, systemd)", deploy(&sb, &install));

    let main_pid = || sh(&sb, "systemctl show -p MainPID --value telem-collector");
    let before = main_pid();
    rep.expect_ok(
        "restart (systemd)",
        deploy(&sb, &["-a", "restart", "-d", "debian"]),
    );
    let after = main_pid();
    let restarted = after.as_ref().is_ok_and(|p| p != "0") && after != before;
    rep.check(
        restarted,
        format!("collector MainPID {before:?} -> {after:?}: not restarted by systemd"),
    );
    let active = systemctl("is-active");
    rep.check(
        active.as_deref() == Ok("active\nactive\nactive"),
        format!("after restart, is-active: {active:?}"),
    );
    check_running(&sb, &mut rep, "after restart (systemd)", 2);
    rep.finish();
}
