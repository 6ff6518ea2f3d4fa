//! An inventory with a hot standby on fake Debian hosts: the primary gets the replication
//! role, its slot and an hba line for the standby alone; the standby is rebuilt from a base
//! backup (fake_basebackup.rs) and streams from the primary through the slot over verified
//! TLS; the collectors read from it. The replication password is kept 0600 beside the CA and
//! never shown; a dry run creates neither. `promote` fences the old primary, promotes the
//! standby, rewires the collectors and prints the inventory as it now is, which reads back.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::fake_basebackup::DATA_DIR;
use crate::golden;
use crate::inventory::{targets, Setup};

const CONFIG: &str = "/etc/telemetry/collector.toml";
const CA_FILE: &str = "/etc/telem-db-tls/ca.pem";
pub(crate) const HOSTS: [&str; 5] = ["db1", "sb", "web1", "web2", "lb"];

/// db1 (db), sb (standby), web1 and web2 (collector), lb (balancer); its CA beside it.
pub(crate) const FLEET: &str = "\
domain: telemetry.example.com
hosts:
  - name: db1
    target: root@10.0.0.11
    roles: [db]
  - name: sb
    target: root@10.0.0.12
    roles: [standby]
  - name: web1
    target: root@10.0.0.21
    roles: [collector]
  - name: web2
    target: root@10.0.0.22
    roles: [collector]
  - name: lb
    target: root@10.0.0.30
    roles: [balancer]
";

impl Setup {
    fn standby_fleet() -> Setup {
        Setup::fresh_hosts(FLEET, &HOSTS)
    }

    fn config(&self, host: &str) -> String {
        self.file(host, CONFIG).expect("collector config").0
    }

    fn hba(&self, host: &str) -> String {
        self.file(host, crate::fake_psql::HBA_FILE)
            .expect("pg_hba.conf")
            .0
    }

    /// Every command line (argv and environment) the fake machines saw.
    fn commands(&self) -> String {
        let mut all = String::new();
        for n in HOSTS {
            self.fleet.with(n, |h| {
                for line in h.log.borrow().iter() {
                    all.push_str(line);
                    all.push('\n');
                }
            });
        }
        all
    }
}

/// The inventory `promote` printed after `marker` (to the end of `text`).
fn printed_inventory(text: &str, marker: &str) -> String {
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in:\n{text}"));
    text[at + marker.len()..].to_owned()
}

#[test]
fn a_standby_streams_from_the_primary_through_its_slot_and_the_collectors_read_from_it() {
    let s = Setup::standby_fleet();
    s.install();
    let ca_pem = std::fs::read_to_string(s.ca_dir().join("ca.pem")).expect("the CA");

    // The standby's postgresql.auto.conf is the primary's base backup: nothing of it is
    // recorded as its operator's (uninstall resets what the tool set there).
    let (state, _) = s
        .file("sb", "/var/lib/telem-deploy/state.json")
        .expect("the standby's state file");
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["postgres_from_backup"], true, "{state:#}");
    let recorded = state["postgres_settings"].as_object().expect("records");
    assert_eq!(recorded.len(), 4, "{state:#}");
    assert!(
        recorded
            .values()
            .all(|r| r["before"].is_null() && r["ours"].is_string()),
        "{state:#}"
    );

    // The replication password: kept beside the CA, for root alone.
    let pw_path = s.ca_dir().join("replication.password");
    let mode = std::fs::metadata(&pw_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "replication.password mode {mode:o}");
    let pw = s.replication_password();
    assert!(pw.len() >= 16, "a weak replication password");

    // The primary: the role with REPLICATION and a password (a verifier), the slot, and an
    // hba line admitting the standby alone to replication.
    let (repl, role, slots) = s.fleet.with("db1", |h| {
        let w = h.world.borrow();
        (
            w.replication.clone(),
            w.roles.get("telem_replicator").cloned(),
            w.slots.clone(),
        )
    });
    assert!(repl.contains("telem_replicator"), "{repl:?}");
    let verifier = role.expect("the replication role").expect("its password");
    assert!(verifier.starts_with("SCRAM-SHA-256$"), "{verifier}");
    assert!(slots.contains_key("telem_standby"), "{slots:?}");
    let hba = s.hba("db1");
    let replication: Vec<&str> = hba
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("replication"))
        .collect();
    assert_eq!(
        replication
            .iter()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>(),
        ["hostssl replication telem_replicator 10.0.0.12/32 scram-sha-256"],
        "{hba}"
    );
    for other in ["10.0.0.21", "10.0.0.22", "10.0.0.30"] {
        assert!(
            !replication.iter().any(|l| l.contains(other)),
            "{other} may replicate:\n{hba}"
        );
    }

    // The standby: in recovery, streaming from db1's address through the slot, verifying
    // db1 with the inventory's CA; its former data directory kept; no passfile left.
    let (recovery, receiver, receiver_ca, running) = s.fleet.with("sb", |h| {
        let w = h.world.borrow();
        (
            w.in_recovery,
            w.receiver.clone(),
            w.receiver_ca.clone(),
            w.running.contains("postgresql"),
        )
    });
    assert!(running && recovery, "the standby is not a running standby");
    assert_eq!(
        receiver,
        Some(("10.0.0.11".to_owned(), 5432, "telem_standby".to_owned()))
    );
    assert_eq!(receiver_ca.as_deref(), Some(CA_FILE));
    let (ca_there, _) = s.file("sb", CA_FILE).expect("the CA on the standby");
    assert_eq!(ca_there.trim(), ca_pem.trim());
    let parent: Vec<String> = s.fleet.with("sb", |h| {
        h.world
            .borrow()
            .files
            .keys()
            .filter(|p| p.parent() == Some(Path::new("/var/lib/postgresql/15")))
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    });
    assert!(
        parent.iter().any(|n| n.starts_with("main.telem-aside-20")),
        "the former cluster was not kept: {parent:?}"
    );
    assert!(
        !parent
            .iter()
            .any(|n| n.contains("pgpass") || n.ends_with(".telem-new")),
        "left behind: {parent:?}"
    );
    let (auto, mode) = s
        .file("sb", &format!("{DATA_DIR}/postgresql.auto.conf"))
        .expect("postgresql.auto.conf");
    assert_eq!(
        mode, 0o600,
        "the conninfo with the password is the cluster user's"
    );
    assert!(
        auto.contains("primary_slot_name = 'telem_standby'") && !auto.contains("passfile"),
        "{auto}"
    );
    // The standby's own certificate, for the collectors' reads, and an hba line for them.
    let (cert, _) = s
        .file("sb", "/etc/telem-db-tls/server.crt")
        .expect("the standby's certificate");
    assert!(cert.contains("BEGIN CERTIFICATE"));
    let sb_hba = s.hba("sb");
    for client in ["10.0.0.21/32", "10.0.0.22/32"] {
        assert!(
            sb_hba
                .lines()
                .any(|l| l.starts_with("hostssl") && l.contains(client)),
            "{client} cannot read from the standby:\n{sb_hba}"
        );
    }

    // The collectors: write to the primary, read from the standby.
    for web in ["web1", "web2"] {
        let config = s.config(web);
        assert!(
            config.contains("database_url = \"postgres://telemetry@10.0.0.11:5432/telemetry\""),
            "{config}"
        );
        assert!(
            config
                .contains("read_database_url = \"postgres://telemetry@10.0.0.12:5432/telemetry\""),
            "{config}"
        );
    }

    // The replication password reached no argv or environment of any machine.
    let commands = s.commands();
    assert!(
        !commands.contains(&pw),
        "the replication password in a command"
    );
    assert!(commands.contains("pg_basebackup"), "{commands}");
    // The fresh standby's cluster was not running: its data directory came from Debian's
    // pg_lsclusters.
    assert!(commands.contains("pg_lsclusters --no-header"), "{commands}");

    // A second install changes nothing anywhere; a dry run's plan does not show it either.
    let (code, doc, err) = s.run("install", &["--yes"]);
    assert_eq!(code, 0, "{err}\n{doc:#}");
    assert_eq!(targets(&doc).len(), 5, "{doc:#}");
    for (name, ok, changes) in targets(&doc) {
        assert!(ok, "{name}: {doc:#}");
        assert_eq!(changes, 0, "{name} changed again: {doc:#}");
    }
    assert!(!doc.to_string().contains(&pw));
    let (code, out, err) = s.run_raw("install", &["--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!s.commands().contains(&pw));
}

#[test]
fn a_dry_run_with_a_standby_creates_neither_the_ca_nor_the_replication_password() {
    let s = Setup::standby_fleet();
    let before: Vec<_> = HOSTS
        .iter()
        .map(|n| s.fleet.with(n, |h| h.world.borrow().clone()))
        .collect();
    let (code, doc, err) = s.run("install", &["--dry-run"]);
    assert_eq!(code, 0, "{err}\n{doc:#}");
    assert_eq!(targets(&doc).len(), 5, "{doc:#}");
    assert!(!s.ca_dir().exists(), "a dry run created the CA directory");
    assert!(!s.ca_dir().join("replication.password").exists());
    for (n, was) in HOSTS.iter().zip(before) {
        let now = s.fleet.with(n, |h| h.world.borrow().clone());
        assert!(now == was, "the dry run changed {n}");
    }
}

#[test]
fn promote_fences_the_old_primary_promotes_the_standby_and_rewires_the_collectors() {
    let s = Setup::standby_fleet();
    s.install();
    let pw = s.replication_password();
    let inventory = s.inventory();
    let (code, out, err) = s.run_raw("promote", &["--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");

    // db1 fenced: stopped, not started at boot, standby.signal and the marker.
    s.fleet.with("db1", |h| {
        let w = h.world.borrow();
        assert!(!w.running.contains("postgresql"), "db1 still runs");
        assert!(!w.enabled.contains("postgresql"), "db1 starts at boot");
        for f in ["standby.signal", "telem-deploy-fenced"] {
            assert!(
                w.files.contains_key(&Path::new(DATA_DIR).join(f)),
                "db1 has no {f}"
            );
        }
    });
    // sb: a primary now, for good (no standby.signal).
    s.fleet.with("sb", |h| {
        let w = h.world.borrow();
        assert!(w.running.contains("postgresql") && !w.in_recovery);
        assert!(!w
            .files
            .contains_key(&Path::new(DATA_DIR).join("standby.signal")));
    });
    // The collectors write to sb, and read from it (no separate reader).
    for web in ["web1", "web2"] {
        let config = s.config(web);
        assert!(
            config.contains("database_url = \"postgres://telemetry@10.0.0.12:5432/telemetry\""),
            "{config}"
        );
        assert!(!config.contains("read_database_url"), "{config}");
    }

    // The inventory as it now is, on stdout: sb the primary, db1 commented out.
    let text = printed_inventory(
        &out,
        &format!("The inventory as it now is (write it over {inventory}):\n"),
    );
    assert!(
        text.contains(
            "  - name: sb\n    target: root@10.0.0.12\n    address: 10.0.0.12\n    roles: [db]\n"
        ),
        "{text}"
    );
    assert!(text.contains("  # - name: db1\n"), "{text}");
    assert!(
        !text
            .lines()
            .any(|l| l.trim_start().starts_with("- name: db1")),
        "{text}"
    );
    assert!(!text.contains("standby"), "{text}");
    assert!(!out.contains(&pw) && !s.commands().contains(&pw));

    // A second promote (the same inventory file) finds everything done.
    let (code, doc, err) = s.run("promote", &["--yes"]);
    assert_eq!(code, 0, "{err}\n{doc:#}");
    for (name, ok, changes) in targets(&doc) {
        assert!(ok, "{name}: {doc:#}");
        assert_eq!(changes, 0, "{name} changed again: {doc:#}");
    }

    // It reads back: a dry run with it finds the collectors and the balancer converged.
    let now = s.dir.path().join("promoted.yaml");
    std::fs::write(&now, &text).unwrap();
    let now = now.display().to_string();
    let (code, out, err) = s.fleet.run_inventory(&[
        "-a",
        "install",
        "--inventory",
        &now,
        "--dry-run",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let t = targets(&doc);
    let names: Vec<&str> = t.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(names, ["sb", "web1", "web2", "lb"], "{doc:#}");
    for (name, ok, changes) in &t {
        assert!(ok, "{name}: {doc:#}");
        if name != "sb" {
            assert_eq!(*changes, 0, "{name} is not converged: {doc:#}");
        }
    }
}

#[test]
fn promote_with_the_old_primary_unreachable_leaves_it_out() {
    let s = Setup::standby_fleet();
    s.install();
    let db1 = s.fleet.replace("db1", None).expect("db1");
    let before = db1.world.borrow().clone();
    let (code, doc, err) = s.run(
        "promote",
        &[
            "--yes", "--limit", "sb", "--limit", "web1", "--limit", "web2",
        ],
    );
    assert_eq!(code, 0, "{err}\n{doc:#}");
    let names: Vec<String> = targets(&doc).into_iter().map(|t| t.0).collect();
    assert_eq!(names, ["sb", "web1", "web2"], "{doc:#}");
    assert!(*db1.world.borrow() == before, "db1 was touched");
    s.fleet
        .with("sb", |h| assert!(!h.world.borrow().in_recovery));
    for web in ["web1", "web2"] {
        assert!(
            s.config(web)
                .contains("database_url = \"postgres://telemetry@10.0.0.12:5432/telemetry\""),
            "{web}"
        );
    }
    // In JSON the inventory as it now is goes to stderr, stdout holding the document alone.
    let text = printed_inventory(&err, "The inventory as it now is (write it over ");
    assert!(
        text.contains("    roles: [db]\n") && text.contains("  # - name: db1\n"),
        "{text}"
    );
}

#[test]
fn promote_needs_an_inventory_with_a_standby() {
    // An inventory without a standby.
    let no_standby = FLEET.replace(
        "  - name: sb\n    target: root@10.0.0.12\n    roles: [standby]\n",
        "",
    );
    let s = Setup::fresh_hosts(&no_standby, &["db1", "web1", "web2", "lb"]);
    let (code, out, err) = s.run_raw("promote", &["--yes"]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(
        err.contains("no host has the role standby; nothing to promote"),
        "{err}"
    );
    // Without --inventory: on one machine there is no standby to promote, and nothing of it
    // is touched (its cluster is not fenced).
    let host = golden::installed("debian");
    let before = host.world.borrow().clone();
    let (code, out, err) = golden::run(&host, &["-a", "promote", "-H", "localhost", "--yes"]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(
        err.contains("promote works on an inventory with a standby (--inventory FILE)"),
        "{err}"
    );
    assert!(
        *host.world.borrow() == before,
        "promote without an inventory changed the machine"
    );
}

#[test]
fn a_target_that_panics_fails_its_wave_and_the_run_ends() {
    // A bug in a step panics on the standby: the collectors' wave must not wait for it
    // forever (the run used to hang in the waves' gate); they do not run, and the panic
    // reaches the caller.
    let s = std::sync::Arc::new(Setup::standby_fleet());
    s.fleet.with("sb", |h| {
        h.world.borrow_mut().panic_on = Some("pg_basebackup".into());
    });
    let before = s.fleet.with("web1", |h| h.world.borrow().clone());
    let (tx, rx) = std::sync::mpsc::channel();
    let run = s.clone();
    // Not a scoped thread: a run that hangs must fail this test, not hang it too.
    std::thread::spawn(move || {
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run.install()));
        tx.send(ran.is_err()).ok();
    });
    let panicked = rx
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("the run hangs after a target's thread panicked");
    assert!(panicked, "the panic did not reach the caller");
    let after = s.fleet.with("web1", |h| h.world.borrow().clone());
    assert!(
        after == before,
        "a collector changed after its standby failed"
    );
}

#[test]
fn a_standby_host_with_a_running_cluster_keeps_its_data_aside() {
    // sb already runs a cluster of its own, with data: the base backup is taken beside it,
    // and only then is it stopped and set aside (never deleted).
    let s = Setup::standby_fleet();
    s.fleet.with("sb", |h| {
        h.install_package("postgresql");
        h.put(
            &format!("{DATA_DIR}/base/16384/2619"),
            "the operator's rows\n",
        );
        h.world.borrow_mut().running.insert("postgresql".into());
    });
    s.install();
    let commands = s.commands();
    assert!(
        !commands.contains("pg_lsclusters"),
        "the running server names its data directory"
    );
    let kept: Vec<(PathBuf, String)> = s.fleet.with("sb", |h| {
        h.world
            .borrow()
            .files
            .iter()
            .filter(|(p, _)| p.ends_with("base/16384/2619"))
            .map(|(p, n)| (p.clone(), String::from_utf8_lossy(&n.content).into_owned()))
            .collect()
    });
    assert_eq!(kept.len(), 1, "{kept:?}");
    let (path, content) = &kept[0];
    assert!(
        path.starts_with("/var/lib/postgresql/15")
            && path.to_string_lossy().contains("/main.telem-aside-20"),
        "{path:?}"
    );
    assert_eq!(content, "the operator's rows\n");
    s.fleet.with("sb", |h| {
        let w = h.world.borrow();
        assert!(w.in_recovery && w.receiver.is_some(), "sb does not stream");
    });
}

#[test]
fn what_an_interrupted_rebuild_left_is_set_aside_or_removed() {
    // A partial copy and a passfile (with a password) of an interrupted run: the copy is
    // kept aside (pg_basebackup wants an empty directory), the passfile goes.
    let s = Setup::standby_fleet();
    s.fleet.with("sb", |h| {
        h.install_package("postgresql");
        h.dir("/var/lib/postgresql/15/main.telem-new");
        h.put("/var/lib/postgresql/15/main.telem-new/PG_VERSION", "15\n");
        h.put(
            "/var/lib/postgresql/15/.telem-deploy-pgpass-20261201T000000Z",
            "10.0.0.11:5432:*:telem_replicator:an old password\n",
        );
    });
    s.install();
    let names: Vec<String> = s.fleet.with("sb", |h| {
        h.world
            .borrow()
            .files
            .keys()
            .filter(|p| p.parent() == Some(Path::new("/var/lib/postgresql/15")))
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    });
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("main.telem-new.failed-20")),
        "{names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|n| n.contains("pgpass") || n == "main.telem-new"),
        "{names:?}"
    );
    s.fleet
        .with("sb", |h| assert!(h.world.borrow().receiver.is_some()));
}
