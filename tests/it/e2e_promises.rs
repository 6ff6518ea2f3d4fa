//! Issue 10 items 1, 2, 3 and 5 on a real fresh Debian root (one sandbox for all, for CI time):
//!
//! - a dry run writes nothing: the binaries sit in a root-only 0700 directory (nothing the
//!   tool runs as another user needs them), and every action × every distro (clr
//!   and centos with the shims of tests/shims) runs `--dry-run` on the fresh root, on the
//!   installed root, and after a "reboot" (daemons stopped, /run emptied), each under host
//!   strace recording every call that creates, writes, renames or removes a path: none may
//!   succeed, and a listing of the root (path, type, size, mode, owner, mtime) is the same
//!   before and after each round, leaving out only the daemons' own logs and data;
//! - install, deploy with another password and restart with TELEM_DB_PASSWORD and
//!   TELEM_UI_PASSWORD set: afterwards no /proc/*/environ holds either value;
//! - deploy's new password reaches the role (it logs in over TCP, the old one does not) and
//!   the site stays healthy; its `-v` output shows no piece of either password although the
//!   new one is a part of the old; with the role's password changed behind the tool's back,
//!   `migrate` fails naming `password authentication failed for user "telemetry"` and
//!   `deploy` sets the stored password again.

use std::path::Path;
use std::time::Instant;

use crate::e2e_support::*;
use crate::sandbox::Sandbox;

const PRIVATE: &str = "/root/private-bin";
const ACTIONS: [&str; 6] = [
    "deploy",
    "install",
    "migrate",
    "resetdb",
    "restart",
    "uninstall",
];
/// The stored password, then the new one deploy gets (a middle part of the stored one).
const DB_OLD: &str = "Correct-Horse-Battery-Staple-Zq3Old";
const DB_NEW: &str = "Battery-Staple";
const UI_PW: &str = "ui-Zq3Ui-secret";
const PATH_WITH_SHIMS: &str =
    "PATH=/opt/telem-shims/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Every call that can create, write, rename or remove a path (or change its metadata).
const FILE_CHANGES: &str = "open,openat,openat2,creat,mkdir,mkdirat,rename,renameat,renameat2,\
unlink,unlinkat,rmdir,link,linkat,symlink,symlinkat,chmod,fchmodat,chown,fchownat,lchown,\
truncate,utimensat,mknod,mknodat";

/// Paths a listing leaves out: the API file systems and the running daemons' own logs, data
/// and sockets (they write there whether or not telem-deploy runs), and the shims' call log.
const NOT_LISTED: [&str; 12] = [
    "/proc",
    "/sys",
    "/dev",
    "/var/lib/postgresql",
    "/var/log/postgresql",
    "/run/postgresql",
    "/var/log/nginx",
    "/var/lib/nginx",
    "/var/log/telemetry",
    "/var/log/telem-shims",
    "/run/telem-shims",
    "/var/lib/telem-shims",
];

/// (path, type, size, mode, owner, mtime) of everything on the root, /run included.
fn listing(sb: &Sandbox) -> Vec<String> {
    let prune: Vec<String> = NOT_LISTED.iter().map(|p| format!("-path {p}")).collect();
    let script = format!(
        "find / /run -xdev \\( {} \\) -prune -o -printf '%p %y %s %m %u:%g %T@\\n' | sort -u",
        prune.join(" -o ")
    );
    sh(sb, &script)
        .expect("listing the root")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The calls of an strace file, one a line (a call another process interrupted is joined
/// again from its `<unfinished ...>` and `<... resumed>` halves).
fn calls(trace: &str) -> Vec<String> {
    let mut pending = std::collections::HashMap::new();
    let mut out = Vec::new();
    for line in trace.lines() {
        let (pid, rest) = line.split_once(' ').unwrap_or(("", line));
        let rest = rest.trim_start();
        if let Some(head) = rest.strip_suffix(" <unfinished ...>") {
            pending.insert(pid.to_owned(), head.to_owned());
        } else if rest.starts_with("<... ") {
            let tail = rest.split_once("resumed>").map_or("", |(_, t)| t);
            let head = pending.remove(pid).unwrap_or_default();
            out.push(format!("{pid} {head}{tail}"));
        } else {
            out.push(line.to_owned());
        }
    }
    out
}

/// The successful calls of an strace file that changed a path.
fn changes_in(trace: &str) -> Vec<String> {
    calls(trace)
        .into_iter()
        .filter(|l| {
            let ok = l
                .rsplit_once(" = ")
                .is_some_and(|(_, r)| !r.starts_with('-'));
            let call = l
                .split_once(' ')
                .map_or(l.as_str(), |(_, c)| c.trim_start());
            let opens = call.starts_with("open") || call.starts_with("creat");
            let writes = !opens
                || ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"]
                    .iter()
                    .any(|f| call.contains(f));
            let harmless = ["\"/dev/", "\"/proc/", "/telem-shims/", "\"/run/telem-shims"]
                .iter()
                .any(|p| call.contains(p));
            ok && writes && !harmless && !call.starts_with("+++") && !call.starts_with("---")
        })
        .collect()
}

/// Dry runs of every action for each of `distros` (with the shims for clr and centos): exit
/// 0, no file-changing call in the tool's tree, the same listing before and after.
fn dry_round(sb: &Sandbox, rep: &mut Report, label: &str, distros: &[&str]) {
    let traces = tempfile::tempdir().expect("tempdir");
    for distro in distros {
        let shims = matches!(*distro, "clr" | "centos");
        if shims {
            let setup = sh(sb, &format!("/opt/telem-shims/setup {distro}"));
            rep.check(
                setup.is_ok(),
                format!("{label}: shim setup {distro}: {setup:?}"),
            );
        }
        let before = listing(sb);
        let started = Instant::now();
        for action in ACTIONS {
            let trace = traces.path().join(format!("{distro}-{action}.strace"));
            let deploy = format!("{PRIVATE}/telem-deploy");
            let mut argv = vec!["env", PATH_WITH_SHIMS];
            if !shims {
                argv.truncate(0);
            }
            argv.extend([
                deploy.as_str(),
                "-a",
                action,
                "-d",
                distro,
                "-H",
                DOMAIN,
                "--dry-run",
            ]);
            let out = sb.strace_calls(&trace, FILE_CHANGES, &argv);
            rep.check(
                out.status.code() == Some(0),
                format!(
                    "{label}: dry run {action} -d {distro} exited {:?}: {}",
                    out.status.code(),
                    text(&out.stderr)
                ),
            );
            if label == "installed root" && *distro == "debian" && action == "install" {
                // The PostgreSQL checks ran (psql as postgres, read-only).
                let plan = text(&out.stdout);
                rep.check(
                    plan.contains("role telemetry exists")
                        && plan.contains("database telemetry exists"),
                    format!("{label}: the dry run did not query PostgreSQL:\n{plan}"),
                );
            }
            let body = std::fs::read_to_string(&trace).unwrap_or_default();
            rep.check(
                body.contains("openat("),
                format!("{label}: {distro} {action}: the trace recorded nothing"),
            );
            let changed = changes_in(&body);
            rep.check(
                changed.is_empty(),
                format!(
                    "{label}: dry run {action} -d {distro} changed paths:\n{}",
                    changed.join("\n")
                ),
            );
        }
        rep.timing(
            &format!("{label}: 6 dry runs -d {distro}"),
            started.elapsed().as_secs_f64(),
        );
        let after = listing(sb);
        let gone: Vec<&String> = before.iter().filter(|l| !after.contains(l)).collect();
        let new: Vec<&String> = after.iter().filter(|l| !before.contains(l)).collect();
        rep.check(
            gone.is_empty() && new.is_empty(),
            format!(
                "{label}: dry runs -d {distro} changed the listing: before {gone:?}, after {new:?}"
            ),
        );
        if shims {
            // Put the real package tools back (the shims' setup guarded them).
            let undo = sh(
                sb,
                "for t in apt-get apt apt-cache dpkg dpkg-query; do \
                 mv /usr/lib/telem-shims/real/$t /usr/bin/$t; done; \
                 rm -rf /usr/lib/telem-shims /var/lib/telem-shims /var/log/telem-shims /run/telem-shims",
            );
            rep.check(
                undo.is_ok(),
                format!("{label}: undoing the shims: {undo:?}"),
            );
        }
    }
}

/// `telem-deploy` from the private directory with `envs` only in its environment.
fn run(sb: &Sandbox, envs: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String) {
    let deploy = format!("{PRIVATE}/telem-deploy");
    let mut argv = vec![deploy.as_str(), "-H", DOMAIN];
    argv.extend_from_slice(args);
    let out = sb.exec_env(envs, &argv);
    (
        out.status.code(),
        format!("{}\n{}", text(&out.stdout), text(&out.stderr)),
    )
}

#[test]
fn dry_runs_write_nothing_and_secrets_stay_out_of_children() {
    let mut rep = Report::new("dry_runs_write_nothing_and_secrets_stay_out_of_children");
    let Some(sb) = sandbox("secrets-promises", false, &mut rep) else {
        return;
    };
    let shims = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/shims");
    sb.copy_in(&shims, "/opt/telem-shims")
        .expect("copy the shims in");
    // The binaries only root can reach: a 0700 directory, nothing left under /opt/telem.
    let private = format!(
        "mkdir -m 700 {PRIVATE} && mv /opt/telem/telem-deploy /opt/telem/telem-collector {PRIVATE}/ && rmdir /opt/telem"
    );
    sh(&sb, &private).expect("private binaries");

    // 1. the fresh root
    dry_round(
        &sb,
        &mut rep,
        "fresh root",
        &["debian", "ubuntu", "clr", "centos"],
    );

    // 2. install, deploy with a new password, restart, all with both secrets in the environment
    let env_old = [("TELEM_DB_PASSWORD", DB_OLD), ("TELEM_UI_PASSWORD", UI_PW)];
    let env_new = [("TELEM_DB_PASSWORD", DB_NEW), ("TELEM_UI_PASSWORD", UI_PW)];
    let ui = ["--ui-auth", "admin"];
    let (code, out) = run(
        &sb,
        &env_old,
        &[&["-a", "install", "-d", "debian", "--yes"][..], &ui].concat(),
    );
    rep.check(code == Some(0), format!("install exited {code:?}:\n{out}"));
    if code != Some(0) {
        return rep.finish();
    }
    let (code, out) = run(
        &sb,
        &env_new,
        &[&["-a", "deploy", "-d", "debian", "-v"][..], &ui].concat(),
    );
    rep.check(
        code == Some(0),
        format!("deploy with a new password exited {code:?}:\n{out}"),
    );
    rep.check(
        out.contains("database_password = \"********\""),
        format!("deploy -v shows no masked password line:\n{out}"),
    );
    for piece in ["Correct", "Horse", "Zq3Old", "Battery", "Staple", "Zq3Ui"] {
        rep.check(
            !out.contains(piece),
            format!("deploy -v shows {piece:?}:\n{out}"),
        );
    }
    rep.check(
        tcp_login(&sb, DB_NEW).is_ok(),
        "the role does not take deploy's new password",
    );
    rep.check(
        tcp_login(&sb, DB_OLD).is_err(),
        "the old password still logs in",
    );
    let (code, out) = run(&sb, &env_new, &["-a", "restart", "-d", "debian"]);
    rep.check(code == Some(0), format!("restart exited {code:?}:\n{out}"));
    if let Err(e) = healthy(&sb) {
        rep.check(false, format!("after deploy and restart: {e}"));
    }
    // Item 3: no process keeps either value (the pattern does not match itself).
    let procs = sh(
        &sb,
        "grep -l -a -e 'Zq3[O]ld' -e 'Battery-[S]taple' -e 'Zq3[U]i' /proc/[0-9]*/environ 2>/dev/null; true",
    );
    rep.check(
        procs.as_deref() == Ok(""),
        format!("process environments hold a password: {procs:?}"),
    );
    let collector = sh(
        &sb,
        "p=$(cat /run/telemetry/collector.pid) && tr '\\0' '\\n' < /proc/$p/environ",
    );
    rep.check(
        collector
            .as_ref()
            .is_ok_and(|e| !e.contains("TELEM_UI_PASSWORD") && !e.contains("TELEM_DB_PASSWORD")),
        format!("the collector's environment: {collector:?}"),
    );

    // Item 5: a role whose password drifted from the config: the failure names the cause, and
    // deploy (no password given) sets the stored one again.
    let drift = sql(
        &sb,
        "postgres",
        "ALTER ROLE telemetry PASSWORD 'drifted-e10'",
    );
    rep.check(
        drift.is_ok(),
        format!("changing the role's password: {drift:?}"),
    );
    let (code, out) = run(&sb, &[], &["-a", "migrate", "-d", "debian"]);
    rep.check(
        code == Some(1) && out.contains("password authentication failed for user \"telemetry\""),
        format!(
            "migrate with a drifted role password exited {code:?} without naming the cause:\n{out}"
        ),
    );
    let (code, out) = run(&sb, &[], &["-a", "deploy", "-d", "debian"]);
    rep.check(
        code == Some(0),
        format!("deploy repairing the role exited {code:?}:\n{out}"),
    );
    rep.check(
        tcp_login(&sb, DB_NEW).is_ok(),
        "deploy did not give the role the stored password",
    );

    // 3. the installed root, then after a reboot (daemons gone, /run emptied)
    dry_round(
        &sb,
        &mut rep,
        "installed root",
        &["debian", "ubuntu", "clr", "centos"],
    );
    let reboot = "pg_ctlcluster 15 main stop -m fast; nginx -s stop; \
        kill $(cat /run/telemetry/collector.pid) 2>/dev/null; \
        for i in $(seq 50); do cat /proc/[0-9]*/comm 2>/dev/null | grep -qx -e nginx -e telem-collector -e postgres || break; sleep 0.1; done; \
        find /run -mindepth 1 -delete";
    let _ = sh(&sb, reboot);
    dry_round(
        &sb,
        &mut rep,
        "after a reboot",
        &["debian", "ubuntu", "clr", "centos"],
    );
    rep.finish();
}
