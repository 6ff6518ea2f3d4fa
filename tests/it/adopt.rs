//! Issue 7's adoption end to end: on a fresh Debian root sandbox, build for real what the old
//! deploy.sh left (nginx and PostgreSQL from the offline cache, a `telemetry` database owned by
//! `postgres` with the upstream schema and records, /var/www/telemetry with its snapshot and
//! `sites_nginx.conf` enabled in nginx, two uWSGI vassals, its emperor unit), then `install`:
//! the dry run says it adopts and changes nothing; the install keeps the records, makes
//! `telemetry` the owner of the database and its tables, sets the old site, vassals and unit
//! aside, nginx serves the collector, new records land next to the old ones, and a second
//! install changes nothing. (The paths are those of webapp_fake.rs's `deploy_sh_layout`.)

use crate::e2e_support::*;

const PASSWORD: &str = "adopt 'pw' Zq8Tok";
const OLD_SITE: &str = "/var/www/telemetry/sites_nginx.conf";
const OLD_LINK: &str = "/etc/nginx/sites-enabled/sites_nginx.conf";
const OLD_SNAPSHOT: &str = "/var/www/telemetry/telemetryui/run.py";
const OLD_UNIT: &str = "/lib/systemd/system/uwsgi.service";
const VASSALS: [&str; 2] = [
    "/etc/uwsgi/vassals/telemetryui_uwsgi.ini",
    "/etc/uwsgi/vassals/collector_uwsgi.ini",
];
const OLD_ROWS: i64 = 3;
const UPSTREAM_SCHEMA: &str = include_str!("../../server/migrations/0001_upstream_schema.sql");

/// What deploy.sh left behind, made with the same tools it used (apt, psql as postgres, files).
const DEPLOY_SH: &str = r#"set -e
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q nginx postgresql >/tmp/deploy-sh-apt.log 2>&1 || { tail -n 30 /tmp/deploy-sh-apt.log; exit 1; }
pg_ctlcluster 15 main status >/dev/null 2>&1 || pg_ctlcluster 15 main start
runuser -u postgres -- createdb telemetry
mkdir -p /var/www/telemetry/telemetryui /etc/uwsgi/vassals
echo 'from telemetryui import app' > /var/www/telemetry/telemetryui/run.py
cat > /var/www/telemetry/sites_nginx.conf <<'EOF'
server {
    listen 80;
    server_name localhost;
    location / { return 200 "deploy.sh's old site\n"; }
}
EOF
ln -s /var/www/telemetry/sites_nginx.conf /etc/nginx/sites-enabled/sites_nginx.conf
printf '[uwsgi]\nchdir = /var/www/telemetry\nmodule = run:app\n' > /etc/uwsgi/vassals/telemetryui_uwsgi.ini
printf '[uwsgi]\nchdir = /var/www/telemetry\nmodule = collector:app\n' > /etc/uwsgi/vassals/collector_uwsgi.ini
mkdir -p /lib/systemd/system
printf '[Service]\nExecStart=/usr/bin/uwsgi --emperor /etc/uwsgi/vassals\n' > /lib/systemd/system/uwsgi.service
nginx -t -q
[ -e /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null || nginx
"#;

/// The upstream schema and `OLD_ROWS` records, created as the postgres role (deploy.sh's).
fn old_records() -> String {
    let mut script = String::from(UPSTREAM_SCHEMA);
    for i in 1..=OLD_ROWS {
        script.push_str(&format!(
            "INSERT INTO records (build, classification, machine_id, severity, \
             timestamp_server, payload, record_version) \
             VALUES ('31000', 'org.clearlinux/crash/old', 'deploy-sh-machine-{i}', 2, \
             1500000000 + {i}, 'old payload {i}', 4);\n"
        ));
    }
    script
}

/// Paths that the running PostgreSQL and nginx may touch while nothing else does.
fn quiet(changes: Vec<String>) -> Vec<String> {
    changes
        .into_iter()
        .filter(|l| !l.contains("/var/lib/postgresql/") && !l.contains("/var/log/"))
        .collect()
}

#[test]
fn install_adopts_a_deploy_sh_installation_for_real() {
    let mut rep = Report::new("install_adopts_a_deploy_sh_installation_for_real");
    let Some(sb) = sandbox("e2e-adopt", false, &mut rep) else {
        return;
    };

    // 1. deploy.sh's installation
    let made = rep.time(
        "build deploy.sh's installation (apt, database, files)",
        || sh(&sb, DEPLOY_SH),
    );
    made.unwrap_or_else(|e| panic!("building deploy.sh's installation: {e}"));
    sql(&sb, "telemetry", &old_records())
        .unwrap_or_else(|e| panic!("the upstream schema and old records: {e}"));
    let owner_sql = "select pg_catalog.pg_get_userbyid(datdba) from pg_database \
                     where datname = 'telemetry'";
    let table_owner_sql = "select tableowner from pg_tables where tablename = 'records'";
    assert_eq!(sql(&sb, "postgres", owner_sql).as_deref(), Ok("postgres"));
    assert_eq!(
        get(&sb, DOMAIN, "/").map(|(_, b)| b.contains("deploy.sh's old site")),
        Ok(true),
        "deploy.sh's site is served before the install"
    );
    password_file(&sb, PASSWORD);

    // 2. the dry run says it adopts, and changes nothing
    let before = quiet(sb.changes().expect("changes"));
    let dry = rep.expect_ok(
        "install --dry-run",
        deploy(&sb, &["-a", "install", "-d", "debian", "--dry-run"]),
    );
    let legacy = dry.json["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["kind"] == "legacy"))
        .map(|s| s.to_string())
        .unwrap_or_default();
    for want in [
        "adopting deploy.sh's installation",
        OLD_SITE,
        OLD_LINK,
        VASSALS[0],
    ] {
        rep.check(
            legacy.contains(want),
            format!("the legacy step lacks `{want}`: {legacy:?}"),
        );
    }
    let plan = dry.stdout.clone();
    for want in [
        format!("remove {OLD_LINK} (kept for uninstall)"),
        "make telemetry the owner of database telemetry (owned by postgres)".to_string(),
    ] {
        rep.check(plan.contains(&want), format!("the plan lacks `{want}`"));
    }
    let after = quiet(sb.changes().expect("changes"));
    rep.check(
        before == after,
        format!("the dry run changed the root: {before:?} -> {after:?}"),
    );

    // 3. the real install
    let install = DEBIAN_INSTALL;
    let run = rep.expect_ok("install (adopting)", deploy(&sb, &install));
    if !run.ok() {
        return rep.finish();
    }
    check_installed(&sb, &mut rep, PASSWORD);
    let old = sql(
        &sb,
        "telemetry",
        "select count(*) from records where machine_id like 'deploy-sh-machine-%'",
    );
    rep.check(
        old.as_deref() == Ok(&OLD_ROWS.to_string()),
        format!("old records after the install: {old:?}, want {OLD_ROWS}"),
    );
    for (what, q) in [("database", owner_sql), ("records table", table_owner_sql)] {
        let owner = sql(&sb, "telemetry", q);
        rep.check(
            owner.as_deref() == Ok("telemetry"),
            format!("owner of the {what}: {owner:?}, want telemetry"),
        );
    }
    let by_postgres = sql(
        &sb,
        "telemetry",
        "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace \
         where n.nspname = 'public' and c.relowner = 'postgres'::regrole",
    );
    rep.check(
        by_postgres.as_deref() == Ok("0"),
        format!("relations postgres still owns in telemetry: {by_postgres:?}"),
    );
    // the collector's migrations ran over the upstream schema
    let migrate = sb.exec(&[
        "runuser",
        "-u",
        "telem-collector",
        "--",
        COLLECTOR,
        "--config",
        CONFIG,
        "migrate",
        "--check",
    ]);
    rep.check(
        migrate.status.success(),
        format!(
            "migrate --check after the install: {}",
            text(&migrate.stdout)
        ),
    );
    // the old parts are gone from their live places, and set aside
    for gone in [OLD_SITE, OLD_LINK, OLD_UNIT, VASSALS[0], VASSALS[1]] {
        rep.check(!exists(&sb, gone), format!("{gone} is still there"));
    }
    let state: serde_json::Value =
        std::fs::read(host_path(&sb, "/var/lib/telem-deploy/state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
    for saved in [OLD_SITE, OLD_LINK, OLD_UNIT, VASSALS[0], VASSALS[1]] {
        rep.check(
            state["saved"].get(saved).is_some(),
            format!("{saved} is not set aside in state.json: {}", state["saved"]),
        );
    }
    // the site's text is kept (for uninstall), the link as its target
    let backup = state["saved"][OLD_SITE]["file"]["backup"]
        .as_str()
        .unwrap_or("/nonexistent");
    let kept = std::fs::read_to_string(host_path(&sb, backup)).unwrap_or_default();
    rep.check(
        backup.starts_with("/var/lib/telem-deploy/saved/") && kept.contains("deploy.sh's old site"),
        format!("deploy.sh's site is not kept under /var/lib/telem-deploy/saved: {backup}"),
    );
    rep.check(
        state["saved"][OLD_LINK]["symlink"]["target"] == OLD_SITE,
        format!(
            "the nginx link's target is not kept: {}",
            state["saved"][OLD_LINK]
        ),
    );
    rep.check(
        exists(&sb, OLD_SNAPSHOT),
        "without --webapp, deploy.sh's web UI snapshot is left alone",
    );
    let root = get(&sb, DOMAIN, "/");
    rep.check(
        root.as_ref()
            .is_ok_and(|(_, b)| !b.contains("deploy.sh's old site")),
        format!("nginx still serves deploy.sh's site: {root:?}"),
    );
    // a record posted now is stored next to the old ones
    post_records(&sb, &mut rep);
    let all = sql(&sb, "telemetry", "select count(*) from records");
    rep.check(
        all.as_deref() == Ok(&(OLD_ROWS + 2).to_string()),
        format!("records after two posts: {all:?}, want {}", OLD_ROWS + 2),
    );

    // 4. a second install changes nothing
    rep.expect_converged("install (second run)", deploy(&sb, &install));
    rep.finish();
}
