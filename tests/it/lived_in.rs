//! A lived-in Debian machine (one sandbox for the whole scenario): the operator installed
//! nginx with a site of its own and other packages before telem-deploy, has telemetrics-client's
//! `telemetry` user and directories, installs packages that share dependencies with PostgreSQL
//! afterwards (curl, git), and runs telem-deploy from /usr/local/bin after a first install from
//! the unpacked bundle. install → deploy with another password → uninstall -u → install:
//! only what the tool added goes, everything of the operator's survives, a re-run converges.

use std::collections::BTreeSet;

use crate::e2e_support::*;
use crate::sandbox::Sandbox;

const TOOL: &str = "/usr/local/bin/telem-deploy";
const PW2: &str = "/root/pw2";

/// What the operator set up before telem-deploy came.
const OPERATOR_BEFORE: &str = r#"
set -e
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q nginx ca-certificates >/dev/null
cat > /etc/nginx/sites-available/operator.conf <<'SITE'
server {
    listen 127.0.0.1:8081;
    server_name operator.example;
    location / { return 200 "operator site\n"; }
}
SITE
ln -s /etc/nginx/sites-available/operator.conf /etc/nginx/sites-enabled/operator.conf
nginx
# telemetrics-client's user and directories (the layout of its tmpfiles.d).
useradd --system --user-group --home-dir /var/lib/telemetry --no-create-home --shell /usr/sbin/nologin telemetry
for d in /var/lib/telemetry /var/spool/telemetry /var/log/telemetry /var/log/telemetry/records /var/cache/telemetry; do
    install -d -o telemetry -g telemetry -m 0750 "$d"
done
echo "client journal" > /var/log/telemetry/journal
chown telemetry:telemetry /var/log/telemetry/journal
"#;

/// What must never change: telemetrics-client's user and files, the operator's site.
const OPERATOR_THINGS: &str = r#"
find /var/lib/telemetry /var/spool/telemetry /var/log/telemetry /var/cache/telemetry -printf '%p %y %s %m %u:%g %T@\n' | sort
getent passwd telemetry
getent group telemetry
sha256sum /etc/nginx/sites-available/operator.conf
readlink /etc/nginx/sites-enabled/operator.conf
"#;

fn operator_site(sb: &Sandbox) -> Result<String, String> {
    sh(
        sb,
        "exec 3<>/dev/tcp/127.0.0.1/8081 || exit 7; \
         printf 'GET / HTTP/1.1\\r\\nHost: operator.example\\r\\nConnection: close\\r\\n\\r\\n' >&3; \
         timeout 20 cat <&3",
    )
}

fn recorded_packages(sb: &Sandbox) -> BTreeSet<String> {
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(host_path(sb, "/var/lib/telem-deploy/state.json")).unwrap_or_default(),
    )
    .unwrap_or_default();
    state["packages"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The packages the removal step of a run keeps, by its `keep package NAME (...)` lines.
fn kept_in(run: &Run) -> BTreeSet<String> {
    let steps = run.json["steps"].as_array().cloned().unwrap_or_default();
    steps
        .iter()
        .filter(|s| s["kind"] == "packages")
        .flat_map(|s| s["changes"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| {
            let c = c.as_str()?.strip_prefix("keep package ")?;
            Some(c.split_whitespace().next()?.to_owned())
        })
        .collect()
}

fn collector_user(sb: &Sandbox) -> Option<String> {
    let pid = *pids_of(sb, "telem-collector").first()?;
    sh(sb, &format!("stat -c %U /proc/{pid}")).ok()
}

#[test]
fn lived_in_machine_install_deploy_uninstall_u_install() {
    let mut rep = Report::new("lived_in");
    let Some(sb) = sandbox("uninstall-lived-in", false, &mut rep) else {
        return;
    };
    let before = rep.time("operator: nginx, own site, client user and dirs", || {
        sh(&sb, OPERATOR_BEFORE)
    });
    if let Err(e) = before {
        panic!("setting up the lived-in machine: {e}");
    }
    let operator_things = sh(&sb, OPERATOR_THINGS).expect("snapshot");
    sh(&sb, "touch /root/.before-telem-deploy").expect("marker");
    let operator_pkgs_before = packages(&sb);

    // 1. install from the unpacked bundle (/opt/telem).
    password_file(&sb, "first-Password-1");
    let run = deploy(&sb, &DEBIAN_INSTALL);
    rep.expect_ok("install (from /opt/telem)", run);
    rep.check(healthy(&sb).is_ok(), "healthy after install");
    rep.check(
        collector_user(&sb).as_deref() == Some("telem-collector"),
        format!(
            "the collector runs as {:?}, want telem-collector",
            collector_user(&sb)
        ),
    );
    rep.check(
        sh(&sb, &format!("runuser -u telemetry -- cat {CONFIG}")).is_err(),
        "telemetrics-client's user can read the collector's config (the password)",
    );
    rep.check(
        !exists(&sb, "/var/log/telemetry/collector.log"),
        "the collector logs into telemetrics-client's /var/log/telemetry",
    );
    let recorded = recorded_packages(&sb);
    rep.check(
        recorded.contains("postgresql") && !recorded.contains("nginx"),
        format!(
            "recorded: postgresql and what it pulled in, not the operator's nginx: {recorded:?}"
        ),
    );

    // 2. the operator installs more, sharing dependencies with PostgreSQL's.
    let later = rep.time("operator: apt-get install curl git", || {
        sh(
            &sb,
            "DEBIAN_FRONTEND=noninteractive apt-get install -y -q curl git >/dev/null",
        )
    });
    rep.check(
        later.is_ok(),
        format!("apt-get install curl git: {later:?}"),
    );
    let operator_pkgs: BTreeSet<String> = packages(&sb).difference(&recorded).cloned().collect();

    // 3. telem-deploy copied to /usr/local/bin: from now on run from there; deploy with
    //    another password.
    sh(&sb, &format!("cp /opt/telem/telem-deploy {TOOL}")).expect("cp");
    let out = sb.exec_with_stdin(
        &["bash", "-c", &format!("umask 077; cat > {PW2}")],
        b"second-Password-2",
    );
    assert!(out.status.success());
    let run = deploy_bin_run(
        &sb,
        TOOL,
        &[],
        &["-a", "deploy", "-d", "debian", "--db-password-file", PW2],
        None,
    );
    rep.expect_ok("deploy with another password (from /usr/local/bin)", run);
    rep.check(
        healthy(&sb).is_ok(),
        "healthy after deploy with another password",
    );
    rep.check(
        tcp_login(&sb, "second-Password-2").is_ok(),
        "the role has the password deploy wrote to the config",
    );

    // 4. uninstall -u: the dry run shows what the run does.
    let uninstall = ["-a", "uninstall", "-u", "-d", "debian", "--yes"];
    let plan = deploy_bin_run(
        &sb,
        TOOL,
        &[],
        &[&uninstall[..], &["--dry-run"]].concat(),
        None,
    );
    rep.check(
        plan.ok() && plan.summary("blocked") == 0,
        format!("uninstall -u --dry-run: {}", plan.context()),
    );
    let planned_keep = kept_in(&plan);
    let run = deploy_bin_run(&sb, TOOL, &[], &uninstall, None);
    let kept = kept_in(&run);
    rep.expect_ok("uninstall -u", run);
    eprintln!("[lived_in] kept packages: {kept:?}");
    rep.check(
        planned_keep == kept,
        format!("the dry run kept {planned_keep:?}, the run {kept:?}"),
    );
    rep.check(
        kept.contains("libldap-2.5-0"),
        format!("curl's libldap-2.5-0 (pulled in by PostgreSQL first) is kept: {kept:?}"),
    );
    let now = packages(&sb);
    let lost: Vec<&String> = operator_pkgs.difference(&now).collect();
    rep.check(
        lost.is_empty(),
        format!("the operator's packages removed: {lost:?}"),
    );
    let lost_before: Vec<&String> = operator_pkgs_before.difference(&now).collect();
    rep.check(
        lost_before.is_empty(),
        format!("packages of before the install removed: {lost_before:?}"),
    );
    let left: BTreeSet<&String> = recorded.intersection(&now).collect();
    let unexplained: Vec<&&String> = left.iter().filter(|p| !kept.contains(**p)).collect();
    rep.check(
        unexplained.is_empty(),
        format!("installed by telem-deploy, still there, not reported as kept: {unexplained:?}"),
    );
    rep.check(!now.contains("postgresql-15"), "postgresql-15 is removed");
    rep.check(
        sh(
            &sb,
            "apt-get check -q >/dev/null && curl --version >/dev/null && git --version >/dev/null",
        )
        .is_ok(),
        "dependencies broken, or curl/git no longer run",
    );
    let rc = sh(&sb, "dpkg-query -W -f '${db:Status-Abbrev}' postgresql-15").unwrap_or_default();
    rep.check(
        rc.starts_with("rc"),
        format!("postgresql-15 keeps its configuration (rc): {rc:?}"),
    );
    rep.check(
        exists(&sb, "/var/lib/postgresql/15/main/PG_VERSION"),
        "the PostgreSQL cluster's data stays",
    );
    rep.check(
        sh(&sb, OPERATOR_THINGS).ok().as_deref() == Some(operator_things.as_str()),
        "telemetrics-client's user/directories or the operator's site changed",
    );
    rep.check(
        operator_site(&sb).is_ok_and(|r| r.contains("operator site")),
        format!(
            "the operator's nginx no longer serves its site: {:?}",
            operator_site(&sb)
        ),
    );
    for gone in [
        "/etc/telemetry",
        "/var/log/telem-collector",
        "/run/telemetry",
        SITE,
        SITE_LINK,
    ] {
        rep.check(!exists(&sb, gone), format!("{gone} is left behind"));
    }
    rep.check(
        sh(&sb, "id -u telem-collector").is_err(),
        "user telem-collector is left",
    );
    rep.check(
        sh(&sb, "id -u telemetry").is_ok(),
        "telemetrics-client's user is gone",
    );
    rep.check(
        exists(&sb, COLLECTOR),
        "the collector /usr/local/bin/telem-deploy installs from is gone",
    );
    let state = std::fs::read_to_string(host_path(&sb, "/var/lib/telem-deploy/state.json"))
        .unwrap_or_default();
    eprintln!("[lived_in] state.json after uninstall -u:\n{state}");
    // For the record: every path changed since before the first install that is still there
    // (package manager bookkeeping left out).
    let left = sh(
        &sb,
        "find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /var/lib/dpkg -o -path /var/lib/apt \
         -o -path /var/cache -o -path /var/log/apt -o -path /root -o -path /tmp \\) -prune -o \
         -newer /root/.before-telem-deploy -print | sort",
    );
    eprintln!(
        "[lived_in] changed since before the install, after uninstall -u:\n{}",
        left.unwrap_or_else(|e| e)
    );

    // 5. install again (from /usr/local/bin), then once more: converged.
    let run = deploy_bin_run(
        &sb,
        TOOL,
        &[],
        &[
            "-a",
            "install",
            "-d",
            "debian",
            "--yes",
            "--db-password-file",
            PW2,
        ],
        None,
    );
    rep.expect_ok("install again", run);
    rep.check(healthy(&sb).is_ok(), "healthy after the second install");
    let run = deploy_bin_run(
        &sb,
        TOOL,
        &[],
        &[
            "-a",
            "install",
            "-d",
            "debian",
            "--yes",
            "--db-password-file",
            PW2,
        ],
        None,
    );
    rep.expect_converged("install a third time", run);
    rep.check(
        operator_site(&sb).is_ok_and(|r| r.contains("operator site")),
        "the operator's site after the re-install",
    );
    rep.check(
        sh(&sb, OPERATOR_THINGS).ok().as_deref() == Some(operator_things.as_str()),
        "telemetrics-client's user/directories or the operator's site changed by the re-install",
    );
    rep.finish();
}
