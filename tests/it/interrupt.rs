//! Interrupted installs (issue 6 item 5): on the fresh-root e2e sandbox, SIGKILL `telem-deploy
//! install -d debian` (direct service manager, as a plain sandbox has no systemd) and its whole
//! process tree at every step boundary in turn, and once while dpkg configures PostgreSQL; the
//! re-run must exit 0, a further run must change nothing, and the host must end in the same
//! state as after an uninterrupted install: the same deployment files (content hash, owner,
//! mode), state.json, package set, running services healthy through nginx, database role,
//! database, schema - and it must store records posted afterwards.
//!
//! How the kills land is explained in interrupt_driver.pl (run inside the sandbox): for a step
//! boundary the tool's stderr is a one-page pipe pre-filled so that writing the line of step k
//! blocks; the tree is killed while blocked, i.e. after step k is applied and before step k+1
//! is checked, deterministically - no test hook in the tool, only its own progress output.
//! At a boundary the tree is the tool alone, except from step 13 (Run the collector) on: the
//! collector it started stays its child until it exits, so the tree kill takes the collector
//! too (harsher than killing the tool's PID only; the re-run starts it again).
//!
//! Cost: installing nginx + PostgreSQL from the local .deb cache takes 40-100 s (2 loaded
//! cores), so not every kill point gets a fresh root. Three fresh sandboxes run in parallel:
//! the uninterrupted reference install, the kill mid-dpkg, and the kill after step 1 (the package
//! install). Every later boundary k >= 2 starts from "packages installed, nothing else": an
//! installed sandbox is reset with `uninstall` (without -u: the packages stay), then nginx and
//! PostgreSQL are stopped and the leftovers of `uninstall` (log dir, backups, state.json's
//! `created`) removed, which is the state a fresh root is in after step 1 (checked: no
//! deployment path, no user, no daemon). Those rounds are shared out over the three sandboxes.

use crate::e2e_support::*;
use crate::sandbox::Sandbox;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const PASSWORD: &str = "interrupted 'pw' ; ✓";
const DRIVER: &str = "/root/interrupt_driver.pl";
/// dpkg running PostgreSQL's server postinst (it creates the cluster with initdb, seconds):
/// killed there, the package stays half-configured, with dpkg's journal and lock files left.
const MID_DPKG: &str = r"/var/lib/dpkg/info/postgresql-15\.postinst";

/// Paths of the deployment whose type, owner, mode and content make up the final state.
const OWNED: [&str; 8] = [
    "/etc/telemetry",
    CONFIG,
    COLLECTOR,
    SITE,
    SITE_LINK,
    DEFAULT_SITE,
    "/var/log/telem-collector",
    "/run/telemetry",
];

/// The final state, one `key<TAB>value` line per fact.
const SNAPSHOT: &str = r#"
kv() { printf '%s\t%s\n' "$1" "$2"; }
for p in $OWNED; do
    if [ -L "$p" ]; then kv "$p" "symlink $(readlink "$p") $(stat -c '%U:%G' "$p")"
    elif [ -f "$p" ]; then kv "$p" "file $(stat -c '%U:%G %a' "$p") sha256:$(sha256sum < "$p" | cut -c1-16)"
    elif [ -d "$p" ]; then kv "$p" "dir $(stat -c '%U:%G %a' "$p")"
    else kv "$p" absent; fi
done
kv "user telem-collector" "$(id telem-collector 2>&1)"
ii=$(dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n' | grep '^ii ')
kv "dpkg installed" "$(echo "$ii" | wc -l) packages, sha256:$(echo "$ii" | sha256sum | cut -c1-16)"
kv "dpkg audit" "$(dpkg --audit 2>&1 | wc -l) lines"
kv "state.json" "$(perl -MJSON::PP -e '
    local $/; my $s = decode_json(<STDIN>);
    my @p = sort @{$s->{packages}};
    print scalar(@p), " packages (nginx postgresql: ", join(" ", grep { /^(nginx|postgresql)$/ } @p),
        "), created: ", join(" ", sort @{$s->{created}}), "; saved: ", join(" ", sort keys %{$s->{saved}}),
        "; install_baseline: ", defined $s->{install_baseline} ? "set" : "none";
' < /var/lib/telem-deploy/state.json 2>&1)"
comms=$(cat /proc/[0-9]*/comm 2>/dev/null)
for c in telem-collector nginx postgres; do
    echo "$comms" | grep -qx "$c" && kv "process $c" running || kv "process $c" "not running"
done
for f in /run/telemetry/collector.pid /run/nginx.pid /var/lib/postgresql/15/main/postmaster.pid; do
    pid=$(head -n1 "$f" 2>/dev/null)
    [ -n "$pid" ] && [ -d "/proc/$pid" ] && kv "pid file $f" "process alive" || kv "pid file $f" "no live process"
done
q() { runuser -u postgres -- psql -tAXq -d "$1" -c "$2" 2>&1 | tr '\n' ' '; }
kv "db role" "$(q postgres "select rolname || ' login ' || rolcanlogin from pg_roles where rolname = 'telemetry'")"
kv "db database" "$(q postgres "select datname || ' owner ' || pg_get_userbyid(datdba) from pg_database where datname = 'telemetry'")"
tables=$(q telemetry "select string_agg(tablename, ' ' order by tablename) from pg_tables where schemaname = 'public'")
kv "db tables" "$tables"
for t in $tables; do kv "db rows in $t" "$(q telemetry "select count(*) from \"$t\"")"; done
"#;

/// From "packages installed" (a fresh root after step 1) to the same, on an installed sandbox.
const RESET: &str = r#"
set -e
[ -s /run/nginx.pid ] && kill "$(cat /run/nginx.pid)" || true
pg_ctlcluster 15 main stop -m fast || true
for i in $(seq 100); do
    busy=$(cat /proc/[0-9]*/comm 2>/dev/null | grep -x -e nginx -e postgres -e telem-collector || true)
    [ -z "$busy" ] && break
    sleep 0.1
done
[ -z "$busy" ] || { echo "nginx/postgres/collector still running"; exit 1; }
rm -rf /var/log/telem-collector /var/backups/telemetry /var/lib/telem-deploy/saved /run/telemetry
perl -MJSON::PP -i -0777 -pe '
    my $s = decode_json($_); $s->{created} = []; $s->{saved} = {};
    $_ = JSON::PP->new->pretty->canonical->encode($s);
' /var/lib/telem-deploy/state.json
"#;

/// One SIGKILLed run, as the driver tells it.
struct Killed {
    result: String,
    killed: String,
    /// What the tool wrote to stderr before the kill.
    stderr: String,
    secs: f64,
}

/// Run `install` under the kill driver (`how`: `block OFFSET` or `watch REGEX`).
/// With `tool_only`, only telem-deploy's PID is killed (what the OOM killer or `kill -9 PID`
/// does): children it started, the collector daemon, live on.
fn killed_install(sb: &Sandbox, how: [&str; 2], tool_only: bool) -> Result<Killed, String> {
    let mut argv = vec!["perl", DRIVER, how[0], how[1], "--", DEPLOY, "-H", DOMAIN];
    argv.extend(["--format", "json"]);
    argv.extend(DEBIAN_INSTALL);
    let started = Instant::now();
    let env: &[(&str, &str)] = if tool_only {
        &[("INTERRUPT_TOOL_ONLY", "1")]
    } else {
        &[]
    };
    let out = sb.exec_env(env, &argv);
    if !out.status.success() {
        return Err(outcome(out, "interrupt_driver.pl").unwrap_err());
    }
    let out = text(&out.stdout); // untrimmed: the stderr part is compared byte for byte
    let secs = started.elapsed().as_secs_f64();
    let (head, stderr) = out
        .split_once("\n---\n")
        .ok_or_else(|| format!("driver output: {out:?}"))?;
    let field = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_default()
            .to_string()
    };
    Ok(Killed {
        result: field("result: "),
        killed: field("killed: "),
        stderr: stderr.to_string(),
        secs,
    })
}

/// Where each step's progress line starts on stderr: `offsets[k - 1]` is the number of bytes the
/// tool writes before the line of step k (the Options summary, then one line per step).
struct Plan {
    names: Vec<String>,
    offsets: Vec<usize>,
}

/// The plan of `install` from a dry run in this sandbox (fresh: every step runs).
fn plan(sb: &Sandbox) -> Plan {
    let mut args = DEBIAN_INSTALL.to_vec();
    args.push("--dry-run");
    let run = deploy(sb, &args);
    assert!(run.ok(), "dry run: {}", run.context());
    let names: Vec<String> = run.json["steps"]
        .as_array()
        .expect("plan steps")
        .iter()
        .map(|s| s["name"].as_str().expect("step name").to_string())
        .collect();
    let total = names.len();
    // report::Style::step_line without colour: "[ k/N] <status padded to 8> <name>\n"
    let mut offsets = Vec::new();
    let mut at = run.stderr.len();
    for (i, name) in names.iter().enumerate() {
        offsets.push(at);
        at += format!("[{:>2}/{total}] {:<8} {name}\n", i + 1, "changed").len();
    }
    Plan { names, offsets }
}

/// A sandbox with the binaries, /root/pw and the driver.
fn prepare(tag: &str, rep: &mut Report) -> Option<Sandbox> {
    let mut sb = sandbox(tag, false, rep)?;
    sb.set_timeout(Duration::from_secs(900));
    password_file(&sb, PASSWORD);
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/interrupt_driver.pl");
    sb.copy_in(&driver, "/root/").expect("copy the driver in");
    Some(sb)
}

fn snapshot(sb: &Sandbox) -> Snapshot {
    let script = format!("OWNED='{}'\n{SNAPSHOT}", OWNED.join(" "));
    let out = sh(sb, &script).unwrap_or_else(|e| format!("snapshot failed: {e}"));
    out.lines()
        .map(|l| {
            let (k, v) = l.split_once('\t').unwrap_or((l, ""));
            (k.to_string(), v.trim().to_string())
        })
        .collect()
}

/// After the kill: the re-run exits 0, a further run changes nothing, the state is the
/// reference's (compared later), the host works. Returns the state.
fn converge(sb: &Sandbox, rep: &mut Report, label: &str) -> Snapshot {
    let rerun = rep.expect_ok(&format!("{label}: re-run"), deploy(sb, &DEBIAN_INSTALL));
    rep.expect_converged(
        &format!("{label}: further run"),
        deploy(sb, &DEBIAN_INSTALL),
    );
    let state = snapshot(sb);
    if rerun.ok() {
        check_installed(sb, rep, PASSWORD);
        post_records(sb, rep);
    }
    state
}

/// Kill at the boundary after step k (1-based), on a sandbox at "packages installed" (or fresh
/// for k = 1), then converge. Returns the converged state.
fn boundary_round(
    sb: &Sandbox,
    rep: &mut Report,
    plan: &Plan,
    (k, tool_only): (usize, bool),
) -> (String, Snapshot) {
    let label = format!(
        "after step {k} ({}){}",
        plan.names[k - 1],
        if tool_only { ", tool only" } else { "" }
    );
    let started = Instant::now();
    let offset = plan.offsets[k - 1].to_string();
    match killed_install(sb, ["block", &offset], tool_only) {
        Ok(kill) => {
            rep.timing(&format!("{label}: killed run"), kill.secs);
            let lines: Vec<&str> = kill.stderr.lines().filter(|l| l.starts_with('[')).collect();
            let last_ok = k == 1
                || lines
                    .last()
                    .is_some_and(|l| l.ends_with(&plan.names[k - 2]));
            rep.check(
                kill.result == "blocked"
                    && kill.stderr.len() == plan.offsets[k - 1]
                    && lines.len() == k - 1
                    && last_ok,
                format!(
                    "{label}: the kill did not land on the boundary: driver {:?}, {} step lines, {} bytes (want {}): {:?}",
                    kill.result,
                    lines.len(),
                    kill.stderr.len(),
                    plan.offsets[k - 1],
                    kill.stderr
                ),
            );
            eprintln!(
                "[interrupt] {label}: {} ({} killed: {})",
                kill.result,
                kill.killed.split_whitespace().count(),
                kill.killed
            );
        }
        Err(e) => rep.check(false, format!("{label}: {e}")),
    }
    let state = converge(sb, rep, &label);
    rep.timing(
        &format!("{label}: kill + re-run + checks"),
        started.elapsed().as_secs_f64(),
    );
    (label, state)
}

/// Back to "packages installed, nothing else" (see the module doc); false when that failed.
fn reset(sb: &Sandbox, rep: &mut Report) -> bool {
    let started = Instant::now();
    let run = rep.expect_ok(
        "reset: uninstall",
        deploy(sb, &["-a", "uninstall", "-d", "debian", "--yes"]),
    );
    let cleaned = sh(sb, RESET);
    rep.check(cleaned.is_ok(), format!("reset: {cleaned:?}"));
    let state = snapshot(sb);
    let bad: Vec<String> = state
        .iter()
        .filter(|(k, v)| {
            let fresh = match k.as_str() {
                DEFAULT_SITE => v.starts_with("symlink /etc/nginx/sites-available/default"),
                p if p.starts_with('/') => v.as_str() == "absent",
                "user telem-collector" => v.contains("no such user"),
                "process telem-collector" | "process nginx" | "process postgres" => {
                    v.as_str() == "not running"
                }
                "dpkg audit" => v.as_str() == "0 lines",
                _ => true,
            };
            !fresh
        })
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    rep.check(
        bad.is_empty(),
        format!("reset did not give the state after step 1: {bad:?}"),
    );
    rep.timing("reset", started.elapsed().as_secs_f64());
    run.ok() && cleaned.is_ok() && bad.is_empty()
}

/// Rounds (boundary k >= 2, tool only?) taken from `queue` until it is empty.
fn shared_rounds(
    sb: &Sandbox,
    rep: &mut Report,
    plan: &Plan,
    queue: &Mutex<Vec<(usize, bool)>>,
    states: &mut States,
) {
    loop {
        let Some(round) = queue.lock().unwrap().pop() else {
            return;
        };
        if !reset(sb, rep) {
            return; // the remaining rounds go to other sandboxes, or stay undone (checked)
        }
        states.push(boundary_round(sb, rep, plan, round));
    }
}

/// The final state: fact -> value (see SNAPSHOT).
type Snapshot = BTreeMap<String, String>;
/// Converged states by kill point.
type States = Vec<(String, Snapshot)>;
/// What each sandbox thread returns (the reference thread also its reference state).
type Outcome = (Report, States, Option<Snapshot>);

#[test]
fn interrupted_install_converges() {
    let started = Instant::now();
    let mut rep = Report::new("interrupted_install_converges");
    if Sandbox::available().is_err() && std::env::var("TELEM_E2E_REQUIRED").as_deref() != Ok("1") {
        eprintln!("skipped: {:?}", Sandbox::available());
        return;
    }
    let queue: Mutex<Vec<(usize, bool)>> = Mutex::new(Vec::new());
    let total = Mutex::new(0usize);
    let results: Vec<Outcome> = std::thread::scope(|s| {
        // 1. the uninterrupted reference install, on a fresh root
        let reference = s.spawn(|| {
            let mut rep = Report::new("reference");
            let mut states = Vec::new();
            let Some(sb) = prepare("int-reference", &mut rep) else {
                return (rep, states, None);
            };
            let plan = plan(&sb);
            {
                // From the step that starts the collector on, the tree kill also kills the
                // collector (the tool's child): those boundaries run a second time, killing
                // only the tool's PID.
                let n = plan.names.len();
                let collector = plan.names.iter().position(|s| s == "Run the collector");
                let collector = collector.expect("install starts the collector") + 1;
                let mut q = queue.lock().unwrap();
                q.extend((collector..=n).rev().map(|k| (k, true)));
                q.extend((2..=n).rev().map(|k| (k, false)));
                *total.lock().unwrap() = n + 1 + (n + 1 - collector);
            }
            let run = rep.expect_ok("uninterrupted install", deploy(&sb, &DEBIAN_INSTALL));
            let reference = snapshot(&sb);
            rep.expect_converged("further run", deploy(&sb, &DEBIAN_INSTALL));
            if run.ok() {
                check_installed(&sb, &mut rep, PASSWORD);
                post_records(&sb, &mut rep);
                shared_rounds(&sb, &mut rep, &plan, &queue, &mut states);
            }
            (rep, states, Some(reference))
        });
        // 2. SIGKILL while dpkg configures PostgreSQL, on a fresh root
        let mid_dpkg = s.spawn(|| {
            let mut rep = Report::new("mid-dpkg");
            let mut states = Vec::new();
            let Some(sb) = prepare("int-dpkg", &mut rep) else {
                return (rep, states, None);
            };
            let plan = plan(&sb);
            let label = "mid-dpkg (postgresql-15 postinst)";
            let round = Instant::now();
            match killed_install(&sb, ["watch", MID_DPKG], false) {
                Ok(kill) => {
                    rep.timing(&format!("{label}: killed run"), kill.secs);
                    rep.check(
                        kill.result.starts_with("matched"),
                        format!("{label}: driver {:?}: {}", kill.result, kill.stderr),
                    );
                    let audit = sh(&sb, "dpkg --audit");
                    eprintln!(
                        "[interrupt] {label}: {}; killed {}; dpkg --audit: {audit:?}",
                        kill.result, kill.killed
                    );
                    rep.check(
                        audit.as_ref().is_ok_and(|a| a.contains("postgresql-15")),
                        format!("{label}: the kill left no half-configured package: {audit:?}"),
                    );
                }
                Err(e) => rep.check(false, format!("{label}: {e}")),
            }
            states.push((label.to_string(), converge(&sb, &mut rep, label)));
            rep.timing(
                &format!("{label}: kill + re-run + checks"),
                round.elapsed().as_secs_f64(),
            );
            shared_rounds(&sb, &mut rep, &plan, &queue, &mut states);
            (rep, states, None)
        });
        // 3. SIGKILL after step 1 (the packages), on a fresh root
        let after_packages = s.spawn(|| {
            let mut rep = Report::new("after-packages");
            let mut states = Vec::new();
            let Some(sb) = prepare("int-packages", &mut rep) else {
                return (rep, states, None);
            };
            let plan = plan(&sb);
            states.push(boundary_round(&sb, &mut rep, &plan, (1, false)));
            shared_rounds(&sb, &mut rep, &plan, &queue, &mut states);
            (rep, states, None)
        });
        [reference, mid_dpkg, after_packages]
            .into_iter()
            .map(|t| t.join().expect("a sandbox thread panicked"))
            .collect()
    });

    let mut reference = None;
    let mut states = Vec::new();
    for (r, s, reference_state) in results {
        rep.absorb(r);
        states.extend(s);
        reference = reference.or(reference_state);
    }
    let Some(reference) = reference else {
        return rep.finish();
    };
    eprintln!("[interrupt] reference state:");
    for (k, v) in &reference {
        eprintln!("[interrupt]   {k} {v}");
    }
    for (label, state) in &states {
        let keys: BTreeSet<&String> = reference.keys().chain(state.keys()).collect();
        let diff: Vec<String> = keys
            .into_iter()
            .filter(|k| reference.get(*k) != state.get(*k))
            .map(|k| {
                format!(
                    "{k}: {:?} != reference {:?}",
                    state.get(k),
                    reference.get(k)
                )
            })
            .collect();
        rep.check(
            diff.is_empty(),
            format!("{label}: final state differs: {diff:?}"),
        );
    }
    // every boundary (twice from the collector's start on) and the mid-dpkg kill were run
    let total = *total.lock().unwrap();
    rep.check(
        states.len() == total,
        format!(
            "{} kill points converged, want {total} (every step boundary and mid-dpkg)",
            states.len()
        ),
    );
    eprintln!("[interrupt] {} kill points converged", states.len());
    rep.timing("whole test", started.elapsed().as_secs_f64());
    rep.finish();
}
