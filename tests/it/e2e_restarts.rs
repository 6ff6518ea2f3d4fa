//! Issue 17 item 3, restarts that drop nothing, on a fresh Debian root, under both service
//! managers (one sandbox each, shared by its deploys and restarts): 64 keep-alive clients post
//! records through nginx (tests/it/e2e_load.pl, inside) while `deploy` swaps the collector
//! binary (every answer 2xx) and while `restart` runs (2xx, or 503 with Retry-After while
//! PostgreSQL restarts; never 502 nor a socket error); every 2xx is a stored row. In CI the load
//! lasts as long as each action (a few seconds). The long run (README, Reliability):
//! `TELEM_RESTARTS_ROUNDS` deploys and restarts (default 1 each), each under load from
//! `TELEM_RESTARTS_HOLD_SECS` before it until as long after it (default 0).

use crate::e2e_support::*;
use crate::sandbox::Sandbox;
use std::path::Path;
use std::time::Duration;

const LOAD: &str = "/root/e2e_load.pl";
const RECORD: &str = "/root/record.http";
const CLIENTS: u32 = 64;

/// Counts the load generator printed.
#[derive(Debug, Default)]
struct Tally {
    ok: i64,
    unavailable: i64,
    other: i64,
    errors: i64,
    line: String,
}

fn parse(line: &str) -> Option<Tally> {
    let field = |k: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
    };
    Some(Tally {
        ok: field("2xx")?,
        unavailable: field("503")?,
        other: field("other")?,
        errors: field("errors")?,
        line: line.to_string(),
    })
}

fn rows(sb: &Sandbox) -> i64 {
    sql(sb, "telemetry", "SELECT count(*) FROM records")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(-1)
}

/// Runs `during` while 64 clients post through nginx; their tally.
fn under_load(
    sb: &Sandbox,
    systemd: bool,
    tag: &str,
    during: impl FnOnce(),
) -> Result<Tally, String> {
    let (ready, stop, out) = (
        format!("/root/{tag}.ready"),
        format!("/root/{tag}.stop"),
        format!("/root/{tag}.out"),
    );
    let load = format!(
        "perl {LOAD} {CLIENTS} {RECORD} {:016x} {ready} {stop} >{out} 2>&1 </dev/null",
        rand_prefix(tag)
    );
    // Under systemd a command's leftovers die with its transient unit: a unit of its own.
    let start = if systemd {
        format!("systemd-run --quiet --collect --unit=load-{tag} /bin/sh -c '{load}'")
    } else {
        format!("setsid {load} &")
    };
    sh(sb, &start)?;
    if !wait_until(Duration::from_secs(60), || exists(sb, &ready)) {
        return Err(format!(
            "the load never started: {:?}",
            sh(sb, &format!("cat {out}"))
        ));
    }
    let hold = Duration::from_secs(env_number("TELEM_RESTARTS_HOLD_SECS").unwrap_or(0));
    // Load before and after the action (the long run), not a synchronization.
    std::thread::sleep(hold);
    during();
    std::thread::sleep(hold);
    sh(sb, &format!("touch {stop}"))?;
    let finished = wait_until(Duration::from_secs(60), || {
        sh(sb, &format!("grep -c errors= {out}")).is_ok_and(|n| n == "1")
    });
    let text = sh(sb, &format!("cat {out}")).unwrap_or_default();
    eprintln!(
        "[restarts {}] {tag}: {text}",
        if systemd { "systemd" } else { "direct" }
    );
    if !finished {
        return Err(format!("the load did not finish: {text}"));
    }
    parse(text.lines().last().unwrap_or("")).ok_or(text)
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// A per-phase prefix of event ids (records are unique per machine, event and time).
fn rand_prefix(tag: &str) -> u64 {
    tag.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn collector_pid(sb: &Sandbox, systemd: bool) -> Option<u32> {
    let script = if systemd {
        "systemctl show -p MainPID --value telem-collector"
    } else {
        "cat /run/telemetry/collector.pid"
    };
    sh(sb, script).ok().and_then(|s| s.trim().parse().ok())
}

#[test]
fn debian_deploy_and_restart_under_load_drop_nothing() {
    scenario("restarts_under_load", "restarts-e2e", false);
}

/// The same under systemd (PID 1 in the sandbox): `systemctl reload` runs the unit's
/// ExecReload and follows MAINPID to the new process.
#[test]
fn debian_systemd_deploy_and_restart_under_load_drop_nothing() {
    scenario("restarts_under_load_systemd", "restarts-e2e-sd", true);
}

fn scenario(name: &'static str, tag: &str, systemd: bool) {
    let mut rep = Report::new(name);
    let Some(sb) = sandbox(tag, systemd, &mut rep) else {
        return;
    };
    password_file(&sb, "restarts e2e password");
    let run = rep.expect_ok("install (fresh)", deploy(&sb, &DEBIAN_INSTALL));
    if !run.ok() {
        return rep.finish();
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    sb.copy_in(&here.join("tests/it/e2e_load.pl"), LOAD)
        .unwrap();
    sb.copy_in(&here.join("tests/fixtures/e2e/v3-json.http"), RECORD)
        .unwrap();
    let rounds = env_number("TELEM_RESTARTS_ROUNDS").unwrap_or(1);

    for round in 0..rounds {
        // A new collector binary (the same program with a different file: trailing bytes
        // after an ELF image are ignored) makes `deploy` upgrade the running collector.
        let new_bin = format!("/opt/telem/round{round}/telem-collector");
        sh(
            &sb,
            &format!(
                "mkdir -p /opt/telem/round{round} && cp /opt/telem/telem-collector {new_bin} && \
                 echo round{round} >> {new_bin}"
            ),
        )
        .unwrap();
        let before_rows = rows(&sb);
        let old_pid = collector_pid(&sb, systemd);
        let mut deployed = None;
        let tally = rep.time("deploy of a new collector under load", || {
            under_load(&sb, systemd, &format!("deploy{round}"), || {
                deployed = Some(deploy(
                    &sb,
                    &["-a", "deploy", "-d", "debian", "--collector-bin", &new_bin],
                ));
            })
        });
        let deployed = deployed.expect("deploy ran");
        rep.check(deployed.ok(), format!("deploy: {}", deployed.context()));
        let new_pid = collector_pid(&sb, systemd);
        rep.check(
            new_pid.is_some() && new_pid != old_pid,
            format!("a new collector process: {old_pid:?} -> {new_pid:?}"),
        );
        let same = sh(&sb, &format!("cmp {new_bin} {COLLECTOR}"));
        rep.check(
            same.is_ok(),
            format!("the new binary is installed: {same:?}"),
        );
        // The file the process runs, not the path: the old binary's file is gone from it.
        let runs = new_pid.map(|pid| sh(&sb, &format!("cmp /proc/{pid}/exe {new_bin}")));
        rep.check(
            matches!(runs, Some(Ok(_))),
            format!("the collector runs the new binary: {runs:?}"),
        );
        match tally {
            Ok(t) => {
                eprintln!("[{name}] deploy round {round} under load: {}", t.line);
                rep.check(
                    t.ok > 0 && t.unavailable == 0 && t.other == 0 && t.errors == 0,
                    format!(
                        "deploy under load: every answer 2xx, no socket error: {}",
                        t.line
                    ),
                );
                let stored = rows(&sb) - before_rows;
                rep.check(
                    stored == t.ok,
                    format!("rows stored {stored} = 2xx {}", t.ok),
                );
            }
            Err(e) => rep.check(false, format!("load during deploy: {e}")),
        }

        let before_rows = rows(&sb);
        let old_pid = collector_pid(&sb, systemd);
        let nginx_before = pids_of(&sb, "nginx");
        let mut restarted = None;
        let tally = rep.time("restart under load", || {
            under_load(&sb, systemd, &format!("restart{round}"), || {
                restarted = Some(deploy(&sb, &["-a", "restart", "-d", "debian"]));
            })
        });
        let restarted = restarted.expect("restart ran");
        rep.check(restarted.ok(), format!("restart: {}", restarted.context()));
        let new_pid = collector_pid(&sb, systemd);
        rep.check(
            new_pid.is_some() && new_pid != old_pid,
            format!("restart: a new collector process: {old_pid:?} -> {new_pid:?}"),
        );
        // Neither restarted nor reloaded: a reload replaces the workers, which close their
        // clients' idle keep-alive connections.
        let nginx_after = pids_of(&sb, "nginx");
        rep.check(
            !nginx_before.is_empty() && nginx_after == nginx_before,
            format!("restart leaves nginx's processes alone: {nginx_before:?} -> {nginx_after:?}"),
        );
        match tally {
            Ok(t) => {
                eprintln!("[{name}] restart round {round} under load: {}", t.line);
                rep.check(
                    t.ok > 0 && t.other == 0 && t.errors == 0,
                    format!(
                        "restart under load: only 2xx or 503, no socket error: {}",
                        t.line
                    ),
                );
                let stored = rows(&sb) - before_rows;
                rep.check(
                    stored == t.ok,
                    format!("rows stored {stored} = 2xx {}", t.ok),
                );
            }
            Err(e) => rep.check(false, format!("load during restart: {e}")),
        }
    }
    rep.finish();
}
