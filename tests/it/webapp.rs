//! Issue 7 end to end: the legacy web UI (`--webapp`) on a fresh Debian root sandbox, with a
//! fixture app of our own (tests/fixtures/webapp: a WSGI app that answers with its branch and
//! the number of records, and a stand-in `flask db upgrade`), built on the host as a git
//! repository with two branches, a tarball and an offline pip index (the sandbox has no
//! network). Checked from inside: served through nginx under /telemetryui/ and reading the
//! database, the vassal 0640, the password in no argv, `migrate` runs the web UI's migrations,
//! another branch or a tarball is swapped in restarting only uWSGI.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use crate::e2e_support::*;

/// Quotes, backslash, `;`, `#`, `$`, spaces and non-ASCII; the ASCII token finds it escaped.
const PASSWORD: &str = "web 'UI' \"pw\" \\ ;#$HOME Grüße Zq7Tok";
const TOKEN: &str = "Zq7Tok";
const SRC: &str = "/srv/webapp";
const VASSAL: &str = "/etc/uwsgi/vassals/telemetryui.ini";

fn webapp_args<'a>(pw: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "-d",
        "debian",
        "--yes",
        "--db-password-file",
        pw,
        "--webapp",
    ];
    v.extend_from_slice(&["--pip-index-url", "file:///srv/webapp/pypi/simple"]);
    v.extend_from_slice(extra);
    v
}

/// GET /telemetryui/ through nginx until the body shows `want` (20 s); the last body.
fn ui_shows(sb: &crate::sandbox::Sandbox, want: &str) -> Result<String, String> {
    let mut last = String::new();
    let ok = wait_until(Duration::from_secs(20), || {
        last = match get(sb, DOMAIN, "/telemetryui/") {
            Ok((_, body)) => body,
            Err(e) => e,
        };
        last.contains(want)
    });
    match ok {
        true => Ok(last),
        false => Err(format!("GET /telemetryui/ never showed `{want}`: {last}")),
    }
}

/// The uWSGI emperor (`uwsgi`) and its vassal's master and workers (`uwsgi-core`).
fn uwsgi_pids(sb: &crate::sandbox::Sandbox) -> BTreeSet<u32> {
    let mut pids: BTreeSet<u32> = pids_of(sb, "uwsgi").into_iter().collect();
    pids.extend(pids_of(sb, "uwsgi-core"));
    pids
}

/// The first line of a pid file inside (the postmaster's, the collector's; /run is mounted
/// only inside, so it is read there).
fn pid_file(sb: &crate::sandbox::Sandbox, path: &str) -> Option<u32> {
    let text = sh(sb, &format!("head -n 1 {path}")).ok()?;
    text.trim().parse().ok()
}

const POSTMASTER_PID: &str = "/var/lib/postgresql/15/main/postmaster.pid";
const COLLECTOR_PID: &str = "/run/telemetry/collector.pid";

#[test]
fn webapp_deploys_swaps_and_migrates() {
    let mut rep = Report::new("webapp_deploys_swaps_and_migrates");
    let Some(sb) = sandbox("e2e-webapp", false, &mut rep) else {
        return;
    };
    // the fixture, built on the host and copied in
    let built = tempfile::tempdir().expect("tempdir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/webapp/build.sh");
    let out = std::process::Command::new(&script)
        .arg(built.path().join("webapp"))
        .output()
        .expect("run build.sh");
    assert!(out.status.success(), "build.sh: {}", text(&out.stderr));
    rep.time("copy the fixture in", || {
        sb.copy_in(&built.path().join("webapp"), SRC)
            .unwrap_or_else(|e| panic!("{e}"))
    });
    let pw = password_file(&sb, PASSWORD);
    let repo = format!("{SRC}/telemetrics-backend");

    // install --webapp from branch1
    let install = webapp_args(pw, &["-a", "install", "-r", &repo, "-s", "branch1"]);
    let run = rep.expect_ok("install --webapp (branch1)", deploy(&sb, &install));
    if !run.ok() {
        let log = sh(&sb, "tail -n 30 /var/log/uwsgi/*.log");
        eprintln!("uwsgi logs: {log:?}");
        return rep.finish();
    }
    post_records(&sb, &mut rep);
    match ui_shows(&sb, "records=2") {
        Ok(body) => {
            for want in [
                "HTTP/1.1 200",
                "branch=branch1",
                "redis=+PONG",
                "script_name=/telemetryui",
                "path_info=/\n",
                "fixture_flask=0.1",
            ] {
                rep.check(
                    body.contains(want),
                    format!("/telemetryui/ lacks `{want}`: {body}"),
                );
            }
        }
        Err(e) => rep.check(false, e),
    }
    // every other path stays with the collector
    if let Err(e) = healthy(&sb) {
        rep.check(false, e);
    }
    let root = get(&sb, DOMAIN, "/telemetryuiX");
    rep.check(
        root.as_ref()
            .is_ok_and(|(_, b)| !b.contains("fixture_flask")),
        format!("/telemetryuiX reached the web UI: {root:?}"),
    );

    // the vassal holds the password, 0640 root:www-data; no argv does
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(host_path(&sb, VASSAL));
        rep.check(
            meta.as_ref().is_ok_and(|m| {
                m.mode() & 0o7777 == 0o640
                    && m.uid() == 0
                    && Some(m.gid()) == gid_of(&sb, "www-data")
            }),
            format!(
                "{VASSAL}: {:?}",
                meta.map(|m| (m.mode() & 0o7777, m.uid(), m.gid()))
            ),
        );
        let vassal = std::fs::read_to_string(host_path(&sb, VASSAL)).unwrap_or_default();
        rep.check(
            vassal.contains(&format!("env = POSTGRES_PASSWORD={PASSWORD}\n")),
            "the vassal does not hold the password",
        );
    }
    rep.check(
        !run.stdout.contains(TOKEN) && !run.stderr.contains(TOKEN),
        "install --webapp output holds the password",
    );

    // a second install changes nothing
    rep.expect_converged("install --webapp (second run)", deploy(&sb, &install));

    // migrate: the collector's, then the web UI's own (flask db upgrade), every execve recorded
    // (strace of the whole install is too slow: dpkg's scripts under strace -f take minutes)
    let traces = tempfile::tempdir().expect("tempdir");
    let (trace_migrate, trace_deploy) = (
        traces.path().join("migrate.strace"),
        traces.path().join("deploy.strace"),
    );
    let migrate = webapp_args(pw, &["-a", "migrate", "-r", &repo, "-s", "branch1"]);
    rep.expect_ok(
        "migrate --webapp under strace",
        deploy_run(&sb, &[], &migrate, Some(&trace_migrate)),
    );
    let n = sql(&sb, "telemetry", "select count(*) from fixture_migrations");
    rep.check(
        n.as_deref() == Ok("1"),
        format!("flask db upgrade ran {n:?} times, want 1"),
    );

    // another branch: swapped in, only uWSGI restarts
    let (collector, postgres, uwsgi) = (
        pid_file(&sb, COLLECTOR_PID),
        pid_file(&sb, POSTMASTER_PID),
        uwsgi_pids(&sb),
    );
    let deploy2 = webapp_args(pw, &["-a", "deploy", "-r", &repo, "-s", "branch2"]);
    let run = rep.expect_ok(
        "deploy --webapp -s branch2 under strace",
        deploy_run(&sb, &[], &deploy2, Some(&trace_deploy)),
    );
    for (trace, must) in [
        (&trace_migrate, &["flask"][..]),
        (&trace_deploy, &["uwsgi", "git"][..]),
    ] {
        let traced =
            String::from_utf8_lossy(&std::fs::read(trace).unwrap_or_default()).into_owned();
        rep.check(
            must.iter().all(|m| traced.contains(m)),
            format!("{} records no execve of {must:?}", trace.display()),
        );
        rep.check(
            !traced.contains(TOKEN),
            format!("an argv in {} holds the password", trace.display()),
        );
    }
    rep.check(
        !run.stdout.contains(TOKEN) && !run.stderr.contains(TOKEN),
        "deploy --webapp output holds the password",
    );
    let changed = run.steps("changed");
    rep.check(
        changed.iter().all(|s| s.contains("web UI")),
        format!("deploy of branch2 changed more than the web UI: {changed:?}"),
    );
    if let Err(e) = ui_shows(&sb, "branch=branch2") {
        rep.check(false, e);
    }
    let now = (pid_file(&sb, COLLECTOR_PID), pid_file(&sb, POSTMASTER_PID));
    rep.check(
        collector.is_some() && now.0 == collector,
        format!(
            "the collector was restarted by a web UI deploy: {collector:?} -> {:?}",
            now.0
        ),
    );
    rep.check(
        postgres.is_some() && now.1 == postgres,
        format!(
            "PostgreSQL was restarted by a web UI deploy: {postgres:?} -> {:?}",
            now.1
        ),
    );
    let now = uwsgi_pids(&sb);
    rep.check(
        !now.is_empty() && now.is_disjoint(&uwsgi),
        format!("uWSGI was not restarted: {uwsgi:?} -> {now:?}"),
    );

    // a tarball snapshot
    let tar = format!("{SRC}/app.tar.gz");
    let deploy3 = webapp_args(pw, &["-a", "deploy", "-t", "tarball", "-s", &tar]);
    rep.expect_ok("deploy --webapp -t tarball", deploy(&sb, &deploy3));
    match ui_shows(&sb, "branch=tarball") {
        Ok(body) => rep.check(body.contains("records=2"), format!("tarball UI: {body}")),
        Err(e) => rep.check(false, e),
    }
    rep.expect_converged("deploy --webapp -t tarball (again)", deploy(&sb, &deploy3));
    rep.finish();
}
