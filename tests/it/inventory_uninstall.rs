//! `uninstall` of an inventory's database host that the operator already used (fake Debian
//! hosts, `fake_psql.rs` for the server): their own `ALTER SYSTEM` values for the settings
//! telem-deploy changes (`listen_addresses`, `ssl` with their own certificate) and their own
//! pg_hba.conf lines. Install records what was there (state file), a re-run keeps that record,
//! the uninstall plan shows what comes back and changes nothing, uninstall puts the operator's
//! values back (and a second uninstall leaves them); on a host where nothing was set before,
//! uninstall resets what the tool added. The same against a real PostgreSQL:
//! src/steps/pg_host_server_test.rs.

use std::collections::BTreeMap;

use crate::fake_host::FakeHost;
use crate::fake_psql::HBA_FILE;
use crate::inventory::{targets, Setup};

/// db1 (db) and web1 (collector).
const FLEET: &str = "\
domain: telemetry.example.com
hosts:
  - name: db1
    target: root@10.0.0.11
    roles: [db]
  - name: web1
    target: root@10.0.0.21
    roles: [collector]
";

const HBA: &str = "# the operator's own\r\nlocal all postgres peer\nhostssl all alice 192.0.2.0/24 scram-sha-256\n";

const NAMES: [&str; 4] = ["listen_addresses", "ssl", "ssl_cert_file", "ssl_key_file"];

/// The operator's own ALTER SYSTEM values (postgresql.auto.conf), running.
fn theirs() -> BTreeMap<String, String> {
    [
        ("listen_addresses", "*"),
        ("ssl", "on"),
        ("ssl_cert_file", "/etc/ssl/certs/their-db.pem"),
        ("ssl_key_file", "/etc/ssl/private/their-db.key"),
        ("work_mem", "64MB"),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_owned(), v.to_owned()))
    .collect()
}

fn fleet(before: &BTreeMap<String, String>) -> Setup {
    let db = FakeHost::fresh("debian", true);
    {
        let mut w = db.world.borrow_mut();
        w.pg_auto_conf = before.clone();
        w.pg_settings = before.clone();
    }
    db.put(HBA_FILE, HBA);
    Setup::new(
        FLEET,
        vec![
            ("db1", Some(db)),
            ("web1", Some(FakeHost::fresh("debian", true))),
        ],
    )
}

/// (postgresql.auto.conf, running settings) of db1.
fn settings(s: &Setup) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    s.fleet.with("db1", |h| {
        let w = h.world.borrow();
        (w.pg_auto_conf.clone(), w.pg_settings.clone())
    })
}

/// What db1's state file records of its PostgreSQL settings.
fn recorded(s: &Setup) -> serde_json::Value {
    let (text, mode) = s
        .file("db1", "/var/lib/telem-deploy/state.json")
        .expect("state file");
    assert_eq!(mode, 0o600);
    let state: serde_json::Value = serde_json::from_str(&text).unwrap();
    state["postgres_settings"].clone()
}

fn uninstall(s: &Setup) -> serde_json::Value {
    let (code, doc, err) = s.run("uninstall", &["--yes", "--no-backup"]);
    assert_eq!(code, 0, "{err}\n{doc:#}");
    for (name, ok, _) in targets(&doc) {
        assert!(ok, "{name}: {doc:#}");
    }
    doc
}

/// db1's step of that name in a plan or result: (status, changes).
fn step(doc: &serde_json::Value, name: &str) -> (String, Vec<String>) {
    let steps = doc["targets"][0]["report"]["steps"].as_array().unwrap();
    let s = steps
        .iter()
        .find(|s| s["name"].as_str().unwrap().starts_with(name))
        .unwrap_or_else(|| panic!("no step {name}: {doc:#}"));
    (
        s["status"].as_str().unwrap().to_owned(),
        s["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect(),
    )
}

const STOP: &str = "Stop listening on 10.0.0.11";

#[test]
fn uninstall_puts_back_the_operators_own_database_settings() {
    let before = theirs();
    let s = fleet(&before);
    s.install();
    let (auto, running) = settings(&s);
    assert_eq!(auto["listen_addresses"], "localhost,10.0.0.11");
    assert_eq!(auto["ssl_cert_file"], "/etc/telem-db-tls/server.crt");
    assert_eq!(running, auto, "restarted");
    let record = recorded(&s);
    assert_eq!(
        record["listen_addresses"],
        serde_json::json!({"before": "*", "ours": "localhost,10.0.0.11"})
    );
    assert_eq!(
        record["ssl"],
        serde_json::json!({"before": "on", "ours": "on"})
    );
    assert_eq!(
        record["ssl_key_file"]["before"], "/etc/ssl/private/their-db.key",
        "{record:#}"
    );
    assert!(record.get("work_mem").is_none(), "{record:#}");

    // A re-run changes nothing, the record neither.
    let (code, doc, err) = s.run("install", &["--yes"]);
    assert_eq!(code, 0, "{err}\n{doc:#}");
    for (name, ok, changes) in targets(&doc) {
        assert!(ok && changes == 0, "{name}: {doc:#}");
    }
    assert_eq!(recorded(&s), record);

    // The plan of uninstall shows what comes back, and changes nothing.
    let was = s.fleet.with("db1", |h| h.world.borrow().clone());
    let (code, plan, err) = s.run("uninstall", &["--dry-run", "--no-backup"]);
    assert_eq!(code, 0, "{err}\n{plan:#}");
    let (status, changes) = step(&plan, STOP);
    assert_eq!(status, "change");
    assert_eq!(
        changes,
        [
            "ALTER SYSTEM SET listen_addresses = '*' (put back the value from before telem-deploy; \
             ALTER SYSTEM has 'localhost,10.0.0.11'; applied by a restart)",
            "ALTER SYSTEM SET ssl_cert_file = '/etc/ssl/certs/their-db.pem' (put back the value \
             from before telem-deploy; ALTER SYSTEM has '/etc/telem-db-tls/server.crt'; applied by a reload)",
            "ALTER SYSTEM SET ssl_key_file = '/etc/ssl/private/their-db.key' (put back the value \
             from before telem-deploy; ALTER SYSTEM has '/etc/telem-db-tls/server.key'; applied by a reload)",
        ]
    );
    assert!(
        s.fleet.with("db1", |h| *h.world.borrow() == was),
        "the dry run changed db1"
    );

    // Uninstall: the operator's values, in the file and running; their pg_hba.conf as it was.
    uninstall(&s);
    assert_eq!(settings(&s), (before.clone(), before.clone()));
    assert_eq!(s.file("db1", HBA_FILE).unwrap().0, HBA);
    let record = recorded(&s);
    for name in NAMES {
        assert!(record[name]["ours"].is_null(), "{record:#}");
    }

    // A second uninstall leaves them.
    let doc = uninstall(&s);
    let (status, changes) = step(&doc, STOP);
    assert_eq!(status, "ok", "{changes:?}");
    assert_eq!(settings(&s), (before.clone(), before));
}

#[test]
fn uninstall_resets_what_the_tool_added_where_nothing_was_set() {
    let nothing = BTreeMap::from([("work_mem".to_owned(), "64MB".to_owned())]);
    let s = fleet(&nothing);
    s.install();
    let record = recorded(&s);
    for name in NAMES {
        assert!(
            record[name]["before"].is_null() && record[name]["ours"].is_string(),
            "{record:#}"
        );
    }
    let (code, plan, err) = s.run("uninstall", &["--dry-run", "--no-backup"]);
    assert_eq!(code, 0, "{err}\n{plan:#}");
    let (_, changes) = step(&plan, STOP);
    assert_eq!(changes.len(), 4, "{changes:?}");
    assert!(
        changes.iter().all(|c| c.starts_with("ALTER SYSTEM RESET ")),
        "{changes:?}"
    );
    uninstall(&s);
    assert_eq!(settings(&s), (nothing.clone(), nothing));
    assert_eq!(s.file("db1", HBA_FILE).unwrap().0, HBA);
}

/// A host installed by a telem-deploy that kept no record: uninstall resets only what holds
/// telem-deploy's value; a value someone else set since stays.
#[test]
fn without_a_record_uninstall_resets_only_telem_deploys_values() {
    let s = fleet(&BTreeMap::new());
    s.install();
    // The record gone (as an older telem-deploy left the state file), and the operator set
    // their own certificate since.
    s.fleet.with("db1", |h| {
        let path = std::path::Path::new("/var/lib/telem-deploy/state.json");
        let mut state: serde_json::Value =
            serde_json::from_slice(&h.world.borrow().files[path].content).unwrap();
        state.as_object_mut().unwrap().remove("postgres_settings");
        h.world.borrow_mut().files.get_mut(path).unwrap().content =
            serde_json::to_vec(&state).unwrap();
        let mut w = h.world.borrow_mut();
        w.pg_auto_conf
            .insert("ssl_cert_file".into(), "/etc/ssl/certs/their-db.pem".into());
    });
    uninstall(&s);
    let (auto, _) = settings(&s);
    assert_eq!(
        auto,
        BTreeMap::from([(
            "ssl_cert_file".to_owned(),
            "/etc/ssl/certs/their-db.pem".to_owned()
        )])
    );
}

/// db1 (db), sb (standby), web1 and web2 (collector), lb (balancer): every role
/// (inventory_standby.rs's).
use crate::inventory_standby::{FLEET as STANDBY_FLEET, HOSTS as STANDBY_HOSTS};

fn worlds(s: &Setup) -> Vec<crate::fake_host::World> {
    STANDBY_HOSTS
        .iter()
        .map(|h| s.fleet.with(h, |h| h.world.borrow().clone()))
        .collect()
}

/// An uninstall that succeeds on every host and changes nothing on any (its plan neither).
fn uninstall_changes_nothing(s: &Setup, what: &str) {
    let before = worlds(s);
    for extra in [&["--dry-run"][..], &["--yes"]] {
        let mut args = vec!["--no-backup"];
        args.extend(extra);
        let (code, doc, err) = s.run("uninstall", &args);
        assert_eq!(code, 0, "{what} {extra:?}: {err}\n{doc:#}");
        let hosts = targets(&doc);
        assert_eq!(hosts.len(), STANDBY_HOSTS.len(), "{what}: {doc:#}");
        for (name, ok, changes) in hosts {
            assert!(ok && changes == 0, "{what} {extra:?}: {name}: {doc:#}");
        }
        // Nothing the plan could not tell either (a step that cannot ask the server).
        for t in doc["targets"].as_array().unwrap() {
            assert_eq!(
                t["report"]["summary"]["unknown"], 0,
                "{what} {extra:?}: {doc:#}"
            );
        }
        assert!(worlds(s) == before, "{what} {extra:?}: a host changed");
    }
}

/// README, Actions: "uninstall on a machine where telem-deploy installed nothing (or a second
/// uninstall) changes nothing and succeeds" — an inventory's too (the distros that split a
/// backend): PostgreSQL is not installed on its database hosts, so there is no pg_hba.conf,
/// setting, slot or role of telem-deploy to remove (and no `psql` to ask).
#[test]
fn an_inventory_uninstall_where_nothing_was_installed_changes_nothing() {
    for distro in ["debian", "ubuntu"] {
        let s = Setup::new(
            STANDBY_FLEET,
            STANDBY_HOSTS
                .iter()
                .map(|n| (*n, Some(FakeHost::fresh(distro, true))))
                .collect(),
        );
        uninstall_changes_nothing(&s, distro);
    }
}

/// The same after `uninstall -u` removed what install put there, PostgreSQL included.
#[test]
fn a_second_inventory_uninstall_after_u_changes_nothing() {
    let s = Setup::new(
        STANDBY_FLEET,
        STANDBY_HOSTS
            .iter()
            .map(|n| (*n, Some(FakeHost::fresh("debian", true))))
            .collect(),
    );
    s.install();
    let (code, doc, err) = s.run("uninstall", &["--yes", "--no-backup", "-u"]);
    assert_eq!(code, 0, "{err}\n{doc:#}");
    for (name, ok, _) in targets(&doc) {
        assert!(ok, "{name}: {doc:#}");
    }
    for host in ["db1", "sb"] {
        let left = s.fleet.with(host, |h| h.world.borrow().packages.clone());
        assert!(!left.contains("postgresql-common"), "{host}: {left:?}");
    }
    uninstall_changes_nothing(&s, "after -u");
}

/// A second plain `uninstall` (without `-u`, so PostgreSQL stays installed): the first stopped
/// the standby, whose pg_hba.conf block and settings it had already taken away and recorded
/// so; the second finds nothing of telem-deploy's left there and changes nothing, without
/// asking the stopped server.
#[test]
fn a_second_inventory_uninstall_changes_nothing() {
    let s = Setup::fresh_hosts(STANDBY_FLEET, &STANDBY_HOSTS);
    s.install();
    uninstall(&s);
    let stopped = s
        .fleet
        .with("sb", |h| !h.world.borrow().running.contains("postgresql"));
    assert!(stopped, "the first uninstall stops the standby");
    for host in ["db1", "sb"] {
        let hba = s.file(host, HBA_FILE).expect("pg_hba.conf").0;
        assert!(!hba.contains("telem-deploy"), "{host}: {hba}");
    }
    uninstall_changes_nothing(&s, "a second uninstall");
}

/// What sb's state file records of its pg_hba.conf block.
fn hba_record(s: &Setup) -> serde_json::Value {
    let (text, _) = s
        .file("sb", "/var/lib/telem-deploy/state.json")
        .expect("state file");
    let state: serde_json::Value = serde_json::from_str(&text).unwrap();
    state["postgres_hba"].clone()
}

/// A standby stopped by hand before uninstall still has telem-deploy's pg_hba.conf block and
/// settings (its state file says so): uninstall runs it again for the steps that take them
/// away (a change its plan shows), stops it again at the end; uninstall again changes nothing.
#[test]
fn a_standby_stopped_before_uninstall_is_run_to_take_telem_deploys_changes_away() {
    let s = Setup::fresh_hosts(STANDBY_FLEET, &STANDBY_HOSTS);
    s.install();
    assert_eq!(
        hba_record(&s),
        serde_json::json!({"file": HBA_FILE, "ours": true}),
        "install records the block"
    );
    s.fleet.with("sb", |h| {
        h.world.borrow_mut().running.remove("postgresql");
    });
    const RUN: &str = "Run the standby while telem-deploy's pg_hba.conf block or settings";
    let sb_step = |doc: &serde_json::Value, name: &str| -> String {
        let t = doc["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["target"] == "sb")
            .expect("sb");
        let steps = t["report"]["steps"].as_array().unwrap();
        steps
            .iter()
            .find(|s| s["name"].as_str().unwrap().starts_with(name))
            .map(|s| s["status"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| "absent".to_owned())
    };
    let (code, plan, err) = s.run("uninstall", &["--dry-run", "--no-backup"]);
    assert_eq!(code, 0, "{err}\n{plan:#}");
    assert_eq!(sb_step(&plan, RUN), "change", "{plan:#}");

    let doc = uninstall(&s);
    assert_eq!(sb_step(&doc, RUN), "changed", "{doc:#}");
    let (hba, auto, running) = s.fleet.with("sb", |h| {
        let w = h.world.borrow();
        (
            String::from_utf8_lossy(&w.files[std::path::Path::new(HBA_FILE)].content).into_owned(),
            w.pg_auto_conf.clone(),
            w.running.contains("postgresql"),
        )
    });
    assert!(!hba.contains("telem-deploy"), "{hba}");
    for name in NAMES {
        assert!(!auto.contains_key(name), "{name} left: {auto:?}");
    }
    assert!(!running, "the standby runs after uninstall");
    assert_eq!(
        hba_record(&s),
        serde_json::json!({"file": HBA_FILE, "ours": false})
    );

    uninstall_changes_nothing(&s, "after a stopped standby's uninstall");
    let (code, plan, err) = s.run("uninstall", &["--dry-run", "--no-backup"]);
    assert_eq!(code, 0, "{err}\n{plan:#}");
    assert_eq!(sb_step(&plan, RUN), "absent", "{plan:#}");
}

/// A standby whose first uninstall was run by a telem-deploy that did not record the
/// pg_hba.conf block (only the settings, taken away after it): uninstall again, with the
/// standby stopped, changes nothing either.
#[test]
fn a_second_uninstall_without_a_record_of_the_block_changes_nothing() {
    let s = Setup::fresh_hosts(STANDBY_FLEET, &STANDBY_HOSTS);
    s.install();
    uninstall(&s);
    for host in ["db1", "sb"] {
        s.fleet.with(host, |h| {
            let path = std::path::Path::new("/var/lib/telem-deploy/state.json");
            let mut state: serde_json::Value =
                serde_json::from_slice(&h.world.borrow().files[path].content).unwrap();
            assert!(state["postgres_hba"].is_object(), "{host}: {state:#}");
            state.as_object_mut().unwrap().remove("postgres_hba");
            h.world.borrow_mut().files.get_mut(path).unwrap().content =
                serde_json::to_vec(&state).unwrap();
        });
    }
    uninstall_changes_nothing(&s, "without a record of the block");
}
