//! Issue 7 end to end: the legacy web UI (`--webapp`) on a fresh Debian root sandbox, with a
//! fixture app of our own (tests/fixtures/webapp: a WSGI app that answers with its branch and
//! the number of records, and a stand-in `flask db upgrade`), built on the host as a git
//! repository with two branches, a tarball and an offline pip index (the sandbox has no
//! network). Checked from inside: served through nginx under /telemetryui/ and reading the
//! database, the vassal 0640, the password in no argv, `migrate` runs the web UI's migrations,
//! another branch or a tarball is swapped in restarting only uWSGI.

#[allow(dead_code)]
#[path = "e2e_support.rs"]
mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;
use support::*;

/// Quotes, backslash, `;`, `#`, `$`, spaces and non-ASCII; the ASCII token finds it escaped.
const PASSWORD: &str = "web 'UI' \"pw\" \\ ;#$HOME Grüße Zq7Tok";
const TOKEN: &str = "Zq7Tok";
const SRC: &str = "/srv/webapp";
const VASSAL: &str = "/etc/uwsgi/vassals/telemetryui.ini";

fn webapp_args<'a>(pw: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["-d", "debian", "--yes", "--db-password-file", pw, "--webapp"];
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

fn pid_set(sb: &crate::sandbox::Sandbox, comm: &str) -> BTreeSet<u32> {
    pids_of(sb, comm).into_iter().collect()
}

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

    // install --webapp from branch1, every execve recorded
    let traces = tempfile::tempdir().expect("tempdir");
    let trace = traces.path().join("install.strace");
    let install = webapp_args(pw, &["-a", "install", "-r", &repo, "-s", "branch1"]);
    let run = rep.expect_ok(
        "install --webapp (branch1) under strace",
        deploy_run(&sb, &[], &install, Some(&trace)),
    );
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
                rep.check(body.contains(want), format!("/telemetryui/ lacks `{want}`: {body}"));
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
        root.as_ref().is_ok_and(|(_, b)| !b.contains("fixture_flask")),
        format!("/telemetryuiX reached the web UI: {root:?}"),
    );

    // the vassal holds the password, 0640 root:www-data; no argv does
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(host_path(&sb, VASSAL));
        rep.check(
            meta.as_ref().is_ok_and(|m| {
                m.mode() & 0o7777 == 0o640 && m.uid() == 0 && Some(m.gid()) == gid_of(&sb, "www-data")
            }),
            format!("{VASSAL}: {:?}", meta.map(|m| (m.mode() & 0o7777, m.uid(), m.gid()))),
        );
        let vassal = std::fs::read_to_string(host_path(&sb, VASSAL)).unwrap_or_default();
        rep.check(
            vassal.contains(&format!("env = POSTGRES_PASSWORD={PASSWORD}\n")),
            "the vassal does not hold the password",
        );
    }
    let traced = std::fs::read(&trace).unwrap_or_default();
    let traced = String::from_utf8_lossy(&traced);
    rep.check(
        traced.contains("pip") && traced.contains("uwsgi") && traced.contains("git"),
        "the strace of install records no git, pip or uwsgi execve",
    );
    rep.check(
        !traced.contains(TOKEN),
        format!("an argv of install --webapp holds the password ({})", trace.display()),
    );
    for r in [&run] {
        rep.check(
            !r.stdout.contains(TOKEN) && !r.stderr.contains(TOKEN),
            "install --webapp output holds the password",
        );
    }

    // a second install changes nothing
    rep.expect_converged("install --webapp (second run)", deploy(&sb, &install));

    // migrate: the collector's, then the web UI's own (flask db upgrade)
    let migrate = webapp_args(pw, &["-a", "migrate", "-r", &repo, "-s", "branch1"]);
    rep.expect_ok("migrate --webapp", deploy(&sb, &migrate));
    let n = sql(&sb, "telemetry", "select count(*) from fixture_migrations");
    rep.check(n.as_deref() == Ok("1"), format!("flask db upgrade ran {n:?} times, want 1"));

    // another branch: swapped in, only uWSGI restarts
    let (collector, postgres, uwsgi) = (
        pid_set(&sb, "telem-collector"),
        pid_set(&sb, "postgres"),
        pid_set(&sb, "uwsgi"),
    );
    let deploy2 = webapp_args(pw, &["-a", "deploy", "-r", &repo, "-s", "branch2"]);
    let run = rep.expect_ok("deploy --webapp -s branch2", deploy(&sb, &deploy2));
    let changed = run.steps("changed");
    rep.check(
        changed.iter().all(|s| !s.contains("collector") && !s.contains("nginx")),
        format!("deploy of branch2 changed more than the web UI: {changed:?}"),
    );
    if let Err(e) = ui_shows(&sb, "branch=branch2") {
        rep.check(false, e);
    }
    rep.check(
        pid_set(&sb, "telem-collector") == collector && !collector.is_empty(),
        "the collector was restarted by a web UI deploy",
    );
    rep.check(
        pid_set(&sb, "postgres") == postgres && !postgres.is_empty(),
        "PostgreSQL was restarted by a web UI deploy",
    );
    let now = pid_set(&sb, "uwsgi");
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
