//! An inventory's `resetdb` and its rolling `deploy`/`restart` behind the balancer, on fake
//! hosts, with what every machine did in one order across machines (`Fleet::events`):
//! resetdb stops every collector before the primary drops the database, then the first
//! collector migrates and starts, then the others; a rolling restart marks each collector
//! `down` in the balancer's upstream exactly while it changes and puts it back after its health
//! check (the config as install writes it); a collector that fails stays drained, says so, and
//! the next run puts it back; a dry run changes nothing and shows every job's plan (golden).
//! A machine with two jobs in one run: the later one builds on the state file the earlier one
//! recorded.

use std::path::Path;

use telem_deploy::cli::Cli;
use telem_deploy::fleet::Job;

use crate::fake_fleet::{argv, Event, Fleet};
use crate::fake_host::FakeHost;
use crate::golden;
use crate::inventory::{targets, Setup};

const SITE: &str = "/etc/nginx/sites-available/telemetry.conf";
const CONFIG: &str = "/etc/telemetry/collector.toml";
const HOSTS: [&str; 4] = ["db1", "web1", "web2", "lb"];

/// FLEET (db1, web1 and web2, lb) installed and converged.
fn installed() -> Setup {
    let s = Setup::fresh();
    let pw = golden::password_file();
    let (code, doc, err) = s.run(
        "install",
        &["--yes", "--db-password-file", pw.path().to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}\n{doc:#}");
    s
}

fn names(doc: &serde_json::Value) -> Vec<String> {
    targets(doc).into_iter().map(|t| t.0).collect()
}

/// The first event of `host` whose description contains `what`.
fn first(events: &[Event], host: &str, what: &str) -> Option<usize> {
    events
        .iter()
        .position(|e| e.host == host && e.what.contains(what))
}

/// The balancer's site as last written before event `at`.
fn site_before(events: &[Event], at: usize) -> Option<String> {
    events[..at]
        .iter()
        .rev()
        .find(|e| e.host == "lb" && e.what == format!("write {SITE}"))
        .and_then(|e| e.content.clone())
}

/// The collectors a balancer's site marks `down`.
fn down(site: &str) -> Vec<String> {
    site.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("server ") && l.ends_with(" down;"))
        .map(|l| l["server ".len()..].split(':').next().unwrap().to_owned())
        .collect()
}

fn worlds(s: &Setup) -> Vec<crate::fake_host::World> {
    HOSTS
        .iter()
        .map(|n| s.fleet.with(n, |h| h.world.borrow().clone()))
        .collect()
}

/// The names of the steps of target `i`'s report.
fn steps(doc: &serde_json::Value, i: usize) -> Vec<String> {
    doc["targets"][i]["report"]["steps"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|s| s["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn all_ok(doc: &serde_json::Value) {
    for (name, ok, _) in targets(doc) {
        assert!(ok, "{name}: {doc:#}");
    }
}

fn converged(s: &Setup) {
    let (code, doc, err) = s.run("install", &["--yes"]);
    assert_eq!(code, 0, "{err}\n{doc:#}");
    for (name, ok, changes) in targets(&doc) {
        assert!(ok && changes == 0, "{name} changed: {doc:#}");
    }
}

#[test]
fn resetdb_stops_every_collector_before_the_drop_then_the_first_collector_migrates() {
    let s = installed();

    // The dry run: every job's plan, nothing changed.
    let before = worlds(&s);
    let (code, doc, err) = s.run("resetdb", &["--dry-run"]);
    assert_eq!(code, 0, "{err}\n{doc:#}");
    assert_eq!(
        names(&doc),
        ["db1", "web1 (stop)", "web1", "web2 (stop)", "web2", "lb"]
    );
    assert!(worlds(&s) == before, "the dry run changed a machine");
    let db1 = steps(&doc, 0);
    for want in [
        "Back up the database",
        "Drop the database",
        "Create the database",
    ] {
        assert!(db1.iter().any(|s| s == want), "db1: {db1:?}");
    }
    assert!(
        !db1.iter()
            .any(|s| s.contains("collector") || s.contains("Migrate")),
        "a db-only host has no collector step: {db1:?}"
    );
    assert_eq!(steps(&doc, 1), ["Stop the collector"]);
    assert_eq!(doc["targets"][1]["report"]["summary"]["change"], 1);
    let web1 = steps(&doc, 2);
    assert!(
        !web1
            .iter()
            .any(|s| s.contains("database") && !s.contains("schema")),
        "a collector-only host drops nothing: {web1:?}"
    );
    assert!(web1.iter().any(|s| s == "Migrate the database schema"));
    assert_eq!(doc["targets"][5]["report"]["action"], "resetdb");

    // Applied: the new database has no schema yet (the collectors' fakes keep it).
    for web in ["web1", "web2"] {
        s.fleet
            .with(web, |h| h.world.borrow_mut().schema_current = false);
    }
    let (code, doc, err) = s.run("resetdb", &["--yes"]);
    assert_eq!(code, 0, "{err}\n{doc:#}");
    all_ok(&doc);
    let ev = s.fleet.events();
    let dropped = ev
        .iter()
        .position(|e| {
            e.host == "db1"
                && e.what.starts_with("run ")
                && !e.databases.contains(&"telemetry".into())
        })
        .expect("db1 dropped the database");
    let created = dropped
        + ev[dropped..]
            .iter()
            .position(|e| e.host == "db1" && e.databases.contains(&"telemetry".into()))
            .expect("db1 re-created the database");
    let backup = first(&ev, "db1", "pg_dump").expect("db1 backed the database up");
    assert!(backup < dropped);
    for web in ["web1", "web2"] {
        let stop = first(&ev, web, "stop telem-collector").expect("stopped");
        assert!(
            stop < backup,
            "{web} stopped after the primary began: {ev:#?}"
        );
    }
    let migrated = ev
        .iter()
        .position(|e| e.host == "web1" && e.what.ends_with(" migrate"))
        .expect("web1 migrated");
    let start = |web| first(&ev, web, "start telem-collector").expect("started");
    assert!(created < migrated && migrated < start("web1"), "{ev:#?}");
    assert!(start("web1") < start("web2"), "{ev:#?}");
    converged(&s);
}

#[test]
fn a_later_job_on_the_same_machine_builds_on_the_state_an_earlier_one_recorded() {
    let fleet = Fleet::new(vec![("m", Some(FakeHost::fresh("debian", true)))]);
    let pw = golden::password_file();
    let pw = pw.path().to_str().unwrap();
    let job = |label: &str, args: &[&str], wave| Job {
        label: label.to_owned(),
        host: "m".to_owned(),
        cli: Cli::try_parse_args(argv(args)).unwrap(),
        wave,
        stranded: None,
    };
    // Both planned before either changes anything: the uninstall read an empty state file.
    let jobs = vec![
        job(
            "m (install)",
            &[
                "-a",
                "install",
                "-H",
                "localhost",
                "--yes",
                "--db-password-file",
                pw,
            ],
            0,
        ),
        job(
            "m (uninstall)",
            &["-a", "uninstall", "-H", "localhost", "--yes"],
            1,
        ),
    ];
    let (code, out, err) = fleet.run_jobs(
        &[
            "-a",
            "install",
            "-H",
            "localhost",
            "--yes",
            "--format",
            "json",
        ],
        jobs,
    );
    assert_eq!(code, 0, "{err}\n{out}");
    let state = fleet.with("m", |h| {
        let w = h.world.borrow();
        let node = w
            .files
            .get(Path::new("/var/lib/telem-deploy/state.json"))
            .expect("state file");
        serde_json::from_slice::<serde_json::Value>(&node.content).unwrap()
    });
    // The uninstall removed what the install created (it knew), and kept the install's
    // record of the packages it installed (a stale copy would have lost it).
    assert!(fleet.with("m", |h| !h.exists(CONFIG)), "{state:#}");
    let packages = state["packages"].to_string();
    assert!(packages.contains("nginx"), "{state:#}");
    assert_eq!(state["created"], serde_json::json!([]), "{state:#}");
}

#[test]
fn a_rolling_restart_takes_each_collector_out_of_the_balancer_exactly_while_it_changes() {
    let s = installed();
    let (site, _) = s.file("lb", SITE).expect("site");
    assert!(down(&site).is_empty(), "{site}");
    let (code, doc, err) = s.run("restart", &[]);
    assert_eq!(code, 0, "{err}\n{doc:#}");
    all_ok(&doc);
    assert_eq!(
        names(&doc),
        [
            "db1",
            "web1",
            "web2",
            "lb (drain web1)",
            "lb (undrain web1)",
            "lb (drain web2)",
            "lb (undrain web2)",
            "lb"
        ]
    );
    let ev = s.fleet.events();
    let upgrade = |web| first(&ev, web, "reload telem-collector").expect("upgraded");
    let last = |web: &str| ev.iter().rposition(|e| e.host == web).unwrap();
    let (w1, w2) = (upgrade("web1"), upgrade("web2"));
    assert!(w1 < w2);
    let at = |i| site_before(&ev, i).expect("the balancer's site written");
    assert_eq!(down(&at(w1)), ["10.0.0.21"], "{ev:#?}");
    assert_eq!(down(&at(w2)), ["10.0.0.22"], "{ev:#?}");
    // nginx reloaded after the drain, before the upgrade.
    let drained = ev[..w1]
        .iter()
        .rposition(|e| e.host == "lb" && e.what == format!("write {SITE}"))
        .unwrap();
    assert!(
        ev[drained..w1]
            .iter()
            .any(|e| e.host == "lb" && e.what.contains("reload nginx")),
        "{ev:#?}"
    );
    // web1 back (its health check passed) before web2 leaves.
    let back = ev[last("web1")..w2]
        .iter()
        .find(|e| e.host == "lb" && e.what == format!("write {SITE}"))
        .expect("web1 put back before web2 is drained");
    assert!(down(back.content.as_deref().unwrap()).is_empty());
    assert!(
        ev[last("web1")..]
            .iter()
            .position(|e| e.host == "lb" && e.what == format!("write {SITE}"))
            < ev[last("web1")..]
                .iter()
                .position(|e| e.host == "web2" && e.what.contains("reload telem-collector"))
    );
    assert_eq!(
        s.file("lb", SITE).unwrap().0,
        site,
        "the site as install wrote it"
    );
    converged(&s);
}

#[test]
fn a_collector_that_fails_its_rolling_restart_stays_drained_and_the_next_run_puts_it_back() {
    let s = installed();
    let (site, _) = s.file("lb", SITE).expect("site");
    let config = s.fleet.with("web1", |h| {
        h.world
            .borrow_mut()
            .files
            .remove(Path::new(CONFIG))
            .unwrap()
    });
    let (code, doc, err) = s.run("restart", &[]);
    assert_eq!(code, 1, "{err}\n{doc:#}");
    let by_name = |n: &str| {
        doc["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["target"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("web1")["ok"], false, "{doc:#}");
    let stranded = by_name("lb (undrain web1)")["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        stranded.contains("not run: web1 failed before its turn")
            && stranded.contains("web1 stays out of the balancer lb"),
        "{stranded}"
    );
    assert_eq!(down(&s.file("lb", SITE).unwrap().0), ["10.0.0.21"]);
    assert!(
        first(&s.fleet.events(), "web2", "reload telem-collector").is_none(),
        "web2 changed after web1 failed"
    );

    // Fixed, the next run puts web1 back.
    s.fleet.with("web1", |h| {
        h.world.borrow_mut().files.insert(CONFIG.into(), config)
    });
    let (code, doc, err) = s.run("restart", &[]);
    assert_eq!(code, 0, "{err}\n{doc:#}");
    assert_eq!(s.file("lb", SITE).unwrap().0, site);
    converged(&s);
}

#[test]
fn a_dry_run_of_a_rolling_deploy_shows_every_drain_and_changes_nothing() {
    let s = installed();
    let before = worlds(&s);
    let (code, doc, err) = s.run("deploy", &["--dry-run"]);
    assert_eq!(code, 0, "{err}\n{doc:#}");
    assert!(worlds(&s) == before, "the dry run changed a machine");
    // Each job: its action and what it would change.
    let mut text = String::new();
    for t in doc["targets"].as_array().unwrap() {
        let r = &t["report"];
        text.push_str(&format!(
            "== {} ({}) ==\n",
            t["target"].as_str().unwrap(),
            r["action"].as_str().unwrap_or("?")
        ));
        for step in r["steps"].as_array().unwrap() {
            if step["status"] == "ok" {
                continue;
            }
            text.push_str(&format!(
                "{}: {} [{}]\n",
                step["status"].as_str().unwrap_or("?"),
                step["name"].as_str().unwrap_or("?"),
                step["changes"]
                    .as_array()
                    .map(|c| c
                        .iter()
                        .map(|c| c.as_str().unwrap_or("?"))
                        .collect::<Vec<_>>()
                        .join("; "))
                    .unwrap_or_default()
            ));
            if let Some(diff) = step["diff"].as_str() {
                text.push_str(diff);
            }
        }
    }
    crate::fake_fleet::golden_compare("inventory/deploy-dry-run.txt", &text);
}

#[test]
fn a_rolling_deploy_runs_on_every_host_the_database_host_with_the_inventorys_password() {
    let s = installed();
    let (site, _) = s.file("lb", SITE).expect("site");
    let (code, doc, err) = s.run("deploy", &[]);
    assert_eq!(code, 0, "{err}\n{doc:#}");
    all_ok(&doc);
    let ev = s.fleet.events();
    let drained = ev
        .iter()
        .filter(|e| e.host == "lb" && e.what == format!("write {SITE}"))
        .filter_map(|e| e.content.as_deref())
        .map(down)
        .collect::<Vec<_>>();
    assert_eq!(
        drained,
        [vec!["10.0.0.21"], vec![], vec!["10.0.0.22"], vec![]],
        "each collector out and back in turn"
    );
    assert_eq!(s.file("lb", SITE).unwrap().0, site);
    converged(&s);
}
