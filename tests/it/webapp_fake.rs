//! The legacy web UI (issue 7) applied on the fake host: a new snapshot restarts only uWSGI,
//! `migrate` runs the web UI's migrations after the collector's, and `install` adopts an
//! installation of the old deploy.sh (database kept and reassigned, old site and vassals set
//! aside).

use std::path::Path;

use telem_deploy::host::FileKind;

use crate::fake_host::{FakeHost, Node};
use crate::golden::{install_with, password_file, run, WEBAPP};

fn apply(host: &FakeHost, distro: &str, action: &str, extra: &[&str]) -> serde_json::Value {
    let pw = password_file();
    let mut args = vec!["-a", action, "-d", distro, "-H", "localhost", "--yes"];
    args.extend_from_slice(&["--db-password-file", pw.path().to_str().unwrap()]);
    args.extend_from_slice(&["--format", "json"]);
    args.extend_from_slice(extra);
    let (code, out, err) = run(host, &args);
    assert_eq!(code, 0, "{distro} {action} {extra:?}:\n{out}\n{err}");
    serde_json::from_str(&out).unwrap()
}

fn changed(doc: &serde_json::Value) -> Vec<String> {
    doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "changed")
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn another_branch_is_swapped_in_and_restarts_only_uwsgi() {
    for (distro, systemd) in [("debian", false), ("clr", true)] {
        let host = FakeHost::fresh(distro, systemd);
        install_with(&host, distro, &WEBAPP);
        let marker = "/var/www/telemetry/telemetryui/.telem-snapshot";
        let first = host.world.borrow().files[Path::new(marker)].content.clone();
        host.log.borrow_mut().clear();
        let mut args = WEBAPP.to_vec();
        args[4] = "branch2";
        let doc = apply(&host, distro, "deploy", &args);
        let names = changed(&doc);
        assert!(
            names
                .iter()
                .any(|n| n.starts_with("Install the web UI snapshot")),
            "{distro}: {names:?}"
        );
        assert!(
            names
                .iter()
                .all(|n| !n.contains("collector") && !n.contains("nginx")),
            "{distro}: only the web UI changes: {names:?}"
        );
        let second = host.world.borrow().files[Path::new(marker)].content.clone();
        assert_ne!(first, second, "{distro}: the marker names the new revision");
        assert!(String::from_utf8_lossy(&second).contains("branch2"));
        let log = host.log.borrow().join("\n");
        let restarted_uwsgi = match systemd {
            true => log.contains("systemctl restart telem-uwsgi"),
            false => log.contains("spawn (as root) /usr/bin/uwsgi --emperor"),
        };
        assert!(restarted_uwsgi, "{distro}: uWSGI restarted:\n{log}");
        for other in [
            "restart telem-collector",
            "restart postgresql",
            "pg_ctlcluster 15 main restart",
            "spawn /usr/local/bin/telem-collector",
            "nginx -s reload",
            "reload nginx",
        ] {
            assert!(!log.contains(other), "{distro}: ran `{other}`:\n{log}");
        }
        // and the same again changes nothing
        let doc = apply(&host, distro, "deploy", &args);
        assert_eq!(
            doc["summary"]["changed"],
            0,
            "{distro}: {:?}",
            changed(&doc)
        );
    }
}

#[test]
fn a_tarball_snapshot_is_keyed_by_its_checksum() {
    let host = FakeHost::fresh("debian", false);
    host.put("/srv/app.tar.gz", "tarball one");
    let tar = ["--webapp", "-t", "tarball", "-s", "file:///srv/app.tar.gz"];
    install_with(&host, "debian", &tar);
    let marker = "/var/www/telemetry/telemetryui/.telem-snapshot";
    let text =
        String::from_utf8_lossy(&host.world.borrow().files[Path::new(marker)].content).into_owned();
    assert!(text.starts_with("sha256:"), "{text}");
    assert_eq!(
        apply(&host, "debian", "deploy", &tar)["summary"]["changed"],
        0
    );
    host.put("/srv/app.tar.gz", "tarball two");
    let doc = apply(&host, "debian", "deploy", &tar);
    assert!(changed(&doc)
        .iter()
        .any(|n| n.starts_with("Install the web UI snapshot")));
}

#[test]
fn migrate_runs_the_web_uis_migrations_after_the_collectors() {
    let host = FakeHost::fresh("debian", false);
    install_with(&host, "debian", &WEBAPP);
    host.world.borrow_mut().schema_current = false;
    host.log.borrow_mut().clear();
    apply(&host, "debian", "migrate", &["--webapp"]);
    assert_eq!(host.world.borrow().flask_migrated, 1);
    let log = host.log.borrow();
    let collector = log.iter().position(|c| c.ends_with(" migrate"));
    let flask = log.iter().position(|c| c.contains("flask db upgrade"));
    assert!(
        collector.is_some() && flask > collector,
        "collector migrations first, then flask: {log:?}"
    );
    let shown = &log[flask.unwrap()];
    assert!(
        !shown.contains(crate::golden::PASSWORD) && shown.contains("POSTGRES_PASSWORD=********"),
        "{shown}"
    );
    // without --webapp, migrate leaves the web UI alone
    drop(log);
    apply(&host, "debian", "migrate", &[]);
    assert_eq!(host.world.borrow().flask_migrated, 1);
}

/// What deploy.sh left: its app directory with site and snapshot, two vassals, its emperor
/// unit, nginx's link to its site, and a running PostgreSQL with a database owned by postgres.
fn deploy_sh_layout(host: &FakeHost, distro: &str, site_link: &str, unit: &str) {
    match distro {
        "debian" => host.install_package("postgresql"),
        _ => {
            host.install_package("database-basic");
            host.put("/var/lib/pgsql/data/PG_VERSION", "16\n");
            host.put("/var/lib/pgsql/data/pg_hba.conf", "local all all peer\n");
        }
    }
    host.dir("/var/www/telemetry");
    host.dir("/var/www/telemetry/telemetryui");
    host.put(
        "/var/www/telemetry/telemetryui/run.py",
        "from telemetryui import app\n",
    );
    host.put(
        "/var/www/telemetry/sites_nginx.conf",
        "server { listen 80; }\n",
    );
    host.dir("/etc/uwsgi/vassals");
    host.put("/etc/uwsgi/vassals/telemetryui_uwsgi.ini", "[uwsgi]\n");
    host.put("/etc/uwsgi/vassals/collector_uwsgi.ini", "[uwsgi]\n");
    host.put(
        unit,
        "[Service]\nExecStart=/usr/bin/uwsgi --emperor /etc/uwsgi/vassals\n",
    );
    let mut w = host.world.borrow_mut();
    w.files.insert(
        site_link.into(),
        Node {
            kind: FileKind::Symlink("/var/www/telemetry/sites_nginx.conf".into()),
            content: vec![],
            uid: 0,
            gid: 0,
            mode: 0o777,
        },
    );
    w.databases.insert("telemetry".into(), "postgres".into());
    w.postgres_owned = 3;
    w.running.insert("postgresql".into());
    w.running.insert("uwsgi".into());
    w.enabled.insert("uwsgi".into());
}

#[test]
fn install_adopts_a_deploy_sh_installation() {
    for (distro, systemd, site_link, unit) in [
        (
            "debian",
            false,
            "/etc/nginx/sites-enabled/sites_nginx.conf",
            "/lib/systemd/system/uwsgi.service",
        ),
        (
            "clr",
            true,
            "/etc/nginx/conf.d/sites_nginx.conf",
            "/etc/systemd/system/uwsgi.service",
        ),
    ] {
        let host = FakeHost::fresh(distro, systemd);
        deploy_sh_layout(&host, distro, site_link, unit);
        // the plan says so
        let (code, plan, err) = run(
            &host,
            &[
                "-a",
                "install",
                "-d",
                distro,
                "-H",
                "localhost",
                "--dry-run",
            ],
        );
        assert_eq!(code, 0, "{err}");
        for want in [
            "adopting deploy.sh's installation",
            "/etc/uwsgi/vassals/telemetryui_uwsgi.ini",
            &format!("remove {site_link} (kept for uninstall)"),
            "make telemetry the owner of database telemetry (owned by postgres)",
        ] {
            assert!(
                plan.contains(want),
                "{distro}: plan lacks `{want}`:\n{plan}"
            );
        }
        // applied: the database (and its records) stays, reassigned; the old parts are set aside
        let mut extra = WEBAPP.to_vec();
        extra.remove(0);
        extra.insert(0, "--webapp");
        let doc = apply(&host, distro, "install", &extra);
        let w = host.world.borrow();
        assert_eq!(
            w.databases.get("telemetry").map(String::as_str),
            Some("telemetry")
        );
        assert_eq!(w.postgres_owned, 0, "{distro}: tables reassigned");
        for gone in [
            site_link,
            "/etc/uwsgi/vassals/telemetryui_uwsgi.ini",
            "/etc/uwsgi/vassals/collector_uwsgi.ini",
            "/var/www/telemetry/sites_nginx.conf",
            unit,
        ] {
            assert!(
                !w.files.contains_key(Path::new(gone)),
                "{distro}: {gone} is still there"
            );
        }
        assert!(
            !w.files
                .contains_key(Path::new("/var/www/telemetry/telemetryui/run.py")),
            "{distro}: deploy.sh's snapshot is replaced"
        );
        if systemd {
            assert!(!w.running.contains("uwsgi") && !w.enabled.contains("uwsgi"));
        }
        let state: serde_json::Value =
            serde_json::from_slice(&w.files[Path::new("/var/lib/telem-deploy/state.json")].content)
                .unwrap();
        for saved in [
            site_link,
            "/etc/uwsgi/vassals/telemetryui_uwsgi.ini",
            "/var/www/telemetry/telemetryui",
        ] {
            assert!(
                state["saved"].get(saved).is_some(),
                "{distro}: {saved} not set aside: {state}"
            );
        }
        assert!(
            w.files
                .keys()
                .any(|p| p.starts_with("/var/lib/telem-deploy/saved") && p.ends_with("run.py")),
            "{distro}: the old snapshot is kept under /var/lib/telem-deploy/saved"
        );
        drop(w);
        assert_eq!(doc["summary"]["failed"], 0);
        // a second install changes nothing
        let doc = apply(&host, distro, "install", &extra);
        assert_eq!(
            doc["summary"]["changed"],
            0,
            "{distro}: {:?}",
            changed(&doc)
        );
    }
}
